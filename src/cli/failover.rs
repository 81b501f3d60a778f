//! `leader failover`: stop the leader again and again and measure how long the cluster takes
//! to elect a new one and to acknowledge a write again: with SIGKILL (a crash: an election
//! timeout) or with SIGTERM (a planned stop: the leader hands over first, thesis §3.10); and
//! `--rolling`, a rolling restart of every server under a write load. A benchmark, not a test:
//! it reports figures, it asserts nothing.

mod membership;
mod probe;
mod rolling;

use super::bench::stats::median_p99_max;
use super::up::leader_of;
use super::{percentile, EXIT_FAILURE};
use leader::client::Client;
use leader::config::Config;
use leader::core::{NodeId, Term};
use leader::process::{ChildLogs, ProcessCluster};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Give up on a round after this long without a leader.
const ROUND_DEADLINE: Duration = Duration::from_secs(10);
/// Status polling period while waiting; small against the ~10–400 ms being measured.
const POLL_EVERY: Duration = Duration::from_millis(2);

/// Flags of `leader failover`.
#[derive(clap::Args, Debug)]
pub struct FailoverArgs {
    /// How many leaders to stop.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// kill: SIGKILL the leader (a crash); term: SIGTERM it (a planned stop: it hands
    /// leadership over before exiting).
    #[arg(long, value_enum, default_value_t = Mode::Kill)]
    pub mode: Mode,
    /// Instead of rounds: under a write load of --clients clients, SIGTERM and restart every
    /// server of the config in turn; report the longest write stall and the slowest write.
    #[arg(long, conflicts_with_all = ["rounds", "mode"])]
    pub rolling: bool,
    /// Instead of rounds: under a write load of --clients clients, add the first server outside
    /// the config's initial_members (a learner, promoted once caught up) and remove it again;
    /// report the time to promotion and the longest write stall.
    #[arg(long, conflicts_with_all = ["rounds", "mode", "rolling"])]
    pub membership: bool,
    /// --membership: write this many distinct keys first (the state the new server catches up on).
    #[arg(long, default_value_t = 0, requires = "membership")]
    pub keys: u64,
    /// --rolling, --membership: concurrent writing clients.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub clients: u32,
    /// Print one JSON object with the figures instead of text.
    #[arg(long)]
    pub json: bool,
}

/// How the leader is stopped.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Kill,
    Term,
}

/// Load before the measured change (restarts, a membership change) and after it, so both
/// ends are steady state.
const SETTLE: Duration = Duration::from_secs(1);

/// A closed-loop load (`leader bench`'s) on a thread of its own until [`Background::finish`]:
/// what `--rolling` and `--membership` measure around.
struct Background {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Result<super::bench::load::LoadResult, String>>,
}

impl Background {
    fn start(config: &Config, spec: super::bench::load::LoadSpec, leader: NodeId) -> Background {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (config, flag) = (config.clone(), std::sync::Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            super::bench::load::Load::new(config, spec, leader)
                .map(|mut load| load.measure(super::bench::load::Until::Flag(flag), false))
        });
        Background { stop, thread }
    }

    /// Stop the load and return what it saw.
    fn finish(self) -> Result<super::bench::load::LoadResult, i32> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| fail("the load thread panicked".into()))?
            .map_err(|e| fail(format!("the load: {e}")))
    }
}

fn fail(msg: String) -> i32 {
    eprintln!("leader: failover: {msg}");
    EXIT_FAILURE
}

fn wait_for_leader(client: &mut Client, not: Option<NodeId>, after: Term) -> Option<(NodeId, Term)> {
    let deadline = Instant::now() + ROUND_DEADLINE;
    while Instant::now() < deadline {
        // Ask only the other servers: a dead one would cost the whole timeout per poll.
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

/// Start every server of `config` as a child process.
fn start_cluster(config: &Config) -> Result<ProcessCluster, i32> {
    // Its own servers would fail to bind (or to lock their data directories) and only say so
    // in their logs; the benchmark would then report "no new leader". Say it up front.
    let mut probe = Client::new(config.clone()).with_timeout(Duration::from_millis(200));
    if let Some((pid, _)) = probe.status_all().into_iter().find(|(_, answer)| answer.is_ok()) {
        let endpoint = config.server(pid).map(|s| s.client_endpoint.clone()).unwrap_or_default();
        return Err(fail(format!(
            "server {pid} of {} already answers at {endpoint}: a cluster is running on these ports. \
             failover starts (and kills) servers of its own: stop that cluster, or use a config with \
             other ports and another data_dir",
            config.path.display()
        )));
    }
    let exe = std::env::current_exe().map_err(|e| fail(e.to_string()))?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| fail(format!("create {}: {e}", config.data_dir.display())))?;
    let mut cluster = ProcessCluster::new(exe, &config.path, ChildLogs::Dir(config.data_dir.clone()));
    for server in &config.servers {
        cluster.start(server.pid).map_err(|e| fail(format!("start server {}: {e}", server.pid)))?;
    }
    Ok(cluster)
}

/// Restart server `pid` and wait until it follows a leader and has applied what that leader
/// had committed when it came back, then until its start-up stickiness (one election timeout,
/// in which it refuses votes) has lapsed, so the next stop measures the cluster, not that.
fn restart_and_rejoin(cluster: &mut ProcessCluster, client: &mut Client, pid: NodeId) -> Result<(), i32> {
    let started = Instant::now();
    cluster.start(pid).map_err(|e| fail(format!("restart server {pid}: {e}")))?;
    let deadline = started + ROUND_DEADLINE;
    let mut target = None;
    loop {
        if Instant::now() > deadline {
            return Err(fail(format!("server {pid} did not rejoin within {ROUND_DEADLINE:?}")));
        }
        if let Ok(status) = client.status(pid) {
            if let Some(leader) = status.leader.filter(|l| *l != pid) {
                if target.is_none() {
                    target = client.status(leader).ok().map(|s| s.commit_index);
                }
                if target.is_some_and(|t| status.last_applied >= t) {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let sticky_until = started + Duration::from_millis(2 * client.config().election_timeout_ms);
    std::thread::sleep(sticky_until.saturating_duration_since(Instant::now()));
    Ok(())
}

/// SIGTERM to a child we started (ProcessCluster::terminate would also wait for it to exit,
/// and the measurement runs while it hands over).
fn sigterm(os_pid: u32) {
    // SAFETY: kill(2) on a pid we spawned and have not reaped (so it cannot be reused yet).
    unsafe {
        libc::kill(os_pid as libc::pid_t, libc::SIGTERM);
    }
}

/// A thread that runs one [`probe::Probe`] write per request: (server to leave out) in,
/// when it was acknowledged out.
fn spawn_probe(config: &Config) -> (mpsc::Sender<Option<NodeId>>, mpsc::Receiver<Option<Instant>>) {
    let (to_probe, requests) = mpsc::channel::<Option<NodeId>>();
    let (answers, from_probe) = mpsc::channel();
    let config = config.clone();
    std::thread::spawn(move || {
        let mut probe = match probe::Probe::new(&config) {
            Ok(probe) => probe,
            Err(e) => {
                eprintln!("leader: failover: {e}");
                return;
            }
        };
        for exclude in requests {
            if answers.send(probe.write(exclude, Instant::now() + ROUND_DEADLINE)).is_err() {
                return;
            }
        }
    });
    (to_probe, from_probe)
}

/// Run `leader failover`.
pub fn run(config: &Config, args: &FailoverArgs) -> Result<(), i32> {
    if args.rolling {
        return rolling::run(config, args.clients as usize, args.json);
    }
    if args.membership {
        return membership::run(config, args.clients as usize, args.keys, args.json);
    }
    let rounds = args.rounds;
    let mut cluster = start_cluster(config)?;
    let mut client = Client::new(config.clone()).with_timeout(Duration::from_millis(50));
    let (mut leader, mut term) =
        wait_for_leader(&mut client, None, Term(0)).ok_or_else(|| fail("no first leader".into()))?;
    let (probe, acks) = spawn_probe(config);
    let probe_write = |exclude| {
        probe.send(exclude).map_err(|_| fail("the write probe failed".into()))?;
        acks.recv().map_err(|_| fail("the write probe failed".into()))
    };
    probe_write(None)?.ok_or_else(|| fail("the cluster takes no writes".into()))?;
    let (mut to_leader_ms, mut to_write_ms) = (Vec::new(), Vec::new());
    let verb = if args.mode == Mode::Kill { "killed" } else { "SIGTERMed" };
    for round in 1..=rounds {
        let os_pid = cluster.os_pid(leader).ok_or_else(|| fail(format!("server {leader} is not running")))?;
        let signalled = Instant::now();
        match args.mode {
            Mode::Kill => cluster.kill(leader).map_err(|e| fail(format!("kill server {leader}: {e}")))?,
            Mode::Term => sigterm(os_pid),
        }
        probe.send(Some(leader)).map_err(|_| fail("the write probe failed".into()))?;
        let (next, next_term) = wait_for_leader(&mut client, Some(leader), term)
            .ok_or_else(|| fail(format!("round {round}: no new leader within {ROUND_DEADLINE:?}")))?;
        let leader_ms = signalled.elapsed().as_secs_f64() * 1000.0;
        let acked = acks.recv().map_err(|_| fail("the write probe failed".into()))?;
        let acked =
            acked.ok_or_else(|| fail(format!("round {round}: no write acknowledged within {ROUND_DEADLINE:?}")))?;
        let write_ms = (acked - signalled).as_secs_f64() * 1000.0;
        to_leader_ms.push(leader_ms);
        to_write_ms.push(write_ms);
        if !args.json {
            eprintln!(
                "round {round}/{rounds}: {verb} leader {leader}; server {next} leads term {next_term} after {leader_ms:.0} ms; first write acknowledged after {write_ms:.0} ms"
            );
        }
        // Reap it (after SIGTERM: it exits once it has handed over).
        cluster.terminate(leader).map_err(|e| fail(format!("stop server {leader}: {e}")))?;
        restart_and_rejoin(&mut cluster, &mut client, leader)?;
        (leader, term) = (next, next_term);
    }
    cluster.stop_all();
    report(config, args, &to_leader_ms, &to_write_ms);
    Ok(())
}

fn report(config: &Config, args: &FailoverArgs, to_leader_ms: &[f64], to_write_ms: &[f64]) {
    let figures = |samples: &[f64]| {
        let (p50, p99, max) = median_p99_max(samples);
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        (p50, percentile(&sorted, 90.0), p99, max)
    };
    let (l50, l90, l99, lmax) = figures(to_leader_ms);
    let (w50, w90, w99, wmax) = figures(to_write_ms);
    let mode = if args.mode == Mode::Kill { "kill" } else { "term" };
    if args.json {
        println!(
            "{}",
            serde_json::json!({"mode": mode, "rounds": args.rounds, "servers": config.servers.len(),
                "election_timeout_ms": config.election_timeout_ms,
                "p50_ms": l50, "p90_ms": l90, "p99_ms": l99, "max_ms": lmax,
                "to_leader": {"p50_ms": l50, "p90_ms": l90, "p99_ms": l99, "max_ms": lmax},
                "to_write": {"p50_ms": w50, "p90_ms": w90, "p99_ms": w99, "max_ms": wmax}})
        );
    } else {
        let what =
            if args.mode == Mode::Kill { "leader kills (SIGKILL)" } else { "leader stops (SIGTERM, handing over)" };
        println!(
            "{} {what}, {} servers, election timeout {} ms:\n  to a new leader: p50 {l50:.1} ms, p90 {l90:.1} ms, p99 {l99:.1} ms, max {lmax:.1} ms\n  to the first acknowledged write: p50 {w50:.1} ms, p90 {w90:.1} ms, p99 {w99:.1} ms, max {wmax:.1} ms",
            args.rounds,
            config.servers.len(),
            config.election_timeout_ms
        );
    }
}
