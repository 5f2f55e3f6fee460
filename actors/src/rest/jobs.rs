//! [`JobRegistry`]: the jobs the REST API serves, by id — each with its [`JobHandle`] and what
//! the API shows that the handle does not carry (name, vertices, edges and chains, checkpoint
//! settings, and its [`JobHistory`]: status times, end time, failures).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use weir::checkpoint::CheckpointConfig;
use weir::graph::{JobGraph, VertexRole};
use weir::ids::JobId;
use weir::partition::Partitioning;

use super::history::JobHistory;
use crate::JobHandle;

/// One operator of a registered job, as `GET /jobs/:id` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VertexInfo {
    pub uid: String,
    pub name: String,
    pub parallelism: u32,
    pub max_parallelism: u32,
    pub role: VertexRole,
}

/// One edge of a registered job, by vertex index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EdgeInfo {
    pub from: usize,
    pub to: usize,
    pub partitioning: Partitioning,
}

/// A job the REST API knows.
#[derive(Clone)]
pub struct RegisteredJob {
    pub handle: JobHandle,
    pub name: String,
    pub vertices: Vec<VertexInfo>,
    pub edges: Vec<EdgeInfo>,
    /// The chains the operators run fused in (vertex indices, head first; `weir::chain`).
    pub chains: Vec<Vec<usize>>,
    pub checkpoint: CheckpointConfig,
    pub state_backend: String,
    /// Milliseconds since the epoch.
    pub start_time_ms: u64,
    /// Kept up to date by a background watcher of the job's state.
    history: Arc<Mutex<JobHistory>>,
}

impl RegisteredJob {
    /// When the job ended, if it has.
    pub fn end_time_ms(&self) -> Option<u64> {
        self.history().end_time_ms
    }

    /// The job's past as seen so far.
    pub fn history(&self) -> JobHistory {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The chain vertex `index` runs in.
    pub fn chain_of(&self, index: usize) -> Option<&[usize]> {
        self.chains
            .iter()
            .find(|c| c.contains(&index))
            .map(Vec::as_slice)
    }
}

/// Job id → job, shared by the REST handlers and whoever submits jobs.
#[derive(Clone, Default)]
pub struct JobRegistry {
    jobs: Arc<RwLock<BTreeMap<JobId, RegisteredJob>>>,
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl JobRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `handle` (a job submitted from `graph`). Must be called inside an actix System:
    /// a background task records the job's status changes, failures and end.
    pub fn register(&self, handle: &JobHandle, graph: &JobGraph) {
        let history = Arc::new(Mutex::new(JobHistory::default()));
        let job = RegisteredJob {
            handle: handle.clone(),
            name: graph.name.clone(),
            vertices: graph
                .vertices
                .iter()
                .map(|v| VertexInfo {
                    uid: v.uid.clone(),
                    name: v.name.clone(),
                    parallelism: v.parallelism,
                    max_parallelism: v.max_parallelism,
                    role: v.role,
                })
                .collect(),
            edges: graph
                .edges
                .iter()
                .map(|e| EdgeInfo {
                    from: e.from,
                    to: e.to,
                    partitioning: e.partitioning,
                })
                .collect(),
            chains: weir::chain::chains(graph, graph.config.chaining),
            checkpoint: graph.config.checkpoint.clone(),
            state_backend: graph.config.state_backend.name().to_owned(),
            start_time_ms: now_ms(),
            history: history.clone(),
        };
        let mut watched = handle.clone();
        actix_rt::spawn(async move {
            let lock = || history.lock().unwrap_or_else(|e| e.into_inner());
            let mut state = watched.state();
            loop {
                lock().observe(state.status, state.failure.as_deref(), now_ms());
                if state.status.is_terminal() {
                    break;
                }
                let next = watched
                    .wait_for(|s| lock().changed(s.status, s.failure.as_deref()))
                    .await;
                if !lock().changed(next.status, next.failure.as_deref()) {
                    break; // the job's state is gone: nothing more will change
                }
                state = next;
            }
        });
        self.jobs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(handle.job_id, job);
    }

    /// The job with id `id`.
    pub fn get(&self, id: &JobId) -> Option<RegisteredJob> {
        self.jobs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Every job, in id order (ids are time-ordered).
    pub fn all(&self) -> Vec<RegisteredJob> {
        self.jobs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}
