//! `leader fuzz`: run the in-tree fuzzer on one target for a while and report executions.

use super::{EXIT_CONFIG, EXIT_FAILURE};
use leader::fuzz::{run, Target};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Fuzz `target` ("envelope", "client-request", "storage", "core" or "all") for `seconds`
/// each.
pub fn run_cli(target: &str, seconds: u64, seed: u64) -> Result<(), i32> {
    let targets: Vec<Target> = match target {
        "all" => Target::ALL.to_vec(),
        name => {
            match Target::ALL.iter().find(|t| t.name() == name) {
                Some(t) => vec![*t],
                None => {
                    eprintln!("leader: fuzz: unknown target {name:?}; expected envelope, client-request, storage, core or all");
                    return Err(EXIT_CONFIG);
                }
            }
        }
    };
    let scratch = std::env::temp_dir().join(format!("leader-fuzz-{}", std::process::id()));
    let mut failed = false;
    for target in targets {
        let progress = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let (watched, finished) = (Arc::clone(&progress), Arc::clone(&done));
        // A hang is a finding too: exit loudly if no execution finishes for 10 s.
        std::thread::spawn(move || {
            while !finished.load(Ordering::Relaxed) {
                let before = watched.load(Ordering::Relaxed);
                std::thread::sleep(Duration::from_secs(10));
                if !finished.load(Ordering::Relaxed) && watched.load(Ordering::Relaxed) == before {
                    eprintln!("leader: fuzz: no execution finished for 10 s: a hang");
                    std::process::exit(EXIT_FAILURE);
                }
            }
        });
        let report = run(target, seed, Duration::from_secs(seconds), &scratch.join(target.name()), &progress);
        done.store(true, Ordering::Relaxed);
        println!(
            "{}: {} executions in {seconds} s ({:.0}/s), {} accepted, {}",
            target.name(),
            report.executions,
            report.executions as f64 / seconds.max(1) as f64,
            report.accepted,
            if report.crash.is_some() { "CRASH" } else { "no crash, no hang" }
        );
        if let Some((input, why)) = report.crash {
            let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
            eprintln!("  failure: {why}");
            if !hex.is_empty() {
                eprintln!("  input: {hex}");
            }
            failed = true;
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if failed {
        Err(EXIT_FAILURE)
    } else {
        Ok(())
    }
}
