//! FHIR RESTful interaction patch (http.html#patch): JSON Patch and FHIRPath Patch,
//! applied to the current version and stored as the update it stands for.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::api::extract::{IfMatch, PatchBody, RequestCtx, ReturnPref};
use crate::api::type_and_id;
use crate::app::patch;
use crate::error::ApiError;
use crate::startup::AppState;

/// PATCH /fhir/{type}/{id}
#[allow(clippy::too_many_arguments)]
pub async fn patch(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    ctx: RequestCtx,
    pref: ReturnPref,
    if_match: IfMatch,
    body: PatchBody,
) -> Result<HttpResponse, ApiError> {
    let (def, id) = type_and_id(path.into_inner())?;
    let write = ctx.write(pref, "PATCH", &req, &body.raw);
    let reply = patch::patch(
        &state.app,
        &ctx.principal,
        def,
        id,
        body.format,
        &body.raw,
        if_match.0,
        write,
    )
    .await?;
    Ok(reply.into())
}
