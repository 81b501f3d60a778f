//! The in-tree fuzzer in CI: each untrusted-input reader for a bounded time (default 15 s;
//! `LEADER_FUZZ_SECONDS=600 cargo test --release --test fuzz -- --nocapture` by hand). No
//! panic, no hang (a watchdog fails the test after 10 s without progress).

use leader::fuzz::{run, Target};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn fuzz(target: Target) {
    let seconds: u64 = std::env::var("LEADER_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(15);
    let scratch = tempfile::tempdir().unwrap();
    let progress = Arc::new(AtomicU64::new(0));
    let watchdog = Arc::clone(&progress);
    let done = Arc::new(AtomicU64::new(0));
    let finished = Arc::clone(&done);
    std::thread::spawn(move || {
        while finished.load(Ordering::Relaxed) == 0 {
            let before = watchdog.load(Ordering::Relaxed);
            std::thread::sleep(Duration::from_secs(10));
            if finished.load(Ordering::Relaxed) == 0 && watchdog.load(Ordering::Relaxed) == before {
                eprintln!("fuzz {}: no execution finished for 10 s: a hang", target.name());
                std::process::abort();
            }
        }
    });
    let report = run(target, 1, Duration::from_secs(seconds), scratch.path(), &progress);
    done.store(1, Ordering::Relaxed);
    eprintln!("fuzz {}: {} executions in {seconds} s, {} accepted", target.name(), report.executions, report.accepted);
    if let Some((input, why)) = report.crash {
        let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
        panic!("fuzz {}: panic {why:?} on input {hex}", target.name());
    }
    assert!(report.executions > 100, "the fuzzer ran ({} executions)", report.executions);
    assert!(report.accepted > 0, "some mutated inputs still decode: the corpus is valid");
}

#[test]
fn fuzz_the_envelope_decoder() {
    fuzz(Target::Envelope);
}

#[test]
fn fuzz_the_client_request_decoder() {
    fuzz(Target::ClientRequest);
}

#[test]
fn fuzz_storage_recovery() {
    fuzz(Target::Storage);
}

/// Decodable messages with adversarial fields against a core in every role (structure-aware:
/// byte mutation never reached the core's assertions).
#[test]
fn fuzz_the_core_with_adversarial_messages() {
    fuzz(Target::Core);
}
