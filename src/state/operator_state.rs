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
