//! Timers of a keyed operator subtask, kept as keyed state (Flink's `TimerService` of a
//! `KeyedProcessFunction`).
//!
//! User code registers a timer for the current key through
//! [`KeyedStateStore::timer_service`]: an event-time timer fires when the operator's watermark
//! reaches its timestamp, a processing-time timer when the task's wall clock does (the task
//! wakes up for it, no record needed). The runtime calls `on_timer` of the keyed process
//! function with the timer's key as the current key.
//!
//! **Timers are keyed state.** The truth is an ordinary keyed map state of the store, named
//! [`TIMERS_STATE`], `(domain, timestamp) → ()` per key: it is captured copy-on-write at a
//! barrier with the operator's other state, written per key group, redistributed on rescale
//! with its key groups, and stored by whichever backend the job uses. A [`TimerQueue`] is the
//! in-memory index over it (by time), rebuilt from the restored state when the subtask opens.
//! A timer fires only if it is still in the state when its time comes, and leaves the state
//! before `on_timer` runs, so a checkpoint holds exactly the timers that had not fired at its
//! barrier: a timer that fired before the restored checkpoint does not fire again; one due
//! after it fires once, after the restore.
//!
//! A store that never registers a timer has no such state, so old snapshots and operators
//! without timers are unchanged.

use std::time::{SystemTime, UNIX_EPOCH};

use super::error::StateError;
use super::keyed::{KeyedStateStore, MapState, StateKey};
use crate::time::{TimeDomain, Timer, TimerQueue, Watermark};

/// The reserved name of the keyed map state that holds a store's timers.
pub const TIMERS_STATE: &str = "__weir.timers";

/// The wall clock in milliseconds since the epoch (processing time).
pub fn processing_time_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A store's timers: the state handle and the index by time.
pub(crate) struct StoreTimers<K> {
    state: MapState<(TimeDomain, i64), ()>,
    queue: TimerQueue<K>,
}

/// What the operator's timer callbacks and user code see of time and timers, for the store's
/// current key. Obtained from [`KeyedStateStore::timer_service`].
pub struct TimerService<'a, K> {
    store: &'a mut KeyedStateStore<K>,
    watermark: Watermark,
}

impl<K: StateKey> KeyedStateStore<K> {
    /// The timer service scoped to the current key. `watermark` is not tracked by the store:
    /// the runtime passes the operator's current watermark through [`Self::set_watermark`].
    ///
    /// # Errors
    ///
    /// [`StateError::Incompatible`] if a state named [`TIMERS_STATE`] was registered by user
    /// code with another type.
    pub fn timer_service(&mut self) -> Result<TimerService<'_, K>, StateError> {
        self.ensure_timers()?;
        let watermark = self.watermark;
        Ok(TimerService {
            store: self,
            watermark,
        })
    }

    /// The operator's current watermark (the minimum over its inputs; [`Watermark::MIN`] before
    /// the first one), as the runtime last set it.
    pub fn current_watermark(&self) -> Watermark {
        self.watermark
    }

    /// Sets the operator's current watermark (the runtime does, before firing timers).
    pub fn set_watermark(&mut self, watermark: Watermark) {
        self.watermark = self.watermark.max(watermark);
    }

    fn ensure_timers(&mut self) -> Result<&mut StoreTimers<K>, StateError> {
        if self.timers.is_none() {
            let state = self.map::<(TimeDomain, i64), ()>(TIMERS_STATE)?;
            self.timers = Some(Box::new(StoreTimers {
                state,
                queue: TimerQueue::default(),
            }));
        }
        Ok(self.timers.as_mut().expect("set above"))
    }

    /// Rebuilds the timer index from restored state, if the snapshot had timers (call after
    /// [`Self::restore`], before any record). Leaves no current key.
    ///
    /// # Errors
    ///
    /// [`StateError::Decode`] if the restored timers do not decode (a damaged snapshot, or one
    /// written with another key type).
    pub fn restore_timers(&mut self) -> Result<(), StateError> {
        if self.timers.is_none() && !self.is_pending(TIMERS_STATE) {
            return Ok(());
        }
        let state = self.ensure_timers()?.state;
        let mut queue = TimerQueue::default();
        for key in self.keys_of(TIMERS_STATE)? {
            self.set_current_key(key.clone());
            let group = self.current_key_group().expect("set above");
            for &(domain, timestamp) in state.keys(self) {
                queue.register(domain, group, key.clone(), timestamp);
            }
        }
        self.clear_current_key();
        self.timers.as_mut().expect("ensured").queue = queue;
        Ok(())
    }

    /// Timers waiting (both domains).
    pub fn timer_count(&self) -> usize {
        self.timers.as_ref().map_or(0, |t| t.queue.len())
    }

    /// When the earliest processing-time timer is due: when the task must wake up.
    pub fn next_processing_timer(&self) -> Option<i64> {
        self.timers.as_ref()?.queue.next_processing_time()
    }

    /// The timers of `domain` due at `upto` (the watermark, or the clock), in time order, taken
    /// from the index. Each fires only if [`Self::claim_timer`] says so: one deleted meanwhile
    /// by an earlier timer's callback does not.
    pub fn due_timers(&mut self, domain: TimeDomain, upto: i64) -> Vec<Timer<K>> {
        let Some(t) = self.timers.as_mut() else {
            return Vec::new();
        };
        match domain {
            TimeDomain::EventTime => t.queue.advance_watermark(upto),
            TimeDomain::ProcessingTime => t.queue.advance_processing_time(upto),
        }
    }

    /// Makes `timer`'s key current and removes the timer from state; true if it was there
    /// (it fires now), false if it was deleted since it was taken from the index.
    pub fn claim_timer(&mut self, domain: TimeDomain, timer: &Timer<K>) -> bool {
        let Some(state) = self.timers.as_ref().map(|t| t.state) else {
            return false;
        };
        self.set_current_key_in_group(timer.key.clone(), timer.key_group);
        state.remove(self, &(domain, timer.timestamp)).is_some()
    }
}

impl<K: StateKey> TimerService<'_, K> {
    /// The operator's current watermark.
    pub fn current_watermark(&self) -> Watermark {
        self.watermark
    }

    /// The task's wall clock, in milliseconds since the epoch.
    pub fn current_processing_time(&self) -> i64 {
        processing_time_now()
    }

    /// Registers an event-time timer for the current key at `timestamp`: `on_timer` runs when
    /// the watermark reaches it (at once with the next watermark if it already has). Registering
    /// the same timer again is a no-op.
    ///
    /// # Panics
    ///
    /// If no key is current (outside `process`/`on_timer`).
    pub fn register_event_time_timer(&mut self, timestamp: i64) {
        self.register(TimeDomain::EventTime, timestamp);
    }

    /// Registers a processing-time timer for the current key at `timestamp` (milliseconds since
    /// the epoch). Panics as [`Self::register_event_time_timer`].
    pub fn register_processing_time_timer(&mut self, timestamp: i64) {
        self.register(TimeDomain::ProcessingTime, timestamp);
    }

    /// Deletes the current key's event-time timer at `timestamp`, if any.
    pub fn delete_event_time_timer(&mut self, timestamp: i64) {
        self.delete(TimeDomain::EventTime, timestamp);
    }

    /// Deletes the current key's processing-time timer at `timestamp`, if any.
    pub fn delete_processing_time_timer(&mut self, timestamp: i64) {
        self.delete(TimeDomain::ProcessingTime, timestamp);
    }

    fn current(&self) -> (K, u32) {
        match (self.store.current_key(), self.store.current_key_group()) {
            (Some(k), Some(g)) => (k.clone(), g),
            _ => panic!(
                "operator `{}`: a timer was registered with no current key (only in process or \
                 on_timer)",
                self.store.operator_uid()
            ),
        }
    }

    fn register(&mut self, domain: TimeDomain, timestamp: i64) {
        let (key, group) = self.current();
        let t = self
            .store
            .timers
            .as_mut()
            .expect("ensured by timer_service");
        let state = t.state;
        // Not new in the index but gone from state: taken to fire, and re-registered by a
        // callback before it fired.
        let added = t.queue.register(domain, group, key, timestamp);
        if added || !state.contains(self.store, &(domain, timestamp)) {
            state.put(self.store, (domain, timestamp), ());
        }
    }

    fn delete(&mut self, domain: TimeDomain, timestamp: i64) {
        let (key, group) = self.current();
        let t = self
            .store
            .timers
            .as_mut()
            .expect("ensured by timer_service");
        let state = t.state;
        t.queue.delete(domain, group, key, timestamp);
        state.remove(self.store, &(domain, timestamp));
    }
}
