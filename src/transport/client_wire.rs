//! The client protocol spoken on a server's client endpoint (a ZeroMQ ROUTER socket).
//!
//! A client sends one [`ClientRequest`] per message (REQ or DEALER with an empty delimiter
//! frame); the server answers with one [`ClientResponse`] carrying the same `request_id`.
//! Byte layout: docs/wire.md. Variants are only ever appended.

use crate::core::{LogIndex, MemberRole, MembershipChange, NodeId, Role, Term, VoteKind, VoteVerdict};
use serde::{Deserialize, Serialize};

/// Version of the client protocol; the first two bytes of every request and response.
pub const CLIENT_WIRE_VERSION: u16 = 1;

/// Largest client request frame accepted, tag included: 1.5 MiB + 2 KiB (1,574,912 bytes), so
/// that a `Propose` carrying the largest command
/// ([`COMMAND_BYTES_MAX`](crate::core::COMMAND_BYTES_MAX)) fits with its 30 bytes of request
/// framing and a 32-byte tag. A status request is 20 bytes.
pub const CLIENT_REQUEST_BYTES_MAX: usize = crate::core::COMMAND_BYTES_MAX + 1024;

/// A request to a server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRequest {
    /// [`CLIENT_WIRE_VERSION`].
    pub version: u16,
    /// Must match the server's cluster; a client with another config is refused.
    pub cluster_id: u64,
    /// Echoed in the response so a client can match answers to questions.
    pub request_id: u64,
    /// What is asked.
    pub body: Request,
}

/// What a client can ask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// The server's [`Status`].
    Status,
    /// Append `command` to the replicated log and answer with the state machine's response
    /// once it is committed and applied (for the built-in store: an encoded
    /// [`KvCommand`](crate::kv::KvCommand), answered with an encoded
    /// [`KvResponse`](crate::kv::KvResponse)). Only the leader accepts it.
    Propose {
        /// The command bytes (never empty).
        #[serde(with = "serde_bytes")]
        command: Vec<u8>,
    },
    /// The server's counters of inputs dropped or ignored, by reason (answered with
    /// [`Response::Counters`]): transport drops (bad MAC, wrong cluster, garbage, …) and the
    /// core's (invalid messages by rule, stale terms, votes ignored for a live leader, …).
    Counters,
    /// Take a snapshot of the state machine now and compact the log behind it (§7), whatever
    /// the configured triggers say; answered with [`Response::Snapshot`] once it is durable
    /// (at once with the latest one when nothing was applied since). Any server, not only the
    /// leader.
    Snapshot,
    /// Bytes of a snapshot image this server holds, from `offset` (answered with
    /// [`Response::SnapshotChunk`]): the latest one when `index` is 0, else the one ending at
    /// (`index`, `term`) while it is still the latest. `leader backup` uses it.
    FetchSnapshot {
        /// The snapshot's last index (0: the latest).
        index: LogIndex,
        /// The snapshot's last term (ignored when `index` is 0).
        term: Term,
        /// First byte wanted.
        offset: u64,
    },
    /// A linearizable read that costs no log entry (thesis §6.4): the server answers `query`
    /// from its state machine (for the built-in store: an encoded
    /// [`KvCommand`](crate::kv::KvCommand) with a `Get`, answered with an encoded
    /// [`KvResponse`](crate::kv::KvResponse)) once it has applied a read index, with
    /// [`Response::Applied`] whose `index` is that read index. Any server: a follower asks its
    /// leader for the read index (a follower read); a server that knows no leader answers
    /// [`ClientError::NotLeader`].
    Read {
        /// The query bytes (never empty).
        #[serde(with = "serde_bytes")]
        query: Vec<u8>,
        /// How the read index is found.
        mode: ReadMode,
    },
    /// Hand leadership over (thesis §3.10) to `to`, or to the most up-to-date follower when
    /// `None`; answered with [`Response::Transferred`] once the new leader leads, or
    /// [`ClientError::Unavailable`] when the transfer was abandoned. Only the leader accepts it.
    TransferLeadership {
        /// The server to hand over to.
        to: Option<NodeId>,
    },
    /// Everything an operator asks when something is wrong (answered with
    /// [`Response::Inspection`]): the [`Status`], the OS process id, the last decisions on vote
    /// requests with their reasons, the last contact with each peer, election counts and every
    /// counter. Any server; `leader status --verbose` and `leader top` use it.
    Inspect,
    /// Change the membership by one server (thesis §4.1); answered with
    /// [`Response::MembershipChanged`] once the change is committed, or refused
    /// ([`ClientError::Unavailable`] with the reason: a change in flight, no live quorum, …).
    /// Only the leader accepts it.
    ChangeMembership {
        /// The change.
        change: MembershipChange,
    },
    /// The membership in force on this server (answered with [`Response::Membership`]), so a
    /// client can follow servers that were added at runtime. Any server.
    Membership,
}

/// How a [`Request::Read`] finds its read index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ReadMode {
    /// ReadIndex (thesis §6.4): the leader's commit index, confirmed by a round of
    /// [`LeaderCheck`](crate::core::LeaderCheck)s to a majority. Safe whatever the clocks do.
    #[default]
    ReadIndex,
    /// Lease read (thesis §6.4.1): the leader answers without a round while it holds a lease
    /// from its last confirmed round; safe only under the clock assumption in the README.
    /// Served only by a leader whose config enables `lease_reads`; otherwise (and on a
    /// follower) the read falls back to ReadIndex.
    Lease,
}

/// Largest chunk of a snapshot image in one [`Response::SnapshotChunk`] (1 MiB).
pub const FETCH_SNAPSHOT_BYTES_MAX: usize = 1 << 20;

/// A server's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientResponse {
    /// [`CLIENT_WIRE_VERSION`].
    pub version: u16,
    /// The request's id (0 when the request could not be decoded).
    pub request_id: u64,
    /// The answer.
    pub body: Response,
}

/// The answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Answer to [`Request::Status`].
    Status(Status),
    /// The request was refused.
    Error(ClientError),
    /// Answer to [`Request::Propose`]: committed at `index`, applied, with this result.
    Applied {
        /// Log index of the command.
        index: LogIndex,
        /// The state machine's response.
        #[serde(with = "serde_bytes")]
        result: Vec<u8>,
    },
    /// Answer to [`Request::Counters`]: every counter by name, in a fixed order. Names are
    /// stable; new counters are appended, so a client should match by name.
    Counters(Vec<Counter>),
    /// Answer to [`Request::Snapshot`]: the server's latest durable snapshot.
    Snapshot {
        /// Its last index.
        index: LogIndex,
        /// Its last term.
        term: Term,
        /// Size of its image in bytes.
        total_len: u64,
    },
    /// Answer to [`Request::FetchSnapshot`]: up to [`FETCH_SNAPSHOT_BYTES_MAX`] bytes of an
    /// image (empty at its end).
    SnapshotChunk {
        /// The snapshot's last index.
        index: LogIndex,
        /// The snapshot's last term.
        term: Term,
        /// Size of its image in bytes.
        total_len: u64,
        /// Where `data` starts in the image.
        offset: u64,
        /// The bytes.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Answer to [`Request::TransferLeadership`]: `leader` leads in `term`.
    Transferred {
        /// The new leader.
        leader: NodeId,
        /// Its term.
        term: Term,
    },
    /// Answer to [`Request::Inspect`].
    Inspection(Box<Inspection>),
    /// Answer to [`Request::ChangeMembership`]: the change's entry is committed at `index`.
    MembershipChanged {
        /// Its entry's index.
        index: LogIndex,
    },
    /// Answer to [`Request::Membership`].
    Membership(MembershipInfo),
}

/// The membership in force on a server, as [`Request::Membership`] answers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipInfo {
    /// Index of the entry that holds it (0: the snapshot's or config.json's).
    pub index: LogIndex,
    /// Whether that entry is committed on this server.
    pub committed: bool,
    /// Every member, in pid order.
    pub members: Vec<MemberInfo>,
}

/// One member, as [`MembershipInfo`] lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Its pid.
    pub pid: NodeId,
    /// Voter or learner.
    pub role: MemberRole,
    /// Its peer url (empty for members of config.json's bootstrap membership: see the config).
    pub peer_url: String,
    /// Its client url (empty likewise).
    pub client_url: String,
}

/// A server's answer to [`Request::Inspect`]: why it is in the state it is in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inspection {
    /// What [`Request::Status`] answers.
    pub status: Status,
    /// The server's OS process id (for `kill`; in-process servers share one).
    pub os_pid: u32,
    /// Milliseconds since the server started.
    pub uptime_ms: u64,
    /// Its recent decisions on vote requests, oldest first (at most
    /// [`VOTE_LOG_LEN`](crate::core::VOTE_LOG_LEN)).
    pub votes: Vec<VoteSeen>,
    /// For each peer heard from: milliseconds since its last authentic, decodable envelope.
    pub last_contact: Vec<PeerContact>,
    /// Elections this server started (as a candidate, after its pre-vote if any).
    pub elections_started: u64,
    /// Elections this server won.
    pub elections_won: u64,
    /// What [`Request::Counters`] answers.
    pub counters: Vec<Counter>,
}

/// One decision on a vote request, as [`Inspection::votes`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteSeen {
    /// The candidate.
    pub candidate: NodeId,
    /// The term it asked for.
    pub term: Term,
    /// Vote, pre-vote or transfer vote.
    pub kind: VoteKind,
    /// Granted, or why not.
    pub verdict: VoteVerdict,
    /// Milliseconds since the decision (to the tick).
    pub ms_ago: u64,
}

/// The last contact with one peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerContact {
    /// The peer.
    pub pid: NodeId,
    /// Milliseconds since its last authentic, decodable envelope arrived.
    pub ms_ago: u64,
}

/// One named counter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// snake_case name, e.g. `bad_mac` or `invalid_entries_not_contiguous`.
    pub name: String,
    /// Count since the server started.
    pub value: u64,
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientError {
    /// The request did not decode (or was oversize); the text says why.
    BadRequest(String),
    /// The request's cluster id is not this server's.
    WrongCluster {
        /// This server's cluster id.
        expected: u64,
    },
    /// Only the leader accepts proposals; retry at `leader` (if known).
    NotLeader {
        /// The leader this server knows of.
        leader: Option<NodeId>,
    },
    /// The server lost leadership (or its entry was overwritten) before the command was
    /// committed: it may or may not take effect. Retry with the same client id and sequence
    /// number; duplicate detection applies it at most once.
    Dropped,
    /// Too many requests are waiting; retry later.
    Busy,
    /// The request cannot be served now, for the reason given (e.g. a leadership transfer
    /// that was abandoned, or a state machine that answers no queries).
    Unavailable(String),
    /// The server requires the cluster key and the request's frame did not verify under it
    /// (no tag, or a tag under another key). Sent unsealed, with `request_id` 0, one small
    /// frame per such request: a keyless client can read it; a client with another key sees a
    /// frame that fails its own check, and counts it (docs/security.md).
    Unauthenticated,
}

/// One server's view of itself, as `leader status` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The server's pid.
    pub pid: NodeId,
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub term: Term,
    /// The leader it knows of in `term`.
    pub leader: Option<NodeId>,
    /// Its vote in `term`.
    pub voted_for: Option<NodeId>,
    /// Highest index known committed.
    pub commit_index: LogIndex,
    /// Highest index applied to the state machine.
    pub last_applied: LogIndex,
    /// Index of the last log entry.
    pub last_index: LogIndex,
}
