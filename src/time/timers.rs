//! [`TimerQueue`]: a keyed operator subtask's event-time and processing-time timers, a pure
//! data structure (Flink's `InternalTimerService` heap without the key context).
//!
//! A timer is `(timestamp, key)` in one [`TimeDomain`], registered at most once (registering it
//! again is a no-op, as in Flink), deletable until it fires. Keys need only `Hash + Eq` (like
//! keyed state's `StateKey`); timers of one timestamp keep their registration order. Event-time timers fire when the
//! watermark reaches their timestamp ([`TimerQueue::advance_watermark`]); processing-time
//! timers when the task's clock does ([`TimerQueue::advance_processing_time`]), and
//! [`TimerQueue::next_processing_time`] is when the task must wake up for that without a record.
//! Due timers come out in timestamp order and leave the queue: a timer fires once.
//!
//! Timers are keyed state: each remembers its key group, and [`TimerQueue::snapshot_groups`] /
//! [`TimerQueue::restore_group`] move them per key group ([`TimerGroup`]), so a checkpoint holds
//! exactly the timers that had not fired at its barrier and a rescaled subtask takes the
//! timers of the key groups it takes. A timer that fired before the restored checkpoint is
//! not in it; one due after it is, and fires again after the restore, as the records it
//! depends on are replayed too.
//!
//! Keyed operators use it as the index over their timers' keyed state
//! ([`crate::state::timers`]): the state is the truth (it is what checkpoints hold), this
//! queue orders it by time and is rebuilt from it on restore. The task wakes up at the
//! earliest processing-time timer with a `run_later`, like the gate's alignment deadline.

use std::collections::BTreeMap;
use std::hash::Hash;

use indexmap::IndexSet;
use serde::{Deserialize, Serialize};

/// Which clock a timer follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TimeDomain {
    /// Fires when the watermark reaches it.
    EventTime,
    /// Fires when the task's wall clock (milliseconds since the epoch) reaches it.
    ProcessingTime,
}

/// A due timer, handed out to fire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timer<K> {
    pub timestamp: i64,
    pub key_group: u32,
    pub key: K,
}

/// One key group's timers, as a snapshot holds them (the key group is the snapshot's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerGroup<K> {
    pub event_time: Vec<(i64, K)>,
    pub processing_time: Vec<(i64, K)>,
}

impl<K> Default for TimerGroup<K> {
    fn default() -> Self {
        Self {
            event_time: Vec::new(),
            processing_time: Vec::new(),
        }
    }
}

impl<K> TimerGroup<K> {
    pub fn is_empty(&self) -> bool {
        self.event_time.is_empty() && self.processing_time.is_empty()
    }
}

/// One domain's timers: by timestamp, then `(key group, key)` in registration order (keys need
/// only `Hash + Eq`, like keyed state keys; the order is deterministic for a deterministic
/// sequence of registrations).
#[derive(Clone, Debug)]
struct DomainTimers<K> {
    by_time: BTreeMap<i64, IndexSet<(u32, K)>>,
    len: usize,
}

impl<K> Default for DomainTimers<K> {
    fn default() -> Self {
        Self {
            by_time: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<K: Hash + Eq + Clone> DomainTimers<K> {
    fn register(&mut self, key_group: u32, key: K, timestamp: i64) -> bool {
        let added = self
            .by_time
            .entry(timestamp)
            .or_default()
            .insert((key_group, key));
        self.len += usize::from(added);
        added
    }

    fn delete(&mut self, key_group: u32, key: K, timestamp: i64) -> bool {
        let Some(at) = self.by_time.get_mut(&timestamp) else {
            return false;
        };
        let removed = at.shift_remove(&(key_group, key));
        if at.is_empty() {
            self.by_time.remove(&timestamp);
        }
        self.len -= usize::from(removed);
        removed
    }

    fn pop_due(&mut self, upto: i64) -> Vec<Timer<K>> {
        let mut due = Vec::new();
        while self
            .by_time
            .first_key_value()
            .is_some_and(|(t, _)| *t <= upto)
        {
            let Some((timestamp, timers)) = self.by_time.pop_first() else {
                break;
            };
            self.len -= timers.len();
            due.extend(timers.into_iter().map(|(key_group, key)| Timer {
                timestamp,
                key_group,
                key,
            }));
        }
        due
    }

    fn first(&self) -> Option<i64> {
        self.by_time.keys().next().copied()
    }

    fn iter(&self) -> impl Iterator<Item = (i64, u32, &K)> + '_ {
        self.by_time
            .iter()
            .flat_map(|(t, timers)| timers.iter().map(move |(g, k)| (*t, *g, k)))
    }
}

/// A subtask's timers. See the module docs.
#[derive(Clone, Debug)]
pub struct TimerQueue<K> {
    event_time: DomainTimers<K>,
    processing_time: DomainTimers<K>,
}

impl<K> Default for TimerQueue<K> {
    fn default() -> Self {
        Self {
            event_time: DomainTimers::default(),
            processing_time: DomainTimers::default(),
        }
    }
}

impl<K: Hash + Eq + Clone> TimerQueue<K> {
    fn domain(&mut self, domain: TimeDomain) -> &mut DomainTimers<K> {
        match domain {
            TimeDomain::EventTime => &mut self.event_time,
            TimeDomain::ProcessingTime => &mut self.processing_time,
        }
    }

    /// Registers a timer for `key` (of `key_group`) at `timestamp`; false if it was already.
    pub fn register(&mut self, domain: TimeDomain, key_group: u32, key: K, timestamp: i64) -> bool {
        self.domain(domain).register(key_group, key, timestamp)
    }

    /// Deletes a registered timer; false if there was none (or it fired).
    pub fn delete(&mut self, domain: TimeDomain, key_group: u32, key: K, timestamp: i64) -> bool {
        self.domain(domain).delete(key_group, key, timestamp)
    }

    /// Timers waiting, both domains.
    pub fn len(&self) -> usize {
        self.event_time.len + self.processing_time.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The watermark reached `watermark`: the event-time timers at or below it, in timestamp
    /// order (registration order within a timestamp), removed.
    pub fn advance_watermark(&mut self, watermark: i64) -> Vec<Timer<K>> {
        self.event_time.pop_due(watermark)
    }

    /// The task's clock reached `now_ms`: the processing-time timers at or below it, in
    /// timestamp order, removed.
    pub fn advance_processing_time(&mut self, now_ms: i64) -> Vec<Timer<K>> {
        self.processing_time.pop_due(now_ms)
    }

    /// When the earliest processing-time timer is due: the task's wake-up.
    pub fn next_processing_time(&self) -> Option<i64> {
        self.processing_time.first()
    }

    /// Every key group's timers, for a snapshot (groups without timers are left out).
    pub fn snapshot_groups(&self) -> BTreeMap<u32, TimerGroup<K>> {
        let mut groups: BTreeMap<u32, TimerGroup<K>> = BTreeMap::new();
        for (t, g, k) in self.event_time.iter() {
            groups.entry(g).or_default().event_time.push((t, k.clone()));
        }
        for (t, g, k) in self.processing_time.iter() {
            groups
                .entry(g)
                .or_default()
                .processing_time
                .push((t, k.clone()));
        }
        groups
    }

    /// Adds the timers of `key_group` from a snapshot.
    pub fn restore_group(&mut self, key_group: u32, group: TimerGroup<K>) {
        for (timestamp, key) in group.event_time {
            self.register(TimeDomain::EventTime, key_group, key, timestamp);
        }
        for (timestamp, key) in group.processing_time {
            self.register(TimeDomain::ProcessingTime, key_group, key, timestamp);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    const EVENT: TimeDomain = TimeDomain::EventTime;
    const PROC: TimeDomain = TimeDomain::ProcessingTime;

    fn fired(timers: Vec<Timer<&'static str>>) -> Vec<(i64, &'static str)> {
        timers.into_iter().map(|t| (t.timestamp, t.key)).collect()
    }

    #[test]
    fn event_time_timers_fire_in_order_once_the_watermark_reaches_them() {
        let mut q = TimerQueue::default();
        q.register(EVENT, 0, "b", 20);
        q.register(EVENT, 1, "a", 10);
        q.register(EVENT, 0, "c", 30);
        assert_eq!(fired(q.advance_watermark(9)), vec![]);
        assert_eq!(fired(q.advance_watermark(20)), vec![(10, "a"), (20, "b")]);
        assert_eq!(fired(q.advance_watermark(25)), vec![], "fired once");
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn registering_twice_is_one_timer_and_a_deleted_one_never_fires() {
        let mut q = TimerQueue::default();
        assert!(q.register(EVENT, 0, "a", 5));
        assert!(!q.register(EVENT, 0, "a", 5));
        q.register(EVENT, 0, "b", 5);
        assert!(q.delete(EVENT, 0, "b", 5));
        assert!(!q.delete(EVENT, 0, "b", 5));
        assert_eq!(fired(q.advance_watermark(100)), vec![(5, "a")]);
    }

    #[test]
    fn processing_time_timers_say_when_to_wake_up_and_ignore_the_watermark() {
        let mut q = TimerQueue::default();
        q.register(PROC, 0, "a", 1_000);
        q.register(PROC, 0, "b", 500);
        q.register(EVENT, 0, "e", 500);
        assert_eq!(q.next_processing_time(), Some(500));
        assert_eq!(fired(q.advance_watermark(2_000)), vec![(500, "e")]);
        assert_eq!(fired(q.advance_processing_time(999)), vec![(500, "b")]);
        assert_eq!(q.next_processing_time(), Some(1_000));
        assert_eq!(fired(q.advance_processing_time(1_000)), vec![(1_000, "a")]);
        assert_eq!(q.next_processing_time(), None);
    }

    #[test]
    fn a_snapshot_holds_the_timers_not_fired_per_key_group() {
        let mut q = TimerQueue::default();
        q.register(EVENT, 3, "a", 10);
        q.register(EVENT, 7, "b", 50);
        q.register(PROC, 7, "c", 99);
        q.advance_watermark(10);
        let groups = q.snapshot_groups();
        assert_eq!(groups.keys().copied().collect::<Vec<_>>(), vec![7]);
        assert_eq!(
            groups[&7],
            TimerGroup {
                event_time: vec![(50, "b")],
                processing_time: vec![(99, "c")],
            }
        );
        let mut restored = TimerQueue::default();
        for (g, timers) in groups {
            restored.restore_group(g, timers);
        }
        assert_eq!(fired(restored.advance_watermark(50)), vec![(50, "b")]);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Register(TimeDomain, u32, u8, i64),
        Delete(TimeDomain, u32, u8, i64),
        Watermark(i64),
        Clock(i64),
        /// Snapshot, then restore into a queue split by key group (rescale 1 → 2 → 1).
        Rescale,
    }

    fn op() -> impl Strategy<Value = Op> {
        let domain = prop_oneof![Just(EVENT), Just(PROC)];
        prop_oneof![
            4 => (domain.clone(), 0u32..8, 0u8..4, 0i64..100).prop_map(|(d, g, k, t)| Op::Register(d, g, k, t)),
            1 => (domain, 0u32..8, 0u8..4, 0i64..100).prop_map(|(d, g, k, t)| Op::Delete(d, g, k, t)),
            1 => (0i64..110).prop_map(Op::Watermark),
            1 => (0i64..110).prop_map(Op::Clock),
            1 => Just(Op::Rescale),
        ]
    }

    proptest! {
        /// Against a model (the set of live timers): every timer registered and not deleted
        /// before it is due fires exactly once, no sooner than its time, in timestamp order
        /// per advance; snapshots split by key group and restored lose and add none.
        #[test]
        fn every_live_timer_fires_exactly_once(ops in prop::collection::vec(op(), 0..80)) {
            let mut q: TimerQueue<u8> = TimerQueue::default();
            let mut live: BTreeSet<(TimeDomain, i64, u32, u8)> = BTreeSet::new();
            let (mut watermark, mut clock) = (i64::MIN, i64::MIN);
            for op in ops {
                match op {
                    Op::Register(d, g, k, t) => {
                        prop_assert_eq!(q.register(d, g, k, t), live.insert((d, t, g, k)));
                    }
                    Op::Delete(d, g, k, t) => {
                        prop_assert_eq!(q.delete(d, g, k, t), live.remove(&(d, t, g, k)));
                    }
                    Op::Watermark(w) | Op::Clock(w) => {
                        let d = if matches!(op, Op::Watermark(_)) { EVENT } else { PROC };
                        let now = if d == EVENT { &mut watermark } else { &mut clock };
                        *now = (*now).max(w);
                        let upto = *now;
                        let due = if d == EVENT { q.advance_watermark(upto) } else { q.advance_processing_time(upto) };
                        let want: Vec<(TimeDomain, i64, u32, u8)> =
                            live.iter().filter(|l| l.0 == d && l.1 <= upto).copied().collect();
                        let got: Vec<(TimeDomain, i64, u32, u8)> =
                            due.iter().map(|t| (d, t.timestamp, t.key_group, t.key)).collect();
                        prop_assert!(due.windows(2).all(|p| p[0].timestamp <= p[1].timestamp));
                        let mut got_sorted = got.clone();
                        got_sorted.sort();
                        prop_assert_eq!(got_sorted, want.clone());
                        for w in want { live.remove(&w); }
                    }
                    Op::Rescale => {
                        let mut halves = [TimerQueue::default(), TimerQueue::default()];
                        for (g, timers) in q.snapshot_groups() {
                            halves[(g % 2) as usize].restore_group(g, timers);
                        }
                        let mut merged = TimerQueue::default();
                        for h in &halves {
                            for (g, timers) in h.snapshot_groups() {
                                merged.restore_group(g, timers);
                            }
                        }
                        q = merged;
                    }
                }
                prop_assert_eq!(q.len(), live.len());
                prop_assert_eq!(
                    q.next_processing_time(),
                    live.iter().filter(|l| l.0 == PROC).map(|l| l.1).min()
                );
            }
        }
    }
}
