//! FHIRPath Patch (R4 fhirpatch.html): a Parameters resource with one `operation`
//! parameter per change, each with the parts `type` (add | insert | delete | replace |
//! move), `path`, and as the type needs `name`, `value`, `index`, `source`,
//! `destination`. A `value` is a `value[x]` (its JSON becomes the element) or, for
//! types without a `value[x]` form (backbone elements such as `Task.output`), nested
//! parts named after the elements.
//!
//! Errors name the part: `Parameters.parameter[0].part[1]`. A patch that cannot be
//! parsed, or names elements a type does not have, is invalid (400); one that does not
//! fit the resource as it is (nothing to replace, an index past the end, an element
//! that already exists) is unprocessable (422).

use serde_json::{Map, Value};

use super::path::{evaluate, get, get_mut, Node, Path, Seg};
use super::schema::{self, Element};
use super::value::{convert, known, value_suffix};
use super::PatchError;
use crate::fhir::outcome::{Issue, IssueCode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Add,
    Insert,
    Delete,
    Replace,
    Move,
}

/// A part's content and where it is (`Parameters.parameter[0].part[2]`).
#[derive(Debug, Clone)]
struct Part<T> {
    value: T,
    at: String,
}

#[derive(Debug, Clone)]
struct Operation {
    kind: Kind,
    path: Part<Path>,
    path_text: String,
    name: Option<Part<String>>,
    value: Option<Part<Value>>,
    index: Option<Part<usize>>,
    source: Option<Part<usize>>,
    destination: Option<Part<usize>>,
}

/// A parsed FHIRPath Patch.
#[derive(Debug, Clone)]
pub struct FhirPathPatch {
    ops: Vec<Operation>,
}

pub(super) fn invalid(at: &str, diagnostics: impl Into<String>) -> Issue {
    Issue::error(IssueCode::Invalid, diagnostics).at(at)
}

impl FhirPathPatch {
    /// Parses a Parameters resource (already valid R4) as a patch of a `resource_type`.
    pub fn parse(params: &Value, resource_type: &str) -> Result<Self, Vec<Issue>> {
        let Some(parameters) = params.get("parameter").and_then(Value::as_array) else {
            return Err(vec![Issue::error(
                IssueCode::Required,
                "A FHIRPath Patch needs at least one parameter named 'operation'",
            )
            .at("Parameters.parameter")]);
        };
        let mut ops = Vec::with_capacity(parameters.len());
        let mut issues = Vec::new();
        for (n, parameter) in parameters.iter().enumerate() {
            match operation(
                parameter,
                &format!("Parameters.parameter[{n}]"),
                resource_type,
            ) {
                Ok(op) => ops.push(op),
                Err(issue) => issues.push(issue),
            }
        }
        if issues.is_empty() {
            Ok(Self { ops })
        } else {
            Err(issues)
        }
    }

    /// Applies the operations in order to `doc`, a resource of `resource_type`.
    pub fn apply(&self, resource_type: &str, doc: &mut Value) -> Result<(), PatchError> {
        self.ops
            .iter()
            .try_for_each(|op| op.apply(resource_type, doc))
    }
}

/// Sets a part given at most once.
fn once<T>(slot: &mut Option<T>, value: T, twice: &dyn Fn() -> Issue) -> Result<(), Issue> {
    match slot.replace(value) {
        Some(_) => Err(twice()),
        None => Ok(()),
    }
}

fn operation(parameter: &Value, at: &str, resource_type: &str) -> Result<Operation, Issue> {
    if parameter.get("name").and_then(Value::as_str) != Some("operation") {
        return Err(invalid(
            &format!("{at}.name"),
            "Each parameter of a FHIRPath Patch is named 'operation'",
        ));
    }
    let Some(parts) = parameter.get("part").and_then(Value::as_array) else {
        return Err(Issue::error(
            IssueCode::Required,
            "An operation needs its parts (type, path, ...)",
        )
        .at(format!("{at}.part")));
    };
    let mut kind = None;
    let mut path = None;
    let (mut name, mut value, mut index, mut source, mut destination) =
        (None, None, None, None, None);
    for (m, part) in parts.iter().enumerate() {
        let part_at = format!("{at}.part[{m}]");
        let part_name = part.get("name").and_then(Value::as_str).unwrap_or_default();
        let twice = || invalid(&part_at, format!("The part '{part_name}' is given twice"));
        let string = |key: &str| {
            part.get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| invalid(&part_at, format!("The part '{part_name}' needs {key}")))
        };
        let integer = || {
            part.get("valueInteger")
                .and_then(Value::as_u64)
                .and_then(|i| usize::try_from(i).ok())
                .map(|value| Part {
                    value,
                    at: part_at.clone(),
                })
                .ok_or_else(|| {
                    invalid(
                        &part_at,
                        format!("The part '{part_name}' needs valueInteger (0 or more)"),
                    )
                })
        };
        match part_name {
            "type" => {
                let code = string("valueCode")?;
                let k = match code.as_str() {
                    "add" => Kind::Add,
                    "insert" => Kind::Insert,
                    "delete" => Kind::Delete,
                    "replace" => Kind::Replace,
                    "move" => Kind::Move,
                    other => {
                        return Err(invalid(
                            &part_at,
                            format!(
                                "Unknown operation type '{}' (add, insert, delete, replace, move)",
                                other.chars().take(40).collect::<String>()
                            ),
                        ))
                    }
                };
                once(&mut kind, k, &twice)?;
            }
            "path" => {
                let text = string("valueString")?;
                let parsed = Path::parse(&text, resource_type).map_err(|e| {
                    Issue::error(IssueCode::NotSupported, format!("Unsupported path: {e}"))
                        .at(part_at.clone())
                })?;
                let p = Part {
                    value: parsed,
                    at: part_at.clone(),
                };
                once(&mut path, (p, text), &twice)?;
            }
            "name" => {
                let p = Part {
                    value: string("valueString")?,
                    at: part_at.clone(),
                };
                once(&mut name, p, &twice)?;
            }
            "value" => {
                let p = Part {
                    value: part.clone(),
                    at: part_at.clone(),
                };
                once(&mut value, p, &twice)?;
            }
            "index" | "source" | "destination" => {
                let slot = match part_name {
                    "index" => &mut index,
                    "source" => &mut source,
                    _ => &mut destination,
                };
                once(slot, integer()?, &twice)?;
            }
            other => {
                return Err(invalid(
                    &part_at,
                    format!(
                        "Unknown part '{}' (type, path, name, value, index, source, destination)",
                        other.chars().take(40).collect::<String>()
                    ),
                ))
            }
        }
    }
    let required = |what: &str| {
        Issue::error(
            IssueCode::Required,
            format!("The operation needs the part '{what}'"),
        )
        .at(format!("{at}.part"))
    };
    let kind = kind.ok_or_else(|| required("type"))?;
    let (path, path_text) = path.ok_or_else(|| required("path"))?;
    let (needs, takes): (&[&str], &[&str]) = match kind {
        Kind::Add => (&["name", "value"], &["name", "value"]),
        Kind::Insert => (&["value", "index"], &["value", "index"]),
        Kind::Delete => (&[], &[]),
        Kind::Replace => (&["value"], &["value"]),
        Kind::Move => (&["source", "destination"], &["source", "destination"]),
    };
    let given = [
        ("name", name.as_ref().map(|p| p.at.as_str())),
        ("value", value.as_ref().map(|p| p.at.as_str())),
        ("index", index.as_ref().map(|p| p.at.as_str())),
        ("source", source.as_ref().map(|p| p.at.as_str())),
        ("destination", destination.as_ref().map(|p| p.at.as_str())),
    ];
    for (part, at) in given {
        match at {
            None if needs.contains(&part) => return Err(required(part)),
            Some(at) if !takes.contains(&part) => {
                return Err(invalid(
                    at,
                    format!("A {kind:?} operation takes no part '{part}'").to_lowercase(),
                ))
            }
            _ => {}
        }
    }
    if let Some(v) = &value {
        value_suffix(&v.value, &v.at)?;
    }
    Ok(Operation {
        kind,
        path,
        path_text,
        name,
        value,
        index,
        source,
        destination,
    })
}

fn unprocessable(at: &str, diagnostics: impl Into<String>) -> PatchError {
    PatchError::Unprocessable(Issue::error(IssueCode::Processing, diagnostics).at(at))
}

impl Operation {
    fn apply(&self, rt: &str, doc: &mut Value) -> Result<(), PatchError> {
        match self.kind {
            Kind::Add => self.add(rt, doc),
            Kind::Insert => self.insert(rt, doc),
            Kind::Delete => self.delete(rt, doc),
            Kind::Replace => self.replace(rt, doc),
            Kind::Move => self.moved(rt, doc),
        }
    }

    fn echo(&self) -> String {
        self.path_text.chars().take(100).collect()
    }

    /// The one element the (partial) path selects.
    fn single(
        &self,
        doc: &Value,
        rt: &str,
        steps: &[super::path::Step],
    ) -> Result<Node, PatchError> {
        let mut nodes = evaluate(doc, rt, steps);
        match nodes.len() {
            1 => Ok(nodes.remove(0)),
            0 => Err(unprocessable(
                &self.path.at,
                format!("The path '{}' selects nothing in the resource", self.echo()),
            )),
            n => Err(unprocessable(
                &self.path.at,
                format!(
                    "The path '{}' selects {n} elements; an operation works on one",
                    self.echo()
                ),
            )),
        }
    }

    fn value(&self) -> Result<&Part<Value>, PatchError> {
        self.value
            .as_ref()
            .ok_or_else(|| PatchError::Invalid(invalid(&self.path.at, "A value is required")))
    }

    fn add(&self, rt: &str, doc: &mut Value) -> Result<(), PatchError> {
        let container = self.single(doc, rt, &self.path.value.steps)?;
        let (Some(name), value) = (&self.name, self.value()?) else {
            return Err(PatchError::Invalid(invalid(
                &self.path.at,
                "add needs a name",
            )));
        };
        let suffix = value_suffix(&value.value, &value.at).map_err(PatchError::Invalid)?;
        let element = match &container.ty {
            Some(ty) => Some(
                known(ty, &name.value, suffix.as_deref(), &name.at).map_err(PatchError::Invalid)?,
            ),
            None => None,
        };
        let key = element
            .as_ref()
            .map_or(name.value.clone(), |e| e.key.clone());
        let json = convert(
            &value.value,
            &value.at,
            element.as_ref().and_then(|e| e.ty.as_deref()),
        )
        .map_err(PatchError::Invalid)?;
        let choice_taken = match (&container.ty, get(doc, &container.loc)) {
            (Some(ty), Some(Value::Object(o))) if key != name.value => {
                schema::present_choice(ty, &name.value, o).is_some()
            }
            _ => false,
        };
        let Some(Value::Object(object)) = get_mut(doc, &container.loc) else {
            return Err(unprocessable(
                &self.path.at,
                format!(
                    "The path '{}' selects a primitive value; add needs an element with children",
                    self.echo()
                ),
            ));
        };
        let exists = object.contains_key(&key) || choice_taken;
        match (element.map(|e| e.repeats), object.get_mut(&key)) {
            (Some(true) | None, Some(Value::Array(items))) => items.push(json),
            (Some(true), None) => {
                object.insert(key, Value::Array(vec![json]));
            }
            _ if exists => {
                return Err(unprocessable(
                    &name.at,
                    format!(
                        "'{}' already has a value at '{}': add is for absent elements, use replace",
                        name.value,
                        self.echo()
                    ),
                ))
            }
            _ => {
                object.insert(key, json);
            }
        }
        Ok(())
    }

    /// The container and the repeating element `insert` and `move` work on.
    fn list<'a>(
        &self,
        rt: &str,
        doc: &'a mut Value,
    ) -> Result<(Element, &'a mut Map<String, Value>), PatchError> {
        let Some((prefix, name)) = self.path.value.split_last_child() else {
            return Err(PatchError::Invalid(invalid(
                &self.path.at,
                "The path must end with the name of a repeating element (such as Task.note)",
            )));
        };
        let container = self.single(doc, rt, prefix)?;
        let element = match &container.ty {
            Some(ty) => known(ty, name, None, &self.path.at).map_err(PatchError::Invalid)?,
            None => Element {
                key: name.to_owned(),
                repeats: true,
                ty: None,
            },
        };
        if !element.repeats {
            return Err(PatchError::Invalid(invalid(
                &self.path.at,
                format!("'{name}' does not repeat: use add, replace or delete"),
            )));
        }
        match get_mut(doc, &container.loc) {
            Some(Value::Object(object)) => Ok((element, object)),
            _ => Err(unprocessable(
                &self.path.at,
                format!("'{}' selects no element with children", self.echo()),
            )),
        }
    }

    fn insert(&self, rt: &str, doc: &mut Value) -> Result<(), PatchError> {
        let value = self.value()?;
        let (element, object) = self.list(rt, doc)?;
        let json =
            convert(&value.value, &value.at, element.ty.as_deref()).map_err(PatchError::Invalid)?;
        let Some(index) = &self.index else {
            return Err(PatchError::Invalid(invalid(
                &self.path.at,
                "insert needs an index",
            )));
        };
        let items = match object
            .entry(element.key.clone())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            Value::Array(items) => items,
            _ => {
                return Err(unprocessable(
                    &self.path.at,
                    format!("'{}' is not a list in this resource", self.echo()),
                ))
            }
        };
        if index.value > items.len() {
            let len = items.len();
            return Err(unprocessable(
                &index.at,
                format!(
                    "Index {} is past the end of '{}', which has {len} elements",
                    index.value,
                    self.echo()
                ),
            ));
        }
        items.insert(index.value, json);
        Ok(())
    }

    fn delete(&self, rt: &str, doc: &mut Value) -> Result<(), PatchError> {
        let mut nodes = evaluate(doc, rt, &self.path.value.steps);
        let node = match nodes.len() {
            // fhirpatch.html: delete the element "if found".
            0 => return Ok(()),
            1 => nodes.remove(0),
            _ => return self.single(doc, rt, &self.path.value.steps).map(drop),
        };
        if node.loc.is_empty() {
            return Err(PatchError::Invalid(invalid(
                &self.path.at,
                "A patch cannot delete the resource itself (use DELETE)",
            )));
        }
        remove(doc, &node.loc);
        // JSON FHIR has no empty arrays or objects: remove what the delete emptied.
        for depth in (1..node.loc.len()).rev() {
            let emptied = match get(doc, &node.loc[..depth]) {
                Some(Value::Array(a)) => a.is_empty(),
                Some(Value::Object(o)) => o.is_empty(),
                _ => false,
            };
            if !emptied {
                break;
            }
            remove(doc, &node.loc[..depth]);
        }
        Ok(())
    }

    fn replace(&self, rt: &str, doc: &mut Value) -> Result<(), PatchError> {
        let value = self.value()?;
        let node = self.single(doc, rt, &self.path.value.steps)?;
        let Some((Seg::Key(_) | Seg::Index(_), parent)) = node.loc.split_last() else {
            return Err(PatchError::Invalid(invalid(
                &self.path.at,
                "A patch cannot replace the resource itself (use PUT)",
            )));
        };
        let suffix = value_suffix(&value.value, &value.at).map_err(PatchError::Invalid)?;
        // A choice element may change type: `value` from valueQuantity to valueString.
        let renamed = match (&node.choice, &suffix, node.loc.last()) {
            (Some(base), Some(s), Some(Seg::Key(old))) if *old != format!("{base}{s}") => {
                Some((old.clone(), format!("{base}{s}")))
            }
            _ => None,
        };
        let target = if renamed.is_some() {
            None
        } else {
            node.ty.as_deref()
        };
        let json = convert(&value.value, &value.at, target).map_err(PatchError::Invalid)?;
        match renamed {
            Some((old, new)) => {
                if let Some(Value::Object(object)) = get_mut(doc, parent) {
                    let members = std::mem::take(object);
                    for (k, v) in members {
                        if k == old {
                            object.insert(new.clone(), json.clone());
                        } else {
                            object.insert(k, v);
                        }
                    }
                }
            }
            None => {
                if let Some(slot) = get_mut(doc, &node.loc) {
                    *slot = json;
                }
            }
        }
        Ok(())
    }

    fn moved(&self, rt: &str, doc: &mut Value) -> Result<(), PatchError> {
        let (element, object) = self.list(rt, doc)?;
        let (Some(source), Some(destination)) = (&self.source, &self.destination) else {
            return Err(PatchError::Invalid(invalid(
                &self.path.at,
                "move needs source and destination",
            )));
        };
        let Some(Value::Array(items)) = object.get_mut(&element.key) else {
            return Err(unprocessable(
                &self.path.at,
                format!("'{}' is not a list in this resource", self.echo()),
            ));
        };
        let len = items.len();
        for index in [source, destination] {
            if index.value >= len {
                return Err(unprocessable(
                    &index.at,
                    format!(
                        "Index {} is past the end of '{}', which has {len} elements",
                        index.value,
                        self.echo()
                    ),
                ));
            }
        }
        let item = items.remove(source.value);
        items.insert(destination.value, item);
        Ok(())
    }
}

/// Removes the value at `loc` (not the root), keeping the order of the other members.
fn remove(doc: &mut Value, loc: &[Seg]) {
    let Some((last, parent)) = loc.split_last() else {
        return;
    };
    match (get_mut(doc, parent), last) {
        (Some(Value::Object(object)), Seg::Key(key)) => {
            object.shift_remove(key);
        }
        (Some(Value::Array(items)), Seg::Index(i)) if *i < items.len() => {
            items.remove(*i);
        }
        _ => {}
    }
}
