//! The checker's view of a server's log: a hash chain from index 1 (whatever was compacted),
//! each entry's term and hash, and where the membership entries are.

use crate::core::{Entry, LogIndex, Term};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Hash of an entry's identity and content (FNV-1a), chained along the log: equal chain
/// values at an index mean equal logs up to it (Log Matching in one comparison).
pub fn chain(previous: u64, entry: &Entry) -> u64 {
    let mut h = previous ^ 0xcbf2_9ce4_8422_2325;
    for b in entry.term.0.to_le_bytes().iter().chain(entry.index.0.to_le_bytes().iter()).chain(entry.data.iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Hash of one entry's own (term, index, data): what the checker compares an applied entry
/// with, so State Machine Safety is about the entry handed to the state machine, not about
/// the log around it.
pub fn entry_hash(entry: &Entry) -> u64 {
    chain(0, entry)
}

/// The checker's view of a log from index 1, whatever was compacted: per index, the hash
/// chain (equal values mean equal logs up to there), the entry's term and its own hash.
#[derive(Clone, Debug, Default)]
pub struct LogView {
    /// Hash chain, entry `i + 1` at `chain[i]`.
    pub chain: Vec<u64>,
    /// Terms.
    pub terms: Vec<Term>,
    /// [`entry_hash`] of each entry.
    pub hashes: Vec<u64>,
    /// Indexes of the membership entries, ascending.
    pub memberships: Vec<LogIndex>,
}

impl LogView {
    pub(super) fn truncate(&mut self, len: usize) {
        self.chain.truncate(len);
        self.terms.truncate(len);
        self.hashes.truncate(len);
        let keep = self.memberships.partition_point(|i| i.0 as usize <= len);
        self.memberships.truncate(keep);
    }

    pub(super) fn push(&mut self, entry: &Entry) {
        let previous = self.chain.last().copied().unwrap_or(0);
        self.chain.push(chain(previous, entry));
        self.terms.push(entry.term);
        self.hashes.push(entry_hash(entry));
        if entry.is_membership() {
            self.memberships.push(entry.index);
        }
    }

    pub(super) fn prefix(&self, len: usize) -> LogView {
        let mut view = self.clone();
        view.truncate(len);
        view
    }
}

/// What each snapshot stands for in the checker's terms: the log view of the server that took
/// it, up to its index (a server installing it adopts that prefix). Shared by the servers of
/// one world: the simulation's bookkeeping, not state a server could see.
pub type SnapshotViews = Rc<RefCell<BTreeMap<(LogIndex, Term), LogView>>>;
