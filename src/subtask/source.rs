//! When a source polls its user code.
//!
//! A source subtask polls in steps: one `Poll` message at a time is scheduled (at once, or
//! after the idle time the source asked for); a poll runs only while every output channel has
//! credit, else the driver waits for credit and polls again when it comes back. Once the source
//! reports it is exhausted, nothing is polled any more, but the subtask still answers barrier
//! triggers until the final one, after which it ends its output.
//!
//! ```text
//! Idle --start--> Scheduled --poll, credit--> Polling --Ready/Idle(d)--> Scheduled
//!                     |  ^                       '-----Exhausted------> Exhausted
//!             no credit  '--credit-- WaitingForCredit
//! any --final barrier--> Ended (a Poll still in flight is then ignored)
//! ```

use std::time::Duration;

use crate::gate::OutputCredit;
use crate::operator::SourcePoll;

/// Where a source's polling stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SourceState {
    /// Nothing scheduled: not started yet.
    #[default]
    Idle,
    /// A `Poll` message is on its way.
    Scheduled,
    /// The user code is being polled (or its poll failed the subtask).
    Polling,
    /// A poll found an output channel without credit; the next credit schedules one.
    WaitingForCredit,
    /// The source has no more records; it still answers triggers.
    Exhausted,
    /// The final barrier and end of input were sent: the source's output has ended.
    Ended,
}

/// What to do after a poll of the user code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterPoll {
    /// Schedule the next poll at once.
    PollNow,
    /// Schedule the next poll after this long.
    PollAfter(Duration),
    /// The source is exhausted: flush and report it.
    Exhausted,
}

/// The source's polling state machine. See the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceDriver {
    state: SourceState,
}

impl SourceDriver {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn state(&self) -> SourceState {
        self.state
    }

    /// The source's output has ended (after its final barrier).
    pub fn has_ended_output(&self) -> bool {
        self.state == SourceState::Ended
    }

    /// The job starts the source: true when a poll must be scheduled now.
    pub fn start(&mut self) -> bool {
        self.schedule()
    }

    /// A scheduled `Poll` arrived: true when the user code must be polled now. Without output
    /// credit the driver waits for it instead. A poll after the end (or in any state but
    /// `Scheduled`) is ignored.
    pub fn on_poll(&mut self, output: OutputCredit) -> bool {
        if self.state != SourceState::Scheduled {
            return false;
        }
        match output {
            OutputCredit::Available => {
                self.state = SourceState::Polling;
                true
            }
            OutputCredit::Exhausted => {
                self.state = SourceState::WaitingForCredit;
                false
            }
        }
    }

    /// The user code answered a poll.
    pub fn on_polled(&mut self, poll: SourcePoll) -> AfterPoll {
        match poll {
            SourcePoll::Ready => {
                self.state = SourceState::Scheduled;
                AfterPoll::PollNow
            }
            SourcePoll::Idle(d) => {
                self.state = SourceState::Scheduled;
                AfterPoll::PollAfter(d)
            }
            SourcePoll::Exhausted => {
                self.state = SourceState::Exhausted;
                AfterPoll::Exhausted
            }
        }
    }

    /// Output credit came back: true when a poll must be scheduled now.
    pub fn on_credit(&mut self, output: OutputCredit) -> bool {
        self.state == SourceState::WaitingForCredit
            && output == OutputCredit::Available
            && self.schedule()
    }

    /// The final barrier and end of input were sent.
    pub fn end_output(&mut self) {
        self.state = SourceState::Ended;
    }

    fn schedule(&mut self) -> bool {
        match self.state {
            SourceState::Idle | SourceState::WaitingForCredit => {
                self.state = SourceState::Scheduled;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AVAILABLE: OutputCredit = OutputCredit::Available;
    const EXHAUSTED: OutputCredit = OutputCredit::Exhausted;

    #[test]
    fn polls_while_ready_and_reschedules_idle_sources_later() {
        let mut s = SourceDriver::new();
        assert!(s.start());
        assert!(!s.start(), "one poll in flight at a time");
        assert!(s.on_poll(AVAILABLE));
        assert_eq!(s.state(), SourceState::Polling);
        assert_eq!(s.on_polled(SourcePoll::Ready), AfterPoll::PollNow);
        assert!(s.on_poll(AVAILABLE));
        let d = Duration::from_millis(5);
        assert_eq!(s.on_polled(SourcePoll::Idle(d)), AfterPoll::PollAfter(d));
        assert_eq!(s.state(), SourceState::Scheduled);
    }

    #[test]
    fn without_output_credit_waits_and_resumes_on_credit() {
        let mut s = SourceDriver::new();
        s.start();
        assert!(!s.on_poll(EXHAUSTED));
        assert_eq!(s.state(), SourceState::WaitingForCredit);
        assert!(!s.on_credit(EXHAUSTED), "still some channel without credit");
        assert!(s.on_credit(AVAILABLE));
        assert!(!s.on_credit(AVAILABLE), "scheduled once");
        assert!(s.on_poll(AVAILABLE));
    }

    #[test]
    fn credit_does_not_schedule_a_running_or_exhausted_source() {
        let mut s = SourceDriver::new();
        assert!(!s.on_credit(AVAILABLE));
        s.start();
        assert!(!s.on_credit(AVAILABLE));
        s.on_poll(AVAILABLE);
        assert_eq!(s.on_polled(SourcePoll::Exhausted), AfterPoll::Exhausted);
        assert!(!s.on_credit(AVAILABLE));
        assert!(!s.on_poll(AVAILABLE));
        assert!(!s.has_ended_output());
    }

    #[test]
    fn a_poll_in_flight_after_the_end_is_ignored() {
        let mut s = SourceDriver::new();
        s.start();
        s.end_output();
        assert!(s.has_ended_output());
        assert!(!s.on_poll(AVAILABLE));
        assert!(!s.on_credit(AVAILABLE));
        assert!(!s.start());
        assert_eq!(s.state(), SourceState::Ended);
    }
}
