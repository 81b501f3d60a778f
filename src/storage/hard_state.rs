//! The hard state record on disk: its byte layout, its atomic write and its checked read.
//!
//! The record is fixed-size (34 bytes), little endian, and ends in a CRC32 of everything
//! before it. docs/storage.md has the table; this file is the only code that knows it.
//!
//! ```text
//! offset size field
//!      0    4 magic b"LDHS"
//!      4    1 format version (1)
//!      5    8 current_term
//!     13    1 voted_for present (0 or 1)
//!     14    8 voted_for (0 when absent)
//!     22    8 commit_index
//!     30    4 CRC32 (IEEE) of bytes 0..30
//! ```

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::error::io_error;
use super::{StorageError, HARD_STATE_FILE};
use crate::core::{HardState, LogIndex, NodeId, Term};

/// Size in bytes of the hard state record, checksum included.
pub const HARD_STATE_LEN: usize = 34;

/// Name of the temporary file a save writes before renaming it over [`HARD_STATE_FILE`].
pub const HARD_STATE_TMP_FILE: &str = "hardstate.tmp";

/// First bytes of the file: tells a hard state record from any other file put there by mistake.
const MAGIC: &[u8; 4] = b"LDHS";
/// Bumped whenever the layout changes; an unknown version is refused, never guessed at.
pub const VERSION: u8 = 1;

// Field offsets, named once so that the encoder, the decoder and the error offsets agree.
const OFFSET_VERSION: usize = 4;
const OFFSET_TERM: usize = 5;
const OFFSET_VOTE_PRESENT: usize = 13;
const OFFSET_VOTE: usize = 14;
const OFFSET_COMMIT: usize = 22;
const OFFSET_CRC: usize = 30;

/// What is wrong with a record and where; the caller adds the file name.
#[derive(Debug, PartialEq, Eq)]
struct Defect {
    offset: u64,
    detail: String,
}

impl Defect {
    fn at(offset: usize, detail: String) -> Defect {
        Defect { offset: offset as u64, detail }
    }

    fn in_file(self, path: PathBuf) -> StorageError {
        StorageError::Corrupt { path, offset: self.offset, detail: self.detail }
    }
}

/// Lays the record out as documented in the module header.
fn encode(hard_state: &HardState) -> [u8; HARD_STATE_LEN] {
    let mut bytes = [0u8; HARD_STATE_LEN];
    bytes[..OFFSET_VERSION].copy_from_slice(MAGIC);
    bytes[OFFSET_VERSION] = VERSION;
    bytes[OFFSET_TERM..OFFSET_VOTE_PRESENT].copy_from_slice(&hard_state.current_term.0.to_le_bytes());
    let (present, vote) = match hard_state.voted_for {
        Some(NodeId(id)) => (1, id),
        None => (0, 0),
    };
    bytes[OFFSET_VOTE_PRESENT] = present;
    bytes[OFFSET_VOTE..OFFSET_COMMIT].copy_from_slice(&vote.to_le_bytes());
    bytes[OFFSET_COMMIT..OFFSET_CRC].copy_from_slice(&hard_state.commit_index.0.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..OFFSET_CRC]);
    bytes[OFFSET_CRC..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    let mut le = [0u8; 8];
    le.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(le)
}

/// Checks every field, in file order except that the checksum is verified before the fields
/// it covers are interpreted: magic and version first (so a foreign or newer file gets a
/// precise message), then the CRC, then the field values the CRC cannot vouch for (a
/// writer bug would checksum a bad flag just as happily).
fn decode(bytes: &[u8]) -> Result<HardState, Defect> {
    if bytes.len() != HARD_STATE_LEN {
        // Even an empty file is corrupt: the rename that installs a record is atomic, so a
        // crash can never leave a short file behind.
        return Err(Defect::at(0, format!("expected {HARD_STATE_LEN} bytes, found {}", bytes.len())));
    }
    if &bytes[..OFFSET_VERSION] != MAGIC {
        return Err(Defect::at(
            0,
            format!("bad magic {:02x?}, expected {:02x?} (\"LDHS\")", &bytes[..OFFSET_VERSION], MAGIC),
        ));
    }
    if bytes[OFFSET_VERSION] != VERSION {
        return Err(Defect::at(
            OFFSET_VERSION,
            format!("unknown format version {}, expected {VERSION}", bytes[OFFSET_VERSION]),
        ));
    }
    let stored_crc = u32::from_le_bytes(bytes[OFFSET_CRC..].try_into().expect("4 bytes"));
    let computed_crc = crc32fast::hash(&bytes[..OFFSET_CRC]);
    if stored_crc != computed_crc {
        return Err(Defect::at(
            OFFSET_CRC,
            format!("checksum mismatch: stored {stored_crc:#010x}, computed {computed_crc:#010x}"),
        ));
    }
    let vote = u64_at(bytes, OFFSET_VOTE);
    let voted_for = match bytes[OFFSET_VOTE_PRESENT] {
        0 if vote == 0 => None,
        0 => return Err(Defect::at(OFFSET_VOTE, format!("voted_for is {vote} but marked absent (must be 0)"))),
        1 => Some(NodeId(vote)),
        flag => {
            return Err(Defect::at(OFFSET_VOTE_PRESENT, format!("voted_for present flag is {flag}, expected 0 or 1")))
        }
    };
    Ok(HardState {
        current_term: Term(u64_at(bytes, OFFSET_TERM)),
        voted_for,
        commit_index: LogIndex(u64_at(bytes, OFFSET_COMMIT)),
    })
}

/// Encodes `hard_state` and checks the bytes by decoding them back ("pair assertions around
/// disk", DESIGN.md style rule 5): a record that would not read back identically must never
/// reach the disk, because we would only find out at the next start.
fn encode_checked(hard_state: &HardState) -> [u8; HARD_STATE_LEN] {
    let bytes = encode(hard_state);
    assert_eq!(decode(&bytes), Ok(*hard_state), "hard state record does not round-trip");
    bytes
}

/// Makes the directory's entries (a rename, a new file) durable.
///
/// fsync of a file does not persist the directory entry that names it; without this, a
/// crash right after the rename could bring back the old record after we already promised
/// the new one (a vote, thesis §3.8).
pub(super) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    // Only POSIX systems let us open and fsync a directory; this crate targets them.
    #[cfg(unix)]
    {
        let handle = File::open(dir).map_err(io_error(dir, "open directory"))?;
        handle.sync_all().map_err(io_error(dir, "fsync directory"))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Durably replaces `<dir>/hardstate` with `hard_state`: write a temporary file, fsync it,
/// rename it over the old one, fsync the directory. A crash at any point leaves either the
/// complete old record or the complete new one, because rename(2) is atomic.
pub(super) fn write(dir: &Path, hard_state: &HardState) -> Result<(), StorageError> {
    let bytes = encode_checked(hard_state);
    replace_durably(dir, HARD_STATE_TMP_FILE, HARD_STATE_FILE, &[&bytes])
}

/// Durably replaces (or creates) `<dir>/<name>` with the concatenation of `parts`: write
/// `<dir>/<tmp_name>`, fsync it, rename it to `name`, fsync the directory. Afterwards `name`
/// holds the complete new content even after a crash; a crash before that leaves whatever
/// `name` held before (or nothing) plus, at worst, a stray `tmp_name`. Shared by every file
/// that is replaced whole (the hard state, snapshots), so the protocol exists once.
pub(super) fn replace_durably(dir: &Path, tmp_name: &str, name: &str, parts: &[&[u8]]) -> Result<(), StorageError> {
    let tmp_path = dir.join(tmp_name);
    let path = dir.join(name);

    // `create` truncates: a temp file left by an earlier failed save is simply overwritten.
    let mut tmp = File::create(&tmp_path).map_err(io_error(&tmp_path, "create"))?;
    for part in parts {
        tmp.write_all(part).map_err(io_error(&tmp_path, "write"))?;
    }
    // The data must be on disk before the rename makes it visible under the real name;
    // otherwise a crash could leave `name` pointing at an empty or partial file.
    tmp.sync_all().map_err(io_error(&tmp_path, "fsync"))?;
    drop(tmp);
    fs::rename(&tmp_path, &path).map_err(io_error(&path, "rename"))?;
    sync_dir(dir)
}

/// Removes a `hardstate.tmp` left by a save that crashed before its rename. Its content was
/// never promised to anyone (a save returns only after the rename and the directory fsync),
/// so dropping it is always safe. Returns whether there was one.
pub(super) fn remove_leftover_tmp(dir: &Path) -> Result<bool, StorageError> {
    let tmp_path = dir.join(HARD_STATE_TMP_FILE);
    match fs::remove_file(&tmp_path) {
        Ok(()) => {
            log::info!("removed {} left by an unfinished hard state write", tmp_path.display());
            Ok(true)
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(io_error(tmp_path, "remove")(err)),
    }
}

/// Reads and checks the hard state of a data directory, without taking its lock.
///
/// For tools and tests that inspect the directory of a stopped server (a running server may
/// replace the record at any moment; the rename guarantees that a reader still sees one
/// whole record, old or new). Returns `Ok(None)` if no hard state was ever written, and
/// [`StorageError::Corrupt`] naming the file and byte offset if the record is damaged.
pub fn read_hard_state(dir: impl AsRef<Path>) -> Result<Option<HardState>, StorageError> {
    let path = dir.as_ref().join(HARD_STATE_FILE);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io_error(path, "open")(err)),
    };
    // Read at most one byte more than a record: enough to tell "too long", without
    // allocating whatever a damaged or foreign file happens to hold.
    let mut bytes = Vec::with_capacity(HARD_STATE_LEN + 1);
    file.take(HARD_STATE_LEN as u64 + 1).read_to_end(&mut bytes).map_err(io_error(&path, "read"))?;
    if bytes.len() > HARD_STATE_LEN {
        let actual = fs::metadata(&path).map_err(io_error(&path, "stat"))?.len();
        return Err(Defect::at(0, format!("expected {HARD_STATE_LEN} bytes, found {actual}")).in_file(path));
    }
    decode(&bytes).map(Some).map_err(|defect| defect.in_file(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HardState {
        HardState { current_term: Term(0x0102_0304_0506_0708), voted_for: Some(NodeId(3)), commit_index: LogIndex(42) }
    }

    #[test]
    fn layout_matches_the_documented_table() {
        let bytes = encode(&sample());
        assert_eq!(&bytes[0..4], b"LDHS");
        assert_eq!(bytes[4], 1);
        assert_eq!(&bytes[5..13], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(bytes[13], 1);
        assert_eq!(&bytes[14..22], &3u64.to_le_bytes());
        assert_eq!(&bytes[22..30], &42u64.to_le_bytes());
        assert_eq!(&bytes[30..34], &crc32fast::hash(&bytes[..30]).to_le_bytes());

        let absent = encode(&HardState::default());
        assert_eq!(absent[13], 0);
        assert_eq!(&absent[14..22], &[0; 8]);
    }

    #[test]
    fn the_example_in_docs_storage_md_is_exact() {
        let example = HardState { current_term: Term(3), voted_for: Some(NodeId(1)), commit_index: LogIndex(2) };
        let expected: [u8; HARD_STATE_LEN] = [
            0x4c, 0x44, 0x48, 0x53, 1, 3, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0x9b,
            0xc9, 0x67, 0x66,
        ];
        assert_eq!(encode(&example), expected);
    }

    #[test]
    fn decode_inverts_encode() {
        for hard_state in [
            HardState::default(),
            sample(),
            HardState { current_term: Term(u64::MAX), voted_for: Some(NodeId(0)), commit_index: LogIndex(u64::MAX) },
        ] {
            assert_eq!(decode(&encode(&hard_state)), Ok(hard_state));
        }
    }

    /// Rewrites bytes at `offset` and fixes the checksum, so that the field checks behind
    /// the CRC check are reached (a writer bug, not a disk error, would look like this).
    fn with_valid_crc(mut bytes: [u8; HARD_STATE_LEN], offset: usize, patch: &[u8]) -> [u8; HARD_STATE_LEN] {
        bytes[offset..offset + patch.len()].copy_from_slice(patch);
        let crc = crc32fast::hash(&bytes[..OFFSET_CRC]);
        bytes[OFFSET_CRC..].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    #[test]
    fn each_defect_is_reported_at_its_field() {
        let good = encode(&sample());
        let offset_of = |bytes: &[u8]| decode(bytes).unwrap_err().offset;

        assert_eq!(offset_of(&good[..33]), 0);
        assert_eq!(offset_of(&with_valid_crc(good, 0, b"XDHS")), 0);
        let newer = with_valid_crc(good, OFFSET_VERSION, &[2]);
        assert_eq!(offset_of(&newer), 4);
        assert!(decode(&newer).unwrap_err().detail.contains("version 2"));
        assert_eq!(offset_of(&with_valid_crc(good, OFFSET_VOTE_PRESENT, &[2])), 13);
        let absent_but_set = with_valid_crc(encode(&HardState::default()), OFFSET_VOTE, &[9]);
        assert_eq!(offset_of(&absent_but_set), 14);
        let mut bad_crc = good;
        bad_crc[OFFSET_CRC] ^= 1;
        let defect = decode(&bad_crc).unwrap_err();
        assert_eq!(defect.offset, 30);
        assert!(defect.detail.starts_with("checksum mismatch"), "{}", defect.detail);
    }

    #[test]
    fn the_checked_encoder_writes_the_plain_encoding() {
        assert_eq!(encode_checked(&sample()), encode(&sample()));
    }
}
