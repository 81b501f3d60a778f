//! `leader bench`: throughput and latency of acknowledged durable writes against a cluster,
//! or of the core alone (`--in-memory`). A benchmark reports figures; it asserts nothing.

use super::{percentile, EXIT_FAILURE};
use leader::client::Client;
use leader::codec::{decode, encode};
use leader::config::Config;
use leader::core::{NodeId, Options, Raft, Role};
use leader::kv::{KvCommand, KvOp};
use leader::process::{ChildLogs, ProcessCluster};
use leader::transport::auth::{self, ClusterKey};
use leader::transport::client_wire::{
    ClientError, ClientRequest, ClientResponse, Request, Response, CLIENT_WIRE_VERSION,
};
use leader::transport::{Body, Envelope, Receiver, ENVELOPE_BYTES_MAX, WIRE_VERSION};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Flags of `leader bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Concurrent clients, each with one operation in flight (closed loop).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub clients: u32,
    /// How long to run, in seconds (ignored with --count).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Stop after this many acknowledged writes instead of after --duration.
    #[arg(long)]
    pub count: Option<u64>,
    /// Bytes per value.
    #[arg(long, default_value_t = 16)]
    pub value_size: usize,
    /// Distinct keys written, in turn (`bench-0` … `bench-<N-1>`), so the state grows to N
    /// keys; default: one key per client (the state stays tiny).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub keys: Option<u64>,
    /// Print one JSON object with the figures.
    #[arg(long)]
    pub json: bool,
    /// Measure the core alone: three servers in one thread, no disk, no sockets, every
    /// message through the wire codec.
    #[arg(long)]
    pub in_memory: bool,
    /// --in-memory: proposals in all.
    #[arg(long, default_value_t = 200_000)]
    pub proposals: u64,
    /// --in-memory: proposals per batch.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Measure the floor of one write on this machine instead: one fdatasync, two concurrent
    /// fdatasyncs, one loopback round trip (in a temp dir under the current directory).
    #[arg(long)]
    pub floor: bool,
}

/// Resend an operation that got no answer for this long (its server may have died).
const RESEND_AFTER: Duration = Duration::from_secs(2);

struct Op {
    seq: u64,
    request_id: u64,
    started: Instant,
    sent: Instant,
    /// Resend no earlier than this (after a Busy/Dropped/NotLeader answer).
    retry_at: Option<Instant>,
}

/// Start the cluster of `config` unless some server already answers.
fn ensure_cluster(config: &Config) -> Result<Option<ProcessCluster>, i32> {
    let mut probe = Client::new(config.clone()).with_timeout(Duration::from_millis(300));
    if probe.status_all().iter().any(|(_, s)| s.is_ok()) {
        return Ok(None);
    }
    let exe = std::env::current_exe().map_err(|_| EXIT_FAILURE)?;
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        eprintln!("leader: bench: create {}: {e}", config.data_dir.display());
        EXIT_FAILURE
    })?;
    let mut cluster = ProcessCluster::new(exe, &config.path, ChildLogs::Dir(config.data_dir.clone()));
    for pid in config.pids() {
        cluster.start(pid).map_err(|e| {
            eprintln!("leader: bench: start server {pid}: {e}");
            EXIT_FAILURE
        })?;
    }
    eprintln!("bench: started {} servers from {}", config.servers.len(), config.path.display());
    Ok(Some(cluster))
}

fn find_leader(config: &Config) -> Option<NodeId> {
    let mut client = Client::new(config.clone()).with_timeout(Duration::from_millis(300));
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let leader = client.status_all().into_iter().filter_map(|(_, s)| s.ok()).find(|s| s.role == Role::Leader);
        if let Some(s) = leader {
            return Some(s.pid);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// N closed-loop clients multiplexed over one DEALER socket per server, in one thread.
struct Load {
    config: Config,
    sockets: HashMap<NodeId, zmq::Socket>,
    leader: NodeId,
    ops: Vec<Op>,
    by_request: HashMap<u64, usize>,
    next_request_id: u64,
    client_id_base: u64,
    value: Vec<u8>,
    /// `--keys`: distinct keys to cycle through (None: one per client).
    keys: Option<u64>,
    latencies_us: Vec<u64>,
    errors: u64,
    key: Option<ClusterKey>,
    /// When the last write was acknowledged, and the longest time between two (a stall).
    last_ack: Instant,
    longest_stall: Duration,
}

/// Leaders seen during a run, from a status poll every 50 ms on a thread of its own: every
/// (term, pid) that said it leads, and the highest term any server reported.
struct LeaderWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(std::collections::BTreeSet<(u64, u64)>, u64)>,
}

impl LeaderWatch {
    fn start(config: Config, key: Option<ClusterKey>) -> LeaderWatch {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut client = Client::new(config).with_key(key).with_timeout(Duration::from_millis(200));
            let (mut leaders, mut max_term) = (std::collections::BTreeSet::new(), 0);
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                for status in client.status_all().into_iter().filter_map(|(_, s)| s.ok()) {
                    max_term = max_term.max(status.term.0);
                    if status.role == Role::Leader {
                        leaders.insert((status.term.0, status.pid.0));
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (leaders, max_term)
        });
        LeaderWatch { stop, thread }
    }

    /// (leader changes seen, terms the cluster moved through).
    fn finish(self, term_at_start: u64) -> (usize, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (leaders, max_term) = self.thread.join().unwrap_or_default();
        (leaders.len().saturating_sub(1), max_term.saturating_sub(term_at_start))
    }
}

impl Load {
    /// Client `client`'s key for its write `seq`: its own key, or with `--keys N` the next of N
    /// keys in a sequence the clients interleave (client c writes c, c + clients, …).
    fn key_for(&self, client: usize, seq: u64) -> String {
        match self.keys {
            None => format!("bench-{client}"),
            Some(n) => format!("bench-{}", (client as u64 + seq * self.ops.len() as u64) % n),
        }
    }

    fn send(&mut self, client: usize) {
        let key = self.key_for(client, self.ops[client].seq).into_bytes();
        let op = &mut self.ops[client];
        let command = KvCommand {
            client_id: self.client_id_base + client as u64,
            seq: op.seq,
            op: KvOp::Put { key, value: self.value.clone() },
        };
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        self.by_request.remove(&op.request_id);
        op.request_id = request_id;
        op.sent = Instant::now();
        op.retry_at = None;
        self.by_request.insert(request_id, client);
        let request = ClientRequest {
            version: CLIENT_WIRE_VERSION,
            cluster_id: self.config.cluster_id,
            request_id,
            body: Request::Propose { command: encode(&command) },
        };
        let socket = &self.sockets[&self.leader];
        let frame = auth::seal(self.key.as_ref(), encode(&request));
        if socket.send_multipart([&b""[..], &frame], zmq::DONTWAIT).is_err() {
            self.errors += 1;
            self.ops[client].retry_at = Some(Instant::now() + Duration::from_millis(10));
        }
    }

    fn start_next(&mut self, client: usize) {
        let op = &mut self.ops[client];
        op.seq += 1;
        op.started = Instant::now();
        self.send(client);
    }

    fn handle(&mut self, frames: Vec<Vec<u8>>) {
        let Some(frame) = frames.last() else { return };
        // With a cluster key every response carries a tag: verified and split off first.
        let Some(body) = auth::open(self.key.as_ref(), frame) else { return };
        let Ok(response) = decode::<ClientResponse>(body, 1 << 20) else {
            return;
        };
        let Some(&client) = self.by_request.get(&response.request_id) else {
            return;
        }; // a late answer
        match response.body {
            Response::Applied { .. } => {
                self.by_request.remove(&response.request_id);
                self.longest_stall = self.longest_stall.max(self.last_ack.elapsed());
                self.last_ack = Instant::now();
                self.latencies_us.push(self.ops[client].started.elapsed().as_micros() as u64);
                self.start_next(client);
            }
            Response::Error(ClientError::NotLeader { leader: Some(l) }) if self.sockets.contains_key(&l) => {
                self.errors += 1;
                self.leader = l;
                self.send(client);
            }
            _ => {
                // Busy, Dropped, no leader yet: retry the same sequence number shortly.
                self.errors += 1;
                self.ops[client].retry_at = Some(Instant::now() + Duration::from_millis(10));
            }
        }
    }

    fn resend_due(&mut self) {
        let now = Instant::now();
        for client in 0..self.ops.len() {
            let op = &self.ops[client];
            let due = op.retry_at.is_some_and(|t| now >= t) || (op.retry_at.is_none() && now - op.sent > RESEND_AFTER);
            if due {
                if self.ops[client].retry_at.is_none() {
                    self.errors += 1; // a timeout: maybe the leader died
                    if let Some(l) = find_leader(&self.config) {
                        self.leader = l;
                    }
                }
                self.send(client);
            }
        }
    }
}

/// The network benchmark.
pub fn run(config: Config, args: &BenchArgs) -> Result<(), i32> {
    let _cluster = ensure_cluster(&config)?;
    let Some(leader) = find_leader(&config) else {
        eprintln!("leader: bench: no leader within 15 s");
        return Err(EXIT_FAILURE);
    };
    let ctx = zmq::Context::new();
    let mut sockets = HashMap::new();
    for server in &config.servers {
        let socket = ctx.socket(zmq::DEALER).map_err(|_| EXIT_FAILURE)?;
        socket.set_linger(0).map_err(|_| EXIT_FAILURE)?;
        socket.set_sndhwm(0).map_err(|_| EXIT_FAILURE)?;
        socket.set_rcvhwm(0).map_err(|_| EXIT_FAILURE)?;
        socket.connect(&server.client_endpoint).map_err(|_| EXIT_FAILURE)?;
        sockets.insert(server.pid, socket);
    }
    let now = Instant::now();
    let clients = args.clients as usize;
    let mut load = Load {
        config,
        sockets,
        leader,
        ops: (0..clients).map(|_| Op { seq: 0, request_id: 0, started: now, sent: now, retry_at: None }).collect(),
        by_request: HashMap::new(),
        next_request_id: 1,
        client_id_base: (rand::random::<u64>() >> 20) << 20 | 1,
        value: vec![b'x'; args.value_size],
        keys: args.keys,
        latencies_us: Vec::new(),
        errors: 0,
        key: None,
        last_ack: now,
        longest_stall: Duration::ZERO,
    };
    if let Some(path) = &load.config.cluster_key_file {
        load.key = Some(ClusterKey::load(path).map_err(|e| {
            eprintln!("leader: {e}");
            EXIT_FAILURE
        })?);
    }
    let term_at_start = Client::new(load.config.clone())
        .with_key(load.key.clone())
        .status_all()
        .into_iter()
        .filter_map(|(_, s)| s.ok())
        .map(|s| s.term.0)
        .max()
        .unwrap_or(0);
    let watch = LeaderWatch::start(load.config.clone(), load.key.clone());
    let start = Instant::now();
    load.last_ack = start;
    for client in 0..clients {
        load.start_next(client);
    }
    let duration = Duration::from_secs_f64(args.duration.max(0.1));
    let mut last_report = (Instant::now(), 0usize);
    let pids: Vec<NodeId> = load.sockets.keys().copied().collect();
    loop {
        let done = match args.count {
            Some(count) => load.latencies_us.len() as u64 >= count,
            None => start.elapsed() >= duration,
        };
        if done {
            break;
        }
        let mut items: Vec<zmq::PollItem> = pids.iter().map(|p| load.sockets[p].as_poll_item(zmq::POLLIN)).collect();
        let _ = zmq::poll(&mut items, 5);
        let readable: Vec<bool> = items.iter().map(|i| i.is_readable()).collect();
        for (pid, readable) in pids.iter().zip(readable) {
            if !readable {
                continue;
            }
            while let Ok(frames) = load.sockets[pid].recv_multipart(zmq::DONTWAIT) {
                load.handle(frames);
            }
        }
        load.resend_due();
        if last_report.0.elapsed() >= Duration::from_secs(1) && !args.json {
            let n = load.latencies_us.len();
            let rate = (n - last_report.1) as f64 / last_report.0.elapsed().as_secs_f64();
            eprintln!(
                "  {:>5.1}s  {:>9.0} ops/s  {:>9} done  {} errors",
                start.elapsed().as_secs_f64(),
                rate,
                n,
                load.errors
            );
            last_report = (Instant::now(), n);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let longest_stall_ms = load.longest_stall.max(load.last_ack.elapsed()).as_secs_f64() * 1000.0;
    let (leader_changes, terms) = watch.finish(term_at_start);
    let mut lat: Vec<f64> = load.latencies_us.iter().map(|&us| us as f64 / 1000.0).collect();
    lat.sort_by(f64::total_cmp);
    let ops = lat.len();
    let (p50, p90, p99, max) =
        (percentile(&lat, 50.0), percentile(&lat, 90.0), percentile(&lat, 99.0), percentile(&lat, 100.0));
    let ops_per_sec = ops as f64 / secs;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"servers": load.config.servers.len(), "clients": clients, "value_size": args.value_size,
                "ops": ops, "seconds": secs, "ops_per_sec": ops_per_sec, "p50_ms": p50, "p90_ms": p90, "p99_ms": p99,
                "max_ms": max, "errors": load.errors, "leader_changes": leader_changes, "terms_moved": terms,
                "longest_stall_ms": longest_stall_ms})
        );
    } else {
        println!(
            "{ops} puts of {} bytes by {clients} clients in {secs:.1} s: {ops_per_sec:.0} ops/s; latency p50 {p50:.2} ms, p90 {p90:.2} ms, p99 {p99:.2} ms, max {max:.2} ms; {} errors/retries; {leader_changes} leader changes ({terms} terms moved); longest stall {longest_stall_ms:.1} ms",
            args.value_size, load.errors
        );
    }
    Ok(())
}

/// The core alone: three cores in one thread, no disk (each core's in-memory log is the only
/// copy), every message encoded and decoded by the wire codec.
pub fn run_in_memory(args: &BenchArgs) -> Result<(), i32> {
    const CLUSTER_ID: u64 = 0xbe9c4;
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let mut nodes: Vec<Raft> = ids
        .iter()
        .map(|&id| {
            let peers = ids.iter().copied().filter(|p| *p != id).collect();
            let mut options = Options::new(id, peers, 10, 2, id.0);
            options.in_flight_max = 256;
            Raft::new(options, Default::default())
        })
        .collect();
    let receivers: Vec<Receiver> = ids
        .iter()
        .map(|&me| Receiver {
            cluster_id: CLUSTER_ID,
            me,
            peers: ids.iter().copied().filter(|p| *p != me).collect(),
            envelope_bytes_max: ENVELOPE_BYTES_MAX,
        })
        .collect();
    let mut applied = [0u64; 3];
    let mut wire: VecDeque<Vec<u8>> = VecDeque::new();
    let mut bytes_on_wire = 0u64;
    let mut pump = |nodes: &mut Vec<Raft>, applied: &mut [u64; 3]| {
        loop {
            for (i, node) in nodes.iter_mut().enumerate() {
                while node.has_ready() {
                    let ready = node.ready();
                    // No disk: the core's own log is the in-memory copy of the entries.
                    for out in ready.messages {
                        let envelope = Envelope {
                            version: WIRE_VERSION,
                            cluster_id: CLUSTER_ID,
                            from: node.id(),
                            to: out.to,
                            body: Body::Raft(out.message),
                        };
                        let bytes = encode(&envelope);
                        bytes_on_wire += bytes.len() as u64;
                        wire.push_back(bytes);
                    }
                    applied[i] +=
                        node.entries(ready.committed_entries).iter().filter(|e| !e.data.is_empty()).count() as u64;
                    node.advance();
                }
            }
            if wire.is_empty() {
                break;
            }
            while let Some(bytes) = wire.pop_front() {
                // Peek the receiver (bytes 18..26 are `to`) to pick its checker, then decode.
                let to = u64::from_le_bytes(bytes[18..26].try_into().expect("envelope header")) as usize - 1;
                let envelope = receivers[to].open_envelope(&bytes).expect("our own envelopes decode");
                if let Body::Raft(message) = envelope.body {
                    nodes[to].step(envelope.from, message);
                }
            }
        }
    };
    // Elect server 1: tick only it until it campaigns and wins.
    while nodes[0].role() != Role::Leader {
        nodes[0].tick();
        pump(&mut nodes, &mut applied);
    }
    let total = args.proposals;
    let batch = args.batch.max(1) as u64;
    let payload = vec![7u8; 16];
    let start = Instant::now();
    let mut proposed = 0;
    while applied.iter().any(|&a| a < total) {
        if proposed < total {
            let n = batch.min(total - proposed);
            nodes[0].propose_batch((0..n).map(|_| payload.clone()).collect()).expect("server 1 leads");
            proposed += n;
        } else {
            // Followers learn the final commit index from a heartbeat.
            for _ in 0..2 {
                nodes[0].tick();
            }
        }
        pump(&mut nodes, &mut applied);
    }
    let secs = start.elapsed().as_secs_f64();
    let entries_per_sec = total as f64 / secs;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"servers": 3, "proposals": total, "batch": batch, "entry_bytes": 16, "seconds": secs,
                "entries_per_sec": entries_per_sec, "wire_bytes": bytes_on_wire})
        );
    } else {
        println!(
            "core alone, 3 servers, {total} proposals of 16 bytes in batches of {batch}: {secs:.3} s, {entries_per_sec:.0} entries/s committed and applied on all 3 ({} MB through the codec)",
            bytes_on_wire / 1_000_000
        );
    }
    Ok(())
}
