//! Snapshots meet the log files (Raft §7): which segments compaction deletes, what recovery
//! makes of crash leftovers beside a snapshot, and damaged files (the contract both storages
//! share is in snapshot_storage_tests.rs).

use std::fs;

use super::snapshot_storage_tests::{corrupt_at, image, meta, snapshot, state, write, Disk, Fixture};
use super::wal_tests::{entries, segment_firsts, segment_path, TINY};
use super::*;
use crate::core::{Entry, HardState, LogIndex, Term};

#[test]
fn compact_deletes_whole_segments_only_and_never_the_last() {
    let mut disk = Disk::new();
    let log = entries(1, 40, 1);
    write(disk.disk(), &log);
    let firsts = segment_firsts(disk.dir());
    assert!(firsts.len() >= 5, "{firsts:?}");
    // Up to the middle of the third segment: the first two go, the third stays.
    let upto = firsts[2] + 1;
    disk.disk().install_snapshot(&meta(upto, 1), image(upto, 1), true).unwrap();
    disk.disk().compact(LogIndex(upto)).unwrap();
    assert_eq!(segment_firsts(disk.dir()), firsts[2..]);
    assert_eq!(disk.disk().wal.first_segment_index(), Some(LogIndex(firsts[2])));
    // Up to the last entry of the third segment: it goes too.
    let upto = firsts[3] - 1;
    disk.disk().install_snapshot(&meta(upto, 1), image(upto, 1), true).unwrap();
    disk.disk().compact(LogIndex(upto)).unwrap();
    assert_eq!(segment_firsts(disk.dir()), firsts[3..]);
    // Everything: the last segment (appends go there) stays.
    disk.disk().install_snapshot(&meta(40, 1), image(40, 1), true).unwrap();
    disk.disk().compact(LogIndex(40)).unwrap();
    assert_eq!(segment_firsts(disk.dir()), firsts[firsts.len() - 1..]);

    disk.restart();
    assert_eq!(disk.disk().take_entries(), vec![]);
    assert_eq!(disk.disk().last_index(), LogIndex(40));
    write(disk.disk(), &entries(41, 45, 2));
    disk.restart();
    assert_eq!(disk.disk().take_entries(), entries(41, 45, 2));
}

#[test]
fn a_log_that_starts_right_after_the_snapshot_recovers_and_continues() {
    let mut disk = Disk::new();
    write(disk.disk(), &entries(1, 5, 1));
    disk.disk().install_snapshot(&meta(20, 2), image(20, 2), false).unwrap();
    assert_eq!(segment_firsts(disk.dir()), Vec::<u64>::new(), "the log is discarded on disk");
    write(disk.disk(), &entries(21, 40, 2));
    assert_eq!(segment_firsts(disk.dir())[0], 21, "segments are named by their first index");
    disk.restart();
    assert_eq!(disk.disk().take_entries(), entries(21, 40, 2));
    write(disk.disk(), &entries(41, 41, 3));
    disk.restart();
    assert_eq!(disk.disk().take_entries().len(), 21);
}

/// Writes `log` into a fresh data directory, then puts a snapshot at (`index`, `term`) next
/// to it without touching the log: what a crash between an install's rename and its log
/// discard leaves.
fn old_log_beside_a_new_snapshot(log: &[Entry], index: u64, term: u64) -> Disk {
    let mut disk = Disk::new();
    write(disk.disk(), log);
    disk.storage = None;
    SnapshotStore::open(snapshot_dir(disk.dir())).unwrap().save(&meta(index, term), &state(index)).unwrap();
    disk
}

#[test]
fn recovery_keeps_an_old_log_that_holds_the_snapshots_last_entry() {
    let mut log = entries(1, 30, 1);
    log.extend(entries(31, 35, 2));
    let mut disk = old_log_beside_a_new_snapshot(&log, 20, 1);
    disk.restart();
    assert_eq!(disk.disk().take_snapshot(), Some(snapshot(20, 1)));
    assert_eq!(disk.disk().take_entries(), log[20..]);
    assert_eq!(disk.disk().last_index(), LogIndex(35));
    assert_eq!(segment_firsts(disk.dir())[0], 1, "kept until the next compaction");
}

#[test]
fn recovery_discards_an_old_log_that_does_not_continue_the_snapshot() {
    // Too short to hold entry 20, and a log whose entry 20 has another term.
    for (log, term) in [(entries(1, 10, 1), 2), (entries(1, 30, 1), 2)] {
        let mut disk = old_log_beside_a_new_snapshot(&log, 20, term);
        disk.restart();
        assert_eq!(disk.disk().take_snapshot(), Some(snapshot(20, term)));
        assert_eq!(disk.disk().take_entries(), vec![]);
        assert_eq!(disk.disk().last_index(), LogIndex(20));
        assert_eq!(segment_firsts(disk.dir()), Vec::<u64>::new(), "discarded durably");
        write(disk.disk(), &entries(21, 22, term));
        disk.restart();
        assert_eq!(disk.disk().take_entries(), entries(21, 22, term));
    }
}

#[test]
fn a_first_segment_above_the_snapshot_plus_one_is_corruption_naming_it() {
    let mut disk = Disk::new();
    disk.disk().install_snapshot(&meta(7, 1), image(7, 1), false).unwrap();
    write(disk.disk(), &entries(8, 9, 1));
    disk.storage = None;
    // The snapshot replaced by an older one: entries 6 and 7 are nowhere.
    fs::remove_dir_all(snapshot_dir(disk.dir())).unwrap();
    SnapshotStore::open(snapshot_dir(disk.dir())).unwrap().save(&meta(5, 1), &state(5)).unwrap();
    let (path, offset, detail) = corrupt_at(DiskStorage::open_with(disk.dir(), TINY).unwrap_err());
    assert_eq!((path, offset), (segment_path(disk.dir(), 8), 5), "{detail}");
    assert!(detail.contains("entries 6..8 are missing"), "{detail}");
}

#[test]
fn an_entry_after_the_snapshot_with_a_lower_term_is_corruption() {
    let mut disk = Disk::new();
    disk.disk().install_snapshot(&meta(7, 1), image(7, 1), false).unwrap();
    write(disk.disk(), &entries(8, 9, 1));
    disk.storage = None;
    fs::remove_dir_all(snapshot_dir(disk.dir())).unwrap();
    SnapshotStore::open(snapshot_dir(disk.dir())).unwrap().save(&meta(7, 2), &state(7)).unwrap();
    let (path, offset, detail) = corrupt_at(DiskStorage::open_with(disk.dir(), TINY).unwrap_err());
    assert_eq!((path, offset), (segment_path(disk.dir(), 8), SEGMENT_HEADER_LEN as u64), "{detail}");
    assert!(detail.contains("lower than the term 2"), "{detail}");
}

#[test]
fn an_unsynced_file_is_fsynced_and_checked_completely_before_it_is_installed() {
    let mut disk = Disk::new();
    write(disk.disk(), &entries(1, 10, 1));
    disk.disk().install_snapshot(&meta(4, 1), image(4, 1), true).unwrap();
    let snap = snapshot_dir(disk.dir());
    let incoming = incoming_snapshot_path(&snap);
    assert_eq!(incoming, snap.join("incoming.part"));
    let good = encode_snapshot_image(&meta(20, 2), &state(20));
    let source = || SnapshotSource::File { path: incoming.clone(), synced: false };

    // Damage anywhere (here: one bit of the data, cut short) is refused, naming the file.
    let mut flipped = good.clone();
    flipped[45] ^= 0x20;
    for bad in [flipped, good[..good.len() - 1].to_vec()] {
        fs::write(&incoming, &bad).unwrap();
        let (path, _, detail) = corrupt_at(disk.disk().install_snapshot(&meta(20, 2), source(), false).unwrap_err());
        assert_eq!(path, incoming, "{detail}");
        assert_eq!(disk.disk().snapshot_meta(), Some(meta(4, 1)));
        assert_eq!(disk.disk().last_index(), LogIndex(10));
        assert_eq!(fs::read(&incoming).unwrap(), bad, "left as it was");
    }
    // An intact image of another snapshot than the one asked for.
    fs::write(&incoming, &good).unwrap();
    let (path, _, detail) = corrupt_at(disk.disk().install_snapshot(&meta(21, 2), source(), false).unwrap_err());
    assert!(path == incoming && detail.contains("asks for index 21"), "{detail}");

    disk.disk().install_snapshot(&meta(20, 2), source(), false).unwrap();
    assert!(!incoming.exists(), "renamed into place");
    let names: Vec<String> =
        fs::read_dir(&snap).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, [snapshot_file_name(LogIndex(20), Term(2))], "the older snapshot removed");
    assert_eq!(segment_firsts(disk.dir()), Vec::<u64>::new());
    disk.restart();
    assert_eq!(disk.disk().take_snapshot(), Some(snapshot(20, 2)));
}

#[test]
fn a_file_written_by_write_snapshot_tmp_is_installed_by_a_rename() {
    let mut disk = Disk::new();
    write(disk.disk(), &entries(1, 30, 1));
    let snap = snapshot_dir(disk.dir());
    assert_eq!(snap, disk.dir().join(SNAPSHOT_DIR));
    let path = write_snapshot_tmp(&snap, &meta(25, 1), &state(25)).unwrap();
    assert_eq!(path, snap.join(format!("{}.tmp", snapshot_file_name(LogIndex(25), Term(1)))));
    assert_eq!(fs::read(&path).unwrap(), encode_snapshot_image(&meta(25, 1), &state(25)));

    // A file for another snapshot than asked is refused (its header is checked).
    let source = SnapshotSource::File { path: path.clone(), synced: true };
    let (bad, _, detail) = corrupt_at(disk.disk().install_snapshot(&meta(26, 1), source.clone(), true).unwrap_err());
    assert_eq!(bad, path, "{detail}");

    disk.disk().install_snapshot(&meta(25, 1), source, true).unwrap();
    assert!(!path.exists());
    disk.disk().compact(LogIndex(25)).unwrap();
    disk.restart();
    assert_eq!(disk.disk().take_snapshot(), Some(snapshot(25, 1)));
    assert_eq!(disk.disk().take_entries(), entries(1, 30, 1)[25..]);
}

#[test]
fn an_install_leaves_files_being_written_alone_and_open_removes_them() {
    let mut disk = Disk::new();
    let snap = snapshot_dir(disk.dir());
    // A background snapshot and a transfer in progress while an install cleans up.
    let background = write_snapshot_tmp(&snap, &meta(30, 1), &state(30)).unwrap();
    let incoming = incoming_snapshot_path(&snap);
    fs::write(&incoming, b"half a transfer").unwrap();
    disk.disk().install_snapshot(&meta(20, 1), image(20, 1), false).unwrap();
    assert!(background.exists() && incoming.exists());

    disk.restart();
    assert!(!background.exists() && !incoming.exists(), "leftovers of the crashed process");
    assert_eq!(disk.disk().take_snapshot(), Some(snapshot(20, 1)));
}

#[test]
#[should_panic(expected = "must be in the snapshot directory")]
fn a_file_outside_the_snapshot_directory_is_a_caller_bug() {
    let mut disk = Disk::new();
    let path = disk.dir().join("elsewhere.snap");
    fs::write(&path, encode_snapshot_image(&meta(3, 1), &state(3))).unwrap();
    let _ = disk.disk().install_snapshot(&meta(3, 1), SnapshotSource::File { path, synced: false }, false);
}

#[test]
fn mem_storage_with_a_snapshot_applies_the_recovery_rule() {
    let hs = HardState::default();
    // Holds entry 20 with term 2: kept, the entries after it returned.
    let mut log = entries(1, 19, 1);
    log.extend(entries(20, 25, 2));
    let mut kept = MemStorage::with_snapshot(hs, snapshot(20, 2), log.clone());
    assert_eq!(kept.take_entries(), log[20..]);
    assert_eq!(kept.last_index(), LogIndex(25));
    assert_eq!(kept.take_snapshot(), Some(snapshot(20, 2)));
    // Starts right after it: kept.
    let mut after = MemStorage::with_snapshot(hs, snapshot(20, 2), entries(21, 23, 2));
    assert_eq!(after.take_entries(), entries(21, 23, 2));
    // Entry 20 with another term, or too short: discarded.
    for old in [entries(1, 25, 1), entries(3, 10, 1)] {
        let mut discarded = MemStorage::with_snapshot(hs, snapshot(20, 2), old);
        assert_eq!(discarded.take_entries(), vec![]);
        assert_eq!(discarded.last_index(), LogIndex(20));
        discarded.append(&entries(21, 21, 2)).unwrap();
    }
    assert_eq!(
        kept.snapshot_image(),
        Some(encode_snapshot_image(&meta(20, 2), &state(20))),
        "a simulated leader sends the file's bytes"
    );
    assert_eq!(MemStorage::new().snapshot_image(), None);
}

#[test]
#[should_panic(expected = "starts at 1..=21, not at 22")]
fn mem_storage_with_a_gap_after_the_snapshot_is_a_caller_bug() {
    let _ = MemStorage::with_snapshot(HardState::default(), snapshot(20, 2), entries(22, 23, 2));
}

#[test]
fn mem_storage_reads_a_snapshot_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_snapshot_tmp(tmp.path(), &meta(9, 1), &state(9)).unwrap();
    let mut mem = MemStorage::with_log(HardState::default(), entries(1, 3, 1));
    mem.install_snapshot(&meta(9, 1), SnapshotSource::File { path, synced: true }, false).unwrap();
    assert_eq!(mem.snapshot_meta(), Some(meta(9, 1)));
    assert_eq!(mem.last_index(), LogIndex(9));
    mem.crash();
    assert_eq!(mem.take_snapshot(), Some(snapshot(9, 1)));
    assert!(mem.entries().is_empty());
}

// ---- Images ----

#[test]
fn the_image_is_the_file_save_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = SnapshotStore::open(tmp.path()).unwrap();
    store.save(&meta(7, 3), &state(7)).unwrap();
    let file = fs::read(tmp.path().join(snapshot_file_name(LogIndex(7), Term(3)))).unwrap();
    assert_eq!(file, encode_snapshot_image(&meta(7, 3), &state(7)));
    assert_eq!(decode_snapshot_image(&file), Ok(snapshot(7, 3)));
    let empty = Snapshot { meta: SnapshotMeta { config: vec![], ..meta(1, 1) }, data: vec![] };
    assert_eq!(decode_snapshot_image(&encode_snapshot_image(&empty.meta, &empty.data)), Ok(empty));
}

#[test]
fn every_cut_extension_and_flipped_bit_of_an_image_is_refused() {
    let good = encode_snapshot_image(&meta(3, 1), b"kv");
    for len in 0..good.len() {
        let err = decode_snapshot_image(&good[..len]).unwrap_err();
        assert!(err.starts_with("snapshot image at byte "), "{err}");
    }
    let mut long = good.clone();
    long.push(0);
    assert!(decode_snapshot_image(&long).unwrap_err().contains("at byte 25"));
    for bit in 0..good.len() * 8 {
        let mut bad = good.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(decode_snapshot_image(&bad).is_err(), "bit {bit}");
    }
}

#[test]
fn decoding_garbage_never_panics() {
    // Headers that claim huge or overflowing lengths, and pseudo-random bytes.
    let mut header = encode_snapshot_image(&meta(3, 1), b"")[..SNAPSHOT_HEADER_LEN].to_vec();
    header[25..33].copy_from_slice(&u64::MAX.to_le_bytes());
    header.extend_from_slice(&[0; 4]);
    assert!(decode_snapshot_image(&header).unwrap_err().contains("do not add up"));
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for len in [0, 1, 36, 37, 38, 100, 1000] {
        for _ in 0..50 {
            let mut bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            if len >= 5 {
                bytes[..5].copy_from_slice(b"LDSN\x01"); // past the magic, into the lengths
            }
            assert!(decode_snapshot_image(&bytes).is_err());
        }
    }
}
