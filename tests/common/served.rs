//! A job file's job served over REST from a thread of its own, for the REST tests; dropped,
//! the job is canceled and the thread ends.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use weir_actors::cli::http::{request, Response};
use weir_actors::rest::{RestServer, RestState};
use weir_actors::weir::config::TextFormat;
use weir_actors::weir::ids::JobId;
use weir_actors::weir::jobfile::{build, engine_config, JobSpec, LoadOptions, Registry};
use weir_actors::{submit, JobOptions};

/// A running job and the address of its REST server.
pub struct Served {
    pub addr: String,
    pub job: JobId,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs the YAML job file `text` (named `file` in errors) with an empty engine config in `dir`
/// and serves it on a free port.
pub fn serve(dir: &Path, file: &str, text: &str) -> Served {
    let spec = JobSpec::parse(text, TextFormat::Yaml, file).unwrap();
    let base = dir.join("weir.yaml");
    std::fs::write(&base, "{}\n").unwrap();
    let options = LoadOptions {
        base_config: Some(base),
        ..LoadOptions::default()
    };
    let (config, _) = engine_config(&spec, &options).unwrap();
    let job = build(&spec, &Registry::new(), &config).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<(SocketAddr, JobId)>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        actix::System::new().block_on(async move {
            let state = RestState::default();
            let server = RestServer::start(state.clone(), "127.0.0.1", 0).unwrap();
            let graph = job.graph;
            let handle = submit(graph.clone(), JobOptions::default()).unwrap();
            state.jobs.register(&handle, &graph);
            tx.send((server.local_addr(), handle.job_id)).unwrap();
            let _ = stop_rx.await;
            handle.cancel().await;
            server.stop().await;
        });
    });
    let (addr, job) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    Served {
        addr: addr.to_string(),
        job,
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

pub fn call(s: &Served, method: &str, path: &str, body: Option<Value>) -> Response {
    request(&s.addr, method, path, body.as_ref()).unwrap()
}

pub fn get(s: &Served, path: &str) -> Value {
    let r = call(s, "GET", path, None);
    assert_eq!(r.status, 200, "GET {path}: {:?}", r.body);
    r.body
}

/// Polls `path` until `done` holds for its body (bounded): an HTTP client can only ask again.
pub fn poll(s: &Served, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = get(s, path);
        if done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "GET {path} never got there: {body}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
