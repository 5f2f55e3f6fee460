//! From a [`JobSpec`] to a runnable [`JobGraph`]: engine keys through `weir::config`'s layers,
//! operator names through the [`Registry`], inputs and edges resolved by uid.
//!
//! [`load`] does it all for a file: read it, load the engine configuration with the file's
//! `config:` section as the job layer (so defaults < base file < job file < `WEIR_*` < `-D`
//! holds), then [`build`]. [`build`] walks the pipeline in order: a step's input is the previous
//! step unless it names its inputs; `key-by` steps add no vertex but make the edges into the
//! step after them key-by edges; every other step becomes one vertex whose factory comes from
//! the registry. Every source and sink is wrapped to count records ([`JobMetrics`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::error::{JobFileError, StepProblem, StepRef};
use super::metrics::JobMetrics;
use super::params::Params;
use super::registry::{Keying, Registry, VertexContext, KEY_BY};
use super::spec::{EdgeKind, InputSpec, JobSpec, Role, StepSpec};
use super::value::{Field, JsonKey};
use crate::config::{self, EngineConfig, JobLayer, TextFormat};
use crate::graph::{Edge, JobConfig, JobGraph, Vertex};
use crate::partition::{key_group_fn, EdgeKey, Partitioning};
use crate::state::key_group::default_max_parallelism;
use crate::state::KeyedBackend;
use crate::vertex::KeySelector;

/// Where the engine configuration comes from besides the job file.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// The base configuration file (`--config`); `None` reads `config/weir.yaml` if it exists.
    pub base_config: Option<PathBuf>,
    /// Environment variables (only `WEIR_*` ones are read); pass `std::env::vars()`.
    pub env: Vec<(String, String)>,
    /// `-D key=value` pairs, in command-line order.
    pub overrides: Vec<(String, String)>,
}

/// A job file turned into a job.
#[derive(Debug)]
pub struct BuiltJob {
    /// `pipeline.name` if configured, else the file's `name`, else the file's stem.
    pub name: String,
    pub graph: JobGraph,
    /// The effective engine configuration (restore settings included).
    pub config: EngineConfig,
    /// Configuration warnings (ignored Flink keys, ...), each once.
    pub warnings: Vec<String>,
    /// Record counters of the job's sources and sinks.
    pub metrics: JobMetrics,
}

/// Reads the job file at `path`, loads the engine configuration around it, and builds the job.
///
/// # Errors
/// Any [`JobFileError`]: the file cannot be read or parsed, a step is malformed or names an
/// unknown operator, an edge is wrong, a configuration key or value is bad, or the graph does
/// not validate. Messages name the file and the step.
pub fn load(
    path: &Path,
    registry: &Registry,
    options: &LoadOptions,
) -> Result<BuiltJob, JobFileError> {
    let spec = JobSpec::read(path)?;
    let (config, warnings) = engine_config(&spec, options)?;
    let mut job = build(&spec, registry, &config)?;
    job.warnings = warnings;
    Ok(job)
}

/// Loads the engine configuration with `spec`'s `config:` section as the job layer.
///
/// # Errors
/// [`JobFileError::Config`] with every configuration problem.
pub fn engine_config(
    spec: &JobSpec,
    options: &LoadOptions,
) -> Result<(EngineConfig, Vec<String>), JobFileError> {
    let job = spec.config.as_ref().map(|section| JobLayer::Text {
        origin: format!("job file {}", spec.origin()),
        // JSON is YAML: the section goes through the same parser and flattening as a file.
        format: TextFormat::Yaml,
        text: Value::Object(section.clone()).to_string(),
    });
    config::load(
        options.base_config.as_deref(),
        job,
        options.env.iter().cloned(),
        &options.overrides,
    )
    .map_err(|source| JobFileError::Config {
        file: spec.origin(),
        source: Box::new(source),
    })
}

/// The graph's runtime settings from the engine configuration.
pub fn job_config(config: &EngineConfig) -> JobConfig {
    JobConfig {
        checkpoint: config.checkpoint.clone(),
        restart: config.restart.clone(),
        state_backend: config.state_backend,
        auto_watermark_interval: config.auto_watermark_interval,
        state_local_dir: config.state_local_dir.as_ref().map(Into::into),
        ..JobConfig::default()
    }
}

/// What a name in `input:` refers to.
#[derive(Clone)]
enum Node {
    Vertex {
        index: usize,
        sink: bool,
    },
    /// A `key-by` step: the edges into it, keyed by `field`.
    KeyBy {
        upstream: Vec<usize>,
        field: String,
    },
}

/// One resolved edge into the step being built.
struct Incoming {
    from: usize,
    kind: Option<EdgeKind>,
    key_field: Option<String>,
}

fn step_error(spec: &JobSpec, step: StepRef, problem: StepProblem) -> JobFileError {
    JobFileError::Step {
        file: spec.origin(),
        step,
        problem,
    }
}

/// Builds the job graph of `spec` with the operators of `registry` and the settings of `config`.
///
/// # Errors
/// As [`load`], without the file and configuration errors.
pub fn build(
    spec: &JobSpec,
    registry: &Registry,
    config: &EngineConfig,
) -> Result<BuiltJob, JobFileError> {
    let base_dir = spec
        .file
        .as_ref()
        .and_then(|f| f.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let metrics = JobMetrics::default();
    let mut vertices: Vec<Vertex> = Vec::new();
    let mut edges: Vec<Edge> = Vec::new();
    let mut nodes: HashMap<String, Node> = HashMap::new();
    let mut uids: HashMap<String, usize> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut previous: Option<Node> = None;
    let event_time = window_event_time(spec);

    for step in &spec.pipeline {
        let at = step.reference();
        let fail = |problem| step_error(spec, at.clone(), problem);
        if let Some(uid) = &step.uid {
            if let Some(&first) = uids.get(uid) {
                return Err(fail(StepProblem::DuplicateUid {
                    uid: uid.clone(),
                    first,
                }));
            }
            uids.insert(uid.clone(), step.index);
        }
        let is_key_by = step.role == Role::Operator && step.kind == KEY_BY;
        let incoming =
            resolve_inputs(step, !is_key_by, &nodes, &order, previous.as_ref()).map_err(&fail)?;

        if is_key_by {
            let mut params = Params::new(
                step.uid.clone().unwrap_or_default(),
                step.params.clone(),
                &base_dir,
            );
            let field = match (params.opt_str("field"), &step.key_by) {
                (Ok(Some(f)), _) => f,
                (Ok(None), Some(f)) => f.clone(),
                (Ok(None), None) => {
                    return Err(fail(StepProblem::Missing {
                        field: "field".to_owned(),
                    }))
                }
                (Err(e), _) => return Err(fail(StepProblem::Param(e))),
            };
            Field::parse(&field).map_err(|message| {
                fail(StepProblem::BadField {
                    field: "field".to_owned(),
                    expected: "a field path".to_owned(),
                    found: message,
                })
            })?;
            check_unread(&params).map_err(&fail)?;
            if incoming
                .iter()
                .any(|i| i.key_field.is_some() || i.kind.is_some())
            {
                return Err(fail(StepProblem::BadEdge {
                    message: "a key-by step sets the edge itself: give its input no \
                              `partition` or `key-by`"
                        .to_owned(),
                }));
            }
            let node = Node::KeyBy {
                upstream: incoming.iter().map(|i| i.from).collect(),
                field,
            };
            if let Some(uid) = &step.uid {
                nodes.insert(uid.clone(), node.clone());
                order.push(uid.clone());
            }
            previous = Some(node);
            continue;
        }

        let entry = registry.get(step.role, &step.kind).ok_or_else(|| {
            let known = registry.names(step.role);
            fail(StepProblem::UnknownOperator {
                role: step.role,
                name: step.kind.clone(),
                suggestion: suggest(&step.kind, &known),
                known,
            })
        })?;

        let key_fields: Vec<&String> = incoming
            .iter()
            .filter_map(|i| i.key_field.as_ref())
            .collect();
        let keyed_input = !incoming.is_empty() && key_fields.len() == incoming.len();
        if entry.keying != Keying::Any && !keyed_input {
            return Err(fail(StepProblem::NeedsKeyBy));
        }
        if key_fields.windows(2).any(|w| w[0] != w[1]) {
            return Err(fail(StepProblem::BadEdge {
                message: format!(
                    "its inputs are keyed by different fields ({}): one operator has one key",
                    key_fields
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }));
        }
        let key_selector: Option<KeySelector<Value, JsonKey>> = match key_fields.first() {
            None => None,
            Some(f) => {
                let field = Field::parse(f).map_err(|message| {
                    fail(StepProblem::BadEdge {
                        message: format!("bad key-by field: {message}"),
                    })
                })?;
                Some(Arc::new(move |r: &Value| JsonKey::of_field(&field, r)))
            }
        };

        let uid = step
            .uid
            .clone()
            .expect("spec requires a uid for every real step");
        let mut step_params = step.params.clone();
        if step.role == Role::Source && !step_params.contains_key("time-field") {
            if let Some((field, bound)) = &event_time {
                step_params.insert("time-field".to_owned(), field.clone());
                if let Some(bound) = bound {
                    step_params.insert("out-of-orderness".to_owned(), bound.clone());
                }
            }
        }
        let mut params = Params::new(uid.clone(), step_params, &base_dir);
        let cx = VertexContext {
            key: key_selector.as_ref(),
            backend: KeyedBackend {
                kind: config.state_backend,
                local_dir: config.state_local_dir.as_ref().map(Into::into),
            },
            metrics: &metrics,
        };
        let factory = (entry.make)(&mut params, &cx).map_err(|e| fail(StepProblem::Param(e)))?;
        check_unread(&params).map_err(&fail)?;

        let parallelism = step.parallelism.unwrap_or(config.parallelism);
        let index = vertices.len();
        vertices.push(Vertex {
            uid: uid.clone(),
            name: step.name.clone().unwrap_or_else(|| uid.clone()),
            role: entry.vertex_role,
            parallelism,
            max_parallelism: step
                .max_parallelism
                .or(config.max_parallelism)
                .unwrap_or_else(|| default_max_parallelism(parallelism.max(1))),
            factory,
        });
        for i in incoming {
            let partitioning = match (i.kind, &i.key_field) {
                (_, Some(_)) => Partitioning::KeyBy,
                (Some(EdgeKind::Forward), None) => Partitioning::Forward,
                (Some(EdgeKind::Rebalance), None) => Partitioning::Rebalance,
                (Some(EdgeKind::Broadcast), None) => Partitioning::Broadcast,
                (Some(EdgeKind::KeyBy), None) => unreachable!("resolve_inputs demands a field"),
                (None, None) if vertices[i.from].parallelism == parallelism => {
                    Partitioning::Forward
                }
                (None, None) => Partitioning::Rebalance,
            };
            let key_group = match (&key_selector, partitioning) {
                (Some(selector), Partitioning::KeyBy) => {
                    let selector = selector.clone();
                    Some(key_group_fn(move |r: &Value| selector(r)))
                }
                _ => None,
            };
            edges.push(Edge {
                from: i.from,
                to: index,
                partitioning,
                has_key: key_group.is_some(),
                key: Arc::new(EdgeKey::<Value> { key_group }),
            });
        }
        let node = Node::Vertex {
            index,
            sink: step.role == Role::Sink,
        };
        nodes.insert(uid.clone(), node.clone());
        order.push(uid);
        previous = Some(node);
    }

    let name = config
        .job_name
        .clone()
        .or_else(|| spec.name.clone())
        .or_else(|| {
            spec.file
                .as_ref()
                .and_then(|f| f.file_stem())
                .map(|s| s.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "job".to_owned());
    let graph = JobGraph {
        name: name.clone(),
        vertices,
        edges,
        config: job_config(config),
    };
    graph.validate().map_err(|source| JobFileError::Graph {
        file: spec.origin(),
        source,
    })?;
    Ok(BuiltJob {
        name,
        graph,
        config: config.clone(),
        warnings: Vec::new(),
        metrics,
    })
}

/// The event time of the job's first event-time window step (`time-field` and
/// `out-of-orderness`): sources that set no `time-field` of their own generate watermarks
/// from it.
fn window_event_time(spec: &JobSpec) -> Option<(Value, Option<Value>)> {
    spec.pipeline
        .iter()
        .filter(|s| {
            s.role == Role::Operator && matches!(s.kind.as_str(), "window" | "window-count")
        })
        .find_map(|s| {
            let field = s.params.get("time-field").filter(|v| !v.is_null())?;
            Some((field.clone(), s.params.get("out-of-orderness").cloned()))
        })
}

fn check_unread(params: &Params) -> Result<(), StepProblem> {
    let unread = params.unread();
    if unread.is_empty() {
        return Ok(());
    }
    Err(StepProblem::UnknownParams {
        params: unread,
        accepted: params.asked(),
    })
}

/// The edges into `step`: named inputs or the previous step, key-by steps expanded.
/// `step_key_by`: whether the step's own `key-by:` applies to its inputs (not for a key-by
/// step, where it names the field).
fn resolve_inputs(
    step: &StepSpec,
    step_key_by: bool,
    nodes: &HashMap<String, Node>,
    order: &[String],
    previous: Option<&Node>,
) -> Result<Vec<Incoming>, StepProblem> {
    if step.role == Role::Source {
        let given = [
            (step.inputs.is_some(), "input"),
            (step.partition.is_some(), "partition"),
            (step.key_by.is_some(), "key-by"),
        ];
        if let Some((_, field)) = given.into_iter().find(|(g, _)| *g) {
            return Err(StepProblem::SourceWithInput { field });
        }
        return Ok(Vec::new());
    }
    let named: Vec<(Node, InputSpec)> = match &step.inputs {
        Some(inputs) => inputs
            .iter()
            .map(|i| {
                nodes
                    .get(&i.from)
                    .cloned()
                    .map(|n| (n, i.clone()))
                    .ok_or_else(|| StepProblem::UnknownInput {
                        input: i.from.clone(),
                        known: order.iter().map(|u| format!("`{u}`")).collect(),
                    })
            })
            .collect::<Result<_, _>>()?,
        None => {
            let node = previous.cloned().ok_or(StepProblem::NoInput)?;
            vec![(
                node,
                InputSpec {
                    from: String::new(),
                    partition: None,
                    key_by: None,
                },
            )]
        }
    };
    let mut incoming = Vec::new();
    for (node, input) in named {
        let kind = input.partition.or(step.partition);
        let key_field = input
            .key_by
            .clone()
            .or_else(|| step.key_by.clone().filter(|_| step_key_by));
        match (&node, kind, &key_field) {
            (_, Some(k), Some(f)) if k != EdgeKind::KeyBy => {
                return Err(StepProblem::BadEdge {
                    message: format!(
                        "partition `{}` contradicts `key-by: {f}`: a keyed edge is key-by",
                        serde_json::to_value(k)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default()
                    ),
                })
            }
            (Node::Vertex { .. }, Some(EdgeKind::KeyBy), None) => {
                return Err(StepProblem::BadEdge {
                    message: "a key-by edge needs the field to key by: add `key-by: <field>`"
                        .to_owned(),
                })
            }
            _ => {}
        }
        match node {
            Node::Vertex { sink: true, .. } => {
                return Err(StepProblem::InputIsSink {
                    from: if input.from.is_empty() {
                        "the previous step".to_owned()
                    } else {
                        input.from
                    },
                });
            }
            Node::Vertex { index, sink: false } => incoming.push(Incoming {
                from: index,
                kind,
                key_field,
            }),
            Node::KeyBy { upstream, field } => {
                if kind.is_some_and(|k| k != EdgeKind::KeyBy)
                    || key_field.as_ref().is_some_and(|f| *f != field)
                {
                    return Err(StepProblem::BadEdge {
                        message: format!(
                            "its input is a key-by step (field `{field}`): give it no other \
                             `partition` or `key-by`"
                        ),
                    });
                }
                incoming.extend(upstream.into_iter().map(|from| Incoming {
                    from,
                    kind: Some(EdgeKind::KeyBy),
                    key_field: Some(field.clone()),
                }));
            }
        }
    }
    Ok(incoming)
}

/// The known name closest to `name`, if it is close (a typo).
fn suggest(name: &str, known: &[String]) -> Option<String> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.clone())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
