//! `source: kafka` and `sink: kafka` in job files, with Flink's option names.
//!
//! | key | source | sink | |
//! |---|---|---|---|
//! | `bootstrap.servers` | required | required | `host:port[,host:port…]` |
//! | `topic` | one of these two | required | a name, a list, or `a;b` (source) |
//! | `topic-pattern` | | — | a regular expression that whole topic names match |
//! | `group.id` | optional | — | offsets are committed to it when a checkpoint completes |
//! | `scan.startup.mode` | `earliest-offset` | — | `latest-offset`, `group-offsets`, `timestamp` |
//! | `scan.startup.timestamp-millis` | with `timestamp` | — | |
//! | `scan.bounded.mode` | `unbounded` | — | `latest-offset`: stop at the end offsets seen at start |
//! | `scan.topic-partition-discovery.interval` | `30 s` | — | `0 s`... refused: leave out for the default |
//! | `format` / `value.format` | `json` | `json` | the only format |
//! | `timestamp-field` | optional | — | Weir's: the record's Kafka timestamp (ms) into this field |
//! | `sink.delivery-guarantee` | — | `at-least-once` | or `none`; `exactly-once` is refused |
//! | `sink.transactional-id-prefix` | — | refused | only meaningful with exactly-once |
//! | `properties.*` | passed on | passed on | librdkafka settings, e.g. `properties.fetch.max.bytes` |

use serde_json::Value;

use super::options::{
    BoundedMode, DeliveryGuarantee, KafkaSinkOptions, KafkaSourceOptions, StartupMode, Topics,
};
use super::sink::KafkaSink;
use super::source::KafkaSource;
use crate::jobfile::{Field, ParamError, Params, Registry};

fn other(e: String) -> ParamError {
    ParamError::other(e)
}

fn format(p: &mut Params) -> Result<(), ParamError> {
    for key in ["format", "value.format"] {
        if let Some(f) = p.opt_str(key)? {
            if f != "json" {
                return Err(ParamError::Invalid {
                    param: key.into(),
                    expected: "json (the only format of the Kafka connectors)".into(),
                    found: format!("`{f}`"),
                });
            }
        }
    }
    Ok(())
}

fn properties(p: &mut Params) -> Result<Vec<(String, String)>, ParamError> {
    let mut out = Vec::new();
    for name in p.names_starting_with("properties.") {
        let value = p.str(&name)?;
        let key = &name["properties.".len()..];
        // librdkafka checks the name and the value now, not when the job starts.
        let mut c = rdkafka::ClientConfig::new();
        c.set(key, &value);
        if let Err(e) = c.create_native_config() {
            return Err(ParamError::Invalid {
                param: name.clone(),
                expected: "a librdkafka setting and a value it accepts".into(),
                found: format!("`{value}` ({e})"),
            });
        }
        out.push((key.to_string(), value));
    }
    Ok(out)
}

fn topics(p: &mut Params) -> Result<Topics, ParamError> {
    let list = match p.value("topic") {
        None => None,
        Some(Value::String(s)) => Some(s.split(';').map(|t| t.trim().to_string()).collect()),
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<String>>>()
                .ok_or_else(|| ParamError::Invalid {
                    param: "topic".into(),
                    expected: "topic names".into(),
                    found: "a list with something else".into(),
                })?,
        ),
        Some(v) => {
            return Err(ParamError::Invalid {
                param: "topic".into(),
                expected: "a topic name, a list of them, or `a;b`".into(),
                found: crate::jobfile::params::describe(&v),
            })
        }
    };
    let pattern = p.opt_str("topic-pattern")?;
    let topics =
        match (list, pattern) {
            (Some(l), None) => Topics::List(l),
            (None, Some(pattern)) => Topics::Pattern(pattern),
            (Some(_), Some(_)) => {
                return Err(other(
                    "give either `topic` or `topic-pattern`, not both".into(),
                ))
            }
            (None, None) => return Err(other(
                "a Kafka source needs `topic` (names) or `topic-pattern` (a regular expression)"
                    .into(),
            )),
        };
    topics.validate().map_err(other)?;
    Ok(topics)
}

/// The source's options from a step's parameters.
///
/// # Errors
/// A missing, unknown-valued or conflicting key, named.
pub fn source_options(p: &mut Params) -> Result<(KafkaSourceOptions, Option<Field>), ParamError> {
    let servers = p.str("bootstrap.servers")?;
    let topics = topics(p)?;
    let mut o = KafkaSourceOptions::new(servers, topics);
    o.group_id = p.opt_str("group.id")?;
    let millis = match p.opt_str("scan.startup.timestamp-millis")? {
        None => None,
        Some(t) => Some(t.parse::<i64>().map_err(|_| ParamError::Invalid {
            param: "scan.startup.timestamp-millis".into(),
            expected: "milliseconds since the epoch".into(),
            found: format!("`{t}`"),
        })?),
    };
    let mode = p.opt_str("scan.startup.mode")?;
    o.startup =
        StartupMode::parse(mode.as_deref().unwrap_or("earliest-offset"), millis).map_err(other)?;
    if let Some(b) = p.opt_str("scan.bounded.mode")? {
        o.bounded = BoundedMode::parse(&b).map_err(other)?;
    }
    if let Some(d) = p.opt_duration("scan.topic-partition-discovery.interval")? {
        if o.bounded == BoundedMode::LatestOffset {
            return Err(other(
                "`scan.topic-partition-discovery.interval` has no effect with `scan.bounded.mode: \
                 latest-offset` (a bounded source reads the partitions it finds at the start)"
                    .into(),
            ));
        }
        o.discovery_interval = Some(d);
    }
    format(p)?;
    o.properties = properties(p)?;
    let timestamp_field = p.opt_field("timestamp-field")?;
    o.validate().map_err(other)?;
    Ok((o, timestamp_field))
}

/// The sink's options from a step's parameters.
///
/// # Errors
/// A missing or refused key, named.
pub fn sink_options(p: &mut Params) -> Result<KafkaSinkOptions, ParamError> {
    let servers = p.str("bootstrap.servers")?;
    let topic = p.str("topic")?;
    let mut o = KafkaSinkOptions::new(servers, topic);
    if let Some(d) = p.opt_str("sink.delivery-guarantee")? {
        o.delivery = DeliveryGuarantee::parse(&d).map_err(other)?;
    }
    if p.opt_str("sink.transactional-id-prefix")?.is_some() {
        return Err(other(
            "`sink.transactional-id-prefix` is only meaningful with `sink.delivery-guarantee: \
             exactly-once`, which Weir's Kafka sink does not support"
                .into(),
        ));
    }
    format(p)?;
    o.properties = properties(p)?;
    o.validate().map_err(other)?;
    Ok(o)
}

/// Registers `source: kafka` and `sink: kafka`.
pub(crate) fn register(r: &mut Registry) {
    r.register_source("kafka", |p| {
        let (options, timestamp_field) = source_options(p)?;
        KafkaSource::<Value>::new(options, move |r| {
            let Some(bytes) = r.value else {
                return Ok(None);
            };
            let mut v: Value = serde_json::from_slice(bytes).map_err(|e| {
                format!(
                    "the value at {}-{} offset {} is not JSON: {e}",
                    r.topic, r.partition, r.offset
                )
            })?;
            if let (Some(f), Some(ts)) = (&timestamp_field, r.timestamp) {
                f.set(&mut v, Value::from(ts));
            }
            Ok(Some(v))
        })
        .map_err(other)
    });
    r.register_sink("kafka", |p| {
        KafkaSink::<Value>::json(sink_options(p)?).map_err(other)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(yaml: &str) -> Params {
        let v: Value = serde_yaml_like(yaml);
        Params::new("k", v.as_object().unwrap().clone(), ".")
    }

    /// Job-file keys as a JSON map (`key: value` lines, values JSON or bare text).
    fn serde_yaml_like(text: &str) -> Value {
        let mut m = serde_json::Map::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = line.split_once(": ").unwrap();
            let v = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
            m.insert(k.trim().to_string(), v);
        }
        Value::Object(m)
    }

    #[test]
    fn source_options_read_flink_keys() {
        let mut p = params(
            "bootstrap.servers: 127.0.0.1:9092\ntopic: a;b\ngroup.id: g\n\
             scan.startup.mode: timestamp\nscan.startup.timestamp-millis: 1000\n\
             scan.bounded.mode: latest-offset\nformat: json\nproperties.fetch.max.bytes: 1000\n\
             timestamp-field: ts",
        );
        let (o, ts) = source_options(&mut p).unwrap();
        assert_eq!(o.topics, Topics::List(vec!["a".into(), "b".into()]));
        assert_eq!(o.group_id.as_deref(), Some("g"));
        assert_eq!(o.startup, StartupMode::Timestamp(1000));
        assert_eq!(o.bounded, BoundedMode::LatestOffset);
        assert_eq!(
            o.properties,
            vec![("fetch.max.bytes".into(), "1000".into())]
        );
        assert_eq!(ts.unwrap().as_str(), "ts");
        assert!(p.unread().is_empty(), "{:?}", p.unread());
    }

    #[test]
    fn bad_source_options_name_their_key() {
        for (text, key) in [
            ("topic: t", "bootstrap.servers"),
            ("bootstrap.servers: b:1", "topic-pattern"),
            (
                "bootstrap.servers: b:1\ntopic: t\ntopic-pattern: x",
                "not both",
            ),
            ("bootstrap.servers: b:1\ntopic-pattern: (", "topic-pattern"),
            (
                "bootstrap.servers: b:1\ntopic: t\nscan.startup.mode: earliest",
                "scan.startup.mode",
            ),
            (
                "bootstrap.servers: b:1\ntopic: t\nscan.startup.mode: group-offsets",
                "group.id",
            ),
            (
                "bootstrap.servers: b:1\ntopic: t\nscan.bounded.mode: forever",
                "scan.bounded.mode",
            ),
            ("bootstrap.servers: b:1\ntopic: t\nformat: avro", "format"),
            (
                "bootstrap.servers: b:1\ntopic: t\nscan.startup.timestamp-millis: x",
                "timestamp-millis",
            ),
            (
                "bootstrap.servers: b:1\ntopic: t\nproperties.no.such.thing: 1",
                "properties.no.such.thing",
            ),
            (
                "bootstrap.servers: b:1\ntopic: t\nscan.bounded.mode: latest-offset\n\
                 scan.topic-partition-discovery.interval: 1 s",
                "no effect",
            ),
        ] {
            let e = source_options(&mut params(text)).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn the_sink_refuses_exactly_once_and_transactional_ids_by_name() {
        let e = sink_options(&mut params(
            "bootstrap.servers: b:1\ntopic: t\nsink.delivery-guarantee: exactly-once",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("sink.delivery-guarantee") && e.contains("not supported"),
            "{e}"
        );
        let e = sink_options(&mut params(
            "bootstrap.servers: b:1\ntopic: t\nsink.transactional-id-prefix: x",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("sink.transactional-id-prefix"), "{e}");
        let o = sink_options(&mut params(
            "bootstrap.servers: b:1\ntopic: t\nsink.delivery-guarantee: none",
        ))
        .unwrap();
        assert_eq!(o.delivery, DeliveryGuarantee::None);
    }
}
