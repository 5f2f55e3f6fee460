//! [`KafkaSource`]: a replayable source over Kafka topics (Flink's `KafkaSource`).
//!
//! Each subtask reads the partitions it owns ([`super::splits`]) with a librdkafka consumer that
//! is *assigned* partitions and offsets (no group rebalancing: Weir decides who reads what).
//! librdkafka fetches in its own threads; [`Source::poll`] only takes what was fetched
//! (`poll` with a zero timeout), so the subtask's actor never waits for the network.
//!
//! Everything that asks the broker and waits — metadata for partition discovery, the offsets
//! of the startup mode (earliest, latest, a group's committed ones, by timestamp) and the end
//! offsets of bounded mode — runs on a discovery thread per subtask, which hands the new
//! partitions with concrete offsets to `poll` over a small channel, then looks again every
//! `scan.topic-partition-discovery.interval` (not in bounded mode).
//!
//! The position of every owned partition (the offset of the next record to emit) is the
//! source's operator state, taken at the barrier; a restored source assigns exactly those
//! offsets. When a checkpoint completes, the offsets it holds are committed to `group.id` for
//! monitoring (asynchronously; a failed commit is logged, never fatal).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::options::{BoundedMode, KafkaSourceOptions, StartupMode, TopicMatcher};
use super::splits::{snapshot_entries, Restored, SplitEntry, SplitPosition, TopicPartition};
use crate::ids::CheckpointId;
use crate::operator::{OperatorError, Source, SourcePoll, SubtaskInfo};
use crate::state::operator_state::{OperatorListState, OperatorStateStore};

/// The operator-state name of the partitions' positions (union list of [`SplitEntry`]).
pub const SPLITS_STATE: &str = "kafka-splits";

/// How long an idle subtask waits before polling its consumer again.
const IDLE_POLL: Duration = Duration::from_millis(5);

/// Completed-checkpoint offsets kept for committing, at most.
const PENDING_COMMITS: usize = 32;

/// One record as read from Kafka, for a [`Deserializer`].
#[derive(Debug)]
pub struct KafkaRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// The record's timestamp (create or log-append time), milliseconds since the epoch.
    pub timestamp: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// Turns a record into the source's output: `Ok(None)` skips it, an error fails the subtask.
pub type Deserializer<T> = Arc<dyn Fn(&KafkaRecord<'_>) -> Result<Option<T>, String> + Send + Sync>;

/// A Kafka source. See the module docs.
pub struct KafkaSource<T> {
    options: KafkaSourceOptions,
    deserialize: Deserializer<T>,
    run: Option<Running>,
}

impl<T> Clone for KafkaSource<T> {
    fn clone(&self) -> Self {
        Self {
            options: self.options.clone(),
            deserialize: self.deserialize.clone(),
            run: None,
        }
    }
}

impl<T> KafkaSource<T> {
    /// A source that turns each record into a `T` with `deserialize`.
    ///
    /// # Errors
    /// The options do not fit together ([`KafkaSourceOptions::validate`]).
    pub fn new(
        options: KafkaSourceOptions,
        deserialize: impl Fn(&KafkaRecord<'_>) -> Result<Option<T>, String> + Send + Sync + 'static,
    ) -> Result<Self, String> {
        options.validate()?;
        Ok(Self {
            options,
            deserialize: Arc::new(deserialize),
            run: None,
        })
    }

    pub fn options(&self) -> &KafkaSourceOptions {
        &self.options
    }
}

impl<T: serde::de::DeserializeOwned> KafkaSource<T> {
    /// Record values as JSON documents of type `T`; records without a value (tombstones) are
    /// skipped, a value that does not parse fails the subtask (naming its topic, partition and
    /// offset).
    ///
    /// # Errors
    /// As [`Self::new`].
    pub fn json(options: KafkaSourceOptions) -> Result<Self, String> {
        Self::new(options, |r| match r.value {
            None => Ok(None),
            Some(v) => serde_json::from_slice(v).map(Some).map_err(|e| {
                format!(
                    "the value at {}-{} offset {} is not the expected JSON: {e}",
                    r.topic, r.partition, r.offset
                )
            }),
        })
    }
}

/// A running subtask's reading.
struct Running {
    uid: String,
    index: u32,
    consumer: BaseConsumer,
    group: Option<String>,
    bounded: bool,
    /// Owned partitions in assignment order (few per subtask: a linear search is fastest).
    splits: Vec<(TopicPartition, SplitPosition)>,
    /// Until the first discovery is in: the markers that go into a snapshot.
    pending_markers: Option<Vec<(u32, u32)>>,
    discovery: Receiver<Discovery>,
    /// Dropped with the subtask: ends the discovery thread.
    _stop: SyncSender<()>,
    state: OperatorListState<SplitEntry>,
    barrier: Option<CheckpointId>,
    to_commit: BTreeMap<CheckpointId, Vec<(TopicPartition, i64)>>,
}

/// What the discovery thread hands to the subtask.
enum Discovery {
    /// New partitions to read, with their positions; `first` after the first look.
    Found {
        splits: Vec<(TopicPartition, SplitPosition)>,
        first: bool,
    },
    Failed(String),
}

fn consumer_config(options: &KafkaSourceOptions, info: &SubtaskInfo) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &options.bootstrap_servers)
        .set("client.id", format!("weir-{}-{}", info.uid, info.index))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest");
    // librdkafka's consumer needs a group even when it is only assigned partitions; without
    // `group.id` nothing is committed to it.
    let group = options
        .group_id
        .clone()
        .unwrap_or_else(|| format!("weir-{}", info.uid));
    c.set("group.id", group);
    for (k, v) in &options.properties {
        c.set(k, v);
    }
    c
}

fn kafka_error(what: &str, e: KafkaError) -> OperatorError {
    OperatorError::with_source(what.to_string(), e)
}

impl<T: Send + 'static> Source<T> for KafkaSource<T> {
    fn open(
        &mut self,
        info: &SubtaskInfo,
        state: &mut OperatorStateStore,
    ) -> Result<(), OperatorError> {
        let handle = state.union_list::<SplitEntry>(SPLITS_STATE)?;
        // Restored without any entry (the source is new in the job, or the snapshot predates
        // it): a fresh start, at the startup mode's offsets.
        let restored = info
            .restored
            .filter(|_| !handle.get_ref(state).is_empty())
            .map(|_| Restored::take(handle.get_ref(state), info.index, info.parallelism));
        let consumer: BaseConsumer = consumer_config(&self.options, info)
            .create()
            .map_err(|e| kafka_error("cannot create the Kafka consumer", e))?;
        let bounded = self.options.bounded == BoundedMode::LatestOffset;
        let mut splits: Vec<(TopicPartition, SplitPosition)> = Vec::new();
        let pending_markers = match &restored {
            Some(r) => {
                splits.extend(r.owned.iter().map(|(s, p)| (s.clone(), *p)));
                r.undiscovered.clone()
            }
            None => vec![(info.index, info.parallelism)],
        };
        let (tx, rx) = mpsc::sync_channel(4);
        let (stop_tx, stop_rx) = mpsc::sync_channel(1);
        let known: BTreeSet<TopicPartition> = match &restored {
            Some(r) => r.listed.iter().cloned().collect(),
            None => BTreeSet::new(),
        };
        let matcher = TopicMatcher::new(&self.options.topics)
            .map_err(|e| OperatorError::with_source("bad topic-pattern", e))?;
        let discoverer = Discoverer {
            client: consumer_config(&self.options, info)
                .create()
                .map_err(|e| kafka_error("cannot create the Kafka metadata client", e))?,
            options: self.options.clone(),
            matcher,
            index: info.index,
            parallelism: info.parallelism,
            restored,
            known,
            tx,
            stop: stop_rx,
        };
        std::thread::Builder::new()
            .name(format!("weir-kafka-{}-{}", info.uid, info.index))
            .spawn(move || discoverer.run())
            .map_err(|e| {
                OperatorError::with_source("cannot start the Kafka discovery thread", e)
            })?;
        let mut run = Running {
            uid: info.uid.clone(),
            index: info.index,
            consumer,
            group: self.options.group_id.clone(),
            bounded,
            splits,
            pending_markers: Some(pending_markers),
            discovery: rx,
            _stop: stop_tx,
            state: handle,
            barrier: None,
            to_commit: BTreeMap::new(),
        };
        run.assign()?;
        tracing::info!(
            operator = %run.uid, subtask = run.index, restored = run.splits.len(),
            "Kafka source opened"
        );
        self.run = Some(run);
        Ok(())
    }

    fn poll(&mut self, out: &mut Vec<T>, max: usize) -> Result<SourcePoll, OperatorError> {
        let run = self.run.as_mut().expect("opened");
        run.take_discoveries()?;
        let before = out.len();
        while out.len() - before < max {
            let message = match run.consumer.poll(Duration::ZERO) {
                None => break,
                Some(Ok(m)) => m,
                Some(Err(KafkaError::PartitionEOF(_))) => continue,
                Some(Err(e)) => {
                    // librdkafka retries what can be retried itself; report and go on.
                    tracing::warn!(operator = %run.uid, subtask = run.index, error = %e,
                        "Kafka consumer error");
                    break;
                }
            };
            let (topic, partition, offset) =
                (message.topic(), message.partition(), message.offset());
            let Some(i) = run
                .splits
                .iter()
                .position(|(s, _)| s.partition == partition && s.topic == topic)
            else {
                continue;
            };
            let position = &mut run.splits[i].1;
            if offset < position.next || position.is_finished() {
                continue;
            }
            if position.stop.is_some_and(|s| offset >= s) {
                position.next = position.stop.unwrap_or(offset);
                run.pause(i);
                continue;
            }
            let record = KafkaRecord {
                topic,
                partition,
                offset,
                timestamp: message.timestamp().to_millis(),
                key: message.key(),
                value: message.payload(),
            };
            let value = (self.deserialize)(&record).map_err(OperatorError::msg)?;
            position.next = offset + 1;
            let finished = position.is_finished();
            if let Some(v) = value {
                out.push(v);
            }
            if finished {
                run.pause(i);
            }
        }
        if out.len() > before {
            return Ok(SourcePoll::Ready);
        }
        if run.bounded
            && run.pending_markers.is_none()
            && run.splits.iter().all(|(_, p)| p.is_finished())
        {
            return Ok(SourcePoll::Exhausted);
        }
        Ok(SourcePoll::Idle(IDLE_POLL))
    }

    fn snapshot(&mut self, state: &mut OperatorStateStore) -> Result<(), OperatorError> {
        let run = self.run.as_mut().expect("opened");
        let owned: BTreeMap<TopicPartition, SplitPosition> = run.splits.iter().cloned().collect();
        let markers = run.pending_markers.clone().unwrap_or_default();
        run.state.update(state, snapshot_entries(&owned, &markers));
        if let (Some(id), Some(_)) = (run.barrier.take(), &run.group) {
            let offsets = run
                .splits
                .iter()
                .map(|(s, p)| (s.clone(), p.next))
                .collect();
            run.to_commit.insert(id, offsets);
            while run.to_commit.len() > PENDING_COMMITS {
                run.to_commit.pop_first();
            }
        }
        Ok(())
    }

    fn on_barrier(&mut self, checkpoint: CheckpointId) {
        if let Some(run) = self.run.as_mut() {
            run.barrier = Some(checkpoint);
        }
    }

    fn notify_checkpoint_complete(
        &mut self,
        checkpoint: CheckpointId,
    ) -> Result<(), OperatorError> {
        let Some(run) = self.run.as_mut() else {
            return Ok(());
        };
        let Some(offsets) = run.to_commit.remove(&checkpoint) else {
            return Ok(());
        };
        run.to_commit.retain(|id, _| *id > checkpoint);
        if offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (s, next) in &offsets {
            if let Err(e) = tpl.add_partition_offset(&s.topic, s.partition, Offset::Offset(*next)) {
                tracing::warn!(operator = %run.uid, subtask = run.index, error = %e,
                    "cannot commit a Kafka offset");
            }
        }
        // Monitoring only: the checkpoint holds the offsets that count.
        if let Err(e) = run.consumer.commit(&tpl, CommitMode::Async) {
            tracing::warn!(operator = %run.uid, subtask = run.index, checkpoint = checkpoint.0,
                error = %e, "cannot commit offsets to the Kafka group");
        }
        Ok(())
    }
}

impl Running {
    /// Assigns every unfinished partition at its position.
    fn assign(&mut self) -> Result<(), OperatorError> {
        let mut tpl = TopicPartitionList::new();
        for (s, p) in &self.splits {
            if !p.is_finished() {
                tpl.add_partition_offset(&s.topic, s.partition, Offset::Offset(p.next))
                    .map_err(|e| kafka_error("cannot assign a Kafka partition", e))?;
            }
        }
        self.consumer
            .assign(&tpl)
            .map_err(|e| kafka_error("cannot assign the Kafka partitions", e))
    }

    /// A bounded partition reached its end: stop fetching it.
    fn pause(&mut self, i: usize) {
        let (s, _) = &self.splits[i];
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&s.topic, s.partition);
        if let Err(e) = self.consumer.pause(&tpl) {
            tracing::debug!(operator = %self.uid, error = %e, "cannot pause a finished partition");
        }
    }

    /// Takes what the discovery thread found, and assigns it.
    fn take_discoveries(&mut self) -> Result<(), OperatorError> {
        let mut changed = false;
        loop {
            match self.discovery.try_recv() {
                Ok(Discovery::Found { splits, first }) => {
                    for (s, p) in splits {
                        if !self.splits.iter().any(|(have, _)| *have == s) {
                            tracing::info!(operator = %self.uid, subtask = self.index,
                                partition = %s, offset = p.next, stop = ?p.stop,
                                "Kafka partition assigned");
                            self.splits.push((s, p));
                            changed = true;
                        }
                    }
                    if first {
                        self.pending_markers = None;
                    }
                }
                Ok(Discovery::Failed(e)) => return Err(OperatorError::msg(e)),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    if self.pending_markers.is_some() {
                        return Err(OperatorError::msg(
                            "the Kafka discovery thread ended before its first discovery",
                        ));
                    }
                    break;
                }
            }
        }
        if changed {
            self.assign()?;
        }
        Ok(())
    }
}

/// The discovery thread of one subtask. See the module docs.
struct Discoverer {
    client: BaseConsumer,
    options: KafkaSourceOptions,
    matcher: TopicMatcher,
    index: u32,
    parallelism: u32,
    /// `Some` in a restored run: decides how unlisted partitions start.
    restored: Option<Restored>,
    /// Partitions already read (restored or found): never resolved again.
    known: BTreeSet<TopicPartition>,
    tx: SyncSender<Discovery>,
    stop: Receiver<()>,
}

impl Discoverer {
    fn run(mut self) {
        let mut first = true;
        loop {
            match self.round(first) {
                Ok(splits) => {
                    if self.tx.send(Discovery::Found { splits, first }).is_err() {
                        return;
                    }
                    first = false;
                }
                Err(e) if first => {
                    let _ = self.tx.send(Discovery::Failed(e));
                    return;
                }
                Err(e) => {
                    tracing::warn!(subtask = self.index, error = %e,
                        "Kafka partition discovery failed; trying again later");
                }
            }
            let interval = match (self.options.bounded, self.options.discovery_interval) {
                (BoundedMode::Unbounded, Some(d)) => d,
                _ => return,
            };
            match self.stop.recv_timeout(interval) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
        }
    }

    /// One look at the cluster: the new partitions this subtask owns, with their positions.
    fn round(&mut self, first: bool) -> Result<Vec<(TopicPartition, SplitPosition)>, String> {
        let timeout = self.options.request_timeout;
        let servers = &self.options.bootstrap_servers;
        let metadata = self.client.fetch_metadata(None, timeout).map_err(|e| {
            format!("cannot read the topics of the Kafka cluster at {servers}: {e}")
        })?;
        let mut found = Vec::new();
        let mut topics_seen = BTreeSet::new();
        for topic in metadata.topics() {
            if !self.matcher.matches(topic.name()) {
                continue;
            }
            topics_seen.insert(topic.name().to_string());
            for p in topic.partitions() {
                let split = TopicPartition::new(topic.name(), p.id());
                if split.owner(self.parallelism) == self.index && !self.known.contains(&split) {
                    found.push(split);
                }
            }
        }
        if first {
            if let TopicMatcher::List(names) = &self.matcher {
                if let Some(missing) = names.iter().find(|n| !topics_seen.contains(*n)) {
                    return Err(format!(
                        "Kafka topic `{missing}` does not exist at {servers} (see `topic`)"
                    ));
                }
            }
        }
        let mut out = Vec::new();
        for split in found {
            let startup = match (&self.restored, first) {
                (None, true) => self.options.startup,
                (Some(r), true) if r.starts_at_startup_mode(&split) => self.options.startup,
                // Appeared after the start: read all of it.
                _ => StartupMode::Earliest,
            };
            let position = self.resolve(&split, startup)?;
            self.known.insert(split.clone());
            out.push((split, position));
        }
        Ok(out)
    }

    /// The concrete start (and, bounded, stop) offset of a partition.
    fn resolve(&self, s: &TopicPartition, startup: StartupMode) -> Result<SplitPosition, String> {
        let timeout = self.options.request_timeout;
        let (low, high) = self
            .client
            .fetch_watermarks(&s.topic, s.partition, timeout)
            .map_err(|e| format!("cannot read the offsets of Kafka partition {s}: {e}"))?;
        let one = |offset: Offset| {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&s.topic, s.partition, offset)
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(tpl)
        };
        let found = |tpl: TopicPartitionList| {
            tpl.elements()
                .first()
                .map(|e| e.offset())
                .unwrap_or(Offset::Invalid)
        };
        let next = match startup {
            StartupMode::Earliest => low,
            StartupMode::Latest => high,
            StartupMode::Timestamp(ts) => {
                let tpl = self
                    .client
                    .offsets_for_times(one(Offset::Offset(ts))?, timeout)
                    .map_err(|e| format!("cannot look up offsets by time in {s}: {e}"))?;
                match found(tpl) {
                    Offset::Offset(o) => o,
                    _ => high,
                }
            }
            StartupMode::GroupOffsets => {
                let tpl = self
                    .client
                    .committed_offsets(one(Offset::Invalid)?, timeout)
                    .map_err(|e| format!("cannot read the committed offsets of {s}: {e}"))?;
                match found(tpl) {
                    Offset::Offset(o) => o.clamp(low, high),
                    _ => low,
                }
            }
        };
        let stop = (self.options.bounded == BoundedMode::LatestOffset).then_some(high);
        Ok(SplitPosition { next, stop })
    }
}
