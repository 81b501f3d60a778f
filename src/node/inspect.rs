//! The answer to a client's `Inspect` request: what `leader status --verbose` shows when an
//! operator asks why there is no leader.

use super::runtime::Runtime;
use crate::transport::client_wire::{Counter, Inspection, MemberInfo, MembershipInfo, PeerContact, VoteSeen};

impl Runtime {
    /// The membership in force, with every member's urls.
    pub(super) fn membership_info(&self) -> MembershipInfo {
        let raft = &self.driver.raft;
        let index = raft.membership_index();
        let members = raft.membership().members.iter().map(|(pid, m)| MemberInfo {
            pid: *pid,
            role: m.role,
            peer_url: m.peer_url.clone(),
            client_url: m.client_url.clone(),
        });
        MembershipInfo { index, committed: index <= raft.commit_index(), members: members.collect() }
    }

    /// Everything [`Inspection`] reports, from this turn's state.
    pub(super) fn inspection(&self) -> Inspection {
        let tick_ms = self.tick.as_millis() as u64;
        let votes = self.driver.raft.vote_log().into_iter().map(|v| VoteSeen {
            candidate: v.candidate,
            term: v.term,
            kind: v.kind,
            verdict: v.verdict,
            ms_ago: v.ticks_ago.saturating_mul(tick_ms),
        });
        let counters = super::lock(&self.shared.drops).by_name();
        let (elections_started, elections_won) = self.driver.raft.elections();
        let contact = self.shared.stats.last_contact().into_iter();
        let last_contact = contact.map(|(pid, ago)| PeerContact { pid, ms_ago: ago.as_millis() as u64 });
        Inspection {
            status: self.status(),
            os_pid: std::process::id(),
            uptime_ms: self.epoch.elapsed().as_millis() as u64,
            votes: votes.collect(),
            last_contact: last_contact.collect(),
            elections_started,
            elections_won,
            counters: counters.into_iter().map(|(n, value)| Counter { name: n.into(), value }).collect(),
        }
    }
}
