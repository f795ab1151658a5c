//! Transaction and batch Bundles (http.html#transaction): parsing the request entries,
//! keeping each entry's resource as the client's raw JSON text.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::fhir::outcome::{Issue, IssueCode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Method {
    // Declaration order is the processing order the spec prescribes.
    Delete,
    Post,
    Put,
    /// With the PUTs (http.html#transaction: "PUT or PATCH").
    Patch,
    Get,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleKind {
    Transaction,
    Batch,
}

/// What an entry's `request.url` addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `Type`
    Type(String),
    /// `Type/id` or `Type/id/_history/vid`
    Instance {
        resource_type: String,
        id: String,
        version: Option<String>,
    },
    /// `Type?criteria` (conditional update or delete)
    Conditional {
        resource_type: String,
        query: String,
    },
}

impl Target {
    pub fn resource_type(&self) -> &str {
        match self {
            Self::Type(t) => t,
            Self::Instance { resource_type, .. } | Self::Conditional { resource_type, .. } => {
                resource_type
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct EntryRequest {
    pub index: usize,
    pub full_url: Option<String>,
    pub method: Method,
    pub target: Target,
    pub if_none_exist: Option<String>,
    pub if_match: Option<String>,
    /// The entry's resource as sent.
    pub resource: Option<String>,
}

#[derive(Deserialize)]
struct RawBundle {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    entry: Vec<RawEntry>,
}

#[derive(Deserialize)]
struct RawEntry {
    #[serde(rename = "fullUrl")]
    full_url: Option<String>,
    resource: Option<Box<RawValue>>,
    request: Option<RawRequest>,
}

#[derive(Deserialize)]
struct RawRequest {
    method: Option<String>,
    url: Option<String>,
    #[serde(rename = "ifNoneExist")]
    if_none_exist: Option<String>,
    #[serde(rename = "ifMatch")]
    if_match: Option<String>,
}

fn at(index: usize, element: &str) -> String {
    format!("Bundle.entry[{index}].{element}")
}

/// Parses a Bundle already validated against the schema. Errors name the entry.
pub fn parse(body: &[u8]) -> Result<(BundleKind, Vec<EntryRequest>), Vec<Issue>> {
    let bundle: RawBundle = serde_json::from_slice(body).map_err(|e| {
        vec![Issue::error(
            IssueCode::Structure,
            format!("Not a Bundle: {e}"),
        )]
    })?;
    let kind = match bundle.kind.as_deref() {
        Some("transaction") => BundleKind::Transaction,
        Some("batch") => BundleKind::Batch,
        other => {
            return Err(vec![Issue::error(
                IssueCode::NotSupported,
                format!(
                    "Only transaction and batch Bundles can be posted to the base, not '{}'",
                    other.unwrap_or("(missing)")
                ),
            )
            .at("Bundle.type")])
        }
    };
    let mut issues = Vec::new();
    let mut entries = Vec::new();
    for (index, raw) in bundle.entry.into_iter().enumerate() {
        let Some(request) = raw.request else {
            issues.push(
                Issue::error(IssueCode::Required, "Each entry needs a request")
                    .at(at(index, "request")),
            );
            continue;
        };
        let method = match request.method.as_deref() {
            Some("POST") => Method::Post,
            Some("PUT") => Method::Put,
            Some("DELETE") => Method::Delete,
            Some("GET") => Method::Get,
            Some("PATCH") => Method::Patch,
            other => {
                issues.push(
                    Issue::error(
                        IssueCode::NotSupported,
                        format!(
                            "Method '{}' is not supported in a Bundle (GET, POST, PUT, PATCH, DELETE)",
                            other.unwrap_or("(missing)")
                        ),
                    )
                    .at(at(index, "request.method")),
                );
                continue;
            }
        };
        let Some(target) = request.url.as_deref().and_then(parse_target) else {
            issues.push(
                Issue::error(
                    IssueCode::Invalid,
                    "request.url must be Type, Type/id, Type/id/_history/vid or Type?criteria",
                )
                .at(at(index, "request.url")),
            );
            continue;
        };
        let needs_resource = matches!(method, Method::Post | Method::Put | Method::Patch);
        if needs_resource != raw.resource.is_some() {
            let msg = if needs_resource {
                "POST, PUT and PATCH entries need a resource (for PATCH a Binary or Parameters)"
            } else {
                "GET and DELETE entries take no resource"
            };
            issues.push(Issue::error(IssueCode::Invalid, msg).at(at(index, "resource")));
            continue;
        }
        entries.push(EntryRequest {
            index,
            full_url: raw.full_url,
            method,
            target,
            if_none_exist: request.if_none_exist,
            if_match: request.if_match,
            resource: raw.resource.map(|r| r.get().to_owned()),
        });
    }
    if issues.is_empty() {
        Ok((kind, entries))
    } else {
        Err(issues)
    }
}

fn parse_target(url: &str) -> Option<Target> {
    let url = url.trim_start_matches('/');
    if let Some((ty, query)) = url.split_once('?') {
        return Some(Target::Conditional {
            resource_type: ty.to_owned(),
            query: query.to_owned(),
        });
    }
    let parts: Vec<&str> = url.split('/').collect();
    match parts.as_slice() {
        [ty] if !ty.is_empty() => Some(Target::Type((*ty).to_owned())),
        [ty, id] => Some(Target::Instance {
            resource_type: (*ty).to_owned(),
            id: (*id).to_owned(),
            version: None,
        }),
        [ty, id, "_history", v] => Some(Target::Instance {
            resource_type: (*ty).to_owned(),
            id: (*id).to_owned(),
            version: Some((*v).to_owned()),
        }),
        _ => None,
    }
}

/// Replaces every JSON string literal of `text` whose value is a key of `aliases` by
/// the key's value: resolves `urn:uuid:` references (and other fullUrls) to the ids
/// assigned in the transaction without touching anything else the client wrote. One
/// pass over the text with one lookup per literal, however many entries the Bundle has.
pub fn replace_string_literals(text: &str, aliases: &HashMap<String, String>) -> String {
    if aliases.is_empty() {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        // A string literal: find its closing quote, skipping escaped characters.
        let start = i;
        let mut j = i + 1;
        let mut escaped = false;
        while j < bytes.len() && bytes[j] != b'"' {
            if bytes[j] == b'\\' {
                escaped = true;
                j += 1;
            }
            j += 1;
        }
        let end = j.min(bytes.len());
        // Aliases are URLs: a literal with escapes is never one of them.
        if !escaped {
            if let Some(to) = text
                .get(start + 1..end)
                .and_then(|inner| aliases.get(inner))
            {
                out.push_str(&text[copied..start]);
                out.push_str(&serde_json::Value::String(to.clone()).to_string());
                copied = end + 1;
            }
        }
        i = end + 1;
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("Patient"),
            Some(Target::Type("Patient".into()))
        );
        assert!(matches!(
            parse_target("Patient?identifier=x|1"),
            Some(Target::Conditional { .. })
        ));
        assert!(matches!(
            parse_target("Patient/1/_history/2"),
            Some(Target::Instance {
                version: Some(_),
                ..
            })
        ));
        assert_eq!(parse_target("Patient/1/x"), None);
    }

    #[test]
    fn string_literals_are_replaced_in_one_pass() {
        let aliases: HashMap<String, String> = [
            ("urn:uuid:1".to_owned(), "Patient/a".to_owned()),
            ("urn:uuid:2".to_owned(), "Practitioner/b".to_owned()),
        ]
        .into_iter()
        .collect();
        let text = r#"{"subject":{"reference":"urn:uuid:1"},"note":[{"text":"see \"urn:uuid:1\""}],"performer":[{"reference":"urn:uuid:2"}],"x":"urn:uuid:12","valueDecimal":1.50}"#;
        assert_eq!(
            replace_string_literals(text, &aliases),
            r#"{"subject":{"reference":"Patient/a"},"note":[{"text":"see \"urn:uuid:1\""}],"performer":[{"reference":"Practitioner/b"}],"x":"urn:uuid:12","valueDecimal":1.50}"#
        );
        assert_eq!(
            replace_string_literals("\"urn:uuid:1\"", &aliases),
            "\"Patient/a\""
        );
    }

    #[test]
    fn order_is_delete_post_put_get() {
        let mut m = vec![
            Method::Get,
            Method::Patch,
            Method::Put,
            Method::Post,
            Method::Delete,
        ];
        m.sort();
        assert_eq!(
            m,
            [
                Method::Delete,
                Method::Post,
                Method::Put,
                Method::Patch,
                Method::Get
            ]
        );
    }
}
