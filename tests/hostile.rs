//! Whatever arrives on a server's PULL socket — garbage, truncated, oversize, foreign-cluster,
//! misaddressed or unknown-sender envelopes, and well-formed Raft messages that lie — is
//! dropped and counted: no crash, no stall, no effect on the election.

mod common;

use common::{wait_for, InProcessCluster, TOLERANCE};
use leader::core::{
    AppendEntries, AppendEntriesResponse, Entry, Invalid, LogIndex, Message, NodeId, RequestVote, Term,
};
use leader::transport::codec::encode;
use leader::transport::{Body, Envelope, ENVELOPE_BYTES_MAX, WIRE_VERSION};
use std::time::Duration;

fn envelope(cluster_id: u64, from: NodeId, to: NodeId, message: Message) -> Vec<u8> {
    encode(&Envelope { version: WIRE_VERSION, cluster_id, from, to, body: Body::Raft(message) })
}

fn vote_request(cluster_id: u64, from: u64, to: u64, term: u64) -> Vec<u8> {
    let vote = RequestVote {
        term: Term(term),
        candidate_id: NodeId(from),
        last_log_index: LogIndex(0),
        last_log_term: Term(0),
    };
    let envelope = Envelope {
        version: WIRE_VERSION,
        cluster_id,
        from: NodeId(from),
        to: NodeId(to),
        body: Body::Raft(Message::RequestVote(vote)),
    };
    encode(&envelope)
}

#[test]
fn hostile_envelopes_are_dropped_counted_and_change_nothing() {
    let mut cluster = InProcessCluster::start(3, 200, 50);
    let (leader, term) = cluster.wait_leader("first election");
    let target = NodeId(1);
    let cluster_id = cluster.test.config.cluster_id;
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(0).unwrap();
    push.connect(&cluster.test.config.server(target).unwrap().endpoint).unwrap();

    let valid = vote_request(cluster_id, 2, 1, 1000);
    let sends: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"\x01\x00this is not an envelope at all".to_vec()),
        ("truncated", valid[..valid.len() - 3].to_vec()),
        (
            "wrong_version",
            vote_request(cluster_id, 2, 1, 1000)
                .into_iter()
                .enumerate()
                .map(|(i, b)| if i == 0 { 9 } else { b })
                .collect(),
        ),
        ("wrong_cluster", vote_request(cluster_id ^ 1, 2, 1, 1000)),
        ("wrong_receiver", vote_request(cluster_id, 2, 3, 1000)),
        ("unknown_sender", vote_request(cluster_id, 9, 1, 1000)),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in &sends {
        push.send(bytes.as_slice(), 0).unwrap_or_else(|e| panic!("send {what}: {e}"));
    }
    let server = &cluster.servers[&target];
    let counts = wait_for(TOLERANCE, "every hostile envelope counted", || {
        let c = server.drop_counts();
        (c.garbage >= 1
            && c.truncated >= 2
            && c.wrong_version >= 1
            && c.wrong_cluster >= 1
            && c.wrong_receiver >= 1
            && c.unknown_sender >= 1)
            .then_some(c)
    });
    eprintln!("drop counts: {counts:?}");

    // Oversize: libzmq's MAXMSGSIZE refuses it and drops that connection; the server goes on.
    push.send(vec![1u8; ENVELOPE_BYTES_MAX + 1], 0).unwrap();
    let push2 = ctx.socket(zmq::PUSH).unwrap();
    push2.set_linger(0).unwrap();
    push2.connect(&cluster.test.config.server(target).unwrap().endpoint).unwrap();
    push2.send(&b"\x01\x00more garbage"[..], 0).unwrap();
    wait_for(TOLERANCE, "the server to keep reading after an oversize message", || {
        (server.drop_counts().total() > counts.total()).then_some(())
    });

    // None of it moved a term or disturbed the leader; the cluster still acknowledges it.
    cluster.observe_for(Duration::from_millis(600), true);
    let (leader_after, term_after) = cluster.wait_leader("after the attack");
    assert_eq!((leader_after, term_after), (leader, term), "the election was disturbed");
    assert!(cluster.statuses().iter().all(|s| s.term == term), "a term moved: {:?}", cluster.statuses());
    cluster.finish();
}

fn append(term: Term, leader: NodeId, prev: (u64, u64), entries: &[(u64, u64)]) -> Message {
    Message::AppendEntries(AppendEntries {
        term,
        leader_id: leader,
        prev_log_index: LogIndex(prev.0),
        prev_log_term: Term(prev.1),
        entries: entries
            .iter()
            .map(|&(i, t)| Entry { term: Term(t), index: LogIndex(i), data: b"x".to_vec() })
            .collect(),
        leader_commit: LogIndex(0),
    })
}

/// The messages a review reproduced as one-message crashes (each panicked a server in debug
/// and release builds): entries that do not continue `prev_log_index`, entry terms that
/// decrease, an acknowledgement past the leader's last index, and an overwrite of a committed
/// entry. Now each is dropped, counted by reason (in `drop_counts()` and `leader status
/// --json`), and nothing moves.
#[test]
fn well_formed_lies_are_dropped_counted_and_crash_nothing() {
    let mut cluster = InProcessCluster::start(3, 300, 50);
    let (leader, term) = cluster.wait_leader("first election");
    cluster.servers[&leader].propose(b"before".to_vec(), TOLERANCE).expect("a write commits");
    let follower = cluster.test.config.pids().into_iter().find(|p| *p != leader).unwrap();
    let liar = cluster.test.config.pids().into_iter().find(|p| *p != leader && *p != follower).unwrap();
    wait_for(TOLERANCE, "the follower to know index 2 committed", || {
        (cluster.servers[&follower].status().commit_index >= LogIndex(2)).then_some(())
    });
    let cluster_id = cluster.test.config.cluster_id;
    let ctx = zmq::Context::new();
    let connect = |to: NodeId| {
        let push = ctx.socket(zmq::PUSH).unwrap();
        push.set_linger(0).unwrap();
        push.connect(&cluster.test.config.server(to).unwrap().endpoint).unwrap();
        push
    };
    let (to_leader, to_follower) = (connect(leader), connect(follower));
    let next = Term(term.0 + 1);
    let to_follower_lies = [
        (Invalid::EntriesNotContiguous, append(term, liar, (0, 0), &[(5, term.0)])),
        (Invalid::EntryTermsInvalid, append(next, liar, (0, 0), &[(1, next.0), (2, term.0)])),
        // Index 1 is committed on the follower; a "leader" of a later term rewrites it.
        (Invalid::OverwritesCommitted, append(next, liar, (0, 0), &[(1, next.0)])),
    ];
    let ack = AppendEntriesResponse {
        term,
        success: true,
        match_index: LogIndex(1_000_000),
        conflict_index: LogIndex(0),
        conflict_term: Term(0),
    };
    let to_leader_lies = [(Invalid::AckBeyondLog, Message::AppendEntriesResponse(ack))];
    // Resent until counted: the first sends on a new connection may be lost (IMMEDIATE=1).
    let counted = |pid: NodeId, reason: Invalid| cluster.servers[&pid].drop_counts().core.invalid[reason as usize] >= 1;
    wait_for(TOLERANCE, "every lie to be counted by its reason", || {
        for (_, lie) in &to_follower_lies {
            to_follower.send(envelope(cluster_id, liar, follower, lie.clone()), zmq::DONTWAIT).ok();
        }
        for (_, lie) in &to_leader_lies {
            to_leader.send(envelope(cluster_id, liar, leader, lie.clone()), zmq::DONTWAIT).ok();
        }
        std::thread::sleep(Duration::from_millis(20));
        let all = to_follower_lies.iter().all(|(r, _)| counted(follower, *r))
            && to_leader_lies.iter().all(|(r, _)| counted(leader, *r));
        all.then_some(())
    });
    // The status command shows the counts by name.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_leader"))
        .args(["status", "--json", "--config", cluster.test.path.to_str().unwrap()])
        .output()
        .expect("run leader status");
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["pid"] == follower.0)
        .expect("the follower's line");
    assert!(line["dropped"]["invalid_entries_not_contiguous"].as_u64() >= Some(1), "{line}");
    assert!(line["dropped"]["invalid_overwrites_committed"].as_u64() >= Some(1), "{line}");
    // Nobody crashed, no term moved, the leader stands and still commits.
    assert!(cluster.servers.values().all(|s| !s.is_stopped()), "a server stopped");
    cluster.observe_for(Duration::from_millis(600), true);
    assert_eq!(cluster.wait_leader("after the lies"), (leader, term), "the election was disturbed");
    assert!(cluster.statuses().iter().all(|s| s.term == term), "a term moved: {:?}", cluster.statuses());
    cluster.servers[&leader].propose(b"after".to_vec(), TOLERANCE).expect("a write commits after the lies");
    cluster.finish();
}
