//! `JobManager`: the supervisor actor of one job and the driver of its checkpoint coordinator.
//!
//! It deploys the subtask actors (one arbiter per core, subtasks placed round-robin), wires
//! their channels, and starts the sources. A timer asks the pure [`CheckpointCoordinator`] what
//! to do; the job manager carries out its actions: triggering sources, writing `_metadata`
//! (asynchronously, last), notifying subtasks of completion or abort, deleting what retention
//! drops. A subtask failure, or too many failed checkpoints, stops every subtask of the attempt;
//! the restart strategy decides whether and when a new attempt is deployed from the latest
//! completed checkpoint. Reports of an earlier attempt are ignored.
//!
//! A bounded job ends when all sources are exhausted: the job manager triggers a final
//! checkpoint after whose barrier the sources end their output; once it is complete and every
//! subtask has committed and seen the end of all its inputs, the job is FINISHED.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use tokio::sync::watch;
use tracing::{error, info, warn};
use weir::chain::{chains, Chain, ChainMember};
use weir::checkpoint::coordinator::{AbortReason, CheckpointCoordinator, CoordinatorAction};
use weir::checkpoint::metadata::{
    CheckpointMetadata, OperatorSnapshot, StateHandle, SubtaskSnapshot,
};
use weir::checkpoint::restore::plan_restore;
use weir::checkpoint::retention::discard_on_termination;
use weir::checkpoint::stats::{
    CheckpointStats, CheckpointStatsTracker, RestoredCheckpointStats, SubtaskCheckpointStats,
};
use weir::checkpoint::storage::{load_snapshot, CheckpointStorage, SnapshotLocation};
use weir::config::ClaimMode;
use weir::element::{Barrier, CheckpointKind};
use weir::graph::{JobGraph, VertexRole};
use weir::ids::{CheckpointId, JobId, TaskId};
use weir::operator::SubtaskInfo;
use weir::partition::{OutputEdge, Partitioning};
use weir::restart::{RestartDecision, RestartTracker};
use weir::status::JobStatus;
use weir::vertex::RestoredState;

use crate::control::{ControlError, Reply};
use crate::locations::LocationRegistry;
use crate::messages::*;
use crate::task::{OutputChannel, Task, TaskSetup};

/// How often the coordinator's timer fires.
const TICK: Duration = Duration::from_millis(5);

/// Where to restore a job from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreSettings {
    /// A savepoint or retained checkpoint directory, or its `_metadata`.
    pub path: String,
    /// Drop state of operators the job no longer has instead of failing.
    pub allow_non_restored_state: bool,
    /// NO_CLAIM (default): the snapshot stays the user's and is never deleted. CLAIM: the job
    /// owns it and deletes it once later checkpoints have subsumed it.
    pub claim_mode: ClaimMode,
}

impl RestoreSettings {
    /// Restore from `path` with Flink's defaults (NO_CLAIM, non-restored state not allowed).
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            allow_non_restored_state: false,
            claim_mode: ClaimMode::NoClaim,
        }
    }
}

/// The latest completed checkpoint as the outside sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedCheckpoint {
    pub id: CheckpointId,
    /// The snapshot directory (`.../chk-<n>`), usable with `RestoreSettings::path`.
    pub external_path: String,
    pub state_size: u64,
}

/// What a job looks like from outside, published on every change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobState {
    pub job_id: JobId,
    pub status: JobStatus,
    /// Why the job failed (or the last failure that caused a restart).
    pub failure: Option<String>,
    pub restarts: u32,
    pub latest_completed: Option<CompletedCheckpoint>,
    pub completed_checkpoints: u64,
    pub failed_checkpoints: u64,
}

struct Snapshot {
    location: SnapshotLocation,
    metadata: Arc<CheckpointMetadata>,
}

struct TaskEntry {
    id: TaskId,
    addr: Addr<Task>,
    is_source: bool,
}

pub struct JobManager {
    job_id: JobId,
    graph: Arc<JobGraph>,
    storage: CheckpointStorage,
    coordinator: CheckpointCoordinator<SubtaskAck>,
    state: JobState,
    state_tx: watch::Sender<JobState>,
    attempt: u32,
    tasks: Vec<TaskEntry>,
    arbiters: Vec<Arbiter>,
    latest: Option<Snapshot>,
    restore: Option<RestoreSettings>,
    restart: RestartTracker,
    exhausted: HashSet<TaskId>,
    final_id: Option<CheckpointId>,
    finished: HashSet<TaskId>,
    origin: Instant,
    locations: LocationRegistry,
    finalizing: HashMap<CheckpointId, Arc<CheckpointMetadata>>,
    /// Storage work in flight (deleting subsumed or aborted checkpoints): awaited before the job
    /// reports a terminal status, so what a user sees then is what is on disk.
    background: Vec<tokio::task::JoinHandle<()>>,
    /// Savepoint directories chosen when the request came in, by checkpoint id.
    savepoint_locations: HashMap<CheckpointId, SnapshotLocation>,
    /// Requesters waiting for a snapshot to complete (or, for a stop, for the job to end).
    waiters: HashMap<CheckpointId, Reply>,
    /// The completed stop-with-savepoint, answered when the job has finished.
    stopped: Option<(Reply, CompletedCheckpoint)>,
    trigger_times: HashMap<CheckpointId, u64>,
    stats: CheckpointStatsTracker,
    /// The restored snapshot, when restored in CLAIM mode and not yet subsumed.
    claimed: Option<SnapshotLocation>,
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
        let config = &graph.config;
        let strategy = config.effective_restart();
        let coordinator = CheckpointCoordinator::new(
            &config.checkpoint,
            Vec::new(),
            CheckpointId(1),
            Duration::ZERO,
        );
        let state = state_tx.borrow().clone();
        Self {
            job_id,
            graph: Arc::new(graph),
            storage,
            coordinator,
            state,
            state_tx,
            attempt: 0,
            tasks: Vec::new(),
            arbiters: Vec::new(),
            latest: None,
            restore,
            restart: RestartTracker::new(strategy),
            exhausted: HashSet::new(),
            final_id: None,
            finished: HashSet::new(),
            origin,
            locations: LocationRegistry::default(),
            finalizing: HashMap::new(),
            background: Vec::new(),
            savepoint_locations: HashMap::new(),
            waiters: HashMap::new(),
            stopped: None,
            trigger_times: HashMap::new(),
            stats: CheckpointStatsTracker::default(),
            claimed: None,
        }
    }

    pub(crate) fn state(&self) -> JobState {
        self.state.clone()
    }

    pub(crate) fn checkpoint_stats(&self) -> CheckpointStats {
        self.stats.snapshot()
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
        let what = match kind {
            CheckpointKind::Checkpoint { .. } => "checkpoint",
            CheckpointKind::Savepoint { .. } => "savepoint",
            CheckpointKind::StopWithSavepoint { .. } => "stop-with-savepoint",
        };
        if !self.is_running() {
            return Err(ControlError::NotRunning {
                job_id: self.job_id,
                status: self.state.status,
                what,
            });
        }
        if self.final_id.is_some() {
            return Err(ControlError::Stopping {
                job_id: self.job_id,
                what,
            });
        }
        let location = if kind.is_savepoint() {
            let dir = target_dir.or_else(|| self.graph.config.checkpoint.savepoint_dir.clone());
            Some(
                self.storage
                    .savepoint_location(dir.as_deref())
                    .map_err(|e| ControlError::Storage(e.to_string()))?,
            )
        } else {
            None
        };
        let (id, actions) = self.coordinator.trigger_now(kind, self.now());
        if let Some(location) = location {
            self.savepoint_locations.insert(id, location);
        }
        if matches!(kind, CheckpointKind::StopWithSavepoint { .. }) {
            self.final_id = Some(id);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiters.insert(id, tx);
        self.execute(actions, ctx);
        Ok(rx)
    }

    /// Runs storage work in the background, remembered until the job ends.
    fn in_background(&mut self, work: impl std::future::Future<Output = ()> + 'static) {
        self.background.retain(|h| !h.is_finished());
        self.background.push(actix::spawn(work));
    }

    fn discard_incomplete(&mut self, location: SnapshotLocation) {
        let storage = self.storage.clone();
        let job_id = self.job_id;
        self.in_background(async move {
            if let Err(e) = storage.discard_incomplete(&location).await {
                warn!(%job_id, path = %location.external_path(), error = %e, "deleting an aborted checkpoint failed");
            }
        });
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn publish(&mut self) {
        let counts = self.coordinator.counts();
        self.state.completed_checkpoints = counts.completed;
        self.state.failed_checkpoints = counts.failed;
        self.state_tx.send_replace(self.state.clone());
    }

    fn set_status(&mut self, status: JobStatus) {
        if self.state.status != status {
            info!(job_id = %self.job_id, from = %self.state.status, to = %status, "job status");
            self.state.status = status;
        }
        self.publish();
    }

    fn is_running(&self) -> bool {
        self.state.status == JobStatus::Running
    }

    /// Restores (if asked), then deploys the first attempt.
    fn initialise(&mut self, ctx: &mut Context<Self>) {
        let Some(restore) = self.restore.clone() else {
            self.deploy(ctx);
            return;
        };
        let path = restore.path.clone();
        let claim = restore.claim_mode == ClaimMode::Claim;
        let fut = async move { load_snapshot(&path).await };
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
                        let next = metadata.checkpoint_id.next();
                        act.stats.on_restore(RestoredCheckpointStats {
                            id: metadata.checkpoint_id,
                            restore_timestamp_ms: wall_clock_ms(),
                            is_savepoint: metadata.kind.is_savepoint(),
                            external_path: location.external_path(),
                        });
                        act.coordinator = CheckpointCoordinator::new(
                            &act.graph.config.checkpoint,
                            Vec::new(),
                            next,
                            act.now(),
                        );
                        if claim {
                            act.claimed = Some(location.clone());
                        }
                        act.latest = Some(Snapshot {
                            location,
                            metadata: Arc::new(metadata),
                        });
                        act.deploy(ctx);
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
        self.exhausted.clear();
        self.finished.clear();
        self.final_id = None;
        self.finalizing.clear();
        let allow = self
            .restore
            .as_ref()
            .is_some_and(|r| r.allow_non_restored_state);
        let plan = match &self.latest {
            None => None,
            Some(s) => match plan_restore(&s.metadata, &self.graph, allow) {
                Ok(plan) => Some((plan, s.location.clone())),
                Err(e) => {
                    self.terminate(JobStatus::Failed, Some(e.to_string()), ctx);
                    return;
                }
            },
        };
        let graph = self.graph.clone();
        let fut = async move {
            let mut restored: Vec<Vec<RestoredState>> = graph
                .vertices
                .iter()
                .map(|v| vec![RestoredState::default(); v.parallelism as usize])
                .collect();
            let Some((plan, location)) = plan else {
                return Ok(restored);
            };
            let mut cache: HashMap<String, Arc<Vec<u8>>> = HashMap::new();
            for (v, subtasks) in plan.iter().enumerate() {
                for (i, sub) in subtasks.iter().enumerate() {
                    for h in &sub.keyed {
                        let blob = read_cached(&location, h, &mut cache).await?;
                        restored[v][i].keyed.push(blob);
                    }
                    for h in &sub.operator {
                        let blob = match h {
                            Some(h) => read_cached(&location, h, &mut cache).await?,
                            None => empty_operator_state(&graph.vertices[v].uid)?,
                        };
                        restored[v][i].operator.push(blob);
                    }
                }
            }
            Ok::<_, String>(restored)
        };
        ctx.wait(fut.into_actor(self).map(|result, act, ctx| match result {
            Ok(restored) => act.start_tasks(restored, ctx),
            Err(e) => act.on_failure(format!("reading restored state failed: {e}"), ctx),
        }));
    }

    fn start_tasks(&mut self, mut restored: Vec<Vec<RestoredState>>, ctx: &mut Context<Self>) {
        let graph = self.graph.clone();
        let chains = chains(&graph, graph.config.chaining);
        if self.arbiters.is_empty() {
            let n = std::thread::available_parallelism().map_or(2, |n| n.get());
            self.arbiters = (0..n).map(|_| Arbiter::new()).collect();
        }
        let config = &graph.config;
        let mut addrs: Vec<Vec<Option<Addr<Task>>>> = graph
            .vertices
            .iter()
            .map(|v| vec![None; v.parallelism as usize])
            .collect();
        let manager = ctx.address().recipient::<TaskEvent>();
        let mut placed = 0usize;
        let mut entries = Vec::new();
        // Downstream chains first, so every output channel's receiver exists.
        for chain in chains.iter().rev() {
            let (head, tail) = (chain[0], chain[chain.len() - 1]);
            let head_vertex = &graph.vertices[head];
            for i in 0..head_vertex.parallelism {
                let info = |v: usize| {
                    let vertex = &graph.vertices[v];
                    SubtaskInfo {
                        uid: vertex.uid.clone(),
                        index: i,
                        parallelism: vertex.parallelism,
                        max_parallelism: vertex.max_parallelism,
                        restored: self.latest.is_some(),
                    }
                };
                // The tail's edges leave the subtask: one channel per receiving subtask.
                let mut tail_edges = Vec::new();
                let mut outputs = Vec::new();
                for (e, edge) in graph.outputs(tail) {
                    let receivers: Vec<u32> = if edge.partitioning == Partitioning::Forward {
                        vec![i]
                    } else {
                        (0..graph.vertices[edge.to].parallelism).collect()
                    };
                    tail_edges.push(output_edge(&graph, e, receivers.len()));
                    for j in receivers {
                        let target = addrs[edge.to][j as usize]
                            .clone()
                            .expect("downstream started first");
                        outputs.push(OutputChannel {
                            target: target.recipient(),
                            channel: input_channel(&graph, edge.to, j, e, i),
                        });
                    }
                }
                let mut members = Vec::with_capacity(chain.len());
                for (k, &v) in chain.iter().enumerate() {
                    let vertex = &graph.vertices[v];
                    // Inside the chain, a one-channel edge that passes every batch through.
                    let (edges, batch_size) = match chain.get(k + 1) {
                        Some(_) => {
                            let (e, _) = graph.outputs(v).next().expect("a chained edge");
                            (vec![output_edge(&graph, e, 1)], 1)
                        }
                        None => (tail_edges.clone(), config.batch_size),
                    };
                    match (vertex.factory)(&info(v), &edges, batch_size) {
                        Ok(runtime) => members.push(ChainMember {
                            uid: vertex.uid.clone(),
                            runtime,
                        }),
                        Err(e) => {
                            return self.terminate(
                                JobStatus::Failed,
                                Some(format!("operator `{}`: {e}", vertex.uid)),
                                ctx,
                            )
                        }
                    }
                }
                let task = TaskId {
                    vertex: head as u32,
                    subtask: i,
                };
                let is_source = head_vertex.role == VertexRole::Source;
                let setup = TaskSetup {
                    job_id: self.job_id,
                    attempt: self.attempt,
                    task,
                    info: info(head),
                    chain: Chain::new(members),
                    vertices: chain.iter().map(|&v| v as u32).collect(),
                    is_source,
                    outputs,
                    num_inputs: input_channels(&graph, head, i).len(),
                    mode: config.checkpoint.mode,
                    credits: config.channel_credits,
                    batch_size: config.batch_size,
                    buffer_timeout: config.buffer_timeout,
                    storage: self.storage.clone(),
                    locations: self.locations.clone(),
                    restored: chain
                        .iter()
                        .map(|&v| std::mem::take(&mut restored[v][i as usize]))
                        .collect(),
                    manager: manager.clone(),
                };
                let arbiter = self.arbiters[placed % self.arbiters.len()].handle();
                placed += 1;
                let addr = Task::start_in_arbiter(&arbiter, move |_| Task::new(setup));
                for &v in chain {
                    addrs[v][i as usize] = Some(addr.clone());
                }
                entries.push(TaskEntry {
                    id: task,
                    addr,
                    is_source,
                });
            }
        }
        entries.sort_by_key(|t| t.id);
        // Second phase: tell every subtask where to return credits, then start the sources.
        let mut inits = Vec::new();
        for t in &entries {
            let (v, i) = (t.id.vertex as usize, t.id.subtask);
            let upstream = input_channels(&graph, v, i)
                .into_iter()
                .map(|(e, from)| {
                    let edge = &graph.edges[e];
                    let sender = addrs[edge.from][from as usize].clone().expect("started");
                    (
                        sender.recipient::<Credit>(),
                        output_channel(&graph, edge.from, from, e, i),
                    )
                })
                .collect();
            inits.push(t.addr.send(Init { upstream }));
        }
        let ids: Vec<TaskId> = entries.iter().map(|t| t.id).collect();
        self.tasks = entries;
        let now = self.now();
        self.coordinator.reset_tasks(ids, now);
        let fut = futures::future::join_all(inits);
        ctx.wait(fut.into_actor(self).map(|results, act, ctx| {
            if results.iter().any(Result::is_err) {
                return act.on_failure("a subtask stopped during deployment".into(), ctx);
            }
            for t in act.tasks.iter().filter(|t| t.is_source) {
                t.addr.do_send(Start);
            }
            act.restart.on_running(act.now());
            act.set_status(JobStatus::Running);
        }));
    }

    fn on_tick(&mut self, ctx: &mut Context<Self>) {
        if !self.is_running() || self.final_id.is_some() {
            return;
        }
        let actions = self.coordinator.on_tick(self.now());
        self.execute(actions, ctx);
    }

    fn execute(&mut self, actions: Vec<CoordinatorAction<SubtaskAck>>, ctx: &mut Context<Self>) {
        for action in actions {
            match action {
                CoordinatorAction::Trigger { id, kind } => self.trigger(id, kind, ctx),
                CoordinatorAction::Finalize { id, kind, acks } => {
                    self.finalize(id, kind, acks, ctx)
                }
                CoordinatorAction::Abort { id, kind, reason } => self.abort(id, kind, reason, ctx),
                CoordinatorAction::Complete { id, kind } => self.complete(id, kind),
                CoordinatorAction::Discard { ids } => {
                    let storage = self.storage.clone();
                    let job_id = self.job_id;
                    self.in_background(async move {
                        for id in ids {
                            if let Err(e) = storage.discard_checkpoint(id).await {
                                warn!(%job_id, checkpoint_id = id.0, error = %e, "deleting a subsumed checkpoint failed");
                            }
                        }
                    });
                }
                CoordinatorAction::FailJob { reason } => self.on_failure(reason, ctx),
            }
        }
    }

    fn trigger(&mut self, id: CheckpointId, kind: CheckpointKind, _ctx: &mut Context<Self>) {
        let location = self
            .savepoint_locations
            .remove(&id)
            .unwrap_or_else(|| self.storage.checkpoint_location(id));
        self.locations.insert(id, location);
        let end_of_input = self.final_id == Some(id);
        let drain = match kind {
            CheckpointKind::StopWithSavepoint { drain, .. } => drain,
            _ => end_of_input,
        };
        let barrier = Barrier {
            id,
            timestamp_ms: wall_clock_ms(),
            kind,
            drain,
        };
        self.trigger_times.insert(id, barrier.timestamp_ms);
        let operator_subtasks = self
            .graph
            .vertices
            .iter()
            .map(|v| v.parallelism as usize)
            .sum();
        self.stats
            .on_trigger(id, kind, barrier.timestamp_ms, operator_subtasks);
        info!(job_id = %self.job_id, checkpoint_id = id.0, kind = kind.rest_name(), end_of_input, "triggering checkpoint");
        for t in self.tasks.iter().filter(|t| t.is_source) {
            t.addr.do_send(TriggerCheckpoint {
                barrier,
                end_of_input,
            });
        }
    }

    fn finalize(
        &mut self,
        id: CheckpointId,
        kind: CheckpointKind,
        acks: Vec<(TaskId, SubtaskAck)>,
        ctx: &mut Context<Self>,
    ) {
        let Some(location) = self.locations.get(id) else {
            let actions =
                self.coordinator
                    .finalize_failed(id, "location vanished".into(), self.now());
            return self.execute(actions, ctx);
        };
        let mut states: HashMap<(u32, u32), OperatorAck> = HashMap::new();
        for (task, ack) in acks {
            for op in ack.operators {
                states.insert((op.vertex, task.subtask), op);
            }
        }
        let operators = self
            .graph
            .vertices
            .iter()
            .enumerate()
            .map(|(v, vertex)| OperatorSnapshot {
                uid: vertex.uid.clone(),
                name: vertex.name.clone(),
                parallelism: vertex.parallelism,
                max_parallelism: vertex.max_parallelism,
                subtasks: (0..vertex.parallelism)
                    .map(|i| {
                        let op = states.remove(&(v as u32, i));
                        SubtaskSnapshot {
                            index: i,
                            keyed: op.as_ref().and_then(|o| o.keyed.clone()),
                            operator: op.and_then(|o| o.operator),
                        }
                    })
                    .collect(),
            })
            .collect();
        let metadata = Arc::new(CheckpointMetadata {
            job_id: self.job_id,
            checkpoint_id: id,
            kind,
            trigger_timestamp_ms: self.trigger_times.get(&id).copied().unwrap_or(0),
            completion_timestamp_ms: wall_clock_ms(),
            operators,
        });
        self.finalizing.insert(id, metadata.clone());
        let storage = self.storage.clone();
        let attempt = self.attempt;
        let fut = async move { storage.write_metadata(&location, &metadata).await };
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            if act.attempt != attempt {
                return;
            }
            let now = act.now();
            let actions = match result {
                Ok(_) => act.coordinator.finalized(id, now),
                Err(e) => {
                    error!(job_id = %act.job_id, checkpoint_id = id.0, error = %e, "writing _metadata failed");
                    act.coordinator.finalize_failed(id, e.to_string(), now)
                }
            };
            act.execute(actions, ctx);
        }));
    }

    fn abort(
        &mut self,
        id: CheckpointId,
        _kind: CheckpointKind,
        reason: AbortReason,
        ctx: &mut Context<Self>,
    ) {
        warn!(job_id = %self.job_id, checkpoint_id = id.0, %reason, "checkpoint aborted");
        self.finalizing.remove(&id);
        self.trigger_times.remove(&id);
        self.stats
            .on_failure(id, wall_clock_ms(), reason.to_string());
        if let Some(reply) = self.waiters.remove(&id) {
            let _ = reply.send(Err(ControlError::Failed {
                id,
                kind: kind_name(_kind),
                reason: reason.to_string(),
            }));
        }
        for t in &self.tasks {
            t.addr.do_send(CheckpointAborted { id });
        }
        if let Some(location) = self.locations.remove(id) {
            self.discard_incomplete(location);
        }
        self.publish();
        if self.final_id == Some(id) && self.is_running() {
            self.on_failure(format!("the final checkpoint {id} failed: {reason:?}"), ctx);
        }
    }

    fn complete(&mut self, id: CheckpointId, kind: CheckpointKind) {
        let location = self.locations.remove(id);
        let metadata = self.finalizing.remove(&id);
        self.trigger_times.remove(&id);
        if let (Some(location), Some(metadata)) = (location, metadata) {
            info!(job_id = %self.job_id, checkpoint_id = id.0, kind = kind.rest_name(), state_size = metadata.state_size(), path = %location.external_path(), "checkpoint complete");
            let completed = CompletedCheckpoint {
                id,
                external_path: location.external_path(),
                state_size: metadata.state_size(),
            };
            self.stats.on_complete(id, completed.external_path.clone());
            if let Some(reply) = self.waiters.remove(&id) {
                if matches!(kind, CheckpointKind::StopWithSavepoint { .. }) {
                    self.stopped = Some((reply, completed.clone()));
                } else {
                    let _ = reply.send(Ok(completed.clone()));
                }
            }
            if !kind.is_savepoint() {
                self.state.latest_completed = Some(completed);
                self.latest = Some(Snapshot { location, metadata });
                let retained = self.coordinator.retained().ids().len();
                if retained >= self.graph.config.checkpoint.num_retained as usize {
                    if let Some(claimed) = self.claimed.take() {
                        let job_id = self.job_id;
                        self.in_background(async move {
                            info!(%job_id, path = %claimed.external_path(), "deleting the claimed snapshot: later checkpoints subsume it");
                            if let Err(e) = claimed.dispose().await {
                                warn!(%job_id, error = %e, "deleting the claimed snapshot failed");
                            }
                        });
                    }
                }
            }
        }
        let last = self.final_id == Some(id);
        for t in &self.tasks {
            t.addr.do_send(CheckpointComplete { id, kind, last });
        }
        self.publish();
    }

    fn stop_tasks(&mut self) {
        for t in self.tasks.drain(..) {
            t.addr.do_send(Shutdown);
        }
        let now = self.now();
        for action in self.coordinator.abort_all(AbortReason::JobRestarting, now) {
            if let CoordinatorAction::Abort { id, .. } = action {
                self.stats
                    .on_failure(id, wall_clock_ms(), "the job stopped".into());
            }
        }
        let status = self.state.status;
        for (_, reply) in self.waiters.drain() {
            let _ = reply.send(Err(ControlError::JobEnded {
                job_id: self.job_id,
                status,
            }));
        }
        self.savepoint_locations.clear();
        self.trigger_times.clear();
        for (_, location) in self.locations.clear() {
            self.discard_incomplete(location);
        }
        self.finalizing.clear();
    }

    fn on_failure(&mut self, reason: String, ctx: &mut Context<Self>) {
        if self.state.status.is_terminal() || self.state.status == JobStatus::Restarting {
            return;
        }
        warn!(job_id = %self.job_id, attempt = self.attempt, %reason, "job failure");
        self.stop_tasks();
        self.state.failure = Some(reason.clone());
        let jitter = (wall_clock_ms() % 2001) as f64 / 1000.0 - 1.0;
        match self.restart.on_failure(self.now(), jitter) {
            RestartDecision::Restart { delay } => {
                self.state.restarts += 1;
                self.set_status(JobStatus::Restarting);
                ctx.run_later(delay, |act, ctx| {
                    if act.state.status == JobStatus::Restarting {
                        act.deploy(ctx);
                    }
                });
            }
            RestartDecision::GiveUp { reason: why } => {
                self.terminate(JobStatus::Failed, Some(format!("{why}: {reason}")), ctx);
            }
        }
    }

    /// Ends the job in `status`, applying the retention setting to retained checkpoints.
    fn terminate(&mut self, status: JobStatus, failure: Option<String>, ctx: &mut Context<Self>) {
        if self.state.status.is_terminal() {
            return;
        }
        self.stop_tasks();
        for a in self.arbiters.drain(..) {
            a.stop();
        }
        if failure.is_some() {
            self.state.failure = failure;
        }
        let retention = self.graph.config.checkpoint.externalized_retention;
        let discard = if discard_on_termination(retention, status) {
            self.coordinator.retained().ids()
        } else {
            Vec::new()
        };
        let background = std::mem::take(&mut self.background);
        let storage = self.storage.clone();
        let job_id = self.job_id;
        let fut = async move {
            // Deletions already under way finish first: they may touch the same directories.
            futures::future::join_all(background).await;
            for id in discard {
                if let Err(e) = storage.discard_checkpoint(id).await {
                    warn!(%job_id, checkpoint_id = id.0, error = %e, "deleting a checkpoint at job end failed");
                }
            }
        };
        ctx.wait(fut.into_actor(self).map(move |_, act, _| {
            act.set_status(status);
            if let Some((reply, completed)) = act.stopped.take() {
                let _ = reply.send(if status == JobStatus::Finished {
                    Ok(completed)
                } else {
                    Err(ControlError::JobEnded {
                        job_id: act.job_id,
                        status,
                    })
                });
            }
        }));
    }
}

async fn read_cached(
    location: &SnapshotLocation,
    handle: &StateHandle,
    cache: &mut HashMap<String, Arc<Vec<u8>>>,
) -> Result<Arc<Vec<u8>>, String> {
    match handle {
        StateHandle::Inline(bytes) => Ok(Arc::new(bytes.clone())),
        StateHandle::File { path, .. } => {
            if let Some(b) = cache.get(path) {
                return Ok(b.clone());
            }
            let bytes = Arc::new(
                location
                    .read_state(handle)
                    .await
                    .map_err(|e| e.to_string())?,
            );
            cache.insert(path.clone(), bytes.clone());
            Ok(bytes)
        }
    }
}

/// The blob of an empty operator-state store: what an old subtask without operator state
/// contributes when operator state is redistributed.
fn empty_operator_state(uid: &str) -> Result<Arc<Vec<u8>>, String> {
    weir::state::operator_state::OperatorStateStore::for_operator(uid)
        .snapshot()
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// The output edge `e` as its sender's writer sees it, with `channels` channels.
fn output_edge(graph: &JobGraph, e: usize, channels: usize) -> OutputEdge {
    let edge = &graph.edges[e];
    let to = &graph.vertices[edge.to];
    OutputEdge {
        partitioning: edge.partitioning,
        key: edge.key.clone(),
        channels,
        downstream_parallelism: to.parallelism,
        downstream_max_parallelism: to.max_parallelism,
    }
}

/// The input channels of subtask `i` of vertex `v`: (edge index, sending subtask), in channel order.
fn input_channels(graph: &JobGraph, v: usize, i: u32) -> Vec<(usize, u32)> {
    let mut channels = Vec::new();
    for (e, edge) in graph.inputs(v) {
        if edge.partitioning == Partitioning::Forward {
            channels.push((e, i));
        } else {
            channels.extend((0..graph.vertices[edge.from].parallelism).map(|s| (e, s)));
        }
    }
    channels
}

/// Index, at receiver `j` of vertex `to`, of the channel from sender `i` over edge `e`.
fn input_channel(graph: &JobGraph, to: usize, j: u32, e: usize, i: u32) -> u32 {
    input_channels(graph, to, j)
        .iter()
        .position(|&(edge, from)| edge == e && from == i)
        .expect("channel exists") as u32
}

/// Index, at sender `i` of vertex `from`, of the output channel to receiver `j` over edge `e`.
fn output_channel(graph: &JobGraph, from: usize, i: u32, e: usize, j: u32) -> u32 {
    let mut offset = 0;
    for (edge_index, edge) in graph.outputs(from) {
        let forward = edge.partitioning == Partitioning::Forward;
        if edge_index == e {
            return offset + if forward { 0 } else { j };
        }
        offset += if forward {
            1
        } else {
            graph.vertices[edge.to].parallelism
        };
    }
    let _ = i;
    unreachable!("edge {e} is an output of vertex {from}")
}

fn kind_name(kind: CheckpointKind) -> &'static str {
    match kind {
        CheckpointKind::Checkpoint { .. } => "checkpoint",
        CheckpointKind::Savepoint { .. } => "savepoint",
        CheckpointKind::StopWithSavepoint { .. } => "stop-with-savepoint",
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
        match msg.kind {
            TaskEventKind::Acknowledge { id, ack } => {
                // Statistics are per operator subtask, whether or not operators are chained.
                let ack_timestamp_ms = wall_clock_ms();
                for op in &ack.operators {
                    self.stats.on_acknowledge(
                        id,
                        SubtaskCheckpointStats {
                            task: TaskId {
                                vertex: op.vertex,
                                subtask: msg.task.subtask,
                            },
                            ack_timestamp_ms,
                            state_size: op.keyed.as_ref().map_or(0, StateHandle::size)
                                + op.operator.as_ref().map_or(0, StateHandle::size),
                            sync_duration_micros: ack.sync_micros,
                            alignment_duration_micros: ack.alignment_micros,
                        },
                    );
                }
                let actions = self.coordinator.acknowledge(id, msg.task, ack, now);
                self.execute(actions, ctx);
            }
            TaskEventKind::Decline { id, reason } => {
                let actions = self.coordinator.decline(id, msg.task, reason, now);
                self.execute(actions, ctx);
            }
            TaskEventKind::SourceExhausted => {
                self.exhausted.insert(msg.task);
                let sources = self.tasks.iter().filter(|t| t.is_source).count();
                if self.exhausted.len() == sources && self.final_id.is_none() && self.is_running() {
                    let (id, actions) = self
                        .coordinator
                        .trigger_now(CheckpointKind::Checkpoint { full: false }, now);
                    self.final_id = Some(id);
                    self.execute(actions, ctx);
                }
            }
            TaskEventKind::Finished => {
                self.finished.insert(msg.task);
                if self.finished.len() == self.tasks.len() {
                    self.terminate(JobStatus::Finished, None, ctx);
                }
            }
            TaskEventKind::Failed { error } => self.on_failure(error, ctx),
        }
    }
}
