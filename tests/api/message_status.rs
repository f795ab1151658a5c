//! Referral-status messages: every Task change of a referral a sender sent by message
//! goes to the sender's registered Endpoint through the notification outbox (README
//! "Gateway intake", profiles/README-message-intake.md).

use std::time::Duration;

use serde_json::json;

use crate::backend_tests;
use crate::document_intake::referral;
use crate::helpers::{current, load_sample, step, the_task, TestApp};
use crate::message_intake::{message, process, register_endpoint, EVENTS};
use crate::receiver::{Mode, Receiver};

backend_tests!(status_changes_go_back_as_messages_in_order_with_retries);

async fn status_changes_go_back_as_messages_in_order_with_retries(app: TestApp) {
    load_sample(&app).await;
    let rx = Receiver::start().await;
    register_endpoint(&app, &rx.url, &["Authorization: Bearer his-inbox-token"]).await;
    let res = process(
        &app,
        &message("msg-s1", "referral-new", &rx.url, "HIS-2026-000340"),
    )
    .await;
    assert_eq!(res.status(), 200);
    let sr_id = referral(&app, "HIS-2026-000340").await;
    let task = the_task(&app, &sr_id).await;
    let owner = task["owner"]["reference"].as_str().unwrap().to_owned();

    let accepted = step(&app, &owner, &task, "accepted", None, None).await;
    let got = rx
        .wait_until(Duration::from_secs(15), |r| {
            r.iter().any(|m| m.answered == 200)
        })
        .await;
    let first = &got[0];
    assert_eq!(
        first.header("authorization"),
        Some("Bearer his-inbox-token")
    );
    assert!(first
        .header("content-type")
        .unwrap()
        .starts_with("application/fhir+json"));
    assert_eq!(first.body["type"], "message");
    let header = &first.body["entry"][0]["resource"];
    assert_eq!(header["eventCoding"]["system"], EVENTS);
    assert_eq!(header["eventCoding"]["code"], "referral-status");
    assert_eq!(header["response"]["identifier"], "msg-s1");
    assert_eq!(header["destination"][0]["endpoint"], rx.url.as_str());
    assert_eq!(first.body["entry"][1]["resource"]["status"], "accepted");
    assert_eq!(
        first.body["entry"][1]["resource"]["meta"]["versionId"],
        accepted["meta"]["versionId"]
    );
    assert_eq!(first.body["entry"][2]["resource"]["id"], sr_id.as_str());

    // The receiver fails: the message is retried with the same MessageHeader.id, and
    // the next status waits behind it.
    rx.set_mode(Mode::Fail(503));
    let started = step(&app, &owner, &accepted, "in-progress", None, None).await;
    rx.wait_until(Duration::from_secs(15), |r| {
        r.iter().any(|m| m.answered == 503)
    })
    .await;
    step(
        &app,
        &owner,
        &started,
        "on-hold",
        None,
        Some("Patiënt is ziek"),
    )
    .await;
    rx.set_mode(Mode::Accept);
    let got = rx
        .wait_until(Duration::from_secs(30), |r| {
            r.iter().filter(|m| m.answered == 200).count() >= 3
        })
        .await;
    let ok: Vec<_> = got.iter().filter(|m| m.answered == 200).collect();
    let statuses: Vec<&str> = ok
        .iter()
        .map(|m| m.body["entry"][1]["resource"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["accepted", "in-progress", "on-hold"]);
    let failed = got.iter().find(|m| m.answered == 503).unwrap();
    assert_eq!(
        failed.body["entry"][0]["resource"]["id"], ok[1].body["entry"][0]["resource"]["id"],
        "a retry is the same message"
    );
    assert_ne!(
        ok[0].body["entry"][0]["resource"]["id"],
        ok[1].body["entry"][0]["resource"]["id"]
    );
    // A note alone is no status news.
    let mut noted = current(&app, &format!("Task/{}", task["id"].as_str().unwrap())).await;
    noted["note"] = json!([{"text": "Gebeld, voicemail."}]);
    let res = crate::helpers::put_task(&app, Some(&owner), &noted).await;
    assert_eq!(res.status(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        rx.received().iter().filter(|m| m.answered == 200).count(),
        3
    );
}

/// A sender's endpoint that keeps failing past the retry horizon puts its Endpoint in
/// `error`; put back to `active`, delivery resumes with the message that failed.
async fn a_failing_endpoint_goes_to_error_and_resumes(app: TestApp) {
    load_sample(&app).await;
    let rx = Receiver::start().await;
    let endpoint_id = register_endpoint(&app, &rx.url, &[]).await;
    let res = process(
        &app,
        &message("msg-e1", "referral-new", &rx.url, "HIS-2026-000370"),
    )
    .await;
    assert_eq!(res.status(), 200);
    let task = the_task(&app, &referral(&app, "HIS-2026-000370").await).await;
    let owner = task["owner"]["reference"].as_str().unwrap().to_owned();
    rx.set_mode(Mode::Fail(500));
    step(&app, &owner, &task, "accepted", None, None).await;
    let path = format!("Endpoint/{endpoint_id}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let failed = loop {
        let e = current(&app, &path).await;
        if e["status"] == "error" {
            break e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {}",
            e["status"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    rx.set_mode(Mode::Accept);
    let mut active = failed.clone();
    active["status"] = json!("active");
    let res = app.put(&path, &active).await;
    assert_eq!(res.status(), 200);
    let got = rx
        .wait_until(Duration::from_secs(15), |r| {
            r.iter().any(|m| m.answered == 200)
        })
        .await;
    let ok = got.iter().find(|m| m.answered == 200).unwrap();
    assert_eq!(ok.body["entry"][1]["resource"]["status"], "accepted");
    assert_eq!(current(&app, &path).await["status"], "active");
}

#[tokio::test]
async fn a_failing_endpoint_goes_to_error_and_resumes_on_sqlite() {
    let app = crate::helpers::spawn(crate::helpers::Backend::Sqlite, |s| {
        s.notification_retry_horizon = Duration::from_secs(2);
    })
    .await
    .unwrap();
    a_failing_endpoint_goes_to_error_and_resumes(app).await;
}

#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn a_failing_endpoint_goes_to_error_and_resumes_on_postgres() {
    let app = crate::helpers::spawn(crate::helpers::Backend::Postgres, |s| {
        s.notification_retry_horizon = Duration::from_secs(2);
    })
    .await
    .unwrap();
    a_failing_endpoint_goes_to_error_and_resumes(app).await;
}
