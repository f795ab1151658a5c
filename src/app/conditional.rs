//! Conditional update and delete (http.html#cond-update, http.html#3.1.0.7.1): which
//! resource search criteria name, decided inside the unit of work. One implementation
//! for the REST endpoints (`PUT`/`DELETE /fhir/{type}?criteria`) and for the
//! conditional entries of transaction and batch Bundles.

use crate::app::error::{AppError, ErrorKind};
use crate::app::reply::{self, status, Reply, ReturnPref};
use crate::fhir::criteria::parse_criteria;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::registry::ResourceDef;
use crate::store::{Criterion, Failure, Tx};

/// Parameters a conditional URL may carry that are not criteria.
const NOT_CRITERIA: &[&str] = &["_format", "_pretty"];

/// What a write addresses: a logical id, or the resource search criteria match.
#[derive(Debug, Clone)]
pub enum Target {
    Id(String),
    Criteria(Vec<Criterion>),
}

/// The criteria of a conditional update or delete from its query string: the search
/// engine's parameters (result parameters refused); 400 when they are wrong or empty,
/// since empty criteria would match every resource of the type.
pub fn criteria(def: &ResourceDef, query: &str) -> Result<Vec<Criterion>, AppError> {
    let criteria =
        parse_criteria(def, query, NOT_CRITERIA).map_err(|issue| AppError::invalid(vec![issue]))?;
    if criteria.is_empty() {
        return Err(AppError::invalid(vec![Issue::error(
            IssueCode::Required,
            format!(
                "A conditional update or delete needs search criteria ({}?identifier=...); \
                 to address one resource use {}/[id]",
                def.name, def.name
            ),
        )]));
    }
    Ok(criteria)
}

impl Target {
    /// The id an update writes to. For criteria (http.html#cond-update): no match
    /// creates (with the body's id if it has one, else a new id), one match is
    /// updated (a body id must be the match's: 400), several: 412. A body id that
    /// names an existing resource the criteria did not match is refused with 409, as
    /// R5 states (R4 would silently update a resource the criteria did not select).
    pub fn update_id(
        &self,
        tx: &mut Tx<'_>,
        ty: &str,
        resource: &serde_json::Value,
    ) -> Result<String, Failure<AppError>> {
        let id = self.update_target(tx, ty, resource)?;
        check_writable(tx, ty, &id)?;
        Ok(id)
    }

    fn update_target(
        &self,
        tx: &mut Tx<'_>,
        ty: &str,
        resource: &serde_json::Value,
    ) -> Result<String, Failure<AppError>> {
        let criteria = match self {
            Self::Id(id) => return Ok(id.clone()),
            Self::Criteria(c) => c,
        };
        let body_id = resource.get("id").and_then(serde_json::Value::as_str);
        // Serialised with conditional creates on the same criteria, so two concurrent
        // conditional updates that match nothing cannot both create.
        let ids = tx.conditional_ids(ty, criteria)?;
        let mut ids = ids.into_iter();
        match (ids.next(), ids.next(), body_id) {
            (None, _, None) => Ok(crate::fhir::resource::new_logical_id()),
            (None, _, Some(id)) => {
                if tx.exists(ty, id)? {
                    return Err(Failure::Abort(AppError::one(
                        ErrorKind::Conflict,
                        Issue::error(
                            IssueCode::Conflict,
                            format!(
                                "No {ty} matches the criteria, but {ty}/{id} named by the body's id \
                                 exists: leave the id out to create, or update {ty}/{id} itself"
                            ),
                        )
                        .at(format!("{ty}.id")),
                    )));
                }
                Ok(id.to_owned())
            }
            (Some(found), None, Some(id)) if id != found => {
                Err(Failure::Abort(AppError::invalid(vec![Issue::error(
                    IssueCode::Invalid,
                    format!(
                        "The criteria match {ty}/{found}, but the body's id is '{id}': \
                         leave the id out or make it the match's"
                    ),
                )
                .at(format!("{ty}.id"))])))
            }
            (Some(found), None, _) => Ok(found),
            (Some(_), Some(_), _) => Err(several(ty, "update")),
        }
    }

    /// The id a delete removes; `None` when criteria match nothing (an ordinary
    /// delete of nothing: 204, http.html#3.1.0.7.1). Several matches: 412 (this
    /// server deletes one resource at a time, `conditionalDelete = single`).
    pub fn delete_id(
        &self,
        tx: &mut Tx<'_>,
        ty: &str,
    ) -> Result<Option<String>, Failure<AppError>> {
        let id = match self {
            Self::Id(id) => id.clone(),
            Self::Criteria(criteria) => {
                let ids = tx.find_ids(ty, criteria)?;
                let mut ids = ids.into_iter();
                match (ids.next(), ids.next()) {
                    (None, _) => return Ok(None),
                    (Some(id), None) => id,
                    _ => return Err(several(ty, "delete")),
                }
            }
        };
        check_writable(tx, ty, &id)?;
        Ok(Some(id))
    }
}

/// What a principal may not read it may not change: an update or delete of an
/// existing resource outside the read scope is refused as if it did not exist (404),
/// so the refusal tells nothing about other organisations' resources.
pub fn check_writable(tx: &mut Tx<'_>, ty: &str, id: &str) -> Result<(), Failure<AppError>> {
    // `visible` costs nothing for an unnarrowed principal: ask it first.
    if !tx.visible(ty, id)? && tx.exists(ty, id)? {
        return Err(Failure::Abort(AppError::not_found(format!(
            "{ty}/{id} does not exist, or your organisation may not change it"
        ))));
    }
    Ok(())
}

fn several(ty: &str, what: &str) -> Failure<AppError> {
    Failure::Abort(AppError::precondition_failed(format!(
        "The criteria of this conditional {what} match more than one {ty}: make them selective enough to name one"
    )))
}

/// What a conditional delete that matched nothing answers.
pub(crate) fn nothing_deleted(ty: &str, pref: ReturnPref) -> Reply {
    match pref {
        ReturnPref::OperationOutcome => reply::information(
            status::OK,
            format!("No {ty} matches the criteria; nothing was deleted"),
        ),
        _ => Reply::new(status::NO_CONTENT),
    }
}
