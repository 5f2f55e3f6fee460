//! [`ConfigError`]: everything that can be wrong with a configuration, as a sentence that names
//! the key, the value, where it came from and what was expected.
//!
//! Files that cannot be found, read or parsed stop loading at once (nothing after them can be
//! trusted). Problems with keys and values are collected over all layers and all keys, and come
//! back together: one problem as itself, several as [`ConfigError::Several`], whose
//! [`ConfigError::problems`] lists them.

use std::path::PathBuf;

use super::settings::Origin;

/// A configuration that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An explicitly named configuration file does not exist.
    #[error("config file {} not found: pass an existing file, or none to use the defaults", .path.display())]
    FileNotFound { path: PathBuf },

    /// A configuration file exists but cannot be read.
    #[error("cannot read config file {}: {error}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },

    /// A configuration file whose format Weir cannot tell from its name.
    #[error(
        "config file {} has an unsupported extension: expected .yaml, .yml or .toml",
        .path.display()
    )]
    UnsupportedFormat { path: PathBuf },

    /// A file or text that is not valid YAML/TOML.
    #[error("cannot parse {origin}: {message}")]
    Parse { origin: Origin, message: String },

    /// A `-D` argument without `=`.
    #[error("invalid -D override `{argument}`: expected key=value, e.g. -D execution.checkpointing.interval=10s")]
    BadOverride { argument: String },

    /// A key Weir does not know (and that is not a Flink key Weir knowingly ignores).
    #[error(
        "unknown key `{key}` in {origin}{}",
        suggestion_text(.suggestion)
    )]
    UnknownKey {
        key: String,
        origin: Origin,
        /// The closest known key, already quoted (`` `rest.port` ``).
        suggestion: Option<String>,
    },

    /// A value that does not fit its key.
    #[error(
        "invalid value `{value}` for {name} in {origin}: {}expected {expected}",
        problem_text(.problem)
    )]
    InvalidValue {
        /// The key's current name.
        key: &'static str,
        /// How to call it: its spelling, and its current name if an alias was used.
        name: String,
        value: String,
        origin: Origin,
        /// What is wrong with it, when more can be said than "not the expected form".
        problem: Option<String>,
        expected: String,
    },

    /// Two settings that cannot go together.
    #[error(
        "{name} = `{value}` (from {origin}) does not go with {other_name} = `{other_value}` \
         (from {other_origin}): {reason}"
    )]
    Contradiction {
        key: &'static str,
        name: String,
        value: String,
        origin: Origin,
        other_key: &'static str,
        other_name: String,
        other_value: String,
        other_origin: Origin,
        /// Why, and what to change.
        reason: String,
    },

    /// One setting given twice in the same layer, under two names, with two values.
    #[error(
        "`{first}` = `{first_value}` and `{second}` = `{second_value}` in {origin} both set \
         `{key}`: keep one of them"
    )]
    SetTwice {
        key: &'static str,
        first: String,
        first_value: String,
        second: String,
        second_value: String,
        origin: Origin,
    },

    /// More than one of the above; each is on its own line.
    #[error(
        "{} problems in the configuration:{}",
        .0.len(),
        .0.iter().map(|e| format!("\n  - {e}")).collect::<String>()
    )]
    Several(Vec<ConfigError>),
}

fn suggestion_text(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!("; did you mean {s}?"),
        None => ": Weir knows no such setting".to_owned(),
    }
}

fn problem_text(problem: &Option<String>) -> String {
    problem
        .as_ref()
        .map(|p| format!("{p}; "))
        .unwrap_or_default()
}

impl ConfigError {
    /// The individual problems: the errors inside [`ConfigError::Several`], or this one.
    pub fn problems(&self) -> Vec<&ConfigError> {
        match self {
            ConfigError::Several(all) => all.iter().collect(),
            one => vec![one],
        }
    }

    /// One error for a non-empty list of problems.
    pub(crate) fn collect(mut errors: Vec<ConfigError>) -> Option<ConfigError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(ConfigError::Several(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_problems_are_listed_one_per_line() {
        let unknown = |key: &str| ConfigError::UnknownKey {
            key: key.to_owned(),
            origin: Origin::Override,
            suggestion: None,
        };
        assert!(ConfigError::collect(Vec::new()).is_none());
        let one = ConfigError::collect(vec![unknown("a")]).unwrap();
        assert_eq!(one.problems().len(), 1);
        assert_eq!(
            one.to_string(),
            "unknown key `a` in -D on the command line: Weir knows no such setting"
        );
        let two = ConfigError::collect(vec![unknown("a"), unknown("b")]).unwrap();
        assert_eq!(two.problems().len(), 2);
        let text = two.to_string();
        assert!(text.starts_with("2 problems in the configuration:\n  - unknown key `a`"));
        assert!(text.contains("\n  - unknown key `b`"), "{text}");
    }

    #[test]
    fn invalid_values_say_what_is_wrong_and_what_is_expected() {
        let e = ConfigError::InvalidValue {
            key: "execution.checkpointing.timeout",
            name: "`execution.checkpointing.timeout`".into(),
            value: "30 mins".into(),
            origin: Origin::Env("WEIR_EXECUTION__CHECKPOINTING__TIMEOUT".into()),
            problem: Some("unknown unit `mins`".into()),
            expected: "a duration".into(),
        };
        assert_eq!(
            e.to_string(),
            "invalid value `30 mins` for `execution.checkpointing.timeout` in environment \
             variable WEIR_EXECUTION__CHECKPOINTING__TIMEOUT: unknown unit `mins`; expected a \
             duration"
        );
    }
}
