//! POST /fhir: transaction and batch Bundles (http.html#transaction).

use actix_web::{web, HttpRequest, HttpResponse};

use crate::api::extract::{FhirBody, RequestCtx, ReturnPref};
use crate::app::bundle;
use crate::error::ApiError;
use crate::startup::AppState;

pub async fn bundle(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestCtx,
    pref: ReturnPref,
    body: FhirBody,
) -> Result<HttpResponse, ApiError> {
    let write = ctx.write(pref, "POST", &req, &body.raw);
    let reply = bundle::post(&state.app, &ctx.principal, &body.resource, &body.raw, write).await?;
    Ok(reply.into())
}
