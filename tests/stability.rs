//! A paused or restarted follower rejoins without an election (pre-vote, thesis §9.6; leader
//! stickiness, §4.2.3; a stall's missed ticks skipped, not replayed). Before these, a follower
//! stopped for 1.5 s came back campaigning several times in a row and won: a new term and a
//! new leader every time, and a restart cost an election too.
//!
//! Real `leader` processes; the 3 s of pause or downtime is the scenario itself, and every
//! wait for an outcome is a condition awaited with a deadline.

mod common;

use common::{acknowledged_leader, live_statuses, wait_for, TestConfig, PING, TOLERANCE};
use leader::client::Client;
use leader::core::{NodeId, Role, Term};
use leader::process::{ChildLogs, ProcessCluster};
use std::time::{Duration, Instant};

/// Long enough that a follower is certainly "gone" to the others (ten election timeouts).
const OUTAGE: Duration = Duration::from_secs(3);
/// How long the cluster is watched after the follower is back.
const SETTLE: Duration = Duration::from_secs(2);

struct Running {
    /// Owns the config and data directories for the run.
    _test: TestConfig,
    cluster: ProcessCluster,
    client: Client,
    leader: NodeId,
    term: Term,
    follower: NodeId,
}

/// Three servers with the default timings (300 ms election timeout, 50 ms heartbeat), a
/// leader acknowledged by every server, and one of its followers picked out.
fn start() -> Running {
    let test = TestConfig::new(3, 300, 50);
    let mut cluster =
        ProcessCluster::new(env!("CARGO_BIN_EXE_leader"), &test.path, ChildLogs::Dir(test.dir.path().to_path_buf()));
    for pid in test.config.pids() {
        cluster.start(pid).expect("spawn leader");
    }
    let mut client = Client::new(test.config.clone()).with_timeout(Duration::from_millis(200));
    let (leader, term) = wait_for(TOLERANCE, "a leader acknowledged by all three", || {
        let statuses = live_statuses(&mut client);
        let (leader, term) = acknowledged_leader(&statuses, 3)?;
        let all = statuses.len() == 3 && statuses.iter().all(|s| s.term == term && s.leader == Some(leader));
        all.then_some((leader, term))
    });
    let follower = test.config.pids().into_iter().find(|p| *p != leader).expect("a follower");
    Running { _test: test, cluster, client, leader, term, follower }
}

impl Running {
    /// Every answering server is in `term` and none but `leader` leads; `leader` answers.
    fn assert_unchanged(&mut self, when: &str) {
        let statuses = live_statuses(&mut self.client);
        for s in &statuses {
            assert_eq!(
                s.term, self.term,
                "{when}: server {} moved to term {} (leader was {} in {})",
                s.pid, s.term, self.leader, self.term
            );
            assert!(s.role != Role::Leader || s.pid == self.leader, "{when}: server {} leads", s.pid);
        }
        let leader = statuses.iter().find(|s| s.pid == self.leader).unwrap_or_else(|| panic!("{when}: leader silent"));
        assert_eq!(leader.role, Role::Leader, "{when}: the leader stepped down");
    }

    /// Watch the cluster for `duration`, asserting nothing changed at every look.
    fn watch(&mut self, duration: Duration, when: &str) {
        let end = Instant::now() + duration;
        while Instant::now() < end {
            self.assert_unchanged(when);
            std::thread::sleep(PING);
        }
    }

    /// The follower is back: it follows the same leader in the same term, and for `SETTLE`
    /// after that nothing moves.
    fn assert_rejoined(&mut self) {
        let (follower, leader, term) = (self.follower, self.leader, self.term);
        wait_for(TOLERANCE, "the follower to follow the same leader again", || {
            self.assert_unchanged("rejoining");
            let s = self.client.status(follower).ok()?;
            (s.leader == Some(leader) && s.term == term).then_some(())
        });
        self.watch(SETTLE, "after rejoining");
    }
}

fn signal(cluster: &ProcessCluster, pid: NodeId, signal: libc::c_int) {
    let os_pid = cluster.os_pid(pid).expect("the process is running") as libc::pid_t;
    // SAFETY: kill(2) on a child this test started and still owns (the drop guard reaps it).
    let rc = unsafe { libc::kill(os_pid, signal) };
    assert_eq!(rc, 0, "kill({os_pid}, {signal}) failed");
}

#[test]
fn a_follower_stopped_for_3_s_and_resumed_leaves_leader_and_term_unchanged() {
    let mut run = start();
    signal(&run.cluster, run.follower, libc::SIGSTOP);
    run.watch(OUTAGE, "while the follower is stopped");
    signal(&run.cluster, run.follower, libc::SIGCONT);
    run.assert_rejoined();
    run.cluster.stop_all();
}

#[test]
fn a_follower_killed_and_restarted_after_3_s_leaves_leader_and_term_unchanged() {
    let mut run = start();
    run.cluster.kill(run.follower).expect("SIGKILL");
    run.watch(OUTAGE, "while the follower is down");
    run.cluster.start(run.follower).expect("restart");
    run.assert_rejoined();
    run.cluster.stop_all();
}
