//! The audit trail (`app::audit`): read `GET /fhir/AuditEvent/{id}` and search-type
//! `GET /fhir/AuditEvent` (or `POST .../_search`), for coordinators; any write answers
//! 405: the trail cannot be changed or deleted through the API.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::api::edge::RawBody;
use crate::api::extract::{lenient, RequestCtx};
use crate::api::paging;
use crate::app::audit;
use crate::error::ApiError;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::startup::AppState;

/// GET (or HEAD) /fhir/AuditEvent/{id}
pub async fn read(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    ctx: RequestCtx,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    // `AuditEvent/_history`, `AuditEvent/$validate`: interactions not served here.
    if id.starts_with(['_', '$']) {
        return not_served(req).await;
    }
    let reply = audit::read(&state.app, &ctx.principal, &id, &ctx.base_url).await?;
    Ok(reply.into())
}

/// GET (or HEAD) /fhir/AuditEvent?params
pub async fn search(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestCtx,
) -> Result<HttpResponse, ApiError> {
    let pairs = paging::query_pairs(&req);
    let reply = audit::search(
        &state.app,
        &ctx.principal,
        &pairs,
        lenient(&req),
        &ctx.base_url,
    )
    .await?;
    Ok(reply.into())
}

/// POST /fhir/AuditEvent/_search: parameters in a form body, merged with the URL's.
pub async fn search_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestCtx,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let pairs = paging::form_pairs(&req, &body.0)?;
    let reply = audit::search(
        &state.app,
        &ctx.principal,
        &pairs,
        lenient(&req),
        &ctx.base_url,
    )
    .await?;
    Ok(reply.into())
}

/// Any write: the audit trail is append-only, and only the server appends.
pub async fn read_only(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::one(
        StatusCode::METHOD_NOT_ALLOWED,
        Issue::error(
            IssueCode::NotSupported,
            format!(
                "AuditEvent is the server's audit trail: it cannot be created, changed or \
                 deleted through the API ({} is not allowed; read GET AuditEvent/[id], search \
                 GET AuditEvent?patient=...)",
                req.method()
            ),
        ),
    ))
}

/// Other paths under AuditEvent (history, vread, operations): not served.
pub async fn not_served(_req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(
        "AuditEvent is served for read (GET AuditEvent/[id]) and search (GET AuditEvent?...) only",
    ))
}
