//! Operations: readiness and the operator's metrics (README "Metrics"). Neither
//! reads or returns patient data.

use std::time::Duration;

use crate::fhir::outcome::{Issue, IssueCode};
use crate::referral::codes::{CS_TASK_BUSINESS_STATUS, CS_TASK_FLAG};

use super::error::{AppError, ErrorKind};
use super::principal::Principal;
use super::App;

/// How long the database counts of `/metrics` are reused: scrapes cannot hammer the
/// database, however often they come.
pub const COUNTS_MAX_AGE: Duration = Duration::from_secs(5);

/// Ready to serve: the database answers and its schema is this binary's (no
/// migration pending, none applied that this binary does not know). Otherwise an
/// `Unavailable` error (503 with Retry-After) saying which.
pub async fn readiness(app: &App) -> Result<(), AppError> {
    let drift = app.store.schema_drift().await?;
    let problem = if !drift.pending.is_empty() {
        format!(
            "Database migrations are pending: {}; `wor-hub migrate` (or a restart) applies them",
            drift.pending.join(", ")
        )
    } else if !drift.unknown.is_empty() {
        format!(
            "The database has migrations this version does not know: {}; a newer wor-hub \
             migrated it",
            drift.unknown.join(", ")
        )
    } else {
        return Ok(());
    };
    tracing::warn!(problem = %problem, "not ready");
    Err(AppError::one(
        ErrorKind::Unavailable,
        Issue::error(IssueCode::Transient, problem),
    ))
}

/// The metrics in the text exposition format. The database counts are read (one
/// read as `system:metrics`) when older than [`COUNTS_MAX_AGE`]; when that read
/// fails, the last counts are served and the next scrape tries again.
pub async fn metrics_text(app: &App) -> Result<String, AppError> {
    let metrics = &app.metrics;
    metrics.set_pool(app.store.pool_state());
    if metrics.counts_due(COUNTS_MAX_AGE) {
        let principal = Principal::system("system:metrics");
        let counts = app
            .store
            .read(principal.access(), |tx| {
                tx.operations_counts(CS_TASK_BUSINESS_STATUS, CS_TASK_FLAG)
            })
            .await;
        match counts {
            Ok(counts) => metrics.set_counts(&counts),
            Err(e) => {
                metrics.counts_failed();
                tracing::warn!(error = %e, "reading the metrics counts failed");
            }
        }
    }
    metrics.render().map_err(|e| AppError::internal(&e))
}
