//! PATCH bodies (R4 http.html#patch): JSON Patch (RFC 6902, `application/json-patch+json`)
//! and FHIRPath Patch (a Parameters resource, fhirpatch.html), parsed once and applied
//! to a resource's JSON. What the patched resource must then pass (validation, the
//! workflow, `If-Match`) is the update's business, not this module's.

mod fhirpath;
mod path;
mod schema;
#[cfg(test)]
mod tests;
mod value;

use base64::Engine;
use json_patch::{PatchErrorKind, PatchOperation};
use serde_json::Value;

pub use self::fhirpath::FhirPathPatch;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::resource::IncomingResource;
use crate::fhir::validate::validate_resource;

/// The media type of JSON Patch.
pub const JSON_PATCH: &str = "application/json-patch+json";

/// Which kind of patch a body is, as its Content-Type says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    JsonPatch,
    FhirPath,
}

/// A parsed patch.
#[derive(Debug, Clone)]
pub enum PatchDoc {
    Json(json_patch::Patch),
    FhirPath(FhirPathPatch),
}

/// Why a patch could not be applied.
#[derive(Debug, Clone)]
pub enum PatchError {
    /// The patch itself is wrong (400).
    Invalid(Issue),
    /// The patch does not fit the resource as it is: a failed `test`, a path that
    /// selects nothing (422, RFC 5789 section 2.2).
    Unprocessable(Issue),
}

impl PatchDoc {
    /// Parses a request body of `format`, a patch of a `resource_type`.
    pub fn parse(format: Format, body: &[u8], resource_type: &str) -> Result<Self, Vec<Issue>> {
        match format {
            Format::JsonPatch => parse_json_patch(body, resource_type).map(Self::Json),
            Format::FhirPath => {
                if body.trim_ascii_start().starts_with(b"[") {
                    return Err(vec![Issue::error(
                        IssueCode::Invalid,
                        "A JSON Patch (an array of operations) is sent as \
                         application/json-patch+json; application/fhir+json and \
                         application/json take a FHIRPath Patch (a Parameters resource)",
                    )
                    .at("Content-Type")]);
                }
                let params = IncomingResource::parse(body).map_err(|i| vec![i])?.value;
                Self::from_parameters(&params, resource_type)
            }
        }
    }

    fn from_parameters(params: &Value, resource_type: &str) -> Result<Self, Vec<Issue>> {
        if params.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
            return Err(vec![Issue::error(
                IssueCode::Invalid,
                "A FHIRPath Patch is a Parameters resource; send a JSON Patch array as application/json-patch+json",
            )
            .at("resourceType")]);
        }
        let issues = validate_resource("Parameters", params);
        if issues.iter().any(Issue::is_error) {
            return Err(issues);
        }
        FhirPathPatch::parse(params, resource_type).map(Self::FhirPath)
    }

    /// The patch of a PATCH entry in a transaction or batch (http.html#transaction): a
    /// Binary holding a JSON Patch (base64 `data`, `contentType` JSON Patch), or a
    /// Parameters resource holding a FHIRPath Patch.
    pub fn from_entry(resource: &Value, resource_type: &str) -> Result<Self, Vec<Issue>> {
        match resource.get("resourceType").and_then(Value::as_str) {
            Some("Parameters") => Self::from_parameters(resource, resource_type),
            Some("Binary") => {
                let issues = validate_resource("Binary", resource);
                if issues.iter().any(Issue::is_error) {
                    return Err(issues);
                }
                let content_type = resource
                    .get("contentType")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let essence = content_type.split(';').next().unwrap_or_default().trim();
                if !essence.eq_ignore_ascii_case(JSON_PATCH) {
                    return Err(vec![Issue::error(
                        IssueCode::NotSupported,
                        format!("A Binary patch must be {JSON_PATCH}"),
                    )
                    .at("Binary.contentType")]);
                }
                let data: String = resource
                    .get("data")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map_err(|e| {
                        vec![Issue::error(IssueCode::Invalid, format!("Binary.data is not base64: {e}"))
                            .at("Binary.data")]
                    })?;
                parse_json_patch(&bytes, resource_type).map(Self::Json)
            }
            other => Err(vec![Issue::error(
                IssueCode::Invalid,
                "The resource of a PATCH entry is a Binary (JSON Patch) or a Parameters (FHIRPath Patch)",
            )
            .at(format!(
                "{}.resourceType",
                other
                    .filter(|t| t.chars().all(|c| c.is_ascii_alphabetic()))
                    .unwrap_or("Resource")
            ))]),
        }
    }

    /// Applies the patch to `doc`, the current JSON of a `resource_type`; nothing of a
    /// failed patch stays applied.
    pub fn apply(&self, resource_type: &str, doc: &mut Value) -> Result<(), PatchError> {
        match self {
            Self::Json(patch) => json_patch::patch(doc, patch).map_err(|e| {
                let op = patch.get(e.operation).map_or("?", op_name);
                let at = fhirpath_of(resource_type, e.path.as_str());
                let what = format!(
                    "JSON Patch operation {} ({op} {})",
                    e.operation,
                    e.path.as_str().chars().take(100).collect::<String>()
                );
                match e.kind {
                    PatchErrorKind::TestFailed => PatchError::Unprocessable(
                        Issue::error(
                            IssueCode::Conflict,
                            format!(
                                "{what}: the test failed, the resource holds another value there"
                            ),
                        )
                        .at(at),
                    ),
                    PatchErrorKind::CannotMoveInsideItself => PatchError::Invalid(
                        Issue::error(
                            IssueCode::Invalid,
                            format!("{what}: cannot move a value into itself"),
                        )
                        .at(at),
                    ),
                    PatchErrorKind::InvalidFromPointer => PatchError::Unprocessable(
                        Issue::error(
                            IssueCode::NotFound,
                            format!("{what}: 'from' names no element of the resource"),
                        )
                        .at(at),
                    ),
                    _ => PatchError::Unprocessable(
                        Issue::error(
                            IssueCode::NotFound,
                            format!("{what}: the path names no element of the resource"),
                        )
                        .at(at),
                    ),
                }
            }),
            Self::FhirPath(patch) => {
                // Applied to a copy: a failing operation leaves the others undone.
                let mut work = doc.clone();
                patch.apply(resource_type, &mut work)?;
                *doc = work;
                Ok(())
            }
        }
    }
}

fn op_name(op: &PatchOperation) -> &'static str {
    match op {
        PatchOperation::Add(_) => "add",
        PatchOperation::Remove(_) => "remove",
        PatchOperation::Replace(_) => "replace",
        PatchOperation::Move(_) => "move",
        PatchOperation::Copy(_) => "copy",
        PatchOperation::Test(_) => "test",
    }
}

/// A JSON Patch document: an array of RFC 6902 operations. Each malformed operation is
/// one issue, at the element it names when it names one.
fn parse_json_patch(body: &[u8], resource_type: &str) -> Result<json_patch::Patch, Vec<Issue>> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        vec![Issue::error(
            IssueCode::Structure,
            format!("The JSON Patch is not valid JSON: {e}"),
        )]
    })?;
    let Value::Array(items) = value else {
        return Err(vec![Issue::error(
            IssueCode::Structure,
            "A JSON Patch is a JSON array of operations (RFC 6902); send a FHIRPath Patch (Parameters) as application/fhir+json",
        )]);
    };
    let mut ops = Vec::with_capacity(items.len());
    let mut issues = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let at = item
            .get("path")
            .and_then(Value::as_str)
            .map(|p| fhirpath_of(resource_type, p));
        match serde_json::from_value::<PatchOperation>(item) {
            Ok(op) => ops.push(op),
            Err(e) => {
                let issue = Issue::error(
                    IssueCode::Invalid,
                    format!("JSON Patch operation {i} is malformed: {e}"),
                );
                issues.push(match at {
                    Some(at) => issue.at(at),
                    None => issue,
                });
            }
        }
    }
    if issues.is_empty() {
        Ok(json_patch::Patch(ops))
    } else {
        Err(issues)
    }
}

/// The FHIRPath of the element a JSON Pointer names: `/note/0/text` -> `Task.note[0].text`
/// (`-`, the end of a list, names the list).
pub fn fhirpath_of(resource_type: &str, pointer: &str) -> String {
    let mut out = resource_type.to_owned();
    let Some(rest) = pointer.strip_prefix('/') else {
        return out;
    };
    for token in rest.split('/') {
        let token = token.replace("~1", "/").replace("~0", "~");
        if token == "-" {
            continue;
        }
        if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{token}]"));
        } else {
            out.push('.');
            out.extend(token.chars().take(64));
        }
    }
    out
}
