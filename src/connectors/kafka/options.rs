//! The Kafka connectors' options, as Flink names them, and their checks.
//!
//! The Rust API builds [`KafkaSourceOptions`] and [`KafkaSinkOptions`] directly; job files give
//! the same settings under Flink's keys (`bootstrap.servers`, `topic`, `scan.startup.mode`, …),
//! parsed by [`super::jobfile`]. Every value that is refused names its key and what is accepted.

use std::time::Duration;

/// The topics a source reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Topics {
    /// These topics (Flink's `topic`, a list or `a;b`).
    List(Vec<String>),
    /// Every topic whose whole name matches this regular expression (Flink's `topic-pattern`),
    /// including topics created while the job runs (found by partition discovery).
    Pattern(String),
}

impl Topics {
    /// A checked topic selection: a non-empty list of non-empty names, or a pattern that
    /// compiles.
    ///
    /// # Errors
    /// What is wrong, as a sentence naming the key (`topic` or `topic-pattern`).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Topics::List(names)
                if names.is_empty() || names.iter().any(|n| n.trim().is_empty()) =>
            {
                Err("`topic` must name at least one topic, and no empty one".into())
            }
            Topics::List(_) => Ok(()),
            Topics::Pattern(p) => TopicMatcher::new(self)
                .map(|_| ())
                .map_err(|e| format!("`topic-pattern` `{p}` is not a regular expression: {e}")),
        }
    }
}

/// Matches topic names against a [`Topics`].
#[derive(Clone, Debug)]
pub(crate) enum TopicMatcher {
    List(Vec<String>),
    Pattern(regex_lite::Regex),
}

impl TopicMatcher {
    pub(crate) fn new(topics: &Topics) -> Result<Self, regex_lite::Error> {
        Ok(match topics {
            Topics::List(names) => TopicMatcher::List(names.clone()),
            // The whole name must match, as Java's `Matcher.matches` (Flink) requires.
            Topics::Pattern(p) => {
                TopicMatcher::Pattern(regex_lite::Regex::new(&format!("^(?:{p})$"))?)
            }
        })
    }

    pub(crate) fn matches(&self, topic: &str) -> bool {
        match self {
            TopicMatcher::List(names) => names.iter().any(|n| n == topic),
            TopicMatcher::Pattern(re) => re.is_match(topic),
        }
    }
}

/// Where a partition that has no checkpointed offset starts (Flink's `scan.startup.mode`).
/// Partitions discovered later, while the job runs, start at their earliest offset (as in
/// Flink), so no record written to a new partition is missed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StartupMode {
    /// `earliest-offset`: the first record still in the partition.
    #[default]
    Earliest,
    /// `latest-offset`: only records written after the source starts.
    Latest,
    /// `group-offsets`: the offset committed by `group.id` (earliest where there is none).
    GroupOffsets,
    /// `timestamp`: the first record whose timestamp is at or after these milliseconds since
    /// the epoch (`scan.startup.timestamp-millis`); the end of the partition if there is none.
    Timestamp(i64),
}

impl StartupMode {
    /// Parses `scan.startup.mode` (with `scan.startup.timestamp-millis` for `timestamp`).
    ///
    /// # Errors
    /// An unknown or unsupported mode, or a timestamp missing for `timestamp` / given without it.
    pub fn parse(mode: &str, timestamp_millis: Option<i64>) -> Result<Self, String> {
        let parsed = match mode {
            "earliest-offset" => StartupMode::Earliest,
            "latest-offset" => StartupMode::Latest,
            "group-offsets" => StartupMode::GroupOffsets,
            "timestamp" => StartupMode::Timestamp(timestamp_millis.ok_or_else(|| {
                "`scan.startup.mode: timestamp` needs `scan.startup.timestamp-millis` (milliseconds \
                 since the epoch)"
                    .to_string()
            })?),
            "specific-offsets" => {
                return Err("`scan.startup.mode: specific-offsets` is not supported; use \
                            earliest-offset, latest-offset, group-offsets or timestamp"
                    .into())
            }
            other => {
                return Err(format!(
                    "`scan.startup.mode` must be earliest-offset, latest-offset, group-offsets or \
                     timestamp, not `{other}`"
                ))
            }
        };
        if timestamp_millis.is_some() && !matches!(parsed, StartupMode::Timestamp(_)) {
            return Err(
                "`scan.startup.timestamp-millis` is only used with `scan.startup.mode: timestamp`"
                    .into(),
            );
        }
        Ok(parsed)
    }
}

/// When a source ends (Flink's `scan.bounded.mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BoundedMode {
    /// `unbounded`: never; new partitions are discovered while running.
    #[default]
    Unbounded,
    /// `latest-offset`: each partition ends at the end offset it had when the source first
    /// assigned it (kept in the checkpoint, so a restored source stops at the same offsets). No
    /// partition discovery after the start.
    LatestOffset,
}

impl BoundedMode {
    /// Parses `scan.bounded.mode`.
    ///
    /// # Errors
    /// An unknown or unsupported mode.
    pub fn parse(mode: &str) -> Result<Self, String> {
        match mode {
            "unbounded" => Ok(BoundedMode::Unbounded),
            "latest-offset" => Ok(BoundedMode::LatestOffset),
            "group-offsets" | "timestamp" | "specific-offsets" => Err(format!(
                "`scan.bounded.mode: {mode}` is not supported; use unbounded or latest-offset"
            )),
            other => Err(format!(
                "`scan.bounded.mode` must be unbounded or latest-offset, not `{other}`"
            )),
        }
    }
}

/// The default of `scan.topic-partition-discovery.interval`.
pub const DEFAULT_DISCOVERY_INTERVAL: Duration = Duration::from_secs(30);

/// How long a request to the broker (metadata, offset look-ups) may take before the source
/// fails: the restart strategy then retries the whole subtask.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What a Kafka source reads, and from where.
#[derive(Clone, Debug)]
pub struct KafkaSourceOptions {
    /// `bootstrap.servers`: `host:port[,host:port…]`.
    pub bootstrap_servers: String,
    pub topics: Topics,
    /// `group.id`: the consumer group whose offsets `group-offsets` starts from and to which
    /// offsets are committed when a checkpoint completes (for monitoring; the checkpoint is
    /// the truth). Without it, nothing is committed.
    pub group_id: Option<String>,
    pub startup: StartupMode,
    pub bounded: BoundedMode,
    /// `scan.topic-partition-discovery.interval`: how often new partitions (and, with a
    /// pattern, new topics) are looked for; `None` turns discovery off after the start.
    pub discovery_interval: Option<Duration>,
    /// How long one metadata or offset request may take.
    pub request_timeout: Duration,
    /// More librdkafka consumer settings (Flink's `properties.*`), applied last.
    pub properties: Vec<(String, String)>,
}

impl KafkaSourceOptions {
    /// Reads `topics` from `bootstrap_servers`, from the earliest offsets, unbounded.
    pub fn new(bootstrap_servers: impl Into<String>, topics: Topics) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            topics,
            group_id: None,
            startup: StartupMode::default(),
            bounded: BoundedMode::default(),
            discovery_interval: Some(DEFAULT_DISCOVERY_INTERVAL),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            properties: Vec::new(),
        }
    }

    pub fn group_id(mut self, group: impl Into<String>) -> Self {
        self.group_id = Some(group.into());
        self
    }

    pub fn startup(mut self, mode: StartupMode) -> Self {
        self.startup = mode;
        self
    }

    pub fn bounded(mut self, mode: BoundedMode) -> Self {
        self.bounded = mode;
        self
    }

    pub fn discovery_interval(mut self, interval: Option<Duration>) -> Self {
        self.discovery_interval = interval;
        self
    }

    /// Checks the options together.
    ///
    /// # Errors
    /// What is wrong, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err("`bootstrap.servers` must name at least one broker (`host:port`)".into());
        }
        self.topics.validate()?;
        if self.startup == StartupMode::GroupOffsets && self.group_id.is_none() {
            return Err("`scan.startup.mode: group-offsets` needs `group.id`".into());
        }
        if self.discovery_interval == Some(Duration::ZERO) {
            return Err(
                "`scan.topic-partition-discovery.interval` must be positive (leave it out for \
                 the default, 30 s)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// What a Kafka sink promises (Flink's `sink.delivery-guarantee`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeliveryGuarantee {
    /// `none`: records are sent, never waited for; a failure may lose what was in flight.
    None,
    /// `at-least-once`: at every checkpoint barrier the sink waits until the broker
    /// acknowledged (acks=all) everything sent before it, so a completed checkpoint never
    /// covers a lost record; a restore may send some again.
    #[default]
    AtLeastOnce,
}

impl DeliveryGuarantee {
    /// Parses `sink.delivery-guarantee`.
    ///
    /// # Errors
    /// `exactly-once` (no transactional sink: see the README) or an unknown value.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "none" => Ok(DeliveryGuarantee::None),
            "at-least-once" => Ok(DeliveryGuarantee::AtLeastOnce),
            "exactly-once" => Err(
                "`sink.delivery-guarantee: exactly-once` is not supported: Weir has no \
                 transactional Kafka sink (the broker its tests run cannot commit transactions, \
                 and an untested one would be worse than none). Use at-least-once, or the \
                 exactly-once file sink"
                    .into(),
            ),
            other => Err(format!(
                "`sink.delivery-guarantee` must be at-least-once or none, not `{other}`"
            )),
        }
    }
}

/// Where a Kafka sink writes.
#[derive(Clone, Debug)]
pub struct KafkaSinkOptions {
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// `topic`: one topic.
    pub topic: String,
    pub delivery: DeliveryGuarantee,
    /// How long the sink waits at a barrier (or at the end) for the broker's
    /// acknowledgements before the subtask fails.
    pub flush_timeout: Duration,
    /// More librdkafka producer settings (Flink's `properties.*`), applied last.
    pub properties: Vec<(String, String)>,
}

impl KafkaSinkOptions {
    /// At-least-once into `topic`.
    pub fn new(bootstrap_servers: impl Into<String>, topic: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            topic: topic.into(),
            delivery: DeliveryGuarantee::default(),
            flush_timeout: Duration::from_secs(60),
            properties: Vec::new(),
        }
    }

    /// Checks the options.
    ///
    /// # Errors
    /// What is wrong, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err("`bootstrap.servers` must name at least one broker (`host:port`)".into());
        }
        if self.topic.trim().is_empty() || self.topic.contains(';') {
            return Err("`topic` of a Kafka sink must name exactly one topic".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_modes_parse_with_flink_names_and_refuse_the_rest_by_key() {
        assert_eq!(
            StartupMode::parse("earliest-offset", None),
            Ok(StartupMode::Earliest)
        );
        assert_eq!(
            StartupMode::parse("latest-offset", None),
            Ok(StartupMode::Latest)
        );
        assert_eq!(
            StartupMode::parse("group-offsets", None),
            Ok(StartupMode::GroupOffsets)
        );
        assert_eq!(
            StartupMode::parse("timestamp", Some(5)),
            Ok(StartupMode::Timestamp(5))
        );
        let e = StartupMode::parse("timestamp", None).unwrap_err();
        assert!(e.contains("scan.startup.timestamp-millis"), "{e}");
        let e = StartupMode::parse("earliest-offset", Some(5)).unwrap_err();
        assert!(e.contains("scan.startup.timestamp-millis"), "{e}");
        let e = StartupMode::parse("earliest", None).unwrap_err();
        assert!(
            e.contains("scan.startup.mode") && e.contains("earliest-offset"),
            "{e}"
        );
        let e = StartupMode::parse("specific-offsets", None).unwrap_err();
        assert!(e.contains("not supported"), "{e}");
    }

    #[test]
    fn bounded_modes_and_delivery_guarantees() {
        assert_eq!(BoundedMode::parse("unbounded"), Ok(BoundedMode::Unbounded));
        assert_eq!(
            BoundedMode::parse("latest-offset"),
            Ok(BoundedMode::LatestOffset)
        );
        assert!(BoundedMode::parse("timestamp")
            .unwrap_err()
            .contains("scan.bounded.mode"));
        assert_eq!(
            DeliveryGuarantee::parse("at-least-once"),
            Ok(DeliveryGuarantee::AtLeastOnce)
        );
        assert_eq!(
            DeliveryGuarantee::parse("none"),
            Ok(DeliveryGuarantee::None)
        );
        let e = DeliveryGuarantee::parse("exactly-once").unwrap_err();
        assert!(
            e.contains("sink.delivery-guarantee") && e.contains("not supported"),
            "{e}"
        );
    }

    #[test]
    fn topic_patterns_match_whole_names() {
        let m = TopicMatcher::new(&Topics::Pattern("orders-[0-9]+".into())).unwrap();
        assert!(m.matches("orders-12"));
        assert!(!m.matches("orders-12-dlq"));
        assert!(!m.matches("old-orders-1"));
        let e = Topics::Pattern("orders-(".into()).validate().unwrap_err();
        assert!(e.contains("topic-pattern"), "{e}");
        assert!(Topics::List(vec![])
            .validate()
            .unwrap_err()
            .contains("`topic`"));
    }

    #[test]
    fn options_are_checked_together() {
        let o = KafkaSourceOptions::new("127.0.0.1:9092", Topics::List(vec!["t".into()]));
        assert_eq!(o.validate(), Ok(()));
        let e = o
            .clone()
            .startup(StartupMode::GroupOffsets)
            .validate()
            .unwrap_err();
        assert!(e.contains("group.id"), "{e}");
        let e = KafkaSourceOptions::new(" ", Topics::List(vec!["t".into()]))
            .validate()
            .unwrap_err();
        assert!(e.contains("bootstrap.servers"), "{e}");
        let e = KafkaSinkOptions::new("b:1", "a;b").validate().unwrap_err();
        assert!(e.contains("exactly one topic"), "{e}");
    }
}
