//! `GET /jobs/:id/exceptions`: Flink's `JobExceptionsInfoWithHistory`, from the failures the
//! REST API saw the job go through (`crate::rest::history::JobHistory`).

use serde_json::{json, Value};

use crate::rest::jobs::RegisteredJob;

/// `GET /jobs/:id/exceptions`: Flink's `JobExceptionsInfoWithHistory` — the failures the job
/// went through, newest first (the deprecated `root-exception` is the newest).
pub fn exceptions(job: &RegisteredJob) -> Value {
    let history = job.history();
    let entries: Vec<Value> = history
        .failures
        .iter()
        .rev()
        .map(|f| {
            json!({
                "exceptionName": "weir::JobFailure",
                "stacktrace": f.message,
                "timestamp": f.timestamp_ms,
                "taskName": null,
                "endpoint": null,
                "taskManagerId": null,
                "failureLabels": {},
                "concurrentExceptions": [],
            })
        })
        .collect();
    let newest = history.failures.last();
    json!({
        "root-exception": newest.map(|f| f.message.clone()),
        "timestamp": newest.map(|f| f.timestamp_ms),
        "all-exceptions": [],
        "truncated": false,
        "exceptionHistory": {
            "entries": entries,
            "truncated": history.truncated,
        },
    })
}
