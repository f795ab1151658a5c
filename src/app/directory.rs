//! Loading the welfare directory from a FHIR transaction Bundle of Organizations and
//! HealthcareServices: `wor-hub directory import FILE`, and the initial directory an
//! empty database gets on first start. The Bundle runs through the same transaction
//! engine as `POST /fhir`: validated, all or nothing.

use serde_json::Value;

use crate::app::bundle::Plan;
use crate::app::error::AppError;
use crate::app::principal::Principal;
use crate::app::reply::ReturnPref;
use crate::app::App;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::resource::IncomingResource;

/// The example directory shipped in `deploy/`, built into the binary so the default
/// start works from any working directory.
pub const SAMPLE_DIRECTORY: &str = include_str!("../../deploy/directory.sample.json");

/// What a directory file may contain.
const DIRECTORY_TYPES: &[&str] = &["Organization", "HealthcareService", "Location"];

/// Entries by their response status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    /// `PUT` entries equal to the stored resource: left alone, no new version.
    pub unchanged: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportOutcome {
    Imported(ImportCounts),
    /// `only_into_empty` was asked and the database already holds resources.
    NotEmpty,
}

/// Imports the directory Bundle `bytes`. With `only_into_empty`, nothing happens when
/// the database holds any resource (concurrent first starts of several instances
/// import it once: the check runs under a lock in the same transaction).
pub async fn import_directory(
    app: &App,
    principal: &Principal,
    bytes: &[u8],
    base: &str,
    only_into_empty: bool,
) -> Result<ImportOutcome, AppError> {
    let bundle = IncomingResource::parse(bytes).map_err(|i| AppError::invalid(vec![i]))?;
    let value = &bundle.value;
    if value.get("resourceType").and_then(Value::as_str) != Some("Bundle")
        || value.get("type").and_then(Value::as_str) != Some("transaction")
    {
        return Err(AppError::invalid(vec![Issue::error(
            IssueCode::Invalid,
            "A directory file is a FHIR Bundle of type transaction",
        )
        .at("Bundle.type")]));
    }
    // An operator's own file: no entry limit.
    let plan = Plan::new(value, bytes, usize::MAX)?;
    let wrong: Vec<Issue> = plan
        .entry_types()
        .filter(|(_, ty)| !DIRECTORY_TYPES.contains(ty))
        .map(|(i, ty)| {
            Issue::error(
                IssueCode::BusinessRule,
                format!(
                    "A directory holds {} only, not {ty}",
                    DIRECTORY_TYPES.join(", ")
                ),
            )
            .at(format!("Bundle.entry[{i}]"))
        })
        .collect();
    if !wrong.is_empty() {
        return Err(AppError::invalid(wrong));
    }
    let base = base.to_owned();
    let result = app
        .store
        .transaction(principal.access(), move |tx| {
            if only_into_empty {
                tx.lock("initial-directory")?;
                if tx.has_resources()? {
                    return Ok(None);
                }
            }
            let plan = plan.without_unchanged(tx)?;
            let reply = plan.run(tx, &base, ReturnPref::Minimal, None)?;
            Ok(Some((reply, plan.unchanged())))
        })
        .await;
    let (reply, unchanged) = match result {
        Ok(Some(done)) => done,
        Ok(None) => return Ok(ImportOutcome::NotEmpty),
        Err(e) => return Err(e.into()),
    };
    let body: Value = reply
        .body
        .as_deref()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or_default();
    let mut counts = ImportCounts {
        unchanged,
        ..ImportCounts::default()
    };
    for status in body
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.pointer("/response/status").and_then(Value::as_str))
    {
        match status.get(..3) {
            Some("201") => counts.created += 1,
            Some("200") => counts.updated += 1,
            Some("204") => counts.deleted += 1,
            _ => {}
        }
    }
    // The unchanged entries are answered 200 as well.
    counts.updated = counts.updated.saturating_sub(counts.unchanged);
    Ok(ImportOutcome::Imported(counts))
}
