//! End-to-end: watermarks travel in-band from sources through every partitioner. A checking
//! operator downstream sees no record at or below a watermark it has already seen (with
//! monotonous timestamps none is late unless a watermark overtook it), watermarks that only
//! rise, and the end of event time once every source is exhausted — also when failures are
//! injected and the job restores (the sources' watermarks come back from their snapshot); and
//! an idle source subtask does not hold the downstream watermark back.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Rng;
use weir_actors::weir::checkpoint::{CheckpointConfig, StorageConfig};
use weir_actors::weir::connectors::file_sink::{committed_lines, ExactlyOnceFileSink};
use weir_actors::weir::connectors::sequence::SequenceSource;
use weir_actors::weir::operator::{Operator, OperatorError};
use weir_actors::weir::status::JobStatus;
use weir_actors::weir::stream::{DataStream, StreamEnvironment};
use weir_actors::weir::time::{Watermark, WatermarkStrategy};
use weir_actors::{run, JobOptions};

/// What every checking subtask saw, over all attempts.
#[derive(Default)]
struct Seen {
    /// Records at or below the watermark the subtask had seen before them.
    late: AtomicU64,
    /// Watermarks that did not rise above the subtask's previous one.
    regressions: AtomicU64,
    watermarks: AtomicU64,
    /// Checking subtasks that saw the end of event time.
    ended: AtomicU64,
}

/// Passes records on; counts late ones and checks the watermarks.
#[derive(Clone)]
struct Check {
    seen: Arc<Seen>,
    watermark: Option<Watermark>,
}

impl Operator<u64, u64> for Check {
    fn process(&mut self, input: Vec<u64>, out: &mut Vec<u64>) -> Result<(), OperatorError> {
        for v in &input {
            if self.watermark.is_some_and(|w| *v as i64 <= w.0) {
                self.seen.late.fetch_add(1, Ordering::Relaxed);
            }
        }
        out.extend(input);
        Ok(())
    }

    fn on_watermark(&mut self, w: Watermark, _out: &mut Vec<u64>) -> Result<(), OperatorError> {
        if self.watermark.is_some_and(|last| w <= last) {
            self.seen.regressions.fetch_add(1, Ordering::Relaxed);
        }
        self.watermark = Some(w);
        self.seen.watermarks.fetch_add(1, Ordering::Relaxed);
        if w == Watermark::MAX {
            self.seen.ended.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

const RECORDS: u64 = 20_000;

/// numbers (2 subtasks, timestamp = value, monotonous per subtask) → map (chained, may fail)
/// → `partition` → check (3 subtasks) → key_by → check again (2) → exactly-once file sink.
fn job(
    dir: &std::path::Path,
    partition: fn(DataStream<u64>) -> DataStream<u64>,
    fail_at: Arc<Mutex<BTreeSet<u64>>>,
    seen: &Arc<Seen>,
) -> weir_actors::weir::graph::JobGraph {
    let env = common::checkpointed_env("event time", dir, 2);
    env.set_batch_size(64);
    let strategy =
        WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|v: &u64| *v as i64);
    let check = Check {
        seen: seen.clone(),
        watermark: None,
    };
    let numbers = env
        .add_source_with_watermarks(
            "numbers",
            SequenceSource::new(0, RECORDS).with_rate(100_000.0),
            strategy,
        )
        .map("inject", move |v: u64| {
            if fail_at.lock().unwrap().remove(&v) {
                panic!("injected failure at record {v}");
            }
            v
        });
    let checked = partition(numbers)
        .transform("check", check.clone())
        .parallelism(3);
    // A key_by edge into a non-keyed operator is not in the API: rebalance to 2 subtasks.
    checked
        .rebalance()
        .transform("check-again", check)
        .parallelism(2)
        .add_sink("sink", ExactlyOnceFileSink::new(dir.join("out")));
    env.build().expect("valid graph")
}

/// Runs the job with `failures` injected; every number must be committed `copies` times.
fn run_and_check(
    partition: fn(DataStream<u64>) -> DataStream<u64>,
    copies: usize,
    failures: usize,
    seed: u64,
) {
    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(Seen::default());
    let fail_at: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
    let mut rng = Rng(seed);
    while fail_at.lock().unwrap().len() < failures {
        fail_at.lock().unwrap().insert(rng.below(RECORDS));
    }
    let state = run(
        job(dir.path(), partition, fail_at.clone(), &seen),
        JobOptions::default(),
    )
    .unwrap();
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    assert!(fail_at.lock().unwrap().is_empty(), "every failure fired");
    assert_eq!(state.restarts as usize, failures);
    assert_eq!(
        seen.late.load(Ordering::Relaxed),
        0,
        "a watermark overtook a record"
    );
    assert_eq!(
        seen.regressions.load(Ordering::Relaxed),
        0,
        "a watermark went back"
    );
    assert!(
        seen.watermarks.load(Ordering::Relaxed) > 10,
        "watermarks flowed: {}",
        seen.watermarks.load(Ordering::Relaxed)
    );
    assert!(
        seen.ended.load(Ordering::Relaxed) >= 5,
        "every checking subtask (3 + 2) saw the end of event time"
    );
    // What `/jobs/:id/vertices/:uid/watermarks` serves: every chain's subtasks ended at MAX.
    let metrics = weir_actors::metrics::registry().job(state.job_id);
    for (uid, subtasks) in [("numbers", 2), ("check", 3), ("check-again", 2)] {
        let ended: Vec<Option<i64>> = metrics
            .iter()
            .filter(|(u, _, _)| u == uid)
            .map(|(_, _, m)| m.watermark)
            .collect();
        assert_eq!(ended, vec![Some(i64::MAX); subtasks], "{uid}");
    }
    let mut committed: Vec<u64> = committed_lines(dir.path().join("out"))
        .unwrap()
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    committed.sort_unstable();
    let expected: Vec<u64> = (0..RECORDS)
        .flat_map(|v| std::iter::repeat_n(v, copies))
        .collect();
    assert!(
        committed == expected,
        "not exactly once: {} records committed",
        committed.len()
    );
}

#[test]
fn watermarks_never_overtake_records_through_rebalance() {
    run_and_check(DataStream::rebalance, 1, 0, 1);
}

#[test]
fn watermarks_never_overtake_records_through_broadcast() {
    run_and_check(DataStream::broadcast, 3, 0, 2);
}

#[test]
fn with_failures_no_record_is_late_after_restore_and_output_is_exactly_once() {
    for seed in [7_u64, 4242] {
        run_and_check(DataStream::rebalance, 1, 2, seed);
    }
}

/// Subtask 0 emits `0..2000` (timestamp = value); subtask 1 emits nothing and ends only when
/// `release` is set (or, so that a broken build fails instead of hanging, after 10 s, and then
/// it sets `fell_back`).
#[derive(Clone)]
struct OneQuietSubtask {
    index: u32,
    next: u64,
    release: Arc<std::sync::atomic::AtomicBool>,
    fell_back: Arc<std::sync::atomic::AtomicBool>,
    started: Option<std::time::Instant>,
}

impl weir_actors::weir::operator::Source<u64> for OneQuietSubtask {
    fn open(
        &mut self,
        info: &weir_actors::weir::operator::SubtaskInfo,
        _state: &mut weir_actors::weir::state::operator_state::OperatorStateStore,
    ) -> Result<(), OperatorError> {
        self.index = info.index;
        self.started = Some(std::time::Instant::now());
        Ok(())
    }

    fn poll(
        &mut self,
        out: &mut Vec<u64>,
        max: usize,
    ) -> Result<weir_actors::weir::operator::SourcePoll, OperatorError> {
        use weir_actors::weir::operator::SourcePoll;
        if self.index == 1 {
            let waited = self.started.map_or(Duration::ZERO, |s| s.elapsed());
            if self.release.load(Ordering::SeqCst) {
                return Ok(SourcePoll::Exhausted);
            }
            if waited > Duration::from_secs(10) {
                self.fell_back.store(true, Ordering::SeqCst);
                return Ok(SourcePoll::Exhausted);
            }
            return Ok(SourcePoll::Idle(Duration::from_millis(5)));
        }
        let end = (self.next + max.min(50) as u64).min(2_000);
        out.extend(self.next..end);
        self.next = end;
        Ok(if end == 2_000 {
            SourcePoll::Exhausted
        } else {
            SourcePoll::Idle(Duration::from_millis(1))
        })
    }

    fn snapshot(
        &mut self,
        _state: &mut weir_actors::weir::state::operator_state::OperatorStateStore,
    ) -> Result<(), OperatorError> {
        Ok(())
    }
}

/// Sets `release` at its first watermark.
#[derive(Clone)]
struct ReleaseOnWatermark {
    release: Arc<std::sync::atomic::AtomicBool>,
}

impl Operator<u64, u64> for ReleaseOnWatermark {
    fn process(&mut self, input: Vec<u64>, out: &mut Vec<u64>) -> Result<(), OperatorError> {
        out.extend(input);
        Ok(())
    }

    fn on_watermark(&mut self, _w: Watermark, _out: &mut Vec<u64>) -> Result<(), OperatorError> {
        self.release.store(true, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn an_idle_source_subtask_does_not_hold_the_watermark_back() {
    let dir = tempfile::tempdir().unwrap();
    let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fell_back = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let env = StreamEnvironment::new("idleness");
    env.set_parallelism(2);
    env.set_checkpoint_config(CheckpointConfig {
        interval: Some(Duration::from_millis(50)),
        storage: StorageConfig::FileSystem {
            dir: dir.path().join("checkpoints").display().to_string(),
        },
        ..CheckpointConfig::default()
    });
    let strategy = WatermarkStrategy::for_monotonous_timestamps()
        .with_timestamp_assigner(|v: &u64| *v as i64)
        .with_idleness(Duration::from_millis(20));
    let source = OneQuietSubtask {
        index: 0,
        next: 0,
        release: release.clone(),
        fell_back: fell_back.clone(),
        started: None,
    };
    env.add_source_with_watermarks("sparse", source, strategy)
        .rebalance()
        .transform(
            "release",
            ReleaseOnWatermark {
                release: release.clone(),
            },
        )
        .parallelism(1)
        .add_sink(
            "sink",
            weir_actors::weir::connectors::print::DiscardSink::default(),
        );
    let state = run(env.build().unwrap(), JobOptions::default()).unwrap();
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    // Subtask 1 sends no watermark before it is released: only its idleness lets the
    // downstream minimum advance (without `with_idleness` this waits for the 10 s fallback).
    assert!(release.load(Ordering::SeqCst));
    assert!(
        !fell_back.load(Ordering::SeqCst),
        "subtask 1 ended by its 10 s fallback: its idleness did not release the watermark"
    );
}
