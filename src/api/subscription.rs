//! `GET|POST /fhir/Subscription/{id}/$status` and `$events` (Subscriptions Backport IG
//! 1.1): where a Subscription stands, and the events a receiver missed, by number.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::api::extract::RequestCtx;
use crate::api::{logical_id, operation, respond};
use crate::app::error::AppError;
use crate::app::subscriptions::{self, EventsQuery};
use crate::error::ApiError;
use crate::fhir::outcome::IssueCode;
use crate::startup::AppState;

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
    let pairs = operation::parameters(&req, payload).await?;
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
    let query = EventsQuery::parse(&operation::parameters(&req, payload).await?)?;
    let bundle =
        subscriptions::events(&state.app, &ctx.principal, id, query, ctx.base_url.clone()).await?;
    Ok(respond::json(StatusCode::OK, bundle.to_string()))
}
