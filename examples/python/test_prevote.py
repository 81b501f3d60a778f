#!/usr/bin/env python3
"""Self-tests for pre-vote (Raft thesis §9.6) in leader_wire.py.

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
        self.assertEqual(reason(bytes.fromhex("06000000") + good[4:]), "garbage")   # unknown tag
        self.assertEqual(reason(good[:-1]), "truncated")
        self.assertEqual(reason(good + b"\0"), "garbage")                           # trailing byte
        resp = w.encode_message(w.PreVoteResponse(2, True))
        self.assertEqual(reason(resp[:-1] + b"\x02"), "garbage")                    # bool 02
        self.assertEqual(reason(resp[:-1]), "truncated")


if __name__ == "__main__":
    unittest.main()
