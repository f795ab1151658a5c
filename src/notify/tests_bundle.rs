//! Notification Bundles and status Parameters, checked against the R4 examples of the
//! Subscriptions Backport IG 1.1 (r4-notification-empty, -id-only, -full-resource,
//! -handshake, -error).

use serde_json::{json, Value};

use super::*;
use crate::fhir::instant::parse_instant;

const BASE: &str = "http://127.0.0.1:8080/fhir";
const SUB: &str = "http://127.0.0.1:8080/fhir/Subscription/s1";
const TOPIC: &str = "https://wor-hub.nl/fhir/SubscriptionTopic/task-change";
/// 2026-11-23T16:49:50.123456Z
const STAMP: i64 = 1_795_452_590_123_456;

fn status(kind: NotificationType, since: i64) -> StatusInfo {
    StatusInfo {
        subscription: SUB.to_owned(),
        topic: TOPIC.to_owned(),
        status: "active".to_owned(),
        kind,
        events_since_start: since,
        error: None,
    }
}

fn event(number: i64, focus: &str, version: i64, with_resource: bool) -> Event {
    let id = focus.split('/').nth(1).unwrap();
    Event {
        number,
        timestamp: STAMP,
        focus: focus.to_owned(),
        focus_version: version,
        resource: with_resource.then(|| {
            json!({ "resourceType": "Task", "id": id, "meta": { "versionId": version.to_string() }, "status": "accepted", "intent": "order" })
        }),
    }
}

/// The `parameter` entries with this name.
fn params<'a>(parameters: &'a Value, name: &str) -> Vec<&'a Value> {
    parameters["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == name)
        .collect()
}

fn names(parameters: &Value) -> Vec<&str> {
    parameters["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect()
}

fn part<'a>(event: &'a Value, name: &str) -> Option<&'a Value> {
    event["part"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
}

/// What every notification Bundle has: the IG's R4 Bundle and status entry shape.
fn check_envelope(bundle: &Value) -> &Value {
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "history");
    assert_eq!(
        bundle["meta"]["profile"],
        json!(["http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-notification-r4"])
    );
    let id = uuid::Uuid::parse_str(bundle["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 4);
    assert!(parse_instant(bundle["timestamp"].as_str().unwrap()).is_some());
    let first = &bundle["entry"][0];
    let parameters = &first["resource"];
    assert_eq!(parameters["resourceType"], "Parameters");
    assert_eq!(
        parameters["meta"]["profile"],
        json!(["http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4"])
    );
    let pid = parameters["id"].as_str().unwrap();
    assert_eq!(first["fullUrl"], format!("urn:uuid:{pid}"));
    assert_ne!(pid, bundle["id"].as_str().unwrap());
    assert_eq!(
        first["request"],
        json!({ "method": "GET", "url": format!("{SUB}/$status") })
    );
    assert_eq!(first["response"], json!({ "status": "200" }));
    assert_eq!(
        params(parameters, "subscription")[0]["valueReference"],
        json!({ "reference": SUB })
    );
    assert_eq!(params(parameters, "status")[0]["valueCode"], "active");
    parameters
}

#[test]
fn id_only_event_notification() {
    let events = [
        event(2, "Task/abc", 3, false),
        event(3, "Task/def", 1, false),
    ];
    let bundle = notification_bundle(
        BASE,
        &status(NotificationType::EventNotification, 3),
        &events,
        PayloadContent::IdOnly,
    );
    let parameters = check_envelope(&bundle);
    assert_eq!(
        names(parameters),
        [
            "subscription",
            "topic",
            "status",
            "type",
            "events-since-subscription-start",
            "notification-event",
            "notification-event",
        ]
    );
    assert_eq!(params(parameters, "topic")[0]["valueCanonical"], TOPIC);
    assert_eq!(
        params(parameters, "type")[0]["valueCode"],
        "event-notification"
    );
    assert_eq!(
        params(parameters, "events-since-subscription-start")[0]["valueString"],
        "3"
    );
    let first = params(parameters, "notification-event")[0];
    assert_eq!(part(first, "event-number").unwrap()["valueString"], "2");
    assert_eq!(
        part(first, "timestamp").unwrap()["valueInstant"],
        "2026-11-23T16:49:50.123456Z"
    );
    assert_eq!(
        part(first, "focus").unwrap()["valueReference"],
        json!({ "reference": "http://127.0.0.1:8080/fhir/Task/abc" })
    );
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    // An update: fullUrl and request/response, no resource.
    assert_eq!(
        entries[1],
        json!({
            "fullUrl": "http://127.0.0.1:8080/fhir/Task/abc",
            "request": { "method": "PUT", "url": "Task/abc" },
            "response": {
                "status": "200",
                "etag": "W/\"3\"",
                "lastModified": "2026-11-23T16:49:50.123456Z",
            },
        })
    );
    // A create.
    assert_eq!(
        entries[2]["request"],
        json!({ "method": "POST", "url": "Task" })
    );
    assert_eq!(entries[2]["response"]["status"], "201");
    assert!(entries[2].get("resource").is_none());
}

#[test]
fn id_only_leaves_out_a_resource_given_by_mistake() {
    let bundle = notification_bundle(
        BASE,
        &status(NotificationType::EventNotification, 2),
        &[event(2, "Task/abc", 3, true)],
        PayloadContent::IdOnly,
    );
    assert!(bundle["entry"][1].get("resource").is_none());
}

#[test]
fn full_resource_event_notification() {
    let bundle = notification_bundle(
        &format!("{BASE}/"),
        &status(NotificationType::EventNotification, 2),
        &[event(2, "Task/abc", 3, true)],
        PayloadContent::FullResource,
    );
    let parameters = check_envelope(&bundle);
    assert_eq!(params(parameters, "topic")[0]["valueCanonical"], TOPIC);
    let ev = params(parameters, "notification-event")[0];
    assert_eq!(
        part(ev, "focus").unwrap()["valueReference"]["reference"],
        "http://127.0.0.1:8080/fhir/Task/abc"
    );
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["fullUrl"], "http://127.0.0.1:8080/fhir/Task/abc");
    assert_eq!(entries[1]["resource"]["resourceType"], "Task");
    assert_eq!(entries[1]["resource"]["meta"]["versionId"], "3");
    assert_eq!(entries[1]["request"]["method"], "PUT");
    // Without the resource (e.g. no longer readable), request/response remain.
    let bundle = notification_bundle(
        BASE,
        &status(NotificationType::EventNotification, 2),
        &[event(2, "Task/abc", 3, false)],
        PayloadContent::FullResource,
    );
    assert!(bundle["entry"][1].get("resource").is_none());
    assert_eq!(bundle["entry"][1]["response"]["status"], "200");
}

#[test]
fn empty_event_notification() {
    let bundle = notification_bundle(
        BASE,
        &status(NotificationType::EventNotification, 2),
        &[event(2, "Task/abc", 3, true)],
        PayloadContent::Empty,
    );
    let parameters = check_envelope(&bundle);
    assert_eq!(bundle["entry"].as_array().unwrap().len(), 1);
    // No topic and no focus with empty payloads; the event number and time stay.
    assert_eq!(
        names(parameters),
        [
            "subscription",
            "status",
            "type",
            "events-since-subscription-start",
            "notification-event",
        ]
    );
    let ev = params(parameters, "notification-event")[0];
    assert_eq!(part(ev, "event-number").unwrap()["valueString"], "2");
    assert!(part(ev, "timestamp").is_some());
    assert!(part(ev, "focus").is_none());
    assert!(!bundle.to_string().contains("Task/abc"));
}

#[test]
fn handshake_and_heartbeat() {
    for (kind, code, since) in [
        (NotificationType::Handshake, "handshake", 0),
        (NotificationType::Heartbeat, "heartbeat", 5),
    ] {
        let mut info = status(kind, since);
        info.status = "requested".to_owned();
        let bundle = notification_bundle(BASE, &info, &[], PayloadContent::IdOnly);
        let parameters = &bundle["entry"][0]["resource"];
        assert_eq!(bundle["entry"].as_array().unwrap().len(), 1);
        assert_eq!(
            names(parameters),
            [
                "subscription",
                "topic",
                "status",
                "type",
                "events-since-subscription-start"
            ]
        );
        assert_eq!(params(parameters, "type")[0]["valueCode"], code);
        assert_eq!(params(parameters, "status")[0]["valueCode"], "requested");
        assert_eq!(
            params(parameters, "events-since-subscription-start")[0]["valueString"],
            since.to_string()
        );
    }
}

#[test]
fn fresh_ids() {
    let info = status(NotificationType::Heartbeat, 0);
    let a = notification_bundle(BASE, &info, &[], PayloadContent::IdOnly);
    let b = notification_bundle(BASE, &info, &[], PayloadContent::IdOnly);
    assert_ne!(a["id"], b["id"]);
    assert_ne!(
        a["entry"][0]["resource"]["id"],
        b["entry"][0]["resource"]["id"]
    );
}

#[test]
fn status_parameters_with_error() {
    let mut info = status(NotificationType::QueryStatus, 7);
    info.status = "error".to_owned();
    info.error = Some("no-response: endpoint returned 503".to_owned());
    let parameters = status_parameters(&info, &[], PayloadContent::IdOnly);
    assert_eq!(parameters["resourceType"], "Parameters");
    assert!(parameters.get("id").is_none());
    assert_eq!(
        names(&parameters),
        [
            "subscription",
            "topic",
            "status",
            "type",
            "events-since-subscription-start",
            "error",
        ]
    );
    assert_eq!(params(&parameters, "type")[0]["valueCode"], "query-status");
    assert_eq!(params(&parameters, "status")[0]["valueCode"], "error");
    assert_eq!(
        params(&parameters, "error")[0]["valueCodeableConcept"],
        json!({ "text": "no-response: endpoint returned 503" })
    );
}

#[test]
fn status_parameters_focus_base_from_the_subscription_url() {
    let info = status(NotificationType::QueryEvent, 4);
    let parameters = status_parameters(
        &info,
        &[event(4, "Task/abc", 2, false)],
        PayloadContent::IdOnly,
    );
    let ev = params(&parameters, "notification-event")[0];
    assert_eq!(
        part(ev, "focus").unwrap()["valueReference"]["reference"],
        "http://127.0.0.1:8080/fhir/Task/abc"
    );
    assert_eq!(params(&parameters, "type")[0]["valueCode"], "query-event");
    // A subscription URL without the [base]/Subscription/[id] shape: a relative focus.
    let mut info = status(NotificationType::QueryEvent, 4);
    info.subscription = "urn:uuid:0c6a0a0e-0000-4000-8000-000000000000".to_owned();
    let parameters = status_parameters(
        &info,
        &[event(4, "Task/abc", 2, false)],
        PayloadContent::IdOnly,
    );
    let ev = params(&parameters, "notification-event")[0];
    assert_eq!(
        part(ev, "focus").unwrap()["valueReference"]["reference"],
        "Task/abc"
    );
}

#[test]
fn notification_type_codes() {
    assert_eq!(NotificationType::Handshake.code(), "handshake");
    assert_eq!(NotificationType::Heartbeat.code(), "heartbeat");
    assert_eq!(
        NotificationType::EventNotification.code(),
        "event-notification"
    );
    assert_eq!(NotificationType::QueryStatus.code(), "query-status");
    assert_eq!(NotificationType::QueryEvent.code(), "query-event");
}

#[test]
fn bundles_are_valid_r4() {
    use crate::fhir::validate::validate_resource;
    let mut info = status(NotificationType::EventNotification, 3);
    info.error = Some("timeout".to_owned());
    for payload in [
        PayloadContent::Empty,
        PayloadContent::IdOnly,
        PayloadContent::FullResource,
    ] {
        let events = [event(2, "Task/abc", 3, true), event(3, "Task/def", 1, true)];
        let bundle = notification_bundle(BASE, &info, &events, payload);
        let issues: Vec<_> = validate_resource("Bundle", &bundle)
            .into_iter()
            .filter(|i| i.is_error())
            .collect();
        assert!(issues.is_empty(), "{payload:?}: {issues:?}");
        let parameters = status_parameters(&info, &events, payload);
        let issues: Vec<_> = validate_resource("Parameters", &parameters)
            .into_iter()
            .filter(|i| i.is_error())
            .collect();
        assert!(issues.is_empty(), "{payload:?}: {issues:?}");
    }
    // The validator does find errors in a notification Bundle.
    let mut broken = notification_bundle(BASE, &info, &[], PayloadContent::IdOnly);
    broken["type"] = serde_json::json!(42);
    assert!(validate_resource("Bundle", &broken)
        .iter()
        .any(|i| i.is_error()));
}
