//! Messages between Raft servers (Figure 2 RPCs), as the core sees them.
//!
//! These types are on the wire (inside the transport's envelope, bincode fixint): variants and
//! fields are only ever appended, never reordered (docs/wire.md).

use super::types::{LogIndex, NodeId, Term};
use serde::{Deserialize, Serialize};

/// One entry of the replicated log. An entry with empty `data` is the leader's no-op (§8: each
/// leader commits a blank entry at the start of its term); the state machine skips it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Term of the leader that created the entry (§5.3).
    pub term: Term,
    /// Position in the log.
    pub index: LogIndex,
    /// Opaque command for the state machine.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// RequestVote RPC arguments (§5.2, Figure 2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestVote {
    /// Candidate's term.
    pub term: Term,
    /// Candidate requesting the vote.
    pub candidate_id: NodeId,
    /// Index of the candidate's last log entry (§5.4.1).
    pub last_log_index: LogIndex,
    /// Term of the candidate's last log entry (§5.4.1).
    pub last_log_term: Term,
}

/// RequestVote RPC results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestVoteResponse {
    /// The voter's current term, for the candidate to update itself.
    pub term: Term,
    /// True means the candidate received the vote.
    pub vote_granted: bool,
}

/// AppendEntries RPC arguments (§5.3); with no entries it is a heartbeat (§5.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendEntries {
    /// Leader's term.
    pub term: Term,
    /// So followers can redirect clients.
    pub leader_id: NodeId,
    /// Index of the log entry immediately preceding the new ones.
    pub prev_log_index: LogIndex,
    /// Term of the entry at `prev_log_index`.
    pub prev_log_term: Term,
    /// Entries to store (empty for a heartbeat).
    pub entries: Vec<Entry>,
    /// Leader's commit index.
    pub leader_commit: LogIndex,
}

/// AppendEntries RPC results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendEntriesResponse {
    /// The follower's current term, for the leader to update itself.
    pub term: Term,
    /// True if the follower contained an entry matching `prev_log_index` and `prev_log_term`.
    pub success: bool,
    /// On success, the index of the last entry known to match the leader's log; on failure,
    /// the `prev_log_index` that was rejected (so the leader can tell stale rejections apart).
    pub match_index: LogIndex,
    /// On failure: the first index of `conflict_term` in the follower's log, or its
    /// `last_index + 1` when its log is too short (§5.3, "fast back-tracking").
    pub conflict_index: LogIndex,
    /// On failure: the term of the follower's entry at `prev_log_index`, 0 when it has none.
    pub conflict_term: Term,
}

/// Every message the core sends or receives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Candidate asks for a vote.
    RequestVote(RequestVote),
    /// Answer to a `RequestVote`.
    RequestVoteResponse(RequestVoteResponse),
    /// Leader replicates entries or asserts leadership.
    AppendEntries(AppendEntries),
    /// Answer to an `AppendEntries`.
    AppendEntriesResponse(AppendEntriesResponse),
    /// Pre-vote (thesis §9.6): "could I win an election?", asked before raising the term.
    /// `term` is the term the sender would campaign in (its current term + 1); receiving one
    /// changes nothing in the receiver's term, vote or timers.
    PreVote(RequestVote),
    /// Answer to a `PreVote`: `term` is the asked term when granted, else the voter's term.
    PreVoteResponse(RequestVoteResponse),
}

impl Message {
    /// The sender's term, which every Raft message carries (§5.1).
    pub fn term(&self) -> Term {
        match self {
            Message::RequestVote(m) => m.term,
            Message::RequestVoteResponse(m) => m.term,
            Message::AppendEntries(m) => m.term,
            Message::AppendEntriesResponse(m) => m.term,
            Message::PreVote(m) => m.term,
            Message::PreVoteResponse(m) => m.term,
        }
    }

    /// A short name for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::RequestVote(_) => "RequestVote",
            Message::RequestVoteResponse(_) => "RequestVoteResponse",
            Message::AppendEntries(_) => "AppendEntries",
            Message::AppendEntriesResponse(_) => "AppendEntriesResponse",
            Message::PreVote(_) => "PreVote",
            Message::PreVoteResponse(_) => "PreVoteResponse",
        }
    }
}

/// A message the core wants delivered to `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// Destination server.
    pub to: NodeId,
    /// What to deliver.
    pub message: Message,
}
