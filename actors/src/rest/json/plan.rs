//! `GET /jobs/:id/plan` (and `plan` in `/jobs/:id`): Flink's JSON plan — `jid`, `name`, `type`,
//! `nodes`, one per operator with its `inputs` and their partitioning (`ship_strategy`). Each
//! node also names the head of the chain it runs in (`chain`), which Flink's plan (one node per
//! chain) shows by grouping; the plan is free-form JSON in Flink's schema, so clients accept it.

use serde_json::{json, Value};
use weir::graph::VertexRole;
use weir::partition::Partitioning;

use super::vertex::vertex_id;
use crate::rest::jobs::RegisteredJob;

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

/// The plan of `job`.
pub(super) fn plan(job: &RegisteredJob) -> Value {
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
