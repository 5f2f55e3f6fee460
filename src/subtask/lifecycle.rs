//! The lifecycle of one subtask: running, finishing, finished, failed.
//!
//! A subtask finishes when two things have happened, in either order: it ended its output
//! (a subtask with inputs forwarded end of input once all its inputs ended; a source sent it
//! after the final barrier), and the job's final checkpoint was committed. Then it reports
//! `Finished`, once. In between it is [`Phase::Finishing`], awaiting the other one.
//!
//! Separately, the operators' `finish` (flush everything they hold) runs at most once: before
//! the snapshot of a draining final barrier, or at the end of input. A stop-with-savepoint
//! without drain keeps what the operators hold in the savepoint, so `finish` must not run at
//! the end of input that follows ([`OperatorsFinish::Withheld`]).
//!
//! A failure (user code erred or panicked) or a shutdown ends everything: [`Phase::Failed`].

use crate::element::{Barrier, CheckpointKind};

/// Where the subtask stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Processing its input (or producing, for a source).
    #[default]
    Running,
    /// One of the two conditions to finish holds; awaiting the other one.
    Finishing(Awaiting),
    /// `Finished` was reported.
    Finished,
    /// Failed or shut down: nothing runs any more.
    Failed,
}

/// What a finishing subtask waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Awaiting {
    /// The final checkpoint was committed; the subtask's output has not ended yet.
    OutputEnd,
    /// The output ended; the final checkpoint is not committed yet.
    FinalCommit,
}

/// Whether the operators' `finish` has run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OperatorsFinish {
    /// Not yet: it runs at a draining final barrier or at the end of input.
    #[default]
    Due,
    /// It ran.
    Done,
    /// A stop-with-savepoint without drain was snapshotted: what the operators hold stays in
    /// the savepoint, and `finish` does not run at the end of input.
    Withheld,
}

/// The subtask's phase and its operators' finish. See the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubtaskLifecycle {
    phase: Phase,
    finish: OperatorsFinish,
}

impl SubtaskLifecycle {
    /// Running, the operators' finish due.
    pub fn new() -> Self {
        Self::default()
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn operators_finish(&self) -> OperatorsFinish {
        self.finish
    }

    /// Not failed: user code may run.
    #[inline]
    pub fn is_live(&self) -> bool {
        self.phase != Phase::Failed
    }

    /// The snapshot of `barrier` is about to be taken: true when the operators must finish
    /// first (a draining final barrier, and `finish` not run yet). A stop-with-savepoint
    /// without drain withholds `finish` from then on.
    pub fn finish_before_snapshot(&mut self, barrier: &Barrier) -> bool {
        if barrier.drains() {
            // Also after a withheld finish (in practice no barrier follows a stop-with-savepoint:
            // its sources stop).
            let due = self.finish != OperatorsFinish::Done;
            self.finish = OperatorsFinish::Done;
            return due;
        }
        if matches!(barrier.kind, CheckpointKind::StopWithSavepoint { .. })
            && self.finish == OperatorsFinish::Due
        {
            self.finish = OperatorsFinish::Withheld;
        }
        false
    }

    /// Every input ended: true when the operators must finish now (not run yet, not withheld).
    pub fn finish_at_end_of_input(&mut self) -> bool {
        match self.finish {
            OperatorsFinish::Due => {
                self.finish = OperatorsFinish::Done;
                true
            }
            OperatorsFinish::Done | OperatorsFinish::Withheld => false,
        }
    }

    /// The subtask ended its output. True when it must report `Finished` now.
    pub fn output_ended(&mut self) -> bool {
        self.advance(Awaiting::FinalCommit, Awaiting::OutputEnd)
    }

    /// The job's final checkpoint was committed. True when the subtask must report `Finished`
    /// now.
    pub fn final_committed(&mut self) -> bool {
        self.advance(Awaiting::OutputEnd, Awaiting::FinalCommit)
    }

    /// User code failed. True when the failure must be reported (the first time).
    pub fn fail(&mut self) -> bool {
        let first = self.phase != Phase::Failed;
        self.phase = Phase::Failed;
        first
    }

    /// The runtime stops the subtask (failover, cancel, end of job): nothing is reported.
    pub fn shut_down(&mut self) {
        self.phase = Phase::Failed;
    }

    /// One of the two conditions holds: `then` is what is awaited next, `completes` the state
    /// in which this event finishes the subtask.
    fn advance(&mut self, then: Awaiting, completes: Awaiting) -> bool {
        match self.phase {
            Phase::Running => {
                self.phase = Phase::Finishing(then);
                false
            }
            Phase::Finishing(awaiting) if awaiting == completes => {
                self.phase = Phase::Finished;
                true
            }
            Phase::Finishing(_) | Phase::Finished | Phase::Failed => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::element::{Ending, SavepointFormat};
    use crate::ids::CheckpointId;

    fn barrier(kind: CheckpointKind, ending: Ending) -> Barrier {
        Barrier {
            id: CheckpointId(1),
            timestamp_ms: 0,
            kind,
            ending,
        }
    }

    const STOP: CheckpointKind = CheckpointKind::StopWithSavepoint {
        format: SavepointFormat::Canonical,
        drain: false,
    };

    #[test]
    fn finishes_when_output_ended_and_final_commit_in_either_order() {
        let mut l = SubtaskLifecycle::new();
        assert!(!l.output_ended());
        assert_eq!(l.phase(), Phase::Finishing(Awaiting::FinalCommit));
        assert!(!l.output_ended());
        assert!(l.final_committed());
        assert_eq!(l.phase(), Phase::Finished);
        assert!(!l.final_committed());
        assert!(!l.output_ended());

        let mut l = SubtaskLifecycle::new();
        assert!(!l.final_committed());
        assert_eq!(l.phase(), Phase::Finishing(Awaiting::OutputEnd));
        assert!(l.output_ended());
        assert_eq!(l.phase(), Phase::Finished);
    }

    #[test]
    fn a_failed_subtask_never_finishes_and_reports_its_failure_once() {
        let mut l = SubtaskLifecycle::new();
        assert!(!l.final_committed());
        assert!(l.fail());
        assert!(!l.fail());
        assert!(!l.is_live());
        assert!(!l.output_ended());
        assert_eq!(l.phase(), Phase::Failed);

        let mut l = SubtaskLifecycle::new();
        l.shut_down();
        assert!(!l.is_live());
        assert!(!l.fail());
    }

    #[test]
    fn a_failure_after_finishing_is_still_reported() {
        let mut l = SubtaskLifecycle::new();
        l.output_ended();
        assert!(l.final_committed());
        assert!(l.fail());
    }

    #[test]
    fn operators_finish_once_at_a_draining_barrier_or_the_end_of_input() {
        let mut l = SubtaskLifecycle::new();
        let drain = barrier(CheckpointKind::PERIODIC, Ending::Final { drain: true });
        assert!(l.finish_before_snapshot(&drain));
        assert!(!l.finish_before_snapshot(&drain));
        assert!(!l.finish_at_end_of_input());
        assert_eq!(l.operators_finish(), OperatorsFinish::Done);

        let mut l = SubtaskLifecycle::new();
        assert!(!l.finish_before_snapshot(&barrier(CheckpointKind::PERIODIC, Ending::Continue)));
        assert!(l.finish_at_end_of_input());
        assert!(!l.finish_at_end_of_input());
    }

    #[test]
    fn stop_without_drain_withholds_finish_at_the_end_of_input() {
        let mut l = SubtaskLifecycle::new();
        assert!(!l.finish_before_snapshot(&barrier(STOP, Ending::Final { drain: false })));
        assert_eq!(l.operators_finish(), OperatorsFinish::Withheld);
        assert!(!l.finish_at_end_of_input());
        // A draining barrier would still flush (as before the lifecycle was an enum).
        assert!(!l.finish_before_snapshot(&barrier(STOP, Ending::Final { drain: false })));
        assert!(l.finish_before_snapshot(&barrier(
            CheckpointKind::PERIODIC,
            Ending::Final { drain: true }
        )));
    }
}
