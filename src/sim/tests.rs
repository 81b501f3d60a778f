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

/// Events per bug-hunting run. 8,000 rather than 4,000 since heartbeat acknowledgements
/// leave before unrelated fsyncs (the driver): Figure 8's interleaving became rarer per event
/// (first found at seed 943 with 4,000 events, at 55 with 8,000). 16,000 since reads without
/// the log, transfers and drifting clocks joined the fault space: Figure 8 was then found in
/// 11 of seeds 1–3,000 with 8,000 events (first at 1,045), 22 with 16,000 (first at 5).
const HUNT_EVENTS: u64 = 16_000;

/// Sweep seeds with one planted bug until a run fails; the first failing seed. Bug hunting
/// uses 3 servers: a majority of two makes the races behind these bugs (an acknowledgement
/// racing an fsync, Figure 8's interleaving) far more likely.
/// A lease bug is hunted in lease runs, every other bug in runs without leases (whose reads
/// are ReadIndex, follower and log reads) and with clocks within the bound: the lease attack's
/// LAN settings, and the pre-vote that lease and wild-clock runs need, would otherwise take
/// most seeds from the log bugs' interleavings (Figure 8 needs elections without pre-vote).
/// Other tests cover leases and wild clocks without planted bugs.
/// A membership bug is hunted in membership runs only (no stability runs: they change no
/// membership); every other bug in runs without membership changes, which are the runs they
/// were found in before membership changes existed (seed for seed).
fn seeds_to_find(bugs: crate::core::PlantedBugs, limit: u64) -> Option<(u64, Violation)> {
    (1..=limit).find_map(|seed| run(&hunt(bugs, seed)).violation.map(|v| (seed, v)))
}

/// The options a bug is hunted with at `seed`.
fn hunt(bugs: crate::core::PlantedBugs, seed: u64) -> SimOptions {
    let lease_percent = if bugs.lease_without_drift_margin { 100 } else { 0 };
    let membership = is_membership_bug(bugs);
    SimOptions {
        bugs,
        servers: 3,
        events: HUNT_EVENTS,
        lease_percent,
        wild_clock_percent: 0,
        membership_percent: if membership { 100 } else { 0 },
        stability_percent: if membership { 0 } else { SimOptions::new(seed).stability_percent },
        ..SimOptions::new(seed)
    }
}

fn is_membership_bug(bugs: crate::core::PlantedBugs) -> bool {
    bugs.membership_changes_overlap || bugs.membership_before_own_commit || bugs.learner_counts_towards_commit
}

#[test]
#[ignore]
fn hunt_membership_bugs() {
    for (name, bugs) in crate::core::PlantedBugs::each().into_iter().filter(|(_, b)| is_membership_bug(*b)) {
        let found: Vec<(u64, &'static str)> =
            (1..=300).filter_map(|seed| run(&hunt(bugs, seed)).violation.map(|v| (seed, v.property))).take(5).collect();
        eprintln!("{name}: {found:?}");
    }
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
    let report = run_explained(&hunt(bugs, seed));
    assert_eq!(report.seed, seed);
    let violation = report.violation.expect("the replay fails the same way");
    assert_eq!(violation.property, "apply each entry once, in order");
    assert!(report.trace_tail.len() >= 10, "the last events are kept as text: {:?}", report.trace_tail);
    assert!(report.trace_tail.iter().any(|l| l.contains("RESTART")), "the trace shows the restart");
}

/// Core bug found by the crash between the log sync and the hard-state save (reported to the
/// lead, not fixed here: src/core is not the simulator's). In the runtime's order — append,
/// sync, then save the hard state — a follower that took entries of a new leader's term T and
/// crashed after the sync restarts with its older saved term and entries of term T. Its
/// PreVote and RequestVote then name a last log term above the request's term, and every
/// peer drops them as invalid (`validate_log_position`: "no sender can hold an entry of a
/// term later than its own"). If the peers that remain have shorter logs, they cannot win
/// either (it refuses them, §5.4.1), and with pre-vote nobody's term ever rises: no leader,
/// forever. Here: server 3 led term 3 and is gone; server 1 holds its no-op of term 3 with
/// term 1 saved; server 2 saved term 3 (its vote for 3) but never got the no-op.
#[test]
fn a_server_restarted_between_its_log_sync_and_hard_state_save_can_still_be_elected() {
    use crate::core::{Entry, HardState, LogIndex, NodeId, Options, Raft, RaftLog, Role, Term};
    let entry = |term, index| Entry { term: Term(term), index: LogIndex(index), data: Vec::new() };
    let server = |id: u64, term: u64, vote: Option<u64>, log: Vec<Entry>| {
        let peers = [1, 2, 3].into_iter().filter(|&p| p != id).map(NodeId).collect();
        let hard_state = HardState { current_term: Term(term), voted_for: vote.map(NodeId), commit_index: LogIndex(1) };
        Raft::restore(Options::new(NodeId(id), peers, 10, 2, id), hard_state, RaftLog::from_entries(log))
    };
    let mut servers = [server(1, 1, None, vec![entry(1, 1), entry(3, 2)]), server(2, 3, Some(3), vec![entry(1, 1)])];
    for _ in 0..2000 {
        let mut mail = Vec::new();
        for (i, raft) in servers.iter_mut().enumerate() {
            raft.tick();
            while raft.has_ready() {
                let ready = raft.ready();
                mail.extend(ready.messages.into_iter().map(|out| (NodeId(i as u64 + 1), out)));
                raft.advance();
            }
        }
        for (from, out) in mail {
            if out.to.0 <= 2 {
                servers[out.to.0 as usize - 1].step(from, out.message);
            }
        }
        if servers.iter().any(|r| r.role() == Role::Leader) {
            return;
        }
    }
    let dropped: u64 = servers.iter().map(|r| r.ignored().invalid_total()).sum();
    panic!("no leader after 2,000 ticks; {dropped} messages dropped as invalid");
}

/// Runs of `seeds` with `options` (seed replaced), each required clean; their counts summed.
fn clean_runs(seeds: std::ops::RangeInclusive<u64>, options: SimOptions, check: impl Fn(&SimReport)) -> Counts {
    let mut total = Counts::default();
    for seed in seeds {
        let report = run_explained(&SimOptions { seed, ..options.clone() });
        assert!(report.violation.is_none(), "seed {seed}: {:?}\n{}", report.violation, report.trace_tail.join("\n"));
        check(&report);
        let c = report.counts;
        total.log_reads += c.log_reads;
        total.leader_reads += c.leader_reads;
        total.follower_reads += c.follower_reads;
        total.lease_reads += c.lease_reads;
        total.transfers += c.transfers;
        total.transfers_done += c.transfers_done;
        total.lease_cuts += c.lease_cuts;
    }
    total
}

/// With clocks within the assumption — at its extremes in about half the runs, where the lease
/// attack cuts a slow leader off right after it renewed its lease — lease reads are served and
/// every history stays linearizable: the drift margin holds.
#[test]
fn lease_reads_within_the_clock_bound_are_served_and_stay_linearizable() {
    let options =
        SimOptions { servers: 3, events: HUNT_EVENTS, lease_percent: 100, stability_percent: 0, ..SimOptions::new(0) };
    let extremes = std::cell::Cell::new(0);
    let total = clean_runs(1..=16, options, |r| {
        assert!(r.lease && r.clocks != Clocks::Wild, "seed {}: a lease run keeps to the clock bound", r.seed);
        if matches!(r.clocks, Clocks::Extremes { .. }) {
            extremes.set(extremes.get() + 1);
            assert!(r.counts.lease_cuts > 0, "seed {}: the attack ran: {:?}", r.seed, r.counts);
        }
    });
    eprintln!("lease runs: {total:?}, {} at the extremes", extremes.get());
    assert!(extremes.get() > 0, "some runs put the clocks at the bound's extremes");
    assert!(total.lease_reads > 100, "lease reads were served: {total:?}");
    assert!(total.lease_cuts > 10, "leaders holding a lease were cut off: {total:?}");
}

/// The planted lease without the drift margin (a lease as long as the minimum election timeout)
/// is caught by the linearizability check, and the same seed with the real lease is clean: the
/// margin is what makes the difference, not the run.
#[test]
fn a_lease_without_the_drift_margin_serves_a_stale_read_and_the_real_lease_does_not() {
    let bugs = crate::core::PlantedBugs { lease_without_drift_margin: true, ..crate::core::PlantedBugs::NONE };
    let (seed, violation) = seeds_to_find(bugs, 1000).expect("the planted lease bug is found");
    assert_eq!(violation.property, "linearizability", "seed {seed}: {}", violation.detail);
    let hunted = SimOptions {
        servers: 3,
        events: HUNT_EVENTS,
        lease_percent: 100,
        wild_clock_percent: 0,
        ..SimOptions::new(seed)
    };
    let fixed = run(&hunted);
    assert!(fixed.violation.is_none(), "seed {seed} without the bug: {:?}", fixed.violation);
    assert!(fixed.lease && fixed.counts.lease_cuts > 0 && fixed.counts.lease_reads > 0, "{:?}", fixed.counts);
}

/// Clocks far outside the assumption (0.5-2.0, no lease): ReadIndex reads, from the leader
/// and from followers, stay linearizable whatever the clocks do; a lease read falls back to
/// ReadIndex on a server without a lease.
#[test]
fn read_index_reads_stay_linearizable_when_clocks_run_wild() {
    let options = SimOptions {
        servers: 3,
        lease_percent: 0,
        wild_clock_percent: 100,
        stability_percent: 0,
        ..SimOptions::new(0)
    };
    let total = clean_runs(1..=30, options, |r| {
        assert_eq!((r.lease, r.clocks), (false, Clocks::Wild), "seed {}", r.seed);
        assert_eq!(r.counts.lease_reads, 0, "seed {}: no lease, no lease read", r.seed);
    });
    eprintln!("wild clocks: {total:?}");
    assert!(total.leader_reads > 20 && total.follower_reads > 20, "ReadIndex reads were served: {total:?}");
}

/// The default fault space (what `leader sim --seeds` sweeps) covers reads on every path and
/// leadership transfers, except in stability runs, which must keep their leader.
#[test]
fn the_fault_space_has_transfers_and_reads_on_every_path() {
    let total = clean_runs(1..=30, SimOptions::new(0), |r| {
        if r.clocks == Clocks::Wild {
            assert!(!r.lease, "seed {}: no lease reads with wild clocks", r.seed);
        }
    });
    eprintln!("default runs: {total:?}");
    assert!(total.log_reads > 0 && total.leader_reads > 0, "{total:?}");
    assert!(total.follower_reads > 0 && total.lease_reads > 0, "{total:?}");
    assert!(total.transfers > 0 && total.transfers_done > 0, "{total:?}");
    let stable = clean_runs(1..=5, SimOptions { stability_percent: 100, ..SimOptions::new(0) }, |_| {});
    assert_eq!((stable.transfers, stable.lease_cuts), (0, 0), "no transfer in a stability run");
}
