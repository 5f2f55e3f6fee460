//! [`CliError`] and the exit codes a script can rely on (see [`super::args::EXIT_CODES`]).

use std::process::ExitCode;

/// The job FINISHED or the operation succeeded.
pub const SUCCESS: u8 = 0;
/// The job FAILED, or the operation failed.
pub const FAILURE: u8 = 1;
/// Usage or configuration error.
pub const USAGE: u8 = 2;
/// `run`: the job was CANCELED.
pub const CANCELED: u8 = 3;

/// Why a command did not succeed; each maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments, job file or configuration (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The operation or the job failed (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub fn code(&self) -> u8 {
        match self {
            CliError::Usage(_) => USAGE,
            CliError::Failed(_) => FAILURE,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code())
    }
}

impl From<weir::jobfile::JobFileError> for CliError {
    fn from(e: weir::jobfile::JobFileError) -> Self {
        CliError::Usage(e.to_string())
    }
}

impl From<weir::config::ConfigError> for CliError {
    fn from(e: weir::config::ConfigError) -> Self {
        CliError::Usage(e.to_string())
    }
}
