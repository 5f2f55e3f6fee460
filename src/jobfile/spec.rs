//! The model of a job file: [`JobSpec`] (name, engine keys, the pipeline of steps) and
//! [`StepSpec`] (one source, operator or sink, its uid, parallelism, inputs and parameters).
//!
//! A job file is YAML or TOML, read with the `config` crate's parsers into a JSON tree
//! ([`serde_json::Value`]); the top level and the edges are then read with serde, and each step
//! by hand, so that a message can name the step and the field. Nothing here knows which
//! operators exist: the [`super::registry::Registry`] and [`super::build`] check that.
//!
//! ```yaml
//! name: word-count
//! config:                          # engine keys, Flink's names (the job layer of weir::config)
//!   execution.checkpointing.interval: 500 ms
//! pipeline:
//!   - source: file                 # the kind of step and its registered name
//!     uid: lines                   # stable id: state is matched by uid on restore
//!     path: data/words.txt         # parameters of `file`
//!     parallelism: 1
//!   - operator: split-words
//!     uid: words                   # input: the previous step, unless `input:` says otherwise
//!   - operator: count
//!     uid: counts
//!     key-by: word                 # the edge from `words` is key-by on field `word`
//!   - sink: file
//!     uid: out
//!     path: /tmp/weir-out
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use config::{FileFormat, Format, ValueKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{JobFileError, StepProblem, StepRef};
use super::params::describe;
use crate::config::TextFormat;

/// The three kinds of step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Source,
    Operator,
    Sink,
}

impl Role {
    /// The key that names the kind in a step (`source: file`).
    pub fn key(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Operator => "operator",
            Role::Sink => "sink",
        }
    }

    pub const ALL: [Role; 3] = [Role::Source, Role::Operator, Role::Sink];
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// How records travel over an edge (Flink's partitioners).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EdgeKind {
    /// Subtask i to subtask i; both sides need the same parallelism.
    Forward,
    /// Round-robin over the downstream subtasks.
    Rebalance,
    /// By the key group of a field's value (needs `key-by: <field>`).
    KeyBy,
    /// Every record to every downstream subtask.
    Broadcast,
}

impl EdgeKind {
    /// Parses the names a job file uses (`forward`, `rebalance`, `key-by`, `broadcast`; also
    /// Flink's `hash` for key-by).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "forward" => Some(EdgeKind::Forward),
            "rebalance" => Some(EdgeKind::Rebalance),
            "key-by" | "keyby" | "hash" => Some(EdgeKind::KeyBy),
            "broadcast" => Some(EdgeKind::Broadcast),
            _ => None,
        }
    }
}

/// One input of a step: the upstream step's uid and the edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputSpec {
    pub from: String,
    /// `None`: the step's `partition`, else forward for equal parallelism and rebalance
    /// otherwise.
    pub partition: Option<EdgeKind>,
    /// The field to key by; implies [`EdgeKind::KeyBy`].
    pub key_by: Option<String>,
}

/// One step of the pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct StepSpec {
    /// 1-based position in the pipeline.
    pub index: usize,
    pub role: Role,
    /// The registered name (`file`, `count`, ...).
    pub kind: String,
    /// Required for every step but `key-by`.
    pub uid: Option<String>,
    /// Display name; the uid by default.
    pub name: Option<String>,
    pub parallelism: Option<u32>,
    pub max_parallelism: Option<u32>,
    /// `None`: the previous step.
    pub inputs: Option<Vec<InputSpec>>,
    /// Edge kind for inputs that do not name one.
    pub partition: Option<EdgeKind>,
    /// Key-by field for inputs that do not name one.
    pub key_by: Option<String>,
    /// Everything else: the operator's parameters.
    pub params: Map<String, Value>,
}

impl StepSpec {
    /// How messages name this step.
    pub fn reference(&self) -> StepRef {
        StepRef {
            index: self.index,
            uid: self.uid.clone(),
            kind: Some((self.role, self.kind.clone())),
        }
    }
}

/// A parsed job file.
#[derive(Clone, Debug, PartialEq)]
pub struct JobSpec {
    /// Where it was read from (for messages and relative paths); `None` for text.
    pub file: Option<PathBuf>,
    pub name: Option<String>,
    /// The engine keys (`config:`), as given; handed to `weir::config::load` as the job layer.
    pub config: Option<Map<String, Value>>,
    pub pipeline: Vec<StepSpec>,
}

const TOP_KEYS: &[&str] = &["name", "config", "pipeline"];

impl JobSpec {
    /// Reads a job file (`.yaml`, `.yml` or `.toml`).
    ///
    /// # Errors
    /// [`JobFileError::Read`], [`JobFileError::UnsupportedFormat`], [`JobFileError::Parse`],
    /// and the structural errors of [`JobSpec::parse`].
    pub fn read(path: &Path) -> Result<Self, JobFileError> {
        let format = TextFormat::of_path(path).ok_or_else(|| JobFileError::UnsupportedFormat {
            path: path.to_path_buf(),
        })?;
        let text = std::fs::read_to_string(path).map_err(|source| JobFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut spec = Self::parse(&text, format, &path.display().to_string())?;
        spec.file = Some(path.to_path_buf());
        Ok(spec)
    }

    /// Parses job-file text; `origin` names it in messages.
    ///
    /// # Errors
    /// [`JobFileError::Parse`] for syntax, [`JobFileError::Structure`] for the top level, and
    /// [`JobFileError::Step`] for a step that is malformed (no kind, a missing uid, a bad
    /// `input`...). Unknown operator names are found later, by the builder.
    pub fn parse(text: &str, format: TextFormat, origin: &str) -> Result<Self, JobFileError> {
        let file_format = match format {
            TextFormat::Yaml => FileFormat::Yaml,
            TextFormat::Toml => FileFormat::Toml,
        };
        let uri = origin.to_owned();
        let tree = file_format
            .parse(Some(&uri), text)
            .map_err(|e| JobFileError::Parse {
                file: origin.to_owned(),
                message: e.to_string(),
            })?;
        let mut top: Map<String, Value> = tree
            .into_iter()
            .map(|(k, v)| (k, to_json(v.kind)))
            .collect();
        let structure = |message: String| JobFileError::Structure {
            file: origin.to_owned(),
            message,
        };
        let mut unknown: Vec<&String> = top
            .keys()
            .filter(|k| !TOP_KEYS.contains(&k.as_str()))
            .collect();
        unknown.sort();
        if let Some(k) = unknown.first() {
            return Err(structure(format!(
                "unknown top-level key `{k}`: a job file has `name`, `config` (engine keys) and \
                 `pipeline` (the steps)"
            )));
        }
        let name = match top.remove("name") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                return Err(structure(format!(
                    "`name` is {}: expected a text",
                    describe(&other)
                )))
            }
        };
        let config = match top.remove("config") {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(map),
            Some(other) => {
                return Err(structure(format!(
                    "`config` is {}: expected a map of engine keys (`execution.checkpointing.interval: 10 s`)",
                    describe(&other)
                )))
            }
        };
        let steps =
            match top.remove("pipeline") {
                Some(Value::Array(steps)) if !steps.is_empty() => steps,
                None | Some(Value::Null) => return Err(structure(
                    "missing field `pipeline`: list the job's steps (sources, operators, sinks)"
                        .to_owned(),
                )),
                Some(Value::Array(_)) => {
                    return Err(structure(
                        "`pipeline` is empty: a job needs at least a source and a sink".to_owned(),
                    ))
                }
                Some(other) => {
                    return Err(structure(format!(
                        "`pipeline` is {}: expected a list of steps",
                        describe(&other)
                    )))
                }
            };
        let pipeline = steps
            .into_iter()
            .enumerate()
            .map(|(i, step)| {
                parse_step(i + 1, step).map_err(|(step, problem)| JobFileError::Step {
                    file: origin.to_owned(),
                    step,
                    problem,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            file: None,
            name,
            config,
            pipeline,
        })
    }

    /// The file's name in messages: its path, or `<text>`.
    pub fn origin(&self) -> String {
        self.file
            .as_ref()
            .map_or_else(|| "<text>".to_owned(), |p| p.display().to_string())
    }
}

fn to_json(kind: ValueKind) -> Value {
    match kind {
        ValueKind::Nil => Value::Null,
        ValueKind::Boolean(b) => Value::Bool(b),
        ValueKind::I64(n) => Value::from(n),
        ValueKind::I128(n) => i64::try_from(n).map_or_else(|_| Value::from(n as f64), Value::from),
        ValueKind::U64(n) => Value::from(n),
        ValueKind::U128(n) => u64::try_from(n).map_or_else(|_| Value::from(n as f64), Value::from),
        ValueKind::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        ValueKind::String(s) => Value::String(s),
        ValueKind::Table(t) => {
            let mut entries: Vec<(String, Value)> =
                t.into_iter().map(|(k, v)| (k, to_json(v.kind))).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect())
        }
        ValueKind::Array(items) => {
            Value::Array(items.into_iter().map(|v| to_json(v.kind)).collect())
        }
    }
}

type StepResult<T> = Result<T, (StepRef, StepProblem)>;

fn parse_step(index: usize, step: Value) -> StepResult<StepSpec> {
    let mut at = StepRef {
        index,
        uid: None,
        kind: None,
    };
    let Value::Object(mut map) = step else {
        let found = describe(&step);
        return Err((at, StepProblem::NotAMap { found }));
    };
    if let Some(Value::String(uid)) = map.get("uid") {
        at.uid = Some(uid.clone());
    }
    let kinds: Vec<Role> = Role::ALL
        .into_iter()
        .filter(|r| map.contains_key(r.key()))
        .collect();
    let role = match kinds.as_slice() {
        [role] => *role,
        [] => return Err((at, StepProblem::NoKind)),
        several => {
            let keys = several.iter().map(|r| r.key()).collect();
            return Err((at, StepProblem::SeveralKinds { keys }));
        }
    };
    let kind = match map.remove(role.key()) {
        Some(Value::String(s)) if !s.trim().is_empty() => s,
        Some(other) => {
            return Err((
                at,
                StepProblem::BadField {
                    field: role.key().to_owned(),
                    expected: "the name of a registered operator".to_owned(),
                    found: describe(&other),
                },
            ))
        }
        None => unreachable!("role key present"),
    };
    at.kind = Some((role, kind.clone()));
    let uid = take_text(&mut map, "uid", &at)?;
    if uid.is_none() && !(role == Role::Operator && kind == super::registry::KEY_BY) {
        return Err((
            at,
            StepProblem::Missing {
                field: "uid".to_owned(),
            },
        ));
    }
    let name = take_text(&mut map, "name", &at)?;
    let parallelism = take_u32(&mut map, "parallelism", &at)?;
    let max_parallelism = take_u32(&mut map, "max-parallelism", &at)?;
    let partition = match take_text(&mut map, "partition", &at)? {
        None => None,
        Some(p) => Some(parse_edge_kind(&p, &at)?),
    };
    let key_by = take_text(&mut map, "key-by", &at)?;
    let inputs = match map.remove("input") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_inputs(v, &at)?),
    };
    Ok(StepSpec {
        index,
        role,
        kind,
        uid,
        name,
        parallelism,
        max_parallelism,
        inputs,
        partition,
        key_by,
        params: map,
    })
}

fn take_text(
    map: &mut Map<String, Value>,
    field: &str,
    at: &StepRef,
) -> StepResult<Option<String>> {
    match map.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s)),
        Some(other) => Err((
            at.clone(),
            StepProblem::BadField {
                field: field.to_owned(),
                expected: "a non-empty text".to_owned(),
                found: describe(&other),
            },
        )),
    }
}

fn take_u32(map: &mut Map<String, Value>, field: &str, at: &StepRef) -> StepResult<Option<u32>> {
    match map.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|u| u <= u64::from(u32::MAX)) => {
            Ok(n.as_u64().map(|u| u as u32))
        }
        Some(other) => Err((
            at.clone(),
            StepProblem::BadField {
                field: field.to_owned(),
                expected: "a whole number".to_owned(),
                found: describe(&other),
            },
        )),
    }
}

fn parse_edge_kind(text: &str, at: &StepRef) -> StepResult<EdgeKind> {
    EdgeKind::parse(text).ok_or_else(|| {
        (
            at.clone(),
            StepProblem::BadEdge {
                message: format!(
                    "unknown partition `{text}`: use forward, rebalance, key-by or broadcast"
                ),
            },
        )
    })
}

/// `input: a`, `input: [a, b]`, `input: {from: a, partition: rebalance}`, or a list of those.
fn parse_inputs(value: Value, at: &StepRef) -> StepResult<Vec<InputSpec>> {
    let items = match value {
        Value::Array(items) if !items.is_empty() => items,
        Value::Array(_) => {
            return Err((
                at.clone(),
                StepProblem::BadEdge {
                    message: "`input` is an empty list: name at least one upstream uid".to_owned(),
                },
            ))
        }
        one => vec![one],
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(from) if !from.trim().is_empty() => Ok(InputSpec {
                from,
                partition: None,
                key_by: None,
            }),
            Value::Object(mut map) => {
                let from = take_text(&mut map, "from", at)?.ok_or_else(|| {
                    (
                        at.clone(),
                        StepProblem::BadEdge {
                            message: "an input written as a map needs `from: <uid>`".to_owned(),
                        },
                    )
                })?;
                let partition = match take_text(&mut map, "partition", at)? {
                    None => None,
                    Some(p) => Some(parse_edge_kind(&p, at)?),
                };
                let key_by = take_text(&mut map, "key-by", at)?;
                if let Some(k) = map.keys().next() {
                    return Err((
                        at.clone(),
                        StepProblem::BadEdge {
                            message: format!(
                                "unknown key `{k}` in the input from `{from}`: an input has \
                                 `from`, `partition` and `key-by`"
                            ),
                        },
                    ));
                }
                Ok(InputSpec {
                    from,
                    partition,
                    key_by,
                })
            }
            other => Err((
                at.clone(),
                StepProblem::BadEdge {
                    message: format!(
                        "`input` holds {}: expected an upstream uid, a map with `from`, or a \
                         list of those",
                        describe(&other)
                    ),
                },
            )),
        })
        .collect()
}
