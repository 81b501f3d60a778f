//! The driver's half of snapshots (§7): when to take one, the order that makes it safe to
//! compact, filling the chunks the core sends, and the follower's side of a transfer — writing
//! chunks, checking the complete image, restoring the state machine once the install is
//! durable.
//!
//! Taking a snapshot never stalls the loop: [`StateMachine::snapshot`] only freezes a view
//! (the KV store's shards are copy-on-write), the job serializes it and writes the image on
//! another thread ([`Io::take_snapshot`]), and the rename into place and the deletion of old
//! WAL segments are a write like any other, on the writer thread, in order with the log's
//! writes. Only then does the core drop the entries from memory: until the snapshot is
//! durable the log is the only copy of them.

use super::{Driver, Io, Waiting, WriteRequest};
use crate::core::{
    snapshot_chunk_len, Entry, IndexRange, Invalid, LogIndex, Membership, Message, NodeId, Outgoing, RaftLog,
    SnapshotChunk,
};
use crate::kv::StateMachine;
use crate::storage::{Snapshot, SnapshotMeta, SNAPSHOT_CONFIG_BYTES_MAX};

/// When a server takes a snapshot of its state machine and compacts its log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Take a snapshot once this many entries were applied since the last one (0: never by
    /// count).
    pub entries: u64,
    /// Take a snapshot once this many command bytes were applied since the last one (0: never
    /// by size).
    pub bytes: u64,
    /// Entries kept in the log behind a snapshot, so a follower that is a little behind gets
    /// entries rather than the whole snapshot.
    pub trailing: u64,
}

impl Default for SnapshotPolicy {
    /// Every 100,000 entries or 64 MiB of commands, keeping 10,000 entries: memory and disk stay
    /// within a few tens of MB of log at any write rate (at 100 B commands), a follower that
    /// missed a second or so of full load still catches up from the log, and at full load a
    /// snapshot is taken every second or two — far less work than the writes themselves.
    fn default() -> Self {
        SnapshotPolicy { entries: 100_000, bytes: 64 << 20, trailing: 10_000 }
    }
}

/// A snapshot for the writer to make durable (see [`WriteRequest::snapshot`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotWrite {
    /// Which snapshot.
    pub meta: SnapshotMeta,
    /// True: the image received from the leader (the incoming image, not yet synced nor
    /// renamed); false: the one this server took ([`Io::take_snapshot`], already synced).
    pub received: bool,
    /// False: discard the whole log (§7 step 7: it does not contain the snapshot's last entry).
    pub retain_log: bool,
}

/// A snapshot this server took, on its way to being the durable one.
#[derive(Debug)]
pub(super) struct Taken {
    meta: SnapshotMeta,
    image_len: u64,
    compact_to: LogIndex,
}

/// Snapshot bookkeeping of one driver.
#[derive(Debug)]
pub(super) struct Snapshots {
    policy: SnapshotPolicy,
    /// Index of the last snapshot taken or installed.
    last: LogIndex,
    /// Command bytes applied since.
    pub(super) applied_bytes: u64,
    /// A snapshot is being taken (job running or its write in flight).
    in_progress: bool,
    /// `leader snapshot`: take one now, whatever the policy says.
    requested: bool,
    /// Size of the last snapshot's image (0: none).
    pub(super) image_len: u64,
}

impl Snapshots {
    pub(super) fn new(policy: SnapshotPolicy, last: LogIndex, image_len: u64) -> Self {
        Snapshots { policy, last, applied_bytes: 0, in_progress: false, requested: false, image_len }
    }

    /// A snapshot is due when asked for, or when a trigger fired and the log since the last
    /// snapshot holds at least a quarter of that snapshot's size in commands: with a large
    /// state (1 M keys: a 128 MB image) a fixed entry count would rewrite the whole state every
    /// few seconds at full load; this way snapshots cost at most four bytes written per byte of
    /// commands, and the log on disk stays within four snapshots' size plus the thresholds.
    pub(super) fn due(&self, applied: LogIndex) -> bool {
        let entries = applied.0.saturating_sub(self.last.0);
        if self.in_progress || entries == 0 {
            return false;
        }
        let fired = (self.policy.entries > 0 && entries >= self.policy.entries)
            || (self.policy.bytes > 0 && self.applied_bytes >= self.policy.bytes);
        self.requested || (fired && self.applied_bytes.saturating_mul(4) >= self.image_len)
    }
}

/// The configuration recorded in a snapshot at `index`: the membership in force there, encoded
/// as a membership entry's data (docs/storage.md; thesis §4: a server restarting from the
/// snapshot has no entries left to read it from).
fn config_bytes(raft: &crate::core::Raft, index: LogIndex) -> Vec<u8> {
    raft.membership_at(index).encode()
}

/// The membership a snapshot file's configuration records: an encoded [`Membership`], or, in
/// files written before memberships changed at runtime, the sorted voter pids (bincode
/// `Vec<u64>`).
pub fn snapshot_membership(config: &[u8]) -> Result<Membership, String> {
    match Membership::decode(config) {
        Some(decoded) => decoded.map_err(|e| format!("its membership does not decode: {e:?}")),
        None => {
            let voters: Vec<u64> = crate::codec::decode(config, SNAPSHOT_CONFIG_BYTES_MAX)
                .map_err(|e| format!("its configuration is neither a membership nor a voter list: {e:?}"))?;
            if voters.is_empty() || voters.contains(&0) {
                return Err(format!("its voter list {voters:?} is empty or names pid 0"));
            }
            Ok(Membership::of_voters(voters.into_iter().map(NodeId)))
        }
    }
}

/// The core's log as recovered from storage: after the snapshot (its position and membership),
/// the durable entries. The one place the node and the simulator build it.
pub fn recovered_log(snapshot: Option<&SnapshotMeta>, entries: Vec<Entry>) -> Result<RaftLog, String> {
    let Some(meta) = snapshot else {
        return Ok(RaftLog::from_entries(entries));
    };
    let mut log = RaftLog::from_snapshot(meta.last_index, meta.last_term, entries);
    log.set_snapshot_membership(snapshot_membership(&meta.config)?);
    Ok(log)
}

impl<M: StateMachine, T> Driver<M, T> {
    /// Step the core with a message from `from`, after the checks only the driver can make
    /// (a chunk's checksum: the core does not hash).
    pub fn step(&mut self, from: NodeId, message: Message) {
        if let Message::InstallSnapshot(m) = &message {
            if crc32fast::hash(&m.data) != m.crc {
                self.raft.count_invalid(Invalid::SnapshotChunkChecksum);
                log::warn!("{}: dropped a snapshot chunk from {from} with a bad checksum", self.raft.id());
                return;
            }
        }
        self.raft.step(from, message);
    }

    /// Take a snapshot at the next opportunity, whatever the policy says (`leader snapshot`).
    pub fn request_snapshot(&mut self, io: &mut impl Io<T>) {
        self.snapshots.requested = true;
        // Now, not at the next apply: an idle cluster applies nothing more.
        self.maybe_take_snapshot(io);
    }

    /// Index of the last snapshot this server took or installed (0: none).
    pub fn last_snapshot(&self) -> LogIndex {
        self.snapshots.last
    }

    /// True while a snapshot is being taken.
    pub fn snapshot_in_progress(&self) -> bool {
        self.snapshots.in_progress
    }

    /// Send one message, filling a snapshot chunk's bytes from the image first.
    pub(super) fn send(&mut self, out: Outgoing, io: &mut impl Io<T>) {
        let Outgoing { to, mut message } = out;
        if let Message::InstallSnapshot(m) = &mut message {
            if m.data.is_empty() {
                let len = snapshot_chunk_len(m.total_len, m.offset);
                match io.read_snapshot(m.last_index, m.last_term, m.offset, len) {
                    Some(data) if data.len() == len => {
                        m.crc = crc32fast::hash(&data);
                        m.data = data;
                    }
                    _ => {
                        self.raft.snapshot_unavailable(to, m.last_index, m.last_term);
                        return;
                    }
                }
            }
        }
        if let Message::LeaderCheck(m) = &message {
            self.reads.round_sent(m.term, m.round, io.now());
        }
        io.send(to, message);
    }

    /// Follower: write a chunk; after the last, check the whole image and tell the core.
    pub(super) fn receive_chunk(&mut self, chunk: SnapshotChunk, io: &mut impl Io<T>) {
        io.receive_snapshot_chunk(&chunk);
        if !chunk.last {
            return;
        }
        let checked = io.received_snapshot().and_then(|snapshot| {
            let named = (snapshot.meta.last_index, snapshot.meta.last_term);
            if named != (chunk.index, chunk.term) {
                return Err(format!(
                    "the image holds snapshot {named:?}, the chunks named {:?}",
                    (chunk.index, chunk.term)
                ));
            }
            let membership = snapshot_membership(&snapshot.meta.config)?;
            Ok((snapshot, membership))
        });
        match checked {
            Ok((snapshot, membership)) => {
                if self.raft.snapshot_received(chunk.index, chunk.term, Some(membership)) {
                    self.received = Some(snapshot); // installed by the next Ready
                }
            }
            Err(reason) => {
                log::warn!("{}: received snapshot image refused: {reason}", self.raft.id());
                self.raft.snapshot_received(chunk.index, chunk.term, None);
            }
        }
    }

    /// The install of a received snapshot is durable: replace the state machine's state.
    pub(super) fn restore(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.last_index;
        let data = snapshot.data;
        if let Err(reason) = self.state_machine.restore(&data) {
            // The image passed its checksum and names the right snapshot, so the leader's state
            // machine wrote bytes ours refuses (another version?): nothing safe is left to do.
            panic!("server {}: the state machine refused snapshot {index}: {reason}", self.raft.id());
        }
        self.applied = index;
        self.snapshots.last = index;
        self.snapshots.applied_bytes = 0;
        self.snapshots.image_len = image_len(&snapshot.meta, data.len());
        self.raft.set_snapshot(index, snapshot.meta.last_term, self.snapshots.image_len);
    }

    /// Take a snapshot if one is due (after applying).
    pub(super) fn maybe_take_snapshot(&mut self, io: &mut impl Io<T>) {
        if !self.snapshots.due(self.applied) {
            return;
        }
        let mut index = self.applied;
        if self.bugs().compact_past_commit {
            index = index.max(self.raft.log().persisted()); // names entries it never applied
        }
        let Some(term) = self.raft.log().term_at(index) else { return };
        let meta = SnapshotMeta { last_index: index, last_term: term, config: config_bytes(&self.raft, index) };
        log::info!("{}: taking a snapshot at index {index}", self.raft.id());
        self.snapshots.in_progress = true;
        self.snapshots.requested = false;
        let job = self.state_machine.snapshot();
        let job: crate::kv::SnapshotJob =
            if self.bugs().snapshot_without_sessions { Box::new(move || strip_sessions(job())) } else { job };
        io.take_snapshot(meta, job);
    }

    /// The snapshot `meta` is written (synced, under a temporary name) and `image_len` bytes
    /// long: make it the durable snapshot and compact the log behind it, in order with the
    /// log's writes. Call [`Driver::drive`] after.
    pub fn snapshot_taken(&mut self, meta: SnapshotMeta, image_len: u64, io: &mut impl Io<T>) {
        let compact_to = LogIndex(meta.last_index.0.saturating_sub(self.snapshots.policy.trailing));
        let compact_to = compact_to.max(self.raft.log().compacted().0);
        io.write(WriteRequest {
            truncate_from: None,
            entries: Vec::new(),
            hard_state: None,
            sync: true,
            snapshot: Some(super::SnapshotWrite { meta: meta.clone(), received: false, retain_log: true }),
            compact_to: Some(compact_to),
        });
        self.waiting.push_back(Waiting {
            submitted: true,
            messages: Vec::new(),
            committed: IndexRange::EMPTY,
            hard_state: None,
            soft_state: None,
            last_entry: None,
            restore: None,
            taken: Some(Taken { meta, image_len, compact_to }),
        });
    }

    /// A snapshot this server took is durable and the storage compacted: so may the core.
    pub(super) fn adopted(&mut self, taken: Taken) {
        let Taken { meta, image_len, compact_to } = taken;
        self.snapshots.in_progress = false;
        if meta.last_index <= self.snapshots.last {
            return; // a received snapshot overtook it
        }
        self.snapshots.last = meta.last_index;
        self.snapshots.applied_bytes = 0;
        self.snapshots.image_len = image_len;
        self.raft.set_snapshot(meta.last_index, meta.last_term, image_len);
        if compact_to > self.raft.log().compacted().0 {
            self.raft.compact(compact_to);
        }
    }
}

/// Size of the image of a snapshot with `meta` and `data_len` bytes of state.
/// (docs/storage.md: header, configuration, data, CRC-32).
pub fn image_len(meta: &SnapshotMeta, data_len: usize) -> u64 {
    (crate::storage::SNAPSHOT_HEADER_LEN + meta.config.len() + data_len + 4) as u64
}

/// The planted bug `snapshot_without_sessions`: the KV store's snapshot, sessions removed.
fn strip_sessions(data: Vec<u8>) -> Vec<u8> {
    crate::kv::without_sessions(&data).unwrap_or(data)
}
