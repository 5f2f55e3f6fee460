//! `GET /metrics`: every served job's facts (status, uptime, restarts, checkpoint statistics)
//! and its subtasks' counters ([`crate::metrics::registry`]) in the OpenMetrics text format,
//! which Prometheus scrapes. The text itself is [`crate::metrics::exposition::encode`]'s.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use weir::checkpoint::stats::CheckpointStats;

use super::handlers::RestState;
use super::jobs::{now_ms, RegisteredJob};
use crate::metrics::exposition::{self, CheckpointMetrics, JobMetrics};

/// What `/metrics` shows of `stats`.
fn checkpoint_metrics(stats: &CheckpointStats, job: &RegisteredJob) -> CheckpointMetrics {
    let latest = stats.latest_completed.as_ref();
    CheckpointMetrics {
        completed: stats.counts.completed,
        failed: stats.counts.failed,
        in_progress: stats.counts.in_progress,
        restored: stats.counts.restored,
        last_duration: Duration::from_millis(latest.map_or(0, |e| e.end_to_end_duration_ms)),
        last_size: latest.map_or(0, |e| e.state_size),
        last_alignment: latest
            .map(|e| {
                e.subtasks
                    .iter()
                    .filter_map(|s| {
                        let uid = job.vertices.get(s.task.vertex as usize)?.uid.clone();
                        Some((
                            uid,
                            s.task.subtask,
                            Duration::from_micros(s.alignment_duration_micros),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

async fn job_metrics(job: &RegisteredJob) -> JobMetrics {
    let state = job.handle.state();
    let stats = job.handle.checkpoint_stats().await.unwrap_or_default();
    let uptime = match job.end_time_ms() {
        Some(_) => Duration::ZERO,
        None => Duration::from_millis(now_ms().saturating_sub(job.start_time_ms)),
    };
    JobMetrics {
        job_id: job.handle.job_id.to_string(),
        name: job.name.clone(),
        status: state.status,
        uptime,
        restarts: state.restarts,
        checkpoints: checkpoint_metrics(&stats, job),
        subtasks: crate::metrics::registry().job(job.handle.job_id),
    }
}

pub(super) async fn metrics(state: web::Data<RestState>) -> HttpResponse {
    let mut jobs = Vec::new();
    for job in state.jobs.all() {
        jobs.push(job_metrics(&job).await);
    }
    HttpResponse::Ok()
        .content_type(exposition::CONTENT_TYPE)
        .body(exposition::encode(&jobs))
}
