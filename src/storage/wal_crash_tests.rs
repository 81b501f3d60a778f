//! Crash and damage tests of WAL format 2: every flipped bit of a synced byte is detected,
//! every torn, zeroed, reordered or garbage unsynced tail restarts with every synced entry,
//! a version 1 directory is refused with instructions, and the layout is the documented one.

use std::fs;
use std::path::Path;

use super::record::{self, Marker, MARKER_RECORD_LEN};
use super::segment::{encode_header, SEGMENT_HEADER_LEN};
use super::wal_tests::{corrupt, entries, entry, record_len, reopen, segment_firsts, segment_path, TINY};
use super::*;
use crate::core::{Entry, LogIndex, Term};

/// The segment files of the data directory `dir`: (first index, bytes), in order.
fn read_segments(dir: &Path) -> Vec<(u64, Vec<u8>)> {
    segment_firsts(dir).into_iter().map(|first| (first, fs::read(segment_path(dir, first)).unwrap())).collect()
}

/// Makes the WAL of `dir` hold exactly `segments`.
fn write_segments(dir: &Path, segments: &[(u64, Vec<u8>)]) {
    let wal = dir.join(WAL_DIR);
    let _ = fs::remove_dir_all(&wal);
    fs::create_dir_all(&wal).unwrap();
    for (first, bytes) in segments {
        fs::write(segment_path(dir, *first), bytes).unwrap();
    }
}

#[test]
fn every_flipped_bit_of_a_synced_byte_is_detected() {
    // Four sync batches of three entries, over several segments (sealed ones included).
    let tmp = tempfile::tempdir().unwrap();
    let options = WalOptions { segment_bytes_max: 250 };
    let mut storage = DiskStorage::open_with(tmp.path(), options).unwrap();
    let mut log = Vec::new();
    for batch in 0..4u64 {
        let batch: Vec<Entry> = (1..=3).map(|i| entry(batch * 3 + i, 1 + batch / 2, (i * 5) as usize)).collect();
        storage.append(&batch).unwrap();
        storage.sync().unwrap();
        log.extend(batch);
    }
    drop(storage);
    let good = read_segments(tmp.path());
    assert!(good.len() >= 2, "several segments: {:?}", good.iter().map(|s| s.0).collect::<Vec<_>>());
    let total: usize = good.iter().map(|(_, bytes)| bytes.len()).sum();
    assert!(total < 1024, "{total} bytes");

    let case = tempfile::tempdir().unwrap();
    let (mut detected, mut harmless) = (0, 0);
    for (k, (first, bytes)) in good.iter().enumerate() {
        let path = segment_path(case.path(), *first);
        // Only the marker written after the final sync was never synced itself.
        let unsynced_from = if k + 1 == good.len() { bytes.len() - MARKER_RECORD_LEN } else { bytes.len() };
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = good.clone();
                damaged[k].1[at] ^= 1 << bit;
                write_segments(case.path(), &damaged);
                let context = format!("segment {first}, byte {at}, bit {bit}");
                match reopen(case.path()) {
                    Err(StorageError::Corrupt { path: bad, offset, detail }) => {
                        assert_eq!(bad, path, "{context}: {detail}");
                        // A record is reported at its start, a header at the field checked.
                        let limit = if at < SEGMENT_HEADER_LEN { SEGMENT_HEADER_LEN - 1 } else { at };
                        assert!(offset <= limit as u64, "{context}: reported at {offset}: {detail}");
                        detected += 1;
                    }
                    Ok(recovered) if at >= unsynced_from => {
                        assert_eq!(recovered, log, "{context}");
                        harmless += 1;
                    }
                    other => panic!("{context}: {other:?}"),
                }
            }
        }
    }
    assert_eq!(harmless, MARKER_RECORD_LEN * 8);
    assert_eq!(detected + harmless, total * 8);
}

/// A log of two synced batches followed by a third that was written (handed to the kernel)
/// but not synced: returns (synced entries, unsynced entries, the segment as the kernel had
/// it, where the synced part ends). The unsynced batch spans several pages.
fn synced_then_unsynced(dir: &Path) -> (Vec<Entry>, Vec<Entry>, Vec<u8>, usize) {
    let synced: Vec<Entry> = (1..=6).map(|i| entry(i, 1, 40)).collect();
    let unsynced: Vec<Entry> = (7..=12).map(|i| entry(i, 2, 1500)).collect();
    let mut storage = DiskStorage::open(dir).unwrap();
    storage.append(&synced[..3]).unwrap();
    storage.sync().unwrap();
    storage.append(&synced[3..]).unwrap();
    storage.sync().unwrap();
    let durable = storage.wal.durable_tail().unwrap().1 as usize;
    storage.append(&unsynced).unwrap();
    // The kernel's view after a write(2) without an fdatasync: the third batch's records
    // (a sync would add only a marker after them, which the crash never let it write).
    storage.sync().unwrap();
    drop(storage);
    let mut file = fs::read(segment_path(dir, 1)).unwrap();
    file.truncate(file.len() - MARKER_RECORD_LEN);
    assert_eq!(file.len() - durable, MARKER_RECORD_LEN + unsynced.iter().map(record_len).sum::<u64>() as usize);
    (synced, unsynced, file, durable)
}

#[test]
fn zeroed_garbage_reordered_and_partial_unsynced_tails_keep_every_synced_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let (synced, unsynced, written, durable) = synced_then_unsynced(tmp.path());
    let page = 4096;
    assert!(written.len() > durable + 2 * page, "the unsynced part spans pages");
    let first_page_end = (durable / page + 1) * page;
    let mut noise = 0x9e37_79b9_7f4a_7c15u64;
    let mut garbage = || {
        noise ^= noise << 13;
        noise ^= noise >> 7;
        noise ^= noise << 17;
        noise as u8
    };
    let mut shapes: Vec<(&str, Vec<u8>)> = Vec::new();
    let zeroed = |from: usize, to: usize| {
        let mut bytes = written.clone();
        bytes[from..to].fill(0);
        bytes
    };
    shapes.push(("zeroed", zeroed(durable, written.len())));
    let mut extended = zeroed(durable, written.len());
    extended.resize(written.len() + 3 * page, 0);
    shapes.push(("zeroed beyond the written length (preallocation)", extended));
    let mut random = written.clone();
    random[durable..].iter_mut().for_each(|b| *b = garbage());
    shapes.push(("garbage", random));
    shapes.push(("first page zeroed, later pages kept", zeroed(durable, first_page_end)));
    shapes.push(("marker kept, next page zeroed, later kept", zeroed(first_page_end, first_page_end + page)));
    shapes.push(("later pages zeroed", zeroed(first_page_end, written.len())));
    shapes.push(("partial record", written[..written.len() - 700].to_vec()));
    shapes.push(("partial marker", written[..durable + 20].to_vec()));
    shapes.push(("as written", written.clone()));

    for (shape, bytes) in shapes {
        fs::write(segment_path(tmp.path(), 1), &bytes).unwrap();
        let recovered = reopen(tmp.path()).unwrap_or_else(|err| panic!("{shape}: {err}"));
        assert!(recovered.len() >= synced.len(), "{shape}: {} entries", recovered.len());
        assert_eq!(recovered[..synced.len()], synced[..], "{shape}");
        assert_eq!(recovered[synced.len()..], unsynced[..recovered.len() - synced.len()], "{shape}");
        if shape == "as written" {
            assert_eq!(recovered.len(), 12, "nothing torn, nothing lost");
        }

        // The tail was cut durably: appending, syncing and reopening works.
        let mut storage = DiskStorage::open(tmp.path()).unwrap();
        assert_eq!(storage.take_entries(), recovered, "{shape}: a second open changes nothing");
        let next = entry(recovered.len() as u64 + 1, 3, 9);
        storage.append(std::slice::from_ref(&next)).unwrap();
        storage.sync().unwrap();
        drop(storage);
        let mut expected = recovered.clone();
        expected.push(next);
        assert_eq!(reopen(tmp.path()).unwrap(), expected, "{shape}");
    }
}

#[test]
fn damage_before_a_marker_in_an_unsynced_region_is_still_corruption() {
    // Synced bytes of the second batch damaged while the tail is zeros: the marker of the
    // second sync, in the unsynced region, proves the second batch was synced.
    let tmp = tempfile::tempdir().unwrap();
    let (synced, _, written, durable) = synced_then_unsynced(tmp.path());
    let fourth = SEGMENT_HEADER_LEN + synced[..3].iter().map(record_len).sum::<u64>() as usize + MARKER_RECORD_LEN;
    let mut bytes = written.clone();
    bytes[fourth + 12] ^= 0x10;
    bytes[durable + MARKER_RECORD_LEN..].fill(0);
    fs::write(segment_path(tmp.path(), 1), &bytes).unwrap();
    let (path, offset, detail) = corrupt(reopen(tmp.path()));
    assert_eq!((path, offset), (segment_path(tmp.path(), 1), fourth as u64), "{detail}");
    assert!(detail.contains("checksum mismatch"), "{detail}");
    assert!(detail.contains(&format!("sync marker at byte {durable}")), "{detail}");
}

#[test]
fn a_version_1_segment_is_refused_with_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    // A version 1 header, by hand: magic, version 1, first index 1, CRC of bytes 0..13; then
    // a version 1 record (len, CRC of the payload, term, index, data length, data).
    let mut v1 = b"LDWL\x01".to_vec();
    v1.extend_from_slice(&1u64.to_le_bytes());
    let crc = crc32fast::hash(&v1);
    v1.extend_from_slice(&crc.to_le_bytes());
    let payload = [2u64.to_le_bytes(), 1u64.to_le_bytes(), 1u64.to_le_bytes()].concat();
    let payload = [&payload[..], b"x"].concat();
    v1.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v1.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    v1.extend_from_slice(&payload);
    fs::create_dir_all(tmp.path().join(WAL_DIR)).unwrap();
    let path = segment_path(tmp.path(), 1);
    fs::write(&path, &v1).unwrap();

    let err = DiskStorage::open(tmp.path()).unwrap_err();
    match &err {
        StorageError::UnsupportedVersion { path: bad, found: 1, supported: 2 } => assert_eq!(bad, &path),
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
    let message = err.to_string();
    for needle in [
        format!("{} is in WAL format version 1", path.display()),
        "this build reads only WAL format 2".to_string(),
        "start the build that wrote it".to_string(),
        format!("remove {}", tmp.path().join(WAL_DIR).display()),
        "keep the hardstate file".to_string(),
    ] {
        assert!(message.contains(&needle), "{needle:?} not in {message:?}");
    }
    assert_eq!(fs::read(&path).unwrap(), v1, "a refused segment is left untouched");
}

#[test]
fn a_leftover_segment_being_created_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    DiskStorage::open(tmp.path()).unwrap().append(&entries(1, 3, 1)).unwrap();
    let leftover = tmp.path().join(WAL_DIR).join("00000000000000000004.seg.tmp");
    fs::write(&leftover, &encode_header(LogIndex(4))[..9]).unwrap();
    let mut storage = DiskStorage::open(tmp.path()).unwrap();
    assert!(!leftover.exists());
    storage.append(&entries(1, 2, 1)).unwrap();
    storage.sync().unwrap();
    drop(storage);
    assert_eq!(reopen(tmp.path()).unwrap(), entries(1, 2, 1));
}

#[test]
fn a_sync_with_nothing_new_writes_no_marker() {
    let tmp = tempfile::tempdir().unwrap();
    let mut storage = DiskStorage::open_with(tmp.path(), TINY).unwrap();
    storage.append(&entries(1, 2, 1)).unwrap();
    storage.sync().unwrap();
    let len = fs::metadata(segment_path(tmp.path(), 1)).unwrap().len();
    storage.sync().unwrap();
    storage.sync().unwrap();
    assert_eq!(fs::metadata(segment_path(tmp.path(), 1)).unwrap().len(), len);
    storage.append(&entries(3, 3, 1)).unwrap();
    storage.sync().unwrap();
    let grown = fs::metadata(segment_path(tmp.path(), 1)).unwrap().len();
    assert_eq!(grown, len + record_len(&entries(3, 3, 1)[0]) + MARKER_RECORD_LEN as u64);
}

/// The hex bytes of the lines labelled `label:` (and their indented continuation lines) in
/// the first code block after `heading` in docs/storage.md.
fn doc_example(doc: &str, heading: &str, label: &str) -> Vec<u8> {
    let after = &doc[doc.find(heading).unwrap_or_else(|| panic!("{heading:?} not in docs/storage.md"))..];
    let block = after.split("```").nth(1).expect("a code block after the heading");
    let mut bytes = Vec::new();
    let mut inside = false;
    for line in block.lines() {
        if let Some(rest) = line.strip_prefix(&format!("{label}:")) {
            inside = true;
            bytes.extend(hex(rest));
        } else if inside && line.starts_with(' ') {
            bytes.extend(hex(line));
        } else {
            inside = false;
        }
    }
    assert!(!bytes.is_empty(), "no {label:?} line in the example");
    bytes
}

fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace().map(|pair| u8::from_str_radix(pair, 16).expect("hex byte")).collect()
}

#[test]
fn the_segment_example_in_docs_storage_md_is_what_the_writer_writes() {
    let doc = include_str!("../../docs/storage.md");
    let heading = "Example: a new log's first segment";
    let header = doc_example(doc, heading, "header");
    let entry_record = doc_example(doc, heading, "entry");
    let marker = doc_example(doc, heading, "marker");
    assert_eq!(header, encode_header(LogIndex(1)));
    let x = Entry { term: Term(2), index: LogIndex(1), data: b"x".to_vec() };
    let mut expected = Vec::new();
    record::encode(&x, &mut expected);
    assert_eq!(entry_record, expected, "{expected:02x?}");
    expected.clear();
    let claim = Marker { first_index: LogIndex(1), synced_through: 17 + 26, last_index: LogIndex(1) };
    record::encode_marker(&claim, &mut expected);
    assert_eq!(marker, expected, "{expected:02x?}");

    // And that is the whole file after appending the entry and syncing.
    let tmp = tempfile::tempdir().unwrap();
    let mut storage = DiskStorage::open(tmp.path()).unwrap();
    storage.append(&[x]).unwrap();
    storage.sync().unwrap();
    drop(storage);
    assert_eq!(fs::read(segment_path(tmp.path(), 1)).unwrap(), [header, entry_record, marker].concat());
}

#[test]
fn entries_kept_by_a_truncation_stay_claimed_by_a_marker() {
    // Entries 7 and 8 were claimed by the second sync's marker, which the cut at entry 9
    // removes; the truncation writes a new marker, so damage to them is still corruption
    // rather than taken for a torn tail (no sync follows here).
    let tmp = tempfile::tempdir().unwrap();
    let log = entries(1, 9, 1);
    let mut storage = DiskStorage::open(tmp.path()).unwrap();
    storage.append(&log[..6]).unwrap();
    storage.sync().unwrap();
    storage.append(&log[6..]).unwrap();
    storage.sync().unwrap();
    storage.truncate_from(LogIndex(9)).unwrap();
    drop(storage);
    let path = segment_path(tmp.path(), 1);
    let good = fs::read(&path).unwrap();
    let eighth = SEGMENT_HEADER_LEN as u64 + log[..7].iter().map(record_len).sum::<u64>() + MARKER_RECORD_LEN as u64;
    assert_eq!(good.len() as u64, eighth + record_len(&log[7]) + MARKER_RECORD_LEN as u64);
    let mut bad = good.clone();
    bad[eighth as usize + 10] ^= 1;
    fs::write(&path, &bad).unwrap();
    assert_eq!(corrupt(reopen(tmp.path())).1, eighth);
    fs::write(&path, &good).unwrap();
    assert_eq!(reopen(tmp.path()).unwrap(), log[..8]);
}
