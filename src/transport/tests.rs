//! Codec and envelope checks: every drop reason, and exact encodings of the fixint layout.

use super::client_wire::{ClientRequest, Request, CLIENT_WIRE_VERSION};
use super::codec::{decode, encode, DecodeError};
use super::*;
use crate::core::{AppendEntries, Entry, LogIndex, Message, NodeId, RequestVote, Term};

fn receiver() -> Receiver {
    Receiver { cluster_id: 77, me: NodeId(1), peers: vec![NodeId(2), NodeId(3)], envelope_bytes_max: 4096 }
}

fn envelope(from: u64, to: u64, cluster_id: u64) -> Envelope {
    let vote =
        RequestVote { term: Term(5), candidate_id: NodeId(from), last_log_index: LogIndex(0), last_log_term: Term(0) };
    Envelope {
        version: WIRE_VERSION,
        cluster_id,
        from: NodeId(from),
        to: NodeId(to),
        body: Body::Raft(Message::RequestVote(vote)),
    }
}

#[test]
fn a_valid_envelope_round_trips() {
    let e = envelope(2, 1, 77);
    assert_eq!(receiver().open_envelope(&encode(&e)), Ok(e));
    let app = Envelope {
        body: Body::App(AppMessage { msg_id: 9, broadcast: true, payload: b"hi".to_vec() }),
        ..envelope(3, 1, 77)
    };
    assert_eq!(receiver().open_envelope(&encode(&app)), Ok(app));
}

#[test]
fn encoding_is_fixint_little_endian_with_u32_variant_tags() {
    // version u16 | cluster_id u64 | from u64 | to u64 | Body tag u32 | Message tag u32 | fields
    let bytes = encode(&envelope(2, 1, 77));
    let mut expected = vec![1, 0];
    expected.extend(77u64.to_le_bytes());
    expected.extend(2u64.to_le_bytes());
    expected.extend(1u64.to_le_bytes());
    expected.extend(0u32.to_le_bytes()); // Body::Raft
    expected.extend(0u32.to_le_bytes()); // Message::RequestVote
    for field in [5u64, 2, 0, 0] {
        expected.extend(field.to_le_bytes());
    }
    assert_eq!(bytes, expected);
}

#[test]
fn every_foreign_envelope_is_dropped_with_its_reason() {
    let r = receiver();
    assert_eq!(r.open_envelope(&encode(&envelope(2, 1, 78))), Err(DropReason::WrongCluster));
    assert_eq!(r.open_envelope(&encode(&envelope(2, 3, 77))), Err(DropReason::WrongReceiver));
    assert_eq!(r.open_envelope(&encode(&envelope(9, 1, 77))), Err(DropReason::UnknownSender));
    assert_eq!(r.open_envelope(&encode(&envelope(1, 1, 77))), Err(DropReason::UnknownSender), "not from myself");
    let mut future = encode(&envelope(2, 1, 77));
    future[0] = 2;
    assert_eq!(r.open_envelope(&future), Err(DropReason::WrongVersion));
}

#[test]
fn every_truncation_of_a_valid_envelope_is_dropped() {
    let bytes = encode(&envelope(2, 1, 77));
    for len in 0..bytes.len() {
        assert_eq!(receiver().open_envelope(&bytes[..len]), Err(DropReason::Truncated), "length {len}");
    }
}

#[test]
fn trailing_bytes_and_bad_tags_are_garbage() {
    let mut bytes = encode(&envelope(2, 1, 77));
    bytes.push(0);
    assert_eq!(receiver().open_envelope(&bytes), Err(DropReason::Garbage));
    let mut bad_tag = encode(&envelope(2, 1, 77));
    bad_tag[26] = 200; // Body variant tag
    assert_eq!(receiver().open_envelope(&bad_tag), Err(DropReason::Garbage));
}

#[test]
fn oversize_envelopes_and_huge_length_prefixes_are_refused_before_allocating() {
    let r = receiver();
    assert_eq!(r.open_envelope(&vec![1u8; 4097]), Err(DropReason::Oversize));
    // An AppendEntries whose entry payload claims 2^60 bytes: the limit stops it before any
    // allocation of that size.
    let entry = Entry { term: Term(1), index: LogIndex(1), data: vec![7; 4] };
    let ae = AppendEntries {
        term: Term(1),
        leader_id: NodeId(2),
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        entries: vec![entry],
        leader_commit: LogIndex(0),
    };
    let e = Envelope { body: Body::Raft(Message::AppendEntries(ae)), ..envelope(2, 1, 77) };
    let mut bytes = encode(&e);
    // data length prefix sits right before the last 4 data bytes and the leader_commit u64.
    let at = bytes.len() - 8 - 4 - 8;
    bytes[at..at + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(matches!(r.open_envelope(&bytes), Err(DropReason::Oversize | DropReason::Truncated)));
}

#[test]
fn client_requests_decode_strictly() {
    let request = ClientRequest { version: CLIENT_WIRE_VERSION, cluster_id: 5, request_id: 3, body: Request::Status };
    let bytes = encode(&request);
    assert_eq!(bytes.len(), 22);
    assert_eq!(decode::<ClientRequest>(&bytes, 64), Ok(request));
    assert_eq!(decode::<ClientRequest>(&bytes[..21], 64), Err(DecodeError::Truncated));
    assert_eq!(decode::<ClientRequest>(&bytes, 21), Err(DecodeError::Oversize));
}

#[test]
fn drop_counts_count_each_reason() {
    let mut counts = DropCounts::default();
    for reason in [DropReason::Garbage, DropReason::Garbage, DropReason::Blocked] {
        counts.count(reason);
    }
    assert_eq!((counts.garbage, counts.blocked, counts.total()), (2, 1, 3));
}
