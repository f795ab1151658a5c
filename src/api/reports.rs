//! Referral statistics (README "Statistics", `app::reports`): `GET /reports/referrals`
//! as JSON or CSV, and `GET /fhir/Measure/referral-statistics/$evaluate-measure` as
//! an R4 MeasureReport, and `GET /reports/dashboard` as an HTML page. Aggregates only,
//! with small cells suppressed.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::api::extract::RequestCtx;
use crate::api::{operation, paging, respond};
use crate::app::report_format::{self, Format};
use crate::app::{dashboard, reports};
use crate::error::ApiError;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::startup::AppState;

fn accept(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
}

/// GET /reports/referrals?from&to&period&by&municipality&_format
pub async fn referrals(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestCtx,
) -> Result<HttpResponse, ApiError> {
    let pairs = paging::query_pairs(&req);
    let request = reports::request(&state.app, &pairs, accept(&req))?;
    let named = reports::referrals(&state.app, &ctx.principal, &request).await?;
    Ok(match request.format {
        Format::Json => HttpResponse::Ok()
            .content_type("application/json")
            .body(report_format::to_json(&named, &request).to_string()),
        Format::Csv => HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8; header=present")
            .body(report_format::to_csv(&named, &request)?),
    })
}

/// GET /fhir/Measure/{id}/$evaluate-measure?periodStart&periodEnd[&period&by], or POST
/// with the same parameters in a Parameters body.
pub async fn evaluate_measure(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    ctx: RequestCtx,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    if id != "referral-statistics" {
        return Err(ApiError::from(crate::app::error::AppError::one(
            crate::app::error::ErrorKind::NotFound,
            Issue::error(
                IssueCode::NotFound,
                format!(
                    "Measure/{} is not known; the hub evaluates Measure/referral-statistics",
                    id.chars().take(64).collect::<String>()
                ),
            ),
        )));
    }
    let pairs = operation::parameters(&req, payload).await?;
    let report = reports::evaluate_measure(&state.app, &ctx.principal, &pairs).await?;
    Ok(respond::json(StatusCode::OK, report.to_string()))
}

/// GET /reports/dashboard?from&to&municipality: the statistics as one HTML page.
pub async fn dashboard(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestCtx,
) -> Result<HttpResponse, ApiError> {
    let pairs = paging::query_pairs(&req);
    let page = dashboard::page(&state.app, &ctx.principal, &pairs).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        // The page has no script and loads nothing: say so, so an injected tag could not.
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(page))
}
