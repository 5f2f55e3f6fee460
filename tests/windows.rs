//! End-to-end: windows fired by timers. An event-time tumbling-window count over out-of-order
//! input commits exactly the failure-free windows with failures injected, and across a
//! stop-with-savepoint restored at another parallelism (open windows and their timers are keyed
//! state in the savepoint); processing-time windows fire from the clock while the source is
//! paused (the test awaits the output, no sleeps); the job-file `window` operator over a JSON
//! file produces the expected windows.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir_actors::weir::connectors::file_sink::{committed_lines, ExactlyOnceFileSink};
use weir_actors::weir::connectors::sequence::SequenceSource;
use weir_actors::weir::graph::JobGraph;
use weir_actors::weir::operator::{OperatorError, Source, SourcePoll, SubtaskInfo};
use weir_actors::weir::state::operator_state::OperatorStateStore;
use weir_actors::weir::state::StateBackendKind;
use weir_actors::weir::status::JobStatus;
use weir_actors::weir::stream::StreamEnvironment;
use weir_actors::weir::time::WatermarkStrategy;
use weir_actors::weir::window::{CountAggregate, TimeWindow, WindowAssigner};
use weir_actors::{run, submit, JobOptions, RestoreSettings};

const RECORDS: u64 = 30_000;
const KEYS: u64 = 7;
const WINDOW_MS: i64 = 100;
/// Timestamps run up to this far behind the record's position.
const DISORDER_MS: i64 = 40;

/// The event time of record `v`: `v` ms, minus a deterministic jitter below [`DISORDER_MS`].
fn timestamp(v: u64) -> i64 {
    v as i64 - ((v.wrapping_mul(2_654_435_761) >> 7) % DISORDER_MS as u64) as i64
}

/// `(key, window start, count)`.
type Window = (u64, i64, u64);

/// numbers (p, bounded out-of-orderness) → inject failures → key_by(v % 7) → tumbling event-
/// time count (p) → exactly-once file sink.
fn windowed_job(dir: &Path, parallelism: u32, fail_at: Arc<Mutex<HashSet<u64>>>) -> JobGraph {
    windowed_job_in(dir, parallelism, fail_at, StateBackendKind::HashMap)
}

fn windowed_job_in(
    dir: &Path,
    parallelism: u32,
    fail_at: Arc<Mutex<HashSet<u64>>>,
    backend: StateBackendKind,
) -> JobGraph {
    let env = common::checkpointed_env("windowed count", dir, parallelism);
    env.set_state_backend(backend);
    env.set_state_local_dir(dir.join("rocksdb"));
    env.set_batch_size(128);
    // Fewer watermarks than records batches: windows fire on a 30 ms beat.
    env.set_auto_watermark_interval(Duration::from_millis(30));
    // The bound covers the jitter: no record is late in any run, so every run's windows agree.
    let strategy =
        WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(DISORDER_MS as u64))
            .with_timestamp_assigner(|v: &u64| timestamp(*v));
    env.add_source_with_watermarks(
        "numbers",
        SequenceSource::new(0, RECORDS).with_rate(60_000.0),
        strategy,
    )
    .map("inject", move |v: u64| {
        if fail_at.lock().unwrap().remove(&v) {
            panic!("injected failure at record {v}");
        }
        v
    })
    .key_by(|v: &u64| v % KEYS)
    .window(WindowAssigner::tumbling(Duration::from_millis(WINDOW_MS as u64)).unwrap())
    .event_time(|v: &u64| timestamp(*v))
    .aggregate(
        "windows",
        CountAggregate,
        |k: &u64, w: &TimeWindow, n: u64| (*k, w.start, n),
    )
    .add_sink("sink", ExactlyOnceFileSink::new(dir.join("out")));
    env.build().expect("valid graph")
}

/// Every window the failure-free run emits, once.
fn expected_windows() -> Vec<Window> {
    let mut counts: BTreeMap<(u64, i64), u64> = BTreeMap::new();
    for v in 0..RECORDS {
        let t = timestamp(v);
        *counts
            .entry((v % KEYS, t - t.rem_euclid(WINDOW_MS)))
            .or_default() += 1;
    }
    counts.into_iter().map(|((k, s), n)| (k, s, n)).collect()
}

fn committed_windows(out: &Path) -> Vec<Window> {
    let mut w: Vec<Window> = committed_lines(out)
        .unwrap_or_default()
        .iter()
        .map(|l| serde_json::from_str(l).expect("a window"))
        .collect();
    w.sort_unstable();
    w
}

#[test]
fn event_time_windows_are_exactly_once_with_failures_injected() {
    for (seed, failures, backend) in [
        (11_u64, 2_usize, StateBackendKind::HashMap),
        (2024, 3, StateBackendKind::HashMap),
        (7, 2, StateBackendKind::RocksDb),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let fail_at: Arc<Mutex<HashSet<u64>>> = Arc::default();
        let mut rng = common::Rng(seed);
        while fail_at.lock().unwrap().len() < failures {
            fail_at.lock().unwrap().insert(rng.below(RECORDS));
        }
        let state = run(
            windowed_job_in(dir.path(), 2, fail_at.clone(), backend),
            JobOptions::default(),
        )
        .unwrap();
        assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
        assert!(fail_at.lock().unwrap().is_empty(), "every failure fired");
        assert_eq!(state.restarts as usize, failures);
        assert!(
            committed_windows(&dir.path().join("out")) == expected_windows(),
            "seed {seed}: the committed windows differ from the failure-free ones"
        );
    }
}

#[test]
fn open_windows_and_their_timers_survive_a_savepoint_restored_at_another_parallelism() {
    let dir = tempfile::tempdir().unwrap();
    let savepoints = dir.path().join("savepoints");
    let first = actix::System::new().block_on(async {
        let mut job = submit(
            windowed_job(dir.path(), 2, Arc::default()),
            JobOptions::default(),
        )
        .unwrap();
        let s = job
            .wait_for(|s| s.completed_checkpoints >= 3 || s.status.is_terminal())
            .await;
        assert_eq!(s.status, JobStatus::Running, "{:?}", s.failure);
        let savepoint = job
            .stop_with_savepoint(Some(savepoints.display().to_string()), false)
            .await
            .expect("stop with savepoint");
        let end = job.wait().await;
        assert_eq!(end.status, JobStatus::Finished, "{:?}", end.failure);
        savepoint
    });
    let before = committed_windows(&dir.path().join("out")).len();
    assert!(
        before < expected_windows().len(),
        "the job was stopped before its input ended ({before} windows committed)"
    );
    // Restored into the other backend: windows and timers are in the canonical format.
    let state = run(
        windowed_job_in(dir.path(), 3, Arc::default(), StateBackendKind::RocksDb),
        JobOptions {
            restore: Some(RestoreSettings::new(&first.external_path)),
            ..JobOptions::default()
        },
    )
    .unwrap();
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    assert!(
        committed_windows(&dir.path().join("out")) == expected_windows(),
        "after the rescaled restore the committed windows differ from the failure-free ones"
    );
}

/// Emits `(key, 0)` for keys `0..3`, then nothing — idle, never exhausted — until `release`.
#[derive(Clone)]
struct Paused {
    emitted: bool,
    release: Arc<AtomicBool>,
}

impl Source<(u64, u64)> for Paused {
    fn open(&mut self, _: &SubtaskInfo, _: &mut OperatorStateStore) -> Result<(), OperatorError> {
        Ok(())
    }

    fn poll(
        &mut self,
        out: &mut Vec<(u64, u64)>,
        _max: usize,
    ) -> Result<SourcePoll, OperatorError> {
        if !self.emitted {
            self.emitted = true;
            out.extend((0..3).map(|k| (k, 0)));
            out.push((0, 0));
            return Ok(SourcePoll::Ready);
        }
        if self.release.load(Ordering::Relaxed) {
            return Ok(SourcePoll::Exhausted);
        }
        Ok(SourcePoll::Idle(Duration::from_millis(5)))
    }

    fn snapshot(&mut self, _: &mut OperatorStateStore) -> Result<(), OperatorError> {
        Ok(())
    }
}

#[test]
fn processing_time_windows_fire_from_the_clock_while_the_source_is_paused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let release = Arc::new(AtomicBool::new(false));
    let env = common::checkpointed_env("processing-time windows", dir.path(), 1);
    env.add_source(
        "paused",
        Paused {
            emitted: false,
            release: release.clone(),
        },
    )
    .key_by(|r: &(u64, u64)| r.0)
    .window(WindowAssigner::tumbling(Duration::from_millis(200)).unwrap())
    .process(
        "windows",
        |k: &u64, _w: &TimeWindow, records: &[(u64, u64)], out: &mut Vec<(u64, usize)>| {
            out.push((*k, records.len()));
        },
    )
    .add_sink("sink", ExactlyOnceFileSink::new(&out));
    let graph = env.build().unwrap();

    let committed = actix::System::new().block_on(async {
        let mut job = submit(graph, JobOptions::default()).unwrap();
        // The source emitted its records and is idle: only the clock can fire the windows.
        // Await their commit (the deadline fails the test instead of hanging it).
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut committed = Vec::new();
        while committed.len() < 3 && Instant::now() < deadline {
            job.wait_for(|s| s.completed_checkpoints >= 1 || s.status.is_terminal())
                .await;
            let next = job.state().completed_checkpoints + 1;
            job.wait_for(move |s| s.completed_checkpoints >= next || s.status.is_terminal())
                .await;
            committed = committed_lines(&out).unwrap_or_default();
        }
        assert!(!release.load(Ordering::Relaxed));
        release.store(true, Ordering::Relaxed);
        let end = job.wait().await;
        assert_eq!(end.status, JobStatus::Finished, "{:?}", end.failure);
        committed
    });
    let mut windows: Vec<(u64, usize)> = committed
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    windows.sort_unstable();
    // Keys 0..3 in one 200 ms window (key 0 twice), unless the first records straddled a
    // window boundary: then one key's records may sit in two windows. Either way, all four
    // records, fired while the source was still paused.
    assert_eq!(windows.iter().map(|w| w.1).sum::<usize>(), 4, "{windows:?}");
    assert!(windows.iter().all(|w| w.0 < 3), "{windows:?}");
}

/// The ready job file `config/jobs/windowed-clicks.yaml` (JSON lines, event time, 1 s windows)
/// run by the `weir` binary, its output redirected: one line per user and second, counting
/// every click of the data file once.
#[test]
fn the_windowed_clicks_job_file_counts_every_click_once_per_window() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/jobs");
    let out = dir.path().join("out");
    let text = std::fs::read_to_string(root.join("windowed-clicks.yaml"))
        .unwrap()
        .replace("/tmp/weir-out/windowed-clicks", &out.display().to_string())
        .replace("/tmp/weir/", &format!("{}/", dir.path().display()))
        .replace(
            "path: data/clicks.jsonl",
            &format!("path: {}", root.join("data/clicks.jsonl").display()),
        );
    let job = dir.path().join("job.yaml");
    std::fs::write(&job, text).unwrap();
    let run = common::process::weir(dir.path(), &["run", job.to_str().unwrap()]);
    assert!(
        run.status.success(),
        "weir run: {}",
        common::process::stderr(&run)
    );

    let mut expected: BTreeMap<(String, i64), u64> = BTreeMap::new();
    let data = std::fs::read_to_string(root.join("data/clicks.jsonl")).unwrap();
    for line in data.lines() {
        let click: serde_json::Value = serde_json::from_str(line).unwrap();
        let ts = click["ts"].as_i64().unwrap();
        let user = click["user"].as_str().unwrap().to_owned();
        *expected
            .entry((user, ts - ts.rem_euclid(1000)))
            .or_default() += 1;
    }
    let mut got: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for line in committed_lines(&out).unwrap() {
        let w: serde_json::Value = serde_json::from_str(&line).unwrap();
        let start = w["window_start"].as_i64().unwrap();
        assert_eq!(w["window_end"].as_i64().unwrap(), start + 1000, "{line}");
        let key = (w["key"].as_str().unwrap().to_owned(), start);
        assert!(
            got.insert(key, w["count"].as_u64().unwrap()).is_none(),
            "twice: {line}"
        );
    }
    assert_eq!(got, expected);
}

/// A user's keyed process function with event-time timers (Flink's `KeyedProcessFunction`
/// shape): per key, the time of its last record in value state and a timer 100 ms after it,
/// moved on every record; when the timer fires the key's burst has ended: emit `(key, end)`.
#[derive(Clone, Default)]
struct BurstEnd {
    last: Option<weir_actors::weir::state::ValueState<i64>>,
}

const QUIET_MS: i64 = 100;

impl weir_actors::weir::operator::KeyedProcessFunction<u64, u64, (u64, i64)> for BurstEnd {
    fn open(
        &mut self,
        _: &SubtaskInfo,
        state: &mut weir_actors::weir::state::KeyedStateStore<u64>,
    ) -> Result<(), OperatorError> {
        self.last = Some(state.value("last")?);
        Ok(())
    }

    fn process(
        &mut self,
        _key: &u64,
        v: u64,
        state: &mut weir_actors::weir::state::KeyedStateStore<u64>,
        _out: &mut Vec<(u64, i64)>,
    ) -> Result<(), OperatorError> {
        let last = self.last.unwrap();
        let ts = burst_time(v);
        let previous = last.value(state);
        last.update(state, ts);
        let mut timers = state.timer_service()?;
        if let Some(p) = previous {
            timers.delete_event_time_timer(p + QUIET_MS);
        }
        timers.register_event_time_timer(ts + QUIET_MS);
        Ok(())
    }

    fn on_timer(
        &mut self,
        timestamp: i64,
        domain: weir_actors::weir::time::TimeDomain,
        key: &u64,
        state: &mut weir_actors::weir::state::KeyedStateStore<u64>,
        out: &mut Vec<(u64, i64)>,
    ) -> Result<(), OperatorError> {
        assert_eq!(domain, weir_actors::weir::time::TimeDomain::EventTime);
        assert_eq!(self.last.unwrap().value(state), Some(timestamp - QUIET_MS));
        out.push((*key, timestamp));
        Ok(())
    }
}

/// Record `v`'s time: `v` ms.
fn burst_time(v: u64) -> i64 {
    v as i64
}

/// Keys 0..5 in even thousands, 0..4 in odd ones: key 4 pauses for 1000 ms while the others
/// move the watermark on, so each of its bursts ends (its timer fires) in between; the other
/// keys' timers are moved on every record and fire only at the end.
fn burst_key(v: u64) -> u64 {
    if (v / 1000).is_multiple_of(2) {
        v % 5
    } else {
        v % 4
    }
}

#[test]
fn a_keyed_process_function_s_timers_fire_exactly_once_across_failures_and_a_rescale() {
    let dir = tempfile::tempdir().unwrap();
    let build = |parallelism: u32, fail_at: Arc<Mutex<HashSet<u64>>>| {
        let env = common::checkpointed_env("burst ends", dir.path(), parallelism);
        env.set_batch_size(64);
        // One source subtask: each key's records arrive in time order.
        env.add_source_with_watermarks(
            "numbers",
            SequenceSource::new(0, 12_000).with_rate(20_000.0),
            WatermarkStrategy::for_monotonous_timestamps()
                .with_timestamp_assigner(|v: &u64| burst_time(*v)),
        )
        .parallelism(1)
        .map("inject", move |v: u64| {
            if fail_at.lock().unwrap().remove(&v) {
                panic!("injected failure at record {v}");
            }
            v
        })
        .parallelism(1)
        .key_by(|v: &u64| burst_key(*v))
        .process("burst-ends", BurstEnd::default())
        .add_sink("sink", ExactlyOnceFileSink::new(dir.path().join("out")));
        env.build().unwrap()
    };
    // Key 4's last record of each even thousand, every other key's last record; plus the quiet
    // time.
    let mut expected: Vec<(u64, i64)> = (0..12_000_u64)
        .filter(|&v| {
            let k = burst_key(v);
            let next_of_key = (v + 1..12_000).find(|&w| burst_key(w) == k);
            next_of_key.is_none_or(|w| burst_time(w) > burst_time(v) + QUIET_MS)
        })
        .map(|v| (burst_key(v), burst_time(v) + QUIET_MS))
        .collect();
    expected.sort_unstable();
    let committed = || {
        let mut c: Vec<(u64, i64)> = committed_lines(dir.path().join("out"))
            .unwrap_or_default()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        c.sort_unstable();
        c
    };

    // Failures, then a stop with a savepoint mid-way, restored at another parallelism.
    let fail_at: Arc<Mutex<HashSet<u64>>> = Arc::new(Mutex::new([1_500, 4_321].into()));
    let savepoint = actix::System::new().block_on(async {
        let mut job = submit(build(2, fail_at.clone()), JobOptions::default()).unwrap();
        let s = job
            .wait_for(|s| {
                (s.status == JobStatus::Running && s.restarts >= 2 && s.completed_checkpoints >= 6)
                    || s.status.is_terminal()
            })
            .await;
        assert_eq!(s.status, JobStatus::Running, "{:?}", s.failure);
        let sp = job
            .stop_with_savepoint(Some(dir.path().join("sp").display().to_string()), false)
            .await
            .expect("stop with savepoint");
        job.wait().await;
        sp
    });
    assert!(fail_at.lock().unwrap().is_empty());
    assert!(committed().len() < expected.len(), "stopped before the end");
    let state = run(
        build(3, Arc::default()),
        JobOptions {
            restore: Some(RestoreSettings::new(&savepoint.external_path)),
            ..JobOptions::default()
        },
    )
    .unwrap();
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    assert_eq!(committed(), expected);
}

/// Registers a processing-time timer at the end of time for every record.
#[derive(Clone)]
struct FarFuture;

impl weir_actors::weir::operator::KeyedProcessFunction<u64, u64, u64> for FarFuture {
    fn open(
        &mut self,
        _: &SubtaskInfo,
        _: &mut weir_actors::weir::state::KeyedStateStore<u64>,
    ) -> Result<(), OperatorError> {
        Ok(())
    }

    fn process(
        &mut self,
        _key: &u64,
        v: u64,
        state: &mut weir_actors::weir::state::KeyedStateStore<u64>,
        out: &mut Vec<u64>,
    ) -> Result<(), OperatorError> {
        state
            .timer_service()?
            .register_processing_time_timer(i64::MAX);
        out.push(v);
        Ok(())
    }
}

#[test]
fn a_processing_time_timer_at_the_end_of_time_neither_fires_nor_breaks_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let env = StreamEnvironment::new("far future");
    env.set_parallelism(1);
    env.add_source("numbers", SequenceSource::new(0, 100))
        .key_by(|v: &u64| v % 3)
        .process("far", FarFuture)
        .add_sink("sink", ExactlyOnceFileSink::new(dir.path().join("out")));
    let state = run(env.build().unwrap(), JobOptions::default()).unwrap();
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    assert_eq!(committed_lines(dir.path().join("out")).unwrap().len(), 100);
}
