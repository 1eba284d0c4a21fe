"""A monitor that checks at once when its agent says the resource changed (Agent.changed,
daemon/services/monitors.pause), and the postgresql agent's reason to: its postmaster's
exit, seen through a pidfd (a real child process here, its pid in postmaster.pid)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from vigil.daemon.services.monitors import pause
from vigil.replica.agent import PostgresAgent
from vigil.replica.pgdata import server_processes
from vigil.replica.model import PostgresqlResource


class Waker:
    """An agent whose changed() returns after `after` s, raises, or never (None)."""

    name = "w"

    def __init__(self, after: float | None, fail: bool = False) -> None:
        self.after, self.fail = after, fail
        self.cancelled = 0

    async def changed(self) -> None:
        try:
            if self.fail:
                raise OSError("no pidfd here")
            await asyncio.sleep(self.after if self.after is not None else 3600)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


def _timed(agent: Any, interval: float) -> float:
    async def run() -> float:
        t0 = time.monotonic()
        await pause(agent, interval)
        return time.monotonic() - t0
    return asyncio.run(run())


def test_the_pause_ends_at_the_interval_or_at_the_change_whichever_is_first() -> None:
    never = Waker(None)
    assert 0.2 <= _timed(never, 0.2) < 1.0
    assert never.cancelled == 1, "the waker is not left running"
    assert _timed(Waker(0.01), 5.0) < 1.0, "a change ends the pause early"
    assert 0.2 <= _timed(Waker(0, fail=True), 0.2) < 1.0, "a failing waker: the interval"


def _agent(data: Path) -> PostgresAgent:
    pg = SimpleNamespace(data=data)  # what changed() reads of a Postgres: its data directory
    return PostgresAgent(PostgresqlResource(data), pg=pg)  # type: ignore[arg-type]


def test_the_postgresql_agent_wakes_once_when_its_postmaster_exits(tmp_path: Path) -> None:
    agent = _agent(tmp_path)

    async def run() -> None:
        # no postmaster.pid: never
        waiting = asyncio.ensure_future(agent.changed())
        await asyncio.sleep(0.1)
        assert not waiting.done()
        waiting.cancel()
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            (tmp_path / "postmaster.pid").write_text(f"{child.pid}\n{tmp_path}\n")
            waiting = asyncio.ensure_future(agent.changed())
            await asyncio.sleep(0.1)
            assert not waiting.done(), "it runs: no change"
            child.kill()
            await asyncio.wait_for(waiting, 2.0)  # its exit, seen at once
        finally:
            child.kill()
            child.wait()
        again = asyncio.ensure_future(agent.changed())
        await asyncio.sleep(0.1)
        assert not again.done(), "that exit was told once"
        again.cancel()
    asyncio.run(run())


def test_the_wake_waits_for_the_dead_postmasters_backends(tmp_path: Path) -> None:
    """A "backend" (a child working in the data directory) outlives its "postmaster" by
    0.3 s: changed() returns only once it is gone too, so that its close of its client's
    connection leaves while the floating address is still here."""
    agent = _agent(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    backend = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                               cwd=tmp_path)
    try:
        (tmp_path / "postmaster.pid").write_text(f"{child.pid}\n{tmp_path}\n")
        assert server_processes(tmp_path) == [backend.pid]

        async def run() -> float:
            waiting = asyncio.ensure_future(agent.changed())
            await asyncio.sleep(0.05)
            child.kill()
            await asyncio.sleep(0.3)
            assert not waiting.done(), "a backend is still there"
            backend.kill()
            backend.wait()
            t0 = time.monotonic()
            await asyncio.wait_for(waiting, 2.0)
            return time.monotonic() - t0
        assert asyncio.run(run()) < 0.5
        assert server_processes(tmp_path) == []
    finally:
        for p in (child, backend):
            p.kill()
            p.wait()
