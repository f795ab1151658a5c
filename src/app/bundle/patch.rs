//! PATCH entries of transaction and batch Bundles (http.html#transaction): the entry's
//! resource is a Binary holding a JSON Patch or a Parameters holding a FHIRPath Patch.
//! In the unit of work the current version is read, patched, validated and written as
//! the PUT entry it stands for (references, `urn:uuid:` aliases, the Task workflow).

use super::response::Done;
use super::{Prepared, Writing};
use crate::app::error::AppError;
use crate::app::patch::{apply_text, check_version, current};
use crate::app::resources::check_valid;
use crate::fhir::patch::PatchDoc;
use crate::fhir::registry::ResourceDef;
use crate::fhir::resource::IncomingResource;
use crate::fhir::transaction::{EntryRequest, Method};
use crate::store::{Failure, Tx};

/// The entry's patch, checked before the unit of work.
pub(super) fn prepare(def: &ResourceDef, req: &EntryRequest) -> Result<PatchDoc, AppError> {
    let text = req.resource.as_deref().unwrap_or_default();
    let resource =
        IncomingResource::parse(text.as_bytes()).map_err(|issue| AppError::invalid(vec![issue]))?;
    PatchDoc::from_entry(&resource.value, def.name).map_err(AppError::invalid)
}

/// Patches `ty/id` and writes it like a PUT entry of the patched resource.
pub(super) fn write(
    tx: &mut Tx<'_>,
    e: &Prepared,
    id: &str,
    w: &Writing<'_>,
) -> Result<Done, Failure<AppError>> {
    let ty = e.def.name;
    let Some(doc) = &e.patch else {
        return Err(Failure::Abort(AppError::internal(
            &"PATCH entry without a patch",
        )));
    };
    let current = current(ty, id, tx.read(ty, id, None)?).map_err(Failure::Abort)?;
    if let Some(expected) = e.if_match {
        check_version(ty, id, expected, current.version_id)
            .map_err(|err| Failure::Abort(at_if_match(err)))?;
    }
    let text = apply_text(ty, id, &current, doc).map_err(Failure::Abort)?;
    let patched = IncomingResource::parse(text.as_bytes())
        .map_err(|issue| Failure::Abort(AppError::invalid(vec![issue])))?;
    check_valid(ty, &patched.value).map_err(Failure::Abort)?;
    // The update is as of the patched version (a Task still needs ifMatch, as for PUT).
    let as_put = Prepared {
        req: EntryRequest {
            method: Method::Put,
            resource: Some(text),
            ..e.req.clone()
        },
        if_match: e.if_match.or((ty != "Task").then_some(current.version_id)),
        patch: None,
        ..e.clone()
    };
    super::write(tx, &as_put, id, false, w)
}

/// In a Bundle the version is `request.ifMatch`.
fn at_if_match(mut err: AppError) -> AppError {
    for issue in &mut err.issues {
        issue.expression = Some("ifMatch".into());
        issue.diagnostics = issue.diagnostics.replace("If-Match", "ifMatch");
    }
    err
}
