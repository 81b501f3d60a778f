//! Real network partitions (issue 12, point 4): `leader` processes in their own network
//! namespaces, links cut with iptables, delay from a proxy (tests/common/netns.rs has the
//! topology). Every test records the history of its concurrent clients and checks it with the
//! simulator's linearizability checker, then heals, waits until every server has applied the
//! same index and reads back every acknowledged write. Skipped (with a message) where network
//! namespaces cannot be made, e.g. when not root.

mod common;

use common::netns::workload::{History, Mix, Workload};
use common::netns::{in_netns, Delay, NetCluster, NetOptions};
use common::{test_seed, wait_for};
use leader::client::{Client, ReadFrom};
use leader::core::NodeId;
use leader::kv::{KvOp, KvResponse};
use leader::sim::linearizability::{check, Operation};
use std::time::Duration;

/// A leader must exist within this long after start or after a fault (CI: 2 busy cores).
const ELECT: Duration = Duration::from_secs(15);
/// How long a healed cluster gets to converge (TCP and ZeroMQ reconnects back off).
const CONVERGE: Duration = Duration::from_secs(30);
/// Slack on top of protocol bounds, for a loaded machine and the status polling itself.
const MARGIN: Duration = Duration::from_millis(1500);

fn options(servers: u64, election_timeout_ms: u64, heartbeat_ms: u64, seed: u64) -> NetOptions {
    NetOptions { servers, election_timeout_ms, heartbeat_ms, delay: None, seed }
}

fn keys(names: &[&str]) -> Vec<Vec<u8>> {
    names.iter().map(|n| n.as_bytes().to_vec()).collect()
}

fn ms(micros: u64) -> Duration {
    Duration::from_micros(micros)
}

fn is_put(op: &Operation) -> bool {
    matches!(op.op, KvOp::Put { .. })
}

/// Operations of `clients` that completed successfully in [from, to) (µs since the base).
fn succeeded(history: &History, clients: &[u64], from: u64, to: u64) -> Vec<Operation> {
    let done = |o: &Operation| o.response.is_some() && o.complete.is_some_and(|c| (from..to).contains(&c));
    history.operations().into_iter().filter(|o| clients.contains(&o.client) && done(o)).collect()
}

/// Wait until `clients` have had `count` successful puts completed after `from`.
fn wait_puts(history: &History, clients: &[u64], from: u64, count: usize, what: &str) {
    wait_for(ELECT, what, || {
        let n = succeeded(history, clients, from, u64::MAX).iter().filter(|o| is_put(o)).count();
        (n >= count).then_some(())
    });
}

/// The checker's verdict on the whole history, or a panic naming the key and why.
fn assert_linearizable(history: &History) -> usize {
    let operations = history.operations();
    match check(&operations) {
        Ok(n) => n,
        Err(e) => panic!("history not linearizable on key {:?}: {}", String::from_utf8_lossy(&e.key), e.explanation),
    }
}

/// Stop the clients, heal, wait until every server applied the same index (at least the
/// highest commit index seen), then read back, from the observer, every key that was written
/// once and acknowledged (the reads join the history). Returns (applied index, keys read).
fn converge_and_read_back(cluster: &mut NetCluster, load: &mut Workload) -> (u64, usize) {
    load.stop();
    cluster.heal();
    let high = cluster.statuses().iter().map(|s| s.commit_index).max().expect("some server answers");
    let applied = cluster.wait_converged(high, CONVERGE);
    let history = load.history.clone();
    let acknowledged: Vec<(Vec<u8>, Vec<u8>)> = history
        .operations()
        .into_iter()
        .filter(|o| o.response == Some(KvResponse::Done))
        .filter_map(|o| match o.op {
            KvOp::Put { key, value } if key.starts_with(b"u") => Some((key, value)),
            _ => None,
        })
        .collect();
    let config = cluster.config.clone();
    in_netns(cluster.observer_ns(), || {
        let mut client = Client::new(config).with_operation_deadline(Duration::from_secs(20));
        for (key, value) in &acknowledged {
            let read = history.run(0, &mut client, KvOp::Get { key: key.clone() });
            let key = String::from_utf8_lossy(key);
            assert_eq!(read, Some(KvResponse::Value(Some(value.clone()))), "acknowledged write of {key} lost");
        }
    });
    (applied.0, acknowledged.len())
}

/// (a) + (d): the leader and one follower are cut off from the other three. The leader steps
/// down within two election timeouts (the longest randomized timeout; check-quorum looks once
/// per timeout), no client on its side gets an answer after that (before the heal), the
/// majority elects a leader and takes writes, and no read anywhere returns a counter value
/// older than one already acknowledged.
#[test]
fn leader_cut_off_from_the_majority_stops_serving_and_its_side_reads_nothing_stale() {
    let name = "leader_cut_off_from_the_majority_stops_serving_and_its_side_reads_nothing_stale";
    let seed = test_seed(name);
    let Some(mut cluster) = NetCluster::start(name, options(5, 500, 50, seed)) else { return };
    let (leader, _) = cluster.wait_leader(ELECT, |_, _| true);
    let l = leader.0;
    let others: Vec<u64> = (1..=5).filter(|&p| p != l).collect();
    let (f, majority) = (others[0], others[1..].to_vec());
    let counter = b"counter".to_vec();
    let full = cluster.config.clone();
    let mut load = Workload::new(History::new());
    let deadline = Duration::from_secs(2);
    let writer = load.spawn(cluster.ns(majority[0]), full.clone(), Mix::Counter(counter.clone()), deadline, seed);
    let major = load.spawn(cluster.ns(majority[1]), full.clone(), Mix::Mixed(keys(&["a", "b"])), deadline, seed);
    // The client "on the old leader's side": in its namespace, sending every ReadIndex read to
    // that server (before the cut, while it leads, and after the heal, as a follower).
    let reads = Mix::Reads(vec![counter.clone(), b"a".to_vec()]);
    let from = ReadFrom::Server(NodeId(l));
    let minor_reader = load.spawn_reading_from(cluster.ns(l), full.clone(), reads, Duration::from_secs(1), seed, from);
    let minor = load.spawn(cluster.ns(f), full, Mix::Mixed(keys(&["a", "b"])), Duration::from_secs(1), seed);
    let history = load.history.clone();
    wait_for(ELECT, "both sides served before the cut", || {
        let ok = |c| !succeeded(&history, &[c], 0, u64::MAX).is_empty();
        (ok(writer) && ok(minor_reader) && ok(minor) && ok(major)).then_some(())
    });

    let cut = history.now();
    cluster.partition(&[&[l, f], &majority]);
    let bound = Duration::from_millis(2 * cluster.options.election_timeout_ms) + MARGIN;
    let stepped_down = cluster.wait_not_leader(l, bound);
    let (new_leader, _) = cluster.wait_leader(ELECT, |p, _| majority.contains(&p.0));
    wait_puts(&history, &[writer], history.now(), 10, "writes on the majority side during the partition");
    // Keep the minority busy past the bound, so the "no answer" check below has calls to judge.
    let quiet_from = cut + bound.as_micros() as u64;
    wait_for(ELECT, "minority calls after the bound", || {
        let after = history.operations().iter().filter(|o| o.client == minor_reader && o.invoke > quiet_from).count();
        (after >= 2).then_some(())
    });
    let heal = history.now();
    let (applied, read_back) = converge_and_read_back(&mut cluster, &mut load);

    let served = succeeded(&history, &[minor_reader, minor], quiet_from, heal);
    assert!(served.is_empty(), "the cut-off side was served {:?} after the cut: {served:?}", ms(quiet_from - cut));
    let operations = history.operations();
    let mut stale = Vec::new();
    for read in operations.iter().filter(|o| o.op == KvOp::Get { key: counter.clone() }) {
        let Some(KvResponse::Value(value)) = &read.response else { continue };
        let seen: u64 = value.as_deref().map_or(0, |v| String::from_utf8_lossy(v).parse().unwrap());
        let acknowledged = operations
            .iter()
            .filter(|w| w.client == writer && w.response.is_some() && w.complete.is_some_and(|c| c < read.invoke))
            .filter_map(|w| match &w.op {
                KvOp::Put { value, .. } => String::from_utf8_lossy(value).parse::<u64>().ok(),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        if seen < acknowledged {
            stale.push((read.client, read.invoke, seen, acknowledged));
        }
    }
    assert!(stale.is_empty(), "stale reads (client, invoked µs, read, already acknowledged): {stale:?}");
    let checked = assert_linearizable(&history);
    eprintln!(
        "{name}: leader {l} stepped down {stepped_down:?} after the cut, new leader {new_leader}; \
         applied {applied} everywhere, {read_back} writes read back, {checked} operations linearizable"
    );
}

/// (b) + (d): three rounds of a random minority of two cut off (the first round with the
/// leader in it), clients on both sides writing throughout; after the final heal every server
/// applies the same index and every acknowledged write reads back.
#[test]
fn healed_partitions_converge_with_no_acknowledged_write_lost() {
    let name = "healed_partitions_converge_with_no_acknowledged_write_lost";
    let seed = test_seed(name);
    let mut rng = leader::core::SplitMix64::new(seed);
    let Some(mut cluster) = NetCluster::start(name, options(5, 500, 50, seed)) else { return };
    let (leader, _) = cluster.wait_leader(ELECT, |_, _| true);
    let mut load = Workload::new(History::new());
    let shared = keys(&["a", "b", "c"]);
    let clients: Vec<u64> = (1..=5)
        .map(|p| {
            load.spawn(cluster.ns(p), cluster.config.clone(), Mix::Mixed(shared.clone()), Duration::from_secs(2), seed)
        })
        .collect();
    let history = load.history.clone();
    let hold = Duration::from_millis(3 * cluster.options.election_timeout_ms);
    let bound = Duration::from_millis(2 * cluster.options.election_timeout_ms) + MARGIN;
    let mut minority = vec![leader.0];
    for round in 0..3 {
        while minority.len() < 2 {
            let p = rng.range(1, 6);
            if !minority.contains(&p) {
                minority.push(p);
            }
        }
        let majority: Vec<u64> = (1..=5).filter(|p| !minority.contains(p)).collect();
        cluster.partition(&[&minority, &majority]);
        let (l, _) = cluster.wait_leader(ELECT, |p, _| majority.contains(&p.0));
        // Long enough for the minority to time out and campaign (in vain) at least once.
        let longest = cluster.observe_for(hold);
        assert!(longest <= bound, "round {round}: the majority lost its leader for {longest:?}");
        wait_puts(&history, &clients, history.now(), 10, &format!("writes in round {round} (leader {l})"));
        cluster.heal();
        wait_puts(&history, &clients, history.now(), 5, &format!("writes after round {round} healed"));
        minority.clear();
    }
    let (applied, read_back) = converge_and_read_back(&mut cluster, &mut load);
    assert!(read_back >= 5, "too few fresh-key writes acknowledged to judge: {read_back}");
    let checked = assert_linearizable(&history);
    eprintln!("{name}: applied {applied} everywhere, {read_back} writes read back, {checked} operations linearizable");
}

/// (c) + (d): every peer link delayed 20 ms ± 10 ms by the proxies and every packet into a
/// server dropped with probability 5 %: the cluster elects a leader, keeps one, and serves
/// writes. Progress, not speed: a modest count, no long stall, and no long stretch without a
/// leader. Every commit needs a follower's answer through two proxies (≥ 2 × 10 ms), which
/// shows the delay really is on the path.
#[test]
fn five_percent_loss_and_20ms_jitter_keep_a_leader_and_serve_writes() {
    let name = "five_percent_loss_and_20ms_jitter_keep_a_leader_and_serve_writes";
    let seed = test_seed(name);
    let delay = Delay { mean: Duration::from_millis(20), jitter: Duration::from_millis(10) };
    let options = NetOptions { delay: Some(delay), ..options(3, 1000, 100, seed) };
    let Some(mut cluster) = NetCluster::start(name, options) else { return };
    cluster.set_loss(Some(0.05));
    cluster.wait_leader(ELECT, |_, _| true);
    let mut load = Workload::new(History::new());
    let shared = keys(&["a", "b"]);
    let clients: Vec<u64> = (1..=3)
        .map(|p| {
            load.spawn(cluster.ns(p), cluster.config.clone(), Mix::Mixed(shared.clone()), Duration::from_secs(3), seed)
        })
        .collect();
    let history = load.history.clone();
    let (start, run) = (history.now(), Duration::from_secs(8));
    let longest_leaderless = cluster.observe_for(run);
    let end = history.now();
    let mut puts: Vec<Operation> = succeeded(&history, &clients, start, end).into_iter().filter(is_put).collect();
    puts.sort_by_key(|o| o.complete);
    let longest_stall = puts.windows(2).map(|w| ms(w[1].complete.unwrap() - w[0].complete.unwrap())).max();
    let mut latencies: Vec<Duration> = puts.iter().map(|o| ms(o.complete.unwrap() - o.invoke)).collect();
    latencies.sort();
    let (chunks, lost) = (cluster.proxied_chunks(), cluster.lost_packets());
    let (applied, read_back) = converge_and_read_back(&mut cluster, &mut load);
    let checked = assert_linearizable(&history);
    eprintln!(
        "{name}: {} puts in {run:?}, longest stall {longest_stall:?}, longest leaderless {longest_leaderless:?}, \
         put latency min {:?} median {:?}; {chunks} chunks proxied, {lost} packets dropped; applied {applied}, \
         {read_back} read back, {checked} operations linearizable",
        puts.len(),
        latencies.first(),
        latencies.get(latencies.len() / 2),
    );
    assert!(puts.len() >= 20, "only {} writes acknowledged in {run:?} under loss and delay", puts.len());
    let stall = longest_stall.unwrap_or(run);
    assert!(stall <= Duration::from_secs(4), "no write acknowledged for {stall:?}");
    assert!(longest_leaderless <= Duration::from_secs(4), "no acknowledged leader for {longest_leaderless:?}");
    assert!(chunks > 0, "no peer traffic went through the delaying proxies");
    assert!(lost > 0, "the loss rules dropped nothing");
    let median = latencies[latencies.len() / 2];
    assert!(median >= Duration::from_millis(20), "median put {median:?}: faster than the proxies' delay allows");
}

/// One-way then partial partitions (3 servers). One way: the leader's messages stop reaching
/// both followers while theirs still reach it, so they elect a new leader, which the old one
/// follows. Partial: the leader and one follower cannot talk but both reach the third; the
/// cluster keeps (or regains) a leader and takes writes. No acknowledged write is lost.
#[test]
fn one_way_and_partial_partitions_keep_a_leader_and_lose_no_write() {
    let name = "one_way_and_partial_partitions_keep_a_leader_and_lose_no_write";
    let seed = test_seed(name);
    let Some(mut cluster) = NetCluster::start(name, options(3, 500, 50, seed)) else { return };
    let (leader, _) = cluster.wait_leader(ELECT, |_, _| true);
    let mut load = Workload::new(History::new());
    let shared = keys(&["a", "b"]);
    let clients: Vec<u64> = (1..=3)
        .map(|p| {
            load.spawn(cluster.ns(p), cluster.config.clone(), Mix::Mixed(shared.clone()), Duration::from_secs(2), seed)
        })
        .collect();
    let history = load.history.clone();
    wait_puts(&history, &clients, 0, 5, "writes before the faults");

    for other in (1..=3).filter(|&p| p != leader.0) {
        cluster.cut_one_way(leader.0, other);
    }
    let (one_way_leader, _) = cluster.wait_leader(ELECT, |p, _| p != leader);
    wait_puts(&history, &clients, history.now(), 10, "writes while the old leader's messages are cut");
    cluster.heal();

    let (l2, _) = cluster.wait_leader(ELECT, |_, _| true);
    let b = (1..=3).find(|&p| p != l2.0).unwrap();
    let c = (1..=3).find(|&p| p != l2.0 && p != b).unwrap();
    cluster.partition(&[&[l2.0, c], &[b, c]]);
    let hold = Duration::from_millis(4 * cluster.options.election_timeout_ms);
    let leaderless = cluster.observe_for(hold);
    let bound = Duration::from_millis(2 * cluster.options.election_timeout_ms) + MARGIN;
    assert!(leaderless <= bound, "no acknowledged leader for {leaderless:?} with {l2}-{b} cut");
    wait_puts(&history, &clients, history.now(), 10, "writes while leader and one follower cannot talk");
    let (partial_leader, _) = cluster.wait_leader(ELECT, |_, _| true);
    let (applied, read_back) = converge_and_read_back(&mut cluster, &mut load);
    let checked = assert_linearizable(&history);
    eprintln!(
        "{name}: one way from {leader}: new leader {one_way_leader}; {l2}-{b} cut: leader {partial_leader}; \
         applied {applied}, {read_back} read back, {checked} operations linearizable"
    );
}

/// A bridge partition (5 servers): {leader, x, bridge} and {bridge, y, z}, only the bridge
/// server reaches both sides. Pre-vote and leader stickiness must keep the far side from
/// deposing the leader through the bridge over and over; the cluster keeps (or regains) a
/// leader, takes writes, and loses no acknowledged write.
#[test]
fn bridge_partition_keeps_a_leader_and_loses_no_write() {
    let name = "bridge_partition_keeps_a_leader_and_loses_no_write";
    let seed = test_seed(name);
    let Some(mut cluster) = NetCluster::start(name, options(5, 500, 50, seed)) else { return };
    let (leader, term) = cluster.wait_leader(ELECT, |_, _| true);
    let others: Vec<u64> = (1..=5).filter(|&p| p != leader.0).collect();
    let (x, bridge, far) = (others[0], others[1], [others[2], others[3]]);
    let mut load = Workload::new(History::new());
    let shared = keys(&["a", "b"]);
    let deadline = Duration::from_secs(2);
    let clients: Vec<u64> = [bridge, leader.0, far[0]]
        .iter()
        .map(|&p| load.spawn(cluster.ns(p), cluster.config.clone(), Mix::Mixed(shared.clone()), deadline, seed))
        .collect();
    let history = load.history.clone();
    wait_puts(&history, &clients, 0, 5, "writes before the bridge partition");

    cluster.partition(&[&[leader.0, x, bridge], &[bridge, far[0], far[1]]]);
    // Several election timeouts: the far side times out and campaigns through the bridge.
    let hold = Duration::from_millis(4 * cluster.options.election_timeout_ms);
    let leaderless = cluster.observe_for(hold);
    wait_puts(&history, &clients, history.now(), 10, "writes late in the bridge partition");
    let (during, during_term) = cluster.wait_leader(ELECT, |_, _| true);
    let bound = Duration::from_millis(2 * cluster.options.election_timeout_ms) + MARGIN;
    assert!(leaderless <= bound, "no acknowledged leader for {leaderless:?} during the bridge partition");
    let terms = during_term.0 - term.0;
    let (applied, read_back) = converge_and_read_back(&mut cluster, &mut load);
    let checked = assert_linearizable(&history);
    eprintln!(
        "{name}: leader {leader}, bridge {bridge}: leader {during} after ({terms} terms later, \
         longest leaderless {leaderless:?}); \
         applied {applied}, {read_back} read back, {checked} operations linearizable"
    );
}

/// The harness itself: nothing of the test network is in the root namespace, the servers'
/// namespaces have no route out, and a test that panics still leaves no namespace and no
/// server process behind.
#[test]
fn netns_harness_leaves_nothing_behind_even_when_the_test_panics() {
    let name = "netns_harness_leaves_nothing_behind_even_when_the_test_panics";
    const DELIBERATE: &str = "deliberate panic: the harness must clean up anyway";
    let made = std::sync::Mutex::new(None);
    let outcome = std::thread::scope(|s| {
        s.spawn(|| {
            let Some(cluster) = NetCluster::start(name, options(3, 500, 50, 1)) else { return };
            let namespaces: Vec<String> =
                (1..=3).map(|p| cluster.ns(p).to_string()).chain([cluster.observer_ns().to_string()]).collect();
            *made.lock().unwrap() = Some((namespaces.clone(), cluster.dir().to_path_buf(), cluster.os_pids()));
            let root = ip(&["-o", "addr"]);
            assert!(!root.contains("198.18."), "a test address in the root namespace: {root}");
            for ns in &namespaces {
                let routes = ip(&["-n", ns, "route"]);
                assert!(routes.contains("198.18.0.0/24") && !routes.contains("default"), "routes of {ns}: {routes}");
            }
            wait_for(ELECT, "every server answers the observer", || (cluster.statuses().len() == 3).then_some(()));
            panic!("{DELIBERATE}");
        })
        .join()
    });
    let Some((namespaces, dir, servers)) = made.into_inner().unwrap() else {
        return assert!(outcome.is_ok(), "the harness failed before it made its namespaces");
        // skipped
    };
    match outcome {
        Ok(()) => panic!("the deliberate panic did not happen"),
        Err(e) if e.downcast_ref::<String>().is_some_and(|m| m == DELIBERATE) => {}
        Err(e) => std::panic::resume_unwind(e),
    }
    let listed = ip(&["netns", "list"]);
    let left: Vec<&String> = namespaces.iter().filter(|ns| listed.contains(ns.as_str())).collect();
    assert!(left.is_empty(), "namespaces left after a panic: {left:?}");
    for pid in servers {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "server process {pid} outlived the test");
    }
    assert!(!dir.exists(), "the test directory {} was left behind", dir.display());
}

/// `ip args`' standard output.
fn ip(args: &[&str]) -> String {
    let ip = common::netns::tool("ip").expect("ip is installed (the harness ran)");
    let out = std::process::Command::new(ip).args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}
