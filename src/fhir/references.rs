//! Local references in a resource: `Type/id` (optionally `/_history/n`), relative or
//! under this server's base URL. Contained (`#id`), other servers' URLs, `urn:` and
//! identifier-only references are not local.

use serde_json::Value;

/// A local reference found at `path` (FHIRPath of the `reference` element).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRef {
    pub path: String,
    pub resource_type: String,
    pub id: String,
}

/// Every `Reference.reference` string in `resource`, with its FHIRPath.
pub fn reference_strings<'v>(resource_type: &str, resource: &'v Value) -> Vec<(String, &'v str)> {
    let mut out = Vec::new();
    walk(resource, resource_type, &mut out);
    out
}

fn walk<'v>(value: &'v Value, path: &str, out: &mut Vec<(String, &'v str)>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("reference") {
                out.push((format!("{path}.reference"), r.as_str()));
            }
            for (key, child) in map {
                if key != "reference" {
                    walk(child, &format!("{path}.{key}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Parses `reference` as a local reference, given this server's FHIR base URL.
pub fn parse_local(reference: &str, base_url: &str) -> Option<(String, String)> {
    let relative = match reference.strip_prefix(base_url) {
        Some(rest) => rest.strip_prefix('/')?,
        None if reference.contains(':') || reference.starts_with('#') => return None,
        None => reference,
    };
    let mut parts = relative.split('/');
    let ty = parts.next()?;
    let id = parts.next()?;
    match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) | (Some("_history"), Some(_), None) => {}
        _ => return None,
    }
    let is_type = ty.starts_with(|c: char| c.is_ascii_uppercase())
        && ty.chars().all(|c| c.is_ascii_alphanumeric());
    is_type.then(|| (ty.to_owned(), id.to_owned()))
}

pub fn local_references(resource_type: &str, resource: &Value, base_url: &str) -> Vec<LocalRef> {
    reference_strings(resource_type, resource)
        .into_iter()
        .filter_map(|(path, r)| {
            parse_local(r, base_url).map(|(resource_type, id)| LocalRef {
                path,
                resource_type,
                id,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_local_references_only() {
        let sr = json!({
            "resourceType": "ServiceRequest",
            "subject": {"reference": "Patient/p1"},
            "requester": {"reference": "http://hub/fhir/Practitioner/pr1/_history/2"},
            "performer": [{"reference": "https://other.example/fhir/Organization/o1"},
                          {"reference": "#contained"}, {"reference": "urn:uuid:abc"},
                          {"identifier": {"value": "x"}}],
            "note": [{"text": "Patient/not-a-reference"}]
        });
        let refs = local_references("ServiceRequest", &sr, "http://hub/fhir");
        assert_eq!(
            refs,
            vec![
                LocalRef {
                    path: "ServiceRequest.subject.reference".into(),
                    resource_type: "Patient".into(),
                    id: "p1".into()
                },
                LocalRef {
                    path: "ServiceRequest.requester.reference".into(),
                    resource_type: "Practitioner".into(),
                    id: "pr1".into()
                },
            ]
        );
    }
}
