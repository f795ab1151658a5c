//! The response Bundle of a transaction or batch.

use std::collections::HashMap;

use serde_json::json;

use crate::app::error::AppError;
use crate::app::reply::{self, status, Reply, ReturnPref};
use crate::fhir::bundle::{raw, Bundle, Entry};
use crate::fhir::instant::format_instant;
use crate::fhir::transaction::BundleKind;
use crate::store::StoredVersion;

/// The outcome of one entry.
pub(super) enum Done {
    Version(u16, StoredVersion),
    /// A read or vread: the resource whatever `Prefer` says (it governs writes).
    Read(StoredVersion),
    /// A search: the searchset Bundle.
    Search(String),
    Deleted,
}

pub(super) type Results = HashMap<usize, Result<Done, AppError>>;

/// The transaction-response or batch-response Bundle: per entry its status, location
/// and ETag (and the resource, as `Prefer` asks), or the OperationOutcome of its failure.
pub(super) fn response(
    kind: BundleKind,
    total: usize,
    mut results: Results,
    base: &str,
    pref: ReturnPref,
) -> Reply {
    let entries = (0..total)
        .map(|index| match results.remove(&index) {
            Some(Ok(Done::Version(status, v))) => Entry {
                full_url: format!("{base}/{}/{}", v.resource_type, v.id),
                response: Some(json!({
                    "status": status::line(status),
                    "location": reply::version_url(base, &v),
                    "etag": reply::etag(v.version_id),
                    "lastModified": format_instant(v.last_updated),
                })),
                resource: match pref {
                    ReturnPref::Representation => v.body.and_then(raw),
                    _ => None,
                },
                search: None,
                request: None,
            },
            Some(Ok(Done::Read(v))) => Entry {
                full_url: format!("{base}/{}/{}", v.resource_type, v.id),
                response: Some(json!({
                    "status": status::line(status::OK),
                    "etag": reply::etag(v.version_id),
                    "lastModified": format_instant(v.last_updated),
                })),
                resource: v.body.and_then(raw),
                search: None,
                request: None,
            },
            Some(Ok(Done::Search(bundle))) => Entry {
                full_url: String::new(),
                response: Some(json!({ "status": status::line(status::OK) })),
                resource: raw(bundle),
                search: None,
                request: None,
            },
            Some(Ok(Done::Deleted)) => Entry {
                full_url: String::new(),
                resource: None,
                search: None,
                request: None,
                response: Some(json!({ "status": status::line(status::NO_CONTENT) })),
            },
            Some(Err(err)) => Entry {
                full_url: String::new(),
                resource: None,
                search: None,
                request: None,
                response: Some(json!({
                    "status": crate::error::status_line(err.kind),
                    "outcome": crate::fhir::outcome::operation_outcome(&err.issues),
                })),
            },
            None => Entry {
                full_url: String::new(),
                resource: None,
                search: None,
                request: None,
                response: Some(json!({ "status": "500 Internal Server Error" })),
            },
        })
        .collect();
    let kind = match kind {
        BundleKind::Transaction => "transaction-response",
        BundleKind::Batch => "batch-response",
    };
    Reply::new(status::OK).fhir(Bundle::new(kind, Vec::new(), entries).to_json())
}
