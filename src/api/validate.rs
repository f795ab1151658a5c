//! `$validate` (http://hl7.org/fhir/R4/resource-operation-validate.html):
//! `POST /fhir/{type}/$validate` and `GET|POST /fhir/{type}/{id}/$validate`. The
//! write's own rules run and are rolled back (`app::validate`); 200 with the
//! OperationOutcome, valid or not.

use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};

use crate::api::extract::{FhirBody, IfMatch, RequestCtx};
use crate::api::{logical_id, paging, resource_def};
use crate::app::validate::{validate as run, Params};
use crate::error::ApiError;
use crate::startup::AppState;

/// A body was sent (a POST may come without one: `mode=delete`, or the stored resource).
fn has_body(req: &HttpRequest) -> bool {
    match req.headers().get(header::CONTENT_LENGTH) {
        Some(len) => len.to_str().map_or(true, |l| l.trim() != "0"),
        None => req.headers().contains_key(header::TRANSFER_ENCODING),
    }
}

async fn body(req: &HttpRequest, payload: web::Payload) -> Result<Option<FhirBody>, ApiError> {
    if !has_body(req) {
        return Ok(None);
    }
    let mut payload = payload.into_inner();
    Ok(Some(FhirBody::from_request(req, &mut payload).await?))
}

fn params(req: &HttpRequest, body: Option<&FhirBody>) -> Result<Params, ApiError> {
    let query = paging::query_pairs(req);
    Ok(Params::parse(
        &query,
        body.map(|b| (&b.resource.value, b.raw.as_ref())),
    )?)
}

/// POST /fhir/{type}/$validate: the resource (or a Parameters) in the body.
pub async fn type_level(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    ctx: RequestCtx,
    if_match: IfMatch,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let def = resource_def(&path)?;
    let body = body(&req, payload).await?;
    let params = params(&req, body.as_ref())?;
    let reply = run(
        &state.app,
        &ctx.principal,
        def,
        None,
        params,
        if_match.0,
        ctx.base_url,
    )
    .await?;
    Ok(reply.into())
}

/// GET or POST /fhir/{type}/{id}/$validate: an update of it (with a resource), its
/// deletion (`mode=delete`), or the stored resource as it is.
pub async fn instance(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    ctx: RequestCtx,
    if_match: IfMatch,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (ty, id) = path.into_inner();
    let def = resource_def(&ty)?;
    logical_id(&id)?;
    let body = body(&req, payload).await?;
    let params = params(&req, body.as_ref())?;
    let reply = run(
        &state.app,
        &ctx.principal,
        def,
        Some(id),
        params,
        if_match.0,
        ctx.base_url,
    )
    .await?;
    Ok(reply.into())
}
