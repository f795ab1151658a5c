//! Organisation-scoped access (README "Security"): with clients registered, a referrer
//! reads its own organisation's referrals and nothing else; a performer the Tasks it
//! owns, their referral, and the Patient only while an active Consent permits; every
//! path (read, search, `_include`, chains, history, Bundle entries, `$route`,
//! Subscriptions, notifications, updates) narrowed by the same rule.

use reqwest::Method;
use serde_json::{json, Value};

use crate::access_support::{
    found, json_of, refer_as, register, status, task_of, world, Client, GP_A,
};
use crate::backend_tests;
use crate::helpers::{TestApp, OWNER};

backend_tests!(
    every_path_is_narrowed_to_the_organisation,
    consent_decides_whether_a_performer_reads_the_patient,
    subscriptions_hear_only_of_their_organisations_referrals,
    a_performers_subscription_hears_of_the_task_it_was_given,
    a_monitor_reads_no_patient_data,
);

async fn every_path_is_narrowed_to_the_organisation(app: TestApp) {
    let w = world(app).await;
    let app = &w.app;
    let (sr_a, patient_a, _) = refer_as(&w.gp_a, app, "999999011", true).await;
    let (sr_b, patient_b, _) = refer_as(&w.gp_b, app, "999999023", true).await;
    let task_a = task_of(&w.gp_a, app, &sr_a).await;
    let task_b = task_of(&w.gp_b, app, &sr_b).await;
    let (ta, tb) = (
        task_a["id"].as_str().unwrap(),
        task_b["id"].as_str().unwrap(),
    );
    assert_eq!(task_a["owner"]["reference"], OWNER);

    // Reads: its own 200, the other's 404 (existence does not leak).
    for path in [
        format!("ServiceRequest/{sr_a}"),
        format!("Patient/{patient_a}"),
        format!("Task/{ta}"),
    ] {
        assert_eq!(status(&w.gp_a, app, &path).await, 200, "{path}");
        assert_eq!(status(&w.gp_b, app, &path).await, 404, "{path}");
        assert_eq!(
            status(&w.gp_b, app, &format!("{path}/_history/1")).await,
            404,
            "{path}"
        );
        assert_eq!(
            status(&w.gp_b, app, &format!("{path}/_history")).await,
            404,
            "{path}"
        );
    }
    // Searches, includes, chains, type history: only what is the organisation's.
    assert_eq!(
        found(&w.gp_a, app, "ServiceRequest").await,
        [format!("ServiceRequest/{sr_a}")]
    );
    assert_eq!(
        found(&w.gp_a, app, "Patient").await,
        [format!("Patient/{patient_a}")]
    );
    assert_eq!(
        found(
            &w.gp_a,
            app,
            "Task?_include=Task:patient&_include=Task:focus"
        )
        .await,
        [
            format!("Patient/{patient_a}"),
            format!("ServiceRequest/{sr_a}"),
            format!("Task/{ta}")
        ]
    );
    assert_eq!(
        found(&w.gp_a, app, "Patient?_revinclude=ServiceRequest:subject").await,
        [
            format!("Patient/{patient_a}"),
            format!("ServiceRequest/{sr_a}")
        ]
    );
    assert!(
        found(&w.gp_a, app, &format!("Task?patient._id={patient_b}"))
            .await
            .is_empty()
    );
    assert!(found(&w.gp_a, app, "Task?patient.identifier=999999023")
        .await
        .is_empty());
    assert_eq!(
        found(&w.gp_a, app, "Task?patient.identifier=999999011").await,
        [format!("Task/{ta}")]
    );
    let history = json_of(w.gp_a.send(app, Method::GET, "Task/_history", None).await).await;
    assert!(
        history["entry"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["resource"]["id"] == ta
                || e["request"]["url"].as_str().is_some_and(|u| u.contains(ta))),
        "{history}"
    );
    // The directory is everyone's.
    assert_eq!(status(&w.gp_a, app, OWNER).await, 200);
    // The performer reads the Tasks it owns from both practices; another
    // organisation nothing.
    assert_eq!(found(&w.owner, app, "Task").await, {
        let mut both = vec![format!("Task/{ta}"), format!("Task/{tb}")];
        both.sort();
        both
    });
    assert!(found(&w.other, app, "Task").await.is_empty());
    assert!(found(&w.other, app, "ServiceRequest").await.is_empty());
    assert_eq!(
        status(&w.other, app, &format!("Patient/{patient_a}")).await,
        404
    );
    // NEN 7513: the trail names the client, its organisation and the patient, and
    // holds the token grant; a coordinator searches it, a referrer may not.
    let trail = json_of(
        w.coordinator
            .send(
                app,
                Method::GET,
                &format!("AuditEvent?agent=client:gp-a-his&patient=Patient/{patient_a}&_count=100"),
                None,
            )
            .await,
    )
    .await;
    let events: Vec<&Value> = trail["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .collect();
    assert!(events.len() >= 3, "{trail}");
    for ev in &events {
        assert_eq!(
            ev["agent"][0]["who"]["identifier"]["value"],
            "client:gp-a-his"
        );
        assert_eq!(ev["agent"][1]["who"]["reference"], GP_A);
    }
    let code = |ev: &Value| {
        ev["subtype"].as_array().unwrap().last().unwrap()["code"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let codes: Vec<String> = events.iter().map(|ev| code(ev)).collect();
    for interaction in ["create", "read", "search-type"] {
        assert!(
            codes.iter().any(|c| c == interaction),
            "{interaction} not in {codes:?}"
        );
    }
    let grants = json_of(
        w.coordinator
            .send(
                app,
                Method::GET,
                "AuditEvent?agent=client:gp-a-his&entity=token",
                None,
            )
            .await,
    )
    .await;
    assert!(
        grants["entry"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| code(&e["resource"]) == "token"),
        "{grants}"
    );
    assert_eq!(status(&w.gp_a, app, "AuditEvent").await, 403);
    // The coordinator reads everything.
    assert_eq!(found(&w.coordinator, app, "ServiceRequest").await.len(), 2);

    // Bundle GET entries are narrowed too.
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": format!("ServiceRequest/{sr_a}")}},
        {"request": {"method": "GET", "url": format!("ServiceRequest/{sr_b}")}},
        {"request": {"method": "GET", "url": "Task?_include=Task:patient"}},
    ]});
    let answer = json_of(w.gp_a.send(app, Method::POST, "", Some(&batch)).await).await;
    assert!(answer["entry"][0]["response"]["status"]
        .as_str()
        .unwrap()
        .starts_with("200"));
    assert!(answer["entry"][1]["response"]["status"]
        .as_str()
        .unwrap()
        .starts_with("404"));
    assert_eq!(
        answer["entry"][2]["resource"]["entry"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{answer}"
    );

    // $route of another organisation's referral: as if it did not exist.
    let route = json!({"resourceType": "Parameters", "parameter": [
        {"name": "serviceRequest", "valueReference": {"reference": format!("ServiceRequest/{sr_b}")}}]});
    let res = w
        .gp_a
        .send(app, Method::POST, "ServiceRequest/$route", Some(&route))
        .await;
    assert_eq!(res.status(), 404);

    // Updates: another organisation's resources cannot be changed (404), nor its
    // Task cancelled; its own referral's Task the referrer cancels as requester.
    let mut cancel = task_b.clone();
    cancel["status"] = json!("cancelled");
    cancel["statusReason"] = json!({"text": "Patient verhuisd"});
    let res = w
        .gp_a
        .put_versioned(app, &format!("Task/{tb}"), &cancel)
        .await;
    assert_eq!(res.status(), 404);
    let mut sr = json_of(
        w.gp_b
            .send(app, Method::GET, &format!("ServiceRequest/{sr_b}"), None)
            .await,
    )
    .await;
    sr["note"] = json!([{"text": "overwritten"}]);
    let res = w
        .gp_a
        .put_versioned(app, &format!("ServiceRequest/{sr_b}"), &sr)
        .await;
    assert_eq!(res.status(), 404);
    let res = w
        .gp_a
        .send(app, Method::DELETE, &format!("Patient/{patient_b}"), None)
        .await;
    // A referrer's scopes grant no delete at all.
    assert_eq!(res.status(), 403);
    let mut cancel = task_a.clone();
    cancel["status"] = json!("cancelled");
    cancel["statusReason"] = json!({"text": "Patient verhuisd"});
    let res = w
        .gp_a
        .put_versioned(app, &format!("Task/{ta}"), &cancel)
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

async fn consent_decides_whether_a_performer_reads_the_patient(app: TestApp) {
    let w = world(app).await;
    let app = &w.app;
    let (sr_a, patient_a, consent_a) = refer_as(&w.gp_a, app, "999999011", true).await;
    let (sr_b, patient_b, _) = refer_as(&w.gp_b, app, "999999023", false).await;
    // With consent: the Patient; without: the Task and the referral, not the Patient,
    // and the refusal says why.
    assert_eq!(
        status(&w.owner, app, &format!("Patient/{patient_a}")).await,
        200
    );
    assert_eq!(
        status(&w.owner, app, &format!("ServiceRequest/{sr_b}")).await,
        200
    );
    let task_b = task_of(&w.owner, app, &sr_b).await;
    assert_eq!(task_b["for"]["reference"], format!("Patient/{patient_b}"));
    // The Task says why.
    let says = |task: &Value| {
        task["note"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|n| n["text"].as_str().unwrap_or_default().contains("withheld"))
    };
    assert!(says(&task_b), "{task_b}");
    assert!(!says(&task_of(&w.owner, app, &sr_a).await));
    let res = w
        .owner
        .send(app, Method::GET, &format!("Patient/{patient_b}"), None)
        .await;
    assert_eq!(res.status(), 403);
    let outcome: Value = res.json().await.unwrap();
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("Consent"),
        "{outcome}"
    );
    assert_eq!(
        found(&w.owner, app, "Task?_include=Task:patient")
            .await
            .iter()
            .filter(|r| r.starts_with("Patient/"))
            .collect::<Vec<_>>(),
        [&format!("Patient/{patient_a}")]
    );
    // The GP records consent for B: the Patient is readable at once.
    let consent = json!({"resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": format!("Patient/{patient_b}")},
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]}});
    let res = w
        .gp_b
        .send(app, Method::POST, "Consent", Some(&consent))
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(
        status(&w.owner, app, &format!("Patient/{patient_b}")).await,
        200
    );
    // Revoking A's consent takes effect at once.
    let consent_a = consent_a.unwrap();
    let mut revoked = json_of(
        w.gp_a
            .send(app, Method::GET, &format!("Consent/{consent_a}"), None)
            .await,
    )
    .await;
    revoked["status"] = json!("inactive");
    let res = w
        .gp_a
        .put_versioned(app, &format!("Consent/{consent_a}"), &revoked)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        status(&w.owner, app, &format!("Patient/{patient_a}")).await,
        403
    );
    // A Consent whose provision period ends: readable until then, withheld after,
    // without any write in between.
    let ends = time::OffsetDateTime::now_utc() + time::Duration::seconds(3);
    let ends = ends
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut until = consent.clone();
    until["patient"]["reference"] = json!(format!("Patient/{patient_a}"));
    until["provision"] = json!({"period": {"end": ends}});
    let res = w
        .gp_a
        .send(app, Method::POST, "Consent", Some(&until))
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(
        status(&w.owner, app, &format!("Patient/{patient_a}")).await,
        200
    );
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(
        status(&w.owner, app, &format!("Patient/{patient_a}")).await,
        403
    );
    // The GP still reads its patient.
    assert_eq!(
        status(&w.gp_a, app, &format!("Patient/{patient_a}")).await,
        200
    );
    // A performer that rejects keeps its Task (read-only), loses the rest.
    let task_a = task_of(&w.owner, app, &sr_a).await;
    let mut rejected = task_a.clone();
    rejected["status"] = json!("rejected");
    rejected["statusReason"] = json!({"text": "Geen capaciteit"});
    let res = w
        .owner
        .put_versioned(
            app,
            &format!("Task/{}", task_a["id"].as_str().unwrap()),
            &rejected,
        )
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert_eq!(
        status(
            &w.owner,
            app,
            &format!("Task/{}", task_a["id"].as_str().unwrap())
        )
        .await,
        200
    );
    assert_eq!(
        status(&w.owner, app, &format!("Consent/{consent_a}")).await,
        404
    );
}

async fn subscriptions_hear_only_of_their_organisations_referrals(app: TestApp) {
    let w = world(app).await;
    let app = &w.app;
    let sub = subscribe_to_task_changes(&w.gp_b, app, "Status terug naar de praktijk").await;
    // Another organisation neither reads it nor its events.
    assert_eq!(
        status(&w.gp_a, app, &format!("Subscription/{sub}")).await,
        404
    );
    assert_eq!(
        status(&w.gp_a, app, &format!("Subscription/{sub}/$events")).await,
        404
    );
    assert_eq!(found(&w.gp_a, app, "Subscription").await.len(), 0);
    let res = w
        .gp_a
        .send(app, Method::DELETE, &format!("Subscription/{sub}"), None)
        .await;
    assert_eq!(
        res.status(),
        404,
        "another organisation's Subscription is not deleted"
    );
    let (sr_a, _, _) = refer_as(&w.gp_a, app, "999999011", true).await;
    let (sr_b, _, _) = refer_as(&w.gp_b, app, "999999023", true).await;
    let events = events_of(&w.gp_b, app, &sub).await;
    let focus = full_urls(&events);
    let task_a = task_of(&w.gp_a, app, &sr_a).await;
    let task_b = task_of(&w.gp_b, app, &sr_b).await;
    assert!(
        focus
            .iter()
            .any(|f| f.ends_with(&format!("Task/{}", task_b["id"].as_str().unwrap()))),
        "{events}"
    );
    assert!(
        !focus
            .iter()
            .any(|f| f.ends_with(&format!("Task/{}", task_a["id"].as_str().unwrap()))),
        "{events}"
    );
}

/// The welfare organisation did not create the referral: it reads the new Task through
/// the grants the referral's unit of work projects (before it commits), and its
/// Subscription hears of the Task in that same unit.
async fn a_performers_subscription_hears_of_the_task_it_was_given(app: TestApp) {
    let w = world(app).await;
    let app = &w.app;
    let sub = subscribe_to_task_changes(&w.owner, app, "Nieuwe verwijzingen").await;
    let (sr, _, _) = refer_as(&w.gp_a, app, "999999011", true).await;
    let task = task_of(&w.gp_a, app, &sr).await;
    let events = events_of(&w.owner, app, &sub).await;
    let task_url = format!("Task/{}", task["id"].as_str().unwrap());
    assert!(
        full_urls(&events).iter().any(|f| f.ends_with(&task_url)),
        "{events}"
    );
}

/// A rest-hook Subscription to every Task change (id-only payloads).
/// Creates, as `who`, a task-change Subscription (id-only rest-hook to a closed port:
/// its events are read back with `$events`); returns its id.
async fn subscribe_to_task_changes(who: &Client, app: &TestApp, reason: &str) -> String {
    let subscription = json!({"resourceType": "Subscription", "status": "requested", "reason": reason,
        "criteria": "https://wor-hub.nl/fhir/SubscriptionTopic/task-change",
        "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/hook", "payload": "application/fhir+json",
                    "_payload": {"extension": [{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content", "valueCode": "id-only"}]}}});
    let res = who
        .send(app, Method::POST, "Subscription", Some(&subscription))
        .await;
    assert_eq!(res.status(), 201);
    json_of(res).await["id"].as_str().unwrap().to_owned()
}

/// `Subscription/<sub>/$events` as `who` reads it.
async fn events_of(who: &Client, app: &TestApp, sub: &str) -> Value {
    let path = format!("Subscription/{sub}/$events");
    json_of(who.send(app, Method::GET, &path, None).await).await
}

/// The `fullUrl` of every entry of a Bundle (`$events`: each event's focus).
fn full_urls(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["fullUrl"].as_str().map(str::to_owned))
        .collect()
}

async fn a_monitor_reads_no_patient_data(app: TestApp) {
    let w = world(app).await;
    let app = &w.app;
    let (sr, patient, _) = refer_as(&w.gp_a, app, "999999011", true).await;
    let monitor = register(app, "ggd", "monitor", "Organization/ggd").await;
    for path in [
        format!("Patient/{patient}"),
        format!("ServiceRequest/{sr}"),
        "Task".to_owned(),
        "Patient?_count=1".to_owned(),
        format!("Patient/{patient}/_history"),
    ] {
        let res = monitor.send(app, Method::GET, &path, None).await;
        assert_eq!(res.status(), 403, "{path}");
        let outcome: Value = res.json().await.unwrap();
        assert_eq!(outcome["resourceType"], "OperationOutcome");
    }
    // Aggregates only: the statistics, without any identifier of the referral.
    let res = monitor
        .send(
            app,
            Method::GET,
            "../reports/referrals?by=municipality",
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(
        report["total"]["received"],
        Value::Null,
        "1 referral: suppressed"
    );
    assert!(!report.to_string().contains(&sr) && !report.to_string().contains(&patient));
    let res = monitor
        .send(
            app,
            Method::GET,
            "Measure/referral-statistics/$evaluate-measure?periodStart=2026-01-01&periodEnd=2026-12-31",
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    // A referrer's client reads its own referrals at /fhir, not the statistics.
    let res = w
        .gp_a
        .send(app, Method::GET, "../reports/referrals", None)
        .await;
    assert_eq!(res.status(), 403);
    // Without a token: 401.
    assert_eq!(app.get("../reports/referrals").await.status(), 401);
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": format!("Patient/{patient}")}}]});
    assert_eq!(
        monitor
            .send(app, Method::POST, "", Some(&bundle))
            .await
            .status(),
        403
    );
}
