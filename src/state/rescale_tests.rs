//! Cross-store tests: snapshot keyed state in `p` subtasks, restore it into `p'` subtasks with
//! their new key-group ranges, and check that every key ends in exactly one new store with
//! exactly its values.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::key_group::{key_group_of, range_for_subtask};
use super::keyed::{KeyedStateStore, StateBackendKind};

const MAX_P: u32 = 128;

thread_local! {
    /// The backend of the stores a test makes (each test runs on its own thread).
    static BACKEND: std::cell::Cell<StateBackendKind> =
        const { std::cell::Cell::new(StateBackendKind::HashMap) };
}

fn use_backend(b: StateBackendKind) {
    BACKEND.with(|c| c.set(b));
}

fn stores(p: u32) -> Vec<KeyedStateStore<String>> {
    (0..p)
        .map(|i| {
            KeyedStateStore::new(
                "agg",
                range_for_subtask(MAX_P, p, i),
                MAX_P,
                BACKEND.with(|b| b.get()),
            )
        })
        .collect()
}

/// The store of `stores` that owns `key`.
fn owner<'a>(
    stores: &'a mut [KeyedStateStore<String>],
    key: &str,
) -> &'a mut KeyedStateStore<String> {
    let kg = key_group_of(key, MAX_P);
    let mut owners = stores.iter_mut().filter(|s| s.key_groups().contains(kg));
    let found = owners.next().expect("some store owns every key group");
    assert!(owners.next().is_none(), "two stores own key group {kg}");
    found
}

/// What the model says each key holds: a count and a map.
type Model = BTreeMap<String, (Option<u64>, BTreeMap<u16, i32>)>;

fn apply(stores: &mut [KeyedStateStore<String>], model: &mut Model, op: &Op) {
    let (key, action) = op;
    let key = format!("key-{key}");
    let s = owner(stores, &key);
    let count = s.value::<u64>("count").unwrap();
    let map = s.map::<u16, i32>("map").unwrap();
    s.set_current_key(key.clone());
    let entry = model.entry(key.clone()).or_default();
    match *action {
        Action::Count(n) => {
            let c = count.value(s).unwrap_or(0) + u64::from(n);
            count.update(s, c);
            entry.0 = Some(c);
        }
        Action::ClearCount => {
            count.clear(s);
            entry.0 = None;
        }
        Action::Put(uk, v) => {
            map.put(s, uk, v);
            entry.1.insert(uk, v);
        }
        Action::Remove(uk) => {
            map.remove(s, &uk);
            entry.1.remove(&uk);
        }
    }
    if entry.0.is_none() && entry.1.is_empty() {
        model.remove(&key);
    }
}

fn rescale(old: &[KeyedStateStore<String>], new_p: u32) -> Vec<KeyedStateStore<String>> {
    let blobs: Vec<Vec<u8>> = old.iter().map(|s| s.snapshot().unwrap()).collect();
    let mut new = stores(new_p);
    for s in &mut new {
        // Only the blobs whose ranges overlap, as the runtime passes them.
        let relevant: Vec<&[u8]> = old
            .iter()
            .zip(&blobs)
            .filter(|(o, _)| !o.key_groups().intersect(&s.key_groups()).is_empty())
            .map(|(_, b)| b.as_slice())
            .collect();
        s.restore(&relevant).unwrap();
    }
    new
}

/// Every model key is in its owner with exactly its values, and no store has other keys.
fn assert_holds(stores: &mut [KeyedStateStore<String>], model: &Model) {
    for (key, (count, map)) in model {
        let s = owner(stores, key);
        let c = s.value::<u64>("count").unwrap();
        let m = s.map::<u16, i32>("map").unwrap();
        s.set_current_key(key.clone());
        assert_eq!(c.value(s), *count, "count of {key}");
        let got: BTreeMap<u16, i32> = m.entries(s).map(|(k, v)| (*k, *v)).collect();
        assert_eq!(&got, map, "map of {key}");
    }
    let total: usize = stores
        .iter_mut()
        .map(|s| {
            s.value::<u64>("count").unwrap();
            s.map::<u16, i32>("map").unwrap();
            s.len()
        })
        .sum();
    assert_eq!(total, model.len(), "no key lost or duplicated");
}

#[derive(Clone, Debug)]
enum Action {
    Count(u8),
    ClearCount,
    Put(u16, i32),
    Remove(u16),
}

type Op = (u16, Action);

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => any::<u8>().prop_map(Action::Count),
        1 => Just(Action::ClearCount),
        3 => (0u16..8, any::<i32>()).prop_map(|(k, v)| Action::Put(k, v)),
        2 => (0u16..8).prop_map(Action::Remove),
    ]
}

fn run_and_rescale(old_p: u32, new_p: u32, ops: &[Op]) {
    let mut old = stores(old_p);
    let mut model = Model::new();
    for op in ops {
        apply(&mut old, &mut model, op);
    }
    assert_holds(&mut old, &model);
    let mut new = rescale(&old, new_p);
    assert_holds(&mut new, &model);
}

fn fixed_ops(n: u16) -> Vec<Op> {
    (0..n)
        .flat_map(|k| {
            [
                (k, Action::Count((k % 7) as u8 + 1)),
                (k, Action::Put(k % 5, i32::from(k))),
                (k, Action::Put(k % 5 + 1, -i32::from(k))),
            ]
        })
        .collect()
}

#[test]
fn keyed_rescale_1_to_3() {
    run_and_rescale(1, 3, &fixed_ops(400));
}

#[test]
fn keyed_rescale_3_to_2() {
    run_and_rescale(3, 2, &fixed_ops(400));
}

#[test]
fn keyed_rescale_to_max_parallelism_and_back() {
    let ops = fixed_ops(300);
    let mut old = stores(2);
    let mut model = Model::new();
    for op in &ops {
        apply(&mut old, &mut model, op);
    }
    let mut wide = rescale(&old, MAX_P);
    assert_holds(&mut wide, &model);
    let mut one = rescale(&wide, 1);
    assert_holds(&mut one, &model);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random puts and removes across keys, snapshot, restore into p' stores: the union of
    /// their contents is the original.
    #[test]
    fn rescaling_preserves_every_key(
        old_p in 1u32..5,
        new_p in 1u32..7,
        ops in proptest::collection::vec((0u16..64, action()), 0..300),
    ) {
        run_and_rescale(old_p, new_p, &ops);
    }
}

/// The `rocksdb` backend rescales the same way, and its savepoints are the `hashmap` backend's:
/// state moves between the backends in both directions while the parallelism changes.
#[cfg(feature = "rocksdb")]
mod on_rocksdb {
    use super::*;

    #[test]
    fn rocksdb_rescale_1_to_3_to_2() {
        use_backend(StateBackendKind::RocksDb);
        let mut old = stores(1);
        let mut model = Model::new();
        for op in &fixed_ops(400) {
            apply(&mut old, &mut model, op);
        }
        assert_holds(&mut old, &model);
        let mut three = rescale(&old, 3);
        assert!(three
            .iter()
            .all(|s| s.backend() == StateBackendKind::RocksDb));
        assert_holds(&mut three, &model);
        let mut two = rescale(&three, 2);
        assert_holds(&mut two, &model);
    }

    #[test]
    fn hashmap_to_rocksdb_and_back_while_rescaling() {
        let ops = fixed_ops(300);
        let mut heap = stores(2);
        let mut model = Model::new();
        for op in &ops {
            apply(&mut heap, &mut model, op);
        }
        use_backend(StateBackendKind::RocksDb);
        let mut rocks = rescale(&heap, 3);
        assert_holds(&mut rocks, &model);
        // Change the state on RocksDB, then go back to the heap.
        for op in &fixed_ops(50) {
            apply(&mut rocks, &mut model, &(op.0 + 1000, op.1.clone()));
        }
        use_backend(StateBackendKind::HashMap);
        let mut back = rescale(&rocks, 1);
        assert_eq!(back[0].backend(), StateBackendKind::HashMap);
        assert_holds(&mut back, &model);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        #[test]
        fn rocksdb_rescaling_preserves_every_key(
            old_p in 1u32..5,
            new_p in 1u32..7,
            ops in proptest::collection::vec((0u16..64, action()), 0..300),
        ) {
            use_backend(StateBackendKind::RocksDb);
            run_and_rescale(old_p, new_p, &ops);
        }
    }
}
