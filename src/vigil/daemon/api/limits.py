"""The HTTP API's limits, and who gets a connection slot under them. Sans-IO: the server
(server.py) reports connections arriving, changing phase and leaving; this
module says admit (with a slot or in the overflow) or refuse, with which answer. No
sockets, no clock, no event loop here (the deadlines it names are the server's to keep), so
the rules are tested alone (tests/unit/test_api_limits.py).

The rules, after nginx's limit_conn and client_header_timeout and HAProxy's maxconn and
`timeout http-request`, for a management API whose every answer is quick to make:

- At most `max_clients` connections hold a slot at once (reading their head, being
  answered, or streaming events), at most `per_address` of those from one address (an
  IPv6 address counts for its /64, which one host usually has whole). A slot gives the
  request head `head_timeout` to be whole.
- A connection that finds no slot (all taken, or all of its address's) goes to the
  overflow, at most `max_overflow` of them and `per_address` from one address: it is read
  like any other, but its head must be whole within `overflow_timeout`, or it gets the
  refusal it would have had at once (429 if its address had all its slots, else 503). A
  client that sends its head at once (a browser, curl, a Prometheus scrape) is served from
  the overflow, however many slow heads hold the slots; a burst of quick requests is
  served too. A slowloris only ever holds the slots of its own addresses for long.
- Event streams are long-lived: they need a slot, and at most `max_streams` are open,
  `streams_per_address` from one address; beyond that the request is refused (503, 429).
- A refused connection is still answered (the documented JSON body) and drained, so that
  the close does not become a TCP reset that would destroy the answer; at most
  `max_refusing` at once, beyond which a refused connection is closed unanswered, so that a
  connection flood cannot turn refusals into unbounded work.

Every connection the server holds is in one of those counts, so they bound its file
descriptors too: max_clients + max_overflow + max_refusing (512 by default, under the 1024
of a systemd service's default LimitNOFILE).
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, fields
from typing import Union


@dataclass(frozen=True, slots=True)
class Limits:
    """Every bound the API server keeps. Times in seconds, sizes in bytes."""

    max_clients: int = 128  # connections holding a slot at once
    per_address: int = 16  # ... from one address (IPv6: one /64); as many in the overflow
    max_overflow: int = 256  # connections without a slot, their head not yet whole
    overflow_timeout: float = 1.0  # ... the time they have for it
    max_streams: int = 32  # open event streams (each holds a slot)
    streams_per_address: int = 8  # a browser opens 6 connections per host at most
    max_refusing: int = 128  # refused connections being answered at once
    head_timeout: float = 10.0  # the whole request head, from a slot's admission
    body_timeout: float = 10.0  # the whole body, after the head
    send_timeout: float = 10.0  # each answer (or stream write) to be taken by the client
    linger_timeout: float = 2.0  # reading what the client still sends, after the answer
    linger_bytes: int = 256 * 1024  # ... and at most this much of it
    stream_keepalive: float = 15.0  # an SSE comment this often, so proxies see it alive
    max_head: int = 16 * 1024  # request line and headers: 431 beyond
    max_body: int = 64 * 1024  # an action's JSON is a few dozen bytes: 413 beyond
    retry_after: int = 1  # the Retry-After of a 429 or 503

    def __post_init__(self) -> None:
        for f in fields(self):
            if not getattr(self, f.name) > 0:
                raise ValueError(f"Limits.{f.name} must be positive, not "
                                 f"{getattr(self, f.name)!r}")
        if self.per_address > self.max_clients or self.max_streams > self.max_clients:
            raise ValueError("per_address and max_streams cannot exceed max_clients")


class Phase(enum.Enum):
    HEAD = "head"  # admitted, its request head not yet whole
    BUSY = "busy"  # the request is being read or answered
    STREAM = "stream"  # an event stream


@dataclass(frozen=True, slots=True)
class Refused:
    """No slot: answer `status` with the JSON body {"error": message, "code": code} and
    Retry-After, then drain and close; or, when `answer` is false (too many refusals in
    flight already), close at once."""

    status: int
    code: str
    message: str
    answer: bool = True


@dataclass(frozen=True, slots=True)
class Admitted:
    """Go ahead. With a slot (`overflow` None), the head has `head_timeout`; in the
    overflow, `overflow_timeout`, and if it is not whole by then, the answer is `overflow`."""

    overflow: Refused | None = None


Verdict = Union[Admitted, Refused]


def address_key(host: str) -> str:
    """The unit the per-address limit counts: the address, an IPv6 one by its /64, an
    IPv4-mapped IPv6 one as the IPv4 address. Anything else (no address) counts as itself."""
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


@dataclass(slots=True)
class _Conn:
    key: str
    slot: bool  # False: in the overflow
    phase: Phase = Phase.HEAD


@dataclass(frozen=True, slots=True)
class AdmissionStatistics:
    clients: int  # holding a slot now
    overflow: int  # in the overflow now
    streams: int
    refusing: int  # refused, being answered now
    admitted: int  # totals since start: with a slot,
    overflowed: int  # in the overflow,
    refused: int  # refused (answered or not),
    dropped: int  # refused and closed unanswered (max_refusing reached)


class Admission:
    """Connections by id (any int the server picks, unique among live connections)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._conns: dict[int, _Conn] = {}
        self._slots: dict[str, int] = {}  # address key -> slots held
        self._overflow: dict[str, int] = {}  # address key -> overflow places held
        self._streams: dict[str, int] = {}  # address key -> streams open
        self._refusing: set[int] = set()
        self._admitted = self._overflowed = self._refused = self._dropped = 0

    def arrive(self, conn: int, host: str) -> Verdict:
        assert conn not in self._conns and conn not in self._refusing, conn
        lim = self.limits
        key = address_key(host)
        if self._slots.get(key, 0) >= lim.per_address:
            refusal = Refused(429, "too_many_connections",
                              f"more than {lim.per_address} connections from {key}")
        elif sum(self._slots.values()) >= lim.max_clients:
            refusal = Refused(503, "busy", f"more than {lim.max_clients} connections")
        else:
            self._conns[conn] = _Conn(key, slot=True)
            _increment(self._slots, key)
            self._admitted += 1
            return Admitted()
        if (sum(self._overflow.values()) < lim.max_overflow
                and self._overflow.get(key, 0) < lim.per_address):
            self._conns[conn] = _Conn(key, slot=False)
            _increment(self._overflow, key)
            self._overflowed += 1
            return Admitted(overflow=refusal)
        self._refused += 1
        if len(self._refusing) >= lim.max_refusing:
            self._dropped += 1
            return Refused(refusal.status, refusal.code, refusal.message, answer=False)
        self._refusing.add(conn)
        return refusal

    def headed(self, conn: int) -> None:
        """The connection's request head is whole (in the overflow too: it is answered)."""
        c = self._conns[conn]
        assert c.phase is Phase.HEAD, c
        c.phase = Phase.BUSY

    def stream(self, conn: int) -> Refused | None:
        """The request is for an event stream: None if it may have one (its slot is a
        stream's from now on), else why not (the connection is still answered)."""
        c = self._conns[conn]
        assert c.phase is Phase.BUSY, c
        lim = self.limits
        if not c.slot:
            return Refused(503, "busy", f"more than {lim.max_clients} connections: no "
                                        f"room for an event stream")
        if self._streams.get(c.key, 0) >= lim.streams_per_address:
            return Refused(429, "too_many_streams",
                           f"more than {lim.streams_per_address} event streams from {c.key}")
        if sum(self._streams.values()) >= lim.max_streams:
            return Refused(503, "busy", f"more than {lim.max_streams} event streams")
        c.phase = Phase.STREAM
        _increment(self._streams, c.key)
        return None

    def leave(self, conn: int) -> None:
        """The connection is closed (admitted or refused: either)."""
        self._refusing.discard(conn)
        c = self._conns.pop(conn, None)
        if c is None:
            return
        _decrement(self._slots if c.slot else self._overflow, c.key)
        if c.phase is Phase.STREAM:
            _decrement(self._streams, c.key)

    def phase(self, conn: int) -> Phase | None:
        c = self._conns.get(conn)
        return None if c is None else c.phase

    def statistics(self) -> AdmissionStatistics:
        return AdmissionStatistics(
            sum(self._slots.values()), sum(self._overflow.values()),
            sum(self._streams.values()), len(self._refusing), self._admitted,
            self._overflowed, self._refused, self._dropped)


def _increment(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def _decrement(counts: dict[str, int], key: str) -> None:
    counts[key] -= 1
    if not counts[key]:
        del counts[key]
