//! The logical job graph: operators (vertices) with uid, name and parallelism, and the edges
//! between them with their partitioning; plus the checks that reject a graph that cannot run.
//!
//! The typed stream API ([`crate::stream`]) builds a [`JobGraph`]; [`JobGraph::validate`] runs
//! before anything starts, and every error names the operator it is about.

use std::any::Any;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::CheckpointConfig;
use crate::partition::Partitioning;
use crate::restart::RestartStrategy;
use crate::state::key_group::default_max_parallelism;
use crate::state::keyed::StateBackendKind;
use crate::vertex::VertexFactory;

/// Flink's upper bound for max parallelism (number of key groups).
pub const UPPER_MAX_PARALLELISM: u32 = 32768;

/// What a vertex does, which decides how it is wired and driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VertexRole {
    Source,
    Operator,
    /// Needs a key-by input edge.
    KeyedOperator,
    Sink,
}

/// One operator of the job.
#[derive(Clone)]
pub struct Vertex {
    pub uid: String,
    pub name: String,
    pub role: VertexRole,
    pub parallelism: u32,
    pub max_parallelism: u32,
    pub factory: VertexFactory,
}

impl fmt::Debug for Vertex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vertex")
            .field("uid", &self.uid)
            .field("name", &self.name)
            .field("role", &self.role)
            .field("parallelism", &self.parallelism)
            .field("max_parallelism", &self.max_parallelism)
            .finish()
    }
}

/// A connection from one vertex's output to another's input.
#[derive(Clone)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    pub partitioning: Partitioning,
    /// `partition::EdgeKey<T>` of the upstream output type.
    pub key: Arc<dyn Any + Send + Sync>,
    /// Whether `key` holds a key selector (required for key-by).
    pub has_key: bool,
}

impl fmt::Debug for Edge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Edge")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("partitioning", &self.partitioning)
            .finish()
    }
}

/// Runtime settings of a job.
#[derive(Clone, Debug, PartialEq)]
pub struct JobConfig {
    pub checkpoint: CheckpointConfig,
    /// `None`: Flink's default (none without checkpointing, exponential delay with it).
    pub restart: Option<RestartStrategy>,
    pub state_backend: StateBackendKind,
    /// `state.backend.rocksdb.localdir` (`None`: the temp dir).
    pub state_local_dir: Option<std::path::PathBuf>,
    /// Records per batch on a channel.
    pub batch_size: usize,
    /// A partly filled batch is sent at the latest after this long.
    pub buffer_timeout: Duration,
    /// Batches a sender may have in flight per channel (credit-based flow control).
    pub channel_credits: u32,
    /// Fuse forward-connected operators of equal parallelism into one subtask
    /// (`pipeline.operator-chaining.enabled`, on by default).
    pub chaining: bool,
    /// How often a source with a watermark strategy emits its watermark
    /// (`pipeline.auto-watermark-interval`); zero: after every poll that advances it.
    pub auto_watermark_interval: Duration,
}

/// The default `pipeline.auto-watermark-interval`: zero, a watermark after every poll that
/// advances it (Flink's default is 200 ms; measured here, the event-time window benchmark ran
/// 1.6× faster with a watermark per poll than with one per 200 ms — BENCHMARKS.md).
pub const DEFAULT_AUTO_WATERMARK_INTERVAL: Duration = Duration::ZERO;

impl JobConfig {
    /// The keyed state backend's settings.
    pub fn keyed_backend(&self) -> crate::state::KeyedBackend {
        crate::state::KeyedBackend {
            kind: self.state_backend,
            local_dir: self.state_local_dir.clone(),
        }
    }

    /// The restart strategy in force: the configured one, or Flink's default (`none` without
    /// checkpointing, `exponential-delay` with it); see [`RestartStrategy::effective`].
    pub fn effective_restart(&self) -> RestartStrategy {
        RestartStrategy::effective(self.restart.as_ref(), &self.checkpoint)
    }
}

impl Default for JobConfig {
    fn default() -> Self {
        Self {
            checkpoint: CheckpointConfig::default(),
            restart: None,
            state_backend: StateBackendKind::default(),
            state_local_dir: None,
            batch_size: 1024,
            buffer_timeout: Duration::from_millis(10),
            channel_credits: 8,
            chaining: true,
            auto_watermark_interval: DEFAULT_AUTO_WATERMARK_INTERVAL,
        }
    }
}

/// A job: vertices, edges, settings.
#[derive(Clone, Debug)]
pub struct JobGraph {
    pub name: String,
    pub vertices: Vec<Vertex>,
    pub edges: Vec<Edge>,
    pub config: JobConfig,
}

/// Why a graph cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("the job has no source: add one with `add_source`")]
    NoSource,
    #[error("operator `{uid}` has parallelism 0: use 1 or more")]
    ZeroParallelism { uid: String },
    #[error("operator `{uid}` has max parallelism {max_parallelism}, below its parallelism {parallelism}: raise the max parallelism")]
    MaxParallelismBelowParallelism {
        uid: String,
        parallelism: u32,
        max_parallelism: u32,
    },
    #[error("operator `{uid}` has max parallelism {max_parallelism}, above the limit of 32768")]
    MaxParallelismTooLarge { uid: String, max_parallelism: u32 },
    #[error(
        "operator uid `{uid}` is used twice: uids must be unique, they match state on restore"
    )]
    DuplicateUid { uid: String },
    #[error("operator uid is empty (operator named `{name}`): give every operator a stable uid")]
    EmptyUid { name: String },
    #[error("the graph has a cycle through operator `{uid}`")]
    Cycle { uid: String },
    #[error("key-by edge into operator `{uid}` has no key selector")]
    KeyByWithoutKey { uid: String },
    #[error("keyed operator `{uid}` must follow key_by(...)")]
    KeyedWithoutKeyBy { uid: String },
    #[error("operator `{uid}` has no input: connect it to a stream")]
    NoInput { uid: String },
    #[error("source `{uid}` cannot have an input")]
    SourceWithInput { uid: String },
    #[error("forward edge from `{from}` (parallelism {from_parallelism}) to `{to}` (parallelism {to_parallelism}) needs equal parallelism: use rebalance() or equal parallelism")]
    ForwardParallelismMismatch {
        from: String,
        to: String,
        from_parallelism: u32,
        to_parallelism: u32,
    },
    #[error("edge refers to operator index {index}, which does not exist")]
    DanglingEdge { index: usize },
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::InvalidCheckpointConfig),
}

impl JobGraph {
    /// The max parallelism Flink would pick for this parallelism.
    pub fn default_max_parallelism(parallelism: u32) -> u32 {
        default_max_parallelism(parallelism)
    }

    /// Indices of the edges into vertex `v`.
    pub fn inputs(&self, v: usize) -> impl Iterator<Item = (usize, &Edge)> {
        self.edges
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.to == v)
    }

    /// Indices of the edges out of vertex `v`.
    pub fn outputs(&self, v: usize) -> impl Iterator<Item = (usize, &Edge)> {
        self.edges
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.from == v)
    }

    /// Every check; the first failure is returned.
    pub fn validate(&self) -> Result<(), GraphError> {
        self.config.checkpoint.validate()?;
        let mut uids = HashSet::new();
        for v in &self.vertices {
            if v.uid.trim().is_empty() {
                return Err(GraphError::EmptyUid {
                    name: v.name.clone(),
                });
            }
            if !uids.insert(v.uid.as_str()) {
                return Err(GraphError::DuplicateUid { uid: v.uid.clone() });
            }
            if v.parallelism == 0 {
                return Err(GraphError::ZeroParallelism { uid: v.uid.clone() });
            }
            if v.max_parallelism > UPPER_MAX_PARALLELISM {
                return Err(GraphError::MaxParallelismTooLarge {
                    uid: v.uid.clone(),
                    max_parallelism: v.max_parallelism,
                });
            }
            if v.max_parallelism < v.parallelism {
                return Err(GraphError::MaxParallelismBelowParallelism {
                    uid: v.uid.clone(),
                    parallelism: v.parallelism,
                    max_parallelism: v.max_parallelism,
                });
            }
        }
        if !self.vertices.iter().any(|v| v.role == VertexRole::Source) {
            return Err(GraphError::NoSource);
        }
        for e in &self.edges {
            for index in [e.from, e.to] {
                if index >= self.vertices.len() {
                    return Err(GraphError::DanglingEdge { index });
                }
            }
            let (from, to) = (&self.vertices[e.from], &self.vertices[e.to]);
            if e.partitioning == Partitioning::KeyBy && !e.has_key {
                return Err(GraphError::KeyByWithoutKey {
                    uid: to.uid.clone(),
                });
            }
            if e.partitioning == Partitioning::Forward && from.parallelism != to.parallelism {
                return Err(GraphError::ForwardParallelismMismatch {
                    from: from.uid.clone(),
                    to: to.uid.clone(),
                    from_parallelism: from.parallelism,
                    to_parallelism: to.parallelism,
                });
            }
        }
        for (i, v) in self.vertices.iter().enumerate() {
            let mut inputs = self.inputs(i).peekable();
            match v.role {
                VertexRole::Source => {
                    if inputs.peek().is_some() {
                        return Err(GraphError::SourceWithInput { uid: v.uid.clone() });
                    }
                }
                VertexRole::KeyedOperator => {
                    if inputs.peek().is_none() {
                        return Err(GraphError::NoInput { uid: v.uid.clone() });
                    }
                    if inputs.any(|(_, e)| e.partitioning != Partitioning::KeyBy) {
                        return Err(GraphError::KeyedWithoutKeyBy { uid: v.uid.clone() });
                    }
                }
                VertexRole::Operator | VertexRole::Sink => {
                    if inputs.peek().is_none() {
                        return Err(GraphError::NoInput { uid: v.uid.clone() });
                    }
                }
            }
        }
        self.topological_order().map(|_| ())
    }

    /// Vertices sorted so every edge goes from an earlier to a later one (Kahn's algorithm).
    pub fn topological_order(&self) -> Result<Vec<usize>, GraphError> {
        let n = self.vertices.len();
        let mut indegree = vec![0usize; n];
        for e in &self.edges {
            indegree[e.to] += 1;
        }
        let mut ready: Vec<usize> = (0..n).filter(|&v| indegree[v] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(v) = ready.pop() {
            order.push(v);
            for e in self.edges.iter().filter(|e| e.from == v) {
                indegree[e.to] -= 1;
                if indegree[e.to] == 0 {
                    ready.push(e.to);
                }
            }
        }
        match (0..n).find(|&v| indegree[v] > 0) {
            Some(v) => Err(GraphError::Cycle {
                uid: self.vertices[v].uid.clone(),
            }),
            None => Ok(order),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::print::DiscardSink;
    use crate::connectors::sequence::SequenceSource;
    use crate::functions::Count;
    use crate::stream::StreamEnvironment;

    fn pipeline(env: &StreamEnvironment) {
        env.add_source("numbers", SequenceSource::new(0, 10))
            .map("double", |v: u64| v * 2)
            .key_by(|v: &u64| v % 3)
            .process("count", Count::default())
            .add_sink("sink", DiscardSink::new());
    }

    fn valid() -> JobGraph {
        let env = StreamEnvironment::new("t");
        env.set_parallelism(2);
        pipeline(&env);
        env.build().unwrap()
    }

    #[test]
    fn a_valid_graph_resolves_parallelism_and_partitioning() {
        let g = valid();
        assert_eq!(g.vertices.len(), 4);
        assert!(g.vertices.iter().all(|v| v.parallelism == 2));
        assert!(g.vertices.iter().all(|v| v.max_parallelism == 128));
        let parts: Vec<Partitioning> = g.edges.iter().map(|e| e.partitioning).collect();
        assert_eq!(
            parts,
            vec![
                Partitioning::Forward,
                Partitioning::KeyBy,
                Partitioning::Forward
            ]
        );
        assert_eq!(g.topological_order().unwrap().len(), 4);
    }

    #[test]
    fn different_parallelism_defaults_to_rebalance() {
        let env = StreamEnvironment::new("t");
        env.add_source("numbers", SequenceSource::new(0, 10))
            .parallelism(1)
            .map("m", |v: u64| v)
            .parallelism(3)
            .add_sink("sink", DiscardSink::new());
        let g = env.build().unwrap();
        assert_eq!(g.edges[0].partitioning, Partitioning::Rebalance);
        assert_eq!(g.edges[1].partitioning, Partitioning::Rebalance);
    }

    #[test]
    fn each_bad_graph_is_rejected_naming_the_operator() {
        let no_source = JobGraph {
            vertices: valid()
                .vertices
                .into_iter()
                .filter(|v| v.role != VertexRole::Source)
                .collect(),
            edges: vec![],
            ..valid()
        };
        assert_eq!(no_source.validate(), Err(GraphError::NoSource));

        let mut zero = valid();
        zero.vertices[1].parallelism = 0;
        assert_eq!(
            zero.validate(),
            Err(GraphError::ZeroParallelism {
                uid: "double".into()
            })
        );

        let mut low_max = valid();
        low_max.vertices[2].max_parallelism = 1;
        let e = low_max.validate().unwrap_err();
        assert!(e.to_string().contains("`count`"), "{e}");

        let mut dup = valid();
        dup.vertices[3].uid = "count".into();
        assert_eq!(
            dup.validate(),
            Err(GraphError::DuplicateUid {
                uid: "count".into()
            })
        );

        let mut keyless = valid();
        keyless.edges[1].has_key = false;
        assert_eq!(
            keyless.validate(),
            Err(GraphError::KeyByWithoutKey {
                uid: "count".into()
            })
        );

        let mut not_keyed = valid();
        not_keyed.edges[1].partitioning = Partitioning::Rebalance;
        assert_eq!(
            not_keyed.validate(),
            Err(GraphError::KeyedWithoutKeyBy {
                uid: "count".into()
            })
        );

        let mut cycle = valid();
        let mut back = cycle.edges[2].clone();
        back.from = 3;
        back.to = 1;
        cycle.edges.push(back);
        assert!(matches!(cycle.validate(), Err(GraphError::Cycle { .. })));

        let mut forward = valid();
        forward.vertices[1].parallelism = 1;
        forward.vertices[1].max_parallelism = 128;
        let e = forward.validate().unwrap_err();
        assert!(
            matches!(e, GraphError::ForwardParallelismMismatch { .. }),
            "{e}"
        );
    }

    #[test]
    fn empty_uid_and_bad_checkpoint_config_are_rejected() {
        let env = StreamEnvironment::new("t");
        env.add_source("", SequenceSource::new(0, 10))
            .add_sink("sink", DiscardSink::new());
        assert!(matches!(env.build(), Err(GraphError::EmptyUid { .. })));

        let env = StreamEnvironment::new("t");
        env.set_checkpoint_config(crate::checkpoint::CheckpointConfig {
            max_concurrent: 0,
            ..Default::default()
        });
        pipeline(&env);
        let e = env.build().unwrap_err();
        assert!(e.to_string().contains("max-concurrent-checkpoints"), "{e}");
    }
}
