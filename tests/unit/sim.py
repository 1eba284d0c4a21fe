"""A two-node cluster on a fake network and a fake clock, driving the real `vigil.core.node.Node`.

Like h11's ConnectionPair: the daemon's sockets, timers and agents are replaced by a message
queue, a clock the test advances, and agents whose actions take a chosen time and may fail.
Everything random comes from one `random.Random(seed)`, so a failing case replays exactly.
"""

from __future__ import annotations

import heapq
import ipaddress
import random
from dataclasses import dataclass, field

from vigil.arbiter import Arbiter
from vigil.core.lookout import Answer
from vigil.model import (Cluster, ExecResource, Group, IpResource, Node as NodeModel, Timings,
                         Witness, witness_lease)
from vigil.core.goodbye import goodbye_frames
from vigil.core.node import Node
from vigil.policy import Probe, Recover, Start, Stop
from vigil.wire.messages import ACTIVE_STATES, GroupState

KEY = b"k" * 32
LINKS = ("eth0", "eth1")


def make_cluster(groups: int = 2, auto_failback: bool = True,
                 timings: Timings = Timings(0.2, 0.5, 1.0, 3.0),
                 witness: Witness | None = None, addresses: bool = False) -> Cluster:
    """`addresses`: each group starts with a floating address (a takeover looks first)."""
    nodes = tuple(
        NodeModel(n, (ipaddress.ip_address(f"10.0.0.{i}"), ipaddress.ip_address(f"10.0.1.{i}")))
        for i, n in ((1, "n1"), (2, "n2"))
    )
    gs = tuple(
        Group(f"g{i}", "n1" if i % 2 else "n2",
              ((IpResource(ipaddress.ip_interface(f"10.0.9.{i}/24"), "eth9"),)
               if addresses else ()) + (ExecResource(("/bin/true",), ("/bin/true",)),))
        for i in range(1, groups + 1)
    )
    return Cluster("sim", __import__("pathlib").Path("/dev/null"), nodes, gs, timings,
                   auto_failback=auto_failback, witness=witness)


@dataclass(order=True)
class _Msg:
    at: float
    order: int
    dst: str = field(compare=False)
    link: int = field(compare=False)
    data: bytes = field(compare=False)
    src: str = field(default="", compare=False)


@dataclass
class _Job:
    at: float
    group: str
    ok: bool
    probe: bool = False  # a Probe: asks the network who answers the group's addresses


class Sim:
    def __init__(self, seed: int, cluster: Cluster | None = None, *, loss: float = 0.0,
                 max_delay: float = 0.005, dup: float = 0.0, fail_start: float = 0.0,
                 fail_stop: float = 0.0, action_time: float = 0.02) -> None:
        self.rng = random.Random(seed)
        self.cluster = cluster or make_cluster()
        self.now = 100.0
        self.loss, self.max_delay, self.dup = loss, max_delay, dup
        self.fail_start, self.fail_stop, self.action_time = fail_start, fail_stop, action_time
        self.cut: set[tuple[str, int]] = set()  # (dst, link) pairs that drop everything
        self.queue: list[_Msg] = []
        self._order = 0
        self.nodes: dict[str, Node] = {}
        self.jobs: dict[str, list[_Job]] = {}
        self.next_hb: dict[str, float] = {}
        self.generation = 1
        self.log: list[str] = []
        self.violations: list[str] = []
        self.partitioned_ever = False
        self.frozen: set[str] = set()  # nodes whose daemon is stopped (SIGSTOP)
        self.backlog: dict[str, list[_Msg]] = {}  # what queued in a frozen node's sockets
        # Groups a frozen node's guard stopped: the daemon believes them active until it
        # hears the guard's news (thaw), but nothing runs there.
        self.guard_stopped: dict[str, set[str]] = {}
        self.start_log: list[tuple[float, str, str]] = []  # (time, node, group) of each Start
        self.starts: dict[str, int] = {}
        self.stops: dict[str, int] = {}
        self.recovers: dict[str, int] = {}
        # The witness (when the cluster has one): nodes cut from it, both ways.
        self.witness: Arbiter | None = None
        self.witness_cut: set[str] = set()
        self.asked: dict[str, tuple[str, ...]] = {}
        self.strict = self.cluster.witness is not None  # check() even through partitions
        # The replay attacker (issue 12): every frame ever sent on a link, lost or not, as
        # (destination, link, bytes); `replay` sends any of them again at any moment. And
        # when each node died, for the check that no frame makes a dead node look alive.
        self.captured: list[tuple[str, int, bytes]] = []
        self.replayed = 0
        # It relays across cuts and loss too (the strongest attacker: one on both sides of a
        # partition); False: what it sends crosses the network as any frame does.
        self.attacker_crosses_cuts = True
        self.died: dict[str, float] = {}
        # Hosts whose every vigil process died at once: what they ran stays held there (its
        # addresses answer) until the host is reset (the watchdog). `public_cut`: probes of
        # addresses hear nothing (the client network is down too).
        self.held_by_dead: dict[str, set[str]] = {}
        self.public_cut = False
        self.probes = 0
        if self.cluster.witness is not None:
            self.restart_witness()
        for name in ("n1", "n2"):
            self.boot(name)

    # --- node life -------------------------------------------------------------------------

    def boot(self, name: str, found: dict[str, GroupState] | None = None,
             partly: dict[str, int] | None = None) -> Node:
        """`partly`: groups found only in part, and their first resource absent."""
        self.generation += 1
        node = Node(self.cluster, name, KEY, self.generation, LINKS, self.now)
        self.died.pop(name, None)
        self.log += [f"{self.now:.3f} {name}: {n.text}" for n in node.probed(
            found or {g.name: GroupState.STOPPED for g in self.cluster.groups}, partly)]
        self.nodes[name] = node
        self.jobs[name] = []
        self.next_hb[name] = self.now + self.rng.uniform(0, 0.2)
        self._step(name)
        return node

    def crash(self, name: str, held: bool = False) -> dict[str, GroupState]:
        """The daemon dies; what it ran stays (as after kill -9). Returns what a restart finds.
        `held`: and nothing stops it (its guard died too): it stays held on that host, its
        addresses answering, until `reset`."""
        node = self.nodes.pop(name)
        self.jobs.pop(name)
        self.next_hb.pop(name)
        self.died[name] = self.now
        if held:
            self.held_by_dead[name] = {g for g, s in node.local.items()
                                       if s in ACTIVE_STATES or s is GroupState.FAILED}
        return {g: (GroupState.RUNNING if s in ACTIVE_STATES else GroupState.STOPPED)
                for g, s in node.local.items()}

    def reset(self, name: str) -> None:
        """The dead host's watchdog fired: it rebooted, nothing of it runs any more."""
        self.held_by_dead.pop(name, None)

    def holders(self, group: str) -> list[str]:
        """Every host where `group` really is active: live nodes and dead hosts holding it."""
        return [n for n in self.nodes if self.active(n, group)] + \
            [n for n, held in self.held_by_dead.items() if group in held]

    def guard_goodbye(self, name: str, stalled: bool) -> tuple[int, dict[str, GroupState]]:
        """The guard's work once `name`'s daemon died (kill -9) or stalled past the guard's
        timeout: every active group stopped, then goodbye said for it (core/goodbye.py,
        from the report of its last heartbeat) to the witness and on each link, each frame
        subject to cuts and loss. Returns the generation said goodbye for, and what a
        restart finds."""
        node = self.nodes[name]
        held = node.active_groups()
        gen = node.generation
        made = goodbye_frames(self.cluster, name, KEY, gen, node.frames.seq,
                              node.sent_report, held, range(len(LINKS)))
        if stalled:
            self.guard_stopped[name] = set(held)
        else:
            self.crash(name)
        if made is not None:
            ask, frames = made
            dst = "n2" if name == "n1" else "n1"
            if self.witness is not None and name not in self.witness_cut and \
                    self.rng.random() >= self.loss:
                self._order += 1  # the reply goes to the guard's own socket: nobody reads it
                heapq.heappush(self.queue, _Msg(self.now + self.rng.uniform(0, self.max_delay),
                                                self._order, "witness", -1, ask, f"guard {name}"))
            for link, data in enumerate(frames):
                self.captured.append((dst, link, data))
                if (dst, link) in self.cut or self.rng.random() < self.loss:
                    continue
                self._order += 1
                heapq.heappush(self.queue, _Msg(self.now + self.rng.uniform(0, self.max_delay),
                                                self._order, dst, link, data))
            self.log.append(f"{self.now:.3f} {name}: guard said goodbye for generation {gen}")
        return (gen if made is not None else 0), {g.name: GroupState.STOPPED
                                                  for g in self.cluster.groups}

    def restart_witness(self) -> None:
        assert self.cluster.witness is not None
        self.generation += 1
        self.witness = Arbiter(self.cluster.name, ("n1", "n2"),
                               tuple(g.name for g in self.cluster.groups), KEY,
                               self.cluster.witness.name, witness_lease(self.cluster),
                               self.generation, self.now)

    def ask_witness(self, src: str) -> None:
        node = self.nodes[src]
        self.asked[src] = node.side.wanted()
        data = node.side.witness_ask(self.now)
        if src in self.witness_cut or self.rng.random() < self.loss:
            return
        self._order += 1
        at = self.now + self.rng.uniform(0, self.max_delay)
        heapq.heappush(self.queue, _Msg(at, self._order, "witness", -1, data, src))

    def _to_witness(self, m: _Msg) -> None:
        assert self.witness is not None
        src = m.src
        reply, _ = self.witness.receive(m.data, self.now)
        if reply is None or src in self.witness_cut or self.rng.random() < self.loss:
            return
        self._order += 1
        at = self.now + self.rng.uniform(0, self.max_delay)
        heapq.heappush(self.queue, _Msg(at, self._order, src, -1, reply))

    # --- the world -------------------------------------------------------------------------

    def send_all(self, src: str) -> None:
        node = self.nodes[src]
        dst = "n2" if src == "n1" else "n1"
        for link in range(len(LINKS)):
            data = node.frame(link, self.now)
            self.captured.append((dst, link, data))
            copies = 1 + (self.rng.random() < self.dup)
            for _ in range(copies):
                if (dst, link) in self.cut or self.rng.random() < self.loss:
                    continue
                self._order += 1
                at = self.now + self.rng.uniform(0, self.max_delay)
                heapq.heappush(self.queue, _Msg(at, self._order, dst, link, data))

    def act(self, fault: tuple[object, ...]) -> bool:
        """The faults several property tests draw: ("cut", one_way) cuts every heartbeat
        link (or, one way, those into n2), ("heal",) undoes it, ("standby" | "takeover",
        node) asks a node. False when `fault` is none of them."""
        match fault:
            case ("cut", one_way):
                self.cut = {("n2", 0), ("n2", 1)} if one_way else {
                    (n, i) for n in ("n1", "n2") for i in range(len(LINKS))}
            case ("heal",):
                self.cut.clear()
            case (what, str(name)) if what in ("standby", "takeover"):
                self.request(name, str(what))
            case _:
                return False
        return True

    def replay(self, count: int, to: str | None = None) -> None:
        """The attacker sends `count` frames it saw at any time (lost ones included: it
        sits on the wire), each to its own destination (or to `to`, own frames included) on
        any link, now (see `attacker_crosses_cuts`)."""
        for _ in range(min(count, len(self.captured)) if self.captured else 0):
            dst, _, data = self.rng.choice(self.captured)
            dst, link = to or dst, self.rng.randrange(len(LINKS))
            if not self.attacker_crosses_cuts and (
                    (dst, link) in self.cut or self.rng.random() < self.loss):
                continue
            self._order += 1
            self.replayed += 1
            heapq.heappush(self.queue, _Msg(self.now + self.rng.uniform(0, self.max_delay),
                                            self._order, dst, link, data))

    def _step(self, name: str) -> None:
        node = self.nodes[name]
        out = node.step(self.now)
        stopped = self.guard_stopped.get(name, set())
        for g in list(stopped):  # settled, or started afresh: as the daemon says from now on
            if node.local[g] not in (GroupState.RUNNING, GroupState.STOPPING):
                stopped.discard(g)
        self.log += [f"{self.now:.3f} {name}: {n.text}" for n in out.notes]
        for act in out.actions:
            if isinstance(act, Probe):  # answered by whatever else holds it, a moment later
                self.probes += 1
                self.jobs[name].append(_Job(self.now + self.rng.uniform(0.001, 0.012),
                                            act.group, True, probe=True))
                continue
            if isinstance(act, Recover):  # restarted in place: the group stays ours
                ok = self.rng.random() >= self.fail_start
                self.recovers[act.group] = self.recovers.get(act.group, 0) + 1
            elif isinstance(act, Start):
                self._check_start(name, act.group)
                self.start_log.append((self.now, name, act.group))
                ok = self.rng.random() >= self.fail_start
                self.starts[act.group] = self.starts.get(act.group, 0) + 1
            else:
                assert isinstance(act, Stop)
                ok = self.rng.random() >= self.fail_stop
                self.stops[act.group] = self.stops.get(act.group, 0) + 1
            at = self.now + self.rng.uniform(0.001, self.action_time)
            self.jobs[name].append(_Job(at, act.group, ok))
        if out.send:
            self.send_all(name)
        if self.witness is not None and node.side.wanted() != self.asked.get(name):
            self.ask_witness(name)  # as the daemon does: at once when the wish changed
        self.check()

    def _connected(self) -> bool:
        if len(self.nodes) < 2:
            return False
        return all(n.membership.view(n.peer).liveness.value == "up" for n in self.nodes.values())

    def _check_start(self, name: str, group: str) -> None:
        """Safety at the moment of a start: never on top of the peer while both see each other
        up. (After one declared the other dead, issue 3's fencing/witness decide.)"""
        other = "n2" if name == "n1" else "n1"
        if self._connected() and self.active(other, group):
            self.violations.append(f"{self.now:.3f} {name} started {group} while {other} has it "
                                   f"{self.nodes[other].local[group].value}")

    def check(self) -> None:
        """Safety, continuously: never a group active on both while they can talk, as long as
        neither ever declared the other dead (a partition can leave a double owner, which the
        heal then resolves; _check_start covers that part). And whatever was replayed, a
        node that died is counted dead by its peer once deadtime (and the most a frame may
        have been delayed, session.py's max_age) has passed."""
        t = self.cluster.timings
        for name, node in self.nodes.items():
            died = self.died.get(node.peer)
            if died is not None and self.now > died + t.deadtime + t.deadtime / 2 + \
                    2 * self.max_delay and node.membership.view(node.peer).liveness.value == "up":
                self.violations.append(f"{self.now:.3f} {name} counts {node.peer} up, dead "
                                       f"since {died:.3f}")
        if len(self.nodes) < 2:
            return
        if not self._connected() and not self.strict:
            self.partitioned_ever = True
            return
        if self.partitioned_ever:
            return
        n1, n2 = self.nodes["n1"], self.nodes["n2"]
        for g in self.cluster.groups:
            if self.active("n1", g.name) and self.active("n2", g.name):
                self.violations.append(f"{self.now:.3f} group {g.name} active on both: "
                                       f"{n1.local[g.name].value}/{n2.local[g.name].value}")

    def active(self, name: str, group: str) -> bool:
        """Is `group` really active on `name`? What the daemon believes, except a group its
        guard stopped: running or being stopped there, nothing of it runs."""
        st = self.nodes[name].local[group]
        if group in self.guard_stopped.get(name, ()):
            assert st in (GroupState.RUNNING, GroupState.STOPPING)
            return False
        return st in ACTIVE_STATES

    def _next_event(self) -> float:
        times = [self.queue[0].at] if self.queue else []
        for name, node in self.nodes.items():
            if name in self.frozen:
                continue
            due = node.next_deadline()
            if due is not None:
                times.append(due)
            times += [j.at for j in self.jobs[name]]
            times.append(self.next_hb[name])
        return min(times, default=float("inf"))  # nothing at all happens with no node up

    def run(self, duration: float) -> None:
        """Advance the clock by `duration`, jumping from one event to the next."""
        end = self.now + duration
        while True:
            t = max(self._next_event(), self.now)
            if t > end:
                self.now = end
                return
            self.now = t
            while self.queue and self.queue[0].at <= self.now:
                m = heapq.heappop(self.queue)
                if m.dst == "witness":
                    self._to_witness(m)
                elif m.dst in self.frozen:
                    self.backlog.setdefault(m.dst, []).append(m)
                elif m.dst in self.nodes and m.link == -1:
                    node = self.nodes[m.dst]
                    self.log += [f"{self.now:.3f} {m.dst}: {n.text}"
                                 for n in node.side.witness_reply(m.data, self.now)]
                    self._step(m.dst)
                elif m.dst in self.nodes:
                    node = self.nodes[m.dst]
                    self.log += [f"{self.now:.3f} {m.dst}: {n.text}"
                                 for n in node.receive(m.data, m.link, self.now)]
                    self._step(m.dst)
            for name in list(self.nodes):
                if name in self.frozen:
                    continue
                node = self.nodes[name]
                due = node.next_deadline()
                if due is not None and due <= self.now:
                    self.log += [f"{self.now:.3f} {name}: {n.text}" for n in node.tick(self.now)]
                    self._step(name)
                for job in [j for j in self.jobs[name] if j.at <= self.now]:
                    self.jobs[name].remove(job)
                    if job.probe:
                        self.log += [f"{self.now:.3f} {name}: {n.text}" for n in
                                     node.side.probed_addresses(job.group, self._answers(
                                         name, job.group), self.now)]
                    else:
                        self.log += [f"{self.now:.3f} {name}: {n.text}" for n in node.finished(
                            job.group, self._result(node, job), "simulated failure")]
                    self._step(name)
                if self.next_hb[name] <= self.now:
                    self.next_hb[name] = self.now + self.cluster.timings.keepalive
                    self.send_all(name)
                    if self.witness is not None:
                        self.ask_witness(name)

    def freeze(self, name: str) -> None:
        self.frozen.add(name)

    def thaw(self, name: str, guard_stopped: list[str], tick_first: bool,
             left: int = 0) -> None:
        """SIGCONT: the queued frames, the overdue timers and the guard's news arrive in an
        order nobody fixes; the guard's news is placed at a random point among them.
        `left`: the guard said goodbye for this generation (the daemon starts a new one)."""
        self.frozen.discard(name)
        node = self.nodes[name]
        backlog = self.backlog.pop(name, [])
        where = self.rng.randint(0, len(backlog))
        if tick_first:
            self.log += [f"{self.now:.3f} {name}: {n.text}" for n in node.tick(self.now)]
            self._step(name)
        for i in range(len(backlog) + 1):
            if i == where:
                for g in guard_stopped:
                    node.reprobed(g, GroupState.STOPPED, "the guard stopped it")
                if left and left == node.generation:
                    self.generation += 1
                    self.log += [f"{self.now:.3f} {name}: {n.text}"
                                 for n in node.new_life(self.generation, self.now)]
                self._step(name)
            if i < len(backlog):
                m = backlog[i]
                self.log += [f"{self.now:.3f} {name}: {n.text}"
                             for n in node.receive(m.data, m.link, self.now)]
                self._step(name)
        self.next_hb[name] = self.now

    def _answers(self, prober: str, group: str) -> tuple[Answer, ...]:
        """Who answers `group`'s addresses for `prober`: any other host where it is active
        (a live node running or starting it, a dead host still holding it)."""
        if self.public_cut:
            return ()
        others = [h for h in self.holders(group) if h != prober]
        g = self.cluster.group(group)
        return tuple(Answer(str(r.address.ip), f"02:00:00:00:00:0{others[0][-1]}")
                     for r in g.resources if isinstance(r, IpResource)) if others else ()

    @staticmethod
    def _result(node: Node, job: _Job) -> GroupState:
        starting = node.local[job.group] is GroupState.STARTING
        if job.ok:
            return GroupState.RUNNING if starting else GroupState.STOPPED
        return GroupState.STOPPED if starting else GroupState.FAILED

    def request(self, name: str, what: str, group: str = "", to: str = "") -> None:
        if name in self.nodes:
            self.nodes[name].request(what, group=group, to=to)
            self._step(name)

    def set_eligible(self, name: str, group: str, ok: bool) -> None:
        if name in self.nodes:
            self.nodes[name].set_eligible(group, ok)
            self._step(name)

    def fail(self, name: str, group: str, kind: str = "not_running", index: int = 0) -> None:
        """A monitor of `group`'s resource `index` on `name` failed."""
        self.log += [f"{self.now:.3f} {name}: {n.text}" for n in
                     self.nodes[name].resource_failed(group, index, kind, "simulated",
                                                      self.now)]
        self._step(name)

    def runners(self, group: str) -> list[str]:
        return [n for n, node in self.nodes.items() if node.local[group] is GroupState.RUNNING]
