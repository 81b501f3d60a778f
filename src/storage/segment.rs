//! One segment file of the write-ahead log: its name, its header, and the file operations
//! (durable creation, truncation, removal). The scan that recovers a segment is scan.rs;
//! docs/storage.md has the tables and the rules.
//!
//! ```text
//! wal/<first_index, 20 zero-padded digits>.seg
//! offset size field
//!      0    4 magic b"LDWL"
//!      4    1 format version (2)
//!      5    8 first_index (u64 LE): index of the segment's first entry
//!     13    4 CRC32 (IEEE) of bytes 0..13 (u32 LE)
//!     17    … records (record.rs), back to back, up to the end of the file
//! ```

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::error::io_error;
use super::hard_state::sync_dir;
use super::StorageError;
use crate::core::LogIndex;

/// Size in bytes of a segment header, checksum included.
pub const SEGMENT_HEADER_LEN: usize = 17;

/// First bytes of every segment: tells a log segment from any other file put there.
const MAGIC: &[u8; 4] = b"LDWL";
/// Bumped whenever the segment or record layout changes. Version 2: the record CRC covers the
/// frame, and sync markers tell synced bytes from unsynced ones.
pub const VERSION: u8 = 2;
pub(super) const OFFSET_VERSION: usize = 4;
pub(super) const OFFSET_FIRST_INDEX: usize = 5;
const OFFSET_CRC: usize = 13;
/// File name suffix of a segment.
const SUFFIX: &str = ".seg";
/// Suffix of a segment being created: it gets its final name only once its header is durable.
const TMP_SUFFIX: &str = ".seg.tmp";
/// Digits in a segment's name: enough for any u64, so names sort like their indexes.
const NAME_DIGITS: usize = 20;

/// The file name of the segment whose first entry is `first_index`.
pub(super) fn file_name(first_index: LogIndex) -> String {
    format!("{:0width$}{SUFFIX}", first_index.0, width = NAME_DIGITS)
}

/// The first index a file name stands for, if it has the shape `<20 digits><suffix>`.
fn parse_with(name: &str, suffix: &str) -> Option<LogIndex> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(LogIndex)
}

/// The first index a segment file name stands for, if it is a segment name at all.
pub(super) fn parse_name(name: &str) -> Option<LogIndex> {
    parse_with(name, SUFFIX)
}

/// What a WAL directory holds.
#[derive(Debug, Default)]
pub(super) struct Listing {
    /// The segment files, in log order.
    pub segments: Vec<(LogIndex, PathBuf)>,
    /// Segments whose creation was interrupted before their rename: never part of the log.
    pub leftovers: Vec<PathBuf>,
}

/// The files in `wal_dir`. Other files are left alone, with a warning: refusing to start over
/// an editor's backup file would help nobody.
pub(super) fn list(wal_dir: &Path) -> Result<Listing, StorageError> {
    let mut listing = Listing::default();
    for dir_entry in fs::read_dir(wal_dir).map_err(io_error(wal_dir, "read directory"))? {
        let dir_entry = dir_entry.map_err(io_error(wal_dir, "read directory"))?;
        let name = dir_entry.file_name();
        let name = name.to_str();
        if let Some(first_index) = name.and_then(parse_name) {
            listing.segments.push((first_index, dir_entry.path()));
        } else if name.and_then(|name| parse_with(name, TMP_SUFFIX)).is_some() {
            listing.leftovers.push(dir_entry.path());
        } else {
            log::warn!("ignoring {}: not a log segment name", dir_entry.path().display());
        }
    }
    listing.segments.sort();
    listing.leftovers.sort();
    Ok(listing)
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

/// Why a header was refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum HeaderError {
    /// The header is damaged: the offset of the first bad field and what is wrong with it.
    Corrupt(u64, String),
    /// An intact header of another format version (the header layout is the same in every
    /// version, so its CRC can be checked whatever the version says).
    Version(u8),
}

/// Checks a header: magic, then version (so that a foreign file or another version gets a
/// precise message), then the CRC, then that the first index agrees with the file name.
pub(super) fn decode_header(bytes: &[u8; SEGMENT_HEADER_LEN], named: LogIndex) -> Result<LogIndex, HeaderError> {
    if &bytes[..OFFSET_VERSION] != MAGIC {
        let found = &bytes[..OFFSET_VERSION];
        return Err(HeaderError::Corrupt(0, format!("bad magic {found:02x?}, expected \"LDWL\"")));
    }
    let stored = u32::from_le_bytes(bytes[OFFSET_CRC..].try_into().expect("4 bytes"));
    let computed = crc32fast::hash(&bytes[..OFFSET_CRC]);
    let version = bytes[OFFSET_VERSION];
    if version != VERSION {
        // A version is believed only with a matching CRC: a flipped bit in the version byte
        // of a good segment is damage, not a file from another build.
        if stored == computed {
            return Err(HeaderError::Version(version));
        }
        return Err(HeaderError::Corrupt(
            OFFSET_VERSION as u64,
            format!("unknown format version {version} (expected {VERSION}), and the header checksum does not match"),
        ));
    }
    if stored != computed {
        return Err(HeaderError::Corrupt(
            OFFSET_CRC as u64,
            format!("header checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"),
        ));
    }
    let first_index = LogIndex(u64::from_le_bytes(bytes[OFFSET_FIRST_INDEX..OFFSET_CRC].try_into().expect("8 bytes")));
    if first_index != named {
        return Err(HeaderError::Corrupt(
            OFFSET_FIRST_INDEX as u64,
            format!("header first index {first_index} does not match the file name ({named})"),
        ));
    }
    Ok(first_index)
}

/// Creates the segment whose first entry is `first_index` in `wal_dir` so that it either
/// exists with its whole header or not at all: the header goes into `<name>.tmp`, which is
/// fdatasynced, renamed to its final name, and the directory fsynced. Only then can an entry
/// in it be reported durable. Returns the path and the file opened for appending.
///
/// Why the temporary name: otherwise a crash could leave a segment with a partial header, and
/// recovery could not tell that from a damaged header. Segments are created once per
/// `segment_bytes_max`, so the extra fsyncs cost nothing measurable.
pub(super) fn create(wal_dir: &Path, first_index: LogIndex) -> Result<(PathBuf, File), StorageError> {
    let path = wal_dir.join(file_name(first_index));
    let tmp = wal_dir.join(format!("{:0width$}{TMP_SUFFIX}", first_index.0, width = NAME_DIGITS));
    let mut file =
        File::options().write(true).create(true).truncate(true).open(&tmp).map_err(io_error(&tmp, "create"))?;
    file.write_all(&encode_header(first_index)).map_err(io_error(&tmp, "write"))?;
    file.sync_data().map_err(io_error(&tmp, "fdatasync"))?;
    drop(file);
    if path.exists() {
        // The log never creates a segment twice: the name is free unless there is a bug.
        return Err(io_error(&path, "create")(io::Error::from(io::ErrorKind::AlreadyExists)));
    }
    fs::rename(&tmp, &path).map_err(io_error(&path, "rename"))?;
    sync_dir(wal_dir)?;
    Ok((path.clone(), open_append(&path)?))
}

/// Opens an existing segment for appending at its end.
pub(super) fn open_append(path: &Path) -> Result<File, StorageError> {
    File::options().append(true).open(path).map_err(io_error(path, "open"))
}

/// Cuts the file at `path` to `len` bytes and makes the new length (and every byte before
/// it) durable.
pub(super) fn truncate_durably(path: &Path, len: u64) -> Result<(), StorageError> {
    let file = open_append(path)?;
    file.set_len(len).map_err(io_error(path, "truncate"))?;
    file.sync_all().map_err(io_error(path, "fsync"))
}

/// Removes a file, treating "already gone" as done (a retry after a crash finds it so).
/// The caller fsyncs the directory.
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
        assert_eq!(parse_with("00000000000000000042.seg.tmp", TMP_SUFFIX), Some(LogIndex(42)));
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
        assert_eq!(bytes[4], 2);
        assert_eq!(&bytes[5..13], &0x0102u64.to_le_bytes());
        assert_eq!(&bytes[13..], &crc32fast::hash(&bytes[..13]).to_le_bytes());
        assert_eq!(decode_header(&bytes, LogIndex(0x0102)), Ok(LogIndex(0x0102)));
    }

    #[test]
    fn each_header_defect_is_reported_at_its_field() {
        let good = encode_header(LogIndex(5));
        let offset_of = |bytes: &[u8; SEGMENT_HEADER_LEN], named| match decode_header(bytes, LogIndex(named)) {
            Err(HeaderError::Corrupt(offset, _)) => offset,
            other => panic!("expected a corrupt header, got {other:?}"),
        };
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

    #[test]
    fn an_intact_header_of_another_version_is_a_version_error() {
        for version in [1, 3] {
            let mut header = encode_header(LogIndex(1));
            header[4] = version;
            let crc = crc32fast::hash(&header[..13]);
            header[13..].copy_from_slice(&crc.to_le_bytes());
            assert_eq!(decode_header(&header, LogIndex(1)), Err(HeaderError::Version(version)));
        }
    }

    #[test]
    fn create_leaves_a_durable_header_under_the_final_name_only() {
        let tmp = tempfile::tempdir().unwrap();
        let (path, mut file) = create(tmp.path(), LogIndex(7)).unwrap();
        assert_eq!(path, tmp.path().join(file_name(LogIndex(7))));
        file.write_all(b"x").unwrap(); // opened for appending after the header
        let mut expected = encode_header(LogIndex(7)).to_vec();
        expected.push(b'x');
        assert_eq!(fs::read(&path).unwrap(), expected);
        let listing = list(tmp.path()).unwrap();
        assert_eq!(listing.segments, vec![(LogIndex(7), path)]);
        assert!(listing.leftovers.is_empty());
        assert!(create(tmp.path(), LogIndex(7)).is_err(), "a segment is never created twice");
    }
}
