"""The keepers of the promotable groups' instances: one task per group (`replica <name>`).

Every `INTERVAL`, and at once when the peer's news of the group changes (`poke`), the
keeper examines this node's instance (replica/postgres.py's status) and tells the node
(its heartbeats carry it; eligibility judges it). Then, holding the instance's lock
(which the group's agent, replica/agent.py, takes for its promote and demote):

- On the node that does not hold the group, it keeps the instance a standby of the peer's
  primary while the peer lives, runs the group and reports itself primary: an empty data
  directory is built by pg_basebackup; a stopped one (a demoted primary, a crashed standby)
  is rewound if it diverged and started as a standby; a primary here that does not hold
  the group is demoted the same way. A rewind or build that fails is tried again only
  after `RETRY` (it is logged once per distinct error).
- On the node that holds it (primary), it keeps the synchronous contract
  (replica/sync.py): sets synchronous_standby_names as the mode and the standby's
  streaming say, opening a new epoch each time, asks the standby to release one it cannot
  keep, and reports the contract. Once after a promotion here, it checkpoints.
- On a standby, it releases what the primary asks it to (sync.released).

The peer cannot promote (what lets mode "on" stop waiting without the standby's consent)
only when it is dead and fenced, or when this node holds the witness's lease on the group.
"""

from __future__ import annotations

import asyncio
import logging
import os

from vigil.core.fencing import FenceState
from vigil.core.notes import Level, Note
from vigil.daemon.hub import Hub
from vigil.errors import AgentError
from vigil.events import Change
from vigil.model import Cluster, Group
from vigil.replica import sync
from vigil.replica.agent import PostgresAgent
from vigil.replica.model import PostgresqlResource, slot_name, spec_for
from vigil.replica.postgres import PgState, Postgres, format_lsn
from vigil.replica.promotion import NO_DATA, NO_EPOCH, Replica, Role, Verdict
from vigil.wire.messages import GroupState, NodeStatus

log = logging.getLogger(__name__)

INTERVAL = 0.5  # seconds between looks at the instance
RETRY = 30.0  # seconds before a failed build or rewind is tried again
RELEASE_GRACE = 1.0  # seconds a standby may not stream before the primary asks a release
FOLLOW_GRACE = 10.0  # seconds an old primary has to stream from the new one (switchover)
# A warning once the data directory's filesystem has less free than this share of it, or
# than two WAL segments (16 MB each: PostgreSQL fills one at once, and stops when it cannot)
LOW_DISK, LOW_DISK_BYTES = 0.05, 32 << 20


class Keeper:
    """Built before the hub (the start-up probe uses its agent); `hub` is set before `run`."""

    hub: Hub

    def __init__(self, cluster: Cluster, me: str, group: Group,
                 resource: PostgresqlResource) -> None:
        self.group, self.resource = group.name, resource
        self.me = me
        self.peer = next(p.name for p in cluster.peers(me))
        hosts = dict(resource.hosts)
        for n in cluster.nodes:
            if n.name not in hosts and n.addresses:
                hosts[n.name] = n.addresses[0]
        self.upstream = (str(hosts[self.peer]), resource.port)
        password = None
        if resource.password_file is not None:
            password = resource.password_file.read_text().strip() or None
        self.pg = Postgres(spec_for(resource, me, str(hosts[me]), self.upstream[0], password))
        self.lock = asyncio.Lock()
        self.state: PgState | None = None
        self.contract = sync.Contract()
        self.released = NO_EPOCH  # the latest epoch this node released as a standby
        self._failed: tuple[str, float] | None = None  # the last build/rewind error, when
        self._kick = asyncio.Event()
        self._streamed = 0  # the timeline this standby last streamed on
        self._streamed_at: float | None = None  # when our standby was last seen streaming
        self._expect_until = 0.0  # until then, count the standby as streaming (promoted)
        self._checkpoint_due = False  # promoted here: a checkpoint once the group runs
        self._news: tuple[object, ...] = ()  # what `poke` last saw of the peer
        self.disk: tuple[int, int] | None = None  # the data filesystem: (free, size) bytes
        self._low = False  # below LOW_DISK free, warned

    def agent(self) -> PostgresAgent:
        return PostgresAgent(self.resource, self)

    async def close(self) -> None:
        """At the daemon's clean shutdown, once its groups are released: the standby
        stops too (as Patroni and Pacemaker stop theirs)."""
        async with self.lock:
            await self.pg.stop("fast")

    # --- what the agent asks -------------------------------------------------------------

    async def refresh(self) -> PgState:
        """Examine the instance (and its filesystem's free space) and tell the node what
        it found."""
        self._watch_disk()
        state = self.state = await self.pg.status()
        node = self.hub.node
        if state.role != "primary":
            self.released = sync.released(self.released, node.promotable.theirs(self.group),
                                          self.me)
        if self.group in node.promotable:
            self.hub.log(node.set_replica(self.group, self._replica(state)))
            self.hub.process()
        return state

    def _watch_disk(self) -> None:
        """statvfs of the data directory: for the status, and a warning when it runs low
        (once, until it has twice as much free again). A full one is PostgreSQL's failure
        (it stops), which the usual rules hand over."""
        try:
            st = os.statvfs(self.pg.data)
        except OSError:
            self.disk = None
            return
        free, size = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
        self.disk = (free, size)
        low = max(LOW_DISK * size, LOW_DISK_BYTES)
        if size and free < low and not self._low:
            self._low = True
            log.warning("%s: the data directory's filesystem is %.0f%% full (%d MB free)",
                        self.resource.name, 100 - 100 * free / size, free >> 20)
        elif self._low and free >= 2 * low:
            self._low = False
            log.info("%s: the data directory's filesystem has %d MB free again",
                     self.resource.name, free >> 20)

    def ready(self) -> Verdict:
        return self.hub.node.promotable.ready(self.group)

    def theirs(self) -> Replica | None:
        return self.hub.node.promotable.theirs(self.group)

    def peer_alive(self) -> bool:
        return not self.hub.node.other.dead()

    def peer_heard(self) -> bool:
        return not self.hub.node.other.unheard()

    def refusal(self) -> str | None:
        return self.hub.node.promotable.refusal(self.group)

    async def promoted(self, state: PgState, was: str) -> None:
        """The agent's start made (or found) the instance primary, from role `was`."""
        if was != "primary":
            self.hub.bus.publish([Change("promoted", self.group, _where(state))])
            self._checkpoint_due = True
            if self.peer_heard():
                # A switchover (the old primary follows within a second) or a restart in
                # place (the standby reconnects): the contract holds from now, not from
                # when it streams, so commits wait for it meanwhile rather than go without
                # it (a death in that window would leave no standby to promote). It must
                # stream within FOLLOW_GRACE, or is asked to release.
                self._expect_until = self.hub.clock() + FOLLOW_GRACE
        await self._sync(state)

    def hook_env(self, state: PgState) -> dict[str, str]:
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "VIGIL_GROUP": self.group,
                "VIGIL_NODE": self.me, "VIGIL_PEER": self.peer,
                "VIGIL_PEER_ALIVE": "1" if self.peer_alive() else "0",
                "VIGIL_ROLE": state.role, "VIGIL_TIMELINE": str(state.timeline or 0),
                "VIGIL_LSN": format_lsn(state.lsn or 0)}

    def demoted(self, state: PgState, was: str) -> None:
        """The agent's stop stopped the instance, which was `was`."""
        if was == "primary":
            self.hub.bus.publish([Change("demoted", self.group, _where(state))])

    def poke(self) -> None:
        """After each of the node's steps (Hub.after_step): a look at once, not after
        INTERVAL, when the peer's news of this group changed: its instance's role,
        timeline or contract, its group's state, its life. So an old primary follows the
        new one as soon as its group runs (a switchover's writes wait for that), and a
        standby releases a contract as soon as it is asked."""
        node = self.hub.node
        theirs = node.promotable.theirs(self.group)
        report = node.report.group(self.group) if node.report is not None else None
        news = (node.other.dead(), report.state if report else None,
                *((theirs.role, theirs.timeline, theirs.sync_with, theirs.sync_epoch,
                   theirs.release_ask) if theirs else ()))
        if news != self._news:
            self._news = news
            self._kick.set()

    # --- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                if not self.lock.locked():  # the agent acts: it refreshes itself
                    async with self.lock:
                        await self._step()
            except (AgentError, OSError) as e:
                self.hub.notes.write([_note(self.group, str(e))], self.hub.clock())
            try:
                async with asyncio.timeout(INTERVAL):
                    await self._kick.wait()
            except TimeoutError:
                pass
            self._kick.clear()

    async def _step(self) -> None:
        state = await self.refresh()
        node = self.hub.node
        local = node.local.get(self.group)
        if local is GroupState.STOPPED and node.status is NodeStatus.UP:
            await self._follow(state)
        elif local is GroupState.RUNNING and state.role == "primary" and state.running:
            await self._sync(state)
            if self._checkpoint_due:  # (postgres.py: the new timeline into pg_control)
                await self.pg.checkpoint()
                self._checkpoint_due = False

    async def _follow(self, state: PgState) -> None:
        """Keep this instance a standby of the peer's primary."""
        node = self.hub.node
        theirs = node.promotable.theirs(self.group)
        report = node.report.group(self.group) if node.report is not None else None
        if node.other.dead() or theirs is None or theirs.role != "primary" or \
                report is None or report.state is not GroupState.RUNNING:
            return
        if state.running and state.role == "standby":
            return  # it follows the peer's timeline by itself (recovery_target_timeline)
        now = self.hub.clock()
        if self._failed is not None and now < self._failed[1] + RETRY:
            return
        try:
            if not state.running and not self.pg.files.entries():
                await self.pg.build_standby(*self.upstream)
                await self.pg.start(self.upstream)
            else:
                if state.running:
                    log.warning("%s: a primary here, but %s holds group %s: demoting it",
                                self.resource.name, self.peer, self.group)
                await self.pg.demote(self.upstream)  # rewound if it diverged
        except AgentError as e:
            if self._failed is None or self._failed[0] != str(e):
                log.error("%s: %s", self.resource.name, e)
            self._failed = (str(e), now)
            return
        self._failed = None
        log.info("%s: a standby of %s:%d", self.resource.name, *self.upstream)
        await self.refresh()

    async def _sync(self, state: PgState) -> None:
        """The primary's step of the synchronous contract."""
        # The contract names the standby's node; PostgreSQL knows it by its slot's name.
        node, slot, c = self.hub.node, slot_name(self.peer), self.contract
        expected = slot_name(c.sync_with) if c.sync_with else ""
        step: sync.SetNames | sync.Contract
        found_waiting = c.epoch == NO_EPOCH and state.sync_names == slot
        if found_waiting:
            # Found waiting (a restart of this daemon): keep waiting under a new epoch whose
            # start is where we are, never less than the old one's.
            self.contract = sync.Contract(self.peer, state.lsn or 0, (node.generation, 0))
        now = self.hub.clock()
        if any(s.name == slot and s.state == "streaming" for s in state.standbys):
            self._streamed_at = now
        # A standby reconnecting (its primary restarted in place) is not gone: ask it to
        # release the contract only once it has not streamed for a grace.
        grace = max(RELEASE_GRACE, 2 * self.hub.cluster.timings.deadtime)
        streaming = (self._streamed_at is not None and now - self._streamed_at < grace) or \
            now < self._expect_until
        if state.sync_names != expected and c.sync_with is not None:
            step = sync.SetNames(c.sync_with)  # changed behind our back: ours again, anew
        else:
            step = sync.plan(self.contract, self.resource.synchronous, self.peer, streaming,
                             node.promotable.theirs(self.group), self._peer_cannot_promote())
        if not found_waiting and state.sync_names != expected and c.sync_with is None and \
                not isinstance(step, sync.SetNames):
            # Names this node's contract does not hold (its source's, copied by the base
            # backup or the rewind: often its own): commits would wait for nobody. No
            # standby is promotable on them (this primary reports no contract). (When the
            # step sets names, it replaces them: clearing first would let commits go
            # unwaited-for between the two.)
            await self.pg.set_sync("")
            log.info("%s: synchronous_standby_names %r cleared: no standby holds a contract",
                     self.resource.name, state.sync_names)
        if isinstance(step, sync.SetNames):
            await self.pg.set_sync(slot_name(step.name) if step.name else "")
            flushed = (await self.pg.status()).lsn or 0
            self.contract = sync.applied(self.contract, node.generation, step.name, flushed)
            log.info("%s: synchronous_standby_names=%r from %d (epoch %d.%d)",
                     self.resource.name, step.name, flushed, *self.contract.epoch)
            await self.refresh()
        elif step != self.contract:
            self.contract = step
            if step.asking:
                log.warning("%s: %s stopped streaming: writes wait; asking it to release "
                            "the synchronous contract", self.resource.name, self.peer)
            await self.refresh()

    def _peer_cannot_promote(self) -> bool:
        node = self.hub.node
        if not node.other.dead():
            return False
        if node.fencing.state is FenceState.DONE:
            return True
        w = node.witness
        return w is not None and w.holds(self.group, self.hub.clock())

    def _replica(self, state: PgState) -> Replica:
        role: Role = state.role
        if not state.running and state.system_id is None and self.pg.files.entries():
            role = "failed"  # a data directory we cannot read is not "no data"
        lsn = max(state.lsn or 0, state.receive_lsn or 0)
        # A standby's timeline is its WAL receiver's; once that is gone (the primary died)
        # PostgreSQL tells only its last restartpoint's, often older: the last one streamed.
        timeline = state.timeline or 0
        if role == "standby":
            if state.streaming:
                self._streamed = timeline
            timeline = max(timeline, self._streamed)
        else:
            self._streamed = 0
        if role == "standby":
            # A contract ends when its primary follows another (its epoch count goes on),
            # with what it saw of its standby; a primary stopped or restarted in place
            # keeps it: its server waits again.
            self._expect_until, self._streamed_at = 0.0, None
            if self.contract.sync_with is not None:
                self.contract = sync.Contract(epoch=self.contract.epoch)
        r = Replica(role, state.system_id or NO_DATA, timeline, lsn, released=self.released)
        return sync.report(self.contract, r) if role == "primary" else r


def _where(state: PgState) -> str:
    return f"timeline {state.timeline} at {format_lsn(state.lsn or 0)}"


def _note(group: str, text: str) -> Note:
    return Note(Level.WARNING, f"replica {group}: {text}", key=f"replica {group}")


def keepers(cluster: Cluster, me: str) -> dict[str, Keeper]:
    """A keeper per promotable group."""
    return {g.name: Keeper(cluster, me, g, g.replica) for g in cluster.groups
            if g.promotable and g.replica is not None}
