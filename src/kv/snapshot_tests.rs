//! KV snapshots: round trip, exactly-once across a restore, determinism, and that restore
//! refuses every malformed input without panicking.

use super::*;
use crate::codec;
use crate::core::LogIndex;
use crate::core::SplitMix64;
use crate::kv::{KvCommand, KvOp, StateMachine};
use crate::session::table::Session;
use std::collections::BTreeMap;
use std::sync::Arc;

fn cmd(client_id: u64, seq: u64, op: KvOp) -> KvCommand {
    KvCommand { client_id, seq, op }
}
fn put(k: &str, v: &str) -> KvOp {
    KvOp::Put { key: k.into(), value: v.into() }
}
fn cas(k: &str, expected: Option<&str>, new: Option<&str>) -> KvOp {
    KvOp::Cas { key: k.into(), expected: expected.map(Into::into), new: new.map(Into::into) }
}

/// A store touched by every kind of operation, with sessions of several clients, a
/// session-less write and an empty key and value.
fn sample() -> KvStore {
    let mut kv = KvStore::new();
    let commands = [
        cmd(1, 1, put("a", "1")),
        cmd(2, 1, put("b", "2")),
        cmd(0, 0, put("", "")),
        cmd(1, 2, cas("a", Some("1"), Some("3"))),
        cmd(3, 5, KvOp::Delete { key: b"b".to_vec() }),
        cmd(4, 1, KvOp::Get { key: b"a".to_vec() }),
        cmd(2, 2, cas("c", None, Some("new"))),
    ];
    for (i, command) in commands.into_iter().enumerate() {
        kv.apply_command(LogIndex(i as u64 + 1), command);
    }
    kv
}

fn restored(bytes: &[u8]) -> KvStore {
    let mut kv = KvStore::new();
    kv.restore(bytes).expect("a snapshot restores");
    kv
}

#[test]
fn restore_gives_back_every_key_and_every_session() {
    let original = sample();
    let copy = restored(&original.snapshot()());
    assert_eq!(copy, original);
    // Spelled out, in case equality ever stops covering a field.
    assert_eq!(copy.data, original.data);
    assert_eq!(copy.sessions, original.sessions);
    assert_eq!(copy.sessions.order(), original.sessions.order());
    assert_eq!(copy.get(b"a"), Some(&b"3"[..]));
    assert_eq!(copy.get(b""), Some(&b""[..]));
    assert_eq!(copy.get(b"b"), None);
    assert_eq!(copy.sessions.len(), 4);

    // Restore replaces the whole state, it does not merge.
    let mut other = KvStore::new();
    other.apply_command(LogIndex(1), cmd(9, 1, put("zzz", "gone")));
    other.restore(&original.snapshot()()).unwrap();
    assert_eq!(other, original);

    // An empty store round-trips too.
    assert_eq!(restored(&KvStore::new().snapshot()()), KvStore::new());
}

#[test]
fn a_boxed_state_machine_forwards_snapshot_and_restore() {
    let mut boxed: Box<dyn StateMachine> = Box::new(KvStore::new());
    let bytes = sample().snapshot()();
    boxed.restore(&bytes).unwrap();
    assert_eq!(boxed.snapshot()(), bytes);
    assert!(boxed.restore(b"").is_err());
}

#[test]
fn a_retried_write_after_restore_gets_the_old_answer_and_is_not_applied() {
    let mut kv = KvStore::new();
    let first = kv.apply_command(LogIndex(1), cmd(7, 1, cas("n", None, Some("1"))));
    assert_eq!(first, KvResponse::Cas { swapped: true, current: Some(b"1".to_vec()) });
    kv.apply_command(LogIndex(2), cmd(8, 1, put("n", "2")));

    let mut copy = restored(&kv.snapshot()());
    // Executed again, the CAS would fail (n is "2" now) and answer differently.
    assert_eq!(copy.apply_command(LogIndex(3), cmd(7, 1, cas("n", None, Some("1")))), first);
    assert_eq!(copy.get(b"n"), Some(&b"2"[..]), "the retry changed nothing");
    assert_eq!(copy.apply_command(LogIndex(4), cmd(8, 0, put("n", "old"))), KvResponse::StaleSequence { last: 1 });
    assert_eq!(copy.get(b"n"), Some(&b"2"[..]));
}

#[test]
fn sessions_restored_at_the_bound_are_evicted_as_on_a_server_that_never_compacted() {
    let mut kv = KvStore::new();
    // Use clients in an order unrelated to their ids, so that last-use order matters.
    for i in 0..SESSIONS_MAX as u64 {
        kv.apply_command(LogIndex(i + 1), cmd((i * 7919) % SESSIONS_MAX as u64 + 1, 1, put("k", "v")));
    }
    let mut copy = restored(&kv.snapshot()());
    for i in 0..5u64 {
        let index = LogIndex(SESSIONS_MAX as u64 + 1 + i);
        kv.apply_command(index, cmd(u64::MAX - i, 1, put("k", "w")));
        copy.apply_command(index, cmd(u64::MAX - i, 1, put("k", "w")));
    }
    assert_eq!(copy.sessions.len(), SESSIONS_MAX);
    assert!(copy.sessions.get(&1).is_none(), "client 1 was used first, so it is forgotten first");
    assert_eq!(copy, kv);
}

#[test]
fn the_same_commands_give_the_same_bytes() {
    let build = || {
        let mut kv = KvStore::new();
        // Enough sessions that two HashMaps (each with its own random hasher) iterate them
        // in different orders.
        for i in 0..300u64 {
            kv.apply_command(LogIndex(i + 1), cmd(1000 - i, 1, put(&format!("k{}", i % 37), &i.to_string())));
        }
        kv
    };
    let (a, b) = (build(), build());
    assert_eq!(a.snapshot()(), b.snapshot()());
    assert_eq!(restored(&a.snapshot()()).snapshot()(), a.snapshot()());
}

#[test]
fn truncated_empty_and_other_version_snapshots_are_refused() {
    let good = sample().snapshot()();
    assert_eq!(good[0], KV_SNAPSHOT_VERSION);
    let mut kv = sample();
    for len in 0..good.len() {
        assert!(kv.restore(&good[..len]).is_err(), "prefix of {len} bytes");
    }
    for version in [0, 2, 255] {
        let mut other = good.clone();
        other[0] = version;
        let err = kv.restore(&other).unwrap_err();
        assert!(err.contains(&format!("version {version}")), "{err}");
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(kv.restore(&trailing).is_err());
    assert!(kv.restore(b"\x01garbage, not a snapshot").is_err());
    assert_eq!(kv, sample(), "a refused restore leaves the store as it was");
}

/// Encodes a body by hand, to reach the checks behind the decoder (a writer bug, or a
/// well-formed but hostile snapshot from the network, would look like this).
fn body(data: &[(&str, &str)], sessions: &[(u64, u64, u64, KvResponse)]) -> Vec<u8> {
    let data = data.iter().map(|(k, v)| PairRef { key: k.as_bytes(), value: v.as_bytes() }).collect();
    let sessions = sessions
        .iter()
        .map(|(client_id, seq, index, response)| SessionRef {
            client_id: *client_id,
            seq: *seq,
            index: *index,
            response,
        })
        .collect();
    let mut bytes = vec![KV_SNAPSHOT_VERSION];
    bytes.extend_from_slice(&codec::encode(&BodyRef { data, sessions }));
    bytes
}

#[test]
fn well_formed_but_inconsistent_snapshots_are_refused_with_the_reason() {
    let done = KvResponse::Done;
    assert!(restored(&body(&[("a", "1"), ("b", "2")], &[(1, 1, 1, done.clone()), (2, 1, 2, done.clone())]))
        .get(b"b")
        .is_some());
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (body(&[("b", "1"), ("a", "2")], &[]), "sorted"),
        (body(&[("a", "1"), ("a", "2")], &[]), "sorted"),
        (body(&[], &[(0, 1, 1, done.clone())]), "client 0"),
        (body(&[], &[(2, 1, 1, done.clone()), (1, 1, 2, done.clone())]), "out of order"),
        (body(&[], &[(1, 1, 1, done.clone()), (1, 2, 2, done.clone())]), "out of order"),
        (body(&[], &[(1, 1, 0, done.clone())]), "index 0"),
        (body(&[], &[(1, 1, 5, done.clone()), (2, 1, 5, done.clone())]), "both last used at index 5"),
        (body(&[], &[(1, 1, 1, KvResponse::BadCommand)]), "never stored"),
        (body(&[], &[(1, 1, 1, KvResponse::StaleSequence { last: 3 })]), "never stored"),
    ];
    for (bytes, reason) in cases {
        let err = KvStore::new().restore(&bytes).unwrap_err();
        assert!(err.contains(reason), "expected {reason:?} in {err:?}");
    }
    let too_many: Vec<_> = (1..=SESSIONS_MAX as u64 + 1).map(|i| (i, 1, i, done.clone())).collect();
    let err = KvStore::new().restore(&body(&[], &too_many)).unwrap_err();
    assert!(err.contains("more than"), "{err}");
}

/// One random change to `bytes`: a bit flip, a byte set, a cut, an insertion or a length
/// prefix made huge.
fn mutate(rng: &mut SplitMix64, bytes: &mut Vec<u8>) {
    let at = rng.range(0, bytes.len() as u64 + 1) as usize;
    match rng.range(0, 5) {
        0 if at < bytes.len() => bytes[at] ^= 1 << rng.range(0, 8),
        1 if at < bytes.len() => bytes[at] = rng.next_u64() as u8,
        2 => bytes.truncate(at),
        3 => bytes.insert(at, rng.next_u64() as u8),
        _ if at + 8 <= bytes.len() => bytes[at..at + 8].copy_from_slice(&(u64::MAX - rng.range(0, 4)).to_le_bytes()),
        _ => bytes.push(rng.next_u64() as u8),
    }
}

#[test]
fn random_mutations_are_refused_or_restore_exactly_what_they_encode() {
    let mut rng = SplitMix64::new(0x5eed_cafe);
    let mut refused = 0;
    for round in 0..3000 {
        let mut kv = KvStore::new();
        for i in 0..rng.range(0, 12) {
            let op = match rng.range(0, 3) {
                0 => put(&rng.range(0, 5).to_string(), &rng.next_u64().to_string()),
                1 => KvOp::Delete { key: rng.range(0, 5).to_string().into_bytes() },
                _ => cas(&rng.range(0, 5).to_string(), None, Some("x")),
            };
            kv.apply_command(LogIndex(i + 1), cmd(rng.range(0, 4), i + 1, op));
        }
        let mut bytes = kv.snapshot()();
        for _ in 0..rng.range(1, 4) {
            mutate(&mut rng, &mut bytes);
        }
        let mut target = sample();
        match target.restore(&bytes) {
            // Restore accepts only the canonical encoding of a consistent store.
            Ok(()) => assert_eq!(target.snapshot()(), bytes, "round {round}: accepted bytes re-encode differently"),
            Err(reason) => {
                assert!(!reason.is_empty());
                assert_eq!(target, sample(), "round {round}: a refused restore changed the store");
                refused += 1;
            }
        }
    }
    // Most mutations must be caught; a flipped value byte is a different valid snapshot.
    assert!(refused > 1500, "only {refused} of 3000 mutations refused");
}

/// The straightforward encoding the sharded encoder must match byte for byte: one sorted map
/// of keys and one of sessions, read out of `kv` by plain iteration (no `sorted`, no shards
/// merged by the code under test).
fn reference_bytes(kv: &KvStore) -> Vec<u8> {
    let data: BTreeMap<&[u8], &[u8]> = kv.data.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
    let sessions: BTreeMap<u64, &Session<KvResponse>> = kv.sessions.iter().map(|(c, s)| (*c, s)).collect();
    let body = BodyRef {
        data: data.into_iter().map(|(key, value)| PairRef { key, value }).collect(),
        sessions: sessions
            .into_iter()
            .map(|(client_id, s)| SessionRef { client_id, seq: s.seq, index: s.index.0, response: &s.response })
            .collect(),
    };
    let mut bytes = vec![KV_SNAPSHOT_VERSION];
    bytes.extend_from_slice(&codec::encode(&body));
    bytes
}

/// A store with keys in every data shard and sessions in many session shards.
fn big(keys: u64) -> KvStore {
    let mut kv = KvStore::new();
    for i in 0..keys {
        kv.apply_command(LogIndex(i + 1), cmd(i % 3000 + 1, i / 3000 + 1, put(&format!("key{i}"), &format!("v{i}"))));
    }
    kv
}

/// Writes, deletes and CASes (successful and failed, with and without sessions, new and
/// existing clients) to keys in every shard, starting at log index `first`.
fn churn(kv: &mut KvStore, rng: &mut SplitMix64, first: u64, count: u64) {
    for i in 0..count {
        let key = format!("key{}", rng.range(0, 30_000));
        let op = match rng.range(0, 5) {
            0 => put(&key, &format!("new{i}")),
            1 => KvOp::Delete { key: key.into_bytes() },
            2 => cas(&key, None, Some("cas")),
            3 => KvOp::Cas { key: key.into_bytes(), expected: Some(b"no such value".to_vec()), new: None },
            _ => KvOp::Get { key: key.into_bytes() },
        };
        // Clients 1..=3000 exist; seq 1_000 + i is newer than any they used; ids above are new.
        kv.apply_command(LogIndex(first + i), cmd(rng.range(0, 4000), 1_000 + i, op));
    }
}

#[test]
fn the_job_encodes_the_state_at_the_snapshot_call_whatever_is_applied_after_it() {
    let mut rng = SplitMix64::new(11);
    let mut kv = big(20_000);
    let at_first = reference_bytes(&kv);
    let first = kv.snapshot();

    churn(&mut kv, &mut rng, 20_001, 5_000);
    let at_second = reference_bytes(&kv);
    assert_ne!(at_second, at_first, "the churn changed the state");
    let second = kv.snapshot();
    // Every shard written again, several times, including the ones the first churn copied.
    churn(&mut kv, &mut rng, 25_001, 20_000);

    // The jobs run on other threads, in the opposite order, while the store keeps changing.
    let second = std::thread::spawn(second);
    churn(&mut kv, &mut rng, 45_001, 2_000);
    let first = std::thread::spawn(first);
    assert_eq!(second.join().unwrap(), at_second);
    assert_eq!(first.join().unwrap(), at_first);
    // And the live store is unharmed by all that sharing.
    assert_eq!(kv.snapshot()(), reference_bytes(&kv));
    assert_eq!(restored(&at_first), big(20_000));
}

/// What `snapshot` freezes, kept to see which shards later writes copied.
struct Frozen {
    data: Data,
    sessions: Sessions,
}

impl Frozen {
    fn of(kv: &KvStore) -> Self {
        Frozen { data: kv.data.clone(), sessions: kv.sessions.clone() }
    }

    /// (data shards, session shards) no longer shared with `kv`.
    fn copied(&self, kv: &KvStore) -> (usize, usize) {
        fn count<T>(a: &[Arc<T>], b: &[Arc<T>]) -> usize {
            a.iter().zip(b).filter(|(a, b)| !Arc::ptr_eq(a, b)).count()
        }
        (count(kv.data.shards(), self.data.shards()), count(kv.sessions.shards(), self.sessions.shards()))
    }
}

#[test]
fn a_write_after_a_snapshot_copies_one_data_shard_and_at_most_two_session_shards() {
    let mut kv = big(20_000);
    let counts: Vec<usize> = kv.data.shards().iter().map(Arc::strong_count).collect();
    let _job = kv.snapshot();
    // `snapshot` shares every shard with its job rather than copying anything.
    // (Empty shards are one shared `Arc`, so count by how much each count grew.)
    let shared = kv.data.shards().iter().zip(&counts).filter(|(shard, &n)| Arc::strong_count(shard) > n).count();
    assert_eq!(shared, kv.data.shards().len(), "every shard is held by the job");
    let frozen = Frozen::of(&kv);
    // Reads, failed CASes, deletes of absent keys and duplicates write no shard.
    kv.apply_command(LogIndex(20_001), cmd(0, 0, KvOp::Get { key: b"key1".to_vec() }));
    kv.apply_command(LogIndex(20_002), cmd(0, 0, cas("key1", Some("wrong"), Some("x"))));
    kv.apply_command(LogIndex(20_003), cmd(0, 0, KvOp::Delete { key: b"absent".to_vec() }));
    kv.apply_command(LogIndex(20_004), cmd(1, 1, put("key1", "retry of an old write")));
    assert_eq!(frozen.copied(&kv), (0, 0));
    // A write with a session: its key's shard and its session's shard.
    kv.apply_command(LogIndex(20_005), cmd(1, 100, put("key1", "x")));
    assert_eq!(frozen.copied(&kv), (1, 1));

    // At the session bound a new client also evicts one: two session shards at most.
    let mut kv = KvStore::new();
    for i in 0..SESSIONS_MAX as u64 {
        kv.apply_command(LogIndex(i + 1), cmd(i + 1, 1, KvOp::Get { key: b"k".to_vec() }));
    }
    let frozen = Frozen::of(&kv);
    kv.apply_command(LogIndex(SESSIONS_MAX as u64 + 1), cmd(u64::MAX, 1, put("k", "v")));
    assert!(kv.sessions.get(&1).is_none(), "client 1 evicted");
    assert_eq!(frozen.copied(&kv), (1, 2));
}

#[test]
fn stores_with_the_same_contents_written_in_different_orders_give_the_same_bytes() {
    let keys: Vec<String> = (0..10_000).map(|i| format!("k{i}")).collect();
    let mut forward = KvStore::new();
    for (i, key) in keys.iter().enumerate() {
        forward.apply_command(LogIndex(i as u64 + 1), cmd(0, 0, put(key, key)));
    }
    // Backwards, through other values, with keys created and deleted again, and more log.
    let mut backward = KvStore::new();
    let mut index = 0;
    let mut next = || {
        index += 1;
        LogIndex(index)
    };
    for key in keys.iter().rev() {
        backward.apply_command(next(), cmd(0, 0, put(key, "first")));
        backward.apply_command(next(), cmd(0, 0, put(&format!("gone{key}"), "x")));
    }
    for key in keys.iter() {
        backward.apply_command(next(), cmd(0, 0, cas(key, Some("first"), Some(key))));
        backward.apply_command(next(), cmd(0, 0, KvOp::Delete { key: format!("gone{key}").into_bytes() }));
    }
    // The same session-bearing commands at the same log indices (sessions record them).
    for kv in [&mut forward, &mut backward] {
        for client in [5u64, 3, 9, 1] {
            kv.apply_command(LogIndex(100_000 + client), cmd(client, 1, put("k1", "k1")));
        }
    }
    assert_eq!(forward, backward);
    assert_eq!(format!("{forward:?}"), format!("{backward:?}"));
    let bytes = forward.snapshot()();
    assert_eq!(backward.snapshot()(), bytes);
    assert_eq!(bytes, reference_bytes(&forward));
}

#[test]
fn the_sharded_encoder_matches_the_reference_encoding_for_random_stores() {
    let mut rng = SplitMix64::new(0xbeef);
    for round in 0..200 {
        let mut kv = KvStore::new();
        // Keys of every length from empty up, arbitrary bytes, so that the sort's 8-byte
        // prefixes tie and pad often.
        for i in 0..rng.range(0, 200) {
            let len = rng.range(0, 12) as usize;
            let key: Vec<u8> = (0..len).map(|_| [0u8, 1, 0x7f, 0xff][rng.range(0, 4) as usize]).collect();
            let op = match rng.range(0, 3) {
                0 => KvOp::Put { key, value: rng.next_u64().to_le_bytes().to_vec() },
                1 => KvOp::Delete { key },
                _ => KvOp::Cas { key, expected: None, new: Some(vec![]) },
            };
            kv.apply_command(LogIndex(i + 1), cmd(rng.range(0, 50), i + 1, op));
        }
        let bytes = kv.snapshot()();
        assert_eq!(bytes, reference_bytes(&kv), "round {round}");
        assert_eq!(restored(&bytes), kv, "round {round}");
    }
}

#[test]
fn a_large_store_round_trips_through_restore() {
    let kv = big(50_000);
    let bytes = kv.snapshot()();
    let copy = restored(&bytes);
    assert_eq!(copy, kv);
    assert_eq!(copy.len(), 50_000);
    assert_eq!(copy.get(b"key49999"), Some(&b"v49999"[..]));
    assert_eq!(copy.snapshot()(), bytes);
    // A refused restore of a large store leaves it whole.
    let mut target = big(50_000);
    assert!(target.restore(&bytes[..bytes.len() - 1]).is_err());
    assert_eq!(target, kv);
}
