//! The window operator driven through its vertex, as a subtask drives it: records, watermarks,
//! the clock, snapshots and restores (rescaled too) — no actix System.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::element::{Barrier, CheckpointKind, Ending};
use crate::ids::CheckpointId;
use crate::operator::SubtaskInfo;
use crate::partition::{EdgeKey, OutputEdge, Partitioning};
use crate::state::keyed::StateBackendKind;
use crate::time::Watermark;
use crate::vertex::{keyed_factory, RestoredState, VertexRuntime};

/// `(key, timestamp)`.
type Rec = (u32, i64);
/// `(key, window start, window end, count)`.
type Out = (u32, i64, i64, u64);

/// Counts per window; late records come out as `(key, -1, -1, timestamp)`.
#[derive(Clone)]
struct CountOrLate(AggregateWindow<u32, CountAggregate, Rec, Out>);

impl WindowFunction<u32, Rec, Out> for CountOrLate {
    type Acc = u64;
    fn add(&self, acc: Option<u64>, input: Rec) -> Result<u64, crate::operator::OperatorError> {
        self.0.add(acc, input)
    }
    fn merge(&self, a: u64, b: u64) -> u64 {
        self.0.merge(a, b)
    }
    fn emit(
        &self,
        key: &u32,
        w: &TimeWindow,
        acc: &u64,
        out: &mut Vec<Out>,
    ) -> Result<(), crate::operator::OperatorError> {
        self.0.emit(key, w, acc, out)
    }
    fn late(
        &self,
        key: &u32,
        input: Rec,
        out: &mut Vec<Out>,
    ) -> Result<(), crate::operator::OperatorError> {
        out.push((*key, -1, -1, input.1 as u64));
        Ok(())
    }
}

fn counting(
    assigner: WindowAssigner,
    time: WindowTime<Rec>,
    lateness_ms: i64,
) -> impl Fn(u32, u32) -> Box<dyn VertexRuntime> {
    counting_in(assigner, time, lateness_ms, StateBackendKind::HashMap)
}

fn counting_in(
    assigner: WindowAssigner,
    time: WindowTime<Rec>,
    lateness_ms: i64,
    backend: StateBackendKind,
) -> impl Fn(u32, u32) -> Box<dyn VertexRuntime> {
    move |index, parallelism| {
        let info = SubtaskInfo {
            uid: "windows".into(),
            index,
            parallelism,
            max_parallelism: 128,
            restored: None,
        };
        let edge = OutputEdge {
            partitioning: Partitioning::Forward,
            key: Arc::new(EdgeKey::<Out> { key_group: None }),
            channels: 1,
            downstream_parallelism: 1,
            downstream_max_parallelism: 128,
        };
        let f = CountOrLate(AggregateWindow::new(
            CountAggregate,
            |k: &u32, w: &TimeWindow, n: u64| (*k, w.start, w.end, n),
        ));
        let op = WindowOperator::new(assigner, time.clone(), lateness_ms, f);
        let factory = keyed_factory::<u32, Rec, Out, _>(op, Arc::new(|r: &Rec| r.0), backend);
        factory(&info, &[edge], 1 << 20).unwrap()
    }
}

fn event_time() -> WindowTime<Rec> {
    WindowTime::event(|r: &Rec| r.1)
}

fn outputs(ready: Vec<crate::partition::OutBatch>) -> Vec<Out> {
    let mut out: Vec<Out> = ready
        .into_iter()
        .flat_map(|b| *b.records.downcast::<Vec<Out>>().unwrap())
        .collect();
    out.sort();
    out
}

fn feed(v: &mut dyn VertexRuntime, records: Vec<Rec>) -> Vec<Out> {
    let mut ready = Vec::new();
    v.process(Box::new(records), &mut ready).unwrap();
    v.flush(&mut ready);
    outputs(ready)
}

fn watermark(v: &mut dyn VertexRuntime, w: i64) -> Vec<Out> {
    let mut ready = Vec::new();
    v.on_watermark(Watermark(w), &mut ready).unwrap();
    outputs(ready)
}

fn snapshot(v: &mut dyn VertexRuntime) -> RestoredState {
    let barrier = Barrier {
        id: CheckpointId(1),
        timestamp_ms: 0,
        kind: CheckpointKind::PERIODIC,
        ending: Ending::Continue,
    };
    let s = v.snapshot(&barrier).unwrap();
    RestoredState {
        keyed: vec![Arc::new(s.keyed.unwrap().encode().unwrap())],
        operator: s.operator.map(Arc::new).into_iter().collect(),
        channel: vec![],
    }
}

fn tumbling(ms: u64) -> WindowAssigner {
    WindowAssigner::tumbling(Duration::from_millis(ms)).unwrap()
}

#[test]
fn event_time_windows_fire_once_when_the_watermark_passes_their_end() {
    let make = counting(tumbling(10), event_time(), 0);
    let mut v = make(0, 1);
    v.open(&RestoredState::default()).unwrap();
    assert_eq!(
        feed(v.as_mut(), vec![(1, 3), (2, 12), (1, 9), (1, 15)]),
        vec![]
    );
    assert_eq!(watermark(v.as_mut(), 8), vec![], "window [0,10) ends at 9");
    assert_eq!(watermark(v.as_mut(), 9), vec![(1, 0, 10, 2)]);
    assert_eq!(watermark(v.as_mut(), 9), vec![], "fired once");
    assert_eq!(
        watermark(v.as_mut(), 100),
        vec![(1, 10, 20, 1), (2, 10, 20, 1)]
    );
}

#[test]
fn allowed_lateness_fires_again_and_later_records_are_late() {
    let make = counting(tumbling(10), event_time(), 5);
    let mut v = make(0, 1);
    v.open(&RestoredState::default()).unwrap();
    feed(v.as_mut(), vec![(1, 1)]);
    assert_eq!(watermark(v.as_mut(), 10), vec![(1, 0, 10, 1)]);
    // Within the lateness: the window fires again at once, with the record.
    assert_eq!(feed(v.as_mut(), vec![(1, 2)]), vec![(1, 0, 10, 2)]);
    // Cleanup at 9 + 5: after it, the record is late (here handed to `late`).
    assert_eq!(watermark(v.as_mut(), 14), vec![]);
    assert_eq!(feed(v.as_mut(), vec![(1, 3)]), vec![(1, -1, -1, 3)]);
}

#[test]
fn sliding_windows_count_a_record_in_each_of_its_windows() {
    let make = counting(
        WindowAssigner::sliding(Duration::from_millis(10), Duration::from_millis(5)).unwrap(),
        event_time(),
        0,
    );
    let mut v = make(0, 1);
    v.open(&RestoredState::default()).unwrap();
    feed(v.as_mut(), vec![(1, 7), (1, 12)]);
    assert_eq!(
        watermark(v.as_mut(), 100),
        vec![(1, 0, 10, 1), (1, 5, 15, 2), (1, 10, 20, 1)]
    );
}

#[test]
fn session_windows_merge_per_key_and_fire_after_the_gap() {
    let make = counting(
        WindowAssigner::session(Duration::from_millis(10)).unwrap(),
        event_time(),
        0,
    );
    let mut v = make(0, 1);
    v.open(&RestoredState::default()).unwrap();
    feed(v.as_mut(), vec![(1, 0), (1, 25), (2, 5), (1, 8)]);
    // Key 1: [0,10) and [8,18) merge into [0,18); [25,35) is another session.
    assert_eq!(
        watermark(v.as_mut(), 17),
        vec![(1, 0, 18, 2), (2, 5, 15, 1)]
    );
    // A record bridging nothing: a record inside the open session joins it.
    feed(v.as_mut(), vec![(1, 30)]);
    assert_eq!(watermark(v.as_mut(), 100), vec![(1, 25, 40, 2)]);
}

#[test]
fn timers_are_state_a_restored_subtask_fires_exactly_what_had_not_fired() {
    timers_are_state_in(StateBackendKind::HashMap, StateBackendKind::HashMap);
}

#[cfg(feature = "rocksdb")]
#[test]
fn timers_are_state_in_rocksdb_too_and_move_between_backends() {
    timers_are_state_in(StateBackendKind::RocksDb, StateBackendKind::RocksDb);
    timers_are_state_in(StateBackendKind::RocksDb, StateBackendKind::HashMap);
    timers_are_state_in(StateBackendKind::HashMap, StateBackendKind::RocksDb);
}

/// Snapshots in `backend`, restores (and rescales) in `then`.
fn timers_are_state_in(backend: StateBackendKind, then: StateBackendKind) {
    let make = counting_in(tumbling(10), event_time(), 0, backend);
    let make_restored = counting_in(tumbling(10), event_time(), 0, then);
    let mut v = make(0, 1);
    v.open(&RestoredState::default()).unwrap();
    feed(v.as_mut(), (0..20).map(|k| (k, i64::from(k))).collect());
    // [0,10) of keys 0..10 fires before the snapshot; [10,20) of keys 10..20 does not.
    assert_eq!(watermark(v.as_mut(), 9).len(), 10);
    let saved = snapshot(v.as_mut());
    let expected_rest: Vec<Out> = (10..20).map(|k| (k, 10, 20, 1)).collect();
    assert_eq!(watermark(v.as_mut(), 100), expected_rest);

    // Restored at parallelism 1 and rescaled to 2: the rest fires once, nothing fires again.
    let mut one = make_restored(0, 1);
    one.open(&saved).unwrap();
    assert_eq!(
        watermark(one.as_mut(), 9),
        vec![],
        "restored watermark: nothing new due"
    );
    assert_eq!(watermark(one.as_mut(), 100), expected_rest);
    let mut both = Vec::new();
    for i in 0..2 {
        let mut half = make_restored(i, 2);
        half.open(&saved).unwrap();
        both.extend(watermark(half.as_mut(), 100));
    }
    both.sort();
    assert_eq!(both, expected_rest);
}

#[test]
fn a_restored_operator_keeps_its_watermark_so_late_records_stay_late() {
    let make = counting(tumbling(10), event_time(), 0);
    let mut v = make(0, 1);
    v.open(&RestoredState::default()).unwrap();
    feed(v.as_mut(), vec![(1, 1)]);
    watermark(v.as_mut(), 50);
    let saved = snapshot(v.as_mut());
    let mut restored = make(0, 1);
    restored.open(&saved).unwrap();
    assert_eq!(
        feed(restored.as_mut(), vec![(1, 20)]),
        vec![(1, -1, -1, 20)]
    );
}

#[test]
fn processing_time_windows_fire_from_the_clock_without_input() {
    let make = counting(tumbling(60_000), WindowTime::Processing, 0);
    let mut v = make(0, 1);
    v.open(&RestoredState::default()).unwrap();
    feed(v.as_mut(), vec![(1, 0), (1, 0), (2, 0)]);
    let due = v
        .next_processing_timer()
        .expect("a wake-up for the window's end");
    let mut ready = Vec::new();
    v.on_processing_time(due - 1, &mut ready).unwrap();
    assert_eq!(outputs(std::mem::take(&mut ready)), vec![]);
    v.on_processing_time(due, &mut ready).unwrap();
    let fired = outputs(ready);
    assert_eq!(
        fired.iter().map(|o| (o.0, o.3)).collect::<Vec<_>>(),
        vec![(1, 2), (2, 1)]
    );
    assert_eq!(fired[0].2 - 1, due);
    assert_eq!(v.next_processing_timer(), None);
}
