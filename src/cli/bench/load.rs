//! The load of `leader bench` (and of `leader failover --rolling`): N closed-loop clients, each
//! with one operation in flight, multiplexed over one DEALER socket per server in one thread,
//! so that 256 clients cost the machine one thread, not 256 (the servers share its 2 cores).
//! Reads are sent as `Client::get_with` sends them: a `Read` request with a `Get` query and no
//! session (ReadIndex and lease reads), or a `Get` proposed through the log.

use super::stats::{Gaps, Workload};
use leader::client::{ReadFrom, ReadPath};
use leader::codec::{decode, encode};
use leader::config::Config;
use leader::core::NodeId;
use leader::kv::{KvCommand, KvOp, KvResponse};
use leader::transport::auth::{self, ClusterKey};
use leader::transport::client_wire::{
    ClientError, ClientRequest, ClientResponse, ReadMode, Request, Response, CLIENT_WIRE_VERSION,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Resend an operation that got no answer for this long (its server may have died).
const RESEND_AFTER: Duration = Duration::from_secs(2);

/// What the load does.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    pub clients: usize,
    pub value_size: usize,
    /// Distinct keys (`bench-0` … `bench-<N-1>`); None: one per client.
    pub keys: Option<u64>,
    pub workload: Workload,
    pub read_path: ReadPath,
    /// `Leader` or `Followers`.
    pub read_from: ReadFrom,
}

/// When a phase ends.
pub enum Until {
    Elapsed(Duration),
    Acked(u64),
    /// Set by another thread (`failover --rolling`).
    Flag(Arc<AtomicBool>),
}

/// What one measured phase saw.
pub struct LoadResult {
    pub secs: f64,
    pub write_latencies_us: Vec<u64>,
    pub read_latencies_us: Vec<u64>,
    /// Reads answered "absent" (every key read was written first: should stay 0).
    pub read_misses: u64,
    /// Refusals, resends and timeouts.
    pub errors: u64,
    pub longest_write_stall: Duration,
    pub longest_read_stall: Duration,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Write,
    Read,
}

struct Op {
    kind: Kind,
    key: Vec<u8>,
    seq: u64,
    request_id: u64,
    started: Instant,
    sent: Instant,
    /// Resend no earlier than this (after a Busy/Dropped/NotLeader answer).
    retry_at: Option<Instant>,
    /// No operation in flight (the prefill ran out of keys).
    idle: bool,
}

/// The clients and their sockets.
pub struct Load {
    config: Config,
    spec: LoadSpec,
    pids: Vec<NodeId>,
    sockets: HashMap<NodeId, zmq::Socket>,
    leader: NodeId,
    /// Round-robin position for follower reads.
    next_follower: usize,
    ops: Vec<Op>,
    by_request: HashMap<u64, usize>,
    next_request_id: u64,
    client_id_base: u64,
    value: Vec<u8>,
    key: Option<ClusterKey>,
    /// Prefill: the next key to write and how many there are (None: measuring).
    prefill: Option<(u64, u64)>,
    acked: u64,
    result: LoadResult,
    write_gaps: Gaps,
    read_gaps: Gaps,
}

impl Load {
    /// Sockets to every server of `config`; `leader` is where writes go first.
    pub fn new(config: Config, spec: LoadSpec, leader: NodeId) -> Result<Load, String> {
        let (key, sockets) = dealers(&config, true)?;
        let now = Instant::now();
        let op = || Op {
            kind: Kind::Write,
            key: Vec::new(),
            seq: 0,
            request_id: 0,
            started: now,
            sent: now,
            retry_at: None,
            idle: true,
        };
        Ok(Load {
            pids: config.pids(),
            config,
            sockets,
            leader,
            next_follower: 0,
            ops: (0..spec.clients).map(|_| op()).collect(),
            by_request: HashMap::new(),
            next_request_id: 1,
            client_id_base: (rand::random::<u64>() >> 20) << 20 | 1,
            value: vec![b'x'; spec.value_size],
            key,
            prefill: None,
            acked: 0,
            result: empty_result(),
            write_gaps: Gaps::new(now),
            read_gaps: Gaps::new(now),
            spec,
        })
    }

    /// Write every key the reads will read (`bench-0` … up to the clients or `--keys`), all
    /// clients at once; untimed.
    pub fn prefill(&mut self) {
        let total = self.spec.keys.unwrap_or(self.spec.clients as u64);
        self.prefill = Some((0, total));
        self.acked = 0;
        for client in 0..self.ops.len() {
            self.start_next(client);
        }
        while self.acked < total {
            self.pump();
        }
        self.prefill = None;
        // Let the prefill's last answers drain so the measured phase starts clean.
        self.by_request.clear();
    }

    /// Run the workload until `until`; its figures.
    pub fn measure(&mut self, until: Until, progress: bool) -> LoadResult {
        self.result = empty_result();
        self.acked = 0;
        let start = Instant::now();
        (self.write_gaps, self.read_gaps) = (Gaps::new(start), Gaps::new(start));
        for client in 0..self.ops.len() {
            self.start_next(client);
        }
        let mut last_report = (start, 0u64);
        loop {
            let done = match &until {
                Until::Elapsed(d) => start.elapsed() >= *d,
                Until::Acked(n) => self.acked >= *n,
                Until::Flag(flag) => flag.load(Ordering::Relaxed),
            };
            if done {
                break;
            }
            self.pump();
            if progress && last_report.0.elapsed() >= Duration::from_secs(1) {
                let rate = (self.acked - last_report.1) as f64 / last_report.0.elapsed().as_secs_f64();
                eprintln!(
                    "  {:>5.1}s  {:>9.0} ops/s  {:>9} done  {} errors",
                    start.elapsed().as_secs_f64(),
                    rate,
                    self.acked,
                    self.result.errors
                );
                last_report = (Instant::now(), self.acked);
            }
        }
        let end = Instant::now();
        let mut result = std::mem::replace(&mut self.result, empty_result());
        result.secs = (end - start).as_secs_f64();
        result.longest_write_stall = self.write_gaps.longest(end);
        result.longest_read_stall = self.read_gaps.longest(end);
        for op in &mut self.ops {
            op.idle = true;
        }
        self.by_request.clear();
        result
    }

    /// Wait up to 5 ms for answers, handle them, resend what is due.
    fn pump(&mut self) {
        let mut items: Vec<zmq::PollItem> =
            self.pids.iter().map(|p| self.sockets[p].as_poll_item(zmq::POLLIN)).collect();
        let _ = zmq::poll(&mut items, 5);
        let readable: Vec<bool> = items.iter().map(|i| i.is_readable()).collect();
        for (i, readable) in readable.into_iter().enumerate() {
            if !readable {
                continue;
            }
            while let Ok(frames) = self.sockets[&self.pids[i]].recv_multipart(zmq::DONTWAIT) {
                self.handle(frames);
            }
        }
        self.resend_due();
    }

    /// Client `client`'s key for its operation `seq`: its own key, or with `--keys N` the next
    /// of N keys in a sequence the clients interleave (client c uses c, c + clients, …).
    fn key_for(&self, client: usize, seq: u64) -> Vec<u8> {
        let i = match self.spec.keys {
            None => client as u64,
            Some(n) => (client as u64 + seq * self.ops.len() as u64) % n,
        };
        format!("bench-{i}").into_bytes()
    }

    fn start_next(&mut self, client: usize) {
        let (kind, key) = match &mut self.prefill {
            Some((next, total)) if *next < *total => {
                *next += 1;
                (Kind::Write, format!("bench-{}", *next - 1).into_bytes())
            }
            Some(_) => {
                self.ops[client].idle = true;
                return;
            }
            None => {
                let read = rand::random::<u32>() % 100 < u32::from(self.spec.workload.read_percent);
                let seq = self.ops[client].seq + 1;
                (if read { Kind::Read } else { Kind::Write }, self.key_for(client, seq))
            }
        };
        let op = &mut self.ops[client];
        op.seq += 1;
        (op.kind, op.key, op.started, op.idle) = (kind, key, Instant::now(), false);
        self.send(client);
    }

    /// The request for `client`'s operation and the server it goes to.
    fn request(&mut self, client: usize) -> (NodeId, Request) {
        let op = &self.ops[client];
        let command = |op: KvOp, client_id, seq| encode(&KvCommand { client_id, seq, op });
        let client_id = self.client_id_base + client as u64;
        match (op.kind, self.spec.read_path) {
            (Kind::Write, _) => {
                let put = KvOp::Put { key: op.key.clone(), value: self.value.clone() };
                (self.leader, Request::Propose { command: command(put, client_id, op.seq) })
            }
            (Kind::Read, ReadPath::Log) => {
                let get = KvOp::Get { key: op.key.clone() };
                (self.leader, Request::Propose { command: command(get, client_id, op.seq) })
            }
            (Kind::Read, path) => {
                let mode = if path == ReadPath::Lease { ReadMode::Lease } else { ReadMode::ReadIndex };
                // As `Client::get_with`: a query outside any session.
                let query = command(KvOp::Get { key: op.key.clone() }, 0, 0);
                let target = match self.spec.read_from {
                    ReadFrom::Followers => self.next_follower(),
                    _ => self.leader,
                };
                (target, Request::Read { query, mode })
            }
        }
    }

    /// The next server after the last follower read that is not the leader (round-robin).
    fn next_follower(&mut self) -> NodeId {
        for _ in 0..self.pids.len() {
            self.next_follower = (self.next_follower + 1) % self.pids.len();
            if self.pids[self.next_follower] != self.leader {
                break;
            }
        }
        self.pids[self.next_follower]
    }

    fn send(&mut self, client: usize) {
        let (target, body) = self.request(client);
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        let op = &mut self.ops[client];
        self.by_request.remove(&op.request_id);
        (op.request_id, op.sent, op.retry_at) = (request_id, Instant::now(), None);
        self.by_request.insert(request_id, client);
        let request =
            ClientRequest { version: CLIENT_WIRE_VERSION, cluster_id: self.config.cluster_id, request_id, body };
        let frame = auth::seal(self.key.as_ref(), encode(&request));
        if self.sockets[&target].send_multipart([&b""[..], &frame], zmq::DONTWAIT).is_err() {
            self.retry_soon(client);
        }
    }

    fn retry_soon(&mut self, client: usize) {
        self.result.errors += 1;
        self.ops[client].retry_at = Some(Instant::now() + Duration::from_millis(10));
    }

    fn handle(&mut self, frames: Vec<Vec<u8>>) {
        let Some(frame) = frames.last() else { return };
        // With a cluster key every response carries a tag: verified and split off first.
        let Some(body) = auth::open(self.key.as_ref(), frame) else { return };
        let Ok(response) = decode::<ClientResponse>(body, 1 << 20) else {
            return;
        };
        let Some(&client) = self.by_request.get(&response.request_id) else {
            return; // a late answer
        };
        let kind = self.ops[client].kind;
        match response.body {
            Response::Applied { result, .. } => {
                self.by_request.remove(&response.request_id);
                let now = Instant::now();
                let latency = (now - self.ops[client].started).as_micros() as u64;
                self.acked += 1;
                if self.prefill.is_none() {
                    if kind == Kind::Read {
                        if !matches!(decode::<KvResponse>(&result, 1 << 20), Ok(KvResponse::Value(Some(_)))) {
                            self.result.read_misses += 1;
                        }
                        self.result.read_latencies_us.push(latency);
                        self.read_gaps.ack(now);
                    } else {
                        self.result.write_latencies_us.push(latency);
                        self.write_gaps.ack(now);
                    }
                }
                self.start_next(client);
            }
            Response::Error(ClientError::NotLeader { leader: Some(l) }) if self.sockets.contains_key(&l) => {
                let follower_read = kind == Kind::Read
                    && self.spec.read_path != ReadPath::Log
                    && self.spec.read_from == ReadFrom::Followers;
                self.leader = l;
                if follower_read {
                    self.retry_soon(client); // the follower has no read index for us yet
                } else {
                    self.result.errors += 1;
                    self.send(client);
                }
            }
            _ => self.retry_soon(client), // Busy, Dropped, Unavailable, no leader yet
        }
    }

    fn resend_due(&mut self) {
        let now = Instant::now();
        for client in 0..self.ops.len() {
            let op = &self.ops[client];
            if op.idle {
                continue;
            }
            let due = op.retry_at.is_some_and(|t| now >= t) || (op.retry_at.is_none() && now - op.sent > RESEND_AFTER);
            if due {
                if self.ops[client].retry_at.is_none() {
                    self.result.errors += 1; // a timeout: maybe the leader died
                    if let Some(l) = super::find_leader(&self.config) {
                        self.leader = l;
                    }
                }
                self.send(client);
            }
        }
    }
}

fn empty_result() -> LoadResult {
    LoadResult {
        secs: 0.0,
        write_latencies_us: Vec::new(),
        read_latencies_us: Vec::new(),
        read_misses: 0,
        errors: 0,
        longest_write_stall: Duration::ZERO,
        longest_read_stall: Duration::ZERO,
    }
}

/// The cluster key of `config` and one DEALER per server's client endpoint (linger 0; with
/// `unbounded`, no high-water marks, so a closed loop of many clients never drops a request):
/// the one place the benchmarks open their client sockets.
pub fn dealers(config: &Config, unbounded: bool) -> Result<(Option<ClusterKey>, HashMap<NodeId, zmq::Socket>), String> {
    let key = match &config.cluster_key_file {
        Some(path) => Some(ClusterKey::load(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let ctx = zmq::Context::new();
    let mut sockets = HashMap::new();
    for server in &config.servers {
        let zmq_err = |e: zmq::Error| format!("socket to {}: {e}", server.client_endpoint);
        let socket = ctx.socket(zmq::DEALER).map_err(zmq_err)?;
        socket.set_linger(0).map_err(zmq_err)?;
        if unbounded {
            socket.set_sndhwm(0).map_err(zmq_err)?;
            socket.set_rcvhwm(0).map_err(zmq_err)?;
        }
        socket.connect(&server.client_endpoint).map_err(zmq_err)?;
        sockets.insert(server.pid, socket);
    }
    Ok((key, sockets))
}
