//! Deleting snapshots: the commit protocol backwards.
//!
//! `_metadata` goes first, so the snapshot stops being restorable at once; then its files, then
//! its directory. [`CheckpointStorage::discard_checkpoint`] drops a checkpoint the engine no
//! longer retains, [`CheckpointStorage::discard_incomplete`] the leftovers of an aborted
//! checkpoint or savepoint (refusing anything with a `_metadata`), and [`dispose_snapshot`] a
//! completed snapshot that a user (or a CLAIM-mode restore) owns. Only `chk-<n>` and
//! `savepoint-*` directories are ever deleted, and nothing is deleted because a file is
//! damaged: damage is reported, the user decides.

use super::error::StorageError;
use super::location::{resolve_snapshot, CheckpointStorage, SnapshotLocation};
use crate::checkpoint::paths;
use crate::ids::CheckpointId;

impl CheckpointStorage {
    /// Deletes checkpoint `id` of this job: its `_metadata` first (so it stops being a
    /// complete checkpoint at once), then its files, then its directory. Deleting a
    /// checkpoint that does not exist succeeds.
    ///
    /// # Errors
    ///
    /// [`StorageError::Io`] when listing or deleting fails; what was deleted stays deleted.
    pub async fn discard_checkpoint(&self, id: CheckpointId) -> Result<(), StorageError> {
        let loc = self.checkpoint_location(id);
        let key = paths::metadata_path(&loc.dir);
        loc.backend
            .op
            .delete(&key)
            .await
            .map_err(|source| loc.io("delete", &key, source))?;
        loc.delete_dir().await?;
        tracing::debug!(path = %loc.external_path(), "checkpoint discarded");
        Ok(())
    }

    /// Deletes a snapshot directory that never completed (the partial files of an aborted
    /// checkpoint or savepoint).
    ///
    /// # Errors
    ///
    /// [`StorageError::RefusingToDiscardComplete`] when `loc` has a `_metadata` (even a
    /// damaged one): nothing is deleted. [`StorageError::NotASnapshotDir`] when `loc` is not a
    /// `chk-<n>` or `savepoint-*` directory. [`StorageError::Io`] when deleting fails.
    pub async fn discard_incomplete(&self, loc: &SnapshotLocation) -> Result<(), StorageError> {
        if loc.is_complete().await? {
            return Err(StorageError::RefusingToDiscardComplete {
                path: loc.external_path(),
            });
        }
        loc.delete_dir().await?;
        tracing::debug!(path = %loc.external_path(), "incomplete snapshot discarded");
        Ok(())
    }
}

/// Deletes a completed snapshot — a savepoint the user disposes of, or a checkpoint a CLAIM-mode
/// restore took ownership of: `_metadata` first (the snapshot stops being restorable), then its
/// files, then the directory. `path` is what [`load_snapshot`](super::load_snapshot) takes.
///
/// # Errors
///
/// [`StorageError::MetadataNotFound`] when `path` holds no `_metadata` (nothing is deleted),
/// [`StorageError::NotASnapshotDir`] for anything but a `chk-<n>` or `savepoint-*` directory,
/// [`StorageError::Io`] when deleting fails.
pub async fn dispose_snapshot(path: &str) -> Result<(), StorageError> {
    resolve_snapshot(path)?.dispose().await
}

impl SnapshotLocation {
    /// See [`dispose_snapshot`].
    ///
    /// # Errors
    ///
    /// As [`dispose_snapshot`].
    pub async fn dispose(&self) -> Result<(), StorageError> {
        let name = paths::file_name(&self.dir);
        if paths::parse_checkpoint_dir_name(name).is_none() && !paths::is_savepoint_dir_name(name) {
            return Err(StorageError::NotASnapshotDir {
                path: self.external_path(),
            });
        }
        if !self.is_complete().await? {
            return Err(StorageError::MetadataNotFound {
                path: self.metadata_path(),
            });
        }
        let key = paths::metadata_path(&self.dir);
        self.backend
            .op
            .delete(&key)
            .await
            .map_err(|source| self.io("delete", &key, source))?;
        self.delete_dir().await
    }

    /// Deletes every file under the directory, then its sub-directories deepest first, then
    /// the directory itself. Refuses anything but a `chk-<n>` or `savepoint-*` directory.
    async fn delete_dir(&self) -> Result<(), StorageError> {
        let name = paths::file_name(&self.dir);
        if paths::parse_checkpoint_dir_name(name).is_none() && !paths::is_savepoint_dir_name(name) {
            return Err(StorageError::NotASnapshotDir {
                path: self.external_path(),
            });
        }
        let prefix = format!("{}/", self.dir);
        let op = &self.backend.op;
        let entries = op
            .list_with(&prefix)
            .recursive(true)
            .await
            .map_err(|source| self.io("list", &prefix, source))?;
        // fs lists directories (ending in `/`), memory only files.
        let (mut dirs, files): (Vec<String>, Vec<String>) = entries
            .into_iter()
            .map(|e| e.path().to_string())
            .filter(|p| *p != prefix)
            .partition(|p| p.ends_with('/'));
        for file in &files {
            op.delete(file)
                .await
                .map_err(|source| self.io("delete", file, source))?;
        }
        dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
        dirs.push(prefix);
        for dir in &dirs {
            op.delete(dir)
                .await
                .map_err(|source| self.io("delete directory", dir, source))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::checkpoint::storage::load_snapshot;
    use crate::checkpoint::storage::test_support::*;

    #[tokio::test]
    async fn discard_checkpoint_removes_metadata_files_and_directory() {
        for root in [tmp().1, memory_root()] {
            let storage = CheckpointStorage::new(&fs_config(&root, 4), job()).unwrap();
            let (_, path1) = checkpoint(&storage, 1, &[b"one one one", b"more of one"]).await;
            let (md2, path2) = checkpoint(&storage, 2, &[b"two two two"]).await;
            assert_eq!(files_under(&path1).await.len(), 3);

            storage.discard_checkpoint(CheckpointId(1)).await.unwrap();
            assert!(files_under(&path1).await.is_empty(), "{root}");
            if !root.starts_with("memory://") {
                assert!(
                    !std::path::Path::new(&path1).exists(),
                    "{path1} still exists"
                );
            }
            assert!(matches!(
                load_snapshot(&path1).await,
                Err(StorageError::MetadataNotFound { .. })
            ));
            // The other checkpoint is untouched; discarding again is a no-op.
            assert_eq!(load_snapshot(&path2).await.unwrap().1, md2);
            storage.discard_checkpoint(CheckpointId(1)).await.unwrap();
            storage.discard_checkpoint(CheckpointId(77)).await.unwrap();
        }
    }

    #[tokio::test]
    async fn discard_incomplete_refuses_a_completed_snapshot_and_removes_an_aborted_one() {
        for root in [tmp().1, memory_root()] {
            let storage = CheckpointStorage::new(&fs_config(&root, 4), job()).unwrap();
            let (md, path) = checkpoint(&storage, 1, &[b"complete state"]).await;
            let done = storage.checkpoint_location(CheckpointId(1));
            let e = storage.discard_incomplete(&done).await.unwrap_err();
            assert!(
                matches!(e, StorageError::RefusingToDiscardComplete { .. }),
                "{e}"
            );
            assert!(e.to_string().contains(&path), "{e}");
            // A damaged `_metadata` is still never discarded as incomplete.
            put(&format!("{path}/_metadata"), b"junk".to_vec()).await;
            assert!(storage.discard_incomplete(&done).await.is_err());
            assert_eq!(files_under(&path).await.len(), 2);
            let _ = md;

            let aborted = storage.checkpoint_location(CheckpointId(2));
            storage
                .write_state(&aborted, "count-0-keyed", vec![5; 10])
                .await
                .unwrap();
            storage
                .write_state(&aborted, "count-1-keyed", vec![6; 10])
                .await
                .unwrap();
            assert_eq!(files_under(&aborted.external_path()).await.len(), 2);
            storage.discard_incomplete(&aborted).await.unwrap();
            assert!(files_under(&aborted.external_path()).await.is_empty());
            if !root.starts_with("memory://") {
                assert!(!std::path::Path::new(&aborted.external_path()).exists());
            }
        }
    }

    #[tokio::test]
    async fn dispose_removes_a_savepoint_metadata_first_and_refuses_non_snapshots() {
        let (_tmp, dir) = tmp();
        let storage = CheckpointStorage::new(&fs_config(&dir, 16), job()).unwrap();
        let loc = storage.savepoint_location(Some(&dir)).unwrap();
        let h = storage
            .write_state(&loc, "op-0-keyed", vec![7; 64])
            .await
            .unwrap();
        let mut md = metadata(
            1,
            CheckpointKind::Savepoint {
                format: Default::default(),
            },
            vec![h],
        );
        md.checkpoint_id = CheckpointId(1);
        storage.write_metadata(&loc, &md).await.unwrap();
        let path = loc.external_path();
        assert!(Path::new(&path).exists());
        assert!(matches!(
            dispose_snapshot(&dir).await,
            Err(StorageError::NotASnapshotDir { .. })
        ));
        dispose_snapshot(&format!("{path}/_metadata"))
            .await
            .unwrap();
        assert!(!Path::new(&path).exists());
        assert!(matches!(
            dispose_snapshot(&path).await,
            Err(StorageError::MetadataNotFound { .. }) | Err(StorageError::Io { .. })
        ));
    }
}
