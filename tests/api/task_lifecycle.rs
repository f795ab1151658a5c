//! The referral workflow, continued: rerouting after a rejection, cancellation by the
//! referrer, Bundle entries, deletion, closed mode and the contact deadline.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{
    add_fallback, current, expect_outcome, has_issue, is_overdue, load_sample, moved, put_task,
    refer, spawn, spawn_on_clock, step, tasks_for, the_task, Backend, TestApp, FALLBACK, FLAG,
    OWNER,
};

backend_tests!(
    a_rejection_reroutes_to_the_fallback_then_to_the_coordinator,
    the_referrer_cancels_at_once_before_work_and_by_request_after,
    bundle_entries_follow_the_same_rules,
    only_a_coordinator_deletes_a_task,
);

async fn a_rejection_reroutes_to_the_fallback_then_to_the_coordinator(app: TestApp) {
    load_sample(&app).await;
    add_fallback(&app).await;
    let (sr, _) = refer(&app, "2026-11-20").await;
    let first = the_task(&app, &sr).await;
    assert_eq!(first["owner"]["reference"], OWNER);
    let received = step(&app, OWNER, &first, "received", None, None).await;
    step(
        &app,
        OWNER,
        &received,
        "rejected",
        None,
        Some("Geen capaciteit tot maart"),
    )
    .await;

    let tasks = tasks_for(&app, &sr).await;
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    let second = tasks.iter().find(|t| t["status"] == "requested").unwrap();
    assert_eq!(second["owner"]["reference"], FALLBACK);
    assert_eq!(
        second["partOf"][0]["reference"],
        format!("Task/{}", first["id"].as_str().unwrap())
    );
    let record = second.to_string();
    assert!(record.contains("Geen capaciteit tot maart"), "{record}");
    assert!(record.contains("Organization/tom-in-de-buurt rejected this referral"));
    // The referral stays active and unchanged.
    let referral = current(&app, &format!("ServiceRequest/{sr}")).await;
    assert_eq!(referral["status"], "active");
    assert_eq!(referral["meta"]["versionId"], "1");

    // The fallback rejects too: nobody is left, the coordinator gets the referral.
    let received = step(&app, FALLBACK, second, "received", None, None).await;
    step(
        &app,
        FALLBACK,
        &received,
        "rejected",
        None,
        Some("Buiten ons werkgebied"),
    )
    .await;
    let tasks = tasks_for(&app, &sr).await;
    assert_eq!(tasks.len(), 3);
    let third = tasks.iter().find(|t| t["status"] == "requested").unwrap();
    assert!(third.get("owner").is_none(), "{third}");
    assert_eq!(third["businessStatus"]["coding"][0]["code"], "unroutable");
    assert_eq!(third["statusReason"]["coding"][0]["code"], "all-rejected");
    let unassigned = current(&app, "Task?owner:missing=true").await;
    assert_eq!(unassigned["total"], 1);
    let referral = current(&app, &format!("ServiceRequest/{sr}")).await;
    assert_eq!(referral["status"], "active");
    // The coordinator assigns an owner.
    let mut assigned = third.clone();
    assigned["owner"] = json!({"reference": OWNER});
    let res = put_task(&app, Some("coordinator"), &assigned).await;
    assert_eq!(res.status(), 200);
    let assigned: Value = res.json().await.unwrap();
    assert!(assigned.get("businessStatus").is_none(), "{assigned}");
    // A coordinator does not do the organisation's work.
    let res = put_task(
        &app,
        Some("coordinator"),
        &moved(&assigned, "received", None, None),
    )
    .await;
    let issues = expect_outcome(res, 422).await;
    assert!(has_issue(&issues, "business-rule", Some("Task.status")));
}

async fn the_referrer_cancels_at_once_before_work_and_by_request_after(app: TestApp) {
    load_sample(&app).await;
    // Before in-progress: at once.
    let (sr, requester) = refer(&app, "2026-11-20").await;
    let task = the_task(&app, &sr).await;
    let accepted = step(
        &app,
        OWNER,
        &step(&app, OWNER, &task, "received", None, None).await,
        "accepted",
        None,
        None,
    )
    .await;
    let cancelled = step(
        &app,
        &requester,
        &accepted,
        "cancelled",
        None,
        Some("Patiënt verhuisd"),
    )
    .await;
    assert_eq!(cancelled["status"], "cancelled");
    let referral = current(&app, &format!("ServiceRequest/{sr}")).await;
    assert_eq!(referral["status"], "revoked");

    // From in-progress: a request the organisation confirms.
    let (sr, requester) = refer(&app, "2026-11-21").await;
    let task = the_task(&app, &sr).await;
    let r = step(&app, OWNER, &task, "received", None, None).await;
    let a = step(&app, OWNER, &r, "accepted", None, None).await;
    let working = step(
        &app,
        OWNER,
        &a,
        "in-progress",
        Some("activity-started"),
        None,
    )
    .await;
    let asked = step(
        &app,
        &requester,
        &working,
        "cancelled",
        None,
        Some("Patiënt wil stoppen"),
    )
    .await;
    assert_eq!(asked["status"], "in-progress");
    assert_eq!(
        asked["businessStatus"]["coding"][0]["code"],
        "cancellation-requested"
    );
    assert!(asked.to_string().contains("Patiënt wil stoppen"));
    let referral = current(&app, &format!("ServiceRequest/{sr}")).await;
    assert_eq!(referral["status"], "active");
    // The organisation confirms.
    let confirmed = step(
        &app,
        OWNER,
        &asked,
        "cancelled",
        None,
        Some("Op verzoek van de huisarts"),
    )
    .await;
    assert_eq!(confirmed["status"], "cancelled");
    let referral = current(&app, &format!("ServiceRequest/{sr}")).await;
    assert_eq!(referral["status"], "revoked");
    assert_eq!(referral["meta"]["versionId"], "2");
}

async fn bundle_entries_follow_the_same_rules(app: TestApp) {
    load_sample(&app).await;
    let (sr, _) = refer(&app, "2026-11-20").await;
    let task = the_task(&app, &sr).await;
    let id = task["id"].as_str().unwrap();
    let entry = |status: &str, if_match: Option<&str>| {
        let mut request = json!({"method": "PUT", "url": format!("Task/{id}")});
        if let Some(v) = if_match {
            request["ifMatch"] = json!(v);
        }
        json!({"resource": moved(&task, status, None, None), "request": request})
    };
    // A transaction with an illegal move fails as a whole.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction",
                        "entry": [entry("completed", Some("W/\"1\""))]});
    let res = app.post_as("", OWNER, &bundle).await;
    let issues = expect_outcome(res, 422).await;
    assert!(
        has_issue(
            &issues,
            "business-rule",
            Some("Bundle.entry[0].resource.status")
        ),
        "{issues:?}"
    );
    // A batch entry without ifMatch fails on its own; a legal one lands.
    let bundle = json!({"resourceType": "Bundle", "type": "batch",
                        "entry": [entry("received", None), entry("received", Some("W/\"1\""))]});
    let res = app.post_as("", OWNER, &bundle).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["entry"][0]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("412"),
        "{body}"
    );
    assert!(
        body["entry"][1]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("200"),
        "{body}"
    );
    let task = current(&app, &format!("Task/{id}")).await;
    assert_eq!(task["status"], "received");
}

async fn only_a_coordinator_deletes_a_task(app: TestApp) {
    load_sample(&app).await;
    let (sr, requester) = refer(&app, "2026-11-20").await;
    let task = the_task(&app, &sr).await;
    let path = format!("Task/{}", task["id"].as_str().unwrap());
    for party in [OWNER, requester.as_str()] {
        let res = app
            .request(Method::DELETE, &path)
            .header("X-Acting-Party", party)
            .send()
            .await
            .unwrap();
        let issues = expect_outcome(res, 403).await;
        assert!(has_issue(&issues, "forbidden", Some("X-Acting-Party")));
    }
    assert_eq!(app.get(&path).await.status(), 200);
    let res = app
        .request(Method::DELETE, &path)
        .header("X-Acting-Party", "coordinator")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.get(&path).await.status(), 410);
}

/// Without open mode, a Task update must name its party even on loopback.
#[tokio::test]
async fn closed_mode_requires_the_party_header() {
    let app = spawn(Backend::Sqlite, |s| s.open_mode = false)
        .await
        .expect("app");
    load_sample(&app).await;
    let (sr, _) = refer(&app, "2026-11-20").await;
    let task = the_task(&app, &sr).await;
    let res = put_task(&app, None, &moved(&task, "received", None, None)).await;
    let issues = expect_outcome(res, 403).await;
    assert!(has_issue(&issues, "forbidden", Some("X-Acting-Party")));
    let res = put_task(&app, Some(OWNER), &moved(&task, "received", None, None)).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn overdue_marking_on_sqlite() {
    overdue_marking(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn overdue_marking_on_postgres() {
    overdue_marking(Backend::Postgres).await;
}

/// The contact deadline, measured on a clock the test moves forward.
async fn overdue_marking(backend: Backend) {
    let Some((app, clock)) = spawn_on_clock(backend).await else {
        return;
    };
    load_sample(&app).await;
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let (waiting_sr, _) = refer(&app, &today).await;
    let (contacted_sr, _) = refer(&app, &today).await;
    let contacted = the_task(&app, &contacted_sr).await;
    let contacted = step(
        &app,
        OWNER,
        &contacted,
        "received",
        Some("contact-made"),
        None,
    )
    .await;
    // Thirteen days on: nothing is overdue yet.
    clock.advance(Duration::from_secs(13 * 86_400));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!is_overdue(&the_task(&app, &waiting_sr).await));
    // Fifteen days on: the job tags the Task that still waits for contact.
    clock.advance(Duration::from_secs(2 * 86_400));
    let mut waited = 0;
    let waiting = loop {
        let t = the_task(&app, &waiting_sr).await;
        if is_overdue(&t) || waited > 100 {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    };
    assert!(is_overdue(&waiting), "{waiting}");
    assert_eq!(waiting["meta"]["versionId"], "2");
    assert!(!is_overdue(&the_task(&app, &contacted_sr).await));
    assert_eq!(
        the_task(&app, &contacted_sr).await["meta"]["versionId"],
        contacted["meta"]["versionId"]
    );
    // Searchable by the tag.
    let found = current(&app, &format!("Task?_tag={FLAG}|overdue")).await;
    assert_eq!(found["total"], 1);
    assert_eq!(found["entry"][0]["resource"]["id"], waiting["id"]);
    // Already tagged: later rounds leave it alone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(the_task(&app, &waiting_sr).await["meta"]["versionId"], "2");
    // Contact made: the tag goes with the organisation's update.
    let mut reached = moved(&waiting, "received", Some("contact-made"), None);
    reached["meta"] = waiting["meta"].clone();
    let res = put_task(&app, Some(OWNER), &reached).await;
    assert_eq!(res.status(), 200);
    let reached: Value = res.json().await.unwrap();
    assert!(!is_overdue(&reached), "{reached}");
}
