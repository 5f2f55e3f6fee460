//! [`JobRegistry`]: the jobs the REST API serves, by id — each with its [`JobHandle`] and what
//! the API shows that the handle does not carry (name, vertices, checkpoint settings, times).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use weir::checkpoint::CheckpointConfig;
use weir::graph::JobGraph;
use weir::ids::JobId;

use crate::JobHandle;

/// One operator of a registered job, as `GET /jobs/:id` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VertexInfo {
    pub uid: String,
    pub name: String,
    pub parallelism: u32,
    pub max_parallelism: u32,
}

/// A job the REST API knows.
#[derive(Clone)]
pub struct RegisteredJob {
    pub handle: JobHandle,
    pub name: String,
    pub vertices: Vec<VertexInfo>,
    pub checkpoint: CheckpointConfig,
    pub state_backend: String,
    /// Milliseconds since the epoch.
    pub start_time_ms: u64,
    /// Set when the job reaches a terminal status (watched in the background).
    end_time_ms: Arc<Mutex<Option<u64>>>,
}

impl RegisteredJob {
    /// When the job ended, if it has.
    pub fn end_time_ms(&self) -> Option<u64> {
        *self.end_time_ms.lock().unwrap_or_else(|e| e.into_inner())
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
    /// a background task records when the job ends.
    pub fn register(&self, handle: &JobHandle, graph: &JobGraph) {
        let end_time_ms = Arc::new(Mutex::new(None));
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
                })
                .collect(),
            checkpoint: graph.config.checkpoint.clone(),
            state_backend: graph.config.state_backend.name().to_owned(),
            start_time_ms: now_ms(),
            end_time_ms: end_time_ms.clone(),
        };
        let mut watched = handle.clone();
        actix_rt::spawn(async move {
            watched.wait().await;
            *end_time_ms.lock().unwrap_or_else(|e| e.into_inner()) = Some(now_ms());
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
