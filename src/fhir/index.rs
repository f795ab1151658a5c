//! Index rows a resource contributes to search, per the registry's parameters.

use serde_json::Value;

use crate::fhir::identifiers::normalize_system;
use crate::fhir::registry::{ParamKind, ResourceDef};
use crate::store::{IndexRows, TokenRow};

pub fn index_rows(def: &ResourceDef, resource: &Value) -> IndexRows {
    let mut rows = Vec::new();
    for param in def.search_params {
        match param.kind {
            ParamKind::Id => {}
            ParamKind::Identifier => {
                let identifiers = resource
                    .get(param.element)
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                for identifier in identifiers {
                    let Some(code) = identifier.get("value").and_then(Value::as_str) else {
                        continue;
                    };
                    rows.push(TokenRow {
                        param: param.name.to_owned(),
                        system: identifier
                            .get("system")
                            .and_then(Value::as_str)
                            .map(|s| normalize_system(s).to_owned()),
                        code: code.to_owned(),
                    });
                }
            }
        }
    }
    rows
}
