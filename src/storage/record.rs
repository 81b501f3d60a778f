//! One log entry as a write-ahead-log record: its framing, its encoding and its checked
//! decoding. docs/storage.md has the table; this file is the only code that knows it.
//!
//! ```text
//! offset size field
//!      0    4 len: payload length in bytes (u32 LE), at most RECORD_BYTES_MAX
//!      4    4 crc: CRC32 (IEEE, crc32fast) of the payload (u32 LE)
//!      8  len payload:
//!           +0  8 term (u64 LE)
//!           +8  8 index (u64 LE)
//!          +16  8 data length (u64 LE), always len - 24
//!          +24  … data
//! ```
//!
//! The entry is encoded by hand rather than with bincode so that the on-disk format does not
//! change when the wire codec does (DESIGN.md, "Storage" may use encoding, not transport).

use std::io::{self, Read};

use crate::core::{Entry, LogIndex, Term};

/// Bytes of the record frame in front of the payload: length and CRC.
pub const RECORD_HEADER_LEN: usize = 8;

/// Bytes of the entry header at the start of every payload: term, index, data length.
pub const ENTRY_HEADER_LEN: usize = 24;

/// Largest payload a record may hold, in bytes (64 MiB).
///
/// Why a limit: the reader allocates a record's payload before it can check its CRC, so an
/// unchecked length field (a flipped high bit, a foreign file) could ask for 4 GiB. Every
/// length is checked against this before anything is allocated. 64 MiB is far above any
/// entry the transport can carry, so the limit never binds on a correct server.
pub const RECORD_BYTES_MAX: u32 = 64 << 20;

/// Largest `Entry::data` that fits in one record: [`RECORD_BYTES_MAX`] minus the entry header.
pub const ENTRY_DATA_BYTES_MAX: usize = RECORD_BYTES_MAX as usize - ENTRY_HEADER_LEN;

/// What the fixed part of a payload says, before the data is interpreted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct EntryHeader {
    /// Term of the entry.
    pub term: Term,
    /// Index of the entry.
    pub index: LogIndex,
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
    let payload_len = ENTRY_HEADER_LEN + entry.data.len();
    buf.reserve(RECORD_HEADER_LEN + payload_len);
    buf.extend_from_slice(&(payload_len as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]); // the CRC, filled in below
    buf.extend_from_slice(&entry.term.0.to_le_bytes());
    buf.extend_from_slice(&entry.index.0.to_le_bytes());
    buf.extend_from_slice(&(entry.data.len() as u64).to_le_bytes());
    buf.extend_from_slice(&entry.data);
    let payload_start = start + RECORD_HEADER_LEN;
    let crc = crc32fast::hash(&buf[payload_start..]);
    buf[start + 4..payload_start].copy_from_slice(&crc.to_le_bytes());

    let record = &buf[start..];
    let (len, stored_crc) = frame(record[..RECORD_HEADER_LEN].try_into().expect("8 bytes"));
    assert_eq!(len as usize, payload_len, "record length does not round-trip");
    assert_eq!(stored_crc, crc32fast::hash(&record[RECORD_HEADER_LEN..]));
    let header = entry_header(
        record[RECORD_HEADER_LEN..RECORD_HEADER_LEN + ENTRY_HEADER_LEN].try_into().expect("24 bytes"),
        len,
    );
    assert_eq!(header, Ok(EntryHeader { term: entry.term, index: entry.index }), "record header does not round-trip");
    assert!(record[RECORD_HEADER_LEN + ENTRY_HEADER_LEN..] == entry.data[..]);
    record.len()
}

/// Splits a record frame into (payload length, stored CRC).
pub(super) fn frame(bytes: &[u8; RECORD_HEADER_LEN]) -> (u32, u32) {
    let len = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(bytes[4..].try_into().expect("4 bytes"));
    (len, crc)
}

/// Interprets the entry header of a payload whose CRC already matched. The only check left
/// is that the data length agrees with the frame: a writer bug, not a disk error, would
/// produce a correct CRC over a wrong field.
pub(super) fn entry_header(bytes: &[u8; ENTRY_HEADER_LEN], payload_len: u32) -> Result<EntryHeader, String> {
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let data_len = u64_at(16);
    let expected = u64::from(payload_len) - ENTRY_HEADER_LEN as u64;
    if data_len != expected {
        return Err(format!(
            "entry data length {data_len} does not match record length {payload_len} (expected {expected})"
        ));
    }
    Ok(EntryHeader { term: Term(u64_at(0)), index: LogIndex(u64_at(8)) })
}

/// The result of reading one record from a stream that holds `remaining` more bytes.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum RecordRead {
    /// The record is complete and its CRC matches. `len` is its size, frame included.
    Entry {
        /// The decoded entry (its index and term are not yet checked against the log).
        entry: Entry,
        /// Bytes the record occupies, frame included.
        len: u64,
    },
    /// The frame or the payload extends past the end of the file: a write cut short.
    Short {
        /// Why, for the log line.
        detail: String,
    },
    /// The record fits, but its CRC does not match; it ends `len` bytes after its start.
    BadCrc {
        /// Bytes the record claims to occupy, frame included.
        len: u64,
        /// Stored and computed CRC, for the error message.
        detail: String,
    },
    /// The record can never be valid whatever follows it (a length above the limit, or a
    /// payload that matches its CRC but does not hold an entry).
    Invalid {
        /// What is wrong.
        detail: String,
    },
}

/// Reads the record at the current position of `reader`, which has `remaining` bytes left.
///
/// The length field is checked against [`RECORD_BYTES_MAX`] and against `remaining` before
/// the payload is allocated, so a garbage length costs nothing. A length above the limit is
/// [`RecordRead::Invalid`], never [`RecordRead::Short`], even at the end of the file: the
/// writer never produces one (it checks every entry against the limit), so it is damage,
/// not an interrupted write.
pub(super) fn read(reader: &mut impl Read, remaining: u64) -> io::Result<RecordRead> {
    if remaining < RECORD_HEADER_LEN as u64 {
        return Ok(RecordRead::Short {
            detail: format!("record frame cut short: {remaining} of {RECORD_HEADER_LEN} bytes"),
        });
    }
    let mut frame_bytes = [0u8; RECORD_HEADER_LEN];
    reader.read_exact(&mut frame_bytes)?;
    let (len, stored_crc) = frame(&frame_bytes);
    if len > RECORD_BYTES_MAX {
        return Ok(RecordRead::Invalid {
            detail: format!("record length {len} exceeds the limit of {RECORD_BYTES_MAX} bytes"),
        });
    }
    let record_len = RECORD_HEADER_LEN as u64 + u64::from(len);
    if record_len > remaining {
        return Ok(RecordRead::Short {
            detail: format!("record of {record_len} bytes cut short: only {remaining} bytes left in the file"),
        });
    }
    // Only now is the allocation bounded by both the limit and the file size.
    let mut head = [0u8; ENTRY_HEADER_LEN];
    let head_len = (len as usize).min(ENTRY_HEADER_LEN);
    reader.read_exact(&mut head[..head_len])?;
    let mut data = vec![0u8; (len as usize).saturating_sub(ENTRY_HEADER_LEN)];
    reader.read_exact(&mut data)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&head[..head_len]);
    hasher.update(&data);
    let computed_crc = hasher.finalize();
    if computed_crc != stored_crc {
        return Ok(RecordRead::BadCrc {
            len: record_len,
            detail: format!("record checksum mismatch: stored {stored_crc:#010x}, computed {computed_crc:#010x}"),
        });
    }
    if head_len < ENTRY_HEADER_LEN {
        return Ok(RecordRead::Invalid {
            detail: format!("record payload of {len} bytes is shorter than the {ENTRY_HEADER_LEN}-byte entry header"),
        });
    }
    match entry_header(&head, len) {
        Ok(header) => {
            Ok(RecordRead::Entry { entry: Entry { term: header.term, index: header.index, data }, len: record_len })
        }
        Err(detail) => Ok(RecordRead::Invalid { detail }),
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

    #[test]
    fn layout_matches_the_documented_table() {
        let mut buf = vec![0xee]; // records append to whatever the buffer holds
        let len = encode(&entry(0x0102, 7, b"hi"), &mut buf);
        assert_eq!(len, 8 + 24 + 2);
        let record = &buf[1..];
        assert_eq!(&record[0..4], &26u32.to_le_bytes());
        assert_eq!(&record[4..8], &crc32fast::hash(&record[8..]).to_le_bytes());
        assert_eq!(&record[8..16], &0x0102u64.to_le_bytes());
        assert_eq!(&record[16..24], &7u64.to_le_bytes());
        assert_eq!(&record[24..32], &2u64.to_le_bytes());
        assert_eq!(&record[32..], b"hi");
    }

    #[test]
    fn the_example_in_docs_storage_md_is_exact() {
        let mut buf = Vec::new();
        encode(&entry(2, 1, b"x"), &mut buf);
        let expected: [u8; 33] = [
            0x19, 0, 0, 0, 0xdc, 0x0e, 0xaa, 0xb7, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,
            0, b'x',
        ];
        assert_eq!(buf, expected, "{buf:02x?}");
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
    fn every_cut_is_short_and_every_flipped_payload_bit_a_bad_crc() {
        let mut buf = Vec::new();
        encode(&entry(1, 1, b"abc"), &mut buf);
        for cut in 0..buf.len() {
            assert!(matches!(read_all(&buf[..cut]), RecordRead::Short { .. }), "cut {cut}");
        }
        for bit in 32..buf.len() * 8 {
            let mut bad = buf.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(matches!(read_all(&bad), RecordRead::BadCrc { len: 35, .. }), "bit {bit}");
        }
    }

    #[test]
    fn a_garbage_length_is_invalid_before_anything_is_read() {
        let mut bytes = vec![0xff; 8];
        bytes.extend_from_slice(&[0; 100]);
        // A reader with only the frame in it: had the payload been read (or sized from the
        // length), read_exact would fail instead of returning Invalid.
        let mut frame_only = &bytes[..8];
        let result = read(&mut frame_only, u64::MAX).unwrap();
        match result {
            RecordRead::Invalid { detail } => {
                assert!(detail.contains("4294967295 exceeds"), "{detail}")
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        // One byte over the limit is refused too, the limit itself is merely short here.
        let over = (RECORD_BYTES_MAX + 1).to_le_bytes();
        let at_limit = RECORD_BYTES_MAX.to_le_bytes();
        let mut frame = [0u8; 8];
        frame[..4].copy_from_slice(&over);
        assert!(matches!(read_all(&frame), RecordRead::Invalid { .. }));
        frame[..4].copy_from_slice(&at_limit);
        assert!(matches!(read_all(&frame), RecordRead::Short { .. }));
    }

    #[test]
    fn a_checksummed_payload_that_is_not_an_entry_is_invalid() {
        // Shorter than the entry header, with a correct CRC.
        let payload = [1u8, 2, 3];
        let mut bytes = 3u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        assert!(matches!(read_all(&bytes), RecordRead::Invalid { .. }));

        // A data length field that disagrees with the frame, with a correct CRC.
        let mut buf = Vec::new();
        encode(&entry(1, 1, b"abc"), &mut buf);
        buf[24] = 4;
        let crc = crc32fast::hash(&buf[8..]);
        buf[4..8].copy_from_slice(&crc.to_le_bytes());
        match read_all(&buf) {
            RecordRead::Invalid { detail } => assert!(detail.contains("data length 4"), "{detail}"),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    #[should_panic(expected = "more than a record holds")]
    fn an_entry_too_large_for_a_record_is_a_bug() {
        let huge = Entry { term: Term(1), index: LogIndex(1), data: vec![0; ENTRY_DATA_BYTES_MAX + 1] };
        encode(&huge, &mut Vec::new());
    }
}
