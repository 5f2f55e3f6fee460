//! The job answers in Flink's shapes: `/jobs` (`JobIdsWithStatusOverview`), `/jobs/overview`
//! (`MultipleJobsDetails`), `/jobs/:id` (`JobDetailsInfo`), `/jobs/:id/plan` (`JobPlanInfo`),
//! `/jobs/:id/vertices/:vid` (`JobVertexDetailsInfo`) and `/jobs/:id/exceptions`
//! (`JobExceptionsInfoWithHistory`).
//!
//! A vertex is an operator, named by its uid. Weir tracks no per-subtask execution state, so
//! every subtask is counted in the state that matches the job's status ([`execution_state`]).
//! A chained operator reports its chain's counters: records in enter the chain's head, records
//! out leave its tail, and the operators in between pass records by direct calls.

use serde_json::{json, Map, Value};
use weir::graph::VertexRole;
use weir::partition::Partitioning;
use weir::status::JobStatus;

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
fn state_counts(status: JobStatus, n: u32) -> Map<String, Value> {
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

fn times(job: &RegisteredJob) -> (u64, i64, u64) {
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

/// The head of the chain vertex `index` runs in, and the counters of that chain's subtasks.
fn chain_counters<'a>(
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
fn io_metrics(counters: &[&SubtaskSnapshot]) -> Value {
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

fn vertex_id(job: &RegisteredJob, index: usize) -> &str {
    &job.vertices[index].uid
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

fn ship_strategy(p: Partitioning) -> &'static str {
    match p {
        Partitioning::Forward => "FORWARD",
        Partitioning::Rebalance => "REBALANCE",
        Partitioning::KeyBy => "HASH",
        Partitioning::Broadcast => "BROADCAST",
    }
}

fn role(r: VertexRole) -> &'static str {
    match r {
        VertexRole::Source => "Source",
        VertexRole::Operator => "Operator",
        VertexRole::KeyedOperator => "Keyed operator",
        VertexRole::Sink => "Sink",
    }
}

/// Flink's JSON plan: `jid`, `name`, `type`, `nodes` (one per operator, with its `inputs`).
/// Each node also names the head of the chain it runs in (`chain`), which Flink's plan (one
/// node per chain) shows by grouping.
fn plan(job: &RegisteredJob) -> Value {
    let nodes: Vec<Value> = job
        .vertices
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let inputs: Vec<Value> = job
                .edges
                .iter()
                .filter(|e| e.to == i)
                .enumerate()
                .map(|(num, e)| {
                    json!({
                        "num": num,
                        "id": vertex_id(job, e.from),
                        "ship_strategy": ship_strategy(e.partitioning),
                        "exchange": "pipelined_bounded",
                    })
                })
                .collect();
            let head = job
                .chain_of(i)
                .and_then(|c| c.first())
                .copied()
                .unwrap_or(i);
            let mut node = json!({
                "id": v.uid,
                "parallelism": v.parallelism,
                "operator": role(v.role),
                "operator_strategy": "",
                "description": v.name,
                "optimizer_properties": {},
                "chain": vertex_id(job, head),
            });
            if !inputs.is_empty() {
                node["inputs"] = json!(inputs);
            }
            node
        })
        .collect();
    json!({
        "jid": job.handle.job_id.to_string(),
        "name": job.name,
        "type": "STREAMING",
        "nodes": nodes,
    })
}

/// `GET /jobs/:id/plan`: `{"plan": ...}`.
pub fn job_plan(job: &RegisteredJob) -> Value {
    json!({ "plan": plan(job) })
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

/// `GET /jobs/:id/exceptions`: Flink's `JobExceptionsInfoWithHistory` — the failures the job
/// went through, newest first (the deprecated `root-exception` is the newest).
pub fn exceptions(job: &RegisteredJob) -> Value {
    let history = job.history();
    let entries: Vec<Value> = history
        .failures
        .iter()
        .rev()
        .map(|f| {
            json!({
                "exceptionName": "weir::JobFailure",
                "stacktrace": f.message,
                "timestamp": f.timestamp_ms,
                "taskName": null,
                "endpoint": null,
                "taskManagerId": null,
                "failureLabels": {},
                "concurrentExceptions": [],
            })
        })
        .collect();
    let newest = history.failures.last();
    json!({
        "root-exception": newest.map(|f| f.message.clone()),
        "timestamp": newest.map(|f| f.timestamp_ms),
        "all-exceptions": [],
        "truncated": false,
        "exceptionHistory": {
            "entries": entries,
            "truncated": history.truncated,
        },
    })
}
