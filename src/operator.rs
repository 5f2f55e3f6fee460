//! The traits users implement: [`Source`], [`Operator`], [`KeyedProcessFunction`] and the
//! two-phase-commit [`Sink`].
//!
//! The runtime calls them from one subtask actor at a time, never concurrently. Each returns
//! `Result<_, OperatorError>`; an error (or a panic, which the runtime catches) fails the subtask
//! and hands the job to its restart strategy. State that must survive a failure lives in the
//! stores the runtime passes in (`OperatorStateStore`, `KeyedStateStore`), which are snapshotted
//! at every barrier and restored before `open` returns.

use std::time::Duration;

use crate::element::CheckpointKind;
use crate::ids::CheckpointId;
use crate::state::keyed::{KeyedStateStore, StateKey};
use crate::state::operator_state::OperatorStateStore;
use crate::time::{TimeDomain, Watermark};

/// A failure in user code or a connector, with what the subtask was doing.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct OperatorError {
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl OperatorError {
    /// An error with a message only.
    pub fn msg(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// An error with a message and its cause.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

impl From<crate::state::StateError> for OperatorError {
    fn from(e: crate::state::StateError) -> Self {
        OperatorError::with_source("state access failed", e)
    }
}

/// Which subtask a call is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubtaskInfo {
    /// The operator's uid.
    pub uid: String,
    /// `0..parallelism`.
    pub index: u32,
    pub parallelism: u32,
    pub max_parallelism: u32,
    /// The checkpoint or savepoint the job was started (or restarted) from: state, possibly
    /// empty for this subtask, was restored, so a source must not start from its beginning,
    /// and a two-phase-commit sink knows which of its commits came later.
    pub restored: Option<CheckpointId>,
}

/// What a source did on one poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourcePoll {
    /// Records may have been produced; poll again.
    Ready,
    /// Nothing available now; poll again after this long.
    Idle(Duration),
    /// The source has no more records, ever (a bounded source is done).
    Exhausted,
}

/// A replayable source. Its position is operator state, so a restored source resumes exactly
/// where the restored checkpoint's barrier was emitted.
pub trait Source<T>: Send + 'static {
    /// Called once per (re)start, after `state` holds the restored state (if any).
    fn open(
        &mut self,
        info: &SubtaskInfo,
        state: &mut OperatorStateStore,
    ) -> Result<(), OperatorError>;

    /// Append at most `max` records to `out`.
    fn poll(&mut self, out: &mut Vec<T>, max: usize) -> Result<SourcePoll, OperatorError>;

    /// Record the current position in `state` (synchronously, at the barrier).
    fn snapshot(&mut self, state: &mut OperatorStateStore) -> Result<(), OperatorError>;

    /// The next [`Self::snapshot`] is checkpoint `checkpoint`'s (called just before it), for a
    /// source that acts when that checkpoint completes.
    fn on_barrier(&mut self, _checkpoint: CheckpointId) {}

    /// Checkpoint `checkpoint` is complete and durable. For side effects that only report
    /// progress (the Kafka source commits its offsets to the broker for monitoring): the
    /// checkpoint stays the truth, so a failure here must not lose or repeat records.
    fn notify_checkpoint_complete(
        &mut self,
        _checkpoint: CheckpointId,
    ) -> Result<(), OperatorError> {
        Ok(())
    }
}

/// A non-keyed transformation of batches (map, filter, flat map and user operators).
pub trait Operator<I, O>: Send + 'static {
    /// Called once per (re)start, after `state` holds the restored state (if any).
    fn open(
        &mut self,
        _info: &SubtaskInfo,
        _state: &mut OperatorStateStore,
    ) -> Result<(), OperatorError> {
        Ok(())
    }

    /// Transform one batch, appending results to `out`.
    fn process(&mut self, input: Vec<I>, out: &mut Vec<O>) -> Result<(), OperatorError>;

    /// Save what must survive a failure into `state` (at the barrier).
    fn snapshot(&mut self, _state: &mut OperatorStateStore) -> Result<(), OperatorError> {
        Ok(())
    }

    /// Every input has ended: emit whatever is still held.
    fn finish(&mut self, _out: &mut Vec<O>) -> Result<(), OperatorError> {
        Ok(())
    }

    /// The subtask's input watermark advanced to `watermark` (the minimum over its inputs): no
    /// record at or below it is expected any more. What is emitted here goes out before the
    /// watermark is forwarded.
    fn on_watermark(
        &mut self,
        _watermark: Watermark,
        _out: &mut Vec<O>,
    ) -> Result<(), OperatorError> {
        Ok(())
    }
}

/// A function applied per record after `key_by`, with keyed state scoped to the record's key.
pub trait KeyedProcessFunction<K: StateKey, I, O>: Send + 'static {
    /// Register state handles (`state.value("count")`, ...) and keep them in `self`.
    fn open(
        &mut self,
        info: &SubtaskInfo,
        state: &mut KeyedStateStore<K>,
    ) -> Result<(), OperatorError>;

    /// Handle one record; `state` is already scoped to `key`. Timers for `key` are registered
    /// with `state.timer_service()?`.
    fn process(
        &mut self,
        key: &K,
        input: I,
        state: &mut KeyedStateStore<K>,
        out: &mut Vec<O>,
    ) -> Result<(), OperatorError>;

    /// A timer of `key` fired: an event-time timer when the watermark reached `timestamp`, a
    /// processing-time timer when the task's clock did (`domain` says which). `state` is scoped
    /// to `key`; the timer is no longer registered, and new ones may be. What is emitted goes
    /// out like `process`'s output (before the watermark that fired it).
    fn on_timer(
        &mut self,
        _timestamp: i64,
        _domain: TimeDomain,
        _key: &K,
        _state: &mut KeyedStateStore<K>,
        _out: &mut Vec<O>,
    ) -> Result<(), OperatorError> {
        Ok(())
    }
}

/// A sink, optionally with two-phase commit (Flink's `TwoPhaseCommitSinkFunction` / Sink V2
/// committer). A sink that is not transactional implements `write` only.
///
/// Lifecycle per checkpoint `n`: `write` records; at the barrier `pre_commit(n)` flushes and
/// stages everything written so far as transaction `n`, and `snapshot` stores the staged
/// transactions in operator state; on `commit(n)` (the checkpoint is complete and durable) every
/// staged transaction up to `n` becomes visible. A transaction staged for an aborted checkpoint
/// stays staged and is committed with the next completed one. On restore, `open` re-commits what
/// the restored state lists as staged (commits must be idempotent) and discards everything else
/// this subtask left behind.
pub trait Sink<T>: Send + 'static {
    fn open(
        &mut self,
        _info: &SubtaskInfo,
        _state: &mut OperatorStateStore,
    ) -> Result<(), OperatorError> {
        Ok(())
    }

    fn write(&mut self, batch: Vec<T>) -> Result<(), OperatorError>;

    /// Flush and stage everything written since the last pre-commit as transaction `checkpoint`.
    fn pre_commit(&mut self, _checkpoint: CheckpointId) -> Result<(), OperatorError> {
        Ok(())
    }

    /// Store the staged transactions in `state`.
    fn snapshot(&mut self, _state: &mut OperatorStateStore) -> Result<(), OperatorError> {
        Ok(())
    }

    /// Checkpoint `checkpoint` is complete: make every staged transaction up to it visible.
    /// Not called with side effects for an intermediate savepoint's kind: sinks check `kind`.
    fn commit(
        &mut self,
        _checkpoint: CheckpointId,
        _kind: CheckpointKind,
    ) -> Result<(), OperatorError> {
        Ok(())
    }

    /// Every input has ended (a final checkpoint follows, whose completion commits the rest).
    fn finish(&mut self) -> Result<(), OperatorError> {
        Ok(())
    }
}
