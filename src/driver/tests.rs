//! The driver's order, with a recording `Io`: feed a core inputs, assert what left when.

use super::*;
use crate::core::{AppendEntriesResponse, HardState, Options, RequestVoteResponse};
use crate::kv::KvStore;
use crate::transport::client_wire::ReadMode;

#[derive(Default)]
struct Recorder {
    /// Everything that happened, in order.
    events: Vec<String>,
    answers: Vec<(u32, Outcome)>,
    /// The clock `now` reports (lease tests move it).
    clock: std::time::Duration,
}

impl Io<u32> for Recorder {
    fn send(&mut self, to: NodeId, message: Message) {
        self.events.push(format!("send {} to {to}", message.kind()));
    }
    fn write(&mut self, request: WriteRequest) {
        let hs = request.hard_state.map_or("-".into(), |h| format!("t{}", h.current_term));
        self.events.push(format!("write {} entries hs {hs}", request.entries.len()));
    }
    fn answer(&mut self, token: u32, outcome: Outcome) {
        self.events.push(format!("answer {token}"));
        self.answers.push((token, outcome));
    }
    fn applied(&mut self, entry: &Entry, _response: &[u8]) {
        self.events.push(format!("apply {}", entry.index));
    }
    fn read_snapshot(&mut self, index: LogIndex, _term: Term, offset: u64, _len: usize) -> Option<Vec<u8>> {
        self.events.push(format!("read snapshot {index} at {offset}"));
        None
    }
    fn receive_snapshot_chunk(&mut self, chunk: &SnapshotChunk) {
        self.events.push(format!("chunk {} at {}", chunk.index, chunk.offset));
    }
    fn received_snapshot(&mut self) -> Result<Snapshot, String> {
        Err("the recorder keeps no images".into())
    }
    fn take_snapshot(&mut self, meta: SnapshotMeta, _job: SnapshotJob) {
        self.events.push(format!("take snapshot {}", meta.last_index));
    }
    fn now(&self) -> std::time::Duration {
        self.clock
    }
}

fn driver(id: u64, peers: &[u64]) -> Driver<KvStore, u32> {
    let mut options = Options::new(NodeId(id), peers.iter().map(|&p| NodeId(p)).collect(), 4, 1, 11);
    options.pre_vote = false;
    Driver::new(Raft::new(options, HardState::default()), KvStore::new(), SnapshotPolicy::default())
}

/// Make `d` win: tick until it campaigns (granting its pre-vote, when it asks for one), then
/// a vote from server 2.
fn elect(d: &mut Driver<KvStore, u32>, io: &mut Recorder) {
    while d.raft.role() != crate::core::Role::Candidate {
        d.raft.tick();
        let pre_vote = RequestVoteResponse { term: Term(d.raft.current_term().0 + 1), vote_granted: true };
        d.raft.step(NodeId(2), Message::PreVoteResponse(pre_vote));
    }
    d.drive(io, 8);
    d.write_done(io, 8);
    let term = d.raft.current_term();
    d.raft.step(NodeId(2), Message::RequestVoteResponse(RequestVoteResponse { term, vote_granted: true }));
    d.drive(io, 8);
    io.events.clear();
}

#[test]
fn a_vote_leaves_only_after_its_write_is_durable() {
    let (mut d, mut io) = (driver(1, &[2, 3]), Recorder::default());
    while d.raft.role() != crate::core::Role::Candidate {
        d.raft.tick();
    }
    d.drive(&mut io, 8);
    assert_eq!(io.events, vec!["write 0 entries hs t1"], "the RequestVotes wait for the vote to be on disk");
    d.write_done(&mut io, 8);
    assert_eq!(io.events[1..], ["send RequestVote to 2", "send RequestVote to 3"]);
}

#[test]
fn a_leader_sends_appends_before_its_own_write_and_commits_only_after_it() {
    let (mut d, mut io) = (driver(1, &[2, 3]), Recorder::default());
    elect(&mut d, &mut io);
    d.write_done(&mut io, 8); // the no-op of the election
    let term = d.raft.current_term();
    let ack = |index: u64| {
        Message::AppendEntriesResponse(AppendEntriesResponse {
            term,
            success: true,
            match_index: LogIndex(index),
            conflict_index: LogIndex(0),
            conflict_term: Term(0),
        })
    };
    d.raft.step(NodeId(2), ack(1)); // follower 2 is found: appends are pipelined to it
    d.drive(&mut io, 8);
    io.events.clear();
    d.propose(vec![(7, b"x".to_vec())], &mut io);
    d.drive(&mut io, 8);
    assert_eq!(io.events, ["send AppendEntries to 2", "write 1 entries hs -"]);
    d.raft.step(NodeId(2), ack(2));
    d.drive(&mut io, 8);
    assert!(io.answers.is_empty(), "committed only once the leader's own write is durable (§10.2.1)");
    // A majority of two is the follower and the leader's own durable copy.
    d.write_done(&mut io, 8);
    d.drive(&mut io, 8);
    assert_eq!(d.raft.commit_index(), LogIndex(2));
    assert!(io.events.contains(&"apply 2".to_string()));
    assert!(matches!(io.answers[..], [(7, Ok((LogIndex(2), _)))]), "{:?}", io.answers);
}

#[test]
fn an_acknowledgement_waits_for_the_entries_it_acknowledges() {
    let (mut d, mut io) = (driver(2, &[1, 3]), Recorder::default());
    let entries = vec![Entry { term: Term(1), index: LogIndex(1), data: vec![] }];
    let append = crate::core::AppendEntries {
        term: Term(1),
        leader_id: NodeId(1),
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        entries,
        leader_commit: LogIndex(0),
    };
    d.raft.step(NodeId(1), Message::AppendEntries(append.clone()));
    d.drive(&mut io, 8);
    assert_eq!(io.events, ["write 1 entries hs t1"]);
    // A heartbeat meanwhile: its answer carries term 1, not yet durable, so it waits.
    let heartbeat =
        crate::core::AppendEntries { prev_log_index: LogIndex(1), prev_log_term: Term(1), entries: vec![], ..append };
    d.raft.step(NodeId(1), Message::AppendEntries(heartbeat.clone()));
    d.drive(&mut io, 8);
    assert_eq!(io.events.len(), 1, "nothing leaves while the write is in flight: {:?}", io.events);
    d.write_done(&mut io, 8);
    assert_eq!(io.events[1..], ["send AppendEntriesResponse to 1", "send AppendEntriesResponse to 1"]);
    // Entry 1 is durable now. A new write is in flight (entry 2); a heartbeat at index 1
    // promises only durable entries, so its answer does not wait for the unrelated fsync.
    io.events.clear();
    let entry2 = vec![Entry { term: Term(1), index: LogIndex(2), data: vec![1] }];
    d.raft.step(NodeId(1), Message::AppendEntries(crate::core::AppendEntries { entries: entry2, ..heartbeat.clone() }));
    d.drive(&mut io, 8);
    assert_eq!(io.events, ["write 1 entries hs -"]);
    d.raft.step(NodeId(1), Message::AppendEntries(heartbeat));
    d.drive(&mut io, 8);
    assert_eq!(io.events[1..], ["send AppendEntriesResponse to 1"], "the heartbeat's answer left at once");
    d.write_done(&mut io, 8);
    assert_eq!(io.events[2..], ["send AppendEntriesResponse to 1"], "the entry's acknowledgement after its fsync");
}

#[test]
fn a_truncation_drops_the_proposals_it_removes_and_losing_leadership_drops_the_rest() {
    let (mut d, mut io) = (driver(1, &[2, 3]), Recorder::default());
    elect(&mut d, &mut io);
    d.write_done(&mut io, 8);
    d.propose(vec![(1, b"a".to_vec()), (2, b"b".to_vec())], &mut io);
    d.drive(&mut io, 8);
    // A leader of term 2 overwrites index 2 onwards (its entry at 2 has another term).
    let entries = vec![Entry { term: Term(2), index: LogIndex(2), data: b"other".to_vec() }];
    let append = crate::core::AppendEntries {
        term: Term(2),
        leader_id: NodeId(3),
        prev_log_index: LogIndex(1),
        prev_log_term: Term(1),
        entries,
        leader_commit: LogIndex(0),
    };
    d.raft.step(NodeId(3), Message::AppendEntries(append));
    d.drive(&mut io, 8);
    let dropped: Vec<u32> =
        io.answers.iter().filter(|(_, o)| o == &Err(ClientError::Dropped)).map(|(t, _)| *t).collect();
    assert_eq!(dropped, [1, 2]);
}

#[test]
fn a_busy_driver_refuses_and_a_follower_redirects() {
    let (mut d, mut io) = (driver(2, &[1, 3]), Recorder::default());
    d.propose(vec![(5, b"x".to_vec())], &mut io);
    assert_eq!(io.answers, [(5, Err(ClientError::NotLeader { leader: None }))]);
}

/// Server 1 of three, leading with its no-op committed and applied, lease checks every
/// heartbeat (one tick) and lease reads on with a 100 ms base.
fn lease_leader(io: &mut Recorder) -> Driver<KvStore, u32> {
    // Pre-vote on: a lease needs it (`Raft::lease_allowed`).
    let mut options = Options::new(NodeId(1), vec![NodeId(2), NodeId(3)], 4, 1, 11);
    options.leader_check_every_heartbeat = true;
    let mut d = Driver::new(Raft::new(options, HardState::default()), KvStore::new(), SnapshotPolicy::default());
    d.set_lease(Some(Lease { election_min: std::time::Duration::from_millis(100) }));
    elect(&mut d, io);
    d.write_done(io, 8);
    let ack = AppendEntriesResponse {
        term: d.raft.current_term(),
        success: true,
        match_index: LogIndex(1),
        conflict_index: LogIndex(0),
        conflict_term: Term(0),
    };
    d.raft.step(NodeId(2), Message::AppendEntriesResponse(ack));
    d.drive(io, 8);
    assert_eq!(d.applied(), LogIndex(1));
    io.events.clear();
    d
}

fn get_query() -> Vec<u8> {
    crate::codec::encode(&crate::kv::KvCommand {
        client_id: 0,
        seq: 0,
        op: crate::kv::KvOp::Get { key: b"k".to_vec() },
    })
}

fn confirm_round(d: &mut Driver<KvStore, u32>, io: &mut Recorder, round: u64) {
    let answer = crate::core::LeaderCheckResponse { term: d.raft.current_term(), round };
    d.raft.step(NodeId(2), Message::LeaderCheckResponse(answer));
    d.drive(io, 8);
}

#[test]
fn a_read_index_read_waits_for_its_round_and_is_answered_from_the_state_machine() {
    let mut io = Recorder::default();
    let mut d = lease_leader(&mut io);
    d.read(9, get_query(), ReadMode::ReadIndex, &mut io);
    d.drive(&mut io, 8);
    assert!(io.events.contains(&"send LeaderCheck to 2".to_string()), "{:?}", io.events);
    assert!(io.answers.is_empty());
    confirm_round(&mut d, &mut io, 1);
    let value = crate::codec::encode(&crate::kv::KvResponse::Value(None));
    assert_eq!(io.answers, vec![(9, Ok((LogIndex(1), value)))]);
    assert_eq!(d.raft.last_index(), LogIndex(1), "no log entry for a read");
}

#[test]
fn a_lease_read_is_served_without_a_round_while_the_lease_lasts_and_not_after() {
    let mut io = Recorder::default();
    let mut d = lease_leader(&mut io);
    d.raft.tick(); // a heartbeat: round 1 leaves at t = 0
    d.drive(&mut io, 8);
    confirm_round(&mut d, &mut io, 1);
    io.events.clear();
    // 100 ms × 0.9 / 1.1 = 81.8 ms on the leader's clock.
    io.clock = std::time::Duration::from_millis(81);
    d.read(1, get_query(), ReadMode::Lease, &mut io);
    d.drive(&mut io, 8);
    assert!(matches!(io.answers[..], [(1, Ok(_))]), "served from the lease: {:?}", io.answers);
    assert!(io.events.iter().all(|e| !e.contains("LeaderCheck")), "no round for it: {:?}", io.events);
    io.clock = std::time::Duration::from_millis(82);
    d.read(2, get_query(), ReadMode::Lease, &mut io);
    d.drive(&mut io, 8);
    assert_eq!(io.answers.len(), 1, "the lease has run out: the read waits for a round");
    assert!(io.events.contains(&"send LeaderCheck to 2".to_string()));
    confirm_round(&mut d, &mut io, 2);
    assert!(matches!(io.answers[1..], [(2, Ok(_))]));
}

#[test]
fn a_follower_without_a_leader_refuses_a_read_and_stopping_refuses_the_rest() {
    let (mut d, mut io) = (driver(2, &[1, 3]), Recorder::default());
    d.read(1, get_query(), ReadMode::ReadIndex, &mut io);
    d.drive(&mut io, 8);
    assert_eq!(io.answers, vec![(1, Err(ClientError::NotLeader { leader: None }))]);
    let mut d = lease_leader(&mut io);
    d.read(2, get_query(), ReadMode::ReadIndex, &mut io);
    d.drive(&mut io, 8);
    d.fail_all(ClientError::Dropped, &mut io);
    assert_eq!(io.answers.last(), Some(&(2, Err(ClientError::Dropped))));
}

/// Found by the simulator (a membership run: `leader sim --seed 120 --servers 3 --steps
/// 16000 --membership-percent 100 --stability-percent 0 --lease-percent 0
/// --wild-clock-percent 0`, "terms never go backwards"): a voter alone in its membership, with
/// a learner to replicate to, wins an election at once — its new term is in a write still in
/// flight when its first heartbeat comes. A leader's Ready may send before its own write
/// (§10.2.1), but not before the term it carries is durable (§3.8): the server crashed, came
/// back in the older term, and had told the learner the newer one.
#[test]
fn a_leader_that_won_alone_sends_nothing_before_its_term_is_durable() {
    let (mut d, mut io) = (driver(1, &[]), Recorder::default());
    let settle = |d: &mut Driver<KvStore, u32>, io: &mut Recorder| {
        d.drive(io, 8);
        while d.writes_in_flight() > 0 {
            d.write_done(io, 8);
        }
    };
    while d.raft.role() != crate::core::Role::Leader {
        d.raft.tick();
    }
    settle(&mut d, &mut io);
    let learner = crate::core::MembershipChange::AddLearner {
        pid: NodeId(2),
        peer_url: "tcp://127.0.0.1:7002".into(),
        client_url: "tcp://127.0.0.1:8002".into(),
        promote: false,
    };
    d.change_membership(7, learner, &mut io);
    settle(&mut d, &mut io);
    // The learner answers from a later term: the leader follows it, then campaigns alone.
    let later = AppendEntriesResponse {
        term: Term(5),
        success: false,
        match_index: LogIndex(0),
        conflict_index: LogIndex(0),
        conflict_term: Term(0),
    };
    d.raft.step(NodeId(2), Message::AppendEntriesResponse(later));
    settle(&mut d, &mut io);
    while d.raft.role() != crate::core::Role::Leader {
        d.raft.tick();
    }
    io.events.clear();
    d.drive(&mut io, 8);
    d.raft.tick(); // a heartbeat to the learner
    d.drive(&mut io, 8);
    let term = d.raft.current_term().0;
    let wrote = io.events.iter().position(|e| *e == format!("write 1 entries hs t{term}")).expect("the term's write");
    assert!(!io.events[..].iter().any(|e| e.starts_with("send")), "nothing leaves before the write: {:?}", io.events);
    d.write_done(&mut io, 8);
    assert!(io.events[wrote..].iter().any(|e| e.starts_with("send")), "then it leaves: {:?}", io.events);
}
