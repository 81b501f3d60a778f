//! What one server counts about itself for operators: elections, proposals, commits, messages
//! by type, snapshots, fsync and append round-trip latencies, and when each peer was last
//! heard from. The runtime and writer threads write (atomics, and the histograms' own short
//! locks); `leader status --verbose` and the metrics endpoint (metrics.rs) read at any time
//! without ever waiting for the loop.
//!
//! Everything here is timed on the node's real clock and lives in node/ only: the driver and
//! the core, shared with the deterministic simulator, read no clock for it.

use crate::core::{AppendEntries, AppendEntriesResponse, LogIndex, Message, NodeId, Role, SoftState, Term};
use crate::transport::Body;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Names of the message types counted in and out, indexed by [`message_kind`]: the peer
/// protocol's Raft messages (docs/wire.md) and application messages.
pub(crate) const MESSAGE_KINDS: [&str; 15] = [
    "request_vote",
    "request_vote_response",
    "append_entries",
    "append_entries_response",
    "pre_vote",
    "pre_vote_response",
    "install_snapshot",
    "install_snapshot_response",
    "timeout_now",
    "transfer_vote",
    "leader_check",
    "leader_check_response",
    "read_index",
    "read_index_response",
    "app",
];

/// Index of `body`'s type in [`MESSAGE_KINDS`]. Exhaustive on purpose: a new message type
/// does not compile until it has a name here.
pub(crate) fn message_kind(body: &Body) -> usize {
    let Body::Raft(message) = body else { return 14 };
    match message {
        Message::RequestVote(_) => 0,
        Message::RequestVoteResponse(_) => 1,
        Message::AppendEntries(_) => 2,
        Message::AppendEntriesResponse(_) => 3,
        Message::PreVote(_) => 4,
        Message::PreVoteResponse(_) => 5,
        Message::InstallSnapshot(_) => 6,
        Message::InstallSnapshotResponse(_) => 7,
        Message::TimeoutNow(_) => 8,
        Message::TransferVote(_) => 9,
        Message::LeaderCheck(_) => 10,
        Message::LeaderCheckResponse(_) => 11,
        Message::ReadIndex(_) => 12,
        Message::ReadIndexResponse(_) => 13,
    }
}

/// Latency buckets in seconds, 100 µs to about 3.3 s doubling: a fast SSD's fdatasync and a
/// loopback round trip land in the first buckets, a slow disk or a loaded machine in the last.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 16))
}

/// The last published role and term, and the last leader known with the term it led.
type Published = (Role, Term, Option<(NodeId, Term)>);

/// One server's counters (see the module docs). Held by the node's `Shared` as `stats`.
#[derive(Debug)]
pub(crate) struct Stats {
    /// What the contact times count from.
    epoch: Instant,
    /// Per peer: nanoseconds since `epoch`, plus one, when an envelope from it last passed
    /// authentication and decoding; 0: never. config.json's servers, fixed at start (no lock).
    contact: Vec<(NodeId, AtomicU64)>,
    /// The same for other senders the runtime accepts: members added at runtime that
    /// config.json does not list (rare, so a lock is fine).
    contact_added: Mutex<std::collections::BTreeMap<NodeId, u64>>,
    /// Proposals handed to the driver (as it counts them: clients and `Server::propose`).
    pub(crate) proposals: AtomicU64,
    /// Log entries this server learned committed since it started (commit index advances).
    pub(crate) entries_committed: AtomicU64,
    /// The core's own counts (`Raft::elections`), copied when the status is published.
    pub(crate) elections_started: AtomicU64,
    pub(crate) elections_won: AtomicU64,
    leader_changes: AtomicU64,
    /// Snapshots this server took (image written), installed (from a leader), sent (transfers
    /// begun: an InstallSnapshot at offset 0).
    pub(crate) snapshots_taken: AtomicU64,
    pub(crate) snapshots_installed: AtomicU64,
    pub(crate) snapshots_sent: AtomicU64,
    /// Peer messages received (authenticated, decoded, not blocked) and sent, by type.
    messages_in: [AtomicU64; MESSAGE_KINDS.len()],
    messages_out: [AtomicU64; MESSAGE_KINDS.len()],
    /// Seconds each storage sync (fdatasync of the log) took, on the writer thread.
    pub(crate) fsync_seconds: Histogram,
    /// Leader: seconds from an AppendEntries sent to its acknowledgement.
    pub(crate) append_round_trip_seconds: Histogram,
    /// The last published role and term, and the last leader known with its term: the
    /// election counters are changes between them. Written by the loop thread only.
    last: Mutex<Published>,
}

impl Stats {
    /// Counters of a server with these peers, starting in `term` as a follower.
    pub(crate) fn new(peers: &[NodeId], term: Term) -> Stats {
        Stats {
            epoch: Instant::now(),
            contact: peers.iter().map(|p| (*p, AtomicU64::new(0))).collect(),
            contact_added: Mutex::new(std::collections::BTreeMap::new()),
            proposals: AtomicU64::new(0),
            entries_committed: AtomicU64::new(0),
            elections_started: AtomicU64::new(0),
            elections_won: AtomicU64::new(0),
            leader_changes: AtomicU64::new(0),
            snapshots_taken: AtomicU64::new(0),
            snapshots_installed: AtomicU64::new(0),
            snapshots_sent: AtomicU64::new(0),
            messages_in: std::array::from_fn(|_| AtomicU64::new(0)),
            messages_out: std::array::from_fn(|_| AtomicU64::new(0)),
            fsync_seconds: latency_buckets(),
            append_round_trip_seconds: latency_buckets(),
            last: Mutex::new((Role::Follower, term, None)),
        }
    }

    /// Time since an envelope from each peer last passed authentication and decoding, in pid
    /// order; peers never heard from are absent.
    pub(crate) fn last_contact(&self) -> Vec<(NodeId, Duration)> {
        let now = self.epoch.elapsed();
        let added = self.contact_added.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut all: Vec<(NodeId, u64)> =
            self.contact.iter().map(|(peer, at)| (*peer, at.load(Ordering::Relaxed))).chain(added).collect();
        all.sort_unstable();
        all.into_iter()
            .filter_map(|(peer, at)| match at {
                0 => None,
                at => Some((peer, now.saturating_sub(Duration::from_nanos(at - 1)))),
            })
            .collect()
    }

    /// Elections (started, won) by this server since it started, as its core counts them
    /// (`Raft::elections`), as of the last published status.
    pub(crate) fn elections(&self) -> (u64, u64) {
        (self.elections_started.load(Ordering::Relaxed), self.elections_won.load(Ordering::Relaxed))
    }

    /// Leader changes seen: how often this server learned of a leader other than the last one
    /// it knew (another server, or the same one in a new term).
    pub(crate) fn leader_changes(&self) -> u64 {
        self.leader_changes.load(Ordering::Relaxed)
    }

    /// An envelope from `peer` passed authentication and decoding, carrying `body`.
    pub(crate) fn received(&self, peer: NodeId, body: &Body) {
        self.messages_in[message_kind(body)].fetch_add(1, Ordering::Relaxed);
        // +1: 0 means never (and the epoch itself is a possible contact time).
        let nanos = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1;
        match self.contact.iter().find(|(p, _)| *p == peer) {
            Some((_, at)) => at.store(nanos, Ordering::Relaxed),
            None => drop(self.contact_added.lock().unwrap_or_else(|e| e.into_inner()).insert(peer, nanos)),
        }
    }

    /// `body` was handed to the transport for a peer.
    pub(crate) fn sent(&self, body: &Body) {
        self.messages_out[message_kind(body)].fetch_add(1, Ordering::Relaxed);
        if let Body::Raft(Message::InstallSnapshot(m)) = body {
            if m.offset == 0 {
                self.snapshots_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Messages (received, sent) of each type, in [`MESSAGE_KINDS`] order.
    pub(crate) fn messages(&self) -> Vec<(&'static str, u64, u64)> {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        (0..MESSAGE_KINDS.len())
            .map(|i| (MESSAGE_KINDS[i], load(&self.messages_in[i]), load(&self.messages_out[i])))
            .collect()
    }

    /// The server published a role change (`Io::soft_state`): count leader changes.
    pub(crate) fn role_published(&self, soft: SoftState) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let (_, _, mut known) = *last;
        if let Some(leader) = soft.leader_id {
            if known != Some((leader, soft.term)) {
                self.leader_changes.fetch_add(1, Ordering::Relaxed);
                known = Some((leader, soft.term));
            }
        }
        *last = (soft.role, soft.term, known);
    }
}

/// Outstanding AppendEntries per peer at most: a follower that stopped answering must not
/// make the leader's timer grow without bound.
const APPENDS_TRACKED_MAX: usize = 256;

/// The leader's AppendEntries round-trip timer (loop thread only). Each append is keyed by the
/// index a success would acknowledge (`prev_log_index + entries`); the first send of a key
/// starts its clock, the success acknowledging exactly that index stops it, and any success
/// forgets every key at or below its index (lost or superseded appends are never measured
/// against a later answer). Keyed by index rather than matched in order, a lost message costs
/// a sample, never a wrong one.
#[derive(Debug, Default)]
pub(crate) struct AppendTimer {
    sent: BTreeMap<NodeId, BTreeMap<LogIndex, Instant>>,
}

impl AppendTimer {
    /// An AppendEntries left for `to` at `now`.
    pub(crate) fn sent(&mut self, to: NodeId, m: &AppendEntries, now: Instant) {
        let key = LogIndex(m.prev_log_index.0.saturating_add(m.entries.len() as u64));
        let outstanding = self.sent.entry(to).or_default();
        outstanding.entry(key).or_insert(now);
        if outstanding.len() > APPENDS_TRACKED_MAX {
            outstanding.pop_first();
        }
    }

    /// An AppendEntriesResponse from `from` arrived at `now`: the round trip it completes.
    pub(crate) fn answered(&mut self, from: NodeId, m: &AppendEntriesResponse, now: Instant) -> Option<Duration> {
        let outstanding = self.sent.get_mut(&from)?;
        if !m.success {
            // The leader backs off and resends from elsewhere: what was in flight is moot.
            outstanding.clear();
            return None;
        }
        let started = outstanding.get(&m.match_index).copied();
        let later = outstanding.split_off(&LogIndex(m.match_index.0.saturating_add(1)));
        *outstanding = later;
        started.map(|at| now.saturating_duration_since(at))
    }

    /// The server stopped leading: nothing in flight is its to measure any more.
    pub(crate) fn clear(&mut self) {
        self.sent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Entry;

    fn append(prev: u64, entries: u64) -> AppendEntries {
        let entries =
            (1..=entries).map(|i| Entry { term: Term(1), index: LogIndex(prev + i), data: vec![1] }).collect();
        AppendEntries {
            term: Term(1),
            leader_id: NodeId(1),
            prev_log_index: LogIndex(prev),
            prev_log_term: Term(1),
            entries,
            leader_commit: LogIndex(0),
        }
    }

    fn ack(match_index: u64, success: bool) -> AppendEntriesResponse {
        AppendEntriesResponse {
            term: Term(1),
            success,
            match_index: LogIndex(match_index),
            conflict_index: LogIndex(0),
            conflict_term: Term(0),
        }
    }

    #[test]
    fn an_append_is_timed_from_its_first_send_to_the_ack_of_its_index() {
        let mut timer = AppendTimer::default();
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        timer.sent(NodeId(2), &append(0, 3), t0);
        timer.sent(NodeId(2), &append(0, 3), ms(5)); // a resend keeps the first send's clock
        timer.sent(NodeId(2), &append(3, 2), ms(6));
        assert_eq!(timer.answered(NodeId(3), &ack(3, true), ms(7)), None, "another peer's ack");
        assert_eq!(timer.answered(NodeId(2), &ack(3, true), ms(10)), Some(Duration::from_millis(10)));
        assert_eq!(timer.answered(NodeId(2), &ack(3, true), ms(11)), None, "the resend's ack is not a sample");
        assert_eq!(timer.answered(NodeId(2), &ack(5, true), ms(12)), Some(Duration::from_millis(6)));
    }

    #[test]
    fn a_lost_append_is_never_measured_against_a_later_answer() {
        let mut timer = AppendTimer::default();
        let t0 = Instant::now();
        timer.sent(NodeId(2), &append(0, 1), t0); // lost
        timer.sent(NodeId(2), &append(0, 2), t0 + Duration::from_millis(50));
        let rtt = timer.answered(NodeId(2), &ack(2, true), t0 + Duration::from_millis(51));
        assert_eq!(rtt, Some(Duration::from_millis(1)));
        assert_eq!(timer.answered(NodeId(2), &ack(1, true), t0 + Duration::from_millis(52)), None);
        // A rejection forgets what was in flight to that peer.
        timer.sent(NodeId(2), &append(2, 1), t0);
        assert_eq!(timer.answered(NodeId(2), &ack(2, false), t0), None);
        assert_eq!(timer.answered(NodeId(2), &ack(3, true), t0), None);
        for i in 0..1000 {
            timer.sent(NodeId(2), &append(i, 1), t0);
        }
        assert_eq!(timer.sent[&NodeId(2)].len(), APPENDS_TRACKED_MAX, "bounded");
    }

    #[test]
    fn leader_changes_are_counted_from_published_role_changes() {
        let stats = Stats::new(&[NodeId(2), NodeId(3)], Term(4));
        let soft =
            |role, term, leader: Option<u64>| SoftState { role, term: Term(term), leader_id: leader.map(NodeId) };
        stats.role_published(soft(Role::Follower, 4, Some(2)));
        stats.role_published(soft(Role::Follower, 4, None)); // pre-vote: leader forgotten
        stats.role_published(soft(Role::Follower, 4, Some(2))); // the same leader again
        assert_eq!(stats.leader_changes(), 1);
        stats.role_published(soft(Role::Candidate, 5, None));
        stats.role_published(soft(Role::Candidate, 6, None)); // lost, tried again
        stats.role_published(soft(Role::Leader, 6, Some(1)));
        assert_eq!(stats.leader_changes(), 2);
        stats.role_published(soft(Role::Follower, 7, Some(3)));
        stats.role_published(soft(Role::Leader, 8, Some(1))); // a cluster of one: never a candidate
        assert_eq!(stats.leader_changes(), 4);
    }

    #[test]
    fn last_contact_lists_every_peer_heard_from_and_only_those() {
        let stats = Stats::new(&[NodeId(2), NodeId(3)], Term(0));
        assert!(stats.last_contact().is_empty());
        let body = Body::Raft(Message::AppendEntriesResponse(ack(0, true)));
        stats.received(NodeId(3), &body);
        // A sender config.json does not list (a member added at runtime: the runtime accepts
        // only members and config.json's servers) is tracked too.
        stats.received(NodeId(9), &body);
        let contact = stats.last_contact();
        assert_eq!(contact.iter().map(|(p, _)| *p).collect::<Vec<_>>(), [NodeId(3), NodeId(9)], "2 never heard");
        assert!(contact.iter().all(|(_, ago)| *ago < Duration::from_secs(5)));
        let in_out: Vec<_> = stats.messages().into_iter().filter(|(_, i, o)| i + o > 0).collect();
        assert_eq!(in_out, [("append_entries_response", 2, 0)]);
    }
}
