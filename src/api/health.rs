//! GET /health/live and /health/ready: probes for orchestrators (outside the FHIR base).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::error::ApiError;
use crate::startup::AppState;

/// The process is up and serving HTTP.
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// The database answers and no migration is pending (nor applied by a newer binary);
/// otherwise 503 with Retry-After.
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    crate::app::operations::readiness(&state.app).await?;
    Ok(HttpResponse::build(StatusCode::OK).json(json!({ "status": "ok" })))
}
