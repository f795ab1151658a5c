//! `_elements`: a stored body cut down to some top-level elements. Kept members are
//! copied as stored text (never re-serialised); `meta` gains the SUBSETTED tag.

use serde_json::{json, Value};

use crate::fhir::resource::RawMembers;

/// Always kept (search.html#elements).
const MANDATORY: &[&str] = &["resourceType", "id", "meta"];

const SUBSETTED: &str = "SUBSETTED";
const OBSERVATION_VALUE: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

/// The stored JSON `body` with only `keep` and the mandatory top-level elements;
/// `None` if the body is not a JSON object (it always is for stored versions).
pub fn subset(body: &str, keep: &[String]) -> Option<String> {
    let members = serde_json::from_str::<RawMembers>(body).ok()?.0;
    let mut out = String::with_capacity(body.len());
    out.push('{');
    let mut wrote_meta = false;
    let mut first = true;
    let mut push = |out: &mut String, key: &str, value: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&Value::String(key.to_owned()).to_string());
        out.push(':');
        out.push_str(value);
    };
    for (key, raw) in &members {
        if key == "meta" {
            push(&mut out, key, &tagged_meta(raw.get()));
            wrote_meta = true;
        } else if MANDATORY.contains(&key.as_str()) || keep.iter().any(|k| k == key) {
            push(&mut out, key, raw.get());
        }
    }
    if !wrote_meta {
        push(&mut out, "meta", &tagged_meta("{}"));
    }
    out.push('}');
    Some(out)
}

fn tagged_meta(meta: &str) -> String {
    let mut meta: Value = serde_json::from_str(meta).unwrap_or_else(|_| json!({}));
    let tag = json!({ "system": OBSERVATION_VALUE, "code": SUBSETTED });
    if let Some(obj) = meta.as_object_mut() {
        let tags = obj.entry("tag").or_insert_with(|| json!([]));
        if let Some(list) = tags.as_array_mut() {
            if !list.iter().any(|t| t["code"] == SUBSETTED) {
                list.push(tag);
            }
        }
    }
    meta.to_string()
}

#[cfg(test)]
mod tests {
    use super::subset;

    #[test]
    fn keeps_bytes_and_tags() {
        let body = r#"{"resourceType":"Patient","id":"p","meta":{"versionId":"1"},"birthDate":"1958-04-17","name":[{"family":"Jansen" }],"extension":[{"url":"x","valueDecimal":1.50}]}"#;
        let out = subset(body, &["extension".into()]).unwrap();
        assert_eq!(
            out,
            r#"{"resourceType":"Patient","id":"p","meta":{"versionId":"1","tag":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED"}]},"extension":[{"url":"x","valueDecimal":1.50}]}"#
        );
    }
}
