//! Configuration of one core ([`Options`]) and the bounds on what a message may claim.

use super::planted::PlantedBugs;
use super::types::{LogIndex, NodeId, Term};

/// The largest term a message may carry. Terms grow by one per election; 2^63 elections would
/// take longer than any cluster lives, so a term above this is forged or corrupt, and adopting
/// it (u64::MAX) would make the next election overflow.
pub const TERM_MAX: Term = Term(u64::MAX / 2);

/// The largest log index a snapshot may claim: a log grows one entry at a time, so 2^63 is
/// never reached; a snapshot claiming more is forged, and installing it would overflow the
/// index arithmetic that follows it.
pub const INDEX_MAX: LogIndex = LogIndex(u64::MAX / 2);

/// Configuration of one core. Time is in ticks; the runtime decides how long a tick is.
#[derive(Clone, Debug)]
pub struct Options {
    /// This server.
    pub id: NodeId,
    /// Every other voting server of the bootstrap membership (config.json's servers): the
    /// membership until the log or a snapshot holds one (thesis §4: membership lives in the log).
    pub peers: Vec<NodeId>,
    /// Base election timeout; the real one is drawn from `[election_ticks, 2 * election_ticks)`
    /// at every reset so that split votes are rare (§5.2).
    pub election_ticks: u32,
    /// Leader heartbeat interval; must be well below `election_ticks` (§5.6: broadcastTime ≪
    /// electionTimeout).
    pub heartbeat_ticks: u32,
    /// Seed of the core's PRNG: the same seed and inputs give the same outputs.
    pub seed: u64,
    /// A leader that has not heard from a majority for an election timeout steps down (thesis
    /// §6.2), so a partitioned leader stops claiming leadership instead of lingering.
    pub check_quorum: bool,
    /// Before raising its term, a would-be candidate asks whether it could win (thesis §9.6),
    /// so a server that was paused, restarted or cut off does not depose a healthy leader by
    /// coming back with a higher term.
    pub pre_vote: bool,
    /// A server that heard from a current leader within the minimum election timeout (or is
    /// the leader) ignores (pre-)votes for a later term (thesis §4.2.3): the leader is alive,
    /// so a vote request can only come from a server that lost touch with it.
    pub leader_stickiness: bool,
    /// Appends in flight per follower in Replicate state: bounds the leader's buffering per
    /// follower while keeping the pipe full over a round trip plus a follower fsync.
    pub in_flight_max: usize,
    /// Entries per AppendEntries: bounds the message size and the follower's work per message.
    pub entries_per_message_max: usize,
    /// Data bytes per AppendEntries (at least one entry is always sent); keep well below the
    /// transport's envelope limit.
    pub bytes_per_message_max: usize,
    /// Committed entries handed out per `Ready`, so a long replay after restart does not
    /// stall the loop.
    pub committed_per_ready_max: usize,
    /// Send a round of leadership checks with every heartbeat, not only when reads wait for
    /// one: what keeps a lease (§6.4.1) renewed for lease reads.
    pub leader_check_every_heartbeat: bool,
    /// This server is not in the bootstrap membership (`peers` are the cluster it joins): it
    /// never campaigns and waits to be added as a learner (thesis §4.2.1).
    pub joining: bool,
    /// Peer and client urls of the bootstrap servers (config.json's), recorded in the first
    /// membership entry so that servers added later learn where everyone is from the log.
    pub urls: std::collections::BTreeMap<NodeId, (String, String)>,
    /// A learner added with `promote` is made a voter once its log is within this many entries
    /// of the leader's.
    pub promote_lag: u64,
    /// Known bugs to plant (simulator tests only; inert outside test builds).
    pub planted: PlantedBugs,
}

impl Options {
    /// Defaults for everything but identity and timing.
    pub fn new(id: NodeId, peers: Vec<NodeId>, election_ticks: u32, heartbeat_ticks: u32, seed: u64) -> Self {
        Options {
            id,
            peers,
            election_ticks,
            heartbeat_ticks,
            seed,
            check_quorum: true,
            pre_vote: true,
            leader_stickiness: true,
            in_flight_max: 64,
            entries_per_message_max: 4096,
            bytes_per_message_max: 512 << 10,
            committed_per_ready_max: 8192,
            leader_check_every_heartbeat: false,
            joining: false,
            urls: std::collections::BTreeMap::new(),
            promote_lag: 1000,
            planted: PlantedBugs::NONE,
        }
    }
}
