//! Snapshots in the core (§7): compaction of the log behind a durable snapshot, and
//! InstallSnapshot both ways — the leader streaming its snapshot image in chunks to a follower
//! whose next entries it no longer holds, the follower accepting chunks in order and adopting
//! the snapshot once the runtime has checked the whole image.
//!
//! The core never touches the bytes of an image it sends: its chunks leave with empty `data`
//! and the driver fills them from the image the runtime holds ([`snapshot_chunk_len`] says how
//! long each is). Received chunks go out in [`Ready::snapshot_chunks`](super::Ready) for the
//! runtime to write. Flow control and resumption are decided here, so they are tested like
//! every other rule: at most [`SNAPSHOT_CHUNKS_IN_FLIGHT`] chunks unacknowledged per follower;
//! when nothing was acknowledged for a heartbeat interval, the chunks in flight are sent again
//! (a timeout on progress, not on the whole transfer); a follower answers every chunk with how
//! much of that snapshot it holds, so a transfer offered again — by a restarted or new leader,
//! or after losses — continues from there.

use super::membership::Membership;
use super::message::{
    snapshot_chunk_len, AppendEntriesResponse, InstallSnapshot, InstallSnapshotResponse, Message,
    SNAPSHOT_CHUNK_BYTES_MAX,
};
use super::progress::ProgressState;
use super::raft::Raft;
use super::ready::{Invalid, Role, SnapshotChunk, SnapshotInstall};
use super::types::{LogIndex, NodeId, Term};

/// Chunks sent and not yet acknowledged, per follower: 1 MiB in flight keeps a fast link busy
/// over a round trip, and bounds what a slow follower makes the leader send again.
pub const SNAPSHOT_CHUNKS_IN_FLIGHT: u64 = 4;

/// The leader's latest durable snapshot image, as the runtime reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Last index the snapshot covers.
    pub index: LogIndex,
    /// Term of that entry.
    pub term: Term,
    /// Size of the image in bytes.
    pub total_len: u64,
}

/// A follower's partly received snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Incoming {
    /// Who sent the last chunk (answers go there).
    pub leader: NodeId,
    pub index: LogIndex,
    pub term: Term,
    pub total_len: u64,
    /// Bytes held contiguously from 0.
    pub next_offset: u64,
}

impl Incoming {
    fn complete(&self) -> bool {
        self.next_offset == self.total_len
    }
}

impl Raft {
    /// The runtime holds a durable snapshot image ending at (`index`, `term`), `total_len`
    /// bytes: from now on a follower that needs entries at or before the log's start is sent
    /// this one. Transfers already under way keep their snapshot.
    pub fn set_snapshot(&mut self, index: LogIndex, term: Term, total_len: u64) {
        assert!(index.0 >= 1 && term.0 >= 1 && total_len >= 1, "a snapshot covers at least one entry");
        if self.snapshot.is_some_and(|s| s.index > index) {
            return;
        }
        self.snapshot = Some(SnapshotInfo { index, term, total_len });
    }

    /// The snapshot this server sends to followers that are too far behind, if any.
    pub fn snapshot(&self) -> Option<SnapshotInfo> {
        self.snapshot
    }

    /// Drop the log entries up to `upto`: a durable snapshot covers them (the caller keeps
    /// `upto` at or below the last applied index, and below that by as many entries as it
    /// wants to keep for followers that are a little behind).
    pub fn compact(&mut self, upto: LogIndex) {
        self.log.compact(upto);
        // No-ops when `upto` is applied, as it must be. Were it not (a bug the simulator
        // plants), the core would from now on treat entries it never applied, perhaps not
        // even committed, as applied and committed — exactly the damage such a bug does.
        self.last_applied = self.last_applied.max(upto);
        self.commit_index = self.commit_index.max(upto);
        self.assert_invariants();
    }

    /// Count an invalid message the runtime dropped before stepping the core (a chunk whose
    /// checksum failed): one set of counters for every reason.
    pub fn count_invalid(&mut self, reason: Invalid) {
        self.ignored.count_invalid(reason);
    }

    /// The runtime holds every chunk of the snapshot (`index`, `term`) and checked the whole
    /// image: `ok` when it decodes and names that snapshot. Then the core adopts it (§7
    /// receiver steps 5–8): the log keeps the entries after it if it holds its last entry,
    /// else starts over from it; the next Ready carries the install and, waiting for it to be
    /// durable, the acknowledgement of `index`. A bad image is discarded and the transfer
    /// starts over. Returns true when the snapshot was adopted (the next Ready installs it).
    /// `membership` is the one the image records (None: the image is damaged).
    pub fn snapshot_received(&mut self, index: LogIndex, term: Term, membership: Option<Membership>) -> bool {
        let ok = membership.is_some();
        let Some(incoming) = self.incoming.filter(|i| (i.index, i.term) == (index, term) && i.complete()) else {
            return false; // superseded by a newer transfer meanwhile
        };
        self.incoming = None;
        if !ok {
            self.ignored.count_invalid(Invalid::SnapshotImageInvalid);
            log::warn!("{}: snapshot {index} (term {term}) from {} is damaged; asking again", self.id, incoming.leader);
            let reply =
                InstallSnapshotResponse { term: self.current_term, last_index: index, last_term: term, next_offset: 0 };
            self.send(incoming.leader, Message::InstallSnapshotResponse(reply));
            return false;
        }
        let (offset, _) = self.log.compacted();
        let older = index <= self.commit_index && !self.bugs().install_older_snapshot;
        if older || index <= offset || self.pending_install() {
            // What it covers is committed here already (the log or an installed snapshot
            // holds it): installing it would move the state machine backwards.
            self.acknowledge_snapshot(incoming.leader, index);
            return false;
        }
        let retain_log = self.log.restore_snapshot(index, term, membership.expect("checked: the image is good"));
        self.sync_membership();
        log::info!(
            "{}: installing snapshot {index} (term {term}) from {}; log {}",
            self.id,
            incoming.leader,
            if retain_log { "kept after it" } else { "discarded" }
        );
        self.commit_index = self.commit_index.max(index);
        self.last_applied = index;
        self.install = Some(SnapshotInstall { index, term, retain_log });
        self.acknowledge_snapshot(incoming.leader, index);
        self.assert_invariants();
        true
    }

    /// True while an adopted snapshot has not been taken in a Ready yet.
    fn pending_install(&self) -> bool {
        self.install.is_some()
    }

    /// The snapshot image (`index`, `term`) the driver was asked to read for `peer` is gone
    /// (superseded and deleted): restart that transfer with the current snapshot.
    pub fn snapshot_unavailable(&mut self, peer: NodeId, index: LogIndex, term: Term) {
        let current = self.snapshot;
        let Some(progress) = self.progress.get_mut(&peer) else { return };
        let Some(send) = progress.snapshot.filter(|s| (s.index, s.term) == (index, term)) else { return };
        match current.filter(|c| (c.index, c.term) != (send.index, send.term)) {
            Some(c) => progress.send_snapshot(c.index, c.term, c.total_len),
            None => return, // the current one: the progress timeout tries again
        }
        self.send_snapshot_chunks(peer);
    }

    /// §7: tell the leader the follower's log now matches through `index`.
    fn acknowledge_snapshot(&mut self, leader: NodeId, index: LogIndex) {
        let reply = AppendEntriesResponse {
            term: self.current_term,
            success: true,
            match_index: index,
            conflict_index: LogIndex(0),
            conflict_term: Term(0),
        };
        self.send(leader, Message::AppendEntriesResponse(reply));
    }

    /// Follower: one chunk of a leader's snapshot (after the term rule).
    pub(super) fn handle_install_snapshot(&mut self, from: NodeId, m: InstallSnapshot) {
        if !self.hear_from_leader(from, "InstallSnapshot") {
            return;
        }
        let (offset, _) = self.log.compacted();
        let have = m.last_index <= offset || (m.last_index <= self.commit_index && !self.bugs().install_older_snapshot);
        if have {
            self.acknowledge_snapshot(from, m.last_index);
            return;
        }
        let same = |i: &Incoming| (i.index, i.term, i.total_len) == (m.last_index, m.last_term, m.total_len);
        if !self.incoming.as_ref().is_some_and(same) {
            if m.offset != 0 {
                // A transfer we hold nothing of: start it from the beginning.
                self.reply_chunk(from, &m, 0);
                return;
            }
            self.incoming = Some(Incoming {
                leader: from,
                index: m.last_index,
                term: m.last_term,
                total_len: m.total_len,
                next_offset: 0,
            });
        }
        let incoming = self.incoming.as_mut().expect("set above");
        incoming.leader = from;
        if m.offset == incoming.next_offset && !incoming.complete() {
            incoming.next_offset += m.data.len() as u64;
            let last = incoming.complete();
            self.snapshot_chunks.push(SnapshotChunk {
                index: m.last_index,
                term: m.last_term,
                offset: m.offset,
                data: m.data,
                last,
            });
        }
        // Out of order, a duplicate, or the image is complete and being checked: say how much
        // is held, and the leader continues (or waits) from there.
        let next = incoming.next_offset;
        let reply = InstallSnapshotResponse {
            term: self.current_term,
            last_index: m.last_index,
            last_term: m.last_term,
            next_offset: next,
        };
        self.send(from, Message::InstallSnapshotResponse(reply));
    }

    fn reply_chunk(&mut self, to: NodeId, m: &InstallSnapshot, next_offset: u64) {
        let reply = InstallSnapshotResponse {
            term: self.current_term,
            last_index: m.last_index,
            last_term: m.last_term,
            next_offset,
        };
        self.send(to, Message::InstallSnapshotResponse(reply));
    }

    /// Leader: a follower says how much of a snapshot it holds.
    pub(super) fn handle_install_snapshot_response(&mut self, from: NodeId, m: InstallSnapshotResponse) {
        if self.role != Role::Leader {
            return;
        }
        let Some(send) = self.progress.get_mut(&from).and_then(|p| p.snapshot.as_mut()) else {
            self.ignored.stale_response += 1;
            return;
        };
        if (send.index, send.term) != (m.last_index, m.last_term) {
            self.ignored.stale_response += 1;
            return;
        }
        if m.next_offset > send.total_len {
            self.ignored.count_invalid(Invalid::SnapshotChunkInvalid);
            return;
        }
        send.idle_ticks = 0;
        if m.next_offset < send.acked || m.next_offset > send.sent {
            // The follower lost what it had (rewind), or holds more than this leader sent
            // (a transfer offered again: resume).
            send.sent = m.next_offset;
        }
        send.acked = m.next_offset;
        self.send_snapshot_chunks(from);
    }

    /// Leader: `peer` needs entries that are compacted; stream the snapshot instead.
    pub(super) fn start_snapshot_send(&mut self, peer: NodeId) {
        let Some(info) = self.snapshot else {
            // Compaction follows a durable snapshot, which the runtime reports first.
            log::error!("{}: {peer} needs compacted entries but no snapshot is known", self.id);
            return;
        };
        log::info!(
            "{}: sending snapshot {} (term {}, {} bytes) to {peer}",
            self.id,
            info.index,
            info.term,
            info.total_len
        );
        if let Some(progress) = self.progress.get_mut(&peer) {
            progress.send_snapshot(info.index, info.term, info.total_len);
        }
        self.send_snapshot_chunks(peer);
    }

    /// Send `peer` the next chunks of its transfer, within the window.
    pub(super) fn send_snapshot_chunks(&mut self, peer: NodeId) {
        let window = SNAPSHOT_CHUNKS_IN_FLIGHT * SNAPSHOT_CHUNK_BYTES_MAX as u64;
        let (term, id) = (self.current_term, self.id);
        let Some(send) = self.progress.get_mut(&peer).and_then(|p| p.snapshot.as_mut()) else { return };
        let mut out = Vec::new();
        // `sent` is below `acked` when the last chunk is repeated as a keep-alive.
        while send.sent < send.total_len && send.sent.saturating_sub(send.acked) < window {
            out.push(InstallSnapshot {
                term,
                leader_id: id,
                last_index: send.index,
                last_term: send.term,
                total_len: send.total_len,
                offset: send.sent,
                data: Vec::new(), // filled by the driver from the image
                crc: 0,
            });
            send.sent += snapshot_chunk_len(send.total_len, send.sent) as u64;
        }
        for m in out {
            self.send(peer, Message::InstallSnapshot(m));
        }
    }

    /// Leader, every tick: a transfer without progress for a heartbeat interval sends its
    /// unacknowledged chunks again (the follower also needs to hear from the leader that
    /// often, or it campaigns); once every byte is acknowledged and the follower is checking
    /// and installing, the last chunk is repeated as a keep-alive it answers cheaply.
    pub(super) fn tick_snapshot_sends(&mut self) {
        let heartbeat = self.options.heartbeat_ticks;
        let current = self.snapshot;
        let mut resend = Vec::new();
        for (peer, progress) in self.progress.iter_mut() {
            let Some(send) = progress.snapshot.as_mut().filter(|_| progress.state == ProgressState::Snapshot) else {
                continue;
            };
            send.idle_ticks += 1;
            let newer = current.filter(|c| c.index > send.index);
            if let (Some(c), true) = (newer, send.idle_ticks >= heartbeat && send.acked == 0) {
                // Nothing of the old one arrived (the follower is down or cut off): when it
                // answers, send it the newest snapshot rather than one that is already stale.
                progress.send_snapshot(c.index, c.term, c.total_len);
                resend.push(*peer);
            } else if send.idle_ticks >= heartbeat {
                send.idle_ticks = 0;
                send.sent = send.acked;
                if send.acked >= send.total_len {
                    let chunk = SNAPSHOT_CHUNK_BYTES_MAX as u64;
                    send.sent = (send.total_len - 1) / chunk * chunk;
                }
                resend.push(*peer);
            }
        }
        for peer in resend {
            self.send_snapshot_chunks(peer);
        }
    }
}
