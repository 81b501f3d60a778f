//! Why this server granted or refused its recent votes: the answer to "why is there no
//! leader?" (`leader status --verbose`). The core records each decision on a vote or pre-vote
//! request with its reason; nothing here changes what the core decides.

use super::message::Message;
use super::raft::Raft;
use super::types::{NodeId, Term};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Decisions kept: enough to see a failed election's every request in a 7-server cluster.
pub const VOTE_LOG_LEN: usize = 8;

/// Which request was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VoteKind {
    /// RequestVote (§5.2).
    Vote,
    /// PreVote (thesis §9.6): would we vote, without changing anything.
    PreVote,
    /// TransferVote: a vote the leader asked for by handing over (thesis §3.10).
    Transfer,
}

/// Why a vote was granted or refused. Variants are only ever appended (client wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VoteVerdict {
    /// Granted.
    Granted,
    /// Refused: the request's term is older than ours (§5.1).
    StaleTerm,
    /// Refused: we already voted for another server in this term (§5.2).
    AlreadyVoted(NodeId),
    /// Refused: the candidate's log is less up-to-date than ours (§5.4.1).
    StaleLog,
    /// Ignored: we heard from a live leader within an election timeout (thesis §4.2.3), or we
    /// lead, or we just started and cannot tell.
    LeaderAlive,
    /// Refused pre-vote: its term is not above ours, so it could not win it (§9.6).
    TermNotAhead,
    /// Refused: this server is a learner or not a member; it does not vote (thesis §4.2.1).
    NotAVoter,
    /// Refused: the candidate is not a voter of the membership in force here.
    CandidateNotVoter,
}

impl VoteVerdict {
    /// The verdict as `leader status --verbose` prints it.
    pub fn describe(self) -> String {
        match self {
            VoteVerdict::Granted => "granted".into(),
            VoteVerdict::StaleTerm => "refused: stale term".into(),
            VoteVerdict::AlreadyVoted(v) => format!("refused: already voted for {v}"),
            VoteVerdict::StaleLog => "refused: candidate's log is behind ours".into(),
            VoteVerdict::LeaderAlive => "ignored: the leader is still alive".into(),
            VoteVerdict::TermNotAhead => "refused: term not ahead of ours".into(),
            VoteVerdict::NotAVoter => "refused: this server is not a voter".into(),
            VoteVerdict::CandidateNotVoter => "refused: the candidate is not a voter".into(),
        }
    }
}

/// One decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteRecord {
    /// The candidate.
    pub candidate: NodeId,
    /// The term it asked for.
    pub term: Term,
    /// Which request.
    pub kind: VoteKind,
    /// The decision and its reason.
    pub verdict: VoteVerdict,
    /// Ticks between the decision and now (filled in by [`Raft::vote_log`]).
    pub ticks_ago: u64,
}

/// The last [`VOTE_LOG_LEN`] decisions, oldest first, stamped with the tick count.
#[derive(Clone, Debug, Default)]
pub(super) struct VoteLog {
    records: VecDeque<VoteRecord>,
    /// Ticks since this core started.
    now: u64,
    /// Elections this core started (as a candidate, §5.2).
    pub(super) elections_started: u64,
    /// Elections this core won.
    pub(super) elections_won: u64,
}

impl VoteLog {
    pub(super) fn tick(&mut self) {
        self.now += 1;
    }

    pub(super) fn push(&mut self, candidate: NodeId, term: Term, kind: VoteKind, verdict: VoteVerdict) {
        if self.records.len() == VOTE_LOG_LEN {
            self.records.pop_front();
        }
        // Stored as the tick of the decision; turned into "ticks ago" when read.
        self.records.push_back(VoteRecord { candidate, term, kind, verdict, ticks_ago: self.now });
    }
}

impl Raft {
    /// Record the decision on `message` from `from` if it asks for a vote.
    pub(super) fn note_vote(&mut self, from: NodeId, message: &Message, verdict: VoteVerdict) {
        let (kind, m) = match message {
            Message::RequestVote(m) => (VoteKind::Vote, m),
            Message::PreVote(m) => (VoteKind::PreVote, m),
            Message::TransferVote(m) => (VoteKind::Transfer, m),
            _ => return,
        };
        self.votes.push(from, m.term, kind, verdict);
    }

    /// Elections this core started (it became a candidate, §5.2) and won, since it started.
    pub fn elections(&self) -> (u64, u64) {
        (self.votes.elections_started, self.votes.elections_won)
    }

    /// This server's recent decisions on vote requests, oldest first, with their reasons.
    pub fn vote_log(&self) -> Vec<VoteRecord> {
        let now = self.votes.now;
        self.votes.records.iter().map(|r| VoteRecord { ticks_ago: now - r.ticks_ago, ..*r }).collect()
    }
}
