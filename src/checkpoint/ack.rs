//! What a subtask acknowledges a checkpoint with, and how `_metadata` is assembled from the
//! acknowledgements of every subtask.
//!
//! A subtask runs a chain of operators; its [`SubtaskAck`] holds one [`OperatorAck`] per chain
//! member, naming where that operator's state went. Once every subtask has acknowledged, the
//! coordinator hands the acknowledgements back and [`assemble_metadata`] lays them out per
//! operator uid and subtask index — the shape `_metadata` stores and a restore reads, whatever
//! the chaining was.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::checkpoint::metadata::{
    CheckpointMetadata, OperatorSnapshot, StateHandle, SubtaskSnapshot,
};
use crate::element::CheckpointKind;
use crate::ids::{CheckpointId, JobId, TaskId};

/// Where one operator's state went (one per operator of the subtask's chain).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorAck {
    /// The operator's vertex index in the job graph.
    pub vertex: u32,
    pub keyed: Option<StateHandle>,
    pub operator: Option<StateHandle>,
    /// Unaligned checkpoints: the in-flight input the barrier overtook (channel state).
    #[serde(default)]
    pub channel: Option<StateHandle>,
}

impl OperatorAck {
    /// Bytes of this operator's state, channel state included.
    pub fn state_size(&self) -> u64 {
        self.keyed
            .iter()
            .chain(self.operator.iter())
            .chain(self.channel.iter())
            .map(StateHandle::size)
            .sum()
    }

    /// Bytes of its channel state (Flink's "persisted in-flight data").
    pub fn persisted_data(&self) -> u64 {
        self.channel.as_ref().map_or(0, StateHandle::size)
    }
}

/// A subtask's acknowledgement: where the state of each of its operators went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskAck {
    pub operators: Vec<OperatorAck>,
    /// Time the stream was stopped for the synchronous part, in microseconds.
    pub sync_micros: u64,
    /// Time from the first barrier to the last (exactly-once alignment), in microseconds.
    pub alignment_micros: u64,
    /// The subtask took its snapshot unaligned (its channel state is in `operators`).
    #[serde(default)]
    pub unaligned: bool,
}

impl SubtaskAck {
    /// Bytes of state over all operators.
    pub fn state_size(&self) -> u64 {
        self.operators.iter().map(OperatorAck::state_size).sum()
    }

    /// Bytes of channel state over all operators.
    pub fn persisted_data(&self) -> u64 {
        self.operators.iter().map(OperatorAck::persisted_data).sum()
    }
}

/// An operator as `_metadata` describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorInfo {
    pub uid: String,
    pub name: String,
    pub parallelism: u32,
    pub max_parallelism: u32,
}

/// The facts of one checkpoint that `_metadata` records besides its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointFacts {
    pub job_id: JobId,
    pub id: CheckpointId,
    pub kind: CheckpointKind,
    pub trigger_timestamp_ms: u64,
    pub completion_timestamp_ms: u64,
}

/// `_metadata` of a checkpoint from every subtask's acknowledgement: one
/// [`OperatorSnapshot`] per operator (in `operators`' order, which is the graph's vertex order)
/// with one [`SubtaskSnapshot`] per subtask index. A subtask with no state for an operator (a
/// stateless operator) gets empty handles.
pub fn assemble_metadata(
    facts: CheckpointFacts,
    operators: &[OperatorInfo],
    acks: Vec<(TaskId, SubtaskAck)>,
) -> CheckpointMetadata {
    let mut states: HashMap<(u32, u32), OperatorAck> = HashMap::new();
    let unaligned = acks.iter().any(|(_, ack)| ack.unaligned);
    for (task, ack) in acks {
        for op in ack.operators {
            states.insert((op.vertex, task.subtask), op);
        }
    }
    let operators = operators
        .iter()
        .enumerate()
        .map(|(v, info)| OperatorSnapshot {
            uid: info.uid.clone(),
            name: info.name.clone(),
            parallelism: info.parallelism,
            max_parallelism: info.max_parallelism,
            subtasks: (0..info.parallelism)
                .map(|index| {
                    let op = states.remove(&(v as u32, index));
                    let (keyed, operator, channel) =
                        op.map_or((None, None, None), |o| (o.keyed, o.operator, o.channel));
                    SubtaskSnapshot {
                        index,
                        keyed,
                        operator,
                        channel,
                    }
                })
                .collect(),
        })
        .collect();
    CheckpointMetadata {
        job_id: facts.job_id,
        checkpoint_id: facts.id,
        kind: facts.kind,
        trigger_timestamp_ms: facts.trigger_timestamp_ms,
        completion_timestamp_ms: facts.completion_timestamp_ms,
        operators,
        unaligned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn info(uid: &str, parallelism: u32) -> OperatorInfo {
        OperatorInfo {
            uid: uid.into(),
            name: uid.into(),
            parallelism,
            max_parallelism: 128,
        }
    }

    fn file(path: &str, size: u64) -> Option<StateHandle> {
        Some(StateHandle::File {
            path: path.into(),
            size,
            crc32: 7,
        })
    }

    #[test]
    fn chained_acknowledgements_are_laid_out_per_operator_and_subtask() {
        let facts = CheckpointFacts {
            job_id: JobId(Uuid::nil()),
            id: CheckpointId(4),
            kind: CheckpointKind::PERIODIC,
            trigger_timestamp_ms: 10,
            completion_timestamp_ms: 20,
        };
        // Vertex 0 (source) and 1 (map) are chained; vertex 2 (count) has two subtasks.
        let chained = |subtask: u32| {
            (
                TaskId { vertex: 0, subtask },
                SubtaskAck {
                    operators: vec![
                        OperatorAck {
                            vertex: 0,
                            keyed: None,
                            operator: Some(StateHandle::Inline(vec![subtask as u8])),
                            channel: None,
                        },
                        OperatorAck {
                            vertex: 1,
                            keyed: None,
                            operator: None,
                            channel: None,
                        },
                    ],
                    sync_micros: 1,
                    alignment_micros: 2,
                    unaligned: false,
                },
            )
        };
        let counts = |subtask: u32| {
            (
                TaskId { vertex: 2, subtask },
                SubtaskAck {
                    operators: vec![OperatorAck {
                        vertex: 2,
                        keyed: file(&format!("count-{subtask}-keyed"), 100 + subtask as u64),
                        operator: None,
                        channel: None,
                    }],
                    sync_micros: 1,
                    alignment_micros: 2,
                    unaligned: false,
                },
            )
        };
        let acks = vec![counts(1), chained(0), counts(0)];
        let operators = [info("src", 1), info("map", 1), info("count", 2)];
        let m = assemble_metadata(facts, &operators, acks);
        assert_eq!(m.checkpoint_id, CheckpointId(4));
        assert_eq!(
            (m.trigger_timestamp_ms, m.completion_timestamp_ms),
            (10, 20)
        );
        let uids: Vec<&str> = m.operators.iter().map(|o| o.uid.as_str()).collect();
        assert_eq!(uids, ["src", "map", "count"]);
        assert_eq!(
            m.operators[0].subtasks[0].operator,
            Some(StateHandle::Inline(vec![0]))
        );
        assert_eq!(m.operators[1].subtasks[0].operator, None);
        assert_eq!(m.operators[2].subtasks[1].keyed, file("count-1-keyed", 101));
        assert_eq!(m.operators[2].subtasks[1].index, 1);
        assert_eq!(m.state_size(), 1 + 100 + 101);
    }

    #[test]
    fn a_subtask_that_acknowledged_nothing_for_an_operator_has_empty_handles() {
        let facts = CheckpointFacts {
            job_id: JobId(Uuid::nil()),
            id: CheckpointId(1),
            kind: CheckpointKind::PERIODIC,
            trigger_timestamp_ms: 0,
            completion_timestamp_ms: 0,
        };
        let m = assemble_metadata(facts, &[info("sink", 2)], Vec::new());
        assert_eq!(m.operators[0].subtasks.len(), 2);
        assert!(m.operators[0]
            .subtasks
            .iter()
            .all(|s| s.keyed.is_none() && s.operator.is_none()));
    }

    #[test]
    fn channel_state_of_an_unaligned_subtask_goes_to_its_operator_and_marks_the_checkpoint() {
        let facts = CheckpointFacts {
            job_id: JobId(Uuid::nil()),
            id: CheckpointId(2),
            kind: CheckpointKind::PERIODIC,
            trigger_timestamp_ms: 0,
            completion_timestamp_ms: 0,
        };
        let ack = |subtask: u32, unaligned: bool| {
            (
                TaskId { vertex: 0, subtask },
                SubtaskAck {
                    operators: vec![OperatorAck {
                        vertex: 0,
                        keyed: None,
                        operator: None,
                        channel: unaligned.then(|| StateHandle::Inline(vec![9; 5])),
                    }],
                    sync_micros: 0,
                    alignment_micros: 0,
                    unaligned,
                },
            )
        };
        let acks = vec![ack(0, false), ack(1, true)];
        assert_eq!(acks[1].1.persisted_data(), 5);
        let m = assemble_metadata(facts, &[info("count", 2)], acks);
        assert!(m.unaligned);
        assert_eq!(m.operators[0].subtasks[0].channel, None);
        assert_eq!(
            m.operators[0].subtasks[1].channel,
            Some(StateHandle::Inline(vec![9; 5]))
        );
        assert_eq!((m.persisted_data(), m.state_size()), (5, 5));
        let decoded = CheckpointMetadata::decode(&m.encode(), "_metadata").unwrap();
        assert_eq!(decoded, m);
    }
}
