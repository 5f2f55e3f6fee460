//! Weir's state in the JSON shapes of Flink's REST API: pure functions from values to
//! [`serde_json::Value`], so the shapes are tested without a server.
//!
//! - [`jobs`]: `/jobs`, `/jobs/overview`, `/jobs/:id` (`JobDetailsInfo`), `/jobs/:id/plan`,
//!   `/jobs/:id/vertices/:vid` (`JobVertexDetailsInfo`), `/jobs/:id/exceptions`;
//! - [`checkpoints`]: `/jobs/:id/checkpoints` and its details, subtask details and config;
//! - [`cluster`]: `/config` (`DashboardConfiguration`) and `/overview` (`ClusterOverviewWithVersion`);
//! - [`errors`]: the body of every error answer.
//!
//! Flink fields Weir has no data for are present with Flink's neutral value (`0` bytes, `-1` for
//! a time not reached yet, `false`, an empty list), so clients that deserialise strictly find
//! every field they expect.

pub mod checkpoints;
pub mod cluster;
pub mod jobs;

use serde_json::{json, Value};

pub use checkpoints::{
    checkpoint_config, checkpoint_entry, checkpointing_statistics, find_checkpoint, summary_of,
    task_checkpoint_details,
};
pub use cluster::{cluster_overview, dashboard_config};
pub use jobs::{
    exceptions, job_details, job_plan, jobs_list, jobs_overview, vertex_details, Subtasks,
};

/// The body of every 4xx/5xx answer, Flink's `{"errors": [...]}`.
pub fn errors(message: impl Into<String>) -> Value {
    json!({ "errors": [message.into()] })
}
