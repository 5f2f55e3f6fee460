//! `Task`: the actor that runs one subtask of one vertex.
//!
//! Inputs: every upstream sender is one input channel. Arriving elements go to `pending` in
//! arrival order. The drain loop takes them from the front: a batch is processed only while
//! every output channel has credit (else the loop waits for a [`Credit`]), a barrier goes to the
//! [`BarrierAligner`], end of input too. Elements of a channel the aligner blocks are moved to
//! that channel's `blocked` queue, unprocessed and without returning credit, so their sender
//! stalls after W batches; when the alignment completes or is abandoned they go back to the front
//! of `pending`, merged in arrival order.
//!
//! Outputs: the vertex's output writer hands out full batches; the task sends each with
//! `do_send` on its channel and counts one credit per batch. A barrier is sent on every output
//! channel after everything before it has been flushed.
//!
//! Checkpoints: the synchronous part (flush, serialise state, forward the barrier) runs in the
//! handler; the upload runs on the process's checkpoint I/O runtime ([`crate::io`]) while records
//! keep flowing, and ends with an acknowledgement (or a decline) to the job manager.
//!
//! User code runs under `catch_unwind`: an error or a panic fails the subtask (reported to the
//! job manager), never the arbiter thread.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use actix::prelude::*;
use tracing::{debug, warn};
use weir::chain::Chain;
use weir::checkpoint::aligner::{AbandonReason, AlignerOutput, BarrierAligner};
use weir::checkpoint::paths::{state_hint, StatePart};
use weir::checkpoint::storage::CheckpointStorage;
use weir::checkpoint::CheckpointingMode;
use weir::element::{Barrier, CheckpointKind};
use weir::ids::{CheckpointId, JobId, TaskId};
use weir::operator::{OperatorError, SourcePoll, SubtaskInfo};
use weir::partition::OutBatch;
use weir::vertex::{RestoredState, VertexSnapshot};

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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lifecycle {
    Running,
    Failed,
}

#[derive(Default)]
struct SourceDriver {
    poll_scheduled: bool,
    waiting_for_credit: bool,
    exhausted: bool,
    end_of_input_sent: bool,
}

pub struct Task {
    setup: TaskSetup,
    lifecycle: Lifecycle,
    credits: Vec<i64>,
    upstream: Vec<(Recipient<Credit>, u32)>,
    /// Processed batches per input channel whose credit has not been returned yet.
    owed: Vec<u32>,
    aligner: BarrierAligner,
    /// At-least-once jobs only: savepoints are always aligned (Flink's rule), so their
    /// barriers go to an exactly-once aligner of their own.
    savepoint_aligner: Option<BarrierAligner>,
    pending: VecDeque<(u32, u64, Payload)>,
    blocked: Vec<VecDeque<(u64, Payload)>>,
    seq: u64,
    inputs_ended: bool,
    /// The user code's `finish` has run (at a draining barrier or at end of input).
    user_finished: bool,
    /// A stop-with-savepoint without drain was snapshotted: held data stays in the savepoint,
    /// so `finish` must not run at the end of input that follows.
    stopped_without_drain: bool,
    last_committed: bool,
    finished_reported: bool,
    alignment_started: Option<(CheckpointId, Instant)>,
    source: Option<SourceDriver>,
    ready: Vec<OutBatch>,
}

impl Task {
    pub fn new(setup: TaskSetup) -> Self {
        let credits = vec![i64::from(setup.credits); setup.outputs.len()];
        let aligner = BarrierAligner::new(setup.mode, setup.num_inputs);
        let savepoint_aligner = (setup.mode == CheckpointingMode::AtLeastOnce)
            .then(|| BarrierAligner::new(CheckpointingMode::ExactlyOnce, setup.num_inputs));
        let blocked = (0..setup.num_inputs).map(|_| VecDeque::new()).collect();
        let owed = vec![0; setup.num_inputs];
        let source = setup.is_source.then(SourceDriver::default);
        Self {
            setup,
            lifecycle: Lifecycle::Running,
            credits,
            upstream: Vec::new(),
            owed,
            aligner,
            savepoint_aligner,
            pending: VecDeque::new(),
            blocked,
            seq: 0,
            inputs_ended: false,
            user_finished: false,
            stopped_without_drain: false,
            last_committed: false,
            finished_reported: false,
            alignment_started: None,
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

    fn fail(&mut self, error: String) {
        if self.lifecycle == Lifecycle::Failed {
            return;
        }
        warn!(
            job_id = %self.setup.job_id,
            uid = %self.setup.info.uid,
            subtask = self.setup.info.index,
            error = %error,
            "subtask failed"
        );
        self.lifecycle = Lifecycle::Failed;
        self.report(TaskEventKind::Failed {
            error: format!(
                "operator `{}` subtask {}: {}",
                self.setup.info.uid, self.setup.info.index, error
            ),
        });
    }

    /// Runs user code; an error or a panic fails the subtask and yields `None`.
    fn guard<R>(
        &mut self,
        f: impl FnOnce(&mut Chain, &mut Vec<OutBatch>) -> Result<R, OperatorError>,
    ) -> Option<R> {
        if self.lifecycle == Lifecycle::Failed {
            return None;
        }
        let chain = &mut self.setup.chain;
        let ready = &mut self.ready;
        match catch_unwind(AssertUnwindSafe(|| f(chain, ready))) {
            Ok(Ok(r)) => Some(r),
            Ok(Err(e)) => {
                let mut msg = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    msg.push_str(&format!(": {s}"));
                    source = s.source();
                }
                self.fail(msg);
                None
            }
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                self.fail(format!("panicked: {msg}"));
                None
            }
        }
    }

    fn send_ready(&mut self) {
        for b in self.ready.drain(..) {
            let out = &self.setup.outputs[b.channel];
            self.credits[b.channel] -= 1;
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

    /// Counts one processed batch of `channel` and returns credits to its sender in groups of
    /// half the window: one message per W/2 batches instead of one per batch. A sender only
    /// stalls with all W batches unreturned, so a group always completes once they are processed.
    fn return_credit(&mut self, channel: usize) {
        let Some(owed) = self.owed.get_mut(channel) else {
            return;
        };
        *owed += 1;
        if *owed >= (self.setup.credits / 2).max(1) {
            if let Some((credit, out_channel)) = self.upstream.get(channel) {
                credit.do_send(Credit {
                    channel: *out_channel,
                    batches: *owed,
                });
            }
            *owed = 0;
        }
    }

    fn is_blocked(&self, channel: usize) -> bool {
        blocked(&self.aligner, &self.savepoint_aligner, channel)
    }

    fn has_output_credit(&self) -> bool {
        self.credits.iter().all(|&c| c > 0)
    }

    fn flush(&mut self) {
        if self.lifecycle == Lifecycle::Failed {
            return;
        }
        self.guard(|v, ready| v.flush(ready));
        self.send_ready();
    }

    fn drain(&mut self, ctx: &mut Context<Self>) {
        while self.lifecycle == Lifecycle::Running {
            let Some((_, _, payload)) = self.pending.front() else {
                break;
            };
            let is_batch = matches!(payload, Payload::Batch { .. });
            if is_batch && !self.has_output_credit() {
                break;
            }
            let (channel, seq, payload) = self.pending.pop_front().expect("front exists");
            if self.is_blocked(channel as usize) {
                self.blocked[channel as usize].push_back((seq, payload));
                continue;
            }
            match payload {
                Payload::Batch { records, .. } => {
                    self.guard(|v, ready| v.process(records, ready));
                    self.send_ready();
                    self.return_credit(channel as usize);
                }
                Payload::Barrier(barrier) => {
                    let aligner = match self.savepoint_aligner.as_mut() {
                        Some(a) if barrier.kind.is_savepoint() => a,
                        _ => &mut self.aligner,
                    };
                    if aligner.pending().is_none() {
                        self.alignment_started = Some((barrier.id, Instant::now()));
                    }
                    let out = aligner.on_barrier(channel as usize, barrier);
                    self.apply(out, ctx);
                }
                Payload::EndOfInput => {
                    if let Some(a) = self.savepoint_aligner.as_mut() {
                        let out = a.on_end_of_input(channel as usize);
                        self.apply(out, ctx);
                    }
                    let out = self.aligner.on_end_of_input(channel as usize);
                    self.apply(out, ctx);
                    if self.aligner.all_ended() && !self.inputs_ended {
                        self.end_inputs();
                    }
                }
            }
        }
    }

    fn apply(&mut self, out: AlignerOutput, ctx: &mut Context<Self>) {
        for (id, reason) in out.abandoned {
            debug!(
                job_id = %self.setup.job_id,
                uid = %self.setup.info.uid,
                subtask = self.setup.info.index,
                checkpoint_id = id.0,
                ?reason,
                "alignment abandoned"
            );
            if reason == AbandonReason::Subsumed {
                self.report(TaskEventKind::Decline {
                    id,
                    reason: "subsumed by a newer barrier before alignment completed".into(),
                });
            }
        }
        if let Some(barrier) = out.complete {
            self.checkpoint(barrier, ctx);
        }
        self.release_unblocked();
    }

    /// Moves the buffered elements of channels that are no longer blocked back to the front of
    /// `pending`, in arrival order.
    fn release_unblocked(&mut self) {
        let mut released: Vec<(u64, u32, Payload)> = Vec::new();
        for (c, queue) in self.blocked.iter_mut().enumerate() {
            if !queue.is_empty() && !blocked(&self.aligner, &self.savepoint_aligner, c) {
                released.extend(queue.drain(..).map(|(seq, p)| (seq, c as u32, p)));
            }
        }
        if released.is_empty() {
            return;
        }
        released.sort_by_key(|(seq, _, _)| *seq);
        for (seq, c, p) in released.into_iter().rev() {
            self.pending.push_front((c, seq, p));
        }
    }

    /// Runs the user code's `finish` once, sending what it emits.
    fn finish_user_code(&mut self) {
        if !self.user_finished {
            self.user_finished = true;
            self.guard(|v, ready| v.finish(ready));
            self.send_ready();
        }
    }

    fn end_inputs(&mut self) {
        self.inputs_ended = true;
        if !self.stopped_without_drain {
            self.finish_user_code();
        }
        self.broadcast(|| Payload::EndOfInput);
        self.maybe_finished();
    }

    fn maybe_finished(&mut self) {
        let ended = match &self.source {
            Some(s) => s.end_of_input_sent,
            None => self.inputs_ended,
        };
        if ended
            && self.last_committed
            && !self.finished_reported
            && self.lifecycle == Lifecycle::Running
        {
            self.finished_reported = true;
            self.report(TaskEventKind::Finished);
        }
    }

    /// The synchronous part of a checkpoint, then the upload in the background.
    fn checkpoint(&mut self, barrier: Barrier, _ctx: &mut Context<Self>) {
        let started = Instant::now();
        let alignment_micros = match self.alignment_started.take() {
            Some((id, at)) if id == barrier.id => at.elapsed().as_micros() as u64,
            _ => 0,
        };
        if barrier.drains() {
            // Everything the operators hold goes out before the last barrier.
            self.finish_user_code();
        } else if matches!(barrier.kind, CheckpointKind::StopWithSavepoint { .. }) {
            self.stopped_without_drain = true;
        }
        self.flush();
        let Some(snapshots) = self.guard(|v, _| v.snapshot(&barrier)) else {
            return;
        };
        self.broadcast(|| Payload::Barrier(barrier));
        let sync_micros = started.elapsed().as_micros() as u64;
        debug!(
            job_id = %self.setup.job_id,
            uid = %self.setup.info.uid,
            subtask = self.setup.info.index,
            checkpoint_id = barrier.id.0,
            sync_micros,
            "snapshot taken"
        );
        let Some(location) = self.setup.locations.get(barrier.id) else {
            self.report(TaskEventKind::Decline {
                id: barrier.id,
                reason: "checkpoint is no longer pending".into(),
            });
            return;
        };
        let storage = self.setup.storage.clone();
        let manager = self.setup.manager.clone();
        let (attempt, task) = (self.setup.attempt, self.setup.task);
        let subtask = self.setup.info.index;
        let members: Vec<(u32, String)> = self
            .setup
            .vertices
            .iter()
            .copied()
            .zip(self.setup.chain.uids().map(str::to_owned))
            .collect();
        crate::io::handle().spawn(async move {
            let result = async {
                let mut operators = Vec::with_capacity(members.len());
                for ((vertex, uid), VertexSnapshot { keyed, operator }) in
                    members.into_iter().zip(snapshots)
                {
                    let keyed = match keyed {
                        Some(blob) => {
                            // Keyed state was captured at the barrier; encode it here, off
                            // the subtask's thread.
                            let bytes = tokio::task::spawn_blocking(move || blob.encode())
                                .await
                                .map_err(|e| format!("encoding keyed state failed: {e}"))?
                                .map_err(|e| format!("encoding keyed state failed: {e}"))?;
                            Some(
                                storage
                                    .write_state(
                                        &location,
                                        &state_hint(&uid, subtask, StatePart::Keyed),
                                        bytes,
                                    )
                                    .await
                                    .map_err(|e| format!("writing state failed: {e}"))?,
                            )
                        }
                        None => None,
                    };
                    let operator = match operator {
                        Some(b) => Some(
                            storage
                                .write_state(
                                    &location,
                                    &state_hint(&uid, subtask, StatePart::Operator),
                                    b,
                                )
                                .await
                                .map_err(|e| format!("writing state failed: {e}"))?,
                        ),
                        None => None,
                    };
                    operators.push(OperatorAck {
                        vertex,
                        keyed,
                        operator,
                    });
                }
                Ok::<_, String>(operators)
            }
            .await;
            let kind = match result {
                Ok(operators) => TaskEventKind::Acknowledge {
                    id: barrier.id,
                    ack: SubtaskAck {
                        operators,
                        sync_micros,
                        alignment_micros,
                    },
                },
                Err(reason) => TaskEventKind::Decline {
                    id: barrier.id,
                    reason,
                },
            };
            manager.do_send(TaskEvent {
                attempt,
                task,
                kind,
            });
        });
    }

    fn schedule_poll(&mut self, ctx: &mut Context<Self>, after: Option<Duration>) {
        let Some(src) = self.source.as_mut() else {
            return;
        };
        if src.poll_scheduled {
            return;
        }
        src.poll_scheduled = true;
        match after {
            None => ctx.notify(Poll),
            Some(d) => {
                ctx.notify_later(Poll, d);
            }
        }
    }
}

fn blocked(aligner: &BarrierAligner, savepoints: &Option<BarrierAligner>, channel: usize) -> bool {
    aligner.is_blocked(channel) || savepoints.as_ref().is_some_and(|a| a.is_blocked(channel))
}

impl Actor for Task {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(0);
        let restored = std::mem::take(&mut self.setup.restored);
        self.guard(|v, _| v.open(&restored));
        let timeout = self.setup.buffer_timeout;
        ctx.run_interval(timeout, |act, _| act.flush());
    }
}

impl Handler<Init> for Task {
    type Result = ();
    fn handle(&mut self, msg: Init, ctx: &mut Self::Context) {
        self.upstream = msg.upstream;
        self.drain(ctx);
    }
}

impl Handler<Start> for Task {
    type Result = ();
    fn handle(&mut self, _: Start, ctx: &mut Self::Context) {
        self.schedule_poll(ctx, None);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Poll;

impl Handler<Poll> for Task {
    type Result = ();
    fn handle(&mut self, _: Poll, ctx: &mut Self::Context) {
        let batch_size = self.setup.batch_size;
        let Some(src) = self.source.as_mut() else {
            return;
        };
        src.poll_scheduled = false;
        if src.exhausted || src.end_of_input_sent || self.lifecycle != Lifecycle::Running {
            return;
        }
        if !self.credits.iter().all(|&c| c > 0) {
            src.waiting_for_credit = true;
            return;
        }
        let poll = self.guard(|v, ready| v.poll_source(batch_size, ready));
        self.send_ready();
        match poll {
            Some(SourcePoll::Ready) => self.schedule_poll(ctx, None),
            Some(SourcePoll::Idle(d)) => self.schedule_poll(ctx, Some(d)),
            Some(SourcePoll::Exhausted) => {
                self.flush();
                if let Some(src) = self.source.as_mut() {
                    src.exhausted = true;
                }
                self.report(TaskEventKind::SourceExhausted);
            }
            None => {}
        }
    }
}

impl Handler<Deliver> for Task {
    type Result = ();
    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        self.seq += 1;
        self.pending.push_back((msg.channel, self.seq, msg.payload));
        self.drain(ctx);
    }
}

impl Handler<Credit> for Task {
    type Result = ();
    fn handle(&mut self, msg: Credit, ctx: &mut Self::Context) {
        if let Some(c) = self.credits.get_mut(msg.channel as usize) {
            *c += i64::from(msg.batches);
        }
        if let Some(src) = self.source.as_mut() {
            if src.waiting_for_credit && self.credits.iter().all(|&c| c > 0) {
                src.waiting_for_credit = false;
                self.schedule_poll(ctx, None);
            }
        } else {
            self.drain(ctx);
        }
    }
}

impl Handler<InjectBarrier> for Task {
    type Result = ();
    fn handle(&mut self, msg: InjectBarrier, ctx: &mut Self::Context) {
        let done = self.source.as_ref().is_none_or(|s| s.end_of_input_sent);
        if done || self.lifecycle != Lifecycle::Running {
            self.report(TaskEventKind::Decline {
                id: msg.barrier.id,
                reason: "source has already ended its output".into(),
            });
            return;
        }
        self.checkpoint(msg.barrier, ctx);
        if msg.barrier.ending.is_final() && self.lifecycle == Lifecycle::Running {
            self.broadcast(|| Payload::EndOfInput);
            if let Some(src) = self.source.as_mut() {
                src.end_of_input_sent = true;
            }
        }
    }
}

impl Handler<CheckpointComplete> for Task {
    type Result = ();
    fn handle(&mut self, msg: CheckpointComplete, _: &mut Self::Context) {
        self.guard(|v, _| v.checkpoint_complete(msg.id, msg.kind));
        if msg.ending.is_final() {
            self.last_committed = true;
            self.maybe_finished();
        }
    }
}

impl Handler<CheckpointAborted> for Task {
    type Result = ();
    fn handle(&mut self, msg: CheckpointAborted, ctx: &mut Self::Context) {
        if let Some(a) = self.savepoint_aligner.as_mut() {
            let out = a.on_abort(msg.id);
            self.apply(out, ctx);
        }
        let out = self.aligner.on_abort(msg.id);
        self.apply(out, ctx);
        self.drain(ctx);
    }
}

impl Handler<Shutdown> for Task {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        self.lifecycle = Lifecycle::Failed;
        ctx.stop();
    }
}
