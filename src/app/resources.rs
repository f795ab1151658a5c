//! Create, read, update and delete of one resource (http.html): the rules each write
//! checks (validation, references, conditional create, routing on intake, the Task
//! workflow) in one unit of work.

use crate::app::access::{require, Need};
use crate::app::conditional::{nothing_deleted, Target};
use crate::app::error::{AppError, ErrorKind};
use crate::app::principal::Principal;
use crate::app::reply::{self, status, Reply, ReturnPref};
use crate::app::routing::route_created;
use crate::app::workflow::{check_task_create, check_task_delete, update_task, Workflow};
use crate::app::write::{check_references, run_write, Idempotency, WriteUnit};
use crate::app::App;
use crate::fhir::identifiers::check_identifiers;
use crate::fhir::index::index_rows;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::references::local_references;
use crate::fhir::registry::ResourceDef;
use crate::fhir::resource::IncomingResource;
use crate::fhir::validate::validate_resource;
use crate::referral::access::WITHHELD_REASON;
use crate::referral::directory::read_service;
use crate::store::{CreateOutcome, Criterion, DeleteOutcome, Failure, Lookup, Tx, UpdateOutcome};

/// Where a write came from and how to answer it.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    /// The FHIR base URL the client sees (references under it are local).
    pub base: String,
    pub pref: ReturnPref,
    pub idempotency: Option<Idempotency>,
}

/// Structure and R4 rules (400), then the business rules (422).
pub(crate) fn check_valid(
    resource_type: &str,
    resource: &serde_json::Value,
) -> Result<(), AppError> {
    let issues = validate_resource(resource_type, resource);
    if issues.iter().any(Issue::is_error) {
        return Err(AppError::invalid(issues));
    }
    let issues = business_rules(resource_type, resource);
    if issues.iter().any(Issue::is_error) {
        return Err(AppError::unprocessable(issues));
    }
    Ok(())
}

/// The rules beyond R4 for a structurally valid resource: Dutch identifiers, the
/// Task business status, the directory profile, Positive Health answers. Writes and
/// `$validate` both use them.
pub(crate) fn business_rules(resource_type: &str, resource: &serde_json::Value) -> Vec<Issue> {
    let mut issues = check_identifiers(resource_type, resource);
    match resource_type {
        "Task" => {
            if let Err(e) = crate::referral::business_status::read(resource) {
                let (at, diagnostics) = e.describe();
                issues.push(Issue::error(IssueCode::CodeInvalid, diagnostics).at(at));
            }
        }
        "HealthcareService" => issues.extend(read_service("", resource).1),
        "QuestionnaireResponse" => {
            issues.extend(crate::referral::positive_health::check(resource));
        }
        "Subscription" => issues.extend(crate::app::subscriptions::check(resource)),
        "Endpoint" => {
            if let Err(found) = crate::notify::read_message_endpoint(resource) {
                issues.extend(found);
            }
        }
        _ => {}
    }
    issues
}

/// Create, or conditional create with `If-None-Exist` criteria; a Task only under the
/// creation rules of the workflow.
pub async fn create(
    app: &App,
    principal: &Principal,
    def: &'static ResourceDef,
    incoming: IncomingResource,
    if_none_exist: Option<Vec<Criterion>>,
    req: WriteRequest,
) -> Result<Reply, AppError> {
    require(principal, def.name, Need::Create)?;
    let workflow = Workflow::new(app, principal);
    let unit = create_unit(def, incoming, if_none_exist, req.base, req.pref, workflow)?;
    run_write(app, principal, req.idempotency, unit).await
}

/// A create as a unit of work, checked as far as it can be without the database:
/// `create` commits it, `$validate` runs it and rolls it back.
pub(crate) fn create_unit(
    def: &'static ResourceDef,
    incoming: IncomingResource,
    if_none_exist: Option<Vec<Criterion>>,
    base: String,
    pref: ReturnPref,
    workflow: Workflow,
) -> Result<impl WriteUnit, AppError> {
    check_valid(def.name, &incoming.value)?;
    let (incoming, secret) = crate::app::subscriptions::take_secret(def.name, incoming)?;
    let id = crate::fhir::resource::new_logical_id();
    let rows = index_rows(def, &incoming.value);
    let refs = local_references(def.name, &incoming.value, &base);
    Ok(move |tx: &mut Tx<'_>| {
        if let Some(criteria) = &if_none_exist {
            match tx.conditional(def.name, criteria)? {
                Some(CreateOutcome::Matched(v)) => {
                    return Ok(reply::resource(status::OK, &v, &base, pref, true))
                }
                Some(_) => {
                    return Err(Failure::Abort(AppError::precondition_failed(
                        "If-None-Exist matches more than one resource",
                    )))
                }
                None => {}
            }
        }
        if def.name == "Task" {
            check_task_create(tx, &workflow, &incoming, &base)?;
        }
        check_references(tx, &refs, &|_, _| false)?;
        let v = tx.create(def.name, &id, &|v, at| incoming.render(&id, v, at), &rows)?;
        if let Some(secret) = &secret {
            tx.set_subscription_secret(&id, secret)?;
        }
        if def.name == "ServiceRequest" {
            route_created(tx, &id, &incoming.value, &base)?;
        }
        Ok(reply::resource(status::CREATED, &v, &base, pref, true))
    })
}

/// Read (`version_id = None`) or vread.
pub async fn read(
    app: &App,
    principal: &Principal,
    def: &'static ResourceDef,
    id: String,
    version_id: Option<i64>,
    base: &str,
) -> Result<Reply, AppError> {
    require(principal, def.name, Need::Read)?;
    let ty = def.name;
    let rid = id.clone();
    let org = principal.organization.clone();
    let (lookup, withheld) = app
        .store
        .read(principal.access(), move |r| {
            let lookup = r.read(ty, &rid, version_id)?;
            let withheld = match (&lookup, &org) {
                // Not readable now, yet the organisation works on it: withheld (no
                // Consent permits, or its provision period is over or to come).
                (Lookup::NotFound, Some(org)) => !r.relations(ty, &rid, org)?.is_empty(),
                _ => false,
            };
            Ok((lookup, withheld))
        })
        .await?;
    if withheld {
        return Err(AppError::one(
            ErrorKind::Forbidden,
            Issue::error(
                IssueCode::Forbidden,
                format!("{ty}/{id} is withheld: {WITHHELD_REASON}"),
            ),
        ));
    }
    match lookup {
        Lookup::Found(v) => Ok(reply::resource(
            status::OK,
            &v,
            base,
            ReturnPref::Representation,
            false,
        )),
        Lookup::Deleted(v) => Err(AppError::gone(format!(
            "{ty}/{id} was deleted (version {})",
            v.version_id
        ))),
        Lookup::NotFound => Err(AppError::not_found(format!("{ty}/{id} does not exist"))),
    }
}

/// Update, or create with a client-chosen id; Tasks follow the workflow. A conditional
/// update (`PUT /fhir/{type}?criteria`, `Target::Criteria`) updates the one resource the
/// criteria name, or creates it.
pub async fn update(
    app: &App,
    principal: &Principal,
    def: &'static ResourceDef,
    target: Target,
    incoming: IncomingResource,
    if_match: Option<i64>,
    req: WriteRequest,
) -> Result<Reply, AppError> {
    require(principal, def.name, Need::Update)?;
    let workflow = Workflow::new(app, principal);
    let unit = update_unit(
        def, target, incoming, if_match, req.base, req.pref, workflow,
    )?;
    run_write(app, principal, req.idempotency, unit).await
}

/// An update (of `Type/id`, or of what conditional criteria match) as a unit of work:
/// `update` and conditional update commit it, `$validate` rolls it back.
pub(crate) fn update_unit(
    def: &'static ResourceDef,
    target: Target,
    incoming: IncomingResource,
    if_match: Option<i64>,
    base: String,
    pref: ReturnPref,
    workflow: Workflow,
) -> Result<impl WriteUnit, AppError> {
    check_valid(def.name, &incoming.value)?;
    if let Target::Id(id) = &target {
        check_body_id(def.name, id, &incoming.value)?;
    }
    let (incoming, secret) = crate::app::subscriptions::take_secret(def.name, incoming)?;
    let rows = index_rows(def, &incoming.value);
    let refs = local_references(def.name, &incoming.value, &base);
    Ok(move |tx: &mut Tx<'_>| {
        let id = target.update_id(tx, def.name, &incoming.value)?;
        let pending = |t: &str, i: &str| t == def.name && i == id;
        if def.name == "Task" {
            let checks = |tx: &mut Tx<'_>| check_references(tx, &refs, &pending);
            let updated = update_task(tx, &workflow, &id, &incoming, if_match, &base, checks)?;
            if let Some(v) = updated {
                return Ok(reply::resource(status::OK, &v, &base, pref, false));
            }
        }
        check_references(tx, &refs, &pending)?;
        let render = |v, at| incoming.render(&id, v, at);
        let outcome = tx.update(def.name, &id, &render, &rows, if_match, true)?;
        if let (Some(secret), UpdateOutcome::Updated(_) | UpdateOutcome::Created(_)) =
            (&secret, &outcome)
        {
            tx.set_subscription_secret(&id, secret)?;
        }
        match outcome {
            UpdateOutcome::Updated(v) => Ok(reply::resource(status::OK, &v, &base, pref, false)),
            UpdateOutcome::Created(v) => {
                if def.name == "ServiceRequest" {
                    route_created(tx, &id, &incoming.value, &base)?;
                }
                Ok(reply::resource(status::CREATED, &v, &base, pref, true))
            }
            UpdateOutcome::NotFound => Err(Failure::Abort(AppError::precondition_failed(format!(
                "If-Match was given but {}/{id} does not exist",
                def.name
            )))),
            UpdateOutcome::VersionMismatch { current } => {
                Err(Failure::Abort(stale(def.name, &id, current)))
            }
        }
    })
}

/// An update carries the id of the URL in its body (http.html#update).
pub(crate) fn check_body_id(
    ty: &str,
    id: &str,
    resource: &serde_json::Value,
) -> Result<(), AppError> {
    match resource.get("id").and_then(|v| v.as_str()) {
        Some(body_id) if body_id == id => Ok(()),
        Some(_) => Err(AppError::invalid(vec![Issue::error(
            IssueCode::Invalid,
            format!("The id in the body differs from the id in the URL ('{id}')"),
        )
        .at(format!("{ty}.id"))])),
        None => Err(AppError::invalid(vec![Issue::error(
            IssueCode::Required,
            "An update must carry the resource id in the body",
        )
        .at(format!("{ty}.id"))])),
    }
}

fn stale(ty: &str, id: &str, current: i64) -> AppError {
    AppError::precondition_failed(format!(
        "If-Match does not match the current version of {ty}/{id}, which is {}",
        reply::etag(current)
    ))
}

/// Soft delete: later reads answer 410 Gone. Only a coordinator deletes a Task. A
/// conditional delete (`Target::Criteria`) deletes the one resource the criteria name;
/// none: 204.
pub async fn delete(
    app: &App,
    principal: &Principal,
    def: &'static ResourceDef,
    target: Target,
    if_match: Option<i64>,
    pref: ReturnPref,
    idempotency: Option<Idempotency>,
) -> Result<Reply, AppError> {
    require(principal, def.name, Need::Delete)?;
    let unit = delete_unit(principal, def, target, if_match, pref)?;
    run_write(app, principal, idempotency, unit).await
}

/// A delete (of `Type/id`, or of what conditional criteria match) as a unit of work:
/// `delete` and conditional delete commit it, `$validate` rolls it back.
pub(crate) fn delete_unit(
    principal: &Principal,
    def: &'static ResourceDef,
    target: Target,
    if_match: Option<i64>,
    pref: ReturnPref,
) -> Result<impl WriteUnit, AppError> {
    if def.name == "Task" {
        check_task_delete(principal.party().as_ref())?;
    }
    Ok(move |tx: &mut Tx<'_>| {
        let Some(id) = target.delete_id(tx, def.name)? else {
            return Ok(nothing_deleted(def.name, pref));
        };
        let message = match tx.delete(def.name, &id, if_match)? {
            DeleteOutcome::Deleted { version_id } => {
                format!("Deleted {}/{id} (version {version_id})", def.name)
            }
            DeleteOutcome::AlreadyDeleted => format!("{}/{id} was already deleted", def.name),
            DeleteOutcome::NotFound => {
                return Err(Failure::Abort(AppError::not_found(format!(
                    "{}/{id} does not exist",
                    def.name
                ))))
            }
            DeleteOutcome::VersionMismatch { current } => {
                return Err(Failure::Abort(stale(def.name, &id, current)))
            }
        };
        Ok(match pref {
            ReturnPref::OperationOutcome => reply::information(status::OK, message),
            _ => Reply::new(status::NO_CONTENT),
        })
    })
}

/// The registered resource type named in a URL, or 404.
pub fn resource_def(name: &str) -> Result<&'static ResourceDef, AppError> {
    crate::fhir::registry::resource(name).ok_or_else(|| {
        AppError::one(
            ErrorKind::NotFound,
            Issue::error(
                IssueCode::NotSupported,
                format!(
                    "Resource type '{}' is not supported by this server",
                    name.chars().take(64).collect::<String>()
                ),
            ),
        )
    })
}

/// A logical id from a URL, or 400.
pub fn logical_id(id: &str) -> Result<(), AppError> {
    if crate::fhir::validate::is_valid_id(id) {
        Ok(())
    } else {
        Err(AppError::bad_request(
            IssueCode::Invalid,
            "Invalid resource id: 1-64 characters of A-Z, a-z, 0-9, '-' and '.'",
        ))
    }
}

/// A version ETag, `W/"3"` or `"3"`, as a version number.
pub fn parse_etag(raw: &str) -> Option<i64> {
    let v = raw.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    v.strip_prefix('"')?
        .strip_suffix('"')?
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
}
