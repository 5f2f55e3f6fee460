//! `weir run JOB_FILE`: load the configuration and the job file, submit the job in an actix
//! System in this process, serve the REST API, show the job's progress, and exit with its
//! outcome.
//!
//! Output (stdout): `REST API listening on http://ADDR`, then `Job <id> is RUNNING`, then a live
//! status line on a terminal (plain lines every 10 s otherwise), and a last line with the final
//! status. Ctrl-C or SIGTERM cancels the job and says so; a second one exits at once. Committed
//! output is never lost: a two-phase sink's committed files stay, and retained checkpoints follow
//! `execution.checkpointing.externalized-checkpoint-retention`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use actix_rt::signal::unix::{signal, SignalKind};
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
    let job = jobfile::load(&args.job_file, registry, &options)?;
    for warning in &job.warnings {
        eprintln!("warning: {warning}");
    }
    let system = actix::System::new();
    system.block_on(run_job(job))
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
