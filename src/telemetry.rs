//! Logging: JSON lines via tracing, one span per request carrying its request id.
//!
//! Privacy: request lines log method, path (resource type and logical id, never query
//! strings, which can hold a BSN), status and duration. Bodies are never logged.

use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::error::ApiError;
use crate::fhir::outcome::{Issue, IssueCode};

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request id of the current request, in request extensions.
#[derive(Debug, Clone)]
pub struct RequestId {
    pub id: String,
    /// Chosen by the client (a retry of the same request carries the same id).
    pub from_client: bool,
}

/// Installs the global subscriber. Safe to call more than once (tests): later calls are no-ops.
pub fn init(filter: &str, format: LogFormat) -> Result<(), String> {
    let filter = EnvFilter::try_new(filter).map_err(|e| format!("invalid log filter: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    Ok(())
}

/// Longest accepted `X-Request-Id`.
pub const REQUEST_ID_MAX: usize = 128;

/// The syntax of a client's `X-Request-Id`, as documented (README "Request ids").
pub const REQUEST_ID_SYNTAX: &str = "1-128 characters of A-Z, a-z, 0-9, '-', '_', '.' and ':'";

/// A client's `X-Request-Id` when it is a sane token (1-128 characters of
/// `A-Za-z0-9-_.:`), a generated UUID when there is none. Anything else is refused
/// rather than replaced: the id decides whether a retried write is replayed, and a
/// client whose id were silently swapped would believe its retry safe when it is not.
/// Logged values must not carry PII, so a refused id is not echoed.
fn request_id_from(req: &ServiceRequest) -> Result<RequestId, ()> {
    let mut values = req.headers().get_all(REQUEST_ID_HEADER);
    let Some(raw) = values.next() else {
        return Ok(RequestId {
            id: uuid::Uuid::new_v4().to_string(),
            from_client: false,
        });
    };
    if values.next().is_some() {
        return Err(());
    }
    let value = raw.to_str().map_err(|_| ())?.trim();
    let valid = (1..=REQUEST_ID_MAX).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if valid {
        Ok(RequestId {
            id: value.to_owned(),
            from_client: true,
        })
    } else {
        Err(())
    }
}

/// 400 for an `X-Request-Id` that is not one token of the documented syntax.
fn invalid_request_id() -> ApiError {
    ApiError::one(
        StatusCode::BAD_REQUEST,
        Issue::error(
            IssueCode::Value,
            format!(
                "X-Request-Id must be one header of {REQUEST_ID_SYNTAX}; it makes retried writes \
                 idempotent, so an invalid one is refused rather than replaced"
            ),
        )
        .at("X-Request-Id"),
    )
}

/// Middleware: request id in, span around the request, request id out, one log line.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let (rid, refused) = match request_id_from(&req) {
        Ok(rid) => (rid, false),
        Err(()) => (
            RequestId {
                id: uuid::Uuid::new_v4().to_string(),
                from_client: false,
            },
            true,
        ),
    };
    let request_id = rid.id.clone();
    req.extensions_mut().insert(rid);
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.path(),
    );
    let started = Instant::now();
    let result = if refused {
        let response = invalid_request_id().error_response();
        Ok(req.into_response(response).map_into_right_body())
    } else {
        next.call(req)
            .instrument(span.clone())
            .await
            .map(ServiceResponse::map_into_left_body)
    };
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let header = HeaderValue::from_str(&request_id).ok();
    match result {
        Ok(mut res) => {
            let status = res.status().as_u16();
            span.in_scope(|| tracing::info!(status, elapsed_ms, "request completed"));
            if let Some(value) = header {
                res.headers_mut()
                    .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
            }
            Ok(res)
        }
        Err(err) => {
            span.in_scope(|| tracing::warn!(error = %err, elapsed_ms, "request failed"));
            Err(err)
        }
    }
}
