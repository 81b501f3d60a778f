//! A Python peer (examples/python/peer.py, written from docs/wire.md) follows membership
//! changes made by Rust servers (issue 14 item 6): started outside `initial_members`, it is
//! added as a learner, receives the log, is promoted to voter (its acknowledgements then count:
//! with one Rust server down, the leader, the other Rust server and the Python peer commit),
//! and is removed, after which it exits by itself.
//!
//! Rust servers run in this process (`Server`), the peer as a child process killed by pid on
//! drop; own loopback ports and temp directories.

mod common;

use common::{wait_for, TestConfig};
use leader::client::Client;
use leader::core::{MemberRole, MembershipChange, NodeId, Role};
use leader::node::{NodeOptions, Server};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(20);

/// python3 with pyzmq, or a clear failure (this test must not pass without Python).
fn python() -> Command {
    let ok = Command::new("python3").args(["-c", "import zmq"]).status().map(|s| s.success()).unwrap_or(false);
    assert!(ok, "interop tests need python3 with pyzmq: run `pip install pyzmq` (.ci/run does)");
    Command::new("python3")
}

/// peer.py, killed and reaped by pid on drop.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_peer(pid: u64, config: &Path) -> Peer {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python/peer.py");
    let child = python()
        .arg(script)
        .args(["--pid", &pid.to_string(), "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start peer.py");
    Peer(child)
}

fn roles(client: &mut Client) -> Option<BTreeMap<u64, MemberRole>> {
    let info = client.leader_membership().ok().filter(|i| i.committed)?;
    Some(info.members.iter().map(|m| (m.pid.0, m.role)).collect())
}

#[test]
fn a_python_peer_is_added_as_a_learner_promoted_counted_and_removed() {
    let mut test = TestConfig::new(4, 400, 50);
    test.set("initial_members", serde_json::json!([1, 2, 3]));
    let mut servers: BTreeMap<u64, Server> = (1..=3)
        .map(|p| (p, Server::start_with(&test.config, NodeId(p), NodeOptions::default()).expect("start")))
        .collect();
    let mut peer = start_peer(4, &test.path);
    let mut client = Client::new(test.config.clone()).with_timeout(Duration::from_millis(500));
    let leader = wait_for(DEADLINE, "a Rust leader", || {
        servers.iter().find(|(_, s)| s.status().role == Role::Leader).map(|(p, _)| *p)
    });
    client.put(b"before", b"1").expect("a write");
    let (url, client_url) = (test.config.servers[3].endpoint.clone(), test.config.servers[3].client_endpoint.clone());
    let add = MembershipChange::AddLearner { pid: NodeId(4), peer_url: url, client_url, promote: true };
    client.change_membership(add).expect("the Python peer is added");
    // It replicates: the leader promotes it once caught up.
    wait_for(DEADLINE, "the Python peer promoted", || {
        roles(&mut client).filter(|r| r.get(&4) == Some(&MemberRole::Voter))
    });
    // Its acknowledgements count now (4 voters, quorum 3). Stop one Rust follower and cut the
    // other off the leader: leader + Python peer are 2 of 4, and nothing commits.
    let follower = (1..=3).find(|p| *p != leader).unwrap();
    servers.remove(&follower).unwrap().stop().expect("stop a follower");
    let other = (1..=3).find(|p| *p != leader && *p != follower).unwrap();
    servers[&other].block(NodeId(leader));
    let mut quick = Client::new(test.config.clone()).with_operation_deadline(Duration::from_millis(800));
    assert!(quick.put(b"needs three", b"x").is_err(), "2 of 4 voters must not commit");
    servers[&other].unblock(NodeId(leader));
    // ...and with the other Rust server back, leader + it + the Python peer commit.
    client.put(b"after", b"2").expect("3 of 4 voters commit");
    // Removed, the Python peer stops by itself.
    let restarted = Server::start_with(&test.config, NodeId(follower), NodeOptions::default()).expect("restart");
    servers.insert(follower, restarted);
    client.change_membership(MembershipChange::Remove { pid: NodeId(4) }).expect("the Python peer is removed");
    let status = wait_for(DEADLINE, "peer.py to exit", || peer.0.try_wait().expect("try_wait"));
    assert!(status.success(), "peer.py exits 0 when removed: {status}");
    assert!(roles(&mut client).is_some_and(|r| !r.contains_key(&4)));
}
