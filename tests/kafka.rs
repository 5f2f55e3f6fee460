//! The Kafka connectors end to end, against a real Kafka-protocol broker (tansu, in memory, on
//! loopback: `tests/common/kafka.rs`; `scripts/setup --tests` installs it, and these tests fail
//! without it).
//!
//! Records produced to a topic → a keyed running count → the exactly-once file sink: the
//! committed output equals the failure-free output (per key every count 1..=n exactly once)
//! under injected failures, and across a SIGKILL of `weir run` restored with `-s` at another
//! parallelism — the source's checkpointed offsets are what make it exactly once. The same job
//! into the Kafka sink (at least once) loses nothing. Offsets reach the consumer group when
//! checkpoints complete, and partitions of a topic created while the job runs are read.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::kafka::{is_end, KafkaBroker};
use common::process::{stderr, weir, Running, WAIT};
use serde_json::{json, Value};
use weir_actors::weir::checkpoint::{CheckpointConfig, StorageConfig};
use weir_actors::weir::connectors::file_sink::{committed_lines, ExactlyOnceFileSink};
use weir_actors::weir::connectors::kafka::{
    BoundedMode, KafkaSink, KafkaSinkOptions, KafkaSource, KafkaSourceOptions, Topics,
};
use weir_actors::weir::functions::Count;
use weir_actors::weir::graph::JobGraph;
use weir_actors::weir::restart::RestartStrategy;
use weir_actors::weir::status::JobStatus;
use weir_actors::weir::stream::StreamEnvironment;
use weir_actors::{run, JobOptions};

const KEYS: u64 = 7;
const PARTITIONS: i32 = 3;

/// Record `i` of a test topic: key `i mod KEYS`, spread over the partitions.
fn record(i: u64) -> (i32, Value) {
    (
        (i % PARTITIONS as u64) as i32,
        json!({"k": i % KEYS, "n": i}),
    )
}

fn produce_range(broker: &KafkaBroker, topic: &str, range: std::ops::Range<u64>) {
    broker.produce(topic, range.map(record));
}

/// The test records' deserializer: JSON values, the END markers skipped.
fn test_source(options: KafkaSourceOptions) -> KafkaSource<Value> {
    KafkaSource::new(options, |r| {
        let v: Value =
            serde_json::from_slice(r.value.unwrap_or(b"null")).map_err(|e| e.to_string())?;
        Ok((!is_end(&v)).then_some(v))
    })
    .unwrap()
}

/// Per key, counts 1..=n for `records` records: the failure-free output.
fn expected(records: u64) -> BTreeMap<u64, Vec<u64>> {
    (0..KEYS)
        .map(|k| (k, (1..=(records + KEYS - 1 - k) / KEYS).collect()))
        .collect()
}

/// The committed (key, count) lines, per key sorted.
fn committed(out: &Path) -> BTreeMap<u64, Vec<u64>> {
    let mut per_key: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for line in committed_lines(out).unwrap_or_default() {
        let (k, n) = parse_count(&serde_json::from_str(&line).expect("JSON line"));
        per_key.entry(k).or_default().push(n);
    }
    for v in per_key.values_mut() {
        v.sort_unstable();
    }
    per_key
}

/// `[k, n]` (the Rust API's tuples) or `{"key": k, "count": n}` (job files).
fn parse_count(v: &Value) -> (u64, u64) {
    match v {
        Value::Array(a) => (a[0].as_u64().unwrap(), a[1].as_u64().unwrap()),
        o => (
            o["key"].as_u64().unwrap_or_else(|| panic!("{o}")),
            o["count"].as_u64().unwrap(),
        ),
    }
}

enum Out {
    File(std::path::PathBuf),
    Kafka(String),
}

/// kafka source (bounded) → inject failures → key_by(k) → count → `out`.
fn graph(
    broker: &KafkaBroker,
    topic: &str,
    dir: &Path,
    fail_at: Arc<Mutex<HashSet<u64>>>,
    out: Out,
) -> JobGraph {
    let env = StreamEnvironment::new("kafka keyed count");
    env.set_parallelism(2);
    env.set_checkpoint_config(CheckpointConfig {
        interval: Some(Duration::from_millis(50)),
        storage: StorageConfig::FileSystem {
            dir: dir.join("checkpoints").display().to_string(),
        },
        ..CheckpointConfig::default()
    });
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 20,
        delay: Duration::from_millis(5),
    });
    let mut options = KafkaSourceOptions::new(&broker.bootstrap, Topics::List(vec![topic.into()]))
        .bounded(BoundedMode::LatestOffset);
    if matches!(out, Out::File(_)) {
        // Into the Kafka sink: a source without a group (nothing committed).
        options = options.group_id("weir-test");
    }
    let counted = env
        .add_source("events", test_source(options))
        .map("inject", move |v: Value| {
            let n = v["n"].as_u64().unwrap();
            if fail_at.lock().unwrap().remove(&n) {
                panic!("injected failure at record {n}");
            }
            v["k"].as_u64().unwrap()
        })
        .key_by(|k: &u64| *k)
        .process("count", Count::default());
    match out {
        Out::File(path) => {
            counted.add_sink("sink", ExactlyOnceFileSink::new(path));
        }
        Out::Kafka(topic) => {
            let sink = KafkaSink::json(KafkaSinkOptions::new(&broker.bootstrap, topic)).unwrap();
            counted.add_sink("sink", sink);
        }
    }
    env.build().expect("valid graph")
}

#[test]
#[ignore = "known bug (#15): about 1 run in 8 the restored source position is ahead of the records the restored state counted (a partial batch of ~977 records of one partition is lost); run with --ignored"]
fn kafka_to_keyed_count_to_file_sink_is_exactly_once_under_injected_failures() {
    let broker = KafkaBroker::start();
    let records = 6_000;
    broker.create_topic("events", PARTITIONS);
    produce_range(&broker, "events", 0..records);
    broker.seal("events", PARTITIONS);
    let ends = broker.end_offsets("events", PARTITIONS);
    assert_eq!(
        ends.iter().sum::<i64>(),
        records as i64 + i64::from(PARTITIONS)
    );

    // Failure-free first: the reference.
    let dir = tempfile::tempdir().unwrap();
    let state = run(
        graph(
            &broker,
            "events",
            dir.path(),
            Arc::default(),
            Out::File(dir.path().join("out")),
        ),
        JobOptions::default(),
    )
    .unwrap();
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    let reference = committed(&dir.path().join("out"));
    assert_eq!(reference, expected(records));

    for seed in [3_u64, 77] {
        let dir = tempfile::tempdir().unwrap();
        let fail_at: Arc<Mutex<HashSet<u64>>> = Arc::default();
        let mut rng = common::Rng(seed);
        while fail_at.lock().unwrap().len() < 3 {
            fail_at.lock().unwrap().insert(rng.below(records));
        }
        let out = dir.path().join("out");
        let state = run(
            graph(
                &broker,
                "events",
                dir.path(),
                fail_at.clone(),
                Out::File(out.clone()),
            ),
            JobOptions::default(),
        )
        .unwrap();
        assert_eq!(
            state.status,
            JobStatus::Finished,
            "seed {seed}: {:?}",
            state.failure
        );
        assert!(
            fail_at.lock().unwrap().is_empty(),
            "seed {seed}: every failure fired"
        );
        assert_eq!(state.restarts, 3, "seed {seed}: {:?}", state.failure);
        assert_eq!(committed(&out), reference, "seed {seed}");
    }
    // The completed checkpoints' offsets reached the group (for monitoring; committed
    // asynchronously).
    let want: Vec<Option<i64>> = ends.iter().map(|e| Some(*e)).collect();
    eventually("the end offsets committed to the group", || {
        broker.committed("weir-test", "events", PARTITIONS) == want
    });
}

#[test]
#[ignore = "known bug (#15): about 1 run in 8 the restored source position is ahead of the records the restored state counted (a partial batch of ~977 records of one partition is lost); run with --ignored"]
fn the_same_job_into_the_kafka_sink_loses_nothing_under_injected_failures() {
    let broker = KafkaBroker::start();
    let records = 4_000;
    broker.create_topic("in", PARTITIONS);
    broker.create_topic("counts", 2);
    produce_range(&broker, "in", 0..records);
    broker.seal("in", PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    let fail_at: Arc<Mutex<HashSet<u64>>> = Arc::new(Mutex::new([500, 2_222, 3_999].into()));
    let state = run(
        graph(
            &broker,
            "in",
            dir.path(),
            fail_at.clone(),
            Out::Kafka("counts".into()),
        ),
        JobOptions::default(),
    )
    .unwrap();
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    assert!(fail_at.lock().unwrap().is_empty(), "every failure fired");
    let mut got: BTreeMap<u64, HashSet<u64>> = BTreeMap::new();
    broker.seal("counts", 2);
    for v in broker.read_all("counts", 2) {
        let (k, n) = parse_count(&v);
        got.entry(k).or_default().insert(n);
    }
    for (k, want) in expected(records) {
        for n in want {
            assert!(
                got.get(&k).is_some_and(|s| s.contains(&n)),
                "key {k} lost count {n}"
            );
        }
    }
}

/// A job file: kafka (unbounded, topic pattern `events-.*`, discovery every 200 ms, group
/// `kills`) → count keyed by `k` → exactly-once file sink.
fn write_job(dir: &Path, bootstrap: &str) -> std::path::PathBuf {
    let text = format!(
        "name: kafka-kill
config:
  execution.checkpointing.interval: 100 ms
  execution.checkpointing.dir: {dir}/checkpoints
  execution.checkpointing.num-retained: 3
  execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION
  parallelism.default: 2
  rest.port: 0
pipeline:
  - source: kafka
    uid: events
    bootstrap.servers: {bootstrap}
    topic-pattern: events-.*
    group.id: kills
    scan.startup.mode: earliest-offset
    scan.topic-partition-discovery.interval: 200 ms
  - operator: count
    uid: counts
    key-by: k
  - sink: file
    uid: out
    path: {dir}/out
",
        dir = dir.display()
    );
    let job = dir.join("job.yaml");
    std::fs::write(&job, text).unwrap();
    std::fs::write(dir.join("weir.yaml"), "{}\n").unwrap();
    job
}

/// The newest complete checkpoint under `dir/checkpoints`, per `weir checkpoints --json`.
fn newest_checkpoint(dir: &Path) -> Option<String> {
    let o = weir(
        dir,
        &[
            "checkpoints",
            &dir.join("checkpoints").display().to_string(),
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let all: Value = serde_json::from_slice(&o.stdout).unwrap();
    all.as_array()?
        .iter()
        .filter(|c| c["status"] == "COMPLETE" && c["kind"] == "CHECKPOINT")
        .max_by_key(|c| (c["completion_timestamp"].as_u64(), c["id"].as_u64()))
        .map(|c| c["path"].as_str().unwrap().to_owned())
}

/// Polls until `f` holds (bounded).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_killed_run_restored_with_run_s_at_another_parallelism_commits_exactly_once() {
    let broker = KafkaBroker::start();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let job = write_job(dir, &broker.bootstrap);
    let job = job.display().to_string();
    let first = 20_000;
    let records = 30_000;
    broker.create_topic("events-a", PARTITIONS);
    produce_range(&broker, "events-a", 0..first);

    // Run at parallelism 2; SIGKILL once two checkpoints completed (the job is unbounded:
    // it is surely still running).
    let mut run1 = Running::start(dir, &[&job]);
    run1.wait_checkpoints(|c| c["counts"]["completed"].as_u64() >= Some(2));
    assert!(
        run1.child.try_wait().unwrap().is_none(),
        "an unbounded job is still running"
    );
    run1.child.kill().unwrap();
    run1.wait_end();
    let seen_before = committed(&dir.join("out"));
    for (k, counts) in &seen_before {
        let unique: HashSet<_> = counts.iter().collect();
        assert_eq!(
            unique.len(),
            counts.len(),
            "key {k}: a count committed twice before the kill"
        );
    }

    // Restore at parallelism 3 from the newest checkpoint; while it runs, a new topic of the
    // pattern appears and the rest of the records go there.
    let checkpoint = newest_checkpoint(dir).expect("a complete checkpoint before the kill");
    let mut run2 = Running::start(dir, &[&job, "-s", &checkpoint, "-p", "3"]);
    broker.create_topic("events-b", PARTITIONS);
    produce_range(&broker, "events-b", first..records);
    let want = expected(records);
    eventually("the restored run commits every count", || {
        committed(&dir.join("out"))
            .values()
            .map(Vec::len)
            .sum::<usize>()
            >= want.values().map(Vec::len).sum::<usize>()
    });
    // Two more checkpoints: nothing late may add to it.
    let done = run2.wait_checkpoints(|_| true)["counts"]["completed"]
        .as_u64()
        .unwrap();
    run2.wait_checkpoints(|c| c["counts"]["completed"].as_u64() >= Some(done + 2));
    assert_eq!(committed(&dir.join("out")), want);
    // The group's offsets follow the completed checkpoints.
    // Record i went to partition i % PARTITIONS, offsets from 0 (tansu's own end offsets are
    // not the records' for batched writes: see `common::kafka::END`).
    let ends: Vec<i64> = (0..PARTITIONS as u64)
        .map(|p| (0..first).filter(|i| i % PARTITIONS as u64 == p).count() as i64)
        .collect();
    eventually("offsets committed to the group", || {
        broker.committed("kills", "events-a", PARTITIONS)
            == ends.iter().map(|e| Some(*e)).collect::<Vec<_>>()
    });
    run2.child.kill().unwrap();
    run2.wait_end();
}

#[test]
fn bad_kafka_options_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    for (step, key) in [
        (
            "  - sink: kafka\n    uid: k\n    bootstrap.servers: 127.0.0.1:1\n    topic: t\n    \
             sink.delivery-guarantee: exactly-once\n",
            "sink.delivery-guarantee",
        ),
        (
            "  - sink: kafka\n    uid: k\n    bootstrap.servers: 127.0.0.1:1\n    topic: t\n    \
             sink.transactional-id-prefix: weir\n",
            "sink.transactional-id-prefix",
        ),
    ] {
        let text =
            format!("name: bad\npipeline:\n  - source: sequence\n    uid: s\n    to: 3\n{step}");
        std::fs::write(dir.join("bad.yaml"), text).unwrap();
        let o = weir(dir, &["run", "bad.yaml"]);
        assert_ne!(o.status.code(), Some(0));
        let e = stderr(&o);
        assert!(e.contains(key) && e.contains("not"), "{key}: {e}");
    }
    let text = "name: bad\npipeline:\n  - source: kafka\n    uid: s\n    bootstrap.servers: \
                127.0.0.1:1\n    topic: t\n    scan.startup.mode: group-offsets\n  - sink: print\n    uid: p\n";
    std::fs::write(dir.join("bad.yaml"), text).unwrap();
    let o = weir(dir, &["run", "bad.yaml"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("group.id"), "{}", stderr(&o));
}

/// The ready job files, as the README runs them: `kafka-produce.yaml` writes the words of
/// `data/words.txt` into `events`, `kafka-count.yaml` counts them per word into the file sink
/// (unbounded: stopped once every count is committed). Every word's counts 1..=n exactly once.
#[test]
fn the_ready_kafka_job_files_count_every_word_once() {
    let broker = KafkaBroker::start();
    broker.create_topic("events", PARTITIONS);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let data = repo.join("config/jobs/data/words.txt");
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let adapt = |name: &str| {
        let text = std::fs::read_to_string(repo.join("config/jobs").join(name))
            .unwrap()
            .replace("127.0.0.1:9092", &broker.bootstrap)
            .replace("/tmp/weir-out/", &format!("{}/out-", dir.display()))
            .replace("/tmp/weir/", &format!("{}/", dir.display()))
            .replace("data/words.txt", &data.display().to_string())
            .replace(
                "parallelism.default: 2\n",
                "parallelism.default: 2\n  rest.port: 0\n",
            );
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    std::fs::write(dir.join("weir.yaml"), "{}\n").unwrap();
    let o = weir(dir, &["run", &adapt("kafka-produce.yaml")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let mut truth: BTreeMap<String, u64> = BTreeMap::new();
    for w in std::fs::read_to_string(&data)
        .unwrap()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        *truth.entry(w.to_lowercase()).or_insert(0) += 1;
    }
    let out = dir.join("out-kafka-count");
    let counts = || {
        let mut per_word: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for line in committed_lines(&out).unwrap_or_default() {
            let v: Value = serde_json::from_str(&line).unwrap();
            per_word
                .entry(v["key"].as_str().unwrap().to_owned())
                .or_default()
                .push(v["count"].as_u64().unwrap());
        }
        for c in per_word.values_mut() {
            c.sort_unstable();
        }
        per_word
    };
    let want: BTreeMap<String, Vec<u64>> = truth
        .iter()
        .map(|(w, n)| (w.clone(), (1..=*n).collect()))
        .collect();
    let mut run = Running::start(dir, &[&adapt("kafka-count.yaml")]);
    eventually("every word counted", || {
        counts().values().map(Vec::len).sum::<usize>() >= want.values().map(Vec::len).sum::<usize>()
    });
    let done = run.wait_checkpoints(|_| true)["counts"]["completed"]
        .as_u64()
        .unwrap();
    run.wait_checkpoints(|c| c["counts"]["completed"].as_u64() >= Some(done + 1));
    assert_eq!(counts(), want);
    run.child.kill().unwrap();
    run.wait_end();
}
