"""The daemon's life: start-up checks, one TaskGroup for every service, the shutdown order.

Tasks, all in one TaskGroup (none outlives `run`), each owned by a service module:
  announcer        the Announcer's scheduled ARP/NA bursts (resources/announce.py)
  heartbeat        a heartbeat on every link every keepalive, then the health pass
                   (services/timers.py)
  (a timer)        the node's next deadline, re-armed by the hub when it moves (hub.py)
  health           the groups' health checks that need IO (services/health.py)
  group <name>     one per group: its actions, one at a time (services/groups.py)
  monitor <res>    one per monitored resource (services/monitors.py)
  control, api     the UNIX control socket and the HTTP API (services/control.py answers)
  notify hooks     the [notify] programs (daemon/hooks.py)
  systemd watchdog WATCHDOG=1 from the loop (services/timers.py)
  guard            the guard process's news; a new guard if it dies (services/guard_watch.py)
  fencing, fence monitor  (services/fencing.py)
  ping             ICMP echo to the ping nodes (daemon/ping.py)
  witness          an ask every keepalive (services/witness_client.py)
  respawn <prog>   Heartbeat's respawn programs (services/respawn.py)
  balancer         the real servers' checks, and the applier of the ruleset while this node
                   runs a virtual server's group (balancer/service.py; its rules go in as the
                   group's first step, balancer/agent.py)
  reload           one per SIGHUP (services/reload.py)
  shutdown         on SIGTERM/SIGINT or a poison pill: release everything, say goodbye,
                   end the TaskGroup (here)

Every input reaches the sans-IO node through the hub (daemon/hub.py), synchronously.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from vigil import __version__
from vigil.balancer import checks, ctsync_run
from vigil.balancer.agent import BalancerAgent
from vigil.balancer.director import Key
from vigil.balancer.health import Change as HealthChange
from vigil.balancer.service import Balancer
from vigil.control import protocol as p
from vigil.core.node import Node
from vigil.daemon import control_server, disk as disk_mod, guard as guard_mod, \
    links as links_mod, realtime
from vigil.daemon.bus import Bus
from vigil.daemon.hooks import Hooks
from vigil.daemon.hub import Hub, Shared
from vigil.events import Change
from vigil.daemon.metrics import Metrics
from vigil.daemon.ping import Pinger
from vigil.daemon.sdnotify import Notifier
from vigil.daemon.services import replicas, timers
from vigil.daemon.services.control import Control
from vigil.daemon.services.fencing import Fencer
from vigil.daemon.services.groups import GroupWorkers, probe
from vigil.daemon.services.guard_watch import GuardWatch
from vigil.daemon.services.health import Health
from vigil.daemon.services.monitors import Monitors
from vigil.daemon.services.reload import Reload, Reloader
from vigil.daemon.services.respawn import respawn
from vigil.daemon.services.status import Status
from vigil.daemon.services.witness_client import WitnessLink
from vigil.daemon.watchdog import Watchdog
from vigil.model import Cluster, Notify, config_warnings
from vigil.policy import Action
from vigil.replica.model import PostgresqlResource
from vigil.resources import build
from vigil.resources.base import Agent
from vigil.resources.host import Host
from vigil.wire.messages import GroupState

if TYPE_CHECKING:
    from vigil.daemon.api.server import Server

log = logging.getLogger(__name__)

GOODBYES = 3  # the last frames of a clean shutdown, on every link


class _Shutdown(Exception):
    """Raised inside the TaskGroup to end it once the node has left cleanly."""


class _Outlets:
    """The hub's outlets (hub.Outlets), wired to the services."""

    def __init__(self, workers: GroupWorkers, witness: WitnessLink | None,
                 fencer: Fencer | None) -> None:
        self.workers, self.witness, self.fencer = workers, witness, fencer

    def submit(self, action: Action) -> None:
        self.workers.submit(action)

    def busy(self) -> bool:
        return self.workers.busy()

    def ask_witness(self, force: bool) -> None:
        if self.witness is not None:
            self.witness.ask(force)

    def kick_fencing(self) -> None:
        if self.fencer is not None:
            self.fencer.kick.set()


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
        self.new_generation = new_generation
        self.socket_path = socket_path
        self.realtime = cluster.realtime if realtime_enabled is None else realtime_enabled
        self.reloader = reloader
        self.unsafe = unsafe  # the torture test's broken build (policy View.skip_release_wait)
        self._guard = guard_link
        self._watchdog = watchdog  # opened by main.py, before the guard that shares it
        self.hub: Hub | None = None
        self.stop_asked = asyncio.Event()
        self.started_at = time.monotonic()
        # Transitions (events.py): numbered on the bus, counted in the metrics, handed to the
        # notify hooks and the API's event streams.
        self.bus = Bus(me)
        self.metrics = Metrics()
        self.bus.listeners.append(self.metrics.event)
        self.hooks = Hooks(cluster.notify, cluster.name) if cluster.notify else None
        if self.hooks is not None:
            self.bus.listeners.append(self.hooks.submit)
        self.tg: asyncio.TaskGroup | None = None
        self.balancer: Balancer | None = None
        self.keepers: dict[str, replicas.Keeper] = {}  # of the promotable groups' instances
        self.control: Control | None = None  # the services the API calls, once running
        self.status: Status | None = None
        # systemd (Type=notify): READY=1 once the first membership is known, then status
        # lines, WATCHDOG=1 from the event loop, STOPPING=1 at shutdown. No-op elsewhere.
        self.notifier = Notifier.from_env()

    @property
    def node(self) -> Node | None:
        return None if self.hub is None else self.hub.node

    @property
    def guard(self) -> guard_mod.GuardLink | None:
        return self._guard if self.hub is None else self.hub.guard

    # --- life cycle --------------------------------------------------------------------------

    async def run(self) -> None:
        # Everything that can be refused is checked before anything is written or bound.
        async with Host.open() as host:
            links = await links_mod.plan(self.cluster, self.me, host)
            try:
                api = self._api_server()
                sock = control_server.bind(self.socket_path)
            except BaseException:
                self.disarm()  # refusing to start is no reason to reset the node
                raise
            hub: Hub | None = None
            witness: WitnessLink | None = None
            try:
                generation = self.new_generation()
                sync = self.cluster.conntrack_sync
                conntrack = ctsync_run.for_node(
                    self.cluster, self.me,
                    self.socket_path.with_name(self.socket_path.stem + ".conntrackd"),
                    # the unicast links come first, one per address, named for their device
                    None if sync is None else links[sync.link].name)
                balancer = self.balancer = Balancer(self.cluster.virtual_servers,
                                                    on_change=self._real_server,
                                                    conntrack=conntrack)
                keepers = self.keepers = replicas.keepers(self.cluster, self.me)
                agents = {g.name: [keepers[g.name].agent() if isinstance(r, PostgresqlResource)
                                   else build(r, host) for r in g.resources]
                          for g in self.cluster.groups}
                for agent in (a for group in agents.values() for a in group):
                    await agent.prepare()  # OCF meta-data: the timeouts of every action

                def preludes(group: str) -> list[Agent]:  # before each group's resources
                    return [BalancerAgent(balancer, group)]

                probed = {g.name: await probe(g, preludes(g.name), agents[g.name])
                          for g in self.cluster.groups}
                found = {g: state for g, (state, _) in probed.items()}
                partly = {g: i for g, (_, i) in probed.items() if i is not None}
                now = time.monotonic()
                node = Node(self.cluster, self.me, self.key, generation,
                            [l.name for l in links], now,
                            [l.index for l in links if l.kind == "disk"],
                            [l.index for l in links if l.kind == "serial"],
                            skip_release_wait=self.unsafe)
                shared = Shared(self.cluster, self.me, self.key, host, links)
                hub = self.hub = Hub(shared, node, self.bus, self.metrics, self.notifier,
                                     self._guard, self._watchdog)
                for keeper in keepers.values():
                    keeper.hub = hub
                    hub.after_step.append(keeper.poke)
                workers = GroupWorkers(hub, agents, preludes)
                monitors = Monitors(hub, workers)
                fencer = Fencer(hub, self.cluster.fencing) if self.cluster.fencing else None
                witness = WitnessLink(hub) if self.cluster.witness is not None else None
                hub.outlets = _Outlets(workers, witness, fencer)
                guard = GuardWatch(hub, workers, self.new_generation) if self._guard else None
                reload = Reload(hub, workers, monitors, guard, self.reloader, self._follow)
                pinger = (Pinger(self.cluster.ping, self.cluster.ping_interval,
                                 self.cluster.deadping) if self.cluster.ping else None)
                status = Status(hub, self.started_at, pinger,
                                lambda: fencer.check if fencer is not None else {},
                                lambda: self.hooks, balancer,
                                lambda g: k.disk if (k := self.keepers.get(g)) else None)
                self.control = Control(hub, workers, reload, status.status, balancer)
                self.status = status
                hub.log(node.probed(found, partly))
                hub.emit()
                for link in links:
                    if isinstance(link, disk_mod.DiskLink):
                        await link.open(hub.receive, self._mail)
                    else:
                        await link.open(hub.receive)  # type: ignore[attr-defined]
                if witness is not None and self.cluster.witness is not None:
                    await witness.open(self.cluster.witness)
                http = await api.start() if api is not None else None
                log.info("vigil %s started: node %s, cluster %s, generation %d, links %s",
                         __version__, self.me, self.cluster.name, generation,
                         ", ".join(f"{l.name} ({l.describe()})" for l in links))
                for warning in config_warnings(self.cluster):
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
                        self.tg = monitors.tg = reload.tg = tg
                        tg.create_task(host.announcer.run(), name="announcer")
                        checks = Health(hub, workers, pinger)
                        tg.create_task(timers.Beat(hub, checks).run(), name="heartbeat")
                        tg.create_task(checks.run(), name="health")
                        for g in self.cluster.groups:
                            tg.create_task(workers.run(g), name=f"group {g.name}")
                            monitors.start(g)
                        loop = asyncio.get_running_loop()
                        loop.add_signal_handler(signal.SIGHUP, reload.on_signal)
                        tg.create_task(control_server.serve(sock, self.control.handle),
                                       name="control")
                        if api is not None and http is not None:
                            tg.create_task(api.serve(http), name="api")
                        if self.hooks is not None:
                            tg.create_task(self.hooks.run(), name="notify hooks")
                        if self.notifier.watchdog_interval() is not None:
                            tg.create_task(timers.systemd_watchdog(hub),
                                           name="systemd watchdog")
                        tg.create_task(self._shutdown_on_signal(hub), name="shutdown")
                        if guard is not None:
                            tg.create_task(guard.run(), name="guard")
                        if fencer is not None:
                            tg.create_task(fencer.run(), name="fencing")
                            if fencer.monitored():
                                tg.create_task(fencer.monitor(), name="fence monitor")
                        if pinger is not None:
                            tg.create_task(pinger.run(), name="ping")
                        if witness is not None:
                            tg.create_task(witness.run(), name="witness")
                        tg.create_task(balancer.run(), name="balancer")
                        for name, keeper in keepers.items():
                            tg.create_task(keeper.run(), name=f"replica {name}")
                        for prog in self.cluster.respawn:
                            tg.create_task(respawn(prog), name=f"respawn {prog.argv[0]}")
                        hub.process()
                except* _Shutdown:
                    pass
            finally:
                # Callbacks of transports still open must not act on closed ones (a witness
                # reply after the links closed once raised in its callback: torture soak).
                if hub is not None:
                    hub.close()
                if witness is not None:
                    witness.close()
                for l in links:
                    l.close()
                sock.close()
                self.socket_path.unlink(missing_ok=True)
                self.disarm()
                log.info("vigil stopped")

    def disarm(self) -> None:
        """Any exit that passes through Python disarms the watchdog: the guard covers what
        was running. Only a hang or a kill -9 leaves it armed, which is its job."""
        w = self._watchdog
        if w is not None:
            w.close()
            self._watchdog = None
            if self.hub is not None:
                self.hub.watchdog = None

    async def _shutdown_on_signal(self, hub: Hub) -> None:
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
        node = hub.node
        hub.leaving = True
        node.leave()
        hub.process()
        await hub.quiet.wait()
        await self._close_replicas()
        assert hub.outlets is not None
        hub.outlets.ask_witness(True)  # holding nothing now: the witness frees our leases
        for _ in range(GOODBYES):
            hub.send_all()
            await asyncio.sleep(0.005)
        if self.hooks is not None:  # the last transitions (groups stopped) reach the hooks
            await self.hooks.drain(min(self.hooks.notify.timeout * 2, 30.0))
        failed = [g for g, st in node.local.items() if st is GroupState.FAILED]
        if failed:
            # No goodbye to the guard: at our exit it tries to stop them once more.
            log.error("goodbye sent to %s; %s failed to stop and may still hold resources "
                      "here; the guard tries once more", node.peer, ", ".join(failed))
        else:
            log.info("all groups released; goodbye sent to %s", node.peer)
            if hub.guard is not None:
                hub.guard.bye()
        raise _Shutdown

    async def _close_replicas(self) -> None:
        for keeper in self.keepers.values():
            try:
                async with asyncio.timeout(keeper.resource.timeout):
                    await keeper.close()
            except Exception as e:  # the goodbye must still go out
                log.error("%s: stopping the standby: %s", keeper.resource.name,
                          e or type(e).__name__)

    def _mail(self, data: bytes) -> None:
        assert self.hub is not None
        self.hub.mail(data, self._poisoned)

    def _poisoned(self) -> None:
        if not self.stop_asked.is_set():
            self.stop_asked.set()  # releases everything through the clean shutdown path

    def _follow(self, new: Cluster) -> None:
        """A reload's new configuration: the hooks and the balancer follow it."""
        self._set_notify(new.notify)
        if self.balancer is not None:
            self.balancer.reconfigure(new.virtual_servers)

    def _real_server(self, key: Key, change: HealthChange, result: checks.Result) -> None:
        """The balancer's health changes, as events."""
        self.bus.publish([Change(f"real_server_{change}", f"{key[0]} {key[1]}", result.why)])

    def _set_notify(self, notify: Notify | None) -> None:
        """A reload's [notify]: the hooks follow it (started if there were none)."""
        if self.hooks is not None:
            self.hooks.notify = notify or Notify()
        elif notify is not None:
            assert self.tg is not None
            self.hooks = Hooks(notify, self.cluster.name)
            self.bus.listeners.append(self.hooks.submit)
            self.tg.create_task(self.hooks.run(), name="notify hooks")

    def _api_server(self) -> Server | None:
        """The HTTP API's server, checked (token file, certificate) but not yet listening."""
        if self.cluster.api is None:
            return None
        from vigil.daemon.api.server import Backend, Server
        return Server(self.cluster.api, Backend(self._status, self._handle, self._metrics,
                                                self.bus))

    def _status(self) -> dict[str, Any]:
        assert self.status is not None
        return self.status.status()

    async def _handle(self, req: p.Request) -> p.Response:
        assert self.control is not None
        return await self.control.handle(req)

    def _metrics(self) -> str:
        assert self.status is not None
        return self.status.metrics_text()
