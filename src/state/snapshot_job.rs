//! Deferred keyed snapshots: capture a store's state at the barrier, encode it later elsewhere.
//!
//! [`KeyedStateStore::snapshot_deferred`](super::KeyedStateStore::snapshot_deferred) returns a
//! [`KeyedSnapshotJob`]: every registered state's key groups, captured copy-on-write (the
//! `heap` module docs: shared `Arc`s, O(key groups)), the restored states nobody registered
//! yet (immutable bytes, shared too) and the names and types of all of them. The job is
//! `Send + 'static` and owns what it needs, so it can be encoded on another thread while the
//! subtask goes on processing records; no write after the capture shows in it.
//!
//! [`encode_keyed`] writes the blob both for a job and for
//! [`KeyedStateStore::snapshot`](super::KeyedStateStore::snapshot) (which encodes the live
//! tables right away): one pass over the groups into one buffer through
//! [`KeyedBlobWriter`], giving exactly the bytes of
//! [`KeyedStateSnapshot::encode`](super::snapshot::KeyedStateSnapshot::encode).

use std::fmt;
use std::sync::Arc;

use super::error::StateError;
use super::key_group::KeyGroupRange;
use super::keyed::Pending;
use super::snapshot::{KeyedBlobWriter, KeyedStateMeta};
use super::table::GroupEntries;

/// What a keyed blob records besides the entries.
#[derive(Clone, Debug)]
pub(crate) struct SnapshotHeader {
    pub(crate) operator_uid: String,
    pub(crate) max_parallelism: u32,
    pub(crate) key_groups: KeyGroupRange,
    /// The registered states in registration order, then the pending ones in name order.
    pub(crate) states: Vec<KeyedStateMeta>,
}

/// The keyed state of a subtask as it was at a barrier, to be encoded into the snapshot blob
/// on any thread. Build it with
/// [`KeyedStateStore::snapshot_deferred`](super::KeyedStateStore::snapshot_deferred).
///
/// Holding a job keeps the captured key groups alive: a group written to after the capture is
/// copied once (per capture) instead of changed in place. Drop the job when the blob is
/// written.
pub struct KeyedSnapshotJob {
    header: SnapshotHeader,
    tables: Vec<Box<dyn GroupEntries + Send>>,
    pending: Vec<Arc<Pending>>,
}

impl KeyedSnapshotJob {
    pub(crate) fn new(
        header: SnapshotHeader,
        tables: Vec<Box<dyn GroupEntries + Send>>,
        pending: Vec<Arc<Pending>>,
    ) -> Self {
        debug_assert_eq!(header.states.len(), tables.len() + pending.len());
        Self {
            header,
            tables,
            pending,
        }
    }

    /// The framed keyed blob of the captured state: the same bytes
    /// [`KeyedStateStore::snapshot`](super::KeyedStateStore::snapshot) would have returned at
    /// the capture. CPU-bound (about 20 ns per entry): run it off the subtask's thread
    /// (`spawn_blocking`). Encoding again gives the same bytes.
    ///
    /// # Errors
    ///
    /// [`StateError::Encode`] if a value cannot be serialised as MessagePack.
    pub fn encode(&self) -> Result<Vec<u8>, StateError> {
        let tables: Vec<&dyn GroupEntries> = self
            .tables
            .iter()
            .map(|t| t.as_ref() as &dyn GroupEntries)
            .collect();
        let pending: Vec<&Pending> = self.pending.iter().map(Arc::as_ref).collect();
        encode_keyed(&self.header, &tables, &pending)
    }

    /// The operator the state belongs to.
    pub fn operator_uid(&self) -> &str {
        &self.header.operator_uid
    }

    /// The number of entries captured in registered states (a key with state in two states
    /// counts twice; restored states not registered yet are not counted).
    pub fn entries(&self) -> usize {
        let groups = self.header.key_groups.len();
        self.tables
            .iter()
            .map(|t| (0..groups).map(|g| t.group_len(g)).sum::<usize>())
            .sum()
    }
}

impl fmt::Debug for KeyedSnapshotJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedSnapshotJob")
            .field("operator_uid", &self.header.operator_uid)
            .field("key_groups", &self.header.key_groups)
            .field(
                "states",
                &self
                    .header
                    .states
                    .iter()
                    .map(|s| &s.name)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Bytes per entry assumed until the first chunk shows the real size (a `u64` key with a
/// small `u64` value takes 4 to 12).
const GUESSED_ENTRY_LEN: usize = 8;

/// Writes the keyed blob of `tables` (the registered states, in `header.states` order) and
/// `pending` (the states after them): per non-empty key group, ascending, one chunk per state
/// that has entries there.
pub(crate) fn encode_keyed(
    header: &SnapshotHeader,
    tables: &[&dyn GroupEntries],
    pending: &[&Pending],
) -> Result<Vec<u8>, StateError> {
    let range = header.key_groups;
    let encode_error = |state: &str, source| StateError::Encode {
        operator: header.operator_uid.clone(),
        state: state.to_string(),
        source,
    };

    // Count first: MessagePack writes lengths before items.
    let mut chunks_per_group = vec![0usize; range.len()];
    let mut entries_total = 0usize;
    for t in tables {
        for (offset, chunks) in chunks_per_group.iter_mut().enumerate() {
            let len = t.group_len(offset);
            entries_total += len;
            *chunks += usize::from(len > 0);
        }
    }
    let mut pending_bytes = 0usize;
    for p in pending {
        for (&key_group, bytes) in &p.groups {
            if let Some(offset) = range.offset_of(key_group) {
                chunks_per_group[offset] += 1;
                pending_bytes += bytes.len();
            }
        }
    }
    let groups = chunks_per_group.iter().filter(|&&c| c > 0).count();
    let chunks_total: usize = chunks_per_group.iter().sum();
    const CHUNK_OVERHEAD: usize = 32; // chunk and group headers, generously
    let capacity = 1024
        + 128 * header.states.len()
        + CHUNK_OVERHEAD * chunks_total
        + pending_bytes
        + GUESSED_ENTRY_LEN * entries_total;

    let mut w = KeyedBlobWriter::new(
        capacity,
        &header.operator_uid,
        header.max_parallelism,
        range,
        &header.states,
        groups,
    )
    .map_err(|e| encode_error("(snapshot envelope)", e))?;

    let (mut entries_done, mut entry_bytes_done, mut pending_done) = (0usize, 0usize, 0usize);
    let envelope = |e| encode_error("(snapshot envelope)", e);
    for (offset, key_group) in range.iter().enumerate() {
        if chunks_per_group[offset] == 0 {
            continue;
        }
        w.group(key_group, chunks_per_group[offset])
            .map_err(envelope)?;
        for (i, t) in tables.iter().enumerate() {
            let len = t.group_len(offset);
            if len == 0 {
                continue;
            }
            let before = w.len();
            w.chunk(i as u32, |out| t.encode_group(offset, out))
                .map_err(|e| encode_error(&header.states[i].name, e))?;
            entries_done += len;
            entry_bytes_done += w.len() - before;
        }
        for (j, p) in pending.iter().enumerate() {
            if let Some(bytes) = p.groups.get(&key_group) {
                w.chunk_bytes((tables.len() + j) as u32, bytes)
                    .map_err(envelope)?;
                pending_done += bytes.len();
            }
        }
        // Once entries show their real size, make room for the rest in one step rather than
        // by doubling (each doubling copies everything written so far).
        if entries_done > 0 {
            let per_entry = entry_bytes_done.div_ceil(entries_done);
            w.expect(per_entry * (entries_total - entries_done) + (pending_bytes - pending_done));
        }
    }
    let blob = w.finish();
    tracing::debug!(
        operator = %header.operator_uid,
        key_groups = %range,
        non_empty_groups = groups,
        entries = entries_total,
        bytes = blob.len(),
        "keyed state snapshot"
    );
    Ok(blob)
}
