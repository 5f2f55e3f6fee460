//! Resuming a job from the latest snapshot it left behind (`weir run JOB -s latest`).
//!
//! The runtime lists the snapshots under the job's configured checkpoint and savepoint
//! directories (`storage::list_snapshots`); [`choose_latest`] picks the newest one that is
//! complete, whose state files are all there with their recorded sizes, and whose state maps
//! onto the job's graph (every operator with state still exists, max parallelism unchanged:
//! a snapshot of another job in the same directory is skipped). Reading it back still verifies
//! every file's checksum, and a damaged one fails the job with the file named.

use crate::checkpoint::restore::plan_restore;
use crate::checkpoint::storage::{SnapshotListing, SnapshotStatus};
use crate::graph::JobGraph;

/// The snapshot to resume `graph` from: the newest complete one (by completion time, then
/// checkpoint id) that `graph` can restore, if any.
pub fn choose_latest<'a>(
    listings: &'a [SnapshotListing],
    graph: &JobGraph,
    allow_non_restored_state: bool,
) -> Option<&'a SnapshotListing> {
    listings
        .iter()
        .filter_map(|l| match &l.status {
            SnapshotStatus::Complete(metadata) => Some((l, metadata)),
            SnapshotStatus::Incomplete | SnapshotStatus::Damaged(_) => None,
        })
        .filter(|(_, metadata)| plan_restore(metadata, graph, allow_non_restored_state).is_ok())
        .max_by_key(|(l, metadata)| (metadata.completion_timestamp_ms, l.checkpoint_id))
        .map(|(l, _)| l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::metadata::StateHandle;
    use crate::checkpoint::metadata::{CheckpointMetadata, OperatorSnapshot, SubtaskSnapshot};
    use crate::connectors::print::DiscardSink;
    use crate::connectors::sequence::SequenceSource;
    use crate::element::CheckpointKind;
    use crate::ids::{CheckpointId, JobId};
    use crate::stream::StreamEnvironment;

    fn graph() -> JobGraph {
        let env = StreamEnvironment::new("resume");
        env.add_source("numbers", SequenceSource::new(0, 10))
            .add_sink("out", DiscardSink::new());
        env.build().unwrap()
    }

    fn listing(
        path: &str,
        id: Option<u64>,
        completed_ms: u64,
        uid: &str,
        status: fn(CheckpointMetadata) -> SnapshotStatus,
    ) -> SnapshotListing {
        let metadata = CheckpointMetadata {
            job_id: JobId(uuid::Uuid::nil()),
            checkpoint_id: CheckpointId(id.unwrap_or(100)),
            kind: if id.is_some() {
                CheckpointKind::PERIODIC
            } else {
                CheckpointKind::Savepoint {
                    format: Default::default(),
                }
            },
            trigger_timestamp_ms: completed_ms - 1,
            completion_timestamp_ms: completed_ms,
            operators: vec![OperatorSnapshot {
                uid: uid.into(),
                name: uid.into(),
                parallelism: 1,
                max_parallelism: 128,
                subtasks: vec![SubtaskSnapshot {
                    index: 0,
                    keyed: None,
                    operator: Some(StateHandle::Inline(vec![1])),
                    channel: None,
                }],
            }],
            unaligned: false,
        };
        SnapshotListing {
            path: path.into(),
            checkpoint_id: id.map(CheckpointId),
            status: status(metadata),
            raw_state_size: None,
        }
    }

    fn complete(m: CheckpointMetadata) -> SnapshotStatus {
        SnapshotStatus::Complete(Box::new(m))
    }

    #[test]
    fn the_newest_complete_snapshot_of_this_job_wins() {
        let listings = vec![
            listing("a/chk-3", Some(3), 3_000, "numbers", complete),
            listing("sp/savepoint-1", None, 5_000, "numbers", complete),
            listing("b/chk-9", Some(9), 4_000, "numbers", complete),
            // Newer, but not usable: damaged, incomplete, or another job's.
            listing("b/chk-10", Some(10), 6_000, "numbers", |_| {
                SnapshotStatus::Damaged("truncated".into())
            }),
            listing("b/chk-11", Some(11), 7_000, "numbers", |_| {
                SnapshotStatus::Incomplete
            }),
            listing("c/chk-2", Some(2), 8_000, "another-job's-source", complete),
        ];
        let chosen = choose_latest(&listings, &graph(), false).unwrap();
        assert_eq!(chosen.path, "sp/savepoint-1");
        let without_savepoint: Vec<SnapshotListing> = listings
            .into_iter()
            .filter(|l| l.checkpoint_id.is_some())
            .collect();
        assert_eq!(
            choose_latest(&without_savepoint, &graph(), false)
                .unwrap()
                .path,
            "b/chk-9"
        );
        // Allowing non-restored state makes the other job's snapshot restorable too.
        assert_eq!(
            choose_latest(&without_savepoint, &graph(), true)
                .unwrap()
                .path,
            "c/chk-2"
        );
    }

    #[test]
    fn nothing_usable_means_nothing_to_resume() {
        let listings = vec![listing("b/chk-1", Some(1), 1_000, "numbers", |_| {
            SnapshotStatus::Incomplete
        })];
        assert!(choose_latest(&listings, &graph(), false).is_none());
        assert!(choose_latest(&[], &graph(), false).is_none());
    }
}
