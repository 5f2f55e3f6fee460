//! The window operator: a keyed process function that keeps each key's windows in keyed map
//! state and fires them with timers (Flink's `WindowOperator` with its default event-time and
//! processing-time triggers).
//!
//! - **State**: `window-contents`, per key `window → accumulator` (what the window function
//!   keeps: a running reduce, an aggregate's accumulator, or the records themselves).
//!   Timers are the store's timers (keyed state too), so a checkpoint holds each key's open
//!   windows and the timers that will fire them, and both move with their key group.
//! - **Event time**: a window fires when the watermark reaches its last millisecond
//!   ([`TimeWindow::max_timestamp`]) and is purged `allowed_lateness` later. A record for a
//!   window that already fired but is not purged fires it again at once with the record added
//!   (a late firing). A record whose every window is purged is late: the window function's
//!   [`WindowFunction::late`] gets it (dropped by default), and the operator counts it.
//! - **Processing time**: windows of the wall clock when the record is processed; a window
//!   fires and is purged when the clock reaches its end, with no new input needed.
//! - **Sessions** merge per key: a record's window `[t, t + gap)` absorbs every window it
//!   touches, and their accumulators are merged ([`WindowFunction::merge`]).

use std::sync::Arc;

use super::assigner::{merge_into, window_start, TimeWindow, WindowAssigner};
use crate::operator::{KeyedProcessFunction, OperatorError, SubtaskInfo};
use crate::state::keyed::{KeyedStateStore, MapState, StateKey, StateValue};
use crate::state::timers::processing_time_now;
use crate::time::TimeDomain;

/// The name of the keyed map state that holds a key's windows.
pub const WINDOW_STATE: &str = "window-contents";

/// What a window keeps and emits (the shape of Flink's reduce, aggregate and process window
/// functions in one trait; [`super::ReduceWindow`], [`super::AggregateWindow`] and
/// [`super::ProcessWindow`] adapt closures to it).
pub trait WindowFunction<K, I, O>: Clone + Send + 'static {
    /// What the window's state holds.
    type Acc: StateValue;

    /// Adds `input` to the window's accumulator (`None`: the window's first record).
    fn add(&self, acc: Option<Self::Acc>, input: I) -> Result<Self::Acc, OperatorError>;

    /// Session windows: the accumulator of two windows merged into one.
    fn merge(&self, a: Self::Acc, b: Self::Acc) -> Self::Acc;

    /// The window fires: what to emit.
    fn emit(
        &self,
        key: &K,
        window: &TimeWindow,
        acc: &Self::Acc,
        out: &mut Vec<O>,
    ) -> Result<(), OperatorError>;

    /// A record too late for every window it belongs to. Dropped by default (and counted).
    fn late(&self, _key: &K, _input: I, _out: &mut Vec<O>) -> Result<(), OperatorError> {
        Ok(())
    }
}

/// A record's event time, or why it has none.
pub type CheckedTimestampFn<I> = Arc<dyn Fn(&I) -> Result<i64, OperatorError> + Send + Sync>;

/// Where a window operator's time comes from.
pub enum WindowTime<I> {
    /// Each record's timestamp (milliseconds), or why the record has none (which fails the
    /// subtask); windows fire with the watermark.
    Event(CheckedTimestampFn<I>),
    /// The wall clock when the record is processed; windows fire with the clock.
    Processing,
}

impl<I> Clone for WindowTime<I> {
    fn clone(&self) -> Self {
        match self {
            Self::Event(f) => Self::Event(f.clone()),
            Self::Processing => Self::Processing,
        }
    }
}

impl<I> WindowTime<I> {
    /// Event time from `timestamp`.
    pub fn event(timestamp: impl Fn(&I) -> i64 + Send + Sync + 'static) -> Self {
        Self::Event(Arc::new(move |r| Ok(timestamp(r))))
    }

    /// Event time from `timestamp`, which may refuse a record (a missing time field, say).
    pub fn event_checked(
        timestamp: impl Fn(&I) -> Result<i64, OperatorError> + Send + Sync + 'static,
    ) -> Self {
        Self::Event(Arc::new(timestamp))
    }

    fn domain(&self) -> TimeDomain {
        match self {
            Self::Event(_) => TimeDomain::EventTime,
            Self::Processing => TimeDomain::ProcessingTime,
        }
    }
}

/// See the module docs.
pub struct WindowOperator<K, I, O, F: WindowFunction<K, I, O>> {
    assigner: WindowAssigner,
    time: WindowTime<I>,
    /// Event time only; milliseconds.
    allowed_lateness: i64,
    f: F,
    contents: Option<MapState<TimeWindow, F::Acc>>,
    uid: String,
    late_records: u64,
    _types: std::marker::PhantomData<fn(K) -> O>,
}

impl<K, I, O, F: WindowFunction<K, I, O>> Clone for WindowOperator<K, I, O, F> {
    fn clone(&self) -> Self {
        Self {
            assigner: self.assigner,
            time: self.time.clone(),
            allowed_lateness: self.allowed_lateness,
            f: self.f.clone(),
            contents: self.contents,
            uid: self.uid.clone(),
            late_records: self.late_records,
            _types: std::marker::PhantomData,
        }
    }
}

impl<K, I, O, F: WindowFunction<K, I, O>> WindowOperator<K, I, O, F> {
    /// Windows of `assigner` in `time`, kept and emitted by `f`. `allowed_lateness` applies to
    /// event time (ignored in processing time, where nothing is late).
    pub fn new(
        assigner: WindowAssigner,
        time: WindowTime<I>,
        allowed_lateness_ms: i64,
        f: F,
    ) -> Self {
        let allowed_lateness = match time {
            WindowTime::Event(_) => allowed_lateness_ms.max(0),
            WindowTime::Processing => 0,
        };
        Self {
            assigner,
            time,
            allowed_lateness,
            f,
            contents: None,
            uid: String::new(),
            late_records: 0,
            _types: std::marker::PhantomData,
        }
    }

    /// Records dropped (or handed to [`WindowFunction::late`]) by this subtask since it
    /// opened.
    pub fn late_records(&self) -> u64 {
        self.late_records
    }

    /// When the window's state is dropped: its end, plus the allowed lateness in event time.
    fn cleanup_time(&self, w: &TimeWindow) -> i64 {
        w.max_timestamp().saturating_add(self.allowed_lateness)
    }

    fn is_event_time(&self) -> bool {
        matches!(self.time, WindowTime::Event(_))
    }

    /// In event time: the window was purged already (the watermark passed its cleanup time).
    fn is_late(&self, w: &TimeWindow, watermark: i64) -> bool {
        self.is_event_time() && self.cleanup_time(w) <= watermark
    }

    fn register_timers(
        &self,
        w: &TimeWindow,
        state: &mut KeyedStateStore<K>,
    ) -> Result<(), OperatorError>
    where
        K: StateKey,
    {
        let mut timers = state.timer_service()?;
        match self.time.domain() {
            TimeDomain::EventTime => {
                timers.register_event_time_timer(w.max_timestamp());
                if self.allowed_lateness > 0 {
                    timers.register_event_time_timer(self.cleanup_time(w));
                }
            }
            TimeDomain::ProcessingTime => timers.register_processing_time_timer(w.max_timestamp()),
        }
        Ok(())
    }

    /// Adds `input` to window `w` (merged from `absorbed`, for sessions); fires it at once if
    /// the watermark is past its end already (a late firing).
    #[allow(clippy::too_many_arguments)]
    fn add_to(
        &self,
        key: &K,
        w: TimeWindow,
        absorbed: &[TimeWindow],
        input: I,
        watermark: i64,
        state: &mut KeyedStateStore<K>,
        out: &mut Vec<O>,
    ) -> Result<(), OperatorError>
    where
        K: StateKey,
    {
        let contents = self.contents.expect("opened");
        // A session's absorbed windows include `w` itself when the record fell inside it.
        let mut acc = if absorbed.is_empty() {
            contents.get(state, &w)
        } else {
            None
        };
        for old in absorbed {
            if let Some(a) = contents.remove(state, old) {
                acc = Some(match acc {
                    Some(b) => self.f.merge(a, b),
                    None => a,
                });
            }
        }
        let created = acc.is_none() || !absorbed.is_empty();
        let acc = self.f.add(acc, input)?;
        if self.is_event_time() && w.max_timestamp() <= watermark {
            self.f.emit(key, &w, &acc, out)?;
        }
        contents.put(state, w, acc);
        if created {
            self.register_timers(&w, state)?;
        }
        Ok(())
    }
}

impl<K, I, O, F> KeyedProcessFunction<K, I, O> for WindowOperator<K, I, O, F>
where
    K: StateKey,
    I: Clone + Send + 'static,
    O: Send + 'static,
    F: WindowFunction<K, I, O>,
{
    fn open(
        &mut self,
        info: &SubtaskInfo,
        state: &mut KeyedStateStore<K>,
    ) -> Result<(), OperatorError> {
        self.uid = info.uid.clone();
        self.contents = Some(state.map(WINDOW_STATE)?);
        Ok(())
    }

    fn process(
        &mut self,
        key: &K,
        input: I,
        state: &mut KeyedStateStore<K>,
        out: &mut Vec<O>,
    ) -> Result<(), OperatorError> {
        let timestamp = match &self.time {
            WindowTime::Event(f) => f(&input)?,
            WindowTime::Processing => processing_time_now(),
        };
        let watermark = state.current_watermark().millis();
        if let WindowAssigner::Tumbling { size, offset } = self.assigner {
            // The common case, without allocating: one window per record.
            let start = window_start(timestamp, offset, size);
            let w = TimeWindow::new(start, start.saturating_add(size));
            if self.is_late(&w, watermark) {
                return self.on_late(key, input, out);
            }
            return self.add_to(key, w, &[], input, watermark, state, out);
        }
        let windows = self.assigner.assign(timestamp);
        if self.assigner.is_merging() {
            let contents = self.contents.expect("opened");
            let existing: Vec<TimeWindow> = contents.keys(state).copied().collect();
            let (merged, absorbed) = merge_into(&existing, windows[0]);
            if self.is_late(&merged, watermark) {
                return self.on_late(key, input, out);
            }
            return self.add_to(key, merged, &absorbed, input, watermark, state, out);
        }
        let live: Vec<TimeWindow> = windows
            .into_iter()
            .filter(|w| !self.is_late(w, watermark))
            .collect();
        let Some((last, rest)) = live.split_last() else {
            return self.on_late(key, input, out);
        };
        for w in rest {
            self.add_to(key, *w, &[], input.clone(), watermark, state, out)?;
        }
        self.add_to(key, *last, &[], input, watermark, state, out)
    }

    fn on_timer(
        &mut self,
        timestamp: i64,
        domain: TimeDomain,
        key: &K,
        state: &mut KeyedStateStore<K>,
        out: &mut Vec<O>,
    ) -> Result<(), OperatorError> {
        if domain != self.time.domain() {
            return Ok(());
        }
        let contents = self.contents.expect("opened");
        let mut windows: Vec<TimeWindow> = contents
            .keys(state)
            .filter(|w| w.max_timestamp() == timestamp || self.cleanup_time(w) == timestamp)
            .copied()
            .collect();
        windows.sort();
        for w in windows {
            if w.max_timestamp() == timestamp {
                if let Some(acc) = contents.get_ref(state, &w) {
                    self.f.emit(key, &w, acc, out)?;
                }
            }
            if self.cleanup_time(&w) == timestamp {
                contents.remove(state, &w);
            }
        }
        Ok(())
    }
}

impl<K, I, O, F: WindowFunction<K, I, O>> WindowOperator<K, I, O, F> {
    fn on_late(&mut self, key: &K, input: I, out: &mut Vec<O>) -> Result<(), OperatorError> {
        self.late_records += 1;
        if self.late_records.is_power_of_two() {
            tracing::debug!(uid = %self.uid, late_records = self.late_records, "window operator: late records");
        }
        self.f.late(key, input, out)
    }
}
