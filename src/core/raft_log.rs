//! The replicated log as the core reasons about it (§5.3), with the bookkeeping that tells the
//! runtime what to persist: entries past `stabled` have not been handed to storage yet, entries
//! up to `persisted` are known durable. After a snapshot (§7) the log no longer starts at 1:
//! entries up to `offset` are compacted away, and only the last one's term is kept, for the
//! consistency check of the entry after it.

use super::membership::Membership;
use super::message::Entry;
use super::ready::IndexRange;
use super::types::{LogIndex, Term};

/// Entries `offset + 1..=last_index`, in order, with no gaps; entries up to `offset` are in a
/// snapshot.
#[derive(Clone, Debug, Default)]
pub struct RaftLog {
    /// Entry `offset + 1 + i` is `entries[i]`.
    entries: Vec<Entry>,
    /// Last index compacted into a snapshot (0: nothing compacted).
    offset: LogIndex,
    /// Term of the entry at `offset` (0 when `offset` is 0).
    offset_term: Term,
    /// Last index handed to the runtime for persistence (in a `Ready`).
    stabled: LogIndex,
    /// Last index known durable (the runtime finished the `Ready` that carried it).
    persisted: LogIndex,
    /// Lowest index the runtime must truncate from before appending (a conflict, §5.3).
    truncate_from: Option<LogIndex>,
    /// The membership entries after `offset`, ascending (thesis §4.1: the latest one is in
    /// force, committed or not; a truncation reverts to the one before).
    memberships: Vec<(LogIndex, Membership)>,
    /// The membership as of `offset`: from the snapshot, a compacted entry, or (None) the
    /// bootstrap configuration the core was given.
    base_membership: Option<Membership>,
}

impl RaftLog {
    /// A log recovered from storage: `entries` must be contiguous from index 1 and durable.
    pub fn from_entries(entries: Vec<Entry>) -> Self {
        Self::from_snapshot(LogIndex(0), Term(0), entries)
    }

    /// A log recovered from a snapshot ending at (`index`, `term`) and the durable entries
    /// after it, which must continue it (contiguous from `index + 1`, terms from `term` on).
    pub fn from_snapshot(index: LogIndex, term: Term, entries: Vec<Entry>) -> Self {
        assert!((index.0 == 0) == (term.0 == 0), "a snapshot position has index and term >= 1");
        for (i, entry) in entries.iter().enumerate() {
            assert_eq!(entry.index, LogIndex(index.0 + i as u64 + 1), "log entries continue the snapshot with no gaps");
            let previous = if i == 0 { term } else { entries[i - 1].term };
            assert!(previous <= entry.term, "terms never decrease along the log");
        }
        let last = LogIndex(index.0 + entries.len() as u64);
        let memberships = entries.iter().filter_map(membership_of).collect();
        RaftLog {
            entries,
            offset: index,
            offset_term: term,
            stabled: last,
            persisted: last,
            truncate_from: None,
            memberships,
            base_membership: None,
        }
    }

    /// The membership recorded in the snapshot this log starts after (the runtime read it from
    /// the snapshot file).
    pub fn set_snapshot_membership(&mut self, membership: Membership) {
        self.base_membership = Some(membership);
    }

    /// The latest membership in the log and the index of its entry (0: the snapshot's), or
    /// None when neither the log nor its snapshot holds one (the bootstrap one is in force).
    pub fn membership(&self) -> Option<(LogIndex, &Membership)> {
        match self.memberships.last() {
            Some((index, m)) => Some((*index, m)),
            None => self.base_membership.as_ref().map(|m| (LogIndex(0), m)),
        }
    }

    /// The membership in force at `index` (for a snapshot taken there), if the log knows one.
    pub fn membership_at(&self, index: LogIndex) -> Option<&Membership> {
        let recorded = self.memberships.iter().rev().find(|(i, _)| *i <= index).map(|(_, m)| m);
        recorded.or(self.base_membership.as_ref())
    }

    /// Index of the last entry, 0 when empty.
    pub fn last_index(&self) -> LogIndex {
        LogIndex(self.offset.0 + self.entries.len() as u64)
    }

    /// Term of the last entry, 0 when empty.
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.offset_term, |e| e.term)
    }

    /// The last compacted entry's index and term (0, 0 when nothing is compacted): entries up
    /// to it exist only in a snapshot.
    pub fn compacted(&self) -> (LogIndex, Term) {
        (self.offset, self.offset_term)
    }

    /// Entries held in memory (from `compacted().0 + 1` to `last_index`).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no entry is held in memory.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Position of `index` in `entries` (callers check it lies above the offset).
    fn pos(&self, index: LogIndex) -> usize {
        (index.0 - self.offset.0 - 1) as usize
    }

    /// Last index known to be on stable storage.
    pub fn persisted(&self) -> LogIndex {
        self.persisted
    }

    /// Term of the entry at `index`: `Some(Term(0))` for index 0 (the empty prefix every log
    /// shares), the snapshot's term at the offset, `None` past the end or below the offset
    /// (compacted: unknown here).
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        match index.cmp(&self.offset) {
            std::cmp::Ordering::Less => None,
            std::cmp::Ordering::Equal => Some(self.offset_term),
            std::cmp::Ordering::Greater => self.entries.get(self.pos(index)).map(|e| e.term),
        }
    }

    /// §5.4.1: a candidate's log is at least as up-to-date as ours if its last term is later,
    /// or the last terms are equal and it is at least as long.
    pub fn is_up_to_date(&self, last_log_index: LogIndex, last_log_term: Term) -> bool {
        (last_log_term, last_log_index) >= (self.last_term(), self.last_index())
    }

    /// Append entries that continue the log exactly (programmer error otherwise).
    pub fn append(&mut self, entries: impl IntoIterator<Item = Entry>) {
        for entry in entries {
            assert_eq!(entry.index.0, self.last_index().0 + 1, "appended entries continue the log");
            assert!(entry.term >= self.last_term(), "terms never decrease along the log");
            if let Some(m) = membership_of(&entry) {
                self.memberships.push(m);
            }
            self.entries.push(entry);
        }
    }

    /// Remove every entry at or after `from` (§5.3: a conflicting suffix). The runtime is told
    /// through `take_truncation`.
    pub fn truncate_from(&mut self, from: LogIndex) {
        assert!(from > self.offset && from <= self.last_index(), "truncate inside the log, never compacted entries");
        self.entries.truncate(self.pos(from));
        self.memberships.retain(|(index, _)| *index < from);
        let kept = LogIndex(from.0 - 1);
        self.stabled = self.stabled.min(kept);
        self.persisted = self.persisted.min(kept);
        self.truncate_from = Some(self.truncate_from.map_or(from, |t| t.min(from)));
    }

    /// Entries `lo..=hi` (clamped to the log), at most `bytes_max` data bytes but at least one
    /// entry, so a single large entry still moves.
    pub fn slice(&self, lo: LogIndex, hi: LogIndex, entries_max: usize, bytes_max: usize) -> Vec<Entry> {
        let hi = hi.min(self.last_index());
        if lo > hi || lo <= self.offset {
            return Vec::new();
        }
        let mut bytes = 0;
        let mut out = Vec::new();
        for entry in &self.entries[self.pos(lo)..=self.pos(hi)] {
            bytes += entry.data.len();
            if !out.is_empty() && (bytes > bytes_max || out.len() >= entries_max) {
                break;
            }
            out.push(entry.clone());
        }
        out
    }

    /// First index holding `term`, searching back from `from` (for the leader's next_index
    /// hint after a rejection, §5.3 "optimization").
    pub fn first_index_of_term(&self, term: Term, from: LogIndex) -> LogIndex {
        let mut index = from.min(self.last_index());
        while index.0 > 1 && index > self.offset && self.term_at(LogIndex(index.0 - 1)) == Some(term) {
            index.0 -= 1;
        }
        index
    }

    /// Last index holding `term`, if the log has any entry of that term.
    pub fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        // Terms are non-decreasing along the log: binary search for the end of `term`.
        let end = self.entries.partition_point(|e| e.term <= term);
        if end > 0 {
            return (self.entries[end - 1].term == term).then_some(LogIndex(self.offset.0 + end as u64));
        }
        (self.offset.0 > 0 && self.offset_term == term).then_some(self.offset)
    }

    /// The pending truncation and the entries not yet handed to storage; marks them handed.
    pub fn take_unstable(&mut self) -> (Option<LogIndex>, IndexRange) {
        let truncate = self.truncate_from.take();
        let entries = IndexRange { first: LogIndex(self.stabled.0 + 1), last: self.last_index() };
        self.stabled = self.last_index();
        (truncate, entries)
    }

    /// The entries of `range` (which must lie within the log).
    pub fn range(&self, range: IndexRange) -> &[Entry] {
        if range.is_empty() {
            return &[];
        }
        assert!(range.first > self.offset && range.last <= self.last_index(), "range {range:?} within the log");
        &self.entries[self.pos(range.first)..=self.pos(range.last)]
    }

    /// True when there is a truncation or entries to hand to storage.
    pub fn has_unstable(&self) -> bool {
        self.truncate_from.is_some() || self.stabled < self.last_index()
    }

    /// The runtime finished persisting everything handed out so far.
    pub fn mark_persisted(&mut self) {
        self.persisted = self.stabled;
    }

    /// Entries up to `index` (handed out earlier) are durable.
    pub fn mark_persisted_upto(&mut self, index: LogIndex) {
        self.persisted = self.persisted.max(index.min(self.stabled));
    }

    /// Drop the entries up to `upto` (they are in a durable snapshot, §7). Only durable
    /// entries are compacted: the storage holds them, or the snapshot does.
    pub fn compact(&mut self, upto: LogIndex) {
        if upto <= self.offset {
            return;
        }
        assert!(upto <= self.persisted, "compact only durable entries: {upto} > persisted {}", self.persisted);
        let term = self.term_at(upto).expect("a durable entry is in the log");
        self.entries.drain(..=self.pos(upto));
        self.offset = upto;
        self.offset_term = term;
        self.compact_memberships(upto, None);
    }

    /// The memberships up to `upto` are compacted: the latest of them (or `snapshot`'s, when a
    /// snapshot replaced the log) becomes the base.
    fn compact_memberships(&mut self, upto: LogIndex, snapshot: Option<Membership>) {
        let kept = self.memberships.iter().position(|(i, _)| *i > upto).unwrap_or(self.memberships.len());
        let latest_compacted = self.memberships.drain(..kept).next_back().map(|(_, m)| m);
        if let Some(m) = snapshot.or(latest_compacted) {
            self.base_membership = Some(m);
        }
    }

    /// Replace the log's prefix with a snapshot ending at (`index`, `term`) received from the
    /// leader (§7, InstallSnapshot receiver steps 6–7): when the log holds that entry (already
    /// handed to storage, so the storage's log continues to the entries kept), the entries
    /// after it are kept (returns true); otherwise the whole log is discarded and the snapshot
    /// is all there is (returns false; the storage must discard its log too). Durability is
    /// unchanged: the runtime reports the install's write like any other.
    pub fn restore_snapshot(&mut self, index: LogIndex, term: Term, membership: Membership) -> bool {
        assert!(index > self.offset, "a snapshot older than the log's own start is never installed");
        if self.term_at(index) == Some(term) && index <= self.stabled {
            self.entries.drain(..=self.pos(index));
            self.offset = index;
            self.offset_term = term;
            self.compact_memberships(index, Some(membership));
            return true;
        }
        self.entries.clear();
        self.memberships.clear();
        self.base_membership = Some(membership);
        self.offset = index;
        self.offset_term = term;
        self.stabled = index;
        // Entries durable before were another log's: nothing above the snapshot is durable
        // until the install is.
        self.persisted = self.persisted.min(index);
        // Whatever truncation was pending is moot: the storage discards its whole log.
        self.truncate_from = None;
        false
    }
}

/// The (index, membership) of a membership entry; None for any other entry (a command whose
/// data is not a valid membership is never one: validate.rs drops such entries from peers,
/// and the leader refuses commands that start with the magic).
fn membership_of(entry: &Entry) -> Option<(LogIndex, Membership)> {
    Membership::decode(&entry.data).and_then(Result::ok).map(|m| (entry.index, m))
}
