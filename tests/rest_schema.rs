//! Golden JSON per REST endpoint, under both Flink's versioned prefix `/v1` and no prefix: each
//! answer, with its volatile values normalised (ids, paths, versions → a placeholder; times,
//! durations, sizes and metrics → 0 or 0.0, keeping whether the number is an integer; counts,
//! parallelism, neutral values such as `-1` and every string kept), must equal
//! `tests/golden/rest/<name>.json`, which lists the fields of Flink's REST API reference for
//! that answer (1.20: `JobDetailsInfo`, `CheckpointStatistics`, ...).
//!
//! The job runs without periodic checkpoints and takes exactly one checkpoint, triggered over
//! REST, so the statistics' shape (one history entry, no failure, no restore) is deterministic.
//! `WEIR_BLESS_GOLDEN=1` rewrites the files from the answers (review the diff against Flink's
//! reference before committing it); `golden/rest/flink-fields.json` lists, independently of
//! Weir's answers, the fields Flink's reference gives each schema, and every golden file must
//! carry them.

mod common;

use std::path::{Path, PathBuf};

use common::served::{self, call, get, poll, Served};
use serde_json::{json, Map, Value};

/// numbers → (key-by) counts → sink, parallelism 2, no periodic checkpoints: two chains,
/// `numbers` and `counts → sink`.
fn serve(dir: &Path) -> Served {
    let text = format!(
        r#"
name: schema-test
config:
  execution.checkpointing.dir: {dir}/checkpoints
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
    served::serve(dir, "schema-test.yaml", &text)
}

/// Keys whose string values change from run to run.
const VOLATILE_STRINGS: &[&str] = &[
    "jid",
    "external_path",
    "location",
    "request-id",
    "flink-version",
    "flink-revision",
    "flink-commit",
    "errors",
];

/// Keys whose numbers change from run to run (times, durations, sizes).
const VOLATILE_NUMBERS: &[&str] = &[
    "start-time",
    "start_time",
    "duration",
    "now",
    "last-modification",
    "timestamp",
    "trigger_timestamp",
    "latest_ack_timestamp",
    "ack_timestamp",
    "restore_timestamp",
    "failure_timestamp",
    "state_size",
    "checkpointed_size",
    "end_to_end_duration",
];

/// Objects all of whose numbers change from run to run.
const VOLATILE_OBJECTS: &[&str] = &[
    "metrics",
    "summary",
    "timestamps",
    "status-duration",
    "checkpoint",
    "alignment",
];

/// `v` with its volatile values replaced (see the module docs).
fn normalise(v: &Value) -> Value {
    fn walk(key: Option<&str>, v: &Value, volatile: bool) -> Value {
        let volatile_number = volatile || key.is_some_and(|k| VOLATILE_NUMBERS.contains(&k));
        match v {
            // -1 is Flink's "not yet": a fact, not a measurement.
            Value::Number(n) if volatile_number && n.as_i64() != Some(-1) => {
                if n.is_f64() {
                    json!(0.0)
                } else {
                    json!(0)
                }
            }
            Value::String(_) if key.is_some_and(|k| VOLATILE_STRINGS.contains(&k)) => {
                json!(format!("<{}>", key.unwrap_or_default()))
            }
            Value::String(s) if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
                json!("<id>")
            }
            Value::Array(items) => {
                Value::Array(items.iter().map(|i| walk(key, i, volatile)).collect())
            }
            Value::Object(o) => {
                let volatile = volatile || key.is_some_and(|k| VOLATILE_OBJECTS.contains(&k));
                Value::Object(
                    o.iter()
                        .map(|(k, v)| (k.clone(), walk(Some(k), v, volatile)))
                        .collect::<Map<_, _>>(),
                )
            }
            other => other.clone(),
        }
    }
    walk(None, v, false)
}

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden/rest")
        .join(format!("{name}.json"))
}

/// `answer` (normalised) equals the golden file `name`.
fn check(name: &str, answer: &Value) {
    let actual = normalise(answer);
    let path = golden_path(name);
    if std::env::var_os("WEIR_BLESS_GOLDEN").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (WEIR_BLESS_GOLDEN=1 writes it)", path.display()));
    let golden: Value = serde_json::from_str(&text).unwrap();
    assert!(
        actual == golden,
        "{name}: the answer differs from {}\n--- answer (normalised)\n{}\n--- golden\n{}",
        path.display(),
        serde_json::to_string_pretty(&actual).unwrap(),
        serde_json::to_string_pretty(&golden).unwrap()
    );
}

/// GETs `path` under both prefixes; both answers must match golden `name`.
fn check_get(s: &Served, name: &str, path: &str) {
    let plain = get(s, path);
    let versioned = get(s, &format!("/v1{path}"));
    check(name, &plain);
    assert_eq!(
        normalise(&plain),
        normalise(&versioned),
        "{path} and /v1{path} differ"
    );
}

#[test]
fn every_endpoint_answers_flinks_schema_under_both_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path());
    let id = s.job.to_string();
    poll(&s, &format!("/v1/jobs/{id}"), |d| d["state"] == "RUNNING");

    // One checkpoint, triggered and awaited over REST (alternating prefixes).
    let r = call(&s, "POST", &format!("/v1/jobs/{id}/checkpoints"), None);
    assert_eq!(r.status, 202, "{:?}", r.body);
    check("trigger", &r.body);
    let trigger = r.body["request-id"].as_str().unwrap().to_owned();
    let done = poll(&s, &format!("/jobs/{id}/checkpoints/{trigger}"), |b| {
        b["status"]["id"] == "COMPLETED"
    });
    check("checkpoint-trigger-status", &done);
    let cid = done["operation"]["checkpointId"].as_u64().unwrap();
    // The statistics show it complete once the job manager has recorded it.
    poll(&s, &format!("/jobs/{id}/checkpoints"), |b| {
        b["counts"]["completed"] == 1 && b["counts"]["in_progress"] == 0
    });

    check_get(&s, "config", "/config");
    check_get(&s, "overview", "/overview");
    check_get(&s, "jobs", "/jobs");
    check_get(&s, "jobs-overview", "/jobs/overview");
    check_get(&s, "job-details", &format!("/jobs/{id}"));
    check_get(&s, "job-plan", &format!("/jobs/{id}/plan"));
    check_get(&s, "job-exceptions", &format!("/jobs/{id}/exceptions"));
    check_get(&s, "vertex-details", &format!("/jobs/{id}/vertices/counts"));
    check_get(
        &s,
        "vertex-watermarks",
        &format!("/jobs/{id}/vertices/counts/watermarks"),
    );
    check_get(&s, "checkpoints", &format!("/jobs/{id}/checkpoints"));
    check_get(
        &s,
        "checkpoint-config",
        &format!("/jobs/{id}/checkpoints/config"),
    );
    check_get(
        &s,
        "checkpoint-details",
        &format!("/jobs/{id}/checkpoints/details/{cid}"),
    );
    check_get(
        &s,
        "checkpoint-subtasks",
        &format!("/jobs/{id}/checkpoints/details/{cid}/subtasks/counts"),
    );

    // A savepoint: trigger and status answers.
    let target = dir.path().join("savepoints").display().to_string();
    let r = call(
        &s,
        "POST",
        &format!("/v1/jobs/{id}/savepoints"),
        Some(json!({"target-directory": target})),
    );
    assert_eq!(r.status, 202, "{:?}", r.body);
    let trigger = r.body["request-id"].as_str().unwrap().to_owned();
    let done = poll(&s, &format!("/v1/jobs/{id}/savepoints/{trigger}"), |b| {
        b["status"]["id"] == "COMPLETED"
    });
    check("savepoint-trigger-status", &done);

    // Errors, under both prefixes.
    for prefix in ["", "/v1"] {
        let r = call(
            &s,
            "GET",
            &format!("{prefix}/jobs/{id}/vertices/nope"),
            None,
        );
        assert_eq!(r.status, 404);
        check("error", &r.body);
        let r = call(&s, "GET", &format!("{prefix}/jobs/not-a-job"), None);
        assert_eq!(r.status, 400);
        check("error", &r.body);
        let r = call(&s, "GET", &format!("{prefix}/no/such/path"), None);
        assert_eq!(r.status, 404);
        check("error", &r.body);
    }

    // Cancel, under the versioned prefix.
    let r = call(&s, "PATCH", &format!("/v1/jobs/{id}?mode=cancel"), None);
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body, json!({}));
}

#[test]
fn normalising_keeps_the_shape_and_hides_volatile_values() {
    let v = json!({"jid": "0123456789abcdef0123456789abcdef", "parallelism": 2,
                   "start-time": 17, "end-time": -1, "metrics": {"read-records": 5, "rate": 1.5},
                   "state": "RUNNING", "nested": [{"id": "counts", "location": "/tmp/sp"}]});
    assert_eq!(
        normalise(&v),
        json!({"jid": "<jid>", "parallelism": 2, "start-time": 0, "end-time": -1,
               "metrics": {"read-records": 0, "rate": 0.0}, "state": "RUNNING",
               "nested": [{"id": "counts", "location": "<location>"}]})
    );
}

#[test]
fn goldens_carry_every_field_of_flinks_reference() {
    // Golden file → JSON pointer → the fields Flink's reference (1.20's response schemas) gives
    // the object there, written from the reference, not from Weir's answers.
    let path = golden_path("flink-fields");
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut checked = 0;
    for (name, objects) in reference.as_object().unwrap() {
        let text = std::fs::read_to_string(golden_path(name)).unwrap();
        let golden: Value = serde_json::from_str(&text).unwrap();
        for (pointer, fields) in objects.as_object().unwrap() {
            let object = golden
                .pointer(pointer)
                .and_then(Value::as_object)
                .unwrap_or_else(|| panic!("{name}.json has no object at `{pointer}`"));
            for field in fields.as_array().unwrap() {
                let field = field.as_str().unwrap();
                assert!(
                    object.contains_key(field),
                    "{name}.json{pointer}: no `{field}`"
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked > 200,
        "only {checked} fields listed in {}",
        path.display()
    );
}
