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
mod tests {
    use super::*;
    use crate::core::{LogIndex, SplitMix64};
    use crate::kv::{KvCommand, KvStore};

    fn v(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    fn done(op: KvOp, invoke: u64, complete: u64, response: KvResponse) -> Operation {
        let (complete, response) = (Some(complete), Some(response));
        let client = invoke;
        Operation { client, op, invoke, complete, response }
    }

    fn pending(op: KvOp, invoke: u64) -> Operation {
        let mut operation = done(op, invoke, 0, KvResponse::Done);
        (operation.complete, operation.response) = (None, None);
        operation
    }

    fn put(k: &str, x: &str) -> KvOp {
        KvOp::Put { key: v(k), value: v(x) }
    }

    fn get(k: &str) -> KvOp {
        KvOp::Get { key: v(k) }
    }

    fn del(k: &str) -> KvOp {
        KvOp::Delete { key: v(k) }
    }

    fn cas(k: &str, expected: Option<&str>, new: Option<&str>) -> KvOp {
        KvOp::Cas { key: v(k), expected: expected.map(v), new: new.map(v) }
    }

    fn value(x: Option<&str>) -> KvResponse {
        KvResponse::Value(x.map(v))
    }

    fn said(swapped: bool, current: Option<&str>) -> KvResponse {
        KvResponse::Cas { swapped, current: current.map(v) }
    }

    /// The real store is the reference model for the randomized tests.
    fn run(store: &mut KvStore, op: &KvOp) -> KvResponse {
        let command = KvCommand { client_id: 0, seq: 0, op: op.clone() };
        store.apply_command(LogIndex(1), command)
    }

    #[test]
    fn sequential_and_overlapping_histories_are_accepted() {
        let sequential = [done(put("x", "1"), 0, 1, KvResponse::Done), done(get("x"), 2, 3, value(Some("1")))];
        assert_eq!(check(&sequential).unwrap(), 2);
        // A get overlapping a put may see either the old or the new value; touching endpoints
        // (complete == invoke) count as overlapping.
        for (seen, invoke) in [(None, 5), (Some("1"), 5), (None, 10)] {
            let overlapping = [done(put("x", "1"), 0, 10, KvResponse::Done), done(get("x"), invoke, 11, value(seen))];
            assert!(check(&overlapping).is_ok(), "get at {invoke} saw {seen:?}");
        }
    }

    #[test]
    fn stale_reads_and_lost_writes_are_rejected() {
        let stale = [
            done(put("x", "1"), 0, 1, KvResponse::Done),
            done(put("x", "2"), 2, 3, KvResponse::Done),
            done(get("x"), 4, 5, value(Some("1"))),
        ];
        let error = check(&stale).unwrap_err();
        assert_eq!(error.key, v("x"));
        assert!(error.explanation.contains("no linearization"), "{error:?}");
        assert!(error.explanation.contains("#1 client 2 [2 .. 3] put \"2\" -> done"));
        let lost = [done(put("x", "1"), 0, 1, KvResponse::Done), done(get("x"), 2, 3, value(None))];
        assert!(check(&lost).is_err());
        // Two sequential compare-and-sets cannot both swap from the same expected value.
        let double_swap = [
            done(put("x", "0"), 0, 1, KvResponse::Done),
            done(cas("x", Some("0"), Some("a")), 2, 3, said(true, Some("a"))),
            done(cas("x", Some("0"), Some("b")), 4, 5, said(true, Some("b"))),
        ];
        assert!(check(&double_swap).is_err());
    }

    #[test]
    fn indeterminate_operations_may_or_may_not_take_effect() {
        for seen in ["1", "2"] {
            let history = [
                done(put("x", "1"), 0, 1, KvResponse::Done),
                pending(put("x", "2"), 2),
                done(get("x"), 10, 11, value(Some(seen))),
            ];
            assert!(check(&history).is_ok(), "get saw {seen}");
        }
        // But not before it was invoked, nor twice.
        let too_early = [done(get("x"), 2, 3, value(Some("2"))), pending(put("x", "2"), 4)];
        assert!(check(&too_early).is_err());
        let twice = [
            pending(put("x", "2"), 0),
            done(get("x"), 2, 3, value(Some("2"))),
            done(put("x", "1"), 4, 5, KvResponse::Done),
            done(get("x"), 6, 7, value(Some("2"))),
        ];
        assert!(check(&twice).is_err());
    }

    #[test]
    fn not_applied_responses_and_unfinished_reads_are_ignored() {
        let history = [
            done(put("x", "1"), 0, 1, KvResponse::Done),
            done(put("x", "2"), 2, 3, KvResponse::StaleSequence { last: 7 }),
            done(get("x"), 4, 5, KvResponse::BadCommand),
            done(get("x"), 6, 7, value(Some("1"))),
            pending(get("x"), 8),
        ];
        assert_eq!(check(&history).unwrap(), 2);
    }

    #[test]
    fn delete_and_cas_report_what_they_saw() {
        let ok = [
            done(del("x"), 0, 1, KvResponse::Deleted { existed: false }),
            done(cas("x", None, Some("1")), 2, 3, said(true, Some("1"))),
            done(cas("x", None, Some("2")), 4, 5, said(false, Some("1"))),
            done(del("x"), 6, 7, KvResponse::Deleted { existed: true }),
            done(get("x"), 8, 9, value(None)),
        ];
        assert!(check(&ok).is_ok());
        let setup = done(put("x", "1"), 0, 1, KvResponse::Done);
        for wrong in [
            done(del("x"), 2, 3, KvResponse::Deleted { existed: false }),
            done(cas("x", Some("9"), Some("2")), 2, 3, said(false, Some("9"))),
            done(cas("x", Some("1"), None), 2, 3, said(true, Some("1"))),
        ] {
            assert!(check(&[setup.clone(), wrong.clone()]).is_err(), "{wrong:?}");
        }
    }

    #[test]
    fn keys_are_checked_independently() {
        let history = [
            done(put("a", "1"), 0, 1, KvResponse::Done),
            done(put("b", "1"), 0, 1, KvResponse::Done),
            done(get("a"), 2, 3, value(Some("1"))),
            done(get("b"), 2, 3, value(Some("2"))),
        ];
        assert_eq!(check(&history).unwrap_err().key, v("b"));
    }

    #[test]
    fn the_budget_stops_a_large_search() {
        // Concurrent puts each read back by a concurrent get, then a value nobody wrote: the
        // search must try the orders of the pairs, far more than the budget allows.
        let mut history = Vec::new();
        for i in 0..30 {
            history.push(done(put("x", &i.to_string()), 0, 100, KvResponse::Done));
            history.push(done(get("x"), 0, 100, value(Some(&i.to_string()))));
        }
        history.push(done(get("x"), 200, 201, value(Some("nobody"))));
        let error = check_with_budget(&history, 1000).unwrap_err();
        assert_eq!(error.explanation, BUDGET_EXHAUSTED);
    }

    /// `len` random operations on a few keys and values.
    fn random_ops(rng: &mut SplitMix64, len: usize, keys: u64) -> Vec<KvOp> {
        let mut x = |n: u64| rng.range(0, n);
        let pick = |n: u64| (n > 0).then(|| n.to_string());
        (0..len)
            .map(|_| {
                let key = x(keys).to_string();
                match x(5) {
                    0 | 1 => put(&key, &(1 + x(3)).to_string()),
                    2 => get(&key),
                    3 => del(&key),
                    _ => cas(&key, pick(x(4)).as_deref(), pick(x(4)).as_deref()),
                }
            })
            .collect()
    }

    #[test]
    fn random_linearizable_histories_are_accepted() {
        let mut rng = SplitMix64::new(0x5eed);
        for round in 0..100 {
            // Sequential against the real store (linearizable by construction), then widened:
            // the original order still fits every interval. Some outcomes are forgotten.
            let mut store = KvStore::new();
            let ops = random_ops(&mut rng, 300, 1 + round % 3);
            let mut history = Vec::new();
            for (n, op) in (0..).zip(ops) {
                let response = run(&mut store, &op);
                let (invoke, complete) = (10 * n - rng.range(0, 40).min(10 * n), 10 * n + 1);
                history.push(done(op, invoke, complete + rng.range(0, 40), response));
                if rng.range(0, 10) == 0 {
                    let last = history.last_mut().unwrap();
                    (last.complete, last.response) = (None, None);
                }
            }
            if let Err(error) = check(&history) {
                panic!("rejected key {:?}: {}", error.key, error.explanation);
            }
        }
    }

    /// The definition itself: some order of the completed operations plus any of the others,
    /// respecting real time, reproduces every response. Exponential: for tiny histories.
    fn brute_force(history: &[Operation], used: &mut [bool], value: Option<&[u8]>) -> bool {
        let open = |used: &[bool], j: usize| !used[j] && history[j].response.is_some();
        if !(0..history.len()).any(|j| open(used, j)) {
            return true;
        }
        for (i, operation) in history.iter().enumerate() {
            let preceded = |j: usize| open(used, j) && history[j].complete < Some(operation.invoke);
            if used[i] || (0..history.len()).any(preceded) {
                continue;
            }
            let (mut store, key) = (KvStore::new(), key_of(&operation.op).to_vec());
            if let Some(value) = value.map(<[u8]>::to_vec) {
                run(&mut store, &KvOp::Put { key: key.clone(), value });
            }
            let response = run(&mut store, &operation.op);
            if operation.response.as_ref().is_none_or(|want| *want == response) {
                used[i] = true;
                if brute_force(history, used, store.get(&key)) {
                    return true;
                }
                used[i] = false;
            }
        }
        false
    }

    #[test]
    fn small_random_histories_agree_with_brute_force() {
        let mut rng = SplitMix64::new(7);
        let (mut accepted, mut rejected) = (0, 0);
        for _ in 0..20_000 {
            let len = 1 + rng.range(0, 7) as usize;
            let mut history = Vec::new();
            for op in random_ops(&mut rng, len, 1) {
                // A response of the right kind, often a wrong one: both verdicts get tested.
                let x = (rng.range(0, 3) > 0).then(|| v(&rng.range(1, 3).to_string()));
                let flag = rng.range(0, 2) == 0;
                let response = match op {
                    KvOp::Put { .. } => KvResponse::Done,
                    KvOp::Get { .. } => KvResponse::Value(x),
                    KvOp::Delete { .. } => KvResponse::Deleted { existed: flag },
                    KvOp::Cas { .. } => KvResponse::Cas { swapped: flag, current: x },
                };
                let invoke = rng.range(0, 10);
                let mut operation = done(op, invoke, invoke + rng.range(0, 6), response);
                if rng.range(0, 3) == 0 {
                    (operation.complete, operation.response) = (None, None);
                }
                history.push(operation);
            }
            let expected = brute_force(&history, &mut vec![false; history.len()], None);
            assert_eq!(check(&history).is_ok(), expected, "{history:#?}");
            (accepted, rejected) = if expected { (accepted + 1, rejected) } else { (accepted, rejected + 1) };
        }
        assert!(accepted > 1000 && rejected > 1000, "{accepted} accepted, {rejected} rejected");
    }
}
