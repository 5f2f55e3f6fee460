//! The REST API against a running job, field by field against Flink's names: jobs, job details,
//! checkpoint statistics, config and details, asynchronous savepoint / checkpoint / stop /
//! disposal triggers, cancel, and 4xx JSON errors for malformed requests; `/metrics` on a running
//! job (every family, labelled by job, operator and subtask) and the dashboard's assets.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::served::{self, call, get, poll, Served};
use serde_json::{json, Value};
use weir_actors::cli::http::Response;
use weir_actors::weir::ids::JobId;

/// numbers (rate-limited) → count keyed by the number → discard, parallelism 2; checkpoints
/// every 50 ms to `dir`.
fn serve(dir: &Path) -> Served {
    let text = format!(
        r#"
name: rest-test
config:
  execution.checkpointing.interval: 50 ms
  execution.checkpointing.dir: {dir}/checkpoints
  execution.checkpointing.num-retained: 1000
  parallelism.default: 2
pipeline:
  - source: sequence
    uid: numbers
    to: 100000000
    rate: 2000
  - operator: count
    uid: counts
    key-by: value
  - sink: discard
    uid: sink
"#,
        dir = dir.display()
    );
    served::serve(dir, "rest-test.yaml", &text)
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

fn assert_has(v: &Value, fields: &[&str]) {
    let present = keys(v);
    for f in fields {
        assert!(present.contains(f), "missing `{f}` in {v}");
    }
}

/// A 4xx answer with Flink's error body.
fn assert_error(r: &Response, status: u16, says: &str) {
    assert_eq!(r.status, status, "{:?}", r.body);
    assert_eq!(keys(&r.body), ["errors"], "{}", r.body);
    let message = r.body["errors"][0].as_str().unwrap();
    assert!(message.contains(says), "`{message}` does not say `{says}`");
}

const STATS_FIELDS: &[&str] = &[
    "id",
    "status",
    "is_savepoint",
    "savepointFormat",
    "checkpoint_type",
    "trigger_timestamp",
    "latest_ack_timestamp",
    "checkpointed_size",
    "state_size",
    "end_to_end_duration",
    "alignment_buffered",
    "processed_data",
    "persisted_data",
    "num_subtasks",
    "num_acknowledged_subtasks",
    "tasks",
];

const TASK_FIELDS: &[&str] = &[
    "id",
    "status",
    "latest_ack_timestamp",
    "checkpointed_size",
    "state_size",
    "end_to_end_duration",
    "alignment_buffered",
    "processed_data",
    "persisted_data",
    "num_subtasks",
    "num_acknowledged_subtasks",
];

fn check_completed_entry(e: &Value, kind: &str) {
    assert_has(e, STATS_FIELDS);
    assert_has(e, &["external_path", "discarded"]);
    assert_eq!(e["status"], "COMPLETED");
    assert_eq!(e["checkpoint_type"], kind);
    assert_eq!(e["is_savepoint"], kind != "CHECKPOINT");
    assert_eq!(e["num_subtasks"], 6, "3 operators × parallelism 2");
    assert_eq!(e["num_acknowledged_subtasks"], 6);
    assert!(e["trigger_timestamp"].as_u64().unwrap() > 0);
    assert!(
        e["latest_ack_timestamp"].as_u64().unwrap() >= e["trigger_timestamp"].as_u64().unwrap()
    );
    let path = e["external_path"].as_str().unwrap();
    assert!(Path::new(path).join("_metadata").exists(), "{path}");
    assert_eq!(keys(&e["tasks"]), ["counts", "numbers", "sink"]);
    for (uid, t) in e["tasks"].as_object().unwrap() {
        let mut want = TASK_FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(keys(t), want);
        assert_eq!(t["id"], uid.as_str());
        assert_eq!(t["num_subtasks"], 2);
        assert_eq!(t["num_acknowledged_subtasks"], 2);
    }
    assert!(
        e["tasks"]["counts"]["state_size"].as_u64().unwrap() > 0,
        "keyed state"
    );
    assert!(
        e["tasks"]["numbers"]["state_size"].as_u64().unwrap() > 0,
        "source position"
    );
}

#[test]
fn jobs_job_details_and_checkpoint_statistics_have_flinks_fields() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path());
    let id = s.job.to_string();

    let jobs = get(&s, "/jobs");
    assert_eq!(
        jobs,
        json!({"jobs": [{"id": id, "status": jobs["jobs"][0]["status"]}]})
    );
    let details = poll(&s, &format!("/jobs/{id}"), |d| d["state"] == "RUNNING");
    assert_has(
        &details,
        &[
            "jid",
            "name",
            "isStoppable",
            "state",
            "start-time",
            "end-time",
            "duration",
            "now",
            "maxParallelism",
            "vertices",
            "status-counts",
        ],
    );
    assert_eq!(details["jid"], id.as_str());
    assert_eq!(details["name"], "rest-test");
    assert_eq!(details["end-time"], -1, "still running");
    assert!(details["start-time"].as_u64().unwrap() <= details["now"].as_u64().unwrap());
    assert_eq!(details["maxParallelism"], 128);
    let vertices = details["vertices"].as_array().unwrap();
    let described: Vec<(String, u64, String)> = vertices
        .iter()
        .map(|v| {
            assert_has(
                v,
                &[
                    "id",
                    "name",
                    "parallelism",
                    "maxParallelism",
                    "status",
                    "start-time",
                    "end-time",
                    "duration",
                ],
            );
            (
                v["id"].as_str().unwrap().to_owned(),
                v["parallelism"].as_u64().unwrap(),
                v["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        described,
        [
            ("numbers", 2, "RUNNING"),
            ("counts", 2, "RUNNING"),
            ("sink", 2, "RUNNING")
        ]
        .map(|(a, b, c)| (a.to_owned(), b, c.to_owned()))
    );
    let overview = get(&s, "/jobs/overview");
    assert_has(
        &overview["jobs"][0],
        &[
            "jid",
            "name",
            "state",
            "start-time",
            "end-time",
            "duration",
            "last-modification",
            "tasks",
        ],
    );

    let stats = poll(&s, &format!("/jobs/{id}/checkpoints"), |b| {
        b["counts"]["completed"].as_u64() >= Some(2)
    });
    assert_eq!(keys(&stats), ["counts", "history", "latest", "summary"]);
    assert_eq!(
        keys(&stats["counts"]),
        ["completed", "failed", "in_progress", "restored", "total"]
    );
    assert_eq!(stats["counts"]["restored"], 0);
    assert!(stats["counts"]["total"].as_u64() >= stats["counts"]["completed"].as_u64());
    assert_eq!(
        keys(&stats["summary"]),
        [
            "alignment_buffered",
            "checkpointed_size",
            "end_to_end_duration",
            "persisted_data",
            "processed_data",
            "state_size"
        ]
    );
    for (_, summary) in stats["summary"].as_object().unwrap() {
        assert_eq!(
            keys(summary),
            ["avg", "max", "min", "p50", "p90", "p95", "p99", "p999"]
        );
    }
    let state_size = &stats["summary"]["state_size"];
    assert!(state_size["min"].as_u64().unwrap() > 0);
    assert!(state_size["min"].as_u64() <= state_size["max"].as_u64());
    assert_eq!(
        keys(&stats["latest"]),
        ["completed", "failed", "restored", "savepoint"]
    );
    check_completed_entry(&stats["latest"]["completed"], "CHECKPOINT");
    assert_eq!(stats["latest"]["completed"]["savepointFormat"], Value::Null);
    assert_eq!(stats["latest"]["savepoint"], Value::Null);
    assert_eq!(stats["latest"]["failed"], Value::Null);
    assert_eq!(stats["latest"]["restored"], Value::Null);
    let history = stats["history"].as_array().unwrap();
    assert!(!history.is_empty() && history.len() <= 10);
    let ids: Vec<u64> = history.iter().map(|h| h["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    for h in history {
        assert_has(h, STATS_FIELDS);
    }

    let latest = stats["latest"]["completed"]["id"].as_u64().unwrap();
    let one = get(&s, &format!("/jobs/{id}/checkpoints/details/{latest}"));
    check_completed_entry(&one, "CHECKPOINT");
    assert_eq!(one["id"], latest);

    let config = get(&s, &format!("/jobs/{id}/checkpoints/config"));
    assert_has(
        &config,
        &[
            "mode",
            "interval",
            "timeout",
            "min_pause",
            "max_concurrent",
            "externalization",
            "state_backend",
            "checkpoint_storage",
            "unaligned_checkpoints",
            "tolerable_failed_checkpoints",
            "aligned_checkpoint_timeout",
            "checkpoints_after_tasks_finish",
            "state_changelog_enabled",
            "changelog_periodic_materialization_interval",
            "changelog_storage",
        ],
    );
    assert_eq!(config["mode"], "exactly_once");
    assert_eq!(config["interval"], 50);
    assert_eq!(config["timeout"], 600_000);
    assert_eq!(config["min_pause"], 0);
    assert_eq!(config["max_concurrent"], 1);
    assert_eq!(
        config["externalization"],
        json!({"enabled": false, "delete_on_cancellation": false})
    );
    assert_eq!(config["state_backend"], "hashmap");
    assert_eq!(config["checkpoint_storage"], "FileSystemCheckpointStorage");
    assert_eq!(config["unaligned_checkpoints"], false);
    assert_eq!(config["tolerable_failed_checkpoints"], 0);
}

#[test]
fn savepoints_checkpoints_and_stop_are_asynchronous_operations() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path());
    let id = s.job.to_string();
    poll(&s, &format!("/jobs/{id}"), |d| d["state"] == "RUNNING");
    let target = dir.path().join("savepoints").display().to_string();

    let r = call(
        &s,
        "POST",
        &format!("/jobs/{id}/savepoints"),
        Some(json!({"target-directory": target, "formatType": "CANONICAL"})),
    );
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(keys(&r.body), ["request-id"]);
    let trigger = r.body["request-id"].as_str().unwrap().to_owned();
    let done = poll(&s, &format!("/jobs/{id}/savepoints/{trigger}"), |b| {
        b["status"]["id"] == "COMPLETED"
    });
    assert_eq!(keys(&done), ["operation", "status"]);
    assert_eq!(keys(&done["operation"]), ["location"]);
    let location = done["operation"]["location"].as_str().unwrap().to_owned();
    assert!(location.starts_with(&target), "{location}");
    assert!(Path::new(&location).join("_metadata").exists());
    let stats = get(&s, &format!("/jobs/{id}/checkpoints"));
    check_completed_entry(&stats["latest"]["savepoint"], "SAVEPOINT");
    assert_eq!(stats["latest"]["savepoint"]["savepointFormat"], "CANONICAL");
    assert_eq!(
        stats["latest"]["savepoint"]["external_path"],
        location.as_str()
    );

    // A client-chosen trigger id, and a manual full checkpoint.
    let r = call(
        &s,
        "POST",
        &format!("/jobs/{id}/checkpoints"),
        Some(json!({"checkpointType": "FULL", "triggerId": "my-trigger"})),
    );
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["request-id"], "my-trigger");
    let done = poll(&s, &format!("/jobs/{id}/checkpoints/my-trigger"), |b| {
        b["status"]["id"] == "COMPLETED"
    });
    assert_eq!(keys(&done["operation"]), ["checkpointId"]);
    let cid = done["operation"]["checkpointId"].as_u64().unwrap();
    check_completed_entry(
        &get(&s, &format!("/jobs/{id}/checkpoints/details/{cid}")),
        "CHECKPOINT",
    );
    let again = call(
        &s,
        "POST",
        &format!("/jobs/{id}/checkpoints"),
        Some(json!({"triggerId": "my-trigger"})),
    );
    assert_error(&again, 409, "already in use");

    // Stop with a savepoint: the job FINISHES and the operation reports the savepoint.
    let r = call(
        &s,
        "POST",
        &format!("/jobs/{id}/stop"),
        Some(json!({"targetDirectory": target, "drain": false})),
    );
    assert_eq!(r.status, 202, "{:?}", r.body);
    let trigger = r.body["request-id"].as_str().unwrap().to_owned();
    let done = poll(&s, &format!("/jobs/{id}/savepoints/{trigger}"), |b| {
        b["status"]["id"] == "COMPLETED"
    });
    let stopped_at = done["operation"]["location"].as_str().unwrap().to_owned();
    assert!(Path::new(&stopped_at).join("_metadata").exists());
    let details = poll(&s, &format!("/jobs/{id}"), |d| d["state"] == "FINISHED");
    assert!(details["end-time"].as_i64().unwrap() >= details["start-time"].as_i64().unwrap());
    let stats = get(&s, &format!("/jobs/{id}/checkpoints"));
    assert_eq!(
        stats["latest"]["savepoint"]["checkpoint_type"],
        "SYNC_SAVEPOINT"
    );

    // Nothing more can be taken from a finished job.
    let r = call(&s, "POST", &format!("/jobs/{id}/savepoints"), None);
    assert_error(&r, 409, "FINISHED");

    // Disposal: asynchronous too; the savepoint is gone afterwards.
    let r = call(
        &s,
        "POST",
        "/savepoint-disposal",
        Some(json!({"savepoint-path": location})),
    );
    assert_eq!(r.status, 202, "{:?}", r.body);
    let trigger = r.body["request-id"].as_str().unwrap().to_owned();
    let done = poll(&s, &format!("/savepoint-disposal/{trigger}"), |b| {
        b["status"]["id"] == "COMPLETED"
    });
    assert_eq!(done["operation"], json!({}));
    assert!(!Path::new(&location).exists());
    let r = call(
        &s,
        "POST",
        "/savepoint-disposal",
        Some(json!({"savepoint-path": location})),
    );
    let trigger = r.body["request-id"].as_str().unwrap().to_owned();
    let failed = poll(&s, &format!("/savepoint-disposal/{trigger}"), |b| {
        b["status"]["id"] == "COMPLETED"
    });
    assert_has(
        &failed["operation"]["failure-cause"],
        &["class", "stack-trace"],
    );
}

#[test]
fn cancel_by_patch_ends_the_job_canceled() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path());
    let id = s.job.to_string();
    poll(&s, &format!("/jobs/{id}"), |d| d["state"] == "RUNNING");
    assert_error(
        &call(&s, "PATCH", &format!("/jobs/{id}"), None),
        400,
        "missing query parameter `mode`",
    );
    assert_error(
        &call(&s, "PATCH", &format!("/jobs/{id}?mode=stop"), None),
        400,
        "unsupported mode `stop`",
    );
    let r = call(&s, "PATCH", &format!("/jobs/{id}?mode=cancel"), None);
    assert_eq!((r.status, r.body), (202, json!({})));
    poll(&s, &format!("/jobs/{id}"), |d| d["state"] == "CANCELED");
    assert_eq!(get(&s, "/jobs")["jobs"][0]["status"], "CANCELED");
}

#[test]
fn malformed_requests_get_4xx_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path());
    let id = s.job.to_string();
    let unknown = JobId::new().to_string();
    assert_error(
        &call(&s, "GET", "/jobs/not-a-job", None),
        400,
        "`not-a-job` is not a job id",
    );
    assert_error(
        &call(&s, "GET", &format!("/jobs/{unknown}"), None),
        404,
        "not found",
    );
    assert_error(
        &call(&s, "GET", &format!("/jobs/{unknown}/checkpoints"), None),
        404,
        "not found",
    );
    assert_error(
        &call(
            &s,
            "GET",
            &format!("/jobs/{id}/checkpoints/details/999999"),
            None,
        ),
        404,
        "checkpoint 999999",
    );
    assert_error(
        &call(
            &s,
            "GET",
            &format!("/jobs/{id}/checkpoints/details/abc"),
            None,
        ),
        400,
        "not a checkpoint id",
    );
    assert_error(
        &call(
            &s,
            "GET",
            &format!("/jobs/{id}/savepoints/no-such-trigger"),
            None,
        ),
        404,
        "no operation",
    );
    assert_error(
        &call(
            &s,
            "GET",
            &format!("/jobs/{id}/checkpoints/no-such-trigger"),
            None,
        ),
        404,
        "no operation",
    );
    // Bodies: not JSON, unknown fields, bad values.
    let raw = |method: &str, path: &str, body: &str| {
        let mut stream = std::net::TcpStream::connect(&s.addr).unwrap();
        use std::io::{Read, Write};
        write!(stream, "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    };
    let text = raw("POST", &format!("/jobs/{id}/savepoints"), "{bad json");
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(
        text.contains(r#"{"errors":["malformed JSON body"#),
        "{text}"
    );
    assert_error(
        &call(
            &s,
            "POST",
            &format!("/jobs/{id}/savepoints"),
            Some(json!({"target_dir": "/x"})),
        ),
        400,
        "unknown field `target_dir`",
    );
    assert_error(
        &call(
            &s,
            "POST",
            &format!("/jobs/{id}/savepoints"),
            Some(json!({"formatType": "ZIP"})),
        ),
        400,
        "unknown formatType `ZIP`",
    );
    assert_error(
        &call(
            &s,
            "POST",
            &format!("/jobs/{id}/stop"),
            Some(json!({"drain": "yes"})),
        ),
        400,
        "bad request body",
    );
    assert_error(
        &call(
            &s,
            "POST",
            &format!("/jobs/{id}/checkpoints"),
            Some(json!({"checkpointType": "INCREMENTAL"})),
        ),
        400,
        "INCREMENTAL",
    );
    assert_error(
        &call(&s, "POST", "/savepoint-disposal", Some(json!({}))),
        400,
        "missing field `savepoint-path`",
    );
    // Methods and paths.
    assert_error(
        &call(&s, "DELETE", &format!("/jobs/{id}"), None),
        405,
        "DELETE is not allowed",
    );
    assert_error(
        &call(&s, "POST", "/jobs", None),
        405,
        "POST is not allowed on /jobs",
    );
    assert_error(
        &call(&s, "GET", &format!("/jobs/{id}/stop"), None),
        405,
        "GET is not allowed",
    );
    assert_error(&call(&s, "GET", "/nowhere", None), 404, "no such endpoint");
    // The server is still serving.
    assert_eq!(get(&s, "/jobs")["jobs"][0]["id"], id.as_str());
}

/// The value of the sample `name{labels}` in an OpenMetrics text, if present.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_show_every_family_for_a_running_job() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path());
    let id = s.job.to_string();
    poll(&s, &format!("/jobs/{id}/checkpoints"), |b| {
        b["counts"]["completed"].as_u64() >= Some(1)
    });
    let subtask =
        |uid: &str, i: u32| format!("job_id=\"{id}\",operator_uid=\"{uid}\",subtask=\"{i}\"");
    // Records have gone through every chain (sources count out, the keyed chain counts in).
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let r = call(&s, "GET", "/metrics", None);
        assert_eq!(r.status, 200);
        let text = r.body.as_str().unwrap().to_owned();
        let flowing = (0..2).all(|i| {
            sample(&text, "weir_records_out_total", &subtask("numbers", i)) > Some(0.0)
                && sample(&text, "weir_records_in_total", &subtask("counts", i)) > Some(0.0)
        });
        if flowing {
            break text;
        }
        assert!(Instant::now() < deadline, "no records counted:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    for family in [
        "weir_records_in counter",
        "weir_records_out counter",
        "weir_records_in_per_second gauge",
        "weir_records_out_per_second gauge",
        "weir_busy_time_seconds counter",
        "weir_backpressured_time_seconds counter",
        "weir_checkpoint_alignment_duration_seconds gauge",
        "weir_checkpoints_completed counter",
        "weir_checkpoints_failed counter",
        "weir_checkpoints_restored counter",
        "weir_checkpoints_in_progress gauge",
        "weir_checkpoint_last_duration_seconds gauge",
        "weir_checkpoint_last_size_bytes gauge",
        "weir_job_restarts counter",
        "weir_job_uptime_seconds gauge",
        "weir_job_status gauge",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family}\n")),
            "no `{family}` in\n{text}"
        );
    }
    // Rates count from the subtask's start, so the first reading already has one.
    assert!(sample(&text, "weir_records_out_per_second", &subtask("numbers", 0)) > Some(0.0));
    assert!(sample(&text, "weir_busy_time_seconds_total", &subtask("counts", 0)) > Some(0.0));
    let job = format!("job_id=\"{id}\"");
    assert!(sample(&text, "weir_checkpoints_completed_total", &job) >= Some(1.0));
    assert!(sample(&text, "weir_checkpoint_last_size_bytes", &job) > Some(0.0));
    assert_eq!(sample(&text, "weir_job_restarts_total", &job), Some(0.0));
    assert_eq!(
        sample(
            &text,
            "weir_job_status",
            &format!("{job},status=\"RUNNING\"")
        ),
        Some(1.0)
    );
    // One alignment sample per subtask of the latest completed checkpoint.
    for uid in ["numbers", "counts", "sink"] {
        for i in 0..2 {
            let labels = subtask(uid, i);
            assert!(
                sample(&text, "weir_checkpoint_alignment_duration_seconds", &labels).is_some(),
                "no alignment for {labels}"
            );
        }
    }
    // The same counters in the job details, summed per operator (a chain reports its own).
    let details = get(&s, &format!("/v1/jobs/{id}"));
    let counts = &details["vertices"][1];
    assert_eq!(counts["id"], "counts");
    assert!(counts["metrics"]["read-records"].as_u64() > Some(0));
    assert!(details["vertices"][0]["metrics"]["write-records"].as_u64() > Some(0));
}

#[test]
fn the_dashboard_is_served_at_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path());
    for (path, says) in [
        ("/", "<title>Weir dashboard</title>"),
        ("/index.html", "<title>Weir dashboard</title>"),
        ("/app.js", "/v1"),
        ("/style.css", "svg .chain"),
    ] {
        let r = call(&s, "GET", path, None);
        assert_eq!(r.status, 200, "{path}");
        assert!(r.body.as_str().unwrap().contains(says), "{path}");
    }
}
