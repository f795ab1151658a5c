//! The one error type at the HTTP edge. Every failed request becomes an
//! OperationOutcome here, with the status code the FHIR http spec asks for: this is
//! the only place an application error ([`AppError`]) gets an HTTP status.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

use crate::app::error::{AppError, ErrorKind};
use crate::fhir::outcome::{operation_outcome, Issue, IssueCode};
use crate::fhir::FHIR_JSON;
use crate::store::StoreError;

/// The status code of each kind of application error (R4 http.html).
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Gone => StatusCode::GONE,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `422 Unprocessable Entity`: a failed Bundle entry's `response.status`.
pub fn status_line(kind: ErrorKind) -> String {
    let status = status_of(kind);
    format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default()
    )
}

/// Seconds a client should wait before retrying an unavailable database.
const RETRY_AFTER_SECS: u32 = 2;

impl From<AppError> for ApiError {
    fn from(err: AppError) -> Self {
        Self {
            status: status_of(err.kind),
            retry_after: (err.kind == ErrorKind::Unavailable).then_some(RETRY_AFTER_SECS),
            issues: err.issues,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub issues: Vec<Issue>,
    /// Seconds, sent as `Retry-After` (503).
    pub retry_after: Option<u32>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.status)?;
        if let Some(first) = self.issues.first() {
            write!(f, ": {}", first.diagnostics)?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    pub fn new(status: StatusCode, issues: Vec<Issue>) -> Self {
        Self {
            status,
            issues,
            retry_after: None,
        }
    }

    pub fn one(status: StatusCode, issue: Issue) -> Self {
        Self::new(status, vec![issue])
    }

    // The FHIR errors the edge raises itself share the application's kinds (and so
    // their status codes).
    pub fn bad_request(code: IssueCode, diagnostics: impl Into<String>) -> Self {
        AppError::bad_request(code, diagnostics).into()
    }

    pub fn invalid(issues: Vec<Issue>) -> Self {
        AppError::invalid(issues).into()
    }

    pub fn not_found(diagnostics: impl Into<String>) -> Self {
        AppError::not_found(diagnostics).into()
    }

    pub fn gone(diagnostics: impl Into<String>) -> Self {
        AppError::gone(diagnostics).into()
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status);
        builder.insert_header((header::CONTENT_TYPE, FHIR_JSON));
        if let Some(secs) = self.retry_after {
            builder.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        builder.body(operation_outcome(&self.issues).to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        AppError::from(err).into()
    }
}
