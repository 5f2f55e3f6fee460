//! Local recovery: a copy of each subtask's state files on local disk, read on failover.
//!
//! With `execution.checkpointing.local-backup.enabled` ([`LocalRecoveryConfig::backup`]),
//! [`CheckpointStorage::write_state`](super::CheckpointStorage::write_state) writes every state
//! *file* of a checkpoint (not of a savepoint; inline state is in `_metadata` anyway) also to
//! `<root>/<job-id>/chk-<n>/<file name>`, after the remote write succeeded. A failed local
//! write is a warning, never a failed checkpoint: the remote copy is the checkpoint.
//!
//! With `execution.state-recovery.from-local` ([`LocalRecoveryConfig::restore_from_local`]),
//! a failover restore ([`SnapshotLocation::read_state`](super::SnapshotLocation::read_state) on
//! a location of the job's own storage) reads the local copy first and uses it only when its
//! size and CRC-32 are those `_metadata` recorded for the remote file; a missing, short or
//! damaged local copy is logged and the remote copy is read instead. A restore from a path a
//! user gives (`-s`) never reads local copies.
//!
//! Local copies follow the remote checkpoints: retention, aborts and the sweep of abandoned
//! checkpoints delete them with the remote directory, and the job's local directory goes at
//! job end. The root of a file is one of the configured directories, chosen by a hash of the
//! file name, so a reader finds it without a listing.

use std::path::PathBuf;

use tracing::{debug, warn};

use crate::checkpoint::options::LocalRecoveryConfig;
use crate::checkpoint::paths;
use crate::ids::{CheckpointId, JobId};

/// The local directory used when no `local-backup.dirs` are configured.
pub fn default_root() -> PathBuf {
    std::env::temp_dir().join("weir-local-state")
}

/// One job's local copies.
#[derive(Clone, Debug)]
pub(super) struct LocalCopies {
    /// `<root>/<job id>` for every root.
    job_dirs: Vec<PathBuf>,
    /// Whether restores read them (`from-local`).
    read: bool,
}

/// Why a local copy was not used.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum LocalMiss {
    Missing,
    Damaged(String),
}

impl LocalCopies {
    /// The local copies `config` asks for, if it asks for any.
    pub(super) fn new(config: &LocalRecoveryConfig, job_id: JobId) -> Option<Self> {
        if !config.backup {
            return None;
        }
        let roots: Vec<PathBuf> = if config.dirs.is_empty() {
            vec![default_root()]
        } else {
            config.dirs.iter().map(PathBuf::from).collect()
        };
        Some(Self {
            job_dirs: roots.into_iter().map(|r| r.join(job_id.to_hex())).collect(),
            read: config.restore_from_local,
        })
    }

    pub(super) fn reads(&self) -> bool {
        self.read
    }

    /// Where the copy of state file `name` of checkpoint `id` lives.
    pub(super) fn path(&self, id: CheckpointId, name: &str) -> PathBuf {
        let i = (crc32fast::hash(name.as_bytes()) as usize) % self.job_dirs.len();
        self.job_dirs[i]
            .join(paths::checkpoint_dir_name(id))
            .join(name)
    }

    /// Writes the copy; a failure is logged, not returned (the remote copy is the checkpoint).
    pub(super) async fn write(&self, id: CheckpointId, name: &str, bytes: &[u8]) {
        let path = self.path(id, name);
        let result = async {
            if let Some(dir) = path.parent() {
                tokio::fs::create_dir_all(dir).await?;
            }
            tokio::fs::write(&path, bytes).await
        }
        .await;
        if let Err(e) = result {
            warn!(checkpoint_id = id.0, path = %path.display(), error = %e,
                "writing the local copy of a state file failed; failover will read the remote copy");
        }
    }

    /// The copy's bytes, if it exists and has the size and CRC-32 `_metadata` recorded.
    pub(super) async fn read(
        &self,
        id: CheckpointId,
        name: &str,
        size: u64,
        crc32: u32,
    ) -> Result<Vec<u8>, LocalMiss> {
        let path = self.path(id, name);
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(LocalMiss::Missing),
            Err(e) => return Err(LocalMiss::Damaged(format!("cannot be read: {e}"))),
        };
        if bytes.len() as u64 != size {
            return Err(LocalMiss::Damaged(format!(
                "{} bytes, `_metadata` says {size}",
                bytes.len()
            )));
        }
        let actual = crc32fast::hash(&bytes);
        if actual != crc32 {
            return Err(LocalMiss::Damaged(format!(
                "checksum {actual:08x}, `_metadata` says {crc32:08x}"
            )));
        }
        debug!(checkpoint_id = id.0, path = %path.display(), "state read from its local copy");
        Ok(bytes)
    }

    /// Deletes the copies of checkpoint `id` (in every root).
    pub(super) async fn discard(&self, id: CheckpointId) {
        for dir in &self.job_dirs {
            remove_dir(&dir.join(paths::checkpoint_dir_name(id))).await;
        }
    }

    /// Deletes every copy of the job (at job end).
    pub(super) async fn discard_all(&self) {
        for dir in &self.job_dirs {
            remove_dir(dir).await;
        }
    }
}

async fn remove_dir(dir: &std::path::Path) {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warn!(path = %dir.display(), error = %e, "deleting local copies failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::storage::test_support::*;

    fn config(remote: &str, local: &str, read: bool) -> CheckpointConfig {
        CheckpointConfig {
            local_recovery: LocalRecoveryConfig {
                backup: true,
                restore_from_local: read,
                dirs: vec![format!("{local}/a"), format!("{local}/b")],
            },
            ..fs_config(remote, 4)
        }
    }

    fn files_in(dir: &std::path::Path) -> Vec<PathBuf> {
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
        out.sort();
        out
    }

    #[tokio::test]
    async fn failover_reads_the_local_copy_and_the_remote_one_when_it_is_missing_or_damaged() {
        let (_r, remote) = tmp();
        let (_l, local) = tmp();
        let storage = CheckpointStorage::new(&config(&remote, &local, true), job()).unwrap();
        let states: [&[u8]; 3] = [b"first state file", b"second state file", b"third one"];
        let (md, path) = checkpoint(&storage, 7, &states).await;
        let copies = files_in(std::path::Path::new(&local));
        assert_eq!(copies.len(), 3, "{copies:?}");
        assert!(copies.iter().all(|c| c
            .to_string_lossy()
            .contains(&format!("{}/chk-7/", job().to_hex()))));
        let loc = storage.checkpoint_location(CheckpointId(7));
        let handles: Vec<&StateHandle> = md.handles().map(|(_, _, h)| h).collect();

        // The remote files gone: every read is served by the local copies.
        for h in &handles {
            remove(&format!("{path}/{}", file_name_of(h))).await;
        }
        for (h, want) in handles.iter().zip(states) {
            assert_eq!(loc.read_state(h).await.unwrap(), want);
        }

        // Back remote; one local copy truncated, one flipped, one deleted: the remote is read.
        for (h, s) in handles.iter().zip(states) {
            put(&format!("{path}/{}", file_name_of(h)), s.to_vec()).await;
        }
        let local_of = |h: &StateHandle| {
            storage
                .inner
                .local
                .as_ref()
                .unwrap()
                .path(CheckpointId(7), file_name_of(h))
        };
        std::fs::write(local_of(handles[0]), b"first").unwrap();
        std::fs::write(local_of(handles[1]), b"sec0nd state file").unwrap();
        std::fs::remove_file(local_of(handles[2])).unwrap();
        for (h, want) in handles.iter().zip(states) {
            assert_eq!(loc.read_state(h).await.unwrap(), want);
        }

        // A path given by a user (-s) never reads local copies.
        let (opened, _) = crate::checkpoint::storage::load_snapshot(&path)
            .await
            .unwrap();
        assert!(opened.local.is_none());

        // Retention deletes the copies with the checkpoint; the job's end deletes the rest.
        checkpoint(&storage, 8, &[b"eighth state"]).await;
        storage.discard_checkpoint(CheckpointId(7)).await.unwrap();
        let left = files_in(std::path::Path::new(&local));
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(left[0].to_string_lossy().contains("/chk-8/"));
        storage.discard_local_copies().await;
        assert!(files_in(std::path::Path::new(&local)).is_empty());
    }

    #[tokio::test]
    async fn savepoints_get_no_local_copy_and_without_from_local_none_is_read() {
        let (_r, remote) = tmp();
        let (_l, local) = tmp();
        let c = CheckpointConfig {
            savepoint_dir: Some(format!("{remote}/sp")),
            ..config(&remote, &local, false)
        };
        let storage = CheckpointStorage::new(&c, job()).unwrap();
        let sp = storage.savepoint_location(None).unwrap();
        commit(
            &storage,
            &sp,
            1,
            CheckpointKind::Savepoint {
                format: SavepointFormat::default(),
            },
            &[b"savepoint state"],
        )
        .await;
        assert!(files_in(std::path::Path::new(&local)).is_empty());

        let (md, path) = checkpoint(&storage, 2, &[b"checkpoint state"]).await;
        assert_eq!(files_in(std::path::Path::new(&local)).len(), 1);
        let h = md.handles().next().unwrap().2;
        remove(&format!("{path}/{}", file_name_of(h))).await;
        let loc = storage.checkpoint_location(CheckpointId(2));
        assert!(matches!(
            loc.read_state(h).await,
            Err(crate::checkpoint::storage::StateReadError::Missing { .. })
        ));
    }
}
