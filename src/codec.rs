//! The one place that turns wire types into bytes and back: bincode 1.3, fixed-width
//! little-endian integers, trailing bytes rejected, a size limit checked before any allocation
//! (DESIGN.md, "Wire format"). Everything else calls [`encode`] and [`decode`].

use bincode::Options;
use serde::{de::DeserializeOwned, Serialize};

/// Why bytes did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// More bytes than the limit allows: refused before decoding.
    Oversize,
    /// The bytes ended before the value did.
    Truncated,
    /// The bytes are not a valid encoding (bad tag, trailing bytes, bad length, …).
    Garbage,
}

fn options(limit: u64) -> impl Options {
    bincode::options().with_fixint_encoding().with_little_endian().reject_trailing_bytes().with_limit(limit)
}

/// Encode `value`. Encoding our own types cannot fail; a failure is a programmer error.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    options(u64::MAX).serialize(value).expect("wire types always encode")
}

/// Decode exactly one `T` from `bytes`, refusing inputs (and any length prefix inside them)
/// larger than `limit` bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, DecodeError> {
    if bytes.len() > limit {
        return Err(DecodeError::Oversize);
    }
    options(limit as u64).deserialize(bytes).map_err(|e| match *e {
        bincode::ErrorKind::Io(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof => DecodeError::Truncated,
        bincode::ErrorKind::SizeLimit => DecodeError::Oversize,
        _ => DecodeError::Garbage,
    })
}
