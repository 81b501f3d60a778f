//! Tests of the linearizability checker: classic anomalies rejected, valid histories accepted,
//! agreement with a brute-force search.

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
