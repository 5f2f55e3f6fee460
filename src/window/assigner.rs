//! Windows and which windows a timestamp belongs to (Flink's `TimeWindow` and its tumbling,
//! sliding and session assigners), as pure functions.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The time interval `[start, end)`, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimeWindow {
    pub start: i64,
    pub end: i64,
}

impl TimeWindow {
    pub fn new(start: i64, end: i64) -> Self {
        Self { start, end }
    }

    /// The largest timestamp in the window: its event-time timer fires when the watermark
    /// reaches this.
    pub fn max_timestamp(&self) -> i64 {
        self.end.saturating_sub(1)
    }

    /// Whether the two windows overlap or touch (session windows that do are merged).
    pub fn intersects(&self, other: &TimeWindow) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    /// The smallest window covering both.
    pub fn cover(&self, other: &TimeWindow) -> TimeWindow {
        TimeWindow::new(self.start.min(other.start), self.end.max(other.end))
    }
}

impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start, self.end)
    }
}

/// How records are grouped into windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowAssigner {
    /// Fixed-size, non-overlapping windows `[k·size + offset, (k+1)·size + offset)`.
    Tumbling { size: i64, offset: i64 },
    /// Windows of `size` starting every `slide` (a record is in `size / slide` of them).
    Sliding { size: i64, slide: i64, offset: i64 },
    /// Per key, activity separated by at least `gap` of inactivity: each record starts the
    /// window `[t, t + gap)`, and overlapping windows of a key merge.
    Session { gap: i64 },
}

/// Why a window definition is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be {expected}, found {found}")]
pub struct WindowSpecError {
    pub what: &'static str,
    pub expected: &'static str,
    pub found: String,
}

fn millis(what: &'static str, d: Duration) -> Result<i64, WindowSpecError> {
    match i64::try_from(d.as_millis()) {
        Ok(ms) if ms > 0 => Ok(ms),
        _ => Err(WindowSpecError {
            what,
            expected: "at least 1 ms",
            found: format!("{d:?}"),
        }),
    }
}

impl WindowAssigner {
    /// Tumbling windows of `size`.
    ///
    /// # Errors
    /// A size under 1 ms.
    pub fn tumbling(size: Duration) -> Result<Self, WindowSpecError> {
        Ok(Self::Tumbling {
            size: millis("the window size", size)?,
            offset: 0,
        })
    }

    /// Sliding windows of `size`, one starting every `slide`.
    ///
    /// # Errors
    /// A size or slide under 1 ms, or a slide larger than the size.
    pub fn sliding(size: Duration, slide: Duration) -> Result<Self, WindowSpecError> {
        let size_ms = millis("the window size", size)?;
        let slide_ms = millis("the window slide", slide)?;
        if slide_ms > size_ms {
            return Err(WindowSpecError {
                what: "the window slide",
                expected: "at most the window size",
                found: format!("{slide:?} with a size of {size:?}"),
            });
        }
        Ok(Self::Sliding {
            size: size_ms,
            slide: slide_ms,
            offset: 0,
        })
    }

    /// Session windows closed by a `gap` of inactivity.
    ///
    /// # Errors
    /// A gap under 1 ms.
    pub fn session(gap: Duration) -> Result<Self, WindowSpecError> {
        Ok(Self::Session {
            gap: millis("the session gap", gap)?,
        })
    }

    /// Whether windows of a key merge (sessions).
    pub fn is_merging(&self) -> bool {
        matches!(self, Self::Session { .. })
    }

    /// The windows a record at `timestamp` belongs to, latest start first.
    pub fn assign(&self, timestamp: i64) -> Vec<TimeWindow> {
        match *self {
            Self::Tumbling { size, offset } => {
                let start = window_start(timestamp, offset, size);
                vec![TimeWindow::new(start, start.saturating_add(size))]
            }
            Self::Sliding {
                size,
                slide,
                offset,
            } => {
                let mut windows = Vec::with_capacity((size / slide) as usize);
                let mut start = window_start(timestamp, offset, slide);
                while start > timestamp.saturating_sub(size) {
                    windows.push(TimeWindow::new(start, start.saturating_add(size)));
                    start -= slide;
                }
                windows
            }
            Self::Session { gap } => {
                vec![TimeWindow::new(timestamp, timestamp.saturating_add(gap))]
            }
        }
    }
}

/// The start of the window of `size` (aligned to `offset`) that holds `timestamp`, for any
/// timestamp, negative ones included.
pub fn window_start(timestamp: i64, offset: i64, size: i64) -> i64 {
    timestamp - (timestamp - offset).rem_euclid(size)
}

/// Session merging: `new` added to a key's `existing` windows (pairwise disjoint, as merging
/// keeps them). Returns the window `new` ends up in and the existing windows merged into it
/// (empty if `new` touched none). Windows that touch merge, and a merged window may reach
/// further ones, so this runs to a fixed point.
pub fn merge_into(existing: &[TimeWindow], new: TimeWindow) -> (TimeWindow, Vec<TimeWindow>) {
    let mut result = new;
    let mut merged: Vec<TimeWindow> = Vec::new();
    loop {
        let before = merged.len();
        for w in existing {
            if !merged.contains(w) && w.intersects(&result) {
                result = result.cover(w);
                merged.push(*w);
            }
        }
        if merged.len() == before {
            break;
        }
    }
    merged.sort();
    (result, merged)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn tumbling_windows_hold_their_start_and_not_their_end() {
        let w = WindowAssigner::tumbling(ms(1000)).unwrap();
        assert_eq!(w.assign(0), vec![TimeWindow::new(0, 1000)]);
        assert_eq!(w.assign(999), vec![TimeWindow::new(0, 1000)]);
        assert_eq!(w.assign(1000), vec![TimeWindow::new(1000, 2000)]);
        assert_eq!(w.assign(-1), vec![TimeWindow::new(-1000, 0)]);
        assert_eq!(TimeWindow::new(0, 1000).max_timestamp(), 999);
    }

    #[test]
    fn a_record_is_in_size_over_slide_sliding_windows() {
        let w = WindowAssigner::sliding(ms(1000), ms(250)).unwrap();
        assert_eq!(
            w.assign(1100),
            vec![
                TimeWindow::new(1000, 2000),
                TimeWindow::new(750, 1750),
                TimeWindow::new(500, 1500),
                TimeWindow::new(250, 1250),
            ]
        );
    }

    #[test]
    fn bad_window_definitions_say_what_is_wrong() {
        assert_eq!(
            WindowAssigner::tumbling(ms(0)).unwrap_err().to_string(),
            "the window size must be at least 1 ms, found 0ns"
        );
        let e = WindowAssigner::sliding(ms(10), ms(20)).unwrap_err();
        assert!(e.to_string().contains("at most the window size"), "{e}");
        assert!(WindowAssigner::session(ms(0)).is_err());
    }

    #[test]
    fn a_session_window_bridging_two_merges_all_three() {
        let existing = [TimeWindow::new(0, 10), TimeWindow::new(12, 20)];
        let (w, merged) = merge_into(&existing, TimeWindow::new(9, 13));
        assert_eq!(w, TimeWindow::new(0, 20));
        assert_eq!(merged, existing.to_vec());
        let (w, merged) = merge_into(&existing, TimeWindow::new(30, 40));
        assert_eq!((w, merged), (TimeWindow::new(30, 40), vec![]));
    }

    proptest! {
        /// Every window a timestamp is assigned contains it, and it is in no other window of
        /// the assigner's grid.
        #[test]
        fn assigned_windows_contain_the_timestamp(
            t in -1_000_000i64..1_000_000,
            size in 1i64..5000,
            slide_div in 1i64..10,
        ) {
            let slide = (size / slide_div).max(1);
            let tumbling = WindowAssigner::Tumbling { size, offset: 0 };
            let sliding = WindowAssigner::Sliding { size, slide, offset: 0 };
            for w in tumbling.assign(t).into_iter().chain(sliding.assign(t)) {
                prop_assert!(w.start <= t && t < w.end, "{w} does not hold {t}");
            }
            prop_assert_eq!(tumbling.assign(t).len(), 1);
            let expected = (0..=size / slide + 1)
                .map(|k| window_start(t, 0, slide) - k * slide)
                .filter(|s| *s > t - size)
                .count();
            prop_assert_eq!(sliding.assign(t).len(), expected);
        }

        /// Adding session windows one by one keeps a key's windows disjoint, and they cover
        /// exactly the union of the added intervals' merged groups.
        #[test]
        fn session_merging_keeps_windows_disjoint(
            starts in prop::collection::vec(0i64..500, 1..40),
            gap in 1i64..30,
        ) {
            let mut windows: Vec<TimeWindow> = Vec::new();
            for s in &starts {
                let (w, merged) = merge_into(&windows, TimeWindow::new(*s, s + gap));
                windows.retain(|x| !merged.contains(x));
                windows.push(w);
            }
            for (i, a) in windows.iter().enumerate() {
                for b in &windows[i + 1..] {
                    prop_assert!(!a.intersects(b), "{a} and {b} should have merged");
                }
            }
            for s in &starts {
                prop_assert!(windows.iter().any(|w| w.start <= *s && s + gap <= w.end));
            }
        }
    }
}
