//! Reads without the log (thesis §6.4). A read is linearizable if it reflects every entry
//! committed before it arrived; the leader knows that index (its commit index, once an entry of
//! its own term is committed), but only if it still leads. It confirms that with a round of
//! [`LeaderCheck`]s answered by a majority, started after the read arrived: no other leader
//! can have been elected before those answers were sent. Reads that arrive together share a
//! round. A follower asks the leader for a read index ([`ReadIndex`]) and applies up to it
//! itself ("follower reads"). The rounds are also what a lease is measured from (§6.4.1): the
//! runtime notes when each round left and asks [`Raft::leader_check_confirmed`].

use super::message::{LeaderCheck, LeaderCheckResponse, Message, ReadIndex, ReadIndexResponse};
use super::raft::Raft;
use super::ready::Role;
use super::types::{LogIndex, NodeId, Term};
use std::collections::BTreeMap;

/// The outcome of one read asked with [`Raft::read_index`], handed out in
/// [`Ready::read_states`](super::Ready::read_states).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The id the read was asked with.
    pub id: u64,
    /// The read index: once the state machine has applied it, answering from it is
    /// linearizable. `None`: refused (this server does not lead and knows no leader, leadership
    /// changed, or the leader did not answer within an election timeout): retry elsewhere.
    pub index: Option<LogIndex>,
}

/// A read waiting on the leader.
#[derive(Debug)]
struct LeaderRead {
    id: u64,
    /// The follower that asked, or `None` for a read of this server's own clients.
    from: Option<NodeId>,
    /// The commit index when the read could be served (an entry of this term committed).
    index: Option<LogIndex>,
    /// The round whose majority confirms it (the first round sent after `index` was taken).
    round: u64,
}

/// Read bookkeeping (part of [`Raft`]).
#[derive(Debug, Default)]
pub(super) struct Reads {
    /// Leader: the last round sent in this term.
    pub(super) round: u64,
    /// Leader: the highest round each follower answered in this term.
    acked: BTreeMap<NodeId, u64>,
    /// Leader: the highest round a majority (this server included) has answered.
    confirmed: u64,
    /// Leader: a read needs a round that has not been sent yet.
    round_wanted: bool,
    /// Leader: reads waiting for an entry of the term to commit, or for their round.
    waiting: Vec<LeaderRead>,
    /// Follower: reads to ask the leader for at the next Ready, in one request (a flood of
    /// reads must not become a flood of messages: a full socket queue drops them).
    unsent: Vec<u64>,
    /// Follower: requests sent to the leader, by request id: the reads each covers and the
    /// ticks since it left.
    asked: BTreeMap<u64, (Vec<u64>, u32)>,
    /// Follower: the next request id.
    next_request: u64,
    /// Outcomes for the next Ready.
    pub(super) done: Vec<ReadState>,
}

impl Reads {
    /// Work for the next Ready: outcomes to hand out or a round to send.
    pub(super) fn has_ready(&self) -> bool {
        !self.done.is_empty() || self.round_wanted || !self.unsent.is_empty()
    }
}

impl Raft {
    /// Ask for a read index for the read `id` (thesis §6.4); the outcome comes in a later
    /// [`Ready::read_states`](super::Ready::read_states). On the leader the read waits until an
    /// entry of its term is committed, then for a round of leadership checks; on a follower it
    /// is asked of the leader; a server that knows no leader refuses it at once.
    pub fn read_index(&mut self, id: u64) {
        match (self.role, self.leader_id) {
            (Role::Leader, _) => self.register_read(None, id),
            (_, Some(_)) => self.reads.unsent.push(id),
            (_, None) => self.reads.done.push(ReadState { id, index: None }),
        }
        self.assert_invariants();
    }

    /// Before a Ready: send the round reads wait for (leader), or ask the leader for one read
    /// index covering every read that arrived since the last Ready (follower).
    pub(super) fn reads_before_ready(&mut self) {
        if self.reads.round_wanted && self.role == Role::Leader {
            // One round for every read that arrived since the last Ready (§6.4: batched).
            self.send_leader_checks();
        }
        if self.reads.unsent.is_empty() {
            return;
        }
        let reads = std::mem::take(&mut self.reads.unsent);
        match (self.role, self.leader_id) {
            (Role::Follower, Some(leader)) => {
                self.reads.next_request += 1;
                let id = self.reads.next_request;
                self.reads.asked.insert(id, (reads, 0));
                self.send(leader, Message::ReadIndex(ReadIndex { term: self.current_term, id }));
            }
            (Role::Leader, _) => reads.into_iter().for_each(|id| self.register_read(None, id)),
            _ => self.reads.done.extend(reads.into_iter().map(|id| ReadState { id, index: None })),
        }
    }

    /// The highest leadership-check round a majority (this server included) has answered in
    /// this term; 0 when none. A lease (§6.4.1) runs from the moment that round was sent.
    pub fn leader_check_confirmed(&self) -> u64 {
        if self.role == Role::Leader {
            self.reads.confirmed
        } else {
            0
        }
    }

    /// True when this server may serve a lease read (§6.4.1), given a lease that has not
    /// expired: it leads, has committed an entry of its term (so its commit index covers
    /// everything any earlier leader committed), and has not started handing over in this term
    /// (a TimeoutNow makes its target campaign without waiting out anyone's election timeout,
    /// which is what the lease counts on).
    /// The lease also needs pre-vote and leader stickiness on: without pre-vote a follower can
    /// adopt a later term from a stale message, forget its leader and vote inside the lease.
    pub fn lease_allowed(&self) -> bool {
        self.role == Role::Leader
            && self.committed_in_term()
            && !self.lease_revoked
            && self.options.pre_vote
            && self.options.leader_stickiness
    }

    /// §6.4 step 1: until an entry of its own term is committed, a new leader does not know
    /// which entries are committed.
    pub(super) fn committed_in_term(&self) -> bool {
        self.log.term_at(self.commit_index) == Some(self.current_term)
    }

    fn register_read(&mut self, from: Option<NodeId>, id: u64) {
        let index = self.committed_in_term().then_some(self.commit_index);
        self.reads.round_wanted |= index.is_some();
        let round = self.reads.round + 1;
        self.reads.waiting.push(LeaderRead { id, from, index, round });
    }

    /// The commit index reached an entry of this term: reads that waited for it take it as
    /// their read index and need the next round.
    pub(super) fn reads_after_commit(&mut self) {
        let (commit, round) = (self.commit_index, self.reads.round + 1);
        for read in self.reads.waiting.iter_mut().filter(|r| r.index.is_none()) {
            read.index = Some(commit);
            read.round = round;
            self.reads.round_wanted = true;
        }
    }

    /// Send every follower a leadership check of a new round.
    pub(super) fn send_leader_checks(&mut self) {
        self.reads.round += 1;
        self.reads.round_wanted = false;
        let check = LeaderCheck { term: self.current_term, leader_id: self.id, round: self.reads.round };
        for peer in self.peers.clone() {
            self.send(peer, Message::LeaderCheck(check.clone()));
        }
        self.confirm_rounds();
    }

    /// Leader heartbeat: a round for reads whose round may have been lost (and, with
    /// `Options::leader_check_every_heartbeat`, to keep a lease).
    pub(super) fn leader_checks_on_heartbeat(&mut self) {
        if self.options.leader_check_every_heartbeat || self.reads.waiting.iter().any(|r| r.index.is_some()) {
            self.send_leader_checks();
        }
    }

    /// §6.4 step 3: the highest round answered by a majority confirms every read waiting for
    /// it or an earlier one.
    fn confirm_rounds(&mut self) {
        // Voters only; this leader's own round only while it votes (thesis §4.2.2).
        let mut rounds: Vec<u64> =
            self.voter_peers().iter().map(|p| self.reads.acked.get(p).copied().unwrap_or(0)).collect();
        if self.is_voter() {
            rounds.push(self.reads.round);
        }
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        self.reads.confirmed = rounds.get(self.quorum() - 1).copied().unwrap_or(0);
        let confirmed = self.reads.confirmed;
        let (ready, waiting): (Vec<LeaderRead>, Vec<LeaderRead>) = std::mem::take(&mut self.reads.waiting)
            .into_iter()
            .partition(|r| r.index.is_some() && r.round <= confirmed);
        self.reads.waiting = waiting;
        for read in ready {
            self.answer_read(read.from, read.id, read.index);
        }
    }

    fn answer_read(&mut self, from: Option<NodeId>, id: u64, index: Option<LogIndex>) {
        match from {
            None => self.reads.done.push(ReadState { id, index }),
            Some(peer) => {
                let (index, index_term) = match index {
                    Some(i) => (i, self.log.term_at(i).unwrap_or(Term(0))),
                    None => (LogIndex(0), Term(0)),
                };
                let reply = ReadIndexResponse { term: self.current_term, id, index, index_term };
                self.send(peer, Message::ReadIndexResponse(reply));
            }
        }
    }

    /// A follower (of our term, the term rule done) asks for a read index.
    pub(super) fn handle_read_index(&mut self, from: NodeId, m: ReadIndex) {
        if self.role == Role::Leader {
            self.register_read(Some(from), m.id);
        } else {
            self.answer_read(Some(from), m.id, None);
        }
    }

    /// The leader answered a read index we asked for. If we hold its entry at the read index
    /// (same term), our log matches the leader's up to there (Log Matching, §5.3) and it is
    /// committed, so the commit index moves there at once instead of a heartbeat later.
    pub(super) fn handle_read_index_response(&mut self, m: ReadIndexResponse) {
        let Some((reads, _)) = self.reads.asked.remove(&m.id) else {
            self.ignored.stale_response += 1;
            return;
        };
        let index = (m.index.0 > 0).then_some(m.index);
        if let Some(i) = index {
            if i > self.commit_index && self.log.term_at(i) == Some(m.index_term) {
                self.commit_index = i;
            }
        }
        self.reads.done.extend(reads.into_iter().map(|id| ReadState { id, index }));
    }

    /// A leadership check of our term (the term rule done): leader contact, answered.
    pub(super) fn handle_leader_check(&mut self, from: NodeId, m: LeaderCheck) {
        if self.hear_from_leader(from, "LeaderCheck") {
            let reply = LeaderCheckResponse { term: self.current_term, round: m.round };
            self.send(from, Message::LeaderCheckResponse(reply));
        }
    }

    pub(super) fn handle_leader_check_response(&mut self, from: NodeId, m: LeaderCheckResponse) {
        if self.role != Role::Leader {
            return;
        }
        let acked = self.reads.acked.entry(from).or_insert(0);
        if m.round <= *acked {
            self.ignored.stale_response += 1;
            return;
        }
        *acked = m.round;
        self.confirm_rounds();
    }

    /// Follower: reads asked of a leader that has not answered within an election timeout are
    /// refused (the request or its answer was lost, or the leader is gone).
    pub(super) fn tick_reads(&mut self) {
        let limit = self.options.election_ticks;
        let mut expired = Vec::new();
        self.reads.asked.retain(|_, (reads, ticks)| {
            *ticks += 1;
            let keep = *ticks < limit;
            if !keep {
                expired.append(reads);
            }
            keep
        });
        self.reads.done.extend(expired.into_iter().map(|id| ReadState { id, index: None }));
    }

    /// The role or term changed: every read waiting is refused (a deposed leader cannot
    /// confirm them; a follower's leader may be gone) and the rounds start over.
    pub(super) fn reset_reads(&mut self) {
        let waiting = std::mem::take(&mut self.reads.waiting);
        for read in waiting {
            self.answer_read(read.from, read.id, None);
        }
        let asked = std::mem::take(&mut self.reads.asked).into_values().flat_map(|(reads, _)| reads);
        let unsent = std::mem::take(&mut self.reads.unsent);
        self.reads.done.extend(asked.chain(unsent).map(|id| ReadState { id, index: None }));
        self.reads.round = 0;
        self.reads.confirmed = 0;
        self.reads.round_wanted = false;
        self.reads.acked.clear();
    }
}
