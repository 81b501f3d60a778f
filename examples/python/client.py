#!/usr/bin/env python3
"""A key-value client for a `leader` cluster, written from docs/wire.md (section 5).

    python3 client.py [--config FILE] put KEY VALUE     [--deadline-ms MS]   prints OK
    python3 client.py [--config FILE] get KEY [--from N] [--via-log | --lease] [--deadline-ms MS]
                                                                         prints the value
    python3 client.py [--config FILE] delete KEY        [--deadline-ms MS]
    python3 client.py [--config FILE] cas KEY [--expected V] [--new V] [--deadline-ms MS]
    python3 client.py [--config FILE] status [--json | --table] [--timeout-ms MS]
    python3 client.py [--config FILE] transfer [--to N] [--deadline-ms MS]  prints the new leader
    python3 client.py [--config FILE] snapshot [--pid N] [--timeout-ms MS]
    python3 client.py [--config FILE] member list [--pid N] [--json] [--timeout-ms MS]
    python3 client.py [--config FILE] member add PID URL [--client-url URL] [--learner] [--deadline-ms MS]
    python3 client.py [--config FILE] member remove PID   [--deadline-ms MS]
    python3 client.py [--config FILE] member promote PID  [--deadline-ms MS]

Output and exit codes are those of the Rust CLI (`leader put|get|delete|cas|status`):
0 ok; 1 runtime failure (a missing key for get, a cas that did not swap, a timeout, no server
answering status); 2 bad configuration or arguments. Go-style flags (`-config x`) work too.
One difference: `status` prints the JSON lines of `leader status --json` by default (--json is
accepted and changes nothing); `--table` prints the Rust CLI's table instead. As in the Rust
CLI, each answering server's JSON line has what Inspect (Request tag 7) answers: "os_pid",
"votes" (its recent vote decisions with the reason), "last_contact_ms", "dropped" (its counters
of dropped and ignored input, {name: value}) and more; a server that does not serve Inspect
gets a Status request, and its line has only the status keys.
`--cluster-key FILE` (anywhere on the line) overrides the config's cluster_key_file; with a
key, every request and response carries an HMAC-SHA256 tag (see leader_wire.py).

How it talks: one DEALER socket per server (LINGER 0) connected to the server's client
endpoint; each request is two frames, an empty delimiter then a ClientRequest. A key-value
operation is a Propose whose command is a KvCommand with a random client id (never 0) and a
sequence number starting at 1. It follows NotLeader redirects, and on Dropped, Busy, an
unreachable server or a bad answer it retries -- always with the same client id and sequence
number, so the store applies the operation at most once -- until the deadline.

`get` is a Read (Request tag 5, ReadIndex mode: no log entry) from the leader, or with
`--from N` from server N (a follower read); `--lease` asks for a lease read, `--via-log` sends
the Get through the log as a Propose (the path of every get before reads without the log).
`transfer` asks the leader to hand leadership to server `--to N` (or the follower it chooses)
and prints `server N leads (term T), M ms` once the new leader leads (the Rust CLI's line). `snapshot` asks server N (or
every server) to take a snapshot now and prints the Rust CLI's lines.

`member` (docs/wire.md §4 "Membership entries", Request tags 8 and 9; thesis §4): `member list`
asks server N (or the first server that answers, in pid order) for the membership in force
there (Request Membership) and prints one line per member, `PID ROLE PEER_URL CLIENT_URL`
after a first line `membership at index I (committed)` (or `(not yet committed)`; index 0:
config.json's or a snapshot's), as `leader member list` does (ROLE `voter`, `learner` or
`learner (promoted once caught up)`; an empty url prints as `(as in config.json)`). `--json` prints one JSON object instead: {"server", "index", "committed",
"members": [{"pid", "role", "peer_url", "client_url"}]}. `member add` adds PID as a learner
(AddLearner) that the leader promotes to voter once it has caught up, or, with --learner, that
stays a learner; URL is its peer url (host:port or a ZeroMQ endpoint, sent as the endpoint,
e.g. tcp://127.0.0.1:7006), --client-url defaults as config.json's client_url does (port +
1000). `member remove` and `member promote` change one member. Each follows NotLeader
redirects (also to servers config.json does not list, whose client_url it learns from the
membership), retries a leader that is not ready for a change yet (an earlier change not yet
committed, no entry of its term committed yet), and prints `membership changed at index N`
once the change's entry is committed; a refusal prints `leader: member ...: <why>` (exit 1).
"""

import argparse
import dataclasses
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import leader_wire as w  # noqa: E402

try:
    import zmq
except ImportError:  # pragma: no cover
    sys.exit("client.py needs pyzmq: pip install pyzmq")

EXIT_FAILURE = 1
EXIT_CONFIG = 2
PER_REQUEST_TIMEOUT_S = 1.0   # the Rust CLI's per-request timeout for key-value commands
CONNECT_WAIT_S = 1.0          # as the Rust client: no connection to any server within this: fail
ATTEMPT_CONNECT_WAIT_S = 0.1  # one attempt waits this long for its target's connection


class CallError(Exception):
    """Why a call failed; str() is the Rust client's wording."""


class Unreachable(CallError):
    def __str__(self) -> str:
        return "unreachable"


class Refused(CallError):
    def __init__(self, error):
        super().__init__()
        self.error = error

    def __str__(self) -> str:
        e = self.error
        if isinstance(e, w.BadRequest):
            return f"bad request: {e.reason}"
        if isinstance(e, w.WrongCluster):
            return f"wrong cluster: the server belongs to cluster {e.expected}; check --config"
        if isinstance(e, w.NotLeader):
            return f"not the leader (server {e.leader} is)" if e.leader is not None else "not the leader (none known)"
        if isinstance(e, w.Dropped):
            return "dropped by a leader change (outcome unknown)"
        if isinstance(e, w.Unavailable):
            return f"unavailable: {e.reason}"
        if isinstance(e, w.Unauthenticated):
            return "the server requires the cluster key (cluster_key_file / --cluster-key)"
        return "server busy"


class BadResponse(CallError):
    def __str__(self) -> str:
        return f"bad response: {self.args[0]}"


class Timeout(CallError):
    def __str__(self) -> str:
        return "timed out: no leader applied the operation in time (it may still apply)"


class NotConnected(Unreachable):
    """No connection to the server (ZMQ_IMMEDIATE): nothing was sent."""


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


class ReadTimeout(CallError):
    def __str__(self) -> str:
        return "timed out: no server answered the read in time (nothing was changed)"


class NoAnswer(CallError):
    def __init__(self, write: bool):
        super().__init__()
        self.write = write

    def __str__(self) -> str:
        tail = "; the write may still apply if a server received it" if self.write else ""
        return "timed out: servers accepted connections but none answered (stuck or overloaded?)" + tail


class NothingReachable(CallError):
    def __init__(self, servers: int):
        super().__init__()
        self.servers = servers

    def __str__(self) -> str:
        return (f"nothing reachable: none of the {_plural(self.servers, 'server', 'servers')} accepts "
                "connections (are they running? check the config's client_url); nothing was sent")


class NoLeader(CallError):
    def __init__(self, servers: int, said):
        super().__init__()
        self.servers, self.said = servers, said

    def __str__(self) -> str:
        verb = "answers" if len(self.said) == 1 else "answer"
        what = "; ".join(f"server {pid}: {s}" for pid, s in self.said)
        return (f"no leader: {len(self.said)} of {self.servers} servers {verb}, none leads: no quorum? "
                f"({what}); nothing was changed")


class Unauthenticated(CallError):
    def __init__(self, server: int):
        super().__init__()
        self.server = server

    def __str__(self) -> str:
        return (f"server {self.server} requires the cluster key (cluster_key_file / --cluster-key); "
                "this client has none")


class BadKey(CallError):
    def __init__(self, servers: int):
        super().__init__()
        self.servers = servers

    def __str__(self) -> str:
        return (f"no server answered; {_plural(self.servers, 'server', 'servers')} answered frames with a "
                "bad MAC: this client's cluster key differs from the servers' (cluster_key_file / "
                "--cluster-key)")


class TooLarge(CallError):
    """Refused before anything is sent (exit 2)."""

    def __init__(self, what: str, size: int, limit: int):
        super().__init__()
        self.what, self.size, self.limit = what, size, limit

    def __str__(self) -> str:
        human = f"{self.limit / (1 << 20):g} MiB" if self.limit % (1 << 19) == 0 else f"{self.limit >> 10} KiB"
        if self.what == "key and value":
            return f"value too large: key and value are {self.size} bytes (limit {self.limit}, {human})"
        return f"{self.what} too large: {self.size} bytes (limit {self.limit}, {human})"


def _data_len(op) -> int:
    """Bytes of key and value(s) of a KvOp: what KV_DATA_BYTES_MAX bounds."""
    return sum(len(getattr(op, f, None) or b"") for f in ("key", "value", "expected", "new"))


class _Attempts:
    """What one operation's attempts saw, and the error it ends with (the Rust client's rules,
    src/client/attempts.rs)."""

    def __init__(self, targets, write: bool):
        self.targets, self.write = set(targets), write
        self.tried, self.connected, self.bad_mac = set(), set(), set()
        self.said = {}
        self.maybe_applied = self.read_lost = False

    def record(self, pid: int, error: CallError) -> None:
        self.tried.add(pid)
        if isinstance(error, NotConnected):
            return
        self.connected.add(pid)
        if isinstance(error, Unreachable):
            if self.write:
                self.maybe_applied = True
            else:
                self.read_lost = True
        elif isinstance(error, BadKey):
            self.bad_mac.add(pid)
        elif isinstance(error, Refused):
            if isinstance(error.error, w.Dropped) and self.write:
                self.maybe_applied = True
            self.said[pid] = str(error)
        else:
            self.said[pid] = str(error)

    def conclusive(self):
        if self.targets <= self.tried and self.bad_mac and not self.said and not self.maybe_applied:
            return BadKey(len(self.bad_mac))
        return None

    def verdict(self) -> CallError:
        if self.maybe_applied:
            return Timeout() if self.said else NoAnswer(True)
        if self.said:
            return NoLeader(len(self.targets), sorted(self.said.items()))
        if self.bad_mac:
            return BadKey(len(self.bad_mac))
        if self.read_lost:
            return NoAnswer(False)
        if not self.connected:
            return NothingReachable(len(self.targets))
        return NoAnswer(False) if self.write else ReadTimeout()


class Client:
    def __init__(self, config: w.Config, timeout_s: float, deadline_s: float = 10.0):
        self.config = config
        self.key = w.load_cluster_key(config.cluster_key_file) if config.cluster_key_file else None
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s
        self.ctx = zmq.Context()
        self.sockets = {}
        self.next_request_id = 1
        self.client_id = random.getrandbits(64) | 1  # never 0: 0 means "no duplicate detection"
        self.seq = 0
        self.leader_hint = None
        self.learned = {}  # pid -> client endpoint of members config.json does not list

    def close(self) -> None:
        for s in self.sockets.values():
            s.close(linger=0)
        self.ctx.term()

    def _socket(self, pid: int):
        if pid not in self.sockets:
            s = self.ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.IMMEDIATE, 1)  # send only over a completed connection
            s.setsockopt(zmq.MAXMSGSIZE, w.RESPONSE_BYTES_MAX + w.TAG_BYTES)
            pids = self.config.pids()
            s.connect(self.config.server(pid).client_endpoint if pid in pids else self.learned[pid])
            self.sockets[pid] = s
        return self.sockets[pid]

    def _connected(self, pids, wait_s: float, any_one: bool = True):
        """The servers among `pids` with a completed connection within `wait_s`."""
        poller = zmq.Poller()
        for pid in pids:
            poller.register(self._socket(pid), zmq.POLLOUT)
        deadline, up = time.monotonic() + wait_s, set()
        while True:
            left_ms = max(0, int((deadline - time.monotonic()) * 1000))
            ready = dict(poller.poll(left_ms))
            for pid in pids:
                if pid not in up and ready.get(self.sockets[pid], 0) & zmq.POLLOUT:
                    up.add(pid)
                    poller.unregister(self.sockets[pid])
            if time.monotonic() >= deadline or (any_one and up) or len(up) == len(pids):
                return up

    def _send(self, pid: int, body, connect_wait_s=None) -> int:
        request_id = self.next_request_id
        self.next_request_id += 1
        request = w.ClientRequest(w.CLIENT_WIRE_VERSION, self.config.cluster_id, request_id, body)
        frame = w.seal(self.key, w.encode_client_request(request))
        if len(frame) > w.CLIENT_REQUEST_BYTES_MAX:
            raise TooLarge("request", len(frame), w.CLIENT_REQUEST_BYTES_MAX)
        wait = self.timeout_s if connect_wait_s is None else connect_wait_s
        if not self._connected([pid], wait):
            raise NotConnected()
        try:
            self._socket(pid).send_multipart([b"", frame], zmq.DONTWAIT)
        except zmq.Again:
            raise NotConnected() from None
        return request_id

    def _receive(self, pid: int, request_id: int, deadline: float):
        """The body of the response to `request_id` from `pid`, or CallError."""
        s = self.sockets[pid]
        while True:
            left_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if not s.poll(left_ms, zmq.POLLIN):
                if time.monotonic() >= deadline:
                    raise Unreachable()
                continue
            message = w.unseal(self.key, s.recv_multipart()[-1])
            if message is None:
                # An unsealed Unauthenticated under another key, or a keyless server's
                # BadRequest to a tagged request (docs/security.md).
                raise BadKey(1)
            try:
                response = w.decode_client_response(message)
            except w.WireError as e:
                raise BadResponse(str(e)) from None
            if response.version != w.CLIENT_WIRE_VERSION:
                raise BadResponse(f"protocol version {response.version}")
            if isinstance(response.body, w.Unauthenticated):
                raise Unauthenticated(pid)
            # request_id 0: the server could not decode our request (BadRequest).
            if response.request_id in (request_id, 0):
                return response.body
            # Otherwise a late answer to an earlier request that timed out: skip it.

    def status_all(self):
        """[(pid, Status or CallError)] for every server, asked all at once."""
        return self._ask_all(w.StatusRequest(), w.Status, "status")

    def inspect_all(self):
        """[(pid, (Status, Inspection or None) or CallError)] for every server, asked all at
        once (Request tag 7); a server that does not serve Inspect (BadRequest) is asked for
        its plain status instead, as the Rust CLI does."""
        answers = []
        for pid, a in self._ask_all(w.InspectRequest(), w.Inspection, "inspect"):
            if isinstance(a, w.Inspection):
                a = (a.status, a)
            elif isinstance(a, Refused) and isinstance(a.error, w.BadRequest):
                plain = self._ask_all(w.StatusRequest(), w.Status, "status", [pid])[0][1]
                a = (plain, None) if isinstance(plain, w.Status) else plain
            answers.append((pid, a))
        return answers

    def _ask_all(self, request, answer_type, what, pids=None):
        """[(pid, answer_type or CallError)] for `pids` (default every server), all at once."""
        pids = list(self.config.pids()) if pids is None else pids
        deadline = time.monotonic() + self.timeout_s
        # Send to each server as soon as its connection is up, all within one deadline.
        ids, waiting = {}, list(pids)
        while waiting:
            up = self._connected(waiting, max(0.0, deadline - time.monotonic()))
            if not up:
                break
            for pid in up:
                try:
                    ids[pid] = self._send(pid, request, 0)
                except NotConnected:
                    ids[pid] = None
            waiting = [p for p in waiting if p not in ids]
        answers = []
        for pid in pids:
            try:
                if ids.get(pid) is None:
                    raise Unreachable()
                body = self._receive(pid, ids[pid], deadline)
                if isinstance(body, answer_type):
                    answers.append((pid, body))
                elif isinstance(body, (w.Status, w.Applied, w.Counters, w.Inspection)):
                    answers.append((pid, BadResponse(f"{body!r} to a {what} request")))
                else:
                    answers.append((pid, Refused(body)))
            except CallError as e:
                answers.append((pid, e))
        return answers

    def counters(self, pid: int):
        """Server `pid`'s counters of dropped and ignored input: [(name, value)] in the
        server's order (Request tag 2, answered by Response tag 3), or CallError."""
        request_id = self._send(pid, w.CountersRequest())
        body = self._receive(pid, request_id, time.monotonic() + self.timeout_s)
        if isinstance(body, w.Counters):
            return [(c.name, c.value) for c in body.counters]
        if isinstance(body, (w.Status, w.Applied)):
            raise BadResponse(f"{body!r} to a counters request")
        raise Refused(body)

    def propose_to(self, pid: int, command: bytes, give_up_at: float = float("inf"), connect_wait_s=None):
        if len(command) > w.COMMAND_BYTES_MAX:
            raise TooLarge("command", len(command), w.COMMAND_BYTES_MAX)
        request_id = self._send(pid, w.Propose(command), connect_wait_s)
        body = self._receive(pid, request_id, min(time.monotonic() + self.timeout_s, give_up_at))
        if isinstance(body, w.Applied):
            return body.index, body.result
        if isinstance(body, (w.Status, w.Counters)):
            raise BadResponse(f"{body!r} to a proposal")
        raise Refused(body)

    def _request(self, pid: int, body, give_up_at: float = float("inf"), timeout_s=None, connect_wait_s=None):
        """One request to `pid`; its answer's body, or Refused for a ClientError."""
        request_id = self._send(pid, body, connect_wait_s)
        wait = self.timeout_s if timeout_s is None else timeout_s
        answer = self._receive(pid, request_id, min(time.monotonic() + wait, give_up_at))
        if isinstance(answer, (w.BadRequest, w.WrongCluster, w.NotLeader, w.Dropped, w.Busy, w.Unavailable)):
            raise Refused(answer)
        return answer

    def _targets(self, deadline, server=None, seen=None):
        """The servers to try, one per attempt, until `deadline`: `server` alone if given, else
        the leader hint, else round-robin in pid order from the second (docs/wire.md),
        skipping servers whose answers failed the MAC check."""
        pids = self.config.pids()
        next_guess = 0
        while time.monotonic() < deadline:
            if server is not None:
                yield server
            elif self.leader_hint is not None:
                yield self.leader_hint
            else:
                next_guess += 1
                for _ in pids:
                    if seen is None or pids[next_guess % len(pids)] not in seen.bad_mac:
                        break
                    next_guess += 1
                yield pids[next_guess % len(pids)]

    def read(self, key: bytes, mode=w.ReadMode.READ_INDEX, server=None):
        """A linearizable read without a log entry (Request tag 5, docs/wire.md §5): a Read
        whose query is a KvCommand Get (client_id and seq 0: reads need no session). From
        the leader (following redirects as `execute` does), or, with `server`, from that server
        only (a follower read: it asks the leader for a read index). (read index, KvResponse)
        or CallError. A read changes nothing, so every retry is safe."""
        if len(key) > w.KV_DATA_BYTES_MAX:
            raise TooLarge("key and value", len(key), w.KV_DATA_BYTES_MAX)
        query = w.encode_kv_command(w.KvCommand(0, 0, w.Get(key)))
        deadline = time.monotonic() + self.deadline_s
        pids = self.config.pids()
        seen = self._start([server] if server is not None else pids, False, deadline)
        for target in self._targets(deadline, server, seen):
            try:
                body = self._request(target, w.Read(query, w.ReadMode(mode)), deadline,
                                     connect_wait_s=ATTEMPT_CONNECT_WAIT_S)
            except Refused as e:
                seen.record(target, e)
                if isinstance(e.error, w.NotLeader):
                    if server is not None:
                        time.sleep(0.02)  # it knows no leader to ask for a read index: wait
                        continue
                    hint = e.error.leader if e.error.leader != target else None
                    self.leader_hint = hint if hint in pids else None
                    if hint is None:
                        time.sleep(0.02)  # an election is under way
                elif isinstance(e.error, (w.Dropped, w.Busy)):
                    time.sleep(0.01)
                else:
                    raise  # BadRequest, WrongCluster, Unavailable: retrying cannot help
                continue
            except (Unreachable, BadResponse, BadKey) as e:
                seen.record(target, e)
                if server is None:
                    self.leader_hint = None
                if seen.conclusive():
                    raise seen.conclusive() from None
                continue
            if not isinstance(body, w.Applied):
                raise BadResponse(f"{body!r} to a read")
            if server is None:
                self.leader_hint = target
            try:
                return body.index, w.decode_kv_response(body.result, w.RESPONSE_BYTES_MAX)
            except w.WireError as e:
                raise BadResponse(str(e)) from None
        raise seen.verdict()

    def _start(self, targets, write: bool, deadline: float) -> _Attempts:
        """An operation's first step: wait up to CONNECT_WAIT_S for any connection; fail fast
        with NothingReachable when none comes."""
        seen = _Attempts(targets, write)
        up = self._connected(targets, max(0.0, min(CONNECT_WAIT_S, deadline - time.monotonic())))
        if not up:
            raise NothingReachable(len(targets))
        seen.connected |= up
        return seen

    def transfer(self, to=None):
        """Hand leadership over (Request tag 6) to server `to`, or to the leader's choice:
        finds the leader through redirects, asks it once, and returns (leader, term) from its
        Transferred answer. Refused(Unavailable) when the leader abandoned the transfer. No
        answer is not retried: a second request could move leadership again."""
        deadline = time.monotonic() + self.deadline_s
        # The leader answers once the new leader leads: allow it its election timeouts (as the
        # Rust client: the per-request timeout + 4 election timeouts).
        wait = self.timeout_s + 4 * self.config.election_timeout_ms / 1000
        pids = self.config.pids()
        for target in self._targets(deadline):
            try:
                body = self._request(target, w.TransferLeadership(to), deadline, wait)
            except Refused as e:
                if isinstance(e.error, w.NotLeader):
                    hint = e.error.leader if e.error.leader != target else None
                    self.leader_hint = hint if hint in pids else None
                    if hint is None:
                        time.sleep(0.02)
                    continue
                if isinstance(e.error, w.Busy):
                    time.sleep(0.01)
                    continue
                raise
            except Unreachable:
                if self.leader_hint is None:
                    continue  # a guess that did not answer: nothing was asked of it
                raise
            if not isinstance(body, w.Transferred):
                raise BadResponse(f"{body!r} to a leadership transfer")
            self.leader_hint = body.leader
            return body.leader, body.term
        raise Timeout()

    def membership(self, pids=None):
        """(pid, MembershipInfo) from the first of `pids` (default: every server, in pid order)
        that answers Request Membership; the last error when none does."""
        error = None
        for pid in (self.config.pids() if pids is None else pids):
            try:
                body = self._request(pid, w.MembershipRequest())
            except CallError as e:
                error = e
                continue
            if not isinstance(body, w.MembershipInfo):
                error = BadResponse(f"{body!r} to a membership request")
                continue
            self.learn(body)
            return pid, body
        raise error if error is not None else NothingReachable(0)

    def learn(self, info: "w.MembershipInfo") -> None:
        """Remember where members config.json does not list take requests (their client_url)."""
        for m in info.members:
            if m.pid not in self.config.pids() and m.client_url:
                try:
                    self.learned[m.pid] = w._render(w._parse_endpoint(m.client_url))
                except ValueError:
                    pass

    def _known(self, pid) -> bool:
        return pid in self.config.pids() or pid in self.learned

    # Unavailable reasons a leader gives while it cannot take a change *yet* (src/core/
    # membership_change.rs: ChangeInFlight -- an auto-promotion, say -- and NoCommitInTerm).
    _NOT_YET = ("is not committed yet: one change at a time", "has not committed an entry of its term yet")

    def change_membership(self, change) -> int:
        """One membership change (Request tag 8) through the leader, following NotLeader
        redirects: the index of its entry once committed (Response MembershipChanged). A leader
        that refuses for a passing reason is asked again until the deadline; any other refusal
        is Refused(Unavailable). No answer from the leader is not retried (the change may still
        apply; a second try would be refused as already done): Timeout."""
        deadline = time.monotonic() + self.deadline_s
        # The leader answers once the entry is committed: allow it a few round trips.
        wait = self.timeout_s + 4 * self.config.election_timeout_ms / 1000
        seen = self._start(self.config.pids(), True, deadline)
        for target in self._targets(deadline, seen=seen):
            try:
                # The deadline is checked before each attempt, not within one (docs/wire.md,
                # "One key-value operation"): an attempt cut short would leave "may apply".
                body = self._request(target, w.ChangeMembership(change), float("inf"), wait, ATTEMPT_CONNECT_WAIT_S)
            except Refused as e:
                seen.record(target, e)
                if isinstance(e.error, w.NotLeader):
                    hint = e.error.leader if e.error.leader != target else None
                    if hint is not None and not self._known(hint):
                        try:
                            self.learn(self._request(target, w.MembershipRequest()))
                        except CallError:
                            pass
                    self.leader_hint = hint if hint is not None and self._known(hint) else None
                    if self.leader_hint is None:
                        time.sleep(0.02)  # an election is under way
                elif isinstance(e.error, (w.Busy, w.Dropped)):
                    time.sleep(0.01)
                elif isinstance(e.error, w.Unavailable) and any(s in e.error.reason for s in self._NOT_YET):
                    self.leader_hint = target
                    time.sleep(0.05)
                else:
                    raise
                continue
            except (Unreachable, BadResponse, BadKey) as e:
                seen.record(target, e)
                if self.leader_hint == target and isinstance(e, Unreachable) and not isinstance(e, NotConnected):
                    raise Timeout() from None  # the leader took it and went silent: it may apply
                self.leader_hint = None
                if seen.conclusive():
                    raise seen.conclusive() from None
                continue
            if not isinstance(body, w.MembershipChanged):
                raise BadResponse(f"{body!r} to a membership change")
            self.leader_hint = target
            return body.index
        raise seen.verdict()

    def snapshot(self, pid: int, timeout_s: float = 10.0):
        """Server `pid` takes a snapshot now (Request tag 3): (index, term, total_len)."""
        body = self._request(pid, w.SnapshotRequest(), timeout_s=timeout_s)
        if not isinstance(body, w.Snapshot):
            raise BadResponse(f"{body!r} to a snapshot request")
        return body.index, body.term, body.total_len

    def fetch_snapshot(self, pid: int, attempts: int = 5) -> bytes:
        """Server `pid`'s latest snapshot image (Request tag 4, docs/wire.md §5 "Fetching a
        snapshot image"), checked completely (leader_wire.decode_snapshot_image). A "fetch it
        again" refusal (a newer snapshot replaced it meanwhile) starts over, `attempts` times."""
        for _ in range(attempts):
            index, term, parts, held, total = 0, 0, [], 0, None
            try:
                while total is None or held < total:
                    body = self._request(pid, w.FetchSnapshot(index, term, held))
                    if not isinstance(body, w.SnapshotChunk):
                        raise BadResponse(f"{body!r} to a snapshot fetch")
                    if total is None:
                        index, term, total = body.index, body.term, body.total_len
                    if (body.index, body.term, body.total_len, body.offset) != (index, term, total, held):
                        raise BadResponse(f"chunk {body.index}/{body.term} at {body.offset}, asked "
                                          f"{index}/{term} at {held}")
                    if not body.data:
                        break
                    parts.append(body.data)
                    held += len(body.data)
            except Refused as e:
                if isinstance(e.error, w.BadRequest) and e.error.reason.endswith("fetch it again"):
                    continue
                raise
            image = b"".join(parts)
            try:
                w.decode_snapshot_image(image, index, term)
            except w.SnapshotImageError as e:
                raise BadResponse(f"snapshot image: {e}") from None
            return image
        raise BadResponse(f"server {pid}'s snapshot kept changing during {attempts} fetches")

    def execute(self, op):
        """Run one KvOp through the leader; (index, KvResponse) or CallError."""
        if _data_len(op) > w.KV_DATA_BYTES_MAX:
            raise TooLarge("key and value", _data_len(op), w.KV_DATA_BYTES_MAX)
        self.seq += 1
        command = w.encode_kv_command(w.KvCommand(self.client_id, self.seq, op))
        deadline = time.monotonic() + self.deadline_s
        pids = self.config.pids()
        seen = self._start(pids, True, deadline)
        for target in self._targets(deadline, seen=seen):
            try:
                index, result = self.propose_to(target, command, deadline, ATTEMPT_CONNECT_WAIT_S)
            except Refused as e:
                seen.record(target, e)
                if isinstance(e.error, w.NotLeader):
                    self.leader_hint = e.error.leader if e.error.leader != target else None
                    if self.leader_hint is None:
                        time.sleep(0.02)  # an election is under way
                    elif self.leader_hint not in pids:
                        self.leader_hint = None
                elif isinstance(e.error, (w.Dropped, w.Busy)):
                    time.sleep(0.01)
                else:
                    raise  # BadRequest, WrongCluster: retrying cannot help
                continue
            except (Unreachable, BadResponse, BadKey) as e:
                seen.record(target, e)
                self.leader_hint = None
                if seen.conclusive():
                    raise seen.conclusive() from None
                continue
            self.leader_hint = target
            try:
                return index, w.decode_kv_response(result, w.RESPONSE_BYTES_MAX)
            except w.WireError as e:
                raise BadResponse(str(e)) from None
        raise seen.verdict()


def status_json_line(pid: int, answer, member=None) -> str:
    """The line `leader status --json` prints (serde_json: keys sorted, compact); `answer` is
    (Status, Inspection or None) or a CallError; `member` the server's role in its own
    membership (voter, learner, non-member), when it answered a Membership request."""
    if isinstance(answer, tuple):
        s, i = answer
        value = {
            "pid": s.pid,
            "state": str(s.role),
            "term": s.term,
            "leader": s.leader,
            "voted_for": s.voted_for,
            "commit_index": s.commit_index,
            "last_applied": s.last_applied,
            "last_index": s.last_index,
        }
        if i is not None:
            value.update({
                "os_pid": i.os_pid,
                "uptime_ms": i.uptime_ms,
                "elections_started": i.elections_started,
                "elections_won": i.elections_won,
                "votes": [{"candidate": v.candidate, "term": v.term, "kind": _VOTE_KINDS[v.kind],
                           "granted": v.verdict.tag == 0, "reason": str(v.verdict), "ms_ago": v.ms_ago}
                          for v in i.votes],
                "last_contact_ms": {str(c.pid): c.ms_ago for c in i.last_contact},
                "dropped": {c.name: c.value for c in i.counters},
            })
        if member is not None:
            value["member"] = member
    else:
        value = {"pid": pid, "error": str(answer)}
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


_VOTE_KINDS = {w.VoteKind.VOTE: "Vote", w.VoteKind.PRE_VOTE: "PreVote", w.VoteKind.TRANSFER: "Transfer"}


def member_role(client: "Client", pid: int):
    """Server `pid`'s role in its own membership, as `leader status` shows it: voter, learner
    or non-member; None when it does not answer a Membership request."""
    try:
        _, info = client.membership([pid])
    except CallError:
        return None
    m = next((m for m in info.members if m.pid == pid), None)
    if m is None:
        return "non-member"
    return "voter" if isinstance(m.role, w.Voter) else "learner"


def status_table(config: w.Config, answers) -> str:
    """The table `leader status` prints, from inspect_all's answers."""
    def row(cells, url):
        return (f"{cells[0]:<5} {cells[1]:>7} {cells[2]:<10} {cells[3]:>6} {cells[4]:>6} {cells[5]:>9} "
                f"{cells[6]:>7} {cells[7]:>7}  {url}\n")
    out = row(["PID", "OS_PID", "STATE", "TERM", "LEADER", "VOTED_FOR", "COMMIT", "APPLIED"], "URL")
    opt = lambda v: "-" if v is None else str(v)  # noqa: E731
    for pid, a in answers:
        url = config.server(pid).endpoint
        if isinstance(a, tuple):
            s, i = a
            out += row([pid, opt(i and i.os_pid), str(s.role), s.term, opt(s.leader), opt(s.voted_for),
                        s.commit_index, s.last_applied], url)
        else:
            out += row([pid, "-", str(a), "-", "-", "-", "-", "-"], url)
    return out


def member_line(m: "w.MemberInfo") -> str:
    """`member list`'s line for one member, as `leader member list` prints it:
    PID ROLE PEER_URL CLIENT_URL (an empty url: `(as in config.json)`)."""
    role = {"learner(promote)": "learner (promoted once caught up)"}.get(str(m.role), str(m.role))
    url = lambda u: u or "(as in config.json)"  # noqa: E731
    return f"{m.pid} {role} {url(m.peer_url)} {url(m.client_url)}"


def membership_json(pid: int, info: "w.MembershipInfo") -> str:
    members = [{"pid": m.pid, "role": str(m.role), "peer_url": m.peer_url, "client_url": m.client_url}
               for m in info.members]
    value = {"server": pid, "index": info.index, "committed": info.committed, "members": members}
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def default_client_url(peer_url: str) -> str:
    """What config.json's client_url defaults to for this peer url (docs/wire.md §2)."""
    ep = w._parse_endpoint(peer_url)
    if ep[0] == "tcp":
        if ep[2] + w.CLIENT_PORT_OFFSET > 65535:
            raise ValueError(f"the default client url (port {ep[2]} + {w.CLIENT_PORT_OFFSET}) is out of range; "
                             "give --client-url")
        return w._render(("tcp", ep[1], ep[2] + w.CLIENT_PORT_OFFSET))
    return w._render((ep[0], ep[1] + ".client"))


def add_learner_change(pid: int, url: str, client_url, learner: bool) -> "w.AddLearner":
    """The AddLearner of `member add`, urls checked and written as ZeroMQ endpoints; ValueError
    says what is wrong."""
    if pid <= 0 or pid >= 1 << 64:
        raise ValueError(f"pid {pid}: pids are positive integers")
    try:
        peer = w._render(w._parse_endpoint(url))
    except ValueError as e:
        raise ValueError(f"url {url!r}: {e}") from None
    if client_url is None:
        client = default_client_url(url)
    else:
        try:
            client = w._render(w._parse_endpoint(client_url))
        except ValueError as e:
            raise ValueError(f"--client-url {client_url!r}: {e}") from None
    for u in (peer, client):
        if len(u.encode("utf-8")) > w.MEMBER_URL_BYTES_MAX:
            raise ValueError(f"url {u!r} is over {w.MEMBER_URL_BYTES_MAX} bytes")
    return w.AddLearner(pid, peer, client, promote=not learner)


def normalize_go_flags(argv):
    """`-config x`, `-json`, `-deadline-ms=5` -> their `--` forms, as the Rust CLI accepts."""
    long = {"config", "json", "table", "timeout-ms", "deadline-ms", "expected", "new", "cluster-key", "from",
            "via-log", "lease", "to", "pid", "client-url", "learner"}
    out = []
    for a in argv:
        if a.startswith("-") and not a.startswith("--") and a[1:].split("=", 1)[0] in long:
            a = "-" + a
        out.append(a)
    return out


def parse_args(argv):
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE",
                        help="the cluster's config.json (default: ./config.json)")
    common.add_argument("--cluster-key", default=argparse.SUPPRESS, metavar="FILE",
                        help="cluster key file (default: the config's cluster_key_file, if any)")
    p = argparse.ArgumentParser(prog="client.py", parents=[common],
                                description="Key-value client for a leader cluster (Python, docs/wire.md)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def kv(name, help_):
        sp = sub.add_parser(name, parents=[common], help=help_)
        sp.add_argument("key")
        return sp

    sp = kv("put", "store VALUE under KEY")
    sp.add_argument("value")
    sp = kv("get", "print the value of KEY (missing: exit 1)")
    sp.add_argument("--from", dest="from_pid", type=int, default=None, metavar="N",
                    help="read from server N (a follower read), not from the leader")
    path = sp.add_mutually_exclusive_group()
    path.add_argument("--via-log", action="store_true", help="read through the log (a Propose of a Get)")
    path.add_argument("--lease", action="store_true", help="a lease read (served so where lease_reads is set)")
    kv("delete", "remove KEY")
    sp = kv("cas", "compare-and-set (exit 1 when it did not swap)")
    sp.add_argument("--expected", default=None, help="the value KEY must hold (omit: KEY must be absent)")
    sp.add_argument("--new", default=None, help="the value to store (omit: delete)")
    sp = sub.add_parser("transfer", parents=[common], help="hand leadership over (to --to N, or the best follower)")
    sp.add_argument("--to", type=int, default=None, metavar="N", help="the server that should lead")
    for name in ("put", "get", "delete", "cas", "transfer"):
        sub.choices[name].add_argument("--deadline-ms", type=int, default=10_000,
                                       help="give up after this long (default 10000)")
    sp = sub.add_parser("snapshot", parents=[common], help="servers take a snapshot now")
    sp.add_argument("--pid", type=int, default=None, metavar="N", help="only server N (default: every server)")
    sp.add_argument("--timeout-ms", type=int, default=10_000, help="wait this long for each (default 10000)")
    sp = sub.add_parser("member", parents=[common], help="list or change the members (thesis §4)")
    msub = sp.add_subparsers(dest="member_command", required=True, metavar="ACTION")
    mp = msub.add_parser("list", parents=[common], help="the membership in force on a server")
    mp.add_argument("--pid", type=int, default=None, metavar="N", help="ask server N (default: the first to answer)")
    mp.add_argument("--json", action="store_true", help="one JSON object instead of one line per member")
    mp.add_argument("--timeout-ms", type=int, default=500, help="wait this long for each answer (default 500)")
    mp = msub.add_parser("add", parents=[common], help="add PID (a learner, promoted once caught up)")
    mp.add_argument("pid", type=int)
    mp.add_argument("url", help="its peer url: host:port or a ZeroMQ endpoint")
    mp.add_argument("--client-url", default=None, metavar="URL", help="its client url (default: peer port + 1000)")
    mp.add_argument("--learner", action="store_true", help="keep it a learner (never promoted automatically)")
    for name in ("remove", "promote"):
        mp = msub.add_parser(name, parents=[common], help=f"{name} member PID")
        mp.add_argument("pid", type=int)
    for name in ("add", "remove", "promote"):
        msub.choices[name].add_argument("--deadline-ms", type=int, default=10_000,
                                        help="give up after this long (default 10000)")
    sp = sub.add_parser("status", parents=[common], help="each server's role, term and leader")
    out = sp.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object per line per server (the default)")
    out.add_argument("--table", action="store_true", help="the Rust CLI's table instead of JSON lines")
    sp.add_argument("--timeout-ms", type=int, default=500, help="wait this long for each answer (default 500)")
    args = p.parse_args(normalize_go_flags(argv))
    if not hasattr(args, "config"):
        args.config = "config.json"
    if not hasattr(args, "cluster_key"):
        args.cluster_key = None
    return args


def main(argv) -> int:
    args = parse_args(argv)
    try:
        config = w.load_config(args.config)
        if args.cluster_key is not None:
            config = dataclasses.replace(config, cluster_key_file=args.cluster_key)
        if config.cluster_key_file is not None:
            w.load_cluster_key(config.cluster_key_file)  # a bad key is a configuration error
    except w.ConfigError as e:
        print(f"leader: {e}", file=sys.stderr)
        return EXIT_CONFIG

    if args.command == "status":
        client = Client(config, args.timeout_ms / 1000)
        try:
            answers = client.inspect_all()
            lines = [status_json_line(pid, a, member_role(client, pid) if isinstance(a, tuple) else None)
                     for pid, a in answers]
        finally:
            client.close()
        if args.table:
            sys.stdout.write(status_table(config, answers))
        else:
            for line in lines:
                print(line)
        sys.stdout.flush()
        if not any(isinstance(a, tuple) for _, a in answers):
            print(f"leader: no server of {config.path} answered", file=sys.stderr)
            return EXIT_FAILURE
        return 0

    if args.command == "snapshot":
        pids = config.pids() if args.pid is None else [args.pid]
        if args.pid is not None and args.pid not in pids:
            print(f"leader: {config.path}: no server {args.pid}", file=sys.stderr)
            return EXIT_CONFIG
        client = Client(config, args.timeout_ms / 1000)
        ok = 0
        try:
            for pid in pids:
                try:
                    index, term, size = client.snapshot(pid, args.timeout_ms / 1000)
                    print(f"server {pid}: snapshot at index {index} (term {term}), {size} bytes")
                    ok += 1
                except CallError as e:
                    print(f"server {pid}: {e}")
        finally:
            client.close()
        return 0 if ok == len(pids) else EXIT_FAILURE

    if args.command == "member":
        return member_main(config, args)

    client = Client(config, PER_REQUEST_TIMEOUT_S, args.deadline_ms / 1000)
    if args.command == "transfer":
        # The Rust CLI's lines (`leader transfer`).
        if args.to is not None and args.to not in config.pids():
            client.close()
            print(f"leader: --to {args.to}: no server {args.to} in {config.path} (servers: "
                  f"{', '.join(map(str, config.pids()))})", file=sys.stderr)
            return EXIT_CONFIG
        started = time.monotonic()
        try:
            leader, term = client.transfer(args.to)
            print(f"server {leader} leads (term {term}), {int((time.monotonic() - started) * 1000)} ms")
        except Refused as e:
            why = e.error.reason if isinstance(e.error, w.Unavailable) else str(e)
            print(f"leader: transfer failed: {why}", file=sys.stderr)
            return EXIT_FAILURE
        except CallError as e:
            print(f"leader: transfer failed: {e}", file=sys.stderr)
            return EXIT_FAILURE
        finally:
            client.close()
        return 0
    key = os.fsencode(args.key)  # the command line's bytes, as the Rust CLI uses them
    try:
        if args.command == "put":
            _, r = client.execute(w.Put(key, os.fsencode(args.value)))
            if not isinstance(r, w.Done):
                raise BadResponse(f"{r!r} to a put")
            print("OK")
        elif args.command == "get":
            if args.via_log:
                _, r = client.execute(w.Get(key))
            else:
                mode = w.ReadMode.LEASE if args.lease else w.ReadMode.READ_INDEX
                _, r = client.read(key, mode, args.from_pid)
            if not isinstance(r, w.Value):
                raise BadResponse(f"{r!r} to a get")
            if r.value is None:
                print(f"leader: {args.key}: not found", file=sys.stderr)
                return EXIT_FAILURE
            print(r.value.decode("utf-8", "replace"))
        elif args.command == "delete":
            _, r = client.execute(w.Delete(key))
            if not isinstance(r, w.Deleted):
                raise BadResponse(f"{r!r} to a delete")
            print("deleted" if r.existed else "not found (nothing to delete)")
        else:  # cas
            enc = lambda v: None if v is None else os.fsencode(v)  # noqa: E731
            _, r = client.execute(w.Cas(key, enc(args.expected), enc(args.new)))
            if not isinstance(r, w.CasResult):
                raise BadResponse(f"{r!r} to a cas")
            current = "(absent)" if r.current is None else r.current.decode("utf-8", "replace")
            if not r.swapped:
                print(f"leader: {args.key}: not swapped; current value {current}", file=sys.stderr)
                return EXIT_FAILURE
            print(f"swapped; now {current}")
    except TooLarge as e:
        print(f"leader: {e}", file=sys.stderr)
        return EXIT_CONFIG  # bad input, refused before anything was sent
    except CallError as e:
        print(f"leader: {e}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        client.close()
    return 0


def member_main(config: "w.Config", args) -> int:
    """`member list|add|remove|promote` (the lines of `leader member ...`)."""
    action = args.member_command
    if action == "list":
        if args.pid is not None and args.pid not in config.pids():
            print(f"leader: {config.path}: no server {args.pid}", file=sys.stderr)
            return EXIT_CONFIG
        client = Client(config, args.timeout_ms / 1000)
        try:
            pid, info = client.membership(None if args.pid is None else [args.pid])
        except CallError as e:
            print(f"leader: member list: {e}", file=sys.stderr)
            return EXIT_FAILURE
        finally:
            client.close()
        if args.json:
            print(membership_json(pid, info))
        else:
            state = "committed" if info.committed else "not yet committed"
            print(f"membership at index {info.index} ({state})")
            for m in info.members:
                print(member_line(m))
        return 0
    try:
        if action == "add":
            change = add_learner_change(args.pid, args.url, args.client_url, args.learner)
        elif args.pid <= 0 or args.pid >= 1 << 64:
            raise ValueError(f"pid {args.pid}: pids are positive integers")
        else:
            change = w.Promote(args.pid) if action == "promote" else w.Remove(args.pid)
    except ValueError as e:
        print(f"leader: member {action}: {e}", file=sys.stderr)
        return EXIT_CONFIG
    client = Client(config, PER_REQUEST_TIMEOUT_S, args.deadline_ms / 1000)
    try:
        index = client.change_membership(change)
    except Refused as e:
        why = e.error.reason if isinstance(e.error, w.Unavailable) else str(e)
        print(f"leader: member {action}: {why}", file=sys.stderr)
        return EXIT_FAILURE
    except CallError as e:
        print(f"leader: member {action}: {e}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        client.close()
    print(f"membership changed at index {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
