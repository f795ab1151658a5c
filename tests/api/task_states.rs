//! The R4 Task state machine (task.html): `received` is optional, so the owner accepts
//! or rejects straight from `requested` (as the Gravity SDOH Clinical Care IG does).
//! Refused moves are business-rule violations: 422 `business-rule`, not 409, on every
//! path; 412 stays for a stale If-Match.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{
    add_fallback, current, is_overdue, load_sample, moved, put_task, refer, refuse, step,
    tasks_for, the_task, FALLBACK, OWNER,
};
use crate::helpers::{expect_outcome, has_issue, spawn_on_clock, Backend, TestApp, FHIR_JSON};

backend_tests!(
    the_owner_accepts_straight_from_requested_and_the_referral_follows,
    the_owner_rejects_straight_from_requested_and_the_referral_is_rerouted,
    refused_moves_are_422_business_rule_on_every_path,
    the_capability_statement_says_where_the_hub_is_stricter,
);

fn today() -> String {
    time::OffsetDateTime::now_utc().date().to_string()
}

async fn the_owner_accepts_straight_from_requested_and_the_referral_follows(app: TestApp) {
    load_sample(&app).await;
    let (sr, requester) = refer(&app, &today()).await;
    let requested = the_task(&app, &sr).await;
    // Only the owner accepts.
    refuse(&app, requested.clone(), "accepted", &requester).await;
    refuse(&app, requested.clone(), "accepted", "coordinator").await;
    let accepted = step(&app, OWNER, &requested, "accepted", None, None).await;
    assert_eq!(accepted["status"], "accepted");
    assert_eq!(accepted["meta"]["versionId"], "2");
    // Accepting changes nothing for the referral: it is still being worked on.
    let referral = current(&app, &format!("ServiceRequest/{sr}")).await;
    assert_eq!(referral["status"], "active");
    assert_eq!(referral["meta"]["versionId"], "1");
    let working = step(
        &app,
        OWNER,
        &accepted,
        "in-progress",
        Some("intake-planned"),
        None,
    )
    .await;
    step(&app, OWNER, &working, "completed", None, None).await;
    let referral = current(&app, &format!("ServiceRequest/{sr}")).await;
    assert_eq!(referral["status"], "completed");
    assert_eq!(referral["meta"]["versionId"], "2");
}

async fn the_owner_rejects_straight_from_requested_and_the_referral_is_rerouted(app: TestApp) {
    load_sample(&app).await;
    add_fallback(&app).await;
    let (sr, _) = refer(&app, &today()).await;
    let first = the_task(&app, &sr).await;
    // A reason is still required.
    let res = put_task(&app, Some(OWNER), &moved(&first, "rejected", None, None)).await;
    let issues = expect_outcome(res, 422).await;
    assert!(
        has_issue(&issues, "business-rule", Some("Task.statusReason")),
        "{issues:?}"
    );
    let rejected = step(&app, OWNER, &first, "rejected", None, Some("Geen plek")).await;
    assert_eq!(rejected["meta"]["versionId"], "2");

    let tasks = tasks_for(&app, &sr).await;
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    let second = tasks.iter().find(|t| t["status"] == "requested").unwrap();
    assert_eq!(second["owner"]["reference"], FALLBACK);
    assert_eq!(
        second["partOf"][0]["reference"],
        format!("Task/{}", first["id"].as_str().unwrap())
    );
    assert!(second.to_string().contains("Geen plek"));
    let referral = current(&app, &format!("ServiceRequest/{sr}")).await;
    assert_eq!(
        (
            referral["status"].as_str(),
            referral["meta"]["versionId"].as_str()
        ),
        (Some("active"), Some("1"))
    );

    // The fallback rejects straight away too: the coordinator gets it, assigns it, and
    // the assigned owner accepts straight from requested.
    step(
        &app,
        FALLBACK,
        second,
        "rejected",
        None,
        Some("Buiten werkgebied"),
    )
    .await;
    let tasks = tasks_for(&app, &sr).await;
    assert_eq!(tasks.len(), 3);
    let third = tasks.iter().find(|t| t["status"] == "requested").unwrap();
    assert!(third.get("owner").is_none(), "{third}");
    assert_eq!(third["statusReason"]["coding"][0]["code"], "all-rejected");
    let mut assigned = third.clone();
    assigned["owner"] = json!({"reference": OWNER});
    let res = put_task(&app, Some("coordinator"), &assigned).await;
    assert_eq!(res.status(), 200);
    let assigned: Value = res.json().await.unwrap();
    let accepted = step(&app, OWNER, &assigned, "accepted", None, None).await;
    let working = step(&app, OWNER, &accepted, "in-progress", None, None).await;
    step(&app, OWNER, &working, "failed", None, Some("Geen contact")).await;
    let referral = current(&app, &format!("ServiceRequest/{sr}")).await;
    assert_eq!(referral["status"], "revoked");
}

/// Asserts one `business-rule` issue at `expression` whose diagnostics name both
/// statuses.
fn names_both(issues: &[Value], expression: &str, from: &str, to: &str) {
    assert!(
        has_issue(issues, "business-rule", Some(expression)),
        "{expression}: {issues:?}"
    );
    let text = issues[0]["diagnostics"].as_str().unwrap();
    assert!(
        text.contains(&format!("is {from}")) && text.contains(&format!("move to {to}")),
        "{text}"
    );
}

async fn refused_moves_are_422_business_rule_on_every_path(app: TestApp) {
    load_sample(&app).await;
    let (sr, _) = refer(&app, &today()).await;
    let requested = the_task(&app, &sr).await;
    for to in ["in-progress", "completed", "on-hold", "failed"] {
        refuse(&app, requested.clone(), to, OWNER).await;
    }
    let id = requested["id"].as_str().unwrap().to_owned();
    let entry = |status: &str| {
        json!({"resource": moved(&requested, status, None, Some("waarom")),
               "request": {"method": "PUT", "url": format!("Task/{id}"), "ifMatch": "W/\"1\""}})
    };
    let post = |bundle: Value| {
        app.request(Method::POST, "")
            .header("Content-Type", FHIR_JSON)
            .header("X-Acting-Party", OWNER)
            .body(bundle.to_string())
            .send()
    };
    // A transaction answers with the entry's status as a whole.
    let res = post(json!({"resourceType": "Bundle", "type": "transaction",
                          "entry": [entry("completed")]}))
    .await
    .unwrap();
    let issues = expect_outcome(res, 422).await;
    names_both(
        &issues,
        "Bundle.entry[0].resource.status",
        "requested",
        "completed",
    );
    // A batch answers per entry: the illegal move 422, the legal one 200.
    let res = post(json!({"resourceType": "Bundle", "type": "batch",
                          "entry": [entry("completed"), entry("accepted")]}))
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let response = &body["entry"][0]["response"];
    assert!(
        response["status"].as_str().unwrap().starts_with("422"),
        "{body}"
    );
    names_both(
        response["outcome"]["issue"].as_array().unwrap(),
        "Bundle.entry[0].resource.status",
        "requested",
        "completed",
    );
    assert!(body["entry"][1]["response"]["status"]
        .as_str()
        .unwrap()
        .starts_with("200"));
    let accepted = current(&app, &format!("Task/{id}")).await;
    assert_eq!(accepted["status"], "accepted");
    // Without ifMatch: 412 naming the entry's ifMatch.
    let mut unversioned = entry("in-progress");
    unversioned["request"]
        .as_object_mut()
        .unwrap()
        .remove("ifMatch");
    let res = post(json!({"resourceType": "Bundle", "type": "batch", "entry": [unversioned]}))
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    let response = &body["entry"][0]["response"];
    assert!(
        response["status"].as_str().unwrap().starts_with("412"),
        "{body}"
    );
    assert!(
        has_issue(
            response["outcome"]["issue"].as_array().unwrap(),
            "required",
            Some("Bundle.entry[0].request.ifMatch")
        ),
        "{body}"
    );
    // A closed Task moves no more.
    let rejected_sr = refer(&app, &today()).await.0;
    let task = the_task(&app, &rejected_sr).await;
    let rejected = step(&app, OWNER, &task, "rejected", None, Some("Vol")).await;
    let res = put_task(&app, Some(OWNER), &moved(&rejected, "accepted", None, None)).await;
    names_both(
        &expect_outcome(res, 422).await,
        "Task.status",
        "rejected",
        "accepted",
    );
    // A stale If-Match is a version conflict: 412, as before.
    let res = put_task(
        &app,
        Some(OWNER),
        &moved(&requested, "received", None, None),
    )
    .await;
    let issues = expect_outcome(res, 412).await;
    assert!(has_issue(&issues, "conflict", None), "{issues:?}");
    // Nothing of the refusals was stored: created, accepted.
    let history = current(&app, &format!("Task/{id}/_history")).await;
    assert_eq!(history["entry"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn direct_moves_and_the_contact_deadline_on_sqlite() {
    direct_moves_and_the_contact_deadline(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn direct_moves_and_the_contact_deadline_on_postgres() {
    direct_moves_and_the_contact_deadline(Backend::Postgres).await;
}

/// The deadline is about reaching the patient: a direct rejection closes the Task (the
/// tag goes), a direct acceptance alone does not meet it (the tag stays), an
/// acceptance reporting contact does. A Task a coordinator created is watched too.
async fn direct_moves_and_the_contact_deadline(backend: Backend) {
    let Some((app, clock)) = spawn_on_clock(backend).await else {
        return;
    };
    load_sample(&app).await;
    let mut srs = Vec::new();
    for _ in 0..3 {
        srs.push(refer(&app, &today()).await.0);
    }
    // A referral whose routed Task was deleted gets one from the coordinator.
    let (manual_sr, requester) = refer(&app, &today()).await;
    let routed = the_task(&app, &manual_sr).await;
    let res = app
        .request(
            Method::DELETE,
            &format!("Task/{}", routed["id"].as_str().unwrap()),
        )
        .header("X-Acting-Party", "coordinator")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let mut manual = routed.clone();
    for member in ["id", "meta", "extension", "note", "lastModified"] {
        manual.as_object_mut().unwrap().remove(member);
    }
    manual["requester"] = json!({"reference": requester});
    let res = app
        .request(Method::POST, "Task")
        .header("Content-Type", FHIR_JSON)
        .header("X-Acting-Party", "coordinator")
        .body(manual.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    srs.push(manual_sr);

    clock.advance(Duration::from_secs(15 * 86_400));
    let mut tagged = Vec::new();
    for sr in &srs {
        let mut waited = 0;
        let task = loop {
            let t = the_task(&app, sr).await;
            if is_overdue(&t) || waited > 100 {
                break t;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            waited += 1;
        };
        assert!(is_overdue(&task), "{task}");
        tagged.push(task);
    }
    let rejected = step(&app, OWNER, &tagged[0], "rejected", None, Some("Vol")).await;
    assert!(!is_overdue(&rejected), "{rejected}");
    let accepted = step(&app, OWNER, &tagged[1], "accepted", None, None).await;
    assert!(is_overdue(&accepted), "{accepted}");
    let contacted = step(
        &app,
        OWNER,
        &tagged[2],
        "accepted",
        Some("contact-made"),
        None,
    )
    .await;
    assert!(!is_overdue(&contacted), "{contacted}");
    let manual = step(
        &app,
        OWNER,
        &tagged[3],
        "accepted",
        Some("intake-planned"),
        None,
    )
    .await;
    assert!(!is_overdue(&manual), "{manual}");
}

async fn the_capability_statement_says_where_the_hub_is_stricter(app: TestApp) {
    let cs = current(&app, "metadata").await;
    let task = cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Task")
        .unwrap();
    let doc = task["documentation"].as_str().unwrap();
    for said in [
        "received is optional",
        "requested -> received | accepted | rejected",
        "422, issue code business-rule",
        "Stricter than R4",
        "Creation is stricter too",
        "only as a coordinator or as the referral's requester",
    ] {
        assert!(doc.contains(said), "{said}: {doc}");
    }
}
