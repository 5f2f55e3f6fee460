//! Mapping a snapshot's state onto a job graph: which stored handles each new subtask reads.
//!
//! State is matched to operators by uid. Keyed state goes by key-group range (so a different
//! parallelism works: each new subtask reads the old subtasks whose ranges overlap its own);
//! operator state goes to every new subtask as the full list of old subtasks' handles, and the
//! operator-state store redistributes it. A different max parallelism than the snapshot's is an
//! error, as is state of an operator the new graph lacks unless non-restored state is allowed.

use std::collections::HashMap;
use std::sync::Arc;

use crate::checkpoint::metadata::{
    CheckpointMetadata, OperatorSnapshot, StateHandle, SubtaskSnapshot,
};
use crate::checkpoint::storage::{SnapshotLocation, StateReadError};
use crate::failure::FailureCause;
use crate::graph::JobGraph;
use crate::partition::Partitioning;
use crate::state::key_group::range_for_subtask;
use crate::state::operator_state::OperatorStateStore;
use crate::state::StateError;
use crate::vertex::RestoredState;
use opendal::ErrorKind;

/// Handles one new subtask restores from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubtaskRestore {
    /// Keyed handles of the old subtasks whose key groups overlap this subtask's.
    pub keyed: Vec<StateHandle>,
    /// Operator-state handles of every old subtask, in old subtask order (`None`: that old
    /// subtask had no operator state); empty when no old subtask had any.
    pub operator: Vec<Option<StateHandle>>,
    /// Channel-state handles (unaligned checkpoints) of the old subtasks whose in-flight input
    /// this subtask takes over, in old subtask order.
    pub channel: Vec<StateHandle>,
}

/// Restore plan: `plan[vertex][subtask]`.
pub type RestorePlan = Vec<Vec<SubtaskRestore>>;

/// Why a snapshot cannot be restored into this graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("cannot map state of operator `{uid}` in the snapshot to the new job: no operator has that uid. Allow non-restored state (-n / execution.state-recovery.ignore-unclaimed-state) to drop it")]
    UnmatchedState { uid: String },
    #[error("operator `{uid}` has max parallelism {new}, the snapshot has {old}: max parallelism cannot change across a restore; set it back to {old}")]
    MaxParallelismChanged { uid: String, old: u32, new: u32 },
    #[error("snapshot of operator `{uid}` is inconsistent: {reason}")]
    Inconsistent { uid: String, reason: String },
}

/// Builds the restore plan of `graph` from `metadata`.
///
/// # Errors
/// [`RestoreError`] naming the operator when the state cannot be mapped.
pub fn plan_restore(
    metadata: &CheckpointMetadata,
    graph: &JobGraph,
    allow_non_restored_state: bool,
) -> Result<RestorePlan, RestoreError> {
    let by_uid: HashMap<&str, usize> = graph
        .vertices
        .iter()
        .enumerate()
        .map(|(i, v)| (v.uid.as_str(), i))
        .collect();
    let mut plan: RestorePlan = graph
        .vertices
        .iter()
        .map(|v| vec![SubtaskRestore::default(); v.parallelism as usize])
        .collect();
    for op in &metadata.operators {
        let has_state = op
            .subtasks
            .iter()
            .any(|s| s.keyed.is_some() || s.operator.is_some() || s.channel.is_some());
        let Some(&v) = by_uid.get(op.uid.as_str()) else {
            if has_state && !allow_non_restored_state {
                return Err(RestoreError::UnmatchedState {
                    uid: op.uid.clone(),
                });
            }
            continue;
        };
        let vertex = &graph.vertices[v];
        let has_keyed = op.subtasks.iter().any(|s| s.keyed.is_some());
        if has_keyed && vertex.max_parallelism != op.max_parallelism {
            return Err(RestoreError::MaxParallelismChanged {
                uid: op.uid.clone(),
                old: op.max_parallelism,
                new: vertex.max_parallelism,
            });
        }
        let mut old = op.subtasks.clone();
        old.sort_by_key(|s| s.index);
        if old.iter().enumerate().any(|(i, s)| s.index as usize != i)
            || old.len() != op.parallelism as usize
        {
            return Err(RestoreError::Inconsistent {
                uid: op.uid.clone(),
                reason: format!(
                    "parallelism {} but subtasks {:?}",
                    op.parallelism,
                    old.iter().map(|s| s.index).collect::<Vec<_>>()
                ),
            });
        }
        let operator_handles: Vec<Option<StateHandle>> =
            old.iter().map(|s| s.operator.clone()).collect();
        let any_operator_state = operator_handles.iter().any(Option::is_some);
        for (new_index, target) in plan[v].iter_mut().enumerate() {
            let range =
                range_for_subtask(vertex.max_parallelism, vertex.parallelism, new_index as u32);
            for s in &old {
                let Some(handle) = &s.keyed else { continue };
                let old_range = range_for_subtask(op.max_parallelism, op.parallelism, s.index);
                if !old_range.intersect(&range).is_empty() {
                    target.keyed.push(handle.clone());
                }
            }
            if any_operator_state {
                target.operator = operator_handles.clone();
            }
        }
        assign_channel_state(graph, v, op, &old, &mut plan[v]);
    }
    Ok(plan)
}

/// Which new subtask replays which old subtask's channel state (the in-flight input of an
/// unaligned checkpoint). Same parallelism: its own. Otherwise, for an operator fed by a key-by
/// edge, every new subtask reads the old subtasks whose key groups overlap its own (all of them
/// if the max parallelism changed) and keeps only the records of its key groups
/// (`VertexRuntime::restore_input`); for any other input, old subtask `j` goes to new subtask
/// `j mod p`, so each record is replayed exactly once.
fn assign_channel_state(
    graph: &JobGraph,
    v: usize,
    op: &OperatorSnapshot,
    old: &[SubtaskSnapshot],
    targets: &mut [SubtaskRestore],
) {
    if old.iter().all(|s| s.channel.is_none()) || targets.is_empty() {
        return;
    }
    let vertex = &graph.vertices[v];
    let keyed = graph
        .inputs(v)
        .any(|(_, e)| e.partitioning == Partitioning::KeyBy);
    let new_parallelism = targets.len();
    for (new_index, target) in targets.iter_mut().enumerate() {
        let range = range_for_subtask(vertex.max_parallelism, vertex.parallelism, new_index as u32);
        for s in old {
            let Some(handle) = &s.channel else { continue };
            let takes = if op.parallelism == vertex.parallelism {
                s.index as usize == new_index
            } else if keyed {
                op.max_parallelism != vertex.max_parallelism
                    || !range_for_subtask(op.max_parallelism, op.parallelism, s.index)
                        .intersect(&range)
                        .is_empty()
            } else {
                s.index as usize % new_parallelism == new_index
            };
            if takes {
                target.channel.push(handle.clone());
            }
        }
    }
}

/// Why the state of a subtask could not be read back from a snapshot. The message names the
/// operator, the subtask, the snapshot and the file, and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum RestoreReadError {
    #[error("operator `{uid}` subtask {subtask} cannot restore from `{snapshot}`: {source}")]
    State {
        uid: String,
        subtask: u32,
        snapshot: String,
        #[source]
        source: StateReadError,
    },
    #[error("operator `{uid}`: cannot build an empty operator state: {source}")]
    EmptyState {
        uid: String,
        #[source]
        source: Box<StateError>,
    },
}

impl RestoreReadError {
    /// [`FailureCause::DamagedState`] when the snapshot itself is unusable (a file missing,
    /// truncated, corrupt, replaced by a directory, or named by a damaged `_metadata`);
    /// [`FailureCause::Recoverable`] for other storage errors, which may be transient.
    pub fn cause(&self) -> FailureCause {
        match self {
            RestoreReadError::State { source, .. } => source.cause(),
            RestoreReadError::EmptyState { .. } => FailureCause::Recoverable,
        }
    }
}

impl StateReadError {
    /// Whether retrying the read can heal it (see [`RestoreReadError::cause`]).
    pub fn cause(&self) -> FailureCause {
        match self {
            StateReadError::Missing { .. }
            | StateReadError::NotAFile { .. }
            | StateReadError::SizeMismatch { .. }
            | StateReadError::ChecksumMismatch { .. }
            | StateReadError::UnsafePath { .. } => FailureCause::DamagedState,
            StateReadError::Io { source, .. } => match source.kind() {
                ErrorKind::NotFound | ErrorKind::IsADirectory | ErrorKind::NotADirectory => {
                    FailureCause::DamagedState
                }
                _ => FailureCause::Recoverable,
            },
        }
    }
}

/// Reads every blob `plan` names from the snapshot at `location`: the state each subtask of
/// `graph` starts with (`[vertex][subtask]`). A file several subtasks share is read once; an old
/// subtask without operator state contributes an empty store's blob.
///
/// # Errors
/// [`RestoreReadError`] naming the operator, subtask and file that could not be read.
pub async fn read_restored_state(
    graph: &JobGraph,
    plan: &RestorePlan,
    location: &SnapshotLocation,
) -> Result<Vec<Vec<RestoredState>>, RestoreReadError> {
    let mut restored: Vec<Vec<RestoredState>> = graph
        .vertices
        .iter()
        .map(|v| vec![RestoredState::default(); v.parallelism as usize])
        .collect();
    let mut cache: HashMap<String, Arc<Vec<u8>>> = HashMap::new();
    for (v, subtasks) in plan.iter().enumerate() {
        let uid = &graph.vertices[v].uid;
        for (i, sub) in subtasks.iter().enumerate() {
            let failed = |source| RestoreReadError::State {
                uid: uid.clone(),
                subtask: i as u32,
                snapshot: location.external_path(),
                source,
            };
            for h in &sub.keyed {
                let blob = read_cached(location, h, &mut cache).await.map_err(failed)?;
                restored[v][i].keyed.push(blob);
            }
            for h in &sub.channel {
                let blob = read_cached(location, h, &mut cache).await.map_err(failed)?;
                restored[v][i].channel.push(blob);
            }
            for h in &sub.operator {
                let blob = match h {
                    Some(h) => read_cached(location, h, &mut cache).await.map_err(failed)?,
                    None => empty_operator_state(uid)?,
                };
                restored[v][i].operator.push(blob);
            }
        }
    }
    Ok(restored)
}

async fn read_cached(
    location: &SnapshotLocation,
    handle: &StateHandle,
    cache: &mut HashMap<String, Arc<Vec<u8>>>,
) -> Result<Arc<Vec<u8>>, StateReadError> {
    match handle {
        StateHandle::Inline(bytes) => Ok(Arc::new(bytes.clone())),
        StateHandle::File { path, .. } => {
            if let Some(b) = cache.get(path) {
                return Ok(b.clone());
            }
            let bytes = Arc::new(location.read_state(handle).await?);
            cache.insert(path.clone(), bytes.clone());
            Ok(bytes)
        }
    }
}

/// The blob of an empty operator-state store: what an old subtask without operator state
/// contributes when operator state is redistributed.
fn empty_operator_state(uid: &str) -> Result<Arc<Vec<u8>>, RestoreReadError> {
    OperatorStateStore::for_operator(uid)
        .snapshot()
        .map(Arc::new)
        .map_err(|source| RestoreReadError::EmptyState {
            uid: uid.to_string(),
            source: Box::new(source),
        })
}

#[cfg(test)]
#[path = "restore_tests.rs"]
mod tests;
