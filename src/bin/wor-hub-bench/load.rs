//! Load generation and its figures: a measurement runs an operation from concurrent
//! tasks for a time or a number of requests and keeps each success's latency.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a measurement runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limit {
    For(Duration),
    Count(u64),
}

impl Limit {
    pub(crate) fn describe(self) -> String {
        match self {
            Self::For(d) => format!("{} s", d.as_secs_f64()),
            Self::Count(n) => format!("{n} requests"),
        }
    }
}

/// Successes (with their latencies) and failures of one measurement.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) latencies: Vec<Duration>,
    pub(crate) failed: u64,
    pub(crate) first_failure: Option<String>,
    pub(crate) elapsed: Duration,
}

impl Outcome {
    pub(crate) fn ok(&self) -> u64 {
        self.latencies.len() as u64
    }

    pub(crate) fn rate(&self) -> f64 {
        self.ok() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency percentile of the successful requests (sorted by [`load`]).
    pub(crate) fn pct(&self, p: usize) -> Duration {
        let n = self.latencies.len();
        if n == 0 {
            return Duration::ZERO;
        }
        self.latencies[(n * p / 100).min(n - 1)]
    }

    pub(crate) fn line(&self, what: &str, unit: &str) -> String {
        let mut line = format!(
            "{what}: {} {unit} in {:.1} s = {:.1}/s, p50 {}, p99 {}",
            self.ok(),
            self.elapsed.as_secs_f64(),
            self.rate(),
            ms(self.pct(50)),
            ms(self.pct(99)),
        );
        if self.failed > 0 {
            line.push_str(&format!(
                ", {} FAILED (first: {})",
                self.failed,
                self.first_failure.as_deref().unwrap_or("?")
            ));
        }
        line
    }
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Runs `op(i)` for i = 0, 1, 2, .. from `concurrency` tasks until `limit`.
pub(crate) async fn load<F, Fut>(concurrency: usize, limit: Limit, op: F) -> Outcome
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let (deadline, count) = match limit {
        Limit::For(d) => (Some(started + d), u64::MAX),
        Limit::Count(n) => (None, n),
    };
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (op, next) = (op.clone(), next.clone());
            tokio::spawn(async move {
                let mut out = Outcome::default();
                loop {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let sent = Instant::now();
                    match op(i).await {
                        Ok(()) => out.latencies.push(sent.elapsed()),
                        Err(e) => {
                            out.failed += 1;
                            out.first_failure.get_or_insert(e);
                        }
                    }
                }
                out
            })
        })
        .collect();
    let mut all = Outcome::default();
    for task in tasks {
        match task.await {
            Ok(out) => {
                all.latencies.extend(out.latencies);
                all.failed += out.failed;
                if all.first_failure.is_none() {
                    all.first_failure = out.first_failure;
                }
            }
            Err(e) => {
                all.failed += 1;
                all.first_failure
                    .get_or_insert(format!("client task failed: {e}"));
            }
        }
    }
    all.elapsed = started.elapsed();
    all.latencies.sort();
    all
}
