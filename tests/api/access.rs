//! Organisation-scoped access (README "Security"): with clients registered, a referrer
//! reads its own organisation's referrals and nothing else; a performer the Tasks it
//! owns, their referral, and the Patient only while an active Consent permits; every
//! path (read, search, `_include`, chains, history, Bundle entries, `$route`,
//! Subscriptions, notifications, updates) narrowed by the same rule.

use std::io::Write as _;
use std::process::{Command, Stdio};

use reqwest::{Method, Response};
use serde_json::{json, Value};
use wor_hub::config::DatabaseUrl;

use crate::backend_tests;
use crate::cli::BIN;
use crate::helpers::{load_sample, TestApp, FHIR_JSON, OWNER};

const GP_A: &str = "Organization/gp-a";
const GP_B: &str = "Organization/gp-b";
const OTHER: &str = "Organization/go-voor-jeugd";

backend_tests!(
    every_path_is_narrowed_to_the_organisation,
    consent_decides_whether_a_performer_reads_the_patient,
    subscriptions_hear_only_of_their_organisations_referrals,
    a_monitor_reads_no_patient_data,
);

const SECRET: &str = "access-test-secret-32-characters";

/// A registered client with its access token.
pub struct Client {
    pub organization: String,
    token: String,
}

/// Registers a client with the real binary (`wor-hub client add --secret-stdin`) on
/// the running server's database and gets a token (client_secret_basic, every scope
/// its role allows).
async fn register(app: &TestApp, id: &str, role: &str, organization: &str) -> Client {
    let db = match &app.database {
        DatabaseUrl::Sqlite(path) => path.to_string_lossy().into_owned(),
        DatabaseUrl::Postgres(url) => url.clone(),
    };
    let mut child = Command::new(BIN)
        .args([
            "client",
            "add",
            "--client-id",
            id,
            "--role",
            role,
            "--organization",
            organization,
        ])
        .args(["--secret-stdin", "--database-url", &db])
        .env_remove("WOR_HUB_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(SECRET.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let res = app
        .client
        .post(app.base.replace("/fhir", "/auth/token"))
        .basic_auth(id, Some(SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "system/*.cruds"),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    let token = body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    // The server notices the first client within a second; from then on it needs tokens.
    for _ in 0..50 {
        let open = app.get("Patient").await.status() == 200;
        if !open {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Client {
        organization: organization.to_owned(),
        token,
    }
}

impl Client {
    async fn send(
        &self,
        app: &TestApp,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Response {
        let mut req = app.request(method, path).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.header("Content-Type", FHIR_JSON).body(body.to_string());
        }
        req.send().await.unwrap()
    }

    /// PUT with If-Match from the resource's meta.versionId.
    async fn put_versioned(&self, app: &TestApp, path: &str, resource: &Value) -> Response {
        let version = resource["meta"]["versionId"].as_str().unwrap();
        app.request(Method::PUT, path)
            .bearer_auth(&self.token)
            .header("Content-Type", FHIR_JSON)
            .header("If-Match", format!("W/\"{version}\""))
            .body(resource.to_string())
            .send()
            .await
            .unwrap()
    }
}

/// A referral as GP `gp` sends it (Boskoop, 67: routed to [`OWNER`]), with an active
/// Consent when `consent`. Returns the ids of (ServiceRequest, Patient, Consent).
async fn refer_as(
    client: &Client,
    app: &TestApp,
    bsn: &str,
    consent: bool,
) -> (String, String, Option<String>) {
    let mut entries = vec![
        json!({"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001",
               "resource": {"resourceType": "Patient", "birthDate": "1959-04-02",
                            "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": bsn}],
                            "address": [{"use": "home", "district": "Alphen aan den Rijn", "postalCode": "2771 AB"}]},
               "request": {"method": "POST", "url": "Patient"}}),
        json!({"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000002",
               "resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                            "code": {"text": "Welzijn op Recept"},
                            "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000001"},
                            "requester": {"reference": client.organization},
                            "authoredOn": "2026-11-20"},
               "request": {"method": "POST", "url": "ServiceRequest"}}),
    ];
    if consent {
        entries.push(json!({"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000003",
            "resource": {"resourceType": "Consent", "status": "active",
                         "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
                         "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                         "patient": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000001"},
                         "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]}},
            "request": {"method": "POST", "url": "Consent"}}));
    }
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    let res = client.send(app, Method::POST, "", Some(&bundle)).await;
    assert_eq!(res.status(), 200, "referral accepted");
    let body: Value = res.json().await.unwrap();
    let id_of = |i: usize| {
        body["entry"][i]["response"]["location"]
            .as_str()
            .map(|l| l.split('/').nth_back(2).unwrap().to_owned())
    };
    (
        id_of(1).unwrap(),
        id_of(0).unwrap(),
        if consent { id_of(2) } else { None },
    )
}

async fn status(client: &Client, app: &TestApp, path: &str) -> u16 {
    client
        .send(app, Method::GET, path, None)
        .await
        .status()
        .as_u16()
}

async fn json_of(res: Response) -> Value {
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert!(status.is_success(), "{status}: {body}");
    body
}

/// `Type/id` of every entry of a searchset, matches and includes.
async fn found(client: &Client, app: &TestApp, query: &str) -> Vec<String> {
    let bundle = json_of(client.send(app, Method::GET, query, None).await).await;
    let mut out: Vec<String> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            )
        })
        .collect();
    out.sort();
    out
}

async fn task_of(client: &Client, app: &TestApp, sr: &str) -> Value {
    let bundle = json_of(
        client
            .send(
                app,
                Method::GET,
                &format!("Task?focus=ServiceRequest/{sr}"),
                None,
            )
            .await,
    )
    .await;
    bundle["entry"][0]["resource"].clone()
}

struct World {
    app: TestApp,
    gp_a: Client,
    gp_b: Client,
    owner: Client,
    other: Client,
    coordinator: Client,
}

async fn world(app: TestApp) -> World {
    load_sample(&app).await;
    for org in [GP_A, GP_B] {
        let id = org.trim_start_matches("Organization/");
        let res = app
            .put(org, &json!({"resourceType": "Organization", "id": id, "name": format!("Huisartsenpraktijk {id}")}))
            .await;
        assert!(res.status().is_success());
    }
    World {
        gp_a: register(&app, "gp-a-his", "referrer", GP_A).await,
        gp_b: register(&app, "gp-b-his", "referrer", GP_B).await,
        owner: register(&app, "tom-backend", "performer", OWNER).await,
        other: register(&app, "go-backend", "performer", OTHER).await,
        coordinator: register(&app, "regio", "coordinator", OWNER).await,
        app,
    }
}

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
    let subscription = json!({"resourceType": "Subscription", "status": "requested",
        "reason": "Status terug naar de praktijk",
        "criteria": "https://wor-hub.nl/fhir/SubscriptionTopic/task-change",
        "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/hook", "payload": "application/fhir+json",
                    "_payload": {"extension": [{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content", "valueCode": "id-only"}]}}});
    let res = w
        .gp_b
        .send(app, Method::POST, "Subscription", Some(&subscription))
        .await;
    let created = json_of(res).await;
    let sub = created["id"].as_str().unwrap().to_owned();
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
    let events = json_of(
        w.gp_b
            .send(
                app,
                Method::GET,
                &format!("Subscription/{sub}/$events"),
                None,
            )
            .await,
    )
    .await;
    let focus: Vec<String> = events["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["fullUrl"].as_str().map(str::to_owned))
        .collect();
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
