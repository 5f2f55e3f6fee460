//! `Chain`: the operators of one subtask, fused (see [`super::chains`] for which are).
//!
//! The head receives the subtask's input (or polls its source); each member's output goes
//! straight into the next member's `process` by a direct call; the tail's output batches are
//! what the subtask sends on its channels. Every member keeps its own state and is snapshotted
//! under its own uid, in chain order, so a snapshot does not depend on how the job was chained.
//! Errors name the member they come from.

use std::any::Any;
use std::time::Instant;

use crate::element::{Barrier, CheckpointKind};
use crate::ids::CheckpointId;
use crate::operator::{OperatorError, SourcePoll};
use crate::partition::OutBatch;
use crate::time::{Watermark, WatermarkEvent};
use crate::vertex::{RestoredState, VertexRuntime, VertexSnapshot};

/// A batch of restored channel state and the chain member whose input it was.
pub type RestoredInput = (usize, Box<dyn Any + Send>);

/// One operator of a chain.
pub struct ChainMember {
    pub uid: String,
    pub runtime: Box<dyn VertexRuntime>,
}

/// The fused operators of one subtask, head first.
pub struct Chain {
    members: Vec<ChainMember>,
}

fn named(uid: &str, e: OperatorError) -> OperatorError {
    OperatorError {
        message: format!("operator `{uid}`: {}", e.message),
        source: e.source,
    }
}

impl Chain {
    /// A chain of `members`, head first; never empty.
    ///
    /// # Panics
    /// When `members` is empty.
    pub fn new(members: Vec<ChainMember>) -> Self {
        assert!(!members.is_empty(), "a chain has at least one operator");
        Self { members }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The uids, head first.
    pub fn uids(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|m| m.uid.as_str())
    }

    /// Hands `batches`, emitted by member `from`, to the rest of the chain; what the tail emits
    /// ends up in `ready`.
    fn pass_on(
        &mut self,
        from: usize,
        batches: Vec<OutBatch>,
        ready: &mut Vec<OutBatch>,
    ) -> Result<(), OperatorError> {
        let next = from + 1;
        if next == self.members.len() {
            ready.extend(batches);
            return Ok(());
        }
        for b in batches {
            let mut out = Vec::new();
            let m = &mut self.members[next];
            m.runtime
                .process(b.records, &mut out)
                .map_err(|e| named(&m.uid, e))?;
            self.pass_on(next, out, ready)?;
        }
        Ok(())
    }

    /// Restores and opens every member; `restored[i]` is member i's state.
    ///
    /// # Errors
    /// The first member that fails, named.
    pub fn open(&mut self, restored: &[RestoredState]) -> Result<(), OperatorError> {
        let none = RestoredState::default();
        for (i, m) in self.members.iter_mut().enumerate() {
            m.runtime
                .open(restored.get(i).unwrap_or(&none))
                .map_err(|e| named(&m.uid, e))?;
        }
        Ok(())
    }

    /// The head is a source: poll it and pass its records down the chain.
    ///
    /// # Errors
    /// The member that failed, named.
    pub fn poll_source(
        &mut self,
        max: usize,
        ready: &mut Vec<OutBatch>,
    ) -> Result<SourcePoll, OperatorError> {
        let mut out = Vec::new();
        let head = &mut self.members[0];
        let poll = head
            .runtime
            .poll_source(max, &mut out)
            .map_err(|e| named(&head.uid, e))?;
        self.pass_on(0, out, ready)?;
        Ok(poll)
    }

    /// Sources: the head's watermark (or idleness) to emit after the last poll at `now`.
    pub fn source_watermark(&mut self, now: Instant, exhausted: bool) -> Option<WatermarkEvent> {
        self.members
            .first_mut()?
            .runtime
            .source_watermark(now, exhausted)
    }

    /// One input batch through the whole chain.
    ///
    /// # Errors
    /// The member that failed, named.
    pub fn process(
        &mut self,
        batch: Box<dyn Any + Send>,
        ready: &mut Vec<OutBatch>,
    ) -> Result<(), OperatorError> {
        let mut out = Vec::new();
        let head = &mut self.members[0];
        head.runtime
            .process(batch, &mut out)
            .map_err(|e| named(&head.uid, e))?;
        self.pass_on(0, out, ready)
    }

    /// One batch into member `member` (its input), then through the rest of the chain: how
    /// channel state restored for a member that is no longer the head (chaining changed since
    /// the snapshot) is replayed.
    ///
    /// # Errors
    /// The member that failed, named.
    pub fn process_at(
        &mut self,
        member: usize,
        batch: Box<dyn Any + Send>,
        ready: &mut Vec<OutBatch>,
    ) -> Result<(), OperatorError> {
        let Some(m) = self.members.get_mut(member) else {
            return Err(OperatorError::msg(format!(
                "restored input for chain member {member} of a chain of {}",
                self.members.len()
            )));
        };
        let mut out = Vec::new();
        m.runtime
            .process(batch, &mut out)
            .map_err(|e| named(&m.uid, e))?;
        self.pass_on(member, out, ready)
    }

    /// Unaligned checkpoints: the bytes of `batch`, an input of member `member`, as channel
    /// state.
    ///
    /// # Errors
    /// The member that failed, named.
    pub fn encode_input(
        &self,
        member: usize,
        batch: &(dyn Any + Send),
    ) -> Result<Vec<u8>, OperatorError> {
        let m = self
            .members
            .get(member)
            .ok_or_else(|| OperatorError::msg(format!("no chain member {member}")))?;
        m.runtime.encode_input(batch).map_err(|e| named(&m.uid, e))
    }

    /// The channel state restored for each member (`restored[i]`), decoded: `(member, batch)`
    /// in member order, each member's batches in their recorded order.
    ///
    /// # Errors
    /// The member whose channel state could not be read, named.
    pub fn restore_input(
        &self,
        restored: &[RestoredState],
    ) -> Result<Vec<RestoredInput>, OperatorError> {
        let mut out = Vec::new();
        for (i, (m, r)) in self.members.iter().zip(restored).enumerate() {
            let batches = m
                .runtime
                .restore_input(&r.channel)
                .map_err(|e| named(&m.uid, e))?;
            out.extend(batches.into_iter().map(|b| (i, b)));
        }
        Ok(out)
    }

    /// Flushes every member, head first, so each flush reaches the members after it.
    ///
    /// # Errors
    /// A member that failed on the flushed records, named.
    pub fn flush(&mut self, ready: &mut Vec<OutBatch>) -> Result<(), OperatorError> {
        for i in 0..self.members.len() {
            let mut out = Vec::new();
            self.members[i].runtime.flush(&mut out);
            self.pass_on(i, out, ready)?;
        }
        Ok(())
    }

    /// The subtask's watermark advanced to `watermark`: every member, head first, reacts (a
    /// keyed member fires its event-time timers) and flushes, and what it emits is processed by
    /// the rest before they see the watermark — so it never overtakes a record inside the chain.
    ///
    /// # Errors
    /// The member that failed, named.
    pub fn on_watermark(
        &mut self,
        watermark: Watermark,
        ready: &mut Vec<OutBatch>,
    ) -> Result<(), OperatorError> {
        self.each_member(ready, |runtime, out| runtime.on_watermark(watermark, out))
    }

    /// When the earliest processing-time timer of any member is due (milliseconds since the
    /// epoch): when the task must wake up without input.
    pub fn next_processing_timer(&self) -> Option<i64> {
        self.members
            .iter()
            .filter_map(|m| m.runtime.next_processing_timer())
            .min()
    }

    /// The task's clock reached `now_ms`: every member fires its due processing-time timers,
    /// head first; what one emits is processed by the rest.
    ///
    /// # Errors
    /// The member that failed, named.
    pub fn on_processing_time(
        &mut self,
        now_ms: i64,
        ready: &mut Vec<OutBatch>,
    ) -> Result<(), OperatorError> {
        self.each_member(ready, |runtime, out| {
            runtime.on_processing_time(now_ms, out)
        })
    }

    /// Finishes every member, head first: what one emits on finishing is processed (and
    /// finished) by the rest.
    ///
    /// # Errors
    /// The member that failed, named.
    pub fn finish(&mut self, ready: &mut Vec<OutBatch>) -> Result<(), OperatorError> {
        self.each_member(ready, |runtime, out| runtime.finish(out))
    }

    /// Runs `f` on every member, head first; what one emits is processed by the rest.
    fn each_member(
        &mut self,
        ready: &mut Vec<OutBatch>,
        mut f: impl FnMut(&mut dyn VertexRuntime, &mut Vec<OutBatch>) -> Result<(), OperatorError>,
    ) -> Result<(), OperatorError> {
        for i in 0..self.members.len() {
            let mut out = Vec::new();
            let m = &mut self.members[i];
            f(m.runtime.as_mut(), &mut out).map_err(|e| named(&m.uid, e))?;
            self.pass_on(i, out, ready)?;
        }
        Ok(())
    }

    /// Every member's snapshot, in chain order. Call after [`Chain::flush`].
    ///
    /// # Errors
    /// The member that failed, named.
    pub fn snapshot(&mut self, barrier: &Barrier) -> Result<Vec<VertexSnapshot>, OperatorError> {
        self.members
            .iter_mut()
            .map(|m| m.runtime.snapshot(barrier).map_err(|e| named(&m.uid, e)))
            .collect()
    }

    /// Checkpoint `id` is complete: tell every member.
    ///
    /// # Errors
    /// The first member that failed, named.
    pub fn checkpoint_complete(
        &mut self,
        id: CheckpointId,
        kind: CheckpointKind,
    ) -> Result<(), OperatorError> {
        for m in &mut self.members {
            m.runtime
                .checkpoint_complete(id, kind)
                .map_err(|e| named(&m.uid, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::connectors::sequence::SequenceSource;
    use crate::element::Ending;
    use crate::functions::{FilterFn, MapFn};
    use crate::operator::SubtaskInfo;
    use crate::partition::{EdgeKey, OutputEdge, Partitioning};
    use crate::vertex::{operator_factory, source_factory, VertexFactory};

    fn info(uid: &str) -> SubtaskInfo {
        SubtaskInfo {
            uid: uid.into(),
            index: 0,
            parallelism: 1,
            max_parallelism: 128,
            restored: None,
        }
    }

    fn forward() -> OutputEdge {
        OutputEdge {
            partitioning: Partitioning::Forward,
            key: Arc::new(EdgeKey::<u64> { key_group: None }),
            channels: 1,
            downstream_parallelism: 1,
            downstream_max_parallelism: 128,
        }
    }

    fn member(uid: &str, f: VertexFactory, batch_size: usize) -> ChainMember {
        ChainMember {
            uid: uid.into(),
            runtime: f(&info(uid), &[forward()], batch_size).unwrap(),
        }
    }

    fn records(ready: Vec<OutBatch>) -> Vec<u64> {
        ready
            .into_iter()
            .flat_map(|b| *b.records.downcast::<Vec<u64>>().unwrap())
            .collect()
    }

    #[test]
    fn records_pass_through_every_member_in_order() {
        let mut chain = Chain::new(vec![
            member(
                "src",
                source_factory::<u64, _>(SequenceSource::new(0, 10)),
                1,
            ),
            member(
                "double",
                operator_factory::<u64, u64, _>(MapFn(|v: u64| v * 2)),
                1,
            ),
            member(
                "even4",
                operator_factory::<u64, u64, _>(FilterFn(|v: &u64| v.is_multiple_of(4))),
                100,
            ),
        ]);
        chain.open(&[]).unwrap();
        let mut ready = Vec::new();
        assert_eq!(
            chain.poll_source(100, &mut ready).unwrap(),
            SourcePoll::Exhausted
        );
        // The tail batches at its own batch size: nothing leaves before a flush.
        assert!(ready.is_empty());
        chain.flush(&mut ready).unwrap();
        assert_eq!(records(ready), vec![0, 4, 8, 12, 16]);
    }

    #[test]
    fn errors_name_the_member() {
        let mut chain = Chain::new(vec![
            member(
                "double",
                operator_factory::<u64, u64, _>(MapFn(|v: u64| v * 2)),
                1,
            ),
            member(
                "wrong",
                operator_factory::<String, u64, _>(MapFn(|s: String| s.len() as u64)),
                1,
            ),
        ]);
        chain.open(&[]).unwrap();
        let e = chain
            .process(Box::new(vec![1_u64]), &mut Vec::new())
            .unwrap_err();
        assert!(e.message.starts_with("operator `wrong`"), "{}", e.message);
        let snapshots = chain
            .snapshot(&Barrier {
                id: CheckpointId(1),
                timestamp_ms: 0,
                kind: CheckpointKind::PERIODIC,
                ending: Ending::Continue,
            })
            .unwrap();
        assert_eq!(snapshots.len(), 2);
    }
}
