//! The keyed built-in operators: `count` (a running count per key) and `sum` (a running sum of
//! a field per key). Both keep one value per key in keyed state and emit the new total after
//! every record, like Flink's `keyBy(...).sum(...)`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::params::describe;
use super::value::{Field, JsonKey};
use crate::operator::{KeyedProcessFunction, OperatorError, SubtaskInfo};
use crate::state::keyed::{KeyedStateStore, ValueState};

/// `count`: emits `{"key": <key>, "count": n}` for the n-th record of each key.
#[derive(Clone, Default)]
pub struct CountFn {
    state: Option<ValueState<u64>>,
}

impl KeyedProcessFunction<JsonKey, Value, Value> for CountFn {
    fn open(
        &mut self,
        _info: &SubtaskInfo,
        state: &mut KeyedStateStore<JsonKey>,
    ) -> Result<(), OperatorError> {
        self.state = Some(state.value("count")?);
        Ok(())
    }

    fn process(
        &mut self,
        key: &JsonKey,
        _input: Value,
        state: &mut KeyedStateStore<JsonKey>,
        out: &mut Vec<Value>,
    ) -> Result<(), OperatorError> {
        let handle = self.state.as_ref().expect("opened");
        let n = handle.get(state).copied().unwrap_or(0) + 1;
        handle.update(state, n);
        out.push(json!({"key": key.to_value(), "count": n}));
        Ok(())
    }
}

/// A running total: whole numbers stay exact until a fraction arrives.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
enum Total {
    Int(i64),
    Float(f64),
}

impl Total {
    fn add(self, v: &serde_json::Number) -> Total {
        match (self, v.as_i64()) {
            (Total::Int(a), Some(b)) => match a.checked_add(b) {
                Some(s) => Total::Int(s),
                None => Total::Float(a as f64 + b as f64),
            },
            (Total::Int(a), None) => Total::Float(a as f64 + v.as_f64().unwrap_or(0.0)),
            (Total::Float(a), _) => Total::Float(a + v.as_f64().unwrap_or(0.0)),
        }
    }

    fn to_value(self) -> Value {
        match self {
            Total::Int(n) => Value::from(n),
            Total::Float(f) => Value::from(f),
        }
    }
}

/// `sum`: emits `{"key": <key>, "sum": s}` after each record, `s` the sum of `field` over the
/// key's records so far. A record whose field is missing or not a number fails the subtask
/// with a message naming the operator, the field and the record.
#[derive(Clone)]
pub struct SumFn {
    field: Field,
    state: Option<ValueState<Total>>,
    uid: String,
}

impl SumFn {
    pub fn new(field: Field) -> Self {
        Self {
            field,
            state: None,
            uid: String::new(),
        }
    }
}

impl KeyedProcessFunction<JsonKey, Value, Value> for SumFn {
    fn open(
        &mut self,
        info: &SubtaskInfo,
        state: &mut KeyedStateStore<JsonKey>,
    ) -> Result<(), OperatorError> {
        self.uid = info.uid.clone();
        self.state = Some(state.value("sum")?);
        Ok(())
    }

    fn process(
        &mut self,
        key: &JsonKey,
        input: Value,
        state: &mut KeyedStateStore<JsonKey>,
        out: &mut Vec<Value>,
    ) -> Result<(), OperatorError> {
        let Some(Value::Number(n)) = self.field.get(&input) else {
            return Err(OperatorError::msg(format!(
                "sum `{}`: field `{}` of record {} is {}, not a number",
                self.uid,
                self.field,
                input,
                self.field
                    .get(&input)
                    .map_or("missing".to_owned(), describe)
            )));
        };
        let handle = self.state.as_ref().expect("opened");
        let total = handle.get(state).copied().unwrap_or(Total::Int(0)).add(n);
        handle.update(state, total);
        out.push(json!({"key": key.to_value(), "sum": total.to_value()}));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_stay_whole_until_a_fraction_arrives() {
        let n = |v: Value| match v {
            Value::Number(n) => n,
            _ => unreachable!(),
        };
        let t = Total::Int(1).add(&n(json!(2)));
        assert_eq!(t, Total::Int(3));
        assert_eq!(t.add(&n(json!(0.5))), Total::Float(3.5));
        assert_eq!(
            Total::Int(i64::MAX)
                .add(&n(json!(1)))
                .to_value()
                .as_f64()
                .unwrap(),
            i64::MAX as f64 + 1.0
        );
    }
}
