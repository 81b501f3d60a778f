//! One simulated server: the real core driven by the real driver (crate::driver — the code
//! the production server runs), a `MemStorage` with its crash model, and the real key-value
//! state machine. What is simulation lives here: the disk's [`Io`] (a write reaches the
//! MemStorage at once and becomes durable only when its fsync completes, after a virtual-time
//! latency, in order), crashes and restarts, and the checker's views (hash chain of the log,
//! what was applied). While an fsync is in flight the server keeps taking inputs, so a crash
//! can land between a write and its sync, and acknowledgements can race the leader's own
//! fsync — exactly as with the production writer thread.
//!
//! A paused process handles nothing: what reaches it (messages, client requests, fsync
//! completions) waits in [`Pause`] until it resumes, then is handled at once, in arrival order.
//!
//! Each server has its own clock ([`Clock`]): what [`Io::now`] returns (and so what a lease is
//! measured with) runs at the server's rate, not at virtual time's; a pause stops the process,
//! not its clock.

use super::events::Time;
pub use super::view::{entry_hash, LogView, SnapshotViews};
use crate::core::{
    Entry, HardState, LogIndex, MembershipChange, Message, NodeId, Options, Outgoing, PlantedBugs, Raft, SnapshotChunk,
    Term,
};
use crate::driver::{image_len, recovered_log, Driver, Io, Lease, Outcome, SnapshotPolicy, WriteRequest};
use crate::kv::{KvStore, SnapshotJob, StateMachine};
use crate::storage::{
    decode_snapshot_image, encode_snapshot_image, MemStorage, Snapshot, SnapshotMeta, SnapshotSource, Storage,
};
use crate::transport::client_wire::{ClientError, ReadMode};
use std::collections::VecDeque;

/// Rounds of Readies per input: the simulated loop takes everything the core has.
const ROUNDS_MAX: usize = usize::MAX;

/// A proposal's token: (client, attempt).
type Token = (usize, u64);

/// The client slot of the membership nemesis's tokens: its answers go to
/// [`Effects::membership`], never to a simulated client.
pub const MEMBERSHIP_CLIENT: usize = usize::MAX;

/// A server's clock: `offset + rate × virtual time` (ms). The rate is fixed per run; the clock
/// is the machine's monotonic clock, so it runs on while the process is paused or down.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clock {
    /// Local milliseconds per virtual (real) millisecond.
    pub rate: f64,
    /// The clock's reading at virtual time 0 (any origin: only differences are used).
    pub offset_ms: f64,
}

impl Clock {
    /// A clock that keeps real time.
    pub const REAL: Clock = Clock { rate: 1.0, offset_ms: 0.0 };

    /// The reading at virtual time `now`.
    pub fn at(&self, now: Time) -> std::time::Duration {
        std::time::Duration::from_secs_f64((self.offset_ms + self.rate * now as f64) / 1000.0)
    }
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

/// A simulated server.
pub struct SimNode {
    /// Its id.
    pub id: NodeId,
    /// The core with its state machine and pending proposals; `None` while crashed.
    pub driver: Option<Driver<KvStore, Token>>,
    /// Its disk.
    pub storage: MemStorage,
    /// Indexes applied in this incarnation, in order.
    pub applied: Vec<LogIndex>,
    /// The log as handed to storage, from index 1 (updated from every write and install).
    pub view: LogView,
    /// The views of every snapshot taken in this world.
    views: SnapshotViews,
    /// The incoming snapshot image (lost in a crash, like the file the runtime writes).
    incoming: Vec<u8>,
    /// Snapshots taken and not yet made durable: their images.
    taken: VecDeque<Vec<u8>>,
    /// When servers take snapshots.
    policy: SnapshotPolicy,
    /// Counts restarts: a PersistDone of an earlier incarnation is ignored.
    pub incarnation: u64,
    /// Writes handed to the disk and not yet durable, oldest first: the hard state each saves
    /// after its sync (one PersistDone each).
    pub writes: VecDeque<Option<HardState>>,
    /// When the last write in flight completes (writes complete in order).
    pub last_done_at: Time,
    /// Set while the process is paused.
    pub paused: Option<Pause>,
    /// Set when an entry was applied out of order or twice: (index, applies before it).
    pub apply_error: Option<(LogIndex, usize)>,
    /// The state machine of the last incarnation (kept only by a planted bug).
    crashed_state_machine: Option<KvStore>,
    options: Options,
    /// Its clock.
    pub clock: Clock,
    /// The lease its driver serves lease reads with (every incarnation), if any.
    lease: Option<Lease>,
    /// Stopped for good: it saw its removal committed (`Raft::is_removed`) and exited, as the
    /// server does; only a wipe ([`SimNode::wipe`]) brings the id back.
    pub retired: bool,
    /// This incarnation started on a wiped disk under the old id ([`SimNode::wipe`]).
    pub wiped: bool,
}

/// What the driver hands back to the simulation after an input.
#[derive(Default)]
pub struct Effects {
    /// Messages to put on the network now.
    pub messages: Vec<Outgoing>,
    /// Writes started: schedule one PersistDone at each of these times.
    pub done_at: Vec<Time>,
    /// Entries applied now: (index, [`entry_hash`] of the entry applied, encoded response,
    /// the command).
    pub applied: Vec<(LogIndex, u64, Vec<u8>, Vec<u8>)>,
    /// Snapshots taken (the job ran): report each with [`SimNode::snapshot_taken`] later.
    pub snapshots_taken: Vec<(SnapshotMeta, u64)>,
    /// Client proposals to answer `Dropped` (leadership lost or entry overwritten).
    pub dropped: Vec<Token>,
    /// Client proposals refused by a follower, with its leader hint.
    pub redirected: Vec<(usize, u64, Option<NodeId>)>,
    /// Client proposals and reads answered: (client, attempt, response).
    pub answered: Vec<(usize, u64, Vec<u8>)>,
    /// Reads answered at once from the lease (no round, no wait: [`SimNode::read`]).
    pub lease_reads: usize,
    /// Membership changes answered (tokens of [`MEMBERSHIP_CLIENT`]): (attempt, outcome).
    pub membership: Vec<(u64, Result<(), ClientError>)>,
}

/// The simulated world as the driver sees it for one input.
struct SimIo<'a> {
    storage: &'a mut MemStorage,
    view: &'a mut LogView,
    views: &'a SnapshotViews,
    incoming: &'a mut Vec<u8>,
    taken: &'a mut VecDeque<Vec<u8>>,
    writes: &'a mut VecDeque<Option<HardState>>,
    last_done_at: &'a mut Time,
    applied: &'a mut Vec<LogIndex>,
    apply_error: &'a mut Option<(LogIndex, usize)>,
    effects: Effects,
    now: Time,
    /// This server's clock reading now.
    clock: std::time::Duration,
    latency: &'a mut dyn FnMut() -> Time,
}

impl Io<Token> for SimIo<'_> {
    fn send(&mut self, to: NodeId, message: Message) {
        self.effects.messages.push(Outgoing { to, message });
    }

    /// The bytes reach the disk now; they are durable only when the fsync completes (a
    /// PersistDone, in order), and a crash before that loses or tears them.
    fn write(&mut self, request: WriteRequest) {
        if let Some(write) = &request.snapshot {
            // MemStorage makes an install durable at once: a crash before the write's fsync
            // completes then finds the snapshot, a state the runtime can also reach (its
            // writer installs before it syncs the batch).
            let image =
                if write.received { std::mem::take(self.incoming) } else { self.taken.pop_front().expect("taken") };
            self.storage
                .install_snapshot(&write.meta, SnapshotSource::Image(image), write.retain_log)
                .expect("mem storage");
            if !write.retain_log {
                let key = (write.meta.last_index, write.meta.last_term);
                *self.view = self.views.borrow().get(&key).cloned().expect("every snapshot has a view");
            }
        }
        if let Some(from) = request.truncate_from {
            self.storage.truncate_from(from).expect("mem storage");
            self.view.truncate(from.0 as usize - 1);
        }
        self.storage.append(&request.entries).expect("mem storage");
        for e in &request.entries {
            self.view.push(e);
        }
        if let Some(upto) = request.compact_to {
            self.storage.compact(upto).expect("mem storage");
        }
        let done = self.now + (self.latency)();
        *self.last_done_at = (*self.last_done_at).max(done);
        self.effects.done_at.push(*self.last_done_at);
        self.writes.push_back(request.hard_state);
    }

    /// The server's own clock, not virtual time: leases are measured with it.
    fn now(&self) -> std::time::Duration {
        self.clock
    }

    fn answer(&mut self, (client, attempt): Token, outcome: Outcome) {
        if client == MEMBERSHIP_CLIENT {
            self.effects.membership.push((attempt, outcome.map(|_| ())));
            return;
        }
        match outcome {
            Ok((_, response)) => self.effects.answered.push((client, attempt, response)),
            Err(ClientError::NotLeader { leader }) => self.effects.redirected.push((client, attempt, leader)),
            Err(_) => self.effects.dropped.push((client, attempt)),
        }
    }

    fn applied(&mut self, entry: &Entry, response: &[u8]) {
        if entry.index.0 != self.applied.len() as u64 + 1 && self.apply_error.is_none() {
            *self.apply_error = Some((entry.index, self.applied.len()));
        }
        self.applied.push(entry.index);
        self.effects.applied.push((entry.index, entry_hash(entry), response.to_vec(), entry.data.clone()));
    }

    fn restored(&mut self, meta: &SnapshotMeta) {
        let index = meta.last_index.0 as usize;
        if index < self.applied.len() && self.apply_error.is_none() {
            // The state machine moved backwards: entries it had applied will be applied again.
            *self.apply_error = Some((meta.last_index, self.applied.len()));
        }
        *self.applied = (1..=index as u64).map(LogIndex).collect();
    }

    fn read_snapshot(&mut self, index: LogIndex, term: Term, offset: u64, len: usize) -> Option<Vec<u8>> {
        let meta = self.storage.snapshot_meta().filter(|m| (m.last_index, m.last_term) == (index, term))?;
        let _ = meta;
        let image = self.storage.snapshot_image()?;
        image.get(offset as usize..offset as usize + len).map(<[u8]>::to_vec)
    }

    fn receive_snapshot_chunk(&mut self, chunk: &SnapshotChunk) {
        self.incoming.truncate(chunk.offset as usize);
        self.incoming.extend_from_slice(&chunk.data);
    }

    fn received_snapshot(&mut self) -> Result<Snapshot, String> {
        decode_snapshot_image(self.incoming)
    }

    /// The job runs now (virtual time does not pass inside a call); the world reports it done
    /// after a disk latency, as the runtime's snapshot thread would.
    fn take_snapshot(&mut self, meta: SnapshotMeta, job: SnapshotJob) {
        let data = job();
        let key = (meta.last_index, meta.last_term);
        let prefix = self.view.prefix(meta.last_index.0 as usize);
        self.views.borrow_mut().entry(key).or_insert(prefix);
        self.taken.push_back(encode_snapshot_image(&meta, &data));
        let len = image_len(&meta, data.len());
        self.effects.snapshots_taken.push((meta, len));
    }
}

impl SimNode {
    /// A fresh server taking snapshots as `policy` says; `views` is shared by the world.
    pub fn new(id: NodeId, options: Options, policy: SnapshotPolicy, views: SnapshotViews) -> Self {
        let raft = Raft::new(options.clone(), HardState::default());
        SimNode {
            id,
            driver: Some(Driver::new(raft, KvStore::new(), policy)),
            storage: MemStorage::new(),
            applied: Vec::new(),
            view: LogView::default(),
            views,
            incoming: Vec::new(),
            taken: VecDeque::new(),
            policy,
            incarnation: 0,
            writes: VecDeque::new(),
            last_done_at: 0,
            paused: None,
            apply_error: None,
            crashed_state_machine: None,
            options,
            clock: Clock::REAL,
            lease: None,
            retired: false,
            wiped: false,
        }
    }

    /// The options the next incarnation starts with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Start a new incarnation on an empty disk with `options` (an operator removed the server,
    /// wiped its disk and starts it again to be added anew): nothing of the old log, term or
    /// vote survives. Crashes the current incarnation first if it is up.
    pub fn wipe(&mut self, options: Options) {
        if self.is_up() {
            self.crash(0);
        }
        self.incarnation += 1;
        self.options = options.clone();
        self.storage = MemStorage::new();
        self.view = LogView::default();
        self.applied.clear();
        self.apply_error = None;
        self.crashed_state_machine = None;
        self.last_done_at = 0;
        self.retired = false;
        self.wiped = true;
        let seed = options.seed ^ self.incarnation;
        let raft = Raft::new(Options { seed, ..options }, HardState::default());
        let mut driver = Driver::new(raft, KvStore::new(), self.policy);
        driver.set_lease(self.lease);
        self.driver = Some(driver);
    }

    /// Restart this (non-member) server with `peers` as the cluster it knows (an operator
    /// edits the config of a server waiting to be added and restarts it); its disk is kept.
    pub fn reconfigure(&mut self, peers: Vec<NodeId>, seed: u64) {
        self.options.peers = peers;
        if self.is_up() {
            let unsynced = self.unsynced();
            self.crash(unsynced);
            self.restart(seed);
        }
    }

    /// Serve lease reads with `lease` (and keep doing so after restarts); `None`: no lease.
    pub fn set_lease(&mut self, lease: Option<Lease>) {
        self.lease = lease;
        if let Some(driver) = self.driver.as_mut() {
            driver.set_lease(lease);
        }
    }

    fn bugs(&self) -> PlantedBugs {
        self.options.planted.active()
    }

    /// The core, while up.
    pub fn raft(&self) -> Option<&Raft> {
        self.driver.as_ref().map(|d| &d.raft)
    }

    /// The core, while up.
    pub fn raft_mut(&mut self) -> Option<&mut Raft> {
        self.driver.as_mut().map(|d| &mut d.raft)
    }

    /// Crash: the process state is gone; of the writes not yet synced, the first `keep`
    /// reached the disk and the next was torn (everything from it on is lost).
    pub fn crash(&mut self, keep: usize) {
        self.crashed_state_machine = self.driver.take().map(|d| d.state_machine);
        self.paused = None;
        self.storage.crash_torn(keep);
        self.writes.clear();
        self.incoming.clear();
        self.taken.clear();
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
        self.writes.front().is_some_and(|hs| hs.is_some())
    }

    /// True while the process is paused.
    pub fn is_paused(&self) -> bool {
        self.paused.is_some()
    }

    /// Restart from what the disk holds.
    pub fn restart(&mut self, seed: u64) {
        assert!(self.driver.is_none(), "restart a crashed server only");
        self.incarnation += 1;
        // A fresh (but replayable) timeout sequence per incarnation.
        let options = Options { seed: seed ^ self.incarnation, ..self.options.clone() };
        // §7: the state machine starts from the latest snapshot, the log after it.
        let snapshot = self.storage.take_snapshot();
        let entries = self.storage.take_entries();
        let (base, base_term) =
            snapshot.as_ref().map_or((LogIndex(0), Term(0)), |s| (s.meta.last_index, s.meta.last_term));
        self.view = match &snapshot {
            Some(_) => self.views.borrow().get(&(base, base_term)).cloned().expect("every snapshot has a view"),
            None => LogView::default(),
        };
        for e in &entries {
            self.view.push(e);
        }
        let mut raft = Raft::restore(
            options,
            self.storage.hard_state(),
            recovered_log(snapshot.as_ref().map(|s| &s.meta), entries)
                .expect("the simulator writes every snapshot itself"),
        );
        let state_machine = match self.crashed_state_machine.take() {
            Some(kept) if self.bugs().apply_twice_after_restart => kept,
            _ => {
                // The state machine lives in memory: rebuilt from the snapshot and the log.
                let mut kv = KvStore::new();
                if let Some(s) = &snapshot {
                    kv.restore(&s.data).expect("a snapshot this server took or checked");
                    raft.set_snapshot(base, base_term, image_len(&s.meta, s.data.len()));
                }
                self.applied = (1..=base.0).map(LogIndex).collect();
                kv
            }
        };
        let mut driver = Driver::new(raft, state_machine, self.policy);
        driver.set_lease(self.lease);
        self.driver = Some(driver);
    }

    /// Entries appended but not yet synced.
    pub fn unsynced(&self) -> usize {
        self.storage.entries().len().saturating_sub(self.storage.durable_entries().len())
    }

    /// Length of the log as handed to storage (the view the checker compares).
    pub fn log_len(&self) -> u64 {
        self.view.chain.len() as u64
    }

    /// Term of entry `index` in the log as handed to storage.
    pub fn term_at(&self, index: u64) -> Option<Term> {
        index.checked_sub(1).and_then(|i| self.view.terms.get(i as usize)).copied()
    }

    /// True when the server can take an input now.
    pub fn is_up(&self) -> bool {
        self.driver.is_some()
    }

    /// Run `f` on the driver with this server's simulated world; the effects it produced.
    fn with_driver(
        &mut self,
        now: Time,
        latency: &mut dyn FnMut() -> Time,
        f: impl FnOnce(&mut Driver<KvStore, Token>, &mut SimIo<'_>),
    ) -> Effects {
        let Some(driver) = self.driver.as_mut() else { return Effects::default() };
        let clock = self.clock.at(now);
        let mut io = SimIo {
            storage: &mut self.storage,
            view: &mut self.view,
            views: &self.views,
            incoming: &mut self.incoming,
            taken: &mut self.taken,
            writes: &mut self.writes,
            last_done_at: &mut self.last_done_at,
            applied: &mut self.applied,
            apply_error: &mut self.apply_error,
            effects: Effects::default(),
            now,
            clock,
            latency,
        };
        f(driver, &mut io);
        io.effects
    }

    /// Take every Ready the core has (the driver: writes to the disk, what may go now sent,
    /// the rest held behind the writes). `latency` draws an fsync duration.
    pub fn drive(&mut self, now: Time, latency: &mut dyn FnMut() -> Time) -> Effects {
        self.with_driver(now, latency, |driver, io| driver.drive(io, ROUNDS_MAX))
    }

    /// A client's proposal (attempt `attempt` of client `client`).
    pub fn propose(&mut self, now: Time, latency: &mut dyn FnMut() -> Time, token: Token, command: Vec<u8>) -> Effects {
        self.with_driver(now, latency, |driver, io| {
            driver.propose(vec![(token, command)], io);
            driver.drive(io, ROUNDS_MAX);
        })
    }

    /// A client's read without the log (attempt `attempt` of client `client`): `query` is an
    /// encoded Get command. A read the lease answers is answered inside `Driver::read`, before
    /// any Ready: those are counted in [`Effects::lease_reads`].
    pub fn read(
        &mut self,
        now: Time,
        latency: &mut dyn FnMut() -> Time,
        token: Token,
        query: Vec<u8>,
        mode: ReadMode,
    ) -> Effects {
        self.with_driver(now, latency, |driver, io| {
            driver.read(token, query, mode, io);
            io.effects.lease_reads = io.effects.answered.len();
            driver.drive(io, ROUNDS_MAX);
        })
    }

    /// The oldest write in flight is durable: sync, save its hard state, then the driver
    /// releases what waited for it.
    pub fn finish_sync(&mut self, now: Time, latency: &mut dyn FnMut() -> Time) -> Effects {
        let Some(hard_state) = self.writes.pop_front() else { return Effects::default() };
        self.storage.sync().expect("mem storage");
        if let Some(hs) = hard_state {
            self.storage.save_hard_state(&hs).expect("mem storage");
        }
        self.with_driver(now, latency, |driver, io| driver.write_done(io, ROUNDS_MAX))
    }

    /// The membership nemesis asks this server (the leader, it hopes) for `change`, through
    /// the driver as the runtime does; the answer comes in [`Effects::membership`].
    pub fn change_membership(
        &mut self,
        now: Time,
        latency: &mut dyn FnMut() -> Time,
        attempt: u64,
        change: MembershipChange,
    ) -> Effects {
        self.with_driver(now, latency, |driver, io| {
            driver.change_membership((MEMBERSHIP_CLIENT, attempt), change, io);
            driver.drive(io, ROUNDS_MAX);
        })
    }

    /// A peer's message (through the driver, which checks what the core cannot).
    pub fn step(&mut self, now: Time, latency: &mut dyn FnMut() -> Time, from: NodeId, message: Message) -> Effects {
        self.with_driver(now, latency, |driver, io| {
            driver.step(from, message);
            driver.drive(io, ROUNDS_MAX);
        })
    }

    /// A snapshot this server took is written: make it durable, compact behind it.
    pub fn snapshot_taken(
        &mut self,
        now: Time,
        latency: &mut dyn FnMut() -> Time,
        meta: SnapshotMeta,
        len: u64,
    ) -> Effects {
        self.with_driver(now, latency, |driver, io| {
            driver.snapshot_taken(meta, len, io);
            driver.drive(io, ROUNDS_MAX);
        })
    }
}
