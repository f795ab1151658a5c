//! Resource bodies as the client sent them.
//!
//! A body is parsed twice: into a `serde_json::Value` for validation and indexing, and
//! into its top-level members as raw JSON text. The stored body is rebuilt from the raw
//! members, so every element other than `id` and `meta` is kept byte-for-byte
//! (decimals such as `1.50`, extensions, elements no Rust model knows).

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::fhir::instant::format_instant;
use crate::fhir::outcome::{Issue, IssueCode};

/// A new logical id for a resource the server creates (`create`, a Bundle's `POST`, the
/// routing Task, ...): a UUID version 7, whose first 48 bits are the creation time in
/// milliseconds. New rows then land at the right edge of every id-keyed index instead
/// of on a random page each: at 1,000,000 stored referrals a random id made each insert
/// read a leaf page per index from the disk (BENCHMARKS.md, round 5). The time it
/// reveals is the version's `meta.lastUpdated` anyway.
pub fn new_logical_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A parsed request body holding one JSON object.
#[derive(Debug)]
pub struct IncomingResource {
    pub value: Value,
    members: Vec<(String, Box<RawValue>)>,
}

impl IncomingResource {
    /// Parses a request body: UTF-8, one JSON object, no duplicate member names,
    /// nesting within serde_json's recursion limit.
    pub fn parse(bytes: &[u8]) -> Result<Self, Issue> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            Issue::error(
                IssueCode::Structure,
                format!("The body is not valid UTF-8 (byte {})", e.valid_up_to()),
            )
        })?;
        if text.trim().is_empty() {
            return Err(Issue::error(IssueCode::Required, "The body is empty"));
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let value = StrictValue
            .deserialize(&mut de)
            .and_then(|v| de.end().map(|()| v))
            .map_err(|e| json_issue(&e))?;
        if !value.is_object() {
            return Err(Issue::error(
                IssueCode::Structure,
                "The body must be a JSON object (a FHIR resource)",
            ));
        }
        let members = serde_json::from_str::<RawMembers>(text)
            .map_err(|e| json_issue(&e))?
            .0;
        Ok(Self { value, members })
    }

    /// Replaces (or appends) one top-level member, keeping every other member's bytes.
    pub fn set_member(&mut self, key: &str, value: Value) -> Result<(), serde_json::Error> {
        let raw = serde_json::value::to_raw_value(&value)?;
        match self.members.iter_mut().find(|(k, _)| k == key) {
            Some((_, slot)) => *slot = raw,
            None => self.members.push((key.to_owned(), raw)),
        }
        if let Some(obj) = self.value.as_object_mut() {
            obj.insert(key.to_owned(), value);
        }
        Ok(())
    }

    pub fn resource_type(&self) -> Option<&str> {
        self.value.get("resourceType").and_then(Value::as_str)
    }

    pub fn id(&self) -> Option<&Value> {
        self.value.get("id")
    }

    /// The JSON to store: the client's members unchanged, `id` and `meta.versionId`/
    /// `meta.lastUpdated` set by the server (other `meta` elements such as profile and
    /// tag are kept). `id` and `meta` keep their position, or follow `resourceType`.
    pub fn render(&self, id: &str, version_id: i64, last_updated: i64) -> String {
        let meta = self.server_meta(version_id, last_updated);
        let id_json = Value::String(id.to_owned()).to_string();
        let mut parts: Vec<(String, String)> = Vec::with_capacity(self.members.len() + 2);
        let mut wrote_id = false;
        let mut wrote_meta = false;
        for (key, raw) in &self.members {
            match key.as_str() {
                "id" => {
                    parts.push(("id".into(), id_json.clone()));
                    wrote_id = true;
                }
                "meta" => {
                    parts.push(("meta".into(), meta.clone()));
                    wrote_meta = true;
                }
                _ => parts.push((key.clone(), raw.get().to_owned())),
            }
        }
        let after_type = parts
            .iter()
            .position(|(k, _)| k == "resourceType")
            .map_or(0, |p| p + 1);
        if !wrote_meta {
            parts.insert(after_type, ("meta".into(), meta));
        }
        if !wrote_id {
            parts.insert(after_type, ("id".into(), id_json));
        }
        let mut out = String::with_capacity(parts.iter().map(|(k, v)| k.len() + v.len() + 4).sum());
        out.push('{');
        for (i, (key, value)) in parts.iter().enumerate() {
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

    fn server_meta(&self, version_id: i64, last_updated: i64) -> String {
        let mut meta = match self.value.get("meta") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        meta.insert("versionId".into(), json!(version_id.to_string()));
        meta.insert("lastUpdated".into(), json!(format_instant(last_updated)));
        Value::Object(meta).to_string()
    }
}

fn json_issue(e: &serde_json::Error) -> Issue {
    let msg = e.to_string();
    let what = if msg.contains("recursion limit") {
        "The body nests too deeply"
    } else {
        "The body is not valid JSON"
    };
    // serde_json's messages name positions and expectations, never content.
    Issue::error(IssueCode::Structure, format!("{what}: {msg}"))
}

/// Top-level members as raw JSON text, in order.
pub(crate) struct RawMembers(pub(crate) Vec<(String, Box<RawValue>)>);

impl<'de> serde::Deserialize<'de> for RawMembers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawMembers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawMembers, A::Error> {
                let mut members = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    members.push((k, v));
                }
                Ok(RawMembers(members))
            }
        }
        d.deserialize_map(V)
    }
}

/// Deserialises a `Value`, refusing duplicate member names at any depth (plain
/// `Value` silently keeps the last one, which would validate one thing and store another).
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!(
                    "duplicate member name '{}'",
                    key.chars().take(64).collect::<String>()
                )));
            }
            let value = map.next_value_seed(StrictValue)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_keeps_client_bytes_and_sets_id_meta() {
        let body = br#"{"resourceType":"Observation","valueQuantity":{"value":1.50},"meta":{"profile":["x"],"versionId":"9"},"id":"client"}"#;
        let r = IncomingResource::parse(body).unwrap();
        let out = r.render("abc", 3, 0);
        assert_eq!(
            out,
            r#"{"resourceType":"Observation","valueQuantity":{"value":1.50},"meta":{"profile":["x"],"versionId":"3","lastUpdated":"1970-01-01T00:00:00.000000Z"},"id":"abc"}"#
        );
    }

    #[test]
    fn set_member_keeps_the_other_members_bytes() {
        let body = br#"{"resourceType":"ServiceRequest","status":"active","quantityQuantity":{"value":1.50}}"#;
        let mut r = IncomingResource::parse(body).unwrap();
        r.set_member("status", json!("completed")).unwrap();
        assert_eq!(r.value["status"], "completed");
        assert!(r
            .render("s", 2, 0)
            .contains(r#""status":"completed","quantityQuantity":{"value":1.50}"#));
    }

    #[test]
    fn render_inserts_id_and_meta_after_resource_type() {
        let r = IncomingResource::parse(br#"{"resourceType":"Patient","active":true}"#).unwrap();
        assert!(r
            .render("p1", 1, 0)
            .starts_with(r#"{"resourceType":"Patient","id":"p1","meta":{"versionId":"1""#));
    }

    #[test]
    fn rejects_bad_bodies() {
        for body in [
            &b"\xff\xfe"[..],
            b"",
            b"[1]",
            b"{\"a\":1,\"a\":2}",
            b"{\"a\":{\"b\":1,\"b\":1}}",
            b"{\"a\":1} trailing",
        ] {
            assert!(IncomingResource::parse(body).is_err(), "{body:?}");
        }
        let deep = format!(
            "{}{}",
            "{\"a\":".repeat(200),
            "1".to_owned() + &"}".repeat(200)
        );
        let err = IncomingResource::parse(deep.as_bytes()).unwrap_err();
        assert!(
            err.diagnostics.contains("too deeply"),
            "{}",
            err.diagnostics
        );
    }
}
