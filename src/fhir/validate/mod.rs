//! Structural validation of incoming resources.
//!
//! Two layers: the official FHIR R4 JSON schema, compiled lazily once per resource type,
//! then a declarative table of R4 cardinality and required-binding rules the schema
//! cannot express (it never requires primitives and leaves many `code`s open). Both
//! report [`Issue`]s with FHIRPath expressions.
//!
//! Each per-type schema holds only the definitions reachable from that type, with
//! `ResourceList` (the 146-way `oneOf` behind `contained`, `Bundle.entry.resource`, ...)
//! cut down to "an object with a resourceType": embedded resources are validated on
//! their own against their named type. Compiling the whole graph per type costs ~18 MB
//! and its `oneOf` errors are useless.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::{Location, LocationSegment};
use jsonschema::{ValidationError, Validator};
use serde_json::{json, Map, Value};

use crate::fhir::outcome::{Issue, IssueCode};

mod json_form;
mod rules;
use rules::check_rules;

/// Upper bound on issues returned for one resource (the last one says it was cut).
const MAX_ISSUES: usize = 50;
/// Longest user-supplied text echoed back in diagnostics.
const MAX_ECHO: usize = 40;
/// Start of every JSON type mismatch diagnostic.
const WRONG_TYPE: &str = "Wrong type";

/// The R4 schema, tightened: complex-type definitions gain `"type": "object"` (the
/// official file omits it, so `"maritalStatus": 5` would pass), `xhtml` gains
/// `"type": "string"`, and `ResourceList` is replaced as described above.
static SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    let mut schema: Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/profiles/fhir.schema.json"
    )))
    .expect("embedded FHIR R4 schema is valid JSON");
    if let Some(definitions) = schema["definitions"].as_object_mut() {
        for (name, definition) in definitions.iter_mut() {
            if name == "ResourceList" {
                *definition = json!({"type": "object", "required": ["resourceType"],
                    "properties": {"resourceType": {"type": "string"}}});
            } else if let Some(definition) = definition.as_object_mut() {
                if definition.contains_key("properties") {
                    definition.insert("type".into(), json!("object"));
                } else if name == "xhtml" {
                    definition.insert("type".into(), json!("string"));
                }
            }
        }
    }
    schema
});

/// The tightened R4 schema, for the element types and cardinalities FHIRPath Patch needs.
pub(crate) fn r4_schema() -> &'static Value {
    &SCHEMA
}

static VALIDATORS: LazyLock<Mutex<HashMap<String, Arc<Validator>>>> =
    LazyLock::new(Default::default);

/// Validates `resource` as an R4 resource of type `resource_type` (the type the URL names).
/// Returns all problems found (empty = valid). Never panics on any input JSON.
pub fn validate_resource(resource_type: &str, resource: &Value) -> Vec<Issue> {
    let Some(object) = resource.as_object() else {
        return vec![Issue::error(
            IssueCode::Structure,
            "Resource body must be a JSON object",
        )];
    };
    if !is_resource_type(resource_type) {
        let msg = format!("'{}' is not an R4 resource type", echo(resource_type));
        return vec![Issue::error(IssueCode::NotSupported, msg)];
    }
    let mut issues = Vec::new();
    match object.get("resourceType") {
        None => {
            let msg = "Missing required element 'resourceType'";
            issues.push(Issue::error(IssueCode::Required, msg).at("resourceType"));
        }
        Some(Value::String(found)) if found == resource_type => {}
        Some(found) => {
            let found = match found {
                Value::String(s) => format!("'{}'", echo(s)),
                other => format!("a JSON {}", json_type(other)),
            };
            let msg = format!("resourceType is {found} but the request is for '{resource_type}'");
            return vec![Issue::error(IssueCode::Invalid, msg).at("resourceType")];
        }
    }
    let mut form = Vec::new();
    json_form::check(resource_type, resource, &mut form);
    check(resource_type, resource_type, resource, &mut issues);
    // The schema repeats a missing resourceType as `<Type>.resourceType`, and what the
    // JSON form check refused (an empty string failing a pattern) less clearly.
    let repeated = format!("{resource_type}.resourceType");
    let refused: HashSet<Option<String>> = form.iter().map(|i| i.expression.clone()).collect();
    // Nulls are the JSON form check's: it allows the aligned `_x` placeholders.
    let null = format!("found {}", json_type(&Value::Null));
    issues.retain(|i| {
        i.expression.as_deref() != Some(repeated.as_str())
            && !refused.contains(&i.expression)
            && !(i.diagnostics.starts_with(WRONG_TYPE) && i.diagnostics.ends_with(&null))
    });
    form.extend(issues);
    finish(form)
}

/// Checks a logical id (`[A-Za-z0-9\-\.]{1,64}`).
pub fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn is_resource_type(name: &str) -> bool {
    SCHEMA["discriminator"]["mapping"].get(name).is_some()
}

/// Validates `value` as a `rt` found at FHIRPath `at`, then the resources it embeds.
fn check(rt: &str, at: &str, value: &Value, out: &mut Vec<Issue>) {
    match validator(rt) {
        Ok(validator) => {
            for error in validator.iter_errors(value) {
                map_error(at, &error, out);
            }
        }
        Err(message) => out.push(Issue::error(IssueCode::Exception, message)),
    }
    if let Some(object) = value.as_object() {
        check_rules(rt, at, object, out);
    }
    let mut nested = Vec::new();
    embedded(rt, value, at, &mut nested);
    for (at, resource) in nested {
        if out.len() > 2 * MAX_ISSUES {
            return;
        }
        // Not an object / no resourceType / not a string: the schema reported it.
        if let Some(name) = resource.get("resourceType").and_then(Value::as_str) {
            if is_resource_type(name) {
                check(name, &at, resource, out);
            } else {
                let msg = format!(
                    "Does not match any allowed resource type: '{}' is not an R4 resource type",
                    echo(name)
                );
                out.push(Issue::error(IssueCode::Structure, msg).at(at));
            }
        }
    }
}

/// Resources nested in `value`, an instance of definition `def` (`contained`,
/// `Bundle.entry.resource`, `Parameters.parameter.part.resource`, ...), found by
/// following the schema through backbone elements (named `Type_Part`).
fn embedded<'v>(def: &str, value: &'v Value, at: &str, out: &mut Vec<(String, &'v Value)>) {
    let (Some(object), Some(properties)) = (
        value.as_object(),
        SCHEMA["definitions"][def]["properties"].as_object(),
    ) else {
        return;
    };
    for (name, child) in object {
        let target = properties.get(name).map(|p| p.get("items").unwrap_or(p));
        let Some(target) = target
            .and_then(|p| p["$ref"].as_str())
            .and_then(|r| r.strip_prefix("#/definitions/"))
            .filter(|t| *t == "ResourceList" || t.contains('_'))
        else {
            continue;
        };
        let items: Vec<(String, &Value)> = match child {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("{at}.{name}[{i}]"), v))
                .collect(),
            single => vec![(format!("{at}.{name}"), single)],
        };
        for (at, item) in items {
            if target == "ResourceList" {
                out.push((at, item));
            } else {
                embedded(target, item, &at, out);
            }
        }
    }
}

/// The compiled validator for `resource_type`, built on first use.
fn validator(resource_type: &str) -> Result<Arc<Validator>, String> {
    let cache = || VALIDATORS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(validator) = cache().get(resource_type) {
        return Ok(Arc::clone(validator));
    }
    // Compiled outside the lock: a racing first use of one type may compile twice, but
    // no type waits behind another's compilation.
    let mut definitions = Map::new();
    let mut todo = vec![resource_type.to_owned()];
    while let Some(name) = todo.pop() {
        if let (false, Some(definition)) = (
            definitions.contains_key(&name),
            SCHEMA["definitions"].get(&name),
        ) {
            collect_refs(definition, &mut todo);
            definitions.insert(name, definition.clone());
        }
    }
    let schema =
        json!({"$ref": format!("#/definitions/{resource_type}"), "definitions": definitions});
    let compiled = jsonschema::draft6::new(&schema)
        .map_err(|e| format!("Cannot compile the {resource_type} schema: {e}"))?;
    let mut cache = cache();
    Ok(Arc::clone(
        cache
            .entry(resource_type.to_owned())
            .or_insert_with(|| Arc::new(compiled)),
    ))
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            for (key, child) in object {
                match child
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/definitions/"))
                {
                    Some(name) if key == "$ref" => out.push(name.to_owned()),
                    _ => collect_refs(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// Turns one schema error into issues; `prefix` is the FHIRPath of the instance root.
fn map_error(prefix: &str, error: &ValidationError<'_>, out: &mut Vec<Issue>) {
    let at = expression(prefix, error.instance_path());
    let value = error.instance();
    let issue = match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            for name in unexpected {
                let msg = format!("Unknown element '{}'", echo(name));
                out.push(Issue::error(IssueCode::Structure, msg).at(format!("{at}.{name}")));
            }
            return;
        }
        ValidationErrorKind::Required { property } => {
            return out.push(missing(&at, property.as_str().unwrap_or("?")));
        }
        ValidationErrorKind::Enum { options } => {
            let allowed: Vec<&str> = options
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            return out.push(invalid_code(&at, value, &allowed));
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => t.as_str().to_owned(),
                TypeKind::Multiple(set) => set
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            let found = json_type(value);
            let msg = format!("{WRONG_TYPE}: expected {expected}, found {found}");
            Issue::error(IssueCode::Structure, msg)
        }
        ValidationErrorKind::Pattern { .. } => {
            let datatype = primitive_name(error.schema_path()).unwrap_or("value for this element");
            let shown = match (datatype, value.as_str()) {
                ("code" | "id", Some(s)) => format!(" '{}'", echo(s)),
                _ => String::new(),
            };
            Issue::error(
                IssueCode::Value,
                format!("Invalid value{shown}: not a valid FHIR {datatype}"),
            )
        }
        other => {
            let msg = format!("Invalid value (schema keyword '{}')", other.keyword());
            Issue::error(IssueCode::Value, msg)
        }
    };
    out.push(issue.at(at));
}

/// JSON pointer `/name/0/_given/1` under prefix `Patient` -> `Patient.name[0].given[1]`:
/// `_x` (a primitive's id/extensions) is `x` in FHIRPath, except as the last segment
/// (an unknown `_foo` is reported as written).
fn expression(prefix: &str, path: &Location) -> String {
    let segments: Vec<LocationSegment<'_>> = path.iter().collect();
    let mut expr = prefix.to_owned();
    for (i, segment) in segments.iter().enumerate() {
        match segment {
            LocationSegment::Property(name) => {
                let last = i + 1 == segments.len();
                let name = match name.strip_prefix('_') {
                    Some(stripped) if !last && !stripped.is_empty() => stripped,
                    _ => name,
                };
                expr.push('.');
                expr.push_str(name);
            }
            LocationSegment::Index(index) => expr.push_str(&format!("[{index}]")),
        }
    }
    expr
}

/// The primitive whose pattern failed, from a schema path like `/definitions/date/pattern`;
/// inline patterns (choice elements such as `deceasedDateTime`) yield `None`.
fn primitive_name(schema_path: &Location) -> Option<&str> {
    let mut parts = schema_path.as_str().rsplit('/');
    let (keyword, name, parent) = (parts.next()?, parts.next()?, parts.next()?);
    (keyword == "pattern" && parent == "definitions").then_some(name)
}

pub(super) fn missing(parent: &str, name: &str) -> Issue {
    let msg = format!("Missing required element '{}'", echo(name));
    Issue::error(IssueCode::Required, msg).at(format!("{parent}.{name}"))
}

/// One text for a schema `enum` failure and a table rule, so duplicates collapse.
pub(super) fn invalid_code(at: &str, value: &Value, allowed: &[&str]) -> Issue {
    let shown = match value {
        Value::String(s) => format!("'{}'", echo(s)),
        other => echo(&other.to_string()),
    };
    let msg = format!(
        "Invalid code {shown} for {at}; allowed: {}",
        allowed.join(", ")
    );
    Issue::error(IssueCode::Value, msg).at(at)
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Cuts user-supplied text for diagnostics.
fn echo(text: &str) -> String {
    match text.char_indices().nth(MAX_ECHO) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Drops value complaints about elements that already have the wrong JSON type (the
/// boolean pattern on `"active": "yes"`), de-duplicates keeping first occurrences, caps.
fn finish(mut issues: Vec<Issue>) -> Vec<Issue> {
    let wrong_type: HashSet<Option<String>> = issues
        .iter()
        .filter(|i| i.diagnostics.starts_with(WRONG_TYPE))
        .map(|i| i.expression.clone())
        .collect();
    issues.retain(|i| i.code != IssueCode::Value || !wrong_type.contains(&i.expression));
    let mut unique: Vec<Issue> = Vec::new();
    for issue in issues {
        if unique.contains(&issue) {
            continue;
        }
        if unique.len() == MAX_ISSUES - 1 {
            let msg = format!(
                "Too many issues; only the first {} are reported",
                MAX_ISSUES - 1
            );
            unique.push(Issue::error(IssueCode::TooLong, msg));
            break;
        }
        unique.push(issue);
    }
    unique
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::outcome::Severity;

    /// `code@expression` of every issue, after checking they are all errors.
    fn issues(rt: &str, resource: Value) -> Vec<String> {
        let issues = validate_resource(rt, &resource);
        assert!(issues.iter().all(|i| i.severity == Severity::Error));
        let at = |i: &Issue| i.expression.clone().unwrap_or_default();
        issues
            .iter()
            .map(|i| format!("{}@{}", i.code.as_str(), at(i)))
            .collect()
    }

    #[test]
    fn valid_resources_pass() {
        let patient = json!({
            "resourceType": "Patient", "id": "p-1.a",
            "meta": {"versionId": "3", "lastUpdated": "2024-01-01T00:00:00Z"},
            "extension": [{"url": "http://example.org/x", "valueDecimal": 72.5}],
            "name": [{"family": "Doe", "given": ["Jane"],
                      "_given": [{"extension": [{"url": "http://e.org/n", "valueCode": "x"}]}]}],
            "gender": "female", "birthDate": "1990-01-01",
            "_birthDate": {"extension": [{
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                "valueDateTime": "1990-01-01T10:00:00+01:00"}]},
            "contained": [{"resourceType": "Organization", "id": "o", "name": "Org"}],
            "managingOrganization": {"reference": "#o"}
        });
        assert_eq!(issues("Patient", patient), Vec::<String>::new());
        let sr = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "priority": "urgent", "subject": {"reference": "Patient/1"}, "code": {"text": "x"}});
        assert_eq!(issues("ServiceRequest", sr), Vec::<String>::new());
        let task = json!({"resourceType": "Task", "status": "requested", "intent": "order",
            "for": {"reference": "Patient/1"}, "input": [{"type": {"text": "t"}, "valueString": "v"}]});
        assert_eq!(issues("Task", task), Vec::<String>::new());
    }

    #[test]
    fn unknown_elements() {
        let found = validate_resource("Patient", &json!({"resourceType": "Patient", "foo": 1}));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].code, IssueCode::Structure);
        assert_eq!(found[0].expression.as_deref(), Some("Patient.foo"));
        assert!(found[0].diagnostics.contains("Unknown element 'foo'"));
        let nested = json!({"resourceType": "Patient", "name": [{"family": "X", "foo": 2}]});
        assert_eq!(issues("Patient", nested), ["structure@Patient.name[0].foo"]);
    }

    #[test]
    fn wrong_types_and_values() {
        let wrong = json!({"resourceType": "Patient", "active": "yes", "name": {"family": "X"}});
        assert_eq!(
            issues("Patient", wrong),
            ["structure@Patient.active", "structure@Patient.name"]
        );
        let gender = json!({"resourceType": "Patient", "gender": "nope"});
        assert_eq!(issues("Patient", gender), ["value@Patient.gender"]);
        let date = json!({"resourceType": "Patient", "birthDate": "1990-13-45"});
        assert_eq!(issues("Patient", date), ["value@Patient.birthDate"]);
    }

    #[test]
    fn service_request_and_task_rules() {
        let sr = json!({"resourceType": "ServiceRequest", "subject": {"reference": "Patient/1"}});
        let expected = [
            "required@ServiceRequest.status",
            "required@ServiceRequest.intent",
        ];
        assert_eq!(issues("ServiceRequest", sr), expected);
        let bad = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "wish",
                         "subject": {"reference": "Patient/1"}});
        let found = validate_resource("ServiceRequest", &bad);
        assert_eq!((found.len(), found[0].code), (1, IssueCode::Value));
        assert!(found[0]
            .diagnostics
            .starts_with("Invalid code 'wish' for ServiceRequest.intent"));
        let task = json!({"resourceType": "Task", "status": "requested"});
        assert_eq!(issues("Task", task), ["required@Task.intent"]);
        let bad = json!({"resourceType": "Task", "status": "bogus", "intent": "order"});
        assert_eq!(issues("Task", bad), ["value@Task.status"]); // not reported twice
    }

    #[test]
    fn questionnaire_response_rules() {
        let qr = json!({"resourceType": "QuestionnaireResponse", "item": [
            {"answer": [{"valueInteger": 1, "valueString": "1"}]},
            {"linkId": "a", "item": [{"text": "no linkId"}]},
            {"linkId": "b", "answer": [{"item": [{"text": "no linkId"}]}]}
        ]});
        assert_eq!(
            issues("QuestionnaireResponse", qr),
            [
                "required@QuestionnaireResponse.status",
                "required@QuestionnaireResponse.item[0].linkId",
                "structure@QuestionnaireResponse.item[0].answer[0].value[x]",
                "required@QuestionnaireResponse.item[1].item[0].linkId",
                "required@QuestionnaireResponse.item[2].answer[0].item[0].linkId",
            ]
        );
        let ok = json!({"resourceType": "QuestionnaireResponse", "status": "in-progress",
            "questionnaire": "https://example.org/Questionnaire/q|2",
            "item": [{"linkId": "a", "answer": [{"valueCoding": {"code": "x"}}]}]});
        assert_eq!(issues("QuestionnaireResponse", ok), Vec::<String>::new());
    }

    #[test]
    fn consent_and_location_rules() {
        let consent = json!({"resourceType": "Consent", "scope": {"text": "s"}, "category": []});
        assert_eq!(
            issues("Consent", consent),
            ["structure@Consent.category", "required@Consent.status"]
        );
        let location = json!({"resourceType": "Location", "position": {"latitude": 1.5},
                              "hoursOfOperation": [{"daysOfWeek": ["mon", "funday"]}]});
        let expected = [
            "required@Location.position.longitude",
            "value@Location.hoursOfOperation[0].daysOfWeek[1]",
        ];
        assert_eq!(issues("Location", location), expected);
    }

    #[test]
    fn resource_type_and_body() {
        let mismatch = validate_resource("Patient", &json!({"resourceType": "Task", "foo": 1}));
        assert_eq!(mismatch.len(), 1);
        assert_eq!(mismatch[0].code, IssueCode::Invalid);
        assert!(
            mismatch[0].diagnostics.contains("'Task'")
                && mismatch[0].diagnostics.contains("'Patient'")
        );
        let absent = json!({"name": [{"family": "X"}]});
        assert_eq!(issues("Patient", absent), ["required@resourceType"]);
        assert_eq!(
            issues("Patient", json!({"resourceType": 7})),
            ["invalid@resourceType"]
        );
        assert_eq!(issues("Patient", json!([])), ["structure@"]);
        assert_eq!(
            validate_resource("Patient", &json!("x"))[0].expression,
            None
        );
    }

    #[test]
    fn ids() {
        let bad = json!({"resourceType": "Patient", "id": "a b"});
        assert_eq!(issues("Patient", bad), ["value@Patient.id"]);
        let long = json!({"resourceType": "Patient", "id": "x".repeat(65)});
        assert_eq!(issues("Patient", long), ["value@Patient.id"]);
        assert!(is_valid_id("abc-1.2") && is_valid_id(&"A".repeat(64)));
        for bad in ["", "a/b", "a b", "é", &"A".repeat(65)] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn contained_resources_are_checked_by_their_own_type() {
        let nope = json!({"resourceType": "Patient", "contained": [{"resourceType": "Nope"}]});
        assert_eq!(issues("Patient", nope), ["structure@Patient.contained[0]"]);
        let bad = json!({"resourceType": "Patient", "contained": [
            {"resourceType": "ServiceRequest", "subject": {"reference": "Patient/1"},
             "intent": "order", "bar": 1}, 7, {"id": "x"}]});
        let expected = [
            "structure@Patient.contained[1]",
            "required@Patient.contained[2].resourceType",
            "structure@Patient.contained[0].bar",
            "required@Patient.contained[0].status",
        ];
        assert_eq!(issues("Patient", bad), expected);
    }

    #[test]
    fn issues_are_capped() {
        let mut resource = Map::new();
        resource.insert("resourceType".into(), json!("Patient"));
        for i in 0..500 {
            resource.insert(format!("x{i}"), json!(i));
        }
        let found = validate_resource("Patient", &Value::Object(resource));
        assert_eq!(found.len(), MAX_ISSUES);
    }

    #[test]
    fn odd_input_never_panics() {
        let deep = (0..100).fold(json!({}), |inner, _| json!({"extension": [inner]}));
        let odd = [
            json!(null),
            json!(1.5),
            json!("Patient"),
            json!([{"resourceType": "Patient"}]),
            json!({"resourceType": "Patient", "name": [null, 1, "x", [], {}]}),
            json!({"resourceType": "Patient", "_birthDate": [1], "0": {}, "": null, "/~": 1}),
            json!({"resourceType": "Patient", "contained": {"resourceType": "Patient"}}),
            json!({"resourceType": "Patient", "extension": [deep]}),
            json!({"resourceType": "Bundle", "type": "batch", "entry": [{"resource": {
                "resourceType": "Bundle", "type": "collection", "entry": [{"resource": 1}]}}]}),
        ];
        for value in &odd {
            for rt in [
                "Patient",
                "Bundle",
                "Consent",
                "Task",
                "NotAType",
                "HumanName",
                "",
            ] {
                let _ = validate_resource(rt, value);
            }
        }
    }
}
