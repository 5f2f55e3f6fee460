//! `window` (alias `window-count`): tumbling, sliding or session windows per key, aggregated
//! and emitted as `{"key", "window_start", "window_end", <aggregate>: n}` once per key and
//! window when the window fires — the engine's [`WindowOperator`], so windows and the timers
//! that fire them are keyed state in every checkpoint.
//!
//! Parameters:
//! - `size` (tumbling), with `slide` (sliding), or `gap` (sessions);
//! - `time-field`: event time from this field (milliseconds since the epoch, a whole number);
//!   without it, processing time (the wall clock when the subtask processes the record);
//! - `out-of-orderness`: how far records may arrive out of order; the job's sources then
//!   generate watermarks from `time-field` with this bound (see [`super::build`]);
//! - `allowed-lateness`: how long after its end a window still takes records (each fires it
//!   again); later records are late;
//! - `aggregate`: `count` (default), `sum`, `min` or `max` of `field`;
//! - `late-data`: `drop` (default; counted) or `emit` (`{"key", "late": <record>}` in the
//!   output).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::params::{describe, ParamError, Params};
use super::value::{Field, JsonKey};
use crate::operator::OperatorError;
use crate::window::{TimeWindow, WindowAssigner, WindowFunction, WindowOperator, WindowTime};

/// The job-file window operator.
pub type JsonWindow = WindowOperator<JsonKey, Value, Value, JsonAggregate>;

/// What a job-file window computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Aggregate {
    Count,
    Sum,
    Min,
    Max,
}

impl Aggregate {
    fn name(self) -> &'static str {
        match self {
            Aggregate::Count => "count",
            Aggregate::Sum => "sum",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
        }
    }
}

/// A window's accumulator: the count, or the running sum/min/max (whole numbers stay exact).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Acc {
    Count(u64),
    Int(i64),
    Float(f64),
}

impl Acc {
    fn to_value(self) -> Value {
        match self {
            Acc::Count(n) => Value::from(n),
            Acc::Int(n) => Value::from(n),
            Acc::Float(f) => Value::from(f),
        }
    }

    fn of_number(n: &serde_json::Number) -> Acc {
        match n.as_i64() {
            Some(i) => Acc::Int(i),
            None => Acc::Float(n.as_f64().unwrap_or(0.0)),
        }
    }

    fn combine(self, other: Acc, how: Aggregate) -> Acc {
        match (how, self, other) {
            (_, Acc::Count(a), Acc::Count(b)) => Acc::Count(a + b),
            (Aggregate::Sum, Acc::Int(a), Acc::Int(b)) => match a.checked_add(b) {
                Some(s) => Acc::Int(s),
                None => Acc::Float(a as f64 + b as f64),
            },
            (Aggregate::Min, Acc::Int(a), Acc::Int(b)) => Acc::Int(a.min(b)),
            (Aggregate::Max, Acc::Int(a), Acc::Int(b)) => Acc::Int(a.max(b)),
            (how, a, b) => {
                let (a, b) = (a.as_f64(), b.as_f64());
                Acc::Float(match how {
                    Aggregate::Min => a.min(b),
                    Aggregate::Max => a.max(b),
                    _ => a + b,
                })
            }
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Acc::Count(n) => n as f64,
            Acc::Int(n) => n as f64,
            Acc::Float(f) => f,
        }
    }
}

/// The window function of the job-file window.
#[derive(Clone)]
pub struct JsonAggregate {
    uid: String,
    aggregate: Aggregate,
    field: Option<Field>,
    emit_late: bool,
}

impl WindowFunction<JsonKey, Value, Value> for JsonAggregate {
    type Acc = Acc;

    fn add(&self, acc: Option<Acc>, input: Value) -> Result<Acc, OperatorError> {
        let next = match (&self.field, self.aggregate) {
            (_, Aggregate::Count) | (None, _) => Acc::Count(1),
            (Some(f), how) => match f.get(&input) {
                Some(Value::Number(n)) => Acc::of_number(n),
                other => {
                    return Err(OperatorError::msg(format!(
                        "window `{}`: field `{f}` of record {input} is {}, not a number (to {})",
                        self.uid,
                        other.map_or("missing".to_owned(), describe),
                        how.name()
                    )))
                }
            },
        };
        Ok(match acc {
            Some(acc) => acc.combine(next, self.aggregate),
            None => next,
        })
    }

    fn merge(&self, a: Acc, b: Acc) -> Acc {
        a.combine(b, self.aggregate)
    }

    fn emit(
        &self,
        key: &JsonKey,
        w: &TimeWindow,
        acc: &Acc,
        out: &mut Vec<Value>,
    ) -> Result<(), OperatorError> {
        let mut record = json!({
            "key": key.to_value(),
            "window_start": w.start,
            "window_end": w.end,
        });
        record[self.aggregate.name()] = acc.to_value();
        out.push(record);
        Ok(())
    }

    fn late(&self, key: &JsonKey, input: Value, out: &mut Vec<Value>) -> Result<(), OperatorError> {
        if self.emit_late {
            out.push(json!({"key": key.to_value(), "late": input}));
        }
        Ok(())
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Reads the step's parameters (see the module docs).
///
/// # Errors
/// A missing or contradictory window shape, a bad duration or field, an unknown aggregate.
pub fn from_params(p: &mut Params) -> Result<JsonWindow, ParamError> {
    let invalid = |param: &str, expected: &str, found: String| ParamError::Invalid {
        param: param.to_owned(),
        expected: expected.to_owned(),
        found,
    };
    let spec = |e: crate::window::WindowSpecError, param: &str| invalid(param, e.expected, e.found);
    let size = p.opt_duration("size")?;
    let slide = p.opt_duration("slide")?;
    let gap = p.opt_duration("gap")?;
    let assigner = match (size, slide, gap) {
        (Some(size), None, None) => WindowAssigner::tumbling(size).map_err(|e| spec(e, "size"))?,
        (Some(size), Some(slide), None) => {
            WindowAssigner::sliding(size, slide).map_err(|e| spec(e, "slide"))?
        }
        (None, None, Some(gap)) => WindowAssigner::session(gap).map_err(|e| spec(e, "gap"))?,
        (None, Some(_), _) => {
            return Err(ParamError::Missing {
                param: "size".to_owned(),
            })
        }
        (None, None, None) => return Err(ParamError::other(
            "a window needs `size` (tumbling), `size` and `slide` (sliding) or `gap` (sessions)",
        )),
        (Some(_), _, Some(_)) => {
            return Err(ParamError::other(
                "`gap` (session windows) cannot be combined with `size`/`slide`",
            ))
        }
    };
    let time_field = p.opt_field("time-field")?;
    // Read here so it counts as a known parameter; the builder gives it to the sources.
    p.opt_duration("out-of-orderness")?;
    let lateness = p.opt_duration("allowed-lateness")?.unwrap_or_default();
    if time_field.is_none() && !lateness.is_zero() {
        return Err(invalid(
            "allowed-lateness",
            "no lateness without `time-field` (processing-time windows have no late records)",
            format!("{lateness:?}"),
        ));
    }
    let aggregate = match p.opt_str("aggregate")?.as_deref() {
        None | Some("count") => Aggregate::Count,
        Some("sum") => Aggregate::Sum,
        Some("min") => Aggregate::Min,
        Some("max") => Aggregate::Max,
        Some(other) => {
            return Err(invalid(
                "aggregate",
                "one of count, sum, min, max",
                format!("`{other}`"),
            ))
        }
    };
    let field = match aggregate {
        Aggregate::Count => None,
        _ => Some(p.field("field")?),
    };
    let emit_late = match p.opt_str("late-data")?.as_deref() {
        None | Some("drop") => false,
        Some("emit") => true,
        Some(other) => return Err(invalid("late-data", "drop or emit", format!("`{other}`"))),
    };
    let uid = p.uid().to_owned();
    let time = match time_field {
        None => WindowTime::Processing,
        Some(f) => {
            let uid = uid.clone();
            WindowTime::event_checked(move |r: &Value| {
                f.get(r).and_then(Value::as_i64).ok_or_else(|| {
                    OperatorError::msg(format!(
                        "window `{uid}`: field `{f}` of record {r} is {}, not a timestamp \
                         (milliseconds since the epoch, a whole number)",
                        f.get(r).map_or("missing".to_owned(), describe)
                    ))
                })
            })
        }
    };
    Ok(WindowOperator::new(
        assigner,
        time,
        millis(lateness),
        JsonAggregate {
            uid,
            aggregate,
            field,
            emit_late,
        },
    ))
}
