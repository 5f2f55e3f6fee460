//! End-to-end: a keyed running count with failures injected at random records in random
//! subtasks commits exactly the failure-free output; at-least-once loses nothing.

mod common;

use common::{CountJob, Rng};
use weir_actors::weir::checkpoint::CheckpointingMode;
use weir_actors::weir::status::JobStatus;
use weir_actors::{run, JobOptions};

#[test]
fn failure_free_run_commits_every_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let job = CountJob::new(dir.path());
    let state = run(job.graph(), JobOptions::default()).unwrap();
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    assert_eq!(job.committed_sorted(), job.expected());
    assert!(state.completed_checkpoints >= 1);
}

#[test]
fn injected_failures_at_random_records_commit_exactly_once() {
    for seed in [7_u64, 1234, 99_991] {
        let dir = tempfile::tempdir().unwrap();
        let job = CountJob::new(dir.path());
        let mut rng = Rng(seed);
        {
            let mut points = job.fail_at.lock().unwrap();
            while points.len() < 3 {
                points.insert(rng.below(job.records));
            }
        }
        let state = run(job.graph(), JobOptions::default()).unwrap();
        assert_eq!(
            state.status,
            JobStatus::Finished,
            "seed {seed}: {:?}",
            state.failure
        );
        assert!(
            job.fail_at.lock().unwrap().is_empty(),
            "seed {seed}: every injected failure fired"
        );
        assert_eq!(state.restarts, 3, "seed {seed}");
        assert_eq!(job.committed_sorted(), job.expected(), "seed {seed}");
    }
}

#[test]
fn at_least_once_with_failures_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = CountJob::new(dir.path());
    job.mode = CheckpointingMode::AtLeastOnce;
    job.fail_at.lock().unwrap().extend([4_321, 15_000]);
    let state = run(job.graph(), JobOptions::default()).unwrap();
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    let committed = job.committed();
    for (k, expected) in job.expected() {
        let got: std::collections::HashSet<u64> =
            committed.get(&k).into_iter().flatten().copied().collect();
        for n in expected {
            assert!(got.contains(&n), "key {k} lost count {n}");
        }
    }
}
