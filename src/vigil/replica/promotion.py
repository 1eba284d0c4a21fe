"""Which replica of a promotable group may be promoted, sans-IO: the data half of the
one-owner rule (the other half, who may own the group at all, is the core's: deadtime,
fencing, the witness, as for any takeover).

Each node reports its own instance in its heartbeats (`Replica`: role, the cluster's
identity, timeline and position in the write-ahead log, and on a primary the synchronous
contract of sync.py). A node that the ownership rules would let take the group over asks
`may_promote`, with the latest report it holds from the peer and whether the peer is alive:

- While the nodes talk (a switchover, a move, a failback), the peer must report its
  instance demoted (not primary), and this node must hold every byte the peer holds: a
  cleanly stopped primary sends its standbys all its WAL before it stops, so a caught-up
  standby loses nothing; one behind waits.
- When the peer is dead, its last report decides. It was a primary: in synchronous mode
  ("on", "strict") only its synchronous standby may be promoted, and only if it holds the
  WAL up to where that contract began (every commit acknowledged before then was written
  there, every one after waited for this standby) and has not released the contract; in
  asynchronous mode ("off") only a standby whose last known lag is within `max_lag` bytes
  (Patroni's maximum_lag_on_failover). It was not a primary: this node must be at least as
  fresh as it was.
- A node that has heard nothing from the peer since it started knows nothing of the peer's
  data: it does not promote (doubt is a refusal), unless the operator forces it.

A node without data (an empty data directory: system_id 0) is never promoted while the
peer has some; a peer without data has nothing to lose, and both empty is a new cluster
(the owner creates it). `may_hold` is the lighter question eligibility asks: whether this
node could hold the group at all, which while the peer lives is only the identity checks
(the start waits for the rest, `may_promote`, as the handover goes).

`force` (an operator's `--force`, logged by the caller) lifts the data checks, never the
identity checks (a replica of another cluster, a failed instance) and never the one-owner
rule. Every refusal says why, in words for the operator's status and log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["primary", "standby", "stopped", "failed"]
Mode = Literal["off", "on", "strict"]
Epoch = tuple[int, int]  # (the primary daemon's boot generation, a count within it)
NO_EPOCH: Epoch = (0, 0)
NO_DATA = 0  # the system_id of a node whose data directory is empty or absent


@dataclass(frozen=True, slots=True)
class Replica:
    """What a node says of its own instance, in every heartbeat."""

    role: Role
    system_id: int  # the database cluster's identity (pg_controldata): replicas share it
    timeline: int
    lsn: int  # primary: flushed WAL; standby: WAL received and flushed; stopped: its end
    # A primary's synchronous contract (sync.py): the node it waits for, the position from
    # which every acknowledged commit is on that node, and the contract's epoch.
    sync_with: str | None = None
    sync_from: int = 0
    sync_epoch: Epoch = NO_EPOCH
    release_ask: Epoch | None = None  # a primary asks its standby to release this epoch
    # A standby's answer: the latest epoch it has released (it will not promote on it).
    released: Epoch = NO_EPOCH


@dataclass(frozen=True, slots=True)
class Policy:
    mode: Mode = "on"
    max_lag: int = 1 << 20  # bytes of WAL an asynchronous standby may miss, at most


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    why: str  # "" when ok without comment; otherwise what an operator reads

    def __bool__(self) -> bool:
        return self.ok


def _no(why: str) -> Verdict:
    return Verdict(False, why)


def may_promote(me: str, mine: Replica | None, peer: Replica | None, peer_alive: bool,
                policy: Policy, force: bool = False) -> Verdict:
    """Whether node `me`, whose instance reports `mine` (None: not known yet), may promote
    it now, given the peer's latest report (None: none since this daemon started)."""
    if mine is None:
        return _no("this node's instance has not been examined yet")
    if mine.role == "primary":
        return Verdict(True, "already primary")
    if (refused := _identity(mine, peer)) is not None:
        return refused
    if peer is not None and peer.system_id == NO_DATA:
        return Verdict(True, "the peer has no data" if mine.system_id != NO_DATA else
                       "a new cluster: neither node has data")
    if peer_alive and peer is not None and peer.role == "primary":
        return _no("the peer's instance is still primary: promote after it reports demoted")
    data = _data(me, mine, peer, peer_alive, policy)
    if data.ok or not force:
        return data
    return Verdict(True, f"forced by the operator, although {data.why}")


def may_hold(me: str, mine: Replica | None, peer: Replica | None, peer_alive: bool,
             policy: Policy, force: bool = False) -> Verdict:
    """Whether node `me` could hold the group: while the peer lives, the identity checks
    only (a handover's start waits for `may_promote`); once it is dead, `may_promote`."""
    if not peer_alive:
        return may_promote(me, mine, peer, peer_alive, policy, force)
    if mine is None:
        return _no("this node's instance has not been examined yet")
    refused = _identity(mine, peer)
    if refused is not None:
        return refused
    if mine.role == "stopped" and peer is not None and peer.system_id != NO_DATA and \
            peer.role != "standby" and (behind := _behind(mine, peer)):
        # Only a standby catches up: a stopped instance behind the peer's waits forever.
        # (A standby peer on our timeline may hold more than a crashed primary here knows
        # of itself, its last checkpoint: all of it came from here; agent.py restarts.)
        return _no(f"{behind} (the peer's report), and not following it: this node's "
                   f"instance becomes a standby of the peer's first")
    return Verdict(True, "")


def _identity(mine: Replica, peer: Replica | None) -> Verdict | None:
    if mine.role == "failed":
        return _no("this node's instance has failed")
    if mine.role == "primary":
        return None
    if peer is not None and NO_DATA != peer.system_id != mine.system_id:
        if mine.system_id == NO_DATA:
            return _no("this node has no data yet: it is built as a standby of the peer")
        return _no(f"this node's data (system {mine.system_id}) is not a replica of the "
                   f"peer's (system {peer.system_id})")
    return None


def _data(me: str, mine: Replica, peer: Replica | None, peer_alive: bool,
          policy: Policy) -> Verdict:
    if peer is None:
        return _no("nothing heard from the peer since this daemon started: its data "
                   "position is unknown")
    if peer_alive or peer.role != "primary":
        behind = _behind(mine, peer)
        if behind:
            return _no(f"{behind} (the peer's {'last ' if not peer_alive else ''}report): "
                       + ("waiting to catch up" if peer_alive else "the peer's data is fresher"))
        return Verdict(True, "")
    # The peer was primary when last heard from, and is dead.
    if policy.mode == "off":
        lag = peer.lsn - mine.lsn if mine.timeline == peer.timeline else None
        if lag is None:
            return _no(f"on timeline {mine.timeline}, the primary was on {peer.timeline}")
        if lag > policy.max_lag:
            return _no(f"the last known lag, {lag} bytes, exceeds max_lag ({policy.max_lag})")
        return Verdict(True, f"asynchronous: up to {max(lag, 0)} bytes may be lost")
    if peer.sync_with != me:
        return _no("not the synchronous standby at the primary's last report: acknowledged "
                   "commits may be missing here")
    if mine.released >= peer.sync_epoch:
        return _no("this node released the synchronous contract: the primary may have "
                   "acknowledged commits without it")
    if mine.timeline != peer.timeline:
        return _no(f"on timeline {mine.timeline}, the primary was on {peer.timeline}")
    if mine.lsn < peer.sync_from:
        return _no(f"short of the position the synchronous contract began at "
                   f"({mine.lsn} < {peer.sync_from})")
    return Verdict(True, "")


def _behind(mine: Replica, peer: Replica) -> str:
    """How this node is behind the peer's report, in words; "" when it is not."""
    if mine.timeline < peer.timeline:
        return f"on timeline {mine.timeline}, the peer on {peer.timeline}"
    if mine.timeline == peer.timeline and mine.lsn < peer.lsn:
        return f"{peer.lsn - mine.lsn} bytes behind"
    return ""


def fresher(a: Replica | None, b: Replica | None) -> int:
    """1 when `a` holds more of the same cluster's history than `b`, -1 when less, 0 when
    neither is known to (equal, unknown, or not replicas of one cluster): where both nodes
    could take a group no one holds, the fresher one should."""
    if a is None or b is None or a.system_id != b.system_id or \
            "failed" in (a.role, b.role):
        return 0
    ka, kb = (a.timeline, a.lsn), (b.timeline, b.lsn)
    return (ka > kb) - (ka < kb)
