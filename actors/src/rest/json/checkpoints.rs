//! Checkpoint statistics in Flink's shapes: `CheckpointingStatistics` (counts, summary, latest,
//! history), `CheckpointStatistics` of one checkpoint with per-vertex `tasks`, and
//! `CheckpointConfigInfo`; one vertex's subtasks in one checkpoint are in
//! [`super::checkpoint_subtasks`].
//!
//! Room for unaligned checkpoints: an entry's `unaligned` flag makes its `checkpoint_type`
//! `UNALIGNED_CHECKPOINT` and each subtask's `unaligned_checkpoint` true, and its
//! `persisted_data` (in-flight bytes written with the state) is reported as Flink does.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use weir::checkpoint::stats::{
    CheckpointStats, CheckpointStatsEntry, CheckpointStatus, SubtaskCheckpointStats,
};
use weir::checkpoint::{CheckpointConfig, CheckpointingMode, ExternalizedRetention, StorageConfig};
use weir::element::{CheckpointKind, SavepointFormat};

use crate::rest::jobs::RegisteredJob;

/// Flink's `interval` when periodic checkpoints are off (`Long.MAX_VALUE`).
const DISABLED_INTERVAL: u64 = i64::MAX as u64;

pub(super) fn checkpoint_status(status: CheckpointStatus) -> &'static str {
    match status {
        CheckpointStatus::InProgress => "IN_PROGRESS",
        CheckpointStatus::Completed => "COMPLETED",
        CheckpointStatus::Failed => "FAILED",
    }
}

fn savepoint_format(kind: &CheckpointKind) -> Value {
    let format = match kind {
        CheckpointKind::Checkpoint { .. } => return Value::Null,
        CheckpointKind::Savepoint { format } | CheckpointKind::StopWithSavepoint { format, .. } => {
            format
        }
    };
    json!(match format {
        SavepointFormat::Canonical => "CANONICAL",
        SavepointFormat::Native => "NATIVE",
    })
}

/// Flink's `checkpoint_type`: an unaligned checkpoint is `UNALIGNED_CHECKPOINT`.
fn checkpoint_type(entry: &CheckpointStatsEntry) -> &'static str {
    match entry.kind {
        CheckpointKind::Checkpoint { .. } if entry.unaligned => "UNALIGNED_CHECKPOINT",
        kind => kind.rest_name(),
    }
}

/// Flink's type discriminator of a `CheckpointStatistics`.
fn class_name(status: CheckpointStatus) -> &'static str {
    match status {
        CheckpointStatus::InProgress => "in_progress",
        CheckpointStatus::Completed => "completed",
        CheckpointStatus::Failed => "failed",
    }
}

/// Flink's `CheckpointStatistics` of one checkpoint, with `tasks` per vertex (keyed by uid).
pub fn checkpoint_entry(entry: &CheckpointStatsEntry, job: &RegisteredJob) -> Value {
    let mut per_vertex: BTreeMap<u32, Vec<&SubtaskCheckpointStats>> = BTreeMap::new();
    for s in &entry.subtasks {
        per_vertex.entry(s.task.vertex).or_default().push(s);
    }
    let mut tasks = serde_json::Map::new();
    for (index, vertex) in job.vertices.iter().enumerate() {
        let acks = per_vertex
            .get(&(index as u32))
            .map_or(&[][..], Vec::as_slice);
        tasks.insert(
            vertex.uid.clone(),
            task_statistics(entry, json!(vertex.uid), vertex.parallelism, acks),
        );
    }
    let mut v = json!({
        "id": entry.id.0,
        "status": checkpoint_status(entry.status),
        "is_savepoint": entry.kind.is_savepoint(),
        "savepointFormat": savepoint_format(&entry.kind),
        "checkpoint_type": checkpoint_type(entry),
        "trigger_timestamp": entry.trigger_timestamp_ms,
        "latest_ack_timestamp": entry.latest_ack_timestamp_ms.map_or(-1, |t| t as i64),
        "checkpointed_size": entry.checkpointed_size,
        "state_size": entry.state_size,
        "end_to_end_duration": entry.end_to_end_duration_ms,
        "alignment_buffered": 0,
        "processed_data": 0,
        "persisted_data": entry.persisted_data,
        "num_subtasks": entry.num_subtasks,
        "num_acknowledged_subtasks": entry.num_acknowledged_subtasks,
        "tasks": tasks,
        "className": class_name(entry.status),
    });
    let o = v.as_object_mut().expect("an object");
    match entry.status {
        CheckpointStatus::Completed => {
            o.insert("external_path".into(), json!(entry.external_path));
            o.insert("discarded".into(), json!(false));
        }
        CheckpointStatus::Failed => {
            o.insert(
                "failure_timestamp".into(),
                json!(entry.failure_timestamp_ms.unwrap_or(0)),
            );
            o.insert("failure_message".into(), json!(entry.failure_message));
        }
        CheckpointStatus::InProgress => {}
    }
    v
}

/// Flink's `TaskCheckpointStatistics` of one vertex in `entry` (named `id`), from the
/// acknowledgements `acks` of its subtasks.
pub fn task_statistics<S: std::borrow::Borrow<SubtaskCheckpointStats>>(
    entry: &CheckpointStatsEntry,
    id: Value,
    parallelism: u32,
    acks: &[S],
) -> Value {
    let acks = || acks.iter().map(|a| a.borrow());
    let latest_ack = acks().map(|a| a.ack_timestamp_ms).max();
    let size: u64 = acks().map(|a| a.state_size).sum();
    json!({
        "id": id,
        "status": checkpoint_status(entry.status),
        "latest_ack_timestamp": latest_ack.map_or(-1, |t| t as i64),
        "checkpointed_size": size,
        "state_size": size,
        "end_to_end_duration": latest_ack.map_or(-1, |t| t.saturating_sub(entry.trigger_timestamp_ms) as i64),
        "alignment_buffered": 0,
        "processed_data": 0,
        "persisted_data": acks().map(|a| a.persisted_data).sum::<u64>(),
        "num_subtasks": parallelism,
        "num_acknowledged_subtasks": acks().count(),
    })
}

/// Flink's `StatsSummaryDto` of `values` (nearest-rank percentiles; zeros when empty).
pub fn summary_of(values: &[u64]) -> Value {
    if values.is_empty() {
        return json!({"min": 0, "max": 0, "avg": 0, "p50": 0.0, "p90": 0.0, "p95": 0.0, "p99": 0.0, "p999": 0.0});
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = |q: f64| {
        let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i] as f64
    };
    let sum: u128 = sorted.iter().map(|&v| u128::from(v)).sum();
    json!({
        "min": sorted[0],
        "max": sorted[sorted.len() - 1],
        "avg": (sum / sorted.len() as u128) as u64,
        "p50": rank(0.5),
        "p90": rank(0.9),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "p999": rank(0.999),
    })
}

/// `GET /jobs/:id/checkpoints`: Flink's `CheckpointingStatistics`. The summary covers the
/// completed checkpoints and savepoints still in the history.
pub fn checkpointing_statistics(stats: &CheckpointStats, job: &RegisteredJob) -> Value {
    let completed: Vec<&CheckpointStatsEntry> = stats
        .history
        .iter()
        .filter(|e| e.status == CheckpointStatus::Completed)
        .collect();
    let field = |f: fn(&CheckpointStatsEntry) -> u64| -> Vec<u64> {
        completed.iter().map(|e| f(e)).collect()
    };
    let zeros = vec![0; completed.len()];
    let restored = stats.latest_restored.as_ref().map(|r| {
        json!({
            "id": r.id.0,
            "restore_timestamp": r.restore_timestamp_ms,
            "is_savepoint": r.is_savepoint,
            "external_path": r.external_path,
        })
    });
    let entry = |e: &Option<CheckpointStatsEntry>| e.as_ref().map(|e| checkpoint_entry(e, job));
    json!({
        "counts": {
            "restored": stats.counts.restored,
            "total": stats.counts.total,
            "in_progress": stats.counts.in_progress,
            "completed": stats.counts.completed,
            "failed": stats.counts.failed,
        },
        "summary": {
            "checkpointed_size": summary_of(&field(|e| e.checkpointed_size)),
            "state_size": summary_of(&field(|e| e.state_size)),
            "end_to_end_duration": summary_of(&field(|e| e.end_to_end_duration_ms)),
            "alignment_buffered": summary_of(&zeros),
            "processed_data": summary_of(&zeros),
            "persisted_data": summary_of(&field(|e| e.persisted_data)),
        },
        "latest": {
            "completed": entry(&stats.latest_completed),
            "savepoint": entry(&stats.latest_savepoint),
            "failed": entry(&stats.latest_failed),
            "restored": restored,
        },
        "history": stats.history.iter().map(|e| checkpoint_entry(e, job)).collect::<Vec<_>>(),
    })
}

/// The entry of checkpoint `id`: from the history, else the latest ones.
pub fn find_checkpoint(stats: &CheckpointStats, id: u64) -> Option<&CheckpointStatsEntry> {
    stats
        .history
        .iter()
        .chain(&stats.latest_completed)
        .chain(&stats.latest_savepoint)
        .chain(&stats.latest_failed)
        .find(|e| e.id.0 == id)
}

/// `GET /jobs/:id/checkpoints/config`: Flink's `CheckpointConfigInfo`.
pub fn checkpoint_config(config: &CheckpointConfig, state_backend: &str) -> Value {
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    let (enabled, delete_on_cancellation) = match config.externalized_retention {
        ExternalizedRetention::NoExternalizedCheckpoints => (false, false),
        ExternalizedRetention::DeleteOnCancellation => (true, true),
        ExternalizedRetention::RetainOnCancellation => (true, false),
    };
    let storage = match &config.storage {
        StorageConfig::JobManager { .. } => "JobManagerCheckpointStorage",
        StorageConfig::FileSystem { .. } => "FileSystemCheckpointStorage",
    };
    json!({
        "mode": match config.mode {
            CheckpointingMode::ExactlyOnce => "exactly_once",
            CheckpointingMode::AtLeastOnce => "at_least_once",
        },
        "interval": config.interval.map_or(DISABLED_INTERVAL, ms),
        "timeout": ms(config.timeout),
        "min_pause": ms(config.min_pause),
        "max_concurrent": config.max_concurrent,
        "externalization": {
            "enabled": enabled,
            "delete_on_cancellation": delete_on_cancellation,
        },
        "state_backend": state_backend,
        "checkpoint_storage": storage,
        "unaligned_checkpoints": config.unaligned,
        "tolerable_failed_checkpoints": config.tolerable_failures,
        "aligned_checkpoint_timeout": 0,
        "checkpoints_after_tasks_finish": true,
        "state_changelog_enabled": false,
        "changelog_periodic_materialization_interval": 0,
        "changelog_storage": "",
        "num_retained": config.num_retained,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_use_nearest_rank_percentiles() {
        let s = summary_of(&[10, 20, 30, 40]);
        assert_eq!(s["min"], 10);
        assert_eq!(s["max"], 40);
        assert_eq!(s["avg"], 25);
        assert_eq!(s["p50"], 20.0);
        assert_eq!(s["p90"], 40.0);
        let empty = summary_of(&[]);
        assert_eq!(empty["max"], 0);
        assert_eq!(empty["p999"], 0.0);
    }

    #[test]
    fn a_disabled_interval_is_long_max_as_in_flink() {
        let c = checkpoint_config(&CheckpointConfig::default(), "hashmap");
        assert_eq!(c["interval"], json!(i64::MAX));
        assert_eq!(c["mode"], "exactly_once");
        assert_eq!(c["checkpoint_storage"], "JobManagerCheckpointStorage");
        assert_eq!(c["externalization"]["enabled"], false);
    }
}
