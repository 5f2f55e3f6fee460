//! The watermark and the in-band event that carries it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Event time has reached `.0` milliseconds: no record with a timestamp at or below it is
/// expected any more (a later one is late). Totally ordered; a stream's watermarks only rise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Watermark(pub i64);

impl Watermark {
    /// Before any event time (Flink's `Long.MIN_VALUE` watermark).
    pub const MIN: Watermark = Watermark(i64::MIN);
    /// The end of event time: everything is complete (Flink's `Long.MAX_VALUE` watermark).
    pub const MAX: Watermark = Watermark(i64::MAX);

    /// Milliseconds of event time.
    pub fn millis(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Watermark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Watermark::MIN => f.write_str("MIN"),
            Watermark::MAX => f.write_str("MAX"),
            Watermark(ms) => write!(f, "{ms}"),
        }
    }
}

/// What a channel carries about event time, in-band between batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WatermarkEvent {
    /// The sender's watermark advanced to this; it also makes an idle sender active again.
    Advance(Watermark),
    /// The sender is idle: it emits nothing for now, and its receivers leave it out of their
    /// minimum until its next watermark (Flink's `WatermarkStatus.IDLE`).
    Idle,
}
