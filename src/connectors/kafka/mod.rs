//! Kafka connectors, as Flink's `KafkaSource` and `KafkaSink` behave: a replayable source whose
//! per-partition offsets are checkpointed operator state, and an at-least-once sink.
//!
//! - [`options`]: what they read and write, with Flink's option names and their checks.
//! - [`splits`]: partitions as splits (who reads what; restore and rescale), pure.
//! - [`source::KafkaSource`]: librdkafka consumer assigned its partitions; fetching and every
//!   broker request run off the subtask's thread.
//! - [`sink::KafkaSink`]: idempotent producer, flushed and acknowledged at every barrier.
//! - [`jobfile`]: `source: kafka` and `sink: kafka` in job files.
//!
//! The client is librdkafka through the `rdkafka` crate, built from the C sources it ships: the
//! pure-Rust client that was measured has no consumer groups (no offset commit) and no
//! idempotent producer, and Debian's older librdkafka cannot talk to the tests' broker. See the
//! README.

pub mod jobfile;
pub mod options;
pub mod sink;
pub mod source;
pub mod splits;

pub use options::{
    BoundedMode, DeliveryGuarantee, KafkaSinkOptions, KafkaSourceOptions, StartupMode, Topics,
};
pub use sink::KafkaSink;
pub use source::{KafkaRecord, KafkaSource};

/// The client crate, for programs (and tests) that talk to Kafka themselves.
pub use rdkafka;
