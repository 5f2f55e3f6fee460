//! Records of file-defined jobs are JSON values ([`serde_json::Value`]). This file holds the two
//! small types the built-in operators need on top of them: [`Field`], a (dotted) path to a field
//! of a record, and [`JsonKey`], a JSON value usable as a key of keyed state.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A path to a field of a JSON record: `word`, or `user.id` for a nested one.
///
/// Reading a path that is not there gives `None`; writing creates the objects on the way.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Field {
    text: String,
    segments: Vec<String>,
}

impl Field {
    /// Parses `a` or `a.b.c`.
    ///
    /// # Errors
    /// An empty path or an empty segment (`a..b`, `.a`), as a sentence.
    pub fn parse(text: &str) -> Result<Self, String> {
        let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
        if text.trim().is_empty() || segments.iter().any(|s| s.trim().is_empty()) {
            return Err(format!(
                "`{text}` is not a field path: use a field name, or names joined by `.` for a \
                 nested field (`user.id`)"
            ));
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value at this path, if the record has one.
    pub fn get<'a>(&self, record: &'a Value) -> Option<&'a Value> {
        self.segments
            .iter()
            .try_fold(record, |v, segment| v.as_object()?.get(segment))
    }

    /// Sets the value at this path, creating objects on the way. A record (or a value on the
    /// way) that is not an object is left as it is: only objects have fields.
    pub fn set(&self, record: &mut Value, value: Value) {
        let (last, parents) = self.segments.split_last().expect("a path has a segment");
        let mut here = record;
        for segment in parents {
            let Some(object) = here.as_object_mut() else {
                return;
            };
            here = object
                .entry(segment.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
        if let Some(object) = here.as_object_mut() {
            object.insert(last.clone(), value);
        }
    }

    /// Removes the value at this path and returns it.
    pub fn remove(&self, record: &mut Value) -> Option<Value> {
        let (last, parents) = self.segments.split_last().expect("a path has a segment");
        let mut here = record;
        for segment in parents {
            here = here.as_object_mut()?.get_mut(segment)?;
        }
        here.as_object_mut()?.remove(last)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A JSON value as a key of keyed state: its canonical JSON text (object keys sorted, no
/// spaces), so equal values are equal keys, and the key hashes the same in every process — which
/// key-by routing and key groups depend on. `1` and `1.0` are different keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JsonKey(String);

impl JsonKey {
    /// The key of `value`.
    pub fn of(value: &Value) -> Self {
        let mut text = String::new();
        write_canonical(value, &mut text);
        Self(text)
    }

    /// The key of a record's field; a missing field is the key `null`.
    pub fn of_field(field: &Field, record: &Value) -> Self {
        Self::of(field.get(record).unwrap_or(&Value::Null))
    }

    /// The canonical JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as a JSON value again.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or_else(|_| Value::String(self.0.clone()))
    }
}

impl fmt::Display for JsonKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Compact JSON with object keys in sorted order, whatever map type `serde_json` was built with.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_read_write_and_remove_nested_paths() {
        let f = Field::parse("user.id").unwrap();
        let mut r = json!({"user": {"id": 7}, "x": 1});
        assert_eq!(f.get(&r), Some(&json!(7)));
        f.set(&mut r, json!(8));
        assert_eq!(r, json!({"user": {"id": 8}, "x": 1}));
        assert_eq!(f.remove(&mut r), Some(json!(8)));
        assert_eq!(f.get(&r), None);
        Field::parse("a.b").unwrap().set(&mut r, json!(true));
        assert_eq!(r["a"]["b"], json!(true));
        let mut not_object = json!(3);
        f.set(&mut not_object, json!(1));
        assert_eq!(not_object, json!(3));
        for bad in ["", "a..b", ".a", " "] {
            assert!(Field::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_are_canonical_and_round_trip() {
        let a = JsonKey::of(&json!({"b": 1, "a": [1, "x"]}));
        assert_eq!(a.as_str(), r#"{"a":[1,"x"],"b":1}"#);
        assert_eq!(a.to_value(), json!({"a": [1, "x"], "b": 1}));
        assert_eq!(JsonKey::of(&json!("word")).as_str(), "\"word\"");
        assert_ne!(JsonKey::of(&json!(1)), JsonKey::of(&json!(1.0)));
        let f = Field::parse("missing").unwrap();
        assert_eq!(JsonKey::of_field(&f, &json!({})).to_value(), Value::Null);
    }
}
