//! The backend interface of keyed state: what a store needs from one registered state's table.
//!
//! A [`KeyedStateStore`](super::keyed::KeyedStateStore) owns one table per registered state,
//! type-erased as `Box<dyn KeyedTable<K>>` so it can snapshot and restore them all per key
//! group. The typed handles downcast to the concrete table (one `TypeId` compare) and call its
//! typed methods directly, so a record's state access is a hash probe on typed data.
//!
//! The current key is hashed once per record ([`HashedKey`]): that hash picks the key group
//! and is reused, through [`PrehashedBuildHasher`], by every state table the record touches.
//!
//! How the embedded on-disk backend implements this interface (and where it bypasses it, for
//! incremental checkpoints) is described in the [`super::keyed`] module docs, "Backends".

use std::any::Any;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use super::key_group::KeyGroupRange;
use super::snapshot::KeyedStateKind;

/// A key with its stable hash, computed once per record.
#[derive(Clone, Debug)]
pub(crate) struct HashedKey<K> {
    pub(crate) hash: u64,
    pub(crate) key: K,
}

impl<K> Hash for HashedKey<K> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl<K: PartialEq> PartialEq for HashedKey<K> {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.key == other.key
    }
}

impl<K: Eq> Eq for HashedKey<K> {}

/// A hasher that passes a precomputed `u64` hash through (for [`HashedKey`] only).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached through `HashedKey`; fold bytes anyway so any use stays correct.
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
}

/// Builds [`PrehashedHasher`]s.
pub(crate) type PrehashedBuildHasher = BuildHasherDefault<PrehashedHasher>;

/// A map keyed by prehashed keys.
pub(crate) type PrehashedMap<K, S> = HashMap<HashedKey<K>, S, PrehashedBuildHasher>;

/// The key every handle is scoped to.
#[derive(Debug)]
pub(crate) struct CurrentKey<K> {
    pub(crate) key: HashedKey<K>,
    pub(crate) key_group: u32,
    /// `key_group - range.start`: the index of the group's map.
    pub(crate) offset: usize,
}

/// The store's key groups, for restoring.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GroupLayout {
    pub(crate) range: KeyGroupRange,
    pub(crate) max_parallelism: u32,
}

/// Decoded restore data not yet installed: phase one of an all-or-nothing restore.
pub(crate) type Prepared = Box<dyn Any + Send>;

/// Why a table could not decode its part of a snapshot.
#[derive(Debug)]
pub(crate) enum TableRestoreError {
    Decode {
        key_group: u32,
        source: rmp_serde::decode::Error,
    },
    KeyGroupMoved {
        saved: u32,
        actual: u32,
    },
}

/// One state's entries per key group, as the snapshot encoder reads them: a live table or
/// a capture of one.
pub(crate) trait GroupEntries {
    /// The number of entries of the group at `offset` in the store's range (0: the group is
    /// left out of the snapshot).
    fn group_len(&self, offset: usize) -> usize;

    /// Appends the group's entries to `out` as one MessagePack sequence of `(key, value)`.
    /// Appends nothing for an empty group.
    fn encode_group(
        &self,
        offset: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), rmp_serde::encode::Error>;
}

/// One registered keyed state's storage, as the store sees it.
pub(crate) trait KeyedTable<K>: Any + Send {
    /// The state's kind.
    fn kind(&self) -> KeyedStateKind;

    /// The value type(s), for messages and the snapshot's state table.
    fn value_type(&self) -> String;

    /// The number of keys with an entry.
    fn key_count(&self) -> usize;

    /// Calls `f` with every key that has an entry.
    fn for_each_key<'a>(&'a self, f: &mut dyn FnMut(&'a HashedKey<K>));

    /// The table's entries as they are now, for a snapshot encoded right away.
    fn entries(&self) -> &dyn GroupEntries;

    /// The table's entries as they are now, for a snapshot encoded later on any thread: no
    /// write to the table after this call may show in what it returns. Should cost
    /// O(key groups), not O(entries): it runs while the stream is stopped at a barrier.
    fn capture(&mut self) -> Box<dyn GroupEntries + Send>;

    /// Decodes `chunks` (`(key group, entries)`, every group inside `layout.range`) into a
    /// complete replacement of this table's contents, without touching the table.
    fn prepare_restore(
        &self,
        layout: &GroupLayout,
        chunks: &[(u32, &[u8])],
    ) -> Result<Prepared, TableRestoreError>;

    /// Installs what [`KeyedTable::prepare_restore`] of this table returned.
    fn commit_restore(&mut self, prepared: Prepared);

    /// The store's current key changed (called by on-disk backends' stores only).
    #[cfg(feature = "rocksdb")]
    fn key_changed(&mut self) {}

    /// Writes buffered changes to the backend's storage (before a capture).
    #[cfg(feature = "rocksdb")]
    fn flush(&mut self) -> Result<(), super::StateError> {
        Ok(())
    }

    /// Adds every key with an entry, encoded, to `out` (for backends whose keys are bytes,
    /// which cannot lend `&HashedKey`s to [`KeyedTable::for_each_key`]).
    #[cfg(feature = "rocksdb")]
    fn encoded_keys(&self, _out: &mut std::collections::HashSet<Vec<u8>>) {}
}
