#!/usr/bin/env python3
"""Send hostile frames at a server's PULL socket (a test tool).

    python3 garbage.py --endpoint tcp://127.0.0.1:PORT [--count N] [--seed S]
                       [--config FILE --as PID --to PID]

With --config, --as and --to it first sends well-formed envelopes from server --as to server
--to (sealed with the config's cluster key, if any) carrying PreVotes with odd fields: terms 0,
2^63 - 1 and above it, a candidate_id that is not the sender, an absurdly long log. Each is only
a question, so none may change anything at a receiver, whatever it answers (a server that
predates pre-vote drops them as undecodable). --endpoint then defaults to --to's.

Then it sends, through one PUSH socket: N frames of random garbage (1-200 random bytes), N truncated
envelopes that look valid at first (version 1, then 1-30 random bytes), then one oversize
frame of 2 MiB (sent last: the receiver's ZMQ_MAXMSGSIZE makes libzmq drop the connection
that carried it). Waits up to 5 s for the frames to leave, then exits 0. A correct server
drops and counts all of them and carries on (docs/wire.md §3, "Receiving").
"""

import argparse
import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import leader_wire as w  # noqa: E402

try:
    import zmq
except ImportError:  # pragma: no cover
    sys.exit("garbage.py needs pyzmq: pip install pyzmq")


def main(argv) -> int:
    p = argparse.ArgumentParser(prog="garbage.py", description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", help="the server's peer endpoint, e.g. tcp://127.0.0.1:7001")
    p.add_argument("--config", help="with --as and --to: also send odd PreVotes that pass the envelope checks")
    p.add_argument("--as", dest="as_pid", type=int, help="the pid the PreVotes claim to come from")
    p.add_argument("--to", type=int, help="the pid of the server at the endpoint")
    p.add_argument("--count", type=int, default=10, help="frames of each small kind (default 10)")
    p.add_argument("--seed", type=int, default=None, help="seed for the random bytes")
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    rand = lambda n: bytes(rng.getrandbits(8) for _ in range(n))  # noqa: E731

    frames = []
    if args.config is not None or args.as_pid is not None or args.to is not None:
        if None in (args.config, args.as_pid, args.to):
            p.error("--config, --as and --to go together")
        try:
            cfg = w.load_config(args.config)
            cfg.server(args.as_pid)
            endpoint = cfg.server(args.to).endpoint
            key = w.load_cluster_key(cfg.cluster_key_file) if cfg.cluster_key_file else None
        except w.ConfigError as e:
            print(f"garbage.py: {e}", file=sys.stderr)
            return 2
        args.endpoint = args.endpoint or endpoint
        big = (1 << 64) - 1
        odd = [w.PreVote(0, args.as_pid, 0, 0),
               w.PreVote(w.TERM_MAX, args.as_pid, big, w.TERM_MAX),
               w.PreVote(w.TERM_MAX + 1, args.as_pid, 0, 0),
               w.PreVote(big, args.as_pid, big, big),
               w.PreVote(w.TERM_MAX, 0, big, w.TERM_MAX),            # candidate_id != from
               w.PreVote(w.TERM_MAX, args.to, big, w.TERM_MAX)]      # the receiver itself
        frames += [w.seal(key, w.encode_envelope(w.Envelope(w.WIRE_VERSION, cfg.cluster_id, args.as_pid, args.to, m)))
                   for m in odd]
    if args.endpoint is None:
        p.error("--endpoint is required (or --config, --as and --to)")
    frames += [rand(rng.randint(1, 200)) for _ in range(args.count)]
    frames += [struct.pack("<H", 1) + rand(rng.randint(1, 30)) for _ in range(args.count)]
    frames.append(bytes(rng.getrandbits(8) for _ in range(256)) * (2 << 20 >> 8))  # 2 MiB

    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 5000)  # let the queued frames leave before close
    push.setsockopt(zmq.SNDTIMEO, 5000)
    push.connect(args.endpoint)
    sent = 0
    for f in frames:
        try:
            push.send(f)
            sent += 1
        except zmq.Again:
            print(f"garbage.py: {args.endpoint} is not accepting frames; sent {sent}", file=sys.stderr)
            break
    push.close()
    ctx.term()
    print(f"sent {sent} frames to {args.endpoint}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
