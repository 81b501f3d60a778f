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

impl Entry {
    /// Whether this is a membership entry ([`MEMBERSHIP_MAGIC`](super::MEMBERSHIP_MAGIC)): the
    /// core's, never handed to the state machine.
    pub fn is_membership(&self) -> bool {
        self.data.starts_with(&super::MEMBERSHIP_MAGIC)
    }

    /// Whether the state machine applies this entry: neither the leader's no-op nor a
    /// membership entry.
    pub fn is_command(&self) -> bool {
        !self.data.is_empty() && !self.is_membership()
    }
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

/// Largest command (an [`Entry`]'s `data`) a leader appends, in bytes: 1.5 MiB + 1 KiB
/// (1,573,888), so that the key-value store's 1.5 MiB of key and value (etcd's default request
/// limit) fits with its framing. The driver refuses a larger proposal at once; the envelope
/// limit is sized so that an AppendEntries carrying one such entry still travels (a message
/// holds at least one entry, whatever its byte budget).
pub const COMMAND_BYTES_MAX: usize = (3 << 19) + 1024;

/// Largest chunk of a snapshot image one [`InstallSnapshot`] carries (bytes): well inside the
/// transport's 2 MiB envelope limit, large enough that a 100 MB snapshot is 400 messages.
pub const SNAPSHOT_CHUNK_BYTES_MAX: usize = 256 << 10;

/// Length of the chunk of a `total`-byte image that starts at `offset` (every chunk is
/// [`SNAPSHOT_CHUNK_BYTES_MAX`] but the last): one place, so that the core choosing offsets and
/// the driver reading the bytes agree.
pub fn snapshot_chunk_len(total: u64, offset: u64) -> usize {
    total.saturating_sub(offset).min(SNAPSHOT_CHUNK_BYTES_MAX as u64) as usize
}

/// InstallSnapshot RPC (§7), one chunk of it: the leader streams the bytes of its snapshot
/// file (the "image", docs/storage.md) to a follower whose next entry it no longer holds.
/// Chunks are checksummed one by one and acknowledged with [`InstallSnapshotResponse`]; the
/// follower installs the image once it holds all of it and answers with an
/// [`AppendEntriesResponse`] acknowledging `last_index`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshot {
    /// Leader's term.
    pub term: Term,
    /// The leader (must be the sender).
    pub leader_id: NodeId,
    /// The snapshot replaces every entry up to and including this index.
    pub last_index: LogIndex,
    /// Term of the entry at `last_index`.
    pub last_term: Term,
    /// Size of the whole image in bytes.
    pub total_len: u64,
    /// Position of `data` in the image.
    pub offset: u64,
    /// Bytes `offset..offset + data.len()` of the image (1 to [`SNAPSHOT_CHUNK_BYTES_MAX`]).
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// CRC-32 (IEEE) of `data`: a damaged chunk is dropped, not written.
    pub crc: u32,
}

/// Answer to an [`InstallSnapshot`] chunk: how much of that snapshot the follower holds, so the
/// leader continues from there — after a loss, or when it offers the same snapshot again (a
/// new leader, a restart), the transfer resumes instead of starting over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshotResponse {
    /// The follower's current term, for the leader to update itself.
    pub term: Term,
    /// The snapshot this answers (`last_index`, `last_term` of the chunk).
    pub last_index: LogIndex,
    /// See `last_index`.
    pub last_term: Term,
    /// Bytes of the image held contiguously from 0: the next chunk to send starts here.
    pub next_offset: u64,
}

/// TimeoutNow (thesis §3.10): the leader hands leadership to the receiver, whose log it has
/// brought up to date: campaign now, without waiting for the election timeout and without
/// pre-vote. Only obeyed from the leader of the receiver's term.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutNow {
    /// Leader's term.
    pub term: Term,
    /// The leader (must be the sender).
    pub leader_id: NodeId,
}

/// A leadership check (thesis §6.4): "am I still your leader?", sent by a leader to confirm
/// it was still leading after a read arrived (ReadIndex), and to renew its lease (§6.4.1).
/// `round` numbers the checks, so the answers to this one are told from earlier ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderCheck {
    /// Leader's term.
    pub term: Term,
    /// The leader (must be the sender).
    pub leader_id: NodeId,
    /// Number of this check; rounds only grow within a term.
    pub round: u64,
}

/// Answer to a [`LeaderCheck`]: the follower's term and the round it answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderCheckResponse {
    /// The follower's current term (the leader's term when it still follows it).
    pub term: Term,
    /// The round answered.
    pub round: u64,
}

/// A follower asks its leader for a read index (thesis §6.4, "follower reads"): the leader
/// answers with its commit index once a [`LeaderCheck`] round started after this request
/// has confirmed it still leads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadIndex {
    /// The follower's term.
    pub term: Term,
    /// The follower's request number, echoed in the answer.
    pub id: u64,
}

/// Answer to a [`ReadIndex`] request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadIndexResponse {
    /// The sender's term.
    pub term: Term,
    /// The request answered.
    pub id: u64,
    /// The read index: a read that reflects every entry up to it is linearizable. 0 means
    /// refused (the receiver does not lead): ask again where the leader is.
    pub index: LogIndex,
    /// Term of the leader's entry at `index` (0 when refused): a follower holding that entry
    /// with that term knows its log matches up to there (§5.3) and may commit it at once.
    pub index_term: Term,
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
    /// A chunk of the leader's snapshot (§7).
    InstallSnapshot(InstallSnapshot),
    /// Answer to an `InstallSnapshot` chunk.
    InstallSnapshotResponse(InstallSnapshotResponse),
    /// The leader hands over: campaign now (thesis §3.10).
    TimeoutNow(TimeoutNow),
    /// A RequestVote from a candidate that campaigns because its leader handed over
    /// (TimeoutNow): voters do not apply leader stickiness to it (thesis §4.2.3, the exception
    /// for leadership transfer). Answered with a `RequestVoteResponse`.
    TransferVote(RequestVote),
    /// A leader confirms it still leads (thesis §6.4).
    LeaderCheck(LeaderCheck),
    /// Answer to a `LeaderCheck`.
    LeaderCheckResponse(LeaderCheckResponse),
    /// A follower asks the leader for a read index (thesis §6.4).
    ReadIndex(ReadIndex),
    /// Answer to a `ReadIndex`.
    ReadIndexResponse(ReadIndexResponse),
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
            Message::InstallSnapshot(m) => m.term,
            Message::InstallSnapshotResponse(m) => m.term,
            Message::TimeoutNow(m) => m.term,
            Message::TransferVote(m) => m.term,
            Message::LeaderCheck(m) => m.term,
            Message::LeaderCheckResponse(m) => m.term,
            Message::ReadIndex(m) => m.term,
            Message::ReadIndexResponse(m) => m.term,
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
            Message::InstallSnapshot(_) => "InstallSnapshot",
            Message::InstallSnapshotResponse(_) => "InstallSnapshotResponse",
            Message::TimeoutNow(_) => "TimeoutNow",
            Message::TransferVote(_) => "TransferVote",
            Message::LeaderCheck(_) => "LeaderCheck",
            Message::LeaderCheckResponse(_) => "LeaderCheckResponse",
            Message::ReadIndex(_) => "ReadIndex",
            Message::ReadIndexResponse(_) => "ReadIndexResponse",
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
