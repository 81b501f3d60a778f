//! Property tests of the decoders: arbitrary and mutated bytes never panic and never make a
//! decoder allocate more than its size limit; every encoded message decodes to itself.
//! Seeded (SplitMix64): a failure names the seed and case to replay.

use leader::codec::{decode, encode};
use leader::core::{
    AppendEntries, AppendEntriesResponse, Entry, LogIndex, Message, NodeId, RequestVote, RequestVoteResponse, Role,
    SplitMix64, Term,
};
use leader::kv::{KvCommand, KvOp, KvResponse};
use leader::transport::client_wire::{
    ClientError, ClientRequest, ClientResponse, Request, Response, Status, CLIENT_REQUEST_BYTES_MAX,
};
use leader::transport::{AppMessage, Body, Envelope, Receiver, ENVELOPE_BYTES_MAX, WIRE_VERSION};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts the largest single allocation made by this thread while armed.
struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ARMED.try_with(|armed| {
            if armed.get() {
                let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
            }
        });
        // SAFETY: forwarding the caller's layout to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Run `f` and return the largest single allocation it made.
fn largest_allocation(f: impl FnOnce()) -> usize {
    LARGEST.with(|l| l.set(0));
    ARMED.with(|a| a.set(true));
    f();
    ARMED.with(|a| a.set(false));
    LARGEST.with(|l| l.get())
}

fn bytes(rng: &mut SplitMix64, max: u64) -> Vec<u8> {
    (0..rng.range(0, max + 1)).map(|_| rng.next_u64() as u8).collect()
}

fn message(rng: &mut SplitMix64) -> Message {
    let n = |rng: &mut SplitMix64| rng.next_u64() >> rng.range(0, 64);
    match rng.range(0, 4) {
        0 => Message::RequestVote(RequestVote {
            term: Term(n(rng)),
            candidate_id: NodeId(n(rng)),
            last_log_index: LogIndex(n(rng)),
            last_log_term: Term(n(rng)),
        }),
        1 => {
            Message::RequestVoteResponse(RequestVoteResponse { term: Term(n(rng)), vote_granted: rng.range(0, 2) == 1 })
        }
        2 => Message::AppendEntries(AppendEntries {
            term: Term(n(rng)),
            leader_id: NodeId(n(rng)),
            prev_log_index: LogIndex(n(rng)),
            prev_log_term: Term(n(rng)),
            entries: (0..rng.range(0, 5))
                .map(|_| Entry { term: Term(n(rng)), index: LogIndex(n(rng)), data: bytes(rng, 40) })
                .collect(),
            leader_commit: LogIndex(n(rng)),
        }),
        _ => Message::AppendEntriesResponse(AppendEntriesResponse {
            term: Term(n(rng)),
            success: rng.range(0, 2) == 1,
            match_index: LogIndex(n(rng)),
            conflict_index: LogIndex(n(rng)),
            conflict_term: Term(n(rng)),
        }),
    }
}

fn envelope(rng: &mut SplitMix64) -> Envelope {
    let body = if rng.range(0, 4) == 0 {
        Body::App(AppMessage { msg_id: rng.next_u64(), broadcast: rng.range(0, 2) == 1, payload: bytes(rng, 60) })
    } else {
        Body::Raft(message(rng))
    };
    Envelope { version: WIRE_VERSION, cluster_id: 42, from: NodeId(2), to: NodeId(1), body }
}

fn kv_op(rng: &mut SplitMix64) -> KvOp {
    let key = bytes(rng, 10);
    let maybe = |rng: &mut SplitMix64| (rng.range(0, 2) == 1).then(|| bytes(rng, 10));
    match rng.range(0, 4) {
        0 => KvOp::Put { key, value: bytes(rng, 20) },
        1 => KvOp::Get { key },
        2 => KvOp::Delete { key },
        _ => KvOp::Cas { key, expected: maybe(rng), new: maybe(rng) },
    }
}

fn client_response(rng: &mut SplitMix64) -> ClientResponse {
    let body = match rng.range(0, 3) {
        0 => Response::Status(Status {
            pid: NodeId(rng.next_u64()),
            role: [Role::Follower, Role::Candidate, Role::Leader][rng.range(0, 3) as usize],
            term: Term(rng.next_u64()),
            leader: (rng.range(0, 2) == 1).then(|| NodeId(rng.next_u64())),
            voted_for: None,
            commit_index: LogIndex(rng.next_u64()),
            last_applied: LogIndex(rng.next_u64()),
            last_index: LogIndex(rng.next_u64()),
        }),
        1 => Response::Error(
            [ClientError::Busy, ClientError::Dropped, ClientError::NotLeader { leader: Some(NodeId(3)) }]
                [rng.range(0, 3) as usize]
                .clone(),
        ),
        _ => Response::Applied { index: LogIndex(rng.next_u64()), result: bytes(rng, 30) },
    };
    ClientResponse { version: 1, request_id: rng.next_u64(), body }
}

/// Random bytes, and valid encodings mutated: bytes flipped, cut, extended, lengths inflated.
fn hostile_inputs(rng: &mut SplitMix64, valid: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![bytes(rng, 200)];
    let mut flipped = valid.to_vec();
    for _ in 0..rng.range(1, 4) {
        if !flipped.is_empty() {
            let i = rng.range(0, flipped.len() as u64) as usize;
            flipped[i] = rng.next_u64() as u8;
        }
    }
    out.push(flipped);
    out.push(valid[..rng.range(0, valid.len() as u64 + 1) as usize].to_vec());
    let mut extended = valid.to_vec();
    extended.extend(bytes(rng, 8));
    out.push(extended);
    // An 8-byte window set to a huge length anywhere in the message.
    if valid.len() >= 8 {
        let mut huge = valid.to_vec();
        let at = rng.range(0, valid.len() as u64 - 7) as usize;
        huge[at..at + 8].copy_from_slice(&(u64::MAX >> rng.range(0, 40)).to_le_bytes());
        out.push(huge);
    }
    out
}

#[test]
fn arbitrary_bytes_never_panic_nor_allocate_past_the_limit() {
    let receiver = Receiver {
        cluster_id: 42,
        me: NodeId(1),
        peers: vec![NodeId(2), NodeId(3)],
        envelope_bytes_max: ENVELOPE_BYTES_MAX,
    };
    let mut largest = 0;
    for seed in 0..3000u64 {
        let mut rng = SplitMix64::new(seed);
        let valid = encode(&envelope(&mut rng));
        for input in hostile_inputs(&mut rng, &valid) {
            largest = largest.max(largest_allocation(|| {
                let _ = receiver.open_envelope(&input);
            }));
        }
        let request = encode(&ClientRequest {
            version: 1,
            cluster_id: 42,
            request_id: seed,
            body: Request::Propose { command: encode(&KvCommand { client_id: 1, seq: seed, op: kv_op(&mut rng) }) },
        });
        for input in hostile_inputs(&mut rng, &request) {
            largest = largest.max(largest_allocation(|| {
                if let Ok(r) = decode::<ClientRequest>(&input, CLIENT_REQUEST_BYTES_MAX) {
                    if let Request::Propose { command } = r.body {
                        let _ = decode::<KvCommand>(&command, CLIENT_REQUEST_BYTES_MAX);
                    }
                }
                let _ = decode::<ClientResponse>(&input, CLIENT_REQUEST_BYTES_MAX);
                let _ = decode::<KvResponse>(&input, CLIENT_REQUEST_BYTES_MAX);
            }));
        }
    }
    assert!(largest <= ENVELOPE_BYTES_MAX, "a decoder allocated {largest} bytes at once (limit {ENVELOPE_BYTES_MAX})");
}

#[test]
fn every_encoded_message_decodes_to_itself() {
    let receiver =
        Receiver { cluster_id: 42, me: NodeId(1), peers: vec![NodeId(2)], envelope_bytes_max: ENVELOPE_BYTES_MAX };
    for seed in 0..3000u64 {
        let mut rng = SplitMix64::new(seed);
        let e = envelope(&mut rng);
        assert_eq!(receiver.open_envelope(&encode(&e)), Ok(e), "seed {seed}");
        let command = KvCommand { client_id: rng.next_u64(), seq: rng.next_u64(), op: kv_op(&mut rng) };
        assert_eq!(decode::<KvCommand>(&encode(&command), 1 << 20), Ok(command.clone()), "seed {seed}");
        let request = ClientRequest {
            version: 1,
            cluster_id: rng.next_u64(),
            request_id: seed,
            body: Request::Propose { command: encode(&command) },
        };
        assert_eq!(decode::<ClientRequest>(&encode(&request), 1 << 20), Ok(request), "seed {seed}");
        let response = client_response(&mut rng);
        assert_eq!(decode::<ClientResponse>(&encode(&response), 1 << 20), Ok(response), "seed {seed}");
    }
}
