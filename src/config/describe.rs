//! Showing the effective configuration: every key, its value in Flink's notation, and where the
//! value came from.
//!
//! [`EngineConfig::to_flat_map`] renders the typed configuration back to Flink's flat keys (so
//! derived values show too: the storage a checkpoint dir selected, the restart strategy the
//! checkpointing setting implies). Values parse again to the same configuration.
//! [`EngineConfig::describe`] prints that map as aligned `key = value  (origin)` lines, for
//! `weir run --help`-style output; the REST API's checkpoint configuration can be built from the
//! map.

use std::collections::BTreeMap;

use crate::checkpoint::{CheckpointingMode, ExternalizedRetention, StorageConfig};
use crate::restart::RestartStrategy;

use super::engine::EngineConfig;
use super::keys::*;
use super::settings::Origin;
use super::units::{format_duration, format_size};

const FIXED_OPTIONS: [&str; 2] = [FIXED_ATTEMPTS, FIXED_DELAY];
const EXP_OPTIONS: [&str; 6] = [
    EXP_INITIAL,
    EXP_MAX,
    EXP_MULTIPLIER,
    EXP_RESET,
    EXP_JITTER,
    EXP_ATTEMPTS,
];
const ALL_RESTART_OPTIONS: [&str; 8] = [
    FIXED_ATTEMPTS,
    FIXED_DELAY,
    EXP_INITIAL,
    EXP_MAX,
    EXP_MULTIPLIER,
    EXP_RESET,
    EXP_JITTER,
    EXP_ATTEMPTS,
];

/// One key's effective value and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effective {
    /// The value in Flink's notation; `None` when unset (no interval, no directory...).
    pub value: Option<String>,
    pub origin: Origin,
}

impl EngineConfig {
    /// Every key of [`KEYS`] with its effective value and origin.
    pub fn to_flat_map(&self) -> BTreeMap<&'static str, Effective> {
        let c = &self.checkpoint;
        let restart = self.effective_restart();
        let defaults = (
            RestartStrategy::fixed_delay(),
            RestartStrategy::exponential_delay(),
        );
        // Options of a strategy that is not configured show their defaults, which is what
        // they are worth (an unset type runs the default strategy with default options).
        let (fixed, exponential, unconfigured): (_, _, &[&str]) = match &self.restart {
            Some(f @ RestartStrategy::FixedDelay { .. }) => (f, &defaults.1, &EXP_OPTIONS),
            Some(e @ RestartStrategy::ExponentialDelay { .. }) => (&defaults.0, e, &FIXED_OPTIONS),
            _ => (&defaults.0, &defaults.1, &ALL_RESTART_OPTIONS),
        };
        let dur = |d| Some(format_duration(d));
        let num = |n: u32| Some(n.to_string());
        let flag = |b: bool| Some(b.to_string());
        let mut values: Vec<(&'static str, Option<String>)> = vec![
            (INTERVAL, c.interval.map(format_duration)),
            (
                MODE,
                Some(match c.mode {
                    CheckpointingMode::ExactlyOnce => "EXACTLY_ONCE".into(),
                    CheckpointingMode::AtLeastOnce => "AT_LEAST_ONCE".into(),
                }),
            ),
            (TIMEOUT, dur(c.timeout)),
            (MIN_PAUSE, dur(c.min_pause)),
            (MAX_CONCURRENT, num(c.max_concurrent)),
            (TOLERABLE_FAILURES, num(c.tolerable_failures)),
            (
                RETENTION,
                Some(
                    match c.externalized_retention {
                        ExternalizedRetention::NoExternalizedCheckpoints => {
                            "NO_EXTERNALIZED_CHECKPOINTS"
                        }
                        ExternalizedRetention::DeleteOnCancellation => "DELETE_ON_CANCELLATION",
                        ExternalizedRetention::RetainOnCancellation => "RETAIN_ON_CANCELLATION",
                    }
                    .into(),
                ),
            ),
            (NUM_RETAINED, num(c.num_retained)),
            (SAVEPOINT_DIR, c.savepoint_dir.clone()),
            (INLINE_THRESHOLD, Some(format_size(c.inline_threshold))),
            (WRITE_BUFFER_SIZE, Some(format_size(self.write_buffer_size))),
            (UNALIGNED, flag(c.unaligned)),
            (
                ALIGNED_TIMEOUT,
                Some(format!("{} ms", c.aligned_timeout.as_millis())),
            ),
            (INCREMENTAL, flag(c.incremental)),
            (COMPRESSION, flag(c.compression)),
            (CREATE_SUBDIR, flag(c.create_subdir)),
            (LOCAL_BACKUP, flag(c.local_recovery.backup)),
            (
                LOCAL_BACKUP_DIRS,
                (!c.local_recovery.dirs.is_empty()).then(|| c.local_recovery.dirs.join(";")),
            ),
            (STATE_BACKEND, Some(self.state_backend.name().into())),
            (ROCKSDB_LOCAL_DIR, self.state_local_dir.clone()),
            (RESTORE_PATH, self.restore.path.clone()),
            (CLAIM_MODE, Some(self.restore.claim_mode.name().into())),
            (IGNORE_UNCLAIMED, flag(self.restore.ignore_unclaimed_state)),
            (FROM_LOCAL, flag(c.local_recovery.restore_from_local)),
            (RESTART_TYPE, Some(restart.name().into())),
            (PARALLELISM, num(self.parallelism)),
            (
                MAX_PARALLELISM,
                Some(self.max_parallelism.map_or("-1".into(), |n| n.to_string())),
            ),
            (JOB_NAME, self.job_name.clone()),
            (
                AUTO_WATERMARK_INTERVAL,
                Some(format!("{} ms", self.auto_watermark_interval.as_millis())),
            ),
            (REST_ADDRESS, Some(self.rest.address.clone())),
            (REST_PORT, Some(self.rest.port.to_string())),
            (S3_ENDPOINT, self.s3.endpoint.clone()),
            (S3_REGION, self.s3.region.clone()),
            (S3_ACCESS_KEY, self.s3.access_key.clone()),
            // Never printed.
            (
                S3_SECRET_KEY,
                self.s3.secret_key.as_ref().map(|_| "******".into()),
            ),
            (S3_PATH_STYLE, flag(self.s3.path_style)),
        ];
        match &c.storage {
            StorageConfig::JobManager { .. } => {
                values.push((STORAGE, Some("jobmanager".into())));
                values.push((DIR, None));
            }
            StorageConfig::FileSystem { dir } => {
                values.push((STORAGE, Some("filesystem".into())));
                values.push((DIR, Some(dir.clone())));
            }
        }
        if let RestartStrategy::FixedDelay { attempts, delay } = fixed {
            values.push((FIXED_ATTEMPTS, num(*attempts)));
            values.push((FIXED_DELAY, dur(*delay)));
        }
        if let RestartStrategy::ExponentialDelay {
            initial_backoff,
            max_backoff,
            multiplier,
            reset_backoff_threshold,
            jitter_factor,
            attempts_before_reset_backoff,
        } = exponential
        {
            values.push((EXP_INITIAL, dur(*initial_backoff)));
            values.push((EXP_MAX, dur(*max_backoff)));
            values.push((EXP_MULTIPLIER, Some(multiplier.to_string())));
            values.push((EXP_RESET, dur(*reset_backoff_threshold)));
            values.push((EXP_JITTER, Some(jitter_factor.to_string())));
            values.push((EXP_ATTEMPTS, num(*attempts_before_reset_backoff)));
        }
        values
            .into_iter()
            .map(|(key, value)| {
                let origin = if unconfigured.contains(&key) {
                    Origin::Default
                } else {
                    self.origin_shown(key)
                };
                (key, Effective { value, origin })
            })
            .collect()
    }

    /// The origin of a key, or the key it was derived from when no layer set it.
    fn origin_shown(&self, key: &'static str) -> Origin {
        if self.origins.is_set(key) {
            return self.origins.get(key);
        }
        let derived_from = match key {
            STORAGE if self.origins.is_set(DIR) => Some(DIR),
            RESTART_TYPE if self.origins.is_set(INTERVAL) => Some(INTERVAL),
            LOCAL_BACKUP if self.origins.is_set(FROM_LOCAL) => Some(FROM_LOCAL),
            _ => None,
        };
        derived_from.map_or(Origin::Default, Origin::Derived)
    }

    /// Every key, in [`KEYS`] order, as aligned `key = value  (origin)` lines.
    pub fn describe(&self) -> String {
        let map = self.to_flat_map();
        let width = KEYS.iter().map(|s| s.key.len()).max().unwrap_or(0);
        let mut out = String::new();
        for spec in KEYS {
            let effective = &map[spec.key];
            let value = effective.value.as_deref().unwrap_or("(not set)");
            let origin = match &effective.origin {
                Origin::Default => "default".to_owned(),
                other => other.to_string(),
            };
            out.push_str(&format!("{:width$} = {value}  ({origin})\n", spec.key));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_cover_every_key_and_match_the_table() {
        let map = EngineConfig::default().to_flat_map();
        assert_eq!(map.len(), KEYS.len());
        for spec in KEYS {
            let effective = &map[spec.key];
            assert_eq!(effective.origin, Origin::Default, "{}", spec.key);
            // Where the table gives a plain default, it is what the typed default renders to.
            if !spec.default.starts_with('(') {
                assert_eq!(
                    effective.value.as_deref(),
                    Some(spec.default),
                    "{}",
                    spec.key
                );
            }
        }
        assert_eq!(map[INTERVAL].value, None);
        assert_eq!(map[STORAGE].value.as_deref(), Some("jobmanager"));
        assert_eq!(map[RESTART_TYPE].value.as_deref(), Some("none"));
        assert_eq!(map[MAX_PARALLELISM].value.as_deref(), Some("-1"));
    }

    #[test]
    fn describe_prints_one_aligned_line_per_key() {
        let text = EngineConfig::default().describe();
        assert_eq!(text.lines().count(), KEYS.len());
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with("execution.checkpointing.interval "),
            "{first}"
        );
        assert!(first.ends_with("= (not set)  (default)"), "{first}");
        let column = first.find(" = ").unwrap();
        assert!(
            text.lines().all(|l| l.find(" = ") == Some(column)),
            "{text}"
        );
    }
}
