//! Checkpoint statistics as Flink's REST API and web UI show them: counts, the latest
//! completed / savepoint / failed / restored checkpoint, and a bounded history with per-subtask
//! acknowledgements.
//!
//! [`CheckpointStatsTracker`] is fed by the job manager (trigger, acknowledgement, completion,
//! failure, restore) and hands out a [`CheckpointStats`] value; it does no I/O.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::element::CheckpointKind;
use crate::ids::{CheckpointId, TaskId};

/// Flink's default `web.checkpoints.history`.
pub const DEFAULT_HISTORY: usize = 10;

/// Where a checkpoint stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CheckpointStatus {
    InProgress,
    Completed,
    Failed,
}

/// One subtask's acknowledgement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskCheckpointStats {
    pub task: TaskId,
    pub ack_timestamp_ms: u64,
    pub state_size: u64,
    /// Time the stream was stopped for the synchronous part.
    pub sync_duration_micros: u64,
    /// First to last barrier (exactly-once alignment).
    pub alignment_duration_micros: u64,
}

/// One checkpoint or savepoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointStatsEntry {
    pub id: CheckpointId,
    pub status: CheckpointStatus,
    pub kind: CheckpointKind,
    pub trigger_timestamp_ms: u64,
    pub latest_ack_timestamp_ms: Option<u64>,
    /// Trigger to the last acknowledgement (completed) or to the failure.
    pub end_to_end_duration_ms: u64,
    pub state_size: u64,
    /// Bytes written by this checkpoint (equal to `state_size` without incremental snapshots).
    pub checkpointed_size: u64,
    /// Longest alignment of any subtask.
    pub alignment_duration_micros: u64,
    /// Longest synchronous pause of any subtask.
    pub sync_duration_micros: u64,
    pub num_subtasks: usize,
    pub num_acknowledged_subtasks: usize,
    /// Whether this checkpoint was taken unaligned (its barriers overtook in-flight data).
    #[serde(default)]
    pub unaligned: bool,
    /// In-flight bytes persisted with the state (unaligned checkpoints; 0 otherwise).
    #[serde(default)]
    pub persisted_data: u64,
    pub external_path: Option<String>,
    pub failure_timestamp_ms: Option<u64>,
    pub failure_message: Option<String>,
    pub subtasks: Vec<SubtaskCheckpointStats>,
}

/// Flink's `counts`, the one set of checkpoint counters: the coordinator keeps `total`,
/// `in_progress`, `completed` and `failed` (`total == in_progress + completed + failed`;
/// aborted checkpoints of every reason, subsumed ones included, are `failed`, as in Flink's
/// statistics); the job's checkpoint lifecycle adds `restored`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointCounts {
    pub restored: u64,
    pub total: u64,
    pub in_progress: u64,
    pub completed: u64,
    pub failed: u64,
}

/// The snapshot the job was restored from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoredCheckpointStats {
    pub id: CheckpointId,
    pub restore_timestamp_ms: u64,
    pub is_savepoint: bool,
    pub external_path: String,
}

/// Everything at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointStats {
    pub counts: CheckpointCounts,
    pub latest_completed: Option<CheckpointStatsEntry>,
    pub latest_savepoint: Option<CheckpointStatsEntry>,
    pub latest_failed: Option<CheckpointStatsEntry>,
    pub latest_restored: Option<RestoredCheckpointStats>,
    /// Newest first, at most the history size; in-progress ones included.
    pub history: Vec<CheckpointStatsEntry>,
}

impl CheckpointStats {
    /// The entry of checkpoint `id`, if still in the history.
    pub fn get(&self, id: CheckpointId) -> Option<&CheckpointStatsEntry> {
        self.history.iter().find(|e| e.id == id)
    }
}

/// Collects statistics as checkpoints progress.
#[derive(Clone, Debug)]
pub struct CheckpointStatsTracker {
    history_size: usize,
    in_progress: BTreeMap<CheckpointId, CheckpointStatsEntry>,
    done: VecDeque<CheckpointStatsEntry>,
    stats: CheckpointStats,
}

impl Default for CheckpointStatsTracker {
    fn default() -> Self {
        Self::new(DEFAULT_HISTORY)
    }
}

impl CheckpointStatsTracker {
    pub fn new(history_size: usize) -> Self {
        Self {
            history_size: history_size.max(1),
            in_progress: BTreeMap::new(),
            done: VecDeque::new(),
            stats: CheckpointStats::default(),
        }
    }

    pub fn on_trigger(
        &mut self,
        id: CheckpointId,
        kind: CheckpointKind,
        trigger_timestamp_ms: u64,
        num_subtasks: usize,
    ) {
        self.in_progress.insert(
            id,
            CheckpointStatsEntry {
                id,
                status: CheckpointStatus::InProgress,
                kind,
                trigger_timestamp_ms,
                latest_ack_timestamp_ms: None,
                end_to_end_duration_ms: 0,
                state_size: 0,
                checkpointed_size: 0,
                alignment_duration_micros: 0,
                sync_duration_micros: 0,
                num_subtasks,
                num_acknowledged_subtasks: 0,
                unaligned: false,
                persisted_data: 0,
                external_path: None,
                failure_timestamp_ms: None,
                failure_message: None,
                subtasks: Vec::new(),
            },
        );
    }

    pub fn on_acknowledge(&mut self, id: CheckpointId, subtask: SubtaskCheckpointStats) {
        let Some(e) = self.in_progress.get_mut(&id) else {
            return;
        };
        if e.subtasks.iter().any(|s| s.task == subtask.task) {
            return;
        }
        e.latest_ack_timestamp_ms = Some(subtask.ack_timestamp_ms);
        e.end_to_end_duration_ms = subtask
            .ack_timestamp_ms
            .saturating_sub(e.trigger_timestamp_ms);
        e.state_size += subtask.state_size;
        e.checkpointed_size += subtask.state_size;
        e.alignment_duration_micros = e
            .alignment_duration_micros
            .max(subtask.alignment_duration_micros);
        e.sync_duration_micros = e.sync_duration_micros.max(subtask.sync_duration_micros);
        e.num_acknowledged_subtasks += 1;
        e.subtasks.push(subtask);
    }

    pub fn on_complete(&mut self, id: CheckpointId, external_path: String) {
        let Some(mut e) = self.in_progress.remove(&id) else {
            return;
        };
        e.status = CheckpointStatus::Completed;
        e.external_path = Some(external_path);
        if e.kind.is_savepoint() {
            self.stats.latest_savepoint = Some(e.clone());
        } else {
            self.stats.latest_completed = Some(e.clone());
        }
        self.push_done(e);
    }

    pub fn on_failure(&mut self, id: CheckpointId, timestamp_ms: u64, message: String) {
        let Some(mut e) = self.in_progress.remove(&id) else {
            return;
        };
        e.status = CheckpointStatus::Failed;
        e.end_to_end_duration_ms = timestamp_ms.saturating_sub(e.trigger_timestamp_ms);
        e.failure_timestamp_ms = Some(timestamp_ms);
        e.failure_message = Some(message);
        self.stats.latest_failed = Some(e.clone());
        self.push_done(e);
    }

    pub fn on_restore(&mut self, restored: RestoredCheckpointStats) {
        self.stats.latest_restored = Some(restored);
    }

    fn push_done(&mut self, e: CheckpointStatsEntry) {
        self.done.push_front(e);
        self.done.truncate(self.history_size);
    }

    /// The statistics now, with `counts` (kept by the coordinator, not here).
    pub fn snapshot(&self, counts: CheckpointCounts) -> CheckpointStats {
        let mut stats = self.stats.clone();
        stats.counts = counts;
        let mut history: Vec<CheckpointStatsEntry> =
            self.in_progress.values().rev().cloned().collect();
        history.extend(self.done.iter().cloned());
        history.sort_by_key(|e| std::cmp::Reverse(e.id));
        history.truncate(self.history_size);
        stats.history = history;
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(subtask: u32, at: u64, size: u64, align: u64) -> SubtaskCheckpointStats {
        SubtaskCheckpointStats {
            task: TaskId { vertex: 0, subtask },
            ack_timestamp_ms: at,
            state_size: size,
            sync_duration_micros: 10,
            alignment_duration_micros: align,
        }
    }

    #[test]
    fn a_checkpoint_goes_from_in_progress_to_completed() {
        let mut t = CheckpointStatsTracker::default();
        t.on_trigger(CheckpointId(1), CheckpointKind::PERIODIC, 1000, 2);
        t.on_acknowledge(CheckpointId(1), ack(0, 1010, 100, 5));
        t.on_acknowledge(CheckpointId(1), ack(0, 1011, 100, 5));
        let s = t.snapshot(CheckpointCounts::default());
        assert_eq!(s.history[0].status, CheckpointStatus::InProgress);
        assert_eq!(s.history[0].num_acknowledged_subtasks, 1);
        t.on_acknowledge(CheckpointId(1), ack(1, 1030, 50, 9));
        t.on_complete(CheckpointId(1), "/x/chk-1".into());
        let s = t.snapshot(CheckpointCounts::default());
        let c = s.latest_completed.unwrap();
        assert_eq!(c.status, CheckpointStatus::Completed);
        assert_eq!(c.end_to_end_duration_ms, 30);
        assert_eq!(c.state_size, 150);
        assert_eq!(c.alignment_duration_micros, 9);
        assert_eq!(c.subtasks.len(), 2);
        // The counts are the coordinator's (see the lifecycle's tests); the tracker passes
        // them through.
        let counts = CheckpointCounts {
            restored: 0,
            total: 1,
            in_progress: 0,
            completed: 1,
            failed: 0,
        };
        assert_eq!(t.snapshot(counts).counts, counts);
    }

    #[test]
    fn failures_savepoints_and_history_bound() {
        let mut t = CheckpointStatsTracker::new(3);
        for i in 1..=5 {
            t.on_trigger(CheckpointId(i), CheckpointKind::PERIODIC, i * 100, 1);
        }
        t.on_failure(CheckpointId(1), 150, "expired".into());
        t.on_complete(CheckpointId(2), "p2".into());
        t.on_trigger(
            CheckpointId(6),
            CheckpointKind::Savepoint {
                format: Default::default(),
            },
            700,
            1,
        );
        t.on_complete(CheckpointId(6), "sp".into());
        let s = t.snapshot(CheckpointCounts::default());
        assert_eq!(
            s.latest_failed.as_ref().unwrap().failure_message.as_deref(),
            Some("expired")
        );
        assert_eq!(s.latest_failed.as_ref().unwrap().end_to_end_duration_ms, 50);
        assert_eq!(s.latest_savepoint.unwrap().id, CheckpointId(6));
        assert_eq!(s.latest_completed.unwrap().id, CheckpointId(2));
        let ids: Vec<u64> = s.history.iter().map(|e| e.id.0).collect();
        assert_eq!(ids, vec![6, 5, 4]);
        assert!(s.history[1..]
            .iter()
            .all(|e| e.status == CheckpointStatus::InProgress));
        assert_eq!(s.latest_failed.map(|e| e.id), Some(CheckpointId(1)));
    }

    #[test]
    fn unknown_ids_are_ignored() {
        let mut t = CheckpointStatsTracker::default();
        t.on_acknowledge(CheckpointId(9), ack(0, 1, 1, 1));
        t.on_complete(CheckpointId(9), "x".into());
        t.on_failure(CheckpointId(9), 1, "x".into());
        assert_eq!(
            t.snapshot(CheckpointCounts::default()),
            CheckpointStats::default()
        );
    }
}
