//! Operator chaining: which operators run fused in one subtask (Flink's chaining rule), and the
//! fused operators themselves.
//!
//! - [`chains`]: the rule. Vertex `b` is chained to `a` when the only edge out of `a` is a
//!   forward edge to `b`, it is the only edge into `b`, both have the same parallelism, and `b`
//!   is not a source. When the job manager starts a job's subtasks, it starts one subtask actor
//!   per chain and parallel instance.
//! - [`Chain`] and [`ChainMember`] (in `run.rs`): what such a subtask runs. Records pass between
//!   a chain's operators by direct calls, with no channel, no batch copy and no credit.
//!
//! Checkpoints still snapshot every operator of a chain under its own uid, so chaining can
//! change between a snapshot and its restore.

mod run;

pub use run::{Chain, ChainMember, RestoredInput};

use crate::graph::{JobGraph, VertexRole};
use crate::partition::Partitioning;

/// The chains of `graph`, each a list of vertex indices from head to tail, in topological
/// order of their heads. Every vertex is in exactly one chain. With `enabled` false every
/// vertex is a chain of its own.
pub fn chains(graph: &JobGraph, enabled: bool) -> Vec<Vec<usize>> {
    let order = graph
        .topological_order()
        .unwrap_or_else(|_| (0..graph.vertices.len()).collect());
    let mut chained_to_previous = vec![false; graph.vertices.len()];
    if enabled {
        for (v, flag) in chained_to_previous.iter_mut().enumerate() {
            *flag = chainable_input(graph, v).is_some();
        }
    }
    let mut chains = Vec::new();
    for head in order {
        if chained_to_previous[head] {
            continue;
        }
        let mut chain = vec![head];
        let mut at = head;
        while let Some(next) = next_in_chain(graph, at).filter(|&n| chained_to_previous[n]) {
            chain.push(next);
            at = next;
        }
        chains.push(chain);
    }
    chains
}

/// The upstream vertex `v` would be chained to, if the rule allows it.
fn chainable_input(graph: &JobGraph, v: usize) -> Option<usize> {
    let mut inputs = graph.inputs(v);
    let (_, edge) = inputs.next()?;
    if inputs.next().is_some() || edge.partitioning != Partitioning::Forward {
        return None;
    }
    let (from, to) = (&graph.vertices[edge.from], &graph.vertices[v]);
    let single_output = graph.outputs(edge.from).count() == 1;
    (single_output && from.parallelism == to.parallelism && to.role != VertexRole::Source)
        .then_some(edge.from)
}

fn next_in_chain(graph: &JobGraph, v: usize) -> Option<usize> {
    let mut outputs = graph.outputs(v);
    let (_, edge) = outputs.next()?;
    if outputs.next().is_some() {
        return None;
    }
    (chainable_input(graph, edge.to) == Some(v)).then_some(edge.to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::print::DiscardSink;
    use crate::connectors::sequence::SequenceSource;
    use crate::functions::Count;
    use crate::stream::StreamEnvironment;

    fn graph(build: impl FnOnce(&StreamEnvironment)) -> JobGraph {
        let env = StreamEnvironment::new("t");
        env.set_parallelism(2);
        build(&env);
        env.build().unwrap()
    }

    #[test]
    fn forward_edges_chain_and_key_by_breaks_the_chain() {
        let g = graph(|env| {
            env.add_source("src", SequenceSource::new(0, 10))
                .map("a", |v: u64| v)
                .filter("b", |_: &u64| true)
                .key_by(|v: &u64| *v)
                .process("count", Count::default())
                .add_sink("sink", DiscardSink::new());
        });
        assert_eq!(chains(&g, true), vec![vec![0, 1, 2], vec![3, 4]]);
        assert_eq!(
            chains(&g, false),
            vec![vec![0], vec![1], vec![2], vec![3], vec![4]]
        );
    }

    #[test]
    fn different_parallelism_and_rebalance_break_the_chain() {
        let g = graph(|env| {
            env.add_source("src", SequenceSource::new(0, 10))
                .map("a", |v: u64| v)
                .parallelism(1)
                .map("b", |v: u64| v)
                .parallelism(1)
                .rebalance()
                .map("c", |v: u64| v)
                .add_sink("sink", DiscardSink::new());
        });
        // src(2) -rebalance-> a(1) -forward-> b(1) -rebalance-> c(2) -forward-> sink(2)
        assert_eq!(chains(&g, true), vec![vec![0], vec![1, 2], vec![3, 4]]);
    }

    #[test]
    fn every_vertex_is_in_exactly_one_chain() {
        let g = graph(|env| {
            env.add_source("src", SequenceSource::new(0, 10))
                .map("a", |v: u64| v)
                .broadcast()
                .map("b", |v: u64| v)
                .add_sink("sink", DiscardSink::new());
        });
        let mut all: Vec<usize> = chains(&g, true).into_iter().flatten().collect();
        all.sort_unstable();
        assert_eq!(all, (0..g.vertices.len()).collect::<Vec<_>>());
    }
}
