//! `leader transfer [--to PID]`: hand leadership over (Raft thesis §3.10).

use super::{EXIT_CONFIG, EXIT_FAILURE};
use leader::client::{CallError, Client};
use leader::config::Config;
use leader::core::NodeId;
use leader::transport::client_wire::ClientError;
use std::time::{Duration, Instant};

/// Ask the leader to hand over to `to` (or the most up-to-date follower) and print who leads.
pub fn run(config: Config, to: Option<NodeId>, deadline: Duration) -> Result<(), i32> {
    if let Some(pid) = to {
        if config.server(pid).is_err() {
            eprintln!(
                "leader: --to {pid}: no server {pid} in {} (servers: {:?})",
                config.path.display(),
                config.pids().iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
            );
            return Err(EXIT_CONFIG);
        }
    }
    let mut client = Client::new(config).with_operation_deadline(deadline);
    let started = Instant::now();
    match client.transfer_leadership(to) {
        Ok((leader, term)) => {
            println!("server {leader} leads (term {term}), {} ms", started.elapsed().as_millis());
            Ok(())
        }
        Err(CallError::Refused(ClientError::Unavailable(why))) => {
            eprintln!("leader: transfer failed: {why}");
            Err(EXIT_FAILURE)
        }
        Err(e) => {
            eprintln!("leader: transfer failed: {e}");
            Err(EXIT_FAILURE)
        }
    }
}
