#!/usr/bin/env python3
"""Send hostile frames at a server's PULL socket (a test tool).

    python3 garbage.py --endpoint tcp://127.0.0.1:PORT [--count N] [--seed S]

Sends, through one PUSH socket: N frames of random garbage (1-200 random bytes), N truncated
envelopes that look valid at first (version 1, then 1-30 random bytes), then one oversize
frame of 2 MiB (sent last: the receiver's ZMQ_MAXMSGSIZE makes libzmq drop the connection
that carried it). Waits up to 5 s for the frames to leave, then exits 0. A correct server
drops and counts all of them and carries on (docs/wire.md §3, "Receiving").
"""

import argparse
import random
import struct
import sys

try:
    import zmq
except ImportError:  # pragma: no cover
    sys.exit("garbage.py needs pyzmq: pip install pyzmq")


def main(argv) -> int:
    p = argparse.ArgumentParser(prog="garbage.py", description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", required=True, help="the server's peer endpoint, e.g. tcp://127.0.0.1:7001")
    p.add_argument("--count", type=int, default=10, help="frames of each small kind (default 10)")
    p.add_argument("--seed", type=int, default=None, help="seed for the random bytes")
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    rand = lambda n: bytes(rng.getrandbits(8) for _ in range(n))  # noqa: E731

    frames = [rand(rng.randint(1, 200)) for _ in range(args.count)]
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
