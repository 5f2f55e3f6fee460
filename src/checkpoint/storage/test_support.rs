//! Helpers shared by the storage tests: configurations, committed checkpoints, and raw access
//! to the bytes behind an external path (through the same backends the code uses, never
//! through the fault layer, so a test sees what is really stored).

use opendal::ErrorKind;

use super::location::resolve_raw as resolve;
// What every storage test uses, so that `use test_support::*` is all a test module needs.
pub(super) use super::{CheckpointStorage, SnapshotLocation};
pub(super) use crate::checkpoint::metadata::{
    CheckpointMetadata, OperatorSnapshot, StateHandle, SubtaskSnapshot,
};
pub(super) use crate::checkpoint::options::{CheckpointConfig, StorageConfig};
pub(super) use crate::checkpoint::paths;
pub(super) use crate::element::{CheckpointKind, SavepointFormat};
pub(super) use crate::ids::{CheckpointId, JobId};

pub(super) fn job() -> JobId {
    "0123456789abcdef0123456789abcdef".parse().unwrap()
}

pub(super) fn fs_config(dir: &str, inline_threshold: u64) -> CheckpointConfig {
    CheckpointConfig {
        storage: StorageConfig::FileSystem { dir: dir.into() },
        inline_threshold,
        ..CheckpointConfig::default()
    }
}

/// A memory URI no other test uses.
pub(super) fn memory_root() -> String {
    format!(
        "memory://test-{}/checkpoints",
        uuid::Uuid::new_v4().simple()
    )
}

pub(super) fn tmp() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_string();
    (dir, path)
}

pub(super) fn metadata(
    id: u64,
    kind: CheckpointKind,
    states: Vec<StateHandle>,
) -> CheckpointMetadata {
    CheckpointMetadata {
        job_id: job(),
        checkpoint_id: CheckpointId(id),
        kind,
        trigger_timestamp_ms: 1_000,
        completion_timestamp_ms: 2_000,
        operators: vec![OperatorSnapshot {
            uid: "count".into(),
            name: "Count".into(),
            parallelism: states.len() as u32,
            max_parallelism: 128,
            subtasks: states
                .into_iter()
                .enumerate()
                .map(|(i, h)| SubtaskSnapshot {
                    index: i as u32,
                    keyed: Some(h),
                    operator: None,
                    channel: None,
                })
                .collect(),
        }],
        unaligned: false,
    }
}

/// Writes `states` and commits `loc`; returns the metadata and the committed path.
pub(super) async fn commit(
    storage: &CheckpointStorage,
    loc: &SnapshotLocation,
    id: u64,
    kind: CheckpointKind,
    states: &[&[u8]],
) -> (CheckpointMetadata, String) {
    let mut handles = Vec::new();
    for (i, s) in states.iter().enumerate() {
        let hint = paths::state_hint("count", i as u32, paths::StatePart::Keyed);
        handles.push(storage.write_state(loc, &hint, s.to_vec()).await.unwrap());
    }
    let md = metadata(id, kind, handles);
    let path = storage.write_metadata(loc, &md).await.unwrap();
    (md, path)
}

pub(super) async fn checkpoint(
    storage: &CheckpointStorage,
    id: u64,
    states: &[&[u8]],
) -> (CheckpointMetadata, String) {
    let loc = storage.checkpoint_location(CheckpointId(id));
    commit(storage, &loc, id, CheckpointKind::PERIODIC, states).await
}

/// The raw bytes at an external path, through the same backends the code uses.
pub(super) async fn get(path: &str) -> Option<Vec<u8>> {
    let (backend, key) = resolve(path).unwrap();
    match backend.op.read(&key).await {
        Ok(b) => Some(b.to_vec()),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => panic!("{path}: {e}"),
    }
}

pub(super) async fn put(path: &str, bytes: Vec<u8>) {
    let (backend, key) = resolve(path).unwrap();
    backend.op.write(&key, bytes).await.unwrap();
}

pub(super) async fn remove(path: &str) {
    let (backend, key) = resolve(path).unwrap();
    backend.op.delete(&key).await.unwrap();
}

/// Every file (not directory) under an external path, relative to it.
pub(super) async fn files_under(path: &str) -> Vec<String> {
    let (backend, key) = resolve(path).unwrap();
    let prefix = format!("{key}/");
    let mut out: Vec<String> = backend
        .op
        .list_with(&prefix)
        .recursive(true)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.path().to_string())
        .filter(|p| !p.ends_with('/'))
        .map(|p| p[prefix.len()..].to_string())
        .collect();
    out.sort();
    out
}

pub(super) async fn read_all(loc: &SnapshotLocation, md: &CheckpointMetadata) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (_, _, h) in md.handles() {
        out.push(loc.read_state(h).await.unwrap());
    }
    out
}

pub(super) fn file_name_of(h: &StateHandle) -> &str {
    match h {
        StateHandle::File { path, .. } => path,
        StateHandle::Inline(_) => panic!("expected a file handle, got {h:?}"),
    }
}
