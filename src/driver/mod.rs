//! The one place between the core and the world: it takes each [`Ready`], hands its writes to
//! the disk, sends what may leave now, holds back what must wait for the disk, and — when a
//! write is reported durable — sends the messages that promised it, applies the committed
//! entries, answers the proposals waiting for them, and tells the core
//! ([`Raft::persisted`]). The production runtime (node/runtime.rs: ZeroMQ, a writer thread,
//! the real clock) and the simulator (sim/node.rs: a simulated network and disk, virtual time)
//! both drive their core through this code, so the ordering the server runs is the ordering
//! the simulator checks.
//!
//! The order (thesis §3.8, §10.2.1; documented on [`Ready`]):
//! 1. the Ready's writes (truncation, entries, hard state) go to [`Io::write`], which is
//!    asynchronous: writes complete in order, each reported with [`Driver::write_done`];
//! 2. its messages leave at once when they promise nothing about this server's disk (a
//!    leader's appends and heartbeats: `send_before_persist`), else only after its write and
//!    every earlier one are durable — a vote or an acknowledgement never leaves before what it
//!    promises is on disk;
//! 3. its committed entries are applied, and their proposals answered, after the same wait
//!    (the core hands out only entries that are already durable here);
//! 4. the core learns of each durable write through [`Raft::persisted`]; the leader counts
//!    itself towards commit only then.
//!
//! Readies keep being taken while writes are in flight: the writer can put every write that
//! queued up during one fsync into the next (group commit across Readies).

use crate::core::{
    Entry, HardState, IndexRange, LogIndex, Message, NodeId, Outgoing, PlantedBugs, ProposeError, Raft, Ready, Role,
    SnapshotChunk, SoftState, Term, COMMAND_BYTES_MAX,
};
use crate::kv::{SnapshotJob, StateMachine};
use crate::storage::{Snapshot, SnapshotMeta};
use crate::transport::client_wire::ClientError;
use std::collections::{BTreeMap, VecDeque};

mod reads;
mod snapshot;
#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod tests;

pub use reads::{Lease, CLOCK_DRIFT_MAX};
pub use snapshot::{image_len, recovered_log, snapshot_membership, SnapshotPolicy, SnapshotWrite};

/// Proposals waiting for commitment at once; beyond it they are refused `Busy`. Bounds memory
/// and the latency a new proposal would queue behind.
pub const PENDING_MAX: usize = 65_536;

/// A proposal's outcome: committed at an index with the state machine's response, or refused.
pub type Outcome = Result<(LogIndex, Vec<u8>), ClientError>;

/// What one Ready asks of the disk, copied out of the core so that a writer thread can own it.
/// Applied in this order: truncate, append, (when `sync`) fsync, save the hard state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteRequest {
    /// Remove every entry at or after this index first (a §5.3 conflict).
    pub truncate_from: Option<LogIndex>,
    /// Entries to append after the truncation.
    pub entries: Vec<Entry>,
    /// New term/vote to save durably after the log is synced.
    pub hard_state: Option<HardState>,
    /// Make all of it durable before reporting the write done (always true today: the driver
    /// submits only Readies that need a sync; the field keeps the contract explicit).
    pub sync: bool,
    /// First of all: make a snapshot the durable one (a received image, or one this server
    /// took), discarding the log when the snapshot says so.
    pub snapshot: Option<SnapshotWrite>,
    /// Last of all: discard the log up to this index (a durable snapshot covers it).
    pub compact_to: Option<LogIndex>,
}

/// The world as the driver sees it. The production runtime implements it with ZeroMQ and a
/// writer thread; the simulator with its network and disks.
pub trait Io<T> {
    /// Put `message` on the network to `to` (a lost message is fine: Raft retries).
    fn send(&mut self, to: NodeId, message: Message);
    /// Start a write. It must complete in order with the others, and be reported with
    /// [`Driver::write_done`] once durable (or the server stops, fail-stop).
    fn write(&mut self, request: WriteRequest);
    /// The outcome of the proposal `token`.
    fn answer(&mut self, token: T, outcome: Outcome);
    /// `entry` was applied with `response` (empty for a no-op); for checkers and metrics.
    fn applied(&mut self, _entry: &Entry, _response: &[u8]) {}
    /// The role, term or leader changed.
    fn soft_state(&mut self, _soft: SoftState) {}
    /// The state machine was replaced by a received snapshot's state (for checkers).
    fn restored(&mut self, _meta: &SnapshotMeta) {}
    /// Bytes `offset..offset + len` of the snapshot image (`index`, `term`) this server holds,
    /// to send as a chunk; `None` when that image is gone (superseded and removed).
    fn read_snapshot(&mut self, index: LogIndex, term: Term, offset: u64, len: usize) -> Option<Vec<u8>>;
    /// Write a received chunk into the incoming image (offset 0 starts a new one).
    fn receive_snapshot_chunk(&mut self, chunk: &SnapshotChunk);
    /// The incoming image is complete: read and check it completely (checksum, format).
    fn received_snapshot(&mut self) -> Result<Snapshot, String>;
    /// Take a snapshot in the background: run `job` off the loop, make the image durable under
    /// a temporary name, then report [`Driver::snapshot_taken`] with the image's size. It is
    /// made the snapshot (and the log compacted) by a later [`WriteRequest::snapshot`].
    fn take_snapshot(&mut self, meta: SnapshotMeta, job: SnapshotJob);
    /// This server's monotonic clock (any origin): what a lease (§6.4.1) is measured with.
    fn now(&self) -> std::time::Duration;
}

/// The second half of a Ready, waiting for its write (and every earlier one) to be durable.
struct Waiting {
    /// True when this Ready's write went to [`Io::write`]; false when it only waits behind
    /// earlier writes.
    submitted: bool,
    messages: Vec<Outgoing>,
    committed: IndexRange,
    hard_state: Option<HardState>,
    soft_state: Option<SoftState>,
    /// The write's last entry, reported to the core when durable.
    last_entry: Option<(LogIndex, Term)>,
    /// A received snapshot installed by this write: the state machine is restored from it
    /// first of all, once it is durable.
    restore: Option<Snapshot>,
    /// A snapshot this server took, made durable by this write, then the log compacted.
    taken: Option<snapshot::Taken>,
}

/// A core with its state machine and the proposals waiting for their entries; see the module
/// docs for the order it keeps.
pub struct Driver<M, T> {
    /// The core.
    pub raft: Raft,
    /// The state machine committed entries are applied to.
    pub state_machine: M,
    /// Proposals in the log, by index, with the term they were proposed in.
    pending: BTreeMap<LogIndex, (Term, T)>,
    /// Readies whose writes (or an earlier Ready's write) are not yet durable, oldest first.
    waiting: VecDeque<Waiting>,
    /// The hard state as durable on disk (the last completed write that carried one).
    durable: HardState,
    /// The soft state as last published (once the Ready that changed it was durable).
    published: SoftState,
    /// Snapshot bookkeeping: when to take one, what is in progress.
    snapshots: snapshot::Snapshots,
    /// Last index applied to the state machine (the core's `last_applied` runs ahead: it
    /// counts what it handed out, and Readies wait for their writes).
    applied: LogIndex,
    /// A received image checked and adopted by the core, until its install is submitted.
    received: Option<Snapshot>,
    /// Reads without the log, waiting for a read index or for it to be applied.
    reads: reads::Reads<T>,
    /// Proposals handed to [`Driver::propose`] since start, refused ones included (metrics).
    proposals: u64,
}

impl<M: StateMachine, T> Driver<M, T> {
    /// Drive `raft`, applying to `state_machine`.
    /// `state_machine` must hold the state as of the log's start (`raft.log().compacted()`:
    /// restored from that snapshot, or empty). Snapshots are taken as `policy` says.
    pub fn new(raft: Raft, state_machine: M, policy: SnapshotPolicy) -> Self {
        let (durable, published) = (raft.hard_state(), raft.soft_state());
        let applied = raft.log().compacted().0;
        let raft_image_len = raft.snapshot().map_or(0, |s| s.total_len);
        Driver {
            raft,
            state_machine,
            pending: BTreeMap::new(),
            waiting: VecDeque::new(),
            durable,
            published,
            snapshots: snapshot::Snapshots::new(policy, applied, raft_image_len),
            applied,
            received: None,
            reads: reads::Reads::new(),
            proposals: 0,
        }
    }

    /// Last index applied to the state machine.
    pub fn applied(&self) -> LogIndex {
        self.applied
    }

    /// The term and vote as they are on disk: what a status may show without a crash ever
    /// taking it back (the core may be ahead while a write is in flight).
    pub fn durable_hard_state(&self) -> HardState {
        self.durable
    }

    /// Role, term and leader as last published: each change is published only once the Ready
    /// that made it is durable.
    pub fn published(&self) -> SoftState {
        self.published
    }

    /// Proposals waiting for their entry.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Proposals handed to [`Driver::propose`] since start, refused ones included.
    pub fn proposals_received(&self) -> u64 {
        self.proposals
    }

    /// Writes submitted and not yet reported durable.
    pub fn writes_in_flight(&self) -> usize {
        self.waiting.iter().filter(|w| w.submitted).count()
    }

    /// True when the term and vote the core holds are the ones on disk (every message
    /// carries the term, so a message may leave early only then).
    fn term_and_vote_durable(&self) -> bool {
        let now = self.raft.hard_state();
        (now.current_term, now.voted_for) == (self.durable.current_term, self.durable.voted_for)
    }

    fn bugs(&self) -> PlantedBugs {
        self.raft.planted().active()
    }

    /// Append `proposals` to the log as one batch (one write, one message per follower), or
    /// refuse them all with a definite error. Call [`Driver::drive`] after.
    pub fn propose(&mut self, proposals: Vec<(T, Vec<u8>)>, io: &mut impl Io<T>) {
        if proposals.is_empty() {
            return;
        }
        self.proposals += proposals.len() as u64;
        if self.pending.len() + proposals.len() > PENDING_MAX {
            for (token, _) in proposals {
                io.answer(token, Err(ClientError::Busy));
            }
            return;
        }
        // A larger entry could not travel in an envelope: refuse it now, not after it is in
        // the log where no follower could ever receive it.
        let (proposals, oversize): (Vec<_>, Vec<_>) =
            proposals.into_iter().partition(|(_, command)| command.len() <= COMMAND_BYTES_MAX);
        for (token, command) in oversize {
            let why = format!("command of {} bytes; the limit is {COMMAND_BYTES_MAX}", command.len());
            io.answer(token, Err(ClientError::BadRequest(why)));
        }
        if proposals.is_empty() {
            return;
        }
        let (tokens, commands): (Vec<T>, Vec<Vec<u8>>) = proposals.into_iter().unzip();
        match self.raft.propose_batch(commands) {
            Ok((first, _)) => {
                let term = self.raft.current_term();
                for (i, token) in tokens.into_iter().enumerate() {
                    self.pending.insert(LogIndex(first.0 + i as u64), (term, token));
                }
            }
            Err(e) => {
                let error = match e {
                    ProposeError::NotLeader { leader_hint } => ClientError::NotLeader { leader: leader_hint },
                    ProposeError::Empty => ClientError::BadRequest("empty command".into()),
                    ProposeError::Transferring { to } => ClientError::NotLeader { leader: Some(to) },
                    ProposeError::Reserved => {
                        ClientError::BadRequest("the command starts with the membership entry magic (reserved)".into())
                    }
                };
                for token in tokens {
                    io.answer(token, Err(error.clone()));
                }
            }
        }
    }

    /// Propose one membership change (thesis §4.1); `token` is answered once its entry is
    /// applied (with an empty result), or at once with why it was refused. Call
    /// [`Driver::drive`] after.
    pub fn change_membership(&mut self, token: T, change: crate::core::MembershipChange, io: &mut impl Io<T>) {
        match self.raft.propose_membership(change) {
            Ok(index) => drop(self.pending.insert(index, (self.raft.current_term(), token))),
            Err(crate::core::MembershipError::NotLeader(leader)) => {
                io.answer(token, Err(ClientError::NotLeader { leader }))
            }
            // Passing states (a new leader's first commit, a transfer, the previous change —
            // often the leader's own promotion of a learner): the client retries shortly.
            Err(
                e @ (crate::core::MembershipError::NoCommitInTerm
                | crate::core::MembershipError::Transferring(_)
                | crate::core::MembershipError::ChangeInFlight(_)),
            ) => {
                log::debug!("{}: membership change deferred: {e}", self.raft.id());
                io.answer(token, Err(ClientError::Busy))
            }
            Err(e) => io.answer(token, Err(ClientError::Unavailable(e.to_string()))),
        }
    }

    /// Take every Ready the core has: submit its write, send what may go now, and hold back
    /// the rest behind the writes in flight. At most `rounds_max` Readies (a turn must end so
    /// that timers and inbound traffic are not starved).
    pub fn drive(&mut self, io: &mut impl Io<T>, rounds_max: usize) {
        for _ in 0..rounds_max {
            if !self.raft.has_ready() {
                return;
            }
            let ready = self.raft.ready();
            self.handle_ready(ready, io);
        }
    }

    fn handle_ready(&mut self, ready: Ready, io: &mut impl Io<T>) {
        let Ready {
            hard_state,
            truncate_from,
            entries,
            must_sync,
            send_before_persist,
            messages,
            committed_entries,
            soft_state,
            snapshot_chunks,
            install,
            read_states,
        } = ready;
        self.read_states(read_states, io);
        let bugs = self.bugs();
        for chunk in snapshot_chunks {
            self.receive_chunk(chunk, io);
        }
        if let Some(from) = truncate_from {
            // Those proposals' entries are gone: definitely not applied by this leader.
            for (_, (_, token)) in self.pending.split_off(&from) {
                io.answer(token, Err(ClientError::Dropped));
            }
        }
        let appended = self.raft.entries(entries).to_vec();
        let last_entry = appended.last().map(|e| (e.index, e.term)).or(install.map(|i| (i.index, i.term)));
        let (snapshot_write, restore) = match install {
            Some(install) => {
                let received = self.received.take().expect("an installed snapshot was received and checked");
                let write =
                    SnapshotWrite { meta: received.meta.clone(), received: true, retain_log: install.retain_log };
                (Some(write), Some(received))
            }
            None => (None, None),
        };
        // A leader's messages may leave before its own write (§10.2.1) — but only once the
        // term they carry is durable: a voter alone in its membership wins the moment it
        // campaigns, and its first heartbeats (to learners) follow while that term's write is
        // in flight (§3.8; found by the simulator: a crash then took the term back).
        let early = (send_before_persist && self.term_and_vote_durable())
            || (bugs.vote_before_persist && hard_state.is_some())
            || (bugs.ack_before_durable && !entries.is_empty() && self.raft.role() != Role::Leader);
        let mut waiting = Waiting {
            submitted: must_sync,
            messages: Vec::new(),
            committed: committed_entries,
            hard_state,
            soft_state,
            last_entry,
            restore,
            taken: None,
        };
        if early {
            for out in messages {
                self.send(out, io);
            }
        } else if self.term_and_vote_durable() && snapshot_write.is_none() {
            // Peer traffic must not wait for an unrelated fsync: with term and vote already
            // on disk (none of the writes in flight changes them), an answer that promises
            // nothing beyond the durable log leaves now (a heartbeat's acknowledgement, a
            // rejection, a pre-vote answer); the rest waits for the write.
            let durable = self.raft.log().persisted();
            let (now, later): (Vec<Outgoing>, Vec<Outgoing>) =
                messages.into_iter().partition(|out| promises_only(&out.message, durable));
            for out in now {
                self.send(out, io);
            }
            waiting.messages = later;
        } else {
            waiting.messages = messages;
        }
        if must_sync {
            io.write(WriteRequest {
                truncate_from,
                entries: appended,
                hard_state,
                sync: true,
                snapshot: snapshot_write,
                compact_to: None,
            });
        }
        if !must_sync && self.waiting.is_empty() {
            self.complete(waiting, io);
        } else {
            self.waiting.push_back(waiting);
        }
    }

    /// The oldest write in flight is durable: release what waited for it (and for nothing
    /// later), then take the Readies that produced.
    pub fn write_done(&mut self, io: &mut impl Io<T>, rounds_max: usize) {
        let Some(first) = self.waiting.pop_front() else {
            return;
        };
        assert!(first.submitted, "a completion for a write that was never submitted");
        self.complete(first, io);
        while self.waiting.front().is_some_and(|w| !w.submitted) {
            let next = self.waiting.pop_front().expect("checked");
            self.complete(next, io);
        }
        self.drive(io, rounds_max);
    }

    /// Send, apply, answer, publish, report durable: the second half of one Ready.
    fn complete(&mut self, waiting: Waiting, io: &mut impl Io<T>) {
        if let Some(snapshot) = waiting.restore {
            io.restored(&snapshot.meta);
            self.restore(snapshot);
        }
        if let Some(taken) = waiting.taken {
            self.adopted(taken);
            // A request or a trigger that came while this one was being taken.
            self.maybe_take_snapshot(io);
        }
        for out in waiting.messages {
            self.send(out, io);
        }
        self.apply(waiting.committed, io);
        if let Some(hard_state) = waiting.hard_state {
            self.durable = hard_state;
        }
        if let Some(soft) = waiting.soft_state {
            self.published = soft;
            io.soft_state(soft);
            if soft.role != Role::Leader {
                // Whatever this leader proposed may still commit under the next one: the
                // client learns it is undecided and retries with the same sequence number.
                for (_, (_, token)) in std::mem::take(&mut self.pending) {
                    io.answer(token, Err(ClientError::Dropped));
                }
            }
        }
        if let Some((index, term)) = waiting.last_entry {
            self.raft.persisted(index, term);
        } else if waiting.submitted {
            // A write with no entries (hard state or truncation only): nothing to report but
            // the leader may commit now that everything before is durable.
            self.raft.persisted(LogIndex(0), Term(0));
        }
    }

    fn apply(&mut self, committed: IndexRange, io: &mut impl Io<T>) {
        // Entries handed out before a received snapshot replaced the log are covered by that
        // snapshot: its install (queued behind this write) restores the state they lead to.
        let first = committed.first.max(LogIndex(self.raft.log().compacted().0 .0 + 1));
        let committed = IndexRange { first, last: committed.last };
        if committed.is_empty() {
            return;
        }
        let Driver { raft, state_machine, pending, snapshots, applied, .. } = self;
        for entry in raft.entries(committed) {
            // No-ops and membership entries are the core's: the state machine never sees them.
            let response = if entry.is_command() { state_machine.apply(entry.index, &entry.data) } else { Vec::new() };
            *applied = entry.index;
            snapshots.applied_bytes += entry.data.len() as u64;
            io.applied(entry, &response);
            if let Some((term, token)) = pending.remove(&entry.index) {
                // Another leader's entry took the index: ours was overwritten, never applied.
                let outcome = if term == entry.term { Ok((entry.index, response)) } else { Err(ClientError::Dropped) };
                io.answer(token, outcome);
            }
        }
        self.serve_reads(io);
        self.maybe_take_snapshot(io);
    }

    /// Answer every waiting proposal and read with `error` (the server is stopping).
    pub fn fail_all(&mut self, error: ClientError, io: &mut impl Io<T>) {
        self.fail_reads(&error, io);
        for (_, (_, token)) in std::mem::take(&mut self.pending) {
            io.answer(token, Err(error.clone()));
        }
    }
}

/// True when `message` promises nothing about this server's disk beyond the log up to
/// `durable` — given that its term and vote are already durable (the caller checks). Such a
/// message may leave before the writes in flight complete (thesis §3.8 forbids only promising
/// what is not yet on disk).
fn promises_only(message: &Message, durable: LogIndex) -> bool {
    match message {
        // An acknowledgement promises the log up to `match_index`; a rejection nothing.
        Message::AppendEntriesResponse(m) => !m.success || m.match_index <= durable,
        // A pre-vote answer changes and promises nothing (§9.6); a refused vote neither.
        Message::PreVoteResponse(_) | Message::PreVote(_) => true,
        Message::RequestVoteResponse(m) => !m.vote_granted,
        // Chunk answers promise nothing durable: a partial image is not kept across a crash.
        Message::InstallSnapshotResponse(_) => true,
        // Leadership checks and read indexes are about commitment (majority-durable) and
        // contact, not about this server's disk; TimeoutNow is a leader's, like its appends.
        Message::LeaderCheck(_)
        | Message::LeaderCheckResponse(_)
        | Message::ReadIndex(_)
        | Message::ReadIndexResponse(_)
        | Message::TimeoutNow(_) => true,
        Message::RequestVote(_)
        | Message::TransferVote(_)
        | Message::AppendEntries(_)
        | Message::InstallSnapshot(_) => false,
    }
}
