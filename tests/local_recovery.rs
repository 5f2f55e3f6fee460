//! Local recovery end to end (`execution.checkpointing.local-backup.enabled`,
//! `execution.state-recovery.from-local`): failovers restore from the local copies — shown by
//! making every remote state read fail, which a restore from the remote copy would not
//! survive — and from the remote copy when the local copies are damaged. The committed output
//! equals the failure-free output exactly once, and the local copies are gone at job end.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::CountJob;
use weir_actors::weir::checkpoint::storage::faults::{self, FaultInjector, FaultPlan, FaultRule};
use weir_actors::weir::checkpoint::{CheckpointConfig, LocalRecoveryConfig};
use weir_actors::weir::status::JobStatus;
use weir_actors::{submit, JobOptions};

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

fn config(job: &CountJob, local: &Path) -> CheckpointConfig {
    CheckpointConfig {
        inline_threshold: 0,
        local_recovery: LocalRecoveryConfig {
            backup: true,
            restore_from_local: true,
            dirs: vec![local.display().to_string()],
        },
        ..job.checkpoint_config()
    }
}

#[test]
fn failovers_restore_from_the_local_copies_while_the_remote_state_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    let mut job = CountJob::new(dir.path());
    job.records = 30_000;
    job.rate = Some(15_000.0);
    job.fail_at
        .lock()
        .unwrap()
        .extend([5_000, 12_000, 19_000, 26_000]);
    // Every read of a remote keyed state file fails, from the start.
    let injector = Arc::new(FaultInjector::new(FaultPlan::new(1)));
    injector.arm(FaultRule::read_error().containing("-keyed-"));
    std::fs::create_dir_all(&job.checkpoint_dir).unwrap();
    let _guard = faults::install(&job.checkpoint_dir, injector.clone()).unwrap();
    let graph = job.graph_with(config(&job, &local));
    let state = actix::System::new().block_on(async move {
        let mut handle = submit(graph, JobOptions::default()).unwrap();
        handle.wait().await
    });
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    // Two sources split the range: failures of both may fall into one attempt.
    assert!(state.restarts >= 2, "{state:?}");
    assert!(
        !injector.stats().to_string().contains("read-error"),
        "no remote state file was read: {}",
        injector.stats()
    );
    assert_eq!(job.committed_sorted(), job.expected());
    assert!(
        files_under(&local).is_empty(),
        "local copies deleted at job end"
    );
}

#[test]
fn damaged_local_copies_are_skipped_for_the_remote_ones() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    let mut job = CountJob::new(dir.path());
    job.records = 30_000;
    job.rate = Some(15_000.0);
    // Manual checkpoints only, so no checkpoint replaces the damaged copies behind the test.
    let config = CheckpointConfig {
        interval: None,
        ..config(&job, &local)
    };
    job.fail_at.lock().unwrap().insert(28_000);
    let graph = job.graph_with(config);
    let local_dir = local.clone();
    let state = actix::System::new().block_on(async move {
        let mut handle = submit(graph, JobOptions::default()).unwrap();
        handle.wait_for(|s| s.status == JobStatus::Running).await;
        handle.checkpoint(false).await.expect("checkpoint");
        handle.checkpoint(false).await.expect("checkpoint");
        // Damage every local copy: truncate some, flip a byte in the others.
        let copies = files_under(&local_dir);
        assert!(!copies.is_empty(), "local copies were written");
        for (i, f) in copies.iter().enumerate() {
            let mut bytes = std::fs::read(f).unwrap();
            if i % 2 == 0 {
                bytes.truncate(bytes.len() / 2);
            } else {
                let last = bytes.len() - 1;
                bytes[last] ^= 0xff;
            }
            std::fs::write(f, bytes).unwrap();
        }
        handle.wait().await
    });
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    assert_eq!(state.restarts, 1, "{state:?}");
    assert_eq!(job.committed_sorted(), job.expected());
}

/// Regression: a transient error reading the restored state during a restart (the store
/// unreachable for a moment) left the job RESTARTING forever: `on_failure` ignores failures
/// while restarting. It now goes round the restart strategy again, and the job recovers.
#[test]
fn a_restore_read_error_during_a_restart_is_retried_not_stuck_restarting() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = CountJob::new(dir.path());
    job.records = 20_000;
    job.rate = Some(20_000.0);
    job.fail_at.lock().unwrap().insert(8_000);
    let injector = Arc::new(FaultInjector::new(FaultPlan::new(1)));
    // The first read of a remote keyed state file fails: the first failover's restore.
    injector.arm(FaultRule::read_error().containing("-keyed-").once());
    std::fs::create_dir_all(&job.checkpoint_dir).unwrap();
    let _guard = faults::install(&job.checkpoint_dir, injector.clone()).unwrap();
    let graph = job.graph_with(CheckpointConfig {
        inline_threshold: 0,
        ..job.checkpoint_config()
    });
    let state = actix::System::new().block_on(async move {
        let mut handle = submit(graph, JobOptions::default()).unwrap();
        handle.wait().await
    });
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    assert!(
        state.restarts >= 2,
        "the failure and the failed restore: {state:?}"
    );
    assert!(injector.stats().to_string().contains("read-error"));
    assert_eq!(job.committed_sorted(), job.expected());
}
