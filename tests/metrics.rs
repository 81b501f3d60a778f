//! The Prometheus endpoint (issue 13 item 9, docs/metrics.md) on a real 3-server cluster of
//! processes: every server is scraped over HTTP and what it reports must agree with what the
//! cluster did (one leader, one term, the writes committed and applied, syncs timed,
//! elections counted); only `GET /metrics` is served, and nothing a client sends on the
//! socket stops a server from answering the next scrape.

mod common;

use common::{acknowledged_leader, live_statuses, start_all, wait_for, TestConfig, TOLERANCE};
use leader::client::Client;
use leader::config::Config;
use leader::core::NodeId;
use leader::process::{ChildLogs, ProcessCluster};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Keys written before the scrape.
const WRITES: u64 = 5;

/// A loopback port outside Linux's ephemeral range that nobody listens on and the config does
/// not use (tests/common picks the config's ports the same way).
fn free_port(taken: &mut BTreeSet<u16>) -> u16 {
    loop {
        let port = 20000 + (rand::random::<u16>() % 12000);
        if !taken.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.insert(port);
            return port;
        }
    }
}

/// Give every server of `test` a `metrics_url` on its own loopback port; returns them by pid.
fn add_metrics_urls(test: &mut TestConfig) -> BTreeMap<NodeId, String> {
    let mut taken: BTreeSet<u16> = BTreeSet::new();
    for (_, url, client) in &test.servers {
        for ep in [url, client] {
            taken.insert(ep.rsplit(':').next().unwrap().parse().unwrap());
        }
    }
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&test.path).unwrap()).unwrap();
    let mut addrs = BTreeMap::new();
    for server in json["object"]["Servers"].as_array_mut().unwrap() {
        let addr = format!("127.0.0.1:{}", free_port(&mut taken));
        server["metrics_url"] = format!("http://{addr}").into();
        addrs.insert(NodeId(server["mypid"].as_u64().unwrap()), addr);
    }
    std::fs::write(&test.path, json.to_string()).unwrap();
    test.config = Config::load(&test.path).expect("the config with metrics_url loads");
    addrs
}

/// Send `request` raw and read the whole answer (the server closes after one): (head, body).
fn http(addr: &str, request: &[u8]) -> std::io::Result<(String, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    Ok((head.to_string(), body.to_string()))
}

/// One scrape: every sample by its name with labels (`leader_role{role="leader"}`).
struct Scrape {
    samples: BTreeMap<String, f64>,
}

impl Scrape {
    fn get(&self, name: &str) -> f64 {
        *self.samples.get(name).unwrap_or_else(|| panic!("no sample {name} in {:?}", self.samples.keys()))
    }
}

fn scrape(addr: &str) -> Scrape {
    let (head, body) = http(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n").expect("scrape");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let content_type = head.lines().find_map(|l| l.strip_prefix("Content-Type: ")).expect("a Content-Type");
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let mut samples = BTreeMap::new();
    for line in body.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number: {line:?}"));
        assert!(samples.insert(name.to_string(), value).is_none(), "sample {name} twice");
    }
    Scrape { samples }
}

fn wait_leader(client: &mut Client) -> NodeId {
    wait_for(TOLERANCE, "a leader acknowledged by a majority", || {
        acknowledged_leader(&live_statuses(client), 3).map(|(pid, _)| pid)
    })
}

#[test]
fn every_server_reports_what_the_cluster_did() {
    // Long election timeout: no election may happen between the scrapes on a loaded machine.
    let mut test = TestConfig::new(3, 2000, 50);
    let addrs = add_metrics_urls(&mut test);
    let _cluster = start_all(&test);
    let mut client = Client::new(test.config.clone()).with_timeout(Duration::from_millis(500));
    let leader = wait_leader(&mut client);
    for i in 0..WRITES {
        client.put(format!("k{i}").as_bytes(), b"v").expect("put");
    }
    // Followers learn the commit index with the next heartbeat.
    let scrapes = wait_for(TOLERANCE, "every server to report the writes applied", || {
        let scrapes: BTreeMap<NodeId, Scrape> = addrs.iter().map(|(pid, addr)| (*pid, scrape(addr))).collect();
        let done = scrapes.values().all(|s| s.get("leader_applied_index") >= WRITES as f64);
        done.then_some(scrapes)
    });
    let leaders: Vec<NodeId> =
        scrapes.iter().filter(|(_, s)| s.get("leader_role{role=\"leader\"}") == 1.0).map(|(p, _)| *p).collect();
    assert_eq!(leaders, [leader], "exactly one server reports the leader role");
    let terms: BTreeSet<u64> = scrapes.values().map(|s| s.get("leader_term") as u64).collect();
    assert_eq!(terms.len(), 1, "terms agree: {terms:?}");
    let mut elections_won = 0.0;
    for (pid, s) in &scrapes {
        assert_eq!(s.get("leader_pid"), pid.0 as f64);
        let roles: f64 =
            ["follower", "candidate", "leader"].iter().map(|r| s.get(&format!("leader_role{{role=\"{r}\"}}"))).sum();
        assert_eq!(roles, 1.0, "server {pid} has one role");
        assert!(s.get("leader_commit_index") >= WRITES as f64, "server {pid}");
        assert!(s.get("leader_last_log_index") >= s.get("leader_commit_index"), "server {pid}");
        assert!(s.get("leader_entries_committed_total") >= WRITES as f64, "server {pid}");
        assert!(s.get("leader_fsync_seconds_count") > 0.0, "server {pid} synced its log");
        assert_eq!(s.get("leader_fsync_seconds_bucket{le=\"+Inf\"}"), s.get("leader_fsync_seconds_count"));
        // The leader hears from every follower; a follower from the leader (not from the
        // other follower, in a stable term).
        let heard: Vec<NodeId> =
            if *pid == leader { test.config.peers(*pid).map(|p| p.pid).collect() } else { vec![leader] };
        for peer in heard {
            let ago = s.get(&format!("leader_peer_last_contact_seconds{{peer=\"{peer}\"}}"));
            assert!((0.0..10.0).contains(&ago), "server {pid} heard from {peer} {ago} s ago");
        }
        assert_eq!(s.get("leader_dropped_total{reason=\"bad_mac\"}"), 0.0);
        elections_won += s.get("leader_elections_won_total");
        if *pid == leader {
            assert!(s.get("leader_proposals_total") >= WRITES as f64, "the leader counts the proposals");
            assert!(s.get("leader_elections_started_total") >= 1.0);
            assert!(s.get("leader_messages_sent_total{type=\"append_entries\"}") > 0.0);
            assert!(s.get("leader_messages_received_total{type=\"append_entries_response\"}") > 0.0);
            assert!(s.get("leader_append_round_trip_seconds_count") > 0.0, "the leader timed its appends");
        } else {
            assert!(s.get("leader_messages_received_total{type=\"append_entries\"}") > 0.0, "server {pid}");
            assert!(s.get("leader_changes_seen_total") >= 1.0, "server {pid} learned of the leader");
        }
    }
    assert!(elections_won >= 1.0, "someone won the election that made {leader} leader");
}

/// A client holding the connection open, having sent part of a request.
fn slow_client(addr: &str, partial: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(partial).expect("send part of a request");
    stream
}

#[test]
fn only_get_metrics_is_served_and_garbage_does_not_stop_the_server() {
    let mut test = TestConfig::new(1, 500, 50);
    let addrs = add_metrics_urls(&mut test);
    let mut cluster = start_all(&test);
    let addr = &addrs[&NodeId(1)];
    wait_for(TOLERANCE, "the metrics endpoint", || TcpStream::connect(addr).ok());
    for request in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"GET /metricsx HTTP/1.1\r\n\r\n",
        b"GET /other/metrics HTTP/1.0\r\n\r\n",
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    ] {
        let (head, _) = http(addr, request).expect("an answer");
        assert!(head.starts_with("HTTP/1.1 404 Not Found"), "{:?}: {head}", String::from_utf8_lossy(request));
    }
    let (head, _) = http(addr, b"\x00\xff\xfe garbage\x01 \r\n\r\n").expect("an answer");
    assert!(head.starts_with("HTTP/1.1 400 Bad Request"), "{head}");
    let (head, _) = http(addr, b"GET /metrics SMTP/1.1\r\n\r\n").expect("an answer");
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    // A head that never ends: answered (431) or cut off once past the bound, never buffered
    // without limit. Either way the connection ends.
    let _ = http(addr, &vec![b'A'; 64 << 10]);
    // Clients that connect and leave, or send half a request and stall: each is given up on
    // after the deadline, and a scrape behind them is answered.
    drop(TcpStream::connect(addr).expect("connect"));
    let stalled = [slow_client(addr, b""), slow_client(addr, b"GET /met")];
    let started = Instant::now();
    let s = scrape(addr);
    assert!(started.elapsed() < Duration::from_secs(10), "scrape took {:?}", started.elapsed());
    assert_eq!(s.get("leader_pid"), 1.0);
    drop(stalled);
    assert!(cluster.reap_exited().is_empty(), "the server is still running");
    // Random bytes, many times: the server answers every scrape after them.
    for i in 0..20u8 {
        let junk: Vec<u8> = (0..200).map(|_| rand::random::<u8>()).chain(*b"\r\n\r\n").collect();
        let _ = http(addr, &junk);
        if i % 5 == 0 {
            scrape(addr);
        }
    }
    scrape(addr);
    assert!(cluster.reap_exited().is_empty(), "the server is still running");
}

/// Kills the child on drop (a test that fails must not leave a server behind).
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_metrics_flag_overrides_the_config_and_a_clash_is_refused() {
    let mut test = TestConfig::new(1, 500, 50);
    let from_file = add_metrics_urls(&mut test)[&NodeId(1)].clone();
    let mut taken = BTreeSet::new();
    let flag = format!("127.0.0.1:{}", free_port(&mut taken));
    let cluster = ProcessCluster::new(env!("CARGO_BIN_EXE_leader"), &test.path, ChildLogs::Dir(test.dir.path().into()));
    let mut cluster = cluster.with_args(&["--metrics", &flag]);
    cluster.start(NodeId(1)).expect("spawn leader");
    wait_for(TOLERANCE, "the endpoint named by --metrics", || TcpStream::connect(&flag).ok());
    assert_eq!(scrape(&flag).get("leader_pid"), 1.0);
    assert!(TcpStream::connect(&from_file).is_err(), "the config's metrics_url is not bound");
    drop(cluster);
    // The client port of the server itself: refused before anything is bound (exit code 2).
    let client_port = test.servers[0].2.trim_start_matches("tcp://").to_string();
    let (code, stderr) = run_to_exit(&test, &client_port);
    assert_eq!(code, Some(2), "{stderr}");
    let want = format!("--metrics: endpoint tcp://{client_port} is already used by the client_url of server 1");
    assert!(stderr.contains(&want), "{stderr}");
    // A malformed flag is a usage error too.
    let (code, stderr) = run_to_exit(&test, "https://127.0.0.1:1");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("unsupported scheme \"https\""), "{stderr}");
}

/// Run server 1 of `test` with `--metrics ADDR`, expecting it to refuse to start: its exit
/// code and standard error.
fn run_to_exit(test: &TestConfig, metrics: &str) -> (Option<i32>, String) {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_leader"))
        .args(["--pid", "1", "--config", test.path.to_str().unwrap(), "--metrics", metrics])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn leader");
    let mut child = Guard(child);
    let status = wait_for(TOLERANCE, "the refused server to exit", || child.0.try_wait().unwrap());
    let mut stderr = String::new();
    child.0.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (status.code(), stderr)
}
