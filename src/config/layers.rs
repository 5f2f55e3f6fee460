//! Reading each configuration layer into flat [`RawEntry`] lists.
//!
//! Layers, lowest first: the built-in defaults (no entries), the base file
//! ([`DEFAULT_CONFIG_FILE`] or an explicit path), the job's engine keys ([`JobLayer`]),
//! `WEIR_*` environment variables, and `-D key=value` overrides.
//!
//! **Files.** YAML (`.yaml`, `.yml`) or TOML (`.toml`), parsed by the `config` crate. Keys may be
//! Flink's flat dotted keys (`execution.checkpointing.interval: 10 s`), nested maps
//! (`execution: {checkpointing: {interval: 10 s}}`), TOML tables or TOML dotted keys, in any mix:
//! nested maps are flattened by joining with `.`. We take the parser's tree as it is and do not
//! let `config` merge it, because its merge splits keys at dots and a Flink file may hold both
//! `restart-strategy: fixed-delay` and `restart-strategy.fixed-delay.attempts: 3` — `config`
//! would keep only one of them. Scalars become text (`true`, `1`, `1.5`); YAML `null` means
//! "back to the default"; a list becomes its items joined by `;`.
//!
//! **Environment.** A variable `WEIR_<KEY>` sets `<key>`, where `__` stands for `.` and a single
//! `_` for `-`, matched case-insensitively, as the `config` crate's `Environment` with prefix
//! `WEIR`, prefix separator `_` and separator `__` does, plus the `_` → `-` step Flink's dashed
//! keys need:
//!
//! | variable | key |
//! |---|---|
//! | `WEIR_EXECUTION__CHECKPOINTING__INTERVAL=10s` | `execution.checkpointing.interval` |
//! | `WEIR_EXECUTION__CHECKPOINTING__MIN_PAUSE=1s` | `execution.checkpointing.min-pause` |
//! | `WEIR_STATE__CHECKPOINTS__DIR=/data/chk` | `state.checkpoints.dir` |
//! | `WEIR_RESTART_STRATEGY__TYPE=none` | `restart-strategy.type` |
//!
//! Every Weir key has a dot, so a variable without `__` (say `WEIR_LOG`) is not a setting and is
//! left alone. Messages name a variable by its canonical upper-case spelling ([`env_var_for`]).
//! An empty variable means "back to the default", like an empty `-D key=`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use config::{FileFormat, Format, Map, Source, Value, ValueKind};

use super::error::ConfigError;
use super::settings::{Origin, RawEntry};

/// The base configuration file read when none is named; it may be missing.
pub const DEFAULT_CONFIG_FILE: &str = "config/weir.yaml";
/// The prefix of environment variables that set keys.
pub const ENV_PREFIX: &str = "WEIR_";

/// The formats a configuration file or text can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextFormat {
    Yaml,
    Toml,
}

impl TextFormat {
    /// The format of a file, by its extension.
    pub fn of_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "yaml" | "yml" => Some(TextFormat::Yaml),
            "toml" => Some(TextFormat::Toml),
            _ => None,
        }
    }

    fn file_format(self) -> FileFormat {
        match self {
            TextFormat::Yaml => FileFormat::Yaml,
            TextFormat::Toml => FileFormat::Toml,
        }
    }
}

/// The job's engine keys: the same flat (or nested) keys as the base file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobLayer {
    /// A YAML or TOML file holding only engine keys.
    File(PathBuf),
    /// YAML or TOML text, e.g. the engine section a job-file reader cut out; `origin` names it
    /// in messages ("job wordcount.yaml").
    Text {
        origin: String,
        format: TextFormat,
        text: String,
    },
    /// Keys and values a job-file reader already parsed and flattened.
    Map {
        origin: String,
        values: BTreeMap<String, String>,
    },
}

/// Which base file to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BaseFile {
    /// Read it if it exists ([`DEFAULT_CONFIG_FILE`]).
    Optional(PathBuf),
    /// Named by the user: it must exist.
    Required(PathBuf),
}

/// Reads the base file.
pub(crate) fn base_layer(base: &BaseFile) -> Result<Vec<RawEntry>, ConfigError> {
    let (path, required) = match base {
        BaseFile::Optional(path) => (path, false),
        BaseFile::Required(path) => (path, true),
    };
    if !required && !path.exists() {
        return Ok(Vec::new());
    }
    read_file(path, Origin::File(path.clone()))
}

/// Reads the job layer.
pub(crate) fn job_layer(job: &JobLayer) -> Result<Vec<RawEntry>, ConfigError> {
    match job {
        JobLayer::File(path) => read_file(path, Origin::JobFile(path.clone())),
        JobLayer::Text {
            origin,
            format,
            text,
        } => parse_text(text, *format, Origin::Job(origin.clone())),
        JobLayer::Map { origin, values } => Ok(values
            .iter()
            .map(|(k, v)| RawEntry::new(k, Some(v.clone()), Origin::Job(origin.clone())))
            .collect()),
    }
}

fn read_file(path: &Path, origin: Origin) -> Result<Vec<RawEntry>, ConfigError> {
    let format = TextFormat::of_path(path).ok_or_else(|| ConfigError::UnsupportedFormat {
        path: path.to_path_buf(),
    })?;
    let text = std::fs::read_to_string(path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            ConfigError::FileNotFound {
                path: path.to_path_buf(),
            }
        } else {
            ConfigError::Read {
                path: path.to_path_buf(),
                error,
            }
        }
    })?;
    parse_text(&text, format, origin)
}

/// Parses YAML or TOML text into flat entries (see the module docs).
pub(crate) fn parse_text(
    text: &str,
    format: TextFormat,
    origin: Origin,
) -> Result<Vec<RawEntry>, ConfigError> {
    let uri = origin.to_string();
    let tree = format
        .file_format()
        .parse(Some(&uri), text)
        .map_err(|cause| ConfigError::Parse {
            origin: origin.clone(),
            message: cause.to_string(),
        })?;
    let mut entries = Vec::new();
    flatten("", tree, &origin, &mut entries)?;
    Ok(entries)
}

fn flatten(
    prefix: &str,
    table: Map<String, Value>,
    origin: &Origin,
    out: &mut Vec<RawEntry>,
) -> Result<(), ConfigError> {
    // Sorted, so that entries (and hence messages) come in a stable order.
    let table: BTreeMap<String, Value> = table.into_iter().collect();
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}.{name}")
        };
        match value.kind {
            ValueKind::Table(inner) => flatten(&key, inner, origin, out)?,
            kind => {
                let text = scalar_text(&key, kind, origin)?;
                out.push(RawEntry::new(key, text, origin.clone()));
            }
        }
    }
    Ok(())
}

fn scalar_text(key: &str, kind: ValueKind, origin: &Origin) -> Result<Option<String>, ConfigError> {
    Ok(Some(match kind {
        ValueKind::Nil => return Ok(None),
        ValueKind::String(s) => s,
        ValueKind::Boolean(b) => b.to_string(),
        ValueKind::I64(n) => n.to_string(),
        ValueKind::I128(n) => n.to_string(),
        ValueKind::U64(n) => n.to_string(),
        ValueKind::U128(n) => n.to_string(),
        ValueKind::Float(n) => n.to_string(),
        ValueKind::Array(items) => {
            let mut texts = Vec::with_capacity(items.len());
            for item in items {
                match item.kind {
                    ValueKind::Table(_) | ValueKind::Array(_) => {
                        return Err(ConfigError::Parse {
                            origin: origin.clone(),
                            message: format!(
                                "`{key}` is a list of lists or maps; expected a single value or \
                                 a list of plain values"
                            ),
                        })
                    }
                    kind => texts.extend(scalar_text(key, kind, origin)?),
                }
            }
            texts.join(";")
        }
        ValueKind::Table(_) => unreachable!("tables are flattened by the caller"),
    }))
}

/// Reads the `WEIR_*` variables among `vars` (see the module docs for the mapping).
///
/// # Errors
/// [`ConfigError::Parse`] if the `config` crate rejects the variables (it does not for text).
pub(crate) fn env_layer(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<RawEntry>, ConfigError> {
    let ours: Map<String, String> = vars
        .into_iter()
        .filter(|(name, _)| is_setting_var(name))
        .collect();
    let collected = config::Environment::with_prefix(ENV_PREFIX.trim_end_matches('_'))
        .prefix_separator("_")
        .separator("__")
        .try_parsing(false)
        .source(Some(ours))
        .collect()
        .map_err(|e| ConfigError::Parse {
            origin: Origin::Env(format!("{ENV_PREFIX}*")),
            message: e.to_string(),
        })?;
    let mut entries: Vec<RawEntry> = collected
        .into_iter()
        .map(|(dotted, value)| {
            let key = dotted.replace('_', "-");
            let origin = Origin::Env(env_var_for(&key));
            let text = match value.kind {
                ValueKind::Nil => None,
                other => Some(Value::new(None, other).to_string()),
            };
            RawEntry::new(key, text, origin)
        })
        .collect();
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(entries)
}

/// Whether an environment variable sets a key: `WEIR_` (any case) and at least one `__`.
fn is_setting_var(name: &str) -> bool {
    name.len() > ENV_PREFIX.len()
        && name.is_char_boundary(ENV_PREFIX.len())
        && name[..ENV_PREFIX.len()].eq_ignore_ascii_case(ENV_PREFIX)
        && name[ENV_PREFIX.len()..].contains("__")
}

/// The environment variable that sets `key`: `execution.checkpointing.min-pause` →
/// `WEIR_EXECUTION__CHECKPOINTING__MIN_PAUSE`.
pub fn env_var_for(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.to_ascii_uppercase()
            .replace('.', "__")
            .replace('-', "_")
    )
}

/// The key an environment variable sets, if it sets one (the inverse of [`env_var_for`]).
pub fn key_for_env_var(name: &str) -> Option<String> {
    is_setting_var(name).then(|| {
        name[ENV_PREFIX.len()..]
            .to_ascii_lowercase()
            .replace("__", ".")
            .replace('_', "-")
    })
}

/// The `-D key=value` overrides, each a layer of its own: a later `-D` wins over an earlier one
/// for the same setting, whichever names they use (as on any command line).
pub(crate) fn override_layers(overrides: &[(String, String)]) -> Vec<Vec<RawEntry>> {
    overrides
        .iter()
        .map(|(k, v)| vec![RawEntry::new(k.trim(), Some(v.clone()), Origin::Override)])
        .collect()
}

/// Splits one `-D` argument, `key=value`, at its first `=`.
///
/// # Errors
/// [`ConfigError::BadOverride`] without `=` or with an empty key.
pub fn parse_override(argument: &str) -> Result<(String, String), ConfigError> {
    match argument.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(ConfigError::BadOverride {
            argument: argument.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(entries: &[RawEntry]) -> Vec<(&str, Option<&str>)> {
        entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_deref()))
            .collect()
    }

    #[test]
    fn yaml_flat_nested_and_mixed_flatten_alike() {
        let origin = Origin::Job("test".into());
        let flat = "execution.checkpointing.interval: 10 s\nrestart-strategy: fixed-delay\n\
                    restart-strategy.fixed-delay.attempts: 3\n";
        let nested = "execution:\n  checkpointing:\n    interval: 10 s\nrestart-strategy: \
                      fixed-delay\nrestart-strategy.fixed-delay:\n  attempts: 3\n";
        let expected = vec![
            ("execution.checkpointing.interval", Some("10 s")),
            ("restart-strategy", Some("fixed-delay")),
            ("restart-strategy.fixed-delay.attempts", Some("3")),
        ];
        for text in [flat, nested] {
            let entries = parse_text(text, TextFormat::Yaml, origin.clone()).unwrap();
            assert_eq!(pairs(&entries), expected, "{text}");
        }
    }

    #[test]
    fn scalars_nulls_and_lists_become_text() {
        let text = "a.b: null\na.c: true\na.d: 1.5\na.e: [/x, /y]\na.f: 7\n";
        let entries = parse_text(text, TextFormat::Yaml, Origin::Override).unwrap();
        assert_eq!(
            pairs(&entries),
            vec![
                ("a.b", None),
                ("a.c", Some("true")),
                ("a.d", Some("1.5")),
                ("a.e", Some("/x;/y")),
                ("a.f", Some("7")),
            ]
        );
        let err = parse_text("a.b: [[1]]\n", TextFormat::Yaml, Origin::Override).unwrap_err();
        assert!(
            err.to_string().contains("`a.b` is a list of lists"),
            "{err}"
        );
    }

    #[test]
    fn toml_tables_dotted_and_quoted_keys_flatten_alike() {
        let texts = [
            "[execution.checkpointing]\ninterval = \"10 s\"\n",
            "execution.checkpointing.interval = \"10 s\"\n",
            "\"execution.checkpointing.interval\" = \"10 s\"\n",
        ];
        for text in texts {
            let entries = parse_text(text, TextFormat::Toml, Origin::Override).unwrap();
            assert_eq!(
                pairs(&entries),
                vec![("execution.checkpointing.interval", Some("10 s"))],
                "{text}"
            );
        }
    }

    #[test]
    fn syntax_errors_name_the_origin() {
        let origin = Origin::File("conf/bad.yaml".into());
        let err = parse_text("a: [unclosed\n", TextFormat::Yaml, origin).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot parse config file conf/bad.yaml: "),
            "{err}"
        );
        let err = parse_text("a = \n", TextFormat::Toml, Origin::Override).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    }

    #[test]
    fn env_vars_map_double_underscore_to_dot_and_underscore_to_dash() {
        let vars = [
            ("WEIR_EXECUTION__CHECKPOINTING__INTERVAL", "10s"),
            ("WEIR_EXECUTION__CHECKPOINTING__MIN_PAUSE", "1 s"),
            ("WEIR_RESTART_STRATEGY__TYPE", "none"),
            ("weir_state__checkpoints__dir", "/data/chk"),
            ("WEIR_LOG", "debug"),
            ("PATH", "/usr/bin"),
            ("WEIRD__THING", "x"),
            ("WEIR_PARALLELISM__DEFAULT", ""),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let entries = env_layer(vars).unwrap();
        assert_eq!(
            pairs(&entries),
            vec![
                ("execution.checkpointing.interval", Some("10s")),
                ("execution.checkpointing.min-pause", Some("1 s")),
                ("parallelism.default", None),
                ("restart-strategy.type", Some("none")),
                ("state.checkpoints.dir", Some("/data/chk")),
            ]
        );
        assert_eq!(
            entries[1].origin,
            Origin::Env("WEIR_EXECUTION__CHECKPOINTING__MIN_PAUSE".into())
        );
        for entry in &entries {
            let Origin::Env(var) = &entry.origin else {
                panic!("{entry:?}")
            };
            assert_eq!(key_for_env_var(var).as_deref(), Some(entry.key.as_str()));
        }
        assert_eq!(key_for_env_var("WEIR_LOG"), None);
    }

    #[test]
    fn overrides_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_override("execution.checkpointing.dir=s3://b/k=v").unwrap(),
            ("execution.checkpointing.dir".into(), "s3://b/k=v".into())
        );
        assert_eq!(
            parse_override(" rest.port = 9000 ").unwrap(),
            ("rest.port".into(), "9000".into())
        );
        for bad in ["rest.port", "=9000", ""] {
            assert!(
                matches!(parse_override(bad), Err(ConfigError::BadOverride { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn files_missing_unreadable_or_of_unknown_format() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.yaml");
        assert!(base_layer(&BaseFile::Optional(missing.clone()))
            .unwrap()
            .is_empty());
        let err = base_layer(&BaseFile::Required(missing.clone())).unwrap_err();
        assert!(matches!(&err, ConfigError::FileNotFound { path } if *path == missing));
        assert!(err.to_string().contains("nope.yaml"), "{err}");
        let ini = dir.path().join("weir.ini");
        std::fs::write(&ini, "a=b").unwrap();
        assert!(matches!(
            base_layer(&BaseFile::Required(ini)),
            Err(ConfigError::UnsupportedFormat { .. })
        ));
        let as_dir = dir.path().join("d.yaml");
        std::fs::create_dir(&as_dir).unwrap();
        assert!(matches!(
            job_layer(&JobLayer::File(as_dir)),
            Err(ConfigError::Read { .. })
        ));
    }
}
