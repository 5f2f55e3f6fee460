//! Checkpoints at a subtask: the synchronous part in the handler, the upload in the background.
//!
//! The synchronous part stops the stream: finish the operators first if the barrier drains,
//! flush, capture each chain member's state, forward the barrier on every output channel. The
//! upload (encoding keyed state, writing every blob) runs on the process's checkpoint I/O
//! runtime ([`crate::io`]) while records keep flowing, and ends with an acknowledgement (or a
//! decline) to the job manager.

use std::time::{Duration, Instant};

use tracing::debug;
use weir::checkpoint::paths::{state_hint, StatePart};
use weir::checkpoint::storage::{CheckpointStorage, SnapshotLocation};
use weir::element::Barrier;
use weir::vertex::VertexSnapshot;

use super::Task;
use crate::messages::*;

impl Task {
    /// Snapshots `barrier` (aligned for `alignment`), forwards it, and starts the upload.
    pub(super) fn checkpoint(&mut self, barrier: Barrier, alignment: Duration) {
        let started = Instant::now();
        if self.lifecycle.finish_before_snapshot(&barrier) {
            // Everything the operators hold goes out before the last barrier.
            self.finish_operators();
        }
        self.flush();
        let Some(snapshots) = self.guard(|chain, _| chain.snapshot(&barrier)) else {
            return;
        };
        self.broadcast(|| Payload::Barrier(barrier));
        let sync_micros = started.elapsed().as_micros() as u64;
        debug!(
            job_id = %self.setup.job_id,
            uid = %self.setup.info.uid,
            subtask = self.setup.info.index,
            checkpoint_id = barrier.id.0,
            sync_micros,
            "snapshot taken"
        );
        let Some(location) = self.setup.locations.get(barrier.id) else {
            self.report(TaskEventKind::Decline {
                id: barrier.id,
                reason: "checkpoint is no longer pending".into(),
            });
            return;
        };
        let members: Vec<Member> = self
            .setup
            .vertices
            .iter()
            .copied()
            .zip(self.setup.chain.uids())
            .zip(snapshots)
            .map(|((vertex, uid), snapshot)| Member {
                vertex,
                keyed_name: state_hint(uid, self.setup.info.index, StatePart::Keyed),
                operator_name: state_hint(uid, self.setup.info.index, StatePart::Operator),
                snapshot,
            })
            .collect();
        let storage = self.setup.storage.clone();
        let manager = self.setup.manager.clone();
        let (attempt, task) = (self.setup.attempt, self.setup.task);
        let alignment_micros = alignment.as_micros() as u64;
        crate::io::handle().spawn(async move {
            let kind = match upload(&storage, &location, members).await {
                Ok(operators) => TaskEventKind::Acknowledge {
                    id: barrier.id,
                    ack: SubtaskAck {
                        operators,
                        sync_micros,
                        alignment_micros,
                    },
                },
                Err(reason) => TaskEventKind::Decline {
                    id: barrier.id,
                    reason,
                },
            };
            manager.do_send(TaskEvent {
                attempt,
                task,
                kind,
            });
        });
    }
}

/// One chain member's captured state, with where it goes.
struct Member {
    /// The member's vertex in the job graph.
    vertex: u32,
    /// What its keyed and operator state files are named after (see `paths::state_hint`).
    keyed_name: String,
    operator_name: String,
    snapshot: VertexSnapshot,
}

/// Encodes and writes every member's state; where each went, or why it failed.
async fn upload(
    storage: &CheckpointStorage,
    location: &SnapshotLocation,
    members: Vec<Member>,
) -> Result<Vec<OperatorAck>, String> {
    let mut operators = Vec::with_capacity(members.len());
    for Member {
        vertex,
        keyed_name,
        operator_name,
        snapshot: VertexSnapshot { keyed, operator },
    } in members
    {
        let keyed = match keyed {
            Some(blob) => {
                // Keyed state was captured at the barrier; encode it here, off the subtask's
                // thread.
                let bytes = tokio::task::spawn_blocking(move || blob.encode())
                    .await
                    .map_err(|e| format!("encoding keyed state failed: {e}"))?
                    .map_err(|e| format!("encoding keyed state failed: {e}"))?;
                Some(
                    storage
                        .write_state(location, &keyed_name, bytes)
                        .await
                        .map_err(|e| format!("writing state failed: {e}"))?,
                )
            }
            None => None,
        };
        let operator = match operator {
            Some(b) => Some(
                storage
                    .write_state(location, &operator_name, b)
                    .await
                    .map_err(|e| format!("writing state failed: {e}"))?,
            ),
            None => None,
        };
        operators.push(OperatorAck {
            vertex,
            keyed,
            operator,
        });
    }
    Ok(operators)
}
