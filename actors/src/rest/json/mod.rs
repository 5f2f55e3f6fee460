//! Weir's state in the JSON shapes of Flink's REST API: pure functions from values to
//! [`serde_json::Value`], so the shapes are tested without a server.
//!
//! - [`jobs`]: `/jobs`, `/jobs/overview`, `/jobs/:id` (`JobDetailsInfo`);
//! - [`plan`]: `/jobs/:id/plan`; [`vertex`]: `/jobs/:id/vertices/:uid` and per-vertex metrics;
//!   [`watermarks`]: `/jobs/:id/vertices/:uid/watermarks`; [`exceptions`]: `/jobs/:id/exceptions`;
//! - [`checkpoints`]: `/jobs/:id/checkpoints`, its details and config; [`checkpoint_subtasks`]:
//!   one vertex's subtasks in one checkpoint;
//! - [`cluster`]: `/config` (`DashboardConfiguration`) and `/overview` (`ClusterOverviewWithVersion`);
//! - [`errors`]: the body of every error answer.
//!
//! Flink fields Weir has no data for are present with Flink's neutral value (`0` bytes, `-1` for
//! a time not reached yet, `false`, an empty list), so clients that deserialise strictly find
//! every field they expect.

pub mod checkpoint_subtasks;
pub mod checkpoints;
pub mod cluster;
pub mod exceptions;
pub mod jobs;
pub mod plan;
pub mod vertex;
pub mod watermarks;

use serde_json::{json, Value};

pub use checkpoint_subtasks::task_checkpoint_details;
pub use checkpoints::{
    checkpoint_config, checkpoint_entry, checkpointing_statistics, find_checkpoint, summary_of,
};
pub use cluster::{cluster_overview, dashboard_config};
pub use exceptions::exceptions;
pub use jobs::{job_details, jobs_list, jobs_overview, Subtasks};
pub use plan::job_plan;
pub use vertex::vertex_details;
pub use watermarks::vertex_watermarks;

/// The body of every 4xx/5xx answer, Flink's `{"errors": [...]}`.
pub fn errors(message: impl Into<String>) -> Value {
    json!({ "errors": [message.into()] })
}
