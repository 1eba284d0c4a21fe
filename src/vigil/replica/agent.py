"""The `postgresql` resource of a promotable group, as the group sees it: started is
promoted, stopped is demoted (cleanly while the peer is heard, else at once). Its start
promotes this node's instance (a standby) or starts it as primary (stopped; a new
cluster: initdb first) once promotion.may_promote allows it, waiting while the peer lives
for it to report demoted and for this node to catch up (the caller's timeout bounds the
wait); its stop stops the server cleanly, which sends a standby all the WAL first. Running
as a standby on the node that does not hold the group is the keeper's
(daemon/services/replicas.py), which this agent shares a lock with.

Built without a keeper (resources.build: the guard, which only stops), start refuses and
stop stops the server.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Protocol

from vigil.replica import pgdata
from vigil.replica.model import PostgresqlResource
from vigil.replica.postgres import PgState, Postgres
from vigil.replica.promotion import Replica, Verdict
from vigil.replica.pgfacts import tail
from vigil.resources import runner
from vigil.resources.base import Agent

log = logging.getLogger(__name__)
WAIT_POLL = 0.05  # seconds between looks while waiting to be allowed to promote
BACKENDS_WAIT = 1.0  # seconds a dead postmaster's backends may take to go


class Keeper(Protocol):
    """What the agent needs of the daemon's keeper of this instance."""

    lock: asyncio.Lock  # one action on the instance at a time: the agent's or the keeper's
    pg: Postgres

    async def refresh(self) -> PgState: ...  # examine the instance; tell the node
    def ready(self) -> Verdict: ...  # may this node promote now (promotion.may_promote)?
    def peer_alive(self) -> bool: ...
    def peer_heard(self) -> bool: ...  # heard on some link now (not dead, not silent)
    def refusal(self) -> str | None: ...  # why this node may not hold the group at all
    def theirs(self) -> Replica | None: ...  # the peer's instance, its latest report
    async def promoted(self, state: PgState, was: str) -> None: ...  # primary now, from `was`
    def demoted(self, state: PgState, was: str) -> None: ...  # stopped, from `was`
    def hook_env(self, state: PgState) -> dict[str, str]: ...  # for pre_promote


class PostgresAgent(Agent):
    def __init__(self, resource: PostgresqlResource, keeper: Keeper | None = None,
                 pg: Postgres | None = None) -> None:
        self.resource, self.keeper = resource, keeper
        self.name = resource.name
        self.timeout = resource.timeout
        self._pg = pg if keeper is None else keeper.pg
        self._exited: int | None = None  # the last postmaster `changed` saw exit

    async def start(self) -> None:
        k = self.keeper
        if k is None:
            raise self.error("a promotable instance is promoted only by the daemon")
        async with k.lock:
            state = await k.refresh()
            while not (verdict := k.ready()):
                if not k.peer_alive() or (refused := k.refusal()) is not None:
                    raise self.error(f"not promoted: {refused or verdict.why}")
                if await self._in_place(k, state):
                    verdict = Verdict(True, "")
                    break
                await asyncio.sleep(WAIT_POLL)  # the peer demoting, or this node catching up
                state = await k.refresh()
            if verdict.why:
                log.warning("%s: promoting: %s", self.name, verdict.why)
            was = state.role
            if state.role != "primary" and self.resource.pre_promote:
                await self._pre_promote(k, state)
            if state.role != "primary":
                if state.system_id is None and not k.pg.files.entries():
                    await k.pg.init_primary()  # a new cluster (promotion: neither has data)
                if state.running:
                    await k.pg.promote()
                else:
                    await k.pg.start(None)  # a former standby is promoted (postgres.py)
                state = await k.refresh()
            await k.promoted(state, was)

    async def _in_place(self, k: Keeper, state: PgState) -> bool:
        """A primary that crashed here restarts in place while the peer is a standby on its
        timeline: that standby's WAL all came from this instance (a timeline has one
        primary), however far past the last checkpoint (what a crashed instance tells of
        itself) it reaches."""
        theirs = k.theirs()
        return (not state.running and state.system_id is not None and theirs is not None
                and theirs.role == "standby" and theirs.system_id == state.system_id
                and theirs.timeline == state.timeline and not await k.pg.was_standby())

    async def _pre_promote(self, k: Keeper, state: PgState) -> None:
        """The operator's veto: a failure (or a hang, to the start's timeout) refuses."""
        argv = self.resource.pre_promote
        done = await runner.run(argv, env=k.hook_env(state))
        self.log_output("pre_promote", done)
        if not done.ok:
            raise self.error(f"pre_promote {argv[0]} vetoed the promotion "
                             f"({done.describe_rc()}): {tail(done.stderr or done.stdout)}")

    async def stop(self) -> None:
        if self.keeper is None:
            if self._pg is not None:
                await self._pg.stop("fast")
            return
        async with self.keeper.lock:
            was = (await self.keeper.pg.status()).role
            # A clean stop sends the standby all the WAL first, and waits for it: with the
            # peer unheard (a cut link, the witness's lease lapsed) it would wait up to
            # wal_sender_timeout while the peer may promote. Then: at once (crash-safe;
            # the next start recovers, or the rewind does).
            await self.keeper.pg.stop("fast" if self.keeper.peer_heard() else "immediate")
            self.keeper.demoted(await self.keeper.refresh(), was)

    async def changed(self) -> None:
        """Returns when the postmaster running now exits (its pidfd turns readable), once
        per postmaster: a killed one is restarted at once, not at the next monitor. But
        only once its backends are gone (BACKENDS_WAIT at most): they see its death at
        once and close their clients' connections, and those closes must leave while the
        floating address is here. The restart takes the address down first; a client
        whose close was lost waits for its answer for ever (the bench's writer did, one
        run in eight, before this wait)."""
        loop = asyncio.get_running_loop()
        data = self._pg.data if self._pg is not None else None
        pid = pgdata.postmaster_pid(data) if data is not None else None
        if data is None or pid is None or pid == self._exited:
            await loop.create_future()  # none, or its exit already told: never
        assert data is not None and pid is not None
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._exited = pid
            return
        exited: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not exited.done():
                exited.set_result(None)
        loop.add_reader(fd, readable)
        try:
            await exited
            self._exited = pid
        finally:
            loop.remove_reader(fd)
            os.close(fd)
        end = loop.time() + BACKENDS_WAIT
        while pgdata.server_processes(data) and loop.time() < end:
            await asyncio.sleep(0.01)

    async def probe(self) -> bool:
        if self._pg is None:
            return False
        state = await self._pg.status()
        return state.running and state.role == "primary"

    async def monitor(self) -> bool:
        """Running as primary; False when it is not running (or runs as a standby: it was
        demoted behind vigil's back); AgentError when it runs but does not answer."""
        if self._pg is None:
            return False
        state = await self._pg.status()
        if state.running and state.problem is not None:
            raise self.error(state.problem)
        return state.running and state.role == "primary"
