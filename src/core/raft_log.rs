//! The replicated log as the core reasons about it (§5.3), with the bookkeeping that tells the
//! runtime what to persist: entries past `stabled` have not been handed to storage yet, entries
//! up to `persisted` are known durable.

use super::message::Entry;
use super::ready::IndexRange;
use super::types::{LogIndex, Term};

/// Entries `1..=last_index`, in order, with no gaps.
#[derive(Clone, Debug, Default)]
pub struct RaftLog {
    entries: Vec<Entry>,
    /// Last index handed to the runtime for persistence (in a `Ready`).
    stabled: LogIndex,
    /// Last index known durable (the runtime finished the `Ready` that carried it).
    persisted: LogIndex,
    /// Lowest index the runtime must truncate from before appending (a conflict, §5.3).
    truncate_from: Option<LogIndex>,
}

impl RaftLog {
    /// A log recovered from storage: `entries` must be contiguous from index 1 and durable.
    pub fn from_entries(entries: Vec<Entry>) -> Self {
        for (i, entry) in entries.iter().enumerate() {
            assert_eq!(entry.index, LogIndex(i as u64 + 1), "log entries must start at 1 with no gaps");
            assert!(i == 0 || entries[i - 1].term <= entry.term, "terms never decrease along the log");
        }
        let last = LogIndex(entries.len() as u64);
        RaftLog { entries, stabled: last, persisted: last, truncate_from: None }
    }

    /// Index of the last entry, 0 when empty.
    pub fn last_index(&self) -> LogIndex {
        LogIndex(self.entries.len() as u64)
    }

    /// Term of the last entry, 0 when empty.
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(Term(0), |e| e.term)
    }

    /// Last index known to be on stable storage.
    pub fn persisted(&self) -> LogIndex {
        self.persisted
    }

    /// Term of the entry at `index`: `Some(Term(0))` for index 0 (the empty prefix every log
    /// shares), `None` past the end.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index.0 == 0 {
            return Some(Term(0));
        }
        self.entries.get(index.0 as usize - 1).map(|e| e.term)
    }

    /// §5.4.1: a candidate's log is at least as up-to-date as ours if its last term is later,
    /// or the last terms are equal and it is at least as long.
    pub fn is_up_to_date(&self, last_log_index: LogIndex, last_log_term: Term) -> bool {
        (last_log_term, last_log_index) >= (self.last_term(), self.last_index())
    }

    /// Append entries that continue the log exactly (programmer error otherwise).
    pub fn append(&mut self, entries: impl IntoIterator<Item = Entry>) {
        for entry in entries {
            assert_eq!(entry.index.0, self.entries.len() as u64 + 1, "appended entries continue the log");
            assert!(entry.term >= self.last_term(), "terms never decrease along the log");
            self.entries.push(entry);
        }
    }

    /// Remove every entry at or after `from` (§5.3: a conflicting suffix). The runtime is told
    /// through `take_truncation`.
    pub fn truncate_from(&mut self, from: LogIndex) {
        assert!(from.0 >= 1 && from <= self.last_index(), "truncate inside the log");
        self.entries.truncate(from.0 as usize - 1);
        let kept = LogIndex(from.0 - 1);
        self.stabled = self.stabled.min(kept);
        self.persisted = self.persisted.min(kept);
        self.truncate_from = Some(self.truncate_from.map_or(from, |t| t.min(from)));
    }

    /// Entries `lo..=hi` (clamped to the log), at most `bytes_max` data bytes but at least one
    /// entry, so a single large entry still moves.
    pub fn slice(&self, lo: LogIndex, hi: LogIndex, entries_max: usize, bytes_max: usize) -> Vec<Entry> {
        let hi = hi.min(self.last_index());
        if lo > hi || lo.0 == 0 {
            return Vec::new();
        }
        let mut bytes = 0;
        let mut out = Vec::new();
        for entry in &self.entries[lo.0 as usize - 1..hi.0 as usize] {
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
        while index.0 > 1 && self.term_at(LogIndex(index.0 - 1)) == Some(term) {
            index.0 -= 1;
        }
        index
    }

    /// Last index holding `term`, if the log has any entry of that term.
    pub fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        // Terms are non-decreasing along the log: binary search for the end of `term`.
        let end = self.entries.partition_point(|e| e.term <= term);
        (end > 0 && self.entries[end - 1].term == term).then_some(LogIndex(end as u64))
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
        assert!(range.first.0 >= 1 && range.last <= self.last_index(), "range {range:?} within the log");
        &self.entries[range.first.0 as usize - 1..range.last.0 as usize]
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
}
