"""The typed description of a cluster. Every config format is parsed into these values.

Nothing downstream reads a config file: the daemon, the policy and the resources take a
`Cluster`. Values are frozen; the parsers (config/) validate everything a user can get wrong
and report it as ConfigProblem with file, line and key. `check_timings` holds the timing
invariants in one place so that every format applies the same ones.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Union

from vigil.balancer.model import ConnSync, VirtualServer
from vigil.replica.model import PostgresqlResource, order_warnings

IPInterface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


@dataclass(frozen=True, slots=True)
class Timings:
    """Heartbeat timings in seconds (Heartbeat's ha.cf names).

    The defaults are measured (README, "Choosing the defaults"): the smallest keepalive and
    deadtime of `bench.timings_soak` with no false failover in 10 minutes of both cores
    saturated, among those whose idle cost stays under 1 % of a core (`bench.idle`).
    """

    keepalive: float = 0.1  # interval between heartbeats on each link
    warntime: float = 0.15  # a heartbeat later than this is logged as late
    deadtime: float = 0.3  # a link with no heartbeat for this long is dead
    initdead: float = 3.0  # after start, wait this long for the peer before acting alone


def check_timings(t: Timings) -> list[tuple[str, str]]:
    """Return (key, message) for each violated timing invariant; empty when sound.

    deadtime must cover at least two missed keepalives, or one late packet (timer jitter
    measured up to ~25 ms under load, more with a big heap) declares a live peer dead.
    """
    problems: list[tuple[str, str]] = []
    if t.keepalive < 0.01:
        problems.append(("keepalive", f"{fmt_duration(t.keepalive)} is below the 10ms minimum"))
    if t.deadtime < 2 * t.keepalive:
        problems.append(
            ("deadtime", f"{fmt_duration(t.deadtime)} must be at least twice keepalive "
                         f"({fmt_duration(t.keepalive)}), or one late heartbeat kills a live link")
        )
    if not (t.keepalive < t.warntime < t.deadtime):
        problems.append(
            ("warntime", f"{fmt_duration(t.warntime)} must lie between keepalive "
                         f"({fmt_duration(t.keepalive)}) and deadtime ({fmt_duration(t.deadtime)})")
        )
    if t.initdead < t.deadtime:
        problems.append(
            ("initdead", f"{fmt_duration(t.initdead)} must be at least deadtime "
                         f"({fmt_duration(t.deadtime)})")
        )
    return problems


def partition_warning(cluster: "Cluster") -> str | None:
    """Heartbeat's "No STONITH device configured.": what check-config and the daemon say when
    nothing protects against a partition: no fencing, no witness and no disk heartbeat."""
    if cluster.fencing is not None or cluster.witness is not None or \
            any(isinstance(l, DiskLink) for l in cluster.links):
        return None
    return ("no fencing, witness or disk heartbeat configured: if the nodes lose each other "
            "while both live (every heartbeat link cut), both run the groups (split brain); "
            "configure [fencing], a [witness] or a disk [[link]]")


def nat_warnings(cluster: "Cluster") -> list[str]:
    """NAT real servers on the network of the service's own address (seed 000's setup): a
    client on that network gets its answers straight from the real server, not rewritten
    back by the director, and drops them. Said by check-config and at every start."""
    out = []
    for vs in cluster.virtual_servers:
        if vs.forward != "nat" or vs.endpoint is None:
            continue
        vip = vs.endpoint.address
        nets = [r.address.network for r in cluster.group(vs.group).resources
                if isinstance(r, IpResource) and r.address.ip == vip]
        for real in vs.real:
            net = next((n for n in nets if real.endpoint.address in n), None)
            if net is not None:
                out.append(f"virtual server {vs.name!r}: real server {real.endpoint} is on "
                           f"{net}, the network of the virtual address {vip}: with forward "
                           f"= \"nat\" clients on that network get its answers directly, "
                           f"not through the director, and drop them; put the real servers "
                           f"on a network behind the directors (their default route via "
                           f"the directors' floating address there) or use forward = \"dr\"")
    return out


def config_warnings(cluster: "Cluster") -> list[str]:
    """What check-config prints and the daemon logs at every start about a configuration
    that loads but may not do what its author meant."""
    partition = partition_warning(cluster)
    return ([partition] if partition else []) + nat_warnings(cluster) + \
        order_warnings(cluster.groups)


def watchdog_seconds(t: Timings) -> int:
    """A watchdog resets the node when the daemon stops feeding it for this long. The guard
    acts within deadtime; the watchdog is the backstop for the guard and the kernel, so it
    may be slower, but it must still fire long before an operator would: twice deadtime,
    rounded up to whole seconds (what the Linux API counts), at least 2 s."""
    import math

    return max(2, math.ceil(2 * t.deadtime))


def poison_wait(t: Timings) -> float:
    """How long a node that wrote a poison pill waits before it counts the peer as fenced.
    A live peer reads its mailbox every keepalive and stops at once; a peer whose disk hangs
    notices within deadtime / 2 and stops too (core/eligibility.py); a frozen one is stopped
    by its guard within deadtime. Twice deadtime covers all three."""
    return 2 * t.deadtime


def fmt_duration(seconds: float) -> str:
    """200ms, 1s, 1.5s: the inverse of config's duration parser, for messages."""
    ms = round(seconds * 1000)
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    if ms < 1000:
        return f"{ms}ms"
    return f"{seconds:g}s"


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    # One unicast heartbeat link per position: addresses[i] of every node form link i.
    addresses: tuple[IPAddress, ...]


@dataclass(frozen=True, slots=True)
class ExtraLink:
    """A multicast or broadcast heartbeat link on one interface ([[link]])."""

    mode: Literal["mcast", "bcast"]
    interface: str
    group: IPAddress | None = None  # mcast only
    ttl: int = 1  # mcast only


@dataclass(frozen=True, slots=True)
class DiskLink:
    """A shared block device or file as one more heartbeat link (daemon/disk.py): one slot
    per node, plus the mailbox that carries the poison pill ([fencing] agent = "disk")."""

    device: Path
    mode: Literal["disk"] = "disk"
    per_node: tuple[tuple[str, Path], ...] = ()  # where a node sees it under another name

    def device_for(self, node: str) -> Path:
        return dict(self.per_node).get(node, self.device)


SERIAL_BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)


@dataclass(frozen=True, slots=True)
class SerialLink:
    """A serial line (null-modem cable) as one more heartbeat link (daemon/serial.py)."""

    device: Path
    baud: int = 19200
    mode: Literal["serial"] = "serial"
    per_node: tuple[tuple[str, Path], ...] = ()  # e.g. ttyS0 on one node, ttyS1 on the other

    def device_for(self, node: str) -> Path:
        return dict(self.per_node).get(node, self.device)


@dataclass(frozen=True, slots=True)
class UcastLink:
    """Heartbeat's `ucast IFACE ADDR` lines for one interface: one link that sends to every
    listed address that is not this node's own (the same ha.cf serves both nodes)."""

    interface: str
    peers: tuple[IPAddress, ...]
    mode: Literal["ucast"] = "ucast"


@dataclass(frozen=True, slots=True)
class Respawn:
    """Heartbeat's `respawn USER PROGRAM [ARGS]`: a program kept running beside the daemon."""

    user: str
    argv: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Api:
    """The HTTP API, metrics and dashboard (`[api]`): off unless configured. Reads are open
    to whoever reaches `listen`; actions need the bearer token from `token_file` (mode 0600)."""

    host: str
    port: int
    token_file: Path | None = None  # None: every action is refused (read-only API)
    cert_file: Path | None = None  # both set: HTTPS
    key_file: Path | None = None


@dataclass(frozen=True, slots=True)
class Notify:
    """Notify hooks (`[notify]`): programs called on every transition (events.py), one call
    per event, in order, with a timeout; never waited for by the daemon."""

    programs: tuple[Path, ...] = ()
    directory: Path | None = None  # every executable file in it, in name order (run-parts)
    timeout: float = 10.0


AnyLink = Union[ExtraLink, DiskLink, SerialLink, UcastLink]


@dataclass(frozen=True, slots=True)
class Witness:
    """A third host that grants, per group, a lease to at most one node (arbiter.py)."""

    address: IPAddress
    port: int = 6940
    lease: float | None = None  # default witness_lease(): 2 x deadtime
    name: str = "witness"


def witness_lease(cluster: "Cluster") -> float:
    """Twice deadtime: a lease (held by the node for half of it) then survives a lost reply
    or two at every keepalive, and a dead holder's groups come free one deadtime after the
    survivor declared it dead."""
    assert cluster.witness is not None
    return cluster.witness.lease or 2 * cluster.timings.deadtime


@dataclass(frozen=True, slots=True)
class ArpSettings:
    """How an acquired address is announced (gratuitous ARP / unsolicited NA)."""

    count: int = 3  # packets in the first burst
    interval: float = 0.01  # between packets of a burst
    repeat_delay: float = 1.0  # the second burst starts this long after the first; 0 = none
    repeat_count: int = 3
    refresh: float = 0.0  # periodic re-announcement while held; 0 = off


@dataclass(frozen=True, slots=True)
class IpResource:
    # With its prefix length, or, when `prefix_given` is False, a host address (/32, /128)
    # whose prefix length is found at start, with the interface when `interface` is None:
    # from the connected route that contains it, as Heartbeat's IPaddr (resources/findif.py).
    address: IPInterface
    interface: str | None
    label: str | None = None
    arp: ArpSettings = field(default_factory=ArpSettings)
    timeout: float = 5.0
    monitor: "Monitor | None" = field(default_factory=lambda: Monitor())
    prefix_given: bool = True
    broadcast: ipaddress.IPv4Address | None = None  # None: the subnet's
    kind: Literal["ip"] = "ip"

    @property
    def name(self) -> str:
        a = self.address.with_prefixlen if self.prefix_given else str(self.address.ip)
        return f"ip {a} on {self.interface}" if self.interface else f"ip {a}"


@dataclass(frozen=True, slots=True)
class ExecResource:
    start: tuple[str, ...]
    stop: tuple[str, ...]
    status: tuple[str, ...] | None = None
    timeout: float = 20.0
    monitor: "Monitor | None" = None  # needs `status`
    kind: Literal["exec"] = "exec"

    @property
    def name(self) -> str:
        return f"exec {Path(self.start[0]).name}"


HEARTBEAT_DIRECTORIES = (Path("/etc/ha.d/resource.d"), Path("/etc/init.d"))


@dataclass(frozen=True, slots=True)
class Monitor:
    """How often a running resource is checked, and how long one check may take."""

    interval: float = 10.0
    timeout: float | None = None  # None: the agent's own (OCF meta-data), else its timeout


@dataclass(frozen=True, slots=True)
class OcfResource:
    """An OCF resource agent: /usr/lib/ocf/resource.d/PROVIDER/TYPE, `agent` = "PROVIDER:TYPE".

    `params` become OCF_RESKEY_name=value; `id` is OCF_RESOURCE_INSTANCE. `timeout` None: each
    action's timeout comes from the agent's meta-data (its <action timeout=...>)."""

    agent: str
    id: str
    params: tuple[tuple[str, str], ...] = ()
    timeout: float | None = None
    monitor: Monitor | None = field(default_factory=Monitor)
    kind: Literal["ocf"] = "ocf"

    @property
    def provider(self) -> str:
        return self.agent.split(":", 1)[0]

    @property
    def type(self) -> str:
        return self.agent.split(":", 1)[1]

    @property
    def name(self) -> str:
        return f"ocf:{self.agent} {self.id}"


@dataclass(frozen=True, slots=True)
class LsbResource:
    """An LSB init script, /etc/init.d/NAME start|stop|status."""

    script: str
    timeout: float = 20.0
    monitor: Monitor | None = field(default_factory=Monitor)
    directory: Path = Path("/etc/init.d")
    kind: Literal["lsb"] = "lsb"

    @property
    def name(self) -> str:
        return f"lsb:{self.script}"


@dataclass(frozen=True, slots=True)
class SystemdResource:
    """A systemd unit, through systemctl (start, stop, is-active)."""

    unit: str
    timeout: float = 100.0  # systemd's own default start timeout is 90 s
    monitor: Monitor | None = field(default_factory=Monitor)
    kind: Literal["systemd"] = "systemd"

    @property
    def name(self) -> str:
        return f"systemd:{self.unit}"


@dataclass(frozen=True, slots=True)
class HeartbeatResource:
    """A Heartbeat resource.d script: SCRIPT ARG... start|stop|status (`IPaddr::a/b/c`)."""

    script: str
    args: tuple[str, ...] = ()
    timeout: float = 20.0
    monitor: Monitor | None = field(default_factory=Monitor)
    directories: tuple[Path, ...] = HEARTBEAT_DIRECTORIES
    kind: Literal["heartbeat"] = "heartbeat"

    @property
    def name(self) -> str:
        return "::".join(("heartbeat:" + self.script, *self.args))


@dataclass(frozen=True, slots=True)
class FilesystemResource:
    """A mount, built in: device (or image file) on mountpoint with fstype and options."""

    device: Path
    mountpoint: Path
    fstype: str
    options: str = ""
    timeout: float = 60.0
    kill_grace: float = 5.0  # holders of a busy mount get SIGTERM, then SIGKILL after this
    monitor: Monitor | None = field(default_factory=Monitor)
    kind: Literal["filesystem"] = "filesystem"

    @property
    def name(self) -> str:
        return f"filesystem {self.device} on {self.mountpoint}"


Resource = Union[IpResource, ExecResource, OcfResource, LsbResource, SystemdResource,
                 HeartbeatResource, FilesystemResource, PostgresqlResource]


@dataclass(frozen=True, slots=True)
class GroupPolicy:
    """What repeated failures of a group's resources do (Pacemaker's meta attributes)."""

    migration_threshold: int = 3  # failures on one node before the group leaves it
    failure_timeout: float = 600.0  # failures older than this are forgotten; 0 = never


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    home: str
    resources: tuple[Resource, ...]
    policy: GroupPolicy = field(default_factory=GroupPolicy)
    # Its replicated resource (replica/model.py) runs on both nodes, promoted on the owner.
    promotable: bool = False

    @property
    def replica(self) -> PostgresqlResource | None:
        return next((r for r in self.resources if isinstance(r, PostgresqlResource)), None)


@dataclass(frozen=True, slots=True)
class Fencing:
    """STONITH: how a survivor makes sure a peer it declared dead really is, before taking over.

    agent: "manual" (an operator runs `vigil fence confirm NODE`), "external" (`command` + the
    action + the node's name as arguments) or a fence_* program of Debian's fence-agents
    (`params` and the node's `node_params` sent on stdin as key=value lines with action=...).
    """

    agent: str
    action: Literal["off", "reboot"] = "reboot"
    command: tuple[str, ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    node_params: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    timeout: float = 30.0
    retry_interval: float = 5.0
    # "block": the group stays down while fencing fails (never two owners); "takeover": take
    # over after a failed attempt anyway (the service comes back, at the risk of running twice
    # if the peer was not dead).
    on_failure: Literal["block", "takeover"] = "block"
    # In a partition both nodes want to fence each other. The one that runs no group waits
    # this long before shooting a peer that ran groups, so the peer that serves wins. (The
    # config's default is 0 for agent = "disk": nodes that both still reach the disk see
    # each other alive on it, so there is no race to win.)
    delay: float = 2.0
    # fence_* agents: how often the daemon checks that the fence device answers
    # (action=monitor); 0 = never. Also measures how long the agent takes (see `delay`).
    monitor_interval: float = 60.0

    def params_for(self, node: str) -> tuple[tuple[str, str], ...]:
        for name, extra in self.node_params:
            if name == node:
                return self.params + extra
        return self.params


@dataclass(frozen=True, slots=True)
class Cluster:
    name: str
    key_file: Path
    nodes: tuple[Node, ...]
    groups: tuple[Group, ...]
    timings: Timings = field(default_factory=Timings)
    auto_failback: bool = True
    port: int = 694
    links: tuple[AnyLink, ...] = ()
    realtime: bool = True  # SCHED_FIFO + mlockall, like Heartbeat's `realtime on`
    log_file: Path | None = None
    watchdog: Path | None = None  # e.g. /dev/watchdog: fed with every heartbeat
    watchdog_timeout: int | None = None  # seconds; default watchdog_seconds(timings)
    virtual_servers: tuple[VirtualServer, ...] = ()  # the load balancer (balancer/)
    conntrack_sync: ConnSync | None = None  # conntrackd between the directors
    fencing: Fencing | None = None
    witness: Witness | None = None
    respawn: tuple[Respawn, ...] = ()
    api: Api | None = None
    notify: Notify | None = None
    # Where the key comes from: vigil's key file, or Heartbeat's authkeys ("authkeys"),
    # whose crc method (no security) needs allow_crc.
    key_format: Literal["vigil", "authkeys"] = "vigil"
    allow_crc: bool = False
    # Ping nodes (Heartbeat's ping/ipfail): addresses both nodes should reach (routers); the
    # node that reaches fewer while its peer reaches more hands its groups over.
    ping: tuple[IPAddress, ...] = ()
    ping_interval: float = 1.0
    deadping: float = 3.0  # a ping node is unreachable after this long without a reply
    # Look before taking (lookout.py): how long a node listens for another host answering a
    # group's addresses before taking them from a peer that went silent; 0: never look.
    address_probe: float = 0.01
    source: str = "<memory>"  # the file this came from, for messages

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def peers(self, me: str) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.name != me)

    def group(self, name: str) -> Group:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)
