//! Real network partitions: every server in its own Linux network namespace, faults injected
//! with iptables inside those namespaces, delay and jitter from a user-space proxy.
//!
//! # Topology
//! A test makes, all named `leader-t<os pid>-<n>-…` so that parallel tests and runs never
//! collide (and a run killed with SIGKILL is recognised and swept by the next one):
//! - a *switch* namespace holding only a bridge `br0`, so nothing of the test's network is in
//!   the root namespace;
//! - one namespace per server `k`, with `lo` and `eth0` = `198.18.0.k/24`, a veth whose other
//!   end is a port of the bridge (created directly in those namespaces);
//! - an *observer* namespace, `198.18.0.200`, from which the harness asks for statuses. It is
//!   the test's management network: never partitioned (links into servers still lose packets
//!   when loss is on).
//!
//! Only 198.18.0.0/15 (reserved for network testing) is used, only inside these namespaces,
//! with no default route: nothing can leave. IPv6 is off in them.
//!
//! # Servers and proxies
//! Servers are real `leader --pid k --config server-k.json` processes started under
//! `ip netns exec` (which execs, so the child's pid is the server's) and killed by pid when the
//! cluster is dropped. Without delay every server's config names the peers' real addresses
//! (`198.18.0.j:7001`). With delay, server `k`'s own file names, for each peer `j`, a proxy
//! *in k's namespace* (`127.0.0.1:900j`) that forwards to `198.18.0.j:7001`: ZeroMQ peer
//! traffic is one PUSH connection per ordered pair, from sender to receiver, so that proxy
//! delays exactly the messages k sends to j (see proxy.rs). The files differ only in those
//! urls and share an explicit `cluster_id`. Because the proxy's upstream leg crosses the
//! bridge from k's address, the iptables rules below cut proxied links exactly as direct ones.
//!
//! # Faults (iptables, one `iptables-restore` per namespace so each change is atomic there)
//! - cut a–b: in b, `-A INPUT -i eth0 -s <a> -j DROP` (and the mirror rule in a);
//!   [`NetCluster::partition`] cuts every pair that no group contains, which gives a full
//!   partition (disjoint groups), a partial one (`[[a, c], [b, c]]`) and a bridge
//!   (`[[1, 2, 3], [3, 4, 5]]`: 3 sees both sides);
//! - one way, a's messages never reach b (b's still reach a): in b, drop a's packets to the
//!   peer port 7001 and b's answers from it — a TCP connection cannot work half way, so the
//!   cut is of a's connection to b, i.e. of the messages a sends;
//! - loss: in every server, `-A INPUT -i eth0 -m statistic --mode random --probability p
//!   -j DROP` (each packet crosses one receiver's INPUT, so p per packet per direction).
//!
//! # Clients
//! Clients are threads that [`enter`] a namespace with `setns(2)` and only then create their
//! `Client` (so its ZeroMQ context's I/O threads, which make the TCP connections, are created
//! in that namespace and inherit it). A client in server k's namespace shares k's address and
//! so k's side of every partition. Threads, not processes: the history of every client shares
//! one `Instant` base, and results come back without parsing a CLI's output.

mod net;
mod proxy;
pub mod workload;

pub use net::tool;
use net::{unavailable, Net, NetError};
pub use proxy::{Delay, DelayProxy};

use super::{acknowledged_leader, live_statuses, Observer};
use leader::client::Client;
use leader::config::Config;
use leader::core::{LogIndex, NodeId, Role, Term};
use leader::transport::client_wire::Status;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Every server's peer (PULL) port, in its own namespace.
pub const PEER_PORT: u16 = 7001;
/// Every server's client port.
pub const CLIENT_PORT: u16 = 8001;
/// Server k's proxy for peer j listens on `127.0.0.1:(PROXY_PORT_BASE + j)` in k's namespace.
pub const PROXY_PORT_BASE: u16 = 9000;
/// Prefix of every namespace name the harness makes.
const NAME_PREFIX: &str = "leader-t";

/// Server `pid`'s address.
pub fn addr(pid: u64) -> Ipv4Addr {
    assert!((1..=99).contains(&pid), "server pids 1-99");
    Ipv4Addr::new(198, 18, 0, pid as u8)
}

const OBSERVER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 200);

/// Move the calling thread into namespace `ns` (threads it spawns later inherit it).
pub fn enter(ns: &str) {
    let file = File::open(format!("/run/netns/{ns}")).unwrap_or_else(|e| panic!("open namespace {ns}: {e}"));
    // SAFETY: setns on a valid namespace fd; it only changes this thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns into {ns}: {}", std::io::Error::last_os_error());
}

/// Run `f` on a fresh thread inside namespace `ns` and return its result.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(ns);
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// Faults in force, rendered into every namespace's rules on each change.
#[derive(Default)]
struct Faults {
    /// (a, b): a's packets do not reach b (any port).
    cut: BTreeSet<(u64, u64)>,
    /// (a, b): a's connection to b's peer port is cut (a's messages to b).
    one_way: BTreeSet<(u64, u64)>,
    loss: Option<f64>,
}

/// How a [`NetCluster`] is made.
#[derive(Clone, Debug)]
pub struct NetOptions {
    /// Number of servers (pids 1..=servers).
    pub servers: u64,
    /// Election timeout base (ms); generous, CI has 2 cores and runs tests in parallel.
    pub election_timeout_ms: u64,
    /// Heartbeat interval (ms).
    pub heartbeat_ms: u64,
    /// Route every peer connection through a delaying proxy.
    pub delay: Option<Delay>,
    /// Seed of the proxies' delays.
    pub seed: u64,
}

/// Servers in their own namespaces, as processes; everything is removed on drop.
pub struct NetCluster {
    /// The client's view: every server at its real address (use from a namespace).
    pub config: Config,
    /// Election Safety over every status the harness has seen.
    pub observer: Observer,
    /// The options it was made with.
    pub options: NetOptions,
    servers: BTreeMap<u64, Child>,
    proxies: Vec<DelayProxy>,
    faults: Faults,
    net: Net,
    dir: tempfile::TempDir,
}

impl NetCluster {
    /// Make the network and start every server; None (after printing why) where namespaces
    /// cannot be made, so the caller returns and the test passes as skipped.
    pub fn start(test: &str, options: NetOptions) -> Option<NetCluster> {
        if let Some(why) = unavailable() {
            eprintln!("skipped: {test}: {why}");
            return None;
        }
        let pids: Vec<u64> = (1..=options.servers).collect();
        let net = match Net::create(&pids) {
            Ok(net) => net,
            Err(NetError::Unsupported(why)) => {
                eprintln!("skipped: {test}: cannot create a network namespace: {why}");
                return None;
            }
            Err(NetError::Broken(why)) => panic!("building the test network: {why}"),
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster_id = rand::random::<u64>() >> 12; // any id, the same in every file
        let config = write_config(&dir.path().join("client.json"), &options, &pids, cluster_id, |_| true, real);
        let mut cluster = NetCluster {
            config,
            observer: Observer::default(),
            options: options.clone(),
            servers: BTreeMap::new(),
            proxies: Vec::new(),
            faults: Faults::default(),
            net,
            dir,
        };
        for &k in &pids {
            let path = cluster.dir.path().join(format!("server-{k}.json"));
            let via = |j: u64| match options.delay {
                Some(_) if j != k => format!("127.0.0.1:{}", PROXY_PORT_BASE + j as u16),
                _ => real(j),
            };
            write_config(&path, &options, &pids, cluster_id, |_| true, via);
            if let Some(delay) = options.delay {
                for &j in pids.iter().filter(|&&j| j != k) {
                    let listen = SocketAddr::from(([127, 0, 0, 1], PROXY_PORT_BASE + j as u16));
                    let upstream = SocketAddr::V4(SocketAddrV4::new(addr(j), PEER_PORT));
                    let seed = options.seed ^ (k << 8 | j);
                    cluster.proxies.push(DelayProxy::start(cluster.net.node(k), listen, upstream, delay, seed));
                }
            }
            cluster.start_server(k, &path);
        }
        Some(cluster)
    }

    fn start_server(&mut self, pid: u64, config: &Path) {
        use std::os::unix::process::CommandExt;
        let log = File::create(self.dir.path().join(format!("server-{pid}.log"))).expect("server log");
        let mut command = Command::new(&self.net.ip);
        command
            .args(["netns", "exec", self.net.node(pid), env!("CARGO_BIN_EXE_leader"), "--pid", &pid.to_string()])
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: prctl only sets a flag in the child before exec: a crashed test leaves no
        // server behind (the flag survives `ip netns exec`'s exec of the server).
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        self.servers.insert(pid, command.spawn().expect("spawn ip netns exec leader"));
    }

    /// Server `pid`'s namespace (for clients on its side).
    pub fn ns(&self, pid: u64) -> &str {
        self.net.node(pid)
    }

    /// The observer's namespace (never partitioned).
    pub fn observer_ns(&self) -> &str {
        &self.net.observer
    }

    /// Where the servers' logs and configs are (printed by tests on failure).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client config listing only `pids` (same cluster id): a client that talks to them only.
    pub fn config_of(&self, pids: &[u64]) -> Config {
        let path = self.dir.path().join(format!("client-{pids:?}.json").replace([' ', '[', ']', ','], ""));
        let all: Vec<u64> = self.servers.keys().copied().collect();
        write_config(&path, &self.options, &all, self.config.cluster_id, |p| pids.contains(&p), real)
    }

    /// Statuses of every server that answers the observer.
    pub fn statuses(&self) -> Vec<Status> {
        let config = self.config.clone();
        in_netns(self.observer_ns(), || {
            live_statuses(&mut Client::new(config).with_timeout(Duration::from_millis(500)))
        })
    }

    /// Poll until a leader acknowledged by a majority satisfies `accept`; panics after `within`.
    /// Every status seen is checked for Election Safety.
    pub fn wait_leader(&mut self, within: Duration, accept: impl Fn(NodeId, Term) -> bool) -> (NodeId, Term) {
        let deadline = Instant::now() + within;
        loop {
            let statuses = self.statuses();
            self.observer.observe(&statuses);
            let found = acknowledged_leader(&statuses, self.servers.len());
            if let Some((pid, term)) = found.filter(|(p, t)| accept(*p, *t)) {
                return (pid, term);
            }
            assert!(Instant::now() < deadline, "no acceptable leader within {within:?}: {statuses:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Poll statuses for `duration` (Election Safety on each); the longest stretch seen without
    /// a leader acknowledged by a majority.
    pub fn observe_for(&mut self, duration: Duration) -> Duration {
        let start = Instant::now();
        let (mut longest, mut since) = (Duration::ZERO, None);
        while start.elapsed() < duration {
            let statuses = self.statuses();
            self.observer.observe(&statuses);
            match (acknowledged_leader(&statuses, self.servers.len()), since) {
                (Some(_), _) => since = None,
                (None, None) => since = Some(Instant::now()),
                (None, Some(t)) => longest = longest.max(t.elapsed()),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        longest
    }

    /// Poll until server `pid` does not call itself leader; the time it took.
    pub fn wait_not_leader(&mut self, pid: u64, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let statuses = self.statuses();
            self.observer.observe(&statuses);
            if statuses.iter().any(|s| s.pid == NodeId(pid) && s.role != Role::Leader) {
                return start.elapsed();
            }
            assert!(start.elapsed() < within, "server {pid} still leads after {within:?}: {statuses:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Poll until every server has applied the same index, equal to its commit index, and at
    /// least `at_least`; returns it.
    pub fn wait_converged(&mut self, at_least: LogIndex, within: Duration) -> LogIndex {
        let deadline = Instant::now() + within;
        loop {
            let statuses = self.statuses();
            self.observer.observe(&statuses);
            let applied: BTreeSet<LogIndex> = statuses.iter().map(|s| s.last_applied).collect();
            let settled = statuses.iter().all(|s| s.commit_index == s.last_applied);
            if statuses.len() == self.servers.len() && applied.len() == 1 && settled {
                let index = *applied.first().unwrap();
                if index >= at_least {
                    return index;
                }
            }
            assert!(Instant::now() < deadline, "no convergence at >= {at_least} within {within:?}: {statuses:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Cut every pair of servers that no group contains both of (both directions); replaces
    /// earlier cuts. Disjoint groups: a full partition; overlapping ones: partial or bridge.
    pub fn partition(&mut self, groups: &[&[u64]]) {
        let pids: Vec<u64> = self.servers.keys().copied().collect();
        self.faults.cut.clear();
        for &a in &pids {
            for &b in &pids {
                if a != b && !groups.iter().any(|g| g.contains(&a) && g.contains(&b)) {
                    self.faults.cut.insert((a, b));
                }
            }
        }
        self.apply_faults();
    }

    /// Messages from `from` no longer reach `to` (the other way still works).
    pub fn cut_one_way(&mut self, from: u64, to: u64) {
        self.faults.one_way.insert((from, to));
        self.apply_faults();
    }

    /// Drop each packet arriving at any server with `probability` (None: no loss).
    pub fn set_loss(&mut self, probability: Option<f64>) {
        self.faults.loss = probability;
        self.apply_faults();
    }

    /// Undo every cut (loss stays as set).
    pub fn heal(&mut self) {
        self.faults.cut.clear();
        self.faults.one_way.clear();
        self.apply_faults();
    }

    fn apply_faults(&self) {
        for &me in self.servers.keys() {
            let mut rules = Vec::new();
            if let Some(p) = self.faults.loss {
                rules.push(format!("-A INPUT -i eth0 -m statistic --mode random --probability {p} -j DROP"));
            }
            for &(a, _) in self.faults.cut.iter().filter(|(_, b)| *b == me) {
                rules.push(format!("-A INPUT -i eth0 -s {} -j DROP", addr(a)));
            }
            for &(a, _) in self.faults.one_way.iter().filter(|(_, b)| *b == me) {
                rules.push(format!("-A INPUT -i eth0 -s {} -p tcp --dport {PEER_PORT} -j DROP", addr(a)));
                rules.push(format!("-A OUTPUT -o eth0 -d {} -p tcp --sport {PEER_PORT} -j DROP", addr(a)));
            }
            self.net.apply(me, &rules);
        }
    }

    /// Packets the loss rules dropped so far, over every server (shows the loss is real).
    pub fn lost_packets(&self) -> u64 {
        let iptables = tool("iptables").expect("installed with iptables-restore");
        let mut lost = 0;
        for &pid in self.servers.keys() {
            let args =
                ["netns", "exec", self.net.node(pid), &iptables.to_string_lossy(), "-L", "INPUT", "-n", "-v", "-x"];
            let out = Command::new(&self.net.ip).args(args).output().expect("iptables -L");
            // Lines: pkts bytes target prot opt in out source destination [match]
            for line in String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("statistic")) {
                lost += line.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
            }
        }
        lost
    }

    /// The OS pids of the server processes.
    pub fn os_pids(&self) -> Vec<u32> {
        self.servers.values().map(Child::id).collect()
    }

    /// Chunks the delaying proxies forwarded (0 without delay).
    pub fn proxied_chunks(&self) -> u64 {
        self.proxies.iter().map(DelayProxy::chunks).sum()
    }
}

impl Drop for NetCluster {
    fn drop(&mut self) {
        // Servers, then proxies (their threads sit in the namespaces), then `net` and `dir`
        // as fields: the namespaces, then the files.
        for (_, mut child) in std::mem::take(&mut self.servers) {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.proxies.clear();
        if std::thread::panicking() {
            // The directory goes with the test: show the end of each server's log instead.
            for pid in 1..=self.options.servers {
                let log = std::fs::read_to_string(self.dir.path().join(format!("server-{pid}.log")));
                let text = log.unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                eprintln!("--- server {pid}, last lines:");
                tail.iter().rev().for_each(|line| eprintln!("{line}"));
            }
        }
    }
}

/// Server j's real peer address.
fn real(j: u64) -> String {
    format!("{}:{PEER_PORT}", addr(j))
}

/// Write a config with `pids` (those `include` keeps), server j at `url(j)`; load it.
fn write_config(
    path: &Path,
    options: &NetOptions,
    pids: &[u64],
    cluster_id: u64,
    include: impl Fn(u64) -> bool,
    url: impl Fn(u64) -> String,
) -> Config {
    let servers: Vec<serde_json::Value> = pids
        .iter()
        .filter(|&&j| include(j))
        .map(|&j| {
            let client = format!("tcp://{}:{CLIENT_PORT}", addr(j));
            serde_json::json!({"mypid": j, "url": url(j), "client_url": client})
        })
        .collect();
    let json = serde_json::json!({"object": {
        "total": servers.len(),
        "cluster_id": cluster_id,
        "election_timeout_ms": options.election_timeout_ms,
        "heartbeat_ms": options.heartbeat_ms,
        "Servers": servers,
    }});
    std::fs::write(path, serde_json::to_string_pretty(&json).unwrap()).expect("write config");
    Config::load(path).expect("generated config loads")
}
