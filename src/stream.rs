//! The typed API for building jobs: [`StreamEnvironment`], [`DataStream`], [`KeyedStream`].
//!
//! ```ignore
//! let env = StreamEnvironment::new("word count");
//! env.set_parallelism(2);
//! env.add_source("lines", FileLinesSource::new("in.txt"))
//!     .flat_map("split", |line: String, out: &mut Vec<String>| {
//!         out.extend(line.split_whitespace().map(str::to_owned))
//!     })
//!     .key_by(|w: &String| w.clone())
//!     .process("count", Count::default())
//!     .add_sink("out", ExactlyOnceFileSink::new("out/"));
//! let graph = env.build()?;
//! ```
//!
//! Every operator gets a uid when it is added (state is matched by uid on restore). The
//! partitioning of an edge is forward when both sides have the same parallelism and rebalance
//! otherwise, unless `key_by`, `rebalance` or `broadcast` says so.

use crate::window::{
    AggregateFunction, AggregateWindow, ProcessWindow, ReduceWindow, TimeWindow, WindowAssigner,
    WindowFunction, WindowOperator, WindowTime,
};
use std::cell::RefCell;
use std::hash::Hash;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::checkpoint::CheckpointConfig;
use crate::functions::{FilterFn, FlatMapFn, MapFn, ReduceFn};
use crate::graph::{Edge, GraphError, JobConfig, JobGraph, Vertex, VertexRole};
use crate::operator::{KeyedProcessFunction, Operator, Sink, Source};
use crate::partition::{key_group_fn, EdgeKey, Partitioning};
use crate::restart::RestartStrategy;
use crate::state::key_group::default_max_parallelism;
use crate::state::keyed::{StateBackendKind, StateKey, StateValue};
use crate::time::WatermarkStrategy;
use crate::vertex::{
    keyed_factory, operator_factory, sink_factory, source_factory, source_factory_with_watermarks,
    VertexFactory,
};

/// What a record type must be to flow between subtasks.
pub trait Record: Clone + Serialize + DeserializeOwned + Send + 'static {}
impl<T: Clone + Serialize + DeserializeOwned + Send + 'static> Record for T {}

struct PendingVertex {
    uid: String,
    name: String,
    role: VertexRole,
    parallelism: Option<u32>,
    max_parallelism: Option<u32>,
    factory: VertexFactory,
}

struct PendingEdge {
    from: usize,
    to: usize,
    /// `None`: forward or rebalance, decided by the parallelism at build time.
    partitioning: Option<Partitioning>,
    key: Arc<dyn std::any::Any + Send + Sync>,
    has_key: bool,
}

struct Builder {
    name: String,
    default_parallelism: u32,
    max_parallelism: Option<u32>,
    config: JobConfig,
    vertices: Vec<PendingVertex>,
    edges: Vec<PendingEdge>,
}

/// Where a job is built.
#[derive(Clone)]
pub struct StreamEnvironment {
    inner: Rc<RefCell<Builder>>,
}

impl StreamEnvironment {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            inner: Rc::new(RefCell::new(Builder {
                name: name.into(),
                default_parallelism: 1,
                max_parallelism: None,
                config: JobConfig::default(),
                vertices: Vec::new(),
                edges: Vec::new(),
            })),
        }
    }

    /// Parallelism of operators that do not set their own (`parallelism.default`, 1).
    pub fn set_parallelism(&self, parallelism: u32) -> &Self {
        self.inner.borrow_mut().default_parallelism = parallelism;
        self
    }

    /// Max parallelism of every operator that does not set its own (`pipeline.max-parallelism`).
    pub fn set_max_parallelism(&self, max_parallelism: u32) -> &Self {
        self.inner.borrow_mut().max_parallelism = Some(max_parallelism);
        self
    }

    pub fn set_checkpoint_config(&self, config: CheckpointConfig) -> &Self {
        self.inner.borrow_mut().config.checkpoint = config;
        self
    }

    pub fn set_restart_strategy(&self, strategy: RestartStrategy) -> &Self {
        self.inner.borrow_mut().config.restart = Some(strategy);
        self
    }

    pub fn set_state_backend(&self, backend: StateBackendKind) -> &Self {
        self.inner.borrow_mut().config.state_backend = backend;
        self
    }

    /// Where the `rocksdb` backend puts each keyed subtask's working directory
    /// (`state.backend.rocksdb.localdir`; default: the temp dir).
    pub fn set_state_local_dir(&self, dir: impl Into<std::path::PathBuf>) -> &Self {
        self.inner.borrow_mut().config.state_local_dir = Some(dir.into());
        self
    }

    /// Records per batch (1024 by default).
    pub fn set_batch_size(&self, records: usize) -> &Self {
        self.inner.borrow_mut().config.batch_size = records.max(1);
        self
    }

    /// How long a partly filled batch may wait (10 ms by default).
    pub fn set_buffer_timeout(&self, timeout: Duration) -> &Self {
        self.inner.borrow_mut().config.buffer_timeout = timeout;
        self
    }

    /// Batches in flight per channel (8 by default).
    pub fn set_channel_credits(&self, credits: u32) -> &Self {
        self.inner.borrow_mut().config.channel_credits = credits.max(1);
        self
    }

    /// Run every operator in a subtask of its own, even where it could be chained.
    pub fn disable_operator_chaining(&self) -> &Self {
        self.inner.borrow_mut().config.chaining = false;
        self
    }

    /// At most how often sources with a watermark strategy emit their watermark
    /// (`pipeline.auto-watermark-interval`; zero, the default: after every poll that advances
    /// it).
    pub fn set_auto_watermark_interval(&self, interval: Duration) -> &Self {
        self.inner.borrow_mut().config.auto_watermark_interval = interval;
        self
    }

    /// Replace all runtime settings at once.
    pub fn set_config(&self, config: JobConfig) -> &Self {
        self.inner.borrow_mut().config = config;
        self
    }

    pub fn add_source<T: Record, S: Source<T> + Clone>(
        &self,
        uid: &str,
        source: S,
    ) -> DataStream<T> {
        let v = self.add_vertex(uid, VertexRole::Source, source_factory::<T, S>(source));
        DataStream::new(self.clone(), v)
    }

    /// A source whose records get timestamps and whose subtasks emit watermarks by `strategy`
    /// (Flink's `fromSource(source, watermarkStrategy, name)`).
    pub fn add_source_with_watermarks<T: Record, S: Source<T> + Clone>(
        &self,
        uid: &str,
        source: S,
        strategy: WatermarkStrategy<T>,
    ) -> DataStream<T> {
        let factory = source_factory_with_watermarks::<T, S>(source, Some(strategy));
        let v = self.add_vertex(uid, VertexRole::Source, factory);
        DataStream::new(self.clone(), v)
    }

    fn add_vertex(&self, uid: &str, role: VertexRole, factory: VertexFactory) -> usize {
        let mut b = self.inner.borrow_mut();
        b.vertices.push(PendingVertex {
            uid: uid.to_owned(),
            name: uid.to_owned(),
            role,
            parallelism: None,
            max_parallelism: None,
            factory,
        });
        b.vertices.len() - 1
    }

    /// Resolve parallelism and partitioning, then validate.
    ///
    /// # Errors
    /// A [`GraphError`] naming the operator when the graph cannot run.
    pub fn build(&self) -> Result<JobGraph, GraphError> {
        let b = self.inner.borrow();
        let vertices: Vec<Vertex> = b
            .vertices
            .iter()
            .map(|v| {
                let parallelism = v.parallelism.unwrap_or(b.default_parallelism);
                Vertex {
                    uid: v.uid.clone(),
                    name: v.name.clone(),
                    role: v.role,
                    parallelism,
                    max_parallelism: v
                        .max_parallelism
                        .or(b.max_parallelism)
                        .unwrap_or_else(|| default_max_parallelism(parallelism.max(1))),
                    factory: v.factory.clone(),
                }
            })
            .collect();
        let edges = b
            .edges
            .iter()
            .map(|e| Edge {
                from: e.from,
                to: e.to,
                partitioning: e.partitioning.unwrap_or(
                    if vertices[e.from].parallelism == vertices[e.to].parallelism {
                        Partitioning::Forward
                    } else {
                        Partitioning::Rebalance
                    },
                ),
                key: e.key.clone(),
                has_key: e.has_key,
            })
            .collect();
        let graph = JobGraph {
            name: b.name.clone(),
            vertices,
            edges,
            config: b.config.clone(),
        };
        graph.validate()?;
        Ok(graph)
    }
}

/// A stream of `T` produced by one operator.
pub struct DataStream<T> {
    env: StreamEnvironment,
    vertex: usize,
    partitioning: Option<Partitioning>,
    _t: PhantomData<fn() -> T>,
}

impl<T: Record> DataStream<T> {
    fn new(env: StreamEnvironment, vertex: usize) -> Self {
        Self {
            env,
            vertex,
            partitioning: None,
            _t: PhantomData,
        }
    }

    /// Parallelism of the operator that produces this stream.
    pub fn parallelism(self, parallelism: u32) -> Self {
        self.env.inner.borrow_mut().vertices[self.vertex].parallelism = Some(parallelism);
        self
    }

    /// Max parallelism (key groups) of the operator that produces this stream.
    pub fn max_parallelism(self, max_parallelism: u32) -> Self {
        self.env.inner.borrow_mut().vertices[self.vertex].max_parallelism = Some(max_parallelism);
        self
    }

    /// Display name of the operator that produces this stream (defaults to its uid).
    pub fn name(self, name: &str) -> Self {
        self.env.inner.borrow_mut().vertices[self.vertex].name = name.to_owned();
        self
    }

    /// Send the next edge round-robin.
    pub fn rebalance(mut self) -> Self {
        self.partitioning = Some(Partitioning::Rebalance);
        self
    }

    /// Send every record of the next edge to every downstream subtask.
    pub fn broadcast(mut self) -> Self {
        self.partitioning = Some(Partitioning::Broadcast);
        self
    }

    /// Send the next edge subtask i → subtask i (requires equal parallelism).
    pub fn forward(mut self) -> Self {
        self.partitioning = Some(Partitioning::Forward);
        self
    }

    fn connect(&self, to: usize, partitioning: Option<Partitioning>, key: EdgeKey<T>) {
        let has_key = key.key_group.is_some();
        self.env.inner.borrow_mut().edges.push(PendingEdge {
            from: self.vertex,
            to,
            partitioning,
            key: Arc::new(key),
            has_key,
        });
    }

    /// Apply a user operator.
    pub fn transform<O: Record, Op: Operator<T, O> + Clone>(
        self,
        uid: &str,
        op: Op,
    ) -> DataStream<O> {
        let v = self
            .env
            .add_vertex(uid, VertexRole::Operator, operator_factory::<T, O, Op>(op));
        self.connect(v, self.partitioning, EdgeKey { key_group: None });
        DataStream::new(self.env.clone(), v)
    }

    pub fn map<O: Record, F>(self, uid: &str, f: F) -> DataStream<O>
    where
        F: Fn(T) -> O + Clone + Send + 'static,
    {
        self.transform(uid, MapFn(f))
    }

    pub fn filter<F>(self, uid: &str, f: F) -> DataStream<T>
    where
        F: Fn(&T) -> bool + Clone + Send + 'static,
    {
        self.transform(uid, FilterFn(f))
    }

    pub fn flat_map<O: Record, F>(self, uid: &str, f: F) -> DataStream<O>
    where
        F: Fn(T, &mut Vec<O>) + Clone + Send + 'static,
    {
        self.transform(uid, FlatMapFn(f))
    }

    /// Partition by key; the next operator gets keyed state.
    pub fn key_by<K, F>(self, key: F) -> KeyedStream<K, T>
    where
        K: StateKey + Hash,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        KeyedStream {
            stream: self,
            key: Arc::new(key),
        }
    }

    /// End the stream in a sink.
    pub fn add_sink<S: Sink<T> + Clone>(self, uid: &str, sink: S) -> SinkStream {
        let v = self
            .env
            .add_vertex(uid, VertexRole::Sink, sink_factory::<T, S>(sink));
        self.connect(v, self.partitioning, EdgeKey { key_group: None });
        SinkStream {
            env: self.env.clone(),
            vertex: v,
        }
    }
}

/// A stream partitioned by key.
pub struct KeyedStream<K, T> {
    stream: DataStream<T>,
    key: Arc<dyn Fn(&T) -> K + Send + Sync>,
}

impl<K: StateKey + Hash, T: Record> KeyedStream<K, T> {
    /// A keyed process function with keyed state.
    pub fn process<O: Record, F>(self, uid: &str, f: F) -> DataStream<O>
    where
        F: KeyedProcessFunction<K, T, O> + Clone,
    {
        let env = self.stream.env.clone();
        let backend = env.inner.borrow().config.keyed_backend();
        let v = env.add_vertex(
            uid,
            VertexRole::KeyedOperator,
            keyed_factory::<K, T, O, F>(f, self.key.clone(), backend),
        );
        let selector = self.key.clone();
        self.stream.connect(
            v,
            Some(Partitioning::KeyBy),
            EdgeKey {
                key_group: Some(key_group_fn(move |r: &T| selector(r))),
            },
        );
        DataStream::new(env, v)
    }

    /// A running reduce per key, emitting the new value after each record.
    pub fn reduce<F>(self, uid: &str, f: F) -> DataStream<T>
    where
        T: StateValue,
        F: Fn(&T, &T) -> T + Clone + Send + 'static,
    {
        self.process(uid, ReduceFn::new(f))
    }
}

impl<K: StateKey + Hash, T: Record> KeyedStream<K, T> {
    /// Groups each key's records into windows of `assigner`, in processing time unless
    /// [`WindowedStream::event_time`] says where a record's timestamp is.
    pub fn window(self, assigner: WindowAssigner) -> WindowedStream<K, T> {
        WindowedStream {
            keyed: self,
            assigner,
            time: WindowTime::Processing,
            allowed_lateness: Duration::ZERO,
        }
    }
}

/// A keyed stream grouped into windows; one of [`Self::reduce`], [`Self::aggregate`],
/// [`Self::process`] or [`Self::apply`] says what each window computes.
pub struct WindowedStream<K, T> {
    keyed: KeyedStream<K, T>,
    assigner: WindowAssigner,
    time: WindowTime<T>,
    allowed_lateness: Duration,
}

impl<K: StateKey + Hash, T: Record> WindowedStream<K, T> {
    /// Event time: `timestamp` gives each record's time in milliseconds, and windows fire when
    /// the watermark (from the sources' watermark strategies) passes their end.
    pub fn event_time(mut self, timestamp: impl Fn(&T) -> i64 + Send + Sync + 'static) -> Self {
        self.time = WindowTime::event(timestamp);
        self
    }

    /// Event time: how long after its end a window still takes late records (each fires it
    /// again); later ones are dropped (see [`WindowFunction::late`]).
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.allowed_lateness = lateness;
        self
    }

    /// Each window computed by a [`WindowFunction`].
    pub fn apply<O: Record, F: WindowFunction<K, T, O>>(self, uid: &str, f: F) -> DataStream<O> {
        let lateness = i64::try_from(self.allowed_lateness.as_millis()).unwrap_or(i64::MAX);
        self.keyed.process(
            uid,
            WindowOperator::new(self.assigner, self.time, lateness, f),
        )
    }

    /// Each window reduced with `reduce`, emitted as `emit(key, window, reduced)`.
    pub fn reduce<O: Record>(
        self,
        uid: &str,
        reduce: impl Fn(&T, &T) -> T + Send + Sync + 'static,
        emit: impl Fn(&K, &TimeWindow, &T) -> O + Send + Sync + 'static,
    ) -> DataStream<O>
    where
        T: StateValue,
    {
        self.apply(uid, ReduceWindow::new(reduce, emit))
    }

    /// Each window aggregated incrementally by `agg`, emitted as `emit(key, window, result)`.
    pub fn aggregate<O: Record, A: AggregateFunction<T>>(
        self,
        uid: &str,
        agg: A,
        emit: impl Fn(&K, &TimeWindow, A::Out) -> O + Send + Sync + 'static,
    ) -> DataStream<O> {
        self.apply(uid, AggregateWindow::new(agg, emit))
    }

    /// Each window's records, all at once when it fires.
    pub fn process<O: Record>(
        self,
        uid: &str,
        process: impl Fn(&K, &TimeWindow, &[T], &mut Vec<O>) + Send + Sync + 'static,
    ) -> DataStream<O>
    where
        T: StateValue,
    {
        self.apply(uid, ProcessWindow::new(process))
    }
}

/// The end of a stream: lets the sink's parallelism and name be set.
pub struct SinkStream {
    env: StreamEnvironment,
    vertex: usize,
}

impl SinkStream {
    pub fn parallelism(self, parallelism: u32) -> Self {
        self.env.inner.borrow_mut().vertices[self.vertex].parallelism = Some(parallelism);
        self
    }

    pub fn name(self, name: &str) -> Self {
        self.env.inner.borrow_mut().vertices[self.vertex].name = name.to_owned();
        self
    }
}
