//! Key-value semantics and duplicate detection.

use super::*;

fn cmd(client_id: u64, seq: u64, op: KvOp) -> KvCommand {
    KvCommand { client_id, seq, op }
}
fn put(k: &str, v: &str) -> KvOp {
    KvOp::Put { key: k.into(), value: v.into() }
}
fn get(k: &str) -> KvOp {
    KvOp::Get { key: k.into() }
}

#[test]
fn put_get_delete_and_cas() {
    let mut kv = KvStore::new();
    assert_eq!(kv.apply_command(LogIndex(1), cmd(1, 1, put("a", "1"))), KvResponse::Done);
    assert_eq!(kv.apply_command(LogIndex(2), cmd(0, 0, get("a"))), KvResponse::Value(Some(b"1".to_vec())));
    let cas = |expected: Option<&str>, new: Option<&str>| KvOp::Cas {
        key: b"a".to_vec(),
        expected: expected.map(Into::into),
        new: new.map(Into::into),
    };
    assert_eq!(
        kv.apply_command(LogIndex(3), cmd(1, 2, cas(Some("0"), Some("2")))),
        KvResponse::Cas { swapped: false, current: Some(b"1".to_vec()) }
    );
    assert_eq!(
        kv.apply_command(LogIndex(4), cmd(1, 3, cas(Some("1"), Some("2")))),
        KvResponse::Cas { swapped: true, current: Some(b"2".to_vec()) }
    );
    assert_eq!(
        kv.apply_command(LogIndex(5), cmd(1, 4, KvOp::Delete { key: b"a".to_vec() })),
        KvResponse::Deleted { existed: true }
    );
    assert_eq!(
        kv.apply_command(LogIndex(6), cmd(1, 5, KvOp::Delete { key: b"a".to_vec() })),
        KvResponse::Deleted { existed: false }
    );
    assert_eq!(
        kv.apply_command(LogIndex(7), cmd(1, 6, cas(None, Some("new")))),
        KvResponse::Cas { swapped: true, current: Some(b"new".to_vec()) },
        "expected None means absent"
    );
}

#[test]
fn a_retried_write_is_applied_once_and_answered_the_same() {
    let mut kv = KvStore::new();
    let cas = KvOp::Cas { key: b"n".to_vec(), expected: None, new: Some(b"1".to_vec()) };
    let first = kv.apply_command(LogIndex(1), cmd(7, 1, cas.clone()));
    assert_eq!(first, KvResponse::Cas { swapped: true, current: Some(b"1".to_vec()) });
    // The same command committed again (a client retry after a leader change): not re-run.
    let retry = kv.apply_command(LogIndex(2), cmd(7, 1, cas));
    assert_eq!(retry, first);
    assert_eq!(kv.apply_command(LogIndex(3), cmd(7, 0, put("n", "old"))), KvResponse::StaleSequence { last: 1 });
    assert_eq!(kv.get(b"n"), Some(&b"1"[..]));
}

#[test]
fn undecodable_entries_are_answered_not_applied() {
    let mut kv = KvStore::new();
    let response: KvResponse = decode(&kv.apply(LogIndex(1), b"\xff\xff"), 1024).unwrap();
    assert_eq!(response, KvResponse::BadCommand);
    assert!(kv.is_empty());
    let ok: KvResponse = decode(&kv.apply(LogIndex(2), &encode(&cmd(1, 1, put("k", "v")))), 1024).unwrap();
    assert_eq!(ok, KvResponse::Done);
    assert_eq!(kv.len(), 1);
}

#[test]
fn sessions_are_bounded_and_evicted_in_log_order() {
    let mut kv = KvStore::new();
    for i in 0..(SESSIONS_MAX as u64 + 10) {
        kv.apply_command(LogIndex(i + 1), cmd(i + 1, 1, put("k", "v")));
    }
    assert_eq!(kv.sessions.len(), SESSIONS_MAX);
    assert!(kv.sessions.get(&1).is_none(), "the least recently used session is forgotten");
    assert!(kv.sessions.get(&(SESSIONS_MAX as u64 + 10)).is_some());
}
