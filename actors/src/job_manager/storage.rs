//! The job manager's storage work: deleting what retention, aborts and CLAIM mode drop, and
//! sweeping the leftovers of aborted checkpoints — all in the background, awaited before the
//! job reports a terminal status.

use tracing::{info, warn};
use weir::checkpoint::storage::SnapshotLocation;
use weir::ids::CheckpointId;

use super::JobManager;

impl JobManager {
    /// Runs storage work in the background, remembered until the job ends.
    pub(super) fn in_background(&mut self, work: impl std::future::Future<Output = ()> + 'static) {
        self.background.retain(|h| !h.is_finished());
        self.background.push(actix::spawn(work));
    }

    /// After a completed checkpoint, in the background and in this order: deletes the
    /// checkpoints retention no longer keeps, then what aborted checkpoints left behind (files
    /// that landed after their abort: every `chk-<n>` without `_metadata` that is not in
    /// flight). In this order the sweep never meets a subsumed checkpoint half deleted.
    pub(super) fn clean_up_after_completion(&mut self, subsumed: Vec<CheckpointId>) {
        let storage = self.storage.clone();
        let job_id = self.job_id;
        let sweep = self.abandoned_sweep();
        self.in_background(async move {
            for id in subsumed {
                if let Err(e) = storage.discard_checkpoint(id).await {
                    warn!(%job_id, checkpoint_id = id.0, error = %e, "deleting a subsumed checkpoint failed");
                }
            }
            if let Some(sweep) = sweep {
                sweep.await;
            }
        });
    }

    /// The sweep of abandoned checkpoints as things stand, unless this job's checkpoint
    /// directory may be shared with other jobs (`create-subdir` off).
    pub(super) fn abandoned_sweep(
        &self,
    ) -> Option<impl std::future::Future<Output = ()> + 'static> {
        if !self.graph.config.checkpoint.create_subdir {
            return None;
        }
        let keep = self.checkpoints.sweep_keep();
        let writing = self.writing_metadata.clone();
        let storage = self.storage.clone();
        let job_id = self.job_id;
        Some(async move {
            let keep = |id| keep.keeps(id) || writing.contains(&id);
            match storage.discard_abandoned(keep).await {
                Ok(sweep) if !sweep.discarded.is_empty() => {
                    info!(%job_id, discarded = ?sweep.discarded, "deleted the leftovers of aborted checkpoints");
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(%job_id, error = %e, "sweeping aborted checkpoints failed; a later sweep retries")
                }
            }
        })
    }

    pub(super) fn discard_incomplete(&mut self, location: SnapshotLocation) {
        let storage = self.storage.clone();
        let job_id = self.job_id;
        self.in_background(async move {
            if let Err(e) = storage.discard_incomplete(&location).await {
                warn!(%job_id, path = %location.external_path(), error = %e, "deleting an aborted checkpoint failed");
            }
        });
    }
}
