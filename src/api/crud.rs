//! FHIR RESTful interactions create, read, vread, update and delete (http.html).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::api::extract::{FhirBody, IfMatch, RequestCtx, ReturnPref};
use crate::api::respond::Reply;
use crate::api::routing::route_created;
use crate::api::workflow::{check_task_delete, update_task, Workflow};
use crate::api::write::{check_references, idempotency, run_write};
use crate::api::{logical_id, resource_def, respond};
use crate::error::ApiError;
use crate::fhir::criteria::parse_criteria;
use crate::fhir::identifiers::check_identifiers;
use crate::fhir::index::index_rows;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::references::local_references;
use crate::fhir::validate::validate_resource;
use crate::referral::directory::read_service;
use crate::startup::AppState;
use crate::store::{CreateOutcome, DeleteOutcome, Failure, Lookup, Tx, UpdateOutcome};

/// Structure and R4 rules (400), then the business rules (422).
pub(crate) fn check_valid(
    resource_type: &str,
    resource: &serde_json::Value,
) -> Result<(), ApiError> {
    let issues = validate_resource(resource_type, resource);
    if issues.iter().any(Issue::is_error) {
        return Err(ApiError::invalid(issues));
    }
    let issues = business_rules(resource_type, resource);
    if issues.iter().any(Issue::is_error) {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, issues));
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
        _ => {}
    }
    issues
}

/// POST /fhir/{type}: create, or conditional create with `If-None-Exist`.
pub async fn create(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    ctx: RequestCtx,
    pref: ReturnPref,
    body: FhirBody,
) -> Result<HttpResponse, ApiError> {
    let def = resource_def(&path)?;
    check_valid(def.name, &body.resource.value)?;
    let if_none_exist = match req.headers().get("if-none-exist") {
        None => None,
        Some(raw) => {
            let query = raw.to_str().map_err(|_| {
                ApiError::bad_request(IssueCode::Invalid, "If-None-Exist is not valid ASCII")
            })?;
            // Clients send either `identifier=...` or `Patient?identifier=...`.
            let query = query.split_once('?').map_or(query, |(_, q)| q);
            let criteria = parse_criteria(def, query, &[])
                .map_err(|issue| ApiError::invalid(vec![issue.at("If-None-Exist")]))?;
            if criteria.is_empty() {
                return Err(ApiError::invalid(vec![Issue::error(
                    IssueCode::Required,
                    "If-None-Exist names no search criteria",
                )
                .at("If-None-Exist")]));
            }
            Some(criteria)
        }
    };
    let idem = idempotency(&ctx, "POST", &req.uri().to_string(), &body.raw);
    let id = uuid::Uuid::new_v4().to_string();
    let rows = index_rows(def, &body.resource.value);
    let refs = local_references(def.name, &body.resource.value, &ctx.base_url);
    let base = ctx.base_url.clone();
    let incoming = body.resource;
    run_write(&state, &ctx, idem, move |tx| {
        if let Some(criteria) = &if_none_exist {
            match tx.conditional(def.name, criteria)? {
                Some(CreateOutcome::Matched(v)) => {
                    return Ok(respond::resource(StatusCode::OK, &v, &base, pref, true))
                }
                Some(_) => {
                    return Err(Failure::Abort(ApiError::precondition_failed(
                        "If-None-Exist matches more than one resource",
                    )))
                }
                None => {}
            }
        }
        check_references(tx, &refs, &|_, _| false)?;
        let v = tx.create(def.name, &id, &|v, at| incoming.render(&id, v, at), &rows)?;
        if def.name == "ServiceRequest" {
            route_created(tx, &id, &incoming.value, &base)?;
        }
        Ok(respond::resource(
            StatusCode::CREATED,
            &v,
            &base,
            pref,
            true,
        ))
    })
    .await
}

/// GET /fhir/{type}/{id}
pub async fn read(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    ctx: RequestCtx,
) -> Result<HttpResponse, ApiError> {
    let (ty, id) = path.into_inner();
    let def = resource_def(&ty)?;
    logical_id(&id)?;
    let lookup = state
        .store
        .read(ctx.audit(), def.name.to_owned(), id.clone(), None)
        .await?;
    answer_lookup(lookup, def.name, &id, &ctx)
}

/// GET /fhir/{type}/{id}/_history/{vid}
pub async fn vread(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    ctx: RequestCtx,
) -> Result<HttpResponse, ApiError> {
    let (ty, id, vid) = path.into_inner();
    let def = resource_def(&ty)?;
    logical_id(&id)?;
    let Some(version_id) = vid.parse::<i64>().ok().filter(|v| *v > 0) else {
        return Err(ApiError::not_found(format!(
            "No version '{}' of {}/{id}: versions are positive integers",
            vid.chars().take(32).collect::<String>(),
            def.name
        )));
    };
    let lookup = state
        .store
        .read(
            ctx.audit(),
            def.name.to_owned(),
            id.clone(),
            Some(version_id),
        )
        .await?;
    answer_lookup(lookup, def.name, &id, &ctx)
}

fn answer_lookup(
    lookup: Lookup,
    ty: &str,
    id: &str,
    ctx: &RequestCtx,
) -> Result<HttpResponse, ApiError> {
    match lookup {
        Lookup::Found(v) => Ok(respond::resource(
            StatusCode::OK,
            &v,
            &ctx.base_url,
            ReturnPref::Representation,
            false,
        )
        .into()),
        Lookup::Deleted(v) => Err(ApiError::gone(format!(
            "{ty}/{id} was deleted (version {})",
            v.version_id
        ))),
        Lookup::NotFound => Err(ApiError::not_found(format!("{ty}/{id} does not exist"))),
    }
}

/// PUT /fhir/{type}/{id}: update, or create with a client-chosen id.
#[allow(clippy::too_many_arguments)]
pub async fn update(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    ctx: RequestCtx,
    pref: ReturnPref,
    if_match: IfMatch,
    body: FhirBody,
) -> Result<HttpResponse, ApiError> {
    let (ty, id) = path.into_inner();
    let def = resource_def(&ty)?;
    logical_id(&id)?;
    check_valid(def.name, &body.resource.value)?;
    check_body_id(def.name, &id, &body.resource.value)?;
    let idem = idempotency(&ctx, "PUT", &req.uri().to_string(), &body.raw);
    let rows = index_rows(def, &body.resource.value);
    let refs = local_references(def.name, &body.resource.value, &ctx.base_url);
    let base = ctx.base_url.clone();
    let incoming = body.resource;
    let workflow = Workflow::new(&state, &ctx);
    run_write(&state, &ctx, idem, move |tx| {
        let pending = |t: &str, i: &str| t == def.name && i == id;
        if def.name == "Task" {
            let checks = |tx: &mut Tx<'_>| check_references(tx, &refs, &pending);
            let updated = update_task(tx, &workflow, &id, &incoming, if_match.0, &base, checks)?;
            if let Some(v) = updated {
                return Ok(respond::resource(StatusCode::OK, &v, &base, pref, false));
            }
        }
        check_references(tx, &refs, &pending)?;
        let render = |v, at| incoming.render(&id, v, at);
        match tx.update(def.name, &id, &render, &rows, if_match.0, true)? {
            UpdateOutcome::Updated(v) => {
                Ok(respond::resource(StatusCode::OK, &v, &base, pref, false))
            }
            UpdateOutcome::Created(v) => {
                if def.name == "ServiceRequest" {
                    route_created(tx, &id, &incoming.value, &base)?;
                }
                Ok(respond::resource(
                    StatusCode::CREATED,
                    &v,
                    &base,
                    pref,
                    true,
                ))
            }
            UpdateOutcome::NotFound => Err(Failure::Abort(ApiError::precondition_failed(format!(
                "If-Match was given but {}/{id} does not exist",
                def.name
            )))),
            UpdateOutcome::VersionMismatch { current } => {
                Err(Failure::Abort(stale(def.name, &id, current)))
            }
        }
    })
    .await
}

/// An update carries the id of the URL in its body (http.html#update).
pub(crate) fn check_body_id(
    ty: &str,
    id: &str,
    resource: &serde_json::Value,
) -> Result<(), ApiError> {
    match resource.get("id").and_then(|v| v.as_str()) {
        Some(body_id) if body_id == id => Ok(()),
        Some(_) => Err(ApiError::invalid(vec![Issue::error(
            IssueCode::Invalid,
            format!("The id in the body differs from the id in the URL ('{id}')"),
        )
        .at(format!("{ty}.id"))])),
        None => Err(ApiError::invalid(vec![Issue::error(
            IssueCode::Required,
            "An update must carry the resource id in the body",
        )
        .at(format!("{ty}.id"))])),
    }
}

fn stale(ty: &str, id: &str, current: i64) -> ApiError {
    ApiError::precondition_failed(format!(
        "If-Match does not match the current version of {ty}/{id}, which is {}",
        respond::etag(current)
    ))
}

/// DELETE /fhir/{type}/{id}: soft delete; later reads answer 410 Gone.
pub async fn delete(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    ctx: RequestCtx,
    pref: ReturnPref,
    if_match: IfMatch,
) -> Result<HttpResponse, ApiError> {
    let (ty, id) = path.into_inner();
    let def = resource_def(&ty)?;
    logical_id(&id)?;
    if def.name == "Task" {
        check_task_delete(ctx.party.as_ref())?;
    }
    let idem = idempotency(&ctx, "DELETE", &req.uri().to_string(), b"");
    run_write(&state, &ctx, idem, move |tx| {
        let message = match tx.delete(def.name, &id, if_match.0)? {
            DeleteOutcome::Deleted { version_id } => {
                format!("Deleted {}/{id} (version {version_id})", def.name)
            }
            DeleteOutcome::AlreadyDeleted => format!("{}/{id} was already deleted", def.name),
            DeleteOutcome::NotFound => {
                return Err(Failure::Abort(ApiError::not_found(format!(
                    "{}/{id} does not exist",
                    def.name
                ))))
            }
            DeleteOutcome::VersionMismatch { current } => {
                return Err(Failure::Abort(stale(def.name, &id, current)))
            }
        };
        Ok(match pref {
            ReturnPref::OperationOutcome => respond::information(StatusCode::OK, message),
            _ => Reply::new(StatusCode::NO_CONTENT),
        })
    })
    .await
}
