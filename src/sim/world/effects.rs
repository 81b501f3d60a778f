//! A server's outputs put into the world: messages on the network (with the faults it
//! injects), fsyncs in progress, answers to clients and to the membership nemesis, applied
//! entries to the checker.

use super::{disk_latency, World};
use crate::core::{Message, NodeId};
use crate::sim::checker::Violation;
use crate::sim::events::{ClientOutcome, Event};
use crate::sim::node::Effects;

impl World {
    /// Put a server's outputs into the world: messages on the network, an fsync in progress,
    /// answers to clients, applied entries to the checker.
    pub(super) fn apply_effects(&mut self, id: NodeId, effects: Effects) -> Result<(), Violation> {
        for out in effects.messages {
            self.checker.sent(id, out.to, &out.message)?;
            self.send(id, out.to, out.message);
        }
        let incarnation = self.node(id).incarnation;
        for at in effects.done_at {
            self.queue.push(at, Event::PersistDone { node: id, incarnation });
        }
        if !effects.applied.is_empty() {
            // What this server now knows committed counts before its applies are judged.
            self.checker.record_commits(&self.nodes[id.0 as usize - 1])?;
        }
        // An entry applied twice or out of order is reported as that (the check after this
        // event), not as the different answer it leads to.
        let in_order = self.nodes[id.0 as usize - 1].apply_error.is_none();
        for (index, hash, response, command) in &effects.applied {
            self.checker.applied(id, *index, *hash)?;
            if in_order {
                self.checker.response(id, *index, command, response)?;
            }
        }
        for (meta, len) in effects.snapshots_taken {
            let at = self.now + disk_latency(&mut self.rng);
            self.queue.push(at, Event::SnapshotTaken { node: id, incarnation, meta, len });
        }
        self.counts.lease_reads += effects.lease_reads as u64;
        for (attempt, outcome) in effects.membership {
            self.membership_answer(attempt, outcome);
        }
        for (client, attempt, response) in effects.answered {
            self.count_answer(id, client, attempt);
            let at = self.now + self.rng.range(1, 5);
            self.queue.push(at, Event::ClientReply { client, attempt, outcome: ClientOutcome::Applied(response) });
        }
        for (client, attempt, leader_hint) in effects.redirected {
            let at = self.now + self.rng.range(1, 5);
            self.queue.push(at, Event::ClientReply { client, attempt, outcome: ClientOutcome::NotLeader(leader_hint) });
        }
        for (client, attempt) in effects.dropped {
            let at = self.now + self.rng.range(1, 5);
            self.queue.push(at, Event::ClientReply { client, attempt, outcome: ClientOutcome::Dropped });
        }
        // Remember where acknowledged operations were applied, for the liveness check.
        for (index, _, response, _) in effects.applied {
            if !response.is_empty() {
                self.acked_index = self.acked_index.max(index);
            }
        }
        Ok(())
    }

    /// The network: delay always; with faults, loss, duplication and long delays (reordering)
    /// — except in stability runs, whose network only delays (the stability rule is fair only
    /// if the healthy servers can hear each other), and in lease-attack runs, a LAN.
    pub(super) fn send(&mut self, from: NodeId, to: NodeId, message: Message) {
        let mut delay = self.rng.range(1, 8);
        if self.profile.attack {
            delay = 1 + delay % 2; // a LAN: the same draws, 1-2 ms, in order
        }
        if self.faults_on && !self.stability && !self.profile.attack {
            if self.chance(self.loss_percent) {
                return; // lost
            }
            if self.chance(5) {
                delay = self.rng.range(20, 300); // overtaken by later messages
            }
            if self.chance(2) {
                let again = self.now + self.rng.range(1, 100);
                self.queue.push(again, Event::Deliver { from, to, message: message.clone() });
            }
        }
        self.queue.push(self.now + delay, Event::Deliver { from, to, message });
    }
}
