//! Snapshot files (Raft §7): the state machine's state up to a log index, with the index and
//! term of the last entry it covers and the cluster configuration at that point, so that the
//! log up to that index can be discarded. docs/storage.md ("Snapshots") has the table; this
//! file is the only code that knows it.
//!
//! ```text
//! offset   size field
//!      0      4 magic b"LDSN"
//!      4      1 format version (1)
//!      5      8 last_index   (last log index the snapshot covers, >= 1)
//!     13      8 last_term    (its term, >= 1)
//!     21      4 config_len   (n, at most SNAPSHOT_CONFIG_BYTES_MAX)
//!     25      8 data_len     (m)
//!     33      n config       (opaque: the caller's encoding of the configuration)
//!   33+n      m data         (opaque: StateMachine::snapshot)
//! 33+n+m      4 CRC32 (IEEE) of bytes 0..33+n+m
//! ```
//!
//! A directory holds `snapshot-<last_index, 20 digits>-<last_term, 20 digits>.snap` files;
//! normally exactly one, briefly two while a save cleans up, plus `<name>.tmp` while a save
//! writes (or after a crash in the middle of one).

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::error::io_error;
use super::hard_state::sync_dir;
use super::{StorageError, SNAPSHOT_DIR};
use crate::core::{LogIndex, Term};

/// Size in bytes of a snapshot file's header (everything before the configuration).
pub const SNAPSHOT_HEADER_LEN: usize = 33;

/// Largest configuration a snapshot file holds (bytes). A configuration is a list of
/// servers, a few bytes each; the bound keeps a damaged length from passing as plausible.
pub const SNAPSHOT_CONFIG_BYTES_MAX: usize = 1 << 20;

const MAGIC: &[u8; 4] = b"LDSN";
/// Bumped whenever the layout changes; an unknown version is refused, never guessed at.
pub const VERSION: u8 = 1;
const CRC_LEN: usize = 4;
const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".snap";
const TMP_SUFFIX: &str = ".snap.tmp";
/// File name of a snapshot being received from a leader ([`incoming_snapshot_path`]).
const INCOMING_FILE: &str = "incoming.part";
/// Read size when a file is validated without keeping its data.
const VERIFY_CHUNK_BYTES: usize = 1 << 20;

// Field offsets, named once so that the encoder, the decoder and the error offsets agree.
const OFFSET_VERSION: usize = 4;
pub(super) const OFFSET_INDEX: usize = 5;
const OFFSET_TERM: usize = 13;
const OFFSET_CONFIG_LEN: usize = 21;
const OFFSET_DATA_LEN: usize = 25;

/// What a snapshot stands for: the log prefix it replaces and the configuration in force at
/// its end (§7: a server restarting from a snapshot must know both, to answer AppendEntries
/// consistency checks for `last_index` and to know its peers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// The last log index the snapshot includes.
    pub last_index: LogIndex,
    /// The term of that entry.
    pub last_term: Term,
    /// The cluster configuration as of `last_index`, in the caller's own encoding (opaque
    /// here, so that the storage format does not change when the configuration type does).
    pub config: Vec<u8>,
}

/// A snapshot read back from disk: its metadata and the state machine's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Index, term and configuration.
    pub meta: SnapshotMeta,
    /// What [`StateMachine::snapshot`](crate::kv::StateMachine::snapshot) returned.
    pub data: Vec<u8>,
}

/// The file name of the snapshot ending at (`last_index`, `last_term`). Twenty digits hold any
/// `u64`, so names sort in log order.
pub fn snapshot_file_name(last_index: LogIndex, last_term: Term) -> String {
    format!("{PREFIX}{:020}-{:020}{SUFFIX}", last_index.0, last_term.0)
}

/// What a directory entry's name says it is.
#[derive(Debug, PartialEq, Eq)]
enum Name {
    Snapshot(LogIndex, Term),
    Tmp,
    Incoming,
    Other,
}

fn parse_name(name: &str) -> Name {
    if name == INCOMING_FILE {
        return Name::Incoming;
    }
    let numbers = |rest: &str| -> Option<(LogIndex, Term)> {
        let (index, term) = rest.split_once('-')?;
        let digits = |s: &str| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(index) || !digits(term) {
            return None;
        }
        Some((LogIndex(index.parse().ok()?), Term(term.parse().ok()?)))
    };
    let Some(rest) = name.strip_prefix(PREFIX) else { return Name::Other };
    if let Some(rest) = rest.strip_suffix(TMP_SUFFIX) {
        return numbers(rest).map_or(Name::Other, |_| Name::Tmp);
    }
    match rest.strip_suffix(SUFFIX).and_then(numbers) {
        Some((index, term)) => Name::Snapshot(index, term),
        None => Name::Other,
    }
}

pub(super) fn corrupt(path: &Path, offset: usize, detail: String) -> StorageError {
    StorageError::Corrupt { path: path.to_path_buf(), offset: offset as u64, detail }
}

/// A defect found in an image: the byte offset of the field found wrong, and what is wrong.
/// The caller names the file (or the image).
type Defect = (usize, String);

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().expect("8 bytes"))
}

/// The header and the CRC of the image of (`meta`, `data`): everything of a snapshot file but
/// the configuration and the data themselves, which the caller writes in between. The one
/// encoder of the format: [`SnapshotStore::save`](super::SnapshotStore::save), [`encode_snapshot_image`] and
/// [`write_snapshot_tmp`] all use it, so the file a server saves and the image a leader
/// streams are the same bytes.
///
/// # Panics
///
/// On a caller bug recovery would refuse: `last_index` or `last_term` 0, or a configuration
/// over [`SNAPSHOT_CONFIG_BYTES_MAX`].
pub(super) fn encode_parts(meta: &SnapshotMeta, data: &[u8]) -> ([u8; SNAPSHOT_HEADER_LEN], [u8; CRC_LEN]) {
    assert!(meta.last_index.0 >= 1 && meta.last_term.0 >= 1, "a snapshot covers at least one entry: {meta:?}");
    assert!(meta.config.len() <= SNAPSHOT_CONFIG_BYTES_MAX, "configuration of {} bytes", meta.config.len());
    let header = encode_header(meta, data.len() as u64);
    // Pair the encoder with the decoder before any byte reaches the disk or the network.
    let image_len = (SNAPSHOT_HEADER_LEN + meta.config.len() + data.len() + CRC_LEN) as u64;
    let decoded = decode_header(&header, image_len).expect("a snapshot header we encode decodes");
    assert_eq!(decoded, (meta.last_index.0, meta.last_term.0, meta.config.len(), data.len()));
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header);
    hasher.update(&meta.config);
    hasher.update(data);
    (header, hasher.finalize().to_le_bytes())
}

fn encode_header(meta: &SnapshotMeta, data_len: u64) -> [u8; SNAPSHOT_HEADER_LEN] {
    let mut header = [0u8; SNAPSHOT_HEADER_LEN];
    header[..OFFSET_VERSION].copy_from_slice(MAGIC);
    header[OFFSET_VERSION] = VERSION;
    header[OFFSET_INDEX..OFFSET_TERM].copy_from_slice(&meta.last_index.0.to_le_bytes());
    header[OFFSET_TERM..OFFSET_CONFIG_LEN].copy_from_slice(&meta.last_term.0.to_le_bytes());
    let config_len = u32::try_from(meta.config.len()).expect("config length checked by the caller");
    header[OFFSET_CONFIG_LEN..OFFSET_DATA_LEN].copy_from_slice(&config_len.to_le_bytes());
    header[OFFSET_DATA_LEN..].copy_from_slice(&data_len.to_le_bytes());
    header
}

/// The header's fields once magic, version and lengths are checked against `total_len` (the
/// file's or the image's size): (last_index, last_term, config_len, data_len). The lengths are
/// checked before the CRC because they decide how much is allocated, and the CRC can only be
/// checked after reading.
fn decode_header(header: &[u8; SNAPSHOT_HEADER_LEN], total_len: u64) -> Result<(u64, u64, usize, usize), Defect> {
    if &header[..OFFSET_VERSION] != MAGIC {
        let found = &header[..OFFSET_VERSION];
        return Err((0, format!("bad magic {found:02x?}, expected {MAGIC:02x?} (\"LDSN\")")));
    }
    if header[OFFSET_VERSION] != VERSION {
        let found = header[OFFSET_VERSION];
        return Err((OFFSET_VERSION, format!("unknown snapshot format version {found}, expected {VERSION}")));
    }
    let config_len = u32::from_le_bytes(header[OFFSET_CONFIG_LEN..OFFSET_DATA_LEN].try_into().expect("4 bytes"));
    if config_len as usize > SNAPSHOT_CONFIG_BYTES_MAX {
        return Err((
            OFFSET_CONFIG_LEN,
            format!("configuration length {config_len} exceeds {SNAPSHOT_CONFIG_BYTES_MAX}"),
        ));
    }
    let data_len = u64_at(header, OFFSET_DATA_LEN);
    let expected = (SNAPSHOT_HEADER_LEN + CRC_LEN + config_len as usize) as u64;
    let fits = expected.checked_add(data_len) == Some(total_len);
    let data_len = usize::try_from(data_len).ok().filter(|_| fits).ok_or_else(|| {
        let detail = format!(
            "the lengths (configuration {config_len}, data {data_len}) do not add up to the file's {total_len} bytes"
        );
        (OFFSET_DATA_LEN, detail)
    })?;
    Ok((u64_at(header, OFFSET_INDEX), u64_at(header, OFFSET_TERM), config_len as usize, data_len))
}

/// The checks after the body is read: the CRC (stored, computed over everything before it),
/// then the values it cannot vouch for (a writer bug checksums them happily): every log entry
/// has index >= 1 and term >= 1, so a snapshot covers at least one.
fn check_body(index: u64, term: u64, crc_at: usize, stored: u32, computed: u32) -> Result<(), Defect> {
    if stored != computed {
        return Err((crc_at, format!("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")));
    }
    if index == 0 {
        return Err((OFFSET_INDEX, "last_index is 0: a snapshot covers at least one entry".to_string()));
    }
    if term == 0 {
        return Err((OFFSET_TERM, "last_term is 0: no entry has term 0".to_string()));
    }
    Ok(())
}

/// The complete image (the exact bytes of the snapshot file [`SnapshotStore::save`](super::SnapshotStore::save) writes)
/// of the snapshot (`meta`, `data`): what a leader streams to a follower in chunks (§7,
/// InstallSnapshot).
///
/// # Panics
///
/// As [`SnapshotStore::save`](super::SnapshotStore::save): `last_index` or `last_term` 0, or a configuration over
/// [`SNAPSHOT_CONFIG_BYTES_MAX`].
pub fn encode_snapshot_image(meta: &SnapshotMeta, data: &[u8]) -> Vec<u8> {
    let (header, crc) = encode_parts(meta, data);
    let mut image = Vec::with_capacity(SNAPSHOT_HEADER_LEN + meta.config.len() + data.len() + CRC_LEN);
    for part in [&header[..], &meta.config, data, &crc] {
        image.extend_from_slice(part);
    }
    image
}

/// Checks an image completely (every check of the file's, in the same order: magic,
/// version, lengths against the image's size, CRC, index and term not 0) and returns the
/// snapshot. Never panics, whatever the bytes: they come from the network. The error says
/// the byte offset and the field found wrong.
pub fn decode_snapshot_image(bytes: &[u8]) -> Result<Snapshot, String> {
    decode_image(bytes).map_err(|(offset, detail)| format!("snapshot image at byte {offset}: {detail}"))
}

/// [`decode_snapshot_image`] with the offset kept apart, for errors that name a file.
pub(super) fn decode_image(bytes: &[u8]) -> Result<Snapshot, Defect> {
    let min_len = SNAPSHOT_HEADER_LEN + CRC_LEN;
    if bytes.len() < min_len {
        return Err((0, format!("expected at least {min_len} bytes, found {}", bytes.len())));
    }
    let header: &[u8; SNAPSHOT_HEADER_LEN] = bytes[..SNAPSHOT_HEADER_LEN].try_into().expect("checked length");
    let (index, term, config_len, data_len) = decode_header(header, bytes.len() as u64)?;
    // decode_header checked that the parts add up to exactly bytes.len().
    let config_end = SNAPSHOT_HEADER_LEN + config_len;
    let crc_at = config_end + data_len;
    let stored = u32::from_le_bytes(bytes[crc_at..].try_into().expect("4 bytes left"));
    check_body(index, term, crc_at, stored, crc32fast::hash(&bytes[..crc_at]))?;
    let meta = SnapshotMeta {
        last_index: LogIndex(index),
        last_term: Term(term),
        config: bytes[SNAPSHOT_HEADER_LEN..config_end].to_vec(),
    };
    Ok(Snapshot { meta, data: bytes[config_end..crc_at].to_vec() })
}

/// Writes the image of (`meta`, `data`) to `<dir>/<snapshot_file_name>.tmp` and fdatasyncs
/// it, without renaming it: the slow part of saving a snapshot, for a background thread, so
/// that the big fsync blocks neither the event loop nor the WAL writer. `dir` is the data
/// directory's `snap/` ([`snapshot_dir`]). The returned file is then installed with
/// [`Storage::install_snapshot`](super::Storage::install_snapshot) and
/// `SnapshotSource::File { synced: true }`, which only renames it and fsyncs the directory.
///
/// A crash before that install leaves a `.snap.tmp` that the next open removes: nothing
/// depended on it.
///
/// # Panics
///
/// As [`SnapshotStore::save`](super::SnapshotStore::save): `last_index` or `last_term` 0, or a configuration over
/// [`SNAPSHOT_CONFIG_BYTES_MAX`].
pub fn write_snapshot_tmp(dir: &Path, meta: &SnapshotMeta, data: &[u8]) -> Result<PathBuf, StorageError> {
    let (header, crc) = encode_parts(meta, data);
    let path = dir.join(format!("{}.tmp", snapshot_file_name(meta.last_index, meta.last_term)));
    let mut file = File::create(&path).map_err(io_error(&path, "create"))?;
    for part in [&header[..], &meta.config, data, &crc] {
        file.write_all(part).map_err(io_error(&path, "write"))?;
    }
    file.sync_data().map_err(io_error(&path, "fdatasync"))?;
    Ok(path)
}

/// The snapshot directory of a data directory: `<data_dir>/snap/`.
pub fn snapshot_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(SNAPSHOT_DIR)
}

/// Where the runtime writes the chunks of a snapshot a leader sends (§7, InstallSnapshot):
/// `<snap_dir>/incoming.part`. Written without fsync; the install
/// (`SnapshotSource::File { synced: false }`) fsyncs and checks it completely before it
/// renames it into place. Removed at open (a transfer cut short by a crash is restarted).
pub fn incoming_snapshot_path(snap_dir: &Path) -> PathBuf {
    snap_dir.join(INCOMING_FILE)
}

/// Reads and checks one snapshot file, without the data directory's lock: for the store's
/// open and for tools and tests that inspect a stopped server. Every defect is
/// [`StorageError::Corrupt`] naming the file and the byte offset of the field found wrong.
/// Allocates no more than the file's own size.
pub fn read_snapshot(path: impl AsRef<Path>) -> Result<Snapshot, StorageError> {
    let path = path.as_ref();
    let (meta, data) = read_checked(path, true)?;
    Ok(Snapshot { meta, data: data.expect("kept") })
}

/// Reads and checks the snapshot file at `path` completely; keeps the state machine's data
/// only when `keep_data` (a validation before an install streams it through the CRC instead:
/// a snapshot can be far larger than memory should hold twice).
pub(super) fn read_checked(path: &Path, keep_data: bool) -> Result<(SnapshotMeta, Option<Vec<u8>>), StorageError> {
    let mut file = File::open(path).map_err(io_error(path, "open"))?;
    let file_len = file.metadata().map_err(io_error(path, "stat"))?.len();
    let min_len = (SNAPSHOT_HEADER_LEN + CRC_LEN) as u64;
    if file_len < min_len {
        // Even an empty file is corrupt: the rename that installs a snapshot is atomic.
        return Err(corrupt(path, 0, format!("expected at least {min_len} bytes, found {file_len}")));
    }
    let mut header = [0u8; SNAPSHOT_HEADER_LEN];
    file.read_exact(&mut header).map_err(io_error(path, "read"))?;
    let in_file = |(offset, detail): Defect| corrupt(path, offset, detail);
    let (index, term, config_len, data_len) = decode_header(&header, file_len).map_err(in_file)?;

    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header);
    let mut config = vec![0u8; config_len];
    file.read_exact(&mut config).map_err(io_error(path, "read"))?;
    hasher.update(&config);
    let data = if keep_data {
        let mut data = vec![0u8; data_len];
        file.read_exact(&mut data).map_err(io_error(path, "read"))?;
        hasher.update(&data);
        Some(data)
    } else {
        let mut left = data_len;
        let mut chunk = vec![0u8; data_len.min(VERIFY_CHUNK_BYTES)];
        while left > 0 {
            let n = left.min(chunk.len());
            file.read_exact(&mut chunk[..n]).map_err(io_error(path, "read"))?;
            hasher.update(&chunk[..n]);
            left -= n;
        }
        None
    };
    let mut stored = [0u8; CRC_LEN];
    file.read_exact(&mut stored).map_err(io_error(path, "read"))?;
    // The length was checked against the size at open; a file still growing is not ours.
    if file.read(&mut [0u8; 1]).map_err(io_error(path, "read"))? != 0 {
        return Err(corrupt(path, 0, "the file grew while it was read".to_string()));
    }
    let crc_at = SNAPSHOT_HEADER_LEN + config_len + data_len;
    check_body(index, term, crc_at, u32::from_le_bytes(stored), hasher.finalize()).map_err(in_file)?;
    Ok((SnapshotMeta { last_index: LogIndex(index), last_term: Term(term), config }, data))
}

/// Reads and checks only the header of the snapshot file at `path` (magic, version, lengths
/// against the file's size): the cheap check of a file someone else already validated.
pub(super) fn read_header(path: &Path) -> Result<(LogIndex, Term), StorageError> {
    let mut file = File::open(path).map_err(io_error(path, "open"))?;
    let file_len = file.metadata().map_err(io_error(path, "stat"))?.len();
    let mut header = [0u8; SNAPSHOT_HEADER_LEN];
    if file_len < (SNAPSHOT_HEADER_LEN + CRC_LEN) as u64 {
        return Err(corrupt(
            path,
            0,
            format!("expected at least {} bytes, found {file_len}", SNAPSHOT_HEADER_LEN + CRC_LEN),
        ));
    }
    file.read_exact(&mut header).map_err(io_error(path, "read"))?;
    let (index, term, _, _) =
        decode_header(&header, file_len).map_err(|(offset, detail)| corrupt(path, offset, detail))?;
    Ok((LogIndex(index), Term(term)))
}

/// Reads a snapshot and checks that its header agrees with its file name (a renamed or
/// copied file must not pass for the snapshot its name promises).
pub(super) fn read_named(path: &Path, index: LogIndex, term: Term) -> Result<Snapshot, StorageError> {
    let snapshot = read_snapshot(path)?;
    let (found_index, found_term) = (snapshot.meta.last_index, snapshot.meta.last_term);
    if (found_index, found_term) != (index, term) {
        let detail = format!(
            "the header says index {found_index} term {found_term}, the file name says index {index} term {term}"
        );
        return Err(corrupt(path, OFFSET_INDEX, detail));
    }
    Ok(snapshot)
}

/// The snapshot files of a directory, oldest first. At open (`at_open`), leftover temp files
/// and an incoming transfer are removed first; at any other time they are left alone, because a
/// background snapshot thread or the receiver of a transfer may be writing them right now.
pub(super) fn list(dir: &Path, at_open: bool) -> Result<Vec<(LogIndex, Term, PathBuf)>, StorageError> {
    let mut found = Vec::new();
    let mut removed = false;
    for entry in fs::read_dir(dir).map_err(io_error(dir, "list directory"))? {
        let entry = entry.map_err(io_error(dir, "list directory"))?;
        let path = entry.path();
        match parse_name(&entry.file_name().to_string_lossy()) {
            Name::Snapshot(index, term) => found.push((index, term, path)),
            Name::Tmp | Name::Incoming if !at_open => {}
            Name::Tmp => {
                // A save (or a background write) that crashed before its rename; it never
                // returned, or was never installed, so nothing depended on it.
                fs::remove_file(&path).map_err(io_error(&path, "remove"))?;
                log::info!("removed {} left by an unfinished snapshot save", path.display());
                removed = true;
            }
            Name::Incoming => {
                // A transfer from a leader cut short by the restart; the leader sends it again.
                fs::remove_file(&path).map_err(io_error(&path, "remove"))?;
                log::info!("removed {}: a snapshot transfer interrupted by the restart", path.display());
                removed = true;
            }
            Name::Other => log::warn!("ignoring {}: not a snapshot file", path.display()),
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    found.sort();
    Ok(found)
}

/// A snapshot to install that [`SnapshotStore::check_source`] found intact.
#[derive(Debug)]
pub(super) enum Checked {
    /// A whole image, to be written like a save.
    Image(Vec<u8>),
    /// A file in the snapshot directory, to be renamed into place.
    File(PathBuf),
}

/// Whether the snapshot found in an image or file is the one an install asks for: a leader's
/// InstallSnapshot names index, term and configuration, and the bytes must agree with all
/// three, or the server would report one snapshot and hold another.
pub(super) fn same_meta(asked: &SnapshotMeta, found: &SnapshotMeta) -> Result<(), String> {
    if asked == found {
        return Ok(());
    }
    Err(format!(
        "the snapshot holds index {} term {} ({} configuration bytes), the install asks for index {} term {} ({} bytes){}",
        found.last_index,
        found.last_term,
        found.config.len(),
        asked.last_index,
        asked.last_term,
        asked.config.len(),
        if (found.last_index, found.last_term) == (asked.last_index, asked.last_term) {
            ": the configurations differ"
        } else {
            ""
        }
    ))
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
