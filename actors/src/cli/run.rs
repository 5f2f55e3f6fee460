//! `weir run JOB_FILE`: load the configuration and the job file, submit the job in an actix
//! System in this process, serve the REST API, show the job's progress, and exit with its
//! outcome.
//!
//! Output (stdout): `REST API listening on http://ADDR`, then `Job <id> is RUNNING`, then a live
//! status line on a terminal (plain lines every 10 s otherwise), and a last line with the final
//! status. Ctrl-C or SIGTERM cancels the job and says so; a second one exits at once. Committed
//! output is never lost: a two-phase sink's committed files stay, and retained checkpoints follow
//! `execution.checkpointing.externalized-checkpoint-retention`.
//!
//! `-s latest` (or `execution.state-recovery.path: latest`) resumes from the newest complete
//! snapshot under the job's checkpoint and savepoint directories that the job can restore, and
//! says which; with none it starts fresh and says so.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use actix_rt::signal::unix::{signal, SignalKind};
use weir::checkpoint::resume::choose_latest;
use weir::checkpoint::storage::{list_snapshots, StorageError};
use weir::checkpoint::StorageConfig;
use weir::config::keys;
use weir::jobfile::{self, BuiltJob, LoadOptions, Registry};
use weir::status::JobStatus;

use super::args::RunArgs;
use super::exit::{CliError, CANCELED, FAILURE, SUCCESS};
use super::overrides;
use super::status::{human_size, StatusLine};
use crate::rest::{RestServer, RestState};
use crate::{submit, JobOptions, RestoreSettings};

/// How long a finished `weir run` keeps serving results nobody has fetched yet.
const LINGER: Duration = Duration::from_secs(10);

/// The `-D` pairs plus what `-s`, `-n`, `--claim-mode` and `-p` stand for (they win over `-D`).
pub fn run_overrides(args: &RunArgs) -> Result<Vec<(String, String)>, CliError> {
    let mut pairs = overrides(&args.config.define)?;
    if let Some(path) = &args.from_savepoint {
        pairs.push((keys::RESTORE_PATH.to_owned(), path.clone()));
    }
    if args.allow_non_restored_state {
        pairs.push((keys::IGNORE_UNCLAIMED.to_owned(), "true".to_owned()));
    }
    if let Some(mode) = &args.claim_mode {
        pairs.push((keys::CLAIM_MODE.to_owned(), mode.clone()));
    }
    if let Some(p) = args.parallelism {
        pairs.push((keys::PARALLELISM.to_owned(), p.to_string()));
    }
    Ok(pairs)
}

/// Runs the job of `args` with the operators of `registry`; returns the exit code of its
/// outcome.
///
/// # Errors
/// A bad job file or configuration, or a REST address that cannot be bound (usage errors).
pub fn run(args: &RunArgs, registry: &Registry) -> Result<u8, CliError> {
    let options = LoadOptions {
        base_config: args.config.config.clone(),
        env: std::env::vars().collect(),
        overrides: run_overrides(args)?,
    };
    let mut job = jobfile::load(&args.job_file, registry, &options)?;
    for warning in &job.warnings {
        eprintln!("warning: {warning}");
    }
    // `s3://` checkpoint, savepoint and restore locations use the job's `s3.*` settings.
    weir::checkpoint::storage::s3::configure(job.config.s3.clone());
    let system = actix::System::new();
    if job.config.restore.path.as_deref() == Some(LATEST) {
        job.config.restore.path = system.block_on(latest_snapshot(&job))?;
    }
    system.block_on(run_job(job))
}

/// What `-s` takes to resume from the newest snapshot this job left.
pub const LATEST: &str = "latest";

/// The newest complete snapshot under the job's checkpoint and savepoint directories that the
/// job can restore ([`choose_latest`]), or `None` (said on stdout either way).
///
/// # Errors
/// A directory that exists but cannot be listed.
async fn latest_snapshot(job: &BuiltJob) -> Result<Option<String>, CliError> {
    let checkpoint = &job.config.checkpoint;
    let mut dirs = Vec::new();
    if let StorageConfig::FileSystem { dir } = &checkpoint.storage {
        dirs.push(dir.clone());
    }
    dirs.extend(checkpoint.savepoint_dir.clone());
    let mut listings = Vec::new();
    for dir in &dirs {
        match list_snapshots(dir).await {
            Ok(found) => listings.extend(found),
            Err(StorageError::DirectoryNotFound { .. }) => {}
            Err(e) => return Err(CliError::Failed(format!("cannot look for a snapshot: {e}"))),
        }
    }
    let allow = job.config.restore.ignore_unclaimed_state;
    match choose_latest(&listings, &job.graph, allow) {
        Some(chosen) => {
            say(&format!(
                "Resuming from the latest snapshot: {} (of {} found under {})",
                chosen.path,
                listings.len(),
                dirs.join(", ")
            ));
            Ok(Some(chosen.path.clone()))
        }
        None => {
            let under = if dirs.is_empty() {
                "no checkpoint or savepoint directory is configured".to_owned()
            } else {
                format!("none to resume under {}", dirs.join(", "))
            };
            say(&format!("Nothing to resume ({under}): starting fresh"));
            Ok(None)
        }
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn run_job(job: BuiltJob) -> Result<u8, CliError> {
    let BuiltJob {
        name,
        graph,
        config,
        metrics,
        ..
    } = job;
    let state = RestState::default();
    let server =
        RestServer::start(state.clone(), &config.rest.address, config.rest.port).map_err(|e| {
            CliError::Usage(format!(
                "cannot serve the REST API on {}:{}: {e} (set `rest.port`, 0 for any free port)",
                config.rest.address, config.rest.port
            ))
        })?;
    say(&format!(
        "REST API listening on http://{}",
        server.local_addr()
    ));

    let restore = config.restore.path.clone().map(|path| RestoreSettings {
        path,
        allow_non_restored_state: config.restore.ignore_unclaimed_state,
        claim_mode: config.restore.claim_mode,
    });
    if let Some(r) = &restore {
        say(&format!("Restoring from {} ({})", r.path, r.claim_mode));
    }
    let mut handle = submit(
        graph.clone(),
        JobOptions {
            job_id: None,
            restore,
        },
    )
    .map_err(|e| CliError::Usage(e.to_string()))?;
    state.jobs.register(&handle, &graph);
    let job_id = handle.job_id;

    let started = handle
        .wait_for(|s| s.status == JobStatus::Running || s.status.is_terminal())
        .await;
    if started.status == JobStatus::Running {
        say(&format!("Job {job_id} is RUNNING ({name})"));
    }

    let tty = std::io::stdout().is_terminal();
    let mut ticker = tokio::time::interval(if tty {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(10)
    });
    ticker.tick().await;
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| CliError::Failed(format!("cannot listen for Ctrl-C: {e}")))?;
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| CliError::Failed(format!("cannot listen for SIGTERM: {e}")))?;
    let mut line = StatusLine::new(metrics);
    let mut waiter = handle.clone();
    let ended = waiter.wait();
    tokio::pin!(ended);
    let mut canceled_by = None;
    let retention = format!("{:?}", config.checkpoint.externalized_retention);
    let final_state = loop {
        let what = tokio::select! {
            s = &mut ended => break s,
            _ = interrupt.recv() => "Ctrl-C",
            _ = terminate.recv() => "SIGTERM",
            _ = ticker.tick() => {
                let stats = handle.checkpoint_stats().await;
                let facts = line.sample(&handle.state(), stats.as_ref());
                if tty {
                    let mut out = std::io::stdout().lock();
                    let _ = write!(out, "\r\x1b[2K{}", facts.render());
                    let _ = out.flush();
                } else {
                    say(&format!("status: {}", facts.render()));
                }
                continue;
            }
        };
        if tty {
            say("");
        }
        if canceled_by.is_some() {
            say(&format!(
                "{what} again: exiting without waiting for job {job_id} to end"
            ));
            return Ok(CANCELED);
        }
        say(&format!(
            "{what}: canceling job {job_id}. Committed output stays; retained checkpoints \
             follow execution.checkpointing.externalized-checkpoint-retention ({retention})."
        ));
        canceled_by = Some(what);
        handle.cancel().await;
    };
    if tty {
        say("");
    }

    let mut last = String::new();
    if let Some(c) = &final_state.latest_completed {
        last = format!(
            "; last checkpoint {} ({}) at {}",
            c.id,
            human_size(c.state_size),
            c.external_path
        );
    }
    let code = match final_state.status {
        JobStatus::Finished => {
            say(&format!("Job {job_id} FINISHED{last}"));
            SUCCESS
        }
        JobStatus::Canceled => {
            let by = canceled_by.map_or(String::new(), |w| format!(" ({w})"));
            say(&format!("Job {job_id} CANCELED{by}{last}"));
            CANCELED
        }
        other => {
            let why = final_state.failure.clone().unwrap_or_default();
            say(&format!("Job {job_id} {}: {why}{last}", other.flink_name()));
            // The cause on stderr too, as every error of the CLI, for whoever reads only that.
            eprintln!("error: job {job_id} {}: {why}", other.flink_name());
            FAILURE
        }
    };
    let left = state.triggers.wait_collected(LINGER).await;
    if left > 0 {
        eprintln!("warning: {left} operation result(s) were not fetched over REST before exit");
    }
    server.stop().await;
    Ok(code)
}
