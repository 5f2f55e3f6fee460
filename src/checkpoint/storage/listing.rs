//! Offline listing: every snapshot under a directory and what state it is in
//! (`weir checkpoints DIR`).
//!
//! [`list_snapshots`] finds the `chk-<n>` and `savepoint-*` directories in a directory and in
//! its job-id directories one level down, and gives each a [`SnapshotListing`] with its
//! [`SnapshotStatus`]: complete (its `_metadata` decodes and every state file it names exists
//! with its recorded size), incomplete (no `_metadata`), or damaged (and why). Checksums are
//! not verified here: that would read all state; [`super::read`] does it on restore. Listing
//! creates and deletes nothing.

use std::collections::BTreeSet;

use opendal::ErrorKind;

use super::error::StorageError;
use super::location::{resolve, BackendKind, SnapshotLocation};
use super::read::StateReadError;
use crate::checkpoint::metadata::{CheckpointMetadata, StateHandle};
use crate::checkpoint::paths;
use crate::format;
use crate::ids::CheckpointId;

/// One snapshot directory found by [`list_snapshots`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotListing {
    /// The directory's external path (what [`load_snapshot`](super::load_snapshot) takes).
    pub path: String,
    /// `Some(n)` for a `chk-<n>` directory, `None` for a savepoint directory.
    pub checkpoint_id: Option<CheckpointId>,
    pub status: SnapshotStatus,
    /// For a complete snapshot, the size of its state before compression (read from each
    /// compressed blob's header; equal to the stored size when nothing is compressed).
    pub raw_state_size: Option<u64>,
}

/// What a snapshot directory holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotStatus {
    /// `_metadata` decodes and every state file it names exists with its recorded size.
    Complete(Box<CheckpointMetadata>),
    /// No `_metadata`: an aborted or unfinished snapshot.
    Incomplete,
    /// `_metadata` is damaged or names a state file that is missing or has the wrong size.
    Damaged(String),
}

/// Every `chk-<n>` and `savepoint-*` directory in `dir` and in its job-id directories (one
/// level down), or `dir` alone when it is itself one. Checkpoints come in id order.
///
/// # Errors
///
/// [`StorageError::DirectoryNotFound`] / [`StorageError::NotADirectory`] for a local `dir`
/// that is missing or a file, [`StorageError::Io`] when listing or reading fails, and the
/// location errors of [`CheckpointStorage::new`](super::CheckpointStorage::new). Damage is a
/// [`SnapshotStatus::Damaged`] entry, not an error. Nothing is created or deleted.
pub async fn list_snapshots(dir: &str) -> Result<Vec<SnapshotListing>, StorageError> {
    let (backend, key) = resolve(dir)?;
    let here = SnapshotLocation {
        backend: backend.clone(),
        dir: key.clone(),
        local: None,
    };
    let name = paths::file_name(&key);
    if paths::parse_checkpoint_dir_name(name).is_some() || paths::is_savepoint_dir_name(name) {
        return Ok(vec![inspect(here).await?]);
    }

    let prefix = if key.is_empty() {
        String::new()
    } else {
        format!("{key}/")
    };
    let list_path = if prefix.is_empty() { "/" } else { &prefix };
    let entries = backend
        .op
        .list_with(list_path)
        .recursive(true)
        .await
        .map_err(|source| here.io("list", &key, source))?;
    if entries.is_empty() {
        if let BackendKind::Fs { .. } = backend.kind {
            let stat_path = if key.is_empty() { "/" } else { key.as_str() };
            match backend.op.stat(stat_path).await {
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Err(StorageError::DirectoryNotFound {
                        path: here.external_path(),
                    })
                }
                Ok(meta) if !meta.is_dir() => {
                    return Err(StorageError::NotADirectory {
                        path: here.external_path(),
                    })
                }
                _ => {}
            }
        }
    }

    let found: BTreeSet<String> = entries
        .iter()
        .filter_map(|e| e.path().strip_prefix(&prefix))
        .filter_map(snapshot_dir_of)
        .collect();
    let mut out = Vec::with_capacity(found.len());
    for rel in found {
        let loc = SnapshotLocation {
            backend: backend.clone(),
            dir: paths::join(&key, &rel),
            local: None,
        };
        out.push(inspect(loc).await?);
    }
    out.sort_by(|a, b| {
        let key = |l: &SnapshotListing| {
            (
                paths::parent(&l.path).to_string(),
                l.checkpoint_id.is_none(),
                l.checkpoint_id,
                l.path.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    Ok(out)
}

/// The snapshot directory (relative to the listed dir) that a listed entry lies in, if any.
fn snapshot_dir_of(rel: &str) -> Option<String> {
    let is_snapshot =
        |s: &str| paths::parse_checkpoint_dir_name(s).is_some() || paths::is_savepoint_dir_name(s);
    let mut segments = rel.split('/').filter(|s| !s.is_empty());
    let first = segments.next()?;
    if is_snapshot(first) {
        return Some(first.to_string());
    }
    let second = segments.next()?;
    (paths::is_job_dir_name(first) && is_snapshot(second)).then(|| paths::join(first, second))
}

async fn inspect(loc: SnapshotLocation) -> Result<SnapshotListing, StorageError> {
    let mut raw_state_size = None;
    let status = match loc.read_metadata().await {
        Ok(md) => match loc.check_files(&md).await? {
            Ok(raw) => {
                raw_state_size = Some(raw);
                SnapshotStatus::Complete(Box::new(md))
            }
            Err(reason) => SnapshotStatus::Damaged(reason),
        },
        Err(StorageError::MetadataNotFound { .. }) => SnapshotStatus::Incomplete,
        Err(StorageError::Metadata(e)) => SnapshotStatus::Damaged(e.to_string()),
        Err(e) => return Err(e),
    };
    Ok(SnapshotListing {
        path: loc.external_path(),
        checkpoint_id: loc.checkpoint_id(),
        status,
        raw_state_size,
    })
}

impl SnapshotLocation {
    /// Checks that every state file `md` references exists with the recorded size (not the
    /// checksum: that would read all state), and adds up the raw (uncompressed) size of all
    /// state from the blobs' headers. `Err(reason)` for the first file that does not check.
    async fn check_files(
        &self,
        md: &CheckpointMetadata,
    ) -> Result<Result<u64, String>, StorageError> {
        let mut raw_total = 0u64;
        for (_, _, handle) in md.handles() {
            let (name, size) = match handle {
                StateHandle::Inline(bytes) => {
                    raw_total += raw_size(bytes, bytes.len() as u64);
                    continue;
                }
                StateHandle::File { path, size, .. } => (path, size),
            };
            let key = match self.state_key(name) {
                Ok(key) => key,
                Err(e) => return Ok(Err(e.to_string())),
            };
            let path = self.backend.external(&key);
            let actual = match self.backend.op.stat(&key).await {
                Ok(meta) => meta.content_length(),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Ok(Err(StateReadError::Missing { path }.to_string()))
                }
                Err(source) => return Err(self.io("inspect", &key, source)),
            };
            if actual != *size {
                let e = StateReadError::SizeMismatch {
                    path,
                    expected: *size,
                    actual,
                };
                return Ok(Err(e.to_string()));
            }
            let header_len = (format::COMPRESSED_HEADER_LEN as u64).min(actual);
            let header = self
                .backend
                .op
                .read_with(&key)
                .range(0..header_len)
                .await
                .map_err(|source| self.io("inspect", &key, source))?
                .to_vec();
            raw_total += raw_size(&header, actual);
        }
        Ok(Ok(raw_total))
    }
}

/// The raw size of a stored blob of `stored` bytes that starts with `header`: the size its
/// compressed header records, else `stored` (uncompressed, or a header this build cannot read,
/// which a restore reports).
fn raw_size(header: &[u8], stored: u64) -> u64 {
    match format::compressed_info(header) {
        Ok(Some((_, raw))) => raw,
        _ => stored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::storage::test_support::*;

    #[tokio::test]
    async fn list_snapshots_reports_complete_incomplete_and_damaged() {
        for root in [tmp().1, memory_root()] {
            let config = CheckpointConfig {
                savepoint_dir: Some(root.clone()),
                ..fs_config(&root, 4)
            };
            let storage = CheckpointStorage::new(&config, job()).unwrap();
            let (md1, p1) = checkpoint(&storage, 1, &[b"state one"]).await;
            let aborted = storage.checkpoint_location(CheckpointId(2));
            storage
                .write_state(&aborted, "count-0-keyed", vec![1; 10])
                .await
                .unwrap();
            let (_, p3) = checkpoint(&storage, 3, &[b"state three"]).await;
            let m3 = get(&format!("{p3}/_metadata")).await.unwrap();
            put(&format!("{p3}/_metadata"), m3[..m3.len() - 1].to_vec()).await;
            let (md4, p4) = checkpoint(&storage, 4, &[b"state four"]).await;
            let lost = file_name_of(md4.handles().next().unwrap().2).to_string();
            remove(&format!("{p4}/{lost}")).await;
            let (md10, _) = checkpoint(&storage, 10, &[b"state ten"]).await;
            let sp = storage.savepoint_location(None).unwrap();
            let kind = CheckpointKind::Savepoint {
                format: SavepointFormat::Canonical,
            };
            let (mdsp, psp) = commit(&storage, &sp, 11, kind, &[b"savepoint state"]).await;
            // Neither a job directory nor a snapshot: ignored.
            put(&format!("{root}/{}/shared/blob", job()), vec![1]).await;
            put(&format!("{root}/other/chk-5/_metadata"), vec![1]).await;

            let listed = list_snapshots(&root).await.unwrap();
            let summary: Vec<(Option<u64>, &str)> = listed
                .iter()
                .map(|l| {
                    let status = match &l.status {
                        SnapshotStatus::Complete(_) => "complete",
                        SnapshotStatus::Incomplete => "incomplete",
                        SnapshotStatus::Damaged(_) => "damaged",
                    };
                    (l.checkpoint_id.map(|c| c.0), status)
                })
                .collect();
            assert_eq!(
                summary,
                vec![
                    (None, "complete"),
                    (Some(1), "complete"),
                    (Some(2), "incomplete"),
                    (Some(3), "damaged"),
                    (Some(4), "damaged"),
                    (Some(10), "complete"),
                ],
                "{root}"
            );
            assert_eq!(listed[0].path, psp);
            assert_eq!(listed[0].status, SnapshotStatus::Complete(Box::new(mdsp)));
            assert_eq!(listed[1].path, p1);
            assert_eq!(listed[1].status, SnapshotStatus::Complete(Box::new(md1)));
            assert_eq!(listed[5].status, SnapshotStatus::Complete(Box::new(md10)));
            let SnapshotStatus::Damaged(r3) = &listed[3].status else {
                unreachable!()
            };
            assert!(r3.contains("truncated") && r3.contains(&p3), "{r3}");
            let SnapshotStatus::Damaged(r4) = &listed[4].status else {
                unreachable!()
            };
            assert!(r4.contains("missing") && r4.contains(&lost), "{r4}");

            // Listing damaged snapshots deletes nothing.
            assert_eq!(files_under(&p3).await.len(), 2, "{root}");

            // The job directory itself, and one snapshot directory alone.
            assert_eq!(list_snapshots(&storage.job_dir()).await.unwrap().len(), 5);
            let one = list_snapshots(&p1).await.unwrap();
            assert_eq!(one.len(), 1);
            assert_eq!(one[0].checkpoint_id, Some(CheckpointId(1)));
        }
    }

    #[tokio::test]
    async fn list_snapshots_of_a_missing_or_file_path_is_an_error() {
        let (_t, dir) = tmp();
        let e = list_snapshots(&format!("{dir}/missing")).await.unwrap_err();
        assert!(matches!(e, StorageError::DirectoryNotFound { .. }), "{e}");
        assert!(e.to_string().contains("missing"));
        std::fs::write(format!("{dir}/file"), b"x").unwrap();
        let e = list_snapshots(&format!("{dir}/file")).await.unwrap_err();
        assert!(matches!(e, StorageError::NotADirectory { .. }), "{e}");
        assert!(list_snapshots(&dir).await.unwrap().is_empty());
    }
}
