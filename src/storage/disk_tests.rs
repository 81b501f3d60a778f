//! DiskStorage's hard state: save, reopen, damage, leftovers, locking, fail-stop.
use super::*;
use crate::core::{LogIndex, NodeId, Term};
use std::fs;

fn voted(term: u64, vote: Option<u64>, commit: u64) -> HardState {
    HardState { current_term: Term(term), voted_for: vote.map(NodeId), commit_index: LogIndex(commit) }
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
    assert!(matches!(&err, StorageError::Locked { dir } if dir == tmp.path()), "{err:?}");
    assert!(err.to_string().contains(&tmp.path().display().to_string()), "{err}");
    drop(first);
    DiskStorage::open(tmp.path()).unwrap();
}

#[test]
fn every_single_flipped_bit_is_refused_at_its_field() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(HARD_STATE_FILE);
    DiskStorage::open(tmp.path()).unwrap().save_hard_state(&voted(3, Some(1), 2)).unwrap();
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
        assert_eq!(corrupt_offset(DiskStorage::open(tmp.path()), &file), expected, "bit {bit}");
    }
}

#[test]
fn a_file_of_any_other_length_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(HARD_STATE_FILE);
    DiskStorage::open(tmp.path()).unwrap().save_hard_state(&voted(3, Some(1), 2)).unwrap();
    let good = fs::read(&file).unwrap();

    // Length 0 included: the rename is atomic, so even an empty file means damage.
    for len in 0..HARD_STATE_LEN {
        fs::write(&file, &good[..len]).unwrap();
        assert_eq!(corrupt_offset(DiskStorage::open(tmp.path()), &file), 0, "length {len}");
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
    DiskStorage::open(tmp.path()).unwrap().save_hard_state(&saved).unwrap();
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
    assert!(matches!(err, StorageError::Io { op: "create", .. }), "{err:?}");
    assert_eq!(storage.hard_state(), HardState::default());

    fs::create_dir(&dir).unwrap();
    let err = storage.save_hard_state(&voted(1, None, 0)).unwrap_err();
    assert!(matches!(err, StorageError::Io { op: "save", .. }), "{err:?}");
    assert!(!dir.join(HARD_STATE_FILE).exists());
}
