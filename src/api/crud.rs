//! FHIR RESTful interactions create, read, vread, update and delete (http.html).

use actix_web::{web, HttpRequest, HttpResponse};

use crate::api::extract::{FhirBody, IfMatch, RequestCtx, ReturnPref};
use crate::api::{paging, resource_def, type_and_id};
use crate::app::conditional::{self, Target};
use crate::app::resources;
use crate::error::ApiError;
use crate::fhir::criteria::parse_criteria;
use crate::fhir::elements::{parse_subset, Subset};
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::registry::ResourceDef;
use crate::startup::AppState;

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
    if def.name == "Bundle" {
        // A document (README "Document intake"); transactions go to POST /fhir.
        let write = ctx.write(pref, "POST", &req, &body.raw);
        let reply =
            crate::app::document::post(&state.app, &ctx.principal, body.resource, write).await?;
        return Ok(reply.into());
    }
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
    let write = ctx.write(pref, "POST", &req, &body.raw);
    let reply = resources::create(
        &state.app,
        &ctx.principal,
        def,
        body.resource,
        if_none_exist,
        write,
    )
    .await?;
    Ok(reply.into())
}

/// GET (or HEAD) /fhir/{type}/{id}, with `_summary` or `_elements`.
pub async fn read(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    ctx: RequestCtx,
) -> Result<HttpResponse, ApiError> {
    let (def, id) = type_and_id(path.into_inner())?;
    let subset = read_subset(&req)?;
    read_version(&state, &ctx, def, id, None, subset).await
}

/// A read or vread, with `_summary` or `_elements`.
async fn read_version(
    state: &AppState,
    ctx: &RequestCtx,
    def: &'static ResourceDef,
    id: String,
    version: Option<i64>,
    subset: Option<Subset>,
) -> Result<HttpResponse, ApiError> {
    let reply =
        resources::read(&state.app, &ctx.principal, def, id, version, &ctx.base_url).await?;
    Ok(match subset {
        Some(s) => reply.subsetted(def.name, &s),
        None => reply,
    }
    .into())
}

/// `_summary` (not `count`: a read has no total) or `_elements` on read and vread.
pub(crate) fn read_subset(req: &HttpRequest) -> Result<Option<Subset>, ApiError> {
    let pairs = paging::query_pairs(req);
    let summary = paging::value(&pairs, "_summary");
    if summary == Some("count") {
        return Err(ApiError::invalid(vec![Issue::error(
            IssueCode::Value,
            "_summary=count applies to searches; a read takes true, text, data or false",
        )
        .at("_summary")]));
    }
    parse_subset(summary, paging::value(&pairs, "_elements"))
        .map_err(|issue| ApiError::invalid(vec![issue]))
}

/// GET (or HEAD) /fhir/{type}/{id}/_history/{vid}
pub async fn vread(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    req: HttpRequest,
    ctx: RequestCtx,
) -> Result<HttpResponse, ApiError> {
    let (ty, id, vid) = path.into_inner();
    let (def, id) = type_and_id((ty, id))?;
    let subset = read_subset(&req)?;
    let Some(version_id) = vid.parse::<i64>().ok().filter(|v| *v > 0) else {
        return Err(ApiError::not_found(format!(
            "No version '{}' of {}/{id}: versions are positive integers",
            vid.chars().take(32).collect::<String>(),
            def.name
        )));
    };
    read_version(&state, &ctx, def, id, Some(version_id), subset).await
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
    let (def, id) = type_and_id(path.into_inner())?;
    let write = ctx.write(pref, "PUT", &req, &body.raw);
    let reply = resources::update(
        &state.app,
        &ctx.principal,
        def,
        Target::Id(id),
        body.resource,
        if_match.0,
        write,
    )
    .await?;
    Ok(reply.into())
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
    let (def, id) = type_and_id(path.into_inner())?;
    let write = ctx.write(pref, "DELETE", &req, b"");
    let reply = resources::delete(
        &state.app,
        &ctx.principal,
        def,
        Target::Id(id),
        if_match.0,
        write.pref,
        write.idempotency,
    )
    .await?;
    Ok(reply.into())
}

/// PUT /fhir/{type}?criteria: conditional update (http.html#cond-update).
#[allow(clippy::too_many_arguments)]
pub async fn conditional_update(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    ctx: RequestCtx,
    pref: ReturnPref,
    if_match: IfMatch,
    body: FhirBody,
) -> Result<HttpResponse, ApiError> {
    let def = resource_def(&path)?;
    let target = Target::Criteria(conditional::criteria(def, req.query_string())?);
    let write = ctx.write(pref, "PUT", &req, &body.raw);
    let reply = resources::update(
        &state.app,
        &ctx.principal,
        def,
        target,
        body.resource,
        if_match.0,
        write,
    )
    .await?;
    Ok(reply.into())
}

/// DELETE /fhir/{type}?criteria: conditional delete of one resource (http.html#3.1.0.7.1).
pub async fn conditional_delete(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    ctx: RequestCtx,
    pref: ReturnPref,
    if_match: IfMatch,
) -> Result<HttpResponse, ApiError> {
    let def = resource_def(&path)?;
    let target = Target::Criteria(conditional::criteria(def, req.query_string())?);
    let write = ctx.write(pref, "DELETE", &req, b"");
    let reply = resources::delete(
        &state.app,
        &ctx.principal,
        def,
        target,
        if_match.0,
        write.pref,
        write.idempotency,
    )
    .await?;
    Ok(reply.into())
}
