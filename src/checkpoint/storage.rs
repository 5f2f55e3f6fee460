//! Writing and reading checkpoint state and `_metadata` through opendal.
//!
//! - [`CheckpointStorage`]: one job's checkpoint storage, built from [`CheckpointConfig`]. It
//!   hands out a [`SnapshotLocation`] per checkpoint (`chk-<n>`) or savepoint
//!   (`savepoint-<job>-<random>`), stores each blob of state inline or as a file of that
//!   location ([`CheckpointStorage::write_state`]), commits the snapshot by writing `_metadata`
//!   last ([`CheckpointStorage::write_metadata`]), and deletes what is no longer wanted.
//! - [`load_snapshot`]: the restore side; opens a snapshot from the path a user gives.
//! - [`SnapshotLocation::read_state`]: reads a state handle back, checking its size and CRC-32.
//! - [`list_snapshots`]: offline inspection of a directory (`weir checkpoints DIR`).
//!
//! Every path is built by [`super::paths`]. A location string is a plain path, a `file://` URI
//! or `memory://<name>/<path>`; memory stores are shared per `<name>` within the process, so a
//! test can write through one [`CheckpointStorage`] and load through the same URI. Jobmanager
//! storage is the memory store `memory://jobmanager-<job id>/`.
//!
//! Local files go through an fs operator rooted at the filesystem root, not at the configured
//! directory: building an fs operator creates its root, and opening a snapshot that does not
//! exist must not create directories.
//!
//! Commit protocol: state files are written first, each under a fresh unique name; `_metadata`
//! is written last and is the marker of a complete snapshot. Where the service can rename (fs),
//! `_metadata` is written to a temporary file that is renamed into place, so no reader ever sees
//! a partial `_metadata`; elsewhere (memory, object stores) a write only becomes visible when it
//! completes and is made with `if_not_exists`. An existing `_metadata` is never overwritten, and
//! nothing is ever deleted because a file is damaged: damage is reported, the user decides.

use std::collections::{BTreeSet, HashMap};
use std::path::{Component, Path};
use std::sync::{Arc, Mutex, OnceLock};

use opendal::{ErrorKind, Operator};

use super::metadata::{CheckpointMetadata, MetadataError, StateHandle};
use super::options::{CheckpointConfig, StorageConfig};
use super::paths::{self, CheckpointPaths};
use crate::ids::{CheckpointId, JobId};

/// Why a storage operation failed. Every variant names the location it is about.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "unsupported storage scheme `{scheme}` in `{uri}`: use a plain path, a `file://` URI or \
         `memory://` (this build includes no other storage services)"
    )]
    UnsupportedScheme { uri: String, scheme: String },
    #[error("invalid storage location `{uri}`: {reason}")]
    InvalidLocation { uri: String, reason: &'static str },
    #[error("cannot open storage for `{uri}`: {source}")]
    Open {
        uri: String,
        #[source]
        source: Box<opendal::Error>,
    },
    #[error(
        "no savepoint directory: pass a target directory with the request, or set \
         `execution.checkpointing.savepoint-dir`"
    )]
    NoSavepointDir,
    #[error(
        "state `{name}` is {size} bytes, over the jobmanager checkpoint storage limit of {limit} \
         bytes: raise the limit, or set `execution.checkpointing.dir` to use filesystem storage"
    )]
    StateTooLarge { name: String, size: u64, limit: u64 },
    #[error(
        "`{path}` already exists: that snapshot is complete and a `_metadata` is never \
         overwritten; this is a bug in how checkpoint ids or savepoint directories were chosen"
    )]
    AlreadyComplete { path: String },
    #[error(
        "metadata of checkpoint {found} cannot be written to `{path}`, the directory of \
         checkpoint {expected}"
    )]
    CheckpointIdMismatch {
        path: String,
        expected: CheckpointId,
        found: CheckpointId,
    },
    #[error(
        "refusing to discard `{path}`: it has a `_metadata` file, so it is a completed \
         snapshot; discard a completed checkpoint by its id, or delete a savepoint by hand"
    )]
    RefusingToDiscardComplete { path: String },
    #[error("refusing to delete `{path}`: it is not a `chk-<n>` or `savepoint-*` directory")]
    NotASnapshotDir { path: String },
    #[error(
        "no `_metadata` in `{path}`: it is not a completed checkpoint or savepoint (an aborted or \
         unfinished checkpoint has none, and the path may not exist); pass a `chk-<n>` or \
         savepoint directory that has one, or its `_metadata` file"
    )]
    MetadataNotFound { path: String },
    #[error("directory `{path}` does not exist: check the path")]
    DirectoryNotFound { path: String },
    #[error("`{path}` is not a directory: pass the directory that holds the checkpoints")]
    NotADirectory { path: String },
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    StateRead(#[from] StateReadError),
    #[error("could not {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: Box<opendal::Error>,
    },
}

/// Why a state handle could not be read back. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum StateReadError {
    #[error(
        "state file `{path}` is missing: the snapshot was partly deleted or moved without it; \
         restore from another checkpoint or savepoint"
    )]
    Missing { path: String },
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

/// One opendal operator, and how its keys read as paths a user can type.
#[derive(Clone, Debug)]
struct Backend {
    op: Operator,
    kind: BackendKind,
}

#[derive(Clone, Debug)]
enum BackendKind {
    /// Local files; keys are relative to `root`, the filesystem root (`/` on Unix).
    Fs { root: String },
    /// The process-wide memory store `<name>`: `memory://<name>/<key>`.
    Memory { name: String },
}

impl Backend {
    fn external(&self, key: &str) -> String {
        match &self.kind {
            BackendKind::Fs { root } => format!("{root}{key}"),
            BackendKind::Memory { name } => format!("memory://{name}/{key}"),
        }
    }

    /// Opens (once per process) the fs operator rooted at `root`.
    fn fs(root: String, uri: &str) -> Result<Self, StorageError> {
        let op = shared_operator(&format!("fs:{root}"), || {
            Operator::new(opendal::services::Fs::default().root(&root))
        })
        .map_err(|source| StorageError::Open {
            uri: uri.to_string(),
            source: Box::new(source),
        })?;
        Ok(Self {
            op,
            kind: BackendKind::Fs { root },
        })
    }

    /// The process-wide memory store `name`, created empty on first use.
    fn memory(name: &str, uri: &str) -> Result<Self, StorageError> {
        let op = shared_operator(&format!("memory:{name}"), || {
            Operator::new(opendal::services::Memory::default())
        })
        .map_err(|source| StorageError::Open {
            uri: uri.to_string(),
            source: Box::new(source),
        })?;
        Ok(Self {
            op,
            kind: BackendKind::Memory {
                name: name.to_string(),
            },
        })
    }
}

/// Operators shared within the process, by key: memory stores must be, so that what one
/// `CheckpointStorage` wrote another can read; fs operators simply need not be built twice.
fn shared_operator(
    key: &str,
    build: impl FnOnce() -> opendal::Result<Operator>,
) -> opendal::Result<Operator> {
    static OPERATORS: OnceLock<Mutex<HashMap<String, Operator>>> = OnceLock::new();
    let mut map = OPERATORS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(op) = map.get(key) {
        return Ok(op.clone());
    }
    let op = build()?;
    map.insert(key.to_string(), op.clone());
    Ok(op)
}

/// The backend and the key inside it that a location string names.
fn resolve(uri: &str) -> Result<(Backend, String), StorageError> {
    let invalid = |reason| StorageError::InvalidLocation {
        uri: uri.to_string(),
        reason,
    };
    if uri.trim().is_empty() {
        return Err(invalid("the location is empty"));
    }
    if let Some((scheme, rest)) = uri.split_once("://") {
        let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if is_scheme {
            return match scheme.to_ascii_lowercase().as_str() {
                "file" => {
                    let path = match rest.strip_prefix("localhost") {
                        Some(p) if p.starts_with('/') => p,
                        _ => rest,
                    };
                    if !path.starts_with('/') {
                        return Err(invalid(
                            "a `file://` URI needs an absolute path and no host other than \
                             `localhost`, e.g. `file:///var/checkpoints`",
                        ));
                    }
                    fs_location(Path::new(path), uri)
                }
                "memory" => {
                    let (name, path) = rest.split_once('/').unwrap_or((rest, ""));
                    Ok((Backend::memory(name, uri)?, paths::normalize(path)))
                }
                _ => Err(StorageError::UnsupportedScheme {
                    uri: uri.to_string(),
                    scheme: scheme.to_string(),
                }),
            };
        }
    }
    fs_location(Path::new(uri), uri)
}

/// A local path as (fs backend rooted at the filesystem root, key below it).
fn fs_location(path: &Path, uri: &str) -> Result<(Backend, String), StorageError> {
    let abs = std::path::absolute(path).map_err(|_| StorageError::InvalidLocation {
        uri: uri.to_string(),
        reason: "cannot make the path absolute (is the current directory gone?)",
    })?;
    let mut root = String::new();
    let mut segments: Vec<String> = Vec::new();
    for c in abs.components() {
        match c {
            Component::Prefix(p) => root.push_str(&p.as_os_str().to_string_lossy()),
            Component::RootDir => root.push(std::path::MAIN_SEPARATOR),
            Component::CurDir => {}
            Component::ParentDir => {
                segments.pop();
            }
            Component::Normal(s) => segments.push(s.to_string_lossy().into_owned()),
        }
    }
    Ok((Backend::fs(root, uri)?, segments.join("/")))
}

/// How state blobs are stored.
#[derive(Clone, Copy, Debug)]
enum InlinePolicy {
    /// Jobmanager storage: everything inline, each blob at most `max_state_size` bytes.
    AlwaysInline { max_state_size: u64 },
    /// Filesystem storage: inline below `threshold` bytes, else a file.
    Threshold(u64),
}

/// One job's checkpoint storage. Cheap to clone: all clones share one store.
#[derive(Clone, Debug)]
pub struct CheckpointStorage {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    job_id: JobId,
    backend: Backend,
    paths: CheckpointPaths,
    policy: InlinePolicy,
    savepoint_dir: Option<String>,
}

/// One snapshot's directory: a `chk-<n>` or a savepoint directory. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SnapshotLocation {
    backend: Backend,
    /// The directory, as a key of `backend`.
    dir: String,
}

impl CheckpointStorage {
    /// The storage `config` describes, for `job_id`.
    ///
    /// Jobmanager storage is the process-wide memory store `memory://jobmanager-<job id>/`; all
    /// its state is inline. Filesystem storage is under `dir`: a plain path, a `file://` URI,
    /// or `memory://<name>/<path>`. A configured savepoint directory is checked here too.
    ///
    /// # Errors
    ///
    /// [`StorageError::UnsupportedScheme`] for a URI scheme this build does not serve,
    /// [`StorageError::InvalidLocation`] for an empty path or a `file://` URI with a host, and
    /// [`StorageError::Open`] when opendal cannot open the store. Nothing is created on disk.
    pub fn new(config: &CheckpointConfig, job_id: JobId) -> Result<Self, StorageError> {
        let (backend, root, policy) = match &config.storage {
            StorageConfig::JobManager { max_state_size } => {
                let name = format!("jobmanager-{}", job_id.to_hex());
                let uri = format!("memory://{name}/");
                (
                    Backend::memory(&name, &uri)?,
                    String::new(),
                    InlinePolicy::AlwaysInline {
                        max_state_size: *max_state_size,
                    },
                )
            }
            StorageConfig::FileSystem { dir } => {
                let (backend, root) = resolve(dir)?;
                (
                    backend,
                    root,
                    InlinePolicy::Threshold(config.inline_threshold),
                )
            }
        };
        if let Some(dir) = &config.savepoint_dir {
            resolve(dir)?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                job_id,
                backend,
                paths: CheckpointPaths::new(&root, job_id, config.create_subdir),
                policy,
                savepoint_dir: config.savepoint_dir.clone(),
            }),
        })
    }

    /// The external path of this job's directory (holding `chk-<n>`, `shared`, `taskowned`).
    pub fn job_dir(&self) -> String {
        self.inner.backend.external(self.inner.paths.job_dir())
    }

    /// The directory of checkpoint `id` (`<job dir>/chk-<id>`). Creates nothing.
    pub fn checkpoint_location(&self, id: CheckpointId) -> SnapshotLocation {
        SnapshotLocation {
            backend: self.inner.backend.clone(),
            dir: self.inner.paths.checkpoint_dir(id),
        }
    }

    /// A new savepoint directory `savepoint-<job>-<random>` under `target_dir` (the
    /// request's directory) or, when it is `None`, under the configured savepoint directory.
    /// Creates nothing.
    ///
    /// # Errors
    ///
    /// [`StorageError::NoSavepointDir`] when neither is given; the errors of
    /// [`CheckpointStorage::new`] for a directory that cannot be used.
    pub fn savepoint_location(
        &self,
        target_dir: Option<&str>,
    ) -> Result<SnapshotLocation, StorageError> {
        let dir = target_dir
            .or(self.inner.savepoint_dir.as_deref())
            .ok_or(StorageError::NoSavepointDir)?;
        let (backend, root) = resolve(dir)?;
        Ok(SnapshotLocation {
            dir: paths::join(&root, &paths::savepoint_dir_name(self.inner.job_id)),
            backend,
        })
    }

    /// Stores one blob of state for the snapshot at `loc` and returns its handle: inline when
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
                loc.backend
                    .op
                    .write_with(&key, bytes)
                    .if_not_exists(true)
                    .await
                    .map_err(|source| loc.io("write state file", &key, source))?;
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
            op.write_with(&tmp, bytes)
                .if_not_exists(true)
                .await
                .map_err(|source| loc.io("write", &tmp, source))?;
            let committed = async {
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
            op.write_with(&key, bytes)
                .if_not_exists(true)
                .await
                .map_err(|source| match source.kind() {
                    ErrorKind::ConditionNotMatch => StorageError::AlreadyComplete {
                        path: loc.backend.external(&key),
                    },
                    _ => loc.io("write", &key, source),
                })?;
        }
        tracing::debug!(path = %loc.external_path(), checkpoint = %md.checkpoint_id,
            "snapshot committed");
        Ok(loc.external_path())
    }

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

impl SnapshotLocation {
    /// The directory as a user would type it: a path for local files, else a URI.
    pub fn external_path(&self) -> String {
        self.backend.external(&self.dir)
    }

    /// The external path of the `_metadata` file.
    pub fn metadata_path(&self) -> String {
        self.backend.external(&paths::metadata_path(&self.dir))
    }

    /// `Some(n)` for a `chk-<n>` directory, `None` for a savepoint directory.
    pub fn checkpoint_id(&self) -> Option<CheckpointId> {
        paths::parse_checkpoint_dir_name(paths::file_name(&self.dir))
    }

    /// Whether `_metadata` exists, i.e. the snapshot is complete (or its `_metadata` damaged).
    ///
    /// # Errors
    ///
    /// [`StorageError::Io`] when the store cannot be asked.
    pub async fn is_complete(&self) -> Result<bool, StorageError> {
        self.exists(&paths::metadata_path(&self.dir)).await
    }

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
        let bytes = match self.backend.op.read(&key).await {
            Ok(b) => b.to_vec(),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(StateReadError::Missing { path })
            }
            Err(source) => {
                return Err(StateReadError::Io {
                    path,
                    source: Box::new(source),
                })
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

    /// Checks that every state file `md` references exists with the recorded size (not the
    /// checksum: that would read all state). `Some(reason)` for the first that does not.
    async fn check_files(&self, md: &CheckpointMetadata) -> Result<Option<String>, StorageError> {
        for (_, _, handle) in md.handles() {
            let StateHandle::File {
                path: name, size, ..
            } = handle
            else {
                continue;
            };
            let key = match self.state_key(name) {
                Ok(key) => key,
                Err(e) => return Ok(Some(e.to_string())),
            };
            let path = self.backend.external(&key);
            let actual = match self.backend.op.stat(&key).await {
                Ok(meta) => meta.content_length(),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Ok(Some(StateReadError::Missing { path }.to_string()))
                }
                Err(source) => return Err(self.io("inspect", &key, source)),
            };
            if actual != *size {
                let e = StateReadError::SizeMismatch {
                    path,
                    expected: *size,
                    actual,
                };
                return Ok(Some(e.to_string()));
            }
        }
        Ok(None)
    }

    fn state_key(&self, name: &str) -> Result<String, StateReadError> {
        if paths::is_safe_relative(name) {
            Ok(paths::join(&self.dir, name))
        } else {
            Err(StateReadError::UnsafePath {
                dir: self.external_path(),
                name: name.to_string(),
            })
        }
    }

    async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        self.backend
            .op
            .exists(key)
            .await
            .map_err(|source| self.io("check", key, source))
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

    fn io(&self, action: &'static str, key: &str, source: opendal::Error) -> StorageError {
        StorageError::Io {
            action,
            path: self.backend.external(key.trim_end_matches('/')),
            source: Box::new(source),
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
/// [`CheckpointStorage::new`]. Nothing is created or deleted.
pub async fn load_snapshot(
    path: &str,
) -> Result<(SnapshotLocation, CheckpointMetadata), StorageError> {
    let (backend, key) = resolve(path)?;
    let dir = if paths::file_name(&key) == paths::METADATA_FILE {
        paths::parent(&key).to_string()
    } else {
        key
    };
    let loc = SnapshotLocation { backend, dir };
    let md = loc.read_metadata().await?;
    Ok((loc, md))
}

/// Deletes a completed snapshot — a savepoint the user disposes of, or a checkpoint a CLAIM-mode
/// restore took ownership of: `_metadata` first (the snapshot stops being restorable), then its
/// files, then the directory. `path` is what [`load_snapshot`] takes.
///
/// # Errors
///
/// [`StorageError::MetadataNotFound`] when `path` holds no `_metadata` (nothing is deleted),
/// [`StorageError::NotASnapshotDir`] for anything but a `chk-<n>` or `savepoint-*` directory,
/// [`StorageError::Io`] when deleting fails.
pub async fn dispose_snapshot(path: &str) -> Result<(), StorageError> {
    let (backend, key) = resolve(path)?;
    let dir = if paths::file_name(&key) == paths::METADATA_FILE {
        paths::parent(&key).to_string()
    } else {
        key
    };
    SnapshotLocation { backend, dir }.dispose().await
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
}

/// One snapshot directory found by [`list_snapshots`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotListing {
    /// The directory's external path (what [`load_snapshot`] takes).
    pub path: String,
    /// `Some(n)` for a `chk-<n>` directory, `None` for a savepoint directory.
    pub checkpoint_id: Option<CheckpointId>,
    pub status: SnapshotStatus,
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
/// location errors of [`CheckpointStorage::new`]. Damage is a [`SnapshotStatus::Damaged`]
/// entry, not an error. Nothing is created or deleted.
pub async fn list_snapshots(dir: &str) -> Result<Vec<SnapshotListing>, StorageError> {
    let (backend, key) = resolve(dir)?;
    let here = SnapshotLocation {
        backend: backend.clone(),
        dir: key.clone(),
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
    let status = match loc.read_metadata().await {
        Ok(md) => match loc.check_files(&md).await? {
            None => SnapshotStatus::Complete(Box::new(md)),
            Some(reason) => SnapshotStatus::Damaged(reason),
        },
        Err(StorageError::MetadataNotFound { .. }) => SnapshotStatus::Incomplete,
        Err(StorageError::Metadata(e)) => SnapshotStatus::Damaged(e.to_string()),
        Err(e) => return Err(e),
    };
    Ok(SnapshotListing {
        path: loc.external_path(),
        checkpoint_id: loc.checkpoint_id(),
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::metadata::{OperatorSnapshot, SubtaskSnapshot};
    use crate::element::{CheckpointKind, SavepointFormat};

    fn job() -> JobId {
        "0123456789abcdef0123456789abcdef".parse().unwrap()
    }

    fn fs_config(dir: &str, inline_threshold: u64) -> CheckpointConfig {
        CheckpointConfig {
            storage: StorageConfig::FileSystem { dir: dir.into() },
            inline_threshold,
            ..CheckpointConfig::default()
        }
    }

    /// A memory URI no other test uses.
    fn memory_root() -> String {
        format!(
            "memory://test-{}/checkpoints",
            uuid::Uuid::new_v4().simple()
        )
    }

    fn tmp() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap().to_string();
        (dir, path)
    }

    fn metadata(id: u64, kind: CheckpointKind, states: Vec<StateHandle>) -> CheckpointMetadata {
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
                    })
                    .collect(),
            }],
        }
    }

    /// Writes `states` and commits `loc`; returns the metadata and the committed path.
    async fn commit(
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

    async fn checkpoint(
        storage: &CheckpointStorage,
        id: u64,
        states: &[&[u8]],
    ) -> (CheckpointMetadata, String) {
        let loc = storage.checkpoint_location(CheckpointId(id));
        commit(storage, &loc, id, CheckpointKind::PERIODIC, states).await
    }

    /// The raw bytes at an external path, through the same backends the code uses.
    async fn get(path: &str) -> Option<Vec<u8>> {
        let (backend, key) = resolve(path).unwrap();
        match backend.op.read(&key).await {
            Ok(b) => Some(b.to_vec()),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => panic!("{path}: {e}"),
        }
    }

    async fn put(path: &str, bytes: Vec<u8>) {
        let (backend, key) = resolve(path).unwrap();
        backend.op.write(&key, bytes).await.unwrap();
    }

    async fn remove(path: &str) {
        let (backend, key) = resolve(path).unwrap();
        backend.op.delete(&key).await.unwrap();
    }

    /// Every file (not directory) under an external path, relative to it.
    async fn files_under(path: &str) -> Vec<String> {
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

    async fn read_all(loc: &SnapshotLocation, md: &CheckpointMetadata) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (_, _, h) in md.handles() {
            out.push(loc.read_state(h).await.unwrap());
        }
        out
    }

    fn file_name_of(h: &StateHandle) -> &str {
        match h {
            StateHandle::File { path, .. } => path,
            StateHandle::Inline(_) => panic!("expected a file handle, got {h:?}"),
        }
    }

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
    async fn memory_uri_is_shared_between_storage_and_load_snapshot() {
        let root = memory_root();
        let storage = CheckpointStorage::new(&fs_config(&root, 4), job()).unwrap();
        let (md, path) = checkpoint(&storage, 1, &[b"0123456789"]).await;
        assert_eq!(path, format!("{root}/{}/chk-1", job()));
        let (loc, loaded) = load_snapshot(&format!("{path}/_metadata")).await.unwrap();
        assert_eq!(loaded, md);
        assert_eq!(read_all(&loc, &loaded).await, vec![b"0123456789".to_vec()]);
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
    async fn savepoint_location_uses_the_request_dir_then_the_configured_one() {
        let root = memory_root();
        let storage = CheckpointStorage::new(&fs_config(&root, 4), job()).unwrap();
        let e = storage.savepoint_location(None).unwrap_err();
        assert!(matches!(e, StorageError::NoSavepointDir));
        assert!(e
            .to_string()
            .contains("execution.checkpointing.savepoint-dir"));

        let a = storage
            .savepoint_location(Some(&format!("{root}/sp")))
            .unwrap();
        let b = storage
            .savepoint_location(Some(&format!("{root}/sp")))
            .unwrap();
        assert_ne!(a.external_path(), b.external_path());
        assert!(a
            .external_path()
            .starts_with(&format!("{root}/sp/savepoint-012345-")));

        let config = CheckpointConfig {
            savepoint_dir: Some(format!("{root}/default-sp")),
            ..fs_config(&root, 4)
        };
        let storage = CheckpointStorage::new(&config, job()).unwrap();
        let c = storage.savepoint_location(None).unwrap();
        assert!(c
            .external_path()
            .starts_with(&format!("{root}/default-sp/savepoint-")));
        let d = storage
            .savepoint_location(Some(&format!("{root}/asked")))
            .unwrap();
        assert!(d
            .external_path()
            .starts_with(&format!("{root}/asked/savepoint-")));
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

    /// The runtime spawns uploads and restores onto tokio: every public future must be `Send`.
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

    #[test]
    fn public_futures_are_send() {
        fn assert_send<T: Send>(_: T) {}
        let storage = CheckpointStorage::new(&fs_config(&memory_root(), 4), job()).unwrap();
        let loc = storage.checkpoint_location(CheckpointId(1));
        let md = metadata(1, CheckpointKind::PERIODIC, vec![]);
        let handle = StateHandle::Inline(vec![]);
        assert_send(storage.write_state(&loc, "x", vec![]));
        assert_send(storage.write_metadata(&loc, &md));
        assert_send(storage.discard_checkpoint(CheckpointId(1)));
        assert_send(storage.discard_incomplete(&loc));
        assert_send(loc.read_state(&handle));
        assert_send(loc.read_metadata());
        assert_send(load_snapshot("memory://x/y"));
        assert_send(list_snapshots("memory://x/y"));
    }

    #[test]
    fn unknown_scheme_is_an_error_naming_it() {
        for (dir, scheme) in [("s3://bucket/cp", "s3"), ("hdfs://nn:8020/cp", "hdfs")] {
            let e = CheckpointStorage::new(&fs_config(dir, 4), job()).unwrap_err();
            assert!(matches!(e, StorageError::UnsupportedScheme { .. }), "{e}");
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("`{scheme}`")) && msg.contains(dir),
                "{msg}"
            );
        }
        let config = CheckpointConfig {
            savepoint_dir: Some("gs://b/sp".into()),
            ..fs_config(&memory_root(), 4)
        };
        let e = CheckpointStorage::new(&config, job()).unwrap_err();
        assert!(e.to_string().contains("`gs`"), "{e}");
    }

    #[tokio::test]
    async fn create_subdir_off_puts_checkpoints_in_the_dir() {
        let (_t, dir) = tmp();
        let config = CheckpointConfig {
            create_subdir: false,
            ..fs_config(&dir, 4)
        };
        let storage = CheckpointStorage::new(&config, job()).unwrap();
        assert_eq!(storage.job_dir(), dir);
        let (_, path) = checkpoint(&storage, 4, &[b"flat layout"]).await;
        assert_eq!(path, format!("{dir}/chk-4"));
        assert_eq!(list_snapshots(&dir).await.unwrap().len(), 1);
    }

    #[test]
    fn location_strings_resolve_to_a_backend_and_key() {
        let (_, key) = resolve("/var/cp/./a/../b/").unwrap();
        assert_eq!(key, "var/cp/b");
        let (backend, key) = resolve("file://localhost/var/cp").unwrap();
        assert_eq!(backend.external(&key), "/var/cp");
        let (backend, key) = resolve("relative/cp").unwrap();
        let expected = std::env::current_dir().unwrap().join("relative/cp");
        assert_eq!(backend.external(&key), expected.to_str().unwrap());
        let (backend, key) = resolve("memory://name/a//b").unwrap();
        assert_eq!(key, "a/b");
        assert_eq!(backend.external(&key), "memory://name/a/b");
        for bad in ["", "  ", "file://host/var/cp", "file://relative"] {
            assert!(
                matches!(resolve(bad), Err(StorageError::InvalidLocation { .. })),
                "{bad}"
            );
        }
    }
}
