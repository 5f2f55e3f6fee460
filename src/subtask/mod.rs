//! A subtask's decisions besides its input: where it stands in its life, and when its source
//! (if it has one) polls.
//!
//! The runtime's `Task` actor owns one [`SubtaskLifecycle`], an [`crate::gate::InputGate`] for
//! its inputs and, for a source, a [`SourceDriver`]. Each turns events into plain decisions
//! (run the operators' `finish` now, report `Finished`, poll now, wait for credit); the actor
//! executes them. No actors, no clock here.

mod lifecycle;
mod source;

pub use lifecycle::{Awaiting, OperatorsFinish, Phase, SubtaskLifecycle};
pub use source::{AfterPoll, SourceDriver, SourceState};
