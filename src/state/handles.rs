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

#[cfg(test)]
mod tests {
    use crate::state::key_group::KeyGroupRange;
    use crate::state::keyed::{KeyedStateStore, StateBackendKind};

    thread_local! {
        /// The backend of the stores a test makes (each test runs on its own thread).
        static BACKEND: std::cell::Cell<StateBackendKind> =
            const { std::cell::Cell::new(StateBackendKind::HashMap) };
    }

    fn store() -> KeyedStateStore<String> {
        KeyedStateStore::new(
            "op",
            KeyGroupRange::all(128),
            128,
            BACKEND.with(|b| b.get()),
        )
    }

    /// The same operations on the `rocksdb` backend (whose unit-test cache holds 16 keys, so
    /// values are written back and read again all the time).
    #[cfg(feature = "rocksdb")]
    #[test]
    fn every_kind_behaves_the_same_on_rocksdb() {
        BACKEND.with(|b| b.set(StateBackendKind::RocksDb));
        value_state_is_per_key();
        list_state_add_update_clear();
        map_state_operations();
        reducing_state_combines_with_the_function();
        handles_are_copy();
        // Many keys, read through shared borrows first, then written: nothing is lost when the
        // cache is written back and emptied.
        let mut s = store();
        let c = s.value::<u64>("c").unwrap();
        let l = s.list::<u64>("l").unwrap();
        for round in 0..3u64 {
            for k in 0..200u64 {
                s.set_current_key(format!("k{k}"));
                assert_eq!(c.get(&s).copied(), round.checked_sub(1).map(|r| k + r));
                assert_eq!(l.get_ref(&s).len() as u64, round);
                c.update(&mut s, k + round);
                l.add(&mut s, round);
            }
        }
        assert_eq!(s.len(), 200);
    }

    #[test]
    fn value_state_is_per_key() {
        let mut s = store();
        let count = s.value::<u64>("count").unwrap();
        s.set_current_key("a".into());
        assert_eq!(count.value(&s), None);
        count.update(&mut s, 1);
        s.set_current_key("b".into());
        assert_eq!(count.get(&s), None);
        count.update(&mut s, 10);
        count.update(&mut s, 11);
        s.set_current_key("a".into());
        assert_eq!(count.get(&s), Some(&1));
        count.clear(&mut s);
        assert_eq!(count.value(&s), None);
        s.set_current_key("b".into());
        assert_eq!(count.value(&s), Some(11));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn list_state_add_update_clear() {
        let mut s = store();
        let l = s.list::<String>("events").unwrap();
        s.set_current_key("k".into());
        assert!(l.get(&s).is_empty());
        l.add(&mut s, "x".into());
        l.add_all(&mut s, ["y".to_string(), "z".to_string()]);
        assert_eq!(l.get(&s), ["x", "y", "z"]);
        l.add_all(&mut s, Vec::new());
        assert_eq!(l.get_ref(&s).len(), 3);
        l.update(&mut s, vec!["only".into()]);
        assert_eq!(l.get(&s), ["only"]);
        l.update(&mut s, Vec::new());
        assert!(l.get_ref(&s).is_empty());
        assert_eq!(s.len(), 0, "an empty list is no state");
        l.add_all(&mut s, vec!["again".to_string()]);
        assert_eq!(s.len(), 1);
        l.clear(&mut s);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn map_state_operations() {
        let mut s = store();
        let m = s.map::<String, i32>("m").unwrap();
        s.set_current_key("k".into());
        assert!(m.is_empty(&s));
        assert_eq!(m.put(&mut s, "a".into(), 1), None);
        assert_eq!(m.put(&mut s, "b".into(), 2), None);
        assert_eq!(m.put(&mut s, "a".into(), 3), Some(1));
        assert_eq!(m.get(&s, &"a".into()), Some(3));
        assert_eq!(m.get_ref(&s, &"b".into()), Some(&2));
        assert!(m.contains(&s, &"b".into()));
        assert!(!m.contains(&s, &"c".into()));
        assert_eq!(m.len(&s), 2);
        let mut keys: Vec<_> = m.keys(&s).cloned().collect();
        keys.sort();
        assert_eq!(keys, ["a", "b"]);
        let mut entries: Vec<_> = m.entries(&s).map(|(k, v)| (k.clone(), *v)).collect();
        entries.sort();
        assert_eq!(entries, [("a".to_string(), 3), ("b".to_string(), 2)]);

        s.set_current_key("other".into());
        assert_eq!(m.get(&s, &"a".into()), None);
        assert_eq!(m.keys(&s).count(), 0);
        assert_eq!(m.remove(&mut s, &"a".into()), None);

        s.set_current_key("k".into());
        assert_eq!(m.remove(&mut s, &"a".into()), Some(3));
        assert_eq!(m.remove(&mut s, &"b".into()), Some(2));
        assert!(m.is_empty(&s));
        assert_eq!(s.len(), 0, "removing the last entry removes the key");
        m.put(&mut s, "c".into(), 5);
        m.clear(&mut s);
        assert!(m.is_empty(&s));
    }

    #[test]
    fn reducing_state_combines_with_the_function() {
        let mut s = store();
        let max = s.reducing::<i64>("max", |a, b| *a.max(b)).unwrap();
        let sum = s.reducing::<i64>("sum", |a, b| a + b).unwrap();
        s.set_current_key("k".into());
        assert_eq!(max.get(&s), None);
        for v in [3, -1, 7, 2] {
            max.add(&mut s, v);
            sum.add(&mut s, v);
        }
        assert_eq!(max.get(&s), Some(7));
        assert_eq!(sum.get_ref(&s), Some(&11));
        s.set_current_key("j".into());
        sum.add(&mut s, 100);
        assert_eq!(sum.get(&s), Some(100));
        max.clear(&mut s);
        s.set_current_key("k".into());
        max.clear(&mut s);
        assert_eq!(max.get(&s), None);
        assert_eq!(sum.get(&s), Some(11));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn handles_are_copy() {
        let mut s = store();
        let v = s.value::<u8>("v").unwrap();
        let w = v; // Copy
        s.set_current_key("k".into());
        v.update(&mut s, 4);
        assert_eq!(w.value(&s), Some(4));
    }

    #[test]
    #[should_panic(expected = "keyed state `v` of operator `op` was used with no current key")]
    fn access_without_a_current_key_panics() {
        let mut s = store();
        let v = s.value::<u8>("v").unwrap();
        v.update(&mut s, 1);
    }

    #[test]
    #[should_panic(expected = "did not register it")]
    fn a_handle_of_another_store_panics() {
        let mut a = store();
        let mut b = store();
        let va = a.value::<u8>("v").unwrap();
        let _vb = b.value::<u8>("v").unwrap();
        b.set_current_key("k".into());
        va.value(&b);
    }
}
