//! Engine configuration: Flink's keys, layered, typed, and explained.
//!
//! Weir's settings use Flink's key names — the 1.20+ names (`execution.checkpointing.interval`)
//! and the 1.x aliases (`state.checkpoints.dir`) — so a Flink user's configuration carries over.
//! [`load`] reads them in layers, lowest first:
//!
//! 1. built-in defaults (Flink's);
//! 2. the base file: [`DEFAULT_CONFIG_FILE`] if it exists, or an explicit path that must exist;
//! 3. the job's engine keys ([`JobLayer`]: a file, YAML/TOML text, or an already-parsed map);
//! 4. `WEIR_*` environment variables (`WEIR_EXECUTION__CHECKPOINTING__MIN_PAUSE=1s`: `__` for
//!    `.`, `_` for `-`; see [`layers`]);
//! 5. `-D key=value` overrides ([`parse_override`] splits one argument).
//!
//! How the pieces fit:
//!
//! - [`layers`] reads each layer into flat `key -> value text` entries with their [`Origin`]
//!   (file path, environment variable, `-D`), using the `config` crate's YAML and TOML parsers;
//! - [`settings`] resolves aliases, drops ignored Flink keys with a warning, rejects unknown keys
//!   with a suggestion, and lets higher layers win ([`Settings`]);
//! - `build` maps the settings to the typed [`EngineConfig`], with Flink's rules between keys
//!   and the checks of `CheckpointConfig::validate` and `RestartStrategy::validate`;
//! - [`describe`] prints the effective values with their origins;
//! - [`keys`] is the table of keys, aliases and ignored Flink keys; [`units`] reads and writes
//!   Flink's durations (`"30 s"`, `"2min"`) and sizes (`"20 kb"`).
//!
//! Problems in keys and values are collected over all layers and reported together (see
//! [`ConfigError`]); a file that cannot be read or parsed stops loading at once. Flink keys that
//! Weir does not use come back as warnings, one per key.

// `ConfigError` is large (key, value, origin, expectation, sometimes twice), but it is built
// once, when a configuration is loaded at startup, and `load`'s `Ok` side is larger still.
#![allow(
    clippy::result_large_err,
    reason = "configuration is loaded once; its errors carry full context"
)]

mod build;
pub mod describe;
pub mod engine;
pub mod error;
pub mod keys;
pub mod layers;
pub mod settings;
pub mod units;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use describe::Effective;
pub use engine::{ClaimMode, EngineConfig, Origins, RestConfig, RestoreConfig};
pub use error::ConfigError;
pub use layers::{
    env_var_for, key_for_env_var, parse_override, JobLayer, TextFormat, DEFAULT_CONFIG_FILE,
};
pub use settings::{Origin, Settings};

use layers::BaseFile;

/// Loads the configuration from its layers (see the module docs).
///
/// `base`: the base file; `None` reads [`DEFAULT_CONFIG_FILE`] (relative to the working
/// directory) if it exists. `env`: the environment, injectable for tests ([`load_from_env`]
/// passes the process's). `overrides`: `-D` pairs, in command-line order (a later one wins).
///
/// Returns the typed configuration and the warnings (ignored Flink keys, options of a restart
/// strategy that is not in force, Flink 1.x backend names), each said once.
///
/// # Errors
/// A base file named explicitly that does not exist; a file that cannot be read or parsed
/// (returned at once); unknown keys, bad values and contradictions (all collected: one
/// [`ConfigError`], or [`ConfigError::Several`]).
pub fn load(
    base: Option<&Path>,
    job: Option<JobLayer>,
    env: impl IntoIterator<Item = (String, String)>,
    overrides: &[(String, String)],
) -> Result<(EngineConfig, Vec<String>), ConfigError> {
    let base = match base {
        Some(path) => BaseFile::Required(path.to_path_buf()),
        None => BaseFile::Optional(PathBuf::from(DEFAULT_CONFIG_FILE)),
    };
    load_layers(&base, job.as_ref(), env, overrides)
}

/// [`load`] with the process's environment variables.
///
/// # Errors
/// As [`load`].
pub fn load_from_env(
    base: Option<&Path>,
    job: Option<JobLayer>,
    overrides: &[(String, String)],
) -> Result<(EngineConfig, Vec<String>), ConfigError> {
    load(base, job, std::env::vars(), overrides)
}

/// [`load`] with the base file's optionality spelled out.
pub(crate) fn load_layers(
    base: &BaseFile,
    job: Option<&JobLayer>,
    env: impl IntoIterator<Item = (String, String)>,
    overrides: &[(String, String)],
) -> Result<(EngineConfig, Vec<String>), ConfigError> {
    let mut layers = vec![
        layers::base_layer(base)?,
        job.map(layers::job_layer).transpose()?.unwrap_or_default(),
        layers::env_layer(env)?,
    ];
    layers.extend(layers::override_layers(overrides));
    let merged = Settings::merge(layers);
    let mut errors = merged.errors;
    let built = build::build(&merged.settings);
    let (config, more_warnings) = match built {
        Ok(built) if errors.is_empty() => built,
        Ok(_) => return Err(ConfigError::collect(errors).expect("errors is not empty")),
        Err(more) => {
            errors.extend(more);
            return Err(ConfigError::collect(errors).expect("build reports at least one error"));
        }
    };
    let mut warnings = merged.warnings;
    for warning in more_warnings {
        if !warnings.contains(&warning) {
            warnings.push(warning);
        }
    }
    Ok((config, warnings))
}
