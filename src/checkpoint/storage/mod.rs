//! Writing and reading checkpoint state and `_metadata` through opendal.
//!
//! - [`location`]: from a configured directory or URI (a plain path, `file://`, `s3://` or
//!   `memory://`) to an opendal operator; one job's [`CheckpointStorage`], and the [`SnapshotLocation`] of
//!   each checkpoint (`chk-<n>`) or savepoint (`savepoint-<job>-<random>`).
//! - [`commit`]: the commit protocol: state blobs inline or as files
//!   ([`CheckpointStorage::write_state`]), then `_metadata`, written last and never overwritten
//!   ([`CheckpointStorage::write_metadata`]).
//! - [`discard`]: deleting snapshots, `_metadata` first: checkpoints no longer retained,
//!   aborted ones, and savepoints a user disposes of ([`dispose_snapshot`]); sweeping the
//!   leftovers of abandoned checkpoints ([`CheckpointStorage::discard_abandoned`]).
//! - [`read`]: the restore side: [`load_snapshot`] opens a snapshot from the path a user gives,
//!   [`SnapshotLocation::read_state`] reads a state handle back, checking its size and CRC-32
//!   ([`StateReadError`]).
//! - [`listing`]: offline inspection of a directory ([`list_snapshots`], `weir checkpoints DIR`).
//! - [`s3`]: S3-compatible object stores: the process's [`s3::S3Settings`] (Flink's `s3.*` keys
//!   and the AWS environment variables), checked with errors naming the key; retries.
//! - [`local`]: local recovery: a local copy of each checkpoint state file, written with the
//!   remote one, read first on failover when its size and CRC-32 match `_metadata`.
//! - [`error`]: [`StorageError`], which names the location every failure is about.
//! - [`faults`]: a testing tool: an opendal layer injecting write, read and delete errors, torn
//!   writes, latency and a full disk, attached to the storage of a directory by
//!   [`faults::install`].
//!
//! How it is used: the job manager builds a [`CheckpointStorage`] from the job's
//! `CheckpointConfig`; for each checkpoint it hands the subtasks a [`SnapshotLocation`], they
//! upload their state with `write_state` and acknowledge with the handles, and the coordinator
//! commits with `write_metadata` once every acknowledgement is in. A restore goes through
//! [`load_snapshot`] and `read_state`. Every path is built by [`super::paths`].

pub mod commit;
pub mod discard;
pub mod error;
pub mod faults;
pub mod listing;
pub mod local;
pub mod location;
pub mod read;
pub mod s3;

#[cfg(test)]
mod test_support;

pub use discard::{dispose_snapshot, AbandonedSweep};
pub use error::StorageError;
pub use listing::{list_snapshots, SnapshotListing, SnapshotStatus};
pub use location::{CheckpointStorage, SnapshotLocation};
pub use read::{load_snapshot, StateReadError};

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::checkpoint::metadata::StateHandle;
    use crate::element::CheckpointKind;
    use crate::ids::CheckpointId;

    /// The runtime spawns uploads and restores onto tokio: every public future must be `Send`.
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
        assert_send(storage.discard_abandoned(|id| id.0 > 1));
        assert_send(loc.read_state(&handle));
        assert_send(loc.read_metadata());
        assert_send(load_snapshot("memory://x/y"));
        assert_send(list_snapshots("memory://x/y"));
    }
}
