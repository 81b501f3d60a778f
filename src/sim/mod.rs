//! Deterministic simulation: N real cores over a simulated network and simulated disks, in
//! virtual time, driven by one seeded PRNG — a seed in, the same run out (FoundationDB- and
//! TigerBeetle-style). Faults: message drop, duplication, reordering and delay; symmetric,
//! asymmetric and partial partitions; crashes that lose every unsynced write (torn writes,
//! and crashes between the log sync and the hard-state save); process pauses (inputs queue up
//! and are handled at resume); leadership transfers. Every server's clock runs at a rate of its
//! own (within the lease's clock assumption, at its extremes, or — in runs without lease reads —
//! far outside it). Clients read through the log, with ReadIndex on the leader, from
//! followers, and in lease runs with leases; a targeted fault cuts a leader with a slow clock
//! off right after it renewed its lease. Some seeds are stability runs: only one follower at a
//! time is faulted, and the stable leader must never be deposed. In membership runs, servers
//! outside the bootstrap membership wait to be added, and a nemesis changes the membership
//! through the leader's driver (adds learners, promotes, removes followers and the leader,
//! re-adds a removed server with a wiped disk); removed servers stop ([`world`]'s membership
//! nemesis).
//! Safety properties are checked after every event ([`checker`]); client histories are checked
//! for linearizability at the end ([`linearizability`]); then faults stop and the cluster must
//! make progress within a bounded virtual time (liveness).

pub mod checker;
mod events;
pub mod linearizability;
mod node;
mod view;
mod world;

use crate::core::PlantedBugs;
pub use checker::Violation;
pub use world::Clocks;

/// One simulation run's settings.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// The seed: everything in the run follows from it.
    pub seed: u64,
    /// Number of servers (3, 5, 7, …).
    pub servers: usize,
    /// Events to run with faults on; then faults stop and liveness is checked.
    pub events: u64,
    /// Inject faults (off: a healthy network, to measure or debug).
    pub faults: bool,
    /// Simulated clients issuing key-value operations.
    pub clients: usize,
    /// Known bugs to plant (test builds only).
    pub bugs: PlantedBugs,
    /// Keep the last events as text (for a failure report).
    pub keep_trace: bool,
    /// Percent of seeds (with faults) run as stability runs: only pauses, crash-restarts and
    /// partitions of a single follower at a time, no message loss, and the stable leader
    /// must never change (see [`checker::Checker::with_stability`]). 0: never; 100: always.
    pub stability_percent: u64,
    /// Percent of seeds with lease reads on (every server's driver holds a lease and leaders
    /// check leadership every heartbeat); clocks then keep to the assumption.
    pub lease_percent: u64,
    /// Percent of the other seeds (no lease, not stability runs) whose clocks run far outside
    /// the assumption (rates 0.5–2.0).
    pub wild_clock_percent: u64,
    /// Percent of the chaos seeds (not stability runs, not lease attacks) that change the
    /// membership: one or two servers start outside it, waiting to be added, and the
    /// membership nemesis adds, promotes and removes servers. A seed without membership
    /// changes runs exactly as it did before they existed (the choices come from a stream of
    /// their own).
    pub membership_percent: u64,
}

impl SimOptions {
    /// The defaults CI uses: 5 servers, 2,000 events, all faults, 3 clients, a quarter of
    /// the seeds stability runs.
    pub fn new(seed: u64) -> Self {
        SimOptions {
            seed,
            servers: 5,
            events: 2000,
            faults: true,
            clients: 3,
            bugs: PlantedBugs::NONE,
            keep_trace: false,
            stability_percent: 25,
            lease_percent: 50,
            wild_clock_percent: 30,
            membership_percent: 50,
        }
    }
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// Events processed (fault phase and liveness phase).
    pub events: u64,
    /// Virtual time at the end (ms).
    pub virtual_ms: u64,
    /// Hash of every event: equal for two runs of one seed.
    pub trace_hash: u64,
    /// The first property violated, if any.
    pub violation: Option<Violation>,
    /// The last events, as text (with `keep_trace`).
    pub trace_tail: Vec<String>,
    /// Client operations acknowledged.
    pub ops_completed: usize,
    /// Client operations whose outcome stayed unknown (timed out).
    pub ops_indeterminate: usize,
    /// Terms that had a leader.
    pub leader_terms: usize,
    /// Highest committed index.
    pub committed: u64,
    /// Lease reads were on.
    pub lease: bool,
    /// What the clocks did.
    pub clocks: Clocks,
    /// What happened, counted.
    pub counts: Counts,
    /// The run changed the membership.
    pub membership: bool,
}

/// Counts of what a run did, so tests can show the fault space covers it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Gets acknowledged through the log.
    pub log_reads: u64,
    /// ReadIndex reads acknowledged, asked of the leader.
    pub leader_reads: u64,
    /// Reads answered by a follower (it asked the leader for the read index).
    pub follower_reads: u64,
    /// Reads the leader answered from its lease.
    pub lease_reads: u64,
    /// Leadership transfers started (the nemesis asked the leader to hand over).
    pub transfers: u64,
    /// Transfers whose target won the next term.
    pub transfers_done: u64,
    /// Lease attacks: a leader with a slow clock cut off right after it renewed its lease.
    pub lease_cuts: u64,
    /// What the membership nemesis did and what the core answered.
    pub membership: MembershipCounts,
}

impl Counts {
    /// Add `other`'s counts to these.
    pub fn add(&mut self, other: &Counts) {
        self.log_reads += other.log_reads;
        self.leader_reads += other.leader_reads;
        self.follower_reads += other.follower_reads;
        self.lease_reads += other.lease_reads;
        self.transfers += other.transfers;
        self.transfers_done += other.transfers_done;
        self.lease_cuts += other.lease_cuts;
        self.membership.add(&other.membership);
    }
}

/// Membership changes asked of leaders, by outcome. A refusal is counted by the reason the
/// core gave (`MembershipError`, through the driver's answer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MembershipCounts {
    /// Changes the leader took (its entry appended).
    pub proposed: u64,
    /// Of those, answered once applied.
    pub applied: u64,
    /// Of those, lost with the leader's term (answered Dropped: the entry may or may not stay).
    pub lost: u64,
    /// Learners promoted by the leader itself once caught up (seen in the log).
    pub auto_promoted: u64,
    /// Refused: the previous change was not committed yet (§4.1: one at a time).
    pub refused_in_flight: u64,
    /// Refused: a new leader had not committed an entry of its term yet (§4.1's fix).
    pub refused_own_commit: u64,
    /// Refused: too few live voters after the change.
    pub refused_live_quorum: u64,
    /// Refused: a leadership transfer was in progress.
    pub refused_transfer: u64,
    /// Refused: the server asked was no longer the leader.
    pub refused_not_leader: u64,
    /// Refused otherwise (a member already, not a member, the last voter).
    pub refused_other: u64,
    /// Removed servers that saw their removal committed and stopped.
    pub stopped: u64,
    /// Removed servers whose disk was wiped and that were added again.
    pub wiped: u64,
}

impl MembershipCounts {
    /// Add `other`'s counts to these.
    pub fn add(&mut self, other: &MembershipCounts) {
        self.proposed += other.proposed;
        self.applied += other.applied;
        self.lost += other.lost;
        self.auto_promoted += other.auto_promoted;
        self.refused_in_flight += other.refused_in_flight;
        self.refused_own_commit += other.refused_own_commit;
        self.refused_live_quorum += other.refused_live_quorum;
        self.refused_transfer += other.refused_transfer;
        self.refused_not_leader += other.refused_not_leader;
        self.refused_other += other.refused_other;
        self.stopped += other.stopped;
        self.wiped += other.wiped;
    }

    /// Every refusal.
    pub fn refused(&self) -> u64 {
        self.refused_in_flight
            + self.refused_own_commit
            + self.refused_live_quorum
            + self.refused_transfer
            + self.refused_not_leader
            + self.refused_other
    }
}

/// Run one seed. A panic inside the core (a broken assertion) is reported as a violation.
pub fn run(options: &SimOptions) -> SimReport {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| world::World::new(options.clone()).run()));
    outcome.unwrap_or_else(|panic| {
        let text = crate::panic_text(panic.as_ref());
        SimReport {
            seed: options.seed,
            events: 0,
            virtual_ms: 0,
            trace_hash: 0,
            violation: Some(Violation { property: "core invariants (assertion)", detail: text }),
            trace_tail: Vec::new(),
            ops_completed: 0,
            ops_indeterminate: 0,
            leader_terms: 0,
            committed: 0,
            lease: false,
            clocks: Clocks::Within,
            counts: Counts::default(),
            membership: false,
        }
    })
}

/// Run one seed; if it fails, run it again keeping the trace (the run is deterministic, so
/// the second run fails the same way) and return that report.
pub fn run_explained(options: &SimOptions) -> SimReport {
    let report = run(options);
    if report.violation.is_none() || options.keep_trace {
        return report;
    }
    run(&SimOptions { keep_trace: true, ..options.clone() })
}

#[cfg(test)]
mod tests;
