//! Barrier alignment: what a checkpoint barrier means to the subtask that receives it.
//!
//! A subtask has N input channels, one per upstream sender subtask, indexed `0..N`. Its actor
//! hands every barrier, every `EndOfInput` and every `CheckpointAborted` to a
//! [`BarrierAligner`] and gets back an [`AlignerOutput`]: the checkpoints to give up (each with
//! an [`AbandonReason`]) and the barrier whose snapshot to take now, if any. Before processing
//! any message of a channel the actor asks [`BarrierAligner::is_blocked`]; the messages of a
//! blocked channel (records, barriers, end of input alike) wait in a per-channel buffer and are
//! drained, in arrival order, once the channel is released.
//!
//! - [`CheckpointingMode::ExactlyOnce`] aligns (Flink's `SingleCheckpointBarrierHandler`): one
//!   checkpoint at a time; each channel that delivered its barrier is blocked until every live
//!   channel has, so the snapshot sees exactly the records sent before the barrier.
//! - [`CheckpointingMode::AtLeastOnce`] tracks (Flink's `CheckpointBarrierTracker`): nothing is
//!   ever blocked; up to [`MAX_TRACKED_CHECKPOINTS`] ids are counted at once, and the snapshot is
//!   taken when the last live channel delivers the barrier.
//!
//! Both modes share two rules. Ids only grow on a channel, so once an id is *finished* here
//! (completed or abandoned) every barrier with that id or a lower one is stale and ignored. And
//! a channel that delivered `EndOfInput` no longer counts for any checkpoint.
//!
//! The aligner never panics. Inputs that only a misbehaving owner produces (an unknown channel,
//! a barrier or a second end of input after end of input, a barrier on a blocked channel) are
//! handled as documented on each method and logged with `tracing`.

use std::collections::{BTreeSet, VecDeque};

use tracing::{debug, warn};

use crate::checkpoint::options::CheckpointingMode;
use crate::element::Barrier;
use crate::ids::CheckpointId;

/// At-least-once: at most this many checkpoints are tracked at once (Flink's bound); when a
/// newer one arrives, the oldest is abandoned as [`AbandonReason::Subsumed`].
pub const MAX_TRACKED_CHECKPOINTS: usize = 50;

/// Aborted ids whose barriers have not arrived yet that the aligner remembers; beyond this the
/// lowest are forgotten (a forgotten abort costs one useless snapshot, never correctness).
pub const MAX_REMEMBERED_ABORTS: usize = 64;

/// Why a checkpoint was given up at this subtask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AbandonReason {
    /// A newer checkpoint's barrier arrived first, or (at-least-once) a newer checkpoint
    /// completed or pushed it out of the tracked window.
    Subsumed,
    /// The coordinator aborted it (`CheckpointAborted`).
    Aborted,
}

/// What the owner must do, in this order: first handle `abandoned` (decline it, release every
/// channel that is no longer blocked), then `complete` (snapshot, forward the barrier on all
/// outputs, acknowledge), then re-check [`BarrierAligner::is_blocked`] for every buffered
/// channel and drain the released ones in arrival order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlignerOutput {
    /// Checkpoints given up, oldest first.
    pub abandoned: Vec<(CheckpointId, AbandonReason)>,
    /// The barrier whose snapshot is due now.
    pub complete: Option<Barrier>,
}

impl AlignerOutput {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.abandoned.is_empty() && self.complete.is_none()
    }
}

/// Where one input channel stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChannelState {
    /// Its messages are processed as they come.
    Open,
    /// It delivered the barrier being aligned; its messages wait (exactly-once only).
    Blocked,
    /// It delivered `EndOfInput`; it counts for no checkpoint any more.
    Ended,
}

/// At-least-once: a checkpoint some channels have delivered.
#[derive(Clone, Debug)]
struct Tracked {
    barrier: Barrier,
    /// Channels that delivered its barrier.
    delivered: BTreeSet<usize>,
}

/// The mode-specific part of the aligner.
#[derive(Clone, Debug)]
enum Progress {
    /// Exactly-once: the checkpoint being aligned, if any.
    Aligning(Option<Barrier>),
    /// At-least-once: the checkpoints being tracked, ascending ids.
    Tracking(VecDeque<Tracked>),
}

/// Which ids are over at this subtask.
#[derive(Clone, Debug, Default)]
struct History {
    /// Highest id completed or abandoned here; barriers at or below it are stale.
    finished: Option<CheckpointId>,
    /// Ids above `finished` the coordinator aborted; their barriers are ignored.
    aborted: BTreeSet<CheckpointId>,
}

impl History {
    fn is_stale(&self, id: CheckpointId) -> bool {
        self.finished.is_some_and(|f| id <= f)
    }

    fn finish(&mut self, id: CheckpointId) {
        if !self.is_stale(id) {
            self.finished = Some(id);
            self.aborted.retain(|&a| a > id);
        }
    }

    fn remember_abort(&mut self, id: CheckpointId) {
        if self.is_stale(id) {
            return;
        }
        self.aborted.insert(id);
        while self.aborted.len() > MAX_REMEMBERED_ABORTS {
            self.aborted.pop_first();
        }
    }
}

/// The per-subtask decision of what a barrier, an end of input or an abort means: which
/// channels to block, which checkpoint to snapshot, which to give up. See the module docs.
#[derive(Clone, Debug)]
pub struct BarrierAligner {
    channels: Vec<ChannelState>,
    progress: Progress,
    history: History,
}

impl BarrierAligner {
    /// An aligner for `num_channels` input channels, none blocked or ended. With no channels at
    /// all (a source), every channel index is unknown and [`Self::all_ended`] is true.
    pub fn new(mode: CheckpointingMode, num_channels: usize) -> Self {
        let progress = match mode {
            CheckpointingMode::ExactlyOnce => Progress::Aligning(None),
            CheckpointingMode::AtLeastOnce => Progress::Tracking(VecDeque::new()),
        };
        Self {
            channels: vec![ChannelState::Open; num_channels],
            progress,
            history: History::default(),
        }
    }

    /// The mode this aligner was built for.
    pub fn mode(&self) -> CheckpointingMode {
        match self.progress {
            Progress::Aligning(_) => CheckpointingMode::ExactlyOnce,
            Progress::Tracking(_) => CheckpointingMode::AtLeastOnce,
        }
    }

    /// How many input channels there are.
    pub fn num_channels(&self) -> usize {
        self.channels.len()
    }

    /// True while records from `channel` must be buffered, not processed (exactly-once only).
    /// False for an unknown channel.
    pub fn is_blocked(&self, channel: usize) -> bool {
        self.channels.get(channel) == Some(&ChannelState::Blocked)
    }

    /// True once `channel` has delivered `EndOfInput`. False for an unknown channel.
    pub fn is_ended(&self, channel: usize) -> bool {
        self.channels.get(channel) == Some(&ChannelState::Ended)
    }

    /// Channels currently blocked, ascending (for draining; one pass over the channels).
    pub fn blocked_channels(&self) -> impl Iterator<Item = usize> + '_ {
        self.channels
            .iter()
            .enumerate()
            .filter(|(_, state)| **state == ChannelState::Blocked)
            .map(|(channel, _)| channel)
    }

    /// Every channel has delivered `EndOfInput` (true with no channels).
    pub fn all_ended(&self) -> bool {
        self.channels.iter().all(|s| *s == ChannelState::Ended)
    }

    /// The checkpoint currently being aligned (exactly-once) or tracked (lowest, at-least-once),
    /// if any.
    pub fn pending(&self) -> Option<CheckpointId> {
        match &self.progress {
            Progress::Aligning(current) => current.map(|b| b.id),
            Progress::Tracking(tracked) => tracked.front().map(|t| t.barrier.id),
        }
    }

    /// A barrier arrived (was dequeued in order) on `channel`.
    ///
    /// Ignored, with nothing to do: a stale barrier (its id is at or below the highest id
    /// finished here), a barrier of an id the coordinator aborted, an unknown channel, a
    /// channel that already ended. In exactly-once mode a barrier older than the one being
    /// aligned is ignored too (its channel never blocks): the channel that started the newer
    /// alignment has passed the older id. The same holds in at-least-once mode for an id older
    /// than the newest tracked one that is not tracked.
    ///
    /// Exactly-once: a newer id abandons the alignment in progress ([`AbandonReason::Subsumed`])
    /// and starts its own. A barrier of an aborted id still proves that its channel has passed
    /// every lower id, so it abandons an older alignment the same way, without starting one.
    ///
    /// A blocked channel cannot deliver anything, since its owner buffers it; if an owner
    /// misbehaves and delivers a barrier on a blocked channel anyway, a newer id is handled as
    /// above and any other id is ignored.
    pub fn on_barrier(&mut self, channel: usize, barrier: Barrier) -> AlignerOutput {
        let id = barrier.id;
        match self.channels.get(channel) {
            None => {
                warn!(channel, %id, channels = self.channels.len(), "barrier on an unknown channel ignored");
                return AlignerOutput::default();
            }
            Some(ChannelState::Ended) => {
                warn!(channel, %id, "barrier after end of input ignored");
                return AlignerOutput::default();
            }
            Some(ChannelState::Blocked) => {
                warn!(channel, %id, "barrier delivered on a blocked channel");
            }
            Some(ChannelState::Open) => {}
        }
        if self.history.is_stale(id) {
            debug!(channel, %id, "stale barrier ignored");
            return AlignerOutput::default();
        }
        match &mut self.progress {
            Progress::Aligning(current) => align(
                &mut self.channels,
                &mut self.history,
                current,
                channel,
                barrier,
            ),
            Progress::Tracking(tracked) => {
                track(&self.channels, &mut self.history, tracked, channel, barrier)
            }
        }
    }

    /// The channel delivered `EndOfInput`: it will deliver nothing more and no longer counts for
    /// any alignment. This may complete the checkpoint being aligned (or, at-least-once, the
    /// newest tracked one whose every other channel delivered it; older ones are subsumed).
    /// An unknown channel or a second end of input changes nothing.
    pub fn on_end_of_input(&mut self, channel: usize) -> AlignerOutput {
        match self.channels.get_mut(channel) {
            None => {
                warn!(
                    channel,
                    channels = self.channels.len(),
                    "end of input on an unknown channel ignored"
                );
                return AlignerOutput::default();
            }
            Some(ChannelState::Ended) => {
                warn!(channel, "second end of input ignored");
                return AlignerOutput::default();
            }
            Some(state) => *state = ChannelState::Ended,
        }
        let mut out = AlignerOutput::default();
        match &mut self.progress {
            Progress::Aligning(current) => {
                complete_if_aligned(&mut self.channels, &mut self.history, current, &mut out)
            }
            Progress::Tracking(tracked) => {
                complete_newest_ready(&self.channels, &mut self.history, tracked, &mut out)
            }
        }
        out
    }

    /// The coordinator aborted checkpoint `id` (`CheckpointAborted`): drop its alignment if in
    /// progress (abandoned as [`AbandonReason::Aborted`], every channel released), and ignore
    /// its barriers from now on. An id already finished here changes nothing.
    pub fn on_abort(&mut self, id: CheckpointId) -> AlignerOutput {
        let mut out = AlignerOutput::default();
        if self.history.is_stale(id) {
            return out;
        }
        match &mut self.progress {
            Progress::Aligning(current) => match *current {
                Some(aligning) if aligning.id == id => {
                    *current = None;
                    release_all(&mut self.channels);
                    self.history.finish(id);
                    out.abandoned.push((id, AbandonReason::Aborted));
                }
                // Older than the alignment: its barriers are ignored already, and stale once the
                // alignment is over.
                Some(aligning) if id < aligning.id => {}
                _ => self.history.remember_abort(id),
            },
            Progress::Tracking(tracked) => {
                if let Some(i) = tracked.iter().position(|t| t.barrier.id == id) {
                    tracked.remove(i);
                    out.abandoned.push((id, AbandonReason::Aborted));
                }
                self.history.remember_abort(id);
            }
        }
        out
    }
}

impl BarrierAligner {
    /// Checkpoint `id` is handled elsewhere from now on (an unaligned checkpoint whose
    /// alignment timed out): an alignment of `id` is given up ([`AbandonReason::Aborted`]), an
    /// older one in progress is [`AbandonReason::Subsumed`], as a barrier of `id` would
    /// subsume it, every channel is released, and barriers of `id` and older are stale.
    /// Exactly-once only; in at-least-once mode it is [`Self::on_abort`].
    pub fn skip_to(&mut self, id: CheckpointId) -> AlignerOutput {
        let mut out = AlignerOutput::default();
        let Progress::Aligning(current) = &mut self.progress else {
            return self.on_abort(id);
        };
        if self.history.is_stale(id) {
            return out;
        }
        if let Some(aligning) = current.take_if(|a| a.id <= id) {
            let reason = if aligning.id == id {
                AbandonReason::Aborted
            } else {
                AbandonReason::Subsumed
            };
            release_all(&mut self.channels);
            out.abandoned.push((aligning.id, reason));
        }
        self.history.finish(id);
        out
    }
}

/// Exactly-once handling of a barrier that is neither stale nor on an ended channel.
fn align(
    channels: &mut [ChannelState],
    history: &mut History,
    current: &mut Option<Barrier>,
    channel: usize,
    barrier: Barrier,
) -> AlignerOutput {
    let mut out = AlignerOutput::default();
    if let Some(aligning) = *current {
        if barrier.id < aligning.id {
            debug!(channel, id = %barrier.id, aligning = %aligning.id, "barrier older than the alignment ignored");
            return out;
        }
        if barrier.id == aligning.id {
            set_state(channels, channel, ChannelState::Blocked);
            complete_if_aligned(channels, history, current, &mut out);
            return out;
        }
        *current = None;
        release_all(channels);
        history.finish(aligning.id);
        out.abandoned.push((aligning.id, AbandonReason::Subsumed));
    }
    if history.aborted.contains(&barrier.id) {
        debug!(channel, id = %barrier.id, "barrier of an aborted checkpoint ignored");
        history.finish(barrier.id);
        return out;
    }
    *current = Some(barrier);
    set_state(channels, channel, ChannelState::Blocked);
    complete_if_aligned(channels, history, current, &mut out);
    out
}

/// Exactly-once: completes the alignment when no live channel is still open.
fn complete_if_aligned(
    channels: &mut [ChannelState],
    history: &mut History,
    current: &mut Option<Barrier>,
    out: &mut AlignerOutput,
) {
    let Some(aligning) = *current else { return };
    if channels.contains(&ChannelState::Open) {
        return;
    }
    *current = None;
    release_all(channels);
    history.finish(aligning.id);
    out.complete = Some(aligning);
}

/// At-least-once handling of a barrier that is neither stale nor on an ended channel.
fn track(
    channels: &[ChannelState],
    history: &mut History,
    tracked: &mut VecDeque<Tracked>,
    channel: usize,
    barrier: Barrier,
) -> AlignerOutput {
    let mut out = AlignerOutput::default();
    if history.aborted.contains(&barrier.id) {
        debug!(channel, id = %barrier.id, "barrier of an aborted checkpoint ignored");
        return out;
    }
    if let Some(t) = tracked.iter_mut().find(|t| t.barrier.id == barrier.id) {
        t.delivered.insert(channel);
    } else if tracked
        .back()
        .is_none_or(|newest| barrier.id > newest.barrier.id)
    {
        if tracked.len() >= MAX_TRACKED_CHECKPOINTS {
            if let Some(oldest) = tracked.pop_front() {
                history.finish(oldest.barrier.id);
                out.abandoned
                    .push((oldest.barrier.id, AbandonReason::Subsumed));
            }
        }
        tracked.push_back(Tracked {
            barrier,
            delivered: BTreeSet::from([channel]),
        });
    } else {
        debug!(channel, id = %barrier.id, "barrier older than the newest tracked one ignored");
        return out;
    }
    complete_newest_ready(channels, history, tracked, &mut out);
    out
}

/// At-least-once: completes the newest tracked checkpoint that every live channel delivered,
/// and abandons the older ones as subsumed.
fn complete_newest_ready(
    channels: &[ChannelState],
    history: &mut History,
    tracked: &mut VecDeque<Tracked>,
    out: &mut AlignerOutput,
) {
    let ready = tracked.iter().rposition(|t| {
        channels
            .iter()
            .enumerate()
            .all(|(c, s)| *s == ChannelState::Ended || t.delivered.contains(&c))
    });
    let Some(ready) = ready else { return };
    let done: Vec<Tracked> = tracked.drain(..=ready).collect();
    if let Some((newest, older)) = done.split_last() {
        out.abandoned.extend(
            older
                .iter()
                .map(|t| (t.barrier.id, AbandonReason::Subsumed)),
        );
        history.finish(newest.barrier.id);
        out.complete = Some(newest.barrier);
    }
}

fn set_state(channels: &mut [ChannelState], channel: usize, state: ChannelState) {
    if let Some(s) = channels.get_mut(channel) {
        *s = state;
    }
}

/// Unblocks every blocked channel; ended ones stay ended.
fn release_all(channels: &mut [ChannelState]) {
    for s in channels.iter_mut() {
        if *s == ChannelState::Blocked {
            *s = ChannelState::Open;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::element::{CheckpointKind, Ending};

    const EXACTLY: CheckpointingMode = CheckpointingMode::ExactlyOnce;
    const AT_LEAST: CheckpointingMode = CheckpointingMode::AtLeastOnce;

    fn b(id: u64) -> Barrier {
        Barrier {
            id: CheckpointId(id),
            timestamp_ms: id,
            kind: CheckpointKind::PERIODIC,
            ending: Ending::Continue,
        }
    }

    fn id(n: u64) -> CheckpointId {
        CheckpointId(n)
    }

    fn completed(n: u64) -> AlignerOutput {
        AlignerOutput {
            abandoned: vec![],
            complete: Some(b(n)),
        }
    }

    fn blocked(a: &BarrierAligner) -> Vec<usize> {
        a.blocked_channels().collect()
    }

    #[test]
    fn single_channel_starts_and_completes_at_once() {
        let mut a = BarrierAligner::new(EXACTLY, 1);
        assert_eq!(a.on_barrier(0, b(1)), completed(1));
        assert!(!a.is_blocked(0));
        assert_eq!(a.pending(), None);
        assert_eq!(a.on_barrier(0, b(2)), completed(2));
    }

    #[test]
    fn two_channels_block_the_first_until_the_second_delivers() {
        let mut a = BarrierAligner::new(EXACTLY, 2);
        assert!(a.on_barrier(1, b(1)).is_empty());
        assert!(a.is_blocked(1));
        assert!(!a.is_blocked(0));
        assert_eq!(a.pending(), Some(id(1)));
        assert_eq!(a.on_barrier(0, b(1)), completed(1));
        assert_eq!(blocked(&a), Vec::<usize>::new());
        assert_eq!(a.pending(), None);
    }

    #[test]
    fn three_channels_complete_on_the_last_barrier_only() {
        let mut a = BarrierAligner::new(EXACTLY, 3);
        assert!(a.on_barrier(2, b(7)).is_empty());
        assert!(a.on_barrier(0, b(7)).is_empty());
        assert_eq!(blocked(&a), vec![0, 2]);
        assert_eq!(a.on_barrier(1, b(7)), completed(7));
        assert_eq!(blocked(&a), Vec::<usize>::new());
        // The next checkpoint aligns from scratch.
        assert!(a.on_barrier(1, b(8)).is_empty());
        assert_eq!(blocked(&a), vec![1]);
    }

    #[test]
    fn newer_barrier_subsumes_the_alignment_and_starts_its_own() {
        let mut a = BarrierAligner::new(EXACTLY, 3);
        a.on_barrier(0, b(1));
        a.on_barrier(1, b(1));
        let out = a.on_barrier(2, b(2));
        assert_eq!(out.abandoned, vec![(id(1), AbandonReason::Subsumed)]);
        assert_eq!(out.complete, None);
        assert_eq!(blocked(&a), vec![2]);
        assert_eq!(a.pending(), Some(id(2)));
        // Late barriers of the subsumed checkpoint are stale.
        assert!(a.on_barrier(0, b(1)).is_empty());
        assert!(!a.is_blocked(0));
        a.on_barrier(0, b(2));
        assert_eq!(a.on_barrier(1, b(2)), completed(2));
    }

    #[test]
    fn newer_barrier_on_the_only_live_channel_subsumes_and_completes() {
        let mut a = BarrierAligner::new(EXACTLY, 2);
        a.on_barrier(0, b(3));
        let out = a.on_barrier(1, b(4));
        assert_eq!(out.abandoned, vec![(id(3), AbandonReason::Subsumed)]);
        assert_eq!(blocked(&a), vec![1]);
        // Channel 0 ends: 4 completes, since channel 1 (the only live one) delivered it.
        assert_eq!(a.on_end_of_input(0), completed(4));
        // Now channel 1 is the only live channel: a newer barrier completes at once.
        assert_eq!(a.on_barrier(1, b(5)), completed(5));
    }

    #[test]
    fn barrier_older_than_the_alignment_is_ignored_without_blocking() {
        let mut a = BarrierAligner::new(EXACTLY, 2);
        a.on_barrier(0, b(5));
        assert!(a.on_barrier(1, b(4)).is_empty());
        assert!(!a.is_blocked(1));
        assert_eq!(a.pending(), Some(id(5)));
    }

    #[test]
    fn abort_of_the_aligned_checkpoint_releases_all_and_makes_its_barriers_stale() {
        let mut a = BarrierAligner::new(EXACTLY, 3);
        a.on_barrier(0, b(1));
        a.on_barrier(1, b(1));
        let out = a.on_abort(id(1));
        assert_eq!(out.abandoned, vec![(id(1), AbandonReason::Aborted)]);
        assert_eq!(out.complete, None);
        assert_eq!(blocked(&a), Vec::<usize>::new());
        assert_eq!(a.pending(), None);
        // The other channel still delivers the old barrier: stale, no blocking.
        assert!(a.on_barrier(2, b(1)).is_empty());
        assert!(!a.is_blocked(2));
        // Aborting it again, or an older id, changes nothing.
        assert!(a.on_abort(id(1)).is_empty());
        assert!(a.on_abort(id(0)).is_empty());
        // The next checkpoint aligns normally.
        a.on_barrier(2, b(2));
        a.on_barrier(1, b(2));
        assert_eq!(a.on_barrier(0, b(2)), completed(2));
    }

    #[test]
    fn abort_of_an_unseen_id_ignores_its_later_barriers() {
        let mut a = BarrierAligner::new(EXACTLY, 2);
        assert!(a.on_abort(id(3)).is_empty());
        assert!(a.on_barrier(0, b(3)).is_empty());
        assert!(!a.is_blocked(0));
        assert_eq!(a.pending(), None);
        assert!(a.on_barrier(1, b(3)).is_empty());
        assert_eq!(a.pending(), None);
        a.on_barrier(0, b(4));
        assert_eq!(a.on_barrier(1, b(4)), completed(4));
    }

    #[test]
    fn abort_of_a_newer_id_keeps_the_alignment() {
        let mut a = BarrierAligner::new(EXACTLY, 2);
        a.on_barrier(0, b(1));
        assert!(a.on_abort(id(2)).is_empty());
        assert_eq!(a.pending(), Some(id(1)));
        assert!(a.is_blocked(0));
        assert_eq!(a.on_barrier(1, b(1)), completed(1));
    }

    #[test]
    fn barrier_of_an_aborted_id_subsumes_an_older_alignment_without_starting_one() {
        let mut a = BarrierAligner::new(EXACTLY, 2);
        a.on_barrier(0, b(1));
        a.on_abort(id(2));
        let out = a.on_barrier(1, b(2));
        assert_eq!(out.abandoned, vec![(id(1), AbandonReason::Subsumed)]);
        assert_eq!(out.complete, None);
        assert_eq!(a.pending(), None);
        assert_eq!(blocked(&a), Vec::<usize>::new());
        // Channel 0 still delivers 2: stale.
        assert!(a.on_barrier(0, b(2)).is_empty());
        assert!(!a.is_blocked(0));
    }

    #[test]
    fn end_of_input_during_alignment_completes_it() {
        let mut a = BarrierAligner::new(EXACTLY, 3);
        a.on_barrier(0, b(1));
        a.on_barrier(1, b(1));
        assert_eq!(a.on_end_of_input(2), completed(1));
        assert_eq!(blocked(&a), Vec::<usize>::new());
        assert!(a.is_ended(2));
        assert!(!a.all_ended());
    }

    #[test]
    fn end_of_input_during_alignment_waits_for_the_other_live_channels() {
        let mut a = BarrierAligner::new(EXACTLY, 3);
        a.on_barrier(0, b(1));
        assert!(a.on_end_of_input(2).is_empty());
        assert_eq!(blocked(&a), vec![0]);
        assert_eq!(a.on_barrier(1, b(1)), completed(1));
    }

    #[test]
    fn ended_channels_do_not_count_for_later_alignments() {
        let mut a = BarrierAligner::new(EXACTLY, 3);
        a.on_end_of_input(1);
        a.on_barrier(0, b(1));
        assert_eq!(a.on_barrier(2, b(1)), completed(1));
        // A barrier after end of input (a misbehaving sender) is ignored.
        assert!(a.on_barrier(1, b(2)).is_empty());
        assert_eq!(a.pending(), None);
    }

    #[test]
    fn all_channels_ended() {
        let mut a = BarrierAligner::new(EXACTLY, 2);
        assert!(!a.all_ended());
        a.on_end_of_input(0);
        assert!(!a.all_ended());
        assert!(a.on_end_of_input(0).is_empty());
        assert!(!a.all_ended());
        a.on_end_of_input(1);
        assert!(a.all_ended());
        assert_eq!(blocked(&a), Vec::<usize>::new());
        assert!(BarrierAligner::new(EXACTLY, 0).all_ended());
        assert!(BarrierAligner::new(AT_LEAST, 0).all_ended());
    }

    #[test]
    fn barrier_on_a_blocked_channel_is_ignored_unless_newer() {
        let mut a = BarrierAligner::new(EXACTLY, 2);
        a.on_barrier(0, b(2));
        assert!(a.on_barrier(0, b(2)).is_empty());
        assert!(a.on_barrier(0, b(1)).is_empty());
        assert_eq!(a.pending(), Some(id(2)));
        assert_eq!(blocked(&a), vec![0]);
        let out = a.on_barrier(0, b(3));
        assert_eq!(out.abandoned, vec![(id(2), AbandonReason::Subsumed)]);
        assert_eq!(blocked(&a), vec![0]);
        assert_eq!(a.pending(), Some(id(3)));
    }

    #[test]
    fn end_of_input_on_a_blocked_channel_completes_when_nothing_else_is_open() {
        // Only a misbehaving owner delivers end of input on a blocked channel.
        let mut a = BarrierAligner::new(EXACTLY, 2);
        a.on_barrier(0, b(1));
        assert!(a.on_end_of_input(0).is_empty());
        assert_eq!(a.pending(), Some(id(1)));
        assert_eq!(a.on_end_of_input(1), completed(1));
        assert!(a.all_ended());
    }

    #[test]
    fn unknown_channels_and_extreme_ids_never_panic() {
        for mode in [EXACTLY, AT_LEAST] {
            let mut a = BarrierAligner::new(mode, 2);
            assert!(a.on_barrier(2, b(1)).is_empty());
            assert!(a.on_barrier(usize::MAX, b(1)).is_empty());
            assert!(a.on_end_of_input(9).is_empty());
            assert!(!a.is_blocked(9));
            assert!(!a.is_ended(9));
            assert!(a.on_abort(id(u64::MAX)).is_empty());
            a.on_barrier(0, b(u64::MAX - 1));
            assert_eq!(a.on_barrier(1, b(u64::MAX - 1)), completed(u64::MAX - 1));
            assert!(a.on_barrier(0, b(u64::MAX)).is_empty());
            assert_eq!(a.pending(), None);
            let mut none = BarrierAligner::new(mode, 0);
            assert!(none.on_barrier(0, b(1)).is_empty());
            assert_eq!(none.pending(), None);
        }
    }

    #[test]
    fn at_least_once_never_blocks_and_completes_after_the_last_channel() {
        let mut a = BarrierAligner::new(AT_LEAST, 3);
        assert_eq!(a.mode(), AT_LEAST);
        assert!(a.on_barrier(0, b(1)).is_empty());
        assert!(a.on_barrier(2, b(1)).is_empty());
        assert_eq!(blocked(&a), Vec::<usize>::new());
        assert!(!a.is_blocked(0));
        assert_eq!(a.pending(), Some(id(1)));
        assert_eq!(a.on_barrier(1, b(1)), completed(1));
        assert_eq!(a.pending(), None);
        // A duplicate from the same channel does not count twice.
        a.on_barrier(0, b(2));
        assert!(a.on_barrier(0, b(2)).is_empty());
        assert!(a.on_barrier(1, b(2)).is_empty());
        assert_eq!(a.on_barrier(2, b(2)), completed(2));
    }

    #[test]
    fn at_least_once_single_channel_completes_at_once() {
        let mut a = BarrierAligner::new(AT_LEAST, 1);
        assert_eq!(a.on_barrier(0, b(1)), completed(1));
        assert!(a.on_barrier(0, b(1)).is_empty());
    }

    #[test]
    fn at_least_once_tracks_several_ids_and_subsumes_older_on_completion() {
        let mut a = BarrierAligner::new(AT_LEAST, 2);
        a.on_barrier(0, b(1));
        a.on_barrier(0, b(2));
        a.on_barrier(0, b(3));
        assert_eq!(a.pending(), Some(id(1)));
        let out = a.on_barrier(1, b(2));
        assert_eq!(out.abandoned, vec![(id(1), AbandonReason::Subsumed)]);
        assert_eq!(out.complete, Some(b(2)));
        assert_eq!(a.pending(), Some(id(3)));
        // 1 is stale now.
        assert!(a.on_barrier(1, b(1)).is_empty());
        assert_eq!(a.on_barrier(1, b(3)), completed(3));
    }

    #[test]
    fn at_least_once_end_of_input_counts_as_delivered() {
        let mut a = BarrierAligner::new(AT_LEAST, 3);
        a.on_barrier(0, b(1));
        a.on_barrier(1, b(1));
        a.on_barrier(0, b(2));
        let out = a.on_end_of_input(2);
        // Only 1 is ready (channel 1 has not delivered 2): it completes and 2 stays tracked.
        assert_eq!(out.abandoned, vec![]);
        assert_eq!(out.complete, Some(b(1)));
        assert_eq!(a.pending(), Some(id(2)));
        assert_eq!(a.on_barrier(1, b(2)), completed(2));

        let mut a = BarrierAligner::new(AT_LEAST, 2);
        a.on_barrier(0, b(1));
        a.on_barrier(0, b(2));
        let out = a.on_end_of_input(1);
        assert_eq!(out.abandoned, vec![(id(1), AbandonReason::Subsumed)]);
        assert_eq!(out.complete, Some(b(2)));
        // With channel 1 ended, channel 0 alone completes the next one.
        assert_eq!(a.on_barrier(0, b(3)), completed(3));
    }

    #[test]
    fn at_least_once_abort_drops_the_tracked_id_and_ignores_its_barriers() {
        let mut a = BarrierAligner::new(AT_LEAST, 2);
        a.on_barrier(0, b(1));
        a.on_barrier(0, b(2));
        let out = a.on_abort(id(1));
        assert_eq!(out.abandoned, vec![(id(1), AbandonReason::Aborted)]);
        assert_eq!(a.pending(), Some(id(2)));
        assert!(a.on_barrier(1, b(1)).is_empty());
        // Unseen aborted id: its barriers are ignored when they come.
        assert!(a.on_abort(id(3)).is_empty());
        assert!(a.on_barrier(0, b(3)).is_empty());
        assert!(a.on_barrier(1, b(3)).is_empty());
        assert_eq!(a.pending(), Some(id(2)));
        assert_eq!(a.on_barrier(1, b(2)), completed(2));
    }

    #[test]
    fn at_least_once_tracks_a_bounded_number_of_ids() {
        let n = MAX_TRACKED_CHECKPOINTS as u64;
        let mut a = BarrierAligner::new(AT_LEAST, 2);
        for i in 1..=n {
            assert!(a.on_barrier(0, b(i)).is_empty());
        }
        let out = a.on_barrier(0, b(n + 1));
        assert_eq!(out.abandoned, vec![(id(1), AbandonReason::Subsumed)]);
        assert_eq!(a.pending(), Some(id(2)));
        assert!(a.on_barrier(1, b(1)).is_empty());
        assert_eq!(a.on_barrier(1, b(2)), completed(2));
    }

    #[test]
    fn at_least_once_ignores_an_untracked_id_older_than_the_newest() {
        let mut a = BarrierAligner::new(AT_LEAST, 2);
        a.on_barrier(0, b(5));
        assert!(a.on_barrier(1, b(4)).is_empty());
        assert_eq!(a.pending(), Some(id(5)));
        assert!(a.on_end_of_input(0).is_empty());
        assert_eq!(a.on_barrier(1, b(5)), completed(5));
    }

    #[test]
    fn skip_to_gives_up_the_alignment_subsumes_older_ones_and_makes_barriers_stale() {
        let mut a = BarrierAligner::new(EXACTLY, 2);
        a.on_barrier(0, b(1));
        let out = a.skip_to(id(2));
        assert_eq!(out.abandoned, vec![(id(1), AbandonReason::Subsumed)]);
        assert_eq!(blocked(&a), Vec::<usize>::new());
        assert!(a.on_barrier(1, b(1)).is_empty());
        assert!(a.on_barrier(1, b(2)).is_empty());
        assert_eq!(a.pending(), None);
        a.on_barrier(0, b(3));
        let out = a.skip_to(id(3));
        assert_eq!(out.abandoned, vec![(id(3), AbandonReason::Aborted)]);
        assert!(a.skip_to(id(3)).is_empty());
        a.on_barrier(0, b(4));
        assert_eq!(a.on_barrier(1, b(4)), completed(4));
    }

    #[test]
    fn remembered_aborts_are_bounded() {
        let mut a = BarrierAligner::new(EXACTLY, 1);
        for i in 1..=(MAX_REMEMBERED_ABORTS as u64 + 10) {
            a.on_abort(id(i));
        }
        assert_eq!(a.history.aborted.len(), MAX_REMEMBERED_ABORTS);
        // The lowest were forgotten: barrier 1 is aligned (a useless but harmless snapshot).
        assert_eq!(a.on_barrier(0, b(1)), completed(1));
        // Finishing 1 keeps the higher aborts.
        assert!(a
            .on_barrier(0, b(MAX_REMEMBERED_ABORTS as u64 + 10))
            .is_empty());
        assert!(a.history.aborted.is_empty());
    }

    mod arbitrary_calls {
        //! Any sequence of calls, including ones no well-behaved owner makes. (The channel
        //! simulation, which drives the aligners through the real owner, is in
        //! `crate::gate::simulation`.)

        use std::collections::BTreeSet;

        use proptest::prelude::*;

        use super::*;

        #[derive(Clone, Debug)]
        enum Op {
            Barrier(usize, u64),
            End(usize),
            Abort(u64),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (0usize..6, 0u64..8).prop_map(|(c, n)| Op::Barrier(c, n)),
                1 => (0usize..6).prop_map(Op::End),
                1 => (0u64..8).prop_map(Op::Abort),
            ]
        }

        proptest! {
            /// Any call sequence, including ones no well-behaved owner makes: no panic, and the
            /// outputs stay consistent.
            #[test]
            fn arbitrary_calls_never_panic_and_stay_consistent(
                exactly in any::<bool>(),
                channels in 0usize..5,
                ops in proptest::collection::vec(op(), 0..60),
            ) {
                let mode = if exactly { CheckpointingMode::ExactlyOnce } else { CheckpointingMode::AtLeastOnce };
                let mut a = BarrierAligner::new(mode, channels);
                let mut reported = BTreeSet::new();
                let mut last_complete: Option<CheckpointId> = None;
                let mut aborted = BTreeSet::new();
                for op in ops {
                    let out = match op {
                        Op::Barrier(c, n) => a.on_barrier(c, b(n)),
                        Op::End(c) => a.on_end_of_input(c),
                        Op::Abort(n) => {
                            aborted.insert(n);
                            a.on_abort(CheckpointId(n))
                        }
                    };
                    let mut ids: Vec<CheckpointId> = out.abandoned.iter().map(|(i, _)| *i).collect();
                    ids.extend(out.complete.map(|c| c.id));
                    for i in ids {
                        prop_assert!(reported.insert(i), "{} reported twice", i);
                    }
                    if let Some(c) = out.complete {
                        prop_assert!(!aborted.contains(&c.id.0), "{} completed after its abort", c.id);
                        prop_assert!(last_complete.is_none_or(|l| c.id > l), "completions out of order");
                        last_complete = Some(c.id);
                    }
                    if let Some(p) = a.pending() {
                        prop_assert!(!reported.contains(&p), "{} pending after it was reported", p);
                        prop_assert!(last_complete.is_none_or(|l| p > l));
                    }
                    let blocked: Vec<usize> = a.blocked_channels().collect();
                    if mode == CheckpointingMode::AtLeastOnce || a.pending().is_none() {
                        prop_assert!(blocked.is_empty());
                    } else {
                        // An alignment in progress would have completed without an open channel.
                        prop_assert!((0..channels).any(|c| !a.is_blocked(c) && !a.is_ended(c)));
                    }
                    for c in blocked {
                        prop_assert!(c < channels && a.is_blocked(c) && !a.is_ended(c));
                    }
                }
            }
        }
    }
}
