"""The HTTP API's limits, and who gets a connection slot under them. Sans-IO: the server
(server.py) reports connections arriving, changing phase and leaving, with the time; this
module says admit, refuse (with which answer), or admit by evicting whom. No sockets, no
clock, no event loop here, so the rules are tested alone (tests/unit/test_api_limits.py).

The rules, as nginx's limit_conn and worker_connections or HAProxy's maxconn, `timeout
queue` and `timeout http-request` would apply them to a management API:

- At most `max_clients` connections hold a slot at once (reading their head, being
  answered, or streaming events), and at most `per_address` of those come from one address
  (an IPv6 address counts for its /64, which one host usually has whole).
- A connection that finds no slot waits for one, unread, up to `queue_timeout` (at most
  `max_waiting` of them, first come first served among those that fit): a burst of quick
  requests is served, not refused. After that it is refused, 429 if its address has all
  its slots, else 503.
- When every slot is taken, the connection that has been reading its request head the
  longest, if for `evict_after` seconds or more, is closed to make room (its head deadline
  is brought forward to now: it is answered 503 like any refusal). A client that sends its
  head at once (a browser, curl, a Prometheus scrape) never takes that long, so under a
  slowloris from many addresses the slots churn through the attackers, and a request that
  arrives whole is served.
- Event streams are long-lived: at most `max_streams`, `streams_per_address` from one
  address; beyond that the request is refused (503, 429).
- A refused connection is still answered (the documented JSON body) and drained, so that
  the close does not become a TCP reset that would destroy the answer; at most
  `max_refusing` at once, beyond which a refused connection is closed unanswered, so that a
  connection flood cannot turn refusals into unbounded work.

Every connection the server holds is in one of those counts, so they bound its file
descriptors too: max_clients + max_waiting + max_refusing (512 by default, under the 1024
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
    per_address: int = 16  # ... from one address (IPv6: one /64)
    max_streams: int = 32  # open event streams (they count as clients too)
    streams_per_address: int = 4
    max_waiting: int = 256  # connections waiting for a slot
    queue_timeout: float = 1.0  # ... for at most this long, then refused
    max_refusing: int = 128  # refused or evicted connections being answered at once
    evict_after: float = 2.0  # when full, a head incomplete this long may be evicted
    head_timeout: float = 10.0  # the whole request head, from admission
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
class Admitted:
    """Go ahead; if `evicted` is set, that connection lost its slot to this one and must be
    answered 503 and closed now."""

    evicted: int | None = None


@dataclass(frozen=True, slots=True)
class Queued:
    """Wait for a slot, up to `queue_timeout`: `Admission.leave` names the connections it
    hands a slot to; at the timeout, ask `Admission.give_up`."""


@dataclass(frozen=True, slots=True)
class Refused:
    """No slot: answer `status` with the JSON body {"error": message, "code": code} and
    Retry-After, then drain and close; or, when `answer` is false (too many refusals in
    flight already), close at once."""

    status: int
    code: str
    message: str
    answer: bool = True


Verdict = Union[Admitted, Queued, Refused]


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
class _Slot:
    key: str
    phase: Phase
    since: float  # when it entered this phase


@dataclass(frozen=True, slots=True)
class AdmissionStatistics:
    clients: int  # holding a slot now
    streams: int
    waiting: int  # for a slot
    refusing: int  # refused or evicted, being answered now
    admitted: int  # totals since start (a queued connection counts when admitted)
    queued: int
    refused: int
    evicted: int
    dropped: int  # refused and closed unanswered (max_refusing reached)


class Admission:
    """Slots by connection id (any int the server picks, unique among live connections)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._slots: dict[int, _Slot] = {}  # in arrival order (dicts keep it)
        self._per_key: dict[str, int] = {}
        self._streams_per_key: dict[str, int] = {}
        self._waiting: dict[int, str] = {}  # queued, in arrival order -> address key
        self._refusing: set[int] = set()
        self._admitted = self._queued = self._refused = self._evicted = self._dropped = 0

    def arrive(self, conn: int, host: str, now: float) -> Verdict:
        assert conn not in self._slots and conn not in self._waiting, conn
        assert conn not in self._refusing, conn
        key = address_key(host)
        if self._fits(key):
            return self._admit(conn, key, now)
        if self._room_for(key) and (evicted := self._stalest_head(now)) is not None:
            return self._evict_for(conn, key, evicted, now)
        if len(self._waiting) < self.limits.max_waiting:
            self._waiting[conn] = key
            self._queued += 1
            return Queued()
        return self._refuse(conn, key)

    def give_up(self, conn: int, now: float) -> Admitted | Refused:
        """A queued connection's wait is over: a slot after all (handed over just now, or
        one evicted for it), or its refusal."""
        if conn in self._slots:
            return Admitted()
        key = self._waiting.pop(conn)
        if self._room_for(key) and (evicted := self._stalest_head(now)) is not None:
            return self._evict_for(conn, key, evicted, now)
        return self._refuse(conn, key)

    def headed(self, conn: int, now: float) -> None:
        """The connection's request head is whole: it can no longer be evicted."""
        slot = self._slots[conn]
        assert slot.phase is Phase.HEAD, slot
        slot.phase, slot.since = Phase.BUSY, now

    def stream(self, conn: int, now: float) -> Refused | None:
        """The request is for an event stream: None if it may have one (its slot is a
        stream's from now on), else why not (the connection keeps its slot, to answer)."""
        slot = self._slots[conn]
        assert slot.phase is Phase.BUSY, slot
        lim = self.limits
        if self._streams_per_key.get(slot.key, 0) >= lim.streams_per_address:
            return Refused(429, "too_many_streams",
                           f"more than {lim.streams_per_address} event streams from {slot.key}")
        if sum(self._streams_per_key.values()) >= lim.max_streams:
            return Refused(503, "busy", f"more than {lim.max_streams} event streams")
        slot.phase, slot.since = Phase.STREAM, now
        self._streams_per_key[slot.key] = self._streams_per_key.get(slot.key, 0) + 1
        return None

    def leave(self, conn: int, now: float) -> list[int]:
        """The connection is closed (admitted, queued, refused or evicted: any of them).
        Returns the queued connections that get the slot it leaves (in order of arrival)."""
        self._refusing.discard(conn)
        self._waiting.pop(conn, None)
        if conn not in self._slots:
            return []
        self._release(conn)
        handed = []
        for waiter, key in list(self._waiting.items()):
            if len(self._slots) >= self.limits.max_clients:
                break
            if self._fits(key):
                del self._waiting[waiter]
                self._admit(waiter, key, now)
                handed.append(waiter)
        return handed

    def phase(self, conn: int) -> Phase | None:
        slot = self._slots.get(conn)
        return None if slot is None else slot.phase

    def statistics(self) -> AdmissionStatistics:
        return AdmissionStatistics(len(self._slots), sum(self._streams_per_key.values()),
                                   len(self._waiting), len(self._refusing), self._admitted,
                                   self._queued, self._refused, self._evicted, self._dropped)

    def _fits(self, key: str) -> bool:
        return len(self._slots) < self.limits.max_clients and self._room_for(key)

    def _room_for(self, key: str) -> bool:
        return self._per_key.get(key, 0) < self.limits.per_address

    def _admit(self, conn: int, key: str, now: float) -> Admitted:
        self._slots[conn] = _Slot(key, Phase.HEAD, now)
        self._per_key[key] = self._per_key.get(key, 0) + 1
        self._admitted += 1
        return Admitted()

    def _evict_for(self, conn: int, key: str, evicted: int, now: float) -> Admitted:
        self._release(evicted)
        self._refusing.add(evicted)
        self._evicted += 1
        self._admit(conn, key, now)
        return Admitted(evicted)

    def _refuse(self, conn: int, key: str) -> Refused:
        lim = self.limits
        if not self._room_for(key):
            status, code = 429, "too_many_connections"
            message = f"more than {lim.per_address} connections from {key}"
        else:
            status, code, message = 503, "busy", f"more than {lim.max_clients} connections"
        self._refused += 1
        if len(self._refusing) >= self.limits.max_refusing:
            self._dropped += 1
            return Refused(status, code, message, answer=False)
        self._refusing.add(conn)
        return Refused(status, code, message)

    def _stalest_head(self, now: float) -> int | None:
        # Slots are in order of admission, and one in HEAD has been there since then: the
        # first HEAD slot found is the oldest one.
        for conn, slot in self._slots.items():
            if slot.phase is Phase.HEAD:
                return conn if now - slot.since >= self.limits.evict_after else None
        return None

    def _release(self, conn: int) -> None:
        slot = self._slots.pop(conn)
        _decrement(self._per_key, slot.key)
        if slot.phase is Phase.STREAM:
            _decrement(self._streams_per_key, slot.key)


def _decrement(counts: dict[str, int], key: str) -> None:
    counts[key] -= 1
    if not counts[key]:
        del counts[key]
