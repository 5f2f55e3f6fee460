//! The benchmarked job: record `i` of `0..records` → key `i % keys` → key-by → [`Count`] (a
//! running count in value state, emitting `(key, n)` for the n-th record of a key) → a
//! [`ChecksumSink`] that drops the records but folds them into a checksum, compared at the end
//! with [`Checksum::expected`], so a fast wrong answer fails the benchmark.
//!
//! Options: parallelism, checkpointing mode and interval, an extra forward `map` before the
//! key-by (chained to the source, or not: what chaining saves), and a [`SlowOnOne`] operator that
//! makes one input channel of the keyed operator slow (the skew section).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use weir_actors::weir::checkpoint::{
    CheckpointConfig, CheckpointingMode, ExternalizedRetention, StorageConfig,
};
use weir_actors::weir::connectors::sequence::SequenceSource;
use weir_actors::weir::element::CheckpointKind;
use weir_actors::weir::functions::Count;
use weir_actors::weir::graph::JobGraph;
use weir_actors::weir::ids::CheckpointId;
use weir_actors::weir::operator::{Operator, OperatorError, Sink, SubtaskInfo};
use weir_actors::weir::restart::RestartStrategy;
use weir_actors::weir::state::keyed::StateBackendKind;
use weir_actors::weir::state::operator_state::OperatorStateStore;
use weir_actors::weir::stream::StreamEnvironment;
use weir_actors::weir::time::WatermarkStrategy;
use weir_actors::weir::window::{CountAggregate, TimeWindow, WindowAssigner};

/// Whether and how the job checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Checkpointing {
    Off,
    ExactlyOnce,
    AtLeastOnce,
    /// Exactly-once with unaligned checkpoints, switching after this alignment time (0: at
    /// once).
    Unaligned {
        aligned_timeout_ms: u64,
    },
}

impl Checkpointing {
    pub fn label(self) -> String {
        match self {
            Checkpointing::Off => "off".into(),
            Checkpointing::ExactlyOnce => "exactly-once".into(),
            Checkpointing::AtLeastOnce => "at-least-once".into(),
            Checkpointing::Unaligned {
                aligned_timeout_ms: 0,
            } => "unaligned".into(),
            Checkpointing::Unaligned { aligned_timeout_ms } => {
                format!("aligned, unaligned after {}", human_ms(aligned_timeout_ms))
            }
        }
    }
}

/// One channel of the keyed operator made slow: subtask 0 of a forward `map` before the key-by
/// sleeps this long per batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skew {
    pub micros_per_batch: u64,
}

/// The keyed state backend of every job: `WEIR_BENCH_BACKEND` (set by `--backend`, inherited
/// by the measuring child processes), hashmap by default.
pub fn backend() -> StateBackendKind {
    std::env::var("WEIR_BENCH_BACKEND")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or_default()
}

fn chaining_default() -> bool {
    true
}

/// The shape of one keyed count job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CountJob {
    /// Records `0..records`; `u64::MAX` for an endless job that is canceled.
    pub records: u64,
    pub keys: u64,
    pub parallelism: u32,
    pub checkpointing: Checkpointing,
    pub interval_ms: u64,
    /// An extra forward `map` between the source and the key-by (chained to the source
    /// unless `chaining` is off).
    pub extra_hop: bool,
    /// Operator chaining (the runtime's default: on).
    #[serde(default = "chaining_default")]
    pub chaining: bool,
    /// A slow `map` on one channel before the key-by (needs parallelism ≥ 2).
    pub skew: Option<Skew>,
    /// Back-pressure: the sink sleeps this long per batch (µs).
    #[serde(default)]
    pub slow_sink_micros: Option<u64>,
    /// Keep the latest checkpoint when the job is canceled (to restore from it).
    pub retain: bool,
    /// Records per batch and batches in flight per channel; `None`: the runtime's defaults.
    #[serde(default)]
    pub batch_size: Option<usize>,
    #[serde(default)]
    pub credits: Option<u32>,
    /// `execution.checkpointing.snapshot-compression`.
    #[serde(default)]
    pub compression: bool,
    /// Instead of the running count: an event-time tumbling-window count of windows this long
    /// (record `i` at `i / 1000` ms, watermarks from the sources), emitting `(key, count)` per
    /// key and window when the watermark passes its end — windows and timers in keyed state.
    #[serde(default)]
    pub window_ms: Option<u64>,
    /// `pipeline.auto-watermark-interval` in ms; `None`: the default (after every poll).
    #[serde(default)]
    pub watermark_interval_ms: Option<u64>,
}

/// Records per millisecond of event time in the window jobs.
pub const RECORDS_PER_MS: u64 = 1000;

impl CountJob {
    /// The throughput configuration: `records` records over `keys` keys, checkpoints every 1 s.
    pub fn new(records: u64, keys: u64, parallelism: u32, checkpointing: Checkpointing) -> Self {
        Self {
            records,
            keys,
            parallelism,
            checkpointing,
            interval_ms: 1000,
            extra_hop: false,
            chaining: true,
            skew: None,
            slow_sink_micros: None,
            retain: false,
            batch_size: None,
            credits: None,
            compression: false,
            window_ms: None,
            watermark_interval_ms: None,
        }
    }

    /// What the job's sinks must receive, folded.
    pub fn expected(&self) -> Checksum {
        let Some(window_ms) = self.window_ms else {
            return Checksum::expected(self.records, self.keys);
        };
        let keys = self.keys.max(1);
        let per_window = window_ms * RECORDS_PER_MS;
        let mut sum = Checksum::default();
        let mut start = 0;
        while start < self.records {
            let end = (start + per_window).min(self.records);
            // Records start..end; key k gets those ≡ k (mod keys).
            let first = start % keys;
            let n = end - start;
            for i in 0..keys.min(n) {
                let key = (first + i) % keys;
                sum.add(key, (n - i).div_ceil(keys));
            }
            start = end;
        }
        sum
    }

    /// A short label for tables, e.g. `p=1, exactly-once 1 s`.
    pub fn label(&self) -> String {
        let mut s = format!("p={}, ", self.parallelism);
        if backend() != StateBackendKind::HashMap {
            s = format!("{}, {s}", backend());
        }
        match self.checkpointing {
            Checkpointing::Off => s.push_str("checkpoints off"),
            c => s.push_str(&format!(
                "{} every {}",
                c.label(),
                human_ms(self.interval_ms)
            )),
        }
        if let Some(ms) = self.window_ms {
            s.push_str(&format!(
                ", tumbling-window count ({} windows)",
                human_ms(ms)
            ));
        }
        if let Some(ms) = self.watermark_interval_ms {
            match ms {
                0 => s.push_str(", a watermark after every poll"),
                ms => s.push_str(&format!(", a watermark every {}", human_ms(ms))),
            }
        }
        if self.extra_hop {
            s.push_str(", + forward map");
        }
        if !self.chaining {
            s.push_str(", chaining off");
        }
        match self.skew {
            Some(Skew {
                micros_per_batch: 0,
            }) => s.push_str(", + pass-through map, no slow channel"),
            Some(skew) => s.push_str(&format!(
                ", one channel slow ({} µs per batch)",
                skew.micros_per_batch
            )),
            None => {}
        }
        if let Some(us) = self.slow_sink_micros {
            s.push_str(&format!(", slow sink ({} ms per batch)", us as f64 / 1e3));
        }
        if let Some(b) = self.batch_size {
            s.push_str(&format!(", batches of {b}"));
        }
        if let Some(c) = self.credits {
            s.push_str(&format!(", {c} credits"));
        }
        s
    }

    /// The index of the keyed operator (`count`) in the graph.
    pub fn keyed_vertex(&self) -> u32 {
        1 + u32::from(self.extra_hop) + u32::from(self.skew.is_some())
    }

    /// Checkpoint settings: filesystem storage under `dir` (also with checkpointing off: the
    /// final checkpoint of a bounded job goes there too).
    pub fn checkpoint_config(&self, dir: &Path) -> CheckpointConfig {
        let mut config = CheckpointConfig {
            storage: StorageConfig::FileSystem {
                dir: dir.display().to_string(),
            },
            ..CheckpointConfig::default()
        };
        match self.checkpointing {
            Checkpointing::Off => {}
            Checkpointing::ExactlyOnce => {
                config.interval = Some(Duration::from_millis(self.interval_ms));
                config.mode = CheckpointingMode::ExactlyOnce;
            }
            Checkpointing::AtLeastOnce => {
                config.interval = Some(Duration::from_millis(self.interval_ms));
                config.mode = CheckpointingMode::AtLeastOnce;
            }
            Checkpointing::Unaligned { aligned_timeout_ms } => {
                config.interval = Some(Duration::from_millis(self.interval_ms));
                config.mode = CheckpointingMode::ExactlyOnce;
                config.unaligned = true;
                config.aligned_timeout = Duration::from_millis(aligned_timeout_ms);
            }
        }
        if self.retain {
            config.externalized_retention = ExternalizedRetention::RetainOnCancellation;
        }
        config.compression = self.compression;
        config
    }

    /// The job graph, its sink writing into `totals`.
    pub fn graph(&self, checkpoint_dir: &Path, totals: &Arc<Totals>) -> JobGraph {
        let env = StreamEnvironment::new("bench keyed count");
        env.set_parallelism(self.parallelism);
        if !self.chaining {
            env.disable_operator_chaining();
        }
        env.set_checkpoint_config(self.checkpoint_config(checkpoint_dir));
        env.set_state_backend(backend());
        env.set_restart_strategy(RestartStrategy::None);
        if let Some(b) = self.batch_size {
            env.set_batch_size(b);
        }
        if let Some(c) = self.credits {
            env.set_channel_credits(c);
        }
        if let Some(ms) = self.watermark_interval_ms {
            env.set_auto_watermark_interval(Duration::from_millis(ms));
        }
        let keys = self.keys;
        let source = SequenceSource::new(0, self.records);
        let mut stream = match self.window_ms {
            None => env.add_source("numbers", source),
            Some(_) => env.add_source_with_watermarks(
                "numbers",
                source,
                WatermarkStrategy::for_monotonous_timestamps()
                    .with_timestamp_assigner(|v: &u64| (v / RECORDS_PER_MS) as i64),
            ),
        };
        if self.extra_hop {
            stream = stream.map("hop", |v: u64| v);
        }
        if let Some(skew) = self.skew {
            stream = stream.transform(
                "slow",
                SlowOnOne {
                    delay: Duration::from_micros(skew.micros_per_batch),
                    slow: false,
                },
            );
        }
        let keyed = stream.key_by(move |v: &u64| v % keys);
        let counted = match self.window_ms {
            None => keyed.process("count", Count::default()),
            Some(ms) => keyed
                .window(WindowAssigner::tumbling(Duration::from_millis(ms)).expect("a window"))
                .event_time(|v: &u64| (v / RECORDS_PER_MS) as i64)
                .aggregate(
                    "count",
                    CountAggregate,
                    |k: &u64, _: &TimeWindow, n: u64| (*k, n),
                ),
        };
        counted.add_sink(
            "checksum",
            ChecksumSink {
                totals: totals.clone(),
                delay: self.slow_sink_micros.map(Duration::from_micros),
            },
        );
        env.build().expect("the benchmark graph is valid")
    }
}

/// `1 s`, `250 ms`.
pub fn human_ms(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

/// An order-independent fold of a job's `(key, n)` output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    pub records: u64,
    /// Σ n (wrapping).
    pub sum: u64,
    /// Σ (key + 1) · n (wrapping): catches counts credited to the wrong key.
    pub weighted: u64,
}

impl Checksum {
    /// What the keyed count of `records` records over `keys` keys must emit, in closed form:
    /// with `q = records / keys` and `r = records % keys`, keys `0..r` see `q + 1` records and
    /// the others `q`, and a key that sees `m` records emits `1 + 2 + … + m`.
    pub fn expected(records: u64, keys: u64) -> Self {
        let (n, k) = (u128::from(records), u128::from(keys.max(1)));
        let (q, r) = (n / k, n % k);
        let tri = |m: u128| m * (m + 1) / 2;
        let sum = r * tri(q + 1) + (k - r) * tri(q);
        let weighted = tri(q + 1) * tri(r) + tri(q) * (tri(k) - tri(r));
        Self {
            records,
            sum: sum as u64,
            weighted: weighted as u64,
        }
    }

    /// The same fold, record by record (for the limit loop and the tests).
    #[inline]
    pub fn add(&mut self, key: u64, n: u64) {
        self.records += 1;
        self.sum = self.sum.wrapping_add(n);
        self.weighted = self.weighted.wrapping_add((key + 1).wrapping_mul(n));
    }
}

/// What the sink subtasks of one job saw, shared with the harness.
#[derive(Debug)]
pub struct Totals {
    records: AtomicU64,
    sum: AtomicU64,
    weighted: AtomicU64,
    min_count: AtomicU64,
    /// Records after which `done_at` is set (the job's whole input).
    expected_records: u64,
    first_at: OnceLock<Instant>,
    done_at: OnceLock<Instant>,
}

impl Totals {
    pub fn new(expected_records: u64) -> Arc<Self> {
        Arc::new(Self {
            records: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            weighted: AtomicU64::new(0),
            min_count: AtomicU64::new(u64::MAX),
            expected_records,
            first_at: OnceLock::new(),
            done_at: OnceLock::new(),
        })
    }

    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    pub fn checksum(&self) -> Checksum {
        Checksum {
            records: self.records.load(Ordering::Acquire),
            sum: self.sum.load(Ordering::Acquire),
            weighted: self.weighted.load(Ordering::Acquire),
        }
    }

    /// The smallest count emitted (`u64::MAX` before any record): above 1 when every key had
    /// state before the first record, e.g. after a restore.
    pub fn min_count(&self) -> u64 {
        self.min_count.load(Ordering::Relaxed)
    }

    /// When a sink first received a record.
    pub fn first_at(&self) -> Option<Instant> {
        self.first_at.get().copied()
    }

    /// When the sinks had received all expected records.
    pub fn done_at(&self) -> Option<Instant> {
        self.done_at.get().copied()
    }
}

/// Drops `(key, n)` records, folding them into the shared [`Totals`] once per batch.
#[derive(Clone)]
pub struct ChecksumSink {
    totals: Arc<Totals>,
    /// Back-pressure: sleep this long per batch.
    delay: Option<Duration>,
}

impl ChecksumSink {
    pub fn new(totals: Arc<Totals>) -> Self {
        Self {
            totals,
            delay: None,
        }
    }
}

impl Sink<(u64, u64)> for ChecksumSink {
    fn open(&mut self, _: &SubtaskInfo, _: &mut OperatorStateStore) -> Result<(), OperatorError> {
        Ok(())
    }

    fn write(&mut self, batch: Vec<(u64, u64)>) -> Result<(), OperatorError> {
        if batch.is_empty() {
            return Ok(());
        }
        if let Some(delay) = self.delay {
            std::thread::sleep(delay);
        }
        let t = &self.totals;
        let _ = t.first_at.set(Instant::now());
        let mut local = Checksum::default();
        let mut min = u64::MAX;
        for &(key, n) in &batch {
            local.add(key, n);
            min = min.min(n);
        }
        t.sum.fetch_add(local.sum, Ordering::Relaxed);
        t.weighted.fetch_add(local.weighted, Ordering::Relaxed);
        t.min_count.fetch_min(min, Ordering::Relaxed);
        let before = t.records.fetch_add(local.records, Ordering::AcqRel);
        if before < t.expected_records && before + local.records >= t.expected_records {
            let _ = t.done_at.set(Instant::now());
        }
        Ok(())
    }

    fn pre_commit(&mut self, _: CheckpointId) -> Result<(), OperatorError> {
        Ok(())
    }

    fn snapshot(&mut self, _: &mut OperatorStateStore) -> Result<(), OperatorError> {
        Ok(())
    }

    fn commit(&mut self, _: CheckpointId, _: CheckpointKind) -> Result<(), OperatorError> {
        Ok(())
    }
}

/// Passes records through; subtask 0 sleeps `delay` per batch, so the keyed operator's input
/// channel from it is slow. (It sleeps on its arbiter's thread, so subtasks placed on the same
/// arbiter slow down too: the runtime runs several subtasks per thread.)
#[derive(Clone)]
pub struct SlowOnOne {
    delay: Duration,
    slow: bool,
}

impl Operator<u64, u64> for SlowOnOne {
    fn open(
        &mut self,
        info: &SubtaskInfo,
        _: &mut OperatorStateStore,
    ) -> Result<(), OperatorError> {
        self.slow = info.index == 0;
        Ok(())
    }

    fn process(&mut self, input: Vec<u64>, out: &mut Vec<u64>) -> Result<(), OperatorError> {
        if self.slow && !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        out.extend(input);
        Ok(())
    }
}
