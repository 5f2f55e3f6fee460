//! [`RateMeter`]: records per second from a monotonically growing count, as Flink's `MeterView`
//! does it — the difference over a sliding window of samples. Pure: the caller passes the time,
//! so it is tested with a fake clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back a rate looks.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Samples closer together than this are not kept (a fast poller does not shrink the window).
const SPACING: Duration = Duration::from_millis(500);

/// The samples of one counter.
#[derive(Debug, Default)]
pub struct RateMeter {
    samples: VecDeque<(Instant, u64)>,
}

impl RateMeter {
    /// A meter whose count was `count` at `start` (so the first reading has a rate).
    pub fn starting_at(start: Instant, count: u64) -> Self {
        Self {
            samples: VecDeque::from([(start, count)]),
        }
    }

    /// Records `count` at `now` and returns the rate per second over the window (0 until there
    /// are two samples some time apart).
    pub fn observe(&mut self, now: Instant, count: u64) -> f64 {
        if self
            .samples
            .back()
            .is_none_or(|&(t, _)| now.saturating_duration_since(t) >= SPACING)
        {
            self.samples.push_back((now, count));
        }
        // Keep one sample at or beyond the window's start, so the window is always covered.
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|&(t, _)| now.saturating_duration_since(t) >= WINDOW)
        {
            self.samples.pop_front();
        }
        let Some(&(t0, c0)) = self.samples.front() else {
            return 0.0;
        };
        let elapsed = now.saturating_duration_since(t0).as_secs_f64();
        if elapsed <= 0.0 {
            return 0.0;
        }
        count.saturating_sub(c0) as f64 / elapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_the_growth_over_the_window() {
        let t = Instant::now();
        let mut m = RateMeter::default();
        assert_eq!(m.observe(t, 0), 0.0, "one sample has no rate");
        assert_eq!(m.observe(t + Duration::from_secs(1), 1000), 1000.0);
        assert_eq!(m.observe(t + Duration::from_secs(2), 3000), 1500.0);
        // Sampled rarely: the rate reaches back to the newest sample before the window.
        m.observe(t + Duration::from_secs(29), 3000);
        assert_eq!(m.observe(t + Duration::from_secs(30), 3500), 500.0 / 28.0);
    }

    #[test]
    fn a_meter_started_at_zero_has_a_rate_at_its_first_reading() {
        let t = Instant::now();
        let mut m = RateMeter::starting_at(t, 0);
        assert_eq!(m.observe(t + Duration::from_secs(2), 500), 250.0);
    }

    #[test]
    fn a_stalled_counter_has_rate_zero_once_the_window_passed() {
        let t = Instant::now();
        let mut m = RateMeter::default();
        for s in 0..5 {
            m.observe(t + Duration::from_secs(s), s * 100);
        }
        for s in 5..20 {
            m.observe(t + Duration::from_secs(s), 400);
        }
        assert_eq!(m.observe(t + Duration::from_secs(20), 400), 0.0);
    }

    #[test]
    fn samples_closer_than_the_spacing_are_not_kept() {
        let t = Instant::now();
        let mut m = RateMeter::default();
        for ms in 0..100 {
            m.observe(t + Duration::from_millis(ms), ms);
        }
        assert_eq!(m.samples.len(), 1);
    }
}
