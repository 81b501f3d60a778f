//! Sessions: a retry is applied once with the first answer, a stale one is refused, the table
//! is bounded by least recent use, and it survives a snapshot, whose bad bytes are refused
//! without a panic and without changing anything.

use super::*;
use crate::core::SplitMix64;

/// An inner machine that records every command it applies; answers how many it has applied.
#[derive(Debug, Default, PartialEq, Eq)]
struct Recorder {
    applied: Vec<Vec<u8>>,
}

impl StateMachine for Recorder {
    fn apply(&mut self, _index: LogIndex, command: &[u8]) -> Vec<u8> {
        self.applied.push(command.to_vec());
        (self.applied.len() as u64).to_le_bytes().to_vec()
    }

    fn snapshot(&self) -> SnapshotJob {
        let bytes = codec::encode(&self.applied);
        Box::new(move || bytes)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        self.applied = codec::decode(snapshot, snapshot.len()).map_err(|e| format!("recorder: {e:?}"))?;
        Ok(())
    }

    fn query(&self, query: &[u8]) -> Result<Vec<u8>, String> {
        Ok([query, &(self.applied.len() as u64).to_le_bytes()].concat())
    }
}

/// Applies `(client, seq, command)`s at indexes 1, 2, … and returns the decoded answers.
struct Harness {
    machine: Sessions<Recorder>,
    index: u64,
}

impl Harness {
    fn new(max: usize) -> Self {
        Harness { machine: Sessions::with_max_sessions(Recorder::default(), max), index: 0 }
    }

    fn raw(&mut self, command: &[u8]) -> SessionResponse {
        self.index += 1;
        SessionResponse::decode(&self.machine.apply(LogIndex(self.index), command)).expect("a session response")
    }

    fn send(&mut self, client: u64, seq: u64, command: &str) -> SessionResponse {
        self.raw(&encode_command(client, seq, command.as_bytes()))
    }

    fn applied(&self) -> Vec<String> {
        self.machine.inner().applied.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect()
    }
}

fn answer(n: u64) -> SessionResponse {
    SessionResponse::Applied(n.to_le_bytes().to_vec())
}

#[test]
fn a_duplicate_is_applied_once_and_answered_with_the_first_response() {
    let mut h = Harness::new(10);
    assert_eq!(h.send(7, 1, "a"), answer(1));
    assert_eq!(h.send(8, 1, "b"), answer(2));
    // Client 7's command committed again (a retry after a lost answer): the first answer, and
    // the inner machine does not see it again, even after another client's write.
    assert_eq!(h.send(7, 1, "a"), answer(1));
    assert_eq!(h.send(7, 1, "a"), answer(1));
    assert_eq!(h.applied(), ["a", "b"]);
    // The next sequence number is new; gaps are allowed (a proposal that never committed).
    assert_eq!(h.send(7, 3, "c"), answer(3));
    assert_eq!(h.machine.last_seq(7), Some(3));
    assert_eq!(h.applied(), ["a", "b", "c"]);
}

#[test]
fn an_older_sequence_number_is_refused_not_applied() {
    let mut h = Harness::new(10);
    h.send(7, 1, "a");
    h.send(7, 2, "b");
    assert_eq!(h.send(7, 1, "a"), SessionResponse::Stale { last: 2 });
    assert_eq!(h.applied(), ["a", "b"]);
    assert_eq!(h.machine.last_seq(7), Some(2), "a refusal changes no session");
}

#[test]
fn client_zero_has_no_session_and_is_applied_every_time() {
    let mut h = Harness::new(10);
    assert_eq!(h.send(0, 1, "x"), answer(1));
    assert_eq!(h.send(0, 1, "x"), answer(2));
    assert_eq!(h.machine.sessions(), 0);
}

#[test]
fn commands_without_a_valid_header_are_answered_not_applied() {
    let mut h = Harness::new(10);
    let mut wrong_version = encode_command(7, 1, b"a");
    wrong_version[0] = 9;
    for (bytes, reason) in [
        (vec![], "empty"),
        (wrong_version, "version 9"),
        (encode_command(7, 1, b"")[..10].to_vec(), "shorter"),
        (encode_command(7, 1, b""), "no command after"),
    ] {
        match h.raw(&bytes) {
            SessionResponse::BadCommand(why) => assert!(why.contains(reason), "{reason:?} not in {why:?}"),
            other => panic!("{other:?} to {bytes:?}"),
        }
    }
    assert!(h.applied().is_empty());
    assert_eq!(h.machine.sessions(), 0);
}

#[test]
fn the_least_recently_used_session_is_forgotten_and_its_retry_applies_again() {
    let mut h = Harness::new(3);
    h.send(1, 1, "1a");
    h.send(2, 1, "2a");
    h.send(3, 1, "3a");
    h.send(1, 2, "1b"); // client 1 is now the most recently used; client 2 the least
    h.send(4, 1, "4a"); // a fourth session: client 2 is forgotten
    assert_eq!(h.machine.sessions(), 3);
    assert_eq!(h.machine.last_seq(2), None);
    assert_eq!(h.machine.last_seq(1), Some(2));
    // Client 1's retry is still recognised...
    assert_eq!(h.send(1, 2, "1b"), answer(4));
    // ...client 2's is not: the documented limit (what a forgotten client sees).
    assert_eq!(h.send(2, 1, "2a"), answer(6));
    assert_eq!(h.applied(), ["1a", "2a", "3a", "1b", "4a", "2a"]);
    // And client 2 is back, evicting client 3 (its last use, index 3, is now the oldest).
    assert_eq!(h.machine.last_seq(3), None);
}

#[test]
fn queries_go_to_the_inner_machine_without_a_header() {
    let mut h = Harness::new(10);
    h.send(7, 1, "a");
    assert_eq!(h.machine.query(b"q").unwrap(), [&b"q"[..], &1u64.to_le_bytes()].concat());
}

#[test]
fn responses_round_trip_and_bad_ones_are_errors() {
    for response in [answer(5), SessionResponse::Applied(vec![]), SessionResponse::Stale { last: u64::MAX }] {
        assert_eq!(SessionResponse::decode(&response.encode()), Ok(response));
    }
    let bad = SessionResponse::BadCommand("why".into());
    assert_eq!(SessionResponse::decode(&bad.encode()), Ok(bad));
    for bytes in [&b""[..], b"\x03", b"\x01\x00", b"\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00"] {
        assert!(SessionResponse::decode(bytes).is_err(), "{bytes:?}");
    }
}

/// Several sessions (one forgotten), a session-less write and some inner state.
fn sample() -> Harness {
    let mut h = Harness::new(3);
    for (client, seq, command) in [(1, 1, "1a"), (2, 5, "2a"), (0, 0, "x"), (3, 1, "3a"), (1, 2, "1b"), (4, 1, "4a")] {
        h.send(client, seq, command);
    }
    h
}

fn restored(bytes: &[u8]) -> Harness {
    let mut h = Harness::new(3);
    h.machine.restore(bytes).expect("a snapshot restores");
    h
}

#[test]
fn a_snapshot_round_trips_the_inner_state_and_the_table() {
    let mut original = sample();
    let bytes = original.machine.snapshot()();
    assert_eq!(bytes[0], SESSION_SNAPSHOT_VERSION);
    let mut copy = restored(&bytes);
    assert_eq!(copy.machine.inner(), original.machine.inner());
    assert_eq!(copy.machine.table, original.machine.table);
    assert_eq!(copy.machine.table.order(), original.machine.table.order());
    // Deterministic, and canonical: the copy snapshots to the same bytes.
    assert_eq!(copy.machine.snapshot()(), bytes);
    // Exactly-once carries over, and so does eviction: both forget the same client next.
    copy.index = original.index;
    for h in [&mut original, &mut copy] {
        assert_eq!(h.send(1, 2, "1b"), answer(5), "a retry after the restore is answered, not applied");
        assert_eq!(h.send(5, 1, "5a"), answer(7));
        assert_eq!(h.machine.last_seq(3), None, "client 3 was the least recently used");
    }
    assert_eq!(copy.applied(), original.applied());
    assert_eq!(copy.machine.snapshot()(), original.machine.snapshot()());

    // Restore replaces the whole state, it does not merge.
    let mut other = Harness::new(3);
    other.send(9, 1, "9a");
    other.machine.restore(&bytes).unwrap();
    assert_eq!(other.machine.last_seq(9), None);
    assert_eq!(other.machine.inner(), restored(&bytes).machine.inner());
}

#[test]
fn the_snapshot_job_holds_the_state_as_of_the_call() {
    let mut h = sample();
    let job = h.machine.snapshot();
    let expected = restored(&h.machine.snapshot()()).machine.snapshot()();
    h.send(6, 1, "later");
    h.send(1, 3, "later too");
    assert_eq!(job(), expected);
}

/// A snapshot with the given table entries and inner image, encoded as `encode_snapshot` does
/// but without its checks.
fn snapshot_with(sessions: &[(u64, u64, u64, &[u8])], inner: &[u8]) -> Vec<u8> {
    let sessions: Vec<SessionRef> = sessions
        .iter()
        .map(|&(client_id, seq, index, response)| SessionRef { client_id, seq, index, response })
        .collect();
    let table = codec::encode(&sessions);
    [&[SESSION_SNAPSHOT_VERSION][..], &(table.len() as u64).to_le_bytes(), &table, inner].concat()
}

#[test]
fn inconsistent_snapshots_are_refused_with_the_reason_and_change_nothing() {
    let inner = codec::encode(&Vec::<Vec<u8>>::new());
    assert!(Harness::new(3).machine.restore(&snapshot_with(&[(1, 1, 1, b"r"), (2, 1, 2, b"")], &inner)).is_ok());
    let mut huge_length = snapshot_with(&[], &inner);
    huge_length[1..9].copy_from_slice(&u64::MAX.to_le_bytes());
    let mut wrong_version = snapshot_with(&[], &inner);
    wrong_version[0] = 2;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "empty"),
        (wrong_version, "version 2"),
        (vec![SESSION_SNAPSHOT_VERSION, 1, 2], "table length"),
        (huge_length, "only"),
        (snapshot_with(&[(0, 1, 1, b"")], &inner), "client 0"),
        (snapshot_with(&[(2, 1, 1, b""), (1, 1, 2, b"")], &inner), "out of order"),
        (snapshot_with(&[(1, 1, 1, b""), (1, 2, 2, b"")], &inner), "out of order"),
        (snapshot_with(&[(1, 1, 0, b"")], &inner), "index 0"),
        (snapshot_with(&[(1, 1, 5, b""), (2, 1, 5, b"")], &inner), "both last used at index 5"),
        (snapshot_with(&[(1, 1, 1, b""), (2, 1, 2, b""), (3, 1, 3, b""), (4, 1, 4, b"")], &inner), "more than 3"),
        (snapshot_with(&[], b"\xff"), "inner state machine refused"),
    ];
    for (bytes, reason) in cases {
        let mut h = sample();
        let before = h.machine.snapshot()();
        let err = h.machine.restore(&bytes).unwrap_err();
        assert!(err.contains(reason), "expected {reason:?} in {err:?}");
        assert_eq!(h.machine.snapshot()(), before, "a refused snapshot ({reason}) changed the state");
    }
}

#[test]
fn corrupted_snapshot_bytes_are_an_error_or_a_valid_state_never_a_panic() {
    let good = sample().machine.snapshot()();
    // Every truncation.
    for cut in 0..good.len() {
        let mut h = sample();
        assert!(h.machine.restore(&good[..cut]).is_err(), "a snapshot cut at {cut} restored");
    }
    // Random damage: whatever restores must be a canonical snapshot of some state.
    let mut rng = SplitMix64::new(13);
    let mut refused = 0;
    for _ in 0..5_000 {
        let mut bytes = good.clone();
        for _ in 0..rng.range(1, 4) {
            let at = rng.range(0, bytes.len() as u64) as usize;
            match rng.range(0, 3) {
                0 => bytes[at] ^= 1 << rng.range(0, 8),
                1 => bytes[at] = rng.next_u64() as u8,
                _ => bytes.insert(at, rng.next_u64() as u8),
            }
        }
        let mut h = sample();
        let before = h.machine.snapshot()();
        match h.machine.restore(&bytes) {
            Ok(()) => assert_eq!(h.machine.snapshot()(), bytes, "a restored snapshot re-encodes to itself"),
            Err(_) => {
                assert_eq!(h.machine.snapshot()(), before, "a refused snapshot changed the state");
                refused += 1;
            }
        }
    }
    // A flipped byte inside a response, a sequence number or the inner image is another
    // valid snapshot; damage to lengths, order and versions must be caught (4333 of 5000 with
    // this seed).
    assert!(refused > 3_500, "only {refused} of 5000 damaged snapshots refused");
}
