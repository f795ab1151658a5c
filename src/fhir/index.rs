//! Index rows a resource contributes to search, per the registry's parameters. The
//! element's JSON shape tells its type: Identifier, CodeableConcept, Coding, code and
//! boolean for tokens; HumanName and Address parts for strings; Reference; date,
//! dateTime, instant and Period for dates.

use serde_json::Value;

use crate::fhir::dates::date_range;
use crate::fhir::identifiers::normalize_system;
use crate::fhir::registry::{ParamType, ResourceDef, SearchParamDef};
use crate::fhir::text::normalize;
use crate::store::{DateRow, IndexRows, ReferenceRow, StringRow, TokenRow};

pub fn index_rows(def: &ResourceDef, resource: &Value) -> IndexRows {
    let mut rows = IndexRows::default();
    for param in def.search_params {
        for path in param.paths {
            for value in values_at(resource, path) {
                match param.ty {
                    ParamType::Token | ParamType::Uri => {
                        tokens(param.name, value, &mut rows.tokens);
                    }
                    ParamType::String => strings(param.name, value, &mut rows.strings),
                    ParamType::Reference => match value {
                        Value::String(canonical) => {
                            rows.references.extend(canonical_rows(param, canonical))
                        }
                        _ => rows.references.extend(reference(param, value)),
                    },
                    ParamType::Date => rows.dates.extend(date(param.name, value)),
                }
            }
        }
    }
    rows
}

/// The values at a dotted path, flattening arrays at every step.
pub fn values_at<'a>(resource: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![resource];
    for step in path.split('.') {
        let mut next = Vec::new();
        for v in current {
            match v.get(step) {
                Some(Value::Array(items)) => next.extend(items.iter()),
                Some(Value::Null) | None => {}
                Some(found) => next.push(found),
            }
        }
        current = next;
    }
    current
}

fn system_of(v: &Value) -> Option<String> {
    v.get("system")
        .and_then(Value::as_str)
        .map(|s| normalize_system(s).to_owned())
}

fn tokens(param: &str, value: &Value, out: &mut Vec<TokenRow>) {
    let row = |system: Option<String>, code: &str| TokenRow {
        param: param.to_owned(),
        system,
        code: code.to_owned(),
    };
    match value {
        Value::String(code) => out.push(row(None, code)),
        Value::Bool(b) => out.push(row(None, if *b { "true" } else { "false" })),
        Value::Object(map) => {
            if let Some(codings) = map.get("coding").and_then(Value::as_array) {
                for coding in codings {
                    if let Some(code) = coding.get("code").and_then(Value::as_str) {
                        out.push(row(system_of(coding), code));
                    }
                }
            } else if let Some(code) = map.get("code").and_then(Value::as_str) {
                out.push(row(system_of(value), code));
            } else if let Some(v) = map.get("value").and_then(Value::as_str) {
                out.push(row(system_of(value), v));
            }
        }
        _ => {}
    }
}

/// Parts of HumanName and Address that string parameters on the whole element match.
const STRING_PARTS: &[&str] = &[
    "text",
    "family",
    "given",
    "prefix",
    "suffix",
    "line",
    "city",
    "district",
    "state",
    "postalCode",
    "country",
];

fn strings(param: &str, value: &Value, out: &mut Vec<StringRow>) {
    match value {
        Value::String(s) => out.push(StringRow {
            param: param.to_owned(),
            norm: normalize(s),
            exact: s.clone(),
        }),
        Value::Object(_) => {
            for part in STRING_PARTS {
                for v in values_at(value, part) {
                    if v.is_string() {
                        strings(param, v, out);
                    }
                }
            }
        }
        _ => {}
    }
}

/// A literal reference's `(type, id)`: `Type/id` or `Type/id/_history/n`.
pub fn split_relative(reference: &str) -> Option<(&str, &str)> {
    let mut parts = reference.split('/');
    let ty = parts.next()?;
    let id = parts.next()?;
    let rest: Vec<&str> = parts.collect();
    let type_ok = ty.starts_with(|c: char| c.is_ascii_uppercase())
        && ty.chars().all(|c| c.is_ascii_alphanumeric());
    let rest_ok = rest.is_empty() || (rest.len() == 2 && rest[0] == "_history");
    (type_ok && !id.is_empty() && rest_ok).then_some((ty, id))
}

fn reference(param: &SearchParamDef, value: &Value) -> Option<ReferenceRow> {
    let mut row = ReferenceRow {
        param: param.name.to_owned(),
        ..ReferenceRow::default()
    };
    let declared = value.get("type").and_then(Value::as_str);
    if let Some(literal) = value.get("reference").and_then(Value::as_str) {
        if literal.contains(':') {
            // Absolute URL or urn:uuid: matched as a whole.
            row.url = Some(literal.to_owned());
        } else if let Some((ty, id)) = split_relative(literal) {
            if !param.targets_type(ty) {
                return None;
            }
            row.target_type = Some(ty.to_owned());
            row.target_id = Some(id.to_owned());
        }
    }
    if let Some(identifier) = value.get("identifier") {
        if let Some(v) = identifier.get("value").and_then(Value::as_str) {
            row.ident_system = system_of(identifier);
            row.ident_value = Some(v.to_owned());
        }
    }
    if declared.is_some_and(|t| !param.targets_type(t)) {
        return None;
    }
    let has_any = row.url.is_some() || row.target_id.is_some() || row.ident_value.is_some();
    has_any.then_some(row)
}

/// A `canonical` element at a reference path (`QuestionnaireResponse.questionnaire`):
/// matched as a URL, without its `|version` (any version) and, when it has one, with it
/// (that version).
fn canonical_rows(param: &SearchParamDef, canonical: &str) -> Vec<ReferenceRow> {
    let row = |url: &str| ReferenceRow {
        param: param.name.to_owned(),
        url: Some(url.to_owned()),
        ..ReferenceRow::default()
    };
    if canonical.is_empty() {
        return Vec::new();
    }
    match canonical.split_once('|') {
        Some((url, _version)) if !url.is_empty() => vec![row(url), row(canonical)],
        _ => vec![row(canonical)],
    }
}

fn date(param: &str, value: &Value) -> Option<DateRow> {
    let (low, high) = match value {
        Value::String(s) => date_range(s)?,
        Value::Object(period) => {
            let start = period
                .get("start")
                .and_then(Value::as_str)
                .and_then(date_range);
            let end = period
                .get("end")
                .and_then(Value::as_str)
                .and_then(date_range);
            if start.is_none() && end.is_none() {
                return None;
            }
            (
                start.map_or(i64::MIN, |s| s.0),
                end.map_or(i64::MAX, |e| e.1),
            )
        }
        _ => return None,
    };
    Some(DateRow {
        param: param.to_owned(),
        low,
        high,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::registry::resource;
    use serde_json::json;

    #[test]
    fn task_rows() {
        let task = json!({
            "resourceType": "Task",
            "identifier": [{"system": "urn:oid:2.16.528.1.1007.3.3", "value": "1"}],
            "status": "requested",
            "businessStatus": {"coding": [{"system": "http://x", "code": "intake"}]},
            "for": {"reference": "Patient/p1/_history/2"},
            "owner": {"identifier": {"system": "http://fhir.nl/fhir/NamingSystem/ura", "value": "9"}},
            "focus": {"reference": "http://elsewhere/fhir/ServiceRequest/s1"},
            "authoredOn": "2026-11-20"
        });
        let rows = index_rows(resource("Task").unwrap(), &task);
        assert!(rows.tokens.contains(&TokenRow {
            param: "identifier".into(),
            system: Some("http://fhir.nl/fhir/NamingSystem/ura".into()),
            code: "1".into()
        }));
        assert!(rows
            .tokens
            .iter()
            .any(|t| t.param == "business-status" && t.code == "intake"));
        let patient: Vec<_> = rows
            .references
            .iter()
            .filter(|r| r.param == "patient")
            .collect();
        assert_eq!(patient[0].target_id.as_deref(), Some("p1"));
        assert!(rows.references.iter().any(|r| r.param == "subject"));
        assert!(rows
            .references
            .iter()
            .any(|r| r.param == "owner" && r.ident_value.as_deref() == Some("9")));
        assert!(rows
            .references
            .iter()
            .any(|r| r.param == "focus" && r.url.is_some()));
        assert_eq!(rows.dates.len(), 1);
    }

    #[test]
    fn canonical_references_match_with_and_without_version() {
        let def = resource("QuestionnaireResponse").unwrap();
        let urls = |qr: Value| -> Vec<String> {
            index_rows(def, &qr)
                .references
                .into_iter()
                .filter(|r| r.param == "questionnaire")
                .map(|r| {
                    assert!(r.target_id.is_none() && r.ident_value.is_none());
                    r.url.unwrap()
                })
                .collect()
        };
        let q = "https://wor-hub.nl/fhir/Questionnaire/positive-health";
        assert_eq!(urls(json!({"questionnaire": q})), [q]);
        assert_eq!(
            urls(json!({"questionnaire": format!("{q}|1.0.0")})),
            [q.to_owned(), format!("{q}|1.0.0")]
        );
        assert!(urls(json!({"questionnaire": ""})).is_empty());
    }

    #[test]
    fn tags_and_output_references_of_a_task() {
        let task = json!({
            "resourceType": "Task",
            "meta": {"tag": [{"system": "https://wor-hub.nl/fhir/CodeSystem/task-flag", "code": "overdue"}]},
            "output": [
                {"type": {"text": "feedback"}, "valueString": "Patient/p1"},
                {"type": {"text": "intake"}, "valueReference": {"reference": "QuestionnaireResponse/q1"}},
                {"type": {"text": "other"}, "valueReference": {"reference": "Patient/p1"}}
            ]
        });
        let rows = index_rows(resource("Task").unwrap(), &task);
        assert_eq!(
            rows.tokens
                .iter()
                .filter(|t| t.param == "_tag")
                .collect::<Vec<_>>(),
            [&TokenRow {
                param: "_tag".into(),
                system: Some("https://wor-hub.nl/fhir/CodeSystem/task-flag".into()),
                code: "overdue".into()
            }]
        );
        let outputs: Vec<_> = rows
            .references
            .iter()
            .filter(|r| r.param == "output")
            .map(|r| (r.target_type.as_deref(), r.target_id.as_deref()))
            .collect();
        assert_eq!(outputs, [(Some("QuestionnaireResponse"), Some("q1"))]);
    }

    #[test]
    fn patient_reference_only_for_patients() {
        let sr = json!({"resourceType": "ServiceRequest", "subject": {"reference": "Group/g"}});
        let rows = index_rows(resource("ServiceRequest").unwrap(), &sr);
        assert!(rows.references.iter().all(|r| r.param != "patient"));
        assert!(rows.references.iter().any(|r| r.param == "subject"));
    }

    #[test]
    fn names_index_every_part() {
        let p = json!({"resourceType": "Patient", "name": [{"family": "Jansen", "given": ["Noor", "Éva"]}]});
        let rows = index_rows(resource("Patient").unwrap(), &p);
        let name: Vec<&str> = rows
            .strings
            .iter()
            .filter(|s| s.param == "name")
            .map(|s| s.norm.as_str())
            .collect();
        assert_eq!(name, ["jansen", "noor", "eva"]);
        assert!(rows
            .strings
            .iter()
            .any(|s| s.param == "given" && s.exact == "Éva"));
    }
}
