//! The executable form of an operator: what a subtask actor drives, with the record types erased.
//!
//! A [`VertexFactory`] (built by the typed stream API) creates one [`VertexRuntime`] per subtask,
//! wired to its outgoing edges. The runtime passes record batches in as `Box<dyn Any + Send>`
//! (one downcast per batch, never per record) and collects ready output batches in a `Vec`
//! that the actor then sends. The four typed implementations here wrap the user traits of
//! [`crate::operator`]: sources, operators, keyed process functions and sinks.

use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::element::{Barrier, CheckpointKind};
use crate::ids::CheckpointId;
use crate::operator::{
    KeyedProcessFunction, Operator, OperatorError, Sink, Source, SourcePoll, SubtaskInfo,
};
use crate::partition::{OutBatch, OutputEdge, OutputWriter, WiringError};
use crate::state::channel;
use crate::state::key_group::{key_group_of, range_for_subtask};
use crate::state::keyed::{KeyedBackend, KeyedSnapshotJob, KeyedStateStore, StateKey};
use crate::state::operator_state::OperatorStateStore;
use crate::state::StateError;
use crate::time::{SourceTime, TimeDomain, Watermark, WatermarkEvent, WatermarkStrategy};

/// State handed to a subtask when it (re)starts: the blobs of the snapshot's old subtasks that
/// may hold its state.
#[derive(Clone, Debug, Default)]
pub struct RestoredState {
    /// Keyed blobs of every old subtask whose key groups overlap this one's.
    pub keyed: Vec<Arc<Vec<u8>>>,
    /// Operator-state blobs of all old subtasks, in old subtask order (empty: nothing restored;
    /// an old subtask without state contributes an empty store's blob).
    pub operator: Vec<Arc<Vec<u8>>>,
    /// Channel-state blobs (unaligned checkpoints) of the old subtasks whose in-flight input
    /// this subtask takes over (`checkpoint::restore` says which); only a chain's head has any.
    pub channel: Vec<Arc<Vec<u8>>>,
}

impl RestoredState {
    fn keyed_slices(&self) -> Vec<&[u8]> {
        self.keyed.iter().map(|b| b.as_slice()).collect()
    }

    /// A keyed operator's restored watermark: the lowest the old subtasks had (none if they had
    /// none, or nothing was restored).
    fn watermark(&self, uid: &str) -> Result<Option<Watermark>, OperatorError> {
        if self.operator.is_empty() {
            return Ok(None);
        }
        let mut store = OperatorStateStore::for_operator(uid);
        let blobs: Vec<&[u8]> = self.operator.iter().map(|b| b.as_slice()).collect();
        store.restore(&blobs, 0, 1)?;
        let saved = store
            .union_list::<i64>(OPERATOR_WATERMARK_STATE)?
            .get(&store);
        // An old subtask that had no watermark yet holds the operator's back to none.
        if saved.len() < self.operator.len() {
            return Ok(None);
        }
        Ok(saved.into_iter().min().map(Watermark))
    }

    fn restore_operator_state(
        &self,
        store: &mut OperatorStateStore,
        info: &SubtaskInfo,
    ) -> Result<(), OperatorError> {
        if self.operator.is_empty() {
            return Ok(());
        }
        let blobs: Vec<&[u8]> = self.operator.iter().map(|b| b.as_slice()).collect();
        store.restore(&blobs, info.index, info.parallelism)?;
        Ok(())
    }
}

/// The state of one subtask at one barrier. Operator state is always bytes (it is small);
/// keyed state may still need encoding ([`StateBlob::encode`], off the subtask's thread).
#[derive(Debug, Default)]
pub struct VertexSnapshot {
    pub keyed: Option<StateBlob>,
    pub operator: Option<Vec<u8>>,
}

/// A state blob, encoded already or captured at the barrier and encoded on demand.
#[derive(Debug)]
pub enum StateBlob {
    /// The blob's bytes.
    Ready(Vec<u8>),
    /// Keyed state captured at the barrier; [`StateBlob::encode`] writes the blob. Encoding is
    /// CPU-bound (tens of ms per million keys): run it where it does not stop a subtask, e.g.
    /// in `spawn_blocking`. Later writes to the store do not show in it.
    Deferred(KeyedSnapshotJob),
}

impl StateBlob {
    /// The blob's bytes, encoding them first if they are deferred.
    ///
    /// # Errors
    ///
    /// [`StateError::Encode`] if captured state cannot be serialised.
    pub fn encode(self) -> Result<Vec<u8>, StateError> {
        match self {
            StateBlob::Ready(bytes) => Ok(bytes),
            StateBlob::Deferred(job) => job.encode(),
        }
    }

    /// Whether [`StateBlob::encode`] has work to do.
    pub fn is_deferred(&self) -> bool {
        matches!(self, StateBlob::Deferred(_))
    }
}

impl From<Vec<u8>> for StateBlob {
    fn from(bytes: Vec<u8>) -> Self {
        StateBlob::Ready(bytes)
    }
}

/// What a subtask actor drives.
pub trait VertexRuntime: Send {
    /// Restore state and open the user code.
    fn open(&mut self, restored: &RestoredState) -> Result<(), OperatorError>;

    /// Sources only: produce up to `max` records.
    fn poll_source(
        &mut self,
        _max: usize,
        _ready: &mut Vec<OutBatch>,
    ) -> Result<SourcePoll, OperatorError> {
        Err(OperatorError::msg(
            "poll_source called on a vertex that is not a source",
        ))
    }

    /// Sources with a watermark strategy: what to emit after the last poll, at `now`
    /// (`exhausted`: the source has no more records). `None` for every other vertex.
    fn source_watermark(&mut self, _now: Instant, _exhausted: bool) -> Option<WatermarkEvent> {
        None
    }

    /// Non-sources: handle one input batch (a `Vec` of the input type).
    fn process(
        &mut self,
        _batch: Box<dyn Any + Send>,
        _ready: &mut Vec<OutBatch>,
    ) -> Result<(), OperatorError> {
        Err(OperatorError::msg("process called on a source"))
    }

    /// Hand out everything buffered on the output side.
    fn flush(&mut self, ready: &mut Vec<OutBatch>);

    /// The input watermark advanced: react (user code may emit), then flush, so that
    /// everything emitted before the watermark leaves ahead of it.
    fn on_watermark(
        &mut self,
        _watermark: Watermark,
        ready: &mut Vec<OutBatch>,
    ) -> Result<(), OperatorError> {
        self.flush(ready);
        Ok(())
    }

    /// Keyed operators with processing-time timers: when the earliest is due (milliseconds
    /// since the epoch).
    fn next_processing_timer(&self) -> Option<i64> {
        None
    }

    /// The task's clock reached `now_ms`: fire the processing-time timers due by then.
    fn on_processing_time(
        &mut self,
        _now_ms: i64,
        _ready: &mut Vec<OutBatch>,
    ) -> Result<(), OperatorError> {
        Ok(())
    }

    /// Every input has ended: let the user code emit what it holds, then flush.
    fn finish(&mut self, ready: &mut Vec<OutBatch>) -> Result<(), OperatorError> {
        self.flush(ready);
        Ok(())
    }

    /// The synchronous part of a checkpoint: capture state (sinks pre-commit here). Keyed state
    /// comes back as [`StateBlob::Deferred`]: the caller encodes it, off the subtask's thread.
    fn snapshot(&mut self, barrier: &Barrier) -> Result<VertexSnapshot, OperatorError>;

    /// Unaligned checkpoints: the bytes of one input batch (as handed to [`Self::process`]),
    /// recorded as channel state.
    fn encode_input(&self, _batch: &(dyn Any + Send)) -> Result<Vec<u8>, OperatorError> {
        Err(OperatorError::msg("a source has no input to record"))
    }

    /// Restored channel state: the batches of `blobs` to process before any new input, in
    /// order. A keyed operator keeps only the records of its own key groups (the blobs of a
    /// rescaled job hold others' too).
    fn restore_input(
        &self,
        blobs: &[Arc<Vec<u8>>],
    ) -> Result<Vec<Box<dyn Any + Send>>, OperatorError> {
        if blobs.is_empty() {
            Ok(Vec::new())
        } else {
            Err(OperatorError::msg("a source has no input to restore"))
        }
    }

    /// Checkpoint `id` is complete and durable.
    fn checkpoint_complete(
        &mut self,
        _id: CheckpointId,
        _kind: CheckpointKind,
    ) -> Result<(), OperatorError> {
        Ok(())
    }
}

/// Creates the runtime of one subtask. Built by the stream API; cloned into the graph.
pub type VertexFactory = Arc<
    dyn Fn(&SubtaskInfo, &[OutputEdge], usize) -> Result<Box<dyn VertexRuntime>, WiringError>
        + Send
        + Sync,
>;

/// A prototype of user code, cloned once per subtask.
struct Prototype<U>(Mutex<U>);

impl<U: Clone> Prototype<U> {
    fn instance(&self) -> U {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// `None` when the store holds nothing: stateless operators leave no trace in a snapshot, so
/// they can be removed from a job without allowing non-restored state (Flink's rule).
fn operator_snapshot(store: &OperatorStateStore) -> Result<Option<Vec<u8>>, OperatorError> {
    if store.is_empty() {
        return Ok(None);
    }
    Ok(Some(store.snapshot()?))
}

// ---------------------------------------------------------------------------------------------

struct SourceVertex<T, S> {
    info: SubtaskInfo,
    source: S,
    state: OperatorStateStore,
    out: OutputWriter<T>,
    scratch: Vec<T>,
    strategy: Option<WatermarkStrategy<T>>,
    /// With a strategy, once opened.
    time: Option<SourceTime<T>>,
}

/// The factory of a source vertex.
pub fn source_factory<T, S>(source: S) -> VertexFactory
where
    T: Clone + Send + 'static,
    S: Source<T> + Clone,
{
    source_factory_with_watermarks(source, None)
}

/// The factory of a source vertex that assigns timestamps and generates watermarks with
/// `strategy`, if given.
pub fn source_factory_with_watermarks<T, S>(
    source: S,
    strategy: Option<WatermarkStrategy<T>>,
) -> VertexFactory
where
    T: Clone + Send + 'static,
    S: Source<T> + Clone,
{
    let proto = Arc::new(Prototype(Mutex::new(source)));
    Arc::new(move |info, edges, batch_size| {
        Ok(Box::new(SourceVertex {
            info: info.clone(),
            source: proto.instance(),
            state: OperatorStateStore::for_operator(&info.uid),
            out: OutputWriter::<T>::new(edges, batch_size, info.index as usize)?,
            scratch: Vec::new(),
            strategy: strategy.clone(),
            time: None,
        }) as Box<dyn VertexRuntime>)
    })
}

impl<T: Clone + Send + 'static, S: Source<T>> VertexRuntime for SourceVertex<T, S> {
    fn open(&mut self, restored: &RestoredState) -> Result<(), OperatorError> {
        restored.restore_operator_state(&mut self.state, &self.info)?;
        if let Some(strategy) = &self.strategy {
            self.time = Some(SourceTime::open(strategy, &mut self.state, Instant::now())?);
        }
        self.source.open(&self.info, &mut self.state)
    }

    fn poll_source(
        &mut self,
        max: usize,
        ready: &mut Vec<OutBatch>,
    ) -> Result<SourcePoll, OperatorError> {
        let mut buf = std::mem::take(&mut self.scratch);
        let poll = self.source.poll(&mut buf, max)?;
        if let Some(time) = self.time.as_mut() {
            time.on_batch(&buf);
        }
        self.out.write(buf, ready);
        Ok(poll)
    }

    fn source_watermark(&mut self, now: Instant, exhausted: bool) -> Option<WatermarkEvent> {
        self.time.as_mut()?.after_poll(now, exhausted)
    }

    fn flush(&mut self, ready: &mut Vec<OutBatch>) {
        self.out.flush(ready);
    }

    fn snapshot(&mut self, barrier: &Barrier) -> Result<VertexSnapshot, OperatorError> {
        if let Some(time) = &self.time {
            time.snapshot(&mut self.state);
        }
        self.source.on_barrier(barrier.id);
        self.source.snapshot(&mut self.state)?;
        Ok(VertexSnapshot {
            keyed: None,
            operator: operator_snapshot(&self.state)?,
        })
    }

    fn checkpoint_complete(
        &mut self,
        id: CheckpointId,
        _kind: CheckpointKind,
    ) -> Result<(), OperatorError> {
        self.source.notify_checkpoint_complete(id)
    }
}

// ---------------------------------------------------------------------------------------------

struct OperatorVertex<I, O, Op> {
    info: SubtaskInfo,
    op: Op,
    state: OperatorStateStore,
    out: OutputWriter<O>,
    _in: std::marker::PhantomData<fn(I)>,
}

/// The factory of a non-keyed operator vertex.
pub fn operator_factory<I, O, Op>(op: Op) -> VertexFactory
where
    I: Serialize + DeserializeOwned + Send + 'static,
    O: Clone + Send + 'static,
    Op: Operator<I, O> + Clone,
{
    let proto = Arc::new(Prototype(Mutex::new(op)));
    Arc::new(move |info, edges, batch_size| {
        Ok(Box::new(OperatorVertex::<I, O, Op> {
            info: info.clone(),
            op: proto.instance(),
            state: OperatorStateStore::for_operator(&info.uid),
            out: OutputWriter::new(edges, batch_size, info.index as usize)?,
            _in: std::marker::PhantomData,
        }) as Box<dyn VertexRuntime>)
    })
}

/// The records of one input batch, by reference.
fn input_records<I: 'static>(batch: &(dyn Any + Send)) -> Result<&Vec<I>, OperatorError> {
    batch
        .downcast_ref::<Vec<I>>()
        .ok_or_else(|| OperatorError::msg("input batch has the wrong record type (wiring bug)"))
}

/// Encodes one input batch as channel state.
fn encode_input<I: Serialize + 'static>(
    uid: &str,
    batch: &(dyn Any + Send),
) -> Result<Vec<u8>, OperatorError> {
    Ok(channel::encode_batch(uid, input_records::<I>(batch)?)?)
}

/// Decodes restored channel-state blobs into input batches, keeping the records `keep` accepts.
fn restore_input<I: DeserializeOwned + Send + 'static>(
    uid: &str,
    blobs: &[Arc<Vec<u8>>],
    keep: impl Fn(&I) -> bool,
) -> Result<Vec<Box<dyn Any + Send>>, OperatorError> {
    let mut out: Vec<Box<dyn Any + Send>> = Vec::new();
    for blob in blobs {
        for (i, bytes) in channel::decode_blob(uid, blob)?.iter().enumerate() {
            let mut records: Vec<I> = channel::decode_batch(uid, i, bytes)?;
            records.retain(|r| keep(r));
            if !records.is_empty() {
                out.push(Box::new(records));
            }
        }
    }
    Ok(out)
}

fn downcast_batch<I: 'static>(batch: Box<dyn Any + Send>) -> Result<Vec<I>, OperatorError> {
    batch
        .downcast::<Vec<I>>()
        .map(|b| *b)
        .map_err(|_| OperatorError::msg("input batch has the wrong record type (wiring bug)"))
}

impl<I, O, Op> VertexRuntime for OperatorVertex<I, O, Op>
where
    I: Serialize + DeserializeOwned + Send + 'static,
    O: Clone + Send + 'static,
    Op: Operator<I, O>,
{
    fn open(&mut self, restored: &RestoredState) -> Result<(), OperatorError> {
        restored.restore_operator_state(&mut self.state, &self.info)?;
        self.op.open(&self.info, &mut self.state)
    }

    fn process(
        &mut self,
        batch: Box<dyn Any + Send>,
        ready: &mut Vec<OutBatch>,
    ) -> Result<(), OperatorError> {
        let input = downcast_batch::<I>(batch)?;
        let mut out = Vec::with_capacity(input.len());
        self.op.process(input, &mut out)?;
        self.out.write(out, ready);
        Ok(())
    }

    fn encode_input(&self, batch: &(dyn Any + Send)) -> Result<Vec<u8>, OperatorError> {
        encode_input::<I>(&self.info.uid, batch)
    }

    fn restore_input(
        &self,
        blobs: &[Arc<Vec<u8>>],
    ) -> Result<Vec<Box<dyn Any + Send>>, OperatorError> {
        restore_input::<I>(&self.info.uid, blobs, |_| true)
    }

    fn flush(&mut self, ready: &mut Vec<OutBatch>) {
        self.out.flush(ready);
    }

    fn finish(&mut self, ready: &mut Vec<OutBatch>) -> Result<(), OperatorError> {
        let mut out = Vec::new();
        self.op.finish(&mut out)?;
        self.out.write(out, ready);
        self.out.flush(ready);
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: Watermark,
        ready: &mut Vec<OutBatch>,
    ) -> Result<(), OperatorError> {
        let mut out = Vec::new();
        self.op.on_watermark(watermark, &mut out)?;
        self.out.write(out, ready);
        self.out.flush(ready);
        Ok(())
    }

    fn snapshot(&mut self, _barrier: &Barrier) -> Result<VertexSnapshot, OperatorError> {
        self.op.snapshot(&mut self.state)?;
        Ok(VertexSnapshot {
            keyed: None,
            operator: operator_snapshot(&self.state)?,
        })
    }
}

// ---------------------------------------------------------------------------------------------

/// Extracts the key of a record.
pub type KeySelector<T, K> = Arc<dyn Fn(&T) -> K + Send + Sync>;

struct KeyedVertex<K: StateKey, I, O, F> {
    info: SubtaskInfo,
    f: F,
    key_of: KeySelector<I, K>,
    state: KeyedStateStore<K>,
    out: OutputWriter<O>,
}

/// The factory of a keyed process function vertex (downstream of a key-by edge).
pub fn keyed_factory<K, I, O, F>(
    f: F,
    key_of: KeySelector<I, K>,
    backend: impl Into<KeyedBackend>,
) -> VertexFactory
where
    K: StateKey,
    I: Serialize + DeserializeOwned + Send + 'static,
    O: Clone + Send + 'static,
    F: KeyedProcessFunction<K, I, O> + Clone,
{
    let proto = Arc::new(Prototype(Mutex::new(f)));
    let backend: KeyedBackend = backend.into();
    Arc::new(move |info, edges, batch_size| {
        let range = range_for_subtask(info.max_parallelism, info.parallelism, info.index);
        Ok(Box::new(KeyedVertex::<K, I, O, F> {
            info: info.clone(),
            f: proto.instance(),
            key_of: key_of.clone(),
            state: KeyedStateStore::new(&info.uid, range, info.max_parallelism, backend.kind)
                .with_local_dir(backend.local_dir.clone()),
            out: OutputWriter::new(edges, batch_size, info.index as usize)?,
        }) as Box<dyn VertexRuntime>)
    })
}

impl<K, I, O, F> VertexRuntime for KeyedVertex<K, I, O, F>
where
    K: StateKey,
    I: Serialize + DeserializeOwned + Send + 'static,
    O: Clone + Send + 'static,
    F: KeyedProcessFunction<K, I, O>,
{
    fn open(&mut self, restored: &RestoredState) -> Result<(), OperatorError> {
        if !restored.keyed.is_empty() {
            self.state.restore(&restored.keyed_slices())?;
            self.state.restore_timers()?;
        }
        if let Some(w) = restored.watermark(&self.info.uid)? {
            self.state.set_watermark(w);
        }
        self.f.open(&self.info, &mut self.state)
    }

    fn process(
        &mut self,
        batch: Box<dyn Any + Send>,
        ready: &mut Vec<OutBatch>,
    ) -> Result<(), OperatorError> {
        let input = downcast_batch::<I>(batch)?;
        let mut out = Vec::with_capacity(input.len());
        for record in input {
            let key = (self.key_of)(&record);
            self.state.set_current_key(key.clone());
            self.f.process(&key, record, &mut self.state, &mut out)?;
        }
        self.out.write(out, ready);
        Ok(())
    }

    fn encode_input(&self, batch: &(dyn Any + Send)) -> Result<Vec<u8>, OperatorError> {
        encode_input::<I>(&self.info.uid, batch)
    }

    fn restore_input(
        &self,
        blobs: &[Arc<Vec<u8>>],
    ) -> Result<Vec<Box<dyn Any + Send>>, OperatorError> {
        let range = self.state.key_groups();
        let max_parallelism = self.info.max_parallelism;
        restore_input::<I>(&self.info.uid, blobs, |r| {
            range.contains(key_group_of(&(self.key_of)(r), max_parallelism))
        })
    }

    fn flush(&mut self, ready: &mut Vec<OutBatch>) {
        self.out.flush(ready);
    }

    fn on_watermark(
        &mut self,
        watermark: Watermark,
        ready: &mut Vec<OutBatch>,
    ) -> Result<(), OperatorError> {
        self.state.set_watermark(watermark);
        self.fire(TimeDomain::EventTime, watermark.millis(), ready)?;
        self.out.flush(ready);
        Ok(())
    }

    fn next_processing_timer(&self) -> Option<i64> {
        self.state.next_processing_timer()
    }

    fn on_processing_time(
        &mut self,
        now_ms: i64,
        ready: &mut Vec<OutBatch>,
    ) -> Result<(), OperatorError> {
        self.fire(TimeDomain::ProcessingTime, now_ms, ready)?;
        // Output of a timer is not held back for the buffer timeout: nothing else may come.
        self.out.flush(ready);
        Ok(())
    }

    fn snapshot(&mut self, _barrier: &Barrier) -> Result<VertexSnapshot, OperatorError> {
        Ok(VertexSnapshot {
            keyed: Some(StateBlob::Deferred(self.state.snapshot_deferred()?)),
            operator: watermark_snapshot(&self.info.uid, self.state.current_watermark())?,
        })
    }
}

impl<K, I, O, F> KeyedVertex<K, I, O, F>
where
    K: StateKey,
    I: Serialize + DeserializeOwned + Send + 'static,
    O: Clone + Send + 'static,
    F: KeyedProcessFunction<K, I, O>,
{
    /// Fires the timers of `domain` due at `upto`, including those their callbacks register at
    /// or before it, in time order.
    fn fire(
        &mut self,
        domain: TimeDomain,
        upto: i64,
        ready: &mut Vec<OutBatch>,
    ) -> Result<(), OperatorError> {
        loop {
            let due = self.state.due_timers(domain, upto);
            if due.is_empty() {
                return Ok(());
            }
            let mut out = Vec::new();
            for timer in due {
                if self.state.claim_timer(domain, &timer) {
                    self.f.on_timer(
                        timer.timestamp,
                        domain,
                        &timer.key,
                        &mut self.state,
                        &mut out,
                    )?;
                }
            }
            self.out.write(out, ready);
        }
    }
}

/// The operator state of a keyed vertex: its watermark, once it has one, so that a restored
/// operator does not start below it (a rescaled one starts at the lowest of the old subtasks').
fn watermark_snapshot(uid: &str, watermark: Watermark) -> Result<Option<Vec<u8>>, OperatorError> {
    if watermark == Watermark::MIN {
        return Ok(None);
    }
    let mut store = OperatorStateStore::for_operator(uid);
    store
        .union_list::<i64>(OPERATOR_WATERMARK_STATE)?
        .update(&mut store, vec![watermark.millis()]);
    Ok(Some(store.snapshot()?))
}

/// The union list state that holds a keyed operator's watermark.
pub const OPERATOR_WATERMARK_STATE: &str = "__weir.watermark";

// ---------------------------------------------------------------------------------------------

struct SinkVertex<T, S> {
    info: SubtaskInfo,
    sink: S,
    state: OperatorStateStore,
    _in: std::marker::PhantomData<fn(T)>,
}

/// The factory of a sink vertex.
pub fn sink_factory<T, S>(sink: S) -> VertexFactory
where
    T: Serialize + DeserializeOwned + Send + 'static,
    S: Sink<T> + Clone,
{
    let proto = Arc::new(Prototype(Mutex::new(sink)));
    Arc::new(move |info, _edges, _batch_size| {
        Ok(Box::new(SinkVertex::<T, S> {
            info: info.clone(),
            sink: proto.instance(),
            state: OperatorStateStore::for_operator(&info.uid),
            _in: std::marker::PhantomData,
        }) as Box<dyn VertexRuntime>)
    })
}

impl<T: Serialize + DeserializeOwned + Send + 'static, S: Sink<T>> VertexRuntime
    for SinkVertex<T, S>
{
    fn open(&mut self, restored: &RestoredState) -> Result<(), OperatorError> {
        restored.restore_operator_state(&mut self.state, &self.info)?;
        self.sink.open(&self.info, &mut self.state)
    }

    fn process(
        &mut self,
        batch: Box<dyn Any + Send>,
        _ready: &mut Vec<OutBatch>,
    ) -> Result<(), OperatorError> {
        self.sink.write(downcast_batch::<T>(batch)?)
    }

    fn encode_input(&self, batch: &(dyn Any + Send)) -> Result<Vec<u8>, OperatorError> {
        encode_input::<T>(&self.info.uid, batch)
    }

    fn restore_input(
        &self,
        blobs: &[Arc<Vec<u8>>],
    ) -> Result<Vec<Box<dyn Any + Send>>, OperatorError> {
        restore_input::<T>(&self.info.uid, blobs, |_| true)
    }

    fn flush(&mut self, _ready: &mut Vec<OutBatch>) {}

    fn finish(&mut self, _ready: &mut Vec<OutBatch>) -> Result<(), OperatorError> {
        self.sink.finish()
    }

    fn snapshot(&mut self, barrier: &Barrier) -> Result<VertexSnapshot, OperatorError> {
        self.sink.pre_commit(barrier.id)?;
        self.sink.snapshot(&mut self.state)?;
        Ok(VertexSnapshot {
            keyed: None,
            operator: operator_snapshot(&self.state)?,
        })
    }

    fn checkpoint_complete(
        &mut self,
        id: CheckpointId,
        kind: CheckpointKind,
    ) -> Result<(), OperatorError> {
        self.sink.commit(id, kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::element::{CheckpointKind, Ending};
    use crate::partition::{EdgeKey, Partitioning};
    use crate::state::keyed::ValueState;

    /// Emits `(key, count of the key's records so far)`.
    #[derive(Clone, Default)]
    struct Count {
        count: Option<ValueState<u64>>,
    }

    impl KeyedProcessFunction<u64, u64, (u64, u64)> for Count {
        fn open(
            &mut self,
            _info: &SubtaskInfo,
            state: &mut KeyedStateStore<u64>,
        ) -> Result<(), OperatorError> {
            self.count = Some(state.value("count")?);
            Ok(())
        }

        fn process(
            &mut self,
            key: &u64,
            _input: u64,
            state: &mut KeyedStateStore<u64>,
            out: &mut Vec<(u64, u64)>,
        ) -> Result<(), OperatorError> {
            let count = self.count.expect("opened");
            let n = count.get(state).copied().unwrap_or(0) + 1;
            count.update(state, n);
            out.push((*key, n));
            Ok(())
        }
    }

    fn counter() -> Box<dyn VertexRuntime> {
        let info = SubtaskInfo {
            uid: "count".into(),
            index: 0,
            parallelism: 1,
            max_parallelism: 128,
            restored: None,
        };
        let edge = OutputEdge {
            partitioning: Partitioning::Forward,
            key: Arc::new(EdgeKey::<(u64, u64)> { key_group: None }),
            channels: 1,
            downstream_parallelism: 1,
            downstream_max_parallelism: 128,
        };
        let factory = keyed_factory::<u64, u64, (u64, u64), _>(
            Count::default(),
            Arc::new(|r: &u64| *r),
            crate::state::StateBackendKind::HashMap,
        );
        factory(&info, &[edge], 1 << 20).unwrap()
    }

    /// Processes `records` and returns what the vertex emitted.
    fn run(v: &mut dyn VertexRuntime, records: Vec<u64>) -> Vec<(u64, u64)> {
        let mut ready = Vec::new();
        v.process(Box::new(records), &mut ready).unwrap();
        v.flush(&mut ready);
        ready
            .into_iter()
            .flat_map(|b| *b.records.downcast::<Vec<(u64, u64)>>().unwrap())
            .collect()
    }

    fn barrier() -> Barrier {
        Barrier {
            id: CheckpointId(1),
            timestamp_ms: 0,
            kind: CheckpointKind::PERIODIC,
            ending: Ending::Continue,
        }
    }

    #[test]
    fn a_keyed_vertex_snapshot_is_deferred_and_holds_the_state_at_the_barrier() {
        let mut v = counter();
        v.open(&RestoredState::default()).unwrap();
        run(v.as_mut(), (0..100).chain(0..100).collect());
        let snapshot = v.snapshot(&barrier()).unwrap();
        assert!(snapshot.operator.is_none());
        let keyed = snapshot.keyed.expect("keyed state");
        assert!(keyed.is_deferred());
        // Records after the barrier, before the blob is encoded: not in it.
        run(v.as_mut(), (0..200).collect());
        let blob = std::thread::spawn(move || keyed.encode())
            .join()
            .unwrap()
            .unwrap();

        let mut restored = counter();
        restored
            .open(&RestoredState {
                keyed: vec![Arc::new(blob)],
                operator: vec![],
                channel: vec![],
            })
            .unwrap();
        let out = run(restored.as_mut(), (0..200).collect());
        assert_eq!(out[..100], (0..100).map(|k| (k, 3)).collect::<Vec<_>>());
        assert_eq!(out[100..], (100..200).map(|k| (k, 1)).collect::<Vec<_>>());
    }

    #[test]
    fn a_ready_vertex_blob_encodes_to_its_bytes() {
        let blob = StateBlob::from(vec![1, 2, 3]);
        assert!(!blob.is_deferred());
        assert_eq!(blob.encode().unwrap(), [1, 2, 3]);
    }
}
