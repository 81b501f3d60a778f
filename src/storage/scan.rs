//! The checked scan that recovers one segment at open, and the rule that tells a torn tail
//! (bytes no sync covered: cut them off) from damage to synced bytes (refuse to start).
//!
//! The rule rests on sync markers (record.rs): one is written right after each fdatasync
//! returns, saying "durable through my own offset". A marker with a valid CRC is therefore
//! true wherever it is found, even in a region that is otherwise garbage. At the first bad
//! record at offset B of the last segment, the rest of the file is searched byte by byte for
//! a valid marker of this segment claiming more than B: if there is one, bytes before it were
//! synced, so B is damage; if there is none, nothing after B was ever promised, and B is a
//! torn tail. docs/storage.md, "Recovery", has the table and the one blind spot.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::error::io_error;
use super::record::{self, Marker, RecordRead, MARKER_RECORD_LEN};
use super::segment::{decode_header, HeaderError, OFFSET_FIRST_INDEX, SEGMENT_HEADER_LEN, VERSION};
use super::StorageError;
use crate::core::{Entry, LogIndex, Term};

/// Read buffer for the scan at open: large reads, without holding a whole segment in memory.
const SCAN_BUFFER_BYTES: usize = 1 << 20;

/// Where one entry's record sits in its segment, and the entry's term (kept so that a
/// truncation can restore the "terms never decrease" check without reading the disk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RecordPos {
    /// Byte offset of the record from the start of the segment file.
    pub offset: u64,
    /// Term of the entry.
    pub term: Term,
}

/// The checked content of a segment file.
#[derive(Debug)]
pub(super) struct Scanned {
    /// Index of the first entry (from the header).
    pub first_index: LogIndex,
    /// The entries of the valid records, in order.
    pub entries: Vec<Entry>,
    /// Where each of `entries` sits.
    pub positions: Vec<RecordPos>,
    /// Length of the valid part: header plus valid records (entries and markers).
    pub valid_len: u64,
    /// Length of the file; more than `valid_len` only when the scan found a torn tail.
    pub file_len: u64,
    /// Why the bytes after `valid_len` were judged a torn tail, if there are any.
    pub torn: Option<String>,
    /// End of the last valid sync marker (the header's end if there is none): entries after
    /// it are not claimed durable by any marker.
    pub marked_end: u64,
}

/// What the scan of one segment must agree with: the log before it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Expect {
    /// Index the segment's first record must have.
    pub next_index: LogIndex,
    /// Term of the entry before it (terms never decrease along the log, §5.3).
    pub last_term: Term,
    /// Whether this is the newest segment, the only one that may end in a torn write (each
    /// older one was fdatasynced in full before the next was created).
    pub is_last: bool,
}

/// Reads and checks the segment at `path` (named for `named`), record by record, and
/// applies the torn-tail rule of the module comment at the first bad record.
pub(super) fn scan(path: &Path, named: LogIndex, expect: Expect) -> Result<Scanned, StorageError> {
    let file = File::open(path).map_err(io_error(path, "open"))?;
    let file_len = file.metadata().map_err(io_error(path, "stat"))?.len();
    let corrupt = |offset: u64, detail: String| StorageError::Corrupt { path: path.to_path_buf(), offset, detail };
    if file_len < SEGMENT_HEADER_LEN as u64 {
        // The header is made durable before the file gets its name (segment::create), so a
        // short header is damage even in the last segment.
        return Err(corrupt(0, format!("segment header cut short ({file_len} of {SEGMENT_HEADER_LEN} bytes)")));
    }
    let mut reader = BufReader::with_capacity(SCAN_BUFFER_BYTES, file);
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    reader.read_exact(&mut header).map_err(io_error(path, "read"))?;
    let first_index = match decode_header(&header, named) {
        Ok(first_index) => first_index,
        Err(HeaderError::Corrupt(offset, detail)) => return Err(corrupt(offset, detail)),
        Err(HeaderError::Version(found)) => {
            return Err(StorageError::UnsupportedVersion { path: path.to_path_buf(), found, supported: VERSION })
        }
    };
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
        marked_end: SEGMENT_HEADER_LEN as u64,
    };
    let mut next_index = first_index;
    let mut last_term = expect.last_term;
    while scanned.valid_len < file_len {
        let offset = scanned.valid_len;
        let read = record::read(&mut reader, file_len - offset).map_err(io_error(path, "read"))?;
        let checked = match read {
            RecordRead::Entry { entry, len } => check_entry(&entry, next_index, last_term).map(|()| (Some(entry), len)),
            RecordRead::Marker(marker) => {
                let expected = Marker { first_index, synced_through: offset, last_index: LogIndex(next_index.0 - 1) };
                if marker == expected {
                    Ok((None, MARKER_RECORD_LEN as u64))
                } else {
                    Err(format!("sync marker {marker:?} does not describe its place, expected {expected:?}"))
                }
            }
            RecordRead::Bad { detail } => Err(detail),
        };
        match checked {
            Ok((Some(entry), len)) => {
                next_index = LogIndex(next_index.0 + 1);
                last_term = entry.term;
                scanned.positions.push(RecordPos { offset, term: entry.term });
                scanned.entries.push(entry);
                scanned.valid_len += len;
            }
            Ok((None, len)) => {
                scanned.valid_len += len;
                scanned.marked_end = scanned.valid_len;
            }
            Err(detail) if !expect.is_last => {
                return Err(corrupt(
                    offset,
                    format!("{detail}, in a segment that is not the last (it was synced in full)"),
                ))
            }
            Err(detail) => {
                let mut file = reader.into_inner();
                return match find_marker_after(&mut file, offset, file_len, first_index).map_err(io_error(path, "read"))? {
                    Some(at) => Err(corrupt(
                        offset,
                        format!(
                            "{detail}; the sync marker at byte {at} says the segment was durable through byte {at}, so synced data is damaged"
                        ),
                    )),
                    None => {
                        scanned.torn = Some(detail);
                        Ok(scanned)
                    }
                };
            }
        }
    }
    Ok(scanned)
}

/// The checks after reading that pair with the asserts before writing (`assert_continues`).
fn check_entry(entry: &Entry, next_index: LogIndex, last_term: Term) -> Result<(), String> {
    if entry.index != next_index {
        return Err(format!("record holds index {}, expected {next_index}", entry.index));
    }
    if entry.term < last_term {
        return Err(format!(
            "entry {} has term {}, lower than the term {last_term} before it (§5.3: terms never decrease along the log)",
            entry.index, entry.term
        ));
    }
    Ok(())
}

/// The offset of the first valid sync marker of the segment `first_index` that starts after
/// `bad` and claims more than `bad` (it claims its own offset), searching byte by byte: the
/// bad record's length field cannot be trusted to find the next record.
fn find_marker_after(file: &mut File, bad: u64, file_len: u64, first_index: LogIndex) -> io::Result<Option<u64>> {
    let mut start = bad + 1;
    let mut window = Vec::with_capacity(SCAN_BUFFER_BYTES + MARKER_RECORD_LEN);
    while start + MARKER_RECORD_LEN as u64 <= file_len {
        // Chunks overlap by a marker's length less one, so that no position is missed.
        let len = (file_len - start).min((SCAN_BUFFER_BYTES + MARKER_RECORD_LEN) as u64) as usize;
        window.resize(len, 0);
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut window)?;
        for (i, candidate) in window.windows(MARKER_RECORD_LEN).enumerate() {
            let at = start + i as u64;
            let marker = record::marker_at(candidate.try_into().expect("a window is a marker's length"));
            if marker.is_some_and(|m| m.first_index == first_index && m.synced_through == at) {
                return Ok(Some(at));
            }
        }
        start += (len - MARKER_RECORD_LEN + 1) as u64;
    }
    Ok(None)
}
