//! The typed mapping: from layered [`Settings`] to an [`EngineConfig`].
//!
//! A `Reader` parses one key at a time by its kind (duration, size, bool, whole number, enum,
//! ...). A bad value is recorded as a [`ConfigError::InvalidValue`] naming the key as written,
//! the value, its origin and the expected form, and the default is used meanwhile so that every
//! other key is still checked. `build` then applies Flink's rules between keys (a checkpoint
//! dir with no explicit storage selects `filesystem` storage; local backup falls back to local
//! recovery; an unset restart strategy follows the checkpointing setting), reports settings that
//! cannot go together as [`ConfigError::Contradiction`] naming both keys, and finally runs
//! [`CheckpointConfig::validate`] and [`RestartStrategy::validate`], whose errors are mapped to
//! the key and origin they concern.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use crate::checkpoint::storage::s3::S3Settings;
use crate::checkpoint::{
    CheckpointConfig, CheckpointingMode, ExternalizedRetention, LocalRecoveryConfig, StorageConfig,
};
use crate::restart::{self, RestartStrategy};
use crate::state::keyed::StateBackendKind;

use super::engine::{
    ClaimMode, EngineConfig, Origins, RestConfig, RestoreConfig, DEFAULT_WRITE_BUFFER_SIZE,
    MAX_MAX_PARALLELISM,
};
use super::error::ConfigError;
use super::keys::{self, *};
use super::settings::Settings;
use super::units::{self, DURATION_FORM, SIZE_FORM};

/// Reads typed values out of [`Settings`], collecting problems.
pub(crate) struct Reader<'a> {
    settings: &'a Settings,
    pub(crate) errors: Vec<ConfigError>,
    pub(crate) warnings: Vec<String>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(settings: &'a Settings) -> Self {
        Self {
            settings,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// How to name `key` in a message: as the user spelled it.
    fn name(&self, key: &str) -> String {
        self.settings
            .get(key)
            .map(|s| s.name(key))
            .unwrap_or_else(|| format!("`{key}`"))
    }

    fn invalid(
        &mut self,
        key: &'static str,
        value: &str,
        problem: Option<String>,
        expected: impl Into<String>,
    ) {
        self.errors.push(ConfigError::InvalidValue {
            key,
            name: self.name(key),
            value: value.to_owned(),
            origin: self.settings.origin(key),
            problem,
            expected: expected.into(),
        });
    }

    /// The key's value parsed by `parse`; `None` if unset, or if invalid (then recorded).
    fn read<T>(
        &mut self,
        key: &'static str,
        expected: &str,
        parse: impl FnOnce(&str) -> Result<T, Option<String>>,
    ) -> Option<T> {
        let text = self.settings.value(key)?.trim().to_owned();
        match parse(&text) {
            Ok(value) => Some(value),
            Err(problem) => {
                self.invalid(key, &text, problem, expected);
                None
            }
        }
    }

    fn duration(&mut self, key: &'static str) -> Option<Duration> {
        self.read(key, DURATION_FORM, |t| {
            units::parse_duration(t).map_err(|e| Some(e.to_string()))
        })
    }

    fn size(&mut self, key: &'static str) -> Option<u64> {
        self.read(key, SIZE_FORM, |t| {
            units::parse_size(t).map_err(|e| Some(e.to_string()))
        })
    }

    fn boolean(&mut self, key: &'static str) -> Option<bool> {
        self.read(key, "true or false", |t| {
            if t.eq_ignore_ascii_case("true") {
                Ok(true)
            } else if t.eq_ignore_ascii_case("false") {
                Ok(false)
            } else {
                Err(None)
            }
        })
    }

    /// A whole number in `min..=max`; `expected` describes the range.
    fn whole(&mut self, key: &'static str, min: i128, max: i128, expected: &str) -> Option<i128> {
        self.read(key, expected, |t| {
            let n: i128 = t.parse().map_err(|_| None)?;
            if n < 0 && min >= 0 {
                Err(Some("negative values are not allowed".to_owned()))
            } else if n < min || n > max {
                Err(Some("out of range".to_owned()))
            } else {
                Ok(n)
            }
        })
    }

    /// A count from `min` to `u32::MAX`.
    fn count(&mut self, key: &'static str, min: u32) -> Option<u32> {
        let expected = if min == 0 {
            "a whole number, 0 or more".to_owned()
        } else {
            format!("a whole number, {min} or more")
        };
        self.whole(key, min.into(), u32::MAX.into(), &expected)
            .and_then(|n| u32::try_from(n).ok())
    }

    fn float(&mut self, key: &'static str) -> Option<f64> {
        self.read(key, "a decimal number such as 1.5", |t| {
            t.parse::<f64>().ok().filter(|f| f.is_finite()).ok_or(None)
        })
    }

    fn text(&mut self, key: &'static str) -> Option<String> {
        self.read(key, "text", |t| Ok(t.to_owned()))
    }

    fn list(&mut self, key: &'static str) -> Option<Vec<String>> {
        self.read(key, "texts separated by `,` or `;`", |t| {
            Ok(t.split([',', ';'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect())
        })
    }

    /// One of `options` (matched ignoring case, with `-` and `_` alike). The expected text
    /// lists the key's names from [`KEYS`]; `refuse` gives a specific reason for values Weir
    /// knows but does not support.
    fn choice<T: Copy>(
        &mut self,
        key: &'static str,
        options: &[(&str, T)],
        refuse: &[(&str, &str)],
    ) -> Option<T> {
        let ValueType::Enum(names) = keys::spec(key).value_type else {
            unreachable!("`{key}` is not an enum key")
        };
        let expected = format!("one of {} (any case)", names.join(", "));
        let normalize = |s: &str| s.trim().to_ascii_uppercase().replace('-', "_");
        self.read(key, &expected, |t| {
            let wanted = normalize(t);
            if let Some((_, reason)) = refuse.iter().find(|(name, _)| normalize(name) == wanted) {
                return Err(Some((*reason).to_owned()));
            }
            options
                .iter()
                .find(|(name, _)| normalize(name) == wanted)
                .map(|(_, value)| *value)
                .ok_or(None)
        })
    }

    /// Records that `key` and `other` cannot go together.
    fn contradiction(&mut self, key: &'static str, other: &'static str, reason: &str) {
        let shown = |k: &str| self.settings.value(k).unwrap_or("(not set)").to_owned();
        self.errors.push(ConfigError::Contradiction {
            key,
            name: self.name(key),
            value: shown(key),
            origin: self.settings.origin(key),
            other_key: other,
            other_name: self.name(other),
            other_value: shown(other),
            other_origin: self.settings.origin(other),
            reason: reason.to_owned(),
        });
    }

    /// Maps a `validate()` error to the key's origin, unless that key already has an error.
    fn validation(&mut self, key: &'static str, value: String, expected: &str) {
        let already = self.errors.iter().any(|e| match e {
            ConfigError::InvalidValue { key: k, .. } => *k == key,
            ConfigError::Contradiction {
                key: k, other_key, ..
            } => *k == key || *other_key == key,
            _ => false,
        });
        if !already {
            let value = self.settings.value(key).map(str::to_owned).unwrap_or(value);
            self.invalid(key, &value, None, expected);
        }
    }
}

/// Which `restart-strategy.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RestartKind {
    None,
    FixedDelay,
    ExponentialDelay,
}

/// Builds the typed configuration; returns it with the warnings, or every problem found.
pub(crate) fn build(settings: &Settings) -> Result<(EngineConfig, Vec<String>), Vec<ConfigError>> {
    let mut r = Reader::new(settings);
    let checkpoint = checkpoint(&mut r);
    let parallelism = r.count(PARALLELISM, 1).unwrap_or(1);
    let max_parallelism = r
        .whole(
            MAX_PARALLELISM,
            -1,
            MAX_MAX_PARALLELISM.into(),
            "a whole number from 1 to 32768, or -1 to derive it from the parallelism",
        )
        .filter(|n| *n != -1)
        .and_then(|n| {
            if n == 0 {
                r.invalid(
                    MAX_PARALLELISM,
                    "0",
                    None,
                    "a whole number from 1 to 32768, or -1 to derive it from the parallelism",
                );
                None
            } else {
                u32::try_from(n).ok()
            }
        });
    if max_parallelism.is_some_and(|max| parallelism > max) {
        r.contradiction(
            PARALLELISM,
            MAX_PARALLELISM,
            "a job cannot have more subtasks than key groups: lower parallelism.default or \
             raise pipeline.max-parallelism",
        );
    }
    let restart = restart(&mut r, checkpoint.interval.is_some());
    let state_backend = state_backend(&mut r);
    let state_local_dir = rocksdb_local_dir(&mut r, state_backend);
    let config = EngineConfig {
        restart,
        parallelism,
        max_parallelism,
        state_backend,
        state_local_dir,
        restore: RestoreConfig {
            path: r.text(RESTORE_PATH),
            claim_mode: r
                .choice(
                    CLAIM_MODE,
                    &[
                        ("NO_CLAIM", ClaimMode::NoClaim),
                        ("CLAIM", ClaimMode::Claim),
                    ],
                    &[(
                        "LEGACY",
                        "LEGACY is deprecated in Flink and Weir does not support it",
                    )],
                )
                .unwrap_or_default(),
            ignore_unclaimed_state: r.boolean(IGNORE_UNCLAIMED).unwrap_or(false),
        },
        write_buffer_size: r
            .size(WRITE_BUFFER_SIZE)
            .unwrap_or(DEFAULT_WRITE_BUFFER_SIZE),
        rest: RestConfig {
            address: r
                .text(REST_ADDRESS)
                .unwrap_or_else(|| RestConfig::default().address),
            port: r
                .whole(
                    REST_PORT,
                    0,
                    u16::MAX.into(),
                    "a port number from 0 to 65535",
                )
                .and_then(|n| u16::try_from(n).ok())
                .unwrap_or(RestConfig::default().port),
        },
        s3: S3Settings {
            endpoint: r.text(S3_ENDPOINT),
            region: r.text(S3_REGION),
            access_key: r.text(S3_ACCESS_KEY),
            secret_key: r.text(S3_SECRET_KEY),
            session_token: None,
            path_style: r.boolean(S3_PATH_STYLE).unwrap_or(false),
        },
        job_name: r.text(JOB_NAME),
        auto_watermark_interval: r
            .duration(AUTO_WATERMARK_INTERVAL)
            .unwrap_or(crate::graph::DEFAULT_AUTO_WATERMARK_INTERVAL),
        origins: Origins(
            settings
                .iter()
                .map(|(key, s)| (key, s.origin.clone()))
                .collect::<BTreeMap<_, _>>(),
        ),
        checkpoint,
    };
    if let Err(e) = config.checkpoint.validate() {
        r.validation(e.key, e.value, e.expected);
    }
    if let Some(Err(e)) = config.restart.as_ref().map(RestartStrategy::validate) {
        r.validation(e.key, e.value, e.expected);
    }
    if r.errors.is_empty() {
        Ok((config, r.warnings))
    } else {
        Err(r.errors)
    }
}

fn checkpoint(r: &mut Reader<'_>) -> CheckpointConfig {
    use CheckpointingMode::{AtLeastOnce, ExactlyOnce};
    use ExternalizedRetention::{
        DeleteOnCancellation, NoExternalizedCheckpoints, RetainOnCancellation,
    };
    let d = CheckpointConfig::default();
    let mode = r
        .choice(
            MODE,
            &[
                ("EXACTLY_ONCE", ExactlyOnce),
                ("AT_LEAST_ONCE", AtLeastOnce),
            ],
            &[],
        )
        .unwrap_or(d.mode);
    let max_concurrent = r.count(MAX_CONCURRENT, 1).unwrap_or(d.max_concurrent);
    let unaligned = r.boolean(UNALIGNED).unwrap_or(d.unaligned);
    if unaligned && mode == AtLeastOnce {
        r.contradiction(
            UNALIGNED,
            MODE,
            "unaligned checkpoints exist only in exactly-once mode: set \
             execution.checkpointing.unaligned.enabled to false or the mode to EXACTLY_ONCE",
        );
    }
    if unaligned && max_concurrent > 1 {
        r.contradiction(
            UNALIGNED,
            MAX_CONCURRENT,
            "unaligned checkpoints allow one pending checkpoint at a time: set \
             execution.checkpointing.max-concurrent-checkpoints to 1",
        );
    }
    CheckpointConfig {
        interval: r.duration(INTERVAL),
        mode,
        timeout: r.duration(TIMEOUT).unwrap_or(d.timeout),
        min_pause: r.duration(MIN_PAUSE).unwrap_or(d.min_pause),
        max_concurrent,
        tolerable_failures: r
            .count(TOLERABLE_FAILURES, 0)
            .unwrap_or(d.tolerable_failures),
        externalized_retention: r
            .choice(
                RETENTION,
                &[
                    ("NO_EXTERNALIZED_CHECKPOINTS", NoExternalizedCheckpoints),
                    ("DELETE_ON_CANCELLATION", DeleteOnCancellation),
                    ("RETAIN_ON_CANCELLATION", RetainOnCancellation),
                ],
                &[],
            )
            .unwrap_or(d.externalized_retention),
        num_retained: r.count(NUM_RETAINED, 1).unwrap_or(d.num_retained),
        storage: storage(r),
        savepoint_dir: r.text(SAVEPOINT_DIR),
        inline_threshold: r.size(INLINE_THRESHOLD).unwrap_or(d.inline_threshold),
        unaligned,
        aligned_timeout: r.duration(ALIGNED_TIMEOUT).unwrap_or(d.aligned_timeout),
        incremental: r.boolean(INCREMENTAL).unwrap_or(d.incremental),
        compression: r.boolean(COMPRESSION).unwrap_or(d.compression),
        create_subdir: r.boolean(CREATE_SUBDIR).unwrap_or(d.create_subdir),
        local_recovery: local_recovery(r),
    }
}

/// Local copies are kept when `local-backup.enabled` says so, else when recovery reads them
/// (`from-local`, alias `state.backend.local-recovery`).
fn local_recovery(r: &mut Reader<'_>) -> LocalRecoveryConfig {
    let from_local = r.boolean(FROM_LOCAL).unwrap_or(false);
    let backup = r.boolean(LOCAL_BACKUP).unwrap_or(from_local);
    let dirs = r.list(LOCAL_BACKUP_DIRS).unwrap_or_default();
    if !backup && !dirs.is_empty() {
        r.warnings.push(format!(
            "{LOCAL_BACKUP_DIRS} has no effect: {LOCAL_BACKUP} is false (set it, or \
             {FROM_LOCAL}, to keep local copies there)"
        ));
    }
    if from_local && !backup {
        r.warnings.push(format!(
            "{FROM_LOCAL} has no effect: {LOCAL_BACKUP} is false, so there are no local copies \
             to restore from"
        ));
    }
    LocalRecoveryConfig {
        backup,
        restore_from_local: from_local,
        dirs,
    }
}

/// Flink's rule: an explicit storage wins; with none, a checkpoint dir selects `filesystem`.
fn storage(r: &mut Reader<'_>) -> StorageConfig {
    #[derive(Clone, Copy)]
    enum Kind {
        JobManager,
        FileSystem,
    }
    let kind = r.choice(
        STORAGE,
        &[
            ("jobmanager", Kind::JobManager),
            ("filesystem", Kind::FileSystem),
        ],
        &[],
    );
    match (kind, r.text(DIR)) {
        (None | Some(Kind::FileSystem), Some(dir)) => StorageConfig::FileSystem { dir },
        (None | Some(Kind::JobManager), None) => StorageConfig::default(),
        (Some(Kind::FileSystem), None) => {
            r.contradiction(
                STORAGE,
                DIR,
                "filesystem storage needs a directory: set execution.checkpointing.dir",
            );
            StorageConfig::default()
        }
        (Some(Kind::JobManager), Some(_)) => {
            r.contradiction(
                DIR,
                STORAGE,
                "jobmanager storage keeps checkpoints in memory and writes nothing to the \
                 directory: set execution.checkpointing.storage to filesystem, or remove it so \
                 that the directory selects filesystem storage",
            );
            StorageConfig::default()
        }
    }
}

/// `state.backend.rocksdb.localdir`, which only the rocksdb backend uses.
fn rocksdb_local_dir(r: &mut Reader<'_>, backend: StateBackendKind) -> Option<String> {
    let dir = r.text(ROCKSDB_LOCAL_DIR)?;
    if backend != StateBackendKind::RocksDb {
        r.warnings.push(format!(
            "{ROCKSDB_LOCAL_DIR} has no effect: {STATE_BACKEND} is {backend}, not rocksdb"
        ));
    }
    Some(dir)
}

fn state_backend(r: &mut Reader<'_>) -> StateBackendKind {
    let Some(text) = r.settings.value(STATE_BACKEND).map(str::trim) else {
        return StateBackendKind::default();
    };
    let lower = text.to_ascii_lowercase();
    if lower == "jobmanager" || lower == "filesystem" {
        // Flink 1.x names of the heap backend, with the storage folded in.
        let origin = r.settings.origin(STATE_BACKEND);
        r.warnings.push(format!(
            "{} = `{text}` (from {origin}) is Flink 1.x's name of the hashmap backend: using \
             hashmap; choose where checkpoints go with execution.checkpointing.storage",
            r.name(STATE_BACKEND)
        ));
        return StateBackendKind::HashMap;
    }
    match StateBackendKind::from_str(text) {
        Ok(kind) => kind,
        Err(_) => {
            let problem = (lower == "forst").then(|| format!("Weir has no {lower} backend yet"));
            r.invalid(STATE_BACKEND, text, problem, "hashmap or rocksdb");
            StateBackendKind::default()
        }
    }
}

/// The configured strategy (`None` if `restart-strategy.type` is not set). Every option is
/// checked; options the strategy does not use are reported as warnings. Without a type, Flink's
/// default strategy ignores the options too (it is built from their defaults), so they warn.
fn restart(r: &mut Reader<'_>, checkpointing: bool) -> Option<RestartStrategy> {
    let kind = r.choice(
        RESTART_TYPE,
        &[
            ("none", RestartKind::None),
            ("off", RestartKind::None),
            ("disable", RestartKind::None),
            ("fixed-delay", RestartKind::FixedDelay),
            ("fixeddelay", RestartKind::FixedDelay),
            ("exponential-delay", RestartKind::ExponentialDelay),
            ("exponentialdelay", RestartKind::ExponentialDelay),
        ],
        &[
            ("failure-rate", "Weir has no failure-rate strategy"),
            ("failurerate", "Weir has no failure-rate strategy"),
        ],
    );
    let attempts = r.count(FIXED_ATTEMPTS, 0);
    let delay = r.duration(FIXED_DELAY);
    let initial = r.duration(EXP_INITIAL);
    let max = r.duration(EXP_MAX);
    let multiplier = r.float(EXP_MULTIPLIER);
    let reset = r.duration(EXP_RESET);
    let jitter = r.float(EXP_JITTER);
    let exp_attempts = r.count(EXP_ATTEMPTS, 1);
    let strategy = kind.map(|kind| match kind {
        RestartKind::None => RestartStrategy::None,
        RestartKind::FixedDelay => RestartStrategy::FixedDelay {
            attempts: attempts.unwrap_or(restart::DEFAULT_FIXED_DELAY_ATTEMPTS),
            delay: delay.unwrap_or(restart::DEFAULT_FIXED_DELAY_DELAY),
        },
        RestartKind::ExponentialDelay => RestartStrategy::ExponentialDelay {
            initial_backoff: initial.unwrap_or(restart::DEFAULT_INITIAL_BACKOFF),
            max_backoff: max.unwrap_or(restart::DEFAULT_MAX_BACKOFF),
            multiplier: multiplier.unwrap_or(restart::DEFAULT_BACKOFF_MULTIPLIER),
            reset_backoff_threshold: reset.unwrap_or(restart::DEFAULT_RESET_BACKOFF_THRESHOLD),
            jitter_factor: jitter.unwrap_or(restart::DEFAULT_JITTER_FACTOR),
            attempts_before_reset_backoff: exp_attempts.unwrap_or(restart::UNBOUNDED_ATTEMPTS),
        },
    });
    const FIXED_OPTIONS: &[&str] = &[FIXED_ATTEMPTS, FIXED_DELAY];
    const EXP_OPTIONS: &[&str] = &[
        EXP_INITIAL,
        EXP_MAX,
        EXP_MULTIPLIER,
        EXP_RESET,
        EXP_JITTER,
        EXP_ATTEMPTS,
    ];
    // Flink builds its default strategy from default options, not from the configured ones.
    let (unused, why): (Vec<&str>, String) = match kind {
        None => (
            [FIXED_OPTIONS, EXP_OPTIONS].concat(),
            format!(
                "restart-strategy.type is not set, so the default strategy ({}) runs with its                  default options; set restart-strategy.type to use them",
                RestartStrategy::default_for(checkpointing).name()
            ),
        ),
        Some(RestartKind::None) => (
            [FIXED_OPTIONS, EXP_OPTIONS].concat(),
            "the restart strategy is none".to_owned(),
        ),
        Some(RestartKind::FixedDelay) => (
            EXP_OPTIONS.to_vec(),
            "the restart strategy is fixed-delay".to_owned(),
        ),
        Some(RestartKind::ExponentialDelay) => (
            FIXED_OPTIONS.to_vec(),
            "the restart strategy is exponential-delay".to_owned(),
        ),
    };
    for key in unused {
        if let Some(setting) = r.settings.get(key).filter(|s| s.value.is_some()) {
            r.warnings.push(format!(
                "{} (from {}) has no effect: {why}",
                setting.name(key),
                setting.origin,
            ));
        }
    }
    strategy
}
