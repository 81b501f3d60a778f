//! Changing the membership (thesis §4.1, single-server changes) and what follows from the
//! membership in force: who is asked for votes, whose acknowledgements commit, who is sent the
//! log. The membership in force is the latest in the log, committed or not.

use super::membership::{MemberRole, Membership, MembershipChange};
use super::message::{Entry, Message};
use super::progress::Progress;
use super::raft::Raft;
use super::ready::Role;
use super::types::{LogIndex, NodeId};
use std::fmt;

/// Why a membership change was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipError {
    /// Only the leader changes the membership; the hint is the leader this server knows.
    NotLeader(Option<NodeId>),
    /// The previous change (its entry at this index) is not committed yet: one at a time (§4.1).
    ChangeInFlight(LogIndex),
    /// Thesis §4.1 (the fix to single-server changes): a new leader must commit an entry of its
    /// own term before it changes the membership.
    NoCommitInTerm,
    /// A leadership transfer is in progress.
    Transferring(NodeId),
    /// The server is a member already.
    AlreadyMember(NodeId),
    /// The server is not a member.
    NotAMember(NodeId),
    /// The server is a voter already.
    AlreadyVoter(NodeId),
    /// Removing it would leave no voter.
    LastVoter(NodeId),
    /// After the change, fewer voters would be live (heard from within an election timeout)
    /// than a quorum: the cluster could not commit anything, not even the undo.
    NoLiveQuorum {
        /// Voters of the new membership that are live.
        live: usize,
        /// A quorum of the new membership.
        needed: usize,
    },
    /// The change itself is malformed (the text says how).
    Invalid(String),
}

impl fmt::Display for MembershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MembershipError::NotLeader(Some(l)) => write!(f, "not the leader (server {l} is)"),
            MembershipError::NotLeader(None) => f.write_str("not the leader (none known)"),
            MembershipError::ChangeInFlight(i) => {
                write!(f, "the previous membership change (entry {i}) is not committed yet: one change at a time")
            }
            MembershipError::NoCommitInTerm => {
                f.write_str("the new leader has not committed an entry of its term yet; retry in a moment")
            }
            MembershipError::Transferring(to) => write!(f, "leadership is being handed over to {to}"),
            MembershipError::AlreadyMember(p) => write!(f, "server {p} is a member already"),
            MembershipError::NotAMember(p) => write!(f, "server {p} is not a member"),
            MembershipError::AlreadyVoter(p) => write!(f, "server {p} is a voter already"),
            MembershipError::LastVoter(p) => write!(f, "server {p} is the last voter"),
            MembershipError::NoLiveQuorum { live, needed } => write!(
                f,
                "after the change only {live} voters would be live, and a quorum needs {needed}: the cluster \
                 could not commit anything"
            ),
            MembershipError::Invalid(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for MembershipError {}

impl Raft {
    /// The membership in force: the latest in the log (committed or not, §4.1), else the
    /// snapshot's, else the bootstrap one from [`Options`](super::Options).
    pub fn membership(&self) -> &Membership {
        self.log.membership().map_or(&self.bootstrap, |(_, m)| m)
    }

    /// The membership in force at `index` (what a snapshot taken there records).
    pub fn membership_at(&self, index: LogIndex) -> &Membership {
        self.log.membership_at(index).unwrap_or(&self.bootstrap)
    }

    /// Index of the entry holding the membership in force (0: the snapshot's or bootstrap).
    /// Not what a follower must hold to know that membership: see `membership_held_from`.
    pub fn membership_index(&self) -> LogIndex {
        self.log.membership().map_or(LogIndex(0), |(i, _)| i)
    }

    /// The log position a follower must hold to hold the membership in force: its entry's
    /// index — or, once compaction or a snapshot took that entry (`membership_index` is then
    /// 0), the log's compacted index: a follower holding entries up to there holds the entry
    /// or a snapshot recording the membership. (The bootstrap membership: 0.) What a learner
    /// must hold before it is promoted (thesis §4.2.1; `answers_votes`). Found by the simulator (seed 538 of
    /// the 3-server hunt settings, liveness): compared with `membership_index`, 0 after the
    /// leader compacted past a learner's addition, the guard let through a learner whose log
    /// ended before it; the leader then lost touch, and the new voter refused its votes.
    pub(super) fn membership_held_from(&self) -> LogIndex {
        match self.log.membership() {
            Some((LogIndex(0), _)) => self.log.compacted().0,
            Some((index, _)) => index,
            None => LogIndex(0),
        }
    }

    /// Whether this server was a member and a committed membership no longer lists it: it has
    /// been removed and should stop (thesis §4.2.2). A server not yet added is not removed.
    /// (A server that restarts after its removal committed starts as a non-member instead.)
    pub fn is_removed(&self) -> bool {
        self.was_member
            && !self.membership().contains(self.id)
            && !self.membership_at(self.commit_index).contains(self.id)
    }

    /// Whether this server votes in the membership in force.
    pub fn is_voter(&self) -> bool {
        self.membership().is_voter(self.id)
    }

    /// Whether `pid` takes part in elections here (campaigns, votes, is voted for): a voter of
    /// the membership in force — or, while that membership's entry is not known committed, of
    /// the one before it. Thesis §4.1: votes are answered without consulting the latest
    /// configuration; the membership before an uncommitted change is what the cluster falls
    /// back to if the change is lost, so its voters must still be able to elect — and the one
    /// with the most up-to-date log may be a leader that removed itself and lost touch before
    /// committing it (§4.2.2: it manages the cluster until its removal is committed). Found by
    /// the simulator: without this such a cluster never elected a leader again. Votes are
    /// still counted by the candidate's membership in force, so a server it removes adds
    /// nothing to its own count; a learner never takes part (no membership lists it as voter).
    pub(super) fn elects(&self, pid: NodeId) -> bool {
        let index = self.membership_index();
        self.membership().is_voter(pid)
            || (index > self.commit_index && self.membership_at(LogIndex(index.0 - 1)).is_voter(pid))
    }

    /// Whether this server answers (pre-)votes: as a member of the membership in force, learner
    /// or voter, or as a voter of the one before it (`elects`). Thesis §4.1: votes are answered
    /// without consulting one's own role — a learner's log may not hold the entry that promoted
    /// it yet, while the candidate's membership, which counts the vote, does (found by the
    /// simulator: a cluster of {1, 2} whose leader stepped down right after promoting 2 never
    /// elected again); a learner's vote counts for nothing where it is a learner (§4.2.1). A
    /// server that is not a member in its own log does not answer: one added but not caught up
    /// to its addition may be a wiped server back under its old id, whose empty log would let a
    /// removed server with a stale membership win (found by the simulator too). Leaders promote
    /// only learners that hold the membership in force (`promote_caught_up_learners`).
    pub(super) fn answers_votes(&self) -> bool {
        self.membership().contains(self.id) || self.elects(self.id)
    }

    /// Votes or acknowledgements needed (a majority of the voters in force).
    pub(super) fn quorum(&self) -> usize {
        self.membership().quorum()
    }

    /// The voters other than this server.
    pub(super) fn voter_peers(&self) -> Vec<NodeId> {
        self.membership().voters().filter(|v| *v != self.id).collect()
    }

    /// How many of `ids` (plus this server, if `with_self`) are voters.
    pub(super) fn count_voters<'a>(&self, ids: impl IntoIterator<Item = &'a NodeId>, with_self: bool) -> usize {
        let m = self.membership();
        ids.into_iter().filter(|id| **id != self.id && m.is_voter(**id)).count()
            + usize::from(with_self && m.is_voter(self.id))
    }

    /// Whether `from` may send us `message`: a member, or a server of the bootstrap
    /// configuration (a server being added knows the cluster only from there) — or, for a
    /// leader's own messages (AppendEntries, InstallSnapshot, TimeoutNow), anyone. Thesis §4.1:
    /// a server accepts AppendEntries from a leader that is not in its latest configuration,
    /// else a server whose log ends before that leader was added could never learn the
    /// membership that names it; and a removed leader's handover (§4.2.2) reaches servers whose
    /// membership no longer lists it (a TimeoutNow is acted on only from the leader followed).
    /// Both found by the simulator: the cluster never settled.
    pub(super) fn knows(&self, from: NodeId, message: &Message) -> bool {
        let replication =
            matches!(message, Message::AppendEntries(_) | Message::InstallSnapshot(_) | Message::TimeoutNow(_));
        from != self.id && (replication || self.membership().contains(from) || self.options.peers.contains(&from))
    }

    /// Bring `peers` and the leader's progress in line with the membership in force; called
    /// whenever the log or the commit index may have changed it. While a removal is not
    /// committed, the removed server is still sent the log (so it learns it was removed); once
    /// it is, the leader sends it a last append carrying the commit index and forgets it. A new
    /// member's progress starts at the entry before our last (it is probed backwards, §5.3).
    pub(super) fn sync_membership(&mut self) {
        self.was_member |= self.membership().contains(self.id);
        let mut targets: Vec<NodeId> = self.membership().members.keys().copied().collect();
        if self.membership_index() > self.commit_index {
            targets.extend(self.membership_at(self.commit_index).members.keys().copied());
        }
        targets.retain(|p| *p != self.id);
        targets.sort_unstable();
        targets.dedup();
        if targets == self.peers {
            return;
        }
        if self.role == Role::Leader {
            let dropped: Vec<NodeId> = self.peers.iter().copied().filter(|p| !targets.contains(p)).collect();
            for p in dropped {
                let next = self.progress.get(&p).map(|pr| pr.next_index).filter(|n| *n > self.log.compacted().0);
                if let Some(next) = next {
                    self.send_append_from(p, next, false); // what it lacks, and the commit index
                }
                self.progress.remove(&p);
                self.recent_active.remove(&p);
            }
            let before_last = LogIndex(self.log.last_index().0.saturating_sub(1));
            for p in &targets {
                self.progress.entry(*p).or_insert_with(|| Progress::new(before_last));
            }
        }
        self.peers = targets;
        if self.role == Role::Leader {
            self.broadcast_append();
        }
    }

    /// Propose one membership change (thesis §4.1). It takes effect as soon as its entry is in
    /// the leader's log; returns that entry's index. Refused while the previous change is not
    /// committed, before the leader has committed an entry of its term, during a transfer, or
    /// when the new membership would lack a quorum of live voters.
    pub fn propose_membership(&mut self, change: MembershipChange) -> Result<LogIndex, MembershipError> {
        if self.role != Role::Leader {
            return Err(MembershipError::NotLeader(self.leader_id));
        }
        if let Some(to) = self.transfer_target() {
            return Err(MembershipError::Transferring(to));
        }
        let in_flight = self.membership_index();
        if in_flight > self.commit_index && !self.bugs().membership_changes_overlap {
            return Err(MembershipError::ChangeInFlight(in_flight));
        }
        if self.log.term_at(self.commit_index) != Some(self.current_term) && !self.bugs().membership_before_own_commit {
            return Err(MembershipError::NoCommitInTerm);
        }
        if let MembershipChange::Promote { pid } = &change {
            // It must know it is a learner before it is counted as a voter, or it refuses the
            // votes a candidate then needs (`answers_votes`).
            let held_from = self.membership_held_from();
            let holds = self.progress.get(pid).is_some_and(|p| p.match_index >= held_from);
            if self.membership().contains(*pid) && !holds && !self.membership().is_voter(*pid) {
                return Err(MembershipError::Invalid(format!(
                    "learner {pid} has not yet received the membership (log up to {held_from}) that lists it"
                )));
            }
        }
        let next = self.membership().after(&change)?;
        let live = next.voters().filter(|v| *v == self.id || self.recently_heard(*v)).count();
        if live < next.quorum() {
            return Err(MembershipError::NoLiveQuorum { live, needed: next.quorum() });
        }
        let index = LogIndex(self.log.last_index().0 + 1);
        log::info!("{}: membership change at {index}: {change:?}", self.id);
        self.log.append([Entry { term: self.current_term, index, data: next.encode() }]);
        self.sync_membership();
        self.broadcast_append();
        self.maybe_commit(); // a cluster of one commits at once
        self.assert_invariants();
        Ok(index)
    }

    /// A follower we heard from within the last election timeout (the current quorum-check
    /// period or the one before).
    fn recently_heard(&self, peer: NodeId) -> bool {
        self.recent_active.contains(&peer) || self.last_active.contains(&peer)
    }

    /// Leader, on each heartbeat: promote a learner added with `promote` once it is within
    /// `Options::promote_lag` entries of our log, if no change is in flight.
    pub(super) fn promote_caught_up_learners(&mut self) {
        let last = self.log.last_index();
        let lag = self.options.promote_lag;
        let held_from = self.membership_held_from();
        let ready = self.membership().members.iter().find_map(|(pid, m)| {
            // Within the lag, and holding the membership that lists it as learner (else it
            // would refuse the votes it is then counted for: `answers_votes`).
            let caught_up =
                self.progress.get(pid).is_some_and(|p| p.match_index.0 + lag >= last.0 && p.match_index >= held_from);
            (m.role == MemberRole::Learner { promote: true } && caught_up).then_some(*pid)
        });
        if let Some(pid) = ready {
            if let Err(e) = self.propose_membership(MembershipChange::Promote { pid }) {
                log::debug!("{}: learner {pid} caught up, not promoted yet: {e}", self.id);
            }
        }
    }

    /// Thesis §4.2.2: a leader whose removal (or demotion) is committed hands leadership to a
    /// voter of the new membership and steps down.
    pub(super) fn step_down_if_removed(&mut self) {
        if self.role != Role::Leader || self.is_voter() || self.membership_index() > self.commit_index {
            return;
        }
        if self.transfer_target().is_none() {
            let best = self
                .progress
                .iter()
                .filter(|(p, _)| self.membership().is_voter(**p))
                .max_by_key(|(p, pr)| (pr.match_index, self.recent_active.contains(p), std::cmp::Reverse(**p)));
            match best.map(|(p, _)| *p) {
                Some(target) => {
                    log::info!("{}: removed from the membership; handing over to {target}", self.id);
                    let _ = self.transfer_leadership(Some(target));
                }
                None => self.become_follower(self.current_term, None),
            }
        }
    }
}
