//! Rust client for the client protocol (used by the CLI, the tests and library users).
//!
//! One DEALER socket per server (kept for the client's lifetime), an empty delimiter frame
//! (so REQ-style tools interoperate), a deadline on every call. Key-value operations find the
//! leader by following `NotLeader` redirects and retry across leader changes until their
//! deadline, always with the same client id and sequence number, so the store's duplicate
//! detection applies a retried write at most once. Reads (`get`) cost no log entry by default:
//! they are ReadIndex reads (thesis §6.4) from the leader, or from followers
//! ([`Client::with_reads`]); `ReadPath::Log` sends them through the log instead.
//!
//! Sockets are `ZMQ_IMMEDIATE`: a request goes out only over a completed connection, so the
//! client knows whether anything could have received it. An operation first waits up to
//! [`CONNECT_WAIT`] for any server to take a connection and fails fast when none does; at its
//! deadline, what the attempts saw decides the error ([`CallError`]): no leader, a cluster key
//! that differs, or (writes only) an outcome that is unknown.

use crate::codec::{decode, encode};
use crate::config::{Config, ServerConfig};
use crate::core::COMMAND_BYTES_MAX;
use crate::core::{LogIndex, NodeId, Term};
use crate::kv::{KvCommand, KvOp, KvResponse, KV_DATA_BYTES_MAX};
use crate::transport::auth::{self, ClusterKey, TAG_BYTES};
use crate::transport::client_wire::{
    ClientRequest, ClientResponse, Inspection, ReadMode, Request, Response, Status, CLIENT_REQUEST_BYTES_MAX,
    CLIENT_WIRE_VERSION,
};
use std::collections::{BTreeMap, BTreeSet};

/// Why a server refused a request (the answers `CallError::Refused` carries).
pub use crate::transport::client_wire::ClientError;
pub use error::CallError;
use std::time::{Duration, Instant};

mod attempts;
mod error;
mod membership;
mod retry;

/// Largest response accepted, without its tag (16 MiB): the largest is a `get` of a 1.5 MiB
/// value ([`KV_DATA_BYTES_MAX`]) or a 1 MiB snapshot chunk, with room to spare. Also the
/// sockets' `ZMQ_MAXMSGSIZE` (plus the tag), so a hostile server cannot make the client
/// allocate more.
pub const RESPONSE_BYTES_MAX: usize = 16 << 20;

/// How long an operation waits for any server to take a connection before it fails with
/// [`CallError::NothingReachable`]: loopback and LAN connections complete in milliseconds,
/// and ZeroMQ retries a refused one every 100 ms, so a second is ten tries.
pub const CONNECT_WAIT: Duration = Duration::from_secs(1);

/// How long one attempt of an operation waits for a connection to its target before it moves
/// on to another server (a server restarting is retried on the next round).
const ATTEMPT_CONNECT_WAIT: Duration = Duration::from_millis(100);

/// Default deadline for one request to one server: long enough for a busy loopback server,
/// short enough that `leader status` on a half-dead cluster answers at once.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

/// Default deadline for a whole key-value operation, across redirects, retries and leader
/// changes: a few election timeouts.
pub const DEFAULT_OPERATION_DEADLINE: Duration = Duration::from_secs(10);

/// How [`Client::get`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReadPath {
    /// ReadIndex (thesis §6.4): no log entry; the leader confirms with one round of
    /// leadership checks (shared by concurrent reads). Linearizable whatever the clocks do.
    #[default]
    ReadIndex,
    /// Lease read (§6.4.1): the leader answers without a round while it holds a lease; needs
    /// `lease_reads` in config.json (else it is served as ReadIndex) and the README's clock
    /// assumption.
    Lease,
    /// Through the log, as a write is (an entry, an fsync on a majority).
    Log,
}

/// Which servers [`Client::get`] reads from (ReadIndex and Lease reads; log reads always go
/// to the leader).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReadFrom {
    /// The leader (following redirects).
    #[default]
    Leader,
    /// The followers, round-robin (a follower read: the follower asks the leader for the read
    /// index and answers from its own state machine), falling back to any server.
    Followers,
    /// This server only, whatever its role.
    Server(NodeId),
}

/// A client of one cluster.
pub struct Client {
    ctx: zmq::Context,
    config: Config,
    timeout: Duration,
    operation_deadline: Duration,
    sockets: BTreeMap<NodeId, zmq::Socket>,
    next_request_id: u64,
    client_id: u64,
    seq: u64,
    leader_hint: Option<NodeId>,
    /// How `get` reads, and from where.
    reads: (ReadPath, ReadFrom),
    /// The cluster key (from the config's `cluster_key_file` or [`Client::with_key`]), or why
    /// it could not be loaded (then every call fails with that reason).
    key: Result<Option<ClusterKey>, String>,
    /// Whether the last [`Client::send`] put its request on a connection (else nothing could
    /// have received it): how the retry loop tells a silent server from an absent one.
    sent: bool,
    /// Inside an operation's retry loop: a send waits [`ATTEMPT_CONNECT_WAIT`] for its
    /// connection, not the per-request timeout.
    in_retry: bool,
}

impl Client {
    /// A client for the cluster of `config`, with [`DEFAULT_TIMEOUT`] and a random client id.
    pub fn new(config: Config) -> Client {
        let key = match &config.cluster_key_file {
            Some(path) => ClusterKey::load(path).map(Some).map_err(|e| e.to_string()),
            None => Ok(None),
        };
        Client {
            key,
            ctx: crate::transport::zmq_transport::context_for(&config),
            config,
            timeout: DEFAULT_TIMEOUT,
            operation_deadline: DEFAULT_OPERATION_DEADLINE,
            sockets: BTreeMap::new(),
            next_request_id: 1,
            client_id: rand::random::<u64>() | 1, // never 0: 0 means "no session"
            seq: 0,
            leader_hint: None,
            reads: (ReadPath::ReadIndex, ReadFrom::Leader),
            sent: false,
            in_retry: false,
        }
    }

    /// Authenticate with `key` (instead of the config's key file).
    pub fn with_key(mut self, key: Option<ClusterKey>) -> Client {
        self.key = Ok(key);
        self
    }

    /// Change the per-request deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// Change the deadline of whole key-value operations.
    pub fn with_operation_deadline(mut self, deadline: Duration) -> Client {
        self.operation_deadline = deadline;
        self
    }

    /// The cluster's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The server this client believes leads.
    pub fn leader_hint(&self) -> Option<NodeId> {
        self.leader_hint
    }

    fn socket(&mut self, server: &ServerConfig) -> Result<&zmq::Socket, CallError> {
        if !self.sockets.contains_key(&server.pid) {
            let local = |e: zmq::Error| CallError::Local(format!("client socket for {}: {e}", server.client_endpoint));
            let socket = self.ctx.socket(zmq::DEALER).map_err(local)?;
            socket.set_linger(0).map_err(local)?;
            // Requests go only over a completed connection (see the module docs).
            socket.set_immediate(true).map_err(local)?;
            socket.set_maxmsgsize((RESPONSE_BYTES_MAX + TAG_BYTES) as i64).map_err(local)?;
            socket.connect(&server.client_endpoint).map_err(local)?;
            self.sockets.insert(server.pid, socket);
        }
        Ok(&self.sockets[&server.pid])
    }

    /// Until `deadline`, wait for connections to the servers `pids` (all of them, or `any`
    /// one); the ones that have one.
    fn wait_connected(&mut self, pids: &[NodeId], deadline: Instant, any: bool) -> BTreeSet<NodeId> {
        let mut sockets = Vec::new();
        for &pid in pids {
            let Ok(server) = self.config.server(pid).cloned() else { continue };
            if self.socket(&server).is_ok() {
                sockets.push(pid);
            }
        }
        let mut up = BTreeSet::new();
        loop {
            let waiting: Vec<NodeId> = sockets.iter().copied().filter(|p| !up.contains(p)).collect();
            let mut items: Vec<zmq::PollItem> =
                waiting.iter().map(|p| self.sockets[p].as_poll_item(zmq::POLLOUT)).collect();
            let left = deadline.saturating_duration_since(Instant::now()).as_millis() as i64;
            if items.is_empty() || zmq::poll(&mut items, left).is_err() {
                return up;
            }
            up.extend(waiting.iter().zip(&items).filter(|(_, i)| i.is_writable()).map(|(p, _)| *p));
            if Instant::now() >= deadline || (any && !up.is_empty()) || up.len() == sockets.len() {
                return up;
            }
        }
    }

    /// Send `body` to `pid` once a connection to it is up (waiting for one until the
    /// per-request timeout, or [`ATTEMPT_CONNECT_WAIT`] inside an operation); its request id.
    /// [`CallError::Unreachable`] with `self.sent` false when there was no connection.
    fn send(&mut self, pid: NodeId, body: Request) -> Result<u64, CallError> {
        self.sent = false;
        let server = self.config.server(pid).map_err(|e| CallError::Local(e.to_string()))?.clone();
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        let request =
            ClientRequest { version: CLIENT_WIRE_VERSION, cluster_id: self.config.cluster_id, request_id, body };
        let key = self.key.as_ref().map_err(|e| CallError::Local(e.clone()))?;
        let frame = auth::seal(key.as_ref(), encode(&request));
        if frame.len() > CLIENT_REQUEST_BYTES_MAX {
            // libzmq would drop it at the server and the caller would wait out its deadline.
            // The limit counts the whole frame, tag included (docs/wire.md §2).
            return Err(CallError::TooLarge { what: "request", bytes: frame.len(), limit: CLIENT_REQUEST_BYTES_MAX });
        }
        let wait = if self.in_retry { ATTEMPT_CONNECT_WAIT } else { self.timeout };
        self.socket(&server)?;
        if self.wait_connected(&[pid], Instant::now() + wait, true).is_empty() {
            return Err(CallError::Unreachable);
        }
        match self.sockets[&pid].send_multipart([&b""[..], &frame], zmq::DONTWAIT) {
            Ok(()) => {
                self.sent = true;
                Ok(request_id)
            }
            // The connection went away or its queue is full: as if there were none.
            Err(zmq::Error::EAGAIN) => Err(CallError::Unreachable),
            Err(e) => Err(CallError::Local(format!("send to server {pid}: {e}"))),
        }
    }

    /// Ask server `pid` for its status.
    pub fn status(&mut self, pid: NodeId) -> Result<Status, CallError> {
        self.status_of(&[pid]).pop().expect("one answer per server").1
    }

    /// Ask every server for its status, all at once; answers in pid order.
    pub fn status_all(&mut self) -> Vec<(NodeId, Result<Status, CallError>)> {
        let pids = self.config.pids();
        self.status_of(&pids)
    }

    /// Ask the servers `pids` for their status, all at once; answers in the order given.
    pub fn status_of(&mut self, pids: &[NodeId]) -> Vec<(NodeId, Result<Status, CallError>)> {
        self.ask_each(pids, Request::Status, |body| match body {
            Response::Status(status) => Ok(status),
            other => Err(other),
        })
    }

    /// Ask every server to [`Request::Inspect`] itself, all at once; answers in pid order.
    pub fn inspect_all(&mut self) -> Vec<(NodeId, Result<Inspection, CallError>)> {
        let pids = self.config.pids();
        self.ask_each(&pids, Request::Inspect, |body| match body {
            Response::Inspection(inspection) => Ok(*inspection),
            other => Err(other),
        })
    }

    /// Send `request` to each of `pids` and collect the answers `take` accepts, all within one
    /// timeout; answers in the order given.
    fn ask_each<T>(
        &mut self,
        pids: &[NodeId],
        request: Request,
        take: impl Fn(Response) -> Result<T, Response>,
    ) -> Vec<(NodeId, Result<T, CallError>)> {
        let deadline = Instant::now() + self.timeout;
        // Send to each server as soon as its connection is up, all within one deadline, so a
        // server that is down costs the others nothing.
        let mut sent: BTreeMap<NodeId, Result<u64, CallError>> = BTreeMap::new();
        let mut waiting: Vec<NodeId> = Vec::new();
        for &pid in pids {
            match self.config.server(pid) {
                Err(e) => drop(sent.insert(pid, Err(CallError::Local(e.to_string())))),
                Ok(_) => waiting.push(pid),
            }
        }
        while !waiting.is_empty() {
            let up = self.wait_connected(&waiting, deadline, true);
            if up.is_empty() {
                break;
            }
            for pid in up {
                let request_id = self.send(pid, request.clone());
                sent.insert(pid, request_id);
            }
            waiting.retain(|p| !sent.contains_key(p));
        }
        let sent: Vec<(NodeId, Result<u64, CallError>)> =
            pids.iter().map(|p| (*p, sent.remove(p).unwrap_or(Err(CallError::Unreachable)))).collect();
        sent.into_iter()
            .map(|(pid, request_id)| {
                let answer = request_id.and_then(|id| self.receive(pid, id, deadline)).and_then(|body| {
                    take(body).map_err(|other| match other {
                        Response::Error(e) => CallError::Refused(e),
                        other => CallError::BadResponse(format!("{other:?} to a {request:?} request")),
                    })
                });
                (pid, answer)
            })
            .collect()
    }

    /// Ask server `pid` for its counters of dropped and ignored input, by name (see
    /// [`Request::Counters`]).
    pub fn counters(&mut self, pid: NodeId) -> Result<Vec<(String, u64)>, CallError> {
        let request_id = self.send(pid, Request::Counters)?;
        let deadline = Instant::now() + self.timeout;
        match self.receive(pid, request_id, deadline)? {
            Response::Counters(counters) => Ok(counters.into_iter().map(|c| (c.name, c.value)).collect()),
            Response::Error(e) => Err(CallError::Refused(e)),
            other => Err(CallError::BadResponse(format!("{other:?} to a counters request"))),
        }
    }

    /// Ask server `pid` to take a snapshot now (see [`Request::Snapshot`]); its latest durable
    /// snapshot: (last index, last term, image size in bytes). Waits up to `timeout` (a large
    /// state takes a while to write).
    pub fn snapshot(&mut self, pid: NodeId, timeout: Duration) -> Result<(LogIndex, Term, u64), CallError> {
        let request_id = self.send(pid, Request::Snapshot)?;
        match self.receive(pid, request_id, Instant::now() + timeout)? {
            Response::Snapshot { index, term, total_len } => Ok((index, term, total_len)),
            Response::Error(e) => Err(CallError::Refused(e)),
            other => Err(CallError::BadResponse(format!("{other:?} to a snapshot request"))),
        }
    }

    /// The whole image of server `pid`'s latest snapshot, fetched in chunks and checked
    /// (CRC and format, [`decode_snapshot_image`](crate::storage::decode_snapshot_image)): a
    /// consistent copy of its state at its last index. If a newer snapshot replaces it during
    /// the fetch, the fetch starts over with that one (at most `attempts` times).
    pub fn fetch_snapshot(&mut self, pid: NodeId, attempts: u32) -> Result<Vec<u8>, CallError> {
        let mut last_error = CallError::Unreachable;
        for _ in 0..attempts.max(1) {
            match self.fetch_snapshot_once(pid) {
                Ok(image) => return Ok(image),
                Err(CallError::Refused(ClientError::BadRequest(why))) if why.contains("fetch it again") => {
                    last_error = CallError::Refused(ClientError::BadRequest(why));
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error)
    }

    fn fetch_snapshot_once(&mut self, pid: NodeId) -> Result<Vec<u8>, CallError> {
        let (mut index, mut term) = (LogIndex(0), Term(0));
        let mut image = Vec::new();
        loop {
            let offset = image.len() as u64;
            let request_id = self.send(pid, Request::FetchSnapshot { index, term, offset })?;
            match self.receive(pid, request_id, Instant::now() + self.timeout)? {
                Response::SnapshotChunk { index: i, term: t, total_len, offset: o, data } => {
                    if o != offset || (index.0 != 0 && (i, t) != (index, term)) {
                        return Err(CallError::BadResponse(format!(
                            "chunk at {o} of snapshot {i}, asked {offset} of {index}"
                        )));
                    }
                    (index, term) = (i, t);
                    image.extend_from_slice(&data);
                    if image.len() as u64 >= total_len || data.is_empty() {
                        crate::storage::decode_snapshot_image(&image).map_err(CallError::BadResponse)?;
                        return Ok(image);
                    }
                }
                Response::Error(e) => return Err(CallError::Refused(e)),
                other => return Err(CallError::BadResponse(format!("{other:?} to a snapshot fetch"))),
            }
        }
    }

    /// Wait for the response to `request_id` from `pid` until `deadline`.
    fn receive(&mut self, pid: NodeId, request_id: u64, deadline: Instant) -> Result<Response, CallError> {
        let socket = &self.sockets[&pid];
        loop {
            // Poll even when the deadline has passed: answers from other servers may have
            // arrived while we waited for a dead one, and they count.
            let left = deadline.saturating_duration_since(Instant::now());
            let ready =
                socket.poll(zmq::POLLIN, left.as_millis() as i64).map_err(|e| CallError::Local(e.to_string()))?;
            if ready == 0 {
                if Instant::now() >= deadline {
                    return Err(CallError::Unreachable);
                }
                continue;
            }
            let frames = socket.recv_multipart(0).map_err(|e| CallError::Local(e.to_string()))?;
            let frame = frames.last().ok_or_else(|| CallError::BadResponse("empty message".into()))?;
            let key = self.key.as_ref().ok().and_then(Option::as_ref);
            let Some(body) = auth::open(key, frame) else {
                // An unsealed `Unauthenticated` under another key, or a keyless server's
                // `BadRequest` to a tagged request (docs/security.md).
                return Err(CallError::BadKey { servers: 1 });
            };
            let response: ClientResponse =
                decode(body, RESPONSE_BYTES_MAX).map_err(|e| CallError::BadResponse(format!("{e:?}")))?;
            if response.version != CLIENT_WIRE_VERSION {
                return Err(CallError::BadResponse(format!("protocol version {}", response.version)));
            }
            if response.body == Response::Error(ClientError::Unauthenticated) {
                return Err(CallError::Unauthenticated { server: pid });
            }
            if response.request_id == request_id || response.request_id == 0 {
                return Ok(response.body);
            }
            // An answer to an earlier request that timed out: skip it.
        }
    }

    /// Propose raw `command` bytes to server `pid` once; the answer or why there is none.
    pub fn propose_to(&mut self, pid: NodeId, command: Vec<u8>) -> Result<(LogIndex, Vec<u8>), CallError> {
        check_command_size(&command)?;
        let request_id = self.send(pid, Request::Propose { command })?;
        let deadline = Instant::now() + self.timeout;
        match self.receive(pid, request_id, deadline)? {
            Response::Applied { index, result } => Ok((index, result)),
            Response::Error(e) => Err(CallError::Refused(e)),
            other => Err(CallError::BadResponse(format!("{other:?} to a proposal"))),
        }
    }

    /// Propose a command of your own state machine through the leader: follow redirects and
    /// retry across leader changes until the operation deadline, like the key-value calls.
    /// A command that got no answer is sent again, so it may apply twice unless the state
    /// machine detects duplicates (the built-in store does, with a client id and sequence
    /// number in each command: thesis §6.3; do the same in yours to get exactly-once).
    pub fn propose(&mut self, command: Vec<u8>) -> Result<(LogIndex, Vec<u8>), CallError> {
        check_command_size(&command)?;
        self.retry(ReadFrom::Leader, true, |client, target| client.propose_to(target, command.clone()))
    }

    /// Run one key-value operation through the leader: follow redirects, retry across leader
    /// changes with the same sequence number, give up at the operation deadline.
    pub fn execute(&mut self, op: KvOp) -> Result<(LogIndex, KvResponse), CallError> {
        check_kv_size(&op)?;
        self.seq += 1;
        let command = encode(&KvCommand { client_id: self.client_id, seq: self.seq, op });
        let (index, result) =
            self.retry(ReadFrom::Leader, true, |client, target| client.propose_to(target, command.clone()))?;
        Ok((index, decode_kv(&result)?))
    }

    /// Read with `query` (for the key-value store: an encoded `KvCommand` with a `Get`) without
    /// a log entry, from the servers `from` names: the read index it was answered at and the
    /// state machine's answer. Linearizable (ReadIndex; Lease under the README's clock
    /// assumption).
    pub fn read(&mut self, query: Vec<u8>, mode: ReadMode, from: ReadFrom) -> Result<(LogIndex, Vec<u8>), CallError> {
        self.retry(from, false, |client, target| {
            let request_id = client.send(target, Request::Read { query: query.clone(), mode })?;
            match client.receive(target, request_id, Instant::now() + client.timeout)? {
                Response::Applied { index, result } => Ok((index, result)),
                Response::Error(e) => Err(CallError::Refused(e)),
                other => Err(CallError::BadResponse(format!("{other:?} to a read"))),
            }
        })
    }

    /// How [`Client::get`] reads from now on (default: ReadIndex from the leader).
    pub fn with_reads(mut self, path: ReadPath, from: ReadFrom) -> Client {
        self.reads = (path, from);
        self
    }

    /// Hand leadership over to `to`, or to the most up-to-date follower (thesis §3.10): asks
    /// the leader and waits until the new leader leads. Returns it and its term.
    pub fn transfer_leadership(&mut self, to: Option<NodeId>) -> Result<(NodeId, Term), CallError> {
        // The leader answers once the new leader is known: within an election timeout or so.
        let wait = self.timeout + Duration::from_millis(self.config.election_timeout_ms * 4);
        let (leader, term) = self.retry(ReadFrom::Leader, true, |client, target| {
            let request_id = client.send(target, Request::TransferLeadership { to })?;
            match client.receive(target, request_id, Instant::now() + wait)? {
                Response::Transferred { leader, term } => Ok((leader, term)),
                Response::Error(e) => Err(CallError::Refused(e)),
                other => Err(CallError::BadResponse(format!("{other:?} to a transfer"))),
            }
        })?;
        self.leader_hint = Some(leader);
        Ok((leader, term))
    }

    /// Set `key` to `value`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<LogIndex, CallError> {
        match self.execute(KvOp::Put { key: key.to_vec(), value: value.to_vec() })? {
            (index, KvResponse::Done) => Ok(index),
            (_, other) => Err(CallError::BadResponse(format!("{other:?} to a put"))),
        }
    }

    /// Read `key` (linearizable), as [`Client::with_reads`] chose: by default a ReadIndex read
    /// from the leader, costing no log entry. `None` when absent.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, CallError> {
        let (path, from) = self.reads;
        self.get_with(key, path, from)
    }

    /// Read `key` along `path` from the servers `from` names (`from` is ignored for
    /// [`ReadPath::Log`]: only the leader appends).
    pub fn get_with(&mut self, key: &[u8], path: ReadPath, from: ReadFrom) -> Result<Option<Vec<u8>>, CallError> {
        let op = KvOp::Get { key: key.to_vec() };
        check_kv_size(&op)?;
        let response = match path {
            ReadPath::Log => self.execute(op)?.1,
            ReadPath::ReadIndex | ReadPath::Lease => {
                let mode = if path == ReadPath::Lease { ReadMode::Lease } else { ReadMode::ReadIndex };
                let query = encode(&KvCommand { client_id: 0, seq: 0, op });
                decode_kv(&self.read(query, mode, from)?.1)?
            }
        };
        match response {
            KvResponse::Value(value) => Ok(value),
            other => Err(CallError::BadResponse(format!("{other:?} to a get"))),
        }
    }

    /// Remove `key`; true if it existed.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, CallError> {
        match self.execute(KvOp::Delete { key: key.to_vec() })?.1 {
            KvResponse::Deleted { existed } => Ok(existed),
            other => Err(CallError::BadResponse(format!("{other:?} to a delete"))),
        }
    }

    /// Compare-and-set: store `new` (None deletes) if the value is `expected` (None: absent).
    /// Returns whether it swapped and the value now stored.
    pub fn cas(
        &mut self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<(bool, Option<Vec<u8>>), CallError> {
        let op = KvOp::Cas { key: key.to_vec(), expected: expected.map(<[u8]>::to_vec), new: new.map(<[u8]>::to_vec) };
        match self.execute(op)?.1 {
            KvResponse::Cas { swapped, current } => Ok((swapped, current)),
            other => Err(CallError::BadResponse(format!("{other:?} to a cas"))),
        }
    }
}

/// Refuse a command the leader would refuse, before sending 1.5 MiB for nothing.
fn check_command_size(command: &[u8]) -> Result<(), CallError> {
    if command.len() > COMMAND_BYTES_MAX {
        return Err(CallError::TooLarge { what: "command", bytes: command.len(), limit: COMMAND_BYTES_MAX });
    }
    Ok(())
}

/// Refuse a key-value operation over [`KV_DATA_BYTES_MAX`] before anything is sent.
fn check_kv_size(op: &KvOp) -> Result<(), CallError> {
    let bytes = op.data_len();
    if bytes > KV_DATA_BYTES_MAX {
        return Err(CallError::TooLarge { what: "key and value", bytes, limit: KV_DATA_BYTES_MAX });
    }
    Ok(())
}

fn decode_kv(result: &[u8]) -> Result<KvResponse, CallError> {
    decode(result, RESPONSE_BYTES_MAX).map_err(|e| CallError::BadResponse(format!("{e:?}")))
}
