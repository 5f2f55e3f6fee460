//! A job embedded in an actix application, maintained by another actor: it takes a savepoint,
//! then stops the job with a savepoint; the application restores the job from that savepoint
//! with a different parallelism and runs it to the end. The committed output is exactly once.
//!
//! ```sh
//! cargo run --example savepoint_actor
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use actix::prelude::*;
use weir_actors::weir::checkpoint::{CheckpointConfig, StorageConfig};
use weir_actors::weir::connectors::file_sink::{committed_lines, ExactlyOnceFileSink};
use weir_actors::weir::connectors::sequence::SequenceSource;
use weir_actors::weir::element::SavepointFormat;
use weir_actors::weir::functions::Count;
use weir_actors::weir::graph::JobGraph;
use weir_actors::weir::stream::StreamEnvironment;
use weir_actors::{
    logging, submit, CompletedCheckpoint, ControlError, JobManager, JobOptions, RestoreSettings,
    StopWithSavepoint, TriggerSavepoint,
};

const RECORDS: u64 = 200_000;
const KEYS: u64 = 100;

/// Counts records per key: `(key, n)` for the n-th record of each key.
fn job(parallelism: u32, rate: Option<f64>, dir: &std::path::Path) -> JobGraph {
    let env = StreamEnvironment::new("keyed count");
    env.set_parallelism(parallelism);
    env.set_checkpoint_config(CheckpointConfig {
        interval: Some(Duration::from_millis(100)),
        storage: StorageConfig::FileSystem {
            dir: dir.join("checkpoints").display().to_string(),
        },
        savepoint_dir: Some(dir.join("savepoints").display().to_string()),
        ..CheckpointConfig::default()
    });
    let mut source = SequenceSource::new(0, RECORDS);
    if let Some(r) = rate {
        source = source.with_rate(r);
    }
    env.add_source("numbers", source)
        .key_by(|v: &u64| v % KEYS)
        .process("count", Count::default())
        .add_sink("out", ExactlyOnceFileSink::new(dir.join("out")));
    env.build().expect("a valid job")
}

/// The maintenance actor: after a while, a savepoint; then stop-with-savepoint.
struct Maintenance {
    job: Addr<JobManager>,
    done: Option<tokio::sync::oneshot::Sender<Result<CompletedCheckpoint, ControlError>>>,
}

impl Actor for Maintenance {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_later(Duration::from_millis(500), |act, ctx| {
            let job = act.job.clone();
            let work = async move {
                let savepoint = job.send(TriggerSavepoint::default()).await;
                println!(
                    "maintenance: savepoint {:?}",
                    savepoint.map(|r| r.map(|s| s.external_path))
                );
                job.send(StopWithSavepoint {
                    format: SavepointFormat::Canonical,
                    ..StopWithSavepoint::default()
                })
                .await
                .unwrap_or(Err(ControlError::Gone))
            };
            ctx.spawn(work.into_actor(act).map(|stopped, act, ctx| {
                if let Some(done) = act.done.take() {
                    let _ = done.send(stopped);
                }
                ctx.stop();
            }));
        });
    }
}

#[actix::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    logging::init();
    let dir = std::env::temp_dir().join("weir-savepoint-example");
    let _ = std::fs::remove_dir_all(&dir);

    let mut first = submit(job(2, Some(100_000.0), &dir), JobOptions::default())?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    Maintenance {
        job: first.addr.clone(),
        done: Some(tx),
    }
    .start();
    let stopped = rx.await??;
    let state = first.wait().await;
    println!(
        "first run: {} with savepoint {} ({} bytes of state)",
        state.status, stopped.external_path, stopped.state_size
    );

    let options = JobOptions {
        restore: Some(RestoreSettings::new(stopped.external_path)),
        ..JobOptions::default()
    };
    let mut second = submit(job(3, None, &dir), options)?;
    let state = second.wait().await;
    println!("second run (parallelism 3, restored): {}", state.status);

    let mut counts: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for line in committed_lines(dir.join("out"))? {
        let (k, n): (u64, u64) = serde_json::from_str(&line)?;
        counts.entry(k).or_default().push(n);
    }
    let exactly_once = counts.values_mut().all(|v| {
        v.sort_unstable();
        *v == (1..=RECORDS / KEYS).collect::<Vec<_>>()
    });
    println!(
        "{} keys, every count 1..={} committed exactly once: {exactly_once}",
        counts.len(),
        RECORDS / KEYS
    );
    if !exactly_once {
        return Err("committed output is not exactly once".into());
    }
    Ok(())
}
