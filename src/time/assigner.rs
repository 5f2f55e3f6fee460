//! [`SourceTime`]: a source subtask's event time, typed — the timestamp assigner, its
//! [`SourceWatermarks`], and the watermark in the source's operator state.
//!
//! The source vertex hands it every polled batch before the batch is routed (one pass over the
//! batch for its largest timestamp) and asks it after the poll what to emit. At a barrier the
//! current watermark goes into the union list state `__weir.source-watermark` (one entry per
//! subtask); a restored subtask takes the minimum of all entries, so after a rescale no
//! subtask starts ahead of any split it may have taken over. A snapshot without the entry (taken
//! before watermarks existed, or by a source without a strategy) restores no watermark.

use std::time::Instant;

use super::source::SourceWatermarks;
use super::strategy::{TimestampFn, WatermarkStrategy};
use super::watermark::{Watermark, WatermarkEvent};
use crate::state::operator_state::{OperatorListState, OperatorStateStore};
use crate::state::StateError;

/// The operator-state name of a source's watermark.
pub const SOURCE_WATERMARK_STATE: &str = "__weir.source-watermark";

/// A source subtask's event time. See the module docs.
pub struct SourceTime<T> {
    timestamps: Option<TimestampFn<T>>,
    watermarks: SourceWatermarks,
    /// The largest timestamp of the batch polled last.
    polled: Option<i64>,
    state: OperatorListState<i64>,
}

impl<T> SourceTime<T> {
    /// Registers the watermark state in `store` (after its restore) and restores from it.
    ///
    /// # Errors
    /// The store holds `__weir.source-watermark` as another type.
    pub fn open(
        strategy: &WatermarkStrategy<T>,
        store: &mut OperatorStateStore,
        now: Instant,
    ) -> Result<Self, StateError> {
        let state = store.union_list::<i64>(SOURCE_WATERMARK_STATE)?;
        let mut watermarks = SourceWatermarks::new(strategy.generator, strategy.idleness, now);
        // `i64::MIN`: an old subtask that had no watermark yet, so neither has this one (it
        // may read that subtask's split).
        if let Some(&min) = state.get_ref(store).iter().min() {
            if min != i64::MIN {
                watermarks.restore(Watermark(min));
            }
        }
        Ok(Self {
            timestamps: strategy.timestamps.clone(),
            watermarks,
            polled: None,
            state,
        })
    }

    /// A polled batch, before it is routed.
    pub fn on_batch(&mut self, records: &[T]) {
        if let Some(ts) = &self.timestamps {
            let max = records.iter().map(|r| ts(r)).max();
            self.polled = self.polled.max(max);
        }
    }

    /// What to emit after the poll at `now` (`exhausted`: the source has no more records).
    pub fn after_poll(&mut self, now: Instant, exhausted: bool) -> Option<WatermarkEvent> {
        let polled = self.polled.take();
        let event = self.watermarks.on_poll(polled, now);
        if exhausted {
            // The batch's watermark is subsumed by the end of event time.
            return self.watermarks.on_exhausted().or(event);
        }
        event
    }

    /// The current watermark.
    pub fn current(&self) -> Option<Watermark> {
        self.watermarks.current()
    }

    /// At the barrier: the current watermark into the operator state (`i64::MIN` before the
    /// first: every subtask writes an entry, so a restore sees that one had none).
    pub fn snapshot(&self, store: &mut OperatorStateStore) {
        let entry = self.current().map_or(i64::MIN, |w| w.0);
        self.state.update(store, vec![entry]);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn strategy() -> WatermarkStrategy<u64> {
        WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(10))
            .with_timestamp_assigner(|v: &u64| *v as i64)
    }

    /// A source subtask that polled records up to `max_ts`, snapshotted.
    fn snapshot_of(max_ts: Option<u64>) -> Vec<u8> {
        let mut store = OperatorStateStore::for_operator("src");
        let t = Instant::now();
        let mut time = SourceTime::open(&strategy(), &mut store, t).unwrap();
        if let Some(ts) = max_ts {
            time.on_batch(&[1, ts, 2]);
        }
        time.after_poll(t, false);
        time.snapshot(&mut store);
        store.snapshot().unwrap()
    }

    #[test]
    fn the_largest_timestamp_of_a_batch_drives_the_watermark() {
        let mut store = OperatorStateStore::for_operator("src");
        let t = Instant::now();
        let mut time = SourceTime::open(&strategy(), &mut store, t).unwrap();
        time.on_batch(&[100, 300, 200]);
        assert_eq!(
            time.after_poll(t, false),
            Some(WatermarkEvent::Advance(Watermark(289)))
        );
        assert_eq!(time.after_poll(t, false), None, "no new records");
        time.on_batch(&[400]);
        assert_eq!(
            time.after_poll(t, true),
            Some(WatermarkEvent::Advance(Watermark::MAX)),
            "exhausted: the end of event time"
        );
    }

    #[test]
    fn a_restored_subtask_starts_at_the_minimum_of_the_snapshotted_watermarks() {
        let blobs = [snapshot_of(Some(500)), snapshot_of(Some(200))];
        let blobs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
        // Rescaled 2 → 3: every new subtask gets every entry of the union list.
        for index in 0..3 {
            let mut store = OperatorStateStore::for_operator("src");
            store.restore(&blobs, index, 3).unwrap();
            let mut time = SourceTime::open(&strategy(), &mut store, Instant::now()).unwrap();
            assert_eq!(time.current(), Some(Watermark(189)), "subtask {index}");
            assert_eq!(
                time.after_poll(Instant::now(), false),
                Some(WatermarkEvent::Advance(Watermark(189))),
                "the restored watermark is emitted on the first poll"
            );
        }
    }

    /// One old subtask had no watermark yet (it had not polled): the restored subtasks have
    /// none either — any of them may read its split, whose records may be older than the others'
    /// watermarks. (A fault schedule lost records to lateness before this.)
    #[test]
    fn one_old_subtask_without_a_watermark_restores_none() {
        let blobs = [
            snapshot_of(Some(7_000)),
            snapshot_of(None),
            snapshot_of(Some(4_000)),
        ];
        let blobs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
        for index in 0..3 {
            let mut store = OperatorStateStore::for_operator("src");
            store.restore(&blobs, index, 3).unwrap();
            let time = SourceTime::open(&strategy(), &mut store, Instant::now()).unwrap();
            assert_eq!(time.current(), None, "subtask {index}");
        }
    }

    #[test]
    fn a_snapshot_without_a_watermark_restores_none() {
        let old = OperatorStateStore::for_operator("src").snapshot().unwrap();
        let never_polled = snapshot_of(None);
        for blob in [old, never_polled] {
            let mut store = OperatorStateStore::for_operator("src");
            store.restore(&[blob.as_slice()], 0, 1).unwrap();
            let time = SourceTime::open(&strategy(), &mut store, Instant::now()).unwrap();
            assert_eq!(time.current(), None);
        }
    }
}
