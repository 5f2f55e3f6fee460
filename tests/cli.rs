//! The `weir` binary end to end, in child processes: run a job file, take a savepoint, kill the
//! process with SIGKILL, restore from the latest retained checkpoint, and check the committed
//! output is exactly once; the same through `stop --savepoint-path` then `run -s`; Ctrl-C; the
//! ready word-count job; exit codes and messages.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::process::{stderr, stdout, weir, Running, WEIR};
use serde_json::Value;
use weir_actors::weir::connectors::file_sink::committed_lines;

/// `words` lines of a few words from a small vocabulary, and the true count of each word.
fn write_input(path: &Path, lines: usize) -> BTreeMap<String, u64> {
    let mut text = String::new();
    let mut counts = BTreeMap::new();
    for i in 0..lines {
        let words = [
            format!("w{}", i % 37),
            format!("v{}", i % 11),
            "the".to_owned(),
        ];
        text.push_str(&words.join(" "));
        text.push('\n');
        for w in words {
            *counts.entry(w).or_insert(0) += 1;
        }
    }
    std::fs::write(path, text).unwrap();
    counts
}

/// The word-count job file: file source (rate-limited if `rate` is given) → split → count by
/// word → exactly-once file sink; checkpoints every 100 ms, retained on cancellation and
/// failure. The rate is a parameter, not state: a restored run may drop it and finish fast.
fn write_job(dir: &Path, rate: Option<u32>) -> PathBuf {
    let job = dir.join(match rate {
        Some(_) => "job.yaml",
        None => "job-unlimited.yaml",
    });
    let rate = rate.map_or(String::new(), |r| format!("    rate: {r}\n"));
    std::fs::write(
        &job,
        format!(
            r#"name: cli-word-count
config:
  execution.checkpointing.interval: 100 ms
  execution.checkpointing.dir: {dir}/checkpoints
  execution.checkpointing.num-retained: 3
  execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION
  parallelism.default: 2
  rest.port: 0
pipeline:
  - source: file
    uid: lines
    path: input.txt
{rate}    parallelism: 1
  - operator: split-words
    uid: words
  - operator: count
    uid: counts
    key-by: word
  - sink: file
    uid: out
    path: out
"#,
            dir = dir.display()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("weir.yaml"), "{}\n").unwrap();
    job
}

/// Per word, the counts in the committed output.
fn committed(dir: &Path) -> BTreeMap<String, Vec<u64>> {
    let mut per_word: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for line in committed_lines(dir.join("out")).unwrap_or_default() {
        let v: Value = serde_json::from_str(&line).expect("JSON line");
        per_word
            .entry(v["key"].as_str().expect("a word").to_owned())
            .or_default()
            .push(v["count"].as_u64().expect("a count"));
    }
    for counts in per_word.values_mut() {
        counts.sort_unstable();
    }
    per_word
}

/// Exactly once: each word's counts are 1..=its true count, each once.
fn assert_exactly_once(dir: &Path, truth: &BTreeMap<String, u64>) {
    let got = committed(dir);
    let want: BTreeMap<String, Vec<u64>> = truth
        .iter()
        .map(|(w, n)| (w.clone(), (1..=*n).collect()))
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (word, counts) in &want {
        assert_eq!(&got[word], counts, "word `{word}`");
    }
}

/// No count committed twice (a prefix of the exactly-once output).
fn assert_no_duplicates(dir: &Path) {
    for (word, counts) in committed(dir) {
        let mut dedup = counts.clone();
        dedup.dedup();
        assert_eq!(dedup, counts, "word `{word}` has a count committed twice");
        assert_eq!(
            counts,
            (1..=counts.len() as u64).collect::<Vec<_>>(),
            "word `{word}`"
        );
    }
}

fn config_arg(dir: &Path) -> String {
    dir.join("weir.yaml").display().to_string()
}

#[test]
fn sigkill_then_restore_from_the_latest_retained_checkpoint_is_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let truth = write_input(&dir.join("input.txt"), 20_000);
    let job = write_job(dir, Some(1000)).display().to_string();
    let unlimited = write_job(dir, None).display().to_string();
    let config = config_arg(dir);

    let run = Running::start(dir, &[&job, "--config", &config]);
    run.wait_checkpoints(|b| b["counts"]["completed"].as_u64() >= Some(2));

    let savepoints = dir.join("savepoints").display().to_string();
    let o = weir(
        dir,
        &["savepoint", &run.job, &savepoints, "--address", &run.addr],
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let sp = stdout(&o);
    let sp = sp
        .trim()
        .strip_prefix("Savepoint completed. Path: ")
        .unwrap_or_else(|| panic!("{sp}"));
    assert!(Path::new(sp).join("_metadata").exists(), "{sp}");
    let sp_id: u64 =
        serde_json::from_str::<Value>(&stdout(&weir(dir, &["checkpoints", sp, "--json"]))).unwrap()
            [0]["id"]
            .as_u64()
            .unwrap();

    // A checkpoint after the savepoint, then SIGKILL: nothing gets to clean up.
    run.wait_checkpoints(|b| b["latest"]["completed"]["id"].as_u64() > Some(sp_id));
    let mut run = run;
    run.child.kill().unwrap();
    let (code, _) = run.finish();
    assert_eq!(code, -1, "killed by a signal");
    assert_no_duplicates(dir);

    // The latest complete retained checkpoint, as `weir checkpoints` reports it.
    let o = weir(
        dir,
        &[
            "checkpoints",
            &dir.join("checkpoints").display().to_string(),
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let listing: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let latest = listing
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["status"] == "COMPLETE" && l["kind"] == "CHECKPOINT")
        .max_by_key(|l| l["id"].as_u64())
        .unwrap_or_else(|| panic!("no complete checkpoint in {listing}"));
    assert!(latest["id"].as_u64() > Some(sp_id));
    assert_eq!(latest["operators"].as_array().unwrap().len(), 4);
    let table = stdout(&weir(
        dir,
        &[
            "checkpoints",
            &dir.join("checkpoints").display().to_string(),
        ],
    ));
    assert!(
        table.contains("operators: lines(1) words(2) counts(2) out(2)"),
        "{table}"
    );

    let path = latest["path"].as_str().unwrap();
    let restored = Running::start(dir, &[&unlimited, "--config", &config, "-s", path]);
    assert!(
        restored
            .seen
            .iter()
            .any(|l| l.starts_with(&format!("Restoring from {path}"))),
        "{:?}",
        restored.seen
    );
    let (code, lines) = restored.finish();
    assert_eq!(code, 0, "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("FINISHED")), "{lines:#?}");
    assert_exactly_once(dir, &truth);
}

#[test]
fn stop_with_a_savepoint_then_run_from_it_is_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let truth = write_input(&dir.join("input.txt"), 20_000);
    let job = write_job(dir, Some(1000)).display().to_string();
    let unlimited = write_job(dir, None).display().to_string();
    let config = config_arg(dir);

    let mut run = Running::start(dir, &[&job, "--config", &config]);
    run.wait_checkpoints(|b| b["counts"]["completed"].as_u64() >= Some(1));
    let savepoints = dir.join("savepoints").display().to_string();
    let o = weir(
        dir,
        &[
            "stop",
            &run.job,
            "--savepoint-path",
            &savepoints,
            "--address",
            &run.addr,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    let sp = out
        .trim()
        .strip_prefix("Savepoint completed. Path: ")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(sp.starts_with(&savepoints), "{sp}");
    let finished = run.wait_line(&format!("Job {} ", run.job));
    assert!(finished.contains("FINISHED"), "{finished}");
    let (code, _) = run.finish();
    assert_eq!(code, 0, "a stopped job FINISHES");
    assert_no_duplicates(dir);
    assert!(!committed(dir).is_empty(), "stop-with-savepoint commits");

    let restored = Running::start(
        dir,
        &[
            &unlimited,
            "--config",
            &config,
            "--from-savepoint",
            sp,
            "--claim-mode",
            "NO_CLAIM",
        ],
    );
    let (code, lines) = restored.finish();
    assert_eq!(code, 0, "{lines:#?}");
    assert_exactly_once(dir, &truth);
    assert!(
        Path::new(sp).join("_metadata").exists(),
        "NO_CLAIM leaves the savepoint"
    );
}

#[test]
fn ctrl_c_cancels_the_job_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    write_input(&dir.join("input.txt"), 100_000);
    let job = write_job(dir, Some(500)).display().to_string();
    let config = config_arg(dir);
    let mut run = Running::start(dir, &[&job, "--config", &config]);
    run.wait_checkpoints(|b| b["counts"]["completed"].as_u64() >= Some(1));
    let killed = Command::new("kill")
        .args(["-INT", &run.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let said = run.wait_line("Ctrl-C");
    assert!(
        said.contains(&format!("canceling job {}", run.job)),
        "{said}"
    );
    assert!(said.contains("Committed output stays"), "{said}");
    let (code, lines) = run.finish();
    assert_eq!(code, 3, "CANCELED: {lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains("CANCELED (Ctrl-C)")),
        "{lines:#?}"
    );
    assert_no_duplicates(dir);
    // RETAIN_ON_CANCELLATION: the checkpoints are still there to restore from.
    let listing: Value = serde_json::from_str(&stdout(&weir(
        dir,
        &[
            "checkpoints",
            &dir.join("checkpoints").display().to_string(),
            "--json",
        ],
    )))
    .unwrap();
    assert!(listing
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["status"] == "COMPLETE"));
}

#[test]
fn the_ready_word_count_job_counts_every_word_once() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let ready = std::fs::read_to_string(repo.join("config/jobs/word-count.yaml")).unwrap();
    let data = repo.join("config/jobs/data/words.txt");
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let job = dir.join("word-count.yaml");
    std::fs::write(
        &job,
        ready
            .replace(
                "/tmp/weir-out/word-count",
                &dir.join("out").display().to_string(),
            )
            .replace("/tmp/weir/", &format!("{}/", dir.display()))
            .replace("data/words.txt", &data.display().to_string()),
    )
    .unwrap();
    std::fs::write(dir.join("weir.yaml"), "{}\n").unwrap();
    let o = weir(
        dir,
        &[
            "run",
            &job.display().to_string(),
            "--config",
            &config_arg(dir),
            "-D",
            "rest.port=0",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let mut truth: BTreeMap<String, u64> = BTreeMap::new();
    for w in std::fs::read_to_string(&data)
        .unwrap()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        *truth.entry(w.to_lowercase()).or_insert(0) += 1;
    }
    assert_exactly_once(dir, &truth);
}

#[test]
fn exit_codes_and_messages_a_script_can_rely_on() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let help = weir(dir, &["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("Exit codes:"));
    for command in [
        "run",
        "list",
        "savepoint",
        "stop",
        "cancel",
        "checkpoint",
        "checkpoints",
    ] {
        let o = weir(dir, &[command, "--help"]);
        assert_eq!(o.status.code(), Some(0), "{command}");
        assert!(stdout(&o).contains("Exit codes:"), "{command}");
    }
    assert_eq!(weir(dir, &["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        weir(dir, &["run"]).status.code(),
        Some(2),
        "JOB_FILE is required"
    );

    let o = weir(dir, &["run", "missing.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("error: cannot read job file missing.yaml"),
        "{}",
        stderr(&o)
    );

    write_input(&dir.join("input.txt"), 10);
    let job = write_job(dir, Some(100));
    let text = std::fs::read_to_string(&job).unwrap();
    std::fs::write(&job, text.replace("operator: count", "operator: cont")).unwrap();
    let o = weir(
        dir,
        &[
            "run",
            &job.display().to_string(),
            "--config",
            &config_arg(dir),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains(&format!("job file {}", job.display())), "{e}");
    assert!(e.contains("step 3 (uid `counts`, operator `cont`): unknown operator `cont` (did you mean `count`?)"), "{e}");

    std::fs::write(&job, text.clone()).unwrap();
    let o = weir(
        dir,
        &[
            "run",
            &job.display().to_string(),
            "--config",
            &config_arg(dir),
            "-D",
            "execution.checkpointing.interval=soon",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("execution.checkpointing.interval"),
        "{}",
        stderr(&o)
    );
    let o = weir(dir, &["run", &job.display().to_string(), "-D", "novalue"]);
    assert_eq!(o.status.code(), Some(2));

    let o = weir(
        dir,
        &["savepoint", "not-a-job-id", "--address", "127.0.0.1:1"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("`not-a-job-id` is not a job id"),
        "{}",
        stderr(&o)
    );
    let id = "0123456789abcdef0123456789abcdef";
    for args in [
        vec!["cancel", id],
        vec!["savepoint", id],
        vec!["stop", id],
        vec!["checkpoint", id, "--full"],
        vec!["list"],
    ] {
        let mut args = args;
        args.extend(["--address", "127.0.0.1:1"]);
        let o = weir(dir, &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&o).contains("cannot reach the REST API at 127.0.0.1:1"),
            "{}",
            stderr(&o)
        );
    }
    let o = weir(dir, &["checkpoints", "/nonexistent/weir"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    let o = weir(
        dir,
        &[
            "savepoint",
            "--dispose",
            &dir.join("nothing").display().to_string(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

#[test]
fn a_program_runs_job_files_with_its_own_operators() {
    use weir_actors::weir::functions::MapFn;
    use weir_actors::weir::jobfile::Registry;

    let mut registry = Registry::new();
    registry.register_operator("double", |p| {
        let field = p.field("field")?;
        Ok(MapFn(move |mut v: Value| {
            let n = field.get(&v).and_then(Value::as_u64).unwrap_or(0);
            field.set(&mut v, (n * 2).into());
            v
        }))
    });
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(dir.join("weir.yaml"), "{}\n").unwrap();
    let job = dir.join("double.yaml");
    std::fs::write(
        &job,
        format!(
            "config:\n  rest.port: 0\n  execution.checkpointing.interval: 50 ms\npipeline:\n  \
             - source: sequence\n    uid: numbers\n    to: 99\n  - operator: double\n    uid: \
             doubled\n    field: value\n  - sink: file\n    uid: out\n    path: {}\n",
            dir.join("out").display()
        ),
    )
    .unwrap();
    let args = [
        "weir",
        "run",
        &job.display().to_string(),
        "--config",
        &config_arg(dir),
    ];
    assert_eq!(
        weir_actors::cli::main(args, &registry),
        std::process::ExitCode::SUCCESS
    );
    let mut values: Vec<u64> = committed_lines(dir.join("out"))
        .unwrap()
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["value"]
                .as_u64()
                .unwrap()
        })
        .collect();
    values.sort_unstable();
    assert_eq!(values, (0..100).map(|n| n * 2).collect::<Vec<_>>());
    // The stock binary does not know the operator, and says which file and step.
    let o = weir(
        dir,
        &[
            "run",
            &job.display().to_string(),
            "--config",
            &config_arg(dir),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("step 2 (uid `doubled`, operator `double`): unknown operator `double`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn logs_go_to_stderr_without_colour_codes_when_it_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    write_input(&dir.join("input.txt"), 20);
    let job = write_job(dir, None);
    // A setting that has no effect in its combination logs a warning at start, at the CLI's
    // default level; stderr is a pipe here, so the warning must come without ANSI escapes.
    let o = Command::new(WEIR)
        .args([
            "run",
            &job.display().to_string(),
            "--config",
            &config_arg(dir),
            "-D",
            "execution.checkpointing.aligned-checkpoint-timeout=50ms",
        ])
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .output()
        .expect("weir runs");
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("WARN") && e.contains("has no effect"),
        "the warning is logged to stderr: {e}"
    );
    assert!(
        !e.contains('\x1b'),
        "ANSI escape codes in piped logs: {e:?}"
    );
    assert!(
        !stdout(&o).contains("has no effect"),
        "logs on stdout: {}",
        stdout(&o)
    );
}
