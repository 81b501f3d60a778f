//! The vote log names the rule behind each decision on a vote request (vote_log.rs).

use super::*;

fn server(id: u64, pre_vote: bool, stickiness: bool, log: RaftLog) -> Raft {
    let peers = (1..=3).filter(|&p| p != id).map(NodeId).collect();
    let mut options = Options::new(NodeId(id), peers, 10, 3, id);
    options.pre_vote = pre_vote;
    options.leader_stickiness = stickiness;
    Raft::restore(options, HardState::default(), log)
}

fn ask(term: u64, candidate: u64, last_index: u64, last_term: u64) -> RequestVote {
    RequestVote {
        term: Term(term),
        candidate_id: NodeId(candidate),
        last_log_index: LogIndex(last_index),
        last_log_term: Term(last_term),
    }
}

fn verdicts(r: &Raft) -> Vec<(u64, u64, VoteKind, VoteVerdict)> {
    r.vote_log().iter().map(|v| (v.candidate.0, v.term.0, v.kind, v.verdict)).collect()
}

#[test]
fn each_vote_decision_is_recorded_with_its_reason() {
    let log = RaftLog::from_entries(vec![Entry { term: Term(2), index: LogIndex(1), data: vec![] }]);
    let mut r = server(1, false, false, log);
    r.step(NodeId(2), Message::RequestVote(ask(3, 2, 0, 0)));
    r.step(NodeId(3), Message::RequestVote(ask(3, 3, 1, 2)));
    r.step(NodeId(3), Message::RequestVote(ask(4, 3, 1, 2)));
    r.step(NodeId(2), Message::RequestVote(ask(4, 2, 1, 2)));
    r.step(NodeId(2), Message::RequestVote(ask(1, 2, 0, 0)));
    r.step(NodeId(2), Message::PreVote(ask(4, 2, 1, 2)));
    r.step(NodeId(2), Message::PreVote(ask(5, 2, 0, 0)));
    r.step(NodeId(3), Message::TransferVote(ask(5, 3, 1, 2)));
    assert_eq!(
        verdicts(&r),
        [
            (2, 3, VoteKind::Vote, VoteVerdict::StaleLog),
            (3, 3, VoteKind::Vote, VoteVerdict::Granted),
            (3, 4, VoteKind::Vote, VoteVerdict::Granted),
            (2, 4, VoteKind::Vote, VoteVerdict::AlreadyVoted(NodeId(3))),
            (2, 1, VoteKind::Vote, VoteVerdict::StaleTerm),
            (2, 4, VoteKind::PreVote, VoteVerdict::TermNotAhead),
            (2, 5, VoteKind::PreVote, VoteVerdict::StaleLog),
            (3, 5, VoteKind::Transfer, VoteVerdict::Granted),
        ]
    );
}

#[test]
fn a_vote_ignored_for_a_live_leader_says_so_and_ages_with_ticks() {
    let mut r = server(1, true, true, RaftLog::default());
    let heartbeat = AppendEntries {
        term: Term(1),
        leader_id: NodeId(2),
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        entries: vec![],
        leader_commit: LogIndex(0),
    };
    r.step(NodeId(2), Message::AppendEntries(heartbeat));
    r.step(NodeId(3), Message::PreVote(ask(2, 3, 0, 0)));
    r.tick();
    r.tick();
    let log = r.vote_log();
    assert_eq!(verdicts(&r), [(3, 2, VoteKind::PreVote, VoteVerdict::LeaderAlive)]);
    assert_eq!(log[0].ticks_ago, 2);
    assert_eq!(log[0].verdict.describe(), "ignored: the leader is still alive");
}

#[test]
fn the_log_keeps_only_the_latest_decisions() {
    let mut r = server(1, false, false, RaftLog::default());
    for term in 1..=(VOTE_LOG_LEN as u64 + 3) {
        r.step(NodeId(2), Message::RequestVote(ask(term, 2, 0, 0)));
    }
    let log = r.vote_log();
    assert_eq!(log.len(), VOTE_LOG_LEN);
    assert_eq!(log[0].term, Term(4), "the oldest three were dropped");
    assert!(log.iter().all(|v| v.verdict == VoteVerdict::Granted));
}

#[test]
fn elections_started_and_won_are_counted() {
    let mut r = server(1, false, false, RaftLog::default());
    assert_eq!(r.elections(), (0, 0));
    while r.role() != Role::Candidate {
        r.tick();
    }
    assert_eq!(r.elections(), (1, 0));
    let granted = Message::RequestVoteResponse(RequestVoteResponse { term: r.current_term(), vote_granted: true });
    r.step(NodeId(2), granted);
    assert_eq!(r.role(), Role::Leader);
    assert_eq!(r.elections(), (1, 1));
}
