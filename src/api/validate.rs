//! `$validate` (http://hl7.org/fhir/R4/resource-operation-validate.html):
//! `POST /fhir/{type}/$validate` and `GET|POST /fhir/{type}/{id}/$validate`. The
//! write's own rules run and are rolled back (`app::validate`); 200 with the
//! OperationOutcome, valid or not.

use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};

use crate::api::extract::{FhirBody, IfMatch, RequestCtx};
use crate::api::{paging, resource_def, type_and_id};
use crate::app::validate::{validate as run, Params};
use crate::error::ApiError;
use crate::fhir::registry::ResourceDef;
use crate::startup::AppState;

/// A body was sent (a POST may come without one: `mode=delete`, or the stored resource).
pub(crate) fn has_body(req: &HttpRequest) -> bool {
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
    validate(&state, &req, ctx, if_match, payload, def, None).await
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
    let (def, id) = type_and_id(path.into_inner())?;
    validate(&state, &req, ctx, if_match, payload, def, Some(id)).await
}

async fn validate(
    state: &AppState,
    req: &HttpRequest,
    ctx: RequestCtx,
    if_match: IfMatch,
    payload: web::Payload,
    def: &'static ResourceDef,
    id: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let body = body(req, payload).await?;
    let query = paging::query_pairs(req);
    let params = Params::parse(
        &query,
        body.as_ref().map(|b| (&b.resource.value, b.raw.as_ref())),
    )?;
    let reply = run(
        &state.app,
        &ctx.principal,
        def,
        id,
        params,
        if_match.0,
        ctx.base_url,
    )
    .await?;
    Ok(reply.into())
}
