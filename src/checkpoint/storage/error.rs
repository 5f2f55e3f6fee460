//! [`StorageError`]: why a storage operation failed, naming the location it is about.
//!
//! Every operation of [`super`] returns it; a state file that cannot be read back is the nested
//! [`StateReadError`], so a caller can tell damage (restore from another snapshot) from a store
//! that cannot be reached.

use super::read::StateReadError;
use crate::checkpoint::metadata::MetadataError;
use crate::ids::CheckpointId;

/// Why a storage operation failed. Every variant names the location it is about.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "unsupported storage scheme `{scheme}` in `{uri}`: use a plain path, a `file://` URI, \
         `s3://` or `memory://` (this build includes no other storage services)"
    )]
    UnsupportedScheme { uri: String, scheme: String },
    #[error("invalid storage location `{uri}`: {reason}")]
    InvalidLocation { uri: String, reason: &'static str },
    /// The S3 settings cannot reach `uri`; `key` is the setting to fix.
    #[error("cannot use `{uri}`: {reason} (setting `{key}`)")]
    S3Config {
        uri: String,
        key: &'static str,
        reason: &'static str,
    },
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
    /// A write the storage tore.
    #[error(
        "`{path}` holds {stored} bytes after {written} were written: the storage lost part of \
         the write (a full disk or a failing device?)"
    )]
    ShortWrite {
        path: String,
        written: u64,
        stored: u64,
    },
    #[error("could not {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: Box<opendal::Error>,
    },
}

impl StorageError {
    /// Whether retrying the same operation may succeed: an I/O error of the storage (a network,
    /// a device, a fault injected for tests). A missing or damaged snapshot, a bad location or
    /// a refused operation stays as it is however often it is retried.
    pub fn is_transient(&self) -> bool {
        match self {
            StorageError::Io { .. } => true,
            StorageError::StateRead(e) => e.cause() == crate::failure::FailureCause::Recoverable,
            _ => false,
        }
    }
}
