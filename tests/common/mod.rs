//! Shared pieces of the end-to-end tests: the keyed running-count job with failure injection,
//! and the check that its committed output is exactly once; `process`: the `weir` binary in
//! child processes.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weir_actors::weir::checkpoint::{CheckpointConfig, CheckpointingMode, StorageConfig};
use weir_actors::weir::connectors::file_sink::{committed_lines, ExactlyOnceFileSink};
use weir_actors::weir::connectors::sequence::SequenceSource;
use weir_actors::weir::functions::Count;
use weir_actors::weir::graph::JobGraph;
use weir_actors::weir::restart::RestartStrategy;
use weir_actors::weir::state::StateBackendKind;
use weir_actors::weir::stream::StreamEnvironment;
use weir_actors::weir::time::WatermarkStrategy;
use weir_actors::weir::window::{CountAggregate, TimeWindow, WindowAssigner};

pub mod kafka;
pub mod process;
pub mod s3;
pub mod served;

/// A job environment for the failure-injection tests: `parallelism`, checkpoints every 20 ms
/// into `dir/checkpoints`, up to 10 restarts 5 ms apart.
pub fn checkpointed_env(name: &str, dir: &std::path::Path, parallelism: u32) -> StreamEnvironment {
    let env = StreamEnvironment::new(name);
    env.set_parallelism(parallelism);
    env.set_checkpoint_config(CheckpointConfig {
        interval: Some(Duration::from_millis(20)),
        storage: StorageConfig::FileSystem {
            dir: dir.join("checkpoints").display().to_string(),
        },
        ..CheckpointConfig::default()
    });
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 10,
        delay: Duration::from_millis(5),
    });
    env
}

/// Record values at which the `inject` operator panics, once each.
pub type FailPoints = Arc<Mutex<HashSet<u64>>>;

#[derive(Clone)]
pub struct CountJob {
    pub records: u64,
    pub keys: u64,
    pub parallelism: u32,
    pub rate: Option<f64>,
    pub interval: Duration,
    pub mode: CheckpointingMode,
    /// Unaligned checkpoints, and after which alignment time (zero: at once).
    pub unaligned: bool,
    pub aligned_timeout: Duration,
    /// Back-pressure: a stage after the count that sleeps this long every so many records.
    pub throttle: Option<(u64, Duration)>,
    pub checkpoint_dir: String,
    pub output: std::path::PathBuf,
    pub fail_at: FailPoints,
    /// Instead of the running count: event-time tumbling windows of this many ms (record `v` at
    /// `v` ms), each emitting `(key, window start × 1000 + count)` when it fires.
    pub window_ms: Option<u64>,
    /// The keyed state backend of the count (hashmap by default), and the rocksdb backend's
    /// local directory (`None`: the temp dir).
    pub backend: StateBackendKind,
    pub local_dir: Option<std::path::PathBuf>,
}

impl CountJob {
    pub fn new(dir: &std::path::Path) -> Self {
        Self {
            records: 20_000,
            keys: 50,
            parallelism: 2,
            rate: Some(50_000.0),
            interval: Duration::from_millis(20),
            mode: CheckpointingMode::ExactlyOnce,
            unaligned: false,
            aligned_timeout: Duration::ZERO,
            throttle: None,
            checkpoint_dir: dir.join("checkpoints").display().to_string(),
            output: dir.join("out"),
            fail_at: Arc::default(),
            window_ms: None,
            backend: StateBackendKind::HashMap,
            local_dir: None,
        }
    }

    pub fn checkpoint_config(&self) -> CheckpointConfig {
        CheckpointConfig {
            interval: Some(self.interval),
            mode: self.mode,
            unaligned: self.unaligned,
            aligned_timeout: self.aligned_timeout,
            storage: StorageConfig::FileSystem {
                dir: self.checkpoint_dir.clone(),
            },
            ..CheckpointConfig::default()
        }
    }

    /// source(0..records) → inject failures → key_by(v % keys) → count → (throttle →) exactly-once
    /// file sink.
    pub fn graph_with(&self, config: CheckpointConfig) -> JobGraph {
        let env = StreamEnvironment::new("keyed count");
        env.set_parallelism(self.parallelism);
        env.set_checkpoint_config(config);
        env.set_state_backend(self.backend);
        if let Some(dir) = &self.local_dir {
            env.set_state_local_dir(dir);
        }
        env.set_restart_strategy(RestartStrategy::FixedDelay {
            attempts: 20,
            delay: Duration::from_millis(5),
        });
        let mut source = SequenceSource::new(0, self.records);
        if let Some(r) = self.rate {
            source = source.with_rate(r);
        }
        let fail_at = self.fail_at.clone();
        let keys = self.keys;
        let numbers = match self.window_ms {
            None => env.add_source("numbers", source),
            Some(_) => env.add_source_with_watermarks(
                "numbers",
                source,
                WatermarkStrategy::for_monotonous_timestamps()
                    .with_timestamp_assigner(|v: &u64| *v as i64),
            ),
        };
        let keyed = numbers
            .map("inject", move |v: u64| {
                let fire = fail_at.lock().unwrap().remove(&v);
                if fire {
                    panic!("injected failure at record {v}");
                }
                v
            })
            .key_by(move |v: &u64| v % keys);
        let counted = match self.window_ms {
            None => keyed.process("count", Count::default()),
            Some(ms) => keyed
                .window(WindowAssigner::tumbling(Duration::from_millis(ms)).unwrap())
                .event_time(|v: &u64| *v as i64)
                .aggregate(
                    "count",
                    CountAggregate,
                    |k: &u64, w: &TimeWindow, n: u64| (*k, w.start as u64 * 1000 + n),
                ),
        };
        let counted = match self.throttle {
            Some((every, pause)) => counted.map("throttle", move |c: (u64, u64)| {
                if c.1.is_multiple_of(every) {
                    std::thread::sleep(pause);
                }
                c
            }),
            None => counted,
        };
        counted.add_sink("sink", ExactlyOnceFileSink::new(&self.output));
        env.build().expect("valid graph")
    }

    pub fn graph(&self) -> JobGraph {
        self.graph_with(self.checkpoint_config())
    }

    /// Per key, the counts in the committed output.
    pub fn committed(&self) -> BTreeMap<u64, Vec<u64>> {
        let mut per_key: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for line in committed_lines(&self.output).unwrap_or_default() {
            let (k, n): (u64, u64) = serde_json::from_str(&line).expect("json line");
            per_key.entry(k).or_default().push(n);
        }
        per_key
    }

    /// What the failure-free run commits: per key, 1..=n exactly once (windows: per key and
    /// window, its start × 1000 + its count).
    pub fn expected(&self) -> BTreeMap<u64, Vec<u64>> {
        if let Some(ms) = self.window_ms {
            let mut per_key: BTreeMap<(u64, u64), u64> = BTreeMap::new();
            for v in 0..self.records {
                *per_key.entry((v % self.keys, v - v % ms)).or_default() += 1;
            }
            let mut expected: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
            for ((k, start), n) in per_key {
                assert!(n < 1000, "a window's count must fit the encoding");
                expected.entry(k).or_default().push(start * 1000 + n);
            }
            return expected;
        }
        (0..self.keys)
            .map(|k| {
                let n = (self.records + self.keys - 1 - k) / self.keys;
                (k, (1..=n).collect())
            })
            .filter(|(_, v): &(u64, Vec<u64>)| !v.is_empty())
            .collect()
    }

    /// Committed output, each key's counts sorted.
    pub fn committed_sorted(&self) -> BTreeMap<u64, Vec<u64>> {
        let mut c = self.committed();
        for v in c.values_mut() {
            v.sort_unstable();
        }
        c
    }
}

/// Compares committed counts with the failure-free ones: (lost, duplicated) records.
pub fn compare(
    committed: &BTreeMap<u64, Vec<u64>>,
    expected: &BTreeMap<u64, Vec<u64>>,
) -> (u64, u64) {
    let (mut lost, mut duplicated) = (0, 0);
    for (key, want) in expected {
        let mut got: BTreeMap<u64, u64> = BTreeMap::new();
        for n in committed.get(key).into_iter().flatten() {
            *got.entry(*n).or_default() += 1;
        }
        for n in want {
            match got.remove(n) {
                None => lost += 1,
                Some(times) => duplicated += times - 1,
            }
        }
        duplicated += got.values().sum::<u64>();
    }
    for (key, got) in committed {
        if !expected.contains_key(key) {
            duplicated += got.len() as u64;
        }
    }
    (lost, duplicated)
}

/// A small deterministic PRNG (xorshift) for choosing failure points per seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
