//! Operator (non-keyed) state: lists of elements per subtask, redistributed on rescale.
//!
//! Sources keep their positions here (a Kafka-like source keeps one element per partition it
//! reads), and any operator can keep state not tied to a key. An [`OperatorStateStore`] holds
//! named list states, each registered in one of two modes ([`Redistribution`]):
//!
//! - [`OperatorStateStore::list`] (**split**): on restore with the same parallelism, subtask
//!   `i` gets exactly old subtask `i`'s elements. With another parallelism, the elements of
//!   all old subtasks, concatenated in old subtask order, are dealt round-robin: element `j`
//!   goes to new subtask `j % parallelism`. Every element lands in exactly one subtask.
//! - [`OperatorStateStore::union_list`] (**union**): every new subtask gets all elements of all
//!   old subtasks (in old subtask order) and picks what it needs.
//!
//! Elements are typed `Vec<T>` while registered; [`OperatorStateStore::snapshot`] encodes each
//! element on its own so [`OperatorStateStore::restore`] can redistribute them without knowing
//! their type. Restored state not registered yet stays as bytes until it is, and is written
//! back unchanged by the next snapshot.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::marker::PhantomData;

use serde_bytes::ByteBuf;

use super::error::{DecodeLocation, StateError};
use super::handles::StateId;
use super::keyed::StateValue;
use super::next_store_id;
use super::snapshot::{
    decode_data, encode_data, OperatorListSnapshot, OperatorStateSnapshot, OPERATOR_WHAT,
};

pub use super::snapshot::Redistribution;

/// A registered list, type-erased for snapshots and restores.
trait ElementList: Any + Send {
    fn element_type(&self) -> &'static str;
    fn len(&self) -> usize;
    /// Each element's bytes, or the index of the element that failed.
    fn encode(&self) -> Result<Vec<ByteBuf>, (usize, rmp_serde::encode::Error)>;
    /// Decodes a replacement of the elements without installing it.
    fn prepare(
        &self,
        elements: &[ByteBuf],
    ) -> Result<Box<dyn Any + Send>, (usize, rmp_serde::decode::Error)>;
    /// Installs what `prepare` returned.
    fn commit(&mut self, prepared: Box<dyn Any + Send>);
}

struct TypedList<T>(Vec<T>);

impl<T: StateValue> ElementList for TypedList<T> {
    fn element_type(&self) -> &'static str {
        std::any::type_name::<T>()
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn encode(&self) -> Result<Vec<ByteBuf>, (usize, rmp_serde::encode::Error)> {
        self.0
            .iter()
            .enumerate()
            .map(|(i, e)| encode_data(e).map(ByteBuf::from).map_err(|err| (i, err)))
            .collect()
    }

    fn prepare(
        &self,
        elements: &[ByteBuf],
    ) -> Result<Box<dyn Any + Send>, (usize, rmp_serde::decode::Error)> {
        let decoded: Vec<T> = elements
            .iter()
            .enumerate()
            .map(|(i, b)| decode_data(b).map_err(|err| (i, err)))
            .collect::<Result<_, _>>()?;
        Ok(Box::new(decoded))
    }

    fn commit(&mut self, prepared: Box<dyn Any + Send>) {
        self.0 = *prepared
            .downcast::<Vec<T>>()
            .expect("prepared by the same list type");
    }
}

struct Registered {
    name: String,
    mode: Redistribution,
    list: Box<dyn ElementList>,
}

impl Registered {
    fn describe(&self) -> String {
        format!(
            "registered as {} of {}",
            self.mode.describe(),
            self.list.element_type()
        )
    }
}

/// Restored, not yet registered.
#[derive(Clone, Debug)]
struct Pending {
    mode: Redistribution,
    element_type: String,
    elements: Vec<ByteBuf>,
}

/// The operator state of one subtask (see the module docs).
pub struct OperatorStateStore {
    id: u64,
    operator_uid: String,
    states: Vec<Registered>,
    by_name: HashMap<String, u32>,
    pending: BTreeMap<String, Pending>,
}

impl fmt::Debug for OperatorStateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperatorStateStore")
            .field("operator_uid", &self.operator_uid)
            .field(
                "states",
                &self.states.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .field("pending", &self.pending.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Default for OperatorStateStore {
    fn default() -> Self {
        Self::new()
    }
}

impl OperatorStateStore {
    /// An empty store whose operator is not named (errors say `(unnamed)`, and restore does
    /// not check that blobs come from the same operator). Prefer [`Self::for_operator`].
    pub fn new() -> Self {
        Self::for_operator("")
    }

    /// An empty store for a subtask of operator `operator_uid`.
    pub fn for_operator(operator_uid: &str) -> Self {
        Self {
            id: next_store_id(),
            operator_uid: operator_uid.to_string(),
            states: Vec::new(),
            by_name: HashMap::new(),
            pending: BTreeMap::new(),
        }
    }

    /// The operator's uid (empty if not named).
    pub fn operator_uid(&self) -> &str {
        &self.operator_uid
    }

    fn operator_name(&self) -> String {
        if self.operator_uid.is_empty() {
            "(unnamed)".to_string()
        } else {
            self.operator_uid.clone()
        }
    }

    /// Registers (or returns) split-redistributed list state `name`.
    ///
    /// # Errors
    ///
    /// [`StateError::Incompatible`] if `name` is registered or was restored with another mode
    /// or element type; [`StateError::Decode`] if restored elements do not decode as `T`.
    pub fn list<T: StateValue>(&mut self, name: &str) -> Result<OperatorListState<T>, StateError> {
        self.register(name, Redistribution::Split)
    }

    /// Registers (or returns) union-redistributed list state `name`. Errors as for
    /// [`Self::list`].
    pub fn union_list<T: StateValue>(
        &mut self,
        name: &str,
    ) -> Result<OperatorListState<T>, StateError> {
        self.register(name, Redistribution::Union)
    }

    fn register<T: StateValue>(
        &mut self,
        name: &str,
        mode: Redistribution,
    ) -> Result<OperatorListState<T>, StateError> {
        let requested = || format!("{} of {}", mode.describe(), std::any::type_name::<T>());
        if let Some(&index) = self.by_name.get(name) {
            let existing = &self.states[index as usize];
            if existing.mode == mode && (existing.list.as_ref() as &dyn Any).is::<TypedList<T>>() {
                return Ok(OperatorListState::new(StateId::new(self.id, index)));
            }
            return Err(StateError::Incompatible {
                operator: self.operator_name(),
                state: name.to_string(),
                existing: existing.describe(),
                requested: requested(),
            });
        }
        let mut list: Box<dyn ElementList> = Box::new(TypedList::<T>(Vec::new()));
        if let Some(p) = self.pending.get(name) {
            if p.mode != mode {
                return Err(StateError::Incompatible {
                    operator: self.operator_name(),
                    state: name.to_string(),
                    existing: format!("restored as {} of {}", p.mode.describe(), p.element_type),
                    requested: requested(),
                });
            }
            let prepared = list
                .prepare(&p.elements)
                .map_err(|(i, source)| self.decode_error(name, i, requested(), p, source))?;
            list.commit(prepared);
            self.pending.remove(name);
        }
        let index = self.states.len() as u32;
        self.states.push(Registered {
            name: name.to_string(),
            mode,
            list,
        });
        self.by_name.insert(name.to_string(), index);
        Ok(OperatorListState::new(StateId::new(self.id, index)))
    }

    fn decode_error(
        &self,
        name: &str,
        element: usize,
        requested: String,
        saved: &Pending,
        source: rmp_serde::decode::Error,
    ) -> StateError {
        StateError::Decode {
            operator: self.operator_name(),
            state: name.to_string(),
            location: DecodeLocation::Element(element),
            requested,
            saved: format!("{} of {}", saved.mode.describe(), saved.element_type),
            source: Box::new(source),
        }
    }

    /// True when no list (registered or restored) holds an element: such a snapshot carries
    /// nothing, and an operator with only empty state may be dropped from a job freely.
    pub fn is_empty(&self) -> bool {
        self.states.iter().all(|s| s.list.len() == 0)
            && self.pending.values().all(|p| p.elements.is_empty())
    }

    /// Serialises every list (registered or restored-but-unregistered) into one framed blob.
    ///
    /// # Errors
    ///
    /// [`StateError::Encode`] if an element cannot be serialised as MessagePack.
    pub fn snapshot(&self) -> Result<Vec<u8>, StateError> {
        let mut states = Vec::with_capacity(self.states.len() + self.pending.len());
        for s in &self.states {
            let elements = s.list.encode().map_err(|(_, source)| StateError::Encode {
                operator: self.operator_name(),
                state: s.name.clone(),
                source,
            })?;
            states.push(OperatorListSnapshot {
                name: s.name.clone(),
                mode: s.mode,
                element_type: s.list.element_type().to_string(),
                elements,
            });
        }
        states.extend(self.pending.iter().map(|(name, p)| OperatorListSnapshot {
            name: name.clone(),
            mode: p.mode,
            element_type: p.element_type.clone(),
            elements: p.elements.clone(),
        }));
        OperatorStateSnapshot {
            operator_uid: self.operator_uid.clone(),
            states,
        }
        .encode()
    }

    /// Replaces all state with subtask `my_index`'s share (of `parallelism` new subtasks) of
    /// `old_blobs`, the operator snapshots of **all** old subtasks in old index order (see the
    /// module docs for how split and union lists are shared). An empty `old_blobs` restores
    /// nothing and clears the store.
    ///
    /// All or nothing: on error the store is unchanged.
    ///
    /// # Errors
    ///
    /// [`StateError::InvalidSubtask`] if `my_index >= parallelism`; [`StateError::Format`] or
    /// [`StateError::Corrupt`] for a damaged blob; [`StateError::WrongOperator`] for another
    /// operator's blob; [`StateError::Incompatible`] / [`StateError::Decode`] if a registered
    /// state was saved with another mode or element type.
    pub fn restore(
        &mut self,
        old_blobs: &[&[u8]],
        my_index: u32,
        parallelism: u32,
    ) -> Result<(), StateError> {
        if my_index >= parallelism {
            return Err(StateError::InvalidSubtask {
                operator: self.operator_name(),
                index: my_index,
                parallelism,
            });
        }
        let old_parallelism = old_blobs.len();
        // Per state: mode, element type, and the elements of each old subtask.
        let mut gathered: BTreeMap<String, (Redistribution, String, Vec<Vec<ByteBuf>>)> =
            BTreeMap::new();
        for (old_index, bytes) in old_blobs.iter().enumerate() {
            let snap = OperatorStateSnapshot::decode(bytes, &self.operator_name())?;
            if !self.operator_uid.is_empty()
                && !snap.operator_uid.is_empty()
                && snap.operator_uid != self.operator_uid
            {
                return Err(StateError::WrongOperator {
                    operator: self.operator_uid.clone(),
                    found: snap.operator_uid,
                });
            }
            for s in snap.states {
                let entry = gathered.entry(s.name.clone()).or_insert_with(|| {
                    (
                        s.mode,
                        s.element_type.clone(),
                        vec![Vec::new(); old_parallelism],
                    )
                });
                if entry.0 != s.mode {
                    return Err(StateError::Corrupt {
                        what: OPERATOR_WHAT,
                        operator: self.operator_name(),
                        detail: format!(
                            "state `{}` is a {} in one old subtask and a {} in another",
                            s.name,
                            entry.0.describe(),
                            s.mode.describe()
                        ),
                    });
                }
                entry.2[old_index] = s.elements;
            }
        }

        let p = parallelism as usize;
        let me = my_index as usize;
        let mut incoming: BTreeMap<String, Pending> = gathered
            .into_iter()
            .map(|(name, (mode, element_type, mut per_old))| {
                let elements = match mode {
                    Redistribution::Split if old_parallelism == p => per_old.swap_remove(me),
                    Redistribution::Split => per_old
                        .into_iter()
                        .flatten()
                        .enumerate()
                        .filter(|(j, _)| j % p == me)
                        .map(|(_, e)| e)
                        .collect(),
                    Redistribution::Union => per_old.into_iter().flatten().collect(),
                };
                (
                    name,
                    Pending {
                        mode,
                        element_type,
                        elements,
                    },
                )
            })
            .collect();

        let mut prepared = Vec::with_capacity(self.states.len());
        for s in &self.states {
            let requested = || format!("{} of {}", s.mode.describe(), s.list.element_type());
            let elements: &[ByteBuf] = match incoming.get(&s.name) {
                Some(pending) if pending.mode != s.mode => {
                    return Err(StateError::Incompatible {
                        operator: self.operator_name(),
                        state: s.name.clone(),
                        existing: format!(
                            "restored as {} of {}",
                            pending.mode.describe(),
                            pending.element_type
                        ),
                        requested: requested(),
                    });
                }
                Some(pending) => &pending.elements,
                None => &[],
            };
            let p = s.list.prepare(elements).map_err(|(i, source)| {
                let saved = incoming
                    .get(&s.name)
                    .expect("decoding failed on restored bytes");
                self.decode_error(&s.name, i, requested(), saved, source)
            })?;
            prepared.push(p);
        }

        // Nothing can fail from here on.
        for (s, p) in self.states.iter_mut().zip(prepared) {
            s.list.commit(p);
            incoming.remove(&s.name);
        }
        self.pending = incoming;
        tracing::debug!(
            operator = %self.operator_name(),
            old_parallelism,
            parallelism,
            index = my_index,
            unregistered = self.pending.len(),
            "operator state restored"
        );
        Ok(())
    }

    fn list_ref<T: StateValue>(&self, id: StateId) -> &Vec<T> {
        self.check_store(id);
        &(self.states[id.index as usize].list.as_ref() as &dyn Any)
            .downcast_ref::<TypedList<T>>()
            .expect("a handle's type matches its list")
            .0
    }

    fn list_mut<T: StateValue>(&mut self, id: StateId) -> &mut Vec<T> {
        self.check_store(id);
        &mut (self.states[id.index as usize].list.as_mut() as &mut dyn Any)
            .downcast_mut::<TypedList<T>>()
            .expect("a handle's type matches its list")
            .0
    }

    fn check_store(&self, id: StateId) {
        assert!(
            id.store == self.id,
            "an operator state handle was used with the store of operator `{}` that did not \
             register it; use handles only with the store that returned them",
            self.operator_name()
        );
    }
}

/// A handle to a list (or union list) of operator state.
///
/// # Panics
///
/// Every method panics if the handle is used with another store than the one that returned
/// it (a bug in the calling code).
pub struct OperatorListState<T> {
    id: StateId,
    _types: PhantomData<fn() -> T>,
}

impl<T> Clone for OperatorListState<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for OperatorListState<T> {}

impl<T> fmt::Debug for OperatorListState<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperatorListState")
            .field("index", &self.id.index)
            .finish_non_exhaustive()
    }
}

impl<T: StateValue> OperatorListState<T> {
    fn new(id: StateId) -> Self {
        Self {
            id,
            _types: PhantomData,
        }
    }

    /// A copy of the elements.
    pub fn get(&self, s: &OperatorStateStore) -> Vec<T> {
        s.list_ref::<T>(self.id).clone()
    }

    /// The elements, borrowed.
    pub fn get_ref<'a>(&self, s: &'a OperatorStateStore) -> &'a [T] {
        s.list_ref::<T>(self.id)
    }

    /// Appends an element.
    pub fn add(&self, s: &mut OperatorStateStore, element: T) {
        s.list_mut::<T>(self.id).push(element);
    }

    /// Appends elements.
    pub fn add_all(&self, s: &mut OperatorStateStore, elements: impl IntoIterator<Item = T>) {
        s.list_mut::<T>(self.id).extend(elements);
    }

    /// Replaces the elements.
    pub fn update(&self, s: &mut OperatorStateStore, elements: Vec<T>) {
        *s.list_mut::<T>(self.id) = elements;
    }

    /// Removes all elements.
    pub fn clear(&self, s: &mut OperatorStateStore) {
        s.list_mut::<T>(self.id).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Old subtask `i` of `n` holds split elements `i*100 ..` (i+1 of them) and union element `i`.
    fn old_blobs(n: u32) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let mut s = OperatorStateStore::for_operator("src");
                let split = s.list::<u64>("offsets").unwrap();
                let union = s.union_list::<String>("partitions").unwrap();
                split.add_all(&mut s, (0..=u64::from(i)).map(|j| u64::from(i) * 100 + j));
                union.add(&mut s, format!("p{i}"));
                s.snapshot().unwrap()
            })
            .collect()
    }

    fn restore(blobs: &[Vec<u8>], index: u32, parallelism: u32) -> (Vec<u64>, Vec<String>) {
        let slices: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
        let mut s = OperatorStateStore::for_operator("src");
        s.restore(&slices, index, parallelism).unwrap();
        let split = s.list::<u64>("offsets").unwrap();
        let union = s.union_list::<String>("partitions").unwrap();
        (split.get(&s), union.get(&s))
    }

    #[test]
    fn handle_operations() {
        let mut s = OperatorStateStore::new();
        let l = s.list::<u32>("l").unwrap();
        assert!(l.get(&s).is_empty());
        l.add(&mut s, 1);
        l.add_all(&mut s, [2, 3]);
        assert_eq!(l.get_ref(&s), [1, 2, 3]);
        l.update(&mut s, vec![9]);
        assert_eq!(l.get(&s), [9]);
        l.clear(&mut s);
        assert!(l.get(&s).is_empty());
        let again = s.list::<u32>("l").unwrap();
        again.add(&mut s, 5);
        assert_eq!(l.get(&s), [5], "registering twice returns the same list");
    }

    #[test]
    fn mode_or_type_mismatch_on_registration_is_an_error() {
        let mut s = OperatorStateStore::for_operator("src");
        s.list::<u32>("l").unwrap();
        let e = s.union_list::<u32>("l").unwrap_err();
        assert!(
            e.to_string().contains("registered as list state of u32"),
            "{e}"
        );
        assert!(e.to_string().contains("union list state of u32"), "{e}");
        assert!(matches!(
            s.list::<u64>("l"),
            Err(StateError::Incompatible { .. })
        ));
    }

    #[test]
    fn same_parallelism_gives_each_subtask_its_own_split_state() {
        let blobs = old_blobs(3);
        for i in 0..3u32 {
            let (split, union) = restore(&blobs, i, 3);
            let want: Vec<u64> = (0..=u64::from(i)).map(|j| u64::from(i) * 100 + j).collect();
            assert_eq!(split, want, "subtask {i}");
            assert_eq!(union, ["p0", "p1", "p2"]);
        }
    }

    fn check_split_rescale(old: u32, new: u32) {
        let blobs = old_blobs(old);
        let mut all: Vec<u64> = Vec::new();
        for i in 0..new {
            let (split, union) = restore(&blobs, i, new);
            all.extend(split);
            let want: Vec<String> = (0..old).map(|i| format!("p{i}")).collect();
            assert_eq!(union, want, "union state goes to every subtask");
        }
        all.sort_unstable();
        let mut want: Vec<u64> = (0..u64::from(old))
            .flat_map(|i| (0..=i).map(move |j| i * 100 + j))
            .collect();
        want.sort_unstable();
        assert_eq!(all, want, "{old} -> {new}: every element exactly once");
    }

    #[test]
    fn rescale_1_to_3_splits_every_element_once() {
        check_split_rescale(1, 3);
        // Round-robin by element index: old [0] only, so subtask 0 gets it.
        assert_eq!(restore(&old_blobs(1), 0, 3).0, [0]);
        assert!(restore(&old_blobs(1), 1, 3).0.is_empty());
    }

    #[test]
    fn rescale_3_to_2_splits_every_element_once() {
        check_split_rescale(3, 2);
        // Elements in old order: 0, 100, 101, 200, 201, 202 -> even indexes to subtask 0.
        assert_eq!(restore(&old_blobs(3), 0, 2).0, [0, 101, 201]);
        assert_eq!(restore(&old_blobs(3), 1, 2).0, [100, 200, 202]);
        check_split_rescale(4, 7);
    }

    #[test]
    fn restored_state_waits_for_registration_and_survives_snapshots() {
        let blobs = old_blobs(2);
        let slices: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
        let mut s = OperatorStateStore::for_operator("src");
        s.restore(&slices, 0, 1).unwrap();
        let split = s.list::<u64>("offsets").unwrap();
        assert_eq!(split.get(&s), [0, 100, 101]);
        // "partitions" was never registered: it is carried into the next snapshot.
        let again = s.snapshot().unwrap();
        let (_, union) = restore(&[again], 0, 1);
        assert_eq!(union, ["p0", "p1"]);
    }

    #[test]
    fn restored_mode_or_type_mismatch_is_an_error() {
        let blobs = old_blobs(1);
        let slices: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
        let mut s = OperatorStateStore::for_operator("src");
        s.restore(&slices, 0, 1).unwrap();
        let e = s.list::<String>("partitions").unwrap_err();
        assert!(
            e.to_string().contains("restored as union list state"),
            "{e}"
        );
        let e = s.list::<String>("offsets").unwrap_err();
        assert!(matches!(e, StateError::Decode { .. }), "{e}");
        assert!(e.to_string().contains("element 0"), "{e}");
        s.list::<u64>("offsets").unwrap();

        // Registered first with the wrong type: restore fails and changes nothing.
        let mut t = OperatorStateStore::for_operator("src");
        let l = t.list::<String>("offsets").unwrap();
        l.add(&mut t, "kept".into());
        assert!(t.restore(&slices, 0, 1).is_err());
        assert_eq!(l.get(&t), ["kept"]);
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        let blobs = old_blobs(2);
        let mut s = OperatorStateStore::for_operator("src");
        let e = s.restore(&[&blobs[0], &blobs[1]], 2, 2).unwrap_err();
        assert!(
            matches!(e, StateError::InvalidSubtask { index: 2, .. }),
            "{e}"
        );
        for cut in 0..blobs[0].len() {
            assert!(s.restore(&[&blobs[0][..cut]], 0, 1).is_err(), "cut {cut}");
        }
        let mut flipped = blobs[0].clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        let e = s.restore(&[&flipped], 0, 1).unwrap_err();
        assert!(matches!(e, StateError::Format { .. }), "{e}");
        let mut other = OperatorStateStore::for_operator("elsewhere");
        let e = other.restore(&[&blobs[0]], 0, 1).unwrap_err();
        assert!(matches!(e, StateError::WrongOperator { .. }), "{e}");
    }
}
