//! What arrives on one input channel of a subtask.
//!
//! The gate's own element type, generic over the batch payload: the runtime's batch is a
//! type-erased `Box<dyn Any + Send>` with a length, the gate's tests use plain values. A channel
//! carries, in order, batches, barriers, watermarks and at most one end of input; barriers are in-band, so
//! everything its sender emitted before a barrier arrives before it.

use crate::element::Barrier;
use crate::time::WatermarkEvent;

/// One element on an input channel.
#[derive(Clone, Debug, PartialEq)]
pub enum ChannelElement<B> {
    /// A batch of records.
    Batch(B),
    /// A checkpoint barrier.
    Barrier(Barrier),
    /// The sender's watermark advanced, or it went idle. In-band: it follows the batches its
    /// sender emitted before it, and a blocked channel's watermark is held with its batches.
    Watermark(WatermarkEvent),
    /// The sender has no more records; nothing follows on this channel.
    EndOfInput,
}

impl<B> ChannelElement<B> {
    /// The batch, if this is one.
    pub fn batch(&self) -> Option<&B> {
        match self {
            ChannelElement::Batch(b) => Some(b),
            _ => None,
        }
    }

    /// True for a batch (the only element that needs output credit to be handed out).
    pub fn is_batch(&self) -> bool {
        matches!(self, ChannelElement::Batch(_))
    }
}
