//! [`SubtaskMetrics`]: the counters one subtask keeps while it runs — shared atomics, created at
//! deploy and handed to the subtask's `Task`, incremented once per batch (never per record) and
//! read by the REST API and `/metrics` through a [`SubtaskSnapshot`].
//!
//! - records in: records of the batches the subtask received; records out: of the batches it sent;
//! - busy time: time spent running the chain on batches (and polling a source);
//! - the current watermark: the last one the subtask forwarded (event time);
//! - back-pressured time: time during which some output channel had no credit left, so the
//!   subtask could not send (Flink's `backPressuredTimeMsPerSecond`, accumulated).
//!
//! A chain's counters are the subtask's: records in enter its head, records out leave its tail.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use std::sync::Mutex;
use std::time::{Duration, Instant};
use weir::time::Watermark;

use super::rate::RateMeter;

/// One subtask's counters. Cumulative across restarts (a new attempt gets the same instance).
#[derive(Debug)]
pub struct SubtaskMetrics {
    /// Time zero of the `blocked_since` stamps.
    epoch: Instant,
    records_in: AtomicU64,
    records_out: AtomicU64,
    busy_nanos: AtomicU64,
    backpressured_nanos: AtomicU64,
    /// Nanoseconds after `epoch` (plus one) since the output has had no credit; 0: it has.
    blocked_since: AtomicU64,
    /// The subtask's current watermark in milliseconds (the last it handed to its chain and
    /// forwarded); `i64::MIN` before the first (Flink reports `Long.MIN_VALUE` then too).
    watermark: AtomicI64,
    /// Read side only: rates over a window.
    rates: Mutex<(RateMeter, RateMeter)>,
}

/// What a reader sees of a subtask at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SubtaskSnapshot {
    pub records_in: u64,
    pub records_out: u64,
    pub records_in_per_second: f64,
    pub records_out_per_second: f64,
    pub busy: Duration,
    /// Including the current stretch, if the output is blocked now.
    pub backpressured: Duration,
    pub backpressured_now: bool,
    /// The current watermark, if one has been forwarded.
    pub watermark: Option<i64>,
}

impl Default for SubtaskMetrics {
    fn default() -> Self {
        let epoch = Instant::now();
        Self {
            epoch,
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            busy_nanos: AtomicU64::new(0),
            backpressured_nanos: AtomicU64::new(0),
            blocked_since: AtomicU64::new(0),
            watermark: AtomicI64::new(i64::MIN),
            rates: Mutex::new((
                RateMeter::starting_at(epoch, 0),
                RateMeter::starting_at(epoch, 0),
            )),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl SubtaskMetrics {
    /// A batch of `records` arrived.
    pub fn received(&self, records: usize) {
        self.records_in.fetch_add(records as u64, Ordering::Relaxed);
    }

    /// A batch of `records` was sent.
    pub fn sent(&self, records: usize) {
        self.records_out
            .fetch_add(records as u64, Ordering::Relaxed);
    }

    /// The chain ran for `since.elapsed()` on a batch (or a source poll).
    pub fn busy_since(&self, since: Instant) {
        self.busy_nanos
            .fetch_add(nanos(since.elapsed()), Ordering::Relaxed);
    }

    /// The subtask's watermark advanced to `watermark`.
    pub fn watermark(&self, watermark: Watermark) {
        self.watermark.store(watermark.0, Ordering::Relaxed);
    }

    /// An output channel ran out of credit (no-op if the output is already blocked).
    pub fn output_blocked(&self) {
        if self.blocked_since.load(Ordering::Relaxed) == 0 {
            let stamp = nanos(self.epoch.elapsed()).saturating_add(1);
            self.blocked_since.store(stamp, Ordering::Relaxed);
        }
    }

    /// Every output channel has credit again (no-op if it was not blocked).
    pub fn output_unblocked(&self) {
        let since = self.blocked_since.swap(0, Ordering::Relaxed);
        if since != 0 {
            let now = nanos(self.epoch.elapsed()).saturating_add(1);
            self.backpressured_nanos
                .fetch_add(now.saturating_sub(since), Ordering::Relaxed);
        }
    }

    /// The counters now, with rates over [`super::rate::WINDOW`].
    pub fn snapshot(&self) -> SubtaskSnapshot {
        let now = Instant::now();
        let records_in = self.records_in.load(Ordering::Relaxed);
        let records_out = self.records_out.load(Ordering::Relaxed);
        let (rate_in, rate_out) = {
            let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
            (
                rates.0.observe(now, records_in),
                rates.1.observe(now, records_out),
            )
        };
        let since = self.blocked_since.load(Ordering::Relaxed);
        let current = if since == 0 {
            0
        } else {
            nanos(now.saturating_duration_since(self.epoch))
                .saturating_add(1)
                .saturating_sub(since)
        };
        SubtaskSnapshot {
            records_in,
            records_out,
            records_in_per_second: rate_in,
            records_out_per_second: rate_out,
            busy: Duration::from_nanos(self.busy_nanos.load(Ordering::Relaxed)),
            backpressured: Duration::from_nanos(
                self.backpressured_nanos
                    .load(Ordering::Relaxed)
                    .saturating_add(current),
            ),
            backpressured_now: since != 0,
            watermark: match self.watermark.load(Ordering::Relaxed) {
                i64::MIN => None,
                ms => Some(ms),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_batch() {
        let m = SubtaskMetrics::default();
        m.received(1024);
        m.received(10);
        m.sent(7);
        let s = m.snapshot();
        assert_eq!((s.records_in, s.records_out), (1034, 7));
        assert!(!s.backpressured_now);
        assert_eq!(s.backpressured, Duration::ZERO);
    }

    #[test]
    fn back_pressure_counts_from_blocked_to_unblocked_and_includes_the_current_stretch() {
        let m = SubtaskMetrics::default();
        m.output_unblocked();
        assert_eq!(m.snapshot().backpressured, Duration::ZERO, "never blocked");
        m.output_blocked();
        let first = m.blocked_since.load(Ordering::Relaxed);
        m.output_blocked();
        assert_eq!(
            m.blocked_since.load(Ordering::Relaxed),
            first,
            "blocking again keeps the start of the stretch"
        );
        let during = m.snapshot();
        assert!(during.backpressured_now);
        m.output_unblocked();
        let after = m.snapshot();
        assert!(!after.backpressured_now);
        assert!(after.backpressured >= during.backpressured);
        assert_eq!(
            m.blocked_since.load(Ordering::Relaxed),
            0,
            "the stretch was added up"
        );
    }
}
