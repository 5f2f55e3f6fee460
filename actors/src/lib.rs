//! # weir-actors: Weir's actix runtime
//!
//! Runs a [`weir::graph::JobGraph`] as actors:
//!
//! - [`JobManager`]: one per job, the supervisor of its subtasks and the driver of the pure
//!   checkpoint coordinator (trigger, complete, abort, retention, restart).
//! - `Task`: one per subtask, on one of the job's arbiters (one per core). Tasks exchange
//!   record batches and in-band barriers over FIFO channels with credit-based flow control.
//! - [`rest`]: the REST API (actix-web; Flink's paths and field names) over a registry of
//!   running jobs.
//! - [`cli`]: the `weir` command line (`run` a job file, `savepoint`, `stop`, `cancel`,
//!   `checkpoint`, `list`, `checkpoints`).
//!
//! Applications depend on this crate only: it re-exports [`weir`].
//!
//! ```ignore
//! #[actix::main]
//! async fn main() -> anyhow::Result<()> {
//!     let env = weir_actors::weir::stream::StreamEnvironment::new("my job");
//!     // ... sources, operators, sinks ...
//!     let mut job = weir_actors::submit(env.build()?, weir_actors::JobOptions::default())?;
//!     let state = job.wait().await;
//!     println!("{}", state.status);
//!     Ok(())
//! }
//! ```

pub mod cli;
pub mod control;
mod deploy;
mod io;
mod job;
mod job_manager;
mod locations;
pub mod logging;
pub mod messages;
pub mod metrics;
pub mod rest;
mod task;

use actix::prelude::*;
use tokio::sync::watch;
pub use weir;
use weir::checkpoint::storage::{CheckpointStorage, StorageError};
use weir::graph::{GraphError, JobGraph};
use weir::ids::JobId;
use weir::status::JobStatus;

pub use control::{
    Cancel, ControlError, GetCheckpointStats, GetJobState, StopWithSavepoint, TriggerCheckpoint,
    TriggerSavepoint,
};
pub use job::{JobState, RestoreSettings};
pub use job_manager::JobManager;
pub use weir::checkpoint::lifecycle::CompletedCheckpoint;

/// How to start a job.
#[derive(Clone, Debug, Default)]
pub struct JobOptions {
    /// Keep a job id (e.g. to find its checkpoint directory); a fresh one otherwise.
    pub job_id: Option<JobId>,
    /// Start from a savepoint or retained checkpoint.
    pub restore: Option<RestoreSettings>,
}

/// Why a job could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("invalid job: {0}")]
    Graph(#[from] GraphError),
    #[error("checkpoint storage: {0}")]
    Storage(#[from] StorageError),
    #[error("no actix System is running on this thread: call submit inside `#[actix::main]`, `System::new().block_on(..)`, or use `weir_actors::run`")]
    NoSystem,
}

/// A running job: its id, its actor, and its state as it changes.
#[derive(Clone)]
pub struct JobHandle {
    pub job_id: JobId,
    pub addr: Addr<JobManager>,
    state: watch::Receiver<JobState>,
}

impl JobHandle {
    /// The state now.
    pub fn state(&self) -> JobState {
        self.state.borrow().clone()
    }

    /// Waits until `pred` holds for the job's state and returns that state.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future loses nothing.
    pub async fn wait_for(&mut self, mut pred: impl FnMut(&JobState) -> bool) -> JobState {
        let result = self.state.wait_for(|s| pred(s)).await.map(|s| s.clone());
        result.unwrap_or_else(|_| self.state.borrow().clone())
    }

    /// Waits until the job is FINISHED, CANCELED or FAILED.
    pub async fn wait(&mut self) -> JobState {
        self.wait_for(|s| s.status.is_terminal()).await
    }

    /// Asks the job to cancel; returns once the request is delivered (see [`JobHandle::wait`]).
    pub async fn cancel(&self) {
        let _ = self.addr.send(Cancel).await;
    }

    /// Takes a savepoint under `target_dir` (or the configured savepoint dir).
    ///
    /// # Errors
    /// [`ControlError`] when the job cannot take one now or the savepoint fails.
    pub async fn savepoint(
        &self,
        target_dir: Option<String>,
        format: weir::element::SavepointFormat,
    ) -> Result<CompletedCheckpoint, ControlError> {
        self.addr
            .send(TriggerSavepoint { target_dir, format })
            .await
            .unwrap_or(Err(ControlError::Gone))
    }

    /// Takes a savepoint and ends the job FINISHED; answers once the job has finished.
    ///
    /// # Errors
    /// [`ControlError`] when the job cannot stop now or the savepoint fails.
    pub async fn stop_with_savepoint(
        &self,
        target_dir: Option<String>,
        drain: bool,
    ) -> Result<CompletedCheckpoint, ControlError> {
        self.addr
            .send(StopWithSavepoint {
                target_dir,
                drain,
                ..StopWithSavepoint::default()
            })
            .await
            .unwrap_or(Err(ControlError::Gone))
    }

    /// Takes a checkpoint now, outside the interval.
    ///
    /// # Errors
    /// [`ControlError`] when the job cannot take one now or the checkpoint fails.
    pub async fn checkpoint(&self, full: bool) -> Result<CompletedCheckpoint, ControlError> {
        self.addr
            .send(TriggerCheckpoint { full })
            .await
            .unwrap_or(Err(ControlError::Gone))
    }

    /// Checkpoint statistics.
    pub async fn checkpoint_stats(&self) -> Option<weir::checkpoint::stats::CheckpointStats> {
        self.addr.send(GetCheckpointStats).await.ok()
    }
}

/// Starts `graph` on the actix System of the calling thread.
///
/// # Errors
/// [`SubmitError`] when the graph is invalid, the checkpoint storage cannot be opened, or no
/// System is running.
pub fn submit(graph: JobGraph, options: JobOptions) -> Result<JobHandle, SubmitError> {
    graph.validate()?;
    if System::try_current().is_none() {
        return Err(SubmitError::NoSystem);
    }
    let job_id = options.job_id.unwrap_or_default();
    let storage = CheckpointStorage::new(&graph.config.checkpoint, job_id)?;
    let (tx, rx) = watch::channel(JobState {
        job_id,
        status: JobStatus::Created,
        failure: None,
        restarts: 0,
        latest_completed: None,
        completed_checkpoints: 0,
        failed_checkpoints: 0,
    });
    let manager = JobManager::new(job_id, graph, storage, options.restore, tx);
    let addr = manager.start();
    Ok(JobHandle {
        job_id,
        addr,
        state: rx,
    })
}

/// Runs `graph` to its end on a System of its own and returns the final state.
///
/// # Errors
/// As [`submit`].
pub fn run(graph: JobGraph, options: JobOptions) -> Result<JobState, SubmitError> {
    let system = System::new();
    let result = system.block_on(async move {
        let mut job = submit(graph, options)?;
        Ok(job.wait().await)
    });
    System::current().stop();
    let _ = system.run();
    // The subtasks' threads drop their RocksDB instances after the job ended.
    weir::state::wait_for_rocksdb_closed(std::time::Duration::from_secs(10));
    result
}
