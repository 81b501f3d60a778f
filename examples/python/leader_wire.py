"""leader's wire format in plain Python: encode and decode every message of docs/wire.md.

Only the standard library (``struct``) is used; ZeroMQ is the caller's business. The encoding
is bincode 1.3 with fixed-width little-endian integers (docs/wire.md §1):

    u16/u32/u64   2/4/8 bytes, little endian
    bool          one byte, 00 or 01 (anything else is invalid)
    Option<T>     00, or 01 followed by T
    bytes/string  u64 length, then the bytes (a string must be UTF-8)
    Vec<T>        u64 count, then each T
    struct        its fields in order, nothing in between
    enum          u32 variant index ("tag"), then the variant's fields

Representation
--------------
Every wire type is a small frozen dataclass whose fields are named and ordered as in
docs/wire.md. Integers are Python ``int``; byte strings are ``bytes``; ``Option<T>`` is
``T`` or ``None``. Enums are represented by *which dataclass* a value is:

    Envelope(version, cluster_id, from_, to, body)      # ``from`` is a Python keyword
      body (Body enum)   tag 0 Raft: one of RequestVote, RequestVoteResponse,
                                      AppendEntries, AppendEntriesResponse,
                                      PreVote, PreVoteResponse (tags 4, 5: pre-vote),
                                      InstallSnapshot, InstallSnapshotResponse (tags 6, 7),
                                      TimeoutNow, TransferVote, LeaderCheck, LeaderCheckResponse,
                                      ReadIndex, ReadIndexResponse (tags 8-13: transfer, reads)
                         tag 1 App:  App(msg_id, broadcast, payload)
    Entry(term, index, data)

    ClientRequest(version, cluster_id, request_id, body)
      body (Request)     StatusRequest() | Propose(command) | CountersRequest()   tags 0, 1, 2
                         | SnapshotRequest() | FetchSnapshot(index, term, offset)  tags 3, 4
                         | Read(query, mode) | TransferLeadership(to)            tags 5, 6
                         | InspectRequest()                                     tag 7
                         | ChangeMembership(change) | MembershipRequest()         tags 8, 9
      change (MembershipChange)  AddLearner(pid, peer_url, client_url, promote)
                         | Promote(pid) | Remove(pid)                           tags 0, 1, 2
    ClientResponse(version, request_id, body)
      body (Response)    Status(pid, role, term, leader, voted_for, commit_index,
                                last_applied, last_index)                   tag 0
                         a ClientError: BadRequest(reason) | WrongCluster(expected) |
                                NotLeader(leader) | Dropped() | Busy() |
                                Unavailable(reason) | Unauthenticated()      tag 1
                         Applied(index, result)                              tag 2
                         Counters(counters: [Counter(name, value)])          tag 3
                         Snapshot(index, term, total_len)                    tag 4
                         SnapshotChunk(index, term, total_len, offset, data) tag 5
                         Transferred(leader, term)                           tag 6
                         Inspection(status, os_pid, uptime_ms, votes: [VoteSeen],
                                last_contact: [PeerContact], elections_started,
                                elections_won, counters)                     tag 7
                         MembershipChanged(index)                            tag 8
                         MembershipInfo(index, committed, members: [MemberInfo(pid, role,
                                peer_url, client_url)])                      tag 9
      MemberRole         Voter() | Learner(promote)                          tags 0, 1
      Role               IntEnum: FOLLOWER=0, CANDIDATE=1, LEADER=2
      ReadMode           IntEnum: READ_INDEX=0, LEASE=1

    Membership(members: (MemberInfo, ...))   a membership entry's data (docs/wire.md §4,
                         "Membership entries"): MEMBERSHIP_MAGIC, then version 1 and the members

    KvCommand(client_id, seq, op)
      op (KvOp)          Put(key, value) | Get(key) | Delete(key) | Cas(key, expected, new)
    KvResponse           Done() | Value(value) | Deleted(existed) | CasResult(swapped, current)
                         | StaleSequence(last) | BadCommand()

API
---
    encode_envelope(env) -> bytes          decode_envelope(data, limit=ENVELOPE_BYTES_MAX)
    encode_message(m) -> bytes             decode_message(data, limit=ENVELOPE_BYTES_MAX)
    open_envelope(data, cluster_id, me, peers) -> Envelope   (the receiver's checks, §3)
    encode_client_request(req)             decode_client_request(data, limit=CLIENT_REQUEST_BYTES_MAX)
    encode_client_response(resp)           decode_client_response(data, limit=RESPONSE_BYTES_MAX)
    encode_kv_command(cmd)                 decode_kv_command(data, limit=KV_BYTES_MAX)
    encode_kv_response(resp)              decode_kv_response(data, limit=RESPONSE_BYTES_MAX)
    encode_entry(entry)                    decode_entry(data, limit=ENVELOPE_BYTES_MAX)
    encode_membership(membership)          decode_membership(data) -> Membership | None (no magic)
    snapshot_membership(config) -> Membership | None   (a snapshot file's configuration)
    encode_snapshot_image(SnapshotImage)   decode_snapshot_image(image, last_index=None, last_term=None)
    decode_snapshot_header(image)          (the LDSN snapshot file of docs/storage.md; SnapshotImageError)
    snapshot_chunks(term, leader_id, image) -> [InstallSnapshot]   snapshot_chunk_len(total_len, offset)
    check_install_snapshot(frm, chunk) -> the counter of the rule it breaks, or None
    fnv1a_64(data), default_cluster_id(servers), load_config(path) -> Config
    load_cluster_key(path) -> bytes; seal(key, message) -> frame; unseal(key, frame) -> message|None
    redirect_probe(config, pid) -> the leader pid server `pid` names (needs pyzmq)

Cluster key (not in docs/wire.md; src/transport/auth.rs): when config.json has
"cluster_key_file" (or a --cluster-key flag names one), every ZeroMQ message -- envelopes,
client requests and client responses -- is the encoded value followed by a 32-byte
HMAC-SHA256 tag of it under the key; a receiver verifies the tag before decoding and drops
the frame if it does not verify. Without a key, frames are the bare values (``seal`` and
``unseal`` with ``key=None`` are the identity).

Decoding is strict: a value must use every byte (trailing bytes are invalid), bools must be
00/01, tags must be known, strings must be UTF-8, and no length prefix is trusted beyond the
bytes present. Input longer than ``limit`` is refused before decoding. Every failure raises
``WireError`` whose ``reason`` is one of ``"oversize"``, ``"truncated"``, ``"garbage"`` (the
Rust server's names); ``open_envelope`` adds ``"wrong_version"``, ``"wrong_cluster"``,
``"wrong_receiver"`` and ``"unknown_sender"``.

Example::

    env = Envelope(1, cfg.cluster_id, 2, 1, RequestVote(term=5, candidate_id=2,
                                                        last_log_index=0, last_log_term=0))
    assert decode_envelope(encode_envelope(env)) == env
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import os
import stat
import struct
import zlib
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Union

# ---------------------------------------------------------------------------------------------
# Constants (docs/wire.md §2, §3, §5)

WIRE_VERSION = 1                    # Envelope.version
CLIENT_WIRE_VERSION = 1             # ClientRequest.version / ClientResponse.version
# Size limits (docs/wire.md §2; every frame limit counts the tag when a key is set).
COMMAND_BYTES_MAX = (3 << 19) + 1024  # 1.5 MiB + 1 KiB: the largest command a leader appends
ENVELOPE_BYTES_MAX = 2 << 20        # 2 MiB: the PULL socket's ZMQ_MAXMSGSIZE
CLIENT_REQUEST_BYTES_MAX = COMMAND_BYTES_MAX + 1024  # 1.5 MiB + 2 KiB: the ROUTER's ZMQ_MAXMSGSIZE
KV_DATA_BYTES_MAX = 3 << 19         # 1.5 MiB: key and value(s) of one KV operation together
# The Rust client accepts responses up to 16 MiB, and the Rust store decodes KvCommands up to
# COMMAND_BYTES_MAX. We use the same figures.
RESPONSE_BYTES_MAX = 16 << 20
KV_BYTES_MAX = COMMAND_BYTES_MAX
# Not in docs/wire.md: Rust servers ignore Raft messages whose term is above this (u64::MAX / 2).
TERM_MAX = (1 << 63) - 1
TAG_BYTES = 32                      # HMAC-SHA256 tag appended to every frame when a key is set
# InstallSnapshot (Message tag 6): every chunk but the last is exactly this long (256 KiB).
SNAPSHOT_CHUNK_BYTES_MAX = 256 << 10


class WireError(ValueError):
    """Bytes that are not a valid encoding. ``reason``: oversize, truncated, garbage, or (from
    ``open_envelope``) wrong_version, wrong_cluster, wrong_receiver, unknown_sender."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------------------------------------
# Peer messages (docs/wire.md §3, §4)

@dataclass(frozen=True)
class Entry:
    term: int
    index: int
    data: bytes  # empty: a leader's no-op


@dataclass(frozen=True)
class RequestVote:            # Message tag 0
    term: int
    candidate_id: int
    last_log_index: int
    last_log_term: int


@dataclass(frozen=True)
class RequestVoteResponse:    # Message tag 1
    term: int
    vote_granted: bool


@dataclass(frozen=True)
class AppendEntries:          # Message tag 2
    term: int
    leader_id: int
    prev_log_index: int
    prev_log_term: int
    entries: List[Entry] = field(default_factory=list)
    leader_commit: int = 0


@dataclass(frozen=True)
class AppendEntriesResponse:  # Message tag 3
    term: int
    success: bool
    match_index: int
    conflict_index: int = 0
    conflict_term: int = 0


# Pre-vote (Raft thesis §9.6), appended to Message as tags 4 and 5. The layouts are those of
# RequestVote and RequestVoteResponse; only the tag differs. PreVote.term is the term the
# sender *would* campaign in (its current term + 1): nobody's term changes because of it.

@dataclass(frozen=True)
class PreVote:                # Message tag 4
    term: int
    candidate_id: int
    last_log_index: int
    last_log_term: int


@dataclass(frozen=True)
class PreVoteResponse:        # Message tag 5
    term: int
    vote_granted: bool


# InstallSnapshot (Raft §7), appended to Message as tags 6 and 7. The leader streams the bytes
# of its snapshot file (the "image", format LDSN: see decode_snapshot_image) in chunks; every
# chunk but the last is SNAPSHOT_CHUNK_BYTES_MAX bytes, and `crc` is zlib.crc32 of `data`.

@dataclass(frozen=True)
class InstallSnapshot:        # Message tag 6
    term: int
    leader_id: int
    last_index: int           # the snapshot replaces every entry up to and including this index
    last_term: int            # term of the entry at last_index
    total_len: int            # size of the whole image in bytes
    offset: int               # position of `data` in the image
    data: bytes               # 1 to SNAPSHOT_CHUNK_BYTES_MAX bytes (u64 length + bytes)
    crc: int                  # u32: CRC-32 (IEEE) of data


@dataclass(frozen=True)
class InstallSnapshotResponse:  # Message tag 7
    term: int
    last_index: int           # the snapshot this answers (that of the chunk)
    last_term: int
    next_offset: int          # bytes of that image held contiguously from 0: send from here


# Leadership transfer and reads (thesis §3.10, §6.4), appended to Message as tags 8-13
# (docs/wire.md §4, rules 9-12).

@dataclass(frozen=True)
class TimeoutNow:             # Message tag 8: the leader hands over; campaign now, no pre-vote
    term: int
    leader_id: int            # must be the sender


@dataclass(frozen=True)
class TransferVote:           # Message tag 9: RequestVote's layout; answered by RequestVoteResponse
    term: int                 # voters apply no leader stickiness to it (rule 9)
    candidate_id: int
    last_log_index: int
    last_log_term: int


@dataclass(frozen=True)
class LeaderCheck:            # Message tag 10: "am I still your leader?" (for a read)
    term: int
    leader_id: int            # must be the sender
    round: int                # u64: numbers a leader's checks; the answer echoes it


@dataclass(frozen=True)
class LeaderCheckResponse:    # Message tag 11
    term: int
    round: int


@dataclass(frozen=True)
class ReadIndex:              # Message tag 12: a follower asks its leader for a read index
    term: int
    id: int                   # u64: the follower's request number, echoed


@dataclass(frozen=True)
class ReadIndexResponse:      # Message tag 13
    term: int
    id: int
    index: int                # the read index; 0: refused (the sender does not lead)
    index_term: int           # the term of the leader's entry at `index` (0 when refused)


@dataclass(frozen=True)
class App:                    # Body tag 1
    msg_id: int
    broadcast: bool
    payload: bytes


Message = Union[RequestVote, RequestVoteResponse, AppendEntries, AppendEntriesResponse, PreVote, PreVoteResponse,
                InstallSnapshot, InstallSnapshotResponse, TimeoutNow, TransferVote, LeaderCheck,
                LeaderCheckResponse, ReadIndex, ReadIndexResponse]
Body = Union[Message, App]    # a Message is Body tag 0 (Raft)


@dataclass(frozen=True)
class Envelope:
    version: int
    cluster_id: int
    from_: int
    to: int
    body: Body


# ---------------------------------------------------------------------------------------------
# Client protocol (docs/wire.md §5)

@dataclass(frozen=True)
class StatusRequest:          # Request tag 0
    pass


@dataclass(frozen=True)
class Propose:                # Request tag 1
    command: bytes


@dataclass(frozen=True)
class CountersRequest:        # Request tag 2
    pass


@dataclass(frozen=True)
class SnapshotRequest:        # Request tag 3: take a snapshot now (answered by Snapshot)
    pass


@dataclass(frozen=True)
class FetchSnapshot:          # Request tag 4: up to 1 MiB of the snapshot image from `offset`
    index: int                # 0: the latest snapshot (term ignored)
    term: int
    offset: int


class ReadMode(enum.IntEnum):  # Read.mode (enum, no fields)
    READ_INDEX = 0            # a LeaderCheck round to a majority: safe whatever the clocks do
    LEASE = 1                 # a leader's lease (only where the config sets lease_reads)


@dataclass(frozen=True)
class Read:                   # Request tag 5: a linearizable read that costs no log entry
    query: bytes              # never empty; for the store: an encoded KvCommand with a Get
    mode: ReadMode = ReadMode.READ_INDEX


@dataclass(frozen=True)
class TransferLeadership:     # Request tag 6: hand leadership to `to` (None: the best follower)
    to: Optional[int] = None


@dataclass(frozen=True)
class InspectRequest:         # Request tag 7: why the server is where it is (answered by Inspection)
    pass


# Membership (docs/wire.md §4 "Membership entries", §5 Request 8-9, Response 8-9; thesis §4)

MEMBERSHIP_MAGIC = b"\xffleaderm"   # a membership entry's data starts with these 8 bytes
MEMBERSHIP_VERSION = 1              # the byte after the magic
MEMBERS_MAX = 255                   # members one membership may list
MEMBER_URL_BYTES_MAX = 1024         # longest peer_url / client_url, in bytes


@dataclass(frozen=True)
class Voter:                  # MemberRole tag 0: votes, counts towards commit and elections
    def __str__(self) -> str:
        return "voter"


@dataclass(frozen=True)
class Learner:                # MemberRole tag 1: receives the log, never votes nor counts
    promote: bool = False     # the leader makes it a voter once it has caught up

    def __str__(self) -> str:
        return "learner(promote)" if self.promote else "learner"


MemberRole = Union[Voter, Learner]


@dataclass(frozen=True)
class MemberInfo:             # one member: in a membership entry, and in MembershipInfo
    pid: int
    role: MemberRole
    peer_url: str = ""        # where its PULL socket listens; "" = as in config.json
    client_url: str = ""      # where clients reach it; "" = as in config.json


@dataclass(frozen=True)
class Membership:
    """Who votes, who learns, where each listens: what a membership entry holds. `members` in
    strictly ascending pid order, at least one voter (decode_membership checks both)."""
    members: tuple

    @staticmethod
    def of_voters(pids, urls=None) -> "Membership":
        """Every pid a voter; `urls` maps a pid to (peer_url, client_url)."""
        urls = urls or {}
        return Membership(tuple(MemberInfo(p, Voter(), *urls.get(p, ("", ""))) for p in sorted(pids)))

    def get(self, pid: int) -> Optional[MemberInfo]:
        for m in self.members:
            if m.pid == pid:
                return m
        return None

    def contains(self, pid: int) -> bool:
        return self.get(pid) is not None

    def is_voter(self, pid: int) -> bool:
        m = self.get(pid)
        return m is not None and isinstance(m.role, Voter)

    def pids(self) -> List[int]:
        return [m.pid for m in self.members]

    def voters(self) -> List[int]:
        return [m.pid for m in self.members if isinstance(m.role, Voter)]

    def learners(self) -> List[int]:
        return [m.pid for m in self.members if not isinstance(m.role, Voter)]

    def quorum(self) -> int:
        """Votes or acknowledgements needed: a majority of the voters (thesis §4)."""
        return len(self.voters()) // 2 + 1


@dataclass(frozen=True)
class AddLearner:             # MembershipChange tag 0: add `pid` as a learner at these urls
    pid: int
    peer_url: str
    client_url: str
    promote: bool = True      # the leader promotes it to voter once caught up


@dataclass(frozen=True)
class Promote:                # MembershipChange tag 1: make learner `pid` a voter
    pid: int


@dataclass(frozen=True)
class Remove:                 # MembershipChange tag 2: remove `pid` (voter or learner)
    pid: int


MembershipChange = Union[AddLearner, Promote, Remove]


@dataclass(frozen=True)
class ChangeMembership:       # Request tag 8: one change; answered MembershipChanged once applied
    change: MembershipChange


@dataclass(frozen=True)
class MembershipRequest:      # Request tag 9: the membership in force on that server
    pass


Request = Union[StatusRequest, Propose, CountersRequest, SnapshotRequest, FetchSnapshot, Read, TransferLeadership,
                InspectRequest, ChangeMembership, MembershipRequest]


@dataclass(frozen=True)
class ClientRequest:
    version: int
    cluster_id: int
    request_id: int
    body: Request


class Role(enum.IntEnum):
    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Status:                 # Response tag 0
    pid: int
    role: Role
    term: int
    leader: Optional[int]
    voted_for: Optional[int]
    commit_index: int
    last_applied: int
    last_index: int


@dataclass(frozen=True)
class BadRequest:             # ClientError tag 0
    reason: str


@dataclass(frozen=True)
class WrongCluster:           # ClientError tag 1
    expected: int


@dataclass(frozen=True)
class NotLeader:              # ClientError tag 2
    leader: Optional[int]


@dataclass(frozen=True)
class Dropped:                # ClientError tag 3
    pass


@dataclass(frozen=True)
class Busy:                   # ClientError tag 4
    pass


@dataclass(frozen=True)
class Unavailable:            # ClientError tag 5: not served now (an abandoned transfer, ...)
    reason: str


@dataclass(frozen=True)
class Unauthenticated:        # ClientError tag 6: the server requires the cluster key; sent
    pass                      # unsealed with request_id 0 to a frame whose tag did not verify


ClientError = Union[BadRequest, WrongCluster, NotLeader, Dropped, Busy, Unavailable,
                    Unauthenticated]  # Response tag 1


@dataclass(frozen=True)
class Applied:                # Response tag 2
    index: int
    result: bytes


@dataclass(frozen=True)
class Counter:
    name: str                 # snake_case and stable, e.g. bad_mac, invalid_entries_not_contiguous
    value: int                # u64: the count since the server started


@dataclass(frozen=True)
class Counters:               # Response tag 3: a server's counters of dropped and ignored input
    counters: List[Counter]   # in the server's fixed order; new names are appended: match by name

    def as_dict(self) -> dict:
        """{name: value}, as `leader status --json` shows them under "dropped"."""
        return {c.name: c.value for c in self.counters}


@dataclass(frozen=True)
class Snapshot:               # Response tag 4: the server's latest durable snapshot
    index: int                # the last index and term it covers
    term: int
    total_len: int            # its image's size in bytes


@dataclass(frozen=True)
class SnapshotChunk:          # Response tag 5: bytes offset .. offset + len(data) of the image
    index: int
    term: int
    total_len: int
    offset: int
    data: bytes               # at most 1 MiB; empty at the end of the image


@dataclass(frozen=True)
class Transferred:            # Response tag 6: `leader` now leads in `term`
    leader: int
    term: int


class VoteKind(enum.IntEnum):  # VoteSeen.kind (enum, no fields)
    VOTE = 0                  # RequestVote
    PRE_VOTE = 1
    TRANSFER = 2              # TransferVote


@dataclass(frozen=True)
class VoteVerdict:            # VoteSeen.verdict (enum; variants only appended)
    tag: int                  # 0 granted, 1 stale term, 2 already voted (for `voted_for`),
    voted_for: Optional[int] = None  # 3 stale log, 4 leader alive, 5 term not ahead,
    #                                  6 not a voter (us), 7 candidate not a voter (thesis §4)

    NAMES = ("granted", "refused: stale term", "refused: already voted for {}",
             "refused: candidate's log is behind ours", "ignored: the leader is still alive",
             "refused: term not ahead of ours", "refused: this server is not a voter",
             "refused: the candidate is not a voter")

    def __str__(self) -> str:
        return self.NAMES[self.tag].format(self.voted_for)


@dataclass(frozen=True)
class VoteSeen:               # one decision on a vote request
    candidate: int
    term: int                 # the term asked for
    kind: VoteKind
    verdict: VoteVerdict
    ms_ago: int


@dataclass(frozen=True)
class PeerContact:
    pid: int
    ms_ago: int               # since the peer's last authentic, decodable envelope


@dataclass(frozen=True)
class Inspection:             # Response tag 7: answer to InspectRequest
    status: Status
    os_pid: int               # u32
    uptime_ms: int
    votes: List[VoteSeen]     # oldest first, at most 8
    last_contact: List[PeerContact]
    elections_started: int
    elections_won: int
    counters: List[Counter]


@dataclass(frozen=True)
class MembershipChanged:      # Response tag 8: the change's entry is committed (and applied) at `index`
    index: int


@dataclass(frozen=True)
class MembershipInfo:         # Response tag 9: answer to MembershipRequest
    index: int                # the entry holding it; 0: the snapshot's or config.json's
    committed: bool           # whether that entry is committed on the answering server
    members: List[MemberInfo]  # in pid order


Response = Union[Status, ClientError, Applied, Counters, Snapshot, SnapshotChunk, Transferred, Inspection,
                 MembershipChanged, MembershipInfo]


@dataclass(frozen=True)
class ClientResponse:
    version: int
    request_id: int
    body: Response


# The built-in key-value store

@dataclass(frozen=True)
class Put:                    # KvOp tag 0
    key: bytes
    value: bytes


@dataclass(frozen=True)
class Get:                    # KvOp tag 1
    key: bytes


@dataclass(frozen=True)
class Delete:                 # KvOp tag 2
    key: bytes


@dataclass(frozen=True)
class Cas:                    # KvOp tag 3
    key: bytes
    expected: Optional[bytes]
    new: Optional[bytes]


@dataclass(frozen=True)
class KvCommand:
    client_id: int
    seq: int
    op: Union[Put, Get, Delete, Cas]


@dataclass(frozen=True)
class Done:                   # KvResponse tag 0
    pass


@dataclass(frozen=True)
class Value:                  # KvResponse tag 1
    value: Optional[bytes]


@dataclass(frozen=True)
class Deleted:                # KvResponse tag 2
    existed: bool


@dataclass(frozen=True)
class CasResult:              # KvResponse tag 3 (Cas)
    swapped: bool
    current: Optional[bytes]


@dataclass(frozen=True)
class StaleSequence:          # KvResponse tag 4
    last: int


@dataclass(frozen=True)
class BadCommand:             # KvResponse tag 5
    pass


KvResponse = Union[Done, Value, Deleted, CasResult, StaleSequence, BadCommand]


# ---------------------------------------------------------------------------------------------
# Primitive writer and reader

class Writer:
    """Appends primitives in bincode fixint little-endian form."""

    def __init__(self) -> None:
        self.parts: List[bytes] = []

    def u16(self, v: int) -> None:
        self.parts.append(struct.pack("<H", v))

    def u32(self, v: int) -> None:
        self.parts.append(struct.pack("<I", v))

    def u64(self, v: int) -> None:
        self.parts.append(struct.pack("<Q", v))

    def bool(self, v: bool) -> None:
        self.parts.append(b"\x01" if v else b"\x00")

    def bytes(self, v: bytes) -> None:
        self.u64(len(v))
        self.parts.append(bytes(v))

    def string(self, v: str) -> None:
        self.bytes(v.encode("utf-8"))

    def option_u64(self, v: Optional[int]) -> None:
        if v is None:
            self.parts.append(b"\x00")
        else:
            self.parts.append(b"\x01")
            self.u64(v)

    def option_bytes(self, v: Optional[bytes]) -> None:
        if v is None:
            self.parts.append(b"\x00")
        else:
            self.parts.append(b"\x01")
            self.bytes(v)

    def done(self) -> bytes:
        return b"".join(self.parts)


class Reader:
    """Reads primitives from ``data``; every failure is a WireError.

    ``limit`` mirrors bincode's size limit: a length prefix that would take the total read past
    ``limit`` is "oversize"; one that runs past the end of ``data`` is "truncated".
    """

    def __init__(self, data: bytes, limit: int):
        if len(data) > limit:
            raise WireError("oversize", f"{len(data)} bytes > limit {limit}")
        self.data = memoryview(bytes(data))
        self.pos = 0
        self.limit = limit

    def _take(self, n: int) -> memoryview:
        if n > self.limit - self.pos:
            raise WireError("oversize", f"length {n} at byte {self.pos} exceeds the size limit")
        if n > len(self.data) - self.pos:
            raise WireError("truncated", f"need {n} bytes at byte {self.pos}, have {len(self.data) - self.pos}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u16(self) -> int:
        return struct.unpack("<H", self._take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self._take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self._take(8))[0]

    def bool(self) -> bool:
        at = self.pos
        b = self._take(1)[0]
        if b > 1:
            raise WireError("garbage", f"bool byte {b:#04x} at byte {at}")
        return b == 1

    def bytes(self) -> bytes:
        n = self.u64()
        return bytes(self._take(n))

    def string(self) -> str:
        at = self.pos
        raw = self.bytes()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise WireError("garbage", f"string at byte {at} is not UTF-8") from None

    def _option_tag(self) -> bool:
        at = self.pos
        t = self._take(1)[0]
        if t > 1:
            raise WireError("garbage", f"Option tag {t:#04x} at byte {at}")
        return t == 1

    def option_u64(self) -> Optional[int]:
        return self.u64() if self._option_tag() else None

    def option_bytes(self) -> Optional[bytes]:
        return self.bytes() if self._option_tag() else None

    def tag(self, what: str, count: int) -> int:
        at = self.pos
        t = self.u32()
        if t >= count:
            raise WireError("garbage", f"unknown {what} tag {t} at byte {at}")
        return t

    def count(self, min_item_size: int) -> int:
        """A Vec's u64 count, refused at once when the items could not fit in what is left."""
        at = self.pos
        n = self.u64()
        if n * min_item_size > len(self.data) - self.pos:
            raise WireError("truncated", f"count {n} at byte {at} cannot fit in the bytes left")
        return n

    def end(self) -> None:
        if self.pos != len(self.data):
            raise WireError("garbage", f"{len(self.data) - self.pos} trailing bytes after byte {self.pos}")


# ---------------------------------------------------------------------------------------------
# Peer messages

_ENTRY_MIN_SIZE = 8 + 8 + 8  # term, index, empty data
_COUNTER_MIN_SIZE = 8 + 8    # empty name, value


def _write_entry(w: Writer, e: Entry) -> None:
    w.u64(e.term)
    w.u64(e.index)
    w.bytes(e.data)


def _read_entry(r: Reader) -> Entry:
    return Entry(term=r.u64(), index=r.u64(), data=r.bytes())


def _write_message(w: Writer, m: Message) -> None:
    if isinstance(m, RequestVote):
        w.u32(0)
        w.u64(m.term); w.u64(m.candidate_id); w.u64(m.last_log_index); w.u64(m.last_log_term)
    elif isinstance(m, RequestVoteResponse):
        w.u32(1)
        w.u64(m.term); w.bool(m.vote_granted)
    elif isinstance(m, AppendEntries):
        w.u32(2)
        w.u64(m.term); w.u64(m.leader_id); w.u64(m.prev_log_index); w.u64(m.prev_log_term)
        w.u64(len(m.entries))
        for e in m.entries:
            _write_entry(w, e)
        w.u64(m.leader_commit)
    elif isinstance(m, AppendEntriesResponse):
        w.u32(3)
        w.u64(m.term); w.bool(m.success); w.u64(m.match_index)
        w.u64(m.conflict_index); w.u64(m.conflict_term)
    elif isinstance(m, PreVote):
        w.u32(4)
        w.u64(m.term); w.u64(m.candidate_id); w.u64(m.last_log_index); w.u64(m.last_log_term)
    elif isinstance(m, PreVoteResponse):
        w.u32(5)
        w.u64(m.term); w.bool(m.vote_granted)
    elif isinstance(m, InstallSnapshot):
        w.u32(6)
        w.u64(m.term); w.u64(m.leader_id); w.u64(m.last_index); w.u64(m.last_term)
        w.u64(m.total_len); w.u64(m.offset); w.bytes(m.data); w.u32(m.crc)
    elif isinstance(m, InstallSnapshotResponse):
        w.u32(7)
        w.u64(m.term); w.u64(m.last_index); w.u64(m.last_term); w.u64(m.next_offset)
    elif isinstance(m, TimeoutNow):
        w.u32(8)
        w.u64(m.term); w.u64(m.leader_id)
    elif isinstance(m, TransferVote):
        w.u32(9)
        w.u64(m.term); w.u64(m.candidate_id); w.u64(m.last_log_index); w.u64(m.last_log_term)
    elif isinstance(m, LeaderCheck):
        w.u32(10)
        w.u64(m.term); w.u64(m.leader_id); w.u64(m.round)
    elif isinstance(m, LeaderCheckResponse):
        w.u32(11)
        w.u64(m.term); w.u64(m.round)
    elif isinstance(m, ReadIndex):
        w.u32(12)
        w.u64(m.term); w.u64(m.id)
    elif isinstance(m, ReadIndexResponse):
        w.u32(13)
        w.u64(m.term); w.u64(m.id); w.u64(m.index); w.u64(m.index_term)
    else:
        raise TypeError(f"not a Raft message: {m!r}")


def _read_message(r: Reader) -> Message:
    # A server that predates pre-vote knows 4 tags and drops tags 4 and 5 as garbage; that is
    # what makes the new variants safe to send to it (a lost message, as far as Raft can tell).
    # Likewise tags 6 and 7 (InstallSnapshot) for a server that predates snapshots, and 8-13
    # (transfer and reads) for one that predates them.
    tag = r.tag("Message", 14)
    if tag == 0:
        return RequestVote(term=r.u64(), candidate_id=r.u64(), last_log_index=r.u64(), last_log_term=r.u64())
    if tag == 1:
        return RequestVoteResponse(term=r.u64(), vote_granted=r.bool())
    if tag == 2:
        term, leader_id, prev_log_index, prev_log_term = r.u64(), r.u64(), r.u64(), r.u64()
        entries = [_read_entry(r) for _ in range(r.count(_ENTRY_MIN_SIZE))]
        return AppendEntries(term, leader_id, prev_log_index, prev_log_term, entries, leader_commit=r.u64())
    if tag == 3:
        return AppendEntriesResponse(term=r.u64(), success=r.bool(), match_index=r.u64(),
                                     conflict_index=r.u64(), conflict_term=r.u64())
    if tag == 4:
        return PreVote(term=r.u64(), candidate_id=r.u64(), last_log_index=r.u64(), last_log_term=r.u64())
    if tag == 5:
        return PreVoteResponse(term=r.u64(), vote_granted=r.bool())
    if tag == 6:
        return InstallSnapshot(term=r.u64(), leader_id=r.u64(), last_index=r.u64(), last_term=r.u64(),
                               total_len=r.u64(), offset=r.u64(), data=r.bytes(), crc=r.u32())
    if tag == 7:
        return InstallSnapshotResponse(term=r.u64(), last_index=r.u64(), last_term=r.u64(), next_offset=r.u64())
    if tag == 8:
        return TimeoutNow(term=r.u64(), leader_id=r.u64())
    if tag == 9:
        return TransferVote(term=r.u64(), candidate_id=r.u64(), last_log_index=r.u64(), last_log_term=r.u64())
    if tag == 10:
        return LeaderCheck(term=r.u64(), leader_id=r.u64(), round=r.u64())
    if tag == 11:
        return LeaderCheckResponse(term=r.u64(), round=r.u64())
    if tag == 12:
        return ReadIndex(term=r.u64(), id=r.u64())
    return ReadIndexResponse(term=r.u64(), id=r.u64(), index=r.u64(), index_term=r.u64())


def encode_message(m: Message) -> bytes:
    """One Raft Message on its own (what follows Body tag 0 in an envelope)."""
    w = Writer()
    _write_message(w, m)
    return w.done()


def decode_message(data: bytes, limit: int = ENVELOPE_BYTES_MAX) -> Message:
    r = Reader(data, limit)
    m = _read_message(r)
    r.end()
    return m


def encode_envelope(env: Envelope) -> bytes:
    w = Writer()
    w.u16(env.version)
    w.u64(env.cluster_id)
    w.u64(env.from_)
    w.u64(env.to)
    if isinstance(env.body, App):
        w.u32(1)
        w.u64(env.body.msg_id)
        w.bool(env.body.broadcast)
        w.bytes(env.body.payload)
    else:
        w.u32(0)
        _write_message(w, env.body)
    return w.done()


def decode_envelope(data: bytes, limit: int = ENVELOPE_BYTES_MAX) -> Envelope:
    """Decode exactly one Envelope (any version number: see ``open_envelope`` for the checks)."""
    r = Reader(data, limit)
    version, cluster_id, from_, to = r.u16(), r.u64(), r.u64(), r.u64()
    if r.tag("Body", 2) == 0:
        body: Body = _read_message(r)
    else:
        body = App(msg_id=r.u64(), broadcast=r.bool(), payload=r.bytes())
    r.end()
    return Envelope(version, cluster_id, from_, to, body)


def open_envelope(data: bytes, cluster_id: int, me: int, peers: Sequence[int],
                  limit: int = ENVELOPE_BYTES_MAX) -> Envelope:
    """What a receiving server does with a frame from its PULL socket (docs/wire.md §3,
    "Receiving"): the size limit, then the version on the first two bytes, then a strict
    decode, then cluster, receiver and sender. Raises WireError with the drop reason."""
    if len(data) > limit:
        raise WireError("oversize", f"{len(data)} bytes")
    if len(data) < 2:
        raise WireError("truncated", f"{len(data)} bytes")
    version = struct.unpack_from("<H", data, 0)[0]
    if version != WIRE_VERSION:
        raise WireError("wrong_version", f"version {version}")
    env = decode_envelope(data, limit)
    if env.cluster_id != cluster_id:
        raise WireError("wrong_cluster", f"cluster {env.cluster_id:#x}")
    if env.to != me:
        raise WireError("wrong_receiver", f"to {env.to}")
    if env.from_ not in peers:
        raise WireError("unknown_sender", f"from {env.from_}")
    return env


def encode_entry(e: Entry) -> bytes:
    """One Entry on its own (as inside AppendEntries); peer.py's log records use it."""
    w = Writer()
    _write_entry(w, e)
    return w.done()


def decode_entry(data: bytes, limit: int = ENVELOPE_BYTES_MAX) -> Entry:
    r = Reader(data, limit)
    e = _read_entry(r)
    r.end()
    return e


# ---------------------------------------------------------------------------------------------
# Membership entries (docs/wire.md §4 "Membership entries"; src/core/membership.rs)

_MEMBER_MIN_SIZE = 8 + 4 + 1 + 8 + 8  # pid, role, promote, two empty urls


def is_membership_entry(data: bytes) -> bool:
    """Whether an entry's data is a membership entry (starts with MEMBERSHIP_MAGIC)."""
    return bytes(data[:len(MEMBERSHIP_MAGIC)]) == MEMBERSHIP_MAGIC


def encode_membership(m: Membership) -> bytes:
    """The data of a membership entry holding `m`: the magic, version 1, then every member
    (u64 pid, u32 role 0 voter / 1 learner, u8 promote, peer_url, client_url)."""
    w = Writer()
    w.parts.append(MEMBERSHIP_MAGIC)
    w.parts.append(bytes([MEMBERSHIP_VERSION]))
    w.u64(len(m.members))
    for member in m.members:
        w.u64(member.pid)
        if isinstance(member.role, Voter):
            w.u32(0); w.parts.append(b"\x00")
        else:
            w.u32(1); w.parts.append(b"\x01" if member.role.promote else b"\x00")
        w.string(member.peer_url)
        w.string(member.client_url)
    return w.done()


def decode_membership(data: bytes) -> Optional[Membership]:
    """The membership in an entry's data: None when it is not a membership entry (no magic);
    WireError when it is one that does not decode -- reason "truncated" (too short, or bytes
    after the last member: the Rust decoder's Truncated), "wrong_version", or "garbage" (more
    than 255 members, pid 0 or not strictly ascending, an unknown role, a promote byte other
    than 0/1 or 1 for a voter, a url over 1,024 bytes or not UTF-8, no voter). A Rust server
    drops the whole AppendEntries carrying such an entry (invalid_membership_entry)."""
    if not is_membership_entry(data):
        return None
    r = Reader(bytes(data[len(MEMBERSHIP_MAGIC):]), ENVELOPE_BYTES_MAX)
    version = r._take(1)[0]
    if version != MEMBERSHIP_VERSION:
        raise WireError("wrong_version", f"membership version {version} (this peer knows {MEMBERSHIP_VERSION})")
    count = r.u64()
    if count > MEMBERS_MAX:
        raise WireError("garbage", f"{count} members (at most {MEMBERS_MAX})")
    if count * _MEMBER_MIN_SIZE > len(r.data) - r.pos:
        raise WireError("truncated", f"{count} members cannot fit in the bytes left")
    members, last = [], 0
    for _ in range(count):
        at = r.pos
        pid = r.u64()
        if pid <= last:
            raise WireError("garbage", f"member pid {pid} at byte {at} is 0 or not above {last}")
        last = pid
        role, promote = r.u32(), r._take(1)[0]
        if (role, promote) == (0, 0):
            member_role: MemberRole = Voter()
        elif role == 1 and promote in (0, 1):
            member_role = Learner(promote == 1)
        else:
            raise WireError("garbage", f"member {pid}: role {role} with promote {promote}")
        urls = []
        for _ in range(2):
            n = r.u64()
            if n > MEMBER_URL_BYTES_MAX:
                raise WireError("garbage", f"member {pid}: a {n}-byte url (at most {MEMBER_URL_BYTES_MAX})")
            raw = bytes(r._take(n))
            try:
                urls.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise WireError("garbage", f"member {pid}: a url that is not UTF-8") from None
        members.append(MemberInfo(pid, member_role, urls[0], urls[1]))
    if r.pos != len(r.data):
        raise WireError("truncated", f"{len(r.data) - r.pos} bytes after the last member")
    if not any(isinstance(m.role, Voter) for m in members):
        raise WireError("garbage", "a membership without a voter")
    return Membership(tuple(members))


def snapshot_membership(config: bytes) -> Optional[Membership]:
    """The membership a snapshot file's configuration records (src/driver/snapshot.rs): a
    membership entry's data, or, in files written before memberships changed at runtime, the
    sorted voter pids (bincode Vec<u64>). None when it is neither (an image from a server that
    records no membership); WireError when it has the magic but does not decode."""
    m = decode_membership(config)
    if m is not None:
        return m
    try:
        r = Reader(config, SNAPSHOT_CONFIG_BYTES_MAX)
        voters = [r.u64() for _ in range(r.count(8))]
        r.end()
    except WireError:
        return None
    if not voters or 0 in voters:
        return None
    return Membership.of_voters(set(voters))


# ---------------------------------------------------------------------------------------------
# Snapshot images (docs/storage.md "Snapshots") and InstallSnapshot chunks

SNAPSHOT_MAGIC = b"LDSN"
SNAPSHOT_VERSION = 1
SNAPSHOT_HEADER = struct.Struct("<4sBQQIQ")   # magic, version, last_index, last_term, config_len, data_len
SNAPSHOT_IMAGE_MIN = SNAPSHOT_HEADER.size + 4  # 33-byte header, no config, no data, the CRC
SNAPSHOT_CONFIG_BYTES_MAX = 1 << 20


class SnapshotImageError(ValueError):
    """An image that is not a valid LDSN snapshot file; ``offset`` is the byte the check names
    (the offsets of docs/storage.md's open checks)."""

    def __init__(self, offset: int, detail: str):
        super().__init__(f"at byte {offset}: {detail}")
        self.offset = offset
        self.detail = detail


@dataclass(frozen=True)
class SnapshotImage:
    last_index: int
    last_term: int
    config: bytes             # opaque (the server's own encoding of its configuration)
    data: bytes               # opaque (the state machine's bytes)


def encode_snapshot_image(img: SnapshotImage) -> bytes:
    """The bytes of a snapshot file: header, config, data, CRC-32 of everything before it."""
    body = SNAPSHOT_HEADER.pack(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, img.last_index, img.last_term,
                                len(img.config), len(img.data)) + img.config + img.data
    return body + struct.pack("<I", zlib.crc32(body))


def decode_snapshot_header(image: bytes):
    """(last_index, last_term, config_len, data_len) after the checks that need only the header
    and the total size -- in docs/storage.md's order: size, magic, version, config_len, lengths
    against the size. Raises SnapshotImageError."""
    if len(image) < SNAPSHOT_IMAGE_MIN:
        raise SnapshotImageError(0, f"{len(image)} bytes, shorter than the {SNAPSHOT_IMAGE_MIN}-byte minimum")
    magic, version, index, term, n, m = SNAPSHOT_HEADER.unpack_from(image, 0)
    if magic != SNAPSHOT_MAGIC:
        raise SnapshotImageError(0, f"magic {magic!r}, not {SNAPSHOT_MAGIC!r}")
    if version != SNAPSHOT_VERSION:
        raise SnapshotImageError(4, f"version {version}, not {SNAPSHOT_VERSION}")
    if n > SNAPSHOT_CONFIG_BYTES_MAX:
        raise SnapshotImageError(21, f"config_len {n} above {SNAPSHOT_CONFIG_BYTES_MAX}")
    if SNAPSHOT_IMAGE_MIN + n + m != len(image):
        raise SnapshotImageError(25, f"37 + config_len {n} + data_len {m} is not the size {len(image)}")
    return index, term, n, m


def decode_snapshot_image(image: bytes, last_index: Optional[int] = None,
                          last_term: Optional[int] = None) -> SnapshotImage:
    """Check a whole image as a Rust server checks its snapshot file (docs/storage.md, "Open
    and recovery"), and, when given, that it names `last_index`/`last_term` (what the
    InstallSnapshot chunks said). Raises SnapshotImageError; never allocates beyond `image`."""
    index, term, n, m = decode_snapshot_header(image)
    end = SNAPSHOT_HEADER.size + n + m
    stored, computed = struct.unpack_from("<I", image, end)[0], zlib.crc32(memoryview(image)[:end])
    if stored != computed:
        raise SnapshotImageError(end, f"checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")
    if index == 0:
        raise SnapshotImageError(5, "last_index is 0")
    if term == 0:
        raise SnapshotImageError(13, "last_term is 0")
    if (last_index is not None and index != last_index) or (last_term is not None and term != last_term):
        raise SnapshotImageError(5, f"names ({index}, {term}), not ({last_index}, {last_term})")
    config = bytes(image[SNAPSHOT_HEADER.size:SNAPSHOT_HEADER.size + n])
    return SnapshotImage(index, term, config, bytes(image[SNAPSHOT_HEADER.size + n:end]))


def snapshot_chunk_len(total_len: int, offset: int) -> int:
    """Length of the chunk of a `total_len`-byte image that starts at `offset` (every chunk is
    SNAPSHOT_CHUNK_BYTES_MAX but the last)."""
    return max(0, min(total_len - offset, SNAPSHOT_CHUNK_BYTES_MAX))


def snapshot_chunks(term: int, leader_id: int, image: bytes):
    """Every InstallSnapshot chunk of `image` in order, as a leader sends them."""
    index, last_term, _, _ = decode_snapshot_header(image)
    out, offset = [], 0
    while offset < len(image):
        data = bytes(image[offset:offset + snapshot_chunk_len(len(image), offset)])
        out.append(InstallSnapshot(term, leader_id, index, last_term, len(image), offset, data, zlib.crc32(data)))
        offset += len(data)
    return out


def check_install_snapshot(frm: int, m: InstallSnapshot) -> Optional[str]:
    """The rules a chunk must keep (docs/wire.md "What a peer must never send"): the name of
    the counter of the first one it breaks, or None. The Rust servers check the same, in this
    order (the checksum first: their transport layer checks it before the core sees the chunk)."""
    if zlib.crc32(m.data) != m.crc:
        return "invalid_snapshot_chunk_checksum"
    if m.leader_id != frm:
        return "invalid_leader_id"
    if m.last_index == 0 or m.last_term == 0 or m.last_term > m.term:
        return "invalid_log_position"
    if not m.data or len(m.data) > SNAPSHOT_CHUNK_BYTES_MAX or m.offset + len(m.data) > m.total_len:
        return "invalid_snapshot_chunk"
    return None


# ---------------------------------------------------------------------------------------------
# Client protocol

def encode_client_request(req: ClientRequest) -> bytes:
    w = Writer()
    w.u16(req.version)
    w.u64(req.cluster_id)
    w.u64(req.request_id)
    if isinstance(req.body, StatusRequest):
        w.u32(0)
    elif isinstance(req.body, Propose):
        w.u32(1)
        w.bytes(req.body.command)
    elif isinstance(req.body, CountersRequest):
        w.u32(2)
    elif isinstance(req.body, SnapshotRequest):
        w.u32(3)
    elif isinstance(req.body, FetchSnapshot):
        w.u32(4)
        w.u64(req.body.index); w.u64(req.body.term); w.u64(req.body.offset)
    elif isinstance(req.body, Read):
        w.u32(5)
        w.bytes(req.body.query)
        w.u32(int(req.body.mode))
    elif isinstance(req.body, TransferLeadership):
        w.u32(6)
        w.option_u64(req.body.to)
    elif isinstance(req.body, InspectRequest):
        w.u32(7)
    elif isinstance(req.body, ChangeMembership):
        w.u32(8)
        _write_membership_change(w, req.body.change)
    elif isinstance(req.body, MembershipRequest):
        w.u32(9)
    else:
        raise TypeError(f"not a Request: {req.body!r}")
    return w.done()


def decode_client_request(data: bytes, limit: int = CLIENT_REQUEST_BYTES_MAX) -> ClientRequest:
    r = Reader(data, limit)
    version, cluster_id, request_id = r.u16(), r.u64(), r.u64()
    body: Request
    tag = r.tag("Request", 10)
    if tag == 0:
        body = StatusRequest()
    elif tag == 1:
        body = Propose(command=r.bytes())
    elif tag == 2:
        body = CountersRequest()
    elif tag == 3:
        body = SnapshotRequest()
    elif tag == 4:
        body = FetchSnapshot(index=r.u64(), term=r.u64(), offset=r.u64())
    elif tag == 5:
        body = Read(query=r.bytes(), mode=ReadMode(r.tag("ReadMode", 2)))
    elif tag == 6:
        body = TransferLeadership(to=r.option_u64())
    elif tag == 7:
        body = InspectRequest()
    elif tag == 8:
        body = ChangeMembership(_read_membership_change(r))
    else:
        body = MembershipRequest()
    r.end()
    return ClientRequest(version, cluster_id, request_id, body)


def encode_client_response(resp: ClientResponse) -> bytes:
    w = Writer()
    w.u16(resp.version)
    w.u64(resp.request_id)
    b = resp.body
    if isinstance(b, Status):
        w.u32(0)
        _encode_status(w, b)
    elif isinstance(b, Applied):
        w.u32(2)
        w.u64(b.index)
        w.bytes(b.result)
    elif isinstance(b, Counters):
        w.u32(3)
        w.u64(len(b.counters))
        for c in b.counters:
            w.string(c.name)
            w.u64(c.value)
    elif isinstance(b, Snapshot):
        w.u32(4)
        w.u64(b.index); w.u64(b.term); w.u64(b.total_len)
    elif isinstance(b, SnapshotChunk):
        w.u32(5)
        w.u64(b.index); w.u64(b.term); w.u64(b.total_len); w.u64(b.offset); w.bytes(b.data)
    elif isinstance(b, Transferred):
        w.u32(6)
        w.u64(b.leader); w.u64(b.term)
    elif isinstance(b, Inspection):
        w.u32(7)
        _encode_status(w, b.status)
        w.u32(b.os_pid); w.u64(b.uptime_ms)
        w.u64(len(b.votes))
        for v in b.votes:
            w.u64(v.candidate); w.u64(v.term); w.u32(int(v.kind)); w.u32(v.verdict.tag)
            if v.verdict.tag == 2:
                w.u64(v.verdict.voted_for)
            w.u64(v.ms_ago)
        w.u64(len(b.last_contact))
        for c in b.last_contact:
            w.u64(c.pid); w.u64(c.ms_ago)
        w.u64(b.elections_started); w.u64(b.elections_won)
        w.u64(len(b.counters))
        for c in b.counters:
            w.string(c.name)
            w.u64(c.value)
    elif isinstance(b, MembershipChanged):
        w.u32(8)
        w.u64(b.index)
    elif isinstance(b, MembershipInfo):
        w.u32(9)
        w.u64(b.index); w.bool(b.committed)
        w.u64(len(b.members))
        for m in b.members:
            w.u64(m.pid)
            _write_member_role(w, m.role)
            w.string(m.peer_url); w.string(m.client_url)
    else:
        w.u32(1)
        if isinstance(b, BadRequest):
            w.u32(0); w.string(b.reason)
        elif isinstance(b, WrongCluster):
            w.u32(1); w.u64(b.expected)
        elif isinstance(b, NotLeader):
            w.u32(2); w.option_u64(b.leader)
        elif isinstance(b, Dropped):
            w.u32(3)
        elif isinstance(b, Busy):
            w.u32(4)
        elif isinstance(b, Unavailable):
            w.u32(5); w.string(b.reason)
        elif isinstance(b, Unauthenticated):
            w.u32(6)
        else:
            raise TypeError(f"not a Response: {b!r}")
    return w.done()


def decode_client_response(data: bytes, limit: int = RESPONSE_BYTES_MAX) -> ClientResponse:
    r = Reader(data, limit)
    version, request_id = r.u16(), r.u64()
    tag = r.tag("Response", 10)
    body: Response
    if tag == 0:
        body = _decode_status(r)
    elif tag == 1:
        etag = r.tag("ClientError", 7)
        if etag == 0:
            body = BadRequest(r.string())
        elif etag == 1:
            body = WrongCluster(r.u64())
        elif etag == 2:
            body = NotLeader(r.option_u64())
        elif etag == 3:
            body = Dropped()
        elif etag == 4:
            body = Busy()
        elif etag == 5:
            body = Unavailable(r.string())
        else:
            body = Unauthenticated()
    elif tag == 2:
        body = Applied(index=r.u64(), result=r.bytes())
    elif tag == 3:
        counters = [Counter(name=r.string(), value=r.u64()) for _ in range(r.count(_COUNTER_MIN_SIZE))]
        body = Counters(counters)
    elif tag == 4:
        body = Snapshot(index=r.u64(), term=r.u64(), total_len=r.u64())
    elif tag == 5:
        body = SnapshotChunk(index=r.u64(), term=r.u64(), total_len=r.u64(), offset=r.u64(), data=r.bytes())
    elif tag == 6:
        body = Transferred(leader=r.u64(), term=r.u64())
    elif tag == 7:
        body = _decode_inspection(r)
    elif tag == 8:
        body = MembershipChanged(index=r.u64())
    else:
        index, committed = r.u64(), r.bool()
        members = [MemberInfo(r.u64(), _read_member_role(r), r.string(), r.string())
                   for _ in range(r.count(_MEMBER_INFO_MIN_SIZE))]
        body = MembershipInfo(index, committed, members)
    r.end()
    return ClientResponse(version, request_id, body)


_MEMBER_INFO_MIN_SIZE = 8 + 4 + 8 + 8  # pid, MemberRole Voter, two empty urls


def _write_member_role(w: "Writer", role: MemberRole) -> None:
    """MemberRole on the client wire (a serde enum): u32 0 Voter, or u32 1 then promote: bool.
    (A membership *entry* lays the role out differently: u32 role, then always a u8 promote.)"""
    if isinstance(role, Voter):
        w.u32(0)
    else:
        w.u32(1)
        w.bool(role.promote)


def _read_member_role(r: "Reader") -> MemberRole:
    return Voter() if r.tag("MemberRole", 2) == 0 else Learner(r.bool())


def _write_membership_change(w: "Writer", c: MembershipChange) -> None:
    if isinstance(c, AddLearner):
        w.u32(0)
        w.u64(c.pid); w.string(c.peer_url); w.string(c.client_url); w.bool(c.promote)
    elif isinstance(c, Promote):
        w.u32(1)
        w.u64(c.pid)
    elif isinstance(c, Remove):
        w.u32(2)
        w.u64(c.pid)
    else:
        raise TypeError(f"not a MembershipChange: {c!r}")


def _read_membership_change(r: "Reader") -> MembershipChange:
    tag = r.tag("MembershipChange", 3)
    if tag == 0:
        return AddLearner(pid=r.u64(), peer_url=r.string(), client_url=r.string(), promote=r.bool())
    if tag == 1:
        return Promote(r.u64())
    return Remove(r.u64())


def _encode_status(w: "Writer", b: Status) -> None:
    w.u64(b.pid); w.u32(int(b.role)); w.u64(b.term)
    w.option_u64(b.leader); w.option_u64(b.voted_for)
    w.u64(b.commit_index); w.u64(b.last_applied); w.u64(b.last_index)


def _decode_status(r: "Reader") -> Status:
    pid = r.u64()
    role = Role(r.tag("Role", 3))
    return Status(pid, role, term=r.u64(), leader=r.option_u64(), voted_for=r.option_u64(),
                  commit_index=r.u64(), last_applied=r.u64(), last_index=r.u64())


_VOTE_SEEN_MIN_SIZE = 8 + 8 + 4 + 4 + 8
_PEER_CONTACT_SIZE = 8 + 8


def _decode_inspection(r: "Reader") -> Inspection:
    status = _decode_status(r)
    os_pid, uptime_ms = r.u32(), r.u64()
    votes = []
    for _ in range(r.count(_VOTE_SEEN_MIN_SIZE)):
        candidate, term, kind = r.u64(), r.u64(), VoteKind(r.tag("VoteKind", 3))
        vtag = r.tag("VoteVerdict", len(VoteVerdict.NAMES))
        verdict = VoteVerdict(vtag, r.u64() if vtag == 2 else None)
        votes.append(VoteSeen(candidate, term, kind, verdict, ms_ago=r.u64()))
    contacts = [PeerContact(pid=r.u64(), ms_ago=r.u64()) for _ in range(r.count(_PEER_CONTACT_SIZE))]
    started, won = r.u64(), r.u64()
    counters = [Counter(name=r.string(), value=r.u64()) for _ in range(r.count(_COUNTER_MIN_SIZE))]
    return Inspection(status, os_pid, uptime_ms, votes, contacts, started, won, counters)


def encode_kv_command(cmd: KvCommand) -> bytes:
    w = Writer()
    w.u64(cmd.client_id)
    w.u64(cmd.seq)
    op = cmd.op
    if isinstance(op, Put):
        w.u32(0); w.bytes(op.key); w.bytes(op.value)
    elif isinstance(op, Get):
        w.u32(1); w.bytes(op.key)
    elif isinstance(op, Delete):
        w.u32(2); w.bytes(op.key)
    elif isinstance(op, Cas):
        w.u32(3); w.bytes(op.key); w.option_bytes(op.expected); w.option_bytes(op.new)
    else:
        raise TypeError(f"not a KvOp: {op!r}")
    return w.done()


def decode_kv_command(data: bytes, limit: int = KV_BYTES_MAX) -> KvCommand:
    r = Reader(data, limit)
    client_id, seq = r.u64(), r.u64()
    tag = r.tag("KvOp", 4)
    op: Union[Put, Get, Delete, Cas]
    if tag == 0:
        op = Put(key=r.bytes(), value=r.bytes())
    elif tag == 1:
        op = Get(key=r.bytes())
    elif tag == 2:
        op = Delete(key=r.bytes())
    else:
        op = Cas(key=r.bytes(), expected=r.option_bytes(), new=r.option_bytes())
    r.end()
    return KvCommand(client_id, seq, op)


def encode_kv_response(resp: KvResponse) -> bytes:
    w = Writer()
    if isinstance(resp, Done):
        w.u32(0)
    elif isinstance(resp, Value):
        w.u32(1); w.option_bytes(resp.value)
    elif isinstance(resp, Deleted):
        w.u32(2); w.bool(resp.existed)
    elif isinstance(resp, CasResult):
        w.u32(3); w.bool(resp.swapped); w.option_bytes(resp.current)
    elif isinstance(resp, StaleSequence):
        w.u32(4); w.u64(resp.last)
    elif isinstance(resp, BadCommand):
        w.u32(5)
    else:
        raise TypeError(f"not a KvResponse: {resp!r}")
    return w.done()


def decode_kv_response(data: bytes, limit: int = RESPONSE_BYTES_MAX) -> KvResponse:
    r = Reader(data, limit)
    tag = r.tag("KvResponse", 6)
    resp: KvResponse
    if tag == 0:
        resp = Done()
    elif tag == 1:
        resp = Value(r.option_bytes())
    elif tag == 2:
        resp = Deleted(r.bool())
    elif tag == 3:
        resp = CasResult(swapped=r.bool(), current=r.option_bytes())
    elif tag == 4:
        resp = StaleSequence(r.u64())
    else:
        resp = BadCommand()
    r.end()
    return resp


# ---------------------------------------------------------------------------------------------
# config.json (README.md "config.json"; docs/wire.md §2, §3)

ELECTION_TIMEOUT_MS_DEFAULT = 200
ELECTION_TIMEOUT_MS_MIN = 10
ELECTION_TIMEOUT_MS_MAX = 600_000
HEARTBEAT_MS_DEFAULT = 50
DATA_DIR_DEFAULT = "data"
CLIENT_PORT_OFFSET = 1000


class ConfigError(Exception):
    """A config file that cannot be used; str() is one line naming the file and the field.
    Callers exit with code 2."""


@dataclass(frozen=True)
class ServerConfig:
    pid: int
    url: str               # exactly as written (it feeds the default cluster id)
    endpoint: str          # ZeroMQ endpoint of the PULL socket, e.g. tcp://127.0.0.1:7001
    client_endpoint: str   # ZeroMQ endpoint of the ROUTER socket for clients


@dataclass(frozen=True)
class Config:
    path: str
    servers: List[ServerConfig]   # sorted by pid
    election_timeout_ms: int
    heartbeat_ms: int
    data_dir: str                 # already resolved against the config file's directory
    cluster_id: int
    cluster_key_file: Optional[str] = None  # resolved like data_dir; None: no authentication
    # object.initial_members: the pids of the bootstrap membership, all voters, sorted (default:
    # every server). A server of the file not listed starts as a non-member, waiting to be added.
    initial_members: Optional[List[int]] = None

    def bootstrap_members(self) -> List[int]:
        return list(self.initial_members) if self.initial_members is not None else self.pids()

    def bootstrap_membership(self) -> "Membership":
        """The membership in force until the log or a snapshot holds one (docs/wire.md §4,
        "Membership entries" rule 1): initial_members, all voters, with config.json's endpoints
        (a Rust server records them in its first membership entry, Options::urls)."""
        urls = {s.pid: (s.endpoint, s.client_endpoint) for s in self.servers}
        return Membership.of_voters(self.bootstrap_members(), urls)

    def server(self, pid: int) -> ServerConfig:
        for s in self.servers:
            if s.pid == pid:
                return s
        pids = ", ".join(str(s.pid) for s in self.servers)
        raise ConfigError(f"{self.path}: pid {pid} is not in object.Servers (pids: {pids})")

    def pids(self) -> List[int]:
        return [s.pid for s in self.servers]

    def peers(self, pid: int) -> List[ServerConfig]:
        return [s for s in self.servers if s.pid != pid]

    def data_dir_for(self, pid: int) -> str:
        """A server's own directory: ``<data_dir>/<pid>``."""
        return os.path.join(self.data_dir, str(pid))


def fnv1a_64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def default_cluster_id(servers: Sequence[ServerConfig]) -> int:
    """FNV-1a 64 of "{pid}={url};" over the servers in increasing pid order."""
    canonical = "".join(f"{s.pid}={s.url};" for s in sorted(servers, key=lambda s: s.pid))
    return fnv1a_64(canonical.encode("utf-8"))


def _describe(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"boolean {'true' if v else 'false'}"
    if isinstance(v, (int, float)):
        return f"number {json.dumps(v)}"
    if isinstance(v, str):
        return f"string {json.dumps(v)}"
    return "an array" if isinstance(v, list) else "an object"


def _is_uint(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 64


def _check_host(host: str) -> None:
    import ipaddress
    if not host:
        raise ValueError("the host is empty (expected e.g. 127.0.0.1:7001)")
    if host == "*":
        return
    if host.startswith("["):
        try:
            if not host.endswith("]"):
                raise ValueError
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"host {host} is not a valid IPv6 address") from None
        return
    if ":" in host:
        raise ValueError(f"IPv6 host {host} must be in brackets, e.g. [::1]:7001")
    if all(c.isdigit() or c == "." for c in host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"host {host} is not a valid IPv4 address") from None
        return
    if not all((c.isascii() and c.isalnum()) or c in ".-" for c in host):
        raise ValueError(f'host "{host}" is not a valid hostname (letters, digits, \'.\', \'-\')')


def _parse_endpoint(url: str):
    """('tcp', host, port) | ('ipc', path) | ('inproc', name); ValueError says what is wrong."""
    if url.startswith("tcp://"):
        hostport = url[len("tcp://"):]
    elif url.startswith("ipc://"):
        if len(url) == len("ipc://"):
            raise ValueError("ipc:// needs a path, e.g. ipc:///tmp/leader-1.sock")
        return ("ipc", url[len("ipc://"):])
    elif url.startswith("inproc://"):
        if len(url) == len("inproc://"):
            raise ValueError("inproc:// needs a name, e.g. inproc://server-1")
        return ("inproc", url[len("inproc://"):])
    elif "://" in url:
        scheme = url.split("://", 1)[0]
        raise ValueError(f'unsupported transport "{scheme}" (expected host:port, tcp://host:port, '
                         "ipc://path or inproc://name)")
    else:
        hostport = url
    if ":" not in hostport:
        raise ValueError("expected host:port (e.g. 127.0.0.1:7001), tcp://host:port, ipc://path or inproc://name")
    host, port = hostport.rsplit(":", 1)
    _check_host(host)
    if not port or not all(c in "0123456789" for c in port):
        raise ValueError(f'port "{port}" is not a number (expected 1-65535)')
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port {port} is out of range (1-65535)")
    return ("tcp", host, int(port))


def _render(ep) -> str:
    return f"tcp://{ep[1]}:{ep[2]}" if ep[0] == "tcp" else f"{ep[0]}://{ep[1]}"


def load_config(path: str) -> Config:
    """Read and validate config.json as the Rust server does; raises ConfigError (exit 2)."""
    path = str(path)

    def invalid(fld: str, message: str) -> ConfigError:
        sep = " " if message.startswith("is ") else ": "
        return ConfigError(f"{path}: {fld}{sep}{message}")

    def wrong_type(fld: str, expected: str, found: object) -> ConfigError:
        return invalid(fld, f"expected {expected}, found {_describe(found)}")

    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file: {e.strerror} (os error {e.errno})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: cannot read config file: {e}") from None
    try:
        root = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None

    if not isinstance(root, dict):
        raise wrong_type("(top level)", "an object", root)
    if "object" not in root:
        raise invalid("object", 'missing; expected {"object": {"total": N, "Servers": [...]}}')
    obj = root["object"]
    if not isinstance(obj, dict):
        raise wrong_type("object", "an object", obj)
    if "total" not in obj:
        raise invalid("object.total", "missing; it must give the number of servers")
    total = obj["total"]
    if not _is_uint(total):
        raise wrong_type("object.total", "a non-negative integer", total)
    if "Servers" not in obj:
        raise invalid("object.Servers", "missing; list the servers")
    items = obj["Servers"]
    if not isinstance(items, list):
        raise wrong_type("object.Servers", "an array of servers", items)
    if not items:
        raise invalid("object.Servers", "is empty; list at least one server")
    if total != len(items):
        raise invalid("object.total", f"is {total} but object.Servers lists {len(items)} servers")

    servers: List[ServerConfig] = []
    first_of_pid = {}
    bound = {}
    for i, s in enumerate(items):
        at = f"object.Servers[{i}]"
        if not isinstance(s, dict):
            raise wrong_type(at, 'an object like {"mypid": 1, "url": "127.0.0.1:7001"}', s)
        if "mypid" not in s:
            raise invalid(f"{at}.mypid", 'missing; each server needs "mypid" and "url"')
        pid = s["mypid"]
        if isinstance(pid, int) and not isinstance(pid, bool) and pid <= 0:
            raise invalid(f"{at}.mypid", f"{pid}: pids are positive integers")
        if not _is_uint(pid):
            raise wrong_type(f"{at}.mypid", "a positive integer", pid)
        if pid in first_of_pid:
            raise invalid(f"{at}.mypid", f"{pid} is also the pid of object.Servers[{first_of_pid[pid]}]; "
                                         "pids must be unique")
        first_of_pid[pid] = i
        if "url" not in s:
            raise invalid(f"{at}.url", 'missing; each server needs "mypid" and "url"')
        url = s["url"]
        if not isinstance(url, str):
            raise wrong_type(f"{at}.url", 'a string like "127.0.0.1:7001"', url)
        try:
            ep = _parse_endpoint(url)
        except ValueError as e:
            raise invalid(f"{at}.url", f"{json.dumps(url)}: {e}") from None
        client_field = f"{at}.client_url"
        if "client_url" not in s:
            if ep[0] == "tcp":
                port = ep[2] + CLIENT_PORT_OFFSET
                if port > 65535:
                    raise invalid(client_field, f"absent, and the default (url port {ep[2]} + {CLIENT_PORT_OFFSET} "
                                                f"= {port}) would be out of range (1-65535); set client_url explicitly")
                client = ("tcp", ep[1], port)
            else:
                client = (ep[0], ep[1] + ".client")
        elif isinstance(s["client_url"], str):
            try:
                client = _parse_endpoint(s["client_url"])
            except ValueError as e:
                raise invalid(client_field, f"{json.dumps(s['client_url'])}: {e}") from None
        else:
            raise wrong_type(client_field, "a string", s["client_url"])
        endpoint, client_endpoint = _render(ep), _render(client)
        for fld, e in ((f"{at}.url", endpoint), (client_field, client_endpoint)):
            if e in bound:
                raise invalid(fld, f"endpoint {e} is already used by {bound[e]}; each must be distinct")
            bound[e] = fld
        servers.append(ServerConfig(pid, url, endpoint, client_endpoint))
    servers.sort(key=lambda s: s.pid)

    def optional_uint(key: str) -> Optional[int]:
        if key not in obj:
            return None
        v = obj[key]
        if not _is_uint(v):
            raise wrong_type(f"object.{key}", "a non-negative integer", v)
        return v

    heartbeat_ms = optional_uint("heartbeat_ms")
    heartbeat_ms = HEARTBEAT_MS_DEFAULT if heartbeat_ms is None else heartbeat_ms
    if heartbeat_ms < 1:
        raise invalid("object.heartbeat_ms", "0 must be at least 1")
    election_ms = optional_uint("election_timeout_ms")
    election_ms = ELECTION_TIMEOUT_MS_DEFAULT if election_ms is None else election_ms
    if not ELECTION_TIMEOUT_MS_MIN <= election_ms <= ELECTION_TIMEOUT_MS_MAX:
        raise invalid("object.election_timeout_ms",
                      f"{election_ms} is out of range ({ELECTION_TIMEOUT_MS_MIN}-{ELECTION_TIMEOUT_MS_MAX})")
    if election_ms <= heartbeat_ms:
        raise invalid("object.election_timeout_ms",
                      f"{election_ms} must be greater than object.heartbeat_ms ({heartbeat_ms}), "
                      "or followers time out between heartbeats")
    data_dir = obj.get("data_dir", DATA_DIR_DEFAULT)
    if not isinstance(data_dir, str):
        raise wrong_type("object.data_dir", "a string", data_dir)
    if data_dir == "":
        raise invalid("object.data_dir", '"" is empty; omit it for "data"')
    # Relative to the config file's directory, not the working directory.
    data_dir = os.path.join(os.path.dirname(path), data_dir)
    initial_members = None
    if "initial_members" in obj:
        fld, v = "object.initial_members", obj["initial_members"]
        if not isinstance(v, list):
            raise wrong_type(fld, "a list of pids, e.g. [1, 2, 3]", v)
        known = [s.pid for s in servers]
        initial_members = []
        for i, p in enumerate(v):
            if not _is_uint(p):
                raise wrong_type(f"{fld}[{i}]", "a pid", p)
            if p not in known:
                raise invalid(f"{fld}[{i}]", f"pid {p} is not in object.Servers [{', '.join(map(str, known))}]")
            if p in initial_members:
                raise invalid(f"{fld}[{i}]", f"pid {p} is listed twice")
            initial_members.append(p)
        if not initial_members:
            raise invalid(fld, "[] is empty; a cluster needs at least one member")
        initial_members.sort()
    cluster_id = optional_uint("cluster_id")
    if cluster_id is None:
        # Over the bootstrap members only (as the Rust loader), so a file that also lists
        # servers to be added later names the cluster the cluster started as.
        boot = servers if initial_members is None else [s for s in servers if s.pid in initial_members]
        cluster_id = default_cluster_id(boot)
    key_file = obj.get("cluster_key_file")
    if key_file is not None:
        if not isinstance(key_file, str):
            raise wrong_type("object.cluster_key_file", "a string (a path)", key_file)
        if key_file == "":
            raise invalid("object.cluster_key_file", '"" is empty; omit it for no key')
        key_file = os.path.join(os.path.dirname(path), key_file)
    return Config(path, servers, election_ms, heartbeat_ms, data_dir, cluster_id, key_file, initial_members)


# ---------------------------------------------------------------------------------------------
# Cluster key: an HMAC-SHA256 tag after every frame (src/transport/auth.rs)

def load_cluster_key(path: str) -> bytes:
    """A key file: hex text (whitespace ignored), at least 16 bytes of key, and not readable
    or writable by group or others. Raises ConfigError (exit 2)."""
    def err(problem: str) -> ConfigError:
        return ConfigError(f"cluster key file {path}: {problem}")
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise err(f"cannot read it: {e}") from None
    if mode & 0o077:
        raise err(f"permissions {mode:03o} let other users read or change it; run `chmod 600 {path}`")
    digits = "".join(text.split())
    try:
        if len(digits) % 2:
            raise ValueError
        key = bytes.fromhex(digits)
    except ValueError:
        raise err("expected hexadecimal text (as `leader keygen` writes)") from None
    if len(key) < 16:
        raise err(f"{len(key)} bytes of key; at least 16 needed")
    return key


def seal(key: Optional[bytes], message: bytes) -> bytes:
    """The frame to send: `message`, then its HMAC-SHA256 tag if there is a key."""
    if key is None:
        return message
    return message + hmac.new(key, message, hashlib.sha256).digest()


def unseal(key: Optional[bytes], frame: bytes) -> Optional[bytes]:
    """The message inside a received frame, or None when its tag does not verify."""
    if key is None:
        return frame
    if len(frame) < TAG_BYTES:
        return None
    message, tag = frame[:-TAG_BYTES], frame[-TAG_BYTES:]
    if not hmac.compare_digest(hmac.new(key, message, hashlib.sha256).digest(), tag):
        return None
    return message


# ---------------------------------------------------------------------------------------------
# A one-shot client call, for scripts and tests

def redirect_probe(config: Config, pid: int, timeout_s: float = 2.0) -> Optional[int]:
    """Ask server `pid` to apply a harmless command (a KV Get without a session) and return the
    leader it names: the `leader` of its NotLeader answer, or `pid` itself if it applied the
    command (it leads). None: no leader known, or no answer within `timeout_s`."""
    import zmq  # only this helper needs ZeroMQ

    key = load_cluster_key(config.cluster_key_file) if config.cluster_key_file else None
    command = encode_kv_command(KvCommand(client_id=0, seq=0, op=Get(b"redirect-probe")))
    request = ClientRequest(CLIENT_WIRE_VERSION, config.cluster_id, 1, Propose(command))
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(config.server(pid).client_endpoint)
        sock.send_multipart([b"", seal(key, encode_client_request(request))])
        if not sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            return None
        message = unseal(key, sock.recv_multipart()[-1])
        if message is None:
            raise WireError("garbage", "the response's MAC does not verify: wrong cluster key?")
        body = decode_client_response(message).body
    finally:
        sock.close(linger=0)
        ctx.term()
    if isinstance(body, NotLeader):
        return body.leader
    if isinstance(body, Applied):
        return pid
    raise WireError("garbage", f"unexpected answer {body!r}")
