//! Where snapshots live: from a configured directory or URI to an opendal operator and a key.
//!
//! - [`CheckpointStorage`]: one job's checkpoint storage, built from [`CheckpointConfig`]. It
//!   hands out a [`SnapshotLocation`] per checkpoint (`chk-<n>`,
//!   [`CheckpointStorage::checkpoint_location`]) or savepoint (`savepoint-<job>-<random>`,
//!   [`CheckpointStorage::savepoint_location`]).
//! - [`SnapshotLocation`]: one snapshot directory, as a backend and a key inside it; what a
//!   snapshot is written to ([`super::commit`]) and read from ([`super::read`]).
//!
//! A location string is a plain path, a `file://` URI, `s3://<bucket>/<path>` (an S3-compatible
//! object store, see [`super::s3`]) or `memory://<name>/<path>`; `resolve`
//! turns it into a backend (an opendal operator, shared within the process) and a key. Memory
//! stores are shared per `<name>`, so a test can write through one [`CheckpointStorage`] and
//! load through the same URI. Jobmanager storage is the memory store
//! `memory://jobmanager-<job id>/`.
//!
//! A location in a directory that a test made faulty ([`faults::install`]) gets its backend
//! wrapped in the fault layer; nothing else does.
//!
//! Local files go through an fs operator rooted at the filesystem root, not at the configured
//! directory: building an fs operator creates its root, and opening a snapshot that does not
//! exist must not create directories.

use std::collections::HashMap;
use std::path::{Component, Path};
use std::sync::{Arc, Mutex, OnceLock};

use opendal::Operator;

use super::commit::InlinePolicy;
use super::error::StorageError;
use super::faults;
use super::local::LocalCopies;
use super::s3;
use crate::checkpoint::options::{CheckpointConfig, StorageConfig};
use crate::checkpoint::paths::{self, CheckpointPaths};
use crate::ids::{CheckpointId, JobId};

/// One opendal operator, and how its keys read as paths a user can type.
#[derive(Clone, Debug)]
pub(super) struct Backend {
    pub(super) op: Operator,
    pub(super) kind: BackendKind,
}

#[derive(Clone, Debug)]
pub(super) enum BackendKind {
    /// Local files; keys are relative to `root`, the filesystem root (`/` on Unix).
    Fs { root: String },
    /// The process-wide memory store `<name>`: `memory://<name>/<key>`.
    Memory { name: String },
    /// An S3 bucket: `s3://<bucket>/<key>` (see [`super::s3`]).
    S3 { bucket: String },
}

impl Backend {
    /// `key` as a user would type it: a path for local files, else a `memory://` URI.
    pub(super) fn external(&self, key: &str) -> String {
        match &self.kind {
            BackendKind::Fs { root } => format!("{root}{key}"),
            BackendKind::Memory { name } => format!("memory://{name}/{key}"),
            BackendKind::S3 { bucket } => format!("s3://{bucket}/{key}"),
        }
    }

    /// Which store this is, the same for every `Backend` of that store: `fs:<root>` or
    /// `memory:<name>`.
    pub(super) fn id(&self) -> String {
        match &self.kind {
            BackendKind::Fs { root } => Self::fs_id(root),
            BackendKind::Memory { name } => Self::memory_id(name),
            BackendKind::S3 { bucket } => format!("s3:{bucket}"),
        }
    }

    fn fs_id(root: &str) -> String {
        format!("fs:{root}")
    }

    fn memory_id(name: &str) -> String {
        format!("memory:{name}")
    }

    /// Opens (once per process) the fs operator rooted at `root`.
    fn fs(root: String, uri: &str) -> Result<Self, StorageError> {
        let op = shared_operator(&Self::fs_id(&root), || {
            Operator::new(opendal::services::Fs::default().root(&root))
        })
        .map_err(open_error(uri))?;
        Ok(Self {
            op,
            kind: BackendKind::Fs { root },
        })
    }

    /// The operator of S3 bucket `bucket` with the process's S3 settings ([`s3::current`]).
    fn s3(bucket: &str, uri: &str) -> Result<Self, StorageError> {
        let settings = s3::current().checked(uri)?;
        let op = shared_operator(&settings.store_key(bucket), || settings.operator(bucket))
            .map_err(open_error(uri))?;
        Ok(Self {
            op,
            kind: BackendKind::S3 {
                bucket: bucket.to_string(),
            },
        })
    }

    /// The process-wide memory store `name`, created empty on first use.
    fn memory(name: &str, uri: &str) -> Result<Self, StorageError> {
        let op = shared_operator(&Self::memory_id(name), || {
            Operator::new(opendal::services::Memory::default())
        })
        .map_err(open_error(uri))?;
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

/// The backend and the key inside it that a location string names, with the fault layer
/// when the location is in a directory a test made faulty ([`faults::install`]).
pub(super) fn resolve(uri: &str) -> Result<(Backend, String), StorageError> {
    let (backend, key) = resolve_raw(uri)?;
    Ok((faults::registry::attach(backend, &key), key))
}

/// [`resolve`] without faults: the store exactly as it is.
pub(super) fn resolve_raw(uri: &str) -> Result<(Backend, String), StorageError> {
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
                // Flink's names for its S3 file systems all mean S3 here.
                "s3" | "s3a" | "s3p" => {
                    let (bucket, path) = s3::split(uri, rest)?;
                    Ok((Backend::s3(&bucket, uri)?, paths::normalize(&path)))
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

/// The snapshot directory a path a user gives names: the directory itself, or the directory
/// of the `_metadata` file it names. Nothing is read, created or checked.
pub(super) fn resolve_snapshot(path: &str) -> Result<SnapshotLocation, StorageError> {
    let (backend, key) = resolve(path)?;
    let dir = if paths::file_name(&key) == paths::METADATA_FILE {
        paths::parent(&key).to_string()
    } else {
        key
    };
    Ok(SnapshotLocation {
        backend,
        dir,
        local: None,
    })
}

/// One job's checkpoint storage. Cheap to clone: all clones share one store.
#[derive(Clone, Debug)]
pub struct CheckpointStorage {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) job_id: JobId,
    pub(super) backend: Backend,
    pub(super) paths: CheckpointPaths,
    pub(super) policy: InlinePolicy,
    pub(super) savepoint_dir: Option<String>,
    /// The codec state blobs are compressed with, if any (`snapshot-compression`).
    pub(super) compression: Option<crate::format::Codec>,
    /// Local copies of checkpoint state (local recovery), if enabled.
    pub(super) local: Option<LocalCopies>,
}

/// One snapshot's directory: a `chk-<n>` or a savepoint directory. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SnapshotLocation {
    pub(super) backend: Backend,
    /// The directory, as a key of `backend`.
    pub(super) dir: String,
    /// The job's local copies, for a checkpoint of a job with local recovery
    /// ([`super::local`]); `None` for savepoints and for snapshots opened from a path.
    pub(super) local: Option<LocalCopies>,
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
                    faults::registry::attach(Backend::memory(&name, &uri)?, ""),
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
                compression: config.compression.then_some(crate::format::Codec::Lz4),
                local: LocalCopies::new(&config.local_recovery, job_id),
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
            local: self.inner.local.clone(),
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
            local: None,
        })
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

    /// Whether `key` exists in this location's store.
    pub(super) async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        self.backend
            .op
            .exists(key)
            .await
            .map_err(|source| self.io("check", key, source))
    }

    /// An [`StorageError::Io`] about `key`, named by its external path.
    pub(super) fn io(
        &self,
        action: &'static str,
        key: &str,
        source: opendal::Error,
    ) -> StorageError {
        StorageError::Io {
            action,
            path: self.backend.external(key.trim_end_matches('/')),
            source: Box::new(source),
        }
    }
}

/// Maps a failure to build the operator for `uri` to [`StorageError::Open`].
fn open_error(uri: &str) -> impl FnOnce(opendal::Error) -> StorageError + '_ {
    move |source| StorageError::Open {
        uri: uri.to_string(),
        source: Box::new(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::storage::test_support::*;
    use crate::checkpoint::storage::{list_snapshots, load_snapshot};

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

    #[test]
    fn unknown_scheme_is_an_error_naming_it() {
        for (dir, scheme) in [("abfs://c@a/cp", "abfs"), ("hdfs://nn:8020/cp", "hdfs")] {
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
