//! `JobManager`: the supervisor actor of one job. It wires and waits; the decisions are pure
//! types of `weir`.
//!
//! - [`JobCheckpoints`] decides everything about checkpoints (when to trigger, which requests
//!   are admitted, what `_metadata` holds, when the job ends, what a restart restores); the job
//!   manager feeds it timer ticks and subtask reports and carries out its [`JobAction`]s:
//!   messages to subtasks, storage work, answers to requesters.
//! - [`PhysicalPlan`] says which subtasks exist and how their channels connect;
//!   [`crate::deploy`] turns it into actors (one arbiter per core).
//! - [`RestartTracker`] decides whether and when a failed attempt is replaced by a new one,
//!   deployed from the latest completed checkpoint. Reports of an earlier attempt are ignored.
//!
//! Storage work (writing `_metadata`, deleting what retention or an abort drops) runs as
//! futures on the job manager's context; deletions ([`storage`]) are awaited before the job
//! reports a terminal status, so what a user sees then is what is on disk. How an attempt ends
//! — restart, fallback from damaged state, the terminal status — is in [`failover`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use tokio::sync::watch;
use tracing::{error, info, warn};
use weir::checkpoint::lifecycle::{CompletedCheckpoint, JobAction, JobCheckpoints, Now};
use weir::checkpoint::restore::{plan_restore, read_restored_state};
use weir::checkpoint::stats::CheckpointStats;
use weir::checkpoint::storage::{load_snapshot, CheckpointStorage};
use weir::config::ClaimMode;
use weir::element::CheckpointKind;
use weir::failure::FailureCause;
use weir::graph::JobGraph;
use weir::ids::{CheckpointId, JobId};
use weir::plan::PhysicalPlan;
use weir::restart::RestartTracker;
use weir::status::JobStatus;
use weir::vertex::RestoredState;

mod failover;
mod storage;

use crate::control::{ControlError, Reply};
use crate::deploy::{DeployedTask, Deployment};
use crate::job::{JobState, RestoreSettings};
use crate::locations::LocationRegistry;
use crate::messages::*;

/// How often the coordinator's timer fires.
const TICK: Duration = Duration::from_millis(5);

pub struct JobManager {
    job_id: JobId,
    graph: Arc<JobGraph>,
    plan: PhysicalPlan,
    storage: CheckpointStorage,
    checkpoints: JobCheckpoints<Reply>,
    state: JobState,
    state_tx: watch::Sender<JobState>,
    attempt: u32,
    tasks: Vec<DeployedTask>,
    arbiters: Vec<Arbiter>,
    restore: Option<RestoreSettings>,
    restart: RestartTracker,
    origin: Instant,
    locations: LocationRegistry,
    /// Storage work in flight (deleting subsumed or aborted checkpoints): awaited before the job
    /// reports a terminal status, so what a user sees then is what is on disk.
    background: Vec<tokio::task::JoinHandle<()>>,
    /// Checkpoints whose `_metadata` is being written: a sweep never touches them, even after
    /// the attempt that took them stopped.
    writing_metadata: BTreeSet<CheckpointId>,
}

impl JobManager {
    pub(crate) fn new(
        job_id: JobId,
        graph: JobGraph,
        storage: CheckpointStorage,
        restore: Option<RestoreSettings>,
        state_tx: watch::Sender<JobState>,
    ) -> Self {
        let origin = Instant::now();
        let now = Now {
            monotonic: Duration::ZERO,
            wall_ms: wall_clock_ms(),
        };
        let checkpoints = JobCheckpoints::new(job_id, &graph, storage.clone(), now);
        let state = state_tx.borrow().clone();
        Self {
            job_id,
            plan: PhysicalPlan::new(&graph),
            restart: RestartTracker::new(graph.config.effective_restart()),
            graph: Arc::new(graph),
            storage,
            checkpoints,
            state,
            state_tx,
            attempt: 0,
            tasks: Vec::new(),
            arbiters: Vec::new(),
            restore,
            origin,
            locations: LocationRegistry::default(),
            background: Vec::new(),
            writing_metadata: BTreeSet::new(),
        }
    }

    pub(crate) fn state(&self) -> JobState {
        self.state.clone()
    }

    pub(crate) fn checkpoint_stats(&self) -> CheckpointStats {
        self.checkpoints.stats()
    }

    pub(crate) fn cancel(&mut self, ctx: &mut Context<Self>) {
        if self.state.status.is_terminal() {
            return;
        }
        self.set_status(JobStatus::Canceling);
        self.terminate(JobStatus::Canceled, None, ctx);
    }

    /// Triggers a savepoint, stop-with-savepoint or manual checkpoint now; the receiver
    /// answers when it completes (a stop: when the job has finished).
    pub(crate) fn request_snapshot(
        &mut self,
        kind: CheckpointKind,
        target_dir: Option<String>,
        ctx: &mut Context<Self>,
    ) -> Result<
        tokio::sync::oneshot::Receiver<Result<CompletedCheckpoint, ControlError>>,
        ControlError,
    > {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let now = self.now();
        let actions = self
            .checkpoints
            .request(kind, target_dir, tx, self.state.status, now)?;
        self.execute(actions, ctx);
        Ok(rx)
    }

    fn now(&self) -> Now {
        Now {
            monotonic: self.origin.elapsed(),
            wall_ms: wall_clock_ms(),
        }
    }

    fn publish(&mut self) {
        let counts = self.checkpoints.counts();
        self.state.completed_checkpoints = counts.completed;
        self.state.failed_checkpoints = counts.failed;
        self.state.latest_completed = self.checkpoints.latest_completed().cloned();
        self.state_tx.send_replace(self.state.clone());
    }

    fn set_status(&mut self, status: JobStatus) {
        if self.state.status != status {
            info!(job_id = %self.job_id, from = %self.state.status, to = %status, "job status");
            self.state.status = status;
        }
        self.publish();
    }

    /// Restores (if asked), then deploys the first attempt.
    fn initialise(&mut self, ctx: &mut Context<Self>) {
        let Some(restore) = self.restore.clone() else {
            self.deploy(ctx);
            return;
        };
        let fut = async move { load_snapshot(&restore.path).await };
        ctx.wait(
            fut.into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok((location, metadata)) => {
                        info!(
                            job_id = %act.job_id,
                            checkpoint_id = metadata.checkpoint_id.0,
                            path = %location.external_path(),
                            "restoring from snapshot"
                        );
                        let claim = act
                            .restore
                            .as_ref()
                            .is_some_and(|r| r.claim_mode == ClaimMode::Claim);
                        let now = act.now();
                        act.checkpoints.restored(location, metadata, claim, now);
                        act.deploy(ctx);
                    }
                    Err(e) if e.is_transient() => {
                        warn!(job_id = %act.job_id, error = %e, "reading the snapshot to restore failed");
                        let reason = format!("cannot restore yet: {e}");
                        act.restart_or_give_up(reason, ctx, Self::initialise)
                    }
                    Err(e) => {
                        act.terminate(JobStatus::Failed, Some(format!("cannot restore: {e}")), ctx)
                    }
                }),
        );
    }

    /// Reads the state this attempt restores from, then creates and starts every subtask.
    fn deploy(&mut self, ctx: &mut Context<Self>) {
        self.attempt += 1;
        let allow = self
            .restore
            .as_ref()
            .is_some_and(|r| r.allow_non_restored_state);
        let source = match self.checkpoints.restore_point() {
            None => None,
            Some(point) => match plan_restore(&point.metadata, &self.graph, allow) {
                Ok(plan) => Some((plan, point.location.clone())),
                Err(e) => return self.terminate(JobStatus::Failed, Some(e.to_string()), ctx),
            },
        };
        let graph = self.graph.clone();
        let fut = async move {
            match source {
                Some((plan, location)) => read_restored_state(&graph, &plan, &location).await,
                None => Ok(graph
                    .vertices
                    .iter()
                    .map(|v| vec![RestoredState::default(); v.parallelism as usize])
                    .collect()),
            }
        };
        ctx.wait(fut.into_actor(self).map(|result, act, ctx| match result {
            Ok(restored) => act.start_tasks(restored, ctx),
            Err(e) => match e.cause() {
                FailureCause::DamagedState => act.on_damaged_state(e.to_string(), ctx),
                FailureCause::Recoverable => {
                    let reason = format!("reading restored state failed: {e}");
                    if act.state.status == JobStatus::Restarting {
                        // A restart's own restore failed (a store unreachable for a moment):
                        // `on_failure` ignores failures while restarting, so go round again
                        // through the restart strategy here.
                        warn!(job_id = %act.job_id, attempt = act.attempt, %reason, "job failure");
                        act.restart_or_give_up(reason, ctx, Self::deploy)
                    } else {
                        act.on_failure(reason, ctx)
                    }
                }
            },
        }));
    }

    fn start_tasks(&mut self, mut restored: Vec<Vec<RestoredState>>, ctx: &mut Context<Self>) {
        if self.arbiters.is_empty() {
            let n = std::thread::available_parallelism().map_or(2, |n| n.get());
            self.arbiters = (0..n).map(|_| Arbiter::new()).collect();
        }
        let deployment = Deployment {
            job_id: self.job_id,
            attempt: self.attempt,
            graph: &self.graph,
            plan: &self.plan,
            storage: &self.storage,
            locations: &self.locations,
            manager: ctx.address().recipient::<TaskEvent>(),
            restored_from: self
                .checkpoints
                .restore_point()
                .map(|p| p.metadata.checkpoint_id),
        };
        let (tasks, inits) = match deployment.start(&self.arbiters, &mut restored) {
            Ok(started) => started,
            Err(e) => return self.terminate(JobStatus::Failed, Some(e), ctx),
        };
        self.tasks = tasks;
        let sources = self.tasks.iter().filter(|t| t.is_source).count();
        let now = self.now();
        self.checkpoints
            .start_attempt(self.plan.task_ids(), sources, now);
        let fut = futures::future::join_all(inits);
        ctx.wait(fut.into_actor(self).map(|results, act, ctx| {
            if results.iter().any(Result::is_err) {
                return act.on_failure("a subtask stopped during deployment".into(), ctx);
            }
            for t in act.tasks.iter().filter(|t| t.is_source) {
                t.addr.do_send(Start);
            }
            act.restart.on_running(act.origin.elapsed());
            act.checkpoints.running();
            act.set_status(JobStatus::Running);
        }));
    }

    fn on_tick(&mut self, ctx: &mut Context<Self>) {
        let now = self.now();
        let actions = self.checkpoints.on_tick(now);
        self.execute(actions, ctx);
    }

    /// Carries out the lifecycle's decisions, in order.
    fn execute(&mut self, actions: Vec<JobAction<Reply>>, ctx: &mut Context<Self>) {
        let mut changed = false;
        let (mut completed, mut subsumed) = (false, Vec::new());
        for action in actions {
            changed = true;
            match action {
                JobAction::InjectBarrier { barrier, location } => {
                    self.locations.insert(barrier.id, location);
                    for t in self.tasks.iter().filter(|t| t.is_source) {
                        t.addr.do_send(InjectBarrier { barrier });
                    }
                }
                JobAction::WriteMetadata {
                    id,
                    location,
                    metadata,
                } => {
                    let storage = self.storage.clone();
                    self.writing_metadata.insert(id);
                    let fut = async move { storage.write_metadata(&location, &metadata).await };
                    // Reported also after the attempt stopped: an aborted checkpoint's files are
                    // deleted only once its `_metadata` write has ended.
                    ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
                        act.writing_metadata.remove(&id);
                        let result = result.map(|_| ()).map_err(|e| {
                            error!(job_id = %act.job_id, checkpoint_id = id.0, error = %e, "writing _metadata failed");
                            e.to_string()
                        });
                        let now = act.now();
                        let actions = act.checkpoints.metadata_written(id, result, now);
                        act.execute(actions, ctx);
                    }));
                }
                JobAction::NotifyComplete { id, kind, ending } => {
                    self.locations.remove(id);
                    for t in &self.tasks {
                        t.addr.do_send(CheckpointComplete { id, kind, ending });
                    }
                    completed = true;
                }
                JobAction::NotifyAborted { id } => {
                    for t in &self.tasks {
                        t.addr.do_send(CheckpointAborted { id });
                    }
                }
                JobAction::DiscardAbortedCommit { id, location } => {
                    self.locations.remove(id);
                    let job_id = self.job_id;
                    self.in_background(async move {
                        if let Err(e) = location.dispose().await {
                            warn!(%job_id, checkpoint_id = id.0, error = %e, "deleting a checkpoint aborted while it was committed failed");
                        }
                    });
                }
                JobAction::DiscardIncomplete { id, location } => {
                    self.locations.remove(id);
                    self.discard_incomplete(location);
                }
                JobAction::DiscardCompleted { ids } => subsumed.extend(ids),
                JobAction::DisposeClaimed { location } => {
                    let job_id = self.job_id;
                    self.in_background(async move {
                        info!(%job_id, path = %location.external_path(), "deleting the claimed snapshot: later checkpoints subsume it");
                        if let Err(e) = location.dispose().await {
                            warn!(%job_id, error = %e, "deleting the claimed snapshot failed");
                        }
                    });
                }
                JobAction::Reply { to, result } => {
                    let _ = to.send(result);
                }
                JobAction::FailJob { reason } => self.on_failure(reason, ctx),
                JobAction::Finished => self.terminate(JobStatus::Finished, None, ctx),
            }
        }
        if completed {
            self.clean_up_after_completion(subsumed);
        }
        if changed {
            self.publish();
        }
    }
}

fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Actor for JobManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(0);
        info!(job_id = %self.job_id, job = %self.graph.name, "job submitted");
        for key in self.graph.config.checkpoint.unimplemented_settings() {
            warn!(job_id = %self.job_id, setting = key, "this setting is not implemented yet and has no effect");
        }
        for key in self.graph.config.checkpoint.ineffective_settings() {
            warn!(job_id = %self.job_id, setting = key, "this setting has no effect here");
        }
        ctx.run_interval(TICK, |act, ctx| act.on_tick(ctx));
        self.initialise(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        for t in self.tasks.drain(..) {
            t.addr.do_send(Shutdown);
        }
        for a in self.arbiters.drain(..) {
            a.stop();
        }
    }
}

impl Handler<TaskEvent> for JobManager {
    type Result = ();

    fn handle(&mut self, msg: TaskEvent, ctx: &mut Self::Context) {
        if msg.attempt != self.attempt || self.state.status.is_terminal() {
            return;
        }
        let now = self.now();
        let actions = match msg.kind {
            TaskEventKind::Acknowledge { id, ack } => {
                self.checkpoints.acknowledge(msg.task, id, ack, now)
            }
            TaskEventKind::Decline { id, reason } => {
                self.checkpoints.decline(msg.task, id, reason, now)
            }
            TaskEventKind::SourceExhausted => self.checkpoints.source_exhausted(msg.task, now),
            TaskEventKind::Finished => self.checkpoints.task_finished(msg.task),
            TaskEventKind::Failed {
                error,
                cause: FailureCause::DamagedState,
            } => return self.on_damaged_state(error, ctx),
            TaskEventKind::Failed { error, .. } => return self.on_failure(error, ctx),
        };
        self.execute(actions, ctx);
    }
}
