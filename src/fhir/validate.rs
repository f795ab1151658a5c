// TEMPORARY until the validation module lands (being written in parallel).
use crate::fhir::outcome::{Issue, IssueCode};
pub fn validate_resource(resource_type: &str, resource: &serde_json::Value) -> Vec<Issue> {
    match resource.get("resourceType").and_then(|v| v.as_str()) {
        Some(t) if t == resource_type => vec![],
        _ => vec![Issue::error(IssueCode::Invalid, "resourceType mismatch").at("resourceType")],
    }
}
pub fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}
