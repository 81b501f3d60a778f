#!/usr/bin/env python3
"""Self-test of the Inspect request and its Inspection answer (docs/wire.md §5, Request and
Response tag 7) in leader_wire.py, against the bytes of docs/wire.md §7's examples (which
tests/wire_doc.rs generates from the Rust types).

    python3 examples/python/test_inspect.py [-v]
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import leader_wire as w  # noqa: E402

from test_transfer import CLUSTER, doc_hex  # noqa: E402  (the docs/wire.md §7 example reader)


class InspectWire(unittest.TestCase):
    def test_inspect_request_encodes_to_the_documented_bytes(self):
        req = w.ClientRequest(1, CLUSTER, 9, w.InspectRequest())
        self.assertEqual(w.encode_client_request(req), doc_hex("ClientRequest: Inspect"))
        self.assertEqual(w.decode_client_request(doc_hex("ClientRequest: Inspect")), req)

    def test_inspection_decodes_every_field(self):
        resp = w.decode_client_response(doc_hex("ClientResponse: Inspection"))
        self.assertEqual(resp.request_id, 9)
        i = resp.body
        self.assertIsInstance(i, w.Inspection)
        self.assertEqual(i.status, w.Status(2, w.Role.FOLLOWER, 5, None, 3, 12, 12, 13))
        self.assertEqual((i.os_pid, i.uptime_ms), (4242, 60000))
        self.assertEqual(i.votes, [
            w.VoteSeen(3, 5, w.VoteKind.VOTE, w.VoteVerdict(0), 900),
            w.VoteSeen(1, 5, w.VoteKind.PRE_VOTE, w.VoteVerdict(2, 3), 300),
        ])
        self.assertEqual(str(i.votes[1].verdict), "refused: already voted for 3")
        self.assertEqual(i.last_contact, [w.PeerContact(3, 40)])
        self.assertEqual((i.elections_started, i.elections_won), (1, 0))
        self.assertEqual(i.counters, [w.Counter("bad_mac", 2)])

    def test_inspection_encodes_back_to_the_documented_bytes(self):
        data = doc_hex("ClientResponse: Inspection")
        self.assertEqual(w.encode_client_response(w.decode_client_response(data)), data)

    def test_a_truncated_inspection_is_refused(self):
        data = doc_hex("ClientResponse: Inspection")
        for cut in (20, 100, len(data) - 1):
            with self.assertRaises(w.WireError):
                w.decode_client_response(data[:cut])


if __name__ == "__main__":
    unittest.main()
