//! Three servers in one process: elect a leader, cut it off, watch the majority elect another,
//! heal, and pass an application message around.
//!
//! Run: `cargo run --example in_process`

use leader::config::Config;
use leader::core::{NodeId, Role};
use leader::node::{NodeOptions, Server, Target};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn wait_for_leader(servers: &BTreeMap<NodeId, Server>, not: Option<NodeId>) -> NodeId {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let leader = servers.values().find(|s| s.role() == Role::Leader && Some(s.pid()) != not);
        if let Some(leader) = leader {
            return leader.pid();
        }
        assert!(Instant::now() < deadline, "no leader within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("config.json");
    std::fs::write(
        &path,
        r#"{"object": {"total": 3, "Servers": [
            {"mypid": 1, "url": "127.0.0.1:17101", "client_url": "127.0.0.1:17201"},
            {"mypid": 2, "url": "127.0.0.1:17102", "client_url": "127.0.0.1:17202"},
            {"mypid": 3, "url": "127.0.0.1:17103", "client_url": "127.0.0.1:17203"}]}}"#,
    )?;
    let config = Config::load(&path)?;
    let mut servers = BTreeMap::new();
    for pid in config.pids() {
        servers.insert(pid, Server::start_with(&config, pid, NodeOptions::default())?);
    }

    let first = wait_for_leader(&servers, None);
    println!("server {first} leads term {}", servers[&first].term());

    // Partition the leader from everyone, in both directions.
    for (pid, server) in &servers {
        if *pid == first {
            server.peers().iter().for_each(|p| server.block(*p));
        } else {
            server.block(first);
        }
    }
    let second = wait_for_leader(&servers, Some(first));
    println!("cut off {first}; server {second} leads term {}", servers[&second].term());

    servers.values().for_each(Server::unblock_all);
    let deadline = Instant::now() + Duration::from_secs(10);
    while servers[&first].role() != Role::Follower || servers[&first].leader().is_none() {
        assert!(Instant::now() < deadline, "old leader did not rejoin");
        std::thread::sleep(Duration::from_millis(10));
    }
    let now_leader = servers[&first].leader().map_or("none".to_string(), |l| l.to_string());
    println!("healed; server {first} follows {now_leader} in term {}", servers[&first].term());

    // Application messages are datagrams: resend until one arrives.
    let receiver = &servers[&first];
    let message = loop {
        servers[&second].send(Target::Pid(first), b"welcome back".to_vec());
        if let Some(m) = receiver.recv_timeout(Duration::from_millis(100)) {
            break m;
        }
    };
    println!("server {first} got {:?} from {}", String::from_utf8_lossy(&message.payload), message.from);

    for (_, server) in servers {
        server.stop()?;
    }
    Ok(())
}
