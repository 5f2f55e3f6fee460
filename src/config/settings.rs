//! The layered raw settings: each key's effective text and where it came from.
//!
//! Every layer (see [`super::layers`]) is read into a list of [`RawEntry`]: a key as the user
//! wrote it, its value as text (`None` for YAML `null` or an empty value: "back to the
//! default"), and its [`Origin`]. [`Settings::merge`] then folds the layers, lowest first, into
//! one flat map from each key's current name to its [`Setting`]:
//!
//! - an alias is stored under the current name, remembering how it was spelled;
//! - a higher layer replaces a lower one, whatever name either used;
//! - the same setting given twice in one layer with two different values (say
//!   `state.checkpoints.dir` and `execution.checkpointing.dir`) is an error naming both;
//! - an ignored Flink key becomes one warning, however many layers set it;
//! - an unknown key is an error with a suggestion.
//!
//! Problems are collected, not returned at the first one, so a user sees them all at once.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use super::error::ConfigError;
use super::keys::{self, KeySpec, Lookup};

/// Where a value came from; errors and [`super::EngineConfig::describe`] name it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Origin {
    /// Not set anywhere: Flink's default.
    #[default]
    Default,
    /// The base configuration file (`config/weir.yaml` or `--config`).
    File(PathBuf),
    /// A job file given by path.
    JobFile(PathBuf),
    /// Engine keys handed over by a job-file reader; the text says which job.
    Job(String),
    /// An environment variable, by name.
    Env(String),
    /// A `-D key=value` override.
    Override,
    /// Not set, but derived from another key's value (e.g. the storage from the checkpoint dir).
    Derived(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("the built-in defaults"),
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::JobFile(path) => write!(f, "job file {}", path.display()),
            Origin::Job(what) => write!(f, "the engine settings of {what}"),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Override => f.write_str("-D on the command line"),
            Origin::Derived(key) => write!(f, "derived from `{key}`"),
        }
    }
}

/// One key/value pair as a layer holds it, before keys are resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEntry {
    /// The key as written (an alias, a typo, an ignored Flink key...).
    pub key: String,
    /// The value as text; `None` means "unset here" (YAML `null`, an empty value).
    pub value: Option<String>,
    pub origin: Origin,
}

impl RawEntry {
    /// An entry; an empty or blank value counts as unset.
    pub fn new(key: impl Into<String>, value: Option<String>, origin: Origin) -> Self {
        let value = value.filter(|v| !v.trim().is_empty());
        Self {
            key: key.into(),
            value,
            origin,
        }
    }
}

/// The effective raw value of one known key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The name the user wrote: the key itself or one of its aliases.
    pub spelled: String,
    /// The text; `None` means explicitly back to the default.
    pub value: Option<String>,
    pub origin: Origin,
}

impl Setting {
    /// How to name this setting in a message: its spelling, and its current name if that
    /// differs (`` `state.checkpoints.dir` (now `execution.checkpointing.dir`) ``).
    pub fn name(&self, key: &str) -> String {
        if self.spelled == key {
            format!("`{key}`")
        } else {
            format!("`{}` (now `{key}`)", self.spelled)
        }
    }
}

/// All known keys that some layer set, by current name; what the layers say, before typing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    map: BTreeMap<&'static str, Setting>,
}

/// The outcome of [`Settings::merge`]: the settings, warnings, and every problem found.
#[derive(Debug, Default)]
pub struct Merged {
    pub settings: Settings,
    pub warnings: Vec<String>,
    pub errors: Vec<ConfigError>,
}

impl Settings {
    /// Folds layers, lowest first (see the module docs).
    pub fn merge(layers: impl IntoIterator<Item = Vec<RawEntry>>) -> Merged {
        let mut merged = Merged::default();
        let mut warned: Vec<String> = Vec::new();
        for layer in layers {
            // Current name -> what this layer says about it, to catch a key set twice.
            let mut this_layer: BTreeMap<&'static str, Setting> = BTreeMap::new();
            for entry in layer {
                match keys::lookup(&entry.key) {
                    Lookup::Known { spec, .. } => {
                        Self::put(&mut this_layer, spec, entry, &mut merged.errors)
                    }
                    Lookup::Ignored => {
                        if !warned.contains(&entry.key) {
                            merged.warnings.push(format!(
                                "ignoring `{}` (from {}): a Flink setting that Weir does not use",
                                entry.key, entry.origin
                            ));
                            warned.push(entry.key);
                        }
                    }
                    Lookup::Unknown { suggestion } => {
                        merged.errors.push(ConfigError::UnknownKey {
                            key: entry.key,
                            origin: entry.origin,
                            suggestion,
                        });
                    }
                }
            }
            merged.settings.map.extend(this_layer);
        }
        merged
    }

    fn put(
        layer: &mut BTreeMap<&'static str, Setting>,
        spec: &'static KeySpec,
        entry: RawEntry,
        errors: &mut Vec<ConfigError>,
    ) {
        let new = Setting {
            spelled: entry.key,
            value: entry.value,
            origin: entry.origin,
        };
        match layer.get(spec.key) {
            Some(old) if old.value != new.value => errors.push(ConfigError::SetTwice {
                key: spec.key,
                first: old.spelled.clone(),
                first_value: old.value.clone().unwrap_or_default(),
                second: new.spelled,
                second_value: new.value.unwrap_or_default(),
                origin: new.origin,
            }),
            Some(_) => {}
            None => {
                layer.insert(spec.key, new);
            }
        }
    }

    /// The effective setting of a key (by its current name), if any layer set it.
    pub fn get(&self, key: &str) -> Option<&Setting> {
        self.map.get(key)
    }

    /// The effective text of a key, if set and not reset to the default.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|s| s.value.as_deref())
    }

    /// Where a key's value came from ([`Origin::Default`] when no layer set it).
    pub fn origin(&self, key: &str) -> Origin {
        self.get(key).map(|s| s.origin.clone()).unwrap_or_default()
    }

    /// Every set key with its setting, by current name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Setting)> {
        self.map.iter().map(|(k, s)| (*k, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::keys::DIR;

    fn entry(key: &str, value: &str, origin: Origin) -> RawEntry {
        RawEntry::new(key, Some(value.to_owned()), origin)
    }

    #[test]
    fn higher_layers_win_whatever_the_spelling() {
        let merged = Settings::merge([
            vec![entry(DIR, "/a", Origin::File("base.yaml".into()))],
            vec![entry(
                "state.checkpoints.dir",
                "/b",
                Origin::Env("WEIR_STATE__CHECKPOINTS__DIR".into()),
            )],
        ]);
        assert!(merged.errors.is_empty(), "{:?}", merged.errors);
        let setting = merged.settings.get(DIR).unwrap();
        assert_eq!(setting.value.as_deref(), Some("/b"));
        assert_eq!(setting.spelled, "state.checkpoints.dir");
        assert_eq!(
            setting.name(DIR),
            "`state.checkpoints.dir` (now `execution.checkpointing.dir`)"
        );
        assert_eq!(
            merged.settings.origin(DIR).to_string(),
            "environment variable WEIR_STATE__CHECKPOINTS__DIR"
        );
    }

    #[test]
    fn one_setting_twice_in_a_layer_with_two_values_names_both_keys() {
        let origin = Origin::File("base.yaml".into());
        let merged = Settings::merge([vec![
            entry("state.checkpoints.dir", "/a", origin.clone()),
            entry(DIR, "/b", origin.clone()),
        ]]);
        assert_eq!(merged.errors.len(), 1);
        let text = merged.errors[0].to_string();
        assert!(text.contains("`state.checkpoints.dir`"), "{text}");
        assert!(text.contains("`execution.checkpointing.dir`"), "{text}");
        assert!(text.contains("base.yaml"), "{text}");
        // The same value twice is harmless.
        let merged = Settings::merge([vec![
            entry("state.checkpoints.dir", "/a", origin.clone()),
            entry(DIR, "/a", origin),
        ]]);
        assert!(merged.errors.is_empty());
    }

    #[test]
    fn null_resets_a_lower_layer_to_the_default() {
        let merged = Settings::merge([
            vec![entry(DIR, "/a", Origin::File("base.yaml".into()))],
            vec![RawEntry::new(DIR, Some("  ".into()), Origin::Override)],
        ]);
        assert_eq!(merged.settings.value(DIR), None);
        assert_eq!(merged.settings.origin(DIR), Origin::Override);
    }

    #[test]
    fn ignored_keys_warn_once_and_unknown_keys_fail() {
        let merged = Settings::merge([
            vec![entry(
                "taskmanager.numberOfTaskSlots",
                "4",
                Origin::File("base.yaml".into()),
            )],
            vec![
                entry("taskmanager.numberOfTaskSlots", "8", Origin::Override),
                entry("execution.checkpointing.intervall", "1 s", Origin::Override),
            ],
        ]);
        assert_eq!(merged.warnings.len(), 1, "{:?}", merged.warnings);
        assert!(merged.warnings[0].contains("taskmanager.numberOfTaskSlots"));
        assert!(merged.warnings[0].contains("base.yaml"));
        assert_eq!(merged.errors.len(), 1);
        assert!(matches!(
            &merged.errors[0],
            ConfigError::UnknownKey { key, origin: Origin::Override, suggestion: Some(s) }
                if key == "execution.checkpointing.intervall" && s.contains("interval`")
        ));
    }
}
