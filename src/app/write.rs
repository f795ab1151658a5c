//! The write path shared by create, update, delete and Bundles: one unit of work that
//! checks `X-Request-Id` replays, runs the handler's writes, checks references, and
//! records the reply for replay, all in the same database transaction.

use sha2::{Digest, Sha256};

use crate::app::error::{AppError, ErrorKind};
use crate::app::principal::Principal;
use crate::app::reply::Reply;
use crate::app::App;
use crate::fhir::instant::now_micros;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::references::LocalRef;
use crate::store::{AuditRecord, Failure, RequestRecord, Tx};

/// A write that may be replayed: the client's request id and what the request was.
#[derive(Debug, Clone)]
pub struct Idempotency {
    key: String,
    fingerprint: String,
}

/// Only requests whose client chose the `X-Request-Id` take part.
pub fn idempotency(
    principal: &Principal,
    method: &str,
    uri: &str,
    body: &[u8],
) -> Option<Idempotency> {
    let key = principal.client_request_id.clone()?;
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update(b" ");
    hasher.update(uri.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    let fingerprint = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(Idempotency { key, fingerprint })
}

/// Runs `f` as one unit of work. A request id seen before with the same request gets
/// the stored reply again; with a different request, 409 `duplicate`.
pub async fn run_write<F>(
    app: &App,
    principal: &Principal,
    idempotency: Option<Idempotency>,
    f: F,
) -> Result<Reply, AppError>
where
    F: Fn(&mut Tx<'_>) -> Result<Reply, Failure<AppError>> + Send + 'static,
{
    let retention = i64::try_from(app.request_retention.as_micros()).unwrap_or(i64::MAX);
    let result = app
        .store
        .transaction(principal.access(), move |tx| {
            let now = now_micros();
            if let Some(idem) = &idempotency {
                tx.lock(&format!("request:{}", idem.key))?;
                if let Some(record) = tx.find_request(&idem.key, now.saturating_sub(retention))? {
                    if record.fingerprint != idem.fingerprint {
                        return Err(Failure::Abort(AppError::one(
                            ErrorKind::Conflict,
                            Issue::error(
                                IssueCode::Duplicate,
                                "This X-Request-Id was already used for a different request",
                            )
                            .at("X-Request-Id"),
                        )));
                    }
                    let reply = serde_json::from_str::<Reply>(&record.reply)
                        .map_err(|e| Failure::Abort(AppError::internal(&e)))?;
                    // The replay hands out the stored answer (a resource, perhaps):
                    // that is an access too.
                    let (resource_type, resource_id) = replayed_resource(&reply);
                    tx.audit(AuditRecord {
                        action: "R",
                        interaction: "replay",
                        resource_type: &resource_type,
                        resource_id: resource_id.as_deref(),
                        version_id: None,
                        outcome: "success",
                    })?;
                    return Ok(reply);
                }
            }
            let reply = f(tx)?;
            if let Some(idem) = &idempotency {
                let stored = serde_json::to_string(&reply)
                    .map_err(|e| Failure::Abort(AppError::internal(&e)))?;
                tx.save_request(
                    &idem.key,
                    &RequestRecord {
                        fingerprint: idem.fingerprint.clone(),
                        reply: stored,
                    },
                    now,
                )?;
            }
            Ok(reply)
        })
        .await;
    Ok(result?)
}

/// Referential integrity: every local reference must name a resource that exists
/// (and is not deleted), or one `pending` in the same unit of work.
pub fn check_references(
    tx: &mut Tx<'_>,
    refs: &[LocalRef],
    pending: &dyn Fn(&str, &str) -> bool,
) -> Result<(), Failure<AppError>> {
    let mut issues = Vec::new();
    for r in refs {
        if pending(&r.resource_type, &r.id) {
            continue;
        }
        if !tx.exists(&r.resource_type, &r.id)? {
            issues.push(
                Issue::error(
                    IssueCode::NotFound,
                    format!(
                        "Referenced resource {}/{} does not exist",
                        r.resource_type, r.id
                    ),
                )
                .at(r.path.clone()),
            );
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(Failure::Abort(AppError::unprocessable(issues)))
    }
}

/// The resource a stored reply is about: its `Location` (`.../Type/id/_history/n`), else
/// the body's `resourceType` and `id` (a transaction-response Bundle: `Bundle`).
fn replayed_resource(reply: &Reply) -> (String, Option<String>) {
    let location = reply
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("location"))
        .map(|(_, value)| value.as_str());
    if let Some(path) = location.and_then(|l| l.split("/_history/").next()) {
        let mut parts = path.rsplit('/');
        if let (Some(id), Some(ty)) = (parts.next(), parts.next()) {
            return (ty.to_owned(), Some(id.to_owned()));
        }
    }
    let body: Option<serde_json::Value> = reply
        .body
        .as_deref()
        .and_then(|b| serde_json::from_str(b).ok());
    let field = |name: &str| {
        body.as_ref()
            .and_then(|b| b.get(name))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    (
        field("resourceType").unwrap_or_else(|| "*".to_owned()),
        field("id"),
    )
}

/// A write as one unit of work, as [`run_write`] runs it: built (and checked as far as
/// possible without the database) before the transaction starts.
pub trait WriteUnit: Fn(&mut Tx<'_>) -> Result<Reply, Failure<AppError>> + Send + 'static {}

impl<F> WriteUnit for F where F: Fn(&mut Tx<'_>) -> Result<Reply, Failure<AppError>> + Send + 'static
{}
