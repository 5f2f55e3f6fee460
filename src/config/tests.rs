//! Cross-layer tests: layering, aliases, units through the layers, every kind of error, ignored
//! keys, file formats, and the repository's own `config/weir.yaml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::keys::*;
use super::layers::BaseFile;
use super::*;
use crate::checkpoint::{CheckpointingMode, ExternalizedRetention, StorageConfig};
use crate::restart::RestartStrategy;

type Loaded = Result<(EngineConfig, Vec<String>), ConfigError>;
/// Key/value pairs, as `-D` or the environment gives them.
type Pairs = &'static [(&'static str, &'static str)];

/// Loads with an optional base file (a missing one when `None`), a job layer, env pairs and
/// `-D` pairs.
fn load_with(
    base: Option<&Path>,
    job: Option<JobLayer>,
    env: &[(&str, &str)],
    overrides: &[(&str, &str)],
) -> Loaded {
    let base = match base {
        Some(path) => BaseFile::Required(path.to_path_buf()),
        None => BaseFile::Optional(PathBuf::from("/nonexistent/weir-test/weir.yaml")),
    };
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let overrides: Vec<(String, String)> = overrides
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    load_layers(&base, job.as_ref(), env, &overrides)
}

fn ok(loaded: Loaded) -> (EngineConfig, Vec<String>) {
    loaded.unwrap_or_else(|e| panic!("expected a configuration, got: {e}"))
}

/// `-D` pairs only.
fn with_d(overrides: &[(&str, &str)]) -> EngineConfig {
    ok(load_with(None, None, &[], overrides)).0
}

/// The single problem of a failed load.
fn problem(loaded: Loaded) -> ConfigError {
    match loaded {
        Ok((config, _)) => panic!("expected an error, got {config:?}"),
        Err(ConfigError::Several(all)) => panic!("expected one problem, got {all:?}"),
        Err(e) => e,
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The typed part, without origins.
fn typed(mut config: EngineConfig) -> EngineConfig {
    config.origins = Origins::default();
    config
}

fn value(config: &EngineConfig, key: &str) -> Option<String> {
    config.to_flat_map()[key].value.clone()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn each_layer_overrides_the_one_below() {
    let dir = tempfile::tempdir().unwrap();
    // Key i is set in the layers 1..=i (file, job, env, -D): the highest one must win.
    let base = write(
        dir.path(),
        "base.yaml",
        "execution.checkpointing.timeout: 1 min\n\
         execution.checkpointing.interval: 1 s\n\
         parallelism.default: 1\n\
         rest.port: 1001\n",
    );
    let job = JobLayer::Text {
        origin: "job test.yaml".into(),
        format: TextFormat::Yaml,
        text: "execution.checkpointing.interval: 2 s\nparallelism.default: 2\nrest.port: 1002\n"
            .into(),
    };
    let env = [
        ("WEIR_PARALLELISM__DEFAULT", "3"),
        ("WEIR_REST__PORT", "1003"),
    ];
    let (config, warnings) = ok(load_with(
        Some(&base),
        Some(job),
        &env,
        &[("rest.port", "1004")],
    ));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.checkpoint.min_pause, Duration::ZERO);
    assert_eq!(config.checkpoint.timeout, secs(60));
    assert_eq!(config.checkpoint.interval, Some(secs(2)));
    assert_eq!(config.parallelism, 3);
    assert_eq!(config.rest.port, 1004);
    assert_eq!(config.origins.get(MIN_PAUSE), Origin::Default);
    assert_eq!(config.origins.get(TIMEOUT), Origin::File(base.clone()));
    assert_eq!(
        config.origins.get(INTERVAL),
        Origin::Job("job test.yaml".into())
    );
    assert_eq!(
        config.origins.get(PARALLELISM),
        Origin::Env("WEIR_PARALLELISM__DEFAULT".into())
    );
    assert_eq!(config.origins.get(REST_PORT), Origin::Override);
    // A later -D wins over an earlier one.
    let config = with_d(&[("parallelism.default", "5"), ("parallelism.default", "6")]);
    assert_eq!(config.parallelism, 6);
    let config = with_d(&[(DIR, "/a"), ("state.checkpoints.dir", "/b")]);
    assert_eq!(value(&config, DIR).as_deref(), Some("/b"));
}

#[test]
fn a_job_file_path_and_a_parsed_map_are_the_job_layer() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(
        dir.path(),
        "base.yaml",
        "execution.checkpointing.num-retained: 2\n",
    );
    let job = write(
        dir.path(),
        "job.toml",
        "[execution.checkpointing]\nnum-retained = 3\n",
    );
    let (config, _) = ok(load_with(
        Some(&base),
        Some(JobLayer::File(job.clone())),
        &[],
        &[],
    ));
    assert_eq!(config.checkpoint.num_retained, 3);
    assert_eq!(config.origins.get(NUM_RETAINED), Origin::JobFile(job));
    let map = JobLayer::Map {
        origin: "job wordcount".into(),
        values: BTreeMap::from([(NUM_RETAINED.to_owned(), "4".to_owned())]),
    };
    let (config, _) = ok(load_with(Some(&base), Some(map), &[], &[]));
    assert_eq!(config.checkpoint.num_retained, 4);
    assert_eq!(
        config.origins.get(NUM_RETAINED).to_string(),
        "the engine settings of job wordcount"
    );
}

#[test]
fn null_or_empty_in_a_higher_layer_restores_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(
        dir.path(),
        "base.yaml",
        "execution.checkpointing.interval: 10 s\n",
    );
    let job = JobLayer::Text {
        origin: "job".into(),
        format: TextFormat::Yaml,
        text: "execution.checkpointing.interval: null\n".into(),
    };
    let (config, _) = ok(load_with(Some(&base), Some(job), &[], &[]));
    assert_eq!(config.checkpoint.interval, None);
    let (config, _) = ok(load_with(
        Some(&base),
        None,
        &[("WEIR_EXECUTION__CHECKPOINTING__INTERVAL", "")],
        &[],
    ));
    assert_eq!(config.checkpoint.interval, None);
}

/// A valid value for `key` other than its default, and how `to_flat_map` shows it; plus any
/// other `-D` the value needs.
fn sample(
    key: &str,
) -> (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
) {
    match key {
        DIR => ("/data/chk", "/data/chk", &[]),
        SAVEPOINT_DIR => ("/data/sp", "/data/sp", &[]),
        STORAGE => ("filesystem", "filesystem", &[(DIR, "/data/chk")]),
        INLINE_THRESHOLD => ("1kb", "1 kb", &[]),
        WRITE_BUFFER_SIZE => ("8192", "8 kb", &[]),
        NUM_RETAINED => ("3", "3", &[]),
        ALIGNED_TIMEOUT => ("30 s", "30000 ms", &[]),
        UNALIGNED | INCREMENTAL | IGNORE_UNCLAIMED | FROM_LOCAL => ("TRUE", "true", &[]),
        CREATE_SUBDIR => ("false", "false", &[]),
        LOCAL_BACKUP_DIRS => ("/a, /b", "/a;/b", &[]),
        STATE_BACKEND => ("HashMap", "hashmap", &[]),
        ROCKSDB_LOCAL_DIR => ("/var/weir", "/var/weir", &[(STATE_BACKEND, "rocksdb")]),
        RESTORE_PATH => ("/sp/savepoint-1", "/sp/savepoint-1", &[]),
        CLAIM_MODE => ("claim", "CLAIM", &[]),
        RESTART_TYPE => ("fixeddelay", "fixed-delay", &[]),
        S3_REGION => ("eu-west-1", "eu-west-1", &[]),
        S3_ACCESS_KEY => ("AKIA", "AKIA", &[]),
        S3_SECRET_KEY => ("secret", "******", &[]),
        other => panic!("no sample value for `{other}`: add one"),
    }
}

#[test]
fn every_alias_maps_to_its_key() {
    let mut checked = 0;
    for spec in KEYS {
        for alias in spec.aliases {
            let (raw, shown, extra) = sample(spec.key);
            let mut overrides = extra.to_vec();
            overrides.push((alias, raw));
            let config = with_d(&overrides);
            let effective = &config.to_flat_map()[spec.key];
            assert_eq!(effective.value.as_deref(), Some(shown), "{alias}");
            assert_eq!(effective.origin, Origin::Override, "{alias}");
            // The same through the environment, where a variable can name the key.
            if alias.contains('.') {
                let var = env_var_for(alias);
                let env: Vec<(&str, &str)> = vec![(var.as_str(), raw)];
                let (config, _) = ok(load_with(None, None, &env, extra));
                assert_eq!(value(&config, spec.key).as_deref(), Some(shown), "{var}");
                assert_eq!(config.origins.get(spec.key), Origin::Env(var.clone()));
            }
            checked += 1;
        }
    }
    assert_eq!(
        checked, 21,
        "the brief's 16 aliases plus state.backend.fs.checkpointdir, \
         execution.checkpointing.alignment-timeout and the three s3.* aliases"
    );
}

#[test]
fn every_unit_form_parses_through_the_layers() {
    for (text, expected) in [
        ("30 s", secs(30)),
        ("30s", secs(30)),
        ("2min", secs(120)),
        ("1 h", secs(3600)),
        ("100 ms", Duration::from_millis(100)),
        ("100ms", Duration::from_millis(100)),
        ("500", Duration::from_millis(500)),
    ] {
        assert_eq!(
            with_d(&[(TIMEOUT, text)]).checkpoint.timeout,
            expected,
            "{text}"
        );
    }
    for (text, expected) in [
        ("20 kb", 20 << 10),
        ("20kb", 20 << 10),
        ("1mb", 1 << 20),
        ("5 MB", 5 << 20),
        ("4096", 4096),
    ] {
        assert_eq!(
            with_d(&[(WRITE_BUFFER_SIZE, text)]).write_buffer_size,
            expected,
            "{text}"
        );
    }
    assert_eq!(
        with_d(&[(INLINE_THRESHOLD, "1 mb")])
            .checkpoint
            .inline_threshold,
        1 << 20
    );
}

#[test]
fn enums_accept_flinks_spelling_in_any_case() {
    let c = with_d(&[(MODE, "at_least_once")]);
    assert_eq!(c.checkpoint.mode, CheckpointingMode::AtLeastOnce);
    let c = with_d(&[(MODE, "Exactly-Once")]);
    assert_eq!(c.checkpoint.mode, CheckpointingMode::ExactlyOnce);
    let c = with_d(&[(RETENTION, "RETAIN_ON_CANCELLATION")]);
    assert_eq!(
        c.checkpoint.externalized_retention,
        ExternalizedRetention::RetainOnCancellation
    );
    let c = with_d(&[(RETENTION, "delete_on_cancellation")]);
    assert_eq!(
        c.checkpoint.externalized_retention,
        ExternalizedRetention::DeleteOnCancellation
    );
    assert_eq!(
        with_d(&[(CLAIM_MODE, "NO_CLAIM")]).restore.claim_mode,
        ClaimMode::NoClaim
    );
    assert_eq!(
        with_d(&[(CLAIM_MODE, "Claim")]).restore.claim_mode,
        ClaimMode::Claim
    );
    for name in ["none", "NONE", "off", "disable"] {
        assert_eq!(
            with_d(&[(RESTART_TYPE, name)]).restart,
            Some(RestartStrategy::None)
        );
    }
    for name in ["fixed-delay", "FixedDelay", "FIXED_DELAY"] {
        assert_eq!(
            with_d(&[(RESTART_TYPE, name)]).restart,
            Some(RestartStrategy::fixed_delay())
        );
    }
    for name in ["exponential-delay", "exponentialdelay"] {
        assert_eq!(
            with_d(&[(RESTART_TYPE, name)]).restart,
            Some(RestartStrategy::exponential_delay())
        );
    }
}

#[test]
fn a_checkpoint_dir_without_storage_selects_filesystem() {
    let c = with_d(&[(DIR, "file:///data/chk")]);
    assert_eq!(
        c.checkpoint.storage,
        StorageConfig::FileSystem {
            dir: "file:///data/chk".into()
        }
    );
    let shown = &c.to_flat_map()[STORAGE];
    assert_eq!(shown.value.as_deref(), Some("filesystem"));
    assert_eq!(shown.origin, Origin::Derived(DIR));
    let c = with_d(&[(STORAGE, "JobManager")]);
    assert_eq!(c.checkpoint.storage, StorageConfig::default());
}

#[test]
fn restart_options_build_the_strategy_and_unused_ones_warn() {
    let (c, warnings) = ok(load_with(
        None,
        None,
        &[],
        &[
            ("restart-strategy", "fixed-delay"),
            (FIXED_ATTEMPTS, "3"),
            (FIXED_DELAY, "10 s"),
            (EXP_MULTIPLIER, "2.0"),
        ],
    ));
    assert_eq!(
        c.restart,
        Some(RestartStrategy::FixedDelay {
            attempts: 3,
            delay: secs(10)
        })
    );
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains(EXP_MULTIPLIER), "{}", warnings[0]);
    assert!(
        warnings[0].ends_with("has no effect: the restart strategy is fixed-delay"),
        "{}",
        warnings[0]
    );

    // Without a type, Flink's default strategy is built from default options: the configured
    // ones have no effect, and each says so.
    let (c, warnings) = ok(load_with(
        None,
        None,
        &[],
        &[(INTERVAL, "10 s"), (EXP_MAX, "30 s"), (EXP_ATTEMPTS, "5")],
    ));
    assert_eq!(c.restart, None);
    assert_eq!(c.effective_restart(), RestartStrategy::default_for(true));
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains(EXP_MAX), "{warnings:?}");
    assert!(
        warnings[0].contains("restart-strategy.type is not set"),
        "{warnings:?}"
    );
    let shown = &c.to_flat_map()[EXP_MAX];
    assert_eq!(shown.value.as_deref(), Some("1 min"));
    assert_eq!(shown.origin, Origin::Default);
    let c = with_d(&[
        (RESTART_TYPE, "exponential-delay"),
        (EXP_MAX, "30 s"),
        (EXP_ATTEMPTS, "5"),
    ]);
    assert_eq!(
        c.restart,
        Some(RestartStrategy::ExponentialDelay {
            initial_backoff: secs(1),
            max_backoff: secs(30),
            multiplier: 1.5,
            reset_backoff_threshold: secs(3600),
            jitter_factor: 0.1,
            attempts_before_reset_backoff: 5,
        })
    );
}

#[test]
fn the_other_settings_map_to_their_fields() {
    let c = with_d(&[
        (PARALLELISM, "4"),
        (MAX_PARALLELISM, "256"),
        (JOB_NAME, "word count"),
        (REST_ADDRESS, "0.0.0.0"),
        (REST_PORT, "9000"),
        (RESTORE_PATH, "/sp/savepoint-ab12cd-0123"),
        (IGNORE_UNCLAIMED, "true"),
        (FROM_LOCAL, "true"),
        (LOCAL_BACKUP_DIRS, "/l1;/l2"),
        (COMPRESSION, "true"),
        (TOLERABLE_FAILURES, "2"),
    ]);
    assert_eq!(c.parallelism, 4);
    assert_eq!(c.max_parallelism, Some(256));
    assert_eq!(c.job_name.as_deref(), Some("word count"));
    assert_eq!(c.rest.address, "0.0.0.0");
    assert_eq!(c.rest.port, 9000);
    assert_eq!(c.restore.path.as_deref(), Some("/sp/savepoint-ab12cd-0123"));
    assert!(c.restore.ignore_unclaimed_state);
    assert!(c.checkpoint.local_recovery.restore_from_local);
    assert!(
        c.checkpoint.local_recovery.backup,
        "local backup falls back to local recovery"
    );
    assert_eq!(c.checkpoint.local_recovery.dirs, ["/l1", "/l2"]);
    assert!(c.checkpoint.compression);
    assert_eq!(c.checkpoint.tolerable_failures, 2);
    assert_eq!(with_d(&[(MAX_PARALLELISM, "-1")]).max_parallelism, None);
    let c = with_d(&[(FROM_LOCAL, "true"), (LOCAL_BACKUP, "false")]);
    assert!(c.checkpoint.local_recovery.restore_from_local && !c.checkpoint.local_recovery.backup);
}

#[test]
fn unknown_key_names_the_key_its_file_and_the_closest_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(
        dir.path(),
        "weir.yaml",
        "execution.checkpointing.intervall: 10 s\n",
    );
    let e = problem(load_with(Some(&base), None, &[], &[]));
    assert!(
        matches!(&e, ConfigError::UnknownKey { key, origin: Origin::File(p), suggestion: Some(_) }
            if key == "execution.checkpointing.intervall" && *p == base),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains("weir.yaml"), "{text}");
    assert!(
        text.ends_with("did you mean `execution.checkpointing.interval`?"),
        "{text}"
    );
    let e = problem(load_with(
        None,
        None,
        &[("WEIR_COLOUR__SCHEME", "dark")],
        &[],
    ));
    assert_eq!(
        e.to_string(),
        "unknown key `colour.scheme` in environment variable WEIR_COLOUR__SCHEME: Weir knows \
         no such setting"
    );
}

#[test]
fn bad_duration_names_key_value_origin_and_form() {
    let e = problem(load_with(
        None,
        None,
        &[("WEIR_EXECUTION__CHECKPOINTING__TIMEOUT", "30 mins")],
        &[],
    ));
    assert!(
        matches!(&e, ConfigError::InvalidValue { key: TIMEOUT, .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "invalid value `30 mins` for `execution.checkpointing.timeout` in environment variable \
         WEIR_EXECUTION__CHECKPOINTING__TIMEOUT: unknown unit `mins`; expected a duration such \
         as `30 s`, `2 min`, `100 ms` or `1 h` (a plain number is milliseconds)"
    );
    let text = problem(load_with(None, None, &[], &[(MIN_PAUSE, "1.5 s")])).to_string();
    assert!(text.contains("fractions are not allowed"), "{text}");
    let text = problem(load_with(None, None, &[], &[(INLINE_THRESHOLD, "lots")])).to_string();
    assert!(text.contains("expected a size such as `20 kb`"), "{text}");
}

#[test]
fn bad_enum_lists_the_choices_and_names_the_alias_used() {
    let job = JobLayer::Map {
        origin: "job wc".into(),
        values: BTreeMap::from([(
            "execution.checkpointing.mode".into(),
            "EXACTLY_TWICE".into(),
        )]),
    };
    let text = problem(load_with(None, Some(job), &[], &[])).to_string();
    assert_eq!(
        text,
        "invalid value `EXACTLY_TWICE` for `execution.checkpointing.mode` in the engine settings \
         of job wc: expected one of EXACTLY_ONCE, AT_LEAST_ONCE (any case)"
    );
    let text = problem(load_with(
        None,
        None,
        &[],
        &[("execution.savepoint-restore-mode", "LEGACY")],
    ))
    .to_string();
    assert!(
        text.contains(
            "`execution.savepoint-restore-mode` (now `execution.state-recovery.claim-mode`)"
        ),
        "{text}"
    );
    assert!(text.contains("LEGACY is deprecated"), "{text}");
    let text = problem(load_with(
        None,
        None,
        &[],
        &[(RESTART_TYPE, "failure-rate")],
    ))
    .to_string();
    assert!(text.contains("no failure-rate strategy"), "{text}");
    let text = problem(load_with(None, None, &[], &[("state.backend", "forst")])).to_string();
    assert!(
        text.contains("no forst backend yet; expected hashmap or rocksdb"),
        "{text}"
    );
    let text = problem(load_with(None, None, &[], &[(UNALIGNED, "yes")])).to_string();
    assert!(text.ends_with("expected true or false"), "{text}");
}

#[test]
fn negative_and_out_of_range_numbers_are_rejected() {
    let e = problem(load_with(None, None, &[], &[(PARALLELISM, "-1")]));
    assert_eq!(
        e.to_string(),
        "invalid value `-1` for `parallelism.default` in -D on the command line: negative values \
         are not allowed; expected a whole number, 1 or more"
    );
    for (key, bad) in [
        (MAX_CONCURRENT, "0"),
        (NUM_RETAINED, "-3"),
        (TOLERABLE_FAILURES, "-1"),
        (REST_PORT, "70000"),
        (MAX_PARALLELISM, "0"),
        (MAX_PARALLELISM, "40000"),
        (PARALLELISM, "two"),
        (EXP_MULTIPLIER, "fast"),
    ] {
        let e = problem(load_with(None, None, &[], &[(key, bad)]));
        assert!(
            matches!(&e, ConfigError::InvalidValue { key: k, value, origin: Origin::Override, .. }
                if *k == key && value == bad),
            "{key}={bad}: {e:?}"
        );
    }
}

/// The two keys a contradiction names.
fn contradiction_keys(e: &ConfigError) -> (&'static str, &'static str) {
    match e {
        ConfigError::Contradiction { key, other_key, .. } => (key, other_key),
        other => panic!("expected a contradiction, got {other:?}"),
    }
}

#[test]
fn contradictions_name_both_keys_and_their_origins() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(
        dir.path(),
        "base.yaml",
        "execution.checkpointing.mode: AT_LEAST_ONCE\n",
    );
    let e = problem(load_with(
        Some(&base),
        None,
        &[],
        &[("execution.checkpointing.unaligned", "true")],
    ));
    assert_eq!(contradiction_keys(&e), (UNALIGNED, MODE));
    let text = e.to_string();
    assert!(
        text.starts_with(
            "`execution.checkpointing.unaligned` (now `execution.checkpointing.unaligned.enabled`) \
             = `true` (from -D on the command line) does not go with \
             `execution.checkpointing.mode` = `AT_LEAST_ONCE` (from config file"
        ),
        "{text}"
    );
    assert!(text.contains("base.yaml"), "{text}");

    let cases: &[(Pairs, (&str, &str))] = &[
        (
            &[(UNALIGNED, "true"), (MAX_CONCURRENT, "2")],
            (UNALIGNED, MAX_CONCURRENT),
        ),
        (&[(STORAGE, "filesystem")], (STORAGE, DIR)),
        (&[(STORAGE, "jobmanager"), (DIR, "/chk")], (DIR, STORAGE)),
        (
            &[(PARALLELISM, "8"), (MAX_PARALLELISM, "4")],
            (PARALLELISM, MAX_PARALLELISM),
        ),
    ];
    for (overrides, keys) in cases {
        let e = problem(load_with(None, None, &[], overrides));
        assert_eq!(contradiction_keys(&e), *keys, "{overrides:?}");
        let text = e.to_string();
        assert!(text.contains(keys.0) && text.contains(keys.1), "{text}");
    }
    let text = problem(load_with(None, None, &[], &[(STORAGE, "filesystem")])).to_string();
    assert!(
        text.contains("`execution.checkpointing.dir` = `(not set)`"),
        "{text}"
    );
}

#[test]
fn validate_errors_name_the_key_and_where_it_was_set() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(
        dir.path(),
        "base.yaml",
        "execution.checkpointing.interval: 5 ms\n",
    );
    let e = problem(load_with(Some(&base), None, &[], &[]));
    assert!(
        matches!(&e, ConfigError::InvalidValue { key: INTERVAL, value, origin: Origin::File(p), .. }
            if value == "5 ms" && *p == base),
        "{e:?}"
    );
    assert!(e.to_string().ends_with("expected at least 10 ms"), "{e}");
    let e = problem(load_with(
        None,
        None,
        &[],
        &[("state.storage.fs.memory-threshold", "2 mb")],
    ));
    assert!(
        matches!(
            &e,
            ConfigError::InvalidValue {
                key: INLINE_THRESHOLD,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("`state.storage.fs.memory-threshold`"),
        "{e}"
    );
    let e = problem(load_with(
        None,
        None,
        &[],
        &[(RESTART_TYPE, "exponential-delay"), (EXP_MULTIPLIER, "1")],
    ));
    assert!(
        matches!(
            &e,
            ConfigError::InvalidValue {
                key: EXP_MULTIPLIER,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("greater than 1"), "{e}");
}

#[test]
fn problems_are_collected_across_layers() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(dir.path(), "base.yaml", "rest.prot: 9000\n");
    let err = load_with(
        Some(&base),
        None,
        &[("WEIR_PARALLELISM__DEFAULT", "many")],
        &[
            (TIMEOUT, "soon"),
            (UNALIGNED, "true"),
            (MODE, "AT_LEAST_ONCE"),
        ],
    )
    .unwrap_err();
    let problems = err.problems();
    assert_eq!(problems.len(), 4, "{err}");
    assert!(matches!(problems[0], ConfigError::UnknownKey { key, .. } if key == "rest.prot"));
    let kinds: Vec<Option<&str>> = problems
        .iter()
        .map(|p| match p {
            ConfigError::InvalidValue { key, .. } => Some(*key),
            _ => None,
        })
        .collect();
    assert!(
        kinds.contains(&Some(TIMEOUT)) && kinds.contains(&Some(PARALLELISM)),
        "{err}"
    );
    assert!(problems
        .iter()
        .any(|p| matches!(p, ConfigError::Contradiction { .. })));
    assert!(
        err.to_string()
            .starts_with("4 problems in the configuration:"),
        "{err}"
    );
}

#[test]
fn the_same_setting_twice_in_one_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(
        dir.path(),
        "base.yaml",
        "state.checkpoints.dir: /a\nexecution.checkpointing.dir: /b\n",
    );
    let e = problem(load_with(Some(&base), None, &[], &[]));
    assert!(
        matches!(&e, ConfigError::SetTwice { key: DIR, .. }),
        "{e:?}"
    );
}

#[test]
fn files_that_are_missing_or_broken() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let e = problem(load(Some(&missing), None, Vec::new(), &[]));
    assert!(
        matches!(&e, ConfigError::FileNotFound { path } if *path == missing),
        "{e:?}"
    );
    // The default file may be missing.
    assert!(load_with(None, None, &[], &[]).is_ok());
    let broken = write(
        dir.path(),
        "broken.toml",
        "execution.checkpointing.interval = \n",
    );
    let e = problem(load_with(Some(&broken), None, &[], &[]));
    assert!(
        e.to_string().starts_with("cannot parse config file "),
        "{e}"
    );
    assert!(e.to_string().contains("broken.toml"), "{e}");
}

#[test]
fn ignored_flink_keys_give_one_warning_each() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(
        dir.path(),
        "flink-conf.yaml",
        "taskmanager.numberOfTaskSlots: 4\n\
         state.backend.rocksdb.block.cache-size: 64mb\n\
         execution.checkpointing.file-merging.enabled: true\n\
         web.submit.enable: false\n\
         jobmanager.memory.process.size: 1600m\n\
         execution.checkpointing.interval: 10 s\n",
    );
    let (config, warnings) = ok(load_with(
        Some(&base),
        Some(JobLayer::Map {
            origin: "job".into(),
            values: BTreeMap::from([("taskmanager.numberOfTaskSlots".into(), "8".into())]),
        }),
        &[("WEIR_WEB__SUBMIT__ENABLE", "true")],
        &[("taskmanager.numberOfTaskSlots", "2")],
    ));
    assert_eq!(config.checkpoint.interval, Some(secs(10)));
    assert_eq!(warnings.len(), 5, "{warnings:#?}");
    for key in [
        "taskmanager.numberOfTaskSlots",
        "state.backend.rocksdb.block.cache-size",
        "execution.checkpointing.file-merging.enabled",
        "`web.submit.enable`",
        "jobmanager.memory.process.size",
    ] {
        assert_eq!(
            warnings.iter().filter(|w| w.contains(key)).count(),
            1,
            "{key}: {warnings:#?}"
        );
    }
    assert!(
        warnings.iter().all(|w| w.contains("flink-conf.yaml")),
        "{warnings:#?}"
    );
}

#[test]
fn flink_1x_backend_names_mean_hashmap_with_a_warning() {
    let (config, warnings) = ok(load_with(
        None,
        None,
        &[],
        &[
            ("state.backend", "filesystem"),
            ("state.checkpoints.dir", "/chk"),
        ],
    ));
    assert_eq!(config.state_backend.name(), "hashmap");
    assert_eq!(
        config.checkpoint.storage,
        StorageConfig::FileSystem { dir: "/chk".into() }
    );
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("`state.backend` (now `state.backend.type`)"),
        "{warnings:?}"
    );
}

const SAME_SETTINGS_YAML_FLAT: &str = "\
execution.checkpointing.interval: 30 s
execution.checkpointing.mode: AT_LEAST_ONCE
execution.checkpointing.dir: file:///data/chk
execution.checkpointing.data-inline-threshold: 1 kb
execution.checkpointing.local-backup.enabled: true
execution.checkpointing.local-backup.dirs: [/l1, /l2]
restart-strategy.type: fixed-delay
restart-strategy.fixed-delay.attempts: 3
parallelism.default: 2
rest.port: 9000
";

const SAME_SETTINGS_YAML_NESTED: &str = "\
execution:
  checkpointing:
    interval: 30 s
    mode: AT_LEAST_ONCE
    dir: file:///data/chk
    data-inline-threshold: 1 kb
    local-backup:
      enabled: true
      dirs:
        - /l1
        - /l2
restart-strategy:
  type: fixed-delay
  fixed-delay:
    attempts: 3
parallelism:
  default: 2
rest:
  port: 9000
";

const SAME_SETTINGS_TOML: &str = "\
parallelism.default = 2
rest.port = 9000

[execution.checkpointing]
interval = \"30 s\"
mode = \"AT_LEAST_ONCE\"
dir = \"file:///data/chk\"
data-inline-threshold = \"1 kb\"
local-backup.enabled = true
local-backup.dirs = [\"/l1\", \"/l2\"]

[restart-strategy]
type = \"fixed-delay\"
fixed-delay.attempts = 3
";

#[test]
fn yaml_flat_yaml_nested_and_toml_give_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        write(dir.path(), "flat.yaml", SAME_SETTINGS_YAML_FLAT),
        write(dir.path(), "nested.yml", SAME_SETTINGS_YAML_NESTED),
        write(dir.path(), "tables.toml", SAME_SETTINGS_TOML),
    ];
    let results: Vec<EngineConfig> = files
        .iter()
        .map(|f| {
            let (config, warnings) = ok(load_with(Some(f), None, &[], &[]));
            assert!(warnings.is_empty(), "{f:?}: {warnings:?}");
            typed(config)
        })
        .collect();
    let first = &results[0];
    assert_eq!(first.checkpoint.interval, Some(secs(30)));
    assert_eq!(first.checkpoint.mode, CheckpointingMode::AtLeastOnce);
    assert_eq!(
        first.checkpoint.storage,
        StorageConfig::FileSystem {
            dir: "file:///data/chk".into()
        }
    );
    assert_eq!(first.checkpoint.inline_threshold, 1024);
    assert_eq!(first.checkpoint.local_recovery.dirs, ["/l1", "/l2"]);
    assert_eq!(
        first.restart,
        Some(RestartStrategy::FixedDelay {
            attempts: 3,
            delay: secs(1)
        })
    );
    assert_eq!(first.parallelism, 2);
    assert_eq!(first.rest.port, 9000);
    for (file, result) in files.iter().zip(&results) {
        assert_eq!(result, first, "{file:?}");
    }
}

#[test]
fn the_repository_weir_yaml_loads_without_errors_or_warnings() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_FILE);
    let (config, warnings) = ok(load_with(Some(&path), None, &[], &[]));
    assert!(warnings.is_empty(), "{warnings:?}");
    // It writes down Flink's defaults.
    assert_eq!(typed(config.clone()), EngineConfig::default());
    assert_eq!(config.origins.get(TIMEOUT), Origin::File(path.clone()));
    // It leaves the storage to Flink's rule: a checkpoint dir alone selects filesystem storage.
    let (config, _) = ok(load_with(Some(&path), None, &[], &[(DIR, "/data/chk")]));
    assert_eq!(
        config.checkpoint.storage,
        StorageConfig::FileSystem {
            dir: "/data/chk".into()
        }
    );
}

#[test]
fn describe_names_each_value_source() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(
        dir.path(),
        "base.yaml",
        "execution.checkpointing.interval: 10000\n",
    );
    let (config, _) = ok(load_with(
        Some(&base),
        None,
        &[("WEIR_STATE__CHECKPOINTS__DIR", "/chk")],
        &[(PARALLELISM, "3")],
    ));
    let text = config.describe();
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no line for {key} in\n{text}"))
            .to_owned()
    };
    assert!(line(INTERVAL).ends_with(&format!("= 10 s  (config file {})", base.display())));
    assert!(line(DIR).ends_with("= /chk  (environment variable WEIR_STATE__CHECKPOINTS__DIR)"));
    assert!(line(STORAGE).ends_with("= filesystem  (derived from `execution.checkpointing.dir`)"));
    assert!(line(RESTART_TYPE)
        .ends_with("= exponential-delay  (derived from `execution.checkpointing.interval`)"));
    assert!(line(PARALLELISM).ends_with("= 3  (-D on the command line)"));
    assert!(line(TIMEOUT).ends_with("= 10 min  (default)"));
}

#[test]
fn the_flat_map_loads_back_to_the_same_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(dir.path(), "flat.yaml", SAME_SETTINGS_YAML_FLAT);
    let (config, _) = ok(load_with(
        Some(&base),
        None,
        &[],
        &[
            (RESTORE_PATH, "/sp/1"),
            (CLAIM_MODE, "CLAIM"),
            (JOB_NAME, "wc"),
            (MAX_PARALLELISM, "128"),
        ],
    ));
    let overrides: Vec<(String, String)> = config
        .to_flat_map()
        .into_iter()
        .filter_map(|(k, e)| e.value.map(|v| (k.to_owned(), v)))
        .collect();
    let pairs: Vec<(&str, &str)> = overrides
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (again, warnings) = ok(load_with(None, None, &[], &pairs));
    // The map also shows the options of the strategy not in force, which then say so.
    assert!(
        warnings.iter().all(|w| w.contains("has no effect")),
        "{warnings:?}"
    );
    assert_eq!(typed(again), typed(config));
}

#[test]
fn local_recovery_settings_that_cannot_act_say_so() {
    let (c, warnings) = ok(load_with(
        None,
        None,
        &[],
        &[
            ("state.backend.local-recovery", "true"),
            ("execution.checkpointing.local-backup.enabled", "false"),
            ("taskmanager.state.local.root-dirs", "/l1"),
        ],
    ));
    assert!(c.checkpoint.local_recovery.restore_from_local);
    assert!(!c.checkpoint.local_recovery.backup);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings
        .iter()
        .any(|w| w.starts_with("execution.checkpointing.local-backup.dirs has no effect")));
    assert!(warnings
        .iter()
        .any(|w| w.starts_with("execution.state-recovery.from-local has no effect")));
    let (c, warnings) = ok(load_with(
        None,
        None,
        &[],
        &[("state.backend.local-recovery", "true")],
    ));
    assert!(c.checkpoint.local_recovery.backup && warnings.is_empty());
}

#[test]
fn the_rocksdb_backend_and_its_local_dir() {
    let (config, warnings) = ok(load_with(
        None,
        None,
        &[],
        &[
            ("state.backend", "RocksDB"),
            (ROCKSDB_LOCAL_DIR, "/var/weir"),
        ],
    ));
    assert_eq!(
        config.state_backend,
        crate::state::StateBackendKind::RocksDb
    );
    assert_eq!(config.state_local_dir.as_deref(), Some("/var/weir"));
    assert!(warnings.is_empty(), "{warnings:?}");
    let (config, warnings) = ok(load_with(
        None,
        None,
        &[],
        &[(ROCKSDB_LOCAL_DIR, "/var/weir")],
    ));
    assert_eq!(
        config.state_backend,
        crate::state::StateBackendKind::HashMap
    );
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("state.backend.rocksdb.localdir has no effect")
            && warnings[0].contains("hashmap"),
        "{warnings:?}"
    );
}
