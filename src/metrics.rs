//! The operator's Prometheus metrics (README "Metrics"), served at `GET /metrics`.
//!
//! One registry per [`crate::app::App`] (not the process-global one): several servers
//! in one process (the tests) count apart. Labels carry only fixed vocabularies:
//! HTTP method, route pattern (never the raw path), status code, and FHIR status
//! codes; never an id, a BSN, a name or other patient data.

use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::store::{OperationsCounts, PoolState};

/// The content type of the text exposition format.
pub const TEXT_FORMAT: &str = prometheus::TEXT_FORMAT;

/// The route label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// The status label of a code outside the known vocabulary.
const OTHER: &str = "other";

/// R4 Task.status codes.
pub const TASK_STATUSES: &[&str] = &[
    "draft",
    "requested",
    "received",
    "accepted",
    "rejected",
    "ready",
    "cancelled",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "entered-in-error",
];

/// R4 ServiceRequest.status codes.
pub const SERVICE_REQUEST_STATUSES: &[&str] = &[
    "draft",
    "active",
    "on-hold",
    "revoked",
    "completed",
    "entered-in-error",
    "unknown",
];

/// Subscription statuses the outbox holds.
pub const SUBSCRIPTION_STATUSES: &[&str] = &["requested", "active", "error", "off"];

const WAIT_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Every metric of one server.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    pool_connections: IntGauge,
    pool_idle: IntGauge,
    pool_max: IntGauge,
    write_lock_wait: Histogram,
    deliveries: IntCounterVec,
    outbox_subscriptions: IntGaugeVec,
    outbox_backlog: IntGaugeVec,
    outbox_failing: IntGaugeVec,
    service_requests: IntGaugeVec,
    tasks: IntGaugeVec,
    unroutable: IntGauge,
    overdue: IntGauge,
    /// When the database counts were last read (see [`Metrics::counts_due`]).
    counted_at: std::sync::Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn name(s: &str) -> String {
    format!("wor_hub_{s}")
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let http_labels = &["method", "route", "status"];
        let http_requests = IntCounterVec::new(
            Opts::new(
                name("http_requests_total"),
                "HTTP requests answered, by method, route pattern (`unmatched` when no route \
                 matched) and status code",
            ),
            http_labels,
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                name("http_request_duration_seconds"),
                "Time from a request's arrival to its response head, by method, route pattern \
                 and status code",
            ),
            http_labels,
        )
        .expect("valid metric");
        let gauge = |n: &str, help: &str| IntGauge::new(name(n), help).expect("valid metric");
        let gauge_vec = |n: &str, help: &str, label: &str| {
            IntGaugeVec::new(Opts::new(name(n), help), &[label]).expect("valid metric")
        };
        let metrics = Self {
            pool_connections: gauge(
                "db_pool_connections",
                "Database connections the pool holds open (busy and idle)",
            ),
            pool_idle: gauge(
                "db_pool_idle_connections",
                "Idle database connections in the pool",
            ),
            pool_max: gauge(
                "db_pool_max_connections",
                "Most database connections the pool opens (--db-pool-size)",
            ),
            write_lock_wait: Histogram::with_opts(
                HistogramOpts::new(
                    name("db_write_lock_wait_seconds"),
                    "SQLite: how long a unit of work waited for the write lock (the in-process \
                     writer lock, then the database's); no observations on PostgreSQL",
                )
                .buckets(WAIT_BUCKETS.to_vec()),
            )
            .expect("valid metric"),
            deliveries: IntCounterVec::new(
                Opts::new(
                    name("notification_deliveries_total"),
                    "Notification delivery attempts by this instance (handshakes, events, \
                     heartbeats), by outcome: delivered or failed",
                ),
                &["outcome"],
            )
            .expect("valid metric"),
            outbox_subscriptions: gauge_vec(
                "outbox_subscriptions",
                "Subscriptions in the notification outbox, by status",
                "status",
            ),
            outbox_backlog: gauge_vec(
                "outbox_backlog_events",
                "Notification events recorded and not yet delivered, by Subscription status",
                "status",
            ),
            outbox_failing: gauge_vec(
                "outbox_failing_subscriptions",
                "Subscriptions whose last delivery attempt failed, by status",
                "status",
            ),
            service_requests: gauge_vec(
                "service_requests",
                "ServiceRequests (referrals) by status",
                "status",
            ),
            tasks: gauge_vec("tasks", "Tasks by status", "status"),
            unroutable: gauge(
                "tasks_unroutable",
                "Open Tasks (not completed, cancelled, failed, rejected or entered-in-error) \
                 with businessStatus unroutable or without owner: a coordinator must assign one",
            ),
            overdue: gauge(
                "tasks_overdue",
                "Tasks tagged overdue (https://wor-hub.nl/fhir/CodeSystem/task-flag): past \
                 the contact deadline without contact",
            ),
            registry,
            http_requests,
            http_duration,
            counted_at: std::sync::Mutex::new(None),
        };
        metrics.register_all();
        for outcome in ["delivered", "failed"] {
            metrics.deliveries.with_label_values(&[outcome]);
        }
        metrics
    }

    fn register_all(&self) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.http_requests.clone()),
            Box::new(self.http_duration.clone()),
            Box::new(self.pool_connections.clone()),
            Box::new(self.pool_idle.clone()),
            Box::new(self.pool_max.clone()),
            Box::new(self.write_lock_wait.clone()),
            Box::new(self.deliveries.clone()),
            Box::new(self.outbox_subscriptions.clone()),
            Box::new(self.outbox_backlog.clone()),
            Box::new(self.outbox_failing.clone()),
            Box::new(self.service_requests.clone()),
            Box::new(self.tasks.clone()),
            Box::new(self.unroutable.clone()),
            Box::new(self.overdue.clone()),
        ];
        for c in collectors {
            self.registry.register(c).expect("metric names are unique");
        }
    }

    /// One HTTP request answered. `route` is the matched route's pattern, or
    /// [`UNMATCHED`]; never the request's path.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.http_requests.with_label_values(&labels).inc();
        self.http_duration
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// What the store calls with each SQLite writer's wait for the write lock.
    pub fn write_wait_observer(&self) -> crate::store::WaitObserver {
        let histogram = self.write_lock_wait.clone();
        std::sync::Arc::new(move |waited: Duration| histogram.observe(waited.as_secs_f64()))
    }

    /// One notification delivery attempt ended.
    pub fn delivery(&self, delivered: bool) {
        let outcome = if delivered { "delivered" } else { "failed" };
        self.deliveries.with_label_values(&[outcome]).inc();
    }

    pub fn set_pool(&self, pool: PoolState) {
        self.pool_connections.set(i64::from(pool.connections));
        self.pool_idle.set(i64::from(pool.idle));
        self.pool_max.set(i64::from(pool.max_size));
    }

    /// Whether the database counts are older than `max_age` (or were never read);
    /// `true` also marks them as being read now, so concurrent scrapes read once.
    pub fn counts_due(&self, max_age: Duration) -> bool {
        let mut at = self
            .counted_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        if at.is_some_and(|t| now.duration_since(t) < max_age) {
            return false;
        }
        *at = Some(now);
        true
    }

    /// Forgets when the counts were read (after a failed read: the next scrape retries).
    pub fn counts_failed(&self) {
        *self
            .counted_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// Sets the gauges of the database counts. Statuses outside the known codes are
    /// counted under `other`; known ones without resources show 0.
    pub fn set_counts(&self, counts: &OperationsCounts) {
        set_by_code(
            &self.service_requests,
            SERVICE_REQUEST_STATUSES,
            counts
                .by_status
                .iter()
                .filter(|c| c.resource_type == "ServiceRequest")
                .map(|c| (c.code.as_str(), c.count)),
        );
        set_by_code(
            &self.tasks,
            TASK_STATUSES,
            counts
                .by_status
                .iter()
                .filter(|c| c.resource_type == "Task")
                .map(|c| (c.code.as_str(), c.count)),
        );
        set_by_code(
            &self.outbox_subscriptions,
            SUBSCRIPTION_STATUSES,
            counts
                .outbox
                .iter()
                .map(|o| (o.status.as_str(), o.subscriptions)),
        );
        set_by_code(
            &self.outbox_backlog,
            SUBSCRIPTION_STATUSES,
            counts.outbox.iter().map(|o| (o.status.as_str(), o.backlog)),
        );
        set_by_code(
            &self.outbox_failing,
            SUBSCRIPTION_STATUSES,
            counts.outbox.iter().map(|o| (o.status.as_str(), o.failing)),
        );
        self.unroutable.set(counts.unroutable_tasks);
        self.overdue.set(counts.overdue_tasks);
    }

    /// Every metric in the text exposition format ([`TEXT_FORMAT`]).
    pub fn render(&self) -> Result<String, String> {
        prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .map_err(|e| e.to_string())
    }
}

/// Sets `gauges` from `(code, count)` pairs: known codes by name (0 when absent), the
/// rest summed under `other`.
fn set_by_code<'a>(
    gauges: &IntGaugeVec,
    known: &[&str],
    counts: impl Iterator<Item = (&'a str, i64)>,
) {
    gauges.reset();
    for code in known {
        gauges.with_label_values(&[code]).set(0);
    }
    for (code, n) in counts {
        let label = if known.contains(&code) { code } else { OTHER };
        gauges.with_label_values(&[label]).add(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CodeCount, OutboxStatus};

    #[test]
    fn unknown_codes_are_counted_as_other_and_known_ones_start_at_zero() {
        let m = Metrics::new();
        m.set_counts(&OperationsCounts {
            outbox: vec![OutboxStatus {
                status: "active".into(),
                subscriptions: 2,
                backlog: 5,
                failing: 1,
            }],
            by_status: vec![
                CodeCount {
                    resource_type: "Task".into(),
                    code: "requested".into(),
                    count: 3,
                },
                CodeCount {
                    resource_type: "Task".into(),
                    code: "Patient/123 <bsn>".into(),
                    count: 1,
                },
            ],
            unroutable_tasks: 1,
            overdue_tasks: 0,
        });
        let text = m.render().unwrap();
        assert!(
            text.contains("wor_hub_tasks{status=\"requested\"} 3"),
            "{text}"
        );
        assert!(text.contains("wor_hub_tasks{status=\"other\"} 1"), "{text}");
        assert!(
            text.contains("wor_hub_tasks{status=\"completed\"} 0"),
            "{text}"
        );
        assert!(!text.contains("Patient/123"), "{text}");
        assert!(text.contains("wor_hub_outbox_backlog_events{status=\"active\"} 5"));
        assert!(text.contains("wor_hub_outbox_failing_subscriptions{status=\"active\"} 1"));
        assert!(text.contains("wor_hub_tasks_unroutable 1"));
        assert!(text.contains("wor_hub_notification_deliveries_total{outcome=\"failed\"} 0"));
    }

    #[test]
    fn requests_are_labelled_by_pattern() {
        let m = Metrics::new();
        m.observe_request("GET", "/fhir/{type}/{id}", 200, Duration::from_millis(3));
        let text = m.render().unwrap();
        assert!(text.contains(
            "wor_hub_http_requests_total{method=\"GET\",route=\"/fhir/{type}/{id}\",status=\"200\"} 1"
        ), "{text}");
        assert!(text.contains("# TYPE wor_hub_http_request_duration_seconds histogram"));
    }
}
