#!/usr/bin/env python3
"""Self-tests for membership changes (thesis §4) in leader_wire.py, peer.py and client.py.

    python3 examples/python/test_membership.py [-v]

Standard library and pyzmq only. The wire tests compare against bytes built by hand from the
tables of docs/wire.md §4 ("Membership entries") and §5 (Request 8-9, Response 8-9,
MembershipChange, MembershipInfo, MemberRole). The peer tests drive a real peer.Peer (sockets
on ipc:// endpoints in a temporary directory) through `step` and `tick` with explicit clock
values, as test_prevote.py does; the process tests run peer.py and client.py and wait on
conditions (an exit, an answer), never on a sleep.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import leader_wire as w  # noqa: E402

CLUSTER = 0x1122334455667788
MAGIC = bytes.fromhex("ff6c65616465726d")  # "\xffleaderm"


def u64(v: int) -> bytes:
    return v.to_bytes(8, "little")


def u32(v: int) -> bytes:
    return v.to_bytes(4, "little")


def s(text: str) -> bytes:
    raw = text.encode("utf-8")
    return u64(len(raw)) + raw


def member_bytes(pid, role, promote, peer_url="", client_url=""):
    """One member of a membership entry, from the §4 table: pid u64, role u32, promote u8, urls."""
    return u64(pid) + u32(role) + bytes([promote]) + s(peer_url) + s(client_url)


def entry_bytes(*members, version=1, count=None):
    return MAGIC + bytes([version]) + u64(len(members) if count is None else count) + b"".join(members)


def voters(*pids):
    return w.Membership.of_voters(pids)


def with_learners(voter_pids, learner_pids, promote=False, urls=None):
    urls = urls or {}
    ms = [w.MemberInfo(p, w.Voter(), *urls.get(p, ("", ""))) for p in voter_pids]
    ms += [w.MemberInfo(p, w.Learner(promote), *urls.get(p, ("", ""))) for p in learner_pids]
    return w.Membership(tuple(sorted(ms, key=lambda m: m.pid)))


class EntryEncodingTests(unittest.TestCase):
    def test_bytes_of_a_voter_and_a_learner(self):
        m = w.Membership((w.MemberInfo(1, w.Voter(), "tcp://h:1", "tcp://h:2"),
                          w.MemberInfo(4, w.Learner(True), "", "")))
        expected = (MAGIC + b"\x01" + u64(2)
                    + u64(1) + b"\x00\x00\x00\x00" + b"\x00" + u64(9) + b"tcp://h:1" + u64(9) + b"tcp://h:2"
                    + u64(4) + b"\x01\x00\x00\x00" + b"\x01" + u64(0) + u64(0))
        self.assertEqual(w.encode_membership(m), expected)
        self.assertEqual(w.decode_membership(expected), m)
        self.assertTrue(w.is_membership_entry(expected))

    def test_exact_hex_of_a_single_voter(self):
        # 8 magic bytes, version 01, count 1, pid 7, role 0, promote 0, two empty urls: 46 bytes.
        data = bytes.fromhex("ff6c65616465726d 01 0100000000000000 0700000000000000 00000000 00"
                             "0000000000000000 0000000000000000".replace(" ", ""))
        self.assertEqual(len(data), 46)
        self.assertEqual(w.decode_membership(data), voters(7))
        self.assertEqual(w.encode_membership(voters(7)), data)

    def test_not_a_membership_entry(self):
        for data in (b"", b"hi", MAGIC[:7], b"\xfeleaderm\x01"):
            self.assertIsNone(w.decode_membership(data))
            self.assertFalse(w.is_membership_entry(data))

    def reason(self, data):
        with self.assertRaises(w.WireError) as cm:
            w.decode_membership(data)
        return cm.exception.reason

    def test_invalid_entries(self):
        v1 = member_bytes(1, 0, 0)
        good = entry_bytes(v1, member_bytes(2, 1, 1))
        self.assertIsNotNone(w.decode_membership(good))
        for cut in range(len(MAGIC), len(good)):
            self.assertEqual(self.reason(good[:cut]), "truncated", cut)
        self.assertEqual(self.reason(good + b"\x00"), "truncated")  # the Rust decoder's name for it
        self.assertEqual(self.reason(entry_bytes(v1, version=2)), "wrong_version")
        self.assertEqual(self.reason(entry_bytes(v1, version=0)), "wrong_version")
        cases = {
            "pid 0": entry_bytes(member_bytes(0, 0, 0)),
            "pids descending": entry_bytes(member_bytes(2, 0, 0), member_bytes(1, 0, 0)),
            "pid twice": entry_bytes(v1, member_bytes(1, 1, 0)),
            "no voter": entry_bytes(member_bytes(1, 1, 1), member_bytes(2, 1, 0)),
            "no member": entry_bytes(),
            "role 2": entry_bytes(member_bytes(1, 2, 0)),
            "voter with promote": entry_bytes(member_bytes(1, 0, 1)),
            "promote 2": entry_bytes(v1, member_bytes(2, 1, 2)),
            "url of 1025 bytes": entry_bytes(member_bytes(1, 0, 0, "x" * 1025)),
            "client url of 1025 bytes": entry_bytes(member_bytes(1, 0, 0, "", "x" * 1025)),
            "256 members": entry_bytes(*[member_bytes(p, 0, 0) for p in range(1, 257)]),
            "url not UTF-8": entry_bytes(u64(1) + u32(0) + b"\x00" + u64(1) + b"\xff" + u64(0)),
        }
        for what, data in cases.items():
            self.assertEqual(self.reason(data), "garbage", what)
        # The limits themselves are fine.
        self.assertIsNotNone(w.decode_membership(entry_bytes(member_bytes(1, 0, 0, "x" * 1024, "y" * 1024))))
        self.assertEqual(len(w.decode_membership(entry_bytes(*[member_bytes(p, 0, 0)
                                                              for p in range(1, 256)])).members), 255)
        # A count the bytes cannot hold is refused before anything is read.
        self.assertEqual(self.reason(entry_bytes(v1, count=200)), "truncated")

    def test_quorum_counts_voters_only(self):
        m = with_learners([1, 2, 3], [4, 5])
        self.assertEqual((m.voters(), m.learners(), m.quorum()), ([1, 2, 3], [4, 5], 2))
        self.assertEqual(voters(1, 2, 3, 4).quorum(), 3)

    def test_snapshot_membership(self):
        m = with_learners([1], [2], promote=True)
        self.assertEqual(w.snapshot_membership(w.encode_membership(m)), m)
        # Files written before runtime changes: the voters as a bincode Vec<u64>.
        self.assertEqual(w.snapshot_membership(u64(2) + u64(1) + u64(3)), voters(1, 3))
        for opaque in (b"", b"cfg", u64(0), u64(1) + u64(0)):
            self.assertIsNone(w.snapshot_membership(opaque))
        with self.assertRaises(w.WireError):
            w.snapshot_membership(entry_bytes(member_bytes(1, 1, 0)))


class ClientWireTests(unittest.TestCase):
    head = b"\x01\x00" + u64(CLUSTER) + u64(11)

    def request(self, body, expected_body: bytes):
        req = w.ClientRequest(1, CLUSTER, 11, body)
        self.assertEqual(w.encode_client_request(req), self.head + expected_body)
        self.assertEqual(w.decode_client_request(self.head + expected_body), req)

    def response(self, body, expected_body: bytes):
        resp = w.ClientResponse(1, 11, body)
        data = b"\x01\x00" + u64(11) + expected_body
        self.assertEqual(w.encode_client_response(resp), data)
        self.assertEqual(w.decode_client_response(data), resp)

    def test_change_membership_requests(self):
        self.request(w.ChangeMembership(w.AddLearner(6, "tcp://h:7006", "tcp://h:8006", True)),
                     u32(8) + u32(0) + u64(6) + s("tcp://h:7006") + s("tcp://h:8006") + b"\x01")
        self.request(w.ChangeMembership(w.AddLearner(6, "", "", False)),
                     u32(8) + u32(0) + u64(6) + u64(0) + u64(0) + b"\x00")
        self.request(w.ChangeMembership(w.Promote(6)), u32(8) + u32(1) + u64(6))
        self.request(w.ChangeMembership(w.Remove(2)), u32(8) + u32(2) + u64(2))
        self.request(w.MembershipRequest(), u32(9))

    def test_membership_responses(self):
        self.response(w.MembershipChanged(12), u32(8) + u64(12))
        info = w.MembershipInfo(12, True, [w.MemberInfo(1, w.Voter(), "tcp://h:1", "tcp://h:2"),
                                           w.MemberInfo(6, w.Learner(True), "", ""),
                                           w.MemberInfo(7, w.Learner(False), "a", "")])
        # MemberRole is a serde enum on the client wire: Voter is the u32 tag alone, Learner the
        # tag then `promote` as a bool (unlike the entry layout, whose promote byte is always there).
        self.response(info, u32(9) + u64(12) + b"\x01" + u64(3)
                      + u64(1) + u32(0) + s("tcp://h:1") + s("tcp://h:2")
                      + u64(6) + u32(1) + b"\x01" + u64(0) + u64(0)
                      + u64(7) + u32(1) + b"\x00" + s("a") + u64(0))
        self.response(w.MembershipInfo(0, False, []), u32(9) + u64(0) + b"\x00" + u64(0))

    def test_vote_verdicts_of_learners(self):
        # Inspection's VoteVerdict gained 6 NotAVoter and 7 CandidateNotVoter (src/core/vote_log.rs).
        status = w.Status(2, w.Role.FOLLOWER, 5, None, None, 1, 1, 1)
        votes = [w.VoteSeen(3, 5, w.VoteKind.VOTE, w.VoteVerdict(6), 10),
                 w.VoteSeen(4, 6, w.VoteKind.PRE_VOTE, w.VoteVerdict(7), 20)]
        resp = w.ClientResponse(1, 9, w.Inspection(status, 1, 2, votes, [], 0, 0, []))
        data = w.encode_client_response(resp)
        self.assertIn(u64(3) + u64(5) + u32(0) + u32(6) + u64(10), data)
        self.assertEqual(w.decode_client_response(data), resp)
        self.assertEqual(str(votes[0].verdict), "refused: this server is not a voter")
        self.assertEqual(str(votes[1].verdict), "refused: the candidate is not a voter")

    def test_strict_decoding(self):
        def reason(decode, data):
            with self.assertRaises(w.WireError) as cm:
                decode(data)
            return cm.exception.reason
        req = w.decode_client_request
        self.assertEqual(reason(req, self.head + u32(8) + u32(3) + u64(1)), "garbage")    # no change 3
        self.assertEqual(reason(req, self.head + u32(8) + u32(1)), "truncated")
        self.assertEqual(reason(req, self.head + u32(8) + u32(0) + u64(6) + u64(0) + u64(0) + b"\x02"), "garbage")
        self.assertEqual(reason(req, self.head + u32(9) + b"\x00"), "garbage")             # trailing byte
        self.assertEqual(reason(req, self.head + u32(10)), "garbage")                      # no Request 10
        resp = w.decode_client_response
        head = b"\x01\x00" + u64(11)
        self.assertEqual(reason(resp, head + u32(9) + u64(1) + b"\x01" + u64(1) + u64(1) + u32(2) + u64(0) * 2),
                         "garbage")  # no MemberRole 2
        self.assertEqual(reason(resp, head + u32(9) + u64(1) + b"\x02" + u64(0)), "garbage")  # bool 02
        self.assertEqual(reason(resp, head + u32(9) + u64(1) + b"\x01" + u64(1 << 60)), "truncated")
        self.assertEqual(reason(resp, head + u32(10)), "garbage")                          # no Response 10


class ConfigTests(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="members-config-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def load(self, extra: str):
        path = os.path.join(self.dir, "config.json")
        servers = ",".join(f'{{"mypid": {i}, "url": "127.0.0.1:{7000 + i}"}}' for i in (1, 2, 3, 4))
        with open(path, "w") as f:
            f.write(f'{{"object": {{"total": 4, "Servers": [{servers}]{extra}}}}}')
        return w.load_config(path)

    def error(self, extra: str) -> str:
        with self.assertRaises(w.ConfigError) as cm:
            self.load(extra)
        return str(cm.exception)

    def test_initial_members(self):
        every = self.load("")
        self.assertEqual((every.initial_members, every.bootstrap_members()), (None, [1, 2, 3, 4]))
        some = self.load(', "initial_members": [3, 1, 2]')
        self.assertEqual(some.bootstrap_members(), [1, 2, 3])
        self.assertEqual(some.bootstrap_membership().voters(), [1, 2, 3])
        self.assertEqual(some.bootstrap_membership().get(1).peer_url, "tcp://127.0.0.1:7001")
        # The default cluster id is over the bootstrap members only (the Rust loader's rule), so
        # listing a server to be added later does not change the cluster's identity.
        three = w.default_cluster_id([s for s in every.servers if s.pid != 4])
        self.assertEqual(some.cluster_id, three)
        self.assertNotEqual(every.cluster_id, three)

    def test_initial_members_are_validated(self):
        self.assertIn("object.initial_members: expected a list of pids", self.error(', "initial_members": 1'))
        self.assertIn("object.initial_members: [] is empty", self.error(', "initial_members": []'))
        self.assertIn("object.initial_members[1]: pid 9 is not in object.Servers [1, 2, 3, 4]",
                      self.error(', "initial_members": [1, 9]'))
        self.assertIn("object.initial_members[1]: pid 1 is listed twice", self.error(', "initial_members": [1, 1]'))
        self.assertIn("object.initial_members[0]: expected a pid", self.error(', "initial_members": ["1"]'))
        self.assertIn("object.initial_members[0]: expected a pid", self.error(', "initial_members": [true]'))


class PeerBase(unittest.TestCase):
    """A peer.Peer with pid 3 in a config of `n` servers; its clock is the `now` a test passes."""

    n = 3
    extra = ""

    def setUp(self):
        try:
            import peer  # needs pyzmq
        except SystemExit as e:
            self.skipTest(str(e))
        self.peer_mod = peer
        self.dir = tempfile.mkdtemp(prefix="members-")
        servers = ",".join(f'{{"mypid": {i}, "url": "ipc://{self.dir}/{i}.sock"}}' for i in range(1, self.n + 1))
        self.config_path = os.path.join(self.dir, "config.json")
        with open(self.config_path, "w") as f:
            f.write(f'{{"object": {{"total": {self.n}, "election_timeout_ms": 200, "heartbeat_ms": 50, '
                    f'"Servers": [{servers}]{self.extra}}}}}')
        self.config = w.load_config(self.config_path)
        self.peers = []

    def tearDown(self):
        for p in self.peers:
            p.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def make(self, term=5, entries=(), joining=False, campaign=True):
        """A follower of `term` whose log holds `entries`: (term, data) pairs from index 1."""
        data_dir = os.path.join(self.dir, f"data3-{len(self.peers)}")
        os.makedirs(data_dir, exist_ok=True)
        self.peer_mod.HardState(data_dir).save(term, None)
        p = self.peer_mod.Peer(self.config, 3, data_dir, campaign, client=False, verbose=False, joining=joining)
        self.peers.append(p)
        p.log.append([w.Entry(t, i + 1, d) for i, (t, d) in enumerate(entries)])
        p.log.sync()
        p.sync_membership()
        p.emit = lambda obj: None
        p.answers = []
        p.answer = lambda route, request_id, body: p.answers.append((request_id, body))
        return p

    def sent(self, p):
        out, p.outbox = p.outbox, []
        return out

    def append(self, p, leader, term, prev, entries, commit, now=100.0):
        """An AppendEntries of `term` from `leader` after `prev` (index, term) with `entries`
        ((term, data) pairs); returns what p answers."""
        es = [w.Entry(t, prev[0] + 1 + i, d) for i, (t, d) in enumerate(entries)]
        p.step(leader, w.AppendEntries(term, leader, prev[0], prev[1], es, commit), now)
        return self.sent(p)

    def campaigns(self, p, now=100.0):
        """Whether p, left alone past its election timeout, asks anyone for a (pre-)vote."""
        p.tick(max(now, p.election_due) + 0.001)
        return [(to, m) for to, m in self.sent(p) if isinstance(m, (w.PreVote, w.RequestVote))]


class LearnerTests(PeerBase):
    def test_a_learner_never_campaigns_and_refuses_votes(self):
        p = self.make(entries=[(1, w.encode_membership(with_learners([1, 2], [3])))])
        self.assertFalse(p.is_voter())
        for _ in range(5):
            self.assertEqual(self.campaigns(p), [])
        self.assertEqual((p.role, p.term, p.vote_counts["pre_campaigns"]), ("follower", 5, 0))
        # Refuses a RequestVote of a later term (rule 1 still applies: it takes the term) and a
        # PreVote, though the candidate's log is as good as its own.
        p.step(1, w.RequestVote(6, 1, 1, 1), 100.0)
        self.assertEqual(self.sent(p), [(1, w.RequestVoteResponse(6, False))])
        self.assertEqual(p.voted_for, None)
        p.step(2, w.PreVote(7, 2, 1, 1), 100.0)
        self.assertEqual(self.sent(p), [(2, w.PreVoteResponse(6, False))])
        p.step(2, w.TransferVote(7, 2, 1, 1), 100.0)
        self.assertEqual(self.sent(p), [(2, w.RequestVoteResponse(7, False))])
        self.assertEqual(p.vote_counts["refused_not_a_voter"], 3)

    def test_a_learner_ignores_timeout_now(self):
        p = self.make(entries=[(1, w.encode_membership(with_learners([1, 2], [3])))])
        self.append(p, 1, 5, (1, 1), [], 1)
        p.step(1, w.TimeoutNow(5, 1), 100.0)
        self.assertEqual((p.role, p.term, self.sent(p)), ("follower", 5, []))

    def test_a_voter_refuses_a_candidate_that_is_not_a_voter(self):
        p = self.make(entries=[(1, w.encode_membership(with_learners([1, 3], [2])))])
        self.assertTrue(p.is_voter())
        p.step(2, w.RequestVote(6, 2, 1, 1), 100.0)
        self.assertEqual(self.sent(p), [(2, w.RequestVoteResponse(6, False))])
        p.step(2, w.PreVote(7, 2, 1, 1), 100.0)
        self.assertEqual(self.sent(p), [(2, w.PreVoteResponse(6, False))])
        self.assertEqual(p.vote_counts["refused_candidate_not_voter"], 2)
        p.step(1, w.RequestVote(7, 1, 1, 1), 100.0)  # the voter gets the vote
        self.assertEqual(self.sent(p), [(1, w.RequestVoteResponse(7, True))])

    def test_a_joining_server_is_not_a_member_until_added(self):
        p = self.make(joining=True)
        self.assertFalse(p.membership().contains(3))
        self.assertEqual(self.campaigns(p), [])
        p.step(1, w.RequestVote(6, 1, 0, 0), 100.0)
        self.assertEqual(self.sent(p), [(1, w.RequestVoteResponse(6, False))])
        # Added as a learner, then promoted: only then does it campaign.
        added = with_learners([1, 2], [3], promote=True)
        self.assertTrue(self.append(p, 1, 6, (0, 0), [(6, w.encode_membership(added))], 1)[0][1].success)
        self.assertEqual((p.was_member, p.removed, p.is_voter()), (True, False, False))
        self.assertEqual(self.campaigns(p, now=101.0), [])
        self.append(p, 1, 6, (1, 6), [(6, w.encode_membership(voters(1, 2, 3)))], 2, now=102.0)
        self.assertTrue(p.is_voter())
        asked = self.campaigns(p, now=103.0)
        self.assertEqual(sorted(to for to, _ in asked), [1, 2])


class InitialMembersTests(PeerBase):
    extra = ', "initial_members": [1, 2]'

    def test_a_server_left_out_of_initial_members_starts_as_a_non_member(self):
        p = self.make()
        self.assertEqual((p.membership().voters(), p.is_voter()), ([1, 2], False))
        self.assertEqual(self.campaigns(p), [])


class QuorumTests(PeerBase):
    n = 5

    def leader(self):
        """p (pid 3) leading term 6 of a membership of voters 1, 2, 3 and learners 4, 5."""
        p = self.make(entries=[(1, w.encode_membership(with_learners([1, 2, 3], [4, 5])))])
        p.become_candidate(100.0)
        asked = sorted(to for to, m in self.sent(p) if isinstance(m, w.RequestVote))
        self.assertEqual(asked, [1, 2], "only voters are asked for votes")
        p.step(1, w.RequestVoteResponse(6, True), 100.0)  # 2 of 3 voters: a majority (not of 5 members)
        self.assertEqual(p.role, "leader")
        p.flush = lambda: None
        p.log.sync()
        self.sent(p)
        return p

    def ack(self, p, frm, match):
        p.step(frm, w.AppendEntriesResponse(6, True, match, 0, 0), 100.0)

    def test_learners_votes_elect_nobody(self):
        p = self.make(entries=[(1, w.encode_membership(with_learners([1, 2, 3], [4, 5])))])
        p.become_candidate(100.0)
        for learner in (4, 5):  # a yes from a learner (a correct one never says it) counts nothing
            p.step(learner, w.RequestVoteResponse(6, True), 100.0)
        self.assertEqual(p.role, "candidate")
        p.become_pre_candidate(101.0)
        for learner in (4, 5):
            p.step(learner, w.PreVoteResponse(7, True), 101.0)
        self.assertEqual((p.role, p.term), ("follower", 6))

    def test_elections_and_commit_count_voters_only(self):
        p = self.leader()
        self.assertEqual(p.quorum(), 2)
        no_op = p.log.last_index()
        self.assertEqual((no_op, p.commit_index), (2, 0))
        self.ack(p, 4, no_op)
        self.ack(p, 5, no_op)
        p.maybe_commit()
        self.assertEqual(p.commit_index, 0, "learners' acknowledgements commit nothing")
        self.ack(p, 2, no_op)
        self.assertEqual(p.commit_index, no_op)

    def test_learners_get_the_log_and_no_timeout_now(self):
        p = self.leader()
        self.assertEqual(p.peers, [1, 2, 4, 5])
        self.ack(p, 4, p.log.last_index())  # the first follower with our no-op is a learner
        self.assertEqual([m for _, m in self.sent(p) if isinstance(m, w.TimeoutNow)], [])
        self.ack(p, 2, p.log.last_index())
        self.assertEqual([to for to, m in self.sent(p) if isinstance(m, w.TimeoutNow)], [2])

    def test_check_quorum_counts_voters_only(self):
        p = self.leader()
        for frm in (4, 5):
            self.ack(p, frm, p.log.last_index())
        p.tick(p.quorum_check_due + 0.001)
        self.assertEqual(p.role, "follower", "two learners heard from are no majority of voters")


class LogTests(PeerBase):
    def test_a_truncated_membership_entry_reverts(self):
        p = self.make(entries=[(1, b"x")])
        self.assertEqual((p.membership_index(), p.is_voter()), (0, True))
        demoted = with_learners([1, 2], [3])
        self.append(p, 1, 5, (1, 1), [(5, w.encode_membership(demoted))], 1)
        self.assertEqual((p.membership_index(), p.membership(), p.is_voter()), (2, demoted, False))
        self.assertEqual(self.campaigns(p, now=101.0), [])
        # A leader of term 6 never had it: its entry 2 overwrites ours; the bootstrap rules again.
        self.assertTrue(self.append(p, 2, 6, (1, 1), [(6, b"")], 1, now=102.0)[0][1].success)
        self.assertEqual((p.membership_index(), p.is_voter()), (0, True))
        self.assertNotEqual(self.campaigns(p, now=103.0), [])

    def test_the_log_on_disk_keeps_the_membership(self):
        p = self.make(entries=[(1, w.encode_membership(with_learners([1, 2], [3]))), (1, b"x")])
        data_dir = p.log.directory
        p.close()
        self.peers.remove(p)
        q = self.peer_mod.Peer(self.config, 3, data_dir, True, client=False, verbose=False)
        self.peers.append(q)
        self.assertEqual((q.membership_index(), q.is_voter()), (1, False))

    def test_an_invalid_membership_entry_drops_the_whole_append(self):
        p = self.make(entries=[(1, b"x")])
        bad = entry_bytes(member_bytes(1, 1, 0))  # no voter
        self.assertEqual(self.append(p, 1, 6, (1, 1), [(6, b"ok"), (6, bad)], 1), [])
        self.assertEqual((p.term, p.log.last_index(), p.leader_id), (5, 1, None))
        self.assertEqual(p.drops["invalid_membership_entry"], 1)

    def test_members_learned_from_the_log_get_a_socket_and_are_heard(self):
        p = self.make()
        url4 = f"ipc://{self.dir}/4.sock"
        env4 = w.encode_envelope(w.Envelope(1, self.config.cluster_id, 4, 3, w.RequestVote(5, 4, 0, 0)))
        p.on_frame(env4, 100.0)
        self.assertEqual(p.drops["unknown_sender"], 1)
        added = with_learners([1, 2, 3], [4], urls={4: (url4, "")})
        self.append(p, 1, 5, (0, 0), [(5, w.encode_membership(added))], 0)
        self.assertEqual(p.push[4][0], url4)
        self.assertEqual(p.peers, [1, 2, 4])
        p.on_frame(env4, 100.0)
        self.assertEqual(p.drops["unknown_sender"], 1)
        self.assertEqual(self.sent(p), [(4, w.RequestVoteResponse(5, False))])  # heard, but 4 is no voter
        # Removed again (and committed): no socket, and its envelopes are dropped once more.
        self.append(p, 1, 5, (1, 5), [(5, w.encode_membership(voters(1, 2, 3)))], 2)
        p.flush()
        self.assertNotIn(4, p.push)
        p.on_frame(env4, 100.0)
        self.assertEqual(p.drops["unknown_sender"], 2)

    def test_a_snapshot_records_the_membership(self):
        p = self.make(entries=[(1, b"x")])
        m = with_learners([1, 2], [3])
        image = w.encode_snapshot_image(w.SnapshotImage(5, 2, w.encode_membership(m), b"state"))
        self.append(p, 1, 5, (1, 1), [], 1)
        for chunk in w.snapshot_chunks(5, 1, image):
            p.step(1, chunk, 100.0)
        self.assertEqual((p.log.base_index, p.membership_index(), p.membership(), p.is_voter()), (5, 0, m, False))


class RemovalTests(PeerBase):
    def test_removal_ends_the_peer_once_committed(self):
        p = self.make(entries=[(1, b"x")])
        removed = voters(1, 2)
        self.append(p, 1, 5, (1, 1), [(5, w.encode_membership(removed))], 1)
        # In force but not committed: still a member of the committed membership (rule 4).
        self.assertEqual((p.membership().contains(3), p.removed), (False, False))
        self.append(p, 1, 5, (2, 5), [], 2)
        self.assertTrue(p.removed)

    def test_a_server_never_added_is_not_removed(self):
        p = self.make(joining=True)
        self.append(p, 1, 5, (0, 0), [(5, w.encode_membership(voters(1, 2)))], 1)
        self.assertFalse(p.removed)


class ClientAnswerTests(PeerBase):
    def request(self, p, body):
        req = w.ClientRequest(1, self.config.cluster_id, 7, body)
        p.on_request([b"route"], w.encode_client_request(req))
        out, p.answers = p.answers, []
        return out

    def test_membership_and_change_requests(self):
        p = self.make()
        info = self.request(p, w.MembershipRequest())[0][1]
        self.assertEqual((info.index, info.committed, [m.pid for m in info.members]), (0, True, [1, 2, 3]))
        self.assertEqual(info.members[0].peer_url, f"ipc://{self.dir}/1.sock")
        added = with_learners([1, 2, 3], [4], promote=True, urls={4: ("tcp://127.0.0.1:7004", "")})
        self.append(p, 1, 5, (0, 0), [(5, w.encode_membership(added))], 0)
        self.assertEqual(self.request(p, w.MembershipRequest()), [(7, w.MembershipInfo(1, False, list(added.members)))])
        change = w.ChangeMembership(w.Remove(2))
        self.assertEqual(self.request(p, change), [(7, w.NotLeader(1))])


class ProcessTests(unittest.TestCase):
    """peer.py and client.py as processes (ipc:// endpoints in a temporary directory)."""

    def setUp(self):
        try:
            import zmq
        except ImportError:
            self.skipTest("needs pyzmq")
        self.zmq = zmq
        self.dir = tempfile.mkdtemp(prefix="members-procs-")
        servers = ",".join(f'{{"mypid": {i}, "url": "ipc://{self.dir}/{i}.sock"}}' for i in (1, 2, 3))
        self.config_path = os.path.join(self.dir, "config.json")
        with open(self.config_path, "w") as f:
            f.write(f'{{"object": {{"total": 3, "election_timeout_ms": 1000, "heartbeat_ms": 50, '
                    f'"Servers": [{servers}]}}}}')
        self.config = w.load_config(self.config_path)
        self.ctx = zmq.Context()
        self.procs = []

    def tearDown(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for f in (proc.stdout, proc.stderr, proc.stdin):
                if f:
                    f.close()
        self.ctx.destroy(linger=0)
        shutil.rmtree(self.dir, ignore_errors=True)

    def peer(self, pid, *args):
        proc = subprocess.Popen([sys.executable, os.path.join(HERE, "peer.py"), "--pid", str(pid), "--config",
                                 self.config_path, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return proc

    def client(self, *args):
        return subprocess.run([sys.executable, os.path.join(HERE, "client.py"), "--config", self.config_path, *args],
                              capture_output=True, text=True, timeout=60)

    def test_a_removed_peer_answers_then_exits_0(self):
        zmq = self.zmq
        proc = self.peer(3, "--no-campaign")
        inbox = self.ctx.socket(zmq.PULL)  # server 1's PULL: where peer 3 answers
        inbox.bind(self.config.server(1).endpoint)
        out = self.ctx.socket(zmq.PUSH)
        out.connect(self.config.server(3).endpoint)  # queued until peer 3 binds
        entry = w.Entry(2, 1, w.encode_membership(voters(1, 2)))
        ae = w.AppendEntries(2, 1, 0, 0, [entry], leader_commit=1)
        out.send(w.encode_envelope(w.Envelope(1, self.config.cluster_id, 1, 3, ae)))
        self.assertTrue(inbox.poll(30_000), "no answer from the peer")
        env = w.decode_envelope(inbox.recv())
        self.assertEqual(env.body, w.AppendEntriesResponse(2, True, 1, 0, 0))
        self.assertEqual(proc.wait(timeout=30), 0)
        self.assertIn("server 3: removed from the cluster by the membership entry at index 1",
                      proc.stderr.read())
        inbox.close()
        out.close()

    def test_member_list_and_a_change_refused_by_followers(self):
        for pid in (1, 2, 3):
            self.peer(pid, "--no-campaign")
        listed = self.client("member", "list", "--pid", "2", "--timeout-ms", "5000")
        self.assertEqual(listed.returncode, 0, listed)
        self.assertEqual(listed.stdout.splitlines(),
                         ["membership at index 0 (committed)"]
                         + [f"{pid} voter ipc://{self.dir}/{pid}.sock ipc://{self.dir}/{pid}.sock.client"
                            for pid in (1, 2, 3)])
        as_json = self.client("member", "list", "--json", "--timeout-ms", "5000")
        value = json.loads(as_json.stdout)
        self.assertEqual((value["index"], value["committed"], [m["role"] for m in value["members"]]),
                         (0, True, ["voter"] * 3))
        # Nobody leads (--no-campaign): every server answers NotLeader, and the change fails at
        # its deadline saying so, having changed nothing.
        added = self.client("member", "add", "4", "127.0.0.1:7004", "--deadline-ms", "500")
        self.assertEqual(added.returncode, 1, added)
        self.assertIn("leader: member add: no leader: 3 of 3 servers answer, none leads", added.stderr)
        bad = self.client("member", "add", "4", "nohost")
        self.assertEqual(bad.returncode, 2, bad)
        self.assertIn("leader: member add: url 'nohost'", bad.stderr)


class ClientArgumentTests(unittest.TestCase):
    def test_add_learner_change(self):
        try:
            import client
        except SystemExit as e:
            self.skipTest(str(e))
        self.assertEqual(client.add_learner_change(6, "127.0.0.1:7006", None, False),
                         w.AddLearner(6, "tcp://127.0.0.1:7006", "tcp://127.0.0.1:8006", True))
        self.assertEqual(client.add_learner_change(6, "ipc:///tmp/6", "ipc:///tmp/c", True),
                         w.AddLearner(6, "ipc:///tmp/6", "ipc:///tmp/c", False))
        self.assertEqual(client.add_learner_change(6, "ipc:///tmp/6", None, True).client_url, "ipc:///tmp/6.client")
        for bad in ((0, "127.0.0.1:1"), (6, "127.0.0.1"), (6, "127.0.0.1:65000"), (6, "ipc://" + "x" * 1020)):
            with self.assertRaises(ValueError):
                client.add_learner_change(bad[0], bad[1], None, False)
        self.assertEqual(client.member_line(w.MemberInfo(4, w.Learner(True), "tcp://h:1", "")),
                         "4 learner (promoted once caught up) tcp://h:1 (as in config.json)")


class DocumentedBytes(unittest.TestCase):
    """docs/wire.md §7's membership examples (generated from the Rust types by
    tests/wire_doc.rs) decode and re-encode with leader_wire.py."""

    def test_the_membership_entry_example(self):
        from test_transfer import doc_hex
        data = doc_hex("Membership entry data: voters 1 and 2 (urls as in config.json), learner 4 to promote")
        m = w.decode_membership(data)
        self.assertEqual(m.voters(), [1, 2])
        self.assertEqual(m.learners(), [4])
        self.assertEqual(m.get(4), w.MemberInfo(4, w.Learner(True), "tcp://127.0.0.1:7004", "tcp://127.0.0.1:8004"))
        self.assertEqual(w.encode_membership(m), data)

    def test_the_membership_requests_and_answers(self):
        from test_transfer import CLUSTER, doc_hex
        change = w.ChangeMembership(w.AddLearner(4, "tcp://127.0.0.1:7004", "tcp://127.0.0.1:8004", True))
        self.assertEqual(w.encode_client_request(w.ClientRequest(1, CLUSTER, 10, change)),
                         doc_hex("ClientRequest: ChangeMembership (AddLearner 4)"))
        self.assertEqual(w.encode_client_request(w.ClientRequest(1, CLUSTER, 11, w.MembershipRequest())),
                         doc_hex("ClientRequest: Membership"))
        changed = w.decode_client_response(doc_hex("ClientResponse: MembershipChanged"))
        self.assertEqual(changed.body, w.MembershipChanged(12))
        info = w.decode_client_response(doc_hex("ClientResponse: Membership")).body
        self.assertEqual((info.index, info.committed, [m.pid for m in info.members]), (12, True, [1, 4]))
        self.assertEqual(info.members[1].role, w.Learner(True))


if __name__ == "__main__":
    unittest.main()
