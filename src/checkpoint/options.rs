//! `CheckpointConfig`: every checkpoint setting a Flink user knows, with Flink's defaults.
//!
//! Validation happens once, in [`CheckpointConfig::validate`], so that the coordinator and the
//! runtime can trust the values they are given.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Exactly-once (barrier alignment) or at-least-once (barrier tracking, no blocking).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum CheckpointingMode {
    #[default]
    ExactlyOnce,
    AtLeastOnce,
}

/// What happens to retained checkpoints when the job ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum ExternalizedRetention {
    /// Deleted when the job is canceled or finishes; kept when it fails.
    #[default]
    NoExternalizedCheckpoints,
    /// Deleted when the job is canceled; kept when it fails or finishes.
    DeleteOnCancellation,
    /// Kept whatever happens; the user cleans up.
    RetainOnCancellation,
}

/// Where checkpoint state and metadata go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StorageConfig {
    /// Everything in the coordinator's memory; a checkpoint larger than `max_state_size` bytes fails.
    JobManager { max_state_size: u64 },
    /// Files under `dir` (a plain path, `file://...`, or any URI opendal serves, e.g. `memory://`).
    FileSystem { dir: String },
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig::JobManager {
            max_state_size: DEFAULT_JOBMANAGER_MAX_STATE_SIZE,
        }
    }
}

/// Flink's 5 MB cap for jobmanager storage.
pub const DEFAULT_JOBMANAGER_MAX_STATE_SIZE: u64 = 5 * 1024 * 1024;
/// Flink's `execution.checkpointing.data-inline-threshold` default, 20 KB.
pub const DEFAULT_INLINE_THRESHOLD: u64 = 20 * 1024;
/// Flink's upper bound for the inline threshold, 1 MB.
pub const MAX_INLINE_THRESHOLD: u64 = 1024 * 1024;
/// Flink's smallest allowed interval.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// All checkpoint settings. `Default` gives Flink's defaults (checkpointing off).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointConfig {
    /// Period of the periodic trigger; `None` disables periodic checkpoints.
    pub interval: Option<Duration>,
    pub mode: CheckpointingMode,
    /// A pending checkpoint older than this is expired and counts as failed.
    pub timeout: Duration,
    /// Minimal time from the end of one checkpoint to the next trigger.
    pub min_pause: Duration,
    /// At most this many checkpoints pending at once (a min pause forces 1).
    pub max_concurrent: u32,
    /// Consecutive failed checkpoints tolerated before the job fails over.
    pub tolerable_failures: u32,
    pub externalized_retention: ExternalizedRetention,
    /// Completed checkpoints kept (`num-retained`).
    pub num_retained: u32,
    pub storage: StorageConfig,
    /// Default directory for savepoints when a request names none.
    pub savepoint_dir: Option<String>,
    /// State smaller than this many bytes is stored inside `_metadata`.
    pub inline_threshold: u64,
    /// Unaligned checkpoints (exactly-once only, max concurrent 1).
    pub unaligned: bool,
    /// With `unaligned`: a checkpoint starts aligned and a subtask switches to unaligned once
    /// its alignment has taken this long (zero: unaligned from the first barrier).
    pub aligned_timeout: Duration,
    /// Incremental snapshots where the state backend supports them.
    pub incremental: bool,
    /// Compress snapshot state (`execution.checkpointing.snapshot-compression`): with LZ4,
    /// recorded in each blob's header (see [`crate::format`]).
    pub compression: bool,
    /// Put `chk-<n>` under a `<job-id>/` sub-directory of the checkpoint dir.
    pub create_subdir: bool,
    /// Local copies of checkpoint state for failover (`local-backup.*`, `from-local`).
    #[serde(default)]
    pub local_recovery: LocalRecoveryConfig,
}

/// Local recovery (`execution.checkpointing.local-backup.enabled`,
/// `execution.state-recovery.from-local`, `execution.checkpointing.local-backup.dirs`): see
/// `storage::local`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalRecoveryConfig {
    /// Keep a local copy of every state file of the checkpoints retention keeps.
    pub backup: bool,
    /// On failover, read state from the local copy when it checks out.
    pub restore_from_local: bool,
    /// Root directories of the local copies; empty: `<temp dir>/weir-local-state`.
    pub dirs: Vec<String>,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            interval: None,
            mode: CheckpointingMode::ExactlyOnce,
            timeout: Duration::from_secs(600),
            min_pause: Duration::ZERO,
            max_concurrent: 1,
            tolerable_failures: 0,
            externalized_retention: ExternalizedRetention::default(),
            num_retained: 1,
            storage: StorageConfig::default(),
            savepoint_dir: None,
            inline_threshold: DEFAULT_INLINE_THRESHOLD,
            unaligned: false,
            aligned_timeout: Duration::ZERO,
            incremental: false,
            compression: false,
            create_subdir: true,
            local_recovery: LocalRecoveryConfig::default(),
        }
    }
}

/// A checkpoint setting that cannot be used, named by its Flink key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value} for `{key}`: expected {expected}")]
pub struct InvalidCheckpointConfig {
    pub key: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl CheckpointConfig {
    /// Periodic checkpoints every `interval`, everything else at its default.
    pub fn every(interval: Duration) -> Self {
        Self {
            interval: Some(interval),
            ..Self::default()
        }
    }

    /// Max concurrent as the coordinator applies it: a min pause forces 1.
    pub fn effective_max_concurrent(&self) -> u32 {
        if self.min_pause > Duration::ZERO {
            1
        } else {
            self.max_concurrent
        }
    }

    /// Flink keys that are set here but that this version of Weir does not act on yet: the
    /// runtime warns about each at job start instead of ignoring it silently.
    pub fn unimplemented_settings(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.incremental {
            keys.push("execution.checkpointing.incremental (every checkpoint is full)");
        }
        keys
    }

    /// Settings that are valid but have no effect in this combination (as in Flink): the
    /// runtime warns about each at job start.
    pub fn ineffective_settings(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.aligned_timeout > Duration::ZERO && !self.unaligned {
            keys.push(
                "execution.checkpointing.aligned-checkpoint-timeout (applies only with \
                 execution.checkpointing.unaligned.enabled: true)",
            );
        }
        keys
    }

    /// Checks every value and every combination; the error names the Flink key.
    pub fn validate(&self) -> Result<(), InvalidCheckpointConfig> {
        let bad = |key, value: String, expected| {
            Err(InvalidCheckpointConfig {
                key,
                value,
                expected,
            })
        };
        if let Some(i) = self.interval {
            if i < MIN_INTERVAL {
                return bad(
                    "execution.checkpointing.interval",
                    format!("{i:?}"),
                    "at least 10 ms",
                );
            }
        }
        if self.timeout < MIN_INTERVAL {
            return bad(
                "execution.checkpointing.timeout",
                format!("{:?}", self.timeout),
                "at least 10 ms",
            );
        }
        if self.max_concurrent == 0 {
            return bad(
                "execution.checkpointing.max-concurrent-checkpoints",
                "0".into(),
                "a positive number",
            );
        }
        if self.num_retained == 0 {
            return bad(
                "execution.checkpointing.num-retained",
                "0".into(),
                "a positive number",
            );
        }
        if self.inline_threshold > MAX_INLINE_THRESHOLD {
            return bad(
                "execution.checkpointing.data-inline-threshold",
                self.inline_threshold.to_string(),
                "at most 1 MB",
            );
        }
        if self.unaligned && self.mode == CheckpointingMode::AtLeastOnce {
            return bad(
                "execution.checkpointing.unaligned.enabled",
                "true".into(),
                "false when execution.checkpointing.mode is AT_LEAST_ONCE",
            );
        }
        if self.unaligned && self.max_concurrent > 1 {
            return bad(
                "execution.checkpointing.unaligned.enabled",
                "true".into(),
                "false when execution.checkpointing.max-concurrent-checkpoints is above 1",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_flinks() {
        let c = CheckpointConfig::default();
        assert_eq!(c.interval, None);
        assert_eq!(c.timeout, Duration::from_secs(600));
        assert_eq!(c.max_concurrent, 1);
        assert_eq!(c.num_retained, 1);
        assert_eq!(c.tolerable_failures, 0);
        assert_eq!(c.inline_threshold, 20 * 1024);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn settings_not_acted_on_are_listed() {
        assert!(CheckpointConfig::default()
            .unimplemented_settings()
            .is_empty());
        let c = CheckpointConfig {
            unaligned: true,
            compression: true,
            ..CheckpointConfig::default()
        };
        let keys = c.unimplemented_settings();
        // Unaligned checkpoints and compression are implemented; only incremental is listed.
        assert!(keys.is_empty());
        let incremental = CheckpointConfig {
            incremental: true,
            ..c
        };
        let keys = incremental.unimplemented_settings();
        assert_eq!(keys.len(), 1);
        assert!(keys[0].starts_with("execution.checkpointing.incremental"));
    }

    #[test]
    fn an_alignment_timeout_without_unaligned_checkpoints_is_listed_as_ineffective() {
        let timeout = CheckpointConfig {
            aligned_timeout: Duration::from_millis(50),
            ..CheckpointConfig::default()
        };
        assert_eq!(timeout.ineffective_settings().len(), 1);
        let unaligned = CheckpointConfig {
            unaligned: true,
            ..timeout
        };
        assert!(unaligned.ineffective_settings().is_empty());
    }

    #[test]
    fn min_pause_forces_one_concurrent() {
        let c = CheckpointConfig {
            max_concurrent: 4,
            min_pause: Duration::from_millis(5),
            ..CheckpointConfig::default()
        };
        assert_eq!(c.effective_max_concurrent(), 1);
    }

    #[test]
    fn contradictions_name_the_key() {
        let c = CheckpointConfig {
            unaligned: true,
            mode: CheckpointingMode::AtLeastOnce,
            ..CheckpointConfig::default()
        };
        let e = c.validate().unwrap_err();
        assert_eq!(e.key, "execution.checkpointing.unaligned.enabled");
        assert!(e.to_string().contains("AT_LEAST_ONCE"));
        let tiny = CheckpointConfig::every(Duration::from_millis(1));
        assert_eq!(
            tiny.validate().unwrap_err().key,
            "execution.checkpointing.interval"
        );
    }
}
