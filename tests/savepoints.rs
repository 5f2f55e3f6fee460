//! Savepoints end to end: stop-with-savepoint and rescaled restores (golden output), moving a
//! savepoint, topology changes, concurrent savepoints during a checkpoint storm, requests a job
//! cannot serve, dispose, and claim modes.

mod common;

use std::path::Path;
use std::time::Duration;

use common::CountJob;
use weir_actors::weir::checkpoint::storage::dispose_snapshot;
use weir_actors::weir::checkpoint::{
    CheckpointConfig, CheckpointingMode, ExternalizedRetention, StorageConfig,
};
use weir_actors::weir::config::ClaimMode;
use weir_actors::weir::connectors::file_sink::{committed_lines, ExactlyOnceFileSink};
use weir_actors::weir::connectors::sequence::SequenceSource;
use weir_actors::weir::element::SavepointFormat;
use weir_actors::weir::functions::Count;
use weir_actors::weir::graph::JobGraph;
use weir_actors::weir::operator::{Operator, OperatorError, SubtaskInfo};
use weir_actors::weir::state::operator_state::OperatorStateStore;
use weir_actors::weir::status::JobStatus;
use weir_actors::weir::stream::StreamEnvironment;
use weir_actors::{
    run, submit, CompletedCheckpoint, ControlError, JobOptions, JobState, RestoreSettings,
};

fn restore(path: &str) -> JobOptions {
    JobOptions {
        restore: Some(RestoreSettings::new(path)),
        ..JobOptions::default()
    }
}

/// Runs `graph` until `checkpoints` have completed, then stops it with a savepoint in `dir`.
fn run_then_stop(
    graph: JobGraph,
    options: JobOptions,
    checkpoints: u64,
    dir: &Path,
) -> (CompletedCheckpoint, JobState) {
    actix::System::new().block_on(async {
        let mut job = submit(graph, options).unwrap();
        let s = job
            .wait_for(|s| s.completed_checkpoints >= checkpoints || s.status.is_terminal())
            .await;
        assert_eq!(s.status, JobStatus::Running, "{:?}", s.failure);
        let savepoint = job
            .stop_with_savepoint(Some(dir.display().to_string()), false)
            .await
            .expect("stop with savepoint");
        (savepoint, job.wait().await)
    })
}

#[test]
fn stop_and_rescale_1_to_3_then_3_to_2_commits_the_failure_free_output() {
    let dir = tempfile::tempdir().unwrap();
    let savepoints = dir.path().join("savepoints");
    let mut job = CountJob::new(dir.path());
    job.records = 40_000;
    job.rate = Some(40_000.0);

    job.parallelism = 1;
    let (first, state) = run_then_stop(job.graph(), JobOptions::default(), 2, &savepoints);
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    let name = Path::new(&first.external_path)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        name.starts_with(&format!("savepoint-{}-", &state.job_id.to_string()[..6])),
        "{name}"
    );
    let committed_after_stop: usize = job.committed().values().map(Vec::len).sum();
    assert!(
        committed_after_stop > 0,
        "stop-with-savepoint commits the sink's data"
    );

    job.parallelism = 3;
    let (second, state) = run_then_stop(job.graph(), restore(&first.external_path), 2, &savepoints);
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    assert!(
        second.id > first.id,
        "checkpoint ids keep growing across restores"
    );

    job.parallelism = 2;
    job.rate = None;
    let state = run(job.graph(), restore(&second.external_path)).unwrap();
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    assert_eq!(job.committed_sorted(), job.expected());
    // Savepoints belong to the user: both are still there.
    assert!(Path::new(&first.external_path).join("_metadata").exists());
    assert!(Path::new(&second.external_path).join("_metadata").exists());
}

#[test]
fn a_moved_savepoint_restores_from_its_new_place() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = CountJob::new(dir.path());
    job.records = 30_000;
    job.rate = Some(20_000.0);
    // No periodic checkpoints: nothing but the restore commits, so the output is exactly once.
    let config = CheckpointConfig {
        interval: None,
        ..job.checkpoint_config()
    };
    let savepoint = actix::System::new().block_on(async {
        let mut handle = submit(job.graph_with(config.clone()), JobOptions::default()).unwrap();
        handle.wait_for(|s| s.status == JobStatus::Running).await;
        let sp = handle
            .savepoint(
                Some(dir.path().join("sp").display().to_string()),
                SavepointFormat::Canonical,
            )
            .await
            .unwrap();
        handle.cancel().await;
        assert_eq!(handle.wait().await.status, JobStatus::Canceled);
        sp
    });
    assert!(
        job.committed().is_empty(),
        "an intermediate savepoint commits nothing"
    );
    let moved = dir.path().join("moved");
    std::fs::rename(&savepoint.external_path, &moved).unwrap();

    job.records = 30_000;
    job.rate = None;
    let state = run(
        job.graph_with(config),
        restore(&moved.display().to_string()),
    )
    .unwrap();
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    assert_eq!(job.committed_sorted(), job.expected());
}

/// A savepoint of the count job, taken after one checkpoint. The source is slowed so that the
/// job is still running then, however loaded the machine.
fn count_savepoint(job: &CountJob, dir: &Path) -> String {
    let mut slow = job.clone();
    slow.rate = Some(5_000.0);
    let (sp, state) = run_then_stop(slow.graph(), JobOptions::default(), 1, dir);
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    sp.external_path
}

#[test]
fn topology_changes_follow_flinks_rules() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = CountJob::new(dir.path());
    let savepoint = count_savepoint(&job, &dir.path().join("sp"));
    job.rate = None;

    // The stateful keyed operator renamed: its state has nowhere to go.
    let mut renamed = job.graph();
    renamed.vertices[2].uid = "count-v2".into();
    let state = run(renamed.clone(), restore(&savepoint)).unwrap();
    assert_eq!(state.status, JobStatus::Failed);
    let failure = state.failure.unwrap();
    assert!(failure.contains("`count`"), "{failure}");
    assert!(failure.contains("non-restored"), "{failure}");

    // Allowed: the old state is dropped and the job runs.
    let options = JobOptions {
        restore: Some(RestoreSettings {
            allow_non_restored_state: true,
            ..RestoreSettings::new(&savepoint)
        }),
        ..JobOptions::default()
    };
    assert_eq!(run(renamed, options).unwrap().status, JobStatus::Finished);

    // A stateless operator removed (and one added): nothing blocks.
    let mut changed = job.graph();
    changed.vertices[1].uid = "inject-v2".into();
    let state = run(changed, restore(&savepoint)).unwrap();
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);

    // A different max parallelism for keyed state is refused, saying so.
    let mut rekeyed = job.graph();
    rekeyed.vertices[2].max_parallelism = 256;
    let state = run(rekeyed, restore(&savepoint)).unwrap();
    assert_eq!(state.status, JobStatus::Failed);
    let failure = state.failure.unwrap();
    assert!(
        failure.contains("max parallelism 256") && failure.contains("128"),
        "{failure}"
    );
}

#[test]
fn savepoints_during_a_checkpoint_storm_all_complete_and_commit_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = CountJob::new(dir.path());
    job.records = 60_000;
    job.rate = Some(60_000.0);
    job.interval = Duration::from_millis(10);
    let sp_dir = dir.path().join("sp").display().to_string();
    let (savepoints, state) = actix::System::new().block_on(async {
        let mut handle = submit(job.graph(), JobOptions::default()).unwrap();
        handle.wait_for(|s| s.completed_checkpoints >= 2).await;
        let (a, b) = futures::join!(
            handle.savepoint(Some(sp_dir.clone()), SavepointFormat::Canonical),
            handle.savepoint(Some(sp_dir.clone()), SavepointFormat::Native),
        );
        let c = handle
            .savepoint(Some(sp_dir.clone()), SavepointFormat::Canonical)
            .await;
        (vec![a, b, c], handle.wait().await)
    });
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    let paths: std::collections::HashSet<String> = savepoints
        .into_iter()
        .map(|s| s.expect("savepoint completes").external_path)
        .collect();
    assert_eq!(paths.len(), 3);
    for p in &paths {
        assert!(Path::new(p).join("_metadata").exists(), "{p}");
    }
    assert_eq!(job.committed_sorted(), job.expected());
}

#[test]
fn requests_a_job_cannot_serve_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = CountJob::new(dir.path());
    job.records = 1_000_000_000;
    job.rate = Some(10_000.0);
    actix::System::new().block_on(async {
        let mut handle = submit(job.graph(), JobOptions::default()).unwrap();
        handle.wait_for(|s| s.status == JobStatus::Running).await;
        // No directory given and none configured.
        let e = handle
            .savepoint(None, SavepointFormat::Canonical)
            .await
            .unwrap_err();
        assert!(matches!(e, ControlError::Storage(_)), "{e}");
        assert!(e.to_string().contains("savepoint"), "{e}");
        // A savepoint while a stop is in progress.
        let sp_dir = Some(dir.path().join("sp").display().to_string());
        let (stop, late) = futures::join!(
            handle.stop_with_savepoint(sp_dir.clone(), false),
            handle.savepoint(sp_dir.clone(), SavepointFormat::Canonical),
        );
        stop.unwrap();
        assert!(
            matches!(late, Err(ControlError::Stopping { .. })),
            "{late:?}"
        );
        assert_eq!(handle.wait().await.status, JobStatus::Finished);
        // After the end.
        let e = handle.checkpoint(false).await.unwrap_err();
        assert!(
            matches!(
                e,
                ControlError::NotRunning {
                    status: JobStatus::Finished,
                    ..
                }
            ),
            "{e}"
        );
    });
}

#[test]
fn dispose_removes_a_savepoint() {
    let dir = tempfile::tempdir().unwrap();
    let job = CountJob::new(dir.path());
    let savepoint = count_savepoint(&job, &dir.path().join("sp"));
    actix::System::new().block_on(async {
        dispose_snapshot(&savepoint).await.unwrap();
    });
    assert!(!Path::new(&savepoint).exists());
}

#[test]
fn no_claim_keeps_the_restored_checkpoint_and_claim_deletes_it_once_subsumed() {
    for (mode, kept) in [(ClaimMode::NoClaim, true), (ClaimMode::Claim, false)] {
        let dir = tempfile::tempdir().unwrap();
        let mut job = CountJob::new(dir.path());
        job.rate = Some(20_000.0);
        let config = CheckpointConfig {
            externalized_retention: ExternalizedRetention::RetainOnCancellation,
            ..job.checkpoint_config()
        };
        let canceled = actix::System::new().block_on(async {
            let mut h = submit(job.graph_with(config), JobOptions::default()).unwrap();
            h.wait_for(|s| s.completed_checkpoints >= 1).await;
            h.cancel().await;
            h.wait().await
        });
        let chk = canceled.latest_completed.unwrap().external_path;
        job.rate = None;
        let options = JobOptions {
            restore: Some(RestoreSettings {
                claim_mode: mode,
                ..RestoreSettings::new(&chk)
            }),
            ..JobOptions::default()
        };
        let state = run(job.graph(), options).unwrap();
        assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
        assert_eq!(Path::new(&chk).join("_metadata").exists(), kept, "{mode:?}");
    }
}

/// Passes records through; subtask 0 is slower than its input (20 ms per batch), so a backlog
/// builds on its channel and its barriers arrive well after the other channel's.
#[derive(Clone)]
struct SlowFirstSubtask(bool);

impl Operator<u64, u64> for SlowFirstSubtask {
    fn open(
        &mut self,
        info: &SubtaskInfo,
        _: &mut OperatorStateStore,
    ) -> Result<(), OperatorError> {
        self.0 = info.index == 0;
        Ok(())
    }

    fn process(&mut self, input: Vec<u64>, out: &mut Vec<u64>) -> Result<(), OperatorError> {
        if self.0 {
            // Simulated slowness (skew), not synchronisation.
            std::thread::sleep(Duration::from_millis(20));
        }
        out.extend(input);
        Ok(())
    }
}

#[test]
fn savepoints_are_aligned_even_in_at_least_once_mode() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let graph = |rate: Option<f64>| {
        let env = StreamEnvironment::new("skewed count");
        env.set_parallelism(2);
        env.set_checkpoint_config(CheckpointConfig {
            mode: CheckpointingMode::AtLeastOnce,
            storage: StorageConfig::FileSystem {
                dir: dir.path().join("chk").display().to_string(),
            },
            ..CheckpointConfig::default()
        });
        let mut source = SequenceSource::new(0, 40_000);
        if let Some(r) = rate {
            source = source.with_rate(r);
        }
        env.add_source("numbers", source)
            .transform("skew", SlowFirstSubtask(false))
            .key_by(|v: &u64| v % 50)
            .process("count", Count::default())
            .add_sink("sink", ExactlyOnceFileSink::new(&out));
        env.build().unwrap()
    };
    let savepoint = actix::System::new().block_on(async {
        let mut job = submit(graph(Some(40_000.0)), JobOptions::default()).unwrap();
        job.wait_for(|s| s.status == JobStatus::Running).await;
        let sp_dir = dir.path().join("sp").display().to_string();
        let mut last = None;
        for _ in 0..3 {
            last = Some(
                job.savepoint(Some(sp_dir.clone()), SavepointFormat::Canonical)
                    .await
                    .unwrap(),
            );
        }
        job.cancel().await;
        assert_eq!(job.wait().await.status, JobStatus::Canceled);
        last.unwrap().external_path
    });
    let state = run(graph(None), restore(&savepoint)).unwrap();
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    // An unaligned snapshot would hold records that arrived after the barrier on the fast
    // channel; replayed after the restore, they would be counted twice.
    let mut counts: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
    for line in committed_lines(&out).unwrap() {
        let (k, n): (u64, u64) = serde_json::from_str(&line).unwrap();
        counts.entry(k).or_default().push(n);
    }
    for (k, v) in counts.iter_mut() {
        v.sort_unstable();
        assert_eq!(*v, (1..=800).collect::<Vec<u64>>(), "key {k}");
    }
    assert_eq!(counts.len(), 50);
}

#[test]
fn chaining_can_change_between_a_savepoint_and_its_restore() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = CountJob::new(dir.path());
    job.records = 30_000;
    job.rate = Some(20_000.0);
    let chained = job.graph();
    assert!(chained.config.chaining);
    let (savepoint, state) =
        run_then_stop(chained, JobOptions::default(), 1, &dir.path().join("sp"));
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);

    job.rate = None;
    let mut unchained = job.graph();
    unchained.config.chaining = false;
    let state = run(unchained, restore(&savepoint.external_path)).unwrap();
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    assert_eq!(job.committed_sorted(), job.expected());
}

/// A savepoint of the `hashmap` backend restores into `rocksdb` at another parallelism, and the
/// `rocksdb` job's savepoint back into `hashmap`: the output is the failure-free one, and every
/// RocksDB working directory is gone once its job has ended.
#[test]
fn savepoints_move_state_between_hashmap_and_rocksdb_while_rescaling() {
    use weir_actors::weir::state::StateBackendKind;
    let dir = tempfile::tempdir().unwrap();
    let savepoints = dir.path().join("savepoints");
    let local = dir.path().join("rocksdb");
    let mut job = CountJob::new(dir.path());
    job.records = 40_000;
    job.rate = Some(40_000.0);
    job.local_dir = Some(local.clone());

    job.parallelism = 1;
    let (first, state) = run_then_stop(job.graph(), JobOptions::default(), 2, &savepoints);
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);

    job.backend = StateBackendKind::RocksDb;
    job.parallelism = 3;
    let (second, state) = run_then_stop(job.graph(), restore(&first.external_path), 2, &savepoints);
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    assert!(local.exists(), "the rocksdb job worked under its local dir");

    job.backend = StateBackendKind::HashMap;
    job.parallelism = 2;
    job.rate = None;
    let state = run(job.graph(), restore(&second.external_path)).unwrap();
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    assert_eq!(job.committed_sorted(), job.expected());
    let left: Vec<_> = std::fs::read_dir(&local)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "RocksDB working directories left: {left:?}"
    );
}
