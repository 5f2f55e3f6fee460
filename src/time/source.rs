//! [`SourceWatermarks`]: one source subtask's watermark generation, a pure state machine.
//!
//! After every poll the source runtime reports the largest timestamp among the polled records
//! (if any) with the time of the poll; the machine answers what to emit after that batch: the
//! new watermark when it advanced, `Idle` when no record came for the idleness timeout. When
//! the source is exhausted its watermark goes to [`Watermark::MAX`] (end of event time). The
//! current watermark is snapshotted with the source and restored: a restored source never emits
//! a lower one, and emits the restored one on its first poll so that receivers need not wait.

use std::time::{Duration, Instant};

use super::strategy::WatermarkGenerator;
use super::watermark::{Watermark, WatermarkEvent};

/// One source subtask's watermark generation. See the module docs.
#[derive(Clone, Debug)]
pub struct SourceWatermarks {
    bound_ms: i64,
    idleness: Option<Duration>,
    /// The largest timestamp seen.
    max_timestamp: Option<i64>,
    /// The newest watermark emitted (or restored).
    current: Option<Watermark>,
    /// A restored watermark not emitted yet.
    restored_unsent: bool,
    /// When the last record was polled (or the machine was created).
    last_record: Instant,
    idle: bool,
}

impl SourceWatermarks {
    /// A source subtask starting at `now`.
    pub fn new(generator: WatermarkGenerator, idleness: Option<Duration>, now: Instant) -> Self {
        Self {
            bound_ms: generator.bound_ms(),
            idleness,
            max_timestamp: None,
            current: None,
            restored_unsent: false,
            last_record: now,
            idle: false,
        }
    }

    /// The restored watermark (the source's snapshot held it).
    pub fn restore(&mut self, watermark: Watermark) {
        if Some(watermark) > self.current {
            self.current = Some(watermark);
            self.restored_unsent = true;
        }
    }

    /// The newest watermark emitted or restored: what the snapshot holds.
    pub fn current(&self) -> Option<Watermark> {
        self.current
    }

    /// A poll at `now` produced records whose largest timestamp is `max_timestamp` (`None`: no
    /// records). Returns what to emit after the batch.
    pub fn on_poll(&mut self, max_timestamp: Option<i64>, now: Instant) -> Option<WatermarkEvent> {
        let Some(ts) = max_timestamp else {
            return self.on_quiet(now);
        };
        self.last_record = now;
        let was_idle = std::mem::replace(&mut self.idle, false);
        let max = self.max_timestamp.map_or(ts, |m| m.max(ts));
        self.max_timestamp = Some(max);
        let candidate = Watermark(max.saturating_sub(self.bound_ms).saturating_sub(1));
        if Some(candidate) > self.current {
            self.current = Some(candidate);
            self.restored_unsent = false;
            return Some(WatermarkEvent::Advance(candidate));
        }
        if was_idle || std::mem::take(&mut self.restored_unsent) {
            // Active again (or just restored): say where it stands.
            return self.current.map(WatermarkEvent::Advance);
        }
        None
    }

    fn on_quiet(&mut self, now: Instant) -> Option<WatermarkEvent> {
        if std::mem::take(&mut self.restored_unsent) {
            return self.current.map(WatermarkEvent::Advance);
        }
        let timeout = self.idleness?;
        if !self.idle && now.saturating_duration_since(self.last_record) >= timeout {
            self.idle = true;
            return Some(WatermarkEvent::Idle);
        }
        None
    }

    /// The source has no more records: the end of event time.
    pub fn on_exhausted(&mut self) -> Option<WatermarkEvent> {
        if self.current == Some(Watermark::MAX) {
            return None;
        }
        self.current = Some(Watermark::MAX);
        self.idle = false;
        self.restored_unsent = false;
        Some(WatermarkEvent::Advance(Watermark::MAX))
    }
}

/// When a source asks its [`SourceWatermarks`] what to emit: at most once per interval
/// (Flink's `pipeline.auto-watermark-interval`), always when it is exhausted. Between two
/// asks the polled batches' largest timestamp accumulates, so a watermark is only delayed,
/// never lost; so is the idleness detection (by at most one interval). A zero interval asks
/// after every poll.
#[derive(Clone, Copy, Debug)]
pub struct WatermarkPacer {
    interval: Duration,
    last: Option<Instant>,
}

impl WatermarkPacer {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
        }
    }

    /// Whether to ask after the poll at `now`; if so, the interval starts again.
    pub fn due(&mut self, now: Instant, exhausted: bool) -> bool {
        let due = exhausted
            || self
                .last
                .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if due {
            self.last = Some(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_asks_once_per_interval_and_always_at_the_end() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut p = WatermarkPacer::new(ms(200));
        assert!(p.due(t, false), "the first poll");
        assert!(!p.due(t + ms(199), false));
        assert!(p.due(t + ms(200), false));
        assert!(!p.due(t + ms(201), false));
        assert!(p.due(t + ms(202), true), "exhausted");
        let mut every = WatermarkPacer::new(Duration::ZERO);
        assert!(every.due(t, false) && every.due(t, false));
    }

    fn adv(ms: i64) -> Option<WatermarkEvent> {
        Some(WatermarkEvent::Advance(Watermark(ms)))
    }

    fn bounded(ms: u64) -> WatermarkGenerator {
        WatermarkGenerator::BoundedOutOfOrderness(Duration::from_millis(ms))
    }

    #[test]
    fn bounded_out_of_orderness_trails_the_largest_timestamp() {
        let t = Instant::now();
        let mut s = SourceWatermarks::new(bounded(100), None, t);
        assert_eq!(s.on_poll(Some(1_000), t), adv(899));
        assert_eq!(s.on_poll(Some(950), t), None, "late record: no regression");
        assert_eq!(s.on_poll(Some(1_500), t), adv(1_399));
        assert_eq!(s.current(), Some(Watermark(1_399)));
    }

    #[test]
    fn monotonous_timestamps_trail_by_one_millisecond() {
        let t = Instant::now();
        let mut s = SourceWatermarks::new(WatermarkGenerator::Monotonous, None, t);
        assert_eq!(s.on_poll(Some(10), t), adv(9));
        assert_eq!(s.on_poll(Some(10), t), None);
        assert_eq!(s.on_poll(None, t), None);
    }

    #[test]
    fn no_records_for_the_idleness_timeout_makes_the_source_idle_once() {
        let t = Instant::now();
        let idle = Duration::from_secs(5);
        let mut s = SourceWatermarks::new(bounded(0), Some(idle), t);
        assert_eq!(s.on_poll(Some(100), t), adv(99));
        assert_eq!(s.on_poll(None, t + Duration::from_secs(4)), None);
        assert_eq!(
            s.on_poll(None, t + idle),
            Some(WatermarkEvent::Idle),
            "fake clock at the timeout"
        );
        assert_eq!(
            s.on_poll(None, t + Duration::from_secs(9)),
            None,
            "said once"
        );
        assert_eq!(
            s.on_poll(Some(50), t + Duration::from_secs(10)),
            adv(99),
            "a record makes it active again where it stood"
        );
        assert_eq!(s.on_poll(None, t + Duration::from_secs(14)), None);
    }

    #[test]
    fn without_idleness_a_quiet_source_never_goes_idle() {
        let t = Instant::now();
        let mut s = SourceWatermarks::new(bounded(0), None, t);
        assert_eq!(s.on_poll(None, t + Duration::from_secs(3600)), None);
    }

    #[test]
    fn a_restored_watermark_is_emitted_first_and_never_undercut() {
        let t = Instant::now();
        let mut s = SourceWatermarks::new(bounded(10), None, t);
        s.restore(Watermark(500));
        assert_eq!(s.on_poll(Some(400), t), adv(500));
        assert_eq!(s.on_poll(Some(505), t), None, "494 is behind 500");
        assert_eq!(s.on_poll(Some(600), t), adv(589));
        let mut quiet = SourceWatermarks::new(bounded(10), None, t);
        quiet.restore(Watermark(7));
        assert_eq!(
            quiet.on_poll(None, t),
            adv(7),
            "emitted even before a record"
        );
        assert_eq!(quiet.on_poll(None, t), None);
    }

    #[test]
    fn exhaustion_is_the_end_of_event_time() {
        let t = Instant::now();
        let mut s = SourceWatermarks::new(bounded(10), None, t);
        s.on_poll(Some(100), t);
        assert_eq!(
            s.on_exhausted(),
            Some(WatermarkEvent::Advance(Watermark::MAX))
        );
        assert_eq!(s.on_exhausted(), None);
        assert_eq!(s.current(), Some(Watermark::MAX));
    }
}
