#!/usr/bin/env python3
"""Self-tests for the counters of dropped and ignored input (docs/wire.md §5: Request tag 2
`Counters`, Response tag 3 `Counters(Vec<Counter>)`) in leader_wire.py and client.py.

    python3 examples/python/test_counters.py [-v]

Standard library, plus pyzmq for the client tests (skipped without it). The wire tests check
exact bytes; the client tests run client.py's `status` against a fake server (a ROUTER socket
on an ipc:// endpoint in a temporary directory) that answers what each test tells it to.
"""

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import leader_wire as w  # noqa: E402

CLUSTER = 0x1122334455667788


def u64(v: int) -> bytes:
    return v.to_bytes(8, "little")


def string(s: str) -> bytes:
    raw = s.encode("utf-8")
    return u64(len(raw)) + raw


class WireTests(unittest.TestCase):
    def test_counters_request_bytes(self):
        req = w.ClientRequest(1, CLUSTER, 3, w.CountersRequest())
        # version, cluster_id, request_id, Request tag 2 (no fields): 22 bytes, like Status.
        expected = b"\x01\x00" + u64(CLUSTER) + u64(3) + b"\x02\x00\x00\x00"
        self.assertEqual(len(expected), 22)
        self.assertEqual(w.encode_client_request(req), expected)
        self.assertEqual(w.decode_client_request(expected), req)

    def test_counters_response_bytes(self):
        resp = w.ClientResponse(1, 3, w.Counters([w.Counter("bad_mac", 2),
                                                  w.Counter("invalid_entries_not_contiguous", 1 << 40)]))
        expected = (b"\x01\x00" + u64(3) + b"\x03\x00\x00\x00" + u64(2)
                    + string("bad_mac") + u64(2)
                    + string("invalid_entries_not_contiguous") + u64(1 << 40))
        self.assertEqual(expected[:26].hex(" "),
                         "01 00 03 00 00 00 00 00 00 00 03 00 00 00 02 00 00 00 00 00 00 00 07 00 00 00")
        self.assertEqual(w.encode_client_response(resp), expected)
        self.assertEqual(w.decode_client_response(expected), resp)
        self.assertEqual(resp.body.as_dict(), {"bad_mac": 2, "invalid_entries_not_contiguous": 1 << 40})

    def test_empty_and_extreme_counters(self):
        empty = w.ClientResponse(1, 0, w.Counters([]))
        self.assertEqual(w.encode_client_response(empty), b"\x01\x00" + u64(0) + b"\x03\0\0\0" + u64(0))
        self.assertEqual(w.decode_client_response(w.encode_client_response(empty)), empty)
        odd = w.ClientResponse(1, (1 << 64) - 1, w.Counters([w.Counter("", 0), w.Counter("é", (1 << 64) - 1)]))
        data = w.encode_client_response(odd)
        self.assertIn(u64(2) + b"\xc3\xa9" + b"\xff" * 8, data)  # the name's UTF-8 byte length
        self.assertEqual(w.decode_client_response(data), odd)

    def test_existing_tags_unchanged(self):
        # docs/wire.md §7, "ClientRequest: Status" and "ClientResponse: Error NotLeader".
        status = bytes.fromhex("01 00 88 77 66 55 44 33 22 11 03 00 00 00 00 00 00 00 00 00 00 00")
        self.assertEqual(w.encode_client_request(w.ClientRequest(1, CLUSTER, 3, w.StatusRequest())), status)
        redirect = bytes.fromhex("01 00 04 00 00 00 00 00 00 00 01 00 00 00 02 00 00 00 01 03 00 00 00 00 00 00 00")
        self.assertEqual(w.decode_client_response(redirect), w.ClientResponse(1, 4, w.NotLeader(3)))

    def test_strict_decoding(self):
        def reason(decode, data):
            with self.assertRaises(w.WireError) as cm:
                decode(data)
            return cm.exception.reason
        req = w.encode_client_request(w.ClientRequest(1, CLUSTER, 3, w.CountersRequest()))
        self.assertEqual(reason(w.decode_client_request, req + b"\0"), "garbage")          # trailing byte
        self.assertEqual(reason(w.decode_client_request, req[:-4] + b"\x0a\0\0\0"), "garbage")  # unknown tag
        self.assertEqual(reason(w.decode_client_request, req[:-1]), "truncated")
        resp = w.encode_client_response(w.ClientResponse(1, 3, w.Counters([w.Counter("bad_mac", 2)])))
        dec = w.decode_client_response
        self.assertEqual(reason(dec, resp + b"\0"), "garbage")                               # trailing byte
        self.assertEqual(reason(dec, resp[:10] + b"\x07\0\0\0" + resp[14:]), "garbage")      # unknown tag
        self.assertEqual(reason(dec, resp[:-1]), "truncated")
        # A count the bytes left cannot hold is refused before anything is read.
        self.assertEqual(reason(dec, resp[:14] + u64(1 << 60) + resp[22:]), "truncated")
        # A name that is not UTF-8.
        bad = resp[:22] + u64(7) + b"bad_ma\xff" + resp[-8:]
        self.assertEqual(reason(dec, bad), "garbage")
        # A name length running past the end.
        self.assertEqual(reason(dec, resp[:22] + u64(100) + resp[30:]), "truncated")


def status_body(pid: int) -> w.Status:
    return w.Status(pid, w.Role.LEADER, 5, pid, pid, 8, 8, 9)


class StatusJsonTests(unittest.TestCase):
    def setUp(self):
        try:
            import client  # needs pyzmq
        except SystemExit as e:
            self.skipTest(str(e))
        self.client = client

    def test_an_inspection_line_has_the_rust_cli_keys_sorted(self):
        i = w.Inspection(status_body(1), 4242, 60000,
                         [w.VoteSeen(2, 5, w.VoteKind.PRE_VOTE, w.VoteVerdict(3), 40)],
                         [w.PeerContact(2, 7)], 1, 1, [w.Counter("truncated", 0), w.Counter("bad_mac", 3)])
        line = self.client.status_json_line(1, (status_body(1), i))
        self.assertEqual(line, '{"commit_index":8,"dropped":{"bad_mac":3,"truncated":0},"elections_started":1,'
                               '"elections_won":1,"last_applied":8,"last_contact_ms":{"2":7},"last_index":9,'
                               '"leader":1,"os_pid":4242,"pid":1,"state":"leader","term":5,"uptime_ms":60000,'
                               '"voted_for":1,"votes":[{"candidate":2,"granted":false,"kind":"PreVote",'
                               '"ms_ago":40,"reason":"refused: candidate\'s log is behind ours","term":5}]}')

    def test_a_plain_status_line_has_only_the_status_keys(self):
        line = json.loads(self.client.status_json_line(2, (status_body(2), None)))
        self.assertEqual(sorted(line), ["commit_index", "last_applied", "last_index", "leader", "pid", "state",
                                        "term", "voted_for"])

    def test_an_error_line_has_no_dropped(self):
        line = self.client.status_json_line(3, self.client.Unreachable())
        self.assertEqual(line, '{"error":"unreachable","pid":3}')


class FakeServer:
    """A ROUTER on `endpoint` answering each request with `answer(request)` (None: silence)."""

    def __init__(self, zmq, endpoint: str, answer):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(endpoint)
        self.answer = answer
        self.requests = []
        self.stop = threading.Event()
        self.zmq = zmq
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            if not self.sock.poll(20, self.zmq.POLLIN):
                continue
            ident, _, frame = self.sock.recv_multipart()
            req = w.decode_client_request(frame)
            self.requests.append(req)
            body = self.answer(req)
            if body is not None:
                out = w.encode_client_response(w.ClientResponse(1, req.request_id, body))
                self.sock.send_multipart([ident, b"", out])

    def close(self):
        self.stop.set()
        self.thread.join()
        self.sock.close(linger=0)
        self.ctx.term()


class ClientTests(unittest.TestCase):
    """client.py against two fake servers: 1 answers everything (Inspect too), 2 is an older
    server: it never answers Counters and refuses Inspect as a BadRequest."""

    def setUp(self):
        try:
            import zmq
            import client
        except (ImportError, SystemExit) as e:
            self.skipTest(str(e))
        self.client_mod = client
        self.dir = tempfile.mkdtemp(prefix="counters-")
        servers = ",".join(f'{{"mypid": {i}, "url": "ipc://{self.dir}/{i}.sock"}}' for i in (1, 2, 3))
        self.config_path = os.path.join(self.dir, "config.json")
        with open(self.config_path, "w") as f:
            f.write(f'{{"object": {{"total": 3, "Servers": [{servers}]}}}}')
        self.config = w.load_config(self.config_path)
        self.counters = [w.Counter("oversize", 0), w.Counter("bad_mac", 4), w.Counter("invalid_entries_not_contiguous", 1)]

        def answer(pid, counters):
            def reply(req):
                if isinstance(req.body, w.StatusRequest):
                    return status_body(pid)
                if isinstance(req.body, w.MembershipRequest) and counters:
                    return w.MembershipInfo(0, True, [w.MemberInfo(p, w.Voter(), "", "") for p in (1, 2, 3)])
                if isinstance(req.body, w.InspectRequest):
                    if not counters:
                        return w.BadRequest("request is not a valid ClientRequest")
                    return w.Inspection(status_body(pid), 4000 + pid, 1000, [], [], 0, 0, self.counters)
                if isinstance(req.body, w.CountersRequest):
                    return w.Counters(self.counters) if counters else None
                return w.NotLeader(None)
            return reply
        self.servers = [FakeServer(zmq, self.config.server(1).client_endpoint, answer(1, True)),
                        FakeServer(zmq, self.config.server(2).client_endpoint, answer(2, False))]
        # Server 3 is absent: unreachable.

    def tearDown(self):
        for s in self.servers:
            s.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_counters_method(self):
        c = self.client_mod.Client(self.config, 0.5)
        try:
            self.assertEqual(c.counters(1), [("oversize", 0), ("bad_mac", 4), ("invalid_entries_not_contiguous", 1)])
            with self.assertRaises(self.client_mod.Unreachable):
                c.counters(2)
        finally:
            c.close()
        self.assertIsInstance(self.servers[0].requests[0].body, w.CountersRequest)

    def test_status_json_carries_the_inspection_like_the_rust_cli(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = self.client_mod.main(["--config", self.config_path, "status", "--timeout-ms", "200"])
        self.assertEqual(code, 0)
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        self.assertEqual([line["pid"] for line in lines], [1, 2, 3])
        self.assertEqual(lines[0]["dropped"], {"oversize": 0, "bad_mac": 4, "invalid_entries_not_contiguous": 1})
        self.assertIn('"dropped":{"bad_mac":4,"invalid_entries_not_contiguous":1,"oversize":0}',
                      out.getvalue().splitlines()[0])
        self.assertEqual(lines[0]["os_pid"], 4001)
        self.assertNotIn("dropped", lines[1])  # the older server: its plain status only
        self.assertEqual(lines[1]["state"], "leader")
        self.assertEqual(lines[2], {"pid": 3, "error": "unreachable"})
        self.assertEqual(lines[0]["member"], "voter")
        self.assertNotIn("member", lines[1], "the older server answers no Membership request")
        # One Inspect each (the server that refused it is asked for its plain status), then
        # its role in its own membership.
        self.assertEqual([type(r.body) for r in self.servers[0].requests], [w.InspectRequest, w.MembershipRequest])
        self.assertEqual([type(r.body) for r in self.servers[1].requests],
                         [w.InspectRequest, w.StatusRequest, w.MembershipRequest])

    def test_the_table_has_the_rust_cli_columns(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = self.client_mod.main(["--config", self.config_path, "status", "--table", "--timeout-ms", "200"])
        self.assertEqual(code, 0)
        self.assertNotIn("dropped", out.getvalue())
        rows = out.getvalue().splitlines()
        self.assertEqual(rows[0].split(), ["PID", "OS_PID", "STATE", "TERM", "LEADER", "VOTED_FOR", "COMMIT",
                                           "APPLIED", "URL"])
        self.assertEqual(rows[1].split()[:3], ["1", "4001", "leader"])
        self.assertEqual(rows[2].split()[:3], ["2", "-", "leader"])


if __name__ == "__main__":
    unittest.main()
