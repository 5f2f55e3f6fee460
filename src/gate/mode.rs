//! How the gate treats barriers: the alignment mode.
//!
//! The job's checkpointing settings decide it ([`AlignmentMode::for_checkpoints`]): the mode,
//! and for exactly-once whether checkpoints are unaligned and after which alignment timeout.

use std::time::Duration;

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
    /// Exactly-once with unaligned checkpoints (Flink's `unaligned.enabled`). With a zero
    /// `aligned_timeout` the first barrier of a checkpoint to arrive on any channel triggers
    /// the snapshot at once, ahead of every batch queued in the gate, and the batches it
    /// overtook become the checkpoint's channel state (`gate/unaligned.rs`). With a positive
    /// one (Flink's `aligned-checkpoint-timeout`) a checkpoint starts aligned and switches to
    /// unaligned once its first barrier has been here that long. Savepoints are always
    /// aligned.
    Unaligned { aligned_timeout: Duration },
}

impl AlignmentMode {
    /// The alignment a job's checkpointing mode asks for, checkpoints aligned.
    pub fn for_checkpointing(mode: CheckpointingMode) -> Self {
        match mode {
            CheckpointingMode::ExactlyOnce => AlignmentMode::Aligned,
            CheckpointingMode::AtLeastOnce => AlignmentMode::AtLeastOnce,
        }
    }

    /// The alignment a job's checkpoint settings ask for: `unaligned` only applies to
    /// exactly-once (the configuration refuses it with at-least-once).
    pub fn for_checkpoints(
        mode: CheckpointingMode,
        unaligned: bool,
        aligned_timeout: Duration,
    ) -> Self {
        match mode {
            CheckpointingMode::ExactlyOnce if unaligned => {
                AlignmentMode::Unaligned { aligned_timeout }
            }
            _ => Self::for_checkpointing(mode),
        }
    }

    /// True for [`AlignmentMode::Unaligned`].
    pub fn is_unaligned(self) -> bool {
        matches!(self, AlignmentMode::Unaligned { .. })
    }

    /// The aligner mode for checkpoint barriers (savepoints and, before their timeout, the
    /// checkpoints of an unaligned job are aligned by it).
    pub(super) fn checkpoints(self) -> CheckpointingMode {
        match self {
            AlignmentMode::Aligned | AlignmentMode::Unaligned { .. } => {
                CheckpointingMode::ExactlyOnce
            }
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
