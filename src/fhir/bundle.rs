//! Bundles built around stored bodies. Stored JSON is embedded as raw text, never
//! re-serialised, so decimals and unknown elements survive.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::fhir::instant::{format_instant, now_micros};

#[derive(Serialize)]
pub struct Link {
    pub relation: &'static str,
    pub url: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Empty for entries without a resource (a deletion in a transaction response).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub full_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    resource_type: &'static str,
    id: String,
    meta: Value,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
    // JSON FHIR has no empty arrays: an empty list is left out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    link: Vec<Link>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    entry: Vec<Entry>,
}

impl Bundle {
    pub fn new(kind: &'static str, link: Vec<Link>, entry: Vec<Entry>) -> Self {
        Self {
            resource_type: "Bundle",
            id: uuid::Uuid::new_v4().to_string(),
            meta: json!({ "lastUpdated": format_instant(now_micros()) }),
            kind,
            total: None,
            link,
            entry,
        }
    }

    #[must_use]
    pub fn with_total(mut self, total: u64) -> Self {
        self.total = Some(total);
        self
    }

    pub fn to_json(&self) -> String {
        // Serialising plain structs, strings and raw JSON cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Wraps stored JSON for embedding; the store only holds JSON this server wrote.
pub fn raw(body: String) -> Option<Box<RawValue>> {
    RawValue::from_string(body).ok()
}
