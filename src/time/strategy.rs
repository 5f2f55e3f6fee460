//! [`WatermarkStrategy`]: how a source assigns timestamps to its records and generates
//! watermarks (Flink's `WatermarkStrategy`).
//!
//! ```ignore
//! let strategy = WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_secs(2))
//!     .with_timestamp_assigner(|e: &Event| e.time_ms)
//!     .with_idleness(Duration::from_secs(30));
//! env.add_source_with_watermarks("events", source, strategy);
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Extracts a record's event time, in milliseconds.
pub type TimestampFn<T> = Arc<dyn Fn(&T) -> i64 + Send + Sync>;

/// How watermarks follow the timestamps seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatermarkGenerator {
    /// Records arrive at most this late: the watermark is the largest timestamp seen minus the
    /// bound minus 1 ms (Flink's `BoundedOutOfOrdernessWatermarks`).
    BoundedOutOfOrderness(Duration),
    /// Timestamps never decrease: the bound is zero (Flink's `forMonotonousTimestamps`).
    Monotonous,
}

impl WatermarkGenerator {
    /// The out-of-orderness bound in milliseconds.
    pub fn bound_ms(self) -> i64 {
        match self {
            WatermarkGenerator::BoundedOutOfOrderness(d) => {
                i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
            }
            WatermarkGenerator::Monotonous => 0,
        }
    }
}

/// A source's timestamps and watermarks: the generator, the timestamp assigner, and after how
/// long without records a source subtask declares itself idle.
pub struct WatermarkStrategy<T> {
    pub generator: WatermarkGenerator,
    /// `None` until [`Self::with_timestamp_assigner`]: then the watermark never advances.
    pub timestamps: Option<TimestampFn<T>>,
    pub idleness: Option<Duration>,
}

impl<T> Clone for WatermarkStrategy<T> {
    fn clone(&self) -> Self {
        Self {
            generator: self.generator,
            timestamps: self.timestamps.clone(),
            idleness: self.idleness,
        }
    }
}

impl<T> fmt::Debug for WatermarkStrategy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatermarkStrategy")
            .field("generator", &self.generator)
            .field("timestamps", &self.timestamps.is_some())
            .field("idleness", &self.idleness)
            .finish()
    }
}

impl<T> WatermarkStrategy<T> {
    /// Records arrive at most `bound` out of order.
    pub fn for_bounded_out_of_orderness(bound: Duration) -> Self {
        Self {
            generator: WatermarkGenerator::BoundedOutOfOrderness(bound),
            timestamps: None,
            idleness: None,
        }
    }

    /// Timestamps never decrease.
    pub fn for_monotonous_timestamps() -> Self {
        Self {
            generator: WatermarkGenerator::Monotonous,
            timestamps: None,
            idleness: None,
        }
    }

    /// Each record's event time in milliseconds.
    pub fn with_timestamp_assigner(
        mut self,
        assigner: impl Fn(&T) -> i64 + Send + Sync + 'static,
    ) -> Self {
        self.timestamps = Some(Arc::new(assigner));
        self
    }

    /// A source subtask that produced no record for `timeout` is idle: its receivers stop
    /// waiting for its watermark until it produces records again.
    pub fn with_idleness(mut self, timeout: Duration) -> Self {
        self.idleness = Some(timeout);
        self
    }
}
