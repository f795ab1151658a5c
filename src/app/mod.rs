//! The use cases: what the service does, whoever asks (the HTTP API, background jobs,
//! the CLI). Each takes a [`principal::Principal`] and returns an
//! [`error::AppError`]; none knows HTTP (`crate::error` maps errors to status codes)
//! and none touches SQL (every read and write goes through the store's unit of work).
//!
//! - `resources`: create, read, update, delete with their rules; `patch`: PATCH as an update
//! - `bundle`: transaction and batch Bundles
//! - `read`: search and history; `searchset`: the searchset Bundle they answer with
//! - `routing`: routing on intake; `route`: `$route` and `wor-hub route explain`
//! - `workflow`: the Task workflow, re-routing, the contact-deadline job
//! - `directory`, `postcodes`: imports
//! - `conditional`: conditional update and delete; `validate`: `$validate` (dry runs)
//! - `conformance`: the hub's conformance resources, served read-only from memory
//! - `audit`: the audit trail as AuditEvent (coordinators), the token grant's record
//! - `write`: the idempotent write runner; `reply`: what a use case answers
//! - `auth`: client registration, the token endpoint, bearer tokens
//! - `operations`: readiness and the operator's metrics
//! - `reports`, `report_format`: the statistics; `dashboard`: their HTML page

pub mod access;
pub mod audit;
pub mod auth;
pub mod bundle;
pub mod conditional;
pub mod conformance;
pub mod dashboard;
pub mod directory;
pub mod document;
pub mod error;
pub mod message;
pub mod operations;
pub mod overdue;
pub mod patch;
pub mod postcodes;
pub mod principal;
pub mod read;
pub mod reply;
pub mod report_format;
pub mod reports;
pub mod resources;
pub mod route;
pub mod routing;
pub mod searchset;
pub mod subscriptions;
pub mod validate;
pub mod workflow;
pub mod write;

use std::time::Duration;

use crate::clock::Clock;
use crate::config::Settings;
use crate::store::Store;

/// The application: the store and the settings the use cases follow.
#[derive(Clone)]
pub struct App {
    pub store: Store,
    /// The clock workflow deadlines are measured by.
    pub clock: Clock,
    /// The Task contact deadline in microseconds.
    pub contact_deadline: i64,
    /// How long `X-Request-Id` replays are answered from the stored reply.
    pub request_retention: Duration,
    /// Most entries in a transaction or batch Bundle.
    pub max_bundle_entries: usize,
    /// Smallest count a statistics report shows.
    pub report_minimum_cell: u64,
    /// Woken after a commit that recorded notification events (the delivery worker
    /// waits on it).
    pub outbox_wake: std::sync::Arc<tokio::sync::Notify>,
    /// The operator's metrics (README "Metrics"), this application's own registry.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
}

impl App {
    pub fn new(store: Store, settings: &Settings) -> Self {
        let outbox_wake = std::sync::Arc::new(tokio::sync::Notify::new());
        let hook = AppHook {
            outbox: subscriptions::OutboxHook {
                wake: outbox_wake.clone(),
            },
        };
        let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
        Self {
            store: store
                .with_hook(std::sync::Arc::new(hook))
                .with_write_wait(metrics.write_wait_observer()),
            outbox_wake,
            metrics,
            clock: settings.clock.clone(),
            contact_deadline: micros(settings.contact_deadline),
            request_retention: settings.request_retention,
            max_bundle_entries: settings.max_bundle_entries,
            report_minimum_cell: settings.report_minimum_cell,
        }
    }
}

/// The after-write hook the application registers: who may read what first (the
/// outbox narrows notifications by it), the statistics projection, then the
/// notification outbox. The two projections are refreshed once per referral and unit
/// of work, before it commits (`Tx::defer`); the outbox settles them before it
/// narrows an event by the grants.
struct AppHook {
    outbox: subscriptions::OutboxHook,
}

impl crate::store::WriteHook for AppHook {
    fn after_write(
        &self,
        tx: &mut crate::store::Tx<'_>,
        written: &crate::store::StoredVersion,
        change: crate::store::Change,
    ) -> Result<(), crate::store::TxError> {
        access::follow_write(tx, written, change)?;
        reports::follow_write(tx, written, change)?;
        self.outbox.after_write(tx, written, change)
    }

    /// The projections' refreshes `follow_write` deferred: the access grants first (in
    /// key order), then the statistics rows.
    fn settle(
        &self,
        tx: &mut crate::store::Tx<'_>,
        keys: std::collections::BTreeSet<String>,
    ) -> Result<(), crate::store::TxError> {
        for key in &keys {
            if let Some(sr) = key.strip_prefix(access::DEFERRED) {
                access::refresh(tx, sr)?;
            } else if let Some(sr) = key.strip_prefix(reports::DEFERRED) {
                reports::refresh(tx, sr)?;
            }
        }
        Ok(())
    }

    fn committed(&self) {
        self.outbox.committed();
    }
}

pub(crate) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
