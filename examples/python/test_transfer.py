#!/usr/bin/env python3
"""Self-tests for leadership transfer and reads (docs/wire.md §4 rules 9-12, §5 Request tags
5-6) in leader_wire.py, peer.py and client.py.

    python3 examples/python/test_transfer.py [-v]

Standard library and pyzmq only. The wire tests check exact bytes of Message tags 8-13 and of
the new client requests and responses, built by hand from docs/wire.md's tables (and, for the
snapshot requests, its §7 examples). The peer tests drive a real peer.Peer through `step`,
`tick` and `on_client`-level helpers with explicit clock values, and inspect its outbox, as
test_prevote.py does. The last tests run three peer.py processes (ipc:// sockets in a temporary
directory) and one client.py against them: they wait on conditions with deadlines, never on
sleeps.
"""

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import leader_wire as w  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CLUSTER = 0x1122334455667788


def u64(v: int) -> bytes:
    return v.to_bytes(8, "little")


def u32(v: int) -> bytes:
    return v.to_bytes(4, "little")


def doc_hex(title: str) -> bytes:
    """The bytes of the docs/wire.md §7 example headed `title`."""
    with open(os.path.join(HERE, "..", "..", "docs", "wire.md"), encoding="utf-8") as f:
        doc = f.read()
    rest = doc[doc.index(f" {title}\n"):]
    block = rest[rest.index("```text\n") + 8:]
    block = block[:block.index("```")]
    return bytes.fromhex("".join("".join(line.split()[1:]) for line in block.splitlines()))


class WireTests(unittest.TestCase):
    def check(self, m, expected: bytes):
        self.assertEqual(w.encode_message(m), expected)
        self.assertEqual(w.decode_message(expected), m)
        env = w.Envelope(w.WIRE_VERSION, CLUSTER, 2, 1, m)
        data = w.encode_envelope(env)
        self.assertEqual(data, b"\x01\x00" + u64(CLUSTER) + u64(2) + u64(1) + u32(0) + expected)
        self.assertEqual(w.open_envelope(data, CLUSTER, me=1, peers=[2, 3]), env)

    def test_message_tags_8_to_13(self):
        self.check(w.TimeoutNow(term=5, leader_id=2), u32(8) + u64(5) + u64(2))
        self.check(w.TransferVote(6, 2, 7, 5), u32(9) + u64(6) + u64(2) + u64(7) + u64(5))
        self.check(w.LeaderCheck(term=5, leader_id=2, round=9), u32(10) + u64(5) + u64(2) + u64(9))
        self.check(w.LeaderCheckResponse(term=5, round=9), u32(11) + u64(5) + u64(9))
        self.check(w.ReadIndex(term=5, id=3), u32(12) + u64(5) + u64(3))
        self.check(w.ReadIndexResponse(term=5, id=3, index=12, index_term=4),
                   u32(13) + u64(5) + u64(3) + u64(12) + u64(4))

    def test_transfer_vote_has_the_layout_of_request_vote(self):
        tv = w.encode_message(w.TransferVote(9, 3, 17, 8))
        rv = w.encode_message(w.RequestVote(9, 3, 17, 8))
        self.assertEqual((tv[:4], rv[:4]), (u32(9), u32(0)))
        self.assertEqual(tv[4:], rv[4:])

    def test_strict_decoding_of_the_new_messages(self):
        def reason(data):
            with self.assertRaises(w.WireError) as cm:
                w.decode_message(data)
            return cm.exception.reason
        self.assertEqual(reason(u32(14) + u64(5) + u64(2)), "garbage")   # no tag 14 yet
        for m in (w.TimeoutNow(5, 2), w.LeaderCheck(5, 2, 1), w.ReadIndexResponse(5, 1, 2, 3)):
            good = w.encode_message(m)
            self.assertEqual(reason(good[:-1]), "truncated")
            self.assertEqual(reason(good + b"\0"), "garbage")

    def request(self, body, expected_body: bytes):
        req = w.ClientRequest(1, CLUSTER, 7, body)
        data = w.encode_client_request(req)
        self.assertEqual(data, b"\x01\x00" + u64(CLUSTER) + u64(7) + expected_body)
        self.assertEqual(w.decode_client_request(data), req)

    def response(self, body, expected_body: bytes):
        resp = w.ClientResponse(1, 7, body)
        data = w.encode_client_response(resp)
        self.assertEqual(data, b"\x01\x00" + u64(7) + expected_body)
        self.assertEqual(w.decode_client_response(data), resp)

    def test_read_and_transfer_requests(self):
        get = w.encode_kv_command(w.KvCommand(0, 0, w.Get(b"k")))
        self.assertEqual(get, u64(0) + u64(0) + u32(1) + u64(1) + b"k")
        self.request(w.Read(get, w.ReadMode.READ_INDEX), u32(5) + u64(len(get)) + get + u32(0))
        self.request(w.Read(get, w.ReadMode.LEASE), u32(5) + u64(len(get)) + get + u32(1))
        self.request(w.TransferLeadership(None), u32(6) + b"\x00")
        self.request(w.TransferLeadership(3), u32(6) + b"\x01" + u64(3))

    def test_transferred_and_unavailable(self):
        self.response(w.Transferred(leader=3, term=6), u32(6) + u64(3) + u64(6))
        self.response(w.Unavailable("abandoned"), u32(1) + u32(5) + u64(9) + b"abandoned")

    def test_snapshot_requests_match_the_documented_examples(self):
        # docs/wire.md §7 (generated from the Rust types by tests/wire_doc.rs).
        cases = [
            ("ClientRequest: Snapshot", w.ClientRequest(1, CLUSTER, 5, w.SnapshotRequest())),
            ("ClientRequest: FetchSnapshot (the last 4 bytes of the image above)",
             w.ClientRequest(1, CLUSTER, 6, w.FetchSnapshot(12, 3, 1_048_576))),
        ]
        for title, req in cases:
            self.assertEqual(w.encode_client_request(req), doc_hex(title), title)
            self.assertEqual(w.decode_client_request(doc_hex(title)), req, title)
        cases = [
            ("ClientResponse: Snapshot", w.ClientResponse(1, 5, w.Snapshot(12, 3, 1_048_580))),
            ("ClientResponse: SnapshotChunk",
             w.ClientResponse(1, 6, w.SnapshotChunk(12, 3, 1_048_580, 1_048_576, bytes.fromhex("deadbeef")))),
        ]
        for title, resp in cases:
            self.assertEqual(w.encode_client_response(resp), doc_hex(title), title)
            self.assertEqual(w.decode_client_response(doc_hex(title)), resp, title)

    def test_the_documented_transfer_and_read_examples(self):
        # docs/wire.md §7 "Transfer and read messages", generated from the Rust types and
        # checked against them by tests/wire_doc.rs: the same values, the same bytes here.
        get = w.encode_kv_command(w.KvCommand(0, 0, w.Get(b"k")))
        envelopes = [
            ("Envelope: TimeoutNow", w.TimeoutNow(5, 2)),
            ("Envelope: TransferVote", w.TransferVote(6, 2, 7, 5)),
            ("Envelope: LeaderCheck", w.LeaderCheck(5, 2, 9)),
            ("Envelope: LeaderCheckResponse", w.LeaderCheckResponse(5, 9)),
            ("Envelope: ReadIndex", w.ReadIndex(5, 3)),
            ("Envelope: ReadIndexResponse", w.ReadIndexResponse(5, 3, 12, 4)),
        ]
        for title, m in envelopes:
            env = w.Envelope(1, CLUSTER, 2, 1, m)
            self.assertEqual(w.encode_envelope(env), doc_hex(title), title)
            self.assertEqual(w.decode_envelope(doc_hex(title)), env, title)
        requests = [
            ('ClientRequest: Read (a KvCommand Get of "k", client_id and seq 0; ReadIndex)',
             w.ClientRequest(1, CLUSTER, 7, w.Read(get, w.ReadMode.READ_INDEX))),
            ("ClientRequest: TransferLeadership to server 3", w.ClientRequest(1, CLUSTER, 8, w.TransferLeadership(3))),
        ]
        for title, req in requests:
            self.assertEqual(w.encode_client_request(req), doc_hex(title), title)
            self.assertEqual(w.decode_client_request(doc_hex(title)), req, title)
        responses = [
            ("ClientResponse: Transferred", w.ClientResponse(1, 8, w.Transferred(3, 6))),
            ("ClientResponse: Error Unavailable", w.ClientResponse(1, 8, w.Unavailable("transfer abandoned"))),
        ]
        for title, resp in responses:
            self.assertEqual(w.encode_client_response(resp), doc_hex(title), title)
            self.assertEqual(w.decode_client_response(doc_hex(title)), resp, title)

    def test_strict_decoding_of_the_new_requests(self):
        def reason(decode, data):
            with self.assertRaises(w.WireError) as cm:
                decode(data)
            return cm.exception.reason
        head = b"\x01\x00" + u64(CLUSTER) + u64(7)
        read = head + u32(5) + u64(1) + b"q"
        self.assertEqual(reason(w.decode_client_request, read + u32(2)), "garbage")      # no ReadMode 2
        self.assertEqual(reason(w.decode_client_request, read + u32(0) + b"\0"), "garbage")
        self.assertEqual(reason(w.decode_client_request, head + u32(6) + b"\x02"), "garbage")  # Option tag
        self.assertEqual(reason(w.decode_client_request, head + u32(10)), "garbage")      # no Request tag 10
        resp = b"\x01\x00" + u64(7)
        self.assertEqual(reason(w.decode_client_response, resp + u32(10)), "garbage")    # no Response tag 10
        self.assertEqual(reason(w.decode_client_response, resp + u32(1) + u32(7)), "garbage")  # no error 7
        self.assertEqual(reason(w.decode_client_response, resp + u32(6) + u64(3)), "truncated")


class PeerBase(unittest.TestCase):
    """A peer.Peer with pid 3 in a cluster of 3; its clock is whatever `now` the test passes."""

    def setUp(self):
        try:
            import peer  # needs pyzmq
        except SystemExit as e:
            self.skipTest(str(e))
        self.peer_mod = peer
        self.dir = tempfile.mkdtemp(prefix="transfer-")
        servers = ",".join(f'{{"mypid": {i}, "url": "ipc://{self.dir}/{i}.sock"}}' for i in range(1, 4))
        self.config_path = os.path.join(self.dir, "config.json")
        with open(self.config_path, "w") as f:
            f.write(f'{{"object": {{"total": 3, "election_timeout_ms": 200, "heartbeat_ms": 50, '
                    f'"Servers": [{servers}]}}}}')
        self.config = w.load_config(self.config_path)
        self.peers = []

    def tearDown(self):
        for p in self.peers:
            p.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def make(self, campaign=True, term=5, voted_for=None, log_terms=()):
        data_dir = os.path.join(self.dir, f"data3-{len(self.peers)}")
        os.makedirs(data_dir, exist_ok=True)
        self.peer_mod.HardState(data_dir).save(term, voted_for)
        p = self.peer_mod.Peer(self.config, 3, data_dir, campaign, client=False, verbose=False)
        self.peers.append(p)
        p.log.append([w.Entry(t, i + 1, b"x") for i, t in enumerate(log_terms)])
        p.log.sync()
        p.lines = []
        p.emit = p.lines.append
        p.answers = []
        p.answer = lambda route, request_id, body: p.answers.append((route, request_id, body))
        return p

    def sent(self, p):
        out, p.outbox = p.outbox, []
        return out

    def hear_leader(self, p, leader, now):
        p.step(leader, w.AppendEntries(p.term, leader, p.log.last_index(), p.log.last_term(), [], 0), now)
        self.assertEqual(self.sent(p)[0][1].success, True)


class FollowerTests(PeerBase):
    # -- rule 11: LeaderCheck ---------------------------------------------------------------

    def test_leader_check_is_answered_and_is_leader_contact(self):
        p = self.make()
        due = p.election_due
        p.step(1, w.LeaderCheck(5, 1, 42), now=100.0)
        self.assertEqual(self.sent(p), [(1, w.LeaderCheckResponse(5, 42))])
        self.assertEqual((p.leader_id, p.leader_contact), (1, (5, 100.0)))
        self.assertNotEqual(p.election_due, due)
        # Contact makes it sticky (rule 7): a higher RequestVote is now ignored.
        p.step(2, w.RequestVote(6, 2, 9, 9), now=100.1)
        self.assertEqual((self.sent(p), p.term), ([], 5))

    def test_leader_check_ends_a_candidacy(self):
        p = self.make()
        p.become_candidate(100.0)
        self.sent(p)
        p.step(1, w.LeaderCheck(6, 1, 1), now=100.0)
        self.assertEqual((p.role, p.leader_id), ("follower", 1))
        self.assertEqual(self.sent(p), [(1, w.LeaderCheckResponse(6, 1))])

    def test_leader_check_terms(self):
        p = self.make()
        p.step(1, w.LeaderCheck(4, 1, 7), now=100.0)  # a stale leader: told our term, round 0
        self.assertEqual(self.sent(p), [(1, w.LeaderCheckResponse(5, 0))])
        p.step(1, w.LeaderCheck(8, 1, 2), now=100.0)  # a later term: adopted, then answered
        self.assertEqual(self.sent(p), [(1, w.LeaderCheckResponse(8, 2))])
        self.assertEqual((p.term, p.voted_for, p.leader_id), (8, None, 1))
        p.flush()
        self.assertEqual(p.hard.term, 8)

    def test_leader_check_from_someone_else_is_dropped(self):
        p = self.make()
        p.step(1, w.LeaderCheck(6, 2, 1), now=100.0)  # leader_id is not the sender
        self.assertEqual((self.sent(p), p.term, p.drops["invalid"]), ([], 5, 1))

    # -- rule 12: ReadIndex -----------------------------------------------------------------

    def test_read_index_is_refused_with_index_0(self):
        p = self.make(log_terms=(1, 5))
        p.step(1, w.ReadIndex(5, 11), now=100.0)
        self.assertEqual(self.sent(p), [(1, w.ReadIndexResponse(5, 11, 0, 0))])
        p.step(1, w.ReadIndex(3, 12), now=100.0)
        self.assertEqual(self.sent(p), [(1, w.ReadIndexResponse(5, 12, 0, 0))])
        p.step(1, w.ReadIndex(7, 13), now=100.0)
        self.assertEqual(self.sent(p), [(1, w.ReadIndexResponse(7, 13, 0, 0))])
        self.assertEqual((p.term, p.leader_id), (7, None))

    # -- rule 9, as a voter: TransferVote ---------------------------------------------------

    def test_transfer_vote_is_not_ignored_by_a_sticky_follower(self):
        p = self.make(log_terms=(5,))
        self.hear_leader(p, 1, now=100.0)
        p.step(2, w.RequestVote(6, 2, 1, 5), now=100.05)  # sticky: ignored
        self.assertEqual(self.sent(p), [])
        p.step(2, w.TransferVote(6, 2, 1, 5), now=100.05)  # the leader asked for this one
        self.assertEqual(self.sent(p), [(2, w.RequestVoteResponse(6, True))])
        self.assertEqual((p.term, p.voted_for), (6, 2))
        self.assertEqual(p.vote_counts["transfer_vote_granted"], 1)

    def test_transfer_vote_keeps_the_voting_rules(self):
        p = self.make(log_terms=(5, 5))
        for m in (w.TransferVote(6, 2, 1, 5),   # shorter log
                  w.TransferVote(6, 1, 2, 5)):  # candidate_id is not the sender
            p.step(2, m, now=100.0)
            self.assertEqual(self.sent(p), [(2, w.RequestVoteResponse(6, False))], m)
        p.step(2, w.TransferVote(4, 2, 9, 4), now=100.0)  # a lower term
        self.assertEqual(self.sent(p), [(2, w.RequestVoteResponse(6, False))])
        p.step(1, w.TransferVote(6, 1, 2, 5), now=100.0)  # one vote per term: already asked by 2
        self.assertEqual(self.sent(p), [(1, w.RequestVoteResponse(6, True))])
        p.step(2, w.TransferVote(6, 2, 2, 5), now=100.0)
        self.assertEqual(self.sent(p), [(2, w.RequestVoteResponse(6, False))])

    # -- rule 9, as the target: TimeoutNow --------------------------------------------------

    def test_timeout_now_from_the_leader_campaigns_at_once_without_pre_vote(self):
        p = self.make(log_terms=(2, 5))
        self.hear_leader(p, 1, now=100.0)
        p.step(1, w.TimeoutNow(5, 1), now=100.01)  # long before any election timeout
        self.assertEqual((p.term, p.voted_for, p.role), (6, 3, "candidate"))
        self.assertEqual(sorted(self.sent(p)), [(1, w.TransferVote(6, 3, 2, 5)), (2, w.TransferVote(6, 3, 2, 5))])
        p.flush()
        self.assertEqual((p.hard.term, p.hard.voted_for), (6, 3))  # persisted before they left
        p.step(2, w.RequestVoteResponse(6, True), now=100.02)
        self.assertEqual(p.role, "leader")
        self.assertEqual((p.vote_counts["transfer_campaigns"], p.vote_counts["campaigns"]), (1, 0))

    def test_timeout_now_of_a_higher_term_is_obeyed(self):
        p = self.make()
        p.step(1, w.TimeoutNow(8, 1), now=100.0)
        self.assertEqual((p.term, p.role), (9, "candidate"))
        self.assertTrue(all(isinstance(m, w.TransferVote) for _, m in self.sent(p)))

    def test_other_timeout_nows_are_ignored(self):
        p = self.make()
        self.hear_leader(p, 1, now=100.0)
        p.step(2, w.TimeoutNow(5, 2), now=100.0)   # not the leader we follow
        self.assertEqual(p.vote_counts["timeout_now_ignored"], 1)
        p.step(1, w.TimeoutNow(4, 1), now=100.0)   # a lower term (rule 1: a stale message)
        self.assertEqual((self.sent(p), p.term, p.role), ([], 5, "follower"))
        p.step(2, w.TimeoutNow(6, 1), now=100.0)   # leader_id is not the sender
        self.assertEqual((self.sent(p), p.term, p.drops["invalid"]), ([], 5, 1))
        q = self.make(campaign=False)
        self.hear_leader(q, 1, now=100.0)
        q.step(1, w.TimeoutNow(5, 1), now=100.0)   # --no-campaign: never stands
        self.assertEqual((self.sent(q), q.term, q.role), ([], 5, "follower"))


class HandOverTests(PeerBase):
    """Rule 10: a leader without a state machine hands over as soon as it can."""

    def leader(self, log_terms=(2,)):
        p = self.make(log_terms=log_terms)
        p.become_candidate(100.0)
        p.step(1, w.RequestVoteResponse(6, True), now=100.0)
        self.assertEqual(p.role, "leader")
        p.flush()  # the no-op is durable
        self.sent(p)
        return p

    def ack(self, p, frm, match, now):
        p.step(frm, w.AppendEntriesResponse(p.term, True, match), now)

    def timeout_nows(self, p):
        return [(to, m) for to, m in self.sent(p) if isinstance(m, w.TimeoutNow)]

    def test_the_first_follower_with_the_no_op_gets_timeout_now(self):
        p = self.leader()
        noop = p.log.last_index()
        self.assertEqual(p.log.entries[-1], w.Entry(6, noop, b""))
        self.ack(p, 2, noop - 1, now=100.01)   # not the no-op yet
        self.assertEqual(self.timeout_nows(p), [])
        self.assertEqual(p.handover_target(), None)
        self.ack(p, 2, noop, now=100.02)
        self.assertEqual(self.timeout_nows(p), [(2, w.TimeoutNow(6, 3))])
        self.assertEqual(p.lines[-1], {"transfer": {"to": 2, "term": 6}})
        self.ack(p, 1, noop, now=100.03)        # one target at a time
        self.assertEqual(self.timeout_nows(p), [])
        self.assertEqual((p.handover_target(), p.vote_counts["handovers"]), (2, 1))

    def test_no_new_term_within_an_election_timeout_tries_the_next_follower(self):
        p = self.leader()
        noop = p.log.last_index()
        self.ack(p, 1, noop, now=100.01)
        self.ack(p, 2, noop, now=100.01)
        self.assertEqual(self.timeout_nows(p), [(1, w.TimeoutNow(6, 3))])
        p.tick(100.01 + p.election_s * 0.99)
        self.assertEqual(self.timeout_nows(p), [])
        later = 100.01 + p.election_s
        p.tick(later)
        self.assertEqual(self.timeout_nows(p), [(2, w.TimeoutNow(6, 3))])
        for frm in (1, 2):  # heartbeats answered: it keeps leading (check quorum)
            self.ack(p, frm, noop, now=later)
        p.tick(later + p.election_s)            # round again
        self.assertEqual(self.timeout_nows(p), [(1, w.TimeoutNow(6, 3))])
        self.assertEqual(p.role, "leader")

    def test_a_higher_term_ends_the_hand_over(self):
        p = self.leader()
        self.ack(p, 1, p.log.last_index(), now=100.01)
        self.timeout_nows(p)
        p.step(1, w.TransferVote(7, 1, p.log.last_index(), 6), now=100.02)  # the target campaigns
        self.assertEqual(self.sent(p), [(1, w.RequestVoteResponse(7, True))])
        self.assertEqual((p.role, p.term, p.handover), ("follower", 7, None))
        p.tick(100.02 + 10 * p.election_s)
        self.assertEqual(self.timeout_nows(p), [])

    def test_transfer_request_names_the_target_and_is_answered_by_the_new_leader(self):
        p = self.leader()
        noop = p.log.last_index()
        p.transfer_request("r", 9, 2, now=100.01)     # wants 2, which has not the no-op yet
        self.ack(p, 1, noop, now=100.02)              # 1 is up to date, but not the one wanted
        self.assertEqual(self.timeout_nows(p), [])
        self.ack(p, 2, noop, now=100.03)
        self.assertEqual(self.timeout_nows(p), [(2, w.TimeoutNow(6, 3))])
        self.assertEqual(p.answers, [])
        p.step(2, w.AppendEntries(7, 2, noop, 6, [w.Entry(7, noop + 1, b"")], 0), now=100.04)
        p.tick(100.04)
        self.assertEqual(p.answers, [("r", 9, w.Transferred(2, 7))])

    def test_transfer_requests_that_cannot_be_served(self):
        p = self.leader()
        p.transfer_request("a", 1, 3, now=100.0)      # itself: it cannot serve
        p.transfer_request("b", 2, 9, now=100.0)      # not a server
        self.assertEqual([type(b) for _, _, b in p.answers], [w.Unavailable, w.Unavailable])
        p.answers.clear()
        p.transfer_request("c", 3, None, now=100.0)
        p.tick(100.0 + 2 * p.election_s)              # nobody ever caught up: abandoned
        self.assertEqual(len(p.answers), 1)
        self.assertIsInstance(p.answers[0][2], w.Unavailable)
        q = self.make()
        self.hear_leader(q, 1, now=100.0)
        q.transfer_request("d", 4, None, now=100.0)   # a follower redirects
        self.assertEqual(q.answers, [("d", 4, w.NotLeader(1))])


class Process:
    """A child process whose stdout JSON lines go to `sink` as (time read, pid, line); killed
    by pid at the end."""

    def __init__(self, pid, args, sink):
        self.proc = subprocess.Popen([sys.executable] + args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, args=(pid, sink), daemon=True).start()

    def _read(self, pid, sink):
        for line in self.proc.stdout:
            try:
                sink.put((time.monotonic(), pid, json.loads(line)))
            except ValueError:
                pass

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.proc.stdin.close()


class ProcessTests(unittest.TestCase):
    """Three peer.py processes: every leader hands over at once, so leadership keeps moving by
    TimeoutNow, each time to the target named, in the next term, far faster than an election
    timeout (here 1 s, so that no ordinary election can explain it)."""

    def setUp(self):
        try:
            import zmq  # noqa: F401
        except ImportError:
            self.skipTest("needs pyzmq")
        self.dir = tempfile.mkdtemp(prefix="transfer-procs-")
        servers = ",".join(f'{{"mypid": {i}, "url": "ipc://{self.dir}/{i}.sock"}}' for i in range(1, 4))
        self.config = os.path.join(self.dir, "config.json")
        with open(self.config, "w") as f:
            f.write(f'{{"object": {{"total": 3, "election_timeout_ms": 1000, "heartbeat_ms": 50, '
                    f'"Servers": [{servers}]}}}}')
        self.events = queue.Queue()
        self.procs = [Process(pid, [os.path.join(HERE, "peer.py"), "--pid", str(pid), "--config", self.config],
                              self.events) for pid in (1, 2, 3)]

    def tearDown(self):
        for p in self.procs:
            p.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def collect(self, deadline, enough):
        """Every (time, pid, line) until `enough(lines)`; fails at the deadline."""
        lines = []
        while not enough(lines):
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail(f"not enough events before the deadline: {lines}")
            try:
                lines.append(self.events.get(timeout=left))
            except queue.Empty:
                pass
        return lines

    def test_leadership_moves_by_timeout_now_to_the_named_target(self):
        def hand_overs(lines):
            """[(transfer line, its time, the time of the next term's leader line)]: each
            target led the next term; lines from the three processes may come in any order."""
            leaders = {l["term"]: (t, pid) for t, pid, l in lines if l.get("role") == "leader"}
            out = []
            for t, _, l in lines:
                if "transfer" in l and l["transfer"]["term"] + 1 in leaders:
                    led_at, pid = leaders[l["transfer"]["term"] + 1]
                    self.assertEqual(pid, l["transfer"]["to"], lines)
                    out.append((l["transfer"], t, led_at))
            return out
        # The first election takes 1-2 s (the election timeout); everything after is hand-overs.
        lines = self.collect(time.monotonic() + 30, lambda lines: len(hand_overs(lines)) >= 4)
        for transfer, sent_at, led_at in hand_overs(lines):
            self.assertLess(led_at - sent_at, 0.5, f"{transfer}: a hand-over, not an election timeout")
        terms = sorted(l["term"] for _, _, l in lines if l.get("role") == "leader")
        self.assertEqual(terms, list(range(terms[0], terms[0] + len(terms))), "one leader per term, no gap")

    def test_the_client_is_redirected_and_reads_are_refused_politely(self):
        # No server here can serve: a read ends, at its deadline, naming what each server said
        # (NotLeader everywhere), never in an error that would stop a client from looking
        # elsewhere, and never saying that it may still apply.
        self.collect(time.monotonic() + 30, lambda lines: any("transfer" in l for _, _, l in lines))
        out = subprocess.run([sys.executable, os.path.join(HERE, "client.py"), "--config", self.config,
                              "get", "k", "--deadline-ms", "500"], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 1, out)
        self.assertIn("no leader: 3 of 3 servers answer, none leads", out.stderr)
        self.assertNotIn("may still apply", out.stderr)


if __name__ == "__main__":
    unittest.main()
