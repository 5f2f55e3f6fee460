//! End-to-end: unaligned checkpoints under back-pressure. The barrier overtakes the queued
//! input, the overtaken records are persisted as channel state, and restoring — after
//! failures, and with another parallelism — replays them exactly once.

mod common;

use std::time::Duration;

use common::CountJob;
use weir_actors::weir::checkpoint::stats::CheckpointStatsEntry;
use weir_actors::weir::checkpoint::{CheckpointConfig, ExternalizedRetention};
use weir_actors::weir::status::JobStatus;
use weir_actors::{submit, JobHandle, JobOptions, RestoreSettings};

/// A count job whose counting stage is slow (a 1 ms pause every 40 records per key), so its
/// inputs stay full: what unaligned checkpoints are for.
fn back_pressured(dir: &std::path::Path) -> CountJob {
    let mut job = CountJob::new(dir);
    job.records = 60_000;
    job.keys = 50;
    job.rate = None;
    job.unaligned = true;
    job.throttle = Some((40, Duration::from_millis(1)));
    job
}

/// Triggers checkpoints until one persisted in-flight data (at most `attempts`); its stats.
async fn checkpoint_with_channel_state(
    handle: &JobHandle,
    attempts: usize,
) -> Option<(String, CheckpointStatsEntry)> {
    let mut handle = handle.clone();
    for _ in 0..attempts {
        let Ok(done) = handle.checkpoint(false).await else {
            // Refused while the job restarts: wait until it runs again.
            let state = handle
                .wait_for(|s| s.status == JobStatus::Running || s.status.is_terminal())
                .await;
            if state.status.is_terminal() {
                return None;
            }
            continue;
        };
        let stats = handle.checkpoint_stats().await?;
        let entry = stats.history.into_iter().find(|e| e.id == done.id);
        if let Some(entry) = entry.filter(|e| e.persisted_data > 0) {
            return Some((done.external_path, entry));
        }
    }
    None
}

#[test]
fn unaligned_checkpoints_under_back_pressure_persist_in_flight_data_and_commit_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let job = back_pressured(dir.path());
    job.fail_at.lock().unwrap().extend([9_000, 31_000]);
    let graph = job.graph();
    let (state, entry) = actix::System::new().block_on(async move {
        let mut handle = submit(graph, JobOptions::default()).unwrap();
        let found = checkpoint_with_channel_state(&handle, 50).await;
        (handle.wait().await, found)
    });
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    assert!(
        job.fail_at.lock().unwrap().is_empty(),
        "every injected failure fired"
    );
    assert!(state.restarts >= 1);
    let (_, entry) = entry.expect("a checkpoint under back-pressure persisted in-flight data");
    assert!(entry.unaligned);
    assert!(entry
        .subtasks
        .iter()
        .any(|s| s.unaligned && s.persisted_data > 0));
    assert_eq!(
        common::compare(&job.committed(), &job.expected()),
        (0, 0),
        "(lost, duplicated)"
    );
}

#[test]
fn restoring_in_flight_data_with_another_parallelism_replays_it_exactly_once() {
    for parallelism in [1, 3] {
        let dir = tempfile::tempdir().unwrap();
        let mut job = back_pressured(dir.path());
        let config = CheckpointConfig {
            // Only the checkpoints this test triggers.
            interval: Some(Duration::from_secs(3600)),
            externalized_retention: ExternalizedRetention::RetainOnCancellation,
            ..job.checkpoint_config()
        };
        let graph = job.graph_with(config.clone());
        let (state, found) = actix::System::new().block_on(async move {
            let mut handle = submit(graph, JobOptions::default()).unwrap();
            let found = checkpoint_with_channel_state(&handle, 50).await;
            handle.cancel().await;
            (handle.wait().await, found)
        });
        assert_eq!(state.status, JobStatus::Canceled, "{:?}", state.failure);
        let (path, entry) = found.expect("a checkpoint with in-flight data");
        assert!(entry.persisted_data > 0);
        // `weir checkpoints` reads the same from its `_metadata`.
        let listed = common::process::weir(dir.path(), &["checkpoints", &path, "--json"]);
        let listed: serde_json::Value =
            serde_json::from_slice(&listed.stdout).expect("weir checkpoints --json");
        let listed = &listed[0];
        assert_eq!(listed["unaligned"], true, "{listed}");
        assert_eq!(listed["persisted_data"], entry.persisted_data, "{listed}");

        job.parallelism = parallelism;
        job.throttle = None;
        let graph = job.graph_with(config);
        let options = JobOptions {
            restore: Some(RestoreSettings::new(path.clone())),
            ..JobOptions::default()
        };
        let state = weir_actors::run(graph, options).unwrap();
        assert_eq!(
            state.status,
            JobStatus::Finished,
            "parallelism {parallelism} from {path}: {:?}",
            state.failure
        );
        assert_eq!(
            common::compare(&job.committed(), &job.expected()),
            (0, 0),
            "(lost, duplicated) restoring {path} ({} bytes in flight) at parallelism {parallelism}",
            entry.persisted_data
        );
    }
}

#[test]
fn an_alignment_timeout_switches_a_back_pressured_checkpoint_to_unaligned() {
    for (timeout, unaligned) in [
        (Duration::from_millis(5), true),
        (Duration::from_secs(3600), false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut job = back_pressured(dir.path());
        job.aligned_timeout = timeout;
        let graph = job.graph_with(CheckpointConfig {
            interval: Some(Duration::from_secs(3600)),
            ..job.checkpoint_config()
        });
        let (state, entries) = actix::System::new().block_on(async move {
            let mut handle = submit(graph, JobOptions::default()).unwrap();
            let mut entries = Vec::new();
            for _ in 0..3 {
                if let Ok(done) = handle.checkpoint(false).await {
                    let stats = handle.checkpoint_stats().await.expect("stats");
                    entries.extend(stats.history.into_iter().filter(|e| e.id == done.id));
                }
            }
            (handle.wait().await, entries)
        });
        assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
        assert!(
            !entries.is_empty(),
            "timeout {timeout:?}: no checkpoint completed"
        );
        if unaligned {
            assert!(
                entries.iter().any(|e| e.unaligned && e.persisted_data > 0),
                "timeout {timeout:?}: {entries:?}"
            );
        } else {
            assert!(
                entries
                    .iter()
                    .all(|e| !e.unaligned && e.persisted_data == 0),
                "timeout {timeout:?}: {entries:?}"
            );
        }
        assert_eq!(
            common::compare(&job.committed(), &job.expected()),
            (0, 0),
            "(lost, duplicated)"
        );
    }
}
