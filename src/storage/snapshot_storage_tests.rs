//! Snapshots meet the log (Raft §7): install, compaction and recovery. The scenarios that
//! both implementations must pass run through the [`Storage`] trait against each, so that
//! [`MemStorage`] (the simulator's disk) and [`DiskStorage`] are held to one contract; the
//! ones about files (segments deleted, crash leftovers, damaged files) are in
//! snapshot_file_tests.rs.

use std::path::{Path, PathBuf};

use super::wal_tests::{entries, TINY};
use super::*;
use crate::core::{Entry, HardState, LogIndex, Term};

pub(super) fn meta(index: u64, term: u64) -> SnapshotMeta {
    SnapshotMeta { last_index: LogIndex(index), last_term: Term(term), config: b"1,2,3".to_vec() }
}

/// The state machine bytes of the snapshot at `index`: distinct per index, so that a test
/// can tell which snapshot it got back.
pub(super) fn state(index: u64) -> Vec<u8> {
    format!("state up to {index}").into_bytes()
}

pub(super) fn image(index: u64, term: u64) -> SnapshotSource {
    SnapshotSource::Image(encode_snapshot_image(&meta(index, term), &state(index)))
}

pub(super) fn snapshot(index: u64, term: u64) -> Snapshot {
    Snapshot { meta: meta(index, term), data: state(index) }
}

/// A storage under test, and how it crashes and restarts.
pub(super) trait Fixture {
    fn storage(&mut self) -> &mut dyn Storage;
    /// A crash and restart: whatever was not synced may be lost.
    fn restart(&mut self);
}

pub(super) struct Disk {
    tmp: tempfile::TempDir,
    pub(super) storage: Option<DiskStorage>,
}

impl Disk {
    pub(super) fn new() -> Disk {
        let tmp = tempfile::tempdir().unwrap();
        let storage = Some(DiskStorage::open_with(tmp.path(), TINY).unwrap());
        Disk { tmp, storage }
    }

    pub(super) fn dir(&self) -> &Path {
        self.tmp.path()
    }

    pub(super) fn disk(&mut self) -> &mut DiskStorage {
        self.storage.as_mut().unwrap()
    }
}

impl Fixture for Disk {
    fn storage(&mut self) -> &mut dyn Storage {
        self.disk()
    }

    fn restart(&mut self) {
        // Dropping does not sync: what was buffered is lost, as in a crash.
        self.storage = None;
        self.storage = Some(DiskStorage::open_with(self.tmp.path(), TINY).unwrap());
    }
}

struct Mem(MemStorage);

impl Fixture for Mem {
    fn storage(&mut self) -> &mut dyn Storage {
        &mut self.0
    }

    fn restart(&mut self) {
        self.0.crash();
    }
}

/// Runs `scenario` against both implementations (the name says which one failed).
fn both(scenario: impl Fn(&mut dyn Fixture)) {
    for (name, fixture) in [("disk", &mut Disk::new() as &mut dyn Fixture), ("mem", &mut Mem(MemStorage::new()))] {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(fixture)));
        if let Err(panic) = result {
            panic!("{name}: {}", crate::panic_text(panic.as_ref()));
        }
    }
}

pub(super) fn write(storage: &mut dyn Storage, log: &[Entry]) {
    storage.append(log).unwrap();
    storage.sync().unwrap();
}

pub(super) fn corrupt_at(err: StorageError) -> (PathBuf, u64, String) {
    match err {
        StorageError::Corrupt { path, offset, detail } => (path, offset, detail),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn an_install_that_discards_the_log_leaves_an_empty_log_ending_at_the_snapshot() {
    both(|f| {
        write(f.storage(), &entries(1, 10, 1));
        f.storage().install_snapshot(&meta(20, 2), image(20, 2), false).unwrap();
        let s = f.storage();
        assert_eq!(s.last_index(), LogIndex(20));
        assert_eq!(s.snapshot_meta(), Some(meta(20, 2)));
        assert_eq!(s.take_snapshot(), None, "the installer has it already");
        assert_eq!(s.take_entries(), vec![]);
        write(s, &entries(21, 25, 3));

        f.restart();
        let s = f.storage();
        assert_eq!(s.snapshot_meta(), Some(meta(20, 2)));
        assert_eq!(s.take_snapshot(), Some(snapshot(20, 2)));
        assert_eq!(s.take_snapshot(), None, "moved out once");
        assert_eq!(s.take_entries(), entries(21, 25, 3));
        assert_eq!(s.last_index(), LogIndex(25));
        write(s, &entries(26, 26, 3));
        f.restart();
        assert_eq!(f.storage().take_entries(), entries(21, 26, 3));
    });
}

#[test]
fn an_install_that_keeps_the_log_leaves_it_and_recovery_returns_the_entries_after_the_snapshot() {
    both(|f| {
        let log = entries(1, 30, 1);
        write(f.storage(), &log);
        f.storage().install_snapshot(&meta(12, 1), image(12, 1), true).unwrap();
        assert_eq!(f.storage().last_index(), LogIndex(30));
        f.restart();
        let s = f.storage();
        assert_eq!(s.take_entries(), log[12..]);
        assert_eq!(s.last_index(), LogIndex(30));
        // Truncation after the snapshot works as before.
        s.truncate_from(LogIndex(13)).unwrap();
        assert_eq!(s.last_index(), LogIndex(12));
        write(s, &entries(13, 14, 2));
        f.restart();
        assert_eq!(f.storage().take_entries(), entries(13, 14, 2));
    });
}

#[test]
fn after_a_compaction_recovery_returns_the_entries_after_the_snapshot_and_appends_continue() {
    both(|f| {
        let log = entries(1, 30, 1);
        write(f.storage(), &log);
        f.storage().install_snapshot(&meta(12, 1), image(12, 1), true).unwrap();
        f.storage().compact(LogIndex(12)).unwrap();
        assert_eq!(f.storage().last_index(), LogIndex(30));
        f.restart();
        assert_eq!(f.storage().take_entries(), log[12..]);
        write(f.storage(), &entries(31, 31, 2));
        f.restart();
        let mut expected = log[12..].to_vec();
        expected.push(entries(31, 31, 2).remove(0));
        assert_eq!(f.storage().take_entries(), expected);

        // Compacting everything the snapshot holds, with the log ending there.
        f.storage().install_snapshot(&meta(31, 2), image(31, 2), true).unwrap();
        f.storage().compact(LogIndex(31)).unwrap();
        f.restart();
        assert_eq!(f.storage().take_entries(), vec![]);
        assert_eq!(f.storage().last_index(), LogIndex(31));
        write(f.storage(), &entries(32, 33, 2));
        f.restart();
        assert_eq!(f.storage().take_entries(), entries(32, 33, 2));
    });
}

#[test]
fn a_snapshot_not_newer_than_the_latest_changes_nothing() {
    both(|f| {
        f.storage().install_snapshot(&meta(20, 2), image(20, 2), false).unwrap();
        write(f.storage(), &entries(21, 23, 2));
        // The same one again (a retried InstallSnapshot), then an older one (a late one).
        f.storage().install_snapshot(&meta(20, 2), image(20, 2), false).unwrap();
        f.storage().install_snapshot(&meta(15, 1), image(15, 1), false).unwrap();
        assert_eq!(f.storage().snapshot_meta(), Some(meta(20, 2)));
        assert_eq!(f.storage().last_index(), LogIndex(23));
        f.restart();
        assert_eq!(f.storage().take_snapshot(), Some(snapshot(20, 2)));
        assert_eq!(f.storage().take_entries(), entries(21, 23, 2));
    });
}

#[test]
fn a_damaged_or_mismatched_image_is_refused_and_nothing_changes() {
    both(|f| {
        write(f.storage(), &entries(1, 5, 1));
        f.storage().install_snapshot(&meta(3, 1), image(3, 1), true).unwrap();
        let mut damaged = encode_snapshot_image(&meta(10, 2), &state(10));
        damaged[40] ^= 4;
        let refusals = [
            (meta(10, 2), SnapshotSource::Image(damaged), "checksum mismatch"),
            (meta(11, 2), image(10, 2), "the install asks for index 11"),
            (SnapshotMeta { config: b"1,2".to_vec(), ..meta(10, 2) }, image(10, 2), "configurations differ"),
        ];
        for (asked, source, reason) in refusals {
            let (_, _, detail) = corrupt_at(f.storage().install_snapshot(&asked, source, false).unwrap_err());
            assert!(detail.contains(reason), "{detail}");
            assert_eq!(f.storage().snapshot_meta(), Some(meta(3, 1)));
            assert_eq!(f.storage().last_index(), LogIndex(5));
        }
        // Not fail-stop: the storage still works, and the right snapshot installs.
        write(f.storage(), &entries(6, 6, 1));
        f.storage().install_snapshot(&meta(10, 2), image(10, 2), false).unwrap();
        f.restart();
        assert_eq!(f.storage().take_snapshot(), Some(snapshot(10, 2)));
        assert_eq!(f.storage().last_index(), LogIndex(10));
    });
}

#[test]
fn a_crash_after_an_install_keeps_the_snapshot_and_loses_only_unsynced_appends() {
    both(|f| {
        write(f.storage(), &entries(1, 8, 1));
        f.storage().install_snapshot(&meta(20, 2), image(20, 2), false).unwrap();
        f.storage().append(&entries(21, 22, 2)).unwrap();
        f.restart();
        assert_eq!(f.storage().take_snapshot(), Some(snapshot(20, 2)));
        assert_eq!(f.storage().take_entries(), vec![]);
        assert_eq!(f.storage().last_index(), LogIndex(20));
        write(f.storage(), &entries(21, 21, 3));
        f.restart();
        assert_eq!(f.storage().take_entries(), entries(21, 21, 3));
    });
}

#[test]
#[should_panic(expected = "expected index 21, got 1")]
fn after_a_discarding_install_the_next_append_must_follow_the_snapshot() {
    let mut disk = Disk::new();
    disk.disk().install_snapshot(&meta(20, 2), image(20, 2), false).unwrap();
    let _ = disk.disk().append(&entries(1, 1, 2));
}

#[test]
#[should_panic(expected = "terms never decrease")]
fn after_a_discarding_install_the_next_term_is_at_least_the_snapshots() {
    let mut mem = MemStorage::new();
    mem.install_snapshot(&meta(20, 2), image(20, 2), false).unwrap();
    let _ = mem.append(&entries(21, 21, 1));
}

#[test]
#[should_panic(expected = "covers only up to 0")]
fn compacting_without_a_snapshot_is_a_caller_bug_on_disk() {
    let mut disk = Disk::new();
    write(disk.disk(), &entries(1, 10, 1));
    let _ = disk.disk().compact(LogIndex(3));
}

#[test]
#[should_panic(expected = "covers only up to 5")]
fn compacting_beyond_the_snapshot_is_a_caller_bug_in_memory() {
    let mut mem = MemStorage::with_log(HardState::default(), entries(1, 10, 1));
    mem.install_snapshot(&meta(5, 1), image(5, 1), true).unwrap();
    let _ = mem.compact(LogIndex(6));
}

#[test]
#[should_panic(expected = "does not hold entry 12 with term 2")]
fn keeping_a_log_that_does_not_hold_the_snapshots_entry_is_a_caller_bug_on_disk() {
    let mut disk = Disk::new();
    write(disk.disk(), &entries(1, 30, 1));
    let _ = disk.disk().install_snapshot(&meta(12, 2), image(12, 2), true);
}

#[test]
#[should_panic(expected = "does not hold entry 40 with term 1")]
fn keeping_a_log_that_does_not_hold_the_snapshots_entry_is_a_caller_bug_in_memory() {
    let mut mem = MemStorage::with_log(HardState::default(), entries(1, 30, 1));
    let _ = mem.install_snapshot(&meta(40, 1), image(40, 1), true);
}

#[test]
#[should_panic(expected = "entries up to 12 are in a snapshot")]
fn truncating_into_the_snapshot_is_a_caller_bug() {
    let mut mem = MemStorage::with_log(HardState::default(), entries(1, 30, 1));
    mem.install_snapshot(&meta(12, 1), image(12, 1), true).unwrap();
    let _ = mem.truncate_from(LogIndex(12));
}

#[test]
#[should_panic(expected = "with different terms")]
fn a_snapshot_at_the_same_index_with_another_term_is_a_caller_bug() {
    let mut disk = Disk::new();
    disk.disk().install_snapshot(&meta(20, 2), image(20, 2), false).unwrap();
    let _ = disk.disk().install_snapshot(&meta(20, 3), image(20, 3), false);
}

// ---- Disk: segments, files, crash leftovers ----
