//! The nemeses: the random one (crashes, restarts, partitions, heals, process pauses,
//! leadership transfers, and a crash between a log sync and the hard-state save) and, for stability runs, one that only
//! ever faults a single follower at a time.

use super::{World, ELECTION_TICKS, TICK_MS};
use crate::core::{NodeId, Role};
use crate::sim::checker::Violation;
use crate::sim::events::{Event, Time};
use crate::sim::node::{Inbound, Pause};

/// Percent of the log syncs that also save a hard state after which the process dies before
/// that save (random nemesis only): elections save a hard state a few times per server and
/// run, so this is common enough to be explored in most seeds.
const SYNC_THEN_CRASH_PERCENT: u64 = 15;

impl World {
    /// Crash `id` (trace code `code`).
    pub(super) fn crash(&mut self, id: NodeId, code: u64, what: &'static str) {
        // Torn final records: some unsynced appends may have reached the disk before the crash.
        let unsynced = self.nodes[id.0 as usize - 1].unsynced() as u64;
        let keep = self.tear_rng.range(0, unsynced + 1) as usize;
        self.node(id).crash(keep);
        self.trace.mix(&[self.now, code, id.0]);
        self.trace.line(|| format!("{:>7} {what} {id}", self.now));
    }

    /// Restart `id` from its disk and let it act (trace code `code`).
    pub(super) fn restart(&mut self, id: NodeId, code: u64) -> Result<(), Violation> {
        let seed = self.rng.next_u64();
        self.node(id).restart(seed);
        self.trace.mix(&[self.now, code, id.0]);
        self.trace.line(|| format!("{:>7} RESTART {id}", self.now));
        let effects = self.drive_node(id);
        self.apply_effects(id, effects)
    }

    /// True when `id` may go down and a majority of the voters stays up (the new-leader
    /// nemesis may take one more); a server that is not a voter may always crash.
    fn may_crash(&self, id: NodeId) -> bool {
        let voters = self.voters_now();
        if !voters.contains(&id) {
            return true;
        }
        let down = voters.iter().filter(|v| !self.nodes[v.0 as usize - 1].is_up()).count();
        down < (voters.len() - 1) / 2
    }

    /// `id`'s oldest write in flight finished its fsync. Sometimes (random nemesis) the process
    /// dies right after the log sync and before the hard-state save that follows it in the
    /// runtime's order: the restarted server has the synced entries with the older term and
    /// vote. Returns whether it crashed.
    pub(super) fn maybe_crash_before_hard_state(&mut self, id: NodeId) -> bool {
        if !self.faults_on || self.stability || !self.nodes[id.0 as usize - 1].next_write_saves_hard_state() {
            return false;
        }
        if self.attacked().is_some() {
            return false; // the lease attack needs its majority up
        }
        if !self.may_crash(id) || !self.chance(SYNC_THEN_CRASH_PERCENT) {
            return false;
        }
        self.node(id).sync_then_crash();
        self.trace.mix(&[self.now, 18, id.0]);
        self.trace.line(|| format!("{:>7} CRASH {id} after its log sync, before its hard-state save", self.now));
        let at = self.now + self.rng.range(20, 150);
        self.queue.push(at, Event::Restart(id));
        true
    }

    /// Pause `id`'s process until `until` (trace code 14); a pause of a paused or crashed
    /// server does nothing.
    pub(super) fn pause(&mut self, id: NodeId, until: Time) {
        let node = &self.nodes[id.0 as usize - 1];
        if !node.is_up() || node.is_paused() {
            return;
        }
        self.pauses += 1;
        let pause = self.pauses;
        self.node(id).paused = Some(Pause { id: pause, inbox: Default::default(), syncs_done: 0 });
        self.queue.push(until, Event::Resume { node: id, pause });
        self.trace.mix(&[self.now, 14, id.0, until]);
        self.trace.line(|| format!("{:>7} PAUSE {id} until {until}", self.now));
    }

    /// The process resumes: first the fsync completions it missed (it was paused inside its
    /// write), then everything that reached it, in arrival order — all before its next tick,
    /// as the runtime drains its sockets before ticking; the ticks of the stall are skipped,
    /// not replayed. Each input is checked like an event of its own.
    pub(super) fn resume(&mut self, id: NodeId, pause: u64) -> Result<Option<NodeId>, Violation> {
        if self.nodes[id.0 as usize - 1].paused.as_ref().is_none_or(|p| p.id != pause) {
            return Ok(None); // crashed (and maybe restarted) since that pause began
        }
        let Pause { inbox, syncs_done, .. } = self.node(id).paused.take().expect("paused");
        self.trace.mix(&[self.now, 17, id.0, inbox.len() as u64, syncs_done as u64]);
        self.trace.line(|| format!("{:>7} RESUME {id}: {syncs_done} fsyncs, {} inputs queued", self.now, inbox.len()));
        for _ in 0..syncs_done {
            if self.sync_done(id)? {
                self.checker.check(&self.nodes, id)?;
            }
        }
        for input in inbox {
            if !self.nodes[id.0 as usize - 1].is_up() {
                break;
            }
            let changed = match input {
                Inbound::Message { from, message } => self.step(from, id, message)?,
                Inbound::Client { client, attempt } => self.client_request(client, id, attempt)?,
            };
            if changed.is_some() {
                self.checker.check(&self.nodes, id)?;
            }
        }
        Ok(Some(id))
    }

    /// The random nemesis.
    pub(super) fn inject_fault(&mut self) -> Result<(), Violation> {
        let roll = self.rng.range(0, 100);
        // Half the time aim at the leader (as Jepsen's nemeses do): that is where elections,
        // truncations and lost acknowledgements happen.
        let leader = self.nodes.iter().find(|n| n.raft().is_some_and(|r| r.role() == Role::Leader)).map(|n| n.id);
        let random = self.random_node();
        let id = match leader {
            Some(leader) if self.chance(50) => leader,
            _ => random,
        };
        match roll {
            0..=19 if self.nodes[id.0 as usize - 1].is_up() && self.may_crash(id) => {
                self.crash(id, 10, "CRASH");
            }
            20..=39 if !self.nodes[id.0 as usize - 1].is_up() && !self.nodes[id.0 as usize - 1].retired => {
                self.restart(id, 11)?;
                self.checker.check(&self.nodes, id)?;
            }
            40..=59 => self.partition(),
            60..=74 => self.heal(),
            75..=84 => {
                let until = self.now + self.rng.range(50, 400);
                self.pause(id, until);
            }
            // The leader hands over, to the server it finds most up to date or to any server
            // (even one that is down, cut off or behind: then the transfer is abandoned).
            85..=90 if leader.is_some() => {
                let to = self.chance(50).then(|| self.random_node());
                self.transfer(leader.expect("a leader"), to)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Every link works again (trace code 13).
    pub(super) fn heal(&mut self) {
        self.blocked.clear();
        self.trace.mix(&[self.now, 13]);
        self.trace.line(|| format!("{:>7} HEAL", self.now));
    }

    /// The stability nemesis: once the checker has a stable leader, fault one follower at a
    /// time — pause it, crash and restart it, cut it off both ways, or cut one direction of
    /// its links — and let the cluster be whole for two election timeouts before the next.
    /// The stable leader is never touched.
    pub(super) fn stability_fault(&mut self) {
        let Some((leader, _)) = self.checker.stable_leader() else { return };
        let whole = self.blocked.is_empty() && self.nodes.iter().all(|n| n.is_up() && !n.is_paused());
        if !whole || self.now < self.calm_until || self.nodes.len() < 2 {
            return;
        }
        let followers: Vec<NodeId> = self.nodes.iter().map(|n| n.id).filter(|&id| id != leader).collect();
        let id = followers[self.rng.range(0, followers.len() as u64) as usize];
        let kind = self.rng.range(0, 4);
        let end = match kind {
            0 => {
                let until = self.now + self.rng.range(50, 400);
                self.pause(id, until);
                until
            }
            1 => {
                self.crash(id, 10, "CRASH follower");
                let at = self.now + self.rng.range(20, 300);
                self.queue.push(at, Event::Restart(id));
                at
            }
            _ => {
                // Both ways (kind 2), or only its outgoing or only its incoming links (kind 3).
                let outgoing = kind == 2 || self.chance(50);
                let incoming = kind == 2 || !outgoing;
                for other in self.nodes.iter().map(|n| n.id).filter(|&o| o != id) {
                    if outgoing {
                        self.blocked.insert((id, other));
                    }
                    if incoming {
                        self.blocked.insert((other, id));
                    }
                }
                self.trace.mix(&[self.now, 19, id.0, u64::from(outgoing), u64::from(incoming)]);
                self.trace.line(|| format!("{:>7} CUT follower {id} (out {outgoing}, in {incoming})", self.now));
                let at = self.now + self.rng.range(100, 600);
                self.queue.push(at, Event::Heal);
                at
            }
        };
        self.calm_until = end + 2 * Time::from(ELECTION_TICKS) * TICK_MS;
    }

    /// A random partition: symmetric split, one-way cut, or a partial one (A hears B, B does
    /// not hear A) between random pairs.
    pub(super) fn partition(&mut self) {
        self.blocked.clear();
        let ids: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
        let kind = self.rng.range(0, 3);
        match kind {
            0 => {
                let side: Vec<bool> = ids.iter().map(|_| self.chance(50)).collect();
                for (i, &a) in ids.iter().enumerate() {
                    for (j, &b) in ids.iter().enumerate() {
                        if side[i] != side[j] {
                            self.blocked.insert((a, b));
                        }
                    }
                }
            }
            1 => {
                // Isolate one server (often the leader) in both directions.
                let leader = self.nodes.iter().find(|n| n.raft().is_some_and(|r| r.role() == Role::Leader));
                let a =
                    leader.map(|n| n.id).filter(|_| self.rng.range(0, 2) == 0).unwrap_or_else(|| self.random_node());
                for &b in &ids {
                    if b != a {
                        self.blocked.insert((a, b));
                        self.blocked.insert((b, a));
                    }
                }
            }
            _ => {
                for _ in 0..ids.len() {
                    let (a, b) = (self.random_node(), self.random_node());
                    if a != b {
                        self.blocked.insert((a, b));
                    }
                }
            }
        }
        self.trace.mix(&[self.now, 12, kind, self.blocked.len() as u64]);
        let blocked = self.blocked.clone();
        self.trace.line(|| format!("{:>7} PARTITION {blocked:?}", self.now));
    }
}
