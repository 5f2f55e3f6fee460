//! A real Kafka-protocol broker for the tests: tansu 0.6 (built once per machine by
//! `scripts/setup --tests`) with in-memory storage, started on a free loopback port in a temp dir
//! and killed on drop. A test whose broker binary is missing fails, saying how to install it.
//!
//! The binary is `$WEIR_KAFKA_BROKER`, else `tansu` on the `PATH`, else `~/.cargo/bin/tansu`
//! (where `cargo install` puts it).
//!
//! Topics are created, filled and read back with librdkafka (the client the connectors use).

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use weir_actors::weir::connectors::kafka::rdkafka::admin::{
    AdminClient, AdminOptions, NewTopic, TopicReplication,
};
use weir_actors::weir::connectors::kafka::rdkafka::client::DefaultClientContext;
use weir_actors::weir::connectors::kafka::rdkafka::config::ClientConfig;
use weir_actors::weir::connectors::kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use weir_actors::weir::connectors::kafka::rdkafka::message::Message;
use weir_actors::weir::connectors::kafka::rdkafka::producer::{
    BaseRecord, DefaultProducerContext, Producer, ThreadedProducer,
};
use weir_actors::weir::connectors::kafka::rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(30);

/// tansu 0.6 answers a partition's end offset (ListOffsets, latest) with the base offset of its
/// last record batch + 1, not the offset after its last record. After [`KafkaBroker::seal`] the
/// last batch of every partition holds one record, [`END`], so the two agree: bounded mode's end
/// offsets and [`KafkaBroker::read_all`] are then right. Readers skip the marker ([`is_end`]).
pub const END: &str = "end-of-test-data";

/// Whether a record value is the [`END`] marker.
pub fn is_end(value: &Value) -> bool {
    value.get(END).is_some()
}

/// A tansu broker on loopback. Killed on drop.
pub struct KafkaBroker {
    child: Child,
    /// `127.0.0.1:<port>`, for `bootstrap.servers`.
    pub bootstrap: String,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where the broker binary is, if anywhere.
pub fn broker_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("WEIR_KAFKA_BROKER") {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("tansu"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
        Some(home.join("bin").join("tansu")).filter(|p| p.is_file())
    })
}

impl KafkaBroker {
    /// Starts the broker and waits until it answers a metadata request.
    ///
    /// # Panics
    /// When the broker binary is missing (the message says to run `scripts/setup --tests`) or
    /// does not come up.
    pub fn start() -> Self {
        let binary = broker_binary().unwrap_or_else(|| {
            panic!(
                "no Kafka test broker: run `scripts/setup --tests` (it builds tansu once per \
                 machine), or point WEIR_KAFKA_BROKER at a tansu binary"
            )
        });
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("broker.log")).unwrap(),
            ))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start the Kafka test broker {} ({e}): run `scripts/setup --tests`",
                    binary.display()
                )
            });
        let mut broker = Self {
            child,
            bootstrap: format!("127.0.0.1:{port}"),
            _dir: dir,
        };
        broker.wait_ready();
        broker
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "the Kafka test broker exited at start ({status}): {}",
                    self.log()
                );
            }
            if TcpStream::connect(&self.bootstrap).is_ok() {
                let c = self.consumer();
                if c.fetch_metadata(None, Duration::from_secs(2)).is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the Kafka test broker never answered: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("broker.log")).unwrap_or_default()
    }

    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        c
    }

    fn consumer(&self) -> BaseConsumer {
        self.config()
            .set("group.id", "weir-test-reader")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap()
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = self.config().create().unwrap();
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let results = futures::executor::block_on(admin.create_topics(
            [&new],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        ))
        .unwrap();
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
        }
        // Until the metadata shows the partitions.
        let deadline = Instant::now() + TIMEOUT;
        let c = self.consumer();
        loop {
            let seen = c
                .fetch_metadata(Some(topic), Duration::from_secs(5))
                .ok()
                .and_then(|m| m.topics().first().map(|t| t.partitions().len()));
            if seen == Some(partitions as usize) {
                return;
            }
            assert!(Instant::now() < deadline, "topic {topic} never showed up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Produces `records` (partition, JSON value) and waits for all acknowledgements.
    pub fn produce(&self, topic: &str, records: impl IntoIterator<Item = (i32, Value)>) {
        let p: ThreadedProducer<DefaultProducerContext> = self
            .config()
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .unwrap();
        for (partition, value) in records {
            let bytes = serde_json::to_vec(&value).unwrap();
            let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic)
                .partition(partition)
                .payload(&bytes[..]);
            loop {
                match p.send(r) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        r = back;
                        p.poll(Duration::from_millis(10));
                    }
                }
            }
        }
        p.flush(TIMEOUT).expect("every record acknowledged");
    }

    /// Writes the [`END`] marker into every partition, each alone in its batch (see [`END`]).
    pub fn seal(&self, topic: &str, partitions: i32) {
        for p in 0..partitions {
            self.produce(topic, [(p, serde_json::json!({ END: true }))]);
        }
    }

    /// The end offset (high watermark) of each partition of `topic`.
    pub fn end_offsets(&self, topic: &str, partitions: i32) -> Vec<i64> {
        let c = self.consumer();
        (0..partitions)
            .map(|p| c.fetch_watermarks(topic, p, TIMEOUT).unwrap().1)
            .collect()
    }

    /// Every record of `topic` (all partitions, from the start to the current end), as JSON,
    /// without [`END`] markers. Call [`Self::seal`] first.
    pub fn read_all(&self, topic: &str, partitions: i32) -> Vec<Value> {
        let ends = self.end_offsets(topic, partitions);
        let c = self.consumer();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        let mut next = vec![0i64; partitions as usize];
        let mut out = Vec::new();
        let deadline = Instant::now() + TIMEOUT;
        while next.iter().zip(&ends).any(|(n, e)| n < e) {
            assert!(
                Instant::now() < deadline,
                "reading {topic} back took too long"
            );
            let Some(m) = c.poll(Duration::from_millis(100)) else {
                continue;
            };
            let m = m.expect("consume");
            let i = m.partition() as usize;
            if m.offset() < next[i] || m.offset() >= ends[i] {
                continue;
            }
            next[i] = m.offset() + 1;
            let v: Value = serde_json::from_slice(m.payload().unwrap_or(b"null")).unwrap();
            if !is_end(&v) {
                out.push(v);
            }
        }
        out
    }

    /// The offsets committed by `group` for `topic`'s partitions (`None`: nothing committed).
    pub fn committed(&self, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
        let c: BaseConsumer = self.config().set("group.id", group).create().unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let got = c.committed_offsets(tpl, TIMEOUT).unwrap();
        (0..partitions)
            .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => Some(o),
                _ => None,
            })
            .collect()
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
