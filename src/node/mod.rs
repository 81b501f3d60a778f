//! The runtime: one server as a thread that drives the core with storage, transport and a
//! clock, and the [`Server`] handle the library user holds.
//!
//! This is the Rust face of the original Go API: `New(pid, conf)` is [`Server::start`],
//! `State()`/`Leader()` are [`Server::role`]/[`Server::leader`], the partition array is
//! [`Server::block`]/[`Server::unblock`], `Outbox`/`Inbox` are [`Server::send`]/[`Server::recv_timeout`],
//! and `ServerStopped()` is [`Server::stop`] (which waits) and [`Server::is_stopped`].

mod clients;
mod inspect;
mod members;
mod metrics;
mod runtime;
mod snapshots;
mod stats;
mod transfers;
mod writer;

pub use crate::driver::{Outcome, PENDING_MAX};
pub use transfers::TransferOutcome;

use crate::config::{Config, ConfigError};
use crate::core::{NodeId, Role, Term};
use crate::kv::{KvStore, StateMachine};
use crate::storage::{DiskStorage, Storage, StorageError};
use crate::transport::auth::{ClusterKey, KeyError};
use crate::transport::client_wire::{ClientError, Status};
use crate::transport::{DropCounts, TransportError};
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Default bound on application messages waiting in a server's inbox; beyond it new ones are
/// dropped and counted, so a slow reader cannot make the server grow without bound.
pub const INBOX_CAPACITY: usize = 4096;

/// Knobs of one server beyond config.json.
#[derive(Clone, Debug, Default)]
pub struct NodeOptions {
    /// Data directory; default: the config's `data_dir/<pid>`.
    pub data_dir: Option<PathBuf>,
    /// Seed for the core's PRNG; default: random. Fix it to replay a run's timeouts.
    pub seed: Option<u64>,
    /// Inbox bound; default [`INBOX_CAPACITY`].
    pub inbox_capacity: Option<usize>,
    /// Cluster key; default: the config's `cluster_key_file`, if any.
    pub cluster_key: Option<ClusterKey>,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (`host:port` or `http://host:port`,
    /// checked like config.json's; errors name `--metrics`); default: the server's
    /// `metrics_url`, if any. See docs/metrics.md.
    pub metrics_url: Option<String>,
}

/// Where an application message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// One server.
    Pid(NodeId),
    /// Every other server of the cluster.
    Broadcast,
}

/// An application message received from another server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxMessage {
    /// Sender pid.
    pub from: NodeId,
    /// The sender's id for this message.
    pub msg_id: u64,
    /// True when the sender broadcast it.
    pub broadcast: bool,
    /// The bytes sent.
    pub payload: Vec<u8>,
}

/// One change of role, term or known leader, as observed by the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleChange {
    /// New role.
    pub role: Role,
    /// Term of the change.
    pub term: Term,
    /// Leader known after the change.
    pub leader: Option<NodeId>,
    /// When it happened.
    pub at: Instant,
}

/// Why a server could not start or had to stop.
#[derive(Debug)]
pub enum NodeError {
    /// config.json is invalid or does not name the pid.
    Config(ConfigError),
    /// The data directory is locked, unreadable, corrupt, or an fsync failed (fail-stop).
    Storage(StorageError),
    /// A socket could not be bound or connected.
    Transport(TransportError),
    /// The runtime thread panicked (a bug); the text is the panic message.
    Panicked(String),
    /// The cluster key file is missing, unreadable, malformed or readable by others.
    Key(KeyError),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Config(e) => write!(f, "{e}"),
            NodeError::Storage(e) => write!(f, "storage: {e}"),
            NodeError::Transport(e) => write!(f, "transport: {e}"),
            NodeError::Panicked(e) => write!(f, "server thread panicked: {e}"),
            NodeError::Key(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for NodeError {}

impl From<ConfigError> for NodeError {
    fn from(e: ConfigError) -> Self {
        NodeError::Config(e)
    }
}
impl From<StorageError> for NodeError {
    fn from(e: StorageError) -> Self {
        NodeError::Storage(e)
    }
}
impl From<TransportError> for NodeError {
    fn from(e: TransportError) -> Self {
        NodeError::Transport(e)
    }
}

/// State shared between the handle and the runtime thread. The runtime writes, the handle reads
/// (except `blocked` and `stop`, which the handle writes).
struct Shared {
    status: Mutex<Status>,
    history: Mutex<Vec<RoleChange>>,
    blocked: Mutex<BTreeSet<NodeId>>,
    drops: Mutex<DropCounts>,
    inbox_dropped: AtomicU64,
    stats: stats::Stats,
    stop: AtomicBool,
    stopped: AtomicBool,
    /// The server stopped because a committed membership removed it.
    removed: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means the runtime panicked; the data is still a valid snapshot.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Commands from the handle to the runtime thread.
enum Command {
    Send { target: Target, msg_id: u64, payload: Vec<u8> },
    Propose { command: Vec<u8>, reply: mpsc::Sender<Outcome> },
    Transfer { to: Option<NodeId>, reply: mpsc::Sender<TransferOutcome> },
    ChangeMembership { change: crate::core::MembershipChange, reply: mpsc::Sender<Outcome> },
}

/// Why [`Server::propose`] has no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposeFailure {
    /// The server refused or dropped the proposal (not leader, dropped, busy, bad command).
    Refused(ClientError),
    /// No answer within the timeout: the command may or may not be applied.
    TimedOut,
    /// The server is stopped.
    Stopped,
}

impl fmt::Display for ProposeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProposeFailure::Refused(e) => write!(f, "refused: {e:?}"),
            ProposeFailure::TimedOut => f.write_str("timed out (the outcome is unknown)"),
            ProposeFailure::Stopped => f.write_str("server stopped"),
        }
    }
}

impl std::error::Error for ProposeFailure {}

/// A running server. Dropping it stops the server and waits for its thread.
pub struct Server {
    pid: NodeId,
    peers: Vec<NodeId>,
    data_dir: PathBuf,
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    wake: Mutex<zmq::Socket>,
    inbox: Mutex<mpsc::Receiver<InboxMessage>>,
    next_msg_id: AtomicU64,
    /// The configured election timeout: how long a hand-over may take before `stop` gives up.
    election_timeout: Duration,
    thread: Option<JoinHandle<Result<(), NodeError>>>,
}

impl Server {
    /// Start server `pid` of the cluster described by the config file at `config_path`
    /// (the original's `New(pid, conf)`).
    pub fn start(pid: u64, config_path: impl AsRef<Path>) -> Result<Server, NodeError> {
        let config = Config::load(config_path)?;
        Server::start_with(&config, NodeId(pid), NodeOptions::default())
    }

    /// Start server `pid` of `config` with extra options. Returns once its sockets are bound
    /// and its data directory is locked and read, so errors are reported here.
    pub fn start_with(config: &Config, pid: NodeId, options: NodeOptions) -> Result<Server, NodeError> {
        Server::start_with_state_machine(config, pid, options, Box::new(KvStore::new()))
    }

    /// Start server `pid` with your own state machine instead of the built-in key-value store.
    pub fn start_with_state_machine(
        config: &Config,
        pid: NodeId,
        options: NodeOptions,
        state_machine: Box<dyn StateMachine>,
    ) -> Result<Server, NodeError> {
        // An unknown pid is refused before its data directory is created.
        config.server(pid)?;
        let data_dir = options.data_dir.clone().unwrap_or_else(|| config.data_dir_for(pid));
        let storage = DiskStorage::open(&data_dir)?;
        let snapshot_dir = Some(crate::storage::snapshot_dir(&data_dir));
        Server::start_inner(config, pid, options, Box::new(storage), state_machine, snapshot_dir)
    }

    /// Start server `pid` on storage you provide (an in-memory one for tests, or your own
    /// implementation of the [`Storage`] contract) and a state machine. A storage error stops
    /// the server (fail-stop): [`Server::wait`] returns it.
    pub fn start_with_storage(
        config: &Config,
        pid: NodeId,
        options: NodeOptions,
        storage: Box<dyn Storage + Send>,
        state_machine: Box<dyn StateMachine>,
    ) -> Result<Server, NodeError> {
        // Snapshot images are kept in memory: this storage has no directory the runtime knows.
        Server::start_inner(config, pid, options, storage, state_machine, None)
    }

    fn start_inner(
        config: &Config,
        pid: NodeId,
        options: NodeOptions,
        storage: Box<dyn Storage + Send>,
        state_machine: Box<dyn StateMachine>,
        snapshot_dir: Option<PathBuf>,
    ) -> Result<Server, NodeError> {
        let me = config.server(pid)?.clone();
        let key = match (&options.cluster_key, &config.cluster_key_file) {
            (Some(key), _) => Some(key.clone()),
            (None, Some(path)) => Some(ClusterKey::load(path).map_err(NodeError::Key)?),
            (None, None) => None,
        };
        let data_dir = options.data_dir.clone().unwrap_or_else(|| config.data_dir_for(pid));
        let hard_state = storage.hard_state();
        let peers: Vec<NodeId> = config.peers(pid).map(|s| s.pid).collect();
        let shared = Arc::new(Shared {
            status: Mutex::new(runtime::initial_status(pid, &hard_state)),
            history: Mutex::new(Vec::new()),
            blocked: Mutex::new(BTreeSet::new()),
            drops: Mutex::new(DropCounts::default()),
            inbox_dropped: AtomicU64::new(0),
            stats: stats::Stats::new(&peers, hard_state.current_term),
            stop: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            removed: AtomicBool::new(false),
        });
        let ctx = crate::transport::zmq_transport::context_for(config);
        let (wake, wake_endpoint) = runtime::wake_pair(&ctx, pid)?;
        let (commands_tx, commands_rx) = mpsc::channel();
        let (inbox_tx, inbox_rx) = mpsc::sync_channel(options.inbox_capacity.unwrap_or(INBOX_CAPACITY));
        let runtime = runtime::Runtime::new(runtime::RuntimeParts {
            config,
            me: &me,
            storage,
            state_machine,
            seed: options.seed.unwrap_or_else(rand::random),
            ctx,
            wake_endpoint,
            shared: Arc::clone(&shared),
            commands: commands_rx,
            inbox: inbox_tx,
            key,
            snapshot_dir,
            metrics_url: options.metrics_url.clone(),
        })?;
        // inproc needs the runtime's PULL bound (done in Runtime::new) before we connect.
        let wake_endpoint = runtime.wake_endpoint().to_string();
        wake.connect(&wake_endpoint)
            .map_err(|source| TransportError { action: format!("connect {wake_endpoint}"), source })?;
        let thread = std::thread::Builder::new()
            .name(format!("leader-{pid}"))
            .spawn(move || runtime.run())
            .expect("spawn the server thread");
        log::info!(
            "server {pid}: started at {} (client {}), data {}",
            me.endpoint,
            me.client_endpoint,
            data_dir.display()
        );
        Ok(Server {
            pid,
            peers,
            data_dir,
            shared,
            commands: commands_tx,
            wake: Mutex::new(wake),
            inbox: Mutex::new(inbox_rx),
            next_msg_id: AtomicU64::new(1),
            election_timeout: Duration::from_millis(config.election_timeout_ms),
            thread: Some(thread),
        })
    }

    /// This server's pid.
    pub fn pid(&self) -> NodeId {
        self.pid
    }
    /// The other servers of the cluster.
    pub fn peers(&self) -> &[NodeId] {
        &self.peers
    }
    /// The data directory this server holds locked (with disk storage; with storage you
    /// provided, the directory the config names for it, unused).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
    /// A snapshot of the server's status (role, term, leader, vote, indexes).
    pub fn status(&self) -> Status {
        *lock(&self.shared.status)
    }
    /// Current role (the original's `State()`).
    pub fn role(&self) -> Role {
        self.status().role
    }
    /// Current term.
    pub fn term(&self) -> Term {
        self.status().term
    }
    /// The leader this server knows of in its current term (the original's `Leader()`).
    pub fn leader(&self) -> Option<NodeId> {
        self.status().leader
    }
    /// Every role change since start, oldest first.
    pub fn role_changes(&self) -> Vec<RoleChange> {
        lock(&self.shared.history).clone()
    }
    /// Counters of inbound envelopes dropped, by reason.
    pub fn drop_counts(&self) -> DropCounts {
        *lock(&self.shared.drops)
    }
    /// Application messages dropped because the inbox was full.
    pub fn inbox_dropped(&self) -> u64 {
        self.shared.inbox_dropped.load(Ordering::Relaxed)
    }

    /// Simulate a network partition: drop all traffic to and from `pid` (the original's
    /// partition array).
    pub fn block(&self, pid: NodeId) {
        lock(&self.shared.blocked).insert(pid);
    }
    /// Undo [`Server::block`] for `pid`.
    pub fn unblock(&self, pid: NodeId) {
        lock(&self.shared.blocked).remove(&pid);
    }
    /// Undo every [`Server::block`] (the original's `UnsetPartitionValue()`).
    pub fn unblock_all(&self) {
        lock(&self.shared.blocked).clear();
    }
    /// The pids currently blocked.
    pub fn blocked(&self) -> BTreeSet<NodeId> {
        lock(&self.shared.blocked).clone()
    }

    /// Send an application message (the original's Outbox). Returns its message id. Delivery is
    /// best effort, like any datagram: a dead or blocked peer does not get it.
    pub fn send(&self, target: Target, payload: Vec<u8>) -> u64 {
        let msg_id = self.next_msg_id.fetch_add(1, Ordering::Relaxed);
        // A send after the runtime stopped is dropped like any undeliverable message.
        let _ = self.commands.send(Command::Send { target, msg_id, payload });
        self.wake();
        msg_id
    }
    /// Append `command` to the replicated log through this server (which must be the leader)
    /// and wait up to `timeout` for it to be committed and applied. Returns its log index and
    /// the state machine's response.
    pub fn propose(
        &self,
        command: Vec<u8>,
        timeout: Duration,
    ) -> Result<(crate::core::LogIndex, Vec<u8>), ProposeFailure> {
        let (reply, outcome) = mpsc::channel();
        self.call(Command::Propose { command, reply }, &outcome, timeout)
    }

    /// Change the membership by one server (thesis §4.1: add a learner, promote one, remove a
    /// member) and wait up to `timeout` for the change to be committed; returns its entry's
    /// index. This server must lead (`Refused(NotLeader)` otherwise); a change the rules refuse
    /// (one in flight, no live quorum after it, …) is `Refused(Unavailable(why))`.
    pub fn change_membership(
        &self,
        change: crate::core::MembershipChange,
        timeout: Duration,
    ) -> Result<crate::core::LogIndex, ProposeFailure> {
        let (reply, outcome) = mpsc::channel();
        self.call(Command::ChangeMembership { change, reply }, &outcome, timeout).map(|(index, _)| index)
    }

    /// Whether this server stopped because a committed membership change removed it.
    pub fn was_removed(&self) -> bool {
        self.shared.removed.load(Ordering::Acquire)
    }

    /// Hand `command` to the runtime and wait up to `timeout` for its answer on `outcome`.
    fn call<T>(
        &self,
        command: Command,
        outcome: &mpsc::Receiver<Result<T, ClientError>>,
        timeout: Duration,
    ) -> Result<T, ProposeFailure> {
        self.commands.send(command).map_err(|_| ProposeFailure::Stopped)?;
        self.wake();
        match outcome.recv_timeout(timeout) {
            Ok(result) => result.map_err(ProposeFailure::Refused),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(ProposeFailure::TimedOut),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(ProposeFailure::Stopped),
        }
    }

    /// Hand leadership over (thesis §3.10) to `to`, or to the most up-to-date follower when
    /// `None`, and wait up to `timeout` for the new leader. This server must lead. Proposals
    /// are refused (`NotLeader` naming the target) while the transfer runs; one that does not
    /// finish within an election timeout is abandoned and this server leads on
    /// (`Refused(Unavailable(..))`).
    pub fn transfer_leadership(&self, to: Option<NodeId>, timeout: Duration) -> Result<(NodeId, Term), ProposeFailure> {
        let (reply, outcome) = mpsc::channel();
        self.call(Command::Transfer { to, reply }, &outcome, timeout)
    }

    /// The next application message from another server, waiting up to `timeout`
    /// (the original's Inbox).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<InboxMessage> {
        lock(&self.inbox).recv_timeout(timeout).ok()
    }
    /// The next application message if one is waiting.
    pub fn try_recv(&self) -> Option<InboxMessage> {
        lock(&self.inbox).try_recv().ok()
    }

    /// True once the runtime thread has ended (stopped, or failed on a fatal error).
    pub fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::Acquire)
    }

    fn wake(&self) {
        // Best effort: if the runtime is gone there is nobody to wake.
        let _ = lock(&self.wake).send(&b""[..], zmq::DONTWAIT);
    }

    /// Stop the server and wait until it is fully stopped: sockets closed, data directory
    /// unlocked. Returns the fatal error if it had failed on its own. A leader first hands
    /// leadership over to the most up-to-date follower (waiting at most about two election
    /// timeouts), so a planned stop costs the cluster a round trip instead of an election
    /// timeout. Dropping a `Server` stops it without handing over.
    pub fn stop(mut self) -> Result<(), NodeError> {
        self.hand_over();
        self.shutdown()
    }

    /// If this server leads, hand over before stopping (best effort: a failure is logged and
    /// the server stops anyway; the others then elect a leader after their timeout).
    fn hand_over(&self) {
        if self.is_stopped() || self.role() != Role::Leader {
            return;
        }
        let started = Instant::now();
        match self.transfer_leadership(None, self.election_timeout * 3) {
            Ok((leader, term)) => log::info!(
                "server {}: handed leadership over to server {leader} (term {term}) in {} ms before stopping",
                self.pid,
                started.elapsed().as_millis()
            ),
            // A cluster of one has nobody to hand over to.
            Err(ProposeFailure::Refused(ClientError::Unavailable(why))) if self.peers.is_empty() => {
                log::debug!("server {}: {why}", self.pid)
            }
            Err(e) => log::warn!("server {}: could not hand leadership over before stopping: {e}", self.pid),
        }
    }

    /// Wait for the server to end on its own (a fatal error) without asking it to stop.
    pub fn wait(mut self) -> Result<(), NodeError> {
        self.join()
    }

    fn shutdown(&mut self) -> Result<(), NodeError> {
        self.shared.stop.store(true, Ordering::Release);
        self.wake();
        self.join()
    }

    fn join(&mut self) -> Result<(), NodeError> {
        match self.thread.take() {
            None => Ok(()),
            Some(thread) => {
                thread.join().unwrap_or_else(|panic| Err(NodeError::Panicked(crate::panic_text(panic.as_ref()))))
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            log::error!("server {}: {e}", self.pid);
        }
    }
}
