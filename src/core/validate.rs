//! Every message is checked before it touches state: a peer in another language with a bug,
//! or anyone on the network of a cluster without a key, can send any decodable message, and
//! none of them may crash the server or move its term, vote, log or timers against the rules.
//!
//! The checks are the promises every correct peer keeps (docs/wire.md lists them for peer
//! authors). A message that breaks one is dropped and counted by [`Invalid`] reason; the
//! core's own assertions then only ever fire on a bug of ours.

use super::message::{
    AppendEntries, AppendEntriesResponse, InstallSnapshot, Message, RequestVote, SNAPSHOT_CHUNK_BYTES_MAX,
};
use super::raft::{Raft, INDEX_MAX};
use super::ready::{Invalid, Role};
use super::types::{LogIndex, NodeId, Term};

impl Raft {
    /// `Ok` when `message` from `from` could have been sent by a correct peer, given what this
    /// server knows (its log and commit index); else why not. Reads state, changes nothing.
    pub(super) fn validate(&self, from: NodeId, message: &Message) -> Result<(), Invalid> {
        match message {
            Message::RequestVote(m) | Message::PreVote(m) | Message::TransferVote(m) => validate_vote_request(from, m),
            Message::RequestVoteResponse(_) | Message::PreVoteResponse(_) => Ok(()),
            Message::AppendEntries(m) => {
                validate_append_shape(from, m)?;
                self.validate_append_against_log(m)
            }
            Message::AppendEntriesResponse(m) => self.validate_append_response(m),
            Message::InstallSnapshot(m) => {
                validate_install_snapshot(from, m)?;
                self.validate_snapshot_against_log(m)
            }
            // Checked against the transfer it answers (handle_install_snapshot_response).
            Message::InstallSnapshotResponse(_) => Ok(()),
            Message::TimeoutNow(m) if m.leader_id != from => Err(Invalid::LeaderIdMismatch),
            Message::LeaderCheck(m) if m.leader_id != from => Err(Invalid::LeaderIdMismatch),
            Message::LeaderCheckResponse(m)
                if self.role == Role::Leader && m.term == self.current_term && m.round > self.reads.round =>
            {
                Err(Invalid::LeaderCheckRoundInvalid)
            }
            Message::TimeoutNow(_)
            | Message::LeaderCheck(_)
            | Message::LeaderCheckResponse(_)
            | Message::ReadIndex(_)
            | Message::ReadIndexResponse(_) => Ok(()),
        }
    }

    /// §5.4 again: a snapshot covers committed entries only, so one whose last entry has
    /// another term than our committed entry at that index comes from no correct leader.
    fn validate_snapshot_against_log(&self, m: &InstallSnapshot) -> Result<(), Invalid> {
        if m.term < self.current_term || m.last_index > self.commit_index {
            return Ok(());
        }
        match self.log.term_at(m.last_index) {
            Some(term) if term != m.last_term => Err(Invalid::OverwritesCommitted),
            _ => Ok(()),
        }
    }

    /// §5.4: committed entries never change, so an AppendEntries whose entries conflict with
    /// ours at or below `commit_index` comes from a leader that lacks committed entries —
    /// impossible for a correct one (Leader Completeness). Refuse it whole, before truncating.
    /// A message of an earlier term is merely stale (a deposed leader's, delayed): the term
    /// rule refuses it without touching the log, so only current or later terms are checked.
    fn validate_append_against_log(&self, m: &AppendEntries) -> Result<(), Invalid> {
        if m.term < self.current_term {
            return Ok(()); // refused by the term rule, changing nothing
        }
        let (offset, offset_term) = self.log.compacted();
        if m.prev_log_index < offset {
            // Entries up to the offset are in our snapshot, so committed: the message's entry
            // there (if it carries it) must be ours, or it would replace committed state.
            if m.entries.iter().any(|e| e.index == offset && e.term != offset_term) {
                return Err(Invalid::OverwritesCommitted);
            }
        } else if self.log.term_at(m.prev_log_index) != Some(m.prev_log_term) {
            return Ok(()); // refused by the term rule or the consistency check, changing nothing
        }
        let conflict = m.entries.iter().find(|e| self.log.term_at(e.index).is_some_and(|t| t != e.term));
        match conflict {
            Some(entry) if entry.index <= self.commit_index => Err(Invalid::OverwritesCommitted),
            _ => Ok(()),
        }
    }

    /// A leader only hears answers to appends it sent in its term: never about an index past
    /// its last entry (its log does not shrink within its term).
    fn validate_append_response(&self, m: &AppendEntriesResponse) -> Result<(), Invalid> {
        if !m.success && m.conflict_term > m.term {
            return Err(Invalid::HintInvalid);
        }
        let answers_my_term = self.role == Role::Leader && m.term == self.current_term;
        if answers_my_term && m.match_index > self.log.last_index() {
            return Err(Invalid::AckBeyondLog);
        }
        Ok(())
    }
}

/// Index 0 is the empty prefix (term 0); every real entry has a term of at least 1, and no
/// sender can hold an entry of a term later than its own.
fn validate_log_position(index: LogIndex, term: Term, message_term: Term) -> Result<(), Invalid> {
    if (index.0 == 0) != (term.0 == 0) || term > message_term {
        return Err(Invalid::LogPositionInvalid);
    }
    Ok(())
}

/// The stateless rules of an InstallSnapshot chunk: sent by the leader it names, for a real
/// log position no later than its term, and a non-empty chunk within its image and within
/// [`SNAPSHOT_CHUNK_BYTES_MAX`].
fn validate_install_snapshot(from: NodeId, m: &InstallSnapshot) -> Result<(), Invalid> {
    if m.leader_id != from {
        return Err(Invalid::LeaderIdMismatch);
    }
    // Index 0 is no entry; past INDEX_MAX is forged (a log grows one entry at a time: 2^63 is
    // never reached), and would overflow the index arithmetic after it is installed.
    if m.last_index.0 == 0 || m.last_index > INDEX_MAX {
        return Err(Invalid::LogPositionInvalid);
    }
    validate_log_position(m.last_index, m.last_term, m.term)?;
    let len = m.data.len();
    let end = m.offset.checked_add(len as u64);
    if len == 0 || len > SNAPSHOT_CHUNK_BYTES_MAX || end.is_none_or(|end| end > m.total_len) {
        return Err(Invalid::SnapshotChunkInvalid);
    }
    Ok(())
}

fn validate_vote_request(from: NodeId, m: &RequestVote) -> Result<(), Invalid> {
    if m.candidate_id != from {
        return Err(Invalid::CandidateIdMismatch);
    }
    validate_log_position(m.last_log_index, m.last_log_term, m.term)
}

/// The stateless rules of an AppendEntries: the sender is the leader it names, and its
/// entries continue `prev_log_index` one by one with terms that never decrease (§5.3, Log
/// Matching) and are never above the leader's own term.
fn validate_append_shape(from: NodeId, m: &AppendEntries) -> Result<(), Invalid> {
    if m.leader_id != from {
        return Err(Invalid::LeaderIdMismatch);
    }
    validate_log_position(m.prev_log_index, m.prev_log_term, m.term)?;
    let mut previous_term = m.prev_log_term;
    for (offset, entry) in m.entries.iter().enumerate() {
        let expected = m.prev_log_index.0.checked_add(offset as u64 + 1).ok_or(Invalid::EntriesNotContiguous)?;
        if entry.index.0 != expected {
            return Err(Invalid::EntriesNotContiguous);
        }
        if entry.term.0 == 0 || entry.term < previous_term || entry.term > m.term {
            return Err(Invalid::EntryTermsInvalid);
        }
        if matches!(super::Membership::decode(&entry.data), Some(Err(_))) {
            return Err(Invalid::MembershipEntryInvalid);
        }
        previous_term = entry.term;
    }
    Ok(())
}
