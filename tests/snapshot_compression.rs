//! Snapshot compression end to end (`execution.checkpointing.snapshot-compression`): a job
//! with compressed checkpoints fails at several records and restores from compressed state
//! each time, stops with a compressed savepoint, and a job *without* compression resumes from
//! that savepoint (the codec is in each blob's header, so any reader knows), failing and
//! restoring again. The committed output must equal the failure-free output exactly once.

mod common;

use std::path::Path;

use common::CountJob;
use weir_actors::weir::checkpoint::storage::{list_snapshots, SnapshotStatus};
use weir_actors::weir::checkpoint::CheckpointConfig;
use weir_actors::weir::format;
use weir_actors::weir::status::JobStatus;
use weir_actors::{submit, JobOptions, RestoreSettings};

/// The keyed state files of the `count` operator in a snapshot directory.
fn keyed_files(dir: &Path) -> Vec<Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("count-") && name.contains("-keyed-")
        })
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

#[test]
fn compressed_checkpoints_and_savepoints_restore_exactly_once_with_or_without_compression() {
    let dir = tempfile::tempdir().unwrap();
    let savepoints = dir.path().join("savepoints");
    let mut job = CountJob::new(dir.path());
    job.records = 60_000;
    job.keys = 2_000;
    job.rate = Some(20_000.0);
    let config = |compression: bool| CheckpointConfig {
        compression,
        // Every blob a file, so the test can look at the files.
        inline_threshold: 0,
        savepoint_dir: Some(savepoints.display().to_string()),
        ..job.checkpoint_config()
    };

    // Part 1: compressed checkpoints, failures at three records, a stop-with-savepoint.
    job.fail_at.lock().unwrap().extend([3_000, 9_000, 14_000]);
    let first = job.graph_with(config(true));
    let fail_at = job.fail_at.clone();
    let (state, savepoint) = actix::System::new().block_on(async move {
        let mut handle = submit(first, JobOptions::default()).unwrap();
        handle
            .wait_for(|s| s.status == JobStatus::Running && s.restarts >= 3)
            .await;
        assert!(fail_at.lock().unwrap().is_empty());
        let savepoint = handle
            .stop_with_savepoint(None, false)
            .await
            .expect("stop with savepoint");
        (handle.wait().await, savepoint)
    });
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    let sp = Path::new(&savepoint.external_path);
    // Keyed state compresses; a blob that would not shrink (a source's offset) stays as it is.
    let files = keyed_files(sp);
    assert_eq!(files.len(), 2, "one keyed file per subtask");
    for f in &files {
        assert!(format::is_compressed(f), "savepoint state is compressed");
    }
    let listed = actix::System::new()
        .block_on(list_snapshots(&savepoint.external_path))
        .unwrap();
    let SnapshotStatus::Complete(md) = &listed[0].status else {
        panic!("{listed:?}");
    };
    let raw = listed[0].raw_state_size.unwrap();
    assert!(
        md.state_size() < raw,
        "stored {} < raw {raw}",
        md.state_size()
    );

    // Part 2: a job without compression resumes from the compressed savepoint and fails twice.
    job.fail_at.lock().unwrap().extend([50_000, 57_000]);
    let second = job.graph_with(config(false));
    let options = JobOptions {
        restore: Some(RestoreSettings::new(savepoint.external_path.clone())),
        ..JobOptions::default()
    };
    let state = actix::System::new().block_on(async move {
        let mut handle = submit(second, options).unwrap();
        handle.wait().await
    });
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    assert!(state.restarts >= 2, "{state:?}");
    assert_eq!(job.committed_sorted(), job.expected());
}
