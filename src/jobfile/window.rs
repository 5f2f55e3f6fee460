//! `window-count`: a tumbling-window count per key, `{"key", "window_start", "window_end",
//! "count"}` once per key and window.
//!
//! **Time.** With `time-field: ts` the window of a record is taken from that field (event time,
//! milliseconds since the epoch); without it, from the wall clock when the subtask processes the
//! record (processing time). Windows are `[start, start + size)` with `start` a multiple of
//! `size`.
//!
//! **When a window is emitted.** Operators get no timer callbacks yet, so a window is emitted
//! when the subtask next processes a batch at or after the window's end — a record whose event
//! time is past the end, or (processing time) any batch that arrives after the end — and every
//! open window is emitted at end of input (`finish`, also on a drained stop). In event time a
//! record for a window that was already emitted is late and dropped (counted in the log).
//!
//! **State.** The operator needs its input partitioned by key (a key-by edge); it keeps its open
//! windows as union operator state, and after a restore each subtask keeps the windows whose
//! key falls in its key groups, so a rescaled restore regroups them correctly.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::params::{ParamError, Params};
use super::value::{now_ms, Field, JsonKey};
use crate::operator::{Operator, OperatorError, SubtaskInfo};
use crate::state::key_group::{key_group_of, range_for_subtask};
use crate::state::operator_state::{OperatorListState, OperatorStateStore};
use crate::vertex::KeySelector;

/// A window's key and start, with its count so far (what the state holds).
type SavedWindow = (JsonKey, u64, u64);

/// See the module docs.
#[derive(Clone)]
pub struct WindowCount {
    size_ms: u64,
    time_field: Option<Field>,
    key_of: KeySelector<Value, JsonKey>,
    uid: String,
    /// Open windows by (start, key).
    windows: BTreeMap<(u64, JsonKey), u64>,
    /// Event time: the largest timestamp seen; processing time: now.
    frontier: u64,
    late: u64,
    windows_state: Option<OperatorListState<SavedWindow>>,
    frontier_state: Option<OperatorListState<u64>>,
}

impl WindowCount {
    /// Reads `size` (a duration, at least 1 ms) and `time-field`.
    ///
    /// # Errors
    /// A missing or zero `size`, or a bad `time-field`.
    pub fn from_params(
        p: &mut Params,
        key_of: KeySelector<Value, JsonKey>,
    ) -> Result<Self, ParamError> {
        let size = p.duration("size")?;
        let size_ms = size.as_millis() as u64;
        if size_ms == 0 {
            return Err(ParamError::Invalid {
                param: "size".to_owned(),
                expected: "a duration of at least 1 ms".to_owned(),
                found: format!("{size:?}"),
            });
        }
        Ok(Self {
            size_ms,
            time_field: p.opt_field("time-field")?,
            key_of,
            uid: p.uid().to_owned(),
            windows: BTreeMap::new(),
            frontier: 0,
            late: 0,
            windows_state: None,
            frontier_state: None,
        })
    }

    fn time_of(&self, record: &Value) -> Result<u64, OperatorError> {
        match &self.time_field {
            None => Ok(now_ms()),
            Some(f) => f.get(record).and_then(Value::as_u64).ok_or_else(|| {
                OperatorError::msg(format!(
                    "window-count `{}`: field `{f}` of record {record} is not a timestamp \
                     (milliseconds since the epoch, a whole number)",
                    self.uid
                ))
            }),
        }
    }

    fn emit(&self, start: u64, key: &JsonKey, count: u64, out: &mut Vec<Value>) {
        out.push(json!({
            "key": key.to_value(),
            "window_start": start,
            "window_end": start + self.size_ms,
            "count": count,
        }));
    }

    /// Emits every window that ends at or before the frontier, in (start, key) order.
    fn emit_closed(&mut self, out: &mut Vec<Value>) {
        // start + size <= frontier  ⇔  start < frontier + 1 - size.
        let cut = (self.frontier + 1).saturating_sub(self.size_ms);
        let open = self.windows.split_off(&(cut, JsonKey::lowest()));
        for ((start, key), count) in std::mem::replace(&mut self.windows, open) {
            self.emit(start, &key, count, out);
        }
    }
}

impl Operator<Value, Value> for WindowCount {
    fn open(
        &mut self,
        info: &SubtaskInfo,
        state: &mut OperatorStateStore,
    ) -> Result<(), OperatorError> {
        let windows = state.union_list::<SavedWindow>("windows")?;
        let frontier = state.union_list::<u64>("frontier")?;
        let mine = range_for_subtask(info.max_parallelism, info.parallelism, info.index);
        self.windows = windows
            .get(state)
            .into_iter()
            .filter(|(key, _, _)| mine.contains(key_group_of(key, info.max_parallelism)))
            .map(|(key, start, count)| ((start, key), count))
            .collect();
        // The earliest restored frontier: no window is closed that some old subtask kept open.
        self.frontier = frontier.get(state).into_iter().min().unwrap_or(0);
        self.windows_state = Some(windows);
        self.frontier_state = Some(frontier);
        self.uid = info.uid.clone();
        Ok(())
    }

    fn process(&mut self, input: Vec<Value>, out: &mut Vec<Value>) -> Result<(), OperatorError> {
        for record in &input {
            let t = self.time_of(record)?;
            let start = t - t % self.size_ms;
            if self.time_field.is_some() && start + self.size_ms <= self.frontier {
                self.late += 1;
                tracing::debug!(uid = %self.uid, late = self.late, "window-count dropped a late record");
                continue;
            }
            *self
                .windows
                .entry((start, (self.key_of)(record)))
                .or_insert(0) += 1;
            self.frontier = self.frontier.max(t);
        }
        if self.time_field.is_none() {
            self.frontier = self.frontier.max(now_ms());
        }
        self.emit_closed(out);
        Ok(())
    }

    fn snapshot(&mut self, state: &mut OperatorStateStore) -> Result<(), OperatorError> {
        let saved = self
            .windows
            .iter()
            .map(|((start, key), count)| (key.clone(), *start, *count))
            .collect();
        self.windows_state
            .as_ref()
            .expect("opened")
            .update(state, saved);
        self.frontier_state
            .as_ref()
            .expect("opened")
            .update(state, vec![self.frontier]);
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Value>) -> Result<(), OperatorError> {
        for ((start, key), count) in std::mem::take(&mut self.windows) {
            self.emit(start, &key, count, out);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    fn window(size: &str, time_field: Option<&str>) -> WindowCount {
        let mut params = json!({"size": size});
        if let Some(f) = time_field {
            params["time-field"] = json!(f);
        }
        let mut p = Params::new("w", params.as_object().unwrap().clone(), "/");
        let key = Field::parse("k").unwrap();
        WindowCount::from_params(
            &mut p,
            Arc::new(move |r: &Value| JsonKey::of_field(&key, r)),
        )
        .unwrap()
    }

    fn info(index: u32, parallelism: u32) -> SubtaskInfo {
        SubtaskInfo {
            uid: "w".into(),
            index,
            parallelism,
            max_parallelism: 128,
            restored: None,
        }
    }

    fn rec(k: &str, ts: u64) -> Value {
        json!({"k": k, "ts": ts})
    }

    #[test]
    fn event_time_windows_close_when_time_passes_their_end_and_at_finish() {
        let mut w = window("10 ms", Some("ts"));
        let mut state = OperatorStateStore::for_operator("w");
        w.open(&info(0, 1), &mut state).unwrap();
        let mut out = Vec::new();
        w.process(vec![rec("a", 1), rec("b", 3), rec("a", 9)], &mut out)
            .unwrap();
        assert!(out.is_empty());
        w.process(vec![rec("a", 10), rec("a", 2)], &mut out)
            .unwrap();
        assert_eq!(
            out,
            vec![
                json!({"key": "a", "window_start": 0, "window_end": 10, "count": 2}),
                json!({"key": "b", "window_start": 0, "window_end": 10, "count": 1}),
            ]
        );
        assert_eq!(w.late, 1, "ts 2 arrived after its window closed");
        out.clear();
        w.finish(&mut out).unwrap();
        assert_eq!(
            out,
            vec![json!({"key": "a", "window_start": 10, "window_end": 20, "count": 1})]
        );
        let err = w.process(vec![json!({"k": "a"})], &mut out).unwrap_err();
        assert!(err.to_string().contains("field `ts`"), "{err}");
    }

    #[test]
    fn open_windows_survive_a_rescaled_restore_in_the_subtask_that_owns_their_key() {
        let mut w = window("1 min", Some("ts"));
        let mut state = OperatorStateStore::for_operator("w");
        w.open(&info(0, 1), &mut state).unwrap();
        let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
        let batch = keys.iter().map(|k| rec(k, 5)).collect();
        w.process(batch, &mut Vec::new()).unwrap();
        w.snapshot(&mut state).unwrap();
        let blob = state.snapshot().unwrap();

        let mut emitted = Vec::new();
        for index in 0..3 {
            let mut restored = OperatorStateStore::for_operator("w");
            restored.restore(&[blob.as_slice()], index, 3).unwrap();
            let mut w = window("1 min", Some("ts"));
            w.open(&info(index, 3), &mut restored).unwrap();
            w.finish(&mut emitted).unwrap();
        }
        let mut got: Vec<String> = emitted
            .iter()
            .map(|v| v["key"].as_str().unwrap().to_owned())
            .collect();
        got.sort();
        let mut want = keys.clone();
        want.sort();
        assert_eq!(got, want, "each window exactly once over the new subtasks");
        assert!(emitted.iter().all(|v| v["count"] == json!(1)));
    }

    #[test]
    fn processing_time_windows_use_the_clock() {
        let mut w = window("1 h", None);
        let mut state = OperatorStateStore::for_operator("w");
        w.open(&info(0, 1), &mut state).unwrap();
        let mut out = Vec::new();
        w.process(vec![json!({"k": 1}), json!({"k": 1})], &mut out)
            .unwrap();
        w.finish(&mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["count"], json!(2));
        assert_eq!(out[0]["key"], json!(1));
        let start = out[0]["window_start"].as_u64().unwrap();
        assert_eq!(start % 3_600_000, 0);
        assert!(start <= now_ms());
    }
}
