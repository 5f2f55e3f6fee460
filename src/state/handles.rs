//! Typed handles to keyed state: [`ValueState`], [`ListState`], [`MapState`],
//! [`ReducingState`].
//!
//! A handle is a small `Copy` token (the store's id and the state's index) returned by
//! registration on a [`KeyedStateStore`]. Its methods take the store and act on the entry of
//! the store's current key. Methods named `get`/`get_ref`/`keys`/`entries` borrow the stored
//! value; `value` and `get` on lists return owned copies and work the same on every backend.
//!
//! # Panics
//!
//! Every method panics if no current key is set (keyed state exists only while a keyed record
//! is processed) or if the handle came from another store: both are bugs in the calling code,
//! and the messages name the operator and the state.

use std::fmt;
use std::marker::PhantomData;

use super::heap::{ListTable, MapTable, ReducingTable, UserMap, ValueTable};
use super::keyed::{KeyedStateStore, StateKey, StateValue};

/// Which registered state of which store a handle refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StateId {
    pub(crate) store: u64,
    pub(crate) index: u32,
}

impl StateId {
    pub(crate) fn new(store: u64, index: u32) -> Self {
        Self { store, index }
    }
}

macro_rules! handle_boilerplate {
    ($name:ident<$($p:ident),*>) => {
        impl<$($p),*> Clone for $name<$($p),*> {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl<$($p),*> Copy for $name<$($p),*> {}
        impl<$($p),*> fmt::Debug for $name<$($p),*> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("index", &self.id.index)
                    .finish_non_exhaustive()
            }
        }
        impl<$($p),*> $name<$($p),*> {
            pub(crate) fn new(id: StateId) -> Self {
                Self { id, _types: PhantomData }
            }
        }
    };
}

/// One value per key.
pub struct ValueState<V> {
    id: StateId,
    _types: PhantomData<fn() -> V>,
}
handle_boilerplate!(ValueState<V>);

impl<V: StateValue> ValueState<V> {
    /// A copy of the current key's value.
    #[inline]
    pub fn value<K: StateKey>(&self, s: &KeyedStateStore<K>) -> Option<V> {
        self.get(s).cloned()
    }

    /// The current key's value, borrowed.
    #[inline]
    pub fn get<'a, K: StateKey>(&self, s: &'a KeyedStateStore<K>) -> Option<&'a V> {
        let (t, cur) = s.table::<ValueTable<K, V>>(self.id);
        t.data.get(cur)
    }

    /// Sets the current key's value.
    #[inline]
    pub fn update<K: StateKey>(&self, s: &mut KeyedStateStore<K>, value: V) {
        let (t, cur) = s.table_mut::<ValueTable<K, V>>(self.id);
        t.data.insert(cur, value);
    }

    /// Removes the current key's value.
    #[inline]
    pub fn clear<K: StateKey>(&self, s: &mut KeyedStateStore<K>) {
        let (t, cur) = s.table_mut::<ValueTable<K, V>>(self.id);
        t.data.remove(cur);
    }
}

/// A list of values per key. An empty list and no list are the same.
pub struct ListState<V> {
    id: StateId,
    _types: PhantomData<fn() -> V>,
}
handle_boilerplate!(ListState<V>);

impl<V: StateValue> ListState<V> {
    /// A copy of the current key's list (empty if none).
    pub fn get<K: StateKey>(&self, s: &KeyedStateStore<K>) -> Vec<V> {
        self.get_ref(s).to_vec()
    }

    /// The current key's list, borrowed (empty if none).
    #[inline]
    pub fn get_ref<'a, K: StateKey>(&self, s: &'a KeyedStateStore<K>) -> &'a [V] {
        let (t, cur) = s.table::<ListTable<K, V>>(self.id);
        t.data.get(cur).map_or(&[], Vec::as_slice)
    }

    /// Appends `value` to the current key's list.
    #[inline]
    pub fn add<K: StateKey>(&self, s: &mut KeyedStateStore<K>, value: V) {
        let (t, cur) = s.table_mut::<ListTable<K, V>>(self.id);
        match t.data.get_mut(cur) {
            Some(list) => list.push(value),
            None => t.data.insert(cur, vec![value]),
        }
    }

    /// Appends all `values` to the current key's list.
    pub fn add_all<K: StateKey>(
        &self,
        s: &mut KeyedStateStore<K>,
        values: impl IntoIterator<Item = V>,
    ) {
        let mut values = values.into_iter().peekable();
        if values.peek().is_none() {
            return;
        }
        let (t, cur) = s.table_mut::<ListTable<K, V>>(self.id);
        t.data.get_or_insert_with(cur, Vec::new).extend(values);
    }

    /// Replaces the current key's list (an empty `values` clears it).
    pub fn update<K: StateKey>(&self, s: &mut KeyedStateStore<K>, values: Vec<V>) {
        let (t, cur) = s.table_mut::<ListTable<K, V>>(self.id);
        if values.is_empty() {
            t.data.remove(cur);
        } else {
            t.data.insert(cur, values);
        }
    }

    /// Removes the current key's list.
    pub fn clear<K: StateKey>(&self, s: &mut KeyedStateStore<K>) {
        let (t, cur) = s.table_mut::<ListTable<K, V>>(self.id);
        t.data.remove(cur);
    }
}

/// A map of user keys to values per key. An empty map and no map are the same.
pub struct MapState<UK, UV> {
    id: StateId,
    _types: PhantomData<fn() -> (UK, UV)>,
}
handle_boilerplate!(MapState<UK, UV>);

impl<UK: StateKey, UV: StateValue> MapState<UK, UV> {
    #[inline]
    fn user_map<'a, K: StateKey>(&self, s: &'a KeyedStateStore<K>) -> Option<&'a UserMap<UK, UV>> {
        let (t, cur) = s.table::<MapTable<K, UK, UV>>(self.id);
        t.data.get(cur)
    }

    /// A copy of the value of `user_key` in the current key's map.
    #[inline]
    pub fn get<K: StateKey>(&self, s: &KeyedStateStore<K>, user_key: &UK) -> Option<UV> {
        self.get_ref(s, user_key).cloned()
    }

    /// The value of `user_key` in the current key's map, borrowed.
    #[inline]
    pub fn get_ref<'a, K: StateKey>(
        &self,
        s: &'a KeyedStateStore<K>,
        user_key: &UK,
    ) -> Option<&'a UV> {
        self.user_map(s)?.get(user_key)
    }

    /// Whether the current key's map has `user_key`.
    #[inline]
    pub fn contains<K: StateKey>(&self, s: &KeyedStateStore<K>, user_key: &UK) -> bool {
        self.user_map(s).is_some_and(|m| m.contains_key(user_key))
    }

    /// Sets `user_key` to `value` in the current key's map; returns the previous value.
    #[inline]
    pub fn put<K: StateKey>(
        &self,
        s: &mut KeyedStateStore<K>,
        user_key: UK,
        value: UV,
    ) -> Option<UV> {
        let (t, cur) = s.table_mut::<MapTable<K, UK, UV>>(self.id);
        t.data
            .get_or_insert_with(cur, UserMap::default)
            .insert(user_key, value)
    }

    /// Removes `user_key` from the current key's map; returns its value.
    #[inline]
    pub fn remove<K: StateKey>(&self, s: &mut KeyedStateStore<K>, user_key: &UK) -> Option<UV> {
        let (t, cur) = s.table_mut::<MapTable<K, UK, UV>>(self.id);
        let map = t.data.get_mut(cur)?;
        let removed = map.remove(user_key);
        if map.is_empty() {
            t.data.remove(cur);
        }
        removed
    }

    /// The user keys of the current key's map, in no particular order.
    pub fn keys<'a, K: StateKey>(
        &self,
        s: &'a KeyedStateStore<K>,
    ) -> impl Iterator<Item = &'a UK> + 'a {
        self.user_map(s).into_iter().flat_map(|m| m.keys())
    }

    /// The entries of the current key's map, in no particular order.
    pub fn entries<'a, K: StateKey>(
        &self,
        s: &'a KeyedStateStore<K>,
    ) -> impl Iterator<Item = (&'a UK, &'a UV)> + 'a {
        self.user_map(s).into_iter().flat_map(|m| m.iter())
    }

    /// The number of entries in the current key's map.
    pub fn len<K: StateKey>(&self, s: &KeyedStateStore<K>) -> usize {
        self.user_map(s).map_or(0, |m| m.len())
    }

    /// Whether the current key's map is empty.
    pub fn is_empty<K: StateKey>(&self, s: &KeyedStateStore<K>) -> bool {
        self.user_map(s).is_none()
    }

    /// Removes the current key's map.
    pub fn clear<K: StateKey>(&self, s: &mut KeyedStateStore<K>) {
        let (t, cur) = s.table_mut::<MapTable<K, UK, UV>>(self.id);
        t.data.remove(cur);
    }
}

/// One value per key, combined with each added value by the state's reduce function.
pub struct ReducingState<V> {
    id: StateId,
    _types: PhantomData<fn() -> V>,
}
handle_boilerplate!(ReducingState<V>);

impl<V: StateValue> ReducingState<V> {
    /// A copy of the current key's reduced value.
    #[inline]
    pub fn get<K: StateKey>(&self, s: &KeyedStateStore<K>) -> Option<V> {
        self.get_ref(s).cloned()
    }

    /// The current key's reduced value, borrowed.
    #[inline]
    pub fn get_ref<'a, K: StateKey>(&self, s: &'a KeyedStateStore<K>) -> Option<&'a V> {
        let (t, cur) = s.table::<ReducingTable<K, V>>(self.id);
        t.data.get(cur)
    }

    /// Combines `value` into the current key's value (`reduce(old, value)`), or stores it if
    /// the key has none. One hash probe when the key has a value.
    #[inline]
    pub fn add<K: StateKey>(&self, s: &mut KeyedStateStore<K>, value: V) {
        let (t, cur) = s.table_mut::<ReducingTable<K, V>>(self.id);
        match t.data.get_mut(cur) {
            Some(acc) => *acc = (t.reduce)(acc, &value),
            None => t.data.insert(cur, value),
        }
    }

    /// Removes the current key's value.
    pub fn clear<K: StateKey>(&self, s: &mut KeyedStateStore<K>) {
        let (t, cur) = s.table_mut::<ReducingTable<K, V>>(self.id);
        t.data.remove(cur);
    }
}
