//! The write-ahead log's side of snapshots (§7): the base a log continues after an install,
//! discarding the whole log, and deleting the segments a snapshot covers. A child module of
//! wal.rs, so it works on the log's own state.

use super::super::hard_state::sync_dir;
use super::super::segment::{self, SEGMENT_HEADER_LEN};
use super::super::StorageError;
use super::Wal;
use crate::core::{LogIndex, Term};

impl Wal {
    /// Makes (`index`, `term`), the last entry of a snapshot just installed, the base the log
    /// continues; the log itself is kept (§7: it holds that entry, the caller checked).
    pub(in crate::storage) fn set_base(&mut self, index: LogIndex, term: Term) {
        self.base = (index, term);
    }

    /// Discards the whole log durably after a snapshot ending at (`index`, `term`) was made
    /// durable (§7: the log does not continue it). Afterwards the log is empty, ends at the
    /// snapshot, and the next append starts a segment at `index + 1`.
    pub(in crate::storage) fn discard(&mut self, index: LogIndex, term: Term) -> Result<(), StorageError> {
        self.check_not_failed("discard")?;
        self.base = (index, term);
        let result = self.discard_segments();
        self.fail_stop(result)
    }

    /// Removes every segment, newest first, each removal durable before the next: a crash in
    /// between leaves a prefix of the old log, which starts where it started and so still
    /// fails the §7 check at the next open (removing the oldest first could leave a suffix
    /// starting right after the snapshot, which the check would keep).
    pub(super) fn discard_segments(&mut self) -> Result<(), StorageError> {
        self.pending.clear();
        self.active = None;
        self.recovered.clear();
        while let Some(removed) = self.segments.pop() {
            segment::remove(&removed.path)?;
            sync_dir(&self.dir)?;
            log::info!("removed log segment {} (log discarded for a snapshot)", removed.path.display());
        }
        (self.last_index, self.last_term) = self.base;
        self.written_len = 0;
        self.marked_end = SEGMENT_HEADER_LEN as u64;
        self.durable_len = SEGMENT_HEADER_LEN as u64;
        Ok(())
    }

    /// Deletes every segment all of whose entries are at or below `upto`, oldest first, never
    /// the last one (the one appends go to), each removal durable before the next: at every
    /// instant the files on disk chain, starting at or below `upto + 1`, so a crash in the
    /// middle leaves a log that recovers (docs/storage.md, "Compaction"). The caller has a
    /// durable snapshot covering `upto`. The entries kept below `upto` are harmless: recovery
    /// skips what the snapshot covers.
    pub(in crate::storage) fn compact(&mut self, upto: LogIndex) -> Result<(), StorageError> {
        self.check_not_failed("compact")?;
        let result = self.compact_inner(upto);
        self.fail_stop(result)
    }

    fn compact_inner(&mut self, upto: LogIndex) -> Result<(), StorageError> {
        // Segment 0 holds entries first_index ..= segments[1].first_index - 1.
        while self.segments.len() > 1 && self.segments[1].first_index.0 <= upto.0 + 1 {
            let removed = self.segments.remove(0);
            // Never the last segment, so its whole content was fdatasynced at rotation:
            // nothing unsynced goes with it.
            segment::remove(&removed.path)?;
            sync_dir(&self.dir)?;
            log::info!("compacted log segment {} (entries up to {upto} are in a snapshot)", removed.path.display());
        }
        Ok(())
    }
}
