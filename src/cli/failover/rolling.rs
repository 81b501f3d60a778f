//! `leader failover --rolling`: a rolling restart under load. N closed-loop writing clients
//! (the load of `leader bench`) run while every server of the config in turn gets SIGTERM
//! (a leader hands over first), exits, is restarted and catches up; what clients see is the
//! longest time in which no write was acknowledged, and the slowest write.

use super::super::bench::load::LoadSpec;
use super::super::bench::stats::{Summary, Workload};
use super::{fail, restart_and_rejoin, start_cluster, wait_for_leader, Background, SETTLE};
use leader::client::{Client, ReadFrom, ReadPath};
use leader::config::Config;
use leader::core::{Role, Term};
use std::time::{Duration, Instant};

/// Run it on a fresh cluster of `config`.
pub fn run(config: &Config, clients: usize, json: bool) -> Result<(), i32> {
    let mut cluster = start_cluster(config)?;
    let mut client = Client::new(config.clone()).with_timeout(Duration::from_millis(100));
    let (leader, _) = wait_for_leader(&mut client, None, Term(0)).ok_or_else(|| fail("no first leader".into()))?;
    let spec = LoadSpec {
        clients,
        value_size: 16,
        keys: None,
        workload: Workload { read_percent: 0 },
        read_path: ReadPath::ReadIndex,
        read_from: ReadFrom::Leader,
    };
    let load = Background::start(config, spec, leader);
    std::thread::sleep(SETTLE);
    let mut restarts = Vec::new();
    for pid in config.pids() {
        let led = client.status(pid).is_ok_and(|s| s.role == Role::Leader);
        let signalled = Instant::now();
        // SIGTERM, then wait for the exit (a leader hands over first).
        cluster.terminate(pid).map_err(|e| fail(format!("stop server {pid}: {e}")))?;
        let exit_ms = signalled.elapsed().as_secs_f64() * 1000.0;
        restart_and_rejoin(&mut cluster, &mut client, pid)?;
        let back_ms = signalled.elapsed().as_secs_f64() * 1000.0;
        if !json {
            let role = if led { " (the leader)" } else { "" };
            eprintln!("server {pid}{role}: exited {exit_ms:.0} ms after SIGTERM; restarted and caught up after {back_ms:.0} ms");
        }
        restarts.push(serde_json::json!({"pid": pid.0, "was_leader": led, "exit_ms": exit_ms, "rejoined_ms": back_ms}));
    }
    std::thread::sleep(SETTLE);
    let result = load.finish()?;
    cluster.stop_all();
    let writes = Summary::of(&result.write_latencies_us, result.secs);
    let stall_ms = result.longest_write_stall.as_secs_f64() * 1000.0;
    if json {
        println!(
            "{}",
            serde_json::json!({"servers": config.servers.len(), "clients": clients,
                "election_timeout_ms": config.election_timeout_ms, "seconds": result.secs,
                "longest_stall_ms": stall_ms, "max_write_ms": writes.max_ms, "writes": writes.json(),
                "errors": result.errors, "restarts": restarts})
        );
    } else {
        println!(
            "rolling restart of {} servers under {clients} writing clients (election timeout {} ms): longest write stall {stall_ms:.1} ms, slowest write {:.1} ms; {} writes in {:.1} s ({:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms); {} errors/retries",
            config.servers.len(),
            config.election_timeout_ms,
            writes.max_ms,
            writes.ops,
            result.secs,
            writes.ops_per_sec,
            writes.p50_ms,
            writes.p99_ms,
            result.errors
        );
    }
    Ok(())
}
