//! Per-run choices about time and reads: each server's clock rate, whether lease reads are on,
//! and whether the run attacks the lease ([`super::attack`]). Drawn from a stream of their own,
//! so they do not shift the other random choices of a seed.
//!
//! The clock assumption lease reads rest on (README, "Reads"): every server's clock runs at a
//! rate within [1 − ρ, 1 + ρ] of real time, ρ = [`CLOCK_DRIFT_MAX`]. Lease runs keep to it —
//! in some, at its extremes on purpose (one slow server, every other fast: the worst case for a
//! lease held by the slow one). *Wild* runs break it (rates 0.5–2.0) and serve no lease reads:
//! ReadIndex must stay linearizable whatever the clocks do.

use super::{ELECTION_TICKS, TICK_MS};
use crate::core::{NodeId, SplitMix64};
use crate::driver::{Lease, CLOCK_DRIFT_MAX};
use crate::sim::events::Time;
use crate::sim::node::Clock;
use crate::sim::SimOptions;
use std::time::Duration;

/// How the clocks of a run behave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clocks {
    /// Every rate drawn within the assumption.
    Within,
    /// Within the assumption, at its extremes: `slow` runs at 1 − ρ, every other at 1 + ρ.
    Extremes {
        /// The slow server.
        slow: NodeId,
    },
    /// Far outside the assumption (0.5–2.0): no lease reads in such a run.
    Wild,
}

/// The time-related choices of one run.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Lease reads are served (every driver has a lease; leaders check every heartbeat).
    pub lease: bool,
    /// What the clocks do.
    pub clocks: Clocks,
    /// Each server's clock (server `i + 1` at `i`).
    pub clock: Vec<Clock>,
    /// The run attacks the slow server's lease: transfers leadership to it and cuts it off
    /// right after it renewed its lease (lease runs at the extremes, not stability runs).
    pub attack: bool,
    /// Base election timeout, in ticks.
    pub election_ticks: u32,
}

/// Election timeout of attack runs, in ticks: a lease's drift margin is 18 % of the minimum
/// election timeout, and electing a leader and committing a write take a few round trips and
/// fsyncs (about 10-20 ms here). With the default timeout (100 ms) the margin is barely
/// longer than that, so a lease without it would almost never be caught; with 300 ms (a LAN
/// whose round trips are far below the timeout, as in most deployments) the margin is what
/// stands between the lease and a new leader's first acknowledged write.
const ATTACK_ELECTION_TICKS: u32 = 3 * ELECTION_TICKS;

/// The lease the simulated servers hold: a voter refuses other candidates for
/// `election_ticks` of its ticks after the leader's last contact, and that contact may come
/// just before a tick, so for at least `election_ticks − 1` ticks of its clock.
pub fn lease(election_ticks: u32) -> Lease {
    Lease { election_min: Duration::from_millis((Time::from(election_ticks) - 1) * TICK_MS) }
}

impl Profile {
    /// The choices for a run of `opts` (`stability`: it is a stability run).
    pub fn draw(opts: &SimOptions, stability: bool) -> Profile {
        let mut rng = SplitMix64::new(opts.seed ^ 0xc10c_4a7e_5eed);
        let n = opts.servers as u64;
        let lease = rng.range(0, 100) < opts.lease_percent;
        // Clocks far off would make a stability run's leader lose its followers (heartbeats
        // slower than their timeouts): that is not the property such a run checks.
        let wild = !lease && !stability && rng.range(0, 100) < opts.wild_clock_percent;
        let extremes = lease && n > 1 && rng.range(0, 2) == 0;
        let clocks = if wild {
            Clocks::Wild
        } else if extremes {
            Clocks::Extremes { slow: NodeId(rng.range(1, n + 1)) }
        } else {
            Clocks::Within
        };
        let clock = (1..=n)
            .map(|id| {
                let rate = match clocks {
                    // Log-uniform: as many runs with a clock at half speed as at double.
                    Clocks::Wild => 2f64.powf(rng.range(0, 2001) as f64 / 1000.0 - 1.0),
                    Clocks::Extremes { slow } if slow == NodeId(id) => 1.0 - CLOCK_DRIFT_MAX,
                    Clocks::Extremes { .. } => 1.0 + CLOCK_DRIFT_MAX,
                    Clocks::Within => 1.0 + CLOCK_DRIFT_MAX * (rng.range(0, 2001) as f64 / 1000.0 - 1.0),
                };
                Clock { rate, offset_ms: rng.range(0, 1 << 40) as f64 }
            })
            .collect();
        let attack = extremes && opts.faults && !stability;
        let election_ticks = if attack { ATTACK_ELECTION_TICKS } else { ELECTION_TICKS };
        Profile { lease, clocks, clock, attack, election_ticks }
    }

    /// A clock for one more server (a server outside the bootstrap membership), drawn from
    /// `rng` as the run's clocks are: wild in a wild run, fast at the extremes, else within.
    pub fn add_clock(&mut self, rng: &mut SplitMix64) {
        let rate = match self.clocks {
            Clocks::Wild => 2f64.powf(rng.range(0, 2001) as f64 / 1000.0 - 1.0),
            Clocks::Extremes { .. } => 1.0 + CLOCK_DRIFT_MAX,
            Clocks::Within => 1.0 + CLOCK_DRIFT_MAX * (rng.range(0, 2001) as f64 / 1000.0 - 1.0),
        };
        self.clock.push(Clock { rate, offset_ms: rng.range(0, 1 << 40) as f64 });
    }

    /// Virtual time of the tick after one at `at` of server `id`: a tick every `TICK_MS` of its
    /// own clock. Exact (f64); the event is scheduled at the next whole millisecond, never
    /// earlier — a timer fires late, not early.
    pub fn next_tick(&self, id: NodeId, at: f64) -> f64 {
        at + TICK_MS as f64 / self.clock[id.0 as usize - 1].rate
    }
}
