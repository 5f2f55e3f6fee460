//! Framing for every persisted blob: magic number, format version, length and CRC-32.
//!
//! ```text
//! magic (4 bytes) | version (u16 BE) | payload length (u64 BE) | crc32 of payload (u32 BE) | payload
//! ```
//!
//! A reader names what it expected (`what`) and the versions it understands; anything else —
//! wrong magic, unknown version, short file, trailing bytes, checksum mismatch — is a
//! [`FormatError`] that says which, never a panic.
//!
//! **Compression** (`execution.checkpointing.snapshot-compression`) wraps a whole framed blob
//! in a second frame of its own ([`COMPRESSED_MAGIC`] `WCMP`, version 1):
//!
//! ```text
//! frame(WCMP, 1) { codec (u8) | raw length (u64 BE) | compressed bytes of the inner framed blob }
//! ```
//!
//! so the codec is in every compressed file's header, the outer CRC-32 covers the stored bytes
//! and the inner one the decompressed blob. [`decompress`] passes anything that is not a `WCMP`
//! frame through unchanged: blobs written before compression existed, or with it off, read as
//! they always did. [`compressed_info`] reads only the header (for `weir checkpoints`).

/// Bytes before the payload.
pub const HEADER_LEN: usize = 4 + 2 + 8 + 4;

/// Why a blob could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("not a {what}: expected magic {expected:?}, found {found:?}")]
    BadMagic {
        what: &'static str,
        expected: [u8; 4],
        found: Vec<u8>,
    },
    #[error("{what} has format version {found}, this build reads versions {supported:?}")]
    UnsupportedVersion {
        what: &'static str,
        found: u16,
        supported: &'static [u16],
    },
    #[error("{what} is truncated: {actual} bytes, expected {expected}")]
    Truncated {
        what: &'static str,
        expected: u64,
        actual: u64,
    },
    #[error("{what} has {extra} unexpected trailing bytes")]
    TrailingBytes { what: &'static str, extra: u64 },
    #[error("{what} is corrupt: checksum {actual:08x}, expected {expected:08x}")]
    ChecksumMismatch {
        what: &'static str,
        expected: u32,
        actual: u32,
    },
    #[error(
        "compressed snapshot blob uses codec {codec}, which this build does not know \
         (it reads 1 = lz4)"
    )]
    UnknownCodec { codec: u8 },
    #[error("compressed snapshot blob does not decompress ({codec}): {detail}")]
    Decompress { codec: &'static str, detail: String },
}

/// Magic of a compressed blob (see the module docs).
pub const COMPRESSED_MAGIC: [u8; 4] = *b"WCMP";
/// The version of the compressed frame this build writes and reads.
pub const COMPRESSED_VERSION: u16 = 1;
const COMPRESSED_WHAT: &str = "compressed snapshot blob";
/// Bytes of a compressed frame's payload before the compressed bytes: codec and raw length.
const COMPRESSED_PREFIX: usize = 1 + 8;
/// Bytes a reader needs to know a compressed blob's codec and raw size ([`compressed_info`]).
pub const COMPRESSED_HEADER_LEN: usize = HEADER_LEN + COMPRESSED_PREFIX;

/// A compression codec, as recorded in a compressed blob's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// LZ4 block format (`lz4_flex`): ~0.3–0.5 GB/s to compress and several GB/s to decompress
    /// on one core here, pure Rust.
    Lz4,
}

impl Codec {
    /// The byte that names the codec in the header.
    pub fn id(self) -> u8 {
        match self {
            Codec::Lz4 => 1,
        }
    }

    /// The codec a header byte names, if this build knows it.
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Codec::Lz4),
            _ => None,
        }
    }

    /// Its name, for people.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Lz4 => "lz4",
        }
    }
}

/// Compresses a framed blob with `codec` into a `WCMP` frame (see the module docs).
pub fn compress(codec: Codec, blob: &[u8]) -> Vec<u8> {
    let compressed = match codec {
        Codec::Lz4 => lz4_flex::block::compress(blob),
    };
    let mut frame = start(COMPRESSED_PREFIX + compressed.len());
    frame.push(codec.id());
    frame.extend_from_slice(&(blob.len() as u64).to_be_bytes());
    frame.extend_from_slice(&compressed);
    seal(COMPRESSED_MAGIC, COMPRESSED_VERSION, &mut frame);
    frame
}

/// Whether `bytes` starts like a compressed blob.
pub fn is_compressed(bytes: &[u8]) -> bool {
    bytes.starts_with(&COMPRESSED_MAGIC)
}

/// The codec and raw (decompressed) size of a compressed blob, read from its header alone
/// (the first [`COMPRESSED_HEADER_LEN`] bytes are enough); `Ok(None)` for a blob that is not
/// compressed.
///
/// # Errors
///
/// [`FormatError::UnsupportedVersion`] or [`FormatError::UnknownCodec`] for a compressed
/// header this build cannot read, [`FormatError::Truncated`] when `bytes` is shorter than the
/// header.
pub fn compressed_info(bytes: &[u8]) -> Result<Option<(Codec, u64)>, FormatError> {
    if !is_compressed(bytes) {
        return Ok(None);
    }
    if bytes.len() < COMPRESSED_HEADER_LEN {
        return Err(FormatError::Truncated {
            what: COMPRESSED_WHAT,
            expected: COMPRESSED_HEADER_LEN as u64,
            actual: bytes.len() as u64,
        });
    }
    let version = u16::from_be_bytes([bytes[4], bytes[5]]);
    if version != COMPRESSED_VERSION {
        return Err(FormatError::UnsupportedVersion {
            what: COMPRESSED_WHAT,
            found: version,
            supported: &[COMPRESSED_VERSION],
        });
    }
    let codec = Codec::from_id(bytes[HEADER_LEN]).ok_or(FormatError::UnknownCodec {
        codec: bytes[HEADER_LEN],
    })?;
    let raw = u64::from_be_bytes(
        bytes[HEADER_LEN + 1..COMPRESSED_HEADER_LEN]
            .try_into()
            .expect("8 bytes"),
    );
    Ok(Some((codec, raw)))
}

/// The framed blob inside a compressed one, decompressed; any other bytes unchanged (blobs
/// written uncompressed, or before compression existed).
///
/// # Errors
///
/// The [`FormatError`]s of [`decode`] for a damaged compressed frame,
/// [`FormatError::UnknownCodec`] for a codec this build does not know, and
/// [`FormatError::Decompress`] when the compressed bytes do not decompress to the recorded
/// size. Never panics, whatever the bytes.
pub fn decompress(bytes: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, FormatError> {
    if !is_compressed(bytes) {
        return Ok(std::borrow::Cow::Borrowed(bytes));
    }
    let (codec, raw) = compressed_info(bytes)?.expect("compressed");
    let (_, payload) = decode(
        COMPRESSED_WHAT,
        COMPRESSED_MAGIC,
        &[COMPRESSED_VERSION],
        bytes,
    )?;
    let compressed = &payload[COMPRESSED_PREFIX..];
    // LZ4 expands at most ~255×: a larger recorded size is damage, and must not be allocated.
    let bound = (compressed.len() as u64)
        .saturating_mul(255)
        .saturating_add(64);
    if raw > bound {
        return Err(FormatError::Decompress {
            codec: codec.name(),
            detail: format!(
                "recorded size {raw} is impossible for {} compressed bytes",
                compressed.len()
            ),
        });
    }
    let out = match codec {
        Codec::Lz4 => lz4_flex::block::decompress(compressed, raw as usize).map_err(|e| {
            FormatError::Decompress {
                codec: codec.name(),
                detail: e.to_string(),
            }
        })?,
    };
    if out.len() as u64 != raw {
        return Err(FormatError::Decompress {
            codec: codec.name(),
            detail: format!("{} bytes decompressed, header says {raw}", out.len()),
        });
    }
    Ok(std::borrow::Cow::Owned(out))
}

/// Frames `payload` with `magic` and `version`.
pub fn encode(magic: [u8; 4], version: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&[0; HEADER_LEN]);
    out.extend_from_slice(payload);
    seal(magic, version, &mut out);
    out
}

/// An empty frame with room for `payload_capacity` bytes: write the payload after the header
/// ([`HEADER_LEN`] placeholder bytes), then [`seal`] it. Gives the same bytes as [`encode`]
/// without building the payload in a buffer of its own.
pub fn start(payload_capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN.saturating_add(payload_capacity));
    out.extend_from_slice(&[0; HEADER_LEN]);
    out
}

/// Fills in the header of a frame from [`start`] whose payload is everything after it.
///
/// # Panics
///
/// If `frame` is shorter than the header (it did not come from [`start`]).
pub fn seal(magic: [u8; 4], version: u16, frame: &mut [u8]) {
    let (header, payload) = frame.split_at_mut(HEADER_LEN);
    header[..4].copy_from_slice(&magic);
    header[4..6].copy_from_slice(&version.to_be_bytes());
    header[6..14].copy_from_slice(&(payload.len() as u64).to_be_bytes());
    header[14..].copy_from_slice(&crc32fast::hash(payload).to_be_bytes());
}

/// Checks the frame and returns the version and the payload.
pub fn decode<'a>(
    what: &'static str,
    magic: [u8; 4],
    supported: &'static [u16],
    bytes: &'a [u8],
) -> Result<(u16, &'a [u8]), FormatError> {
    if bytes.len() < HEADER_LEN {
        if !magic.starts_with(&bytes[..bytes.len().min(4)]) {
            return Err(FormatError::BadMagic {
                what,
                expected: magic,
                found: bytes[..bytes.len().min(4)].to_vec(),
            });
        }
        return Err(FormatError::Truncated {
            what,
            expected: HEADER_LEN as u64,
            actual: bytes.len() as u64,
        });
    }
    if bytes[..4] != magic {
        return Err(FormatError::BadMagic {
            what,
            expected: magic,
            found: bytes[..4].to_vec(),
        });
    }
    let version = u16::from_be_bytes([bytes[4], bytes[5]]);
    if !supported.contains(&version) {
        return Err(FormatError::UnsupportedVersion {
            what,
            found: version,
            supported,
        });
    }
    let len = u64::from_be_bytes(bytes[6..14].try_into().expect("8 bytes"));
    let crc = u32::from_be_bytes(bytes[14..18].try_into().expect("4 bytes"));
    let body = &bytes[HEADER_LEN..];
    if (body.len() as u64) < len {
        return Err(FormatError::Truncated {
            what,
            expected: HEADER_LEN as u64 + len,
            actual: bytes.len() as u64,
        });
    }
    if body.len() as u64 > len {
        return Err(FormatError::TrailingBytes {
            what,
            extra: body.len() as u64 - len,
        });
    }
    let actual = crc32fast::hash(body);
    if actual != crc {
        return Err(FormatError::ChecksumMismatch {
            what,
            expected: crc,
            actual,
        });
    }
    Ok((version, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: [u8; 4] = *b"WTST";

    #[test]
    fn round_trip() {
        let b = encode(M, 1, b"hello");
        assert_eq!(
            decode("test blob", M, &[1], &b).unwrap(),
            (1, &b"hello"[..])
        );
    }

    #[test]
    fn start_and_seal_give_the_bytes_of_encode() {
        for payload in [&b""[..], b"hello", &[7u8; 1000][..]] {
            let mut frame = start(payload.len());
            frame.extend_from_slice(payload);
            seal(M, 3, &mut frame);
            assert_eq!(frame, encode(M, 3, payload));
        }
        // The header layout itself, so both cannot drift together.
        let b = encode(M, 1, b"hi");
        assert_eq!(&b[..4], b"WTST");
        assert_eq!(&b[4..6], &[0, 1]);
        assert_eq!(&b[6..14], &2u64.to_be_bytes());
        assert_eq!(&b[14..18], &crc32fast::hash(b"hi").to_be_bytes());
        assert_eq!(&b[18..], b"hi");
    }

    #[test]
    fn every_truncation_is_reported() {
        let b = encode(M, 1, b"hello world");
        for cut in 0..b.len() {
            let e = decode("test blob", M, &[1], &b[..cut]).unwrap_err();
            assert!(matches!(e, FormatError::Truncated { .. }), "cut {cut}: {e}");
        }
    }

    #[test]
    fn flipped_byte_is_a_checksum_error() {
        let mut b = encode(M, 1, b"hello world");
        let last = b.len() - 1;
        b[last] ^= 1;
        let e = decode("test blob", M, &[1], &b).unwrap_err();
        assert!(matches!(e, FormatError::ChecksumMismatch { .. }));
        assert!(e.to_string().contains("test blob is corrupt"));
    }

    #[test]
    fn compressed_blobs_round_trip_and_others_pass_through() {
        let blob = encode(M, 1, &[42u8; 10_000]);
        let packed = compress(Codec::Lz4, &blob);
        assert!(packed.len() < blob.len() / 10, "{}", packed.len());
        assert_eq!(
            compressed_info(&packed).unwrap(),
            Some((Codec::Lz4, blob.len() as u64))
        );
        assert_eq!(
            compressed_info(&packed[..COMPRESSED_HEADER_LEN]).unwrap(),
            Some((Codec::Lz4, blob.len() as u64))
        );
        assert_eq!(&*decompress(&packed).unwrap(), &blob[..]);
        // Blobs written without compression (or before it existed) read unchanged.
        assert!(matches!(
            decompress(&blob).unwrap(),
            std::borrow::Cow::Borrowed(b) if b == &blob[..]
        ));
        assert_eq!(compressed_info(&blob).unwrap(), None);
    }

    #[test]
    fn damaged_compressed_blobs_are_errors_never_panics() {
        let blob = encode(M, 1, b"some state, some state, some state");
        let packed = compress(Codec::Lz4, &blob);
        for cut in 4..packed.len() {
            assert!(decompress(&packed[..cut]).is_err(), "cut {cut}");
        }
        for i in 0..packed.len() {
            let mut bad = packed.clone();
            bad[i] ^= 0x55;
            let _ = decompress(&bad); // an error or (magic flipped) passed through; no panic
        }
        let mut unknown = packed.clone();
        unknown[HEADER_LEN] = 9;
        assert!(matches!(
            compressed_info(&unknown),
            Err(FormatError::UnknownCodec { codec: 9 })
        ));
        // A frame whose CRC matches but whose content lies about the raw size.
        let mut payload = vec![Codec::Lz4.id()];
        payload.extend_from_slice(&u64::MAX.to_be_bytes());
        payload.extend_from_slice(b"xx");
        let liar = encode(COMPRESSED_MAGIC, COMPRESSED_VERSION, &payload);
        assert!(matches!(
            decompress(&liar),
            Err(FormatError::Decompress { .. })
        ));
        let mut payload = vec![Codec::Lz4.id()];
        payload.extend_from_slice(&5u64.to_be_bytes());
        payload.extend_from_slice(&[0xf0, 1, 2]);
        let garbage = encode(COMPRESSED_MAGIC, COMPRESSED_VERSION, &payload);
        assert!(matches!(
            decompress(&garbage),
            Err(FormatError::Decompress { .. })
        ));
    }

    #[test]
    fn unknown_version_and_magic() {
        let b = encode(M, 9, b"x");
        assert!(matches!(
            decode("t", M, &[1], &b),
            Err(FormatError::UnsupportedVersion { found: 9, .. })
        ));
        assert!(matches!(
            decode("t", *b"XXXX", &[9], &b),
            Err(FormatError::BadMagic { .. })
        ));
    }
}
