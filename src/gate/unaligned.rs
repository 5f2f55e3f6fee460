//! Unaligned checkpoints at the gate: the barrier overtakes, the overtaken batches are recorded.
//!
//! In [`AlignmentMode::Unaligned`](super::AlignmentMode) a checkpoint barrier never blocks a
//! channel. With a zero alignment timeout, the first barrier of checkpoint `n` to *arrive* on
//! any channel (in [`InputGate::receive`](super::InputGate::receive), not when it reaches the
//! front of the queue) starts a [`Capture`] of `n`: the snapshot decision is queued ahead of
//! every batch in the gate, and every batch that precedes barrier `n` on its channel and is not
//! processed yet is channel state of `n`:
//!
//! - batches already queued when the capture starts (they all arrived before the barrier): the
//!   gate flags them, and the owner copies them when it takes the snapshot
//!   ([`InputGate::overtaken`](super::InputGate::overtaken));
//! - batches that arrive later on a channel whose barrier `n` has not arrived yet: the owner
//!   asks [`InputGate::recording`](super::InputGate::recording) before handing each batch to
//!   the gate, and copies it if so.
//!
//! Every batch is still processed as usual (after the snapshot); the copies are what is
//! persisted, so the checkpoint never waits for the overtaken data to be processed. Once
//! barrier `n` (or the end of input) has arrived on every channel, the gate hands out
//! [`GateAction::ChannelStateDone`](super::GateAction): the channel state is complete.
//!
//! With a positive timeout the checkpoint starts aligned (the barrier queues and goes to the
//! exactly-once aligner like any other); [`Aligning`] remembers when its first barrier was seen
//! and at which arrival number each channel delivered it. When the timeout passes before the
//! alignment completes, the gate switches: the aligner forgets `n` (its blocked channels are
//! released, its later barriers are stale), a capture of `n` starts, and a queued batch is
//! flagged when it arrived before its channel's barrier `n` — which leaves out the held batches
//! of channels that were blocked, since they came after the barrier.
//!
//! A newer barrier arriving during a capture subsumes it (declined, as Flink does); an abort from
//! the coordinator drops it. Savepoint barriers and the barrier of a bounded job's final
//! checkpoint are never captured: they are always aligned.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use tracing::debug;

use crate::element::Barrier;
use crate::ids::CheckpointId;

use super::action::{Decision, DeclineReason};
use super::channel::{Arrival, Input};
use super::element::ChannelElement;
use super::InputGate;

/// Aborted ids remembered before their barriers arrive (as the aligner's bound).
const MAX_REMEMBERED_ABORTS: usize = 64;

/// The arrival "channel" of batches restored from channel state (see
/// [`InputGate::restore`](super::InputGate::restore)): not a real channel, so they return no
/// credit and belong to no barrier.
pub const RESTORED_CHANNEL: usize = usize::MAX;

/// A checkpoint being aligned under a timeout (positive `aligned_timeout` only).
#[derive(Clone, Debug)]
pub(super) struct Aligning {
    barrier: Barrier,
    /// When the gate first looked after its first barrier arrived (set by `next`).
    since: Option<Instant>,
    /// Per channel: the arrival number of its first barrier of this id or a newer one.
    barrier_seq: Vec<Option<u64>>,
}

/// The channel state of one unaligned checkpoint being recorded.
#[derive(Clone, Debug)]
pub(super) struct Capture {
    id: CheckpointId,
    /// Per channel: its barrier (or end of input) has arrived; nothing more of it is recorded.
    passed: Vec<bool>,
}

/// The unaligned side of a gate. See the module docs.
#[derive(Clone, Debug)]
pub(super) struct Unaligned {
    aligned_timeout: Duration,
    /// Highest id captured, declined or given up here; its barriers and older ones are stale.
    finished: Option<CheckpointId>,
    /// Ids the coordinator aborted above `finished`; their barriers are ignored.
    aborted: BTreeSet<CheckpointId>,
    aligning: Option<Aligning>,
    capture: Option<Capture>,
}

impl Unaligned {
    pub(super) fn new(aligned_timeout: Duration) -> Self {
        Self {
            aligned_timeout,
            finished: None,
            aborted: BTreeSet::new(),
            aligning: None,
            capture: None,
        }
    }

    fn is_stale(&self, id: CheckpointId) -> bool {
        self.finished.is_some_and(|f| id <= f) || self.aborted.contains(&id)
    }

    fn finish(&mut self, id: CheckpointId) {
        if self.finished.is_none_or(|f| f < id) {
            self.finished = Some(id);
            self.aborted.retain(|&a| a > id);
        }
    }

    /// The checkpoint whose channel state is being recorded, if any.
    pub(super) fn capturing(&self) -> Option<CheckpointId> {
        self.capture.as_ref().map(|c| c.id)
    }

    /// When a checkpoint being aligned switches to unaligned, if one is.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let a = self.aligning.as_ref()?;
        Some(a.since? + self.aligned_timeout)
    }

    /// The checkpoint whose channel state a batch arriving on `channel` now belongs to.
    #[inline]
    pub(super) fn recording(&self, channel: usize) -> Option<CheckpointId> {
        let capture = self.capture.as_ref()?;
        (!capture.passed.get(channel).copied().unwrap_or(true)).then_some(capture.id)
    }

    /// Hands out the completion of the capture once nothing more belongs to it.
    pub(super) fn complete_if_done(&mut self, out: &mut VecDeque<Decision>) {
        let done = self
            .capture
            .as_ref()
            .is_some_and(|c| c.passed.iter().all(|&p| p));
        if done {
            if let Some(c) = self.capture.take() {
                self.finish(c.id);
                out.push_back(Decision::ChannelStateDone { id: c.id });
            }
        }
    }

    /// The aligner completed or gave up `id` itself: it no longer needs a timeout.
    pub(super) fn on_aligned_decision(&mut self, id: CheckpointId) {
        if self.aligning.as_ref().is_some_and(|a| a.barrier.id <= id) {
            self.aligning = None;
        }
    }
}

impl<B> InputGate<B> {
    /// Unaligned mode: a barrier of checkpoint (not savepoint) arrives on `channel` as arrival
    /// `seq`. Returns true when the gate took it here (zero timeout): it must not be queued.
    ///
    /// A savepoint barrier, or the barrier of a job's final checkpoint, is never taken here
    /// (they are aligned: a savepoint by Flink's rule, the final checkpoint because the records
    /// in flight before it must reach the sinks before they commit for the last time), but it
    /// proves that its channel has passed every older checkpoint.
    pub(super) fn unaligned_barrier(&mut self, channel: usize, barrier: Barrier, seq: u64) -> bool {
        let id = barrier.id;
        // A channel that already delivered a newer barrier skipped this one (it was given up
        // upstream): a checkpoint whose first barrier this is can neither align nor be
        // captured here.
        let skipped = self
            .channels
            .iter()
            .any(|c| c.newest_barrier.is_some_and(|n| n > id));
        let Some(u) = self.unaligned.as_mut() else {
            return false;
        };
        if let Some(c) = u.capture.as_mut() {
            let passed = c.passed.get(channel).copied().unwrap_or(true);
            if c.id == id {
                c.passed[channel] = true;
            } else if c.id < id && !passed {
                // A newer barrier where the capture's has not arrived: the capture's checkpoint
                // was given up upstream; it is subsumed, as an aligned one would be.
                let old = c.id;
                u.capture = None;
                u.finish(old);
                self.decisions.push_back(Decision::Decline {
                    id: old,
                    reason: DeclineReason::Subsumed,
                });
            }
        }
        if barrier.kind.is_savepoint() || barrier.ending.is_final() {
            if u.aligning.as_ref().is_some_and(|a| {
                a.barrier.id < id && a.barrier_seq.get(channel).is_some_and(Option::is_none)
            }) {
                u.aligning = None;
            }
            u.complete_if_done(&mut self.decisions);
            return false;
        }
        if u.aligned_timeout > Duration::ZERO {
            // Aligned first: note where the barrier arrived, queue it for the aligner (which
            // ignores it if the checkpoint already switched).
            let captured = u.capture.as_ref().is_some_and(|c| id <= c.id);
            if u.aligning.as_ref().is_some_and(|a| {
                a.barrier.id < id && a.barrier_seq.get(channel).is_some_and(Option::is_none)
            }) {
                // A newer barrier where the aligned one has not arrived: the channel skipped it
                // (given up upstream), so it cannot complete; the aligner subsumes it.
                u.aligning = None;
            }
            if !u.is_stale(id) && !captured {
                match u.aligning.as_mut() {
                    Some(a) if a.barrier.id >= id => {
                        if a.barrier.id == id && a.barrier_seq[channel].is_none() {
                            a.barrier_seq[channel] = Some(seq);
                        }
                    }
                    _ if skipped => {}
                    _ => {
                        let mut barrier_seq = vec![None; self.channels.len()];
                        barrier_seq[channel] = Some(seq);
                        u.aligning = Some(Aligning {
                            barrier,
                            since: None,
                            barrier_seq,
                        });
                    }
                }
            }
            u.complete_if_done(&mut self.decisions);
            return false;
        }
        if skipped || u.is_stale(id) || u.capture.as_ref().is_some_and(|c| id <= c.id) {
            u.complete_if_done(&mut self.decisions);
            return true;
        }
        let passed = |c: usize| c == channel;
        self.start_capture(barrier, Duration::ZERO, passed, |_, _| true);
        true
    }

    /// Unaligned mode: `channel` delivered its end of input; it has passed every barrier.
    pub(super) fn unaligned_end_of_input(&mut self, channel: usize) {
        if let Some(u) = self.unaligned.as_mut() {
            if let Some(p) = u.capture.as_mut().and_then(|c| c.passed.get_mut(channel)) {
                *p = true;
            }
            u.complete_if_done(&mut self.decisions);
        }
    }

    /// Unaligned mode with a timeout: stamps when a new alignment was first seen, and switches
    /// an alignment that has taken `aligned_timeout` to unaligned.
    pub(super) fn unaligned_tick(&mut self, now: Instant) {
        let Some(u) = self.unaligned.as_mut() else {
            return;
        };
        let Some(a) = u.aligning.as_mut() else {
            return;
        };
        let since = *a.since.get_or_insert(now);
        if now.saturating_duration_since(since) < u.aligned_timeout {
            return;
        }
        let Some(a) = u.aligning.take() else {
            return;
        };
        let id = a.barrier.id;
        debug!(
            checkpoint_id = id.0,
            "alignment timed out: switching to unaligned"
        );
        // The aligner forgets the checkpoint: its blocked channels are released and its
        // barriers still queued are stale from now on.
        self.alignments.forget(id, now, &mut self.decisions);
        let bound: Vec<u64> = a
            .barrier_seq
            .iter()
            .map(|s| s.unwrap_or(u64::MAX))
            .collect();
        let passed = |c: usize| a.barrier_seq[c].is_some();
        let before = |channel: usize, seq: u64| bound.get(channel).is_none_or(|&b| seq < b);
        self.start_capture(
            a.barrier,
            now.saturating_duration_since(since),
            passed,
            before,
        );
        self.release();
    }

    /// Starts capturing the channel state of `barrier`'s checkpoint and queues its snapshot:
    /// `passed(c)` says whether channel `c` has delivered the barrier, `before(c, seq)` whether
    /// the queued batch number `seq` of channel `c` precedes it (and is recorded).
    fn start_capture(
        &mut self,
        barrier: Barrier,
        alignment: Duration,
        passed: impl Fn(usize) -> bool,
        before: impl Fn(usize, u64) -> bool,
    ) {
        let id = barrier.id;
        if let Some(u) = self.unaligned.as_mut() {
            if let Some(old) = u.capture.take() {
                self.decisions.push_back(Decision::Decline {
                    id: old.id,
                    reason: DeclineReason::Subsumed,
                });
            }
            // One pending checkpoint at a time: every older one is over, here too.
            if let Some(older) = id.0.checked_sub(1) {
                u.finish(CheckpointId(older));
            }
        }
        let passed: Vec<bool> = (0..self.channels.len())
            .map(|c| passed(c) || self.channels[c].input == Input::Ended)
            .collect();
        let flag = |a: &mut Arrival<B>| {
            if matches!(a.element, ChannelElement::Batch(_)) && before(a.channel, a.seq) {
                a.record = Some(id);
            }
        };
        self.arrivals.iter_mut().for_each(flag);
        for input in &mut self.channels {
            input.held.iter_mut().for_each(flag);
        }
        self.decisions.push_back(Decision::Snapshot {
            barrier,
            alignment,
            unaligned: true,
        });
        if let Some(u) = self.unaligned.as_mut() {
            u.capture = Some(Capture { id, passed });
            u.complete_if_done(&mut self.decisions);
        }
    }

    /// The coordinator aborted `id`: a capture or timed alignment of it is dropped.
    pub(super) fn unaligned_abort(&mut self, id: CheckpointId) {
        let Some(u) = self.unaligned.as_mut() else {
            return;
        };
        if u.capture.as_ref().is_some_and(|c| c.id == id) {
            debug!(checkpoint_id = id.0, "unaligned capture aborted");
            u.capture = None;
        }
        if u.aligning.as_ref().is_some_and(|a| a.barrier.id == id) {
            u.aligning = None;
        }
        if !u.is_stale(id) {
            u.aborted.insert(id);
            while u.aborted.len() > MAX_REMEMBERED_ABORTS {
                u.aborted.pop_first();
            }
        }
    }
}
