//! Records/s from Kafka through the keyed count, checkpoints every 1 s (BENCHMARKS.md, "Kafka
//! source"). Needs the tansu broker that `scripts/setup --tests` builds; not part of
//! `weir_bench`'s sections because of that.
//!
//! cargo bench -p weir-actors --bench kafka_bench                      # 2 M records, 3 runs
//! cargo bench -p weir-actors --bench kafka_bench -- --records 200000 --runs 1
//!
//! The topic (3 partitions) is filled once (then sealed: one end marker per partition, skipped); every run reads all of it in bounded mode:
//! `{"k": i % 1000, "n": i}` → parse → key-by k → running count → a counting sink, at
//! parallelism 2, exactly-once checkpoints every 1 s to the local disk. The sink's count must
//! equal the records, so a fast wrong answer fails the run. The time is the whole run, start
//! to end (partition discovery and the last checkpoint included).

#[allow(dead_code)]
#[path = "../../tests/common/kafka.rs"]
mod kafka;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kafka::KafkaBroker;
use weir_actors::weir::checkpoint::{CheckpointConfig, StorageConfig};
use weir_actors::weir::connectors::kafka::{BoundedMode, KafkaSource, KafkaSourceOptions, Topics};
use weir_actors::weir::connectors::print::DiscardSink;
use weir_actors::weir::functions::Count;
use weir_actors::weir::status::JobStatus;
use weir_actors::weir::stream::StreamEnvironment;
use weir_actors::{run, JobOptions};

const KEYS: u64 = 1_000;
const PARTITIONS: i32 = 3;

#[derive(serde::Deserialize)]
struct Event {
    /// `None`: the end marker (`kafka::END`).
    k: Option<u64>,
}

fn main() {
    let mut records: u64 = 2_000_000;
    let mut runs = 3;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--records" => {
                records = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--records N")
            }
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--bench" => {}
            other => panic!("unknown argument {other}: --records N, --runs N"),
        }
    }
    let broker = KafkaBroker::start();
    broker.create_topic("bench", PARTITIONS);
    let t = Instant::now();
    for chunk in (0..records).collect::<Vec<_>>().chunks(100_000) {
        broker.produce(
            "bench",
            chunk.iter().map(|&i| {
                (
                    (i % PARTITIONS as u64) as i32,
                    serde_json::json!({"k": i % KEYS, "n": i}),
                )
            }),
        );
    }
    // tansu's end offsets are right only after a one-record last batch (tests/common/kafka.rs).
    broker.seal("bench", PARTITIONS);
    eprintln!(
        "produced {records} records in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let mut rates = Vec::new();
    let mut checkpoints = Vec::new();
    for r in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let env = StreamEnvironment::new("kafka keyed count");
        env.set_parallelism(2);
        env.set_checkpoint_config(CheckpointConfig {
            interval: Some(Duration::from_secs(1)),
            storage: StorageConfig::FileSystem {
                dir: dir.path().display().to_string(),
            },
            ..CheckpointConfig::default()
        });
        let options =
            KafkaSourceOptions::new(&broker.bootstrap, Topics::List(vec!["bench".into()]))
                .bounded(BoundedMode::LatestOffset);
        let source = KafkaSource::new(options, |rec| {
            let v = rec.value.ok_or("no value")?;
            serde_json::from_slice::<Event>(v)
                .map(|e| e.k)
                .map_err(|e| e.to_string())
        })
        .unwrap();
        let sink = DiscardSink::new();
        let count = sink.counter();
        env.add_source("events", source)
            .key_by(|k: &u64| *k)
            .process("count", Count::default())
            .add_sink("sink", sink);
        let graph = env.build().unwrap();
        let start = Instant::now();
        let state = run(graph, JobOptions::default()).unwrap();
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
        assert_eq!(
            count.load(Ordering::Relaxed),
            records,
            "every record counted once"
        );
        let rate = records as f64 / secs;
        eprintln!(
            "run {}: {:.2} s, {:.0} records/s, {} checkpoints",
            r + 1,
            secs,
            rate,
            state.completed_checkpoints
        );
        rates.push(rate);
        checkpoints.push(state.completed_checkpoints);
    }
    rates.sort_by(f64::total_cmp);
    checkpoints.sort_unstable();
    let median = rates[rates.len() / 2];
    println!("| configuration | M records/s | checkpoints |");
    println!("|---|---|---|");
    println!(
        "| Kafka (3 partitions) → parse → key-by → count, p=2, exactly-once every 1 s, {records} records | {:.3} ({:.3}–{:.3}) | {} |",
        median / 1e6,
        rates[0] / 1e6,
        rates[rates.len() - 1] / 1e6,
        checkpoints[checkpoints.len() / 2]
    );
}
