//! End-to-end checkpoint behaviour: retained count, retention on cancel, timeout and tolerable
//! failures, the jobmanager size limit, restore from a retained checkpoint, and a corrupt
//! `_metadata`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::CountJob;
use weir_actors::weir::checkpoint::{CheckpointConfig, ExternalizedRetention, StorageConfig};
use weir_actors::weir::connectors::print::DiscardSink;
use weir_actors::weir::connectors::sequence::SequenceSource;
use weir_actors::weir::operator::{Operator, OperatorError};
use weir_actors::weir::restart::RestartStrategy;
use weir_actors::weir::state::operator_state::OperatorStateStore;
use weir_actors::weir::status::JobStatus;
use weir_actors::weir::stream::StreamEnvironment;
use weir_actors::{run, submit, JobOptions, JobState, RestoreSettings};

fn chk_dirs(root: &str, state: &JobState) -> Vec<u64> {
    let dir = Path::new(root).join(state.job_id.to_string());
    let mut ids: Vec<u64> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix("chk-"))
                        .and_then(|n| n.parse().ok())
                })
                .collect()
        })
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

/// Runs an endless rate-limited count job until `checkpoints` have completed, then cancels.
fn run_then_cancel(job: &CountJob, config: CheckpointConfig, checkpoints: u64) -> JobState {
    actix::System::new().block_on(async {
        let mut handle = submit(job.graph_with(config), JobOptions::default()).unwrap();
        let s = handle
            .wait_for(|s| s.completed_checkpoints >= checkpoints || s.status.is_terminal())
            .await;
        assert_eq!(s.status, JobStatus::Running, "{:?}", s.failure);
        handle.cancel().await;
        handle.wait().await
    })
}

fn endless(dir: &Path) -> CountJob {
    let mut job = CountJob::new(dir);
    job.records = 1_000_000_000;
    job.rate = Some(20_000.0);
    job
}

#[test]
fn only_num_retained_checkpoints_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let job = CountJob::new(dir.path());
    let config = CheckpointConfig {
        num_retained: 2,
        externalized_retention: ExternalizedRetention::RetainOnCancellation,
        ..job.checkpoint_config()
    };
    let state = run(job.graph_with(config), JobOptions::default()).unwrap();
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    assert!(state.completed_checkpoints >= 3, "{state:?}");
    let kept = chk_dirs(&job.checkpoint_dir, &state);
    let latest = state.latest_completed.unwrap().id.0;
    // The two newest *completed* checkpoints: ids need not be consecutive (a periodic
    // checkpoint pending when the final one is triggered is subsumed by it, as in a run that
    // kept [17, 19]).
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(kept[1], latest, "{kept:?}");
    assert!(kept[0] < latest, "{kept:?}");
}

#[test]
fn cancel_applies_each_retention_mode() {
    for (mode, kept) in [
        (ExternalizedRetention::NoExternalizedCheckpoints, false),
        (ExternalizedRetention::DeleteOnCancellation, false),
        (ExternalizedRetention::RetainOnCancellation, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let job = endless(dir.path());
        let config = CheckpointConfig {
            externalized_retention: mode,
            ..job.checkpoint_config()
        };
        let state = run_then_cancel(&job, config, 2);
        assert_eq!(state.status, JobStatus::Canceled);
        let dirs = chk_dirs(&job.checkpoint_dir, &state);
        if kept {
            assert_eq!(dirs, vec![state.latest_completed.unwrap().id.0], "{mode:?}");
        } else {
            assert!(dirs.is_empty(), "{mode:?} left {dirs:?}");
        }
    }
}

#[test]
fn restore_from_retained_checkpoint_is_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = endless(dir.path());
    job.records = 30_000;
    let config = CheckpointConfig {
        externalized_retention: ExternalizedRetention::RetainOnCancellation,
        ..job.checkpoint_config()
    };
    let canceled = run_then_cancel(&job, config, 3);
    let path = canceled.latest_completed.unwrap().external_path;
    job.rate = None;
    let restore = RestoreSettings::new(path);
    let state = run(
        job.graph(),
        JobOptions {
            restore: Some(restore),
            ..JobOptions::default()
        },
    )
    .unwrap();
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    assert_eq!(job.committed_sorted(), job.expected());
}

#[test]
fn corrupt_metadata_is_reported_and_nothing_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let job = endless(dir.path());
    let config = CheckpointConfig {
        externalized_retention: ExternalizedRetention::RetainOnCancellation,
        ..job.checkpoint_config()
    };
    let canceled = run_then_cancel(&job, config, 1);
    let chk = PathBuf::from(canceled.latest_completed.unwrap().external_path);
    let metadata = chk.join("_metadata");
    let bytes = std::fs::read(&metadata).unwrap();
    std::fs::write(&metadata, &bytes[..bytes.len() / 2]).unwrap();
    let files_before = std::fs::read_dir(&chk).unwrap().count();

    let state = run(
        job.graph(),
        JobOptions {
            restore: Some(RestoreSettings::new(chk.display().to_string())),
            ..JobOptions::default()
        },
    )
    .unwrap();
    assert_eq!(state.status, JobStatus::Failed);
    let failure = state.failure.unwrap();
    assert!(failure.contains("_metadata"), "{failure}");
    assert!(failure.contains("truncated"), "{failure}");
    assert_eq!(std::fs::read(&metadata).unwrap().len(), bytes.len() / 2);
    assert_eq!(std::fs::read_dir(&chk).unwrap().count(), files_before);
}

/// An operator whose snapshot blocks until the test opens the latch.
#[derive(Clone)]
struct StallOnSnapshot(Arc<(Mutex<bool>, Condvar)>);

impl StallOnSnapshot {
    fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }
}

impl Operator<u64, u64> for StallOnSnapshot {
    fn process(&mut self, input: Vec<u64>, out: &mut Vec<u64>) -> Result<(), OperatorError> {
        out.extend(input);
        Ok(())
    }

    fn snapshot(&mut self, _: &mut OperatorStateStore) -> Result<(), OperatorError> {
        let (lock, cv) = &*self.0;
        let _open = cv.wait_while(lock.lock().unwrap(), |open| !*open).unwrap();
        Ok(())
    }
}

fn stalled_job(tolerable: u32) -> JobState {
    let stall = StallOnSnapshot(Arc::default());
    let env = StreamEnvironment::new("stall");
    env.set_checkpoint_config(CheckpointConfig {
        interval: Some(Duration::from_millis(20)),
        timeout: Duration::from_millis(60),
        tolerable_failures: tolerable,
        ..CheckpointConfig::default()
    });
    env.set_restart_strategy(RestartStrategy::None);
    env.add_source(
        "numbers",
        SequenceSource::new(0, u64::MAX).with_rate(1000.0),
    )
    .transform("stall", stall.clone())
    .add_sink("sink", DiscardSink::new());
    let state = run(env.build().unwrap(), JobOptions::default()).unwrap();
    stall.open();
    state
}

#[test]
fn expired_checkpoint_fails_the_job_when_nothing_is_tolerated() {
    let state = stalled_job(0);
    assert_eq!(state.status, JobStatus::Failed);
    assert_eq!(state.failed_checkpoints, 1, "{state:?}");
    assert_eq!(state.completed_checkpoints, 0);
    let failure = state.failure.unwrap();
    assert!(failure.contains("tolerable"), "{failure}");
}

#[test]
fn tolerable_failures_are_consecutive_failures_allowed() {
    let state = stalled_job(2);
    assert_eq!(state.status, JobStatus::Failed);
    assert_eq!(state.failed_checkpoints, 3, "{state:?}");
}

#[test]
fn jobmanager_storage_rejects_state_over_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = CountJob::new(dir.path());
    job.keys = 5_000;
    let config = CheckpointConfig {
        storage: StorageConfig::JobManager {
            max_state_size: 1024,
        },
        tolerable_failures: 1000,
        ..job.checkpoint_config()
    };
    let mut graph = job.graph_with(config);
    graph.config.restart = Some(RestartStrategy::None);
    let state = run(graph, JobOptions::default()).unwrap();
    assert_eq!(state.status, JobStatus::Failed);
    assert_eq!(state.completed_checkpoints, 0);
    assert!(state.failed_checkpoints >= 1);
    let failure = state.failure.unwrap();
    assert!(failure.contains("1024"), "{failure}");
}
