//! `PrintSink` writes records to stdout as JSON; `DiscardSink` counts and drops them.
//! Neither is transactional: on replay they print or count again.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;

use crate::operator::{OperatorError, Sink, SubtaskInfo};
use crate::state::operator_state::OperatorStateStore;

/// Prints each record as one JSON line, prefixed with the subtask index when parallel.
#[derive(Clone, Default)]
pub struct PrintSink {
    prefix: String,
}

impl PrintSink {
    pub fn new() -> Self {
        Self::default()
    }
}

impl<T: Serialize + Send + 'static> Sink<T> for PrintSink {
    fn open(
        &mut self,
        info: &SubtaskInfo,
        _: &mut OperatorStateStore,
    ) -> Result<(), OperatorError> {
        if info.parallelism > 1 {
            self.prefix = format!("{}> ", info.index + 1);
        }
        Ok(())
    }

    fn write(&mut self, batch: Vec<T>) -> Result<(), OperatorError> {
        let mut out = Vec::with_capacity(batch.len() * 16);
        for r in &batch {
            out.extend_from_slice(self.prefix.as_bytes());
            serde_json::to_writer(&mut out, r)
                .map_err(|e| OperatorError::with_source("cannot format a record as JSON", e))?;
            out.push(b'\n');
        }
        std::io::stdout()
            .lock()
            .write_all(&out)
            .map_err(|e| OperatorError::with_source("cannot write to stdout", e))
    }
}

/// Drops records, counting them in a counter shared by all subtasks (and the caller).
#[derive(Clone, Default)]
pub struct DiscardSink {
    count: Arc<AtomicU64>,
}

impl DiscardSink {
    pub fn new() -> Self {
        Self::default()
    }

    /// The shared count of records received.
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.count.clone()
    }
}

impl<T: Send + 'static> Sink<T> for DiscardSink {
    fn write(&mut self, batch: Vec<T>) -> Result<(), OperatorError> {
        self.count.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}
