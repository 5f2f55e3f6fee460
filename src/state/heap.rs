//! The `hashmap` backend: keyed state as typed Rust values in per-key-group hash maps.
//!
//! [`HeapGroups<K, S>`] holds one [`PrehashedMap`] per key group of the store's range (indexed
//! by the group's offset), mapping a key to its per-key value `S`. Each kind of state wraps it:
//!
//! | table | per-key value `S` |
//! |---|---|
//! | [`ValueTable<K, V>`] | `V` |
//! | [`ListTable<K, V>`] | `Vec<V>` (never empty) |
//! | [`MapTable<K, UK, UV>`] | `HashMap<UK, UV>` (never empty) |
//! | [`ReducingTable<K, V>`] | `V`, plus the reduce function |
//!
//! A lookup is one probe with the record's precomputed hash; nothing is serialised except in
//! [`GroupEntries::encode_group`] and [`KeyedTable::prepare_restore`]. Lists and maps never
//! keep an empty entry, so a key "has state" exactly when some table has an entry for it.
//!
//! # Copy-on-write snapshots
//!
//! Each group's map is either owned by the table or shared with snapshots still being encoded
//! ([`Group`]). [`KeyedTable::capture`] moves every non-empty owned map behind an `Arc` and
//! hands out clones of the `Arc`s: O(key groups), nothing is copied. The first write to a
//! shared group afterwards takes the map back if the snapshots are done with it, or else clones
//! it (one group's map, once per capture), so a captured map never changes. Reads never clone.
//! The cost on the record path is one predictable branch per access; the copies (about as
//! much work as the capture saved, while a capture is held) land on the first write to each
//! group after the barrier, one group at a time.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use super::key_group::{key_group_for_hash, stable_hash, StableBuildHasher};
use super::keyed::{StateKey, StateValue};
use super::snapshot::{decode_data, KeyedStateKind};
use super::table::{
    CurrentKey, GroupEntries, GroupLayout, HashedKey, KeyedTable, PrehashedMap, Prepared,
    TableRestoreError,
};

/// One key group's map: the table's own, or shared with snapshots not yet encoded.
enum Group<K, S> {
    Owned(PrehashedMap<K, S>),
    Shared(Arc<PrehashedMap<K, S>>),
}

impl<K: StateKey, S: Clone> Group<K, S> {
    #[inline]
    fn map(&self) -> &PrehashedMap<K, S> {
        match self {
            Group::Owned(map) => map,
            Group::Shared(map) => map,
        }
    }

    /// The map, to write to: a shared map is taken back or cloned first.
    #[inline]
    fn owned(&mut self) -> &mut PrehashedMap<K, S> {
        match self {
            Group::Owned(map) => map,
            Group::Shared(_) => self.unshare(),
        }
    }

    /// The map to write to, unless `key` is absent from a shared map (then nothing would
    /// change, so nothing is cloned).
    #[inline]
    fn owned_if_has(&mut self, key: &HashedKey<K>) -> Option<&mut PrehashedMap<K, S>> {
        match self {
            Group::Owned(map) => Some(map),
            Group::Shared(_) => self.unshare_if_has(key),
        }
    }

    /// [`Group::owned_if_has`] for a shared map: out of line, so that the record path is one
    /// branch and stays small enough to inline.
    #[cold]
    #[inline(never)]
    fn unshare_if_has(&mut self, key: &HashedKey<K>) -> Option<&mut PrehashedMap<K, S>> {
        if self.map().contains_key(key) {
            Some(self.unshare())
        } else {
            None
        }
    }

    /// Makes a shared map the table's own again: takes it back if no capture holds it any
    /// more, or else copies it (the capture keeps the original).
    #[cold]
    #[inline(never)]
    fn unshare(&mut self) -> &mut PrehashedMap<K, S> {
        if let Group::Shared(shared) = self {
            *self = Group::Owned(std::mem::take(Arc::make_mut(shared)));
        }
        match self {
            Group::Owned(map) => map,
            Group::Shared(_) => unreachable!("unshared above"),
        }
    }

    /// Shares the map (unless it is empty) and returns a handle to it that no write changes.
    fn capture(&mut self) -> Option<Arc<PrehashedMap<K, S>>> {
        if self.map().is_empty() {
            return None;
        }
        let shared = match std::mem::replace(self, Group::Owned(PrehashedMap::default())) {
            Group::Owned(map) => Arc::new(map),
            Group::Shared(map) => map,
        };
        *self = Group::Shared(Arc::clone(&shared));
        Some(shared)
    }
}

/// One per-key value per key, split by key group.
pub(crate) struct HeapGroups<K, S> {
    groups: Vec<Group<K, S>>,
}

impl<K: StateKey, S: Clone> HeapGroups<K, S> {
    pub(crate) fn new(groups: usize) -> Self {
        Self {
            groups: (0..groups)
                .map(|_| Group::Owned(PrehashedMap::default()))
                .collect(),
        }
    }

    #[inline]
    pub(crate) fn get(&self, cur: &CurrentKey<K>) -> Option<&S> {
        self.groups[cur.offset].map().get(&cur.key)
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, cur: &CurrentKey<K>) -> Option<&mut S> {
        self.groups[cur.offset]
            .owned_if_has(&cur.key)?
            .get_mut(&cur.key)
    }

    /// Sets the current key's value (clones the key only when it is new).
    #[inline]
    pub(crate) fn insert(&mut self, cur: &CurrentKey<K>, value: S) {
        let group = self.groups[cur.offset].owned();
        match group.get_mut(&cur.key) {
            Some(slot) => *slot = value,
            None => {
                group.insert(cur.key.clone(), value);
            }
        }
    }

    /// The current key's value, inserting `make()` first if it has none.
    #[inline]
    pub(crate) fn get_or_insert_with(
        &mut self,
        cur: &CurrentKey<K>,
        make: impl FnOnce() -> S,
    ) -> &mut S {
        let group = self.groups[cur.offset].owned();
        if !group.contains_key(&cur.key) {
            group.insert(cur.key.clone(), make());
        }
        group.get_mut(&cur.key).expect("just inserted")
    }

    #[inline]
    pub(crate) fn remove(&mut self, cur: &CurrentKey<K>) -> Option<S> {
        self.groups[cur.offset]
            .owned_if_has(&cur.key)?
            .remove(&cur.key)
    }

    pub(crate) fn key_count(&self) -> usize {
        self.groups.iter().map(|g| g.map().len()).sum()
    }

    pub(crate) fn for_each_key<'a>(&'a self, f: &mut dyn FnMut(&'a HashedKey<K>)) {
        self.groups.iter().flat_map(|g| g.map().keys()).for_each(f);
    }

    /// Every group's map as it is now, unaffected by later writes (see the module docs).
    pub(crate) fn capture(&mut self) -> CapturedGroups<K, S> {
        CapturedGroups {
            groups: self.groups.iter_mut().map(Group::capture).collect(),
        }
    }
}

impl<K: StateKey, S: Clone + Serialize> GroupEntries for HeapGroups<K, S> {
    fn group_len(&self, offset: usize) -> usize {
        self.groups[offset].map().len()
    }

    fn encode_group(
        &self,
        offset: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), rmp_serde::encode::Error> {
        encode_entries(self.groups[offset].map(), out)
    }
}

/// The groups of a table at a capture: `None` for a group that was empty.
pub(crate) struct CapturedGroups<K, S> {
    groups: Vec<Option<Arc<PrehashedMap<K, S>>>>,
}

impl<K: StateKey, S: Serialize> GroupEntries for CapturedGroups<K, S> {
    fn group_len(&self, offset: usize) -> usize {
        self.groups[offset].as_ref().map_or(0, |map| map.len())
    }

    fn encode_group(
        &self,
        offset: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), rmp_serde::encode::Error> {
        match &self.groups[offset] {
            Some(map) => encode_entries(map, out),
            None => Ok(()),
        }
    }
}

/// Appends a group's entries to `out` as one MessagePack sequence of `(key, value)` (the bytes
/// [`encode_data`](super::snapshot::encode_data) gives for it).
fn encode_entries<K: Serialize, S: Serialize>(
    map: &PrehashedMap<K, S>,
    out: &mut Vec<u8>,
) -> Result<(), rmp_serde::encode::Error> {
    rmp_serde::encode::write_named(out, &Entries(map))
}

impl<K: StateKey, S: StateValue> HeapGroups<K, S> {
    pub(crate) fn prepare_restore(
        &self,
        layout: &GroupLayout,
        chunks: &[(u32, &[u8])],
    ) -> Result<Prepared, TableRestoreError> {
        let mut groups: Vec<PrehashedMap<K, S>> = (0..layout.range.len())
            .map(|_| PrehashedMap::default())
            .collect();
        for &(key_group, bytes) in chunks {
            let offset = layout
                .range
                .offset_of(key_group)
                .expect("the store passes only its own key groups");
            let entries: Vec<(K, S)> = decode_data(bytes)
                .map_err(|source| TableRestoreError::Decode { key_group, source })?;
            let group = &mut groups[offset];
            group.reserve(entries.len());
            for (key, value) in entries {
                let hash = stable_hash(&key);
                let actual = key_group_for_hash(hash, layout.max_parallelism);
                if actual != key_group {
                    return Err(TableRestoreError::KeyGroupMoved {
                        saved: key_group,
                        actual,
                    });
                }
                group.insert(HashedKey { hash, key }, value);
            }
        }
        Ok(Box::new(groups))
    }

    pub(crate) fn commit_restore(&mut self, prepared: Prepared) {
        let maps = *prepared
            .downcast::<Vec<PrehashedMap<K, S>>>()
            .expect("prepared by the same table type");
        self.groups = maps.into_iter().map(Group::Owned).collect();
    }
}

/// Serialises a group as a sequence of `(key, value)` without collecting it.
struct Entries<'a, K, S>(&'a PrehashedMap<K, S>);

impl<K: Serialize, S: Serialize> Serialize for Entries<'_, K, S> {
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        serializer.collect_seq(self.0.iter().map(|(k, v)| (&k.key, v)))
    }
}

/// A table's storage: in memory (`hashmap`) or in the store's RocksDB (`rocksdb`). The handles
/// call the same methods on both; each is one predictable branch.
pub(crate) enum Groups<K, S> {
    Heap(HeapGroups<K, S>),
    #[cfg(feature = "rocksdb")]
    Rocks(super::rocks::RocksGroups<K, S>),
}

/// Dispatches a call to the backend's groups.
macro_rules! dispatch {
    ($self:expr, $g:ident => $e:expr) => {
        match $self {
            Groups::Heap($g) => $e,
            #[cfg(feature = "rocksdb")]
            Groups::Rocks($g) => $e,
        }
    };
}

impl<K: StateKey, S: StateValue> Groups<K, S> {
    /// Storage for a state of a store with `groups` key groups.
    pub(crate) fn new(backend: &GroupsBackend, groups: usize) -> Self {
        match backend {
            GroupsBackend::Heap => Groups::Heap(HeapGroups::new(groups)),
            #[cfg(feature = "rocksdb")]
            GroupsBackend::Rocks(store, tag) => {
                Groups::Rocks(super::rocks::RocksGroups::new(Arc::clone(store), *tag))
            }
        }
    }

    #[inline]
    pub(crate) fn get(&self, cur: &CurrentKey<K>) -> Option<&S> {
        dispatch!(self, g => g.get(cur))
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, cur: &CurrentKey<K>) -> Option<&mut S> {
        dispatch!(self, g => g.get_mut(cur))
    }

    #[inline]
    pub(crate) fn insert(&mut self, cur: &CurrentKey<K>, value: S) {
        dispatch!(self, g => g.insert(cur, value))
    }

    #[inline]
    pub(crate) fn get_or_insert_with(
        &mut self,
        cur: &CurrentKey<K>,
        make: impl FnOnce() -> S,
    ) -> &mut S {
        dispatch!(self, g => g.get_or_insert_with(cur, make))
    }

    #[inline]
    pub(crate) fn remove(&mut self, cur: &CurrentKey<K>) -> Option<S> {
        dispatch!(self, g => g.remove(cur))
    }
}

/// Where a new table's groups live.
pub(crate) enum GroupsBackend {
    Heap,
    /// The store's DB and the state's tag in it.
    #[cfg(feature = "rocksdb")]
    Rocks(Arc<super::rocks::RocksStore>, u16),
}

/// A heap table: its kind, its per-key value type, and its groups.
pub(crate) trait HeapTable<K: StateKey>: Send + 'static {
    type PerKey: StateValue;
    const KIND: KeyedStateKind;
    fn value_type(&self) -> String;
    fn data(&self) -> &Groups<K, Self::PerKey>;
    fn data_mut(&mut self) -> &mut Groups<K, Self::PerKey>;
}

impl<K: StateKey, T: HeapTable<K>> KeyedTable<K> for T {
    fn kind(&self) -> KeyedStateKind {
        T::KIND
    }
    fn value_type(&self) -> String {
        HeapTable::value_type(self)
    }
    fn key_count(&self) -> usize {
        dispatch!(self.data(), g => g.key_count())
    }
    fn for_each_key<'a>(&'a self, f: &mut dyn FnMut(&'a HashedKey<K>)) {
        match self.data() {
            Groups::Heap(g) => g.for_each_key(f),
            #[cfg(feature = "rocksdb")]
            Groups::Rocks(_) => unreachable!("the store counts RocksDB keys with encoded_keys"),
        }
    }
    #[cfg(feature = "rocksdb")]
    fn encoded_keys(&self, out: &mut std::collections::HashSet<Vec<u8>>) {
        if let Groups::Rocks(g) = self.data() {
            g.encoded_keys(out);
        }
    }
    fn entries(&self) -> &dyn GroupEntries {
        dispatch!(self.data(), g => g)
    }
    fn capture(&mut self) -> Box<dyn GroupEntries + Send> {
        match self.data_mut() {
            Groups::Heap(g) => Box::new(g.capture()),
            #[cfg(feature = "rocksdb")]
            Groups::Rocks(g) => g.capture(),
        }
    }
    fn prepare_restore(
        &self,
        layout: &GroupLayout,
        chunks: &[(u32, &[u8])],
    ) -> Result<Prepared, TableRestoreError> {
        dispatch!(self.data(), g => g.prepare_restore(layout, chunks))
    }
    fn commit_restore(&mut self, prepared: Prepared) {
        dispatch!(self.data_mut(), g => g.commit_restore(prepared))
    }
    #[cfg(feature = "rocksdb")]
    fn key_changed(&mut self) {
        if let Groups::Rocks(g) = self.data_mut() {
            g.key_changed();
        }
    }
    #[cfg(feature = "rocksdb")]
    fn flush(&mut self) -> Result<(), super::StateError> {
        match self.data_mut() {
            Groups::Heap(_) => Ok(()),
            Groups::Rocks(g) => g.flush(),
        }
    }
}

/// `ValueState<V>` storage.
pub(crate) struct ValueTable<K, V> {
    pub(crate) data: Groups<K, V>,
}

/// `ListState<V>` storage; a key's list is never empty.
pub(crate) struct ListTable<K, V> {
    pub(crate) data: Groups<K, Vec<V>>,
}

/// A map state's per-key map.
pub(crate) type UserMap<UK, UV> = HashMap<UK, UV, StableBuildHasher>;

/// `MapState<UK, UV>` storage; a key's map is never empty.
pub(crate) struct MapTable<K, UK, UV> {
    pub(crate) data: Groups<K, UserMap<UK, UV>>,
}

/// The function a reducing state combines values with.
pub(crate) type ReduceFn<V> = Box<dyn Fn(&V, &V) -> V + Send>;

/// `ReducingState<V>` storage.
pub(crate) struct ReducingTable<K, V> {
    pub(crate) data: Groups<K, V>,
    pub(crate) reduce: ReduceFn<V>,
}

macro_rules! heap_table {
    ($table:ident<$($p:ident),*>, $per_key:ty, $kind:expr, $value_type:expr) => {
        impl<K: StateKey, $($p: StateValue),*> HeapTable<K> for $table<K, $($p),*>
        where
            $per_key: StateValue,
        {
            type PerKey = $per_key;
            const KIND: KeyedStateKind = $kind;
            fn value_type(&self) -> String {
                $value_type.to_string()
            }
            fn data(&self) -> &Groups<K, Self::PerKey> {
                &self.data
            }
            fn data_mut(&mut self) -> &mut Groups<K, Self::PerKey> {
                &mut self.data
            }
        }
    };
}

heap_table!(
    ValueTable<V>,
    V,
    KeyedStateKind::Value,
    std::any::type_name::<V>()
);
heap_table!(
    ListTable<V>,
    Vec<V>,
    KeyedStateKind::List,
    std::any::type_name::<V>()
);
heap_table!(
    ReducingTable<V>,
    V,
    KeyedStateKind::Reducing,
    std::any::type_name::<V>()
);

impl<K: StateKey, UK: StateKey, UV: StateValue> HeapTable<K> for MapTable<K, UK, UV> {
    type PerKey = UserMap<UK, UV>;
    const KIND: KeyedStateKind = KeyedStateKind::Map;
    fn value_type(&self) -> String {
        format!(
            "{}, {}",
            std::any::type_name::<UK>(),
            std::any::type_name::<UV>()
        )
    }
    fn data(&self) -> &Groups<K, Self::PerKey> {
        &self.data
    }
    fn data_mut(&mut self) -> &mut Groups<K, Self::PerKey> {
        &mut self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: u64) -> CurrentKey<u64> {
        CurrentKey {
            key: HashedKey {
                hash: stable_hash(&k),
                key: k,
            },
            key_group: 0,
            offset: 0,
        }
    }

    fn filled() -> HeapGroups<u64, u64> {
        let mut g = HeapGroups::new(1);
        for k in 0..100 {
            g.insert(&key(k), k);
        }
        g
    }

    #[test]
    fn a_write_to_a_captured_group_copies_it_and_leaves_the_capture_alone() {
        let mut g = filled();
        let captured = g.capture();
        let before: *const u64 = g.get(&key(5)).unwrap();
        *g.get_mut(&key(5)).unwrap() = 500;
        let after: *const u64 = g.get(&key(5)).unwrap();
        assert_ne!(before, after, "the group was copied before the write");
        let map = captured.groups[0].as_ref().unwrap();
        assert_eq!(map.get(&key(5).key), Some(&5));
        assert_eq!(g.get(&key(5)), Some(&500));
        // Copied once: the next write is in place.
        *g.get_mut(&key(6)).unwrap() = 600;
        assert_eq!(g.get(&key(5)).unwrap() as *const u64, after);
        assert_eq!(map.get(&key(6).key), Some(&6));
    }

    #[test]
    fn a_write_after_the_capture_is_dropped_takes_the_group_back_without_copying() {
        let mut g = filled();
        let before: *const u64 = g.get(&key(5)).unwrap();
        drop(g.capture());
        *g.get_mut(&key(5)).unwrap() = 500;
        assert_eq!(g.get(&key(5)).unwrap() as *const u64, before);
    }

    #[test]
    fn reads_and_writes_that_change_nothing_do_not_copy_a_captured_group() {
        let mut g = filled();
        let _captured = g.capture();
        let before: *const u64 = g.get(&key(5)).unwrap();
        assert!(g.get_mut(&key(1000)).is_none());
        assert!(g.remove(&key(1000)).is_none());
        assert_eq!(g.get(&key(5)).unwrap() as *const u64, before);
        assert!(matches!(g.groups[0], Group::Shared(_)));
    }

    #[test]
    fn empty_groups_are_not_captured() {
        let mut g = HeapGroups::<u64, u64>::new(3);
        g.insert(&key(1), 1);
        let captured = g.capture();
        assert_eq!(
            captured
                .groups
                .iter()
                .map(Option::is_some)
                .collect::<Vec<_>>(),
            [true, false, false]
        );
        assert_eq!(captured.group_len(0), 1);
        assert_eq!(captured.group_len(1), 0);
    }
}
