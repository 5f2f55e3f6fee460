//! What the gate refuses to take.
//!
//! Both errors mean the wiring or a sender misbehaves; the runtime fails the subtask on them.
//! Everything else a sender or the coordinator may do (stale or unknown barriers, aborts of
//! unknown ids) is handled by the [`crate::checkpoint::aligner::BarrierAligner`] as documented
//! there.

/// An element the gate cannot take.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    #[error("element on input channel {channel}, but the subtask has {channels} input channels")]
    UnknownChannel { channel: usize, channels: usize },
    #[error("element on input channel {channel} after its end of input")]
    AfterEndOfInput { channel: usize },
}
