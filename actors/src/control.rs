//! The messages a user, a tool or another actor sends to a running job: savepoints,
//! stop-with-savepoint, one-off checkpoints, cancel, status and checkpoint statistics.
//!
//! Requests that complete later (a savepoint, a checkpoint, a stop) answer with a future that
//! resolves when the snapshot is complete — or with a [`ControlError`] saying why not. The CLI and
//! the REST API map onto exactly these messages.

use actix::prelude::*;
use tokio::sync::oneshot;
use weir::checkpoint::stats::CheckpointStats;
use weir::element::{CheckpointKind, SavepointFormat};

pub use weir::checkpoint::lifecycle::{CompletedCheckpoint, ControlError};

use crate::job::JobState;
use crate::job_manager::JobManager;

/// The result a waiting requester gets.
pub(crate) type Reply = oneshot::Sender<Result<CompletedCheckpoint, ControlError>>;

fn wait(
    rx: Result<oneshot::Receiver<Result<CompletedCheckpoint, ControlError>>, ControlError>,
) -> ResponseFuture<Result<CompletedCheckpoint, ControlError>> {
    Box::pin(async move {
        match rx {
            Ok(rx) => rx.await.unwrap_or(Err(ControlError::Gone)),
            Err(e) => Err(e),
        }
    })
}

/// Take a savepoint; answers with the savepoint once complete.
#[derive(Message, Debug, Clone, Default)]
#[rtype(result = "Result<CompletedCheckpoint, ControlError>")]
pub struct TriggerSavepoint {
    /// Parent directory of the savepoint; the configured savepoint dir when `None`.
    pub target_dir: Option<String>,
    pub format: SavepointFormat,
}

impl Handler<TriggerSavepoint> for JobManager {
    type Result = ResponseFuture<Result<CompletedCheckpoint, ControlError>>;
    fn handle(&mut self, msg: TriggerSavepoint, ctx: &mut Self::Context) -> Self::Result {
        let kind = CheckpointKind::Savepoint { format: msg.format };
        wait(self.request_snapshot(kind, msg.target_dir, ctx))
    }
}

/// Take a savepoint, then end the job: sources stop after its barrier, every operator finishes,
/// two-phase sinks commit, and the job ends FINISHED. Answers once the job has finished.
#[derive(Message, Debug, Clone, Default)]
#[rtype(result = "Result<CompletedCheckpoint, ControlError>")]
pub struct StopWithSavepoint {
    pub target_dir: Option<String>,
    pub format: SavepointFormat,
    /// Flush everything operators hold before the savepoint (permanent shutdown).
    pub drain: bool,
}

impl Handler<StopWithSavepoint> for JobManager {
    type Result = ResponseFuture<Result<CompletedCheckpoint, ControlError>>;
    fn handle(&mut self, msg: StopWithSavepoint, ctx: &mut Self::Context) -> Self::Result {
        let kind = CheckpointKind::StopWithSavepoint {
            format: msg.format,
            drain: msg.drain,
        };
        wait(self.request_snapshot(kind, msg.target_dir, ctx))
    }
}

/// A one-off checkpoint outside the interval; answers once it is complete.
#[derive(Message, Debug, Clone, Copy, Default)]
#[rtype(result = "Result<CompletedCheckpoint, ControlError>")]
pub struct TriggerCheckpoint {
    /// A full (non-incremental) checkpoint.
    pub full: bool,
}

impl Handler<TriggerCheckpoint> for JobManager {
    type Result = ResponseFuture<Result<CompletedCheckpoint, ControlError>>;
    fn handle(&mut self, msg: TriggerCheckpoint, ctx: &mut Self::Context) -> Self::Result {
        let kind = CheckpointKind::Checkpoint { full: msg.full };
        wait(self.request_snapshot(kind, None, ctx))
    }
}

/// Cancel the job: it ends CANCELED; retained checkpoints follow the retention setting.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Cancel;

impl Handler<Cancel> for JobManager {
    type Result = ();
    fn handle(&mut self, _: Cancel, ctx: &mut Self::Context) {
        self.cancel(ctx);
    }
}

/// The job's current state.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "JobState")]
pub struct GetJobState;

impl Handler<GetJobState> for JobManager {
    type Result = MessageResult<GetJobState>;
    fn handle(&mut self, _: GetJobState, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.state())
    }
}

/// Checkpoint statistics as Flink's REST API shows them.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "CheckpointStats")]
pub struct GetCheckpointStats;

impl Handler<GetCheckpointStats> for JobManager {
    type Result = MessageResult<GetCheckpointStats>;
    fn handle(&mut self, _: GetCheckpointStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.checkpoint_stats())
    }
}
