//! Checkpoints and savepoints on an S3-compatible object store, against a real server (moto,
//! started by the tests on loopback, see `common::s3`), never a mock of opendal:
//!
//! - a job file with `execution.checkpointing.dir: s3://…` runs in the `weir` binary,
//!   checkpoints, is SIGKILLed, is found with `weir checkpoints s3://…` and restored with
//!   `weir run -s s3://…`; its committed output equals the failure-free output exactly once;
//! - a savepoint on S3, relocated to another bucket, restores there (failing and restoring
//!   again from S3 checkpoints on the way) and is disposed of; retention deletes subsumed
//!   checkpoints from the bucket;
//! - the store becomes unreachable mid-checkpoint: checkpoints fail (after the retries), the
//!   job does not while the failures are tolerated, and checkpoints complete again once the
//!   store is back;
//! - bad S3 settings are an error naming the key.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::process::{stderr, stdout, weir, Running, WAIT};
use common::s3::S3Server;
use common::CountJob;
use serde_json::{json, Value};
use weir_actors::weir::checkpoint::storage::{dispose_snapshot, list_snapshots, SnapshotStatus};
use weir_actors::weir::checkpoint::{CheckpointConfig, ExternalizedRetention};
use weir_actors::weir::connectors::file_sink::committed_lines;
use weir_actors::weir::status::JobStatus;
use weir_actors::{submit, JobOptions, RestoreSettings};

const RECORDS: u64 = 6_000;

/// A job file: numbers `0..RECORDS` at 2 000/s, counted per value, into an exactly-once file
/// sink; checkpoints every 100 ms on S3 (`bucket`), the last one retained.
fn job_file(dir: &Path, s3: &S3Server, bucket: &str) -> PathBuf {
    let mut config = String::new();
    for (k, v) in s3.settings() {
        config.push_str(&format!("  {k}: {v}\n"));
    }
    let text = format!(
        "name: on-s3
config:
  execution.checkpointing.interval: 100 ms
  execution.checkpointing.dir: s3://{bucket}/checkpoints
  execution.checkpointing.savepoint-dir: s3://{bucket}/savepoints
  execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION
  execution.checkpointing.snapshot-compression: true
  parallelism.default: 2
  rest.port: 0
{config}pipeline:
  - source: sequence\n    uid: numbers\n    to: {last}\n    rate: 2000
  - operator: count\n    uid: counts\n    key-by: value
  - sink: file\n    uid: out\n    path: {out}\n",
        last = RECORDS - 1,
        out = dir.join("out").display(),
    );
    let path = dir.join("job.yaml");
    std::fs::write(&path, text).unwrap();
    std::fs::write(dir.join("weir.yaml"), "{}\n").unwrap();
    path
}

/// Committed lines and how often each was committed.
fn committed(dir: &Path) -> BTreeMap<String, u32> {
    let mut lines = BTreeMap::new();
    for l in committed_lines(dir.join("out")).unwrap_or_default() {
        let v: Value = serde_json::from_str(&l).unwrap();
        *lines.entry(v.to_string()).or_default() += 1;
    }
    lines
}

fn expected() -> BTreeMap<String, u32> {
    (0..RECORDS)
        .map(|n| (json!({"key": n, "count": 1}).to_string(), 1))
        .collect()
}

/// `weir checkpoints DIR --json` with the server's settings.
fn listing(dir: &Path, s3: &S3Server, uri: &str) -> Vec<Value> {
    let mut args = vec!["checkpoints".to_string(), uri.to_string(), "--json".into()];
    args.extend(s3.defines());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = weir(dir, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

#[test]
fn a_job_on_s3_survives_sigkill_and_restores_with_run_s_from_s3_exactly_once() {
    let s3 = S3Server::start();
    s3.create_bucket("kills");
    let dir = tempfile::tempdir().unwrap();
    let job = job_file(dir.path(), &s3, "kills");

    let run = Running::start(dir.path(), &[job.to_str().unwrap()]);
    run.wait_checkpoints(|b| b["counts"]["completed"].as_u64().unwrap_or(0) >= 3);
    let mut run = run;
    run.child.kill().unwrap();
    run.wait_end();
    let before = committed(dir.path());
    assert!(before.len() < RECORDS as usize, "killed before the end");
    assert!(before.values().all(|&n| n == 1), "nothing twice so far");

    let uri = format!("s3://kills/checkpoints/{}", run.job);
    let snapshots = listing(dir.path(), &s3, &uri);
    let newest = snapshots
        .iter()
        .filter(|s| s["status"] == "COMPLETE")
        .max_by_key(|s| s["id"].as_u64())
        .unwrap_or_else(|| panic!("no complete checkpoint on S3: {snapshots:#?}"));
    let path = newest["path"].as_str().unwrap();
    assert!(path.starts_with(&format!("{uri}/chk-")), "{path}");
    assert!(
        newest["raw_state_size"].as_u64() > newest["state_size"].as_u64(),
        "compressed on S3: {newest}"
    );

    let restored = Running::start(dir.path(), &[job.to_str().unwrap(), "-s", path]);
    let (code, seen) = restored.finish();
    assert_eq!(code, 0, "{seen:#?}");
    assert!(
        seen.iter()
            .any(|l| l.contains("Restoring from") && l.contains(path)),
        "{seen:#?}"
    );
    assert_eq!(committed(dir.path()), expected());
}

#[test]
fn savepoints_relocate_between_buckets_and_retention_deletes_subsumed_checkpoints() {
    let s3 = S3Server::start();
    s3.create_bucket("first");
    s3.create_bucket("second");
    s3.configure_process();
    let dir = tempfile::tempdir().unwrap();
    let mut job = CountJob::new(dir.path());
    job.records = 80_000;
    job.rate = Some(20_000.0);
    job.checkpoint_dir = "s3://first/checkpoints".into();
    let config = CheckpointConfig {
        num_retained: 2,
        inline_threshold: 0,
        externalized_retention: ExternalizedRetention::RetainOnCancellation,
        savepoint_dir: Some("s3://first/savepoints".into()),
        ..job.checkpoint_config()
    };

    // Part 1: a failure (restored from S3), then stop with a savepoint on S3.
    job.fail_at.lock().unwrap().insert(4_000);
    let graph = job.graph_with(config.clone());
    let (state, savepoint, job_id) = actix::System::new().block_on(async move {
        let mut handle = submit(graph, JobOptions::default()).unwrap();
        handle
            .wait_for(|s| s.restarts >= 1 && s.completed_checkpoints >= 6)
            .await;
        let sp = handle.stop_with_savepoint(None, false).await;
        (handle.wait().await, sp, handle.job_id)
    });
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    let savepoint = savepoint.expect("savepoint");
    assert!(savepoint
        .external_path
        .starts_with("s3://first/savepoints/savepoint-"));

    // Retention: of the job's checkpoints only the last `num_retained` are left.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let job_dir = format!("s3://first/checkpoints/{}", job_id.to_hex());
    let deadline = Instant::now() + WAIT;
    loop {
        let left = runtime.block_on(list_snapshots(&job_dir)).unwrap();
        let complete = left
            .iter()
            .filter(|l| matches!(l.status, SnapshotStatus::Complete(_)))
            .count();
        assert!(state.completed_checkpoints >= 6);
        if complete <= 2 && !left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "retention left {complete} complete checkpoints: {left:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Part 2: relocate the savepoint to the other bucket, object by object.
    let name = savepoint.external_path.rsplit('/').next().unwrap();
    let moved = format!("s3://second/moved/{name}");
    runtime.block_on(copy_prefix(&s3, &savepoint.external_path, &moved));
    runtime
        .block_on(dispose_snapshot(&savepoint.external_path))
        .expect("dispose the original");
    assert_eq!(
        runtime.block_on(objects_under(&s3, &savepoint.external_path)),
        Vec::<String>::new(),
        "disposed of on S3"
    );

    // Part 3: restore from the relocated savepoint, fail once more, run to the end.
    job.fail_at.lock().unwrap().insert(75_000);
    let graph = job.graph_with(config);
    let options = JobOptions {
        restore: Some(RestoreSettings::new(moved.clone())),
        ..JobOptions::default()
    };
    let state = actix::System::new().block_on(async move {
        let mut handle = submit(graph, options).unwrap();
        handle.wait().await
    });
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    assert!(state.restarts >= 1, "{state:?}");
    assert_eq!(job.committed_sorted(), job.expected());
    runtime.block_on(dispose_snapshot(&moved)).expect("dispose");
    assert!(runtime.block_on(objects_under(&s3, &moved)).is_empty());
}

/// An opendal operator of `bucket` (the test's own, not Weir's).
fn operator(s3: &S3Server, bucket: &str) -> opendal::Operator {
    let b = opendal::services::S3::default()
        .bucket(bucket)
        .endpoint(&s3.endpoint)
        .region("us-east-1")
        .access_key_id(common::s3::ACCESS_KEY)
        .secret_access_key(common::s3::SECRET_KEY)
        .disable_config_load()
        .disable_ec2_metadata();
    opendal::Operator::new(b).unwrap()
}

/// Bucket and key prefix (ending in `/`) of an S3 URI.
fn split(uri: &str) -> (String, String) {
    let rest = uri.strip_prefix("s3://").unwrap();
    let (bucket, key) = rest.split_once('/').unwrap();
    (bucket.to_string(), format!("{key}/"))
}

/// Every object under an S3 URI.
async fn objects_under(s3: &S3Server, uri: &str) -> Vec<String> {
    let (bucket, prefix) = split(uri);
    let entries = operator(s3, &bucket)
        .list_with(&prefix)
        .recursive(true)
        .await
        .unwrap();
    entries
        .into_iter()
        .map(|e| e.path().to_string())
        .filter(|p| !p.ends_with('/'))
        .collect()
}

/// Copies every object under the S3 URI `from` to the same relative key under `to`, straight
/// through opendal (what `aws s3 cp --recursive` does).
async fn copy_prefix(s3: &S3Server, from: &str, to: &str) {
    let ((fb, fk), (tb, tk)) = (split(from), split(to));
    let (src, dst) = (operator(s3, &fb), operator(s3, &tb));
    let entries = src.list_with(&fk).recursive(true).await.unwrap();
    let mut copied = 0;
    for e in entries {
        if e.path().ends_with('/') {
            continue;
        }
        let rel = &e.path()[fk.len()..];
        let bytes = src.read(e.path()).await.unwrap();
        dst.write(&format!("{tk}{rel}"), bytes).await.unwrap();
        copied += 1;
    }
    assert!(copied >= 2, "a _metadata and state files");
}

#[test]
fn an_unreachable_store_fails_checkpoints_not_the_job_and_checkpoints_resume() {
    let s3 = S3Server::start();
    s3.create_bucket("flaky");
    s3.configure_process();
    let dir = tempfile::tempdir().unwrap();
    let mut job = CountJob::new(dir.path());
    job.records = 60_000;
    job.rate = Some(10_000.0);
    job.checkpoint_dir = "s3://flaky/checkpoints".into();
    let config = CheckpointConfig {
        tolerable_failures: 1_000,
        inline_threshold: 0,
        ..job.checkpoint_config()
    };
    let graph = job.graph_with(config);
    let s3_ref = &s3;
    let state = actix::System::new().block_on(async move {
        let mut handle = submit(graph, JobOptions::default()).unwrap();
        handle.wait_for(|s| s.completed_checkpoints >= 3).await;
        // Checkpoints run every 20 ms: cutting the store now catches one mid-upload.
        s3_ref.cut();
        let completed = handle.state().completed_checkpoints;
        handle.wait_for(|s| s.failed_checkpoints >= 2).await;
        assert_eq!(handle.state().status, JobStatus::Running);
        s3_ref.restore();
        handle
            .wait_for(|s| s.completed_checkpoints >= completed + 3 || s.status.is_terminal())
            .await;
        handle.wait().await
    });
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    assert_eq!(
        state.restarts, 0,
        "checkpoint failures did not fail the job"
    );
    assert!(state.failed_checkpoints >= 2, "{state:?}");
    assert_eq!(job.committed_sorted(), job.expected());
}

/// The commit protocol on S3: `_metadata` is never overwritten — Weir refuses a second
/// commit of a snapshot, and the store itself refuses the conditional PUT Weir makes when the
/// object exists (what protects a race the existence check cannot see).
#[test]
fn metadata_on_s3_is_created_once_and_never_overwritten() {
    use weir_actors::weir::checkpoint::metadata::CheckpointMetadata;
    use weir_actors::weir::checkpoint::storage::{CheckpointStorage, StorageError};
    use weir_actors::weir::checkpoint::StorageConfig;
    use weir_actors::weir::element::CheckpointKind;
    use weir_actors::weir::ids::{CheckpointId, JobId};

    let s3 = S3Server::start();
    s3.create_bucket("commit");
    s3.configure_process();
    let config = CheckpointConfig {
        storage: StorageConfig::FileSystem {
            dir: "s3://commit/checkpoints".into(),
        },
        ..CheckpointConfig::default()
    };
    let job_id = JobId::new();
    let storage = CheckpointStorage::new(&config, job_id).unwrap();
    let loc = storage.checkpoint_location(CheckpointId(1));
    let md = CheckpointMetadata {
        job_id,
        checkpoint_id: CheckpointId(1),
        kind: CheckpointKind::PERIODIC,
        trigger_timestamp_ms: 1,
        completion_timestamp_ms: 2,
        operators: vec![],
        unaligned: false,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let path = runtime.block_on(storage.write_metadata(&loc, &md)).unwrap();
    assert_eq!(
        path,
        format!("s3://commit/checkpoints/{}/chk-1", job_id.to_hex())
    );
    let again = runtime
        .block_on(storage.write_metadata(&loc, &md))
        .unwrap_err();
    assert!(
        matches!(again, StorageError::AlreadyComplete { .. }),
        "{again}"
    );

    // The store enforces the condition too.
    let op = operator(&s3, "commit");
    let key = format!("checkpoints/{}/chk-1/_metadata", job_id.to_hex());
    let e = runtime
        .block_on(async {
            op.write_with(&key, b"other".to_vec())
                .if_not_exists(true)
                .await
        })
        .unwrap_err();
    assert_eq!(e.kind(), opendal::ErrorKind::ConditionNotMatch, "{e}");
    let (_, loaded) = runtime
        .block_on(weir_actors::weir::checkpoint::storage::load_snapshot(&path))
        .unwrap();
    assert_eq!(loaded, md);
}

#[test]
fn bad_s3_settings_are_an_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::process::WEIR)
        .args([
            "checkpoints",
            "s3://bucket/checkpoints",
            "-D",
            "s3.endpoint=http://127.0.0.1:1",
        ])
        .current_dir(dir.path())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("s3.access-key") && err.contains("s3://bucket/checkpoints"),
        "{err}"
    );
}

/// Restore time from the object store vs the local copy, 5 M keys: the same keyed state blob
/// (a keyed count's snapshot at 5 M keys, written through the storage like a checkpoint's)
/// read back as a failover reads it — with its local copy, then with the copy removed, so
/// from S3 — and decoded. Run in release, by hand:
/// `cargo test --release -p weir-actors --test object_store -- --ignored --nocapture restore_time`
#[test]
#[ignore = "a measurement: run by hand in release (see BENCHMARKS.md)"]
fn restore_time_from_s3_vs_the_local_copy_5m_keys() {
    use weir_actors::weir::checkpoint::storage::CheckpointStorage;
    use weir_actors::weir::checkpoint::{LocalRecoveryConfig, StorageConfig};
    use weir_actors::weir::ids::{CheckpointId, JobId};
    use weir_actors::weir::state::key_group::KeyGroupRange;
    use weir_actors::weir::state::keyed::{KeyedStateStore, StateBackendKind};

    let keys: u64 = std::env::var("WEIR_RESTORE_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000_000);
    let s3 = S3Server::start();
    s3.create_bucket("restore");
    s3.configure_process();
    let local = tempfile::tempdir().unwrap();
    let config = CheckpointConfig {
        storage: StorageConfig::FileSystem {
            dir: "s3://restore/checkpoints".into(),
        },
        local_recovery: LocalRecoveryConfig {
            backup: true,
            restore_from_local: true,
            dirs: vec![local.path().display().to_string()],
        },
        ..CheckpointConfig::default()
    };
    let mut store: KeyedStateStore<u64> = KeyedStateStore::new(
        "counts",
        KeyGroupRange::all(128),
        128,
        StateBackendKind::HashMap,
    );
    let count = store.value::<u64>("count").unwrap();
    for k in 0..keys {
        store.set_current_key(k);
        count.update(&mut store, k + 1);
    }
    let blob = store.snapshot().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let storage = CheckpointStorage::new(&config, JobId::new()).unwrap();
    let loc = storage.checkpoint_location(CheckpointId(1));
    let handle = runtime
        .block_on(storage.write_state(&loc, "counts-0-keyed", blob.clone()))
        .unwrap();
    let read = |what: &str| {
        let t = Instant::now();
        let bytes = runtime.block_on(loc.read_state(&handle)).unwrap();
        let read_s = t.elapsed().as_secs_f64();
        let mut restored: KeyedStateStore<u64> = KeyedStateStore::new(
            "counts",
            KeyGroupRange::all(128),
            128,
            StateBackendKind::HashMap,
        );
        restored.restore(&[bytes.as_slice()]).unwrap();
        let total_s = t.elapsed().as_secs_f64();
        println!(
            "{what}: {} keys, {:.1} MB: read {:.3} s, read + restore {:.3} s",
            keys,
            blob.len() as f64 / 1e6,
            read_s,
            total_s
        );
    };
    for _ in 0..2 {
        read("local copy");
    }
    let _ = std::fs::remove_dir_all(local.path());
    for _ in 0..2 {
        read("object store (S3, moto on loopback)");
    }
}
