//! The simulated clients: each issues key-value operations one at a time, retries an
//! attempt on another server after a timeout (same client id and sequence number), follows
//! redirects, and gives up on an operation after its deadline (its outcome then stays
//! unknown in the history). A get goes through the log, or is a read without it: ReadIndex on
//! the leader, a follower read, or a lease read (a ReadIndex read where no lease is held).
//! Every read is in the history like any other operation, so the linearizability check covers
//! each path.

use super::disk_latency;
use super::{World, ATTEMPT_TIMEOUT_MS, KEYS, OPERATION_DEADLINE_MS};
use crate::codec::{decode, encode};
use crate::core::{NodeId, Role};
use crate::kv::{KvCommand, KvOp, KvResponse};
use crate::sim::checker::Violation;
use crate::sim::events::{ClientOutcome, Event, Time};
use crate::sim::linearizability::Operation;
use crate::transport::client_wire::ReadMode;

/// How an operation reaches the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::sim) enum Path {
    /// Proposed: a log entry (every write, and gets through the log).
    Log,
    /// A read asked of the leader (ReadIndex, or a lease read).
    Leader(ReadMode),
    /// A read asked of a follower, which asks the leader for the read index.
    Follower,
}

/// A client's operation in progress.
pub(in crate::sim) struct Current {
    /// Its index in the history.
    pub op: usize,
    /// The encoded command (a read's query is the same encoded Get).
    pub command: Vec<u8>,
    /// The attempt in flight.
    pub attempt: u64,
    pub path: Path,
}

impl World {
    pub(super) fn client_next(&mut self, client: usize) {
        if self.liveness_deadline.is_some() {
            return; // faults stopped: clients only finish what they started
        }
        let key = format!("k{}", self.rng.range(0, KEYS)).into_bytes();
        let c = &mut self.clients[client];
        c.seq += 1;
        let seq = c.seq;
        let value = value_of(c.client_id, seq);
        let mut path = Path::Log;
        let op = match self.rng.range(0, 10) {
            0..=3 => KvOp::Put { key, value },
            4..=6 => {
                path = match self.rng.range(0, 4) {
                    0 => Path::Log,
                    1 => Path::Leader(ReadMode::ReadIndex),
                    2 => Path::Follower,
                    _ => Path::Leader(ReadMode::Lease),
                };
                KvOp::Get { key }
            }
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
        // The lease attack's clients: one reads from the cut-off leader, the others write.
        let (op, path) = self.attack_op(client, op, path, value_of(self.clients[client].client_id, seq));
        let c = &mut self.clients[client];
        let command = encode(&KvCommand { client_id: c.client_id, seq, op: op.clone() });
        self.history.push(Operation { client: c.client_id, op, invoke: self.now, complete: None, response: None });
        c.current = Some(Current { op: self.history.len() - 1, command, attempt: 0, path });
        self.client_attempt(client, 1);
    }

    /// Send the current operation again (same client id and sequence number).
    pub(super) fn client_attempt(&mut self, client: usize, delay: Time) {
        let Some(path) = self.clients[client].current.as_ref().map(|c| c.path) else { return };
        let guess = self.clients[client].leader_guess;
        let to = match (path, guess) {
            // A follower read goes to a server other than the leader it knows of.
            (Path::Follower, Some(leader)) if self.nodes.len() > 1 => {
                let other = self.rng.range(1, self.nodes.len() as u64);
                NodeId(if other >= leader.0 { other + 1 } else { other })
            }
            (Path::Follower, _) => self.random_node(),
            (_, Some(leader)) => leader,
            (_, None) => self.random_node(),
        };
        let to = self.attack_route(client, to);
        let c = &mut self.clients[client];
        c.next_attempt += 1;
        let next = c.next_attempt;
        let Some(current) = c.current.as_mut() else { return };
        current.attempt = next;
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
        let Some(c) = self.clients[client].current.as_ref() else { return Ok(None) };
        if c.attempt != attempt || !self.nodes[to.0 as usize - 1].is_up() {
            return Ok(None); // stale, or lost with the crashed server
        }
        let (command, path) = (c.command.clone(), c.path);
        self.trace.mix(&[self.now, 4, client as u64, to.0, attempt]);
        let (now, rng) = (self.now, &mut self.rng);
        let node = &mut self.nodes[to.0 as usize - 1];
        let token = (client, attempt);
        let effects = match path {
            Path::Log => node.propose(now, &mut || disk_latency(rng), token, command),
            Path::Leader(mode) => node.read(now, &mut || disk_latency(rng), token, command, mode),
            Path::Follower => node.read(now, &mut || disk_latency(rng), token, command, ReadMode::ReadIndex),
        };
        let redirected = !effects.redirected.is_empty();
        if effects.lease_reads > 0 {
            self.trace.line(|| format!("{:>7} {to}: lease read for client {client}", self.now));
        }
        self.apply_effects(to, effects)?;
        if redirected && path == Path::Log {
            return Ok(None); // a follower refused it: nothing changed there
        }
        self.maybe_kill_new_leader(to);
        Ok(Some(to))
    }

    pub(super) fn client_reply(&mut self, client: usize, attempt: u64, outcome: ClientOutcome) {
        let Some((op, current, path)) = self.clients[client].current.as_ref().map(|c| (c.op, c.attempt, c.path)) else {
            return;
        };
        if current != attempt {
            return;
        }
        match outcome {
            ClientOutcome::Applied(bytes) => {
                self.trace.line(|| format!("{:>7} client {client}: done ({path:?})", self.now));
                match (path, &self.history[op].op) {
                    (Path::Log, KvOp::Get { .. }) => self.counts.log_reads += 1,
                    (Path::Leader(ReadMode::ReadIndex), _) => self.counts.leader_reads += 1,
                    _ => {}
                }
                let response: KvResponse = decode(&bytes, 1 << 20).expect("the store's own response");
                self.history[op].complete = Some(self.now);
                self.history[op].response = Some(response);
                self.clients[client].current = None;
                let at = self.now + self.rng.range(0, 20);
                self.queue.push(at, Event::ClientNext { client });
            }
            ClientOutcome::NotLeader(hint) => {
                self.clients[client].leader_guess = hint;
                let delay = if hint.is_some() { 1 } else { self.attack_retry_ms().unwrap_or(20) };
                self.client_attempt(client, delay);
            }
            ClientOutcome::Dropped => {
                self.clients[client].leader_guess = None;
                self.client_attempt(client, 5);
            }
        }
    }

    pub(super) fn client_timeout(&mut self, client: usize, attempt: u64) {
        let Some((op, current)) = self.clients[client].current.as_ref().map(|c| (c.op, c.attempt)) else { return };
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

    /// `id` answered attempt `attempt` of `client`: count a follower read.
    pub(super) fn count_answer(&mut self, id: NodeId, client: usize, attempt: u64) {
        let Some(c) = self.clients[client].current.as_ref() else { return };
        let follower = self.nodes[id.0 as usize - 1].raft().is_some_and(|r| r.role() != Role::Leader);
        if c.attempt == attempt && c.path != Path::Log && follower {
            self.counts.follower_reads += 1;
        }
    }
}

/// The value client `client_id` writes in its operation `seq` (unique in the run).
pub(super) fn value_of(client_id: u64, seq: u64) -> Vec<u8> {
    format!("c{client_id}-{seq}").into_bytes()
}
