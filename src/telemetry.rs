//! Logging: JSON lines via tracing, one span per request carrying its request id.
//!
//! Privacy: request lines log method, path (resource type and logical id, never query
//! strings, which can hold a BSN), status and duration. Bodies are never logged.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

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

/// Accepts a client's `X-Request-Id` when it is a sane token (1-128 visible ASCII
/// characters); otherwise generates a UUID. Logged values must not carry PII, so
/// anything else is replaced rather than echoed.
fn request_id_from(req: &ServiceRequest) -> RequestId {
    let client = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| {
            (1..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned);
    match client {
        Some(id) => RequestId {
            id,
            from_client: true,
        },
        None => RequestId {
            id: uuid::Uuid::new_v4().to_string(),
            from_client: false,
        },
    }
}

/// Middleware: request id in, span around the request, request id out, one log line.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let rid = request_id_from(&req);
    let request_id = rid.id.clone();
    req.extensions_mut().insert(rid);
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.path(),
    );
    let started = Instant::now();
    let result = next.call(req).instrument(span.clone()).await;
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
