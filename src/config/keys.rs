//! The keys Weir reads, their older Flink names, and the Flink keys it knowingly ignores.
//!
//! [`KEYS`] is the table: one [`KeySpec`] per setting, under its Flink 1.20+ name, with the
//! names Flink 1.x used for it ([`KeySpec::aliases`]), the kind of value it takes and its
//! default as Flink writes it. [`lookup`] sorts any key a user writes into one of three
//! [`Lookup`] cases:
//!
//! - [`Lookup::Known`]: a key of the table or one of its aliases;
//! - [`Lookup::Ignored`]: a Flink setting Weir does not use (task slots, RocksDB tuning, the web
//!   UI, file merging, ...), listed in [`IGNORED_KEYS`] and [`IGNORED_PREFIXES`]; it becomes a
//!   warning, so a Flink configuration file can be used as it is;
//! - [`Lookup::Unknown`]: anything else, an error, with the closest known key as a suggestion.
//!
//! A key that is within two edits of a known key is taken for a typo of it even under an
//! ignored prefix (`taskmanager.state.local.root-dir` is not silently ignored).
//!
//! Keys are matched exactly (Flink's keys are case-sensitive); environment variables are mapped
//! to lowercase keys before they get here (see [`super::layers`]).

/// `execution.checkpointing.interval`: period of checkpoints; unset = off.
pub const INTERVAL: &str = "execution.checkpointing.interval";
/// `execution.checkpointing.mode`: `EXACTLY_ONCE` or `AT_LEAST_ONCE`.
pub const MODE: &str = "execution.checkpointing.mode";
/// `execution.checkpointing.timeout`.
pub const TIMEOUT: &str = "execution.checkpointing.timeout";
/// `execution.checkpointing.min-pause`.
pub const MIN_PAUSE: &str = "execution.checkpointing.min-pause";
/// `execution.checkpointing.max-concurrent-checkpoints`.
pub const MAX_CONCURRENT: &str = "execution.checkpointing.max-concurrent-checkpoints";
/// `execution.checkpointing.tolerable-failed-checkpoints`.
pub const TOLERABLE_FAILURES: &str = "execution.checkpointing.tolerable-failed-checkpoints";
/// `execution.checkpointing.externalized-checkpoint-retention`.
pub const RETENTION: &str = "execution.checkpointing.externalized-checkpoint-retention";
/// `execution.checkpointing.num-retained`.
pub const NUM_RETAINED: &str = "execution.checkpointing.num-retained";
/// `execution.checkpointing.dir`: setting it without a storage selects `filesystem`.
pub const DIR: &str = "execution.checkpointing.dir";
/// `execution.checkpointing.savepoint-dir`.
pub const SAVEPOINT_DIR: &str = "execution.checkpointing.savepoint-dir";
/// `execution.checkpointing.storage`: `jobmanager` or `filesystem`.
pub const STORAGE: &str = "execution.checkpointing.storage";
/// `execution.checkpointing.data-inline-threshold`.
pub const INLINE_THRESHOLD: &str = "execution.checkpointing.data-inline-threshold";
/// `execution.checkpointing.write-buffer-size` (accepted, not used yet).
pub const WRITE_BUFFER_SIZE: &str = "execution.checkpointing.write-buffer-size";
/// `execution.checkpointing.unaligned.enabled`.
pub const UNALIGNED: &str = "execution.checkpointing.unaligned.enabled";
/// `execution.checkpointing.aligned-checkpoint-timeout`.
pub const ALIGNED_TIMEOUT: &str = "execution.checkpointing.aligned-checkpoint-timeout";
/// `execution.checkpointing.incremental`.
pub const INCREMENTAL: &str = "execution.checkpointing.incremental";
/// `execution.checkpointing.snapshot-compression`.
pub const COMPRESSION: &str = "execution.checkpointing.snapshot-compression";
/// `execution.checkpointing.create-subdir`.
pub const CREATE_SUBDIR: &str = "execution.checkpointing.create-subdir";
/// `execution.checkpointing.local-backup.enabled`: keep local copies of checkpoint state.
pub const LOCAL_BACKUP: &str = "execution.checkpointing.local-backup.enabled";
/// `execution.checkpointing.local-backup.dirs`: where the local copies go.
pub const LOCAL_BACKUP_DIRS: &str = "execution.checkpointing.local-backup.dirs";
/// `state.backend.type`.
pub const STATE_BACKEND: &str = "state.backend.type";
/// `state.backend.rocksdb.localdir`.
pub const ROCKSDB_LOCAL_DIR: &str = "state.backend.rocksdb.localdir";
/// `execution.state-recovery.path`: the snapshot to restore from.
pub const RESTORE_PATH: &str = "execution.state-recovery.path";
/// `execution.state-recovery.claim-mode`: `NO_CLAIM` or `CLAIM`.
pub const CLAIM_MODE: &str = "execution.state-recovery.claim-mode";
/// `execution.state-recovery.ignore-unclaimed-state` (Flink's allowNonRestoredState).
pub const IGNORE_UNCLAIMED: &str = "execution.state-recovery.ignore-unclaimed-state";
/// `execution.state-recovery.from-local`: failover reads the local copies first.
pub const FROM_LOCAL: &str = "execution.state-recovery.from-local";
/// `restart-strategy.type`.
pub const RESTART_TYPE: &str = "restart-strategy.type";
/// `restart-strategy.fixed-delay.attempts`.
pub const FIXED_ATTEMPTS: &str = "restart-strategy.fixed-delay.attempts";
/// `restart-strategy.fixed-delay.delay`.
pub const FIXED_DELAY: &str = "restart-strategy.fixed-delay.delay";
/// `restart-strategy.exponential-delay.initial-backoff`.
pub const EXP_INITIAL: &str = "restart-strategy.exponential-delay.initial-backoff";
/// `restart-strategy.exponential-delay.max-backoff`.
pub const EXP_MAX: &str = "restart-strategy.exponential-delay.max-backoff";
/// `restart-strategy.exponential-delay.backoff-multiplier`.
pub const EXP_MULTIPLIER: &str = "restart-strategy.exponential-delay.backoff-multiplier";
/// `restart-strategy.exponential-delay.reset-backoff-threshold`.
pub const EXP_RESET: &str = "restart-strategy.exponential-delay.reset-backoff-threshold";
/// `restart-strategy.exponential-delay.jitter-factor`.
pub const EXP_JITTER: &str = "restart-strategy.exponential-delay.jitter-factor";
/// `restart-strategy.exponential-delay.attempts-before-reset-backoff`.
pub const EXP_ATTEMPTS: &str = "restart-strategy.exponential-delay.attempts-before-reset-backoff";
/// `parallelism.default`.
pub const PARALLELISM: &str = "parallelism.default";
/// `pipeline.max-parallelism`: the number of key groups.
pub const MAX_PARALLELISM: &str = "pipeline.max-parallelism";
/// `pipeline.name`: the job's name.
pub const JOB_NAME: &str = "pipeline.name";
/// `pipeline.auto-watermark-interval`: how often a source emits its watermark.
pub const AUTO_WATERMARK_INTERVAL: &str = "pipeline.auto-watermark-interval";
/// `rest.address`.
pub const REST_ADDRESS: &str = "rest.address";
/// `rest.port`.
pub const REST_PORT: &str = "rest.port";
/// `s3.endpoint`: the S3-compatible store's URL (unset: AWS).
pub const S3_ENDPOINT: &str = "s3.endpoint";
/// `s3.region`.
pub const S3_REGION: &str = "s3.region";
/// `s3.access-key`.
pub const S3_ACCESS_KEY: &str = "s3.access-key";
/// `s3.secret-key` (never printed).
pub const S3_SECRET_KEY: &str = "s3.secret-key";
/// `s3.path.style.access`: bucket in the path instead of the host name.
pub const S3_PATH_STYLE: &str = "s3.path.style.access";

/// The kind of value a key takes; it decides the parser and the "expected" text of errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    /// Flink duration notation (see [`super::units`]).
    Duration,
    /// Flink memory-size notation (see [`super::units`]).
    Size,
    /// `true` or `false`.
    Bool,
    /// A whole number (range checked by the typed mapping).
    Integer,
    /// A decimal number.
    Float,
    /// Free text: a path, a URI, a name, an address.
    Text,
    /// One of these names, case-insensitive (`-` and `_` are interchangeable).
    Enum(&'static [&'static str]),
    /// Several texts separated by `,` or `;` (a YAML/TOML list is accepted too).
    List,
}

/// One setting Weir reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySpec {
    /// The Flink 1.20+ name.
    pub key: &'static str,
    /// Older Flink names that mean the same setting.
    pub aliases: &'static [&'static str],
    pub value_type: ValueType,
    /// The default, as Flink documents it.
    pub default: &'static str,
    /// One line: what it does in Weir.
    pub doc: &'static str,
}

const fn entry(
    key: &'static str,
    aliases: &'static [&'static str],
    value_type: ValueType,
    default: &'static str,
    doc: &'static str,
) -> KeySpec {
    KeySpec {
        key,
        aliases,
        value_type,
        default,
        doc,
    }
}

use ValueType::{Bool, Duration, Enum, Float, Integer, List, Size, Text};

/// Every key Weir reads, in the order `describe` prints them.
pub const KEYS: &[KeySpec] = &[
    entry(
        INTERVAL,
        &[],
        Duration,
        "(none: checkpointing off)",
        "period of the periodic checkpoint trigger",
    ),
    entry(
        MODE,
        &[],
        Enum(&["EXACTLY_ONCE", "AT_LEAST_ONCE"]),
        "EXACTLY_ONCE",
        "barrier alignment or barrier tracking",
    ),
    entry(
        TIMEOUT,
        &[],
        Duration,
        "10 min",
        "a pending checkpoint older than this fails",
    ),
    entry(
        MIN_PAUSE,
        &[],
        Duration,
        "0 ms",
        "least time from the end of one checkpoint to the next trigger",
    ),
    entry(
        MAX_CONCURRENT,
        &[],
        Integer,
        "1",
        "checkpoints pending at once",
    ),
    entry(
        TOLERABLE_FAILURES,
        &[],
        Integer,
        "0",
        "consecutive failed checkpoints tolerated before a failover",
    ),
    entry(
        RETENTION,
        &[],
        Enum(&[
            "NO_EXTERNALIZED_CHECKPOINTS",
            "DELETE_ON_CANCELLATION",
            "RETAIN_ON_CANCELLATION",
        ]),
        "NO_EXTERNALIZED_CHECKPOINTS",
        "what happens to retained checkpoints when the job ends",
    ),
    entry(
        NUM_RETAINED,
        &["state.checkpoints.num-retained"],
        Integer,
        "1",
        "completed checkpoints kept",
    ),
    entry(
        DIR,
        &["state.checkpoints.dir", "state.backend.fs.checkpointdir"],
        Text,
        "(none)",
        "checkpoint directory (path or URI); selects filesystem storage unless a storage is set",
    ),
    entry(
        SAVEPOINT_DIR,
        &["state.savepoints.dir"],
        Text,
        "(none)",
        "default savepoint directory",
    ),
    entry(
        STORAGE,
        &["state.checkpoint-storage"],
        Enum(&["jobmanager", "filesystem"]),
        "(jobmanager; filesystem when a dir is set)",
        "where checkpoint state goes",
    ),
    entry(
        INLINE_THRESHOLD,
        &["state.storage.fs.memory-threshold"],
        Size,
        "20 kb",
        "state smaller than this is stored inside _metadata (at most 1 mb)",
    ),
    entry(
        WRITE_BUFFER_SIZE,
        &["state.storage.fs.write-buffer-size"],
        Size,
        "4 kb",
        "write buffer of checkpoint streams (accepted, not used yet)",
    ),
    entry(
        UNALIGNED,
        &["execution.checkpointing.unaligned"],
        Bool,
        "false",
        "unaligned checkpoints",
    ),
    entry(
        ALIGNED_TIMEOUT,
        &["execution.checkpointing.alignment-timeout"],
        Duration,
        "0 ms",
        "with unaligned checkpoints: start aligned, switch to unaligned after this long (0: unaligned at once)",
    ),
    entry(
        INCREMENTAL,
        &["state.backend.incremental"],
        Bool,
        "false",
        "incremental snapshots where the backend supports them",
    ),
    entry(
        COMPRESSION,
        &[],
        Bool,
        "false",
        "compress snapshot state (lz4, recorded in each blob's header)",
    ),
    entry(
        CREATE_SUBDIR,
        &["state.checkpoints.create-subdir"],
        Bool,
        "true",
        "put chk-<n> under a <job-id>/ sub-directory",
    ),
    entry(
        LOCAL_BACKUP,
        &[],
        Bool,
        "(execution.state-recovery.from-local)",
        "keep a local copy of checkpoint state files for failover",
    ),
    entry(
        LOCAL_BACKUP_DIRS,
        &["taskmanager.state.local.root-dirs"],
        List,
        "(none)",
        "directories of the local copies (default: <temp dir>/weir-local-state)",
    ),
    entry(
        STATE_BACKEND,
        &["state.backend"],
        Enum(&["hashmap", "rocksdb"]),
        "hashmap",
        "where keyed state lives",
    ),
    entry(
        ROCKSDB_LOCAL_DIR,
        &[],
        Text,
        "(none)",
        "where the rocksdb backend puts each keyed subtask's DB (default: the temp dir)",
    ),
    entry(
        RESTORE_PATH,
        &["execution.savepoint.path"],
        Text,
        "(none)",
        "savepoint or checkpoint to restore from",
    ),
    entry(
        CLAIM_MODE,
        &["execution.savepoint-restore-mode"],
        Enum(&["NO_CLAIM", "CLAIM"]),
        "NO_CLAIM",
        "whether the restored snapshot becomes the job's to delete",
    ),
    entry(
        IGNORE_UNCLAIMED,
        &["execution.savepoint.ignore-unclaimed-state"],
        Bool,
        "false",
        "skip restored state of operators the job no longer has",
    ),
    entry(
        FROM_LOCAL,
        &["state.backend.local-recovery"],
        Bool,
        "false",
        "on failover, restore from the local copies when they match _metadata",
    ),
    entry(
        RESTART_TYPE,
        &["restart-strategy"],
        Enum(&["none", "fixed-delay", "exponential-delay"]),
        "(none without checkpointing, exponential-delay with it)",
        "how a failed job is restarted",
    ),
    entry(
        FIXED_ATTEMPTS,
        &[],
        Integer,
        "1",
        "fixed-delay: restarts before giving up",
    ),
    entry(
        FIXED_DELAY,
        &[],
        Duration,
        "1 s",
        "fixed-delay: wait before each restart",
    ),
    entry(
        EXP_INITIAL,
        &[],
        Duration,
        "1 s",
        "exponential-delay: first wait",
    ),
    entry(
        EXP_MAX,
        &[],
        Duration,
        "1 min",
        "exponential-delay: longest wait",
    ),
    entry(
        EXP_MULTIPLIER,
        &[],
        Float,
        "1.5",
        "exponential-delay: growth of the wait",
    ),
    entry(
        EXP_RESET,
        &[],
        Duration,
        "1 h",
        "exponential-delay: running this long resets the backoff",
    ),
    entry(
        EXP_JITTER,
        &[],
        Float,
        "0.1",
        "exponential-delay: random share of the wait, 0 to 1",
    ),
    entry(
        EXP_ATTEMPTS,
        &[],
        Integer,
        "4294967295",
        "exponential-delay: restarts without a reset before giving up",
    ),
    entry(
        PARALLELISM,
        &[],
        Integer,
        "1",
        "parallelism of operators that set none",
    ),
    entry(
        MAX_PARALLELISM,
        &[],
        Integer,
        "(derived from the parallelism)",
        "number of key groups, 1 to 32768 (-1: derived)",
    ),
    entry(JOB_NAME, &[], Text, "(none)", "the job's name"),
    entry(
        AUTO_WATERMARK_INTERVAL,
        &[],
        Duration,
        "0 ms",
        "at most how often a source with a watermark strategy emits its watermark (0: after every poll that advances it)",
    ),
    entry(
        REST_ADDRESS,
        &[],
        Text,
        "127.0.0.1",
        "address the REST API listens on",
    ),
    entry(
        REST_PORT,
        &[],
        Integer,
        "8081",
        "port the REST API listens on",
    ),
    entry(
        S3_ENDPOINT,
        &[],
        Text,
        "(AWS; AWS_ENDPOINT_URL)",
        "URL of the S3-compatible store for s3:// directories",
    ),
    entry(
        S3_REGION,
        &["s3.endpoint.region"],
        Text,
        "(AWS_REGION; us-east-1 with an endpoint)",
        "region of the S3 store",
    ),
    entry(
        S3_ACCESS_KEY,
        &["s3.access.key"],
        Text,
        "(AWS_ACCESS_KEY_ID)",
        "S3 access key id",
    ),
    entry(
        S3_SECRET_KEY,
        &["s3.secret.key"],
        Text,
        "(AWS_SECRET_ACCESS_KEY)",
        "S3 secret access key",
    ),
    entry(
        S3_PATH_STYLE,
        &[],
        Bool,
        "false",
        "path-style S3 requests (endpoint/bucket/key)",
    ),
];

/// Flink keys Weir accepts and does not use (exact names, compared case-insensitively).
pub const IGNORED_KEYS: &[&str] = &[
    "execution.checkpointing.interval-during-backlog",
    "execution.checkpointing.unaligned.forced",
    "execution.checkpointing.unaligned.max-subtasks-per-channel-state-file",
    "execution.checkpointing.unaligned.interruptible-timers.enabled",
    "execution.checkpointing.unaligned.recover-output-on-downstream.enabled",
    "execution.checkpointing.unaligned.during-recovery.enabled",
    "execution.checkpointing.checkpoints-after-tasks-finish",
    "execution.checkpointing.checkpoints-after-tasks-finish.enabled",
    "execution.checkpointing.cleaner.parallel-mode",
    "execution.checkpointing.recover-without-channel-state.checkpoint-id",
    "execution.state-recovery.without-channel-state.checkpoint-id",
    "state.checkpoint.cleaner.parallel-mode",
    "execution.runtime-mode",
    "execution.buffer-timeout",
    "execution.buffer-timeout.enabled",
    "execution.buffer-timeout.interval",
    "execution.target",
    "execution.attached",
    "execution.shutdown-on-attached-exit",
    "execution.job-listeners",
    "execution.batch-shuffle-mode",
    "io.tmp.dirs",
];

/// Prefixes of Flink keys Weir accepts and does not use (compared case-insensitively).
pub const IGNORED_PREFIXES: &[&str] = &[
    "taskmanager.",
    "jobmanager.",
    "web.",
    "rest.",
    "pipeline.",
    "state.backend.rocksdb.",
    "state.backend.forst.",
    "state.backend.changelog.",
    "state.changelog.",
    "state.backend.latency-track.",
    "state.latency-track.",
    "dstl.",
    "execution.checkpointing.file-merging.",
    "state.checkpoints.file-merging.",
    "execution.checkpointing.region.",
    "execution.batch.",
    "restart-strategy.failure-rate.",
    "high-availability",
    "metrics.",
    "blob.",
    "akka.",
    "pekko.",
    "cluster.",
    "heartbeat.",
    "resourcemanager.",
    "slot.",
    "slotmanager.",
    "kubernetes.",
    "yarn.",
    "security.",
    "classloader.",
    "env.",
    "historyserver.",
    "queryable-state.",
    "table.",
    "python.",
    "fs.",
    "s3.",
];

/// What a key a user wrote refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A key Weir reads; `alias` says whether it was written under an older name.
    Known { spec: &'static KeySpec, alias: bool },
    /// A Flink key Weir does not use.
    Ignored,
    /// Not a key Weir knows; `suggestion` is the closest known spelling, if any is close.
    Unknown { suggestion: Option<String> },
}

/// The spec of a key by its current name or an alias.
pub fn spec_of(key: &str) -> Option<(&'static KeySpec, bool)> {
    KEYS.iter().find_map(|s| {
        if s.key == key {
            Some((s, false))
        } else if s.aliases.contains(&key) {
            Some((s, true))
        } else {
            None
        }
    })
}

/// The spec of a current key name; panics on a name missing from [`KEYS`] (a bug in Weir).
pub(crate) fn spec(key: &str) -> &'static KeySpec {
    KEYS.iter()
        .find(|s| s.key == key)
        .unwrap_or_else(|| panic!("`{key}` is missing from config::keys::KEYS"))
}

/// Sorts a key into known, ignored or unknown (see the module docs).
pub fn lookup(key: &str) -> Lookup {
    if let Some((spec, alias)) = spec_of(key) {
        return Lookup::Known { spec, alias };
    }
    let suggestion = suggest(key);
    if suggestion
        .as_ref()
        .is_some_and(|(_, distance)| *distance <= 2)
    {
        return Lookup::Unknown {
            suggestion: suggestion.map(|(s, _)| s),
        };
    }
    let lower = key.to_ascii_lowercase();
    if IGNORED_KEYS.contains(&lower.as_str())
        || IGNORED_PREFIXES.iter().any(|p| lower.starts_with(p))
    {
        return Lookup::Ignored;
    }
    Lookup::Unknown {
        suggestion: suggestion.map(|(s, _)| s),
    }
}

/// The known spelling closest to `key` and its edit distance, if it is close enough to be a
/// plausible typo, or if `key` is the tail (`checkpointing.interval`) or the head
/// (`parallelism`) of a known key.
fn suggest(key: &str) -> Option<(String, usize)> {
    let lower = key.to_ascii_lowercase();
    // (spec, spelling, distance, whether `key` is a head or tail of it)
    let mut best: Option<(&'static KeySpec, &'static str, usize, bool)> = None;
    for spec in KEYS {
        for name in std::iter::once(&spec.key).chain(spec.aliases) {
            let contained =
                name.ends_with(&format!(".{lower}")) || name.starts_with(&format!("{lower}."));
            // A head or tail is accepted whatever its length, but ranked after real near-misses.
            let distance = if contained {
                3
            } else {
                edit_distance(&lower, name)
            };
            if best.is_none_or(|(_, _, d, _)| distance < d) {
                best = Some((spec, name, distance, contained));
            }
        }
    }
    let (spec, name, distance, contained) = best?;
    let limit = (key.chars().count() / 5).max(2);
    if distance > limit && !contained {
        return None;
    }
    let text = if name == spec.key {
        format!("`{name}`")
    } else {
        format!("`{name}` (now `{}`)", spec.key)
    };
    Some((text, distance))
}

/// Levenshtein distance between two strings, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_unique_and_lowercase() {
        let mut seen = std::collections::HashSet::new();
        for spec in KEYS {
            for name in std::iter::once(&spec.key).chain(spec.aliases) {
                assert!(seen.insert(*name), "`{name}` appears twice");
                assert_eq!(
                    *name,
                    name.to_ascii_lowercase(),
                    "env vars could not set `{name}`"
                );
                assert!(
                    !name.contains('_'),
                    "`{name}` has `_`, which env mapping turns into `-`"
                );
            }
        }
    }

    #[test]
    fn known_keys_are_never_ignored() {
        for spec in KEYS {
            for name in std::iter::once(&spec.key).chain(spec.aliases) {
                assert!(matches!(lookup(name), Lookup::Known { .. }), "{name}");
            }
        }
    }

    #[test]
    fn aliases_resolve_to_their_key() {
        assert_eq!(spec_of("state.checkpoints.dir"), Some((spec(DIR), true)));
        assert_eq!(spec_of(DIR), Some((spec(DIR), false)));
        assert_eq!(
            spec_of("restart-strategy"),
            Some((spec(RESTART_TYPE), true))
        );
        assert_eq!(spec_of("nope"), None);
    }

    #[test]
    fn flink_keys_weir_does_not_use_are_ignored() {
        for key in [
            "taskmanager.numberOfTaskSlots",
            "state.backend.rocksdb.block.cache-size",
            "execution.checkpointing.file-merging.enabled",
            "web.submit.enable",
            "jobmanager.memory.process.size",
            "rest.bind-port",
            "high-availability.type",
        ] {
            assert_eq!(lookup(key), Lookup::Ignored, "{key}");
        }
    }

    #[test]
    fn typos_get_the_closest_key() {
        let cases = [
            ("execution.checkpointing.intervall", "`execution.checkpointing.interval`"),
            ("execution.checkpoint.interval", "`execution.checkpointing.interval`"),
            ("checkpointing.interval", "`execution.checkpointing.interval`"),
            ("parallelism", "`parallelism.default`"),
            ("rest.prot", "`rest.port`"),
            (
                "state.checkpoint.dir",
                "`state.checkpoints.dir` (now `execution.checkpointing.dir`)",
            ),
            (
                "taskmanager.state.local.root-dir",
                "`taskmanager.state.local.root-dirs` (now `execution.checkpointing.local-backup.dirs`)",
            ),
            ("EXECUTION.CHECKPOINTING.MODE", "`execution.checkpointing.mode`"),
        ];
        for (typo, expected) in cases {
            assert_eq!(
                lookup(typo),
                Lookup::Unknown {
                    suggestion: Some(expected.to_owned())
                },
                "{typo}"
            );
        }
        assert_eq!(lookup("colour"), Lookup::Unknown { suggestion: None });
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
