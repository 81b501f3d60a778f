//! Membership from a client (thesis §4): read it, change it by one server, and follow servers
//! added at runtime that the client's config.json does not list.

use super::{CallError, Client, ReadFrom};
use crate::config::ServerConfig;
use crate::core::MemberRole;
use crate::core::{LogIndex, MembershipChange, NodeId};
use crate::transport::client_wire::{ClientError, MembershipInfo, Request, Response};
use std::time::{Duration, Instant};

impl Client {
    /// The membership in force on server `pid` (any server answers; the leader's is the
    /// latest). Members it names that this client's config lacks are learned (see
    /// [`Client::learn_members`]).
    pub fn membership(&mut self, pid: NodeId) -> Result<MembershipInfo, CallError> {
        let request_id = self.send(pid, Request::Membership)?;
        match self.receive(pid, request_id, Instant::now() + self.timeout)? {
            Response::Membership(info) => {
                self.learn_members(&info);
                Ok(info)
            }
            Response::Error(e) => Err(CallError::Refused(e)),
            other => Err(CallError::BadResponse(format!("{other:?} to a membership request"))),
        }
    }

    /// The membership in force on the leader (the latest; a follower's may lag), or on any
    /// server that answers when none leads.
    pub fn leader_membership(&mut self) -> Result<MembershipInfo, CallError> {
        let answers = self.status_all();
        let up = answers.iter().filter_map(|(_, a)| a.as_ref().ok());
        let leader = up.clone().filter(|s| s.role == crate::core::Role::Leader).max_by_key(|s| s.term);
        let Some(pid) = leader.or_else(|| up.clone().next()).map(|s| s.pid) else {
            let servers = answers.len();
            let errors: Vec<CallError> = answers.into_iter().filter_map(|(_, a)| a.err()).collect();
            if errors.iter().all(|e| matches!(e, CallError::Unreachable)) {
                return Err(CallError::NothingReachable { servers });
            }
            return Err(errors
                .into_iter()
                .find(|e| !matches!(e, CallError::Unreachable))
                .unwrap_or(CallError::Unreachable));
        };
        self.membership(pid)
    }

    /// Change the membership by one server, through the leader (redirects followed, retried
    /// while an election is under way); returns the change's entry index once committed.
    pub fn change_membership(&mut self, change: MembershipChange) -> Result<LogIndex, CallError> {
        // Committing may take a replication round to a new learner, and a leader elected
        // meanwhile must first commit an entry of its term.
        let wait = self.timeout + Duration::from_millis(self.config.election_timeout_ms * 4);
        let mut maybe_applied = false;
        let result = self.retry(ReadFrom::Leader, true, |client, target| {
            let request_id = client.send(target, Request::ChangeMembership { change: change.clone() })?;
            let answer = client.receive(target, request_id, Instant::now() + wait);
            maybe_applied |= matches!(answer, Err(CallError::Unreachable) | Ok(Response::Error(ClientError::Dropped)));
            match answer? {
                Response::MembershipChanged { index } => Ok(index),
                // A retry of a change that did take effect is refused as no longer possible
                // (already a member, not a member): stop retrying and look.
                Response::Error(ClientError::Unavailable(why)) if maybe_applied => Err(CallError::Local(why)),
                Response::Error(e) => Err(CallError::Refused(e)),
                other => Err(CallError::BadResponse(format!("{other:?} to a membership change"))),
            }
        });
        match result {
            Err(CallError::Local(why)) if maybe_applied => match self.leader_membership() {
                Ok(info) if holds(&info, &change) => Ok(info.index),
                _ => Err(CallError::Refused(ClientError::Unavailable(why))),
            },
            other => other,
        }
    }

    /// Add to this client's view every member of `info` its config.json does not list, at the
    /// urls the log records, so it can reach servers added at runtime.
    pub fn learn_members(&mut self, info: &MembershipInfo) {
        for m in &info.members {
            if self.config.server(m.pid).is_ok() || m.client_url.is_empty() {
                continue;
            }
            self.config.servers.push(ServerConfig {
                pid: m.pid,
                url: m.peer_url.clone(),
                endpoint: m.peer_url.clone(),
                client_endpoint: m.client_url.clone(),
                metrics_url: None,
            });
            self.config.servers.sort_by_key(|s| s.pid);
        }
    }
}

/// Whether `info` shows `change` made (a retried change that took effect the first time).
fn holds(info: &MembershipInfo, change: &MembershipChange) -> bool {
    let role = |pid: NodeId| info.members.iter().find(|m| m.pid == pid).map(|m| m.role);
    match change {
        MembershipChange::AddLearner { pid, .. } => role(*pid).is_some(),
        MembershipChange::Promote { pid } => role(*pid) == Some(MemberRole::Voter),
        MembershipChange::Remove { pid } => role(*pid).is_none(),
    }
}
