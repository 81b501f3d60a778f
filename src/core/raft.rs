//! The Raft state machine for one server: roles, terms, elections, heartbeats (§5.1–§5.2).
//!
//! Sans-IO: inputs are [`Raft::tick`] and [`Raft::step`]; the output is a [`Ready`] taken with
//! [`Raft::ready`]. Control flow lives in `step` (term rules once, then dispatch on message);
//! `become_*` mutate the role, `handle_*` answer one message, `send_*` queue messages.

use super::message::{
    AppendEntries, AppendEntriesResponse, Message, Outgoing, RequestVote, RequestVoteResponse,
};
use super::raft_log::RaftLog;
use super::rng::SplitMix64;
use super::types::{HardState, LogIndex, NodeId, Term};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// The three roles of Figure 4. On the wire (client status) as a bincode enum tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Passive: answers leaders and candidates.
    Follower,
    /// Campaigning for votes in its current term.
    Candidate,
    /// Sends heartbeats and (later) replicates the log.
    Leader,
}

impl Role {
    /// Lower-case name used by the CLI, logs and the client protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Configuration of one core. Time is in ticks; the runtime decides how long a tick is.
#[derive(Clone, Debug)]
pub struct Options {
    /// This server.
    pub id: NodeId,
    /// Every other voting server of the cluster.
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
}

/// Volatile facts the runtime shows to users; reported in [`Ready`] when they change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftState {
    /// Current role.
    pub role: Role,
    /// Current term.
    pub term: Term,
    /// The leader this server knows of in `term`, if any.
    pub leader_id: Option<NodeId>,
}

/// Everything the runtime must do after a batch of inputs.
///
/// Handling order (DESIGN.md, Raft thesis §3.8), all of it before calling into the core again:
/// 1. persist `hard_state` if present, with an fsync when `must_sync`;
/// 2. send `messages` — they may promise what step 1 made durable (a vote), so never before;
/// 3. publish `soft_state` (status, logs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// New hard state to persist, present only when it changed.
    pub hard_state: Option<HardState>,
    /// True when step 1 must reach stable storage before step 2.
    pub must_sync: bool,
    /// Messages to send, in order.
    pub messages: Vec<Outgoing>,
    /// New soft state, present only when it changed.
    pub soft_state: Option<SoftState>,
}

impl Ready {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none() && self.messages.is_empty() && self.soft_state.is_none()
    }
}

/// Inputs the core ignored on purpose, by reason (expected conditions are counted, not panics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ignored {
    /// Messages from a server that is not a peer.
    pub unknown_peer: u64,
    /// Responses carrying an older term than ours (§5.1: stale).
    pub stale_term: u64,
    /// AppendEntries carrying entries: log replication is not supported by this version.
    pub unsupported_entries: u64,
    /// AppendEntries from another "leader" of our own term while we lead: only a faulty or
    /// forged peer can send it (Election Safety, §5.2).
    pub conflicting_leader: u64,
}

/// One Raft server's protocol state.
#[derive(Debug)]
pub struct Raft {
    id: NodeId,
    peers: Vec<NodeId>,
    role: Role,
    current_term: Term,
    voted_for: Option<NodeId>,
    commit_index: LogIndex,
    leader_id: Option<NodeId>,
    log: RaftLog,
    election_ticks: u32,
    heartbeat_ticks: u32,
    check_quorum: bool,
    /// Ticks since the last reset of the election timer (or, on a leader, of the quorum check).
    election_elapsed: u32,
    heartbeat_elapsed: u32,
    randomized_election_timeout: u32,
    /// Candidate: servers that granted their vote in `current_term`, self included.
    votes_granted: BTreeSet<NodeId>,
    /// Leader: peers heard from since the last quorum check.
    recent_active: BTreeSet<NodeId>,
    rng: SplitMix64,
    messages: Vec<Outgoing>,
    persisted: HardState,
    published: SoftState,
    ignored: Ignored,
    /// The vote of each term seen by the invariant checker; one vote per term (§5.2).
    #[cfg(any(test, debug_assertions))]
    vote_seen: Option<(Term, NodeId)>,
}

impl Raft {
    /// A core starting as follower from the hard state persisted before a crash (or default),
    /// with an empty log.
    pub fn new(options: Options, hard_state: HardState) -> Self {
        Self::restore(options, hard_state, RaftLog::default())
    }

    /// A core restarting from persisted hard state and log.
    pub fn restore(options: Options, hard_state: HardState, log: RaftLog) -> Self {
        assert!(
            options.election_ticks >= 2,
            "election_ticks must be at least 2"
        );
        assert!(
            options.heartbeat_ticks >= 1,
            "heartbeat_ticks must be at least 1"
        );
        assert!(
            !options.peers.contains(&options.id),
            "peers must not contain self"
        );
        let mut peers = options.peers;
        peers.sort();
        peers.dedup();
        let soft = SoftState {
            role: Role::Follower,
            term: hard_state.current_term,
            leader_id: None,
        };
        let mut raft = Raft {
            id: options.id,
            peers,
            role: Role::Follower,
            current_term: hard_state.current_term,
            voted_for: hard_state.voted_for,
            commit_index: hard_state.commit_index,
            leader_id: None,
            log,
            election_ticks: options.election_ticks,
            heartbeat_ticks: options.heartbeat_ticks,
            check_quorum: options.check_quorum,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_timeout: options.election_ticks,
            votes_granted: BTreeSet::new(),
            recent_active: BTreeSet::new(),
            rng: SplitMix64::new(options.seed),
            messages: Vec::new(),
            persisted: hard_state,
            published: soft,
            ignored: Ignored::default(),
            #[cfg(any(test, debug_assertions))]
            vote_seen: hard_state.voted_for.map(|v| (hard_state.current_term, v)),
        };
        // The commit hint may be ahead of a log that lost an unsynced tail; never overstate it.
        raft.commit_index = raft.commit_index.min(raft.log.last_index());
        raft.reset_election_timer();
        raft.assert_invariants();
        raft
    }

    /// This server's id.
    pub fn id(&self) -> NodeId {
        self.id
    }
    /// Current role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// Current term.
    pub fn current_term(&self) -> Term {
        self.current_term
    }
    /// Who this server voted for in the current term.
    pub fn voted_for(&self) -> Option<NodeId> {
        self.voted_for
    }
    /// The leader of the current term, if known.
    pub fn leader_id(&self) -> Option<NodeId> {
        self.leader_id
    }
    /// Highest index known committed.
    pub fn commit_index(&self) -> LogIndex {
        self.commit_index
    }
    /// Index of the last log entry.
    pub fn last_index(&self) -> LogIndex {
        self.log.last_index()
    }
    /// The other servers, sorted.
    pub fn peers(&self) -> &[NodeId] {
        &self.peers
    }
    /// Counters of inputs ignored on purpose.
    pub fn ignored(&self) -> Ignored {
        self.ignored
    }
    /// The hard state as the core holds it now (persisted or about to be).
    pub fn hard_state(&self) -> HardState {
        HardState {
            current_term: self.current_term,
            voted_for: self.voted_for,
            commit_index: self.commit_index,
        }
    }
    /// The soft state as it is now.
    pub fn soft_state(&self) -> SoftState {
        SoftState {
            role: self.role,
            term: self.current_term,
            leader_id: self.leader_id,
        }
    }

    /// Majority of the full cluster (peers + self).
    fn quorum(&self) -> usize {
        let voters = self.peers.len() + 1;
        voters / 2 + 1
    }

    /// Advance logical time by one tick.
    pub fn tick(&mut self) {
        self.election_elapsed += 1;
        match self.role {
            Role::Leader => self.tick_leader(),
            Role::Follower | Role::Candidate => {
                // §5.2: no word from a leader (or a vote granted) within the timeout: campaign.
                if self.election_elapsed >= self.randomized_election_timeout {
                    self.become_candidate();
                }
            }
        }
        self.assert_invariants();
    }

    fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        if self.heartbeat_elapsed >= self.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.send_heartbeats();
        }
        if self.election_elapsed >= self.election_ticks {
            self.election_elapsed = 0;
            // Thesis §6.2: a leader cut off from a majority steps down rather than serve.
            if self.check_quorum && self.recent_active.len() + 1 < self.quorum() {
                log::info!(
                    "{}: lost contact with a majority in term {}; stepping down",
                    self.id,
                    self.current_term
                );
                self.become_follower(self.current_term, None);
            }
            self.recent_active.clear();
        }
    }

    /// Handle one message from `from`. Malformed or foreign input is counted and ignored.
    pub fn step(&mut self, from: NodeId, message: Message) {
        if !self.peers.contains(&from) {
            self.ignored.unknown_peer += 1;
            log::debug!(
                "{}: ignoring {} from unknown server {}",
                self.id,
                message.kind(),
                from
            );
            return;
        }
        let term = message.term();
        // §5.1: a higher term makes us a follower of that term, whatever our role.
        if term > self.current_term {
            let leader = matches!(message, Message::AppendEntries(_)).then_some(from);
            self.become_follower(term, leader);
        } else if term < self.current_term {
            self.handle_stale(from, &message);
            self.assert_invariants();
            return;
        }
        match message {
            Message::RequestVote(m) => self.handle_request_vote(from, m),
            Message::RequestVoteResponse(m) => self.handle_request_vote_response(from, m),
            Message::AppendEntries(m) => self.handle_append_entries(from, m),
            Message::AppendEntriesResponse(m) => self.handle_append_entries_response(from, m),
        }
        self.assert_invariants();
    }

    /// §5.1: a request with a stale term is rejected with our term so the sender catches up;
    /// a stale response is dropped.
    fn handle_stale(&mut self, from: NodeId, message: &Message) {
        let term = self.current_term;
        match message {
            Message::RequestVote(_) => {
                self.send(
                    from,
                    Message::RequestVoteResponse(RequestVoteResponse {
                        term,
                        vote_granted: false,
                    }),
                );
            }
            Message::AppendEntries(_) => {
                let reply = AppendEntriesResponse {
                    term,
                    success: false,
                    match_index: LogIndex(0),
                };
                self.send(from, Message::AppendEntriesResponse(reply));
            }
            Message::RequestVoteResponse(_) | Message::AppendEntriesResponse(_) => {
                self.ignored.stale_term += 1;
            }
        }
    }

    /// §5.2 + §5.4.1: one vote per term, first come first served, and only for a candidate
    /// whose log is at least as up-to-date as ours.
    fn handle_request_vote(&mut self, from: NodeId, m: RequestVote) {
        let can_vote = self.voted_for.is_none() || self.voted_for == Some(m.candidate_id);
        let up_to_date = self.log.is_up_to_date(m.last_log_index, m.last_log_term);
        let vote_granted = can_vote && up_to_date && m.candidate_id == from;
        if vote_granted {
            self.voted_for = Some(m.candidate_id);
            // Figure 2: granting a vote resets the election timer.
            self.reset_election_timer();
        }
        log::debug!(
            "{}: vote for {} in term {}: {} (voted_for={:?}, up_to_date={})",
            self.id,
            from,
            self.current_term,
            vote_granted,
            self.voted_for,
            up_to_date
        );
        let reply = RequestVoteResponse {
            term: self.current_term,
            vote_granted,
        };
        self.send(from, Message::RequestVoteResponse(reply));
    }

    fn handle_request_vote_response(&mut self, from: NodeId, m: RequestVoteResponse) {
        if self.role != Role::Candidate || !m.vote_granted {
            return;
        }
        self.votes_granted.insert(from);
        // §5.2: a candidate wins with votes from a majority of the full cluster.
        if self.votes_granted.len() >= self.quorum() {
            self.become_leader();
        }
    }

    fn handle_append_entries(&mut self, from: NodeId, m: AppendEntries) {
        if self.role == Role::Leader {
            // Two leaders in one term would break Election Safety (§5.2); only a faulty or
            // forged peer can cause it, so count it, never obey it.
            log::error!(
                "{}: AppendEntries from {} claims leadership of my term {}",
                self.id,
                from,
                m.term
            );
            self.ignored.conflicting_leader += 1;
            return;
        }
        if self.role == Role::Candidate {
            // §5.2: a candidate that hears from a legitimate leader of its term returns to follower.
            self.become_follower(self.current_term, Some(from));
        }
        self.leader_id = Some(from);
        self.reset_election_timer();
        if !m.entries.is_empty() {
            // Accepting entries needs a durable log (log replication); refusing is safe.
            self.ignored.unsupported_entries += 1;
            let reply = AppendEntriesResponse {
                term: self.current_term,
                success: false,
                match_index: LogIndex(0),
            };
            self.send(from, Message::AppendEntriesResponse(reply));
            return;
        }
        // §5.3 consistency check on the entry preceding the (empty) batch.
        let success = self.log.term_at(m.prev_log_index) == Some(m.prev_log_term);
        let match_index = if success {
            m.prev_log_index
        } else {
            LogIndex(0)
        };
        let reply = AppendEntriesResponse {
            term: self.current_term,
            success,
            match_index,
        };
        self.send(from, Message::AppendEntriesResponse(reply));
    }

    fn handle_append_entries_response(&mut self, from: NodeId, _m: AppendEntriesResponse) {
        if self.role == Role::Leader {
            self.recent_active.insert(from);
        }
    }

    /// Step down (or stay) as follower in `term`; a new term clears the vote (§5.1).
    fn become_follower(&mut self, term: Term, leader_id: Option<NodeId>) {
        assert!(term >= self.current_term, "terms never go backwards");
        if term > self.current_term {
            self.current_term = term;
            self.voted_for = None;
        }
        self.role = Role::Follower;
        self.leader_id = leader_id;
        self.votes_granted.clear();
        self.recent_active.clear();
        self.reset_election_timer();
    }

    /// §5.2: start an election: new term, vote for self, ask everyone else.
    fn become_candidate(&mut self) {
        assert_ne!(self.role, Role::Leader, "a leader never campaigns");
        self.current_term = Term(self.current_term.0 + 1);
        self.voted_for = Some(self.id);
        self.role = Role::Candidate;
        self.leader_id = None;
        self.votes_granted.clear();
        self.votes_granted.insert(self.id);
        self.reset_election_timer();
        log::debug!("{}: campaigning in term {}", self.id, self.current_term);
        if self.votes_granted.len() >= self.quorum() {
            self.become_leader();
            return;
        }
        let request = RequestVote {
            term: self.current_term,
            candidate_id: self.id,
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
        };
        for peer in self.peers.clone() {
            self.send(peer, Message::RequestVote(request.clone()));
        }
    }

    /// §5.2: a winner asserts leadership at once with heartbeats to prevent new elections.
    fn become_leader(&mut self) {
        assert_eq!(
            self.role,
            Role::Candidate,
            "only a candidate can win an election"
        );
        self.role = Role::Leader;
        self.leader_id = Some(self.id);
        self.votes_granted.clear();
        self.recent_active.clear();
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.send_heartbeats();
    }

    fn send_heartbeats(&mut self) {
        let heartbeat = AppendEntries {
            term: self.current_term,
            leader_id: self.id,
            prev_log_index: self.log.last_index(),
            prev_log_term: self.log.last_term(),
            entries: Vec::new(),
            leader_commit: self.commit_index,
        };
        for peer in self.peers.clone() {
            self.send(peer, Message::AppendEntries(heartbeat.clone()));
        }
    }

    fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let base = u64::from(self.election_ticks);
        self.randomized_election_timeout = self.rng.range(base, 2 * base) as u32;
    }

    fn send(&mut self, to: NodeId, message: Message) {
        self.messages.push(Outgoing { to, message });
    }

    #[cfg(test)]
    pub(crate) fn election_elapsed_for_test(&self) -> u32 {
        self.election_elapsed
    }

    /// True when [`Raft::ready`] would return something to do.
    pub fn has_ready(&self) -> bool {
        !self.messages.is_empty()
            || self.hard_state() != self.persisted
            || self.soft_state() != self.published
    }

    /// Take the work accumulated since the last call. The caller must handle it completely,
    /// in the order documented on [`Ready`], before the next input.
    pub fn ready(&mut self) -> Ready {
        let hard_state = self.hard_state();
        let hard_state = (hard_state != self.persisted).then_some(hard_state);
        if let Some(hs) = hard_state {
            self.persisted = hs;
        }
        let soft_state = self.soft_state();
        let soft_state = (soft_state != self.published).then_some(soft_state);
        if let Some(ss) = soft_state {
            self.published = ss;
        }
        Ready {
            must_sync: hard_state.is_some(),
            hard_state,
            messages: std::mem::take(&mut self.messages),
            soft_state,
        }
    }

    /// Invariants of Figure 2 / Figure 3, checked after every input in debug and test builds.
    #[cfg(any(test, debug_assertions))]
    fn assert_invariants(&mut self) {
        assert!(
            self.commit_index <= self.log.last_index(),
            "commit_index beyond last_index"
        );
        match self.role {
            Role::Leader => {
                assert_eq!(self.voted_for, Some(self.id), "a leader voted for itself");
                assert_eq!(self.leader_id, Some(self.id), "a leader knows it leads");
            }
            Role::Candidate => assert_eq!(
                self.voted_for,
                Some(self.id),
                "a candidate voted for itself"
            ),
            Role::Follower => assert_ne!(
                self.leader_id,
                Some(self.id),
                "a follower is not its own leader"
            ),
        }
        if let Some(vote) = self.voted_for {
            if let Some((term, seen)) = self.vote_seen {
                assert!(
                    term != self.current_term || seen == vote,
                    "two votes in term {term}: {seen} then {vote}"
                );
            }
            self.vote_seen = Some((self.current_term, vote));
        }
    }

    #[cfg(not(any(test, debug_assertions)))]
    fn assert_invariants(&mut self) {}
}
