//! [`JobFileError`]: why a job file cannot be run. Every message names the file, and the step
//! (position, uid, kind and operator name) when it is about one.

use std::fmt;
use std::path::PathBuf;

use super::spec::Role;
use crate::config::ConfigError;
use crate::graph::GraphError;

/// Which step a problem is about: `step 3 (uid `counts`, operator `count`)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepRef {
    /// 1-based position in `pipeline`.
    pub index: usize,
    pub uid: Option<String>,
    pub kind: Option<(Role, String)>,
}

impl fmt::Display for StepRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {}", self.index)?;
        match (&self.uid, &self.kind) {
            (Some(uid), Some((role, name))) => write!(f, " (uid `{uid}`, {role} `{name}`)"),
            (None, Some((role, name))) => write!(f, " ({role} `{name}`)"),
            (Some(uid), None) => write!(f, " (uid `{uid}`)"),
            (None, None) => Ok(()),
        }
    }
}

/// What is wrong with one step.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StepProblem {
    #[error("a step is a map of keys, but this one is {found}")]
    NotAMap { found: String },
    #[error("the step says neither `source:`, `operator:` nor `sink:`: name its kind and operator (`operator: count`)")]
    NoKind,
    #[error("the step has {}: a step is exactly one of them", keys.iter().map(|k| format!("`{k}:`")).collect::<Vec<_>>().join(" and "))]
    SeveralKinds { keys: Vec<&'static str> },
    #[error("missing field `{field}`")]
    Missing { field: String },
    #[error("`{field}` is {found}: expected {expected}")]
    BadField {
        field: String,
        expected: String,
        found: String,
    },
    #[error("unknown {role} `{name}`{}; known {role}s: {}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default(), known.join(", "))]
    UnknownOperator {
        role: Role,
        name: String,
        known: Vec<String>,
        suggestion: Option<String>,
    },
    #[error("{0}")]
    Param(#[from] super::params::ParamError),
    #[error("unknown parameter{} {}: it takes {}", if params.len() > 1 { "s" } else { "" }, params.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", "), if accepted.is_empty() { "no parameters".to_owned() } else { accepted.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ") })]
    UnknownParams {
        params: Vec<String>,
        accepted: Vec<String>,
    },
    #[error("bad edge: {message}")]
    BadEdge { message: String },
    #[error("input `{input}` is not the uid of an earlier step{}", if known.is_empty() { String::new() } else { format!(" (earlier steps: {})", known.join(", ")) })]
    UnknownInput { input: String, known: Vec<String> },
    #[error("it has no input: it is the first step, so name one with `input: <uid>` (or make it a source)")]
    NoInput,
    #[error("a source reads no input, but this one has `{field}`")]
    SourceWithInput { field: &'static str },
    #[error("its input `{from}` is a sink, which has no output")]
    InputIsSink { from: String },
    #[error("it is keyed: its input needs a key-by edge, e.g. `key-by: <field>` on this step or an `operator: key-by` step before it")]
    NeedsKeyBy,
    #[error("uid `{uid}` is already used by step {first}: uids must be unique, they match state on restore")]
    DuplicateUid { uid: String, first: usize },
}

/// Why a job file cannot be turned into a job.
#[derive(Debug, thiserror::Error)]
pub enum JobFileError {
    #[error("cannot read job file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("job file {}: unsupported format; use .yaml, .yml or .toml", path.display())]
    UnsupportedFormat { path: PathBuf },
    #[error("cannot parse job file {file}: {message}")]
    Parse { file: String, message: String },
    #[error("job file {file}: {message}")]
    Structure { file: String, message: String },
    #[error("job file {file}: {step}: {problem}")]
    Step {
        file: String,
        step: StepRef,
        problem: StepProblem,
    },
    #[error("job file {file}: {source}")]
    Config {
        file: String,
        #[source]
        source: Box<ConfigError>,
    },
    #[error("job file {file}: {source}")]
    Graph {
        file: String,
        #[source]
        source: GraphError,
    },
}

impl JobFileError {
    /// The step problem, if the error is about one step.
    pub fn step_problem(&self) -> Option<&StepProblem> {
        match self {
            JobFileError::Step { problem, .. } => Some(problem),
            _ => None,
        }
    }
}
