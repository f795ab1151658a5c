//! POST /fhir/ServiceRequest/$route: the routing decision for a referral, without
//! storing anything (operation defined in profiles/OperationDefinition-ServiceRequest-route.json).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use crate::api::extract::{FhirBody, RequestCtx};
use crate::api::respond;
use crate::app::route;
use crate::error::ApiError;
use crate::startup::AppState;

/// Answers a Parameters resource: outcome, organization, healthcareService, the facts
/// and steps, and the Task that routing would create.
pub async fn route(
    state: web::Data<AppState>,
    ctx: RequestCtx,
    body: FhirBody,
) -> Result<HttpResponse, ApiError> {
    let (_, parameters) = route::explain_request(
        &state.app,
        &ctx.principal,
        body.resource.value,
        ctx.base_url.clone(),
    )
    .await?;
    Ok(respond::json(StatusCode::OK, parameters.to_string()))
}
