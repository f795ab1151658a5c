//! Which resource each write entry of a Bundle addresses: the id a POST or PUT writes
//! to (conditional creates and updates decided inside the unit of work), and deletes.

use super::response::Done;
use super::Prepared;
use crate::app::conditional;
use crate::app::error::AppError;
use crate::app::reply::{self, status};
use crate::fhir::outcome::IssueCode;
use crate::fhir::transaction::{Method, Target};
use crate::store::{CreateOutcome, DeleteOutcome, Failure, Tx};

pub(super) fn delete(tx: &mut Tx<'_>, e: &Prepared) -> Result<Done, Failure<AppError>> {
    let ty = e.def.name;
    let target = match (&e.req.target, &e.criteria) {
        (Target::Instance { id, .. }, _) => conditional::Target::Id(id.clone()),
        (_, Some(criteria)) => conditional::Target::Criteria(criteria.clone()),
        _ => {
            return Err(Failure::Abort(AppError::bad_request(
                IssueCode::Invalid,
                "No target",
            )))
        }
    };
    let Some(id) = target.delete_id(tx, ty)? else {
        return Ok(Done::Deleted);
    };
    match tx.delete(ty, &id, e.if_match)? {
        DeleteOutcome::Deleted { .. } | DeleteOutcome::AlreadyDeleted => Ok(Done::Deleted),
        DeleteOutcome::NotFound => Err(Failure::Abort(AppError::not_found(format!(
            "{ty}/{id} does not exist"
        )))),
        DeleteOutcome::VersionMismatch { current } => {
            Err(Failure::Abort(AppError::precondition_failed(format!(
                "ifMatch does not match the current version of {ty}/{id}, which is {}",
                reply::etag(current)
            ))))
        }
    }
}

/// The id a POST or PUT entry writes to, and whether it creates; or, for a
/// conditional create that matched, the finished result.
pub(super) type Decided = ((String, bool), Option<Done>);

pub(super) fn decide_target(tx: &mut Tx<'_>, e: &Prepared) -> Result<Decided, Failure<AppError>> {
    let ty = e.def.name;
    match (&e.req.method, &e.req.target) {
        (Method::Post, _) => {
            if let Some(criteria) = &e.criteria {
                match tx.conditional(ty, criteria)? {
                    Some(CreateOutcome::Matched(v)) => {
                        return Ok(((v.id.clone(), false), Some(Done::Version(status::OK, v))))
                    }
                    Some(_) => {
                        return Err(Failure::Abort(AppError::precondition_failed(
                            "ifNoneExist matches more than one resource",
                        )))
                    }
                    None => {}
                }
            }
            Ok(((crate::fhir::resource::new_logical_id(), true), None))
        }
        (Method::Put, Target::Instance { id, .. }) => {
            conditional::check_writable(tx, ty, id)?;
            Ok(((id.clone(), false), None))
        }
        (Method::Put, Target::Conditional { .. }) => {
            // The body's id takes part in the decision (http.html#cond-update).
            let criteria = e.criteria.clone().unwrap_or_default();
            let body: serde_json::Value = e
                .req
                .resource
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or_default();
            let id = conditional::Target::Criteria(criteria).update_id(tx, ty, &body)?;
            // Not `created`: written as an update, which creates what does not exist.
            Ok(((id, false), None))
        }
        _ => Err(Failure::Abort(AppError::bad_request(
            IssueCode::NotSupported,
            "Unsupported entry",
        ))),
    }
}
