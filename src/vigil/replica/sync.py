"""The synchronous contract between a primary and its standby, sans-IO: when the primary
waits for the standby's flush before it acknowledges a commit (PostgreSQL's
synchronous_standby_names), and when it may stop waiting.

Turning synchronous replication on is always safe; turning it off is what loses commits: a
primary that stops waiting for a standby that is merely cut off, not dead, acknowledges
commits the standby never gets, and the standby, promoted after deadtime, serves without
them. So the contract has epochs, and the primary leaves one only with the standby's
consent or with proof that the standby cannot be promoted:

- The primary puts the standby's name in synchronous_standby_names, then reads its own
  flushed position `sync_from`, then opens a new epoch and reports (sync_with, sync_from,
  epoch) in its heartbeats: every commit it acknowledged before `sync_from` is in WAL
  below it, every later one waited for the standby. A standby that holds WAL up to
  `sync_from` and has not released the epoch may be promoted without losing any
  acknowledged commit (promotion.may_promote).
- With mode "on", when the standby stops streaming, the primary keeps waiting (writes
  block) and asks the standby's node to release the epoch. The standby's node releases it
  (reports `released` = epoch; it will not promote on that epoch again) and only once the
  primary has seen that does it stop waiting. If the standby's node cannot answer (cut
  off, or its daemon is gone) the primary stops waiting only with proof that the peer
  cannot promote: it fenced the peer, or holds the witness's lease while the peer is dead
  (the core's facts, passed in as `peer_cannot_promote`).
- Mode "strict" never stops waiting; mode "off" never waits.

A standby that restarts forgets what it released, and then knows nothing of the primary's
contract until it hears from it again: it refuses to promote meanwhile (doubt), which is the
safe side. Epochs begin with the primary daemon's boot generation, so a restarted primary's
new contracts are newer than any its standby released.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from vigil.replica.promotion import NO_EPOCH, Epoch, Mode, Replica


@dataclass(frozen=True, slots=True)
class Contract:
    """The primary's side, kept by its daemon: what synchronous_standby_names says (as
    applied), from where, and since which epoch."""

    sync_with: str | None = None
    sync_from: int = 0
    epoch: Epoch = NO_EPOCH
    asking: bool = False  # a release of `epoch` is asked of the standby


@dataclass(frozen=True, slots=True)
class SetNames:
    """Set synchronous_standby_names to `name` ("" for none), then call `applied` with the
    primary's flushed position read after the setting took effect."""

    name: str


def plan(contract: Contract, mode: Mode, standby: str, streaming: bool,
         peer: Replica | None, peer_cannot_promote: bool) -> SetNames | Contract:
    """The primary's next step: a setting to apply, or the contract to keep (maybe now
    asking for a release). `streaming`: the standby's node streams from this primary now
    (pg_stat_replication); `peer`: that node's latest report."""
    want = _want(contract, mode, standby, streaming, peer, peer_cannot_promote)
    if want != (contract.sync_with or ""):
        return SetNames(want)
    if want and streaming and peer is not None and peer.released >= contract.epoch:
        return SetNames(want)  # the standby let this epoch go but streams again: a new one
    asking = contract.sync_with is not None and mode == "on" and not streaming
    if asking != contract.asking:
        return Contract(contract.sync_with, contract.sync_from, contract.epoch, asking)
    return contract


def _want(contract: Contract, mode: Mode, standby: str, streaming: bool,
          peer: Replica | None, peer_cannot_promote: bool) -> str:
    if mode == "off":
        return ""
    if mode == "strict" or streaming:
        return standby
    if contract.sync_with is None:
        return ""  # not waiting now: do not start waiting for a standby that is not there
    released = peer is not None and peer.released >= contract.epoch
    return "" if released or peer_cannot_promote else contract.sync_with


def applied(contract: Contract, generation: int, name: str, flushed: int) -> Contract:
    """The contract once synchronous_standby_names = `name` took effect, with the flushed
    position read after it: a new epoch."""
    gen, count = contract.epoch
    epoch = (generation, count + 1) if gen == generation else (generation, 1)
    return Contract(name or None, flushed if name else 0, epoch, False)


def report(contract: Contract, primary: Replica) -> Replica:
    """The primary's report `primary` with the contract's fields."""
    return replace(primary, sync_with=contract.sync_with, sync_from=contract.sync_from,
                   sync_epoch=contract.epoch,
                   release_ask=contract.epoch if contract.asking else None)


def released(current: Epoch, primary: Replica | None, me: str) -> Epoch:
    """The standby's node: the epoch it has released, after the primary's latest report. It
    releases what it is asked to, at once: its instance cannot keep the contract (that is
    why the primary asks), and consenting is what lets the primary's writes go on."""
    if primary is None or primary.release_ask is None or primary.sync_with != me:
        return current
    return max(current, primary.release_ask)
