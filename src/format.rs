//! Framing for every persisted blob: magic number, format version, length and CRC-32.
//!
//! ```text
//! magic (4 bytes) | version (u16 BE) | payload length (u64 BE) | crc32 of payload (u32 BE) | payload
//! ```
//!
//! A reader names what it expected (`what`) and the versions it understands; anything else —
//! wrong magic, unknown version, short file, trailing bytes, checksum mismatch — is a
//! [`FormatError`] that says which, never a panic.

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
