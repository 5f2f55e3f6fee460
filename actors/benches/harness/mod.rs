//! # The benchmark harness
//!
//! Whole-job measurements of Weir on this machine, shared by the `weir_bench` bench binary
//! (`cargo bench -p weir-actors --bench weir_bench`) and the CI smoke test
//! (`tests/bench_smoke.rs` at the repository root, which includes this module by path and runs
//! it tiny).
//!
//! - [`job`]: the keyed running count job (source → key-by → `Count` in value state → a
//!   checksum sink), the closed form its checksum must match, and the slow operator of the
//!   skew section.
//! - [`limit`]: the same work as one plain loop over a `HashMap`, no engine.
//! - [`capture`]: a `tracing` layer that records the runtime's checkpoint events (trigger,
//!   per-subtask synchronous pause, completion with state size) with the time they happened.
//! - [`measure`]: one measurement each: throughput, checkpoint cost at a state size, recovery
//!   from a retained checkpoint, alignment under skew. Each returns a serialisable result.
//! - [`plan`]: what one invocation measures ([`plan::Task`]), and how a child process runs one.
//! - [`stats`]: median/min/max summaries, peak RSS.
//! - [`report`]: the markdown tables and the target checks; [`svg`] the plot.
//!
//! Flow: the bench binary parses its flags into a list of tasks, runs each task in a child
//! process of itself (so peak RSS is per configuration and one run's heap does not leak into
//! the next), interleaves the runs of all configurations (so the ratios it reports pair runs
//! taken close together on a noisy machine), and summarises.
#![allow(dead_code)]

pub mod capture;
pub mod job;
pub mod limit;
pub mod measure;
pub mod plan;
pub mod report;
pub mod stats;
pub mod svg;
