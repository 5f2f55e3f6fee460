//! The input gate: everything a subtask decides about what arrives on its input channels.
//!
//! A subtask has N input channels, one per upstream sender, indexed `0..N`. Its runtime owns
//! one [`InputGate`] and does three things with it:
//!
//! 1. On every arrival it calls [`InputGate::receive`]: the element is queued, in arrival order.
//! 2. On [`CheckpointAborted`](InputGate::abort) it tells the gate.
//! 3. After either, and whenever output credit comes back, it calls [`InputGate::next`] until it
//!    returns `None`, and executes each [`GateAction`]: process a batch (then return the credit
//!    it names), take a snapshot, decline a checkpoint, or end the subtask's input.
//!
//! The gate is pure: no actors, no clock (the caller passes `now`), no I/O; it is generic over
//! the batch payload `B`.
//!
//! # The flow
//!
//! Elements wait in one arrival queue (`gate/channel.rs` explains the numbering). `next` looks
//! at the front:
//!
//! - A **batch** needs [`OutputCredit::Available`]; without it `next` returns `None` and the
//!   batch stays at the front, and so does everything behind it: the gate never reorders to get
//!   around back-pressure. With it, the batch is handed out as [`GateAction::Process`] and
//!   counted towards its channel's credit group (`gate/credit.rs`).
//! - A **barrier** goes to the aligner of its kind (`gate/alignment.rs`); an **end of input**
//!   to every aligner, and once every channel has ended the gate hands out
//!   [`GateAction::InputsEnded`], once ([`GateState`]).
//! - A **watermark** (or idleness) goes to the gate's [`InputWatermarks`]; when the combined
//!   watermark advances the gate hands out [`GateAction::Watermark`] right there, so it keeps
//!   its place between the batches around it. It needs no output credit. An end of input takes
//!   its channel out of the minimum, which may advance it too.
//! - Any element of a channel an aligner **blocks** moves to that channel's held buffer
//!   instead, unprocessed and uncounted, so its sender stalls after W batches. When the
//!   alignment completes or is given up, the held elements of every released channel go back
//!   to the front, merged in arrival order.
//!
//! What a barrier, an end of input or an abort decides (snapshot, decline) is queued and handed
//! out before any further element, in the order the aligner reports it: declines first, then
//! the snapshot.
//!
//! [`AlignmentMode`] says how barriers are treated: aligned (exactly-once) or tracked
//! (at-least-once, with savepoints still aligned).
//!
//! # Unaligned checkpoints
//!
//! In [`AlignmentMode::Unaligned`] (Flink's unaligned checkpoints: exactly-once, one pending
//! checkpoint at a time) checkpoint barriers never block: the first barrier of a checkpoint to
//! arrive triggers its snapshot ahead of everything queued; the batches it overtook
//! ([`InputGate::overtaken`]) and those that arrive before their channel's barrier
//! ([`InputGate::recording`]) are that checkpoint's channel state, which the owner copies while
//! processing every batch as usual (`gate/unaligned.rs`). With an
//! alignment timeout the checkpoint starts aligned and switches when the timeout passes; the
//! owner calls [`InputGate::next`] at [`InputGate::deadline`] for that. Channel state restored
//! from a checkpoint is queued ahead of everything with [`InputGate::restore`].

mod action;
mod alignment;
mod channel;
mod credit;
mod element;
mod error;
mod mode;
mod state;
mod unaligned;

#[cfg(test)]
mod simulation;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod unaligned_tests;

use std::collections::VecDeque;
use std::time::Instant;

pub use action::{DeclineReason, GateAction};
pub use credit::{credit_group, CreditReturn, OutputCredit};
pub use element::ChannelElement;
pub use error::GateError;
pub use mode::AlignmentMode;
pub use state::GateState;
pub use unaligned::RESTORED_CHANNEL;

use crate::ids::CheckpointId;
use crate::time::{InputWatermarks, Watermark};
use action::Decision;
use alignment::Alignments;
use channel::{Arrival, InputChannel};
use unaligned::Unaligned;

/// A subtask's input side: arrival order, alignment, held elements of blocked channels, credit
/// groups and the end of input. See the module docs.
#[derive(Debug)]
pub struct InputGate<B> {
    mode: AlignmentMode,
    channels: Vec<InputChannel<B>>,
    /// Received elements not handed out (nor held), in arrival order.
    arrivals: VecDeque<Arrival<B>>,
    /// The arrival number of the last received element.
    last_seq: u64,
    alignments: Alignments,
    /// Decisions not handed out yet; they go before any element.
    decisions: VecDeque<Decision>,
    /// Credits are returned in groups of this many batches.
    credit_group: u32,
    state: GateState,
    /// Unaligned mode only.
    unaligned: Option<Unaligned>,
    /// Event time: per channel watermarks and the combined one.
    watermarks: InputWatermarks,
}

impl<B> InputGate<B> {
    /// A gate for `channels` input channels whose senders have a window of `credit_window`
    /// batches each.
    pub fn new(mode: AlignmentMode, channels: usize, credit_window: u32) -> Self {
        Self {
            mode,
            channels: (0..channels).map(|_| InputChannel::default()).collect(),
            arrivals: VecDeque::new(),
            last_seq: 0,
            alignments: Alignments::new(mode, channels),
            decisions: VecDeque::new(),
            credit_group: credit_group(credit_window),
            state: GateState::Receiving,
            unaligned: match mode {
                AlignmentMode::Unaligned { aligned_timeout } => {
                    Some(Unaligned::new(aligned_timeout))
                }
                _ => None,
            },
            watermarks: InputWatermarks::new(channels),
        }
    }

    pub fn mode(&self) -> AlignmentMode {
        self.mode
    }

    pub fn num_channels(&self) -> usize {
        self.channels.len()
    }

    pub fn state(&self) -> GateState {
        self.state
    }

    /// The input watermark handed out last (the minimum over the active channels), if any.
    pub fn watermark(&self) -> Option<Watermark> {
        self.watermarks.current()
    }

    /// True while an aligner blocks `channel` (its elements are held). False for an unknown
    /// channel.
    pub fn is_blocked(&self, channel: usize) -> bool {
        self.alignments.is_blocked(channel)
    }

    /// The checkpoint being aligned or tracked here, if any (a savepoint being aligned in an
    /// at-least-once job first).
    pub fn pending_checkpoint(&self) -> Option<CheckpointId> {
        self.alignments
            .pending()
            .or_else(|| self.unaligned.as_ref().and_then(Unaligned::capturing))
    }

    /// Unaligned mode with an alignment timeout: when the checkpoint being aligned switches to
    /// unaligned, if one is. The owner calls [`Self::next`] then even if nothing arrives.
    pub fn deadline(&self) -> Option<Instant> {
        self.unaligned.as_ref().and_then(Unaligned::deadline)
    }

    /// Queues `batches`, restored from a checkpoint's channel state, ahead of everything: they
    /// are handed out first, in this order (with channel [`RESTORED_CHANNEL`] and no credit).
    /// Call it before the first [`Self::receive`].
    pub fn restore(&mut self, batches: impl IntoIterator<Item = B>) {
        for batch in batches {
            self.last_seq += 1;
            self.arrivals.push_back(Arrival {
                seq: self.last_seq,
                channel: RESTORED_CHANNEL,
                element: ChannelElement::Batch(batch),
                record: None,
            });
        }
    }

    /// Batches of `channel` handed out and not yet returned as credit.
    pub fn owed_credit(&self, channel: usize) -> u32 {
        self.channels.get(channel).map_or(0, |c| c.credit.owed())
    }

    /// Queues `element`, arrived on `channel`. Nothing is decided until [`Self::next`].
    #[inline]
    pub fn receive(&mut self, channel: usize, element: ChannelElement<B>) -> Result<(), GateError> {
        let channels = self.channels.len();
        let Some(input) = self.channels.get_mut(channel) else {
            return Err(GateError::UnknownChannel { channel, channels });
        };
        input.receive(channel, &element)?;
        self.last_seq += 1;
        if self.unaligned.is_some() {
            match &element {
                ChannelElement::Batch(_) | ChannelElement::Watermark(_) => {}
                ChannelElement::Barrier(b) => {
                    if self.unaligned_barrier(channel, *b, self.last_seq) {
                        return Ok(());
                    }
                }
                ChannelElement::EndOfInput => self.unaligned_end_of_input(channel),
            }
        }
        self.arrivals.push_back(Arrival {
            seq: self.last_seq,
            channel,
            element,
            record: None,
        });
        Ok(())
    }

    /// The coordinator aborted checkpoint `id`: an alignment of it is given up and its
    /// channels are released; its barriers are ignored from now on.
    pub fn abort(&mut self, id: CheckpointId, now: Instant) {
        self.alignments.on_abort(id, now, &mut self.decisions);
        self.unaligned_abort(id);
        self.release();
    }

    /// The next thing to do, or `None` when there is nothing to do until more arrives (or,
    /// with `output` [`OutputCredit::Exhausted`], until output credit comes back).
    pub fn next(&mut self, now: Instant, output: OutputCredit) -> Option<GateAction<B>> {
        self.unaligned_tick(now);
        loop {
            if let Some(decision) = self.next_decision() {
                return Some(decision);
            }
            let front = self.arrivals.front()?;
            if output == OutputCredit::Exhausted && front.element.is_batch() {
                return None;
            }
            let arrival = self.arrivals.pop_front()?;
            let channel = arrival.channel;
            if self.alignments.is_blocked(channel) {
                if let Some(input) = self.channels.get_mut(channel) {
                    input.held.push_back(arrival);
                }
                continue;
            }
            match arrival.element {
                ChannelElement::Batch(batch) => {
                    let credit = self
                        .channels
                        .get_mut(channel)
                        .and_then(|input| input.credit.count(self.credit_group))
                        .map(|batches| CreditReturn { channel, batches });
                    return Some(GateAction::Process {
                        channel,
                        batch,
                        credit,
                    });
                }
                ChannelElement::Barrier(barrier) => {
                    self.alignments
                        .on_barrier(channel, barrier, now, &mut self.decisions);
                    self.release();
                }
                ChannelElement::Watermark(event) => {
                    if let Some(out) = self.watermarks.on_event(channel, event) {
                        return Some(GateAction::Watermark(out));
                    }
                }
                ChannelElement::EndOfInput => {
                    self.alignments
                        .on_end_of_input(channel, now, &mut self.decisions);
                    if let Some(out) = self.watermarks.on_end_of_input(channel) {
                        self.decisions.push_back(Decision::Watermark(out));
                    }
                    if self.state == GateState::Receiving && self.alignments.all_ended() {
                        self.state = GateState::Ended;
                        self.decisions.push_back(Decision::InputsEnded);
                    }
                    self.release();
                }
            }
        }
    }

    /// The next decision (snapshot, decline, channel state complete, end of input) without
    /// handing out any element: what an owner that defers processing runs right after
    /// [`Self::receive`], so that an unaligned snapshot is taken as soon as its barrier arrives.
    pub fn next_decision(&mut self) -> Option<GateAction<B>> {
        let decision = self.decisions.pop_front()?;
        if let Some(u) = self.unaligned.as_mut() {
            match decision {
                Decision::Snapshot { barrier, .. } => u.on_aligned_decision(barrier.id),
                Decision::Decline { id, .. } => u.on_aligned_decision(id),
                _ => {}
            }
        }
        Some(decision.into())
    }

    /// Unaligned checkpoints: the checkpoint whose channel state a batch arriving on `channel`
    /// now belongs to (its barrier has not arrived there yet). Ask before [`Self::receive`] and
    /// copy the batch if so.
    #[inline]
    pub fn recording(&self, channel: usize) -> Option<CheckpointId> {
        self.unaligned.as_ref()?.recording(channel)
    }

    /// Unaligned checkpoints: the batches queued here that the barrier of `id` overtook, with
    /// their channels, in arrival order (per channel). Copy them when the snapshot of `id` is
    /// handed out.
    pub fn overtaken(&self, id: CheckpointId) -> impl Iterator<Item = (usize, &B)> + '_ {
        let held = self.channels.iter().flat_map(|c| &c.held);
        held.chain(&self.arrivals)
            .filter(move |a| a.record == Some(id))
            .filter_map(|a| a.element.batch().map(|b| (a.channel, b)))
    }

    /// Everything of `channel` the gate has received and not handed out, in arrival order:
    /// its held elements, then those still queued.
    pub fn held(&self, channel: usize) -> impl Iterator<Item = &ChannelElement<B>> + '_ {
        let held = self.channels.get(channel).into_iter().flat_map(|c| &c.held);
        held.chain(self.arrivals.iter().filter(move |a| a.channel == channel))
            .map(|a| &a.element)
    }

    /// Moves the held elements of every channel that is no longer blocked back to the front of
    /// the arrival queue, merged in arrival order.
    pub(super) fn release(&mut self) {
        let mut released: Vec<Arrival<B>> = Vec::new();
        for (c, input) in self.channels.iter_mut().enumerate() {
            if !input.held.is_empty() && !self.alignments.is_blocked(c) {
                released.extend(input.held.drain(..));
            }
        }
        if released.is_empty() {
            return;
        }
        released.sort_by_key(|a| a.seq);
        for arrival in released.into_iter().rev() {
            self.arrivals.push_front(arrival);
        }
    }
}
