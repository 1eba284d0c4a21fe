"""The daemon's event loop: feeds the sans-IO `Node` and carries out its decisions.

Tasks, all in one TaskGroup (none outlives `run`):
  announcer      the Announcer's scheduled ARP/NA bursts
  heartbeat      sends a heartbeat on every link every `keepalive`, on a fixed grid
  deadlines      sleeps until the membership's next deadline (woken early on any change)
  health         every keepalive, asks each group's agents whether this node can run it
  group <name>   one per group: runs its Start/Stop actions one at a time, in order
  control        the UNIX control socket
  guard          hears from the guard process (daemon/guard.py) when it stopped groups
  fencing        runs the fence agent when the peer died uncleanly (resources/fence.py)
  ping           ICMP echo to the ping nodes (daemon/ping.py); health reads its count
  shutdown       on SIGTERM/SIGINT: release everything, say goodbye, end the TaskGroup

Concurrency rule: everything that touches `self.node` is synchronous code between awaits, so
no decision ever sees a half-applied input. After every input, `_process` runs the policy
once and dispatches: frames to send, actions to the group tasks, lines to the log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from vigil import __version__, events, reconfig
from vigil.control import protocol as p
from vigil.daemon import (control_server, disk as disk_mod, guard as guard_mod,
                          links as links_mod, realtime)
from vigil.daemon.bus import Bus
from vigil.daemon.hooks import Hooks
from vigil.daemon.metrics import Metrics
from vigil.daemon.notes import NoteLog
from vigil.daemon.ping import Pinger
from vigil.daemon.sdnotify import Notifier
from vigil.daemon.watchdog import Watchdog
from vigil.errors import AgentError, VigilError
from vigil.model import (Cluster, Fencing, Group, IpResource, Monitor, Notify, Respawn, Witness,
                         partition_warning, poison_wait)
from vigil.core.fencing import FenceState
from vigil.core.node import Node
from vigil.core.notes import Note
from vigil.core.lookout import Answer, Result, Unprobed
from vigil.policy import Probe, Recover, Start
from vigil.resources import build, fence as fence_mod
from vigil.resources.base import Agent
from vigil.resources.ip import IpAgent
from vigil.resources.host import Host
from vigil.wire.messages import GroupState

if TYPE_CHECKING:
    from vigil.daemon.api.server import Server

log = logging.getLogger("vigil")

GOODBYES = 3  # the last frames of a clean shutdown, on every link


class _Shutdown(Exception):
    """Raised inside the TaskGroup to end it once the node has left cleanly."""


class _Replace:
    """A reload's change to a group, run by the group's worker between its other actions:
    stop the old resources from `index` on, start `agents` (the new ones from `index`)."""

    def __init__(self, old: Group, group: Group, index: int, agents: list[Agent],
                 restarts: bool) -> None:
        self.old, self.group, self.index, self.agents = old, group, index, agents
        self.restarts = restarts


class _Retire:
    """A reload removed the group: its worker stops it if it runs here, then forgets it."""

    def __init__(self, group: Group) -> None:
        self.group = group


Reloader = Callable[[], tuple[Cluster, bytes]]


class Daemon:
    def __init__(self, cluster: Cluster, me: str, key: bytes,
                 new_generation: Callable[[], int], socket_path: Path,
                 realtime_enabled: bool | None = None,
                 guard_link: guard_mod.GuardLink | None = None,
                 reloader: Reloader | None = None, watchdog: Watchdog | None = None,
                 unsafe: bool = False) -> None:
        self.cluster = cluster
        self.me = me
        self.key = key
        self.unsafe = unsafe  # the torture test's broken build (policy View.skip_release_wait)
        self.new_generation = new_generation
        self.generation = 0
        self.socket_path = socket_path
        self.realtime = cluster.realtime if realtime_enabled is None else realtime_enabled
        self.links: list[links_mod.HeartbeatLink] = []
        self.agents: dict[str, list[Agent]] = {}
        self.pending: dict[str, list[Any]] = {g.name: [] for g in cluster.groups}
        self.kicks = {g.name: asyncio.Event() for g in cluster.groups}
        # Monitors in flight per group: an action cancels them first (their agents are killed),
        # so a monitor never runs beside a start or stop, and never delays one.
        self.checks: dict[str, set[asyncio.Task[tuple[str, str]]]] = {
            g.name: set() for g in cluster.groups}
        self.changed = asyncio.Event()
        self.fence_kick = asyncio.Event()
        self.quiet = asyncio.Event()
        self.stop_asked = asyncio.Event()
        self.closing = False  # set once the links begin to close
        self.fence_check: dict[str, Any] = {}  # the latest fence device monitor
        self.witness: asyncio.DatagramTransport | None = None
        self._asked: tuple[str, ...] | None = None  # what the latest ask to the witness held
        self.node: Node | None = None
        self.host: Host | None = None
        self.started_at = time.monotonic()
        self.leaving = False
        self.guard = guard_link
        self.watchdog = watchdog  # opened by main.py, before the guard that shares it
        self.pinger = (Pinger(cluster.ping, cluster.ping_interval, cluster.deadping)
                       if cluster.ping else None)
        # Transitions (events.py): numbered on the bus, counted in the metrics, handed to the
        # notify hooks and the API's event streams.
        self.bus = Bus(me)
        self.metrics = Metrics()
        self.bus.listeners.append(self.metrics.event)
        self.hooks = Hooks(cluster.notify, cluster.name) if cluster.notify else None
        if self.hooks is not None:
            self.bus.listeners.append(self.hooks.submit)
        self._seen: events.Snapshot | None = None
        # systemd (Type=notify): READY=1 once the first membership is known, then status
        # lines, WATCHDOG=1 from the event loop, STOPPING=1 at shutdown. No-op elsewhere.
        self.notifier = Notifier.from_env()
        self.ready = False
        # Live reload (reconfig.py): how to read the configuration again, the TaskGroup that
        # new groups' tasks join, and each group's monitor tasks (renewed when it changes).
        self.reloader = reloader
        self.reload_lock = asyncio.Lock()
        self.tg: asyncio.TaskGroup | None = None
        self.monitors: dict[str, list[asyncio.Task[None]]] = {}
        self.retiring: dict[str, Group] = {}  # removed by a reload, not yet stopped here
        self.background: set[asyncio.Task[Any]] = set()
        self._heard: dict[int, float] = {}  # link index -> the peer's last valid frame on it
        self.notes = NoteLog(log)  # what untrusted input makes us say is rate-limited

    # --- life cycle --------------------------------------------------------------------------

    async def run(self) -> None:
        # Everything that can be refused is checked before anything is written or bound.
        async with Host.open() as host:
            self.host = host
            self.links = await links_mod.plan(self.cluster, self.me, host)
            try:
                api = self._api_server()
                sock = control_server.bind(self.socket_path)
            except BaseException:
                self.disarm()  # refusing to start is no reason to reset the node
                raise
            try:
                self.generation = self.new_generation()
                self.agents = {g.name: [build(r, host) for r in g.resources]
                               for g in self.cluster.groups}
                for agent in (a for agents in self.agents.values() for a in agents):
                    await agent.prepare()  # OCF meta-data: the timeouts of every action
                found = {g.name: await self._probe_group(g) for g in self.cluster.groups}
                now = time.monotonic()
                self.node = Node(self.cluster, self.me, self.key, self.generation,
                                 [l.name for l in self.links], now,
                                 [l.index for l in self.links if l.kind == "disk"],
                                 [l.index for l in self.links if l.kind == "serial"],
                                 skip_release_wait=self.unsafe)
                self._seen = self._snapshot()
                self._log(self.node.probed(found))
                self._emit()
                for link in self.links:
                    if isinstance(link, disk_mod.DiskLink):
                        await link.open(self._receive, self._mail)
                    else:
                        await link.open(self._receive)  # type: ignore[attr-defined]
                if self.cluster.witness is not None:
                    await self._open_witness(self.cluster.witness)
                http = await api.start() if api is not None else None
                log.info("vigil %s started: node %s, cluster %s, generation %d, links %s",
                         __version__, self.me, self.cluster.name, self.generation,
                         ", ".join(f"{l.name} ({l.describe()})" for l in self.links))
                warning = partition_warning(self.cluster)
                if warning:
                    log.warning("%s", warning)
                if self.unsafe:
                    log.error("UNSAFE TEST BUILD: VIGIL_UNSAFE_SKIP_RELEASE_WAIT=1: groups are "
                              "started without waiting for the peer to release them")
                if self.realtime:
                    for what in realtime.make_realtime():
                        log.info("real-time: %s", what)
                realtime.freeze_heap()
                try:
                    async with asyncio.TaskGroup() as tg:
                        self.tg = tg
                        tg.create_task(host.announcer.run(), name="announcer")
                        tg.create_task(self._heartbeats(), name="heartbeat")
                        tg.create_task(self._deadlines(), name="deadlines")
                        tg.create_task(self._health(), name="health")
                        for g in self.cluster.groups:
                            tg.create_task(self._group_worker(g), name=f"group {g.name}")
                            self._start_monitors(g)
                        loop = asyncio.get_running_loop()
                        loop.add_signal_handler(signal.SIGHUP, self._reload_on_signal)
                        tg.create_task(control_server.serve(sock, self._handle), name="control")
                        if api is not None and http is not None:
                            tg.create_task(api.serve(http), name="api")
                        if self.hooks is not None:
                            tg.create_task(self.hooks.run(), name="notify hooks")
                        if self.notifier.watchdog_interval() is not None:
                            tg.create_task(self._systemd_watchdog(), name="systemd watchdog")
                        tg.create_task(self._shutdown_on_signal(), name="shutdown")
                        if self.guard is not None:
                            tg.create_task(self._guard_watch(), name="guard")
                        if self.cluster.fencing is not None:
                            tg.create_task(self._fencing(), name="fencing")
                            if _monitored(self.cluster.fencing):
                                tg.create_task(self._fence_monitor(self.cluster.fencing),
                                               name="fence monitor")
                        if self.pinger is not None:
                            tg.create_task(self.pinger.run(), name="ping")
                        if self.witness is not None:
                            tg.create_task(self._witness_asks(), name="witness")
                        for prog in self.cluster.respawn:
                            tg.create_task(self._respawn(prog),
                                           name=f"respawn {prog.argv[0]}")
                        self._process()
                except* _Shutdown:
                    pass
            finally:
                # Callbacks of transports still open must not act on closed ones (a witness
                # reply after the links closed once raised in its callback: torture soak).
                self.closing = True
                if self.witness is not None:
                    self.witness.close()
                for l in self.links:
                    l.close()
                sock.close()
                self.socket_path.unlink(missing_ok=True)
                self.disarm()
                log.info("vigil stopped")

    def disarm(self) -> None:
        """Any exit that passes through Python disarms the watchdog: the guard covers what
        was running. Only a hang or a kill -9 leaves it armed, which is its job."""
        if self.watchdog is not None:
            self.watchdog.close()
            self.watchdog = None

    async def _shutdown_on_signal(self) -> None:
        loop = asyncio.get_running_loop()
        asked = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, asked.set)
        waits = [asyncio.ensure_future(e.wait()) for e in (asked, self.stop_asked)]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if not self.stop_asked.is_set():
            log.info("shutdown requested: releasing every group")
        self.notifier.stopping()
        assert self.node is not None
        self.leaving = True
        self.node.leave()
        self._process()
        await self.quiet.wait()
        if self.witness is not None:
            self._ask_witness()  # holding nothing now: the witness frees our leases at once
        for _ in range(GOODBYES):
            self._send_all()
            await asyncio.sleep(0.005)
        if self.hooks is not None:  # the last transitions (groups stopped) reach the hooks
            await self.hooks.drain(min(self.hooks.notify.timeout * 2, 30.0))
        failed = [g for g, st in self.node.local.items() if st is GroupState.FAILED]
        if failed:
            # No goodbye to the guard: at our exit it tries to stop them once more.
            log.error("goodbye sent to %s; %s failed to stop and may still hold resources "
                      "here; the guard tries once more", self.node.peer, ", ".join(failed))
        else:
            log.info("all groups released; goodbye sent to %s", self.node.peer)
            if self.guard is not None:
                self.guard.bye()
        raise _Shutdown

    # --- inputs --------------------------------------------------------------------------------

    def _receive(self, data: bytes, link: int) -> None:
        if self.closing:
            return
        assert self.node is not None
        now = time.monotonic()
        before = self.node.frames.received
        self._log(self.node.receive(data, link, now))
        if self.node.frames.received != before:  # authentic and new: time it for the metrics
            last = self._heard.get(link)
            self._heard[link] = now
            if last is not None:
                self.metrics.heartbeat(self.node.link_names[link], now - last,
                                       self.cluster.timings.warntime)
        self._process()

    async def _heartbeats(self) -> None:
        assert self.node is not None
        loop = asyncio.get_running_loop()
        interval = self.cluster.timings.keepalive
        due = loop.time()
        while True:
            self._send_all()
            due += interval
            now = loop.time()
            if due < now:  # we were frozen or starved: skip missed slots, do not burst
                due = now + interval
            await asyncio.sleep(due - now)

    async def _deadlines(self) -> None:
        assert self.node is not None
        while True:
            self.changed.clear()
            deadline = self.node.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                async with asyncio.timeout(timeout):
                    await self.changed.wait()
            except TimeoutError:
                self._log(self.node.tick(time.monotonic()))
                self._process()

    async def _health(self) -> None:
        assert self.node is not None and self.host is not None
        while True:
            self.notes.due(time.monotonic())
            if self.pinger is not None:
                notes = self.node.set_ping(self.pinger.count(time.monotonic()))
                if notes:
                    self._log(notes)
                    self._process()
            for link in self.links:
                notes = self.node.set_link_local(link.index, link.usable(), time.monotonic())
                if notes:
                    self._log(notes)
                    self._process()
            for g in self.cluster.groups:
                ok = True
                for agent in self.agents.get(g.name, []):
                    try:
                        async with asyncio.timeout(agent.timeout_for("monitor")):
                            ok = ok and await agent.healthy()
                    except Exception as e:  # a health check that fails says "cannot run"
                        log.warning("%s health check failed: %s", agent.name, e)
                        ok = False
                if g.name not in self.node.local:
                    continue  # removed by a reload while we asked
                notes = self.node.set_eligible(g.name, ok)
                if notes:
                    self._log(notes)
                    self._process()
            await asyncio.sleep(self.cluster.timings.keepalive)

    # --- decisions -----------------------------------------------------------------------------

    def _process(self) -> None:
        """Run the policy on the current state and dispatch what it says."""
        assert self.node is not None and self.host is not None
        step = self.node.step(time.monotonic())
        self._log(list(step.notes))
        for act in step.actions:
            self.pending[act.group].append(act)
            self.kicks[act.group].set()
            if isinstance(act, Start):
                self.metrics.acquired["peer_dead" if act.failover else "handover"] += 1
            elif isinstance(act, Recover):
                self.metrics.acquired["recover"] += 1
        if step.send:
            self._send_all()
        for name in step.reannounce:
            if name in self.retiring or name not in self.agents:
                continue  # removed by a reload meanwhile
            for r in self.cluster.group(name).resources:
                if isinstance(r, IpResource) and self.host.announcer.reannounce(r.address.ip):
                    log.info("re-announcing %s after %s released it", r.address.ip,
                             self.node.peer)
        if self.witness is not None and self.node.wanted() != self._asked:
            self._ask_witness()  # at once: a takeover waits for this answer
        self._emit()
        self.changed.set()
        if self.node.fencing.state is FenceState.NEEDED:
            self.fence_kick.set()
        if self.leaving and self.node.quiescent() and not any(self.pending.values()):
            self.quiet.set()

    def _send_all(self) -> None:
        assert self.node is not None
        for link in self.links:
            link.send(self.node.frame(link.index, time.monotonic()))
        if self.guard is not None:  # the guard hears we live exactly when the peer does
            self.guard.feed(self.node.active_groups(), self.node.generation, self.node.frames.seq,
                            self.node.sent_report)
        if self.watchdog is not None:
            self.watchdog.feed()

    async def _fencing(self) -> None:
        """Whenever the node says the peer must be fenced, run the agent with its timeout."""
        assert self.node is not None and self.cluster.fencing is not None
        f = self.cluster.fencing
        while True:
            await self.fence_kick.wait()
            self.fence_kick.clear()
            delay = self.node.fence_started()
            if delay is None:
                continue
            peer = self.node.peer
            if delay:
                log.warning("%s was running groups and this node runs none: waiting %g s "
                            "before fencing it, so that it wins a fence race", peer, delay)
                await asyncio.sleep(delay)
                if self.node.fencing.state is not FenceState.RUNNING:
                    continue  # it came back meanwhile
            log.warning("fencing %s: %s %s", peer, f.agent, f.action)
            t0 = time.monotonic()
            try:
                if f.agent == "disk":
                    detail = await self._poison(f.timeout)  # its wait is not the agent's
                else:
                    async with asyncio.timeout(f.timeout):
                        detail = await fence_mod.fence(f, peer)
                ok = True
            except TimeoutError:
                ok, detail = False, f"no answer within {f.timeout:g} s"
            except Exception as e:
                ok, detail = False, str(e) or type(e).__name__
            log.log(logging.WARNING if ok else logging.ERROR, "fence agent %s %s %s: %s in "
                    "%.0f ms%s", f.agent, f.action, peer, "ok" if ok else "FAILED",
                    (time.monotonic() - t0) * 1000, f": {detail}" if detail else "")
            self._log(self.node.fence_result(ok, detail, time.monotonic()))
            self._process()

    async def _fence_monitor(self, f: Fencing) -> None:
        """Check the fence device every monitor_interval, and size the fence race with what
        the check took: a serving node's shot lands within one agent run, so the waiting
        node's `delay` must be longer than a run, or both may shoot."""
        assert self.node is not None
        warned_delay = False
        while True:
            t0 = time.monotonic()
            try:
                async with asyncio.timeout(f.timeout):
                    detail = await fence_mod.monitor(f, self.node.peer)
                ok = True
            except TimeoutError:
                ok, detail = False, f"no answer within {f.timeout:g} s"
            except Exception as e:
                ok, detail = False, str(e) or type(e).__name__
            took = time.monotonic() - t0
            was = self.fence_check.get("ok")
            self.fence_check = {"ok": ok, "ms": round(took * 1000), "detail": detail}
            if not ok and was is not False:
                log.error("FENCE DEVICE CHECK FAILED: %s; fencing %s would fail now",
                          detail, self.node.peer)
            elif ok and was is not True:
                log.info("fence device answers: %s monitor ok in %.0f ms", f.agent,
                         took * 1000)
            if ok and 0 < f.delay < took and not warned_delay:
                warned_delay = True
                log.warning("the fence agent takes %.1f s, longer than [fencing] delay "
                            "(%g s): in a partition the waiting node may shoot before the "
                            "serving node's shot lands; set delay above %.1f s", took,
                            f.delay, took)
            await asyncio.sleep(f.monitor_interval)

    async def _poison(self, timeout: float) -> str:
        """Storage-based fencing: write the pill into the peer's disk mailbox, then wait
        until a live peer must have obeyed it (model.poison_wait). Succeeds when the peer
        stayed dead meanwhile; a peer heard again is not fenced, and needs no fencing."""
        assert self.node is not None
        disk = next(l for l in self.links if isinstance(l, disk_mod.DiskLink))
        try:
            async with asyncio.timeout(timeout):
                await disk.write_mail(self.node.poison_frame(int(time.time() * 1000)))
        except TimeoutError:
            raise AgentError(f"writing the poison pill to {disk.name} took over "
                             f"{timeout:g} s") from None
        wait = poison_wait(self.cluster.timings)
        log.warning("poison pill written for %s on %s; waiting %.0f ms for it to obey",
                    self.node.peer, disk.name, wait * 1000)
        await asyncio.sleep(wait)
        if self.node.fencing.state is not FenceState.RUNNING:
            raise AgentError(f"{self.node.peer} came back while it was poisoned")
        return f"poison pill written on {disk.name}; no sign of life for {wait * 1000:.0f} ms"

    def _mail(self, data: bytes) -> None:
        if self.closing:
            return
        assert self.node is not None
        self._log(self.node.mail(data))
        if self.node.poisoned and not self.stop_asked.is_set():
            self.stop_asked.set()  # releases everything through the clean shutdown path

    # --- respawn -------------------------------------------------------------------------------

    async def _respawn(self, r: Respawn) -> None:
        """Heartbeat's `respawn USER PROGRAM`: keep it running as USER, restarting it after
        it exits, 1 s later at first and twice as long each time it dies young (up to 60 s).
        Stopped with the daemon."""
        what = " ".join(r.argv)
        backoff = 1.0
        while True:
            t0 = time.monotonic()
            try:
                proc = await asyncio.create_subprocess_exec(
                    *r.argv, user=r.user, stdin=asyncio.subprocess.DEVNULL,
                    start_new_session=True)
            except (OSError, LookupError, ValueError) as e:
                log.error("respawn %s as %s: cannot start: %s; again in %g s", what, r.user,
                          e, backoff)
            else:
                log.info("respawn: started %s as %s (pid %d)", what, r.user, proc.pid)
                try:
                    rc = await proc.wait()
                except asyncio.CancelledError:
                    await _end(proc)
                    raise
                log.warning("respawn: %s exited (%s); again in %g s", what,
                            f"status {rc}" if rc >= 0 else f"signal {-rc}", backoff)
            if time.monotonic() - t0 > 60:
                backoff = 1.0  # it ran a good while: start afresh
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 60.0)

    # --- the witness ---------------------------------------------------------------------------

    async def _open_witness(self, w: Witness) -> None:
        loop = asyncio.get_running_loop()
        receive = self._witness_reply

        class _Proto(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: object) -> None:
                receive(data)

            def error_received(self, exc: Exception) -> None:
                pass  # an unreachable witness shows as silence, in status and decisions

        try:
            self.witness, _ = await loop.create_datagram_endpoint(
                _Proto, remote_addr=(str(w.address), w.port))
        except OSError as e:
            raise VigilError(f"witness {w.address}:{w.port}: {e.strerror}") from None

    def _ask_witness(self) -> None:
        assert self.node is not None and self.witness is not None
        self._asked = self.node.wanted()
        try:
            self.witness.sendto(self.node.witness_ask(time.monotonic()))
        except OSError:
            pass  # no route to the witness right now: its silence is what counts

    def _witness_reply(self, data: bytes) -> None:
        if self.closing:
            return
        assert self.node is not None
        self._log(self.node.witness_reply(data, time.monotonic()))
        self._process()

    async def _witness_asks(self) -> None:
        while True:
            self._ask_witness()
            await asyncio.sleep(self.cluster.timings.keepalive)

    async def _guard_watch(self) -> None:
        """After a stall the guard may have stopped groups: probe them, never assume. A
        guard that died is replaced at once (and retried every second while that fails).
        One a reload replaced (`_new_guard`) is let go."""
        backoff = 1.0
        while True:
            g = self.guard
            assert g is not None
            born = time.monotonic()
            await self._guard_events(g)
            g.close()
            if self.guard is not g:
                continue  # replaced by a reload: it left on our "bye"
            log.error("the guard process (pid %d) exited: starting a new one", g.pid)
            if time.monotonic() - born < 10.0:  # it dies at once: do not spin on it
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
            else:
                backoff = 1.0
            new = None
            while new is None and self.guard is g:
                try:
                    new = guard_mod.spawn(self._guard_model(), self.me, self.key,
                                          self._watchdog_fd())
                except OSError as e:
                    log.error("cannot start a guard: %s; this node's groups are not stopped "
                              "if the daemon dies; retrying in 1 s", e.strerror or e)
                    await asyncio.sleep(1.0)
            if new is None:
                continue  # a reload started one meanwhile: watch that one
            g = self.guard = new
            self._send_all()  # tell it at once what it guards
            log.warning("new guard started (pid %d)", g.pid)

    async def _guard_events(self, g: guard_mod.GuardLink) -> None:
        assert self.node is not None
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(g.fired_fd, readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                news = g.read_fired()
                if news is None:
                    return
                for name in news.fired:
                    if name not in self.kicks or self.pending[name] or name in self.retiring:
                        continue
                    found = await self._probe_group(self.cluster.group(name))
                    self._log(self.node.reprobed(name, found, "the guard stopped it"))
                if news.left is not None and news.left == self.node.generation:
                    try:  # above this life's even if the wall clock stepped back
                        self.generation = max(self.new_generation(), self.node.generation + 1)
                    except VigilError as e:  # not stored: a restart's wall clock is later
                        log.error("%s", e)
                        self.generation = max(self.node.generation + 1,
                                              int(time.time() * 1000))
                    self._log(self.node.new_life(self.generation, time.monotonic()))
                if news.fired or news.left is not None:
                    self._process()
        finally:
            loop.remove_reader(g.fired_fd)

    async def _group_worker(self, group: Group) -> None:
        assert self.node is not None
        kick = self.kicks[group.name]
        while True:
            await kick.wait()
            kick.clear()
            while self.pending[group.name]:
                act = self.pending[group.name].pop(0)
                t0 = time.monotonic()
                checks = self.checks[group.name]
                for check in checks:
                    check.cancel()
                if checks:
                    await asyncio.wait(checks)
                if isinstance(act, _Replace):
                    await self._replace(act)
                    continue
                if isinstance(act, _Retire):
                    if await self._retire(act.group):
                        return  # forgotten: this worker's job is over
                    continue
                if isinstance(act, Probe):
                    answers = await self._look(group)
                    self._log(self.node.probed_addresses(group.name, answers,
                                                         time.monotonic()))
                    self._process()
                    continue
                if isinstance(act, Start):
                    result, detail = await self._start_group(group)
                elif isinstance(act, Recover):
                    result, detail = await self._recover_group(group, act.index)
                else:
                    result, detail = await self._stop_agents(self.agents[group.name])
                ms = (time.monotonic() - t0) * 1000
                self._log(self.node.finished(group.name, result, detail, ms))
                self._process()

    async def _recover_group(self, group: Group, index: int,
                             new: list[Agent] | None = None) -> tuple[GroupState, str]:
        """Restart resource `index` and the ones after it, as Pacemaker restarts a failed
        resource and what depends on it. If that fails the whole group is stopped. With
        `new` (a reload), the stopped agents are replaced by `new` before the starts; when
        the stop fails, nothing is replaced."""
        agents = self.agents[group.name]
        result, detail = await self._stop_agents(agents[index:])
        if result is GroupState.FAILED:
            return result, detail
        if new is not None:
            agents = self.agents[group.name] = agents[:index] + new
        for agent in agents[index:]:
            error = await self._act(agent, "start")
            if error is not None:
                result, _ = await self._stop_agents(agents)
                return (GroupState.STOPPED if result is GroupState.STOPPED
                        else GroupState.FAILED), error
        return GroupState.RUNNING, ""

    def _start_monitors(self, g: Group) -> None:
        assert self.tg is not None
        self._stop_monitors(g.name)
        self.monitors[g.name] = [
            self.tg.create_task(self._monitor(g, i, r.monitor), name=f"monitor {r.name}")
            for i, r in enumerate(g.resources) if r.monitor is not None]

    def _stop_monitors(self, name: str) -> None:
        for t in self.monitors.pop(name, []):
            t.cancel()

    async def _monitor(self, group: Group, index: int, mon: Monitor) -> None:
        """Check one resource every `mon.interval` while its group runs here."""
        assert self.node is not None
        agent = self.agents[group.name][index]
        while True:
            await asyncio.sleep(mon.interval)
            if self.node.local[group.name] is not GroupState.RUNNING or \
                    self.pending[group.name]:
                continue
            t0 = time.monotonic()
            check = asyncio.create_task(self._check(agent, mon.timeout or
                                                    agent.timeout_for("monitor")))
            self.checks[group.name].add(check)
            try:
                await asyncio.wait({check})  # no exception when the worker cancels it
            finally:
                self.checks[group.name].discard(check)
            if check.cancelled() or self.node.local[group.name] is not GroupState.RUNNING:
                continue  # an action began meanwhile: this result says nothing
            kind, detail = check.result()
            if kind:
                log.error("%s monitor: %s in %.0f ms", agent.name, detail,
                          (time.monotonic() - t0) * 1000)
                self._log(self.node.resource_failed(group.name, index, kind, detail,
                                                    time.monotonic()))
                self._process()

    @staticmethod
    async def _check(agent: Agent, timeout: float) -> tuple[str, str]:
        """One monitor: ("", "") when fine, else the failure's kind and what it said."""
        try:
            async with asyncio.timeout(timeout):
                if not await agent.monitor():
                    return "not_running", "not running"
        except TimeoutError:
            return "soft", f"monitor timed out after {timeout:g} s"
        except asyncio.CancelledError:
            raise
        except Exception as e:  # an agent failure must never take the daemon down
            return getattr(e, "kind", "soft"), str(e) or type(e).__name__
        return "", ""

    async def _start_group(self, group: Group) -> tuple[GroupState, str]:
        agents = self.agents[group.name]
        done = 0
        for batch in _batches(agents):
            errors = [e for e in await asyncio.gather(*(self._act(a, "start") for a in batch))
                      if e is not None]
            done += len(batch)
            if errors:
                # Undo in reverse, the failed ones included (they may be half-started).
                result, _ = await self._stop_agents(agents[:done])
                return (GroupState.STOPPED if result is GroupState.STOPPED
                        else GroupState.FAILED), "; ".join(errors)
        return GroupState.RUNNING, ""

    async def _stop_agents(self, agents: list[Agent]) -> tuple[GroupState, str]:
        errors = []
        for batch in reversed(_batches(agents)):
            # keep stopping the rest after a failure: release as much as we can
            errors += [e for e in await asyncio.gather(*(self._act(a, "stop") for a in batch))
                       if e is not None]
        return (GroupState.FAILED, "; ".join(errors)) if errors else (GroupState.STOPPED, "")

    async def _act(self, agent: Agent, action: str) -> str | None:
        """Run one agent action with its timeout; log one line; return an error or None."""
        t0 = time.monotonic()
        error: str | None
        timeout = agent.timeout_for(action)
        try:
            async with asyncio.timeout(timeout):
                await getattr(agent, action)()
        except TimeoutError:
            error = f"timed out after {timeout:g} s"
        except Exception as e:  # an agent failure must never take the daemon down
            error = str(e) or type(e).__name__
        else:
            error = None
        ms = (time.monotonic() - t0) * 1000
        self.metrics.action(agent.name, action, error is None, ms / 1000)
        if error is None:
            log.info("%s %s: ok in %.0f ms", agent.name, action, ms)
        else:
            log.error("%s %s: failed in %.0f ms: %s", agent.name, action, ms, error)
        return error

    async def _look(self, group: Group) -> list[Result]:
        """Look before taking (lookout.py): probe each of the group's addresses at once,
        `address_probe` long; the ones another host answers for."""
        ips = [a for a in self.agents[group.name] if isinstance(a, IpAgent)]
        t0 = time.monotonic()
        found = await asyncio.gather(*(a.answered(self.cluster.address_probe) for a in ips),
                                     return_exceptions=True)
        answers: list[Result] = []
        for a, got in zip(ips, found):
            ip = str(a.resource.address.ip)
            if isinstance(got, BaseException):  # never silence: the group waits
                answers.append(Unprobed(ip, str(got).removeprefix(f"{a.name}: ")))
            elif got is not None:
                answers.append(Answer(ip, got))
        ms = (time.monotonic() - t0) * 1000
        self.metrics.probe(ms / 1000, bool(answers))
        if not answers:
            log.info("group %s: %s free (nobody answered in %.1f ms)", group.name,
                     ", ".join(str(a.resource.address.ip) for a in ips) or "no address", ms)
        return answers

    async def _probe_group(self, group: Group) -> GroupState:
        """Reconcile at start: what of this group is already here (left by a crash)?"""
        present = []
        for agent in self.agents[group.name]:
            try:
                async with asyncio.timeout(agent.timeout_for("probe")):
                    present.append(await agent.probe())
            except Exception as e:
                log.warning("%s probe failed: %s; treating it as present", agent.name, e)
                present.append(True)
        if any(present):
            log.warning("group %s: found %s already present at start", group.name,
                        ", ".join(a.name for a, p_ in zip(self.agents[group.name], present)
                                  if p_))
            return GroupState.RUNNING
        return GroupState.STOPPED

    # --- control -------------------------------------------------------------------------------

    async def _handle(self, req: p.Request) -> p.Response:
        assert self.node is not None
        if req.cmd == "status":
            return p.Response(True, self.status())
        if self.leaving:
            return p.Response(False, None, p.ErrorCode.REFUSED, "this node is shutting down")
        if req.cmd == "reload":
            return await self.reload()
        if req.cmd == "cleanup":
            return await self._cleanup(req.args.get("group"))
        if req.cmd == "fence_confirm":
            node = str(req.args.get("node", ""))
            error = self.node.fence_confirm(node)
            if error:
                return p.Response(False, None, p.ErrorCode.REFUSED, error)
            log.warning("an operator confirmed that %s is fenced", node)
            self._process()
            return p.Response(True, {"message": f"{node} confirmed fenced; taking over"})
        result = self.node.request(req.cmd, str(req.args.get("which", "all")),
                                   group=str(req.args.get("group", "")),
                                   to=str(req.args.get("to", "")))
        if result.error:
            log.warning("%s refused: %s", req.cmd, result.error)
            return p.Response(False, None, p.ErrorCode.REFUSED, result.error)
        log.info("%s requested: %s", req.cmd, result.message)
        self._process()
        return p.Response(True, {"message": result.message})

    async def _cleanup(self, only: str | None) -> p.Response:
        assert self.node is not None
        groups = list(self.cluster.groups) + list(self.retiring.values())
        names = [g.name for g in groups]
        if only is not None and only not in names:
            return p.Response(False, None, p.ErrorCode.REFUSED,
                              f"no group named {only!r} (groups: {', '.join(names)})")
        done = []
        for g in groups:
            if only is not None and g.name != only or g.name not in self.node.local:
                continue
            if self.node.cleanup(g.name):
                found = await self._probe_group(g)
                self._log(self.node.reprobed(g.name, found))
                done.append(f"{g.name} (probed: {found.value})")
            else:
                done.append(g.name)
            if g.name in self.retiring and g.name in self.pending:  # removed: try again
                self.pending[g.name].append(_Retire(g))
                self.kicks[g.name].set()
        log.info("cleanup requested: %s", ", ".join(done))
        self._process()
        return p.Response(True, {"message": f"cleaned up {', '.join(done)}"})

    def status(self) -> dict[str, Any]:
        assert self.node is not None
        node = self.node
        now = time.monotonic()
        peer = node.membership.view(node.peer)

        def age(t: float | None) -> float | None:
            return None if t is None else round((now - t) * 1000, 1)

        groups = []
        for g in self.cluster.groups:
            a = node.assignments[g.name]
            report = node.report.group(g.name) if node.report else None
            groups.append({
                "name": g.name, "home": g.home, "owner": a.owner, "epoch": a.epoch,
                "state": node.local[g.name].value,
                "peer_state": report.state.value if report and peer.liveness.value == "up"
                else None,
                "eligible": node.eligible[g.name],
                "failed_start": node.fails.failed_start.get(g.name),
                "fail_count": node.fail_count(g.name, now),
                "migration_threshold": g.policy.migration_threshold,
                "banned_s": None if g.name not in node.fails.banned else (
                    "forever" if node.fails.banned[g.name] == float("inf")
                    else round(node.fails.banned[g.name] - now, 1)),
                "waiting": node.waiting.get(g.name),
                "address_check": node.lookout.status(g.name, now),
                "resources": [r.name for r in g.resources],
            })
        running = [g["name"] for g in groups if g["state"] in ("running", "failed")]
        return {
            "cluster": self.cluster.name, "node": self.me, "version": __version__,
            "generation": self.generation, "uptime_s": round(now - self.started_at, 1),
            "status": node.status.value,
            "role": "active" if running else "standby",
            "timings": {k: getattr(self.cluster.timings, k)
                        for k in ("keepalive", "warntime", "deadtime", "initdead")},
            "auto_failback": self.cluster.auto_failback,
            "nodes": [
                {"name": self.me, "self": True, "state": node.status.value},
                {"name": peer.name, "self": False, "state": peer.liveness.value,
                 "generation": peer.generation, "left": peer.left,
                 "partitioned": node.partitioned,
                 "last_heartbeat_ms": age(peer.last),
                 "links": [{"name": l.name, "state": l.status.value, "age_ms": age(l.last),
                            "local_up": l.local_up} for l in peer.links]},
            ],
            "links": [{"name": l.name, "kind": l.kind, "via": l.describe(), "sent": l.sent,
                       "send_errors": l.send_errors} for l in self.links],
            "groups": groups,
            "frames": {"received": node.frames.received, "rejected": dict(node.frames.rejected)},
            "fencing": None if self.cluster.fencing is None else {
                "agent": self.cluster.fencing.agent, "action": self.cluster.fencing.action,
                "on_failure": self.cluster.fencing.on_failure,
                "peer": _value(node.fencing.state), "detail": node.fencing.detail,
                "device": self.fence_check or None},
            "witness": None if node.witness is None or self.cluster.witness is None else {
                "address": f"{self.cluster.witness.address}:{self.cluster.witness.port}",
                "last_reply_ms": age(node.witness.seen),
                "leases_ms": {g: round((t - now) * 1000) for g, t in node.witness.leases.items()
                              if t > now},
                "holders": node.witness.holders},
            "ping": None if self.pinger is None else {
                "nodes": self.pinger.targets, "reachable": node.ping_count,
                "peer": node.report.ping if node.report else None},
            "watchdog": None if self.watchdog is None else {
                "path": str(self.watchdog.path), "timeout_s": self.watchdog.timeout,
                "feeds": self.watchdog.feeds, "errors": self.watchdog.errors},
            "guard": None if self.guard is None else {
                "pid": self.guard.pid, "alive": self.guard.alive(),
                "timeout_ms": round(guard_mod.timeout_for(self.cluster.timings) * 1000)},
        }

    # --- live reload -------------------------------------------------------------------------

    def _reload_on_signal(self) -> None:
        log.info("SIGHUP: reloading the configuration")
        task = asyncio.ensure_future(self.reload())
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def reload(self) -> p.Response:
        """Read the configuration again and apply only the difference (reconfig.py). A bad
        or unsupported one is refused whole, with its reasons, and nothing changes."""
        def refuse(why: str) -> p.Response:
            log.error("reload refused; the running configuration stays: %s", why)
            return p.Response(False, None, p.ErrorCode.REFUSED, why)

        if self.reloader is None:
            return refuse("this daemon was started without a configuration file to re-read")
        if self.leaving:
            return refuse("this node is shutting down")
        async with self.reload_lock:
            assert self.node is not None and self.host is not None
            try:
                new, key = self.reloader()
            except VigilError as e:
                return refuse(str(e))
            plan = reconfig.plan(self.cluster, new)
            if key != self.key:
                plan.refused.append("the cluster key changed")
            if plan.refused:
                return refuse("these changes need a restart of both nodes: "
                              + "; ".join(plan.refused))
            for g in plan.removed + [c.old for c in plan.changed if c.restarts]:
                if self.node.local.get(g.name) is GroupState.FAILED:
                    return refuse(f"group {g.name} failed to stop here: run `vigil resource "
                                  f"cleanup {g.name}` before changing or removing it")
            for g in plan.added:
                if g.name in self.retiring:
                    return refuse(f"group {g.name} is still being removed here (an earlier "
                                  f"reload); reload again once it is gone")
            if plan.empty:
                log.info("reload: the configuration did not change")
                return p.Response(True, {"message": "no change", "changes": []})
            self.notifier.reloading()
            try:
                try:  # everything that can fail, before anything changes
                    built: dict[str, list[Agent]] = {}
                    for g in plan.added:
                        built[g.name] = [build(r, self.host) for r in g.resources]
                    for c in plan.changed:
                        built[c.group.name] = [build(r, self.host)
                                               for r in c.group.resources[c.index:]]
                    for agent in (a for agents in built.values() for a in agents):
                        await agent.prepare()
                except Exception as e:
                    return refuse(f"cannot prepare the new resources: {e}")
                lines = plan.lines()
                for line in lines:
                    log.info("reload: %s", line)
                self._apply(new, plan, built)
                for g in plan.added:  # new groups: probed, then the normal rules
                    found = await self._probe_group(g)
                    self._log(self.node.probed_new(g.name, found))
                self._process()
            finally:  # systemd leaves "reloading" only on READY=1, refused or not
                self.notifier.ready(f"{self.me}: configuration reloaded")
            return p.Response(True, {"message": f"reloaded: {len(lines)} change(s)",
                                     "changes": lines})

    def _apply(self, new: Cluster, plan: reconfig.Plan, built: dict[str, list[Agent]]) -> None:
        """Switch to `new` in one synchronous step; the group workers then do the rest."""
        assert self.node is not None and self.tg is not None
        for g in plan.removed:
            self._stop_monitors(g.name)  # a check must not report on a group now unknown
            self.retiring[g.name] = g
            self.pending[g.name].append(_Retire(g))
            self.kicks[g.name].set()
        self.cluster = new
        self.node.reconfigure(new, [g.name for g in plan.added])
        for c in plan.changed:
            self._stop_monitors(c.group.name)
            self.pending[c.group.name].append(
                _Replace(c.old, c.group, c.index, built[c.group.name], c.restarts))
            self.kicks[c.group.name].set()
        for g in plan.added:
            self.agents[g.name] = built[g.name]
            self.pending[g.name], self.kicks[g.name], self.checks[g.name] = [], asyncio.Event(), set()
            self.tg.create_task(self._group_worker(g), name=f"group {g.name}")
            self._start_monitors(g)
        if self.hooks is not None:
            self.hooks.notify = new.notify or Notify()
        elif new.notify is not None:
            self.hooks = Hooks(new.notify, new.name)
            self.bus.listeners.append(self.hooks.submit)
            self.tg.create_task(self.hooks.run(), name="notify hooks")
        if self.guard is not None:
            self._new_guard()

    def _watchdog_fd(self) -> int | None:
        return None if self.watchdog is None else self.watchdog.fd

    def _guard_model(self) -> Cluster:
        """What the guard must know: every group that may run here, the configured ones and
        the removed ones until they are stopped."""
        return dataclasses.replace(self.cluster, groups=self.cluster.groups +
                                   tuple(self.retiring.values()))

    def _set_definition(self, g: Group) -> None:
        """Put `g` back in the running configuration (a change that could not be applied)."""
        assert self.node is not None
        self.cluster = dataclasses.replace(self.cluster, groups=tuple(
            g if x.name == g.name else x for x in self.cluster.groups))
        self.node.cluster = self.cluster

    def _new_guard(self) -> None:
        try:
            g = guard_mod.spawn(self._guard_model(), self.me, self.key, self._watchdog_fd())
        except OSError as e:
            log.error("reload: cannot start a guard for the new configuration (%s); the old "
                      "one stays, and does not know the added groups", e.strerror or e)
            return
        old, self.guard = self.guard, g
        self._send_all()  # the new guard is fed before the old one leaves
        if old is not None:
            old.bye()
        log.info("reload: new guard started (pid %d)", g.pid)

    async def _replace(self, r: _Replace) -> None:
        """In the group's worker: apply a changed definition. A group running here restarts
        from the first changed resource; a stopped one simply takes the new agents. One
        whose old resources may still be held (a failed stop) keeps its old definition, so
        that a cleanup probes what is really there and a later reload applies the change."""
        assert self.node is not None
        name = r.group.name
        old = self.agents[name]
        state = self.node.local[name]
        if state is GroupState.FAILED:
            log.error("reload: group %s failed to stop here: it keeps its old definition; "
                      "run `vigil resource cleanup %s`, then reload again", name, name)
            self._set_definition(r.old)
            self._start_monitors(r.old)
            return
        if not r.restarts or state is not GroupState.RUNNING:
            self.agents[name] = old[:r.index] + r.agents
            self._start_monitors(r.group)
            return
        t0 = time.monotonic()
        self.node.begin(name, GroupState.STARTING)
        self._process()
        result, detail = await self._recover_group(r.group, r.index, r.agents)
        if self.agents[name] is old:  # the old resources did not stop: nothing replaced
            log.error("reload: group %s: the old resources did not stop; it keeps its old "
                      "definition (clean it up, then reload again)", name)
            self._set_definition(r.old)
            self._start_monitors(r.old)
        else:
            self._start_monitors(r.group)
        self._log(self.node.finished(name, result, detail, (time.monotonic() - t0) * 1000))
        self._process()

    async def _retire(self, g: Group) -> bool:
        """In the group's worker: stop a removed group if it runs here, then forget it.
        False when its stop failed: it stays known (and guarded) until cleaned up."""
        assert self.node is not None
        self._stop_monitors(g.name)
        state = self.node.local.get(g.name)
        if state is GroupState.RUNNING:
            t0 = time.monotonic()
            self.node.begin(g.name, GroupState.STOPPING)
            self._process()
            result, detail = await self._stop_agents(self.agents[g.name])
            self._log(self.node.finished(g.name, result, detail,
                                         (time.monotonic() - t0) * 1000))
            state = result
        if state is GroupState.FAILED:
            log.error("reload: group %s was removed from the configuration but failed to "
                      "stop here: it stays guarded; run `vigil resource cleanup %s`", g.name,
                      g.name)
            self._process()
            return False
        self.retiring.pop(g.name, None)
        self.node.forget(g.name)
        for d in (self.agents, self.pending, self.kicks, self.checks):
            d.pop(g.name, None)
        log.info("reload: group %s removed", g.name)
        self._process()
        return True

    def _snapshot(self) -> events.Snapshot:
        assert self.node is not None
        node = self.node
        peer = node.membership.view(node.peer)
        return events.Snapshot(
            self.me, node.peer, peer.liveness.value,
            tuple((l.name, l.status.value) for l in peer.links),
            tuple((g, st.value) for g, st in node.local.items()),
            _value(node.fencing.state), node.fencing.detail,
            tuple((g.name, why) for g in self.cluster.groups
                  if (why := node.lookout.blocks(g.name)) and "answered" in why))

    def _emit(self) -> None:
        """Publish what changed since the last call; called after every input is processed,
        so each transition is published once (events.py)."""
        now = self._snapshot()
        assert self._seen is not None
        changes = events.diff(self._seen, now)
        self._seen = now
        if changes:
            self.bus.publish(changes)
        if now.peer_state != "unknown" and (changes or not self.ready):
            text = (f"{self.me}: {now.peer} {now.peer_state}; running "
                    f"{', '.join(events.running(now)) or 'nothing'}")
            if not self.ready:
                self.ready = True  # the initial membership is known: systemd may go on
                self.notifier.ready(text)
                if self.notifier.enabled:
                    log.info("told systemd: ready (%s)", text)
            else:
                self.notifier.status(text)

    async def _systemd_watchdog(self) -> None:
        """WATCHDOG=1 from the event loop itself: a loop that hangs stops sending it, and
        systemd restarts the daemon (WatchdogSec=) where no kernel watchdog exists."""
        interval = self.notifier.watchdog_interval()
        assert interval is not None
        log.info("systemd watchdog: a keepalive every %.0f ms", interval * 1000)
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    def _api_server(self) -> Server | None:
        """The HTTP API's server, checked (token file, certificate) but not yet listening."""
        if self.cluster.api is None:
            return None
        from vigil.daemon.api.server import Backend, Server
        return Server(self.cluster.api, Backend(self.status, self._handle, self._metrics_text,
                                                self.bus))

    def _metrics_text(self) -> str:
        h = self.hooks
        return self.metrics.render(self.status(), None if h is None else
                                   (h.calls, h.failures, h.dropped))

    def _log(self, notes: list[Note]) -> None:
        self.notes.write(notes, time.monotonic())


async def _end(proc: asyncio.subprocess.Process) -> None:
    """Stop a respawned program with the daemon: TERM, then KILL after 2 s; reaped."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(2.0):
                await proc.wait()
                return
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    await proc.wait()


def _batches(agents: list[Agent]) -> list[list[Agent]]:
    """The group's agents in order, consecutive addresses together: addresses do not depend
    on one another, so a group of 64 of them moves in the time of a few, not of 64 (each
    is a netlink request and an ARP burst). Everything else stays one at a time, in order."""
    out: list[list[Agent]] = []
    for a in agents:
        if out and isinstance(a, IpAgent) and isinstance(out[-1][0], IpAgent):
            out[-1].append(a)
        else:
            out.append([a])
    return out


def _value(state: FenceState | None) -> str | None:
    return None if state is None else state.value


def _monitored(f: Fencing) -> bool:
    return f.agent not in ("manual", "external", "disk") and f.monitor_interval > 0


def hostname() -> str:
    return socket.gethostname().split(".")[0]
