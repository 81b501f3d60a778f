//! Known bugs that the simulator's tests plant, one at a time, to prove the simulator and its
//! checkers find them (issue: "bug-finding proof"). The switches are read only in test
//! builds ([`PlantedBugs::active`]); in any other build they do nothing, so production code
//! cannot turn them on.

/// Which known bugs to plant. All off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlantedBugs {
    /// Grant votes without the §5.4.1 up-to-date check.
    pub vote_without_log_check: bool,
    /// Commit an entry of a previous term by counting replicas (the Figure 8 bug, §5.4.2).
    pub commit_previous_term_by_counting: bool,
    /// Count the leader towards commit before its own fsync (§10.2.1 of the thesis).
    pub leader_counts_itself_before_fsync: bool,
    /// A follower appends over a conflicting suffix without truncating it (§5.3 step 3).
    pub no_conflict_truncation: bool,
    /// A follower truncates everything after `prev_log_index`, even on a stale or duplicated
    /// AppendEntries whose entries it already holds.
    pub truncate_on_stale_append: bool,
    /// The runtime sends a vote before the vote is persisted (thesis §3.8).
    pub vote_before_persist: bool,
    /// The runtime acknowledges appended entries before they are durable.
    pub ack_before_durable: bool,
    /// After a restart the state machine is not rebuilt, so entries are applied twice.
    pub apply_twice_after_restart: bool,
    /// A pre-candidate raises its term when it asks for pre-votes (thesis §9.6 says it must
    /// not): a server cut off or paused comes back with a higher term and deposes the leader.
    pub pre_vote_raises_term: bool,
    /// A follower appends entries whose `prev_log_index` entry has another term than
    /// `prev_log_term` (skipping the §5.3 consistency check): its log no longer continues the
    /// leader's.
    pub accept_entries_not_continuing_log: bool,
    /// The runtime compacts the log past the commit index: it takes its snapshot at the last
    /// log entry instead of the last applied one (§7: a snapshot covers committed, applied
    /// entries only).
    pub compact_past_commit: bool,
    /// A follower installs a leader's snapshot that is older than what it has already
    /// committed and applied (§7 step 6 says to keep the log and ignore it).
    pub install_older_snapshot: bool,
    /// The state machine's snapshot loses the client sessions, so after a restore a retried
    /// write is applied twice (thesis §6.3: sessions are part of the replicated state).
    pub snapshot_without_sessions: bool,
    /// Lease reads (§6.4.1) use a lease as long as the minimum election timeout, without the
    /// margin for clock drift: a leader whose clock runs slow serves reads after a follower
    /// whose clock runs fast has voted for a new leader.
    pub lease_without_drift_margin: bool,
    /// A leader proposes a membership change while the previous one is not committed (thesis
    /// §4.1: two changes in flight can make disjoint majorities).
    pub membership_changes_overlap: bool,
    /// A new leader changes the membership before committing an entry of its term (the bug in
    /// single-server changes the thesis's §4.1 fix closes).
    pub membership_before_own_commit: bool,
    /// The leader counts learners' acknowledgements towards commit.
    pub learner_counts_towards_commit: bool,
}

impl PlantedBugs {
    /// No bug.
    pub const NONE: PlantedBugs = PlantedBugs {
        vote_without_log_check: false,
        commit_previous_term_by_counting: false,
        leader_counts_itself_before_fsync: false,
        no_conflict_truncation: false,
        truncate_on_stale_append: false,
        vote_before_persist: false,
        ack_before_durable: false,
        apply_twice_after_restart: false,
        pre_vote_raises_term: false,
        accept_entries_not_continuing_log: false,
        compact_past_commit: false,
        install_older_snapshot: false,
        snapshot_without_sessions: false,
        lease_without_drift_margin: false,
        membership_changes_overlap: false,
        membership_before_own_commit: false,
        learner_counts_towards_commit: false,
    };

    /// The switches in effect: as set in test builds, none otherwise.
    #[cfg(test)]
    pub fn active(self) -> PlantedBugs {
        self
    }

    /// The switches in effect: as set in test builds, none otherwise.
    #[cfg(not(test))]
    pub fn active(self) -> PlantedBugs {
        PlantedBugs::NONE
    }

    /// Every bug with its name, for sweeps and reports.
    pub fn each() -> Vec<(&'static str, PlantedBugs)> {
        let none = PlantedBugs::NONE;
        vec![
            ("vote_without_log_check", PlantedBugs { vote_without_log_check: true, ..none }),
            ("commit_previous_term_by_counting", PlantedBugs { commit_previous_term_by_counting: true, ..none }),
            ("leader_counts_itself_before_fsync", PlantedBugs { leader_counts_itself_before_fsync: true, ..none }),
            ("no_conflict_truncation", PlantedBugs { no_conflict_truncation: true, ..none }),
            ("truncate_on_stale_append", PlantedBugs { truncate_on_stale_append: true, ..none }),
            ("vote_before_persist", PlantedBugs { vote_before_persist: true, ..none }),
            ("ack_before_durable", PlantedBugs { ack_before_durable: true, ..none }),
            ("apply_twice_after_restart", PlantedBugs { apply_twice_after_restart: true, ..none }),
            ("pre_vote_raises_term", PlantedBugs { pre_vote_raises_term: true, ..none }),
            ("accept_entries_not_continuing_log", PlantedBugs { accept_entries_not_continuing_log: true, ..none }),
            ("compact_past_commit", PlantedBugs { compact_past_commit: true, ..none }),
            ("install_older_snapshot", PlantedBugs { install_older_snapshot: true, ..none }),
            ("snapshot_without_sessions", PlantedBugs { snapshot_without_sessions: true, ..none }),
            ("lease_without_drift_margin", PlantedBugs { lease_without_drift_margin: true, ..none }),
            ("membership_changes_overlap", PlantedBugs { membership_changes_overlap: true, ..none }),
            ("membership_before_own_commit", PlantedBugs { membership_before_own_commit: true, ..none }),
            ("learner_counts_towards_commit", PlantedBugs { learner_counts_towards_commit: true, ..none }),
        ]
    }
}
