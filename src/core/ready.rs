//! What the core asks of the runtime, and the small value types around it.

use super::message::Outgoing;
use super::read_index::ReadState;
use super::types::{HardState, LogIndex, NodeId, Term};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The three roles of Figure 4. On the wire (client status) as a bincode enum tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Passive: answers leaders and candidates.
    Follower,
    /// Campaigning for votes in its current term.
    Candidate,
    /// Replicates the log and sends heartbeats.
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

/// A run of consecutive log indexes `first..=last`; empty when `first > last`. `Ready` names
/// entries by range and the runtime reads them with [`Raft::entries`](super::Raft::entries),
/// so handing entries to storage and the state machine copies nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexRange {
    /// First index of the run.
    pub first: LogIndex,
    /// Last index of the run.
    pub last: LogIndex,
}

impl IndexRange {
    /// The empty range.
    pub const EMPTY: IndexRange = IndexRange { first: LogIndex(1), last: LogIndex(0) };

    /// True when the range holds no index.
    pub fn is_empty(&self) -> bool {
        self.first > self.last
    }

    /// Number of indexes in the range.
    pub fn len(&self) -> u64 {
        if self.is_empty() {
            0
        } else {
            self.last.0 - self.first.0 + 1
        }
    }
}

impl Default for IndexRange {
    fn default() -> Self {
        IndexRange::EMPTY
    }
}

/// Everything the runtime must do after a batch of inputs.
///
/// Handling order (DESIGN.md, Raft thesis §3.8), all of it before calling into the core again:
/// 1. persist: truncate the log from `truncate_from`, append `entries` (read them with
///    [`Raft::entries`](super::Raft::entries)), save `hard_state`;
///    when `must_sync`, make all of it durable (fsync) — votes and acknowledgements in step 2
///    promise exactly this state;
/// 2. send `messages` (or send them before step 1 when `send_before_persist`);
/// 3. apply `committed_entries` to the state machine, in order;
/// 4. publish `soft_state`; then call [`Raft::advance`](super::Raft::advance), which tells the
///    core that step 1 is durable (the leader counts itself towards commit only then, §10.2.1).
///
/// A runtime with an asynchronous writer may take further Readies while earlier writes are in
/// flight, provided writes complete in order, each Ready's messages (unless
/// `send_before_persist`) and committed entries wait for its own write and every earlier one,
/// and it reports each completed write with [`Raft::persisted`](super::Raft::persisted)
/// instead of calling `advance`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// New hard state to persist, present only when the term or vote changed.
    pub hard_state: Option<HardState>,
    /// Remove every log entry at or after this index before appending (a §5.3 conflict).
    pub truncate_from: Option<LogIndex>,
    /// Entries to append to the log.
    pub entries: IndexRange,
    /// True when step 1 must reach stable storage (fsync) before the Ready is done.
    pub must_sync: bool,
    /// False when no message promises anything about step 1: a leader's AppendEntries and
    /// heartbeats do not, so the runtime may send them before its own fsync, overlapping the
    /// leader's disk write with the followers' (thesis §10.2.1). The leader still counts
    /// itself towards commit only after [`Raft::advance`](super::Raft::advance).
    pub send_before_persist: bool,
    /// Messages to send, in order.
    pub messages: Vec<Outgoing>,
    /// Entries newly committed, to apply in order.
    pub committed_entries: IndexRange,
    /// New soft state, present only when it changed.
    pub soft_state: Option<SoftState>,
    /// Follower: chunks of a leader's snapshot accepted in order, to write into the incoming
    /// image before this Ready's messages (which acknowledge them) leave. After the chunk with
    /// `last`, the runtime checks the whole image and reports with
    /// [`Raft::snapshot_received`](super::Raft::snapshot_received).
    pub snapshot_chunks: Vec<SnapshotChunk>,
    /// Follower: a received snapshot the core has adopted (§7): make it the durable snapshot
    /// (discarding the storage's log unless `retain_log`) as part of step 1, and restore the
    /// state machine from it before applying anything after it (step 3).
    pub install: Option<SnapshotInstall>,
    /// Outcomes of reads asked with [`Raft::read_index`](super::Raft::read_index): answer each
    /// once the state machine has applied its index (they promise nothing about the disk, so
    /// they need not wait for this Ready's write).
    pub read_states: Vec<ReadState>,
}

/// A chunk of a snapshot image to write at `offset` of the incoming image (offset 0 starts a
/// new image, replacing any partial one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotChunk {
    /// The snapshot's last index.
    pub index: LogIndex,
    /// The snapshot's last term.
    pub term: Term,
    /// Where `data` goes in the image.
    pub offset: u64,
    /// The bytes.
    pub data: Vec<u8>,
    /// True for the chunk that completes the image.
    pub last: bool,
}

/// A snapshot to install (see [`Ready::install`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotInstall {
    /// The snapshot's last index: the log now starts after it.
    pub index: LogIndex,
    /// The snapshot's last term.
    pub term: Term,
    /// The log held the entry (`index`, `term`), so the entries after it stay (§7 step 6);
    /// false: the whole log is discarded (§7 step 7).
    pub retain_log: bool,
}

impl Ready {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.truncate_from.is_none()
            && self.entries.is_empty()
            && self.messages.is_empty()
            && self.committed_entries.is_empty()
            && self.soft_state.is_none()
            && self.snapshot_chunks.is_empty()
            && self.install.is_none()
            && self.read_states.is_empty()
    }
}

/// Inputs the core ignored on purpose, by reason (expected conditions are counted, not panics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ignored {
    /// Messages from a server that is not a peer.
    pub unknown_peer: u64,
    /// Responses carrying an older term than ours (§5.1: stale).
    pub stale_term: u64,
    /// Acknowledgements or rejections answering appends the leader no longer cares about.
    pub stale_response: u64,
    /// AppendEntries from another "leader" of our own term while we lead: only a faulty or
    /// forged peer can send it (Election Safety, §5.2).
    pub conflicting_leader: u64,
    /// Messages whose term is above [`TERM_MAX`](super::TERM_MAX): forged or corrupt, and
    /// obeying one would leave no room for the next election.
    pub term_too_large: u64,
    /// (Pre-)vote requests ignored because this server heard from a current leader within
    /// the minimum election timeout (leader stickiness, thesis §4.2.3). Not an error: a
    /// server that was paused, restarted or cut off asks before it learns of the leader.
    pub leader_sticky: u64,
    /// Messages no correct peer sends, dropped before they touched any state, by reason
    /// (indexed by [`Invalid`] as `usize`).
    pub invalid: [u64; Invalid::ALL.len()],
}

impl Ignored {
    /// Count one invalid message.
    pub fn count_invalid(&mut self, reason: Invalid) {
        self.invalid[reason as usize] += 1;
    }

    /// Invalid messages dropped, all reasons together.
    pub fn invalid_total(&self) -> u64 {
        self.invalid.iter().sum()
    }

    /// Every counter with a stable snake_case name, for status output and metrics.
    pub fn by_name(&self) -> Vec<(&'static str, u64)> {
        let mut out = vec![
            ("unknown_peer", self.unknown_peer),
            ("stale_term", self.stale_term),
            ("stale_response", self.stale_response),
            ("conflicting_leader", self.conflicting_leader),
            ("term_too_large", self.term_too_large),
            ("leader_sticky", self.leader_sticky),
        ];
        out.extend(Invalid::ALL.iter().map(|&r| (r.name(), self.invalid[r as usize])));
        out
    }
}

/// Why a decodable message was dropped as invalid: it breaks a rule every correct peer keeps
/// (docs/wire.md, "What a peer must never send"). A buggy or lying peer can send any of these;
/// the core drops the message before it touches term, vote, log or timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Invalid {
    /// AppendEntries whose `leader_id` is not its sender.
    LeaderIdMismatch,
    /// RequestVote or PreVote whose `candidate_id` is not its sender.
    CandidateIdMismatch,
    /// A log position that cannot exist: a term above the message's own term, or index 0
    /// with a non-zero term (or the reverse: every entry at index >= 1 has a term >= 1).
    LogPositionInvalid,
    /// AppendEntries entries that do not continue `prev_log_index` one by one (or whose
    /// indexes overflow).
    EntriesNotContiguous,
    /// AppendEntries entries whose terms decrease, start below `prev_log_term`, are 0, or
    /// exceed the message's term (a leader only sends entries of its term or earlier, §5.3).
    EntryTermsInvalid,
    /// AppendEntries that would overwrite an entry at or below our commit index: committed
    /// entries never change (§5.4, Leader Completeness).
    OverwritesCommitted,
    /// AppendEntriesResponse to the leader of its term acknowledging or rejecting an index
    /// past the leader's last entry (the leader never sent it).
    AckBeyondLog,
    /// AppendEntriesResponse whose conflict hints are impossible (a conflict term above the
    /// response's term).
    HintInvalid,
    /// InstallSnapshot whose chunk cannot be part of its image: empty, larger than
    /// `SNAPSHOT_CHUNK_BYTES_MAX`, past `total_len`; or a response naming an offset past it.
    SnapshotChunkInvalid,
    /// InstallSnapshot whose chunk does not match its CRC (damaged in transit).
    SnapshotChunkChecksum,
    /// A snapshot image, complete, that does not decode or does not match the snapshot the
    /// chunks named (the leader or the transfer is broken): discarded, the transfer restarts.
    SnapshotImageInvalid,
    /// LeaderCheckResponse to the leader of its term naming a round it never sent.
    LeaderCheckRoundInvalid,
    /// AppendEntries carrying a membership entry (data starting with the magic) that does not
    /// decode, or one that changes more than one server (thesis §4.1).
    MembershipEntryInvalid,
}

impl Invalid {
    /// Every reason, in counter order.
    pub const ALL: [Invalid; 13] = [
        Invalid::LeaderIdMismatch,
        Invalid::CandidateIdMismatch,
        Invalid::LogPositionInvalid,
        Invalid::EntriesNotContiguous,
        Invalid::EntryTermsInvalid,
        Invalid::OverwritesCommitted,
        Invalid::AckBeyondLog,
        Invalid::HintInvalid,
        Invalid::SnapshotChunkInvalid,
        Invalid::SnapshotChunkChecksum,
        Invalid::SnapshotImageInvalid,
        Invalid::LeaderCheckRoundInvalid,
        Invalid::MembershipEntryInvalid,
    ];

    /// Stable snake_case name (status output, logs).
    pub fn name(self) -> &'static str {
        match self {
            Invalid::LeaderIdMismatch => "invalid_leader_id",
            Invalid::CandidateIdMismatch => "invalid_candidate_id",
            Invalid::LogPositionInvalid => "invalid_log_position",
            Invalid::EntriesNotContiguous => "invalid_entries_not_contiguous",
            Invalid::EntryTermsInvalid => "invalid_entry_terms",
            Invalid::OverwritesCommitted => "invalid_overwrites_committed",
            Invalid::AckBeyondLog => "invalid_ack_beyond_log",
            Invalid::HintInvalid => "invalid_hint",
            Invalid::SnapshotChunkInvalid => "invalid_snapshot_chunk",
            Invalid::SnapshotChunkChecksum => "invalid_snapshot_chunk_checksum",
            Invalid::SnapshotImageInvalid => "invalid_snapshot_image",
            Invalid::LeaderCheckRoundInvalid => "invalid_leader_check_round",
            Invalid::MembershipEntryInvalid => "invalid_membership_entry",
        }
    }
}

/// Why a proposal was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// Only the leader appends (§5.3); the hint is the leader this server knows, if any.
    NotLeader {
        /// The current leader, if known.
        leader_hint: Option<NodeId>,
    },
    /// Empty commands are reserved for the leader's no-op entry.
    Empty,
    /// The leader is handing over (§3.10) and takes no proposals meanwhile.
    Transferring {
        /// The server it hands over to.
        to: NodeId,
    },
    /// The command starts with [`MEMBERSHIP_MAGIC`](super::MEMBERSHIP_MAGIC): reserved for
    /// membership entries, so a command can never be taken for a membership change.
    Reserved,
}
