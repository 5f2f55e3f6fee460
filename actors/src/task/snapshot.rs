//! Checkpoints at a subtask: the synchronous part in the handler, the upload in the background.
//!
//! The synchronous part stops the stream: finish the operators first if the barrier drains,
//! flush, capture each chain member's state, forward the barrier on every output channel. The
//! upload (encoding keyed state, writing every blob) runs on the process's checkpoint I/O
//! runtime ([`crate::io`]) while records keep flowing, and ends with an acknowledgement (or a
//! decline) to the job manager.
//!
//! An unaligned snapshot ([`Task::checkpoint_unaligned`]) is taken the same way, but its
//! upload waits for the checkpoint's channel state: the input batches the barrier overtook,
//! copied (encoded) when the snapshot is taken and, for channels whose barrier has not arrived
//! yet, as they arrive ([`Task::record`]), until the gate says the channel state is complete
//! ([`Task::channel_state_done`]: every channel's barrier has arrived); they are uploaded with
//! the operators' state, one channel-state blob per chain member that had any.

use std::any::Any;
use std::time::{Duration, Instant};

use tracing::{debug, warn};
use weir::checkpoint::paths::{state_hint, StatePart};
use weir::checkpoint::storage::{CheckpointStorage, SnapshotLocation};
use weir::element::Barrier;
use weir::ids::CheckpointId;
use weir::state::channel;
use weir::vertex::VertexSnapshot;

use weir::gate::RESTORED_CHANNEL;

use super::{RestoredBatch, Task};
use crate::messages::*;

/// A snapshot whose synchronous part is done: what it captured and where it goes.
pub(super) struct Taken {
    barrier: Barrier,
    location: SnapshotLocation,
    members: Vec<Member>,
    sync_micros: u64,
    alignment: Duration,
}

/// An unaligned snapshot waiting for its channel state.
pub(super) struct PendingUnaligned {
    taken: Taken,
    /// Per chain member: the encoded batches of its input the barrier overtook, in order.
    recorded: Vec<Vec<Vec<u8>>>,
    bytes: usize,
}

impl PendingUnaligned {
    fn id(&self) -> CheckpointId {
        self.taken.barrier.id
    }
}

impl Task {
    /// Snapshots `barrier` (aligned for `alignment`), forwards it, and starts the upload.
    pub(super) fn checkpoint(&mut self, barrier: Barrier, alignment: Duration) {
        if let Some(taken) = self.take_snapshot(barrier, alignment) {
            self.upload(taken, None);
        }
    }

    /// Snapshots `barrier` at once, ahead of the input it overtook, and forwards it; the upload
    /// waits for the channel state.
    pub(super) fn checkpoint_unaligned(&mut self, barrier: Barrier, alignment: Duration) {
        if let Some(old) = self.unaligned.take() {
            // The gate declines a capture before it starts the next; nothing is left to upload.
            debug!(checkpoint_id = old.id().0, "unaligned snapshot dropped");
        }
        let Some(taken) = self.take_snapshot(barrier, alignment) else {
            return;
        };
        let mut pending = PendingUnaligned {
            taken,
            recorded: vec![Vec::new(); self.setup.chain.len()],
            bytes: 0,
        };
        // Copy the batches the barrier overtook, where they wait.
        let chain = &self.setup.chain;
        let mut failed = None;
        for (channel, batch) in self.gate.overtaken(barrier.id) {
            let (member, records) = if channel == RESTORED_CHANNEL {
                match batch.downcast_ref::<RestoredBatch>() {
                    Some(r) => (r.member, r.records.as_ref()),
                    None => continue,
                }
            } else {
                (0, batch.as_ref())
            };
            match chain.encode_input(member, records) {
                Ok(bytes) => {
                    pending.bytes += bytes.len();
                    pending.recorded[member].push(bytes);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        match failed {
            None => self.unaligned = Some(pending),
            Some(e) => self.give_up_unaligned(barrier.id, &e),
        }
    }

    /// A batch that cannot be encoded gives the checkpoint up (declined), not the job.
    fn give_up_unaligned(&mut self, id: CheckpointId, e: &dyn std::fmt::Display) {
        self.unaligned = None;
        warn!(
            job_id = %self.setup.job_id,
            uid = %self.setup.info.uid,
            subtask = self.setup.info.index,
            checkpoint_id = id.0,
            error = %e,
            "cannot record channel state"
        );
        self.report(TaskEventKind::Decline {
            id,
            reason: format!("cannot record channel state: {e}"),
        });
    }

    /// Copies `batch`, an arriving input of chain member `member`, as channel state of
    /// checkpoint `id`.
    pub(super) fn record(&mut self, id: CheckpointId, member: usize, batch: &(dyn Any + Send)) {
        let Some(pending) = self.unaligned.as_mut().filter(|p| p.id() == id) else {
            return;
        };
        match self.setup.chain.encode_input(member, batch) {
            Ok(bytes) => {
                pending.bytes += bytes.len();
                pending.recorded[member].push(bytes);
            }
            Err(e) => self.give_up_unaligned(id, &e),
        }
    }

    /// The channel state of checkpoint `id` is complete: upload it with the snapshot.
    pub(super) fn channel_state_done(&mut self, id: CheckpointId) {
        let Some(pending) = self.unaligned.take_if(|p| p.id() == id) else {
            return;
        };
        debug!(
            job_id = %self.setup.job_id,
            uid = %self.setup.info.uid,
            subtask = self.setup.info.index,
            checkpoint_id = id.0,
            persisted_bytes = pending.bytes,
            "channel state recorded"
        );
        let blobs = pending
            .recorded
            .iter()
            .map(|batches| (!batches.is_empty()).then(|| channel::encode_blob(batches)))
            .collect();
        self.upload(pending.taken, Some(blobs));
    }

    /// Checkpoint `id` was given up here (declined or aborted): drop its unaligned snapshot.
    pub(super) fn drop_unaligned(&mut self, id: CheckpointId) {
        self.unaligned.take_if(|p| p.id() == id);
    }

    /// The synchronous part: flush, capture every member's state, forward the barrier.
    fn take_snapshot(&mut self, barrier: Barrier, alignment: Duration) -> Option<Taken> {
        let started = Instant::now();
        if self.lifecycle.finish_before_snapshot(&barrier) {
            // Everything the operators hold goes out before the last barrier.
            self.finish_operators();
        }
        self.flush();
        let snapshots = self.guard(|chain, _| chain.snapshot(&barrier))?;
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
            return None;
        };
        let index = self.setup.info.index;
        let members: Vec<Member> = self
            .setup
            .vertices
            .iter()
            .copied()
            .zip(self.setup.chain.uids())
            .zip(snapshots)
            .map(|((vertex, uid), snapshot)| Member {
                vertex,
                keyed_name: state_hint(uid, index, StatePart::Keyed),
                operator_name: state_hint(uid, index, StatePart::Operator),
                channel_name: state_hint(uid, index, StatePart::Channel),
                snapshot,
                channel: None,
            })
            .collect();
        Some(Taken {
            barrier,
            location,
            members,
            sync_micros,
            alignment,
        })
    }

    /// Uploads `taken` (with each member's channel-state blob, for an unaligned snapshot) on
    /// the I/O runtime and acknowledges it.
    fn upload(&mut self, taken: Taken, channel: Option<Vec<Option<Vec<u8>>>>) {
        let Taken {
            barrier,
            location,
            mut members,
            sync_micros,
            alignment,
        } = taken;
        let unaligned = channel.is_some();
        for (member, blob) in members.iter_mut().zip(channel.into_iter().flatten()) {
            member.channel = blob;
        }
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
                        unaligned,
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
    /// What its state files are named after (see `paths::state_hint`).
    keyed_name: String,
    operator_name: String,
    channel_name: String,
    snapshot: VertexSnapshot,
    /// Unaligned: the blob of its recorded input, if any.
    channel: Option<Vec<u8>>,
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
        channel_name,
        snapshot: VertexSnapshot { keyed, operator },
        channel,
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
                Some(write(storage, location, &keyed_name, bytes).await?)
            }
            None => None,
        };
        let operator = match operator {
            Some(b) => Some(write(storage, location, &operator_name, b).await?),
            None => None,
        };
        let channel = match channel {
            Some(b) => Some(write(storage, location, &channel_name, b).await?),
            None => None,
        };
        operators.push(OperatorAck {
            vertex,
            keyed,
            operator,
            channel,
        });
    }
    Ok(operators)
}

async fn write(
    storage: &CheckpointStorage,
    location: &SnapshotLocation,
    name: &str,
    bytes: Vec<u8>,
) -> Result<weir::checkpoint::metadata::StateHandle, String> {
    storage
        .write_state(location, name, bytes)
        .await
        .map_err(|e| format!("writing state failed: {e}"))
}
