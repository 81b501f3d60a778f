//! The replicated key-value service through the library: proposals return their index and
//! response, followers redirect, duplicates apply once, and every server applies the same.

mod common;

use common::{wait_for, InProcessCluster, TOLERANCE};
use leader::client::{CallError, Client};
use leader::codec::{decode, encode};
use leader::core::LogIndex;
use leader::kv::{KvCommand, KvOp, KvResponse};
use leader::node::ProposeFailure;
use leader::transport::client_wire::ClientError;

fn put(client_id: u64, seq: u64, key: &str, value: &str) -> Vec<u8> {
    encode(&KvCommand { client_id, seq, op: KvOp::Put { key: key.into(), value: value.into() } })
}

#[test]
fn proposals_return_their_index_and_response_and_followers_redirect() {
    let mut cluster = InProcessCluster::start(3, 200, 50);
    let (leader, _) = cluster.wait_leader("first election");
    let follower = cluster.servers.keys().copied().find(|p| *p != leader).unwrap();

    let (index, result) =
        cluster.servers[&leader].propose(put(1, 1, "a", "1"), TOLERANCE).expect("the leader applies it");
    assert!(index.0 >= 2, "after the leader's no-op");
    assert_eq!(decode::<KvResponse>(&result, 1024).unwrap(), KvResponse::Done);

    let refused = cluster.servers[&follower].propose(put(1, 2, "a", "2"), TOLERANCE);
    assert_eq!(refused, Err(ProposeFailure::Refused(ClientError::NotLeader { leader: Some(leader) })));

    // Over the client protocol too: a follower answers with the leader's pid.
    let mut client = Client::new(cluster.test.config.clone());
    let redirect = client.propose_to(follower, put(1, 2, "a", "2"));
    assert_eq!(redirect, Err(CallError::Refused(ClientError::NotLeader { leader: Some(leader) })));
    cluster.finish();
}

#[test]
fn a_retried_write_is_applied_once() {
    let mut cluster = InProcessCluster::start(3, 200, 50);
    let (leader, _) = cluster.wait_leader("first election");
    let server = &cluster.servers[&leader];
    let cas = |seq| {
        encode(&KvCommand {
            client_id: 9,
            seq,
            op: KvOp::Cas { key: b"n".to_vec(), expected: None, new: Some(b"1".to_vec()) },
        })
    };
    let (first_index, first) = server.propose(cas(1), TOLERANCE).unwrap();
    // The same command again (a client that did not hear the answer): same answer, new index,
    // no second effect.
    let (second_index, second) = server.propose(cas(1), TOLERANCE).unwrap();
    assert!(second_index > first_index);
    assert_eq!(first, second);
    assert_eq!(
        decode::<KvResponse>(&first, 1024).unwrap(),
        KvResponse::Cas { swapped: true, current: Some(b"1".to_vec()) }
    );
    cluster.finish();
}

#[test]
fn every_server_applies_every_write_in_the_same_order() {
    let mut cluster = InProcessCluster::start(3, 200, 50);
    cluster.wait_leader("first election");
    let mut client = Client::new(cluster.test.config.clone());
    for i in 0..50 {
        client.put(format!("k{}", i % 7).as_bytes(), format!("v{i}").as_bytes()).unwrap();
    }
    assert_eq!(client.get(b"k0").unwrap(), Some(b"v49".to_vec()));
    assert!(client.delete(b"k0").unwrap());
    assert_eq!(client.get(b"k0").unwrap(), None);
    assert_eq!(client.cas(b"k1", Some(b"v43"), Some(b"x")).unwrap(), (true, Some(b"x".to_vec())));
    // 1 no-op + 52 writes (the 50 puts, the delete, the cas), each acknowledged only once
    // applied on the leader; the two gets are ReadIndex reads, which append nothing. A status
    // is published at the end of a loop turn, so a look right after the last answer can still
    // show the turn before: wait for every server to show index 53 applied.
    let statuses = wait_for(TOLERANCE, "all servers applied the same prefix", || {
        let s = cluster.statuses();
        let commit = s.iter().map(|s| s.commit_index).max()?;
        (commit.0 >= 53 && s.iter().all(|x| x.last_applied == commit)).then_some(s)
    });
    assert!(statuses.iter().all(|s| s.last_applied == LogIndex(53) && s.last_index == LogIndex(53)));
    cluster.finish();
}

#[test]
fn servers_and_clients_in_one_process_reach_each_other_over_inproc() {
    // inproc endpoints exist only within one ZeroMQ context: servers and clients of such a
    // config share one per process.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let tag = rand::random::<u32>();
    let servers: Vec<String> =
        (1..=3).map(|p| format!(r#"{{"mypid": {p}, "url": "inproc://kv-{tag}-{p}"}}"#)).collect();
    let json = format!(r#"{{"object": {{"total": 3, "Servers": [{}]}}}}"#, servers.join(","));
    std::fs::write(&path, json).unwrap();
    let config = leader::config::Config::load(&path).unwrap();
    let running: Vec<leader::node::Server> = config
        .pids()
        .into_iter()
        .map(|pid| leader::node::Server::start_with(&config, pid, Default::default()).expect("start"))
        .collect();
    wait_for(TOLERANCE, "a leader elected over inproc", || {
        running.iter().find(|s| s.role() == leader::core::Role::Leader).map(|_| ())
    });
    let mut client = Client::new(config.clone());
    client.put(b"over", b"inproc").expect("a write over inproc");
    assert_eq!(client.get(b"over").expect("a read over inproc"), Some(b"inproc".to_vec()));
}
