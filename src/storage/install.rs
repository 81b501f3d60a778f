//! The rules both implementations share when a snapshot meets the log (Raft §7): where an
//! installed snapshot comes from, whether it replaces the latest one, and whether a log
//! found next to a snapshot at open still continues it. One copy, so that [`MemStorage`]
//! (the simulator's disk) and [`DiskStorage`] cannot drift apart.
//!
//! [`MemStorage`]: super::MemStorage
//! [`DiskStorage`]: super::DiskStorage

use std::path::PathBuf;

use super::SnapshotMeta;
use crate::core::{LogIndex, Term};

/// Where a snapshot to install comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotSource {
    /// The whole image in memory, exactly the bytes of a snapshot file
    /// ([`encode_snapshot_image`](super::encode_snapshot_image)): for [`MemStorage`](super::MemStorage),
    /// tests and the simulator. [`DiskStorage`](super::DiskStorage) checks it completely and
    /// writes it like a save.
    Image(Vec<u8>),
    /// An image already in a file inside this storage's `snap/` directory.
    /// [`DiskStorage`](super::DiskStorage) renames it into place; [`MemStorage`](super::MemStorage)
    /// reads it (and leaves it where it is).
    File {
        /// The file; it must be in the snapshot directory ([`snapshot_dir`](super::snapshot_dir)).
        path: PathBuf,
        /// True when the file was already fdatasynced and checked by whoever wrote it
        /// ([`write_snapshot_tmp`](super::write_snapshot_tmp)). False for chunks received
        /// from a leader and written without fsync ([`incoming_snapshot_path`](super::incoming_snapshot_path)):
        /// the install then fsyncs the file and checks it completely (it must decode, and its
        /// index, term and configuration must equal the install's) before the rename.
        synced: bool,
    },
}

/// How a snapshot to install compares with the latest durable one.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Order {
    /// Newer (or there is none): install it.
    Newer,
    /// The same index and term: already installed, nothing to do.
    Same,
    /// Older: ignored, so that a late or duplicated InstallSnapshot never replaces a newer
    /// snapshot (§7: a snapshot only moves forward).
    Older,
}

/// Compares `new` with `latest`.
///
/// # Panics
///
/// If both end at the same index with different terms: both cover only committed entries,
/// and a committed entry's term never changes (§5.4, State Machine Safety). One of them is a
/// bug, and keeping either would hide it.
pub(super) fn order(latest: Option<&SnapshotMeta>, new: &SnapshotMeta) -> Order {
    let Some(latest) = latest else { return Order::Newer };
    if new.last_index == latest.last_index {
        assert_eq!(
            new.last_term, latest.last_term,
            "two snapshots end at index {} with different terms (§5.4: a committed entry's term never changes)",
            new.last_index
        );
        return Order::Same;
    }
    if new.last_index < latest.last_index {
        log::warn!(
            "ignoring a snapshot to install at index {} term {}: the latest durable snapshot is newer (index {} term {})",
            new.last_index,
            new.last_term,
            latest.last_index,
            latest.last_term
        );
        return Order::Older;
    }
    Order::Newer
}

/// §7 at recovery: whether the log found at open, which starts at `first_index` (its first
/// entry, or the index its first empty segment was created for) and holds term
/// `term_at_snapshot` at the snapshot's index (None if it does not hold that index), still
/// continues the snapshot (`snapshot_index`, `snapshot_term`).
///
/// It does if it holds the snapshot's last entry (same index and term: by the Log Matching
/// property, §5.3, it then agrees with everything the snapshot covers, and what follows is a
/// valid continuation), or if it starts right after the snapshot (it was written after that
/// snapshot was installed with the log discarded).
///
/// Why "starts at S+1" cannot be an old log: a crash between an install's rename and its log
/// discard leaves the log that was there before the install, next to the new snapshot (S, T).
/// An install discards the log only when the log does not hold entry S with term T. Every
/// entry up to the old commit index is either in the old log with its committed term or
/// covered by the old snapshot, and S is above the old snapshot (an older one is ignored); so
/// S is above the old commit index. Compaction removes only entries covered by the old
/// snapshot, so the old log starts at or below old snapshot + 1 <= old commit index + 1 <= S:
/// never at S+1.
pub(super) fn log_continues_snapshot(
    first_index: LogIndex,
    term_at_snapshot: Option<Term>,
    snapshot_index: LogIndex,
    snapshot_term: Term,
) -> bool {
    term_at_snapshot == Some(snapshot_term) || first_index.0 == snapshot_index.0 + 1
}

/// Asserts the precondition of [`Storage::compact`](super::Storage::compact): a durable
/// snapshot covers every entry to be discarded. Discarding entries no snapshot covers would
/// lose committed state for good (§7).
pub(super) fn assert_compactable(latest: Option<&SnapshotMeta>, upto: LogIndex) {
    let covered = latest.map_or(LogIndex(0), |meta| meta.last_index);
    assert!(
        upto <= covered,
        "compact up to index {upto}, but the latest durable snapshot covers only up to {covered} (§7: only what a snapshot holds may be discarded)"
    );
}

/// Asserts that a log to be kept by an install (`retain_log`) holds the snapshot's last
/// entry, as §7 requires for keeping it: otherwise recovery would discard that log at the
/// next open, and the server's view of its log would change under it across a restart.
pub(super) fn assert_retainable(term_at_snapshot: Option<Term>, meta: &SnapshotMeta) {
    assert_eq!(
        term_at_snapshot,
        Some(meta.last_term),
        "install with retain_log, but the log does not hold entry {} with term {} (§7: keep the log only if it does)",
        meta.last_index,
        meta.last_term
    );
}
