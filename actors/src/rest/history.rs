//! [`JobHistory`]: what the REST API remembers of a job's past that its current
//! [`crate::job::JobState`] does not carry — when it entered each status (Flink's `timestamps`),
//! when it ended, and the failures it went through (`/jobs/:id/exceptions`). Fed by a background
//! watcher of the job's state ([`super::jobs::JobRegistry::register`]); pure, so it is tested
//! with made-up states and times.

use std::collections::BTreeMap;

use weir::status::JobStatus;

/// How many failures `/jobs/:id/exceptions` keeps (Flink's `web.exception-history-size`).
pub const EXCEPTION_HISTORY: usize = 16;

/// One failure the job went through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureRecord {
    /// Milliseconds since the epoch at which the REST API saw it.
    pub timestamp_ms: u64,
    pub message: String,
}

/// A job's past, as far as the REST API saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobHistory {
    /// First time the job was seen in each status, by Flink's status name.
    pub entered: BTreeMap<&'static str, u64>,
    pub end_time_ms: Option<u64>,
    /// Newest last, at most [`EXCEPTION_HISTORY`].
    pub failures: Vec<FailureRecord>,
    /// Whether older failures were dropped.
    pub truncated: bool,
    /// The last status and failure seen (to tell what changed).
    last: Option<(JobStatus, Option<String>)>,
}

impl JobHistory {
    /// Records what `status` and `failure` say at `now_ms`.
    pub fn observe(&mut self, status: JobStatus, failure: Option<&str>, now_ms: u64) {
        self.entered.entry(status.flink_name()).or_insert(now_ms);
        if status.is_terminal() && self.end_time_ms.is_none() {
            self.end_time_ms = Some(now_ms);
        }
        let last_failure = self.last.as_ref().and_then(|(_, f)| f.as_deref());
        if let Some(message) = failure.filter(|f| Some(*f) != last_failure) {
            self.failures.push(FailureRecord {
                timestamp_ms: now_ms,
                message: message.to_owned(),
            });
            if self.failures.len() > EXCEPTION_HISTORY {
                self.failures.remove(0);
                self.truncated = true;
            }
        }
        self.last = Some((status, failure.map(str::to_owned)));
    }

    /// Whether `status` and `failure` differ from what was last observed.
    pub fn changed(&self, status: JobStatus, failure: Option<&str>) -> bool {
        self.last
            .as_ref()
            .is_none_or(|(s, f)| *s != status || f.as_deref() != failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_keep_their_first_time_and_failures_are_recorded_once() {
        let mut h = JobHistory::default();
        h.observe(JobStatus::Created, None, 1);
        h.observe(JobStatus::Running, None, 2);
        h.observe(JobStatus::Failing, Some("boom"), 3);
        assert!(!h.changed(JobStatus::Failing, Some("boom")));
        h.observe(JobStatus::Restarting, Some("boom"), 4);
        h.observe(JobStatus::Running, Some("boom"), 5);
        assert_eq!(h.entered["RUNNING"], 2, "the first time counts");
        assert_eq!(h.entered["RESTARTING"], 4);
        assert_eq!(h.failures.len(), 1, "the same failure is one record");
        assert_eq!(h.failures[0].timestamp_ms, 3);
        assert_eq!(h.end_time_ms, None);
        h.observe(JobStatus::Canceled, Some("boom"), 9);
        assert_eq!(h.end_time_ms, Some(9));
    }

    #[test]
    fn the_history_keeps_the_newest_failures() {
        let mut h = JobHistory::default();
        for i in 0..(EXCEPTION_HISTORY as u64 + 3) {
            h.observe(JobStatus::Failing, Some(&format!("failure {i}")), i);
        }
        assert_eq!(h.failures.len(), EXCEPTION_HISTORY);
        assert!(h.truncated);
        assert_eq!(
            h.failures.last().unwrap().message,
            format!("failure {}", EXCEPTION_HISTORY + 2)
        );
    }
}
