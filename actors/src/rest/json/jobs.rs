//! The job answers in Flink's shapes: `/jobs` (`JobIdsWithStatusOverview`), `/jobs/overview`
//! (`MultipleJobsDetails`) and `/jobs/:id` (`JobDetailsInfo`).
//!
//! A vertex is an operator, named by its uid. Weir tracks no per-subtask execution state, so
//! every subtask is counted in the state that matches the job's status ([`execution_state`]).

use serde_json::{json, Map, Value};
use weir::status::JobStatus;

use super::plan::plan;
use super::vertex::{chain_counters, io_metrics};
use crate::metrics::SubtaskSnapshot;
use crate::rest::jobs::{now_ms, RegisteredJob};

/// Every subtask's counters of one job: (chain head uid, subtask index, counters).
pub type Subtasks = [(String, u32, SubtaskSnapshot)];

/// Flink's `ExecutionState`s, in its order.
pub const EXECUTION_STATES: [&str; 10] = [
    "CREATED",
    "SCHEDULED",
    "DEPLOYING",
    "RUNNING",
    "FINISHED",
    "CANCELING",
    "CANCELED",
    "FAILED",
    "RECONCILING",
    "INITIALIZING",
];

/// Flink's `JobStatus` names, the keys of `timestamps`.
const JOB_STATUSES: [&str; 11] = [
    "INITIALIZING",
    "CREATED",
    "RUNNING",
    "FAILING",
    "FAILED",
    "CANCELLING",
    "CANCELED",
    "FINISHED",
    "RESTARTING",
    "SUSPENDED",
    "RECONCILING",
];

/// The execution state of every subtask of a job in `status`.
pub fn execution_state(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Created | JobStatus::Restarting => "CREATED",
        JobStatus::Running => "RUNNING",
        JobStatus::Failing | JobStatus::Canceling => "CANCELING",
        JobStatus::Canceled => "CANCELED",
        JobStatus::Finished => "FINISHED",
        JobStatus::Failed => "FAILED",
    }
}

/// `n` subtasks per execution state, all in the one of `status`.
pub(super) fn state_counts(status: JobStatus, n: u32) -> Map<String, Value> {
    let current = execution_state(status);
    EXECUTION_STATES
        .iter()
        .map(|s| (s.to_lowercase(), json!(if *s == current { n } else { 0 })))
        .collect()
}

/// Upper-case keys, as in a vertex's `tasks` and the job's `status-counts`.
fn upper(counts: Map<String, Value>) -> Value {
    Value::Object(
        counts
            .into_iter()
            .map(|(k, v)| (k.to_uppercase(), v))
            .collect(),
    )
}

pub(super) fn times(job: &RegisteredJob) -> (u64, i64, u64) {
    let end = job.end_time_ms();
    let duration = end.unwrap_or_else(now_ms).saturating_sub(job.start_time_ms);
    (job.start_time_ms, end.map_or(-1, |e| e as i64), duration)
}

fn subtask_total(job: &RegisteredJob) -> u32 {
    job.vertices.iter().map(|v| v.parallelism).sum()
}

/// `GET /jobs`: `{"jobs": [{"id", "status"}]}`.
pub fn jobs_list(jobs: &[RegisteredJob]) -> Value {
    let jobs: Vec<Value> = jobs
        .iter()
        .map(|j| {
            json!({
                "id": j.handle.job_id.to_string(),
                "status": j.handle.state().status.flink_name(),
            })
        })
        .collect();
    json!({ "jobs": jobs })
}

/// `GET /jobs/overview`: per job `jid`, `name`, `state`, times, `last-modification` and `tasks`
/// (subtasks per execution state, `total` and `pending`).
pub fn jobs_overview(jobs: &[RegisteredJob]) -> Value {
    let jobs: Vec<Value> = jobs
        .iter()
        .map(|j| {
            let status = j.handle.state().status;
            let (start, end, duration) = times(j);
            let history = j.history();
            let total = subtask_total(j);
            let mut tasks = state_counts(status, total);
            tasks.insert("total".into(), json!(total));
            tasks.insert("pending".into(), json!(0));
            json!({
                "jid": j.handle.job_id.to_string(),
                "name": j.name,
                "start-time": start,
                "end-time": end,
                "duration": duration,
                "state": status.flink_name(),
                "last-modification": history.entered.values().max().copied().unwrap_or(start),
                "tasks": tasks,
            })
        })
        .collect();
    json!({ "jobs": jobs })
}

/// `GET /jobs/:id`: Flink's `JobDetailsInfo` (nothing more: Flink's clients reject unknown
/// fields; failures are in `/jobs/:id/exceptions`, restarts in `/metrics`).
pub fn job_details(job: &RegisteredJob, subtasks: &Subtasks) -> Value {
    let state = job.handle.state();
    let (start, end, duration) = times(job);
    let history = job.history();
    let vertices: Vec<Value> = job
        .vertices
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let counters: Vec<&SubtaskSnapshot> = chain_counters(job, i, subtasks)
                .into_iter()
                .map(|(_, s)| s)
                .collect();
            json!({
                "id": v.uid,
                "slotSharingGroupId": "default",
                "name": v.name,
                "maxParallelism": v.max_parallelism,
                "parallelism": v.parallelism,
                "status": execution_state(state.status),
                "start-time": start,
                "end-time": end,
                "duration": duration,
                "tasks": upper(state_counts(state.status, v.parallelism)),
                "metrics": io_metrics(&counters),
            })
        })
        .collect();
    let timestamps: Map<String, Value> = JOB_STATUSES
        .iter()
        .map(|s| {
            (
                (*s).to_owned(),
                json!(history.entered.get(s).copied().unwrap_or(0)),
            )
        })
        .collect();
    let max_parallelism = job.vertices.iter().map(|v| v.max_parallelism).max();
    json!({
        "jid": job.handle.job_id.to_string(),
        "name": job.name,
        "isStoppable": false,
        "state": state.status.flink_name(),
        "job-type": "STREAMING",
        "start-time": start,
        "end-time": end,
        "duration": duration,
        "maxParallelism": max_parallelism.map_or(-1, i64::from),
        "now": now_ms(),
        "timestamps": timestamps,
        "vertices": vertices,
        "status-counts": upper(state_counts(state.status, job.vertices.len() as u32)),
        "plan": plan(job),
    })
}
