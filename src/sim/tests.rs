//! The simulator on itself: determinism, clean runs, and the planted-bug proof.

use super::*;

#[test]
fn two_runs_of_one_seed_produce_the_same_trace() {
    for seed in [1, 2, 3] {
        let a = run(&SimOptions::new(seed));
        let b = run(&SimOptions::new(seed));
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
        assert_eq!((a.events, a.virtual_ms, a.ops_completed), (b.events, b.virtual_ms, b.ops_completed));
        assert_ne!(run(&SimOptions::new(seed + 100)).trace_hash, a.trace_hash);
    }
}

#[test]
fn a_few_seeds_run_clean_and_make_progress() {
    for seed in 1..=20 {
        let report = run_explained(&SimOptions::new(seed));
        assert!(report.violation.is_none(), "seed {seed}: {:?}\n{}", report.violation, report.trace_tail.join("\n"));
        assert!(report.ops_completed > 0, "seed {seed}: no operation completed");
    }
}

/// Sweep seeds with one planted bug until a run fails; the first failing seed. Bug hunting
/// uses 3 servers and 4,000 events: a majority of two makes the races behind these bugs
/// (an acknowledgement racing an fsync, Figure 8's interleaving) far more likely.
fn seeds_to_find(bugs: crate::core::PlantedBugs, limit: u64) -> Option<(u64, Violation)> {
    (1..=limit).find_map(|seed| {
        run(&SimOptions { bugs, servers: 3, events: 4000, ..SimOptions::new(seed) }).violation.map(|v| (seed, v))
    })
}

#[test]
fn every_planted_bug_is_found_within_1000_seeds() {
    let mut missed = Vec::new();
    for (name, bugs) in crate::core::PlantedBugs::each() {
        match seeds_to_find(bugs, 1000) {
            Some((seed, v)) => {
                eprintln!("planted bug {name}: found at seed {seed} ({seed} seeds): {} — {}", v.property, v.detail)
            }
            None => missed.push(name),
        }
    }
    assert!(missed.is_empty(), "not found within 1000 seeds: {missed:?}");
}

#[test]
fn a_failure_names_the_seed_and_property_and_keeps_a_readable_trace() {
    let bugs = crate::core::PlantedBugs { apply_twice_after_restart: true, ..crate::core::PlantedBugs::NONE };
    let (seed, _) = seeds_to_find(bugs, 1000).expect("the planted bug is found");
    let report = run_explained(&SimOptions { bugs, servers: 3, events: 4000, ..SimOptions::new(seed) });
    assert_eq!(report.seed, seed);
    let violation = report.violation.expect("the replay fails the same way");
    assert_eq!(violation.property, "apply each entry once, in order");
    assert!(report.trace_tail.len() >= 10, "the last events are kept as text: {:?}", report.trace_tail);
    assert!(report.trace_tail.iter().any(|l| l.contains("RESTART")), "the trace shows the restart");
}
