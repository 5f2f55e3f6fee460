//! A source subtask: polling its user code, and barriers injected by the job manager.
//!
//! When to poll is the [`weir::subtask::SourceDriver`]'s decision: one [`Poll`] message at a
//! time, only while every output channel has credit, again when credit returns. A barrier is
//! injected by [`InjectBarrier`]: snapshot, forward; after the final one, end of input on every
//! output channel, and the source's output has ended. A source with a watermark strategy emits
//! its watermark after the batch of a poll when it advanced (flushing that batch first), at most
//! once per `pipeline.auto-watermark-interval` ([`weir::time::WatermarkPacer`]), `Idle` when it
//! produced nothing for the idleness timeout, and the end of event time when exhausted.

use std::time::{Duration, Instant};

use actix::prelude::*;
use weir::operator::SourcePoll;
use weir::subtask::AfterPoll;

use super::Task;
use crate::messages::*;

/// Poll the source's user code once.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Poll;

impl Handler<Start> for Task {
    type Result = ();
    fn handle(&mut self, _: Start, ctx: &mut Self::Context) {
        if self.source.as_mut().is_some_and(|s| s.start()) {
            ctx.notify(Poll);
        }
    }
}

impl Handler<Poll> for Task {
    type Result = ();
    fn handle(&mut self, _: Poll, ctx: &mut Self::Context) {
        let output = self.output_credit();
        let live = self.lifecycle.is_live();
        let Some(source) = self.source.as_mut() else {
            return;
        };
        if !live || !source.on_poll(output) {
            return;
        }
        let batch_size = self.setup.batch_size;
        let busy = std::time::Instant::now();
        let poll = self.guard(|chain, ready| chain.poll_source(batch_size, ready));
        self.setup.metrics.busy_since(busy);
        self.send_ready();
        let Some(poll) = poll else {
            return;
        };
        // After the batch, once per watermark interval: the source's watermark, if it advanced
        // (or it went idle).
        let exhausted = poll == SourcePoll::Exhausted;
        let now = Instant::now();
        if self.watermarks.due(now, exhausted) {
            if let Some(event) = self
                .guard(|chain, _| Ok(chain.source_watermark(now, exhausted)))
                .flatten()
            {
                self.emit_watermark(event);
            }
        }
        let Some(source) = self.source.as_mut() else {
            return;
        };
        match source.on_polled(poll) {
            AfterPoll::PollNow => ctx.notify(Poll),
            AfterPoll::PollAfter(d) => {
                ctx.notify_later(Poll, d);
            }
            AfterPoll::Exhausted => {
                self.flush();
                self.report(TaskEventKind::SourceExhausted);
            }
        }
    }
}

impl Handler<InjectBarrier> for Task {
    type Result = ();
    fn handle(&mut self, msg: InjectBarrier, _: &mut Self::Context) {
        let ended = self.source.as_ref().is_none_or(|s| s.has_ended_output());
        if ended || !self.lifecycle.is_live() {
            self.report(TaskEventKind::Decline {
                id: msg.barrier.id,
                reason: "source has already ended its output".into(),
            });
            return;
        }
        // A source aligns nothing.
        self.checkpoint(msg.barrier, Duration::ZERO);
        if msg.barrier.ending.is_final() && self.lifecycle.is_live() {
            self.broadcast(|| Payload::EndOfInput);
            if let Some(source) = self.source.as_mut() {
                source.end_output();
            }
            self.output_ended();
        }
    }
}
