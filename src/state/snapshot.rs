//! The blob formats of keyed and operator state snapshots.
//!
//! Each subtask's snapshot is one blob per store, framed by [`crate::format`] (magic, version,
//! length, CRC-32) around a MessagePack payload written *with field names*, so a later version
//! can add fields and an old reader ignores them:
//!
//! - keyed state ([`KEYED_MAGIC`] `WKST`): [`KeyedStateSnapshot`] — the operator uid, the max
//!   parallelism, the writer's key-group range, a table of the states ([`KeyedStateMeta`]) and,
//!   per non-empty key group in ascending order, one chunk of bytes per state. A chunk is the
//!   MessagePack sequence of that group's `(key, value)` entries. Chunks are opaque bytes in the
//!   envelope, so a restore can keep only the key groups it owns without decoding the others,
//!   and can hold a state it does not know the type of yet (restored before `open` registers
//!   it) and write it back unchanged into the next snapshot.
//! - operator state ([`OPERATOR_MAGIC`] `WOST`): [`OperatorStateSnapshot`] — the operator uid
//!   and per list state its redistribution mode and its elements, each encoded on its own so
//!   elements can be redistributed on rescale without knowing their type.
//!
//! Either blob may be stored compressed (the `WCMP` frame of [`crate::format`], which names its
//! codec); decoding accepts both.
//!
//! User keys and values are also encoded with field names: state must survive upgrades of the
//! job (savepoints), and for primitive keys and values the names cost nothing.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::error::StateError;
use super::key_group::KeyGroupRange;
use crate::format;

/// Magic of a keyed state blob.
pub const KEYED_MAGIC: [u8; 4] = *b"WKST";
/// Magic of an operator state blob.
pub const OPERATOR_MAGIC: [u8; 4] = *b"WOST";
/// The format version this build writes.
pub const VERSION: u16 = 1;
/// The format versions this build reads.
pub const SUPPORTED_VERSIONS: &[u16] = &[1];
/// What a keyed blob is called in errors.
pub const KEYED_WHAT: &str = "keyed state snapshot";
/// What an operator blob is called in errors.
pub const OPERATOR_WHAT: &str = "operator state snapshot";

/// The kinds of keyed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyedStateKind {
    Value,
    List,
    Map,
    Reducing,
}

impl KeyedStateKind {
    /// The handle type's name, as in error messages (`ValueState`, ...).
    pub fn handle_name(self) -> &'static str {
        match self {
            KeyedStateKind::Value => "ValueState",
            KeyedStateKind::List => "ListState",
            KeyedStateKind::Map => "MapState",
            KeyedStateKind::Reducing => "ReducingState",
        }
    }
}

/// How an operator list state is redistributed when the parallelism changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Redistribution {
    /// The union of all old subtasks' elements is divided among the new subtasks.
    Split,
    /// Every new subtask gets all elements of all old subtasks.
    Union,
}

impl Redistribution {
    /// The registration method's name, as in error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Redistribution::Split => "list state",
            Redistribution::Union => "union list state",
        }
    }
}

/// A keyed state snapshot: the state of one keyed subtask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedStateSnapshot {
    pub operator_uid: String,
    pub max_parallelism: u32,
    /// The key groups the writer owned; every group below is inside it.
    pub key_groups: KeyGroupRange,
    /// The states; chunks refer to them by index.
    pub states: Vec<KeyedStateMeta>,
    /// The non-empty key groups, ascending.
    pub groups: Vec<KeyGroupChunks>,
}

/// One keyed state's name and type, as recorded when it was written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedStateMeta {
    pub name: String,
    pub kind: KeyedStateKind,
    /// The Rust key type (`std::any::type_name`, for messages only: not stable across builds).
    pub key_type: String,
    /// The Rust value type(s), for messages only (a map state records `UK, UV`).
    pub value_type: String,
}

impl KeyedStateMeta {
    /// E.g. `MapState<String, u64>`.
    pub fn describe(&self) -> String {
        format!("{}<{}>", self.kind.handle_name(), self.value_type)
    }
}

/// The entries of one key group, one chunk per state that has any.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyGroupChunks {
    pub key_group: u32,
    pub chunks: Vec<StateChunk>,
}

/// One state's entries in one key group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChunk {
    /// Index into [`KeyedStateSnapshot::states`].
    pub state: u32,
    /// MessagePack sequence of `(key, value)`.
    #[serde(with = "serde_bytes")]
    pub entries: Vec<u8>,
}

impl KeyedStateSnapshot {
    /// The framed blob.
    pub fn encode(&self) -> Result<Vec<u8>, StateError> {
        encode_payload(self, &self.operator_uid, KEYED_MAGIC)
    }

    /// Reads and checks a blob; `operator` (the reader's uid) names it in errors.
    ///
    /// # Errors
    ///
    /// [`StateError::Format`] for a damaged frame, [`StateError::Corrupt`] for a payload that
    /// is not a consistent keyed snapshot. Never panics, whatever the bytes.
    pub fn decode(bytes: &[u8], operator: &str) -> Result<Self, StateError> {
        let snap: Self = decode_payload(bytes, KEYED_MAGIC, KEYED_WHAT, operator)?;
        snap.validate().map_err(|detail| StateError::Corrupt {
            what: KEYED_WHAT,
            operator: operator.to_string(),
            detail,
        })?;
        Ok(snap)
    }

    fn validate(&self) -> Result<(), String> {
        if self.max_parallelism == 0 || self.key_groups.end() > self.max_parallelism {
            return Err(format!(
                "{} do not fit max parallelism {}",
                self.key_groups, self.max_parallelism
            ));
        }
        let mut previous: Option<u32> = None;
        for g in &self.groups {
            if !self.key_groups.contains(g.key_group) {
                return Err(format!(
                    "key group {} is outside the writer's {}",
                    g.key_group, self.key_groups
                ));
            }
            if previous.is_some_and(|p| p >= g.key_group) {
                return Err(format!("key group {} is out of order", g.key_group));
            }
            previous = Some(g.key_group);
            for c in &g.chunks {
                if c.state as usize >= self.states.len() {
                    return Err(format!(
                        "key group {} refers to state #{} of {}",
                        g.key_group,
                        c.state,
                        self.states.len()
                    ));
                }
            }
        }
        let mut names: Vec<&str> = self.states.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("state `{}` is listed twice", w[0]));
        }
        Ok(())
    }
}

/// Writes a keyed blob in one pass into one buffer, with the bytes [`KeyedStateSnapshot::encode`]
/// gives for the same snapshot: the envelope's MessagePack is written field by field, in the
/// order and form `rmp_serde::to_vec_named` writes the structs above, and each chunk's entries
/// are encoded in place rather than into a buffer of their own that is copied twice.
///
/// Call [`KeyedBlobWriter::group`] once per announced group, then [`KeyedBlobWriter::chunk`]
/// (or [`KeyedBlobWriter::chunk_bytes`]) once per announced chunk, then
/// [`KeyedBlobWriter::finish`].
pub(crate) struct KeyedBlobWriter {
    out: Vec<u8>,
    groups_left: usize,
    chunks_left: usize,
}

type EncodeResult = Result<(), rmp_serde::encode::Error>;

impl KeyedBlobWriter {
    /// Starts the blob and writes everything before the groups; `groups` is the number of
    /// non-empty key groups that will follow, `capacity` the expected payload size.
    pub(crate) fn new(
        capacity: usize,
        operator_uid: &str,
        max_parallelism: u32,
        key_groups: KeyGroupRange,
        states: &[KeyedStateMeta],
        groups: usize,
    ) -> Result<Self, rmp_serde::encode::Error> {
        let mut out = format::start(capacity);
        write_map_len(&mut out, 5);
        field(&mut out, "operator_uid", operator_uid)?;
        field(&mut out, "max_parallelism", &max_parallelism)?;
        field(&mut out, "key_groups", &key_groups)?;
        field(&mut out, "states", states)?;
        rmp_serde::encode::write_named(&mut out, "groups")?;
        write_array_len(&mut out, groups)?;
        Ok(Self {
            out,
            groups_left: groups,
            chunks_left: 0,
        })
    }

    /// Starts the next key group, which has `chunks` chunks.
    pub(crate) fn group(&mut self, key_group: u32, chunks: usize) -> EncodeResult {
        debug_assert!(self.groups_left > 0 && self.chunks_left == 0);
        self.groups_left -= 1;
        self.chunks_left = chunks;
        write_map_len(&mut self.out, 2);
        field(&mut self.out, "key_group", &key_group)?;
        rmp_serde::encode::write_named(&mut self.out, "chunks")?;
        write_array_len(&mut self.out, chunks)
    }

    /// Writes a chunk of state #`state` whose entries `write` appends to the buffer.
    pub(crate) fn chunk(
        &mut self,
        state: u32,
        write: impl FnOnce(&mut Vec<u8>) -> EncodeResult,
    ) -> EncodeResult {
        self.chunk_header(state)?;
        // The entries go after room for the longest `bin` header; a shorter header (entries
        // under 64 KiB) moves them back by the difference.
        let at = self.out.len();
        self.out.extend_from_slice(&[0; BIN32_HEADER]);
        write(&mut self.out)?;
        let len = self.out.len() - at - BIN32_HEADER;
        let (header, header_len) = bin_header(len)?;
        if header_len < BIN32_HEADER {
            self.out.copy_within(at + BIN32_HEADER.., at + header_len);
            self.out
                .truncate(self.out.len() - (BIN32_HEADER - header_len));
        }
        self.out[at..at + header_len].copy_from_slice(&header[..header_len]);
        Ok(())
    }

    /// Writes a chunk of state #`state` whose entries are already encoded.
    pub(crate) fn chunk_bytes(&mut self, state: u32, entries: &[u8]) -> EncodeResult {
        self.chunk_header(state)?;
        let (header, header_len) = bin_header(entries.len())?;
        self.out.extend_from_slice(&header[..header_len]);
        self.out.extend_from_slice(entries);
        Ok(())
    }

    fn chunk_header(&mut self, state: u32) -> EncodeResult {
        debug_assert!(self.chunks_left > 0);
        self.chunks_left -= 1;
        write_map_len(&mut self.out, 2);
        field(&mut self.out, "state", &state)?;
        rmp_serde::encode::write_named(&mut self.out, "entries")
    }

    /// Bytes written so far, header included.
    pub(crate) fn len(&self) -> usize {
        self.out.len()
    }

    /// Makes room for `additional` more bytes if there is less, with some to spare.
    pub(crate) fn expect(&mut self, additional: usize) {
        if self.out.capacity() - self.out.len() < additional {
            self.out
                .reserve_exact(additional.saturating_add(additional / 8));
        }
    }

    /// The framed blob.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        debug_assert!(
            self.groups_left == 0 && self.chunks_left == 0,
            "the announced groups and chunks were written"
        );
        format::seal(KEYED_MAGIC, VERSION, &mut self.out);
        self.out
    }
}

/// The longest MessagePack `bin` header: marker and a 32-bit length.
const BIN32_HEADER: usize = 5;

fn field<T: Serialize + ?Sized>(out: &mut Vec<u8>, name: &str, value: &T) -> EncodeResult {
    rmp_serde::encode::write_named(out, name)?;
    rmp_serde::encode::write_named(out, value)
}

/// A struct of at most 15 fields: a MessagePack fixmap.
fn write_map_len(out: &mut Vec<u8>, fields: u8) {
    debug_assert!(fields < 16);
    out.push(0x80 | fields);
}

/// The smallest MessagePack array header for `len`, as `rmp` writes it.
fn write_array_len(out: &mut Vec<u8>, len: usize) -> EncodeResult {
    let len = too_long(len, "array")?;
    if len < 16 {
        out.push(0x90 | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(0xdc);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

/// The smallest MessagePack `bin` header for `len` bytes, as `rmp` writes it.
fn bin_header(len: usize) -> Result<([u8; BIN32_HEADER], usize), rmp_serde::encode::Error> {
    let len = too_long(len, "byte string")?;
    let mut h = [0; BIN32_HEADER];
    let header_len = if let Ok(len) = u8::try_from(len) {
        h[0] = 0xc4;
        h[1] = len;
        2
    } else if let Ok(len) = u16::try_from(len) {
        h[0] = 0xc5;
        h[1..3].copy_from_slice(&len.to_be_bytes());
        3
    } else {
        h[0] = 0xc6;
        h[1..5].copy_from_slice(&len.to_be_bytes());
        5
    };
    Ok((h, header_len))
}

fn too_long(len: usize, what: &str) -> Result<u32, rmp_serde::encode::Error> {
    u32::try_from(len).map_err(|_| {
        rmp_serde::encode::Error::Syntax(format!(
            "a MessagePack {what} holds at most 2^32 - 1 items, this one has {len}"
        ))
    })
}

/// An operator state snapshot: the list states of one subtask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorStateSnapshot {
    /// The writer's operator uid (empty if the store was not told it).
    pub operator_uid: String,
    pub states: Vec<OperatorListSnapshot>,
}

/// One operator list state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorListSnapshot {
    pub name: String,
    pub mode: Redistribution,
    /// The Rust element type, for messages only.
    pub element_type: String,
    /// Each element's MessagePack bytes.
    pub elements: Vec<ByteBuf>,
}

impl OperatorStateSnapshot {
    /// The framed blob.
    pub fn encode(&self) -> Result<Vec<u8>, StateError> {
        encode_payload(self, &self.operator_uid, OPERATOR_MAGIC)
    }

    /// Reads and checks a blob; `operator` (the reader's uid) names it in errors.
    ///
    /// # Errors
    ///
    /// [`StateError::Format`] for a damaged frame, [`StateError::Corrupt`] for a payload that
    /// is not an operator snapshot. Never panics, whatever the bytes.
    pub fn decode(bytes: &[u8], operator: &str) -> Result<Self, StateError> {
        let snap: Self = decode_payload(bytes, OPERATOR_MAGIC, OPERATOR_WHAT, operator)?;
        let mut names: Vec<&str> = snap.states.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(StateError::Corrupt {
                what: OPERATOR_WHAT,
                operator: operator.to_string(),
                detail: format!("state `{}` is listed twice", w[0]),
            });
        }
        Ok(snap)
    }
}

/// Frames a snapshot envelope (the counterpart of [`decode_payload`]).
fn encode_payload<T: Serialize>(
    envelope: &T,
    operator: &str,
    magic: [u8; 4],
) -> Result<Vec<u8>, StateError> {
    let payload = rmp_serde::to_vec_named(envelope).map_err(|source| StateError::Encode {
        operator: operator.to_owned(),
        state: "(snapshot envelope)".into(),
        source,
    })?;
    Ok(format::encode(magic, VERSION, &payload))
}

fn decode_payload<T: DeserializeOwned>(
    bytes: &[u8],
    magic: [u8; 4],
    what: &'static str,
    operator: &str,
) -> Result<T, StateError> {
    let format_error = |source| StateError::Format {
        what,
        operator: operator.to_string(),
        source,
    };
    // A compressed blob (`execution.checkpointing.snapshot-compression`) carries its codec in
    // its header; an uncompressed one passes through.
    let bytes = format::decompress(bytes).map_err(format_error)?;
    let (_version, payload) =
        format::decode(what, magic, SUPPORTED_VERSIONS, &bytes).map_err(format_error)?;
    rmp_serde::from_slice(payload).map_err(|e| StateError::Corrupt {
        what,
        operator: operator.to_string(),
        detail: e.to_string(),
    })
}

/// Encodes user data (a chunk's entries, an element) with field names.
pub(crate) fn encode_data<T: Serialize + ?Sized>(
    value: &T,
) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    rmp_serde::to_vec_named(value)
}

/// Decodes user data written by [`encode_data`].
pub(crate) fn decode_data<T: DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, rmp_serde::decode::Error> {
    rmp_serde::from_slice(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> KeyedStateSnapshot {
        KeyedStateSnapshot {
            operator_uid: "counter".into(),
            max_parallelism: 128,
            key_groups: KeyGroupRange::new(0, 64),
            states: vec![KeyedStateMeta {
                name: "count".into(),
                kind: KeyedStateKind::Value,
                key_type: "u64".into(),
                value_type: "u64".into(),
            }],
            groups: vec![KeyGroupChunks {
                key_group: 3,
                chunks: vec![StateChunk {
                    state: 0,
                    entries: encode_data(&vec![(1u64, 2u64)]).unwrap(),
                }],
            }],
        }
    }

    #[test]
    fn compressed_blobs_decode_like_uncompressed_ones() {
        let snap = sample();
        let blob = snap.encode().unwrap();
        let packed = format::compress(format::Codec::Lz4, &blob);
        assert!(format::is_compressed(&packed));
        assert_eq!(
            KeyedStateSnapshot::decode(&packed, "counter").unwrap(),
            snap
        );
        // Damage inside the compressed frame is a format error naming the operator.
        let mut bad = packed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let e = KeyedStateSnapshot::decode(&bad, "counter").unwrap_err();
        assert!(matches!(e, StateError::Format { .. }), "{e}");
        assert!(e.to_string().contains("counter"), "{e}");
    }

    #[test]
    fn keyed_round_trip() {
        let s = sample();
        let blob = s.encode().unwrap();
        assert_eq!(&blob[..4], b"WKST");
        assert_eq!(KeyedStateSnapshot::decode(&blob, "counter").unwrap(), s);
    }

    #[test]
    fn operator_blob_is_not_a_keyed_blob() {
        let op = OperatorStateSnapshot {
            operator_uid: "src".into(),
            states: vec![],
        };
        let blob = op.encode().unwrap();
        let e = KeyedStateSnapshot::decode(&blob, "src").unwrap_err();
        assert!(
            matches!(
                e,
                StateError::Format {
                    what: KEYED_WHAT,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("operator `src`"), "{e}");
        assert_eq!(OperatorStateSnapshot::decode(&blob, "src").unwrap(), op);
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error() {
        let blob = sample().encode().unwrap();
        for cut in 0..blob.len() {
            assert!(KeyedStateSnapshot::decode(&blob[..cut], "counter").is_err());
        }
        for i in 0..blob.len() {
            let mut b = blob.clone();
            b[i] ^= 0x40;
            assert!(
                KeyedStateSnapshot::decode(&b, "counter").is_err(),
                "flip at {i}"
            );
        }
    }

    #[test]
    fn inconsistent_payload_is_corrupt() {
        let mut s = sample();
        s.groups[0].key_group = 100; // outside [0, 64)
        let e = KeyedStateSnapshot::decode(&s.encode().unwrap(), "counter").unwrap_err();
        assert!(matches!(e, StateError::Corrupt { .. }), "{e}");
        let mut s = sample();
        s.groups[0].chunks[0].state = 5;
        assert!(matches!(
            KeyedStateSnapshot::decode(&s.encode().unwrap(), "counter"),
            Err(StateError::Corrupt { .. })
        ));
        // A valid frame around a payload that is not a snapshot.
        let junk = format::encode(KEYED_MAGIC, VERSION, b"\x93\x01\x02");
        assert!(matches!(
            KeyedStateSnapshot::decode(&junk, "counter"),
            Err(StateError::Corrupt { .. })
        ));
    }

    /// Writes `snap` with [`KeyedBlobWriter`], alternating in-place and ready-made chunks.
    fn write(snap: &KeyedStateSnapshot) -> Vec<u8> {
        let mut w = KeyedBlobWriter::new(
            0,
            &snap.operator_uid,
            snap.max_parallelism,
            snap.key_groups,
            &snap.states,
            snap.groups.len(),
        )
        .unwrap();
        for (i, g) in snap.groups.iter().enumerate() {
            w.group(g.key_group, g.chunks.len()).unwrap();
            for c in &g.chunks {
                if i % 2 == 0 {
                    w.chunk(c.state, |out| {
                        out.extend_from_slice(&c.entries);
                        Ok(())
                    })
                    .unwrap();
                } else {
                    w.chunk_bytes(c.state, &c.entries).unwrap();
                }
            }
        }
        w.finish()
    }

    #[test]
    fn the_one_pass_writer_gives_the_bytes_of_encode() {
        let meta = |i: usize| KeyedStateMeta {
            name: format!("s{i}"),
            kind: KeyedStateKind::List,
            key_type: "u64".into(),
            value_type: "alloc::string::String".into(),
        };
        // Every MessagePack length form rmp picks between: bin 8/16/32, array fix/16.
        let sizes = [0, 1, 255, 256, 65_535, 65_536, 70_000];
        let mut s = sample();
        s.states = (0..17).map(meta).collect();
        s.groups = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| KeyGroupChunks {
                key_group: i as u32 * 3,
                chunks: (0..[1, 15, 16, 17][i % 4])
                    .map(|c| StateChunk {
                        state: c as u32,
                        entries: vec![(i + c) as u8; n],
                    })
                    .collect(),
            })
            .collect();
        assert_eq!(write(&s), s.encode().unwrap());

        // No groups, no states.
        let mut empty = sample();
        empty.states.clear();
        empty.groups.clear();
        assert_eq!(write(&empty), empty.encode().unwrap());

        // Group counts around the array header boundaries (fix: < 16, 16-bit: < 65 536).
        for groups in [15u32, 16, 65_535, 65_536, 70_000] {
            let mut many = sample();
            many.max_parallelism = 70_000;
            many.key_groups = KeyGroupRange::all(70_000);
            many.groups = (0..groups)
                .map(|g| KeyGroupChunks {
                    key_group: g,
                    chunks: vec![StateChunk {
                        state: 0,
                        entries: vec![0x90],
                    }],
                })
                .collect();
            assert_eq!(write(&many), many.encode().unwrap(), "{groups} groups");
        }
    }

    #[test]
    fn future_version_is_rejected_with_its_number() {
        let payload = rmp_serde::to_vec_named(&sample()).unwrap();
        let blob = format::encode(KEYED_MAGIC, 2, &payload);
        let e = KeyedStateSnapshot::decode(&blob, "counter").unwrap_err();
        assert!(e.to_string().contains("format version 2"), "{e}");
    }
}
