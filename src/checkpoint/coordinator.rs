//! `CheckpointCoordinator`: the pure state machine that decides when to trigger a checkpoint,
//! when it is complete, when it has failed, and what the failures mean for the job.
//!
//! The runtime (the job actor) owns one coordinator per job and feeds it facts — timer ticks,
//! acknowledgements and declines from subtasks, the outcome of writing `_metadata` — each with
//! the current monotonic time `now`. Every call returns the [`CoordinatorAction`]s to carry out,
//! in order. The coordinator does no I/O, reads no clock and draws no random numbers.
//!
//! # Life of a checkpoint
//!
//! ```text
//!  on_tick (periodic) ─┐                  all tasks acknowledged       finalized
//!  trigger_now ────────┴─► Trigger ──► collecting acks ──► Finalize ──► finalizing ──► Complete
//!                                          │                              │
//!                 decline / timeout / ─────┴──────────► Abort ◄───────────┘ finalize_failed /
//!                 subsumed / abort_all                                       timeout / subsumed
//! ```
//!
//! Every triggered id ends exactly once, in `Complete` or `Abort`; `Finalize` is emitted at most
//! once per id. Calls about ids that are unknown, already ended or in the wrong stage (a late,
//! duplicate or stray acknowledgement, a second `finalized`) return no actions.
//!
//! # Decisions (Flink's)
//!
//! - **Periodic trigger** (only with an interval): on a tick at `now` when `now` has reached the
//!   previous periodic trigger plus the interval (the first is due one interval after
//!   [`CheckpointCoordinator::new`] or [`CheckpointCoordinator::reset_tasks`]), `now` has
//!   reached the last completion plus the min pause, and fewer checkpoints of any kind than the
//!   effective max concurrent are pending. A blocked trigger stays due and fires once, at the
//!   first tick that allows it; it is never queued several times.
//! - **Forced trigger** ([`CheckpointCoordinator::trigger_now`]): manual checkpoints, savepoints,
//!   stop-with-savepoint, the final checkpoint of a bounded job. Ignores interval, min pause and
//!   max concurrent, but counts as pending for later periodic decisions.
//! - **Timeout**: a checkpoint still pending `timeout` after its trigger (also while its
//!   `_metadata` is being written) is aborted as [`AbortReason::Expired`].
//! - **Subsumption**: when a checkpoint or a stop-with-savepoint completes, pending
//!   *checkpoints* with smaller ids are aborted as [`AbortReason::Subsumed`]. A plain savepoint
//!   subsumes nothing, and savepoints are never subsumed.
//! - **Failures**: an expired, declined or unfinalizable *checkpoint* (not savepoint) counts as a
//!   consecutive failure, unless its id is older than the last completed checkpoint or savepoint.
//!   A completion resets the count. When the count exceeds `tolerable_failures`, `FailJob` is
//!   emitted once; until [`CheckpointCoordinator::reset_tasks`] (the restarted job), no periodic
//!   checkpoint is triggered and no further failure is counted.
//! - **Retention**: completed checkpoints (never savepoints) enter a
//!   [`CompletedCheckpointStore`]; those that fall out of `num_retained` are discarded.
//!
//! # Order of actions
//!
//! - [`on_tick`](CheckpointCoordinator::on_tick): expirations first, in id order (each `Abort`
//!   followed directly by `FailJob` if it crossed the threshold), then at most one periodic
//!   `Trigger`. Expiring first frees the slot the trigger may need.
//! - [`finalized`](CheckpointCoordinator::finalized): `Complete`, then the `Abort`s of subsumed
//!   checkpoints in id order, then `Discard` (committing comes first; deleting old files is the
//!   least urgent).
//! - A trigger for a job without tasks is followed at once by its `Finalize`.
//! - [`abort_all`](CheckpointCoordinator::abort_all): one `Abort` per pending id, in id order.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::checkpoint::options::CheckpointConfig;
use crate::checkpoint::retention::CompletedCheckpointStore;
pub use crate::checkpoint::stats::CheckpointCounts;
use crate::element::CheckpointKind;
use crate::ids::{CheckpointId, TaskId};

/// What the runtime must do, in the order returned.
#[derive(Clone, Debug, PartialEq)]
pub enum CoordinatorAction<A> {
    /// Send `TriggerCheckpoint { id, kind }` to every source task.
    Trigger {
        id: CheckpointId,
        kind: CheckpointKind,
    },
    /// Every task acknowledged: write `_metadata` from `acks` (sorted by `TaskId`), then call
    /// [`CheckpointCoordinator::finalized`] or [`CheckpointCoordinator::finalize_failed`].
    Finalize {
        id: CheckpointId,
        kind: CheckpointKind,
        acks: Vec<(TaskId, A)>,
    },
    /// The checkpoint failed: tell every task (they drop its alignment), delete its partial
    /// files. May come after `Finalize` (timeout or subsumption while `_metadata` is being
    /// written): delete once that write has ended; its later `finalized` is ignored.
    Abort {
        id: CheckpointId,
        kind: CheckpointKind,
        reason: AbortReason,
    },
    /// Complete and durable: send `CheckpointComplete(id)` to every task. For a plain
    /// `Savepoint` tasks must not commit side effects (Flink does not notify them at all).
    Complete {
        id: CheckpointId,
        kind: CheckpointKind,
    },
    /// Delete these completed checkpoints, oldest first: they fell out of `num_retained`.
    Discard { ids: Vec<CheckpointId> },
    /// More consecutive checkpoint failures than tolerated: fail the job into its restart
    /// strategy. `reason` is a sentence for the job's failure cause.
    FailJob { reason: String },
}

/// Why a checkpoint was aborted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AbortReason {
    /// Still pending when its timeout ran out.
    #[error(
        "expired before completing (raise execution.checkpointing.timeout if checkpoints are \
         slow under back-pressure)"
    )]
    Expired,
    /// A task could not take its snapshot.
    #[error("was declined by task {task}: {reason}")]
    Declined { task: TaskId, reason: String },
    /// A newer checkpoint completed first.
    #[error("was subsumed by a newer completed checkpoint")]
    Subsumed,
    /// Writing `_metadata` or another storage step failed.
    #[error("could not be finalized: {0}")]
    FinalizeFailed(String),
    /// The job is restarting.
    #[error("was aborted because the job is restarting")]
    JobRestarting,
    /// The job was canceled.
    #[error("was aborted because the job was canceled")]
    JobCanceled,
    /// The job finished.
    #[error("was aborted because the job finished")]
    JobFinished,
}

impl AbortReason {
    /// True for the reasons that can count towards `tolerable_failures`: expiry, decline and a
    /// failed finalization (whether one does also depends on the kind and id).
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            AbortReason::Expired | AbortReason::Declined { .. } | AbortReason::FinalizeFailed(_)
        )
    }
}

/// Where a pending checkpoint is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingStage {
    /// Waiting for acknowledgements.
    CollectingAcks,
    /// Every task acknowledged; `_metadata` is being written.
    Finalizing,
}

/// A pending checkpoint, for statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingStatus {
    pub kind: CheckpointKind,
    pub stage: PendingStage,
    pub triggered_at: Duration,
    /// When the latest acknowledgement arrived, if any did.
    pub latest_ack_at: Option<Duration>,
    pub acknowledged: usize,
    pub total_tasks: usize,
}

#[derive(Clone, Debug)]
struct Pending<A> {
    kind: CheckpointKind,
    triggered_at: Duration,
    deadline: Duration,
    latest_ack_at: Option<Duration>,
    awaiting: BTreeSet<TaskId>,
    acks: BTreeMap<TaskId, A>,
    stage: PendingStage,
}

impl<A> Pending<A> {
    fn expects(&self, task: TaskId) -> bool {
        self.awaiting.contains(&task) || self.acks.contains_key(&task)
    }
}

/// The periodic schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Periodic {
    /// No interval configured.
    Disabled,
    /// The next periodic checkpoint is due at `next_due` (min pause and max concurrent permitting).
    Active { next_due: Duration },
    /// Stopped by `abort_all` until `reset_tasks`.
    Stopped,
}

/// Whether this coordinator has asked for a failover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failover {
    NotRequested,
    /// `FailJob` was emitted; cleared by `reset_tasks`.
    Requested,
}

/// The pure checkpoint coordinator of one job. `A` is what a task acknowledges with (its
/// state handles); the coordinator only stores it and hands it back in `Finalize`.
#[derive(Clone, Debug)]
pub struct CheckpointCoordinator<A> {
    interval: Option<Duration>,
    timeout: Duration,
    min_pause: Duration,
    max_concurrent: usize,
    tolerable_failures: u32,
    tasks: BTreeSet<TaskId>,
    next_id: CheckpointId,
    pending: BTreeMap<CheckpointId, Pending<A>>,
    periodic: Periodic,
    last_completion_at: Option<Duration>,
    last_completed_id: Option<CheckpointId>,
    consecutive_failures: u32,
    failover: Failover,
    store: CompletedCheckpointStore,
    counts: CheckpointCounts,
}

impl<A> CheckpointCoordinator<A> {
    /// `tasks`: every task that must acknowledge each checkpoint (duplicates are ignored).
    /// `next_id`: the first id to use (ids keep growing across restarts and restores). `now`:
    /// monotonic time; the first periodic checkpoint is due one interval later.
    pub fn new(
        config: &CheckpointConfig,
        tasks: Vec<TaskId>,
        next_id: CheckpointId,
        now: Duration,
    ) -> Self {
        let mut coordinator = Self {
            interval: config.interval,
            timeout: config.timeout,
            min_pause: config.min_pause,
            max_concurrent: config.effective_max_concurrent() as usize,
            tolerable_failures: config.tolerable_failures,
            tasks: BTreeSet::new(),
            next_id,
            pending: BTreeMap::new(),
            periodic: Periodic::Disabled,
            last_completion_at: None,
            last_completed_id: None,
            consecutive_failures: 0,
            failover: Failover::NotRequested,
            store: CompletedCheckpointStore::new(config.num_retained),
            counts: CheckpointCounts::default(),
        };
        coordinator.reset_tasks(tasks, now);
        coordinator
    }

    /// Periodic trigger decision and timeouts. Call on every timer tick, and at least at
    /// [`next_wakeup`](Self::next_wakeup).
    pub fn on_tick(&mut self, now: Duration) -> Vec<CoordinatorAction<A>> {
        let mut actions = Vec::new();
        let expired: Vec<CheckpointId> = self
            .pending
            .iter()
            .filter(|(_, p)| now >= p.deadline)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.fail(id, AbortReason::Expired, &mut actions);
        }
        if let (Some(due), Some(interval)) = (self.periodic_due(), self.interval) {
            if now >= due && self.pending.len() < self.max_concurrent {
                self.periodic = Periodic::Active {
                    next_due: now.saturating_add(interval),
                };
                self.start(CheckpointKind::PERIODIC, now, &mut actions);
            }
        }
        actions
    }

    /// A manual checkpoint, a savepoint or stop-with-savepoint, or the final checkpoint of a
    /// bounded job: triggered at once, ignoring interval, min pause and max concurrent (Flink's
    /// "forced"), also while the periodic schedule is stopped. Returns the id it was given.
    pub fn trigger_now(
        &mut self,
        kind: CheckpointKind,
        now: Duration,
    ) -> (CheckpointId, Vec<CoordinatorAction<A>>) {
        let mut actions = Vec::new();
        let id = self.start(kind, now, &mut actions);
        (id, actions)
    }

    /// `task` acknowledged checkpoint `id` with `ack`. Returns `Finalize` when it was the last
    /// one; ignores acknowledgements for unknown or ended ids, from tasks not expected, and
    /// repeated ones (the first is kept).
    pub fn acknowledge(
        &mut self,
        id: CheckpointId,
        task: TaskId,
        ack: A,
        now: Duration,
    ) -> Vec<CoordinatorAction<A>> {
        let Some(pending) = self.pending.get_mut(&id) else {
            return Vec::new();
        };
        if pending.stage != PendingStage::CollectingAcks || !pending.awaiting.remove(&task) {
            return Vec::new();
        }
        pending.acks.insert(task, ack);
        pending.latest_ack_at = Some(now);
        let mut actions = Vec::new();
        Self::finalize_if_acknowledged(id, pending, &mut actions);
        actions
    }

    /// `task` could not take checkpoint `id`: the checkpoint is aborted. Ignored for unknown or
    /// ended ids, tasks not expected, and checkpoints already being finalized.
    pub fn decline(
        &mut self,
        id: CheckpointId,
        task: TaskId,
        reason: String,
        _now: Duration,
    ) -> Vec<CoordinatorAction<A>> {
        let declinable = self
            .pending
            .get(&id)
            .is_some_and(|p| p.stage == PendingStage::CollectingAcks && p.expects(task));
        let mut actions = Vec::new();
        if declinable {
            self.fail(id, AbortReason::Declined { task, reason }, &mut actions);
        }
        actions
    }

    /// `_metadata` of `id` is durable: the checkpoint is complete. Ignored unless `id` is
    /// being finalized.
    pub fn finalized(&mut self, id: CheckpointId, now: Duration) -> Vec<CoordinatorAction<A>> {
        if !self.is_finalizing(id) {
            return Vec::new();
        }
        let Some(done) = self.pending.remove(&id) else {
            return Vec::new();
        };
        self.counts.in_progress -= 1;
        self.counts.completed += 1;
        self.last_completion_at = Some(now);
        self.last_completed_id = self.last_completed_id.max(Some(id));
        self.consecutive_failures = 0;
        tracing::debug!(checkpoint = %id, kind = done.kind.rest_name(), "checkpoint complete");

        let mut actions = vec![CoordinatorAction::Complete {
            id,
            kind: done.kind,
        }];
        let subsumes = !matches!(done.kind, CheckpointKind::Savepoint { .. });
        if subsumes {
            let subsumed: Vec<CheckpointId> = self
                .pending
                .range(..id)
                .filter(|(_, p)| !p.kind.is_savepoint())
                .map(|(id, _)| *id)
                .collect();
            for old in subsumed {
                self.fail(old, AbortReason::Subsumed, &mut actions);
            }
        }
        if !done.kind.is_savepoint() {
            let ids = self.store.add(id);
            if !ids.is_empty() {
                actions.push(CoordinatorAction::Discard { ids });
            }
        }
        actions
    }

    /// Writing `_metadata` (or any storage step) of `id` failed: the checkpoint is aborted.
    /// Ignored unless `id` is being finalized.
    pub fn finalize_failed(
        &mut self,
        id: CheckpointId,
        reason: String,
        _now: Duration,
    ) -> Vec<CoordinatorAction<A>> {
        let mut actions = Vec::new();
        if self.is_finalizing(id) {
            self.fail(id, AbortReason::FinalizeFailed(reason), &mut actions);
        }
        actions
    }

    /// Abort every pending checkpoint (job restarting, canceling, finished), whatever `reason`
    /// says: none of them counts as a failure. Also stops the periodic schedule until
    /// [`reset_tasks`](Self::reset_tasks); forced triggers still work.
    pub fn abort_all(&mut self, reason: AbortReason, _now: Duration) -> Vec<CoordinatorAction<A>> {
        let mut actions = Vec::with_capacity(self.pending.len());
        for (id, pending) in std::mem::take(&mut self.pending) {
            self.counts.in_progress -= 1;
            self.counts.failed += 1;
            actions.push(CoordinatorAction::Abort {
                id,
                kind: pending.kind,
                reason: reason.clone(),
            });
        }
        if self.periodic != Periodic::Disabled {
            self.periodic = Periodic::Stopped;
        }
        actions
    }

    /// Replace the set of tasks (after a restart with a new execution graph). Restarts the
    /// periodic schedule (next trigger one interval from `now`), and ends a failover this
    /// coordinator requested (its failure count starts over, as Flink clears its counter when
    /// it fails the job).
    ///
    /// Call [`abort_all`](Self::abort_all) first: checkpoints still pending here belonged to the
    /// old tasks and are dropped without an `Abort` (counted as failed in the statistics).
    pub fn reset_tasks(&mut self, tasks: Vec<TaskId>, now: Duration) {
        if !self.pending.is_empty() {
            tracing::warn!(
                pending = ?self.pending.keys().collect::<Vec<_>>(),
                "reset_tasks dropped pending checkpoints; call abort_all first"
            );
            let dropped = self.pending.len() as u64;
            self.pending.clear();
            self.counts.in_progress -= dropped;
            self.counts.failed += dropped;
        }
        self.tasks = tasks.into_iter().collect();
        self.periodic = match self.interval {
            Some(interval) => Periodic::Active {
                next_due: now.saturating_add(interval),
            },
            None => Periodic::Disabled,
        };
        if self.failover == Failover::Requested {
            self.failover = Failover::NotRequested;
            self.consecutive_failures = 0;
        }
    }

    /// When `on_tick` next has something to do (the next periodic trigger or the earliest
    /// timeout), if anything. A periodic trigger blocked by max concurrent is not reported: it
    /// can only become possible through a call that ends a checkpoint.
    pub fn next_wakeup(&self) -> Option<Duration> {
        let timeout = self.pending.values().map(|p| p.deadline).min();
        let periodic = self
            .periodic_due()
            .filter(|_| self.pending.len() < self.max_concurrent);
        timeout.into_iter().chain(periodic).min()
    }

    /// The id the next trigger will use.
    pub fn next_id(&self) -> CheckpointId {
        self.next_id
    }

    /// Ids of the pending checkpoints, ascending (being finalized included).
    pub fn pending_ids(&self) -> Vec<CheckpointId> {
        self.pending.keys().copied().collect()
    }

    /// Progress of a pending checkpoint, for statistics.
    pub fn pending_status(&self, id: CheckpointId) -> Option<PendingStatus> {
        self.pending.get(&id).map(|p| PendingStatus {
            kind: p.kind,
            stage: p.stage,
            triggered_at: p.triggered_at,
            latest_ack_at: p.latest_ack_at,
            acknowledged: p.acks.len(),
            total_tasks: p.acks.len() + p.awaiting.len(),
        })
    }

    /// Total, in-progress, completed and failed checkpoints (Flink's REST `counts`; `restored`
    /// stays 0 here: the job's lifecycle knows it).
    pub fn counts(&self) -> &CheckpointCounts {
        &self.counts
    }

    /// Counted checkpoint failures since the last completion.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// The retained completed checkpoints; the latest is the one to restart from.
    pub fn retained(&self) -> &CompletedCheckpointStore {
        &self.store
    }

    /// Stops retaining completed checkpoint `id` without deleting it (it was found damaged):
    /// see [`CompletedCheckpointStore::forget`].
    pub fn forget_retained(&mut self, id: CheckpointId) -> bool {
        self.store.forget(id)
    }

    /// The tasks every new checkpoint waits for, sorted.
    pub fn tasks(&self) -> Vec<TaskId> {
        self.tasks.iter().copied().collect()
    }

    /// When the next periodic trigger is due, ignoring max concurrent; `None` when periodic
    /// checkpoints are disabled, stopped, or a failover was requested.
    fn periodic_due(&self) -> Option<Duration> {
        match (self.periodic, self.failover) {
            (Periodic::Active { next_due }, Failover::NotRequested) => {
                let after_pause = self
                    .last_completion_at
                    .map(|at| at.saturating_add(self.min_pause));
                Some(after_pause.map_or(next_due, |p| p.max(next_due)))
            }
            _ => None,
        }
    }

    fn is_finalizing(&self, id: CheckpointId) -> bool {
        self.pending
            .get(&id)
            .is_some_and(|p| p.stage == PendingStage::Finalizing)
    }

    /// Assigns the next id and records the checkpoint as pending.
    fn start(
        &mut self,
        kind: CheckpointKind,
        now: Duration,
        actions: &mut Vec<CoordinatorAction<A>>,
    ) -> CheckpointId {
        let id = self.next_id;
        self.next_id = id.next();
        self.counts.total += 1;
        self.counts.in_progress += 1;
        tracing::debug!(checkpoint = %id, kind = kind.rest_name(), "triggering checkpoint");
        actions.push(CoordinatorAction::Trigger { id, kind });
        let pending = self.pending.entry(id).or_insert(Pending {
            kind,
            triggered_at: now,
            deadline: now.saturating_add(self.timeout),
            latest_ack_at: None,
            awaiting: self.tasks.clone(),
            acks: BTreeMap::new(),
            stage: PendingStage::CollectingAcks,
        });
        Self::finalize_if_acknowledged(id, pending, actions);
        id
    }

    fn finalize_if_acknowledged(
        id: CheckpointId,
        pending: &mut Pending<A>,
        actions: &mut Vec<CoordinatorAction<A>>,
    ) {
        if pending.stage == PendingStage::CollectingAcks && pending.awaiting.is_empty() {
            pending.stage = PendingStage::Finalizing;
            actions.push(CoordinatorAction::Finalize {
                id,
                kind: pending.kind,
                acks: std::mem::take(&mut pending.acks).into_iter().collect(),
            });
        }
    }

    /// Aborts pending checkpoint `id` and counts the failure if it counts.
    fn fail(
        &mut self,
        id: CheckpointId,
        reason: AbortReason,
        actions: &mut Vec<CoordinatorAction<A>>,
    ) {
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        self.counts.in_progress -= 1;
        self.counts.failed += 1;
        let counted = reason.is_failure()
            && !pending.kind.is_savepoint()
            && self.last_completed_id.is_none_or(|last| id > last)
            && self.failover == Failover::NotRequested;
        tracing::debug!(checkpoint = %id, %reason, counted, "checkpoint aborted");
        let cause = format!("checkpoint {id} {reason}");
        actions.push(CoordinatorAction::Abort {
            id,
            kind: pending.kind,
            reason,
        });
        if !counted {
            return;
        }
        self.consecutive_failures += 1;
        if self.consecutive_failures > self.tolerable_failures {
            self.failover = Failover::Requested;
            actions.push(CoordinatorAction::FailJob {
                reason: format!(
                    "exceeded the tolerable checkpoint failure threshold: {} consecutive \
                     checkpoints failed and execution.checkpointing.tolerable-failed-checkpoints \
                     is {}; the last one, {cause}",
                    self.consecutive_failures, self.tolerable_failures
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::options::CheckpointConfig;
    use crate::element::SavepointFormat;

    type Coordinator = CheckpointCoordinator<u64>;
    type Action = CoordinatorAction<u64>;

    const SAVEPOINT: CheckpointKind = CheckpointKind::Savepoint {
        format: SavepointFormat::Canonical,
    };
    const STOP: CheckpointKind = CheckpointKind::StopWithSavepoint {
        format: SavepointFormat::Canonical,
        drain: false,
    };

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn id(n: u64) -> CheckpointId {
        CheckpointId(n)
    }

    fn task(vertex: u32) -> TaskId {
        TaskId { vertex, subtask: 0 }
    }

    fn tasks(n: u32) -> Vec<TaskId> {
        (0..n).map(task).collect()
    }

    /// Periodic every `interval_ms`, 10 s timeout, Flink's defaults otherwise.
    fn every(interval_ms: u64) -> CheckpointConfig {
        CheckpointConfig {
            timeout: ms(10_000),
            ..CheckpointConfig::every(ms(interval_ms))
        }
    }

    /// No periodic checkpoints: only forced triggers.
    fn manual() -> CheckpointConfig {
        CheckpointConfig {
            timeout: ms(10_000),
            ..CheckpointConfig::default()
        }
    }

    fn triggered(actions: &[Action]) -> Vec<CheckpointId> {
        actions
            .iter()
            .filter_map(|a| match a {
                CoordinatorAction::Trigger { id, .. } => Some(*id),
                _ => None,
            })
            .collect()
    }

    fn trigger(c: &mut Coordinator, kind: CheckpointKind, now: u64) -> CheckpointId {
        let (id, actions) = c.trigger_now(kind, ms(now));
        assert_eq!(actions, vec![CoordinatorAction::Trigger { id, kind }]);
        id
    }

    /// Every task acknowledges `id`; returns the actions of the last acknowledgement.
    fn ack_all(c: &mut Coordinator, id: CheckpointId, now: u64) -> Vec<Action> {
        let mut last = Vec::new();
        for t in c.tasks() {
            last = c.acknowledge(id, t, u64::from(t.vertex), ms(now));
        }
        last
    }

    /// Every task acknowledges `id` and its `_metadata` is written; returns `finalized`'s actions.
    fn complete(c: &mut Coordinator, id: CheckpointId, now: u64) -> Vec<Action> {
        let finalize = ack_all(c, id, now);
        assert!(
            matches!(finalize.as_slice(), [CoordinatorAction::Finalize { id: f, .. }] if *f == id),
            "{finalize:?}"
        );
        c.finalized(id, ms(now))
    }

    fn abort(id: CheckpointId, kind: CheckpointKind, reason: AbortReason) -> Action {
        CoordinatorAction::Abort { id, kind, reason }
    }

    fn is_fail_job(action: &Action) -> bool {
        matches!(action, CoordinatorAction::FailJob { .. })
    }

    #[test]
    fn periodic_trigger_waits_for_the_interval() {
        let mut c = Coordinator::new(&every(1000), tasks(2), id(1), ms(0));
        assert_eq!(c.next_wakeup(), Some(ms(1000)));
        assert!(c.on_tick(ms(999)).is_empty());
        assert_eq!(
            c.on_tick(ms(1000)),
            vec![CoordinatorAction::Trigger {
                id: id(1),
                kind: CheckpointKind::PERIODIC
            }]
        );
        assert_eq!(c.pending_ids(), vec![id(1)]);
        assert_eq!(c.next_id(), id(2));
    }

    #[test]
    fn max_concurrent_one_delays_a_blocked_trigger_and_fires_it_once() {
        let mut c = Coordinator::new(&every(100), tasks(2), id(1), ms(0));
        assert_eq!(triggered(&c.on_tick(ms(100))), vec![id(1)]);
        for t in [200, 300, 400] {
            assert!(c.on_tick(ms(t)).is_empty(), "tick {t}");
        }
        // Blocked: only the timeout of checkpoint 1 is worth waking up for.
        assert_eq!(c.next_wakeup(), Some(ms(10_100)));
        complete(&mut c, id(1), 450);
        // Due since 200; with no min pause it may fire as of the completion.
        assert_eq!(c.next_wakeup(), Some(ms(450)));
        assert_eq!(triggered(&c.on_tick(ms(455))), vec![id(2)]);
        assert!(c.on_tick(ms(460)).is_empty());
        complete(&mut c, id(2), 470);
        // The next period counts from the delayed trigger, not from the missed ones.
        assert_eq!(c.next_wakeup(), Some(ms(555)));
        assert!(c.on_tick(ms(554)).is_empty());
        assert_eq!(triggered(&c.on_tick(ms(555))), vec![id(3)]);
    }

    #[test]
    fn max_concurrent_three_allows_three_pending() {
        let config = CheckpointConfig {
            max_concurrent: 3,
            ..every(100)
        };
        let mut c = Coordinator::new(&config, tasks(1), id(1), ms(0));
        for (t, expected) in [(100, 1), (200, 2), (300, 3)] {
            assert_eq!(triggered(&c.on_tick(ms(t))), vec![id(expected)]);
        }
        assert!(c.on_tick(ms(400)).is_empty());
        assert_eq!(c.pending_ids(), vec![id(1), id(2), id(3)]);
        complete(&mut c, id(1), 410);
        assert_eq!(triggered(&c.on_tick(ms(420))), vec![id(4)]);
        assert_eq!(c.pending_ids().len(), 3);
    }

    #[test]
    fn min_pause_counts_from_the_last_completion() {
        let config = CheckpointConfig {
            min_pause: ms(500),
            max_concurrent: 5,
            ..every(100)
        };
        let mut c = Coordinator::new(&config, tasks(1), id(1), ms(0));
        assert_eq!(triggered(&c.on_tick(ms(100))), vec![id(1)]);
        // A min pause forces one concurrent checkpoint, whatever max_concurrent says.
        assert!(c.on_tick(ms(200)).is_empty());
        complete(&mut c, id(1), 150);
        assert_eq!(c.next_wakeup(), Some(ms(650)));
        assert!(c.on_tick(ms(649)).is_empty());
        assert_eq!(triggered(&c.on_tick(ms(650))), vec![id(2)]);
    }

    #[test]
    fn forced_triggers_ignore_min_pause_and_max_concurrent() {
        let config = CheckpointConfig {
            min_pause: ms(10_000),
            timeout: ms(60_000),
            ..every(100)
        };
        let mut c = Coordinator::new(&config, tasks(1), id(1), ms(0));
        assert_eq!(triggered(&c.on_tick(ms(100))), vec![id(1)]);
        assert_eq!(trigger(&mut c, SAVEPOINT, 101), id(2));
        complete(&mut c, id(1), 102);
        // Right after a completion, inside the min pause.
        assert_eq!(
            trigger(&mut c, CheckpointKind::Checkpoint { full: true }, 103),
            id(3)
        );
        assert_eq!(c.pending_ids(), vec![id(2), id(3)]);
        // Forced checkpoints still count against max concurrent for periodic ones: the min
        // pause is over at 20 s, but two checkpoints are pending.
        assert!(c.on_tick(ms(20_000)).is_empty());
        assert_eq!(c.pending_ids(), vec![id(2), id(3)]);
    }

    #[test]
    fn a_pending_checkpoint_expires_at_its_timeout() {
        let config = CheckpointConfig {
            timeout: ms(1000),
            tolerable_failures: 5,
            ..CheckpointConfig::default()
        };
        let mut c = Coordinator::new(&config, tasks(2), id(7), ms(0));
        let cp = trigger(&mut c, CheckpointKind::PERIODIC, 50);
        assert_eq!(c.next_wakeup(), Some(ms(1050)));
        assert!(c.on_tick(ms(1049)).is_empty());
        assert_eq!(
            c.on_tick(ms(1050)),
            vec![abort(cp, CheckpointKind::PERIODIC, AbortReason::Expired)]
        );
        assert_eq!(c.consecutive_failures(), 1);
        assert_eq!(c.next_wakeup(), None);
        // A late acknowledgement is ignored.
        assert!(c.acknowledge(cp, task(0), 1, ms(1100)).is_empty());
        assert_eq!(
            *c.counts(),
            CheckpointCounts {
                restored: 0,
                total: 1,
                in_progress: 0,
                completed: 0,
                failed: 1
            }
        );
    }

    #[test]
    fn a_checkpoint_being_finalized_still_expires() {
        let config = CheckpointConfig {
            timeout: ms(1000),
            tolerable_failures: 5,
            ..CheckpointConfig::default()
        };
        let mut c = Coordinator::new(&config, tasks(1), id(1), ms(0));
        let cp = trigger(&mut c, CheckpointKind::PERIODIC, 0);
        assert_eq!(ack_all(&mut c, cp, 10).len(), 1);
        assert_eq!(
            c.on_tick(ms(1000)),
            vec![abort(cp, CheckpointKind::PERIODIC, AbortReason::Expired)]
        );
        // The storage step reports back after the abort: ignored.
        assert!(c.finalized(cp, ms(1500)).is_empty());
        assert!(c.retained().is_empty());
    }

    #[test]
    fn a_decline_aborts_and_only_expected_tasks_can_decline() {
        let config = CheckpointConfig {
            tolerable_failures: 5,
            ..manual()
        };
        let mut c = Coordinator::new(&config, tasks(2), id(1), ms(0));
        let cp = trigger(&mut c, CheckpointKind::PERIODIC, 0);
        assert!(c.decline(cp, task(9), "not mine".into(), ms(1)).is_empty());
        assert!(c
            .decline(id(99), task(0), "unknown id".into(), ms(1))
            .is_empty());
        assert_eq!(
            c.decline(cp, task(1), "sink not ready".into(), ms(2)),
            vec![abort(
                cp,
                CheckpointKind::PERIODIC,
                AbortReason::Declined {
                    task: task(1),
                    reason: "sink not ready".into()
                }
            )]
        );
        assert!(c.decline(cp, task(0), "again".into(), ms(3)).is_empty());
        assert_eq!(c.consecutive_failures(), 1);
    }

    #[test]
    fn completion_subsumes_older_checkpoints_but_not_savepoints() {
        let config = CheckpointConfig {
            num_retained: 5,
            ..manual()
        };
        let mut c = Coordinator::new(&config, tasks(2), id(1), ms(0));
        let one = trigger(&mut c, CheckpointKind::PERIODIC, 0);
        let savepoint = trigger(&mut c, SAVEPOINT, 1);
        let three = trigger(&mut c, CheckpointKind::Checkpoint { full: true }, 2);
        let four = trigger(&mut c, CheckpointKind::PERIODIC, 3);
        assert_eq!(
            complete(&mut c, three, 10),
            vec![
                CoordinatorAction::Complete {
                    id: three,
                    kind: CheckpointKind::Checkpoint { full: true }
                },
                abort(one, CheckpointKind::PERIODIC, AbortReason::Subsumed),
            ]
        );
        assert_eq!(c.pending_ids(), vec![savepoint, four]);
        assert_eq!(c.consecutive_failures(), 0);
        // A completed savepoint subsumes nothing and is not retained.
        let five = trigger(&mut c, CheckpointKind::PERIODIC, 11);
        let six = trigger(&mut c, SAVEPOINT, 12);
        assert_eq!(
            complete(&mut c, six, 13),
            vec![CoordinatorAction::Complete {
                id: six,
                kind: SAVEPOINT
            }]
        );
        assert_eq!(c.pending_ids(), vec![savepoint, four, five]);
        // Stop-with-savepoint subsumes older checkpoints, but is not retained either.
        let seven = trigger(&mut c, STOP, 14);
        let actions = complete(&mut c, seven, 15);
        assert_eq!(
            actions,
            vec![
                CoordinatorAction::Complete {
                    id: seven,
                    kind: STOP
                },
                abort(four, CheckpointKind::PERIODIC, AbortReason::Subsumed),
                abort(five, CheckpointKind::PERIODIC, AbortReason::Subsumed),
            ]
        );
        assert_eq!(c.pending_ids(), vec![savepoint]);
        assert_eq!(c.retained().ids(), vec![three]);
    }

    #[test]
    fn zero_tolerable_failures_fails_the_job_once_on_the_first_failure() {
        let config = CheckpointConfig {
            timeout: ms(1000),
            ..every(100)
        };
        let mut c = Coordinator::new(&config, tasks(1), id(1), ms(0));
        assert_eq!(triggered(&c.on_tick(ms(100))), vec![id(1)]);
        let actions = c.on_tick(ms(1100));
        assert_eq!(actions.len(), 2, "{actions:?}");
        assert_eq!(
            actions[0],
            abort(id(1), CheckpointKind::PERIODIC, AbortReason::Expired)
        );
        match &actions[1] {
            CoordinatorAction::FailJob { reason } => {
                assert!(reason.contains("tolerable"), "{reason}");
                assert!(reason.contains("checkpoint 1 expired"), "{reason}");
            }
            other => panic!("expected FailJob, got {other:?}"),
        }
        // No periodic trigger while the job fails over, and no second FailJob.
        assert!(c.on_tick(ms(5000)).is_empty());
        assert_eq!(c.next_wakeup(), None);
        let manual_cp = trigger(&mut c, CheckpointKind::PERIODIC, 5000);
        let actions = c.decline(manual_cp, task(0), "broken".into(), ms(5001));
        assert!(!actions.iter().any(is_fail_job), "{actions:?}");
        // The restarted job starts with a clean slate.
        c.abort_all(AbortReason::JobRestarting, ms(6000));
        c.reset_tasks(tasks(1), ms(6000));
        assert_eq!(c.consecutive_failures(), 0);
        assert_eq!(triggered(&c.on_tick(ms(6100))), vec![id(3)]);
    }

    #[test]
    fn two_tolerable_failures_fail_the_job_on_the_third_and_a_success_resets() {
        let config = CheckpointConfig {
            tolerable_failures: 2,
            ..manual()
        };
        let mut c = Coordinator::new(&config, tasks(1), id(1), ms(0));
        let fail_once = |c: &mut Coordinator, now: u64| {
            let cp = trigger(c, CheckpointKind::PERIODIC, now);
            c.decline(cp, task(0), "boom".into(), ms(now))
        };
        for expected in [1, 2] {
            let actions = fail_once(&mut c, 0);
            assert!(!actions.iter().any(is_fail_job));
            assert_eq!(c.consecutive_failures(), expected);
        }
        let cp = trigger(&mut c, CheckpointKind::PERIODIC, 1);
        complete(&mut c, cp, 2);
        assert_eq!(c.consecutive_failures(), 0);
        for _ in 0..2 {
            assert!(!fail_once(&mut c, 3).iter().any(is_fail_job));
        }
        let actions = fail_once(&mut c, 4);
        assert_eq!(actions.iter().filter(|a| is_fail_job(a)).count(), 1);
        assert!(is_fail_job(actions.last().unwrap()));
        assert_eq!(c.consecutive_failures(), 3);
    }

    #[test]
    fn finalize_failure_counts_as_a_failure() {
        let mut c = Coordinator::new(&manual(), tasks(1), id(1), ms(0));
        let cp = trigger(&mut c, CheckpointKind::PERIODIC, 0);
        // Not finalizing yet: ignored.
        assert!(c.finalize_failed(cp, "disk full".into(), ms(1)).is_empty());
        ack_all(&mut c, cp, 1);
        let actions = c.finalize_failed(cp, "disk full".into(), ms(2));
        assert_eq!(
            actions[0],
            abort(
                cp,
                CheckpointKind::PERIODIC,
                AbortReason::FinalizeFailed("disk full".into())
            )
        );
        assert!(is_fail_job(&actions[1]));
    }

    #[test]
    fn savepoint_failures_are_reported_but_not_counted() {
        let config = CheckpointConfig {
            timeout: ms(1000),
            ..manual()
        };
        let mut c = Coordinator::new(&config, tasks(1), id(1), ms(0));
        let sp = trigger(&mut c, SAVEPOINT, 0);
        assert_eq!(
            c.decline(sp, task(0), "no".into(), ms(1)),
            vec![abort(
                sp,
                SAVEPOINT,
                AbortReason::Declined {
                    task: task(0),
                    reason: "no".into()
                }
            )]
        );
        let stop = trigger(&mut c, STOP, 2);
        assert_eq!(
            c.on_tick(ms(1002)),
            vec![abort(stop, STOP, AbortReason::Expired)]
        );
        assert_eq!(c.consecutive_failures(), 0);
        assert_eq!(c.counts().failed, 2);
    }

    #[test]
    fn a_failure_older_than_the_last_completion_is_not_counted() {
        let config = CheckpointConfig {
            timeout: ms(1000),
            ..manual()
        };
        let mut c = Coordinator::new(&config, tasks(1), id(1), ms(0));
        let old = trigger(&mut c, CheckpointKind::PERIODIC, 0);
        let sp = trigger(&mut c, SAVEPOINT, 1);
        complete(&mut c, sp, 2);
        // The savepoint did not subsume checkpoint 1; it expires, but a newer one completed.
        assert_eq!(c.pending_ids(), vec![old]);
        let actions = c.on_tick(ms(1000));
        assert_eq!(
            actions,
            vec![abort(old, CheckpointKind::PERIODIC, AbortReason::Expired)]
        );
        assert_eq!(c.consecutive_failures(), 0);
    }

    #[test]
    fn late_duplicate_and_stray_acknowledgements_are_ignored() {
        let mut c = Coordinator::new(&manual(), tasks(2), id(1), ms(0));
        let cp = trigger(&mut c, CheckpointKind::PERIODIC, 0);
        assert!(c.acknowledge(id(42), task(0), 1, ms(1)).is_empty());
        assert!(c.acknowledge(cp, task(7), 1, ms(1)).is_empty());
        assert!(c.acknowledge(cp, task(0), 10, ms(2)).is_empty());
        // A repeated acknowledgement does not replace the first one.
        assert!(c.acknowledge(cp, task(0), 11, ms(3)).is_empty());
        assert!(
            c.finalized(cp, ms(3)).is_empty(),
            "not all acknowledged yet"
        );
        let status = c.pending_status(cp).unwrap();
        assert_eq!((status.acknowledged, status.total_tasks), (1, 2));
        assert_eq!(status.latest_ack_at, Some(ms(2)));
        assert_eq!(
            c.acknowledge(cp, task(1), 20, ms(4)),
            vec![CoordinatorAction::Finalize {
                id: cp,
                kind: CheckpointKind::PERIODIC,
                acks: vec![(task(0), 10), (task(1), 20)]
            }]
        );
        assert!(c.acknowledge(cp, task(1), 21, ms(5)).is_empty());
        assert!(c.decline(cp, task(1), "too late".into(), ms(5)).is_empty());
        assert_eq!(
            c.pending_status(cp).unwrap().stage,
            PendingStage::Finalizing
        );
        assert_eq!(c.finalized(cp, ms(6)).len(), 1);
        assert!(c.finalized(cp, ms(7)).is_empty());
        assert!(c.finalize_failed(cp, "late".into(), ms(7)).is_empty());
        assert!(c.acknowledge(cp, task(0), 12, ms(8)).is_empty());
        assert_eq!(c.counts().completed, 1);
    }

    #[test]
    fn retention_discards_checkpoints_beyond_num_retained_after_completing() {
        let config = CheckpointConfig {
            num_retained: 2,
            ..manual()
        };
        let mut c = Coordinator::new(&config, tasks(1), id(1), ms(0));
        for n in 1..=2 {
            let cp = trigger(&mut c, CheckpointKind::PERIODIC, n);
            assert_eq!(complete(&mut c, cp, n).len(), 1);
        }
        let cp = trigger(&mut c, CheckpointKind::PERIODIC, 3);
        assert_eq!(
            complete(&mut c, cp, 3),
            vec![
                CoordinatorAction::Complete {
                    id: cp,
                    kind: CheckpointKind::PERIODIC
                },
                CoordinatorAction::Discard { ids: vec![id(1)] },
            ]
        );
        assert_eq!(c.retained().ids(), vec![id(2), id(3)]);
        assert_eq!(c.retained().latest(), Some(id(3)));
    }

    #[test]
    fn abort_all_aborts_everything_without_counting_and_stops_the_schedule() {
        let config = CheckpointConfig {
            max_concurrent: 2,
            ..every(100)
        };
        let mut c = Coordinator::new(&config, tasks(2), id(1), ms(0));
        c.on_tick(ms(100));
        c.on_tick(ms(200));
        assert_eq!(
            c.abort_all(AbortReason::JobRestarting, ms(250)),
            vec![
                abort(id(1), CheckpointKind::PERIODIC, AbortReason::JobRestarting),
                abort(id(2), CheckpointKind::PERIODIC, AbortReason::JobRestarting),
            ]
        );
        assert_eq!(c.consecutive_failures(), 0);
        assert_eq!(c.next_wakeup(), None);
        assert!(c.on_tick(ms(100_000)).is_empty());
        // Restarted with a new execution graph: the schedule restarts from `now`.
        c.reset_tasks(tasks(3), ms(100_000));
        assert_eq!(c.next_wakeup(), Some(ms(100_100)));
        assert_eq!(triggered(&c.on_tick(ms(100_100))), vec![id(3)]);
        assert_eq!(c.pending_status(id(3)).unwrap().total_tasks, 3);
        assert_eq!(
            *c.counts(),
            CheckpointCounts {
                restored: 0,
                total: 3,
                in_progress: 1,
                completed: 0,
                failed: 2
            }
        );
    }

    #[test]
    fn next_wakeup_is_the_earliest_timeout_or_periodic_trigger() {
        let none = Coordinator::new(&manual(), tasks(1), id(1), ms(0));
        assert_eq!(none.next_wakeup(), None);

        let config = CheckpointConfig {
            timeout: ms(300),
            max_concurrent: 2,
            tolerable_failures: 10,
            ..every(1000)
        };
        let mut c = Coordinator::new(&config, tasks(1), id(1), ms(0));
        c.on_tick(ms(1000));
        assert_eq!(c.next_wakeup(), Some(ms(1300)));
        c.on_tick(ms(1300));
        assert_eq!(c.next_wakeup(), Some(ms(2000)));
    }

    #[test]
    fn a_job_without_tasks_finalizes_at_once() {
        let mut c = Coordinator::new(&manual(), Vec::new(), id(5), ms(0));
        let (cp, actions) = c.trigger_now(CheckpointKind::PERIODIC, ms(0));
        assert_eq!(
            actions,
            vec![
                CoordinatorAction::Trigger {
                    id: cp,
                    kind: CheckpointKind::PERIODIC
                },
                CoordinatorAction::Finalize {
                    id: cp,
                    kind: CheckpointKind::PERIODIC,
                    acks: Vec::new()
                },
            ]
        );
        assert_eq!(c.finalized(cp, ms(1)).len(), 1);
    }

    #[test]
    fn ids_continue_from_next_id_across_restarts() {
        let mut c = Coordinator::new(&every(100), tasks(1), id(41), ms(0));
        assert_eq!(triggered(&c.on_tick(ms(100))), vec![id(41)]);
        c.abort_all(AbortReason::JobRestarting, ms(150));
        c.reset_tasks(tasks(1), ms(150));
        assert_eq!(trigger(&mut c, SAVEPOINT, 160), id(42));
        assert_eq!(triggered(&c.on_tick(ms(250))), Vec::<CheckpointId>::new());
        complete(&mut c, id(42), 260);
        assert_eq!(triggered(&c.on_tick(ms(260))), vec![id(43)]);
    }

    #[test]
    fn abort_reasons_read_as_sentences_after_the_checkpoint() {
        let declined = AbortReason::Declined {
            task: TaskId {
                vertex: 2,
                subtask: 1,
            },
            reason: "state too large".into(),
        };
        assert_eq!(
            format!("checkpoint 3 {declined}"),
            "checkpoint 3 was declined by task 2#1: state too large"
        );
        assert!(AbortReason::Expired
            .to_string()
            .contains("execution.checkpointing.timeout"));
        assert!(!AbortReason::Subsumed.is_failure());
        assert!(!AbortReason::JobCanceled.is_failure());
    }
}

/// Random interleavings of ticks, acknowledgements, declines, storage outcomes, forced
/// triggers and restarts against a model that checks the coordinator's invariants.
#[cfg(test)]
mod proptests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;
    use crate::element::SavepointFormat;

    type Action = CoordinatorAction<u64>;

    #[derive(Clone, Debug)]
    enum Op {
        Tick { advance_ms: u64 },
        Ack { id: usize, task: usize },
        Decline { id: usize, task: usize },
        Finalized { id: usize },
        FinalizeFailed { id: usize },
        TriggerNow { kind: usize },
        Restart { tasks: u32 },
    }

    const KINDS: [CheckpointKind; 4] = [
        CheckpointKind::PERIODIC,
        CheckpointKind::Checkpoint { full: true },
        CheckpointKind::Savepoint {
            format: SavepointFormat::Native,
        },
        CheckpointKind::StopWithSavepoint {
            format: SavepointFormat::Canonical,
            drain: true,
        },
    ];

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..700).prop_map(|advance_ms| Op::Tick { advance_ms }),
            8 => (any::<usize>(), any::<usize>()).prop_map(|(id, task)| Op::Ack { id, task }),
            1 => (any::<usize>(), any::<usize>())
                .prop_map(|(id, task)| Op::Decline { id, task }),
            3 => any::<usize>().prop_map(|id| Op::Finalized { id }),
            1 => any::<usize>().prop_map(|id| Op::FinalizeFailed { id }),
            1 => (0..KINDS.len()).prop_map(|kind| Op::TriggerNow { kind }),
            1 => (0u32..4).prop_map(|tasks| Op::Restart { tasks }),
        ]
    }

    fn config() -> impl Strategy<Value = CheckpointConfig> {
        (
            100u64..1500,
            200u64..3000,
            prop_oneof![Just(0u64), 1u64..800],
            1u32..4,
            0u32..4,
            1u32..4,
        )
            .prop_map(
                |(interval, timeout, min_pause, max_concurrent, tolerable, retained)| {
                    CheckpointConfig {
                        interval: Some(Duration::from_millis(interval)),
                        timeout: Duration::from_millis(timeout),
                        min_pause: Duration::from_millis(min_pause),
                        max_concurrent,
                        tolerable_failures: tolerable,
                        num_retained: retained,
                        ..CheckpointConfig::default()
                    }
                },
            )
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Stage {
        Collecting,
        Finalizing,
        Ended,
    }

    #[derive(Debug)]
    struct Expected {
        kind: CheckpointKind,
        triggered_at: Duration,
        tasks: BTreeSet<TaskId>,
        acks: BTreeMap<TaskId, u64>,
        stage: Stage,
    }

    /// The call an action list came from.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Call {
        Tick,
        Ack,
        Decline,
        Finalized(CheckpointId),
        FinalizeFailed,
        TriggerNow,
        AbortAll,
    }

    /// What the coordinator should know, rebuilt from its actions and checked against them.
    struct Model {
        config: CheckpointConfig,
        now: Duration,
        tasks: Vec<TaskId>,
        checkpoints: BTreeMap<CheckpointId, Expected>,
        last_trigger: Option<CheckpointId>,
        /// Start of the current periodic period: the last periodic trigger or (re)start.
        period_start: Duration,
        schedule_stopped: bool,
        last_completion_at: Option<Duration>,
        last_completed: Option<CheckpointId>,
        consecutive: u32,
        failover_requested: bool,
        completed_checkpoints: Vec<CheckpointId>,
        discarded: BTreeSet<CheckpointId>,
        completed: u64,
        failed: u64,
        next_payload: u64,
    }

    impl Model {
        fn pending(&self) -> usize {
            self.checkpoints
                .values()
                .filter(|e| e.stage != Stage::Ended)
                .count()
        }

        fn candidate(&self, index: usize, next_id: CheckpointId) -> CheckpointId {
            let ids: Vec<CheckpointId> =
                self.checkpoints.keys().copied().chain([next_id]).collect();
            ids[index % ids.len()]
        }

        fn task(&self, index: usize) -> TaskId {
            // One index past the tasks is a stranger.
            self.tasks
                .get(index % (self.tasks.len() + 1))
                .copied()
                .unwrap_or(TaskId {
                    vertex: 99,
                    subtask: 0,
                })
        }

        /// Whether the periodic trigger is due and allowed at `now`.
        fn periodic_allowed(&self) -> bool {
            let interval = self.config.interval.unwrap();
            let pause_over = self
                .last_completion_at
                .is_none_or(|at| self.now >= at + self.config.min_pause);
            !self.schedule_stopped
                && !self.failover_requested
                && self.now >= self.period_start + interval
                && pause_over
                && self.pending() < self.config.effective_max_concurrent() as usize
        }

        /// Checks `actions` (returned by `call`) against the model and updates it.
        fn observe(&mut self, call: Call, actions: &[Action]) -> Result<(), TestCaseError> {
            let mut expect_fail_job = false;
            let mut periodic_triggers = 0;
            for action in actions {
                if expect_fail_job {
                    let is_fail_job = matches!(action, CoordinatorAction::FailJob { .. });
                    prop_assert!(is_fail_job, "expected FailJob, got {:?}", action);
                    expect_fail_job = false;
                    self.failover_requested = true;
                    continue;
                }
                match action {
                    CoordinatorAction::Trigger { id, kind } => {
                        prop_assert!(matches!(call, Call::Tick | Call::TriggerNow));
                        prop_assert!(self.last_trigger.is_none_or(|last| *id > last));
                        self.last_trigger = Some(*id);
                        if call == Call::Tick {
                            periodic_triggers += 1;
                            prop_assert_eq!(*kind, CheckpointKind::PERIODIC);
                            prop_assert!(self.periodic_allowed(), "periodic trigger not allowed");
                            self.period_start = self.now;
                        }
                        self.checkpoints.insert(
                            *id,
                            Expected {
                                kind: *kind,
                                triggered_at: self.now,
                                tasks: self.tasks.iter().copied().collect(),
                                acks: BTreeMap::new(),
                                stage: Stage::Collecting,
                            },
                        );
                        prop_assert!(
                            call != Call::Tick
                                || self.pending()
                                    <= self.config.effective_max_concurrent() as usize
                        );
                    }
                    CoordinatorAction::Finalize { id, kind, acks } => {
                        let e = self
                            .checkpoints
                            .get_mut(id)
                            .expect("finalize of unknown id");
                        prop_assert_eq!(e.stage, Stage::Collecting, "Finalize twice");
                        prop_assert_eq!(*kind, e.kind);
                        let expected: Vec<(TaskId, u64)> =
                            e.acks.iter().map(|(t, p)| (*t, *p)).collect();
                        prop_assert_eq!(acks, &expected);
                        prop_assert_eq!(e.acks.len(), e.tasks.len(), "Finalize before all acks");
                        e.stage = Stage::Finalizing;
                    }
                    CoordinatorAction::Complete { id, kind } => {
                        prop_assert_eq!(call, Call::Finalized(*id));
                        let e = self
                            .checkpoints
                            .get_mut(id)
                            .expect("complete of unknown id");
                        prop_assert_eq!(e.stage, Stage::Finalizing, "Complete not after Finalize");
                        prop_assert_eq!(*kind, e.kind);
                        e.stage = Stage::Ended;
                        self.completed += 1;
                        self.last_completion_at = Some(self.now);
                        self.last_completed = self.last_completed.max(Some(*id));
                        self.consecutive = 0;
                        if !kind.is_savepoint() {
                            self.completed_checkpoints.push(*id);
                        }
                    }
                    CoordinatorAction::Abort { id, kind, reason } => {
                        let timeout = self.config.timeout;
                        let now = self.now;
                        let e = self.checkpoints.get_mut(id).expect("abort of unknown id");
                        prop_assert!(
                            e.stage != Stage::Ended,
                            "second terminal outcome for {}",
                            id
                        );
                        prop_assert_eq!(*kind, e.kind);
                        match (reason, call) {
                            (AbortReason::Expired, Call::Tick) => {
                                prop_assert!(now >= e.triggered_at + timeout)
                            }
                            (AbortReason::Declined { .. }, Call::Decline) => {
                                prop_assert_eq!(e.stage, Stage::Collecting)
                            }
                            (AbortReason::FinalizeFailed(_), Call::FinalizeFailed) => {
                                prop_assert_eq!(e.stage, Stage::Finalizing)
                            }
                            (AbortReason::Subsumed, Call::Finalized(by)) => {
                                prop_assert!(*id < by && !kind.is_savepoint())
                            }
                            (AbortReason::JobRestarting, Call::AbortAll) => {}
                            other => prop_assert!(false, "unexpected abort {:?}", other),
                        }
                        e.stage = Stage::Ended;
                        self.failed += 1;
                        let counted = reason.is_failure()
                            && !kind.is_savepoint()
                            && self.last_completed.is_none_or(|last| *id > last)
                            && !self.failover_requested;
                        if counted {
                            self.consecutive += 1;
                            expect_fail_job = self.consecutive > self.config.tolerable_failures;
                        }
                    }
                    CoordinatorAction::Discard { ids } => {
                        prop_assert!(matches!(call, Call::Finalized(_)));
                        for id in ids {
                            prop_assert!(self.completed_checkpoints.contains(id));
                            prop_assert!(self.discarded.insert(*id), "discarded twice");
                        }
                    }
                    CoordinatorAction::FailJob { .. } => {
                        prop_assert!(
                            false,
                            "FailJob without a counted failure exceeding the limit"
                        )
                    }
                }
            }
            prop_assert!(!expect_fail_job, "missing FailJob");
            prop_assert!(periodic_triggers <= 1);
            if call == Call::Tick {
                // Nothing expired is left pending, and a due trigger was not skipped.
                for e in self.checkpoints.values() {
                    prop_assert!(
                        e.stage == Stage::Ended || self.now < e.triggered_at + self.config.timeout
                    );
                }
                prop_assert!(
                    !self.periodic_allowed(),
                    "a due periodic trigger was skipped"
                );
            }
            for (id, e) in &self.checkpoints {
                if e.stage == Stage::Collecting {
                    prop_assert!(
                        e.acks.len() < e.tasks.len(),
                        "{} fully acked, no Finalize",
                        id
                    );
                }
            }
            Ok(())
        }

        fn check_state(&self, c: &CheckpointCoordinator<u64>) -> Result<(), TestCaseError> {
            let pending: Vec<CheckpointId> = self
                .checkpoints
                .iter()
                .filter(|(_, e)| e.stage != Stage::Ended)
                .map(|(id, _)| *id)
                .collect();
            prop_assert_eq!(c.pending_ids(), pending);
            let counts = *c.counts();
            prop_assert_eq!(counts.total, self.checkpoints.len() as u64);
            prop_assert_eq!(counts.in_progress, self.pending() as u64);
            prop_assert_eq!(counts.completed, self.completed);
            prop_assert_eq!(counts.failed, self.failed);
            prop_assert_eq!(c.consecutive_failures(), self.consecutive);
            // Retained: the newest completed checkpoints, at most num_retained of them.
            let keep = self.config.num_retained as usize;
            let newest = &self.completed_checkpoints
                [self.completed_checkpoints.len().saturating_sub(keep)..];
            prop_assert_eq!(c.retained().ids(), newest.to_vec());
            let kept: Vec<CheckpointId> = self
                .completed_checkpoints
                .iter()
                .filter(|id| !self.discarded.contains(id))
                .copied()
                .collect();
            prop_assert_eq!(kept, newest.to_vec());
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn coordinator_invariants_hold_for_random_interleavings(
            config in config(),
            initial_tasks in 0u32..4,
            first_id in 1u64..1000,
            ops in prop::collection::vec(op(), 1..120),
        ) {
            let tasks: Vec<TaskId> =
                (0..initial_tasks).map(|vertex| TaskId { vertex, subtask: 0 }).collect();
            let mut c = CheckpointCoordinator::<u64>::new(
                &config, tasks.clone(), CheckpointId(first_id), Duration::ZERO);
            let mut model = Model {
                config: config.clone(),
                now: Duration::ZERO,
                tasks,
                checkpoints: BTreeMap::new(),
                last_trigger: None,
                period_start: Duration::ZERO,
                schedule_stopped: false,
                last_completion_at: None,
                last_completed: None,
                consecutive: 0,
                failover_requested: false,
                completed_checkpoints: Vec::new(),
                discarded: BTreeSet::new(),
                completed: 0,
                failed: 0,
                next_payload: 0,
            };
            for op in ops {
                match op {
                    Op::Tick { advance_ms } => {
                        let wakeup = c.next_wakeup();
                        model.now += Duration::from_millis(advance_ms);
                        let actions = c.on_tick(model.now);
                        if !actions.is_empty() {
                            prop_assert!(
                                wakeup.is_some_and(|w| w <= model.now),
                                "tick at {:?} did work but next_wakeup said {:?}",
                                model.now, wakeup
                            );
                        }
                        model.observe(Call::Tick, &actions)?;
                    }
                    Op::Ack { id, task } => {
                        let id = model.candidate(id, c.next_id());
                        let task = model.task(task);
                        let payload = model.next_payload;
                        model.next_payload += 1;
                        if let Some(e) = model.checkpoints.get_mut(&id) {
                            if e.stage == Stage::Collecting && e.tasks.contains(&task) {
                                e.acks.entry(task).or_insert(payload);
                            }
                        }
                        let actions = c.acknowledge(id, task, payload, model.now);
                        model.observe(Call::Ack, &actions)?;
                    }
                    Op::Decline { id, task } => {
                        let id = model.candidate(id, c.next_id());
                        let task = model.task(task);
                        let declinable = model.checkpoints.get(&id).is_some_and(|e| {
                            e.stage == Stage::Collecting && e.tasks.contains(&task)
                        });
                        let actions = c.decline(id, task, "declined".into(), model.now);
                        prop_assert_eq!(!actions.is_empty(), declinable);
                        model.observe(Call::Decline, &actions)?;
                    }
                    Op::Finalized { id } => {
                        let id = model.candidate(id, c.next_id());
                        let finalizing = model
                            .checkpoints
                            .get(&id)
                            .is_some_and(|e| e.stage == Stage::Finalizing);
                        let actions = c.finalized(id, model.now);
                        prop_assert_eq!(!actions.is_empty(), finalizing);
                        model.observe(Call::Finalized(id), &actions)?;
                    }
                    Op::FinalizeFailed { id } => {
                        let id = model.candidate(id, c.next_id());
                        let finalizing = model
                            .checkpoints
                            .get(&id)
                            .is_some_and(|e| e.stage == Stage::Finalizing);
                        let actions = c.finalize_failed(id, "disk full".into(), model.now);
                        prop_assert_eq!(!actions.is_empty(), finalizing);
                        model.observe(Call::FinalizeFailed, &actions)?;
                    }
                    Op::TriggerNow { kind } => {
                        let (id, actions) = c.trigger_now(KINDS[kind], model.now);
                        prop_assert_eq!(
                            &actions[0],
                            &CoordinatorAction::Trigger { id, kind: KINDS[kind] }
                        );
                        model.observe(Call::TriggerNow, &actions)?;
                    }
                    Op::Restart { tasks } => {
                        let actions = c.abort_all(AbortReason::JobRestarting, model.now);
                        model.observe(Call::AbortAll, &actions)?;
                        model.schedule_stopped = true;
                        // Stopped: nothing pending, and no periodic trigger however late.
                        let later = c.on_tick(model.now + Duration::from_secs(3600));
                        prop_assert!(later.is_empty(), "after abort_all: {:?}", later);
                        let tasks: Vec<TaskId> =
                            (0..tasks).map(|vertex| TaskId { vertex, subtask: 1 }).collect();
                        c.reset_tasks(tasks.clone(), model.now);
                        model.tasks = tasks;
                        model.schedule_stopped = false;
                        model.period_start = model.now;
                        if model.failover_requested {
                            model.failover_requested = false;
                            model.consecutive = 0;
                        }
                    }
                }
                model.check_state(&c)?;
            }
            // Ending the job gives every checkpoint exactly one terminal outcome.
            let actions = c.abort_all(AbortReason::JobRestarting, model.now);
            model.observe(Call::AbortAll, &actions)?;
            model.check_state(&c)?;
            for (id, e) in &model.checkpoints {
                prop_assert_eq!(e.stage, Stage::Ended, "{} never ended", id);
            }
        }
    }
}
