//! Tests of the write-ahead log through [`DiskStorage`]: round trips, crash shapes (every
//! truncation point, flipped bits), conflict truncation (§5.3) and fail-stop.

use std::fs;
use std::path::{Path, PathBuf};

use super::record::{ENTRY_HEADER_LEN, MARKER_RECORD_LEN, RECORD_HEADER_LEN};
use super::segment::{file_name, SEGMENT_HEADER_LEN};
use super::*;
use crate::core::{Entry, LogIndex, Term};

/// Tiny segments, so that a few entries cross several segment boundaries.
pub(super) const TINY: WalOptions = WalOptions { segment_bytes_max: 200 };

/// Entry `index` of term `term` with `len` bytes of data that depend on both, so that a
/// record read back from the wrong place cannot pass for the right one.
pub(super) fn entry(index: u64, term: u64, len: usize) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        data: (0..len).map(|i| (i as u64 ^ index.wrapping_mul(31) ^ term) as u8).collect(),
    }
}

/// Entries `first..=last`, all of term `term`, with data lengths cycling through a few sizes.
pub(super) fn entries(first: u64, last: u64, term: u64) -> Vec<Entry> {
    (first..=last).map(|index| entry(index, term, (index as usize * 7) % 40)).collect()
}

pub(super) fn record_len(entry: &Entry) -> u64 {
    (RECORD_HEADER_LEN + ENTRY_HEADER_LEN + entry.data.len()) as u64
}

pub(super) fn segment_path(dir: &Path, first_index: u64) -> PathBuf {
    dir.join(WAL_DIR).join(file_name(LogIndex(first_index)))
}

/// First indexes of the segment files in the data directory `dir`, in order.
pub(super) fn segment_firsts(dir: &Path) -> Vec<u64> {
    let mut firsts: Vec<u64> = fs::read_dir(dir.join(WAL_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .map(|name| name.trim_end_matches(".seg").parse().unwrap())
        .collect();
    firsts.sort();
    firsts
}

/// Opens `dir`, writes `log` and syncs.
fn write_log(dir: &Path, options: WalOptions, log: &[Entry]) {
    let mut storage = DiskStorage::open_with(dir, options).unwrap();
    storage.append(log).unwrap();
    storage.sync().unwrap();
}

pub(super) fn reopen(dir: &Path) -> Result<Vec<Entry>, StorageError> {
    let mut storage = DiskStorage::open_with(dir, TINY)?;
    let recovered = storage.take_entries();
    assert_eq!(storage.last_index(), LogIndex(recovered.len() as u64));
    Ok(recovered)
}

pub(super) fn corrupt(result: Result<Vec<Entry>, StorageError>) -> (PathBuf, u64, String) {
    match result {
        Err(StorageError::Corrupt { path, offset, detail }) => (path, offset, detail),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn an_empty_wal_directory_is_an_empty_log() {
    let tmp = tempfile::tempdir().unwrap();
    let mut storage = DiskStorage::open(tmp.path()).unwrap();
    assert!(tmp.path().join(WAL_DIR).is_dir());
    assert_eq!(storage.last_index(), LogIndex(0));
    assert!(storage.take_entries().is_empty());
    storage.sync().unwrap();
    drop(storage);
    assert_eq!(reopen(tmp.path()).unwrap(), vec![]);
}

#[test]
fn append_sync_reopen_round_trips_across_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = entries(1, 30, 1);
    log.push(entry(31, 2, 0));
    log.push(entry(32, 2, 3 << 20)); // larger than the write buffer
    log.push(entry(33, 2, 0));
    log.extend(entries(34, 40, 3));
    let mut storage = DiskStorage::open_with(tmp.path(), TINY).unwrap();
    // Several appends per sync and several syncs (group commit).
    for chunk in log.chunks(7) {
        storage.append(chunk).unwrap();
        storage.append(&[]).unwrap();
        storage.sync().unwrap();
    }
    assert_eq!(storage.last_index(), LogIndex(40));
    drop(storage);

    assert!(segment_firsts(tmp.path()).len() > 5);
    assert_eq!(segment_firsts(tmp.path())[0], 1);
    assert_eq!(reopen(tmp.path()).unwrap(), log);

    // Appending after a reopen continues the last segment, and survives another reopen.
    let mut storage = DiskStorage::open_with(tmp.path(), TINY).unwrap();
    assert_eq!(storage.take_entries(), log);
    assert!(storage.take_entries().is_empty(), "moved out");
    storage.append(&entries(41, 45, 3)).unwrap();
    storage.sync().unwrap();
    drop(storage);
    log.extend(entries(41, 45, 3));
    assert_eq!(reopen(tmp.path()).unwrap(), log);
}

#[test]
fn default_options_keep_a_small_log_in_one_segment() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path(), WalOptions::default(), &entries(1, 100, 1));
    assert_eq!(segment_firsts(tmp.path()), vec![1]);
    assert_eq!(reopen(tmp.path()).unwrap(), entries(1, 100, 1));
}

#[test]
fn unsynced_appends_may_be_lost_but_never_corrupt_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    // One segment: a rotation would write the buffer out (and sync it).
    let mut storage = DiskStorage::open(tmp.path()).unwrap();
    storage.append(&entries(1, 10, 1)).unwrap();
    storage.sync().unwrap();
    // Small: stays in the write buffer, never reaches the file.
    storage.append(&entries(11, 12, 1)).unwrap();
    drop(storage);
    assert_eq!(reopen(tmp.path()).unwrap(), entries(1, 10, 1));

    // Large: the buffer spills to the file part way; whatever is recovered is a prefix of
    // what was appended that includes everything synced.
    let mut storage = DiskStorage::open(tmp.path()).unwrap();
    let mut appended = entries(1, 10, 1);
    let big: Vec<Entry> = (11..=14).map(|i| entry(i, 2, 700 << 10)).collect();
    storage.append(&big).unwrap();
    appended.extend(big);
    drop(storage);
    let recovered = reopen(tmp.path()).unwrap();
    assert!(recovered.len() >= 10);
    assert_eq!(recovered[..], appended[..recovered.len()]);
}

#[test]
fn every_truncation_point_of_the_last_segment_recovers_the_complete_records() {
    let tmp = tempfile::tempdir().unwrap();
    let log = entries(1, 12, 1);
    write_log(tmp.path(), TINY, &log);
    let firsts = segment_firsts(tmp.path());
    let last_first = *firsts.last().unwrap();
    assert!(firsts.len() >= 2 && last_first > 1, "{firsts:?}");
    let path = segment_path(tmp.path(), last_first);
    let good = fs::read(&path).unwrap();

    // Where each record of the last segment ends; the sync's marker follows them.
    let mut ends = Vec::new();
    let mut end = SEGMENT_HEADER_LEN as u64;
    for entry in &log[last_first as usize - 1..] {
        end += record_len(entry);
        ends.push(end);
    }
    assert_eq!(end + MARKER_RECORD_LEN as u64, good.len() as u64);

    // The header is made durable before the file is named, so a short one is damage.
    for len in 0..SEGMENT_HEADER_LEN {
        fs::write(&path, &good[..len]).unwrap();
        assert_eq!(
            corrupt(reopen(tmp.path())),
            (path.clone(), 0, format!("segment header cut short ({len} of 17 bytes)"))
        );
    }
    // Without the final marker nothing claims the records durable: any cut is a torn tail.
    for len in SEGMENT_HEADER_LEN..good.len() {
        fs::write(&path, &good[..len]).unwrap();
        let complete = ends.iter().filter(|&&end| end <= len as u64).count();
        let expected = &log[..last_first as usize - 1 + complete];
        assert_eq!(reopen(tmp.path()).unwrap(), expected, "truncated to {len} bytes");
        let valid = ends[..complete].last().copied().unwrap_or(SEGMENT_HEADER_LEN as u64);
        // Cut at the last complete record, then claimed again by a fresh marker (if there is
        // anything to claim).
        let marker = if complete > 0 { MARKER_RECORD_LEN as u64 } else { 0 };
        assert_eq!(fs::metadata(&path).unwrap().len(), valid + marker, "len {len}");
        // The repaired log is a clean one: reopening changes nothing, appending works.
        let mut storage = DiskStorage::open_with(tmp.path(), TINY).unwrap();
        assert_eq!(storage.take_entries(), expected);
        let next = expected.len() as u64 + 1;
        storage.append(&[entry(next, 2, 5)]).unwrap();
        storage.sync().unwrap();
        drop(storage);
        let mut extended = expected.to_vec();
        extended.push(entry(next, 2, 5));
        assert_eq!(reopen(tmp.path()).unwrap(), extended, "len {len}");

        fs::write(&path, &good).unwrap();
    }
}

#[test]
fn any_truncation_of_an_older_segment_is_corruption_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path(), TINY, &entries(1, 12, 1));
    let firsts = segment_firsts(tmp.path());
    assert!(firsts.len() >= 3, "{firsts:?}");
    for &first in &firsts[..firsts.len() - 1] {
        let path = segment_path(tmp.path(), first);
        let good = fs::read(&path).unwrap();
        for len in 0..good.len() {
            fs::write(&path, &good[..len]).unwrap();
            let (bad_path, offset, detail) = corrupt(reopen(tmp.path()));
            assert_eq!(bad_path, path, "len {len}: {detail}");
            assert!(offset <= len as u64, "len {len}: offset {offset}, {detail}");
        }
        fs::write(&path, &good).unwrap();
    }
    assert_eq!(reopen(tmp.path()).unwrap(), entries(1, 12, 1));
}

/// Offset of the record of `index` in the file whose first entry is `first`.
fn record_offset(log: &[Entry], first: u64, index: u64) -> u64 {
    SEGMENT_HEADER_LEN as u64 + log[first as usize - 1..index as usize - 1].iter().map(record_len).sum::<u64>()
}

#[test]
fn a_flipped_bit_before_the_last_marker_is_corruption_at_its_record() {
    let tmp = tempfile::tempdir().unwrap();
    let log = entries(1, 6, 1);
    write_log(tmp.path(), WalOptions::default(), &log);
    let path = segment_path(tmp.path(), 1);
    let good = fs::read(&path).unwrap();

    // Every bit of records 3 and 6 (of 6), frame and payload alike: the length field included
    // (format 1 took a raised length in the last segment for a torn write), and the final
    // entry included (the marker after it says it was synced).
    for index in [3, 6] {
        let start = record_offset(&log, 1, index);
        let end = start + record_len(&log[index as usize - 1]);
        for bit in start * 8..end * 8 {
            let mut bad = good.clone();
            bad[(bit / 8) as usize] ^= 1 << (bit % 8);
            fs::write(&path, &bad).unwrap();
            let (bad_path, offset, detail) = corrupt(reopen(tmp.path()));
            assert_eq!(bad_path, path);
            assert_eq!(offset, start, "bit {bit}: {detail}");
            assert!(detail.contains("sync marker at byte"), "{detail}");
        }
    }

    // A bad header is corruption too, even in the last segment.
    let mut bad = good.clone();
    bad[6] ^= 1;
    fs::write(&path, &bad).unwrap();
    assert_eq!(corrupt(reopen(tmp.path())).1, 13);
}

#[test]
fn a_damaged_final_marker_loses_no_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let log = entries(1, 6, 1);
    write_log(tmp.path(), WalOptions::default(), &log);
    let path = segment_path(tmp.path(), 1);
    let good = fs::read(&path).unwrap();
    let start = record_offset(&log, 1, 7);
    assert_eq!(start + MARKER_RECORD_LEN as u64, good.len() as u64);

    // Written after the final sync, so never synced itself: a torn tail. It is cut, and the
    // entries it claimed are claimed again by a new marker.
    for bit in start * 8..good.len() as u64 * 8 {
        let mut bad = good.clone();
        bad[(bit / 8) as usize] ^= 1 << (bit % 8);
        fs::write(&path, &bad).unwrap();
        assert_eq!(reopen(tmp.path()).unwrap(), log, "bit {bit}");
        assert_eq!(fs::read(&path).unwrap(), good, "bit {bit}: the same marker, rewritten");
    }
}

#[test]
fn a_garbage_record_length_before_a_marker_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let log = entries(1, 4, 1);
    write_log(tmp.path(), WalOptions::default(), &log);
    let path = segment_path(tmp.path(), 1);
    let good = fs::read(&path).unwrap();
    for index in [2, 4] {
        let start = record_offset(&log, 1, index) as usize;
        let mut bad = good.clone();
        bad[start + 5..start + 9].copy_from_slice(&u32::MAX.to_le_bytes());
        fs::write(&path, &bad).unwrap();
        let (_, offset, detail) = corrupt(reopen(tmp.path()));
        assert_eq!(offset, start as u64);
        assert!(detail.contains("exceeds the limit"), "{detail}");
    }
}

#[test]
fn a_missing_segment_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path(), TINY, &entries(1, 12, 1));
    let firsts = segment_firsts(tmp.path());
    let middle = segment_path(tmp.path(), firsts[1]);
    let saved = fs::read(&middle).unwrap();
    fs::remove_file(&middle).unwrap();
    let (path, offset, detail) = corrupt(reopen(tmp.path()));
    let first = segment_path(tmp.path(), firsts[0]);
    assert_eq!(path, first, "the segment before the gap");
    assert_eq!(offset, fs::metadata(&first).unwrap().len());
    assert!(detail.contains("entries are missing"), "{detail}");

    fs::write(&middle, saved).unwrap();
    fs::remove_file(&first).unwrap();
    let (path, offset, detail) = corrupt(reopen(tmp.path()));
    assert_eq!((path, offset), (middle, 5), "{detail}");
}

#[test]
fn truncate_then_append_a_new_term_survives_a_reopen() {
    // (truncate from, entries per sync before it) for: the middle of a segment, a segment
    // boundary, index 1, last + 1, beyond it, and 0.
    let log = entries(1, 20, 1);
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path(), TINY, &log);
    let firsts = segment_firsts(tmp.path());
    let boundary = firsts[2];
    for from in [boundary + 1, boundary, 1, 21, 25, 0, 20, 2] {
        let tmp = tempfile::tempdir().unwrap();
        write_log(tmp.path(), TINY, &log);
        let mut storage = DiskStorage::open_with(tmp.path(), TINY).unwrap();
        storage.truncate_from(LogIndex(from)).unwrap();
        let kept = (from.max(1) - 1).min(20);
        assert_eq!(storage.last_index(), LogIndex(kept));
        assert_eq!(storage.take_entries(), log[..kept as usize], "from {from}");
        let fresh = entries(kept + 1, kept + 6, 5);
        storage.append(&fresh).unwrap();
        storage.sync().unwrap();
        drop(storage);

        let mut expected = log[..kept as usize].to_vec();
        expected.extend(fresh);
        assert_eq!(reopen(tmp.path()).unwrap(), expected, "from {from}");
        assert_eq!(segment_firsts(tmp.path())[0], 1);
        if from == boundary {
            assert!(segment_firsts(tmp.path()).contains(&boundary));
        }
    }
}

#[test]
fn truncations_of_unsynced_and_unwritten_entries() {
    let tmp = tempfile::tempdir().unwrap();
    // One segment, so that no rotation flushes the buffer behind the test's back.
    let mut storage = DiskStorage::open(tmp.path()).unwrap();
    storage.append(&entries(1, 10, 1)).unwrap();
    storage.sync().unwrap();
    // Still in the write buffer: dropped without touching the disk.
    storage.append(&entries(11, 14, 1)).unwrap();
    storage.truncate_from(LogIndex(13)).unwrap();
    storage.append(&entries(13, 13, 2)).unwrap();
    // Across the synced part and the buffer.
    storage.truncate_from(LogIndex(9)).unwrap();
    assert_eq!(storage.last_index(), LogIndex(8));
    storage.append(&entries(9, 11, 3)).unwrap();
    // Written to the file (buffer spilled) but not synced.
    let big: Vec<Entry> = (12..=13).map(|i| entry(i, 3, 700 << 10)).collect();
    storage.append(&big).unwrap();
    storage.truncate_from(LogIndex(13)).unwrap();
    storage.append(&entries(13, 14, 4)).unwrap();
    storage.sync().unwrap();
    drop(storage);

    let mut expected = entries(1, 8, 1);
    expected.extend(entries(9, 11, 3));
    expected.push(big[0].clone());
    expected.extend(entries(13, 14, 4));
    assert_eq!(reopen(tmp.path()).unwrap(), expected);
}

#[test]
#[should_panic(expected = "expected index 11, got 12")]
fn an_append_that_skips_an_index_is_a_bug() {
    let tmp = tempfile::tempdir().unwrap();
    let mut storage = DiskStorage::open_with(tmp.path(), TINY).unwrap();
    storage.append(&entries(1, 10, 1)).unwrap();
    let _ = storage.append(&entries(12, 12, 1));
}

#[test]
#[should_panic(expected = "terms never decrease")]
fn an_append_with_an_older_term_is_a_bug() {
    let tmp = tempfile::tempdir().unwrap();
    let mut storage = DiskStorage::open_with(tmp.path(), TINY).unwrap();
    storage.append(&entries(1, 2, 3)).unwrap();
    let _ = storage.append(&entries(3, 3, 2));
}

#[test]
fn after_a_failed_log_write_every_write_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let mut storage = DiskStorage::open_with(tmp.path(), TINY).unwrap();
    storage.append(&entries(1, 12, 1)).unwrap();
    storage.sync().unwrap();
    // The truncation must remove segments and fsync the directory, which is gone.
    fs::remove_dir_all(tmp.path().join(WAL_DIR)).unwrap();
    let err = storage.truncate_from(LogIndex(2)).unwrap_err();
    assert!(matches!(err, StorageError::Io { .. }), "{err:?}");

    fs::create_dir(tmp.path().join(WAL_DIR)).unwrap();
    for (op, result) in [
        ("append", storage.append(&entries(2, 2, 2))),
        ("sync", storage.sync()),
        ("truncate", storage.truncate_from(LogIndex(1))),
        ("save", storage.save_hard_state(&HardState::default())),
    ] {
        match result {
            Err(StorageError::Io { op: got, .. }) => assert_eq!(got, op),
            other => panic!("{op}: expected an error, got {other:?}"),
        }
    }
}

#[test]
fn after_a_failed_save_the_log_refuses_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut storage = DiskStorage::open(&dir).unwrap();
    fs::remove_dir_all(&dir).unwrap();
    storage.save_hard_state(&HardState::default()).unwrap_err();
    let err = storage.append(&entries(1, 1, 1)).unwrap_err();
    assert!(matches!(err, StorageError::Io { op: "append", .. }), "{err:?}");
    assert_eq!(storage.last_index(), LogIndex(0));
}

#[test]
fn foreign_files_in_the_wal_directory_are_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path(), TINY, &entries(1, 5, 1));
    fs::write(tmp.path().join(WAL_DIR).join("notes.txt"), b"hello").unwrap();
    assert_eq!(reopen(tmp.path()).unwrap(), entries(1, 5, 1));
}
