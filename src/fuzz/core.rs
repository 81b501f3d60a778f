//! The structure-aware target: decodable Raft messages with adversarial field values, fed to
//! a real core in every role. Byte mutation of encoded envelopes rarely yields a message that
//! decodes, let alone one whose indexes land near the ends of the receiver's log, so it never
//! reached the core's assertions; this target builds messages from the core's own state
//! (terms and indexes near 0, near its last index and commit index, near `TERM_MAX` and
//! `u64::MAX`; entries contiguous or not, terms ordered or not), interleaved with ticks,
//! proposals, Ready handling (synchronous `advance` or asynchronous `persisted`) and restarts.
//!
//! Snapshots are in it too: InstallSnapshot chunks and answers with offsets and lengths near
//! the image's ends, compaction behind the applied index, the runtime's verdict on a complete
//! image (good or bad), and restarts from the compacted log.
//!
//! After every input: no panic, [`Raft::invariant_violation`] is `None`, the term never goes
//! back, the vote never changes within a term, and the entries at or below the commit index
//! never change (within an incarnation).

use crate::core::{
    AppendEntries, AppendEntriesResponse, Entry, HardState, IndexRange, InstallSnapshot, InstallSnapshotResponse,
    LogIndex, Message, NodeId, Options, Raft, RaftLog, RequestVote, RequestVoteResponse, Role, SplitMix64, Term,
    SNAPSHOT_CHUNK_BYTES_MAX, TERM_MAX,
};

/// Inputs per scenario before a fresh core starts.
const STEPS_PER_SCENARIO: u64 = 400;

/// One scenario: a core (server 1 of 1, 2, 3) and the history the checks compare against.
struct Scenario {
    raft: Raft,
    options: Options,
    /// The hard state as last handed out in a Ready (what a restart reads back).
    saved: HardState,
    /// (term, vote) seen last, for "one vote per term" and "terms never go back".
    last: (Term, Option<NodeId>),
    /// Hashes of the entries at or below the commit index, in this incarnation, from
    /// `committed_base + 1` (those below the log's start are no longer checked).
    committed: Vec<(Term, u64)>,
    /// Index of the entry just before `committed[0]`.
    committed_base: u64,
}

/// Sizes of the snapshot images the fuzzer's messages talk about: tiny, one byte past a chunk.
const IMAGE_LENS: [u64; 4] = [1, 3, SNAPSHOT_CHUNK_BYTES_MAX as u64, SNAPSHOT_CHUNK_BYTES_MAX as u64 + 1];

/// What an input did, for the "accepted" count.
pub(super) struct Step {
    /// The input was a message the core did not drop as invalid or foreign.
    pub accepted: bool,
}

fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

impl Scenario {
    fn new(seed: u64) -> Scenario {
        let mut options = Options::new(NodeId(1), vec![NodeId(2), NodeId(3)], 4, 1, seed);
        options.entries_per_message_max = 3;
        options.in_flight_max = 2;
        let raft = Raft::new(options.clone(), HardState::default());
        Scenario {
            raft,
            options,
            saved: HardState::default(),
            last: (Term(0), None),
            committed: Vec::new(),
            committed_base: 0,
        }
    }

    /// A term near something the core knows, or an extreme.
    fn term(&self, rng: &mut SplitMix64) -> Term {
        let current = self.raft.current_term().0;
        let last = self.raft.log().last_term().0;
        Term(match rng.range(0, 10) {
            0 => 0,
            1 => 1,
            2 => current.saturating_sub(1),
            3 | 4 => current,
            5 => current + 1,
            6 => last,
            7 => TERM_MAX.0 + rng.range(0, 2),
            8 => u64::MAX,
            _ => rng.range(0, current + 3),
        })
    }

    /// An index near the ends of the core's log or its commit index, or an extreme.
    fn index(&self, rng: &mut SplitMix64) -> LogIndex {
        let last = self.raft.last_index().0;
        let commit = self.raft.commit_index().0;
        LogIndex(match rng.range(0, 10) {
            0 => 0,
            1 => 1,
            2 | 3 => last,
            4 => last + 1,
            5 => last.saturating_sub(1),
            6 => commit,
            7 => commit.saturating_sub(1),
            8 => u64::MAX - rng.range(0, 3),
            _ => rng.range(0, last + 4),
        })
    }

    fn sender(rng: &mut SplitMix64) -> NodeId {
        NodeId([2, 3, 2, 3, 2, 3, 1, 9][rng.range(0, 8) as usize])
    }

    fn entries(&self, rng: &mut SplitMix64, prev: (LogIndex, Term), message_term: Term) -> Vec<Entry> {
        let count = rng.range(0, 5);
        let well_formed = rng.range(0, 4) != 0;
        let mut term = prev.1.max(Term(1));
        (0..count)
            .map(|i| {
                let index = if well_formed { LogIndex(prev.0 .0.wrapping_add(i + 1)) } else { self.index(rng) };
                if well_formed {
                    if rng.range(0, 3) == 0 {
                        term = Term(term.0.saturating_add(1)).min(message_term.max(Term(1)));
                    }
                } else {
                    term = self.term(rng);
                }
                Entry { term, index, data: vec![rng.next_u64() as u8; rng.range(0, 3) as usize] }
            })
            .collect()
    }

    fn message(&self, rng: &mut SplitMix64, from: NodeId) -> Message {
        let term = self.term(rng);
        let granted = rng.range(0, 3) != 0;
        // Mostly a sender that tells the truth about itself, sometimes one that does not.
        let named = if rng.range(0, 8) == 0 { Self::sender(rng) } else { from };
        match rng.range(0, 10) {
            8 => {
                let total_len = if rng.range(0, 8) == 0 { u64::MAX } else { IMAGE_LENS[rng.range(0, 4) as usize] };
                let offset = match rng.range(0, 4) {
                    0 => 0,
                    1 => total_len.saturating_sub(rng.range(0, 3)),
                    2 => u64::MAX - rng.range(0, 2),
                    _ => rng.range(0, 4),
                };
                let len = match rng.range(0, 5) {
                    0 => 0,
                    1 => SNAPSHOT_CHUNK_BYTES_MAX + 1,
                    _ => rng.range(1, 4) as usize,
                };
                Message::InstallSnapshot(InstallSnapshot {
                    term,
                    leader_id: named,
                    last_index: self.index(rng),
                    last_term: self.term(rng),
                    total_len,
                    offset,
                    data: vec![7; len],
                    crc: 0,
                })
            }
            9 => {
                let snapshot = self.raft.snapshot();
                let (last_index, last_term) = match (rng.range(0, 3), snapshot) {
                    (0, _) | (_, None) => (self.index(rng), self.term(rng)),
                    (_, Some(s)) => (s.index, s.term),
                };
                let total = snapshot.map_or(3, |s| s.total_len);
                let next_offset = [0, 1, total, total + 1, u64::MAX][rng.range(0, 5) as usize];
                Message::InstallSnapshotResponse(InstallSnapshotResponse { term, last_index, last_term, next_offset })
            }
            0 => Message::RequestVote(RequestVote {
                term,
                candidate_id: named,
                last_log_index: self.index(rng),
                last_log_term: self.term(rng),
            }),
            1 => Message::PreVote(RequestVote {
                term,
                candidate_id: named,
                last_log_index: self.index(rng),
                last_log_term: self.term(rng),
            }),
            2 => Message::RequestVoteResponse(RequestVoteResponse { term, vote_granted: granted }),
            3 => Message::PreVoteResponse(RequestVoteResponse { term, vote_granted: granted }),
            4 | 5 => {
                let prev_log_index = self.index(rng);
                let prev_log_term = match rng.range(0, 3) {
                    0 => self.term(rng),
                    _ => self.raft.log().term_at(prev_log_index).unwrap_or(Term(0)),
                };
                let entries = self.entries(rng, (prev_log_index, prev_log_term), term);
                let leader_commit = self.index(rng);
                Message::AppendEntries(AppendEntries {
                    term,
                    leader_id: named,
                    prev_log_index,
                    prev_log_term,
                    entries,
                    leader_commit,
                })
            }
            _ => Message::AppendEntriesResponse(AppendEntriesResponse {
                term,
                success: granted,
                match_index: self.index(rng),
                conflict_index: self.index(rng),
                conflict_term: self.term(rng),
            }),
        }
    }

    /// One input, chosen at random, then the checks.
    fn step(&mut self, rng: &mut SplitMix64) -> Result<Step, String> {
        let mut accepted = false;
        match rng.range(0, 20) {
            0..=3 => self.raft.tick(),
            4 if self.raft.role() == Role::Leader => {
                let commands = (0..rng.range(1, 4)).map(|_| vec![rng.next_u64() as u8; rng.range(0, 3) as usize]);
                let _ = self.raft.propose_batch(commands.collect());
            }
            5..=7 => self.handle_ready(rng),
            8 if rng.range(0, 10) == 0 => self.restart(rng),
            9 if rng.range(0, 4) == 0 => self.compact(rng),
            _ => {
                let from = Self::sender(rng);
                let message = self.message(rng, from);
                let before = self.raft.ignored();
                self.raft.step(from, message);
                let after = self.raft.ignored();
                accepted = after.invalid_total() == before.invalid_total() && after.unknown_peer == before.unknown_peer;
            }
        }
        self.check()?;
        Ok(Step { accepted })
    }

    /// A runtime's side: take the Ready and report it durable, all at once (`advance`) or
    /// up to its last entry (`persisted`, as an asynchronous writer does), or not yet.
    fn handle_ready(&mut self, rng: &mut SplitMix64) {
        if !self.raft.has_ready() {
            return;
        }
        let ready = self.raft.ready();
        if let Some(hard_state) = ready.hard_state {
            self.saved = hard_state;
        }
        let last = self.raft.entries(ready.entries).last().map(|e| (e.index, e.term));
        let last = last.or(ready.install.map(|i| (i.index, i.term)));
        // A complete image: the runtime says whether it checks out.
        for chunk in ready.snapshot_chunks.iter().filter(|c| c.last) {
            let image = (rng.range(0, 4) != 0).then(|| self.raft.membership().clone());
            self.raft.snapshot_received(chunk.index, chunk.term, image);
        }
        match (rng.range(0, 3), last) {
            (0, Some((index, term))) => self.raft.persisted(index, term),
            _ => self.raft.advance(),
        }
    }

    /// A runtime's snapshot: of the applied state, announced, and the log compacted behind
    /// it (keeping a few entries, or none).
    fn compact(&mut self, rng: &mut SplitMix64) {
        let applied = self.raft.last_applied().min(self.raft.log().persisted());
        let (offset, _) = self.raft.log().compacted();
        if applied <= offset {
            return;
        }
        let term = self.raft.log().term_at(applied).expect("applied entries are in the log");
        self.raft.set_snapshot(applied, term, IMAGE_LENS[rng.range(0, 4) as usize]);
        let upto = LogIndex(applied.0 - rng.range(0, 3).min(applied.0 - offset.0));
        self.raft.compact(upto);
    }

    /// Restart from what a disk would hold: the saved hard state, the snapshot the log
    /// starts after and the durable log after it.
    fn restart(&mut self, rng: &mut SplitMix64) {
        let (offset, offset_term) = self.raft.log().compacted();
        let durable = IndexRange { first: LogIndex(offset.0 + 1), last: self.raft.log().persisted() };
        let entries = self.raft.entries(durable).to_vec();
        let options = Options { seed: rng.next_u64(), ..self.options.clone() };
        let snapshot = self.raft.snapshot();
        self.raft = Raft::restore(options, self.saved, RaftLog::from_snapshot(offset, offset_term, entries));
        if let Some(s) = snapshot.filter(|s| s.index >= offset) {
            self.raft.set_snapshot(s.index, s.term, s.total_len);
        }
        self.committed.clear();
        self.committed_base = 0;
        self.last = (self.saved.current_term, self.saved.voted_for);
    }

    fn check(&mut self) -> Result<(), String> {
        if let Some(broken) = self.raft.invariant_violation() {
            return Err(broken);
        }
        let (term, vote) = (self.raft.current_term(), self.raft.voted_for());
        if term < self.last.0 {
            return Err(format!("term went back from {} to {term}", self.last.0));
        }
        if term == self.last.0 && self.last.1.is_some() && vote != self.last.1 {
            return Err(format!("vote changed within term {term}: {:?} then {vote:?}", self.last.1));
        }
        self.last = (term, vote);
        let commit = self.raft.commit_index().0;
        let committed_end = self.committed_base + self.committed.len() as u64;
        if commit < committed_end {
            return Err(format!("commit index went back from {committed_end} to {commit}"));
        }
        // Entries up to the log's start are in a snapshot: from there on they are compared.
        let (offset, offset_term) = self.raft.log().compacted();
        let end = self.committed_base + self.committed.len() as u64;
        if offset.0 >= self.committed_base && offset.0 <= end && offset.0 > 0 {
            let at = (offset.0 - self.committed_base) as usize;
            if at > 0 && self.committed[at - 1].0 != offset_term {
                return Err(format!("committed entry {offset} changed term under a snapshot"));
            }
            self.committed.drain(..at);
            self.committed_base = offset.0;
        } else if offset.0 > end {
            // A snapshot covered entries this core never saw committed.
            self.committed.clear();
            self.committed_base = offset.0;
        }
        let known = IndexRange { first: LogIndex(self.committed_base + 1), last: LogIndex(commit) };
        let entries = self.raft.entries(known);
        for (i, (term, data)) in self.committed.iter().enumerate() {
            if entries[i].term != *term || hash(&entries[i].data) != *data {
                return Err(format!("committed entry {} changed", self.committed_base + i as u64 + 1));
            }
        }
        let seen = self.committed.len();
        self.committed.extend(entries[seen..].iter().map(|e| (e.term, hash(&e.data))));
        Ok(())
    }
}

/// Fuzz the core from `seed` until `keep_going` says stop; `on_step` is told of every input
/// (accepted or not). Returns the first failure: the scenario's seed, its step, and why.
pub(super) fn run(seed: u64, mut keep_going: impl FnMut() -> bool, mut on_step: impl FnMut(Step)) -> Option<String> {
    let mut rng = SplitMix64::new(seed);
    while keep_going() {
        let scenario_seed = rng.next_u64();
        let outcome = std::panic::catch_unwind(|| {
            let mut scenario_rng = SplitMix64::new(scenario_seed);
            let mut scenario = Scenario::new(scenario_seed);
            let mut steps = Vec::new();
            for n in 0..STEPS_PER_SCENARIO {
                match scenario.step(&mut scenario_rng) {
                    Ok(step) => steps.push(step),
                    Err(why) => return (steps, Some(format!("scenario seed {scenario_seed}, step {n}: {why}"))),
                }
            }
            (steps, None)
        });
        match outcome {
            Ok((steps, failure)) => {
                steps.into_iter().for_each(&mut on_step);
                if failure.is_some() {
                    return failure;
                }
            }
            Err(panic) => {
                return Some(format!("scenario seed {scenario_seed}: panic: {}", crate::panic_text(panic.as_ref())))
            }
        }
    }
    None
}
