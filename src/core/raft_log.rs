//! The in-memory view of the replicated log that the core reasons about.
//!
//! For leader election only `last_index` and `last_term` matter (§5.4.1); log replication
//! (§5.3) builds on the same type.

use super::message::Entry;
use super::types::{LogIndex, Term};

/// Entries `1..=last_index`, in order, with no gaps.
#[derive(Clone, Debug, Default)]
pub struct RaftLog {
    entries: Vec<Entry>,
}

impl RaftLog {
    /// A log holding `entries`, which must be contiguous from index 1.
    pub fn from_entries(entries: Vec<Entry>) -> Self {
        for (i, entry) in entries.iter().enumerate() {
            assert_eq!(
                entry.index,
                LogIndex(i as u64 + 1),
                "log entries must start at 1 with no gaps"
            );
        }
        RaftLog { entries }
    }

    /// Index of the last entry, 0 when empty.
    pub fn last_index(&self) -> LogIndex {
        LogIndex(self.entries.len() as u64)
    }

    /// Term of the last entry, 0 when empty.
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(Term(0), |e| e.term)
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
}
