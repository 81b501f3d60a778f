//! Shared test harness: private ports and directories, in-process and multi-process clusters,
//! and the safety/liveness observer of the original's test scenarios.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod netns;
use leader::client::{CallError, Client};
use leader::config::Config;
use leader::core::{NodeId, Role, Term};
use leader::node::{NodeOptions, RoleChange, Server};
use leader::process::{ChildLogs, ProcessCluster};
use leader::transport::client_wire::Status;
use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The original's toleranceDuration: a leader must exist again within this long.
pub const TOLERANCE: Duration = Duration::from_secs(10);
/// The original's pingDuration: how often the observer looks.
pub const PING: Duration = Duration::from_millis(100);

/// Ports outside Linux's ephemeral range (32768–60999), so an outgoing connection never takes
/// the port of a server that is down for a restart.
fn free_port() -> u16 {
    loop {
        let port = 20000 + (rand::random::<u16>() % 12000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A config.json of `n` servers on private loopback ports in a fresh temp dir.
pub struct TestConfig {
    /// Owns the directory (config, data, logs); removed on drop.
    pub dir: tempfile::TempDir,
    /// Where the config file is.
    pub path: PathBuf,
    /// The loaded config.
    pub config: Config,
    /// (pid, url, client_url) as written.
    pub servers: Vec<(u64, String, String)>,
}

impl TestConfig {
    /// `n` servers with the given election timeout and heartbeat.
    pub fn new(n: u64, election_timeout_ms: u64, heartbeat_ms: u64) -> TestConfig {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut used = BTreeSet::new();
        let mut port = || loop {
            let p = free_port();
            if used.insert(p) {
                return p;
            }
        };
        let servers: Vec<(u64, String, String)> =
            (1..=n).map(|pid| (pid, format!("127.0.0.1:{}", port()), format!("tcp://127.0.0.1:{}", port()))).collect();
        let path = dir.path().join("config.json");
        let config = write_config(&path, &servers, election_timeout_ms, heartbeat_ms);
        TestConfig { dir, path, config, servers }
    }

    /// Generate a cluster key next to the config and name it in `cluster_key_file`.
    pub fn add_cluster_key(&mut self) {
        let key = self.dir.path().join("cluster.key");
        leader::transport::auth::ClusterKey::generate(&key).expect("generate a key");
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&self.path).expect("read config")).expect("config is JSON");
        json["object"]["cluster_key_file"] = "cluster.key".into();
        std::fs::write(&self.path, json.to_string()).expect("write config");
        self.config = Config::load(&self.path).expect("keyed config loads");
    }

    /// Set `object.<key>` in the file (e.g. `snapshot_entries`) and reload it.
    #[allow(dead_code)] // not every test binary sets options
    pub fn set(&mut self, key: &str, value: serde_json::Value) {
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&self.path).expect("read config")).expect("config is JSON");
        json["object"][key] = value;
        std::fs::write(&self.path, json.to_string()).expect("write config");
        self.config = Config::load(&self.path).expect("config with the option loads");
    }

    /// Rewrite the file with other timeouts (same servers, so the same cluster id).
    pub fn rewrite_timeouts(&mut self, election_timeout_ms: u64, heartbeat_ms: u64) {
        self.config = write_config(&self.path, &self.servers, election_timeout_ms, heartbeat_ms);
    }
}

fn write_config(path: &Path, servers: &[(u64, String, String)], election_timeout_ms: u64, heartbeat_ms: u64) -> Config {
    let list: Vec<serde_json::Value> = servers
        .iter()
        .map(|(pid, url, client)| serde_json::json!({"mypid": pid, "url": url, "client_url": client}))
        .collect();
    let json = serde_json::json!({"object": {
        "total": servers.len(),
        "election_timeout_ms": election_timeout_ms,
        "heartbeat_ms": heartbeat_ms,
        "Servers": list,
    }});
    std::fs::write(path, serde_json::to_string_pretty(&json).unwrap()).expect("write config");
    Config::load(path).expect("test config loads")
}

/// Wait until `f` returns Some, or panic with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Checks Election Safety over everything it is shown: at most one leader per term.
#[derive(Default)]
pub struct Observer {
    /// term -> the leader seen in it.
    leaders: BTreeMap<Term, NodeId>,
    /// How many observations were made.
    pub observations: usize,
}

impl Observer {
    /// Record that `pid` was leader in `term`; panics if another server led that term.
    pub fn saw_leader(&mut self, pid: NodeId, term: Term) {
        let first = *self.leaders.entry(term).or_insert(pid);
        assert_eq!(first, pid, "Election Safety violated: servers {first} and {pid} both led term {term}");
    }

    /// Record a set of statuses taken at one instant.
    pub fn observe(&mut self, statuses: &[Status]) {
        self.observations += 1;
        for s in statuses.iter().filter(|s| s.role == Role::Leader) {
            self.saw_leader(s.pid, s.term);
        }
    }

    /// Record a server's whole role history.
    pub fn observe_history(&mut self, pid: NodeId, history: &[RoleChange]) {
        for change in history.iter().filter(|c| c.role == Role::Leader) {
            self.saw_leader(pid, change.term);
        }
    }

    /// Terms that had a leader.
    pub fn leader_terms(&self) -> usize {
        self.leaders.len()
    }
}

/// A leader acknowledged by a majority of the cluster: it says it leads term T and at least
/// `quorum` servers (itself included) report term T with it as leader.
pub fn acknowledged_leader(statuses: &[Status], cluster_size: usize) -> Option<(NodeId, Term)> {
    let quorum = cluster_size / 2 + 1;
    statuses.iter().filter(|s| s.role == Role::Leader).find_map(|l| {
        let followers = statuses.iter().filter(|s| s.term == l.term && s.leader == Some(l.pid)).count();
        (followers >= quorum).then_some((l.pid, l.term))
    })
}

/// Servers in one test process (fast): real runtimes, real ZeroMQ on loopback, real disks.
pub struct InProcessCluster {
    /// The config (and temp dir).
    pub test: TestConfig,
    /// Running servers.
    pub servers: BTreeMap<NodeId, Server>,
    /// Safety observer, fed by [`InProcessCluster::observe`] and by every stopped server's history.
    pub observer: Observer,
    last_leader_seen: Instant,
}

impl InProcessCluster {
    /// Start all `n` servers.
    pub fn start(n: u64, election_timeout_ms: u64, heartbeat_ms: u64) -> InProcessCluster {
        Self::start_with(n, election_timeout_ms, heartbeat_ms, |_| {})
    }

    /// Start all `n` servers after `adjust` has changed the config.
    pub fn start_with(
        n: u64,
        election_timeout_ms: u64,
        heartbeat_ms: u64,
        adjust: impl FnOnce(&mut TestConfig),
    ) -> InProcessCluster {
        let mut test = TestConfig::new(n, election_timeout_ms, heartbeat_ms);
        adjust(&mut test);
        let mut cluster = InProcessCluster {
            test,
            servers: BTreeMap::new(),
            observer: Observer::default(),
            last_leader_seen: Instant::now(),
        };
        for pid in cluster.test.config.pids() {
            cluster.start_server(pid);
        }
        cluster
    }

    /// Number of servers in the config.
    pub fn size(&self) -> usize {
        self.test.config.servers.len()
    }

    /// (Re)start server `pid` from its data directory.
    pub fn start_server(&mut self, pid: NodeId) {
        let server = Server::start_with(&self.test.config, pid, NodeOptions::default()).expect("server starts");
        assert!(self.servers.insert(pid, server).is_none(), "server {pid} was running");
    }

    /// Stop server `pid` and wait until it is fully stopped; its history goes to the observer.
    pub fn stop_server(&mut self, pid: NodeId) {
        let server = self.servers.remove(&pid).expect("server is running");
        self.observer.observe_history(pid, &server.role_changes());
        server.stop().expect("server stops cleanly");
    }

    /// Statuses of the running servers.
    pub fn statuses(&self) -> Vec<Status> {
        self.servers.values().map(Server::status).collect()
    }

    /// One observation (the original's ping): Election Safety, and Liveness within TOLERANCE
    /// whenever `expect_leader` says a majority is up and connected.
    pub fn observe(&mut self, expect_leader: bool) -> Option<(NodeId, Term)> {
        let statuses = self.statuses();
        self.observer.observe(&statuses);
        let leader = acknowledged_leader(&statuses, self.size());
        if leader.is_some() || !expect_leader {
            self.last_leader_seen = Instant::now();
        }
        assert!(self.last_leader_seen.elapsed() <= TOLERANCE, "no leader for {TOLERANCE:?}: {statuses:?}");
        leader
    }

    /// Observe every PING for `duration`.
    pub fn observe_for(&mut self, duration: Duration, expect_leader: bool) {
        let end = Instant::now() + duration;
        while Instant::now() < end {
            self.observe(expect_leader);
            std::thread::sleep(PING);
        }
    }

    /// Observe until a leader acknowledged by a majority exists (panics after TOLERANCE).
    pub fn wait_leader(&mut self, what: &str) -> (NodeId, Term) {
        self.wait_leader_where(what, |_, _| true)
    }

    /// Observe until a leader acknowledged by a majority satisfies `accept` (panics after
    /// TOLERANCE). Use it to skip a deposed leader whose followers have not noticed yet.
    pub fn wait_leader_where(&mut self, what: &str, accept: impl Fn(NodeId, Term) -> bool) -> (NodeId, Term) {
        let deadline = Instant::now() + TOLERANCE;
        loop {
            if let Some((pid, term)) = self.observe(true) {
                if accept(pid, term) {
                    return (pid, term);
                }
            }
            assert!(Instant::now() < deadline, "no leader within {TOLERANCE:?} ({what}): {:?}", self.statuses());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Cut `pid` off from everyone (both directions).
    pub fn isolate(&self, pid: NodeId) {
        for (other, server) in &self.servers {
            if *other == pid {
                for peer in server.peers() {
                    server.block(*peer);
                }
            } else {
                server.block(pid);
            }
        }
    }

    /// Split the cluster into groups that only hear from their own members.
    pub fn partition(&self, groups: &[&[u64]]) {
        for (pid, server) in &self.servers {
            server.unblock_all();
            let mine = groups.iter().find(|g| g.contains(&pid.0)).expect("every server is in a group");
            for peer in server.peers() {
                if !mine.contains(&peer.0) {
                    server.block(*peer);
                }
            }
        }
    }

    /// Undo every partition.
    pub fn heal(&self) {
        for server in self.servers.values() {
            server.unblock_all();
        }
    }
}

impl InProcessCluster {
    /// Stop every server and check Election Safety over their complete histories.
    pub fn finish(mut self) -> Observer {
        let pids: Vec<NodeId> = self.servers.keys().copied().collect();
        for pid in pids {
            self.stop_server(pid);
        }
        std::mem::take(&mut self.observer)
    }
}

/// Statuses of every server of `client`'s config that answers.
pub fn live_statuses(client: &mut Client) -> Vec<Status> {
    client.status_all().into_iter().filter_map(|(_, s): (NodeId, Result<Status, CallError>)| s.ok()).collect()
}

/// A seed for a randomized test: `LEADER_TEST_SEED` if set, else random; printed for replay.
pub fn test_seed(name: &str) -> u64 {
    let seed = std::env::var("LEADER_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("{name}: seed {seed} (replay with LEADER_TEST_SEED={seed})");
    seed
}

/// Every server of `test` as its own `leader` process, logging to `server-<pid>.log` in the
/// test's directory; stopped by pid when the cluster is dropped.
#[allow(dead_code)] // not every test binary starts processes
pub fn start_all(test: &TestConfig) -> ProcessCluster {
    let mut cluster =
        ProcessCluster::new(env!("CARGO_BIN_EXE_leader"), &test.path, ChildLogs::Dir(test.dir.path().to_path_buf()));
    for pid in test.config.pids() {
        cluster.start(pid).expect("spawn leader");
    }
    cluster
}
