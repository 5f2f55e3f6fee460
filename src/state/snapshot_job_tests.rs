//! Deferred keyed snapshots: a capture is exactly the state at the capture, whatever happens
//! to the store afterwards, and encodes to the blob format of earlier builds byte for byte.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::key_group::{key_group_of, range_for_subtask, KeyGroupRange};
use super::keyed::{
    KeyedSnapshotJob, KeyedStateStore, ListState, MapState, ReducingState, StateBackendKind,
    ValueState,
};
use super::snapshot::KeyedStateSnapshot;

/// Blobs written by the encoder before deferred snapshots (commit 3cf9364), by
/// [`golden_state`] and [`golden_unregistered`].
const GOLDEN_FOUR_STATES: &[u8] = include_bytes!("testdata/keyed_v1_four_states.bin");
const GOLDEN_UNREGISTERED: &[u8] = include_bytes!("testdata/keyed_v1_unregistered_states.bin");
const GOLDEN_EMPTY: &[u8] = include_bytes!("testdata/keyed_v1_empty.bin");

thread_local! {
    /// The backend of the stores a test makes (each test runs on its own thread).
    static BACKEND: std::cell::Cell<StateBackendKind> =
        const { std::cell::Cell::new(StateBackendKind::HashMap) };
}

fn store(range: KeyGroupRange) -> KeyedStateStore<u64> {
    KeyedStateStore::new("counter", range, 128, BACKEND.with(|b| b.get()))
}

/// The tests above, with every store on the `rocksdb` backend: its snapshots are the same
/// bytes, and its captures are exactly the state at the capture.
#[cfg(feature = "rocksdb")]
mod on_rocksdb {
    use super::*;

    fn rocks() {
        BACKEND.with(|b| b.set(StateBackendKind::RocksDb));
    }

    #[test]
    fn golden_blobs_restore_and_are_written_byte_for_byte() {
        rocks();
        blobs_of_the_earlier_encoder_restore();
        snapshots_are_byte_identical_to_the_earlier_encoder();
        the_job_is_send_and_static();
    }

    #[test]
    fn jobs_encode_elsewhere_and_keep_their_own_state() {
        rocks();
        a_job_encodes_on_another_thread_while_the_store_changes();
        overlapping_jobs_each_keep_their_own_state();
        restored_state_not_registered_yet_is_captured_and_registering_it_later_does_not_leak();
        a_restore_after_the_capture_does_not_change_the_job();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn a_rocksdb_capture_is_exactly_the_state_at_the_capture(
            before in proptest::collection::vec(op(), 0..200),
            between in proptest::collection::vec(op(), 0..200),
            after in proptest::collection::vec(op(), 0..200),
            older_first in any::<bool>(),
        ) {
            rocks();
            capture_is_exact(&before, &between, &after, older_first)?;
        }
    }
}

/// The first 40 keys that each have a key group of their own, so every chunk holds one entry
/// and the golden bytes do not depend on hash map iteration order.
fn golden_keys() -> Vec<u64> {
    let mut seen = std::collections::HashSet::new();
    (0u64..)
        .filter(|k| seen.insert(key_group_of(k, 128)))
        .take(40)
        .collect()
}

/// The state the golden blobs were written from: four kinds, each key in some of them.
fn golden_state() -> KeyedStateStore<u64> {
    let mut s = store(KeyGroupRange::all(128));
    let v = s.value::<u64>("v").unwrap();
    let l = s.list::<String>("l").unwrap();
    let m = s.map::<u32, bool>("m").unwrap();
    let r = s.reducing::<u64>("r", |a, b| a + b).unwrap();
    for k in golden_keys() {
        s.set_current_key(k);
        v.update(&mut s, k * 10);
        if k % 2 == 0 {
            l.add_all(&mut s, (0..k % 3 + 1).map(|i| format!("{k}-{i}")));
        }
        if k % 3 == 0 {
            m.put(&mut s, k as u32, k % 2 == 0);
        }
        r.add(&mut s, k);
        r.add(&mut s, 1);
    }
    s
}

/// The golden state restored, with only `v` registered (and one key changed), so the other
/// three states are written back from their restored bytes.
fn golden_unregistered() -> KeyedStateStore<u64> {
    let mut t = store(KeyGroupRange::all(128));
    t.restore(&[GOLDEN_FOUR_STATES]).unwrap();
    let v = t.value::<u64>("v").unwrap();
    t.set_current_key(golden_keys()[0]);
    v.update(&mut t, 7);
    t
}

#[test]
fn blobs_of_the_earlier_encoder_restore() {
    let mut t = store(KeyGroupRange::all(128));
    t.restore(&[GOLDEN_FOUR_STATES]).unwrap();
    let v = t.value::<u64>("v").unwrap();
    let l = t.list::<String>("l").unwrap();
    let m = t.map::<u32, bool>("m").unwrap();
    let r = t.reducing::<u64>("r", |a, b| a + b).unwrap();
    for k in golden_keys() {
        t.set_current_key(k);
        assert_eq!(v.value(&t), Some(k * 10), "key {k}");
        assert_eq!(
            l.get(&t).len(),
            if k % 2 == 0 { k % 3 + 1 } else { 0 } as usize
        );
        assert_eq!(m.get(&t, &(k as u32)), (k % 3 == 0).then_some(k % 2 == 0));
        assert_eq!(r.get(&t), Some(k + 1));
    }
    assert_eq!(t.len(), 40);

    let mut u = store(KeyGroupRange::new(0, 64));
    u.restore(&[GOLDEN_EMPTY]).unwrap();
    assert!(u.is_empty());
}

#[test]
fn snapshots_are_byte_identical_to_the_earlier_encoder() {
    let mut s = golden_state();
    assert_eq!(s.snapshot().unwrap(), GOLDEN_FOUR_STATES);
    assert_eq!(
        s.snapshot_deferred().unwrap().encode().unwrap(),
        GOLDEN_FOUR_STATES
    );
    let mut t = golden_unregistered();
    assert_eq!(t.snapshot().unwrap(), GOLDEN_UNREGISTERED);
    assert_eq!(
        t.snapshot_deferred().unwrap().encode().unwrap(),
        GOLDEN_UNREGISTERED
    );
    let mut e = store(KeyGroupRange::new(0, 64));
    assert_eq!(e.snapshot().unwrap(), GOLDEN_EMPTY);
    assert_eq!(
        e.snapshot_deferred().unwrap().encode().unwrap(),
        GOLDEN_EMPTY
    );
}

#[test]
fn the_job_is_send_and_static() {
    fn check<T: Send + 'static>(_: &T) {}
    check(&golden_state().snapshot_deferred().unwrap());
}

#[test]
fn a_job_encodes_on_another_thread_while_the_store_changes() {
    let mut s = golden_state();
    let at_capture = s.snapshot().unwrap();
    let job = s.snapshot_deferred().unwrap();
    let encoder = std::thread::spawn(move || job.encode().unwrap());
    let v = s.value::<u64>("v").unwrap();
    for k in 0..10_000 {
        s.set_current_key(k);
        v.update(&mut s, 1);
    }
    assert_eq!(encoder.join().unwrap(), at_capture);
}

/// Two checkpoints in flight: the older job is encoded last, one job is encoded twice, and
/// neither sees the other's later writes.
#[test]
fn overlapping_jobs_each_keep_their_own_state() {
    let mut s = store(KeyGroupRange::all(128));
    let v = s.value::<u64>("v").unwrap();
    let l = s.list::<u64>("l").unwrap();
    let set_all = |s: &mut KeyedStateStore<u64>, keys: std::ops::Range<u64>, n: u64| {
        for k in keys {
            s.set_current_key(k);
            v.update(s, n);
            l.add(s, n);
        }
    };
    set_all(&mut s, 0..1000, 1);
    let first = s.snapshot_deferred().unwrap();
    set_all(&mut s, 500..1500, 2);
    let second = s.snapshot_deferred().unwrap();
    set_all(&mut s, 0..2000, 3);
    let third = s.snapshot_deferred().unwrap();

    let second_blob = second.encode().unwrap();
    assert_eq!(second.encode().unwrap(), second_blob, "encoding twice");
    drop(second);
    let first_blob = first.encode().unwrap();
    let third_blob = third.encode().unwrap();

    let values = |blob: &[u8]| {
        let mut t = store(KeyGroupRange::all(128));
        t.restore(&[blob]).unwrap();
        let v = t.value::<u64>("v").unwrap();
        let l = t.list::<u64>("l").unwrap();
        (0..2000)
            .map(|k| {
                t.set_current_key(k);
                (v.value(&t), l.get(&t))
            })
            .collect::<Vec<_>>()
    };
    let first_values = values(&first_blob);
    assert_eq!(first_values[999], (Some(1), vec![1]));
    assert_eq!(first_values[1000], (None, vec![]));
    let second_values = values(&second_blob);
    assert_eq!(second_values[0], (Some(1), vec![1]));
    assert_eq!(second_values[700], (Some(2), vec![1, 2]));
    assert_eq!(second_values[1200], (Some(2), vec![2]));
    assert_eq!(second_values[1500], (None, vec![]));
    let third_values = values(&third_blob);
    assert_eq!(third_values[700], (Some(3), vec![1, 2, 3]));
    assert_eq!(third_values[1999], (Some(3), vec![3]));
    // The store itself kept every write.
    assert_eq!(values(&s.snapshot().unwrap()), third_values);
}

#[test]
fn restored_state_not_registered_yet_is_captured_and_registering_it_later_does_not_leak() {
    let mut s = golden_unregistered();
    let at_capture = s.snapshot().unwrap();
    let job = s.snapshot_deferred().unwrap();
    // Registering a pending state after the capture moves it into a table; change it there.
    let r = s.reducing::<u64>("r", |a, b| a + b).unwrap();
    let late = s.value::<u8>("late").unwrap();
    for k in golden_keys() {
        s.set_current_key(k);
        r.add(&mut s, 1000);
        late.update(&mut s, 1);
    }
    assert_eq!(job.encode().unwrap(), at_capture);
    assert_eq!(at_capture, GOLDEN_UNREGISTERED);
}

#[test]
fn a_restore_after_the_capture_does_not_change_the_job() {
    let mut s = golden_state();
    let at_capture = s.snapshot().unwrap();
    let job = s.snapshot_deferred().unwrap();
    s.restore(&[GOLDEN_EMPTY]).unwrap();
    assert!(s.is_empty());
    assert_eq!(job.encode().unwrap(), at_capture);
}

// ---------------------------------------------------------------------------------------------
// Random operations before, between and after two captures.

/// What the test stores, per key: value, list, map, reduced sum, and the restored `ghost`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Entry {
    value: Option<u64>,
    list: Vec<u8>,
    map: BTreeMap<u8, u16>,
    sum: Option<u64>,
    ghost: Option<u64>,
}

type Model = BTreeMap<u64, Entry>;

#[derive(Clone, Debug)]
enum Op {
    Update(usize, u64),
    Clear(usize),
    ListAdd(usize, u8),
    ListSet(usize, Vec<u8>),
    MapPut(usize, u8, u16),
    MapRemove(usize, u8),
    MapClear(usize),
    Reduce(usize, u64),
    ReduceClear(usize),
    /// Registers the restored `ghost` state (once); later ghost updates then apply.
    RegisterGhost,
    GhostUpdate(usize, u64),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS;
    prop_oneof![
        3 => (key.clone(), any::<u64>()).prop_map(|(k, v)| Op::Update(k, v)),
        1 => key.clone().prop_map(Op::Clear),
        2 => (key.clone(), any::<u8>()).prop_map(|(k, v)| Op::ListAdd(k, v)),
        1 => (key.clone(), proptest::collection::vec(any::<u8>(), 0..3))
            .prop_map(|(k, v)| Op::ListSet(k, v)),
        2 => (key.clone(), 0u8..4, any::<u16>()).prop_map(|(k, u, v)| Op::MapPut(k, u, v)),
        1 => (key.clone(), 0u8..4).prop_map(|(k, u)| Op::MapRemove(k, u)),
        1 => key.clone().prop_map(Op::MapClear),
        2 => (key.clone(), 0u64..1000).prop_map(|(k, v)| Op::Reduce(k, v)),
        1 => key.clone().prop_map(Op::ReduceClear),
        1 => Just(Op::RegisterGhost),
        2 => (key, any::<u64>()).prop_map(|(k, v)| Op::GhostUpdate(k, v)),
    ]
}

/// Distinct keys the operations pick from (by index into [`Harness::keys`]).
const KEYS: usize = 300;

struct Harness {
    store: KeyedStateStore<u64>,
    keys: Vec<u64>,
    model: Model,
    v: ValueState<u64>,
    l: ListState<u8>,
    m: MapState<u8, u16>,
    r: ReducingState<u64>,
    ghost: Option<ValueState<u64>>,
}

impl Harness {
    /// The second half of the key groups, with a restored `ghost` state for every third key
    /// that nobody has registered yet.
    fn new() -> Self {
        let range = range_for_subtask(128, 2, 1);
        let keys: Vec<u64> = (0u64..)
            .filter(|k| range.contains(key_group_of(k, 128)))
            .take(KEYS)
            .collect();
        let mut old = store(KeyGroupRange::all(128));
        let g = old.value::<u64>("ghost").unwrap();
        let mut model = Model::new();
        for &k in keys.iter().step_by(3) {
            old.set_current_key(k);
            g.update(&mut old, k + 7);
            model.entry(k).or_default().ghost = Some(k + 7);
        }
        let mut store = store(range);
        store.restore(&[&old.snapshot().unwrap()]).unwrap();
        let v = store.value("v").unwrap();
        let l = store.list("l").unwrap();
        let m = store.map("m").unwrap();
        let r = store.reducing("r", |a: &u64, b: &u64| a + b).unwrap();
        Self {
            store,
            keys,
            model,
            v,
            l,
            m,
            r,
            ghost: None,
        }
    }

    fn apply(&mut self, op: &Op) {
        let s = &mut self.store;
        let key_of = |i: usize| self.keys[i];
        let k = match *op {
            Op::RegisterGhost => {
                if self.ghost.is_none() {
                    self.ghost = Some(s.value("ghost").unwrap());
                }
                return;
            }
            Op::Update(i, _)
            | Op::Clear(i)
            | Op::ListAdd(i, _)
            | Op::ListSet(i, _)
            | Op::MapPut(i, _, _)
            | Op::MapRemove(i, _)
            | Op::MapClear(i)
            | Op::Reduce(i, _)
            | Op::ReduceClear(i)
            | Op::GhostUpdate(i, _) => key_of(i),
        };
        s.set_current_key(k);
        let e = self.model.entry(k).or_default();
        match op {
            Op::Update(_, v) => {
                self.v.update(s, *v);
                e.value = Some(*v);
            }
            Op::Clear(_) => {
                self.v.clear(s);
                e.value = None;
            }
            Op::ListAdd(_, v) => {
                self.l.add(s, *v);
                e.list.push(*v);
            }
            Op::ListSet(_, vs) => {
                self.l.update(s, vs.clone());
                e.list = vs.clone();
            }
            Op::MapPut(_, u, v) => {
                self.m.put(s, *u, *v);
                e.map.insert(*u, *v);
            }
            Op::MapRemove(_, u) => {
                self.m.remove(s, u);
                e.map.remove(u);
            }
            Op::MapClear(_) => {
                self.m.clear(s);
                e.map.clear();
            }
            Op::Reduce(_, v) => {
                self.r.add(s, *v);
                e.sum = Some(e.sum.unwrap_or(0) + v);
            }
            Op::ReduceClear(_) => {
                self.r.clear(s);
                e.sum = None;
            }
            Op::GhostUpdate(_, v) => {
                if let Some(g) = self.ghost {
                    g.update(s, *v);
                    e.ghost = Some(*v);
                }
            }
            Op::RegisterGhost => unreachable!("handled above"),
        }
    }

    /// Captures: the job, the blob a synchronous snapshot gives now, and the model now.
    fn capture(&mut self) -> (KeyedSnapshotJob, Vec<u8>, Model) {
        let job = self.store.snapshot_deferred().unwrap();
        (job, self.store.snapshot().unwrap(), self.model.clone())
    }
}

/// Every key's state in a store restored from `blob`, keys without state left out.
fn restored(blob: &[u8], keys: &[u64]) -> Model {
    let mut t = store(range_for_subtask(128, 2, 1));
    t.restore(&[blob]).unwrap();
    read_all(&mut t, keys)
}

fn read_all(t: &mut KeyedStateStore<u64>, keys: &[u64]) -> Model {
    let v = t.value::<u64>("v").unwrap();
    let l = t.list::<u8>("l").unwrap();
    let m = t.map::<u8, u16>("m").unwrap();
    let r = t.reducing::<u64>("r", |a, b| a + b).unwrap();
    let g = t.value::<u64>("ghost").unwrap();
    let mut out = Model::new();
    for &k in keys {
        t.set_current_key(k);
        let e = Entry {
            value: v.value(t),
            list: l.get(t),
            map: m.entries(t).map(|(a, b)| (*a, *b)).collect(),
            sum: r.get(t),
            ghost: g.value(t),
        };
        if e != Entry::default() {
            out.insert(k, e);
        }
    }
    out
}

fn without_empty(model: &Model) -> Model {
    model
        .iter()
        .filter(|(_, e)| **e != Entry::default())
        .map(|(k, e)| (*k, e.clone()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Nothing written after a capture shows in its blob and nothing written before is
    /// missing, with two captures in flight, encoded in either order.
    #[test]
    fn a_capture_is_exactly_the_state_at_the_capture(
        before in proptest::collection::vec(op(), 0..200),
        between in proptest::collection::vec(op(), 0..200),
        after in proptest::collection::vec(op(), 0..200),
        older_first in any::<bool>(),
    ) {
        capture_is_exact(&before, &between, &after, older_first)?;
    }
}

fn capture_is_exact(
    before: &[Op],
    between: &[Op],
    after: &[Op],
    older_first: bool,
) -> Result<(), TestCaseError> {
    let mut h = Harness::new();
    before.iter().for_each(|o| h.apply(o));
    let (first, first_now, first_model) = h.capture();
    between.iter().for_each(|o| h.apply(o));
    let (second, second_now, second_model) = h.capture();
    after.iter().for_each(|o| h.apply(o));

    let (first_blob, second_blob) = if older_first {
        (first.encode().unwrap(), second.encode().unwrap())
    } else {
        let second_blob = second.encode().unwrap();
        (first.encode().unwrap(), second_blob)
    };
    // Byte for byte what a synchronous snapshot gave at the capture ...
    prop_assert!(first_blob == first_now);
    prop_assert!(second_blob == second_now);
    // ... and the canonical encoding of what it holds (the serde structs' bytes) ...
    for blob in [&first_blob, &second_blob] {
        let decoded = KeyedStateSnapshot::decode(blob, "counter").unwrap();
        prop_assert!(&decoded.encode().unwrap() == blob);
    }
    // ... which restores to the state at the capture.
    prop_assert_eq!(restored(&first_blob, &h.keys), without_empty(&first_model));
    prop_assert_eq!(
        restored(&second_blob, &h.keys),
        without_empty(&second_model)
    );
    // The store kept every write, shared groups or not.
    let keys = h.keys.clone();
    prop_assert_eq!(read_all(&mut h.store, &keys), without_empty(&h.model));
    drop((first, second));
    prop_assert_eq!(
        restored(&h.store.snapshot().unwrap(), &keys),
        without_empty(&h.model)
    );
    Ok(())
}
