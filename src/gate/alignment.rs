//! The gate's aligners and how long their alignments take.
//!
//! A gate has one [`BarrierAligner`] for checkpoint barriers, in the job's mode. An
//! at-least-once job has a second, exactly-once one for savepoint barriers: savepoints are
//! always aligned (Flink's rule), while its checkpoints are only tracked. A barrier goes to the
//! aligner of its kind; an end of input goes to both (the savepoints' first); an abort too.
//! A channel is blocked while either aligner blocks it.
//!
//! Each aligner remembers when its current alignment started (the time `now` when a barrier
//! reached it with nothing pending); the snapshot of that barrier's checkpoint reports the
//! time since then.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tracing::debug;

use crate::checkpoint::aligner::{AbandonReason, AlignerOutput, BarrierAligner};
use crate::checkpoint::CheckpointingMode;
use crate::element::Barrier;
use crate::ids::CheckpointId;

use super::action::{Decision, DeclineReason};
use super::mode::AlignmentMode;

/// One aligner and the start of its alignment in progress.
#[derive(Clone, Debug)]
struct Alignment {
    aligner: BarrierAligner,
    started: Option<(CheckpointId, Instant)>,
}

impl Alignment {
    fn new(mode: CheckpointingMode, channels: usize) -> Self {
        Self {
            aligner: BarrierAligner::new(mode, channels),
            started: None,
        }
    }

    fn on_barrier(
        &mut self,
        channel: usize,
        barrier: Barrier,
        now: Instant,
        out: &mut VecDeque<Decision>,
    ) {
        if self.aligner.pending().is_none() {
            self.started = Some((barrier.id, now));
        }
        let result = self.aligner.on_barrier(channel, barrier);
        self.apply(result, now, out);
    }

    /// Abandoned checkpoints first (subsumed ones are declined; aborted ones the coordinator
    /// knows about), then the snapshot: the order [`AlignerOutput`] asks for.
    fn apply(&mut self, result: AlignerOutput, now: Instant, out: &mut VecDeque<Decision>) {
        for (id, reason) in result.abandoned {
            match reason {
                AbandonReason::Subsumed => out.push_back(Decision::Decline {
                    id,
                    reason: DeclineReason::Subsumed,
                }),
                AbandonReason::Aborted => debug!(checkpoint_id = id.0, "alignment aborted"),
            }
        }
        if let Some(barrier) = result.complete {
            let alignment = match self.started.take() {
                Some((id, at)) if id == barrier.id => now.saturating_duration_since(at),
                _ => Duration::ZERO,
            };
            out.push_back(Decision::Snapshot {
                barrier,
                alignment,
                unaligned: false,
            });
        }
    }
}

/// The aligners of one gate. See the module docs.
#[derive(Clone, Debug)]
pub(super) struct Alignments {
    checkpoints: Alignment,
    /// At-least-once only: savepoint barriers, aligned.
    savepoints: Option<Alignment>,
}

impl Alignments {
    pub(super) fn new(mode: AlignmentMode, channels: usize) -> Self {
        Self {
            checkpoints: Alignment::new(mode.checkpoints(), channels),
            savepoints: mode
                .aligns_savepoints_apart()
                .then(|| Alignment::new(CheckpointingMode::ExactlyOnce, channels)),
        }
    }

    /// True while the elements of `channel` must be held.
    #[inline]
    pub(super) fn is_blocked(&self, channel: usize) -> bool {
        self.checkpoints.aligner.is_blocked(channel)
            || self
                .savepoints
                .as_ref()
                .is_some_and(|s| s.aligner.is_blocked(channel))
    }

    /// Every channel delivered end of input.
    pub(super) fn all_ended(&self) -> bool {
        self.checkpoints.aligner.all_ended()
    }

    /// The checkpoint (or savepoint) being aligned or tracked, the savepoint first.
    pub(super) fn pending(&self) -> Option<CheckpointId> {
        self.savepoints
            .as_ref()
            .and_then(|s| s.aligner.pending())
            .or_else(|| self.checkpoints.aligner.pending())
    }

    pub(super) fn on_barrier(
        &mut self,
        channel: usize,
        barrier: Barrier,
        now: Instant,
        out: &mut VecDeque<Decision>,
    ) {
        let alignment = match self.savepoints.as_mut() {
            Some(s) if barrier.kind.is_savepoint() => s,
            _ => &mut self.checkpoints,
        };
        alignment.on_barrier(channel, barrier, now, out);
    }

    pub(super) fn on_end_of_input(
        &mut self,
        channel: usize,
        now: Instant,
        out: &mut VecDeque<Decision>,
    ) {
        for alignment in self.all_mut() {
            let result = alignment.aligner.on_end_of_input(channel);
            alignment.apply(result, now, out);
        }
    }

    pub(super) fn on_abort(
        &mut self,
        id: CheckpointId,
        now: Instant,
        out: &mut VecDeque<Decision>,
    ) {
        for alignment in self.all_mut() {
            let result = alignment.aligner.on_abort(id);
            alignment.apply(result, now, out);
        }
    }

    /// Unaligned mode: checkpoint `id` switched to unaligned, so the checkpoints' aligner gives
    /// it up without declining it, declines an older alignment in progress (subsumed), and
    /// treats their barriers as stale.
    pub(super) fn forget(&mut self, id: CheckpointId, now: Instant, out: &mut VecDeque<Decision>) {
        let result = self.checkpoints.aligner.skip_to(id);
        self.checkpoints.apply(result, now, out);
    }

    /// The savepoints' aligner first, then the checkpoints'.
    fn all_mut(&mut self) -> impl Iterator<Item = &mut Alignment> {
        self.savepoints
            .as_mut()
            .into_iter()
            .chain(std::iter::once(&mut self.checkpoints))
    }
}
