//! A message sender's Endpoint (R4 Endpoint, connectionType hl7-fhir-msg): where the
//! hub sends the referral-status messages of the referrals that sender sent
//! (profiles/README-message-intake.md). Read and checked here; no actix, no diesel.

use serde_json::Value;

use super::endpoint::endpoint_allowed;
use super::subscription::parse_header;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::referral::message::{CONNECTION_FHIR_MSG, CS_CONNECTION_TYPE};

/// What the hub needs of a messaging Endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct MessageEndpoint {
    pub address: String,
    /// `header`: "Name: value" strings, sent with every message.
    pub headers: Vec<(String, String)>,
    /// The first `payloadMimeType`, or application/fhir+json.
    pub content_type: String,
    /// Endpoint.status.
    pub status: String,
}

impl std::fmt::Debug for MessageEndpoint {
    // Header values may hold credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("MessageEndpoint")
            .field("address", &self.address)
            .field("headers", &names)
            .field("content_type", &self.content_type)
            .field("status", &self.status)
            .finish()
    }
}

/// Is this Endpoint one a message sender registered (connectionType hl7-fhir-msg)?
pub fn is_messaging(endpoint: &Value) -> bool {
    let coding = &endpoint["connectionType"];
    coding["code"].as_str() == Some(CONNECTION_FHIR_MSG)
        && coding["system"]
            .as_str()
            .is_none_or(|s| s == CS_CONNECTION_TYPE)
}

/// Reads a messaging Endpoint; `Ok(None)` for other Endpoints. The address must be
/// one the hub may post to (as a Subscription's endpoint), the headers well formed.
pub fn read_message_endpoint(endpoint: &Value) -> Result<Option<MessageEndpoint>, Vec<Issue>> {
    if !is_messaging(endpoint) {
        return Ok(None);
    }
    let mut issues = Vec::new();
    let address = endpoint["address"].as_str().unwrap_or_default().to_owned();
    if let Err(message) = endpoint_allowed(&address) {
        issues.push(Issue::error(IssueCode::Value, message).at("Endpoint.address"));
    }
    let mut headers = Vec::new();
    for (i, h) in endpoint["header"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        match h
            .as_str()
            .ok_or_else(|| "a header must be a string \"Name: value\"".to_owned())
            .and_then(parse_header)
        {
            Ok(pair) => headers.push(pair),
            Err(message) => {
                issues.push(
                    Issue::error(IssueCode::Value, message).at(format!("Endpoint.header[{i}]")),
                );
            }
        }
    }
    let content_type = match endpoint["payloadMimeType"].get(0).and_then(Value::as_str) {
        None => "application/fhir+json".to_owned(),
        Some(t @ ("application/fhir+json" | "application/json")) => t.to_owned(),
        Some(other) => {
            issues.push(
                Issue::error(
                    IssueCode::NotSupported,
                    format!("The hub sends messages as application/fhir+json, not {other}"),
                )
                .at("Endpoint.payloadMimeType[0]"),
            );
            String::new()
        }
    };
    if !issues.is_empty() {
        return Err(issues);
    }
    Ok(Some(MessageEndpoint {
        address,
        headers,
        content_type,
        status: endpoint["status"].as_str().unwrap_or_default().to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn endpoint() -> Value {
        json!({"resourceType": "Endpoint", "status": "active",
            "connectionType": {"system": CS_CONNECTION_TYPE, "code": "hl7-fhir-msg"},
            "payloadType": [{"text": "referral messages"}],
            "address": "https://gp.example/fhir/msg",
            "header": ["Authorization: Bearer abc"]})
    }

    #[test]
    fn reads_a_messaging_endpoint() {
        let e = read_message_endpoint(&endpoint()).unwrap().unwrap();
        assert_eq!(e.address, "https://gp.example/fhir/msg");
        assert_eq!(
            e.headers,
            vec![("Authorization".to_owned(), "Bearer abc".to_owned())]
        );
        assert_eq!(e.content_type, "application/fhir+json");
        assert!(!format!("{e:?}").contains("abc"));
    }

    #[test]
    fn other_endpoints_pass_and_bad_ones_are_named() {
        let mut other = endpoint();
        other["connectionType"]["code"] = json!("hl7-fhir-rest");
        assert_eq!(read_message_endpoint(&other).unwrap(), None);
        let mut bad = endpoint();
        bad["address"] = json!("http://gp.example/msg");
        bad["header"] = json!(["no colon"]);
        let issues = read_message_endpoint(&bad).unwrap_err();
        let at: Vec<_> = issues
            .iter()
            .filter_map(|i| i.expression.as_deref())
            .collect();
        assert_eq!(at, ["Endpoint.address", "Endpoint.header[0]"]);
    }
}
