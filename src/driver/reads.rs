//! Reads that cost no log entry (thesis §6.4): the driver's half. The core finds read
//! indexes (ReadIndex on the leader, asked of the leader on a follower); the driver holds each
//! read until the state machine has applied its index, then answers it from the state machine
//! ([`StateMachine::query`]). Lease reads (§6.4.1) skip the core's round: the driver notes
//! when each leadership-check round left (on its clock, [`Io::now`]) and serves a read at once
//! while the last round a majority answered is younger than the lease.

use super::{Driver, Io};
use crate::core::{LogIndex, ReadState, Term};
use crate::kv::StateMachine;
use crate::transport::client_wire::{ClientError, ReadMode};
use std::collections::BTreeMap;
use std::time::Duration;

/// The clock assumption lease reads rest on: the rates of any two servers' clocks differ by at
/// most this fraction (10 %: far beyond what a quartz or NTP-disciplined clock drifts, which is
/// parts per million; what it guards against is a clock that is *stepped* or *slewed*, which
/// `CLOCK_MONOTONIC` is not — see the README's "Reads").
pub const CLOCK_DRIFT_MAX: f64 = 0.1;

/// A lease (§6.4.1), from the one number it rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The shortest time, on any follower's clock, between its last contact from the leader
    /// and its first vote for another server (leader stickiness, §4.2.3: the minimum election
    /// timeout, less one tick for the tick the contact arrived in).
    pub election_min: Duration,
}

impl Lease {
    /// How long a lease lasts on the leader's clock from the moment its round left: a
    /// follower's clock may run fast by [`CLOCK_DRIFT_MAX`] and the leader's slow by as much,
    /// so `election_min × (1 − ρ) / (1 + ρ)` (82 % of it) elapses on the leader's clock before
    /// any follower that answered the round can vote for another leader.
    pub fn length(&self) -> Duration {
        self.election_min.mul_f64((1.0 - CLOCK_DRIFT_MAX) / (1.0 + CLOCK_DRIFT_MAX))
    }
}

/// Reads waiting, and what a lease is measured from.
pub(super) struct Reads<T> {
    /// Ids for the core's `read_index`.
    next_id: u64,
    /// Reads whose read index the core is finding, by id.
    asked: BTreeMap<u64, (T, Vec<u8>)>,
    /// Reads with a read index, waiting for the state machine to apply it.
    indexed: Vec<(LogIndex, T, Vec<u8>)>,
    /// The lease; `None`: no lease reads.
    lease: Option<Lease>,
    /// The term of `sent`.
    term: Term,
    /// When each leadership-check round of `term` left (its first message).
    sent: BTreeMap<u64, Duration>,
}

impl<T> Reads<T> {
    pub(super) fn new() -> Self {
        Reads {
            next_id: 1,
            asked: BTreeMap::new(),
            indexed: Vec::new(),
            lease: None,
            term: Term(0),
            sent: BTreeMap::new(),
        }
    }

    /// A leadership-check round of `term` is leaving now.
    pub(super) fn round_sent(&mut self, term: Term, round: u64, now: Duration) {
        if term != self.term {
            self.term = term;
            self.sent.clear();
        }
        self.sent.entry(round).or_insert(now);
    }

    /// Reads waiting for anything.
    pub(super) fn len(&self) -> usize {
        self.asked.len() + self.indexed.len()
    }
}

impl<M: StateMachine, T> Driver<M, T> {
    /// Serve lease reads (§6.4.1) with `lease`; `None` turns them off (the default), and a
    /// [`ReadMode::Lease`] read is then served as a ReadIndex read. With lease reads on, the
    /// core must send a leadership check every heartbeat
    /// (`Options::leader_check_every_heartbeat`), or leases lapse between reads.
    pub fn set_lease(&mut self, lease: Option<Lease>) {
        self.reads.lease = lease;
    }

    /// Reads waiting for a read index or for the state machine to apply it.
    pub fn reads_waiting(&self) -> usize {
        self.reads.len()
    }

    /// A linearizable read of `query` without a log entry: answered through [`Io::answer`]
    /// with the read index and the state machine's answer once it has applied that index, or
    /// refused (`NotLeader`) when no read index can be had. Call [`Driver::drive`] after.
    pub fn read(&mut self, token: T, query: Vec<u8>, mode: ReadMode, io: &mut impl Io<T>) {
        if query.is_empty() {
            io.answer(token, Err(ClientError::BadRequest("empty query".into())));
            return;
        }
        if mode == ReadMode::Lease && self.holds_lease(io.now()) {
            // The lease says no other leader exists now, and the commit index covers every
            // entry committed before (an entry of this term is committed: `lease_allowed`).
            let index = self.raft.commit_index();
            self.reads.indexed.push((index, token, query));
            self.serve_reads(io);
            return;
        }
        let id = self.reads.next_id;
        self.reads.next_id += 1;
        self.reads.asked.insert(id, (token, query));
        self.raft.read_index(id);
    }

    /// True when a lease read may be served at `now`: lease reads are on, the core allows
    /// them, and the last confirmed round left less than a lease ago.
    fn holds_lease(&self, now: Duration) -> bool {
        let Some(lease) = self.reads.lease else {
            return false;
        };
        if !self.raft.lease_allowed() {
            return false;
        }
        if self.raft.peers().is_empty() {
            return true; // nobody else can be elected
        }
        let lease = if self.bugs().lease_without_drift_margin { lease.election_min } else { lease.length() };
        let confirmed = self.raft.leader_check_confirmed();
        self.reads.term == self.raft.current_term()
            && self.reads.sent.get(&confirmed).is_some_and(|&sent| now < sent + lease)
    }

    /// The core's outcomes for reads asked of it.
    pub(super) fn read_states(&mut self, states: Vec<ReadState>, io: &mut impl Io<T>) {
        for state in states {
            let Some((token, query)) = self.reads.asked.remove(&state.id) else {
                continue;
            };
            match state.index {
                Some(index) => self.reads.indexed.push((index, token, query)),
                None => io.answer(token, Err(ClientError::NotLeader { leader: self.raft.leader_id() })),
            }
        }
        // Rounds before the confirmed one will never be asked about again (checked cheaply
        // first: this runs for every Ready, reads or not).
        let confirmed = self.raft.leader_check_confirmed();
        if self.reads.sent.first_key_value().is_some_and(|(&round, _)| round < confirmed) {
            self.reads.sent = self.reads.sent.split_off(&confirmed);
        }
        self.serve_reads(io);
    }

    /// §6.4 step 4: answer every read whose index is applied, from the state machine.
    pub(super) fn serve_reads(&mut self, io: &mut impl Io<T>) {
        if self.reads.indexed.is_empty() {
            return;
        }
        let applied = self.applied;
        let (now, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.reads.indexed).into_iter().partition(|(index, _, _)| *index <= applied);
        self.reads.indexed = later;
        for (index, token, query) in now {
            let outcome =
                self.state_machine.query(&query).map(|result| (index, result)).map_err(ClientError::BadRequest);
            io.answer(token, outcome);
        }
    }

    /// Refuse every read waiting (the server is stopping).
    pub(super) fn fail_reads(&mut self, error: &ClientError, io: &mut impl Io<T>) {
        let asked = std::mem::take(&mut self.reads.asked).into_values().map(|(t, _)| t);
        let indexed = std::mem::take(&mut self.reads.indexed).into_iter().map(|(_, t, _)| t);
        for token in asked.chain(indexed).collect::<Vec<_>>() {
            io.answer(token, Err(error.clone()));
        }
    }
}
