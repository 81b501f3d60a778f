//! The CI sweep: 1,000 seeds of 2,000 events on 5 servers with every fault on, zero
//! violations; and the `leader sim` command line.

use leader::sim::{run, SimOptions};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[test]
fn ci_sweep_1000_seeds_of_2000_events_on_5_servers_runs_clean() {
    let next = Arc::new(AtomicU64::new(1));
    let events = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (next, events) = (Arc::clone(&next), Arc::clone(&events));
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed > 1000 {
                        return failures;
                    }
                    let options = SimOptions::new(seed);
                    assert_eq!((options.servers, options.events, options.faults), (5, 2000, true));
                    let report = run(&options);
                    events.fetch_add(report.events, Ordering::Relaxed);
                    if let Some(v) = report.violation {
                        failures.push(format!(
                            "seed {seed}: {} — {} (replay: leader sim --seed {seed})",
                            v.property, v.detail
                        ));
                    }
                }
            })
        })
        .collect();
    let failures: Vec<String> = workers.into_iter().flat_map(|w| w.join().expect("worker")).collect();
    let secs = started.elapsed().as_secs_f64();
    let events = events.load(Ordering::Relaxed);
    eprintln!(
        "1000 seeds, {events} events in {secs:.1} s: {:.0} seeds/s, {:.0} events/s",
        1000.0 / secs,
        events as f64 / secs
    );
    assert!(events >= 2_000_000, "every seed ran its 2,000 events ({events})");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn sim(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_leader")).arg("sim").args(args).output().expect("run leader sim");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn leader_sim_replays_a_seed_identically_and_sweeps_with_progress() {
    let (code, first, _) = sim(&["--seed", "7"]);
    assert_eq!(code, Some(0));
    let (_, second, _) = sim(&["--seed", "7"]);
    let hash = |s: &str| s.split("trace ").nth(1).map(|t| t[..16].to_string());
    assert!(hash(&first).is_some(), "{first}");
    assert_eq!(hash(&first), hash(&second), "same seed, same trace");
    let (_, other, _) = sim(&["--seed", "8"]);
    assert_ne!(hash(&first), hash(&other));

    let (code, out, err) = sim(&["--seeds", "1..21", "--servers", "3"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("20 seeds clean (3 servers"), "{out}");
    assert!(err.contains("20/20 seeds"), "progress is shown: {err}");

    let (code, _, err) = sim(&["--seeds", "5..3"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("expected A..B"), "{err}");
}
