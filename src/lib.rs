//! Raft consensus over ZeroMQ, with a write-ahead log, snapshots, reads without the log and a
//! built-in key-value store. This page is for embedding it; the `leader` command (running a
//! cluster from a config.json, the key-value CLI, benchmarks, the simulator) is in the README.
//!
//! # Embedding a server with your own state machine
//!
//! Implement [`kv::StateMachine`] and start one [`node::Server`] per process (or several in one
//! process, as here and in tests): the server replicates every command through Raft and calls
//! `apply` on every server in the same order.
//!
//! ```no_run
//! use leader::core::LogIndex;
//! use leader::kv::{SnapshotJob, StateMachine};
//! use leader::node::{NodeOptions, Server};
//!
//! #[derive(Default)]
//! struct Counter { total: u64 }
//!
//! impl StateMachine for Counter {
//!     fn apply(&mut self, _index: LogIndex, command: &[u8]) -> Vec<u8> {
//!         // Deterministic, no side effects: every server, and every replay, must agree.
//!         if let Ok(n) = <[u8; 8]>::try_from(command) {
//!             self.total = self.total.wrapping_add(u64::from_le_bytes(n));
//!         }
//!         self.total.to_le_bytes().to_vec() // the proposer's answer
//!     }
//!     fn snapshot(&self) -> SnapshotJob {
//!         let total = self.total; // freeze now; the job runs on another thread
//!         Box::new(move || total.to_le_bytes().to_vec())
//!     }
//!     fn restore(&mut self, bytes: &[u8]) -> Result<(), String> {
//!         let n = <[u8; 8]>::try_from(bytes).map_err(|_| "expected 8 bytes".to_string())?;
//!         self.total = u64::from_le_bytes(n);
//!         Ok(())
//!     }
//!     fn query(&self, _query: &[u8]) -> Result<Vec<u8>, String> {
//!         Ok(self.total.to_le_bytes().to_vec()) // reads without the log (ReadIndex)
//!     }
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let config = leader::config::Config::load("config.json")?;
//!     let me = config.pids()[0];
//!     let server = Server::start_with_state_machine(&config, me, NodeOptions::default(), Box::new(Counter::default()))?;
//!     // Anywhere (another process too): a client that finds the leader and retries.
//!     let mut client = leader::client::Client::new(config.clone());
//!     let (index, total) = client.propose(5u64.to_le_bytes().to_vec())?;
//!     println!("total {:?} at {index}", total);
//!     server.stop()?; // a leader hands over first
//!     Ok(())
//! }
//! ```
//!
//! `examples/counter.rs` runs three such servers in one process (a test runs it).
//!
//! What the state machine must know (details on [`kv::StateMachine`]):
//! - **State is rebuilt, not stored**: after a restart the server restores the latest snapshot
//!   and applies the committed log after it again; a follower far behind receives a snapshot.
//!   `apply` must therefore be deterministic and free of side effects outside the state.
//! - **Exactly-once needs sessions**: a client that got no answer retries, so a command can be
//!   committed twice. The built-in store ([`kv::KvStore`]) keeps a client id and sequence number
//!   per client and applies a retry once; a custom state machine gets the same by being
//!   wrapped in [`session::Sessions`] and proposed to with [`session::SessionClient`] (or must
//!   put both in each command and remember the last per client, in the snapshot too).
//!
//! # The parts
//! - [`node`]: the server (`Server`), its options, leadership transfer, application messages.
//! - [`client`]: the client protocol from anywhere (`propose`, `read`, the key-value calls,
//!   `transfer_leadership`, status); [`client::ClientError`] is what a server refuses with.
//! - [`kv`]: the [`kv::StateMachine`] trait and the built-in key-value store.
//! - [`session`]: exactly-once for any state machine (`Sessions`, `SessionClient`).
//! - [`core`]: the sans-IO Raft state machine (`Raft`: `step`, `tick`, `ready`), usable alone.
//! - [`config`], [`storage`] (WAL, snapshots, the `Storage` trait), [`transport`] (the wire).
//! - Tools, public so the `leader` binary and the tests can use them, not for embedding:
//!   [`driver`] (the core's one runtime glue, shared with the simulator), [`sim`] (the
//!   deterministic simulator), [`fuzz`], [`process`] (child processes for tests and benchmarks),
//!   [`codec`] (the one bincode configuration).
//!
//! The wire format is in docs/wire.md, storage formats in docs/storage.md, and the command line
//! in the README and docs/cli.md (in the repository).
#![warn(missing_docs)]

/// The README's Rust examples are compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod client;
pub mod codec;
pub mod config;
pub mod core;
pub mod driver;
pub mod fuzz;
pub mod kv;
pub mod node;
pub mod process;
pub mod session;
pub mod sim;
pub mod storage;
pub mod transport;

/// The message of a caught panic (what `panic!`/`assert!` printed), for reports.
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic without a message".into())
}
