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
//! `do_send` on its channel and counts one credit per batch. A barrier, and a watermark when
//! the gate says the subtask's input watermark advanced, is sent on every output channel (every
//! partitioner broadcasts them) after everything before it has been flushed.
//!
//! Unaligned checkpoints: the gate must see a barrier while the batches it overtakes are still
//! queued, so in [`AlignmentMode::Unaligned`] a `Deliver` only queues its element (and takes
//! the decisions it causes at once: an unaligned snapshot the moment its barrier arrives) and
//! batches are processed in steps of at most half a millisecond (at least one batch), each of
//! which first yields the arbiter's thread ([`Task::schedule_drain`]): the other subtasks of
//! the thread run (a source on it can inject a barrier), and actix polls the whole mailbox
//! before the next step, so a barrier reaches the gate after at most one step, however long
//! the queue. The overtaken batches are copied (encoded) when the snapshot
//! is taken and as they arrive, never waited for. A checkpoint whose alignment has a timeout gets a timer at
//! the gate's deadline. Channel state restored from a checkpoint is queued in the gate before
//! any input ([`RestoredBatch`]).
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
use weir::failure::FailureCause;
use weir::gate::{
    AlignmentMode, ChannelElement, CreditReturn, GateAction, InputGate, OutputCredit,
    RESTORED_CHANNEL,
};
use weir::ids::{JobId, TaskId};
use weir::operator::SubtaskInfo;
use weir::partition::OutBatch;
use weir::state::timers::processing_time_now;
use weir::subtask::{OperatorsFinish, Phase, SourceDriver, SubtaskLifecycle};
use weir::time::{WatermarkEvent, WatermarkPacer};
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
    /// How barriers are handled at the input: the job's checkpointing mode, unaligned or not.
    pub alignment: AlignmentMode,
    pub credits: u32,
    pub batch_size: usize,
    pub buffer_timeout: Duration,
    /// `pipeline.auto-watermark-interval`: sources only.
    pub watermark_interval: Duration,
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

/// A batch of restored channel state, with the chain member whose input it was (not the head
/// when chaining changed since the snapshot). Only batches of [`RESTORED_CHANNEL`] are these.
pub(super) struct RestoredBatch {
    pub(super) member: usize,
    pub(super) records: Records,
}

/// Unaligned mode: a drain step processes batches for at most this long (at least one) before
/// it yields the thread and the mailbox is polled again: a barrier waits at most this plus one
/// batch, and a fast pipeline yields once per many batches, not per batch.
const UNALIGNED_STEP: Duration = Duration::from_micros(500);

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
    /// An unaligned snapshot waiting for its channel state.
    unaligned: Option<snapshot::PendingUnaligned>,
    /// Unaligned mode: a drain step is scheduled.
    drain_scheduled: bool,
    /// The gate's deadline a timer is set for.
    timer_at: Option<Instant>,
    /// The earliest processing-time timer of the chain a wake-up is set for (ms since epoch).
    wakeup_at: Option<i64>,
    /// Sources: when to ask the chain for its watermark.
    watermarks: WatermarkPacer,
}

impl Task {
    pub fn new(setup: TaskSetup) -> Self {
        let credits = vec![i64::from(setup.credits); setup.outputs.len()];
        let setup_interval = setup.watermark_interval;
        let gate = InputGate::new(setup.alignment, setup.num_inputs, setup.credits);
        let source = setup.is_source.then(SourceDriver::new);
        Self {
            setup,
            lifecycle: SubtaskLifecycle::new(),
            credits,
            upstream: Vec::new(),
            gate,
            source,
            ready: Vec::new(),
            unaligned: None,
            drain_scheduled: false,
            timer_at: None,
            wakeup_at: None,
            watermarks: WatermarkPacer::new(setup_interval),
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

    /// Runs what the gate hands out: inline (aligned modes), or in steps (unaligned); then
    /// sets a timer for the gate's deadline, if it has one.
    fn work(&mut self, ctx: &mut Context<Self>) {
        if self.setup.alignment.is_unaligned() {
            self.schedule_drain(ctx);
        } else {
            self.drain(None);
        }
        self.set_timer(ctx);
        self.set_wakeup(ctx);
    }

    /// A wake-up for the chain's earliest processing-time timer, unless one is set for it or
    /// earlier already. Timers fire while the subtask runs: not after its operators finished,
    /// nor after a stop-with-savepoint kept their state in the savepoint.
    fn set_wakeup(&mut self, ctx: &mut Context<Self>) {
        if !self.timers_may_fire() {
            return;
        }
        let Some(due) = self.setup.chain.next_processing_timer() else {
            return;
        };
        if self.wakeup_at.is_some_and(|at| at <= due) {
            return;
        }
        self.wakeup_at = Some(due);
        let wait = u64::try_from(due.saturating_sub(processing_time_now())).unwrap_or(0);
        ctx.run_later(Duration::from_millis(wait), |act, ctx| {
            act.wakeup_at = None;
            if act.timers_may_fire() {
                let now = processing_time_now();
                act.guard(|chain, ready| chain.on_processing_time(now, ready));
                act.send_ready();
            }
            act.work(ctx);
        });
    }

    fn timers_may_fire(&self) -> bool {
        self.lifecycle.phase() == Phase::Running
            && self.lifecycle.operators_finish() == OperatorsFinish::Due
    }

    /// Unaligned mode: the next drain step, after yielding the arbiter's thread once (a
    /// `notify` would run before any other actor of the thread: actix keeps polling an actor
    /// while it has work).
    fn schedule_drain(&mut self, ctx: &mut Context<Self>) {
        if self.drain_scheduled {
            return;
        }
        self.drain_scheduled = true;
        ctx.spawn(
            actix::fut::wrap_future::<_, Self>(tokio::task::yield_now()).map(|_, act, ctx| {
                act.drain_scheduled = false;
                if act.drain(Some(Instant::now() + UNALIGNED_STEP)) {
                    act.schedule_drain(ctx);
                }
                act.set_timer(ctx);
            }),
        );
    }

    /// A timer for the gate's deadline (an alignment that switches to unaligned then).
    fn set_timer(&mut self, ctx: &mut Context<Self>) {
        let Some(deadline) = self.gate.deadline() else {
            return;
        };
        if self.timer_at == Some(deadline) {
            return;
        }
        self.timer_at = Some(deadline);
        let wait = deadline.saturating_duration_since(Instant::now());
        ctx.run_later(wait, |act, ctx| {
            act.timer_at = None;
            act.work(ctx);
        });
    }

    /// Executes what the gate hands out until it has nothing more, the subtask failed, or (with
    /// `until`) a batch was processed at or after `until`; true if it stopped for the time.
    /// Everything decided while handling one message shares one `now` (one clock read per
    /// message; with `until`, one more per batch).
    fn drain(&mut self, until: Option<Instant>) -> bool {
        let now = Instant::now();
        while self.lifecycle.is_live() {
            let output = self.output_credit();
            let Some(action) = self.gate.next(now, output) else {
                break;
            };
            if self.act(action) && until.is_some_and(|u| Instant::now() >= u) {
                return true;
            }
        }
        false
    }

    /// Unaligned mode, right after an arrival: executes the gate's decisions (an unaligned
    /// snapshot is taken the moment its first barrier arrives), no batch.
    fn decide(&mut self) {
        while self.lifecycle.is_live() {
            let Some(action) = self.gate.next_decision() else {
                break;
            };
            self.act(action);
        }
    }

    /// Executes one action of the gate; true if it processed a batch.
    fn act(&mut self, action: GateAction<Records>) -> bool {
        match action {
            GateAction::Process {
                channel,
                batch,
                credit,
            } => {
                let busy = Instant::now();
                if channel == RESTORED_CHANNEL {
                    self.process_restored(batch);
                } else {
                    self.guard(|chain, ready| chain.process(batch, ready));
                }
                self.setup.metrics.busy_since(busy);
                self.send_ready();
                if let Some(credit) = credit {
                    self.return_credit(credit);
                }
                return true;
            }
            GateAction::Snapshot {
                barrier,
                alignment,
                unaligned: false,
            } => self.checkpoint(barrier, alignment),
            GateAction::Snapshot {
                barrier,
                alignment,
                unaligned: true,
            } => self.checkpoint_unaligned(barrier, alignment),
            GateAction::ChannelStateDone { id } => self.channel_state_done(id),
            GateAction::Decline { id, reason } => {
                debug!(
                    job_id = %self.setup.job_id,
                    uid = %self.setup.info.uid,
                    subtask = self.setup.info.index,
                    checkpoint_id = id.0,
                    %reason,
                    "alignment abandoned"
                );
                self.drop_unaligned(id);
                self.report(TaskEventKind::Decline {
                    id,
                    reason: reason.to_string(),
                });
            }
            GateAction::Watermark(event) => self.emit_watermark(event),
            GateAction::InputsEnded => self.end_inputs(),
        }
        false
    }

    /// The subtask's watermark advanced (or it went idle): the chain reacts to it (and flushes),
    /// then it goes out on every output channel after everything emitted before it, so it never
    /// overtakes those records.
    pub(super) fn emit_watermark(&mut self, event: WatermarkEvent) {
        if let WatermarkEvent::Advance(w) = event {
            self.guard(|chain, ready| chain.on_watermark(w, ready));
            self.setup.metrics.watermark(w);
        }
        self.flush();
        if !self.lifecycle.is_live() {
            return;
        }
        self.broadcast(|| Payload::Watermark(event));
    }

    /// A batch of restored channel state, into the chain member it was the input of.
    fn process_restored(&mut self, batch: Records) {
        let RestoredBatch { member, records } = match batch.downcast::<RestoredBatch>() {
            Ok(b) => *b,
            Err(_) => {
                self.fail(
                    "a restored batch of an unknown kind (wiring bug)".into(),
                    FailureCause::Recoverable,
                );
                return;
            }
        };
        self.guard(|chain, ready| chain.process_at(member, records, ready));
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
        // In-flight input of an unaligned checkpoint goes first, before any new input.
        if let Some(batches) = self.guard(|chain, _| chain.restore_input(&restored)) {
            if !batches.is_empty() {
                debug!(
                    job_id = %self.setup.job_id,
                    uid = %self.setup.info.uid,
                    subtask = self.setup.info.index,
                    batches = batches.len(),
                    "replaying restored channel state"
                );
            }
            self.gate.restore(
                batches.into_iter().map(|(member, records)| {
                    Box::new(RestoredBatch { member, records }) as Records
                }),
            );
        }
        let timeout = self.setup.buffer_timeout;
        ctx.run_interval(timeout, |act, _| act.flush());
    }
}

impl Handler<Init> for Task {
    type Result = ();
    fn handle(&mut self, msg: Init, ctx: &mut Self::Context) {
        self.upstream = msg.upstream;
        self.work(ctx);
    }
}

impl Handler<Deliver> for Task {
    type Result = ();
    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        let channel = msg.channel as usize;
        let element = match msg.payload {
            Payload::Batch { records, len } => {
                self.setup.metrics.received(len);
                // Unaligned: a batch that arrives before its channel's barrier, after the
                // snapshot, is channel state: copied now, processed later as usual.
                if let Some(id) = self.gate.recording(channel) {
                    self.record(id, 0, records.as_ref());
                }
                ChannelElement::Batch(records)
            }
            Payload::Barrier(barrier) => ChannelElement::Barrier(barrier),
            Payload::Watermark(event) => ChannelElement::Watermark(event),
            Payload::EndOfInput => ChannelElement::EndOfInput,
        };
        match self.gate.receive(channel, element) {
            Ok(()) => {
                if self.setup.alignment.is_unaligned() {
                    self.decide();
                }
                self.work(ctx)
            }
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
            None => self.work(ctx),
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
    fn handle(&mut self, msg: CheckpointAborted, ctx: &mut Self::Context) {
        self.gate.abort(msg.id, Instant::now());
        self.drop_unaligned(msg.id);
        self.work(ctx);
    }
}

impl Handler<Shutdown> for Task {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        self.lifecycle.shut_down();
        ctx.stop();
    }
}
