//! The membership nemesis (membership runs only). Besides the bootstrap voters, one or two
//! servers start with `Options::joining` (they know the voters and are not members). Every so
//! often the nemesis asks a leader, through its driver (`Driver::change_membership`, the call
//! the runtime makes), for one change: add a server as a learner (with or without automatic
//! promotion), promote a learner, remove a member, remove the leader itself, or — rarely —
//! wipe the disk of a server that was removed and stopped and add it again (a new incarnation
//! that must not keep its old log). Changes come in bursts (the second is refused while the
//! first is in flight), right after an election (refused until the new leader has committed
//! an entry of its term, thesis §4.1), and are sometimes followed at once by the leader being
//! cut off, so a change sits uncommitted on a minority. The core refuses what would leave no
//! live quorum; every refusal is counted by its reason.
//!
//! A removed server stops once it sees its removal committed and is no longer leader
//! (`Raft::is_removed`, as the server exits): it is never restarted, unless wiped and added
//! again. A removed leader keeps running until it has handed over and stepped down (§4.2.2).
//! A server wiped and added again under its old id stays idle instead when removed: catching
//! up, it replays the log of its earlier life — its old removal included, committed — before
//! it reaches the entry that adds it again, and stopping there (as `is_removed` says) would
//! lose the new member (seed 2233 with every seed changing the membership).
//! A server being added is first restarted with the current members as the cluster it knows
//! (an operator writing its config), so it accepts the leader's appends.

use super::{disk_latency, World, TICK_MS};
use crate::core::{LogIndex, MembershipChange, NodeId, Role, SplitMix64};
use crate::sim::checker::Violation;
use crate::sim::events::{Event, Time};
use crate::sim::MembershipCounts;
use crate::transport::client_wire::ClientError;
use std::collections::BTreeSet;

/// Percent of accepted changes followed within a few milliseconds by another attempt.
const BURST_PERCENT: u64 = 30;
/// Percent of accepted changes after which the leader is cut off at once (both ways).
const ISOLATE_PERCENT: u64 = 25;
/// Percent of new leaders asked for a change right after they win.
const NEW_LEADER_PERCENT: u64 = 30;

/// The nemesis's state.
pub(in crate::sim) struct Changes {
    /// This run changes the membership.
    pub on: bool,
    /// The nemesis's own stream: a run without membership changes draws nothing from it, so
    /// it runs as it did before they existed.
    pub rng: SplitMix64,
    /// Per server (`id - 1`): never a member in this life (fresh, or wiped), so it may be added.
    addable: Vec<bool>,
    /// Per server: when it stopped after its removal, and its commit index then (its removal
    /// is at or before it).
    retired_at: Vec<Option<(Time, LogIndex)>>,
    /// Learners added with automatic promotion, not yet seen promoted.
    auto: BTreeSet<NodeId>,
    /// Numbers the nemesis's requests (its tokens' attempt).
    next_attempt: u64,
    /// A removed server is wiped and added again under its old id only once the leader has
    /// compacted its log past the removal (the newcomer then starts from a snapshot), and only
    /// this long after it stopped. Replaying the log of its earlier life, a newcomer under an
    /// old id finds memberships that list it as a voter and answers votes as one, with a log
    /// far behind: a removed server with a stale membership was elected with its vote and
    /// lacked committed entries (seed 25 of the 3-server hunt settings). The second rule: longer than
    /// any stale leader of an older membership can stay leader without a quorum (check-quorum
    /// steps it down within two election timeouts, even with a clock at half speed), so no such
    /// leader can count the empty newcomer's acknowledgements.
    rejoin_after: Time,
    /// What happened.
    pub counts: MembershipCounts,
}

impl Changes {
    /// The choices of a run of `servers` servers (`on`: it changes the membership).
    pub fn new(on: bool, rng: SplitMix64, servers: usize, election_ticks: u32) -> Changes {
        Changes {
            on,
            rng,
            addable: vec![false; servers],
            retired_at: vec![None; servers],
            auto: BTreeSet::new(),
            next_attempt: 0,
            rejoin_after: 5 * Time::from(election_ticks) * TICK_MS,
            counts: MembershipCounts::default(),
        }
    }

    /// Server `id` starts outside the membership, waiting to be added.
    pub fn spare(&mut self, id: NodeId) {
        self.addable[id.0 as usize - 1] = true;
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.rng.range(0, 100) < percent
    }
}

/// Why the core refused a change, from the driver's answer (`MembershipError`'s text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    InFlight,
    OwnCommit,
    LiveQuorum,
    Transfer,
    NotLeader,
    Other,
}

/// The refusal a driver's answer stands for.
pub(super) fn refusal(error: &ClientError) -> Refusal {
    match error {
        ClientError::NotLeader { .. } => Refusal::NotLeader,
        ClientError::Unavailable(text) if text.contains("one change at a time") => Refusal::InFlight,
        ClientError::Unavailable(text) if text.contains("has not committed an entry of its term") => Refusal::OwnCommit,
        ClientError::Unavailable(text) if text.contains("voters would be live") => Refusal::LiveQuorum,
        ClientError::Unavailable(text) if text.starts_with("leadership is being handed over") => Refusal::Transfer,
        _ => Refusal::Other,
    }
}

impl World {
    /// The periodic membership event (and the extra ones of bursts and new leaders).
    pub(super) fn membership_event(&mut self, periodic: bool) -> Result<(), Violation> {
        if !self.faults_on || !self.changes.on {
            return Ok(());
        }
        if periodic {
            let at = self.now + self.changes.rng.range(20, 200);
            self.queue.push(at, Event::Membership { periodic: true });
        }
        self.membership_fault()
    }

    /// A new leader was noticed: sometimes ask it for a change before it could commit its
    /// no-op (the core must refuse: thesis §4.1).
    pub(super) fn maybe_change_at_new_leader(&mut self) {
        if self.changes.on && self.faults_on && self.changes.chance(NEW_LEADER_PERCENT) {
            let at = self.now + self.changes.rng.range(0, 4);
            self.queue.push(at, Event::Membership { periodic: false });
        }
    }

    /// One change asked of a leader.
    fn membership_fault(&mut self) -> Result<(), Violation> {
        let leaders: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|n| !n.is_paused() && n.raft().is_some_and(|r| r.role() == Role::Leader))
            .map(|n| n.id)
            .collect();
        if leaders.is_empty() {
            return Ok(());
        }
        let leader = leaders[self.changes.rng.range(0, leaders.len() as u64) as usize];
        let raft = self.nodes[leader.0 as usize - 1].raft().expect("a leader is up");
        let membership = raft.membership().clone();
        let committed_voters: Vec<NodeId> = raft.membership_at(raft.commit_index()).voters().collect();
        self.count_auto_promotions(committed_voters);
        let members: Vec<NodeId> = membership.members.keys().copied().collect();
        let learners: Vec<NodeId> = membership.learners().collect();
        let others: Vec<NodeId> = members.iter().copied().filter(|m| *m != leader).collect();
        let addable: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|n| n.is_up() && self.changes.addable[n.id.0 as usize - 1] && !membership.contains(n.id))
            .map(|n| n.id)
            .collect();
        let (now, rejoin_after) = (self.now, self.changes.rejoin_after);
        let compacted = self.nodes[leader.0 as usize - 1].raft().expect("a leader is up").log().compacted().0;
        let rejoinable: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|n| n.retired && !n.wiped && !membership.contains(n.id))
            .filter(|n| {
                self.changes.retired_at[n.id.0 as usize - 1]
                    .is_some_and(|(at, removed)| at + rejoin_after <= now && compacted >= removed)
            })
            .map(|n| n.id)
            .collect();
        let roll = self.changes.rng.range(0, 100);
        let add = |pid: NodeId, promote: bool| MembershipChange::AddLearner {
            pid,
            peer_url: url(pid, 7000),
            client_url: url(pid, 8000),
            promote,
        };
        let change = if roll >= 90 && !rejoinable.is_empty() {
            let pid = pick(&mut self.changes.rng, &rejoinable);
            self.rejoin(pid, &members)?;
            add(pid, true)
        } else if roll >= 82 {
            MembershipChange::Remove { pid: leader }
        } else if roll >= 55 && !others.is_empty() {
            MembershipChange::Remove { pid: pick(&mut self.changes.rng, &others) }
        } else if roll >= 40 && !learners.is_empty() {
            MembershipChange::Promote { pid: pick(&mut self.changes.rng, &learners) }
        } else if !addable.is_empty() {
            let pid = pick(&mut self.changes.rng, &addable);
            let promote = self.changes.chance(60);
            self.prepare_to_join(pid, &members)?;
            add(pid, promote)
        } else if !others.is_empty() {
            MembershipChange::Remove { pid: pick(&mut self.changes.rng, &others) }
        } else {
            return Ok(());
        };
        self.propose_change(leader, change)
    }

    /// Ask `leader` for `change` through its driver.
    fn propose_change(&mut self, leader: NodeId, change: MembershipChange) -> Result<(), Violation> {
        self.changes.next_attempt += 1;
        let attempt = self.changes.next_attempt;
        let (now, rng) = (self.now, &mut self.rng);
        let effects = self.nodes[leader.0 as usize - 1].change_membership(
            now,
            &mut || disk_latency(rng),
            attempt,
            change.clone(),
        );
        let refused = effects.membership.iter().any(|(a, _)| *a == attempt);
        self.trace.mix(&[self.now, 20, leader.0, attempt, u64::from(refused)]);
        self.trace.line(|| format!("{now:>7} MEMBERSHIP {leader}: {change:?} (refused: {refused})"));
        self.apply_effects(leader, effects)?;
        self.checker.check(&self.nodes, leader)?;
        if refused {
            return Ok(());
        }
        self.changes.counts.proposed += 1;
        if let MembershipChange::AddLearner { pid, promote, .. } = change {
            self.changes.addable[pid.0 as usize - 1] = false;
            if promote {
                self.changes.auto.insert(pid);
            }
        }
        if let MembershipChange::Promote { pid } = change {
            self.changes.auto.remove(&pid);
        }
        if self.changes.chance(BURST_PERCENT) {
            let at = self.now + self.changes.rng.range(1, 10);
            self.queue.push(at, Event::Membership { periodic: false });
        }
        if self.changes.chance(ISOLATE_PERCENT) {
            let at = self.now + self.changes.rng.range(0, 10);
            self.queue.push(at, Event::Isolate(leader));
        }
        Ok(())
    }

    /// Learners added with automatic promotion that are voters in a committed membership now.
    fn count_auto_promotions(&mut self, voters: Vec<NodeId>) {
        for v in voters {
            if self.changes.auto.remove(&v) {
                self.changes.counts.auto_promoted += 1;
            }
        }
    }

    /// Cut `id` off both ways (right after it took a change: the change sits on a minority).
    pub(super) fn isolate(&mut self, id: NodeId) {
        if !self.faults_on {
            return;
        }
        for other in self.nodes.iter().map(|n| n.id).filter(|&o| o != id) {
            self.blocked.insert((id, other));
            self.blocked.insert((other, id));
        }
        self.trace.mix(&[self.now, 21, id.0]);
        self.trace.line(|| format!("{:>7} ISOLATE {id} after a membership change", self.now));
        let at = self.now + self.changes.rng.range(50, 400);
        self.queue.push(at, Event::Heal);
    }

    /// The driver answered the nemesis's request `attempt`.
    pub(super) fn membership_answer(&mut self, attempt: u64, outcome: Result<(), ClientError>) {
        let c = &mut self.changes.counts;
        match outcome {
            Ok(()) => c.applied += 1,
            Err(ClientError::Dropped) => c.lost += 1,
            Err(e) => match refusal(&e) {
                Refusal::InFlight => c.refused_in_flight += 1,
                Refusal::OwnCommit => c.refused_own_commit += 1,
                Refusal::LiveQuorum => c.refused_live_quorum += 1,
                Refusal::Transfer => c.refused_transfer += 1,
                Refusal::NotLeader => c.refused_not_leader += 1,
                Refusal::Other => c.refused_other += 1,
            },
        }
        self.trace.line(|| format!("{:>7} membership request {attempt} answered", self.now));
    }

    /// `id` just handled an event: if it saw its removal committed and is not leader, it stops
    /// for good (the server exits; a removed leader first hands over, §4.2.2).
    pub(super) fn retire_if_removed(&mut self, id: NodeId) {
        let node = &self.nodes[id.0 as usize - 1];
        if !self.changes.on || node.wiped || !node.raft().is_some_and(|r| r.is_removed() && r.role() != Role::Leader) {
            return;
        }
        let unsynced = node.unsynced();
        let commit = node.raft().expect("up").commit_index();
        let node = self.node(id);
        node.crash(unsynced);
        node.retired = true;
        self.changes.retired_at[id.0 as usize - 1] = Some((self.now, commit));
        self.changes.counts.stopped += 1;
        self.trace.mix(&[self.now, 22, id.0]);
        self.trace.line(|| format!("{:>7} STOP {id}: removed", self.now));
    }

    /// Before `pid` is added: restart it with `members` as the cluster it knows, if its config
    /// says otherwise (an operator writes the new server's config from the current members).
    fn prepare_to_join(&mut self, pid: NodeId, members: &[NodeId]) -> Result<(), Violation> {
        let peers: Vec<NodeId> = members.iter().copied().filter(|m| *m != pid).collect();
        if self.nodes[pid.0 as usize - 1].options().peers == peers {
            return Ok(());
        }
        let seed = self.changes.rng.next_u64();
        self.nodes[pid.0 as usize - 1].reconfigure(peers, seed);
        self.trace.mix(&[self.now, 24, pid.0]);
        self.trace.line(|| format!("{:>7} RECONFIGURE {pid} to join", self.now));
        let effects = self.drive_node(pid);
        self.apply_effects(pid, effects)
    }

    /// Wipe retired server `pid`'s disk and start it as a server waiting to join `members`.
    fn rejoin(&mut self, pid: NodeId, members: &[NodeId]) -> Result<(), Violation> {
        let mut options = self.nodes[pid.0 as usize - 1].options().clone();
        options.joining = true;
        options.peers = members.iter().copied().filter(|m| *m != pid).collect();
        options.seed = self.changes.rng.next_u64();
        self.nodes[pid.0 as usize - 1].wipe(options);
        self.checker.forget(pid);
        self.changes.addable[pid.0 as usize - 1] = true;
        self.changes.retired_at[pid.0 as usize - 1] = None;
        self.changes.counts.wiped += 1;
        self.trace.mix(&[self.now, 23, pid.0]);
        self.trace.line(|| format!("{:>7} WIPE {pid} and start it to join again", self.now));
        let effects = self.drive_node(pid);
        self.apply_effects(pid, effects)
    }

    /// The voters as the most advanced membership known says (every server when the run does
    /// not change the membership): what the crash nemesis keeps a majority of.
    pub(super) fn voters_now(&self) -> Vec<NodeId> {
        if !self.changes.on {
            return self.nodes.iter().map(|n| n.id).collect();
        }
        let latest = self
            .nodes
            .iter()
            .filter_map(|n| n.raft())
            .max_by_key(|r| (r.membership_index(), r.log().term_at(r.membership_index())))
            .filter(|r| r.membership_index() > LogIndex(0));
        match latest {
            Some(r) => r.membership().voters().collect(),
            None => self.nodes.iter().filter(|n| !n.options().joining).map(|n| n.id).collect(),
        }
    }
}

/// One of `from` (not empty).
fn pick(rng: &mut SplitMix64, from: &[NodeId]) -> NodeId {
    from[rng.range(0, from.len() as u64) as usize]
}

/// A url for a member (opaque to the core; the simulator routes by id).
fn url(pid: NodeId, port: u64) -> String {
    format!("sim://{}:{}", pid.0, port + pid.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::MembershipError;

    #[test]
    fn each_refusal_is_counted_under_its_reason() {
        let unavailable = |e: MembershipError| ClientError::Unavailable(e.to_string());
        let cases = [
            (unavailable(MembershipError::ChangeInFlight(LogIndex(7))), Refusal::InFlight),
            (unavailable(MembershipError::NoCommitInTerm), Refusal::OwnCommit),
            (unavailable(MembershipError::NoLiveQuorum { live: 1, needed: 2 }), Refusal::LiveQuorum),
            (unavailable(MembershipError::Transferring(NodeId(2))), Refusal::Transfer),
            (unavailable(MembershipError::LastVoter(NodeId(2))), Refusal::Other),
            (unavailable(MembershipError::AlreadyMember(NodeId(2))), Refusal::Other),
            (ClientError::NotLeader { leader: None }, Refusal::NotLeader),
        ];
        for (error, reason) in cases {
            assert_eq!(refusal(&error), reason, "{error:?}");
        }
    }
}
