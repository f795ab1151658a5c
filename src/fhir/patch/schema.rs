//! What FHIRPath Patch needs to know about elements, read from the R4 JSON schema the
//! validator already embeds: whether an element repeats (a JSON array), its type (the
//! schema definition: `CodeableConcept`, the backbone `Task_Output`, a primitive), and
//! the JSON name of a choice element (`value` as `valueString`).

use serde_json::{Map, Value};

use crate::fhir::validate::r4_schema;

/// One element of a type, as the schema defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The JSON member name (`valueString` for the choice `value[x]`).
    pub key: String,
    pub repeats: bool,
    /// The schema definition of the element's type; `None` for inline primitives.
    pub ty: Option<String>,
}

fn properties(ty: &str) -> Option<&'static Map<String, Value>> {
    r4_schema()
        .get("definitions")?
        .get(ty)?
        .get("properties")?
        .as_object()
}

/// Whether `ty` has elements of its own (a resource, complex or backbone type).
pub fn is_complex(ty: &str) -> bool {
    properties(ty).is_some()
}

fn element(key: &str, definition: &Value) -> Element {
    let repeats = definition.get("type").and_then(Value::as_str) == Some("array");
    let reference = if repeats {
        definition.pointer("/items/$ref")
    } else {
        definition.get("$ref")
    };
    Element {
        key: key.to_owned(),
        repeats,
        ty: reference
            .and_then(Value::as_str)
            .and_then(|r| r.rsplit('/').next())
            .map(str::to_owned),
    }
}

/// The element `name` of `ty`. `name` may be the JSON name itself (`valueString`) or,
/// with the type `suffix` of the value at hand (`String`), a choice (`value`).
pub fn lookup(ty: &str, name: &str, suffix: Option<&str>) -> Option<Element> {
    let props = properties(ty)?;
    if name.starts_with('_') {
        return None;
    }
    if let Some(definition) = props.get(name) {
        return Some(element(name, definition));
    }
    let key = format!("{name}{}", suffix?);
    props.get(&key).map(|definition| element(&key, definition))
}

/// The member of `object` holding the choice element `name` of `ty` (`value` ->
/// `valueQuantity` when that is the one present).
pub fn present_choice(ty: &str, name: &str, object: &Map<String, Value>) -> Option<Element> {
    let props = properties(ty)?;
    object.keys().find_map(|key| {
        let rest = key.strip_prefix(name)?;
        if !rest.starts_with(|c: char| c.is_ascii_uppercase()) {
            return None;
        }
        props.get(key).map(|definition| element(key, definition))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cardinality_types_and_choices() {
        let note = lookup("Task", "note", None).unwrap();
        assert!(note.repeats);
        assert_eq!(note.ty.as_deref(), Some("Annotation"));
        let status = lookup("Task", "status", None).unwrap();
        assert!(!status.repeats);
        let output = lookup("Task", "output", None).unwrap();
        assert_eq!(output.ty.as_deref(), Some("Task_Output"));
        let value = lookup("Task_Output", "value", Some("String")).unwrap();
        assert_eq!(value.key, "valueString");
        assert_eq!(lookup("Task_Output", "value", None), None);
        assert_eq!(lookup("Task", "nonsense", None), None);
        let object = serde_json::json!({"valueReference": {"reference": "x"}});
        let found = present_choice("Task_Output", "value", object.as_object().unwrap()).unwrap();
        assert_eq!(found.key, "valueReference");
        assert_eq!(found.ty.as_deref(), Some("Reference"));
        assert!(is_complex("Task_Output") && !is_complex("string"));
    }
}
