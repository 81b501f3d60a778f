//! Unit tests of the core: feed inputs, assert exact outputs. One test per paper rule.

use super::*;

const E: u32 = 10; // election_ticks
const H: u32 = 3; // heartbeat_ticks

fn options(id: u64, peers: &[u64]) -> Options {
    // The §5 rules alone: pre-vote and stickiness (thesis §9.6, §4.2.3) have their own tests.
    let mut options = Options::new(NodeId(id), peers.iter().map(|&p| NodeId(p)).collect(), E, H, id * 7919);
    options.pre_vote = false;
    options.leader_stickiness = false;
    options
}

fn follower(id: u64) -> Raft {
    let peers: Vec<u64> = (1..=5).filter(|&p| p != id).collect();
    Raft::new(options(id, &peers), HardState::default())
}

fn hard(term: u64, voted_for: Option<u64>) -> HardState {
    HardState { current_term: Term(term), voted_for: voted_for.map(NodeId), commit_index: LogIndex(0) }
}

/// A log whose entries have the given terms, indexes from 1.
fn log_with_terms(terms: &[u64]) -> RaftLog {
    let entries = terms
        .iter()
        .enumerate()
        .map(|(i, &t)| Entry { term: Term(t), index: LogIndex(i as u64 + 1), data: vec![] })
        .collect();
    RaftLog::from_entries(entries)
}

fn tick_until_candidate(r: &mut Raft) -> u32 {
    for n in 1..=2 * E {
        r.tick();
        if r.role() == Role::Candidate {
            return n;
        }
    }
    panic!("no election within 2 * election_ticks");
}

fn vote_request(term: u64, candidate: u64, last_index: u64, last_term: u64) -> Message {
    Message::RequestVote(RequestVote {
        term: Term(term),
        candidate_id: NodeId(candidate),
        last_log_index: LogIndex(last_index),
        last_log_term: Term(last_term),
    })
}

fn vote_granted(term: u64) -> Message {
    Message::RequestVoteResponse(RequestVoteResponse { term: Term(term), vote_granted: true })
}

fn heartbeat(term: u64, leader: u64) -> Message {
    Message::AppendEntries(append(term, leader, 0, 0, 0))
}

/// An empty AppendEntries (add entries with struct update syntax).
fn append(term: u64, leader: u64, prev_index: u64, prev_term: u64, commit: u64) -> AppendEntries {
    AppendEntries {
        term: Term(term),
        leader_id: NodeId(leader),
        prev_log_index: LogIndex(prev_index),
        prev_log_term: Term(prev_term),
        entries: vec![],
        leader_commit: LogIndex(commit),
    }
}

/// The single reply to `to` in a Ready, asserting there is exactly one message.
fn only_message(ready: &Ready) -> &Outgoing {
    assert_eq!(ready.messages.len(), 1, "expected exactly one message: {:?}", ready.messages);
    &ready.messages[0]
}

fn make_leader(id: u64) -> Raft {
    elect(follower(id))
}

/// Make `r` win an election (votes from a majority of its peers) and settle its first Ready.
fn elect(mut r: Raft) -> Raft {
    tick_until_candidate(&mut r);
    let term = r.current_term().0;
    let _ = r.ready();
    r.advance();
    let needed = r.peers().len().div_ceil(2);
    for peer in r.peers().to_vec().into_iter().take(needed) {
        r.step(peer, vote_granted(term));
    }
    assert_eq!(r.role(), Role::Leader);
    let _ = r.ready();
    r.advance();
    r
}

#[test]
fn election_timeout_is_randomized_within_one_to_two_timeouts() {
    // §5.2: randomized timeouts in [E, 2E) spread candidates apart.
    let mut seen = std::collections::BTreeSet::new();
    for id in 1..=40 {
        let mut r = Raft::new(Options { seed: id, ..options(1, &[2, 3]) }, HardState::default());
        let n = tick_until_candidate(&mut r);
        assert!((E..2 * E).contains(&n), "timeout {n} outside [{E}, {})", 2 * E);
        seen.insert(n);
    }
    assert!(seen.len() > 3, "timeouts are not randomized: {seen:?}");
}

#[test]
fn candidate_increments_term_votes_for_itself_and_requests_votes() {
    let mut r = Raft::restore(options(1, &[2, 3]), hard(4, None), log_with_terms(&[1, 3]));
    tick_until_candidate(&mut r);
    let ready = r.ready();
    assert_eq!(ready.hard_state, Some(hard(5, Some(1))));
    assert!(ready.must_sync, "a vote must reach disk before the requests leave (thesis §3.8)");
    let expected: Vec<Outgoing> =
        [2, 3].iter().map(|&p| Outgoing { to: NodeId(p), message: vote_request(5, 1, 2, 3) }).collect();
    assert_eq!(ready.messages, expected);
    assert_eq!(ready.soft_state, Some(SoftState { role: Role::Candidate, term: Term(5), leader_id: None }));
}

#[test]
fn candidate_with_majority_becomes_leader_and_sends_heartbeats() {
    let mut r = follower(1);
    tick_until_candidate(&mut r);
    let _ = r.ready();
    r.step(NodeId(2), vote_granted(1));
    assert_eq!(r.role(), Role::Candidate, "2 of 5 is not a majority");
    r.step(NodeId(2), vote_granted(1));
    assert_eq!(r.role(), Role::Candidate, "a duplicated vote counts once");
    r.step(NodeId(3), vote_granted(1));
    assert_eq!(r.role(), Role::Leader);
    let ready = r.ready();
    // §8: the new leader's first message to each follower carries its no-op entry.
    let noop = Entry { term: Term(1), index: LogIndex(1), data: vec![] };
    assert_eq!(r.entries(ready.entries), &[noop.clone()][..]);
    assert!(ready.must_sync);
    assert_eq!(ready.messages.len(), 4);
    for (out, peer) in ready.messages.iter().zip(2..=5) {
        let expected = AppendEntries { entries: vec![noop.clone()], ..append(1, 1, 0, 0, 0) };
        assert_eq!(out, &Outgoing { to: NodeId(peer), message: Message::AppendEntries(expected) });
    }
    assert_eq!(ready.soft_state.unwrap().leader_id, Some(NodeId(1)));
}

#[test]
fn rejected_votes_do_not_elect_and_a_split_vote_starts_a_new_term() {
    let mut r = follower(1);
    tick_until_candidate(&mut r);
    for p in 2..=5 {
        let reject = RequestVoteResponse { term: Term(1), vote_granted: false };
        r.step(NodeId(p), Message::RequestVoteResponse(reject));
    }
    assert_eq!(r.role(), Role::Candidate);
    tick_until_candidate_again(&mut r);
    assert_eq!(r.current_term(), Term(2));
}

fn tick_until_candidate_again(r: &mut Raft) {
    let term = r.current_term();
    for _ in 0..2 * E {
        r.tick();
        if r.current_term() > term {
            return;
        }
    }
    panic!("candidate did not start a new election");
}

#[test]
fn grants_one_vote_per_term_first_come_first_served() {
    let mut r = follower(1);
    r.step(NodeId(2), vote_request(1, 2, 0, 0));
    let ready = r.ready();
    assert_eq!(ready.hard_state, Some(hard(1, Some(2))));
    assert!(ready.must_sync);
    assert_eq!(only_message(&ready).message, vote_granted(1));

    r.step(NodeId(3), vote_request(1, 3, 0, 0));
    let ready = r.ready();
    assert_eq!(ready.hard_state, None, "nothing changed");
    let refused = Message::RequestVoteResponse(RequestVoteResponse { term: Term(1), vote_granted: false });
    assert_eq!(only_message(&ready), &Outgoing { to: NodeId(3), message: refused });

    // A retransmitted request from the candidate we voted for is granted again (idempotent).
    r.step(NodeId(2), vote_request(1, 2, 0, 0));
    assert_eq!(only_message(&r.ready()).message, vote_granted(1));
}

#[test]
fn restarted_server_never_votes_twice_in_a_term() {
    // Figure 2: votedFor is persistent; a restart must not free the vote.
    let mut r = Raft::new(options(1, &[2, 3]), hard(7, Some(2)));
    r.step(NodeId(3), vote_request(7, 3, 0, 0));
    let ready = r.ready();
    assert_eq!(ready.hard_state, None);
    let refused = Message::RequestVoteResponse(RequestVoteResponse { term: Term(7), vote_granted: false });
    assert_eq!(only_message(&ready).message, refused);
    assert_eq!(r.current_term(), Term(7));
}

#[test]
fn vote_requires_candidate_log_at_least_as_up_to_date() {
    // §5.4.1, with our log ending at (index 3, term 2).
    let cases = [
        ((3, 1), false), // older last term, even if as long
        ((9, 1), false), // older last term, longer
        ((2, 2), false), // same term, shorter
        ((3, 2), true),  // same term, same length
        ((4, 2), true),  // same term, longer
        ((1, 3), true),  // newer last term, shorter
    ];
    for ((last_index, last_term), granted) in cases {
        let mut r = Raft::restore(options(1, &[2, 3]), hard(2, None), log_with_terms(&[1, 2, 2]));
        r.step(NodeId(2), vote_request(3, 2, last_index, last_term));
        let ready = r.ready();
        let expected = Message::RequestVoteResponse(RequestVoteResponse { term: Term(3), vote_granted: granted });
        assert_eq!(only_message(&ready).message, expected, "candidate log ({last_index}, {last_term})");
        assert_eq!(r.voted_for(), granted.then_some(NodeId(2)));
    }
}

#[test]
fn vote_is_refused_when_candidate_id_is_not_the_sender() {
    let mut r = follower(1);
    r.step(NodeId(2), vote_request(1, 3, 0, 0));
    assert_eq!(r.voted_for(), None);
}

#[test]
fn higher_term_turns_leader_into_follower_and_clears_vote() {
    // §5.1: any message with a higher term updates the term and converts to follower.
    let mut r = make_leader(1);
    let term = r.current_term().0;
    r.step(NodeId(4), Message::RequestVoteResponse(RequestVoteResponse { term: Term(term + 3), vote_granted: false }));
    assert_eq!(r.role(), Role::Follower);
    assert_eq!(r.current_term(), Term(term + 3));
    assert_eq!(r.voted_for(), None);
    assert_eq!(r.leader_id(), None);
    assert_eq!(r.ready().hard_state, Some(hard(term + 3, None)));
}

#[test]
fn higher_term_append_entries_sets_the_leader() {
    let mut r = follower(1);
    r.step(NodeId(3), heartbeat(4, 3));
    assert_eq!((r.role(), r.current_term(), r.leader_id()), (Role::Follower, Term(4), Some(NodeId(3))));
    let ready = r.ready();
    let ok = AppendEntriesResponse {
        term: Term(4),
        success: true,
        match_index: LogIndex(0),
        conflict_index: LogIndex(0),
        conflict_term: Term(0),
    };
    assert_eq!(only_message(&ready), &Outgoing { to: NodeId(3), message: Message::AppendEntriesResponse(ok) });
}

#[test]
fn candidate_returns_to_follower_on_append_entries_of_its_term() {
    // §5.2: a candidate that hears from a leader of its own term recognizes it.
    let mut r = follower(1);
    tick_until_candidate(&mut r);
    r.step(NodeId(2), heartbeat(1, 2));
    assert_eq!((r.role(), r.current_term(), r.leader_id()), (Role::Follower, Term(1), Some(NodeId(2))));
    assert_eq!(r.voted_for(), Some(NodeId(1)), "the vote of the term stays");
}

#[test]
fn stale_requests_are_rejected_with_the_current_term_and_stale_responses_dropped() {
    let mut r = Raft::new(options(1, &[2, 3]), hard(5, None));
    r.step(NodeId(2), vote_request(4, 2, 0, 0));
    let refused = Message::RequestVoteResponse(RequestVoteResponse { term: Term(5), vote_granted: false });
    assert_eq!(only_message(&r.ready()).message, refused);
    assert_eq!(r.voted_for(), None);

    r.step(NodeId(2), heartbeat(4, 2));
    let nack = AppendEntriesResponse {
        term: Term(5),
        success: false,
        match_index: LogIndex(0),
        conflict_index: LogIndex(0),
        conflict_term: Term(0),
    };
    assert_eq!(only_message(&r.ready()).message, Message::AppendEntriesResponse(nack));
    assert_eq!(r.leader_id(), None, "a stale leader is not followed");

    r.step(NodeId(3), vote_granted(4));
    assert!(r.ready().is_empty());
    assert_eq!(r.ignored().stale_term, 1);
}

#[test]
fn heartbeats_prevent_elections_and_granting_a_vote_resets_the_timer() {
    let mut r = follower(1);
    for _ in 0..10 * E {
        r.tick();
        if r.election_elapsed_for_test() + 1 >= E {
            r.step(NodeId(2), heartbeat(1, 2));
        }
    }
    assert_eq!(r.role(), Role::Follower);
    // Granting a vote also resets the timer (Figure 2, Followers).
    let mut r = follower(1);
    for _ in 0..E - 1 {
        r.tick();
    }
    r.step(NodeId(2), vote_request(1, 2, 0, 0));
    for _ in 0..E - 1 {
        r.tick();
    }
    assert_eq!(r.role(), Role::Follower);
}

#[test]
fn leader_sends_heartbeats_every_heartbeat_interval() {
    let mut r = make_leader(1);
    let mut sent_at = vec![];
    for t in 1..=3 * H {
        r.tick();
        let ready = r.ready();
        if !ready.messages.is_empty() {
            assert!(ready
                .messages
                .iter()
                .all(|o| matches!(&o.message, Message::AppendEntries(m) if m.entries.is_empty())));
            assert_eq!(ready.messages.len(), 4);
            sent_at.push(t);
        }
    }
    assert_eq!(sent_at, vec![H, 2 * H, 3 * H]);
}

#[test]
fn leader_without_a_quorum_steps_down_after_an_election_timeout() {
    // Thesis §6.2 (check quorum): an isolated leader stops claiming leadership.
    let mut r = make_leader(1);
    let term = r.current_term();
    let ack = |t: Term| {
        Message::AppendEntriesResponse(AppendEntriesResponse {
            term: t,
            success: true,
            match_index: LogIndex(0),
            conflict_index: LogIndex(0),
            conflict_term: Term(0),
        })
    };
    for _ in 0..3 * E {
        r.tick();
        r.step(NodeId(2), ack(term));
        r.step(NodeId(3), ack(term));
    }
    assert_eq!(r.role(), Role::Leader, "two acks + self is a majority of five");
    for _ in 0..E {
        r.tick();
        r.step(NodeId(2), ack(term));
    }
    for _ in 0..E {
        r.tick();
    }
    assert_eq!((r.role(), r.current_term(), r.leader_id()), (Role::Follower, term, None));
}

#[test]
fn messages_from_unknown_servers_are_ignored_and_counted() {
    let mut r = follower(1);
    r.step(NodeId(9), vote_request(50, 9, 0, 0));
    r.step(NodeId(1), vote_request(50, 1, 0, 0));
    assert_eq!(r.current_term(), Term(0));
    assert!(r.ready().is_empty());
    assert_eq!(r.ignored().unknown_peer, 2);
}

#[test]
fn leader_ignores_a_second_leader_of_its_own_term() {
    let mut r = make_leader(1);
    let term = r.current_term().0;
    r.step(NodeId(2), heartbeat(term, 2));
    assert_eq!(r.role(), Role::Leader);
    assert_eq!(r.ignored().conflicting_leader, 1);
}

#[test]
fn single_server_cluster_elects_itself() {
    let mut r = Raft::new(options(1, &[]), HardState::default());
    for _ in 0..2 * E {
        r.tick();
    }
    assert_eq!((r.role(), r.current_term()), (Role::Leader, Term(1)));
}

#[test]
fn same_seed_and_inputs_give_the_same_outputs() {
    let run = || {
        let mut r = follower(3);
        let mut out = vec![];
        for i in 0..200u64 {
            r.tick();
            if i % 37 == 0 {
                r.step(NodeId(1 + i % 2), vote_request(i / 10, 1 + i % 2, 0, 0));
            }
            out.push(format!("{:?}", r.ready()));
        }
        out
    };
    assert_eq!(run(), run());
}
