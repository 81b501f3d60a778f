//! Whatever arrives on a server's PULL socket — garbage, truncated, oversize, foreign-cluster,
//! misaddressed or unknown-sender envelopes — is dropped and counted: no crash, no stall, no
//! effect on the election.

mod common;

use common::{wait_for, InProcessCluster, TOLERANCE};
use leader::core::{LogIndex, Message, NodeId, RequestVote, Term};
use leader::transport::codec::encode;
use leader::transport::{Body, Envelope, ENVELOPE_BYTES_MAX, WIRE_VERSION};
use std::time::Duration;

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
