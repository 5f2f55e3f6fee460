//! [`JobMetrics`]: records read by a file-defined job's sources and received by its sinks,
//! counted by wrappers the builder puts around every source and sink (the runtime keeps no
//! per-operator record counters yet). Replayed records after a restore are counted again: these
//! are throughput counters, not exactly-once counts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::element::CheckpointKind;
use crate::ids::CheckpointId;
use crate::operator::{OperatorError, Sink, Source, SourcePoll, SubtaskInfo};
use crate::state::operator_state::OperatorStateStore;

/// Shared record counters of one job, cheap to clone and read from any thread.
#[derive(Clone, Debug, Default)]
pub struct JobMetrics {
    source_records: Arc<AtomicU64>,
    sink_records: Arc<AtomicU64>,
}

impl JobMetrics {
    /// Records emitted by all sources so far (all subtasks, all attempts).
    pub fn source_records(&self) -> u64 {
        self.source_records.load(Ordering::Relaxed)
    }

    /// Records handed to all sinks so far (all subtasks, all attempts).
    pub fn sink_records(&self) -> u64 {
        self.sink_records.load(Ordering::Relaxed)
    }

    pub(crate) fn count_source<S>(&self, inner: S) -> CountedSource<S> {
        CountedSource {
            inner,
            counter: self.source_records.clone(),
        }
    }

    pub(crate) fn count_sink<S>(&self, inner: S) -> CountedSink<S> {
        CountedSink {
            inner,
            counter: self.sink_records.clone(),
        }
    }
}

/// A source that counts what it emits.
#[derive(Clone)]
pub(crate) struct CountedSource<S> {
    inner: S,
    counter: Arc<AtomicU64>,
}

impl<S: Source<Value>> Source<Value> for CountedSource<S> {
    fn open(
        &mut self,
        info: &SubtaskInfo,
        state: &mut OperatorStateStore,
    ) -> Result<(), OperatorError> {
        self.inner.open(info, state)
    }

    fn poll(&mut self, out: &mut Vec<Value>, max: usize) -> Result<SourcePoll, OperatorError> {
        let before = out.len();
        let poll = self.inner.poll(out, max)?;
        self.counter
            .fetch_add((out.len() - before) as u64, Ordering::Relaxed);
        Ok(poll)
    }

    fn snapshot(&mut self, state: &mut OperatorStateStore) -> Result<(), OperatorError> {
        self.inner.snapshot(state)
    }
    fn on_barrier(&mut self, checkpoint: crate::ids::CheckpointId) {
        self.inner.on_barrier(checkpoint);
    }

    fn notify_checkpoint_complete(
        &mut self,
        checkpoint: crate::ids::CheckpointId,
    ) -> Result<(), OperatorError> {
        self.inner.notify_checkpoint_complete(checkpoint)
    }
}

/// A sink that counts what it receives.
#[derive(Clone)]
pub(crate) struct CountedSink<S> {
    inner: S,
    counter: Arc<AtomicU64>,
}

impl<S: Sink<Value>> Sink<Value> for CountedSink<S> {
    fn open(
        &mut self,
        info: &SubtaskInfo,
        state: &mut OperatorStateStore,
    ) -> Result<(), OperatorError> {
        self.inner.open(info, state)
    }

    fn write(&mut self, batch: Vec<Value>) -> Result<(), OperatorError> {
        self.counter
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.inner.write(batch)
    }

    fn pre_commit(&mut self, checkpoint: CheckpointId) -> Result<(), OperatorError> {
        self.inner.pre_commit(checkpoint)
    }

    fn snapshot(&mut self, state: &mut OperatorStateStore) -> Result<(), OperatorError> {
        self.inner.snapshot(state)
    }

    fn commit(
        &mut self,
        checkpoint: CheckpointId,
        kind: CheckpointKind,
    ) -> Result<(), OperatorError> {
        self.inner.commit(checkpoint, kind)
    }

    fn finish(&mut self) -> Result<(), OperatorError> {
        self.inner.finish()
    }
}
