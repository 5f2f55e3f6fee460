//! The `_metadata` of a completed checkpoint or savepoint: what it contains and its file format.
//!
//! A checkpoint's metadata names, per operator uid and per subtask, the state handles that hold
//! that subtask's keyed and operator state. Small state is inline; larger state is a file whose
//! path is relative to the checkpoint's own directory, so a savepoint directory can be moved.
//!
//! On disk, `_metadata` is the [`format`] frame (magic [`METADATA_MAGIC`], version, length,
//! CRC-32) around the MessagePack encoding *with field names* of [`CheckpointMetadata`], so that
//! a later version can add fields and still read old files, and an old reader ignores fields it
//! does not know. [`CheckpointMetadata::encode`] and [`CheckpointMetadata::decode`] are the only
//! way in and out; a damaged file is a [`MetadataError`] naming the file, never a panic.

use serde::{Deserialize, Serialize};

use crate::element::CheckpointKind;
use crate::format::{self, FormatError};
use crate::ids::{CheckpointId, JobId};

/// Where one blob of state lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateHandle {
    /// The bytes themselves, stored inside `_metadata` (below the inline threshold, or
    /// jobmanager storage).
    Inline(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A file of this checkpoint, `path` relative to the checkpoint's directory.
    File { path: String, size: u64, crc32: u32 },
}

impl StateHandle {
    /// The size of the state in bytes.
    pub fn size(&self) -> u64 {
        match self {
            StateHandle::Inline(b) => b.len() as u64,
            StateHandle::File { size, .. } => *size,
        }
    }
}

/// The state of one subtask of one operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskSnapshot {
    pub index: u32,
    /// Keyed state (a blob of the `state` module's snapshot format), if any.
    pub keyed: Option<StateHandle>,
    /// Operator (non-keyed) state, including a source's position, if any.
    pub operator: Option<StateHandle>,
    /// Channel state of an unaligned checkpoint: the subtask's in-flight input that the barrier
    /// overtook (a blob of `state::channel`), if any. Absent in files written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<StateHandle>,
}

/// The state of every subtask of one operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorSnapshot {
    /// The stable uid that matches state to operators on restore.
    pub uid: String,
    pub name: String,
    pub parallelism: u32,
    pub max_parallelism: u32,
    pub subtasks: Vec<SubtaskSnapshot>,
}

/// Everything `_metadata` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointMetadata {
    pub job_id: JobId,
    pub checkpoint_id: CheckpointId,
    pub kind: CheckpointKind,
    /// Wall-clock ms since the Unix epoch when it was triggered.
    pub trigger_timestamp_ms: u64,
    /// Wall-clock ms since the Unix epoch when every subtask had acknowledged.
    pub completion_timestamp_ms: u64,
    pub operators: Vec<OperatorSnapshot>,
    /// Some subtask took its snapshot unaligned (an unaligned checkpoint; its in-flight data is
    /// the `channel` state of its subtasks). Absent (false) in older files.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unaligned: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

impl CheckpointMetadata {
    /// Total bytes of state, inline and in files.
    pub fn state_size(&self) -> u64 {
        self.operators
            .iter()
            .flat_map(|o| &o.subtasks)
            .flat_map(|s| {
                s.keyed
                    .iter()
                    .chain(s.operator.iter())
                    .chain(s.channel.iter())
            })
            .map(StateHandle::size)
            .sum()
    }

    /// Bytes of channel state (unaligned checkpoints' persisted in-flight data).
    pub fn persisted_data(&self) -> u64 {
        self.operators
            .iter()
            .flat_map(|o| &o.subtasks)
            .filter_map(|s| s.channel.as_ref())
            .map(StateHandle::size)
            .sum()
    }
}

/// The magic number that opens every `_metadata` file ("Weir ChecKpoint Metadata").
pub const METADATA_MAGIC: [u8; 4] = *b"WCKM";
/// The `_metadata` format version this build writes.
pub const METADATA_VERSION: u16 = 1;
/// Every `_metadata` format version this build reads.
pub const SUPPORTED_METADATA_VERSIONS: &[u16] = &[1];
/// How [`format`] names a `_metadata` file in its errors.
const WHAT: &str = "Weir checkpoint metadata file";

/// Why a `_metadata` file could not be read. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The frame is wrong: not a `_metadata` file, an unknown version, truncated or corrupt.
    #[error("cannot read `{path}`: {source}; {}", format_hint(.source))]
    Format {
        path: String,
        #[source]
        source: FormatError,
    },
    /// The frame is intact but its content does not decode (a bug, or a file written by an
    /// incompatible build).
    #[error(
        "cannot read `{path}`: its checksum is valid but its content does not decode ({source}); \
         it was written by an incompatible Weir build: restore with that build or from another \
         snapshot"
    )]
    Decode {
        path: String,
        #[source]
        source: rmp_serde::decode::Error,
    },
}

impl MetadataError {
    /// The file that could not be read.
    pub fn path(&self) -> &str {
        match self {
            MetadataError::Format { path, .. } | MetadataError::Decode { path, .. } => path,
        }
    }

    /// The framing error, if that is what went wrong.
    pub fn format_error(&self) -> Option<&FormatError> {
        match self {
            MetadataError::Format { source, .. } => Some(source),
            MetadataError::Decode { .. } => None,
        }
    }
}

/// What the user should do about a damaged frame.
fn format_hint(e: &FormatError) -> &'static str {
    match e {
        FormatError::BadMagic { .. } => {
            "it is not a Weir `_metadata` file: check the path points at a checkpoint or savepoint"
        }
        FormatError::UnsupportedVersion { .. } | FormatError::UnknownCodec { .. } => {
            "it was written by a newer Weir: restore it with that version"
        }
        FormatError::Truncated { .. }
        | FormatError::TrailingBytes { .. }
        | FormatError::ChecksumMismatch { .. }
        | FormatError::Decompress { .. } => {
            "the file is damaged: restore from an earlier checkpoint or savepoint"
        }
    }
}

impl CheckpointMetadata {
    /// The bytes of a `_metadata` file: the [`format`] frame around the MessagePack encoding
    /// with field names, so that fields can be added later without breaking old files.
    pub fn encode(&self) -> Vec<u8> {
        let payload = rmp_serde::to_vec_named(self)
            .expect("checkpoint metadata has only plain fields and always serialises");
        format::encode(METADATA_MAGIC, METADATA_VERSION, &payload)
    }

    /// Reads the bytes of a `_metadata` file; `path` only names the file in errors.
    ///
    /// # Errors
    ///
    /// [`MetadataError::Format`] when the bytes are not a `_metadata` file, have an unknown
    /// version, are truncated or fail their checksum; [`MetadataError::Decode`] when the frame
    /// is intact but its content is not checkpoint metadata.
    pub fn decode(bytes: &[u8], path: &str) -> Result<Self, MetadataError> {
        let (_version, payload) =
            format::decode(WHAT, METADATA_MAGIC, SUPPORTED_METADATA_VERSIONS, bytes).map_err(
                |source| MetadataError::Format {
                    path: path.to_string(),
                    source,
                },
            )?;
        rmp_serde::from_slice(payload).map_err(|source| MetadataError::Decode {
            path: path.to_string(),
            source,
        })
    }

    /// Every state handle, with the operator uid and subtask index it belongs to.
    pub fn handles(&self) -> impl Iterator<Item = (&str, u32, &StateHandle)> {
        self.operators.iter().flat_map(|o| {
            o.subtasks.iter().flat_map(move |s| {
                s.keyed
                    .iter()
                    .chain(s.operator.iter())
                    .chain(s.channel.iter())
                    .map(move |h| (o.uid.as_str(), s.index, h))
            })
        })
    }

    /// The relative paths of every state file this snapshot references.
    pub fn file_paths(&self) -> impl Iterator<Item = &str> {
        self.handles().filter_map(|(_, _, h)| match h {
            StateHandle::File { path, .. } => Some(path.as_str()),
            StateHandle::Inline(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::element::SavepointFormat;

    fn handle() -> impl Strategy<Value = StateHandle> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(StateHandle::Inline),
            ("[a-z0-9._-]{1,40}", any::<u64>(), any::<u32>())
                .prop_map(|(path, size, crc32)| StateHandle::File { path, size, crc32 }),
        ]
    }

    fn kind() -> impl Strategy<Value = CheckpointKind> {
        let format = prop_oneof![
            Just(SavepointFormat::Canonical),
            Just(SavepointFormat::Native)
        ];
        prop_oneof![
            any::<bool>().prop_map(|full| CheckpointKind::Checkpoint { full }),
            format
                .clone()
                .prop_map(|format| CheckpointKind::Savepoint { format }),
            (format, any::<bool>())
                .prop_map(|(format, drain)| CheckpointKind::StopWithSavepoint { format, drain }),
        ]
    }

    fn metadata() -> impl Strategy<Value = CheckpointMetadata> {
        let subtask = (
            any::<u32>(),
            proptest::option::of(handle()),
            proptest::option::of(handle()),
            proptest::option::of(handle()),
        )
            .prop_map(|(index, keyed, operator, channel)| SubtaskSnapshot {
                index,
                keyed,
                operator,
                channel,
            });
        let operator = (
            "\\PC{0,20}",
            "\\PC{0,20}",
            any::<u32>(),
            any::<u32>(),
            proptest::collection::vec(subtask, 0..4),
        )
            .prop_map(|(uid, name, parallelism, max_parallelism, subtasks)| {
                OperatorSnapshot {
                    uid,
                    name,
                    parallelism,
                    max_parallelism,
                    subtasks,
                }
            });
        (
            any::<u128>(),
            any::<u64>(),
            kind(),
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(operator, 0..4),
        )
            .prop_map(|(job, id, kind, trigger, completion, operators)| {
                CheckpointMetadata {
                    job_id: JobId(uuid::Uuid::from_u128(job)),
                    checkpoint_id: CheckpointId(id),
                    kind,
                    trigger_timestamp_ms: trigger,
                    completion_timestamp_ms: completion,
                    operators,
                    unaligned: false,
                }
            })
    }

    fn sample() -> CheckpointMetadata {
        CheckpointMetadata {
            job_id: JobId(uuid::Uuid::from_u128(0xabcdef)),
            checkpoint_id: CheckpointId(7),
            kind: CheckpointKind::PERIODIC,
            trigger_timestamp_ms: 1_700_000_000_000,
            completion_timestamp_ms: 1_700_000_000_500,
            operators: vec![OperatorSnapshot {
                uid: "count".into(),
                name: "Count".into(),
                parallelism: 2,
                max_parallelism: 128,
                subtasks: vec![SubtaskSnapshot {
                    index: 0,
                    keyed: Some(StateHandle::Inline(vec![1, 2, 3])),
                    operator: Some(StateHandle::File {
                        path: "count-0-operator-x".into(),
                        size: 10,
                        crc32: 99,
                    }),
                    channel: None,
                }],
            }],
            unaligned: false,
        }
    }

    proptest! {
        #[test]
        fn round_trip(md in metadata()) {
            let bytes = md.encode();
            prop_assert_eq!(CheckpointMetadata::decode(&bytes, "x/_metadata").unwrap(), md);
        }
    }

    #[test]
    fn every_truncation_is_reported_with_the_path() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            let e = CheckpointMetadata::decode(&bytes[..cut], "/cp/chk-7/_metadata").unwrap_err();
            assert!(
                matches!(e.format_error(), Some(FormatError::Truncated { .. })),
                "cut {cut}: {e}"
            );
            assert_eq!(e.path(), "/cp/chk-7/_metadata");
            let msg = e.to_string();
            assert!(msg.contains("`/cp/chk-7/_metadata`"), "{msg}");
            assert!(
                msg.contains("truncated") && msg.contains("earlier checkpoint"),
                "{msg}"
            );
        }
    }

    #[test]
    fn every_flipped_byte_is_an_error_never_a_panic() {
        let bytes = sample().encode();
        for at in 0..bytes.len() {
            let mut b = bytes.clone();
            b[at] ^= 0x40;
            let e = CheckpointMetadata::decode(&b, "m").unwrap_err();
            let f = e.format_error().unwrap_or_else(|| panic!("byte {at}: {e}"));
            let expected = match at {
                0..=3 => matches!(f, FormatError::BadMagic { .. }),
                4..=5 => matches!(f, FormatError::UnsupportedVersion { .. }),
                // The length field: too long reads as truncated, too short as trailing bytes.
                6..=13 => matches!(
                    f,
                    FormatError::Truncated { .. } | FormatError::TrailingBytes { .. }
                ),
                _ => matches!(f, FormatError::ChecksumMismatch { .. }),
            };
            assert!(expected, "byte {at}: {e}");
        }
    }

    #[test]
    fn a_flipped_payload_byte_reads_as_damaged() {
        let mut bytes = sample().encode();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let msg = CheckpointMetadata::decode(&bytes, "/cp/chk-7/_metadata")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("`/cp/chk-7/_metadata`"), "{msg}");
        assert!(msg.contains("corrupt") && msg.contains("damaged"), "{msg}");
    }

    #[test]
    fn unknown_version_and_foreign_files_say_so() {
        let payload = rmp_serde::to_vec_named(&sample()).unwrap();
        let v2 = format::encode(METADATA_MAGIC, 2, &payload);
        let msg = CheckpointMetadata::decode(&v2, "m")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("version 2") && msg.contains("newer Weir"),
            "{msg}"
        );

        let foreign = b"PK\x03\x04 this is a zip file, not metadata".to_vec();
        let msg = CheckpointMetadata::decode(&foreign, "m")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("not a Weir `_metadata` file"), "{msg}");
    }

    #[test]
    fn intact_frame_with_foreign_content_is_a_decode_error() {
        let bytes = format::encode(METADATA_MAGIC, METADATA_VERSION, b"\xc1 not msgpack");
        let e = CheckpointMetadata::decode(&bytes, "/cp/chk-1/_metadata").unwrap_err();
        assert!(matches!(e, MetadataError::Decode { .. }), "{e}");
        assert!(e.to_string().contains("`/cp/chk-1/_metadata`"));
    }

    #[test]
    fn named_encoding_ignores_fields_added_later() {
        #[derive(Serialize)]
        struct Newer<'a> {
            #[serde(flatten)]
            md: &'a CheckpointMetadata,
            added_in_a_later_version: &'a str,
        }
        let md = sample();
        let payload = rmp_serde::to_vec_named(&Newer {
            md: &md,
            added_in_a_later_version: "x",
        })
        .unwrap();
        let bytes = format::encode(METADATA_MAGIC, METADATA_VERSION, &payload);
        assert_eq!(CheckpointMetadata::decode(&bytes, "m").unwrap(), md);
    }

    #[test]
    fn handles_and_file_paths_list_every_handle() {
        let md = sample();
        let handles: Vec<_> = md.handles().collect();
        assert_eq!(handles.len(), 2);
        assert_eq!(handles[0].0, "count");
        assert_eq!(
            md.file_paths().collect::<Vec<_>>(),
            vec!["count-0-operator-x"]
        );
    }
}
