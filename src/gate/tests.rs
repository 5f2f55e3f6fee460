//! Unit tests of the gate: one behaviour each, plain values as batches, a fake clock.

use std::time::{Duration, Instant};

use super::*;
use crate::element::{Barrier, CheckpointKind, Ending, SavepointFormat};
use crate::time::{Watermark, WatermarkEvent};

const ALIGNED: AlignmentMode = AlignmentMode::Aligned;
const AT_LEAST: AlignmentMode = AlignmentMode::AtLeastOnce;
pub(super) const AVAILABLE: OutputCredit = OutputCredit::Available;
pub(super) const EXHAUSTED: OutputCredit = OutputCredit::Exhausted;
const SAVEPOINT: CheckpointKind = CheckpointKind::Savepoint {
    format: SavepointFormat::Canonical,
};

fn barrier(id: u64, kind: CheckpointKind) -> Barrier {
    Barrier {
        id: CheckpointId(id),
        timestamp_ms: id,
        kind,
        ending: Ending::Continue,
    }
}

pub(super) fn cp(id: u64) -> ChannelElement<&'static str> {
    ChannelElement::Barrier(barrier(id, CheckpointKind::PERIODIC))
}

pub(super) fn sp(id: u64) -> ChannelElement<&'static str> {
    ChannelElement::Barrier(barrier(id, SAVEPOINT))
}

pub(super) fn batch(b: &'static str) -> ChannelElement<&'static str> {
    ChannelElement::Batch(b)
}

pub(super) const END: ChannelElement<&str> = ChannelElement::EndOfInput;

pub(super) fn wm(ms: i64) -> ChannelElement<&'static str> {
    ChannelElement::Watermark(WatermarkEvent::Advance(Watermark(ms)))
}

/// A gate, its fake clock, and what it has handed out.
pub(super) struct Harness {
    pub(super) gate: InputGate<&'static str>,
    pub(super) now: Instant,
    /// Batches copied as channel state when they were received.
    pub(super) recorded_on_arrival: Vec<Did>,
}

/// What a test checks of a handed-out action.
#[derive(Debug, PartialEq)]
pub(super) enum Did {
    Process(usize, &'static str),
    /// Copied as channel state of the checkpoint: overtaken by its barrier (handed out right
    /// after its unaligned snapshot) or arriving before its barrier (when received).
    Recorded(usize, &'static str, u64),
    Credit(usize, u32),
    Snapshot(u64, Duration),
    Unaligned(u64, Duration),
    ChannelStateDone(u64),
    Decline(u64),
    Watermark(i64),
    Idle,
    InputsEnded,
}

impl Harness {
    pub(super) fn new(mode: AlignmentMode, channels: usize, window: u32) -> Self {
        Self {
            gate: InputGate::new(mode, channels, window),
            now: Instant::now(),
            recorded_on_arrival: Vec::new(),
        }
    }

    pub(super) fn receive(&mut self, channel: usize, e: ChannelElement<&'static str>) -> &mut Self {
        if let (Some(id), ChannelElement::Batch(b)) = (self.gate.recording(channel), &e) {
            self.recorded_on_arrival
                .push(Did::Recorded(channel, b, id.0));
        }
        self.gate
            .receive(channel, e)
            .expect("a known, open channel");
        self
    }

    pub(super) fn advance(&mut self, ms: u64) -> &mut Self {
        self.now += Duration::from_millis(ms);
        self
    }

    /// Everything the gate hands out now.
    pub(super) fn run(&mut self, output: OutputCredit) -> Vec<Did> {
        let mut did = Vec::new();
        while let Some(action) = self.gate.next(self.now, output) {
            match action {
                GateAction::Process {
                    channel,
                    batch,
                    credit,
                } => {
                    did.push(Did::Process(channel, batch));
                    if let Some(c) = credit {
                        did.push(Did::Credit(c.channel, c.batches));
                    }
                }
                GateAction::Snapshot {
                    barrier,
                    alignment,
                    unaligned,
                } => {
                    if unaligned {
                        did.push(Did::Unaligned(barrier.id.0, alignment));
                        for (c, b) in self.gate.overtaken(barrier.id) {
                            did.push(Did::Recorded(c, b, barrier.id.0));
                        }
                    } else {
                        did.push(Did::Snapshot(barrier.id.0, alignment));
                    }
                }
                GateAction::ChannelStateDone { id } => did.push(Did::ChannelStateDone(id.0)),
                GateAction::Decline { id, reason } => {
                    assert_eq!(reason, DeclineReason::Subsumed);
                    did.push(Did::Decline(id.0));
                }
                GateAction::Watermark(WatermarkEvent::Advance(w)) => did.push(Did::Watermark(w.0)),
                GateAction::Watermark(WatermarkEvent::Idle) => did.push(Did::Idle),
                GateAction::InputsEnded => did.push(Did::InputsEnded),
            }
        }
        did
    }

    pub(super) fn drain(&mut self) -> Vec<Did> {
        self.run(AVAILABLE)
    }
}

fn snap(id: u64) -> Did {
    Did::Snapshot(id, Duration::ZERO)
}

#[test]
fn batches_are_processed_in_arrival_order_across_channels() {
    let mut h = Harness::new(ALIGNED, 2, 100);
    h.receive(0, batch("a"))
        .receive(1, batch("b"))
        .receive(0, batch("c"));
    assert_eq!(
        h.drain(),
        vec![
            Did::Process(0, "a"),
            Did::Process(1, "b"),
            Did::Process(0, "c")
        ]
    );
    assert!(h.drain().is_empty());
}

#[test]
fn aligned_barrier_holds_its_channel_until_the_others_deliver() {
    let mut h = Harness::new(ALIGNED, 2, 100);
    h.receive(0, cp(1))
        .receive(0, batch("after"))
        .receive(1, batch("before"));
    assert_eq!(h.drain(), vec![Did::Process(1, "before")]);
    assert!(h.gate.is_blocked(0));
    assert_eq!(h.gate.pending_checkpoint(), Some(CheckpointId(1)));
    assert_eq!(h.gate.held(0).collect::<Vec<_>>(), vec![&batch("after")]);
    h.advance(7).receive(1, cp(1));
    assert_eq!(
        h.drain(),
        vec![
            Did::Snapshot(1, Duration::from_millis(7)),
            Did::Process(0, "after")
        ]
    );
    assert!(!h.gate.is_blocked(0));
    assert_eq!(h.gate.held(0).count(), 0);
}

#[test]
fn savepoint_barrier_is_aligned_in_an_at_least_once_job() {
    let mut h = Harness::new(AT_LEAST, 2, 100);
    // A checkpoint barrier is only tracked: its channel keeps flowing.
    h.receive(0, cp(1)).receive(0, batch("x"));
    assert_eq!(h.drain(), vec![Did::Process(0, "x")]);
    assert!(!h.gate.is_blocked(0));
    h.receive(1, cp(1));
    assert_eq!(h.drain(), vec![snap(1)]);
    // A savepoint barrier is aligned: what follows it on channel 0 waits for channel 1's.
    h.receive(0, sp(2))
        .receive(0, batch("after"))
        .receive(1, batch("before"));
    assert_eq!(h.drain(), vec![Did::Process(1, "before")]);
    assert!(h.gate.is_blocked(0));
    assert_eq!(h.gate.pending_checkpoint(), Some(CheckpointId(2)));
    h.advance(3).receive(1, sp(2));
    assert_eq!(
        h.drain(),
        vec![
            Did::Snapshot(2, Duration::from_millis(3)),
            Did::Process(0, "after")
        ]
    );
    // Checkpoints are still tracked alongside, never blocking.
    h.receive(1, cp(3)).receive(1, batch("y"));
    assert_eq!(h.drain(), vec![Did::Process(1, "y")]);
    assert!(!h.gate.is_blocked(1));
}

#[test]
fn at_least_once_checkpoint_barriers_never_block() {
    let mut h = Harness::new(AT_LEAST, 3, 100);
    h.receive(0, cp(1))
        .receive(0, batch("a"))
        .receive(1, cp(1))
        .receive(1, batch("b"));
    assert_eq!(h.drain(), vec![Did::Process(0, "a"), Did::Process(1, "b")]);
    assert!((0..3).all(|c| !h.gate.is_blocked(c)));
    h.advance(2).receive(2, cp(1));
    assert_eq!(h.drain(), vec![Did::Snapshot(1, Duration::from_millis(2))]);
}

#[test]
fn abort_releases_blocked_channels_in_arrival_order() {
    let mut h = Harness::new(ALIGNED, 3, 100);
    h.receive(0, cp(1))
        .receive(1, cp(1))
        .receive(0, batch("x1"))
        .receive(1, batch("y1"))
        .receive(0, batch("x2"))
        .receive(2, batch("z1"))
        .receive(1, END);
    assert_eq!(h.drain(), vec![Did::Process(2, "z1")]);
    assert!(h.gate.is_blocked(0) && h.gate.is_blocked(1));
    h.gate.abort(CheckpointId(1), h.now);
    assert_eq!(
        h.drain(),
        vec![
            Did::Process(0, "x1"),
            Did::Process(1, "y1"),
            Did::Process(0, "x2")
        ]
    );
    // Aborted: no snapshot and no decline (the coordinator knows), the end of input of channel
    // 1 was released too, and a late barrier of 1 is stale.
    h.receive(2, cp(1)).receive(2, batch("z2"));
    assert_eq!(h.drain(), vec![Did::Process(2, "z2")]);
    assert_eq!(h.gate.pending_checkpoint(), None);
}

#[test]
fn a_newer_barrier_declines_the_subsumed_alignment_and_releases_in_order() {
    let mut h = Harness::new(ALIGNED, 2, 100);
    h.receive(0, cp(1)).receive(0, batch("a")).receive(1, cp(2));
    assert_eq!(h.drain(), vec![Did::Decline(1), Did::Process(0, "a")]);
    assert!(h.gate.is_blocked(1));
    h.receive(0, cp(2));
    assert_eq!(h.drain(), vec![snap(2)]);
}

#[test]
fn end_of_input_during_alignment_completes_it_and_ends_once_all_ended() {
    let mut h = Harness::new(ALIGNED, 3, 100);
    h.receive(0, cp(1))
        .receive(0, batch("held"))
        .receive(0, END)
        .receive(1, cp(1));
    assert_eq!(h.drain(), vec![]);
    // Channel 2 ends without its barrier: the alignment completes at its end of input.
    h.advance(4).receive(2, END);
    assert_eq!(
        h.drain(),
        vec![
            Did::Snapshot(1, Duration::from_millis(4)),
            Did::Process(0, "held")
        ]
    );
    assert_eq!(h.gate.state(), GateState::Receiving);
    h.receive(1, END);
    assert_eq!(h.drain(), vec![Did::InputsEnded]);
    assert_eq!(h.gate.state(), GateState::Ended);
    assert!(h.drain().is_empty());
}

#[test]
fn end_of_input_of_the_last_channel_snapshots_before_ending() {
    let mut h = Harness::new(AT_LEAST, 2, 100);
    h.receive(0, cp(1)).receive(0, END).receive(1, END);
    assert_eq!(h.drain(), vec![snap(1), Did::InputsEnded]);
}

#[test]
fn credits_are_returned_in_groups_of_half_the_window() {
    let mut h = Harness::new(ALIGNED, 2, 8);
    for _ in 0..3 {
        h.receive(0, batch("a"));
    }
    h.receive(1, batch("b"));
    h.receive(0, batch("a"));
    assert_eq!(
        h.drain(),
        vec![
            Did::Process(0, "a"),
            Did::Process(0, "a"),
            Did::Process(0, "a"),
            Did::Process(1, "b"),
            Did::Process(0, "a"),
            Did::Credit(0, 4),
        ]
    );
    assert_eq!(h.gate.owed_credit(0), 0);
    assert_eq!(h.gate.owed_credit(1), 1);
    // Odd and tiny windows: half rounded down, at least one.
    assert_eq!(credit_group(5), 2);
    assert_eq!(credit_group(1), 1);
    assert_eq!(credit_group(0), 1);
    let mut h = Harness::new(ALIGNED, 1, 1);
    h.receive(0, batch("a")).receive(0, batch("b"));
    assert_eq!(
        h.drain(),
        vec![
            Did::Process(0, "a"),
            Did::Credit(0, 1),
            Did::Process(0, "b"),
            Did::Credit(0, 1)
        ]
    );
}

#[test]
fn held_batches_count_for_credit_only_once_processed() {
    let mut h = Harness::new(ALIGNED, 2, 4);
    h.receive(0, cp(1));
    for _ in 0..4 {
        h.receive(0, batch("held"));
    }
    assert_eq!(h.drain(), vec![]);
    assert_eq!(
        h.gate.owed_credit(0),
        0,
        "the sender of a blocked channel stalls"
    );
    h.receive(1, cp(1));
    assert_eq!(
        h.drain(),
        vec![
            snap(1),
            Did::Process(0, "held"),
            Did::Process(0, "held"),
            Did::Credit(0, 2),
            Did::Process(0, "held"),
            Did::Process(0, "held"),
            Did::Credit(0, 2),
        ]
    );
}

#[test]
fn without_output_credit_batches_wait_and_so_does_everything_behind_them() {
    let mut h = Harness::new(ALIGNED, 2, 100);
    h.receive(0, cp(1)).receive(1, batch("b")).receive(1, cp(1));
    assert_eq!(h.run(EXHAUSTED), vec![]);
    assert_eq!(h.gate.pending_checkpoint(), Some(CheckpointId(1)));
    assert_eq!(h.drain(), vec![Did::Process(1, "b"), snap(1)]);
    // Barriers and end of input need no output credit.
    h.receive(0, cp(2))
        .receive(1, cp(2))
        .receive(0, END)
        .receive(1, END);
    assert_eq!(h.run(EXHAUSTED), vec![snap(2), Did::InputsEnded]);
}

#[test]
fn a_blocked_batch_at_the_front_waits_for_output_credit_too() {
    // As before the gate: back-pressure is checked before blocking, so nothing is reordered.
    let mut h = Harness::new(ALIGNED, 2, 100);
    h.receive(0, cp(1))
        .receive(0, batch("held"))
        .receive(1, cp(1));
    assert_eq!(h.run(EXHAUSTED), vec![]);
    assert_eq!(h.drain(), vec![snap(1), Did::Process(0, "held")]);
}

#[test]
fn unknown_channels_and_elements_after_end_of_input_are_refused() {
    let mut gate: InputGate<&str> = InputGate::new(ALIGNED, 2, 8);
    assert_eq!(
        gate.receive(2, batch("x")),
        Err(GateError::UnknownChannel {
            channel: 2,
            channels: 2
        })
    );
    gate.receive(1, END).unwrap();
    assert_eq!(
        gate.receive(1, batch("x")),
        Err(GateError::AfterEndOfInput { channel: 1 })
    );
    assert_eq!(
        gate.receive(1, END),
        Err(GateError::AfterEndOfInput { channel: 1 })
    );
    // Refused elements were not queued.
    assert_eq!(gate.held(1).collect::<Vec<_>>(), vec![&END]);
}

#[test]
fn a_gate_without_channels_has_nothing_to_do() {
    let mut h = Harness::new(ALIGNED, 0, 8);
    assert!(h.drain().is_empty());
    assert_eq!(h.gate.state(), GateState::Receiving);
    h.gate.abort(CheckpointId(1), h.now);
    assert!(h.drain().is_empty());
}

#[test]
fn a_watermark_is_handed_out_in_its_place_when_the_minimum_advances() {
    let mut h = Harness::new(ALIGNED, 2, 100);
    h.receive(0, batch("a"))
        .receive(0, wm(10))
        .receive(1, wm(5))
        .receive(1, batch("b"))
        .receive(1, wm(20));
    assert_eq!(
        h.drain(),
        vec![
            Did::Process(0, "a"),
            Did::Watermark(5),
            Did::Process(1, "b"),
            Did::Watermark(10),
        ]
    );
    assert_eq!(h.gate.watermark(), Some(Watermark(10)));
}

#[test]
fn a_watermark_needs_no_output_credit_but_never_overtakes_a_waiting_batch() {
    let mut h = Harness::new(ALIGNED, 1, 100);
    h.receive(0, wm(1)).receive(0, batch("a")).receive(0, wm(2));
    assert_eq!(h.run(EXHAUSTED), vec![Did::Watermark(1)]);
    assert_eq!(h.drain(), vec![Did::Process(0, "a"), Did::Watermark(2)]);
}

#[test]
fn a_blocked_channels_watermark_is_held_with_its_batches_until_alignment_completes() {
    let mut h = Harness::new(ALIGNED, 2, 100);
    h.receive(0, wm(1)).receive(1, wm(1));
    assert_eq!(h.drain(), vec![Did::Watermark(1)]);
    h.receive(0, cp(1))
        .receive(0, batch("a"))
        .receive(0, wm(50))
        .receive(1, batch("b"))
        .receive(1, wm(40));
    assert_eq!(
        h.drain(),
        vec![Did::Process(1, "b")],
        "channel 0 is blocked: its watermark 50 waits, so 40 is not the minimum yet"
    );
    h.receive(1, cp(1));
    assert_eq!(
        h.drain(),
        vec![snap(1), Did::Process(0, "a"), Did::Watermark(40),]
    );
}

#[test]
fn an_ended_channel_no_longer_holds_the_watermark_back() {
    let mut h = Harness::new(ALIGNED, 2, 100);
    h.receive(0, wm(7)).receive(1, wm(3));
    assert_eq!(h.drain(), vec![Did::Watermark(3)]);
    h.receive(1, END);
    assert_eq!(h.drain(), vec![Did::Watermark(7)]);
    h.receive(0, END);
    assert_eq!(h.drain(), vec![Did::InputsEnded]);
}

#[test]
fn every_open_channel_idle_hands_out_idle_once() {
    let mut h = Harness::new(ALIGNED, 2, 100);
    let idle = ChannelElement::Watermark(WatermarkEvent::Idle);
    h.receive(0, idle.clone()).receive(1, wm(9));
    assert_eq!(h.drain(), vec![Did::Watermark(9)]);
    h.receive(1, idle);
    assert_eq!(h.drain(), vec![Did::Idle]);
}
