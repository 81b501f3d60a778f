//! Snapshots with real `leader` processes (issue 11): a follower that was down while many
//! entries were written catches up by snapshot, a server whose data directory was wiped
//! rejoins with the same pid, and a compacted cluster restarted from scratch still holds every
//! acknowledged write.

mod common;

use common::{acknowledged_leader, live_statuses, start_all, wait_for, TestConfig, TOLERANCE};
use leader::client::Client;
use leader::core::{LogIndex, NodeId};
use std::path::Path;
use std::time::Duration;

/// A 3-server cluster that snapshots every `every` entries and keeps `trailing` behind.
fn config(every: u64, trailing: u64) -> TestConfig {
    let mut test = TestConfig::new(3, 400, 50);
    test.set("snapshot_entries", every.into());
    test.set("snapshot_trailing_entries", trailing.into());
    test
}

fn client(test: &TestConfig) -> Client {
    Client::new(test.config.clone()).with_timeout(Duration::from_millis(500))
}

fn wait_leader(client: &mut Client, among: &[u64]) -> NodeId {
    wait_for(TOLERANCE, "a leader acknowledged by a majority", || {
        let statuses = live_statuses(client);
        acknowledged_leader(&statuses, 3).map(|(p, _)| p).filter(|p| among.contains(&p.0))
    })
}

/// Write `count` distinct keys `k{base + i}` = `v{base + i}` from `threads` clients at once.
fn write_keys(test: &TestConfig, base: u64, count: u64, threads: u64) {
    std::thread::scope(|scope| {
        for t in 0..threads {
            let config = test.config.clone();
            scope.spawn(move || {
                let mut client = Client::new(config).with_timeout(Duration::from_millis(500));
                for i in (t..count).step_by(threads as usize) {
                    let n = base + i;
                    client.put(format!("k{n}").as_bytes(), format!("v{n}").as_bytes()).expect("put");
                }
            });
        }
    });
}

fn status_of(client: &mut Client, pid: u64) -> Option<leader::transport::client_wire::Status> {
    client.status(NodeId(pid)).ok()
}

/// Wait until `pid` has applied at least `index`.
fn wait_applied(client: &mut Client, pid: u64, index: LogIndex) {
    wait_for(Duration::from_secs(60), &format!("server {pid} to apply {index}"), || {
        status_of(client, pid).filter(|s| s.last_applied >= index).map(|_| ())
    });
}

/// Snapshot files in a server's data directory.
fn snapshots_in(data_dir: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(data_dir.join("snap")) else { return Vec::new() };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".snap"))
        .collect();
    names.sort();
    names
}

fn log_of(test: &TestConfig, pid: u64) -> String {
    std::fs::read_to_string(test.dir.path().join(format!("server-{pid}.log"))).unwrap_or_default()
}

#[test]
fn a_follower_down_while_100000_entries_are_written_catches_up_by_snapshot() {
    let test = config(5_000, 500);
    let mut cluster = start_all(&test);
    let mut client = client(&test);
    let leader = wait_leader(&mut client, &[1, 2, 3]);
    let down = if leader.0 == 3 { 2 } else { 3 };
    cluster.kill(NodeId(down)).expect("SIGKILL");
    write_keys(&test, 0, 100_000, 32);
    let leader = wait_leader(&mut client, &[1, 2, 3]);
    let target = status_of(&mut client, leader.0).expect("leader status").commit_index;
    let leader_dir = test.config.data_dir_for(leader);
    assert!(!snapshots_in(&leader_dir).is_empty(), "the leader took snapshots");

    cluster.start(NodeId(down)).expect("restart");
    wait_applied(&mut client, down, target);
    let log = log_of(&test, down);
    assert!(log.contains("installing snapshot"), "caught up by snapshot, not by replaying the log:\n{log}");
    assert!(!snapshots_in(&test.config.data_dir_for(NodeId(down))).is_empty());
}

#[test]
fn a_server_whose_data_directory_was_wiped_rejoins_with_the_same_pid() {
    let test = config(500, 50);
    let mut cluster = start_all(&test);
    let mut client = client(&test);
    wait_leader(&mut client, &[1, 2, 3]);
    write_keys(&test, 0, 3_000, 8);
    let leader = wait_leader(&mut client, &[1, 2, 3]);
    let wiped = if leader.0 == 3 { 2 } else { 3 };
    cluster.kill(NodeId(wiped)).expect("SIGKILL");
    std::fs::remove_dir_all(test.config.data_dir_for(NodeId(wiped))).expect("wipe");
    // Back on an idle cluster: nothing new to replicate, so only the leader noticing that
    // the follower lost what it had acknowledged gets it going.
    cluster.start(NodeId(wiped)).expect("restart on an empty directory");
    let target = status_of(&mut client, leader.0).expect("leader status").commit_index;
    wait_applied(&mut client, wiped, target);
    write_keys(&test, 3_000, 1_000, 8);
    assert!(log_of(&test, wiped).contains("installing snapshot"));
    // The rejoined server now carries the data: with the third server down, it and one other
    // make the majority that serves every key.
    let third = (1..=3).find(|p| *p != wiped && *p != leader.0).unwrap();
    cluster.kill(NodeId(third)).expect("SIGKILL");
    wait_leader(&mut client, &[leader.0, wiped]);
    for n in (0..4_000).step_by(97) {
        let value = client.get(format!("k{n}").as_bytes()).expect("get");
        assert_eq!(value, Some(format!("v{n}").into_bytes()), "k{n}");
    }
}

#[test]
fn every_acknowledged_write_is_read_back_after_a_full_restart_of_a_compacted_cluster() {
    let test = config(300, 20);
    let mut cluster = start_all(&test);
    let mut client = client(&test);
    wait_leader(&mut client, &[1, 2, 3]);
    write_keys(&test, 0, 2_000, 8);
    for pid in 1..=3 {
        assert!(!snapshots_in(&test.config.data_dir_for(NodeId(pid))).is_empty(), "server {pid} took a snapshot");
    }
    for pid in 1..=3 {
        cluster.kill(NodeId(pid)).expect("SIGKILL");
    }
    for pid in 1..=3 {
        cluster.start(NodeId(pid)).expect("restart");
    }
    wait_leader(&mut client, &[1, 2, 3]);
    for n in 0..2_000 {
        let value = client.get(format!("k{n}").as_bytes()).expect("get");
        assert_eq!(value, Some(format!("v{n}").into_bytes()), "k{n} after a full restart");
    }
}
