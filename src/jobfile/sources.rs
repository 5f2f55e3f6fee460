//! [`JsonSource`]: any typed source as a source of JSON records, by converting each record.
//! The built-in `sequence` and `file` sources are the connectors' `SequenceSource` and
//! `FileLinesSource` seen through it, so their replay (position in operator state) is theirs.

use std::sync::Arc;

use serde_json::Value;

use crate::operator::{OperatorError, Source, SourcePoll, SubtaskInfo};
use crate::state::operator_state::OperatorStateStore;

type Convert<T> = Arc<dyn Fn(T) -> Result<Value, OperatorError> + Send + Sync>;

/// `inner`'s records, each turned into a JSON value by `convert`.
pub struct JsonSource<S, T> {
    inner: S,
    convert: Convert<T>,
    scratch: Vec<T>,
}

impl<S: Clone, T> Clone for JsonSource<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            convert: self.convert.clone(),
            scratch: Vec::new(),
        }
    }
}

impl<S, T> JsonSource<S, T> {
    pub fn new(inner: S, convert: impl Fn(T) -> Value + Send + Sync + 'static) -> Self {
        Self::try_new(inner, move |r| Ok(convert(r)))
    }

    /// Like [`Self::new`], with a conversion that may refuse a record (which fails the
    /// subtask: a line that is not JSON, say).
    pub fn try_new(
        inner: S,
        convert: impl Fn(T) -> Result<Value, OperatorError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner,
            convert: Arc::new(convert),
            scratch: Vec::new(),
        }
    }
}

impl<S: Source<T>, T: Send + 'static> Source<Value> for JsonSource<S, T> {
    fn open(
        &mut self,
        info: &SubtaskInfo,
        state: &mut OperatorStateStore,
    ) -> Result<(), OperatorError> {
        self.inner.open(info, state)
    }

    fn poll(&mut self, out: &mut Vec<Value>, max: usize) -> Result<SourcePoll, OperatorError> {
        self.scratch.clear();
        let poll = self.inner.poll(&mut self.scratch, max)?;
        out.reserve(self.scratch.len());
        for r in self.scratch.drain(..) {
            out.push((self.convert)(r)?);
        }
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
