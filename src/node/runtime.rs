//! The loop of one server: the only thread that touches its sockets, its core and its state
//! machine. The disk is on a thread of its own (writer.rs); the driver (crate::driver) keeps
//! the order between the two.
//!
//! Each turn: block in `zmq::poll` until the next tick deadline or traffic; take handle
//! commands; drain a bounded batch of peer envelopes into the core; read a bounded batch of
//! client requests (proposals become one batch in the log); tick if due (a stall's missed
//! ticks are skipped, not replayed: `advance_clock`); handle
//! what the writer finished (the driver releases the messages, applies and answers that waited
//! for it); let the driver take the core's Readies (writes to the writer thread, leader
//! appends out at once, the rest held back); answer status requests last, from the durable
//! view (a reply never shows a term or vote that is not yet on disk).

use super::clients::{ClientEndpoint, Replier, SnapshotWaiter};
use super::metrics::MetricsServer;
use super::snapshots::SnapshotFiles;
use super::stats::AppendTimer;
use super::transfers::{TransferReply, TransferWaiter};
use super::writer::{Write, Writer};
use super::{lock, Command, InboxMessage, NodeError, RoleChange, Shared, Target};
use crate::config::{Config, ServerConfig};
use crate::core::{HardState, LogIndex, Message, NodeId, Options, Raft, Role, SnapshotChunk, SoftState, Term};
use crate::driver::{image_len, Driver, Io, Lease, Outcome, WriteRequest};
use crate::kv::{SnapshotJob, StateMachine};
use crate::storage::{Snapshot, SnapshotMeta, Storage, StorageError};
use crate::transport::auth::{self, ClusterKey};
use crate::transport::client_wire::{Status, CLIENT_REQUEST_BYTES_MAX};
use crate::transport::codec::encode;
use crate::transport::zmq_transport::context;
use crate::transport::{
    AppMessage, Body, DropReason, Envelope, Receiver, TransportError, ZmqTransport, ENVELOPE_BYTES_MAX, WIRE_VERSION,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Peer envelopes handled per turn before ticking again: bounds how long a flood can keep the
/// loop from its timers.
const INBOUND_BATCH_MAX: usize = 1024;
/// Longest tick. Shorter ticks cost wake-ups; longer ones blur timeouts. A tenth of the
/// heartbeat, at most 10 ms, keeps heartbeats and elections within one tick of their settings.
const TICK_MS_MAX: u64 = 10;
/// Ticks a turn may catch up on: a busy turn (a long fsync, a large batch) keeps the
/// heartbeat on time, while a longer stall is skipped rather than replayed (see
/// `Runtime::advance_clock`). Four 5 ms ticks are far below an election timeout (40 ticks).
const TICK_CATCH_UP_MAX: u32 = 4;
/// Ready rounds per turn: each round may produce the next (a commit after `advance`), but a
/// turn must end so that ticks and inbound traffic are not starved.
const READY_ROUNDS_MAX: usize = 8;

/// The status a server reports before its loop has run.
pub(super) fn initial_status(pid: NodeId, hard_state: &HardState) -> Status {
    Status {
        pid,
        role: Role::Follower,
        term: hard_state.current_term,
        leader: None,
        voted_for: hard_state.voted_for,
        commit_index: LogIndex(0),
        last_applied: LogIndex(0),
        last_index: LogIndex(0),
    }
}

/// The handle's PUSH and the endpoint of the runtime's PULL used to wake `zmq::poll` when the
/// handle has a command or wants the loop to stop.
pub(super) fn wake_pair(ctx: &zmq::Context, pid: NodeId) -> Result<(zmq::Socket, String), TransportError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let endpoint = format!("inproc://leader-wake-{pid}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let push = context(ctx.socket(zmq::PUSH), || "create wake socket".into())?;
    context(push.set_linger(0), || "configure wake socket".into())?;
    Ok((push, endpoint))
}

/// Tick length and the core's timeouts in ticks for the configured milliseconds.
pub(crate) fn tick_plan(election_timeout_ms: u64, heartbeat_ms: u64) -> (Duration, u32, u32) {
    let tick_ms = (heartbeat_ms / 10).clamp(1, TICK_MS_MAX);
    let election_ticks = election_timeout_ms.div_ceil(tick_ms).max(2) as u32;
    let heartbeat_ticks = (heartbeat_ms / tick_ms).max(1) as u32;
    (Duration::from_millis(tick_ms), election_ticks, heartbeat_ticks)
}

/// What [`Runtime::new`] needs.
pub(super) struct RuntimeParts<'a> {
    pub config: &'a Config,
    pub me: &'a ServerConfig,
    pub storage: Box<dyn Storage + Send>,
    pub state_machine: Box<dyn StateMachine>,
    pub seed: u64,
    pub ctx: zmq::Context,
    pub wake_endpoint: String,
    pub shared: Arc<Shared>,
    pub commands: mpsc::Receiver<Command>,
    pub inbox: mpsc::SyncSender<InboxMessage>,
    pub key: Option<ClusterKey>,
    /// Where snapshot images live (`<data dir>/snap`); `None`: in memory.
    pub snapshot_dir: Option<std::path::PathBuf>,
    /// `NodeOptions::metrics_url`: overrides the config's `metrics_url` for this server.
    pub metrics_url: Option<String>,
}

/// One server's loop state.
pub(super) struct Runtime {
    /// The core, its state machine and the proposals waiting for their entries.
    pub(super) driver: Driver<Box<dyn StateMachine>, Replier>,
    pub(super) net: Net,
    pub(super) receiver: Receiver,
    /// config.json's other servers and their peer endpoints (for members the log names
    /// without a url, and whose envelopes are always accepted).
    pub(super) config_peers: std::collections::BTreeMap<NodeId, String>,
    /// The core's peers the sockets were last brought in line with (members.rs).
    pub(super) followed: Vec<NodeId>,
    pub(super) client: ClientEndpoint,
    key: Option<ClusterKey>,
    wake: zmq::Socket,
    wake_endpoint: String,
    pub(super) tick: Duration,
    pub(super) cluster_id: u64,
    pub(super) shared: Arc<Shared>,
    commands: mpsc::Receiver<Command>,
    inbox: mpsc::SyncSender<InboxMessage>,
    /// Snapshot images: served, received, taken.
    snapshots: SnapshotFiles,
    /// `Snapshot` requests waiting for their snapshot to be durable.
    pub(super) snapshot_waiters: Vec<SnapshotWaiter>,
    /// Leadership transfers waiting for a new leader.
    pub(super) transfers: Vec<TransferWaiter>,
    /// The election timeout in ticks (the core's minimum).
    pub(super) election_ticks: u32,
    /// What `Io::now` counts from.
    pub(super) epoch: Instant,
    /// The disk, on its own thread. Declared after the sockets it wakes: dropped last but one.
    writer: Writer,
    /// The metrics endpoint, if configured (stopped with the loop).
    metrics: Option<MetricsServer>,
    // Keeps the sockets' context alive for as long as the sockets.
    _ctx: zmq::Context,
}

/// The peer side of the world: the PUSH sockets and what every envelope carries.
pub(super) struct Net {
    pub(super) transport: ZmqTransport,
    key: Option<ClusterKey>,
    cluster_id: u64,
    me: NodeId,
    /// This turn's copy of the peers the handle has blocked (simulated partitions).
    blocked: std::collections::BTreeSet<NodeId>,
    /// Messages sent are counted in `shared.stats`.
    shared: Arc<Shared>,
    /// The leader's AppendEntries round trips in flight.
    appends: AppendTimer,
}

impl Net {
    fn send(&mut self, to: NodeId, body: Body) {
        if self.blocked.contains(&to) {
            return;
        }
        self.shared.stats.sent(&body);
        if let Body::Raft(Message::AppendEntries(m)) = &body {
            self.appends.sent(to, m, Instant::now());
        }
        let envelope = Envelope { version: WIRE_VERSION, cluster_id: self.cluster_id, from: self.me, to, body };
        self.transport.send(to, &auth::seal(self.key.as_ref(), encode(&envelope)));
    }
}

/// The driver's view of the node's world for one call: network, disk thread, clients, status.
pub(super) struct NodeIo<'a> {
    net: &'a mut Net,
    writer: &'a Writer,
    snapshots: &'a mut SnapshotFiles,
    client: &'a ClientEndpoint,
    shared: &'a Shared,
    pub(super) epoch: Instant,
}

impl Io<Replier> for NodeIo<'_> {
    fn send(&mut self, to: NodeId, message: Message) {
        self.net.send(to, Body::Raft(message));
    }
    fn write(&mut self, request: WriteRequest) {
        let snapshot = request.snapshot.as_ref().map(|write| {
            if write.received {
                self.snapshots.received_source()
            } else {
                self.snapshots.taken_source()
            }
        });
        self.writer.submit(Write { request, snapshot });
    }
    fn read_snapshot(&mut self, index: LogIndex, term: Term, offset: u64, len: usize) -> Option<Vec<u8>> {
        self.snapshots.read(index, term, offset, len)
    }
    fn receive_snapshot_chunk(&mut self, chunk: &SnapshotChunk) {
        self.snapshots.receive(chunk);
    }
    fn received_snapshot(&mut self) -> Result<Snapshot, String> {
        self.snapshots.received()
    }
    fn take_snapshot(&mut self, meta: SnapshotMeta, job: SnapshotJob) {
        self.snapshots.take(meta, job);
    }
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }
    fn answer(&mut self, token: Replier, outcome: Outcome) {
        token.reply(self.client, outcome);
    }
    fn restored(&mut self, _meta: &SnapshotMeta) {
        self.shared.stats.snapshots_installed.fetch_add(1, Ordering::Relaxed);
    }
    fn soft_state(&mut self, soft: SoftState) {
        self.shared.stats.role_published(soft);
        if soft.role != Role::Leader {
            self.net.appends.clear();
        }
        let id = self.net.me;
        let leader = soft.leader_id.map_or("none".to_string(), |l| l.to_string());
        log::info!("server {id}: {} in term {} (leader: {leader})", soft.role, soft.term);
        let change = RoleChange { role: soft.role, term: soft.term, leader: soft.leader_id, at: Instant::now() };
        lock(&self.shared.history).push(change);
    }
}

impl Runtime {
    pub(super) fn new(parts: RuntimeParts<'_>) -> Result<Runtime, NodeError> {
        let RuntimeParts {
            config,
            me,
            mut storage,
            state_machine,
            seed,
            ctx,
            wake_endpoint,
            shared,
            commands,
            inbox,
            key,
            snapshot_dir,
            metrics_url,
        } = parts;
        let pid = me.pid;
        let metrics = match config.metrics_url_for(pid, metrics_url.as_deref())? {
            Some(addr) => Some(MetricsServer::start(pid.0, &addr, Arc::clone(&shared))?),
            None => None,
        };
        let peers: Vec<(NodeId, String)> = config.peers(pid).map(|s| (s.pid, s.endpoint.clone())).collect();
        let transport = ZmqTransport::new(&ctx, pid, &me.endpoint, &peers, ENVELOPE_BYTES_MAX)?;
        let client = context(ctx.socket(zmq::ROUTER), || "create client ROUTER socket".into())?;
        context(client.set_linger(0), || "configure client socket".into())?;
        context(client.set_maxmsgsize(CLIENT_REQUEST_BYTES_MAX as i64), || "configure client socket".into())?;
        let endpoint = &me.client_endpoint;
        context(client.bind(endpoint), || format!("bind {endpoint} (client endpoint of server {pid})"))?;
        let wake = context(ctx.socket(zmq::PULL), || "create wake socket".into())?;
        context(wake.bind(&wake_endpoint), || format!("bind {wake_endpoint}"))?;
        let (tick, election_ticks, heartbeat_ticks) = tick_plan(config.election_timeout_ms, config.heartbeat_ms);
        let peer_ids: Vec<NodeId> = peers.iter().map(|(p, _)| *p).collect();
        // The bootstrap membership is config.json's initial_members (all servers by default).
        let voters: Vec<NodeId> = config.initial_members.iter().copied().filter(|p| *p != pid).collect();
        let mut options = Options::new(pid, voters, election_ticks, heartbeat_ticks, seed);
        options.joining = !config.initial_members.contains(&pid);
        options.promote_lag = config.promote_lag;
        // Lease reads need a confirmed round every heartbeat, or leases lapse between reads.
        options.leader_check_every_heartbeat = config.lease_reads;
        // The first membership entry records where the bootstrap servers listen (thesis §4:
        // from then on the log, not config.json, says who and where the members are).
        options.urls =
            config.servers.iter().map(|s| (s.pid, (s.endpoint.clone(), s.client_endpoint.clone()))).collect();
        let receiver = Receiver {
            cluster_id: config.cluster_id,
            me: pid,
            peers: peer_ids,
            envelope_bytes_max: ENVELOPE_BYTES_MAX,
        };
        let hard_state = storage.hard_state();
        let mut state_machine = state_machine;
        let mut snapshots = SnapshotFiles::new(pid.0, snapshot_dir);
        // §7: the state machine starts from the latest snapshot, the log after it.
        let snapshot = storage.take_snapshot();
        let (base, base_term) = match &snapshot {
            Some(s) => (s.meta.last_index, s.meta.last_term),
            None => (LogIndex(0), Term(0)),
        };
        if let Some(s) = &snapshot {
            state_machine.restore(&s.data).map_err(|reason| StorageError::Corrupt {
                path: "snap".into(),
                offset: 0,
                detail: format!("the state machine refused snapshot {} (term {}): {reason}", base, base_term),
            })?;
            snapshots.loaded(s);
        }
        let log = crate::driver::recovered_log(snapshot.as_ref().map(|s| &s.meta), storage.take_entries()).map_err(
            |reason| StorageError::Corrupt {
                path: "snap".into(),
                offset: 0,
                detail: format!("snapshot {base} (term {base_term}): {reason}"),
            },
        )?;
        log::info!(
            "server {pid}: recovered term {}, snapshot at {base}, log to {}",
            hard_state.current_term,
            log.last_index()
        );
        let writer = Writer::spawn(pid.0, storage, &ctx, &wake_endpoint, shared.stats.fsync_seconds.clone())?;
        let mut raft = Raft::restore(options, hard_state, log);
        if !raft.membership().contains(pid) {
            log::warn!(
                "server {pid}: not a member of the cluster (yet): waiting to be added (`leader member add {pid} URL`)"
            );
        }
        if let Some(s) = &snapshot {
            raft.set_snapshot(base, base_term, image_len(&s.meta, s.data.len()));
        }
        drop(snapshot);
        let mut driver = Driver::new(raft, state_machine, config.snapshot);
        // A follower refuses votes until (election_ticks − 1) whole ticks after its last
        // contact from the leader (the contact may come just before a tick): the lease's base.
        driver.set_lease(config.lease_reads.then(|| Lease { election_min: tick * (election_ticks - 1) }));
        Ok(Runtime {
            driver,
            transfers: Vec::new(),
            election_ticks,
            epoch: Instant::now(),
            snapshots,
            snapshot_waiters: Vec::new(),
            net: Net {
                transport,
                key: key.clone(),
                cluster_id: config.cluster_id,
                me: pid,
                blocked: Default::default(),
                shared: Arc::clone(&shared),
                appends: AppendTimer::default(),
            },
            writer,
            metrics,
            receiver,
            config_peers: peers.iter().cloned().collect(),
            followed: Vec::new(),
            client: ClientEndpoint { socket: client, key: key.clone() },
            key,
            wake,
            wake_endpoint,
            tick,
            cluster_id: config.cluster_id,
            shared,
            commands,
            inbox,
            _ctx: ctx,
        })
    }

    /// Where the handle connects to wake the loop.
    pub(super) fn wake_endpoint(&self) -> &str {
        &self.wake_endpoint
    }

    /// Run until asked to stop or a fatal storage error (fail-stop).
    pub(super) fn run(mut self) -> Result<(), NodeError> {
        let result = self.run_loop();
        let id = self.driver.raft.id();
        if let Err(e) = &result {
            log::error!("server {id}: stopping on fatal error: {e}");
        }
        self.fail_transfers();
        let (driver, mut io) = self.io();
        driver.fail_all(crate::transport::client_wire::ClientError::Dropped, &mut io);
        // The writer finishes what it was handed before the server reports stopped, and the
        // metrics port is free again (a restart in the same process binds it).
        drop(self.writer);
        drop(self.metrics);
        self.shared.stopped.store(true, Ordering::Release);
        log::info!("server {id}: stopped");
        result
    }

    /// The driver and its view of the world, borrowed together.
    pub(super) fn io(&mut self) -> (&mut Driver<Box<dyn StateMachine>, Replier>, NodeIo<'_>) {
        let io = NodeIo {
            net: &mut self.net,
            writer: &self.writer,
            snapshots: &mut self.snapshots,
            client: &self.client,
            shared: &self.shared,
            epoch: self.epoch,
        };
        (&mut self.driver, io)
    }

    fn run_loop(&mut self) -> Result<(), NodeError> {
        let mut next_tick = Instant::now() + self.tick;
        self.publish_status();
        while !self.shared.stop.load(Ordering::Acquire) {
            let timeout = next_tick.saturating_duration_since(Instant::now());
            self.poll(timeout);
            // The partition set (Server::block) is read once per turn, not per message.
            self.net.blocked = lock(&self.shared.blocked).clone();
            self.take_commands();
            self.take_envelopes();
            let statuses = self.serve_clients();
            next_tick = self.advance_clock(next_tick, Instant::now());
            self.take_completions()?;
            let (driver, mut io) = self.io();
            driver.drive(&mut io, READY_ROUNDS_MAX);
            if self.follow_membership() {
                break;
            }
            self.publish_status();
            self.answer_statuses(statuses);
            self.answer_snapshot_waiters();
            self.answer_transfers();
        }
        Ok(())
    }

    /// Ticks that fell due since the last turn, but at most [`TICK_CATCH_UP_MAX`]: the rest
    /// of a stall is skipped, not replayed. A process that was stopped (SIGSTOP, a slow disk,
    /// a loaded machine) has the leader's heartbeats waiting in its socket, and this turn has
    /// already handed them to the core; played back to back with no input between them, the
    /// missed ticks made a paused follower campaign several times in a row and depose a
    /// healthy leader. Running slow is safe: Raft only needs its timeouts to be at least as
    /// long as configured (§5.6). Returns the next tick's deadline.
    fn advance_clock(&mut self, mut next_tick: Instant, now: Instant) -> Instant {
        let mut ticks = 0;
        while now >= next_tick && ticks < TICK_CATCH_UP_MAX {
            self.driver.raft.tick();
            ticks += 1;
            next_tick += self.tick;
        }
        if now >= next_tick {
            next_tick = now + self.tick; // a stall: skip what it missed
        }
        next_tick
    }

    /// What the writer thread finished: release what waited for it, in order. A failed write
    /// stops the server (fail-stop).
    fn take_completions(&mut self) -> Result<(), NodeError> {
        for (meta, image_len) in self.snapshots.completions()? {
            self.shared.stats.snapshots_taken.fetch_add(1, Ordering::Relaxed);
            let (driver, mut io) = self.io();
            driver.snapshot_taken(meta, image_len, &mut io);
        }
        for completion in self.writer.completions() {
            let done = completion?;
            let (driver, mut io) = self.io();
            for _ in 0..done {
                driver.write_done(&mut io, READY_ROUNDS_MAX);
            }
        }
        Ok(())
    }

    fn poll(&mut self, timeout: Duration) {
        let mut items = [
            self.net.transport.pull().as_poll_item(zmq::POLLIN),
            self.client.socket.as_poll_item(zmq::POLLIN),
            self.wake.as_poll_item(zmq::POLLIN),
        ];
        let millis = timeout.as_millis().min(i64::MAX as u128) as i64;
        if let Err(e) = zmq::poll(&mut items, millis.max(if timeout.is_zero() { 0 } else { 1 })) {
            log::warn!("poll failed: {e}");
        }
        while self.wake.recv_bytes(zmq::DONTWAIT).is_ok() {}
    }

    fn take_commands(&mut self) {
        let mut proposals = Vec::new();
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Send { target, msg_id, payload } => self.send_app(target, msg_id, payload),
                Command::Propose { command, reply } => proposals.push((Replier::Local(reply), command)),
                Command::Transfer { to, reply } => self.transfer_request(TransferReply::Local(reply), to),
                Command::ChangeMembership { change, reply } => {
                    let (driver, mut io) = self.io();
                    driver.change_membership(Replier::Local(reply), change, &mut io);
                }
            }
        }
        let (driver, mut io) = self.io();
        driver.propose(proposals, &mut io);
    }

    fn send_app(&mut self, target: Target, msg_id: u64, payload: Vec<u8>) {
        let (targets, broadcast) = match target {
            Target::Pid(pid) => (vec![pid], false),
            Target::Broadcast => (self.driver.raft.peers().to_vec(), true),
        };
        for to in targets {
            let body = Body::App(AppMessage { msg_id, broadcast, payload: payload.clone() });
            self.net.send(to, body);
        }
    }

    fn take_envelopes(&mut self) {
        let ignored = self.driver.raft.ignored();
        let id = self.driver.raft.id();
        for _ in 0..INBOUND_BATCH_MAX {
            let Some(frame) = self.net.transport.try_recv() else {
                break;
            };
            // With a cluster key, nothing is decoded before its tag verifies.
            let Some(bytes) = auth::open(self.key.as_ref(), &frame) else {
                log::debug!("server {id}: dropped a {}-byte frame: bad MAC", frame.len());
                lock(&self.shared.drops).count(DropReason::BadMac);
                continue;
            };
            let envelope = match self.receiver.open_envelope(bytes) {
                Ok(envelope) if self.net.blocked.contains(&envelope.from) => Err(DropReason::Blocked),
                other => other,
            };
            let Envelope { from, body, .. } = match envelope {
                Err(reason) => {
                    log::debug!("server {id}: dropped a {}-byte envelope: {reason:?}", bytes.len());
                    lock(&self.shared.drops).count(reason);
                    continue;
                }
                Ok(envelope) => envelope,
            };
            self.shared.stats.received(from, &body);
            match body {
                Body::Raft(message) => {
                    if let Message::AppendEntriesResponse(m) = &message {
                        if let Some(rtt) = self.net.appends.answered(from, m, Instant::now()) {
                            self.shared.stats.append_round_trip_seconds.observe(rtt.as_secs_f64());
                        }
                    }
                    self.driver.step(from, message)
                }
                Body::App(app) => self.deliver(from, app),
            }
        }
        // What the core dropped or ignored shows in drop_counts() and `leader status --json`.
        if self.driver.raft.ignored() != ignored {
            lock(&self.shared.drops).core = self.driver.raft.ignored();
        }
    }

    fn deliver(&mut self, from: NodeId, app: AppMessage) {
        let message = InboxMessage { from, msg_id: app.msg_id, broadcast: app.broadcast, payload: app.payload };
        if self.inbox.try_send(message).is_err() {
            // Full (or nobody reads): drop rather than grow without bound.
            self.shared.inbox_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The status from the durable view: role, term and leader as last published (a Ready's
    /// soft state is published once its write is durable) and the vote as on disk, so no
    /// answer shows a term or vote that a crash could take back.
    pub(super) fn status(&self) -> Status {
        let raft = &self.driver.raft;
        let soft = self.driver.published();
        Status {
            pid: raft.id(),
            role: soft.role,
            term: soft.term,
            leader: soft.leader_id,
            voted_for: self.driver.durable_hard_state().voted_for,
            commit_index: raft.commit_index(),
            last_applied: raft.last_applied(),
            last_index: raft.last_index(),
        }
    }

    /// Bytes of a snapshot image this server holds (for `leader backup`).
    pub(super) fn read_snapshot(&mut self, index: LogIndex, term: Term, offset: u64, len: usize) -> Option<Vec<u8>> {
        self.snapshots.read(index, term, offset, len)
    }

    fn publish_status(&mut self) {
        let status = self.status();
        let stats = &self.shared.stats;
        stats.proposals.store(self.driver.proposals_received(), Ordering::Relaxed);
        let (started, won) = self.driver.raft.elections();
        stats.elections_started.store(started, Ordering::Relaxed);
        stats.elections_won.store(won, Ordering::Relaxed);
        let mut published = lock(&self.shared.status);
        let committed = status.commit_index.0.saturating_sub(published.commit_index.0);
        stats.entries_committed.fetch_add(committed, Ordering::Relaxed);
        *published = status;
    }
}
