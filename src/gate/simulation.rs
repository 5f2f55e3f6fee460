//! Channel simulation: random interleavings pushed through the real [`InputGate`].
//!
//! Upstream senders emit records (one per batch), barriers of checkpoints `1..=LAST` (some
//! skipped, as after an upstream abort; some of them savepoints) and end of input, each on its
//! own FIFO channel. A sender may only send a batch while it has credit from its window of W;
//! the credits the gate returns are given back to it. At every step one sender that can send
//! delivers its next element (the choice is random), the coordinator may abort a checkpoint,
//! and the subtask's outputs may be out of credit for that step. Whatever the gate hands out is
//! executed as the runtime does: a batch is processed (and its credit returned), a snapshot
//! records what was processed so far.
//!
//! Checked: every record processed exactly once, in its channel's order and in arrival order
//! across channels but for those held while their channel was blocked; in aligned mode
//! (and for savepoints in at-least-once mode) each snapshot saw exactly the records sent
//! before its barriers; in at-least-once mode a snapshot lost none of them and only savepoints
//! block; no snapshot after an abort of its id; the end of input handed out once, at the end;
//! watermarks (each sender's: how many records it sent) handed out rising, never ahead of a
//! record sent before them;
//! credits never exceed the window, and no sender is ever left without credit while the gate
//! has nothing to do (W/2 groups never stall a sender).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::element::{Barrier, CheckpointKind, Ending, SavepointFormat};
use crate::time::{Watermark, WatermarkEvent};

/// Checkpoints 1..=LAST are triggered; each sender may skip some.
const LAST: u64 = 5;

/// A record: (sender, sequence number within the sender). The batch type of the simulation.
type Rec = (usize, usize);

#[derive(Clone, Debug, PartialEq)]
enum Msg {
    Record(Rec),
    Barrier(u64),
    /// The sender's watermark: how many records it sent before it.
    Watermark(usize),
    End,
}

#[derive(Clone, Debug)]
struct Scenario {
    /// Per sender, everything it emits, in order, ending with `End`.
    streams: Vec<Vec<Msg>>,
    /// Which channel (among those that can send) delivers next.
    choices: Vec<usize>,
    /// (delivery step, checkpoint id) of coordinator aborts.
    aborts: Vec<(usize, u64)>,
    /// Per checkpoint id `1..=LAST`: a savepoint (aligned even in at-least-once mode).
    savepoints: Vec<bool>,
    /// The credit window W of every channel.
    window: u32,
    /// Per delivery step: whether the outputs have credit (missing steps: they have).
    outputs: Vec<bool>,
}

impl Scenario {
    fn is_savepoint(&self, id: u64) -> bool {
        self.savepoints
            .get(id as usize - 1)
            .copied()
            .unwrap_or(false)
    }

    fn barrier(&self, id: u64) -> Barrier {
        let kind = if self.is_savepoint(id) {
            CheckpointKind::Savepoint {
                format: SavepointFormat::Canonical,
            }
        } else {
            CheckpointKind::PERIODIC
        };
        Barrier {
            id: CheckpointId(id),
            timestamp_ms: id,
            kind,
            ending: Ending::Continue,
        }
    }

    fn element(&self, msg: &Msg) -> ChannelElement<Rec> {
        match msg {
            Msg::Record(r) => ChannelElement::Batch(*r),
            Msg::Barrier(n) => ChannelElement::Barrier(self.barrier(*n)),
            Msg::Watermark(w) => {
                ChannelElement::Watermark(WatermarkEvent::Advance(Watermark(*w as i64)))
            }
            Msg::End => ChannelElement::EndOfInput,
        }
    }
}

/// Per checkpoint: records before barrier k, then a watermark (the number of records so far),
/// and whether barrier k is skipped (an upstream abort); then trailing records and a watermark.
fn stream(sender: usize, segments: &[(usize, bool)], tail: usize) -> Vec<Msg> {
    let mut out = Vec::new();
    let mut seq = 0;
    // Appends `n` records and the watermark after them.
    let records = |n: usize, seq: &mut usize, out: &mut Vec<Msg>| {
        for _ in 0..n {
            out.push(Msg::Record((sender, *seq)));
            *seq += 1;
        }
        out.push(Msg::Watermark(*seq));
    };
    for (k, &(n, skip)) in segments.iter().enumerate() {
        records(n, &mut seq, &mut out);
        if !skip {
            out.push(Msg::Barrier(k as u64 + 1));
        }
    }
    records(tail, &mut seq, &mut out);
    out.push(Msg::End);
    out
}

/// The first three parts are generated as by the aligner's former simulation, so the seeds
/// kept in `proptest-regressions/gate/simulation.txt` replay those streams.
fn scenario() -> impl Strategy<Value = Scenario> {
    let sender = (
        proptest::collection::vec((0usize..4, proptest::bool::weighted(0.15)), LAST as usize),
        0usize..4,
    );
    (
        proptest::collection::vec(sender, 1..=4),
        proptest::collection::vec(0usize..4, 0..160),
        proptest::collection::vec((0usize..48, 1u64..=LAST + 1), 0..4),
        proptest::collection::vec(proptest::bool::weighted(0.25), LAST as usize),
        1u32..=6,
        proptest::collection::vec(proptest::bool::weighted(0.7), 0..160),
    )
        .prop_map(
            |(senders, choices, aborts, savepoints, window, outputs)| Scenario {
                streams: senders
                    .iter()
                    .enumerate()
                    .map(|(s, (segments, tail))| stream(s, segments, *tail))
                    .collect(),
                choices,
                aborts,
                savepoints,
                window,
                outputs,
            },
        )
}

/// What the owner saw when it took a snapshot.
#[derive(Debug)]
struct Snapshot {
    id: u64,
    processed: BTreeSet<Rec>,
    /// Senders whose end of input had been delivered (unaligned: when its channel state was
    /// complete).
    ended: BTreeSet<usize>,
    aborted_before: bool,
    unaligned: bool,
}

/// The runtime's side, simulated: senders with their credits, and what the gate handed out.
struct Owner {
    gate: InputGate<Rec>,
    window: u32,
    /// Per sender: credits left.
    credits: Vec<u32>,
    processed: Vec<Rec>,
    ended: BTreeSet<usize>,
    aborted: BTreeSet<u64>,
    /// Delivered records not processed yet, by arrival number.
    unprocessed: BTreeMap<u64, Rec>,
    arrivals: u64,
    /// When the first barrier of each id was delivered.
    first_barrier: BTreeMap<u64, Instant>,
    snapshots: Vec<Snapshot>,
    /// Unaligned checkpoints: the batches recorded as each one's channel state.
    recorded: BTreeMap<u64, BTreeSet<Rec>>,
    /// Unaligned checkpoints whose channel state was completed.
    channel_state_done: Vec<u64>,
    declined: Vec<u64>,
    inputs_ended: usize,
    /// Per sender: how many records it sends in all.
    totals: Vec<usize>,
    /// The last watermark handed out.
    watermark: Option<i64>,
    now: Instant,
}

impl Owner {
    fn new(mode: AlignmentMode, s: &Scenario) -> Self {
        let channels = s.streams.len();
        Self {
            gate: InputGate::new(mode, channels, s.window),
            window: s.window,
            credits: vec![s.window; channels],
            processed: Vec::new(),
            ended: BTreeSet::new(),
            aborted: BTreeSet::new(),
            unprocessed: BTreeMap::new(),
            arrivals: 0,
            first_barrier: BTreeMap::new(),
            snapshots: Vec::new(),
            recorded: BTreeMap::new(),
            channel_state_done: Vec::new(),
            declined: Vec::new(),
            inputs_ended: 0,
            totals: s
                .streams
                .iter()
                .map(|m| m.iter().filter(|m| matches!(m, Msg::Record(_))).count())
                .collect(),
            watermark: None,
            now: Instant::now(),
        }
    }

    fn deliver(&mut self, channel: usize, msg: &Msg, s: &Scenario) -> Result<(), TestCaseError> {
        if std::env::var_os("SIM_DEBUG").is_some() {
            eprintln!("deliver {channel} {msg:?}");
        }
        self.arrivals += 1;
        match msg {
            Msg::Record(r) => {
                prop_assert!(self.credits[channel] > 0, "sent without credit");
                self.credits[channel] -= 1;
                self.unprocessed.insert(self.arrivals, *r);
                if let Some(id) = self.gate.recording(channel) {
                    // Arrives before its channel's barrier: copied on arrival.
                    prop_assert!(
                        !self.channel_state_done.contains(&id.0),
                        "{:?} copied for {} after its channel state was complete",
                        r,
                        id
                    );
                    let recorded = self.recorded.entry(id.0).or_default();
                    prop_assert!(recorded.insert(*r), "{:?} copied twice for {}", r, id);
                }
            }
            Msg::Barrier(n) => {
                self.first_barrier.entry(*n).or_insert(self.now);
            }
            Msg::Watermark(_) => {}
            Msg::End => {
                self.ended.insert(channel);
            }
        }
        let received = self.gate.receive(channel, s.element(msg));
        prop_assert_eq!(received, Ok(()));
        Ok(())
    }

    fn abort(&mut self, n: u64) {
        if std::env::var_os("SIM_DEBUG").is_some() {
            eprintln!("abort {n}");
        }
        self.aborted.insert(n);
        self.gate.abort(CheckpointId(n), self.now);
    }

    /// Executes everything the gate hands out, as the runtime does.
    fn drain(&mut self, output: OutputCredit, s: &Scenario) -> Result<(), TestCaseError> {
        while let Some(action) = self.gate.next(self.now, output) {
            if std::env::var_os("SIM_DEBUG").is_some() {
                eprintln!("{:?} {:?}", self.now, action);
            }
            match action {
                GateAction::Process {
                    channel,
                    batch,
                    credit,
                } => {
                    prop_assert_eq!(batch.0, channel, "a batch handed out on another channel");
                    let seq = self
                        .unprocessed
                        .iter()
                        .find(|(_, r)| **r == batch)
                        .map(|(s, _)| *s);
                    prop_assert!(seq.is_some(), "{:?} handed out twice", batch);
                    let seq = seq.unwrap_or_default();
                    // Arrival order across channels, but for the batches of blocked channels.
                    for (_, earlier) in self.unprocessed.range(..seq) {
                        prop_assert!(
                            self.gate.is_blocked(earlier.0),
                            "{:?} overtook {:?} of an open channel",
                            batch,
                            earlier
                        );
                    }
                    self.unprocessed.remove(&seq);
                    self.processed.push(batch);
                    if let Some(c) = credit {
                        prop_assert_eq!(c.channel, channel);
                        self.credits[channel] += c.batches;
                        prop_assert!(
                            self.credits[channel] <= self.window,
                            "more credit returned than sent on channel {}",
                            channel
                        );
                    }
                }
                GateAction::ChannelStateDone { id } => {
                    prop_assert!(
                        self.snapshots.iter().any(|s| s.id == id.0 && s.unaligned),
                        "channel state of {} done without its unaligned snapshot",
                        id
                    );
                    prop_assert!(
                        !self.channel_state_done.contains(&id.0),
                        "{} done twice",
                        id
                    );
                    self.channel_state_done.push(id.0);
                    // Its channel state ends with the barrier or end of input of every sender.
                    let ended = self.ended.clone();
                    if let Some(snap) = self.snapshots.iter_mut().find(|s| s.id == id.0) {
                        snap.ended = ended;
                    }
                }
                GateAction::Snapshot {
                    barrier,
                    alignment,
                    unaligned,
                } => {
                    prop_assert!(
                        !unaligned
                            || (self.gate.mode().is_unaligned() && !s.is_savepoint(barrier.id.0)),
                        "an unaligned snapshot of {:?} in {:?}",
                        barrier.kind,
                        self.gate.mode()
                    );
                    let id = barrier.id.0;
                    let first = self.first_barrier.get(&id).copied();
                    prop_assert!(
                        first.is_some_and(|f| alignment <= self.now - f),
                        "checkpoint {} aligned for {:?}, longer than since its first barrier",
                        id,
                        alignment
                    );
                    self.snapshots.push(Snapshot {
                        id,
                        processed: self.processed.iter().copied().collect(),
                        ended: self.ended.clone(),
                        aborted_before: self.aborted.contains(&id),
                        unaligned,
                    });
                    if unaligned {
                        // The batches it overtook are copied now.
                        let overtaken: Vec<Rec> =
                            self.gate.overtaken(barrier.id).map(|(_, b)| *b).collect();
                        let recorded = self.recorded.entry(id).or_default();
                        for b in overtaken {
                            prop_assert!(recorded.insert(b), "{:?} copied twice for {}", b, id);
                        }
                    }
                }
                GateAction::Decline { id, .. } => self.declined.push(id.0),
                GateAction::Watermark(WatermarkEvent::Advance(Watermark(w))) => {
                    prop_assert!(
                        self.watermark.is_none_or(|l| w > l),
                        "{} after {:?}",
                        w,
                        self.watermark
                    );
                    self.watermark = Some(w);
                    // No watermark overtakes a record before it on its channel: every sender's
                    // first `w` records (all of an ended one's) were processed.
                    for (sender, total) in self.totals.iter().enumerate() {
                        let done = self.processed.iter().filter(|r| r.0 == sender).count();
                        prop_assert!(
                            done >= (*total).min(w as usize),
                            "watermark {} handed out with {} of sender {}'s records processed",
                            w,
                            done,
                            sender
                        );
                    }
                }
                GateAction::Watermark(WatermarkEvent::Idle) => {
                    prop_assert!(false, "no sender is idle here");
                }
                GateAction::InputsEnded => {
                    self.inputs_ended += 1;
                    prop_assert_eq!(self.ended.len(), self.credits.len());
                }
            }
        }
        Ok(())
    }

    /// Senders whose next element they may send now.
    fn sendable(&self, queues: &[VecDeque<Msg>]) -> Vec<usize> {
        (0..queues.len())
            .filter(|&c| match queues[c].front() {
                None => false,
                Some(Msg::Record(_)) => self.credits[c] > 0,
                Some(_) => true,
            })
            .collect()
    }
}

/// Delivers every stream as the scenario says and checks the per-step invariants.
fn run(mode: AlignmentMode, s: &Scenario) -> Result<Owner, TestCaseError> {
    if std::env::var_os("SIM_DEBUG").is_some() {
        eprintln!("--- run {mode:?}");
    }
    let mut owner = Owner::new(mode, s);
    let mut queues: Vec<VecDeque<Msg>> = s
        .streams
        .iter()
        .map(|m| m.iter().cloned().collect())
        .collect();
    let mut step = 0;
    loop {
        for &(_, n) in s.aborts.iter().filter(|(at, _)| *at == step) {
            owner.abort(n);
        }
        let mut sendable = owner.sendable(&queues);
        if sendable.is_empty() {
            if queues.iter().all(VecDeque::is_empty) {
                break;
            }
            // Every sender that has something left is out of credit: once the outputs have
            // credit, processing what the gate holds must give some back.
            owner.drain(OutputCredit::Available, s)?;
            sendable = owner.sendable(&queues);
            prop_assert!(
                !sendable.is_empty(),
                "senders stalled: credits {:?}, window {}",
                owner.credits,
                s.window
            );
        }
        let pick = s.choices.get(step).map_or(0, |c| c % sendable.len());
        let channel = sendable[pick];
        if let Some(msg) = queues[channel].pop_front() {
            owner.deliver(channel, &msg, s)?;
        }
        owner.now += Duration::from_millis(1);
        let output = match s.outputs.get(step) {
            Some(false) => OutputCredit::Exhausted,
            _ => OutputCredit::Available,
        };
        owner.drain(output, s)?;
        if output == OutputCredit::Available {
            for c in 0..queues.len() {
                prop_assert!(
                    owner.gate.held(c).next().is_none() || owner.gate.is_blocked(c),
                    "an element of open channel {} left unprocessed",
                    c
                );
            }
        }
        if mode == AlignmentMode::AtLeastOnce {
            let blocking = (0..queues.len()).any(|c| owner.gate.is_blocked(c));
            let pending = owner.gate.pending_checkpoint().map(|p| p.0);
            prop_assert!(
                !blocking || pending.is_some_and(|p| s.is_savepoint(p)),
                "a checkpoint barrier blocked in at-least-once mode"
            );
        }
        step += 1;
    }
    for &(_, n) in s.aborts.iter().filter(|(at, _)| *at >= step) {
        owner.abort(n);
    }
    owner.drain(OutputCredit::Available, s)?;
    Ok(owner)
}

/// Records of `sender` before its barrier `n`, or all of them if it skipped `n`.
fn before_barrier(stream: &[Msg], n: u64) -> (BTreeSet<Rec>, bool) {
    let end = stream.iter().position(|m| *m == Msg::Barrier(n));
    let upto = end.unwrap_or(stream.len());
    let recs = stream[..upto]
        .iter()
        .filter_map(|m| match m {
            Msg::Record(r) => Some(*r),
            _ => None,
        })
        .collect();
    (recs, end.is_some())
}

/// Snapshot `snap` saw exactly the records each sender sent before its barrier (an unaligned
/// one: in its state or its channel state, `recorded`).
fn check_exact(
    s: &Scenario,
    snap: &Snapshot,
    recorded: &BTreeSet<Rec>,
) -> Result<(), TestCaseError> {
    for (sender, stream) in s.streams.iter().enumerate() {
        let seen: BTreeSet<Rec> = snap
            .processed
            .iter()
            .chain(recorded)
            .copied()
            .filter(|r| r.0 == sender)
            .collect();
        let (expected, has_barrier) = before_barrier(stream, snap.id);
        if !has_barrier {
            prop_assert!(
                snap.ended.contains(&sender),
                "checkpoint {} completed while sender {} skipped it and is live",
                snap.id,
                sender
            );
        }
        prop_assert_eq!(
            &seen,
            &expected,
            "checkpoint {}, sender {}",
            snap.id,
            sender
        );
    }
    Ok(())
}

/// Checks common to both modes: every record processed once and in channel order, nothing
/// left in the gate, credits all back but the open groups, the end of input handed out once,
/// completions ascending (per aligner) and never of an aborted or declined id, and the last
/// checkpoint completing when nobody skipped or aborted it.
fn check_common(s: &Scenario, owner: &Owner) -> Result<(), TestCaseError> {
    let all: BTreeSet<Rec> = s
        .streams
        .iter()
        .flatten()
        .filter_map(|m| match m {
            Msg::Record(r) => Some(*r),
            _ => None,
        })
        .collect();
    let processed: BTreeSet<Rec> = owner.processed.iter().copied().collect();
    prop_assert_eq!(
        processed.len(),
        owner.processed.len(),
        "a record was processed twice"
    );
    prop_assert_eq!(&processed, &all, "a record was lost");
    let mut per_sender: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (sender, seq) in &owner.processed {
        per_sender.entry(*sender).or_default().push(*seq);
    }
    for seqs in per_sender.values() {
        prop_assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "channel order broken: {seqs:?}"
        );
    }
    let group = credit_group(s.window);
    for c in 0..s.streams.len() {
        prop_assert!(owner.gate.held(c).next().is_none());
        prop_assert!(!owner.gate.is_blocked(c));
        let owed = owner.gate.owed_credit(c);
        prop_assert!(owed < group, "a full credit group was kept");
        prop_assert_eq!(
            owner.credits[c] + owed,
            s.window,
            "credit lost on channel {}",
            c
        );
    }
    prop_assert_eq!(owner.gate.state(), GateState::Ended);
    prop_assert_eq!(owner.inputs_ended, 1);
    prop_assert_eq!(owner.gate.pending_checkpoint(), None);
    // The last channel to end sent its final watermark while it was the only open one.
    prop_assert!(owner.watermark.is_some(), "no watermark handed out");
    prop_assert_eq!(owner.gate.watermark().map(|w| w.0), owner.watermark);
    for savepoints in [false, true] {
        let ids: Vec<u64> = owner
            .snapshots
            .iter()
            .map(|snap| snap.id)
            .filter(|id| {
                owner.gate.mode() == AlignmentMode::Aligned || s.is_savepoint(*id) == savepoints
            })
            .collect();
        prop_assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "completions out of order: {ids:?}"
        );
    }
    for snap in &owner.snapshots {
        prop_assert!(
            !snap.aborted_before,
            "checkpoint {} completed after its abort",
            snap.id
        );
        // An unaligned snapshot is taken first and may be declined while its channel state is
        // recorded; the unaligned property checks those.
        prop_assert!(
            snap.unaligned || !owner.declined.contains(&snap.id),
            "checkpoint {} both completed and declined",
            snap.id
        );
    }
    let last_everywhere = s.streams.iter().all(|st| st.contains(&Msg::Barrier(LAST)));
    let last_aborted = s.aborts.iter().any(|(_, n)| *n == LAST);
    if last_everywhere && !last_aborted {
        prop_assert!(
            owner.snapshots.iter().any(|snap| snap.id == LAST),
            "checkpoint {LAST} never completed"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn aligned_snapshots_see_exactly_the_records_before_the_barriers(s in scenario()) {
        let owner = run(AlignmentMode::Aligned, &s)?;
        check_common(&s, &owner)?;
        for snap in &owner.snapshots {
            check_exact(&s, snap, &BTreeSet::new())?;
        }
    }

    #[test]
    fn at_least_once_snapshots_lose_nothing_and_savepoints_stay_aligned(s in scenario()) {
        let owner = run(AlignmentMode::AtLeastOnce, &s)?;
        check_common(&s, &owner)?;
        for snap in &owner.snapshots {
            if s.is_savepoint(snap.id) {
                check_exact(&s, snap, &BTreeSet::new())?;
                continue;
            }
            for (sender, stream) in s.streams.iter().enumerate() {
                let (expected, has_barrier) = before_barrier(stream, snap.id);
                if !has_barrier {
                    prop_assert!(snap.ended.contains(&sender));
                }
                prop_assert!(
                    expected.is_subset(&snap.processed),
                    "checkpoint {}, sender {}: lost {:?}",
                    snap.id, sender, expected.difference(&snap.processed).collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn unaligned_snapshots_with_their_channel_state_see_exactly_the_records_before_the_barriers(
        s in scenario(),
        timeout in prop_oneof![Just(0u64), 1u64..6],
    ) {
        let mode = AlignmentMode::Unaligned { aligned_timeout: Duration::from_millis(timeout) };
        let owner = run(mode, &s)?;
        check_common(&s, &owner)?;
        let none = BTreeSet::new();
        for snap in &owner.snapshots {
            if snap.unaligned {
                let done = owner.channel_state_done.contains(&snap.id);
                let declined = owner.declined.contains(&snap.id);
                let aborted = owner.aborted.contains(&snap.id);
                prop_assert!(
                    (done || declined || aborted) && !(done && declined),
                    "checkpoint {}: channel state done {}, declined {}, aborted {}",
                    snap.id, done, declined, aborted
                );
                if !done {
                    continue;
                }
            }
            let recorded = owner.recorded.get(&snap.id).unwrap_or(&none);
            prop_assert!(
                recorded.is_disjoint(&snap.processed),
                "checkpoint {}: {:?} both in its state and its channel state",
                snap.id,
                recorded.intersection(&snap.processed).collect::<Vec<_>>()
            );
            check_exact(&s, snap, recorded)?;
        }
        if timeout == 0 {
            for c in 0..s.streams.len() {
                prop_assert!(!owner.gate.is_blocked(c));
            }
        }
    }
}
