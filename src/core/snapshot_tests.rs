//! Unit tests of compaction and InstallSnapshot (§7) in the core: exact messages for exact
//! inputs, the chunk window, resumption, the progress timeout, and the follower's rules.

use super::*;

const E: u32 = 10;
const H: u32 = 3;
const CHUNK: u64 = SNAPSHOT_CHUNK_BYTES_MAX as u64;

fn options(id: u64, peers: &[u64]) -> Options {
    let mut options = Options::new(NodeId(id), peers.iter().map(|&p| NodeId(p)).collect(), E, H, id * 31 + 7);
    options.pre_vote = false;
    options.leader_stickiness = false;
    options
}

fn entries(from: u64, to: u64, term: u64) -> Vec<Entry> {
    (from..=to).map(|i| Entry { term: Term(term), index: LogIndex(i), data: format!("e{i}").into_bytes() }).collect()
}

fn hard(term: u64, commit: u64) -> HardState {
    HardState { current_term: Term(term), voted_for: None, commit_index: LogIndex(commit) }
}

/// Handle every Ready synchronously; return the messages.
fn flush(r: &mut Raft) -> Vec<Outgoing> {
    let mut out = Vec::new();
    while r.has_ready() {
        let ready = r.ready();
        out.extend(ready.messages);
        r.advance();
    }
    out
}

/// A leader of term 2 (ids 1..=3) whose log holds 1..=100 (term 1) plus its no-op, committed
/// and compacted through 90 behind a snapshot at 95 of `image` bytes.
fn compacted_leader(image: u64) -> Raft {
    let log = RaftLog::from_entries(entries(1, 100, 1));
    let mut r = Raft::restore(options(1, &[2, 3]), hard(1, 100), log);
    while r.role() != Role::Candidate {
        r.tick();
    }
    let term = r.current_term();
    r.step(NodeId(2), Message::RequestVoteResponse(RequestVoteResponse { term, vote_granted: true }));
    assert_eq!(r.role(), Role::Leader);
    flush(&mut r);
    // Follower 2 acknowledges the no-op: everything is committed and applicable; follower 3
    // never answered (it is the one that falls behind).
    let ack = AppendEntriesResponse {
        term,
        success: true,
        match_index: LogIndex(101),
        conflict_index: LogIndex(0),
        conflict_term: Term(0),
    };
    r.step(NodeId(2), Message::AppendEntriesResponse(ack));
    flush(&mut r);
    assert_eq!(r.last_applied(), LogIndex(101));
    r.set_snapshot(LogIndex(95), Term(1), image);
    r.compact(LogIndex(90));
    r
}

fn chunks(out: &[Outgoing], to: u64) -> Vec<(u64, usize)> {
    out.iter()
        .filter(|o| o.to == NodeId(to))
        .filter_map(|o| match &o.message {
            Message::InstallSnapshot(m) => Some((m.offset, snapshot_chunk_len(m.total_len, m.offset))),
            _ => None,
        })
        .collect()
}

fn reject(r: &mut Raft, from: u64, prev: u64, conflict_index: u64) {
    let m = AppendEntriesResponse {
        term: r.current_term(),
        success: false,
        match_index: LogIndex(prev),
        conflict_index: LogIndex(conflict_index),
        conflict_term: Term(0),
    };
    r.step(NodeId(from), Message::AppendEntriesResponse(m));
}

fn chunk_ack(r: &mut Raft, from: u64, next_offset: u64) {
    let m =
        InstallSnapshotResponse { term: r.current_term(), last_index: LogIndex(95), last_term: Term(1), next_offset };
    r.step(NodeId(from), Message::InstallSnapshotResponse(m));
}

#[test]
fn compaction_keeps_the_term_of_the_last_compacted_entry() {
    let r = compacted_leader(1000);
    assert_eq!(r.log().compacted(), (LogIndex(90), Term(1)));
    assert_eq!(r.log().term_at(LogIndex(90)), Some(Term(1)));
    assert_eq!(r.log().term_at(LogIndex(89)), None, "compacted: unknown");
    assert_eq!(r.log().len(), 11);
    assert_eq!(r.last_index(), LogIndex(101));
}

#[test]
fn a_follower_behind_the_compacted_log_is_sent_the_snapshot_in_a_window_of_chunks() {
    let mut r = compacted_leader(10 * CHUNK + 5);
    // Follower 3 lost everything: its rejection points below the log's start.
    reject(&mut r, 3, 100, 1);
    let out = flush(&mut r);
    assert_eq!(
        chunks(&out, 3),
        (0..SNAPSHOT_CHUNKS_IN_FLIGHT).map(|i| (i * CHUNK, CHUNK as usize)).collect::<Vec<_>>(),
        "a window of full chunks, data left for the driver to fill"
    );
    assert!(out.iter().all(|o| !matches!(&o.message, Message::InstallSnapshot(m) if !m.data.is_empty())));
    assert_eq!(r.progress(NodeId(3)).unwrap().state, ProgressState::Snapshot);
    // No heartbeat goes to a follower receiving a snapshot: its consistency check would need
    // a compacted term.
    for _ in 0..H {
        r.tick();
    }
    let out = flush(&mut r);
    assert!(out.iter().all(|o| o.to != NodeId(3) || !matches!(o.message, Message::AppendEntries(_))));
    // One acknowledgement opens the window by one chunk.
    chunk_ack(&mut r, 3, CHUNK);
    let out = flush(&mut r);
    assert_eq!(chunks(&out, 3), vec![(4 * CHUNK, CHUNK as usize)]);
}

#[test]
fn the_last_chunk_is_short_and_nothing_is_sent_past_the_image() {
    let mut r = compacted_leader(CHUNK + 7);
    reject(&mut r, 3, 100, 1);
    let out = flush(&mut r);
    assert_eq!(chunks(&out, 3), vec![(0, CHUNK as usize), (CHUNK, 7)]);
}

#[test]
fn a_transfer_without_progress_is_resent_from_the_last_acknowledged_chunk() {
    let mut r = compacted_leader(10 * CHUNK);
    reject(&mut r, 3, 100, 1);
    flush(&mut r);
    chunk_ack(&mut r, 3, 2 * CHUNK);
    flush(&mut r);
    let mut resent = Vec::new();
    for _ in 0..H {
        r.tick();
        resent.extend(chunks(&flush(&mut r), 3));
    }
    assert_eq!(resent.first(), Some(&(2 * CHUNK, CHUNK as usize)), "from the acknowledged offset: {resent:?}");
    assert_eq!(resent.len() as u64, SNAPSHOT_CHUNKS_IN_FLIGHT);
}

#[test]
fn a_follower_holding_more_of_the_same_snapshot_makes_the_leader_resume_there() {
    let mut r = compacted_leader(10 * CHUNK);
    reject(&mut r, 3, 100, 1);
    flush(&mut r);
    // A previous leader got it to 7 chunks: the follower says so at the first chunk.
    chunk_ack(&mut r, 3, 7 * CHUNK);
    let out = flush(&mut r);
    assert_eq!(
        chunks(&out, 3),
        vec![(7 * CHUNK, CHUNK as usize), (8 * CHUNK, CHUNK as usize), (9 * CHUNK, CHUNK as usize)]
    );
}

#[test]
fn an_offset_past_the_image_is_counted_invalid() {
    let mut r = compacted_leader(CHUNK);
    reject(&mut r, 3, 100, 1);
    flush(&mut r);
    chunk_ack(&mut r, 3, CHUNK + 1);
    assert_eq!(r.ignored().invalid[Invalid::SnapshotChunkInvalid as usize], 1);
}

#[test]
fn installation_acknowledged_at_the_snapshot_index_resumes_replication_after_it() {
    let mut r = compacted_leader(CHUNK);
    reject(&mut r, 3, 100, 1);
    flush(&mut r);
    let term = r.current_term();
    let ack = AppendEntriesResponse {
        term,
        success: true,
        match_index: LogIndex(95),
        conflict_index: LogIndex(0),
        conflict_term: Term(0),
    };
    r.step(NodeId(3), Message::AppendEntriesResponse(ack));
    let p = r.progress(NodeId(3)).unwrap();
    assert_eq!((p.state, p.match_index), (ProgressState::Replicate, LogIndex(95)));
    let out = flush(&mut r);
    let append = out.iter().find_map(|o| match &o.message {
        Message::AppendEntries(m) if o.to == NodeId(3) => Some(m.clone()),
        _ => None,
    });
    let append = append.expect("entries after the snapshot follow");
    assert_eq!((append.prev_log_index, append.prev_log_term), (LogIndex(95), Term(1)));
    assert_eq!(append.entries.first().map(|e| e.index), Some(LogIndex(96)));
}

fn follower() -> Raft {
    let mut r = Raft::restore(options(2, &[1, 3]), hard(2, 10), RaftLog::from_entries(entries(1, 10, 1)));
    flush(&mut r);
    r
}

fn chunk(offset: u64, data: &[u8], total: u64, last_index: u64) -> Message {
    Message::InstallSnapshot(InstallSnapshot {
        term: Term(2),
        leader_id: NodeId(1),
        last_index: LogIndex(last_index),
        last_term: Term(2),
        total_len: total,
        offset,
        data: data.to_vec(),
        crc: 0,
    })
}

fn take(r: &mut Raft) -> (Vec<SnapshotChunk>, Option<SnapshotInstall>, Vec<Outgoing>) {
    let ready = r.ready();
    r.advance();
    (ready.snapshot_chunks, ready.install, ready.messages)
}

fn next_offset(out: &[Outgoing]) -> Option<u64> {
    out.iter().find_map(|o| match &o.message {
        Message::InstallSnapshotResponse(m) => Some(m.next_offset),
        _ => None,
    })
}

#[test]
fn a_follower_takes_chunks_in_order_answers_what_it_holds_and_installs_when_told_the_image_is_good() {
    let mut r = follower();
    r.step(NodeId(1), chunk(0, b"abc", 6, 50));
    let (written, install, out) = take(&mut r);
    assert_eq!(written.len(), 1);
    assert!(!written[0].last && install.is_none());
    assert_eq!(next_offset(&out), Some(3));
    assert_eq!(r.leader_id(), Some(NodeId(1)), "a chunk is contact from the leader");
    // A duplicate and a chunk from the future are not written; the answer says 3 again.
    r.step(NodeId(1), chunk(0, b"abc", 6, 50));
    r.step(NodeId(1), chunk(5, b"f", 6, 50));
    let (written, _, out) = take(&mut r);
    assert!(written.is_empty());
    assert!(out.iter().all(|o| next_offset(std::slice::from_ref(o)) == Some(3)));
    r.step(NodeId(1), chunk(3, b"def", 6, 50));
    let (written, _, out) = take(&mut r);
    assert!(written[0].last);
    assert_eq!(next_offset(&out), Some(6));
    // The driver checked the image: the core adopts it and discards its log (no entry 50).
    assert!(r.snapshot_received(LogIndex(50), Term(2), Some(r.membership().clone())));
    let (_, install, out) = take(&mut r);
    assert_eq!(install, Some(SnapshotInstall { index: LogIndex(50), term: Term(2), retain_log: false }));
    assert_eq!((r.commit_index(), r.last_applied(), r.last_index()), (LogIndex(50), LogIndex(50), LogIndex(50)));
    let acked = out
        .iter()
        .any(|o| matches!(&o.message, Message::AppendEntriesResponse(m) if m.success && m.match_index == LogIndex(50)));
    assert!(acked, "{out:?}");
}

#[test]
fn a_bad_image_is_discarded_and_the_transfer_starts_over() {
    let mut r = follower();
    r.step(NodeId(1), chunk(0, b"abc", 3, 50));
    take(&mut r);
    assert!(!r.snapshot_received(LogIndex(50), Term(2), None));
    let (_, install, out) = take(&mut r);
    assert!(install.is_none());
    assert_eq!(next_offset(&out), Some(0));
    assert_eq!(r.ignored().invalid[Invalid::SnapshotImageInvalid as usize], 1);
    assert_eq!(r.last_index(), LogIndex(10), "the log is untouched");
}

#[test]
fn a_snapshot_at_or_below_the_commit_index_is_acknowledged_not_installed() {
    let mut r = follower();
    let m = InstallSnapshot { last_index: LogIndex(10), last_term: Term(1), ..base() };
    r.step(NodeId(1), Message::InstallSnapshot(m));
    let (written, _, out) = take(&mut r);
    assert!(written.is_empty(), "nothing to receive: entry 10 is committed here");
    let acked = out
        .iter()
        .any(|o| matches!(&o.message, Message::AppendEntriesResponse(m) if m.success && m.match_index == LogIndex(10)));
    assert!(acked);
}

#[test]
fn a_snapshot_of_an_entry_the_log_holds_keeps_the_entries_after_it() {
    let log = RaftLog::from_entries(entries(1, 10, 1));
    let mut r = Raft::restore(options(2, &[1, 3]), hard(2, 3), log);
    flush(&mut r);
    let m = Message::InstallSnapshot(InstallSnapshot {
        term: Term(2),
        leader_id: NodeId(1),
        last_index: LogIndex(6),
        last_term: Term(1),
        total_len: 1,
        offset: 0,
        data: vec![7],
        crc: 0,
    });
    r.step(NodeId(1), m);
    take(&mut r);
    assert!(r.snapshot_received(LogIndex(6), Term(1), Some(r.membership().clone())));
    let (_, install, _) = take(&mut r);
    assert_eq!(install, Some(SnapshotInstall { index: LogIndex(6), term: Term(1), retain_log: true }));
    assert_eq!(r.last_index(), LogIndex(10));
    assert_eq!(r.log().compacted(), (LogIndex(6), Term(1)));
}

#[test]
fn appends_below_the_snapshot_are_trimmed_to_what_follows_it() {
    let mut r = Raft::restore(options(2, &[1, 3]), hard(2, 50), RaftLog::from_snapshot(LogIndex(50), Term(2), vec![]));
    flush(&mut r);
    let m = AppendEntries {
        term: Term(2),
        leader_id: NodeId(1),
        prev_log_index: LogIndex(40),
        prev_log_term: Term(1),
        entries: entries(41, 52, 2),
        leader_commit: LogIndex(52),
    };
    r.step(NodeId(1), Message::AppendEntries(m));
    let out = flush(&mut r);
    assert_eq!(r.last_index(), LogIndex(52));
    let ack = out.iter().find_map(|o| match &o.message {
        Message::AppendEntriesResponse(m) => Some((m.success, m.match_index)),
        _ => None,
    });
    assert_eq!(ack, Some((true, LogIndex(52))));
}

#[test]
fn invalid_chunks_are_dropped_and_counted() {
    let mut r = follower();
    let cases: Vec<(InstallSnapshot, Invalid)> = vec![
        (InstallSnapshot { leader_id: NodeId(3), ..base() }, Invalid::LeaderIdMismatch),
        (InstallSnapshot { last_index: LogIndex(0), ..base() }, Invalid::LogPositionInvalid),
        (InstallSnapshot { last_term: Term(3), ..base() }, Invalid::LogPositionInvalid),
        (InstallSnapshot { last_index: LogIndex(INDEX_MAX.0 + 1), ..base() }, Invalid::LogPositionInvalid),
        (InstallSnapshot { data: vec![], ..base() }, Invalid::SnapshotChunkInvalid),
        (InstallSnapshot { offset: 9, ..base() }, Invalid::SnapshotChunkInvalid),
        (InstallSnapshot { offset: u64::MAX, ..base() }, Invalid::SnapshotChunkInvalid),
        (
            InstallSnapshot { data: vec![0; SNAPSHOT_CHUNK_BYTES_MAX + 1], total_len: u64::MAX, ..base() },
            Invalid::SnapshotChunkInvalid,
        ),
        // Entry 5 is committed here with term 1: a snapshot claiming term 2 there is a lie.
        (InstallSnapshot { last_index: LogIndex(5), ..base() }, Invalid::OverwritesCommitted),
    ];
    for (m, reason) in cases {
        let before = r.ignored().invalid[reason as usize];
        r.step(NodeId(1), Message::InstallSnapshot(m.clone()));
        assert_eq!(r.ignored().invalid[reason as usize], before + 1, "{m:?}");
        assert!(r.ready().snapshot_chunks.is_empty(), "{m:?}");
        r.advance();
    }
    assert_eq!(r.current_term(), Term(2));
}

fn base() -> InstallSnapshot {
    InstallSnapshot {
        term: Term(2),
        leader_id: NodeId(1),
        last_index: LogIndex(50),
        last_term: Term(2),
        total_len: 10,
        offset: 0,
        data: vec![1, 2, 3],
        crc: 0,
    }
}

#[test]
fn once_every_byte_is_acknowledged_the_last_chunk_is_repeated_until_the_install_is_acknowledged() {
    // Found by the simulator (seed 314): the follower's acknowledgement of the install was
    // lost, and the leader, with every byte acknowledged, went silent towards it for good.
    let mut r = compacted_leader(CHUNK + 10);
    reject(&mut r, 3, 100, 1);
    flush(&mut r);
    chunk_ack(&mut r, 3, CHUNK + 10);
    assert!(chunks(&flush(&mut r), 3).is_empty(), "nothing left to send");
    let mut repeated = Vec::new();
    for _ in 0..H {
        r.tick();
        repeated.extend(chunks(&flush(&mut r), 3));
    }
    assert_eq!(repeated, vec![(CHUNK, 10)], "the last chunk, as a keep-alive");
}

#[test]
fn a_transfer_nothing_of_which_arrived_moves_to_a_newer_snapshot() {
    // Seen with the Python peer: a follower down when its transfer began was later sent that
    // first, stale snapshot, and then the current one.
    let mut r = compacted_leader(3 * CHUNK);
    reject(&mut r, 3, 100, 1);
    flush(&mut r);
    r.set_snapshot(LogIndex(100), Term(1), 2 * CHUNK);
    let mut sent = Vec::new();
    for _ in 0..H {
        r.tick();
        sent.extend(flush(&mut r).into_iter().filter_map(|o| match o.message {
            Message::InstallSnapshot(m) if o.to == NodeId(3) => Some((m.last_index, m.offset)),
            _ => None,
        }));
    }
    assert_eq!(sent, vec![(LogIndex(100), 0), (LogIndex(100), CHUNK)]);
    // A transfer that made progress keeps its snapshot (the follower would lose what it has).
    let mut r = compacted_leader(3 * CHUNK);
    reject(&mut r, 3, 100, 1);
    flush(&mut r);
    chunk_ack(&mut r, 3, CHUNK);
    flush(&mut r);
    r.set_snapshot(LogIndex(100), Term(1), 2 * CHUNK);
    for _ in 0..H {
        r.tick();
        flush(&mut r);
    }
    assert_eq!(r.progress(NodeId(3)).unwrap().snapshot.map(|s| s.index), Some(LogIndex(95)));
}

#[test]
fn a_follower_that_lost_its_log_is_replicated_to_again_after_saying_so_twice() {
    // Found measuring a wiped server on an idle cluster: its rejections of the heartbeat at
    // its old match index looked stale (seed 12's rule) and it was never sent anything.
    let mut r = compacted_leader(CHUNK);
    let term = r.current_term();
    let wiped = AppendEntriesResponse {
        term,
        success: false,
        match_index: LogIndex(101),
        conflict_index: LogIndex(1),
        conflict_term: Term(0),
    };
    r.step(NodeId(2), Message::AppendEntriesResponse(wiped.clone()));
    r.step(NodeId(2), Message::AppendEntriesResponse(wiped.clone()));
    assert!(chunks(&flush(&mut r), 2).is_empty(), "once, or duplicated, may be an old answer");
    assert_eq!(r.progress(NodeId(2)).unwrap().match_index, LogIndex(101));
    for _ in 0..H {
        r.tick(); // the next heartbeat round
    }
    flush(&mut r);
    r.step(NodeId(2), Message::AppendEntriesResponse(wiped));
    assert_eq!(chunks(&flush(&mut r), 2).first(), Some(&(0, CHUNK as usize)), "again a round later: its log is gone");
    assert_eq!(r.progress(NodeId(2)).unwrap().match_index, LogIndex(0));
}
