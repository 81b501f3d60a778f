//! The simulated clients: each issues key-value operations one at a time, retries an
//! attempt on another server after a timeout (same client id and sequence number), follows
//! redirects, and gives up on an operation after its deadline (its outcome then stays
//! unknown in the history).

use super::disk_latency;
use super::{World, ATTEMPT_TIMEOUT_MS, KEYS, OPERATION_DEADLINE_MS};
use crate::codec::{decode, encode};
use crate::core::NodeId;
use crate::kv::{KvCommand, KvOp, KvResponse};
use crate::sim::checker::Violation;
use crate::sim::events::{ClientOutcome, Event, Time};
use crate::sim::linearizability::Operation;

impl World {
    pub(super) fn client_next(&mut self, client: usize) {
        if self.liveness_deadline.is_some() {
            return; // faults stopped: clients only finish what they started
        }
        let key = format!("k{}", self.rng.range(0, KEYS)).into_bytes();
        let c = &mut self.clients[client];
        c.seq += 1;
        let seq = c.seq;
        let value = format!("c{}-{}", c.client_id, seq).into_bytes();
        let op = match self.rng.range(0, 10) {
            0..=3 => KvOp::Put { key, value },
            4..=6 => KvOp::Get { key },
            7 => KvOp::Delete { key },
            _ => {
                // Expect a value some client may have written recently, or absence.
                let expected = self.chance(70).then(|| {
                    let (who, back) = (self.rng.range(1, self.clients.len() as u64 + 1), self.rng.range(1, 4));
                    format!("c{who}-{}", seq.saturating_sub(back).max(1)).into_bytes()
                });
                KvOp::Cas { key, expected, new: Some(value) }
            }
        };
        let c = &mut self.clients[client];
        let command = encode(&KvCommand { client_id: c.client_id, seq, op: op.clone() });
        self.history.push(Operation { client: c.client_id, op, invoke: self.now, complete: None, response: None });
        c.current = Some((self.history.len() - 1, command, 0));
        self.client_attempt(client, 1);
    }

    /// Send the current operation again (same client id and sequence number).
    pub(super) fn client_attempt(&mut self, client: usize, delay: Time) {
        let guess = self.clients[client].leader_guess;
        let to = guess.unwrap_or_else(|| self.random_node());
        let c = &mut self.clients[client];
        c.next_attempt += 1;
        let next = c.next_attempt;
        let Some((_, _, attempt)) = c.current.as_mut() else { return };
        *attempt = next;
        let attempt = next;
        self.queue.push(self.now + delay, Event::ClientRequest { client, to, attempt });
        self.queue.push(self.now + delay + ATTEMPT_TIMEOUT_MS, Event::ClientTimeout { client, attempt });
    }

    pub(super) fn client_request(
        &mut self,
        client: usize,
        to: NodeId,
        attempt: u64,
    ) -> Result<Option<NodeId>, Violation> {
        let Some((_, command, current)) = self.clients[client].current.clone() else { return Ok(None) };
        if current != attempt || !self.nodes[to.0 as usize - 1].is_up() {
            return Ok(None); // stale, or lost with the crashed server
        }
        self.trace.mix(&[self.now, 4, client as u64, to.0, attempt]);
        let (now, rng) = (self.now, &mut self.rng);
        let effects = self.nodes[to.0 as usize - 1].propose(now, &mut || disk_latency(rng), (client, attempt), command);
        let redirected = !effects.redirected.is_empty();
        self.apply_effects(to, effects)?;
        if redirected {
            return Ok(None); // a follower refused it: nothing changed there
        }
        self.maybe_kill_new_leader(to);
        Ok(Some(to))
    }

    pub(super) fn client_reply(&mut self, client: usize, attempt: u64, outcome: ClientOutcome) {
        let Some((op, _, current)) = self.clients[client].current.clone() else { return };
        if current != attempt {
            return;
        }
        match outcome {
            ClientOutcome::Applied(bytes) => {
                let response: KvResponse = decode(&bytes, 1 << 20).expect("the store's own response");
                self.history[op].complete = Some(self.now);
                self.history[op].response = Some(response);
                self.clients[client].current = None;
                let at = self.now + self.rng.range(0, 20);
                self.queue.push(at, Event::ClientNext { client });
            }
            ClientOutcome::NotLeader(hint) => {
                self.clients[client].leader_guess = hint;
                let delay = if hint.is_some() { 1 } else { 20 };
                self.client_attempt(client, delay);
            }
            ClientOutcome::Dropped => {
                self.clients[client].leader_guess = None;
                self.client_attempt(client, 5);
            }
        }
    }

    pub(super) fn client_timeout(&mut self, client: usize, attempt: u64) {
        let Some((op, _, current)) = self.clients[client].current.clone() else { return };
        if current != attempt {
            return;
        }
        self.clients[client].leader_guess = None;
        // Past the operation's deadline (and not in the liveness phase, where every operation
        // must finish) the client gives up: the outcome stays unknown.
        if self.liveness_deadline.is_none() && self.now - self.history[op].invoke > OPERATION_DEADLINE_MS {
            self.clients[client].current = None;
            self.queue.push(self.now + 1, Event::ClientNext { client });
            return;
        }
        self.client_attempt(client, 1);
    }
}
