//! The fault layer on the memory and fs services, alone and under a job's checkpoint storage.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opendal::{ErrorKind, Operator};

use super::*;
use crate::checkpoint::storage::test_support::*;
use crate::checkpoint::storage::{list_snapshots, load_snapshot, StateReadError, StorageError};

/// A fresh memory operator and a fresh fs operator (with the directory that backs it).
fn raw_operators() -> Vec<(Operator, Option<tempfile::TempDir>)> {
    let memory = Operator::new(opendal::services::Memory::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fs =
        Operator::new(opendal::services::Fs::default().root(dir.path().to_str().unwrap())).unwrap();
    vec![(memory, None), (fs, Some(dir))]
}

fn name(op: &Operator) -> &'static str {
    op.info().scheme()
}

async fn exists(op: &Operator, path: &str) -> bool {
    op.exists(path).await.unwrap()
}

#[tokio::test]
async fn each_fault_happens_when_armed_and_not_when_disarmed() {
    for (raw, _dir) in raw_operators() {
        let injector = Arc::new(FaultInjector::default());
        let op = raw.clone().layer(injector.layer());
        let s = name(&raw);

        // Write errors and a full disk: an error, and nothing written.
        for rule in [FaultRule::write_error(), FaultRule::disk_full()] {
            let fault = rule.fault;
            let id = injector.arm(rule);
            let e = op.write("a/w", vec![1; 8]).await.unwrap_err();
            assert!(is_injected(&e), "{s}: {e}");
            assert_eq!(e.kind(), ErrorKind::Unexpected);
            assert!(e.to_string().contains("a/w"), "{e}");
            if fault == Fault::DiskFull {
                assert!(
                    e.to_string()
                        .contains("no space left on device (disk full)"),
                    "{e}"
                );
                assert!(!e.is_temporary());
            } else {
                assert!(e.is_temporary());
            }
            assert!(!exists(&raw, "a/w").await, "{s}: {fault:?} wrote something");
            assert!(injector.disarm(id));
            op.write("a/w", vec![1; 8]).await.unwrap();
            assert_eq!(raw.read("a/w").await.unwrap().to_vec(), vec![1; 8]);
            raw.delete("a/w").await.unwrap();
        }

        // A torn write: success, and half the bytes.
        let id = injector.arm(FaultRule::partial_write());
        op.write("a/p", b"0123456789".to_vec()).await.unwrap();
        assert_eq!(raw.read("a/p").await.unwrap().to_vec(), b"01234", "{s}");
        injector.disarm(id);
        op.write("a/p2", b"0123456789".to_vec()).await.unwrap();
        assert_eq!(raw.read("a/p2").await.unwrap().to_vec(), b"0123456789");

        // Read errors.
        let id = injector.arm(FaultRule::read_error());
        let e = op.read("a/p2").await.unwrap_err();
        assert!(is_injected(&e), "{s}: {e}");
        injector.disarm(id);
        assert_eq!(op.read("a/p2").await.unwrap().to_vec(), b"0123456789");

        // Delete errors: the file stays.
        let id = injector.arm(FaultRule::delete_error());
        let e = op.delete("a/p2").await.unwrap_err();
        assert!(is_injected(&e), "{s}: {e}");
        assert!(exists(&raw, "a/p2").await);
        injector.disarm(id);
        op.delete("a/p2").await.unwrap();
        assert!(!exists(&raw, "a/p2").await);

        // List errors.
        let id = injector.arm(FaultRule::list_error());
        let e = op.list_with("a/").recursive(true).await.unwrap_err();
        assert!(is_injected(&e), "{s}: {e}");
        injector.disarm(id);
        let listed = op.list_with("a/").recursive(true).await.unwrap();
        assert!(listed.iter().any(|e| e.path() == "a/p"), "{s}: {listed:?}");

        // Latency: the write is slower by at least the delay, then succeeds.
        let delay = Duration::from_millis(150);
        let id = injector.arm(FaultRule::latency(OpKind::Write, delay));
        let started = Instant::now();
        op.write("a/slow", vec![2; 4]).await.unwrap();
        assert!(started.elapsed() >= delay, "{s}: {:?}", started.elapsed());
        injector.disarm(id);

        // Disarmed, nothing is injected any more.
        let before = injector.stats();
        op.write("a/x", vec![3; 4]).await.unwrap();
        op.read("a/x").await.unwrap();
        op.list("a/").await.unwrap();
        op.delete("a/x").await.unwrap();
        assert_eq!(injector.stats(), before);
        for kind in FaultKind::ALL {
            assert_eq!(before.get(kind), 1, "{s}: {kind} in {before}");
        }
        assert_eq!(
            before.to_string(),
            "write-error=1 disk-full=1 partial-write=1 read-error=1 delete-error=1 \
             list-error=1 latency=1"
        );
    }
}

#[tokio::test]
async fn a_layer_within_a_directory_leaves_the_rest_alone() {
    for (raw, _dir) in raw_operators() {
        let injector = Arc::new(FaultInjector::new(
            FaultPlan::new(0)
                .with(FaultRule::write_error())
                .with(FaultRule::delete_error()),
        ));
        let op = raw
            .clone()
            .layer(FaultLayer::new(Arc::clone(&injector)).within("/a/b/"));
        op.write("a/bc", vec![1]).await.unwrap();
        op.write("a/x/b/c", vec![1]).await.unwrap();
        assert!(op.write("a/b/c", vec![1]).await.is_err());
        assert!(op.write("a/b/d/e", vec![1]).await.is_err());
        op.delete("a/bc").await.unwrap();
        assert_eq!(injector.stats().get(FaultKind::WriteError), 2);
        assert_eq!(injector.stats().get(FaultKind::DeleteError), 0);
    }
}

#[tokio::test]
async fn probabilistic_faults_are_reproducible_from_their_seed() {
    async fn run(seed: u64) -> (Vec<bool>, FaultStats) {
        let injector = Arc::new(FaultInjector::new(
            FaultPlan::new(seed)
                .with(FaultRule::write_error().with_probability(0.2))
                .with(FaultRule::partial_write().with_probability(0.2)),
        ));
        let op = Operator::new(opendal::services::Memory::default())
            .unwrap()
            .layer(injector.layer());
        let mut outcomes = Vec::new();
        for i in 0..300 {
            let path = format!("chk-{i}/state");
            let ok = op.write(&path, vec![7; 10]).await.is_ok();
            let whole = ok && op.read(&path).await.unwrap().len() == 10;
            outcomes.push(whole);
        }
        (outcomes, injector.stats())
    }
    let (a, stats_a) = run(2024).await;
    let (b, stats_b) = run(2024).await;
    let (c, _) = run(2025).await;
    assert_eq!(a, b);
    assert_eq!(stats_a, stats_b);
    assert_ne!(a, c);
    let errors = stats_a.get(FaultKind::WriteError);
    let torn = stats_a.get(FaultKind::PartialWrite);
    assert!((30..90).contains(&errors), "{stats_a}");
    // A torn write is only applied when no error came first.
    assert!((20..80).contains(&torn), "{stats_a}");
    assert_eq!(
        a.iter().filter(|&&whole| !whole).count() as u64,
        errors + torn
    );
}

#[tokio::test]
async fn installed_faults_reach_a_jobs_storage_under_the_dir_and_nowhere_else() {
    let (_t, dir) = tmp();
    let injector = Arc::new(FaultInjector::new(
        FaultPlan::new(1).with(FaultRule::write_error()),
    ));
    let faulty = format!("{dir}/faulty");
    let guard = install(&faulty, Arc::clone(&injector)).unwrap();
    assert_eq!(guard.dir(), faulty);

    // The same directory however it is spelled, and below it.
    for spelled in [
        faulty.clone(),
        format!("file://{faulty}"),
        format!("{faulty}/./sub/../"),
        format!("{faulty}/deeper"),
    ] {
        let storage = CheckpointStorage::new(&fs_config(&spelled, 0), job()).unwrap();
        let loc = storage.checkpoint_location(CheckpointId(1));
        let e = storage.write_state(&loc, "s", vec![1]).await.unwrap_err();
        assert!(e.to_string().contains("injected fault"), "{spelled}: {e}");
    }
    // A sibling whose name merely starts the same, and another directory: untouched.
    for healthy in [format!("{dir}/faulty-not"), format!("{dir}/other")] {
        let storage = CheckpointStorage::new(&fs_config(&healthy, 0), job()).unwrap();
        checkpoint(&storage, 1, &[b"fine"]).await;
    }
    assert_eq!(injector.stats().get(FaultKind::WriteError), 4);

    // Storage built while installed keeps its faults; storage built afterwards has none.
    let before = CheckpointStorage::new(&fs_config(&faulty, 0), job()).unwrap();
    drop(guard);
    let after = CheckpointStorage::new(&fs_config(&faulty, 0), job()).unwrap();
    checkpoint(&after, 2, &[b"fine now"]).await;
    let loc = before.checkpoint_location(CheckpointId(3));
    assert!(before.write_state(&loc, "s", vec![1]).await.is_err());

    // `uninstall` by any spelling.
    let _guard = install(&faulty, Arc::clone(&injector)).unwrap();
    assert!(uninstall(&format!("file://{faulty}/")).unwrap());
    assert!(!uninstall(&faulty).unwrap());
    let again = CheckpointStorage::new(&fs_config(&faulty, 0), job()).unwrap();
    checkpoint(&again, 4, &[b"fine again"]).await;
}

#[tokio::test]
async fn a_directory_installed_below_the_configured_one_is_faulty_alone() {
    let root = memory_root();
    let probe = CheckpointStorage::new(&fs_config(&root, 0), job()).unwrap();
    let chk2 = probe.checkpoint_location(CheckpointId(2));
    let injector = Arc::new(FaultInjector::new(
        FaultPlan::new(0).with(FaultRule::disk_full()),
    ));
    let outer = Arc::new(FaultInjector::new(
        FaultPlan::new(0).with(FaultRule::partial_write().in_dir("chk-3")),
    ));
    let _chk2 = install(&chk2.external_path(), Arc::clone(&injector)).unwrap();
    let _twice = install(&chk2.external_path(), Arc::clone(&injector)).unwrap();
    let _root = install(&root, Arc::clone(&outer)).unwrap();

    let storage = CheckpointStorage::new(&fs_config(&root, 0), job()).unwrap();
    checkpoint(&storage, 1, &[b"fine"]).await;
    let chk2 = storage.checkpoint_location(CheckpointId(2));
    let e = storage.write_state(&chk2, "s", vec![1]).await.unwrap_err();
    assert!(e.to_string().contains("disk full"), "{e}");
    let chk3 = storage.checkpoint_location(CheckpointId(3));
    let e = storage
        .write_state(&chk3, "s", vec![1, 2])
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StorageError::ShortWrite {
                written: 2,
                stored: 1,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(injector.stats().to_string(), "disk-full=1");
    assert_eq!(outer.stats().to_string(), "partial-write=1");
}

#[tokio::test]
async fn installed_faults_reach_savepoints_restores_listings_and_jobmanager_storage() {
    let root = memory_root();
    let sp_dir = format!("{root}-savepoints");
    let config = CheckpointConfig {
        savepoint_dir: Some(sp_dir.clone()),
        ..fs_config(&root, 0)
    };
    let storage = CheckpointStorage::new(&config, job()).unwrap();
    let (md, path) = checkpoint(&storage, 1, &[b"checkpoint state"]).await;

    // Only the savepoint directory is faulty.
    let injector = Arc::new(FaultInjector::new(
        FaultPlan::new(5).with(FaultRule::disk_full()),
    ));
    let sp_guard = install(&sp_dir, Arc::clone(&injector)).unwrap();
    let sp = storage.savepoint_location(None).unwrap();
    let e = storage.write_state(&sp, "s", vec![1; 4]).await.unwrap_err();
    assert!(e.to_string().contains("disk full"), "{e}");
    checkpoint(&storage, 2, &[b"checkpoints still work"]).await;
    drop(sp_guard);

    // Restores and listings of a faulty directory go through the layer too.
    let guard = install(&root, Arc::clone(&injector)).unwrap();
    injector.disarm_all();
    let (loc, loaded) = load_snapshot(&path).await.unwrap();
    assert_eq!(loaded, md);
    let read = injector.arm(FaultRule::read_error().in_dir("chk-1"));
    let e = load_snapshot(&path).await.unwrap_err();
    assert!(matches!(e, StorageError::Io { .. }), "{e}");
    let e = loc
        .read_state(md.handles().next().unwrap().2)
        .await
        .unwrap_err();
    assert!(matches!(e, StateReadError::Io { .. }), "{e}");
    assert_eq!(injector.stats().get(FaultKind::ReadError), 2);
    injector.disarm(read);
    injector.arm(FaultRule::list_error());
    assert!(matches!(
        list_snapshots(&root).await,
        Err(StorageError::Io { .. })
    ));
    drop(guard);

    // Jobmanager storage is `memory://jobmanager-<job id>`.
    let job = JobId::new();
    let _jm = install(
        &format!("memory://jobmanager-{}", job.to_hex()),
        Arc::clone(&injector),
    )
    .unwrap();
    injector.disarm_all();
    injector.arm(FaultRule::write_error().metadata());
    let jm = CheckpointStorage::new(&CheckpointConfig::default(), job).unwrap();
    let loc = jm.checkpoint_location(CheckpointId(1));
    let md = CheckpointMetadata {
        job_id: job,
        ..metadata(1, CheckpointKind::PERIODIC, vec![])
    };
    assert!(jm.write_metadata(&loc, &md).await.is_err());
    assert!(!loc.is_complete().await.unwrap());
}

#[tokio::test]
async fn the_nth_write_whose_path_contains_a_text_fails() {
    let root = memory_root();
    let injector = Arc::new(FaultInjector::default());
    let _guard = install(&root, Arc::clone(&injector)).unwrap();
    let storage = CheckpointStorage::new(&fs_config(&root, 0), job()).unwrap();
    injector.arm(FaultRule::write_error().containing("chk-5").nth(3));
    let chk5 = storage.checkpoint_location(CheckpointId(5));
    let chk6 = storage.checkpoint_location(CheckpointId(6));
    let mut results = Vec::new();
    for i in 0..5 {
        // Writes elsewhere are not counted.
        storage.write_state(&chk6, "other", vec![i]).await.unwrap();
        results.push(storage.write_state(&chk5, "s", vec![i]).await.is_ok());
    }
    assert_eq!(results, vec![true, true, false, true, true]);
    assert_eq!(files_under(&chk5.external_path()).await.len(), 4);
    assert_eq!(injector.stats().to_string(), "write-error=1");
}

#[tokio::test]
async fn a_torn_state_file_fails_its_write_and_one_that_slipped_through_fails_the_read() {
    for root in [tmp().1, memory_root()] {
        let injector = Arc::new(FaultInjector::default());
        let _guard = install(&root, Arc::clone(&injector)).unwrap();
        let storage = CheckpointStorage::new(&fs_config(&root, 4), job()).unwrap();
        injector.arm(FaultRule::partial_write().in_dir("chk-1").once());
        let chk1 = storage.checkpoint_location(CheckpointId(1));
        // The write reports success; the size check after it does not.
        let e = storage
            .write_state(&chk1, "s", b"twelve bytes".to_vec())
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                StorageError::ShortWrite {
                    written: 12,
                    stored: 6,
                    ..
                }
            ),
            "{root}: {e}"
        );
        assert_eq!(injector.stats().get(FaultKind::PartialWrite), 1);

        // A file torn later (or behind the storage's back) is caught by the verified read.
        let (md, path) = checkpoint(&storage, 2, &[b"twelve bytes", b"more bytes"]).await;
        let (loc, loaded) = load_snapshot(&path).await.unwrap();
        assert_eq!(loaded, md);
        let mut handles = md.handles().map(|(_, _, h)| h);
        let torn = handles.next().unwrap();
        let file = format!("{}/{}", loc.external_path(), file_name_of(torn));
        put(&file, b"twelve".to_vec()).await;
        let e = loc.read_state(torn).await.unwrap_err();
        assert!(
            matches!(
                e,
                StateReadError::SizeMismatch {
                    expected: 12,
                    actual: 6,
                    ..
                }
            ),
            "{root}: {e}"
        );
        assert!(e.to_string().contains(file_name_of(torn)), "{e}");
        assert_eq!(
            loc.read_state(handles.next().unwrap()).await.unwrap(),
            b"more bytes"
        );
    }
}

#[tokio::test]
async fn latency_makes_a_checkpoint_upload_time_out() {
    let root = memory_root();
    let injector = Arc::new(FaultInjector::default());
    let _guard = install(&root, Arc::clone(&injector)).unwrap();
    let storage = CheckpointStorage::new(&fs_config(&root, 0), job()).unwrap();
    injector.arm(FaultRule::latency(OpKind::Write, Duration::from_secs(3600)).in_dir("chk-2"));

    let chk2 = storage.checkpoint_location(CheckpointId(2));
    let timeout = Duration::from_millis(50);
    let upload = storage.write_state(&chk2, "s", vec![1; 8]);
    assert!(tokio::time::timeout(timeout, upload).await.is_err());
    assert!(files_under(&chk2.external_path()).await.is_empty());
    assert_eq!(injector.stats().get(FaultKind::Latency), 1);
    // Other checkpoints are not slowed down.
    let chk3 = storage.checkpoint_location(CheckpointId(3));
    let upload = storage.write_state(&chk3, "s", vec![1; 8]);
    tokio::time::timeout(Duration::from_secs(30), upload)
        .await
        .expect("chk-3 was slowed down")
        .unwrap();
}

#[tokio::test]
async fn a_completed_checkpoint_is_never_damaged_by_later_faults() {
    for root in [tmp().1, memory_root()] {
        let injector = Arc::new(FaultInjector::new(FaultPlan::new(99)));
        let _guard = install(&root, Arc::clone(&injector)).unwrap();
        let storage = CheckpointStorage::new(&fs_config(&root, 4), job()).unwrap();
        let (md1, p1) = checkpoint(&storage, 1, &[b"keyed state one", b"keyed state two"]).await;
        let mut before = Vec::new();
        for f in files_under(&p1).await {
            before.push((f.clone(), get(&format!("{p1}/{f}")).await.unwrap()));
        }

        // Every fault at once, each write fault in turn first (the first armed outcome wins).
        let ms = Duration::from_millis(1);
        for (i, first) in [
            FaultRule::write_error(),
            FaultRule::disk_full(),
            FaultRule::partial_write(),
        ]
        .into_iter()
        .enumerate()
        {
            injector.arm(first);
            for rule in [
                FaultRule::write_error().with_probability(0.5),
                FaultRule::disk_full(),
                FaultRule::partial_write(),
                FaultRule::read_error(),
                FaultRule::delete_error().with_probability(0.5),
                FaultRule::list_error().with_probability(0.5),
                FaultRule::latency(OpKind::Write, ms),
                FaultRule::latency(OpKind::Read, ms),
                FaultRule::latency(OpKind::Stat, ms),
                FaultRule::latency(OpKind::Rename, ms),
                FaultRule::latency(OpKind::Delete, ms),
                FaultRule::latency(OpKind::List, ms),
            ] {
                injector.arm(rule);
            }
            // A whole checkpoint attempt, then everything the job manager does after one.
            let id = CheckpointId(2 + i as u64);
            let loc = storage.checkpoint_location(id);
            let mut handles = Vec::new();
            for hint in ["count-0-keyed", "count-1-keyed"] {
                if let Ok(h) = storage.write_state(&loc, hint, vec![9; 32]).await {
                    handles.push(h);
                }
            }
            let md = metadata(id.0, CheckpointKind::PERIODIC, handles);
            let committed = storage.write_metadata(&loc, &md).await.is_ok();
            if !committed {
                let _ = storage.discard_incomplete(&loc).await;
            }
            let _ = storage.discard_abandoned(|c| c == id).await;
            let _ = storage.discard_checkpoint(CheckpointId(100)).await;
            assert!(
                load_snapshot(&p1).await.is_err(),
                "{root}: reads of chk-1 should fail while read errors are armed"
            );
            injector.disarm_all();
        }

        let stats = injector.stats();
        for kind in FaultKind::ALL {
            assert!(stats.get(kind) > 0, "{root}: no {kind} in {stats}");
        }
        let (loc1, loaded) = load_snapshot(&p1).await.unwrap();
        assert_eq!(loaded, md1, "{root}");
        assert_eq!(
            read_all(&loc1, &loaded).await,
            vec![b"keyed state one".to_vec(), b"keyed state two".to_vec()]
        );
        let mut after = Vec::new();
        for f in files_under(&p1).await {
            after.push((f.clone(), get(&format!("{p1}/{f}")).await.unwrap()));
        }
        assert_eq!(after, before, "{root}: chk-1 changed");
    }
}
