//! The `weir` binary in child processes: one-off commands (`weir`), and a background
//! `weir run` ([`Running`]) whose stdout is read line by line and whose stderr is collected,
//! so a test can wait for a line, poll the REST API, kill the process at any moment and read
//! its outcome.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use weir_actors::cli::http::request;

pub const WEIR: &str = env!("CARGO_BIN_EXE_weir");
/// The longest wait for anything a `weir` process should do soon.
pub const WAIT: Duration = Duration::from_secs(90);

/// Runs `weir ARGS` in `dir` to the end.
pub fn weir(dir: &Path, args: &[&str]) -> Output {
    Command::new(WEIR)
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("weir runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// What [`Running::next_line_until`] saw.
#[derive(Debug, PartialEq, Eq)]
pub enum NextLine {
    Line(String),
    /// The deadline passed first.
    Timeout,
    /// stdout was closed: the process has ended (or is ending).
    Closed,
}

/// A `weir run` in the background, its stdout read line by line (every line read is kept in
/// `seen`), its stderr collected.
pub struct Running {
    pub child: Child,
    pub lines: Receiver<String>,
    pub seen: Vec<String>,
    /// From `REST API listening on http://ADDR`, once seen.
    pub addr: String,
    /// From `Job <id> is RUNNING`, once seen.
    pub job: String,
    errors: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl Running {
    /// Starts `weir run ARGS` in `dir` and returns at once.
    pub fn spawn(dir: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(WEIR)
            .arg("run")
            .args(args)
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("weir run starts");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let errors = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = errors.clone();
        let stderr_reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
            addr: String::new(),
            job: String::new(),
            errors,
            stderr_reader: Some(stderr_reader),
        }
    }

    /// Starts `weir run ARGS` in `dir` and waits until the job is RUNNING.
    pub fn start(dir: &Path, args: &[&str]) -> Self {
        let mut r = Self::spawn(dir, args);
        let listening = r.wait_line("REST API listening on http://");
        r.addr = listening
            .trim_start_matches("REST API listening on http://")
            .to_owned();
        let running = r.wait_line("Job ");
        assert!(running.contains(" is RUNNING"), "{running}");
        r.job = running.split_whitespace().nth(1).unwrap().to_owned();
        r
    }

    /// What the process wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        self.errors.lock().unwrap().clone()
    }

    /// The next stdout line (also kept in `seen`, and noted in `addr` / `job` if it names
    /// them), unless `deadline` passes first or stdout closes.
    pub fn next_line_until(&mut self, deadline: Instant) -> NextLine {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                if let Some(addr) = line.strip_prefix("REST API listening on http://") {
                    self.addr = addr.to_owned();
                }
                if line.starts_with("Job ") && line.contains(" is RUNNING") {
                    self.job = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                }
                self.seen.push(line.clone());
                NextLine::Line(line)
            }
            Err(RecvTimeoutError::Timeout) => NextLine::Timeout,
            Err(RecvTimeoutError::Disconnected) => NextLine::Closed,
        }
    }

    /// The next line that starts with `prefix` (bounded wait).
    pub fn wait_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no line `{prefix}...` ({e}); seen: {:#?}; stderr: {}",
                    self.seen,
                    self.stderr_text()
                ),
            }
        }
    }

    /// Polls the job's checkpoint statistics until `done` holds (bounded).
    pub fn wait_checkpoints(&self, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let r = request(
                &self.addr,
                "GET",
                &format!("/jobs/{}/checkpoints", self.job),
                None,
            )
            .expect("REST answers");
            if done(&r.body) {
                return r.body;
            }
            assert!(
                Instant::now() < deadline,
                "checkpoints never got there: {}",
                r.body
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit, then for the rest of its stdout (into `seen`) and
    /// stderr.
    pub fn wait_end(&mut self) -> ExitStatus {
        let status = self.child.wait().unwrap();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        status
    }

    /// Waits for the process to exit and returns its code and the rest of its output.
    pub fn finish(mut self) -> (i32, Vec<String>) {
        let status = self.wait_end();
        (status.code().unwrap_or(-1), self.seen)
    }
}
