//! The live status of `weir run`: records in and out per second (from the job's source and sink
//! counters), checkpoints done and failed, and the last checkpoint's id, duration and size.
//! One line, rewritten in place on a terminal; a plain log line otherwise.

use std::time::Instant;

use weir::checkpoint::stats::CheckpointStats;
use weir::jobfile::JobMetrics;

use crate::JobState;

/// Turns counter readings into rates between two calls.
pub struct StatusLine {
    metrics: JobMetrics,
    last: Option<(Instant, u64, u64)>,
}

/// What one status line shows.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusFacts {
    pub status: String,
    pub in_per_second: f64,
    pub out_per_second: f64,
    pub completed: u64,
    pub failed: u64,
    pub restarts: u32,
    /// Id, end-to-end duration in ms, state size in bytes.
    pub last_checkpoint: Option<(u64, u64, u64)>,
    /// The lowest current watermark of any subtask that has one (event time), and its
    /// operator: how far event time has come through the whole job.
    pub low_watermark: Option<(i64, String)>,
}

impl StatusLine {
    pub fn new(metrics: JobMetrics) -> Self {
        Self {
            metrics,
            last: None,
        }
    }

    /// The facts now; rates are over the time since the previous call (0 on the first).
    pub fn sample(&mut self, state: &JobState, stats: Option<&CheckpointStats>) -> StatusFacts {
        let now = Instant::now();
        let (read, written) = (self.metrics.source_records(), self.metrics.sink_records());
        let (in_rate, out_rate) = match self.last {
            Some((at, r, w)) => {
                let secs = now.duration_since(at).as_secs_f64().max(1e-3);
                (
                    read.saturating_sub(r) as f64 / secs,
                    written.saturating_sub(w) as f64 / secs,
                )
            }
            None => (0.0, 0.0),
        };
        self.last = Some((now, read, written));
        let last_checkpoint = stats
            .and_then(|s| s.latest_completed.as_ref())
            .map(|c| (c.id.0, c.end_to_end_duration_ms, c.state_size))
            .or_else(|| {
                state
                    .latest_completed
                    .as_ref()
                    .map(|c| (c.id.0, 0, c.state_size))
            });
        let low_watermark = crate::metrics::registry()
            .job(state.job_id)
            .into_iter()
            .filter_map(|(uid, _, m)| m.watermark.map(|w| (w, uid)))
            .min();
        StatusFacts {
            low_watermark,
            status: state.status.flink_name().to_owned(),
            in_per_second: in_rate,
            out_per_second: out_rate,
            completed: state.completed_checkpoints,
            failed: state.failed_checkpoints,
            restarts: state.restarts,
            last_checkpoint,
        }
    }
}

/// `512 B`, `3.4 KB`, `12.0 MB`: a size for people.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn rate(r: f64) -> String {
    if r >= 10_000.0 {
        format!("{:.1}k", r / 1000.0)
    } else {
        format!("{r:.0}")
    }
}

impl StatusFacts {
    /// `RUNNING | in 1.2k rec/s | out 1.1k rec/s | checkpoints 7 (0 failed) | last #7 12 ms 3.4 kb`
    pub fn render(&self) -> String {
        let mut line = format!(
            "{} | in {} rec/s | out {} rec/s | checkpoints {} ({} failed)",
            self.status,
            rate(self.in_per_second),
            rate(self.out_per_second),
            self.completed,
            self.failed
        );
        match self.last_checkpoint {
            Some((id, ms, size)) => {
                line.push_str(&format!(" | last #{id} {ms} ms {}", human_size(size)))
            }
            None => line.push_str(" | no checkpoint yet"),
        }
        match &self.low_watermark {
            Some((i64::MAX, _)) => line.push_str(" | watermark: end of event time"),
            Some((w, uid)) => line.push_str(&format!(" | watermark {w} ({uid})")),
            None => {}
        }
        if self.restarts > 0 {
            line.push_str(&format!(" | {} restarts", self.restarts));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_line_shows_rates_and_the_last_checkpoint() {
        let facts = StatusFacts {
            status: "RUNNING".into(),
            in_per_second: 12_345.0,
            out_per_second: 99.4,
            completed: 7,
            failed: 1,
            restarts: 0,
            last_checkpoint: Some((7, 12, 3 * 1024)),
            low_watermark: None,
        };
        let line = facts.render();
        assert!(line.starts_with("RUNNING | in 12.3k rec/s | out 99 rec/s | checkpoints 7 (1 failed) | last #7 12 ms "), "{line}");
        let none = StatusFacts {
            last_checkpoint: None,
            restarts: 2,
            ..facts.clone()
        };
        assert!(none.render().ends_with("no checkpoint yet | 2 restarts"));
        assert!(line.ends_with("3.0 KB"), "{line}");
        assert_eq!(human_size(512), "512 B");
        let timed = StatusFacts {
            low_watermark: Some((1_767_225_601_500, "windows".into())),
            ..facts.clone()
        };
        assert!(
            timed
                .render()
                .ends_with("3.0 KB | watermark 1767225601500 (windows)"),
            "{}",
            timed.render()
        );
        assert_eq!(human_size(5 * 1024 * 1024 + 1), "5.0 MB");
    }
}
