//! How the gate treats barriers: the alignment mode.
//!
//! The job's checkpointing mode decides it ([`AlignmentMode::for_checkpointing`]). Unaligned
//! checkpoints will be a third variant; the module docs of [`crate::gate`] say how they plug in.

use crate::checkpoint::CheckpointingMode;

/// How barriers of checkpoints are handled at a subtask's input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AlignmentMode {
    /// Exactly-once: every barrier is aligned. A channel that delivered the barrier of the
    /// checkpoint in progress is blocked (its elements are held, unprocessed, and its credits
    /// not returned) until every live channel has delivered it; the snapshot sees exactly the
    /// records sent before the barriers.
    #[default]
    Aligned,
    /// At-least-once: checkpoint barriers are tracked and never block; the snapshot is taken
    /// when the last live channel delivers the barrier. Savepoint barriers are still aligned
    /// (Flink: "savepoints are always aligned"), by an aligner of their own.
    AtLeastOnce,
}

impl AlignmentMode {
    /// The alignment a job's checkpointing mode asks for.
    pub fn for_checkpointing(mode: CheckpointingMode) -> Self {
        match mode {
            CheckpointingMode::ExactlyOnce => AlignmentMode::Aligned,
            CheckpointingMode::AtLeastOnce => AlignmentMode::AtLeastOnce,
        }
    }

    /// The aligner mode for checkpoint barriers.
    pub(super) fn checkpoints(self) -> CheckpointingMode {
        match self {
            AlignmentMode::Aligned => CheckpointingMode::ExactlyOnce,
            AlignmentMode::AtLeastOnce => CheckpointingMode::AtLeastOnce,
        }
    }

    /// True when savepoint barriers need an aligner of their own (the checkpoints' one does
    /// not align).
    pub(super) fn aligns_savepoints_apart(self) -> bool {
        self == AlignmentMode::AtLeastOnce
    }
}

impl From<CheckpointingMode> for AlignmentMode {
    fn from(mode: CheckpointingMode) -> Self {
        Self::for_checkpointing(mode)
    }
}
