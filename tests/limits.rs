//! Size limits and the client's failure messages (issue 13 items 1 and 3): a 1 MiB value goes
//! through the CLI and the library, reaches every follower, survives a restart; a value just
//! over the limit is refused at once; nothing running, and a server without a quorum, each get
//! their own message quickly instead of the whole deadline and "it may still apply".

mod common;

use common::{start_all, wait_for, TestConfig, TOLERANCE};
use leader::client::{CallError, Client};
use leader::codec::encode;
use leader::core::{AppendEntries, Entry, LogIndex, Message, NodeId, Options, Role, Term, COMMAND_BYTES_MAX};
use leader::kv::{KvCommand, KvOp, KV_COMMAND_BYTES_MAX, KV_DATA_BYTES_MAX};
use leader::process::ProcessCluster;
use leader::transport::auth::ClusterKey;
use leader::transport::client_wire::{ClientRequest, Request, CLIENT_REQUEST_BYTES_MAX, CLIENT_WIRE_VERSION};
use leader::transport::{Body, Envelope, ENVELOPE_BYTES_MAX, WIRE_VERSION};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_leader");
const MIB: usize = 1 << 20;

/// `leader ARGS --config CONFIG`, its output and how long it took.
fn leader(config: &Path, args: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run leader");
    (out, start.elapsed())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A value no two positions of which are likely to agree by accident (catches truncation,
/// reordering and UTF-8 mangling, not only length).
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed).collect()
}

fn leader_of(client: &mut Client) -> Option<NodeId> {
    common::live_statuses(client).into_iter().find(|s| s.role == Role::Leader).map(|s| s.pid)
}

/// Server `pid`'s copy of `key`, read from it alone (a follower read on a follower), as raw
/// bytes through the CLI.
fn get_raw_from(config: &Path, pid: NodeId, key: &str) -> Vec<u8> {
    let (out, _) = leader(config, &["get", key, "--raw", "--from", &pid.0.to_string()]);
    assert!(out.status.success(), "get {key} from {pid}: {}", stderr(&out));
    out.stdout
}

#[test]
fn the_largest_messages_fit_their_frames_tag_included() {
    let key = ClusterKey::from_bytes(&[9; 32]).unwrap();
    // A put of the largest key and value: its command fits what the store decodes and what
    // a leader appends, and its request frame fits the client limit.
    let op = KvOp::Cas { key: vec![1; 16], expected: Some(vec![2; 16]), new: Some(vec![3; KV_DATA_BYTES_MAX - 32]) };
    let command = encode(&KvCommand { client_id: u64::MAX, seq: u64::MAX, op });
    assert!(command.len() <= KV_COMMAND_BYTES_MAX && command.len() <= COMMAND_BYTES_MAX, "{}", command.len());
    let request = encode(&ClientRequest {
        version: CLIENT_WIRE_VERSION,
        cluster_id: u64::MAX,
        request_id: u64::MAX,
        body: Request::Propose { command: vec![0; COMMAND_BYTES_MAX] },
    });
    assert!(key.seal(request).len() <= CLIENT_REQUEST_BYTES_MAX);
    // The AppendEntries a leader sends: one entry of the largest command, or the most small
    // entries its byte budget allows (Options::new's defaults, which the runtime uses).
    let defaults = Options::new(NodeId(1), vec![NodeId(2)], 10, 1, 0);
    let small = defaults.bytes_per_message_max / defaults.entries_per_message_max;
    for entries in [vec![vec![7; COMMAND_BYTES_MAX]], vec![vec![7; small]; defaults.entries_per_message_max]] {
        let entries = entries
            .into_iter()
            .enumerate()
            .map(|(i, data)| Entry { term: Term(u64::MAX), index: LogIndex(i as u64 + 1), data })
            .collect();
        let append = Message::AppendEntries(AppendEntries {
            term: Term(u64::MAX),
            leader_id: NodeId(u64::MAX),
            prev_log_index: LogIndex(u64::MAX),
            prev_log_term: Term(u64::MAX),
            entries,
            leader_commit: LogIndex(u64::MAX),
        });
        let envelope =
            Envelope { version: WIRE_VERSION, cluster_id: 1, from: NodeId(1), to: NodeId(2), body: Body::Raft(append) };
        let frame = key.seal(encode(&envelope));
        assert!(frame.len() <= ENVELOPE_BYTES_MAX, "{} > {ENVELOPE_BYTES_MAX}", frame.len());
    }
}

#[test]
fn the_python_wire_module_states_the_same_limits() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/python");
    let script = format!(
        "import sys; sys.path.insert(0, {dir:?}); import leader_wire as w\n\
         print(w.ENVELOPE_BYTES_MAX, w.CLIENT_REQUEST_BYTES_MAX, w.COMMAND_BYTES_MAX, w.KV_DATA_BYTES_MAX)"
    );
    let out = Command::new("python3").args(["-c", &script]).output().expect("python3 runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = format!("{ENVELOPE_BYTES_MAX} {CLIENT_REQUEST_BYTES_MAX} {COMMAND_BYTES_MAX} {KV_DATA_BYTES_MAX}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected);
}

#[test]
fn a_one_mib_value_goes_through_the_cli_reaches_every_follower_and_survives_a_restart() {
    let test = TestConfig::new(3, 300, 50);
    let mut cluster = start_all(&test);
    let mut client = Client::new(test.config.clone());
    wait_for(TOLERANCE, "a first leader", || leader_of(&mut client));

    // Through the CLI, from a file, read back byte for byte.
    let value = pattern(MIB, 0x5a);
    let file = test.dir.path().join("value.bin");
    std::fs::write(&file, &value).unwrap();
    let (out, _) = leader(&test.path, &["put", "big", "--value-file", file.to_str().unwrap()]);
    assert!(out.status.success(), "put of 1 MiB: {}", stderr(&out));
    let (out, _) = leader(&test.path, &["get", "big", "--raw"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout == value, "get --raw returns the 1 MiB value unchanged ({} bytes back)", out.stdout.len());

    // Through the library, the largest value that fits with its key.
    let largest = pattern(KV_DATA_BYTES_MAX - "largest".len(), 0xa5);
    client.put(b"largest", &largest).expect("the largest key and value are accepted");

    // Every follower holds both (a follower read answers from its own state machine).
    for pid in test.config.pids() {
        assert!(get_raw_from(&test.path, pid, "big") == value, "server {pid} has the 1 MiB value");
    }

    // Restart the whole cluster from its data directories; read from a follower.
    cluster.stop_all();
    for pid in test.config.pids() {
        cluster.start(pid).unwrap();
    }
    let leader = wait_for(TOLERANCE, "a leader after the restart", || leader_of(&mut client));
    let follower = test.config.pids().into_iter().find(|p| *p != leader).unwrap();
    assert!(get_raw_from(&test.path, follower, "big") == value, "follower {follower} after the restart");
    assert_eq!(client.get(b"largest").unwrap().as_deref(), Some(&largest[..]));
    stop(cluster);
}

#[test]
fn a_value_just_over_the_limit_is_refused_at_once_naming_size_and_limit() {
    // No server at all: the refusal must come before any connection is tried.
    let test = TestConfig::new(3, 300, 50);
    let file = test.dir.path().join("over.bin");
    std::fs::write(&file, vec![1u8; KV_DATA_BYTES_MAX - 3]).unwrap(); // plus a 4-byte key
    let (out, took) = leader(&test.path, &["put", "over", "--value-file", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let expected = format!("value too large: key and value are {} bytes (limit {KV_DATA_BYTES_MAX}, 1.5 MiB)", {
        KV_DATA_BYTES_MAX + 1
    });
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    assert!(took < Duration::from_millis(900), "refused before any connection wait: {took:?}");
    // The library the same, at once.
    let mut client = Client::new(test.config.clone());
    let start = Instant::now();
    let put = client.put(b"over", &vec![1u8; KV_DATA_BYTES_MAX - 3]);
    assert_eq!(
        put,
        Err(CallError::TooLarge { what: "key and value", bytes: KV_DATA_BYTES_MAX + 1, limit: KV_DATA_BYTES_MAX })
    );
    assert!(start.elapsed() < Duration::from_millis(100));
    let command = client.propose(vec![0; COMMAND_BYTES_MAX + 1]);
    assert!(matches!(command, Err(CallError::TooLarge { what: "command", .. })), "{command:?}");
}

#[test]
fn with_nothing_running_put_and_get_fail_fast_saying_nothing_is_reachable() {
    let test = TestConfig::new(3, 300, 50);
    for args in [&["put", "k", "v"][..], &["get", "k"][..]] {
        let (out, took) = leader(&test.path, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("nothing reachable: none of the 3 servers accepts connections"), "{args:?}: {err}");
        assert!(!err.contains("may still apply"), "{err}");
        assert!(took < Duration::from_secs(3), "{args:?} took {took:?}: the deadline is 10 s");
    }
}

#[test]
fn with_one_server_of_three_running_put_and_get_say_there_is_no_leader() {
    let test = TestConfig::new(3, 300, 50);
    let mut cluster = ProcessCluster::new(BIN, &test.path, leader::process::ChildLogs::Dir(test.dir.path().into()));
    cluster.start(NodeId(2)).unwrap();
    let mut client = Client::new(test.config.clone());
    wait_for(TOLERANCE, "server 2 to answer", || client.status(NodeId(2)).ok());
    for args in [&["put", "k", "v", "--deadline-ms", "1500"][..], &["get", "k", "--deadline-ms", "1500"][..]] {
        let (out, took) = leader(&test.path, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("no leader: 1 of 3 servers answers, none leads: no quorum?"), "{args:?}: {err}");
        assert!(err.contains("server 2: not the leader"), "{err}");
        assert!(!err.contains("may still apply"), "nothing was appended: {err}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
    stop(cluster);
}

fn stop(mut cluster: ProcessCluster) {
    cluster.stop_all();
}
