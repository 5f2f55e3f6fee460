//! Identifiers: jobs, checkpoints, operators and the subtasks that run them.
//!
//! All of them are small value types with a `Display` that matches what Flink users see
//! (a job id is 32 lowercase hex digits, a checkpoint id is a decimal number).

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A job's identity, stable across restarts and restores of the same run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobId(pub Uuid);

impl JobId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The 32 hex digits, as Flink prints job ids.
    pub fn to_hex(&self) -> String {
        self.0.simple().to_string()
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.simple())
    }
}

impl std::str::FromStr for JobId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// A checkpoint's (or savepoint's) number within a job. Ids only grow, also across restarts.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
pub struct CheckpointId(pub u64);

impl CheckpointId {
    /// The id that follows this one.
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for CheckpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One subtask of one vertex of the running job (a vertex is a chain of operators).
/// Dense indices, assigned by the runtime; the coordinator only counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskId {
    /// Index of the vertex in the execution graph.
    pub vertex: u32,
    /// Subtask index within the vertex, `0..parallelism`.
    pub subtask: u32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.vertex, self.subtask)
    }
}
