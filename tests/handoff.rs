//! Planned leadership changes and reads without the log, with real servers (issue 12):
//! SIGTERM and `Server::stop` hand leadership over before exiting, `leader transfer` moves it,
//! reads cost no log entry and followers serve them, and a rolling restart under writes loses
//! nothing.
//!
//! The election timeout is long (3 s) so that a hand-over is told from an election by what
//! the servers log and by the term, not by timing: the new leader says it campaigned because
//! its leader handed over, and it leads the very next term.

mod common;

use common::{acknowledged_leader, live_statuses, start_all, wait_for, InProcessCluster, TestConfig, TOLERANCE};
use leader::client::{Client, ReadFrom, ReadPath};
use leader::core::{NodeId, Term};
use std::process::Command;
use std::time::Duration;

const ELECTION_MS: u64 = 3000;

fn client(test: &TestConfig) -> Client {
    Client::new(test.config.clone()).with_timeout(Duration::from_millis(500))
}

fn wait_leader(client: &mut Client, n: usize, among: &[NodeId]) -> (NodeId, Term) {
    wait_for(TOLERANCE, "a leader acknowledged by a majority", || {
        let statuses = live_statuses(client);
        acknowledged_leader(&statuses, n).filter(|(p, _)| among.contains(p))
    })
}

fn log_of(test: &TestConfig, pid: NodeId) -> String {
    std::fs::read_to_string(test.dir.path().join(format!("server-{pid}.log"))).unwrap_or_default()
}

fn others(test: &TestConfig, pid: NodeId) -> Vec<NodeId> {
    test.config.pids().into_iter().filter(|p| *p != pid).collect()
}

#[test]
fn a_leader_that_receives_sigterm_hands_over_before_it_exits() {
    let test = TestConfig::new(3, ELECTION_MS, 50);
    let mut cluster = start_all(&test);
    let mut client = client(&test);
    let (old, term) = wait_leader(&mut client, 3, &test.config.pids());
    client.put(b"before", b"1").expect("put");
    cluster.terminate(old).expect("SIGTERM, then wait for the exit");
    let rest = others(&test, old);
    let (new, new_term) = wait_leader(&mut client, 3, &rest);
    assert_eq!(new_term, Term(term.0 + 1), "the next term: one TransferVote round, no failed elections");
    assert!(log_of(&test, old).contains(&format!("handed leadership over to server {new}")), "{}", log_of(&test, old));
    assert!(log_of(&test, new).contains(&format!("{old} hands leadership over")), "{}", log_of(&test, new));
    client.put(b"after", b"2").expect("the new leader takes writes");
    assert_eq!(client.get(b"before").expect("get"), Some(b"1".to_vec()));
}

#[test]
fn leader_transfer_moves_leadership_to_the_named_server() {
    let test = TestConfig::new(3, ELECTION_MS, 50);
    let _cluster = start_all(&test);
    let mut client = client(&test);
    let (old, _) = wait_leader(&mut client, 3, &test.config.pids());
    let target = others(&test, old)[1];
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_leader"))
            .args(["--config", test.path.to_str().unwrap()])
            .args(args)
            .output()
            .expect("run leader")
    };
    let out = run(&["transfer", "--to", &target.to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.starts_with(&format!("server {target} leads")), "{stdout} {out:?}");
    assert_eq!(wait_leader(&mut client, 3, &test.config.pids()).0, target);
    let bad = run(&["transfer", "--to", "9"]);
    assert_eq!(bad.status.code(), Some(2), "an unknown server is a usage error");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no server 9"), "{bad:?}");
    // Without --to: the most up-to-date follower, not the leader itself.
    let out = run(&["transfer"]);
    assert!(out.status.success(), "{out:?}");
    assert_ne!(wait_leader(&mut client, 3, &test.config.pids()).0, target);
}

#[test]
fn reads_cost_no_log_entry_and_followers_serve_the_latest_write() {
    let test = TestConfig::new(3, ELECTION_MS, 50);
    let _cluster = start_all(&test);
    let mut client = client(&test);
    let (leader, _) = wait_leader(&mut client, 3, &test.config.pids());
    client.put(b"k", b"v1").expect("put");
    let last = client.status(leader).expect("status").last_index;
    for _ in 0..20 {
        assert_eq!(client.get(b"k").expect("ReadIndex read"), Some(b"v1".to_vec()));
    }
    assert_eq!(client.status(leader).expect("status").last_index, last, "ReadIndex reads append nothing");
    for round in 0..10u8 {
        let value = [b'v', b'0' + round];
        client.put(b"k", &value).expect("put");
        // A follower answers only once it has applied the leader's commit index: it never
        // returns a value older than the write just acknowledged.
        for pid in others(&test, leader) {
            let read = client.get_with(b"k", ReadPath::ReadIndex, ReadFrom::Server(pid)).expect("follower read");
            assert_eq!(read, Some(value.to_vec()), "follower {pid} after write {round}");
        }
    }
    let last = client.status(leader).expect("status").last_index;
    client.get_with(b"k", ReadPath::Log, ReadFrom::Leader).expect("log read");
    assert_eq!(client.status(leader).expect("status").last_index.0, last.0 + 1, "a log read is an entry");
}

#[test]
fn a_rolling_restart_under_writes_hands_over_and_loses_no_write() {
    let test = TestConfig::new(3, ELECTION_MS, 50);
    let mut cluster = start_all(&test);
    let mut client = client(&test);
    wait_leader(&mut client, 3, &test.config.pids());
    let stop = std::sync::atomic::AtomicBool::new(false);
    /// Stops the writer even when an assertion below fails (the scope joins it first).
    struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let acknowledged = std::thread::scope(|scope| {
        let stopper = StopOnDrop(&stop);
        let writer = scope.spawn(|| {
            let mut client = Client::new(test.config.clone()).with_operation_deadline(Duration::from_secs(20));
            let mut acked = Vec::new();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                client.put(format!("r{n}").as_bytes(), b"x").expect("every write is acknowledged");
                acked.push(n);
            }
            acked
        });
        for pid in test.config.pids() {
            cluster.terminate(pid).expect("SIGTERM, then wait for the exit");
            cluster.start(pid).expect("restart");
            wait_for(TOLERANCE, "the restarted server to follow a leader", || {
                client.status(pid).ok().filter(|s| s.leader.is_some()).map(|_| ())
            });
        }
        drop(stopper);
        writer.join().expect("writer")
    });
    assert!(!acknowledged.is_empty());
    for n in acknowledged {
        assert_eq!(client.get(format!("r{n}").as_bytes()).expect("get"), Some(b"x".to_vec()), "write r{n}");
    }
    let handed: usize =
        test.config.pids().into_iter().filter(|&p| log_of(&test, p).contains("handed leadership over")).count();
    assert!(handed >= 1, "the leader of the moment handed over each time it was stopped");
}

#[test]
fn server_stop_hands_over_and_transfer_leadership_names_the_new_leader() {
    let mut cluster = InProcessCluster::start(3, ELECTION_MS, 50);
    let (leader, term) = cluster.wait_leader("a first leader");
    let target = cluster.servers.keys().copied().find(|p| *p != leader).expect("a follower");
    let (new, new_term) =
        cluster.servers[&leader].transfer_leadership(Some(target), Duration::from_secs(10)).expect("transfer");
    assert_eq!((new, new_term), (target, Term(term.0 + 1)));
    cluster.stop_server(target); // leading: hands over first
    let (next, next_term) = cluster.wait_leader_where("a leader after the stop", |p, _| p != target);
    assert_eq!(next_term, Term(new_term.0 + 1), "handed over, not elected after a timeout: {next}");
}
