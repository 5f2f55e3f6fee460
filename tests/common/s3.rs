//! A real S3-compatible server for the tests: moto's standalone server (`moto_server`, from
//! PyPI's `moto[server]`, which `.ci/run` installs when it is missing) started on loopback,
//! behind a TCP relay that a test can cut ([`S3Server::cut`]) and restore
//! ([`S3Server::restore`]) to make the store unreachable mid-checkpoint without losing what
//! it holds (moto keeps objects in memory: stopping it would lose them).
//!
//! Settings: the server command is `$WEIR_MOTO_SERVER` (e.g. a `moto_server` executable), else
//! `python3 -m moto.server`. The credentials are arbitrary (moto accepts any signature).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "weir-test";
pub const SECRET_KEY: &str = "weir-test-secret";

/// A moto server on loopback with a relay in front of it. Killed on drop.
pub struct S3Server {
    child: Child,
    /// The relay's address, what clients use: `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The server's own address (bypassing the relay), for the test's own requests.
    direct: String,
    relay: Arc<Relay>,
}

struct Relay {
    up: AtomicBool,
    open: Mutex<Vec<TcpStream>>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl S3Server {
    /// Starts moto and the relay, and waits until moto answers.
    ///
    /// # Panics
    /// When moto cannot be started: the message says how to install it.
    pub fn start() -> Self {
        let port = free_port();
        let (program, mut command) = match std::env::var("WEIR_MOTO_SERVER") {
            Ok(p) => (p.clone(), Command::new(p)),
            Err(_) => {
                let mut c = Command::new("python3");
                c.args(["-m", "moto.server"]);
                ("python3 -m moto.server".to_string(), c)
            }
        };
        let child = command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start the S3 test server `{program}` ({e}): install it with \
                     `pip install 'moto[server]'` (.ci/run does), or point WEIR_MOTO_SERVER at it"
                )
            });
        let direct = format!("127.0.0.1:{port}");
        let relay = Arc::new(Relay {
            up: AtomicBool::new(true),
            open: Mutex::new(Vec::new()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let mut server = Self {
            child,
            endpoint,
            direct: direct.clone(),
            relay: relay.clone(),
        };
        server.wait_ready();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !relay.up.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(upstream) = TcpStream::connect(&direct) else {
                    continue;
                };
                {
                    let mut open = relay.open.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(upstream.try_clone().unwrap());
                }
                pump(client.try_clone().unwrap(), upstream.try_clone().unwrap());
                pump(upstream, client);
            }
        });
        server
    }

    /// Polls until moto accepts a request (it takes a second or two to start).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the S3 test server exited at start: {status}");
            }
            if self.request("GET", "/").is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the S3 test server never answered"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One plain HTTP request straight to moto; its status code, if it answered.
    fn request(&self, method: &str, path: &str) -> Option<u16> {
        let mut s = TcpStream::connect(&self.direct).ok()?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.direct
        )
        .ok()?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).ok()?;
        answer.split_whitespace().nth(1)?.parse().ok()
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, name: &str) {
        let status = self.request("PUT", &format!("/{name}"));
        assert_eq!(status, Some(200), "creating bucket {name}");
    }

    /// The store becomes unreachable: open connections are cut, new ones closed at once.
    pub fn cut(&self) {
        self.relay.up.store(false, Ordering::SeqCst);
        for s in self.relay.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// The store is reachable again, with everything it held.
    pub fn restore(&self) {
        self.relay.up.store(true, Ordering::SeqCst);
    }

    /// The `s3.*` settings for a job file's `config:` or `-D`.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("s3.endpoint", self.endpoint.clone()),
            ("s3.access-key", ACCESS_KEY.into()),
            ("s3.secret-key", SECRET_KEY.into()),
            ("s3.path.style.access", "true".into()),
        ]
    }

    /// The same settings as `-D key=value` arguments.
    pub fn defines(&self) -> Vec<String> {
        self.settings()
            .into_iter()
            .flat_map(|(k, v)| ["-D".to_string(), format!("{k}={v}")])
            .collect()
    }

    /// Makes these settings the test process's own (for in-process jobs and storage calls).
    pub fn configure_process(&self) {
        weir_actors::weir::checkpoint::storage::s3::configure(
            weir_actors::weir::checkpoint::storage::s3::S3Settings {
                endpoint: Some(self.endpoint.clone()),
                region: None,
                access_key: Some(ACCESS_KEY.into()),
                secret_key: Some(SECRET_KEY.into()),
                session_token: None,
                path_style: true,
            },
        );
    }
}

/// Copies bytes from `from` to `to` on a thread until either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.cut();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
