//! The command line, declared with clap's derive API. `--help` on every command shows what it
//! does and the exit codes.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub(crate) const EXIT_CODES: &str = "\
Exit codes:
  0  success (for `run`: the job FINISHED)
  1  the job FAILED, or the operation failed (savepoint, stop, checkpoint, cannot reach the REST API)
  2  usage or configuration error (bad arguments, job file or configuration; a malformed request)
  3  `run` only: the job was CANCELED (Ctrl-C, `weir cancel`, or REST)";

/// Weir: run streaming jobs from job files and manage them, with Flink's checkpoints and
/// savepoints.
#[derive(Parser, Debug)]
#[command(name = "weir", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a job file in this process and serve the REST API until the job ends.
    ///
    /// Prints `REST API listening on http://ADDR` and `Job <id> is RUNNING`, then a live status
    /// line on a terminal (plain lines otherwise). Ctrl-C cancels the job: committed output stays,
    /// retained checkpoints follow `execution.checkpointing.externalized-checkpoint-retention`.
    #[command(after_help = EXIT_CODES)]
    Run(RunArgs),
    /// List the jobs of a running `weir run` (over REST).
    #[command(after_help = EXIT_CODES)]
    List(ClientArgs),
    /// Take a savepoint of a running job, or dispose of one with --dispose.
    ///
    /// Prints `Savepoint completed. Path: PATH`.
    #[command(after_help = EXIT_CODES)]
    Savepoint(SavepointArgs),
    /// Stop a job with a savepoint: the job FINISHES after it, and sinks commit.
    ///
    /// Prints `Savepoint completed. Path: PATH`.
    #[command(after_help = EXIT_CODES)]
    Stop(StopArgs),
    /// Cancel a running job (no savepoint).
    #[command(after_help = EXIT_CODES)]
    Cancel(JobArgs),
    /// Take a checkpoint of a running job now.
    ///
    /// Prints `Checkpoint N completed. Path: PATH`.
    #[command(after_help = EXIT_CODES)]
    Checkpoint(CheckpointArgs),
    /// Inspect stored checkpoints and savepoints offline: id, kind, time, size, operators and
    /// their parallelism, and which are complete, incomplete or damaged (and why).
    #[command(after_help = EXIT_CODES)]
    Checkpoints(CheckpointsArgs),
}

/// Where the configuration comes from (shared by every command).
#[derive(Args, Debug, Clone, Default)]
pub struct ConfigArgs {
    /// The base configuration file (default: config/weir.yaml if it exists).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Set an engine key, Flink's name (repeatable; the last one wins), e.g.
    /// -D execution.checkpointing.interval=10s
    #[arg(short = 'D', value_name = "KEY=VALUE")]
    pub define: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The job file (.yaml, .yml or .toml).
    #[arg(value_name = "JOB_FILE")]
    pub job_file: PathBuf,
    /// Restore from a savepoint or retained checkpoint (its directory or `_metadata`), or
    /// `latest`: the newest complete one under the job's checkpoint and savepoint directories
    /// (nothing there: start fresh).
    #[arg(short = 's', long = "from-savepoint", value_name = "PATH")]
    pub from_savepoint: Option<String>,
    /// Skip restored state of operators the job no longer has.
    #[arg(short = 'n', long = "allow-non-restored-state")]
    pub allow_non_restored_state: bool,
    /// Who owns the restored snapshot: NO_CLAIM (default) or CLAIM.
    #[arg(long = "claim-mode", value_name = "MODE")]
    pub claim_mode: Option<String>,
    /// Default parallelism of the job's operators (`parallelism.default`).
    #[arg(short = 'p', long = "parallelism", value_name = "N")]
    pub parallelism: Option<u32>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// How to reach a running `weir run`.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// The REST API: HOST, HOST:PORT or http://HOST:PORT (default 127.0.0.1 and `rest.port`).
    #[arg(long, value_name = "ADDRESS")]
    pub address: Option<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Args, Debug)]
pub struct JobArgs {
    /// The job id (32 hex digits, as `weir list` shows).
    #[arg(value_name = "JOB_ID")]
    pub job_id: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Savepoint formats.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatArg {
    Canonical,
    Native,
}

impl FormatArg {
    pub(crate) fn flink_name(self) -> &'static str {
        match self {
            FormatArg::Canonical => "CANONICAL",
            FormatArg::Native => "NATIVE",
        }
    }
}

#[derive(Args, Debug)]
pub struct SavepointArgs {
    /// The job id (not with --dispose).
    #[arg(value_name = "JOB_ID", required_unless_present = "dispose")]
    pub job_id: Option<String>,
    /// Parent directory of the savepoint (default: `execution.checkpointing.savepoint-dir`).
    #[arg(value_name = "DIR")]
    pub dir: Option<String>,
    /// Savepoint format.
    #[arg(long = "type", value_enum, default_value = "canonical")]
    pub format: FormatArg,
    /// Dispose of the savepoint at PATH (offline: no job needed).
    #[arg(short = 'd', long, value_name = "PATH", conflicts_with_all = ["job_id", "dir"])]
    pub dispose: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// The job id.
    #[arg(value_name = "JOB_ID")]
    pub job_id: String,
    /// Parent directory of the savepoint (default: `execution.checkpointing.savepoint-dir`).
    #[arg(short = 'p', long = "savepoint-path", value_name = "DIR")]
    pub savepoint_path: Option<String>,
    /// Let every operator flush what it holds before the savepoint (permanent shutdown).
    #[arg(short = 'd', long)]
    pub drain: bool,
    /// Savepoint format.
    #[arg(long = "type", value_enum, default_value = "canonical")]
    pub format: FormatArg,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    /// The job id.
    #[arg(value_name = "JOB_ID")]
    pub job_id: String,
    /// A full (non-incremental) checkpoint.
    #[arg(long)]
    pub full: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug)]
pub struct CheckpointsArgs {
    /// A checkpoint directory (with job-id sub-directories), a savepoint directory, or one
    /// `chk-<n>` / `savepoint-*` directory.
    #[arg(value_name = "DIR")]
    pub dir: String,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The configuration (for the `s3.*` settings of an `s3://` DIR).
    #[command(flatten)]
    pub config: ConfigArgs,
}
