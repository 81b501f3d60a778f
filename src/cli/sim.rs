//! `leader sim`: run the deterministic simulator for one seed or sweep a range of seeds.

use super::{EXIT_CONFIG, EXIT_FAILURE};
use leader::sim::{run, run_explained, MembershipCounts, SimOptions, SimReport};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Flags of `leader sim`.
#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// Run this one seed and print a summary.
    #[arg(long, conflicts_with = "seeds")]
    pub seed: Option<u64>,
    /// Sweep seeds A..B (B exclusive), e.g. 1..100001.
    #[arg(long, value_name = "A..B")]
    pub seeds: Option<String>,
    /// Events per seed with faults on (then faults stop and liveness is checked).
    #[arg(long, default_value_t = 2000)]
    pub steps: u64,
    /// Servers in the simulated cluster.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=15))]
    pub servers: u64,
    /// Simulated clients.
    #[arg(long, default_value_t = 3)]
    pub clients: usize,
    /// A healthy network and no crashes (for debugging).
    #[arg(long)]
    pub no_faults: bool,
    /// Percent of seeds run as stability runs (only single-follower faults; the stable
    /// leader must never change): 100 to sweep that mode alone, 0 to skip it.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u64).range(0..=100))]
    pub stability_percent: u64,
    /// Percent of seeds with lease reads on (clocks then keep to the lease's assumption; in
    /// half of them at its extremes, with the lease attack).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=100))]
    pub lease_percent: u64,
    /// Percent of the seeds without lease reads (and not stability runs) whose clocks run far
    /// outside the assumption (rates 0.5-2.0).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=100))]
    pub wild_clock_percent: u64,
    /// Percent of the chaos seeds (not stability runs nor lease attacks) that change the
    /// membership: servers outside it wait to be added; learners are added, promoted and
    /// removed, followers and leaders removed, removed servers wiped and added again.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=100))]
    pub membership_percent: u64,
    /// Worker threads for a sweep (default: the machine's cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

fn options(args: &SimArgs, seed: u64) -> SimOptions {
    SimOptions {
        servers: args.servers as usize,
        events: args.steps,
        faults: !args.no_faults,
        clients: args.clients,
        stability_percent: args.stability_percent,
        lease_percent: args.lease_percent,
        wild_clock_percent: args.wild_clock_percent,
        membership_percent: args.membership_percent,
        ..SimOptions::new(seed)
    }
}

fn print_failure(report: &SimReport) {
    let v = report.violation.as_ref().expect("a failure");
    eprintln!("FAILED seed {}: {} — {}", report.seed, v.property, v.detail);
    eprintln!("last events:");
    for line in &report.trace_tail {
        eprintln!("  {line}");
    }
    eprintln!("replay: leader sim --seed {}", report.seed);
}

fn parse_range(text: &str) -> Option<(u64, u64)> {
    let (a, b) = text.split_once("..")?;
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a < b).then_some((a, b))
}

/// Run `leader sim`.
pub fn run_cli(args: &SimArgs) -> Result<(), i32> {
    if let Some(seed) = args.seed {
        let started = Instant::now();
        let report = run_explained(&options(args, seed));
        let secs = started.elapsed().as_secs_f64();
        println!(
            "seed {seed}: {} events, {} virtual ms, {} ops acknowledged, {} indeterminate, {} terms with a leader, {} entries committed, trace {:016x}, {:.0} events/s",
            report.events,
            report.virtual_ms,
            report.ops_completed,
            report.ops_indeterminate,
            report.leader_terms,
            report.committed,
            report.trace_hash,
            report.events as f64 / secs
        );
        let c = &report.counts;
        println!(
            "  lease reads {}, clocks {:?}; reads: {} through the log, {} ReadIndex on the leader, {} by followers, {} from a lease; {} transfers ({} done), {} lease attacks",
            if report.lease { "on" } else { "off" },
            report.clocks,
            c.log_reads,
            c.leader_reads,
            c.follower_reads,
            c.lease_reads,
            c.transfers,
            c.transfers_done,
            c.lease_cuts
        );
        if report.membership {
            println!("  membership changes: {}", membership_line(&c.membership));
        }
        if report.violation.is_some() {
            print_failure(&report);
            return Err(EXIT_FAILURE);
        }
        return Ok(());
    }
    let Some(text) = args.seeds.as_deref() else {
        eprintln!("leader: sim: give --seed S or --seeds A..B");
        return Err(EXIT_CONFIG);
    };
    let Some((first, end)) = parse_range(text) else {
        eprintln!("leader: sim: --seeds {text:?}: expected A..B with A < B, e.g. 1..1001");
        return Err(EXIT_CONFIG);
    };
    sweep(args, first, end)
}

fn sweep(args: &SimArgs, first: u64, end: u64) -> Result<(), i32> {
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let next = Arc::new(AtomicU64::new(first));
    let done = Arc::new(AtomicU64::new(0));
    let events = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let failure: Arc<Mutex<Option<SimReport>>> = Arc::new(Mutex::new(None));
    // Seeds that changed the membership, and what their nemesis did.
    let changes: Arc<Mutex<(u64, MembershipCounts)>> = Arc::default();
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (next, done, events, stop, failure) =
                (Arc::clone(&next), Arc::clone(&done), Arc::clone(&events), Arc::clone(&stop), Arc::clone(&failure));
            let changes = Arc::clone(&changes);
            let base = options(args, 0);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        break;
                    }
                    let report = run(&SimOptions { seed, ..base.clone() });
                    events.fetch_add(report.events, Ordering::Relaxed);
                    if report.membership {
                        let mut c = changes.lock().unwrap_or_else(|e| e.into_inner());
                        c.0 += 1;
                        c.1.add(&report.counts.membership);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                    if report.violation.is_some() {
                        stop.store(true, Ordering::Relaxed);
                        let mut slot = failure.lock().unwrap_or_else(|e| e.into_inner());
                        if slot.as_ref().is_none_or(|f| f.seed > seed) {
                            *slot = Some(report);
                        }
                    }
                }
            })
        })
        .collect();
    let total = end - first;
    while workers.iter().any(|w| !w.is_finished()) {
        std::thread::sleep(Duration::from_millis(200));
        let n = done.load(Ordering::Relaxed);
        if n > 0 {
            eprint!(
                "\r  {n}/{total} seeds, {:.0} seeds/s, {:.0} events/s   ",
                n as f64 / started.elapsed().as_secs_f64(),
                events.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    for w in workers {
        let _ = w.join();
    }
    eprintln!();
    let secs = started.elapsed().as_secs_f64();
    let (n, ev) = (done.load(Ordering::Relaxed), events.load(Ordering::Relaxed));
    let failed = failure.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(report) = failed {
        // Replay the failing seed with its trace: the run is deterministic.
        let explained = run_explained(&options(args, report.seed));
        print_failure(&explained);
        return Err(EXIT_FAILURE);
    }
    println!(
        "{n} seeds clean ({} servers, {} events each with faults), {ev} events in {secs:.1} s: {:.0} seeds/s, {:.0} events/s on {threads} threads",
        args.servers,
        args.steps,
        n as f64 / secs,
        ev as f64 / secs
    );
    let (seeds, m) = *changes.lock().unwrap_or_else(|e| e.into_inner());
    if seeds > 0 {
        println!("membership changes in {seeds} seeds: {}", membership_line(&m));
    }
    Ok(())
}

/// What the membership nemesis did, as one seed's summary and a sweep's total print it.
fn membership_line(m: &leader::sim::MembershipCounts) -> String {
    format!(
        "{} made ({} applied, {} lost with their leader), {} learners promoted by the leader, {} refused ({} in \
         flight, {} before an own-term commit, {} no live quorum, {} transfer, {} not leader, {} other); {} removed \
         servers stopped, {} wiped and added again",
        m.proposed,
        m.applied,
        m.lost,
        m.auto_promoted,
        m.refused(),
        m.refused_in_flight,
        m.refused_own_commit,
        m.refused_live_quorum,
        m.refused_transfer,
        m.refused_not_leader,
        m.refused_other,
        m.stopped,
        m.wiped
    )
}
