//! The value of a FHIRPath Patch operation as the JSON of the element it becomes: a
//! `value[x]` as it is, or nested parts (for types without a `value[x]` form, such as
//! the backbone element `Task.output`) as an object whose members the parts name.

use serde_json::{Map, Value};

use super::fhirpath::invalid;
use super::schema::{self, Element};
use crate::fhir::outcome::{Issue, IssueCode};

/// The type suffix of a part's `value[x]` (`String` for `valueString`); `None` when
/// the value is given as nested parts (or a resource).
pub(super) fn value_suffix(part: &Value, at: &str) -> Result<Option<String>, Issue> {
    let Some(object) = part.as_object() else {
        return Err(invalid(at, "A part must be a JSON object"));
    };
    if let Some(key) = object.keys().find(|k| k.starts_with("_value")) {
        return Err(Issue::error(
            IssueCode::NotSupported,
            format!("Extensions on a primitive value ('{key}') are not supported in a patch"),
        )
        .at(at));
    }
    let mut suffixes = object.keys().filter_map(|k| {
        k.strip_prefix("value")
            .filter(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
    });
    let suffix = suffixes.next().map(str::to_owned);
    if suffix.is_none() && !object.contains_key("part") && !object.contains_key("resource") {
        return Err(Issue::error(
            IssueCode::Required,
            "A value needs a value[x] or, for a complex element, parts naming its elements",
        )
        .at(at));
    }
    Ok(suffix)
}

/// The JSON of a part's value, for an element of schema type `target` (when known).
pub(super) fn convert(part: &Value, at: &str, target: Option<&str>) -> Result<Value, Issue> {
    if let Some(suffix) = value_suffix(part, at)? {
        return Ok(part[format!("value{suffix}").as_str()].clone());
    }
    if let Some(resource) = part.get("resource") {
        return Ok(resource.clone());
    }
    let Some(parts) = part.get("part").and_then(Value::as_array) else {
        return Err(invalid(at, "'part' must be a list of parts"));
    };
    if let Some(ty) = target.filter(|t| !schema::is_complex(t)) {
        return Err(invalid(
            at,
            format!("An element of type {ty} takes a value[x], not parts"),
        ));
    }
    let mut object = Map::new();
    for (i, sub) in parts.iter().enumerate() {
        let sub_at = format!("{at}.part[{i}]");
        let Some(name) = sub.get("name").and_then(Value::as_str) else {
            return Err(Issue::error(IssueCode::Required, "Each part needs a name").at(sub_at));
        };
        let suffix = value_suffix(sub, &sub_at)?;
        let element = match target {
            Some(ty) => Some(known(ty, name, suffix.as_deref(), &sub_at)?),
            None => None,
        };
        let key = element.as_ref().map_or(name, |e| e.key.as_str()).to_owned();
        let value = convert(sub, &sub_at, element.as_ref().and_then(|e| e.ty.as_deref()))?;
        if element.as_ref().is_some_and(|e| e.repeats) {
            if let Value::Array(items) = object
                .entry(key)
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                items.push(value);
            }
        } else if object.contains_key(&key) {
            return Err(invalid(
                &sub_at,
                format!("'{name}' does not repeat but is given twice"),
            ));
        } else {
            object.insert(key, value);
        }
    }
    Ok(Value::Object(object))
}

/// The element `name` of `ty`, or 400 naming the part.
pub(super) fn known(
    ty: &str,
    name: &str,
    suffix: Option<&str>,
    at: &str,
) -> Result<Element, Issue> {
    schema::lookup(ty, name, suffix).ok_or_else(|| {
        invalid(
            at,
            format!(
                "{} has no element '{}'{}",
                ty.replace('_', "."),
                name.chars().take(64).collect::<String>(),
                suffix.map_or(String::new(), |s| format!(" of type {s}"))
            ),
        )
    })
}
