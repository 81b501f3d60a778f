//! [`MemStorage`]: the in-memory twin of [`DiskStorage`](super::DiskStorage), for tests and
//! the simulator. Same contract, plus a model of durability that matches the disk's:
//! [`MemStorage::crash`] loses exactly the appends [`Storage::sync`] had not yet made durable,
//! so a simulation can check that the runtime acknowledges only synced entries (thesis §3.8).
//! A truncation is durable when [`Storage::truncate_from`] returns, as on disk (the WAL
//! removes and truncates segment files with an fsync before returning): a crash after it
//! never brings the removed entries back, so "truncated, then the new append lost" is a
//! state a simulation explores.

use std::io;
use std::path::PathBuf;

use super::{assert_continues, assert_transition, Storage, StorageError};
use crate::core::{Entry, HardState, LogIndex, Term};

/// In-memory twin of [`DiskStorage`](super::DiskStorage) with the same contract, for tests
/// and the simulator.
///
/// `Clone` gives an independent copy (nothing is shared), which is how a simulator keeps
/// "what was on disk" across a simulated crash. The hard state is durable as soon as it is
/// saved (like on disk, where a save fsyncs); a truncation is durable as soon as it returns
/// (like on disk); appends are durable only up to the last successful [`Storage::sync`], and
/// [`MemStorage::crash`] drops the rest.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    hard_state: HardState,
    fail_next_save: bool,
    /// The log as the server sees it: every append and truncation, synced or not.
    entries: Vec<Entry>,
    /// `entries[..synced_len]` is durable; the rest are appends not yet synced. A truncation
    /// only ever shortens the durable prefix (it is durable at once), so nothing removed from
    /// `entries` needs keeping.
    synced_len: usize,
    fail_next_sync: bool,
    /// Set by a failed sync: every later write fails until [`MemStorage::crash`] (fail-stop).
    failed: bool,
}

/// Error for an injected failure, named like the disk errors so tests can match on `op`.
fn injected(op: &'static str, why: &str) -> StorageError {
    StorageError::Io { path: PathBuf::from("<memory>"), op, source: io::Error::other(why.to_string()) }
}

impl MemStorage {
    /// Empty storage, as after the first start of a server.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// Storage that already holds `hard_state`, as after a restart.
    pub fn with_hard_state(hard_state: HardState) -> MemStorage {
        MemStorage { hard_state, ..MemStorage::default() }
    }

    /// Storage that already holds `hard_state` and the durable log `entries`, as after a
    /// restart.
    ///
    /// # Panics
    ///
    /// If `entries` is not a log: indexes `1..=n` contiguous, terms never decreasing.
    pub fn with_log(hard_state: HardState, entries: Vec<Entry>) -> MemStorage {
        assert_continues(LogIndex(0), Term(0), &entries);
        MemStorage { hard_state, synced_len: entries.len(), entries, ..MemStorage::default() }
    }

    /// Makes the next [`Storage::save_hard_state`] fail with [`StorageError::Io`] and leave
    /// the saved state unchanged, so tests can check that the runtime stops (fail-stop).
    /// Only that one save fails.
    pub fn fail_next_save(&mut self) {
        self.fail_next_save = true;
    }

    /// Makes the next [`Storage::sync`] fail with [`StorageError::Io`], as a failed
    /// fdatasync would: nothing since the last successful sync becomes durable, and from
    /// then on every write (append, truncate, sync, save) fails too, until
    /// [`MemStorage::crash`] (fail-stop: a real server never retries a failed fsync).
    pub fn fail_next_sync(&mut self) {
        self.fail_next_sync = true;
    }

    /// Simulates a crash and restart: every append since the last successful sync is lost;
    /// truncations stay done (each was durable when it returned). The hard state is kept
    /// (each save was durable). A fail-stopped storage works again, as a restarted process
    /// would.
    pub fn crash(&mut self) {
        self.entries.truncate(self.synced_len);
        self.failed = false;
    }

    /// Crash with a torn write: the first `keep` entries appended since the last sync (after
    /// any truncation since) reached the disk whole and survive; the next one was torn (the
    /// WAL drops a torn final record on open) and it and everything after it are lost.
    pub fn crash_torn(&mut self, keep: usize) {
        self.synced_len = (self.synced_len + keep).min(self.entries.len());
        self.crash();
    }

    /// The log as the server sees it (appended entries, synced or not).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The log that would survive a crash now: the appends of the last successful sync, less
    /// whatever was truncated since.
    pub fn durable_entries(&self) -> Vec<Entry> {
        self.entries[..self.synced_len].to_vec()
    }

    fn check_not_failed(&self, op: &'static str) -> Result<(), StorageError> {
        if self.failed {
            return Err(injected(op, "an earlier sync failed; storage is fail-stop and never retries"));
        }
        Ok(())
    }
}

impl Storage for MemStorage {
    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), StorageError> {
        self.check_not_failed("save")?;
        if std::mem::take(&mut self.fail_next_save) {
            return Err(injected("save", "injected failure (MemStorage::fail_next_save)"));
        }
        assert_transition(&self.hard_state, hard_state);
        self.hard_state = *hard_state;
        Ok(())
    }

    /// A copy of the visible log: unlike the disk, keeping it costs nothing extra, and the
    /// crash model needs it.
    fn take_entries(&mut self) -> Vec<Entry> {
        self.entries.clone()
    }

    fn truncate_from(&mut self, from: LogIndex) -> Result<(), StorageError> {
        self.check_not_failed("truncate")?;
        let keep = (from.0.max(1) - 1) as usize;
        if keep >= self.entries.len() {
            return Ok(());
        }
        // Durable on return, as DiskStorage's truncation (it fsyncs before returning): the
        // removed entries are gone for good, synced or not.
        self.entries.truncate(keep);
        self.synced_len = self.synced_len.min(keep);
        Ok(())
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.check_not_failed("append")?;
        let last_term = self.entries.last().map_or(Term(0), |entry| entry.term);
        assert_continues(self.last_index(), last_term, entries);
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.check_not_failed("sync")?;
        if std::mem::take(&mut self.fail_next_sync) {
            self.failed = true;
            return Err(injected("sync", "injected failure (MemStorage::fail_next_sync)"));
        }
        self.synced_len = self.entries.len();
        Ok(())
    }

    fn last_index(&self) -> LogIndex {
        LogIndex(self.entries.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::NodeId;

    fn voted(term: u64, vote: Option<u64>, commit: u64) -> HardState {
        HardState { current_term: Term(term), voted_for: vote.map(NodeId), commit_index: LogIndex(commit) }
    }

    fn entries(indexes: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        indexes
            .map(|index| Entry {
                term: Term(term),
                index: LogIndex(index),
                data: format!("{term}/{index}").into_bytes(),
            })
            .collect()
    }

    fn log(parts: &[Vec<Entry>]) -> Vec<Entry> {
        parts.concat()
    }

    #[test]
    fn mem_storage_keeps_what_was_saved() {
        let mut storage = MemStorage::new();
        assert_eq!(storage.hard_state(), HardState::default());
        storage.save_hard_state(&voted(2, Some(5), 1)).unwrap();
        assert_eq!(storage.hard_state(), voted(2, Some(5), 1));

        let mut copy = storage.clone();
        copy.save_hard_state(&voted(3, None, 1)).unwrap();
        assert_eq!(storage.hard_state(), voted(2, Some(5), 1), "clones share nothing");

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

    #[test]
    fn a_torn_crash_keeps_a_prefix_of_the_unsynced_appends() {
        let mut m = MemStorage::new();
        let entries: Vec<Entry> = (1..=5).map(|i| Entry { term: Term(1), index: LogIndex(i), data: vec![] }).collect();
        m.append(&entries[..2]).unwrap();
        m.sync().unwrap();
        m.append(&entries[2..]).unwrap();
        m.crash_torn(2);
        assert_eq!(m.entries(), &entries[..4], "two of three unsynced appends survived, the last was torn");
        m.crash_torn(9);
        assert_eq!(m.entries(), &entries[..4], "nothing beyond what was written");
    }

    #[test]
    fn crash_drops_unsynced_appends() {
        let mut storage = MemStorage::new();
        storage.append(&entries(1..=3, 1)).unwrap();
        storage.sync().unwrap();
        storage.append(&entries(4..=5, 1)).unwrap();
        assert_eq!(storage.last_index(), LogIndex(5));
        assert_eq!(storage.durable_entries(), entries(1..=3, 1));

        storage.crash();
        assert_eq!(storage.entries(), entries(1..=3, 1));
        assert_eq!(storage.take_entries(), entries(1..=3, 1));
        assert_eq!(storage.last_index(), LogIndex(3));
    }

    #[test]
    fn a_truncation_is_durable_when_it_returns() {
        let mut storage = MemStorage::new();
        storage.append(&entries(1..=5, 1)).unwrap();
        storage.sync().unwrap();
        // Truncated, then the new append lost: the crash keeps the truncation (as the disk
        // does) and never brings entries 4..=5 of term 1 back.
        storage.truncate_from(LogIndex(4)).unwrap();
        assert_eq!(storage.durable_entries(), entries(1..=3, 1), "durable at once");
        storage.append(&entries(4..=4, 2)).unwrap();
        storage.crash();
        assert_eq!(storage.entries(), entries(1..=3, 1));

        // Two truncations and appends between syncs: the crash keeps the shortest prefix and
        // drops every unsynced append.
        storage.truncate_from(LogIndex(3)).unwrap();
        storage.append(&entries(3..=4, 2)).unwrap();
        storage.truncate_from(LogIndex(2)).unwrap();
        storage.append(&entries(2..=3, 3)).unwrap();
        assert_eq!(storage.entries(), log(&[entries(1..=1, 1), entries(2..=3, 3)]));
        assert_eq!(storage.durable_entries(), entries(1..=1, 1));
        storage.crash();
        assert_eq!(storage.entries(), entries(1..=1, 1));

        // A torn crash after a truncation keeps a prefix of the appends that followed it.
        storage.truncate_from(LogIndex(1)).unwrap();
        storage.append(&entries(1..=3, 4)).unwrap();
        storage.crash_torn(2);
        assert_eq!(storage.entries(), entries(1..=2, 4));

        // Synced, the appends after a truncation stick too.
        storage.truncate_from(LogIndex(2)).unwrap();
        storage.append(&entries(2..=2, 5)).unwrap();
        storage.sync().unwrap();
        storage.crash();
        assert_eq!(storage.entries(), log(&[entries(1..=1, 4), entries(2..=2, 5)]));
    }

    #[test]
    fn truncation_bounds_are_no_ops_or_everything() {
        let mut storage = MemStorage::with_log(HardState::default(), entries(1..=3, 1));
        storage.truncate_from(LogIndex(4)).unwrap();
        storage.truncate_from(LogIndex(9)).unwrap();
        assert_eq!(storage.entries(), entries(1..=3, 1));
        storage.crash();
        assert_eq!(storage.entries(), entries(1..=3, 1), "with_log is durable");
        storage.truncate_from(LogIndex(0)).unwrap();
        assert!(storage.entries().is_empty());
        assert_eq!(storage.last_index(), LogIndex(0));
        storage.crash();
        assert!(storage.entries().is_empty(), "a truncation is durable");
    }

    #[test]
    fn a_failed_sync_makes_nothing_durable_and_stops_every_write() {
        let mut storage = MemStorage::with_hard_state(voted(1, None, 0));
        storage.append(&entries(1..=2, 1)).unwrap();
        storage.sync().unwrap();
        storage.append(&entries(3..=3, 1)).unwrap();
        storage.fail_next_sync();
        let err = storage.sync().unwrap_err();
        assert!(matches!(err, StorageError::Io { op: "sync", .. }), "{err:?}");

        for (op, result) in [
            ("sync", storage.sync()),
            ("append", storage.append(&entries(4..=4, 1))),
            ("truncate", storage.truncate_from(LogIndex(1))),
            ("save", storage.save_hard_state(&voted(2, None, 0))),
        ] {
            match result {
                Err(StorageError::Io { op: got, .. }) => assert_eq!(got, op),
                other => panic!("{op}: expected an error, got {other:?}"),
            }
        }
        assert_eq!(storage.hard_state(), voted(1, None, 0));

        storage.crash();
        assert_eq!(storage.entries(), entries(1..=2, 1));
        storage.append(&entries(3..=3, 2)).unwrap();
        storage.sync().unwrap();
        storage.crash();
        assert_eq!(storage.entries(), log(&[entries(1..=2, 1), entries(3..=3, 2)]));
    }

    #[test]
    #[should_panic(expected = "expected index 3, got 4")]
    fn an_append_with_a_hole_is_a_bug() {
        let mut storage = MemStorage::with_log(HardState::default(), entries(1..=2, 1));
        let _ = storage.append(&entries(4..=4, 1));
    }

    #[test]
    #[should_panic(expected = "terms never decrease")]
    fn an_append_with_an_older_term_is_a_bug() {
        let mut storage = MemStorage::with_log(HardState::default(), entries(1..=2, 3));
        let _ = storage.append(&entries(3..=3, 2));
    }
}
