//! The `_metadata` of a completed checkpoint or savepoint: what it contains and its file format.
//!
//! A checkpoint's metadata names, per operator uid and per subtask, the state handles that hold
//! that subtask's keyed and operator state. Small state is inline; larger state is a file whose
//! path is relative to the checkpoint's own directory, so a savepoint directory can be moved.
//!
//! OWNER: storage helper — encoding/decoding (magic, version, checksum) lands here.

use serde::{Deserialize, Serialize};

use crate::element::CheckpointKind;
use crate::ids::{CheckpointId, JobId};

/// Where one blob of state lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateHandle {
    /// The bytes themselves, stored inside `_metadata` (below the inline threshold, or
    /// jobmanager storage).
    Inline(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A file of this checkpoint, `path` relative to the checkpoint's directory.
    File { path: String, size: u64, crc32: u32 },
}

impl StateHandle {
    /// The size of the state in bytes.
    pub fn size(&self) -> u64 {
        match self {
            StateHandle::Inline(b) => b.len() as u64,
            StateHandle::File { size, .. } => *size,
        }
    }
}

/// The state of one subtask of one operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskSnapshot {
    pub index: u32,
    /// Keyed state (a blob of the `state` module's snapshot format), if any.
    pub keyed: Option<StateHandle>,
    /// Operator (non-keyed) state, including a source's position, if any.
    pub operator: Option<StateHandle>,
}

/// The state of every subtask of one operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorSnapshot {
    /// The stable uid that matches state to operators on restore.
    pub uid: String,
    pub name: String,
    pub parallelism: u32,
    pub max_parallelism: u32,
    pub subtasks: Vec<SubtaskSnapshot>,
}

/// Everything `_metadata` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointMetadata {
    pub job_id: JobId,
    pub checkpoint_id: CheckpointId,
    pub kind: CheckpointKind,
    /// Wall-clock ms since the Unix epoch when it was triggered.
    pub trigger_timestamp_ms: u64,
    /// Wall-clock ms since the Unix epoch when every subtask had acknowledged.
    pub completion_timestamp_ms: u64,
    pub operators: Vec<OperatorSnapshot>,
}

impl CheckpointMetadata {
    /// Total bytes of state, inline and in files.
    pub fn state_size(&self) -> u64 {
        self.operators
            .iter()
            .flat_map(|o| &o.subtasks)
            .flat_map(|s| s.keyed.iter().chain(s.operator.iter()))
            .map(StateHandle::size)
            .sum()
    }
}
