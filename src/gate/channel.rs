//! One input channel as the gate keeps it: one record per channel.
//!
//! Every element the gate receives gets a sequence number (its arrival order over all
//! channels) and waits in the gate's arrival queue until it reaches the front. An element of a
//! blocked channel that reaches the front moves to that channel's `held` buffer, still with its
//! number; when the channel is released, the held elements of every released channel go back
//! to the front of the arrival queue, merged by number, so the gate hands elements out in
//! arrival order again. A channel's held elements are all older than its elements still in the
//! arrival queue, so `held` then the queue is the channel's order.

use std::collections::VecDeque;

use crate::ids::CheckpointId;

use super::credit::OwedCredit;
use super::element::ChannelElement;
use super::error::GateError;

/// One received element with its arrival number.
#[derive(Debug)]
pub(super) struct Arrival<B> {
    pub(super) seq: u64,
    pub(super) channel: usize,
    pub(super) element: ChannelElement<B>,
    /// Unaligned checkpoints: the checkpoint whose channel state this batch (queued when the
    /// capture started) belongs to.
    pub(super) record: Option<CheckpointId>,
}

/// Whether a channel may still deliver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Input {
    #[default]
    Open,
    /// Its end of input was received (maybe not handed to the aligners yet).
    Ended,
}

/// One input channel.
#[derive(Debug)]
pub(super) struct InputChannel<B> {
    pub(super) input: Input,
    /// Elements that reached the front while the channel was blocked, in arrival order.
    pub(super) held: VecDeque<Arrival<B>>,
    pub(super) credit: OwedCredit,
    /// The newest barrier id received (not necessarily handed out) on this channel.
    pub(super) newest_barrier: Option<CheckpointId>,
}

impl<B> Default for InputChannel<B> {
    fn default() -> Self {
        Self {
            input: Input::Open,
            held: VecDeque::new(),
            credit: OwedCredit::default(),
            newest_barrier: None,
        }
    }
}

impl<B> InputChannel<B> {
    /// Checks that the channel may deliver `element`; records its end of input.
    #[inline]
    pub(super) fn receive(
        &mut self,
        channel: usize,
        element: &ChannelElement<B>,
    ) -> Result<(), GateError> {
        if self.input == Input::Ended {
            return Err(GateError::AfterEndOfInput { channel });
        }
        match element {
            ChannelElement::EndOfInput => self.input = Input::Ended,
            ChannelElement::Barrier(b) => self.newest_barrier = self.newest_barrier.max(Some(b.id)),
            ChannelElement::Batch(_) | ChannelElement::Watermark(_) => {}
        }
        Ok(())
    }
}
