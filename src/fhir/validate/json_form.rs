//! What JSON FHIR forbids that the R4 schema lets through (json.html): empty arrays,
//! empty objects, `null` (except as a placeholder in a primitive's value array and its
//! `_x` extension array, aligned with a value at the same index in the other) and
//! strings without non-whitespace content. Strings holding U+0000 are refused too: no
//! FHIR string may contain it and PostgreSQL text cannot store it. One walk over the
//! whole resource, contained resources included.

use serde_json::{Map, Value};

use crate::fhir::outcome::{Issue, IssueCode};

/// Walks `value` (the resource at FHIRPath `root`), reporting each problem once at the
/// element it concerns.
pub(super) fn check(root: &str, value: &Value, out: &mut Vec<Issue>) {
    if let Value::Object(object) = value {
        members(root, object, out);
    }
}

/// The FHIRPath of member `key` under `at`: `_given` is `given` (its extensions).
fn member_path(at: &str, key: &str) -> String {
    let name = match key.strip_prefix('_') {
        Some(n) if !n.is_empty() => n,
        _ => key,
    };
    format!("{at}.{name}")
}

fn members(at: &str, object: &Map<String, Value>, out: &mut Vec<Issue>) {
    for (key, value) in object {
        if key.contains('\0') {
            out.push(nul(at, "A member name"));
            continue;
        }
        let path = member_path(at, key);
        match value {
            Value::Array(items) => {
                // The sibling of `given` is `_given` and the other way round.
                let sibling = match key.strip_prefix('_') {
                    Some(name) => object.get(name),
                    None => object.get(&format!("_{key}")),
                }
                .and_then(Value::as_array);
                array(&path, key, items, sibling, out);
            }
            other => element(&path, key, other, out),
        }
    }
}

fn array(at: &str, key: &str, items: &[Value], sibling: Option<&Vec<Value>>, out: &mut Vec<Issue>) {
    if items.is_empty() {
        let msg = format!(
            "'{key}' is an empty array: JSON FHIR has no empty arrays; leave the element out"
        );
        out.push(Issue::error(IssueCode::Structure, msg).at(at));
        return;
    }
    for (i, item) in items.iter().enumerate() {
        let at = format!("{at}[{i}]");
        match item {
            // A placeholder for the other array's item at this index.
            Value::Null if sibling.and_then(|s| s.get(i)).is_some_and(|v| !v.is_null()) => {}
            Value::Array(_) => {
                let msg = format!("'{key}' holds an array in an array, which FHIR does not have");
                out.push(Issue::error(IssueCode::Structure, msg).at(at));
            }
            other => element(&at, key, other, out),
        }
    }
}

fn element(at: &str, key: &str, value: &Value, out: &mut Vec<Issue>) {
    match value {
        Value::Null => {
            let msg =
                format!("'{key}' is null: JSON FHIR has no null values; leave the element out");
            out.push(Issue::error(IssueCode::Structure, msg).at(at));
        }
        Value::Object(object) if object.is_empty() && !is_bundle_entry(at) => {
            let msg = format!(
                "'{key}' is an empty object: JSON FHIR has no empty objects; leave the element out"
            );
            out.push(Issue::error(IssueCode::Structure, msg).at(at));
        }
        Value::Object(object) => members(at, object, out),
        Value::String(s) if s.contains('\0') => out.push(nul(at, "The string")),
        Value::String(s) if s.trim().is_empty() => {
            let msg = format!(
                "'{key}' is an empty string: a FHIR string has non-whitespace content; leave the element out"
            );
            out.push(Issue::error(IssueCode::Value, msg).at(at));
        }
        _ => {}
    }
}

/// `Bundle.entry[3]`: a transaction or batch is checked with its entries' resources
/// taken out (each is validated on its own), which may leave an entry empty here; an
/// entry that really is empty lacks its `request` and is refused for that.
fn is_bundle_entry(at: &str) -> bool {
    at.strip_prefix("Bundle.entry[")
        .and_then(|rest| rest.strip_suffix(']'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn nul(at: &str, what: &str) -> Issue {
    Issue::error(
        IssueCode::Value,
        format!("{what} contains the character U+0000 (NUL), which FHIR strings may not hold"),
    )
    .at(at)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn found(value: Value) -> Vec<String> {
        let mut out = Vec::new();
        check("Patient", &value, &mut out);
        out.iter()
            .map(|i| {
                format!(
                    "{}@{}",
                    i.code.as_str(),
                    i.expression.clone().unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn refuses_empty_null_and_nul() {
        let bad = json!({"resourceType": "Patient", "name": [], "gender": "", "birthDate": null,
            "telecom": [{}], "address": [{"line": ["  "], "city": "a\u{0}b"}],
            "_birthDate": {}, "contact": [[1]]});
        assert_eq!(
            found(bad),
            [
                "structure@Patient.name",
                "value@Patient.gender",
                "structure@Patient.birthDate",
                "structure@Patient.telecom[0]",
                "value@Patient.address[0].line[0]",
                "value@Patient.address[0].city",
                "structure@Patient.birthDate",
                "structure@Patient.contact[0]",
            ]
        );
        let nested = json!({"resourceType": "Patient", "contained": [
            {"resourceType": "Organization", "alias": []}]});
        assert_eq!(found(nested), ["structure@Patient.contained[0].alias"]);
    }

    #[test]
    fn allows_aligned_null_placeholders() {
        let ok = json!({"resourceType": "Patient", "name": [{"given": ["A", "B"],
            "_given": [null, {"extension": [{"url": "u", "valueCode": "c"}]}]}]});
        assert_eq!(found(ok), Vec::<String>::new());
        let ok = json!({"resourceType": "Patient", "name": [{"given": [null, "B"],
            "_given": [{"id": "x"}, null]}]});
        assert_eq!(found(ok), Vec::<String>::new());
        let unaligned = json!({"resourceType": "Patient", "name": [{"given": ["A", null],
            "_given": [null, null]}]});
        assert_eq!(
            found(unaligned),
            [
                "structure@Patient.name[0].given[1]",
                "structure@Patient.name[0].given[1]",
            ]
        );
    }
}
