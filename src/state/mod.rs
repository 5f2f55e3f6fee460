//! State: keyed state partitioned into key groups, operator state, and their snapshots.
//!
//! - [`key_group`]: the stable key hash, Flink's key-group formulas and [`KeyGroupRange`].
//! - [`keyed`]: [`KeyedStateStore`], one per keyed operator subtask, and its typed handles
//!   ([`ValueState`], [`ListState`], [`MapState`], [`ReducingState`]) scoped to the current key.
//! - [`operator_state`]: [`OperatorStateStore`], non-keyed list and union list state of sources
//!   and other operators, redistributed on rescale.
//! - [`snapshot`]: the versioned, checksummed blob formats both stores write and read.
//! - `snapshot_job`: [`KeyedSnapshotJob`], keyed state captured at a barrier in O(key groups)
//!   and encoded into its blob later, on another thread.
//! - [`timers`]: event-time and processing-time timers of a keyed store, kept as keyed state
//!   ([`KeyedStateStore::timer_service`]).
//! - [`error`]: [`StateError`], the one error type of this module.
//!
//! Internally, `table` is the interface between a keyed store and its backend (the [`keyed`]
//! docs describe how the on-disk backend plugs in), `heap` is the `hashmap` backend and
//! `handles` holds the typed handles.
//!
//! Flow: the runtime builds a store per subtask, restores it from the blobs of the last
//! checkpoint (any number of old subtasks when rescaling), lets user code register state in
//! `open`, scopes keyed state per record with `set_current_key`, and at each barrier captures
//! keyed state with `snapshot_deferred()` (operator state with `snapshot()`), then encodes and
//! uploads the bytes off the subtask's thread.

pub mod channel;
pub mod error;
mod handles;
mod heap;
pub mod key_group;
pub mod keyed;
pub mod operator_state;
#[cfg(feature = "rocksdb")]
mod rocks;
pub mod snapshot;
mod snapshot_job;
mod table;
pub mod timers;

#[cfg(test)]
mod rescale_tests;
#[cfg(test)]
mod snapshot_job_tests;

pub use error::StateError;
pub use key_group::KeyGroupRange;
pub use keyed::{
    KeyedBackend, KeyedSnapshotJob, KeyedStateStore, ListState, MapState, ReducingState,
    StateBackendKind, StateKey, StateValue, ValueState,
};
pub use operator_state::{OperatorListState, OperatorStateStore};

/// Waits, blocking, until no RocksDB instance of the `rocksdb` backend is open in this process
/// (or `timeout` passed; returns whether none is). RocksDB aborts a process that exits while
/// one is open, and a job's subtasks drop their stores on their own threads shortly after the
/// job ends: call this before `main` returns, never on an actor's thread.
pub fn wait_for_rocksdb_closed(timeout: std::time::Duration) -> bool {
    #[cfg(feature = "rocksdb")]
    {
        let deadline = std::time::Instant::now() + timeout;
        while rocks::open_instances() > 0 {
            if std::time::Instant::now() >= deadline {
                tracing::warn!(
                    open = rocks::open_instances(),
                    "RocksDB instances still open at exit"
                );
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    let _ = timeout;
    true
}

/// A process-unique id for a store, so a handle used with another store is caught.
fn next_store_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
