//! One measurement each, run on an actix System of its own in the calling process:
//!
//! - [`throughput`]: a bounded keyed count from submit until the sinks hold every record, with
//!   the checksum checked and the periodic checkpoints taken on the way;
//! - [`checkpoint_cost`]: an endless keyed count over `keys` keys; once every key has state,
//!   the next few checkpoints (end-to-end, synchronous pause, bytes); the job is then canceled
//!   with its latest checkpoint retained;
//! - [`recovery`]: a job restored from such a checkpoint: time to the first record at the sink
//!   and to steady throughput, checking that the restored counts carried on;
//! - [`skew`]: an endless keyed count at parallelism 2 with one slow input channel, for a fixed
//!   time: throughput and what its checkpoints cost.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use weir_actors::weir::ids::CheckpointId;
use weir_actors::weir::status::JobStatus;
use weir_actors::{submit, JobHandle, JobOptions, JobState, RestoreSettings};

use super::capture::{self, CheckpointSample};
use super::job::{Checkpointing, CountJob, Totals};
use super::stats::{median, peak_rss_bytes};

/// How long any one measurement may take before it is declared stuck.
const STUCK: Duration = Duration::from_secs(600);
/// How often the harness looks at a running job.
const POLL: Duration = Duration::from_millis(10);

/// Runs `f` to completion on a fresh actix System.
fn in_system<Fut: Future>(f: impl FnOnce() -> Fut) -> Fut::Output {
    let system = actix::System::new();
    let out = system.block_on(f());
    actix::System::current().stop();
    let _ = system.run();
    out
}

fn failed(what: &str, s: &JobState) -> String {
    format!(
        "{what}: job ended {} ({})",
        s.status,
        s.failure.as_deref().unwrap_or("no failure recorded")
    )
}

/// Polls until `done` holds; fails if the job ends first or it takes longer than [`STUCK`].
async fn poll_until(
    handle: &JobHandle,
    what: &str,
    mut done: impl FnMut() -> bool,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if done() {
            return Ok(());
        }
        let s = handle.state();
        if s.status.is_terminal() {
            return Err(failed(what, &s));
        }
        if start.elapsed() > STUCK {
            return Err(format!(
                "{what}: no progress after {STUCK:?} (job {})",
                s.status
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn cancel(handle: &mut JobHandle) -> JobState {
    handle.cancel().await;
    handle.wait().await
}

/// Adds to each sample what the job manager's checkpoint statistics know (its history holds
/// the latest few checkpoints): alignment and acknowledgement times. `keyed_vertex` is the
/// keyed operator's index in the graph.
async fn add_stats(handle: &JobHandle, keyed_vertex: u32, samples: &mut [CheckpointSample]) {
    let Some(stats) = handle.checkpoint_stats().await else {
        return;
    };
    for s in samples {
        let Some(e) = stats.get(CheckpointId(s.id)) else {
            continue;
        };
        let since_trigger = |ts: u64| ts.saturating_sub(e.trigger_timestamp_ms) as f64;
        s.alignment_ms = Some(e.alignment_duration_micros as f64 / 1e3);
        s.unaligned = Some(e.unaligned);
        s.persisted_bytes = Some(e.persisted_data);
        s.last_ack_ms = e.latest_ack_timestamp_ms.map(since_trigger);
        s.keyed_ack_ms = e
            .subtasks
            .iter()
            .filter(|a| a.task.vertex == keyed_vertex)
            .map(|a| since_trigger(a.ack_timestamp_ms))
            .reduce(f64::max);
    }
}

/// A bounded run's throughput.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    pub records: u64,
    /// Submit to the last record at the sinks.
    pub seconds: f64,
    pub records_per_sec: f64,
    pub checkpoints: Vec<CheckpointSample>,
    pub aborted: usize,
    pub peak_rss_bytes: u64,
}

/// Runs `job` (bounded) to its end and checks its checksum.
///
/// # Errors
/// The job failed, or its output does not match the closed form.
pub fn throughput(job: &CountJob, dir: &Path) -> Result<Throughput, String> {
    capture::install();
    let expected = job.expected();
    let totals = Totals::new(expected.records);
    let graph = job.graph(dir, &totals);
    let (t0, state, checkpoints, aborted) = in_system(|| async {
        let t0 = Instant::now();
        let mut handle = submit(graph, JobOptions::default()).map_err(|e| e.to_string())?;
        let state = handle.wait().await;
        let events = capture::take(&state.job_id.to_string());
        let mut checkpoints = capture::samples(&events, "count", t0);
        add_stats(&handle, job.keyed_vertex(), &mut checkpoints).await;
        Ok::<_, String>((t0, state, checkpoints, capture::aborted(&events)))
    })?;
    if state.status != JobStatus::Finished {
        return Err(failed(&job.label(), &state));
    }
    let got = totals.checksum();
    if got != expected {
        return Err(format!(
            "{}: wrong output: checksum {got:?}, expected {expected:?}",
            job.label()
        ));
    }
    let done = totals.done_at().ok_or("the sinks never saw every record")?;
    let seconds = done.duration_since(t0).as_secs_f64();
    Ok(Throughput {
        records: job.records,
        seconds,
        records_per_sec: job.records as f64 / seconds,
        checkpoints,
        aborted,
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// Checkpoints taken once `keys` keys have state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointCost {
    pub keys: u64,
    /// Submit until every key had state.
    pub fill_seconds: f64,
    pub checkpoints: Vec<CheckpointSample>,
    pub aborted: usize,
    /// Throughput while the measured checkpoints ran.
    pub records_per_sec: f64,
    /// The latest completed checkpoint, retained after the cancel.
    pub retained_path: String,
    /// Bytes on disk under the retained checkpoint's directory.
    pub retained_bytes: u64,
    pub peak_rss_bytes: u64,
}

/// Runs an endless keyed count over `keys` keys (parallelism 1, exactly-once every
/// `interval_ms`) until `wanted` checkpoints triggered after every key had state are complete.
///
/// # Errors
/// The job failed or made no progress.
pub fn checkpoint_cost(
    keys: u64,
    interval_ms: u64,
    wanted: usize,
    compression: bool,
    dir: &Path,
) -> Result<CheckpointCost, String> {
    capture::install();
    let job = CountJob {
        interval_ms,
        retain: true,
        compression,
        ..CountJob::new(u64::MAX, keys, 1, Checkpointing::ExactlyOnce)
    };
    let totals = Totals::new(u64::MAX);
    let graph = job.graph(dir, &totals);
    let what = format!("checkpoint cost at {keys} keys");
    in_system(|| async {
        let t0 = Instant::now();
        let mut handle = submit(graph, JobOptions::default()).map_err(|e| e.to_string())?;
        let job_id = handle.job_id.to_string();
        poll_until(&handle, &what, || totals.records() >= keys).await?;
        let filled = t0.elapsed().as_secs_f64();
        let from_records = totals.records();
        let after_fill = |t: &CheckpointSample| t.triggered_at_s > filled;
        poll_until(&handle, &what, || {
            let seen = capture::samples(&capture::peek(&job_id), "count", t0);
            seen.iter().filter(|s| after_fill(s)).count() >= wanted
        })
        .await?;
        let measured = t0.elapsed().as_secs_f64() - filled;
        let records = totals.records() - from_records;
        let state = cancel(&mut handle).await;
        let events = capture::take(&job_id);
        let retained = state
            .latest_completed
            .as_ref()
            .ok_or_else(|| failed(&what, &state))?;
        let mut checkpoints: Vec<CheckpointSample> = capture::samples(&events, "count", t0)
            .into_iter()
            .filter(after_fill)
            .collect();
        add_stats(&handle, job.keyed_vertex(), &mut checkpoints).await;
        Ok(CheckpointCost {
            keys,
            fill_seconds: filled,
            aborted: capture::aborted(&events),
            records_per_sec: records as f64 / measured,
            retained_bytes: dir_bytes(Path::new(&retained.external_path)),
            retained_path: retained.external_path.clone(),
            checkpoints,
            peak_rss_bytes: peak_rss_bytes(),
        })
    })
}

/// Bytes of the files directly in `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// A restore from a retained checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    pub keys: u64,
    /// Submit (with the restore) to the first record at the sink.
    pub first_record_seconds: f64,
    /// Submit to the end of the first 100 ms window at ≥ 90% of the steady rate.
    pub steady_seconds: f64,
    /// Throughput over the last half of the observed time.
    pub steady_records_per_sec: f64,
    pub peak_rss_bytes: u64,
}

/// Restores the keyed count over `keys` keys from `path` and watches it for `settle_ms` after
/// its first record. Every count emitted must be at least 2: each key had state at the
/// checkpoint, so a restore that lost it shows up as a count of 1.
///
/// # Errors
/// The job failed, made no progress, or did not carry the restored counts on.
pub fn recovery(keys: u64, path: &str, settle_ms: u64, dir: &Path) -> Result<Recovery, String> {
    capture::install();
    let job = CountJob::new(u64::MAX, keys, 1, Checkpointing::Off);
    let totals = Totals::new(u64::MAX);
    let graph = job.graph(dir, &totals);
    let what = format!("recovery at {keys} keys");
    let settle = Duration::from_millis(settle_ms);
    let (t0, samples) = in_system(|| async {
        let options = JobOptions {
            restore: Some(RestoreSettings::new(path)),
            ..JobOptions::default()
        };
        let t0 = Instant::now();
        let mut handle = submit(graph, options).map_err(|e| e.to_string())?;
        let mut samples: Vec<(Instant, u64)> = Vec::new();
        poll_until(&handle, &what, || {
            samples.push((Instant::now(), totals.records()));
            totals.first_at().is_some_and(|f| f.elapsed() >= settle)
        })
        .await?;
        cancel(&mut handle).await;
        Ok::<_, String>((t0, samples))
    })?;
    if totals.min_count() < 2 {
        return Err(format!(
            "{what}: a count of {} after the restore: restored state was lost",
            totals.min_count()
        ));
    }
    let first = totals.first_at().expect("polled until set");
    let (steady_rate, steady_at) = steady(&samples, first);
    Ok(Recovery {
        keys,
        first_record_seconds: first.duration_since(t0).as_secs_f64(),
        steady_seconds: steady_at.duration_since(t0).as_secs_f64(),
        steady_records_per_sec: steady_rate,
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// The steady rate (over the last half of the samples after `first`) and when a 100 ms window
/// first reached 90% of it.
fn steady(samples: &[(Instant, u64)], first: Instant) -> (f64, Instant) {
    let after: Vec<(Instant, u64)> = samples.iter().copied().filter(|s| s.0 >= first).collect();
    let rate = |a: (Instant, u64), b: (Instant, u64)| {
        (b.1 - a.1) as f64 / b.0.duration_since(a.0).as_secs_f64().max(1e-9)
    };
    let (Some(&start), Some(&end)) = (after.first(), after.last()) else {
        return (0.0, first);
    };
    let half = start.0 + end.0.duration_since(start.0) / 2;
    let mid = *after.iter().find(|s| s.0 >= half).unwrap_or(&start);
    let steady = rate(mid, end);
    let window = Duration::from_millis(100);
    for (i, &b) in after.iter().enumerate() {
        let Some(&a) = after[..i]
            .iter()
            .rev()
            .find(|a| b.0.duration_since(a.0) >= window)
        else {
            continue;
        };
        if rate(a, b) >= 0.9 * steady {
            return (steady, b.0);
        }
    }
    (steady, end.0)
}

/// A fixed-time run with one slow channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Skewed {
    /// Over the whole run, after the first second.
    pub records_per_sec: f64,
    pub checkpoints: Vec<CheckpointSample>,
    pub aborted: usize,
    pub peak_rss_bytes: u64,
}

/// Runs `job` (endless) for `run_ms`, then cancels it.
///
/// # Errors
/// The job failed.
pub fn skew(job: &CountJob, run_ms: u64, dir: &Path) -> Result<Skewed, String> {
    capture::install();
    let job = CountJob {
        records: u64::MAX,
        ..job.clone()
    };
    let totals: Arc<Totals> = Totals::new(u64::MAX);
    let graph = job.graph(dir, &totals);
    let what = job.label();
    in_system(|| async {
        let t0 = Instant::now();
        let mut handle = submit(graph, JobOptions::default()).map_err(|e| e.to_string())?;
        let job_id = handle.job_id.to_string();
        let warm = Duration::from_millis(1000.min(run_ms / 4));
        poll_until(&handle, &what, || t0.elapsed() >= warm).await?;
        let (from, at) = (totals.records(), Instant::now());
        poll_until(&handle, &what, || {
            t0.elapsed() >= Duration::from_millis(run_ms)
        })
        .await?;
        let rate = (totals.records() - from) as f64 / at.elapsed().as_secs_f64();
        cancel(&mut handle).await;
        let events = capture::take(&job_id);
        let mut checkpoints = capture::samples(&events, "count", t0);
        add_stats(&handle, job.keyed_vertex(), &mut checkpoints).await;
        Ok(Skewed {
            records_per_sec: rate,
            checkpoints,
            aborted: capture::aborted(&events),
            peak_rss_bytes: peak_rss_bytes(),
        })
    })
}

/// The median over `samples` of `f`.
pub fn median_of(samples: &[CheckpointSample], f: impl Fn(&CheckpointSample) -> f64) -> f64 {
    median(samples.iter().map(f))
}
