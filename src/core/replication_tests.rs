//! Unit tests of log replication (§5.3) and commitment (§5.4): the paper's Figure 7 follower
//! cases, Figure 8, fast back-tracking, flow control, and durability ordering.

use super::test_net::Net;
use super::*;

const E: u32 = 10;
const H: u32 = 3;

fn options(id: u64, peers: &[u64]) -> Options {
    // The §5 rules alone: pre-vote and stickiness (thesis §9.6, §4.2.3) have their own tests.
    let mut options = Options::new(NodeId(id), peers.iter().map(|&p| NodeId(p)).collect(), E, H, id * 31 + 7);
    options.pre_vote = false;
    options.leader_stickiness = false;
    options
}

fn entries(terms: &[u64]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(i, &t)| Entry { term: Term(t), index: LogIndex(i as u64 + 1), data: format!("e{}", i + 1).into_bytes() })
        .collect()
}

fn hard(term: u64) -> HardState {
    HardState { current_term: Term(term), voted_for: None, commit_index: LogIndex(0) }
}

fn terms_of(r: &Raft) -> Vec<u64> {
    (1..=r.last_index().0).map(|i| r.log().term_at(LogIndex(i)).unwrap().0).collect()
}

/// Make `r` a leader by ticking it into candidacy and granting it a majority of votes.
fn elect(mut r: Raft) -> Raft {
    for _ in 0..2 * E {
        r.tick();
        if r.role() == Role::Candidate {
            break;
        }
    }
    assert_eq!(r.role(), Role::Candidate);
    let term = r.current_term();
    for peer in r.peers().to_vec().into_iter().take(r.peers().len().div_ceil(2)) {
        r.step(peer, Message::RequestVoteResponse(RequestVoteResponse { term, vote_granted: true }));
    }
    assert_eq!(r.role(), Role::Leader);
    r
}

#[test]
fn figure_7_followers_converge_to_the_leaders_log_in_a_few_round_trips() {
    // Figure 7: the leader of term 8 and six followers (a)-(f), some missing entries, some
    // with extra uncommitted ones, (f) with a divergent suffix of terms 2 and 3.
    let leader_log = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let followers: [(&str, &[u64]); 6] = [
        ("a", &[1, 1, 1, 4, 4, 5, 5, 6, 6]),
        ("b", &[1, 1, 1, 4]),
        ("c", &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6]),
        ("d", &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7]),
        ("e", &[1, 1, 1, 4, 4, 4, 4]),
        ("f", &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]),
    ];
    for (name, follower_log) in followers {
        let leader = Raft::restore(options(1, &[2, 3]), hard(7), RaftLog::from_entries(entries(&leader_log)));
        let follower = Raft::restore(options(2, &[1, 3]), hard(7), RaftLog::from_entries(entries(follower_log)));
        let mut net = Net::new(vec![elect(leader), follower]);
        net.down.push(NodeId(3));
        let delivered = net.run();
        let mut expected = leader_log.to_vec();
        expected.push(8); // the term-8 leader's no-op
        assert_eq!(terms_of(net.node(2)), expected, "follower ({name})");
        // Probing skips a whole term per round trip: a handful of messages, not one per entry.
        assert!(delivered <= 8, "follower ({name}) needed {delivered} messages");
        // The no-op of term 8 on a majority commits everything before it (§5.4.2).
        assert_eq!(net.node(1).commit_index(), LogIndex(11), "follower ({name})");
    }
}

#[test]
fn figure_8_a_leader_never_commits_an_old_term_entry_by_counting_replicas() {
    // Figure 8 (c): S1 leads term 4 holding entry 2 of term 2, which it has replicated to a
    // majority. Counting replicas must not commit it; only the term-4 entry on a majority does.
    let s1 = Raft::restore(options(1, &[2, 3, 4, 5]), hard(3), RaftLog::from_entries(entries(&[1, 2])));
    let mut s1 = elect(s1);
    assert_eq!(s1.current_term(), Term(4));
    let _ = s1.ready();
    s1.advance();
    // S2 and S3 acknowledge entry 2 (but not yet S1's term-4 no-op at index 3).
    s1.step(
        NodeId(2),
        Message::AppendEntriesResponse(AppendEntriesResponse {
            term: Term(4),
            success: true,
            match_index: LogIndex(2),
            conflict_index: LogIndex(0),
            conflict_term: Term(0),
        }),
    );
    s1.step(
        NodeId(3),
        Message::AppendEntriesResponse(AppendEntriesResponse {
            term: Term(4),
            success: true,
            match_index: LogIndex(2),
            conflict_index: LogIndex(0),
            conflict_term: Term(0),
        }),
    );
    assert_eq!(s1.commit_index(), LogIndex(0), "entry 2 (term 2) is on a majority but must not commit");
    // Once the term-4 entry is on a majority, it and everything before it commit.
    for peer in [2, 3] {
        s1.step(
            NodeId(peer),
            Message::AppendEntriesResponse(AppendEntriesResponse {
                term: Term(4),
                success: true,
                match_index: LogIndex(3),
                conflict_index: LogIndex(0),
                conflict_term: Term(0),
            }),
        );
    }
    assert_eq!(s1.commit_index(), LogIndex(3));
}

#[test]
fn the_leader_counts_itself_only_after_its_own_fsync() {
    let mut leader = elect(Raft::new(options(1, &[2, 3]), HardState::default()));
    let ready = leader.ready();
    assert_eq!(ready.entries.len(), 1, "the no-op is handed to storage");
    // A follower acknowledges before the leader's Ready is done: 1 of 3 is not a majority.
    leader.step(
        NodeId(2),
        Message::AppendEntriesResponse(AppendEntriesResponse {
            term: Term(1),
            success: true,
            match_index: LogIndex(1),
            conflict_index: LogIndex(0),
            conflict_term: Term(0),
        }),
    );
    assert_eq!(leader.commit_index(), LogIndex(0), "the leader's own entry is not durable yet");
    leader.advance();
    assert_eq!(leader.commit_index(), LogIndex(1));
    let ready = leader.ready();
    assert_eq!(ready.committed_entries.len(), 1);
    assert_eq!(leader.last_applied(), LogIndex(1));
}

#[test]
fn a_follower_acknowledges_in_the_same_ready_that_persists_the_entries() {
    let mut f = Raft::new(options(2, &[1, 3]), HardState::default());
    let m = AppendEntries {
        term: Term(1),
        leader_id: NodeId(1),
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        entries: entries(&[1, 1]),
        leader_commit: LogIndex(0),
    };
    f.step(NodeId(1), Message::AppendEntries(m));
    let ready = f.ready();
    assert_eq!(f.entries(ready.entries), entries(&[1, 1]).as_slice());
    assert!(ready.must_sync, "the acknowledgement below promises these entries are durable");
    assert_eq!(ready.messages.len(), 1);
    assert!(
        matches!(&ready.messages[0].message, Message::AppendEntriesResponse(r) if r.success && r.match_index == LogIndex(2))
    );
}

#[test]
fn a_conflicting_suffix_is_truncated_and_reported_to_storage() {
    let mut f = Raft::restore(options(2, &[1, 3]), hard(2), RaftLog::from_entries(entries(&[1, 1, 2, 2])));
    let new = Entry { term: Term(3), index: LogIndex(3), data: b"x".to_vec() };
    let m = AppendEntries {
        term: Term(3),
        leader_id: NodeId(1),
        prev_log_index: LogIndex(2),
        prev_log_term: Term(1),
        entries: vec![new.clone()],
        leader_commit: LogIndex(0),
    };
    f.step(NodeId(1), Message::AppendEntries(m));
    assert_eq!(terms_of(&f), vec![1, 1, 3]);
    let ready = f.ready();
    assert_eq!(ready.truncate_from, Some(LogIndex(3)));
    assert_eq!(f.entries(ready.entries), &[new][..]);
}

#[test]
fn a_stale_or_duplicated_append_never_truncates_matching_entries() {
    let mut f = Raft::restore(options(2, &[1, 3]), hard(1), RaftLog::from_entries(entries(&[1, 1, 1])));
    // An old message carrying only entry 1, delivered late.
    let m = AppendEntries {
        term: Term(1),
        leader_id: NodeId(1),
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        entries: entries(&[1]),
        leader_commit: LogIndex(0),
    };
    f.step(NodeId(1), Message::AppendEntries(m.clone()));
    f.step(NodeId(1), Message::AppendEntries(m));
    assert_eq!(terms_of(&f), vec![1, 1, 1]);
    let ready = f.ready();
    assert_eq!((ready.truncate_from, ready.entries.len()), (None, 0));
}

#[test]
fn a_follower_commits_only_what_the_message_proved_matches() {
    let mut f = Raft::restore(options(2, &[1, 3]), hard(1), RaftLog::from_entries(entries(&[1, 1, 1])));
    let m = AppendEntries {
        term: Term(1),
        leader_id: NodeId(1),
        prev_log_index: LogIndex(1),
        prev_log_term: Term(1),
        entries: vec![],
        leader_commit: LogIndex(9),
    };
    f.step(NodeId(1), Message::AppendEntries(m));
    assert_eq!(f.commit_index(), LogIndex(1), "§5.3: min(leaderCommit, index of last new entry)");
}

#[test]
fn a_far_behind_follower_catches_up_in_a_few_round_trips() {
    let mut terms = vec![1; 3000];
    terms.extend(vec![2; 3000]);
    let leader = Raft::restore(options(1, &[2, 3]), hard(2), RaftLog::from_entries(entries(&terms)));
    let mut net = Net::new(vec![elect(leader), Raft::new(options(2, &[1, 3]), hard(0))]);
    net.down.push(NodeId(3));
    let delivered = net.run();
    assert_eq!(net.node(2).last_index(), LogIndex(6001));
    // One probe, its rejection, then 4096-entry batches (two of them) and their acks.
    assert!(delivered <= 8, "{delivered} messages for 6001 entries");
    assert_eq!(net.node(1).commit_index(), LogIndex(6001));
}

#[test]
fn pipelining_stays_within_the_in_flight_window_and_message_limits() {
    let mut opts = options(1, &[2, 3]);
    opts.in_flight_max = 4;
    opts.entries_per_message_max = 10;
    let mut leader = elect(Raft::new(opts, HardState::default()));
    let _ = leader.ready();
    leader.advance();
    // Follower 2 acknowledges the no-op: Replicate state.
    leader.step(
        NodeId(2),
        Message::AppendEntriesResponse(AppendEntriesResponse {
            term: Term(1),
            success: true,
            match_index: LogIndex(1),
            conflict_index: LogIndex(0),
            conflict_term: Term(0),
        }),
    );
    assert_eq!(leader.progress(NodeId(2)).unwrap().state, ProgressState::Replicate);
    let _ = leader.ready();
    leader.propose_batch((0..100).map(|i| vec![i as u8 + 1]).collect()).unwrap();
    let ready = leader.ready();
    let to_2: Vec<&AppendEntries> = ready
        .messages
        .iter()
        .filter(|o| o.to == NodeId(2))
        .map(|o| match &o.message {
            Message::AppendEntries(m) => m,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(to_2.len(), 4, "at most in_flight_max appends in flight");
    assert!(to_2.iter().all(|m| m.entries.len() == 10));
    assert_eq!(to_2[3].entries.last().unwrap().index, LogIndex(41));
    // Follower 3 never answered the no-op: it is probed with one message at a time.
    assert!(ready.messages.iter().all(|o| o.to != NodeId(3)), "a paused probe sends nothing");
}

#[test]
fn a_rejection_switches_to_probing_from_the_hint() {
    let leader = Raft::restore(options(1, &[2, 3]), hard(2), RaftLog::from_entries(entries(&[1, 1, 2, 2])));
    let mut leader = elect(leader);
    let _ = leader.ready();
    // Follower 2 rejects prev 4 (term 2): it has term 1 at index 4... no: its log is [1,1,1].
    leader.step(
        NodeId(2),
        Message::AppendEntriesResponse(AppendEntriesResponse {
            term: Term(3),
            success: false,
            match_index: LogIndex(4),
            conflict_index: LogIndex(4),
            conflict_term: Term(0),
        }),
    );
    assert_eq!(leader.progress(NodeId(2)).unwrap().next_index, LogIndex(4));
    let ready = leader.ready();
    let probe: Vec<_> = ready.messages.iter().filter(|o| o.to == NodeId(2)).collect();
    assert_eq!(probe.len(), 1);
    assert!(matches!(&probe[0].message, Message::AppendEntries(m) if m.prev_log_index == LogIndex(3)));
    // The same rejection delivered twice is stale the second time.
    leader.step(
        NodeId(2),
        Message::AppendEntriesResponse(AppendEntriesResponse {
            term: Term(3),
            success: false,
            match_index: LogIndex(4),
            conflict_index: LogIndex(4),
            conflict_term: Term(0),
        }),
    );
    assert_eq!(leader.ignored().stale_response, 1);
}

#[test]
fn proposals_commit_and_apply_in_order_on_every_server() {
    let leader = elect(Raft::new(options(1, &[2, 3]), HardState::default()));
    let mut net =
        Net::new(vec![leader, Raft::new(options(2, &[1, 3]), hard(0)), Raft::new(options(3, &[1, 2]), hard(0))]);
    net.run();
    for batch in 0..5u8 {
        net.node(1).propose_batch((0..20).map(|i| vec![batch, i]).collect()).unwrap();
        net.run();
    }
    // Followers learn the final commit index with the next heartbeat.
    for _ in 0..H {
        net.node(1).tick();
    }
    net.run();
    for id in 1..=3 {
        let applied = &net.applied[&NodeId(id)];
        assert_eq!(applied.len(), 101, "server {id}: the no-op and 100 commands");
        assert!(applied[0].data.is_empty());
        assert_eq!(applied[100].data, vec![4, 19]);
        assert_eq!(net.node(id).last_applied(), LogIndex(101));
    }
}

#[test]
fn proposals_to_a_follower_are_refused_with_a_leader_hint() {
    let mut f = Raft::new(options(2, &[1, 3]), HardState::default());
    f.step(
        NodeId(1),
        Message::AppendEntries(AppendEntries {
            term: Term(1),
            leader_id: NodeId(1),
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries: vec![],
            leader_commit: LogIndex(0),
        }),
    );
    assert_eq!(f.propose(b"x".to_vec()), Err(ProposeError::NotLeader { leader_hint: Some(NodeId(1)) }));
    let mut leader = elect(Raft::new(options(1, &[2, 3]), HardState::default()));
    assert_eq!(leader.propose(vec![]), Err(ProposeError::Empty), "empty data is the no-op's");
}

#[test]
fn a_lost_append_is_repaired_by_the_next_heartbeat() {
    let leader = elect(Raft::new(options(1, &[2, 3]), HardState::default()));
    let mut net =
        Net::new(vec![leader, Raft::new(options(2, &[1, 3]), hard(0)), Raft::new(options(3, &[1, 2]), hard(0))]);
    net.run();
    net.node(1).propose(b"lost".to_vec()).unwrap();
    net.flush();
    // Drop the append to 2 on the floor.
    net.queue.retain(|(_, out)| out.to != NodeId(2));
    net.run();
    assert_eq!(net.node(2).last_index(), LogIndex(1));
    for _ in 0..H {
        net.node(1).tick();
    }
    net.run();
    assert_eq!(net.node(2).last_index(), LogIndex(2), "heartbeat rejection led to a resend");
}

#[test]
fn only_a_settled_leader_may_send_before_its_own_fsync() {
    // A candidate's vote requests promise its persisted vote: never before the fsync.
    let mut r = Raft::new(options(1, &[2, 3]), HardState::default());
    for _ in 0..2 * E {
        r.tick();
    }
    let ready = r.ready();
    assert!(ready.hard_state.is_some() && !ready.send_before_persist);
    r.advance();
    // The leader's first Ready still carries nothing to save here (its vote is durable), so
    // its appends may overlap its own write of the no-op.
    r.step(NodeId(2), Message::RequestVoteResponse(RequestVoteResponse { term: r.current_term(), vote_granted: true }));
    let ready = r.ready();
    assert!(!ready.entries.is_empty() && ready.send_before_persist);
    r.advance();
    // A follower's acknowledgement promises its log: never before the fsync.
    let mut f = Raft::new(options(2, &[1, 3]), HardState::default());
    f.step(
        NodeId(1),
        Message::AppendEntries(AppendEntries {
            term: Term(1),
            leader_id: NodeId(1),
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries: entries(&[1]),
            leader_commit: LogIndex(0),
        }),
    );
    let ready = f.ready();
    assert!(ready.must_sync && !ready.send_before_persist);
}

#[test]
fn a_delayed_rejection_of_an_index_already_matched_is_stale() {
    // Found by the simulator (seed 12): probing at next = match + 1, an old rejection of
    // prev = match arrives late; it must be ignored, not move next_index below match + 1.
    let leader = Raft::restore(options(1, &[2, 3]), hard(1), RaftLog::from_entries(entries(&[1, 1])));
    let mut leader = elect(leader);
    let _ = leader.ready();
    leader.advance();
    let term = leader.current_term();
    let ack = |m: u64| {
        Message::AppendEntriesResponse(AppendEntriesResponse {
            term,
            success: true,
            match_index: LogIndex(m),
            conflict_index: LogIndex(0),
            conflict_term: Term(0),
        })
    };
    let nack = |rejected: u64| {
        Message::AppendEntriesResponse(AppendEntriesResponse {
            term,
            success: false,
            match_index: LogIndex(rejected),
            conflict_index: LogIndex(1),
            conflict_term: Term(0),
        })
    };
    leader.step(NodeId(2), ack(2)); // Replicate from 3
    leader.step(NodeId(2), nack(3)); // back to probing at next = 3 = match + 1
    let p = leader.progress(NodeId(2)).unwrap();
    assert_eq!((p.state, p.match_index, p.next_index), (ProgressState::Probe, LogIndex(2), LogIndex(3)));
    leader.step(NodeId(2), nack(2)); // an old rejection of prev 2, delivered late
    let p = leader.progress(NodeId(2)).unwrap();
    assert_eq!((p.match_index, p.next_index), (LogIndex(2), LogIndex(3)));
    assert_eq!(leader.ignored().stale_response, 1);
}

#[test]
fn a_term_that_could_overflow_is_ignored() {
    let mut f = Raft::new(options(2, &[1, 3]), HardState::default());
    let forged = RequestVote {
        term: Term(u64::MAX),
        candidate_id: NodeId(1),
        last_log_index: LogIndex(0),
        last_log_term: Term(0),
    };
    f.step(NodeId(1), Message::RequestVote(forged));
    assert_eq!(f.current_term(), Term(0));
    assert!(!f.has_ready());
    assert_eq!(f.ignored().term_too_large, 1);
    let at_limit =
        RequestVote { term: TERM_MAX, candidate_id: NodeId(1), last_log_index: LogIndex(0), last_log_term: Term(0) };
    f.step(NodeId(1), Message::RequestVote(at_limit));
    assert_eq!(f.current_term(), TERM_MAX, "the limit itself is a legal term");
}
