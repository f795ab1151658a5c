//! FHIR messaging for referral gateways (messaging.html, profiles/README-message-intake.md):
//! reading a `message` Bundle's MessageHeader, and building the hub's response and
//! status messages. Pure: what is stored and sent is the application's (`app::message`).

use serde_json::{json, Value};

use crate::fhir::outcome::{Issue, IssueCode};

/// The events of https://wor-hub.nl/fhir/CodeSystem/message-event.
pub const CS_MESSAGE_EVENT: &str = "https://wor-hub.nl/fhir/CodeSystem/message-event";
/// The MessageDefinitions, one per event: `<base><code>`.
pub const MESSAGE_DEFINITION_BASE: &str = "https://wor-hub.nl/fhir/MessageDefinition/";
/// The outbox topic of a sender's Endpoint: its referral-status messages.
pub const STATUS_CHANNEL: &str = "https://wor-hub.nl/fhir/MessageDefinition/referral-status";
/// The outbox row of Endpoint `<id>` is `Endpoint/<id>` (Subscription ids hold no `/`).
pub const ENDPOINT_ROW_PREFIX: &str = "Endpoint/";
/// http://hl7.org/fhir/response-code
pub const CS_RESPONSE_CODE: &str = "http://hl7.org/fhir/response-code";
/// Endpoint.connectionType of a message sender's endpoint.
pub const CS_CONNECTION_TYPE: &str =
    "http://terminology.hl7.org/CodeSystem/endpoint-connection-type";
pub const CONNECTION_FHIR_MSG: &str = "hl7-fhir-msg";

/// A message event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A new referral (sender -> hub).
    New,
    /// A referral sent before, updated (sender -> hub).
    Update,
    /// The referrer cancels (sender -> hub).
    Cancel,
    /// The referral's Task changed (hub -> sender).
    Status,
}

impl Event {
    pub fn code(self) -> &'static str {
        match self {
            Self::New => "referral-new",
            Self::Update => "referral-update",
            Self::Cancel => "referral-cancel",
            Self::Status => "referral-status",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        [Self::New, Self::Update, Self::Cancel, Self::Status]
            .into_iter()
            .find(|e| e.code() == code)
    }

    /// The MessageDefinition of the event.
    pub fn definition(self) -> String {
        format!("{MESSAGE_DEFINITION_BASE}{}", self.code())
    }

    fn coding(self) -> Value {
        json!({"system": CS_MESSAGE_EVENT, "code": self.code()})
    }
}

/// What the hub reads from a message's MessageHeader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// MessageHeader.id: the message's identity.
    pub id: String,
    pub event: Event,
    /// MessageHeader.source.endpoint.
    pub source: String,
    /// The index of the Bundle entry the ServiceRequest focus names.
    pub focus_entry: usize,
    /// MessageHeader.reason as text (a cancellation's reason).
    pub reason: Option<String>,
}

fn invalid(code: IssueCode, at: impl Into<String>, diagnostics: impl Into<String>) -> Issue {
    Issue::error(code, diagnostics).at(at)
}

/// A refusal and whether it is a business rule (422) rather than a malformed message (400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub issue: Issue,
    pub unprocessable: bool,
}

fn bad(code: IssueCode, at: impl Into<String>, diagnostics: impl Into<String>) -> Refused {
    Refused {
        issue: invalid(code, at, diagnostics),
        unprocessable: false,
    }
}

fn unprocessable(
    code: IssueCode,
    at: impl Into<String>,
    diagnostics: impl Into<String>,
) -> Refused {
    Refused {
        issue: invalid(code, at, diagnostics),
        unprocessable: true,
    }
}

const MH: &str = "Bundle.entry[0].resource";

fn text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The checks of messaging.html this hub makes before anything else: a `message`
/// Bundle, MessageHeader first with an id, an event the hub takes, a source endpoint,
/// every entry with a fullUrl, and a focus naming exactly one ServiceRequest entry.
pub fn read_header(bundle: &Value) -> Result<Header, Refused> {
    let kind = bundle.get("type").and_then(Value::as_str);
    if kind != Some("message") {
        return Err(unprocessable(
            IssueCode::NotSupported,
            "Bundle.type",
            format!(
                "$process-message takes messages (Bundle.type message), not {}; documents are posted to /fhir/Bundle, transactions to /fhir",
                kind.unwrap_or("a Bundle without type")
            ),
        ));
    }
    let entries = bundle
        .get("entry")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let header = entries
        .first()
        .and_then(|e| e.get("resource"))
        .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("MessageHeader"))
        .ok_or_else(|| {
            bad(
                IssueCode::Structure,
                MH,
                "The first entry of a message must be its MessageHeader",
            )
        })?;
    let id = text(header.get("id")).ok_or_else(|| {
        bad(
            IssueCode::Required,
            format!("{MH}.id"),
            "The MessageHeader needs an id: it is the message's identity, by which a message delivered again is recognised",
        )
    })?;
    let event = read_event(header)?;
    let source = text(header.pointer("/source/endpoint")).ok_or_else(|| {
        bad(
            IssueCode::Required,
            format!("{MH}.source.endpoint"),
            "The MessageHeader needs source.endpoint: the endpoint the sender registered (as an Endpoint resource) for responses",
        )
    })?;
    let mut full_urls = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let url = text(e.get("fullUrl")).ok_or_else(|| {
            bad(
                IssueCode::Required,
                format!("Bundle.entry[{i}].fullUrl"),
                "Every entry of a message needs a fullUrl",
            )
        })?;
        full_urls.push(url);
    }
    let foci = header
        .get("focus")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if foci.is_empty() {
        return Err(bad(
            IssueCode::Required,
            format!("{MH}.focus"),
            format!(
                "A {} message names its ServiceRequest in MessageHeader.focus",
                event.code()
            ),
        ));
    }
    let mut referral = Vec::new();
    for (i, f) in foci.iter().enumerate() {
        let at = format!("{MH}.focus[{i}].reference");
        let r = text(f.get("reference"))
            .ok_or_else(|| bad(IssueCode::Required, &at, "A focus needs a reference"))?;
        let Some(index) = full_urls.iter().position(|u| *u == r) else {
            return Err(bad(
                IssueCode::NotFound,
                at,
                format!(
                    "'{r}' names no entry of this message (a focus resolves inside the Bundle)"
                ),
            ));
        };
        let ty = entries[index]
            .pointer("/resource/resourceType")
            .and_then(Value::as_str);
        if ty == Some("ServiceRequest") {
            referral.push(index);
        }
    }
    let [focus_entry] = referral.as_slice() else {
        return Err(unprocessable(
            IssueCode::BusinessRule,
            format!("{MH}.focus"),
            format!(
                "A {} message has exactly one ServiceRequest among its foci (this one has {})",
                event.code(),
                referral.len()
            ),
        ));
    };
    let reason = header.get("reason").and_then(|r| {
        text(r.get("text")).map(str::to_owned).or_else(|| {
            r.get("coding")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find_map(|c| text(c.get("display")).or_else(|| text(c.get("code"))))
                .map(str::to_owned)
        })
    });
    Ok(Header {
        id: id.to_owned(),
        event,
        source: source.to_owned(),
        focus_entry: *focus_entry,
        reason,
    })
}

fn read_event(header: &Value) -> Result<Event, Refused> {
    let at = format!("{MH}.eventCoding");
    if header.get("eventUri").is_some() {
        return Err(unprocessable(
            IssueCode::NotSupported,
            format!("{MH}.eventUri"),
            format!("This hub names events by eventCoding from {CS_MESSAGE_EVENT}, not eventUri"),
        ));
    }
    let Some(coding) = header.get("eventCoding") else {
        return Err(bad(
            IssueCode::Required,
            at,
            format!("The MessageHeader needs eventCoding (system {CS_MESSAGE_EVENT})"),
        ));
    };
    let system = coding.get("system").and_then(Value::as_str);
    let code = coding.get("code").and_then(Value::as_str).unwrap_or("");
    let event = (system == Some(CS_MESSAGE_EVENT))
        .then(|| Event::from_code(code))
        .flatten()
        .filter(|e| *e != Event::Status);
    event.ok_or_else(|| {
        unprocessable(
            IssueCode::NotSupported,
            at,
            format!(
                "Unknown event {}|{code}: this hub takes {CS_MESSAGE_EVENT} referral-new, referral-update and referral-cancel",
                system.unwrap_or("(no system)")
            ),
        )
    })
}

/// The first identifier with a system of a resource, as `system|value`.
pub fn business_identifier(resource: &Value) -> Option<(String, String)> {
    resource
        .get("identifier")?
        .as_array()?
        .iter()
        .find_map(|id| {
            let system = id.get("system")?.as_str()?;
            let value = id.get("value")?.as_str()?;
            Some((system.to_owned(), value.to_owned()))
        })
}

/// What a message from the hub says.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    /// MessageHeader.id (stable across retries for a status message).
    pub id: &'a str,
    pub event: Event,
    /// The hub's FHIR base URL (its source endpoint).
    pub base: &'a str,
    /// The sender's endpoint (destination).
    pub destination: &'a str,
    /// The MessageHeader.id answered.
    pub response_to: &'a str,
    pub timestamp: &'a str,
    /// The resources carried (stored bodies, with id), focus first.
    pub resources: &'a [Value],
}

/// A response message: MessageHeader (response `ok`, focus every resource carried)
/// and the resources, each under its URL on this server.
pub fn outgoing_message(m: &Outgoing<'_>) -> Value {
    let url = |r: &Value| {
        format!(
            "{}/{}/{}",
            m.base,
            r["resourceType"].as_str().unwrap_or_default(),
            r["id"].as_str().unwrap_or_default()
        )
    };
    let focus: Vec<Value> = m
        .resources
        .iter()
        .map(|r| json!({"reference": url(r)}))
        .collect();
    let header = json!({
        "resourceType": "MessageHeader",
        "id": m.id,
        "eventCoding": m.event.coding(),
        "destination": [{"endpoint": m.destination}],
        "source": {
            "name": "wor-hub",
            "software": "wor-hub",
            "version": env!("CARGO_PKG_VERSION"),
            "endpoint": m.base,
        },
        "response": {"identifier": m.response_to, "code": "ok"},
        "focus": focus,
        "definition": m.event.definition(),
    });
    let mut entries = vec![json!({
        "fullUrl": format!("{}/MessageHeader/{}", m.base, m.id),
        "resource": header,
    })];
    entries.extend(
        m.resources
            .iter()
            .map(|r| json!({"fullUrl": url(r), "resource": r})),
    );
    json!({
        "resourceType": "Bundle",
        "type": "message",
        "timestamp": m.timestamp,
        "entry": entries,
    })
}

/// Whether a Task version is news to the referral's sender: its status, business
/// status or owner differs from the version before.
pub fn status_changed(previous: Option<&Value>, current: &Value) -> bool {
    let Some(previous) = previous else {
        return true;
    };
    ["status", "businessStatus", "owner"]
        .iter()
        .any(|k| previous.get(*k) != current.get(*k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(event: &str) -> Value {
        json!({
            "resourceType": "Bundle",
            "type": "message",
            "entry": [
                {"fullUrl": "urn:uuid:h", "resource": {
                    "resourceType": "MessageHeader", "id": "m1",
                    "eventCoding": {"system": CS_MESSAGE_EVENT, "code": event},
                    "source": {"endpoint": "https://gp.example/msg"},
                    "focus": [{"reference": "urn:uuid:sr"}],
                    "reason": {"text": "moved away"}}},
                {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient"}},
                {"fullUrl": "urn:uuid:sr", "resource": {"resourceType": "ServiceRequest"}}
            ]
        })
    }

    #[test]
    fn reads_a_header() {
        let h = read_header(&message("referral-cancel")).unwrap();
        assert_eq!(h.id, "m1");
        assert_eq!(h.event, Event::Cancel);
        assert_eq!(h.source, "https://gp.example/msg");
        assert_eq!(h.focus_entry, 2);
        assert_eq!(h.reason.as_deref(), Some("moved away"));
    }

    #[test]
    fn refuses_what_it_cannot_take() {
        let e = read_header(&message("referral-status")).unwrap_err();
        assert!(e.unprocessable);
        assert_eq!(
            e.issue.expression.as_deref(),
            Some("Bundle.entry[0].resource.eventCoding")
        );
        let mut m = message("referral-new");
        m["entry"][0]["resource"]["focus"][0]["reference"] = json!("urn:uuid:nowhere");
        let e = read_header(&m).unwrap_err();
        assert!(!e.unprocessable);
        assert_eq!(
            e.issue.expression.as_deref(),
            Some("Bundle.entry[0].resource.focus[0].reference")
        );
        let mut m = message("referral-new");
        m["entry"][0]["resource"]["focus"][0]["reference"] = json!("urn:uuid:p");
        assert!(read_header(&m).unwrap_err().unprocessable);
        let mut m = message("referral-new");
        m["entry"].as_array_mut().unwrap().remove(0);
        let e = read_header(&m).unwrap_err();
        assert_eq!(
            e.issue.expression.as_deref(),
            Some("Bundle.entry[0].resource")
        );
        let mut m = message("referral-new");
        m["type"] = json!("document");
        assert_eq!(
            read_header(&m).unwrap_err().issue.expression.as_deref(),
            Some("Bundle.type")
        );
        let mut m = message("referral-new");
        m["entry"][0]["resource"]
            .as_object_mut()
            .unwrap()
            .remove("id");
        assert_eq!(
            read_header(&m).unwrap_err().issue.expression.as_deref(),
            Some("Bundle.entry[0].resource.id")
        );
    }

    #[test]
    fn a_response_names_what_it_answers() {
        let task = json!({"resourceType": "Task", "id": "t1"});
        let sr = json!({"resourceType": "ServiceRequest", "id": "s1"});
        let m = outgoing_message(&Outgoing {
            id: "r1",
            event: Event::Status,
            base: "http://hub/fhir",
            destination: "https://gp.example/msg",
            response_to: "m1",
            timestamp: "2026-12-03T10:00:00Z",
            resources: &[task, sr],
        });
        assert_eq!(m["type"], "message");
        let h = &m["entry"][0]["resource"];
        assert_eq!(h["response"]["identifier"], "m1");
        assert_eq!(h["eventCoding"]["code"], "referral-status");
        assert_eq!(h["focus"][0]["reference"], "http://hub/fhir/Task/t1");
        assert_eq!(
            m["entry"][2]["fullUrl"],
            "http://hub/fhir/ServiceRequest/s1"
        );
    }

    #[test]
    fn status_news_is_status_business_status_or_owner() {
        let a = json!({"status": "requested", "owner": {"reference": "Organization/a"}});
        let mut b = a.clone();
        assert!(!status_changed(Some(&a), &b));
        b["note"] = json!([{"text": "x"}]);
        assert!(!status_changed(Some(&a), &b));
        b["status"] = json!("accepted");
        assert!(status_changed(Some(&a), &b));
        assert!(status_changed(None, &a));
    }
}
