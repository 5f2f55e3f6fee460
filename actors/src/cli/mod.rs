//! The `weir` command line (the binary in `src/bin/weir.rs` is one call to [`main`]).
//!
//! - [`args`]: the commands and flags (clap derive) and the exit codes;
//! - [`run`]: `weir run JOB_FILE` — the job in this process, the REST API, the status line,
//!   Ctrl-C;
//! - [`client`]: `list`, `savepoint`, `stop`, `cancel`, `checkpoint` over REST, through the
//!   blocking HTTP client in [`http`] (`ureq`);
//! - [`inspect`]: `weir checkpoints DIR`, offline;
//! - [`status`]: the status line; [`exit`]: errors and exit codes.
//!
//! A program with its own operators runs the same CLI with its registry:
//!
//! ```ignore
//! fn main() -> std::process::ExitCode {
//!     let mut registry = weir_actors::weir::jobfile::Registry::new();
//!     registry.register_operator("my-op", |p| Ok(MyOp::new(p.field("field")?)));
//!     weir_actors::cli::main(std::env::args_os(), &registry)
//! }
//! ```

pub mod args;
pub mod client;
pub mod exit;
pub mod http;
pub mod inspect;
pub mod run;
pub mod status;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use weir::jobfile::Registry;

use args::{Cli, Command};
use exit::CliError;

/// Splits `-D key=value` arguments.
///
/// # Errors
/// An argument without `=` or with an empty key (usage error).
pub fn overrides(defines: &[String]) -> Result<Vec<(String, String)>, CliError> {
    defines
        .iter()
        .map(|d| weir::config::parse_override(d).map_err(CliError::from))
        .collect()
}

/// Makes the `s3.*` settings of the configuration (`--config`, `config/weir.yaml`, `WEIR_*`,
/// `-D`) the process's, for commands that open `s3://` locations without running a job.
///
/// # Errors
/// A bad configuration (usage error).
pub fn configure_s3(config: &args::ConfigArgs) -> Result<(), CliError> {
    let (engine, _) =
        weir::config::load_from_env(config.config.as_deref(), None, &overrides(&config.define)?)?;
    weir::checkpoint::storage::s3::configure(engine.s3);
    Ok(())
}

/// Logs (`tracing`) go to stderr, `warn` and above unless `RUST_LOG` says otherwise, so stdout
/// carries only the CLI's own lines; no colour codes unless stderr is a terminal.
fn init_logging() {
    crate::logging::init_with_default("warn");
}

/// Runs one command of the `weir` CLI with the operators of `registry`; returns the exit code.
pub fn main(
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
    registry: &Registry,
) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap: 0 for --help and --version, 2 for usage errors.
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    init_logging();
    let result = match &cli.command {
        Command::Run(a) => run::run(a, registry).map(ExitCode::from),
        Command::List(a) => client::list(a).map(|()| ExitCode::SUCCESS),
        Command::Savepoint(a) => client::savepoint(a).map(|()| ExitCode::SUCCESS),
        Command::Stop(a) => client::stop(a).map(|()| ExitCode::SUCCESS),
        Command::Cancel(a) => client::cancel(a).map(|()| ExitCode::SUCCESS),
        Command::Checkpoint(a) => client::checkpoint(a).map(|()| ExitCode::SUCCESS),
        Command::Checkpoints(a) => inspect::checkpoints(a).map(|()| ExitCode::SUCCESS),
    };
    // RocksDB aborts a process that exits with an instance open: let the subtasks' threads drop
    // theirs first (bounded).
    weir::state::wait_for_rocksdb_closed(std::time::Duration::from_secs(10));
    result.unwrap_or_else(|e: CliError| {
        eprintln!("error: {e}");
        e.exit_code()
    })
}
