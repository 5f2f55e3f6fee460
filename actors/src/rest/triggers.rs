//! [`TriggerTable`]: Flink's asynchronous operations. `POST .../savepoints`, `.../stop`,
//! `.../checkpoints` and `/savepoint-disposal` start an operation and answer with a trigger id
//! at once; `GET .../:triggerid` answers `IN_PROGRESS` until the operation has a result, then
//! `COMPLETED` with the result or its failure.
//!
//! A result counts as *collected* once a `GET` has returned it. `weir run` waits (bounded) for
//! every result to be collected before it exits, so a client polling a stop-with-savepoint still
//! learns the savepoint's path after the job has finished.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use weir::ids::JobId;

/// What an operation was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationKind {
    /// A savepoint or a stop-with-savepoint: the result is a location.
    Savepoint,
    /// A manual checkpoint: the result is a checkpoint id.
    Checkpoint,
    /// Disposing of a savepoint: the result is nothing.
    Disposal,
}

/// The outcome of an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperationResult {
    /// A savepoint's location.
    Location(String),
    /// A checkpoint's id.
    CheckpointId(u64),
    /// Done, nothing to report.
    Done,
    /// Why it failed.
    Failed(String),
}

/// Where an operation stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperationStatus {
    InProgress,
    Completed(OperationResult),
}

#[derive(Debug)]
struct Operation {
    kind: OperationKind,
    status: OperationStatus,
    collected: bool,
}

/// An operation's job (`None` for savepoint disposal) and trigger id.
type TriggerKey = (Option<JobId>, String);

/// Trigger ids → operations.
#[derive(Clone, Default)]
pub struct TriggerTable {
    inner: Arc<Mutex<HashMap<TriggerKey, Operation>>>,
    changed: Arc<Notify>,
}

impl TriggerTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a new operation under `trigger` (the client's `triggerId`, or a fresh one).
    ///
    /// # Errors
    /// The trigger id is already in use for this job: the text to send back.
    pub fn start(
        &self,
        job: Option<JobId>,
        kind: OperationKind,
        trigger: Option<String>,
    ) -> Result<String, String> {
        let trigger = trigger.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let mut ops = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let key = (job, trigger.clone());
        if ops.contains_key(&key) {
            return Err(format!("trigger id `{trigger}` is already in use"));
        }
        ops.insert(
            key,
            Operation {
                kind,
                status: OperationStatus::InProgress,
                collected: false,
            },
        );
        Ok(trigger)
    }

    /// Records the result of an operation.
    pub fn complete(&self, job: Option<JobId>, trigger: &str, result: OperationResult) {
        let mut ops = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(op) = ops.get_mut(&(job, trigger.to_owned())) {
            op.status = OperationStatus::Completed(result);
        }
        drop(ops);
        self.changed.notify_waiters();
    }

    /// The status of an operation of kind `kind`; a completed one becomes collected.
    pub fn get(
        &self,
        job: Option<JobId>,
        kind: OperationKind,
        trigger: &str,
    ) -> Option<OperationStatus> {
        let mut ops = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let op = ops
            .get_mut(&(job, trigger.to_owned()))
            .filter(|op| op.kind == kind)?;
        if matches!(op.status, OperationStatus::Completed(_)) && !op.collected {
            op.collected = true;
            self.changed.notify_waiters();
        }
        Some(op.status.clone())
    }

    /// Operations whose result no client has fetched yet (in progress ones included).
    pub fn uncollected(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|op| !op.collected)
            .count()
    }

    /// Waits until every result has been collected, or `timeout` has passed; returns how many
    /// are still uncollected.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_collected(&self, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            let left = self.uncollected();
            if left == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.uncollected();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_go_from_in_progress_to_collected() {
        let t = TriggerTable::new();
        let job = Some(JobId::new());
        let id = t.start(job, OperationKind::Savepoint, None).unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(
            t.get(job, OperationKind::Savepoint, &id),
            Some(OperationStatus::InProgress)
        );
        assert_eq!(
            t.get(job, OperationKind::Checkpoint, &id),
            None,
            "kinds do not mix"
        );
        assert_eq!(
            t.get(None, OperationKind::Savepoint, &id),
            None,
            "jobs do not mix"
        );
        assert_eq!(t.uncollected(), 1);
        t.complete(job, &id, OperationResult::Location("/sp".into()));
        assert_eq!(t.uncollected(), 1);
        assert_eq!(
            t.get(job, OperationKind::Savepoint, &id),
            Some(OperationStatus::Completed(OperationResult::Location(
                "/sp".into()
            )))
        );
        assert_eq!(t.uncollected(), 0);
        assert!(t.start(job, OperationKind::Savepoint, Some(id)).is_err());
    }
}
