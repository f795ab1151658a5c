//! What the HTTP edge does for every request: a deadline on the request body, body
//! reading within the size limit, and an OperationOutcome for every error response the
//! framework (rather than a handler) produced.
//!
//! Not covered, because actix-http writes these itself before any application code
//! runs and offers no hook for their body: 400 for a request it cannot parse, 431 for a
//! head over its 32 KiB buffer (or more than 96 headers), and 408 when the head does not
//! arrive within `--head-timeout`. They carry no body (README "Bad input").

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::{Bytes, BytesMut, Data};
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError};
use futures_util::{Stream, StreamExt};

use crate::error::ApiError;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::startup::AppState;

/// A request body stream that fails with [`PayloadError::Io`] of kind `TimedOut` once
/// its deadline has passed: a client sending its body slowly cannot hold a connection
/// (and a worker's request) for ever.
struct Deadline {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: bool,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut this.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        if this.sleep.as_mut().poll(cx).is_ready() {
            this.expired = true;
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "request body timeout",
            )))));
        }
        Poll::Pending
    }
}

/// Middleware: the whole request body must arrive within `--body-timeout`, counted
/// from the moment the request reaches the application (its head has arrived).
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let timeout = body_timeout(req.request());
    let inner = req.take_payload();
    let stream = Deadline {
        inner,
        sleep: Box::pin(tokio::time::sleep(timeout)),
        expired: false,
    };
    req.set_payload(Payload::Stream {
        payload: Box::pin(stream),
    });
    next.call(req).await
}

fn body_timeout(req: &HttpRequest) -> Duration {
    req.app_data::<Data<AppState>>()
        .map_or(Duration::from_secs(30), |s| s.body_timeout)
}

pub(crate) fn too_large(limit: usize) -> ApiError {
    ApiError::one(
        StatusCode::PAYLOAD_TOO_LARGE,
        Issue::error(
            IssueCode::TooLong,
            format!("The body exceeds the limit of {limit} bytes"),
        ),
    )
}

/// The configured body limit, and 413 at once when `Content-Length` declares more.
pub(crate) fn body_limit(req: &HttpRequest) -> Result<usize, ApiError> {
    let limit = req
        .app_data::<Data<AppState>>()
        .map_or(crate::config::DEFAULT_MAX_BODY_BYTES, |s| s.max_body_bytes);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match declared {
        Some(len) if len > limit => Err(too_large(limit)),
        _ => Ok(limit),
    }
}

/// Reads a whole request body of at most `limit` bytes: 413 beyond it, 408 when it
/// does not arrive within the body deadline, 400 when the connection breaks off.
pub(crate) async fn read_body(mut payload: Payload, limit: usize) -> Result<Bytes, ApiError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => ApiError::one(
                StatusCode::REQUEST_TIMEOUT,
                Issue::error(
                    IssueCode::Transient,
                    "The request body did not arrive in time (--body-timeout); send it at once",
                ),
            ),
            PayloadError::Overflow => too_large(limit),
            e => ApiError::bad_request(
                IssueCode::Structure,
                format!("The body could not be read: {e}"),
            ),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// A request body as bytes, read like every other body (size limit, deadline).
pub struct RawBody(pub Bytes);

impl FromRequest for RawBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = body_limit(req);
        let payload = payload.take();
        Box::pin(async move { read_body(payload, limit?).await.map(RawBody) })
    }
}

/// Middleware: an error response that is not FHIR JSON (one the framework built, with
/// an empty or plain-text body) becomes an OperationOutcome with the same status and
/// headers. Handlers' own errors are OperationOutcomes already and pass unchanged.
pub async fn outcome_for_every_error(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    // The token endpoint answers errors as OAuth 2.0 JSON (RFC 6749 §5.2), not FHIR.
    let oauth = req.path().starts_with("/auth/");
    let res = match next.call(req).await {
        Ok(res) => res,
        // An error a middleware passed up (rather than a response): the same, as an
        // ApiError, which answers with an OperationOutcome.
        Err(err) if err.as_error::<ApiError>().is_some() => return Err(err),
        Err(err) => {
            let status = err.as_response_error().status_code();
            return Err(outcome_error(status, Some(&err.to_string())).into());
        }
    };
    let status = res.status();
    let fhir_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.starts_with("application/fhir+json") || (oauth && ct.starts_with("application/json"))
        });
    if !(status.is_client_error() || status.is_server_error()) || fhir_json {
        return Ok(res.map_into_left_body());
    }
    let (req, response) = res.into_parts();
    let error = response.error().map(ToString::to_string);
    let mut out = outcome_error(status, error.as_deref()).error_response();
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(ServiceResponse::new(req, out).map_into_right_body())
}

/// An OperationOutcome for a bare error status; `detail` is the framework's message.
fn outcome_error(status: StatusCode, detail: Option<&str>) -> ApiError {
    let code = match status {
        StatusCode::NOT_FOUND => IssueCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED
        | StatusCode::NOT_ACCEPTABLE
        | StatusCode::UNSUPPORTED_MEDIA_TYPE => IssueCode::NotSupported,
        StatusCode::REQUEST_TIMEOUT => IssueCode::Transient,
        StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::URI_TOO_LONG
        | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => IssueCode::TooLong,
        s if s.is_server_error() => IssueCode::Exception,
        _ => IssueCode::Invalid,
    };
    let reason = status.canonical_reason().unwrap_or("Error");
    let diagnostics = match detail.filter(|d| !d.is_empty()) {
        Some(d) => format!("{reason}: {}", d.chars().take(200).collect::<String>()),
        None => reason.to_owned(),
    };
    ApiError::one(status, Issue::error(code, diagnostics))
}

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody;
    use actix_web::dev::{ServiceRequest, ServiceResponse};
    use actix_web::middleware::{from_fn, Next};
    use actix_web::{test, web, App, HttpResponse};
    use serde_json::Value;

    async fn failing(
        _: ServiceRequest,
        _: Next<impl MessageBody>,
    ) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
        Err::<ServiceResponse, _>(actix_web::error::ErrorConflict("busy"))
    }

    /// The black-box tests find no framework error left without an OperationOutcome;
    /// these show that one would get one: a bare response, a plain-text error from an
    /// actix extractor, and an error a middleware passes up.
    #[actix_web::test]
    async fn bare_errors_become_outcomes() {
        let app = test::init_service(
            App::new()
                .wrap(from_fn(super::outcome_for_every_error))
                .app_data(web::PayloadConfig::new(4))
                .route(
                    "/bare",
                    web::get().to(|| async {
                        HttpResponse::MethodNotAllowed()
                            .insert_header(("allow", "GET"))
                            .finish()
                    }),
                )
                .route(
                    "/form",
                    web::post().to(|_: web::Bytes| async { HttpResponse::Ok().finish() }),
                )
                .route("/ok", web::get().to(|| async { "fine" }))
                .service(
                    web::scope("/mw")
                        .wrap(from_fn(failing))
                        .route("", web::get().to(|| async { HttpResponse::Ok().finish() })),
                ),
        )
        .await;
        for (req, status, code) in [
            (test::TestRequest::get().uri("/bare"), 405, "not-supported"),
            (
                test::TestRequest::post()
                    .uri("/form")
                    .set_payload("far too long"),
                413,
                "too-long",
            ),
        ] {
            let res = test::call_service(&app, req.to_request()).await;
            assert_eq!(res.status().as_u16(), status);
            let ct = res
                .headers()
                .get("content-type")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            let allow = res.headers().get("allow").cloned();
            let body: Value = test::read_body_json(res).await;
            assert!(ct.starts_with("application/fhir+json"), "{ct}");
            assert_eq!(body["resourceType"], "OperationOutcome");
            assert_eq!(body["issue"][0]["code"], code);
            if status == 405 {
                assert_eq!(allow.unwrap(), "GET");
            }
        }
        let err = test::try_call_service(&app, test::TestRequest::get().uri("/mw").to_request())
            .await
            .err()
            .unwrap();
        let res = err.error_response();
        assert_eq!(res.status().as_u16(), 409);
        assert!(res
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("application/fhir+json"));
        let ok = test::call_service(&app, test::TestRequest::get().uri("/ok").to_request()).await;
        assert_eq!(test::read_body(ok).await, "fine");
    }
}
