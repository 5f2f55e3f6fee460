//! The built-in operators of job files: their names and parameters, registered into every
//! [`Registry::new`]. The README's "Job files" section documents them for users.
//!
//! | kind | name | parameters | emits |
//! |---|---|---|---|
//! | source | `sequence` | `to`, `from` (0), `rate`, `field` (`value`) | `{"value": n}` for n in from..=to |
//! | source | `file` | `path`, `rate`, `field` (`line`), `format` (`text`; `json`: each line is a record) | `{"line": "..."}` per line |
//! | operator | `map` | `select`, `rename`, `remove`, `set` | the record, changed |
//! | operator | `filter` | `field` + `equals`, `not-equals`, `one-of`, `exists`, `greater-than`, `at-least`, `less-than`, `at-most` | records that pass |
//! | operator | `split-words` | `field` (`line`), `as` (`word`), `lowercase` (true) | `{"word": "..."}` per word |
//! | operator | `key-by` | `field` | (no operator: keys the next edge) |
//! | keyed | `count` | — | `{"key": k, "count": n}` |
//! | keyed | `sum` | `field` | `{"key": k, "sum": s}` |
//! | keyed | `window` (alias `window-count`) | `size`, `slide`, `gap`, `time-field`, `out-of-orderness`, `allowed-lateness`, `aggregate` (+ `field`), `late-data` | `{"key", "window_start", "window_end", "count"}` (or `sum`/`min`/`max`) per window when it fires |
//! | sink | `file` | `path` | exactly-once JSON lines |
//! | sink | `print` | — | JSON lines on stdout |
//! | sink | `discard` | — | nothing |
//! | source | `kafka` | `bootstrap.servers`, `topic`/`topic-pattern`, … (Flink's keys) | each record's JSON value |
//! | sink | `kafka` | `bootstrap.servers`, `topic`, `sink.delivery-guarantee` | JSON values, at least once |

use serde_json::Value;

use crate::operator::OperatorError;

use super::keyed::{CountFn, SumFn};
use super::params::ParamError;
use super::registry::Registry;
use super::sources::JsonSource;
use super::transforms::{FilterOp, MapOp, SplitWords};
use super::window;
use crate::connectors::file_lines::FileLinesSource;
use crate::connectors::file_sink::ExactlyOnceFileSink;
use crate::connectors::print::{DiscardSink, PrintSink};
use crate::connectors::sequence::SequenceSource;

/// Registers every built-in operator into `r`.
pub(crate) fn register_builtins(r: &mut Registry) {
    r.register_source("sequence", |p| {
        let from = p.opt_u64("from")?.unwrap_or(0);
        let to = p.u64("to")?;
        if to < from {
            return Err(ParamError::other(format!(
                "`to` ({to}) is below `from` ({from}): the sequence is from..=to"
            )));
        }
        let rate = p.opt_rate("rate")?;
        let field = p.field_or("field", "value")?;
        let mut source = SequenceSource::new(from, to.saturating_add(1));
        if let Some(rate) = rate {
            source = source.with_rate(rate);
        }
        Ok(JsonSource::new(source, move |n: u64| {
            let mut v = Value::Object(Default::default());
            field.set(&mut v, Value::from(n));
            v
        }))
    });
    r.register_source("file", |p| {
        let path = p.path("path")?;
        let rate = p.opt_rate("rate")?;
        let field = p.field_or("field", "line")?;
        let json = match p.opt_str("format")?.as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(ParamError::Invalid {
                    param: "format".to_owned(),
                    expected: "text or json".to_owned(),
                    found: format!("`{other}`"),
                })
            }
        };
        let uid = p.uid().to_owned();
        let mut source = FileLinesSource::new(path);
        if let Some(rate) = rate {
            source = source.with_rate(rate);
        }
        Ok(JsonSource::try_new(source, move |line: String| {
            if json {
                return serde_json::from_str(&line).map_err(|e| {
                    OperatorError::with_source(
                        format!("source `{uid}`: a line is not a JSON value: {line:.200}"),
                        e,
                    )
                });
            }
            let mut v = Value::Object(Default::default());
            field.set(&mut v, Value::String(line));
            Ok(v)
        }))
    });

    r.register_operator("map", MapOp::from_params);
    r.register_operator("filter", FilterOp::from_params);
    r.register_operator("split-words", SplitWords::from_params);

    r.register_keyed("count", |_| Ok(CountFn::default()));
    r.register_keyed("sum", |p| Ok(SumFn::new(p.field("field")?)));
    r.register_keyed("window", window::from_params);
    r.register_keyed("window-count", window::from_params);

    r.register_sink("file", |p| {
        Ok(ExactlyOnceFileSink::<Value>::new(p.path("path")?))
    });
    r.register_sink("print", |_| Ok(PrintSink::new()));
    r.register_sink("discard", |_| Ok(DiscardSink::new()));
    crate::connectors::kafka::jobfile::register(r);
}
