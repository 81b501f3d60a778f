//! A follower whose fsync takes 300 ms — longer than the 200 ms election timeout — does not
//! cost the leader its leadership, and the cluster keeps committing: the follower's disk is on
//! its own thread, so its loop keeps receiving and ticking while a sync runs, and its stalled
//! acknowledgements neither start an election (pre-vote, leader stickiness) nor take the
//! majority away (the leader and the other follower are one).

mod common;

use common::{wait_for, InProcessCluster, TOLERANCE};
use leader::client::Client;
use leader::core::{Entry, HardState, LogIndex, NodeId, Role};
use leader::kv::KvStore;
use leader::node::{NodeOptions, Server};
use leader::storage::{MemStorage, Snapshot, SnapshotMeta, SnapshotSource, Storage, StorageError};
use std::time::{Duration, Instant};

/// The in-memory storage with an fsync that takes `SYNC_DELAY` (a slow or overloaded disk).
struct SlowDisk(MemStorage);

const SYNC_DELAY: Duration = Duration::from_millis(300);

impl Storage for SlowDisk {
    fn hard_state(&self) -> HardState {
        self.0.hard_state()
    }
    fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), StorageError> {
        std::thread::sleep(SYNC_DELAY);
        self.0.save_hard_state(hard_state)
    }
    fn take_entries(&mut self) -> Vec<Entry> {
        self.0.take_entries()
    }
    fn truncate_from(&mut self, from: LogIndex) -> Result<(), StorageError> {
        self.0.truncate_from(from)
    }
    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.0.append(entries)
    }
    fn sync(&mut self) -> Result<(), StorageError> {
        std::thread::sleep(SYNC_DELAY);
        self.0.sync()
    }
    fn snapshot_meta(&self) -> Option<SnapshotMeta> {
        self.0.snapshot_meta()
    }
    fn take_snapshot(&mut self) -> Option<Snapshot> {
        self.0.take_snapshot()
    }
    fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        source: SnapshotSource,
        retain_log: bool,
    ) -> Result<(), StorageError> {
        self.0.install_snapshot(meta, source, retain_log)
    }
    fn compact(&mut self, upto: LogIndex) -> Result<(), StorageError> {
        self.0.compact(upto)
    }
    fn last_index(&self) -> LogIndex {
        self.0.last_index()
    }
}

#[test]
fn a_follower_with_a_300_ms_fsync_does_not_cost_the_leader_its_leadership() {
    // Servers 1 and 2 elect a leader; then server 3 joins on the slow disk, as a follower.
    let mut cluster = InProcessCluster::start_with(3, 200, 50, |_| {});
    let slow_pid = NodeId(3);
    cluster.stop_server(slow_pid);
    let (leader, term) = wait_for(TOLERANCE, "a leader among servers 1 and 2", || {
        let s = cluster.statuses();
        let l = s.iter().find(|s| s.role == Role::Leader)?;
        s.iter().all(|x| x.term == l.term && x.leader == Some(l.pid)).then_some((l.pid, l.term))
    });
    let slow = Server::start_with_storage(
        &cluster.test.config,
        slow_pid,
        NodeOptions::default(),
        Box::new(SlowDisk(MemStorage::new())),
        Box::new(KvStore::new()),
    )
    .expect("the slow server starts");
    wait_for(TOLERANCE, "the slow follower to follow", || (slow.leader() == Some(leader)).then_some(()));

    // Write for 3 s (ten of its fsyncs): every write commits, and nothing moves.
    let mut client = Client::new(cluster.test.config.clone());
    let end = Instant::now() + Duration::from_secs(3);
    let mut writes = 0;
    while Instant::now() < end {
        client.put(format!("k{writes}").as_bytes(), b"v").expect("a write commits");
        writes += 1;
        for s in cluster.statuses().iter().chain([slow.status()].iter()) {
            assert_eq!(s.term, term, "server {} moved to term {} (leader {leader} of {term})", s.pid, s.term);
            assert!(s.role != Role::Leader || s.pid == leader, "server {} leads", s.pid);
        }
    }
    assert!(writes > 10, "the cluster kept committing ({writes} writes)");
    assert_eq!(cluster.servers[&leader].role(), Role::Leader);
    // The slow follower did take the log (behind, but there).
    wait_for(TOLERANCE, "the slow follower to catch up", || (slow.status().last_applied.0 > 10).then_some(()));
    slow.stop().unwrap();
    cluster.finish();
}
