//! Following the membership in force (thesis §4): the runtime opens a PUSH socket to every
//! member the log names, closes those of removed members, accepts envelopes from members and
//! config.json's servers, and stops a server whose removal is committed.

use super::runtime::Runtime;
use crate::core::{NodeId, Role};
use std::sync::atomic::Ordering;

impl Runtime {
    /// Bring the sockets in line with the membership; returns true when this server has been
    /// removed and must stop.
    pub(super) fn follow_membership(&mut self) -> bool {
        let raft = &self.driver.raft;
        // Stop once the removal is applied (its proposer has its answer) and, for a leader,
        // once it has handed over (thesis §4.2.2; the core does that on its next heartbeat).
        if raft.is_removed() && self.driver.applied() >= raft.membership_index() && raft.role() != Role::Leader {
            let index = raft.membership_index();
            log::warn!(
                "server {}: removed from the cluster by the membership entry at index {index}; stopping",
                raft.id()
            );
            self.shared.removed.store(true, Ordering::Release);
            return true;
        }
        if raft.peers() == self.followed.as_slice() {
            return false;
        }
        let membership = raft.membership();
        let wanted: Vec<(NodeId, String)> = raft
            .peers()
            .iter()
            .filter_map(|pid| {
                // config.json's address first: it is where that server binds (its own file
                // says so) and what operators edit to move one; the log's for servers the file
                // does not list (added at runtime).
                let recorded = || membership.members.get(pid).map(|m| m.peer_url.clone()).filter(|u| !u.is_empty());
                let url = self.config_peers.get(pid).cloned().or_else(recorded);
                if url.is_none() {
                    log::warn!("server {}: member {pid} has no peer url in the log or config.json", raft.id());
                }
                url.map(|u| (*pid, u))
            })
            .collect();
        for (pid, url) in &wanted {
            if let Err(e) = self.net.transport.connect(*pid, url) {
                log::warn!("server {}: cannot connect to member {pid} at {url}: {e}", raft.id());
            }
        }
        let stale: Vec<NodeId> =
            self.net.transport.peers().map(|(p, _)| p).filter(|p| !wanted.iter().any(|(w, _)| w == p)).collect();
        for pid in stale {
            self.net.transport.disconnect(pid);
        }
        let mut accept: Vec<NodeId> = self.config_peers.keys().copied().chain(wanted.iter().map(|(p, _)| *p)).collect();
        accept.sort_unstable();
        accept.dedup();
        self.receiver.peers = accept;
        self.followed = raft.peers().to_vec();
        false
    }
}
