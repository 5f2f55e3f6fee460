//! The messages between the job manager and the subtask actors, and between subtasks.
//!
//! Data path (subtask → subtask): [`Deliver`] carries one batch, barrier, watermark or end of
//! input on one channel, always sent with `do_send` so a channel stays FIFO and barriers and
//! watermarks stay in-band;
//! [`Credit`] flows back when the receiver has processed a batch.
//!
//! Control path (job manager → subtasks): [`Init`], [`Start`], [`InjectBarrier`] (sources),
//! [`CheckpointComplete`], [`CheckpointAborted`], [`Shutdown`].
//!
//! Reports (subtask → job manager): [`TaskEvent`], tagged with the execution attempt so that
//! reports of an earlier attempt are ignored after a restart.

use std::any::Any;
use std::fmt;

use actix::prelude::*;
pub use weir::checkpoint::ack::{OperatorAck, SubtaskAck};
use weir::element::{Barrier, CheckpointKind, Ending};
use weir::failure::FailureCause;
use weir::ids::{CheckpointId, TaskId};
use weir::time::WatermarkEvent;

/// What travels on a channel.
pub enum Payload {
    Batch {
        records: Box<dyn Any + Send>,
        len: usize,
    },
    Barrier(Barrier),
    /// The sender's watermark advanced, or it went idle; after the batches sent before it.
    Watermark(WatermarkEvent),
    EndOfInput,
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Batch { len, .. } => write!(f, "Batch({len})"),
            Payload::Barrier(b) => write!(f, "Barrier({})", b.id),
            Payload::Watermark(WatermarkEvent::Advance(w)) => write!(f, "Watermark({w})"),
            Payload::Watermark(WatermarkEvent::Idle) => f.write_str("Idle"),
            Payload::EndOfInput => f.write_str("EndOfInput"),
        }
    }
}

/// One element on input channel `channel` of the receiving subtask.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Deliver {
    pub channel: u32,
    pub payload: Payload,
}

/// The receiver processed `batches` batches of output channel `channel` of the sending subtask.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Credit {
    pub channel: u32,
    pub batches: u32,
}

/// Wiring that only exists once every subtask has been started: where to return credits.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Init {
    /// Per input channel: the sender's credit recipient and the sender's output channel index.
    pub upstream: Vec<(Recipient<Credit>, u32)>,
}

/// Sources: begin producing.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Start;

/// Sources: take a snapshot now and emit `barrier` on every output channel; after a final
/// barrier ([`Ending::Final`]), emit end of input and stop.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct InjectBarrier {
    pub barrier: Barrier,
}

#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct CheckpointComplete {
    pub id: CheckpointId,
    pub kind: CheckpointKind,
    /// [`Ending::Final`]: the job ends with this checkpoint; report `Finished` once committed
    /// and all inputs ended.
    pub ending: Ending,
}

#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct CheckpointAborted {
    pub id: CheckpointId,
}

/// Stop the actor now (failover, cancel, end of job).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Shutdown;

/// What a subtask reports to the job manager.
#[derive(Debug)]
pub enum TaskEventKind {
    Acknowledge {
        id: CheckpointId,
        ack: SubtaskAck,
    },
    Decline {
        id: CheckpointId,
        reason: String,
    },
    /// A source has no more records (it still answers triggers until the final checkpoint).
    SourceExhausted,
    /// Committed the last checkpoint and every input has ended.
    Finished,
    Failed {
        error: String,
        /// Whether retrying can heal it: damaged restored state cannot.
        cause: FailureCause,
    },
}

#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct TaskEvent {
    pub attempt: u32,
    pub task: TaskId,
    pub kind: TaskEventKind,
}
