//! Unit tests of leadership transfer (thesis §3.10) and of reads without the log (§6.4,
//! §6.4.1): feed inputs, assert exact outputs. Pre-vote and stickiness are on, as in the
//! server, because transfer must get past both.

use super::*;

const E: u32 = 10; // election_ticks
const H: u32 = 3; // heartbeat_ticks

fn server(id: u64, peers: &[u64]) -> Raft {
    let options = Options::new(NodeId(id), peers.iter().map(|&p| NodeId(p)).collect(), E, H, id * 31);
    let mut r = Raft::new(options, HardState::default());
    r.just_started = false;
    r
}

fn append_ok(term: Term, match_index: LogIndex) -> Message {
    Message::AppendEntriesResponse(AppendEntriesResponse {
        term,
        success: true,
        match_index,
        conflict_index: LogIndex(0),
        conflict_term: Term(0),
    })
}

fn heartbeat(term: Term, leader: u64, commit: u64) -> Message {
    Message::AppendEntries(AppendEntries {
        term,
        leader_id: NodeId(leader),
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        entries: vec![],
        leader_commit: LogIndex(commit),
    })
}

/// Server 1 of {1, 2, 3}, elected in term 1 (pre-vote, then votes from 2), its no-op durable
/// and, when `committed`, acknowledged by 2 (so an entry of its term is committed).
fn leader(committed: bool) -> Raft {
    let mut r = server(1, &[2, 3]);
    while !r.pre_candidate {
        r.tick();
    }
    r.step(NodeId(2), Message::PreVoteResponse(RequestVoteResponse { term: Term(1), vote_granted: true }));
    r.step(NodeId(2), Message::RequestVoteResponse(RequestVoteResponse { term: Term(1), vote_granted: true }));
    assert_eq!(r.role(), Role::Leader);
    let _ = r.ready();
    r.advance();
    if committed {
        r.step(NodeId(2), append_ok(Term(1), LogIndex(1)));
        assert_eq!(r.commit_index(), LogIndex(1));
    }
    let _ = r.ready();
    r
}

/// Server `id` following leader 1 in term 1, its log holding entry 1 of term 1.
fn follower_of_1(id: u64) -> Raft {
    let peers: Vec<u64> = [1, 2, 3].into_iter().filter(|&p| p != id).collect();
    let mut r = server(id, &peers);
    let noop = Entry { term: Term(1), index: LogIndex(1), data: vec![] };
    r.step(NodeId(1), Message::AppendEntries(AppendEntries { entries: vec![noop], ..append_fields(0) }));
    let _ = r.ready();
    r.advance();
    assert_eq!((r.leader_id(), r.last_index()), (Some(NodeId(1)), LogIndex(1)));
    r
}

fn append_fields(commit: u64) -> AppendEntries {
    match heartbeat(Term(1), 1, commit) {
        Message::AppendEntries(m) => m,
        _ => unreachable!(),
    }
}

fn sent(ready: &Ready) -> Vec<(u64, &'static str)> {
    ready.messages.iter().map(|o| (o.to.0, o.message.kind())).collect()
}

fn check_round(ready: &Ready) -> u64 {
    let rounds: Vec<u64> = ready
        .messages
        .iter()
        .filter_map(|o| match &o.message {
            Message::LeaderCheck(m) => Some(m.round),
            _ => None,
        })
        .collect();
    assert_eq!(rounds.len(), 2, "one LeaderCheck per follower: {:?}", ready.messages);
    rounds[0]
}

fn check_answer(term: Term, round: u64) -> Message {
    Message::LeaderCheckResponse(LeaderCheckResponse { term, round })
}

// ---- leadership transfer (§3.10) ----

#[test]
fn a_transfer_sends_timeout_now_once_the_target_holds_the_whole_log() {
    let mut r = leader(false); // 3 has acknowledged nothing
    assert_eq!(r.transfer_leadership(Some(NodeId(3))), Ok(NodeId(3)));
    assert!(!sent(&r.ready()).contains(&(3, "TimeoutNow")), "3 lacks entry 1: replicate first");
    r.step(NodeId(3), append_ok(Term(1), LogIndex(1)));
    assert_eq!(sent(&r.ready()), vec![(3, "TimeoutNow")]);
    assert!(!r.lease_allowed(), "once TimeoutNow is out, no lease holds in this term");
}

#[test]
fn a_transfer_without_a_target_picks_the_most_up_to_date_follower() {
    let mut r = leader(true); // 2 acknowledged entry 1, 3 nothing
    assert_eq!(r.transfer_leadership(None), Ok(NodeId(2)));
    assert_eq!(sent(&r.ready()), vec![(2, "TimeoutNow")]);
}

#[test]
fn proposals_are_refused_naming_the_target_while_a_transfer_runs() {
    let mut r = leader(true);
    r.transfer_leadership(Some(NodeId(2))).unwrap();
    assert_eq!(r.propose(vec![1]), Err(ProposeError::Transferring { to: NodeId(2) }));
}

#[test]
fn a_transfer_not_done_within_an_election_timeout_is_abandoned() {
    let mut r = leader(true);
    r.transfer_leadership(Some(NodeId(3))).unwrap();
    for _ in 0..E {
        assert_eq!(r.transfer_target(), Some(NodeId(3)));
        r.tick();
        // Followers keep answering, so the leader keeps its quorum meanwhile.
        r.step(NodeId(2), append_ok(Term(1), LogIndex(1)));
    }
    assert_eq!((r.role(), r.transfer_target()), (Role::Leader, None));
    assert!(r.propose(vec![1]).is_ok(), "proposals are taken again");
}

#[test]
fn transfer_refusals_say_why() {
    let mut r = leader(true);
    assert_eq!(r.transfer_leadership(Some(NodeId(9))), Err(TransferError::UnknownServer(NodeId(9))));
    assert_eq!(r.transfer_leadership(Some(NodeId(1))), Ok(NodeId(1)), "already leads: nothing to do");
    assert_eq!(r.transfer_target(), None);
    r.transfer_leadership(Some(NodeId(2))).unwrap();
    assert_eq!(r.transfer_leadership(Some(NodeId(3))), Err(TransferError::InProgress { to: NodeId(2) }));
    let mut f = follower_of_1(2);
    assert_eq!(f.transfer_leadership(None), Err(TransferError::NotLeader { leader_hint: Some(NodeId(1)) }));
}

#[test]
fn timeout_now_from_the_leader_makes_a_follower_campaign_at_once_with_transfer_votes() {
    let mut f = follower_of_1(2);
    f.step(NodeId(1), Message::TimeoutNow(TimeoutNow { term: Term(1), leader_id: NodeId(1) }));
    assert_eq!((f.role(), f.current_term(), f.voted_for()), (Role::Candidate, Term(2), Some(NodeId(2))));
    let ready = f.ready();
    assert!(ready.hard_state.is_some() && ready.must_sync, "the vote for itself is persisted first");
    assert_eq!(sent(&ready), vec![(1, "TransferVote"), (3, "TransferVote")], "no pre-vote round");
}

#[test]
fn timeout_now_from_anyone_but_our_leader_or_of_an_old_term_is_ignored() {
    let mut f = follower_of_1(2);
    f.step(NodeId(3), Message::TimeoutNow(TimeoutNow { term: Term(1), leader_id: NodeId(3) }));
    f.step(NodeId(1), Message::TimeoutNow(TimeoutNow { term: Term(0), leader_id: NodeId(1) }));
    assert_eq!((f.role(), f.current_term()), (Role::Follower, Term(1)));
    f.step(NodeId(3), Message::TimeoutNow(TimeoutNow { term: Term(1), leader_id: NodeId(1) }));
    assert_eq!(f.ignored().invalid[Invalid::LeaderIdMismatch as usize], 1, "leader_id must be the sender");
}

#[test]
fn a_transfer_vote_is_granted_despite_leader_stickiness_and_deposes_the_leader() {
    let vote =
        RequestVote { term: Term(2), candidate_id: NodeId(2), last_log_index: LogIndex(1), last_log_term: Term(1) };
    let mut f = follower_of_1(3);
    f.step(NodeId(2), Message::RequestVote(vote.clone()));
    assert_eq!((f.current_term(), f.ignored().leader_sticky), (Term(1), 1), "an ordinary vote is ignored");
    f.step(NodeId(2), Message::TransferVote(vote.clone()));
    assert_eq!((f.current_term(), f.voted_for()), (Term(2), Some(NodeId(2))));
    let mut l = leader(true);
    l.step(NodeId(2), append_ok(Term(1), LogIndex(1)));
    l.step(NodeId(2), Message::TransferVote(vote));
    assert_eq!((l.role(), l.current_term(), l.voted_for()), (Role::Follower, Term(2), Some(NodeId(2))));
}

// ---- ReadIndex (§6.4) ----

#[test]
fn a_read_is_answered_once_a_majority_answers_a_round_sent_after_it() {
    let mut r = leader(true);
    r.read_index(7);
    r.read_index(8);
    let ready = r.ready();
    let round = check_round(&ready);
    assert!(ready.read_states.is_empty(), "not before the round is answered");
    r.step(NodeId(3), check_answer(Term(1), round));
    let ready = r.ready();
    let index = Some(LogIndex(1));
    assert_eq!(ready.read_states, vec![ReadState { id: 7, index }, ReadState { id: 8, index }], "one round for both");
}

#[test]
fn an_answer_to_an_earlier_round_does_not_confirm_a_later_read() {
    let mut r = leader(true);
    r.read_index(1);
    let first = check_round(&r.ready());
    r.read_index(2);
    let second = check_round(&r.ready());
    assert!(second > first);
    r.step(NodeId(2), check_answer(Term(1), first));
    assert_eq!(r.ready().read_states, vec![ReadState { id: 1, index: Some(LogIndex(1)) }]);
    r.step(NodeId(2), check_answer(Term(1), second));
    assert_eq!(r.ready().read_states, vec![ReadState { id: 2, index: Some(LogIndex(1)) }]);
}

#[test]
fn a_new_leader_serves_reads_only_after_committing_an_entry_of_its_term() {
    let mut r = leader(false);
    r.read_index(1);
    let ready = r.ready();
    assert!(!sent(&ready).contains(&(2, "LeaderCheck")), "no round before its no-op commits");
    assert!(ready.read_states.is_empty());
    r.step(NodeId(2), append_ok(Term(1), LogIndex(1)));
    let round = check_round(&r.ready());
    r.step(NodeId(2), check_answer(Term(1), round));
    assert_eq!(r.ready().read_states, vec![ReadState { id: 1, index: Some(LogIndex(1)) }]);
}

#[test]
fn a_deposed_leader_refuses_its_waiting_reads() {
    let mut r = leader(true);
    r.read_index(1);
    let _ = r.ready();
    r.step(NodeId(2), heartbeat(Term(2), 2, 0));
    assert_eq!(r.ready().read_states, vec![ReadState { id: 1, index: None }]);
}

#[test]
fn a_round_answer_naming_a_round_never_sent_is_invalid() {
    let mut r = leader(true);
    r.step(NodeId(2), check_answer(Term(1), 5));
    assert_eq!(r.ignored().invalid[Invalid::LeaderCheckRoundInvalid as usize], 1);
    assert_eq!(r.leader_check_confirmed(), 0);
}

#[test]
fn a_single_server_confirms_its_reads_at_once() {
    let mut r = server(1, &[]);
    while r.role() != Role::Leader {
        r.tick();
    }
    let _ = r.ready();
    r.advance();
    r.read_index(4);
    assert_eq!(r.ready().read_states, vec![ReadState { id: 4, index: Some(LogIndex(1)) }]);
}

#[test]
fn a_leader_answers_a_followers_read_index_after_its_round() {
    let mut r = leader(true);
    r.step(NodeId(3), Message::ReadIndex(ReadIndex { term: Term(1), id: 9 }));
    let round = check_round(&r.ready());
    r.step(NodeId(2), check_answer(Term(1), round));
    let ready = r.ready();
    let answer = ReadIndexResponse { term: Term(1), id: 9, index: LogIndex(1), index_term: Term(1) };
    assert!(ready.messages.contains(&Outgoing { to: NodeId(3), message: Message::ReadIndexResponse(answer) }));
}

#[test]
fn a_server_that_does_not_lead_refuses_a_read_index() {
    let mut f = follower_of_1(2);
    f.step(NodeId(3), Message::ReadIndex(ReadIndex { term: Term(1), id: 9 }));
    let refusal = ReadIndexResponse { term: Term(1), id: 9, index: LogIndex(0), index_term: Term(0) };
    assert_eq!(f.ready().messages, vec![Outgoing { to: NodeId(3), message: Message::ReadIndexResponse(refusal) }]);
}

#[test]
fn a_follower_read_asks_the_leader_and_commits_from_the_answer() {
    let mut f = follower_of_1(2);
    assert_eq!(f.commit_index(), LogIndex(0));
    f.read_index(5);
    f.read_index(6);
    // One request for the reads of one turn (request ids are the follower's own).
    let ask = Message::ReadIndex(ReadIndex { term: Term(1), id: 1 });
    assert_eq!(f.ready().messages, vec![Outgoing { to: NodeId(1), message: ask }]);
    let answer = ReadIndexResponse { term: Term(1), id: 1, index: LogIndex(1), index_term: Term(1) };
    f.step(NodeId(1), Message::ReadIndexResponse(answer.clone()));
    assert_eq!(f.commit_index(), LogIndex(1), "it holds entry 1 of term 1: committed");
    let index = Some(LogIndex(1));
    assert_eq!(f.ready().read_states, vec![ReadState { id: 5, index }, ReadState { id: 6, index }]);
    f.step(NodeId(1), Message::ReadIndexResponse(answer));
    assert!(f.ready().read_states.is_empty(), "a duplicated answer answers nothing");
    assert_eq!(f.ignored().stale_response, 1);
}

#[test]
fn a_follower_read_fails_without_a_leader_or_an_answer_within_an_election_timeout() {
    let mut f = server(2, &[1, 3]);
    f.read_index(1);
    assert_eq!(f.ready().read_states, vec![ReadState { id: 1, index: None }], "no leader known: at once");
    let mut f = follower_of_1(2);
    f.read_index(2);
    let _ = f.ready();
    for _ in 0..E - 1 {
        f.tick();
        f.step(NodeId(1), heartbeat(Term(1), 1, 1));
    }
    assert!(f.ready().read_states.is_empty());
    f.tick();
    assert_eq!(f.ready().read_states, vec![ReadState { id: 2, index: None }]);
}

#[test]
fn a_leader_check_is_leader_contact_and_answered_with_its_round() {
    let mut f = follower_of_1(2);
    for _ in 0..E - 1 {
        f.tick();
    }
    f.step(NodeId(1), Message::LeaderCheck(LeaderCheck { term: Term(1), leader_id: NodeId(1), round: 4 }));
    assert_eq!(f.election_elapsed, 0, "the election timer restarts");
    assert_eq!(f.ready().messages, vec![Outgoing { to: NodeId(1), message: check_answer(Term(1), 4) }]);
    // A stale leader's check is answered with the later term, which deposes it.
    f.step(NodeId(3), heartbeat(Term(3), 3, 0));
    let _ = f.ready();
    f.step(NodeId(1), Message::LeaderCheck(LeaderCheck { term: Term(1), leader_id: NodeId(1), round: 5 }));
    // Round 0, not 5: should server 1 lead term 3 later, this must not acknowledge its round 5
    // (simulator seed 193 with every run leasing found exactly that).
    assert_eq!(f.ready().messages, vec![Outgoing { to: NodeId(1), message: check_answer(Term(3), 0) }]);
}

// ---- leases (§6.4.1) ----

#[test]
fn with_lease_checks_every_heartbeat_starts_a_round_and_confirmed_rounds_grow() {
    let mut r = leader(true);
    r.options.leader_check_every_heartbeat = true;
    assert!(r.lease_allowed());
    let mut confirmed = 0;
    for _ in 0..3 {
        for _ in 0..H {
            r.tick();
        }
        let round = check_round(&r.ready());
        r.step(NodeId(2), check_answer(Term(1), round));
        assert!(r.leader_check_confirmed() > confirmed);
        confirmed = r.leader_check_confirmed();
    }
    r.options.leader_check_every_heartbeat = false;
    for _ in 0..H {
        r.tick();
    }
    assert!(!sent(&r.ready()).contains(&(2, "LeaderCheck")), "without it (and no read) heartbeats carry no round");
}

#[test]
fn a_leader_holds_no_lease_before_committing_in_its_term() {
    assert!(!leader(false).lease_allowed());
    assert!(leader(true).lease_allowed());
    assert!(!follower_of_1(2).lease_allowed());
}
