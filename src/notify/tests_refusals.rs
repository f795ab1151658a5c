//! Every refusal of `read_subscription`, with its issue code and expression.

use serde_json::{json, Value};

use super::tests::{refusal, subscription, SECRET, UNROUTABLE};
use super::*;
use crate::fhir::outcome::IssueCode;

/// Each refusal: (change, issue code, expression, words in the diagnostics).
#[test]
fn refusals() {
    type Change = fn(&mut Value);
    let cases: Vec<(&str, Change, IssueCode, &str, &str)> = vec![
        (
            "not a Subscription",
            |s| s["resourceType"] = json!("Task"),
            IssueCode::Invalid,
            "Subscription",
            "Subscription",
        ),
        (
            "no status",
            |s| {
                s.as_object_mut().unwrap().remove("status");
            },
            IssueCode::Required,
            "Subscription.status",
            "required",
        ),
        (
            "bad status",
            |s| s["status"] = json!("paused"),
            IssueCode::Value,
            "Subscription.status",
            "paused",
        ),
        (
            "no criteria",
            |s| {
                s.as_object_mut().unwrap().remove("criteria");
            },
            IssueCode::Required,
            "Subscription.criteria",
            "task-change",
        ),
        (
            "unknown topic",
            |s| s["criteria"] = json!("Task?status=requested"),
            IssueCode::BusinessRule,
            "Subscription.criteria",
            "https://wor-hub.nl/fhir/SubscriptionTopic/unroutable",
        ),
        (
            "filter without valueString",
            |s| {
                s["_criteria"]["extension"][0] =
                    json!({ "url": EXT_FILTER_CRITERIA, "valueCode": "x" })
            },
            IssueCode::Value,
            "Subscription.criteria.extension[0]",
            "valueString",
        ),
        (
            "filter without ?",
            |s| s["_criteria"]["extension"][0]["valueString"] = json!("owner=Organization/x"),
            IssueCode::BusinessRule,
            "Subscription.criteria.extension[0]",
            "Task?parameter=value",
        ),
        (
            "filter on another type",
            |s| {
                s["_criteria"]["extension"][0]["valueString"] =
                    json!("ServiceRequest?requester=Practitioner/x")
            },
            IssueCode::BusinessRule,
            "Subscription.criteria.extension[0]",
            "is about Task",
        ),
        (
            "unknown filter parameter",
            |s| s["_criteria"]["extension"][0]["valueString"] = json!("Task?patient=Patient/x"),
            IssueCode::BusinessRule,
            "Subscription.criteria.extension[0]",
            "\"patient\" is not a filter",
        ),
        (
            "modifier",
            |s| s["_criteria"]["extension"][0]["valueString"] = json!("Task?status:not=requested"),
            IssueCode::BusinessRule,
            "Subscription.criteria.extension[0]",
            "modifiers",
        ),
        (
            "empty value",
            |s| s["_criteria"]["extension"][0]["valueString"] = json!("Task?owner="),
            IssueCode::BusinessRule,
            "Subscription.criteria.extension[0]",
            "empty value",
        ),
        (
            "no value",
            |s| s["_criteria"]["extension"][0]["valueString"] = json!("Task?owner"),
            IssueCode::BusinessRule,
            "Subscription.criteria.extension[0]",
            "no value",
        ),
        (
            "value list",
            |s| {
                s["_criteria"]["extension"][0]["valueString"] =
                    json!("Task?status=requested,accepted")
            },
            IssueCode::BusinessRule,
            "Subscription.criteria.extension[0]",
            "one value",
        ),
        (
            "no parameter",
            |s| s["_criteria"]["extension"][0]["valueString"] = json!("Task?"),
            IssueCode::BusinessRule,
            "Subscription.criteria.extension[0]",
            "names no parameter",
        ),
        (
            "filter on unroutable",
            |s| s["criteria"] = json!(UNROUTABLE),
            IssueCode::BusinessRule,
            "Subscription.criteria.extension[0]",
            "takes no filters",
        ),
        (
            "second filter index",
            |s| s["_criteria"]["extension"] = json!([{ "url": "http://example.org/x" }, { "url": EXT_FILTER_CRITERIA, "valueString": "Task?_id=x" }]),
            IssueCode::BusinessRule,
            "Subscription.criteria.extension[1]",
            "\"_id\" is not a filter",
        ),
        (
            "no channel",
            |s| {
                s.as_object_mut().unwrap().remove("channel");
            },
            IssueCode::Required,
            "Subscription.channel",
            "required",
        ),
        (
            "channel not an object",
            |s| s["channel"] = json!("rest-hook"),
            IssueCode::Invalid,
            "Subscription.channel",
            "object",
        ),
        (
            "no channel type",
            |s| {
                s["channel"].as_object_mut().unwrap().remove("type");
            },
            IssueCode::Required,
            "Subscription.channel.type",
            "rest-hook",
        ),
        (
            "websocket",
            |s| s["channel"]["type"] = json!("websocket"),
            IssueCode::BusinessRule,
            "Subscription.channel.type",
            "websocket",
        ),
        (
            "no endpoint",
            |s| {
                s["channel"].as_object_mut().unwrap().remove("endpoint");
            },
            IssueCode::Required,
            "Subscription.channel.endpoint",
            "required",
        ),
        (
            "endpoint not a string",
            |s| s["channel"]["endpoint"] = json!(42),
            IssueCode::Value,
            "Subscription.channel.endpoint",
            "URL",
        ),
        (
            "http endpoint",
            |s| s["channel"]["endpoint"] = json!("http://example.org/hook"),
            IssueCode::BusinessRule,
            "Subscription.channel.endpoint",
            "loopback",
        ),
        (
            "xml payload",
            |s| s["channel"]["payload"] = json!("application/fhir+xml"),
            IssueCode::BusinessRule,
            "Subscription.channel.payload",
            "application/fhir+json",
        ),
        (
            "unknown content",
            |s| s["channel"]["_payload"]["extension"][0]["valueCode"] = json!("everything"),
            IssueCode::Value,
            "Subscription.channel.payload.extension[0]",
            "id-only",
        ),
        (
            "two contents",
            |s| s["channel"]["_payload"]["extension"] = json!([{ "url": EXT_PAYLOAD_CONTENT, "valueCode": "empty" }, { "url": EXT_PAYLOAD_CONTENT, "valueCode": "id-only" }]),
            IssueCode::Value,
            "Subscription.channel.payload.extension[1]",
            "once",
        ),
        (
            "header not a list",
            |s| s["channel"]["header"] = json!("A: b"),
            IssueCode::Invalid,
            "Subscription.channel.header",
            "array",
        ),
        (
            "header not a string",
            |s| s["channel"]["header"][1] = json!(1),
            IssueCode::Value,
            "Subscription.channel.header[1]",
            "string",
        ),
        (
            "header without colon",
            |s| s["channel"]["header"][0] = json!("Authorization Bearer"),
            IssueCode::Value,
            "Subscription.channel.header[0]",
            "Name: value",
        ),
        (
            "header name with space",
            |s| s["channel"]["header"][0] = json!("X Trace: 1"),
            IssueCode::Value,
            "Subscription.channel.header[0]",
            "header name",
        ),
        (
            "header name empty",
            |s| s["channel"]["header"][0] = json!(": 1"),
            IssueCode::Value,
            "Subscription.channel.header[0]",
            "header name",
        ),
        (
            "header value newline",
            |s| s["channel"]["header"][1] = json!("X-A: 1\r\nX-B: 2"),
            IssueCode::Value,
            "Subscription.channel.header[1]",
            "not allowed",
        ),
        (
            "header value non-ascii",
            |s| s["channel"]["header"][1] = json!("X-A: café"),
            IssueCode::Value,
            "Subscription.channel.header[1]",
            "not allowed",
        ),
        (
            "content-type header",
            |s| s["channel"]["header"][0] = json!("content-type: text/plain"),
            IssueCode::Value,
            "Subscription.channel.header[0]",
            "set by the server",
        ),
        (
            "content-length header",
            |s| s["channel"]["header"][0] = json!("Content-Length: 1"),
            IssueCode::Value,
            "Subscription.channel.header[0]",
            "set by the server",
        ),
        (
            "host header",
            |s| s["channel"]["header"][0] = json!("Host: evil.example"),
            IssueCode::Value,
            "Subscription.channel.header[0]",
            "set by the server",
        ),
        (
            "signature header",
            |s| s["channel"]["header"][0] = json!("x-wor-hub-signature: sha256=00"),
            IssueCode::Value,
            "Subscription.channel.header[0]",
            "set by the server",
        ),
        (
            "heartbeat zero",
            |s| s["channel"]["extension"][0]["valueUnsignedInt"] = json!(0),
            IssueCode::BusinessRule,
            "Subscription.channel.extension[0]",
            "out of range",
        ),
        (
            "heartbeat string",
            |s| {
                s["channel"]["extension"][0] =
                    json!({ "url": EXT_HEARTBEAT_PERIOD, "valueString": "60" })
            },
            IssueCode::Value,
            "Subscription.channel.extension[0]",
            "valueUnsignedInt",
        ),
        (
            "heartbeat negative",
            |s| s["channel"]["extension"][0]["valueUnsignedInt"] = json!(-5),
            IssueCode::Value,
            "Subscription.channel.extension[0]",
            "integer",
        ),
        (
            "timeout over 60",
            |s| s["channel"]["extension"][1]["valueUnsignedInt"] = json!(61),
            IssueCode::BusinessRule,
            "Subscription.channel.extension[1]",
            "1 to 60",
        ),
        (
            "timeout zero",
            |s| s["channel"]["extension"][1]["valueUnsignedInt"] = json!(0),
            IssueCode::BusinessRule,
            "Subscription.channel.extension[1]",
            "1 to 60",
        ),
        (
            "timeout twice",
            |s| s["channel"]["extension"][0] = json!({ "url": EXT_TIMEOUT, "valueUnsignedInt": 5 }),
            IssueCode::Value,
            "Subscription.channel.extension[1]",
            "once",
        ),
        (
            "max-count over 100",
            |s| s["channel"]["extension"][2]["valuePositiveInt"] = json!(101),
            IssueCode::BusinessRule,
            "Subscription.channel.extension[2]",
            "1 to 100",
        ),
        (
            "max-count as unsignedInt",
            |s| {
                s["channel"]["extension"][2] =
                    json!({ "url": EXT_MAX_COUNT, "valueUnsignedInt": 5 })
            },
            IssueCode::Value,
            "Subscription.channel.extension[2]",
            "valuePositiveInt",
        ),
        (
            "short secret",
            |s| {
                s["channel"]["extension"][3]["valueString"] =
                    json!("0123456789abcdef0123456789abcde")
            },
            IssueCode::BusinessRule,
            "Subscription.channel.extension[3]",
            "32",
        ),
        (
            "secret not a string",
            |s| {
                s["channel"]["extension"][3] =
                    json!({ "url": EXT_SIGNING_SECRET, "valueCode": SECRET })
            },
            IssueCode::BusinessRule,
            "Subscription.channel.extension[3]",
            "valueString",
        ),
        (
            "secret twice",
            |s| {
                s["channel"]["extension"][0] =
                    json!({ "url": EXT_SIGNING_SECRET, "valueString": SECRET })
            },
            IssueCode::Value,
            "Subscription.channel.extension[3]",
            "once",
        ),
        (
            "bad end",
            |s| s["end"] = json!("2027-01-01"),
            IssueCode::Value,
            "Subscription.end",
            "instant",
        ),
    ];
    for (name, change, code, expression, words) in cases {
        let mut s = subscription();
        change(&mut s);
        let (got_code, got_expression, diagnostics) = refusal(&s);
        assert_eq!(got_code, code, "{name}: {diagnostics}");
        assert_eq!(got_expression, expression, "{name}: {diagnostics}");
        assert!(diagnostics.contains(words), "{name}: {diagnostics}");
    }
}
