//! Topics, reading Subscriptions, endpoints, secrets, signatures and backoff.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::fhir::outcome::IssueCode;

const TASK_CHANGE: &str = "https://wor-hub.nl/fhir/SubscriptionTopic/task-change";
const SR_STATUS: &str = "https://wor-hub.nl/fhir/SubscriptionTopic/service-request-status";
pub(super) const UNROUTABLE: &str = "https://wor-hub.nl/fhir/SubscriptionTopic/unroutable";
pub(super) const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn t(id: TopicId) -> &'static Topic {
    TOPICS.iter().find(|t| t.id == id).unwrap()
}

fn task(status: &str, business: Option<&str>) -> Value {
    let mut task = json!({ "resourceType": "Task", "id": "t1", "status": status });
    if let Some(code) = business {
        task["businessStatus"] = json!({ "coding": [{
            "system": "https://wor-hub.nl/fhir/CodeSystem/task-business-status",
            "code": code,
        }]});
    }
    task
}

fn sr(status: &str) -> Value {
    json!({ "resourceType": "ServiceRequest", "id": "sr1", "status": status, "intent": "order" })
}

// ---- topics ----

#[test]
fn topic_lookup_exact_and_with_version() {
    assert_eq!(topic(TASK_CHANGE).unwrap().id, TopicId::TaskChange);
    assert_eq!(
        topic(&format!("{SR_STATUS}|1.0")).unwrap().id,
        TopicId::ServiceRequestStatus
    );
    assert_eq!(topic(UNROUTABLE).unwrap().id, TopicId::Unroutable);
    assert!(topic("https://wor-hub.nl/fhir/SubscriptionTopic/task-change/").is_none());
    assert!(topic("https://wor-hub.nl/fhir/SubscriptionTopic/TASK-CHANGE").is_none());
    assert!(topic("").is_none());
}

#[test]
fn topics_are_distinct() {
    for (i, a) in TOPICS.iter().enumerate() {
        for b in &TOPICS[i + 1..] {
            assert_ne!(a.id, b.id);
            assert_ne!(a.canonical, b.canonical);
        }
    }
    assert_eq!(TOPICS.len(), 3);
}

#[test]
fn task_change_triggers_on_create_and_update_not_delete() {
    let topic = t(TopicId::TaskChange);
    let before = task("requested", None);
    let after = task("accepted", None);
    assert!(topic.triggers(None, Some(&before)));
    assert!(topic.triggers(Some(&before), Some(&after)));
    // Any update, even one that leaves status alone.
    assert!(topic.triggers(Some(&before), Some(&before)));
    assert!(!topic.triggers(Some(&before), None));
    assert!(!topic.triggers(None, None));
    // Another type never triggers.
    assert!(!topic.triggers(None, Some(&sr("active"))));
}

#[test]
fn service_request_status_triggers_on_create_and_status_change() {
    let topic = t(TopicId::ServiceRequestStatus);
    let active = sr("active");
    let completed = sr("completed");
    let mut active_changed = sr("active");
    active_changed["note"] = json!([{ "text": "other element changed" }]);
    assert!(topic.triggers(None, Some(&active)));
    assert!(topic.triggers(Some(&active), Some(&completed)));
    assert!(!topic.triggers(Some(&active), Some(&active_changed)));
    assert!(!topic.triggers(Some(&active), None));
    assert!(!topic.triggers(None, Some(&task("requested", None))));
    // A status that appears or disappears is a change.
    let mut no_status = sr("active");
    no_status.as_object_mut().unwrap().remove("status");
    assert!(topic.triggers(Some(&no_status), Some(&active)));
}

#[test]
fn unroutable_triggers_when_the_code_appears() {
    let topic = t(TopicId::Unroutable);
    let unroutable = task("requested", Some("unroutable"));
    let plain = task("requested", None);
    let contact = task("accepted", Some("contact-made"));
    assert!(topic.triggers(None, Some(&unroutable)));
    assert!(topic.triggers(Some(&plain), Some(&unroutable)));
    assert!(topic.triggers(Some(&contact), Some(&unroutable)));
    assert!(!topic.triggers(Some(&unroutable), Some(&unroutable)));
    assert!(!topic.triggers(Some(&unroutable), Some(&plain)));
    assert!(!topic.triggers(None, Some(&plain)));
    assert!(!topic.triggers(Some(&plain), None));
    assert!(!topic.triggers(Some(&plain), Some(&contact)));
    // The code counts only in the hub's CodeSystem.
    let mut other_system = task("requested", Some("unroutable"));
    other_system["businessStatus"]["coding"][0]["system"] = json!("http://example.org/cs");
    assert!(!topic.triggers(None, Some(&other_system)));
    // Among other codings.
    let mut second = task("requested", Some("unroutable"));
    second["businessStatus"]["coding"]
        .as_array_mut()
        .unwrap()
        .insert(0, json!({ "system": "http://example.org/cs", "code": "x" }));
    assert!(topic.triggers(None, Some(&second)));
}

#[test]
fn the_unroutable_code_is_in_the_code_system() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("profiles/CodeSystem-task-business-status.json");
    let cs: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // The system the Unroutable topic matches (see unroutable_triggers_when_the_code_appears).
    assert_eq!(
        cs["url"],
        "https://wor-hub.nl/fhir/CodeSystem/task-business-status"
    );
    assert!(cs["concept"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["code"] == "unroutable"));
}

#[test]
fn capability_statement_topic_extensions() {
    let extensions = subscription_topic_extensions();
    let expected: Vec<Value> = [TASK_CHANGE, SR_STATUS, UNROUTABLE]
        .iter()
        .map(|c| {
            json!({
                "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/capabilitystatement-subscriptiontopic-canonical",
                "valueCanonical": c,
            })
        })
        .collect();
    assert_eq!(extensions, expected);
}

// ---- read_subscription ----

pub(super) fn subscription() -> Value {
    json!({
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "test",
        "criteria": TASK_CHANGE,
        "_criteria": { "extension": [{
            "url": EXT_FILTER_CRITERIA,
            "valueString": "Task?owner=Organization/tom-in-de-buurt&status=requested",
        }]},
        "channel": {
            "extension": [
                { "url": EXT_HEARTBEAT_PERIOD, "valueUnsignedInt": 3600 },
                { "url": EXT_TIMEOUT, "valueUnsignedInt": 30 },
                { "url": EXT_MAX_COUNT, "valuePositiveInt": 50 },
                { "url": EXT_SIGNING_SECRET, "valueString": SECRET },
            ],
            "type": "rest-hook",
            "endpoint": "https://example.org/hook",
            "payload": "application/fhir+json",
            "_payload": { "extension": [{ "url": EXT_PAYLOAD_CONTENT, "valueCode": "full-resource" }] },
            "header": ["Authorization: Bearer abc", "X-Trace:  1 2 "],
        },
        "end": "2027-01-01T00:00:00+01:00",
    })
}

/// The single issue `read_subscription` reports for `value`.
pub(super) fn refusal(value: &Value) -> (IssueCode, String, String) {
    let issues = read_subscription(value).unwrap_err();
    assert_eq!(issues.len(), 1, "{issues:#?}");
    let issue = &issues[0];
    assert!(issue.is_error());
    (
        issue.code,
        issue.expression.clone().unwrap(),
        issue.diagnostics.clone(),
    )
}

#[test]
fn reads_a_full_subscription() {
    let spec = read_subscription(&subscription()).unwrap();
    assert_eq!(spec.topic.id, TopicId::TaskChange);
    assert_eq!(
        spec.filters,
        vec![
            (
                "owner".to_owned(),
                "Organization/tom-in-de-buurt".to_owned()
            ),
            ("status".to_owned(), "requested".to_owned()),
        ]
    );
    assert_eq!(
        spec.filter_query,
        "owner=Organization%2Ftom-in-de-buurt&status=requested"
    );
    assert_eq!(spec.endpoint, "https://example.org/hook");
    assert_eq!(spec.payload, PayloadContent::FullResource);
    assert_eq!(spec.content_type, "application/fhir+json");
    assert_eq!(
        spec.headers,
        vec![
            ("Authorization".to_owned(), "Bearer abc".to_owned()),
            ("X-Trace".to_owned(), "1 2".to_owned()),
        ]
    );
    assert_eq!(spec.heartbeat_period, Some(3600));
    assert_eq!(spec.timeout, 30);
    assert_eq!(spec.max_count, 50);
    assert_eq!(spec.end, Some(1_798_758_000_000_000));
    assert_eq!(spec.signing_secret.as_deref(), Some(SECRET));
    assert!(!spec.keep_secret);
    assert_eq!(spec.status, "requested");
}

#[test]
fn the_accepted_form_is_valid_r4() {
    use crate::fhir::validate::validate_resource;
    let issues: Vec<_> = validate_resource("Subscription", &subscription())
        .into_iter()
        .filter(|i| i.is_error())
        .collect();
    assert!(issues.is_empty(), "{issues:?}");
}

#[test]
fn debug_hides_secret_and_header_values() {
    let spec = read_subscription(&subscription()).unwrap();
    let shown = format!("{spec:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(!shown.contains("Bearer"), "{shown}");
    assert!(shown.contains("Authorization"), "{shown}");
}

#[test]
fn defaults() {
    let value = json!({
        "resourceType": "Subscription",
        "status": "active",
        "reason": "minimal",
        "criteria": UNROUTABLE,
        "channel": { "type": "rest-hook", "endpoint": "http://127.0.0.1:9000/hook" },
    });
    let spec = read_subscription(&value).unwrap();
    assert_eq!(spec.topic.id, TopicId::Unroutable);
    assert!(spec.filters.is_empty());
    assert_eq!(spec.filter_query, "");
    assert_eq!(spec.payload, PayloadContent::IdOnly);
    assert_eq!(spec.content_type, "application/fhir+json");
    assert!(spec.headers.is_empty());
    assert_eq!(spec.heartbeat_period, None);
    assert_eq!(spec.timeout, 10);
    assert_eq!(spec.max_count, 20);
    assert_eq!(spec.end, None);
    assert_eq!(spec.signing_secret, None);
    assert!(!spec.keep_secret);
    assert_eq!(spec.status, "active");
    assert_eq!(PayloadContent::default(), PayloadContent::IdOnly);
}

#[test]
fn payload_content_codes_and_json_mime() {
    for (code, content) in [
        ("empty", PayloadContent::Empty),
        ("id-only", PayloadContent::IdOnly),
        ("full-resource", PayloadContent::FullResource),
    ] {
        assert_eq!(content.code(), code);
        let mut s = subscription();
        s["channel"]["_payload"]["extension"][0]["valueCode"] = json!(code);
        s["channel"]["payload"] = json!("application/json");
        let spec = read_subscription(&s).unwrap();
        assert_eq!(spec.payload, content);
        assert_eq!(spec.content_type, "application/json");
    }
    // A payload without the content extension is id-only.
    let mut s = subscription();
    s["channel"].as_object_mut().unwrap().remove("_payload");
    assert_eq!(
        read_subscription(&s).unwrap().payload,
        PayloadContent::IdOnly
    );
    // Mime parameters are kept.
    let mut s = subscription();
    s["channel"]["payload"] = json!("application/fhir+json; fhirVersion=4.0");
    let spec = read_subscription(&s).unwrap();
    assert_eq!(spec.content_type, "application/fhir+json; fhirVersion=4.0");
}

#[test]
fn filters_for_service_request_status() {
    let mut s = subscription();
    s["criteria"] = json!(format!("{SR_STATUS}|0.1"));
    s["_criteria"]["extension"] = json!([
        { "url": EXT_FILTER_CRITERIA, "valueString": "ServiceRequest?requester=Practitioner/p1" },
        { "url": "http://example.org/other", "valueString": "ignored" },
        { "url": EXT_FILTER_CRITERIA, "valueString": "ServiceRequest?_id=sr%201" },
    ]);
    let spec = read_subscription(&s).unwrap();
    assert_eq!(spec.topic.id, TopicId::ServiceRequestStatus);
    assert_eq!(
        spec.filters,
        vec![
            ("requester".to_owned(), "Practitioner/p1".to_owned()),
            ("_id".to_owned(), "sr 1".to_owned()),
        ]
    );
    assert_eq!(spec.filter_query, "requester=Practitioner%2Fp1&_id=sr+1");
}

#[test]
fn all_problems_are_reported() {
    let mut s = subscription();
    s["criteria"] = json!("https://example.org/topic");
    s["channel"]["type"] = json!("email");
    s["channel"]["endpoint"] = json!("http://localhost/hook");
    s["channel"]["header"] = json!(["Host: x"]);
    let issues = read_subscription(&s).unwrap_err();
    let expressions: Vec<&str> = issues
        .iter()
        .filter_map(|i| i.expression.as_deref())
        .collect();
    assert_eq!(
        expressions,
        [
            "Subscription.criteria",
            "Subscription.channel.type",
            "Subscription.channel.endpoint",
            "Subscription.channel.header[0]",
        ]
    );
}

// ---- secrets ----

#[test]
fn redact_then_read_keeps_the_secret() {
    let mut s = subscription();
    assert!(redact_secret(&mut s));
    assert_eq!(
        s["channel"]["extension"][3],
        json!({ "url": EXT_SIGNING_SECRET, "valueString": "********" })
    );
    assert!(!s.to_string().contains(SECRET));
    // Nothing left to redact.
    assert!(!redact_secret(&mut s));
    let spec = read_subscription(&s).unwrap();
    assert_eq!(spec.signing_secret, None);
    assert!(spec.keep_secret);
    // No secret extension at all.
    let mut plain = json!({ "resourceType": "Subscription", "channel": { "type": "rest-hook" } });
    assert!(!redact_secret(&mut plain));
    assert_eq!(
        plain,
        json!({ "resourceType": "Subscription", "channel": { "type": "rest-hook" } })
    );
}

#[test]
fn redact_replaces_any_value_type() {
    let mut s = json!({ "resourceType": "Subscription", "channel": { "extension": [
        { "url": "http://example.org/other", "valueString": "keep" },
        { "url": EXT_SIGNING_SECRET, "valueCode": "short" },
    ]}});
    assert!(redact_secret(&mut s));
    assert_eq!(s["channel"]["extension"][0]["valueString"], "keep");
    assert_eq!(
        s["channel"]["extension"][1],
        json!({ "url": EXT_SIGNING_SECRET, "valueString": "********" })
    );
}

// ---- endpoints ----

#[test]
fn loopback_rule() {
    for ok in [
        "http://127.0.0.1/hook",
        "http://127.0.0.1:8080/hook?x=1",
        "http://127.255.0.1:1/",
        "http://[::1]:9000/hook",
        "http://[::1]",
        "HTTP://127.0.0.1/",
        "https://example.org/hook",
        "https://10.0.0.1/hook",
        "https://localhost:8443/",
        "https://[2001:db8::1]/hook",
    ] {
        assert_eq!(endpoint_allowed(ok), Ok(()), "{ok}");
    }
    for refused in [
        "http://localhost/hook",
        "http://localhost:8080/hook",
        "http://10.0.0.1/hook",
        "http://example.org",
        "http://128.0.0.1/",
        "http://127.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://127.0.0.1.example.org/",
        "http://127.0.0.1@example.org/",
        "https://user:pw@example.org/",
        "http://127.0.0.1:99999/",
        "http://127.0.0.1:x/",
        "https:///hook",
        "https://",
        "ftp://127.0.0.1/",
        "mailto:a@example.org",
        "example.org/hook",
        "",
        "https://example.org/ hook",
        "https://[zz]/hook",
        "https://[::1/hook",
        "https://[::1]x/hook",
    ] {
        assert!(endpoint_allowed(refused).is_err(), "{refused}");
    }
}

// ---- signature and backoff ----

#[test]
fn signature_matches_known_vectors() {
    // python3: hmac.new(b"key", b"The quick brown fox jumps over the lazy dog", hashlib.sha256).hexdigest()
    assert_eq!(
        signature(b"key", b"The quick brown fox jumps over the lazy dog"),
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    );
    assert_eq!(
        signature(
            b"wor-hub-test-secret-0123456789abcdef",
            br#"{"resourceType":"Bundle"}"#
        ),
        "sha256=d7e5fc9c54eaa506081d92a3b34f3651ad4b1ec8db83851a320a3b8c2386a6ae"
    );
    assert_eq!(SIGNATURE_HEADER, "X-Wor-Hub-Signature");
}

#[test]
fn backoff_doubles_with_jitter_and_cap() {
    // r = 0: half the base; r -> 1: the base.
    assert_eq!(backoff(1, 0.0), Duration::from_millis(500));
    assert_eq!(backoff(2, 0.0), Duration::from_secs(1));
    assert_eq!(backoff(3, 0.0), Duration::from_secs(2));
    assert_eq!(backoff(4, 0.5), Duration::from_secs(6));
    assert_eq!(backoff(10, 0.0), Duration::from_secs(256));
    // 2^10 = 1024 s is over the 900 s cap.
    assert_eq!(backoff(11, 0.0), Duration::from_secs(450));
    assert_eq!(backoff(u32::MAX, 0.0), Duration::from_secs(450));
    for attempt in 1..40 {
        for r in [0.0, 0.25, 0.5, 0.999_999] {
            let d = backoff(attempt, r);
            let base = Duration::from_secs(1u64 << (attempt - 1).min(20)).min(BACKOFF_CAP);
            assert!(
                d >= base / 2 && d <= base,
                "attempt {attempt}, r {r}: {d:?}"
            );
        }
    }
    assert!(backoff(40, 0.999_999) <= Duration::from_secs(900));
    assert!(backoff(40, 0.999_999) > Duration::from_secs(899));
    // Out-of-range fractions stay within bounds.
    assert_eq!(backoff(1, -1.0), Duration::from_millis(500));
    assert_eq!(backoff(1, 7.0), Duration::from_secs(1));
    assert_eq!(backoff(1, f64::NAN), Duration::from_millis(500));
}
