//! The lease attack (lease runs with clocks at the assumption's extremes): the worst case for a
//! lease, played on purpose. The server with the slow clock is made leader (a leadership
//! transfer); right after it renewed its lease — a round of leadership checks a majority
//! answered — it is cut off from every other server, while one client keeps reading from it
//! and the others, on the majority's side, write. The majority's fast clocks let it elect a
//! leader as early as the lease's drift margin allows, on a fast network: a lease without the
//! margin (the planted bug `lease_without_drift_margin`) serves a read after a write the new
//! leader acknowledged, and the linearizability check rejects the history; the real lease has
//! lapsed by then. Between attacks the random nemesis acts now and then.

use super::{World, KEYS};
use crate::core::{NodeId, Role, Term};
use crate::kv::KvOp;
use crate::sim::checker::Violation;
use crate::sim::events::Time;
use crate::sim::world::clients::Path;
use crate::sim::world::clocks::Clocks;
use crate::transport::client_wire::ReadMode;

/// Where the attack is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Nothing until `until`; then make the slow server leader, and wait for its lease.
    Idle { until: Time },
    /// `leader` (slow) holds a lease in `term`: cut it off once a round after `confirmed` is
    /// confirmed (its lease was just renewed).
    Armed { leader: NodeId, term: Term, confirmed: u64 },
    /// `leader` is cut off from every other server until `until`, or shortly after the
    /// majority has a leader of a later term (first seen at `elected`).
    Cut { leader: NodeId, until: Time, elected: Option<Time> },
}

/// The client that reads from the cut-off leader; the others are on the majority's side.
const READER: usize = 0;

/// Percent of the nemesis's turns, between attacks, given to the random nemesis.
const RANDOM_FAULT_PERCENT: u64 = 10;

/// How long the cut lasts after the majority elected a leader: long enough for that leader to
/// acknowledge writes while the old one may still serve reads (what the attack needs), short
/// enough that a run has room for many attacks.
const AFTER_ELECTION_MS: Time = 40;

/// Retry delay of a client the majority's side refused without a hint (it is electing):
/// short, so a write reaches the new leader as soon as there is one.
const RETRY_MS: Time = 3;

impl World {
    fn slow_server(&self) -> Option<NodeId> {
        match self.profile.clocks {
            Clocks::Extremes { slow } => Some(slow),
            _ => None,
        }
    }

    /// The attack's turn of the nemesis.
    pub(super) fn attack_fault(&mut self) -> Result<(), Violation> {
        let Some(slow) = self.slow_server() else { return Ok(()) };
        match self.attack {
            Phase::Idle { until } if self.now >= until => {
                if self.chance(RANDOM_FAULT_PERCENT) {
                    return self.inject_fault();
                }
                if !self.blocked.is_empty() {
                    self.heal();
                    return Ok(());
                }
                if let Some(down) = self.nodes.iter().find(|n| !n.is_up()).map(|n| n.id) {
                    self.restart(down, 11)?;
                    return self.checker.check(&self.nodes, down);
                }
                if self.nodes.iter().any(|n| n.is_paused()) {
                    return Ok(()); // it resumes soon
                }
                let Some(leader) = self.nodes.iter().filter_map(|n| n.raft()).find(|r| r.role() == Role::Leader) else {
                    return Ok(());
                };
                let (id, term, confirmed) = (leader.id(), leader.current_term(), leader.leader_check_confirmed());
                if id != slow {
                    self.transfer(id, Some(slow))?;
                } else if leader.lease_allowed() && confirmed > 0 {
                    self.attack = Phase::Armed { leader: id, term, confirmed };
                    // The reader gives up what it was doing (its outcome stays unknown) and
                    // reads from the leader from now on.
                    if self.clients.get(READER).is_some_and(|c| c.current.is_some()) {
                        self.clients[READER].current = None;
                        self.client_next(READER);
                    }
                }
            }
            Phase::Idle { .. } => {}
            Phase::Armed { leader, term, .. } => {
                let leads = self.nodes[leader.0 as usize - 1].raft().is_some_and(|r| r.current_term() == term);
                if !leads || self.nodes[leader.0 as usize - 1].is_paused() {
                    self.attack = Phase::Idle { until: self.now };
                }
            }
            Phase::Cut { leader, until, elected } => {
                let term = self.nodes[leader.0 as usize - 1].raft().map(|r| r.current_term());
                let newer = self
                    .nodes
                    .iter()
                    .filter_map(|n| n.raft())
                    .any(|r| r.role() == Role::Leader && r.id() != leader && Some(r.current_term()) > term);
                let elected = elected.or(newer.then_some(self.now));
                if self.now >= until || elected.is_some_and(|at| self.now >= at + AFTER_ELECTION_MS) {
                    self.heal();
                    let calm = self.rng.range(30, 150);
                    self.attack = Phase::Idle { until: self.now + calm };
                } else {
                    self.attack = Phase::Cut { leader, until, elected };
                }
            }
        }
        Ok(())
    }

    /// After `id` took an input: if it is the armed leader and just confirmed a new round, cut
    /// it off (trace code 21).
    pub(super) fn attack_after_step(&mut self, id: NodeId) {
        let Phase::Armed { leader, term, confirmed } = self.attack else { return };
        let Some(raft) = self.nodes[id.0 as usize - 1].raft() else { return };
        if id != leader || !self.faults_on || raft.current_term() != term || raft.leader_check_confirmed() <= confirmed
        {
            return;
        }
        self.blocked.clear();
        for other in self.nodes.iter().map(|n| n.id).filter(|&o| o != leader) {
            self.blocked.insert((leader, other));
            self.blocked.insert((other, leader));
        }
        // Long enough for the majority to elect (its lease-long stickiness, then a timeout)
        // and for the old leader to step down (check-quorum).
        let election_ms = Time::from(self.profile.election_ticks) * super::TICK_MS;
        let until = self.now + election_ms + self.rng.range(election_ms / 2, 2 * election_ms);
        self.attack = Phase::Cut { leader, until, elected: None };
        self.counts.lease_cuts += 1;
        self.trace.mix(&[self.now, 21, leader.0]);
        self.trace.line(|| format!("{:>7} CUT leader {leader} right after it renewed its lease", self.now));
        // The majority's clients lose their connections to the leader: they give up what they
        // were doing (its outcome stays unknown) and write the key the reader reads, on their
        // side.
        for client in 0..self.clients.len() {
            if client != READER && self.clients[client].current.is_some() {
                self.clients[client].leader_guess = None;
                self.clients[client].current = None;
                self.client_next(client);
            }
        }
    }

    /// The leader the attack is about, while it is armed or cut off.
    pub(super) fn attacked(&self) -> Option<NodeId> {
        match self.attack {
            _ if !self.faults_on => None,
            Phase::Armed { leader, .. } | Phase::Cut { leader, .. } => Some(leader),
            Phase::Idle { .. } => None,
        }
    }

    /// A client's next operation during an attack: the reader reads one key from the leader's
    /// lease; once the leader is cut off, the others write that key on the majority's side.
    pub(super) fn attack_op(&mut self, client: usize, op: KvOp, path: Path, value: Vec<u8>) -> (KvOp, Path) {
        let Some(_) = self.attacked() else { return (op, path) };
        let key = format!("k{}", KEYS - 1).into_bytes();
        match self.attack {
            _ if client == READER => (KvOp::Get { key }, Path::Leader(ReadMode::Lease)),
            Phase::Cut { .. } => (KvOp::Put { key, value }, Path::Log),
            _ => (op, path),
        }
    }

    /// Where a client's attempt goes during an attack: the reader to the attacked leader, the
    /// others anywhere else once it is cut off (they cannot reach it).
    pub(super) fn attack_route(&mut self, client: usize, to: NodeId) -> NodeId {
        let Some(leader) = self.attacked() else { return to };
        if client == READER {
            return leader;
        }
        if to == leader && matches!(self.attack, Phase::Cut { .. }) && self.nodes.len() > 1 {
            let other = self.rng.range(1, self.nodes.len() as u64);
            return NodeId(if other >= leader.0 { other + 1 } else { other });
        }
        to
    }

    /// A refused client's retry delay while the majority's side elects.
    pub(super) fn attack_retry_ms(&self) -> Option<Time> {
        matches!(self.attack, Phase::Cut { .. }).then_some(RETRY_MS).filter(|_| self.faults_on)
    }

    /// Ask leader `leader` to hand over to `to` (None: the most up-to-date follower); trace
    /// code 20. A transfer started is counted; the target winning the next term too
    /// (`transfers_done`).
    pub(super) fn transfer(&mut self, leader: NodeId, to: Option<NodeId>) -> Result<(), Violation> {
        let node = &mut self.nodes[leader.0 as usize - 1];
        if node.is_paused() {
            return Ok(()); // a paused process takes no requests
        }
        let Some(raft) = node.raft_mut() else { return Ok(()) };
        let term = raft.current_term().0;
        let Ok(target) = raft.transfer_leadership(to) else { return Ok(()) };
        if target == leader {
            return Ok(());
        }
        self.counts.transfers += 1;
        self.transfer_to = Some((target, term));
        self.trace.mix(&[self.now, 20, leader.0, target.0]);
        self.trace.line(|| format!("{:>7} TRANSFER {leader} -> {target}", self.now));
        let effects = self.drive_node(leader);
        self.apply_effects(leader, effects)?;
        self.checker.check(&self.nodes, leader)
    }
}
