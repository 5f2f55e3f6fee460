//! Recovery from damaged state, end to end: a job whose latest checkpoint was damaged after it
//! completed falls back to the previous one and still commits exactly the failure-free output;
//! a damaged snapshot given with `weir run -s` fails fast with a sentence naming the file, and
//! nothing is deleted.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::CountJob;
use weir_actors::weir::checkpoint::{CheckpointConfig, ExternalizedRetention};
use weir_actors::weir::connectors::file_sink::ExactlyOnceFileSink;
use weir_actors::weir::connectors::sequence::SequenceSource;
use weir_actors::weir::functions::Count;
use weir_actors::weir::graph::JobGraph;
use weir_actors::weir::restart::RestartStrategy;
use weir_actors::weir::status::JobStatus;
use weir_actors::weir::stream::StreamEnvironment;
use weir_actors::{submit, JobOptions};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// The keyed count of [`CountJob`], with a switch that fails the next record once, manual
/// checkpoints only (so that none completes behind the test's back) and every state in files.
fn graph(job: &CountJob, fail_next: Arc<AtomicBool>) -> JobGraph {
    let env = StreamEnvironment::new("keyed count");
    env.set_parallelism(job.parallelism);
    env.set_checkpoint_config(CheckpointConfig {
        interval: None,
        num_retained: 3,
        inline_threshold: 0,
        externalized_retention: ExternalizedRetention::RetainOnCancellation,
        ..job.checkpoint_config()
    });
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 5,
        delay: Duration::from_millis(5),
    });
    let keys = job.keys;
    env.add_source(
        "numbers",
        SequenceSource::new(0, job.records).with_rate(job.rate.unwrap()),
    )
    .map("inject", move |v: u64| {
        if fail_next.swap(false, Ordering::SeqCst) {
            panic!("injected failure at record {v}");
        }
        v
    })
    .key_by(move |v: &u64| v % keys)
    .process("count", Count::default())
    .add_sink("sink", ExactlyOnceFileSink::new(&job.output));
    env.build().expect("valid graph")
}

fn files_in(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_damaged_latest_checkpoint_falls_back_to_the_previous_one_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = CountJob::new(dir.path());
    job.records = 30_000;
    job.rate = Some(15_000.0);
    let fail_next = Arc::new(AtomicBool::new(false));
    let g = graph(&job, fail_next.clone());
    let state = actix::System::new().block_on(async move {
        let mut handle = submit(g, JobOptions::default()).unwrap();
        handle.wait_for(|s| s.status == JobStatus::Running).await;
        let mut completed = Vec::new();
        for _ in 0..3 {
            completed.push(handle.checkpoint(false).await.expect("checkpoint"));
        }
        let latest = completed.last().unwrap();
        // Damage the latest checkpoint after it completed: truncate a keyed state file.
        let chk = PathBuf::from(&latest.external_path);
        let keyed = files_in(&chk, "count-0-keyed");
        assert_eq!(keyed.len(), 1, "{keyed:?}");
        let bytes = std::fs::read(&keyed[0]).unwrap();
        std::fs::write(&keyed[0], &bytes[..bytes.len() / 2]).unwrap();
        fail_next.store(true, Ordering::SeqCst);
        let state = handle.wait().await;
        let stats = handle.checkpoint_stats().await;
        (state, completed, stats, chk)
    });
    let (state, completed, stats, damaged) = state;
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    assert!(state.restarts >= 1, "{state:?}");
    let restored = stats
        .expect("statistics")
        .latest_restored
        .expect("the fallback shows as restored");
    assert_eq!(
        restored.id, completed[1].id,
        "restored the previous checkpoint"
    );
    assert_eq!(restored.external_path, completed[1].external_path);
    assert!(
        damaged.join("_metadata").exists(),
        "the damaged checkpoint is left for inspection"
    );
    assert_eq!(job.committed_sorted(), job.expected());
}

/// Runs `weir run JOB -s SNAPSHOT` and returns its exit code and stderr. A run that has not
/// ended after a minute is killed and reported: it would be restarting the damaged state
/// forever, the bug this guards against.
fn run_restoring(job_file: &Path, snapshot: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(WEIR)
        .args([
            "run",
            job_file.to_str().unwrap(),
            "-s",
            snapshot.to_str().unwrap(),
        ])
        .args(["-D", "rest.port=0"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("`weir run -s` with damaged state did not end: it keeps restarting");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every file under `dir`, with its size.
fn listing(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut all = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                all.push((e.path(), meta.len()));
            }
        }
    }
    all.sort();
    all
}

/// Writes a job file into `dir`: a sequence of `records` (at `records` per second), a keyed
/// count and a discarding sink, checkpointing every 50 ms into `dir/checkpoints` and retaining
/// the last checkpoint when the job ends, plus the `extra` config line. Returns the job file
/// and the checkpoint directory.
fn counting_job_file(dir: &Path, records: u64, extra: &str) -> (PathBuf, PathBuf) {
    let checkpoints = dir.join("checkpoints");
    let job_file = dir.join("job.yaml");
    std::fs::write(
        &job_file,
        format!(
            "name: counting\n\
             config:\n  \
               execution.checkpointing.interval: 50 ms\n  \
               execution.checkpointing.dir: {}\n  \
               execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION\n  \
               parallelism.default: 1\n  \
               {extra}\n\
             pipeline:\n  \
               - source: sequence\n    uid: numbers\n    to: {records}\n    rate: {records}\n  \
               - operator: count\n    uid: counts\n    key-by: value\n  \
               - sink: discard\n    uid: out\n",
            checkpoints.display()
        ),
    )
    .unwrap();
    (job_file, checkpoints)
}

/// Something done to a state file.
type Damage<'a> = dyn Fn(&Path) + 'a;

#[test]
fn every_kind_of_damage_to_a_state_file_fails_weir_run_s_fast_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (job_file, checkpoints) = counting_job_file(
        dir.path(),
        3_000,
        "execution.checkpointing.data-inline-threshold: 0",
    );
    let out = Command::new(WEIR)
        .args(["run", job_file.to_str().unwrap(), "-D", "rest.port=0"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // RETAIN_ON_CANCELLATION keeps the finished job's last checkpoint.
    let job_dir = std::fs::read_dir(&checkpoints)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let chk = files_in(&job_dir, "chk-")
        .pop()
        .expect("a retained checkpoint");
    let keyed = files_in(&chk, "counts-0-keyed")
        .pop()
        .expect("a keyed state file");
    let original = std::fs::read(&keyed).unwrap();
    let damages: [(&str, &Damage); 5] = [
        ("truncated", &|p| {
            std::fs::write(p, &original[..original.len() / 2]).unwrap()
        }),
        ("bit-flipped", &|p| {
            let mut b = original.clone();
            let mid = b.len() / 2;
            b[mid] ^= 0x10;
            std::fs::write(p, b).unwrap()
        }),
        ("emptied", &|p| std::fs::write(p, b"").unwrap()),
        ("replaced by a directory", &|p| {
            std::fs::remove_file(p).unwrap();
            std::fs::create_dir(p).unwrap();
        }),
        ("deleted", &|p| std::fs::remove_file(p).unwrap()),
    ];
    let name = keyed.file_name().unwrap().to_str().unwrap().to_owned();
    for (what, damage) in damages {
        damage(&keyed);
        let before = listing(&checkpoints);
        let (code, stderr) = run_restoring(&job_file, &chk);
        assert_eq!(code, Some(1), "{what}: {stderr}");
        assert!(
            stderr.contains(&name),
            "{what}: the error names the file: {stderr}"
        );
        assert!(
            stderr.contains("counts") && stderr.contains("subtask 0"),
            "{what}: the error names the operator and subtask: {stderr}"
        );
        assert_eq!(listing(&checkpoints), before, "{what}: nothing is deleted");
        // Repair for the next kind of damage.
        if keyed.is_dir() {
            std::fs::remove_dir(&keyed).unwrap();
        }
        std::fs::write(&keyed, &original).unwrap();
    }
}

/// Registers the state `count` as a string: what `Count` saved as a number cannot be read.
#[derive(Clone, Default)]
struct CountAsText {
    state: Option<weir_actors::weir::state::ValueState<String>>,
}

impl weir_actors::weir::operator::KeyedProcessFunction<u64, u64, (u64, u64)> for CountAsText {
    fn open(
        &mut self,
        _: &weir_actors::weir::operator::SubtaskInfo,
        state: &mut weir_actors::weir::state::KeyedStateStore<u64>,
    ) -> Result<(), weir_actors::weir::operator::OperatorError> {
        self.state = Some(state.value("count")?);
        Ok(())
    }

    fn process(
        &mut self,
        key: &u64,
        _: u64,
        state: &mut weir_actors::weir::state::KeyedStateStore<u64>,
        out: &mut Vec<(u64, u64)>,
    ) -> Result<(), weir_actors::weir::operator::OperatorError> {
        let handle = self.state.as_ref().expect("opened");
        let n = handle.get(state).map_or(0, |s| s.len() as u64);
        out.push((*key, n));
        Ok(())
    }
}

#[test]
fn restored_state_of_another_type_fails_the_job_at_once_whatever_the_restart_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = CountJob::new(dir.path());
    job.records = 1_000_000;
    job.rate = Some(20_000.0);
    let savepoints = dir.path().join("savepoints").display().to_string();
    let g = job.graph();
    let savepoint = actix::System::new().block_on(async move {
        let mut handle = submit(g, JobOptions::default()).unwrap();
        handle
            .wait_for(|s| s.status == JobStatus::Running && s.completed_checkpoints >= 1)
            .await;
        let sp = handle.stop_with_savepoint(Some(savepoints), false).await;
        handle.wait().await;
        sp.expect("a savepoint").external_path
    });

    let env = StreamEnvironment::new("keyed count, state of another type");
    env.set_parallelism(job.parallelism);
    env.set_checkpoint_config(job.checkpoint_config());
    // Retrying would take a long time: a restart loop would show in `restarts`.
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 1_000,
        delay: Duration::from_millis(10),
    });
    let keys = job.keys;
    env.add_source("numbers", SequenceSource::new(0, job.records))
        .map("inject", |v: u64| v)
        .key_by(move |v: &u64| v % keys)
        .process("count", CountAsText::default())
        .add_sink("sink", ExactlyOnceFileSink::new(dir.path().join("other")));
    let g = env.build().unwrap();
    let options = JobOptions {
        restore: Some(weir_actors::RestoreSettings::new(savepoint)),
        ..JobOptions::default()
    };
    let state = weir_actors::run(g, options).unwrap();
    assert_eq!(state.status, JobStatus::Failed);
    assert_eq!(state.restarts, 0, "damaged state is not retried: {state:?}");
    let failure = state.failure.unwrap_or_default();
    assert!(
        failure.contains("`count`") && failure.contains("subtask"),
        "{failure}"
    );
}

#[test]
fn weir_run_s_latest_resumes_the_newest_complete_snapshot_or_starts_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let (job_file, checkpoints) = counting_job_file(dir.path(), 2_000, "");
    let run_latest = || {
        let out = Command::new(WEIR)
            .args(["run", job_file.to_str().unwrap(), "-s", "latest"])
            .args(["-D", "rest.port=0"])
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let first = run_latest();
    assert!(
        first.contains("Nothing to resume") && first.contains("starting fresh"),
        "{first}"
    );
    assert!(!first.contains("Restoring from"), "{first}");

    let job_dir = std::fs::read_dir(&checkpoints)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let retained = files_in(&job_dir, "chk-")
        .pop()
        .expect("a retained checkpoint");
    let second = run_latest();
    let chosen = format!("Resuming from the latest snapshot: {}", retained.display());
    assert!(second.contains(&chosen), "{second}");
    assert!(second.contains("Restoring from"), "{second}");
}
