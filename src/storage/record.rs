//! One write-ahead-log record (format version 2): its framing, its two types (a log entry, a
//! sync marker), their encoding and their checked decoding. docs/storage.md has the tables;
//! this file is the only code that knows them.
//!
//! ```text
//! offset size field
//!      0    4 crc: CRC32 (IEEE, crc32fast) of bytes 4..9+len: type, len and payload (u32 LE)
//!      4    1 type: 1 = entry, 2 = sync marker
//!      5    4 len: payload length in bytes (u32 LE), at most RECORD_BYTES_MAX
//!      9  len payload
//!
//! entry payload:        +0 term (u64 LE)  +8 index (u64 LE)  +16 data (len - 16 bytes)
//! sync marker payload:  +0 first_index of the segment  +8 synced_through: byte offset of
//!                       this marker  +16 last_index: the last entry before it (all u64 LE)
//! ```
//!
//! The CRC covers the length and the type (version 1 covered only the payload, so a flipped
//! length bit could pass for a torn write and drop acknowledged records). The entry is encoded
//! by hand rather than with bincode so that the on-disk format does not change when the wire
//! codec does (DESIGN.md, "Storage" may use encoding, not transport).

use std::io::{self, Read};

use crate::core::{Entry, LogIndex, Term};

/// Bytes of the record frame in front of the payload: CRC, type and length.
pub const RECORD_HEADER_LEN: usize = 9;

/// Bytes of the entry header at the start of an entry's payload: term and index.
pub const ENTRY_HEADER_LEN: usize = 16;

/// Bytes of a sync marker's payload: first index, synced-through offset, last index.
pub const MARKER_PAYLOAD_LEN: usize = 24;

/// Bytes of a whole sync marker record, frame included.
pub const MARKER_RECORD_LEN: usize = RECORD_HEADER_LEN + MARKER_PAYLOAD_LEN;

/// Record type of a log entry.
pub const TYPE_ENTRY: u8 = 1;

/// Record type of a sync marker.
pub const TYPE_MARKER: u8 = 2;

/// Largest payload a record may hold, in bytes (64 MiB).
///
/// Why a limit: the reader allocates a record's payload before it can check its CRC, so an
/// unchecked length field (a flipped high bit, garbage in a torn tail) could ask for 4 GiB.
/// Every length is checked against this before anything is allocated. 64 MiB is far above
/// any entry the transport can carry, so the limit never binds on a correct server.
pub const RECORD_BYTES_MAX: u32 = 64 << 20;

/// Largest `Entry::data` that fits in one record: [`RECORD_BYTES_MAX`] minus the entry header.
pub const ENTRY_DATA_BYTES_MAX: usize = RECORD_BYTES_MAX as usize - ENTRY_HEADER_LEN;

/// A sync marker: "this segment was durable through byte `synced_through`". One is written
/// right after each successful fdatasync returns, so a marker that passes its CRC tells the
/// truth wherever it is found; recovery uses it to tell damage to synced bytes (corruption)
/// from an interrupted write (a torn tail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Marker {
    /// First index of the segment the marker belongs to (a marker copied into another segment
    /// is not believed).
    pub first_index: LogIndex,
    /// Bytes `0..synced_through` of the segment were durable when the marker was written.
    /// Always the marker's own offset: it is written right after the records it covers.
    pub synced_through: u64,
    /// Index of the last entry before the marker (`first_index - 1` if there is none).
    pub last_index: LogIndex,
}

/// Fills in the frame of the record that starts at `start` in `buf` (its payload already
/// appended after a 9-byte placeholder) and returns the record's length.
fn seal(buf: &mut [u8], start: usize, kind: u8) -> usize {
    let payload_len = buf.len() - start - RECORD_HEADER_LEN;
    buf[start + 4] = kind;
    buf[start + 5..start + 9].copy_from_slice(&(payload_len as u32).to_le_bytes());
    let crc = crc32fast::hash(&buf[start + 4..]);
    buf[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    buf.len() - start
}

/// Appends the record for `entry` to `buf` and returns its length in bytes.
///
/// Checks the record by decoding it back before returning (pair assertions around disk,
/// DESIGN.md style rule 5): a record that would not read back identically must never reach
/// the disk, because we would only find out at the next start, after acknowledging it.
///
/// # Panics
///
/// If `entry.data` is longer than [`ENTRY_DATA_BYTES_MAX`]: the layers above must bound an
/// entry's size (the transport's envelope limit is far smaller), and writing a record the
/// reader refuses would make the whole log unreadable.
pub(super) fn encode(entry: &Entry, buf: &mut Vec<u8>) -> usize {
    assert!(
        entry.data.len() <= ENTRY_DATA_BYTES_MAX,
        "entry {} has {} bytes of data, more than a record holds ({ENTRY_DATA_BYTES_MAX})",
        entry.index,
        entry.data.len()
    );
    let start = buf.len();
    buf.reserve(RECORD_HEADER_LEN + ENTRY_HEADER_LEN + entry.data.len());
    buf.extend_from_slice(&[0; RECORD_HEADER_LEN]);
    buf.extend_from_slice(&entry.term.0.to_le_bytes());
    buf.extend_from_slice(&entry.index.0.to_le_bytes());
    buf.extend_from_slice(&entry.data);
    let len = seal(buf, start, TYPE_ENTRY);

    // Checked in place, not by a full decode: that would copy every entry's data once more.
    let record = &buf[start..];
    let u64_at = |at: usize| u64::from_le_bytes(record[at..at + 8].try_into().expect("8 bytes"));
    let stored_crc = u32::from_le_bytes(record[..4].try_into().expect("4 bytes"));
    assert_eq!(stored_crc, crc32fast::hash(&record[4..]), "record checksum does not round-trip");
    assert_eq!(record[4], TYPE_ENTRY);
    let payload_len = u32::from_le_bytes(record[5..9].try_into().expect("4 bytes"));
    assert_eq!(payload_len as usize, len - RECORD_HEADER_LEN, "record length does not round-trip");
    assert_eq!((Term(u64_at(9)), LogIndex(u64_at(17))), (entry.term, entry.index), "entry header does not round-trip");
    assert!(record[RECORD_HEADER_LEN + ENTRY_HEADER_LEN..] == entry.data[..]);
    len
}

/// Appends the record for `marker` to `buf` and returns its length ([`MARKER_RECORD_LEN`]),
/// checked by decoding it back like [`encode`].
pub(super) fn encode_marker(marker: &Marker, buf: &mut Vec<u8>) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; RECORD_HEADER_LEN]);
    buf.extend_from_slice(&marker.first_index.0.to_le_bytes());
    buf.extend_from_slice(&marker.synced_through.to_le_bytes());
    buf.extend_from_slice(&marker.last_index.0.to_le_bytes());
    let len = seal(buf, start, TYPE_MARKER);
    assert_eq!(len, MARKER_RECORD_LEN);
    assert_eq!(marker_at(buf[start..].try_into().expect("a marker's length")), Some(*marker));
    len
}

/// The sync marker at the start of `bytes`, if the bytes are one with a valid CRC. Used to
/// search a damaged region byte by byte: a type byte, a fixed length and a CRC must all agree,
/// so random bytes pass for a marker with a probability of about 2^-72.
pub(super) fn marker_at(bytes: &[u8; MARKER_RECORD_LEN]) -> Option<Marker> {
    let len = u32::from_le_bytes(bytes[5..9].try_into().expect("4 bytes"));
    if bytes[4] != TYPE_MARKER || len as usize != MARKER_PAYLOAD_LEN {
        return None;
    }
    let stored = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
    if stored != crc32fast::hash(&bytes[4..]) {
        return None;
    }
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    Some(Marker {
        first_index: LogIndex(u64_at(RECORD_HEADER_LEN)),
        synced_through: u64_at(RECORD_HEADER_LEN + 8),
        last_index: LogIndex(u64_at(RECORD_HEADER_LEN + 16)),
    })
}

/// The result of reading one record from a stream that holds `remaining` more bytes.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum RecordRead {
    /// A complete entry record whose CRC matches. `len` is its size, frame included.
    Entry {
        /// The decoded entry (its index and term are not yet checked against the log).
        entry: Entry,
        /// Bytes the record occupies, frame included.
        len: u64,
    },
    /// A complete sync marker whose CRC matches (its claims not yet checked).
    Marker(Marker),
    /// Not a valid record: cut short, a length above the limit, a CRC mismatch, an unknown
    /// type, or a payload that does not fit its type. Whether that is a torn write or damage
    /// is for the caller to decide (it depends on what was synced, see scan.rs).
    Bad {
        /// What is wrong, for the error message or the log line.
        detail: String,
    },
}

/// Reads the record at the current position of `reader`, which has `remaining` bytes left.
///
/// Checked in this order: frame present, length within [`RECORD_BYTES_MAX`] and within
/// `remaining` (both before the payload is allocated, so a garbage length costs nothing),
/// CRC, type, payload size for the type.
pub(super) fn read(reader: &mut impl Read, remaining: u64) -> io::Result<RecordRead> {
    let bad = |detail: String| Ok(RecordRead::Bad { detail });
    if remaining < RECORD_HEADER_LEN as u64 {
        return bad(format!("record frame cut short: {remaining} of {RECORD_HEADER_LEN} bytes"));
    }
    let mut frame = [0u8; RECORD_HEADER_LEN];
    reader.read_exact(&mut frame)?;
    let stored_crc = u32::from_le_bytes(frame[..4].try_into().expect("4 bytes"));
    let kind = frame[4];
    let len = u32::from_le_bytes(frame[5..].try_into().expect("4 bytes"));
    if len > RECORD_BYTES_MAX {
        return bad(format!("record length {len} exceeds the limit of {RECORD_BYTES_MAX} bytes"));
    }
    let record_len = RECORD_HEADER_LEN as u64 + u64::from(len);
    if record_len > remaining {
        return bad(format!("record of {record_len} bytes cut short: only {remaining} bytes left in the file"));
    }
    // Only now is the allocation bounded by both the limit and the file size.
    let mut payload = vec![0u8; len as usize];
    reader.read_exact(&mut payload)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&frame[4..]);
    hasher.update(&payload);
    let computed_crc = hasher.finalize();
    if computed_crc != stored_crc {
        return bad(format!("record checksum mismatch: stored {stored_crc:#010x}, computed {computed_crc:#010x}"));
    }
    let u64_at = |at: usize| u64::from_le_bytes(payload[at..at + 8].try_into().expect("8 bytes"));
    match kind {
        TYPE_ENTRY if payload.len() >= ENTRY_HEADER_LEN => {
            let (term, index) = (Term(u64_at(0)), LogIndex(u64_at(8)));
            payload.drain(..ENTRY_HEADER_LEN);
            Ok(RecordRead::Entry { entry: Entry { term, index, data: payload }, len: record_len })
        }
        TYPE_ENTRY => {
            bad(format!("entry record payload of {len} bytes is shorter than the {ENTRY_HEADER_LEN}-byte entry header"))
        }
        TYPE_MARKER if payload.len() == MARKER_PAYLOAD_LEN => Ok(RecordRead::Marker(Marker {
            first_index: LogIndex(u64_at(0)),
            synced_through: u64_at(8),
            last_index: LogIndex(u64_at(16)),
        })),
        TYPE_MARKER => bad(format!("sync marker payload of {len} bytes, expected {MARKER_PAYLOAD_LEN}")),
        other => bad(format!("unknown record type {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(term: u64, index: u64, data: &[u8]) -> Entry {
        Entry { term: Term(term), index: LogIndex(index), data: data.to_vec() }
    }

    fn read_all(bytes: &[u8]) -> RecordRead {
        read(&mut &bytes[..], bytes.len() as u64).unwrap()
    }

    fn is_bad(read: &RecordRead, needle: &str) -> bool {
        matches!(read, RecordRead::Bad { detail } if detail.contains(needle))
    }

    #[test]
    fn entry_layout_matches_the_documented_table() {
        let mut buf = vec![0xee]; // records append to whatever the buffer holds
        let len = encode(&entry(0x0102, 7, b"hi"), &mut buf);
        assert_eq!(len, 9 + 16 + 2);
        let record = &buf[1..];
        assert_eq!(&record[0..4], &crc32fast::hash(&record[4..]).to_le_bytes());
        assert_eq!(record[4], 1);
        assert_eq!(&record[5..9], &18u32.to_le_bytes());
        assert_eq!(&record[9..17], &0x0102u64.to_le_bytes());
        assert_eq!(&record[17..25], &7u64.to_le_bytes());
        assert_eq!(&record[25..], b"hi");
    }

    #[test]
    fn marker_layout_matches_the_documented_table() {
        let marker = Marker { first_index: LogIndex(3), synced_through: 0x0405, last_index: LogIndex(9) };
        let mut buf = Vec::new();
        assert_eq!(encode_marker(&marker, &mut buf), 33);
        assert_eq!(&buf[0..4], &crc32fast::hash(&buf[4..]).to_le_bytes());
        assert_eq!(buf[4], 2);
        assert_eq!(&buf[5..9], &24u32.to_le_bytes());
        assert_eq!(&buf[9..17], &3u64.to_le_bytes());
        assert_eq!(&buf[17..25], &0x0405u64.to_le_bytes());
        assert_eq!(&buf[25..33], &9u64.to_le_bytes());
        assert_eq!(read_all(&buf), RecordRead::Marker(marker));
    }

    #[test]
    fn read_inverts_encode_for_empty_and_large_data() {
        for data in [Vec::new(), vec![7u8; 1], vec![0xa5; 300_000]] {
            let original = entry(3, 9, &data);
            let mut buf = Vec::new();
            let len = encode(&original, &mut buf) as u64;
            assert_eq!(read_all(&buf), RecordRead::Entry { entry: original, len });
        }
    }

    #[test]
    fn every_cut_and_every_flipped_bit_is_bad() {
        let mut buf = Vec::new();
        encode(&entry(1, 1, b"abc"), &mut buf);
        encode_marker(&Marker { first_index: LogIndex(1), synced_through: 17, last_index: LogIndex(0) }, &mut buf);
        let (entry_len, total) = (9 + 16 + 3, buf.len());
        for (start, end) in [(0, entry_len), (entry_len, total)] {
            let record = &buf[start..end];
            for cut in 0..record.len() {
                assert!(is_bad(&read_all(&record[..cut]), "cut short"), "cut {cut}");
            }
            // Every bit, the length and type included: version 2's CRC covers the frame.
            for bit in 0..record.len() * 8 {
                let mut flipped = record.to_vec();
                flipped[bit / 8] ^= 1 << (bit % 8);
                assert!(matches!(read_all(&flipped), RecordRead::Bad { .. }), "record at {start}, bit {bit}");
                if end == total {
                    assert_eq!(marker_at(flipped[..].try_into().unwrap()), None, "bit {bit}");
                }
            }
        }
    }

    #[test]
    fn zeros_are_bad_not_an_empty_record() {
        // Unsynced pages can reach the disk as zeros: those must never decode as a record.
        for len in [9, 33, 4096] {
            assert!(is_bad(&read_all(&vec![0; len]), "checksum mismatch"), "{len} zeros");
        }
        assert_eq!(marker_at(&[0; MARKER_RECORD_LEN]), None);
    }

    #[test]
    fn a_garbage_length_is_bad_before_anything_is_read() {
        let mut frame = [0u8; 9];
        frame[5..].copy_from_slice(&u32::MAX.to_le_bytes());
        // A reader with only the frame in it: had the payload been read (or sized from the
        // length), read_exact would fail instead of returning Bad.
        let result = read(&mut &frame[..], u64::MAX).unwrap();
        assert!(is_bad(&result, "4294967295 exceeds"), "{result:?}");
        frame[5..].copy_from_slice(&(RECORD_BYTES_MAX + 1).to_le_bytes());
        assert!(is_bad(&read_all(&frame), "exceeds"));
        frame[5..].copy_from_slice(&RECORD_BYTES_MAX.to_le_bytes());
        assert!(is_bad(&read_all(&frame), "cut short"));
    }

    #[test]
    fn a_checksummed_record_of_the_wrong_shape_is_bad() {
        let sealed = |kind: u8, payload: &[u8]| {
            let mut buf = vec![0; 9];
            buf.extend_from_slice(payload);
            seal(&mut buf, 0, kind);
            buf
        };
        assert!(is_bad(&read_all(&sealed(TYPE_ENTRY, &[1, 2, 3])), "shorter than the 16-byte"));
        assert!(is_bad(&read_all(&sealed(TYPE_MARKER, &[0; 16])), "expected 24"));
        assert!(is_bad(&read_all(&sealed(0, &[0; 24])), "unknown record type 0"));
        assert!(is_bad(&read_all(&sealed(7, &[])), "unknown record type 7"));
    }

    #[test]
    #[should_panic(expected = "more than a record holds")]
    fn an_entry_too_large_for_a_record_is_a_bug() {
        let huge = Entry { term: Term(1), index: LogIndex(1), data: vec![0; ENTRY_DATA_BYTES_MAX + 1] };
        encode(&huge, &mut Vec::new());
    }
}
