//! Where a job restores from: the snapshot it was started from, the checkpoints it completed,
//! and what happens when the state of one turns out to be unusable ([`Fallback`]); and which
//! abandoned checkpoint directories a sweep must leave alone ([`SweepKeep`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{JobCheckpoints, Now};
use crate::checkpoint::coordinator::CheckpointCoordinator;
use crate::checkpoint::metadata::CheckpointMetadata;
use crate::checkpoint::stats::RestoredCheckpointStats;
use crate::checkpoint::storage::SnapshotLocation;
use crate::ids::CheckpointId;

/// The snapshot a (re)started attempt restores from.
#[derive(Clone, Debug)]
pub struct RestorePoint {
    pub location: SnapshotLocation,
    pub metadata: Arc<CheckpointMetadata>,
    pub source: RestoreSource,
}

/// Where a restore point came from: it decides whether a damaged one may be replaced by an
/// older checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreSource {
    /// The snapshot the user started the job from (`-s`): never replaced silently.
    Requested,
    /// A checkpoint this job completed and retains.
    Retained,
}

/// What to do when the state of the restore point turned out to be unusable.
#[derive(Clone, Debug)]
pub enum Fallback {
    /// Restore from this older retained checkpoint instead: read its `_metadata`, then call
    /// [`JobCheckpoints::fell_back`] and deploy (which verifies every state file it reads).
    Older {
        id: CheckpointId,
        location: SnapshotLocation,
    },
    /// Nothing to fall back to: the job fails.
    Exhausted(Exhausted),
}

/// Why there is nothing to fall back to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exhausted {
    /// The state is the snapshot the user asked for (`-s`), never replaced silently.
    Requested,
    /// No older retained checkpoint is left.
    NothingOlder,
    /// The job restored nothing: the state that cannot be used is the job's own (state
    /// registered twice with different types, say); retrying cannot heal that either.
    NotRestored,
}

impl Exhausted {
    /// Says why the job fails, after the failure's own sentence.
    pub fn explain(self) -> &'static str {
        match self {
            Exhausted::Requested => {
                "the snapshot given to restore from is damaged; it is not retried"
            }
            Exhausted::NothingOlder => {
                "damaged state is not retried, and no older retained checkpoint is left to fall \
                 back to"
            }
            Exhausted::NotRestored => "retrying cannot heal this; the job fails",
        }
    }
}

/// The checkpoints a sweep of abandoned `chk-<n>` directories keeps, fixed when the sweep
/// starts: those in flight then, and every later id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SweepKeep {
    pub in_flight: BTreeSet<CheckpointId>,
    pub next: CheckpointId,
}

impl SweepKeep {
    /// True when checkpoint `id` may still be written to or complete.
    pub fn keeps(&self, id: CheckpointId) -> bool {
        id >= self.next || self.in_flight.contains(&id)
    }
}

impl<R> JobCheckpoints<R> {
    /// The job starts from `metadata` at `location` (a savepoint or retained checkpoint): the
    /// first attempt restores it, checkpoint ids continue after it, and in CLAIM mode it is
    /// disposed once later checkpoints subsume it.
    pub fn restored(
        &mut self,
        location: SnapshotLocation,
        metadata: CheckpointMetadata,
        claim: bool,
        now: Now,
    ) {
        let next = metadata.checkpoint_id.next();
        self.stats.on_restore(RestoredCheckpointStats {
            id: metadata.checkpoint_id,
            restore_timestamp_ms: now.wall_ms,
            is_savepoint: metadata.kind.is_savepoint(),
            external_path: location.external_path(),
        });
        self.restored += 1;
        self.coordinator =
            CheckpointCoordinator::new(&self.config, Vec::new(), next, now.monotonic);
        if claim {
            self.claimed = Some(location.clone());
        }
        self.latest = Some(RestorePoint {
            location,
            metadata: Arc::new(metadata),
            source: RestoreSource::Requested,
        });
    }

    /// The state of the current restore point is unusable (`reason` says why). A retained
    /// checkpoint is no longer retained (and so never deleted by retention: it stays for a
    /// person to inspect); the next older retained checkpoint is the one to try. A snapshot the
    /// user asked for is never replaced.
    pub fn restore_point_damaged(&mut self, reason: &str) -> Fallback {
        let Some(point) = self.latest.as_ref() else {
            return Fallback::Exhausted(Exhausted::NotRestored);
        };
        let damaged = point.metadata.checkpoint_id;
        if point.source == RestoreSource::Requested {
            return Fallback::Exhausted(Exhausted::Requested);
        }
        self.coordinator.forget_retained(damaged);
        let older = self
            .coordinator
            .retained()
            .ids()
            .into_iter()
            .rev()
            .find(|&id| id < damaged);
        tracing::warn!(job_id = %self.job_id, checkpoint_id = damaged.0, older = ?older.map(|id| id.0), %reason, "the latest checkpoint cannot be restored; it is kept but no longer used");
        match older {
            Some(id) => Fallback::Older {
                id,
                location: self.storage.checkpoint_location(id),
            },
            None => Fallback::Exhausted(Exhausted::NothingOlder),
        }
    }

    /// The job restores from the older checkpoint `metadata` at `location` (a
    /// [`Fallback::Older`]) from now on; the statistics show it as restored.
    pub fn fell_back(
        &mut self,
        location: SnapshotLocation,
        metadata: CheckpointMetadata,
        now: Now,
    ) {
        self.stats.on_restore(RestoredCheckpointStats {
            id: metadata.checkpoint_id,
            restore_timestamp_ms: now.wall_ms,
            is_savepoint: false,
            external_path: location.external_path(),
        });
        self.restored += 1;
        self.latest = Some(RestorePoint {
            location,
            metadata: Arc::new(metadata),
            source: RestoreSource::Retained,
        });
    }

    /// The snapshot the next attempt restores from, if any.
    pub fn restore_point(&self) -> Option<&RestorePoint> {
        self.latest.as_ref()
    }

    /// Which `chk-<n>` directories a sweep of abandoned checkpoints must leave alone now:
    /// every checkpoint in flight and every id not handed out yet (see
    /// `CheckpointStorage::discard_abandoned`).
    pub fn sweep_keep(&self) -> SweepKeep {
        SweepKeep {
            in_flight: self.in_flight.keys().copied().collect(),
            next: self.coordinator.next_id(),
        }
    }
}
