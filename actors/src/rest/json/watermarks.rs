//! `GET /jobs/:id/vertices/:uid/watermarks` (Flink's shape: the vertex's
//! `<subtask>.currentInputWatermark` metrics as `[{"id", "value"}]`, values as strings).
//!
//! A subtask's watermark is the last one its task forwarded (its input watermark, which its
//! chain members all share; for a source, the one it generated). Before the first, Flink's
//! `Long.MIN_VALUE` is reported, as Flink does.

use serde_json::{json, Value};

use super::jobs::Subtasks;
use super::vertex::chain_counters;
use crate::metrics::SubtaskSnapshot;
use crate::rest::jobs::RegisteredJob;

/// The watermarks of vertex `index`, `None` for an unknown vertex.
pub fn vertex_watermarks(job: &RegisteredJob, index: usize, subtasks: &Subtasks) -> Option<Value> {
    let v = job.vertices.get(index)?;
    Some(watermarks(
        v.parallelism,
        &chain_counters(job, index, subtasks),
    ))
}

/// One entry per subtask `0..parallelism`, from the counters of those that reported.
pub fn watermarks(parallelism: u32, counters: &[(u32, &SubtaskSnapshot)]) -> Value {
    let entries: Vec<Value> = (0..parallelism)
        .map(|i| {
            let ms = counters
                .iter()
                .find(|(s, _)| *s == i)
                .and_then(|(_, c)| c.watermark)
                .unwrap_or(i64::MIN);
            json!({
                "id": format!("{i}.currentInputWatermark"),
                "value": ms.to_string(),
            })
        })
        .collect();
    Value::Array(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_subtask_reports_its_watermark_and_long_min_before_the_first() {
        let seen = SubtaskSnapshot {
            watermark: Some(1_700),
            ..SubtaskSnapshot::default()
        };
        let none = SubtaskSnapshot::default();
        let v = watermarks(3, &[(0, &seen), (1, &none)]);
        assert_eq!(
            v,
            json!([
                {"id": "0.currentInputWatermark", "value": "1700"},
                {"id": "1.currentInputWatermark", "value": "-9223372036854775808"},
                {"id": "2.currentInputWatermark", "value": "-9223372036854775808"},
            ])
        );
    }
}
