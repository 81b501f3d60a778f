//! Durable storage: the hard state (and, in later issues, the write-ahead log).
//!
//! Raft's safety rests on a few values surviving a crash: `current_term` and `voted_for`
//! (Raft Figure 2, "Persistent state on all servers"), so that a restarted server can never
//! vote twice in one term. A server must not answer an RPC before the state its answer
//! promises is on stable storage (thesis §3.8); hence [`Storage::save_hard_state`] returns
//! only after an fsync.
//!
//! Two implementations share the [`Storage`] contract: [`DiskStorage`], a locked data
//! directory, and [`MemStorage`], an in-memory twin for tests and the simulator.
//! The on-disk format is specified in docs/storage.md.
//!
//! Data directory layout:
//!
//! ```text
//! <dir>/LOCK           exclusive lock: one server process per directory
//! <dir>/hardstate      the 34-byte hard state record
//! <dir>/hardstate.tmp  only during a save (or after a crash in the middle of one)
//! ```

mod error;
mod hard_state;

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use crate::core::HardState;

pub use error::StorageError;
pub use hard_state::{read_hard_state, HARD_STATE_LEN, HARD_STATE_TMP_FILE};

use error::io_error;

/// Name of the hard state file inside a data directory.
pub const HARD_STATE_FILE: &str = "hardstate";

/// Name of the lock file inside a data directory. Its content is irrelevant; the lock is an
/// exclusive `flock` on it, which the OS releases when the process exits, even on a crash,
/// so a stale file never blocks a restart.
pub const LOCK_FILE: &str = "LOCK";

/// The contract the node runtime uses to persist state. Later issues extend it with the log.
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

/// Storage in a data directory on disk, held under an exclusive lock for its lifetime.
///
/// Dropping it releases the lock.
#[derive(Debug)]
pub struct DiskStorage {
    dir: PathBuf,
    /// Kept open only to hold the `flock`; closing the file releases it.
    _lock: File,
    /// The last saved state: reads never touch the disk.
    hard_state: HardState,
    /// Set after any failed save. From then on every save fails too, so that nothing can
    /// "retry" a failed fsync by accident (fail-stop).
    failed: bool,
}

impl DiskStorage {
    /// Opens (creating if needed, with parents) the data directory, takes an exclusive lock
    /// on `<dir>/LOCK`, removes a leftover `hardstate.tmp`, and reads the hard state.
    ///
    /// Fails with [`StorageError::Locked`] if another `DiskStorage` (in this or another
    /// process) holds the directory, and with [`StorageError::Corrupt`] if the record is
    /// damaged: the server refuses to start rather than forget a vote.
    pub fn open(dir: impl AsRef<Path>) -> Result<DiskStorage, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        create_dir_durably(&dir)?;
        let lock = lock_dir(&dir)?;
        // Only after the lock: another server could be in the middle of a save.
        hard_state::remove_leftover_tmp(&dir)?;
        let hard_state = read_hard_state(&dir)?.unwrap_or_default();
        log::debug!("opened {} with hard state {:?}", dir.display(), hard_state);
        Ok(DiskStorage {
            dir,
            _lock: lock,
            hard_state,
            failed: false,
        })
    }

    /// The data directory, as given to [`DiskStorage::open`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Storage for DiskStorage {
    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), StorageError> {
        if self.failed {
            return Err(StorageError::Io {
                path: self.dir.join(HARD_STATE_FILE),
                op: "save",
                source: io::Error::other(
                    "an earlier save failed; storage is fail-stop and never retries",
                ),
            });
        }
        assert_transition(&self.hard_state, hard_state);
        log::debug!(
            "saving hard state {:?} in {}",
            hard_state,
            self.dir.display()
        );
        if let Err(err) = hard_state::write(&self.dir, hard_state) {
            // What reached the disk is now unknown (old or new record); keep the old value
            // in memory and refuse all further saves.
            self.failed = true;
            return Err(err);
        }
        self.hard_state = *hard_state;
        Ok(())
    }
}

/// `create_dir_all`, plus an fsync of the parent of every directory it created, so that the
/// directory itself (not only its files) survives a crash.
fn create_dir_durably(dir: &Path) -> Result<(), StorageError> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|path| !path.as_os_str().is_empty() && !path.exists())
        .collect();
    std::fs::create_dir_all(dir).map_err(io_error(dir, "create directory"))?;
    for created in missing.iter().rev() {
        if let Some(parent) = created
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
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
        Err(TryLockError::WouldBlock) => Err(StorageError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(TryLockError::Error(source)) => Err(StorageError::Io {
            path,
            op: "lock",
            source,
        }),
    }
}

/// In-memory twin of [`DiskStorage`] with the same contract, for tests and the simulator.
///
/// `Clone` gives an independent copy (nothing is shared), which is how a simulator keeps
/// "what was on disk" across a simulated crash.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    hard_state: HardState,
    fail_next_save: bool,
}

impl MemStorage {
    /// Empty storage, as after the first start of a server.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// Storage that already holds `hard_state`, as after a restart.
    pub fn with_hard_state(hard_state: HardState) -> MemStorage {
        MemStorage {
            hard_state,
            fail_next_save: false,
        }
    }

    /// Makes the next [`Storage::save_hard_state`] fail with [`StorageError::Io`] and leave
    /// the saved state unchanged, so tests can check that the runtime stops (fail-stop).
    /// Only that one save fails.
    pub fn fail_next_save(&mut self) {
        self.fail_next_save = true;
    }
}

impl Storage for MemStorage {
    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), StorageError> {
        if std::mem::take(&mut self.fail_next_save) {
            return Err(StorageError::Io {
                path: PathBuf::from("<memory>"),
                op: "save",
                source: io::Error::other("injected failure (MemStorage::fail_next_save)"),
            });
        }
        assert_transition(&self.hard_state, hard_state);
        self.hard_state = *hard_state;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{LogIndex, NodeId, Term};
    use std::fs;

    fn voted(term: u64, vote: Option<u64>, commit: u64) -> HardState {
        HardState {
            current_term: Term(term),
            voted_for: vote.map(NodeId),
            commit_index: LogIndex(commit),
        }
    }

    fn corrupt_offset(result: Result<DiskStorage, StorageError>, file: &Path) -> u64 {
        match result {
            Err(StorageError::Corrupt { path, offset, .. }) => {
                assert_eq!(path, file);
                offset
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn save_then_reopen_returns_the_saved_state() {
        for saved in [voted(7, Some(2), 5), voted(8, None, 6)] {
            let tmp = tempfile::tempdir().unwrap();
            let mut storage = DiskStorage::open(tmp.path()).unwrap();
            storage.save_hard_state(&saved).unwrap();
            assert_eq!(storage.hard_state(), saved);
            drop(storage);

            let reopened = DiskStorage::open(tmp.path()).unwrap();
            assert_eq!(reopened.hard_state(), saved);
            assert_eq!(reopened.dir(), tmp.path());
        }
    }

    #[test]
    fn a_new_directory_starts_with_the_default_state() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/data");
        let storage = DiskStorage::open(&dir).unwrap();
        assert_eq!(storage.hard_state(), HardState::default());
        assert!(dir.join(LOCK_FILE).exists());
        assert!(!dir.join(HARD_STATE_FILE).exists());
        assert_eq!(read_hard_state(&dir).unwrap(), None);
    }

    #[test]
    fn a_second_open_of_a_locked_directory_fails_until_the_first_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let first = DiskStorage::open(tmp.path()).unwrap();
        let err = DiskStorage::open(tmp.path()).unwrap_err();
        assert!(
            matches!(&err, StorageError::Locked { dir } if dir == tmp.path()),
            "{err:?}"
        );
        assert!(
            err.to_string().contains(&tmp.path().display().to_string()),
            "{err}"
        );
        drop(first);
        DiskStorage::open(tmp.path()).unwrap();
    }

    #[test]
    fn every_single_flipped_bit_is_refused_at_its_field() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join(HARD_STATE_FILE);
        DiskStorage::open(tmp.path())
            .unwrap()
            .save_hard_state(&voted(3, Some(1), 2))
            .unwrap();
        let good = fs::read(&file).unwrap();
        assert_eq!(good.len(), HARD_STATE_LEN);

        for bit in 0..HARD_STATE_LEN * 8 {
            let mut bytes = good.clone();
            bytes[bit / 8] ^= 1 << (bit % 8);
            fs::write(&file, &bytes).unwrap();
            // Magic and version are checked first, the CRC covers everything else.
            let expected = match bit / 8 {
                0..=3 => 0,
                4 => 4,
                _ => 30,
            };
            assert_eq!(
                corrupt_offset(DiskStorage::open(tmp.path()), &file),
                expected,
                "bit {bit}"
            );
        }
    }

    #[test]
    fn a_file_of_any_other_length_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join(HARD_STATE_FILE);
        DiskStorage::open(tmp.path())
            .unwrap()
            .save_hard_state(&voted(3, Some(1), 2))
            .unwrap();
        let good = fs::read(&file).unwrap();

        // Length 0 included: the rename is atomic, so even an empty file means damage.
        for len in 0..HARD_STATE_LEN {
            fs::write(&file, &good[..len]).unwrap();
            assert_eq!(
                corrupt_offset(DiskStorage::open(tmp.path()), &file),
                0,
                "length {len}"
            );
        }
        let mut long = good.clone();
        long.extend_from_slice(&[0; 100]);
        fs::write(&file, &long).unwrap();
        let err = DiskStorage::open(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("found 134"), "{err}");
    }

    #[test]
    fn a_leftover_temp_file_is_removed_and_the_old_state_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let saved = voted(4, Some(3), 1);
        DiskStorage::open(tmp.path())
            .unwrap()
            .save_hard_state(&saved)
            .unwrap();
        let tmp_file = tmp.path().join(HARD_STATE_TMP_FILE);
        fs::write(&tmp_file, b"half a reco").unwrap();

        let storage = DiskStorage::open(tmp.path()).unwrap();
        assert_eq!(storage.hard_state(), saved);
        assert!(!tmp_file.exists());
    }

    #[test]
    fn a_leftover_temp_file_without_a_record_means_never_saved() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(HARD_STATE_TMP_FILE), b"").unwrap();
        let storage = DiskStorage::open(tmp.path()).unwrap();
        assert_eq!(storage.hard_state(), HardState::default());
        assert!(!tmp.path().join(HARD_STATE_TMP_FILE).exists());
    }

    #[test]
    fn read_hard_state_needs_no_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let mut storage = DiskStorage::open(tmp.path()).unwrap();
        let saved = voted(9, Some(1), 4);
        storage.save_hard_state(&saved).unwrap();
        // The server still holds the lock; an inspecting tool can read regardless.
        assert_eq!(read_hard_state(tmp.path()).unwrap(), Some(saved));
    }

    #[test]
    fn after_a_failed_save_every_save_fails() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let mut storage = DiskStorage::open(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        let err = storage.save_hard_state(&voted(1, None, 0)).unwrap_err();
        assert!(
            matches!(err, StorageError::Io { op: "create", .. }),
            "{err:?}"
        );
        assert_eq!(storage.hard_state(), HardState::default());

        fs::create_dir(&dir).unwrap();
        let err = storage.save_hard_state(&voted(1, None, 0)).unwrap_err();
        assert!(
            matches!(err, StorageError::Io { op: "save", .. }),
            "{err:?}"
        );
        assert!(!dir.join(HARD_STATE_FILE).exists());
    }

    #[test]
    fn mem_storage_keeps_what_was_saved() {
        let mut storage = MemStorage::new();
        assert_eq!(storage.hard_state(), HardState::default());
        storage.save_hard_state(&voted(2, Some(5), 1)).unwrap();
        assert_eq!(storage.hard_state(), voted(2, Some(5), 1));

        let mut copy = storage.clone();
        copy.save_hard_state(&voted(3, None, 1)).unwrap();
        assert_eq!(
            storage.hard_state(),
            voted(2, Some(5), 1),
            "clones share nothing"
        );

        let restarted = MemStorage::with_hard_state(copy.hard_state());
        assert_eq!(restarted.hard_state(), voted(3, None, 1));
    }

    #[test]
    fn mem_storage_fails_exactly_the_next_save_when_asked() {
        let mut storage = MemStorage::with_hard_state(voted(1, None, 0));
        storage.fail_next_save();
        let err = storage.save_hard_state(&voted(2, Some(1), 0)).unwrap_err();
        assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
        assert_eq!(storage.hard_state(), voted(1, None, 0));
        storage.save_hard_state(&voted(2, Some(1), 0)).unwrap();
        assert_eq!(storage.hard_state(), voted(2, Some(1), 0));
    }

    #[test]
    #[should_panic(expected = "current_term must never decrease")]
    fn saving_an_older_term_is_a_bug() {
        let mut storage = MemStorage::with_hard_state(voted(5, None, 0));
        let _ = storage.save_hard_state(&voted(4, None, 0));
    }

    #[test]
    #[should_panic(expected = "one vote per term")]
    fn changing_a_vote_within_a_term_is_a_bug() {
        let mut storage = MemStorage::with_hard_state(voted(5, Some(1), 0));
        let _ = storage.save_hard_state(&voted(5, Some(2), 0));
    }
}
