//! The cluster-level answers: `GET /config` (Flink's `DashboardConfiguration`) and
//! `GET /overview` (`ClusterOverviewWithVersion`). Weir runs a job in one process, which counts
//! as one task manager; it has no slots, so those are 0.

use serde_json::{json, Value};
use weir::status::JobStatus;

use crate::rest::jobs::RegisteredJob;

/// What `flink-version` says: Weir's version, marked as Weir.
pub fn version() -> String {
    format!("weir-{}", env!("CARGO_PKG_VERSION"))
}

/// `GET /config`: how often the dashboard refreshes (ms), the server's time zone (UTC), the
/// version, and which dashboard features are on (cancel: yes; submitting jars, rescaling,
/// history server: no).
pub fn dashboard_config(refresh_interval_ms: u64) -> Value {
    json!({
        "refresh-interval": refresh_interval_ms,
        "timezone-name": "Coordinated Universal Time",
        "timezone-offset": 0,
        "flink-version": version(),
        "flink-revision": env!("CARGO_PKG_VERSION"),
        "features": {
            "web-submit": false,
            "web-cancel": true,
            "web-rescale": false,
            "web-history": false,
        },
    })
}

/// `GET /overview`: jobs by end state (running counts every job not ended).
pub fn cluster_overview(jobs: &[RegisteredJob]) -> Value {
    let mut counts = [0u32; 4]; // running, finished, canceled, failed
    for j in jobs {
        let i = match j.handle.state().status {
            JobStatus::Finished => 1,
            JobStatus::Canceled => 2,
            JobStatus::Failed => 3,
            _ => 0,
        };
        counts[i] += 1;
    }
    json!({
        "taskmanagers": 1,
        "slots-total": 0,
        "slots-available": 0,
        "jobs-running": counts[0],
        "jobs-finished": counts[1],
        "jobs-cancelled": counts[2],
        "jobs-failed": counts[3],
        "flink-version": version(),
        "flink-commit": env!("CARGO_PKG_VERSION"),
    })
}
