//! Whole-job benchmarks of Weir: keyed count throughput against the plain-loop limit,
//! checkpoint cost and recovery time versus state size, alignment under skew.
//!
//! ```sh
//! cargo bench -p weir-actors --bench weir_bench                 # everything (~12 min on 2 cores)
//! cargo bench -p weir-actors --bench weir_bench -- --smoke      # every path, tiny (seconds)
//! cargo bench -p weir-actors --bench weir_bench -- --sections throughput --records 5M --runs 5
//! ```
//!
//! Prints a markdown report and writes `report.md`, `weir_bench.svg` and `results.json` to
//! `--out` (default `target/weir-bench`). Each measurement runs in a child process of this
//! binary, so its peak RSS is its own. See `harness/mod.rs` for how the pieces fit.

mod harness;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use harness::plan::{self, Options, Outcome, Sections, Task};

const RESULT_PREFIX: &str = "WEIR-BENCH-RESULT ";

const HELP: &str = "\
weir_bench: whole-job benchmarks (see BENCHMARKS.md)

  --records N         records per throughput run (default 100M)
  --keys K            keys of the throughput and skew runs (default 100k)
  --runs R            runs of every configuration (default 5)
  --sections LIST     throughput,checkpoint,recovery,skew,backpressure or all (default all)
  --state-keys LIST   key counts of the checkpoint and recovery sections
                      (default 10k,100k,1M,5M,10M)
  --compression       snapshot compression on in the checkpoint and recovery sections
  --backend NAME      keyed state backend of every job: hashmap (default) or rocksdb
  --interval-ms MS    checkpoint interval (default 1000)
  --checkpoints N     checkpoints measured per state size and run (default 3)
  --settle-ms MS      how long a restored job is watched (default 2000)
  --skew-us US        sleep per batch of the slow channel (default 500)
  --skew-run-ms MS    length of a skew or back-pressure run (default 8000)
  --slow-sink-us US   back-pressure: the sink's sleep per batch (default 10000)
  --bp-credits N      back-pressure: batches in flight per channel (default 64)
  --aligned-timeout-ms MS  back-pressure: alignment timeout of the switching row (default 100)
  --batch-size N      records per batch, throughput and skew jobs (default 1024)
  --credits N         batches in flight per channel, same jobs (default 8)
  --out DIR           report.md, weir_bench.svg, results.json (default target/weir-bench)
  --work DIR          scratch space for checkpoints (default: the temp dir)
  --smoke             tiny sizes: every path in seconds
  --in-process        run measurements in this process (no per-configuration peak RSS)
Numbers take k/M suffixes and underscores.";

fn number(flag: &str, v: &str) -> Result<u64, String> {
    let v = v.replace('_', "");
    let (digits, scale) = match v.chars().last() {
        Some('k' | 'K') => (&v[..v.len() - 1], 1_000),
        Some('M' | 'm') => (&v[..v.len() - 1], 1_000_000),
        _ => (v.as_str(), 1),
    };
    digits
        .parse::<u64>()
        .map(|n| n * scale)
        .map_err(|_| format!("{flag}: `{v}` is not a number"))
}

struct Cli {
    opts: Options,
    work: PathBuf,
    in_process: bool,
    child: Option<(Task, PathBuf)>,
}

fn parse(args: Vec<String>) -> Result<Cli, String> {
    let default_out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/weir-bench");
    let mut opts = Options::full(default_out);
    let mut work = std::env::temp_dir().join(format!("weir-bench-{}", std::process::id()));
    let (mut in_process, mut child_task, mut scratch) = (false, None, None);
    if args.iter().any(|a| a == "--smoke") {
        opts = Options::smoke(opts.out.clone());
    }
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--bench" | "--smoke" => {}
            "--help" | "-h" => return Err(HELP.into()),
            "--records" => opts.records = number(&flag, &value()?)?,
            "--keys" => opts.keys = number(&flag, &value()?)?,
            "--runs" => opts.runs = number(&flag, &value()?)?.max(1) as usize,
            "--sections" => opts.sections = Sections::parse(&value()?)?,
            "--state-keys" => {
                opts.state_keys = value()?
                    .split(',')
                    .map(|k| number(&flag, k.trim()))
                    .collect::<Result<_, _>>()?
            }
            "--compression" => opts.compression = true,
            "--backend" => {
                let name = value()?;
                name.parse::<weir_actors::weir::state::StateBackendKind>()
                    .map_err(|e| e.to_string())?;
                // Read by every job (harness::job::backend), in this process and its children.
                std::env::set_var("WEIR_BENCH_BACKEND", name);
            }
            "--interval-ms" => opts.interval_ms = number(&flag, &value()?)?,
            "--checkpoints" => {
                opts.checkpoints_per_size = number(&flag, &value()?)?.max(1) as usize
            }
            "--settle-ms" => opts.settle_ms = number(&flag, &value()?)?,
            "--skew-us" => opts.skew_micros_per_batch = number(&flag, &value()?)?,
            "--skew-run-ms" => opts.skew_run_ms = number(&flag, &value()?)?,
            "--slow-sink-us" => opts.slow_sink_micros = number(&flag, &value()?)?,
            "--bp-credits" => opts.backpressure_credits = number(&flag, &value()?)? as u32,
            "--aligned-timeout-ms" => opts.aligned_timeout_ms = number(&flag, &value()?)?,
            "--batch-size" => opts.batch_size = Some(number(&flag, &value()?)? as usize),
            "--credits" => opts.credits = Some(number(&flag, &value()?)? as u32),
            "--out" => opts.out = PathBuf::from(value()?),
            "--work" => work = PathBuf::from(value()?),
            "--in-process" => in_process = true,
            "--child" => {
                let json = value()?;
                child_task =
                    Some(serde_json::from_str::<Task>(&json).map_err(|e| format!("--child: {e}"))?)
            }
            "--scratch" => scratch = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown flag `{other}`\n\n{HELP}")),
        }
    }
    let child = match (child_task, scratch) {
        (Some(t), Some(s)) => Some((t, s)),
        (None, None) => None,
        _ => return Err("--child and --scratch go together".into()),
    };
    Ok(Cli {
        opts,
        work,
        in_process,
        child,
    })
}

/// Runs `task` in a child process of this binary.
fn in_child(task: &Task, scratch: &Path) -> Result<Outcome, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let json = serde_json::to_string(task).map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .arg("--child")
        .arg(json)
        .arg("--scratch")
        .arg(scratch)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start a child process: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(RESULT_PREFIX))
        .ok_or_else(|| {
            format!(
                "{}: the child process ended {} without a result",
                task.label(),
                out.status
            )
        })?;
    serde_json::from_str::<Result<Outcome, String>>(line)
        .map_err(|e| format!("{}: {e}", task.label()))?
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "{date}; {cores} cores, {cpu}; Linux {}; release build",
        kernel.trim()
    )
}

fn main() {
    let cli = match parse(std::env::args().skip(1).collect()) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    if let Some((task, scratch)) = cli.child {
        let result = plan::run_task(&task, &scratch);
        println!(
            "{RESULT_PREFIX}{}",
            serde_json::to_string(&result).expect("results serialise")
        );
        std::process::exit(if result.is_ok() { 0 } else { 1 });
    }
    if let Err(e) = run(&cli) {
        eprintln!("weir bench failed: {e}");
        std::process::exit(1);
    }
}

fn run(cli: &Cli) -> Result<(), String> {
    let opts = &cli.opts;
    std::fs::create_dir_all(&cli.work).map_err(|e| format!("{}: {e}", cli.work.display()))?;
    let started = Instant::now();
    let mut n = 0;
    let exec = |task: &Task, scratch: &Path| {
        n += 1;
        let t = Instant::now();
        let at = started.elapsed().as_secs_f64();
        let result = if cli.in_process {
            plan::run_task(task, scratch)
        } else {
            in_child(task, scratch)
        };
        let took = t.elapsed().as_secs_f64();
        match &result {
            Ok(o) => eprintln!(
                "[{n:>3} {at:>5.0} s] {}: {} ({took:.1} s)",
                task.label(),
                o.brief()
            ),
            Err(e) => eprintln!("[{n:>3} {at:>5.0} s] {}: FAILED: {e}", task.label()),
        }
        result
    };
    let results = plan::execute(opts, &cli.work, exec);
    let _ = std::fs::remove_dir_all(&cli.work);
    let results = results?;
    let machine = machine();
    let report = harness::report::markdown(opts, &results, &machine);
    let caption = format!(
        "weir_bench: {machine}; medians, whiskers min–max over {} runs",
        opts.runs
    );
    let svg = harness::svg::plot(&results, &caption);
    std::fs::create_dir_all(&opts.out).map_err(|e| format!("{}: {e}", opts.out.display()))?;
    let write = |name: &str, body: &str| {
        let path = opts.out.join(name);
        std::fs::write(&path, body).map_err(|e| format!("{}: {e}", path.display()))
    };
    write("report.md", &report)?;
    write("weir_bench.svg", &svg)?;
    let json = serde_json::json!({ "machine": machine, "options": opts, "results": results });
    write(
        "results.json",
        &serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?,
    )?;
    println!("{report}");
    eprintln!(
        "wrote {}/{{report.md,weir_bench.svg,results.json}} in {:.0} s",
        opts.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
