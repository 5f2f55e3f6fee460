//! [`EngineConfig`]: the typed result of loading the configuration.
//!
//! It gathers what the rest of Weir consumes: the [`CheckpointConfig`], the restart strategy,
//! parallelism and max parallelism, the state backend, what to restore from
//! ([`RestoreConfig`]), where the REST API listens ([`RestConfig`]). `Default` is Flink's
//! defaults. [`EngineConfig::origins`] remembers where each explicitly set key came from, so
//! [`EngineConfig::describe`] (in [`super::describe`]) can print every effective value with its
//! source.
//!
//! Local recovery (`execution.state-recovery.from-local`, `execution.checkpointing.local-backup.*`)
//! is part of the [`CheckpointConfig`] (`local_recovery`).
//! `execution.checkpointing.write-buffer-size` is accepted and validated so Flink files load,
//! but nothing in Weir uses it yet.

use std::collections::BTreeMap;
use std::fmt;

use crate::checkpoint::storage::s3::S3Settings;
use crate::checkpoint::CheckpointConfig;
use crate::restart::RestartStrategy;
use crate::state::keyed::StateBackendKind;

use super::settings::Origin;

/// Flink's `execution.checkpointing.write-buffer-size` default, 4 KB.
pub const DEFAULT_WRITE_BUFFER_SIZE: u64 = 4096;
/// Flink's largest max parallelism (number of key groups), 2^15.
pub const MAX_MAX_PARALLELISM: u32 = 1 << 15;

/// Whether a restored snapshot becomes the job's (`execution.state-recovery.claim-mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ClaimMode {
    /// The snapshot stays the user's: never deleted; the first checkpoint is a full one.
    #[default]
    NoClaim,
    /// The snapshot becomes the job's first checkpoint and is deleted once subsumed.
    Claim,
}

impl ClaimMode {
    /// Flink's name: `NO_CLAIM` or `CLAIM`.
    pub fn name(self) -> &'static str {
        match self {
            ClaimMode::NoClaim => "NO_CLAIM",
            ClaimMode::Claim => "CLAIM",
        }
    }
}

impl fmt::Display for ClaimMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the job starts from (`execution.state-recovery.*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreConfig {
    /// A savepoint or retained checkpoint (its directory or its `_metadata`); `None` starts
    /// empty.
    pub path: Option<String>,
    pub claim_mode: ClaimMode,
    /// Skip restored state whose operator the job no longer has, instead of failing.
    pub ignore_unclaimed_state: bool,
}

/// Where the REST API listens (`rest.address`, `rest.port`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestConfig {
    pub address: String,
    pub port: u16,
}

impl Default for RestConfig {
    /// Loopback, Flink's port 8081.
    fn default() -> Self {
        Self {
            address: "127.0.0.1".to_owned(),
            port: 8081,
        }
    }
}

/// Where each explicitly set key came from, by current key name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origins(pub(crate) BTreeMap<&'static str, Origin>);

impl Origins {
    /// Where `key` (a current name) came from; [`Origin::Default`] if no layer set it.
    pub fn get(&self, key: &str) -> Origin {
        self.0.get(key).cloned().unwrap_or_default()
    }

    /// Whether some layer set `key` (even to `null`).
    pub fn is_set(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }
}

/// The engine's settings, typed. `Default` is Flink's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    pub checkpoint: CheckpointConfig,
    /// `None`: not configured, so Flink's default for the checkpointing setting applies (see
    /// [`EngineConfig::effective_restart`]).
    pub restart: Option<RestartStrategy>,
    /// `parallelism.default`.
    pub parallelism: u32,
    /// `pipeline.max-parallelism`; `None` lets the graph derive it from the parallelism.
    pub max_parallelism: Option<u32>,
    /// `state.backend.type`.
    pub state_backend: StateBackendKind,
    /// `state.backend.rocksdb.localdir` (`None`: the temp dir).
    pub state_local_dir: Option<String>,
    pub restore: RestoreConfig,
    /// `execution.checkpointing.write-buffer-size` in bytes. Accepted; not used yet.
    pub write_buffer_size: u64,
    pub rest: RestConfig,
    /// `s3.*`: how to reach an S3-compatible store (`s3://` directories); the CLI makes them
    /// the process's ([`crate::checkpoint::storage::s3::configure`]).
    pub s3: S3Settings,
    /// `pipeline.name`.
    pub job_name: Option<String>,
    /// `pipeline.auto-watermark-interval`.
    pub auto_watermark_interval: std::time::Duration,
    /// Where each explicitly set key came from.
    pub origins: Origins,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            checkpoint: CheckpointConfig::default(),
            restart: None,
            parallelism: 1,
            max_parallelism: None,
            state_backend: StateBackendKind::default(),
            state_local_dir: None,
            restore: RestoreConfig::default(),
            write_buffer_size: DEFAULT_WRITE_BUFFER_SIZE,
            rest: RestConfig::default(),
            s3: S3Settings::default(),
            job_name: None,
            auto_watermark_interval: crate::graph::DEFAULT_AUTO_WATERMARK_INTERVAL,
            origins: Origins::default(),
        }
    }
}

impl EngineConfig {
    /// The restart strategy in force: the configured one, or Flink's default (`none` without
    /// checkpointing, `exponential-delay` with it).
    pub fn effective_restart(&self) -> RestartStrategy {
        RestartStrategy::effective(self.restart.as_ref(), &self.checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn defaults_are_flinks() {
        let c = EngineConfig::default();
        assert_eq!(c.checkpoint, CheckpointConfig::default());
        assert_eq!(c.parallelism, 1);
        assert_eq!(c.max_parallelism, None);
        assert_eq!(c.state_backend.name(), "hashmap");
        assert_eq!(c.restore.claim_mode, ClaimMode::NoClaim);
        assert!(!c.restore.ignore_unclaimed_state);
        assert_eq!(c.rest.address, "127.0.0.1");
        assert_eq!(c.rest.port, 8081);
        assert_eq!(c.write_buffer_size, 4096);
        assert_eq!(c.effective_restart(), RestartStrategy::None);
        assert_eq!(c.origins.get("rest.port"), Origin::Default);
        assert!(!c.origins.is_set("rest.port"));
    }

    #[test]
    fn unconfigured_restart_follows_checkpointing() {
        let mut c = EngineConfig::default();
        c.checkpoint.interval = Some(Duration::from_secs(10));
        assert_eq!(c.effective_restart(), RestartStrategy::exponential_delay());
        c.restart = Some(RestartStrategy::fixed_delay());
        assert_eq!(c.effective_restart(), RestartStrategy::fixed_delay());
        assert_eq!(ClaimMode::Claim.to_string(), "CLAIM");
    }
}
