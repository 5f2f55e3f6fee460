//! `Task`: the actor that runs one subtask of one vertex, as wiring around `weir`'s pure
//! decisions.
//!
//! Inputs: every upstream sender is one input channel. Each [`Deliver`] goes to the subtask's
//! [`InputGate`], which decides everything about its inputs (arrival order, alignment, held
//! elements of blocked channels, credit groups, end of input); the task then executes what the
//! gate hands out until it has nothing more: process a batch and return the credit the gate
//! names, take a snapshot, decline a subsumed checkpoint, end the input. A returning [`Credit`]
//! and a [`CheckpointAborted`] run the same loop.
//!
//! Outputs: the chain's output writer hands out full batches; the task sends each with
//! `do_send` on its channel and counts one credit per batch. A barrier is sent on every output
//! channel after everything before it has been flushed.
//!
//! The subtask's [`SubtaskLifecycle`] says when the operators' `finish` runs and when to report
//! `Finished`. A source's polling is in [`source`]; checkpoints (the synchronous part in the
//! handler, the upload on the I/O runtime) in [`snapshot`]; user code runs under [`guard`].

mod guard;
mod snapshot;
mod source;

use std::any::Any;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tracing::{debug, warn};
use weir::chain::Chain;
use weir::checkpoint::storage::CheckpointStorage;
use weir::checkpoint::CheckpointingMode;
use weir::failure::FailureCause;
use weir::gate::{
    AlignmentMode, ChannelElement, CreditReturn, GateAction, InputGate, OutputCredit,
};
use weir::ids::{JobId, TaskId};
use weir::operator::SubtaskInfo;
use weir::partition::OutBatch;
use weir::subtask::{SourceDriver, SubtaskLifecycle};
use weir::vertex::RestoredState;

use crate::locations::LocationRegistry;
use crate::messages::*;

/// One output channel: the receiving subtask and the index of the channel there.
#[derive(Clone)]
pub struct OutputChannel {
    pub target: Recipient<Deliver>,
    pub channel: u32,
}

/// Everything a task needs to start.
pub struct TaskSetup {
    pub job_id: JobId,
    pub attempt: u32,
    pub task: TaskId,
    /// The head operator's subtask (named in logs).
    pub info: SubtaskInfo,
    /// The operators this subtask runs, fused, head first.
    pub chain: Chain,
    /// The graph vertex of each chain member.
    pub vertices: Vec<u32>,
    pub is_source: bool,
    pub outputs: Vec<OutputChannel>,
    pub num_inputs: usize,
    pub mode: CheckpointingMode,
    pub credits: u32,
    pub batch_size: usize,
    pub buffer_timeout: Duration,
    pub storage: CheckpointStorage,
    pub locations: LocationRegistry,
    /// Restored state of each chain member.
    pub restored: Vec<RestoredState>,
    pub manager: Recipient<TaskEvent>,
    /// Counted once per batch (records in and out, busy and back-pressured time).
    pub metrics: std::sync::Arc<crate::metrics::SubtaskMetrics>,
}

/// The records of one batch, type-erased: the gate's batch payload.
type Records = Box<dyn Any + Send>;

pub struct Task {
    setup: TaskSetup,
    lifecycle: SubtaskLifecycle,
    /// Per output channel: batches it may still be sent.
    credits: Vec<i64>,
    /// Per input channel: where to return its credits (the sender, and its output channel).
    upstream: Vec<(Recipient<Credit>, u32)>,
    gate: InputGate<Records>,
    /// Sources only.
    source: Option<SourceDriver>,
    /// Output batches the chain emitted and the task has not sent yet.
    ready: Vec<OutBatch>,
}

impl Task {
    pub fn new(setup: TaskSetup) -> Self {
        let credits = vec![i64::from(setup.credits); setup.outputs.len()];
        let mode = AlignmentMode::for_checkpointing(setup.mode);
        let gate = InputGate::new(mode, setup.num_inputs, setup.credits);
        let source = setup.is_source.then(SourceDriver::new);
        Self {
            setup,
            lifecycle: SubtaskLifecycle::new(),
            credits,
            upstream: Vec::new(),
            gate,
            source,
            ready: Vec::new(),
        }
    }

    fn report(&self, kind: TaskEventKind) {
        self.setup.manager.do_send(TaskEvent {
            attempt: self.setup.attempt,
            task: self.setup.task,
            kind,
        });
    }

    /// Fails the subtask and reports it, the first time.
    fn fail(&mut self, error: String, cause: FailureCause) {
        if !self.lifecycle.fail() {
            return;
        }
        warn!(
            job_id = %self.setup.job_id,
            uid = %self.setup.info.uid,
            subtask = self.setup.info.index,
            error = %error,
            "subtask failed"
        );
        self.report(TaskEventKind::Failed {
            error: format!(
                "operator `{}` subtask {}: {}",
                self.setup.info.uid, self.setup.info.index, error
            ),
            cause,
        });
    }

    fn output_credit(&self) -> OutputCredit {
        OutputCredit::of(&self.credits)
    }

    fn send_ready(&mut self) {
        for b in self.ready.drain(..) {
            let out = &self.setup.outputs[b.channel];
            self.credits[b.channel] -= 1;
            self.setup.metrics.sent(b.len);
            if self.credits[b.channel] <= 0 {
                self.setup.metrics.output_blocked();
            }
            out.target.do_send(Deliver {
                channel: out.channel,
                payload: Payload::Batch {
                    records: b.records,
                    len: b.len,
                },
            });
        }
    }

    fn broadcast(&self, make: impl Fn() -> Payload) {
        for out in &self.setup.outputs {
            out.target.do_send(Deliver {
                channel: out.channel,
                payload: make(),
            });
        }
    }

    fn return_credit(&self, credit: CreditReturn) {
        if let Some((sender, channel)) = self.upstream.get(credit.channel) {
            sender.do_send(Credit {
                channel: *channel,
                batches: credit.batches,
            });
        }
    }

    fn flush(&mut self) {
        if !self.lifecycle.is_live() {
            return;
        }
        self.guard(|chain, ready| chain.flush(ready));
        self.send_ready();
    }

    /// Executes what the gate hands out until it has nothing more (or the subtask failed).
    /// Everything decided while handling one message shares one `now` (one clock read per
    /// message, none per step).
    fn drain(&mut self) {
        let now = Instant::now();
        while self.lifecycle.is_live() {
            let output = self.output_credit();
            let Some(action) = self.gate.next(now, output) else {
                break;
            };
            match action {
                GateAction::Process { batch, credit, .. } => {
                    let busy = Instant::now();
                    self.guard(|chain, ready| chain.process(batch, ready));
                    self.setup.metrics.busy_since(busy);
                    self.send_ready();
                    if let Some(credit) = credit {
                        self.return_credit(credit);
                    }
                }
                GateAction::Snapshot { barrier, alignment } => self.checkpoint(barrier, alignment),
                GateAction::Decline { id, reason } => {
                    debug!(
                        job_id = %self.setup.job_id,
                        uid = %self.setup.info.uid,
                        subtask = self.setup.info.index,
                        checkpoint_id = id.0,
                        %reason,
                        "alignment abandoned"
                    );
                    self.report(TaskEventKind::Decline {
                        id,
                        reason: reason.to_string(),
                    });
                }
                GateAction::InputsEnded => self.end_inputs(),
            }
        }
    }

    /// Runs the operators' `finish`, sending what it emits.
    fn finish_operators(&mut self) {
        self.guard(|chain, ready| chain.finish(ready));
        self.send_ready();
    }

    /// Every input ended: finish (unless withheld by a stop-with-savepoint), forward the end.
    fn end_inputs(&mut self) {
        if self.lifecycle.finish_at_end_of_input() {
            self.finish_operators();
        }
        self.broadcast(|| Payload::EndOfInput);
        self.output_ended();
    }

    /// The subtask sent end of input on every output channel.
    fn output_ended(&mut self) {
        if self.lifecycle.output_ended() {
            self.report(TaskEventKind::Finished);
        }
    }
}

impl Actor for Task {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(0);
        let restored = std::mem::take(&mut self.setup.restored);
        self.guard(|chain, _| chain.open(&restored));
        let timeout = self.setup.buffer_timeout;
        ctx.run_interval(timeout, |act, _| act.flush());
    }
}

impl Handler<Init> for Task {
    type Result = ();
    fn handle(&mut self, msg: Init, _: &mut Self::Context) {
        self.upstream = msg.upstream;
        self.drain();
    }
}

impl Handler<Deliver> for Task {
    type Result = ();
    fn handle(&mut self, msg: Deliver, _: &mut Self::Context) {
        let element = match msg.payload {
            Payload::Batch { records, len } => {
                self.setup.metrics.received(len);
                ChannelElement::Batch(records)
            }
            Payload::Barrier(barrier) => ChannelElement::Barrier(barrier),
            Payload::EndOfInput => ChannelElement::EndOfInput,
        };
        match self.gate.receive(msg.channel as usize, element) {
            Ok(()) => self.drain(),
            Err(e) => self.fail(e.to_string(), FailureCause::Recoverable),
        }
    }
}

impl Handler<Credit> for Task {
    type Result = ();
    fn handle(&mut self, msg: Credit, ctx: &mut Self::Context) {
        if let Some(c) = self.credits.get_mut(msg.channel as usize) {
            *c += i64::from(msg.batches);
        }
        let output = self.output_credit();
        if output == OutputCredit::Available {
            self.setup.metrics.output_unblocked();
        }
        match self.source.as_mut() {
            Some(source) => {
                if source.on_credit(output) {
                    ctx.notify(source::Poll);
                }
            }
            None => self.drain(),
        }
    }
}

impl Handler<CheckpointComplete> for Task {
    type Result = ();
    fn handle(&mut self, msg: CheckpointComplete, _: &mut Self::Context) {
        self.guard(|chain, _| chain.checkpoint_complete(msg.id, msg.kind));
        if msg.ending.is_final() && self.lifecycle.final_committed() {
            self.report(TaskEventKind::Finished);
        }
    }
}

impl Handler<CheckpointAborted> for Task {
    type Result = ();
    fn handle(&mut self, msg: CheckpointAborted, _: &mut Self::Context) {
        self.gate.abort(msg.id, Instant::now());
        self.drain();
    }
}

impl Handler<Shutdown> for Task {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        self.lifecycle.shut_down();
        ctx.stop();
    }
}
