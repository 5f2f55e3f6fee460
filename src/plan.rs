//! The physical plan: which subtasks a job runs, which operators each one fuses, and every
//! channel between them — as a plain, serialisable value with no actor addresses.
//!
//! A [`JobGraph`] says *what* runs (operators, edges, parallelism); the [`PhysicalPlan`] says
//! *how*: one [`SubtaskPlan`] per subtask of every chain (see [`crate::chain`]), named by the
//! [`TaskId`] of its head operator. A deployment turns the plan into actors (the runtime starts
//! them in [`PhysicalPlan::subtasks`] order, so every receiver exists before its senders) and
//! could equally ship it to worker processes.
//!
//! # Channel numbering
//! - A subtask's **input channels** are numbered over the input edges of its head, in the
//!   graph's edge order: a forward edge contributes one channel (from the sender with the same
//!   index), any other edge one channel per sending subtask, in subtask order.
//! - Its **output channels** are numbered the same way over the output edges of its tail: a
//!   forward edge has one channel, any other edge one per receiving subtask. Batches, barriers
//!   and credits name channels by these numbers on both ends.

use serde::{Deserialize, Serialize};

use crate::chain::chains;
use crate::graph::{JobGraph, VertexRole};
use crate::ids::TaskId;
use crate::partition::{OutputEdge, Partitioning};

/// Every subtask of a job and every channel between them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhysicalPlan {
    /// Downstream chains first: every subtask's receivers come before it.
    pub subtasks: Vec<SubtaskPlan>,
}

/// One subtask: a chain of operators run fused by one actor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskPlan {
    /// The head operator's vertex and the subtask index.
    pub task: TaskId,
    /// The graph vertices this subtask runs, head first.
    pub chain: Vec<u32>,
    pub is_source: bool,
    /// Per input channel, in channel order: who sends on it.
    pub inputs: Vec<InputChannel>,
    /// Per output edge of the tail, in edge order: how many channels it has.
    pub output_edges: Vec<OutputEdgePlan>,
    /// Per output channel, in channel order: who receives on it.
    pub outputs: Vec<OutputChannel>,
}

/// The sending end of one input channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputChannel {
    /// The graph edge the channel belongs to.
    pub edge: usize,
    /// The sending subtask (its chain's head).
    pub sender: TaskId,
    /// The channel's number among the sender's output channels (where credits go back).
    pub sender_channel: u32,
}

/// One output edge of a subtask's tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputEdgePlan {
    pub edge: usize,
    /// 1 for forward, the receiver's parallelism otherwise.
    pub channels: usize,
}

/// The receiving end of one output channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputChannel {
    pub edge: usize,
    /// The receiving subtask (its chain's head).
    pub receiver: TaskId,
    /// The channel's number among the receiver's input channels.
    pub receiver_channel: u32,
}

impl PhysicalPlan {
    /// The plan of `graph`, with operator chaining as the graph's config says.
    pub fn new(graph: &JobGraph) -> Self {
        let chains = chains(graph, graph.config.chaining);
        let mut head = vec![0u32; graph.vertices.len()];
        for chain in &chains {
            for &v in chain {
                head[v] = chain[0] as u32;
            }
        }
        let task = |v: usize, subtask: u32| TaskId {
            vertex: head[v],
            subtask,
        };
        let mut subtasks = Vec::new();
        for chain in chains.iter().rev() {
            let (first, last) = (chain[0], chain[chain.len() - 1]);
            for i in 0..graph.vertices[first].parallelism {
                let inputs = input_channels(graph, first, i)
                    .into_iter()
                    .map(|(edge, from)| InputChannel {
                        edge,
                        sender: task(graph.edges[edge].from, from),
                        sender_channel: output_channel(graph, graph.edges[edge].from, edge, i),
                    })
                    .collect();
                let mut output_edges = Vec::new();
                let mut outputs = Vec::new();
                for (edge, e) in graph.outputs(last) {
                    let receivers: Vec<u32> = if e.partitioning == Partitioning::Forward {
                        vec![i]
                    } else {
                        (0..graph.vertices[e.to].parallelism).collect()
                    };
                    output_edges.push(OutputEdgePlan {
                        edge,
                        channels: receivers.len(),
                    });
                    outputs.extend(receivers.into_iter().map(|j| OutputChannel {
                        edge,
                        receiver: task(e.to, j),
                        receiver_channel: input_channel(graph, e.to, j, edge, i),
                    }));
                }
                subtasks.push(SubtaskPlan {
                    task: task(first, i),
                    chain: chain.iter().map(|&v| v as u32).collect(),
                    is_source: graph.vertices[first].role == VertexRole::Source,
                    inputs,
                    output_edges,
                    outputs,
                });
            }
        }
        Self { subtasks }
    }

    /// The subtasks that are sources.
    pub fn sources(&self) -> impl Iterator<Item = &SubtaskPlan> {
        self.subtasks.iter().filter(|s| s.is_source)
    }

    /// Every subtask's id, sorted.
    pub fn task_ids(&self) -> Vec<TaskId> {
        let mut ids: Vec<TaskId> = self.subtasks.iter().map(|s| s.task).collect();
        ids.sort();
        ids
    }
}

/// The output edge `e` as its sender's writer sees it, with `channels` channels (1 inside a
/// chain, where a member passes every batch straight to the next).
pub fn output_edge(graph: &JobGraph, e: usize, channels: usize) -> OutputEdge {
    let edge = &graph.edges[e];
    let to = &graph.vertices[edge.to];
    OutputEdge {
        partitioning: edge.partitioning,
        key: edge.key.clone(),
        channels,
        downstream_parallelism: to.parallelism,
        downstream_max_parallelism: to.max_parallelism,
    }
}

/// The input channels of subtask `i` of vertex `v`: (edge, sending subtask), in channel order.
fn input_channels(graph: &JobGraph, v: usize, i: u32) -> Vec<(usize, u32)> {
    let mut channels = Vec::new();
    for (e, edge) in graph.inputs(v) {
        if edge.partitioning == Partitioning::Forward {
            channels.push((e, i));
        } else {
            channels.extend((0..graph.vertices[edge.from].parallelism).map(|s| (e, s)));
        }
    }
    channels
}

/// Number, at receiver `j` of vertex `to`, of the channel from sender `i` over edge `e`.
fn input_channel(graph: &JobGraph, to: usize, j: u32, e: usize, i: u32) -> u32 {
    input_channels(graph, to, j)
        .iter()
        .position(|&(edge, from)| edge == e && from == i)
        .expect("every edge into `to` has a channel from each of its senders") as u32
}

/// Number, at a sender of vertex `from`, of its output channel to receiver `j` over edge `e`.
fn output_channel(graph: &JobGraph, from: usize, e: usize, j: u32) -> u32 {
    let mut offset = 0;
    for (edge_index, edge) in graph.outputs(from) {
        let forward = edge.partitioning == Partitioning::Forward;
        if edge_index == e {
            return offset + if forward { 0 } else { j };
        }
        offset += if forward {
            1
        } else {
            graph.vertices[edge.to].parallelism
        };
    }
    unreachable!("edge {e} is an output of vertex {from}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::print::DiscardSink;
    use crate::connectors::sequence::SequenceSource;
    use crate::stream::StreamEnvironment;

    fn t(vertex: u32, subtask: u32) -> TaskId {
        TaskId { vertex, subtask }
    }

    /// source(p=2) -> map(p=2, forward) -> key-by -> count(p=3) -> sink(p=3, forward)
    fn graph(chaining: bool) -> JobGraph {
        let env = StreamEnvironment::new("plan");
        if !chaining {
            env.disable_operator_chaining();
        }
        env.add_source("src", SequenceSource::new(0, 10))
            .parallelism(2)
            .map("map", |v: u64| v)
            .parallelism(2)
            .key_by(|v: &u64| *v)
            .reduce("count", |a: &u64, b: &u64| a + b)
            .parallelism(3)
            .add_sink("sink", DiscardSink::new())
            .parallelism(3);
        env.build().unwrap()
    }

    #[test]
    fn chains_become_one_subtask_each_downstream_first() {
        let plan = PhysicalPlan::new(&graph(true));
        let tasks: Vec<(TaskId, Vec<u32>)> = plan
            .subtasks
            .iter()
            .map(|s| (s.task, s.chain.clone()))
            .collect();
        assert_eq!(
            tasks,
            vec![
                (t(2, 0), vec![2, 3]),
                (t(2, 1), vec![2, 3]),
                (t(2, 2), vec![2, 3]),
                (t(0, 0), vec![0, 1]),
                (t(0, 1), vec![0, 1]),
            ]
        );
        assert_eq!(plan.sources().count(), 2);
        assert_eq!(plan.task_ids()[0], t(0, 0));
    }

    #[test]
    fn a_key_by_edge_connects_every_sender_to_every_receiver_and_both_ends_agree() {
        let plan = PhysicalPlan::new(&graph(true));
        let by_task = |id: TaskId| plan.subtasks.iter().find(|s| s.task == id).unwrap();
        let sender = by_task(t(0, 1));
        assert_eq!(sender.output_edges.len(), 1);
        assert_eq!(sender.output_edges[0].channels, 3);
        for (c, out) in sender.outputs.iter().enumerate() {
            assert_eq!(out.receiver, t(2, c as u32));
            let input = by_task(out.receiver).inputs[out.receiver_channel as usize];
            assert_eq!(input.sender, t(0, 1));
            assert_eq!(input.sender_channel, c as u32);
        }
        let receiver = by_task(t(2, 2));
        let senders: Vec<TaskId> = receiver.inputs.iter().map(|i| i.sender).collect();
        assert_eq!(senders, vec![t(0, 0), t(0, 1)]);
        assert!(receiver.outputs.is_empty());
    }

    #[test]
    fn without_chaining_a_forward_edge_is_one_channel_to_the_same_index() {
        let plan = PhysicalPlan::new(&graph(false));
        assert_eq!(plan.subtasks.len(), 2 + 2 + 3 + 3);
        let map1 = plan.subtasks.iter().find(|s| s.task == t(1, 1)).unwrap();
        assert_eq!(
            map1.inputs,
            vec![InputChannel {
                edge: 0,
                sender: t(0, 1),
                sender_channel: 0
            }]
        );
        let sink2 = plan.subtasks.iter().find(|s| s.task == t(3, 2)).unwrap();
        assert_eq!(sink2.inputs[0].sender, t(2, 2));
    }

    #[test]
    fn the_plan_is_a_serialisable_value() {
        let plan = PhysicalPlan::new(&graph(true));
        let bytes = rmp_serde::to_vec_named(&plan).unwrap();
        let back: PhysicalPlan = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, plan);
    }
}
