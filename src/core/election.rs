//! Leader election (§5.2) with the voting restriction (§5.4.1), pre-vote (thesis §9.6) and
//! leader stickiness (thesis §4.2.3).

use super::message::{Entry, Message, RequestVote, RequestVoteResponse};
use super::progress::Progress;
use super::raft::Raft;
use super::ready::Role;
use super::types::{LogIndex, NodeId, Term};
use super::vote_log::{VoteKind, VoteVerdict};

impl Raft {
    /// §5.2 + §5.4.1: one vote per term, first come first served, and only for a candidate
    /// whose log is at least as up-to-date as ours.
    pub(super) fn handle_request_vote(&mut self, from: NodeId, m: RequestVote, kind: VoteKind) {
        let can_vote = self.voted_for.is_none() || self.voted_for == Some(m.candidate_id);
        let up_to_date =
            self.log.is_up_to_date(m.last_log_index, m.last_log_term) || self.bugs().vote_without_log_check;
        // Only for a voter (`Raft::elects`: of the membership in force, or of the one before
        // it while that is uncommitted), and only as a member (`Raft::answers_votes`).
        let (voter, candidate_votes) = (self.answers_votes(), self.elects(m.candidate_id));
        let vote_granted = can_vote && up_to_date && m.candidate_id == from && voter && candidate_votes;
        let verdict = match (self.voted_for, up_to_date) {
            _ if vote_granted => VoteVerdict::Granted,
            _ if !voter => VoteVerdict::NotAVoter,
            _ if !candidate_votes => VoteVerdict::CandidateNotVoter,
            (Some(other), _) if !can_vote => VoteVerdict::AlreadyVoted(other),
            _ => VoteVerdict::StaleLog,
        };
        self.votes.push(from, m.term, kind, verdict);
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
        let reply = RequestVoteResponse { term: self.current_term, vote_granted };
        self.send(from, Message::RequestVoteResponse(reply));
    }

    pub(super) fn handle_request_vote_response(&mut self, from: NodeId, m: RequestVoteResponse) {
        if self.role != Role::Candidate || !m.vote_granted {
            return;
        }
        self.votes_granted.insert(from);
        // §5.2: a candidate wins with votes from a majority of the voters.
        if self.count_voters(&self.votes_granted, true) >= self.quorum() {
            self.become_leader();
        }
    }

    /// §5.2: start an election: new term, vote for self, ask everyone else.
    pub(super) fn become_candidate(&mut self) {
        self.become_candidate_with(Message::RequestVote);
    }

    /// §5.2 with the request to send: RequestVote, or TransferVote when our leader handed over
    /// (§3.10: voters then do not apply leader stickiness).
    pub(super) fn become_candidate_with(&mut self, request: fn(RequestVote) -> Message) {
        assert_ne!(self.role, Role::Leader, "a leader never campaigns");
        self.current_term = Term(self.current_term.0 + 1);
        self.voted_for = Some(self.id);
        self.role = Role::Candidate;
        self.pre_candidate = false;
        self.leader_id = None;
        self.votes_granted.clear();
        self.votes_granted.insert(self.id);
        self.reset_reads();
        self.reset_election_timer();
        self.votes.elections_started += 1;
        log::debug!("{}: campaigning in term {}", self.id, self.current_term);
        if self.count_voters(&self.votes_granted, true) >= self.quorum() {
            self.become_leader();
            return;
        }
        self.ask_everyone(self.current_term, request);
    }

    /// Send every peer a vote request (or a pre-vote: `wrap` says which) for `term`, naming
    /// our last log position (§5.4.1).
    fn ask_everyone(&mut self, term: Term, wrap: fn(RequestVote) -> Message) {
        let request = RequestVote {
            term,
            candidate_id: self.id,
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
        };
        for peer in self.voter_peers() {
            self.send(peer, wrap(request.clone()));
        }
    }

    /// §5.2: a winner asserts leadership at once. §8: it appends a no-op entry of its term, so
    /// entries of earlier terms become committed as soon as that one is (§5.4.2).
    pub(super) fn become_leader(&mut self) {
        self.votes.elections_won += 1;
        assert_eq!(self.role, Role::Candidate, "only a candidate can win an election");
        self.role = Role::Leader;
        self.leader_id = Some(self.id);
        self.votes_granted.clear();
        self.recent_active.clear();
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.transfer = None;
        self.lease_revoked = false;
        self.reset_reads();
        let last = self.log.last_index();
        self.progress = self.peers.iter().map(|&p| (p, Progress::new(last))).collect();
        let noop = Entry { term: self.current_term, index: LogIndex(last.0 + 1), data: Vec::new() };
        self.log.append([noop]);
        self.broadcast_append();
    }

    /// §4.2.3: while a leader is known to be alive — we lead, or we heard from the leader of
    /// our term within the minimum election timeout — a request to vote in a later term can
    /// only come from a server that lost touch with it (paused, restarted, cut off). Ignoring
    /// it keeps that server from deposing a healthy leader.
    pub(super) fn is_sticky_to_leader(&self, message: &Message) -> bool {
        let asks_for_vote = match message {
            Message::PreVote(_) => true,
            Message::RequestVote(m) => m.term > self.current_term,
            _ => false,
        };
        // TransferVote is not among them: the leader itself asked for that election (§3.10).
        // A server that just started treats the leader it may have followed as alive: it
        // cannot tell, and a lease (§6.4.1) counts on no vote within an election timeout of
        // the leader's last contact — a restart must not shorten that.
        let leader_alive = self.role == Role::Leader
            || ((self.leader_id.is_some() || self.just_started) && self.election_elapsed < self.options.election_ticks);
        asks_for_vote && self.options.leader_stickiness && leader_alive
    }

    /// §9.6: would we vote for `from` in `m.term`? Answered without changing our term, vote or
    /// election timer, so a pre-vote can never disrupt anything.
    pub(super) fn handle_pre_vote(&mut self, from: NodeId, m: RequestVote) {
        let ahead = m.term > self.current_term;
        let (voter, candidate_votes) = (self.answers_votes(), self.elects(m.candidate_id));
        let vote_granted =
            ahead && self.log.is_up_to_date(m.last_log_index, m.last_log_term) && voter && candidate_votes;
        let verdict = match (vote_granted, ahead) {
            (true, _) => VoteVerdict::Granted,
            _ if !voter => VoteVerdict::NotAVoter,
            _ if !candidate_votes => VoteVerdict::CandidateNotVoter,
            (false, true) => VoteVerdict::StaleLog,
            (false, false) => VoteVerdict::TermNotAhead,
        };
        self.votes.push(from, m.term, VoteKind::PreVote, verdict);
        let term = if vote_granted { m.term } else { self.current_term };
        log::debug!("{}: pre-vote for {from} in term {}: {vote_granted}", self.id, m.term);
        self.send(from, Message::PreVoteResponse(RequestVoteResponse { term, vote_granted }));
    }

    pub(super) fn handle_pre_vote_response(&mut self, from: NodeId, m: RequestVoteResponse) {
        let asked = Term(self.current_term.0 + 1);
        if !self.pre_candidate || !m.vote_granted || m.term != asked {
            return;
        }
        self.votes_granted.insert(from);
        if self.count_voters(&self.votes_granted, true) >= self.quorum() {
            self.become_candidate();
        }
    }

    /// §9.6: ask everyone whether we could win term + 1, keeping our term and vote: a server
    /// that cannot win (cut off, or behind) never raises its term, so it cannot disrupt the
    /// cluster when it comes back.
    pub(super) fn become_pre_candidate(&mut self) {
        assert_ne!(self.role, Role::Leader, "a leader never campaigns");
        if self.bugs().pre_vote_raises_term {
            self.current_term = Term(self.current_term.0 + 1);
            self.voted_for = None;
        }
        self.role = Role::Follower;
        self.leader_id = None;
        self.reset_reads();
        self.pre_candidate = true;
        self.votes_granted.clear();
        self.votes_granted.insert(self.id);
        self.reset_election_timer();
        if self.count_voters(&self.votes_granted, true) >= self.quorum() {
            self.become_candidate();
            return;
        }
        let asked = Term(self.current_term.0 + 1);
        log::debug!("{}: asking for pre-votes for term {asked}", self.id);
        self.ask_everyone(asked, Message::PreVote);
    }
}
