//! Retention: which completed checkpoints the engine keeps, and when it deletes them.
//!
//! - [`CompletedCheckpointStore`] holds the ids of the newest `num-retained` completed
//!   checkpoints (Flink's `CompletedCheckpointStore`). The coordinator adds each checkpoint it
//!   completes; whatever falls out is returned so the runtime can delete it
//!   (`CoordinatorAction::Discard`). Savepoints are owned by the user and never enter the store.
//! - [`discard_on_termination`] decides, from `externalized-checkpoint-retention` and the job's
//!   final status, whether the retained checkpoints are deleted when the job ends.
//!
//! Only ids live here; the runtime maps them to storage paths.

use std::collections::VecDeque;

use crate::checkpoint::options::ExternalizedRetention;
use crate::ids::CheckpointId;
use crate::status::JobStatus;

/// The newest `num_retained` completed checkpoints, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedCheckpointStore {
    num_retained: usize,
    retained: VecDeque<CheckpointId>,
}

impl CompletedCheckpointStore {
    /// An empty store keeping `num_retained` checkpoints. Zero is treated as one: the
    /// checkpoint that just completed is always kept (the configuration rejects zero anyway).
    pub fn new(num_retained: u32) -> Self {
        let num_retained = (num_retained as usize).max(1);
        Self {
            num_retained,
            retained: VecDeque::with_capacity(num_retained + 1),
        }
    }

    /// How many checkpoints this store keeps.
    pub fn num_retained(&self) -> usize {
        self.num_retained
    }

    /// Records a completed checkpoint and returns the ids that no longer need to be kept,
    /// oldest first.
    ///
    /// Ids are kept in order, so adding an id older than the retained ones is harmless: if it is
    /// not among the newest `num_retained`, it is returned at once. Adding an id that is already
    /// retained changes nothing.
    pub fn add(&mut self, id: CheckpointId) -> Vec<CheckpointId> {
        match self.retained.binary_search(&id) {
            Ok(_) => return Vec::new(),
            Err(position) => self.retained.insert(position, id),
        }
        let excess = self.retained.len().saturating_sub(self.num_retained);
        self.retained.drain(..excess).collect()
    }

    /// Stops retaining `id` without deleting it: a checkpoint found damaged is left where it is
    /// for a person to inspect, and no later retention decision touches it. True if it was
    /// retained.
    pub fn forget(&mut self, id: CheckpointId) -> bool {
        match self.retained.binary_search(&id) {
            Ok(position) => self.retained.remove(position).is_some(),
            Err(_) => false,
        }
    }

    /// The newest retained checkpoint: the one a restart restores from.
    pub fn latest(&self) -> Option<CheckpointId> {
        self.retained.back().copied()
    }

    /// Every retained checkpoint, oldest first.
    pub fn ids(&self) -> Vec<CheckpointId> {
        self.retained.iter().copied().collect()
    }

    /// True when nothing is retained.
    pub fn is_empty(&self) -> bool {
        self.retained.is_empty()
    }
}

/// Whether the retained checkpoints are deleted when the job reaches `status`.
///
/// | retention                   | CANCELED | FINISHED | FAILED |
/// |-----------------------------|----------|----------|--------|
/// | `NO_EXTERNALIZED_CHECKPOINTS` | delete   | delete   | keep   |
/// | `DELETE_ON_CANCELLATION`      | delete   | keep     | keep   |
/// | `RETAIN_ON_CANCELLATION`      | keep     | keep     | keep   |
///
/// A failed job always keeps its checkpoints, so that it can be resumed from them. A status that
/// is not terminal never deletes anything: the job still needs its checkpoints to restart.
pub fn discard_on_termination(retention: ExternalizedRetention, status: JobStatus) -> bool {
    match (retention, status) {
        (ExternalizedRetention::NoExternalizedCheckpoints, JobStatus::Canceled)
        | (ExternalizedRetention::NoExternalizedCheckpoints, JobStatus::Finished)
        | (ExternalizedRetention::DeleteOnCancellation, JobStatus::Canceled) => true,
        (
            ExternalizedRetention::NoExternalizedCheckpoints
            | ExternalizedRetention::DeleteOnCancellation
            | ExternalizedRetention::RetainOnCancellation,
            JobStatus::Created
            | JobStatus::Running
            | JobStatus::Failing
            | JobStatus::Restarting
            | JobStatus::Canceling
            | JobStatus::Canceled
            | JobStatus::Finished
            | JobStatus::Failed,
        ) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(raw: &[u64]) -> Vec<CheckpointId> {
        raw.iter().copied().map(CheckpointId).collect()
    }

    #[test]
    fn keeps_the_newest_and_discards_the_oldest_first() {
        let mut store = CompletedCheckpointStore::new(2);
        assert_eq!(store.latest(), None);
        assert!(store.add(CheckpointId(1)).is_empty());
        assert!(store.add(CheckpointId(2)).is_empty());
        assert_eq!(store.add(CheckpointId(5)), ids(&[1]));
        assert_eq!(store.ids(), ids(&[2, 5]));
        assert_eq!(store.latest(), Some(CheckpointId(5)));
    }

    #[test]
    fn one_retained_replaces_the_previous_checkpoint() {
        let mut store = CompletedCheckpointStore::new(1);
        assert!(store.add(CheckpointId(3)).is_empty());
        assert_eq!(store.add(CheckpointId(4)), ids(&[3]));
        assert_eq!(store.ids(), ids(&[4]));
    }

    #[test]
    fn zero_retained_still_keeps_the_latest() {
        let mut store = CompletedCheckpointStore::new(0);
        assert_eq!(store.num_retained(), 1);
        assert!(store.add(CheckpointId(1)).is_empty());
        assert_eq!(store.latest(), Some(CheckpointId(1)));
    }

    #[test]
    fn an_older_or_repeated_id_does_not_evict_newer_ones() {
        let mut store = CompletedCheckpointStore::new(2);
        store.add(CheckpointId(5));
        store.add(CheckpointId(7));
        assert_eq!(store.add(CheckpointId(3)), ids(&[3]));
        assert!(store.add(CheckpointId(7)).is_empty());
        assert_eq!(store.add(CheckpointId(6)), ids(&[5]));
        assert_eq!(store.ids(), ids(&[6, 7]));
    }

    #[test]
    fn discard_on_termination_table() {
        use ExternalizedRetention::*;
        use JobStatus::*;
        // Every (retention, status) cell; `true` means delete.
        let expected = |retention: ExternalizedRetention, status: JobStatus| match status {
            Canceled => retention != RetainOnCancellation,
            Finished => retention == NoExternalizedCheckpoints,
            Failed | Created | Running | Failing | Restarting | Canceling => false,
        };
        let mut deleting = Vec::new();
        for retention in [
            NoExternalizedCheckpoints,
            DeleteOnCancellation,
            RetainOnCancellation,
        ] {
            for status in JobStatus::ALL {
                let got = discard_on_termination(retention, status);
                assert_eq!(got, expected(retention, status), "{retention:?} {status}");
                if got {
                    deleting.push((retention, status));
                }
            }
        }
        // Spelled out, so the table above cannot drift silently.
        assert_eq!(
            deleting,
            [
                (NoExternalizedCheckpoints, Canceled),
                (NoExternalizedCheckpoints, Finished),
                (DeleteOnCancellation, Canceled),
            ]
        );
    }
}
