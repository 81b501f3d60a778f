//! Hostile and buggy peers (validate.rs), pre-vote (thesis §9.6) and leader stickiness
//! (thesis §4.2.3): feed inputs, assert exact outputs — and that nothing else changed.

use super::*;

const E: u32 = 10; // election_ticks
const H: u32 = 3; // heartbeat_ticks

/// The defaults a server runs with: pre-vote and stickiness on.
fn options(id: u64, peers: &[u64]) -> Options {
    Options::new(NodeId(id), peers.iter().map(|&p| NodeId(p)).collect(), E, H, id * 104_729)
}

fn server(id: u64, terms: &[u64], term: u64) -> Raft {
    let entries = terms
        .iter()
        .enumerate()
        .map(|(i, &t)| Entry { term: Term(t), index: LogIndex(i as u64 + 1), data: vec![i as u8] })
        .collect();
    let hard = HardState { current_term: Term(term), voted_for: None, commit_index: LogIndex(0) };
    let mut r = Raft::restore(
        options(id, &[1, 2, 3].iter().copied().filter(|&p| p != id).collect::<Vec<_>>()),
        hard,
        RaftLog::from_entries(entries),
    );
    r.just_started = false; // up for longer than an election timeout, with no leader heard
    r
}

fn entry(index: u64, term: u64) -> Entry {
    Entry { term: Term(term), index: LogIndex(index), data: vec![7] }
}

fn append(term: u64, leader: u64, prev: (u64, u64), entries: Vec<Entry>, commit: u64) -> Message {
    Message::AppendEntries(AppendEntries {
        term: Term(term),
        leader_id: NodeId(leader),
        prev_log_index: LogIndex(prev.0),
        prev_log_term: Term(prev.1),
        entries,
        leader_commit: LogIndex(commit),
    })
}

fn pre_vote(term: u64, candidate: u64, last: (u64, u64)) -> Message {
    Message::PreVote(RequestVote {
        term: Term(term),
        candidate_id: NodeId(candidate),
        last_log_index: LogIndex(last.0),
        last_log_term: Term(last.1),
    })
}

fn vote_request(term: u64, candidate: u64, last: (u64, u64)) -> Message {
    Message::RequestVote(RequestVote {
        term: Term(term),
        candidate_id: NodeId(candidate),
        last_log_index: LogIndex(last.0),
        last_log_term: Term(last.1),
    })
}

fn pre_vote_response(term: u64, granted: bool) -> Message {
    Message::PreVoteResponse(RequestVoteResponse { term: Term(term), vote_granted: granted })
}

/// Everything a message must not change when it is dropped.
fn fingerprint(r: &Raft) -> (Term, Option<NodeId>, Role, LogIndex, Vec<Entry>, Option<NodeId>, u32) {
    let entries = r.entries(IndexRange { first: LogIndex(1), last: r.last_index() }).to_vec();
    (r.current_term(), r.voted_for(), r.role(), r.commit_index(), entries, r.leader_id(), r.election_elapsed_for_test())
}

/// `message` from `from` is dropped as `reason`: nothing sent, nothing changed, one count.
fn assert_dropped(r: &mut Raft, from: u64, message: Message, reason: Invalid) {
    let before = fingerprint(r);
    let counted = r.ignored().invalid[reason as usize];
    r.step(NodeId(from), message.clone());
    assert_eq!(fingerprint(r), before, "{message:?} changed state");
    assert_eq!(r.ignored().invalid[reason as usize], counted + 1, "{message:?} not counted as {reason:?}");
    assert!(r.ready().messages.is_empty(), "{message:?} was answered");
    r.advance();
}

/// Tick until the server asks for pre-votes; returns how many ticks it took.
fn tick_until_pre_candidate(r: &mut Raft) -> u32 {
    for n in 1..=2 * E {
        r.tick();
        if r.pre_candidate {
            return n;
        }
    }
    panic!("no pre-vote within 2 * election_ticks");
}

/// Settle a follower of `leader` in `term` (it has just heard from its leader).
fn follower_of(id: u64, leader: u64, term: u64) -> Raft {
    let mut r = server(id, &[1], term);
    r.step(NodeId(leader), append(term, leader, (1, 1), vec![], 1));
    let _ = r.ready();
    r.advance();
    r
}

fn leader(id: u64) -> Raft {
    let mut r = server(id, &[1], 1);
    tick_until_pre_candidate(&mut r);
    let _ = r.ready();
    let peer = r.peers()[0];
    r.step(peer, pre_vote_response(2, true));
    assert_eq!(r.role(), Role::Candidate);
    let _ = r.ready();
    r.advance();
    r.step(peer, Message::RequestVoteResponse(RequestVoteResponse { term: Term(2), vote_granted: true }));
    assert_eq!(r.role(), Role::Leader);
    let _ = r.ready();
    r.advance();
    r
}

#[test]
fn entries_that_do_not_continue_prev_log_index_are_dropped() {
    // Reproduced a panic in RaftLog::append: prev_log_index 0 and one entry at index 5.
    let mut r = server(2, &[], 1);
    assert_dropped(&mut r, 1, append(1, 1, (0, 0), vec![entry(5, 1)], 0), Invalid::EntriesNotContiguous);
    assert_dropped(&mut r, 1, append(1, 1, (0, 0), vec![entry(1, 1), entry(3, 1)], 0), Invalid::EntriesNotContiguous);
    let overflow = append(1, 1, (u64::MAX, 1), vec![entry(0, 1)], 0);
    assert_dropped(&mut r, 1, overflow, Invalid::EntriesNotContiguous);
}

#[test]
fn entries_whose_terms_decrease_or_exceed_the_message_term_are_dropped() {
    let mut r = server(2, &[1], 2);
    assert_dropped(&mut r, 1, append(3, 1, (1, 1), vec![entry(2, 3), entry(3, 2)], 0), Invalid::EntryTermsInvalid);
    assert_dropped(&mut r, 1, append(2, 1, (1, 1), vec![entry(2, 3)], 0), Invalid::EntryTermsInvalid);
    assert_dropped(&mut r, 1, append(2, 1, (1, 2), vec![entry(2, 1)], 0), Invalid::EntryTermsInvalid);
    assert_dropped(&mut r, 1, append(2, 1, (0, 0), vec![entry(1, 0)], 0), Invalid::EntryTermsInvalid);
}

#[test]
fn an_invalid_message_with_a_higher_term_does_not_move_the_term() {
    let mut r = server(2, &[1], 2);
    assert_dropped(&mut r, 1, append(9, 1, (0, 0), vec![entry(4, 9)], 0), Invalid::EntriesNotContiguous);
    assert_dropped(&mut r, 3, vote_request(9, 1, (1, 1)), Invalid::CandidateIdMismatch);
    assert_eq!(r.current_term(), Term(2));
}

#[test]
fn leader_id_and_candidate_id_must_be_the_sender() {
    let mut r = server(2, &[1], 2);
    assert_dropped(&mut r, 1, append(2, 3, (0, 0), vec![], 0), Invalid::LeaderIdMismatch);
    assert_dropped(&mut r, 1, vote_request(3, 3, (1, 1)), Invalid::CandidateIdMismatch);
    assert_dropped(&mut r, 1, pre_vote(3, 3, (1, 1)), Invalid::CandidateIdMismatch);
}

#[test]
fn impossible_log_positions_are_dropped() {
    let mut r = server(2, &[1], 2);
    assert_dropped(&mut r, 1, append(2, 1, (0, 1), vec![], 0), Invalid::LogPositionInvalid);
    assert_dropped(&mut r, 1, append(2, 1, (1, 0), vec![], 0), Invalid::LogPositionInvalid);
    assert_dropped(&mut r, 1, append(2, 1, (1, 5), vec![], 0), Invalid::LogPositionInvalid);
    assert_dropped(&mut r, 3, vote_request(3, 3, (4, 7)), Invalid::LogPositionInvalid);
    assert_dropped(&mut r, 3, pre_vote(3, 3, (0, 1)), Invalid::LogPositionInvalid);
}

#[test]
fn an_overwrite_at_or_below_the_commit_index_is_refused() {
    // Was an assertion ("a committed entry never conflicts"): a lying leader could crash us.
    let mut r = server(2, &[1, 1, 1], 1);
    r.step(NodeId(1), append(1, 1, (3, 1), vec![], 2));
    let _ = r.ready();
    r.advance();
    assert_eq!(r.commit_index(), LogIndex(2));
    assert_dropped(&mut r, 1, append(2, 1, (1, 1), vec![entry(2, 2)], 2), Invalid::OverwritesCommitted);
    // A deposed leader's delayed append is stale, not invalid: refused by the term rule.
    r.step(NodeId(1), append(2, 1, (3, 1), vec![], 2));
    let _ = r.ready();
    r.advance();
    r.step(NodeId(3), append(1, 3, (1, 1), vec![entry(2, 1), entry(3, 1)], 1));
    assert_eq!(r.ignored().invalid_total(), 1);
    assert_eq!(r.ready().messages.len(), 1, "answered with our term");
    r.advance();
    // Above the commit index a conflict is ordinary (§5.3): truncated and replaced.
    r.step(NodeId(1), append(2, 1, (2, 1), vec![entry(3, 2)], 2));
    assert_eq!(r.log().term_at(LogIndex(3)), Some(Term(2)));
}

#[test]
fn an_acknowledgement_past_the_leaders_log_is_dropped_and_ticking_goes_on() {
    // Reproduced a panic: success with match_index past the leader's last index, then a tick
    // (the heartbeat looked up the term at next_index - 1).
    let mut r = leader(1);
    let last = r.last_index().0;
    let ack = |m: u64, success: bool| {
        Message::AppendEntriesResponse(AppendEntriesResponse {
            term: Term(2),
            success,
            match_index: LogIndex(m),
            conflict_index: LogIndex(0),
            conflict_term: Term(0),
        })
    };
    let before = r.progress(NodeId(2)).map(|p| (p.match_index, p.next_index));
    assert_dropped(&mut r, 2, ack(last + 1, true), Invalid::AckBeyondLog);
    assert_dropped(&mut r, 2, ack(u64::MAX, true), Invalid::AckBeyondLog);
    assert_dropped(&mut r, 2, ack(last + 5, false), Invalid::AckBeyondLog);
    assert_eq!(r.progress(NodeId(2)).map(|p| (p.match_index, p.next_index)), before);
    for _ in 0..3 * H {
        r.tick();
    }
    assert_eq!(r.role(), Role::Leader);
    let _ = r.ready();
    r.advance();
    let rejection = Message::AppendEntriesResponse(AppendEntriesResponse {
        term: Term(2),
        success: false,
        match_index: LogIndex(0),
        conflict_index: LogIndex(0),
        conflict_term: Term(3),
    });
    assert_dropped(&mut r, 2, rejection, Invalid::HintInvalid);
}

#[test]
fn every_counter_has_a_distinct_name() {
    let names: std::collections::BTreeSet<&str> = Ignored::default().by_name().iter().map(|(n, _)| *n).collect();
    assert_eq!(names.len(), 6 + Invalid::ALL.len());
    let mut ignored = Ignored::default();
    ignored.count_invalid(Invalid::AckBeyondLog);
    assert!(ignored.by_name().contains(&("invalid_ack_beyond_log", 1)));
    assert_eq!(ignored.invalid_total(), 1);
}

// ---- Pre-vote (thesis §9.6) ----

#[test]
fn an_election_timeout_asks_for_pre_votes_without_raising_the_term() {
    let mut r = server(1, &[1, 1], 3);
    let n = tick_until_pre_candidate(&mut r);
    assert!((E..2 * E).contains(&n));
    let ready = r.ready();
    assert_eq!(ready.hard_state, None, "nothing to persist: term and vote unchanged");
    let expected: Vec<Outgoing> =
        [2, 3].iter().map(|&p| Outgoing { to: NodeId(p), message: pre_vote(4, 1, (2, 1)) }).collect();
    assert_eq!(ready.messages, expected);
    assert_eq!((r.current_term(), r.role(), r.voted_for()), (Term(3), Role::Follower, None));
}

#[test]
fn a_majority_of_pre_votes_starts_a_real_election() {
    let mut r = server(1, &[1], 3);
    tick_until_pre_candidate(&mut r);
    let _ = r.ready();
    r.step(NodeId(2), pre_vote_response(3, true)); // answers an older question: ignored
    r.step(NodeId(2), pre_vote_response(3, false)); // a voter of our term says no
    assert_eq!((r.role(), r.current_term()), (Role::Follower, Term(3)));
    r.step(NodeId(3), pre_vote_response(4, true));
    assert_eq!((r.role(), r.current_term(), r.voted_for()), (Role::Candidate, Term(4), Some(NodeId(1))));
    let ready = r.ready();
    assert!(ready.must_sync && ready.hard_state.is_some(), "the real vote is persisted before the requests");
    assert!(ready.messages.iter().all(|o| o.message == vote_request(4, 1, (1, 1))));
}

#[test]
fn a_pre_vote_changes_nothing_in_the_voter() {
    let mut r = server(2, &[1], 3);
    let before = fingerprint(&r);
    r.step(NodeId(1), pre_vote(7, 1, (1, 1)));
    assert_eq!(fingerprint(&r), before, "term, vote and timers unchanged");
    let ready = r.ready();
    assert_eq!(ready.hard_state, None);
    assert_eq!(ready.messages, vec![Outgoing { to: NodeId(1), message: pre_vote_response(7, true) }]);
}

#[test]
fn a_pre_vote_is_refused_for_a_stale_log_or_term() {
    let mut r = server(2, &[1, 2], 3);
    r.step(NodeId(1), pre_vote(4, 1, (1, 1))); // shorter log
    r.step(NodeId(3), pre_vote(3, 3, (2, 2))); // not a later term
    let ready = r.ready();
    let refusal = pre_vote_response(3, false);
    assert_eq!(ready.messages.iter().map(|o| &o.message).collect::<Vec<_>>(), vec![&refusal, &refusal]);
    assert_eq!(r.current_term(), Term(3));
}

#[test]
fn a_refusal_from_a_later_term_is_news_of_that_term() {
    let mut r = server(1, &[1], 3);
    tick_until_pre_candidate(&mut r);
    r.step(NodeId(2), pre_vote_response(6, false));
    assert_eq!((r.current_term(), r.role(), r.pre_candidate), (Term(6), Role::Follower, false));
}

#[test]
fn an_isolated_server_keeps_its_term() {
    // Without pre-vote its term climbed with every election timeout, and on healing its
    // higher term deposed the leader.
    let mut r = server(1, &[1], 3);
    for _ in 0..50 * E {
        r.tick();
        let _ = r.ready();
        r.advance();
    }
    assert_eq!(r.current_term(), Term(3));
}

#[test]
fn an_append_from_the_leader_ends_a_pre_campaign() {
    let mut r = server(1, &[1], 3);
    tick_until_pre_candidate(&mut r);
    r.step(NodeId(2), append(3, 2, (1, 1), vec![], 1));
    assert!(!r.pre_candidate);
    r.step(NodeId(3), pre_vote_response(4, true));
    assert_eq!((r.role(), r.current_term()), (Role::Follower, Term(3)));
}

#[test]
fn a_single_server_elects_itself_through_pre_vote() {
    let mut r = Raft::new(Options::new(NodeId(1), vec![], E, H, 5), HardState::default());
    for _ in 0..2 * E {
        r.tick();
    }
    assert_eq!((r.role(), r.current_term()), (Role::Leader, Term(1)));
}

// ---- Leader stickiness (thesis §4.2.3) ----

#[test]
fn a_follower_that_hears_from_its_leader_ignores_vote_requests() {
    let mut r = follower_of(2, 1, 3);
    let before = fingerprint(&r);
    r.step(NodeId(3), pre_vote(4, 3, (5, 3)));
    r.step(NodeId(3), vote_request(4, 3, (5, 3)));
    assert_eq!(fingerprint(&r), before);
    assert!(r.ready().messages.is_empty());
    assert_eq!(r.ignored().leader_sticky, 2);
}

#[test]
fn after_the_minimum_election_timeout_without_the_leader_votes_count_again() {
    let mut r = follower_of(2, 1, 3);
    for _ in 0..E - 1 {
        r.tick();
    }
    r.step(NodeId(3), pre_vote(4, 3, (5, 3)));
    assert_eq!(r.ignored().leader_sticky, 1, "one tick short of the minimum timeout: still sticky");
    r.tick();
    r.step(NodeId(3), pre_vote(4, 3, (5, 3)));
    r.step(NodeId(3), vote_request(4, 3, (5, 3)));
    assert_eq!((r.current_term(), r.voted_for()), (Term(4), Some(NodeId(3))));
}

#[test]
fn a_leader_ignores_pre_votes_and_vote_requests_of_later_terms() {
    let mut r = leader(1);
    r.step(NodeId(2), pre_vote(3, 2, (9, 2)));
    r.step(NodeId(2), vote_request(3, 2, (9, 2)));
    assert_eq!((r.role(), r.current_term()), (Role::Leader, Term(2)));
    assert_eq!(r.ignored().leader_sticky, 2);
    // Any other message of a later term still deposes it (§5.1).
    r.step(NodeId(2), append(3, 2, (0, 0), vec![], 0));
    assert_eq!((r.role(), r.current_term()), (Role::Follower, Term(3)));
}

#[test]
fn a_server_that_knows_no_leader_votes() {
    let mut r = server(2, &[1], 3);
    r.step(NodeId(3), vote_request(4, 3, (1, 1)));
    assert_eq!(r.voted_for(), Some(NodeId(3)));
}

#[test]
fn a_just_restarted_server_ignores_votes_for_an_election_timeout() {
    // It may have followed a leader that is alive (and holds a lease, §6.4.1): a restart must
    // not let it vote sooner than the leader's last contact allows.
    let mut r = server(2, &[1], 3);
    r.just_started = true;
    r.step(NodeId(3), vote_request(4, 3, (1, 1)));
    r.step(NodeId(3), pre_vote(4, 3, (1, 1)));
    assert_eq!((r.current_term(), r.voted_for(), r.ignored().leader_sticky), (Term(3), None, 2));
    for _ in 0..r.options.election_ticks {
        r.tick();
    }
    assert!(!r.just_started, "an election timeout later it no longer assumes a leader");
    let term = r.current_term().0 + 1;
    r.step(NodeId(3), vote_request(term, 3, (1, 1)));
    assert_eq!(r.voted_for(), Some(NodeId(3)));
}

#[test]
fn a_restart_with_entries_of_a_later_term_than_saved_adopts_that_term() {
    // The log is synced before the hard state is saved: a crash between them leaves entries of
    // term 3 with term 1 saved. Found by the simulator: such a server's requests named a last
    // log term above their own term, were dropped as invalid, and it could never be elected.
    let mut r = server(1, &[1, 3], 1);
    assert_eq!((r.current_term(), r.voted_for()), (Term(3), None));
    let ready = r.ready();
    assert_eq!(ready.hard_state.map(|h| (h.current_term, h.voted_for)), Some((Term(3), None)), "saved again");
    tick_until_pre_candidate(&mut r);
    assert_eq!(r.ready().messages[0].message, pre_vote(4, 1, (2, 3)));
}

#[test]
fn check_quorum_counts_any_message_of_the_leaders_term_as_contact() {
    let mut r = leader(1);
    // Server 3 only sends a late vote of this term; server 2 nothing at all.
    for round in 0..5 {
        r.step(NodeId(3), Message::RequestVoteResponse(RequestVoteResponse { term: Term(2), vote_granted: true }));
        for _ in 0..E {
            r.tick();
        }
        assert_eq!(r.role(), Role::Leader, "round {round}: contact with 3 is a majority with itself");
    }
    for _ in 0..2 * E {
        r.tick();
    }
    assert_eq!(r.role(), Role::Follower, "silence from both: it steps down");
}

#[test]
fn a_heartbeat_is_acknowledged_only_up_to_the_durable_log() {
    // Entries 2..3 reach the follower; before they are durable a heartbeat at index 3 comes.
    let mut r = follower_of(2, 1, 1);
    r.step(NodeId(1), append(1, 1, (1, 1), vec![entry(2, 1), entry(3, 1)], 1));
    let _ = r.ready(); // the write is in flight: not yet persisted
    r.step(NodeId(1), append(1, 1, (3, 1), vec![], 1));
    let ready = r.ready();
    let ack = match &ready.messages[..] {
        [Outgoing { message: Message::AppendEntriesResponse(m), .. }] => m.clone(),
        other => panic!("one answer expected: {other:?}"),
    };
    assert!(ack.success);
    assert_eq!(ack.match_index, LogIndex(1), "a heartbeat's answer promises only the durable log");
    r.persisted(LogIndex(3), Term(1));
    r.step(NodeId(1), append(1, 1, (3, 1), vec![], 1));
    let ready = r.ready();
    assert!(matches!(&ready.messages[0].message, Message::AppendEntriesResponse(m) if m.match_index == LogIndex(3)));
}
