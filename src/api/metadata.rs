//! GET /fhir/metadata: the capabilities interaction.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use crate::api::extract::RequestCtx;
use crate::api::{respond, SERVED};
use crate::fhir::capability::capability_statement;
use crate::startup::AppState;

pub async fn capabilities(state: web::Data<AppState>, ctx: RequestCtx) -> HttpResponse {
    let statement = capability_statement(&ctx.base_url, &SERVED, &state.started);
    respond::json(StatusCode::OK, statement.to_string())
}
