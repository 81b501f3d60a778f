//! A linearizability checker for key-value histories (Wing & Gong, with Lowe's just-in-time
//! linearization and memoization, as in Knossos and Porcupine).
//!
//! A history is the list of client operations a simulation observed: when each was invoked,
//! when (and with what response) it completed, or that it never completed. It is linearizable
//! if some total order of the operations respects real time (A before B whenever A completed
//! before B was invoked) and replaying that order on a plain key-value map gives every
//! recorded response. Keys are independent registers, so each key's sub-history is checked
//! on its own (P-compositionality): that keeps each search small.
//!
//! Completed operations answered `StaleSequence` or `BadCommand` were not applied by the
//! store, so they are dropped: they had no effect and their response says nothing about the
//! key's value (correct runs never produce them). Reads that never completed are dropped too:
//! they change nothing and nobody saw their answer.

use crate::kv::{KvOp, KvResponse};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

/// One client operation in a history: invoked at `invoke`, completed at `complete` with
/// `response`, or never completed (timed out / indeterminate: it may have taken effect at any
/// point after `invoke`, or never).
#[derive(Clone, Debug)]
pub struct Operation {
    /// The client that issued it (only used in explanations: real time orders operations).
    pub client: u64,
    /// What was asked.
    pub op: KvOp,
    /// Virtual time of the invocation.
    pub invoke: u64,
    /// Virtual time of the completion; None if the client never learned the outcome.
    pub complete: Option<u64>,
    /// The response received; None if the client never learned the outcome. An operation
    /// counts as completed only when both `complete` and `response` are set.
    pub response: Option<KvResponse>,
}

/// A rejected history: the key, and a human-readable explanation (the operations on that key,
/// with times and responses, in invoke order).
#[derive(Clone, Debug)]
pub struct NonLinearizable {
    /// The key whose sub-history has no linearization.
    pub key: Vec<u8>,
    /// Why: the longest linearizable prefix found, then the key's operations; or exactly
    /// [`BUDGET_EXHAUSTED`] if the search gave up.
    pub explanation: String,
}

/// The explanation when the search budget ran out: the history is then neither accepted nor
/// proven wrong, and callers may want to tell that apart from a real violation.
pub const BUDGET_EXHAUSTED: &str = "search budget exhausted";

/// Search states [`check`] explores per key before giving up: far more than simulation
/// histories need (a rejected key of 1,000 operations takes about 100,000), yet bounded (some
/// seconds, a few hundred MB) so a pathological history fails a test instead of hanging it.
pub const STATES_MAX_DEFAULT: usize = 2_000_000;

/// Check that `history` is linearizable against a key-value register model, key by key
/// (P-compositionality: a KV history is linearizable iff each key's sub-history is).
/// Ok(number of operations checked: all but those that cannot matter, i.e. not-applied ones
/// and reads that never completed) or the first key (in order of first appearance) that fails.
pub fn check(history: &[Operation]) -> Result<usize, NonLinearizable> {
    check_with_budget(history, STATES_MAX_DEFAULT)
}

/// Same as [`check`], with a budget on search states per key; returns Err with explanation
/// [`BUDGET_EXHAUSTED`] if exceeded (so a pathological history cannot hang a test).
pub fn check_with_budget(history: &[Operation], states_max: usize) -> Result<usize, NonLinearizable> {
    // Group by key, keys in order of first appearance so the reported key is deterministic.
    let mut keys: Vec<&[u8]> = Vec::new();
    let mut by_key: HashMap<&[u8], Vec<&Operation>> = HashMap::new();
    for operation in history {
        if irrelevant(operation) {
            continue;
        }
        let key = key_of(&operation.op);
        by_key
            .entry(key)
            .or_insert_with(|| {
                keys.push(key);
                Vec::new()
            })
            .push(operation);
    }
    let mut checked = 0;
    for key in keys {
        let mut operations = by_key.remove(key).unwrap_or_default();
        // Stable: equal invoke times keep history order, so explanations follow the input.
        operations.sort_by_key(|o| o.invoke);
        checked += operations.len();
        check_key(&operations, states_max).map_err(|explanation| NonLinearizable { key: key.to_vec(), explanation })?;
    }
    Ok(checked)
}

/// Operations that can neither change the key nor constrain its value: not applied (see the
/// module doc), or a read that never completed. Dropping them keeps the search small: each
/// indeterminate operation may or may not be in any prefix of the linearization.
fn irrelevant(operation: &Operation) -> bool {
    match (&operation.complete, &operation.response) {
        (Some(_), Some(KvResponse::StaleSequence { .. } | KvResponse::BadCommand)) => true,
        (Some(_), Some(_)) => false,
        _ => matches!(operation.op, KvOp::Get { .. }),
    }
}

fn key_of(op: &KvOp) -> &[u8] {
    match op {
        KvOp::Put { key, .. } | KvOp::Get { key } | KvOp::Delete { key } | KvOp::Cas { key, .. } => key,
    }
}

/// A value as a small id (0 = absent): the model state then fits in one memo word and
/// comparing states or responses never compares byte strings.
type ValueId = u64;
const ABSENT: ValueId = 0;

/// An operation with its values interned.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Put(ValueId),
    Get,
    Delete,
    Cas { expected: ValueId, new: ValueId },
}

/// A response with its values interned.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    Done,
    Value(ValueId),
    Deleted(bool),
    Cas(bool, ValueId),
    /// What no model step returns (not-applied responses are filtered out before).
    Impossible,
}

/// The sequential specification: one register, `state` its value (or ABSENT).
fn apply(step: Step, state: ValueId) -> (Answer, ValueId) {
    match step {
        Step::Put(value) => (Answer::Done, value),
        Step::Get => (Answer::Value(state), state),
        Step::Delete => (Answer::Deleted(state != ABSENT), ABSENT),
        Step::Cas { expected, new } => {
            let swapped = state == expected;
            let after = if swapped { new } else { state };
            (Answer::Cas(swapped, after), after)
        }
    }
}

/// Interns values so equal byte strings get equal ids.
#[derive(Default)]
struct Interner<'a> {
    ids: HashMap<&'a [u8], ValueId>,
}

impl<'a> Interner<'a> {
    fn id(&mut self, value: Option<&'a Vec<u8>>) -> ValueId {
        let Some(value) = value else { return ABSENT };
        let next = self.ids.len() as ValueId + 1;
        *self.ids.entry(value.as_slice()).or_insert(next)
    }

    fn step(&mut self, op: &'a KvOp) -> Step {
        match op {
            KvOp::Put { value, .. } => Step::Put(self.id(Some(value))),
            KvOp::Get { .. } => Step::Get,
            KvOp::Delete { .. } => Step::Delete,
            KvOp::Cas { expected, new, .. } => {
                Step::Cas { expected: self.id(expected.as_ref()), new: self.id(new.as_ref()) }
            }
        }
    }

    fn answer(&mut self, response: &'a KvResponse) -> Answer {
        match response {
            KvResponse::Done => Answer::Done,
            KvResponse::Value(value) => Answer::Value(self.id(value.as_ref())),
            KvResponse::Deleted { existed } => Answer::Deleted(*existed),
            KvResponse::Cas { swapped, current } => Answer::Cas(*swapped, self.id(current.as_ref())),
            KvResponse::StaleSequence { .. } | KvResponse::BadCommand => Answer::Impossible,
        }
    }
}

/// One operation on the key, ready for the search.
struct Entry {
    step: Step,
    invoke: u64,
    /// Completion time and the response the model must reproduce; None when indeterminate.
    completed: Option<(u64, Answer)>,
}

impl Entry {
    /// Overwrites the value without looking at it, and nobody sees a response.
    fn is_blind_write(&self) -> bool {
        matches!((self.step, self.completed), (Step::Put(_), _) | (Step::Delete, None))
    }
}

/// Searches for a linearization of one key's operations (sorted by invoke time).
///
/// Depth-first: at each point, any operation invoked no later than the earliest completion
/// among the remaining completed operations may be linearized next (nothing remaining
/// strictly precedes it in real time). A completed operation fits only if the model gives its
/// recorded response; an indeterminate one fits with whatever the model gives, and may also
/// never be linearized. Done when every completed operation is linearized.
///
/// Indeterminate operations are the expensive part (each may or may not be in any prefix), so
/// they are only linearized where it can matter: when they change the value, and right before
/// an operation that looks at it. Any other placement can be dropped from a linearization
/// without changing what later operations see, so no verdict changes.
///
/// Memo: the set of linearized operations (a bitset) plus the state word (the model's value
/// and the must-observe flag). Two paths reaching the same key have the same futures, so each
/// is explored once; the budget counts them.
fn check_key(operations: &[&Operation], states_max: usize) -> Result<(), String> {
    let mut interner = Interner::default();
    let mut entries = Vec::with_capacity(operations.len());
    for (index, operation) in operations.iter().enumerate() {
        let completed = match (operation.complete, &operation.response) {
            (Some(complete), Some(response)) => {
                if complete < operation.invoke {
                    let why = format!("operation #{index} completes before it is invoked");
                    return Err(explain(operations, &why));
                }
                Some((complete, interner.answer(response)))
            }
            // No response: the outcome is unknown, whatever the completion time says.
            _ => None,
        };
        entries.push(Entry { step: interner.step(&operation.op), invoke: operation.invoke, completed });
    }
    // Completed operations by completion time: the first not yet linearized bounds the
    // candidates. `rank` maps an operation back to its place here.
    let mut by_complete: Vec<(u64, usize)> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, entry)| entry.completed.map(|(complete, _)| (complete, i)))
        .collect();
    by_complete.sort_unstable();
    let mut rank = vec![usize::MAX; entries.len()];
    for (position, &(_, i)) in by_complete.iter().enumerate() {
        rank[i] = position;
    }

    // The memo key itself: the linearized-set bitset words, then a state word (the value id,
    // shifted to hold the "indeterminate operation just linearized: observe it next" flag, as
    // it decides which operations may follow). A lookup borrows it; only new states are copied.
    let words = entries.len().div_ceil(64);
    let mut current = vec![0u64; words + 1];
    let is_set = |current: &[u64], i: usize| current[i / 64] & (1 << (i % 64)) != 0;
    let mut memo: HashSet<Vec<u64>> = HashSet::new();
    // (operation linearized, state word before it)
    let mut path: Vec<(usize, u64)> = Vec::new();
    let mut longest: Vec<usize> = Vec::new();
    let mut first_done = 0; // lowest `by_complete` place not linearized
    let mut cursor = 0; // next candidate to try at the current depth
    while let Some(&(bound, _)) = by_complete.get(first_done) {
        let word = current[words];
        let (state, must_observe) = (word >> 1, word & 1 == 1);
        let mut chosen = None;
        let mut i = next_open(&current, cursor);
        while i < entries.len() && entries[i].invoke <= bound {
            let entry = &entries[i];
            if !(must_observe && entry.is_blind_write()) {
                let (answer, after) = apply(entry.step, state);
                let fits = match entry.completed {
                    Some((_, want)) => want == answer,
                    None => after != state,
                };
                if fits {
                    current[i / 64] |= 1 << (i % 64);
                    current[words] = after << 1 | u64::from(entry.completed.is_none());
                    if !memo.contains(current.as_slice()) {
                        chosen = Some(i);
                        break;
                    }
                    current[i / 64] &= !(1 << (i % 64));
                    current[words] = word;
                }
            }
            i = next_open(&current, i + 1);
        }
        if let Some(i) = chosen {
            if memo.len() >= states_max {
                return Err(BUDGET_EXHAUSTED.to_string());
            }
            memo.insert(current.clone());
            path.push((i, word));
            if path.len() > longest.len() {
                longest = path.iter().map(|&(i, _)| i).collect();
            }
            while by_complete.get(first_done).is_some_and(|&(_, i)| is_set(&current, i)) {
                first_done += 1;
            }
            cursor = 0;
        } else if let Some((i, before)) = path.pop() {
            current[i / 64] &= !(1 << (i % 64));
            current[words] = before;
            first_done = first_done.min(rank[i]);
            cursor = i + 1;
        } else {
            let order: Vec<String> = longest.iter().map(|i| format!("#{i}")).collect();
            let why = format!("no linearization; longest prefix: [{}]", order.join(", "));
            return Err(explain(operations, &why));
        }
    }
    Ok(())
}

/// The first operation from `i` on that is not linearized (or one past the last), skipping
/// whole words: every step would otherwise rescan the linearized prefix one by one (from the
/// oldest indeterminate operation left out, which keeps `i` low).
fn next_open(linearized: &[u64], mut i: usize) -> usize {
    loop {
        // Bits past the operations are zero, so this stops at the end at the latest.
        let ones = (linearized[i / 64] >> (i % 64)).trailing_ones() as usize;
        if ones == 0 {
            return i;
        }
        i += ones;
    }
}

/// The rejection text: the reason, then every operation on the key in invoke order.
fn explain(operations: &[&Operation], why: &str) -> String {
    let mut text = format!("{why}\n");
    for (index, o) in operations.iter().enumerate() {
        let end = o.complete.map_or("never".to_string(), |c| c.to_string());
        let response = match (&o.complete, &o.response) {
            (Some(_), Some(response)) => show_response(response),
            _ => "indeterminate".to_string(),
        };
        let _ =
            writeln!(text, "  #{index} client {} [{} .. {end}] {} -> {response}", o.client, o.invoke, show_op(&o.op));
    }
    text
}

fn show(value: Option<&[u8]>) -> String {
    value.map_or("absent".to_string(), |value| format!("\"{}\"", value.escape_ascii()))
}

fn show_op(op: &KvOp) -> String {
    match op {
        KvOp::Put { value, .. } => format!("put {}", show(Some(value))),
        KvOp::Get { .. } => "get".to_string(),
        KvOp::Delete { .. } => "delete".to_string(),
        KvOp::Cas { expected, new, .. } => format!("cas {} -> {}", show(expected.as_deref()), show(new.as_deref())),
    }
}

fn show_response(response: &KvResponse) -> String {
    match response {
        KvResponse::Done => "done".to_string(),
        KvResponse::Value(value) => show(value.as_deref()),
        KvResponse::Deleted { existed } => format!("deleted (existed: {existed})"),
        KvResponse::Cas { swapped, current } => format!("swapped: {swapped}, now {}", show(current.as_deref())),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
#[path = "linearizability_tests.rs"]
mod tests;
