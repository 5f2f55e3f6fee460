//! Deleting snapshots: the commit protocol backwards.
//!
//! `_metadata` goes first, so the snapshot stops being restorable at once; then its files, then
//! its directory. [`CheckpointStorage::discard_checkpoint`] drops a checkpoint the engine no
//! longer retains, [`CheckpointStorage::discard_incomplete`] the leftovers of an aborted
//! checkpoint or savepoint (refusing anything with a `_metadata`), and [`dispose_snapshot`] a
//! completed snapshot that a user (or a CLAIM-mode restore) owns.
//! [`CheckpointStorage::discard_abandoned`] sweeps the job's directory for the leftovers that
//! `discard_incomplete` could not catch (files a subtask uploaded after its checkpoint was
//! aborted and discarded) and reports them in an [`AbandonedSweep`]. Only `chk-<n>` and
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
        if let Some(local) = &self.inner.local {
            local.discard(id).await;
        }
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
        if let (Some(local), Some(id)) = (&loc.local, loc.checkpoint_id()) {
            local.discard(id).await;
        }
        tracing::debug!(path = %loc.external_path(), "incomplete snapshot discarded");
        Ok(())
    }

    /// Deletes every local copy of this job's checkpoints (local recovery), at job end.
    pub async fn discard_local_copies(&self) {
        if let Some(local) = &self.inner.local {
            local.discard_all().await;
        }
    }
}

/// What [`CheckpointStorage::discard_abandoned`] did.
#[derive(Debug, Default)]
pub struct AbandonedSweep {
    /// Abandoned checkpoints whose directories were deleted, in id order.
    pub discarded: Vec<CheckpointId>,
    /// Abandoned checkpoints whose directories could not be deleted, or not entirely, with
    /// why, in id order. What was deleted stays deleted; the rest is left for a later sweep.
    pub failed: Vec<(CheckpointId, StorageError)>,
}

impl AbandonedSweep {
    /// Whether every abandoned checkpoint found was deleted.
    pub fn is_clean(&self) -> bool {
        self.failed.is_empty()
    }
}

impl CheckpointStorage {
    /// Deletes the directories of abandoned checkpoints: every `chk-<n>` directory of this
    /// job that has no `_metadata` and for which `keep(n)` is false.
    ///
    /// Why: when a checkpoint is aborted, its subtasks may still be uploading; files that
    /// land after [`CheckpointStorage::discard_incomplete`] stay behind (on a full disk, a
    /// run leaves a trail of them). This sweep removes them later.
    ///
    /// # The caller's contract
    ///
    /// `keep(n)` must be true for every checkpoint that may still be written to or complete:
    /// the pending ones, the one whose `_metadata` is being written, and every id not handed
    /// out yet (a checkpoint triggered while the sweep runs). The job manager takes both when
    /// it starts the sweep, e.g. `move |id| id >= next_id || pending.contains(&id)`, and calls
    /// it after each completed checkpoint and once more when the job ends (after its last
    /// checkpoint settled). Checkpoints from before a failover that did not complete are
    /// abandoned too. The job directory must be this job's alone (it is, unless `create-subdir`
    /// is off and jobs share a directory: then do not sweep).
    ///
    /// What is never deleted: a directory with a `_metadata` (complete, or damaged: damage is
    /// for the user), a directory for which `keep` is true, and anything that is not a
    /// `chk-<n>` directory (`shared/`, `taskowned/`, savepoints, unknown files, a *file*
    /// named `chk-<n>`).
    ///
    /// # Errors
    ///
    /// [`StorageError::Io`] when the job directory cannot be listed (nothing is deleted). A
    /// directory that cannot be checked or deleted does not stop the sweep: it is logged and
    /// reported in [`AbandonedSweep::failed`], and what remains of it is left for a later
    /// sweep.
    pub async fn discard_abandoned(
        &self,
        keep: impl Fn(CheckpointId) -> bool,
    ) -> Result<AbandonedSweep, StorageError> {
        let job_dir = self.inner.paths.job_dir();
        let prefix = if job_dir.is_empty() {
            String::new()
        } else {
            format!("{job_dir}/")
        };
        let list_path = if prefix.is_empty() { "/" } else { &prefix };
        let op = &self.inner.backend.op;
        let entries = op
            .list(list_path)
            .await
            .map_err(|source| StorageError::Io {
                action: "list",
                path: self.job_dir(),
                source: Box::new(source),
            })?;
        // Directories only: a listed `chk-<n>/` (fs and memory list sub-directories so).
        let mut candidates: Vec<CheckpointId> = entries
            .iter()
            .filter_map(|e| e.path().strip_prefix(&prefix))
            .filter_map(|rel| rel.strip_suffix('/'))
            .filter(|name| !name.contains('/'))
            .filter_map(paths::parse_checkpoint_dir_name)
            .filter(|&id| !keep(id))
            .collect();
        candidates.sort();
        candidates.dedup();

        let mut sweep = AbandonedSweep::default();
        for id in candidates {
            let loc = self.checkpoint_location(id);
            match self.discard_incomplete(&loc).await {
                Ok(()) => sweep.discarded.push(id),
                Err(StorageError::RefusingToDiscardComplete { .. }) => {}
                Err(e) => {
                    tracing::warn!(path = %loc.external_path(), error = %e,
                        "could not discard an abandoned checkpoint; a later sweep retries");
                    sweep.failed.push((id, e));
                }
            }
        }
        if !sweep.discarded.is_empty() {
            tracing::debug!(job_dir = %self.job_dir(), discarded = ?sweep.discarded,
                "abandoned checkpoints discarded");
        }
        Ok(sweep)
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
        // Deleting is idempotent: what another deletion (an abort, retention, a sweep)
        // removed first is gone either way.
        let gone = |e: &opendal::Error| e.kind() == opendal::ErrorKind::NotFound;
        for file in &files {
            match op.delete(file).await {
                Err(source) if !gone(&source) => return Err(self.io("delete", file, source)),
                _ => {}
            }
        }
        dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
        dirs.push(prefix);
        for dir in &dirs {
            match op.delete(dir).await {
                Err(source) if !gone(&source) => {
                    return Err(self.io("delete directory", dir, source))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::checkpoint::storage::faults::{
        self, FaultInjector, FaultKind, FaultPlan, FaultRule,
    };
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

    /// Two state files in `chk-<id>` and no `_metadata`: an aborted checkpoint's leftovers.
    async fn leftovers(storage: &CheckpointStorage, id: u64) -> String {
        let loc = storage.checkpoint_location(CheckpointId(id));
        for hint in ["count-0-keyed", "count-1-keyed"] {
            storage.write_state(&loc, hint, vec![3; 16]).await.unwrap();
        }
        loc.external_path()
    }

    #[tokio::test]
    async fn discard_abandoned_removes_only_incomplete_checkpoints_the_caller_does_not_keep() {
        for root in [tmp().1, memory_root()] {
            let storage = CheckpointStorage::new(&fs_config(&root, 4), job()).unwrap();
            let empty = storage.discard_abandoned(|_| false).await.unwrap();
            assert!(empty.discarded.is_empty() && empty.is_clean(), "{root}");

            let (md1, p1) = checkpoint(&storage, 1, &[b"complete one", b"more of it"]).await;
            let (_, p3) = checkpoint(&storage, 3, &[b"will be damaged"]).await;
            put(&format!("{p3}/_metadata"), b"junk".to_vec()).await;
            leftovers(&storage, 2).await;
            leftovers(&storage, 5).await;
            leftovers(&storage, 6).await; // in flight
            let job_dir = storage.job_dir();
            for other in [
                "shared/blob",
                "taskowned/t",
                "savepoint-012345-abcdefabcdef/state",
                "notes.txt",
                "chk-9",
                "chk-007/x",
                "chk-/x",
            ] {
                put(&format!("{job_dir}/{other}"), vec![1]).await;
            }
            let before = files_under(&job_dir).await;

            let sweep = storage
                .discard_abandoned(|id| id == CheckpointId(6))
                .await
                .unwrap();
            assert_eq!(sweep.discarded, vec![CheckpointId(2), CheckpointId(5)]);
            assert!(sweep.is_clean(), "{root}: {:?}", sweep.failed);
            let expected: Vec<String> = before
                .into_iter()
                .filter(|f| !f.starts_with("chk-2/") && !f.starts_with("chk-5/"))
                .collect();
            assert_eq!(files_under(&job_dir).await, expected, "{root}");
            if !root.starts_with("memory://") {
                assert!(!Path::new(&format!("{job_dir}/chk-2")).exists());
                assert!(Path::new(&format!("{job_dir}/chk-9")).is_file());
            }
            let (loc1, loaded) = load_snapshot(&p1).await.unwrap();
            assert_eq!(loaded, md1);
            assert_eq!(read_all(&loc1, &loaded).await.len(), 2);

            // Nothing left to do; then the in-flight one is given up too.
            let again = storage.discard_abandoned(|id| id.0 == 6).await.unwrap();
            assert!(again.discarded.is_empty(), "{root}");
            let last = storage.discard_abandoned(|_| false).await.unwrap();
            assert_eq!(last.discarded, vec![CheckpointId(6)], "{root}");
            assert_eq!(files_under(&p3).await.len(), 2, "{root}");
        }
    }

    #[tokio::test]
    async fn a_fault_during_the_sweep_leaves_the_rest_for_a_later_sweep() {
        for root in [tmp().1, memory_root()] {
            let injector = Arc::new(FaultInjector::new(FaultPlan::new(11)));
            let _guard = faults::install(&root, Arc::clone(&injector)).unwrap();
            let storage = CheckpointStorage::new(&fs_config(&root, 4), job()).unwrap();
            let (md1, p1) = checkpoint(&storage, 1, &[b"complete one"]).await;
            let chk1_files = files_under(&p1).await;
            let p2 = leftovers(&storage, 2).await;
            let p4 = leftovers(&storage, 4).await;

            // The first delete under chk-2 fails: chk-2 stays whole, chk-4 goes.
            injector.arm(FaultRule::delete_error().in_dir("chk-2").once());
            let sweep = storage.discard_abandoned(|_| false).await.unwrap();
            assert_eq!(sweep.discarded, vec![CheckpointId(4)], "{root}");
            assert_eq!(sweep.failed.len(), 1, "{root}");
            let (id, e) = &sweep.failed[0];
            assert_eq!(*id, CheckpointId(2));
            assert!(matches!(e, StorageError::Io { .. }), "{e}");
            let msg = e.to_string();
            assert!(
                msg.contains("injected fault") && msg.contains("chk-2"),
                "{msg}"
            );
            assert_eq!(files_under(&p2).await.len(), 2, "{root}");
            assert!(files_under(&p4).await.is_empty(), "{root}");

            // The job directory cannot be listed: an error, and nothing is deleted.
            let list = injector.arm(FaultRule::list_error());
            let e = storage.discard_abandoned(|_| false).await.unwrap_err();
            assert!(matches!(e, StorageError::Io { action: "list", .. }), "{e}");
            assert_eq!(files_under(&p2).await.len(), 2, "{root}");
            injector.disarm(list);

            // Half the deletes fail: sweep after sweep finishes the job.
            leftovers(&storage, 7).await;
            leftovers(&storage, 8).await;
            let flaky = injector.arm(FaultRule::delete_error().with_probability(0.5));
            let mut discarded = Vec::new();
            let mut sweeps = 0;
            loop {
                sweeps += 1;
                assert!(sweeps <= 50, "{root}: the sweep never finished");
                let sweep = storage.discard_abandoned(|_| false).await.unwrap();
                discarded.extend(sweep.discarded);
                if sweep.failed.is_empty() {
                    break;
                }
            }
            injector.disarm(flaky);
            // (A memory store has no directories: one whose last file went in a sweep that
            // then failed is gone without being reported as discarded.)
            assert!(
                discarded.iter().all(|id| [2, 7, 8].contains(&id.0)),
                "{discarded:?}"
            );
            let left: Vec<String> = files_under(&storage.job_dir()).await;
            assert!(
                left.iter().all(|f| f.starts_with("chk-1/")),
                "{root}: {left:?}"
            );
            if !root.starts_with("memory://") {
                for id in [2, 7, 8] {
                    let dir = format!("{}/chk-{id}", storage.job_dir());
                    assert!(!Path::new(&dir).exists(), "{dir}");
                }
            }
            assert_eq!(files_under(&p1).await, chk1_files, "{root}");
            let (loc1, loaded) = load_snapshot(&p1).await.unwrap();
            assert_eq!(loaded, md1);
            assert_eq!(
                read_all(&loc1, &loaded).await,
                vec![b"complete one".to_vec()]
            );
            assert!(injector.stats().get(FaultKind::DeleteError) >= 2, "{root}");
            assert_eq!(injector.stats().get(FaultKind::ListError), 1, "{root}");
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
