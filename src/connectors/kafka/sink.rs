//! [`KafkaSink`]: records into a Kafka topic, at least once (Flink's `KafkaSink` with
//! `DeliveryGuarantee.AT_LEAST_ONCE`).
//!
//! The producer is idempotent (`enable.idempotence`, so `acks=all` and no duplicates from
//! its own retries) and sends from librdkafka's threads; `write` only enqueues. At every
//! checkpoint barrier (`pre_commit`) the sink waits until the broker acknowledged everything
//! enqueued before it, and a record the broker refused fails the subtask — so a completed
//! checkpoint never covers a lost record. Like Flink's, that wait holds the subtask at the
//! barrier (bounded by [`KafkaSinkOptions::flush_timeout`]). A restore replays the records
//! after the checkpoint, so some may be written twice: at least once, not exactly once.
//!
//! There is no transactional (exactly-once) mode: the Kafka-protocol broker the tests run
//! (tansu 0.6) cannot end transactions, and an untested two-phase commit would be worse than
//! none. `sink.delivery-guarantee: exactly-once` is refused ([`super::DeliveryGuarantee`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use super::options::{DeliveryGuarantee, KafkaSinkOptions};
use crate::ids::CheckpointId;
use crate::operator::{OperatorError, Sink, SubtaskInfo};
use crate::state::operator_state::OperatorStateStore;

/// Turns a record into a Kafka value (and optionally a key).
pub type Serializer<T> =
    Arc<dyn Fn(&T) -> Result<(Option<Vec<u8>>, Vec<u8>), String> + Send + Sync>;

/// A Kafka sink. See the module docs.
pub struct KafkaSink<T> {
    options: KafkaSinkOptions,
    serialize: Serializer<T>,
    run: Option<Producing>,
}

impl<T> Clone for KafkaSink<T> {
    fn clone(&self) -> Self {
        Self {
            options: self.options.clone(),
            serialize: self.serialize.clone(),
            run: None,
        }
    }
}

impl<T> KafkaSink<T> {
    /// A sink that writes each record as `serialize` makes it.
    ///
    /// # Errors
    /// The options are not valid ([`KafkaSinkOptions::validate`]).
    pub fn new(
        options: KafkaSinkOptions,
        serialize: impl Fn(&T) -> Result<(Option<Vec<u8>>, Vec<u8>), String> + Send + Sync + 'static,
    ) -> Result<Self, String> {
        options.validate()?;
        Ok(Self {
            options,
            serialize: Arc::new(serialize),
            run: None,
        })
    }
}

impl<T: serde::Serialize> KafkaSink<T> {
    /// Each record as a JSON document, without a key.
    ///
    /// # Errors
    /// As [`Self::new`].
    pub fn json(options: KafkaSinkOptions) -> Result<Self, String> {
        Self::new(options, |r| {
            serde_json::to_vec(r)
                .map(|v| (None, v))
                .map_err(|e| format!("cannot write a record as JSON: {e}"))
        })
    }
}

/// Delivery reports: the first failure, kept for the subtask to fail with.
#[derive(Default)]
struct Deliveries {
    failed: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
            failed.get_or_insert_with(|| e.to_string());
        }
    }
}

struct Producing {
    uid: String,
    index: u32,
    producer: ThreadedProducer<Deliveries>,
}

impl Producing {
    fn check(&self) -> Result<(), OperatorError> {
        let failed = self
            .producer
            .context()
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match failed {
            Some(e) => Err(OperatorError::msg(format!(
                "the Kafka broker did not take a record: {e}"
            ))),
            None => Ok(()),
        }
    }

    /// Waits until the broker acknowledged everything sent so far.
    fn flush(&self, timeout: Duration, why: &str) -> Result<(), OperatorError> {
        self.producer.flush(timeout).map_err(|e| {
            OperatorError::with_source(
                format!(
                    "the Kafka broker did not acknowledge the records {why} within {timeout:?}"
                ),
                e,
            )
        })?;
        self.check()
    }
}

impl<T: Send + 'static> Sink<T> for KafkaSink<T> {
    fn open(
        &mut self,
        info: &SubtaskInfo,
        _: &mut OperatorStateStore,
    ) -> Result<(), OperatorError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.options.bootstrap_servers)
            .set("client.id", format!("weir-{}-{}", info.uid, info.index))
            .set("enable.idempotence", "true")
            .set("acks", "all");
        for (k, v) in &self.options.properties {
            c.set(k, v);
        }
        let producer = c
            .create_with_context(Deliveries::default())
            .map_err(|e| OperatorError::with_source("cannot create the Kafka producer", e))?;
        self.run = Some(Producing {
            uid: info.uid.clone(),
            index: info.index,
            producer,
        });
        Ok(())
    }

    fn write(&mut self, batch: Vec<T>) -> Result<(), OperatorError> {
        let run = self.run.as_ref().expect("opened");
        run.check()?;
        let topic = self.options.topic.as_str();
        for record in &batch {
            let (key, value) = (self.serialize)(record).map_err(OperatorError::msg)?;
            let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).payload(&value[..]);
            if let Some(k) = key.as_deref() {
                r = r.key(k);
            }
            loop {
                match run.producer.send(r) {
                    Ok(()) => break,
                    // The local queue is full: back-pressure until the broker takes some.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        r = back;
                        run.producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => {
                        return Err(OperatorError::with_source(
                            format!("cannot send a record to Kafka topic `{topic}`"),
                            e,
                        ))
                    }
                }
            }
        }
        Ok(())
    }

    fn pre_commit(&mut self, checkpoint: CheckpointId) -> Result<(), OperatorError> {
        let run = self.run.as_ref().expect("opened");
        if self.options.delivery == DeliveryGuarantee::AtLeastOnce {
            run.flush(self.options.flush_timeout, "sent before the barrier")?;
            tracing::debug!(operator = %run.uid, subtask = run.index, checkpoint = checkpoint.0,
                "Kafka sink flushed at the barrier");
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), OperatorError> {
        let run = self.run.as_ref().expect("opened");
        run.flush(self.options.flush_timeout, "at the end of the input")
    }
}
