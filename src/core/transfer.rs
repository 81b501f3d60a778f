//! Leadership transfer (thesis §3.10): the leader stops taking proposals, brings the target's
//! log up to date, and sends it [`TimeoutNow`]; the target campaigns at once (no pre-vote) with
//! [`TransferVote`](super::Message::TransferVote)s that voters answer despite leader
//! stickiness. A transfer not done within an election timeout is abandoned and the leader
//! takes proposals again.

use super::message::{Message, TimeoutNow};
use super::raft::Raft;
use super::ready::Role;
use super::types::NodeId;
use std::fmt;

/// A transfer in progress (leader only).
#[derive(Clone, Copy, Debug)]
pub(super) struct Transfer {
    /// The server handed over to.
    pub(super) target: NodeId,
    /// Ticks since it started.
    elapsed: u32,
}

/// Why [`Raft::transfer_leadership`] did not start a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferError {
    /// Only the leader hands over; the hint is the leader this server knows, if any.
    NotLeader {
        /// The current leader, if known.
        leader_hint: Option<NodeId>,
    },
    /// The target is not a server of this cluster.
    UnknownServer(NodeId),
    /// A transfer to another server is in progress.
    InProgress {
        /// Its target.
        to: NodeId,
    },
    /// A cluster of one has nobody to hand over to.
    NoOtherServer,
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferError::NotLeader { leader_hint: Some(l) } => write!(f, "not the leader (server {l} is)"),
            TransferError::NotLeader { leader_hint: None } => write!(f, "not the leader (no leader known)"),
            TransferError::UnknownServer(id) => write!(f, "server {id} is not in the cluster"),
            TransferError::InProgress { to } => write!(f, "a transfer to server {to} is in progress"),
            TransferError::NoOtherServer => write!(f, "a cluster of one server has nobody to hand over to"),
        }
    }
}

impl Raft {
    /// Hand leadership to `to`, or to the most up-to-date follower when `None` (thesis §3.10).
    /// Returns the target (this server itself when asked to hand over to itself: nothing to
    /// do). Until the transfer ends, proposals are refused with the target as leader hint; it
    /// ends when a higher term reaches this server (normally the target's TransferVote), or is
    /// abandoned after an election timeout ([`Raft::transfer_target`] is `None` again while
    /// this server still leads).
    pub fn transfer_leadership(&mut self, to: Option<NodeId>) -> Result<NodeId, TransferError> {
        if self.role != Role::Leader {
            return Err(TransferError::NotLeader { leader_hint: self.leader_id });
        }
        let target = match to {
            Some(id) if id == self.id => return Ok(id),
            Some(id) if !self.membership().is_voter(id) => return Err(TransferError::UnknownServer(id)),
            Some(id) => id,
            None => self.most_up_to_date_follower().ok_or(TransferError::NoOtherServer)?,
        };
        if let Some(t) = self.transfer {
            return if t.target == target { Ok(target) } else { Err(TransferError::InProgress { to: t.target }) };
        }
        log::info!("{}: handing leadership of term {} over to {target}", self.id, self.current_term);
        self.transfer = Some(Transfer { target, elapsed: 0 });
        self.continue_transfer();
        self.assert_invariants();
        Ok(target)
    }

    /// The server a transfer in progress hands over to.
    pub fn transfer_target(&self) -> Option<NodeId> {
        self.transfer.map(|t| t.target)
    }

    /// The follower with the most of our log (ties: one heard from lately, then the lowest id).
    fn most_up_to_date_follower(&self) -> Option<NodeId> {
        self.progress
            .iter()
            .filter(|(id, _)| self.membership().is_voter(**id))
            .max_by_key(|(id, p)| (p.match_index, self.recent_active.contains(id), std::cmp::Reverse(**id)))
            .map(|(id, _)| *id)
    }

    /// Send the target what it lacks, or — once its log matches ours to the end — TimeoutNow.
    /// Called when the transfer starts, on each of the target's acknowledgements and on each
    /// heartbeat (a lost TimeoutNow is sent again; a second one reaching a target that already
    /// campaigns is of an older term, so ignored).
    pub(super) fn continue_transfer(&mut self) {
        let Some(transfer) = self.transfer else {
            return;
        };
        let target = transfer.target;
        let up_to_date = self.progress.get(&target).is_some_and(|p| p.match_index == self.log.last_index());
        if up_to_date {
            // From here on the target may win without waiting out anyone's election timeout:
            // a lease (§6.4.1) no longer says that no other leader exists.
            self.lease_revoked = true;
            self.send(target, Message::TimeoutNow(TimeoutNow { term: self.current_term, leader_id: self.id }));
        } else {
            self.send_append(target);
        }
    }

    pub(super) fn tick_transfer(&mut self) {
        let Some(transfer) = self.transfer.as_mut() else {
            return;
        };
        transfer.elapsed += 1;
        if transfer.elapsed >= self.options.election_ticks {
            log::warn!(
                "{}: the transfer to {} did not finish within an election timeout; leading on",
                self.id,
                transfer.target
            );
            self.transfer = None;
        }
    }

    /// The target's side (the term rule done): our leader hands over, campaign now.
    pub(super) fn handle_timeout_now(&mut self, from: NodeId, _m: TimeoutNow) {
        if self.role == Role::Leader || self.leader_id != Some(from) {
            // Not from the leader we follow (a stale leader of our term cannot exist): ignore.
            self.ignored.stale_response += 1;
            return;
        }
        log::info!("{}: {from} hands leadership over; campaigning in term {}", self.id, self.current_term.0 + 1);
        self.become_candidate_with(Message::TransferVote);
    }
}
