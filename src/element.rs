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
    /// End of input follows this barrier and every operator finishes (flushes what it holds)
    /// *before* snapshotting it: the final checkpoint of a bounded job and a drained
    /// stop-with-savepoint. Without it, a stop-with-savepoint keeps held data in the snapshot.
    pub drain: bool,
}
