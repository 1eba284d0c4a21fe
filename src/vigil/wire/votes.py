"""What nodes and the witness say to each other, and the disk poison pill. Sans-IO.

These ride in authenticated frames (frame.py) like heartbeats. `parse_*` validate every
field and return None for anything malformed; the caller counts it as garbled.

- Ask (node -> witness, every keepalive): the groups the node holds a lease on or wants one
  for: those active on it, and, when its peer is dead, those it would take over.
- Reply (witness -> node): which of them are granted, echoing the ask's (generation, seq) so
  that a reply can only ever answer the one ask it was made for (no replay of an old grant).
- Poison (node -> node, written into the victim's disk mailbox): release everything and
  stop. It names the life it is meant for, so that a node started after it ignores it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

_MAX_INT = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Ask:
    hold: tuple[str, ...]  # groups it holds a lease on or wants one for
    leased: tuple[str, ...] = ()  # those whose lease it holds now by its own clock


@dataclass(frozen=True, slots=True)
class Reply:
    generation: int  # of the ask answered
    seq: int
    granted: tuple[str, ...]
    holders: tuple[tuple[str, str], ...]  # (group, node) for every group held by anyone
    starting: bool = False  # the witness has just started: it only renews leases still held
    lease_ms: int = 0  # the lease the witness grants (a node holds half of the shorter one)


@dataclass(frozen=True, slots=True)
class Poison:
    target: str
    generation: int | None  # the target's life it is for; None: any life started before
    before_ms: int  # wall-clock ms when it was written


def _load(payload: bytes) -> object:
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def _names(v: object) -> tuple[str, ...] | None:
    if not isinstance(v, list) or len(v) > 255:
        return None
    if not all(isinstance(x, str) and 0 < len(x) <= 64 for x in v) or len(set(v)) != len(v):
        return None
    return tuple(v)


def _uint(v: object) -> bool:
    return type(v) is int and 0 <= v <= _MAX_INT


def serialize_ask(a: Ask) -> bytes:
    return json.dumps({"h": list(a.hold), "l": list(a.leased)},
                      separators=(",", ":")).encode()


def parse_ask(payload: bytes) -> Ask | None:
    doc = _load(payload)
    if not isinstance(doc, dict) or set(doc) != {"h", "l"}:
        return None
    hold, leased = _names(doc["h"]), _names(doc["l"])
    if hold is None or leased is None or not set(leased) <= set(hold):
        return None
    return Ask(hold, leased)


def serialize_reply(r: Reply) -> bytes:
    return json.dumps({"a": [r.generation, r.seq], "g": list(r.granted),
                       "o": [list(h) for h in r.holders], "s": int(r.starting),
                       "t": r.lease_ms}, separators=(",", ":")).encode()


def parse_reply(payload: bytes) -> Reply | None:
    doc = _load(payload)
    if not isinstance(doc, dict) or set(doc) != {"a", "g", "o", "s", "t"}:
        return None
    if not _uint(doc["t"]) or not 0 < doc["t"] < 2**32:
        return None
    ask, granted, holders = doc["a"], _names(doc["g"]), doc["o"]
    if not (isinstance(ask, list) and len(ask) == 2 and all(_uint(x) for x in ask)):
        return None
    if granted is None or doc["s"] not in (0, 1) or type(doc["s"]) is not int:
        return None
    if not isinstance(holders, list) or len(holders) > 255:
        return None
    pairs = []
    for h in holders:  # (group, node): a group may well be named like a node
        if not (isinstance(h, list) and len(h) == 2 and _names(h[:1]) and _names(h[1:])):
            return None
        pairs.append((h[0], h[1]))
    return Reply(ask[0], ask[1], granted, tuple(pairs), bool(doc["s"]), doc["t"])


def serialize_poison(p: Poison) -> bytes:
    return json.dumps({"t": p.target, "g": p.generation, "b": p.before_ms},
                      separators=(",", ":")).encode()


def parse_poison(payload: bytes) -> Poison | None:
    doc = _load(payload)
    if not isinstance(doc, dict) or set(doc) != {"t", "g", "b"}:
        return None
    target, gen, before = doc["t"], doc["g"], doc["b"]
    if not (isinstance(target, str) and target and _uint(before)):
        return None
    if gen is not None and not _uint(gen):
        return None
    return Poison(target, gen, before)


def poison_applies(p: Poison, me: str, my_generation: int) -> bool:
    """Is this pill for this life of this node? Generations are wall-clock ms at start
    (daemon/state.py), so "started before the pill was written" is a comparison."""
    if p.target != me:
        return False
    return p.generation == my_generation if p.generation is not None else \
        my_generation < p.before_ms
