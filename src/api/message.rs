//! POST /fhir/$process-message (messaging.html): a referral as a FHIR message. The
//! parameters `async` and `response-url` go in the URL, the message is the body.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::api::extract::{FhirBody, RequestCtx, ReturnPref};
use crate::app::message::{self, Options};
use crate::error::ApiError;
use crate::startup::AppState;

/// Processes the message; the answer is the response message or an OperationOutcome.
pub async fn process(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestCtx,
    pref: ReturnPref,
    body: FhirBody,
) -> Result<HttpResponse, ApiError> {
    let mut options = Options::default();
    for (name, value) in form_urlencoded::parse(req.query_string().as_bytes()) {
        match name.as_ref() {
            "async" => options.asynchronous = Some(value.into_owned()),
            "response-url" => options.response_url = Some(value.into_owned()),
            _ => {}
        }
    }
    let write = ctx.write(pref, "POST", &req, &body.raw);
    let reply = message::process(&state.app, &ctx.principal, body.resource, options, write).await?;
    Ok(reply.into())
}
