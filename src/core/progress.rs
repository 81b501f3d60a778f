//! The leader's view of one follower (Figure 2 `nextIndex`/`matchIndex`), and the flow control
//! that makes replication fast without flooding: probe one message at a time until the
//! follower's log position is found, then pipeline up to a window of appends.

use super::types::{LogIndex, Term};
use std::collections::VecDeque;

/// How the leader currently sends to a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// Position unknown (after election or a rejection): one append at a time.
    Probe,
    /// Position known: appends are pipelined, `next_index` advanced optimistically.
    Replicate,
    /// The entries the follower needs next are compacted: a snapshot is being streamed to it
    /// (§7); no appends until it acknowledges the snapshot's last index.
    Snapshot,
}

/// A snapshot transfer to one follower: which snapshot, and how far it got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotSend {
    /// The snapshot's last index.
    pub index: LogIndex,
    /// The snapshot's last term.
    pub term: Term,
    /// Size of its image in bytes.
    pub total_len: u64,
    /// Bytes the follower has acknowledged holding (from 0, contiguously).
    pub acked: u64,
    /// Bytes sent so far (`acked..sent` in flight).
    pub sent: u64,
    /// Ticks since the follower last showed progress: past a heartbeat interval the chunks in
    /// flight are presumed lost and sent again from `acked` (a timeout on progress, not on
    /// the whole transfer, which may take long for a large snapshot).
    pub idle_ticks: u32,
}

/// Replication progress of one follower.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Highest index known replicated on the follower.
    pub match_index: LogIndex,
    /// Index of the next entry to send.
    pub next_index: LogIndex,
    /// Probe or Replicate.
    pub state: ProgressState,
    /// Probe: an append is outstanding; wait for its answer or the next heartbeat.
    pub probe_sent: bool,
    /// Replicate: last index of each append in flight, oldest first.
    in_flight: VecDeque<LogIndex>,
    /// Snapshot: the transfer.
    pub snapshot: Option<SnapshotSend>,
    /// The heartbeat round of the first rejection (since the last acknowledgement) saying
    /// the follower's log ends below `match_index`.
    lost_claim_round: Option<u64>,
}

impl Progress {
    /// A fresh follower, probed from just after the leader's last entry (§5.3).
    pub fn new(last_index: LogIndex) -> Self {
        Progress {
            match_index: LogIndex(0),
            next_index: LogIndex(last_index.0 + 1),
            state: ProgressState::Probe,
            probe_sent: false,
            in_flight: VecDeque::new(),
            snapshot: None,
            lost_claim_round: None,
        }
    }

    /// True when no more appends may be sent now.
    pub fn is_paused(&self, in_flight_max: usize) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.in_flight.len() >= in_flight_max,
            ProgressState::Snapshot => true,
        }
    }

    /// An append with entries up to `last` was sent.
    pub fn sent(&mut self, last: LogIndex) {
        match self.state {
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Replicate => {
                self.next_index = LogIndex(last.0 + 1);
                self.in_flight.push_back(last);
            }
            ProgressState::Snapshot => {}
        }
    }

    /// The follower acknowledged up to `index`. Returns false for a stale acknowledgement.
    pub fn acknowledged(&mut self, index: LogIndex) -> bool {
        if index < self.match_index {
            return false;
        }
        self.match_index = index;
        self.lost_claim_round = None;
        self.next_index = self.next_index.max(LogIndex(index.0 + 1));
        if self.snapshot.is_some_and(|s| index < s.index) {
            // An answer to an append sent before the transfer: the transfer goes on.
            return true;
        }
        while self.in_flight.front().is_some_and(|&last| last <= index) {
            self.in_flight.pop_front();
        }
        if self.state != ProgressState::Replicate {
            // A probe answered, or a snapshot installed (acknowledged at its last index).
            self.state = ProgressState::Replicate;
            self.in_flight.clear();
            self.snapshot = None;
        }
        self.probe_sent = false;
        true
    }

    /// The follower rejected the append after `rejected`; back off to `hint`. Returns false
    /// when the rejection is stale (answers an append we no longer care about).
    pub fn rejected(&mut self, rejected: LogIndex, hint: LogIndex) -> bool {
        // A rejection of an index already known to match answers an old message (delayed or
        // duplicated): the follower holds that entry. Found by the simulator (seed 12).
        let stale = rejected <= self.match_index
            || match self.state {
                ProgressState::Replicate => false,
                ProgressState::Probe => rejected.0 + 1 != self.next_index.0,
                // Answers an append sent before the transfer began.
                ProgressState::Snapshot => true,
            };
        if stale {
            return false;
        }
        self.next_index = hint.clamp(LogIndex(self.match_index.0 + 1), LogIndex(rejected.0.max(1)));
        self.state = ProgressState::Probe;
        self.probe_sent = false;
        self.in_flight.clear();
        true
    }

    /// Start streaming the snapshot (`index`, `term`, `total_len` bytes): the follower needs
    /// entries that are compacted away.
    pub fn send_snapshot(&mut self, index: LogIndex, term: Term, total_len: u64) {
        self.state = ProgressState::Snapshot;
        self.probe_sent = false;
        self.in_flight.clear();
        self.snapshot = Some(SnapshotSend { index, term, total_len, acked: 0, sent: 0, idle_ticks: 0 });
    }

    /// A rejection of `rejected` whose hints say the follower's log ends before
    /// `conflict_index`, below what it acknowledged, in heartbeat round `round`. Once, or
    /// repeated within one round, it may be an old answer delivered late or twice (seed 12:
    /// stale, ignored); again in a later round with no acknowledgement between, the follower
    /// lost its log — a data directory wiped and the server restarted with the same pid — and
    /// must be replicated to from where its log now ends. Returns true then.
    pub fn claims_lost_entries(
        &mut self,
        rejected: LogIndex,
        conflict_index: LogIndex,
        conflict_term: Term,
        round: u64,
    ) -> bool {
        let lost = rejected <= self.match_index && conflict_term.0 == 0 && conflict_index <= self.match_index;
        if !lost {
            return false;
        }
        match self.lost_claim_round {
            Some(first) if first < round => true,
            Some(_) => false,
            None => {
                self.lost_claim_round = Some(round);
                false
            }
        }
    }

    /// Forget what the follower acknowledged (nothing it holds now is known to match); probe
    /// it from `next` (its log's end + 1). Lowering `match_index` only delays commitment,
    /// never hastens it.
    pub fn restart_at(&mut self, next: LogIndex) {
        self.match_index = LogIndex(0);
        self.next_index = next;
        self.state = ProgressState::Probe;
        self.probe_sent = false;
        self.in_flight.clear();
        self.snapshot = None;
        self.lost_claim_round = None;
    }
}
