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
//! [`KeyedTable::snapshot_group`] and [`KeyedTable::prepare_restore`]. Lists and maps never
//! keep an empty entry, so a key "has state" exactly when some table has an entry for it.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};

use super::key_group::{key_group_for_hash, stable_hash, StableBuildHasher};
use super::keyed::{StateKey, StateValue};
use super::snapshot::{decode_data, encode_data, KeyedStateKind};
use super::table::{
    CurrentKey, GroupLayout, HashedKey, KeyedTable, PrehashedMap, Prepared, TableRestoreError,
};

/// One per-key value per key, split by key group.
pub(crate) struct HeapGroups<K, S> {
    groups: Vec<PrehashedMap<K, S>>,
}

impl<K: StateKey, S> HeapGroups<K, S> {
    pub(crate) fn new(groups: usize) -> Self {
        Self {
            groups: (0..groups).map(|_| PrehashedMap::default()).collect(),
        }
    }

    #[inline]
    pub(crate) fn get(&self, cur: &CurrentKey<K>) -> Option<&S> {
        self.groups[cur.offset].get(&cur.key)
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, cur: &CurrentKey<K>) -> Option<&mut S> {
        self.groups[cur.offset].get_mut(&cur.key)
    }

    /// Sets the current key's value (clones the key only when it is new).
    #[inline]
    pub(crate) fn insert(&mut self, cur: &CurrentKey<K>, value: S) {
        let group = &mut self.groups[cur.offset];
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
        let group = &mut self.groups[cur.offset];
        if !group.contains_key(&cur.key) {
            group.insert(cur.key.clone(), make());
        }
        group.get_mut(&cur.key).expect("just inserted")
    }

    #[inline]
    pub(crate) fn remove(&mut self, cur: &CurrentKey<K>) -> Option<S> {
        self.groups[cur.offset].remove(&cur.key)
    }

    fn key_count(&self) -> usize {
        self.groups.iter().map(HashMap::len).sum()
    }

    fn for_each_key<'a>(&'a self, f: &mut dyn FnMut(&'a HashedKey<K>)) {
        self.groups.iter().flat_map(HashMap::keys).for_each(f);
    }
}

impl<K: StateKey, S: Serialize + DeserializeOwned + Send + 'static> HeapGroups<K, S> {
    fn snapshot_group(&self, offset: usize) -> Result<Option<Vec<u8>>, rmp_serde::encode::Error> {
        let group = &self.groups[offset];
        if group.is_empty() {
            return Ok(None);
        }
        encode_data(&Entries(group)).map(Some)
    }

    fn prepare_restore(
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

    fn commit_restore(&mut self, prepared: Prepared) {
        self.groups = *prepared
            .downcast::<Vec<PrehashedMap<K, S>>>()
            .expect("prepared by the same table type");
    }
}

/// Serialises a group as a sequence of `(key, value)` without collecting it.
struct Entries<'a, K, S>(&'a PrehashedMap<K, S>);

impl<K: Serialize, S: Serialize> Serialize for Entries<'_, K, S> {
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        serializer.collect_seq(self.0.iter().map(|(k, v)| (&k.key, v)))
    }
}

/// A heap table: its kind, its per-key value type, and its groups.
pub(crate) trait HeapTable<K: StateKey>: Send + 'static {
    type PerKey: Serialize + DeserializeOwned + Send + 'static;
    const KIND: KeyedStateKind;
    fn value_type(&self) -> String;
    fn data(&self) -> &HeapGroups<K, Self::PerKey>;
    fn data_mut(&mut self) -> &mut HeapGroups<K, Self::PerKey>;
}

impl<K: StateKey, T: HeapTable<K>> KeyedTable<K> for T {
    fn kind(&self) -> KeyedStateKind {
        T::KIND
    }
    fn value_type(&self) -> String {
        HeapTable::value_type(self)
    }
    fn key_count(&self) -> usize {
        self.data().key_count()
    }
    fn for_each_key<'a>(&'a self, f: &mut dyn FnMut(&'a HashedKey<K>)) {
        self.data().for_each_key(f);
    }
    fn snapshot_group(&self, offset: usize) -> Result<Option<Vec<u8>>, rmp_serde::encode::Error> {
        self.data().snapshot_group(offset)
    }
    fn prepare_restore(
        &self,
        layout: &GroupLayout,
        chunks: &[(u32, &[u8])],
    ) -> Result<Prepared, TableRestoreError> {
        self.data().prepare_restore(layout, chunks)
    }
    fn commit_restore(&mut self, prepared: Prepared) {
        self.data_mut().commit_restore(prepared);
    }
}

/// `ValueState<V>` storage.
pub(crate) struct ValueTable<K, V> {
    pub(crate) data: HeapGroups<K, V>,
}

/// `ListState<V>` storage; a key's list is never empty.
pub(crate) struct ListTable<K, V> {
    pub(crate) data: HeapGroups<K, Vec<V>>,
}

/// A map state's per-key map.
pub(crate) type UserMap<UK, UV> = HashMap<UK, UV, StableBuildHasher>;

/// `MapState<UK, UV>` storage; a key's map is never empty.
pub(crate) struct MapTable<K, UK, UV> {
    pub(crate) data: HeapGroups<K, UserMap<UK, UV>>,
}

/// The function a reducing state combines values with.
pub(crate) type ReduceFn<V> = Box<dyn Fn(&V, &V) -> V + Send>;

/// `ReducingState<V>` storage.
pub(crate) struct ReducingTable<K, V> {
    pub(crate) data: HeapGroups<K, V>,
    pub(crate) reduce: ReduceFn<V>,
}

macro_rules! heap_table {
    ($table:ident<$($p:ident),*>, $per_key:ty, $kind:expr, $value_type:expr) => {
        impl<K: StateKey, $($p: StateValue),*> HeapTable<K> for $table<K, $($p),*>
        where
            $per_key: Serialize + DeserializeOwned,
        {
            type PerKey = $per_key;
            const KIND: KeyedStateKind = $kind;
            fn value_type(&self) -> String {
                $value_type.to_string()
            }
            fn data(&self) -> &HeapGroups<K, Self::PerKey> {
                &self.data
            }
            fn data_mut(&mut self) -> &mut HeapGroups<K, Self::PerKey> {
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
    fn data(&self) -> &HeapGroups<K, Self::PerKey> {
        &self.data
    }
    fn data_mut(&mut self) -> &mut HeapGroups<K, Self::PerKey> {
        &mut self.data
    }
}
