//! Verified reads: opening a snapshot and reading its state back, checked.
//!
//! [`load_snapshot`] opens a snapshot from the path a user gives (its directory or its
//! `_metadata` file) and decodes `_metadata`, which checks its own framing and checksum (see
//! [`crate::format`](mod@crate::format)). [`SnapshotLocation::read_state`] then reads each state
//! handle: inline bytes as they are, a file only at a safe path inside the snapshot directory
//! and only when its size and CRC-32 match what `_metadata` recorded. Every failure is a
//! [`StateReadError`] naming the file; nothing is ever repaired or deleted here.

use opendal::ErrorKind;

use super::error::StorageError;
use super::local::LocalMiss;
use super::location::{resolve_snapshot, SnapshotLocation};
use crate::checkpoint::metadata::{CheckpointMetadata, StateHandle};
use crate::checkpoint::paths;

/// Why a state handle could not be read back. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum StateReadError {
    #[error(
        "state file `{path}` is missing: the snapshot was partly deleted or moved without it; \
         restore from another checkpoint or savepoint"
    )]
    Missing { path: String },
    #[error(
        "state file `{path}` is a directory, not a file: the snapshot was tampered with; restore \
         from another checkpoint or savepoint"
    )]
    NotAFile { path: String },
    #[error(
        "state file `{path}` has {actual} bytes but `_metadata` says {expected}: it is truncated \
         or was replaced; restore from another checkpoint or savepoint"
    )]
    SizeMismatch {
        path: String,
        expected: u64,
        actual: u64,
    },
    #[error(
        "state file `{path}` is corrupt: checksum {actual:08x}, `_metadata` says {expected:08x}; \
         restore from another checkpoint or savepoint"
    )]
    ChecksumMismatch {
        path: String,
        expected: u32,
        actual: u32,
    },
    #[error(
        "`_metadata` of `{dir}` names the state file `{name}`, which is not a plain path inside \
         the snapshot directory; the metadata is damaged, refusing to follow it"
    )]
    UnsafePath { dir: String, name: String },
    #[error("could not read state file `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: Box<opendal::Error>,
    },
}

impl SnapshotLocation {
    /// Reads and decodes `_metadata`.
    ///
    /// # Errors
    ///
    /// [`StorageError::MetadataNotFound`] when there is none, [`StorageError::Metadata`] when
    /// it is damaged, [`StorageError::Io`] when it cannot be read.
    pub async fn read_metadata(&self) -> Result<CheckpointMetadata, StorageError> {
        let key = paths::metadata_path(&self.dir);
        let bytes = match self.backend.op.read(&key).await {
            Ok(b) => b.to_vec(),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(StorageError::MetadataNotFound {
                    path: self.external_path(),
                })
            }
            Err(source) => return Err(self.io("read", &key, source)),
        };
        Ok(CheckpointMetadata::decode(
            &bytes,
            &self.backend.external(&key),
        )?)
    }

    /// The bytes of a state handle of this snapshot; a file's size and CRC-32 are checked.
    ///
    /// # Errors
    ///
    /// A [`StateReadError`] naming the file: missing, wrong size, wrong checksum, a path that
    /// leaves the snapshot directory, or an I/O error.
    pub async fn read_state(&self, handle: &StateHandle) -> Result<Vec<u8>, StateReadError> {
        let (name, size, crc32) = match handle {
            StateHandle::Inline(bytes) => return Ok(bytes.clone()),
            StateHandle::File { path, size, crc32 } => (path, *size, *crc32),
        };
        let key = self.state_key(name)?;
        let path = self.backend.external(&key);
        if let (Some(local), Some(id)) = (&self.local, self.checkpoint_id()) {
            if local.reads() {
                match local.read(id, name, size, crc32).await {
                    Ok(bytes) => return Ok(bytes),
                    Err(LocalMiss::Missing) => {
                        tracing::info!(checkpoint_id = id.0, %path, "no local copy of a state file; reading the remote one");
                    }
                    Err(LocalMiss::Damaged(why)) => {
                        tracing::warn!(checkpoint_id = id.0, %path, local = %local.path(id, name).display(), why,
                            "the local copy of a state file does not match `_metadata`; reading the remote one");
                    }
                }
            }
        }
        let bytes = match self.backend.op.read(&key).await {
            Ok(b) => b.to_vec(),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(StateReadError::Missing { path })
            }
            Err(source) => {
                // Some services (the local filesystem) report a directory in the file's place
                // as an unexpected, even temporary, error: ask what is there.
                if let Ok(meta) = self.backend.op.stat(&format!("{key}/")).await {
                    if meta.is_dir() {
                        return Err(StateReadError::NotAFile { path });
                    }
                }
                return Err(StateReadError::Io {
                    path,
                    source: Box::new(source),
                });
            }
        };
        if bytes.len() as u64 != size {
            return Err(StateReadError::SizeMismatch {
                path,
                expected: size,
                actual: bytes.len() as u64,
            });
        }
        let actual = crc32fast::hash(&bytes);
        if actual != crc32 {
            return Err(StateReadError::ChecksumMismatch {
                path,
                expected: crc32,
                actual,
            });
        }
        Ok(bytes)
    }

    /// The key of state file `name`, refused when it is not a plain path inside the directory.
    pub(super) fn state_key(&self, name: &str) -> Result<String, StateReadError> {
        if paths::is_safe_relative(name) {
            Ok(paths::join(&self.dir, name))
        } else {
            Err(StateReadError::UnsafePath {
                dir: self.external_path(),
                name: name.to_string(),
            })
        }
    }
}

/// Opens a snapshot from a path a user gives: a `chk-<n>` or savepoint directory, or its
/// `_metadata` file, as a plain path, a `file://` URI or `memory://<name>/<path>`.
///
/// # Errors
///
/// [`StorageError::MetadataNotFound`] when there is no `_metadata` (an incomplete snapshot or
/// a wrong path), [`StorageError::Metadata`] when it is damaged, and the location errors of
/// [`CheckpointStorage::new`](super::CheckpointStorage::new). Nothing is created or deleted.
pub async fn load_snapshot(
    path: &str,
) -> Result<(SnapshotLocation, CheckpointMetadata), StorageError> {
    let loc = resolve_snapshot(path)?;
    let md = loc.read_metadata().await?;
    Ok((loc, md))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::storage::test_support::*;

    #[tokio::test]
    async fn write_metadata_then_load_by_dir_by_metadata_file_and_by_file_uri() {
        let (_t, dir) = tmp();
        let storage = CheckpointStorage::new(&fs_config(&dir, 4), job()).unwrap();
        let (md, path) = checkpoint(&storage, 3, &[b"ab", b"a file's worth"]).await;
        assert_eq!(path, format!("{dir}/{}/chk-3", job()));
        assert!(std::path::Path::new(&format!("{path}/_metadata")).is_file());

        for p in [
            path.clone(),
            format!("{path}/_metadata"),
            format!("{path}/"),
            format!("file://{path}"),
            format!("file://localhost{path}/_metadata"),
        ] {
            let (loc, loaded) = load_snapshot(&p).await.unwrap();
            assert_eq!(loaded, md, "{p}");
            assert_eq!(loc.external_path(), path, "{p}");
            assert_eq!(loc.checkpoint_id(), Some(CheckpointId(3)));
            assert_eq!(
                read_all(&loc, &loaded).await,
                vec![b"ab".to_vec(), b"a file's worth".to_vec()]
            );
        }
    }

    #[tokio::test]
    async fn loading_a_dir_without_metadata_says_it_is_not_complete() {
        let (_t, dir) = tmp();
        let storage = CheckpointStorage::new(&fs_config(&dir, 0), job()).unwrap();
        let loc = storage.checkpoint_location(CheckpointId(2));
        storage.write_state(&loc, "x", vec![1]).await.unwrap();
        let e = load_snapshot(&loc.external_path()).await.unwrap_err();
        assert!(matches!(e, StorageError::MetadataNotFound { .. }), "{e}");
        assert!(e.to_string().contains(&loc.external_path()), "{e}");
        // Loading a path that does not exist creates nothing.
        let missing = format!("{dir}/nope/chk-1");
        assert!(load_snapshot(&missing).await.is_err());
        assert!(!std::path::Path::new(&format!("{dir}/nope")).exists());
    }

    #[tokio::test]
    async fn copied_savepoint_directory_loads_from_its_new_path() {
        let (_t, dir) = tmp();
        let config = CheckpointConfig {
            savepoint_dir: Some(format!("{dir}/savepoints")),
            ..fs_config(&format!("{dir}/checkpoints"), 4)
        };
        let storage = CheckpointStorage::new(&config, job()).unwrap();
        let loc = storage.savepoint_location(None).unwrap();
        let kind = CheckpointKind::Savepoint {
            format: SavepointFormat::Canonical,
        };
        let (md, path) = commit(
            &storage,
            &loc,
            9,
            kind,
            &[b"big enough", b"xy", b"also a file"],
        )
        .await;
        assert_eq!(path, loc.external_path());
        assert!(
            path.starts_with(&format!("{dir}/savepoints/savepoint-012345-")),
            "{path}"
        );
        assert_eq!(loc.checkpoint_id(), None);

        let copy = format!("{dir}/elsewhere/moved-savepoint");
        std::fs::create_dir_all(&copy).unwrap();
        for entry in std::fs::read_dir(&path).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(
                entry.path(),
                format!("{copy}/{}", entry.file_name().to_str().unwrap()),
            )
            .unwrap();
        }
        std::fs::remove_dir_all(&path).unwrap();

        let (copied, loaded) = load_snapshot(&copy).await.unwrap();
        assert_eq!(loaded, md);
        assert_eq!(copied.external_path(), copy);
        assert_eq!(
            read_all(&copied, &loaded).await,
            vec![
                b"big enough".to_vec(),
                b"xy".to_vec(),
                b"also a file".to_vec()
            ]
        );
    }

    #[tokio::test]
    async fn damaged_state_files_are_errors_naming_the_file_and_nothing_is_deleted() {
        let (_t, dir) = tmp();
        let storage = CheckpointStorage::new(&fs_config(&dir, 4), job()).unwrap();
        let (md, path) = checkpoint(&storage, 1, &[b"twelve bytes"]).await;
        let (loc, _) = load_snapshot(&path).await.unwrap();
        let handle = md.handles().next().unwrap().2.clone();
        let file = format!("{path}/{}", file_name_of(&handle));

        // A flipped byte.
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[3] ^= 0x20;
        std::fs::write(&file, &bytes).unwrap();
        let e = loc.read_state(&handle).await.unwrap_err();
        assert!(matches!(e, StateReadError::ChecksumMismatch { .. }), "{e}");
        assert!(
            e.to_string().contains(&file) && e.to_string().contains("corrupt"),
            "{e}"
        );

        // Truncated.
        std::fs::write(&file, &bytes[..5]).unwrap();
        let e = loc.read_state(&handle).await.unwrap_err();
        assert!(
            matches!(
                e,
                StateReadError::SizeMismatch {
                    expected: 12,
                    actual: 5,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains(&file), "{e}");

        // Gone.
        std::fs::remove_file(&file).unwrap();
        let e = loc.read_state(&handle).await.unwrap_err();
        assert!(matches!(e, StateReadError::Missing { .. }), "{e}");
        assert!(e.to_string().contains(&file), "{e}");

        // The checkpoint itself is still there.
        assert_eq!(files_under(&path).await, vec!["_metadata".to_string()]);
    }

    #[tokio::test]
    async fn damaged_metadata_is_an_error_naming_the_file_and_nothing_is_deleted() {
        for root in [tmp().1, memory_root()] {
            let storage = CheckpointStorage::new(&fs_config(&root, 4), job()).unwrap();
            let (_, path) = checkpoint(&storage, 1, &[b"some state"]).await;
            let meta = format!("{path}/_metadata");
            let good = get(&meta).await.unwrap();
            let files = files_under(&path).await;

            let mut flipped = good.clone();
            *flipped.last_mut().unwrap() ^= 1;
            let cases = [
                (good[..good.len() / 2].to_vec(), "truncated"),
                (flipped, "corrupt"),
                (b"hello".to_vec(), "not a Weir `_metadata` file"),
            ];
            for (bytes, what) in cases {
                put(&meta, bytes).await;
                let e = load_snapshot(&path).await.unwrap_err();
                assert!(matches!(e, StorageError::Metadata(_)), "{e}");
                let msg = e.to_string();
                assert!(msg.contains(&meta) && msg.contains(what), "{root}: {msg}");
                assert_eq!(
                    files_under(&path).await,
                    files,
                    "{root}: something was deleted"
                );
            }
        }
    }

    #[tokio::test]
    async fn unsafe_state_paths_in_metadata_are_refused() {
        let root = memory_root();
        let storage = CheckpointStorage::new(&fs_config(&root, 4), job()).unwrap();
        put(&format!("{root}/secret"), b"secret".to_vec()).await;
        let evil = StateHandle::File {
            path: "../../secret".into(),
            size: 6,
            crc32: crc32fast::hash(b"secret"),
        };
        let loc = storage.checkpoint_location(CheckpointId(1));
        storage
            .write_metadata(
                &loc,
                &metadata(1, CheckpointKind::PERIODIC, vec![evil.clone()]),
            )
            .await
            .unwrap();
        let (loc, _) = load_snapshot(&loc.external_path()).await.unwrap();
        let e = loc.read_state(&evil).await.unwrap_err();
        assert!(matches!(e, StateReadError::UnsafePath { .. }), "{e}");
        assert!(e.to_string().contains("../../secret"), "{e}");
    }
}
