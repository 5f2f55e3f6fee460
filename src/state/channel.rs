//! Channel state: the in-flight batches an unaligned checkpoint's barrier overtook.
//!
//! At an unaligned snapshot a subtask persists, with its operators' state, the input batches
//! that arrived before their channel's barrier and were not processed yet (the gate flags them;
//! `gate/unaligned.rs`). Each batch is encoded as it goes by ([`encode_batch`]: MessagePack of
//! the `Vec` of records, so the record type is the one the job reads on restore); the blob of a
//! subtask ([`encode_blob`]) is the [`format`] frame (magic [`CHANNEL_STATE_MAGIC`], version,
//! length, CRC-32) around the list of encoded batches, in the order they were handed out, which
//! keeps each channel's order (stored compressed, in the `WCMP` frame of [`format`], when
//! snapshot compression is on). On restore the batches are decoded ([`decode_blob`],
//! [`decode_batch`]) and processed before any new input.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::format;
use crate::state::error::{DecodeLocation, StateError};

/// Opens every channel-state blob ("Weir CHannel State").
pub const CHANNEL_STATE_MAGIC: [u8; 4] = *b"WCHS";
/// The version this build writes.
pub const CHANNEL_STATE_VERSION: u16 = 1;
const SUPPORTED: &[u16] = &[1];
const WHAT: &str = "channel state";

/// The bytes of one recorded input batch.
///
/// # Errors
/// [`StateError::Encode`] when a record cannot be serialised.
pub fn encode_batch<T: Serialize>(operator: &str, batch: &[T]) -> Result<Vec<u8>, StateError> {
    rmp_serde::to_vec(batch).map_err(|source| StateError::Encode {
        operator: operator.to_string(),
        state: WHAT.to_string(),
        source,
    })
}

/// The records of one batch read back from channel state; `index` names it in errors.
///
/// # Errors
/// [`StateError::Decode`] when the bytes are not a batch of `T`.
pub fn decode_batch<T: DeserializeOwned>(
    operator: &str,
    index: usize,
    bytes: &[u8],
) -> Result<Vec<T>, StateError> {
    rmp_serde::from_slice(bytes).map_err(|source| StateError::Decode {
        operator: operator.to_string(),
        state: WHAT.to_string(),
        location: DecodeLocation::Element(index),
        requested: format!("a batch of {}", std::any::type_name::<T>()),
        saved: "the input record type of the snapshot's job".to_string(),
        source: Box::new(source),
    })
}

/// The blob of a subtask's channel state: its encoded batches, in order.
pub fn encode_blob(batches: &[Vec<u8>]) -> Vec<u8> {
    let wrapped: Vec<&serde_bytes::Bytes> =
        batches.iter().map(|b| serde_bytes::Bytes::new(b)).collect();
    let payload = rmp_serde::to_vec(&wrapped).expect("a list of byte strings always serialises");
    format::encode(CHANNEL_STATE_MAGIC, CHANNEL_STATE_VERSION, &payload)
}

/// The encoded batches of a channel-state blob.
///
/// # Errors
/// [`StateError::Format`] for a damaged frame or an unknown version, [`StateError::Corrupt`]
/// for an intact frame around something else.
pub fn decode_blob(operator: &str, bytes: &[u8]) -> Result<Vec<Vec<u8>>, StateError> {
    let format_error = |source| StateError::Format {
        what: WHAT,
        operator: operator.to_string(),
        source,
    };
    // Stored compressed with `snapshot-compression` (the codec is in the header).
    let bytes = format::decompress(bytes).map_err(format_error)?;
    let (_version, payload) =
        format::decode(WHAT, CHANNEL_STATE_MAGIC, SUPPORTED, &bytes).map_err(format_error)?;
    let batches: Vec<serde_bytes::ByteBuf> =
        rmp_serde::from_slice(payload).map_err(|e| StateError::Corrupt {
            what: WHAT,
            operator: operator.to_string(),
            detail: e.to_string(),
        })?;
    Ok(batches
        .into_iter()
        .map(serde_bytes::ByteBuf::into_vec)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_through_a_blob_in_order() {
        let a = encode_batch("op", &[1u64, 2, 3]).unwrap();
        let b = encode_batch("op", &[4u64]).unwrap();
        let blob = encode_blob(&[a, b]);
        let batches = decode_blob("op", &blob).unwrap();
        let records: Vec<Vec<u64>> = batches
            .iter()
            .enumerate()
            .map(|(i, b)| decode_batch("op", i, b).unwrap())
            .collect();
        assert_eq!(records, vec![vec![1, 2, 3], vec![4]]);
        assert!(decode_blob("op", &encode_blob(&[])).unwrap().is_empty());
        // Compressed (snapshot compression) reads the same.
        let blob = encode_blob(&[encode_batch("op", &[7u64; 100]).unwrap()]);
        let packed = format::compress(format::Codec::Lz4, &blob);
        assert_eq!(
            decode_blob("op", &packed).unwrap(),
            decode_blob("op", &blob).unwrap()
        );
    }

    #[test]
    fn a_damaged_blob_or_batch_is_an_error_naming_the_operator() {
        let blob = encode_blob(&[encode_batch("op", &["x".to_string()]).unwrap()]);
        let truncated = decode_blob("op", &blob[..blob.len() - 1]).unwrap_err();
        assert!(matches!(truncated, StateError::Format { .. }));
        assert!(truncated.to_string().contains("`op`"));
        let mut flipped = blob.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        assert!(matches!(
            decode_blob("op", &flipped),
            Err(StateError::Format { .. })
        ));
        let batches = decode_blob("op", &blob).unwrap();
        let wrong = decode_batch::<u64>("op", 0, &batches[0]).unwrap_err();
        assert!(matches!(wrong, StateError::Decode { .. }));
        assert!(wrong.to_string().contains("channel state"));
    }
}
