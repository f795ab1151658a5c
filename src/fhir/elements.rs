//! `_summary` and `_elements` (search.html#summary, #elements): a stored body cut down
//! to a subset of its elements. Kept members are copied as stored text (never
//! re-serialised); `meta` gains the SUBSETTED tag. Which elements R4 marks `isSummary`
//! and which are mandatory (min >= 1) comes from `summary_table.json`, generated from
//! the official R4 StructureDefinitions by `tools/gen-summary-table.py`.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::resource::RawMembers;

/// Always kept (search.html#elements).
const ALWAYS: &[&str] = &["resourceType", "id", "meta"];

const SUBSETTED: &str = "SUBSETTED";
const OBSERVATION_VALUE: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

/// `_summary` (search.html#summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    /// The elements R4 marks isSummary, and the mandatory ones.
    True,
    /// `id`, `meta`, `text` and the mandatory top-level elements.
    Text,
    /// Everything but `text`.
    Data,
    /// The total only (search).
    Count,
    /// The whole resource.
    False,
}

impl Summary {
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "true" => Self::True,
            "text" => Self::Text,
            "data" => Self::Data,
            "count" => Self::Count,
            "false" => Self::False,
            _ => return None,
        })
    }
}

/// How returned resources are cut down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subset {
    Summary(Summary),
    /// `_elements`: top-level element names.
    Elements(Vec<String>),
}

/// The subset `_summary` and `_elements` ask for (`None`: whole resources).
/// `_summary=count` is returned as asked: the caller refuses it where it means nothing.
pub fn parse_subset(
    summary: Option<&str>,
    elements: Option<&str>,
) -> Result<Option<Subset>, Issue> {
    combine(
        summary.map(parse_summary).transpose()?,
        elements.map(parse_elements).transpose()?,
    )
}

/// `_summary=...`, or 400 naming `_summary`.
pub fn parse_summary(value: &str) -> Result<Summary, Issue> {
    Summary::parse(value).ok_or_else(|| {
        Issue::error(
            IssueCode::Value,
            format!(
                "_summary takes true, text, data, count or false, not '{}'",
                value.chars().take(64).collect::<String>()
            ),
        )
        .at("_summary")
    })
}

/// Both at once is refused (a `_summary=false` aside): their meanings conflict.
pub fn combine(
    summary: Option<Summary>,
    elements: Option<Vec<String>>,
) -> Result<Option<Subset>, Issue> {
    match (summary, elements) {
        (Some(s), Some(_)) if s != Summary::False => Err(Issue::error(
            IssueCode::Invalid,
            "_summary and _elements cannot be combined: use one of them",
        )
        .at("_elements")),
        (_, Some(e)) => Ok(Some(Subset::Elements(e))),
        (Some(Summary::False) | None, None) => Ok(None),
        (Some(s), None) => Ok(Some(Subset::Summary(s))),
    }
}

/// `_elements=name,birthDate`: top-level element names (an R5-style `Patient.name`
/// prefix is accepted and dropped).
pub fn parse_elements(value: &str) -> Result<Vec<String>, Issue> {
    let mut elements = Vec::new();
    for e in value.split(',').map(str::trim) {
        let e = match e.split_once('.') {
            Some((ty, rest)) if ty.starts_with(|c: char| c.is_ascii_uppercase()) => rest,
            _ => e,
        };
        let ok = e.starts_with(|c: char| c.is_ascii_alphabetic())
            && e.chars().all(|c| c.is_ascii_alphanumeric());
        if !ok {
            return Err(Issue::error(
                IssueCode::Value,
                format!(
                    "_elements lists top-level element names, not '{}'",
                    e.chars().take(64).collect::<String>()
                ),
            )
            .at("_elements"));
        }
        elements.push(e.to_owned());
    }
    Ok(elements)
}

/// Per type: element path (without the type, `[x]` for choices) -> flags.
#[derive(Debug, Default, Clone, Copy)]
struct Flags {
    summary: bool,
    mandatory: bool,
}

struct TypeTable {
    flags: HashMap<String, Flags>,
    /// `item.item` -> `item`: the element whose children a contentReference reuses.
    content_refs: HashMap<String, String>,
}

static TABLE: LazyLock<HashMap<String, TypeTable>> = LazyLock::new(|| {
    let raw: Value = serde_json::from_str(include_str!("summary_table.json"))
        .expect("embedded summary table is valid JSON");
    let mut out = HashMap::new();
    for (ty, paths) in raw["types"].as_object().into_iter().flatten() {
        let mut table = TypeTable {
            flags: HashMap::new(),
            content_refs: HashMap::new(),
        };
        for (path, code) in paths.as_object().into_iter().flatten() {
            let code = code.as_str().unwrap_or_default();
            let (flags, reference) = code.split_once('@').unwrap_or((code, ""));
            table.flags.insert(
                path.clone(),
                Flags {
                    summary: flags.contains('s'),
                    mandatory: flags.contains('m'),
                },
            );
            if !reference.is_empty() {
                table
                    .content_refs
                    .insert(path.clone(), reference.to_owned());
            }
        }
        out.insert(ty.clone(), table);
    }
    out
});

/// Whether the summary table knows `resource_type` (every registered type).
pub fn knows(resource_type: &str) -> bool {
    TABLE.contains_key(resource_type)
}

impl TypeTable {
    /// The element a JSON member names under `parent` (`""` at the top): `_x` is `x`,
    /// `valueString` is `value[x]`.
    fn element(&self, parent: &str, key: &str) -> Option<(String, Flags)> {
        let name = match key.strip_prefix('_') {
            Some(n) if !n.is_empty() => n,
            _ => key,
        };
        let path = if parent.is_empty() {
            name.to_owned()
        } else {
            format!("{parent}.{name}")
        };
        if let Some(f) = self.flags.get(&path) {
            return Some((path, *f));
        }
        self.flags.iter().find_map(|(p, f)| {
            let base = p.strip_suffix("[x]")?;
            let rest = path.strip_prefix(base)?;
            (rest.starts_with(|c: char| c.is_ascii_uppercase()) && !rest.contains('.'))
                .then(|| (p.clone(), *f))
        })
    }

    /// The path whose children an element's children are (follows a contentReference).
    fn children_of<'a>(&'a self, path: &'a str) -> &'a str {
        self.content_refs.get(path).map_or(path, String::as_str)
    }

    fn has_children(&self, path: &str) -> bool {
        let prefix = format!("{path}.");
        self.flags.keys().any(|p| p.starts_with(&prefix))
    }
}

/// The stored JSON `body` of a `resource_type` cut down to `subset`, with the SUBSETTED
/// tag; `None` if the body is not a JSON object (stored versions always are).
pub fn apply(body: &str, resource_type: &str, subset: &Subset) -> Option<String> {
    let members = serde_json::from_str::<RawMembers>(body).ok()?.0;
    let table = TABLE.get(resource_type);
    let mandatory = |key: &str| {
        table
            .and_then(|t| t.element("", key))
            .is_some_and(|(_, f)| f.mandatory)
    };
    let mut kept: Vec<(String, String)> = Vec::with_capacity(members.len());
    for (key, raw) in &members {
        if key == "meta" {
            kept.push((key.clone(), tagged_meta(raw.get())));
            continue;
        }
        let value = if ALWAYS.contains(&key.as_str()) {
            Some(raw.get().to_owned())
        } else {
            match subset {
                Subset::Summary(Summary::Data) => {
                    (key != "text" && key != "_text").then(|| raw.get().to_owned())
                }
                Subset::Summary(Summary::Text) => {
                    (key == "text" || mandatory(key)).then(|| raw.get().to_owned())
                }
                Subset::Summary(_) => table.and_then(|t| summary_member(t, "", key, raw)),
                Subset::Elements(names) => {
                    let name = key.strip_prefix('_').unwrap_or(key);
                    (names.iter().any(|n| n == name) || mandatory(key))
                        .then(|| raw.get().to_owned())
                }
            }
        };
        if let Some(v) = value {
            kept.push((key.clone(), v));
        }
    }
    if !kept.iter().any(|(k, _)| k == "meta") {
        let after_id = kept
            .iter()
            .position(|(k, _)| k == "id")
            .or_else(|| kept.iter().position(|(k, _)| k == "resourceType"))
            .map_or(0, |p| p + 1);
        kept.insert(after_id, ("meta".into(), tagged_meta("{}")));
    }
    Some(object(&kept))
}

/// `_summary=true` for one member under `parent`: kept when summary or mandatory; a
/// backbone element keeps only its own summary and mandatory children (when that
/// leaves nothing, it is kept whole).
fn summary_member(table: &TypeTable, parent: &str, key: &str, raw: &RawValue) -> Option<String> {
    let (path, flags) = table.element(parent, key)?;
    if !(flags.summary || flags.mandatory) {
        return None;
    }
    let children = table.children_of(&path);
    if key.starts_with('_') || !table.has_children(children) {
        return Some(raw.get().to_owned());
    }
    let cut = |item: &RawValue| -> String {
        let Ok(RawMembers(members)) = serde_json::from_str::<RawMembers>(item.get()) else {
            return item.get().to_owned();
        };
        let kept: Vec<(String, String)> = members
            .iter()
            .filter_map(|(k, v)| summary_member(table, children, k, v).map(|s| (k.clone(), s)))
            .collect();
        if kept.is_empty() {
            item.get().to_owned()
        } else {
            object(&kept)
        }
    };
    match serde_json::from_str::<Vec<Box<RawValue>>>(raw.get()) {
        Ok(items) => Some(format!(
            "[{}]",
            items.iter().map(|i| cut(i)).collect::<Vec<_>>().join(",")
        )),
        Err(_) => Some(cut(raw)),
    }
}

fn object(members: &[(String, String)]) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(key.clone()).to_string());
        out.push(':');
        out.push_str(value);
    }
    out.push('}');
    out
}

fn tagged_meta(meta: &str) -> String {
    let mut meta: Value = serde_json::from_str(meta).unwrap_or_else(|_| json!({}));
    let tag = json!({ "system": OBSERVATION_VALUE, "code": SUBSETTED });
    if let Some(obj) = meta.as_object_mut() {
        let tags = obj.entry("tag").or_insert_with(|| json!([]));
        if let Some(list) = tags.as_array_mut() {
            if !list
                .iter()
                .any(|t| t["code"] == SUBSETTED && t["system"] == OBSERVATION_VALUE)
            {
                list.push(tag);
            }
        }
    }
    meta.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elements(list: &[&str]) -> Subset {
        Subset::Elements(list.iter().map(|s| (*s).to_owned()).collect())
    }

    const TAG: &str = r#"{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED"}"#;

    #[test]
    fn every_registered_type_is_in_the_table() {
        for def in crate::fhir::registry::RESOURCES {
            assert!(
                knows(def.name),
                "{} missing: run tools/gen-summary-table.py",
                def.name
            );
        }
    }

    #[test]
    fn elements_keep_bytes_mandatory_and_tag() {
        let body = r#"{"resourceType":"Patient","id":"p","meta":{"versionId":"1"},"birthDate":"1958-04-17","_birthDate":{"extension":[{"url":"y","valueCode":"z"}]},"name":[{"family":"Jansen" }],"extension":[{"url":"x","valueDecimal":1.50}]}"#;
        let out = apply(body, "Patient", &elements(&["extension", "birthDate"])).unwrap();
        assert_eq!(
            out,
            format!(
                r#"{{"resourceType":"Patient","id":"p","meta":{{"versionId":"1","tag":[{TAG}]}},"birthDate":"1958-04-17","_birthDate":{{"extension":[{{"url":"y","valueCode":"z"}}]}},"extension":[{{"url":"x","valueDecimal":1.50}}]}}"#
            )
        );
        let task = r#"{"resourceType":"Task","id":"t","meta":{"versionId":"2"},"status":"requested","intent":"order","note":[{"text":"x"}]}"#;
        let out = apply(task, "Task", &elements(&["note"])).unwrap();
        assert!(
            out.contains(r#""status":"requested","intent":"order","note""#),
            "{out}"
        );
        let out = apply(task, "Task", &elements(&["id"])).unwrap();
        assert!(
            !out.contains("note") && out.contains(r#""intent":"order""#),
            "{out}"
        );
    }

    #[test]
    fn summary_modes() {
        let task = r#"{"resourceType":"Task","id":"t","meta":{"versionId":"2"},"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"extension":[{"url":"e","valueString":"v"}],"status":"requested","_status":{"id":"s"},"intent":"order","for":{"reference":"Patient/1"},"note":[{"text":"n"}],"input":[{"type":{"text":"t"},"valueString":"v"}]}"#;
        let summary = apply(task, "Task", &Subset::Summary(Summary::True)).unwrap();
        assert_eq!(
            summary,
            format!(
                r#"{{"resourceType":"Task","id":"t","meta":{{"versionId":"2","tag":[{TAG}]}},"status":"requested","_status":{{"id":"s"}},"intent":"order","for":{{"reference":"Patient/1"}}}}"#
            )
        );
        let text = apply(task, "Task", &Subset::Summary(Summary::Text)).unwrap();
        assert!(text.contains(r#""text":{"status""#), "{text}");
        assert!(
            text.contains(r#""status":"requested","_status":{"id":"s"},"intent":"order"}"#),
            "{text}"
        );
        assert!(
            !text.contains("for") && !text.contains("extension"),
            "{text}"
        );
        let data = apply(task, "Task", &Subset::Summary(Summary::Data)).unwrap();
        assert!(!data.contains("div") && data.contains(r#""note":[{"text":"n"}]"#));
    }

    #[test]
    fn summary_recurses_into_backbone_elements_and_choices() {
        let patient = r#"{"resourceType":"Patient","id":"p","deceasedBoolean":false,"contact":[{"name":{"text":"c"}}],"link":[{"id":"l","other":{"reference":"Patient/2"},"type":"seealso"}]}"#;
        let out = apply(patient, "Patient", &Subset::Summary(Summary::True)).unwrap();
        assert_eq!(
            out,
            format!(
                r#"{{"resourceType":"Patient","id":"p","meta":{{"tag":[{TAG}]}},"deceasedBoolean":false,"link":[{{"other":{{"reference":"Patient/2"}},"type":"seealso"}}]}}"#
            )
        );
    }

    #[test]
    fn parsing() {
        assert_eq!(parse_subset(None, None), Ok(None));
        assert_eq!(parse_subset(Some("false"), None), Ok(None));
        assert_eq!(
            parse_subset(Some("text"), None),
            Ok(Some(Subset::Summary(Summary::Text)))
        );
        assert_eq!(
            parse_subset(Some("false"), Some("Patient.name,birthDate")),
            Ok(Some(elements(&["name", "birthDate"])))
        );
        let both = parse_subset(Some("true"), Some("name")).unwrap_err();
        assert_eq!(both.expression.as_deref(), Some("_elements"));
        let bad = parse_subset(Some("yes"), None).unwrap_err();
        assert_eq!(bad.expression.as_deref(), Some("_summary"));
        assert!(parse_subset(None, Some("name.family")).is_err());
    }
}
