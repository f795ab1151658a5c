//! Notifications end to end: Subscriptions (R4 backport form), the transactional
//! outbox and rest-hook delivery to real local HTTP receivers, on both databases.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{load_sample, refer, spawn, step, the_task, Backend, TestApp};
use crate::receiver::{Mode, Receiver};

pub const TASK_TOPIC: &str = "https://wor-hub.nl/fhir/SubscriptionTopic/task-change";
const FILTER: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria";
const PAYLOAD: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content";
const TOM: &str = "Organization/tom-in-de-buurt";
pub const WAIT: Duration = Duration::from_secs(30);

/// An R4 backport Subscription on the Task topic.
pub fn subscription(endpoint: &str, filter: Option<&str>, payload: &str) -> Value {
    let mut s = json!({
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Tasks for this organisation",
        "criteria": TASK_TOPIC,
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": PAYLOAD, "valueCode": payload}]}
        }
    });
    if let Some(f) = filter {
        s["_criteria"] = json!({"extension": [{"url": FILTER, "valueString": f}]});
    }
    s
}

/// Creates the Subscription and waits until the handshake made it active.
pub async fn subscribe(app: &TestApp, body: &Value) -> String {
    let res = app.post("Subscription", body).await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let created: Value = res.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    wait_for_status(app, &id, "active").await;
    id
}

/// Every event number `1..=n` exactly once, in order, over all notifications.
pub fn numbers(got: &[crate::receiver::Received]) -> Vec<i64> {
    got.iter()
        .filter(|r| r.answered == 200 && r.kind() == "event-notification")
        .flat_map(|r| r.event_numbers())
        .collect()
}

async fn a_new_referral_reaches_the_owner_and_no_one_else(app: TestApp) {
    load_sample(&app).await;
    let tom = Receiver::start().await;
    let other = Receiver::start().await;
    subscribe(
        &app,
        &subscription(&tom.url, Some(&format!("Task?owner={TOM}")), "id-only"),
    )
    .await;
    subscribe(
        &app,
        &subscription(
            &other.url,
            Some("Task?owner=Organization/go-voor-jeugd"),
            "id-only",
        ),
    )
    .await;
    assert_eq!(tom.received()[0].kind(), "handshake");
    let (sr, _) = refer(&app, "2026-11-20").await;
    let task = the_task(&app, &sr).await;
    let got = tom.wait_until(WAIT, |r| numbers(r) == vec![1]).await;
    let note = got
        .iter()
        .find(|r| r.kind() == "event-notification")
        .unwrap();
    assert_eq!(
        note.foci(),
        vec![format!(
            "{}/Task/{}",
            app.base,
            task["id"].as_str().unwrap()
        )]
    );
    // id-only: the focus entry names the Task and carries no resource (no patient data).
    assert_eq!(note.body["type"], "history");
    assert!(
        note.body["entry"][1].get("resource").is_none(),
        "{}",
        note.body
    );
    assert!(!String::from_utf8_lossy(&note.raw).contains("Alphen"));
    // The other organisation's Subscription heard nothing but its handshake. Its
    // events would be recorded in the same unit of work as Tom's: none exist.
    let status: Value = app
        .get(&format!(
            "Subscription/{}/$status",
            other_id(&app, &other.url).await
        ))
        .await
        .json()
        .await
        .unwrap();
    let params = &status["entry"][0]["resource"]["parameter"];
    let since = params
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "events-since-subscription-start")
        .unwrap();
    assert_eq!(since["valueString"], "0", "{status}");
    assert!(other.events().is_empty());
}

async fn other_id(app: &TestApp, endpoint: &str) -> String {
    let bundle: Value = app
        .get(&format!("Subscription?url={endpoint}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bundle["total"], 1, "{bundle}");
    bundle["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn a_status_change_reaches_the_referrer_with_the_task(app: TestApp) {
    load_sample(&app).await;
    let (sr, practitioner) = refer(&app, "2026-11-20").await;
    let gp = Receiver::start().await;
    subscribe(
        &app,
        &subscription(
            &gp.url,
            Some(&format!("Task?requester={practitioner}")),
            "full-resource",
        ),
    )
    .await;
    let task = the_task(&app, &sr).await;
    step(&app, TOM, &task, "received", None, None).await;
    let got = gp.wait_until(WAIT, |r| numbers(r) == vec![1]).await;
    let note = got
        .iter()
        .find(|r| r.kind() == "event-notification")
        .unwrap();
    let sent = &note.body["entry"][1]["resource"];
    assert_eq!(sent["resourceType"], "Task");
    assert_eq!(sent["id"], task["id"]);
    assert_eq!(sent["status"], "received");
    assert_eq!(sent["meta"]["versionId"], "2");
}

async fn a_receiver_down_for_a_while_gets_every_event_once_in_order(app: TestApp) {
    load_sample(&app).await;
    let rx = Receiver::start().await;
    let id = subscribe(
        &app,
        &subscription(&rx.url, Some(&format!("Task?owner={TOM}")), "id-only"),
    )
    .await;
    rx.set_mode(Mode::Fail(503));
    for _ in 0..3 {
        refer(&app, "2026-11-20").await;
    }
    // Some attempts fail meanwhile.
    rx.wait_until(WAIT, |r| r.iter().any(|x| x.answered == 503))
        .await;
    let failing: Value = app
        .get(&format!("Subscription/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(failing["status"], "active", "still retrying: {failing}");
    rx.set_mode(Mode::Accept);
    let got = rx
        .wait_until(Duration::from_secs(60), |r| numbers(r).len() >= 3)
        .await;
    assert_eq!(numbers(&got), vec![1, 2, 3], "in order, none twice");
    // More events go straight through.
    refer(&app, "2026-11-20").await;
    let got = rx.wait_until(WAIT, |r| numbers(r).len() >= 4).await;
    assert_eq!(numbers(&got), vec![1, 2, 3, 4]);

    // $events replays a gap: events 2 and 3, by number.
    let replay: Value = app
        .get(&format!(
            "Subscription/{id}/$events?eventsSinceNumber=2&eventsUntilNumber=3"
        ))
        .await
        .json()
        .await
        .unwrap();
    let numbers_of = |b: &Value| -> Vec<String> {
        b["entry"][0]["resource"]["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == "notification-event")
            .map(|p| p["part"][0]["valueString"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(numbers_of(&replay), vec!["2", "3"], "{replay}");
    let kind = replay["entry"][0]["resource"]["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "type")
        .unwrap()["valueCode"]
        .clone();
    assert_eq!(kind, "query-event");
    // POST with Parameters does the same.
    let res = app
        .post(
            &format!("Subscription/{id}/$events"),
            &json!({"resourceType": "Parameters", "parameter": [
                {"name": "eventsSinceNumber", "valueString": "4"}]}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let replay: Value = res.json().await.unwrap();
    assert_eq!(numbers_of(&replay), vec!["4"]);
}

async fn a_rolled_back_transaction_notifies_no_one(app: TestApp) {
    load_sample(&app).await;
    let rx = Receiver::start().await;
    let id = subscribe(&app, &subscription(&rx.url, None, "id-only")).await;
    // A referral whose last entry fails: the whole transaction rolls back, with the
    // Task routing created and its event.
    let bundle = json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001",
             "resource": {"resourceType": "Patient", "birthDate": "1959-04-02",
                          "address": [{"use": "home", "district": "Alphen aan den Rijn"}]},
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                          "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000001"}},
             "request": {"method": "POST", "url": "ServiceRequest"}},
            {"resource": {"resourceType": "Task", "status": "requested", "intent": "order"},
             "request": {"method": "PUT", "url": "Task/does-not-exist", "ifMatch": "W/\"1\""}}
        ]
    });
    let res = app.post("", &bundle).await;
    assert!(res.status().is_client_error(), "{}", res.status());
    assert_eq!(app.version_count("Task").await, 0);
    // The next committed change is event 1: the rolled-back one used no number.
    refer(&app, "2026-11-20").await;
    let got = rx.wait_until(WAIT, |r| !numbers(r).is_empty()).await;
    assert_eq!(numbers(&got), vec![1]);
    let status: Value = app
        .get(&format!("Subscription/{id}/$status"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        status.to_string().contains("\"valueString\":\"1\""),
        "{status}"
    );
}

async fn a_slow_receiver_does_not_slow_intake(app: TestApp) {
    load_sample(&app).await;
    let slow = Receiver::start().await;
    let fast = Receiver::start().await;
    let mut body = subscription(&slow.url, None, "id-only");
    body["channel"]["extension"] = json!([{
        "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-timeout",
        "valueUnsignedInt": 60
    }]);
    subscribe(&app, &body).await;
    subscribe(&app, &subscription(&fast.url, None, "id-only")).await;
    slow.set_mode(Mode::Hold(Duration::from_secs(30)));
    refer(&app, "2026-11-20").await;
    slow.wait_until(WAIT, |_| slow.holding() == 1).await;
    // While the slow receiver holds its notification, referrals are accepted and the
    // other subscriber hears of each of them.
    for _ in 0..5 {
        refer(&app, "2026-11-20").await;
    }
    let got = fast.wait_until(WAIT, |r| numbers(r).len() >= 6).await;
    assert_eq!(numbers(&got), (1..=6).collect::<Vec<_>>());
    assert_eq!(
        slow.holding(),
        1,
        "the slow receiver still holds its first notification"
    );
}

async fn subscriptions_are_checked_and_searchable(app: TestApp) {
    let rx = Receiver::start().await;
    // A filter the topic cannot honour: 422 naming it.
    let res = app
        .post(
            "Subscription",
            &subscription(&rx.url, Some("Task?patient=Patient/x"), "id-only"),
        )
        .await;
    assert_eq!(res.status(), 422);
    let text = res.text().await.unwrap();
    assert!(text.contains("patient"), "{text}");
    // Plain http only to loopback.
    let res = app
        .post(
            "Subscription",
            &subscription("http://example.org/hook", None, "id-only"),
        )
        .await;
    assert_eq!(res.status(), 422);
    // An unknown topic.
    let mut unknown = subscription(&rx.url, None, "id-only");
    unknown["criteria"] = json!("https://example.org/SubscriptionTopic/nothing");
    assert_eq!(app.post("Subscription", &unknown).await.status(), 422);

    let id = subscribe(&app, &subscription(&rx.url, None, "empty")).await;
    // $events with nothing to replay: an empty query-event Bundle, not an error, also
    // for a receiver that is caught up; only numbers the client gave can contradict.
    for query in ["", "?eventsSinceNumber=5"] {
        let res = app.get(&format!("Subscription/{id}/$events{query}")).await;
        assert_eq!(res.status(), 200, "{query}");
        let bundle: Value = res.json().await.unwrap();
        assert!(
            !bundle.to_string().contains("notification-event"),
            "{bundle}"
        );
    }
    let res = app
        .get(&format!(
            "Subscription/{id}/$events?eventsSinceNumber=5&eventsUntilNumber=2"
        ))
        .await;
    assert_eq!(res.status(), 400);
    for query in [
        "Subscription?status=active".to_owned(),
        format!("Subscription?url={}", rx.url),
        "Subscription?criteria=https://wor-hub.nl/fhir/SubscriptionTopic/task".to_owned(),
    ] {
        let bundle: Value = app.get(&query).await.json().await.unwrap();
        assert_eq!(bundle["total"], 1, "{query}: {bundle}");
        assert_eq!(bundle["entry"][0]["resource"]["id"], id.as_str());
    }
    // A handshake failure: error, with why.
    let dead = "http://127.0.0.1:9/hook";
    let res = app
        .post("Subscription", &subscription(dead, None, "id-only"))
        .await;
    assert_eq!(res.status(), 201);
    let failed: Value = res.json().await.unwrap();
    let path = format!("Subscription/{}", failed["id"].as_str().unwrap());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now: Value = app.get(&path).await.json().await.unwrap();
        if now["status"] == "error" {
            assert!(
                now["error"].as_str().unwrap().contains("handshake"),
                "{now}"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{now}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Deleting a Subscription: gone, and its $status with it.
    let res = app.request(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.get(&format!("{path}/$status")).await.status(), 404);
}

/// `channel.header` values are sent as headers; with a signing secret each
/// notification carries `X-Wor-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>`,
/// and the secret is never shown on read.
async fn headers_and_signature(app: TestApp) {
    use hmac::{Hmac, Mac};
    let rx = Receiver::start().await;
    let secret = "a-signing-secret-of-at-least-32-characters";
    let mut body = subscription(&rx.url, None, "id-only");
    body["channel"]["header"] = json!(["Authorization: Bearer welfare-token"]);
    body["channel"]["extension"] = json!([{
        "url": "https://wor-hub.nl/fhir/StructureDefinition/subscription-signing-secret",
        "valueString": secret
    }]);
    let id = subscribe(&app, &body).await;
    let stored = app
        .get(&format!("Subscription/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!stored.contains(secret), "{stored}");
    let got = rx.received();
    let handshake = &got[0];
    assert_eq!(
        handshake.header("authorization"),
        Some("Bearer welfare-token")
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&handshake.raw);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        handshake.header("x-wor-hub-signature"),
        Some(format!("sha256={expected}").as_str())
    );
    // Sent back as read (masked), the secret is kept; in a Bundle it is refused.
    let mut read: Value = serde_json::from_str(&stored).unwrap();
    read["reason"] = json!("renamed");
    let res = app.put(&format!("Subscription/{id}"), &read).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": body, "request": {"method": "POST", "url": "Subscription"}}]});
    assert_eq!(app.post("", &bundle).await.status(), 422);
}

pub async fn status_of(app: &TestApp, id: &str) -> Value {
    app.get(&format!("Subscription/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

pub async fn wait_for_status(app: &TestApp, id: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = status_of(app, id).await;
        if now["status"] == status {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not {status}: {now}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

crate::backend_tests!(
    headers_and_signature,
    a_new_referral_reaches_the_owner_and_no_one_else,
    a_status_change_reaches_the_referrer_with_the_task,
    a_receiver_down_for_a_while_gets_every_event_once_in_order,
    a_rolled_back_transaction_notifies_no_one,
    a_slow_receiver_does_not_slow_intake,
    subscriptions_are_checked_and_searchable,
);

/// Two instances on one PostgreSQL share the outbox: each event reaches the receiver
/// once (counted there), whichever instance recorded it.
#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn two_instances_on_one_postgres_deliver_each_event_once() {
    let first = spawn(Backend::Postgres, |_| {}).await.unwrap();
    let database = first.database.clone();
    let second = spawn(Backend::Postgres, move |s| {
        s.database = database;
    })
    .await
    .unwrap();
    load_sample(&first).await;
    let rx = Receiver::start().await;
    subscribe(&first, &subscription(&rx.url, None, "id-only")).await;
    for i in 0..10 {
        let app = if i % 2 == 0 { &first } else { &second };
        refer(app, "2026-11-20").await;
    }
    let got = rx.wait_until(WAIT, |r| numbers(r).len() >= 10).await;
    // A little longer: a second delivery of any event would show up now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = if got.len() == rx.received().len() {
        got
    } else {
        rx.received()
    };
    assert_eq!(numbers(&got), (1..=10).collect::<Vec<_>>());
}
