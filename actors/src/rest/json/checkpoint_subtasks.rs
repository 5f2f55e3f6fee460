//! `GET /jobs/:id/checkpoints/details/:cid/subtasks/:uid`: Flink's
//! `TaskCheckpointStatisticsWithSubtaskDetails` — one vertex in one checkpoint, with a summary
//! over its acknowledged subtasks and every subtask's figures.

use serde_json::{json, Value};
use weir::checkpoint::stats::{CheckpointStatsEntry, SubtaskCheckpointStats};

use super::checkpoints::{summary_of, task_statistics};
use crate::rest::jobs::RegisteredJob;

/// `GET /jobs/:id/checkpoints/details/:cid/subtasks/:vid`: Flink's
/// `TaskCheckpointStatisticsWithSubtaskDetails` of vertex `index` in `entry` — the vertex's
/// figures, their summary over its acknowledged subtasks, and each subtask (`completed` with its
/// figures, or `pending_or_failed`). Durations in milliseconds; the asynchronous part is what
/// remains of a subtask's end-to-end time after its alignment and synchronous part.
pub fn task_checkpoint_details(
    entry: &CheckpointStatsEntry,
    job: &RegisteredJob,
    index: usize,
) -> Option<Value> {
    let vertex = job.vertices.get(index)?;
    let acks: Vec<&SubtaskCheckpointStats> = entry
        .subtasks
        .iter()
        .filter(|s| s.task.vertex as usize == index)
        .collect();
    let ms = |micros: u64| micros / 1000;
    let e2e = |a: &SubtaskCheckpointStats| {
        a.ack_timestamp_ms
            .saturating_sub(entry.trigger_timestamp_ms)
    };
    let asynchronous = |a: &SubtaskCheckpointStats| {
        e2e(a).saturating_sub(ms(a.alignment_duration_micros) + ms(a.sync_duration_micros))
    };
    let of = |f: &dyn Fn(&SubtaskCheckpointStats) -> u64| -> Vec<u64> {
        acks.iter().map(|a| f(a)).collect()
    };
    let zeros = vec![0; acks.len()];
    let subtasks: Vec<Value> = (0..vertex.parallelism)
        .map(|i| match acks.iter().find(|a| a.task.subtask == i) {
            Some(a) => json!({
                "index": i,
                "status": "completed",
                "ack_timestamp": a.ack_timestamp_ms,
                "end_to_end_duration": e2e(a),
                "state_size": a.state_size,
                "checkpointed_size": a.state_size,
                "checkpoint": {"sync": ms(a.sync_duration_micros), "async": asynchronous(a)},
                "alignment": {
                    "buffered": 0,
                    "processed": 0,
                    "persisted": a.persisted_data,
                    "duration": ms(a.alignment_duration_micros),
                },
                "start_delay": 0,
                "unaligned_checkpoint": a.unaligned,
                "aborted": false,
            }),
            None => json!({"index": i, "status": "pending_or_failed"}),
        })
        .collect();
    let mut v = task_statistics(entry, json!(entry.id.0), vertex.parallelism, &acks);
    let o = v.as_object_mut().expect("an object");
    o.insert(
        "summary".into(),
        json!({
            "checkpointed_size": summary_of(&of(&|a| a.state_size)),
            "state_size": summary_of(&of(&|a| a.state_size)),
            "end_to_end_duration": summary_of(&of(&e2e)),
            "checkpoint_duration": {
                "sync": summary_of(&of(&|a| ms(a.sync_duration_micros))),
                "async": summary_of(&of(&asynchronous)),
            },
            "alignment": {
                "buffered": summary_of(&zeros),
                "processed": summary_of(&zeros),
                "persisted": summary_of(&of(&|a| a.persisted_data)),
                "duration": summary_of(&of(&|a| ms(a.alignment_duration_micros))),
            },
            "start_delay": summary_of(&zeros),
        }),
    );
    o.insert("subtasks".into(), json!(subtasks));
    Some(v)
}
