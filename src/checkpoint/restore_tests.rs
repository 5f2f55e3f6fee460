//! Which new subtask replays which old subtask's channel state (`restore::plan_restore`).

use super::*;
use crate::checkpoint::metadata::{OperatorSnapshot, SubtaskSnapshot};
use crate::connectors::print::DiscardSink;
use crate::connectors::sequence::SequenceSource;
use crate::element::CheckpointKind;
use crate::functions::Count;
use crate::ids::{CheckpointId, JobId};
use crate::stream::StreamEnvironment;

/// src(1) → key_by → `count`(p); src2(1) → rebalance → `map`(p).
fn graph(p: u32) -> JobGraph {
    let env = StreamEnvironment::new("t");
    env.set_parallelism(1);
    env.add_source("src", SequenceSource::new(0, 10))
        .key_by(|v: &u64| *v)
        .process("count", Count::default())
        .parallelism(p)
        .add_sink("sink", DiscardSink::new());
    env.add_source("src2", SequenceSource::new(0, 10))
        .rebalance()
        .map("map", |v: u64| v)
        .parallelism(p)
        .add_sink("sink2", DiscardSink::new());
    env.build().unwrap()
}

/// A snapshot in which every one of `old` subtasks of `count` and `map` has channel state
/// `File { path: "<uid>-<index>" }`.
fn snapshot(old: u32) -> CheckpointMetadata {
    let op = |uid: &str| OperatorSnapshot {
        uid: uid.into(),
        name: uid.into(),
        parallelism: old,
        max_parallelism: 128,
        subtasks: (0..old)
            .map(|index| SubtaskSnapshot {
                index,
                keyed: None,
                operator: None,
                channel: Some(StateHandle::File {
                    path: format!("{uid}-{index}"),
                    size: 1,
                    crc32: 0,
                }),
            })
            .collect(),
    };
    CheckpointMetadata {
        job_id: JobId(uuid::Uuid::nil()),
        checkpoint_id: CheckpointId(1),
        kind: CheckpointKind::PERIODIC,
        trigger_timestamp_ms: 0,
        completion_timestamp_ms: 0,
        operators: vec![op("count"), op("map")],
        unaligned: true,
    }
}

/// Per new subtask of `uid`, the old channel-state files it replays.
fn replays(g: &JobGraph, plan: &RestorePlan, uid: &str) -> Vec<Vec<String>> {
    let v = g.vertices.iter().position(|v| v.uid == uid).unwrap();
    plan[v]
        .iter()
        .map(|s| {
            s.channel
                .iter()
                .map(|h| match h {
                    StateHandle::File { path, .. } => path.clone(),
                    StateHandle::Inline(_) => "inline".into(),
                })
                .collect()
        })
        .collect()
}

#[test]
fn same_parallelism_replays_its_own_channel_state() {
    let g = graph(2);
    let plan = plan_restore(&snapshot(2), &g, false).unwrap();
    assert_eq!(replays(&g, &plan, "count"), [["count-0"], ["count-1"]]);
    assert_eq!(replays(&g, &plan, "map"), [["map-0"], ["map-1"]]);
}

#[test]
fn rescaled_key_by_inputs_read_overlapping_ranges_and_others_go_round_robin() {
    let g = graph(3);
    let plan = plan_restore(&snapshot(2), &g, false).unwrap();
    // Key groups 0..64 and 64..128 before; 0..43, 43..86, 86..128 after.
    assert_eq!(
        replays(&g, &plan, "count"),
        vec![vec!["count-0"], vec!["count-0", "count-1"], vec!["count-1"]]
    );
    assert_eq!(
        replays(&g, &plan, "map"),
        vec![vec!["map-0"], vec!["map-1"], Vec::<&str>::new()]
    );
    let g = graph(1);
    let plan = plan_restore(&snapshot(3), &g, false).unwrap();
    assert_eq!(
        replays(&g, &plan, "count"),
        [["count-0", "count-1", "count-2"]]
    );
    assert_eq!(replays(&g, &plan, "map"), [["map-0", "map-1", "map-2"]]);
}

#[test]
fn channel_state_of_a_removed_operator_is_unmatched_state() {
    let env = StreamEnvironment::new("t");
    env.add_source("src", SequenceSource::new(0, 10))
        .add_sink("sink", DiscardSink::new());
    let g = env.build().unwrap();
    let err = plan_restore(&snapshot(1), &g, false).unwrap_err();
    assert!(matches!(err, RestoreError::UnmatchedState { .. }), "{err}");
    assert!(plan_restore(&snapshot(1), &g, true).is_ok());
}
