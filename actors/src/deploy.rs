//! Deploying one execution attempt: turning the [`PhysicalPlan`] into started subtask actors.
//!
//! Subtasks are created in the plan's order (downstream chains first, so every output
//! channel's receiver exists), placed round-robin on the job's arbiters (one per core). Once all
//! exist, each is told where its input channels' credits go back ([`Init`]); the job manager
//! starts the sources when every `Init` has been answered.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use weir::chain::{Chain, ChainMember};
use weir::checkpoint::storage::CheckpointStorage;
use weir::gate::AlignmentMode;
use weir::graph::JobGraph;
use weir::ids::{CheckpointId, JobId, TaskId};
use weir::operator::SubtaskInfo;
use weir::plan::{output_edge, PhysicalPlan};
use weir::vertex::RestoredState;

use crate::locations::LocationRegistry;
use crate::messages::{Credit, Init, TaskEvent};
use crate::task::{OutputChannel, Task, TaskSetup};

/// A deployed subtask.
pub(crate) struct DeployedTask {
    pub id: TaskId,
    pub addr: Addr<Task>,
    pub is_source: bool,
}

/// What every subtask of an attempt shares.
pub(crate) struct Deployment<'a> {
    pub job_id: JobId,
    pub attempt: u32,
    pub graph: &'a Arc<JobGraph>,
    pub plan: &'a PhysicalPlan,
    pub storage: &'a CheckpointStorage,
    pub locations: &'a LocationRegistry,
    pub manager: Recipient<TaskEvent>,
    /// The snapshot the attempt restores (operators start differently then).
    pub restored_from: Option<CheckpointId>,
}

impl Deployment<'_> {
    /// Creates and starts every subtask of the plan with its `restored` state (taken out of
    /// `restored[vertex][subtask]`), then sends each its [`Init`]. Returns the subtasks sorted
    /// by id and the `Init` answers to await.
    ///
    /// # Errors
    /// The sentence of an operator that could not be created.
    #[allow(clippy::type_complexity)]
    pub fn start(
        &self,
        arbiters: &[Arbiter],
        restored: &mut [Vec<RestoredState>],
    ) -> Result<(Vec<DeployedTask>, Vec<Request<Task, Init>>), String> {
        let graph = self.graph;
        let config = &graph.config;
        let mut by_task: HashMap<TaskId, Addr<Task>> = HashMap::new();
        let mut tasks = Vec::with_capacity(self.plan.subtasks.len());
        for (placed, sub) in self.plan.subtasks.iter().enumerate() {
            let i = sub.task.subtask;
            let info = |v: u32| {
                let vertex = &graph.vertices[v as usize];
                SubtaskInfo {
                    uid: vertex.uid.clone(),
                    index: i,
                    parallelism: vertex.parallelism,
                    max_parallelism: vertex.max_parallelism,
                    restored: self.restored_from,
                }
            };
            // The tail's edges leave the subtask: one channel per receiving subtask.
            let tail_edges: Vec<_> = sub
                .output_edges
                .iter()
                .map(|e| output_edge(graph, e.edge, e.channels))
                .collect();
            let outputs = sub
                .outputs
                .iter()
                .map(|out| {
                    let target = by_task
                        .get(&out.receiver)
                        .expect("the plan lists receivers before their senders");
                    OutputChannel {
                        target: target.clone().recipient(),
                        channel: out.receiver_channel,
                    }
                })
                .collect();
            let mut members = Vec::with_capacity(sub.chain.len());
            for (k, &v) in sub.chain.iter().enumerate() {
                let vertex = &graph.vertices[v as usize];
                // Inside the chain, a one-channel edge that passes every batch through.
                let (edges, batch_size) = match sub.chain.get(k + 1) {
                    Some(_) => {
                        let (e, _) = graph.outputs(v as usize).next().expect("a chained edge");
                        (vec![output_edge(graph, e, 1)], 1)
                    }
                    None => (tail_edges.clone(), config.batch_size),
                };
                let runtime = (vertex.factory)(&info(v), &edges, batch_size)
                    .map_err(|e| format!("operator `{}`: {e}", vertex.uid))?;
                members.push(ChainMember {
                    uid: vertex.uid.clone(),
                    runtime,
                });
            }
            let setup = TaskSetup {
                job_id: self.job_id,
                attempt: self.attempt,
                task: sub.task,
                info: info(sub.task.vertex),
                chain: Chain::new(members),
                vertices: sub.chain.clone(),
                is_source: sub.is_source,
                outputs,
                num_inputs: sub.inputs.len(),
                alignment: AlignmentMode::for_checkpoints(
                    config.checkpoint.mode,
                    config.checkpoint.unaligned,
                    config.checkpoint.aligned_timeout,
                ),
                credits: config.channel_credits,
                batch_size: config.batch_size,
                buffer_timeout: config.buffer_timeout,
                watermark_interval: config.auto_watermark_interval,
                storage: self.storage.clone(),
                locations: self.locations.clone(),
                restored: sub
                    .chain
                    .iter()
                    .map(|&v| std::mem::take(&mut restored[v as usize][i as usize]))
                    .collect(),
                manager: self.manager.clone(),
                metrics: crate::metrics::registry().subtask(
                    self.job_id,
                    &graph.vertices[sub.task.vertex as usize].uid,
                    i,
                ),
            };
            let arbiter = arbiters[placed % arbiters.len()].handle();
            let addr = Task::start_in_arbiter(&arbiter, move |_| Task::new(setup));
            by_task.insert(sub.task, addr.clone());
            tasks.push(DeployedTask {
                id: sub.task,
                addr,
                is_source: sub.is_source,
            });
        }
        tasks.sort_by_key(|t| t.id);
        // Every subtask exists: tell each where to return credits.
        let inits = self
            .plan
            .subtasks
            .iter()
            .map(|sub| {
                let upstream = sub
                    .inputs
                    .iter()
                    .map(|input| {
                        let sender = by_task[&input.sender].clone();
                        (sender.recipient::<Credit>(), input.sender_channel)
                    })
                    .collect();
                by_task[&sub.task].send(Init { upstream })
            })
            .collect();
        Ok((tasks, inits))
    }
}
