//! A job as its users see it: where it restores from ([`RestoreSettings`]) and its state as it
//! changes ([`JobState`], published by the job manager on every change).

use weir::checkpoint::lifecycle::CompletedCheckpoint;
use weir::config::ClaimMode;
use weir::ids::JobId;
use weir::status::JobStatus;

/// Where to restore a job from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreSettings {
    /// A savepoint or retained checkpoint directory, or its `_metadata`.
    pub path: String,
    /// Drop state of operators the job no longer has instead of failing.
    pub allow_non_restored_state: bool,
    /// NO_CLAIM (default): the snapshot stays the user's and is never deleted. CLAIM: the job
    /// owns it and deletes it once later checkpoints have subsumed it.
    pub claim_mode: ClaimMode,
}

impl RestoreSettings {
    /// Restore from `path` with Flink's defaults (NO_CLAIM, non-restored state not allowed).
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            allow_non_restored_state: false,
            claim_mode: ClaimMode::NoClaim,
        }
    }
}

/// What a job looks like from outside, published on every change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobState {
    pub job_id: JobId,
    pub status: JobStatus,
    /// Why the job failed (or the last failure that caused a restart).
    pub failure: Option<String>,
    pub restarts: u32,
    pub latest_completed: Option<CompletedCheckpoint>,
    pub completed_checkpoints: u64,
    pub failed_checkpoints: u64,
}
