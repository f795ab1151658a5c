//! Patch (R4 http.html#patch): the current version of the resource, patched, is the
//! update it stands for. The patched document goes through the update use case
//! (`resources::update`) like a PUT: validation, references, the Task workflow,
//! `If-Match`, `X-Request-Id` replay, `Prefer`, audit.
//!
//! The update is told the version that was patched (the client's `If-Match`, else the
//! version read), so a change that lands between the read and the write makes the
//! update fail instead of being overwritten: 412 when the client named the version;
//! without `If-Match` the patch is read and applied again to the newer version, and
//! after a few rounds the answer is 409 (retry). Tasks always need `If-Match`, as for PUT.

use serde_json::Value;

use crate::app::conditional::Target;
use crate::app::error::{AppError, ErrorKind};
use crate::app::principal::Principal;
use crate::app::reply::{self, Reply};
use crate::app::resources::{self, WriteRequest};
use crate::app::write::run_write;
use crate::app::App;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::patch::{Format, PatchDoc, PatchError};
use crate::fhir::registry::ResourceDef;
use crate::fhir::resource::{IncomingResource, RawMembers};
use crate::store::{Failure, Lookup, StoredVersion};

/// Rounds of read-patch-update when the resource changes meanwhile and the client
/// gave no `If-Match`.
const ATTEMPTS: usize = 3;

/// `PATCH /fhir/{type}/{id}` with a `format` body.
#[allow(clippy::too_many_arguments)]
pub async fn patch(
    app: &App,
    principal: &Principal,
    def: &'static ResourceDef,
    id: String,
    format: Format,
    body: &[u8],
    if_match: Option<i64>,
    req: WriteRequest,
) -> Result<Reply, AppError> {
    crate::app::access::require(principal, def.name, crate::app::access::Need::Update)?;
    let doc = PatchDoc::parse(format, body, def.name).map_err(AppError::invalid)?;
    let retried = if_match.is_none() && def.name != "Task";
    let mut attempts = if retried { ATTEMPTS } else { 1 };
    let result = loop {
        attempts -= 1;
        let result = attempt(app, principal, def, &id, &doc, if_match, req.clone()).await;
        match result {
            Err(e) if e.kind == ErrorKind::PreconditionFailed && retried => {
                if attempts > 0 {
                    continue;
                }
                // The client named no version: a conflict to retry, not its stale If-Match.
                break Err(AppError::one(
                    ErrorKind::Conflict,
                    Issue::error(
                        IssueCode::Conflict,
                        format!(
                            "{}/{id} kept changing while the patch was applied; retry",
                            def.name
                        ),
                    ),
                ));
            }
            other => break other,
        }
    };
    match (result, req.idempotency) {
        // A retry of a patch that succeeded meets the patched resource (a newer version,
        // a `test` that no longer holds): the stored reply answers it, as for any write.
        (Err(err), Some(idem)) if err.kind != ErrorKind::Unavailable => {
            run_write(app, principal, Some(idem), move |_| {
                Err(Failure::Abort(err.clone()))
            })
            .await
        }
        (result, _) => result,
    }
}

/// One round: read the current version, patch it, update it as of that version.
async fn attempt(
    app: &App,
    principal: &Principal,
    def: &'static ResourceDef,
    id: &str,
    doc: &PatchDoc,
    if_match: Option<i64>,
    req: WriteRequest,
) -> Result<Reply, AppError> {
    let (ty, rid) = (def.name, id.to_owned());
    let lookup = app
        .store
        .read(principal.access(), move |r| r.read(ty, &rid, None))
        .await?;
    let current = current(ty, id, lookup)?;
    if let Some(expected) = if_match {
        check_version(ty, id, expected, current.version_id)?;
    }
    let patched = apply(ty, id, &current, doc)?;
    // Tasks without If-Match are refused by the update as for PUT.
    let expected = if_match.or((ty != "Task").then_some(current.version_id));
    let target = Target::Id(id.to_owned());
    resources::update(app, principal, def, target, patched, expected, req).await
}

/// The live version a patch applies to: 404 for an unknown resource, 410 for a deleted one.
pub(crate) fn current(ty: &str, id: &str, lookup: Lookup) -> Result<StoredVersion, AppError> {
    match lookup {
        Lookup::Found(v) => Ok(v),
        Lookup::Deleted(v) => Err(AppError::gone(format!(
            "{ty}/{id} was deleted (version {}); a deleted resource cannot be patched",
            v.version_id
        ))),
        Lookup::NotFound => Err(AppError::not_found(format!("{ty}/{id} does not exist"))),
    }
}

/// 412 unless the client's `If-Match` names the version being patched.
pub(crate) fn check_version(
    ty: &str,
    id: &str,
    expected: i64,
    current: i64,
) -> Result<(), AppError> {
    if expected == current {
        return Ok(());
    }
    Err(AppError::one(
        ErrorKind::PreconditionFailed,
        Issue::error(
            IssueCode::Conflict,
            format!(
                "If-Match does not match the current version of {ty}/{id}, which is {}: read it again",
                reply::etag(current)
            ),
        )
        .at("If-Match"),
    ))
}

/// `current` with `doc` applied, as the body of an update.
pub(crate) fn apply(
    ty: &str,
    id: &str,
    current: &StoredVersion,
    doc: &PatchDoc,
) -> Result<IncomingResource, AppError> {
    let text = apply_text(ty, id, current, doc)?;
    IncomingResource::parse(text.as_bytes()).map_err(|issue| AppError::invalid(vec![issue]))
}

/// `current` with `doc` applied, as JSON text. Members the patch left alone keep their
/// stored bytes (decimals such as `1.50`, element order).
pub(crate) fn apply_text(
    ty: &str,
    id: &str,
    current: &StoredVersion,
    doc: &PatchDoc,
) -> Result<String, AppError> {
    let stored = current.body.as_deref().unwrap_or_default();
    let before: Value = serde_json::from_str(stored).map_err(|e| AppError::internal(&e))?;
    let mut after = before.clone();
    doc.apply(ty, &mut after).map_err(|e| match e {
        PatchError::Invalid(issue) => AppError::invalid(vec![issue]),
        PatchError::Unprocessable(issue) => AppError::unprocessable(vec![issue]),
    })?;
    for element in ["resourceType", "id"] {
        if after.get(element) != before.get(element) {
            return Err(AppError::unprocessable(vec![Issue::error(
                IssueCode::Invalid,
                format!("A patch may not change or remove the {element} of {ty}/{id}"),
            )
            .at(if element == "id" {
                format!("{ty}.id")
            } else {
                element.to_owned()
            })]));
        }
    }
    render(stored, &before, &after)
}

/// The patched resource as JSON text: unchanged members as stored, changed ones
/// serialised, added ones at the end.
fn render(stored: &str, before: &Value, after: &Value) -> Result<String, AppError> {
    let (Some(before), Some(after)) = (before.as_object(), after.as_object()) else {
        return Err(AppError::bad_request(
            IssueCode::Structure,
            "The patched resource must be a JSON object",
        ));
    };
    let members = serde_json::from_str::<RawMembers>(stored)
        .map_err(|e| AppError::internal(&e))?
        .0;
    let mut out = Vec::with_capacity(after.len());
    for (key, raw) in &members {
        match after.get(key) {
            Some(v) if before.get(key) == Some(v) => out.push((key.clone(), raw.get().to_owned())),
            Some(v) => out.push((key.clone(), v.to_string())),
            None => {}
        }
    }
    for (key, v) in after {
        if !members.iter().any(|(k, _)| k == key) {
            out.push((key.clone(), v.to_string()));
        }
    }
    let body: Vec<String> = out
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
        .collect();
    Ok(format!("{{{}}}", body.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untouched_members_keep_their_bytes() {
        let stored = r#"{"resourceType":"Observation","id":"o","valueQuantity":{"value":1.50},"status":"final"}"#;
        let before: Value = serde_json::from_str(stored).unwrap();
        let mut after = before.clone();
        after["status"] = "amended".into();
        after["note"] = serde_json::json!([{"text": "x"}]);
        assert_eq!(
            render(stored, &before, &after).unwrap(),
            r#"{"resourceType":"Observation","id":"o","valueQuantity":{"value":1.50},"status":"amended","note":[{"text":"x"}]}"#
        );
    }
}
