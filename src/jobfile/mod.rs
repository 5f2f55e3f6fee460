//! Job files: jobs described in YAML or TOML instead of Rust, with records that are JSON values.
//!
//! A job file names its steps — sources, operators, sinks — with a uid, a parallelism and the
//! edge from the step before (forward, rebalance, key-by on a field, broadcast), plus the job's
//! engine keys (Flink's names). The pieces:
//!
//! - [`spec`]: the file's model, [`JobSpec`] and [`StepSpec`], read with the `config` crate's
//!   YAML and TOML parsers;
//! - [`registry`]: [`Registry`], operator names → factories; built-ins are registered by
//!   [`Registry::new`], and a Rust program registers its own before loading a file;
//! - [`params`]: [`Params`], the typed, checked parameters a factory reads;
//! - [`value`]: [`Field`] paths into records and [`JsonKey`], a JSON value as a state key;
//! - the built-in operators: [`ops`] (names and parameters), [`sources`], [`transforms`]
//!   (`map`, `filter`, `split-words`), [`keyed`] (`count`, `sum`), [`window`] (`window-count`);
//! - [`build`]: [`load`] = read the file, load the engine configuration with the file's
//!   `config:` section as the job layer of [`crate::config::load`], and build the
//!   [`crate::graph::JobGraph`]; [`metrics`] counts records at the sources and sinks.
//!
//! Data flows file → [`JobSpec`] → ([`Registry`] + [`crate::config::EngineConfig`]) →
//! [`BuiltJob`] (graph, effective configuration, warnings, metrics). Every error is a
//! [`JobFileError`] naming the file and the step.

// Like `ConfigError`, a `JobFileError` carries full context (file, step, operator, field) and is
// built once, when a job file is loaded at startup.
#![allow(
    clippy::result_large_err,
    reason = "job files are loaded once; their errors carry full context"
)]

pub mod build;
pub mod error;
pub mod keyed;
pub mod metrics;
pub mod ops;
pub mod params;
pub mod registry;
pub mod sources;
pub mod spec;
pub mod transforms;
pub mod value;
pub mod window;

#[cfg(test)]
mod tests;

pub use build::{build, engine_config, job_config, load, BuiltJob, LoadOptions};
pub use error::{JobFileError, StepProblem, StepRef};
pub use metrics::JobMetrics;
pub use params::{ParamError, Params};
pub use registry::{Registry, VertexContext, KEY_BY};
pub use spec::{EdgeKind, InputSpec, JobSpec, Role, StepSpec};
pub use value::{Field, JsonKey};
