//! A failed fsync stops the server (fail-stop: never retry an fsync, never answer on top of
//! it), and the rest of the cluster carries on.

mod common;

use common::{wait_for, TestConfig, TOLERANCE};
use leader::core::{NodeId, Role};
use leader::kv::KvStore;
use leader::node::{NodeError, NodeOptions, Server};
use leader::storage::{MemStorage, StorageError};

#[test]
fn a_failed_fsync_stops_the_server_and_the_others_carry_on() {
    let test = TestConfig::new(3, 200, 50);
    let mut failing = MemStorage::new();
    failing.fail_next_sync();
    let doomed = Server::start_with_storage(
        &test.config,
        NodeId(1),
        NodeOptions::default(),
        Box::new(failing),
        Box::new(KvStore::new()),
    )
    .unwrap();
    let others: Vec<Server> =
        [2, 3].iter().map(|&p| Server::start_with(&test.config, NodeId(p), NodeOptions::default()).unwrap()).collect();
    // Its first write (a vote, or its first log entries) fails: the server stops itself.
    wait_for(TOLERANCE, "the server with the failing disk to stop", || doomed.is_stopped().then_some(()));
    match doomed.wait() {
        Err(NodeError::Storage(StorageError::Io { op, .. })) => assert_eq!(op, "sync"),
        other => panic!("expected a storage error, got {other:?}"),
    }
    // Servers 2 and 3 are a majority: they elect a leader and commit without server 1.
    let leader = wait_for(TOLERANCE, "a leader among the survivors", || {
        others.iter().find(|s| s.role() == Role::Leader).map(|s| s.pid())
    });
    let server = others.iter().find(|s| s.pid() == leader).unwrap();
    let command = leader::codec::encode(&leader::kv::KvCommand {
        client_id: 1,
        seq: 1,
        op: leader::kv::KvOp::Put { key: b"k".to_vec(), value: b"v".to_vec() },
    });
    server.propose(command, TOLERANCE).expect("the majority still commits");
}
