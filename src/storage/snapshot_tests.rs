//! Snapshot files: layout, round trip, every corruption refused with the file named, crash
//! points of a save, and the refusal to fall back to an older snapshot.

use super::*;
use crate::storage::SnapshotStore;
use std::fs;

fn meta(index: u64, term: u64, config: &[u8]) -> SnapshotMeta {
    SnapshotMeta { last_index: LogIndex(index), last_term: Term(term), config: config.to_vec() }
}

/// A directory with one snapshot saved at (`index`, `term`); returns it and the file.
fn saved(index: u64, term: u64, data: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    SnapshotStore::open(tmp.path()).unwrap().save(&meta(index, term, b"1=tcp://a"), data).unwrap();
    let file = tmp.path().join(snapshot_file_name(LogIndex(index), Term(term)));
    (tmp, file)
}

/// The error of opening `dir`, which must be a refusal of `file`; returns (offset, older).
fn refused(dir: &Path, file: &Path) -> (u64, Option<PathBuf>) {
    match SnapshotStore::open(dir) {
        Err(StorageError::SnapshotRefused { path, offset, older, detail }) => {
            assert_eq!(path, file, "{detail}");
            (offset, older)
        }
        other => panic!("expected SnapshotRefused for {}, got {other:?}", file.display()),
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[test]
fn layout_matches_the_documented_table() {
    let (_tmp, file) = saved(0x0102, 7, b"state");
    assert_eq!(file.file_name().unwrap(), "snapshot-00000000000000000258-00000000000000000007.snap");
    let bytes = fs::read(&file).unwrap();
    let config = b"1=tcp://a";
    assert_eq!(bytes.len(), SNAPSHOT_HEADER_LEN + config.len() + 5 + 4);
    assert_eq!(&bytes[0..4], b"LDSN");
    assert_eq!(bytes[4], 1);
    assert_eq!(&bytes[5..13], &0x0102u64.to_le_bytes());
    assert_eq!(&bytes[13..21], &7u64.to_le_bytes());
    assert_eq!(&bytes[21..25], &(config.len() as u32).to_le_bytes());
    assert_eq!(&bytes[25..33], &5u64.to_le_bytes());
    assert_eq!(&bytes[33..42], config);
    assert_eq!(&bytes[42..47], b"state");
    assert_eq!(&bytes[47..], &crc32fast::hash(&bytes[..47]).to_le_bytes());
}

#[test]
fn a_saved_snapshot_is_read_back_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data/snap");
    let mut store = SnapshotStore::open(&dir).unwrap();
    assert_eq!(store.latest(), None);
    assert_eq!(store.take_snapshot(), None);
    store.save(&meta(10, 2, b"peers"), b"the state").unwrap();
    assert_eq!(store.latest(), Some(&meta(10, 2, b"peers")));
    assert_eq!(store.dir(), dir);
    drop(store);

    let mut store = SnapshotStore::open(&dir).unwrap();
    let expected = Snapshot { meta: meta(10, 2, b"peers"), data: b"the state".to_vec() };
    assert_eq!(store.latest_path(), Some(dir.join(snapshot_file_name(LogIndex(10), Term(2)))).as_deref());
    assert_eq!(store.take_snapshot(), Some(expected.clone()));
    assert_eq!(store.take_snapshot(), None, "moved out once");
    assert_eq!(store.latest(), Some(&expected.meta), "the metadata stays");
    assert_eq!(read_snapshot(store.latest_path().unwrap()).unwrap(), expected);

    // Empty configuration and empty state are valid.
    store.save(&meta(11, 2, b""), b"").unwrap();
    let mut store = SnapshotStore::open(&dir).unwrap();
    assert_eq!(store.take_snapshot(), Some(Snapshot { meta: meta(11, 2, b""), data: vec![] }));
}

#[test]
fn a_save_removes_the_older_snapshot_once_the_new_one_is_in_place() {
    let (tmp, first) = saved(5, 1, b"old");
    let mut store = SnapshotStore::open(tmp.path()).unwrap();
    store.save(&meta(9, 2, b"c"), b"new").unwrap();
    assert!(!first.exists());
    assert_eq!(names(tmp.path()), [snapshot_file_name(LogIndex(9), Term(2))]);
    // The same snapshot saved again replaces itself and removes nothing else.
    store.save(&meta(9, 2, b"c"), b"new").unwrap();
    assert_eq!(names(tmp.path()), [snapshot_file_name(LogIndex(9), Term(2))]);
}

#[test]
fn a_crash_before_the_cleanup_leaves_two_snapshots_and_open_keeps_the_newest() {
    let (tmp, old) = saved(5, 1, b"old");
    let old_bytes = fs::read(&old).unwrap();
    SnapshotStore::open(tmp.path()).unwrap().save(&meta(9, 2, b"c"), b"new").unwrap();
    fs::write(&old, &old_bytes).unwrap(); // as if the removal never happened

    let mut store = SnapshotStore::open(tmp.path()).unwrap();
    assert_eq!(store.take_snapshot().unwrap().data, b"new");
    assert!(!old.exists(), "open finishes the cleanup");
}

#[test]
fn a_crash_before_the_rename_leaves_the_old_snapshot_as_the_latest() {
    let (tmp, _) = saved(5, 1, b"old");
    // The new snapshot fully written to its temp file, or only half: never used, removed.
    let (_other, newer) = saved(9, 2, b"new");
    let tmp_file = tmp.path().join(format!("{}.tmp", snapshot_file_name(LogIndex(9), Term(2))));
    for content in [fs::read(&newer).unwrap(), b"LDSN\x01half".to_vec()] {
        fs::write(&tmp_file, content).unwrap();
        let mut store = SnapshotStore::open(tmp.path()).unwrap();
        assert_eq!(store.latest().unwrap().last_index, LogIndex(5));
        assert_eq!(store.take_snapshot().unwrap().data, b"old");
        assert!(!tmp_file.exists());
    }
}

#[test]
fn every_flipped_bit_is_refused_naming_the_file() {
    let (tmp, file) = saved(3, 1, b"kv");
    let good = fs::read(&file).unwrap();
    let crc_at = (good.len() - 4) as u64;
    for bit in 0..good.len() * 8 {
        let mut bytes = good.clone();
        bytes[bit / 8] ^= 1 << (bit % 8);
        fs::write(&file, &bytes).unwrap();
        // Magic, version and lengths are checked before the CRC; the CRC covers the rest.
        let expected = match bit / 8 {
            0..=3 => 0,
            4 => 4,
            21..=24 if bit % 8 >= 4 && bit / 8 == 23 || bit / 8 == 24 => 21, // length > limit
            21..=24 => 25,
            25..=32 => 25,
            _ => crc_at,
        };
        let (offset, older) = refused(tmp.path(), &file);
        assert_eq!(offset, expected, "bit {bit}");
        assert_eq!(older, None);
    }
    fs::write(&file, &good).unwrap();
    SnapshotStore::open(tmp.path()).unwrap();
}

#[test]
fn every_other_length_is_refused_naming_the_file() {
    let (tmp, file) = saved(3, 1, b"kv");
    let good = fs::read(&file).unwrap();
    for len in 0..good.len() {
        fs::write(&file, &good[..len]).unwrap();
        refused(tmp.path(), &file);
    }
    let mut long = good.clone();
    long.push(0);
    fs::write(&file, &long).unwrap();
    assert_eq!(refused(tmp.path(), &file).0, 25);
}

/// Rewrites a header field and fixes the checksum, so that the checks behind the CRC (and
/// the length checks, before any allocation) are reached.
fn patched(file: &Path, offset: usize, patch: &[u8]) {
    let mut bytes = fs::read(file).unwrap();
    bytes[offset..offset + patch.len()].copy_from_slice(patch);
    let end = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..end]);
    bytes[end..].copy_from_slice(&crc.to_le_bytes());
    fs::write(file, bytes).unwrap();
}

#[test]
fn lengths_are_checked_against_the_file_before_anything_is_allocated() {
    for (offset, patch, expected) in [
        (OFFSET_DATA_LEN, u64::MAX.to_le_bytes().to_vec(), 25),
        (OFFSET_DATA_LEN, (u64::MAX - 40).to_le_bytes().to_vec(), 25),
        (OFFSET_CONFIG_LEN, u32::MAX.to_le_bytes().to_vec(), 21),
        (OFFSET_CONFIG_LEN, ((SNAPSHOT_CONFIG_BYTES_MAX + 1) as u32).to_le_bytes().to_vec(), 21),
    ] {
        let (tmp, file) = saved(3, 1, b"kv");
        patched(&file, offset, &patch);
        assert_eq!(refused(tmp.path(), &file).0, expected);
    }
}

#[test]
fn values_the_checksum_cannot_vouch_for_are_checked_too() {
    for (offset, patch, reason) in [
        (OFFSET_INDEX, 0u64.to_le_bytes(), "last_index is 0"),
        (OFFSET_TERM, 0u64.to_le_bytes(), "last_term is 0"),
        (OFFSET_INDEX, 4u64.to_le_bytes(), "the file name says index 3"),
    ] {
        let (tmp, file) = saved(3, 1, b"kv");
        patched(&file, offset, &patch);
        let err = SnapshotStore::open(tmp.path()).unwrap_err();
        assert!(err.to_string().contains(reason), "{err}");
    }
}

#[test]
fn a_bad_newest_snapshot_is_refused_naming_both_files_and_nothing_is_removed() {
    let (tmp, old) = saved(5, 1, b"old");
    let old_bytes = fs::read(&old).unwrap();
    SnapshotStore::open(tmp.path()).unwrap().save(&meta(9, 2, b"c"), b"new").unwrap();
    fs::write(&old, &old_bytes).unwrap(); // a crash before the cleanup kept the old one
    let newest = tmp.path().join(snapshot_file_name(LogIndex(9), Term(2)));
    let mut bytes = fs::read(&newest).unwrap();
    bytes[40] ^= 0x10;
    fs::write(&newest, &bytes).unwrap();

    let (_, older) = refused(tmp.path(), &newest);
    assert_eq!(older.as_deref(), Some(old.as_path()));
    assert!(old.exists() && newest.exists(), "an operator decides; open removes nothing");
    let message = SnapshotStore::open(tmp.path()).unwrap_err().to_string();
    assert!(message.contains(&newest.display().to_string()), "{message}");
    assert!(message.contains(&old.display().to_string()), "{message}");
    assert!(message.contains("checksum mismatch"), "{message}");

    // Without an intact older one, the message says so by naming none.
    fs::write(&old, b"junk").unwrap();
    assert_eq!(refused(tmp.path(), &newest).1, None);
    let message = SnapshotStore::open(tmp.path()).unwrap_err().to_string();
    assert!(message.contains("healthy replica") && !message.contains("intact older"), "{message}");
}

#[test]
fn other_files_are_ignored() {
    let (tmp, _) = saved(5, 1, b"old");
    for name in ["notes.txt", "snapshot-5-1.snap", "snapshot-00000000000000000009-x.snap", "snapshot-.snap.tmp"] {
        fs::write(tmp.path().join(name), b"x").unwrap();
    }
    let mut store = SnapshotStore::open(tmp.path()).unwrap();
    assert_eq!(store.take_snapshot().unwrap().data, b"old");
    assert_eq!(names(tmp.path()).len(), 5);
}

#[test]
#[should_panic(expected = "never moves backwards")]
fn saving_an_older_snapshot_is_a_caller_bug() {
    let (tmp, _) = saved(5, 1, b"old");
    let _ = SnapshotStore::open(tmp.path()).unwrap().save(&meta(4, 1, b""), b"older");
}

#[test]
#[should_panic(expected = "never moves backwards")]
fn saving_the_same_index_with_another_term_is_a_caller_bug() {
    let (tmp, _) = saved(5, 1, b"old");
    let _ = SnapshotStore::open(tmp.path()).unwrap().save(&meta(5, 2, b""), b"other");
}

#[test]
fn after_a_failed_save_every_save_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    let mut store = SnapshotStore::open(&dir).unwrap();
    fs::remove_dir_all(&dir).unwrap();
    let err = store.save(&meta(1, 1, b""), b"x").unwrap_err();
    assert!(matches!(err, StorageError::Io { op: "create", .. }), "{err:?}");
    fs::create_dir(&dir).unwrap();
    let err = store.save(&meta(1, 1, b""), b"x").unwrap_err();
    assert!(matches!(err, StorageError::Io { op: "save snapshot", .. }), "{err:?}");
    assert!(names(&dir).is_empty());
}
