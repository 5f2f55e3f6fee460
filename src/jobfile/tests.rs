//! Job files end to end in the model: parsing, building, and each error naming the file and the
//! step.

use serde_json::Value;

use super::*;
use crate::config::{EngineConfig, TextFormat};
use crate::functions::MapFn;
use crate::graph::VertexRole;
use crate::partition::Partitioning;

const WORD_COUNT: &str = r#"
name: word-count
config:
  execution.checkpointing.interval: 250 ms
  parallelism.default: 2
pipeline:
  - source: file
    uid: lines
    path: data/words.txt
    parallelism: 1
  - operator: split-words
    uid: words
  - operator: count
    uid: counts
    key-by: word
  - sink: file
    uid: out
    path: /tmp/out
"#;

fn parse(text: &str) -> Result<JobSpec, JobFileError> {
    let mut spec = JobSpec::parse(text, TextFormat::Yaml, "jobs/test.yaml")?;
    spec.file = Some("jobs/test.yaml".into());
    Ok(spec)
}

fn built(text: &str) -> Result<BuiltJob, JobFileError> {
    built_with(text, &Registry::new())
}

fn built_with(text: &str, registry: &Registry) -> Result<BuiltJob, JobFileError> {
    let spec = parse(text)?;
    let options = LoadOptions {
        base_config: Some(empty_base()),
        ..LoadOptions::default()
    };
    let (config, _) = engine_config(&spec, &options)?;
    build(&spec, registry, &config)
}

/// An empty base file, so that no `config/weir.yaml` of the working directory leaks in.
fn empty_base() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("weir-jobfile-test-{}.yaml", std::process::id()));
    std::fs::write(&path, "{}\n").unwrap();
    path
}

fn message(text: &str) -> String {
    built(text).unwrap_err().to_string()
}

#[test]
fn the_word_count_file_builds_its_graph_and_engine_settings() {
    let job = built(WORD_COUNT).unwrap();
    assert_eq!(job.name, "word-count");
    let g = &job.graph;
    let uids: Vec<&str> = g.vertices.iter().map(|v| v.uid.as_str()).collect();
    assert_eq!(uids, ["lines", "words", "counts", "out"]);
    let roles: Vec<VertexRole> = g.vertices.iter().map(|v| v.role).collect();
    assert_eq!(
        roles,
        [
            VertexRole::Source,
            VertexRole::Operator,
            VertexRole::KeyedOperator,
            VertexRole::Sink
        ]
    );
    let par: Vec<u32> = g.vertices.iter().map(|v| v.parallelism).collect();
    assert_eq!(par, [1, 2, 2, 2]);
    let parts: Vec<Partitioning> = g.edges.iter().map(|e| e.partitioning).collect();
    assert_eq!(
        parts,
        [
            Partitioning::Rebalance,
            Partitioning::KeyBy,
            Partitioning::Forward
        ]
    );
    assert_eq!(
        g.config.checkpoint.interval,
        Some(std::time::Duration::from_millis(250))
    );
    assert_eq!(job.config.parallelism, 2);
}

#[test]
fn toml_job_files_are_the_same_model() {
    let toml = r#"
name = "seq"
[config]
"parallelism.default" = 3
[[pipeline]]
source = "sequence"
uid = "numbers"
to = 99
[[pipeline]]
operator = "key-by"
field = "value"
[[pipeline]]
operator = "sum"
uid = "total"
field = "value"
[[pipeline]]
sink = "discard"
uid = "sink"
"#;
    let spec = JobSpec::parse(toml, TextFormat::Toml, "t.toml").unwrap();
    let (config, _) = engine_config(
        &spec,
        &LoadOptions {
            base_config: Some(empty_base()),
            ..LoadOptions::default()
        },
    )
    .unwrap();
    let job = build(&spec, &Registry::new(), &config).unwrap();
    assert_eq!(job.graph.vertices.len(), 3, "key-by adds no vertex");
    assert!(job.graph.vertices.iter().all(|v| v.parallelism == 3));
    assert_eq!(job.graph.edges[0].partitioning, Partitioning::KeyBy);
    assert!(job.graph.edges[0].has_key);
}

#[test]
fn engine_keys_of_the_file_sit_between_the_base_file_and_the_command_line() {
    let spec = parse(WORD_COUNT).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("weir.yaml");
    std::fs::write(
        &base,
        "parallelism.default: 5\nexecution.checkpointing.timeout: 1 min\n",
    )
    .unwrap();
    let options = LoadOptions {
        base_config: Some(base),
        env: vec![(
            "WEIR_EXECUTION__CHECKPOINTING__INTERVAL".into(),
            "1 s".into(),
        )],
        overrides: vec![("parallelism.default".into(), "4".into())],
    };
    let (config, _) = engine_config(&spec, &options).unwrap();
    assert_eq!(config.parallelism, 4, "-D beats the job file");
    assert_eq!(
        config.checkpoint.interval,
        Some(std::time::Duration::from_secs(1)),
        "WEIR_* beats the job file"
    );
    assert_eq!(
        config.checkpoint.timeout,
        std::time::Duration::from_secs(60),
        "the base file shows through"
    );
    let (config, _) = engine_config(
        &spec,
        &LoadOptions {
            overrides: vec![],
            env: vec![],
            ..options
        },
    )
    .unwrap();
    assert_eq!(config.parallelism, 2, "the job file beats the base file");
}

#[test]
fn an_unknown_operator_names_the_file_the_step_and_a_suggestion() {
    let text = WORD_COUNT.replace("operator: count", "operator: cuont");
    let m = message(&text);
    assert!(m.starts_with("job file jobs/test.yaml: step 3 (uid `counts`, operator `cuont`): unknown operator `cuont` (did you mean `count`?)"), "{m}");
    assert!(
        m.contains("known operators: count, filter, key-by, map"),
        "{m}"
    );
    let m = message(&WORD_COUNT.replace("sink: file", "sink: pulsar"));
    assert!(m.contains("step 4 (uid `out`, sink `pulsar`): unknown sink `pulsar`; known sinks: discard, file, kafka, print"), "{m}");
}

#[test]
fn missing_fields_name_the_step() {
    let m = message(&WORD_COUNT.replace("    uid: counts\n", ""));
    assert_eq!(
        m,
        "job file jobs/test.yaml: step 3 (operator `count`): missing field `uid`"
    );
    let m = message(&WORD_COUNT.replace("    path: data/words.txt\n", ""));
    assert_eq!(
        m,
        "job file jobs/test.yaml: step 1 (uid `lines`, source `file`): missing field `path`"
    );
    let m = message("pipeline:\n  - uid: x\n");
    assert!(
        m.contains("step 1 (uid `x`): the step says neither `source:`"),
        "{m}"
    );
    let m = message("name: x\n");
    assert!(m.contains("missing field `pipeline`"), "{m}");
    let m = message("pipelin: []\n");
    assert!(m.contains("unknown top-level key `pipelin`"), "{m}");
}

#[test]
fn bad_edges_are_refused() {
    let m = message(&WORD_COUNT.replace("    key-by: word\n", ""));
    assert!(
        m.contains(
            "step 3 (uid `counts`, operator `count`): it is keyed: its input needs a key-by edge"
        ),
        "{m}"
    );
    let m = message(&WORD_COUNT.replace("    key-by: word\n", "    partition: sideways\n"));
    assert!(m.contains("bad edge: unknown partition `sideways`"), "{m}");
    let m = message(&WORD_COUNT.replace("    key-by: word\n", "    partition: key-by\n"));
    assert!(m.contains("a key-by edge needs the field"), "{m}");
    let m = message(&WORD_COUNT.replace(
        "    key-by: word\n",
        "    key-by: word\n    input: nowhere\n",
    ));
    assert!(
        m.contains(
            "input `nowhere` is not the uid of an earlier step (earlier steps: `lines`, `words`)"
        ),
        "{m}"
    );
    let m = message(&WORD_COUNT.replace(
        "    key-by: word\n",
        "    key-by: word\n    partition: broadcast\n",
    ));
    assert!(m.contains("contradicts `key-by: word`"), "{m}");
    // A forward edge between different parallelisms fails graph validation, naming both.
    let m = message(&WORD_COUNT.replace(
        "    uid: words\n",
        "    uid: words\n    partition: forward\n",
    ));
    assert!(m.contains("forward edge from `lines`"), "{m}");
    let m = message(&format!("{WORD_COUNT}  - sink: print\n    uid: again\n"));
    assert!(m.contains("its input `the previous step` is a sink"), "{m}");
    let m = message(&WORD_COUNT.replace(
        "    parallelism: 1\n",
        "    parallelism: 1\n    input: words\n",
    ));
    assert!(
        m.contains("a source reads no input, but this one has `input`"),
        "{m}"
    );
}

#[test]
fn parameters_are_checked_by_name_and_type() {
    let m =
        message(&WORD_COUNT.replace("    path: /tmp/out\n", "    path: /tmp/out\n    paht: x\n"));
    assert!(
        m.contains("step 4 (uid `out`, sink `file`): unknown parameter `paht`: it takes `path`"),
        "{m}"
    );
    let m = message(&WORD_COUNT.replace(
        "    path: data/words.txt\n",
        "    path: data/words.txt\n    rate: fast\n",
    ));
    assert!(
        m.contains("`rate` is a string (\"fast\"): expected a number"),
        "{m}"
    );
    let m = message(&WORD_COUNT.replace("    parallelism: 1\n", "    parallelism: many\n"));
    assert!(
        m.contains("`parallelism` is a string (\"many\"): expected a whole number"),
        "{m}"
    );
    let m = message(&WORD_COUNT.replace("    uid: out\n", "    uid: words\n"));
    assert!(m.contains("uid `words` is already used by step 2"), "{m}");
}

#[test]
fn configuration_errors_name_the_file() {
    let m = message(&WORD_COUNT.replace("250 ms", "soon"));
    assert!(m.starts_with("job file jobs/test.yaml: "), "{m}");
    assert!(m.contains("execution.checkpointing.interval"), "{m}");
    assert!(m.contains("job file jobs/test.yaml"), "{m}");
}

#[test]
fn a_program_registers_its_own_operators() {
    let mut registry = Registry::new();
    registry.register_operator("add-one", |p| {
        let field = p.field("field")?;
        Ok(MapFn(move |mut v: Value| {
            let n = field.get(&v).and_then(Value::as_i64).unwrap_or(0);
            field.set(&mut v, Value::from(n + 1));
            v
        }))
    });
    let text = "pipeline:\n  - source: sequence\n    uid: s\n    to: 3\n  - operator: add-one\n    uid: inc\n    field: value\n  - sink: discard\n    uid: d\n";
    let job = built_with(text, &registry).unwrap();
    assert_eq!(job.graph.vertices[1].uid, "inc");
    assert!(registry
        .names(Role::Operator)
        .contains(&"add-one".to_owned()));
    let m = built(text).unwrap_err().to_string();
    assert!(m.contains("unknown operator `add-one`"), "{m}");
    let m = built_with(&text.replace("    field: value\n", ""), &registry)
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("step 2 (uid `inc`, operator `add-one`): missing field `field`"),
        "{m}"
    );
}

#[test]
fn key_by_steps_and_named_inputs_make_a_dag() {
    let text = r#"
pipeline:
  - source: sequence
    uid: numbers
    to: 10
  - operator: filter
    uid: small
    field: value
    less-than: 5
  - operator: key-by
    uid: by-value
    field: value
  - operator: count
    uid: counts
  - operator: window-count
    uid: windows
    input: by-value
    size: 1 s
  - sink: print
    uid: printed
    input: [counts, windows]
  - sink: discard
    uid: all
    input: {from: numbers, partition: broadcast}
"#;
    let job = built(text).unwrap();
    let g = &job.graph;
    assert_eq!(g.vertices.len(), 6);
    let edges: Vec<(&str, &str, Partitioning)> = g
        .edges
        .iter()
        .map(|e| {
            (
                g.vertices[e.from].uid.as_str(),
                g.vertices[e.to].uid.as_str(),
                e.partitioning,
            )
        })
        .collect();
    assert_eq!(
        edges,
        [
            ("numbers", "small", Partitioning::Forward),
            ("small", "counts", Partitioning::KeyBy),
            ("small", "windows", Partitioning::KeyBy),
            ("counts", "printed", Partitioning::Forward),
            ("windows", "printed", Partitioning::Forward),
            ("numbers", "all", Partitioning::Broadcast),
        ]
    );
    let m = message(&text.replace("    input: by-value\n", "    input: small\n"));
    assert!(
        m.contains("step 5 (uid `windows`, operator `window-count`): it is keyed"),
        "{m}"
    );
}

#[test]
fn the_job_name_comes_from_pipeline_name_then_the_file_then_its_stem() {
    let job = built(&WORD_COUNT.replace(
        "  parallelism.default: 2\n",
        "  parallelism.default: 2\n  pipeline.name: renamed\n",
    ))
    .unwrap();
    assert_eq!(job.name, "renamed");
    let job = built(&WORD_COUNT.replace("name: word-count\n", "")).unwrap();
    assert_eq!(job.name, "test");
    assert_eq!(job.graph.name, "test");
    let _ = EngineConfig::default();
}

#[test]
fn window_steps_take_a_shape_and_bad_ones_say_which_parameter() {
    let job = |window: &str, source_extra: &str| {
        format!(
            "pipeline:\n  - source: sequence\n    uid: numbers\n    to: 10\n{source_extra}  \
             - operator: window\n    uid: windows\n    key-by: value\n{window}  - sink: discard\n    uid: out\n"
        )
    };
    for ok in [
        "    size: 1 s\n",
        "    size: 1 s\n    slide: 250 ms\n    time-field: value\n    allowed-lateness: 2 s\n",
        "    gap: 5 s\n    time-field: value\n    out-of-orderness: 1 s\n    aggregate: sum\n    field: value\n",
        "    size: 1 s\n    aggregate: max\n    field: value\n    late-data: emit\n",
    ] {
        built(&job(ok, "")).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for (bad, says) in [
        ("", "a window needs `size`"),
        ("    slide: 1 s\n", "`size`"),
        (
            "    size: 1 s\n    gap: 1 s\n",
            "`gap` (session windows) cannot be combined",
        ),
        ("    size: 0 s\n", "at least 1 ms"),
        ("    size: 1 s\n    slide: 2 s\n", "at most the window size"),
        (
            "    size: 1 s\n    aggregate: avg\n",
            "one of count, sum, min, max",
        ),
        ("    size: 1 s\n    aggregate: sum\n", "`field`"),
        ("    size: 1 s\n    late-data: keep\n", "drop or emit"),
        (
            "    size: 1 s\n    allowed-lateness: 1 s\n",
            "no lateness without `time-field`",
        ),
    ] {
        let m = message(&job(bad, ""));
        assert!(
            m.contains("uid `windows`") && m.contains(says),
            "{bad}: {m}"
        );
    }
    let m = message(&job("    size: 1 s\n", "    out-of-orderness: 1 s\n"));
    assert!(
        m.contains("uid `numbers`") && m.contains("time-field"),
        "{m}"
    );
}
