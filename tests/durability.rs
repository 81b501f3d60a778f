//! Nothing acknowledged is lost: 1,000 writes through the client while the leader is killed
//! with SIGKILL twice, then every server is killed and restarted, and every acknowledged write
//! must be present with its last acknowledged value — through the leader, and in every
//! server's own write-ahead log.

mod common;

use common::{live_statuses, wait_for, TestConfig, TOLERANCE};
use leader::client::{CallError, Client};
use leader::core::{LogIndex, NodeId, Role};
use leader::kv::{KvStore, StateMachine};
use leader::process::{ChildLogs, ProcessCluster};
use leader::storage::{DiskStorage, Storage};
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

const WRITES: usize = 1000;
const KEYS: usize = 100;

/// What the writer knows about one key.
#[derive(Default, Debug, Clone)]
struct KeyHistory {
    /// Last value whose put was acknowledged.
    acked: Option<String>,
    /// Values written after it whose outcome is unknown (the operation timed out).
    maybe: Vec<String>,
}

fn leader_of(client: &mut Client) -> Option<NodeId> {
    live_statuses(client).into_iter().find(|s| s.role == Role::Leader).map(|s| s.pid)
}

#[test]
fn acknowledged_writes_survive_leader_kills_and_a_full_restart() {
    let test = TestConfig::new(3, 200, 50);
    let mut cluster =
        ProcessCluster::new(env!("CARGO_BIN_EXE_leader"), &test.path, ChildLogs::Dir(test.dir.path().to_path_buf()));
    for pid in test.config.pids() {
        cluster.start(pid).unwrap();
    }
    let mut observer = Client::new(test.config.clone()).with_timeout(Duration::from_millis(300));
    wait_for(TOLERANCE, "a first leader", || leader_of(&mut observer));

    // The writer reports progress so the test can kill leaders mid-stream.
    let (progress_tx, progress_rx) = mpsc::channel::<usize>();
    let config = test.config.clone();
    let writer = std::thread::spawn(move || {
        let mut client = Client::new(config).with_operation_deadline(Duration::from_secs(20));
        let mut history: BTreeMap<String, KeyHistory> = BTreeMap::new();
        for i in 0..WRITES {
            let key = format!("key-{}", i % KEYS);
            let value = format!("value-{i}");
            let entry = history.entry(key.clone()).or_default();
            match client.put(key.as_bytes(), value.as_bytes()) {
                Ok(_) => *entry = KeyHistory { acked: Some(value), maybe: vec![] },
                Err(CallError::Timeout | CallError::NoAnswer { write: true }) => entry.maybe.push(value),
                Err(e) => panic!("put {key}: {e}"),
            }
            let _ = progress_tx.send(i + 1);
        }
        history
    });

    // Kill the leader with SIGKILL after about a third and two thirds of the writes.
    let mut done = 0;
    for kill_at in [WRITES / 3, 2 * WRITES / 3] {
        while done < kill_at {
            done = progress_rx.recv_timeout(Duration::from_secs(60)).expect("the writer makes progress");
        }
        let leader = wait_for(TOLERANCE, "a leader to kill", || leader_of(&mut observer));
        cluster.kill(leader).unwrap();
        wait_for(TOLERANCE, "a new leader", || leader_of(&mut observer).filter(|l| *l != leader));
        cluster.start(leader).unwrap();
    }
    let history = writer.join().expect("writer thread");
    let acked = history.values().filter(|h| h.acked.is_some()).count();
    assert!(acked >= KEYS * 9 / 10, "most keys have an acknowledged value ({acked})");

    // Crash everything at once, then restart every server from its data directory.
    for pid in test.config.pids() {
        cluster.kill(pid).unwrap();
    }
    for pid in test.config.pids() {
        cluster.start(pid).unwrap();
    }
    let mut client = Client::new(test.config.clone());
    for (key, h) in &history {
        let got = client.get(key.as_bytes()).expect("get through the leader").map(|v| String::from_utf8(v).unwrap());
        check_value(key, h, got.as_deref(), "through the leader");
    }

    // Every server applied the same prefix; replay each one's own log to that point.
    let applied = wait_for(TOLERANCE, "every server to apply the leader's commit index", || {
        let statuses = live_statuses(&mut observer);
        let commit = statuses.iter().find(|s| s.role == Role::Leader)?.commit_index;
        (statuses.len() == 3 && statuses.iter().all(|s| s.last_applied == commit)).then_some(commit)
    });
    cluster.stop_all();
    for pid in test.config.pids() {
        let mut storage = DiskStorage::open(test.config.data_dir_for(pid)).expect("open a stopped server's data");
        let entries = storage.take_entries();
        assert!(entries.len() as u64 >= applied.0, "server {pid} holds every applied entry");
        let mut store = KvStore::new();
        for entry in entries.iter().take(applied.0 as usize).filter(|e| !e.data.is_empty()) {
            store.apply(entry.index, &entry.data);
        }
        for (key, h) in &history {
            let got = store.get(key.as_bytes()).map(|v| String::from_utf8(v.to_vec()).unwrap());
            check_value(key, h, got.as_deref(), &format!("in server {pid}'s log up to {}", LogIndex(applied.0)));
        }
    }
}

/// The value must be the last acknowledged one, or one written after it whose outcome was
/// unknown to the writer.
fn check_value(key: &str, h: &KeyHistory, got: Option<&str>, where_: &str) {
    let allowed = h.acked.as_deref() == got || h.maybe.iter().any(|m| Some(m.as_str()) == got);
    assert!(allowed, "{key} {where_}: got {got:?}, last acknowledged {:?}, unknown outcome {:?}", h.acked, h.maybe);
}
