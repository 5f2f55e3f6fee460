//! Process kills prove exactly-once: the `weir` CLI is SIGKILLed at random moments of a
//! checkpointing job with the exactly-once file sink, restored each time with `weir run JOB -s
//! <newest complete checkpoint>` (found offline with `weir checkpoints DIR --json`; from scratch
//! when there is none yet), often at another parallelism (`-p`), and after the last kill of an
//! episode the job runs to the end. Its committed output must then equal the failure-free
//! output line for line: per key every running count and running sum exactly once. After every
//! kill the committed output so far must already be free of duplicates and strangers.
//!
//! Kill moments: during startup or restore (before `Job … is RUNNING`), early (within 150 ms
//! of RUNNING: before the run's first checkpoint), right after the run's k-th checkpoint
//! completes (seen through the REST API, or as its `_metadata` on disk: between completion
//! and the sinks' commit), uniformly over the estimated rest of the job, and near its end.
//! The first rounds cover each moment once; later ones are drawn at random. A run that logs a
//! job failure fails the test at once (nothing here makes a job fail; a failing restore would
//! otherwise restart forever).
//!
//! The job's keys are skewed on purpose: both groups land on the same keyed subtask at
//! parallelism 2 and 3, so sink subtasks hold unequal shares of the sink's state, which a
//! restore at another parallelism deals out anew (as with real skewed keys).
//!
//! `WEIR_KILLS=N` (default 6) kills, `WEIR_KILL_SEED=S` replays a seed's decisions (moments,
//! delays, parallelism; the engine's timing still varies):
//! `WEIR_KILLS=100 cargo test --release -p weir-actors --test process_kills -- --nocapture`.

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use common::process::{stderr, stdout, weir, NextLine, Running, WAIT};
use common::Rng;
use serde_json::{json, Value};
use weir_actors::cli::http::request;
use weir_actors::weir::connectors::file_sink::committed_lines;

/// Keys of the running count and sum (`g0`, `g1`): one rate-limited sequence source per
/// group.
const GROUPS: u64 = 2;
const PER_GROUP: u64 = 3_000;
const GROUP_RATE: u64 = 1_000;
/// A sequence at the default parallelism, keyed by value: each number counted once.
const WIDE: u64 = 9_000;
const WIDE_RATE: u64 = 3_000;
/// Event-time tumbling windows per group over `value` (every source's watermark follows its
/// `value`): each holds `WINDOW` numbers. Group 1's windows wait in state (with their timers)
/// for the end of group 0's input, across kills.
const WINDOW: u64 = 100;
const INTERVAL: Duration = Duration::from_millis(100);
const DEFAULT_KILLS: usize = 6;
const SIGKILL: i32 = 9;

fn group_from(g: u64) -> u64 {
    (g + 1) * 1_000_000
}

/// The job file: per group `seq-g` (parallelism 1, so each key's records arrive in order and
/// its running sums are deterministic) → `tag-g` (adds `group`); the groups → `counts`,
/// `sums` and event-time `windows` keyed by group → exactly-once file sink `out` (few keys: some of its subtasks may get
/// nothing, so their share of the sink's state differs); `wide` → `once` keyed by value →
/// exactly-once file sink `out-wide`. Checkpoints every 100 ms into `dir/checkpoints`.
/// `rated: false` runs flat out.
fn write_job(dir: &Path, rated: bool) -> PathBuf {
    let rate = |r: u64| {
        if rated {
            format!("    rate: {r}\n")
        } else {
            String::new()
        }
    };
    let mut text = format!(
        "name: process-kills
config:
  execution.checkpointing.interval: {} ms
  execution.checkpointing.dir: {}/checkpoints
  execution.checkpointing.num-retained: 3
  execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION
  parallelism.default: 2
  rest.port: 0
pipeline:
",
        INTERVAL.as_millis(),
        dir.display()
    );
    let tags: Vec<String> = (0..GROUPS).map(|g| format!("tag-{g}")).collect();
    for g in 0..GROUPS {
        let from = group_from(g);
        write!(
            text,
            "  - source: sequence\n    uid: seq-{g}\n    from: {from}\n    to: {to}\n{rate}    \
             parallelism: 1\n  - operator: map\n    uid: tag-{g}\n    set: {{group: g{g}}}\n    \
             parallelism: 1\n",
            to = from + PER_GROUP - 1,
            rate = rate(GROUP_RATE),
        )
        .unwrap();
    }
    let tags = tags.join(", ");
    write!(
        text,
        "  - operator: count\n    uid: counts\n    input: [{tags}]\n    key-by: group
  - operator: sum\n    uid: sums\n    field: value\n    input: [{tags}]\n    key-by: group
  - operator: window\n    uid: windows\n    size: {WINDOW} ms\n    time-field: value\n    input: [{tags}]\n    key-by: group
  - source: sequence\n    uid: wide\n    to: {wide}\n{rate}  - operator: count\n    uid: once\n    key-by: value
  - sink: file\n    uid: out-wide\n    path: {wide_out}
  - sink: file\n    uid: out\n    input: [counts, sums, windows]\n    path: {out}\n",
        wide = WIDE - 1,
        rate = rate(WIDE_RATE),
        wide_out = dir.join("out-wide").display(),
        out = dir.join("out").display(),
    )
    .unwrap();
    let job = dir.join(if rated {
        "job.yaml"
    } else {
        "job-flat-out.yaml"
    });
    std::fs::write(&job, text).unwrap();
    std::fs::write(dir.join("weir.yaml"), "{}\n").unwrap();
    job
}

/// Committed lines (as canonical JSON) and how often each was committed.
type Lines = BTreeMap<String, u32>;

fn canonical(line: &str) -> String {
    serde_json::from_str::<Value>(line)
        .map_or_else(|_| format!("(not JSON) {line}"), |v| v.to_string())
}

/// The sinks' hidden `.pending` files: staged for a checkpoint, not committed (yet).
fn staged_files(dir: &Path) -> usize {
    [dir.join("out"), dir.join("out-wide")]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".pending"))
        .count()
}

/// The committed output of both sinks.
fn committed(dir: &Path) -> Lines {
    let mut lines = Lines::new();
    for out in [dir.join("out"), dir.join("out-wide")] {
        if !out.exists() {
            continue;
        }
        for l in committed_lines(&out).expect("committed output readable") {
            *lines.entry(canonical(&l)).or_default() += 1;
        }
    }
    lines
}

/// The job's output by definition: per group g, counts 1..=PER_GROUP and the running sums of
/// its numbers in order; per wide number, a count of 1.
fn by_definition() -> Lines {
    let mut lines = Lines::new();
    for g in 0..GROUPS {
        let key = format!("g{g}");
        let mut sum = 0;
        for i in 0..PER_GROUP {
            sum += group_from(g) + i;
            lines.insert(json!({"key": key, "count": i + 1}).to_string(), 1);
            lines.insert(json!({"key": key, "sum": sum}).to_string(), 1);
        }
        for start in (group_from(g)..group_from(g) + PER_GROUP).step_by(WINDOW as usize) {
            let window = json!({"key": key, "window_start": start, "window_end": start + WINDOW,
                "count": WINDOW.min(group_from(g) + PER_GROUP - start)});
            lines.insert(window.to_string(), 1);
        }
    }
    for n in 0..WIDE {
        lines.insert(json!({"key": n, "count": 1}).to_string(), 1);
    }
    lines
}

/// How `got` differs from `want`.
#[derive(Default)]
struct Diff {
    /// Line, times committed, times wanted.
    duplicated: Vec<(String, u32, u32)>,
    unexpected: Vec<(String, u32)>,
    missing: Vec<(String, u32, u32)>,
}

impl Diff {
    fn of(want: &Lines, got: &Lines) -> Self {
        let mut d = Diff::default();
        for (line, &n) in got {
            match want.get(line) {
                None => d.unexpected.push((line.clone(), n)),
                Some(&w) if n > w => d.duplicated.push((line.clone(), n, w)),
                _ => {}
            }
        }
        for (line, &w) in want {
            let n = got.get(line).copied().unwrap_or(0);
            if n < w {
                d.missing.push((line.clone(), n, w));
            }
        }
        d
    }

    /// Nothing committed twice and nothing that is not in the output (a part may be missing).
    fn is_subset(&self) -> bool {
        self.duplicated.is_empty() && self.unexpected.is_empty()
    }

    fn is_empty(&self) -> bool {
        self.is_subset() && self.missing.is_empty()
    }

    /// The differences, the missing lines too if `missing`.
    fn describe(&self, missing: bool) -> String {
        let mut s = String::new();
        let show = |s: &mut String, what: &str, items: Vec<String>| {
            if !items.is_empty() {
                let n = items.len();
                let first: Vec<String> = items.into_iter().take(8).collect();
                let _ = writeln!(s, "  {n} {what}, e.g. {}", first.join("; "));
            }
        };
        show(
            &mut s,
            "lines committed more often than in the failure-free output",
            self.duplicated
                .iter()
                .map(|(l, n, w)| format!("{l} {n}x (want {w})"))
                .collect(),
        );
        show(
            &mut s,
            "lines not in the failure-free output",
            self.unexpected
                .iter()
                .map(|(l, n)| format!("{l} {n}x"))
                .collect(),
        );
        if missing {
            show(
                &mut s,
                "lines missing",
                self.missing
                    .iter()
                    .map(|(l, n, w)| format!("{l} {n}x (want {w})"))
                    .collect(),
            );
        }
        s
    }
}

/// A complete checkpoint as `weir checkpoints --json` lists it.
#[derive(Clone, Debug)]
struct Checkpoint {
    path: String,
    id: u64,
    completed_at: u64,
    job: String,
    /// Of the keyed `counts` operator (follows `-p`).
    parallelism: u64,
}

#[derive(Default)]
struct Listing {
    complete: Vec<Checkpoint>,
    incomplete: usize,
    damaged: Vec<String>,
}

impl Listing {
    /// `weir checkpoints DIR/checkpoints --json`; empty before the directory exists.
    fn read(dir: &Path) -> Result<Self, String> {
        let checkpoints = dir.join("checkpoints");
        if !checkpoints.exists() {
            return Ok(Self::default());
        }
        let o = weir(
            dir,
            &["checkpoints", &checkpoints.display().to_string(), "--json"],
        );
        if o.status.code() != Some(0) {
            return Err(format!(
                "`weir checkpoints --json` exited with {}: {}{}",
                o.status,
                stdout(&o),
                stderr(&o)
            ));
        }
        let all: Value = serde_json::from_str(&stdout(&o)).map_err(|e| {
            format!(
                "`weir checkpoints --json` printed no JSON ({e}): {}",
                stdout(&o)
            )
        })?;
        let mut listing = Self::default();
        for l in all
            .as_array()
            .ok_or("`weir checkpoints --json`: not an array")?
        {
            match l["status"].as_str() {
                Some("COMPLETE") if l["kind"] == "CHECKPOINT" => {
                    let parallelism = l["operators"]
                        .as_array()
                        .and_then(|ops| ops.iter().find(|op| op["uid"] == "counts"))
                        .and_then(|op| op["parallelism"].as_u64())
                        .ok_or_else(|| format!("no `counts` operator in {l}"))?;
                    listing.complete.push(Checkpoint {
                        path: l["path"].as_str().ok_or("no path")?.to_owned(),
                        id: l["id"].as_u64().ok_or("no id")?,
                        completed_at: l["completion_timestamp"].as_u64().ok_or("no time")?,
                        job: l["job_id"].as_str().unwrap_or("").to_owned(),
                        parallelism,
                    });
                }
                Some("INCOMPLETE") => listing.incomplete += 1,
                Some("DAMAGED") => listing.damaged.push(format!(
                    "{}: {}",
                    l["path"].as_str().unwrap_or("?"),
                    l["reason"].as_str().unwrap_or("?")
                )),
                _ => return Err(format!("unexpected listing entry {l}")),
            }
        }
        Ok(listing)
    }

    /// The newest complete checkpoint: the last to complete (ids break ties).
    fn newest(&self) -> Option<&Checkpoint> {
        self.complete.iter().max_by_key(|c| (c.completed_at, c.id))
    }
}

/// When a round kills its run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Moment {
    /// Before `Job … is RUNNING`: during startup, or during the restore when there is one.
    Startup,
    /// Within 150 ms of RUNNING: before or around the run's first checkpoint.
    Early,
    /// As soon as the REST API reports the run's k-th completed checkpoint (k in 1..=5).
    AfterCheckpoint,
    /// As soon as the `_metadata` of the run's k-th checkpoint is on disk (k in 1..=5): in
    /// the window between a checkpoint's completion and the sinks' commit, which REST polling
    /// mostly misses.
    CommitWindow,
    /// Uniformly over the estimated rest of the job (x 1.1).
    Uniform,
    /// In the last fifth of the estimated rest of the job.
    NearEnd,
}

fn unit(rng: &mut Rng) -> f64 {
    (rng.next() >> 11) as f64 / (1u64 << 53) as f64
}

#[derive(Default)]
struct Stats {
    rounds: usize,
    kills: usize,
    episodes: usize,
    during_startup: usize,
    during_restore: usize,
    before_first_checkpoint: usize,
    mid_run: usize,
    near_end: usize,
    after_checkpoint: usize,
    restores: usize,
    rescaled: usize,
    finished_before_kill: usize,
    incomplete_seen: usize,
    damaged_seen: usize,
}

/// When a run started, began its restore and said RUNNING.
struct Timeline {
    spawned: Instant,
    restoring_at: Option<Instant>,
    running_at: Option<Instant>,
}

impl Timeline {
    fn saw(&mut self, line: &str) {
        if line.starts_with("Restoring from ") {
            self.restoring_at = Some(Instant::now());
        }
        if line.starts_with("Job ") && line.contains(" is RUNNING") {
            self.running_at = Some(Instant::now());
        }
    }

    /// Reads stdout until `until` (or RUNNING, if `stop_at_running`); false when stdout
    /// closed: the process is ending. Nothing here makes a job fail, so a job failure (the
    /// job restarts, which may never end) is an error at once.
    fn read_until(
        &mut self,
        run: &mut Running,
        until: Instant,
        stop_at_running: bool,
    ) -> Result<bool, String> {
        loop {
            job_failed(run)?;
            let slice = until.min(Instant::now() + Duration::from_millis(50));
            match run.next_line_until(slice) {
                NextLine::Line(l) => {
                    self.saw(&l);
                    if stop_at_running && self.running_at.is_some() {
                        return Ok(true);
                    }
                }
                NextLine::Timeout if Instant::now() >= until => return Ok(true),
                NextLine::Timeout => {}
                NextLine::Closed => return Ok(false),
            }
        }
    }
}

/// An error if the run logged a job failure (a failed subtask restarts the job).
fn job_failed(run: &Running) -> Result<(), String> {
    let errors = run.stderr_text();
    match errors
        .lines()
        .find(|l| l.contains("job failure") || l.contains("subtask failed"))
    {
        Some(l) => Err(format!("the job failed: {l}")),
        None => Ok(()),
    }
}

/// Polls the run's checkpoint directory until a checkpoint with id `from_id + k` or more has
/// its `_metadata` (ids continue after the restored one); false when the process ended first.
fn await_metadata(
    run: &mut Running,
    t: &mut Timeline,
    dir: &Path,
    from_id: Option<u64>,
    k: u64,
) -> Result<bool, String> {
    let deadline = Instant::now() + WAIT;
    let job_dir = dir.join("checkpoints").join(&run.job);
    let want = from_id.unwrap_or(0) + k;
    let exact = job_dir.join(format!("chk-{want}")).join("_metadata");
    let mut polls = 0u32;
    loop {
        // The expected id at every poll (a busy poll: the window is short), any later one
        // (ids may skip) now and then.
        let done = exact.exists()
            || polls.is_multiple_of(64)
                && std::fs::read_dir(&job_dir).is_ok_and(|entries| {
                    entries.flatten().any(|e| {
                        let name = e.file_name();
                        let id = name.to_str().and_then(|n| n.strip_prefix("chk-"));
                        id.and_then(|id| id.parse::<u64>().ok())
                            .is_some_and(|id| id >= want && e.path().join("_metadata").exists())
                    })
                });
        if done {
            return Ok(true);
        }
        polls += 1;
        if polls.is_multiple_of(4096) {
            if run.child.try_wait().map_err(|e| e.to_string())?.is_some() {
                return Ok(false);
            }
            t.read_until(run, Instant::now(), false)?;
            if Instant::now() > deadline {
                return Err(format!("no checkpoint {want} in 90 s"));
            }
        }
    }
}

/// How a run ended.
enum Ended {
    Killed,
    /// It exited 0 after `Job … FINISHED`.
    Finished,
}

struct Killer {
    seed: u64,
    kills: usize,
    rng: Rng,
    forced: VecDeque<Moment>,
    startup_retries: usize,
    /// The last kill was a `CommitWindow` one.
    commit_window_kill: bool,
    /// Shortest spawn → RUNNING and `Restoring from` → RUNNING seen so far.
    startup: Duration,
    restore: Duration,
    stats: Stats,
    history: Vec<String>,
    /// Runs started so far: every other one runs with unaligned checkpoints, every third one
    /// with the rocksdb backend.
    runs: usize,
}

impl Killer {
    fn new(seed: u64, kills: usize) -> Self {
        // splitmix64, so that any seed (0 too) gives a good xorshift state
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let mut rng = Rng((z ^ (z >> 31)) | 1);
        let mut rest = vec![
            Moment::Early,
            Moment::NearEnd,
            Moment::Uniform,
            Moment::AfterCheckpoint,
        ];
        for i in (1..rest.len()).rev() {
            rest.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let mut forced = VecDeque::from([Moment::CommitWindow, Moment::Startup]);
        forced.extend(rest);
        Self {
            seed,
            kills,
            rng,
            forced,
            startup_retries: 0,
            commit_window_kill: false,
            startup: Duration::from_millis(40),
            restore: Duration::from_millis(20),
            stats: Stats::default(),
            history: Vec::new(),
            runs: 0,
        }
    }

    fn draw_moment(&mut self, can_restore: bool) -> Moment {
        let drawn = match self.rng.below(100) {
            0..15 => Moment::Startup,
            15..30 => Moment::Early,
            30..40 => Moment::AfterCheckpoint,
            40..55 => Moment::CommitWindow,
            55..85 => Moment::Uniform,
            _ => Moment::NearEnd,
        };
        // The forced moments first, each where it applies (a restore needs a checkpoint).
        let applies = |m: &Moment| *m != Moment::Startup || can_restore;
        match self.forced.iter().position(applies) {
            Some(i) => self.forced.remove(i).unwrap(),
            None => drawn,
        }
    }

    /// One episode: fresh directories, kills until `budget` is used up (or the job finishes
    /// first), then a run to the end; checks the committed output after every run.
    fn episode(&mut self, e: usize, dir: &Path, budget: usize, want: &Lines) -> Result<(), String> {
        self.stats.episodes += 1;
        let job = write_job(dir, true);
        let mut killed = 0;
        loop {
            let moment = (killed < budget).then(|| {
                let can_restore = Listing::read(dir).is_ok_and(|l| l.newest().is_some());
                self.draw_moment(can_restore)
            });
            let label = format!("episode {e} round {}", self.stats.rounds + 1);
            let ended = self.round(&label, dir, &job, moment, want)?;
            self.stats.rounds += 1;
            match ended {
                Ended::Killed => killed += 1,
                Ended::Finished => {
                    if moment.is_some() {
                        self.stats.finished_before_kill += 1;
                    }
                    let got = committed(dir);
                    let d = Diff::of(want, &got);
                    if !d.is_empty() {
                        return Err(format!(
                            "{label}: the finished job's committed output differs from the \
                             failure-free output:\n{}",
                            d.describe(true)
                        ));
                    }
                    self.history
                        .push(format!("{label}: committed output == failure-free output"));
                    return Ok(());
                }
            }
        }
    }

    /// One run: restore from the newest complete checkpoint (if any), maybe at another
    /// parallelism; kill it at `moment`, or (None) let it finish.
    fn round(
        &mut self,
        label: &str,
        dir: &Path,
        job: &Path,
        moment: Option<Moment>,
        want: &Lines,
    ) -> Result<Ended, String> {
        let listing = Listing::read(dir)?;
        self.stats.incomplete_seen = self.stats.incomplete_seen.max(listing.incomplete);
        self.stats.damaged_seen = self.stats.damaged_seen.max(listing.damaged.len());
        let from = listing.newest().cloned();

        // Every draw happens whatever the branch, so a seed replays the same decisions.
        let p_draw = self.rng.below(4);
        let frac = unit(&mut self.rng);
        let k_draw = self.rng.below(5);
        let parallelism = match &from {
            // The first restore of the test, and every restore after a kill in the commit
            // window (staged files not yet committed get redistributed), rescale.
            Some(c) if self.stats.rescaled == 0 || self.commit_window_kill => {
                Some((c.parallelism + p_draw % 2) % 3 + 1)
            }
            _ => (p_draw > 0).then_some(p_draw),
        };
        let effective = parallelism.unwrap_or(2);
        let rescaled = from.as_ref().is_some_and(|c| c.parallelism != effective);

        // The rest of the job, estimated from the committed output.
        let before = committed(dir);
        let rest = self.remaining(&before);

        let config = dir.join("weir.yaml").display().to_string();
        let job_arg = job.display().to_string();
        let p_arg = parallelism.map(|p| p.to_string());
        let mut args: Vec<&str> = vec![&job_arg, "--config", &config];
        if let Some(c) = &from {
            args.extend(["-s", &c.path]);
        }
        if let Some(p) = &p_arg {
            args.extend(["-p", p]);
        }
        // Every other run takes unaligned checkpoints (a restore may switch either way: the
        // channel state of an unaligned checkpoint is replayed whatever the new run's mode).
        self.runs += 1;
        let unaligned = self.runs.is_multiple_of(2);
        if unaligned {
            args.extend(["-D", "execution.checkpointing.unaligned.enabled=true"]);
        }
        // Every third run keeps keyed state in RocksDB (restoring what a hashmap run saved,
        // and the other way round).
        let rocksdb = self.runs % 3 == 1;
        let local_dir = format!(
            "state.backend.rocksdb.localdir={}",
            dir.join("rocksdb").display()
        );
        if rocksdb {
            args.extend(["-D", "state.backend.type=rocksdb", "-D", &local_dir]);
        }
        let mut what = format!(
            "{label}: {} at p={effective}{}{}",
            from.as_ref().map_or("from scratch".to_owned(), |c| format!(
                "restore chk-{} (p={})",
                c.id, c.parallelism
            )),
            if parallelism.is_some() { " (-p)" } else { "" },
            if unaligned { ", unaligned" } else { "" },
        );
        if rocksdb {
            what.push_str(", rocksdb");
        }
        if let Some(m) = moment {
            let _ = write!(what, ", kill {m:?}");
        } else {
            what.push_str(", run to the end");
        }
        println!("{what}");
        self.history.push(what.clone());
        let fail = |why: String, run: Option<&Running>| {
            let mut s = format!("{what}: {why}");
            if let Some(run) = run {
                let _ = write!(
                    s,
                    "\n  its stdout: {:?}\n  its stderr: {}",
                    run.seen,
                    run.stderr_text().trim_end()
                );
            }
            s
        };

        let mut t = Timeline {
            spawned: Instant::now(),
            restoring_at: None,
            running_at: None,
        };
        let mut run = Running::spawn(dir, &args);
        let (alive, kill_delay) = match self.drive(
            &mut run,
            &mut t,
            moment,
            dir,
            from.as_ref().map(|c| c.id),
            rest,
            frac,
            k_draw,
        ) {
            Ok(r) => r,
            Err(why) => {
                let _ = run.child.kill();
                run.wait_end();
                return Err(fail(why, Some(&run)));
            }
        };
        let killed_at = Instant::now();
        if alive {
            run.child
                .kill()
                .map_err(|e| fail(format!("cannot kill: {e}"), Some(&run)))?;
        }
        let status: ExitStatus = run.wait_end();
        job_failed(&run).map_err(|why| fail(why, Some(&run)))?;
        // Startup times, to aim later startup kills.
        if let Some(r) = t.running_at {
            self.startup = self.startup.min(r - t.spawned);
            if let Some(s) = t.restoring_at {
                self.restore = self.restore.min(r.saturating_duration_since(s));
            }
        }
        if status.signal() != Some(SIGKILL) {
            // It ended by itself: only a FINISHED job is fine.
            let finished =
                status.code() == Some(0) && run.seen.iter().any(|l| l.contains(" FINISHED"));
            if !finished {
                return Err(fail(
                    format!("the run ended with {status} instead of FINISHED"),
                    Some(&run),
                ));
            }
            if let Some(c) = &from {
                let said = format!("Restoring from {}", c.path);
                if !run.seen.iter().any(|l| l.starts_with(&said)) {
                    return Err(fail(format!("no `{said}` line"), Some(&run)));
                }
            }
            if from.is_some() {
                self.stats.restores += 1;
                self.stats.rescaled += usize::from(rescaled);
            }
            self.history.push("  -> FINISHED".to_owned());
            println!("  -> FINISHED");
            return Ok(Ended::Finished);
        }

        // Killed: classify the moment, then check the committed output so far.
        self.stats.kills += 1;
        if moment == Some(Moment::CommitWindow) {
            self.commit_window_kill = true;
        } else if t.running_at.is_some() {
            self.commit_window_kill = false;
        }
        if from.is_some() {
            self.stats.restores += 1;
            self.stats.rescaled += usize::from(rescaled);
        }
        let after = Listing::read(dir).map_err(|e| fail(e, None))?;
        let own = after
            .complete
            .iter()
            .filter(|c| !run.job.is_empty() && c.job == run.job)
            .count();
        let class = match t.running_at {
            None if from.is_some() => {
                self.stats.during_restore += 1;
                "during the restore (before RUNNING)"
            }
            None => {
                self.stats.during_startup += 1;
                "during startup (before RUNNING)"
            }
            Some(_) if own == 0 => {
                self.stats.before_first_checkpoint += 1;
                "before the run's first checkpoint"
            }
            Some(_) => {
                self.stats.mid_run += 1;
                "mid-run (after a checkpoint of the run)"
            }
        };
        let near_end = t
            .running_at
            .is_some_and(|r| killed_at.saturating_duration_since(r) >= rest.mul_f64(0.75));
        if near_end {
            self.stats.near_end += 1;
        }
        if matches!(moment, Some(Moment::AfterCheckpoint | Moment::CommitWindow)) {
            self.stats.after_checkpoint += 1;
        }
        if moment == Some(Moment::Startup) && t.running_at.is_some() && self.startup_retries < 3 {
            // aimed at the startup but too late: try again in a later round
            self.startup_retries += 1;
            self.forced.push_front(Moment::Startup);
        }
        let got = committed(dir);
        let d = Diff::of(want, &got);
        let total: u32 = got.values().sum();
        let staged = staged_files(dir);
        let note = format!(
            "  -> killed {kill_delay}: {class}{}; the run completed {own} retained checkpoint(s); \
             {total} lines committed, {staged} staged files not committed",
            if near_end { ", near the end" } else { "" },
        );
        println!("{note}");
        self.history.push(note);
        if !d.is_subset() {
            return Err(format!(
                "{what}: after the kill the committed output is not part of the failure-free \
                 output:\n{}",
                d.describe(false)
            ));
        }
        Ok(Ended::Killed)
    }

    /// Runs `run` up to the moment to kill it: returns whether it is still alive then (false:
    /// it ended by itself) and when the kill came.
    #[allow(clippy::too_many_arguments)]
    fn drive(
        &mut self,
        run: &mut Running,
        t: &mut Timeline,
        moment: Option<Moment>,
        dir: &Path,
        from_id: Option<u64>,
        rest: Duration,
        frac: f64,
        k_draw: u64,
    ) -> Result<(bool, String), String> {
        let Some(moment) = moment else {
            let until = Instant::now() + WAIT + rest;
            if t.read_until(run, until, false)? {
                return Err(format!(
                    "still running {:?} after start: a hang",
                    WAIT + rest
                ));
            }
            return Ok((false, String::new()));
        };
        let restoring = from_id.is_some();
        if moment == Moment::Startup {
            // During the restore (after `Restoring from`) or, without one, during startup:
            // before RUNNING, as far as the shortest startup seen so far lets us aim.
            let start = if restoring {
                let until = Instant::now() + WAIT;
                while t.restoring_at.is_none() {
                    job_failed(run)?;
                    match run.next_line_until(until) {
                        NextLine::Line(l) => t.saw(&l),
                        NextLine::Timeout => return Err("no `Restoring from` line".into()),
                        NextLine::Closed => return Ok((false, String::new())),
                    }
                }
                t.restoring_at.unwrap()
            } else {
                t.spawned
            };
            let span = if restoring {
                self.restore
            } else {
                self.startup
            };
            let delay = span.mul_f64(frac);
            let alive = t.read_until(run, start + delay, true)?;
            let after = if restoring {
                "`Restoring from`"
            } else {
                "spawn"
            };
            return Ok((alive, format!("{} ms after {after}", delay.as_millis())));
        }
        if !t.read_until(run, Instant::now() + WAIT, true)? {
            return Ok((false, String::new()));
        }
        let Some(running) = t.running_at else {
            return Err("not RUNNING after 90 s".into());
        };
        let possible = (rest.as_millis() / INTERVAL.as_millis()).clamp(1, 5) as u64;
        let k = 1 + k_draw % possible;
        if moment == Moment::AfterCheckpoint {
            let alive = self.await_checkpoints(run, t, k)?;
            return Ok((
                alive,
                format!("once the REST API said checkpoint {k} of the run completed"),
            ));
        }
        if moment == Moment::CommitWindow {
            let alive = await_metadata(run, t, dir, from_id, k)?;
            return Ok((
                alive,
                format!("once `_metadata` of checkpoint {k} of the run was on disk"),
            ));
        }
        let delay = match moment {
            Moment::Early => Duration::from_millis(150).mul_f64(frac),
            Moment::Uniform => rest.mul_f64(1.1 * frac),
            _ => rest.mul_f64(0.8 + 0.2 * frac),
        };
        let alive = t.read_until(run, running + delay, false)?;
        Ok((
            alive,
            format!(
                "{} ms after RUNNING (~{} ms of the job left)",
                delay.as_millis(),
                rest.as_millis()
            ),
        ))
    }

    /// Polls the REST API until the run has completed `k` checkpoints; false when the process
    /// ended first.
    fn await_checkpoints(
        &self,
        run: &mut Running,
        t: &mut Timeline,
        k: u64,
    ) -> Result<bool, String> {
        let deadline = Instant::now() + WAIT;
        let path = format!("/jobs/{}/checkpoints", run.job);
        loop {
            if run.child.try_wait().map_err(|e| e.to_string())?.is_some() {
                return Ok(false);
            }
            t.read_until(run, Instant::now(), false)?;
            if let Ok(r) = request(&run.addr, "GET", &path, None) {
                if r.body["counts"]["completed"].as_u64() >= Some(k) {
                    return Ok(true);
                }
            }
            if Instant::now() > deadline {
                return Err(format!("no {k} completed checkpoints in 90 s"));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The rest of the job at the sources' rates, from what is committed.
    fn remaining(&self, committed: &Lines) -> Duration {
        let mut counts = [0u64; GROUPS as usize];
        let mut wide = 0u64;
        for line in committed.keys() {
            let v: Value = serde_json::from_str(line).unwrap_or_default();
            match (&v["key"], v["count"].as_u64()) {
                (Value::String(g), Some(n)) => {
                    if let Some(i) = g.strip_prefix('g').and_then(|i| i.parse::<usize>().ok()) {
                        if i < counts.len() {
                            counts[i] = counts[i].max(n);
                        }
                    }
                }
                (Value::Number(_), Some(_)) => wide += 1,
                _ => {}
            }
        }
        let group_left = counts
            .iter()
            .map(|&n| PER_GROUP.saturating_sub(n))
            .max()
            .unwrap_or(0) as f64
            / GROUP_RATE as f64;
        let wide_left = WIDE.saturating_sub(wide) as f64 / WIDE_RATE as f64;
        Duration::from_secs_f64(group_left.max(wide_left))
    }

    fn summary(&self) -> String {
        let s = &self.stats;
        format!(
            "{} rounds passed: {} kills in {} episodes ({} during startup, {} during a restore, \
             {} before the run's first checkpoint, {} mid-run; {} near the end, {} right after a \
             checkpoint completed), {} restores ({} at another parallelism), {} runs finished \
             before their kill; at most {} incomplete and {} damaged checkpoints listed at once; \
             seed {}",
            s.rounds,
            s.kills,
            s.episodes,
            s.during_startup,
            s.during_restore,
            s.before_first_checkpoint,
            s.mid_run,
            s.near_end,
            s.after_checkpoint,
            s.restores,
            s.rescaled,
            s.finished_before_kill,
            s.incomplete_seen,
            s.damaged_seen,
            self.seed
        )
    }
}

/// The failure-free output: the job run flat out, once, to the end; it must be the output by
/// definition.
fn failure_free() -> Lines {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let job = write_job(dir, false).display().to_string();
    let config = dir.join("weir.yaml").display().to_string();
    let mut run = Running::spawn(dir, &[&job, "--config", &config]);
    let status = run.wait_end();
    assert_eq!(
        status.code(),
        Some(0),
        "the failure-free run: {:#?} {}",
        run.seen,
        run.stderr_text()
    );
    let got = committed(dir);
    let d = Diff::of(&by_definition(), &got);
    assert!(
        d.is_empty(),
        "the failure-free run's output is not the output by definition:\n{}",
        d.describe(true)
    );
    got
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
    })
}

#[test]
fn sigkill_at_random_moments_then_restore_is_exactly_once() {
    let seed = env_number("WEIR_KILL_SEED").unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        t.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)
    });
    let kills = env_number("WEIR_KILLS").map_or(DEFAULT_KILLS, |k| k as usize);
    println!(
        "process kills: seed {seed}, {kills} kills (replay: WEIR_KILL_SEED={seed} WEIR_KILLS={kills})"
    );
    let want = failure_free();
    let mut killer = Killer::new(seed, kills);
    let started = Instant::now();
    let mut e = 0;
    while killer.stats.kills < kills {
        e += 1;
        assert!(
            e <= 3 * kills + 5,
            "{e} episodes for {kills} kills: the job keeps finishing before its kill; {}",
            killer.summary()
        );
        let left = kills - killer.stats.kills;
        let budget = (2 + killer.rng.below(3) as usize).min(left);
        let dir = tempfile::tempdir().unwrap();
        if let Err(why) = killer.episode(e, dir.path(), budget, &want) {
            let kept = dir.keep();
            panic!(
                "process kills FAILED after {} rounds passed; seed {seed}\n{why}\n\nreplay: \
                 WEIR_KILL_SEED={seed} WEIR_KILLS={} cargo test -p weir-actors --test \
                 process_kills -- --nocapture\nthe episode's directory is kept: {}\nrounds so \
                 far:\n{}",
                killer.stats.rounds,
                killer.kills,
                kept.display(),
                killer.history.join("\n")
            );
        }
    }
    println!(
        "process kills: {} in {:.1} s",
        killer.summary(),
        started.elapsed().as_secs_f64()
    );
}
