//! Partitions as splits: which source subtask reads which partition, and what a subtask
//! checkpoints about them. Pure (no client), so restore and rescale are tested without a
//! broker.
//!
//! Every subtask finds the partitions itself (metadata) and keeps those it owns: partition `p`
//! of topic `t` belongs to subtask `(crc32(t) + p) mod parallelism` — Flink's rule with a hash
//! that is the same in every process — so a topic's partitions spread round robin and no
//! coordinator is needed, also for partitions created while the job runs.
//!
//! The checkpointed state is a union list of [`SplitEntry`]: each subtask writes one entry per
//! partition it owns, with the offset of the next record it will emit. A restored subtask sees
//! every entry (of every old subtask, whatever the old parallelism) and takes the partitions it
//! owns now: that is how a rescaled job redistributes partitions, each exactly once.
//!
//! A partition that no entry lists has emitted nothing before the checkpoint. It starts at the
//! startup mode's offset if it belongs to a subtask that had not finished its first discovery
//! when the checkpoint was taken (an [`SplitEntry::Undiscovered`] marker covers it), and at its
//! earliest offset otherwise (it appeared after the start, as Flink's discovered partitions do).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A topic partition.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }

    /// The subtask (of `parallelism`) that reads this partition.
    pub fn owner(&self, parallelism: u32) -> u32 {
        let p = u64::from(parallelism.max(1));
        let start = u64::from(crc32fast::hash(self.topic.as_bytes()));
        ((start + u64::from(self.partition.unsigned_abs())) % p) as u32
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Where a partition's reading stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitPosition {
    /// The offset of the next record to emit.
    pub next: i64,
    /// Bounded mode: the offset at which the partition ends (exclusive).
    pub stop: Option<i64>,
}

impl SplitPosition {
    /// Whether every record before `stop` was emitted.
    pub fn is_finished(&self) -> bool {
        self.stop.is_some_and(|s| self.next >= s)
    }
}

/// One element of the source's union list state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SplitEntry {
    /// A partition and where it stands.
    Partition {
        split: TopicPartition,
        position: SplitPosition,
    },
    /// Subtask `index` of `parallelism` had not finished its first discovery: the partitions
    /// it owns that no entry lists still start at the startup mode's offsets.
    Undiscovered { index: u32, parallelism: u32 },
}

/// What a (re)starting subtask takes from the restored entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// The partitions this subtask owns now, with their positions.
    pub owned: BTreeMap<TopicPartition, SplitPosition>,
    /// Every partition listed by any entry (owned by whichever subtask), so discovery does not
    /// take a listed partition for a new one.
    pub listed: Vec<TopicPartition>,
    /// The markers of subtasks whose first discovery had not finished.
    pub undiscovered: Vec<(u32, u32)>,
}

impl Restored {
    /// Takes this subtask's share of `entries` (all entries of a union list state).
    pub fn take(entries: &[SplitEntry], index: u32, parallelism: u32) -> Self {
        let mut r = Restored::default();
        for e in entries {
            match e {
                SplitEntry::Partition { split, position } => {
                    r.listed.push(split.clone());
                    if split.owner(parallelism) == index {
                        r.owned.insert(split.clone(), *position);
                    }
                }
                SplitEntry::Undiscovered { index, parallelism } => {
                    if !r.undiscovered.contains(&(*index, *parallelism)) {
                        r.undiscovered.push((*index, *parallelism));
                    }
                }
            }
        }
        r.listed.sort();
        r.listed.dedup();
        r
    }

    /// Whether a partition that no entry lists still starts at the startup mode's offsets
    /// (rather than at its earliest one).
    pub fn starts_at_startup_mode(&self, split: &TopicPartition) -> bool {
        self.undiscovered
            .iter()
            .any(|&(index, parallelism)| split.owner(parallelism) == index)
    }
}

/// The entries a subtask checkpoints: its partitions, and while its first discovery is
/// pending, the markers that decide how the partitions it has not seen yet start.
pub fn snapshot_entries(
    owned: &BTreeMap<TopicPartition, SplitPosition>,
    pending_markers: &[(u32, u32)],
) -> Vec<SplitEntry> {
    let mut out: Vec<SplitEntry> = owned
        .iter()
        .map(|(split, position)| SplitEntry::Partition {
            split: split.clone(),
            position: *position,
        })
        .collect();
    out.extend(
        pending_markers
            .iter()
            .map(|&(index, parallelism)| SplitEntry::Undiscovered { index, parallelism }),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(parallelism: u32, partitions: i32) -> (Vec<SplitEntry>, usize) {
        let mut all = Vec::new();
        for i in 0..parallelism {
            let mut owned = BTreeMap::new();
            for t in ["a", "b"] {
                for p in 0..partitions {
                    let s = TopicPartition::new(t, p);
                    if s.owner(parallelism) == i {
                        let position = SplitPosition {
                            next: i64::from(p) * 10,
                            stop: None,
                        };
                        owned.insert(s, position);
                    }
                }
            }
            all.extend(snapshot_entries(&owned, &[]));
        }
        (all, 2 * partitions as usize)
    }

    #[test]
    fn ownership_spreads_a_topics_partitions_round_robin() {
        for p in 1..6 {
            let counts = (0..p as i32 * 3).fold(vec![0; p as usize], |mut c, part| {
                c[TopicPartition::new("orders", part).owner(p) as usize] += 1;
                c
            });
            assert!(counts.iter().all(|&c| c == 3), "{p}: {counts:?}");
        }
    }

    #[test]
    fn a_rescaled_restore_gives_every_partition_to_exactly_one_subtask_with_its_offset() {
        for (old, new) in [(1, 3), (3, 2), (2, 2), (4, 1)] {
            let (all, n) = entries(old, 5);
            let mut seen = BTreeMap::new();
            for i in 0..new {
                let r = Restored::take(&all, i, new);
                assert_eq!(r.listed.len(), n);
                for (s, pos) in r.owned {
                    assert_eq!(pos.next, i64::from(s.partition) * 10);
                    assert!(seen.insert(s, i).is_none(), "{old}→{new}: owned twice");
                }
            }
            assert_eq!(seen.len(), n, "{old}→{new}: every partition owned");
        }
    }

    #[test]
    fn undiscovered_markers_decide_how_unlisted_partitions_start_and_carry_over() {
        // Subtask 1 of 2 had not discovered its partitions at the checkpoint.
        let all = vec![SplitEntry::Undiscovered {
            index: 1,
            parallelism: 2,
        }];
        let r = Restored::take(&all, 0, 3);
        for p in 0..6 {
            let s = TopicPartition::new("t", p);
            assert_eq!(r.starts_at_startup_mode(&s), s.owner(2) == 1);
        }
        // Still pending at the next checkpoint: the same markers go into it.
        let again = snapshot_entries(&BTreeMap::new(), &r.undiscovered);
        assert_eq!(Restored::take(&again, 2, 3).undiscovered, vec![(1, 2)]);
        assert!(!Restored::default().starts_at_startup_mode(&TopicPartition::new("t", 0)));
    }

    #[test]
    fn a_bounded_partition_is_finished_at_its_stop_offset() {
        let mut p = SplitPosition {
            next: 3,
            stop: Some(5),
        };
        assert!(!p.is_finished());
        p.next = 5;
        assert!(p.is_finished());
        assert!(!SplitPosition {
            next: 9,
            stop: None
        }
        .is_finished());
    }
}
