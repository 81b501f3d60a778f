//! One segment file of the write-ahead log: its name, its header, and the checked scan that
//! recovers its entries at open. docs/storage.md has the tables and the recovery rules.
//!
//! ```text
//! wal/<first_index, 20 zero-padded digits>.seg
//! offset size field
//!      0    4 magic b"LDWL"
//!      4    1 format version (1)
//!      5    8 first_index (u64 LE): index of the segment's first entry
//!     13    4 CRC32 (IEEE) of bytes 0..13 (u32 LE)
//!     17    … records (record.rs), back to back, up to the end of the file
//! ```

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use super::error::io_error;
use super::record::{self, RecordRead};
use super::StorageError;
use crate::core::{Entry, LogIndex, Term};

/// Size in bytes of a segment header, checksum included.
pub const SEGMENT_HEADER_LEN: usize = 17;

/// First bytes of every segment: tells a log segment from any other file put there.
const MAGIC: &[u8; 4] = b"LDWL";
/// Bumped whenever the segment or record layout changes; an unknown version is refused.
const VERSION: u8 = 1;
const OFFSET_VERSION: usize = 4;
const OFFSET_FIRST_INDEX: usize = 5;
const OFFSET_CRC: usize = 13;
/// File name suffix of a segment.
const SUFFIX: &str = ".seg";
/// Digits in a segment's name: enough for any u64, so names sort like their indexes.
const NAME_DIGITS: usize = 20;

/// Read buffer for the scan at open: large reads, without holding a whole segment in memory.
const SCAN_BUFFER_BYTES: usize = 1 << 20;

/// The file name of the segment whose first entry is `first_index`.
pub(super) fn file_name(first_index: LogIndex) -> String {
    format!("{:0width$}{SUFFIX}", first_index.0, width = NAME_DIGITS)
}

/// The first index a segment file name stands for, if it is a segment name at all.
fn parse_name(name: &str) -> Option<LogIndex> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(LogIndex)
}

/// The segment files in `wal_dir`, in log order. Other files are left alone, with a warning:
/// refusing to start over an editor's backup file would help nobody.
pub(super) fn list(wal_dir: &Path) -> Result<Vec<(LogIndex, PathBuf)>, StorageError> {
    let mut segments = Vec::new();
    for dir_entry in fs::read_dir(wal_dir).map_err(io_error(wal_dir, "read directory"))? {
        let dir_entry = dir_entry.map_err(io_error(wal_dir, "read directory"))?;
        let name = dir_entry.file_name();
        match name.to_str().and_then(parse_name) {
            Some(first_index) => segments.push((first_index, dir_entry.path())),
            None => log::warn!("ignoring {}: not a log segment name", dir_entry.path().display()),
        }
    }
    segments.sort();
    Ok(segments)
}

/// The 17-byte header of the segment whose first entry is `first_index`.
pub(super) fn encode_header(first_index: LogIndex) -> [u8; SEGMENT_HEADER_LEN] {
    let mut bytes = [0u8; SEGMENT_HEADER_LEN];
    bytes[..OFFSET_VERSION].copy_from_slice(MAGIC);
    bytes[OFFSET_VERSION] = VERSION;
    bytes[OFFSET_FIRST_INDEX..OFFSET_CRC].copy_from_slice(&first_index.0.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..OFFSET_CRC]);
    bytes[OFFSET_CRC..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Checks a header: magic, then version (so that a foreign or newer file gets a precise
/// message), then the CRC, then that the first index agrees with the file name. Returns the
/// offset of the first bad field and what is wrong with it.
fn decode_header(bytes: &[u8; SEGMENT_HEADER_LEN], named: LogIndex) -> Result<LogIndex, (u64, String)> {
    if &bytes[..OFFSET_VERSION] != MAGIC {
        let found = &bytes[..OFFSET_VERSION];
        return Err((0, format!("bad magic {found:02x?}, expected \"LDWL\"")));
    }
    if bytes[OFFSET_VERSION] != VERSION {
        let found = bytes[OFFSET_VERSION];
        return Err((OFFSET_VERSION as u64, format!("unknown format version {found}, expected {VERSION}")));
    }
    let stored = u32::from_le_bytes(bytes[OFFSET_CRC..].try_into().expect("4 bytes"));
    let computed = crc32fast::hash(&bytes[..OFFSET_CRC]);
    if stored != computed {
        return Err((
            OFFSET_CRC as u64,
            format!("header checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"),
        ));
    }
    let first_index = LogIndex(u64::from_le_bytes(bytes[OFFSET_FIRST_INDEX..OFFSET_CRC].try_into().expect("8 bytes")));
    if first_index != named {
        return Err((
            OFFSET_FIRST_INDEX as u64,
            format!("header first index {first_index} does not match the file name ({named})"),
        ));
    }
    Ok(first_index)
}

/// Where one entry's record sits in its segment, and the entry's term (kept so that a
/// truncation can restore the "terms never decrease" check without reading the disk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RecordPos {
    /// Byte offset of the record from the start of the segment file.
    pub offset: u64,
    /// Term of the entry.
    pub term: Term,
}

/// What a scan found in one segment file.
#[derive(Debug)]
pub(super) enum Scan {
    /// The file is shorter than a header. Only possible for a segment whose creation was
    /// interrupted; the caller decides whether that is a torn tail (last segment) or damage.
    PartialHeader {
        /// The file's length.
        file_len: u64,
    },
    /// The header is valid; `entries` are the complete, checked records.
    Segment(Scanned),
}

/// The checked content of a segment file.
#[derive(Debug)]
pub(super) struct Scanned {
    /// Index of the first entry (from the header).
    pub first_index: LogIndex,
    /// The entries of the complete records, in order.
    pub entries: Vec<Entry>,
    /// Where each of `entries` sits.
    pub positions: Vec<RecordPos>,
    /// Length of the valid part: header plus complete records.
    pub valid_len: u64,
    /// Length of the file; more than `valid_len` only when the scan found a torn tail.
    pub file_len: u64,
    /// Why the bytes after `valid_len` were judged a torn tail, if there are any.
    pub torn: Option<String>,
}

/// What the scan of one segment must agree with: the log before it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Expect {
    /// Index the segment's first record must have.
    pub next_index: LogIndex,
    /// Term of the entry before it (terms never decrease along the log, §5.3).
    pub last_term: Term,
    /// Whether this is the newest segment, the only one that may end in a torn write.
    pub is_last: bool,
}

/// Reads and checks the segment at `path` (named for `named`), record by record.
///
/// Torn-tail rules, applied only when `expect.is_last` (older segments were synced in full
/// before a newer one was created, so damage there is never an interrupted write):
/// a final record cut short, or a final record whose CRC fails and which ends exactly at the
/// end of the file, ends the scan, and the caller truncates it away. Anything else that is
/// wrong is [`StorageError::Corrupt`] at the offset of the record (or header field).
pub(super) fn scan(path: &Path, named: LogIndex, expect: Expect) -> Result<Scan, StorageError> {
    let file = File::open(path).map_err(io_error(path, "open"))?;
    let file_len = file.metadata().map_err(io_error(path, "stat"))?.len();
    let corrupt = |offset: u64, detail: String| StorageError::Corrupt { path: path.to_path_buf(), offset, detail };
    if file_len < SEGMENT_HEADER_LEN as u64 {
        return Ok(Scan::PartialHeader { file_len });
    }
    let mut reader = BufReader::with_capacity(SCAN_BUFFER_BYTES, file);
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    reader.read_exact(&mut header).map_err(io_error(path, "read"))?;
    let first_index = decode_header(&header, named).map_err(|(offset, detail)| corrupt(offset, detail))?;
    if first_index != expect.next_index {
        return Err(corrupt(
            OFFSET_FIRST_INDEX as u64,
            format!("segment starts at index {first_index}, but the log continues at {}", expect.next_index),
        ));
    }

    let mut scanned = Scanned {
        first_index,
        entries: Vec::new(),
        positions: Vec::new(),
        valid_len: SEGMENT_HEADER_LEN as u64,
        file_len,
        torn: None,
    };
    let mut next_index = first_index;
    let mut last_term = expect.last_term;
    while scanned.valid_len < file_len {
        let offset = scanned.valid_len;
        let remaining = file_len - offset;
        let read = record::read(&mut reader, remaining).map_err(io_error(path, "read"))?;
        let (entry, len) = match read {
            RecordRead::Entry { entry, len } => (entry, len),
            RecordRead::Short { detail } if expect.is_last => {
                scanned.torn = Some(detail);
                break;
            }
            RecordRead::BadCrc { len, detail } if expect.is_last && len == remaining => {
                scanned.torn = Some(detail);
                break;
            }
            RecordRead::Short { detail } => {
                return Err(corrupt(offset, format!("{detail}, in a segment that is not the last")))
            }
            RecordRead::BadCrc { detail, .. } => {
                return Err(corrupt(offset, format!("{detail}, with more data after it")))
            }
            RecordRead::Invalid { detail } => return Err(corrupt(offset, detail)),
        };
        // The checks after reading that pair with the asserts before writing (wal.rs).
        if entry.index != next_index {
            return Err(corrupt(offset, format!("record holds index {}, expected {next_index}", entry.index)));
        }
        if entry.term < last_term {
            return Err(corrupt(
                offset,
                format!(
                    "entry {} has term {}, lower than the term {last_term} before it (§5.3: terms never decrease along the log)",
                    entry.index, entry.term
                ),
            ));
        }
        next_index = LogIndex(next_index.0 + 1);
        last_term = entry.term;
        scanned.positions.push(RecordPos { offset, term: entry.term });
        scanned.entries.push(entry);
        scanned.valid_len += len;
    }
    Ok(Scan::Segment(scanned))
}

/// Creates the file of a new segment (failing if it exists: that would be a bug) and returns
/// it opened for appending. The header is not written here; the caller buffers it with the
/// first records, and a crash before they reach the disk leaves a partial header in the last
/// segment, which recovery removes.
pub(super) fn create(path: &Path) -> Result<File, StorageError> {
    File::options().append(true).create_new(true).open(path).map_err(io_error(path, "create"))
}

/// Opens an existing segment for appending at its end.
pub(super) fn open_append(path: &Path) -> Result<File, StorageError> {
    File::options().append(true).open(path).map_err(io_error(path, "open"))
}

/// Cuts the file at `path` to `len` bytes and makes the new length durable.
pub(super) fn truncate_durably(path: &Path, len: u64) -> Result<(), StorageError> {
    let file = open_append(path)?;
    file.set_len(len).map_err(io_error(path, "truncate"))?;
    file.sync_all().map_err(io_error(path, "fsync"))
}

/// Removes a file, treating "already gone" as done (a retry after a crash finds it so).
pub(super) fn remove(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(io_error(path, "remove")(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_zero_padded_and_parse_back() {
        assert_eq!(file_name(LogIndex(1)), "00000000000000000001.seg");
        assert_eq!(file_name(LogIndex(u64::MAX)), "18446744073709551615.seg");
        assert_eq!(parse_name("00000000000000000042.seg"), Some(LogIndex(42)));
        for not_a_segment in [
            "42.seg",
            "0000000000000000004x.seg",
            "00000000000000000042.seg.tmp",
            "99999999999999999999.seg", // 20 digits, but above u64::MAX
            "LOCK",
        ] {
            assert_eq!(parse_name(not_a_segment), None, "{not_a_segment}");
        }
    }

    #[test]
    fn header_layout_matches_the_documented_table() {
        let bytes = encode_header(LogIndex(0x0102));
        assert_eq!(&bytes[..4], b"LDWL");
        assert_eq!(bytes[4], 1);
        assert_eq!(&bytes[5..13], &0x0102u64.to_le_bytes());
        assert_eq!(&bytes[13..], &crc32fast::hash(&bytes[..13]).to_le_bytes());
        assert_eq!(decode_header(&bytes, LogIndex(0x0102)), Ok(LogIndex(0x0102)));
    }

    #[test]
    fn the_header_example_in_docs_storage_md_is_exact() {
        let expected: [u8; SEGMENT_HEADER_LEN] =
            [0x4c, 0x44, 0x57, 0x4c, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0x09, 0xd9, 0xf4, 0x15];
        let bytes = encode_header(LogIndex(1));
        assert_eq!(bytes, expected, "{bytes:02x?}");
    }

    #[test]
    fn each_header_defect_is_reported_at_its_field() {
        let good = encode_header(LogIndex(5));
        let offset_of = |bytes: &[u8; SEGMENT_HEADER_LEN], named| decode_header(bytes, LogIndex(named)).unwrap_err().0;
        for bit in 0..SEGMENT_HEADER_LEN * 8 {
            let mut bad = good;
            bad[bit / 8] ^= 1 << (bit % 8);
            let expected = match bit / 8 {
                0..=3 => 0,
                4 => 4,
                _ => 13,
            };
            assert_eq!(offset_of(&bad, 5), expected, "bit {bit}");
        }
        assert_eq!(offset_of(&good, 6), 5, "name and header disagree");
    }
}
