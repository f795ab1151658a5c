//! POST /fhir/ServiceRequest/$route: the routing decision for a referral, without
//! storing anything (operation defined in profiles/OperationDefinition-ServiceRequest-route.json).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use crate::api::extract::{FhirBody, RequestCtx};
use crate::api::respond::Reply;
use crate::api::routing::{explain, read_question};
use crate::api::write::run_write;
use crate::error::ApiError;
use crate::fhir::instant::now_micros;
use crate::referral::task::decision_parameters;
use crate::startup::AppState;
use crate::store::AuditRecord;

/// Answers a Parameters resource: outcome, organization, healthcareService, the facts
/// and steps, and the Task that routing would create. Only audit records are written.
pub async fn route(
    state: web::Data<AppState>,
    ctx: RequestCtx,
    body: FhirBody,
) -> Result<HttpResponse, ApiError> {
    let base = ctx.base_url.clone();
    let value = body.resource.value;
    run_write(&state, &ctx, None, move |tx| {
        let question = read_question(tx, &value, &base)?;
        let (decision, task) = explain(tx, &question, now_micros())?;
        tx.audit(AuditRecord {
            action: "E",
            interaction: "operation:route",
            resource_type: "ServiceRequest",
            resource_id: question.sr_id.as_deref(),
            version_id: None,
            outcome: "success",
        })?;
        Ok(Reply::new(StatusCode::OK).fhir(decision_parameters(&decision, task).to_string()))
    })
    .await
}
