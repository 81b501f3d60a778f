//! `leader failover`: kill the leader again and again and measure how long the cluster takes
//! to elect a new one. A benchmark, not a test: it reports figures, it asserts nothing.

use super::up::leader_of;
use super::{percentile, EXIT_FAILURE};
use leader::client::Client;
use leader::config::Config;
use leader::core::{NodeId, Term};
use leader::process::{ChildLogs, ProcessCluster};
use std::time::{Duration, Instant};

/// Give up on a round after this long without a leader.
const ROUND_DEADLINE: Duration = Duration::from_secs(10);
/// Status polling period while waiting; small against the ~200–400 ms being measured.
const POLL_EVERY: Duration = Duration::from_millis(2);

fn wait_for_leader(client: &mut Client, not: Option<NodeId>, after: Term) -> Option<(NodeId, Term)> {
    let deadline = Instant::now() + ROUND_DEADLINE;
    while Instant::now() < deadline {
        // Ask only the live servers: a dead one would cost the whole timeout per poll.
        let live: Vec<NodeId> = client.config().pids().into_iter().filter(|p| Some(*p) != not).collect();
        if let Some((pid, term)) = leader_of(&client.status_of(&live)) {
            if Some(pid) != not && term > after {
                return Some((pid, term));
            }
        }
        std::thread::sleep(POLL_EVERY);
    }
    None
}

/// Run `rounds` kill-the-leader rounds on a fresh cluster of `config`.
pub fn run(config: &Config, rounds: u32, json: bool) -> Result<(), i32> {
    let fail = |msg: String| {
        eprintln!("leader: failover: {msg}");
        EXIT_FAILURE
    };
    let exe = std::env::current_exe().map_err(|e| fail(e.to_string()))?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| fail(format!("create {}: {e}", config.data_dir.display())))?;
    let mut cluster = ProcessCluster::new(exe, &config.path, ChildLogs::Dir(config.data_dir.clone()));
    for server in &config.servers {
        cluster.start(server.pid).map_err(|e| fail(format!("start server {}: {e}", server.pid)))?;
    }
    let mut client = Client::new(config.clone()).with_timeout(Duration::from_millis(50));
    let (mut leader, mut term) =
        wait_for_leader(&mut client, None, Term(0)).ok_or_else(|| fail("no first leader".into()))?;
    let mut times_ms = Vec::new();
    for round in 1..=rounds {
        let killed_at = Instant::now();
        cluster.kill(leader).map_err(|e| fail(format!("kill server {leader}: {e}")))?;
        let (next, next_term) = wait_for_leader(&mut client, Some(leader), term)
            .ok_or_else(|| fail(format!("round {round}: no new leader within {ROUND_DEADLINE:?}")))?;
        let ms = killed_at.elapsed().as_secs_f64() * 1000.0;
        times_ms.push(ms);
        if !json {
            eprintln!(
                "round {round}/{rounds}: killed leader {leader}, server {next} leads term {next_term} after {ms:.0} ms"
            );
        }
        cluster.start(leader).map_err(|e| fail(format!("restart server {leader}: {e}")))?;
        // Let the restarted server rejoin as a follower before the next kill.
        let rejoin_deadline = Instant::now() + ROUND_DEADLINE;
        while Instant::now() < rejoin_deadline && client.status(leader).map(|s| s.leader.is_none()).unwrap_or(true) {
            std::thread::sleep(Duration::from_millis(10));
        }
        (leader, term) = (next, next_term);
    }
    cluster.stop_all();
    times_ms.sort_by(|a, b| a.total_cmp(b));
    let (p50, p90, p99, max) = (
        percentile(&times_ms, 50.0),
        percentile(&times_ms, 90.0),
        percentile(&times_ms, 99.0),
        times_ms[times_ms.len() - 1],
    );
    if json {
        println!(
            "{}",
            serde_json::json!({"rounds": rounds, "servers": config.servers.len(), "election_timeout_ms": config.election_timeout_ms,
                "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": max})
        );
    } else {
        println!(
            "{rounds} leader kills, {} servers, election timeout {} ms: time to a new leader p50 {p50:.0} ms, p90 {p90:.0} ms, p99 {p99:.0} ms, max {max:.0} ms",
            config.servers.len(),
            config.election_timeout_ms
        );
    }
    Ok(())
}
