//! # Weir: the model
//!
//! Weir is a streaming dataflow engine with Flink-style fault tolerance. This crate holds what a
//! job *is* — its graph, its records and barriers, its state and its checkpoints — as plain
//! types and pure state machines. It has no actors: `weir-actors` runs the model on actix and
//! re-exports this crate, so applications depend on `weir-actors` alone.
//!
//! - [`stream`]: the typed API that builds a job; [`graph`] the validated job graph.
//! - [`operator`]: the traits users implement (sources, operators, keyed functions, sinks);
//!   [`functions`] closure adapters; [`vertex`] their executable, type-erased form.
//! - [`chain`]: which forward-connected operators run fused in one subtask, and running them;
//!   [`plan`]: the physical plan — every subtask and channel — as a serialisable value.
//! - [`partition`]: forward, rebalance, key-by and broadcast, with per-channel batching.
//! - [`connectors`]: built-in sources and sinks.
//! - [`jobfile`]: jobs described in YAML/TOML files, with JSON records and a registry of named operators.
//! - [`ids`]: job, checkpoint and task identifiers.
//! - [`element`]: checkpoint barriers and the kinds of snapshot (checkpoint, savepoint).
//! - [`checkpoint`]: settings, the coordinator's decisions, barrier alignment, storage.
//! - [`gate`]: a subtask's input side: arrival order, alignment, credit groups, end of input.
//! - [`subtask`]: a subtask's lifecycle and its source's polling.
//! - [`state`]: keyed state in key groups, operator state, snapshots.
//! - [`restart`]: restart strategies; [`failure`]: whether retrying can heal a failure.
//! - [`status`]: job status (Flink's names).
//! - [`time`]: event time: watermarks and how a subtask combines those of its inputs.
//! - [`window`]: tumbling, sliding and session windows over event or processing time, fired by
//!   timers.
//! - [`format`]: magic/version/checksum framing of every persisted blob.

pub mod chain;
pub mod checkpoint;
pub mod config;
pub mod connectors;
pub mod element;
pub mod failure;
pub mod format;
pub mod functions;
pub mod gate;
pub mod graph;
pub mod ids;
pub mod jobfile;
pub mod operator;
pub mod partition;
pub mod plan;
pub mod restart;
pub mod state;
pub mod status;
pub mod stream;
pub mod subtask;
pub mod time;
pub mod vertex;
pub mod window;
