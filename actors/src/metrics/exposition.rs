//! The text of `/metrics`: every job's facts and its subtasks' counters as OpenMetrics (which
//! Prometheus scrapes), encoded by `prometheus-client`. Pure: [`encode`] takes values, so the
//! output is tested without a server.
//!
//! | family | type | labels |
//! |---|---|---|
//! | `weir_job_uptime_seconds` | gauge | `job_id`, `job_name` |
//! | `weir_job_status` | gauge (1 for the current status) | `job_id`, `status` |
//! | `weir_job_restarts_total` | counter | `job_id` |
//! | `weir_checkpoints_completed_total`, `weir_checkpoints_failed_total`, `weir_checkpoints_restored_total` | counter | `job_id` |
//! | `weir_checkpoints_in_progress` | gauge | `job_id` |
//! | `weir_checkpoint_last_duration_seconds`, `weir_checkpoint_last_size_bytes` | gauge (latest completed) | `job_id` |
//! | `weir_checkpoint_alignment_duration_seconds` | gauge (latest completed) | `job_id`, `operator_uid`, `subtask` |
//! | `weir_records_in_total`, `weir_records_out_total` | counter | `job_id`, `operator_uid`, `subtask` |
//! | `weir_records_in_per_second`, `weir_records_out_per_second` | gauge | `job_id`, `operator_uid`, `subtask` |
//! | `weir_busy_time_seconds_total`, `weir_backpressured_time_seconds_total` | counter | `job_id`, `operator_uid`, `subtask` |

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use weir::status::JobStatus;

use super::SubtaskSnapshot;

/// The content type of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What `/metrics` shows of one job's checkpoints.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckpointMetrics {
    pub completed: u64,
    pub failed: u64,
    pub in_progress: u64,
    pub restored: u64,
    /// Of the latest completed checkpoint.
    pub last_duration: Duration,
    pub last_size: u64,
    /// Per subtask of the latest completed checkpoint: (operator uid, subtask, alignment).
    pub last_alignment: Vec<(String, u32, Duration)>,
}

/// What `/metrics` shows of one job.
#[derive(Clone, Debug, PartialEq)]
pub struct JobMetrics {
    pub job_id: String,
    pub name: String,
    pub status: JobStatus,
    pub uptime: Duration,
    pub restarts: u32,
    pub checkpoints: CheckpointMetrics,
    /// (operator uid, subtask index, counters).
    pub subtasks: Vec<(String, u32, SubtaskSnapshot)>,
}

type Labels = Vec<(String, String)>;
type F64Gauge = Gauge<f64, AtomicU64>;
type F64Counter = Counter<f64, AtomicU64>;

fn family<M: prometheus_client::metrics::TypedMetric + Default + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
) -> Family<Labels, M>
where
    Family<Labels, M>: prometheus_client::registry::Metric,
{
    let f = Family::<Labels, M>::default();
    registry.register(name, help, f.clone());
    f
}

fn job_labels(job: &JobMetrics) -> Labels {
    vec![("job_id".into(), job.job_id.clone())]
}

fn subtask_labels(job: &JobMetrics, uid: &str, subtask: u32) -> Labels {
    vec![
        ("job_id".into(), job.job_id.clone()),
        ("operator_uid".into(), uid.to_owned()),
        ("subtask".into(), subtask.to_string()),
    ]
}

/// The OpenMetrics text of `jobs` (ends with `# EOF`).
pub fn encode(jobs: &[JobMetrics]) -> String {
    let mut r = Registry::with_prefix("weir");
    let uptime = family::<F64Gauge>(
        &mut r,
        "job_uptime_seconds",
        "Time since the job started (0 once it ended)",
    );
    let status = family::<Gauge>(
        &mut r,
        "job_status",
        "1 for the job's current status (Flink's names)",
    );
    let restarts = family::<Counter>(
        &mut r,
        "job_restarts",
        "Restarts of the job (Flink's numRestarts)",
    );
    let completed = family::<Counter>(
        &mut r,
        "checkpoints_completed",
        "Completed checkpoints and savepoints",
    );
    let failed = family::<Counter>(
        &mut r,
        "checkpoints_failed",
        "Failed or aborted checkpoints",
    );
    let restored = family::<Counter>(
        &mut r,
        "checkpoints_restored",
        "Restores from a checkpoint or savepoint",
    );
    let in_progress = family::<Gauge>(&mut r, "checkpoints_in_progress", "Checkpoints in progress");
    let last_duration = family::<F64Gauge>(
        &mut r,
        "checkpoint_last_duration_seconds",
        "Trigger to last acknowledgement of the latest completed checkpoint",
    );
    let last_size = family::<Gauge>(
        &mut r,
        "checkpoint_last_size_bytes",
        "State size of the latest completed checkpoint",
    );
    let alignment = family::<F64Gauge>(
        &mut r,
        "checkpoint_alignment_duration_seconds",
        "Barrier alignment of each subtask in the latest completed checkpoint",
    );
    let records_in = family::<Counter>(&mut r, "records_in", "Records a subtask received");
    let records_out = family::<Counter>(&mut r, "records_out", "Records a subtask sent");
    let rate_in = family::<F64Gauge>(
        &mut r,
        "records_in_per_second",
        "Records received per second over the last 10 s",
    );
    let rate_out = family::<F64Gauge>(
        &mut r,
        "records_out_per_second",
        "Records sent per second over the last 10 s",
    );
    let busy = family::<F64Counter>(
        &mut r,
        "busy_time_seconds",
        "Time a subtask spent processing batches",
    );
    let backpressured = family::<F64Counter>(
        &mut r,
        "backpressured_time_seconds",
        "Time a subtask's output had no credit",
    );
    for job in jobs {
        let l = job_labels(job);
        let mut named = l.clone();
        named.push(("job_name".into(), job.name.clone()));
        uptime.get_or_create(&named).set(job.uptime.as_secs_f64());
        let mut with_status = l.clone();
        with_status.push(("status".into(), job.status.flink_name().into()));
        status.get_or_create(&with_status).set(1);
        restarts.get_or_create(&l).inc_by(u64::from(job.restarts));
        let c = &job.checkpoints;
        completed.get_or_create(&l).inc_by(c.completed);
        failed.get_or_create(&l).inc_by(c.failed);
        restored.get_or_create(&l).inc_by(c.restored);
        in_progress
            .get_or_create(&l)
            .set(i64::try_from(c.in_progress).unwrap_or(i64::MAX));
        last_duration
            .get_or_create(&l)
            .set(c.last_duration.as_secs_f64());
        last_size
            .get_or_create(&l)
            .set(i64::try_from(c.last_size).unwrap_or(i64::MAX));
        for (uid, subtask, d) in &c.last_alignment {
            alignment
                .get_or_create(&subtask_labels(job, uid, *subtask))
                .set(d.as_secs_f64());
        }
        for (uid, subtask, s) in &job.subtasks {
            let sl = subtask_labels(job, uid, *subtask);
            records_in.get_or_create(&sl).inc_by(s.records_in);
            records_out.get_or_create(&sl).inc_by(s.records_out);
            rate_in.get_or_create(&sl).set(s.records_in_per_second);
            rate_out.get_or_create(&sl).set(s.records_out_per_second);
            busy.get_or_create(&sl).inc_by(s.busy.as_secs_f64());
            backpressured
                .get_or_create(&sl)
                .inc_by(s.backpressured.as_secs_f64());
        }
    }
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &r);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> JobMetrics {
        JobMetrics {
            job_id: "ab".repeat(16),
            name: "counting".into(),
            status: JobStatus::Running,
            uptime: Duration::from_secs(3),
            restarts: 1,
            checkpoints: CheckpointMetrics {
                completed: 4,
                failed: 2,
                in_progress: 1,
                restored: 0,
                last_duration: Duration::from_millis(250),
                last_size: 4096,
                last_alignment: vec![("counts".into(), 1, Duration::from_millis(5))],
            },
            subtasks: vec![(
                "numbers".into(),
                0,
                SubtaskSnapshot {
                    records_in: 0,
                    records_out: 2048,
                    records_in_per_second: 0.0,
                    records_out_per_second: 512.0,
                    busy: Duration::from_millis(1500),
                    backpressured: Duration::from_millis(500),
                    backpressured_now: false,
                    watermark: None,
                },
            )],
        }
    }

    #[test]
    fn every_family_is_labelled_with_job_operator_and_subtask() {
        let text = encode(&[job()]);
        let id = "ab".repeat(16);
        for line in [
            format!("weir_job_uptime_seconds{{job_id=\"{id}\",job_name=\"counting\"}} 3.0"),
            format!("weir_job_status{{job_id=\"{id}\",status=\"RUNNING\"}} 1"),
            format!("weir_job_restarts_total{{job_id=\"{id}\"}} 1"),
            format!("weir_checkpoints_completed_total{{job_id=\"{id}\"}} 4"),
            format!("weir_checkpoints_failed_total{{job_id=\"{id}\"}} 2"),
            format!("weir_checkpoints_in_progress{{job_id=\"{id}\"}} 1"),
            format!("weir_checkpoint_last_duration_seconds{{job_id=\"{id}\"}} 0.25"),
            format!("weir_checkpoint_last_size_bytes{{job_id=\"{id}\"}} 4096"),
            format!("weir_checkpoint_alignment_duration_seconds{{job_id=\"{id}\",operator_uid=\"counts\",subtask=\"1\"}} 0.005"),
            format!("weir_records_out_total{{job_id=\"{id}\",operator_uid=\"numbers\",subtask=\"0\"}} 2048"),
            format!("weir_records_out_per_second{{job_id=\"{id}\",operator_uid=\"numbers\",subtask=\"0\"}} 512.0"),
            format!("weir_busy_time_seconds_total{{job_id=\"{id}\",operator_uid=\"numbers\",subtask=\"0\"}} 1.5"),
            format!("weir_backpressured_time_seconds_total{{job_id=\"{id}\",operator_uid=\"numbers\",subtask=\"0\"}} 0.5"),
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
        }
        assert!(text.contains("# TYPE weir_records_in counter"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn no_jobs_is_an_empty_exposition() {
        assert_eq!(encode(&[]), "# EOF\n");
    }
}
