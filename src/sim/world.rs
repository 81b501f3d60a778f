//! The simulated world: servers, network, disks' fsync latency, clients, faults, and the loop
//! that runs events in virtual-time order and checks every property after each one.

mod attack;
mod clients;
mod clocks;
mod effects;
mod faults;
mod membership;
#[cfg(test)]
mod tests;

use super::checker::{Checker, Violation};
use super::events::{Event, Queue, Time, Trace};
use super::linearizability::{self, Operation};
use super::node::{Effects, Inbound, SimNode, SnapshotViews};
use super::{Counts, SimOptions, SimReport};
use crate::core::{LogIndex, Message, NodeId, Options, Role, SplitMix64};
use crate::driver::SnapshotPolicy;
use clients::Current;
pub use clocks::Clocks;
use clocks::Profile;
use std::collections::BTreeSet;

/// A tick every 10 ms; elections after 100–200 ms (300–600 ms in lease-attack runs);
/// heartbeats every 20 ms.
const TICK_MS: Time = 10;
const ELECTION_TICKS: u32 = 10;
const HEARTBEAT_TICKS: u32 = 2;
/// A client retries an attempt after this long without an answer...
const ATTEMPT_TIMEOUT_MS: Time = 300;
/// ...and gives up on the operation (its outcome unknown) after this long.
const OPERATION_DEADLINE_MS: Time = 3000;
/// After faults stop, the cluster must have a leader and every acknowledged operation applied
/// on every server within this much virtual time.
const LIVENESS_MS: Time = 30_000;
/// Percent of chaos runs with pre-vote off.
const PRE_VOTE_OFF_PERCENT: u64 = 30;
/// Keys the clients share: few keys, many conflicts, small linearizability searches.
const KEYS: u64 = 3;

/// An fsync's duration: usually quick, sometimes slow — slow ones open the windows in which
/// acknowledgements race durability.
fn disk_latency(rng: &mut SplitMix64) -> Time {
    if rng.range(0, 100) < 15 {
        rng.range(10, 60)
    } else {
        rng.range(1, 5)
    }
}

struct SimClient {
    client_id: u64,
    seq: u64,
    /// Attempt ids are unique per client across operations, so a late answer to an abandoned
    /// operation can never be taken for the answer to a later one (the linearizability checker
    /// caught exactly that mix-up in this simulator once).
    next_attempt: u64,
    /// The operation in progress.
    current: Option<Current>,
    leader_guess: Option<NodeId>,
}

pub(super) struct World {
    opts: SimOptions,
    rng: SplitMix64,
    now: Time,
    queue: Queue,
    nodes: Vec<SimNode>,
    checker: Checker,
    trace: Trace,
    clients: Vec<SimClient>,
    history: Vec<Operation>,
    /// Highest log index at which an acknowledged operation was applied.
    acked_index: LogIndex,
    /// Directed links that drop everything: (from, to).
    blocked: BTreeSet<(NodeId, NodeId)>,
    faults_on: bool,
    /// Draws how much of an unsynced write survives a crash (a stream of its own, so torn
    /// writes do not shift the other random choices of a seed).
    tear_rng: SplitMix64,
    /// Message loss while faults are on: per run, from none to heavy.
    loss_percent: u64,
    /// A stability run: only single-follower faults, a network without loss, and the
    /// checker's stability rule ([`Checker::with_stability`]).
    stability: bool,
    /// Stability runs: no new fault before this instant (the cluster is whole for a while).
    calm_until: Time,
    /// Pauses begun so far (each pause is named by its number).
    pauses: u64,
    events: u64,
    /// Term in which each server was last seen leading: a new leader is noticed once.
    led: BTreeSet<(NodeId, u64)>,
    liveness_deadline: Option<Time>,
    /// Clocks, lease reads, the lease attack.
    profile: Profile,
    /// Exact virtual time of each server's last tick (server `i + 1` at `i`).
    tick_at: Vec<f64>,
    /// The lease attack's state (attack runs only).
    attack: attack::Phase,
    /// A transfer asked for: (target, term it was asked in).
    transfer_to: Option<(NodeId, u64)>,
    counts: Counts,
    /// The membership nemesis ([`membership`]).
    changes: membership::Changes,
}

impl World {
    pub(super) fn new(opts: SimOptions) -> Self {
        assert!(opts.servers >= 1, "at least one server");
        let mut rng = SplitMix64::new(opts.seed);
        let ids: Vec<NodeId> = (1..=opts.servers as u64).map(NodeId).collect();
        let limits = ([1, 1, 1, 2, 64, 4096][rng.range(0, 6) as usize], [1, 2, 8, 64][rng.range(0, 4) as usize]);
        let stability = opts.faults && rng.range(0, 100) < opts.stability_percent;
        // Pre-vote is off in some chaos runs: the core supports both, and without it every
        // timeout is a real election, which is where voting bugs show (pre-vote's own log
        // check hides a broken one in RequestVote). Stability runs need it on.
        let profile = Profile::draw(&opts, stability);
        // Wild clocks need pre-vote (as every production server has): without it a server
        // whose log is behind and whose clock runs twice as fast times out first every time,
        // and each of its terms resets everyone else's election timer — no leader, ever.
        // Lease runs too: a lease holds only with pre-vote on (`Raft::lease_allowed`).
        let pre_vote =
            rng.range(0, 100) >= PRE_VOTE_OFF_PERCENT || stability || profile.clocks == Clocks::Wild || profile.lease;
        // Snapshots every few dozen entries, keeping a few behind (or none), in most runs:
        // transfers, compaction and restarts from snapshots are everywhere. A third of the runs
        // snapshot rarely, so the log-only interleavings (Figure 8's long divergent logs) stay
        // as likely as they were before snapshots.
        let every = if rng.range(0, 3) == 0 { rng.range(300, 3000) } else { rng.range(4, 60) };
        let policy = SnapshotPolicy { entries: every, bytes: 0, trailing: rng.range(0, 3) * rng.range(0, 8) };
        let views: SnapshotViews = Default::default();
        // Membership runs: their choices come from a stream of their own (a run without them
        // is the run it was before they existed). Not in stability runs (every server must
        // follow the stable leader) nor lease attacks (the attack is the fault).
        let mut changes_rng = SplitMix64::new(opts.seed ^ 0x3e3b_e45e_1a11);
        let on = opts.faults && !stability && !profile.attack && changes_rng.range(0, 100) < opts.membership_percent;
        let mut profile = profile;
        let spares = if on { changes_rng.range(1, 3) } else { 0 };
        let promote_lag = changes_rng.range(0, 30);
        let mut nodes: Vec<SimNode> = ids
            .iter()
            .map(|&id| {
                let peers = ids.iter().copied().filter(|p| *p != id).collect();
                let mut options = Options::new(id, peers, profile.election_ticks, HEARTBEAT_TICKS, rng.next_u64());
                options.planted = opts.bugs;
                options.pre_vote = pre_vote;
                // Flow-control limits vary by seed, so small messages and short windows (and
                // the acknowledgements of partial batches they cause) are explored too.
                options.entries_per_message_max = limits.0;
                options.in_flight_max = limits.1;
                // A lease is renewed only by a confirmed round: one every heartbeat.
                options.leader_check_every_heartbeat = profile.lease;
                // Learners are promoted soon after they catch up (the default lag is for logs
                // far longer than a simulated run's).
                if on {
                    options.promote_lag = promote_lag;
                }
                let mut node = SimNode::new(id, options, policy, views.clone());
                node.clock = profile.clock[id.0 as usize - 1];
                node.set_lease(profile.lease.then(|| clocks::lease(profile.election_ticks)));
                node
            })
            .collect();
        let mut changes =
            membership::Changes::new(on, changes_rng, ids.len() + spares as usize, profile.election_ticks);
        for id in (ids.len() as u64 + 1..=ids.len() as u64 + spares).map(NodeId) {
            // Not in the bootstrap membership: knows the voters, never campaigns, waits.
            let seed = changes.rng.next_u64();
            let mut options = Options::new(id, ids.clone(), profile.election_ticks, HEARTBEAT_TICKS, seed);
            options.joining = true;
            (options.planted, options.pre_vote) = (opts.bugs, pre_vote);
            (options.entries_per_message_max, options.in_flight_max) = limits;
            options.leader_check_every_heartbeat = profile.lease;
            options.promote_lag = promote_lag;
            profile.add_clock(&mut changes.rng);
            let mut node = SimNode::new(id, options, policy, views.clone());
            node.clock = profile.clock[id.0 as usize - 1];
            node.set_lease(profile.lease.then(|| clocks::lease(profile.election_ticks)));
            nodes.push(node);
            changes.spare(id);
        }

        let clients = (0..opts.clients)
            .map(|c| SimClient { client_id: c as u64 + 1, seq: 0, next_attempt: 0, current: None, leader_guess: None })
            .collect();
        let loss_percent = [0, 2, 5, 10, 20][rng.range(0, 5) as usize];
        // The attack needs the majority to elect and commit within a lease's drift margin:
        // a fast network without loss (a LAN).
        let loss_percent = if profile.attack { 0 } else { loss_percent };
        World {
            tear_rng: SplitMix64::new(opts.seed ^ 0x7ea2_70a2),
            loss_percent: if stability { 0 } else { loss_percent },
            stability,
            calm_until: 0,
            pauses: 0,
            trace: Trace::new(60, opts.keep_trace),
            faults_on: opts.faults,
            opts,
            rng,
            now: 0,
            queue: Queue::default(),
            nodes,
            checker: if stability { Checker::with_stability() } else { Checker::default() },
            clients,
            history: Vec::new(),
            acked_index: LogIndex(0),
            blocked: BTreeSet::new(),
            events: 0,
            led: BTreeSet::new(),
            liveness_deadline: None,
            tick_at: vec![0.0; profile.clock.len()],
            profile,
            attack: attack::Phase::Idle { until: 0 },
            transfer_to: None,
            counts: Counts::default(),
            changes,
        }
    }

    fn node(&mut self, id: NodeId) -> &mut SimNode {
        &mut self.nodes[id.0 as usize - 1]
    }

    fn random_node(&mut self) -> NodeId {
        NodeId(self.rng.range(1, self.nodes.len() as u64 + 1))
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.rng.range(0, 100) < percent
    }

    /// The first events: every server's clock, the clients, the nemesis.
    fn start(&mut self) {
        for i in 0..self.nodes.len() {
            let at = self.rng.range(0, TICK_MS);
            self.tick_at[i] = at as f64;
            self.queue.push(at, Event::Tick(NodeId(i as u64 + 1)));
        }
        for client in 0..self.clients.len() {
            let at = self.rng.range(0, 50);
            self.queue.push(at, Event::ClientNext { client });
        }
        if self.faults_on {
            let at = self.rng.range(20, 100);
            self.queue.push(at, Event::Fault);
        }
        if self.faults_on && self.changes.on {
            let at = self.changes.rng.range(50, 200);
            self.queue.push(at, Event::Membership { periodic: true });
        }
    }

    pub(super) fn run(mut self) -> SimReport {
        self.start();
        let violation = self.event_loop().err();
        let violation = violation.or_else(|| {
            linearizability::check(&self.history).err().map(|e| Violation {
                property: "linearizability",
                detail: format!("key {:?}: {}", String::from_utf8_lossy(&e.key), e.explanation),
            })
        });
        SimReport {
            seed: self.opts.seed,
            events: self.events,
            virtual_ms: self.now,
            trace_hash: self.trace.hash(),
            violation,
            trace_tail: self.trace.tail().to_vec(),
            ops_completed: self.history.iter().filter(|o| o.complete.is_some()).count(),
            ops_indeterminate: self.history.iter().filter(|o| o.complete.is_none()).count(),
            leader_terms: self.checker.leader_terms(),
            committed: self.checker.committed_len(),
            lease: self.profile.lease,
            clocks: self.profile.clocks,
            counts: Counts { membership: self.changes.counts, ..self.counts },
            membership: self.changes.on,
        }
    }

    fn event_loop(&mut self) -> Result<(), Violation> {
        while let Some((at, event)) = self.queue.pop() {
            self.now = at;
            self.events += 1;
            if self.events == self.opts.events {
                self.stop_faults()?;
            }
            let changed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.handle(event)));
            let changed = match changed {
                Ok(changed) => changed?,
                Err(panic) => {
                    return Err(Violation {
                        property: "core invariants (assertion)",
                        detail: crate::panic_text(panic.as_ref()),
                    });
                }
            };
            if let Some(id) = changed {
                self.checker.check(&self.nodes, id)?;
                self.retire_if_removed(id);
            }
            if let Some(deadline) = self.liveness_deadline {
                if self.is_settled() {
                    return Ok(());
                }
                if self.now > deadline {
                    return Err(Violation {
                        property: "liveness",
                        detail: format!("no settled leader {LIVENESS_MS} ms after faults stopped: {}", self.summary()),
                    });
                }
            }
        }
        Ok(())
    }

    fn summary(&self) -> String {
        let servers: Vec<String> = self
            .nodes
            .iter()
            .map(|n| match n.raft() {
                None if n.retired => format!("{}:stopped", n.id),
                None => format!("{}:down", n.id),
                Some(r) => {
                    let what = if r.is_voter() {
                        ""
                    } else if r.membership().contains(r.id()) {
                        "(learner)"
                    } else {
                        "(out)"
                    };
                    let (term, commit, applied) = (r.current_term(), r.commit_index(), n.applied.len());
                    format!("{}{what}:{}/t{term}/c{commit}/a{applied}", n.id, r.role())
                }
            })
            .collect();
        format!("{} acked up to {}", servers.join(" "), self.acked_index)
    }

    /// Faults stop: heal, restart, resume; clients finish what they started.
    fn stop_faults(&mut self) -> Result<(), Violation> {
        self.faults_on = false;
        self.blocked.clear();
        for i in 0..self.nodes.len() {
            if let Some(pause) = self.nodes[i].paused.as_ref().map(|p| p.id) {
                let id = self.nodes[i].id;
                self.resume(id, pause)?;
                self.checker.check(&self.nodes, id)?;
            }
            if !self.nodes[i].is_up() && !self.nodes[i].retired {
                let seed = self.rng.next_u64();
                self.nodes[i].restart(seed);
                let id = self.nodes[i].id;
                let effects = self.drive_node(id);
                self.apply_effects(id, effects).expect("a restart produces no violation by itself");
            }
        }
        self.liveness_deadline = Some(self.now + LIVENESS_MS);
        self.trace.line(|| format!("{:>7} faults stop; liveness check begins", self.now));
        Ok(())
    }

    /// Liveness reached: a leader that is a voter, acknowledged by every member of its
    /// membership (servers outside it are not part of the cluster), every client idle, and
    /// every acknowledged operation applied on every member.
    fn is_settled(&self) -> bool {
        if self.clients.iter().any(|c| c.current.is_some()) {
            return false;
        }
        let Some(leader) = self.nodes.iter().filter_map(|n| n.raft()).find(|r| r.role() == Role::Leader) else {
            return false;
        };
        let members = leader.membership();
        leader.is_voter()
            && self.nodes.iter().filter(|n| members.contains(n.id)).all(|n| {
                n.raft().is_some_and(|r| {
                    r.leader_id() == Some(leader.id())
                        && r.current_term() == leader.current_term()
                        && n.applied.len() as u64 >= self.acked_index.0
                })
            })
    }

    /// Handle one event; returns the server whose state it changed.
    fn handle(&mut self, event: Event) -> Result<Option<NodeId>, Violation> {
        match event {
            Event::Tick(id) => {
                // Every TICK_MS of the server's own clock.
                let next = self.profile.next_tick(id, self.tick_at[id.0 as usize - 1]);
                self.tick_at[id.0 as usize - 1] = next;
                self.queue.push(next.ceil() as Time, Event::Tick(id));
                let node = self.node(id);
                if !node.is_up() || node.is_paused() {
                    return Ok(None); // a paused process's ticks are skipped, not replayed
                }
                node.raft_mut().expect("up").tick();
                self.trace.mix(&[self.now, 1, id.0]);
                self.drive(id)
            }
            Event::Deliver { from, to, message } => self.deliver(from, to, message),
            Event::PersistDone { node, incarnation } => {
                let n = self.node(node);
                if n.incarnation != incarnation || !n.is_up() {
                    return Ok(None);
                }
                if let Some(pause) = n.paused.as_mut() {
                    pause.syncs_done += 1; // noticed when the process resumes
                    return Ok(None);
                }
                if self.maybe_crash_before_hard_state(node) {
                    return Ok(None);
                }
                Ok(self.sync_done(node)?.then_some(node))
            }
            Event::ClientRequest { client, to, attempt } => {
                if let Some(pause) = self.node(to).paused.as_mut() {
                    pause.inbox.push_back(Inbound::Client { client, attempt });
                    return Ok(None);
                }
                self.client_request(client, to, attempt)
            }
            Event::Resume { node, pause } => self.resume(node, pause),
            Event::SnapshotTaken { node, incarnation, meta, len } => {
                let n = self.node(node);
                if n.incarnation != incarnation || !n.is_up() {
                    return Ok(None);
                }
                if n.is_paused() {
                    let at = self.now + TICK_MS;
                    self.queue.push(at, Event::SnapshotTaken { node, incarnation, meta, len });
                    return Ok(None);
                }
                let (now, rng) = (self.now, &mut self.rng);
                let effects = self.nodes[node.0 as usize - 1].snapshot_taken(now, &mut || disk_latency(rng), meta, len);
                self.apply_effects(node, effects)?;
                Ok(Some(node))
            }
            Event::Membership { periodic } => {
                self.membership_event(periodic)?;
                Ok(None)
            }
            Event::Isolate(node) => {
                self.isolate(node);
                Ok(None)
            }
            Event::Heal => {
                if self.faults_on {
                    self.heal();
                }
                Ok(None)
            }
            Event::ClientReply { client, attempt, outcome } => {
                self.client_reply(client, attempt, outcome);
                Ok(None)
            }
            Event::ClientTimeout { client, attempt } => {
                self.client_timeout(client, attempt);
                Ok(None)
            }
            Event::ClientNext { client } => {
                self.client_next(client);
                Ok(None)
            }
            Event::Crash { node, incarnation } => {
                if self.faults_on && self.node(node).is_up() && self.node(node).incarnation == incarnation {
                    self.crash(node, 15, "CRASH new leader");
                    let at = self.now + self.rng.range(20, 150);
                    self.queue.push(at, Event::Restart(node));
                }
                Ok(None)
            }
            Event::Restart(node) => {
                if self.faults_on && !self.node(node).is_up() && !self.node(node).retired {
                    self.restart(node, 16)?;
                    return Ok(Some(node));
                }
                Ok(None)
            }
            Event::Fault => {
                if self.faults_on {
                    if self.stability {
                        self.stability_fault();
                    } else if self.profile.attack {
                        self.attack_fault()?;
                    } else {
                        self.inject_fault()?;
                    }
                    // Dense faults: a run of 2,000 events spans well under a second of
                    // virtual time, and every run should see crashes, partitions and pauses.
                    let at = self.now + self.rng.range(5, 60);
                    self.queue.push(at, Event::Fault);
                }
                Ok(None)
            }
        }
    }

    /// The oldest write in flight at `id` completed: sync, then the rest of its Ready. False
    /// when there was nothing in flight (the write was lost with an earlier incarnation).
    fn sync_done(&mut self, id: NodeId) -> Result<bool, Violation> {
        if self.nodes[id.0 as usize - 1].writes.is_empty() {
            return Ok(false);
        }
        let (now, rng) = (self.now, &mut self.rng);
        let effects = self.nodes[id.0 as usize - 1].finish_sync(now, &mut || disk_latency(rng));
        self.trace.mix(&[self.now, 3, id.0]);
        self.trace.line(|| format!("{:>7} {id}: fsync done", self.now));
        self.apply_effects(id, effects)?;
        Ok(true)
    }

    /// A message reaches `to`: dropped by a cut link or a crashed server, queued by a paused
    /// one (its socket buffers it), handled by a running one.
    fn deliver(&mut self, from: NodeId, to: NodeId, message: Message) -> Result<Option<NodeId>, Violation> {
        if self.blocked.contains(&(from, to)) || !self.nodes[to.0 as usize - 1].is_up() {
            return Ok(None);
        }
        if let Some(pause) = self.node(to).paused.as_mut() {
            pause.inbox.push_back(Inbound::Message { from, message });
            return Ok(None);
        }
        self.step(from, to, message)
    }

    /// `to` handles a message that reached it.
    fn step(&mut self, from: NodeId, to: NodeId, message: Message) -> Result<Option<NodeId>, Violation> {
        self.trace.mix(&[self.now, 2, from.0, to.0, message.term().0]);
        self.trace.line(|| format!("{:>7} {from}->{to} {message:?}", self.now));
        let (now, rng) = (self.now, &mut self.rng);
        let effects = self.nodes[to.0 as usize - 1].step(now, &mut || disk_latency(rng), from, message);
        self.apply_effects(to, effects)?;
        self.maybe_kill_new_leader(to);
        self.attack_after_step(to);
        Ok(Some(to))
    }

    fn drive_node(&mut self, id: NodeId) -> Effects {
        let (now, rng) = (self.now, &mut self.rng);
        self.nodes[id.0 as usize - 1].drive(now, &mut || disk_latency(rng))
    }

    fn drive(&mut self, id: NodeId) -> Result<Option<NodeId>, Violation> {
        let effects = self.drive_node(id);
        self.apply_effects(id, effects)?;
        self.maybe_kill_new_leader(id);
        Ok(Some(id))
    }

    /// A targeted fault: a server that just won an election sometimes crashes within a few
    /// milliseconds, before its first entries are replicated — the raw material of the
    /// paper's Figure 8 (leaders of later terms holding entries nobody else has).
    fn maybe_kill_new_leader(&mut self, id: NodeId) {
        let node = &self.nodes[id.0 as usize - 1];
        let Some(raft) = node.raft() else { return };
        if raft.role() != Role::Leader || !self.led.insert((id, raft.current_term().0)) {
            return;
        }
        let term = raft.current_term().0;
        self.trace.line(|| format!("{:>7} {id} leads term {term}", self.now));
        if self.transfer_to.take().is_some_and(|(to, asked)| to == id && term == asked + 1) {
            self.counts.transfers_done += 1;
        }
        // An attack run needs its leaders alive (the attack is the fault).
        if !self.faults_on || self.stability || self.profile.attack {
            return;
        }
        let incarnation = node.incarnation;
        self.maybe_change_at_new_leader();
        if self.chance(50) {
            let at = self.now + self.rng.range(1, 30);
            self.queue.push(at, Event::Crash { node: id, incarnation });
        }
    }
}
