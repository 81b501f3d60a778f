//! [`MemStorage`]: the in-memory twin of [`DiskStorage`](super::DiskStorage), for tests and
//! the simulator. Same contract, plus a model of durability that matches the disk's:
//! [`MemStorage::crash`] loses exactly the appends [`Storage::sync`] had not yet made durable,
//! so a simulation can check that the runtime acknowledges only synced entries (thesis §3.8).
//! A truncation is durable when [`Storage::truncate_from`] returns, as on disk (the WAL
//! removes and truncates segment files with an fsync before returning): a crash after it
//! never brings the removed entries back, so "truncated, then the new append lost" is a
//! state a simulation explores.
//!
//! Snapshots (§7) follow the disk's contract too: [`Storage::install_snapshot`] and
//! [`Storage::compact`] are durable when they return, a crash keeps the latest snapshot, and
//! the restart after a crash applies the same §7 rule to the surviving log as
//! [`DiskStorage`](super::DiskStorage)'s recovery (install.rs). Unlike the disk, which deletes
//! whole segments, [`Storage::compact`] drops exactly the entries it is asked to.

use std::io;
use std::path::PathBuf;

use super::install::{self, log_continues_snapshot, Order};
use super::snapshot::{decode_image, same_meta};
use super::{
    assert_continues, assert_transition, encode_snapshot_image, read_snapshot, Snapshot, SnapshotMeta, SnapshotSource,
    Storage, StorageError,
};
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
    /// The log as the server sees it: every append and truncation, synced or not. Contiguous,
    /// starting right after `prev`; with a snapshot it may still hold entries the snapshot
    /// covers (until a compaction drops them).
    entries: Vec<Entry>,
    /// Index and term of the entry just before `entries[0]`: (0, 0) for a log from index 1,
    /// else the last entry a compaction dropped, or the snapshot's last entry after a discard.
    prev: (LogIndex, Term),
    /// `entries[..synced_len]` is durable; the rest are appends not yet synced. A truncation
    /// only ever shortens the durable prefix (it is durable at once), so nothing removed from
    /// `entries` needs keeping.
    synced_len: usize,
    fail_next_sync: bool,
    /// Set by a failed sync: every later write fails until [`MemStorage::crash`] (fail-stop).
    failed: bool,
    /// The latest snapshot, durable as soon as it is installed.
    snapshot: Option<Snapshot>,
    /// Whether [`Storage::take_snapshot`] handed the snapshot out since the last restart (or
    /// the snapshot was installed since, so the caller has it already).
    snapshot_taken: bool,
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

    /// Storage that already holds `hard_state`, the durable snapshot `snapshot` and the
    /// durable log `entries`, as after a restart: the twin of a data directory with a
    /// snapshot and WAL segments. `entries` may start anywhere from index 1 to the snapshot's
    /// `last_index + 1` (compaction deletes whole segments, so a log may reach back below the
    /// snapshot). The restart applies §7 as [`DiskStorage`](super::DiskStorage)'s recovery
    /// does: a log that does not hold the snapshot's last entry (same index and term) and does
    /// not start right after it is discarded, with a warning (what a crash between an
    /// install's rename and its log discard leaves).
    ///
    /// # Panics
    ///
    /// If `entries` is not a log (contiguous, terms never decreasing), starts at 0 or above
    /// `last_index + 1`, or starts at `last_index + 1` with a term below the snapshot's.
    pub fn with_snapshot(hard_state: HardState, snapshot: Snapshot, entries: Vec<Entry>) -> MemStorage {
        let (index, term) = (snapshot.meta.last_index, snapshot.meta.last_term);
        let first = entries.first().map_or(LogIndex(index.0 + 1), |entry| entry.index);
        assert!(
            first.0 >= 1 && first.0 <= index.0 + 1,
            "a log next to a snapshot at {index} starts at 1..={}, not at {first}",
            index.0 + 1
        );
        // The term before the first entry is known only when that entry is the snapshot's;
        // otherwise it is never read (the log holds index S, and nothing removes it).
        let prev_term = if first.0 == index.0 + 1 { term } else { Term(0) };
        assert_continues(LogIndex(first.0 - 1), prev_term, &entries);
        let mut storage = MemStorage {
            hard_state,
            synced_len: entries.len(),
            entries,
            prev: (LogIndex(first.0 - 1), prev_term),
            snapshot: Some(snapshot),
            ..MemStorage::default()
        };
        storage.restart();
        storage
    }

    /// The latest snapshot's image (the bytes of its file, [`encode_snapshot_image`]), for a
    /// simulated leader to send in chunks; None without a snapshot.
    pub fn snapshot_image(&self) -> Option<Vec<u8>> {
        self.snapshot.as_ref().map(|snapshot| encode_snapshot_image(&snapshot.meta, &snapshot.data))
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
        self.restart();
    }

    /// What an open does after a crash: the snapshot is read again (handed out once more),
    /// and the surviving log is checked against it (§7, as DiskStorage's recovery).
    fn restart(&mut self) {
        self.snapshot_taken = false;
        let Some(meta) = self.snapshot.as_ref().map(|snapshot| &snapshot.meta) else { return };
        let (index, term) = (meta.last_index, meta.last_term);
        let first = LogIndex(self.prev.0 .0 + 1);
        let term_at = self.term_at(index);
        if !log_continues_snapshot(first, term_at, index, term) {
            log::warn!(
                "discarding the log (entries {first}..={}): it does not continue the snapshot at index {index} term {term} (term there: {term_at:?}) and does not start at {} (§7)",
                self.end().0,
                index.0 + 1
            );
            self.entries.clear();
            self.synced_len = 0;
            self.prev = (index, term);
        }
    }

    /// Term of the entry at `index`, if the log holds it.
    fn term_at(&self, index: LogIndex) -> Option<Term> {
        let offset = index.0.checked_sub(self.prev.0 .0 + 1)?;
        self.entries.get(offset as usize).map(|entry| entry.term)
    }

    /// Index and term of the last entry (of the snapshot when the log is empty after one).
    fn end(&self) -> (LogIndex, Term) {
        self.entries.last().map_or(self.prev, |entry| (entry.index, entry.term))
    }

    /// Index of the snapshot's last entry, 0 without one.
    fn snapshot_index(&self) -> LogIndex {
        self.snapshot.as_ref().map_or(LogIndex(0), |snapshot| snapshot.meta.last_index)
    }

    /// Crash with a torn write: the first `keep` entries appended since the last sync (after
    /// any truncation since) reached the disk whole and survive; the next one was torn (the
    /// WAL drops a torn final record on open) and it and everything after it are lost.
    pub fn crash_torn(&mut self, keep: usize) {
        self.synced_len = (self.synced_len + keep).min(self.entries.len());
        self.crash();
    }

    /// The log as the server sees it (appended entries, synced or not). Without a snapshot it
    /// starts at index 1; with one it starts after the last compaction or discard, which may
    /// be at or below the snapshot's index ([`Storage::take_entries`] returns only the entries
    /// after the snapshot).
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

    /// A copy of the visible log after the snapshot: unlike the disk, keeping it costs
    /// nothing extra, and the crash model needs it.
    fn take_entries(&mut self) -> Vec<Entry> {
        let after = self.snapshot_index();
        self.entries.iter().filter(|entry| entry.index > after).cloned().collect()
    }

    fn truncate_from(&mut self, from: LogIndex) -> Result<(), StorageError> {
        self.check_not_failed("truncate")?;
        let snapshot = self.snapshot_index();
        assert!(
            snapshot.0 == 0 || from > snapshot,
            "truncate from index {from}, but entries up to {snapshot} are in a snapshot: committed, never in conflict (§5.4)"
        );
        let keep = from.0.max(1).saturating_sub(self.prev.0 .0 + 1) as usize;
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
        let (last_index, last_term) = self.end();
        assert_continues(last_index, last_term, entries);
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
        self.end().0
    }

    fn snapshot_meta(&self) -> Option<SnapshotMeta> {
        self.snapshot.as_ref().map(|snapshot| snapshot.meta.clone())
    }

    fn take_snapshot(&mut self) -> Option<Snapshot> {
        if std::mem::replace(&mut self.snapshot_taken, true) {
            return None;
        }
        self.snapshot.clone()
    }

    fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        source: SnapshotSource,
        retain_log: bool,
    ) -> Result<(), StorageError> {
        self.check_not_failed("install snapshot")?;
        if install::order(self.snapshot.as_ref().map(|snapshot| &snapshot.meta), meta) != Order::Newer {
            return Ok(());
        }
        if retain_log {
            install::assert_retainable(self.term_at(meta.last_index), meta);
        }
        // The same checks as the disk's, refused the same way (Corrupt, nothing changed).
        let (snapshot, path) = match source {
            SnapshotSource::Image(image) => {
                let path = PathBuf::from("<memory>");
                let snapshot = decode_image(&image).map_err(|(offset, detail)| StorageError::Corrupt {
                    path: path.clone(),
                    offset: offset as u64,
                    detail: format!("snapshot image for index {} term {}: {detail}", meta.last_index, meta.last_term),
                })?;
                (snapshot, path)
            }
            SnapshotSource::File { path, .. } => (read_snapshot(&path)?, path),
        };
        same_meta(meta, &snapshot.meta).map_err(|detail| StorageError::Corrupt { path, offset: 5, detail })?;
        // Durable at once, snapshot first, as on disk.
        self.snapshot = Some(snapshot);
        self.snapshot_taken = true;
        if !retain_log {
            self.entries.clear();
            self.synced_len = 0;
            self.prev = (meta.last_index, meta.last_term);
        }
        Ok(())
    }

    /// Drops exactly the entries <= `upto` (the disk drops whole segments only; either is
    /// allowed: entries kept below a snapshot are harmless). Durable at once.
    fn compact(&mut self, upto: LogIndex) -> Result<(), StorageError> {
        self.check_not_failed("compact")?;
        install::assert_compactable(self.snapshot.as_ref().map(|snapshot| &snapshot.meta), upto);
        let n = self.entries.partition_point(|entry| entry.index <= upto);
        if n > 0 {
            let last = &self.entries[n - 1];
            self.prev = (last.index, last.term);
            self.entries.drain(..n);
            // An unsynced entry dropped here is gone for good; a crash then finds the log
            // shorter than the snapshot, and the restart discards it, as the disk would.
            self.synced_len = self.synced_len.saturating_sub(n);
        }
        Ok(())
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
