//! `SequenceSource`: the numbers `from..to`, split into contiguous ranges, one per subtask.
//!
//! The remaining ranges are split list state, so a restored source resumes at the exact number
//! after the barrier, and a rescaled one redistributes the ranges over the new subtasks; a
//! subtask reads its ranges lowest first.

use std::collections::VecDeque;
use std::time::Duration;

use crate::connectors::rate::RateLimit;
use crate::operator::{OperatorError, Source, SourcePoll, SubtaskInfo};
use crate::state::operator_state::{OperatorListState, OperatorStateStore};

/// Numbers `from..to` (`to` exclusive).
#[derive(Clone)]
pub struct SequenceSource {
    from: u64,
    to: u64,
    rate: Option<f64>,
    limiter: Option<RateLimit>,
    ranges: VecDeque<(u64, u64)>,
    state: Option<OperatorListState<(u64, u64)>>,
}

impl SequenceSource {
    /// `from..to`, as fast as the job takes them.
    pub fn new(from: u64, to: u64) -> Self {
        Self {
            from,
            to: to.max(from),
            rate: None,
            limiter: None,
            ranges: VecDeque::new(),
            state: None,
        }
    }

    /// At most `per_second` records per second over all subtasks.
    pub fn with_rate(mut self, per_second: f64) -> Self {
        self.rate = Some(per_second);
        self
    }
}

impl Source<u64> for SequenceSource {
    fn open(
        &mut self,
        info: &SubtaskInfo,
        state: &mut OperatorStateStore,
    ) -> Result<(), OperatorError> {
        let handle = state.list::<(u64, u64)>("ranges")?;
        self.ranges = if info.restored.is_some() {
            handle.get(state).into_iter().collect()
        } else {
            let len = u128::from(self.to - self.from);
            let p = u128::from(info.parallelism);
            let i = u128::from(info.index);
            let start = self.from + (len * i / p) as u64;
            let end = self.from + (len * (i + 1) / p) as u64;
            VecDeque::from([(start, end)])
        };
        self.ranges.retain(|(s, e)| s < e);
        // Lowest numbers first: a subtask that took over several ranges in a rescale still
        // emits ascending numbers, so event time taken from them stays monotonous per subtask
        // (its watermark never passes numbers it has yet to emit).
        self.ranges.make_contiguous().sort_unstable();
        self.state = Some(handle);
        self.limiter = self
            .rate
            .map(|r| RateLimit::new(r / f64::from(info.parallelism.max(1))));
        Ok(())
    }

    fn poll(&mut self, out: &mut Vec<u64>, max: usize) -> Result<SourcePoll, OperatorError> {
        let Some(&(start, end)) = self.ranges.front() else {
            return Ok(SourcePoll::Exhausted);
        };
        let mut n = max;
        if let Some(l) = self.limiter.as_mut() {
            n = l.allowed(max);
            if n == 0 {
                return Ok(SourcePoll::Idle(l.wait()));
            }
        }
        let stop = end.min(start.saturating_add(n as u64));
        out.extend(start..stop);
        if let Some(l) = self.limiter.as_mut() {
            l.record((stop - start) as usize);
        }
        if stop == end {
            self.ranges.pop_front();
        } else {
            self.ranges[0].0 = stop;
        }
        Ok(if self.ranges.is_empty() {
            SourcePoll::Exhausted
        } else if self.limiter.is_some() {
            SourcePoll::Idle(Duration::ZERO)
        } else {
            SourcePoll::Ready
        })
    }

    fn snapshot(&mut self, state: &mut OperatorStateStore) -> Result<(), OperatorError> {
        let handle = self.state.as_ref().expect("opened");
        handle.update(state, self.ranges.iter().copied().collect());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::CheckpointId;

    fn info(index: u32, parallelism: u32, restored: bool) -> SubtaskInfo {
        SubtaskInfo {
            uid: "numbers".into(),
            index,
            parallelism,
            max_parallelism: 128,
            restored: restored.then_some(CheckpointId(1)),
        }
    }

    fn drain(s: &mut SequenceSource) -> Vec<u64> {
        let mut out = Vec::new();
        while s.poll(&mut out, 7).unwrap() != SourcePoll::Exhausted {}
        out
    }

    /// Three subtasks snapshotted part-way, restored into one: it reads every remaining
    /// number once, in ascending order (monotonous event time after a rescale).
    #[test]
    fn a_rescaled_subtask_reads_the_ranges_it_took_over_lowest_first() {
        let mut blobs = Vec::new();
        for i in [2, 0, 1] {
            let mut store = OperatorStateStore::for_operator("numbers");
            let mut s = SequenceSource::new(0, 90);
            s.open(&info(i, 3, false), &mut store).unwrap();
            let mut out = Vec::new();
            s.poll(&mut out, 5).unwrap();
            s.snapshot(&mut store).unwrap();
            blobs.push(store.snapshot().unwrap());
        }
        let slices: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
        let mut store = OperatorStateStore::for_operator("numbers");
        store.restore(&slices, 0, 1).unwrap();
        let mut s = SequenceSource::new(0, 90);
        s.open(&info(0, 1, true), &mut store).unwrap();
        let got = drain(&mut s);
        let want: Vec<u64> = (5..30).chain(35..60).chain(65..90).collect();
        assert_eq!(got, want);
    }
}
