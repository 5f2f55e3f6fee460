//! `JobStatus`: the lifecycle of a job, with Flink's names.
//!
//! A job is `CREATED`, then `RUNNING`. A failure moves it to `FAILING`; the restart strategy then
//! either restarts it (`RESTARTING`, then `RUNNING` again) or gives up (`FAILED`). A user can
//! cancel it (`CANCELLING`, then `CANCELED`), and a bounded job ends `FINISHED`.
//!
//! The three globally terminal statuses decide what happens to retained checkpoints (see
//! [`crate::checkpoint::retention::discard_on_termination`]). Flink also has `SUSPENDED` (the
//! job manager lost leadership; only *locally* terminal) and `INITIALIZING` / `RECONCILING`;
//! Weir has no high-availability mode, so none of them can occur and they are left out. Without
//! `SUSPENDED`, [`JobStatus::is_terminal`] and [`JobStatus::is_globally_terminal`] agree; both
//! exist so that callers say which one they mean, as in Flink.
//!
//! `Display`, `FromStr` and serde all use Flink's upper-case names (`"RUNNING"`,
//! `"CANCELLING"`, ...), which is what Flink's REST API returns in a job's `state` field.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a job is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobStatus {
    /// Submitted, not yet running.
    #[serde(rename = "CREATED")]
    Created,
    /// Some or all subtasks are running.
    #[serde(rename = "RUNNING")]
    Running,
    /// A subtask failed; the job is being torn down before the restart strategy decides.
    #[serde(rename = "FAILING")]
    Failing,
    /// Waiting for the restart delay, then rebuilding every subtask from the latest checkpoint.
    #[serde(rename = "RESTARTING")]
    Restarting,
    /// A cancel was requested; subtasks are stopping.
    #[serde(rename = "CANCELLING")]
    Canceling,
    /// Canceled by the user. Globally terminal.
    #[serde(rename = "CANCELED")]
    Canceled,
    /// Every source reached its end and every subtask finished (or stop-with-savepoint
    /// completed). Globally terminal.
    #[serde(rename = "FINISHED")]
    Finished,
    /// The restart strategy gave up. Globally terminal.
    #[serde(rename = "FAILED")]
    Failed,
}

impl JobStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [JobStatus; 8] = [
        JobStatus::Created,
        JobStatus::Running,
        JobStatus::Failing,
        JobStatus::Restarting,
        JobStatus::Canceling,
        JobStatus::Canceled,
        JobStatus::Finished,
        JobStatus::Failed,
    ];

    /// Flink's name for this status, as shown in the REST API and the web UI.
    pub fn flink_name(self) -> &'static str {
        match self {
            JobStatus::Created => "CREATED",
            JobStatus::Running => "RUNNING",
            JobStatus::Failing => "FAILING",
            JobStatus::Restarting => "RESTARTING",
            JobStatus::Canceling => "CANCELLING",
            JobStatus::Canceled => "CANCELED",
            JobStatus::Finished => "FINISHED",
            JobStatus::Failed => "FAILED",
        }
    }

    /// The job will not change status any more (Flink's `isTerminalState`).
    pub fn is_terminal(self) -> bool {
        // Flink: globally terminal plus SUSPENDED, which Weir does not have.
        self.is_globally_terminal()
    }

    /// The job is over for good, for every job manager: its checkpoints may be cleaned up
    /// according to the retention policy (Flink's `isGloballyTerminalState`).
    pub fn is_globally_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Canceled | JobStatus::Finished | JobStatus::Failed
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.flink_name())
    }
}

/// A string that is not one of Flink's job status names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown job status `{0}`: expected one of CREATED, RUNNING, FAILING, RESTARTING, \
     CANCELLING, CANCELED, FINISHED, FAILED"
)]
pub struct UnknownJobStatus(pub String);

impl FromStr for JobStatus {
    type Err = UnknownJobStatus;

    /// Parses Flink's upper-case name; `CANCELING` (one L) is accepted as well.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "CANCELING" {
            return Ok(JobStatus::Canceling);
        }
        JobStatus::ALL
            .into_iter()
            .find(|status| status.flink_name() == s)
            .ok_or_else(|| UnknownJobStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_uses_flinks_names() {
        assert_eq!(JobStatus::Running.to_string(), "RUNNING");
        assert_eq!(JobStatus::Canceling.to_string(), "CANCELLING");
        assert_eq!(JobStatus::Canceled.to_string(), "CANCELED");
        assert_eq!(JobStatus::Restarting.to_string(), "RESTARTING");
    }

    #[test]
    fn terminal_statuses_are_canceled_finished_failed() {
        let terminal: Vec<JobStatus> = JobStatus::ALL
            .into_iter()
            .filter(|s| s.is_globally_terminal())
            .collect();
        assert_eq!(
            terminal,
            [JobStatus::Canceled, JobStatus::Finished, JobStatus::Failed]
        );
        for status in JobStatus::ALL {
            assert_eq!(status.is_terminal(), status.is_globally_terminal());
        }
    }

    #[test]
    fn names_round_trip_through_from_str_and_serde() {
        for status in JobStatus::ALL {
            assert_eq!(status.to_string().parse::<JobStatus>(), Ok(status));
            let bytes = rmp_serde::to_vec(&status).unwrap();
            let back: JobStatus = rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!(back, status);
            // Serde's name is Flink's name too.
            let name: String = rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!(name, status.flink_name());
        }
        assert_eq!("CANCELING".parse(), Ok(JobStatus::Canceling));
    }

    #[test]
    fn unknown_name_is_an_error_listing_the_valid_ones() {
        let err = "running".parse::<JobStatus>().unwrap_err();
        assert!(err.to_string().contains("`running`"));
        assert!(err.to_string().contains("RUNNING"));
    }
}
