//! One simulated server: the real core, a `MemStorage` with its crash model, the real
//! key-value state machine, and a driver that handles `Ready` in the runtime's order — except
//! that an fsync takes virtual time and is asynchronous: while it is in flight the server keeps
//! taking inputs (their outputs wait in the core), and takes no new `Ready` until `advance`.
//! That is the most the core's contract allows, so a crash can land between a write and its
//! sync, and acknowledgements can race the leader's own fsync.
//!
//! A paused process handles nothing: what reaches it (messages, client requests, fsync
//! completions) waits in [`Pause`] until it resumes, then is handled at once, in arrival order.

use super::events::Time;
use crate::core::{
    Entry, HardState, LogIndex, Message, NodeId, Options, Outgoing, PlantedBugs, Raft, RaftLog, Ready, Role, Term,
};
use crate::kv::{KvStore, StateMachine};
use crate::storage::{MemStorage, Storage};
use std::collections::BTreeMap;

/// Hash of an entry's identity and content (FNV-1a), chained along the log: equal chain
/// values at an index mean equal logs up to it (Log Matching in one comparison).
pub fn chain(previous: u64, entry: &Entry) -> u64 {
    let mut h = previous ^ 0xcbf2_9ce4_8422_2325;
    for b in entry.term.0.to_le_bytes().iter().chain(entry.index.0.to_le_bytes().iter()).chain(entry.data.iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Hash of one entry's own (term, index, data): what the checker compares an applied entry
/// with, so State Machine Safety is about the entry handed to the state machine, not about
/// the log around it.
pub fn entry_hash(entry: &Entry) -> u64 {
    chain(0, entry)
}

/// An input that reached a paused process: handled when it resumes.
pub enum Inbound {
    /// A peer's message.
    Message { from: NodeId, message: Message },
    /// A client's request (attempt `attempt` of client `client`).
    Client { client: usize, attempt: u64 },
}

/// A process stopped (SIGSTOP, a long GC, a stalled VM): its inputs queue up.
pub struct Pause {
    /// Names this pause, so a resume meant for an earlier one (before a crash) is ignored.
    pub id: u64,
    /// What arrived while paused, in arrival order.
    pub inbox: std::collections::VecDeque<Inbound>,
    /// Fsyncs that completed on the disk while the process could not notice.
    pub syncs_done: usize,
}

/// A Ready's second half, waiting for its write (and every earlier one) to be durable.
pub struct InFlight {
    hard_state: Option<HardState>,
    messages: Vec<Outgoing>,
    committed: Vec<Entry>,
    became_non_leader: bool,
    /// The write's last entry, reported to the core when durable.
    last_entry: Option<(LogIndex, Term)>,
}

/// A simulated server.
pub struct SimNode {
    /// Its id.
    pub id: NodeId,
    /// The core; `None` while crashed.
    pub raft: Option<Raft>,
    /// Its disk.
    pub storage: MemStorage,
    /// Its state machine.
    pub state_machine: KvStore,
    /// Indexes applied in this incarnation, in order.
    pub applied: Vec<LogIndex>,
    /// Hash chain of the log as handed to storage (updated from every Ready).
    pub chain: Vec<u64>,
    /// Counts restarts: a PersistDone of an earlier incarnation is ignored.
    pub incarnation: u64,
    /// Readies whose writes are in flight, completed in order (one PersistDone each).
    pub in_flight: std::collections::VecDeque<InFlight>,
    /// When the last write in flight completes (writes complete in order).
    pub last_done_at: Time,
    /// Set while the process is paused.
    pub paused: Option<Pause>,
    /// Proposals waiting for their entry: index -> (term, client, attempt).
    pub pending: BTreeMap<LogIndex, (Term, usize, u64)>,
    /// Set when an entry was applied out of order or twice: (index, applies before it).
    pub apply_error: Option<(LogIndex, usize)>,
    options: Options,
}

/// What the driver hands back to the simulation after an input.
#[derive(Default)]
pub struct Effects {
    /// Messages to put on the network now.
    pub messages: Vec<Outgoing>,
    /// Writes started: schedule one PersistDone at each of these times.
    pub done_at: Vec<Time>,
    /// Entries applied now: (index, [`entry_hash`] of the entry applied, encoded response).
    pub applied: Vec<(LogIndex, u64, Vec<u8>)>,
    /// Client proposals to answer `Dropped` (leadership lost or entry overwritten).
    pub dropped: Vec<(usize, u64)>,
    /// Client proposals answered: (client, attempt, response).
    pub answered: Vec<(usize, u64, Vec<u8>)>,
}

impl SimNode {
    /// A fresh server.
    pub fn new(id: NodeId, options: Options) -> Self {
        let raft = Raft::new(options.clone(), HardState::default());
        SimNode {
            id,
            raft: Some(raft),
            storage: MemStorage::new(),
            state_machine: KvStore::new(),
            applied: Vec::new(),
            chain: Vec::new(),
            incarnation: 0,
            in_flight: std::collections::VecDeque::new(),
            last_done_at: 0,
            paused: None,
            pending: BTreeMap::new(),
            apply_error: None,
            options,
        }
    }

    fn bugs(&self) -> PlantedBugs {
        self.options.planted.active()
    }

    /// Crash: the process state is gone; of the writes not yet synced, the first `keep`
    /// reached the disk and the next was torn (everything from it on is lost).
    pub fn crash(&mut self, keep: usize) {
        self.raft = None;
        self.paused = None;
        self.storage.crash_torn(keep);
        self.in_flight.clear();
        self.pending.clear();
    }

    /// The oldest write in flight completes its log sync, and the process dies before saving
    /// its hard state (a separate file, saved after the sync in the runtime's order): on
    /// restart the synced entries are there with the older term and vote.
    pub fn sync_then_crash(&mut self) {
        self.storage.sync().expect("mem storage");
        self.crash(0);
    }

    /// True when the oldest write in flight also saves a hard state (so a crash between its
    /// sync and that save leaves a state of its own).
    pub fn next_write_saves_hard_state(&self) -> bool {
        self.in_flight.front().is_some_and(|w| w.hard_state.is_some())
    }

    /// True while the process is paused.
    pub fn is_paused(&self) -> bool {
        self.paused.is_some()
    }

    /// Restart from what the disk holds.
    pub fn restart(&mut self, seed: u64) {
        assert!(self.raft.is_none(), "restart a crashed server only");
        self.incarnation += 1;
        // A fresh (but replayable) timeout sequence per incarnation.
        let options = Options { seed: seed ^ self.incarnation, ..self.options.clone() };
        let entries = self.storage.take_entries();
        self.chain.clear();
        for e in &entries {
            let previous = self.chain.last().copied().unwrap_or(0);
            self.chain.push(chain(previous, e));
        }
        self.raft = Some(Raft::restore(options, self.storage.hard_state(), RaftLog::from_entries(entries)));
        if !self.bugs().apply_twice_after_restart {
            // The state machine lives in memory: it is rebuilt by applying the log again.
            self.state_machine = KvStore::new();
            self.applied.clear();
        }
    }

    /// Entries appended but not yet synced.
    pub fn unsynced(&self) -> usize {
        self.storage.entries().len().saturating_sub(self.storage.durable_entries().len())
    }

    /// Length of the log as handed to storage (the view the checker compares).
    pub fn log_len(&self) -> u64 {
        self.chain.len() as u64
    }

    /// Term of entry `index` in the log as handed to storage.
    pub fn term_at(&self, index: u64) -> Option<crate::core::Term> {
        index.checked_sub(1).and_then(|i| self.storage.entries().get(i as usize)).map(|e| e.term)
    }

    /// True when the server can take an input now.
    pub fn is_up(&self) -> bool {
        self.raft.is_some()
    }

    /// Take every Ready the core has: write now (truncate, append), send what may go before
    /// the fsync, and queue the rest behind the write. `latency` draws an fsync duration.
    pub fn drive(&mut self, now: Time, latency: &mut dyn FnMut() -> Time) -> Effects {
        let mut effects = Effects::default();
        let bugs = self.bugs();
        loop {
            let Some(raft) = self.raft.as_mut() else { return effects };
            if !raft.has_ready() {
                return effects;
            }
            let Ready {
                hard_state,
                truncate_from,
                entries,
                must_sync,
                send_before_persist,
                messages,
                committed_entries,
                soft_state,
            } = raft.ready();
            if let Some(from) = truncate_from {
                self.storage.truncate_from(from).expect("mem storage");
                self.chain.truncate(from.0 as usize - 1);
                for (_, (_, client, attempt)) in self.pending.split_off(&from) {
                    effects.dropped.push((client, attempt));
                }
            }
            let appended = raft.entries(entries);
            self.storage.append(appended).expect("mem storage");
            for e in appended {
                let previous = self.chain.last().copied().unwrap_or(0);
                self.chain.push(chain(previous, e));
            }
            let early = send_before_persist
                || (bugs.vote_before_persist && hard_state.is_some())
                || (bugs.ack_before_durable && !entries.is_empty() && raft.role() != Role::Leader);
            let mut write = InFlight {
                hard_state,
                messages: Vec::new(),
                committed: raft.entries(committed_entries).to_vec(),
                became_non_leader: soft_state.is_some_and(|s| s.role != Role::Leader),
                last_entry: appended.last().map(|e| (e.index, e.term)),
            };
            if early {
                effects.messages.extend(messages);
            } else {
                write.messages = messages;
            }
            if !must_sync && self.in_flight.is_empty() {
                self.complete(write, &mut effects);
                continue;
            }
            // Behind earlier writes (or an fsync of its own): completes in order.
            let done = if must_sync { now + latency() } else { now };
            self.last_done_at = self.last_done_at.max(done);
            self.in_flight.push_back(write);
            effects.done_at.push(self.last_done_at);
        }
    }

    /// The oldest write in flight is durable: sync, then send, apply, report to the core.
    pub fn finish_sync(&mut self, now: Time, latency: &mut dyn FnMut() -> Time) -> Effects {
        let mut effects = Effects::default();
        if let Some(write) = self.in_flight.pop_front() {
            self.storage.sync().expect("mem storage");
            self.complete(write, &mut effects);
        }
        let more = self.drive(now, latency);
        effects.messages.extend(more.messages);
        effects.done_at.extend(more.done_at);
        effects.applied.extend(more.applied);
        effects.dropped.extend(more.dropped);
        effects.answered.extend(more.answered);
        effects
    }

    fn complete(&mut self, after: InFlight, effects: &mut Effects) {
        if let Some(hs) = after.hard_state {
            self.storage.save_hard_state(&hs).expect("mem storage");
        }
        effects.messages.extend(after.messages);
        for entry in after.committed {
            if entry.index.0 != self.applied.len() as u64 + 1 && self.apply_error.is_none() {
                self.apply_error = Some((entry.index, self.applied.len()));
            }
            self.applied.push(entry.index);
            let hash = entry_hash(&entry);
            let response =
                if entry.data.is_empty() { Vec::new() } else { self.state_machine.apply(entry.index, &entry.data) };
            if let Some((term, client, attempt)) = self.pending.remove(&entry.index) {
                if term == entry.term {
                    effects.answered.push((client, attempt, response.clone()));
                } else {
                    effects.dropped.push((client, attempt));
                }
            }
            effects.applied.push((entry.index, hash, response));
        }
        if after.became_non_leader {
            for (_, (_, client, attempt)) in std::mem::take(&mut self.pending) {
                effects.dropped.push((client, attempt));
            }
        }
        if let (Some(raft), Some((index, term))) = (self.raft.as_mut(), after.last_entry) {
            raft.persisted(index, term);
        }
    }
}
