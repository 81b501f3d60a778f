//! Durable storage: the hard state and the write-ahead log.
//!
//! Raft's safety rests on state surviving a crash: `current_term`, `voted_for` and the log
//! (Raft Figure 2, "Persistent state on all servers"), so that a restarted server can never
//! vote twice in one term nor forget an entry it acknowledged. A server must not answer an
//! RPC before the state its answer promises is on stable storage (thesis §3.8); hence
//! [`Storage::save_hard_state`] returns only after an fsync, and the runtime calls
//! [`Storage::sync`] after appending and before acknowledging.
//!
//! Two implementations share the [`Storage`] contract: [`DiskStorage`], a locked data
//! directory, and [`MemStorage`], an in-memory twin for tests and the simulator that also
//! models what a crash loses. The on-disk format is specified in docs/storage.md.
//!
//! Data directory layout:
//!
//! ```text
//! <dir>/LOCK           exclusive lock: one server process per directory
//! <dir>/hardstate      the 34-byte hard state record
//! <dir>/hardstate.tmp  only during a save (or after a crash in the middle of one)
//! <dir>/wal/<first index, 20 digits>.seg   log segments (wal.rs, segment.rs, scan.rs, record.rs)
//! <dir>/snap/snapshot-<index, 20 digits>-<term, 20 digits>.snap   snapshots (snapshot.rs, §7)
//! <dir>/snap/<snapshot name>.tmp   a snapshot being written (save, write_snapshot_tmp)
//! <dir>/snap/incoming.part         a snapshot being received from a leader
//! ```
//!
//! With a snapshot ending at index S, the log is the entries S+1.. (Raft §7): segments whose
//! entries the snapshot covers are deleted by [`Storage::compact`], and an install that finds
//! the log not continuing the snapshot discards it (install.rs has the shared rules).

mod error;
mod hard_state;
mod install;
mod mem;
mod record;
mod scan;
mod segment;
mod snapshot;
mod snapshot_store;
mod wal;

#[cfg(test)]
mod snapshot_file_tests;
#[cfg(test)]
mod snapshot_storage_tests;
#[cfg(test)]
mod wal_crash_tests;
#[cfg(test)]
mod wal_prop_tests;
#[cfg(test)]
mod wal_tests;

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use crate::core::{Entry, HardState, LogIndex, Term};

pub use error::StorageError;
/// Format version of the hard-state file (docs/storage.md).
pub use hard_state::VERSION as HARD_STATE_FORMAT_VERSION;
pub use hard_state::{read_hard_state, HARD_STATE_LEN, HARD_STATE_TMP_FILE};
pub use install::SnapshotSource;
pub use mem::MemStorage;
pub use record::{ENTRY_DATA_BYTES_MAX, RECORD_BYTES_MAX};
pub use segment::SEGMENT_HEADER_LEN;
/// Format version of WAL segment files (docs/storage.md).
pub use segment::VERSION as WAL_FORMAT_VERSION;
/// Format version of snapshot files (docs/storage.md, "Snapshots").
pub use snapshot::VERSION as SNAPSHOT_FORMAT_VERSION;
pub use snapshot::{
    decode_snapshot_image, encode_snapshot_image, incoming_snapshot_path, read_snapshot, snapshot_dir,
    snapshot_file_name, write_snapshot_tmp, Snapshot, SnapshotMeta, SNAPSHOT_CONFIG_BYTES_MAX, SNAPSHOT_HEADER_LEN,
};
pub use snapshot_store::SnapshotStore;
pub use wal::{WalOptions, SEGMENT_BYTES_MAX_DEFAULT};

use error::io_error;
use wal::Wal;

/// Name of the hard state file inside a data directory.
pub const HARD_STATE_FILE: &str = "hardstate";

/// Name of the lock file inside a data directory. Its content is irrelevant; the lock is an
/// exclusive `flock` on it, which the OS releases when the process exits, even on a crash,
/// so a stale file never blocks a restart.
pub const LOCK_FILE: &str = "LOCK";

/// Name of the write-ahead log's directory inside a data directory.
pub const WAL_DIR: &str = "wal";

/// Name of the snapshot directory inside a data directory (a [`SnapshotStore`], opened by
/// [`DiskStorage`]).
pub const SNAPSHOT_DIR: &str = "snap";

/// The contract the node runtime uses to persist state: the hard state and the log.
///
/// Every write is fail-stop: after any failed write or sync, every later write returns an
/// error too, and the runtime stops the server. A failed fsync must never be retried: the
/// kernel may already have dropped the dirty pages, and a second fsync can then report
/// success for data that never reached the disk.
pub trait Storage {
    /// The hard state as last saved ([`HardState::default`] if never saved).
    fn hard_state(&self) -> HardState;

    /// Durably replaces the hard state. Returns only after it is on stable storage, because
    /// the runtime sends the votes and acknowledgements this state promises right after
    /// (thesis §3.8).
    ///
    /// An error is fatal for the server: fail-stop, never retry (a retried fsync can report
    /// success for data the kernel already dropped). The runtime calls this only when the
    /// state changed, so implementations always write.
    ///
    /// # Panics
    ///
    /// If the new state breaks Figure 2's rules against the last saved one: `current_term`
    /// going backwards, or a different vote in the same term. Those are core bugs, and
    /// persisting them would make a double vote survive a restart.
    fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), StorageError>;

    /// The log recovered at open: the entries after the latest snapshot, `S+1..=last` (S is
    /// the snapshot's `last_index`, 0 without one), contiguous from S+1, possibly empty.
    /// Called once by the runtime at start, before any append or truncation; it may move the
    /// entries out, so later calls may return an empty vector.
    fn take_entries(&mut self) -> Vec<Entry>;

    /// Removes every entry with index >= `from`: a follower's conflict truncation (§5.3,
    /// AppendEntries receiver step 3). `from` at or beyond `last_index + 1` removes nothing;
    /// without a snapshot, `from` 0 or 1 removes everything. Durable no later than the next
    /// [`Storage::sync`] returns.
    ///
    /// # Panics
    ///
    /// With a snapshot ending at S, if `from <= S`: the snapshot holds only committed
    /// entries, which never conflict (§5.4); truncating into it is a core bug.
    fn truncate_from(&mut self, from: LogIndex) -> Result<(), StorageError>;

    /// Appends `entries` after the last entry. Buffered: durable only after
    /// [`Storage::sync`] returns.
    ///
    /// # Panics
    ///
    /// If the entries do not continue the log: `entries[0].index` must be
    /// `last_index + 1`, indexes contiguous, terms never decreasing (§5.3, Log Matching).
    /// That is a caller bug, and writing it would leave a log that cannot be recovered.
    /// Also if an entry's data exceeds [`ENTRY_DATA_BYTES_MAX`] (the layers above bound it).
    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError>;

    /// Makes every append and truncation so far durable (group commit: one fdatasync for
    /// everything appended since the last sync). The runtime acknowledges entries only after
    /// this returns (thesis §3.8), and a leader counts itself towards commit only after it
    /// (thesis §10.2.1).
    ///
    /// A failure is fatal: this and every later write returns an error (fail-stop).
    fn sync(&mut self) -> Result<(), StorageError>;

    /// Index of the last entry appended, durable or not; with a snapshot ending at S and no
    /// entry after it, S (0 for an empty log without a snapshot).
    fn last_index(&self) -> LogIndex;

    // Snapshots and compaction (§7). No defaults: a wrapper that forwarded `take_entries` but
    // not `snapshot_meta` would hand the runtime a log starting at S+1 with no snapshot before
    // it, and a silent `compact` would let the runtime believe a log is bounded that is not.

    /// Index, term and configuration of the latest durable snapshot (None when there is
    /// none).
    fn snapshot_meta(&self) -> Option<SnapshotMeta>;

    /// The snapshot read at open (metadata and state machine bytes), moved out: the runtime
    /// restores it once at start, before it takes the entries that follow it. None once
    /// taken, after an install, or if there is none.
    fn take_snapshot(&mut self) -> Option<Snapshot>;

    /// Makes `meta`'s snapshot the latest durable one (§7), from `source`.
    ///
    /// The steps, in this order (crash safety rests on it): check the source when needed (an
    /// image, or a file not yet synced: fsync it, then decode it completely; its index, term
    /// and configuration must equal `meta`'s); put it in place (rename) and fsync the
    /// directory: the snapshot is now durable; remove older snapshot files (and fsync the
    /// directory). Then, when `retain_log` is false (§7: the log does not hold an entry at
    /// `meta.last_index` with `meta.last_term`), discard the whole log durably: afterwards
    /// the log is empty, [`Storage::last_index`] is `meta.last_index`, and the next append
    /// must start at `meta.last_index + 1` with a term of at least `meta.last_term`. When
    /// `retain_log` is true, the log is untouched. The snapshot is durable before any log
    /// segment is deleted, so a crash in between leaves the new snapshot next to the old log,
    /// and recovery applies §7 to it (docs/storage.md, "Recovery with a snapshot").
    ///
    /// A snapshot not newer than the latest never replaces it: the same index and term is a
    /// no-op, an older one is ignored with a warning (the log untouched); both return Ok.
    ///
    /// A source that fails its check is refused with [`StorageError::Corrupt`] naming the
    /// file (the snapshot directory for an image), and nothing changes: the storage stays
    /// usable, the file stays where it is, and the runtime may fetch the snapshot again. Any
    /// other error is fatal (fail-stop, like every write).
    ///
    /// # Panics
    ///
    /// On a caller bug: `retain_log` with a log that does not hold (`meta.last_index`,
    /// `meta.last_term`); the same index as the latest snapshot with another term (§5.4); a
    /// file outside the snapshot directory.
    fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        source: SnapshotSource,
        retain_log: bool,
    ) -> Result<(), StorageError>;

    /// Discards log entries with index <= `upto` where the storage's layout allows (§7: they
    /// are in a durable snapshot). [`DiskStorage`] deletes every segment all of whose entries
    /// are <= `upto`, never the last (active) one, each deletion durable (directory fsync)
    /// before it returns; entries kept on disk below `upto` are harmless (recovery skips what
    /// the snapshot covers). [`MemStorage`] drops exactly the entries <= `upto`. Neither
    /// changes [`Storage::take_entries`]'s or [`Storage::last_index`]'s answers.
    ///
    /// # Panics
    ///
    /// Unless a durable snapshot with `last_index >= upto` exists: discarding entries no
    /// snapshot holds would lose committed state (a caller bug).
    fn compact(&mut self, upto: LogIndex) -> Result<(), StorageError>;
}

/// Asserts that going from `old` to `new` is a transition Raft allows (Figure 2: the term
/// only increases; at most one vote per term). Checked at the storage boundary because
/// what is written here outlives any in-memory check in the core.
fn assert_transition(old: &HardState, new: &HardState) {
    assert!(
        new.current_term >= old.current_term,
        "current_term must never decrease (Figure 2): saved {:?}, new {:?}",
        old,
        new
    );
    if new.current_term == old.current_term && old.voted_for.is_some() {
        assert_eq!(
            new.voted_for, old.voted_for,
            "voted_for must not change within a term (Figure 2: one vote per term): saved {old:?}, new {new:?}"
        );
    }
}

/// Asserts that `entries` continue a log that ends at (`last_index`, `last_term`): indexes
/// contiguous from `last_index + 1`, terms never decreasing (§5.3), data within
/// [`ENTRY_DATA_BYTES_MAX`]. Checked before any byte is written (the pair of the checks
/// recovery makes after reading), because a log with a hole, a term going backwards or an
/// oversized record would be refused at the next start. Shared by both implementations, so
/// that a bug found with [`MemStorage`] is the same bug on disk.
fn assert_continues(last_index: LogIndex, last_term: Term, entries: &[Entry]) {
    let mut expected = LogIndex(last_index.0 + 1);
    let mut previous_term = last_term;
    for entry in entries {
        assert!(
            entry.data.len() <= ENTRY_DATA_BYTES_MAX,
            "entry {} has {} bytes of data, more than a record holds ({ENTRY_DATA_BYTES_MAX})",
            entry.index,
            entry.data.len()
        );
        assert_eq!(
            entry.index, expected,
            "append must continue the log: expected index {expected}, got {}",
            entry.index
        );
        assert!(
            entry.term >= previous_term,
            "terms never decrease along the log (§5.3): entry {} has term {} after term {previous_term}",
            entry.index,
            entry.term
        );
        expected = LogIndex(expected.0 + 1);
        previous_term = entry.term;
    }
}

/// Storage in a data directory on disk, held under an exclusive lock for its lifetime.
///
/// Dropping it releases the lock. Dropping it does not sync: whatever was appended after the
/// last [`Storage::sync`] may be lost, exactly as in a crash.
#[derive(Debug)]
pub struct DiskStorage {
    dir: PathBuf,
    /// Kept open only to hold the `flock`; closing the file releases it.
    _lock: File,
    /// The last saved state: reads never touch the disk.
    hard_state: HardState,
    /// The log, in `<dir>/wal/`.
    wal: Wal,
    /// The snapshots, in `<dir>/snap/`.
    snapshots: SnapshotStore,
    /// Set after any failed write (hard state or log). From then on every write fails too,
    /// so that nothing can "retry" a failed fsync by accident (fail-stop).
    failed: bool,
}

impl DiskStorage {
    /// Opens the data directory with the default [`WalOptions`]; see
    /// [`DiskStorage::open_with`].
    pub fn open(dir: impl AsRef<Path>) -> Result<DiskStorage, StorageError> {
        DiskStorage::open_with(dir, WalOptions::default())
    }

    /// Opens (creating if needed, with parents) the data directory, takes an exclusive lock
    /// on `<dir>/LOCK`, removes a leftover `hardstate.tmp`, reads the hard state, opens the
    /// snapshots in `<dir>/snap/` ([`SnapshotStore::open`]: leftover temp files and an
    /// interrupted transfer are removed, the newest snapshot is checked completely) and
    /// recovers the log in `<dir>/wal/` against the latest snapshot (truncating a torn tail of
    /// its last segment; discarding, with a warning, a log that does not continue the
    /// snapshot, §7).
    ///
    /// Fails with [`StorageError::Locked`] if another `DiskStorage` (in this or another
    /// process) holds the directory, and with [`StorageError::Corrupt`] naming the file and
    /// byte offset if the hard state or the log is damaged: the server refuses to start
    /// rather than forget a vote or an acknowledged entry; [`StorageError::SnapshotRefused`]
    /// if the newest snapshot is damaged.
    pub fn open_with(dir: impl AsRef<Path>, options: WalOptions) -> Result<DiskStorage, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        create_dir_durably(&dir)?;
        let lock = lock_dir(&dir)?;
        // Only after the lock: another server could be in the middle of a save.
        hard_state::remove_leftover_tmp(&dir)?;
        let hard_state = read_hard_state(&dir)?.unwrap_or_default();
        // The snapshots before the log: which log is valid depends on the latest snapshot.
        let snapshots = SnapshotStore::open(snapshot_dir(&dir))?;
        let base = snapshots.latest().map_or((LogIndex(0), Term(0)), |meta| (meta.last_index, meta.last_term));
        let wal_dir = dir.join(WAL_DIR);
        create_dir_durably(&wal_dir)?;
        let wal = Wal::open(&wal_dir, options, base)?;
        log::debug!(
            "opened {} with hard state {:?}, snapshot at {}, log up to {}",
            dir.display(),
            hard_state,
            base.0,
            wal.last_index()
        );
        Ok(DiskStorage { dir, _lock: lock, hard_state, wal, snapshots, failed: false })
    }

    /// The data directory, as given to [`DiskStorage::open`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Refuses every write once any write failed (fail-stop across the hard state and the
    /// log: after a failed fsync, nothing this storage promises can be trusted).
    fn check_not_failed(&self, path: PathBuf, op: &'static str) -> Result<(), StorageError> {
        if self.failed {
            return Err(StorageError::Io {
                path,
                op,
                source: io::Error::other("an earlier write failed; storage is fail-stop and never retries"),
            });
        }
        Ok(())
    }

    /// Runs a log write, refusing it after an earlier failure and recording a new one.
    fn log_write(
        &mut self,
        op: &'static str,
        write: impl FnOnce(&mut Wal) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        self.check_not_failed(self.dir.join(WAL_DIR), op)?;
        let result = write(&mut self.wal);
        if result.is_err() {
            self.failed = true;
        }
        result
    }
}

impl Storage for DiskStorage {
    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), StorageError> {
        self.check_not_failed(self.dir.join(HARD_STATE_FILE), "save")?;
        assert_transition(&self.hard_state, hard_state);
        log::debug!("saving hard state {:?} in {}", hard_state, self.dir.display());
        if let Err(err) = hard_state::write(&self.dir, hard_state) {
            // What reached the disk is now unknown (old or new record); keep the old value
            // in memory and refuse all further saves.
            self.failed = true;
            return Err(err);
        }
        self.hard_state = *hard_state;
        Ok(())
    }

    fn take_entries(&mut self) -> Vec<Entry> {
        self.wal.take_entries()
    }

    fn truncate_from(&mut self, from: LogIndex) -> Result<(), StorageError> {
        self.log_write("truncate", |wal| wal.truncate_from(from))
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.log_write("append", |wal| wal.append(entries))
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.log_write("sync", |wal| wal.sync())
    }

    fn last_index(&self) -> LogIndex {
        self.wal.last_index()
    }

    fn snapshot_meta(&self) -> Option<SnapshotMeta> {
        self.snapshots.latest().cloned()
    }

    fn take_snapshot(&mut self) -> Option<Snapshot> {
        self.snapshots.take_snapshot()
    }

    fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        source: SnapshotSource,
        retain_log: bool,
    ) -> Result<(), StorageError> {
        self.check_not_failed(self.snapshots.dir().to_path_buf(), "install snapshot")?;
        if install::order(self.snapshots.latest(), meta) != install::Order::Newer {
            return Ok(());
        }
        if retain_log {
            install::assert_retainable(self.wal.term_at(meta.last_index), meta);
        }
        // A refused source changes nothing and is not a failed write: the storage stays
        // usable. Any other error (a failed fsync of the file, say) is fail-stop.
        let checked = match self.snapshots.check_source(meta, source) {
            Ok(checked) => checked,
            Err(err) => {
                if !matches!(err, StorageError::Corrupt { .. }) {
                    self.failed = true;
                }
                return Err(err);
            }
        };
        log::info!(
            "installing the snapshot at index {} term {} in {}{}",
            meta.last_index,
            meta.last_term,
            self.dir.display(),
            if retain_log { ", keeping the log" } else { ", discarding the log" }
        );
        // Durable first, then the log goes: a crash in between leaves the old log next to
        // the new snapshot, which recovery handles (§7); the other order could leave neither.
        let result = self.snapshots.install(meta, checked).and_then(|()| {
            if retain_log {
                self.wal.set_base(meta.last_index, meta.last_term);
                Ok(())
            } else {
                self.wal.discard(meta.last_index, meta.last_term)
            }
        });
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn compact(&mut self, upto: LogIndex) -> Result<(), StorageError> {
        install::assert_compactable(self.snapshots.latest(), upto);
        self.log_write("compact", |wal| wal.compact(upto))
    }
}

/// `create_dir_all`, plus an fsync of the parent of every directory it created, so that the
/// directory itself (not only its files) survives a crash.
fn create_dir_durably(dir: &Path) -> Result<(), StorageError> {
    let missing: Vec<&Path> =
        dir.ancestors().take_while(|path| !path.as_os_str().is_empty() && !path.exists()).collect();
    std::fs::create_dir_all(dir).map_err(io_error(dir, "create directory"))?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            hard_state::sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Takes the exclusive lock on `<dir>/LOCK` without waiting: a second server on the same
/// directory should fail at once with a clear message, not hang.
fn lock_dir(dir: &Path) -> Result<File, StorageError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_error(&path, "open"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StorageError::Locked { dir: dir.to_path_buf() }),
        Err(TryLockError::Error(source)) => Err(StorageError::Io { path, op: "lock", source }),
    }
}

#[cfg(test)]
#[path = "disk_tests.rs"]
mod tests;
