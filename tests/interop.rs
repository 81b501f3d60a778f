//! Interop with peers written in Python from docs/wire.md alone (examples/python/): a Python
//! voter elects Rust servers, a Python client reads and writes (and its `status` shows the
//! counters of the Rust CLI's `leader status --json`), application messages cross in
//! both directions, a Python sender of garbage cannot disturb the cluster, and pre-vote (Message
//! tags 4 and 5) keeps a cut-off Python peer from deposing a healthy Rust leader, a Python peer
//! that was down catches up by InstallSnapshot (Message tags 6 and 7), a Python peer that wins
//! an election hands leadership to a Rust server (TimeoutNow, Message tag 8: it serves no
//! writes), and the Python client reads without the log (Request tag 5) and transfers
//! leadership (Request tag 6). The Python self-tests (examples/python/test_*.py) run here too.
//! Needs python3 with pyzmq (`.ci/run` installs it).

mod common;

use common::{wait_for, InProcessCluster, TestConfig, TOLERANCE};
use leader::client::Client;
use leader::codec::encode;
use leader::core::{LogIndex, NodeId, Role, Term};
use leader::kv::{KvCommand, KvOp};
use leader::node::{NodeOptions, Server, Target};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python")
}

/// python3 with pyzmq, or a clear failure (these tests must not pass without Python).
fn python() -> Command {
    let ok = Command::new("python3").args(["-c", "import zmq"]).status().map(|s| s.success()).unwrap_or(false);
    assert!(ok, "interop tests need python3 with pyzmq: run `pip install pyzmq` (.ci/run does)");
    Command::new("python3")
}

/// A Python peer process, killed by pid on drop; its stdout JSON lines arrive on `lines`.
struct PythonPeer {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<Value>,
    /// The highest term of the `{"role": …, "term": …}` lines read so far.
    max_term: u64,
}

impl PythonPeer {
    fn start(pid: u64, config: &Path, extra: &[&str]) -> PythonPeer {
        let mut child = python()
            .arg(python_dir().join("peer.py"))
            .args(["--pid", &pid.to_string(), "--config"])
            .arg(config)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start peer.py");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    if tx.send(value).is_err() {
                        return;
                    }
                }
            }
        });
        PythonPeer { child, stdin, lines, max_term: 0 }
    }

    /// The next stdout line within `timeout`, noting the term of role lines on the way.
    fn next_line(&mut self, timeout: Duration) -> Option<Value> {
        let v = self.lines.recv_timeout(timeout).ok()?;
        if let Some(term) = v.get("term").and_then(Value::as_u64) {
            self.max_term = self.max_term.max(term);
        }
        Some(v)
    }

    /// Its `votes` counters (the stdin command `votes`). Lines come out in order, so every role
    /// line printed before the answer has been read (and `max_term` noted) when this returns.
    fn votes(&mut self) -> BTreeMap<String, u64> {
        self.command("votes");
        let deadline = Instant::now() + TOLERANCE;
        loop {
            let left = deadline.checked_duration_since(Instant::now()).expect("peer.py to answer `votes`");
            if let Some(v) = self.next_line(left).and_then(|v| v.get("votes").cloned()) {
                return serde_json::from_value(v).expect("votes are counts");
            }
        }
    }

    fn command(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to peer.py");
        self.stdin.flush().unwrap();
    }

    /// The next application message it printed, within `timeout`.
    fn app_message(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.next_line(left) {
                Some(v) if v.get("app").is_some() => return Some(v["app"].clone()),
                Some(_) => continue,
                None => return None,
            }
        }
        None
    }
}

impl Drop for PythonPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the Rust servers `pids` of `test` in this process.
fn rust_servers(test: &TestConfig, pids: &[u64]) -> BTreeMap<NodeId, Server> {
    pids.iter()
        .map(|&p| (NodeId(p), Server::start_with(&test.config, NodeId(p), NodeOptions::default()).expect("start")))
        .collect()
}

/// The leader among `servers` once every one of them follows it in its term.
fn rust_leader(servers: &BTreeMap<NodeId, Server>) -> (NodeId, Term) {
    wait_for(TOLERANCE, "a Rust leader followed by the other Rust servers", || {
        let s: Vec<_> = servers.values().map(Server::status).collect();
        let l = s.iter().find(|x| x.role == Role::Leader)?;
        s.iter().all(|x| x.leader == Some(l.pid) && x.term == l.term).then_some((l.pid, l.term))
    })
}

/// Crash `pid`: cut it off from everyone, then stop it. `Server::stop` hands leadership over
/// first (issue 12), and the other servers would then elect its choice with its own vote; cut
/// off, it can hand nothing over, so the others must elect a leader by themselves (pre-vote,
/// then vote), as after a crash.
fn crash(servers: &mut BTreeMap<NodeId, Server>, pid: NodeId, cluster_size: u64) {
    for p in (1..=cluster_size).filter(|p| *p != pid.0) {
        servers[&pid].block(NodeId(p));
    }
    servers.remove(&pid).unwrap().stop().unwrap();
}

/// Wait until server `pid` (through its client port) follows `leader` in `term` and has
/// committed `index`: its connections are up and it acknowledges the leader's entries.
fn wait_follows(status: &mut Client, pid: NodeId, leader: NodeId, term: Term, index: LogIndex) {
    wait_for(TOLERANCE, "the Python peer to follow the leader and hold its entries", || {
        status.status(pid).ok().filter(|s| s.leader == Some(leader) && s.term == term && s.commit_index >= index)
    });
}

fn put_command(seq: u64, key: &str, value: &str) -> Vec<u8> {
    encode(&KvCommand { client_id: 0x5eed, seq, op: KvOp::Put { key: key.into(), value: value.into() } })
}

#[test]
fn a_python_peer_votes_and_replicates_so_the_surviving_rust_server_wins() {
    let test = TestConfig::new(3, 200, 50);
    let _peer = PythonPeer::start(3, &test.path, &["--no-campaign"]);
    let mut servers = rust_servers(&test, &[1, 2]);
    let (leader, old_term) = rust_leader(&servers);
    let (index, _) = servers[&leader].propose(put_command(1, "a", "1"), TOLERANCE).expect("a write commits");
    assert!(index.0 >= 2);
    let mut status = Client::new(test.config.clone()).with_timeout(Duration::from_millis(300));
    wait_follows(&mut status, NodeId(3), leader, old_term, index);

    // Kill the Rust leader: the other Rust server can only win with the Python peer's vote,
    // and only commit with the Python peer's acknowledgement (2 of 3).
    crash(&mut servers, leader, 3);
    let survivor = servers.keys().copied().next().unwrap();
    wait_for(TOLERANCE, "the surviving Rust server to win", || {
        let s = servers[&survivor].status();
        (s.role == Role::Leader && s.term > old_term).then_some(())
    });
    let (index, _) =
        servers[&survivor].propose(put_command(2, "b", "2"), TOLERANCE).expect("commit with the Python ack");
    // Applied means committed: the status catches up as soon as the turn ends.
    wait_for(TOLERANCE, "the status to show the commit", || {
        (servers[&survivor].status().commit_index >= index).then_some(())
    });
}

#[test]
fn the_python_client_writes_and_reads_through_a_rust_cluster() {
    let mut cluster = InProcessCluster::start(3, 200, 50);
    let (mut leader, _) = cluster.wait_leader("first election");
    // client.py tries server 2 first when it knows no leader: make sure server 2 follows, so
    // that every fresh client.py run below has to follow a NotLeader redirect to succeed.
    if leader == NodeId(2) {
        cluster.stop_server(NodeId(2));
        leader = cluster.wait_leader_where("a leader other than 2", |p, _| p != NodeId(2)).0;
        cluster.start_server(NodeId(2));
        wait_for(TOLERANCE, "server 2 to follow", || {
            (cluster.servers[&NodeId(2)].leader() == Some(leader)).then_some(())
        });
    }
    let config = cluster.test.path.clone();
    let client = |args: &[&str]| {
        let out =
            python().arg(python_dir().join("client.py")).arg("--config").arg(&config).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(client(&["put", "colour", "blue"]).1, "OK");
    assert_eq!(client(&["get", "colour"]), (Some(0), "blue".to_string(), String::new()));
    let (code, _, err) = client(&["get", "nothing"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not found"), "{err}");
    assert_eq!(client(&["delete", "colour"]).1, "deleted");
    assert_eq!(client(&["get", "colour"]).0, Some(1));
    // What the Python client wrote, the Rust client reads (and vice versa).
    let mut rust = Client::new(cluster.test.config.clone());
    rust.put(b"from-rust", b"42").unwrap();
    assert_eq!(client(&["get", "from-rust"]).1, "42");
    assert_eq!(client(&["put", "from-python", "7"]).1, "OK");
    assert_eq!(rust.get(b"from-python").unwrap(), Some(b"7".to_vec()));
    // status: one JSON line per server, the leader agreed.
    let (code, out, _) = client(&["status"]);
    assert_eq!(code, Some(0));
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().any(|l| l["state"] == "leader" && l["pid"] == leader.0));
    // Each line (an Inspect request, Request tag 7 / Response tag 7) has the keys of the Rust
    // CLI's `leader status --json` for the same server, "dropped" included; values may differ.
    let rust_cli = Command::new(env!("CARGO_BIN_EXE_leader"))
        .args(["status", "--json", "--timeout-ms", "2000", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(rust_cli.status.success(), "{}", String::from_utf8_lossy(&rust_cli.stderr));
    let rust_lines: Vec<Value> =
        String::from_utf8_lossy(&rust_cli.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rust_lines.len(), 3);
    let dropped_keys = |line: &Value| -> Vec<String> {
        let dropped = line["dropped"].as_object().unwrap_or_else(|| panic!("no \"dropped\" object in {line}"));
        assert!(dropped.values().all(Value::is_u64), "{line}");
        dropped.keys().cloned().collect()
    };
    for (py, rs) in lines.iter().zip(&rust_lines) {
        assert_eq!(py["pid"], rs["pid"]);
        let (py_keys, rs_keys) = (dropped_keys(py), dropped_keys(rs));
        assert_eq!(py_keys, rs_keys, "server {}: Python {py} vs Rust {rs}", py["pid"]);
        for name in ["bad_mac", "invalid_entries_not_contiguous", "garbage", "stale_term", "leader_sticky"] {
            assert!(py_keys.iter().any(|k| k == name), "no {name} in {py}");
        }
        // Same keys, in the same (sorted) order, for the rest of the line too.
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(py), keys(rs));
    }

    // A follower redirects: the wire module decodes NotLeader with the leader's pid.
    let follower = cluster.servers.keys().copied().find(|p| *p != leader).unwrap();
    let script = format!(
        "import sys; sys.path.insert(0, {dir:?}); import leader_wire as w, zmq\n\
         cfg = w.load_config({cfg:?})\n\
         print(w.redirect_probe(cfg, {follower}))",
        dir = python_dir().display().to_string(),
        cfg = config.display().to_string(),
        follower = follower.0
    );
    let out = python().args(["-c", &script]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        leader.0.to_string(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cluster.finish();
}

#[test]
fn application_messages_cross_between_rust_and_python() {
    let test = TestConfig::new(3, 200, 50);
    let mut peer = PythonPeer::start(3, &test.path, &["--no-campaign"]);
    let servers = rust_servers(&test, &[1, 2]);
    let s1 = &servers[&NodeId(1)];
    // Rust -> Python, one to one (resend: datagrams are lost while connections come up).
    let got = wait_for(TOLERANCE, "peer.py to print the message", || {
        s1.send(Target::Pid(NodeId(3)), b"to-python".to_vec());
        peer.app_message(Duration::from_millis(100)).filter(|m| m["payload"] == "to-python")
    });
    assert_eq!((got["from"].as_u64(), got["broadcast"].as_bool()), (Some(1), Some(false)));
    // Rust -> everyone.
    let got = wait_for(TOLERANCE, "a broadcast at peer.py", || {
        s1.send(Target::Broadcast, b"to-all".to_vec());
        peer.app_message(Duration::from_millis(100)).filter(|m| m["payload"] == "to-all")
    });
    assert_eq!(got["broadcast"].as_bool(), Some(true));
    // Python -> Rust, one to one, then broadcast to both Rust servers.
    let m = wait_for(TOLERANCE, "server 1 to receive from Python", || {
        peer.command("send 1 from-python");
        s1.recv_timeout(Duration::from_millis(100)).filter(|m| m.payload == b"from-python")
    });
    assert_eq!((m.from, m.broadcast), (NodeId(3), false));
    for pid in [1, 2] {
        let m = wait_for(TOLERANCE, "a Python broadcast at a Rust server", || {
            peer.command("broadcast hello-all");
            servers[&NodeId(pid)].recv_timeout(Duration::from_millis(100)).filter(|m| m.payload == b"hello-all")
        });
        assert_eq!((m.from, m.broadcast), (NodeId(3), true));
    }
}

#[test]
fn python_garbage_does_not_disturb_the_cluster() {
    let mut cluster = InProcessCluster::start(3, 200, 50);
    let (leader, term) = cluster.wait_leader("first election");
    let follower = cluster.servers.keys().copied().find(|p| *p != leader).unwrap();
    let before = cluster.servers[&leader].drop_counts().total();
    for target in [leader, follower] {
        // The odd PreVotes claim to come from another member, so they pass the envelope checks
        // and reach the core (a core without pre-vote drops them as undecodable instead).
        let sender = cluster.servers.keys().copied().find(|p| *p != target).unwrap();
        let status = python()
            .arg(python_dir().join("garbage.py"))
            .arg("--config")
            .arg(&cluster.test.path)
            .args(["--as", &sender.0.to_string(), "--to", &target.0.to_string(), "--count", "50"])
            .status()
            .unwrap();
        assert!(status.success());
    }
    wait_for(TOLERANCE, "the garbage to be counted", || {
        (cluster.servers[&leader].drop_counts().total() > before).then_some(())
    });
    cluster.observe_for(Duration::from_millis(500), true);
    assert_eq!(cluster.wait_leader("after the garbage"), (leader, term), "the leader stays");
    let mut client = Client::new(cluster.test.config.clone());
    for i in 0..20 {
        client.put(format!("k{i}").as_bytes(), b"v").expect("writes still served");
    }
    assert_eq!(client.get(b"k19").unwrap(), Some(b"v".to_vec()));
    cluster.finish();
}

#[test]
fn the_python_client_authenticates_to_a_keyed_cluster() {
    let mut cluster = InProcessCluster::start_with(3, 200, 50, TestConfig::add_cluster_key);
    cluster.wait_leader("keyed cluster");
    let run = |config: &Path, args: &[&str]| {
        let out = python().arg(python_dir().join("client.py")).arg("--config").arg(config).args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    // With the config's key file, the Python client's tags verify.
    assert_eq!(run(&cluster.test.path, &["put", "secret", "s3"]), (Some(0), "OK".to_string()));
    assert_eq!(run(&cluster.test.path, &["get", "secret"]), (Some(0), "s3".to_string()));
    // The same servers, a config without the key: nothing it sends is read.
    let keyless = cluster.test.dir.path().join("keyless.json");
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&cluster.test.path).unwrap()).unwrap();
    json["object"].as_object_mut().unwrap().remove("cluster_key_file");
    std::fs::write(&keyless, json.to_string()).unwrap();
    let (code, _) = run(&keyless, &["put", "secret", "forged", "--deadline-ms", "1500"]);
    assert_eq!(code, Some(1), "an unkeyed client gets no answer");
    let mut client = Client::new(cluster.test.config.clone());
    assert_eq!(client.get(b"secret").unwrap(), Some(b"s3".to_vec()), "the forged write was not applied");
    cluster.finish();
}

/// The election after the Rust leader dies needs the Python voter twice: the survivor must
/// first win a pre-vote (2 of 3: the Python PreVote grant), then the vote. A Python voter that
/// ignored PreVotes would make this election impossible.
#[test]
fn a_python_voter_grants_the_pre_vote_and_the_vote_a_surviving_rust_server_needs() {
    let test = TestConfig::new(3, 200, 50);
    let mut peer = PythonPeer::start(3, &test.path, &["--no-campaign"]);
    let mut servers = rust_servers(&test, &[1, 2]);
    let (leader, old_term) = rust_leader(&servers);
    let (index, _) = servers[&leader].propose(put_command(1, "a", "1"), TOLERANCE).expect("a write commits");
    let mut status = Client::new(test.config.clone()).with_timeout(Duration::from_millis(300));
    wait_follows(&mut status, NodeId(3), leader, old_term, index);
    let before = peer.votes();

    crash(&mut servers, leader, 3);
    let survivor = servers.keys().copied().next().unwrap();
    wait_for(TOLERANCE, "the surviving Rust server to win", || {
        let s = servers[&survivor].status();
        (s.role == Role::Leader && s.term > old_term).then_some(())
    });
    servers[&survivor].propose(put_command(2, "b", "2"), TOLERANCE).expect("commit with the Python ack");

    let after = peer.votes();
    let grew = |k: &str| after[k] - before[k];
    assert!(grew("vote_granted") >= 1, "the survivor won without the Python vote? {before:?} -> {after:?}");
    assert!(grew("pre_vote_granted") >= 1, "the survivor won without the Python pre-vote? {before:?} -> {after:?}");
}

/// Thesis §9.6: a server cut off from a healthy leader, or restarted, times out. With pre-vote
/// (peer.py's default) it asks first and, hearing no yes, never raises its term; so when it is
/// back the leader and its term stand. Without pre-vote (the control, `--no-pre-vote`) its term
/// climbs while it is cut off and its first answer after the reconnection deposes the leader,
/// which shows that the partition below does provoke the disruption the first half checks is
/// absent. (A restart without pre-vote deposes the leader too, about one time in three here: the
/// peer can time out before the leader's connection to it comes back.)
///
/// It also checks the Rust side's leader stickiness: the logs are equal, so only stickiness
/// keeps the Rust follower from granting the returning peer's PreVote.
#[test]
fn a_cut_off_or_restarted_python_peer_with_pre_vote_does_not_depose_a_healthy_rust_leader() {
    let test = TestConfig::new(3, 200, 50);
    let servers = rust_servers(&test, &[1, 2]);
    // The Rust leader first: a campaigning Python peer that won would serve no writes.
    let (leader, term) = rust_leader(&servers);
    let mut peer = PythonPeer::start(3, &test.path, &[]);
    let mut client = Client::new(test.config.clone()).with_timeout(Duration::from_millis(300));
    let mut python_follows = || {
        wait_for(TOLERANCE, "peer.py to follow the Rust leader in its term", || {
            client.status(NodeId(3)).ok().filter(|s| s.leader == Some(leader) && s.term == term).map(|_| ())
        })
    };
    python_follows();
    let cut_off = |cut: bool| {
        for s in servers.values() {
            if cut {
                s.block(NodeId(3));
            } else {
                s.unblock_all();
            }
        }
    };
    // Several election timeouts of watching: the same leader, in the same term, everywhere.
    let undisturbed = |what: &str| {
        let until = Instant::now() + Duration::from_millis(1000);
        while Instant::now() < until {
            for s in servers.values() {
                let st = s.status();
                assert_eq!((st.term, st.leader), (term, Some(leader)), "{what} disturbed server {}", st.pid);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(servers[&leader].role_changes().iter().all(|c| c.term <= term), "{what} changed the term");
    };

    let before = peer.votes();
    cut_off(true);
    let during = wait_for(TOLERANCE, "peer.py to pre-campaign twice while cut off", || {
        let v = peer.votes();
        (v["pre_campaigns"] >= before["pre_campaigns"] + 2).then_some(v)
    });
    assert_eq!(during["campaigns"], before["campaigns"], "no pre-vote was granted, so no campaign");
    assert_eq!(peer.max_term, term.0, "pre-campaigning never raises the term");
    cut_off(false);
    python_follows();
    undisturbed("the reconnection");

    drop(peer);
    let mut peer = PythonPeer::start(3, &test.path, &[]);
    python_follows();
    undisturbed("the restart");
    servers[&leader].propose(put_command(1, "after", "1"), TOLERANCE).expect("the leader still commits");
    peer.votes();
    assert_eq!(peer.max_term, term.0, "peer.py never left the leader's term");

    // The control: the same peer (same data directory) without pre-vote. Its restart alone may
    // already depose the leader (see above), so nothing here requires the old term to stand.
    drop(peer);
    let mut peer = PythonPeer::start(3, &test.path, &["--no-pre-vote"]);
    peer.votes(); // it is up
    cut_off(true);
    wait_for(TOLERANCE, "peer.py's term to climb while cut off", || {
        peer.votes();
        (peer.max_term > term.0).then_some(())
    });
    cut_off(false);
    wait_for(TOLERANCE, "the reconnected peer to depose the leader", || {
        servers.values().any(|s| s.term() > term).then_some(())
    });
}

/// The `"snapshot"` line peer.py prints when it installs (or, at start, loads) a snapshot,
/// within `timeout`: `{"installed": I, "term": T, "bytes": N, …}` or `{"loaded": I, …}`.
fn snapshot_line(peer: &mut PythonPeer, key: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match peer.next_line(left) {
            Some(v) if v["snapshot"].get(key).is_some() => return v["snapshot"].clone(),
            Some(_) => continue,
            None => break,
        }
    }
    panic!("peer.py printed no {{\"snapshot\": {{\"{key}\": …}}}} line within {timeout:?}");
}

/// The last index a snapshot file names (LDSN header, docs/storage.md: u64 LE at byte 5).
fn snapshot_file_index(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..4], b"LDSN", "{} is not a snapshot file", path.display());
    u64::from_le_bytes(bytes[5..13].try_into().unwrap())
}

/// Raft §7 across languages (Message tags 6 and 7): a Python peer that was down while the Rust
/// servers compacted their logs behind snapshots catches up by InstallSnapshot. The leader
/// streams its snapshot file in 256 KiB chunks (values of 1,000 bytes make the image about
/// 2 MB: several chunks, more than the 4 in flight), the peer installs it durably, acknowledges
/// it, follows the log from there, and a restart starts from it.
#[test]
fn a_python_peer_that_was_down_catches_up_by_snapshot() {
    let mut test = TestConfig::new(3, 200, 50);
    // Compact every 200 applied entries, keeping 10 behind.
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&test.path).unwrap()).unwrap();
    json["object"]["snapshot_entries"] = 200.into();
    json["object"]["snapshot_trailing_entries"] = 10.into();
    std::fs::write(&test.path, json.to_string()).unwrap();
    test.config = leader::config::Config::load(&test.path).expect("the config with snapshot keys loads");

    let peer = PythonPeer::start(3, &test.path, &["--no-campaign"]);
    let servers = rust_servers(&test, &[1, 2]);
    let (leader, _) = rust_leader(&servers);
    let mut client = Client::new(test.config.clone());
    for i in 0..5 {
        client.put(format!("early{i}").as_bytes(), b"v").expect("an early write");
    }
    let mut status = Client::new(test.config.clone()).with_timeout(Duration::from_millis(300));
    let commit = servers[&leader].status().commit_index;
    let old_last = wait_for(TOLERANCE, "peer.py to hold the early writes", || {
        status.status(NodeId(3)).ok().filter(|s| s.commit_index >= commit).map(|s| s.last_index)
    });
    drop(peer);

    // 2,000 writes from 4 clients while the peer is down.
    let value = vec![b'v'; 1000];
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (config, value) = (test.config.clone(), &value);
            scope.spawn(move || {
                let mut client = Client::new(config);
                for i in 0..500 {
                    client.put(format!("key-{t}-{i}").as_bytes(), value).expect("a write while peer.py is down");
                }
            });
        }
    });
    let target = servers[&leader].status().commit_index;
    assert!(target.0 >= 2000, "{target:?}");
    // Both Rust servers have compacted their logs behind a snapshot past what the peer holds:
    // whichever leads when it comes back (a loaded machine may see a leader change) must send
    // it a snapshot.
    let newest_snapshot = |server: &Server| {
        std::fs::read_dir(server.data_dir().join("snap"))
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "snap"))
            .map(|p| snapshot_file_index(&p))
            .max()
    };
    let leader_snapshot = wait_for(TOLERANCE, "both Rust servers to hold a snapshot past the peer's log", || {
        let oldest = servers.values().map(newest_snapshot).collect::<Option<Vec<u64>>>()?.into_iter().min()?;
        (oldest > old_last.0 + 10).then_some(oldest)
    });

    let mut peer = PythonPeer::start(3, &test.path, &["--no-campaign"]);
    // A transfer the leader began while the peer was down keeps the snapshot it began with, so
    // the peer may first install that older one and then, still behind the leader's log, the
    // current one: collect every install until it has caught up.
    let mut installs = Vec::new();
    wait_for(TOLERANCE, "peer.py to reach the leader's commit index", || {
        while let Some(line) = peer.next_line(Duration::from_millis(50)) {
            if line["snapshot"].get("installed").is_some() {
                installs.push(line["snapshot"].clone());
            }
        }
        status.status(NodeId(3)).ok().filter(|s| s.commit_index >= target && s.last_index >= target).map(|_| ())
    });
    // The peer may answer the status that shows it caught up before its install line is read:
    // drain its output a little longer (a peer that caught up by entries prints none).
    let drained = std::time::Instant::now() + Duration::from_secs(2);
    while installs.is_empty() && std::time::Instant::now() < drained {
        if let Some(line) = peer.next_line(Duration::from_millis(50)) {
            if line["snapshot"].get("installed").is_some() {
                installs.push(line["snapshot"].clone());
            }
        }
    }
    let index_of = |v: &Value| v["installed"].as_u64().unwrap();
    let first = installs.first().expect("peer.py caught up without installing a snapshot?");
    assert!(index_of(first) > old_last.0, "{first} (old last index {old_last:?})");
    assert_eq!(first["log"], "discarded", "the peer's log ended long before the snapshot: {first}");
    let last = installs.last().unwrap();
    let index = index_of(last);
    assert!(index >= leader_snapshot, "{installs:?}: the leader's log starts after its snapshot {leader_snapshot}");
    assert!(last["bytes"].as_u64().unwrap() > 4 * 256 * 1024, "a multi-chunk image: {last}");
    let file = test.dir.path().join("data/3/snapshot.bin");
    assert_eq!(snapshot_file_index(&file), index, "snapshot.bin is the last snapshot installed");

    // It follows the log after the snapshot, and the leader commits with it alone once the
    // other Rust server is gone (2 of 3).
    let other = servers.keys().copied().find(|p| *p != leader).unwrap();
    let mut servers = servers;
    servers.remove(&other).unwrap().stop().unwrap();
    let after = client.put(b"after", b"1").expect("a write committed with peer.py's acknowledgement");
    wait_for(TOLERANCE, "peer.py to commit the write after the snapshot", || {
        status.status(NodeId(3)).ok().filter(|s| s.commit_index >= after).map(|_| ())
    });

    // A restart starts from the snapshot: at once it reports it committed.
    drop(peer);
    let mut peer = PythonPeer::start(3, &test.path, &["--no-campaign"]);
    let loaded = snapshot_line(&mut peer, "loaded", TOLERANCE);
    assert!(loaded["loaded"].as_u64().unwrap() >= index, "{loaded}");
    assert!(loaded["last_index"].as_u64().unwrap() >= after.0, "the entries after it were kept: {loaded}");
    let s = wait_for(TOLERANCE, "the restarted peer.py's status", || status.status(NodeId(3)).ok());
    assert!(s.commit_index.0 >= index && s.last_index >= after, "{s:?}");
    // (The leader may have stepped down meanwhile, having heard from no majority: the client
    // retries until it is re-elected, with the restarted peer's pre-vote and vote.)
    client.put(b"again", b"2").expect("a write committed with the restarted peer.py");
}

/// A copy of `test`'s config.json for the Python peer with other timeouts. The cluster id
/// depends only on the servers, so it is the same cluster; the data directory is the same.
fn python_config(test: &TestConfig, election_timeout_ms: u64, heartbeat_ms: u64) -> PathBuf {
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&test.path).unwrap()).unwrap();
    json["object"]["election_timeout_ms"] = election_timeout_ms.into();
    json["object"]["heartbeat_ms"] = heartbeat_ms.into();
    let path = test.dir.path().join("python.json");
    std::fs::write(&path, json.to_string()).unwrap();
    path
}

/// Every `{"role": …}` and `{"transfer": …}` line peer.py has printed so far (without waiting).
fn drain(peer: &mut PythonPeer, lines: &mut Vec<Value>) {
    while let Some(v) = peer.next_line(Duration::from_millis(1)) {
        if v.get("role").is_some() || v.get("transfer").is_some() {
            lines.push(v);
        }
    }
}

/// Issue 12, point 5 (docs/wire.md §4 rule 10). peer.py serves no writes, so a Python leader
/// that kept leading would stall the cluster (measured before: 3 runs in 4 ended with every put
/// timing out). Here the Python peer is made to win elections — it times out 6 times sooner
/// than the Rust servers (its own config: 100 ms against 600 ms), so after the Rust leader
/// crashes it pre-votes as soon as a Rust server's stickiness runs out, well before the Rust
/// servers' own timers fire — and then it must hand over with TimeoutNow to a Rust server,
/// which leads the next term (the loop goes on until it has, at least once).
/// A crash is simulated by cutting the leader off before stopping it, so that a hand-over on
/// `stop()` cannot happen.
#[test]
fn a_python_peer_that_wins_hands_leadership_over_so_writes_succeed_whoever_wins() {
    let test = TestConfig::new(3, 600, 50);
    let fast = python_config(&test, 100, 20);
    let mut peer = PythonPeer::start(3, &fast, &[]);
    let mut lines = Vec::new();
    wait_for(TOLERANCE, "peer.py to start", || peer.next_line(Duration::from_millis(100)));
    let mut servers = rust_servers(&test, &[1, 2]);
    let mut client = Client::new(test.config.clone());
    let mut status = Client::new(test.config.clone()).with_timeout(Duration::from_millis(300));
    let (mut kills, mut python_terms, mut handed_over) = (0, Vec::new(), Vec::new());
    while kills < 3 || (handed_over.is_empty() && kills < 8) {
        // A Rust server leads, followed by everyone (the Python peer included) ...
        let (leader, _) = wait_for(TOLERANCE, "a Rust leader followed by all three", || {
            let (l, t) = rust_leader_now(&servers)?;
            status.status(NodeId(3)).ok().filter(|s| s.leader == Some(l) && s.term == t).map(|_| (l, t))
        });
        // ... and writes succeed, whoever won the last election.
        client.put(format!("after-kill-{kills}").as_bytes(), b"v").expect("a write after the kill");
        drain(&mut peer, &mut lines);
        (python_terms, handed_over) = hand_overs(&lines);
        // Crash the leader, and start it again.
        crash(&mut servers, leader, 3);
        servers.insert(leader, Server::start_with(&test.config, leader, NodeOptions::default()).expect("restart"));
        kills += 1;
    }
    // The Python peer led, and handed over: a TimeoutNow to a Rust server, after which its next
    // role line is a follower line of the next term (the target's). A term it led without
    // handing over can only end by check quorum (no follower answered within its 100 ms
    // election timeout: a loaded machine), which the loop above survives too.
    assert!(
        !handed_over.is_empty(),
        "peer.py led terms {python_terms:?} in {kills} elections, handing over none: {lines:?}"
    );
    // At the end a Rust server leads and the Python peer follows it.
    let (leader, term) = rust_leader(&servers);
    let s = wait_for(TOLERANCE, "peer.py to follow", || {
        status.status(NodeId(3)).ok().filter(|s| s.leader == Some(leader) && s.term == term)
    });
    assert_eq!(s.role, Role::Follower);
    client.put(b"at-the-end", b"v").expect("a final write");
}

/// From peer.py's role and transfer lines: the terms it led, and those it handed over (it sent
/// a Rust server TimeoutNow, and its next role line is a follower line of the next term).
fn hand_overs(lines: &[Value]) -> (Vec<u64>, Vec<u64>) {
    let led: Vec<u64> = lines.iter().filter(|l| l["role"] == "leader").filter_map(|l| l["term"].as_u64()).collect();
    let handed = led
        .iter()
        .copied()
        .filter(|&t| {
            let at = lines.iter().position(|l| l["role"] == "leader" && l["term"] == t).unwrap();
            let after = &lines[at + 1..];
            let sent = after.iter().take_while(|l| l.get("role").is_none()).any(|l| {
                l.get("transfer").is_some_and(|x| x["term"] == t && [1, 2].contains(&x["to"].as_u64().unwrap_or(0)))
            });
            let next = after.iter().find(|l| l.get("role").is_some());
            sent && next.is_some_and(|n| n["role"] == "follower" && n["term"].as_u64() == Some(t + 1))
        })
        .collect();
    (led, handed)
}

/// The leader among `servers` if there is one, followed by every one of them, right now.
fn rust_leader_now(servers: &BTreeMap<NodeId, Server>) -> Option<(NodeId, Term)> {
    let s: Vec<_> = servers.values().map(Server::status).collect();
    let l = s.iter().find(|x| x.role == Role::Leader)?;
    s.iter().all(|x| x.leader == Some(l.pid) && x.term == l.term).then_some((l.pid, l.term))
}

/// Runs client.py with `args` against `config`: (exit code, stdout trimmed, stderr).
fn client_py(config: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = python().arg(python_dir().join("client.py")).arg("--config").arg(config).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Request tag 5 (docs/wire.md §4 rule 12): the Python client's `Read` — ReadIndex from the
/// leader, and a follower read — sees the value written just before, every time, and costs no
/// log entry.
#[test]
fn the_python_client_reads_without_the_log_from_the_leader_and_from_a_follower() {
    let mut cluster = InProcessCluster::start(3, 200, 50);
    let (leader, _) = cluster.wait_leader("first election");
    let follower = cluster.servers.keys().copied().find(|p| *p != leader).unwrap();
    let config = cluster.test.path.clone();
    assert_eq!(client_py(&config, &["put", "colour", "blue"]).1, "OK");
    let from = follower.0.to_string();
    assert_eq!(client_py(&config, &["get", "colour"]), (Some(0), "blue".to_string(), String::new()));
    assert_eq!(client_py(&config, &["get", "colour", "--from", &from]), (Some(0), "blue".to_string(), String::new()));
    assert_eq!(client_py(&config, &["get", "colour", "--lease"]).1, "blue");
    assert_eq!(client_py(&config, &["get", "colour", "--via-log"]).1, "blue");
    let (code, _, err) = client_py(&config, &["get", "nothing", "--from", &from]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not found"), "{err}");

    // Write, then read at once, 20 times, from the leader and from the follower: a follower
    // that answered from its own state without a read index would often miss the last write
    // (it learns of the commit only with the next heartbeat).
    let last_index = cluster.servers[&leader].status().last_index;
    let script = format!(
        "import sys; sys.path.insert(0, {dir:?}); import leader_wire as w, client\n\
         c = client.Client(w.load_config({cfg:?}), 1.0)\n\
         for i in range(20):\n\
         \x20   c.execute(w.Put(b'k', str(i).encode()))\n\
         \x20   for server in (None, {follower}):\n\
         \x20       index, r = c.read(b'k', server=server)\n\
         \x20       assert r == w.Value(str(i).encode()), (i, server, r)\n\
         print('ok', index)",
        dir = python_dir().display().to_string(),
        cfg = config.display().to_string(),
        follower = follower.0
    );
    let out = python().args(["-c", &script]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("ok "), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    // 20 puts, and not one entry for the 40 reads (nor for the read index: `Applied.index`).
    let s = cluster.servers[&leader].status();
    assert_eq!(s.last_index.0, last_index.0 + 20, "reads appended entries: {s:?}");
    assert_eq!(stdout.trim()["ok ".len()..].parse::<u64>().unwrap(), s.commit_index.0, "the read index");
    cluster.finish();
}

/// Request tag 6: the Python client hands leadership to the server it names, and without
/// `--to` to another server; each answer names the new leader and its term, which the cluster
/// agrees on.
#[test]
fn the_python_client_transfers_leadership() {
    // A leader abandons a transfer not done within an election timeout: 500 ms leaves room on
    // a loaded 2-core machine (200 ms did not, once, with the whole suite running).
    let mut cluster = InProcessCluster::start(3, 500, 50);
    let (leader, term) = cluster.wait_leader("first election");
    let config = cluster.test.path.clone();
    let target = cluster.servers.keys().copied().find(|p| *p != leader).unwrap();
    let (code, out, err) = client_py(&config, &["transfer", "--to", &target.0.to_string()]);
    assert_eq!(code, Some(0), "{err}");
    let (named, new_term) = parse_transferred(&out);
    assert_eq!(named, target, "{out}");
    assert!(new_term > term, "{out}");
    assert_eq!(cluster.wait_leader("the named server to lead"), (target, new_term));

    let (code, out, err) = client_py(&config, &["transfer"]);
    assert_eq!(code, Some(0), "{err}");
    let (next, next_term) = parse_transferred(&out);
    assert!(next != target && next_term > new_term, "{out}");
    assert_eq!(cluster.wait_leader("the chosen server to lead"), (next, next_term));
    // Writes go on with the new leader.
    assert_eq!(client_py(&config, &["put", "after", "transfer"]).1, "OK");
    cluster.finish();
}

/// `server N leads (term T), M ms`, as client.py's `transfer` prints it (the Rust CLI's line).
fn parse_transferred(line: &str) -> (NodeId, Term) {
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(words.len() == 7 && words[..4] == ["server", words[1], "leads", "(term"] && words[6] == "ms", "{line:?}");
    (NodeId(words[1].parse().unwrap()), Term(words[4].trim_end_matches("),").parse().unwrap()))
}

/// The Python self-tests (examples/python/test_*.py: exact bytes, the peer's rules, and
/// peer.py processes handing over among themselves), so that CI runs them.
#[test]
fn the_python_self_tests_pass() {
    let out = python()
        .args(["-m", "unittest", "discover", "-s"])
        .arg(python_dir())
        .args(["-p", "test_*.py"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
