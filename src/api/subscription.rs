//! `GET|POST /fhir/Subscription/{id}/$status` and `$events` (Subscriptions Backport IG
//! 1.1): where a Subscription stands, and the events a receiver missed, by number.

use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde_json::Value;

use crate::api::extract::{FhirBody, RequestCtx};
use crate::api::validate::has_body;
use crate::api::{logical_id, paging, respond};
use crate::app::error::AppError;
use crate::app::subscriptions::{self, EventsQuery};
use crate::error::ApiError;
use crate::fhir::outcome::IssueCode;
use crate::startup::AppState;

/// The operation's parameters: the query, and a `Parameters` body's `valueString`,
/// `valueCode`, `valueInteger` or `valueUnsignedInt` values.
async fn parameters(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Vec<(String, String)>, ApiError> {
    let mut pairs = paging::query_pairs(req);
    if !has_body(req) {
        return Ok(pairs);
    }
    let body = FhirBody::from_request(req, &mut payload.into_inner()).await?;
    let value = body.resource.value;
    if value.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(AppError::bad_request(
            IssueCode::Invalid,
            "The body of this operation is a Parameters resource",
        )
        .into());
    }
    for p in value
        .get("parameter")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
        let text = [
            "valueString",
            "valueCode",
            "valueInteger",
            "valueUnsignedInt",
            "valuePositiveInt",
        ]
        .iter()
        .find_map(|k| p.get(*k))
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned));
        match text {
            Some(t) => pairs.push((name.to_owned(), t)),
            None => {
                return Err(AppError::bad_request(
                    IssueCode::Invalid,
                    format!("Parameter '{name}' has no value this operation reads"),
                )
                .into())
            }
        }
    }
    Ok(pairs)
}

/// `$status`: a searchset Bundle with the Subscription's SubscriptionStatus.
pub async fn status(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    ctx: RequestCtx,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    logical_id(&id)?;
    let pairs = parameters(&req, payload).await?;
    if let Some((name, _)) = pairs
        .iter()
        .find(|(n, _)| !matches!(n.as_str(), "_format" | "_pretty"))
    {
        return Err(AppError::bad_request(
            IssueCode::NotSupported,
            format!("$status on one Subscription takes no parameters, not '{name}'"),
        )
        .into());
    }
    let bundle =
        subscriptions::status(&state.app, &ctx.principal, id, ctx.base_url.clone()).await?;
    Ok(respond::json(StatusCode::OK, bundle.to_string()))
}

/// `$events`: the events numbered `eventsSinceNumber..=eventsUntilNumber` as a
/// `query-event` notification Bundle.
pub async fn events(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    ctx: RequestCtx,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    logical_id(&id)?;
    let query = EventsQuery::parse(&parameters(&req, payload).await?)?;
    let bundle =
        subscriptions::events(&state.app, &ctx.principal, id, query, ctx.base_url.clone()).await?;
    Ok(respond::json(StatusCode::OK, bundle.to_string()))
}
