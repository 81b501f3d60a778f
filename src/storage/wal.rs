//! The write-ahead log: a directory of segment files (segment.rs) holding checksummed
//! records (record.rs), with group commit, truncation and crash recovery.
//!
//! Raft needs the log entries a server acknowledges to survive a crash, like its vote
//! (Figure 2, "Persistent state on all servers"; thesis §3.8). The runtime appends a batch,
//! calls [`Wal::sync`] once (one write(2), one fdatasync: group commit), and only then sends
//! the acknowledgements. docs/storage.md specifies the format and the recovery rules.
//!
//! Invariants that keep recovery simple ("only the newest segment can end in a torn write",
//! "the segments always chain", "a valid sync marker tells the truth"):
//! - A segment is made durable (fdatasync) before the next one is created, and a segment file
//!   gets its name only with a durable header, the name itself fsynced (segment::create).
//! - A sync marker claiming "durable through X" is written only once bytes `..X` are durable:
//!   right after an fdatasync, after a durable truncation, or at open after an fdatasync.
//! - A truncation that touches bytes already written is made durable before it returns, and
//!   before anything is written after it; so an interrupted overwrite can never leave old
//!   records behind new ones, and a removed segment can never reappear behind a gap.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::error::io_error;
use super::hard_state::sync_dir;
use super::install::log_continues_snapshot;
use super::record::{self, Marker};
use super::scan::{self, Expect, RecordPos};
use super::segment::{self, SEGMENT_HEADER_LEN};
use super::{assert_continues, StorageError};
use crate::core::{Entry, LogIndex, Term};

/// Default [`WalOptions::segment_bytes_max`]: 16 MiB. Compaction deletes whole segments, so
/// the log on disk is what the snapshot policy keeps plus up to two segments: 16 MiB keeps that
/// within the snapshot policy's 64 MiB trigger, and a rotation (one fsync, one file) about once a
/// second at full load is negligible.
pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 16 << 20;

/// Appends are buffered in memory up to this many bytes, then written with one write(2).
/// Why 1 MiB: large enough that a typical batch costs one system call, small enough that the
/// buffer does not hold up memory or delay the fdatasync that must follow anyway.
const WRITE_BUFFER_BYTES_MAX: usize = 1 << 20;

/// Tunables of the write-ahead log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// A new segment file is started before an append once the current one holds at least
    /// this many bytes (header included), so a segment is at most this plus one record and
    /// one sync marker. Smaller segments make truncations and (later) compaction cheaper,
    /// larger ones mean fewer files; tests use tiny values to cross segment boundaries often.
    pub segment_bytes_max: u64,
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions { segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT }
    }
}

/// A segment as the log keeps it in memory: where each of its records starts.
#[derive(Debug)]
struct Segment {
    first_index: LogIndex,
    path: PathBuf,
    /// One per entry, in order: entry `first_index + i` is at `records[i]`.
    records: Vec<RecordPos>,
    /// Logical length: header plus records, including bytes still in the write buffer.
    len: u64,
}

/// The write-ahead log in `<data dir>/wal/`.
pub(super) struct Wal {
    dir: PathBuf,
    options: WalOptions,
    /// In log order; the segments always chain (each starts right after the previous ends).
    segments: Vec<Segment>,
    /// Open handle of the last segment, the only one ever written.
    active: Option<File>,
    /// Bytes of the last segment not yet handed to write(2).
    pending: Vec<u8>,
    /// Bytes of the last segment already written to its file.
    written_len: u64,
    last_index: LogIndex,
    last_term: Term,
    /// Index and term of the latest snapshot's last entry ((0, 0) without one): the log
    /// continues it, so an empty log ends there, and no truncation may reach into it.
    base: (LogIndex, Term),
    /// The log as recovered at open (the entries after `base`), until the runtime takes it.
    recovered: Vec<Entry>,
    /// End of the last sync marker in the last segment (its header's end if none). A sync
    /// with nothing after it has nothing to do: no fdatasync, no new marker.
    marked_end: u64,
    /// Bytes of the last segment known durable (fdatasync or a durable truncation returned).
    /// A marker never claims more (asserted); tests tear the bytes after it.
    durable_len: u64,
    /// Entries and bytes appended since the last sync, for the debug log line.
    unsynced_entries: u64,
    unsynced_bytes: u64,
    /// Set by any failed write or sync: every later write is refused (fail-stop; a retried
    /// fsync can report success for pages the kernel already dropped).
    failed: bool,
}

impl fmt::Debug for Wal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not derived: the buffer and the recovered entries can be megabytes.
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .field("last_index", &self.last_index)
            .field("last_term", &self.last_term)
            .field("pending_bytes", &self.pending.len())
            .field("failed", &self.failed)
            .finish()
    }
}

impl Wal {
    /// Opens the log in `dir` (which must exist) next to the latest snapshot ending at `base`
    /// ((0, 0) without one): recovers every segment, truncating a torn tail of the last one,
    /// and refuses ([`StorageError::Corrupt`]) damage anywhere else. With a snapshot, a log
    /// that no longer continues it (§7, [`log_continues_snapshot`]) is discarded durably.
    pub(super) fn open(dir: &Path, options: WalOptions, base: (LogIndex, Term)) -> Result<Wal, StorageError> {
        let mut wal = Wal {
            dir: dir.to_path_buf(),
            options,
            segments: Vec::new(),
            active: None,
            pending: Vec::new(),
            written_len: 0,
            last_index: base.0,
            last_term: base.1,
            base,
            recovered: Vec::new(),
            marked_end: SEGMENT_HEADER_LEN as u64,
            durable_len: SEGMENT_HEADER_LEN as u64,
            unsynced_entries: 0,
            unsynced_bytes: 0,
            failed: false,
        };
        wal.recover()?;
        if let Some(last) = wal.segments.last() {
            wal.active = Some(segment::open_append(&last.path)?);
            wal.written_len = last.len;
            // The runtime treats everything recovered as durable, but unsynced records may
            // have survived a process crash in the page cache only: make them durable (one
            // fdatasync per open). If no marker claims them (the last sync's marker was
            // lost), write one, so that later damage to them is reported, not cut off.
            let needs_marker = last.len > wal.marked_end;
            wal.sync_active()?;
            if needs_marker {
                wal.write_marker()?;
            }
        }
        log::debug!(
            "opened log {} with {} segments, entries {}..={} after the snapshot at {}",
            dir.display(),
            wal.segments.len(),
            wal.base.0 .0 + 1,
            wal.last_index,
            wal.base.0
        );
        Ok(wal)
    }

    /// Reads every segment in order (the recovery rules of docs/storage.md).
    fn recover(&mut self) -> Result<(), StorageError> {
        let listing = segment::list(&self.dir)?;
        for leftover in &listing.leftovers {
            // A segment whose creation was interrupted before its rename: it never had a
            // name in the log, so it never held an entry. Removed only now, under the lock.
            log::info!("removing {}: a segment whose creation was interrupted", leftover.display());
            segment::remove(leftover)?;
        }
        if !listing.leftovers.is_empty() {
            sync_dir(&self.dir)?;
        }
        let files = &listing.segments;
        let base_index = self.base.0;
        for (k, (named, path)) in files.iter().enumerate() {
            let mut next_index = LogIndex(self.last_index.0 + 1);
            let mut last_term = self.last_term;
            if k == 0 {
                // Without a snapshot the log starts at 1 (the scan refuses anything else).
                // With one, compaction deleted the segments whose entries it covers, so the
                // first may start anywhere up to right after it; entries below it may have
                // any (non-decreasing) term.
                next_index = LogIndex(1);
                last_term = Term(0);
                if base_index.0 > 0 {
                    if *named == LogIndex(0) || named.0 > base_index.0 + 1 {
                        return Err(StorageError::Corrupt {
                            path: path.clone(),
                            offset: super::segment::OFFSET_FIRST_INDEX as u64,
                            detail: format!(
                                "the first segment starts at index {named}, but the snapshot ends at index {base_index}: entries {}..{named} are missing",
                                base_index.0 + 1
                            ),
                        });
                    }
                    next_index = *named;
                }
            }
            if let Some(previous) = self.segments.last() {
                // A gap: entries between the two files are missing. The older file is the
                // one that lost them (or a file between them is gone), so name it.
                if *named > next_index {
                    return Err(StorageError::Corrupt {
                        path: previous.path.clone(),
                        offset: previous.len,
                        detail: format!(
                            "segment ends at index {}, but the next segment {} starts at {named}: entries are missing",
                            self.last_index,
                            path.display()
                        ),
                    });
                }
            }
            let expect = Expect { next_index, last_term, is_last: k + 1 == files.len() };
            let scanned = scan::scan(path, *named, expect)?;
            if let Some(reason) = &scanned.torn {
                // Only bytes that no sync covered: no valid marker claims anything past them.
                log::warn!(
                    "truncating torn tail of {} at byte {} ({} bytes dropped): {reason}",
                    path.display(),
                    scanned.valid_len,
                    scanned.file_len - scanned.valid_len
                );
                segment::truncate_durably(path, scanned.valid_len)?;
            }
            if let Some(last) = scanned.positions.last() {
                self.last_term = last.term;
            }
            self.last_index = LogIndex(scanned.first_index.0 + scanned.entries.len() as u64 - 1);
            self.marked_end = scanned.marked_end;
            // Entries the snapshot covers are not the log's any more; their segments stay
            // until the next compaction.
            self.recovered.extend(scanned.entries.into_iter().filter(|entry| entry.index > base_index));
            self.segments.push(Segment {
                first_index: scanned.first_index,
                path: path.clone(),
                records: scanned.positions,
                len: scanned.valid_len,
            });
        }
        if base_index.0 > 0 {
            self.recover_against_snapshot()?;
        }
        Ok(())
    }

    /// §7 at recovery: keeps the log if it continues the snapshot, else discards it durably
    /// (a crash between an install's snapshot rename and its log discard left the old log).
    fn recover_against_snapshot(&mut self) -> Result<(), StorageError> {
        let (base_index, base_term) = self.base;
        let Some(first) = self.segments.first() else {
            // No log at all: it is empty, ending at the snapshot.
            return Ok(());
        };
        let term_at_base = self.term_at(base_index);
        if !log_continues_snapshot(first.first_index, term_at_base, base_index, base_term) {
            log::warn!(
                "discarding the log in {} (entries {}..={}): it does not continue the snapshot at index {base_index} term {base_term} ({}, and it does not start at {}). A crash between installing that snapshot and discarding the log left it (§7)",
                self.dir.display(),
                first.first_index,
                self.last_index,
                match term_at_base {
                    Some(term) => format!("its entry {base_index} has term {term}"),
                    None => format!("it does not hold entry {base_index}"),
                },
                base_index.0 + 1
            );
            return self.discard_segments();
        }
        if term_at_base.is_none() {
            // The log starts right after the snapshot: it was appended after an install
            // (assert_continues checked it against the snapshot's term), so a lower term
            // is damage, not a leftover.
            if let Some(record) = first.records.first().filter(|record| record.term < base_term) {
                return Err(StorageError::Corrupt {
                    path: first.path.clone(),
                    offset: record.offset,
                    detail: format!(
                        "entry {} has term {}, lower than the term {base_term} of the snapshot it follows (§5.3: terms never decrease along the log)",
                        first.first_index, record.term
                    ),
                });
            }
        }
        Ok(())
    }

    /// Term of the entry at `index`, if the log (what its segments still hold, entries the
    /// snapshot covers included) has it.
    pub(super) fn term_at(&self, index: LogIndex) -> Option<Term> {
        let k = self.segments.partition_point(|segment| segment.first_index <= index).checked_sub(1)?;
        let segment = &self.segments[k];
        segment.records.get((index.0 - segment.first_index.0) as usize).map(|record| record.term)
    }

    /// First index of the oldest segment still on disk, if any (for tests).
    #[cfg(test)]
    pub(super) fn first_segment_index(&self) -> Option<LogIndex> {
        self.segments.first().map(|segment| segment.first_index)
    }

    /// The log recovered at open (entries `1..=last`); empty after the first call.
    pub(super) fn take_entries(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.recovered)
    }

    /// The last segment and how many of its bytes are known durable: a power loss may tear
    /// or reorder anything after that (the property test does).
    #[cfg(test)]
    pub(super) fn durable_tail(&self) -> Option<(PathBuf, u64)> {
        self.segments.last().map(|last| (last.path.clone(), self.durable_len))
    }

    /// Index of the last entry appended, synced or not.
    pub(super) fn last_index(&self) -> LogIndex {
        self.last_index
    }

    /// Refuses any write after a failed one (fail-stop).
    fn check_not_failed(&self, op: &'static str) -> Result<(), StorageError> {
        if self.failed {
            return Err(StorageError::Io {
                path: self.dir.clone(),
                op,
                source: io::Error::other("an earlier write failed; storage is fail-stop and never retries"),
            });
        }
        Ok(())
    }

    /// Records a failure so that every later write is refused.
    fn fail_stop<T>(&mut self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Appends `entries` to the write buffer (written out when it exceeds 1 MiB, durable
    /// only after [`Wal::sync`]).
    ///
    /// # Panics
    ///
    /// If the entries do not continue the log: `entries[0].index` must be `last_index + 1`,
    /// indexes contiguous, terms never decreasing (§5.3). These are checked before any byte
    /// is written: a log with a hole would be refused at the next start.
    pub(super) fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.check_not_failed("append")?;
        assert_continues(self.last_index, self.last_term, entries);
        let result = entries.iter().try_for_each(|entry| self.append_one(entry));
        self.fail_stop(result)
    }

    fn append_one(&mut self, entry: &Entry) -> Result<(), StorageError> {
        let rotate = match self.segments.last() {
            None => true,
            Some(last) => !last.records.is_empty() && last.len >= self.options.segment_bytes_max,
        };
        if rotate {
            self.start_segment(entry.index)?;
        }
        let segment = self.segments.last_mut().expect("a segment was just ensured");
        let offset = segment.len;
        let record_len = record::encode(entry, &mut self.pending) as u64;
        segment.records.push(RecordPos { offset, term: entry.term });
        segment.len += record_len;
        self.last_index = entry.index;
        self.last_term = entry.term;
        self.unsynced_entries += 1;
        self.unsynced_bytes += record_len;
        if self.pending.len() >= WRITE_BUFFER_BYTES_MAX {
            self.flush()?;
        }
        Ok(())
    }

    /// Starts the segment whose first entry is `first_index`. The current one is made
    /// durable first, so that only the newest segment can ever end in a torn write: that is
    /// what lets recovery call damage in any older segment corruption.
    fn start_segment(&mut self, first_index: LogIndex) -> Result<(), StorageError> {
        if let Some(previous) = self.segments.last() {
            let path = previous.path.clone();
            let len = previous.len;
            self.flush()?;
            self.sync_active()?;
            log::info!(
                "starting log segment {} after {} reached {len} bytes",
                segment::file_name(first_index),
                path.display()
            );
        }
        let (path, file) = segment::create(&self.dir, first_index)?;
        self.active = Some(file);
        self.written_len = SEGMENT_HEADER_LEN as u64;
        self.marked_end = SEGMENT_HEADER_LEN as u64;
        self.durable_len = SEGMENT_HEADER_LEN as u64;
        self.segments.push(Segment { first_index, path, records: Vec::new(), len: SEGMENT_HEADER_LEN as u64 });
        Ok(())
    }

    /// Hands the write buffer to the kernel with one write(2) (not yet durable).
    fn flush(&mut self) -> Result<(), StorageError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let segment = self.segments.last().expect("buffered bytes belong to a segment");
        let file = self.active.as_mut().expect("the last segment is open");
        file.write_all(&self.pending).map_err(io_error(&segment.path, "write"))?;
        self.written_len += self.pending.len() as u64;
        debug_assert_eq!(self.written_len, segment.len);
        self.pending.clear();
        // One huge entry should not pin its size in memory for the life of the process.
        if self.pending.capacity() > 2 * WRITE_BUFFER_BYTES_MAX {
            self.pending = Vec::with_capacity(WRITE_BUFFER_BYTES_MAX);
        }
        Ok(())
    }

    /// fdatasync of the last segment: its data and its length (st_size is metadata that
    /// fdatasync must flush, since later reads depend on it).
    fn sync_active(&mut self) -> Result<(), StorageError> {
        if let (Some(file), Some(segment)) = (&self.active, self.segments.last()) {
            file.sync_data().map_err(io_error(&segment.path, "fdatasync"))?;
            self.durable_len = self.written_len;
        }
        Ok(())
    }

    /// Writes a sync marker at the end of the last segment, claiming that everything before
    /// it is durable. The caller must have made it so. The marker is handed to the kernel at
    /// once (one small write(2), no fsync): it then survives a process crash, and only a power
    /// loss before the next sync can lose it (the blind spot in docs/storage.md).
    fn write_marker(&mut self) -> Result<(), StorageError> {
        debug_assert!(self.pending.is_empty(), "a marker follows the records it covers");
        let segment = self.segments.last_mut().expect("a marker belongs to a segment");
        assert!(segment.len <= self.durable_len, "a sync marker must never claim bytes that are not durable");
        let marker = Marker {
            first_index: segment.first_index,
            synced_through: segment.len,
            last_index: LogIndex(segment.first_index.0 + segment.records.len() as u64 - 1),
        };
        segment.len += record::encode_marker(&marker, &mut self.pending) as u64;
        self.marked_end = segment.len;
        self.flush()
    }

    /// Makes every append and truncation so far durable: one write(2) of the buffer, one
    /// fdatasync, then a sync marker (docs/storage.md). New segment files were made durable,
    /// directory entry included, when they were created.
    pub(super) fn sync(&mut self) -> Result<(), StorageError> {
        self.check_not_failed("sync")?;
        if self.segments.last().is_none_or(|last| last.len <= self.marked_end) {
            // Nothing new since the last marker: the disk already holds all of it.
            return Ok(());
        }
        let started = Instant::now();
        let result = self.sync_inner();
        self.fail_stop(result)?;
        log::debug!(
            "synced log: {} entries, {} bytes, {:?}",
            self.unsynced_entries,
            self.unsynced_bytes,
            started.elapsed()
        );
        self.unsynced_entries = 0;
        self.unsynced_bytes = 0;
        Ok(())
    }

    fn sync_inner(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        self.sync_active()?;
        // Only after the fdatasync returned: a marker must never claim what is not durable.
        self.write_marker()
    }

    /// Removes every entry with index >= `from` (§5.3: a follower deletes a conflicting
    /// entry and all that follow it). `from` at or beyond `last_index + 1` changes nothing.
    pub(super) fn truncate_from(&mut self, from: LogIndex) -> Result<(), StorageError> {
        self.check_not_failed("truncate")?;
        // Index 0 is "no entry": removing from there is removing everything.
        let from = LogIndex(from.0.max(1));
        assert!(
            self.base.0 .0 == 0 || from > self.base.0,
            "truncate from index {from}, but entries up to {} are in a snapshot: committed, never in conflict (§5.4)",
            self.base.0
        );
        if from > self.last_index {
            return Ok(());
        }
        let keep = self.recovered.partition_point(|entry| entry.index < from);
        self.recovered.truncate(keep);
        let result = self.truncate_inner(from);
        self.fail_stop(result)
    }

    fn truncate_inner(&mut self, from: LogIndex) -> Result<(), StorageError> {
        let k = self.segments.partition_point(|s| s.first_index <= from) - 1;
        let first_index = self.segments[k].first_index;
        let offset = self.segments[k].records[(from.0 - first_index.0) as usize].offset;
        let is_last = k + 1 == self.segments.len();
        if is_last && from > first_index && offset >= self.written_len {
            // Everything removed is still in the buffer: the disk never saw it.
            self.pending.truncate((offset - self.written_len) as usize);
            let segment = &mut self.segments[k];
            segment.records.truncate((from.0 - first_index.0) as usize);
            segment.len = offset;
        } else {
            self.truncate_on_disk(k, from, offset)?;
        }
        self.last_index = LogIndex(from.0 - 1);
        // With no record left, the log ends at the snapshot (or is empty).
        self.last_term = self.segments.last().and_then(|s| s.records.last()).map_or(self.base.1, |r| r.term);
        log::debug!("truncated log from index {from}");
        Ok(())
    }

    /// Truncation of bytes already written: made durable step by step, so that a crash at
    /// any point leaves a log that recovers without error (a prefix of the old one).
    fn truncate_on_disk(&mut self, k: usize, from: LogIndex, offset: u64) -> Result<(), StorageError> {
        // Everything in the buffer lies after `from`.
        self.pending.clear();
        self.active = None;
        let keep = if from == self.segments[k].first_index { k } else { k + 1 };
        // Newest first, each removal durable before the next: at every instant the files on
        // disk are a prefix of the log, never two segments with a gap between them.
        while self.segments.len() > keep {
            let removed = self.segments.pop().expect("len > keep");
            segment::remove(&removed.path)?;
            sync_dir(&self.dir)?;
            log::info!("removed log segment {}", removed.path.display());
        }
        if keep == k + 1 {
            // Durable before anything new is written after it: otherwise an interrupted
            // overwrite could leave old records behind new ones, and recovery would find a
            // bad record in the middle of the segment.
            let segment = &mut self.segments[k];
            segment::truncate_durably(&segment.path, offset)?;
            segment.records.truncate((from.0 - segment.first_index.0) as usize);
            segment.len = offset;
        }
        if let Some(last) = self.segments.last() {
            self.active = Some(segment::open_append(&last.path)?);
            self.written_len = last.len;
            self.durable_len = last.len;
            // Everything left is durable (the cut fsynced the file; an older segment was
            // synced in full before the next was created), but the entries after the last
            // marker may have lost theirs: claim them again, so that damage to them is
            // reported rather than taken for a torn tail.
            self.write_marker()?;
        } else {
            self.written_len = 0;
        }
        Ok(())
    }
}

#[path = "wal_compact.rs"]
mod compact;
