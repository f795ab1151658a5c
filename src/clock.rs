//! The clock workflow deadlines are measured by. Production reads the system time;
//! tests move it forward to see what the service does days later.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::fhir::instant::now_micros;

/// System time plus an offset that only tests change. Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_micros: Arc<AtomicI64>,
}

impl Clock {
    /// Now, in microseconds since the Unix epoch.
    pub fn now_micros(&self) -> i64 {
        now_micros().saturating_add(self.offset_micros.load(Ordering::Relaxed))
    }

    /// Moves this clock (and its clones) forward.
    pub fn advance(&self, by: Duration) {
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.offset_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_offset() {
        let clock = Clock::default();
        let other = clock.clone();
        let before = other.now_micros();
        clock.advance(Duration::from_secs(86_400));
        assert!(other.now_micros() - before >= 86_400_000_000);
    }
}
