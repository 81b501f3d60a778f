//! docs/wire.md's examples are generated from the Rust types: this test fails when the
//! encoding changes without the document (rewrite the section with `LEADER_BLESS=1`).

use leader::codec::encode;
use leader::core::{
    AppendEntries, AppendEntriesResponse, Entry, LeaderCheck, LeaderCheckResponse, LogIndex, Message, NodeId,
    ReadIndex, ReadIndexResponse, RequestVote, RequestVoteResponse, Role, Term, TimeoutNow, VoteKind, VoteVerdict,
};
use leader::kv::{KvCommand, KvOp, KvResponse};
use leader::transport::client_wire::{
    ClientError, ClientRequest, ClientResponse, Counter, Inspection, PeerContact, ReadMode, Request, Response, Status,
    VoteSeen, CLIENT_WIRE_VERSION,
};
use leader::transport::{AppMessage, Body, Envelope, WIRE_VERSION};
use std::fmt::Write;
use std::path::Path;

const BEGIN: &str = "<!-- BEGIN GENERATED EXAMPLES -->";
const END: &str = "<!-- END GENERATED EXAMPLES -->";
/// The snapshot requests' examples sit in §5's own block, one heading level down.
const SNAPSHOT_BEGIN: &str = "<!-- BEGIN SNAPSHOT REQUEST EXAMPLES -->";
const SNAPSHOT_END: &str = "<!-- END SNAPSHOT REQUEST EXAMPLES -->";
/// Transfer and read messages (issue 12), at the end of §7.
const TRANSFER_BEGIN: &str = "<!-- BEGIN TRANSFER AND READ EXAMPLES -->";
const TRANSFER_END: &str = "<!-- END TRANSFER AND READ EXAMPLES -->";
/// The Inspect request and its answer (issue 13), after the transfer examples.
const INSPECT_BEGIN: &str = "<!-- BEGIN INSPECT EXAMPLES -->";
const INSPECT_END: &str = "<!-- END INSPECT EXAMPLES -->";
/// Membership entries and requests (issue 14), after the inspect examples.
const MEMBERSHIP_BEGIN: &str = "<!-- BEGIN MEMBERSHIP EXAMPLES -->";
const MEMBERSHIP_END: &str = "<!-- END MEMBERSHIP EXAMPLES -->";
const CLUSTER: u64 = 0x1122_3344_5566_7788;

fn envelope(body: Body) -> Envelope {
    Envelope { version: WIRE_VERSION, cluster_id: CLUSTER, from: NodeId(2), to: NodeId(1), body }
}

/// Title, the value as Rust prints it, its bytes.
fn examples() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut add = |title: &'static str, debug: String, bytes: Vec<u8>| out.push((title, debug, bytes));
    let rv = envelope(Body::Raft(Message::RequestVote(RequestVote {
        term: Term(5),
        candidate_id: NodeId(2),
        last_log_index: LogIndex(7),
        last_log_term: Term(4),
    })));
    add("Envelope: RequestVote", format!("{rv:?}"), encode(&rv));
    let rvr =
        envelope(Body::Raft(Message::RequestVoteResponse(RequestVoteResponse { term: Term(5), vote_granted: true })));
    add("Envelope: RequestVoteResponse", format!("{rvr:?}"), encode(&rvr));
    let ae = envelope(Body::Raft(Message::AppendEntries(AppendEntries {
        term: Term(5),
        leader_id: NodeId(2),
        prev_log_index: LogIndex(7),
        prev_log_term: Term(4),
        entries: vec![Entry { term: Term(5), index: LogIndex(8), data: b"hi".to_vec() }],
        leader_commit: LogIndex(6),
    })));
    add("Envelope: AppendEntries with one entry", format!("{ae:?}"), encode(&ae));
    let aer = envelope(Body::Raft(Message::AppendEntriesResponse(AppendEntriesResponse {
        term: Term(5),
        success: false,
        match_index: LogIndex(7),
        conflict_index: LogIndex(6),
        conflict_term: Term(3),
    })));
    add("Envelope: AppendEntriesResponse (a rejection with hints)", format!("{aer:?}"), encode(&aer));
    let app = envelope(Body::App(AppMessage { msg_id: 9, broadcast: true, payload: b"hello".to_vec() }));
    add("Envelope: application message", format!("{app:?}"), encode(&app));
    let status_req =
        ClientRequest { version: CLIENT_WIRE_VERSION, cluster_id: CLUSTER, request_id: 3, body: Request::Status };
    add("ClientRequest: Status", format!("{status_req:?}"), encode(&status_req));
    let put = KvCommand { client_id: 0x77, seq: 1, op: KvOp::Put { key: b"k".to_vec(), value: b"v".to_vec() } };
    add("KvCommand: Put", format!("{put:?}"), encode(&put));
    let propose = ClientRequest {
        version: CLIENT_WIRE_VERSION,
        cluster_id: CLUSTER,
        request_id: 4,
        body: Request::Propose { command: encode(&put) },
    };
    add("ClientRequest: Propose (carrying the KvCommand above)", format!("{propose:?}"), encode(&propose));
    let cas = KvCommand {
        client_id: 0x77,
        seq: 2,
        op: KvOp::Cas { key: b"k".to_vec(), expected: Some(b"v".to_vec()), new: None },
    };
    add("KvCommand: Cas", format!("{cas:?}"), encode(&cas));
    let status = ClientResponse {
        version: CLIENT_WIRE_VERSION,
        request_id: 3,
        body: Response::Status(Status {
            pid: NodeId(1),
            role: Role::Leader,
            term: Term(5),
            leader: Some(NodeId(1)),
            voted_for: Some(NodeId(1)),
            commit_index: LogIndex(8),
            last_applied: LogIndex(8),
            last_index: LogIndex(8),
        }),
    };
    add("ClientResponse: Status", format!("{status:?}"), encode(&status));
    let value = KvResponse::Value(Some(b"v".to_vec()));
    add("KvResponse: Value", format!("{value:?}"), encode(&value));
    let applied = ClientResponse {
        version: CLIENT_WIRE_VERSION,
        request_id: 4,
        body: Response::Applied { index: LogIndex(9), result: encode(&KvResponse::Done) },
    };
    add("ClientResponse: Applied (result: KvResponse::Done)", format!("{applied:?}"), encode(&applied));
    let redirect = ClientResponse {
        version: CLIENT_WIRE_VERSION,
        request_id: 4,
        body: Response::Error(ClientError::NotLeader { leader: Some(NodeId(3)) }),
    };
    add("ClientResponse: Error NotLeader (a redirect to server 3)", format!("{redirect:?}"), encode(&redirect));
    out
}

/// docs/wire.md §7's examples of the snapshot requests (`leader backup`).
fn snapshot_request_examples() -> Vec<(&'static str, String, Vec<u8>)> {
    let request =
        |request_id, body| ClientRequest { version: CLIENT_WIRE_VERSION, cluster_id: CLUSTER, request_id, body };
    let response = |request_id, body| ClientResponse { version: CLIENT_WIRE_VERSION, request_id, body };
    let snapshot = request(5, Request::Snapshot);
    let taken = response(5, Response::Snapshot { index: LogIndex(12), term: Term(3), total_len: 1_048_580 });
    let fetch = request(6, Request::FetchSnapshot { index: LogIndex(12), term: Term(3), offset: 1_048_576 });
    let chunk = response(
        6,
        Response::SnapshotChunk {
            index: LogIndex(12),
            term: Term(3),
            total_len: 1_048_580,
            offset: 1_048_576,
            data: vec![0xde, 0xad, 0xbe, 0xef],
        },
    );
    vec![
        ("ClientRequest: Snapshot", format!("{snapshot:?}"), encode(&snapshot)),
        ("ClientResponse: Snapshot", format!("{taken:?}"), encode(&taken)),
        ("ClientRequest: FetchSnapshot (the last 4 bytes of the image above)", format!("{fetch:?}"), encode(&fetch)),
        ("ClientResponse: SnapshotChunk", format!("{chunk:?}"), encode(&chunk)),
    ]
}

/// docs/wire.md §7's examples of Message tags 8-13 and Request tags 5 and 6 (Response tag 6,
/// ClientError tag 5). examples/python/test_transfer.py (run by tests/interop.rs) checks that
/// leader_wire.py encodes the same values to these bytes.
fn transfer_read_examples() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut add = |title: &'static str, env: Envelope| out.push((title, format!("{env:?}"), encode(&env)));
    add(
        "Envelope: TimeoutNow",
        envelope(Body::Raft(Message::TimeoutNow(TimeoutNow { term: Term(5), leader_id: NodeId(2) }))),
    );
    let vote =
        RequestVote { term: Term(6), candidate_id: NodeId(2), last_log_index: LogIndex(7), last_log_term: Term(5) };
    add("Envelope: TransferVote", envelope(Body::Raft(Message::TransferVote(vote))));
    let check = LeaderCheck { term: Term(5), leader_id: NodeId(2), round: 9 };
    add("Envelope: LeaderCheck", envelope(Body::Raft(Message::LeaderCheck(check))));
    let answer = LeaderCheckResponse { term: Term(5), round: 9 };
    add("Envelope: LeaderCheckResponse", envelope(Body::Raft(Message::LeaderCheckResponse(answer))));
    add("Envelope: ReadIndex", envelope(Body::Raft(Message::ReadIndex(ReadIndex { term: Term(5), id: 3 }))));
    let index = ReadIndexResponse { term: Term(5), id: 3, index: LogIndex(12), index_term: Term(4) };
    add("Envelope: ReadIndexResponse", envelope(Body::Raft(Message::ReadIndexResponse(index))));
    let request =
        |request_id, body| ClientRequest { version: CLIENT_WIRE_VERSION, cluster_id: CLUSTER, request_id, body };
    let response = |request_id, body| ClientResponse { version: CLIENT_WIRE_VERSION, request_id, body };
    let get = encode(&KvCommand { client_id: 0, seq: 0, op: KvOp::Get { key: b"k".to_vec() } });
    let read = request(7, Request::Read { query: get, mode: ReadMode::ReadIndex });
    let transfer = request(8, Request::TransferLeadership { to: Some(NodeId(3)) });
    let transferred = response(8, Response::Transferred { leader: NodeId(3), term: Term(6) });
    let abandoned = response(8, Response::Error(ClientError::Unavailable("transfer abandoned".to_string())));
    out.push((
        "ClientRequest: Read (a KvCommand Get of \"k\", client_id and seq 0; ReadIndex)",
        format!("{read:?}"),
        encode(&read),
    ));
    out.push(("ClientRequest: TransferLeadership to server 3", format!("{transfer:?}"), encode(&transfer)));
    out.push(("ClientResponse: Transferred", format!("{transferred:?}"), encode(&transferred)));
    out.push(("ClientResponse: Error Unavailable", format!("{abandoned:?}"), encode(&abandoned)));
    out
}

/// docs/wire.md §7's examples of Request tag 7 and Response tag 7; examples/python/
/// test_inspect.py (run by tests/interop.rs) decodes the same bytes with leader_wire.py.
fn inspect_examples() -> Vec<(&'static str, String, Vec<u8>)> {
    let inspect =
        ClientRequest { version: CLIENT_WIRE_VERSION, cluster_id: CLUSTER, request_id: 9, body: Request::Inspect };
    let status = Status {
        pid: NodeId(2),
        role: Role::Follower,
        term: Term(5),
        leader: None,
        voted_for: Some(NodeId(3)),
        commit_index: LogIndex(12),
        last_applied: LogIndex(12),
        last_index: LogIndex(13),
    };
    let inspection = Inspection {
        status,
        os_pid: 4242,
        uptime_ms: 60_000,
        votes: vec![
            VoteSeen {
                candidate: NodeId(3),
                term: Term(5),
                kind: VoteKind::Vote,
                verdict: VoteVerdict::Granted,
                ms_ago: 900,
            },
            VoteSeen {
                candidate: NodeId(1),
                term: Term(5),
                kind: VoteKind::PreVote,
                verdict: VoteVerdict::AlreadyVoted(NodeId(3)),
                ms_ago: 300,
            },
        ],
        last_contact: vec![PeerContact { pid: NodeId(3), ms_ago: 40 }],
        elections_started: 1,
        elections_won: 0,
        counters: vec![Counter { name: "bad_mac".into(), value: 2 }],
    };
    let answer = ClientResponse {
        version: CLIENT_WIRE_VERSION,
        request_id: 9,
        body: Response::Inspection(Box::new(inspection)),
    };
    vec![
        ("ClientRequest: Inspect", format!("{inspect:?}"), encode(&inspect)),
        ("ClientResponse: Inspection", format!("{answer:?}"), encode(&answer)),
    ]
}

/// docs/wire.md §7's examples of a membership entry's data and Request/Response tags 8-9;
/// examples/python/test_membership.py decodes the same bytes with leader_wire.py.
fn membership_examples() -> Vec<(&'static str, String, Vec<u8>)> {
    use leader::core::{MemberRole, Membership, MembershipChange};
    use leader::transport::client_wire::{MemberInfo, MembershipInfo};
    let add = MembershipChange::AddLearner {
        pid: NodeId(4),
        peer_url: "tcp://127.0.0.1:7004".into(),
        client_url: "tcp://127.0.0.1:8004".into(),
        promote: true,
    };
    let membership = Membership::of_voters([NodeId(1), NodeId(2)]).after(&add).expect("a valid change");
    let request =
        |request_id, body| ClientRequest { version: CLIENT_WIRE_VERSION, cluster_id: CLUSTER, request_id, body };
    let response = |request_id, body| ClientResponse { version: CLIENT_WIRE_VERSION, request_id, body };
    let change = request(10, Request::ChangeMembership { change: add });
    let changed = response(10, Response::MembershipChanged { index: LogIndex(12) });
    let ask = request(11, Request::Membership);
    let info = MembershipInfo {
        index: LogIndex(12),
        committed: true,
        members: vec![
            MemberInfo { pid: NodeId(1), role: MemberRole::Voter, peer_url: String::new(), client_url: String::new() },
            MemberInfo {
                pid: NodeId(4),
                role: MemberRole::Learner { promote: true },
                peer_url: "tcp://127.0.0.1:7004".into(),
                client_url: "tcp://127.0.0.1:8004".into(),
            },
        ],
    };
    let answer = response(11, Response::Membership(info));
    vec![
        (
            "Membership entry data: voters 1 and 2 (urls as in config.json), learner 4 to promote",
            format!("{membership:?}"),
            membership.encode(),
        ),
        ("ClientRequest: ChangeMembership (AddLearner 4)", format!("{change:?}"), encode(&change)),
        ("ClientResponse: MembershipChanged", format!("{changed:?}"), encode(&changed)),
        ("ClientRequest: Membership", format!("{ask:?}"), encode(&ask)),
        ("ClientResponse: Membership", format!("{answer:?}"), encode(&answer)),
    ]
}

/// Examples under `heading`: title, the value as Rust prints it, its bytes in rows of 16.
fn render(heading: &str, examples: Vec<(&'static str, String, Vec<u8>)>) -> String {
    let mut text = String::new();
    for (title, debug, bytes) in examples {
        writeln!(text, "\n{heading} {title}\n\n`{debug}` — {} bytes:\n\n```text", bytes.len()).unwrap();
        for (row, chunk) in bytes.chunks(16).enumerate() {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            writeln!(text, "{:04x}  {}", row * 16, hex.join(" ")).unwrap();
        }
        writeln!(text, "```").unwrap();
    }
    text
}

/// The block of docs/wire.md between `begin` and `end` is `generated` (or is rewritten so
/// with `LEADER_BLESS=1`).
fn check_block(begin: &str, end: &str, generated: String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/wire.md");
    let doc = std::fs::read_to_string(&path).expect("docs/wire.md");
    let (start, stop) = (doc.find(begin).expect("begin marker") + begin.len(), doc.find(end).expect("end marker"));
    if std::env::var_os("LEADER_BLESS").is_some() {
        let updated = format!("{}{}{}", &doc[..start], generated, &doc[stop..]);
        std::fs::write(&path, updated).expect("write docs/wire.md");
        return;
    }
    assert!(
        doc[start..stop] == generated,
        "docs/wire.md's examples after {begin} differ from the encoding; if the change is intended, run \
         `LEADER_BLESS=1 cargo test --test wire_doc` and review the diff"
    );
}

#[test]
fn wire_md_examples_match_the_encoding() {
    check_block(BEGIN, END, render("###", examples()));
}

#[test]
fn wire_md_snapshot_request_examples_match_the_encoding() {
    check_block(SNAPSHOT_BEGIN, SNAPSHOT_END, render("####", snapshot_request_examples()));
}

#[test]
fn wire_md_transfer_and_read_examples_match_the_encoding() {
    check_block(TRANSFER_BEGIN, TRANSFER_END, render("####", transfer_read_examples()));
}

#[test]
fn wire_md_inspect_examples_match_the_encoding() {
    check_block(INSPECT_BEGIN, INSPECT_END, render("####", inspect_examples()));
}

#[test]
fn wire_md_membership_examples_match_the_encoding() {
    check_block(MEMBERSHIP_BEGIN, MEMBERSHIP_END, render("####", membership_examples()));
}

#[test]
fn the_examples_cover_every_message_kind() {
    let titles: Vec<&str> = examples().iter().map(|(t, _, _)| *t).collect();
    for kind in ["RequestVote", "RequestVoteResponse", "AppendEntries", "AppendEntriesResponse", "application message"]
    {
        assert!(titles.iter().any(|t| t.contains(kind)), "no example of {kind}");
    }
    for kind in ["ClientRequest: Status", "ClientRequest: Propose", "ClientResponse: Status", "Applied", "NotLeader"] {
        assert!(titles.iter().any(|t| t.contains(kind)), "no example of {kind}");
    }
}
