//! Membership changes (thesis §4.1, single-server; §4.2 learners and removal), one test per
//! rule, on the lossless test network.

use super::test_net::Net;
use super::*;

const E: u32 = 10;

fn options(id: u64, peers: &[u64], joining: bool) -> Options {
    let mut options = Options::new(NodeId(id), peers.iter().map(|&p| NodeId(p)).collect(), E, 3, id * 17 + 3);
    options.pre_vote = false;
    options.leader_stickiness = false;
    options.joining = joining;
    options.promote_lag = 0;
    options
}

/// Voters that know each other, and servers not yet added that know the voters.
fn cluster(voters: &[u64], joining: &[u64]) -> Net {
    let mut nodes = Vec::new();
    for &v in voters {
        let peers: Vec<u64> = voters.iter().copied().filter(|p| *p != v).collect();
        nodes.push(Raft::new(options(v, &peers, false), HardState::default()));
    }
    for &j in joining {
        nodes.push(Raft::new(options(j, voters, true), HardState::default()));
    }
    Net::new(nodes)
}

/// Tick `id` into candidacy and let the network elect it; then let it commit its no-op.
fn lead(net: &mut Net, id: u64) {
    for _ in 0..3 * E {
        net.node(id).tick();
        if net.node(id).role() == Role::Candidate {
            break;
        }
    }
    net.run();
    assert_eq!(net.node(id).role(), Role::Leader, "{id} won");
    net.run();
}

/// Two heartbeat rounds from leader `id`, everything delivered.
fn heartbeats(net: &mut Net, id: u64) {
    for _ in 0..6 {
        net.node(id).tick();
        net.run();
    }
}

fn learner(pid: u64, promote: bool) -> MembershipChange {
    MembershipChange::AddLearner {
        pid: NodeId(pid),
        peer_url: format!("tcp://127.0.0.1:{}", 7000 + pid),
        client_url: format!("tcp://127.0.0.1:{}", 8000 + pid),
        promote,
    }
}

fn voters(r: &Raft) -> Vec<u64> {
    r.membership().voters().map(|v| v.0).collect()
}

fn learners(r: &Raft) -> Vec<u64> {
    r.membership().learners().map(|v| v.0).collect()
}

/// Propose `data` on the leader and deliver everything.
fn write(net: &mut Net, leader: u64, data: &[u8]) -> LogIndex {
    let index = net.node(leader).propose(data.to_vec()).expect("the leader takes it");
    net.run();
    index
}

#[test]
fn a_membership_round_trips_and_damaged_encodings_are_refused() {
    let m = Membership::of_voters([NodeId(1), NodeId(3)]).after(&learner(7, true)).unwrap();
    let data = m.encode();
    assert_eq!(&data[..8], &MEMBERSHIP_MAGIC);
    assert_eq!(Membership::decode(&data), Some(Ok(m.clone())));
    assert_eq!(Membership::decode(b"a command"), None, "not a membership entry");
    for cut in 8..data.len() {
        assert_eq!(Membership::decode(&data[..cut]), Some(Err(MembershipDecodeError::Truncated)), "cut at {cut}");
    }
    let mut trailing = data.clone();
    trailing.push(0);
    assert_eq!(Membership::decode(&trailing), Some(Err(MembershipDecodeError::Truncated)));
    let mut version = data.clone();
    version[8] = 9;
    assert_eq!(Membership::decode(&version), Some(Err(MembershipDecodeError::Version(9))));
    let mut role = data.clone();
    role[8 + 1 + 8 + 8] = 5; // the first member's role tag
    assert_eq!(Membership::decode(&role), Some(Err(MembershipDecodeError::Invalid)));
    let learners_only =
        Membership { members: m.members.iter().filter(|(p, _)| p.0 == 7).map(|(p, v)| (*p, v.clone())).collect() };
    assert_eq!(Membership::decode(&learners_only.encode()), Some(Err(MembershipDecodeError::Invalid)), "no voter");
    let mut descending = data.clone();
    descending[8 + 1 + 8..8 + 1 + 16].copy_from_slice(&9u64.to_le_bytes()); // pid 9 before pid 3
    assert_eq!(Membership::decode(&descending), Some(Err(MembershipDecodeError::Invalid)));
}

#[test]
fn the_change_rules_name_what_is_wrong() {
    let m = Membership::of_voters([NodeId(1), NodeId(2)]);
    assert_eq!(m.after(&learner(2, false)), Err(MembershipError::AlreadyMember(NodeId(2))));
    assert_eq!(m.after(&MembershipChange::Promote { pid: NodeId(2) }), Err(MembershipError::AlreadyVoter(NodeId(2))));
    assert_eq!(m.after(&MembershipChange::Remove { pid: NodeId(5) }), Err(MembershipError::NotAMember(NodeId(5))));
    let one = Membership::of_voters([NodeId(1)]);
    assert_eq!(one.after(&MembershipChange::Remove { pid: NodeId(1) }), Err(MembershipError::LastVoter(NodeId(1))));
    assert!(matches!(m.after(&learner(0, false)), Err(MembershipError::Invalid(_))));
}

#[test]
fn a_learner_gets_the_log_but_never_votes_campaigns_or_counts_towards_commit() {
    let mut net = cluster(&[1, 2, 3], &[4]);
    lead(&mut net, 1);
    assert!(!net.node(4).is_voter());
    write(&mut net, 1, b"before");
    let added = net.node(1).propose_membership(learner(4, false)).expect("a change the rules allow");
    net.run();
    write(&mut net, 1, b"after");
    assert_eq!(learners(net.node(4)), [4], "the learner knows it is one");
    assert_eq!(net.node(4).log().last_index(), net.node(1).log().last_index(), "it has the whole log");
    assert!(net.node(4).commit_index() >= added);
    // It never campaigns, however long it hears nothing.
    let term = net.node(4).current_term();
    for _ in 0..10 * E {
        net.node(4).tick();
    }
    assert_eq!((net.node(4).role(), net.node(4).current_term()), (Role::Follower, term));
    // It answers a vote (thesis §4.1: votes are answered without consulting one's own
    // configuration; see a_server_that_does_not_know_it_was_promoted_still_votes), but no
    // candidate of this membership counts it: 2 with the learner's vote alone is no majority.
    let ask = RequestVote { term: Term(9), candidate_id: NodeId(2), last_log_index: LogIndex(99), last_log_term: term };
    net.node(4).step(NodeId(2), Message::RequestVote(ask));
    assert_eq!(net.node(4).vote_log().last().unwrap().verdict, VoteVerdict::Granted);
    assert_eq!(net.node(2).count_voters(&[NodeId(4)], true), 1, "the learner's vote does not count");
    // Its acknowledgement does not make a majority: with 2 and 3 down, nothing commits.
    net.down = vec![NodeId(2), NodeId(3)];
    let index = write(&mut net, 1, b"needs a voter");
    assert!(net.node(1).commit_index() < index, "leader + learner are not a majority of 3 voters");
}

#[test]
fn one_change_at_a_time_and_only_after_an_entry_of_the_leaders_term_is_committed() {
    let mut net = cluster(&[1, 2, 3], &[4, 5]);
    // A new leader with its no-op not yet committed (its votes arrived, nothing else).
    for _ in 0..3 * E {
        net.node(1).tick();
        if net.node(1).role() == Role::Candidate {
            break;
        }
    }
    net.flush();
    let votes: Vec<_> = net.queue.drain(..).collect();
    for (from, out) in votes {
        net.node(out.to.0).step(from, out.message);
    }
    net.flush();
    let replies: Vec<_> = net.queue.drain(..).filter(|(_, o)| o.to == NodeId(1)).collect();
    for (from, out) in replies {
        net.node(1).step(from, out.message);
    }
    assert_eq!(net.node(1).role(), Role::Leader);
    assert_eq!(net.node(1).propose_membership(learner(4, false)), Err(MembershipError::NoCommitInTerm));
    net.queue.clear();
    net.run();
    net.node(1).tick(); // a heartbeat round carries the commit
    net.run();
    let first = net.node(1).propose_membership(learner(4, false)).expect("its no-op is committed now");
    assert_eq!(net.node(1).propose_membership(learner(5, false)), Err(MembershipError::ChangeInFlight(first)));
    net.run();
    net.node(1).propose_membership(learner(5, false)).expect("the first is committed");
}

#[test]
fn a_caught_up_learner_is_promoted_and_then_counts() {
    let mut net = cluster(&[1, 2, 3], &[4]);
    lead(&mut net, 1);
    net.node(1).propose_membership(learner(4, true)).unwrap();
    net.run();
    for _ in 0..6 {
        net.node(1).tick(); // heartbeats: the leader sees 4 caught up and promotes it
        net.run();
    }
    assert_eq!(voters(net.node(1)), [1, 2, 3, 4]);
    assert_eq!(voters(net.node(4)), [1, 2, 3, 4]);
    assert!(net.node(4).is_voter());
    // Quorum is 3 of 4 now: with 2 and 3 down, leader + 4 cannot commit; with 3 down they can.
    net.down = vec![NodeId(2), NodeId(3)];
    let index = write(&mut net, 1, b"x");
    assert!(net.node(1).commit_index() < index);
    net.down = vec![NodeId(3)];
    heartbeats(&mut net, 1);
    assert!(net.node(1).commit_index() >= index, "1, 2 and 4 are a majority of 4");
}

#[test]
fn a_change_that_leaves_no_live_quorum_is_refused() {
    let mut net = cluster(&[1, 2, 3], &[4]);
    lead(&mut net, 1);
    net.node(1).propose_membership(learner(4, false)).unwrap();
    net.run();
    // 4 goes silent; after a quorum-check period only 1 and 2 are live.
    net.down = vec![NodeId(4), NodeId(3)];
    for _ in 0..2 * E {
        net.node(1).tick();
        net.run();
    }
    let refused = net.node(1).propose_membership(MembershipChange::Promote { pid: NodeId(4) });
    assert_eq!(refused, Err(MembershipError::NoLiveQuorum { live: 2, needed: 3 }));
    assert!(refused.unwrap_err().to_string().contains("only 2 voters would be live"));
}

#[test]
fn a_removed_follower_is_no_longer_replicated_to_and_the_quorum_shrinks() {
    let mut net = cluster(&[1, 2, 3, 4], &[]);
    lead(&mut net, 1);
    net.node(1).propose_membership(MembershipChange::Remove { pid: NodeId(4) }).unwrap();
    net.run();
    assert_eq!(voters(net.node(1)), [1, 2, 3]);
    assert_eq!(net.node(1).peers(), [NodeId(2), NodeId(3)]);
    assert!(!net.node(4).is_voter(), "4 has the entry that removes it");
    assert_eq!(net.node(4).commit_index(), net.node(1).commit_index(), "and knows it is committed");
    // 1 and 2 are a majority of {1, 2, 3}.
    net.down = vec![NodeId(3), NodeId(4)];
    let index = write(&mut net, 1, b"x");
    net.node(1).tick();
    net.run();
    assert!(net.node(1).commit_index() >= index);
}

#[test]
fn a_leader_that_removes_itself_commits_the_change_hands_over_and_steps_down() {
    let mut net = cluster(&[1, 2, 3], &[]);
    lead(&mut net, 1);
    net.node(1).propose_membership(MembershipChange::Remove { pid: NodeId(1) }).unwrap();
    net.run();
    assert!(!net.node(1).is_voter());
    for _ in 0..6 {
        net.node(1).tick();
        net.run();
    }
    let leaders: Vec<u64> = [2, 3].into_iter().filter(|&p| net.node(p).role() == Role::Leader).collect();
    assert_eq!(leaders.len(), 1, "a voter of the new membership leads");
    assert_ne!(net.node(1).role(), Role::Leader);
    assert_eq!(voters(net.node(leaders[0])), [2, 3]);
    // The old leader never campaigns again.
    let term = net.node(1).current_term();
    for _ in 0..10 * E {
        net.node(1).tick();
    }
    assert_eq!(net.node(1).current_term(), term);
}

#[test]
fn an_uncommitted_change_overwritten_by_a_new_leader_is_undone() {
    let mut net = cluster(&[1, 2, 3, 4, 5], &[6]);
    lead(&mut net, 1);
    // 1 appends a change that reaches only 2 (its answer is lost), then 1 is cut off.
    net.node(1).propose_membership(learner(6, false)).unwrap();
    net.flush();
    let to_2: Vec<_> = net.queue.drain(..).filter(|(_, o)| o.to == NodeId(2)).collect();
    net.queue.clear();
    for (from, out) in to_2 {
        net.node(2).step(from, out.message);
    }
    net.flush();
    net.queue.clear(); // 2's answers are lost
    assert_eq!(learners(net.node(2)), [6], "in force once appended (§4.1)");
    // 3 wins with 4 and 5 (1 and 2 cut off); its entries replace the change on 2.
    net.down = vec![NodeId(1), NodeId(2), NodeId(6)];
    lead(&mut net, 3);
    write(&mut net, 3, b"new term");
    net.down = vec![NodeId(1), NodeId(6)];
    heartbeats(&mut net, 3);
    assert_eq!(learners(net.node(2)), Vec::<u64>::new(), "the truncated change no longer counts");
    assert_eq!(voters(net.node(2)), [1, 2, 3, 4, 5]);
}

#[test]
fn a_command_cannot_pose_as_a_membership_entry() {
    let mut net = cluster(&[1, 2, 3], &[]);
    lead(&mut net, 1);
    let mut forged = MEMBERSHIP_MAGIC.to_vec();
    forged.extend_from_slice(b"anything");
    assert_eq!(net.node(1).propose(forged.clone()), Err(ProposeError::Reserved));
    // From a peer, an entry with the magic that does not decode drops the whole append.
    let bad = AppendEntries {
        term: net.node(2).current_term(),
        leader_id: NodeId(1),
        prev_log_index: net.node(2).log().last_index(),
        prev_log_term: net.node(2).log().last_term(),
        entries: vec![Entry {
            term: net.node(2).current_term(),
            index: LogIndex(net.node(2).log().last_index().0 + 1),
            data: forged,
        }],
        leader_commit: LogIndex(0),
    };
    let before = net.node(2).log().last_index();
    net.node(2).step(NodeId(1), Message::AppendEntries(bad));
    assert_eq!(net.node(2).log().last_index(), before);
    assert_eq!(net.node(2).ignored().invalid[Invalid::MembershipEntryInvalid as usize], 1);
}

#[test]
fn a_snapshot_records_the_membership_in_force_at_its_index() {
    let mut net = cluster(&[1, 2, 3], &[4]);
    lead(&mut net, 1);
    let before = write(&mut net, 1, b"a");
    let added = net.node(1).propose_membership(learner(4, false)).unwrap();
    net.run();
    assert_eq!(net.node(1).membership_at(before), &Membership::of_voters([NodeId(1), NodeId(2), NodeId(3)]));
    assert_eq!(learners(&Raft::new(options(9, &[1], false), HardState::default())), Vec::<u64>::new());
    let at_added = net.node(1).membership_at(added).clone();
    assert_eq!(at_added.learners().collect::<Vec<_>>(), [NodeId(4)]);
    // Compacting past the change keeps it in force.
    let commit = net.node(1).commit_index();
    net.node(1).compact(commit);
    assert_eq!(learners(net.node(1)), [4]);
    assert_eq!(net.node(1).membership_index(), LogIndex(0), "now the snapshot's");
}

/// Found by the simulator (seed 15 of `leader sim --membership-percent 100`, liveness): a
/// server whose log ends before a new member was added does not know that member, and it
/// dropped the appends of that member once it led — so it never caught up, and the cluster
/// never settled. Thesis §4.1: a server accepts AppendEntries from a leader that is not in its
/// latest configuration (else a server behind could never learn the configuration that
/// names the leader).
#[test]
fn a_follower_behind_accepts_the_appends_of_a_leader_it_does_not_know_yet() {
    let mut net = cluster(&[1, 2, 3], &[4]);
    lead(&mut net, 1);
    net.down = vec![NodeId(3)]; // 3 misses everything from here on
    net.node(1).propose_membership(learner(4, false)).unwrap();
    net.run();
    heartbeats(&mut net, 1);
    net.node(1).propose_membership(MembershipChange::Promote { pid: NodeId(4) }).unwrap();
    net.run();
    heartbeats(&mut net, 1);
    assert_eq!(voters(net.node(1)), [1, 2, 3, 4]);
    net.node(1).transfer_leadership(Some(NodeId(4))).expect("4 is caught up");
    net.run();
    assert_eq!(net.node(4).role(), Role::Leader);
    assert_eq!(voters(net.node(3)), [1, 2, 3], "3 has not heard of 4");
    net.down = vec![];
    heartbeats(&mut net, 4);
    assert_eq!(voters(net.node(3)), [1, 2, 3, 4], "3 took 4's appends and learned the membership");
    assert_eq!(net.node(3).commit_index(), net.node(4).commit_index());
    assert_eq!(net.node(3).ignored().unknown_peer, 0);
}

/// Found by the simulator (seed 799 of `leader sim --membership-percent 100`, liveness): a
/// leader of {1, 2} appends its own removal, loses touch before 2 has the entry, and steps
/// down. Its log is the most up to date, so 2 cannot win; and it took itself for a non-voter
/// (the change is in force once appended), so it never campaigned: no leader, ever. While the
/// latest membership is not known committed, the one before it still elects (thesis §4.1:
/// votes are answered without consulting the latest configuration; §4.2.2: a removed leader
/// manages the cluster until its removal is committed). The server campaigns, wins with the
/// votes of the new membership ({2}), commits its removal and hands over.
#[test]
fn a_leader_whose_removal_is_uncommitted_still_campaigns_and_commits_it() {
    let mut net = cluster(&[1, 2], &[]);
    lead(&mut net, 1);
    net.down = vec![NodeId(2)];
    net.node(1).propose_membership(MembershipChange::Remove { pid: NodeId(1) }).unwrap();
    for _ in 0..3 * E {
        net.node(1).tick(); // check-quorum: no word from 2, so 1 steps down
        net.run();
    }
    assert_ne!(net.node(1).role(), Role::Leader);
    assert!(!net.node(1).is_voter() && net.node(2).is_voter());
    net.down = vec![];
    for _ in 0..20 * E {
        net.node(1).tick();
        net.node(2).tick();
        net.run();
    }
    assert_eq!(net.node(2).role(), Role::Leader, "the cluster has a leader again");
    assert_eq!(voters(net.node(2)), [2], "the removal of 1 is in 2's log");
    assert!(net.node(2).commit_index() >= net.node(2).membership_index(), "and committed");
    assert!(net.node(1).is_removed());
}

/// The voting half of the same rule: a follower whose latest (uncommitted) membership removes
/// it still answers a candidate of the membership before it (which the cluster falls back to
/// if the change is lost) — here with a vote, the candidate's log being as up to date.
#[test]
fn a_server_removed_by_an_uncommitted_change_still_votes() {
    let mut net = cluster(&[1, 2, 3], &[]);
    lead(&mut net, 1);
    net.down = vec![NodeId(2)];
    net.node(1).propose_membership(MembershipChange::Remove { pid: NodeId(3) }).unwrap();
    net.run();
    let r = net.node(3);
    assert!(!r.is_voter() && r.commit_index() < r.membership_index(), "3 has its removal, uncommitted");
    let request = RequestVote {
        term: Term(r.current_term().0 + 1),
        candidate_id: NodeId(2),
        last_log_index: r.log().last_index(),
        last_log_term: r.log().last_term(),
    };
    r.step(NodeId(2), Message::RequestVote(request));
    let ready = r.ready();
    let granted =
        ready.messages.iter().any(|o| matches!(&o.message, Message::RequestVoteResponse(v) if v.vote_granted));
    assert!(granted, "3 voted for 2: {:?}", r.vote_log());
}

/// Found by the simulator (seed 799 again, once the two fixes above were in): a leader that
/// joined after the bootstrap removes itself and hands over (§4.2.2), but its TimeoutNow
/// reaches a server whose membership no longer lists it and whose bootstrap never did — and
/// was dropped as from an unknown server, so the handover never happened. A TimeoutNow is
/// acted on only from the leader the server follows, so it is accepted from anyone, like the
/// leader's appends.
#[test]
fn a_removed_leader_that_joined_later_hands_over_to_a_bootstrap_server() {
    let mut net = cluster(&[1, 2], &[3]);
    lead(&mut net, 1);
    net.node(1).propose_membership(learner(3, false)).unwrap();
    net.run();
    heartbeats(&mut net, 1);
    net.node(1).propose_membership(MembershipChange::Promote { pid: NodeId(3) }).unwrap();
    net.run();
    heartbeats(&mut net, 1);
    net.node(1).transfer_leadership(Some(NodeId(3))).expect("3 is caught up");
    net.run();
    assert_eq!(net.node(3).role(), Role::Leader);
    heartbeats(&mut net, 3); // an entry of its term committed
    net.node(3).propose_membership(MembershipChange::Remove { pid: NodeId(3) }).unwrap();
    net.run();
    // Fewer ticks than an election timeout, and only the removed leader's clock runs: a new
    // leader now can only come from the handover.
    for _ in 0..E - 2 {
        net.node(3).tick();
        net.run();
    }
    let leader = [1, 2].into_iter().find(|&id| net.node(id).role() == Role::Leader);
    assert!(leader.is_some(), "3 handed over to 1 or 2; ignored by 1: {:?}", net.node(1).ignored());
    assert!(net.node(3).is_removed());
}

/// Found by the simulator (seed 1294 of `leader sim --membership-percent 100`, liveness): a
/// learner promoted before its log held the entry that promoted it (or even the one that
/// added it) took itself for a non-voter and refused every vote — but the candidate's
/// membership counts it, so a cluster of {1, 2} whose leader stepped down right after
/// promoting 2 could never elect anyone. Thesis §4.1: a server answers votes without
/// consulting its own configuration (its vote counts only where the candidate's membership
/// makes it a voter). Here: a cluster of one grows to two and its leader loses touch at once.
#[test]
fn a_server_that_does_not_know_it_was_promoted_still_votes() {
    let mut net = cluster(&[1], &[2]);
    lead(&mut net, 1);
    net.node(1).propose_membership(learner(2, false)).unwrap();
    net.run();
    heartbeats(&mut net, 1);
    net.down = vec![NodeId(2)];
    net.node(1).propose_membership(MembershipChange::Promote { pid: NodeId(2) }).unwrap();
    for _ in 0..3 * E {
        net.node(1).tick(); // check-quorum: 2 is silent, so 1 steps down
        net.run();
    }
    assert_ne!(net.node(1).role(), Role::Leader);
    assert_eq!(learners(net.node(2)), [2], "2 does not know it was promoted");
    net.down = vec![];
    for _ in 0..10 * E {
        net.node(1).tick();
        net.run();
    }
    assert_eq!(net.node(1).role(), Role::Leader, "2 voted for 1: {:?}", net.node(2).vote_log());
    assert_eq!(voters(net.node(2)), [1, 2]);
}

/// Found by the simulator (seed 1294 with every seed changing the membership, and seed 63 of
/// the 3-server hunt settings without a bug once non-members answered votes): a learner was
/// promoted (within `promote_lag`, by default 1000 entries) before its log held even the entry
/// that added it, so it took itself for a non-member and refused the votes the leader's
/// membership then counted. A learner is promoted — automatically or on request — only once
/// it holds the membership in force.
#[test]
fn a_learner_is_promoted_only_once_it_holds_the_membership_that_lists_it() {
    let mut nodes = vec![Raft::new(Options { promote_lag: 1000, ..options(1, &[], false) }, HardState::default())];
    nodes.push(Raft::new(options(2, &[1], true), HardState::default()));
    let mut net = Net::new(nodes);
    lead(&mut net, 1);
    net.down = vec![NodeId(2)];
    net.node(1).propose_membership(learner(2, true)).unwrap();
    heartbeats(&mut net, 1);
    assert_eq!(learners(net.node(1)), [2], "not promoted: 2 has not received its addition");
    let refused = net.node(1).propose_membership(MembershipChange::Promote { pid: NodeId(2) });
    assert!(
        matches!(&refused, Err(MembershipError::Invalid(why)) if why.contains("has not yet received")),
        "{refused:?}"
    );
    net.down = vec![];
    heartbeats(&mut net, 1);
    heartbeats(&mut net, 1);
    assert_eq!(voters(net.node(1)), [1, 2], "promoted once it holds the membership");
}

/// Found by the simulator (seed 538 of the 3-server hunt settings, liveness): once the leader
/// compacted past a learner's addition, the membership's entry index read 0, and the rule
/// above let through a learner whose log ended before that entry. The leader promoted it, lost
/// touch, and could never be elected again: the new voter, not knowing it is a member, refused
/// its votes (`answers_votes`). What a learner must hold is then the log up to the compacted
/// index (the entry, or the snapshot recording the membership). Here: 2 has caught up to
/// entry 2 of the leader's log, its addition is at 4, and the leader compacts up to 4.
#[test]
fn a_learner_is_not_promoted_after_compaction_before_it_holds_its_addition() {
    let leader = Options { promote_lag: 1000, entries_per_message_max: 1, in_flight_max: 1, ..options(1, &[], false) };
    let mut net = Net::new(vec![
        Raft::new(leader, HardState::default()),
        Raft::new(options(2, &[1], true), HardState::default()),
    ]);
    lead(&mut net, 1);
    write(&mut net, 1, b"a");
    write(&mut net, 1, b"b");
    let added = net.node(1).propose_membership(learner(2, true)).unwrap();
    assert_eq!(added, LogIndex(4));
    // One message at a time until 2 holds entry 2 (its answer reaches 1), then 2 goes silent.
    net.flush();
    while net.node(2).log().last_index() < LogIndex(2) {
        let (from, out) = net.queue.pop_front().expect("1 replicates to 2");
        net.node(out.to.0).step(from, out.message);
        net.flush();
    }
    let answers: Vec<_> = net.queue.drain(..).filter(|(from, _)| *from == NodeId(2)).collect();
    for (from, out) in answers {
        net.node(out.to.0).step(from, out.message);
    }
    assert_eq!(net.node(1).progress(NodeId(2)).map(|p| p.match_index), Some(LogIndex(2)));
    net.down = vec![NodeId(2)];
    net.run();
    let term = net.node(1).current_term();
    net.node(1).set_snapshot(added, term, 1);
    net.node(1).compact(added);
    assert_eq!(learners(net.node(1)), [2], "the compacted addition stays in force");
    for _ in 0..3 {
        net.node(1).tick(); // to a heartbeat: 2 is within the lag, and heard from recently
        net.run();
    }
    assert_eq!(learners(net.node(1)), [2], "not promoted: 2's log ends before its addition");
    let refused = net.node(1).propose_membership(MembershipChange::Promote { pid: NodeId(2) });
    assert!(matches!(&refused, Err(MembershipError::Invalid(why)) if why.contains("(log up to 4)")), "{refused:?}");
}
