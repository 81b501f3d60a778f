//! Safety properties of Raft (Figure 3) and a few more, checked after every event; and, in
//! the stability run mode, that a healthy leader is never deposed. Two are about membership
//! (thesis §4.1): at most one membership change is pending across all logs that continue the
//! committed log, and a leader commits only what a majority of its voters store.

use super::node::SimNode;
use crate::core::{LogIndex, Message, NodeId, Role, Term, MEMBERSHIP_MAGIC};
use crate::kv::{KvStore, StateMachine};
use std::collections::BTreeMap;

/// A violated property: its name and what was seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The property, e.g. "Election Safety".
    pub property: &'static str,
    /// What broke it.
    pub detail: String,
}

fn violation(property: &'static str, detail: String) -> Result<(), Violation> {
    Err(Violation { property, detail })
}

/// What the checker remembers across events.
#[derive(Default)]
pub struct Checker {
    /// term -> its leader.
    leaders: BTreeMap<Term, NodeId>,
    /// node -> (term, last index, chain at last index) while it leads.
    leading: BTreeMap<NodeId, (Term, LogIndex, u64)>,
    /// Each committed index (at position index - 1), as first known committed on any server.
    committed: Vec<Committed>,
    /// (node, term) -> the candidate its granted vote went to, across restarts.
    votes: BTreeMap<(NodeId, Term), NodeId>,
    /// node -> highest term it has put in a message: after that, it may never be below it.
    announced: BTreeMap<NodeId, Term>,
    /// node -> (commit index in the current incarnation, incarnation).
    progress: BTreeMap<NodeId, (LogIndex, u64)>,
    /// Whether this run checks stability (see [`Checker::with_stability`]).
    watch_stability: bool,
    /// The stable leader and its term, once established.
    stable: Option<(NodeId, Term)>,
    /// A reference state machine fed every committed command once, in order, and its
    /// response at each index (position index - 1; empty for a no-op).
    model: KvStore,
    responses: Vec<Vec<u8>>,
}

/// What the checker knows of one committed index.
struct Committed {
    /// Chain hash of the log up to it (Log Matching at a glance).
    chain: u64,
    /// [`entry_hash`](super::node::entry_hash) of the entry itself: what every applier must
    /// have applied there.
    entry: u64,
    /// The term in which it was first known committed (for Leader Completeness).
    term: Term,
}

impl Checker {
    /// A checker that also checks stability, for runs whose only faults are single-follower
    /// faults (pauses, crash-restarts and partitions of one follower at a time, never the
    /// stable leader, on a network without loss).
    ///
    /// The rule: the leader L of term T becomes *stable* at the first instant every server is
    /// up, in term T, and names L as its leader (all have heard from it). From then on, for
    /// the rest of the run, no server may be leader in any term but T — neither another
    /// server nor L in a later term. With pre-vote (thesis §9.6) and leader stickiness
    /// (§4.2.3) a faulted follower that comes back cannot raise the cluster's term, so any
    /// new leader is a disruption the core should have prevented.
    pub fn with_stability() -> Self {
        Checker { watch_stability: true, ..Checker::default() }
    }

    /// The stable leader and its term, once there is one (stability runs only).
    pub fn stable_leader(&self) -> Option<(NodeId, Term)> {
        self.stable
    }

    /// Every property, for the server that just handled an event (and pairs involving it).
    pub fn check(&mut self, nodes: &[SimNode], changed: NodeId) -> Result<(), Violation> {
        let node = &nodes[changed.0 as usize - 1];
        if let Some((index, before)) = node.apply_error {
            return violation(
                "apply each entry once, in order",
                format!("server {changed} applied index {index} after {before} applies"),
            );
        }
        let Some(raft) = node.raft() else { return Ok(()) };
        if let Some(broken) = raft.invariant_violation() {
            return violation("core invariants", format!("server {changed}: {broken}"));
        }
        let (term, commit) = (raft.current_term(), raft.commit_index());

        // Terms never go backwards (Figure 2: currentTerm is persistent): never below a term
        // the server has already told anyone. Commit indexes never go backwards within an
        // incarnation.
        if let Some(&announced) = self.announced.get(&changed) {
            if term < announced {
                return violation(
                    "terms never go backwards",
                    format!("server {changed}: term {term} after announcing {announced}"),
                );
            }
        }
        let entry = self.progress.entry(changed).or_insert((LogIndex(0), node.incarnation));
        let previous_commit = if entry.1 == node.incarnation { entry.0 } else { LogIndex(0) };
        if node.incarnation == entry.1 && commit < entry.0 {
            return violation(
                "commit index never goes backwards",
                format!("server {changed}: {commit} after {}", entry.0),
            );
        }
        *entry = (commit, node.incarnation);

        if raft.role() == Role::Leader {
            // Election Safety: at most one leader per term — counting a leader once its term is
            // durable. A voter alone in its membership wins the moment it campaigns, before its
            // term is on disk; until then it can send nothing (the driver holds its messages)
            // nor commit anything (its entries are in the same write), and a crash erases the
            // term it led, as if it had never campaigned (it may then vote in that term).
            let durable = node.driver.as_ref().is_some_and(|d| d.durable_hard_state().current_term == term);
            let first = if durable { *self.leaders.entry(term).or_insert(changed) } else { changed };
            if first != changed {
                return violation("Election Safety", format!("servers {first} and {changed} both lead term {term}"));
            }
            // Leader Append-Only: a leader never overwrites or deletes entries in its log.
            let last = LogIndex(node.log_len());
            let last_chain = node.view.chain.last().copied().unwrap_or(0);
            if let Some((t, old_last, old_chain)) = self.leading.get(&changed).copied() {
                if t == term {
                    let kept = node.view.chain.get(old_last.0 as usize - 1).copied().unwrap_or(0);
                    if old_last.0 > 0 && (last < old_last || kept != old_chain) {
                        return violation(
                            "Leader Append-Only",
                            format!("leader {changed} of term {term} changed its entry {old_last}"),
                        );
                    }
                }
            }
            self.leading.insert(changed, (term, last, last_chain));
            // Leader Completeness: entries committed in earlier terms are in this leader's log.
            let must_hold = self.committed.partition_point(|c| c.term < term);
            if must_hold > 0 && node.view.chain.get(must_hold - 1) != Some(&self.committed[must_hold - 1].chain) {
                return violation(
                    "Leader Completeness",
                    format!("leader {changed} of term {term} lacks committed entry {must_hold}"),
                );
            }
        } else {
            self.leading.remove(&changed);
        }

        if raft.role() == Role::Leader && commit > previous_commit {
            self.check_commit_quorum(nodes, changed)?;
        }
        self.record_commits(node)?;
        self.check_one_change_pending(nodes)?;
        if self.watch_stability {
            self.check_stability(nodes, changed)?;
        }

        // Log Matching: two logs with an entry of equal index and term are equal up to it.
        // Compared on the logs as handed to storage (the core's own log may be ahead while an
        // fsync is in flight; its new entries show up in the next Ready).
        for other in nodes.iter().filter(|n| n.id != changed && n.is_up()) {
            let mut i = node.log_len().min(other.log_len());
            while i > 0 && node.term_at(i) != other.term_at(i) {
                i -= 1;
            }
            if i > 0 && node.view.chain.get(i as usize - 1) != other.view.chain.get(i as usize - 1) {
                return violation(
                    "Log Matching",
                    format!("servers {changed} and {} share (index {i}, term) but differ before", other.id),
                );
            }
        }
        Ok(())
    }

    /// Committed entries never change or disappear; record those `node` newly knows
    /// committed. Called after every event and before any applied entry is checked, so what
    /// a server applies is compared with everything known committed by then.
    pub fn record_commits(&mut self, node: &SimNode) -> Result<(), Violation> {
        let Some(raft) = node.raft() else { return Ok(()) };
        let known = (raft.commit_index().0 as usize).min(node.view.chain.len());
        let overlap = known.min(self.committed.len());
        if overlap > 0 && node.view.chain[overlap - 1] != self.committed[overlap - 1].chain {
            return violation(
                "committed entries never change",
                format!("server {} disagrees at committed index {overlap}", node.id),
            );
        }
        for i in self.committed.len()..known {
            let entry = node.view.hashes[i];
            self.committed.push(Committed { chain: node.view.chain[i], entry, term: raft.current_term() });
        }
        Ok(())
    }

    fn check_stability(&mut self, nodes: &[SimNode], changed: NodeId) -> Result<(), Violation> {
        let Some((leader, term)) = self.stable else {
            let Some(l) = nodes.iter().filter_map(|n| n.raft()).find(|r| r.role() == Role::Leader) else {
                return Ok(());
            };
            let (leader, term) = (l.id(), l.current_term());
            let all_follow = nodes
                .iter()
                .all(|n| n.raft().is_some_and(|r| r.current_term() == term && r.leader_id() == Some(leader)));
            if all_follow {
                self.stable = Some((leader, term));
            }
            return Ok(());
        };
        let raft = nodes[changed.0 as usize - 1].raft().expect("checked only while up");
        if raft.role() == Role::Leader && (changed, raft.current_term()) != (leader, term) {
            return violation(
                "stability",
                format!(
                    "server {changed} leads term {} after {leader} of term {term} was stable and never faulted",
                    raft.current_term()
                ),
            );
        }
        Ok(())
    }

    /// `from` sent `message` to `to`: what it announced can never be taken back.
    pub fn sent(&mut self, from: NodeId, to: NodeId, message: &Message) -> Result<(), Violation> {
        // A pre-vote carries the term its sender would campaign in, and a granted pre-vote
        // echoes it (thesis §9.6): neither is the sender's own term.
        let own_term = match message {
            Message::PreVote(m) => Term(m.term.0.saturating_sub(1)),
            Message::PreVoteResponse(r) if r.vote_granted => Term(0),
            other => other.term(),
        };
        let announced = self.announced.entry(from).or_default();
        *announced = (*announced).max(own_term);
        if let Message::RequestVoteResponse(r) = message {
            if r.vote_granted {
                // One vote per term, across restarts (Figure 2: votedFor is persistent).
                let first = *self.votes.entry((from, r.term)).or_insert(to);
                if first != to {
                    return violation(
                        "one vote per term",
                        format!("server {from} granted term {} to {first} and {to}", r.term),
                    );
                }
            }
        }
        Ok(())
    }

    /// State Machine Safety, against the committed log: the entry `node` applied at `index`
    /// (its `entry_hash` `hash`, sim/node.rs) is the entry committed there, and nothing is applied before
    /// some server knows it committed.
    pub fn applied(&mut self, node: NodeId, index: LogIndex, hash: u64) -> Result<(), Violation> {
        let Some(committed) = index.0.checked_sub(1).and_then(|i| self.committed.get(i as usize)) else {
            return violation(
                "apply only committed entries",
                format!("server {node} applied index {index}; known committed: {}", self.committed.len()),
            );
        };
        if committed.entry != hash {
            return violation(
                "State Machine Safety",
                format!("server {node} applied at {index} an entry other than the committed one"),
            );
        }
        Ok(())
    }

    /// Determinism, and that a state machine restored from a snapshot is the state it
    /// stands for: every server's response at `index` equals the reference's, which applied
    /// each committed command exactly once. A snapshot that lost client sessions shows here:
    /// the retried write it lets through answers differently from the reference, which
    /// recognizes the retry (thesis §6.3).
    pub fn response(
        &mut self,
        node: NodeId,
        index: LogIndex,
        command: &[u8],
        response: &[u8],
    ) -> Result<(), Violation> {
        let at = index.0 as usize - 1;
        if at == self.responses.len() {
            // The state machine sees commands only: no no-ops, no membership entries (the
            // driver skips them: `Entry::is_command`).
            let is_command = !command.is_empty() && !command.starts_with(&MEMBERSHIP_MAGIC);
            let expected = if is_command { self.model.apply(index, command) } else { Vec::new() };
            self.responses.push(expected);
        }
        match self.responses.get(at) {
            Some(expected) if expected != response => violation(
                "state machines agree",
                format!("server {node} answered index {index} differently from the reference state machine"),
            ),
            Some(_) => Ok(()),
            // Applied beyond what the reference has seen: the apply check reports it.
            None => Ok(()),
        }
    }

    /// Thesis §4.1: single-server changes are safe only while at most one is pending — every
    /// two memberships in force anywhere then differ by one server, so their majorities
    /// overlap. Across every log that continues the committed log (equal chain at the highest
    /// index known committed), at most one membership entry lies beyond it. Two changes in one
    /// leader's log break this; so does a new leader's change made before it committed an entry
    /// of its term while another server still holds an earlier leader's uncommitted change
    /// (the bug the §4.1 fix closes: that change was never undone by a commit).
    fn check_one_change_pending(&self, nodes: &[SimNode]) -> Result<(), Violation> {
        let known = self.committed.len();
        let committed_chain = known.checked_sub(1).map(|i| self.committed[i].chain);
        let mut pending: Option<(NodeId, LogIndex, u64)> = None;
        for node in nodes.iter().filter(|n| !n.retired) {
            let view = &node.view;
            let beyond = view.memberships.partition_point(|i| i.0 as usize <= known);
            if beyond == view.memberships.len() {
                continue;
            }
            if let Some(chain) = committed_chain {
                if view.chain.get(known - 1) != Some(&chain) {
                    continue; // diverged from the committed log: its tail will be truncated
                }
            }
            for &index in &view.memberships[beyond..] {
                let hash = view.hashes[index.0 as usize - 1];
                match pending {
                    None => pending = Some((node.id, index, hash)),
                    Some((_, i, h)) if (i, h) == (index, hash) => {}
                    Some((other, i, _)) => {
                        return violation(
                            "one membership change pending",
                            format!(
                                "membership entries {i} (server {other}) and {index} (server {}) are both beyond \
                                 the committed index {known} in logs that continue the committed log",
                                node.id
                            ),
                        )
                    }
                }
            }
        }
        Ok(())
    }

    /// Leader `leader` just advanced its commit index: a majority of the voters of its
    /// membership (thesis §4.2.1: learners do not count) store the entry there, as the leader
    /// has it (logs as handed to storage).
    fn check_commit_quorum(&self, nodes: &[SimNode], leader: NodeId) -> Result<(), Violation> {
        let node = &nodes[leader.0 as usize - 1];
        let raft = node.raft().expect("a leader is up");
        let commit = raft.commit_index().0 as usize;
        let Some(chain) = node.view.chain.get(commit.wrapping_sub(1)) else { return Ok(()) };
        let membership = raft.membership();
        let holding = membership
            .voters()
            .filter(|v| nodes.get(v.0 as usize - 1).is_some_and(|n| n.view.chain.get(commit - 1) == Some(chain)))
            .count();
        if holding < membership.quorum() {
            let voters: Vec<NodeId> = membership.voters().collect();
            return violation(
                "commit needs a majority of voters",
                format!(
                    "leader {leader} committed index {commit} stored by {holding} of its voters {voters:?} (a \
                     majority is {})",
                    membership.quorum()
                ),
            );
        }
        Ok(())
    }

    /// `id`'s disk was wiped: a new server under the old id, with no term, vote or log to
    /// keep to. What it announced and voted before is forgotten.
    pub fn forget(&mut self, id: NodeId) {
        self.announced.remove(&id);
        self.progress.remove(&id);
        self.leading.remove(&id);
        self.votes.retain(|(node, _), _| *node != id);
    }

    /// Highest index known committed.
    pub fn committed_len(&self) -> u64 {
        self.committed.len() as u64
    }

    /// Number of terms that had a leader.
    pub fn leader_terms(&self) -> usize {
        self.leaders.len()
    }
}
