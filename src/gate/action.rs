//! What the gate tells its owner to do.
//!
//! The owner executes the actions in the order [`super::InputGate::next`] hands them out. Only
//! `Process` carries a batch; the others are decisions about checkpoints, event time and the
//! end of input,
//! always handed out before any element that arrived after the one that caused them.

use std::fmt;
use std::time::Duration;

use crate::element::Barrier;
use crate::ids::CheckpointId;
use crate::time::WatermarkEvent;

use super::credit::CreditReturn;

/// One thing for the owner to do.
#[derive(Debug, PartialEq)]
pub enum GateAction<B> {
    /// Process `batch` (from input channel `channel`), then, if `credit` is set, return that
    /// many credits to the channel's sender. The batch is already counted.
    Process {
        channel: usize,
        batch: B,
        credit: Option<CreditReturn>,
    },
    /// Take the snapshot of `barrier` now and forward the barrier on every output channel.
    /// `alignment` is the time from its first barrier here to now (zero when it completed at
    /// once or the first barrier was not seen here). When `unaligned`, copy the batches it
    /// overtook ([`super::InputGate::overtaken`]) and those that arrive later on channels that
    /// are still [`super::InputGate::recording`]; acknowledge after
    /// [`GateAction::ChannelStateDone`].
    Snapshot {
        barrier: Barrier,
        alignment: Duration,
        unaligned: bool,
    },
    /// The barrier of unaligned checkpoint `id` (or the end of input) has arrived on every
    /// channel: its channel state is complete.
    ChannelStateDone { id: CheckpointId },
    /// Decline checkpoint `id` to the coordinator: it was given up here.
    Decline {
        id: CheckpointId,
        reason: DeclineReason,
    },
    /// The subtask's input watermark advanced (the minimum over its active channels), or every
    /// open channel went idle: hand it to the operators, then forward it on every output
    /// channel after the records they emitted before it.
    Watermark(WatermarkEvent),
    /// Every input channel has ended: finish the operators and forward end of input. Handed out
    /// once.
    InputsEnded,
}

/// Why the gate gave up a checkpoint the coordinator does not know is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeclineReason {
    /// A newer barrier arrived before the alignment completed (or, at-least-once, a newer
    /// checkpoint completed or pushed it out of the tracked window).
    Subsumed,
}

impl fmt::Display for DeclineReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeclineReason::Subsumed => {
                f.write_str("subsumed by a newer barrier before alignment completed")
            }
        }
    }
}

/// An action without a batch: what barriers, ends of input and aborts decide. Queued inside
/// the gate until handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Decision {
    Snapshot {
        barrier: Barrier,
        alignment: Duration,
        unaligned: bool,
    },
    ChannelStateDone {
        id: CheckpointId,
    },
    Decline {
        id: CheckpointId,
        reason: DeclineReason,
    },
    Watermark(WatermarkEvent),
    InputsEnded,
}

impl<B> From<Decision> for GateAction<B> {
    fn from(d: Decision) -> Self {
        match d {
            Decision::Snapshot {
                barrier,
                alignment,
                unaligned,
            } => GateAction::Snapshot {
                barrier,
                alignment,
                unaligned,
            },
            Decision::ChannelStateDone { id } => GateAction::ChannelStateDone { id },
            Decision::Decline { id, reason } => GateAction::Decline { id, reason },
            Decision::Watermark(w) => GateAction::Watermark(w),
            Decision::InputsEnded => GateAction::InputsEnded,
        }
    }
}
