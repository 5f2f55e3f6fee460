//! Unit tests of unaligned checkpoints at the gate (`gate/unaligned.rs`): one behaviour each.

use std::time::Duration;

use super::tests::{batch, cp, sp, Did, Harness, END, EXHAUSTED};
use super::*;

const UNALIGNED: AlignmentMode = AlignmentMode::Unaligned {
    aligned_timeout: Duration::ZERO,
};

fn with_timeout(ms: u64) -> AlignmentMode {
    AlignmentMode::Unaligned {
        aligned_timeout: Duration::from_millis(ms),
    }
}

fn unaligned(id: u64) -> Did {
    Did::Unaligned(id, Duration::ZERO)
}

#[test]
fn the_first_barrier_overtakes_everything_queued_and_copies_it() {
    let mut h = Harness::new(UNALIGNED, 2, 100);
    h.receive(0, batch("a1"))
        .receive(1, batch("b1"))
        .receive(0, batch("a2"))
        .receive(0, cp(1))
        .receive(0, batch("a3"))
        .receive(1, batch("b2"));
    // Back-pressure: nothing was processed before the barrier arrived. The snapshot comes
    // first, with the batches it overtook.
    assert_eq!(
        h.run(EXHAUSTED),
        vec![
            unaligned(1),
            Did::Recorded(0, "a1", 1),
            Did::Recorded(1, "b1", 1),
            Did::Recorded(0, "a2", 1),
        ]
    );
    // a3 follows channel 0's barrier; b2 precedes channel 1's, which has not arrived: copied
    // when it arrived.
    assert_eq!(h.recorded_on_arrival, vec![Did::Recorded(1, "b2", 1)]);
    // Every batch is processed as usual; nothing is blocked.
    assert_eq!(
        h.drain(),
        vec![
            Did::Process(0, "a1"),
            Did::Process(1, "b1"),
            Did::Process(0, "a2"),
            Did::Process(0, "a3"),
            Did::Process(1, "b2"),
        ]
    );
    assert!(!h.gate.is_blocked(0));
    assert_eq!(h.gate.pending_checkpoint(), Some(CheckpointId(1)));
    h.receive(1, batch("b3"))
        .receive(1, cp(1))
        .receive(1, batch("b4"));
    assert_eq!(
        h.recorded_on_arrival,
        vec![Did::Recorded(1, "b2", 1), Did::Recorded(1, "b3", 1)]
    );
    // Complete once the last barrier arrived, whether or not its batches were processed.
    assert_eq!(h.run(EXHAUSTED), vec![Did::ChannelStateDone(1)]);
    assert_eq!(h.gate.pending_checkpoint(), None);
    assert_eq!(
        h.drain(),
        vec![Did::Process(1, "b3"), Did::Process(1, "b4")]
    );
}

#[test]
fn nothing_queued_and_one_channel_completes_at_once() {
    let mut h = Harness::new(UNALIGNED, 1, 8);
    h.receive(0, batch("a")).receive(0, cp(1));
    assert_eq!(
        h.drain(),
        vec![
            unaligned(1),
            Did::Recorded(0, "a", 1),
            Did::ChannelStateDone(1),
            Did::Process(0, "a")
        ]
    );
    h.receive(0, cp(2));
    assert_eq!(h.drain(), vec![unaligned(2), Did::ChannelStateDone(2)]);
    // Its barrier again: stale.
    h.receive(0, cp(2)).receive(0, batch("b"));
    assert_eq!(h.drain(), vec![Did::Process(0, "b")]);
    assert!(h.recorded_on_arrival.is_empty());
}

#[test]
fn end_of_input_ends_the_recording_of_its_channel() {
    let mut h = Harness::new(UNALIGNED, 2, 100);
    h.receive(0, cp(1)).receive(1, batch("b1")).receive(1, END);
    assert_eq!(h.recorded_on_arrival, vec![Did::Recorded(1, "b1", 1)]);
    assert_eq!(
        h.drain(),
        vec![
            unaligned(1),
            Did::ChannelStateDone(1),
            Did::Process(1, "b1"),
        ]
    );
    // A channel that had ended before the capture started counts as passed.
    h.receive(0, batch("a1")).receive(0, cp(2));
    assert_eq!(
        h.drain(),
        vec![
            unaligned(2),
            Did::Recorded(0, "a1", 2),
            Did::ChannelStateDone(2),
            Did::Process(0, "a1"),
        ]
    );
    h.receive(0, END);
    assert_eq!(h.drain(), vec![Did::InputsEnded]);
}

#[test]
fn a_newer_barrier_subsumes_the_capture_and_copies_again() {
    let mut h = Harness::new(UNALIGNED, 2, 100);
    h.receive(0, batch("a1"))
        .receive(0, cp(1))
        .receive(1, batch("b1"))
        .receive(0, cp(2));
    assert_eq!(h.recorded_on_arrival, vec![Did::Recorded(1, "b1", 1)]);
    assert_eq!(
        h.run(EXHAUSTED),
        vec![
            unaligned(1),
            Did::Decline(1),
            unaligned(2),
            Did::Recorded(0, "a1", 2),
            Did::Recorded(1, "b1", 2),
        ]
    );
    // Channel 1's barrier 1 is now stale; its barrier 2 completes the capture.
    h.receive(1, cp(1)).receive(1, cp(2));
    assert_eq!(
        h.drain(),
        vec![
            Did::ChannelStateDone(2),
            Did::Process(0, "a1"),
            Did::Process(1, "b1")
        ]
    );
}

#[test]
fn an_abort_drops_the_capture_and_its_later_barriers() {
    let mut h = Harness::new(UNALIGNED, 2, 100);
    h.receive(0, cp(1)).receive(1, batch("b1"));
    assert_eq!(h.run(EXHAUSTED), vec![unaligned(1)]);
    h.gate.abort(CheckpointId(1), h.now);
    assert_eq!(h.gate.recording(1), None);
    h.receive(1, cp(1));
    assert_eq!(h.drain(), vec![Did::Process(1, "b1")]);
    assert_eq!(h.gate.pending_checkpoint(), None);
    // An id aborted before any of its barriers arrived never starts a capture.
    h.gate.abort(CheckpointId(2), h.now);
    h.receive(0, cp(2)).receive(0, batch("a"));
    assert_eq!(h.drain(), vec![Did::Process(0, "a")]);
}

#[test]
fn savepoints_stay_aligned() {
    let mut h = Harness::new(UNALIGNED, 2, 100);
    h.receive(0, sp(1))
        .receive(0, batch("a1"))
        .receive(1, batch("b1"));
    assert_eq!(h.drain(), vec![Did::Process(1, "b1")]);
    assert!(h.gate.is_blocked(0));
    h.receive(1, sp(1));
    assert_eq!(
        h.drain(),
        vec![Did::Snapshot(1, Duration::ZERO), Did::Process(0, "a1")]
    );
    assert!(h.recorded_on_arrival.is_empty());
}

#[test]
fn restored_batches_go_first_and_return_no_credit() {
    let mut h = Harness::new(UNALIGNED, 1, 2);
    h.gate.restore(["r1", "r2"]);
    h.receive(0, batch("a1"));
    assert_eq!(
        h.drain(),
        vec![
            Did::Process(RESTORED_CHANNEL, "r1"),
            Did::Process(RESTORED_CHANNEL, "r2"),
            Did::Process(0, "a1"),
            Did::Credit(0, 1),
        ]
    );
    // Restored batches still queued when a barrier overtakes them are channel state again.
    let mut h = Harness::new(UNALIGNED, 1, 2);
    h.gate.restore(["r1"]);
    h.receive(0, cp(1));
    assert_eq!(
        h.drain(),
        vec![
            unaligned(1),
            Did::Recorded(RESTORED_CHANNEL, "r1", 1),
            Did::ChannelStateDone(1),
            Did::Process(RESTORED_CHANNEL, "r1"),
        ]
    );
}

#[test]
fn an_alignment_that_times_out_switches_to_unaligned() {
    let mut h = Harness::new(with_timeout(10), 2, 100);
    h.receive(0, batch("a1"))
        .receive(0, cp(1))
        .receive(0, batch("a2"))
        .receive(1, batch("b1"));
    // Aligned first: a1 processed, channel 0 blocked at its barrier, b1 processed.
    assert_eq!(
        h.drain(),
        vec![Did::Process(0, "a1"), Did::Process(1, "b1")]
    );
    assert!(h.gate.is_blocked(0));
    assert_eq!(h.gate.recording(1), None, "aligned: nothing is copied");
    let deadline = h.gate.deadline().expect("an alignment under a timeout");
    h.receive(1, batch("b2"));
    h.advance(9);
    assert!(h.now < deadline);
    assert_eq!(h.run(EXHAUSTED), vec![]);
    h.advance(1);
    // The switch: snapshot now; b2 (before channel 1's barrier) is copied, a2 (held after
    // channel 0's barrier) is not.
    assert_eq!(
        h.drain(),
        vec![
            Did::Unaligned(1, Duration::from_millis(10)),
            Did::Recorded(1, "b2", 1),
            Did::Process(0, "a2"),
            Did::Process(1, "b2"),
        ]
    );
    assert!(!h.gate.is_blocked(0));
    assert_eq!(h.gate.deadline(), None);
    h.receive(1, batch("b3"))
        .receive(1, cp(1))
        .receive(1, batch("b4"));
    assert_eq!(h.recorded_on_arrival, vec![Did::Recorded(1, "b3", 1)]);
    assert_eq!(
        h.drain(),
        vec![
            Did::ChannelStateDone(1),
            Did::Process(1, "b3"),
            Did::Process(1, "b4")
        ]
    );
}

#[test]
fn an_alignment_within_its_timeout_stays_aligned() {
    let mut h = Harness::new(with_timeout(10), 2, 100);
    h.receive(0, cp(1)).receive(0, batch("a1"));
    assert_eq!(h.drain(), vec![]);
    h.advance(5);
    h.receive(1, cp(1));
    assert_eq!(
        h.drain(),
        vec![
            Did::Snapshot(1, Duration::from_millis(5)),
            Did::Process(0, "a1")
        ]
    );
    assert_eq!(h.gate.deadline(), None);
    h.advance(20);
    assert_eq!(h.drain(), vec![]);
    assert!(h.recorded_on_arrival.is_empty());
}
