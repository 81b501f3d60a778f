//! Embedding `leader` with your own state machine: three servers in one process replicate a
//! counter. Each command is "add N" (8 bytes, little-endian); the response is the new total.
//! The state is rebuilt on restart from the latest snapshot plus the log after it, so `apply`
//! is deterministic and does nothing but change the state.
//!
//! Run: `cargo run --example counter` (tests/counter_example.rs runs it too).

use leader::client::Client;
use leader::config::Config;
use leader::core::{LogIndex, Role};
use leader::kv::{SnapshotJob, StateMachine};
use leader::node::{NodeOptions, Server};
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

/// Start three servers in this process, add 1 to 10 through the client, read the total back
/// from every server without the log; returns the total (55).
pub fn run() -> Result<u64, Box<dyn std::error::Error>> {
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
        let state_machine = Box::new(Counter::default());
        running.push(Server::start_with_state_machine(&config, pid, NodeOptions::default(), state_machine)?);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !running.iter().any(|s| s.role() == Role::Leader) {
        if Instant::now() > deadline {
            return Err("no leader within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut client = Client::new(config.clone());
    for n in 1..=10u64 {
        // Redirects and retries are the client's; without a session a retried command could
        // apply twice (the built-in store has sessions: see StateMachine's docs).
        let (index, total) = client.propose(n.to_le_bytes().to_vec())?;
        println!("add {n}: total {} at index {index}", u64::from_le_bytes(total.as_slice().try_into()?));
    }
    let mut total = 0;
    for pid in config.pids() {
        let from = leader::client::ReadFrom::Server(pid);
        let (_, bytes) = client.read(vec![0], leader::transport::client_wire::ReadMode::ReadIndex, from)?;
        total = u64::from_le_bytes(bytes.as_slice().try_into()?);
        println!("server {pid} reads {total}");
    }
    for server in running {
        server.stop()?;
    }
    Ok(total)
}

#[allow(dead_code)] // the test includes this file as a module and calls `run`
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let total = run()?;
    assert_eq!(total, 55);
    Ok(())
}
