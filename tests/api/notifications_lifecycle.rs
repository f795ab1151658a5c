//! Notifications over a Subscription's life: re-activation after an error, the retry
//! horizon, heartbeats, and the unroutable and ServiceRequest-status topics.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{load_sample, refer, spawn, step, the_task, Backend, TestApp};
use crate::notifications::{numbers, subscribe, subscription, wait_for_status, WAIT};
use crate::receiver::{Mode, Receiver};

/// A failed handshake sets `error`; events are still recorded, and re-activating
/// (status `requested`) handshakes again and delivers them, in order.
async fn reactivation_resumes_where_it_stopped(app: TestApp) {
    load_sample(&app).await;
    let rx = Receiver::start().await;
    rx.set_mode(Mode::Fail(500));
    let res = app
        .post("Subscription", &subscription(&rx.url, None, "id-only"))
        .await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let failed = wait_for_status(&app, &id, "error").await;
    assert!(
        failed["error"].as_str().unwrap().contains("500"),
        "{failed}"
    );
    refer(&app, "2026-11-20").await;
    refer(&app, "2026-11-20").await;
    rx.set_mode(Mode::Accept);
    let mut again = failed.clone();
    again["status"] = json!("requested");
    assert_eq!(
        app.put(&format!("Subscription/{id}"), &again)
            .await
            .status(),
        200
    );
    let active = wait_for_status(&app, &id, "active").await;
    assert!(active.get("error").is_none(), "{active}");
    let got = rx.wait_until(WAIT, |r| numbers(r).len() >= 2).await;
    assert_eq!(numbers(&got), vec![1, 2]);
}

/// A Subscription whose endpoint keeps failing beyond the retry horizon goes to
/// `error`; an idle one with a heartbeat period gets heartbeats.
async fn retry_horizon_and_heartbeats(app: TestApp) {
    load_sample(&app).await;
    let rx = Receiver::start().await;
    let id = subscribe(&app, &subscription(&rx.url, None, "id-only")).await;
    rx.set_mode(Mode::Fail(503));
    refer(&app, "2026-11-20").await;
    let failed = wait_for_status(&app, &id, "error").await;
    assert!(
        failed["error"].as_str().unwrap().contains("retry horizon"),
        "{failed}"
    );
    let beat = Receiver::start().await;
    let mut body = subscription(&beat.url, None, "empty");
    body["channel"]["extension"] = json!([{
        "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period",
        "valueUnsignedInt": 1
    }]);
    subscribe(&app, &body).await;
    beat.wait_until(WAIT, |r| {
        r.iter().filter(|x| x.kind() == "heartbeat").count() >= 2
    })
    .await;
}

#[tokio::test]
async fn retry_horizon_and_heartbeats_on_sqlite() {
    let app = spawn(Backend::Sqlite, |s| {
        s.notification_retry_horizon = Duration::from_secs(2);
    })
    .await
    .unwrap();
    retry_horizon_and_heartbeats(app).await;
}

#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn retry_horizon_and_heartbeats_on_postgres() {
    let app = spawn(Backend::Postgres, |s| {
        s.notification_retry_horizon = Duration::from_secs(2);
    })
    .await
    .unwrap();
    retry_horizon_and_heartbeats(app).await;
}

/// The other two topics: a referral that became unroutable reaches the coordinators'
/// Subscription; a ServiceRequest's status change (the requester cancels, the
/// ServiceRequest is revoked) reaches a Subscription filtered on its `_id`.
async fn unroutable_and_service_request_topics(app: TestApp) {
    load_sample(&app).await;
    let coordinators = Receiver::start().await;
    let mut body = subscription(&coordinators.url, None, "id-only");
    body["criteria"] = json!("https://wor-hub.nl/fhir/SubscriptionTopic/unroutable");
    subscribe(&app, &body).await;
    // Routed: no event for the coordinators.
    let (sr, practitioner) = refer(&app, "2026-11-20").await;
    // No address: unroutable.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001",
         "resource": {"resourceType": "Patient", "birthDate": "1959-04-02"},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                      "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000001"}},
         "request": {"method": "POST", "url": "ServiceRequest"}}]});
    let res = app.post("", &bundle).await;
    assert_eq!(res.status(), 200);
    let response: Value = res.json().await.unwrap();
    let unroutable_sr = response["entry"][1]["response"]["location"]
        .as_str()
        .unwrap()
        .split('/')
        .nth_back(2)
        .unwrap()
        .to_owned();
    let unroutable_task = the_task(&app, &unroutable_sr).await;
    let got = coordinators
        .wait_until(WAIT, |r| !numbers(r).is_empty())
        .await;
    assert_eq!(numbers(&got), vec![1]);
    let note = got
        .iter()
        .find(|r| r.kind() == "event-notification")
        .unwrap();
    assert_eq!(
        note.foci(),
        vec![format!(
            "{}/Task/{}",
            app.base,
            unroutable_task["id"].as_str().unwrap()
        )]
    );

    let gp = Receiver::start().await;
    let mut body = subscription(
        &gp.url,
        Some(&format!("ServiceRequest?_id={sr}")),
        "full-resource",
    );
    body["criteria"] = json!("https://wor-hub.nl/fhir/SubscriptionTopic/service-request-status");
    subscribe(&app, &body).await;
    let task = the_task(&app, &sr).await;
    step(
        &app,
        &practitioner,
        &task,
        "cancelled",
        None,
        Some("patient moved"),
    )
    .await;
    let got = gp.wait_until(WAIT, |r| !numbers(r).is_empty()).await;
    assert_eq!(numbers(&got), vec![1]);
    let note = got
        .iter()
        .find(|r| r.kind() == "event-notification")
        .unwrap();
    assert_eq!(note.body["entry"][1]["resource"]["status"], "revoked");
    // Later changes that leave the status alone are not events of this topic.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(numbers(&gp.received()), vec![1]);
    assert_eq!(numbers(&coordinators.received()), vec![1]);
}

crate::backend_tests!(
    unroutable_and_service_request_topics,
    reactivation_resumes_where_it_stopped,
);

/// An instance that dies while it delivers (SIGKILL, its receiver holding the request)
/// leaves a lease; once it expires (`--notification-lease`), the next instance on the
/// database delivers the event. Nothing is lost.
async fn a_crashed_instances_delivery_is_taken_over(backend: Backend) {
    let (url, _dir) = crate::helpers::fresh_database(backend).unwrap();
    let db = std::path::Path::new(&url);
    // The fixture's referral was authored on 2026-11-20: with the default contact
    // deadline (14 days) its Task turns overdue from 2026-12-04 09:00 UTC, and the
    // overdue marker's new version is a second event. A deadline far away keeps the one.
    let flags = [
        "--notification-lease",
        "2s",
        "--contact-deadline",
        "3650days",
    ];
    let client = reqwest::Client::new();
    let rx = Receiver::start().await;
    let first = crate::cli::Server::start_with(db, &flags);
    let res = client
        .post(format!("{}/Subscription", first.base))
        .header("Content-Type", "application/fhir+json")
        .body(subscription(&rx.url, None, "id-only").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    rx.wait_until(WAIT, |r| r.iter().any(|x| x.kind() == "handshake"))
        .await;
    rx.set_mode(Mode::Hold(Duration::from_secs(60)));
    let referral = include_str!("../fixtures/referral-transaction.json");
    let res = client
        .post(&first.base)
        .header("Content-Type", "application/fhir+json")
        .body(referral)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    rx.wait_until(WAIT, |_| rx.holding() == 1).await;
    first.kill();
    rx.set_mode(Mode::Accept);
    let second = crate::cli::Server::start_with(db, &flags);
    let got = rx.wait_until(WAIT, |r| numbers(r) == vec![1]).await;
    assert_eq!(numbers(&got), vec![1]);
    second.kill();
}

#[tokio::test]
async fn a_crashed_instances_delivery_is_taken_over_on_sqlite() {
    a_crashed_instances_delivery_is_taken_over(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn a_crashed_instances_delivery_is_taken_over_on_postgres() {
    a_crashed_instances_delivery_is_taken_over(Backend::Postgres).await;
}
