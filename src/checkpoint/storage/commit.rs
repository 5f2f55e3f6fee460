//! The commit protocol: a snapshot's state first, its `_metadata` last, never overwritten.
//!
//! [`CheckpointStorage::write_state`] compresses each blob of state when the job asks for it
//! (`snapshot-compression`, see [`crate::format::compress`]; sizes and checksums in `_metadata`
//! are of the stored bytes), then stores it inline in `_metadata` when it is small
//! (`InlinePolicy`), else as a file of the snapshot's directory under a fresh unique name
//! ([`paths::state_file_name`]). [`CheckpointStorage::write_metadata`] commits the snapshot once
//! all its state is written: `_metadata` is the marker of a complete snapshot. Where the
//! service can rename (fs), `_metadata` is written to a temporary file that is renamed into
//! place, so no reader ever sees a partial `_metadata`; elsewhere (memory, object stores) a
//! write only becomes visible when it completes and is made with `if_not_exists`. An existing
//! `_metadata` is never overwritten. Undoing a snapshot is [`super::discard`].

use opendal::ErrorKind;

use super::error::StorageError;
use super::location::{CheckpointStorage, SnapshotLocation};
use crate::checkpoint::metadata::{CheckpointMetadata, StateHandle};
use crate::checkpoint::paths;
use crate::format::{self, Codec};

/// Blobs at least this large are compressed on tokio's blocking pool, not on the calling task.
const COMPRESS_OFF_TASK: usize = 64 * 1024;

/// `blob` compressed with `codec` (see [`crate::format::compress`]), or unchanged when
/// compression would not make it smaller (its header then simply says it is uncompressed).
///
/// # Errors
///
/// [`StorageError::Io`] when the blocking pool could not run the compression (a panic in the
/// codec, or the runtime shutting down): the checkpoint fails, never the process.
async fn compress_state(
    codec: Codec,
    blob: Vec<u8>,
    name_hint: &str,
) -> Result<Vec<u8>, StorageError> {
    fn smaller(codec: Codec, blob: Vec<u8>) -> Vec<u8> {
        let packed = format::compress(codec, &blob);
        if packed.len() < blob.len() {
            packed
        } else {
            blob
        }
    }
    if blob.len() < COMPRESS_OFF_TASK {
        return Ok(smaller(codec, blob));
    }
    let len = blob.len();
    tokio::task::spawn_blocking(move || smaller(codec, blob))
        .await
        .map_err(|e| StorageError::Io {
            action: "compress",
            path: name_hint.to_string(),
            source: Box::new(opendal::Error::new(
                opendal::ErrorKind::Unexpected,
                format!("compressing a {len}-byte state blob failed: {e}"),
            )),
        })
}

/// How state blobs are stored.
#[derive(Clone, Copy, Debug)]
pub(super) enum InlinePolicy {
    /// Jobmanager storage: everything inline, each blob at most `max_state_size` bytes.
    AlwaysInline { max_state_size: u64 },
    /// Filesystem storage: inline below `threshold` bytes, else a file.
    Threshold(u64),
}

impl CheckpointStorage {
    /// Stores one blob of state for the snapshot at `loc` and returns its handle, compressed
    /// first when the storage compresses (`snapshot-compression`): inline when
    /// smaller than the inline threshold (always, for jobmanager storage), else a new file in
    /// `loc` named after `name_hint` (see [`paths::state_hint`], e.g. `count-1-keyed`).
    ///
    /// # Errors
    ///
    /// [`StorageError::StateTooLarge`] when jobmanager storage gets a blob over its limit;
    /// [`StorageError::Io`] when the file cannot be written.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may leave a partial file; it is never referenced, and goes with
    /// the location's [`CheckpointStorage::discard_incomplete`].
    pub async fn write_state(
        &self,
        loc: &SnapshotLocation,
        name_hint: &str,
        bytes: Vec<u8>,
    ) -> Result<StateHandle, StorageError> {
        let bytes = match self.inner.compression {
            Some(codec) => compress_state(codec, bytes, name_hint).await?,
            None => bytes,
        };
        let size = bytes.len() as u64;
        match self.inner.policy {
            InlinePolicy::AlwaysInline { max_state_size } if size > max_state_size => {
                Err(StorageError::StateTooLarge {
                    name: name_hint.to_string(),
                    size,
                    limit: max_state_size,
                })
            }
            InlinePolicy::AlwaysInline { .. } => Ok(StateHandle::Inline(bytes)),
            InlinePolicy::Threshold(threshold) if size < threshold => {
                Ok(StateHandle::Inline(bytes))
            }
            InlinePolicy::Threshold(_) => {
                let name = paths::state_file_name(name_hint);
                let key = paths::join(&loc.dir, &name);
                let crc32 = crc32fast::hash(&bytes);
                // Cheap to clone: the local copy shares the bytes.
                let buffer = opendal::Buffer::from(bytes);
                loc.backend
                    .op
                    .write_with(&key, buffer.clone())
                    .if_not_exists(true)
                    .await
                    .map_err(|source| loc.io("write state file", &key, source))?;
                loc.verify_size(&key, size).await?;
                if let (Some(local), Some(id)) = (&loc.local, loc.checkpoint_id()) {
                    local.write(id, &name, &buffer.to_bytes()).await;
                }
                Ok(StateHandle::File {
                    path: name,
                    size,
                    crc32,
                })
            }
        }
    }

    /// Commits the snapshot at `loc` by writing its `_metadata`, after all its state, and
    /// returns the external path of the snapshot's directory.
    ///
    /// `_metadata` appears whole or not at all, and an existing one is never overwritten. A
    /// failure leaves every other snapshot, in particular the last completed one, untouched.
    /// (On fs the file is synced before the rename; the directory is not.)
    ///
    /// # Errors
    ///
    /// [`StorageError::AlreadyComplete`] when `loc` already has a `_metadata`;
    /// [`StorageError::CheckpointIdMismatch`] when `loc` is `chk-<n>` and `md` is another
    /// checkpoint; [`StorageError::Io`] when writing fails.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves either no `_metadata` or a complete one, and possibly a
    /// `_metadata.inprogress-*` temporary file, which [`CheckpointStorage::discard_incomplete`]
    /// removes.
    pub async fn write_metadata(
        &self,
        loc: &SnapshotLocation,
        md: &CheckpointMetadata,
    ) -> Result<String, StorageError> {
        if let Some(expected) = loc.checkpoint_id() {
            if expected != md.checkpoint_id {
                return Err(StorageError::CheckpointIdMismatch {
                    path: loc.external_path(),
                    expected,
                    found: md.checkpoint_id,
                });
            }
        }
        let bytes = md.encode();
        let op = &loc.backend.op;
        let key = paths::metadata_path(&loc.dir);
        if loc.exists(&key).await? {
            return Err(StorageError::AlreadyComplete {
                path: loc.backend.external(&key),
            });
        }
        if op.info().capability().rename {
            let tmp = paths::metadata_temp_path(&loc.dir);
            let size = bytes.len() as u64;
            op.write_with(&tmp, bytes)
                .if_not_exists(true)
                .await
                .map_err(|source| loc.io("write", &tmp, source))?;
            let committed = async {
                loc.verify_size(&tmp, size).await?;
                if loc.exists(&key).await? {
                    return Err(StorageError::AlreadyComplete {
                        path: loc.backend.external(&key),
                    });
                }
                op.rename(&tmp, &key)
                    .await
                    .map_err(|source| loc.io("rename into place", &key, source))
            }
            .await;
            if committed.is_err() {
                if let Err(e) = op.delete(&tmp).await {
                    tracing::warn!(path = %loc.backend.external(&tmp), error = %e,
                        "could not remove a temporary metadata file");
                }
            }
            committed?;
        } else {
            let size = bytes.len() as u64;
            op.write_with(&key, bytes)
                .if_not_exists(true)
                .await
                .map_err(|source| match source.kind() {
                    ErrorKind::ConditionNotMatch => StorageError::AlreadyComplete {
                        path: loc.backend.external(&key),
                    },
                    _ => loc.io("write", &key, source),
                })?;
            if let Err(e) = loc.verify_size(&key, size).await {
                // Written by this call a moment ago and torn: never a completed snapshot.
                if let Err(d) = op.delete(&key).await {
                    tracing::warn!(path = %loc.backend.external(&key), error = %d,
                        "could not remove a torn metadata file");
                }
                return Err(e);
            }
        }
        tracing::debug!(path = %loc.external_path(), checkpoint = %md.checkpoint_id,
            "snapshot committed");
        Ok(loc.external_path())
    }
}

impl SnapshotLocation {
    /// Checks that `key` holds `size` bytes after a write that reported success: a write the
    /// storage tore (a full disk, a failing device) fails the checkpoint now rather than the
    /// restore that would read it later.
    async fn verify_size(&self, key: &str, size: u64) -> Result<(), StorageError> {
        let meta = self
            .backend
            .op
            .stat(key)
            .await
            .map_err(|source| self.io("check the size of", key, source))?;
        if meta.content_length() != size {
            return Err(StorageError::ShortWrite {
                path: self.backend.external(key),
                written: size,
                stored: meta.content_length(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod compression_tests {
    use super::*;
    use crate::checkpoint::storage::list_snapshots;
    use crate::checkpoint::storage::test_support::*;

    #[tokio::test]
    async fn compressed_state_is_stored_with_its_codec_and_listed_with_both_sizes() {
        for root in [memory_root(), tmp().1] {
            let config = CheckpointConfig {
                compression: true,
                ..fs_config(&root, 256)
            };
            let storage = CheckpointStorage::new(&config, job()).unwrap();
            // A big blob (compressed off the task), a small one (inline), and one that
            // compression would only make larger (stored as it is).
            let big = format::encode(*b"WKST", 1, &[7u8; 200_000]);
            let small = format::encode(*b"WKST", 1, &[1u8; 900]);
            let mut x = 0x9E37_79B9_7F4A_7C15u64;
            let noise: Vec<u8> = (0..5000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let (md, path) = checkpoint(&storage, 1, &[&big, &small, &noise]).await;
            let handles: Vec<&StateHandle> = md.handles().map(|(_, _, h)| h).collect();
            assert!(matches!(handles[0], StateHandle::File { size, .. } if *size < 10_000));
            assert!(matches!(handles[1], StateHandle::Inline(b) if b.len() < 100));
            let (loc, loaded) = crate::checkpoint::storage::load_snapshot(&path)
                .await
                .unwrap();
            let stored = read_all(&loc, &loaded).await;
            assert!(format::is_compressed(&stored[0]) && format::is_compressed(&stored[1]));
            assert_eq!(
                stored[2], noise,
                "incompressible state is stored uncompressed"
            );
            assert_eq!(&*format::decompress(&stored[0]).unwrap(), &big[..]);
            assert_eq!(&*format::decompress(&stored[1]).unwrap(), &small[..]);

            let listed = list_snapshots(&path).await.unwrap();
            let raw = (big.len() + small.len() + noise.len()) as u64;
            assert_eq!(listed[0].raw_state_size, Some(raw), "{root}");
            assert!(loaded.state_size() < raw / 10);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::checkpoint::storage::faults::{
        self, Fault, FaultInjector, FaultKind, FaultPlan, FaultRule,
    };
    use crate::checkpoint::storage::load_snapshot;
    use crate::checkpoint::storage::test_support::*;

    #[tokio::test]
    async fn write_state_is_inline_below_the_threshold_and_a_file_from_it() {
        let (_t, dir) = tmp();
        let storage = CheckpointStorage::new(&fs_config(&dir, 16), job()).unwrap();
        let loc = storage.checkpoint_location(CheckpointId(1));

        let small = storage
            .write_state(&loc, "count-0-keyed", vec![7; 15])
            .await
            .unwrap();
        assert_eq!(small, StateHandle::Inline(vec![7; 15]));

        let big = storage
            .write_state(&loc, "count-0-keyed", vec![9; 16])
            .await
            .unwrap();
        let name = file_name_of(&big).to_string();
        assert!(name.starts_with("count-0-keyed-"), "{name}");
        assert_eq!(big.size(), 16);
        let on_disk = format!("{dir}/{}/chk-1/{name}", job());
        assert_eq!(std::fs::read(&on_disk).unwrap(), vec![9; 16]);
        assert_eq!(loc.read_state(&big).await.unwrap(), vec![9; 16]);
        assert_eq!(loc.read_state(&small).await.unwrap(), vec![7; 15]);
    }

    #[tokio::test]
    async fn jobmanager_storage_keeps_all_state_inline_and_rejects_blobs_over_its_limit() {
        let job = JobId::new();
        let config = CheckpointConfig {
            storage: StorageConfig::JobManager {
                max_state_size: 100,
            },
            inline_threshold: 1,
            ..CheckpointConfig::default()
        };
        let storage = CheckpointStorage::new(&config, job).unwrap();
        let loc = storage.checkpoint_location(CheckpointId(1));
        let h = storage
            .write_state(&loc, "count-0-keyed", vec![1; 100])
            .await
            .unwrap();
        assert_eq!(h, StateHandle::Inline(vec![1; 100]));

        let e = storage
            .write_state(&loc, "count-1-keyed", vec![1; 101])
            .await
            .unwrap_err();
        assert!(matches!(
            e,
            StorageError::StateTooLarge {
                size: 101,
                limit: 100,
                ..
            }
        ));
        let msg = e.to_string();
        assert!(
            msg.contains("101 bytes") && msg.contains("limit of 100 bytes"),
            "{msg}"
        );
        assert!(msg.contains("count-1-keyed"), "{msg}");
        assert!(files_under(&storage.job_dir()).await.is_empty());

        // The completed checkpoint loads in-process from its external path.
        let md = metadata(1, CheckpointKind::PERIODIC, vec![h]);
        let path = storage.write_metadata(&loc, &md).await.unwrap();
        assert_eq!(path, format!("memory://jobmanager-{job}/{job}/chk-1"));
        let (loaded_loc, loaded) = load_snapshot(&path).await.unwrap();
        assert_eq!(loaded, md);
        assert_eq!(read_all(&loaded_loc, &loaded).await, vec![vec![1; 100]]);
    }

    #[tokio::test]
    async fn write_metadata_never_overwrites_a_completed_snapshot() {
        for root in [tmp().1, memory_root()] {
            let storage = CheckpointStorage::new(&fs_config(&root, 4), job()).unwrap();
            let (md, path) = checkpoint(&storage, 1, &[b"first state"]).await;
            let before = get(&format!("{path}/_metadata")).await.unwrap();

            let loc = storage.checkpoint_location(CheckpointId(1));
            let mut other = md.clone();
            other.completion_timestamp_ms += 1;
            let e = storage.write_metadata(&loc, &other).await.unwrap_err();
            assert!(
                matches!(e, StorageError::AlreadyComplete { .. }),
                "{root}: {e}"
            );
            assert!(e.to_string().contains(&format!("{path}/_metadata")), "{e}");
            assert_eq!(get(&format!("{path}/_metadata")).await.unwrap(), before);
            assert!(
                !files_under(&path)
                    .await
                    .iter()
                    .any(|f| f.contains("inprogress")),
                "{root}: a temporary file was left behind"
            );
        }
    }

    #[tokio::test]
    async fn failed_write_metadata_leaves_the_last_completed_checkpoint_intact() {
        let (_t, dir) = tmp();
        let storage = CheckpointStorage::new(&fs_config(&dir, 4), job()).unwrap();
        let (md1, path1) = checkpoint(&storage, 1, &[b"state of one"]).await;
        let before = std::fs::read(format!("{path1}/_metadata")).unwrap();

        // chk-2 cannot become a directory: a file is in the way.
        let chk2 = format!("{dir}/{}/chk-2", job());
        std::fs::write(&chk2, b"in the way").unwrap();
        let loc2 = storage.checkpoint_location(CheckpointId(2));
        let e = storage
            .write_metadata(&loc2, &metadata(2, CheckpointKind::PERIODIC, vec![]))
            .await
            .unwrap_err();
        assert!(matches!(e, StorageError::Io { .. }), "{e}");
        assert!(e.to_string().contains("chk-2"), "{e}");

        assert_eq!(std::fs::read(format!("{path1}/_metadata")).unwrap(), before);
        let (_, loaded) = load_snapshot(&path1).await.unwrap();
        assert_eq!(loaded, md1);
        assert_eq!(std::fs::read(&chk2).unwrap(), b"in the way");
    }

    #[tokio::test]
    async fn a_metadata_write_that_fails_leaves_no_metadata() {
        for root in [tmp().1, memory_root()] {
            let injector = Arc::new(FaultInjector::new(FaultPlan::new(3)));
            let _guard = faults::install(&root, Arc::clone(&injector)).unwrap();
            let storage = CheckpointStorage::new(&fs_config(&root, 4), job()).unwrap();
            for (id, rule) in [
                (1, FaultRule::write_error().metadata().once()),
                (2, FaultRule::disk_full().metadata().once()),
            ] {
                let loc = storage.checkpoint_location(CheckpointId(id));
                let h = storage
                    .write_state(&loc, "count-0-keyed", b"state of it".to_vec())
                    .await
                    .unwrap();
                let md = metadata(id, CheckpointKind::PERIODIC, vec![h]);
                let fault = rule.fault;
                injector.arm(rule);
                let e = storage.write_metadata(&loc, &md).await.unwrap_err();
                assert!(matches!(e, StorageError::Io { .. }), "{root}: {e}");
                let msg = e.to_string();
                assert!(msg.contains("injected fault"), "{msg}");
                assert!(msg.contains(&format!("chk-{id}/_metadata")), "{msg}");
                if fault == Fault::DiskFull {
                    assert!(msg.contains("disk full"), "{msg}");
                }
                assert!(!loc.is_complete().await.unwrap(), "{root}: {fault:?}");
                let files = files_under(&loc.external_path()).await;
                assert!(
                    files.iter().all(|f| !f.starts_with("_metadata")),
                    "{root}: {files:?}"
                );
                assert!(matches!(
                    load_snapshot(&loc.external_path()).await,
                    Err(StorageError::MetadataNotFound { .. })
                ));
                // The fault was the next `_metadata` write only: committing again works.
                storage.write_metadata(&loc, &md).await.unwrap();
                assert_eq!(load_snapshot(&loc.external_path()).await.unwrap().1, md);
            }
            let stats = injector.stats();
            assert_eq!(stats.get(FaultKind::WriteError), 1, "{stats}");
            assert_eq!(stats.get(FaultKind::DiskFull), 1, "{stats}");
        }
    }

    #[tokio::test]
    async fn a_torn_metadata_write_fails_the_commit_and_the_last_checkpoint_stays_whole() {
        for root in [tmp().1, memory_root()] {
            let injector = Arc::new(FaultInjector::default());
            let _guard = faults::install(&root, Arc::clone(&injector)).unwrap();
            let storage = CheckpointStorage::new(&fs_config(&root, 4), job()).unwrap();
            let (md1, p1) = checkpoint(&storage, 1, &[b"the last good one"]).await;

            injector.arm(FaultRule::partial_write().metadata());
            let loc = storage.checkpoint_location(CheckpointId(2));
            let md2 = metadata(2, CheckpointKind::PERIODIC, vec![]);
            // A torn write reports success; the size check before the rename catches it, and
            // no `_metadata` appears.
            let e = storage.write_metadata(&loc, &md2).await.unwrap_err();
            assert!(matches!(e, StorageError::ShortWrite { .. }), "{root}: {e}");
            let e = load_snapshot(&loc.external_path()).await.unwrap_err();
            assert!(
                matches!(e, StorageError::MetadataNotFound { .. }),
                "{root}: {e}"
            );
            assert_eq!(injector.stats().get(FaultKind::PartialWrite), 1);

            injector.disarm_all();
            let (loc1, loaded) = load_snapshot(&p1).await.unwrap();
            assert_eq!(loaded, md1);
            assert_eq!(
                read_all(&loc1, &loaded).await,
                vec![b"the last good one".to_vec()]
            );
        }
    }

    #[tokio::test]
    async fn metadata_of_another_checkpoint_is_refused() {
        let storage = CheckpointStorage::new(&fs_config(&memory_root(), 4), job()).unwrap();
        let loc = storage.checkpoint_location(CheckpointId(5));
        let e = storage
            .write_metadata(&loc, &metadata(6, CheckpointKind::PERIODIC, vec![]))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                StorageError::CheckpointIdMismatch {
                    expected: CheckpointId(5),
                    found: CheckpointId(6),
                    ..
                }
            ),
            "{e}"
        );
        assert!(!loc.is_complete().await.unwrap());
    }
}
