//! The checkpoint barrier and what a snapshot is for.
//!
//! - [`Barrier`]: the marker that separates the records of checkpoint `id` from those after
//!   it. It is in-band: a channel carries record batches, barriers and at most one end of
//!   input, in order, so everything the sender emitted before a barrier is delivered before it.
//!   (That channel element is the runtime's `Payload`, in `weir-actors`.)
//! - [`CheckpointKind`]: checkpoint, savepoint or stop-with-savepoint, which decides ownership,
//!   retention and sink side effects; [`SavepointFormat`]: how a savepoint is written.

use serde::{Deserialize, Serialize};

use crate::ids::CheckpointId;

/// The format a savepoint is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum SavepointFormat {
    /// Backend-independent: restorable into any state backend.
    #[default]
    Canonical,
    /// The backend's own files: faster to take, restorable only into the same backend.
    Native,
}

/// What a snapshot is for; decides ownership, retention and sink side effects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CheckpointKind {
    /// A periodic or manual checkpoint: owned by the engine, used for failover.
    Checkpoint {
        /// Force a full (non-incremental) snapshot.
        full: bool,
    },
    /// A savepoint: owned by the user, never deleted by the engine, commits no side effects.
    Savepoint { format: SavepointFormat },
    /// The savepoint of stop-with-savepoint: sources stop after its barrier and sinks commit.
    StopWithSavepoint {
        format: SavepointFormat,
        /// Flush everything operators hold (end of event time) before the barrier.
        drain: bool,
    },
}

impl CheckpointKind {
    /// A periodic checkpoint.
    pub const PERIODIC: CheckpointKind = CheckpointKind::Checkpoint { full: false };

    /// True for both kinds of savepoint.
    pub fn is_savepoint(&self) -> bool {
        !matches!(self, CheckpointKind::Checkpoint { .. })
    }

    /// The name Flink's REST API uses for this kind (`checkpoint_type`).
    pub fn rest_name(&self) -> &'static str {
        match self {
            CheckpointKind::Checkpoint { .. } => "CHECKPOINT",
            CheckpointKind::Savepoint { .. } => "SAVEPOINT",
            CheckpointKind::StopWithSavepoint { .. } => "SYNC_SAVEPOINT",
        }
    }
}

/// The marker that separates the records of checkpoint `id` from those after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Barrier {
    pub id: CheckpointId,
    /// Wall-clock milliseconds since the Unix epoch when the coordinator triggered it.
    pub timestamp_ms: u64,
    pub kind: CheckpointKind,
    /// Whether the job goes on after this checkpoint or ends with it.
    pub ending: Ending,
}

impl Barrier {
    /// Every operator finishes (flushes what it holds) before snapshotting this barrier.
    pub fn drains(&self) -> bool {
        matches!(self.ending, Ending::Final { drain: true })
    }
}

/// Whether a checkpoint is the job's last: the one fact the final checkpoint of a bounded job
/// and stop-with-savepoint share. It travels on the barrier, in the sources' trigger and in the
/// completion notice, so that every party agrees on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Ending {
    /// An ordinary checkpoint or savepoint: the job goes on.
    #[default]
    Continue,
    /// The job's last checkpoint: sources end their output right after its barrier, and a
    /// subtask finishes once it has committed it and seen the end of all its inputs.
    Final {
        /// Operators flush everything they hold (end of event time) before the snapshot: the
        /// final checkpoint of a bounded job, and a drained stop-with-savepoint. Without it, a
        /// stop-with-savepoint keeps held data in the savepoint.
        drain: bool,
    },
}

impl Ending {
    /// True for the job's last checkpoint.
    pub fn is_final(&self) -> bool {
        matches!(self, Ending::Final { .. })
    }
}
