#!/usr/bin/env python3
"""A voting Raft peer for a `leader` cluster, written from docs/wire.md (sections 2-4).

    python3 peer.py --pid N --config FILE [--data-dir DIR] [--no-campaign] [--no-pre-vote]
                    [--no-client] [--joining] [--cluster-key FILE] [--verbose]

It is a full member of the cluster: it votes, replicates the log and, unless --no-campaign is
given, campaigns when it hears from no leader and may become leader. It keeps the log only: it
has no state machine, so it applies nothing and accepts no commands nor reads. A leader that
cannot serve must hand over (docs/wire.md §4 rule 10), so when it wins an election it does at
once: as soon as a follower's log holds its no-op it sends that follower TimeoutNow, and if no
higher term reaches it within election_timeout_ms it tries the next up-to-date follower (round
and round). Meanwhile clients get NotLeader naming that follower (or no leader, before one is
chosen).

Leadership transfer (thesis §3.10; Message tags 8 TimeoutNow and 9 TransferVote, rule 9): a
TimeoutNow of its term from the leader it follows (or of a higher term) makes it campaign at
once -- term + 1, no pre-vote -- with TransferVote instead of RequestVote; with --no-campaign
it ignores TimeoutNow (it never stands for election; the leader gives up on it after an
election timeout). As a voter it answers a TransferVote exactly as a RequestVote, but never
ignores one under leader stickiness. LeaderCheck (tag 10, rule 11) is leader contact, as an
AppendEntries is, answered LeaderCheckResponse with its round; a ReadIndex (tag 12, rule 12) is
answered with index 0 (it has no state machine to read, and hands leadership over anyway).
Client requests: Read and Propose get NotLeader (the leader, or the hand-over target);
TransferLeadership, to its leader, is answered Transferred once a leader of a later term is
known (Unavailable if it is not the one asked for, or none within two election timeouts);
Snapshot and FetchSnapshot serve the snapshot it holds (snapshot.bin).

Sockets: a PULL bound at its `url` (ZMQ_MAXMSGSIZE 1 MiB); one PUSH per peer (IMMEDIATE=1,
LINGER=0, SNDHWM 16), every send DONTWAIT, a full queue or missing connection being a lost
message; unless --no-client, a ROUTER at its client endpoint answering Status requests (and
Propose with NotLeader, Counters with the counts of `drops` below), so `leader status` shows
it. With a cluster key (the config's
cluster_key_file, or --cluster-key), every frame in and out carries an HMAC-SHA256 tag
(leader_wire.seal/unseal); frames whose tag does not verify are dropped and counted (bad_mac).
Raft messages with a term above 2^63 - 1 are ignored, as the Rust servers do.

Pre-vote (Raft thesis §9.6; Message tags 4 PreVote and 5 PreVoteResponse). On an election
timeout it does not raise its term: it sends PreVote {term + 1, ...} to every peer, keeps term,
vote and role (it still reports "follower"), and only when a majority (itself included) grants
does it start the real election (term + 1, vote for itself, RequestVote). --no-pre-vote campaigns
at once, as before. As a voter it answers PreVotes without changing its term, vote, role or
timer: granted iff the term is above its own, candidate_id is the sender, and the log is at least
as up to date. Leader stickiness (thesis §4.2.3): while it leads, or has had an AppendEntries from
the leader of its term within the last election_timeout_ms (the minimum, not the randomized
timeout), it ignores -- does not answer, does not adopt the term of -- every PreVote and every
RequestVote of a higher term. A server that predates pre-vote drops tags 4 and 5 as garbage, so
a pre-voting peer.py cannot become leader with only such servers to ask (use --no-pre-vote
there); as a voter it works with them unchanged, as they never send a PreVote.

Membership (thesis §4; docs/wire.md §4 "Membership entries"): the membership in force is the
latest membership entry in its log, committed or not (a truncation that removes it reverts to
the one before), else the one its snapshot's configuration records, else config.json's
initial_members (default: every server), all voters. Quorums -- votes, pre-votes, commit,
check-quorum -- count the voters in force only. A learner, or a server that is not a member
(left out of initial_members, or started --joining), never campaigns, ignores TimeoutNow and
refuses every RequestVote/PreVote/TransferVote; a voter refuses a candidate that is not a
voter. It opens a PUSH socket to every member the log names (at config.json's url when the
file lists it, else the peer_url the log records), and to the members of the committed membership while a removal is in
flight; it accepts envelopes from members and from config.json's servers. An AppendEntries
carrying a membership entry that does not decode is dropped whole (invalid_membership_entry).
When a committed membership no longer lists it (having listed it), it says so on stderr
("peer: server N: removed from the cluster by the membership entry at index I; stopping"),
sends that turn's answers, and exits 0. It never proposes changes (it never leads for long,
rule 10): ChangeMembership is answered NotLeader (the leader, or the hand-over target), and
Membership (Request tag 9) with the membership in force here.

stdout, one JSON object per line, flushed after each:
    {"role": "follower"|"candidate"|"leader", "term": T}   at start, and whenever its role or
                        its term changes (checked once per batch of inputs, so a candidacy won at
                        once, in a one-server cluster, shows as "leader" only)
    {"app": {"from": P, "msg_id": M, "broadcast": true|false, "payload": "..."}}
                        for each App envelope received; payload is the UTF-8 text, or its
                        lower-case hex if it is not valid UTF-8
    {"drops": {...}}    only in answer to the stdin command `drops`
    {"snapshot": {"loaded": I, "term": T, "bytes": N, "last_index": L}}
                        at start, when the data directory holds a snapshot
    {"snapshot": {"installed": I, "term": T, "bytes": N, "from": P, "log": "kept"|"discarded",
                  "last_index": L}}
                        when a snapshot received from leader P is installed (durably)
    {"transfer": {"to": P, "term": T}}
                        as the leader of term T, when it sends TimeoutNow to P (rule 10)
Nothing else goes to stdout; diagnostics go to stderr (routine ones only with --verbose).

stdin, one command per line (EOF is not an exit; the peer keeps running):
    send <pid> <text>   an App envelope to server <pid>, broadcast=false
    broadcast <text>    one App envelope to every peer, broadcast=true, all with the same msg_id
    drops               print the counts of dropped inbound envelopes (the line above)
    votes               print {"votes": {...}}: counts of pre-votes, votes and transfer votes
                        granted, refused, ignored (stickiness), of pre-campaigns, campaigns and
                        transfer campaigns (TimeoutNow obeyed) started, TimeoutNows ignored, and
                        hand-overs (TimeoutNow sent)
msg_id starts at 1 and increases by one per send/broadcast command. <text> is everything
after the single space that follows `send <pid>` / `broadcast`, sent as UTF-8.

SIGTERM or SIGINT (or its removal from the membership): close the sockets and exit 0. Exit 2: bad arguments or config; exit 1:
the data directory is in use or unreadable, or the PULL socket cannot bind.

Data directory (default `<config data_dir>/<pid>`, i.e. `<config dir>/data/<pid>`; created):

    LOCK          an exclusive flock held while running (one process per directory)
    state.json    {"current_term": T, "voted_for": P or null} -- replaced atomically: written
                  to state.json.tmp, fsynced, renamed over state.json, directory fsynced.
                  Missing = term 0, no vote.
    snapshot.bin  the latest snapshot installed from a leader: the image exactly as received
                  (docs/storage.md's LDSN snapshot file), kept opaque -- there is no state machine
                  to restore. Checked on start (a damaged one is refused: the log after it may
                  not reach back). snapshot.bin.incoming holds an image being received; removed
                  on start (the transfer starts over).
    raft.log      the log, append-only: the 8 bytes b"LPYLOG2\\n", u64 LE base_index, u64 LE
                  base_term, u32 LE CRC-32 of those 16 bytes (the snapshot the log continues;
                  0, 0 without one), then one record per entry:
                      u32 LE  n, the length of the payload
                      u32 LE  CRC-32 (zlib.crc32, IEEE) of the payload
                      n bytes payload: the Entry exactly as on the wire
                              (u64 term, u64 index, u64 data length, data)
                  Records hold indexes base_index + 1, + 2, ... in order. (A log written
                  before snapshots, magic b"LPYLOG1\\n" and no base, is read as base 0, 0.)
                  Installing a snapshot rewrites the file (raft.log.tmp, fsync, rename,
                  directory fsync) with the new base and the entries kept. A conflicting
                  suffix is removed by truncating the file at the first removed record.
                  On start, an incomplete
                  last record, or a last record whose checksum fails, is a torn write and is cut
                  off; a bad record anywhere else is corruption and the peer refuses to start.

Durability: every batch of inbound messages is handled in memory, then term/vote are saved
(if changed) and the log is fsynced (if changed), and only then do the answers go out. So a
vote is on disk before the RequestVoteResponse leaves, and entries before success = true.
The commit index is kept in memory only (after a restart it is the snapshot's index, and the
rest is relearned from the leader).

Snapshots (Raft §7; Message tags 6 InstallSnapshot and 7 InstallSnapshotResponse): as a
follower it receives a leader's snapshot in chunks (docs/wire.md §4, the InstallSnapshot rules):
chunks at the offset it expects are appended to snapshot.bin.incoming, every chunk is answered
with how much it holds, and the complete image is checked (header, CRC, that it names the
chunks' last_index/last_term), fsynced and renamed over snapshot.bin; then the log keeps the
entries after the snapshot if it holds its last entry, else is discarded, the commit index
becomes at least the snapshot's index, and only then does AppendEntriesResponse{success,
match_index: last_index} leave. As a leader it sends no snapshots (it never compacts its log,
but after installing one its log starts after it): a follower that needs entries only the
snapshot holds gets heartbeats at the snapshot's end and stays behind until a Rust server leads.
"""

import argparse
import dataclasses
import fcntl
import json
import os
import random
import signal
import struct
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import leader_wire as w  # noqa: E402

try:
    import zmq
except ImportError:  # pragma: no cover
    sys.exit("peer.py needs pyzmq: pip install pyzmq")

FOLLOWER, CANDIDATE, LEADER = "follower", "candidate", "leader"
ROLE_CODE = {FOLLOWER: w.Role.FOLLOWER, CANDIDATE: w.Role.CANDIDATE, LEADER: w.Role.LEADER}

PEER_SNDHWM = 16
PULL_RCVHWM = 4096
INBOUND_BATCH_MAX = 256          # envelopes handled before the state is synced and answers sent
ENTRIES_PER_MESSAGE_MAX = 1024   # a leader's AppendEntries: at most this many entries ...
BYTES_PER_MESSAGE_MAX = 512 << 10  # ... and this many data bytes (at least one entry)
LOG_MAGIC = b"LPYLOG2\n"     # raft.log; LPYLOG1 (no base: from index 1) is still read
LOG_MAGIC_V1 = b"LPYLOG1\n"
FETCH_SNAPSHOT_BYTES_MAX = 1 << 20  # a SnapshotChunk answer carries at most 1 MiB (docs/wire.md §5)


class StorageError(Exception):
    pass


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class HardState:
    """current_term and voted_for in state.json, replaced atomically."""

    def __init__(self, directory: str):
        self.path = os.path.join(directory, "state.json")
        self.tmp = self.path + ".tmp"
        self.directory = directory
        self.term, self.voted_for = 0, None
        if os.path.exists(self.path):
            try:
                with open(self.path, "r", encoding="utf-8") as f:
                    d = json.load(f)
                self.term, self.voted_for = int(d["current_term"]), d["voted_for"]
                if self.term < 0 or not (self.voted_for is None or isinstance(self.voted_for, int)):
                    raise ValueError("bad values")
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise StorageError(f"{self.path}: unreadable: {e}") from None

    def save(self, term: int, voted_for) -> None:
        with open(self.tmp, "w", encoding="utf-8") as f:
            json.dump({"current_term": term, "voted_for": voted_for}, f)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(self.tmp, self.path)
        fsync_dir(self.directory)
        self.term, self.voted_for = term, voted_for


class Log:
    """The log in memory and in raft.log (append-only records). After a snapshot (§7) it starts
    at base_index + 1: entries[i] has index base_index + 1 + i, and base_term is the term of the
    entry at base_index (the snapshot's last entry), for the consistency check after it."""

    HEADER = struct.Struct("<II")
    BASE = struct.Struct("<QQI")  # LPYLOG2: base_index, base_term, CRC-32 of those 16 bytes

    def __init__(self, directory: str):
        self.directory = directory
        self.path = os.path.join(directory, "raft.log")
        self.tmp = self.path + ".tmp"
        if os.path.exists(self.tmp):
            os.remove(self.tmp)  # a rewrite that never got renamed: the old raft.log stands
        self.entries = []   # w.Entry, index base_index + 1 + i at position i
        self.offsets = []   # file offset of each entry's record
        # (index, w.Membership) of every membership entry held, in log order (docs/wire.md §4,
        # "Membership entries"): the last is in force, committed or not; a truncation reverts.
        self.memberships = []
        self.base_index, self.base_term = 0, 0
        if not os.path.exists(self.path):
            self._write_file(0, 0, [])
        self._load()
        self.file = open(self.path, "ab")  # O_APPEND: every write goes to the end
        self.dirty = False
        self.persisted_index = self.last_index()

    def _write_file(self, base_index: int, base_term: int, entries) -> None:
        """Replace raft.log durably (temp file, fsync, rename, directory fsync) with a log of
        `entries` after (base_index, base_term)."""
        base = struct.pack("<QQ", base_index, base_term)
        parts = [LOG_MAGIC, base, struct.pack("<I", zlib.crc32(base))]
        for e in entries:
            payload = w.encode_entry(e)
            parts.append(self.HEADER.pack(len(payload), zlib.crc32(payload)) + payload)
        with open(self.tmp, "wb") as f:
            f.write(b"".join(parts))
            f.flush()
            os.fsync(f.fileno())
        os.replace(self.tmp, self.path)
        fsync_dir(self.directory)

    def _load(self) -> None:
        with open(self.path, "rb") as f:
            data = f.read()
        if data[:len(LOG_MAGIC)] == LOG_MAGIC:
            if len(data) < len(LOG_MAGIC) + self.BASE.size:
                raise StorageError(f"{self.path}: truncated header")
            self.base_index, self.base_term, crc = self.BASE.unpack_from(data, len(LOG_MAGIC))
            if zlib.crc32(data[len(LOG_MAGIC):len(LOG_MAGIC) + 16]) != crc:
                raise StorageError(f"{self.path}: bad checksum in the header")
            if (self.base_index == 0) != (self.base_term == 0):
                raise StorageError(f"{self.path}: impossible log start ({self.base_index}, {self.base_term})")
            pos = len(LOG_MAGIC) + self.BASE.size
        elif data[:len(LOG_MAGIC_V1)] == LOG_MAGIC_V1:
            pos = len(LOG_MAGIC_V1)  # written before snapshots: starts at index 1
        else:
            raise StorageError(f"{self.path}: not a peer.py log (bad magic)")
        good_end = pos
        torn = None
        while pos < len(data):
            if pos + self.HEADER.size > len(data):
                torn = "incomplete record header"
                break
            n, crc = self.HEADER.unpack_from(data, pos)
            end = pos + self.HEADER.size + n
            if end > len(data):
                torn = "incomplete record"
                break
            payload = data[pos + self.HEADER.size:end]
            if zlib.crc32(payload) != crc:
                if end == len(data):
                    torn = "bad checksum in the last record"
                    break
                raise StorageError(f"{self.path}: bad checksum in the record at byte {pos}")
            try:
                entry = w.decode_entry(payload)
                membership = w.decode_membership(entry.data)
            except w.WireError as e:
                raise StorageError(f"{self.path}: undecodable record at byte {pos}: {e}") from None
            if entry.index != self.last_index() + 1 or entry.term < self.last_term():
                raise StorageError(f"{self.path}: record at byte {pos} breaks the log order "
                                   f"(index {entry.index}, term {entry.term})")
            if membership is not None:
                self.memberships.append((entry.index, membership))
            self.entries.append(entry)
            self.offsets.append(pos)
            pos = good_end = end
        if torn is not None:
            print(f"peer: {self.path}: {torn} at byte {good_end}: a torn write, cut off", file=sys.stderr)
            with open(self.path, "r+b") as f:
                f.truncate(good_end)
                f.flush()
                os.fsync(f.fileno())
        self.end = good_end

    def last_index(self) -> int:
        return self.base_index + len(self.entries)

    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.base_term

    def term_at(self, index: int):
        """Term of the entry at `index`; 0 for index 0; the snapshot's term at base_index; None
        if there is no such entry (past the end, or compacted into the snapshot)."""
        if index == self.base_index:
            return self.base_term
        if self.base_index < index <= self.last_index():
            return self.entries[index - self.base_index - 1].term
        return None

    def first_index_of_term(self, term: int, start: int) -> int:
        """Walking back from min(start, last index): the first index of the run of `term` (not
        below the first entry held)."""
        index = min(start, self.last_index())
        while index > self.base_index + 1 and self.term_at(index - 1) == term:
            index -= 1
        return index

    def last_index_of_term(self, term: int):
        for e in reversed(self.entries):
            if e.term == term:
                return e.index
            if e.term < term:
                return None
        return self.base_index if self.base_index and self.base_term == term else None

    def append(self, entries) -> None:
        """Append `entries` (membership entries among them already checked to decode)."""
        for e in entries:
            assert e.index == self.last_index() + 1 and e.term >= self.last_term()
            membership = w.decode_membership(e.data)
            if membership is not None:
                self.memberships.append((e.index, membership))  # in force at once (thesis §4.1)
            payload = w.encode_entry(e)
            self.file.write(self.HEADER.pack(len(payload), zlib.crc32(payload)) + payload)
            self.offsets.append(self.end)
            self.end += self.HEADER.size + len(payload)
            self.entries.append(e)
            self.dirty = True

    def truncate_from(self, index: int) -> None:
        """Remove entries index, index + 1, ... (a conflicting suffix)."""
        assert index > self.base_index
        self.file.flush()
        pos = index - self.base_index - 1
        self.end = self.offsets[pos]
        os.ftruncate(self.file.fileno(), self.end)
        del self.entries[pos:]
        del self.offsets[pos:]
        # A membership entry removed with the suffix is no longer in force: the one before is.
        self.memberships = [(i, m) for i, m in self.memberships if i < index]
        self.persisted_index = min(self.persisted_index, self.last_index())
        self.dirty = True

    def restore_snapshot(self, index: int, term: int) -> bool:
        """§7, InstallSnapshot receiver steps 6-7, durably: if the log holds the entry (index,
        term), keep the entries after it (returns True); otherwise discard the whole log
        (False). The log then starts after the snapshot. raft.log is rewritten (temp file,
        fsync, rename, directory fsync), so every entry kept is durable when this returns."""
        assert index > self.base_index
        keep = self.term_at(index) == term
        kept = self.entries[index - self.base_index:] if keep else []
        self.file.close()
        self._write_file(index, term, kept)
        self.entries, self.offsets, self.memberships = [], [], []
        self.base_index, self.base_term = index, term
        self._load()
        self.file = open(self.path, "ab")
        self.dirty = False
        self.persisted_index = self.last_index()
        return keep

    def membership_at(self, index: int):
        """(entry index, membership) of the latest membership entry at or below `index`, or
        None when the log holds none there."""
        for i, m in reversed(self.memberships):
            if i <= index:
                return i, m
        return None

    def sync(self) -> None:
        if self.dirty:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.dirty = False
        self.persisted_index = self.last_index()

    def slice(self, first: int):
        """Entries from `first` (> base_index) for one AppendEntries, within the message limits."""
        out, size = [], 0
        pos = first - self.base_index - 1
        for e in self.entries[pos:pos + ENTRIES_PER_MESSAGE_MAX]:
            if out and size + len(e.data) > BYTES_PER_MESSAGE_MAX:
                break
            out.append(e)
            size += len(e.data)
        return out


class SnapshotStore:
    """The peer's snapshot: the image a leader sent, kept opaque (the peer has no state
    machine), in snapshot.bin; the image being received in snapshot.bin.incoming."""

    def __init__(self, directory: str):
        self.directory = directory
        self.path = os.path.join(directory, "snapshot.bin")
        self.incoming_path = self.path + ".incoming"
        if os.path.exists(self.incoming_path):
            os.remove(self.incoming_path)  # a transfer cut short by a restart: start over
        self.index, self.term, self.size = 0, 0, 0
        # The membership the snapshot's configuration records (thesis §4: a log that starts
        # after the snapshot has no entry left to read it from); None: it records none we read.
        self.membership = None
        self.checked_membership = None  # that of the incoming image, once checked
        if os.path.exists(self.path):
            with open(self.path, "rb") as f:
                image = f.read()
            try:
                img = w.decode_snapshot_image(image)
            except w.SnapshotImageError as e:
                # Refuse rather than start without it: the log after it may not reach back.
                raise StorageError(f"{self.path}: corrupt snapshot {e}") from None
            try:
                self.membership = w.snapshot_membership(img.config)
            except w.WireError as e:
                raise StorageError(f"{self.path}: its membership does not decode: {e}") from None
            self.index, self.term, self.size = img.last_index, img.last_term, len(image)
        self.incoming = None  # the file being written, while a transfer is under way

    def begin(self) -> None:
        """Start receiving a new image (dropping any partial one)."""
        self.abandon()
        self.incoming = open(self.incoming_path, "wb")

    def write(self, data: bytes) -> None:
        self.incoming.write(data)

    def abandon(self) -> None:
        if self.incoming is not None:
            self.incoming.close()
            self.incoming = None
            os.remove(self.incoming_path)

    def check(self, index: int, term: int):
        """The complete incoming image, checked; an error message if it is bad."""
        self.incoming.flush()
        with open(self.incoming_path, "rb") as f:
            image = f.read()
        try:
            img = w.decode_snapshot_image(image, index, term)
        except w.SnapshotImageError as e:
            return str(e)
        try:
            self.checked_membership = w.snapshot_membership(img.config)
        except w.WireError as e:
            return f"its membership does not decode: {e}"
        return None

    def install(self, index: int, term: int) -> None:
        """Make the complete, checked incoming image the snapshot: fsync, rename, dir fsync."""
        f, self.incoming = self.incoming, None
        f.flush()
        os.fsync(f.fileno())
        self.size = f.tell()
        f.close()
        os.replace(self.incoming_path, self.path)
        fsync_dir(self.directory)
        self.index, self.term = index, term
        self.membership, self.checked_membership = self.checked_membership, None


class Peer:
    def __init__(self, config: w.Config, pid: int, data_dir: str, campaign: bool, client: bool, verbose: bool,
                 pre_vote: bool = True, joining: bool = False):
        self.config = config
        self.key = w.load_cluster_key(config.cluster_key_file) if config.cluster_key_file else None
        self.me = pid
        # The bootstrap membership (docs/wire.md §4, "Membership entries" rule 1): config.json's
        # initial_members (default every server), all voters, at config.json's endpoints. A
        # server left out of it (or started --joining) is not yet a member: it never campaigns
        # nor votes, and waits for a leader to add it.
        boot = [p for p in config.bootstrap_members() if p != pid]
        if pid in config.bootstrap_members() and not joining:
            boot.append(pid)
        urls = {s.pid: (s.endpoint, s.client_endpoint) for s in config.servers}
        self.bootstrap = w.Membership.of_voters(boot, urls)
        self.config_peers = [s.pid for s in config.peers(pid)]  # their envelopes are always accepted
        self.peers = []             # the members we send to (sync_membership keeps it right)
        self.removed = False        # a committed membership no longer lists us: stop (rule 4)
        self.campaign = campaign
        self.pre_vote = pre_vote
        self.verbose = verbose
        self.election_s = config.election_timeout_ms / 1000
        self.heartbeat_s = config.heartbeat_ms / 1000

        os.makedirs(data_dir, exist_ok=True)
        self.lock = open(os.path.join(data_dir, "LOCK"), "a")
        try:
            fcntl.flock(self.lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StorageError(f"data directory {data_dir} is in use by another process") from None
        tmp = os.path.join(data_dir, "state.json.tmp")
        if os.path.exists(tmp):
            os.remove(tmp)  # a save that never got renamed: the old state.json stands
        self.log = None
        try:
            self.hard = HardState(data_dir)
            self.log = Log(data_dir)
            self.snap = SnapshotStore(data_dir)
            self.reconcile_snapshot()
        except BaseException:
            if self.log is not None:
                self.log.file.close()
            self.lock.close()
            raise

        # Raft state (Figure 2).
        self.term = self.hard.term
        self.voted_for = self.hard.voted_for
        # Everything a snapshot covers is committed; the rest is relearned from the leader.
        self.commit_index = self.snap.index
        # The snapshot being received: {"key": (last_index, last_term, total_len),
        # "next_offset": bytes held from 0}, or None. In memory only: after a restart the
        # transfer starts over (a chunk at another offset is answered next_offset 0).
        self.incoming = None
        self.snapshot_needed = set()  # followers we could not serve (compacted entries): logged once
        self.role = FOLLOWER
        self.leader_id = None
        self.votes = set()
        # Pre-campaign (thesis §9.6): None when not pre-campaigning, else the peers (ourselves
        # included) that said we could win the election of term + 1. The role stays follower:
        # nothing about us changes until a majority says yes.
        self.pre_votes = None
        # (term, time) of the last AppendEntries from the leader of that term: leader
        # stickiness (thesis §4.2.3) needs to know whether a live leader is heard from.
        self.leader_contact = None
        self.next_index, self.match_index = {}, {}
        self.recent_active = set()
        # Rule 10 (docs/wire.md §4): a leader that cannot serve hands over at once. While we
        # lead: {"target": the follower sent TimeoutNow, or None; "deadline": when to give up
        # on it; "tried": followers already tried; "wanted": a TransferLeadership's `to`}.
        self.handover = None
        # TransferLeadership requests waiting for the new leader: (route, request_id, to,
        # term asked in, deadline).
        self.pending_transfers = []
        now = time.monotonic()
        self.reset_election_timer(now)
        self.heartbeat_due = self.quorum_check_due = now

        self.outbox = []            # (to, Message): sent only after the state is synced
        self.pending_status = []    # ROUTER routes waiting for a Status (or Inspection) answer
        self.started = time.monotonic()
        self.printed = None         # the last (role, term) printed
        self.next_msg_id = 1
        self.drops = {k: 0 for k in ("oversize", "truncated", "garbage", "wrong_version", "wrong_cluster",
                                     "wrong_receiver", "unknown_sender", "bad_mac", "invalid", "conflicting_leader",
                                     "term_too_large", "invalid_snapshot_chunk", "invalid_snapshot_chunk_checksum",
                                     "invalid_snapshot_image", "invalid_membership_entry")}
        self.send_dropped = 0
        # What became of vote requests, for the stdin command `votes` (tests read it to see that
        # a PreVote was answered). "ignored" = not answered because a leader is heard from.
        # Transfers (rule 9, 10): transfer_vote_* answer TransferVotes, transfer_campaigns
        # count TimeoutNows obeyed, timeout_now_ignored those ignored, handovers those sent.
        self.vote_counts = {k: 0 for k in ("pre_vote_granted", "pre_vote_refused", "pre_vote_ignored",
                                           "vote_granted", "vote_refused", "vote_ignored",
                                           "pre_campaigns", "campaigns", "transfer_vote_granted",
                                           "transfer_vote_refused", "transfer_campaigns", "timeout_now_ignored",
                                           "handovers", "refused_not_a_voter", "refused_candidate_not_voter")}

        self.ctx = zmq.Context()
        me = config.server(pid)
        self.pull = self.ctx.socket(zmq.PULL)
        self.pull.setsockopt(zmq.LINGER, 0)
        self.pull.setsockopt(zmq.RCVHWM, PULL_RCVHWM)
        self.pull.setsockopt(zmq.MAXMSGSIZE, w.ENVELOPE_BYTES_MAX)
        self.pull.bind(me.endpoint)
        self.push = {}              # pid -> (endpoint, PUSH socket), one per member we send to
        self.unreachable = set()    # members without a url we could use (warned once)
        self.accepted = []          # senders whose envelopes we accept: members and config.json's
        self.was_member = self.membership().contains(pid)
        self.sync_membership()
        self.router = None
        if client:
            self.router = self.ctx.socket(zmq.ROUTER)
            self.router.setsockopt(zmq.LINGER, 0)
            self.router.setsockopt(zmq.MAXMSGSIZE, w.CLIENT_REQUEST_BYTES_MAX)
            self.router.bind(me.client_endpoint)
        self.log_debug(f"server {pid}: peers at {me.endpoint}, term {self.term}, vote {self.voted_for}, "
                       f"{self.log.last_index()} entries")

    def reconcile_snapshot(self) -> None:
        """At start: the log must continue the snapshot. An install writes the snapshot first,
        then raft.log; after a crash between the two the log still starts before the snapshot,
        and the §7 rule (keep the entries after it if the log holds its last entry, else
        discard the log) is applied again. A log that starts after the snapshot, or at its index
        with another term, cannot come from this peer: refuse to start."""
        snap, log = self.snap, self.log
        if snap.index < log.base_index or (snap.index == log.base_index and snap.term != log.base_term):
            raise StorageError(f"{log.path} starts after ({log.base_index}, {log.base_term}) but the snapshot "
                               f"{snap.path} is ({snap.index}, {snap.term}); the data directory is damaged")
        if snap.index > log.base_index:
            kept = log.restore_snapshot(snap.index, snap.term)
            print(f"peer: {log.path} started before the snapshot {snap.index} (an install cut short): "
                  f"{'kept the entries after it' if kept else 'discarded it'}", file=sys.stderr)

    # -- output ---------------------------------------------------------------------------------

    def log_debug(self, msg: str) -> None:
        if self.verbose:
            print(f"peer {self.me}: {msg}", file=sys.stderr, flush=True)

    def emit(self, obj) -> None:
        try:
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            pass  # nobody reads stdout any more; keep serving the cluster

    def print_role(self) -> None:
        if self.printed != (self.role, self.term):
            self.printed = (self.role, self.term)
            self.emit({"role": self.role, "term": self.term})

    def send_envelope(self, to: int, body) -> bool:
        """Send without blocking; False when the message is lost (Raft tolerates that)."""
        data = w.seal(self.key, w.encode_envelope(w.Envelope(w.WIRE_VERSION, self.config.cluster_id, self.me, to,
                                                             body)))
        if len(data) > w.ENVELOPE_BYTES_MAX:
            self.send_dropped += 1
            print(f"peer: not sending a {len(data)}-byte envelope to {to}: over the 1 MiB limit", file=sys.stderr)
            return False
        if to not in self.push:
            self.send_dropped += 1  # no longer a member: nowhere to send it
            return False
        try:
            self.push[to][1].send(data, zmq.DONTWAIT)
            return True
        except zmq.Again:  # no live connection (IMMEDIATE) or queue full: a lost message
            self.send_dropped += 1
            return False

    def send(self, to: int, message) -> None:
        self.outbox.append((to, message))

    # -- membership (docs/wire.md §4 "Membership entries"; thesis §4) ---------------------------

    def membership(self) -> w.Membership:
        """The membership in force (rule 1): the latest membership entry in the log, committed
        or not (thesis §4.1); with none, the snapshot's; else the bootstrap one."""
        if self.log.memberships:
            return self.log.memberships[-1][1]
        return self.snap.membership if self.snap.membership is not None else self.bootstrap

    def membership_index(self) -> int:
        """Index of the entry holding the membership in force (0: the snapshot's or bootstrap)."""
        return self.log.memberships[-1][0] if self.log.memberships else 0

    def membership_at(self, index: int) -> w.Membership:
        """The membership in force at `index` (at the commit index: the committed one)."""
        found = self.log.membership_at(index)
        if found is not None:
            return found[1]
        return self.snap.membership if self.snap.membership is not None else self.bootstrap

    def is_voter(self, pid=None) -> bool:
        return self.membership().is_voter(self.me if pid is None else pid)

    def quorum(self) -> int:
        """A majority of the voters in force (rule 2: quorums count voters only)."""
        return self.membership().quorum()

    def count_voters(self, pids) -> int:
        m = self.membership()
        return sum(1 for p in set(pids) if m.is_voter(p))

    def voter_peers(self):
        return [p for p in self.peers if self.is_voter(p)]

    def membership_info(self) -> w.MembershipInfo:
        """Response tag 9: the membership in force here, with every member's urls."""
        index = self.membership_index()
        return w.MembershipInfo(index, index <= self.commit_index, list(self.membership().members))

    def peer_endpoint(self, pid: int, *memberships):
        """Where to send to `pid`: config.json's address if the file lists it (where that
        server binds, and what operators edit to move it; as the Rust servers do), else the
        peer_url a membership records (a server added at runtime); None if neither knows."""
        if pid in self.config_peers:
            return self.config.server(pid).endpoint
        for m in memberships:
            member = m.get(pid)
            if member is not None and member.peer_url:
                try:
                    return w._render(w._parse_endpoint(member.peer_url))
                except ValueError as e:
                    print(f"peer: member {pid}'s peer_url {member.peer_url!r} is unusable ({e}); "
                          "trying config.json's", file=sys.stderr)
                break
        return self.config.server(pid).endpoint if pid in self.config_peers else None

    def open_push(self, endpoint: str):
        sock = self.ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, PEER_SNDHWM)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        sock.connect(endpoint)
        return sock

    def sync_membership(self) -> None:
        """Bring peers, sockets and the leader's progress in line with the membership in force;
        called whenever the log or the commit index may have changed it. While a removal is not
        committed the removed server is still sent to (so it learns of it, rule 4); a server
        whose removal is committed stops (`removed`; run() exits once this turn's answers are
        out). Sockets to servers no longer sent to are closed in flush(), after the outbox."""
        in_force, committed = self.membership(), self.membership_at(self.commit_index)
        self.was_member |= in_force.contains(self.me)
        if self.was_member and not in_force.contains(self.me) and not committed.contains(self.me) \
                and not self.removed:
            self.removed = True
            print(f"peer: server {self.me}: removed from the cluster by the membership entry at index "
                  f"{self.membership_index()}; stopping", file=sys.stderr, flush=True)
        targets = set(in_force.pids())
        if self.membership_index() > self.commit_index:
            targets |= set(committed.pids())
        targets.discard(self.me)
        for p in sorted(targets):
            endpoint = self.peer_endpoint(p, in_force, committed)
            have = self.push.get(p)
            if endpoint is None:
                if have is None and p not in self.unreachable:
                    self.unreachable.add(p)
                    print(f"peer: member {p} has no peer url in the log or config.json", file=sys.stderr)
                continue
            if have is None or have[0] != endpoint:
                if have is not None:
                    have[1].close(linger=0)
                self.push[p] = (endpoint, self.open_push(endpoint))
        self.accepted = sorted(set(self.config_peers) | targets)
        targets = sorted(targets)
        if targets == self.peers:
            return
        if self.role == LEADER:
            last = self.log.last_index()
            for p in self.peers:
                if p not in targets:
                    self.send_append(p)  # a committed removal: what it lacks, and the commit index
                    for d in (self.next_index, self.match_index):
                        d.pop(p, None)
                    self.recent_active.discard(p)
            for p in targets:
                if p not in self.next_index:
                    self.next_index[p], self.match_index[p] = last + 1, 0
        self.log_debug(f"members to send to: {targets} (voters {in_force.voters()})")
        self.peers = targets
        if self.role == LEADER:
            for p in self.peers:
                self.send_append(p)

    def close_stale_sockets(self) -> None:
        for p in [p for p in self.push if p not in self.peers]:
            self.push.pop(p)[1].close(linger=0)

    # -- timers and roles -----------------------------------------------------------------------

    def reset_election_timer(self, now: float) -> None:
        self.election_due = now + self.election_s * (1 + random.random())  # in [t, 2t)

    def become_follower(self, term: int, leader, now: float) -> None:
        if term > self.term:
            self.term, self.voted_for = term, None
        self.role, self.leader_id = FOLLOWER, leader
        self.votes.clear()
        self.pre_votes = None
        self.recent_active.clear()
        self.next_index.clear()
        self.match_index.clear()
        self.handover = None
        self.reset_election_timer(now)

    def become_pre_candidate(self, now: float) -> None:
        """Ask whether we could win term + 1, without raising our term (rule 5): a peer that was
        cut off and comes back then cannot depose a healthy leader by its higher term alone."""
        self.role, self.leader_id = FOLLOWER, None
        self.votes.clear()
        self.pre_votes = {self.me}
        self.vote_counts["pre_campaigns"] += 1
        self.reset_election_timer(now)
        self.log_debug(f"pre-campaigning for term {self.term + 1}")
        if self.count_voters(self.pre_votes) >= self.quorum():
            self.become_candidate(now)
            return
        pv = w.PreVote(self.term + 1, self.me, self.log.last_index(), self.log.last_term())
        for p in self.voter_peers():  # only voters vote (rule 2)
            self.send(p, pv)

    def become_candidate(self, now: float, transfer: bool = False) -> None:
        """Term + 1, vote for ourselves, ask every peer. `transfer`: the leader handed over to
        us (TimeoutNow, rule 9): ask with TransferVote, which voters do not ignore as sticky."""
        self.term += 1
        self.voted_for = self.me
        self.role, self.leader_id = CANDIDATE, None
        self.votes = {self.me}
        self.pre_votes = None
        self.vote_counts["transfer_campaigns" if transfer else "campaigns"] += 1
        self.reset_election_timer(now)
        self.log_debug(f"campaigning in term {self.term}{' (leadership transfer)' if transfer else ''}")
        if self.count_voters(self.votes) >= self.quorum():
            self.become_leader(now)
            return
        kind = w.TransferVote if transfer else w.RequestVote
        rv = kind(self.term, self.me, self.log.last_index(), self.log.last_term())
        for p in self.voter_peers():
            self.send(p, rv)

    def become_leader(self, now: float) -> None:
        self.role, self.leader_id = LEADER, self.me
        self.votes.clear()
        self.pre_votes = None
        self.recent_active.clear()
        last = self.log.last_index()
        self.next_index = {p: last + 1 for p in self.peers}
        self.match_index = {p: 0 for p in self.peers}
        # Raft §8: a no-op entry of the new term, so earlier entries can commit with it.
        self.log.append([w.Entry(self.term, last + 1, b"")])
        self.heartbeat_due = now + self.heartbeat_s
        self.quorum_check_due = now + self.election_s
        # We serve nothing (no state machine): hand over as soon as a follower has our no-op.
        self.handover = {"target": None, "deadline": None, "tried": set(), "wanted": None}
        self.log_debug(f"leader of term {self.term}")
        for p in self.peers:
            self.send_append(p)

    def tick(self, now: float) -> None:
        if self.role == LEADER:
            if now >= self.heartbeat_due:
                self.heartbeat_due = now + self.heartbeat_s
                for p in self.peers:
                    self.send_append(p)
            if now >= self.quorum_check_due:
                self.quorum_check_due = now + self.election_s
                # Check quorum (thesis §6.2), as the Rust servers do: a leader that has not
                # heard from a majority for an election timeout steps down.
                if self.count_voters(self.recent_active | {self.me}) < self.quorum():
                    self.log_debug(f"lost contact with a majority in term {self.term}; stepping down")
                    self.become_follower(self.term, None, now)
                self.recent_active.clear()
            self.maybe_hand_over(now)
        elif now >= self.election_due:
            if not self.campaign or not self.is_voter():
                # A learner or a non-member never campaigns (rule 2): it waits to be promoted
                # or added; a voter started --no-campaign never does either.
                self.reset_election_timer(now)
            elif self.pre_vote:
                self.become_pre_candidate(now)
            else:
                self.become_candidate(now)
        self.settle_transfers(now)

    def next_deadline(self) -> float:
        due = [t for _, _, _, _, t in self.pending_transfers]
        if self.role == LEADER:
            h = self.handover
            if h is not None and h["deadline"] is not None:
                due.append(h["deadline"])
            return min([self.heartbeat_due, self.quorum_check_due] + due)
        return min([self.election_due] + due)

    # -- handing over (rules 9 and 10) ----------------------------------------------------------

    def maybe_hand_over(self, now: float, prefer=None) -> None:
        """Rule 10: as a leader that cannot serve, send TimeoutNow to a follower whose log holds
        our last entry (our no-op: we accept no commands), preferring `prefer` (the follower
        that has just caught up: "the first whose match_index reaches it"). If no higher term
        reaches us within an election timeout, try the next follower."""
        h = self.handover
        if self.role != LEADER or h is None:
            return
        if h["target"] is not None:
            if now < h["deadline"]:
                return  # the target is campaigning, or the TimeoutNow was lost: wait and see
            self.log_debug(f"hand-over to {h['target']} did not happen within an election timeout")
            h["tried"].add(h["target"])
            h["target"] = None
        last = self.log.last_index()
        ready = [p for p in self.voter_peers() if self.match_index.get(p, 0) >= last]  # a learner cannot lead
        if h["wanted"] is not None:
            ready = [p for p in ready if p == h["wanted"]]
        if not ready:
            return  # nobody has our last entry yet: an AppendEntriesResponse will call again
        fresh = [p for p in ready if p not in h["tried"]]
        if not fresh:
            h["tried"].clear()  # every up-to-date follower failed once: go round again
            fresh = ready
        target = prefer if prefer in fresh else fresh[0]
        h["target"], h["deadline"] = target, now + self.election_s
        self.vote_counts["handovers"] += 1
        self.log_debug(f"handing leadership of term {self.term} to {target}")
        self.emit({"transfer": {"to": target, "term": self.term}})
        self.send(target, w.TimeoutNow(self.term, self.me))

    def handover_target(self):
        """Where a client should go while we lead: the follower we are handing over to."""
        return self.handover["target"] if self.role == LEADER and self.handover else None

    def settle_transfers(self, now: float) -> None:
        """Answer the TransferLeadership requests whose outcome is known: a leader of a later
        term (Transferred, or Unavailable if it is not the one asked for), or the deadline."""
        waiting = []
        for route, request_id, to, term, deadline in self.pending_transfers:
            if self.role == FOLLOWER and self.leader_id is not None and self.term > term:
                if to is None or to == self.leader_id:
                    self.answer(route, request_id, w.Transferred(self.leader_id, self.term))
                else:
                    self.answer(route, request_id, w.Unavailable(
                        f"server {self.leader_id} leads term {self.term}, not server {to}"))
            elif now >= deadline:
                self.answer(route, request_id, w.Unavailable("leadership transfer abandoned: no new leader "
                                                             "within two election timeouts"))
            else:
                waiting.append((route, request_id, to, term, deadline))
        self.pending_transfers = waiting

    def transfer_request(self, route, request_id: int, to, now: float) -> None:
        """A client's TransferLeadership (Request tag 6): only the leader accepts it."""
        if self.role != LEADER:
            self.answer(route, request_id, w.NotLeader(self.leader_id))
            return
        if to is not None and (to not in self.peers or not self.is_voter(to)):
            why = ("it has no state machine" if to == self.me else
                   "it is a learner" if to in self.peers else "it is not in the cluster")
            self.answer(route, request_id, w.Unavailable(f"cannot hand leadership to server {to}: {why}"))
            return
        h = self.handover
        if to is not None and h["wanted"] != to:
            h["wanted"], h["target"] = to, None  # a new choice: start over with it
            h["tried"].discard(to)
        self.pending_transfers.append((route, request_id, to, self.term, now + 2 * self.election_s))
        self.maybe_hand_over(now)

    # -- Raft messages (docs/wire.md §4) --------------------------------------------------------

    def step(self, frm: int, m, now: float) -> None:
        self.step_message(frm, m, now)
        # The log or the commit index may hold a new membership now (in force once appended).
        self.sync_membership()

    def step_message(self, frm: int, m, now: float) -> None:
        if m.term > w.TERM_MAX:  # forged or corrupt; adopting it would leave no room to grow
            self.drops["term_too_large"] += 1
            return
        if isinstance(m, w.AppendEntries):
            # Membership rule 5: an entry with the magic that does not decode makes the whole
            # message invalid; dropped before it touches the term, the log or the timers.
            for e in m.entries:
                try:
                    w.decode_membership(e.data)
                except w.WireError as err:
                    self.drops["invalid_membership_entry"] += 1
                    print(f"peer: dropped an AppendEntries from {frm}: entry {e.index} is an invalid "
                          f"membership entry ({err})", file=sys.stderr)
                    return
        # Pre-vote messages are handled before rule 1: a PreVote's term is only a question
        # ("could I win term T?"), so adopting it would be the very disruption pre-vote avoids.
        if isinstance(m, w.PreVote):
            self.on_pre_vote(frm, m, now)
            return
        if isinstance(m, w.PreVoteResponse):
            self.on_pre_vote_response(frm, m, now)
            return
        if isinstance(m, w.InstallSnapshot):
            # docs/wire.md "must never send": checked before the chunk touches anything.
            bad = w.check_install_snapshot(frm, m)
            if bad is not None:
                self.drops[bad if bad in self.drops else "invalid"] += 1
                print(f"peer: dropped an InstallSnapshot chunk from {frm}: {bad}", file=sys.stderr)
                return
        if isinstance(m, (w.TimeoutNow, w.LeaderCheck)) and m.leader_id != frm:
            self.drops["invalid"] += 1  # a Rust server counts it as invalid_leader_id
            return
        if isinstance(m, w.RequestVote) and m.term > self.term and self.hears_from_leader(now):
            # Leader stickiness (thesis §4.2.3): while a live leader is heard from, a higher-term
            # RequestVote comes from a server that was cut off; adopting its term would depose
            # the leader for nothing. Ignore it entirely: no term change, no answer.
            self.vote_counts["vote_ignored"] += 1
            self.log_debug(f"ignored a RequestVote for term {m.term} from {frm}: a leader is heard from")
            return
        # Rule 1: terms. (A TransferVote is never ignored as sticky: rule 9.)
        if m.term > self.term:
            leads = isinstance(m, (w.AppendEntries, w.InstallSnapshot, w.TimeoutNow, w.LeaderCheck))
            self.become_follower(m.term, frm if leads else None, now)
        elif m.term < self.term:
            if isinstance(m, (w.RequestVote, w.TransferVote)):
                self.vote_counts["transfer_vote_refused" if isinstance(m, w.TransferVote) else "vote_refused"] += 1
                self.send(frm, w.RequestVoteResponse(self.term, False))
            elif isinstance(m, w.LeaderCheck):
                self.send(frm, w.LeaderCheckResponse(self.term, 0))  # it steps down; round 0 acknowledges none
            elif isinstance(m, w.ReadIndex):
                self.send(frm, w.ReadIndexResponse(self.term, m.id, 0, 0))
            elif isinstance(m, w.AppendEntries):
                self.send(frm, w.AppendEntriesResponse(self.term, False, m.prev_log_index, 0, 0))
            elif isinstance(m, w.InstallSnapshot):
                self.send(frm, w.InstallSnapshotResponse(self.term, m.last_index, m.last_term, 0))
            return  # a stale response is ignored
        if isinstance(m, (w.RequestVote, w.TransferVote)):
            self.on_request_vote(frm, m, now)
        elif isinstance(m, w.TimeoutNow):
            self.on_timeout_now(frm, now)
        elif isinstance(m, w.LeaderCheck):
            self.on_leader_check(frm, m, now)
        elif isinstance(m, w.ReadIndex):
            # Rule 12: we never lead for long and have no state machine to read: refuse (0);
            # the follower asks again where the leader is.
            self.send(frm, w.ReadIndexResponse(self.term, m.id, 0, 0))
        elif isinstance(m, w.RequestVoteResponse):
            if self.role == CANDIDATE and m.vote_granted:
                self.votes.add(frm)
                if self.count_voters(self.votes) >= self.quorum():  # a majority of the voters
                    self.become_leader(now)
        elif isinstance(m, w.AppendEntries):
            self.on_append_entries(frm, m, now)
        elif isinstance(m, w.AppendEntriesResponse):
            self.on_append_entries_response(frm, m, now)
        elif isinstance(m, w.InstallSnapshot):
            self.on_install_snapshot(frm, m, now)
        # An InstallSnapshotResponse, LeaderCheckResponse or ReadIndexResponse: this peer never
        # sends snapshots, leader checks or read requests, so it answers nothing here.

    def on_request_vote(self, frm: int, m: w.RequestVote, now: float) -> None:
        # Rule 2: one vote per term, only for an up-to-date log, only for the sender itself.
        can_vote = self.voted_for is None or self.voted_for == m.candidate_id
        up_to_date = (m.last_log_term, m.last_log_index) >= (self.log.last_term(), self.log.last_index())
        # Membership rule 2 (thesis §4.2.1): only a voter votes, and only for a voter of the
        # membership in force here.
        granted = can_vote and up_to_date and m.candidate_id == frm and self.voters_allow(m.candidate_id)
        if granted:
            self.voted_for = m.candidate_id
            self.reset_election_timer(now)
        kind = "transfer_vote" if isinstance(m, w.TransferVote) else "vote"
        self.vote_counts[f"{kind}_granted" if granted else f"{kind}_refused"] += 1
        self.log_debug(f"vote for {frm} in term {self.term}: {granted}")
        self.send(frm, w.RequestVoteResponse(self.term, granted))  # after the vote is saved

    def voters_allow(self, candidate: int) -> bool:
        """Membership rule 2: False (and counted) when we do not vote or the candidate does not."""
        if not self.is_voter():
            self.vote_counts["refused_not_a_voter"] += 1
            return False
        if not self.is_voter(candidate):
            self.vote_counts["refused_candidate_not_voter"] += 1
            return False
        return True

    def on_timeout_now(self, frm: int, now: float) -> None:
        """Rule 9, as the target: the leader we follow hands over (rule 1 has made the sender
        of a higher term our leader). Campaign at once, without pre-vote, with TransferVotes."""
        if self.role == LEADER:
            self.drops["conflicting_leader"] += 1
            print(f"peer: TimeoutNow from {frm} claims leadership of my term {self.term}", file=sys.stderr)
            return
        if self.role != FOLLOWER or self.leader_id != frm or not self.campaign or not self.is_voter():
            # Not from the leader we follow (a candidate has none), or --no-campaign: we never
            # stand for election, so the leader's transfer runs out and it tries another.
            self.vote_counts["timeout_now_ignored"] += 1
            self.log_debug(f"ignored a TimeoutNow from {frm} in term {self.term}")
            return
        self.become_candidate(now, transfer=True)

    def hear_from_leader(self, frm, now):
        """Contact from the leader of our term (AppendEntries, InstallSnapshot, LeaderCheck):
        follow it (a candidate or pre-candidate stops campaigning) and reset the election timer
        (it counts as leader contact for stickiness, rule 7)."""
        if self.role == CANDIDATE:
            self.become_follower(self.term, frm, now)
        self.pre_votes = None
        self.leader_id = frm
        self.leader_contact = (self.term, now)
        self.reset_election_timer(now)

    def on_leader_check(self, frm: int, m: w.LeaderCheck, now: float) -> None:
        """Rule 11: a LeaderCheck of our term is leader contact, as an AppendEntries is."""
        if self.role == LEADER:
            self.drops["conflicting_leader"] += 1
            print(f"peer: LeaderCheck from {frm} claims leadership of my term {self.term}", file=sys.stderr)
            return
        self.hear_from_leader(frm, now)
        self.send(frm, w.LeaderCheckResponse(self.term, m.round))  # nothing to fsync but a term

    def hears_from_leader(self, now: float) -> bool:
        """True if we lead, or the leader of our term sent an AppendEntries less than the
        (minimum, not randomized) election timeout ago: then nobody needs a new election."""
        if self.role == LEADER:
            return True
        if self.leader_contact is None:
            return False
        term, at = self.leader_contact
        return term == self.term and now - at < self.election_s

    def on_pre_vote(self, frm: int, m: w.PreVote, now: float) -> None:
        # Rule 1 of pre-vote: nothing here changes term, vote, role or timer, so nothing needs
        # persisting before the answer (it still goes through the outbox, which is harmless).
        if self.hears_from_leader(now):
            # Stickiness: no answer at all. A refusal would carry our term, which tells the
            # asker nothing it can use; silence makes it simply try again later.
            self.vote_counts["pre_vote_ignored"] += 1
            self.log_debug(f"ignored a PreVote for term {m.term} from {frm}: a leader is heard from")
            return
        up_to_date = (m.last_log_term, m.last_log_index) >= (self.log.last_term(), self.log.last_index())
        # No "one vote per term" here: a pre-vote promises nothing, so granting several is fine.
        granted = m.term > self.term and m.candidate_id == frm and up_to_date and self.voters_allow(m.candidate_id)
        self.vote_counts["pre_vote_granted" if granted else "pre_vote_refused"] += 1
        self.log_debug(f"pre-vote for {frm} for term {m.term}: {granted}")
        self.send(frm, w.PreVoteResponse(m.term if granted else self.term, granted))

    def on_pre_vote_response(self, frm: int, m: w.PreVoteResponse, now: float) -> None:
        if m.vote_granted:
            # Only a yes for the term we are asking about counts; a late yes from an earlier
            # pre-campaign (a lower term) or one arriving after we moved on is ignored.
            if self.pre_votes is not None and m.term == self.term + 1:
                self.pre_votes.add(frm)
                if self.count_voters(self.pre_votes) >= self.quorum():
                    self.become_candidate(now)
        elif m.term > self.term:
            # The refuser is in a later term than ours (§5.1): we are behind; follow that term.
            self.become_follower(m.term, None, now)

    def on_append_entries(self, frm: int, m: w.AppendEntries, now: float) -> None:
        if self.role == LEADER:
            # Another leader in our term: only a faulty peer can cause it. Never obey it.
            self.drops["conflicting_leader"] += 1
            print(f"peer: AppendEntries from {frm} claims leadership of my term {self.term}", file=sys.stderr)
            return
        if any(e.index != m.prev_log_index + 1 + i or e.term > m.term for i, e in enumerate(m.entries)) or any(
                a.term > b.term for a, b in zip(m.entries, m.entries[1:])) or (
                m.entries and m.entries[0].term < m.prev_log_term):
            self.drops["invalid"] += 1
            return
        # Rule 3: the same term: `frm` leads it.
        if self.role == CANDIDATE:
            self.become_follower(self.term, frm, now)
        self.pre_votes = None  # a leader of our term exists: no election needed (rule 8)
        self.leader_id = frm
        self.leader_contact = (self.term, now)
        self.reset_election_timer(now)
        base = self.log.base_index
        if m.prev_log_index < base:
            # Entries up to the snapshot are committed, so the leader's are the same (§5.4,
            # Leader Completeness): skip them and check the rest against the snapshot's end.
            skip = base - m.prev_log_index
            if len(m.entries) <= skip:
                covered = m.prev_log_index + len(m.entries)
                self.send(frm, w.AppendEntriesResponse(self.term, True, covered, 0, 0))
                return
            m = dataclasses.replace(m, prev_log_index=base, prev_log_term=self.log.base_term,
                                    entries=m.entries[skip:])
        found = self.log.term_at(m.prev_log_index)
        if found != m.prev_log_term:
            if found is None:
                conflict_index, conflict_term = self.log.last_index() + 1, 0
            else:
                conflict_index, conflict_term = self.log.first_index_of_term(found, m.prev_log_index), found
            self.send(frm, w.AppendEntriesResponse(self.term, False, m.prev_log_index, conflict_index, conflict_term))
            return
        new = list(m.entries)
        while new:
            have = self.log.term_at(new[0].index)
            if have is None:
                break
            if have != new[0].term:
                if new[0].index <= self.commit_index:  # §5.4: cannot happen with a correct leader
                    print(f"peer: refusing to truncate committed entry {new[0].index}", file=sys.stderr)
                    self.drops["invalid"] += 1
                    return
                self.log.truncate_from(new[0].index)  # only a conflicting term deletes
                break
            new.pop(0)  # already held, same term: skip
        self.log.append(new)
        last_new = m.prev_log_index + len(m.entries)
        self.commit_index = max(self.commit_index, min(m.leader_commit, last_new))
        self.send(frm, w.AppendEntriesResponse(self.term, True, last_new, 0, 0))  # after the fsync

    def on_install_snapshot(self, frm: int, m: w.InstallSnapshot, now: float) -> None:
        """A chunk of a leader's snapshot, of our term (docs/wire.md §4, InstallSnapshot)."""
        if self.role == LEADER:
            self.drops["conflicting_leader"] += 1
            print(f"peer: InstallSnapshot from {frm} claims leadership of my term {self.term}", file=sys.stderr)
            return
        if m.last_index <= self.commit_index and self.log.term_at(m.last_index) not in (None, m.last_term):
            # §5.4: our committed entry there has another term; no correct leader sends this.
            self.drops["invalid"] += 1
            print(f"peer: snapshot {m.last_index} (term {m.last_term}) from {frm} contradicts my committed log",
                  file=sys.stderr)
            return
        # Contact from the leader of our term, as an AppendEntries is.
        self.hear_from_leader(frm, now)
        if m.last_index <= self.commit_index:
            # We hold it already (committed, in the log or our snapshot): say our log matches.
            self.send(frm, w.AppendEntriesResponse(self.term, True, m.last_index, 0, 0))
            return
        key = (m.last_index, m.last_term, m.total_len)
        if self.incoming is None or self.incoming["key"] != key:
            if m.offset != 0:
                # A transfer we hold nothing of: from the beginning, please.
                self.send(frm, w.InstallSnapshotResponse(self.term, m.last_index, m.last_term, 0))
                return
            self.snap.begin()
            self.incoming = {"key": key, "next_offset": 0}
            self.log_debug(f"receiving snapshot {m.last_index} (term {m.last_term}, {m.total_len} bytes) from {frm}")
        inc = self.incoming
        if m.offset == inc["next_offset"]:
            self.snap.write(m.data)
            inc["next_offset"] += len(m.data)
            if inc["next_offset"] == m.total_len:
                self.snapshot_complete(frm, m)
                return
        # Out of order or a duplicate: not written. Say how much we hold; the leader goes on
        # from there (also when it offers the same snapshot again later).
        self.send(frm, w.InstallSnapshotResponse(self.term, m.last_index, m.last_term, inc["next_offset"]))

    def snapshot_complete(self, frm: int, m: w.InstallSnapshot) -> None:
        """Every byte of the image is here: check it, install it durably, adopt it (§7)."""
        self.incoming = None
        error = self.snap.check(m.last_index, m.last_term)
        if error is not None:
            self.snap.abandon()
            self.drops["invalid_snapshot_image"] += 1
            print(f"peer: snapshot {m.last_index} (term {m.last_term}) from {frm} is damaged ({error}); "
                  "asking again", file=sys.stderr)
            self.send(frm, w.InstallSnapshotResponse(self.term, m.last_index, m.last_term, 0))
            return
        self.snap.install(m.last_index, m.last_term)  # snapshot.bin: fsync, rename, dir fsync
        kept = self.log.restore_snapshot(m.last_index, m.last_term)  # raft.log rewritten durably
        self.commit_index = max(self.commit_index, m.last_index)
        self.emit({"snapshot": {"installed": m.last_index, "term": m.last_term, "bytes": m.total_len,
                                "from": frm, "log": "kept" if kept else "discarded",
                                "last_index": self.log.last_index()}})
        # Durable now: acknowledge the bytes, then (what the leader waits for) the log's match.
        self.send(frm, w.InstallSnapshotResponse(self.term, m.last_index, m.last_term, m.total_len))
        self.send(frm, w.AppendEntriesResponse(self.term, True, m.last_index, 0, 0))

    def send_append(self, p: int) -> None:
        """AppendEntries to `p` from its next_index: the missing entries, or a heartbeat."""
        nxt = self.next_index[p]
        if nxt <= self.log.base_index:
            # `p` needs entries that only our snapshot holds, and this peer sends no snapshots.
            # Keep `p` following with heartbeats at the snapshot's end (it rejects them, and
            # the rejections are ignored as they answer no append we track); a Rust leader
            # will bring it up to date.
            if p not in self.snapshot_needed:
                self.snapshot_needed.add(p)
                print(f"peer: server {p} needs entries up to {nxt}, which only our snapshot "
                      f"{self.log.base_index} holds; peer.py sends no snapshots", file=sys.stderr)
            self.send(p, w.AppendEntries(self.term, self.me, self.log.base_index, self.log.base_term, [],
                                         self.commit_index))
            return
        prev = nxt - 1
        self.send(p, w.AppendEntries(self.term, self.me, prev, self.log.term_at(prev), self.log.slice(nxt),
                                     self.commit_index))

    def on_append_entries_response(self, frm: int, m: w.AppendEntriesResponse, now: float) -> None:
        if self.role != LEADER:
            return
        self.recent_active.add(frm)
        if m.success:
            if m.match_index < self.match_index[frm] or m.match_index > self.log.last_index():
                return  # stale (or nonsense)
            self.match_index[frm] = m.match_index
            self.next_index[frm] = max(self.next_index[frm], m.match_index + 1)
            self.maybe_commit()
            self.maybe_hand_over(now, prefer=frm)
            if self.next_index[frm] <= self.log.last_index():
                self.send_append(frm)
            return
        rejected = m.match_index
        if rejected <= self.match_index[frm] or rejected + 1 != self.next_index[frm]:
            return  # answers an append we no longer care about
        hint = m.conflict_index
        if m.conflict_term > 0:
            last_of_term = self.log.last_index_of_term(m.conflict_term)
            if last_of_term is not None:
                hint = last_of_term + 1
        self.next_index[frm] = min(max(hint, self.match_index[frm] + 1), max(rejected, 1))
        self.send_append(frm)

    def maybe_commit(self) -> None:
        """The highest index on a majority (counting our own only once fsynced) commits if it
        is of our term (§5.4.2)."""
        if self.role != LEADER:
            return
        # Voters only (rule 2): a learner's acknowledgement commits nothing; a leader that is no
        # longer a voter (its removal in flight) does not count itself (rule 4).
        m = self.membership()
        matched = [self.match_index.get(p, 0) for p in m.voters() if p != self.me]
        if m.is_voter(self.me):
            matched.append(self.log.persisted_index)
        if len(matched) < m.quorum():
            return
        candidate = sorted(matched, reverse=True)[m.quorum() - 1]
        if candidate > self.commit_index and self.log.term_at(candidate) == self.term:
            self.commit_index = candidate

    # -- inputs ---------------------------------------------------------------------------------

    def on_frame(self, frame: bytes, now: float) -> None:
        data = w.unseal(self.key, frame)
        if data is None:
            self.drops["bad_mac"] += 1
            self.log_debug(f"dropped a {len(frame)}-byte frame: bad MAC")
            return
        try:
            env = w.open_envelope(data, self.config.cluster_id, self.me, self.accepted)
        except w.WireError as e:
            self.drops[e.reason] += 1
            self.log_debug(f"dropped a {len(data)}-byte envelope: {e}")
            return
        if isinstance(env.body, w.App):
            a = env.body
            try:
                payload = a.payload.decode("utf-8")
            except UnicodeDecodeError:
                payload = a.payload.hex()
            self.emit({"app": {"from": env.from_, "msg_id": a.msg_id, "broadcast": a.broadcast, "payload": payload}})
        else:
            self.step(env.from_, env.body, now)

    def on_client(self) -> None:
        for _ in range(256):
            try:
                frames = self.router.recv_multipart(zmq.DONTWAIT)
            except zmq.Again:
                return
            self.on_request(frames[:-1], frames[-1])

    def on_request(self, route, frame: bytes) -> None:
        """One client request frame from `route` (the ROUTER's routing frames)."""
        body = w.unseal(self.key, frame)
        if body is None:
            self.drops["bad_mac"] += 1  # unauthenticated: no answer at all
            return
        try:
            req = w.decode_client_request(body)
        except w.WireError as e:
            why = {"oversize": "request too large", "truncated": "request truncated"}.get(
                e.reason, "request is not a valid ClientRequest")
            self.answer(route, 0, w.BadRequest(why))
            return
        if req.version != w.CLIENT_WIRE_VERSION:
            self.answer(route, req.request_id, w.BadRequest(
                f"client protocol version {req.version} (this server speaks {w.CLIENT_WIRE_VERSION})"))
        elif req.cluster_id != self.config.cluster_id:
            self.answer(route, req.request_id, w.WrongCluster(self.config.cluster_id))
        elif isinstance(req.body, (w.StatusRequest, w.InspectRequest)):
            self.pending_status.append((route, req.request_id, isinstance(req.body, w.InspectRequest)))
        elif isinstance(req.body, w.CountersRequest):
            # Its own counters (those of the stdin command `drops`), not the Rust names.
            counts = dict(self.drops, send_dropped=self.send_dropped)
            self.answer(route, req.request_id, w.Counters([w.Counter(k, v) for k, v in counts.items()]))
        elif isinstance(req.body, w.TransferLeadership):
            self.transfer_request(route, req.request_id, req.body.to, time.monotonic())
        elif isinstance(req.body, w.SnapshotRequest):
            self.answer(route, req.request_id, self.snapshot_answer())
        elif isinstance(req.body, w.FetchSnapshot):
            self.answer(route, req.request_id, self.fetch_snapshot_answer(req.body))
        elif isinstance(req.body, w.Propose) and not req.body.command:
            self.answer(route, req.request_id, w.BadRequest("empty command"))
        elif isinstance(req.body, w.Read) and not req.body.query:
            self.answer(route, req.request_id, w.BadRequest("empty query"))
        elif isinstance(req.body, w.MembershipRequest):
            self.answer(route, req.request_id, self.membership_info())
        else:
            # A Propose, a Read or a ChangeMembership. No state machine here, and we never
            # lead for long (rule 10): never accept a command, a change nor answer a query;
            # point at the leader if another, or, while we lead, at the follower we hand
            # over to; None: the client pauses and tries another server.
            if self.role == LEADER:
                leader = self.handover_target()
            else:
                leader = self.leader_id if self.leader_id != self.me else None
            self.answer(route, req.request_id, w.NotLeader(leader))

    def inspection(self, status):
        """Request tag 7: our status, OS pid, uptime and counters (this peer keeps no vote log
        nor per-peer contact times: those lists are empty)."""
        counts = dict(self.drops, send_dropped=self.send_dropped)
        uptime_ms = int((time.monotonic() - self.started) * 1000)
        return w.Inspection(status, os.getpid(), uptime_ms, [], [], 0, 0,
                            [w.Counter(k, v) for k, v in counts.items()])

    def snapshot_answer(self):
        """Request tag 3: we apply nothing, so there is nothing to snapshot; the latest
        snapshot installed from a leader is the one we hold."""
        if not self.snap.index:
            return w.BadRequest("nothing to snapshot: no entry applied yet")
        return w.Snapshot(self.snap.index, self.snap.term, self.snap.size)

    def fetch_snapshot_answer(self, r: w.FetchSnapshot):
        """Request tag 4: up to 1 MiB of snapshot.bin from `offset` (docs/wire.md §5)."""
        snap = self.snap
        if not snap.index:
            return w.BadRequest("this server has no snapshot yet")
        if r.index != 0 and (r.index, r.term) != (snap.index, snap.term):
            if r.index > snap.index or (r.index == snap.index and r.term != snap.term):
                return w.BadRequest(f"snapshot {r.index} (term {r.term}) is gone; fetch it again")
            return w.BadRequest(f"snapshot {r.index} (term {r.term}) is no longer the latest "
                                f"({snap.index} term {snap.term}); fetch it again")
        if r.offset > snap.size:
            return w.BadRequest(f"offset {r.offset} is past the image's {snap.size} bytes")
        with open(snap.path, "rb") as f:
            f.seek(r.offset)
            data = f.read(FETCH_SNAPSHOT_BYTES_MAX)
        return w.SnapshotChunk(snap.index, snap.term, snap.size, r.offset, data)

    def answer(self, route, request_id: int, body) -> None:
        data = w.seal(self.key, w.encode_client_response(w.ClientResponse(w.CLIENT_WIRE_VERSION, request_id, body)))
        try:
            self.router.send_multipart(route + [data], zmq.DONTWAIT)
        except zmq.ZMQError:
            pass  # the client is gone; it will time out and retry

    def status(self) -> w.Status:
        # Nothing to apply: everything committed counts as applied.
        return w.Status(self.me, ROLE_CODE[self.role], self.term, self.leader_id, self.voted_for,
                        self.commit_index, self.commit_index, self.log.last_index())

    def on_command(self, line: str) -> None:
        line = line.rstrip("\r")
        if not line.strip():
            return
        cmd, _, rest = line.partition(" ")
        if cmd == "send":
            pid_text, _, text = rest.partition(" ")
            try:
                to = int(pid_text)
            except ValueError:
                print(f"peer: send: {pid_text!r} is not a pid (usage: send <pid> <text>)", file=sys.stderr)
                return
            if to not in self.push:
                print(f"peer: send: {to} is not a peer (peers: {', '.join(map(str, self.peers))})", file=sys.stderr)
                return
            targets, broadcast = [to], False
        elif cmd == "broadcast":
            targets, broadcast, text = list(self.peers), True, rest
        elif cmd == "drops":
            self.emit({"drops": dict(self.drops, send_dropped=self.send_dropped)})
            return
        elif cmd == "votes":
            self.emit({"votes": dict(self.vote_counts)})
            return
        else:
            print(f"peer: unknown command {cmd!r} (send <pid> <text> | broadcast <text> | drops | votes)",
                  file=sys.stderr)
            return
        body = w.App(self.next_msg_id, broadcast, text.encode("utf-8", "surrogateescape"))
        self.next_msg_id += 1
        for to in targets:
            if not self.send_envelope(to, body):
                print(f"peer: app message {body.msg_id} to {to} dropped (no connection or queue full)",
                      file=sys.stderr, flush=True)

    # -- the loop -------------------------------------------------------------------------------

    def flush(self) -> None:
        """Make the state durable, then let out what depends on it."""
        if (self.term, self.voted_for) != (self.hard.term, self.hard.voted_for):
            self.hard.save(self.term, self.voted_for)
        self.log.sync()
        self.maybe_commit()  # our own entries now count
        self.sync_membership()  # a commit may have settled a removal
        outbox, self.outbox = self.outbox, []
        for to, m in outbox:
            self.send_envelope(to, m)
        self.close_stale_sockets()
        if self.pending_status:
            status = self.status()
            for route, request_id, inspect in self.pending_status:
                self.answer(route, request_id, self.inspection(status) if inspect else status)
            self.pending_status = []
        self.print_role()

    def run(self) -> None:
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        signal.signal(signal.SIGINT, lambda *_: stop.append(1))
        poller = zmq.Poller()
        poller.register(self.pull, zmq.POLLIN)
        if self.router is not None:
            poller.register(self.router, zmq.POLLIN)
        stdin_fd = sys.stdin.fileno() if sys.stdin is not None else None
        if stdin_fd is not None:
            poller.register(stdin_fd, zmq.POLLIN)
        stdin_buf = b""
        if self.snap.index:
            self.emit({"snapshot": {"loaded": self.snap.index, "term": self.snap.term, "bytes": self.snap.size,
                                    "last_index": self.log.last_index()}})
        self.print_role()
        while not stop:
            timeout_ms = max(0, min(100, int((self.next_deadline() - time.monotonic()) * 1000) + 1))
            try:
                events = dict(poller.poll(timeout_ms))
            except zmq.ZMQError:  # interrupted by a signal
                continue
            now = time.monotonic()
            if self.pull in events:
                for _ in range(INBOUND_BATCH_MAX):
                    try:
                        data = self.pull.recv(zmq.DONTWAIT)
                    except zmq.Again:
                        break
                    self.on_frame(data, now)
            if self.router is not None and self.router in events:
                self.on_client()
            if stdin_fd is not None and stdin_fd in events:
                chunk = os.read(stdin_fd, 65536)
                if not chunk:  # EOF: no more commands, but keep serving
                    poller.unregister(stdin_fd)
                    stdin_fd = None
                    chunk = b"\n" if stdin_buf else b""
                stdin_buf += chunk
                *lines, stdin_buf = stdin_buf.split(b"\n")
                for line in lines:
                    self.on_command(line.decode("utf-8", "surrogateescape"))
            self.tick(time.monotonic())
            self.flush()
            if self.removed:
                break  # said so on stderr; this turn's answers have left
        self.close()

    def close(self) -> None:
        self.log_debug(f"stopping; dropped inbound: {self.drops}, sends dropped: {self.send_dropped}")
        for s in [self.pull, self.router, *(sock for _, sock in self.push.values())]:
            if s is not None:
                s.close(linger=0)
        self.ctx.term()
        self.log.file.close()
        if self.snap.incoming is not None:
            self.snap.incoming.close()  # removed at the next start
        self.lock.close()


def main(argv) -> int:
    p = argparse.ArgumentParser(prog="peer.py", description="A voting Raft peer for a leader cluster (Python).")
    p.add_argument("--pid", type=int, required=True, help="this server's mypid in the config")
    p.add_argument("--config", default="config.json", help="the cluster's config.json (default ./config.json)")
    p.add_argument("--data-dir", default=None, help="data directory (default <config data_dir>/<pid>)")
    p.add_argument("--no-campaign", action="store_true", help="vote and replicate, but never stand for election")
    p.add_argument("--no-pre-vote", action="store_true",
                   help="campaign by raising the term at once, without asking for pre-votes first")
    p.add_argument("--no-client", action="store_true", help="do not bind the client endpoint (no status)")
    p.add_argument("--cluster-key", default=None, metavar="FILE",
                   help="cluster key file (default: the config's cluster_key_file, if any)")
    p.add_argument("--joining", action="store_true",
                   help="start as a non-member (as if left out of initial_members): never campaign nor vote "
                        "until a leader adds this server")
    p.add_argument("--verbose", action="store_true", help="log to stderr")
    args = p.parse_args(argv)
    try:
        config = w.load_config(args.config)
        config.server(args.pid)
        if args.cluster_key is not None:
            config = dataclasses.replace(config, cluster_key_file=args.cluster_key)
        if config.cluster_key_file is not None:
            w.load_cluster_key(config.cluster_key_file)
    except w.ConfigError as e:
        print(f"peer: {e}", file=sys.stderr)
        return 2
    data_dir = args.data_dir or config.data_dir_for(args.pid)
    try:
        peer = Peer(config, args.pid, data_dir, not args.no_campaign, not args.no_client, args.verbose,
                    pre_vote=not args.no_pre_vote, joining=args.joining)
    except (StorageError, OSError) as e:
        print(f"peer: server {args.pid}: {e}", file=sys.stderr)
        return 1
    except zmq.ZMQError as e:
        print(f"peer: server {args.pid}: cannot bind: {e}", file=sys.stderr)
        return 1
    peer.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
