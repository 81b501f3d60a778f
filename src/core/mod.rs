//! The sans-IO Raft core: a pure, deterministic state machine.
//!
//! No IO, clocks, threads or global randomness here (enforced by `tests/tidy.rs`): time is a
//! [`Raft::tick`], randomness a PRNG seeded through [`Options::seed`], and every effect is
//! returned in a [`Ready`] for the runtime to carry out in its documented order.

mod election;
mod invariants;
mod membership;
mod membership_change;
#[cfg(test)]
mod membership_tests;
mod message;
mod options;
mod planted;
mod progress;
mod raft;
mod raft_log;
mod read_index;
#[cfg(test)]
mod read_transfer_tests;
mod ready;
mod replication;
#[cfg(test)]
mod replication_tests;
mod rng;
mod snapshot;
#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod test_net;
#[cfg(test)]
mod tests;
mod transfer;
mod types;
mod validate;
#[cfg(test)]
mod validate_tests;
mod vote_log;
#[cfg(test)]
mod vote_log_tests;

pub use membership::{
    Member, MemberRole, Membership, MembershipChange, MembershipDecodeError, MEMBERSHIP_MAGIC, MEMBERSHIP_VERSION,
    MEMBERS_MAX, MEMBER_URL_BYTES_MAX,
};
pub use membership_change::MembershipError;
pub use message::{
    snapshot_chunk_len, AppendEntries, AppendEntriesResponse, Entry, InstallSnapshot, InstallSnapshotResponse,
    LeaderCheck, LeaderCheckResponse, Message, Outgoing, ReadIndex, ReadIndexResponse, RequestVote,
    RequestVoteResponse, TimeoutNow, COMMAND_BYTES_MAX, SNAPSHOT_CHUNK_BYTES_MAX,
};
pub use planted::PlantedBugs;
pub use progress::{Progress, ProgressState, SnapshotSend};
pub use raft::{Options, Raft, INDEX_MAX, TERM_MAX};
pub use raft_log::RaftLog;
pub use read_index::ReadState;
pub use ready::{Ignored, IndexRange, Invalid, ProposeError, Ready, Role, SnapshotChunk, SnapshotInstall, SoftState};
pub use rng::SplitMix64;
pub use snapshot::{SnapshotInfo, SNAPSHOT_CHUNKS_IN_FLIGHT};
pub use transfer::TransferError;
pub use types::{HardState, LogIndex, NodeId, Term};
pub use vote_log::{VoteKind, VoteRecord, VoteVerdict, VOTE_LOG_LEN};
