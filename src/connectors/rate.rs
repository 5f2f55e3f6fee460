//! A records-per-second limit for sources.

use std::time::{Duration, Instant};

/// Allows `per_second` records per second on average since the first call.
#[derive(Clone, Debug)]
pub struct RateLimit {
    per_second: f64,
    started: Option<Instant>,
    emitted: u64,
}

impl RateLimit {
    pub fn new(per_second: f64) -> Self {
        Self {
            per_second: per_second.max(f64::MIN_POSITIVE),
            started: None,
            emitted: 0,
        }
    }

    /// How many records may be emitted now (at most `max`); zero means wait
    /// [`RateLimit::wait`].
    pub fn allowed(&mut self, max: usize) -> usize {
        let started = *self.started.get_or_insert_with(Instant::now);
        let due = (started.elapsed().as_secs_f64() * self.per_second) as u64 + 1;
        (due.saturating_sub(self.emitted) as usize).min(max)
    }

    /// Records `n` emitted records.
    pub fn record(&mut self, n: usize) {
        self.emitted += n as u64;
    }

    /// How long until the next record is due.
    pub fn wait(&self) -> Duration {
        Duration::from_secs_f64((1.0 / self.per_second).clamp(0.000_1, 0.1))
    }
}
