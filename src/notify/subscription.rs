//! Reading an R4 Subscription in the Subscriptions Backport IG 1.1 form
//! (http://hl7.org/fhir/uv/subscriptions-backport/STU1.1/): topic canonical in `criteria`,
//! filters in `_criteria.extension`, channel settings in `channel.extension`.

use std::fmt;

use serde_json::Value;

use super::delivery::SIGNATURE_HEADER;
use super::endpoint::endpoint_allowed;
use super::secret::{EXT_SIGNING_SECRET, MIN_SECRET_CHARS, SECRET_MASK};
use super::topic::{topic, Topic, TOPICS};
use super::PayloadContent;
use crate::fhir::instant::parse_instant;
use crate::fhir::outcome::{Issue, IssueCode};

const BACKPORT: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";
pub const EXT_FILTER_CRITERIA: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria";
pub const EXT_PAYLOAD_CONTENT: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content";
pub const EXT_HEARTBEAT_PERIOD: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period";
pub const EXT_TIMEOUT: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-timeout";
pub const EXT_MAX_COUNT: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-max-count";

pub const DEFAULT_TIMEOUT: u32 = 10;
pub const MAX_TIMEOUT: u32 = 60;
pub const DEFAULT_MAX_COUNT: u32 = 20;
pub const MAX_MAX_COUNT: u32 = 100;

/// Headers a subscriber may not set: the hub sets them (framing, body type, signature).
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
];

#[derive(Clone, PartialEq)]
pub struct SubscriptionSpec {
    pub topic: &'static Topic,
    /// the filters, each "Type?param=value" as sent in backport-filter-criteria, parsed to
    /// (param, value) pairs
    pub filters: Vec<(String, String)>,
    /// the same joined as a query string "owner=Organization/x&status=requested"
    pub filter_query: String,
    pub endpoint: String,
    pub payload: PayloadContent,
    /// channel.payload mime type: application/fhir+json or application/json
    pub content_type: String,
    /// channel.header entries "Name: value" split into (name, value)
    pub headers: Vec<(String, String)>,
    /// seconds, backport-heartbeat-period
    pub heartbeat_period: Option<u32>,
    /// seconds, backport-timeout, default 10, at most 60
    pub timeout: u32,
    /// backport-max-count, default 20, at most 100
    pub max_count: u32,
    /// Subscription.end, microseconds since the Unix epoch
    pub end: Option<i64>,
    /// the HMAC-SHA256 signing secret, if given
    pub signing_secret: Option<String>,
    /// the secret extension held the mask [`SECRET_MASK`]: keep the previous secret
    pub keep_secret: bool,
    /// Subscription.status as sent
    pub status: String,
}

/// Debug without the signing secret or header values (they may hold credentials), so a
/// logged spec leaks nothing.
impl fmt::Debug for SubscriptionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("SubscriptionSpec")
            .field("topic", &self.topic.canonical)
            .field("filters", &self.filters)
            .field("filter_query", &self.filter_query)
            .field("endpoint", &self.endpoint)
            .field("payload", &self.payload)
            .field("content_type", &self.content_type)
            .field("headers", &header_names)
            .field("heartbeat_period", &self.heartbeat_period)
            .field("timeout", &self.timeout)
            .field("max_count", &self.max_count)
            .field("end", &self.end)
            .field(
                "signing_secret",
                &self.signing_secret.as_ref().map(|_| "[set]"),
            )
            .field("keep_secret", &self.keep_secret)
            .field("status", &self.status)
            .finish()
    }
}

fn issue(code: IssueCode, at: impl Into<String>, diagnostics: impl Into<String>) -> Issue {
    Issue::error(code, diagnostics).at(at)
}

/// Reads an R4 Subscription (with backport extensions). All problems are reported, each
/// with the FHIRPath of the element concerned.
pub fn read_subscription(value: &Value) -> Result<SubscriptionSpec, Vec<Issue>> {
    let mut issues = Vec::new();
    if value.get("resourceType").and_then(Value::as_str) != Some("Subscription") {
        issues.push(issue(
            IssueCode::Invalid,
            "Subscription",
            "expected a Subscription resource",
        ));
        return Err(issues);
    }
    let status = read_status(value, &mut issues);
    let topic = read_topic(value, &mut issues);
    let filters = topic.map_or_else(Vec::new, |t| read_filters(value, t, &mut issues));
    let end = read_end(value, &mut issues);
    let channel = match value.get("channel") {
        Some(c) if c.is_object() => read_channel(c, &mut issues),
        Some(_) => {
            issues.push(issue(
                IssueCode::Invalid,
                "Subscription.channel",
                "channel must be an object",
            ));
            None
        }
        None => {
            issues.push(issue(
                IssueCode::Required,
                "Subscription.channel",
                "channel is required",
            ));
            None
        }
    };
    match (topic, channel, issues.is_empty()) {
        (Some(topic), Some(channel), true) => {
            let filter_query = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(filters.iter())
                .finish();
            Ok(SubscriptionSpec {
                topic,
                filters,
                filter_query,
                endpoint: channel.endpoint,
                payload: channel.payload,
                content_type: channel.content_type,
                headers: channel.headers,
                heartbeat_period: channel.heartbeat_period,
                timeout: channel.timeout,
                max_count: channel.max_count,
                end,
                signing_secret: channel.signing_secret,
                keep_secret: channel.keep_secret,
                status,
            })
        }
        _ => Err(issues),
    }
}

fn read_status(value: &Value, issues: &mut Vec<Issue>) -> String {
    match value.get("status") {
        None => {
            issues.push(issue(
                IssueCode::Required,
                "Subscription.status",
                "status is required (requested, active, error or off)",
            ));
            String::new()
        }
        Some(Value::String(s)) if ["requested", "active", "error", "off"].contains(&s.as_str()) => {
            s.clone()
        }
        Some(other) => {
            issues.push(issue(
                IssueCode::Value,
                "Subscription.status",
                format!("status {other} is not one of requested, active, error, off"),
            ));
            String::new()
        }
    }
}

fn known_topics() -> String {
    TOPICS
        .iter()
        .map(|t| t.canonical)
        .collect::<Vec<_>>()
        .join(", ")
}

fn read_topic(value: &Value, issues: &mut Vec<Issue>) -> Option<&'static Topic> {
    let Some(criteria) = value.get("criteria") else {
        issues.push(issue(
            IssueCode::Required,
            "Subscription.criteria",
            format!(
                "criteria is required: the canonical URL of a topic, one of {}",
                known_topics()
            ),
        ));
        return None;
    };
    let found = criteria.as_str().and_then(topic);
    if found.is_none() {
        issues.push(issue(
            IssueCode::BusinessRule,
            "Subscription.criteria",
            format!(
                "criteria {criteria} is not a topic of this server; known topics: {}",
                known_topics()
            ),
        ));
    }
    found
}

/// The backport-filter-criteria extensions of `_criteria`, each "Type?param=value[&...]".
fn read_filters(value: &Value, topic: &Topic, issues: &mut Vec<Issue>) -> Vec<(String, String)> {
    let mut filters = Vec::new();
    let Some(extensions) = value
        .pointer("/_criteria/extension")
        .and_then(Value::as_array)
    else {
        return filters;
    };
    for (i, ext) in extensions.iter().enumerate() {
        if ext.get("url").and_then(Value::as_str) != Some(EXT_FILTER_CRITERIA) {
            continue;
        }
        let at = format!("Subscription.criteria.extension[{i}]");
        let Some(criterion) = ext.get("valueString").and_then(Value::as_str) else {
            issues.push(issue(
                IssueCode::Value,
                at,
                "backport-filter-criteria needs a valueString such as \"Task?owner=Organization/x\"",
            ));
            continue;
        };
        match parse_filter(criterion, topic) {
            Ok(pairs) => filters.extend(pairs),
            Err(message) => issues.push(issue(IssueCode::BusinessRule, at, message)),
        }
    }
    filters
}

fn parse_filter(criterion: &str, topic: &Topic) -> Result<Vec<(String, String)>, String> {
    let Some((ty, query)) = criterion.split_once('?') else {
        return Err(format!(
            "filter \"{criterion}\" must have the form \"{}?parameter=value\"",
            topic.resource_type
        ));
    };
    if ty != topic.resource_type {
        return Err(format!(
            "filter \"{criterion}\" is on {ty}, but topic {} is about {}",
            topic.canonical, topic.resource_type
        ));
    }
    if topic.filters.is_empty() {
        return Err(format!("topic {} takes no filters", topic.canonical));
    }
    let allowed = topic.filters.join(", ");
    let mut pairs = Vec::new();
    for part in query.split('&') {
        if part.is_empty() {
            continue;
        }
        let Some((raw_name, _)) = part.split_once('=') else {
            return Err(format!("filter \"{part}\" has no value (parameter=value)"));
        };
        let (name, value) = form_urlencoded::parse(part.as_bytes())
            .next()
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .unwrap_or_default();
        if raw_name.contains(':') || name.contains(':') {
            return Err(format!(
                "filter parameter \"{name}\": modifiers are not supported; allowed parameters: {allowed}"
            ));
        }
        if !topic.filters.contains(&name.as_str()) {
            return Err(format!(
                "\"{name}\" is not a filter of topic {}; allowed: {allowed}",
                topic.canonical
            ));
        }
        if value.trim().is_empty() {
            return Err(format!("filter parameter \"{name}\" has an empty value"));
        }
        if value.contains(',') {
            return Err(format!(
                "filter parameter \"{name}\" takes one value, not a list; subscribe once per value"
            ));
        }
        pairs.push((name, value));
    }
    if pairs.is_empty() {
        return Err(format!("filter \"{criterion}\" names no parameter"));
    }
    Ok(pairs)
}

fn read_end(value: &Value, issues: &mut Vec<Issue>) -> Option<i64> {
    let end = value.get("end")?;
    let parsed = end.as_str().and_then(parse_instant);
    if parsed.is_none() {
        issues.push(issue(
            IssueCode::Value,
            "Subscription.end",
            format!("end {end} is not an instant with time zone (e.g. 2027-01-01T00:00:00Z)"),
        ));
    }
    parsed
}

struct Channel {
    endpoint: String,
    payload: PayloadContent,
    content_type: String,
    headers: Vec<(String, String)>,
    heartbeat_period: Option<u32>,
    timeout: u32,
    max_count: u32,
    signing_secret: Option<String>,
    keep_secret: bool,
}

fn read_channel(channel: &Value, issues: &mut Vec<Issue>) -> Option<Channel> {
    let before = issues.len();
    match channel.get("type").and_then(Value::as_str) {
        Some("rest-hook") => {}
        None if channel.get("type").is_none() => issues.push(issue(
            IssueCode::Required,
            "Subscription.channel.type",
            "channel.type is required; this server supports rest-hook",
        )),
        _ => issues.push(issue(
            IssueCode::BusinessRule,
            "Subscription.channel.type",
            format!(
                "channel.type {} is not supported; this server supports rest-hook only",
                channel.get("type").unwrap_or(&Value::Null)
            ),
        )),
    }
    let endpoint = match channel.get("endpoint") {
        None => {
            issues.push(issue(
                IssueCode::Required,
                "Subscription.channel.endpoint",
                "channel.endpoint is required for rest-hook",
            ));
            String::new()
        }
        Some(Value::String(url)) => {
            if let Err(message) = endpoint_allowed(url) {
                issues.push(issue(
                    IssueCode::BusinessRule,
                    "Subscription.channel.endpoint",
                    message,
                ));
            }
            url.clone()
        }
        Some(_) => {
            issues.push(issue(
                IssueCode::Value,
                "Subscription.channel.endpoint",
                "channel.endpoint must be a URL string",
            ));
            String::new()
        }
    };
    let content_type = read_content_type(channel, issues);
    let payload = read_payload_content(channel, issues);
    let headers = read_headers(channel, issues);
    let ext = read_channel_extensions(channel, issues);
    (issues.len() == before).then_some(Channel {
        endpoint,
        payload,
        content_type,
        headers,
        heartbeat_period: ext.heartbeat_period,
        timeout: ext.timeout.unwrap_or(DEFAULT_TIMEOUT),
        max_count: ext.max_count.unwrap_or(DEFAULT_MAX_COUNT),
        signing_secret: ext.signing_secret,
        keep_secret: ext.keep_secret,
    })
}

/// `channel.payload`: the mime type of notification bodies. Absent, FHIR JSON is sent.
fn read_content_type(channel: &Value, issues: &mut Vec<Issue>) -> String {
    let Some(payload) = channel.get("payload") else {
        return "application/fhir+json".to_owned();
    };
    let mime = payload.as_str().unwrap_or_default().trim();
    let essence = mime.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/fhir+json")
        || essence.eq_ignore_ascii_case("application/json")
    {
        mime.to_owned()
    } else {
        issues.push(issue(
            IssueCode::BusinessRule,
            "Subscription.channel.payload",
            format!(
                "channel.payload {payload} is not supported; use application/fhir+json (or application/json)"
            ),
        ));
        String::new()
    }
}

/// backport-payload-content on `channel._payload`; default id-only.
fn read_payload_content(channel: &Value, issues: &mut Vec<Issue>) -> PayloadContent {
    let mut found = None;
    let Some(extensions) = channel
        .pointer("/_payload/extension")
        .and_then(Value::as_array)
    else {
        return PayloadContent::IdOnly;
    };
    for (i, ext) in extensions.iter().enumerate() {
        if ext.get("url").and_then(Value::as_str) != Some(EXT_PAYLOAD_CONTENT) {
            continue;
        }
        let at = format!("Subscription.channel.payload.extension[{i}]");
        let code = ext.get("valueCode").and_then(Value::as_str);
        match code.and_then(PayloadContent::from_code) {
            Some(_) if found.is_some() => issues.push(issue(
                IssueCode::Value,
                at,
                "backport-payload-content may appear once",
            )),
            Some(content) => found = Some(content),
            None => issues.push(issue(
                IssueCode::Value,
                at,
                "backport-payload-content needs valueCode empty, id-only or full-resource",
            )),
        }
    }
    found.unwrap_or(PayloadContent::IdOnly)
}

/// `channel.header`: "Name: value" strings, each sent with every notification.
fn read_headers(channel: &Value, issues: &mut Vec<Issue>) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    let Some(list) = channel.get("header") else {
        return headers;
    };
    let Some(list) = list.as_array() else {
        issues.push(issue(
            IssueCode::Invalid,
            "Subscription.channel.header",
            "channel.header must be an array of strings",
        ));
        return headers;
    };
    for (i, header) in list.iter().enumerate() {
        let at = format!("Subscription.channel.header[{i}]");
        match header
            .as_str()
            .ok_or_else(|| "a header must be a string \"Name: value\"".to_owned())
            .and_then(parse_header)
        {
            Ok(pair) => headers.push(pair),
            Err(message) => issues.push(issue(IssueCode::Value, at, message)),
        }
    }
    headers
}

pub(crate) fn parse_header(header: &str) -> Result<(String, String), String> {
    let Some((name, value)) = header.split_once(':') else {
        return Err("a header must have the form \"Name: value\"".to_owned());
    };
    // RFC 9110 token: no spaces around the name.
    let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(is_tchar) {
        return Err(format!("\"{name}\" is not a valid HTTP header name"));
    }
    let value = value.trim_matches([' ', '\t']);
    // field-value: visible ASCII, spaces and tabs; never CR or LF.
    if !value
        .chars()
        .all(|c| c == ' ' || c == '\t' || c.is_ascii_graphic())
    {
        return Err(format!(
            "the value of header {name} holds characters not allowed in an HTTP header"
        ));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lower.as_str()) || lower.eq_ignore_ascii_case(SIGNATURE_HEADER) {
        return Err(format!(
            "header {name} is set by the server and may not be given"
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

#[derive(Default)]
struct ChannelExtensions {
    heartbeat_period: Option<u32>,
    timeout: Option<u32>,
    max_count: Option<u32>,
    signing_secret: Option<String>,
    keep_secret: bool,
}

fn read_channel_extensions(channel: &Value, issues: &mut Vec<Issue>) -> ChannelExtensions {
    let mut out = ChannelExtensions::default();
    let Some(extensions) = channel.get("extension").and_then(Value::as_array) else {
        return out;
    };
    let mut secret_seen = false;
    for (i, ext) in extensions.iter().enumerate() {
        let at = format!("Subscription.channel.extension[{i}]");
        let url = ext.get("url").and_then(Value::as_str).unwrap_or_default();
        let slot = match url {
            EXT_HEARTBEAT_PERIOD => {
                Some((&mut out.heartbeat_period, "valueUnsignedInt", 1, u32::MAX))
            }
            EXT_TIMEOUT => Some((&mut out.timeout, "valueUnsignedInt", 1, MAX_TIMEOUT)),
            EXT_MAX_COUNT => Some((&mut out.max_count, "valuePositiveInt", 1, MAX_MAX_COUNT)),
            _ => None,
        };
        if let Some((slot, element, min, max)) = slot {
            let name = url.trim_start_matches(BACKPORT);
            let number = ext.get(element).and_then(Value::as_u64);
            match number.and_then(|n| u32::try_from(n).ok()) {
                _ if slot.is_some() => {
                    issues.push(issue(
                        IssueCode::Value,
                        at,
                        format!("{name} may appear once"),
                    ));
                }
                Some(n) if (min..=max).contains(&n) => *slot = Some(n),
                Some(n) => issues.push(issue(
                    IssueCode::BusinessRule,
                    at,
                    format!("{name} {n} is out of range: {min} to {max}"),
                )),
                None => issues.push(issue(
                    IssueCode::Value,
                    at,
                    format!("{name} needs an integer {element}"),
                )),
            }
            continue;
        }
        if url == EXT_SIGNING_SECRET {
            if secret_seen {
                issues.push(issue(
                    IssueCode::Value,
                    at,
                    "the signing secret may appear once",
                ));
                continue;
            }
            secret_seen = true;
            match ext.get("valueString").and_then(Value::as_str) {
                Some(SECRET_MASK) => out.keep_secret = true,
                Some(s) if s.chars().count() >= MIN_SECRET_CHARS => {
                    out.signing_secret = Some(s.to_owned());
                }
                _ => issues.push(issue(
                    IssueCode::BusinessRule,
                    at,
                    format!(
                        "the signing secret needs a valueString of at least {MIN_SECRET_CHARS} characters"
                    ),
                )),
            }
        }
    }
    out
}
