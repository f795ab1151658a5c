//! FHIR RESTful interactions create, read, vread, update and delete (http.html).

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::api::extract::{FhirBody, IfMatch, RequestCtx, ReturnPref};
use crate::api::{logical_id, resource_def, respond};
use crate::error::ApiError;
use crate::fhir::criteria::parse_criteria;
use crate::fhir::identifiers::check_identifiers;
use crate::fhir::index::index_rows;
use crate::fhir::instant::now_micros;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::validate::validate_resource;
use crate::startup::AppState;
use crate::store::{CreateOutcome, DeleteOutcome, Lookup, UpdateOutcome};

/// Structure and R4 rules (400), then the Dutch identifier rules (422).
pub(crate) fn check_valid(
    resource_type: &str,
    resource: &serde_json::Value,
) -> Result<(), ApiError> {
    let issues = validate_resource(resource_type, resource);
    if issues.iter().any(Issue::is_error) {
        return Err(ApiError::invalid(issues));
    }
    let issues = check_identifiers(resource_type, resource);
    if issues.iter().any(Issue::is_error) {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, issues));
    }
    Ok(())
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
    check_valid(def.name, &body.0.value)?;
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
    let id = uuid::Uuid::new_v4().to_string();
    let at = now_micros();
    let stored_body = body.0.render(&id, 1, at);
    let tokens = index_rows(def, &body.0.value);
    let outcome = state
        .store
        .create(
            ctx.audit(),
            def.name.to_owned(),
            id,
            at,
            stored_body,
            tokens,
            if_none_exist,
        )
        .await?;
    match outcome {
        CreateOutcome::Created(v) => Ok(respond::resource(
            StatusCode::CREATED,
            &v,
            &ctx.base_url,
            pref,
            true,
        )),
        CreateOutcome::Matched(v) => Ok(respond::resource(
            StatusCode::OK,
            &v,
            &ctx.base_url,
            pref,
            true,
        )),
        CreateOutcome::MultipleMatches => Err(ApiError::precondition_failed(
            "If-None-Exist matches more than one resource",
        )),
    }
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
        )),
        Lookup::Deleted(v) => Err(ApiError::gone(format!(
            "{ty}/{id} was deleted (version {})",
            v.version_id
        ))),
        Lookup::NotFound => Err(ApiError::not_found(format!("{ty}/{id} does not exist"))),
    }
}

/// PUT /fhir/{type}/{id}: update, or create with a client-chosen id.
pub async fn update(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    ctx: RequestCtx,
    pref: ReturnPref,
    if_match: IfMatch,
    body: FhirBody,
) -> Result<HttpResponse, ApiError> {
    let (ty, id) = path.into_inner();
    let def = resource_def(&ty)?;
    logical_id(&id)?;
    check_valid(def.name, &body.0.value)?;
    match body.0.id().and_then(|v| v.as_str()) {
        Some(body_id) if body_id == id => {}
        Some(_) => {
            return Err(ApiError::invalid(vec![Issue::error(
                IssueCode::Invalid,
                format!("The id in the body differs from the id in the URL ('{id}')"),
            )
            .at(format!("{}.id", def.name))]))
        }
        None => {
            return Err(ApiError::invalid(vec![Issue::error(
                IssueCode::Required,
                "An update must carry the resource id in the body",
            )
            .at(format!("{}.id", def.name))]))
        }
    }
    let at = now_micros();
    let tokens = index_rows(def, &body.0.value);
    let incoming = Arc::new(body.0);
    let render_id = id.clone();
    let outcome = state
        .store
        .update(
            ctx.audit(),
            def.name.to_owned(),
            id.clone(),
            at,
            Arc::new(move |v| incoming.render(&render_id, v, at)),
            tokens,
            if_match.0,
            true,
        )
        .await?;
    match outcome {
        UpdateOutcome::Updated(v) => Ok(respond::resource(
            StatusCode::OK,
            &v,
            &ctx.base_url,
            pref,
            false,
        )),
        UpdateOutcome::Created(v) => Ok(respond::resource(
            StatusCode::CREATED,
            &v,
            &ctx.base_url,
            pref,
            true,
        )),
        UpdateOutcome::NotFound => Err(ApiError::precondition_failed(format!(
            "If-Match was given but {}/{id} does not exist",
            def.name
        ))),
        UpdateOutcome::VersionMismatch { current } => Err(stale(def.name, &id, current)),
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
    ctx: RequestCtx,
    pref: ReturnPref,
    if_match: IfMatch,
) -> Result<HttpResponse, ApiError> {
    let (ty, id) = path.into_inner();
    let def = resource_def(&ty)?;
    logical_id(&id)?;
    let outcome = state
        .store
        .delete(
            ctx.audit(),
            def.name.to_owned(),
            id.clone(),
            now_micros(),
            if_match.0,
        )
        .await?;
    let message = match outcome {
        DeleteOutcome::Deleted { version_id } => {
            format!("Deleted {}/{id} (version {version_id})", def.name)
        }
        DeleteOutcome::AlreadyDeleted => format!("{}/{id} was already deleted", def.name),
        DeleteOutcome::NotFound => {
            return Err(ApiError::not_found(format!(
                "{}/{id} does not exist",
                def.name
            )))
        }
        DeleteOutcome::VersionMismatch { current } => return Err(stale(def.name, &id, current)),
    };
    Ok(match pref {
        ReturnPref::OperationOutcome => respond::json(
            StatusCode::OK,
            crate::fhir::outcome::operation_outcome(&[Issue::information(message)]).to_string(),
        ),
        _ => HttpResponse::NoContent().finish(),
    })
}
