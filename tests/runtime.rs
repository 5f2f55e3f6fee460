//! End-to-end runtime properties: credit-based flow control keeps in-flight data bounded, and
//! the file-lines source replays exactly after failures.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weir_actors::weir::checkpoint::{CheckpointConfig, StorageConfig};
use weir_actors::weir::connectors::file_lines::FileLinesSource;
use weir_actors::weir::connectors::file_sink::{committed_lines, ExactlyOnceFileSink};
use weir_actors::weir::connectors::sequence::SequenceSource;
use weir_actors::weir::functions::Count;
use weir_actors::weir::operator::{OperatorError, Sink};
use weir_actors::weir::restart::RestartStrategy;
use weir_actors::weir::status::JobStatus;
use weir_actors::weir::stream::StreamEnvironment;
use weir_actors::{run, JobOptions};

/// A sink that is slow (1 ms per batch) and records the largest gap between what the upstream
/// operator has emitted and what has reached it.
#[derive(Clone)]
struct SlowSink {
    emitted: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
    max_in_flight: Arc<AtomicU64>,
}

impl Sink<u64> for SlowSink {
    fn write(&mut self, batch: Vec<u64>) -> Result<(), OperatorError> {
        let in_flight = self.emitted.load(Ordering::SeqCst) - self.received.load(Ordering::SeqCst);
        self.max_in_flight.fetch_max(in_flight, Ordering::SeqCst);
        self.received
            .fetch_add(batch.len() as u64, Ordering::SeqCst);
        // Simulated slowness of the external system, not synchronisation.
        std::thread::sleep(Duration::from_millis(1));
        Ok(())
    }
}

#[test]
fn credits_bound_in_flight_records_behind_a_slow_sink() {
    const BATCH: u64 = 64;
    const CREDITS: u64 = 2;
    const RECORDS: u64 = 40_000;
    let sink = SlowSink {
        emitted: Arc::default(),
        received: Arc::default(),
        max_in_flight: Arc::default(),
    };
    let env = StreamEnvironment::new("slow sink");
    env.set_batch_size(BATCH as usize);
    env.set_channel_credits(CREDITS as u32);
    let emitted = sink.emitted.clone();
    env.add_source("numbers", SequenceSource::new(0, RECORDS))
        .map("count emitted", move |v: u64| {
            emitted.fetch_add(1, Ordering::SeqCst);
            v
        })
        .add_sink("slow", sink.clone());
    let state = run(env.build().unwrap(), JobOptions::default()).unwrap();
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    assert_eq!(sink.received.load(Ordering::SeqCst), RECORDS);
    // In flight between the map and the sink: the channel's credits, one partly filled output
    // buffer and one batch of overdraft.
    let bound = (CREDITS + 2) * BATCH;
    let max = sink.max_in_flight.load(Ordering::SeqCst);
    assert!(max <= bound, "{max} records in flight, bound {bound}");
    assert!(max >= BATCH, "the sink was never behind: {max}");
}

fn text(lines: usize) -> String {
    let words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"];
    let mut s = String::new();
    for i in 0..lines {
        for j in 0..(i % 5 + 1) {
            s.push_str(words[(i * 7 + j * 3) % words.len()]);
            s.push(' ');
        }
        s.push_str(&format!("line{}\n", i % 97));
    }
    s
}

#[test]
fn file_source_word_count_is_exactly_once_across_failures() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let content = text(6_000);
    std::fs::write(&input, &content).unwrap();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for w in content.split_whitespace() {
        *expected.entry(w.to_owned()).or_default() += 1;
    }

    let fail_on: Arc<Mutex<HashSet<usize>>> = Arc::new(Mutex::new([1_000, 4_500].into()));
    let seen = Arc::new(AtomicU64::new(0));
    let out = dir.path().join("out");
    let env = StreamEnvironment::new("word count");
    env.set_parallelism(2);
    env.set_checkpoint_config(CheckpointConfig {
        interval: Some(Duration::from_millis(20)),
        storage: StorageConfig::FileSystem {
            dir: dir.path().join("chk").display().to_string(),
        },
        ..CheckpointConfig::default()
    });
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 5,
        delay: Duration::from_millis(5),
    });
    let (fail, counter) = (fail_on.clone(), seen.clone());
    env.add_source("lines", FileLinesSource::new(&input).with_rate(20_000.0))
        .flat_map("split", move |line: String, out: &mut Vec<String>| {
            let n = counter.fetch_add(1, Ordering::SeqCst) as usize;
            if fail.lock().unwrap().remove(&n) {
                panic!("injected failure at line {n}");
            }
            out.extend(line.split_whitespace().map(str::to_owned));
        })
        .key_by(|w: &String| w.clone())
        .process("count", Count::default())
        .add_sink("out", ExactlyOnceFileSink::new(&out));
    let state = run(env.build().unwrap(), JobOptions::default()).unwrap();
    assert_eq!(state.status, JobStatus::Finished, "{:?}", state.failure);
    assert_eq!(state.restarts, 2);
    assert!(fail_on.lock().unwrap().is_empty());

    let mut counts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for line in committed_lines(&out).unwrap() {
        let (w, n): (String, u64) = serde_json::from_str(&line).unwrap();
        counts.entry(w).or_default().push(n);
    }
    assert_eq!(counts.len(), expected.len());
    for (w, n) in expected {
        let mut got = counts.remove(&w).unwrap();
        got.sort_unstable();
        assert_eq!(got, (1..=n).collect::<Vec<_>>(), "word {w}");
    }
}
