//! Membership changes on real processes (issue 14): a 3-server cluster grows to 5 and shrinks
//! back to 3 while a client writes, from the CLI; a server is replaced (removed, its disk
//! wiped, a new pid added at a new address); the leader removes itself. No acknowledged write
//! is lost.
//!
//! Every process is owned by a `ProcessCluster` (killed and reaped by pid on drop); own loopback
//! ports and temp directories.

mod common;

use common::{wait_for, TestConfig};
use leader::client::Client;
use leader::core::{MemberRole, NodeId};
use leader::process::{ChildLogs, ProcessCluster};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_leader");
const ELECTION_MS: u64 = 300;
const HEARTBEAT_MS: u64 = 50;
const DEADLINE: Duration = Duration::from_secs(30);

fn leader_cli(config: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).arg("--config").arg(config).env_remove("RUST_LOG").stdin(Stdio::null());
    command.output().expect("run leader")
}

/// `leader member ARGS`, which must succeed.
fn member(config: &Path, args: &[&str]) -> String {
    let mut all = vec!["member"];
    all.extend_from_slice(args);
    let out = leader_cli(config, &all);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "leader member {args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// The voters and learners the leader reports.
fn roles(client: &mut Client) -> Option<(Vec<u64>, Vec<u64>)> {
    let info = client.leader_membership().ok().filter(|i| i.committed)?;
    let of = |voter: bool| {
        info.members.iter().filter(|m| (m.role == MemberRole::Voter) == voter).map(|m| m.pid.0).collect::<Vec<_>>()
    };
    Some((of(true), of(false)))
}

/// A client writing distinct keys until stopped; every acknowledged key with its value.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(String, String)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(config: leader::config::Config) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (s, a) = (Arc::clone(&stop), Arc::clone(&acked));
        let thread = std::thread::spawn(move || {
            let mut client = Client::new(config).with_operation_deadline(Duration::from_secs(20));
            for i in 0.. {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let (key, value) = (format!("k{i}"), format!("v{i}"));
                if client.put(key.as_bytes(), value.as_bytes()).is_ok() {
                    a.lock().unwrap().push((key, value));
                }
            }
        });
        Writer { stop, acked, thread: Some(thread) }
    }

    /// Stop and return every acknowledged write.
    fn finish(mut self) -> Vec<(String, String)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("the writer does not panic");
        std::mem::take(&mut *self.acked.lock().unwrap())
    }

    fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }
}

/// Every acknowledged write reads back (linearizably, from the leader).
fn assert_all_kept(config: leader::config::Config, acked: &[(String, String)]) {
    let mut client = Client::new(config).with_operation_deadline(DEADLINE);
    for (key, value) in acked {
        let got = client.get(key.as_bytes()).expect("a read succeeds");
        assert_eq!(got.as_deref(), Some(value.as_bytes()), "acknowledged {key}={value} was lost");
    }
}

#[test]
fn a_cluster_grows_from_3_to_5_and_shrinks_back_under_writes_losing_nothing() {
    let mut test = TestConfig::new(5, ELECTION_MS, HEARTBEAT_MS);
    test.set("initial_members", serde_json::json!([1, 2, 3]));
    let mut cluster = ProcessCluster::new(BIN, &test.path, ChildLogs::Dir(test.dir.path().to_path_buf()));
    for pid in 1..=5 {
        cluster.start(NodeId(pid)).expect("start a server");
    }
    let mut client = Client::new(test.config.clone()).with_timeout(Duration::from_millis(500));
    assert_eq!(wait_for(DEADLINE, "the 3 initial voters", || roles(&mut client)), (vec![1, 2, 3], vec![]));
    let writer = Writer::start(test.config.clone());
    wait_for(DEADLINE, "writes before the change", || (writer.count() > 20).then_some(()));
    for pid in [4u64, 5] {
        let url = test.servers[pid as usize - 1].1.clone();
        let client_url = test.servers[pid as usize - 1].2.clone();
        let said = member(&test.path, &["add", &pid.to_string(), &url, "--client-url", &client_url]);
        assert!(said.starts_with("membership changed at index "), "{said}");
        // Added as a learner with promote: a voter once it has caught up.
        wait_for(DEADLINE, "the new server promoted", || {
            roles(&mut client).filter(|(voters, learners)| voters.contains(&pid) && learners.is_empty())
        });
    }
    assert_eq!(roles(&mut client).unwrap().0, [1, 2, 3, 4, 5]);
    let listed = member(&test.path, &["list"]);
    assert_eq!(listed.lines().filter(|l| l.contains(" voter ")).count(), 5, "{listed}");
    // Shrink back: remove two voters; they stop by themselves.
    for pid in [1u64, 2] {
        member(&test.path, &["remove", &pid.to_string()]);
        wait_for(DEADLINE, "the removed server to exit", || {
            cluster.reap_exited().into_iter().find(|(p, _)| p.0 == pid).map(|(_, status)| status)
        });
    }
    assert_eq!(roles(&mut client).unwrap(), (vec![3, 4, 5], vec![]));
    let before = writer.count();
    wait_for(DEADLINE, "writes after the change", || (writer.count() > before + 20).then_some(()));
    let acked = writer.finish();
    assert_all_kept(test.config.clone(), &acked);
    // The membership lives in the log: a full restart comes back with it, not config.json's.
    cluster.stop_all();
    for pid in 3..=5 {
        cluster.start(NodeId(pid)).expect("restart a server");
    }
    let after = wait_for(DEADLINE, "the cluster back after a restart", || roles(&mut client));
    assert_eq!(after, (vec![3, 4, 5], vec![]));
    assert_all_kept(test.config.clone(), &acked);
}

#[test]
fn the_leader_removes_itself_hands_over_and_exits() {
    let test = TestConfig::new(3, ELECTION_MS, HEARTBEAT_MS);
    let mut cluster = ProcessCluster::new(BIN, &test.path, ChildLogs::Dir(test.dir.path().to_path_buf()));
    for pid in 1..=3 {
        cluster.start(NodeId(pid)).expect("start a server");
    }
    let mut client = Client::new(test.config.clone()).with_timeout(Duration::from_millis(500));
    wait_for(DEADLINE, "a leader", || roles(&mut client));
    let leader = wait_for(DEADLINE, "the leader's pid", || {
        client.status_all().into_iter().filter_map(|(_, s)| s.ok()).find(|s| s.leader == Some(s.pid)).map(|s| s.pid)
    });
    let writer = Writer::start(test.config.clone());
    wait_for(DEADLINE, "writes", || (writer.count() > 20).then_some(()));
    member(&test.path, &["remove", &leader.0.to_string()]);
    wait_for(DEADLINE, "the old leader to exit", || {
        cluster.reap_exited().into_iter().find(|(p, _)| *p == leader).map(|(_, status)| status)
    });
    let (voters, _) = wait_for(DEADLINE, "a new leader of the two", || roles(&mut client));
    assert_eq!(voters.len(), 2);
    assert!(!voters.contains(&leader.0));
    let before = writer.count();
    wait_for(DEADLINE, "writes after the change", || (writer.count() > before + 20).then_some(()));
    let acked = writer.finish();
    assert_all_kept(test.config.clone(), &acked);
}

#[test]
fn a_server_is_replaced_under_load_removed_wiped_and_a_new_pid_added_at_a_new_address() {
    let mut test = TestConfig::new(4, ELECTION_MS, HEARTBEAT_MS);
    test.set("initial_members", serde_json::json!([1, 2, 3]));
    let mut cluster = ProcessCluster::new(BIN, &test.path, ChildLogs::Dir(test.dir.path().to_path_buf()));
    for pid in 1..=4 {
        cluster.start(NodeId(pid)).expect("start a server");
    }
    let mut client = Client::new(test.config.clone()).with_timeout(Duration::from_millis(500));
    wait_for(DEADLINE, "the 3 initial voters", || roles(&mut client).filter(|(v, _)| v.len() == 3));
    let writer = Writer::start(test.config.clone());
    wait_for(DEADLINE, "writes", || (writer.count() > 20).then_some(()));
    // The machine of server 3 is retired: remove it, and its disk goes.
    member(&test.path, &["remove", "3"]);
    wait_for(DEADLINE, "server 3 to exit", || {
        cluster.reap_exited().into_iter().find(|(p, _)| p.0 == 3).map(|(_, status)| status)
    });
    std::fs::remove_dir_all(test.config.data_dir_for(NodeId(3))).expect("wipe server 3's data");
    // Its replacement, pid 4 at another address, joins, catches up and is promoted.
    let (url, client_url) = (test.servers[3].1.clone(), test.servers[3].2.clone());
    member(&test.path, &["add", "4", &url, "--client-url", &client_url]);
    let (voters, learners) =
        wait_for(DEADLINE, "4 promoted", || roles(&mut client).filter(|(v, l)| v.contains(&4) && l.is_empty()));
    assert_eq!((voters, learners), (vec![1, 2, 4], vec![]));
    let before = writer.count();
    wait_for(DEADLINE, "writes after the replacement", || (writer.count() > before + 20).then_some(()));
    let acked = writer.finish();
    assert_all_kept(test.config.clone(), &acked);
    // The new server holds every acknowledged write too: read from it alone.
    let mut from_4 = Client::new(test.config.clone())
        .with_reads(leader::client::ReadPath::ReadIndex, leader::client::ReadFrom::Server(NodeId(4)));
    let (key, value) = acked.last().expect("writes were acknowledged");
    assert_eq!(from_4.get(key.as_bytes()).unwrap().as_deref(), Some(value.as_bytes()));
}

#[test]
fn the_library_adds_and_removes_a_server_and_the_removed_one_stops() {
    use leader::node::{NodeOptions, Server};
    let mut test = TestConfig::new(4, ELECTION_MS, HEARTBEAT_MS);
    test.set("initial_members", serde_json::json!([1, 2, 3]));
    let servers: Vec<Server> =
        (1..=4).map(|p| Server::start_with(&test.config, NodeId(p), NodeOptions::default()).expect("start")).collect();
    let leader =
        wait_for(DEADLINE, "a leader", || servers.iter().find(|s| s.status().role == leader::core::Role::Leader));
    let four = &test.config.servers[3];
    let add = leader::core::MembershipChange::AddLearner {
        pid: NodeId(4),
        peer_url: four.endpoint.clone(),
        client_url: four.client_endpoint.clone(),
        promote: true,
    };
    let added = wait_for(DEADLINE, "the addition committed", || leader.change_membership(add.clone(), DEADLINE).ok());
    assert!(added.0 > 0);
    let mut client = Client::new(test.config.clone()).with_timeout(Duration::from_millis(500));
    wait_for(DEADLINE, "4 promoted", || roles(&mut client).filter(|(v, _)| v == &[1, 2, 3, 4]));
    let removal = leader::core::MembershipChange::Remove { pid: NodeId(4) };
    let removed = leader.change_membership(removal.clone(), DEADLINE).expect("the removal commits");
    assert!(removed > added);
    wait_for(DEADLINE, "server 4 to stop by itself", || servers[3].is_stopped().then_some(()));
    assert!(servers[3].was_removed());
    // A change the rules refuse says why: 4 is no member any more.
    let again = leader.change_membership(removal, DEADLINE).unwrap_err();
    assert!(again.to_string().contains("server 4 is not a member"), "{again}");
}
