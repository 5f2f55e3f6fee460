//! Requests for a snapshot from outside the job (a savepoint, stop-with-savepoint, a one-off
//! checkpoint), what a requester gets back, and why a request can be refused.

use crate::element::CheckpointKind;
use crate::ids::{CheckpointId, JobId};
use crate::status::JobStatus;

/// A completed checkpoint or savepoint as the outside sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedCheckpoint {
    pub id: CheckpointId,
    /// The snapshot directory (`.../chk-<n>` or `.../savepoint-...`), usable to restore from.
    pub external_path: String,
    pub state_size: u64,
}

/// Why a request to a job was refused or did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("job {job_id} is {status}: a {what} needs a RUNNING job")]
    NotRunning {
        job_id: JobId,
        status: JobStatus,
        what: &'static str,
    },
    #[error("job {job_id} is already stopping or finishing: no {what} can be taken now")]
    Stopping { job_id: JobId, what: &'static str },
    #[error("cannot take a savepoint: {0}")]
    Storage(String),
    #[error("{kind} {id} failed: {reason}")]
    Failed {
        id: CheckpointId,
        kind: &'static str,
        reason: String,
    },
    #[error("job {job_id} ended as {status} before the request completed")]
    JobEnded { job_id: JobId, status: JobStatus },
    #[error("the job manager is gone")]
    Gone,
}

/// What a request is called in answers: `checkpoint`, `savepoint` or `stop-with-savepoint`.
pub fn kind_name(kind: CheckpointKind) -> &'static str {
    match kind {
        CheckpointKind::Checkpoint { .. } => "checkpoint",
        CheckpointKind::Savepoint { .. } => "savepoint",
        CheckpointKind::StopWithSavepoint { .. } => "stop-with-savepoint",
    }
}
