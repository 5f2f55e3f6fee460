//! The job's checkpoint lifecycle on a fake clock, with no actors: every decision the job actor
//! used to make by hand, checked through the actions it returns.

use std::time::Duration;

use super::*;
use crate::checkpoint::ack::OperatorAck;
use crate::checkpoint::metadata::StateHandle;
use crate::checkpoint::options::StorageConfig;
use crate::connectors::print::DiscardSink;
use crate::connectors::sequence::SequenceSource;
use crate::element::SavepointFormat;
use crate::functions::Count;
use crate::plan::PhysicalPlan;
use crate::stream::StreamEnvironment;

/// `Reply` carries a plain number in these tests: which request is answered.
type Lifecycle = JobCheckpoints<u32>;

fn at(ms: u64) -> Now {
    Now {
        monotonic: Duration::from_millis(ms),
        wall_ms: 1_000_000 + ms,
    }
}

fn memory(what: &str) -> String {
    format!(
        "memory://lifecycle-{}/{what}",
        uuid::Uuid::new_v4().simple()
    )
}

/// source (p=1) -> key-by -> count (p=2) -> sink (p=2, chained to count): subtasks (0,0),
/// (1,0), (1,1); interval 100 ms, timeout 1 s, one retained checkpoint.
fn graph(savepoint_dir: Option<String>) -> JobGraph {
    graph_retaining(savepoint_dir, 1)
}

fn graph_retaining(savepoint_dir: Option<String>, num_retained: u32) -> JobGraph {
    let env = StreamEnvironment::new("lifecycle");
    env.set_checkpoint_config(CheckpointConfig {
        interval: Some(Duration::from_millis(100)),
        timeout: Duration::from_secs(1),
        num_retained,
        storage: StorageConfig::FileSystem {
            dir: memory("checkpoints"),
        },
        savepoint_dir,
        ..CheckpointConfig::default()
    });
    env.add_source("src", SequenceSource::new(0, 10))
        .key_by(|v: &u64| *v)
        .process("count", Count::default())
        .parallelism(2)
        .add_sink("sink", DiscardSink::new())
        .parallelism(2);
    env.build().unwrap()
}

fn job() -> JobId {
    "0123456789abcdef0123456789abcdef".parse().unwrap()
}

fn lifecycle(graph: &JobGraph) -> Lifecycle {
    let storage = CheckpointStorage::new(&graph.config.checkpoint, job()).unwrap();
    JobCheckpoints::new(job(), graph, storage, at(0))
}

/// A lifecycle whose first attempt is RUNNING at time 0.
fn running(graph: &JobGraph) -> Lifecycle {
    let mut l = lifecycle(graph);
    let plan = PhysicalPlan::new(graph);
    l.start_attempt(plan.task_ids(), plan.sources().count(), at(0));
    l.running();
    l
}

fn t(vertex: u32, subtask: u32) -> TaskId {
    TaskId { vertex, subtask }
}

fn tasks() -> [TaskId; 3] {
    [t(0, 0), t(1, 0), t(1, 1)]
}

/// What subtask `task` acknowledges: its operators' state, 10 bytes of operator state for the
/// source, 100 bytes of keyed state per count subtask.
fn ack(task: TaskId) -> SubtaskAck {
    let operators = if task.vertex == 0 {
        vec![OperatorAck {
            vertex: 0,
            keyed: None,
            operator: Some(StateHandle::Inline(vec![0; 10])),
            channel: None,
        }]
    } else {
        vec![
            OperatorAck {
                vertex: 1,
                keyed: Some(StateHandle::File {
                    path: format!("count-{}-keyed", task.subtask),
                    size: 100,
                    crc32: 1,
                }),
                operator: None,
                channel: None,
            },
            OperatorAck {
                vertex: 2,
                keyed: None,
                operator: None,
                channel: None,
            },
        ]
    };
    SubtaskAck {
        operators,
        sync_micros: 5,
        alignment_micros: 7,
        unaligned: false,
    }
}

/// Every subtask acknowledges `id`; returns the actions of the last acknowledgement.
fn ack_all(l: &mut Lifecycle, id: CheckpointId, now: Now) -> Vec<JobAction<u32>> {
    let mut last = Vec::new();
    for task in tasks() {
        last = l.acknowledge(task, id, ack(task), now);
    }
    last
}

fn barrier(actions: &[JobAction<u32>]) -> Barrier {
    match actions {
        [JobAction::InjectBarrier { barrier, .. }, ..] => *barrier,
        other => panic!("expected a barrier first, got {other:?}"),
    }
}

/// Acknowledges and writes `_metadata` of `id`; returns the actions of its completion.
fn complete(l: &mut Lifecycle, id: CheckpointId, now: Now) -> Vec<JobAction<u32>> {
    let written = ack_all(l, id, now);
    assert!(
        matches!(written[..], [JobAction::WriteMetadata { id: w, .. }] if w == id),
        "{written:?}"
    );
    l.metadata_written(id, Ok(()), now)
}

fn replies(actions: &[JobAction<u32>]) -> Vec<(u32, Result<CompletedCheckpoint, ControlError>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            JobAction::Reply { to, result } => Some((*to, result.clone())),
            _ => None,
        })
        .collect()
}

fn has_fail_job(actions: &[JobAction<u32>]) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, JobAction::FailJob { .. }))
}

#[test]
fn a_periodic_checkpoint_goes_from_barrier_to_metadata_to_completion() {
    let g = graph(None);
    let mut l = running(&g);
    assert!(l.on_tick(at(50)).is_empty(), "not due before the interval");
    let actions = l.on_tick(at(100));
    let b = barrier(&actions);
    assert_eq!(b.id, CheckpointId(1));
    assert_eq!(b.kind, CheckpointKind::PERIODIC);
    assert_eq!(b.ending, Ending::Continue);
    assert_eq!(b.timestamp_ms, at(100).wall_ms);
    let JobAction::InjectBarrier { location, .. } = &actions[0] else {
        unreachable!()
    };
    assert!(location.external_path().ends_with("chk-1"));

    // The last acknowledgement asks for `_metadata`, laid out per operator and subtask.
    assert!(l
        .acknowledge(t(1, 0), b.id, ack(t(1, 0)), at(110))
        .is_empty());
    let actions = ack_all(&mut l, b.id, at(120));
    let [JobAction::WriteMetadata { metadata, .. }] = &actions[..] else {
        panic!("{actions:?}")
    };
    assert_eq!(metadata.checkpoint_id, CheckpointId(1));
    assert_eq!(metadata.trigger_timestamp_ms, at(100).wall_ms);
    assert_eq!(metadata.completion_timestamp_ms, at(120).wall_ms);
    assert_eq!(metadata.operators.len(), 3);
    assert_eq!(metadata.state_size(), 10 + 100 + 100);

    let actions = l.metadata_written(b.id, Ok(()), at(130));
    assert!(matches!(
        actions[..],
        [JobAction::NotifyComplete {
            id: CheckpointId(1),
            ending: Ending::Continue,
            ..
        }]
    ));
    let latest = l.latest_completed().unwrap();
    assert_eq!((latest.id, latest.state_size), (CheckpointId(1), 210));
    assert!(latest.external_path.ends_with("chk-1"));
    assert_eq!(l.restore_point().unwrap().metadata.checkpoint_id, b.id);
    assert_eq!(
        l.counts(),
        CheckpointCounts {
            restored: 0,
            total: 1,
            in_progress: 0,
            completed: 1,
            failed: 0
        }
    );
    let stats = l.stats();
    let entry = stats.latest_completed.unwrap();
    // Per operator subtask, chained or not: the source, two counts and two sinks.
    assert_eq!(entry.subtasks.len(), 5);
    assert_eq!(entry.state_size, 210);
    assert_eq!(stats.counts, l.counts());
}

#[test]
fn requests_are_refused_unless_the_job_is_running_and_not_ending() {
    let g = graph(Some(memory("savepoints")));
    let mut l = lifecycle(&g);
    let refused = l.request(
        CheckpointKind::Savepoint {
            format: SavepointFormat::Canonical,
        },
        None,
        1,
        JobStatus::Created,
        at(0),
    );
    assert!(matches!(
        refused,
        Err(ControlError::NotRunning {
            status: JobStatus::Created,
            what: "savepoint",
            ..
        })
    ));

    let mut l = running(&g);
    let stop = CheckpointKind::StopWithSavepoint {
        format: SavepointFormat::Canonical,
        drain: false,
    };
    let actions = l
        .request(stop, None, 1, JobStatus::Running, at(10))
        .unwrap();
    assert_eq!(barrier(&actions).ending, Ending::Final { drain: false });
    for kind in [stop, CheckpointKind::Checkpoint { full: true }] {
        assert!(matches!(
            l.request(kind, None, 2, JobStatus::Running, at(20)),
            Err(ControlError::Stopping { .. })
        ));
    }
    assert!(!l.is_running());
    assert!(
        l.on_tick(at(500)).is_empty(),
        "no periodic checkpoint while the job is ending"
    );
}

#[test]
fn a_savepoint_needs_a_directory_and_nothing_is_triggered_without_one() {
    let g = graph(None);
    let mut l = running(&g);
    let kind = CheckpointKind::Savepoint {
        format: SavepointFormat::Canonical,
    };
    let refused = l.request(kind, None, 1, JobStatus::Running, at(10));
    assert!(
        matches!(refused, Err(ControlError::Storage(_))),
        "{refused:?}"
    );
    assert_eq!(l.counts().total, 0);
    let dir = memory("elsewhere");
    let actions = l
        .request(kind, Some(dir.clone()), 1, JobStatus::Running, at(10))
        .unwrap();
    let JobAction::InjectBarrier { location, .. } = &actions[0] else {
        panic!("{actions:?}")
    };
    assert!(location.external_path().starts_with(&dir));
}

#[test]
fn a_savepoint_answers_its_requester_and_is_never_a_restore_point() {
    let g = graph(Some(memory("savepoints")));
    let mut l = running(&g);
    let kind = CheckpointKind::Savepoint {
        format: SavepointFormat::Canonical,
    };
    let id = barrier(
        &l.request(kind, None, 7, JobStatus::Running, at(10))
            .unwrap(),
    )
    .id;
    let actions = complete(&mut l, id, at(20));
    let replies = replies(&actions);
    assert_eq!(replies.len(), 1);
    let (to, Ok(done)) = &replies[0] else {
        panic!("{replies:?}")
    };
    assert_eq!((*to, done.id), (7, id));
    assert!(done.external_path.contains("savepoint-"));
    assert!(l.restore_point().is_none());
    assert!(l.latest_completed().is_none());
    assert!(l.retained().is_empty());
}

#[test]
fn stop_with_savepoint_is_answered_once_the_job_has_finished() {
    let g = graph(Some(memory("savepoints")));
    let mut l = running(&g);
    let kind = CheckpointKind::StopWithSavepoint {
        format: SavepointFormat::Canonical,
        drain: true,
    };
    let b = barrier(
        &l.request(kind, None, 3, JobStatus::Running, at(10))
            .unwrap(),
    );
    assert_eq!(b.ending, Ending::Final { drain: true });
    assert!(b.drains());
    let actions = complete(&mut l, b.id, at(20));
    assert!(replies(&actions).is_empty(), "not before the job ends");
    assert!(actions.iter().any(|a| matches!(
        a,
        JobAction::NotifyComplete {
            ending: Ending::Final { drain: true },
            ..
        }
    )));
    for task in tasks() {
        let finished = l.task_finished(task);
        assert_eq!(finished.is_empty(), task != t(1, 1));
    }
    let replies = replies(&l.job_ended(JobStatus::Finished));
    assert!(matches!(&replies[..], [(3, Ok(done))] if done.id == b.id));
}

#[test]
fn a_stop_whose_job_fails_afterwards_is_answered_with_the_end() {
    let g = graph(Some(memory("savepoints")));
    let mut l = running(&g);
    let kind = CheckpointKind::StopWithSavepoint {
        format: SavepointFormat::Canonical,
        drain: false,
    };
    let id = barrier(
        &l.request(kind, None, 3, JobStatus::Running, at(10))
            .unwrap(),
    )
    .id;
    complete(&mut l, id, at(20));
    let replies = replies(&l.job_ended(JobStatus::Canceled));
    assert!(matches!(
        &replies[..],
        [(
            3,
            Err(ControlError::JobEnded {
                status: JobStatus::Canceled,
                ..
            })
        )]
    ));
}

#[test]
fn a_bounded_job_takes_a_draining_final_checkpoint_once_every_source_is_exhausted() {
    let g = graph(None);
    let mut l = running(&g);
    let actions = l.source_exhausted(t(0, 0), at(10));
    let b = barrier(&actions);
    assert_eq!(b.ending, Ending::Final { drain: true });
    assert_eq!(b.kind, CheckpointKind::Checkpoint { full: false });
    assert!(matches!(
        l.request(
            CheckpointKind::PERIODIC,
            None,
            1,
            JobStatus::Running,
            at(11)
        ),
        Err(ControlError::Stopping { .. })
    ));
    assert!(
        l.on_tick(at(5_000)).is_empty(),
        "the final one does not expire"
    );
    let actions = complete(&mut l, b.id, at(20));
    assert!(actions.iter().any(|a| matches!(
        a,
        JobAction::NotifyComplete {
            ending: Ending::Final { drain: true },
            ..
        }
    )));
    assert!(l.task_finished(t(0, 0)).is_empty());
    assert!(l.task_finished(t(1, 0)).is_empty());
    assert!(
        l.task_finished(t(1, 0)).is_empty(),
        "a repeated report counts once"
    );
    assert!(matches!(
        l.task_finished(t(1, 1))[..],
        [JobAction::Finished]
    ));
}

#[test]
fn a_declined_final_checkpoint_fails_the_job_and_discards_its_files() {
    let g = graph(None);
    let mut l = running(&g);
    let id = barrier(&l.source_exhausted(t(0, 0), at(10))).id;
    let actions = l.decline(t(1, 1), id, "disk full".into(), at(20));
    assert!(matches!(actions[0], JobAction::NotifyAborted { id: i } if i == id));
    assert!(
        matches!(&actions[1], JobAction::DiscardIncomplete { id: i, location } if *i == id && location.external_path().ends_with("chk-1"))
    );
    assert!(has_fail_job(&actions));
    assert_eq!(l.counts().failed, 1);
    assert_eq!(
        l.stats().latest_failed.unwrap().failure_message.as_deref(),
        Some("was declined by task 1#1: disk full")
    );
}

#[test]
fn an_aborted_request_is_answered_with_the_reason() {
    let g = graph(None);
    let mut l = running(&g);
    let kind = CheckpointKind::Checkpoint { full: false };
    let id = barrier(
        &l.request(kind, None, 9, JobStatus::Running, at(10))
            .unwrap(),
    )
    .id;
    let actions = l.on_tick(at(10 + 1_000));
    let replies = replies(&actions);
    assert!(matches!(
        &replies[..],
        [(9, Err(ControlError::Failed { id: i, kind: "checkpoint", reason }))]
            if *i == id && reason.starts_with("expired")
    ));
    // Flink's default tolerates no failed checkpoint: the job fails over.
    assert!(has_fail_job(&actions), "{actions:?}");
}

#[test]
fn stopping_the_attempt_ends_every_pending_checkpoint_and_answers_its_requester() {
    let g = graph(Some(memory("savepoints")));
    let mut l = running(&g);
    let kind = CheckpointKind::Savepoint {
        format: SavepointFormat::Canonical,
    };
    l.request(kind, None, 4, JobStatus::Running, at(10))
        .unwrap();
    let forced = CheckpointKind::Checkpoint { full: true };
    l.request(forced, None, 5, JobStatus::Running, at(20))
        .unwrap();
    let actions = l.stop_attempt(JobStatus::Restarting, at(120));
    let discarded: Vec<CheckpointId> = actions
        .iter()
        .filter_map(|a| match a {
            JobAction::DiscardIncomplete { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(discarded, vec![CheckpointId(1), CheckpointId(2)]);
    let replies = replies(&actions);
    assert_eq!(replies.len(), 2);
    for (reply, to) in replies.iter().zip([4, 5]) {
        assert!(matches!(
            reply,
            (
                n,
                Err(ControlError::JobEnded {
                    status: JobStatus::Restarting,
                    ..
                })
            ) if *n == to
        ));
    }
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, JobAction::NotifyAborted { .. })),
        "the subtasks are gone"
    );
    assert_eq!(l.counts().failed, 2);
    assert_eq!(l.counts().in_progress, 0);
    assert!(matches!(
        l.request(kind, None, 5, JobStatus::Restarting, at(130)),
        Err(ControlError::NotRunning { .. })
    ));
    // The next attempt starts over, periodic schedule included.
    let plan = PhysicalPlan::new(&g);
    l.start_attempt(plan.task_ids(), 1, at(200));
    l.running();
    assert!(l.on_tick(at(250)).is_empty());
    assert_eq!(barrier(&l.on_tick(at(300))).id, CheckpointId(3));
}

#[test]
fn retention_keeps_num_retained_and_discards_the_rest() {
    let g = graph(None);
    let mut l = running(&g);
    let first = barrier(&l.on_tick(at(100))).id;
    complete(&mut l, first, at(110));
    let second = barrier(&l.on_tick(at(210))).id;
    let actions = complete(&mut l, second, at(220));
    assert!(actions
        .iter()
        .any(|a| matches!(a, JobAction::DiscardCompleted { ids } if ids == &vec![first])));
    assert_eq!(l.retained(), vec![second]);
    assert_eq!(l.restore_point().unwrap().metadata.checkpoint_id, second);
}

fn restored_metadata(id: u64) -> CheckpointMetadata {
    CheckpointMetadata {
        job_id: job(),
        checkpoint_id: CheckpointId(id),
        kind: CheckpointKind::PERIODIC,
        trigger_timestamp_ms: 1,
        completion_timestamp_ms: 2,
        operators: Vec::new(),
        unaligned: false,
    }
}

#[test]
fn a_claimed_snapshot_is_disposed_once_a_checkpoint_subsumes_it_and_a_restored_one_never() {
    for claim in [true, false] {
        let g = graph(None);
        let mut l = lifecycle(&g);
        let storage = CheckpointStorage::new(&g.config.checkpoint, job()).unwrap();
        let location = storage.checkpoint_location(CheckpointId(41));
        l.restored(location, restored_metadata(41), claim, at(0));
        assert_eq!(l.counts().restored, 1);
        assert_eq!(l.stats().latest_restored.unwrap().id, CheckpointId(41));
        assert_eq!(
            l.restore_point().unwrap().metadata.checkpoint_id,
            CheckpointId(41)
        );
        let plan = PhysicalPlan::new(&g);
        l.start_attempt(plan.task_ids(), 1, at(0));
        l.running();
        let id = barrier(&l.on_tick(at(100))).id;
        assert_eq!(id, CheckpointId(42), "ids continue after the restored one");
        let actions = complete(&mut l, id, at(110));
        let disposed = actions.iter().any(|a| {
            matches!(a, JobAction::DisposeClaimed { location } if location.external_path().ends_with("chk-41"))
        });
        assert_eq!(disposed, claim);
    }
}

#[test]
fn a_damaged_snapshot_given_with_s_is_never_replaced() {
    let g = graph(None);
    let mut l = lifecycle(&g);
    let storage = CheckpointStorage::new(&g.config.checkpoint, job()).unwrap();
    l.restored(
        storage.checkpoint_location(CheckpointId(7)),
        restored_metadata(7),
        false,
        at(0),
    );
    assert!(matches!(
        l.restore_point_damaged("state file truncated"),
        Fallback::Exhausted(Exhausted::Requested)
    ));
}

#[test]
fn a_damaged_latest_checkpoint_falls_back_to_older_retained_ones_in_turn() {
    let g = graph_retaining(None, 3);
    let mut l = running(&g);
    for tick in [100, 200, 300] {
        let id = barrier(&l.on_tick(at(tick))).id;
        complete(&mut l, id, at(tick + 10));
    }
    assert_eq!(
        l.retained(),
        vec![CheckpointId(1), CheckpointId(2), CheckpointId(3)]
    );
    let Fallback::Older { id, location } = l.restore_point_damaged("chk-3 truncated") else {
        panic!("expected a fallback")
    };
    assert_eq!(id, CheckpointId(2));
    assert!(location.external_path().ends_with("chk-2"));
    assert_eq!(
        l.retained(),
        vec![CheckpointId(1), CheckpointId(2)],
        "the damaged one is no longer retained, so retention never deletes it"
    );
    l.fell_back(location, restored_metadata(2), at(400));
    assert_eq!(
        l.restore_point().unwrap().metadata.checkpoint_id,
        CheckpointId(2)
    );
    assert_eq!(l.counts().restored, 1);
    let restored = l.stats().latest_restored.unwrap();
    assert_eq!(restored.id, CheckpointId(2));
    assert!(restored.external_path.ends_with("chk-2"));

    let Fallback::Older { id, location } = l.restore_point_damaged("chk-2 corrupt") else {
        panic!("expected a fallback")
    };
    assert_eq!(id, CheckpointId(1));
    l.fell_back(location, restored_metadata(1), at(500));
    assert!(matches!(
        l.restore_point_damaged("chk-1 missing"),
        Fallback::Exhausted(Exhausted::NothingOlder)
    ));
    assert!(l.retained().is_empty());
}

#[test]
fn a_sweep_keeps_what_is_in_flight_and_every_later_id() {
    let g = graph(None);
    let mut l = running(&g);
    let first = barrier(&l.on_tick(at(100))).id;
    complete(&mut l, first, at(110));
    let second = barrier(&l.on_tick(at(210))).id;
    let keep = l.sweep_keep();
    assert!(
        !keep.keeps(first),
        "completed: its directory has `_metadata` anyway"
    );
    assert!(keep.keeps(second), "in flight");
    assert!(
        keep.keeps(CheckpointId(3)) && keep.keeps(CheckpointId(99)),
        "not handed out yet"
    );
    l.stop_attempt(JobStatus::Restarting, at(220));
    assert!(
        !l.sweep_keep().keeps(second),
        "abandoned once the attempt stopped"
    );
}

#[test]
fn a_checkpoint_aborted_while_its_metadata_is_written_is_deleted_once_the_write_ends() {
    let g = graph(None);
    let mut l = running(&g);
    let id = barrier(&l.on_tick(at(100))).id;
    let written = ack_all(&mut l, id, at(110));
    assert!(matches!(written[..], [JobAction::WriteMetadata { .. }]));
    // The timeout runs out while `_metadata` is being written: aborted, but nothing deleted yet.
    let actions = l.on_tick(at(100 + 1_000));
    assert!(actions
        .iter()
        .any(|a| matches!(a, JobAction::NotifyAborted { id: i } if *i == id)));
    assert!(!actions.iter().any(|a| matches!(
        a,
        JobAction::DiscardIncomplete { .. } | JobAction::DiscardAbortedCommit { .. }
    )));
    // The write succeeds after all: the checkpoint looks complete but is not one.
    let actions = l.metadata_written(id, Ok(()), at(1_200));
    assert!(
        matches!(&actions[..], [JobAction::DiscardAbortedCommit { id: i, .. }] if *i == id),
        "{actions:?}"
    );
    assert!(l.latest_completed().is_none());
    assert_eq!(l.counts().completed, 0);
}

#[test]
fn a_failed_metadata_write_discards_at_once_and_one_ended_by_a_failover_once_it_ends() {
    let g = graph(None);
    let mut l = running(&g);
    let id = barrier(&l.on_tick(at(100))).id;
    ack_all(&mut l, id, at(110));
    let actions = l.metadata_written(id, Err("disk full".into()), at(120));
    assert!(actions
        .iter()
        .any(|a| matches!(a, JobAction::DiscardIncomplete { id: i, .. } if *i == id)));

    // (Flink's default tolerates no failure: that one asked for a failover; a forced
    // checkpoint still goes.)
    let kind = CheckpointKind::Checkpoint { full: false };
    let next = barrier(
        &l.request(kind, None, 1, JobStatus::Running, at(200))
            .unwrap(),
    )
    .id;
    ack_all(&mut l, next, at(210));
    let stopped = l.stop_attempt(JobStatus::Restarting, at(220));
    assert!(!stopped
        .iter()
        .any(|a| matches!(a, JobAction::DiscardIncomplete { .. })));
    let actions = l.metadata_written(next, Err("gone".into()), at(230));
    assert!(matches!(&actions[..], [JobAction::DiscardIncomplete { id: i, .. }] if *i == next));
}

#[test]
fn unusable_state_of_a_job_that_restored_nothing_fails_it_without_a_fallback() {
    let g = graph(None);
    let mut l = running(&g);
    assert!(matches!(
        l.restore_point_damaged("state `count` registered twice with different types"),
        Fallback::Exhausted(Exhausted::NotRestored)
    ));
}
