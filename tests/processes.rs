//! The crash scenarios with real `leader` processes killed by SIGKILL: nothing is flushed or
//! closed, exactly like a power cut from the process's point of view.

mod common;

use common::{
    acknowledged_leader, live_statuses, start_all, test_seed, wait_for, Observer, TestConfig, PING, TOLERANCE,
};
use leader::client::Client;
use leader::core::{NodeId, Role, SplitMix64, Term};
use leader::storage::read_hard_state;
use std::time::{Duration, Instant};

/// Observe until a leader acknowledged by a majority satisfies `accept`, checking Election
/// Safety at every observation.
fn wait_leader(client: &mut Client, observer: &mut Observer, accept: impl Fn(NodeId, Term) -> bool) -> (NodeId, Term) {
    let size = client.config().servers.len();
    wait_for(TOLERANCE, "a leader acknowledged by a majority", || {
        let statuses = live_statuses(client);
        observer.observe(&statuses);
        let found = acknowledged_leader(&statuses, size).filter(|(p, t)| accept(*p, *t));
        if found.is_none() {
            std::thread::sleep(PING / 10);
        }
        found
    })
}

#[test]
fn processes_survive_random_sigkill_and_restart_of_up_to_two() {
    let mut rng = SplitMix64::new(test_seed("processes_survive_random_sigkill_and_restart_of_up_to_two"));
    let test = TestConfig::new(5, 200, 50);
    let mut cluster = start_all(&test);
    let mut client = Client::new(test.config.clone()).with_timeout(Duration::from_millis(200));
    let mut observer = Observer::default();
    wait_leader(&mut client, &mut observer, |_, _| true);
    let mut down: Vec<NodeId> = Vec::new();
    let end = Instant::now() + Duration::from_secs(8);
    while Instant::now() < end {
        let pid = NodeId(rng.range(1, 6));
        if down.contains(&pid) {
            cluster.start(pid).expect("restart");
            down.retain(|p| *p != pid);
        } else if down.len() < 2 {
            cluster.kill(pid).expect("SIGKILL");
            down.push(pid);
        }
        let alive = |p: NodeId, _| !down.contains(&p);
        wait_leader(&mut client, &mut observer, alive);
        std::thread::sleep(Duration::from_millis(rng.range(50, 400)));
    }
    assert!(observer.observations > 10);
}

#[test]
fn processes_elect_a_new_leader_each_time_the_leader_is_killed() {
    let test = TestConfig::new(5, 200, 50);
    let mut cluster = start_all(&test);
    let mut client = Client::new(test.config.clone()).with_timeout(Duration::from_millis(200));
    let mut observer = Observer::default();
    let (mut leader, mut term) = wait_leader(&mut client, &mut observer, |_, _| true);
    for _ in 0..4 {
        cluster.kill(leader).expect("SIGKILL the leader");
        let (next, next_term) = wait_leader(&mut client, &mut observer, |p, t| p != leader && t > term);
        cluster.start(leader).expect("restart the old leader");
        (leader, term) = (next, next_term);
    }
}

#[test]
fn processes_restarted_after_sigkill_keep_term_and_vote() {
    let mut test = TestConfig::new(3, 200, 50);
    let mut cluster = start_all(&test);
    let mut client = Client::new(test.config.clone()).with_timeout(Duration::from_millis(200));
    let mut observer = Observer::default();
    wait_leader(&mut client, &mut observer, |_, _| true);
    let seen = live_statuses(&mut client);
    assert_eq!(seen.len(), 3);
    for pid in test.config.pids() {
        cluster.kill(pid).expect("SIGKILL");
    }
    // What each server had promised is on disk, at least as new as what it last reported.
    let mut on_disk = Vec::new();
    for before in &seen {
        let hard = read_hard_state(test.config.data_dir_for(before.pid)).unwrap().expect("hard state on disk");
        assert!(hard.current_term >= before.term, "server {}: term went back on disk", before.pid);
        if hard.current_term == before.term {
            assert_eq!(hard.voted_for, before.voted_for, "server {}: vote changed within term", before.pid);
        }
        on_disk.push((before.pid, hard));
    }
    // Restart with an election timeout longer than the test: nothing may move the term, so
    // what the servers report is exactly what they read back.
    test.rewrite_timeouts(600_000, 50);
    drop(cluster);
    let mut cluster = start_all(&test);
    let mut client = Client::new(test.config.clone()).with_timeout(Duration::from_millis(200));
    for (pid, hard) in on_disk {
        let status = wait_for(TOLERANCE, "the restarted server to answer", || client.status(pid).ok());
        assert_eq!((status.term, status.voted_for), (hard.current_term, hard.voted_for), "server {pid} after restart");
        assert_eq!(status.role, Role::Follower);
    }
    cluster.stop_all();
}
