//! Log replication (§5.3) and commitment (§5.4.2): proposals, AppendEntries both ways, and
//! the leader's commit rule.

use super::message::{AppendEntries, AppendEntriesResponse, Entry, Message};
use super::progress::ProgressState;
use super::raft::Raft;
use super::ready::{ProposeError, Role};
use super::types::{LogIndex, NodeId, Term};

impl Raft {
    /// Append one command to the leader's log; see [`Raft::propose_batch`].
    pub fn propose(&mut self, data: Vec<u8>) -> Result<LogIndex, ProposeError> {
        self.propose_batch(vec![data]).map(|(_, last)| last)
    }

    /// Append commands to the leader's log as consecutive entries and replicate them in as
    /// few messages as the limits allow. Returns the first and last index used. Proposing
    /// many commands at once is what makes one fsync and one message carry many entries.
    pub fn propose_batch(&mut self, commands: Vec<Vec<u8>>) -> Result<(LogIndex, LogIndex), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { leader_hint: self.leader_id });
        }
        if let Some(to) = self.transfer_target() {
            return Err(ProposeError::Transferring { to });
        }
        if commands.iter().any(Vec::is_empty) {
            return Err(ProposeError::Empty);
        }
        if commands.iter().any(|c| c.starts_with(&super::MEMBERSHIP_MAGIC)) {
            return Err(ProposeError::Reserved);
        }
        let first = LogIndex(self.log.last_index().0 + 1);
        let term = self.current_term;
        let entries =
            commands.into_iter().enumerate().map(|(i, data)| Entry { term, index: LogIndex(first.0 + i as u64), data });
        self.log.append(entries);
        let last = self.log.last_index();
        self.broadcast_append();
        self.assert_invariants();
        Ok((first, last.max(first)))
    }

    /// Send every follower what it is missing, as far as flow control allows.
    pub(super) fn broadcast_append(&mut self) {
        for peer in self.peers.clone() {
            self.send_append(peer);
        }
    }

    /// Send `peer` the entries after its `next_index`, unless it is paused or up to date.
    /// Several messages at once in Replicate state (pipelining), within the in-flight window.
    pub(super) fn send_append(&mut self, peer: NodeId) {
        loop {
            let Some(progress) = self.progress.get(&peer) else {
                return;
            };
            if progress.state != ProgressState::Snapshot && progress.next_index <= self.log.compacted().0 {
                // The entry before `next_index` is compacted: no consistency check is possible,
                // the follower needs the snapshot (§7).
                self.start_snapshot_send(peer);
                return;
            }
            if progress.is_paused(self.options.in_flight_max) || progress.next_index > self.log.last_index() {
                return;
            }
            let sent_up_to = self.send_append_from(peer, progress.next_index, true);
            let progress = self.progress.get_mut(&peer).expect("progress exists");
            progress.sent(sent_up_to);
            if progress.state == ProgressState::Probe {
                return;
            }
        }
    }

    /// Queue one AppendEntries for `peer` starting at `next`; returns the last index it carries
    /// (or `next - 1` when empty).
    pub(super) fn send_append_from(&mut self, peer: NodeId, next: LogIndex, with_entries: bool) -> LogIndex {
        let prev_log_index = LogIndex(next.0 - 1);
        let prev_log_term = self.log.term_at(prev_log_index).expect("next_index is within the log + 1");
        let entries = if with_entries {
            self.log.slice(
                next,
                self.log.last_index(),
                self.options.entries_per_message_max,
                self.options.bytes_per_message_max,
            )
        } else {
            Vec::new()
        };
        let last = entries.last().map_or(prev_log_index, |e| e.index);
        let m = AppendEntries {
            term: self.current_term,
            leader_id: self.id,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit: self.commit_index,
        };
        self.send(peer, Message::AppendEntries(m));
        last
    }

    /// §5.2 heartbeats, one per follower at its `next_index`: an empty AppendEntries that
    /// also carries the commit index and repairs a pipeline that lost a message (the follower
    /// rejects when it misses entries before `next_index`, which sends us back to probing).
    pub(super) fn send_heartbeats(&mut self) {
        self.heartbeat_round += 1;
        for peer in self.peers.clone() {
            let progress = &self.progress[&peer];
            if progress.state == ProgressState::Snapshot {
                continue; // the transfer keeps in touch (tick_snapshot_sends)
            }
            let next = progress.next_index;
            if next <= self.log.compacted().0 {
                self.start_snapshot_send(peer);
                continue;
            }
            self.send_append_from(peer, next, false);
            let progress = self.progress.get_mut(&peer).expect("progress exists");
            if progress.state == ProgressState::Probe {
                progress.probe_sent = true;
            }
        }
    }

    /// A message only the leader of our term sends (AppendEntries, InstallSnapshot) came from
    /// `from`: follow it and reset the election timer. False when we lead this term ourselves.
    pub(super) fn hear_from_leader(&mut self, from: NodeId, kind: &str) -> bool {
        if self.role == Role::Leader {
            // Two leaders in one term would break Election Safety (§5.2); only a faulty or
            // forged peer can cause it, so count it, never obey it.
            log::error!("{}: {kind} from {from} claims leadership of my term {}", self.id, self.current_term);
            self.ignored.conflicting_leader += 1;
            return false;
        }
        if self.role == Role::Candidate || self.pre_candidate {
            // §5.2: a candidate that hears from a legitimate leader of its term returns to
            // follower (and a pre-candidate stops asking).
            self.become_follower(self.current_term, Some(from));
        }
        self.leader_id = Some(from);
        self.reset_election_timer();
        true
    }

    /// §5.3, the receiver's rules: consistency check on the previous entry, truncate a
    /// conflicting suffix (never a matching one: a stale or duplicated message must not undo
    /// newer entries), append what is new, advance the commit index.
    pub(super) fn handle_append_entries(&mut self, from: NodeId, m: AppendEntries) {
        if !self.hear_from_leader(from, "AppendEntries") {
            return;
        }
        let mut m = m;
        let (offset, offset_term) = self.log.compacted();
        if m.prev_log_index < offset {
            // Entries up to the offset are in this server's snapshot, so committed, so the
            // leader's are the same (§5.4, Leader Completeness): skip them.
            let skip = (offset.0 - m.prev_log_index.0) as usize;
            if m.entries.len() <= skip {
                let covered = LogIndex(m.prev_log_index.0 + m.entries.len() as u64);
                let reply = AppendEntriesResponse {
                    term: self.current_term,
                    success: true,
                    match_index: covered,
                    conflict_index: LogIndex(0),
                    conflict_term: Term(0),
                };
                self.send(from, Message::AppendEntriesResponse(reply));
                return;
            }
            m.entries.drain(..skip);
            m.prev_log_index = offset;
            m.prev_log_term = offset_term;
        }
        let reply = match self.log.term_at(m.prev_log_index) {
            Some(term) if term == m.prev_log_term => self.accept_entries(m),
            Some(_) if self.bugs().accept_entries_not_continuing_log && m.prev_log_index > self.commit_index => {
                self.accept_entries(m) // skips the §5.3 consistency check: Log Matching breaks
            }
            found => self.reject_entries(&m, found),
        };
        self.send(from, Message::AppendEntriesResponse(reply));
    }

    fn accept_entries(&mut self, m: AppendEntries) -> AppendEntriesResponse {
        let last_new = LogIndex(m.prev_log_index.0 + m.entries.len() as u64);
        let heartbeat = m.entries.is_empty();
        if self.bugs().truncate_on_stale_append && m.prev_log_index < self.log.last_index() && !m.entries.is_empty() {
            self.log.truncate_from(LogIndex(m.prev_log_index.0 + 1));
        }
        let mut new_entries = m.entries.into_iter().peekable();
        // Skip entries we already hold; truncate at the first conflicting one (§5.3 step 3).
        while let Some(entry) = new_entries.peek() {
            match self.log.term_at(entry.index) {
                Some(term) if term == entry.term => {
                    new_entries.next();
                }
                Some(_) if self.bugs().no_conflict_truncation => {
                    new_entries.next(); // keeps our conflicting entry: Log Matching breaks
                }
                Some(_) => {
                    assert!(entry.index > self.commit_index, "§5.4: a committed entry never conflicts");
                    self.log.truncate_from(entry.index);
                    break;
                }
                None => break,
            }
        }
        self.log.append(new_entries);
        // §5.3 step 5: commit up to the leader's commit, but only as far as this message
        // proved our log matches the leader's.
        let commit = m.leader_commit.min(last_new);
        if commit > self.commit_index {
            self.commit_index = commit;
        }
        // A heartbeat's answer acknowledges only what is already durable: true (the log
        // matches the leader's up to `prev_log_index`), and it promises nothing the writes in
        // flight have yet to make durable, so the runtime sends it at once. While this
        // server's disk is slow the leader still hears from it (check quorum, thesis §6.2)
        // instead of losing a majority to a shared disk's stall.
        let match_index = if heartbeat { last_new.min(self.log.persisted()) } else { last_new };
        AppendEntriesResponse {
            term: self.current_term,
            success: true,
            match_index,
            conflict_index: LogIndex(0),
            conflict_term: Term(0),
        }
    }

    fn reject_entries(&self, m: &AppendEntries, found: Option<Term>) -> AppendEntriesResponse {
        // Fast back-tracking hints (§5.3, end): where our log diverges, so the leader can skip
        // a whole term per round trip instead of one entry.
        let (conflict_index, conflict_term) = match found {
            None => (LogIndex(self.log.last_index().0 + 1), Term(0)),
            Some(term) => (self.log.first_index_of_term(term, m.prev_log_index), term),
        };
        AppendEntriesResponse {
            term: self.current_term,
            success: false,
            match_index: m.prev_log_index,
            conflict_index,
            conflict_term,
        }
    }

    pub(super) fn handle_append_entries_response(&mut self, from: NodeId, m: AppendEntriesResponse) {
        if self.role != Role::Leader {
            return;
        }
        self.recent_active.insert(from);
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        if m.success {
            if !progress.acknowledged(m.match_index) {
                self.ignored.stale_response += 1;
                return;
            }
            self.maybe_commit();
            if self.transfer_target() == Some(from) {
                self.continue_transfer();
                return;
            }
        } else {
            // With the follower's conflict term: skip to after our last entry of that term if
            // we have it, else to the first index of that term in its log.
            let hint = match (m.conflict_term, m.conflict_term.0 > 0) {
                (term, true) => self.log.last_index_of_term(term).map_or(m.conflict_index, |i| LogIndex(i.0 + 1)),
                (_, false) => m.conflict_index,
            };
            let progress = self.progress.get_mut(&from).expect("progress exists");
            if progress.claims_lost_entries(m.match_index, m.conflict_index, m.conflict_term, self.heartbeat_round) {
                // Said again a heartbeat later, not a reordered old answer: its disk was wiped
                // (or lost synced data). Find its log again from what it says it holds.
                log::warn!(
                    "{}: {from} no longer holds entries it acknowledged (its log ends at {}, it had {}); \
                     replicating to it again",
                    self.id,
                    LogIndex(m.conflict_index.0.saturating_sub(1)),
                    progress.match_index
                );
                progress.restart_at(m.conflict_index.max(LogIndex(1)));
            } else if !progress.rejected(m.match_index, hint) {
                self.ignored.stale_response += 1;
                return;
            }
        }
        self.send_append(from);
    }

    /// §5.3/§5.4.2: the highest index stored on a majority (the leader counting only what it
    /// has persisted) is committed, if its entry is of the current term.
    pub(super) fn maybe_commit(&mut self) {
        // Voters only (thesis §4.2.1: a learner's acknowledgement counts for nothing), and the
        // leader itself only while it is a voter (§4.2.2: a leader being removed replicates the
        // change without counting itself).
        let counts = |p: &NodeId| self.membership().is_voter(*p) || self.bugs().learner_counts_towards_commit;
        let mut matched: Vec<LogIndex> =
            self.progress.iter().filter(|(p, _)| counts(p)).map(|(_, p)| p.match_index).collect();
        let own =
            if self.bugs().leader_counts_itself_before_fsync { self.log.last_index() } else { self.log.persisted() };
        if self.is_voter() {
            matched.push(own);
        }
        if matched.len() < self.quorum() {
            return;
        }
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = matched[self.quorum() - 1];
        let current_term_entry = self.log.term_at(candidate) == Some(self.current_term);
        if candidate > self.commit_index && (current_term_entry || self.bugs().commit_previous_term_by_counting) {
            self.commit_index = candidate;
            if current_term_entry {
                self.reads_after_commit();
            }
        }
    }
}
