#!/usr/bin/env python3
"""Self-tests for pre-vote (Raft thesis §9.6) in leader_wire.py and peer.py.

    python3 examples/python/test_prevote.py [-v]

Standard library and pyzmq only. The wire tests check exact bytes of Message tags 4 and 5; the
peer tests drive a real peer.Peer (sockets on ipc:// endpoints in a temporary directory, never
connected to anything) through `step` and `tick` with explicit clock values, and inspect what
it would send (its outbox) and what it would persist. Nothing here waits on a real clock, so
the results do not depend on the machine's speed.
"""

import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import leader_wire as w  # noqa: E402


def u64(v: int) -> bytes:
    return v.to_bytes(8, "little")


class WireTests(unittest.TestCase):
    def test_pre_vote_bytes(self):
        m = w.PreVote(term=2, candidate_id=1, last_log_index=0, last_log_term=0)
        expected = bytes.fromhex("04000000") + u64(2) + u64(1) + u64(0) + u64(0)
        self.assertEqual(w.encode_message(m), expected)
        self.assertEqual(w.decode_message(expected), m)

    def test_pre_vote_response_bytes(self):
        for granted, byte in ((True, b"\x01"), (False, b"\x00")):
            m = w.PreVoteResponse(term=7, vote_granted=granted)
            expected = bytes.fromhex("05000000") + u64(7) + byte
            self.assertEqual(w.encode_message(m), expected)
            self.assertEqual(w.decode_message(expected), m)

    def test_layouts_are_those_of_request_vote(self):
        # The brief's promise: same fields, same order; only the variant tag differs.
        pv = w.encode_message(w.PreVote(9, 3, 17, 8))
        rv = w.encode_message(w.RequestVote(9, 3, 17, 8))
        self.assertEqual((pv[:4], rv[:4]), (b"\x04\0\0\0", b"\0\0\0\0"))
        self.assertEqual(pv[4:], rv[4:])
        pr = w.encode_message(w.PreVoteResponse(9, True))
        rr = w.encode_message(w.RequestVoteResponse(9, True))
        self.assertEqual((pr[:4], rr[:4]), (b"\x05\0\0\0", b"\x01\0\0\0"))
        self.assertEqual(pr[4:], rr[4:])

    def test_envelope_round_trip(self):
        cluster = 0x1122334455667788
        for body in (w.PreVote(2, 2, 0, 0), w.PreVoteResponse(2, False),
                     w.PreVote(w.TERM_MAX, 2, (1 << 64) - 1, w.TERM_MAX)):
            env = w.Envelope(w.WIRE_VERSION, cluster, 2, 1, body)
            data = w.encode_envelope(env)
            # version, cluster_id, from, to, Body tag 0 (Raft), then the Message.
            header = b"\x01\x00" + u64(cluster) + u64(2) + u64(1) + b"\0\0\0\0"
            self.assertEqual(data, header + w.encode_message(body))
            self.assertEqual(w.decode_envelope(data), env)
            self.assertEqual(w.open_envelope(data, cluster, me=1, peers=[2, 3]), env)

    def test_existing_tags_unchanged(self):
        # docs/wire.md §7, "Envelope: RequestVote" (generated from the Rust types).
        doc = bytes.fromhex("""
            01 00 88 77 66 55 44 33 22 11 02 00 00 00 00 00
            00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00
            00 00 05 00 00 00 00 00 00 00 02 00 00 00 00 00
            00 00 07 00 00 00 00 00 00 00 04 00 00 00 00 00
            00 00""")
        env = w.Envelope(1, 0x1122334455667788, 2, 1, w.RequestVote(5, 2, 7, 4))
        self.assertEqual(w.encode_envelope(env), doc)
        self.assertEqual(w.decode_envelope(doc), env)

    def test_strict_decoding(self):
        def reason(data):
            with self.assertRaises(w.WireError) as cm:
                w.decode_message(data)
            return cm.exception.reason
        good = w.encode_message(w.PreVote(2, 1, 0, 0))
        self.assertEqual(reason(bytes.fromhex("0e000000") + good[4:]), "garbage")   # unknown tag
        self.assertEqual(reason(good[:-1]), "truncated")
        self.assertEqual(reason(good + b"\0"), "garbage")                           # trailing byte
        resp = w.encode_message(w.PreVoteResponse(2, True))
        self.assertEqual(reason(resp[:-1] + b"\x02"), "garbage")                    # bool 02
        self.assertEqual(reason(resp[:-1]), "truncated")


class PeerTests(unittest.TestCase):
    """A peer.Peer with pid 3 in a cluster of `n`; its clock is whatever `now` the test passes."""

    n = 3

    def setUp(self):
        try:
            import peer  # needs pyzmq
        except SystemExit as e:
            self.skipTest(str(e))
        self.peer_mod = peer
        self.dir = tempfile.mkdtemp(prefix="prevote-")
        servers = ",".join(f'{{"mypid": {i}, "url": "ipc://{self.dir}/{i}.sock"}}' for i in range(1, self.n + 1))
        self.config_path = os.path.join(self.dir, "config.json")
        with open(self.config_path, "w") as f:
            f.write(f'{{"object": {{"total": {self.n}, "election_timeout_ms": 200, "heartbeat_ms": 50, '
                    f'"Servers": [{servers}]}}}}')
        self.config = w.load_config(self.config_path)
        self.peers = []

    def tearDown(self):
        for p in self.peers:
            p.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def make(self, campaign=True, pre_vote=True, term=5, voted_for=None, log_terms=()):
        """A follower of `term` (persisted) whose log holds entries of `log_terms`."""
        data_dir = os.path.join(self.dir, "data3")
        os.makedirs(data_dir, exist_ok=True)
        self.peer_mod.HardState(data_dir).save(term, voted_for)
        p = self.peer_mod.Peer(self.config, 3, data_dir, campaign, client=False, verbose=False, pre_vote=pre_vote)
        self.peers.append(p)
        p.log.append([w.Entry(t, i + 1, b"x") for i, t in enumerate(log_terms)])
        p.log.sync()
        p.emit = lambda obj: None  # keep the test output clean: role lines are not checked here
        return p

    def sent(self, p):
        out, p.outbox = p.outbox, []
        return out

    def hear_leader(self, p, leader, now):
        """A heartbeat of p's term from `leader` at time `now`."""
        p.step(leader, w.AppendEntries(p.term, leader, p.log.last_index(), p.log.last_term(), [], 0), now)
        self.assertEqual(self.sent(p)[0][1].success, True)

    # -- receiving PreVote --------------------------------------------------------------------

    def test_grants_without_changing_anything(self):
        p = self.make(voted_for=2, log_terms=(1, 5))
        due = p.election_due
        p.step(1, w.PreVote(6, 1, 2, 5), now=100.0)
        self.assertEqual(self.sent(p), [(1, w.PreVoteResponse(6, True))])
        self.assertEqual((p.term, p.voted_for, p.role, p.election_due), (5, 2, "follower", due))
        # Far ahead of us: still granted, still nothing adopted, nothing to persist.
        p.step(1, w.PreVote(1000, 1, 2, 5), now=100.0)
        self.assertEqual(self.sent(p), [(1, w.PreVoteResponse(1000, True))])
        p.flush()
        self.assertEqual((p.hard.term, p.hard.voted_for, p.term), (5, 2, 5))
        self.assertEqual(p.vote_counts["pre_vote_granted"], 2)

    def test_refusals_carry_the_current_term(self):
        p = self.make(log_terms=(1, 5))
        cases = [
            (1, w.PreVote(5, 1, 2, 5)),   # not above our term
            (1, w.PreVote(4, 1, 9, 9)),   # below it
            (1, w.PreVote(6, 2, 2, 5)),   # candidate_id is not the sender
            (1, w.PreVote(6, 1, 1, 5)),   # same last term, shorter log
            (1, w.PreVote(6, 1, 9, 4)),   # longer log, older last term
        ]
        for frm, m in cases:
            p.step(frm, m, now=100.0)
            self.assertEqual(self.sent(p), [(frm, w.PreVoteResponse(5, False))], m)
        self.assertEqual((p.term, p.voted_for, p.role), (5, None, "follower"))
        self.assertEqual(p.vote_counts["pre_vote_refused"], len(cases))

    def test_up_to_date_is_a_pair_comparison(self):
        p = self.make(log_terms=(1, 1, 1, 2))
        p.step(1, w.PreVote(6, 1, 1, 3), now=100.0)  # one entry, but of a later term
        self.assertEqual(self.sent(p), [(1, w.PreVoteResponse(6, True))])
        p.step(1, w.PreVote(6, 1, 4, 2), now=100.0)  # equal
        self.assertEqual(self.sent(p), [(1, w.PreVoteResponse(6, True))])

    def test_grants_even_after_voting_in_this_term(self):
        # A pre-vote promises nothing, so "one vote per term" does not apply to it.
        p = self.make(term=5, voted_for=2)
        p.step(1, w.PreVote(6, 1, 0, 0), now=100.0)
        self.assertEqual(self.sent(p), [(1, w.PreVoteResponse(6, True))])

    def test_terms_above_term_max_are_ignored(self):
        p = self.make()
        p.step(1, w.PreVote(w.TERM_MAX + 1, 1, 0, 0), now=100.0)
        p.step(1, w.PreVoteResponse(w.TERM_MAX + 1, False), now=100.0)
        self.assertEqual(self.sent(p), [])
        self.assertEqual((p.term, p.drops["term_too_large"]), (5, 2))
        p.step(1, w.PreVote(w.TERM_MAX, 1, 0, 0), now=100.0)  # the largest valid term is fine
        self.assertEqual(self.sent(p), [(1, w.PreVoteResponse(w.TERM_MAX, True))])

    def test_sticky_follower_ignores_pre_votes_and_higher_request_votes(self):
        p = self.make()
        self.hear_leader(p, 1, now=100.0)
        t = p.election_s  # the minimum election timeout: 0.2 s
        for now in (100.0, 100.0 + t * 0.99):
            p.step(2, w.PreVote(6, 2, 9, 9), now=now)
            p.step(2, w.RequestVote(6, 2, 9, 9), now=now)
            self.assertEqual(self.sent(p), [])
            self.assertEqual((p.term, p.voted_for, p.leader_id), (5, None, 1))
        self.assertEqual((p.vote_counts["pre_vote_ignored"], p.vote_counts["vote_ignored"]), (2, 2))
        # A RequestVote of our own term is no disruption: answered as always (rule 2 of §4).
        p.step(2, w.RequestVote(5, 2, 9, 9), now=100.0)
        self.assertEqual(self.sent(p), [(2, w.RequestVoteResponse(5, True))])
        # Once a full minimum election timeout has passed without the leader, answer again.
        later = 100.0 + t * 1.01
        p.step(2, w.PreVote(6, 2, 9, 9), now=later)
        self.assertEqual(self.sent(p), [(2, w.PreVoteResponse(6, True))])
        p.step(2, w.RequestVote(6, 2, 9, 9), now=later)
        self.assertEqual(self.sent(p), [(2, w.RequestVoteResponse(6, True))])
        self.assertEqual((p.term, p.voted_for), (6, 2))

    def test_contact_with_a_leader_of_an_older_term_is_not_sticky(self):
        p = self.make()
        self.hear_leader(p, 1, now=100.0)
        # Any message of a later term (here a stray response) moves us to term 6 at once...
        p.step(2, w.AppendEntriesResponse(6, False, 0), now=100.05)
        self.assertEqual((p.term, self.sent(p)), (6, []))
        # ... and the term-5 leader's recent contact says nothing about term 6: not sticky.
        p.step(1, w.PreVote(7, 1, 0, 0), now=100.1)
        self.assertEqual(self.sent(p), [(1, w.PreVoteResponse(7, True))])

    def test_leader_ignores_pre_votes_and_higher_request_votes(self):
        p = self.make()
        p.become_candidate(100.0)
        p.step(1, w.RequestVoteResponse(6, True), now=100.0)
        self.assertEqual(p.role, "leader")
        self.sent(p)
        for m in (w.PreVote(7, 2, 9, 9), w.RequestVote(7, 2, 9, 9)):
            p.step(2, m, now=1000.0)  # however long since anything: it leads
            self.assertEqual(self.sent(p), [])
        self.assertEqual((p.term, p.role), (6, "leader"))

    # -- campaigning --------------------------------------------------------------------------

    def timeout(self, p):
        now = p.election_due
        p.tick(now)
        return now

    def test_election_timeout_sends_pre_votes_and_keeps_the_term(self):
        p = self.make(voted_for=1, log_terms=(2, 4))
        now = self.timeout(p)
        self.assertEqual(sorted(self.sent(p)), [(1, w.PreVote(6, 3, 2, 4)), (2, w.PreVote(6, 3, 2, 4))])
        self.assertEqual((p.term, p.voted_for, p.role, p.pre_votes), (5, 1, "follower", {3}))
        self.assertTrue(now + p.election_s <= p.election_due < now + 2 * p.election_s)
        p.flush()
        self.assertEqual((p.hard.term, p.hard.voted_for), (5, 1))

    def test_a_majority_of_pre_votes_starts_the_real_election(self):
        p = self.make(log_terms=(2,))
        now = self.timeout(p)
        self.sent(p)
        p.step(1, w.PreVoteResponse(6, True), now=now)
        self.assertEqual((p.term, p.voted_for, p.role), (6, 3, "candidate"))
        self.assertEqual(sorted(self.sent(p)), [(1, w.RequestVote(6, 3, 1, 2)), (2, w.RequestVote(6, 3, 1, 2))])
        p.flush()
        self.assertEqual((p.hard.term, p.hard.voted_for), (6, 3))  # persisted before they leave
        p.step(2, w.RequestVoteResponse(6, True), now=now)
        self.assertEqual(p.role, "leader")

    def test_other_pre_vote_responses_are_ignored(self):
        p = self.make()
        now = self.timeout(p)
        self.sent(p)
        for m in (w.PreVoteResponse(5, True),    # a yes, but not for the term we ask about
                  w.PreVoteResponse(7, True),
                  w.PreVoteResponse(5, False),   # a no from a term not above ours
                  w.PreVoteResponse(4, False)):
            p.step(1, m, now=now)
        self.assertEqual((p.term, p.role, p.pre_votes, self.sent(p)), (5, "follower", {3}, []))

    def test_a_refusal_from_a_later_term_is_adopted(self):
        p = self.make()
        now = self.timeout(p)
        self.sent(p)
        p.step(1, w.PreVoteResponse(9, False), now=now)
        self.assertEqual((p.term, p.voted_for, p.role, p.pre_votes), (9, None, "follower", None))
        # A grant arriving afterwards (for 6 = old term + 1, or 10 = new term + 1) starts nothing.
        p.step(2, w.PreVoteResponse(10, True), now=now)
        p.step(2, w.PreVoteResponse(6, True), now=now)
        self.assertEqual((p.term, p.role), (9, "follower"))

    def test_append_entries_ends_the_pre_campaign(self):
        p = self.make()
        now = self.timeout(p)
        self.sent(p)
        self.hear_leader(p, 1, now=now)  # a leader of our own term
        self.assertIsNone(p.pre_votes)
        p.step(2, w.PreVoteResponse(6, True), now=now)
        self.assertEqual((p.term, p.role, p.leader_id), (5, "follower", 1))

    def test_a_refused_peer_keeps_trying(self):
        # No majority: the next timeout asks again, still without raising the term.
        p = self.make()
        for _ in range(3):
            self.timeout(p)
            self.assertEqual(len(self.sent(p)), 2)
            self.assertEqual(p.term, 5)
        self.assertEqual((p.vote_counts["pre_campaigns"], p.vote_counts["campaigns"]), (3, 0))

    def test_no_pre_vote_campaigns_at_once(self):
        p = self.make(pre_vote=False)
        self.timeout(p)
        self.assertEqual((p.term, p.voted_for, p.role), (6, 3, "candidate"))
        self.assertEqual(sorted(self.sent(p)), [(1, w.RequestVote(6, 3, 0, 0)), (2, w.RequestVote(6, 3, 0, 0))])

    def test_no_campaign_sends_nothing_but_still_answers(self):
        p = self.make(campaign=False)
        self.timeout(p)
        self.assertEqual((self.sent(p), p.term), ([], 5))
        p.step(1, w.PreVote(6, 1, 0, 0), now=p.election_due)
        self.assertEqual(self.sent(p), [(1, w.PreVoteResponse(6, True))])


class FiveServerPeerTests(PeerTests):
    """The same rules with a quorum of 3: one grant is not enough."""

    n = 5

    def test_a_majority_of_pre_votes_starts_the_real_election(self):
        p = self.make()
        now = self.timeout(p)
        self.assertEqual(len(self.sent(p)), 4)
        p.step(1, w.PreVoteResponse(6, True), now=now)
        p.step(1, w.PreVoteResponse(6, True), now=now)  # the same peer twice counts once
        self.assertEqual((p.term, p.role), (5, "follower"))
        p.step(4, w.PreVoteResponse(6, True), now=now)
        self.assertEqual((p.term, p.voted_for, p.role), (6, 3, "candidate"))

    # The three-server expectations about who is sent what do not hold with five servers.
    test_election_timeout_sends_pre_votes_and_keeps_the_term = None
    test_no_pre_vote_campaigns_at_once = None
    test_a_refused_peer_keeps_trying = None
    test_leader_ignores_pre_votes_and_higher_request_votes = None


if __name__ == "__main__":
    unittest.main()
