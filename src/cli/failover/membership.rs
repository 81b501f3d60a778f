//! `leader failover --membership`: adding and removing a server under load (thesis §4). The
//! cluster of the config starts (every server; those outside `initial_members` as
//! non-members), optionally takes `--keys K` distinct keys, then, under N writing clients,
//! the first server outside `initial_members` is added (as a learner promoted once caught up)
//! and removed again. Reports the time to promotion and the longest write stall clients saw.

use super::super::bench::load::{Load, LoadSpec, Until};
use super::super::bench::stats::{Summary, Workload};
use super::{fail, start_cluster, wait_for_leader, Background, SETTLE};
use leader::client::{Client, ReadFrom, ReadPath};
use leader::config::Config;
use leader::core::{MemberRole, MembershipChange, NodeId, Term};
use std::time::{Duration, Instant};

/// Longest wait for a promotion (a large state is sent as a snapshot first).
const PROMOTION_DEADLINE: Duration = Duration::from_secs(300);

fn spec(clients: usize, keys: Option<u64>) -> LoadSpec {
    LoadSpec {
        clients,
        value_size: 100,
        keys,
        workload: Workload { read_percent: 0 },
        read_path: ReadPath::ReadIndex,
        read_from: ReadFrom::Leader,
    }
}

/// Run it on a fresh cluster of `config`.
pub fn run(config: &Config, clients: usize, keys: u64, json: bool) -> Result<(), i32> {
    let Some(joiner) = config.servers.iter().find(|s| !config.initial_members.contains(&s.pid)).cloned() else {
        return Err(fail(format!(
            "{} lists no server outside initial_members to add: add one to object.Servers and set \
             \"initial_members\" to the others",
            config.path.display()
        )));
    };
    let mut cluster = start_cluster(config)?;
    let mut client = Client::new(config.clone()).with_timeout(Duration::from_millis(200));
    let (leader, _) = wait_for_leader(&mut client, None, Term(0)).ok_or_else(|| fail("no first leader".into()))?;
    if keys > 0 {
        let started = Instant::now();
        let mut fill = Load::new(config.clone(), spec(256, Some(keys)), leader).map_err(fail)?;
        fill.measure(Until::Acked(keys), !json);
        if !json {
            eprintln!("{keys} keys written in {:.1} s", started.elapsed().as_secs_f64());
        }
    }
    let load = Background::start(config, spec(clients, None), leader);
    std::thread::sleep(SETTLE);
    let pid = joiner.pid;
    let started = Instant::now();
    let add = MembershipChange::AddLearner {
        pid,
        peer_url: joiner.endpoint.clone(),
        client_url: joiner.client_endpoint.clone(),
        promote: true,
    };
    client.change_membership(add).map_err(|e| fail(format!("add server {pid}: {e}")))?;
    let added_ms = started.elapsed().as_secs_f64() * 1000.0;
    wait_promoted(&mut client, pid, started + PROMOTION_DEADLINE)?;
    let promoted_ms = started.elapsed().as_secs_f64() * 1000.0;
    std::thread::sleep(SETTLE);
    let removing = Instant::now();
    client.change_membership(MembershipChange::Remove { pid }).map_err(|e| fail(format!("remove {pid}: {e}")))?;
    let removed_ms = removing.elapsed().as_secs_f64() * 1000.0;
    std::thread::sleep(SETTLE);
    let result = load.finish()?;
    cluster.stop_all();
    let writes = Summary::of(&result.write_latencies_us, result.secs);
    let stall_ms = result.longest_write_stall.as_secs_f64() * 1000.0;
    if json {
        println!(
            "{}",
            serde_json::json!({"servers": config.initial_members.len(), "keys": keys, "clients": clients,
                "added_ms": added_ms, "promoted_ms": promoted_ms, "removed_ms": removed_ms,
                "longest_stall_ms": stall_ms, "max_write_ms": writes.max_ms, "writes": writes.json(),
                "errors": result.errors})
        );
    } else {
        println!(
            "server {pid} added to {} servers holding {keys} keys under {clients} writing clients: committed as a \
             learner after {added_ms:.0} ms, promoted to voter after {promoted_ms:.0} ms; removed in {removed_ms:.0} ms; \
             longest write stall {stall_ms:.1} ms, slowest write {:.1} ms; {} writes ({:.0} ops/s, p99 {:.2} ms); {} errors/retries",
            config.initial_members.len(),
            writes.max_ms,
            writes.ops,
            writes.ops_per_sec,
            writes.p99_ms,
            result.errors
        );
    }
    Ok(())
}

/// Wait until the leader's committed membership has `pid` as a voter.
fn wait_promoted(client: &mut Client, pid: NodeId, deadline: Instant) -> Result<(), i32> {
    loop {
        if let Ok(info) = client.leader_membership() {
            if info.committed && info.members.iter().any(|m| m.pid == pid && m.role == MemberRole::Voter) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(fail(format!("server {pid} was not promoted within {PROMOTION_DEADLINE:?}")));
        }
        std::thread::sleep(Duration::from_millis(20)); // polling a remote state: nothing to await
    }
}
