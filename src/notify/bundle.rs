//! Notification Bundles in the R4 form of the Subscriptions Backport IG 1.1: a `history`
//! Bundle whose first entry is the SubscriptionStatus as a `Parameters` resource
//! (profile backport-subscription-status-r4), then one entry per event focus unless the
//! payload is `empty`.

use serde_json::{json, Map, Value};

use super::{NotificationType, PayloadContent};
use crate::fhir::instant::{format_instant, now_micros};

pub const PROFILE_NOTIFICATION_R4: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-notification-r4";
pub const PROFILE_STATUS_R4: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4";

/// One event of a notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub number: i64,
    /// microseconds since the Unix epoch (the version's commit stamp)
    pub timestamp: i64,
    /// "Task/abc"
    pub focus: String,
    /// the focus version id at the event
    pub focus_version: i64,
    /// the focus resource (that version) when the payload is full-resource, else None
    pub resource: Option<Value>,
}

/// The subscription's state, for the status `Parameters`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusInfo {
    /// absolute URL of the Subscription, e.g. "http://127.0.0.1:8080/fhir/Subscription/s1"
    pub subscription: String,
    pub topic: String,
    /// requested | active | error | off
    pub status: String,
    pub kind: NotificationType,
    pub events_since_start: i64,
    pub error: Option<String>,
}

/// The notification Bundle. `base` is the FHIR base URL ("http://host/fhir"), used for the
/// focus references and fullUrls. Bundle id: a fresh uuid v4; timestamp: now.
pub fn notification_bundle(
    base: &str,
    status: &StatusInfo,
    events: &[Event],
    payload: PayloadContent,
) -> Value {
    let base = base.trim_end_matches('/');
    let status_id = uuid::Uuid::new_v4().to_string();
    let parameters = parameters(status, events, payload, Some(base), Some(&status_id));
    let mut entries = vec![json!({
        "fullUrl": format!("urn:uuid:{status_id}"),
        "resource": parameters,
        // A history Bundle needs request and response (bdl-3, bdl-4); the IG fills the
        // status entry as a $status call.
        "request": { "method": "GET", "url": format!("{}/$status", status.subscription) },
        "response": { "status": "200" },
    })];
    if payload != PayloadContent::Empty {
        entries.extend(events.iter().map(|e| focus_entry(base, e, payload)));
    }
    json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "meta": { "profile": [PROFILE_NOTIFICATION_R4] },
        "type": "history",
        "timestamp": format_instant(now_micros()),
        "entry": entries,
    })
}

/// The SubscriptionStatus as an R4 `Parameters` resource (for `$status`, which wraps it in a
/// searchset itself). Focus references are made absolute with the base taken from
/// `status.subscription` ("[base]/Subscription/[id]").
pub fn status_parameters(status: &StatusInfo, events: &[Event], payload: PayloadContent) -> Value {
    let base = status
        .subscription
        .rfind("/Subscription/")
        .map(|i| &status.subscription[..i]);
    parameters(status, events, payload, base, None)
}

fn reference(base: Option<&str>, focus: &str) -> String {
    match base {
        Some(base) if !focus.contains("://") => format!("{base}/{focus}"),
        _ => focus.to_owned(),
    }
}

fn parameters(
    status: &StatusInfo,
    events: &[Event],
    payload: PayloadContent,
    base: Option<&str>,
    id: Option<&str>,
) -> Value {
    let mut parameter = vec![json!({
        "name": "subscription",
        "valueReference": { "reference": status.subscription },
    })];
    // The IG: topic SHOULD NOT be present with empty payloads.
    if payload != PayloadContent::Empty {
        parameter.push(json!({ "name": "topic", "valueCanonical": status.topic }));
    }
    parameter.push(json!({ "name": "status", "valueCode": status.status }));
    parameter.push(json!({ "name": "type", "valueCode": status.kind.code() }));
    // R4: a string (the R5 integer64 has no R4 type).
    parameter.push(json!({
        "name": "events-since-subscription-start",
        "valueString": status.events_since_start.to_string(),
    }));
    for event in events {
        let mut part = vec![
            json!({ "name": "event-number", "valueString": event.number.to_string() }),
            json!({ "name": "timestamp", "valueInstant": format_instant(event.timestamp) }),
        ];
        // The IG: an empty payload SHALL NOT reference resources.
        if payload != PayloadContent::Empty {
            part.push(json!({
                "name": "focus",
                "valueReference": { "reference": reference(base, &event.focus) },
            }));
        }
        parameter.push(json!({ "name": "notification-event", "part": part }));
    }
    if let Some(error) = &status.error {
        parameter.push(json!({ "name": "error", "valueCodeableConcept": { "text": error } }));
    }
    let mut resource = Map::new();
    resource.insert("resourceType".to_owned(), json!("Parameters"));
    if let Some(id) = id {
        resource.insert("id".to_owned(), json!(id));
    }
    resource.insert("meta".to_owned(), json!({ "profile": [PROFILE_STATUS_R4] }));
    resource.insert("parameter".to_owned(), Value::Array(parameter));
    Value::Object(resource)
}

/// A focus entry: fullUrl and request/response always (history Bundle), the resource only
/// with full-resource. Version 1 was a create (POST, 201), later versions updates (PUT, 200).
fn focus_entry(base: &str, event: &Event, payload: PayloadContent) -> Value {
    let resource_type = event.focus.split('/').next().unwrap_or_default();
    let (method, url, code) = if event.focus_version <= 1 {
        ("POST", resource_type.to_owned(), "201")
    } else {
        ("PUT", event.focus.clone(), "200")
    };
    let mut entry = Map::new();
    entry.insert(
        "fullUrl".to_owned(),
        json!(reference(Some(base), &event.focus)),
    );
    if payload == PayloadContent::FullResource {
        if let Some(resource) = &event.resource {
            entry.insert("resource".to_owned(), resource.clone());
        }
    }
    entry.insert(
        "request".to_owned(),
        json!({ "method": method, "url": url }),
    );
    entry.insert(
        "response".to_owned(),
        json!({
            "status": code,
            "etag": format!("W/\"{}\"", event.focus_version),
            "lastModified": format_instant(event.timestamp),
        }),
    );
    Value::Object(entry)
}
