//! Where each pending checkpoint's state goes, shared by the job manager and its subtasks.
//!
//! The job manager registers a checkpoint's [`SnapshotLocation`] before it triggers the sources,
//! so every subtask that sees the barrier finds it; it removes it when the checkpoint completes
//! or is aborted. A subtask that finds no location declines (the checkpoint is no longer pending).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use weir::checkpoint::storage::SnapshotLocation;
use weir::ids::CheckpointId;

#[derive(Clone, Default)]
pub struct LocationRegistry(Arc<Mutex<HashMap<CheckpointId, SnapshotLocation>>>);

impl LocationRegistry {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<CheckpointId, SnapshotLocation>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, id: CheckpointId, location: SnapshotLocation) {
        self.map().insert(id, location);
    }

    pub fn get(&self, id: CheckpointId) -> Option<SnapshotLocation> {
        self.map().get(&id).cloned()
    }

    pub fn remove(&self, id: CheckpointId) -> Option<SnapshotLocation> {
        self.map().remove(&id)
    }
}
