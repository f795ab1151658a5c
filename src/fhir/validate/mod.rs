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
mod tests;

/// The schema's errors for a conformance resource of this server, except at
/// `fhirVersion`: the vendored schema predates 4.0.1 in its fhirVersion list.
#[cfg(test)]
pub fn schema_errors(resource_type: &str, resource: &Value) -> Vec<Issue> {
    validate_resource(resource_type, resource)
        .into_iter()
        .filter(Issue::is_error)
        .filter(|i| {
            !i.expression
                .as_deref()
                .unwrap_or_default()
                .ends_with("fhirVersion")
        })
        .collect()
}
