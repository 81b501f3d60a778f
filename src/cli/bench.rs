//! `leader bench`: throughput and latency of acknowledged durable writes and of linearizable
//! reads (`--workload`) against a cluster, or of the core alone (`--in-memory`). A benchmark
//! reports figures; it asserts nothing.

pub(super) mod load;
pub(super) mod stats;
mod threads;

use super::{EXIT_CONFIG, EXIT_FAILURE};
use leader::client::{Client, ReadFrom, ReadPath};
use leader::codec::encode;
use leader::config::Config;
use leader::core::{NodeId, Options, Raft, Role};
use leader::process::{ChildLogs, ProcessCluster};
use leader::transport::{Body, Envelope, Receiver, ENVELOPE_BYTES_MAX, WIRE_VERSION};
use load::{Load, LoadResult, LoadSpec, Until};
use stats::{parse_workload, Summary, Workload};
use std::collections::VecDeque;
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
    /// write, read, mixed (half reads) or mixed=R% (R % reads). A workload that reads first
    /// writes every key it reads (untimed).
    #[arg(long, default_value = "write", value_parser = parse_workload)]
    pub workload: Workload,
    /// Where reads go (ReadIndex and lease reads; log reads always go to the leader).
    #[arg(long, value_enum, default_value_t = ReadFromArg::Leader)]
    pub read_from: ReadFromArg,
    /// How reads are served: readindex (a leadership check, no log entry), lease (needs
    /// `"lease_reads": true` in the config the servers run with) or log (an entry, as a write).
    #[arg(long, value_enum, default_value_t = ReadPathArg::Readindex)]
    pub read_path: ReadPathArg,
    /// Run each client as a thread with its own library `Client` (reads by `Client::get_with`,
    /// writes by `Client::put`) instead of multiplexing them all in one thread: what an
    /// application gets, client overhead included.
    #[arg(long)]
    pub via_client: bool,
    /// Measure the floor of one write on this machine instead: one fdatasync, two concurrent
    /// fdatasyncs, one loopback round trip (in a temp dir under the current directory).
    #[arg(long)]
    pub floor: bool,
}

/// `--read-from`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFromArg {
    Leader,
    Followers,
}

/// `--read-path`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadPathArg {
    Readindex,
    Lease,
    Log,
}

impl ReadPathArg {
    fn path(self) -> ReadPath {
        match self {
            ReadPathArg::Readindex => ReadPath::ReadIndex,
            ReadPathArg::Lease => ReadPath::Lease,
            ReadPathArg::Log => ReadPath::Log,
        }
    }
}

/// Start the cluster of `config` unless some server already answers.
pub(super) fn ensure_cluster(config: &Config) -> Result<Option<ProcessCluster>, i32> {
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

/// The leader some server reports, waiting up to 15 s for one.
pub(super) fn find_leader(config: &Config) -> Option<NodeId> {
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

/// Leaders seen during a run, from a status poll every 50 ms on a thread of its own: every
/// (term, pid) that said it leads, and the highest term any server reported.
struct LeaderWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(std::collections::BTreeSet<(u64, u64)>, u64)>,
}

impl LeaderWatch {
    fn start(config: Config) -> LeaderWatch {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut client = Client::new(config).with_timeout(Duration::from_millis(200));
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

/// Refuse flag combinations that would measure something else than asked.
fn check_args(config: &Config, args: &BenchArgs) -> Result<(), String> {
    if !args.workload.reads() && (args.read_path != ReadPathArg::Readindex || args.read_from != ReadFromArg::Leader) {
        return Err("--read-path and --read-from apply to reads: add --workload read or mixed[=R%]".into());
    }
    if args.read_path == ReadPathArg::Lease && !config.lease_reads {
        // The servers would serve them as ReadIndex reads, and the figures would lie.
        return Err(format!(
            "--read-path lease needs \"lease_reads\": true in {} (and servers started with it; see the README's clock assumption)",
            config.path.display()
        ));
    }
    if args.read_path == ReadPathArg::Log && args.read_from == ReadFromArg::Followers {
        return Err("--read-path log reads through the leader's log: --read-from followers does not apply".into());
    }
    if args.read_from == ReadFromArg::Followers && config.servers.len() < 2 {
        return Err("--read-from followers needs a cluster of more than one server".into());
    }
    Ok(())
}

/// The network benchmark.
pub fn run(config: Config, args: &BenchArgs) -> Result<(), i32> {
    check_args(&config, args).map_err(|e| {
        eprintln!("leader: bench: {e}");
        EXIT_CONFIG
    })?;
    let _cluster = ensure_cluster(&config)?;
    let Some(leader) = find_leader(&config) else {
        eprintln!("leader: bench: no leader within 15 s");
        return Err(EXIT_FAILURE);
    };
    let spec = LoadSpec {
        clients: args.clients as usize,
        value_size: args.value_size,
        keys: args.keys,
        workload: args.workload,
        read_path: args.read_path.path(),
        read_from: if args.read_from == ReadFromArg::Followers { ReadFrom::Followers } else { ReadFrom::Leader },
    };
    let duration = Duration::from_secs_f64(args.duration.max(0.1));
    let term_at_start = Client::new(config.clone())
        .status_all()
        .into_iter()
        .filter_map(|(_, s)| s.ok())
        .map(|s| s.term.0)
        .max()
        .unwrap_or(0);
    if args.via_client {
        let watch = LeaderWatch::start(config.clone());
        let result = threads::run(&config, &spec, duration, args.count);
        let (leader_changes, terms) = watch.finish(term_at_start);
        report(&config, args, &result, leader_changes, terms);
        return Ok(());
    }
    let mut load = Load::new(config.clone(), spec, leader).map_err(|e| {
        eprintln!("leader: bench: {e}");
        EXIT_FAILURE
    })?;
    if args.workload.reads() {
        load.prefill();
    }
    let watch = LeaderWatch::start(config.clone());
    let until = match args.count {
        Some(n) => Until::Acked(n),
        None => Until::Elapsed(duration),
    };
    let result = load.measure(until, !args.json);
    let (leader_changes, terms) = watch.finish(term_at_start);
    report(&config, args, &result, leader_changes, terms);
    Ok(())
}

fn report(config: &Config, args: &BenchArgs, result: &LoadResult, leader_changes: usize, terms: u64) {
    let secs = result.secs;
    let writes = Summary::of(&result.write_latencies_us, secs);
    let reads = Summary::of(&result.read_latencies_us, secs);
    let stall_ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (write_stall, read_stall) = (stall_ms(result.longest_write_stall), stall_ms(result.longest_read_stall));
    let clients = args.clients;
    let read_path = format!("{:?}", args.read_path).to_lowercase();
    let read_from = format!("{:?}", args.read_from).to_lowercase();
    if args.json {
        let mut out = serde_json::json!({"servers": config.servers.len(), "clients": clients,
            "value_size": args.value_size, "workload": args.workload.to_string(), "seconds": secs,
            "errors": result.errors, "leader_changes": leader_changes, "terms_moved": terms});
        if args.workload.writes() {
            out["writes"] = writes.json();
            out["writes"]["longest_stall_ms"] = write_stall.into();
            // The figures of a write-only run at the top level too, as before reads existed.
            for key in ["ops", "ops_per_sec", "p50_ms", "p90_ms", "p99_ms", "max_ms"] {
                out[key] = out["writes"][key].clone();
            }
            out["longest_stall_ms"] = write_stall.into();
        }
        if args.workload.reads() {
            out["reads"] = reads.json();
            out["reads"]["longest_stall_ms"] = read_stall.into();
            out["reads"]["path"] = read_path.into();
            out["reads"]["from"] = read_from.into();
            out["reads"]["misses"] = result.read_misses.into();
        }
        println!("{out}");
        return;
    }
    let line = |what: &str, s: &Summary, stall: f64| {
        format!(
            "{} {what} by {clients} clients in {secs:.1} s: {:.0} ops/s; latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms; longest stall {stall:.1} ms",
            s.ops, s.ops_per_sec, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
        )
    };
    println!("workload {}:", args.workload);
    if args.workload.writes() {
        println!("  {}", line(&format!("puts of {} bytes", args.value_size), &writes, write_stall));
    }
    if args.workload.reads() {
        let what = format!("{read_path} reads from the {}", if read_from == "leader" { "leader" } else { "followers" });
        println!("  {}", line(&what, &reads, read_stall));
        if result.read_misses > 0 {
            println!("  {} reads found no value (every key read was written first)", result.read_misses);
        }
    }
    println!("  {} errors/retries; {leader_changes} leader changes ({terms} terms moved)", result.errors);
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
