//! The markdown report: one table per section and the targets of the benchmark issue, each
//! checked against what this invocation measured.
//!
//! A cell is `median (min–max)` over the runs. A ratio pairs run `i` of one configuration with
//! run `i` of the other (taken in the same round, minutes apart at most) before summarising.

use std::fmt::Write;

use super::capture::CheckpointSample;
use super::job::{human_ms, Checkpointing, CountJob};
use super::measure::median_of;
use super::plan::{Options, Results, SizeResults};
use super::stats::{bytes, median, Summary};

/// Credits per channel, records per batch and bytes per record of the skew job (the runtime's
/// defaults and the `u64` records), for the bound on what alignment can buffer.
const CREDITS: u64 = 8;
const BATCH: u64 = 1024;
const RECORD_BYTES: u64 = 8;

fn cell(s: Option<Summary>, scale: f64, digits: usize) -> String {
    s.map_or_else(|| "—".into(), |s| s.show(scale, digits))
}

/// `a[i] / b[i]`, summarised.
fn paired(a: &[f64], b: &[f64]) -> Option<Summary> {
    Summary::of(a.iter().zip(b).map(|(x, y)| x / y))
}

fn rss(values: impl IntoIterator<Item = u64>) -> String {
    bytes(median(values.into_iter().map(|b| b as f64)))
}

/// Per run, the median over that run's checkpoints of `f`; summarised over runs.
fn per_run<'a>(
    runs: impl IntoIterator<Item = &'a Vec<CheckpointSample>>,
    f: impl Fn(&CheckpointSample) -> f64 + Copy,
) -> Option<Summary> {
    Summary::of(runs.into_iter().map(|c| median_of(c, f)))
}

fn rates<T>(runs: &[T], f: impl Fn(&T) -> f64) -> Vec<f64> {
    runs.iter().map(f).collect()
}

/// The throughput rows' rates (records/s per run) of the job matching `pred`.
fn job_rates(r: &Results, pred: impl Fn(&CountJob) -> bool) -> Option<Vec<f64>> {
    r.throughput
        .iter()
        .find(|(j, _)| pred(j))
        .map(|(_, runs)| rates(runs, |t| t.records_per_sec))
}

/// The whole report, in markdown.
pub fn markdown(opts: &Options, r: &Results, machine: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "_{machine}_\n");
    if !r.throughput.is_empty() {
        throughput_table(&mut md, opts, r);
    }
    if !r.sizes.is_empty() {
        size_tables(&mut md, opts, r);
    }
    if !r.skew.is_empty() {
        skew_table(&mut md, opts, r);
    }
    if !r.backpressure.is_empty() {
        backpressure_table(&mut md, opts, r);
    }
    targets(&mut md, opts, r);
    md
}

fn throughput_table(md: &mut String, opts: &Options, r: &Results) {
    let _ = writeln!(
        md,
        "### 1–2. Keyed count throughput, and the plain-loop limit\n\n\
         {} records, record i → key i % {}, key-by → running count in value state → checksum \
         sink (checked against the closed form); hashmap backend; checkpoints to local disk; \
         {} runs, median (min–max). Ratios pair runs of the same round.\n",
        opts.records, opts.keys, opts.runs
    );
    md.push_str(
        "| configuration | M records/s | × limit (SipHash) | × limit (stable hash) | × same p, checkpoints off | checkpoints | sync pause, ms | end-to-end, ms | checkpoint size | peak RSS |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    let limit = |i: usize| {
        r.limits
            .get(i)
            .map(|(_, runs)| rates(runs, |l| l.records_per_sec))
            .unwrap_or_default()
    };
    let (std_limit, stable_limit) = (limit(0), limit(1));
    for (hasher, runs) in &r.limits {
        let v = rates(runs, |l| l.records_per_sec);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | — | — | — | — | — | {} |",
            hasher.label(),
            cell(Summary::of(v.iter().copied()), 1e-6, 2),
            cell(paired(&v, &std_limit), 1.0, 2),
            cell(paired(&v, &stable_limit), 1.0, 2),
            rss(runs.iter().map(|l| l.peak_rss_bytes)),
        );
    }
    for (job, runs) in &r.throughput {
        let v = rates(runs, |t| t.records_per_sec);
        let off = if job.checkpointing == Checkpointing::Off {
            None
        } else {
            job_rates(r, |j| {
                j.parallelism == job.parallelism
                    && j.checkpointing == Checkpointing::Off
                    && !j.extra_hop
                    && j.window_ms.is_none()
            })
        };
        let samples = || runs.iter().map(|t| &t.checkpoints);
        let checkpointed = job.checkpointing != Checkpointing::Off;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            job.label(),
            cell(Summary::of(v.iter().copied()), 1e-6, 2),
            cell(paired(&v, &std_limit), 1.0, 2),
            cell(paired(&v, &stable_limit), 1.0, 2),
            off.map_or("—".into(), |off| cell(paired(&v, &off), 1.0, 3)),
            if checkpointed {
                cell(
                    Summary::of(runs.iter().map(|t| t.checkpoints.len() as f64)),
                    1.0,
                    0,
                )
            } else {
                "—".into()
            },
            if checkpointed {
                cell(per_run(samples(), |s| s.max_sync_ms), 1.0, 1)
            } else {
                "—".into()
            },
            if checkpointed {
                cell(per_run(samples(), |s| s.end_to_end_ms), 1.0, 0)
            } else {
                "—".into()
            },
            if checkpointed {
                bytes(median(
                    runs.iter()
                        .flat_map(|t| t.checkpoints.iter().map(|c| c.bytes as f64)),
                ))
            } else {
                "—".into()
            },
            rss(runs.iter().map(|t| t.peak_rss_bytes)),
        );
    }
    md.push('\n');
}

fn size_tables(md: &mut String, opts: &Options, r: &Results) {
    let _ = writeln!(
        md,
        "### 3. Checkpoint cost versus state size\n\n\
         p=1, exactly-once every {} ms, hashmap backend, the source running flat out; per run the \
         median of the {} checkpoints triggered after every key had state; {} runs, median \
         (min–max). Sync pause: the longest time a subtask's stream was stopped for the \
         synchronous part (for this job, always the keyed operator). Keyed state acknowledged: \
         trigger until the keyed subtask reported its state written (job manager statistics, ms \
         resolution); the rest of end-to-end is the other acknowledgements and `_metadata`.\n",
        opts.interval_ms, opts.checkpoints_per_size, opts.runs
    );
    md.push_str(
        "| keys | state per checkpoint | end-to-end, ms | sync pause, ms | barrier to last snapshot, ms | keyed state acknowledged, ms | M records/s meanwhile | peak RSS |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for s in &r.sizes {
        let runs = || s.cost.iter().map(|c| &c.checkpoints);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            s.keys,
            bytes(median(
                s.cost
                    .iter()
                    .map(|c| median_of(&c.checkpoints, |x| x.bytes as f64))
            )),
            cell(per_run(runs(), |x| x.end_to_end_ms), 1.0, 0),
            cell(per_run(runs(), |x| x.max_sync_ms), 1.0, 1),
            cell(per_run(runs(), |x| x.barrier_delay_ms), 1.0, 0),
            cell(
                per_run(runs(), |x| x.keyed_ack_ms.unwrap_or(f64::NAN)),
                1.0,
                0
            ),
            cell(
                Summary::of(s.cost.iter().map(|c| c.records_per_sec)),
                1e-6,
                2
            ),
            rss(s.cost.iter().map(|c| c.peak_rss_bytes)),
        );
    }
    md.push('\n');
    if r.sizes.iter().all(|s| s.recovery.is_empty()) {
        return;
    }
    let _ = writeln!(
        md,
        "### 4. Recovery versus state size\n\n\
         A new job restored from the checkpoint the run above retained (p=1, no periodic \
         checkpoints): from submit to the first record at the sink, and to the end of the first \
         100 ms window at ≥ 90% of the steady rate (the rate over the second half of {} ms \
         watched after the first record). Every count emitted after the restore is checked to \
         continue the restored one.\n",
        opts.settle_ms
    );
    md.push_str(
        "| keys | checkpoint on disk | first record, s | steady, s | steady M records/s | peak RSS |\n\
         |---|---|---|---|---|---|\n",
    );
    for s in &r.sizes {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            s.keys,
            bytes(median(s.cost.iter().map(|c| c.retained_bytes as f64))),
            cell(
                Summary::of(s.recovery.iter().map(|x| x.first_record_seconds)),
                1.0,
                3
            ),
            cell(
                Summary::of(s.recovery.iter().map(|x| x.steady_seconds)),
                1.0,
                3
            ),
            cell(
                Summary::of(s.recovery.iter().map(|x| x.steady_records_per_sec)),
                1e-6,
                2
            ),
            rss(s.recovery.iter().map(|x| x.peak_rss_bytes)),
        );
    }
    md.push('\n');
}

fn skew_table(md: &mut String, opts: &Options, r: &Results) {
    let _ = writeln!(
        md,
        "### 5. Alignment under skew\n\n\
         p=2, source → map → key-by → count → sink, {} keys, checkpoints every {} ms, {} ms per \
         run (rate measured after the first second); the slow channel: map subtask 0 sleeps {} \
         µs per 1024-record batch (the sleep blocks its arbiter's thread, which runs other subtasks too: \
         the runtime multiplexes subtasks on one thread per core, so a slow subtask slows its \
         neighbours). Barrier to last snapshot: trigger until the last subtask took \
         its snapshot (barrier travel plus alignment); alignment: the longest first-to-last barrier \
         time of a subtask, from the job manager's checkpoint statistics. Buffered bytes are not exposed by the \
         runtime yet: the column gives the bound the credits impose (a blocked channel holds at \
         most {} batches of {} records of {} bytes, p·(p−1) channels).\n",
        opts.keys,
        opts.interval_ms,
        opts.skew_run_ms,
        opts.skew_micros_per_batch,
        CREDITS,
        BATCH,
        RECORD_BYTES
    );
    md.push_str(
        "| configuration | M records/s | end-to-end, ms | alignment, ms | barrier to last snapshot, ms | sync pause, ms | aborted | buffered during alignment |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for (job, runs) in &r.skew {
        let samples = || runs.iter().map(|s| &s.checkpoints);
        let p = u64::from(job.parallelism);
        let buffered = match job.checkpointing {
            Checkpointing::ExactlyOnce => format!(
                "≤ {} (bound, not measured)",
                bytes((p * (p - 1) * CREDITS * BATCH * RECORD_BYTES) as f64)
            ),
            _ => "0 (nothing is blocked)".into(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            job.label(),
            cell(Summary::of(runs.iter().map(|s| s.records_per_sec)), 1e-6, 2),
            cell(per_run(samples(), |x| x.end_to_end_ms), 1.0, 0),
            cell(
                per_run(samples(), |x| x.alignment_ms.unwrap_or(f64::NAN)),
                1.0,
                1
            ),
            cell(per_run(samples(), |x| x.barrier_delay_ms), 1.0, 0),
            cell(per_run(samples(), |x| x.max_sync_ms), 1.0, 1),
            runs.iter().map(|s| s.aborted).sum::<usize>(),
            buffered,
        );
    }
    md.push('\n');
}

fn backpressure_table(md: &mut String, opts: &Options, r: &Results) {
    let _ = writeln!(
        md,
        "### 6. Checkpoints under back-pressure: aligned, unaligned, aligned with a timeout\n\n\
         p=2, source → key-by → count → sink, {} keys, checkpoints every {} ms, {} ms per run \
         (rate measured after the first second); the sink sleeps {} ms per 1024-record batch, \
         {} batches in flight per channel, so an aligned barrier waits behind up to {} batches per \
         count subtask. End-to-end: trigger to completion. In flight: the bytes of channel state \
         a checkpoint persisted (median per run, from the statistics); unaligned: the share of \
         checkpoints that were.\n",
        opts.keys,
        opts.interval_ms,
        opts.skew_run_ms,
        opts.slow_sink_micros as f64 / 1e3,
        opts.backpressure_credits,
        2 * opts.backpressure_credits,
    );
    md.push_str(
        "| configuration | M records/s | end-to-end, ms | alignment, ms | in flight persisted | unaligned | aborted |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for (job, runs) in &r.backpressure {
        let samples = || runs.iter().map(|s| &s.checkpoints);
        let all: Vec<&CheckpointSample> = runs.iter().flat_map(|s| &s.checkpoints).collect();
        let unaligned = all.iter().filter(|c| c.unaligned == Some(true)).count();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {}/{} | {} |",
            job.label(),
            cell(Summary::of(runs.iter().map(|s| s.records_per_sec)), 1e-6, 3),
            cell(per_run(samples(), |x| x.end_to_end_ms), 1.0, 0),
            cell(
                per_run(samples(), |x| x.alignment_ms.unwrap_or(f64::NAN)),
                1.0,
                1
            ),
            bytes(median(
                all.iter().map(|c| c.persisted_bytes.unwrap_or(0) as f64)
            )),
            unaligned,
            all.len(),
            runs.iter().map(|s| s.aborted).sum::<usize>(),
        );
    }
    md.push('\n');
}

/// One target of the issue: what it asks, what was measured, whether it is met.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub name: String,
    pub goal: String,
    pub measured: String,
    pub verdict: String,
}

fn verdict(met: bool, miss: impl FnOnce() -> String) -> String {
    if met {
        "met".into()
    } else {
        format!("**missed**: {}", miss())
    }
}

fn size(r: &Results, keys: u64) -> Option<&SizeResults> {
    r.sizes
        .iter()
        .find(|s| s.keys == keys && !s.cost.is_empty())
}

/// The targets against this invocation's numbers (those it measured).
pub fn target_checks(opts: &Options, r: &Results) -> Vec<Target> {
    let every = human_ms(opts.interval_ms);
    let mut out = Vec::new();
    let std_limit: Vec<f64> = r
        .limits
        .first()
        .map(|(_, runs)| rates(runs, |l| l.records_per_sec))
        .unwrap_or_default();
    let find = |p: u32, c: Checkpointing| {
        job_rates(r, |j| {
            j.parallelism == p && j.checkpointing == c && !j.extra_hop
        })
    };
    if let (Some(eo), false) = (find(1, Checkpointing::ExactlyOnce), std_limit.is_empty()) {
        if let Some(s) = paired(&eo, &std_limit) {
            out.push(Target {
                name: format!(
                    "throughput, exactly-once every {every}, p=1, {} keys",
                    opts.keys
                ),
                goal: "≥ 25% of the plain-loop limit".into(),
                measured: format!(
                    "{:.0}% ({:.0}–{:.0}%)",
                    s.median * 100.0,
                    s.min * 100.0,
                    s.max * 100.0
                ),
                verdict: verdict(s.median >= 0.25, || {
                    format!(
                        "{:.0} percentage points short ({:.1}× too slow)",
                        (0.25 - s.median) * 100.0,
                        0.25 / s.median
                    )
                }),
            });
        }
    }
    for p in [1, 2] {
        for c in [Checkpointing::ExactlyOnce, Checkpointing::AtLeastOnce] {
            let (Some(on), Some(off)) = (find(p, c), find(p, Checkpointing::Off)) else {
                continue;
            };
            if let Some(s) = paired(&on, &off) {
                let cost = 1.0 - s.median;
                out.push(Target {
                    name: format!("cost of {} checkpoints every {every}, p={p}", c.label()),
                    goal: "≤ 5% of throughput".into(),
                    measured: format!(
                        "{:.1}% (runs: {:.1}% to {:.1}%)",
                        cost * 100.0,
                        (1.0 - s.max) * 100.0,
                        (1.0 - s.min) * 100.0
                    ),
                    verdict: verdict(cost <= 0.05, || {
                        format!("by {:.1} percentage points", (cost - 0.05) * 100.0)
                    }),
                });
            }
        }
    }
    if let Some(s) = size(r, 5_000_000) {
        let runs = || s.cost.iter().map(|c| &c.checkpoints);
        if let Some(sync) = per_run(runs(), |x| x.max_sync_ms) {
            out.push(Target {
                name: "synchronous pause at 5 M keys".into(),
                goal: "< 10 ms".into(),
                measured: format!("{} ms", sync.show(1.0, 0)),
                verdict: verdict(sync.median < 10.0, || {
                    format!("{:.0}× over", sync.median / 10.0)
                }),
            });
        }
        if let Some(e2e) = per_run(runs(), |x| x.end_to_end_ms) {
            out.push(Target {
                name: "end-to-end checkpoint at 5 M keys".into(),
                goal: "well under 1 s (Flink here: ~1 s)".into(),
                measured: format!("{} ms", e2e.show(1.0, 0)),
                verdict: verdict(e2e.median < 1000.0, || {
                    format!("{:.1}× over 1 s", e2e.median / 1000.0)
                }),
            });
        }
        if let Some(first) = Summary::of(s.recovery.iter().map(|x| x.first_record_seconds)) {
            out.push(Target {
                name: "restore 5 M keys and process the first record".into(),
                goal: "< 1 s (Flink here: ~10 s)".into(),
                measured: format!("{} s", first.show(1.0, 2)),
                verdict: verdict(first.median < 1.0, || format!("{:.1}× over", first.median)),
            });
        }
    }
    if let Some(biggest) = r
        .sizes
        .iter()
        .filter(|s| !s.cost.is_empty())
        .max_by_key(|s| s.keys)
    {
        let peak = median(
            biggest
                .cost
                .iter()
                .map(|c| c.peak_rss_bytes as f64)
                .chain(biggest.recovery.iter().map(|x| x.peak_rss_bytes as f64)),
        );
        out.push(Target {
            name: format!("peak memory at {} keys", biggest.keys),
            goal: "bounded (report peak RSS)".into(),
            measured: format!(
                "{} ({:.0} B per key, checkpointing and restore)",
                bytes(peak),
                peak / biggest.keys as f64
            ),
            verdict: "reported".into(),
        });
    }
    let chained = job_rates(r, |j| j.extra_hop && j.chaining);
    let unchained = job_rates(r, |j| j.extra_hop && !j.chaining);
    if let (Some(chained), Some(unchained)) = (chained, unchained) {
        if let Some(s) = paired(&chained, &unchained) {
            out.push(Target {
                name: "operator chaining where it pays".into(),
                goal: "chaining, with its effect in the table".into(),
                measured: format!(
                    "p=1 with a forward map: chained {:.2}× the unchained throughput ({:.2}–{:.2})",
                    s.median, s.min, s.max
                ),
                verdict: if s.median > 1.0 {
                    "met: chaining is on by default".into()
                } else {
                    "**missed**: chaining does not pay here".into()
                },
            });
        }
    }
    out
}

fn targets(md: &mut String, opts: &Options, r: &Results) {
    let checks = target_checks(opts, r);
    if checks.is_empty() {
        return;
    }
    md.push_str("### Targets\n\n| target | goal | measured | verdict |\n|---|---|---|---|\n");
    for t in checks {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            t.name, t.goal, t.measured, t.verdict
        );
    }
    md.push('\n');
}
