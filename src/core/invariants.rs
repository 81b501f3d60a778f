//! The core's invariants (Figure 2, Figure 3), checked after every input in debug and test
//! builds, and on demand from outside (the simulator checks them after every event).

use super::raft::Raft;
use super::ready::Role;

impl Raft {
    /// The core's stateless invariants, checkable from outside in any build (the simulator
    /// calls it after every event): `None` when they hold, else what broke.
    pub fn invariant_violation(&self) -> Option<String> {
        if !(self.last_applied <= self.commit_index && self.commit_index <= self.log.last_index()) {
            return Some(format!(
                "last_applied {} <= commit_index {} <= last_index {} broken",
                self.last_applied,
                self.commit_index,
                self.log.last_index()
            ));
        }
        let voted_self = self.voted_for == Some(self.id);
        match self.role {
            Role::Leader if !voted_self || self.leader_id != Some(self.id) => {
                return Some("a leader must have voted for itself and know it leads".into())
            }
            Role::Candidate if !voted_self => return Some("a candidate must have voted for itself".into()),
            _ => {}
        }
        self.progress
            .iter()
            .find(|(_, p)| p.match_index >= p.next_index)
            .map(|(peer, p)| format!("match_index {} >= next_index {} for {peer}", p.match_index, p.next_index))
    }

    /// Invariants of Figure 2 / Figure 3, checked after every input in debug and test builds.
    #[cfg(any(test, debug_assertions))]
    pub(super) fn assert_invariants(&mut self) {
        assert!(self.last_applied <= self.commit_index, "last_applied beyond commit_index");
        assert!(self.commit_index <= self.log.last_index(), "commit_index beyond last_index");
        match self.role {
            Role::Leader => {
                assert_eq!(self.voted_for, Some(self.id), "a leader voted for itself");
                assert_eq!(self.leader_id, Some(self.id), "a leader knows it leads");
                for (peer, p) in &self.progress {
                    assert!(p.match_index < p.next_index, "match_index < next_index for {peer}");
                    assert!(p.next_index.0 <= self.log.last_index().0 + 1, "next_index within the log for {peer}");
                }
            }
            Role::Candidate => assert_eq!(self.voted_for, Some(self.id), "a candidate voted for itself"),
            Role::Follower => assert_ne!(self.leader_id, Some(self.id), "a follower is not its own leader"),
        }
        assert!(!self.pre_candidate || self.role == Role::Follower, "only a follower asks for pre-votes");
        if let Some(vote) = self.voted_for {
            if let Some((term, seen)) = self.vote_seen {
                assert!(term != self.current_term || seen == vote, "two votes in term {term}: {seen} then {vote}");
            }
            self.vote_seen = Some((self.current_term, vote));
        }
    }

    #[cfg(not(any(test, debug_assertions)))]
    pub(super) fn assert_invariants(&mut self) {}
}
