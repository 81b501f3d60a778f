//! Embedding `leader` with your own state machine: three servers in one process replicate a
//! counter. Each command is "add N" (8 bytes, little-endian); the response is the new total.
//! The state is rebuilt on restart from the latest snapshot plus the log after it, so `apply`
//! is deterministic and does nothing but change the state.
//!
//! Increments are exactly-once: each server runs the counter inside `leader::session::Sessions`
//! and the client is a `SessionClient`, so a retried "add N" (a lost answer, a leader change)
//! is committed again but applied once. The run shows it by sending the last one again.
//!
//! Run: `cargo run --example counter` (tests/counter_example.rs runs it too).

use leader::client::Client;
use leader::config::Config;
use leader::core::{LogIndex, Role};
use leader::kv::{SnapshotJob, StateMachine};
use leader::node::{NodeOptions, Server};
use leader::session::{SessionClient, Sessions};
use std::time::{Duration, Instant};

/// The replicated state: a running total.
#[derive(Default)]
pub struct Counter {
    total: u64,
}

impl StateMachine for Counter {
    fn apply(&mut self, _index: LogIndex, command: &[u8]) -> Vec<u8> {
        // Commands are client input: a malformed one gets an empty answer, never a panic.
        if let Ok(bytes) = <[u8; 8]>::try_from(command) {
            self.total = self.total.wrapping_add(u64::from_le_bytes(bytes));
        }
        self.total.to_le_bytes().to_vec()
    }

    fn snapshot(&self) -> SnapshotJob {
        let total = self.total; // a frozen copy: the job runs on another thread
        Box::new(move || total.to_le_bytes().to_vec())
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let bytes = <[u8; 8]>::try_from(snapshot).map_err(|_| format!("{} bytes, expected 8", snapshot.len()))?;
        self.total = u64::from_le_bytes(bytes);
        Ok(())
    }

    /// Reads without the log (ReadIndex): any query returns the total.
    fn query(&self, _query: &[u8]) -> Result<Vec<u8>, String> {
        Ok(self.total.to_le_bytes().to_vec())
    }
}

/// What [`run`] saw.
#[derive(Debug)]
pub struct Outcome {
    /// The total every server reads at the end (1 + … + 10 = 55, if "add 10" applied once).
    pub total: u64,
    /// (log index, answer) of "add 10", the last increment.
    pub last_add: (LogIndex, u64),
    /// (log index, answer) of the same "add 10" sent again with the same sequence number.
    pub retried: (LogIndex, u64),
}

/// Start three servers in this process, add 1 to 10 through a session client, send the last
/// one again (a retry), read the total back from every server without the log.
pub fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("config.json");
    // inproc endpoints: the servers and the client share this process's ZeroMQ context.
    let tag = std::process::id();
    let servers: Vec<String> =
        (1..=3).map(|p| format!(r#"{{"mypid": {p}, "url": "inproc://counter-{tag}-{p}"}}"#)).collect();
    std::fs::write(&path, format!(r#"{{"object": {{"total": 3, "Servers": [{}]}}}}"#, servers.join(",")))?;
    let config = Config::load(&path)?;
    let mut running = Vec::new();
    for pid in config.pids() {
        // The session wrapper remembers each client's last (seq, answer), snapshots included.
        let state_machine = Box::new(Sessions::new(Counter::default()));
        running.push(Server::start_with_state_machine(&config, pid, NodeOptions::default(), state_machine)?);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !running.iter().any(|s| s.role() == Role::Leader) {
        if Instant::now() > deadline {
            return Err("no leader within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Redirects and retries are the client's; the session header makes them safe.
    let mut client = SessionClient::new(Client::new(config.clone()));
    let mut last_add = (LogIndex(0), 0);
    for n in 1..=10u64 {
        let (index, total) = client.propose(n.to_le_bytes().to_vec())?;
        last_add = (index, u64::from_le_bytes(total.as_slice().try_into()?));
        println!("add {n}: total {} at index {index}", last_add.1);
    }
    // What a client does when "add 10"'s answer was lost: send it again, same sequence number.
    // It is committed a second time, at a new index, and answered with the first answer.
    let (index, total) = client.retry_last()?;
    let retried = (index, u64::from_le_bytes(total.as_slice().try_into()?));
    println!("add 10 again (seq {}): total {} at index {index}, not applied twice", client.seq(), retried.1);
    let mut total = 0;
    for pid in config.pids() {
        let from = leader::client::ReadFrom::Server(pid);
        // Reads carry no session header: the wrapper passes them to the counter.
        let mode = leader::transport::client_wire::ReadMode::ReadIndex;
        let (_, bytes) = client.client_mut().read(vec![0], mode, from)?;
        total = u64::from_le_bytes(bytes.as_slice().try_into()?);
        println!("server {pid} reads {total}");
    }
    for server in running {
        server.stop()?;
    }
    Ok(Outcome { total, last_add, retried })
}

#[allow(dead_code)] // the test includes this file as a module and calls `run`
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let outcome = run()?;
    assert_eq!(outcome.total, 55);
    Ok(())
}
