//! [`Params`]: the parameters of one step of a job file, as an operator factory reads them.
//!
//! A factory asks for each parameter by name with a typed getter ([`Params::str`],
//! [`Params::u64`], [`Params::duration`], [`Params::field`], ...). Params remembers every name it
//! was asked for, so that after the factory returns the builder can reject parameters nobody
//! read (a typo such as `feild:`) and list the ones the operator takes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::value::Field;
use crate::config::units::parse_duration;

/// Why a parameter cannot be used. The builder adds the file and the step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("missing field `{param}`")]
    Missing { param: String },
    #[error("`{param}` is {found}: expected {expected}")]
    Invalid {
        param: String,
        expected: String,
        found: String,
    },
    #[error("{message}")]
    Other { message: String },
}

impl ParamError {
    /// A free-form problem, for factories whose checks span parameters.
    pub fn other(message: impl Into<String>) -> Self {
        ParamError::Other {
            message: message.into(),
        }
    }
}

/// The parameters of one step: every key of the step that is not one of the common keys
/// (`uid`, `name`, `parallelism`, `input`, ...).
#[derive(Clone, Debug)]
pub struct Params {
    uid: String,
    values: Map<String, Value>,
    asked: BTreeSet<String>,
    base_dir: PathBuf,
}

/// How a JSON value reads in a message: its type and a short rendering.
pub(crate) fn describe(value: &Value) -> String {
    let text = value.to_string();
    let shown = if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text
    };
    let kind = match value {
        Value::Null => return "null".to_owned(),
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    };
    format!("{kind} ({shown})")
}

impl Params {
    /// `values` of the step with uid `uid`; relative paths resolve against `base_dir` (the job
    /// file's directory).
    pub fn new(
        uid: impl Into<String>,
        values: Map<String, Value>,
        base_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            uid: uid.into(),
            values,
            asked: BTreeSet::new(),
            base_dir: base_dir.into(),
        }
    }

    /// The uid of the step (for names of threads, files, ...).
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The directory relative paths resolve against.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// The raw value of `name`, if given (YAML `null` counts as not given).
    pub fn value(&mut self, name: &str) -> Option<Value> {
        self.asked.insert(name.to_owned());
        self.values.get(name).filter(|v| !v.is_null()).cloned()
    }

    fn invalid(name: &str, expected: &str, found: &Value) -> ParamError {
        ParamError::Invalid {
            param: name.to_owned(),
            expected: expected.to_owned(),
            found: describe(found),
        }
    }

    fn required<T>(name: &str, v: Option<T>) -> Result<T, ParamError> {
        v.ok_or_else(|| ParamError::Missing {
            param: name.to_owned(),
        })
    }

    /// A text parameter (numbers and booleans are taken as their text).
    pub fn opt_str(&mut self, name: &str) -> Result<Option<String>, ParamError> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
            Some(other) => Err(Self::invalid(name, "a text", &other)),
        }
    }

    /// A required text parameter.
    pub fn str(&mut self, name: &str) -> Result<String, ParamError> {
        let v = self.opt_str(name)?;
        Self::required(name, v)
    }

    /// A whole number ≥ 0 (a number, or text holding one).
    pub fn opt_u64(&mut self, name: &str) -> Result<Option<u64>, ParamError> {
        let expected = "a whole number, 0 or more";
        match self.value(name) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(u) => Ok(Some(u)),
                None => Err(Self::invalid(name, expected, &Value::Number(n))),
            },
            Some(Value::String(s)) => match s.trim().parse::<u64>() {
                Ok(u) => Ok(Some(u)),
                Err(_) => Err(Self::invalid(name, expected, &Value::String(s))),
            },
            Some(other) => Err(Self::invalid(name, expected, &other)),
        }
    }

    /// A required whole number ≥ 0.
    pub fn u64(&mut self, name: &str) -> Result<u64, ParamError> {
        let v = self.opt_u64(name)?;
        Self::required(name, v)
    }

    /// A number (a number, or text holding one).
    pub fn opt_f64(&mut self, name: &str) -> Result<Option<f64>, ParamError> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(Value::String(s)) => match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Some(f)),
                _ => Err(Self::invalid(name, "a number", &Value::String(s))),
            },
            Some(other) => Err(Self::invalid(name, "a number", &other)),
        }
    }

    /// A positive rate in records per second, if given.
    pub fn opt_rate(&mut self, name: &str) -> Result<Option<f64>, ParamError> {
        match self.opt_f64(name)? {
            Some(r) if r <= 0.0 => Err(ParamError::Invalid {
                param: name.to_owned(),
                expected: "a number of records per second above 0".to_owned(),
                found: format!("a number ({r})"),
            }),
            r => Ok(r),
        }
    }

    /// `true`/`false` (or their text), `default` when not given.
    pub fn bool_or(&mut self, name: &str, default: bool) -> Result<bool, ParamError> {
        match self.value(name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(b),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
            Some(other) => Err(Self::invalid(name, "true or false", &other)),
        }
    }

    /// A duration: Flink's text (`"10 s"`, `"500ms"`, `"1 min"`) or a number of milliseconds.
    pub fn opt_duration(&mut self, name: &str) -> Result<Option<Duration>, ParamError> {
        let expected = "a duration such as \"10 s\", \"500 ms\" or a number of milliseconds";
        match self.value(name) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(ms) => Ok(Some(Duration::from_millis(ms))),
                None => Err(Self::invalid(name, expected, &Value::Number(n))),
            },
            Some(Value::String(s)) => parse_duration(&s)
                .map(Some)
                .map_err(|_| Self::invalid(name, expected, &Value::String(s))),
            Some(other) => Err(Self::invalid(name, expected, &other)),
        }
    }

    /// A required duration.
    pub fn duration(&mut self, name: &str) -> Result<Duration, ParamError> {
        let v = self.opt_duration(name)?;
        Self::required(name, v)
    }

    /// A field path (`word`, `user.id`), if given.
    pub fn opt_field(&mut self, name: &str) -> Result<Option<Field>, ParamError> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::String(s)) => {
                Field::parse(&s)
                    .map(Some)
                    .map_err(|message| ParamError::Invalid {
                        param: name.to_owned(),
                        expected: "a field path".to_owned(),
                        found: message,
                    })
            }
            Some(other) => Err(Self::invalid(name, "a field name", &other)),
        }
    }

    /// A required field path.
    pub fn field(&mut self, name: &str) -> Result<Field, ParamError> {
        let v = self.opt_field(name)?;
        Self::required(name, v)
    }

    /// A field path, `default` when not given.
    pub fn field_or(&mut self, name: &str, default: &str) -> Result<Field, ParamError> {
        match self.opt_field(name)? {
            Some(f) => Ok(f),
            None => Field::parse(default).map_err(ParamError::other),
        }
    }

    /// A list of field paths (a single one is a list of one), if given.
    pub fn opt_fields(&mut self, name: &str) -> Result<Option<Vec<Field>>, ParamError> {
        let items = match self.value(name) {
            None => return Ok(None),
            Some(Value::Array(items)) => items,
            Some(one @ Value::String(_)) => vec![one],
            Some(other) => return Err(Self::invalid(name, "a list of field names", &other)),
        };
        items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Field::parse(&s).map_err(|message| ParamError::Invalid {
                    param: name.to_owned(),
                    expected: "a list of field names".to_owned(),
                    found: message,
                }),
                other => Err(Self::invalid(name, "a list of field names", &other)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// A file path; a relative one is taken relative to the job file's directory.
    pub fn opt_path(&mut self, name: &str) -> Result<Option<PathBuf>, ParamError> {
        Ok(self.opt_str(name)?.map(|s| {
            let p = PathBuf::from(s);
            if p.is_absolute() {
                p
            } else {
                self.base_dir.join(p)
            }
        }))
    }

    /// A required file path (see [`Params::opt_path`]).
    pub fn path(&mut self, name: &str) -> Result<PathBuf, ParamError> {
        let v = self.opt_path(name)?;
        Self::required(name, v)
    }

    /// Any parameter, deserialised (for operators with structured parameters).
    pub fn get<T: DeserializeOwned>(&mut self, name: &str) -> Result<Option<T>, ParamError> {
        let expected = std::any::type_name::<T>();
        match self.value(name) {
            None => Ok(None),
            Some(v) => {
                serde_json::from_value(v.clone())
                    .map(Some)
                    .map_err(|e| ParamError::Invalid {
                        param: name.to_owned(),
                        expected: format!("{expected} ({e})"),
                        found: describe(&v),
                    })
            }
        }
    }

    /// The given parameter names that start with `prefix` (a pass-through group such as the
    /// Kafka connectors' `properties.*`), sorted. Reading them marks them asked.
    pub fn names_starting_with(&self, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .values
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// The names that were asked for, sorted.
    pub fn asked(&self) -> Vec<String> {
        self.asked.iter().cloned().collect()
    }

    /// The given parameters nobody asked for, sorted.
    pub fn unread(&self) -> Vec<String> {
        let mut unread: Vec<String> = self
            .values
            .keys()
            .filter(|k| !self.asked.contains(*k))
            .cloned()
            .collect();
        unread.sort();
        unread
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn params(v: Value) -> Params {
        Params::new("op", v.as_object().unwrap().clone(), "/jobs")
    }

    #[test]
    fn typed_getters_accept_numbers_and_their_text() {
        let mut p = params(json!({
            "n": 5, "t": "7", "r": 2.5, "d": "10 s", "ms": 250, "b": "true",
            "f": "user.id", "fs": ["a", "b.c"], "p": "data/x.txt", "abs": "/tmp/y",
        }));
        assert_eq!(p.u64("n").unwrap(), 5);
        assert_eq!(p.u64("t").unwrap(), 7);
        assert_eq!(p.opt_rate("r").unwrap(), Some(2.5));
        assert_eq!(p.duration("d").unwrap(), Duration::from_secs(10));
        assert_eq!(p.duration("ms").unwrap(), Duration::from_millis(250));
        assert!(p.bool_or("b", false).unwrap());
        assert!(!p.bool_or("absent", false).unwrap());
        assert_eq!(p.field("f").unwrap().as_str(), "user.id");
        assert_eq!(p.opt_fields("fs").unwrap().unwrap().len(), 2);
        assert_eq!(p.path("p").unwrap(), PathBuf::from("/jobs/data/x.txt"));
        assert_eq!(p.path("abs").unwrap(), PathBuf::from("/tmp/y"));
        assert!(p.unread().is_empty());
        assert!(p.asked().contains(&"absent".to_owned()));
    }

    #[test]
    fn bad_and_missing_values_say_what_was_expected() {
        let mut p = params(json!({"n": -1, "d": "soon", "f": "a..b", "x": 1}));
        assert_eq!(
            p.u64("n").unwrap_err().to_string(),
            "`n` is a number (-1): expected a whole number, 0 or more"
        );
        assert!(p
            .duration("d")
            .unwrap_err()
            .to_string()
            .contains("a duration"));
        assert!(p
            .field("f")
            .unwrap_err()
            .to_string()
            .contains("not a field path"));
        assert_eq!(
            p.str("missing").unwrap_err(),
            ParamError::Missing {
                param: "missing".into()
            }
        );
        assert_eq!(p.unread(), vec!["x".to_owned()]);
    }
}
