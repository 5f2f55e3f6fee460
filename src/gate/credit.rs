//! Credit-based flow control, both directions, as the gate sees it.
//!
//! Upstream: a sender may have at most W batches (the credit window) unreturned on a channel.
//! The gate counts the batches it hands out for processing and returns credit in groups of
//! half the window ([`CreditReturn`]): one message per W/2 batches instead of one per batch. A
//! sender only stalls with all W batches unreturned; a group is at most W/2, so once those
//! batches are processed a group always completes and the sender resumes. Batches the gate
//! holds for a blocked channel are not counted until they are processed: that is what stalls
//! the sender of a blocked channel.
//!
//! Downstream: a batch is handed out only while every output channel has credit
//! ([`OutputCredit`]); barriers and end of input need none.

/// Whether every output channel of the subtask can take one more batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputCredit {
    /// Every output channel has credit: a batch may be processed.
    Available,
    /// Some output channel has none: batches wait (barriers and end of input do not).
    Exhausted,
}

impl OutputCredit {
    /// `Available` when every one of `credits` is positive (also with no output channels).
    pub fn of(credits: &[i64]) -> Self {
        if credits.iter().all(|&c| c > 0) {
            OutputCredit::Available
        } else {
            OutputCredit::Exhausted
        }
    }
}

/// Return `batches` credits to the sender of input channel `channel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CreditReturn {
    pub channel: usize,
    pub batches: u32,
}

/// The size of a credit group for a window of `window` batches: half of it, at least 1.
pub fn credit_group(window: u32) -> u32 {
    (window / 2).max(1)
}

/// Batches of one channel handed out since its last credit return.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct OwedCredit {
    owed: u32,
}

impl OwedCredit {
    /// Counts one batch handed out; returns the group to send back when it is complete.
    #[inline]
    pub(super) fn count(&mut self, group: u32) -> Option<u32> {
        self.owed += 1;
        if self.owed >= group {
            Some(std::mem::take(&mut self.owed))
        } else {
            None
        }
    }

    /// Batches counted and not returned yet.
    pub(super) fn owed(&self) -> u32 {
        self.owed
    }
}
