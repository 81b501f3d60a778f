//! Safety properties of Raft (Figure 3) and a few more, checked after every event.

use super::node::SimNode;
use crate::core::{LogIndex, Message, NodeId, Role, Term};
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
    /// Chain hash of each committed index, and the term in which it was first known committed.
    committed: Vec<(u64, Term)>,
    /// index -> chain hash of the entry applied there by anyone.
    applied: BTreeMap<LogIndex, u64>,
    /// (node, term) -> the candidate its granted vote went to, across restarts.
    votes: BTreeMap<(NodeId, Term), NodeId>,
    /// node -> highest term it has put in a message: after that, it may never be below it.
    announced: BTreeMap<NodeId, Term>,
    /// node -> (commit index in the current incarnation, incarnation).
    progress: BTreeMap<NodeId, (LogIndex, u64)>,
}

impl Checker {
    /// Every property, for the server that just handled an event (and pairs involving it).
    pub fn check(&mut self, nodes: &[SimNode], changed: NodeId) -> Result<(), Violation> {
        let node = &nodes[changed.0 as usize - 1];
        if let Some((index, before)) = node.apply_error {
            return violation(
                "apply each entry once, in order",
                format!("server {changed} applied index {index} after {before} applies"),
            );
        }
        let Some(raft) = node.raft.as_ref() else { return Ok(()) };
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
        let entry = self.progress.entry(changed).or_insert((commit, node.incarnation));
        if node.incarnation == entry.1 && commit < entry.0 {
            return violation(
                "commit index never goes backwards",
                format!("server {changed}: {commit} after {}", entry.0),
            );
        }
        *entry = (commit, node.incarnation);

        if raft.role() == Role::Leader {
            // Election Safety: at most one leader per term.
            let first = *self.leaders.entry(term).or_insert(changed);
            if first != changed {
                return violation("Election Safety", format!("servers {first} and {changed} both lead term {term}"));
            }
            // Leader Append-Only: a leader never overwrites or deletes entries in its log.
            let last = LogIndex(node.log_len());
            let last_chain = node.chain.last().copied().unwrap_or(0);
            if let Some((t, old_last, old_chain)) = self.leading.get(&changed).copied() {
                if t == term {
                    let kept = node.chain.get(old_last.0 as usize - 1).copied().unwrap_or(0);
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
            let must_hold = self.committed.partition_point(|(_, t)| *t < term);
            if must_hold > 0 && node.chain.get(must_hold - 1) != Some(&self.committed[must_hold - 1].0) {
                return violation(
                    "Leader Completeness",
                    format!("leader {changed} of term {term} lacks committed entry {must_hold}"),
                );
            }
        } else {
            self.leading.remove(&changed);
        }

        // Committed entries never change or disappear; record newly committed ones.
        let known = (commit.0 as usize).min(node.chain.len());
        let overlap = known.min(self.committed.len());
        if overlap > 0 && node.chain[overlap - 1] != self.committed[overlap - 1].0 {
            return violation(
                "committed entries never change",
                format!("server {changed} disagrees at committed index {overlap}"),
            );
        }
        for i in self.committed.len()..known {
            self.committed.push((node.chain[i], term));
        }

        // Log Matching: two logs with an entry of equal index and term are equal up to it.
        // Compared on the logs as handed to storage (the core's own log may be ahead while an
        // fsync is in flight; its new entries show up in the next Ready).
        for other in nodes.iter().filter(|n| n.id != changed && n.raft.is_some()) {
            let mut i = node.log_len().min(other.log_len());
            while i > 0 && node.term_at(i) != other.term_at(i) {
                i -= 1;
            }
            if i > 0 && node.chain.get(i as usize - 1) != other.chain.get(i as usize - 1) {
                return violation(
                    "Log Matching",
                    format!("servers {changed} and {} share (index {i}, term) but differ before", other.id),
                );
            }
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

    /// State Machine Safety: whoever applies `index` applies the same entry (chain `hash`).
    pub fn applied(&mut self, node: NodeId, index: LogIndex, hash: u64) -> Result<(), Violation> {
        let first = *self.applied.entry(index).or_insert(hash);
        if first != hash {
            return violation("State Machine Safety", format!("server {node} applied a different entry at {index}"));
        }
        Ok(())
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
