//! The application's error: what went wrong, in domain terms, with the OperationOutcome
//! issues that explain it. No HTTP here: `crate::error` maps each kind to a status code.

use crate::fhir::outcome::{Issue, IssueCode};
use crate::store::{StoreError, WriteError};

/// What kind of failure, as a client must understand it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or the resource breaks FHIR's rules.
    Invalid,
    /// The acting party may not do this.
    Forbidden,
    NotFound,
    /// The resource was deleted.
    Gone,
    /// A concurrent change or a request id reused for another request.
    Conflict,
    /// `If-Match`/`ifMatch` or a conditional operation's criteria do not hold.
    PreconditionFailed,
    /// More than the server takes in one request.
    TooLarge,
    /// Valid FHIR that breaks a business rule (references, workflow, profiles).
    Unprocessable,
    /// The database cannot be reached now; retrying later may work.
    Unavailable,
    /// A fault of the server; details are in the log, never in the answer.
    Internal,
}

#[derive(Debug, Clone)]
pub struct AppError {
    pub kind: ErrorKind,
    pub issues: Vec<Issue>,
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.kind)?;
        if let Some(first) = self.issues.first() {
            write!(f, ": {}", first.diagnostics)?;
        }
        Ok(())
    }
}

impl std::error::Error for AppError {}

impl AppError {
    pub fn new(kind: ErrorKind, issues: Vec<Issue>) -> Self {
        Self { kind, issues }
    }

    pub fn one(kind: ErrorKind, issue: Issue) -> Self {
        Self::new(kind, vec![issue])
    }

    pub fn bad_request(code: IssueCode, diagnostics: impl Into<String>) -> Self {
        Self::one(ErrorKind::Invalid, Issue::error(code, diagnostics))
    }

    pub fn invalid(issues: Vec<Issue>) -> Self {
        Self::new(ErrorKind::Invalid, issues)
    }

    pub fn unprocessable(issues: Vec<Issue>) -> Self {
        Self::new(ErrorKind::Unprocessable, issues)
    }

    pub fn not_found(diagnostics: impl Into<String>) -> Self {
        Self::one(
            ErrorKind::NotFound,
            Issue::error(IssueCode::NotFound, diagnostics),
        )
    }

    pub fn gone(diagnostics: impl Into<String>) -> Self {
        Self::one(
            ErrorKind::Gone,
            Issue::error(IssueCode::Deleted, diagnostics),
        )
    }

    pub fn precondition_failed(diagnostics: impl Into<String>) -> Self {
        Self::one(
            ErrorKind::PreconditionFailed,
            Issue::error(IssueCode::Conflict, diagnostics),
        )
    }

    /// A fault of the server: the detail goes to the log (with the request id of the
    /// current span), the client gets a generic issue.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::one(
            ErrorKind::Internal,
            Issue::error(
                IssueCode::Exception,
                "Internal server error; the request id in X-Request-Id identifies it in the server log",
            ),
        )
    }

    /// The issues for an operator (CLI, start-up errors): `expression: diagnostics`,
    /// joined by `separator`.
    pub fn describe(&self, separator: &str) -> String {
        self.issues
            .iter()
            .map(|i| match &i.expression {
                Some(at) => format!("{at}: {}", i.diagnostics),
                None => i.diagnostics.clone(),
            })
            .collect::<Vec<_>>()
            .join(separator)
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable");
                Self::one(
                    ErrorKind::Unavailable,
                    Issue::error(
                        IssueCode::Transient,
                        "The database is temporarily unavailable; retry later",
                    ),
                )
            }
            StoreError::Conflict(detail) => Self::one(
                ErrorKind::Conflict,
                Issue::error(IssueCode::Conflict, detail),
            ),
            StoreError::Internal(detail) => Self::internal(&detail),
        }
    }
}

impl From<WriteError<AppError>> for AppError {
    fn from(err: WriteError<AppError>) -> Self {
        match err {
            WriteError::Store(e) => e.into(),
            WriteError::Abort(e) => e,
        }
    }
}
