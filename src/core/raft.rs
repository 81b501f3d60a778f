//! The Raft state machine for one server: the struct, its inputs, and the role transitions.
//!
//! Sans-IO: inputs are [`Raft::tick`], [`Raft::step`], [`Raft::propose`] and
//! [`Raft::advance`]; the output is a [`Ready`] taken with [`Raft::ready`]. Control flow lives
//! in `step` (term rules once, then dispatch on message); `become_*` mutate the role,
//! `handle_*` (election.rs, replication.rs) answer one message, `send_*` queue messages.

use super::membership::Membership;
use super::message::Entry;
use super::message::{AppendEntriesResponse, Message, Outgoing, RequestVoteResponse};
pub use super::options::{Options, INDEX_MAX, TERM_MAX};
use super::planted::PlantedBugs;
use super::progress::Progress;
use super::raft_log::RaftLog;
use super::read_index::Reads;
use super::ready::{Ignored, IndexRange, Ready, Role, SnapshotChunk, SnapshotInstall, SoftState};
use super::rng::SplitMix64;
use super::snapshot::{Incoming, SnapshotInfo};
use super::transfer::Transfer;
use super::types::{HardState, LogIndex, NodeId, Term};
use super::vote_log::{VoteKind, VoteLog, VoteVerdict};
use std::collections::{BTreeMap, BTreeSet};

/// One Raft server's protocol state.
#[derive(Debug)]
pub struct Raft {
    pub(super) id: NodeId,
    pub(super) peers: Vec<NodeId>,
    pub(super) options: Options,
    pub(super) role: Role,
    pub(super) current_term: Term,
    pub(super) voted_for: Option<NodeId>,
    pub(super) commit_index: LogIndex,
    pub(super) last_applied: LogIndex,
    pub(super) leader_id: Option<NodeId>,
    pub(super) log: RaftLog,
    /// Ticks since the last reset of the election timer (or, on a leader, of the quorum check).
    pub(super) election_elapsed: u32,
    pub(super) heartbeat_elapsed: u32,
    /// Leader: heartbeat rounds sent (tells a repeated claim from a duplicated message).
    pub(super) heartbeat_round: u64,
    pub(super) randomized_election_timeout: u32,
    /// Candidate: servers that granted their vote in `current_term`, self included; while
    /// `pre_candidate`, the pre-votes for `current_term + 1`.
    pub(super) votes_granted: BTreeSet<NodeId>,
    /// A follower asking for pre-votes (§9.6) before it campaigns for `current_term + 1`.
    pub(super) pre_candidate: bool,
    /// Leader: peers heard from since the last quorum check.
    pub(super) recent_active: BTreeSet<NodeId>,
    /// Leader: peers heard from in the quorum-check period before (membership changes ask
    /// who is live over a whole election timeout).
    pub(super) last_active: BTreeSet<NodeId>,
    /// The membership of `Options` (config.json), in force until the log or a snapshot holds
    /// one.
    pub(super) bootstrap: Membership,
    /// This server has been a member since it started (so leaving the membership is a removal).
    pub(super) was_member: bool,
    /// Leader: replication progress per follower (Figure 2 nextIndex/matchIndex).
    pub(super) progress: BTreeMap<NodeId, Progress>,
    rng: SplitMix64,
    pub(super) messages: Vec<Outgoing>,
    persisted_hard_state: HardState,
    published: SoftState,
    pub(super) ignored: Ignored,
    /// The latest durable snapshot image the runtime reported (sent to lagging followers).
    pub(super) snapshot: Option<SnapshotInfo>,
    /// Follower: the snapshot being received.
    pub(super) incoming: Option<Incoming>,
    /// Follower: chunks accepted for the next Ready.
    pub(super) snapshot_chunks: Vec<SnapshotChunk>,
    /// Follower: a snapshot adopted, for the next Ready.
    pub(super) install: Option<SnapshotInstall>,
    /// Leader: a leadership transfer in progress (§3.10).
    pub(super) transfer: Option<Transfer>,
    /// Leader: a TimeoutNow was sent in this term, so no lease holds any more (§6.4.1).
    pub(super) lease_revoked: bool,
    /// ReadIndex bookkeeping (§6.4).
    pub(super) reads: Reads,
    /// Within the first election timeout after a start, this server cannot know whether a
    /// leader it followed before is alive: it treats it as alive for leader stickiness.
    pub(super) just_started: bool,
    /// Recent decisions on vote requests, with their reasons (vote_log.rs).
    pub(super) votes: VoteLog,
    /// The vote of each term seen by the invariant checker; one vote per term (§5.2).
    #[cfg(any(test, debug_assertions))]
    pub(super) vote_seen: Option<(Term, NodeId)>,
}

impl Raft {
    /// A core starting as follower from the hard state persisted before a crash (or default),
    /// with an empty log.
    pub fn new(options: Options, hard_state: HardState) -> Self {
        Self::restore(options, hard_state, RaftLog::default())
    }

    /// A core restarting from persisted hard state and log. The state machine lives in memory:
    /// the runtime restores it from the snapshot the log starts after (if any), and committed
    /// entries after that are applied again.
    pub fn restore(options: Options, hard_state: HardState, log: RaftLog) -> Self {
        assert!(options.election_ticks >= 2, "election_ticks must be at least 2");
        assert!(options.heartbeat_ticks >= 1, "heartbeat_ticks must be at least 1");
        assert!(options.in_flight_max >= 1 && options.entries_per_message_max >= 1, "limits must allow progress");
        assert!(!options.peers.contains(&options.id), "peers must not contain self");
        let mut voters = options.peers.clone();
        if !options.joining {
            voters.push(options.id);
        }
        let mut bootstrap = Membership::of_voters(voters);
        for (pid, member) in bootstrap.members.iter_mut() {
            if let Some((peer_url, client_url)) = options.urls.get(pid) {
                (member.peer_url, member.client_url) = (peer_url.clone(), client_url.clone());
            }
        }
        let in_force = log.membership().map_or(&bootstrap, |(_, m)| m);
        let peers: Vec<NodeId> = in_force.members.keys().copied().filter(|p| *p != options.id).collect();
        let was_member = in_force.contains(options.id);
        let soft = SoftState { role: Role::Follower, term: hard_state.current_term, leader_id: None };
        // The commit hint may be ahead of a log that lost an unsynced tail; never overstate it.
        let commit_index = hard_state.commit_index.min(log.last_index()).max(log.compacted().0);
        // The log is synced before the hard state is saved, so a crash between the two leaves
        // entries of a term later than the saved one. This server was in that term (it took
        // a leader's entries); its vote in it was never sent (votes leave only after the save),
        // so adopting the term with no vote is what it would have saved. Without this, every
        // request it sends names a last log term above its own term — a message no correct
        // peer sends (validate.rs) — and it could never be elected.
        let saved = hard_state;
        let hard_state = if log.last_term() > hard_state.current_term {
            HardState { current_term: log.last_term(), voted_for: None, commit_index: hard_state.commit_index }
        } else {
            hard_state
        };
        let mut raft = Raft {
            id: options.id,
            peers,
            role: Role::Follower,
            current_term: hard_state.current_term,
            voted_for: hard_state.voted_for,
            commit_index,
            last_applied: log.compacted().0,
            leader_id: None,
            log,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            heartbeat_round: 0,
            randomized_election_timeout: options.election_ticks,
            votes_granted: BTreeSet::new(),
            pre_candidate: false,
            recent_active: BTreeSet::new(),
            last_active: BTreeSet::new(),
            was_member,
            bootstrap,
            progress: BTreeMap::new(),
            rng: SplitMix64::new(options.seed),
            messages: Vec::new(),
            persisted_hard_state: saved,
            published: soft,
            ignored: Ignored::default(),
            snapshot: None,
            incoming: None,
            snapshot_chunks: Vec::new(),
            install: None,
            transfer: None,
            lease_revoked: false,
            reads: Reads::default(),
            just_started: true,
            votes: VoteLog::default(),
            #[cfg(any(test, debug_assertions))]
            vote_seen: hard_state.voted_for.map(|v| (hard_state.current_term, v)),
            options,
        };
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
    /// Highest index handed out for applying.
    pub fn last_applied(&self) -> LogIndex {
        self.last_applied
    }
    /// Index of the last log entry.
    pub fn last_index(&self) -> LogIndex {
        self.log.last_index()
    }
    /// The entries of a range named by a [`Ready`] (`entries` or `committed_entries`).
    pub fn entries(&self, range: IndexRange) -> &[Entry] {
        self.log.range(range)
    }
    /// The log (read-only).
    pub fn log(&self) -> &RaftLog {
        &self.log
    }
    /// The other servers, sorted.
    pub fn peers(&self) -> &[NodeId] {
        &self.peers
    }
    /// Leader: a follower's replication progress.
    pub fn progress(&self, peer: NodeId) -> Option<&Progress> {
        self.progress.get(&peer)
    }
    /// Counters of inputs ignored on purpose.
    pub fn ignored(&self) -> Ignored {
        self.ignored
    }
    /// The hard state as the core holds it now (persisted or about to be).
    pub fn hard_state(&self) -> HardState {
        HardState { current_term: self.current_term, voted_for: self.voted_for, commit_index: self.commit_index }
    }
    /// The soft state as it is now.
    pub fn soft_state(&self) -> SoftState {
        SoftState { role: self.role, term: self.current_term, leader_id: self.leader_id }
    }

    /// The planted bugs this core was configured with (they act only in test builds: see
    /// [`PlantedBugs::active`]); the driver reads its own from here.
    pub fn planted(&self) -> PlantedBugs {
        self.options.planted
    }

    /// The planted bugs in effect (none outside test builds).
    pub(super) fn bugs(&self) -> PlantedBugs {
        self.options.planted.active()
    }

    /// Advance logical time by one tick.
    pub fn tick(&mut self) {
        self.votes.tick();
        self.election_elapsed += 1;
        if self.election_elapsed >= self.options.election_ticks {
            self.just_started = false;
        }
        match self.role {
            Role::Leader => self.tick_leader(),
            Role::Follower | Role::Candidate => {
                self.tick_reads();
                // §5.2: no word from a leader (or a vote granted) within the timeout: campaign
                // — if this server votes (a learner or a server not yet added never does).
                if self.election_elapsed >= self.randomized_election_timeout && self.elects(self.id) {
                    if self.options.pre_vote {
                        self.become_pre_candidate();
                    } else {
                        self.become_candidate();
                    }
                }
            }
        }
        self.assert_invariants();
    }

    fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        if self.heartbeat_elapsed >= self.options.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.send_heartbeats();
            self.leader_checks_on_heartbeat();
            self.continue_transfer();
            self.promote_caught_up_learners();
            self.step_down_if_removed();
            if self.role != Role::Leader {
                return;
            }
        }
        self.tick_transfer();
        self.tick_snapshot_sends();
        if self.election_elapsed >= self.options.election_ticks {
            self.election_elapsed = 0;
            // Thesis §6.2: a leader cut off from a majority steps down rather than serve.
            if self.options.check_quorum && self.count_voters(&self.recent_active, true) < self.quorum() {
                log::info!("{}: lost contact with a majority in term {}; stepping down", self.id, self.current_term);
                self.become_follower(self.current_term, None);
            }
            self.last_active = std::mem::take(&mut self.recent_active);
        }
    }

    /// Handle one message from `from`. Foreign, invalid or forged input is counted and
    /// ignored before it touches any state (validate.rs).
    pub fn step(&mut self, from: NodeId, message: Message) {
        self.step_message(from, message);
        // The log may hold a new membership now (§4.1: in force once appended).
        self.sync_membership();
    }

    fn step_message(&mut self, from: NodeId, message: Message) {
        if !self.knows(from, &message) {
            self.ignored.unknown_peer += 1;
            log::debug!("{}: ignoring {} from unknown server {}", self.id, message.kind(), from);
            return;
        }
        let term = message.term();
        if term > TERM_MAX {
            self.ignored.term_too_large += 1;
            log::debug!("{}: ignoring {} with term {term} above the limit", self.id, message.kind());
            return;
        }
        if let Err(reason) = self.validate(from, &message) {
            self.ignored.count_invalid(reason);
            log::warn!("{}: dropped an invalid {} from {from}: {}", self.id, message.kind(), reason.name());
            return;
        }
        if self.is_sticky_to_leader(&message) {
            self.ignored.leader_sticky += 1;
            self.note_vote(from, &message, VoteVerdict::LeaderAlive);
            log::debug!("{}: ignoring {} from {from}: the leader of term {} is alive", self.id, message.kind(), term);
            return;
        }
        // A pre-vote changes nothing, whatever its term (§9.6): handled before the term rule.
        match message {
            Message::PreVote(m) => {
                self.handle_pre_vote(from, m);
                self.assert_invariants();
                return;
            }
            Message::PreVoteResponse(m) if m.vote_granted || m.term <= self.current_term => {
                self.handle_pre_vote_response(from, m);
                self.assert_invariants();
                return;
            }
            _ => {} // a refusal from a later term is news of that term: the rule below
        }
        // §5.1: a higher term makes us a follower of that term, whatever our role.
        if term > self.current_term {
            let leader = matches!(
                message,
                Message::AppendEntries(_)
                    | Message::InstallSnapshot(_)
                    | Message::TimeoutNow(_)
                    | Message::LeaderCheck(_)
            )
            .then_some(from);
            self.become_follower(term, leader);
        } else if term < self.current_term {
            self.handle_stale(from, &message);
            self.assert_invariants();
            return;
        }
        if self.role == Role::Leader {
            // Thesis §6.2: any message of our term is contact with that peer (not only an
            // acknowledgement, which may wait behind the peer's fsync).
            self.recent_active.insert(from);
        }
        match message {
            Message::RequestVote(m) => self.handle_request_vote(from, m, VoteKind::Vote),
            Message::RequestVoteResponse(m) => self.handle_request_vote_response(from, m),
            Message::AppendEntries(m) => self.handle_append_entries(from, m),
            Message::AppendEntriesResponse(m) => self.handle_append_entries_response(from, m),
            Message::PreVote(_) | Message::PreVoteResponse(_) => {} // a refusal: the term rule did it
            Message::InstallSnapshot(m) => self.handle_install_snapshot(from, m),
            Message::InstallSnapshotResponse(m) => self.handle_install_snapshot_response(from, m),
            Message::TimeoutNow(m) => self.handle_timeout_now(from, m),
            Message::TransferVote(m) => self.handle_request_vote(from, m, VoteKind::Transfer),
            Message::LeaderCheck(m) => self.handle_leader_check(from, m),
            Message::LeaderCheckResponse(m) => self.handle_leader_check_response(from, m),
            Message::ReadIndex(m) => self.handle_read_index(from, m),
            Message::ReadIndexResponse(m) => self.handle_read_index_response(m),
        }
        self.assert_invariants();
    }

    /// §5.1: a request with a stale term is rejected with our term so the sender catches up;
    /// a stale response is dropped.
    fn handle_stale(&mut self, from: NodeId, message: &Message) {
        let term = self.current_term;
        match message {
            Message::RequestVote(_) | Message::TransferVote(_) => {
                self.note_vote(from, message, VoteVerdict::StaleTerm);
                self.send(from, Message::RequestVoteResponse(RequestVoteResponse { term, vote_granted: false }));
            }
            Message::LeaderCheck(_) => {
                // Round 0 (never sent): the sender learns our term, and if it leads that term
                // later this answer cannot pass for an acknowledgement of one of its rounds.
                let reply = super::message::LeaderCheckResponse { term, round: 0 };
                self.send(from, Message::LeaderCheckResponse(reply));
            }
            Message::ReadIndex(m) => {
                let reply =
                    super::message::ReadIndexResponse { term, id: m.id, index: LogIndex(0), index_term: Term(0) };
                self.send(from, Message::ReadIndexResponse(reply));
            }
            Message::AppendEntries(m) => {
                let reply = AppendEntriesResponse {
                    term,
                    success: false,
                    match_index: m.prev_log_index,
                    conflict_index: LogIndex(0),
                    conflict_term: Term(0),
                };
                self.send(from, Message::AppendEntriesResponse(reply));
            }
            Message::InstallSnapshot(m) => {
                let reply = super::message::InstallSnapshotResponse {
                    term,
                    last_index: m.last_index,
                    last_term: m.last_term,
                    next_offset: 0,
                };
                self.send(from, Message::InstallSnapshotResponse(reply));
            }
            Message::RequestVoteResponse(_)
            | Message::AppendEntriesResponse(_)
            | Message::PreVote(_)
            | Message::PreVoteResponse(_)
            | Message::InstallSnapshotResponse(_)
            | Message::TimeoutNow(_)
            | Message::LeaderCheckResponse(_)
            | Message::ReadIndexResponse(_) => {
                self.ignored.stale_term += 1;
            }
        }
    }

    /// Step down (or stay) as follower in `term`; a new term clears the vote (§5.1).
    pub(super) fn become_follower(&mut self, term: Term, leader_id: Option<NodeId>) {
        assert!(term >= self.current_term, "terms never go backwards");
        if term > self.current_term {
            self.current_term = term;
            self.voted_for = None;
        }
        self.role = Role::Follower;
        self.leader_id = leader_id;
        self.pre_candidate = false;
        self.votes_granted.clear();
        self.recent_active.clear();
        self.progress.clear();
        self.transfer = None;
        self.reset_reads();
        self.reset_election_timer();
    }

    pub(super) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let base = u64::from(self.options.election_ticks);
        self.randomized_election_timeout = self.rng.range(base, 2 * base) as u32;
    }

    pub(super) fn send(&mut self, to: NodeId, message: Message) {
        self.messages.push(Outgoing { to, message });
    }

    #[cfg(test)]
    pub(crate) fn election_elapsed_for_test(&self) -> u32 {
        self.election_elapsed
    }

    fn applicable(&self) -> LogIndex {
        // Apply only what is committed and durable here: committed entries survive anyway,
        // but the state machine must never run ahead of this server's own log.
        self.commit_index.min(self.log.persisted())
    }

    /// True when [`Raft::ready`] would return something to do.
    pub fn has_ready(&self) -> bool {
        !self.messages.is_empty()
            || self.log.has_unstable()
            || self.applicable() > self.last_applied
            || self.term_or_vote_changed()
            || self.soft_state() != self.published
            || !self.snapshot_chunks.is_empty()
            || self.install.is_some()
            || self.reads.has_ready()
    }

    fn term_or_vote_changed(&self) -> bool {
        let saved = self.persisted_hard_state;
        (saved.current_term, saved.voted_for) != (self.current_term, self.voted_for)
    }

    /// Take the work accumulated since the last call. The caller must handle it completely,
    /// in the order documented on [`Ready`], then call [`Raft::advance`].
    pub fn ready(&mut self) -> Ready {
        self.reads_before_ready();
        // The commit index rides along when the term or vote is saved; on its own it is a
        // hint that costs an fsync per commit, so it is not a reason to save.
        let hard_state = self.term_or_vote_changed().then(|| self.hard_state());
        if let Some(hs) = hard_state {
            self.persisted_hard_state = hs;
        }
        let (truncate_from, entries) = self.log.take_unstable();
        let soft_state = Some(self.soft_state()).filter(|s| *s != self.published);
        if let Some(ss) = soft_state {
            self.published = ss;
        }
        let applicable = self.applicable();
        let committed_entries = if applicable > self.last_applied {
            let first = LogIndex(self.last_applied.0 + 1);
            let last = LogIndex((self.last_applied.0 + self.options.committed_per_ready_max as u64).min(applicable.0));
            self.last_applied = last;
            IndexRange { first, last }
        } else {
            IndexRange::EMPTY
        };
        // Only a leader whose term and vote are already durable sends nothing that depends on
        // this Ready's writes: its messages are appends and heartbeats, and answers to stale
        // terms, none of which promise anything about its own disk.
        let send_before_persist = self.role == Role::Leader && hard_state.is_none() && truncate_from.is_none();
        let install = self.install.take();
        Ready {
            send_before_persist: send_before_persist && install.is_none(),
            must_sync: hard_state.is_some() || truncate_from.is_some() || !entries.is_empty() || install.is_some(),
            hard_state,
            truncate_from,
            entries,
            messages: std::mem::take(&mut self.messages),
            committed_entries,
            soft_state,
            snapshot_chunks: std::mem::take(&mut self.snapshot_chunks),
            install,
            read_states: std::mem::take(&mut self.reads.done),
        }
    }

    /// The runtime has handled the last [`Ready`] completely: its entries are durable. The
    /// leader may now count itself towards commit (§10.2.1 of the thesis).
    pub fn advance(&mut self) {
        self.log.mark_persisted();
        if self.role == Role::Leader {
            self.maybe_commit();
            self.sync_membership(); // a committed removal: its server is let go
        }
        self.assert_invariants();
    }

    /// For runtimes that persist asynchronously (several Readies' writes in flight, completed
    /// in order): the write that ended with entry (`index`, `term`) is durable. Ignored when
    /// that entry has since been truncated away. Until called, the leader does not count those
    /// entries as its own replicas (§10.2.1). With a synchronous runtime, use [`Raft::advance`].
    pub fn persisted(&mut self, index: LogIndex, term: Term) {
        if self.log.term_at(index) == Some(term) {
            self.log.mark_persisted_upto(index);
        }
        if self.role == Role::Leader {
            self.maybe_commit();
            self.sync_membership();
        }
        self.assert_invariants();
    }
}
