//! How an attempt ends: a failure into the restart strategy, damaged restored state (never
//! retried: fall back to an older retained checkpoint or fail), and the job's terminal status
//! with the retention setting applied.

use actix::prelude::*;
use tracing::warn;
use weir::checkpoint::lifecycle::Fallback;
use weir::checkpoint::retention::discard_on_termination;
use weir::restart::RestartDecision;
use weir::status::JobStatus;

use super::{wall_clock_ms, JobManager};
use crate::messages::Shutdown;

impl JobManager {
    /// Stops every subtask of the attempt; pending checkpoints end with it.
    pub(super) fn stop_tasks(&mut self, ctx: &mut Context<Self>) {
        for t in self.tasks.drain(..) {
            t.addr.do_send(Shutdown);
        }
        let now = self.now();
        let actions = self.checkpoints.stop_attempt(self.state.status, now);
        self.execute(actions, ctx);
    }

    /// The state this attempt restores is unusable: retrying it cannot heal, whatever the
    /// restart strategy says. A retained checkpoint gives way to the next older one that
    /// verifies; a snapshot the user asked for (`-s`), or running out of older checkpoints,
    /// fails the job with `reason`.
    pub(super) fn on_damaged_state(&mut self, reason: String, ctx: &mut Context<Self>) {
        if self.state.status.is_terminal() {
            return;
        }
        self.stop_tasks(ctx);
        self.state.failure = Some(reason.clone());
        match self.checkpoints.restore_point_damaged(&reason) {
            Fallback::Older { id, location } => {
                warn!(job_id = %self.job_id, checkpoint_id = id.0, path = %location.external_path(), skipped_because = %reason, "falling back to an older retained checkpoint");
                self.state.restarts += 1;
                self.set_status(JobStatus::Restarting);
                let fut = async move { location.read_metadata().await.map(|m| (location, m)) };
                ctx.wait(
                    fut.into_actor(self)
                        .map(move |result, act, ctx| match result {
                            Ok((location, metadata)) => {
                                let now = act.now();
                                act.checkpoints.fell_back(location, metadata, now);
                                act.deploy(ctx);
                            }
                            Err(e) => act.on_damaged_state(format!("checkpoint {id}: {e}"), ctx),
                        }),
                );
            }
            Fallback::Exhausted(why) => {
                let why = why.explain();
                self.terminate(JobStatus::Failed, Some(format!("{reason} ({why})")), ctx)
            }
        }
    }

    /// A failure that may heal by retrying: the restart strategy decides whether and when
    /// `step` (deploying an attempt, or reading the snapshot to restore from) runs again.
    pub(super) fn restart_or_give_up(
        &mut self,
        reason: String,
        ctx: &mut Context<Self>,
        step: fn(&mut Self, &mut Context<Self>),
    ) {
        self.state.failure = Some(reason.clone());
        let jitter = (wall_clock_ms() % 2001) as f64 / 1000.0 - 1.0;
        match self.restart.on_failure(self.origin.elapsed(), jitter) {
            RestartDecision::Restart { delay } => {
                self.state.restarts += 1;
                self.set_status(JobStatus::Restarting);
                ctx.run_later(delay, move |act, ctx| {
                    if act.state.status == JobStatus::Restarting {
                        step(act, ctx);
                    }
                });
            }
            RestartDecision::GiveUp { reason: why } => {
                self.terminate(JobStatus::Failed, Some(format!("{why}: {reason}")), ctx);
            }
        }
    }

    pub(super) fn on_failure(&mut self, reason: String, ctx: &mut Context<Self>) {
        if self.state.status.is_terminal() || self.state.status == JobStatus::Restarting {
            return;
        }
        warn!(job_id = %self.job_id, attempt = self.attempt, %reason, "job failure");
        self.stop_tasks(ctx);
        self.restart_or_give_up(reason, ctx, Self::deploy);
    }

    /// Ends the job in `status`, applying the retention setting to retained checkpoints.
    pub(super) fn terminate(
        &mut self,
        status: JobStatus,
        failure: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        if self.state.status.is_terminal() {
            return;
        }
        self.stop_tasks(ctx);
        for a in self.arbiters.drain(..) {
            a.stop();
        }
        if failure.is_some() {
            self.state.failure = failure;
        }
        let retention = self.graph.config.checkpoint.externalized_retention;
        let discard = if discard_on_termination(retention, status) {
            self.checkpoints.retained()
        } else {
            Vec::new()
        };
        let background = std::mem::take(&mut self.background);
        let storage = self.storage.clone();
        let job_id = self.job_id;
        let sweep = self.abandoned_sweep();
        let fut = async move {
            // Deletions already under way finish first: they may touch the same directories.
            futures::future::join_all(background).await;
            for id in discard {
                if let Err(e) = storage.discard_checkpoint(id).await {
                    warn!(%job_id, checkpoint_id = id.0, error = %e, "deleting a checkpoint at job end failed");
                }
            }
            if let Some(sweep) = sweep {
                sweep.await;
            }
            // Local recovery's copies serve failovers of this job only.
            storage.discard_local_copies().await;
        };
        ctx.wait(fut.into_actor(self).map(move |_, act, ctx| {
            act.set_status(status);
            let actions = act.checkpoints.job_ended(status);
            act.execute(actions, ctx);
        }));
    }
}
