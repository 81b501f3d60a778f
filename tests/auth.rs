//! Cluster authentication: with a key, nothing but the cluster's own members and keyed clients
//! can change its state — a rogue process's votes, appends and writes are dropped unread.

mod common;

use common::{wait_for, InProcessCluster, TestConfig, TOLERANCE};
use leader::client::{CallError, Client};
use leader::codec::{decode, encode};
use leader::core::{AppendEntries, Entry, LogIndex, Message, NodeId, RequestVote, Role, Term};
use leader::kv::{KvCommand, KvOp};
use leader::node::{NodeOptions, Server};
use leader::transport::auth::ClusterKey;
use leader::transport::client_wire::{
    ClientError, ClientRequest, ClientResponse, Request, Response, CLIENT_WIRE_VERSION,
};
use leader::transport::{Body, Envelope, WIRE_VERSION};
use std::time::Duration;

/// A 3-server in-process cluster whose config names a fresh key file.
fn keyed_cluster() -> (InProcessCluster, ClusterKey) {
    let mut cluster = InProcessCluster::start_with(3, 200, 50, TestConfig::add_cluster_key);
    cluster.wait_leader("first election");
    let key = ClusterKey::load(cluster.test.config.cluster_key_file.as_ref().unwrap()).unwrap();
    (cluster, key)
}

fn envelope(cluster_id: u64, from: u64, to: u64, message: Message) -> Vec<u8> {
    encode(&Envelope {
        version: WIRE_VERSION,
        cluster_id,
        from: NodeId(from),
        to: NodeId(to),
        body: Body::Raft(message),
    })
}

#[test]
fn a_rogue_without_the_key_cannot_move_terms_steal_leadership_or_write() {
    let (mut cluster, key) = keyed_cluster();
    let (leader, term) = cluster.wait_leader("keyed cluster");
    let config = cluster.test.config.clone();
    let ctx = zmq::Context::new();
    let wrong = ClusterKey::from_bytes(&[0x42; 32]).unwrap();
    for target in config.pids() {
        let push = ctx.socket(zmq::PUSH).unwrap();
        push.set_linger(0).unwrap();
        push.connect(&config.server(target).unwrap().endpoint).unwrap();
        let from = config.pids().into_iter().find(|p| *p != target).unwrap().0;
        let vote = Message::RequestVote(RequestVote {
            term: Term(u64::MAX),
            candidate_id: NodeId(from),
            last_log_index: LogIndex(1 << 40),
            last_log_term: Term(u64::MAX),
        });
        let append = Message::AppendEntries(AppendEntries {
            term: Term(term.0 + 100),
            leader_id: NodeId(from),
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries: vec![Entry { term: Term(term.0 + 100), index: LogIndex(1), data: b"forged".to_vec() }],
            leader_commit: LogIndex(1),
        });
        for message in [vote, append] {
            let bytes = envelope(config.cluster_id, from, target.0, message);
            push.send(bytes.clone(), 0).unwrap(); // no tag at all
            push.send(wrong.seal(bytes), 0).unwrap(); // a tag under the wrong key
        }
        // Forged client writes: unauthenticated, and under the wrong key.
        let dealer = ctx.socket(zmq::DEALER).unwrap();
        dealer.set_linger(0).unwrap();
        dealer.connect(&config.server(target).unwrap().client_endpoint).unwrap();
        let command = encode(&KvCommand {
            client_id: 66,
            seq: 1,
            op: KvOp::Put { key: b"owned".to_vec(), value: b"yes".to_vec() },
        });
        let request = encode(&ClientRequest {
            version: CLIENT_WIRE_VERSION,
            cluster_id: config.cluster_id,
            request_id: 1,
            body: Request::Propose { command },
        });
        dealer.send_multipart([&b""[..], &request], 0).unwrap();
        dealer.send_multipart([&b""[..], &wrong.seal(request)], 0).unwrap();
        // Each forged request gets one small unsealed `Unauthenticated`, nothing else.
        for _ in 0..2 {
            assert_eq!(dealer.poll(zmq::POLLIN, 2000).unwrap(), 1, "an unauthenticated request is answered");
            let frames = dealer.recv_multipart(0).unwrap();
            let answer: ClientResponse = decode(frames.last().unwrap(), 1024).expect("an unsealed ClientResponse");
            assert_eq!(answer.request_id, 0);
            assert_eq!(answer.body, Response::Error(ClientError::Unauthenticated));
            assert!(frames.last().unwrap().len() <= 24, "bounded: {} bytes", frames.last().unwrap().len());
        }
        assert_eq!(dealer.poll(zmq::POLLIN, 100).unwrap(), 0, "one answer per forged request");
    }
    wait_for(TOLERANCE, "every forged frame to be dropped", || {
        let dropped: u64 = cluster.servers.values().map(|s| s.drop_counts().bad_mac).sum();
        (dropped >= 12).then_some(())
    });
    cluster.observe_for(Duration::from_millis(600), true);
    assert_eq!(cluster.wait_leader("after the attack"), (leader, term), "the leader stays, terms do not move");
    assert!(cluster.statuses().iter().all(|s| s.term == term));
    // A keyed client works; the forged write is not there.
    let mut client = Client::new(config.clone()).with_key(Some(key));
    assert_eq!(client.get(b"owned").unwrap(), None, "no forged write was applied");
    client.put(b"real", b"1").unwrap();
    // A client without the key is told so; nothing it sent was applied.
    let mut keyless = Client::new(config.clone()).with_key(None);
    assert!(matches!(keyless.get(b"real"), Err(CallError::Unauthenticated { .. })));
    assert!(matches!(keyless.put(b"real", b"2"), Err(CallError::Unauthenticated { .. })));
    assert_eq!(client.get(b"real").unwrap().as_deref(), Some(&b"1"[..]));
    cluster.finish();
}

#[test]
fn a_server_with_the_wrong_key_cannot_join() {
    let (mut cluster, _) = keyed_cluster();
    let (leader, term) = cluster.wait_leader("keyed cluster");
    // Replace server 3 (not the leader if possible) by one holding another key.
    let outsider = cluster.test.config.pids().into_iter().rev().find(|p| *p != leader).unwrap();
    cluster.stop_server(outsider);
    let wrong = ClusterKey::from_bytes(&[0x13; 32]).unwrap();
    let options = NodeOptions { cluster_key: Some(wrong), ..NodeOptions::default() };
    let rogue = Server::start_with(&cluster.test.config, outsider, options).unwrap();
    wait_for(TOLERANCE, "the outsider's frames to be dropped", || (rogue.drop_counts().bad_mac > 0).then_some(()));
    // Let it ask for pre-votes a few times: every one is dropped unread by the keyed servers,
    // and with no answer it never raises its term (pre-vote, thesis §9.6).
    let keyed_drops =
        |c: &common::InProcessCluster| -> u64 { c.servers.values().map(|s| s.drop_counts().bad_mac).sum() };
    let before = keyed_drops(&cluster);
    wait_for(TOLERANCE, "the outsider's pre-votes to be dropped unread", || {
        (keyed_drops(&cluster) >= before + 3 * 2).then_some(())
    });
    let status = rogue.status();
    assert_ne!(status.role, Role::Leader);
    assert_eq!(status.leader, None, "it never hears the leader");
    assert!(status.term <= term, "unanswered, it never raised its term: {} after {term}", status.term);
    // The two keyed servers keep their leader and term: the outsider's elections are unread.
    let statuses = cluster.statuses();
    assert!(statuses.iter().all(|s| s.leader == Some(leader) && s.term == term), "{statuses:?}");
    rogue.stop().unwrap();
    cluster.finish();
}

/// `leader bench` against a keyed cluster: its requests are tagged and its answers verified
/// (it used to send tagged requests but read the answers as if untagged, so no write ever
/// counted).
#[test]
fn the_benchmark_writes_to_a_keyed_cluster() {
    let (mut cluster, _) = keyed_cluster();
    cluster.wait_leader("keyed cluster");
    // A bounded run (--duration, not --count): a broken bench ends with 0 writes, not a hang.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_leader"))
        .args(["bench", "--duration", "2", "--clients", "4", "--json", "--config", cluster.test.path.to_str().unwrap()])
        .output()
        .expect("run leader bench");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let figures: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert!(figures["ops"].as_u64() >= Some(50), "{figures}");
    cluster.finish();
}

/// `leader ARGS` against `config`: its exit code, stderr, and how long it took.
fn cli(config: &std::path::Path, args: &[&str]) -> (Option<i32>, String, Duration) {
    let start = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_leader"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run leader");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned(), start.elapsed())
}

/// Each way a client's key can disagree with the servers' gets its own message from `get` and
/// `put`, well before the 10 s deadline, and exit 1: none looks like a dead cluster.
fn assert_key_mismatch(config: &std::path::Path, extra: &[&str], expected: &str) {
    for op in [&["get", "k"][..], &["put", "k", "v"][..]] {
        let args: Vec<&str> = op.iter().chain(extra).copied().collect();
        let (code, stderr, took) = cli(config, &args);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("may still apply"), "{args:?}: {stderr}");
        assert!(took < Duration::from_secs(3), "{args:?} took {took:?}");
    }
}

#[test]
fn a_keyless_client_of_a_keyed_cluster_is_told_it_lacks_the_key() {
    let (mut cluster, _) = keyed_cluster();
    // The same servers (so the same cluster id) without `cluster_key_file`.
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cluster.test.path).unwrap()).unwrap();
    json["object"].as_object_mut().unwrap().remove("cluster_key_file");
    let keyless = cluster.test.dir.path().join("keyless.json");
    std::fs::write(&keyless, json.to_string()).unwrap();
    assert_key_mismatch(
        &keyless,
        &[],
        "requires the cluster key (cluster_key_file / --cluster-key); this client has none",
    );
    let before: u64 = cluster.servers.values().map(|s| s.drop_counts().bad_mac).sum();
    assert!(before >= 2, "the servers count what they refused ({before})");
    cluster.wait_leader("after the keyless client");
    cluster.finish();
}

#[test]
fn a_client_with_another_key_is_told_its_key_differs() {
    let (mut cluster, _) = keyed_cluster();
    let other = cluster.test.dir.path().join("other.key");
    ClusterKey::generate(&other).unwrap();
    let path = cluster.test.path.clone();
    assert_key_mismatch(
        &path,
        &["--cluster-key", other.to_str().unwrap()],
        "no server answered; 3 servers answered frames with a bad MAC: this client's cluster key differs",
    );
    cluster.wait_leader("after the client with another key");
    cluster.finish();
}

#[test]
fn a_keyed_client_of_a_keyless_cluster_is_told_its_key_differs() {
    let mut cluster = InProcessCluster::start(3, 200, 50);
    cluster.wait_leader("first election");
    let key = cluster.test.dir.path().join("client.key");
    ClusterKey::generate(&key).unwrap();
    let path = cluster.test.path.clone();
    assert_key_mismatch(
        &path,
        &["--cluster-key", key.to_str().unwrap()],
        "answered frames with a bad MAC: this client's cluster key differs from the servers'",
    );
    cluster.finish();
}
