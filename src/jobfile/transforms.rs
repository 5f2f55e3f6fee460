//! The stateless built-in operators on JSON records: `map` (reshape fields), `filter`
//! (conditions on one field) and `split-words` (flat map: one record per word).

use serde_json::{Map, Value};

use super::params::{ParamError, Params};
use super::value::Field;
use crate::operator::{Operator, OperatorError};

/// `map`: applied to object records in this order — `select` keeps only the listed fields,
/// `rename` moves fields (`{from: to}`), `remove` drops fields, `set` sets fields to constant
/// values. Records that are not objects pass unchanged.
#[derive(Clone, Debug)]
pub struct MapOp {
    select: Option<Vec<Field>>,
    rename: Vec<(Field, Field)>,
    remove: Vec<Field>,
    set: Vec<(Field, Value)>,
}

fn field_map(p: &mut Params, name: &str) -> Result<Vec<(Field, Value)>, ParamError> {
    let Some(value) = p.value(name) else {
        return Ok(Vec::new());
    };
    let Value::Object(map) = value else {
        return Err(ParamError::Invalid {
            param: name.to_owned(),
            expected: "a map from field names to values".to_owned(),
            found: super::params::describe(&value),
        });
    };
    map.into_iter()
        .map(|(k, v)| {
            Field::parse(&k)
                .map(|f| (f, v))
                .map_err(|message| ParamError::Invalid {
                    param: name.to_owned(),
                    expected: "field names as keys".to_owned(),
                    found: message,
                })
        })
        .collect()
}

impl MapOp {
    /// Reads `select`, `rename`, `remove`, `set`; at least one is needed.
    ///
    /// # Errors
    /// None of them given, or one of the wrong shape.
    pub fn from_params(p: &mut Params) -> Result<Self, ParamError> {
        let select = p.opt_fields("select")?;
        let rename =
            field_map(p, "rename")?
                .into_iter()
                .map(|(from, to)| match to {
                    Value::String(s) => Field::parse(&s).map(|to| (from, to)).map_err(|message| {
                        ParamError::Invalid {
                            param: "rename".to_owned(),
                            expected: "a map from old to new field names".to_owned(),
                            found: message,
                        }
                    }),
                    other => Err(ParamError::Invalid {
                        param: "rename".to_owned(),
                        expected: "a map from old to new field names".to_owned(),
                        found: super::params::describe(&other),
                    }),
                })
                .collect::<Result<Vec<_>, _>>()?;
        let remove = p.opt_fields("remove")?.unwrap_or_default();
        let set = field_map(p, "set")?;
        if select.is_none() && rename.is_empty() && remove.is_empty() && set.is_empty() {
            return Err(ParamError::other(
                "`map` needs at least one of `select`, `rename`, `remove`, `set`",
            ));
        }
        Ok(Self {
            select,
            rename,
            remove,
            set,
        })
    }

    /// The record after the map.
    pub fn apply(&self, mut record: Value) -> Value {
        if !record.is_object() {
            return record;
        }
        if let Some(select) = &self.select {
            let mut kept = Value::Object(Map::new());
            for f in select {
                if let Some(v) = f.get(&record) {
                    f.set(&mut kept, v.clone());
                }
            }
            record = kept;
        }
        for (from, to) in &self.rename {
            if let Some(v) = from.remove(&mut record) {
                to.set(&mut record, v);
            }
        }
        for f in &self.remove {
            f.remove(&mut record);
        }
        for (f, v) in &self.set {
            f.set(&mut record, v.clone());
        }
        record
    }
}

impl Operator<Value, Value> for MapOp {
    fn process(&mut self, input: Vec<Value>, out: &mut Vec<Value>) -> Result<(), OperatorError> {
        out.extend(input.into_iter().map(|r| self.apply(r)));
        Ok(())
    }
}

/// One condition of `filter` on the field's value.
#[derive(Clone, Debug, PartialEq)]
enum Condition {
    Equals(Value),
    NotEquals(Value),
    OneOf(Vec<Value>),
    Exists(bool),
    GreaterThan(f64),
    AtLeast(f64),
    LessThan(f64),
    AtMost(f64),
}

/// Equality where numbers compare by value (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

impl Condition {
    fn holds(&self, value: Option<&Value>) -> bool {
        let number = || value.and_then(Value::as_f64);
        match self {
            Condition::Equals(v) => value.is_some_and(|x| json_eq(x, v)),
            Condition::NotEquals(v) => !value.is_some_and(|x| json_eq(x, v)),
            Condition::OneOf(vs) => value.is_some_and(|x| vs.iter().any(|v| json_eq(x, v))),
            Condition::Exists(e) => value.is_some_and(|v| !v.is_null()) == *e,
            Condition::GreaterThan(n) => number().is_some_and(|x| x > *n),
            Condition::AtLeast(n) => number().is_some_and(|x| x >= *n),
            Condition::LessThan(n) => number().is_some_and(|x| x < *n),
            Condition::AtMost(n) => number().is_some_and(|x| x <= *n),
        }
    }
}

/// `filter`: keeps the records whose `field` meets every condition given: `equals`,
/// `not-equals`, `one-of` (a list), `exists` (true/false), and on numbers `greater-than`,
/// `at-least`, `less-than`, `at-most`. A missing field fails every condition but
/// `not-equals` and `exists: false`.
#[derive(Clone, Debug)]
pub struct FilterOp {
    field: Field,
    conditions: Vec<Condition>,
}

impl FilterOp {
    /// Reads `field` and the conditions; at least one condition is needed.
    ///
    /// # Errors
    /// A missing `field`, no condition, or a condition of the wrong type.
    pub fn from_params(p: &mut Params) -> Result<Self, ParamError> {
        let field = p.field("field")?;
        let mut conditions = Vec::new();
        if let Some(v) = p.value("equals") {
            conditions.push(Condition::Equals(v));
        }
        if let Some(v) = p.value("not-equals") {
            conditions.push(Condition::NotEquals(v));
        }
        match p.value("one-of") {
            None => {}
            Some(Value::Array(vs)) => conditions.push(Condition::OneOf(vs)),
            Some(other) => {
                return Err(ParamError::Invalid {
                    param: "one-of".to_owned(),
                    expected: "a list of values".to_owned(),
                    found: super::params::describe(&other),
                })
            }
        }
        if p.value("exists").is_some() {
            conditions.push(Condition::Exists(p.bool_or("exists", true)?));
        }
        type Make = fn(f64) -> Condition;
        let numeric: [(&str, Make); 4] = [
            ("greater-than", Condition::GreaterThan),
            ("at-least", Condition::AtLeast),
            ("less-than", Condition::LessThan),
            ("at-most", Condition::AtMost),
        ];
        for (name, make) in numeric {
            if let Some(n) = p.opt_f64(name)? {
                conditions.push(make(n));
            }
        }
        if conditions.is_empty() {
            return Err(ParamError::other(
                "`filter` needs a condition: one of `equals`, `not-equals`, `one-of`, `exists`, \
                 `greater-than`, `at-least`, `less-than`, `at-most`",
            ));
        }
        Ok(Self { field, conditions })
    }

    /// Whether `record` passes.
    pub fn keeps(&self, record: &Value) -> bool {
        let value = self.field.get(record);
        self.conditions.iter().all(|c| c.holds(value))
    }
}

impl Operator<Value, Value> for FilterOp {
    fn process(&mut self, input: Vec<Value>, out: &mut Vec<Value>) -> Result<(), OperatorError> {
        out.extend(input.into_iter().filter(|r| self.keeps(r)));
        Ok(())
    }
}

/// `split-words`: for each record, the words of its text field `field` (default `line`), as
/// records `{<as>: word}` (default `as: word`). Words are runs of letters and digits,
/// lowercased unless `lowercase: false`. A record without that text field gives nothing.
#[derive(Clone, Debug)]
pub struct SplitWords {
    field: Field,
    to: Field,
    lowercase: bool,
}

impl SplitWords {
    /// Reads `field`, `as`, `lowercase`.
    ///
    /// # Errors
    /// A parameter of the wrong type.
    pub fn from_params(p: &mut Params) -> Result<Self, ParamError> {
        Ok(Self {
            field: p.field_or("field", "line")?,
            to: p.field_or("as", "word")?,
            lowercase: p.bool_or("lowercase", true)?,
        })
    }

    fn split(&self, record: &Value, out: &mut Vec<Value>) {
        let Some(text) = self.field.get(record).and_then(Value::as_str) else {
            return;
        };
        for word in text.split(|c: char| !c.is_alphanumeric()) {
            if word.is_empty() {
                continue;
            }
            let word = if self.lowercase {
                word.to_lowercase()
            } else {
                word.to_owned()
            };
            let mut v = Value::Object(Map::new());
            self.to.set(&mut v, Value::String(word));
            out.push(v);
        }
    }
}

impl Operator<Value, Value> for SplitWords {
    fn process(&mut self, input: Vec<Value>, out: &mut Vec<Value>) -> Result<(), OperatorError> {
        for r in &input {
            self.split(r, out);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn params(v: Value) -> Params {
        Params::new("t", v.as_object().unwrap().clone(), "/")
    }

    #[test]
    fn map_selects_renames_removes_and_sets_in_that_order() {
        let op = MapOp::from_params(&mut params(json!({
            "select": ["a", "b", "n.x"],
            "rename": {"a": "alpha"},
            "remove": ["b"],
            "set": {"source": "test", "n.y": 2},
        })))
        .unwrap();
        let out = op.apply(json!({"a": 1, "b": 2, "c": 3, "n": {"x": 1, "z": 0}}));
        assert_eq!(
            out,
            json!({"alpha": 1, "n": {"x": 1, "y": 2}, "source": "test"})
        );
        assert_eq!(op.apply(json!("text")), json!("text"));
        assert!(MapOp::from_params(&mut params(json!({}))).is_err());
        assert!(MapOp::from_params(&mut params(json!({"rename": {"a": 1}}))).is_err());
    }

    #[test]
    fn filter_conditions_all_hold() {
        let keep =
            |spec: Value, r: Value| FilterOp::from_params(&mut params(spec)).unwrap().keeps(&r);
        assert!(keep(json!({"field": "n", "equals": 1}), json!({"n": 1.0})));
        assert!(!keep(json!({"field": "n", "equals": 1}), json!({"m": 1})));
        assert!(keep(
            json!({"field": "n", "not-equals": 1}),
            json!({"m": 1})
        ));
        assert!(keep(
            json!({"field": "w", "one-of": ["a", "b"]}),
            json!({"w": "b"})
        ));
        assert!(keep(
            json!({"field": "w", "exists": false}),
            json!({"w": null})
        ));
        assert!(keep(
            json!({"field": "n", "greater-than": 2, "at-most": 5}),
            json!({"n": 5})
        ));
        assert!(!keep(
            json!({"field": "n", "greater-than": 2, "at-most": 5}),
            json!({"n": 6})
        ));
        assert!(!keep(
            json!({"field": "n", "less-than": 2}),
            json!({"n": "1"})
        ));
        assert!(keep(json!({"field": "n", "at-least": 2}), json!({"n": 2})));
        let err = FilterOp::from_params(&mut params(json!({"field": "n"}))).unwrap_err();
        assert!(err.to_string().contains("needs a condition"), "{err}");
    }

    #[test]
    fn split_words_lowercases_and_skips_non_text() {
        let mut op = SplitWords::from_params(&mut params(json!({}))).unwrap();
        let mut out = Vec::new();
        op.process(
            vec![json!({"line": "Hello, hello world-2!"}), json!({"line": 3})],
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                json!({"word": "hello"}),
                json!({"word": "hello"}),
                json!({"word": "world"}),
                json!({"word": "2"})
            ]
        );
        let op = SplitWords::from_params(&mut params(
            json!({"field": "t", "as": "w", "lowercase": false}),
        ))
        .unwrap();
        let mut out = Vec::new();
        op.split(&json!({"t": "Ab"}), &mut out);
        assert_eq!(out, vec![json!({"w": "Ab"})]);
    }
}
