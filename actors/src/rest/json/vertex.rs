//! `GET /jobs/:id/vertices/:uid` (Flink's `JobVertexDetailsInfo`) and the per-vertex metrics
//! that `/jobs/:id` shows too (`IOMetricsInfo` with the accumulated times).
//!
//! A chained operator reports its chain's counters: records in enter the chain's head, records
//! out leave its tail, and the operators in between pass records by direct calls.

use serde_json::{json, Value};

use super::jobs::{execution_state, times, Subtasks};
use crate::metrics::SubtaskSnapshot;
use crate::rest::jobs::{now_ms, RegisteredJob};

/// The head of the chain vertex `index` runs in, and the counters of that chain's subtasks.
pub(super) fn chain_counters<'a>(
    job: &RegisteredJob,
    index: usize,
    subtasks: &'a Subtasks,
) -> Vec<(u32, &'a SubtaskSnapshot)> {
    let head = job
        .chain_of(index)
        .and_then(|c| c.first())
        .copied()
        .unwrap_or(index);
    let uid = &job.vertices[head].uid;
    subtasks
        .iter()
        .filter(|(u, _, _)| u == uid)
        .map(|(_, i, s)| (*i, s))
        .collect()
}

/// Flink's `IOMetricsInfo` plus the accumulated times (ms), summed over `counters`. Rates are
/// the client's to compute from two answers (as Flink's dashboard does), or `/metrics`'.
pub(super) fn io_metrics(counters: &[&SubtaskSnapshot]) -> Value {
    let sum = |f: fn(&SubtaskSnapshot) -> u64| counters.iter().map(|s| f(s)).sum::<u64>();
    json!({
        "read-bytes": 0,
        "read-bytes-complete": false,
        "write-bytes": 0,
        "write-bytes-complete": false,
        "read-records": sum(|s| s.records_in),
        "read-records-complete": true,
        "write-records": sum(|s| s.records_out),
        "write-records-complete": true,
        "accumulated-backpressured-time": sum(|s| s.backpressured.as_millis() as u64),
        "accumulated-idle-time": 0,
        "accumulated-busy-time": sum(|s| s.busy.as_millis() as u64) as f64,
    })
}

pub(super) fn vertex_id(job: &RegisteredJob, index: usize) -> &str {
    &job.vertices[index].uid
}

/// `GET /jobs/:id/vertices/:vid`: Flink's `JobVertexDetailsInfo` of vertex `index`, with each
/// subtask's execution attempt (Weir's attempt is the job's restart count).
pub fn vertex_details(job: &RegisteredJob, index: usize, subtasks: &Subtasks) -> Option<Value> {
    let v = job.vertices.get(index)?;
    let state = job.handle.state();
    let (start, end, duration) = times(job);
    let counters = chain_counters(job, index, subtasks);
    let status = execution_state(state.status);
    let running = if status == "RUNNING" { duration } else { 0 };
    let subtasks: Vec<Value> = (0..v.parallelism)
        .map(|i| {
            let own: Vec<&SubtaskSnapshot> = counters
                .iter()
                .filter(|(s, _)| *s == i)
                .map(|(_, c)| *c)
                .collect();
            json!({
                "subtask": i,
                "status": status,
                "attempt": state.restarts,
                "endpoint": "localhost",
                "start-time": start,
                "end-time": end,
                "duration": duration,
                "metrics": io_metrics(&own),
                "taskmanager-id": "localhost",
                "status-duration": {
                    "CREATED": 0,
                    "SCHEDULED": 0,
                    "DEPLOYING": 0,
                    "INITIALIZING": 0,
                    "RUNNING": running,
                },
                "start_time": start,
            })
        })
        .collect();
    Some(json!({
        "id": v.uid,
        "name": v.name,
        "parallelism": v.parallelism,
        "maxParallelism": v.max_parallelism,
        "now": now_ms(),
        "subtasks": subtasks,
    }))
}
