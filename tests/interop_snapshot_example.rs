//! docs/wire.md's examples of the snapshot messages (Message tags 6 and 7) were written with the
//! Python wire module (examples/python/leader_wire.py); this test checks them against the Rust
//! codec — the value as Rust prints it, its bytes, and that the bytes decode back to it — and
//! that the Python module encodes the same values to the same bytes. Needs python3 (the
//! standard library only: leader_wire.py does not use pyzmq).

use leader::codec::{decode, encode};
use leader::core::{
    InstallSnapshot, InstallSnapshotResponse, LogIndex, Message, NodeId, Term, SNAPSHOT_CHUNK_BYTES_MAX,
};
use leader::transport::{Body, Envelope, ENVELOPE_BYTES_MAX, WIRE_VERSION};
use std::path::Path;
use std::process::Command;

const CLUSTER: u64 = 0x1122_3344_5566_7788;
const SECTION: &str = "### Snapshot messages (Message tags 6 and 7)";

fn envelope(message: Message) -> Envelope {
    Envelope { version: WIRE_VERSION, cluster_id: CLUSTER, from: NodeId(2), to: NodeId(1), body: Body::Raft(message) }
}

/// (title, the Rust value, the same value in Python) of each example.
fn examples() -> Vec<(&'static str, Envelope, &'static str)> {
    let data = vec![0xde, 0xad, 0xbe, 0xef];
    let chunk = InstallSnapshot {
        term: Term(5),
        leader_id: NodeId(2),
        last_index: LogIndex(7),
        last_term: Term(4),
        total_len: 262_148,
        offset: 262_144,
        crc: crc32fast::hash(&data),
        data,
    };
    let response =
        InstallSnapshotResponse { term: Term(5), last_index: LogIndex(7), last_term: Term(4), next_offset: 262_148 };
    vec![
        (
            "Envelope: InstallSnapshot (the last chunk of a 262,148-byte image)",
            envelope(Message::InstallSnapshot(chunk)),
            "w.InstallSnapshot(5, 2, 7, 4, 262148, 262144, bytes.fromhex('deadbeef'), \
             zlib.crc32(bytes.fromhex('deadbeef')))",
        ),
        (
            "Envelope: InstallSnapshotResponse (the whole image held)",
            envelope(Message::InstallSnapshotResponse(response)),
            "w.InstallSnapshotResponse(5, 7, 4, 262148)",
        ),
    ]
}

/// The example under `#### {title}` in the snapshot section: its value line and its bytes.
fn documented(doc: &str, title: &str) -> (String, Vec<u8>) {
    let section = &doc[doc.find(SECTION).expect("the snapshot examples section")..];
    let heading = format!("#### {title}\n");
    let at = section.find(&heading).unwrap_or_else(|| panic!("no example {title:?} in docs/wire.md"));
    let rest = &section[at + heading.len()..];
    let value = rest.lines().find(|l| l.starts_with('`')).expect("a value line");
    let debug = value.trim_start_matches('`').split('`').next().unwrap().to_string();
    let block = &rest[rest.find("```text\n").expect("a hex block") + 8..];
    let block = &block[..block.find("```").expect("the end of the hex block")];
    let bytes = block
        .lines()
        .flat_map(|l| l.split_whitespace().skip(1)) // the offset column
        .map(|h| u8::from_str_radix(h, 16).expect("hex"))
        .collect();
    (debug, bytes)
}

#[test]
fn the_snapshot_examples_match_the_rust_codec() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/wire.md")).unwrap();
    for (title, value, _) in examples() {
        let (debug, bytes) = documented(&doc, title);
        assert_eq!(debug, format!("{value:?}"), "{title}: the value line");
        assert_eq!(bytes, encode(&value), "{title}: the bytes");
        assert_eq!(decode::<Envelope>(&bytes, ENVELOPE_BYTES_MAX).expect("decodes"), value, "{title}");
        assert!(doc.contains(&format!("— {} bytes:", bytes.len())), "{title}: the length");
    }
}

#[test]
fn python_encodes_the_snapshot_examples_to_the_same_bytes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python");
    for (title, value, python) in examples() {
        let script = format!(
            "import sys, zlib; sys.path.insert(0, {dir:?}); import leader_wire as w\n\
             m = {python}\n\
             data = w.encode_envelope(w.Envelope(1, {CLUSTER}, 2, 1, m))\n\
             assert w.decode_envelope(data).body == m\n\
             print(data.hex())",
            dir = dir.display().to_string()
        );
        let out = Command::new("python3").args(["-c", &script]).output().expect("python3 runs");
        assert!(out.status.success(), "{title}: {}", String::from_utf8_lossy(&out.stderr));
        let hex: String = encode(&value).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), hex, "{title}");
    }
    // The chunk size, and a full chunk's envelope size as docs/wire.md gives it.
    let script = format!(
        "import sys, zlib; sys.path.insert(0, {dir:?}); import leader_wire as w\nprint(w.SNAPSHOT_CHUNK_BYTES_MAX)",
        dir = dir.display().to_string()
    );
    let out = Command::new("python3").args(["-c", &script]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), SNAPSHOT_CHUNK_BYTES_MAX.to_string());
    let data = vec![7; SNAPSHOT_CHUNK_BYTES_MAX];
    let full = envelope(Message::InstallSnapshot(InstallSnapshot {
        term: Term(5),
        leader_id: NodeId(2),
        last_index: LogIndex(7),
        last_term: Term(4),
        total_len: 1 << 30,
        offset: 0,
        crc: crc32fast::hash(&data),
        data,
    }));
    assert_eq!(encode(&full).len(), 262_238, "docs/wire.md: an envelope with a full chunk is 262,238 bytes");
}
