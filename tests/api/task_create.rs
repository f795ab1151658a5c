//! Tasks created by clients: only a coordinator or the referral's requester creates
//! one, and only as the hub would (a `requested` order for an active referral without
//! an open Task), on every path: POST, update-as-create, transaction and batch entries.

use reqwest::{Method, Response};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{current, load_sample, put_task, refer, step, tasks_for, the_task, OWNER};
use crate::helpers::{expect_outcome, has_issue, spawn, Backend, TestApp, FHIR_JSON};

backend_tests!(
    a_second_task_for_a_routed_referral_is_refused_on_every_path,
    only_a_coordinator_or_the_referrals_requester_creates_a_task,
    a_created_task_follows_the_workflow_like_a_routed_one,
    each_creation_rule_names_its_element,
);

/// Sends `body` as `party` (no header: open mode, any party).
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    party: Option<&str>,
    body: &Value,
) -> Response {
    let mut req = app
        .request(method, path)
        .header("Content-Type", FHIR_JSON)
        .body(body.to_string());
    if let Some(p) = party {
        req = req.header("X-Acting-Party", p);
    }
    req.send().await.unwrap()
}

/// A Task as the hub would create it for referral `sr`.
fn task_body(sr: &str, patient: &str, requester: &str, owner: &str) -> Value {
    json!({
        "resourceType": "Task", "status": "requested", "intent": "order",
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
        "focus": {"reference": format!("ServiceRequest/{sr}")},
        "for": {"reference": patient},
        "requester": {"reference": requester},
        "owner": {"reference": owner},
        "authoredOn": time::OffsetDateTime::now_utc().date().to_string(),
    })
}

/// A Bundle of one entry writing `task` with `method` to `url`.
fn bundle(kind: &str, method: &str, url: &str, task: &Value) -> Value {
    let mut task = task.clone();
    if method == "PUT" {
        if let Some(id) = url.strip_prefix("Task/") {
            task["id"] = json!(id);
        }
    }
    json!({"resourceType": "Bundle", "type": kind,
           "entry": [{"resource": task, "request": {"method": method, "url": url}}]})
}

/// A routed referral: (ServiceRequest id, `Patient/<id>`, requester `Practitioner/<id>`).
async fn referral(app: &TestApp) -> (String, String, String) {
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let (sr, requester) = refer(app, &today).await;
    let body = current(app, &format!("ServiceRequest/{sr}")).await;
    let patient = body["subject"]["reference"].as_str().unwrap().to_owned();
    (sr, patient, requester)
}

/// A routed referral whose Task a coordinator deleted (created in error): active,
/// without an open Task.
async fn referral_without_task(app: &TestApp) -> (String, String, String) {
    let (sr, patient, requester) = referral(app).await;
    let task = the_task(app, &sr).await;
    let res = app
        .request(
            Method::DELETE,
            &format!("Task/{}", task["id"].as_str().unwrap()),
        )
        .header("X-Acting-Party", "coordinator")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(tasks_for(app, &sr).await.is_empty());
    (sr, patient, requester)
}

/// The issue's case: a second, already completed Task with an owner for a routed
/// referral. Refused with 422 on every path, for every party; nothing stored.
async fn a_second_task_for_a_routed_referral_is_refused_on_every_path(app: TestApp) {
    load_sample(&app).await;
    let (sr, patient, requester) = referral(&app).await;
    let mut task = task_body(&sr, &patient, &requester, OWNER);
    task["status"] = json!("completed");
    let versions = app.version_count("Task").await;
    let refused = |issues: &[Value], prefix: &str| {
        for element in ["status", "focus"] {
            let at = format!("{prefix}{element}");
            assert!(
                has_issue(issues, "business-rule", Some(&at)),
                "{at}: {issues:?}"
            );
        }
        let text = issues
            .iter()
            .map(|i| i["diagnostics"].to_string())
            .collect::<String>();
        assert!(text.contains("already has an open Task"), "{text}");
    };
    for party in [None, Some("coordinator")] {
        let res = send(&app, Method::POST, "Task", party, &task).await;
        refused(&expect_outcome(res, 422).await, "Task.");
        let mut with_id = task.clone();
        with_id["id"] = json!("second-task");
        let res = send(&app, Method::PUT, "Task/second-task", party, &with_id).await;
        refused(&expect_outcome(res, 422).await, "Task.");
        for (method, url) in [
            ("POST", "Task"),
            ("PUT", "Task/second-task"),
            ("PUT", "Task?identifier=urn:example|none"),
        ] {
            let b = bundle("transaction", method, url, &task);
            let res = send(&app, Method::POST, "", party, &b).await;
            refused(&expect_outcome(res, 422).await, "Bundle.entry[0].resource.");
            let b = bundle("batch", method, url, &task);
            let res = send(&app, Method::POST, "", party, &b).await;
            assert_eq!(res.status(), 200);
            let body: Value = res.json().await.unwrap();
            let response = &body["entry"][0]["response"];
            assert!(
                response["status"].as_str().unwrap().starts_with("422"),
                "{body}"
            );
            refused(
                response["outcome"]["issue"].as_array().unwrap(),
                "Bundle.entry[0].resource.",
            );
        }
    }
    // Even as requested: the referral has its open Task.
    task["status"] = json!("requested");
    let res = send(&app, Method::POST, "Task", Some("coordinator"), &task).await;
    let issues = expect_outcome(res, 422).await;
    assert!(has_issue(&issues, "business-rule", Some("Task.focus")));
    assert!(!has_issue(&issues, "business-rule", Some("Task.status")));
    assert_eq!(app.version_count("Task").await, versions, "nothing stored");
    assert_eq!(tasks_for(&app, &sr).await.len(), 1);
}

/// The welfare organisation works on the Task it was given; it creates none. A
/// coordinator (manual routing) and the referral's own requester (a GP system or
/// gateway) may.
async fn only_a_coordinator_or_the_referrals_requester_creates_a_task(app: TestApp) {
    load_sample(&app).await;
    let (sr, patient, requester) = referral_without_task(&app).await;
    let task = task_body(&sr, &patient, &requester, OWNER);
    for party in [OWNER, "Practitioner/someone-else"] {
        let forbidden = |issues: &[Value]| {
            assert!(
                has_issue(issues, "forbidden", Some("X-Acting-Party")),
                "{party}: {issues:?}"
            );
        };
        let res = send(&app, Method::POST, "Task", Some(party), &task).await;
        forbidden(&expect_outcome(res, 403).await);
        let mut with_id = task.clone();
        with_id["id"] = json!("by-the-owner");
        let res = send(
            &app,
            Method::PUT,
            "Task/by-the-owner",
            Some(party),
            &with_id,
        )
        .await;
        forbidden(&expect_outcome(res, 403).await);
        let b = bundle("transaction", "POST", "Task", &task);
        let res = send(&app, Method::POST, "", Some(party), &b).await;
        forbidden(&expect_outcome(res, 403).await);
        let b = bundle("batch", "PUT", "Task/by-the-owner", &task);
        let res = send(&app, Method::POST, "", Some(party), &b).await;
        let body: Value = res.json().await.unwrap();
        assert!(
            body["entry"][0]["response"]["status"]
                .as_str()
                .unwrap()
                .starts_with("403"),
            "{body}"
        );
    }
    assert!(tasks_for(&app, &sr).await.is_empty());
    // The referrer sends the Task itself (e.g. a gateway choosing the organisation).
    let res = send(&app, Method::POST, "Task", Some(&requester), &task).await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    assert_eq!(tasks_for(&app, &sr).await.len(), 1);
}

/// A coordinator creates the Task for a referral that has none (POST, update-as-create,
/// a batch entry); the owner works on it as on a routed one, accepting straight from
/// requested, and the referral follows.
async fn a_created_task_follows_the_workflow_like_a_routed_one(app: TestApp) {
    load_sample(&app).await;
    let (sr, patient, requester) = referral_without_task(&app).await;
    let res = send(
        &app,
        Method::POST,
        "Task",
        Some("coordinator"),
        &task_body(&sr, &patient, &requester, OWNER),
    )
    .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let created: Value = res.json().await.unwrap();
    let accepted = step(&app, OWNER, &created, "accepted", None, None).await;
    let working = step(
        &app,
        OWNER,
        &accepted,
        "in-progress",
        Some("intake-held"),
        None,
    )
    .await;
    // The requester the Task names keeps its rights: it asks to cancel.
    let asked = step(
        &app,
        &requester,
        &working,
        "cancelled",
        None,
        Some("Verhuisd"),
    )
    .await;
    assert_eq!(
        asked["businessStatus"]["coding"][0]["code"],
        "cancellation-requested"
    );
    step(&app, OWNER, &asked, "cancelled", None, Some("Op verzoek")).await;
    let referral = current(&app, &format!("ServiceRequest/{sr}")).await;
    assert_eq!(referral["status"], "revoked");
    // Closed, and the referral revoked: no new Task for it.
    let res = send(
        &app,
        Method::POST,
        "Task",
        Some("coordinator"),
        &task_body(&sr, &patient, &requester, OWNER),
    )
    .await;
    let issues = expect_outcome(res, 422).await;
    assert!(has_issue(&issues, "business-rule", Some("Task.focus")));

    // Update-as-create with the coordinator's id.
    let (sr, patient, requester) = referral_without_task(&app).await;
    let mut task = task_body(&sr, &patient, &requester, OWNER);
    task["id"] = json!("manual-1");
    let res = send(
        &app,
        Method::PUT,
        "Task/manual-1",
        Some("coordinator"),
        &task,
    )
    .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let created = current(&app, "Task/manual-1").await;
    // The owner rejects straight from requested: re-routed like a routed Task.
    step(&app, OWNER, &created, "rejected", None, Some("Vol")).await;
    let tasks = tasks_for(&app, &sr).await;
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    let next = tasks.iter().find(|t| t["status"] == "requested").unwrap();
    assert_eq!(next["partOf"][0]["reference"], "Task/manual-1");

    // A batch entry.
    let (sr, patient, requester) = referral_without_task(&app).await;
    let b = bundle(
        "batch",
        "POST",
        "Task",
        &task_body(&sr, &patient, &requester, OWNER),
    );
    let res = send(&app, Method::POST, "", Some("coordinator"), &b).await;
    let body: Value = res.json().await.unwrap();
    assert!(
        body["entry"][0]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("201"),
        "{body}"
    );
    assert_eq!(the_task(&app, &sr).await["owner"]["reference"], OWNER);
}

/// Every rule a new Task breaks is one `business-rule` issue naming its element.
async fn each_creation_rule_names_its_element(app: TestApp) {
    load_sample(&app).await;
    let (sr, _patient, _requester) = referral_without_task(&app).await;
    let other = app.create(&json!({"resourceType": "Patient"})).await;
    let closed = json!({"resourceType": "Organization", "id": "gesloten", "active": false});
    assert_eq!(
        app.put("Organization/gesloten", &closed).await.status(),
        201
    );
    let mut task = task_body(
        &sr,
        &format!("Patient/{}", other["id"].as_str().unwrap()),
        OWNER,
        "Organization/gesloten",
    );
    task["status"] = json!("in-progress");
    task["intent"] = json!("plan");
    task["businessStatus"] = json!({"coding": [{"system": "https://wor-hub.nl/fhir/CodeSystem/task-business-status", "code": "unroutable"}]});
    task.as_object_mut().unwrap().remove("authoredOn");
    let res = send(&app, Method::POST, "Task", Some("coordinator"), &task).await;
    let issues = expect_outcome(res, 422).await;
    for element in [
        "status",
        "intent",
        "authoredOn",
        "businessStatus",
        "for",
        "requester",
        "owner",
    ] {
        assert!(
            has_issue(&issues, "business-rule", Some(&format!("Task.{element}"))),
            "{element}: {issues:?}"
        );
    }
    assert_eq!(issues.len(), 7, "{issues:?}");
    // The focus must be a stored ServiceRequest; the owner a stored Organization.
    let mut task = task_body(
        "nowhere",
        "Patient/x",
        "Practitioner/x",
        "Organization/nobody",
    );
    task["focus"] = json!({"reference": "Patient/x"});
    let res = send(&app, Method::POST, "Task", Some("coordinator"), &task).await;
    let issues = expect_outcome(res, 422).await;
    assert!(has_issue(&issues, "business-rule", Some("Task.focus")));
    assert!(has_issue(&issues, "business-rule", Some("Task.owner")));
    task["focus"] = json!({"reference": "ServiceRequest/nowhere"});
    let res = send(&app, Method::POST, "Task", Some("coordinator"), &task).await;
    let issues = expect_outcome(res, 422).await;
    assert!(issues.iter().any(|i| i["diagnostics"]
        .as_str()
        .unwrap()
        .contains("ServiceRequest/nowhere does not exist")));
    assert!(tasks_for(&app, &sr).await.is_empty());
}

/// Without open mode an unnamed request creates no Task, even on loopback.
#[tokio::test]
async fn closed_mode_requires_the_party_header_to_create() {
    let app = spawn(Backend::Sqlite, |s| s.open_mode = false)
        .await
        .expect("app");
    load_sample(&app).await;
    let (sr, patient, requester) = referral_without_task(&app).await;
    let task = task_body(&sr, &patient, &requester, OWNER);
    let res = send(&app, Method::POST, "Task", None, &task).await;
    let issues = expect_outcome(res, 403).await;
    assert!(has_issue(&issues, "forbidden", Some("X-Acting-Party")));
    let res = send(&app, Method::POST, "Task", Some("coordinator"), &task).await;
    assert_eq!(res.status(), 201);
    // A created Task is updated like any other.
    let created: Value = res.json().await.unwrap();
    let res = put_task(&app, Some(OWNER), &{
        let mut t = created.clone();
        t["status"] = json!("accepted");
        t
    })
    .await;
    assert_eq!(res.status(), 200);
}
