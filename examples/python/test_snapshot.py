#!/usr/bin/env python3
"""Self-tests for snapshots (Raft §7) in leader_wire.py and peer.py.

    python3 examples/python/test_snapshot.py [-v]

Standard library and pyzmq only. The wire tests check exact bytes of Message tags 6 and 7, the
LDSN snapshot image checks, and the chunk rules; the peer tests drive a real peer.Peer (sockets
on ipc:// endpoints in a temporary directory, never connected) through `step` with explicit
clock values and inspect its outbox, its files, and what a restart reads back.
"""

import os
import shutil
import struct
import sys
import tempfile
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import leader_wire as w  # noqa: E402

CHUNK = w.SNAPSHOT_CHUNK_BYTES_MAX


def u64(v: int) -> bytes:
    return v.to_bytes(8, "little")


def image(index: int, term: int, size: int = 1000, config: bytes = b"cfg") -> bytes:
    """An LDSN image of about `size` bytes naming (index, term)."""
    data = bytes((i * 7 + index) % 251 for i in range(max(0, size - 37 - len(config))))
    return w.encode_snapshot_image(w.SnapshotImage(index, term, config, data))


class WireTests(unittest.TestCase):
    def test_install_snapshot_bytes(self):
        m = w.InstallSnapshot(term=5, leader_id=2, last_index=412, last_term=3, total_len=1000, offset=0,
                              data=b"LDSN", crc=zlib.crc32(b"LDSN"))
        expected = (bytes.fromhex("06000000") + u64(5) + u64(2) + u64(412) + u64(3) + u64(1000) + u64(0)
                    + u64(4) + b"LDSN" + struct.pack("<I", zlib.crc32(b"LDSN")))
        self.assertEqual(w.encode_message(m), expected)
        self.assertEqual(w.decode_message(expected), m)

    def test_install_snapshot_response_bytes(self):
        m = w.InstallSnapshotResponse(term=5, last_index=412, last_term=3, next_offset=262144)
        expected = bytes.fromhex("07000000") + u64(5) + u64(412) + u64(3) + u64(262144)
        self.assertEqual(w.encode_message(m), expected)
        self.assertEqual(w.decode_message(expected), m)

    def test_strict_decoding(self):
        def reason(data):
            with self.assertRaises(w.WireError) as cm:
                w.decode_message(data)
            return cm.exception.reason
        good = w.encode_message(w.InstallSnapshot(5, 2, 1, 1, 3, 0, b"abc", zlib.crc32(b"abc")))
        self.assertEqual(reason(good[:-1]), "truncated")
        self.assertEqual(reason(good + b"\0"), "garbage")
        self.assertEqual(reason(bytes.fromhex("0e000000") + good[4:]), "garbage")
        # A data length far beyond the bytes present is refused, not allocated.
        huge = good[:4 + 48] + u64(1 << 60) + good[4 + 56:]
        self.assertIn(reason(huge), ("truncated", "oversize"))

    def test_image_layout_and_checks(self):
        img = image(412, 3, 600)
        self.assertEqual(img[:4], b"LDSN")
        magic, version, index, term, n, m = struct.unpack("<4sBQQIQ", img[:33])
        self.assertEqual((magic, version, index, term, n, 37 + n + m), (b"LDSN", 1, 412, 3, 3, len(img)))
        self.assertEqual(zlib.crc32(img[:-4]), struct.unpack("<I", img[-4:])[0])
        got = w.decode_snapshot_image(img, 412, 3)
        self.assertEqual((got.last_index, got.last_term, got.config), (412, 3, b"cfg"))

        def offset(data, *args):
            with self.assertRaises(w.SnapshotImageError) as cm:
                w.decode_snapshot_image(data, *args)
            return cm.exception.offset
        self.assertEqual(offset(img[:36]), 0)
        self.assertEqual(offset(b"XDSN" + img[4:]), 0)
        self.assertEqual(offset(img[:4] + b"\x02" + img[5:]), 4)
        self.assertEqual(offset(img[:-1]), 25)                       # size does not add up
        self.assertEqual(offset(img[:-4] + b"\0\0\0\0"), len(img) - 4)  # CRC
        self.assertEqual(offset(img, 411, 3), 5)                       # not the chunks' snapshot
        self.assertEqual(offset(img, 412, 2), 5)
        self.assertEqual(offset(w.encode_snapshot_image(w.SnapshotImage(0, 1, b"", b"x"))), 5)
        self.assertEqual(offset(w.encode_snapshot_image(w.SnapshotImage(1, 0, b"", b"x"))), 13)
        # Every flipped bit is refused.
        small = image(9, 2, 60)
        for bit in range(len(small) * 8):
            bad = bytearray(small)
            bad[bit // 8] ^= 1 << (bit % 8)
            with self.assertRaises(w.SnapshotImageError):
                w.decode_snapshot_image(bytes(bad), 9, 2)

    def test_chunks(self):
        img = image(7, 2, 2 * CHUNK + 100)
        chunks = w.snapshot_chunks(4, 1, img)
        self.assertEqual([c.offset for c in chunks], [0, CHUNK, 2 * CHUNK])
        self.assertEqual([len(c.data) for c in chunks], [CHUNK, CHUNK, 100])
        self.assertEqual(b"".join(c.data for c in chunks), img)
        for c in chunks:
            self.assertEqual((c.term, c.leader_id, c.last_index, c.last_term, c.total_len), (4, 1, 7, 2, len(img)))
            self.assertIsNone(w.check_install_snapshot(1, c))
            env = w.Envelope(1, 0x1122334455667788, 1, 3, c)
            self.assertLessEqual(len(w.encode_envelope(env)), w.ENVELOPE_BYTES_MAX)
            self.assertEqual(w.decode_envelope(w.encode_envelope(env)), env)

    def test_chunk_rules(self):
        ok = w.snapshot_chunks(4, 1, image(7, 2))[0]
        rep = lambda **kw: ok.__class__(**{**ok.__dict__, **kw})  # noqa: E731
        cases = {
            "invalid_leader_id": [rep(leader_id=2)],
            "invalid_log_position": [rep(last_index=0), rep(last_term=0), rep(last_term=5)],
            "invalid_snapshot_chunk": [rep(data=b"", crc=zlib.crc32(b"")), rep(total_len=len(ok.data) - 1),
                                       rep(offset=1),
                                       rep(data=b"x" * (CHUNK + 1), crc=zlib.crc32(b"x" * (CHUNK + 1)),
                                           total_len=CHUNK + 1)],
            "invalid_snapshot_chunk_checksum": [rep(crc=ok.crc ^ 1), rep(data=b"y" + ok.data[1:])],
        }
        for counter, chunks in cases.items():
            for c in chunks:
                self.assertEqual(w.check_install_snapshot(1, c), counter, c.__dict__.keys())


class PeerTests(unittest.TestCase):
    """A peer.Peer with pid 3 in a cluster of 3; server 1 is the leader sending snapshots."""

    def setUp(self):
        try:
            import peer  # needs pyzmq
        except SystemExit as e:
            self.skipTest(str(e))
        self.peer_mod = peer
        self.dir = tempfile.mkdtemp(prefix="snapshot-")
        servers = ",".join(f'{{"mypid": {i}, "url": "ipc://{self.dir}/{i}.sock"}}' for i in range(1, 4))
        self.config_path = os.path.join(self.dir, "config.json")
        with open(self.config_path, "w") as f:
            f.write(f'{{"object": {{"total": 3, "election_timeout_ms": 200, "heartbeat_ms": 50, '
                    f'"Servers": [{servers}]}}}}')
        self.config = w.load_config(self.config_path)
        self.data_dir = os.path.join(self.dir, "data3")
        self.peers = []
        self.emitted = []

    def tearDown(self):
        for p in self.peers:
            p.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def make(self, term=5, log_terms=(), fresh=True):
        if fresh:
            os.makedirs(self.data_dir, exist_ok=True)
            self.peer_mod.HardState(self.data_dir).save(term, None)
        p = self.peer_mod.Peer(self.config, 3, self.data_dir, True, client=False, verbose=False)
        self.peers.append(p)
        first = p.log.last_index() + 1
        p.log.append([w.Entry(t, first + i, b"x") for i, t in enumerate(log_terms)])
        p.log.sync()
        p.emit = self.emitted.append
        return p

    def restart(self, p):
        p.close()
        self.peers.remove(p)
        return self.make(fresh=False)

    def sent(self, p):
        out, p.outbox = p.outbox, []
        return out

    def send_image(self, p, img, term=5, now=100.0):
        """Every chunk of `img` from server 1, one at a time; returns everything p sent."""
        out = []
        for c in w.snapshot_chunks(term, 1, img):
            p.step(1, c, now)
            out += self.sent(p)
        return out

    def snapshot_file(self):
        with open(os.path.join(self.data_dir, "snapshot.bin"), "rb") as f:
            return f.read()

    # -- receiving ----------------------------------------------------------------------------

    def test_a_multi_chunk_snapshot_is_installed_and_the_log_discarded(self):
        p = self.make(log_terms=(1, 1, 2))
        img = image(500, 4, 2 * CHUNK + 1234)
        out = self.send_image(p, img)
        total = len(img)
        self.assertEqual(out, [(1, w.InstallSnapshotResponse(5, 500, 4, CHUNK)),
                               (1, w.InstallSnapshotResponse(5, 500, 4, 2 * CHUNK)),
                               (1, w.InstallSnapshotResponse(5, 500, 4, total)),
                               (1, w.AppendEntriesResponse(5, True, 500, 0, 0))])
        self.assertEqual(self.snapshot_file(), img)
        self.assertFalse(os.path.exists(os.path.join(self.data_dir, "snapshot.bin.incoming")))
        self.assertEqual((p.commit_index, p.log.last_index(), p.log.last_term(), p.log.entries), (500, 500, 4, []))
        self.assertEqual((p.leader_id, p.status().commit_index, p.status().last_index), (1, 500, 500))
        self.assertEqual(self.emitted[-1]["snapshot"]["installed"], 500)
        self.assertEqual(self.emitted[-1]["snapshot"]["log"], "discarded")
        # The log continues after the snapshot.
        p.step(1, w.AppendEntries(5, 1, 500, 4, [w.Entry(5, 501, b"a"), w.Entry(5, 502, b"b")], 502), 100.0)
        self.assertEqual(self.sent(p), [(1, w.AppendEntriesResponse(5, True, 502, 0, 0))])
        p.flush()
        # A restart reads it all back: snapshot, log base and entries; commit = the snapshot.
        p = self.restart(p)
        self.assertEqual((p.snap.index, p.snap.term, p.log.base_index, p.log.base_term), (500, 4, 500, 4))
        self.assertEqual((p.log.last_index(), p.commit_index, p.term), (502, 500, 5))

    def test_the_log_after_the_snapshot_is_kept_when_it_holds_its_last_entry(self):
        p = self.make(log_terms=(1, 1, 2, 2, 3))
        out = self.send_image(p, image(3, 2))
        self.assertEqual(out[-1], (1, w.AppendEntriesResponse(5, True, 3, 0, 0)))
        self.assertEqual((p.log.base_index, p.log.base_term, [e.index for e in p.log.entries]), (3, 2, [4, 5]))
        self.assertEqual((p.commit_index, p.log.last_index()), (3, 5))
        self.assertEqual(self.emitted[-1]["snapshot"]["log"], "kept")
        p = self.restart(p)
        self.assertEqual(([e.index for e in p.log.entries], p.log.term_at(3), p.log.term_at(4)), ([4, 5], 2, 2))

    def test_the_log_is_discarded_when_its_entry_has_another_term(self):
        p = self.make(log_terms=(1, 1, 1, 1))
        self.send_image(p, image(3, 2))
        self.assertEqual((p.log.base_index, p.log.entries, p.log.last_index()), (3, [], 3))

    def test_a_snapshot_it_has_is_acknowledged_and_not_received(self):
        p = self.make(log_terms=(1, 1, 2))
        p.step(1, w.AppendEntries(5, 1, 3, 2, [], 3), 100.0)  # commit 3
        self.sent(p)
        c = w.snapshot_chunks(5, 1, image(2, 1))[0]
        p.step(1, c, 100.0)
        self.assertEqual(self.sent(p), [(1, w.AppendEntriesResponse(5, True, 2, 0, 0))])
        self.assertIsNone(p.incoming)
        self.assertFalse(os.path.exists(os.path.join(self.data_dir, "snapshot.bin")))

    def test_out_of_order_and_duplicate_chunks_are_answered_with_what_is_held(self):
        p = self.make()
        chunks = w.snapshot_chunks(5, 1, image(40, 3, 3 * CHUNK + 10))
        p.step(1, chunks[1], 100.0)  # nothing of this image held: from 0, please
        self.assertEqual(self.sent(p), [(1, w.InstallSnapshotResponse(5, 40, 3, 0))])
        self.assertIsNone(p.incoming)
        p.step(1, chunks[0], 100.0)
        p.step(1, chunks[0], 100.0)  # a duplicate: not written again
        p.step(1, chunks[2], 100.0)  # ahead of what is held: not written
        self.assertEqual([m.next_offset for _, m in self.sent(p)], [CHUNK, CHUNK, CHUNK])
        for c in chunks[1:]:
            p.step(1, c, 100.0)
        self.assertEqual(self.sent(p)[-1], (1, w.AppendEntriesResponse(5, True, 40, 0, 0)))
        self.assertEqual(p.snap.index, 40)

    def test_offset_zero_of_another_snapshot_starts_over(self):
        p = self.make()
        old = w.snapshot_chunks(5, 1, image(40, 3, 2 * CHUNK))
        p.step(1, old[0], 100.0)
        new_img = image(60, 4, 2 * CHUNK + 5)
        new = w.snapshot_chunks(5, 1, new_img)
        p.step(1, new[1], 100.0)  # another image, not at 0: nothing held of it
        p.step(1, new[0], 100.0)
        self.assertEqual([m.next_offset for _, m in self.sent(p)], [CHUNK, 0, CHUNK])
        self.assertEqual(p.incoming["key"], (60, 4, len(new_img)))
        for c in new[1:]:
            p.step(1, c, 100.0)
        self.assertEqual((p.snap.index, self.snapshot_file()), (60, new_img))

    def test_a_damaged_image_is_dropped_and_asked_for_again(self):
        p = self.make(log_terms=(1,))
        img = bytearray(image(40, 3, CHUNK + 100))
        img[100] ^= 0xFF  # the chunk CRCs are of the damaged bytes: only the image check sees it
        out = self.send_image(p, bytes(img))
        self.assertEqual(out[-1], (1, w.InstallSnapshotResponse(5, 40, 3, 0)))
        self.assertNotIn(True, [getattr(m, "success", None) for _, m in out])
        self.assertEqual((p.drops["invalid_snapshot_image"], p.snap.index, p.log.last_index()), (1, 0, 1))
        self.assertFalse(os.path.exists(os.path.join(self.data_dir, "snapshot.bin.incoming")))
        # An image naming another snapshot than its chunks is just as bad.
        other = image(41, 3, 500)
        c = w.InstallSnapshot(5, 1, 40, 3, len(other), 0, other, zlib.crc32(other))
        p.step(1, c, 100.0)
        self.assertEqual(self.sent(p), [(1, w.InstallSnapshotResponse(5, 40, 3, 0))])
        self.assertEqual(p.drops["invalid_snapshot_image"], 2)

    def test_invalid_chunks_are_dropped_and_counted(self):
        p = self.make()
        ok = w.snapshot_chunks(5, 1, image(40, 3))[0]
        bad_crc = w.InstallSnapshot(**{**ok.__dict__, "crc": ok.crc ^ 1})
        too_long = w.InstallSnapshot(**{**ok.__dict__, "total_len": 10})
        wrong_leader = w.InstallSnapshot(**{**ok.__dict__, "leader_id": 2})
        for m in (bad_crc, too_long, wrong_leader, w.InstallSnapshot(**{**ok.__dict__, "term": 9, "crc": 0})):
            p.step(1, m, 100.0)
        self.assertEqual(self.sent(p), [])
        self.assertEqual((p.drops["invalid_snapshot_chunk_checksum"], p.drops["invalid_snapshot_chunk"],
                          p.drops["invalid"]), (2, 1, 1))
        self.assertEqual((p.term, p.leader_id, p.incoming), (5, None, None))  # nothing obeyed

    def test_terms(self):
        p = self.make(term=5)
        # Stale: answered with our term, next_offset 0, nothing else.
        p.step(1, w.snapshot_chunks(4, 1, image(40, 3))[0], 100.0)
        self.assertEqual(self.sent(p), [(1, w.InstallSnapshotResponse(5, 40, 3, 0))])
        self.assertIsNone(p.incoming)
        # Later: adopted, and the sender is the leader.
        p.step(2, w.snapshot_chunks(7, 2, image(40, 3, CHUNK + 1))[0], 100.0)
        self.assertEqual((p.term, p.voted_for, p.leader_id), (7, None, 2))
        self.assertEqual(self.sent(p), [(2, w.InstallSnapshotResponse(7, 40, 3, CHUNK))])
        p.flush()
        self.assertEqual(p.hard.term, 7)

    def test_a_chunk_is_leader_contact(self):
        p = self.make()
        p.become_candidate(100.0)
        self.sent(p)
        due = p.election_due
        p.step(1, w.snapshot_chunks(6, 1, image(40, 3, CHUNK + 1))[0], 100.5)
        self.assertEqual((p.role, p.leader_id, p.leader_contact), ("follower", 1, (6, 100.5)))
        self.assertGreater(p.election_due, due)
        # Leader stickiness now holds: a higher PreVote is ignored.
        self.sent(p)
        p.step(2, w.PreVote(7, 2, 99, 9), 100.6)
        self.assertEqual(self.sent(p), [])

    def test_append_entries_below_the_snapshot_skip_what_it_covers(self):
        p = self.make()
        self.send_image(p, image(10, 2))
        # Entirely covered: acknowledged as held.
        p.step(1, w.AppendEntries(5, 1, 7, 2, [w.Entry(2, 8, b""), w.Entry(2, 9, b"")], 9), 100.0)
        self.assertEqual(self.sent(p), [(1, w.AppendEntriesResponse(5, True, 9, 0, 0))])
        # Reaching past it: the rest is checked against the snapshot's end and appended.
        es = [w.Entry(2, i, b"e") for i in range(8, 11)] + [w.Entry(5, 11, b""), w.Entry(5, 12, b"x")]
        p.step(1, w.AppendEntries(5, 1, 7, 2, es, 12), 100.0)
        self.assertEqual(self.sent(p), [(1, w.AppendEntriesResponse(5, True, 12, 0, 0))])
        self.assertEqual(([e.index for e in p.log.entries], p.commit_index), ([11, 12], 12))
        # A heartbeat at the snapshot's end matches; one before it is below the log: held.
        p.step(1, w.AppendEntries(5, 1, 10, 2, [], 12), 100.0)
        p.step(1, w.AppendEntries(5, 1, 0, 0, [], 12), 100.0)
        self.assertEqual([m.success for _, m in self.sent(p)], [True, True])
        # Rejection hints never point below the log's start.
        p.step(1, w.AppendEntries(5, 1, 14, 5, [], 12), 100.0)
        self.assertEqual(self.sent(p), [(1, w.AppendEntriesResponse(5, False, 14, 13, 0))])

    def test_votes_compare_against_the_snapshot_when_the_log_is_empty(self):
        p = self.make()
        self.send_image(p, image(10, 2))
        p.step(2, w.RequestVote(6, 2, 9, 2), 1000.0)  # shorter than our snapshot
        self.assertEqual(self.sent(p), [(2, w.RequestVoteResponse(6, False))])
        p.step(2, w.RequestVote(6, 2, 10, 2), 1000.0)
        self.assertEqual(self.sent(p), [(2, w.RequestVoteResponse(6, True))])

    def test_as_leader_a_follower_needing_the_snapshot_gets_heartbeats_and_no_crash(self):
        p = self.make()
        self.send_image(p, image(10, 2))
        p.flush()
        p.become_candidate(1000.0)
        p.step(1, w.RequestVoteResponse(6, True), 1000.0)
        self.assertEqual(p.role, "leader")
        self.sent(p)
        # Server 2 has nothing: it rejects, its hint points into the snapshot.
        p.step(2, w.AppendEntriesResponse(6, False, 10, 1, 0), 1000.0)
        p.next_index[2] = 1
        p.send_append(2)
        p.send_append(2)
        out = self.sent(p)
        self.assertEqual(out[-1], (2, w.AppendEntries(6, 3, 10, 2, [], p.commit_index)))
        self.assertEqual(p.snapshot_needed, {2})

    def test_a_restart_finishes_an_install_cut_short(self):
        # Crash between the snapshot's rename and the log's rewrite: snapshot.bin is ahead of
        # raft.log. The start applies §7 again.
        p = self.make(log_terms=(1, 2, 2, 3))
        p.close()
        self.peers.remove(p)
        with open(os.path.join(self.data_dir, "snapshot.bin"), "wb") as f:
            f.write(image(2, 2))
        p = self.make(fresh=False)
        self.assertEqual((p.log.base_index, [e.index for e in p.log.entries], p.commit_index), (2, [3, 4], 2))

    def test_a_damaged_snapshot_or_a_log_without_its_snapshot_is_refused(self):
        p = self.make()
        self.send_image(p, image(10, 2))
        p.close()
        self.peers.remove(p)
        path = os.path.join(self.data_dir, "snapshot.bin")
        good = self.snapshot_file()
        with open(path, "wb") as f:
            f.write(good[:-1] + bytes([good[-1] ^ 1]))
        with self.assertRaises(self.peer_mod.StorageError):
            self.make(fresh=False)
        os.remove(path)  # a log that starts at 10 with no snapshot
        with self.assertRaises(self.peer_mod.StorageError):
            self.make(fresh=False)

    def test_an_old_log_format_is_read(self):
        os.makedirs(self.data_dir)
        payload = w.encode_entry(w.Entry(1, 1, b"old"))
        with open(os.path.join(self.data_dir, "raft.log"), "wb") as f:
            f.write(b"LPYLOG1\n" + struct.pack("<II", len(payload), zlib.crc32(payload)) + payload)
        p = self.make(fresh=False)
        self.assertEqual((p.log.base_index, p.log.last_index(), p.log.entries[0].data), (0, 1, b"old"))


if __name__ == "__main__":
    unittest.main()
