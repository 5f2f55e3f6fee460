//! What one invocation measures, in which order, and how one measurement is run.
//!
//! [`Options`] (the bench's flags) expand into [`Task`]s. [`execute`] runs them `runs` times,
//! interleaved — run 1 of every configuration, then run 2, … with the order rotated each run —
//! so that a ratio between two configurations pairs runs taken minutes apart at most, on the
//! same noisy machine. It hands each task to an executor: the bench binary runs it in a child
//! process of itself ([`run_task`] there), the smoke test runs it in-process.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::job::{Checkpointing, Checksum, CountJob, Skew};
use super::limit::{plain_loop, LimitHasher};
use super::measure::{self, CheckpointCost, Recovery, Skewed, Throughput};
use super::stats::peak_rss_bytes;

/// Which sections to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sections {
    pub throughput: bool,
    pub checkpoint: bool,
    pub recovery: bool,
    pub skew: bool,
    #[serde(default)]
    pub backpressure: bool,
}

impl Sections {
    pub const ALL: Sections = Sections {
        throughput: true,
        checkpoint: true,
        recovery: true,
        skew: true,
        backpressure: true,
    };

    /// From `throughput,checkpoint,recovery,skew,backpressure` (any subset; `all`).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut s = Sections {
            throughput: false,
            checkpoint: false,
            recovery: false,
            skew: false,
            backpressure: false,
        };
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "all" => s = Sections::ALL,
                "throughput" => s.throughput = true,
                "checkpoint" => s.checkpoint = true,
                "recovery" => s.recovery = true,
                "skew" => s.skew = true,
                "backpressure" => s.backpressure = true,
                other => {
                    return Err(format!(
                        "unknown section `{other}`: expected throughput, checkpoint, recovery, skew, backpressure or all"
                    ))
                }
            }
        }
        Ok(s)
    }
}

/// Everything an invocation can be told.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Options {
    /// Records of each throughput run (sections 1, 2).
    pub records: u64,
    /// Keys of the throughput and skew runs.
    pub keys: u64,
    /// Runs of every configuration.
    pub runs: usize,
    pub sections: Sections,
    /// Key counts of the checkpoint-cost and recovery sections.
    pub state_keys: Vec<u64>,
    /// Snapshot compression in the checkpoint-cost section (`--compression`).
    pub compression: bool,
    /// Checkpoint interval of every checkpointing configuration.
    pub interval_ms: u64,
    /// Checkpoints measured per run once every key has state.
    pub checkpoints_per_size: usize,
    /// How long a restored job is watched after its first record.
    pub settle_ms: u64,
    /// How long the slow operator sleeps per batch, and how long a skew run lasts.
    pub skew_micros_per_batch: u64,
    pub skew_run_ms: u64,
    /// Back-pressure section: the sink's sleep per batch, the credits per channel (what is in
    /// flight for a barrier to wait behind) and the alignment timeout of the switching row.
    #[serde(default)]
    pub slow_sink_micros: u64,
    #[serde(default)]
    pub backpressure_credits: u32,
    #[serde(default)]
    pub aligned_timeout_ms: u64,
    /// Records per batch and batches in flight per channel of every job (`None`: the
    /// runtime's defaults, 1024 and 8).
    #[serde(default)]
    pub batch_size: Option<usize>,
    #[serde(default)]
    pub credits: Option<u32>,
    /// Where the table, the plot and the raw results go.
    pub out: PathBuf,
}

impl Options {
    /// The configuration, except 100 M records instead of 20 M: at ~15 M records/s a
    /// 20 M-record run lasts ~1.3 s here, too short to hold more than one checkpoint every
    /// second (`--records 20M` gives the size).
    pub fn full(out: PathBuf) -> Self {
        Self {
            records: 100_000_000,
            keys: 100_000,
            runs: 5,
            sections: Sections::ALL,
            state_keys: vec![10_000, 100_000, 1_000_000, 5_000_000, 10_000_000],
            compression: false,
            interval_ms: 1000,
            checkpoints_per_size: 3,
            settle_ms: 2000,
            skew_micros_per_batch: 500,
            skew_run_ms: 8000,
            slow_sink_micros: 10_000,
            backpressure_credits: 64,
            aligned_timeout_ms: 100,
            batch_size: None,
            credits: None,
            out,
        }
    }

    /// A tiny run that exercises every path (CI smoke test, `--smoke`).
    pub fn smoke(out: PathBuf) -> Self {
        Self {
            records: 100_000,
            keys: 1_000,
            runs: 1,
            sections: Sections::ALL,
            state_keys: vec![1_000],
            compression: false,
            interval_ms: 50,
            checkpoints_per_size: 2,
            settle_ms: 200,
            skew_micros_per_batch: 500,
            skew_run_ms: 600,
            slow_sink_micros: 1_000,
            backpressure_credits: 16,
            aligned_timeout_ms: 5,
            batch_size: None,
            credits: None,
            out,
        }
    }

    /// A job with this invocation's batch size and credits.
    fn job(&self, job: CountJob) -> CountJob {
        CountJob {
            batch_size: self.batch_size,
            credits: self.credits,
            ..job
        }
    }

    /// The throughput configurations, in table order.
    pub fn throughput_jobs(&self) -> Vec<CountJob> {
        let mut jobs = Vec::new();
        for p in [1, 2] {
            for c in [
                Checkpointing::Off,
                Checkpointing::ExactlyOnce,
                Checkpointing::AtLeastOnce,
                // What unaligned mode costs without back-pressure (a yield per batch).
                Checkpointing::Unaligned {
                    aligned_timeout_ms: 0,
                },
            ] {
                jobs.push(self.job(CountJob {
                    interval_ms: self.interval_ms,
                    ..CountJob::new(self.records, self.keys, p, c)
                }));
            }
        }
        // Timers in state: an event-time tumbling-window count, 1 s windows; at p=1 also with
        // a watermark at most every 200 ms (Flink's default auto-watermark interval).
        for (p, interval) in [(1, None), (1, Some(200)), (2, None)] {
            jobs.push(self.job(CountJob {
                interval_ms: self.interval_ms,
                window_ms: Some(1000),
                watermark_interval_ms: interval,
                ..CountJob::new(self.records, self.keys, p, Checkpointing::ExactlyOnce)
            }));
        }
        for chaining in [true, false] {
            jobs.push(self.job(CountJob {
                extra_hop: true,
                chaining,
                ..CountJob::new(self.records, self.keys, 1, Checkpointing::Off)
            }));
        }
        jobs
    }

    /// The skew configurations: no skew, then one slow channel exactly-once and at-least-once.
    pub fn skew_jobs(&self) -> Vec<CountJob> {
        let base = |c, skew| {
            self.job(CountJob {
                interval_ms: self.interval_ms,
                skew,
                ..CountJob::new(u64::MAX, self.keys, 2, c)
            })
        };
        let slow = Some(Skew {
            micros_per_batch: self.skew_micros_per_batch,
        });
        vec![
            base(
                Checkpointing::ExactlyOnce,
                Some(Skew {
                    micros_per_batch: 0,
                }),
            ),
            base(Checkpointing::ExactlyOnce, slow),
            base(Checkpointing::AtLeastOnce, slow),
        ]
    }
}

impl Options {
    /// The back-pressure configurations: a slow sink behind the keyed count, checkpoints
    /// aligned, unaligned, and aligned switching to unaligned after a timeout.
    pub fn backpressure_jobs(&self) -> Vec<CountJob> {
        [
            Checkpointing::ExactlyOnce,
            Checkpointing::Unaligned {
                aligned_timeout_ms: 0,
            },
            Checkpointing::Unaligned {
                aligned_timeout_ms: self.aligned_timeout_ms,
            },
        ]
        .into_iter()
        .map(|c| CountJob {
            interval_ms: self.interval_ms,
            slow_sink_micros: Some(self.slow_sink_micros),
            batch_size: self.batch_size,
            credits: Some(self.backpressure_credits),
            ..CountJob::new(u64::MAX, self.keys, 2, c)
        })
        .collect()
    }
}

/// One measurement, run in one process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Task {
    Limit {
        records: u64,
        keys: u64,
        hasher: LimitHasher,
    },
    Throughput {
        job: CountJob,
    },
    CheckpointCost {
        keys: u64,
        interval_ms: u64,
        checkpoints: usize,
        /// Snapshot compression on.
        #[serde(default)]
        compression: bool,
    },
    Recovery {
        keys: u64,
        path: String,
        settle_ms: u64,
    },
    Skew {
        job: CountJob,
        run_ms: u64,
    },
}

impl Task {
    pub fn label(&self) -> String {
        match self {
            Task::Limit { hasher, .. } => hasher.label().to_string(),
            Task::Throughput { job } => job.label(),
            Task::CheckpointCost { keys, .. } => format!("checkpoint cost, {keys} keys"),
            Task::Recovery { keys, .. } => format!("recovery, {keys} keys"),
            Task::Skew { job, .. } => job.label(),
        }
    }
}

/// The plain loop's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Limit {
    pub seconds: f64,
    pub records_per_sec: f64,
    pub peak_rss_bytes: u64,
}

/// What a task measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Limit(Limit),
    Throughput(Throughput),
    CheckpointCost(CheckpointCost),
    Recovery(Recovery),
    Skew(Skewed),
}

impl Outcome {
    /// One line for the progress log.
    pub fn brief(&self) -> String {
        let m = |r: f64| format!("{:.2} M records/s", r / 1e6);
        match self {
            Outcome::Limit(l) => m(l.records_per_sec),
            Outcome::Throughput(t) => format!(
                "{}, {} checkpoints",
                m(t.records_per_sec),
                t.checkpoints.len()
            ),
            Outcome::CheckpointCost(c) => format!(
                "{} checkpoints, end-to-end {:.0} ms, sync {:.1} ms, {} bytes",
                c.checkpoints.len(),
                measure::median_of(&c.checkpoints, |s| s.end_to_end_ms),
                measure::median_of(&c.checkpoints, |s| s.max_sync_ms),
                c.retained_bytes
            ),
            Outcome::Recovery(r) => format!(
                "first record {:.3} s, steady {:.3} s at {}",
                r.first_record_seconds,
                r.steady_seconds,
                m(r.steady_records_per_sec)
            ),
            Outcome::Skew(s) => format!(
                "{}, {} checkpoints",
                m(s.records_per_sec),
                s.checkpoints.len()
            ),
        }
    }
}

/// Runs one task in this process, with checkpoints under `scratch`.
///
/// # Errors
/// The measurement failed; a wrong checksum is a failure.
pub fn run_task(task: &Task, scratch: &Path) -> Result<Outcome, String> {
    match task {
        Task::Limit {
            records,
            keys,
            hasher,
        } => {
            let (got, elapsed) = plain_loop(*records, *keys, *hasher);
            let expected = Checksum::expected(*records, *keys);
            if got != expected {
                return Err(format!(
                    "the limit loop is wrong: {got:?}, expected {expected:?}"
                ));
            }
            let seconds = elapsed.as_secs_f64();
            Ok(Outcome::Limit(Limit {
                seconds,
                records_per_sec: *records as f64 / seconds,
                peak_rss_bytes: peak_rss_bytes(),
            }))
        }
        Task::Throughput { job } => measure::throughput(job, scratch).map(Outcome::Throughput),
        Task::CheckpointCost {
            keys,
            interval_ms,
            checkpoints,
            compression,
        } => measure::checkpoint_cost(*keys, *interval_ms, *checkpoints, *compression, scratch)
            .map(Outcome::CheckpointCost),
        Task::Recovery {
            keys,
            path,
            settle_ms,
        } => measure::recovery(*keys, path, *settle_ms, scratch).map(Outcome::Recovery),
        Task::Skew { job, run_ms } => measure::skew(job, *run_ms, scratch).map(Outcome::Skew),
    }
}

/// Every result of one invocation, per configuration in table order, per run in run order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub limits: Vec<(LimitHasher, Vec<Limit>)>,
    pub throughput: Vec<(CountJob, Vec<Throughput>)>,
    pub sizes: Vec<SizeResults>,
    pub skew: Vec<(CountJob, Vec<Skewed>)>,
    #[serde(default)]
    pub backpressure: Vec<(CountJob, Vec<Skewed>)>,
}

/// The checkpoint cost and recovery runs at one state size.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SizeResults {
    pub keys: u64,
    pub cost: Vec<CheckpointCost>,
    pub recovery: Vec<Recovery>,
}

/// Runs everything `opts` asks for. `exec(task, scratch)` runs one task with its checkpoints
/// under `scratch` (a fresh directory under `work`, deleted afterwards).
///
/// # Errors
/// The first failed task, named.
pub fn execute(
    opts: &Options,
    work: &Path,
    mut exec: impl FnMut(&Task, &Path) -> Result<Outcome, String>,
) -> Result<Results, String> {
    let mut results = Results::default();
    let mut scratch_n = 0u32;
    let mut fresh = || -> Result<PathBuf, String> {
        scratch_n += 1;
        let dir = work.join(format!("task-{scratch_n}"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(dir)
    };
    let jobs = if opts.sections.throughput {
        opts.throughput_jobs()
    } else {
        Vec::new()
    };
    if opts.sections.throughput {
        let hashers = [LimitHasher::StdDefault, LimitHasher::Stable];
        results.limits = hashers.iter().map(|&h| (h, Vec::new())).collect();
        results.throughput = jobs.iter().map(|j| (j.clone(), Vec::new())).collect();
    }
    results.sizes = if opts.sections.checkpoint || opts.sections.recovery {
        opts.state_keys
            .iter()
            .map(|&keys| SizeResults {
                keys,
                ..SizeResults::default()
            })
            .collect()
    } else {
        Vec::new()
    };
    if opts.sections.skew {
        results.skew = opts
            .skew_jobs()
            .into_iter()
            .map(|j| (j, Vec::new()))
            .collect();
    }
    if opts.sections.backpressure {
        results.backpressure = opts
            .backpressure_jobs()
            .into_iter()
            .map(|j| (j, Vec::new()))
            .collect();
    }

    for run in 0..opts.runs {
        // Throughput and its limits, the order rotated each run.
        let n = results.limits.len() + results.throughput.len();
        for i in (0..n).map(|i| (i + run) % n.max(1)) {
            let dir = fresh()?;
            if i < results.limits.len() {
                let hasher = results.limits[i].0;
                let task = Task::Limit {
                    records: opts.records,
                    keys: opts.keys,
                    hasher,
                };
                match exec(&task, &dir)? {
                    Outcome::Limit(l) => results.limits[i].1.push(l),
                    other => return Err(unexpected(&task, &other)),
                }
            } else {
                let j = i - results.limits.len();
                let task = Task::Throughput {
                    job: results.throughput[j].0.clone(),
                };
                match exec(&task, &dir)? {
                    Outcome::Throughput(t) => results.throughput[j].1.push(t),
                    other => return Err(unexpected(&task, &other)),
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        // Checkpoint cost, then recovery from the checkpoint that run retained.
        for size in &mut results.sizes {
            let dir = fresh()?;
            let task = Task::CheckpointCost {
                keys: size.keys,
                interval_ms: opts.interval_ms,
                checkpoints: opts.checkpoints_per_size,
                compression: opts.compression,
            };
            let cost = match exec(&task, &dir)? {
                Outcome::CheckpointCost(c) => c,
                other => return Err(unexpected(&task, &other)),
            };
            if opts.sections.recovery {
                let task = Task::Recovery {
                    keys: size.keys,
                    path: cost.retained_path.clone(),
                    settle_ms: opts.settle_ms,
                };
                let restored_dir = fresh()?;
                match exec(&task, &restored_dir)? {
                    Outcome::Recovery(r) => size.recovery.push(r),
                    other => return Err(unexpected(&task, &other)),
                }
                let _ = std::fs::remove_dir_all(&restored_dir);
            }
            size.cost.push(cost);
            let _ = std::fs::remove_dir_all(&dir);
        }
        for (job, runs) in results.skew.iter_mut().chain(&mut results.backpressure) {
            let dir = fresh()?;
            let task = Task::Skew {
                job: job.clone(),
                run_ms: opts.skew_run_ms,
            };
            match exec(&task, &dir)? {
                Outcome::Skew(s) => runs.push(s),
                other => return Err(unexpected(&task, &other)),
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    Ok(results)
}

fn unexpected(task: &Task, outcome: &Outcome) -> String {
    format!("{}: unexpected result {outcome:?}", task.label())
}
