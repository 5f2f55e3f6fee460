//! The checkpoint lifecycle of one job: everything the job actor decides about checkpoints,
//! as a pure state machine around the [`CheckpointCoordinator`].
//!
//! The coordinator decides *when* (trigger, complete, abort, retention, failure count).
//! [`JobCheckpoints`] adds what a running job needs around those decisions, with one
//! [`InFlight`] record per triggered checkpoint holding every fact about it until it ends:
//!
//! - where its state goes ([`SnapshotLocation`]: `chk-<n>`, or the savepoint directory chosen
//!   when the request came in), its trigger time, whether it ends the job ([`Ending`]), the
//!   requester waiting for it, and, once every subtask acknowledged, its `_metadata`
//!   ([`assemble_metadata`]);
//! - which requests are admitted ([`JobCheckpoints::request`]: a RUNNING job that is not
//!   already ending);
//! - the job's end: a bounded job takes a final, draining checkpoint once every source is
//!   exhausted; a stop-with-savepoint is the final checkpoint; a failed final checkpoint fails
//!   the job; the job is FINISHED when every subtask reports it finished;
//! - which snapshot a restart restores from, and when CLAIM mode disposes the restored one;
//! - checkpoint statistics (Flink's REST shape) and the one set of [`CheckpointCounts`].
//!
//! Facts go in with the time ([`Now`]: monotonic for decisions, wall clock for timestamps);
//! [`JobAction`]s come out, in the order to carry them out. No I/O, no clock, no actors: the
//! job actor sends messages and runs storage work, then reports back
//! ([`JobCheckpoints::metadata_written`]). `R` is whatever the runtime answers a requester
//! through (a oneshot sender); the lifecycle only keeps it and hands it back in
//! [`JobAction::Reply`].

pub mod request;
mod restore;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::ack::{assemble_metadata, CheckpointFacts, OperatorInfo, SubtaskAck};
use crate::checkpoint::coordinator::{AbortReason, CheckpointCoordinator, CoordinatorAction};
use crate::checkpoint::metadata::CheckpointMetadata;
use crate::checkpoint::stats::{
    CheckpointCounts, CheckpointStats, CheckpointStatsTracker, SubtaskCheckpointStats,
};
use crate::checkpoint::storage::{CheckpointStorage, SnapshotLocation};
use crate::checkpoint::CheckpointConfig;
use crate::element::{Barrier, CheckpointKind, Ending};
use crate::graph::JobGraph;
use crate::ids::{CheckpointId, JobId, TaskId};
use crate::status::JobStatus;

pub use request::{kind_name, CompletedCheckpoint, ControlError};
pub use restore::{Exhausted, Fallback, RestorePoint, RestoreSource, SweepKeep};

/// The time of a fact: monotonic for the coordinator's decisions, wall clock (ms since the
/// Unix epoch) for timestamps that are shown and stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    pub monotonic: Duration,
    pub wall_ms: u64,
}

/// What the job actor must do, in the order returned.
#[derive(Debug)]
pub enum JobAction<R> {
    /// Make `location` known to the subtasks, then send `barrier` to every source subtask.
    InjectBarrier {
        barrier: Barrier,
        location: SnapshotLocation,
    },
    /// Write `metadata` to `location` (last, atomically), then report the outcome through
    /// [`JobCheckpoints::metadata_written`].
    WriteMetadata {
        id: CheckpointId,
        location: SnapshotLocation,
        metadata: Arc<CheckpointMetadata>,
    },
    /// Checkpoint `id` is complete: tell every subtask (two-phase sinks commit). Its location
    /// is no longer pending.
    NotifyComplete {
        id: CheckpointId,
        kind: CheckpointKind,
        ending: Ending,
    },
    /// Checkpoint `id` was aborted: tell every subtask (they drop its alignment).
    NotifyAborted { id: CheckpointId },
    /// Checkpoint `id` will not complete: it is no longer pending; delete its partial files.
    DiscardIncomplete {
        id: CheckpointId,
        location: SnapshotLocation,
    },
    /// Checkpoint `id` was aborted while its `_metadata` was being written, and that write
    /// then succeeded: it looks complete but is not one; delete it, `_metadata` first.
    DiscardAbortedCommit {
        id: CheckpointId,
        location: SnapshotLocation,
    },
    /// Delete these completed checkpoints, oldest first: they fell out of `num-retained`.
    DiscardCompleted { ids: Vec<CheckpointId> },
    /// Delete the snapshot this job was restored from in CLAIM mode: it is subsumed.
    DisposeClaimed { location: SnapshotLocation },
    /// Answer a requester.
    Reply {
        to: R,
        result: Result<CompletedCheckpoint, ControlError>,
    },
    /// Fail the job into its restart strategy.
    FailJob { reason: String },
    /// Every subtask has finished: the job is FINISHED.
    Finished,
}

/// Everything about one triggered checkpoint, from its trigger until it ends.
#[derive(Debug)]
struct InFlight<R> {
    location: SnapshotLocation,
    trigger_timestamp_ms: u64,
    ending: Ending,
    requester: Option<R>,
    /// Assembled once every subtask acknowledged.
    metadata: Option<Arc<CheckpointMetadata>>,
}

/// Where the current execution attempt is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not running: being deployed, restarting, or ended.
    Idle,
    Running,
    /// The final checkpoint (of a bounded job, or a stop-with-savepoint) was triggered.
    Ending {
        final_id: CheckpointId,
    },
}

/// The subtasks of the current attempt and how far they are.
#[derive(Clone, Debug, Default)]
struct Attempt {
    tasks: BTreeSet<TaskId>,
    sources: usize,
    exhausted: BTreeSet<TaskId>,
    finished: BTreeSet<TaskId>,
}

/// The checkpoint lifecycle of one job (see the module docs).
#[derive(Debug)]
pub struct JobCheckpoints<R> {
    job_id: JobId,
    config: CheckpointConfig,
    storage: CheckpointStorage,
    operators: Vec<OperatorInfo>,
    coordinator: CheckpointCoordinator<SubtaskAck>,
    in_flight: BTreeMap<CheckpointId, InFlight<R>>,
    phase: Phase,
    attempt: Attempt,
    latest: Option<RestorePoint>,
    latest_completed: Option<CompletedCheckpoint>,
    /// The restored snapshot, when restored in CLAIM mode and not yet subsumed.
    claimed: Option<SnapshotLocation>,
    /// The completed stop-with-savepoint, answered once the job has ended.
    stopped: Option<(Option<R>, CompletedCheckpoint)>,
    /// Checkpoints aborted while their `_metadata` was being written: deleted once the write
    /// has ended (deleting earlier could leave a `_metadata` naming deleted files).
    aborted_commits: BTreeMap<CheckpointId, SnapshotLocation>,
    stats: CheckpointStatsTracker,
    restored: u64,
}

impl<R> JobCheckpoints<R> {
    /// The lifecycle of `graph`'s job, storing through `storage`, before its first attempt.
    pub fn new(job_id: JobId, graph: &JobGraph, storage: CheckpointStorage, now: Now) -> Self {
        let config = graph.config.checkpoint.clone();
        let coordinator =
            CheckpointCoordinator::new(&config, Vec::new(), CheckpointId(1), now.monotonic);
        let operators = graph
            .vertices
            .iter()
            .map(|v| OperatorInfo {
                uid: v.uid.clone(),
                name: v.name.clone(),
                parallelism: v.parallelism,
                max_parallelism: v.max_parallelism,
            })
            .collect();
        Self {
            job_id,
            config,
            storage,
            operators,
            coordinator,
            in_flight: BTreeMap::new(),
            phase: Phase::Idle,
            attempt: Attempt::default(),
            latest: None,
            latest_completed: None,
            claimed: None,
            stopped: None,
            aborted_commits: BTreeMap::new(),
            stats: CheckpointStatsTracker::default(),
            restored: 0,
        }
    }

    /// A new attempt with these subtasks (`sources` of them are sources) is being deployed:
    /// every checkpoint waits for them from now on; the periodic schedule starts over.
    /// Call [`stop_attempt`](Self::stop_attempt) for the previous attempt first.
    pub fn start_attempt(&mut self, tasks: Vec<TaskId>, sources: usize, now: Now) {
        self.attempt = Attempt {
            tasks: tasks.iter().copied().collect(),
            sources,
            ..Attempt::default()
        };
        self.phase = Phase::Idle;
        self.coordinator.reset_tasks(tasks, now.monotonic);
    }

    /// Every subtask of the attempt is deployed and the job is RUNNING.
    pub fn running(&mut self) {
        if self.phase == Phase::Idle {
            self.phase = Phase::Running;
        }
    }

    /// True while periodic checkpoints may be taken: RUNNING and not ending.
    pub fn is_running(&self) -> bool {
        self.phase == Phase::Running
    }

    /// A timer tick: timeouts and the periodic trigger, while RUNNING and not ending.
    pub fn on_tick(&mut self, now: Now) -> Vec<JobAction<R>> {
        if self.phase != Phase::Running {
            return Vec::new();
        }
        let actions = self.coordinator.on_tick(now.monotonic);
        self.carry_out(actions, now)
    }

    /// A savepoint, stop-with-savepoint or one-off checkpoint requested from outside, answered
    /// through `requester` when it completes (a stop: once the job has ended). `status` is
    /// the job's status now; `target_dir` the savepoint's parent (the configured savepoint
    /// dir when `None`).
    ///
    /// # Errors
    /// [`ControlError::NotRunning`] unless the job is RUNNING, [`ControlError::Stopping`] when
    /// its final checkpoint is already under way, [`ControlError::Storage`] when a savepoint
    /// has no usable directory. Nothing is triggered then.
    pub fn request(
        &mut self,
        kind: CheckpointKind,
        target_dir: Option<String>,
        requester: R,
        status: JobStatus,
        now: Now,
    ) -> Result<Vec<JobAction<R>>, ControlError> {
        let what = kind_name(kind);
        match self.phase {
            Phase::Idle => {
                return Err(ControlError::NotRunning {
                    job_id: self.job_id,
                    status,
                    what,
                })
            }
            Phase::Ending { .. } => {
                return Err(ControlError::Stopping {
                    job_id: self.job_id,
                    what,
                })
            }
            Phase::Running => {}
        }
        let location = if kind.is_savepoint() {
            let dir = target_dir.or_else(|| self.config.savepoint_dir.clone());
            Some(
                self.storage
                    .savepoint_location(dir.as_deref())
                    .map_err(|e| ControlError::Storage(e.to_string()))?,
            )
        } else {
            None
        };
        let id = self.coordinator.next_id();
        if matches!(kind, CheckpointKind::StopWithSavepoint { .. }) {
            self.phase = Phase::Ending { final_id: id };
        }
        self.begin(id, kind, location, Some(requester), now);
        let (triggered, actions) = self.coordinator.trigger_now(kind, now.monotonic);
        debug_assert_eq!(triggered, id);
        Ok(self.carry_out(actions, now))
    }

    /// `task` acknowledged checkpoint `id` with where its state went.
    pub fn acknowledge(
        &mut self,
        task: TaskId,
        id: CheckpointId,
        ack: SubtaskAck,
        now: Now,
    ) -> Vec<JobAction<R>> {
        // Statistics are per operator subtask, whether or not operators are chained.
        for op in &ack.operators {
            self.stats.on_acknowledge(
                id,
                SubtaskCheckpointStats {
                    task: TaskId {
                        vertex: op.vertex,
                        subtask: task.subtask,
                    },
                    ack_timestamp_ms: now.wall_ms,
                    state_size: op.state_size(),
                    sync_duration_micros: ack.sync_micros,
                    alignment_duration_micros: ack.alignment_micros,
                    unaligned: ack.unaligned,
                    persisted_data: op.persisted_data(),
                },
            );
        }
        let actions = self.coordinator.acknowledge(id, task, ack, now.monotonic);
        self.carry_out(actions, now)
    }

    /// `task` could not take checkpoint `id`.
    pub fn decline(
        &mut self,
        task: TaskId,
        id: CheckpointId,
        reason: String,
        now: Now,
    ) -> Vec<JobAction<R>> {
        let actions = self.coordinator.decline(id, task, reason, now.monotonic);
        self.carry_out(actions, now)
    }

    /// Writing `_metadata` of `id` ended: `Ok` makes the checkpoint complete — unless it was
    /// aborted meanwhile (a timeout, a failover), when it is deleted now. Call it for every
    /// write, also after the attempt that started it has stopped.
    pub fn metadata_written(
        &mut self,
        id: CheckpointId,
        result: Result<(), String>,
        now: Now,
    ) -> Vec<JobAction<R>> {
        if let Some(location) = self.aborted_commits.remove(&id) {
            return vec![match result {
                Ok(()) => JobAction::DiscardAbortedCommit { id, location },
                Err(_) => JobAction::DiscardIncomplete { id, location },
            }];
        }
        let actions = match result {
            Ok(()) => self.coordinator.finalized(id, now.monotonic),
            Err(reason) => {
                // The write has ended: its files can go with the abort that follows.
                if let Some(flight) = self.in_flight.get_mut(&id) {
                    flight.metadata = None;
                }
                self.coordinator.finalize_failed(id, reason, now.monotonic)
            }
        };
        self.carry_out(actions, now)
    }

    /// Source subtask `task` has no more records. Once every source is exhausted the job takes
    /// its final checkpoint, which drains the operators and ends the input.
    pub fn source_exhausted(&mut self, task: TaskId, now: Now) -> Vec<JobAction<R>> {
        self.attempt.exhausted.insert(task);
        if self.attempt.exhausted.len() < self.attempt.sources || self.phase != Phase::Running {
            return Vec::new();
        }
        let kind = CheckpointKind::Checkpoint { full: false };
        let id = self.coordinator.next_id();
        self.phase = Phase::Ending { final_id: id };
        self.begin(id, kind, None, None, now);
        let (_, actions) = self.coordinator.trigger_now(kind, now.monotonic);
        self.carry_out(actions, now)
    }

    /// `task` committed the final checkpoint and saw the end of all its inputs.
    pub fn task_finished(&mut self, task: TaskId) -> Vec<JobAction<R>> {
        self.attempt.finished.insert(task);
        if self.attempt.finished.len() == self.attempt.tasks.len() {
            vec![JobAction::Finished]
        } else {
            Vec::new()
        }
    }

    /// The attempt's subtasks are stopped (failover, cancel, end of job): every pending
    /// checkpoint is aborted and its files deleted, and its requester learns that the job
    /// ended in `status`. Subtasks are not notified: they are gone.
    pub fn stop_attempt(&mut self, status: JobStatus, now: Now) -> Vec<JobAction<R>> {
        self.phase = Phase::Idle;
        for action in self
            .coordinator
            .abort_all(AbortReason::JobRestarting, now.monotonic)
        {
            if let CoordinatorAction::Abort { id, .. } = action {
                self.stats
                    .on_failure(id, now.wall_ms, "the job stopped".into());
            }
        }
        let mut actions = Vec::new();
        for (id, mut flight) in std::mem::take(&mut self.in_flight) {
            if let Some(to) = flight.requester.take() {
                actions.push(JobAction::Reply {
                    to,
                    result: Err(ControlError::JobEnded {
                        job_id: self.job_id,
                        status,
                    }),
                });
            }
            self.discard(id, flight, &mut actions);
        }
        actions
    }

    /// Deletes what an aborted checkpoint wrote: now, or once its `_metadata` write has ended.
    fn discard(&mut self, id: CheckpointId, flight: InFlight<R>, actions: &mut Vec<JobAction<R>>) {
        if flight.metadata.is_some() {
            self.aborted_commits.insert(id, flight.location);
        } else {
            actions.push(JobAction::DiscardIncomplete {
                id,
                location: flight.location,
            });
        }
    }

    /// The job ended in `status`: a completed stop-with-savepoint is answered now — with its
    /// savepoint if the job FINISHED.
    pub fn job_ended(&mut self, status: JobStatus) -> Vec<JobAction<R>> {
        let Some((Some(to), completed)) = self.stopped.take() else {
            return Vec::new();
        };
        let result = if status == JobStatus::Finished {
            Ok(completed)
        } else {
            Err(ControlError::JobEnded {
                job_id: self.job_id,
                status,
            })
        };
        vec![JobAction::Reply { to, result }]
    }

    /// The latest completed checkpoint (not savepoint).
    pub fn latest_completed(&self) -> Option<&CompletedCheckpoint> {
        self.latest_completed.as_ref()
    }

    /// Ids of the retained completed checkpoints, oldest first.
    pub fn retained(&self) -> Vec<CheckpointId> {
        self.coordinator.retained().ids()
    }

    /// Flink's `counts`: restored, total, in progress, completed, failed.
    pub fn counts(&self) -> CheckpointCounts {
        CheckpointCounts {
            restored: self.restored,
            ..*self.coordinator.counts()
        }
    }

    /// The checkpoint statistics now (Flink's REST shape).
    pub fn stats(&self) -> CheckpointStats {
        self.stats.snapshot(self.counts())
    }

    /// Records checkpoint `id` as in flight.
    fn begin(
        &mut self,
        id: CheckpointId,
        kind: CheckpointKind,
        location: Option<SnapshotLocation>,
        requester: Option<R>,
        now: Now,
    ) {
        let ending = match (self.phase, kind) {
            (Phase::Ending { final_id }, _) if final_id == id => Ending::Final {
                drain: match kind {
                    CheckpointKind::StopWithSavepoint { drain, .. } => drain,
                    _ => true,
                },
            },
            _ => Ending::Continue,
        };
        let location = location.unwrap_or_else(|| self.storage.checkpoint_location(id));
        let subtasks = self.operators.iter().map(|o| o.parallelism as usize).sum();
        self.stats.on_trigger(id, kind, now.wall_ms, subtasks);
        self.in_flight.insert(
            id,
            InFlight {
                location,
                trigger_timestamp_ms: now.wall_ms,
                ending,
                requester,
                metadata: None,
            },
        );
    }

    /// Turns the coordinator's decisions into actions, updating the in-flight records.
    fn carry_out(
        &mut self,
        decisions: Vec<CoordinatorAction<SubtaskAck>>,
        now: Now,
    ) -> Vec<JobAction<R>> {
        let mut actions = Vec::new();
        for decision in decisions {
            match decision {
                CoordinatorAction::Trigger { id, kind } => {
                    if !self.in_flight.contains_key(&id) {
                        self.begin(id, kind, None, None, now);
                    }
                    let flight = &self.in_flight[&id];
                    tracing::info!(job_id = %self.job_id, checkpoint_id = id.0, kind = kind.rest_name(), end_of_input = flight.ending.is_final(), "triggering checkpoint");
                    actions.push(JobAction::InjectBarrier {
                        barrier: Barrier {
                            id,
                            timestamp_ms: flight.trigger_timestamp_ms,
                            kind,
                            ending: flight.ending,
                        },
                        location: flight.location.clone(),
                    });
                }
                CoordinatorAction::Finalize { id, kind, acks } => {
                    let Some(flight) = self.in_flight.get_mut(&id) else {
                        continue;
                    };
                    let facts = CheckpointFacts {
                        job_id: self.job_id,
                        id,
                        kind,
                        trigger_timestamp_ms: flight.trigger_timestamp_ms,
                        completion_timestamp_ms: now.wall_ms,
                    };
                    let metadata = Arc::new(assemble_metadata(facts, &self.operators, acks));
                    flight.metadata = Some(metadata.clone());
                    actions.push(JobAction::WriteMetadata {
                        id,
                        location: flight.location.clone(),
                        metadata,
                    });
                }
                CoordinatorAction::Abort { id, kind, reason } => {
                    self.aborted(id, kind, reason, now, &mut actions)
                }
                CoordinatorAction::Complete { id, kind } => self.completed(id, kind, &mut actions),
                CoordinatorAction::Discard { ids } => {
                    actions.push(JobAction::DiscardCompleted { ids })
                }
                CoordinatorAction::FailJob { reason } => {
                    actions.push(JobAction::FailJob { reason })
                }
            }
        }
        actions
    }

    fn aborted(
        &mut self,
        id: CheckpointId,
        kind: CheckpointKind,
        reason: AbortReason,
        now: Now,
        actions: &mut Vec<JobAction<R>>,
    ) {
        tracing::warn!(job_id = %self.job_id, checkpoint_id = id.0, %reason, "checkpoint aborted");
        self.stats.on_failure(id, now.wall_ms, reason.to_string());
        let mut flight = self.in_flight.remove(&id);
        if let Some(to) = flight.as_mut().and_then(|f| f.requester.take()) {
            actions.push(JobAction::Reply {
                to,
                result: Err(ControlError::Failed {
                    id,
                    kind: kind_name(kind),
                    reason: reason.to_string(),
                }),
            });
        }
        actions.push(JobAction::NotifyAborted { id });
        if let Some(flight) = flight {
            self.discard(id, flight, actions);
        }
        if self.phase == (Phase::Ending { final_id: id }) {
            actions.push(JobAction::FailJob {
                reason: format!("the final checkpoint {id} failed: {reason:?}"),
            });
        }
    }

    fn completed(
        &mut self,
        id: CheckpointId,
        kind: CheckpointKind,
        actions: &mut Vec<JobAction<R>>,
    ) {
        let Some(flight) = self.in_flight.remove(&id) else {
            return;
        };
        let Some(metadata) = flight.metadata else {
            return;
        };
        let completed = CompletedCheckpoint {
            id,
            external_path: flight.location.external_path(),
            state_size: metadata.state_size(),
        };
        tracing::info!(job_id = %self.job_id, checkpoint_id = id.0, kind = kind.rest_name(), state_size = completed.state_size, path = %completed.external_path, "checkpoint complete");
        self.stats.on_complete(id, completed.external_path.clone());
        if matches!(kind, CheckpointKind::StopWithSavepoint { .. }) {
            self.stopped = Some((flight.requester, completed.clone()));
        } else if let Some(to) = flight.requester {
            actions.push(JobAction::Reply {
                to,
                result: Ok(completed.clone()),
            });
        }
        if !kind.is_savepoint() {
            self.latest_completed = Some(completed);
            self.latest = Some(RestorePoint {
                location: flight.location,
                metadata,
                source: RestoreSource::Retained,
            });
            if self.coordinator.retained().ids().len() >= self.config.num_retained as usize {
                if let Some(location) = self.claimed.take() {
                    actions.push(JobAction::DisposeClaimed { location });
                }
            }
        }
        actions.push(JobAction::NotifyComplete {
            id,
            kind,
            ending: flight.ending,
        });
    }
}
