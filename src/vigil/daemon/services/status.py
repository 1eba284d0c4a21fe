"""The status view (`vigil status`, GET /status, the dashboard) and the metrics text.

No task of its own: built on request from the node and the services' counters, in one
synchronous call, so it never shows a half-applied input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from vigil import __version__
from vigil.daemon import guard as guard_mod
from vigil.daemon.disk import DiskLink
from vigil.daemon.hooks import Hooks
from vigil.daemon.hub import Hub
from vigil.daemon.ping import Pinger
from vigil.replica.pgfacts import format_lsn

if TYPE_CHECKING:
    from vigil.balancer.service import Balancer
    from vigil.core.node import Node


class Status:
    def __init__(self, hub: Hub, started_at: float, pinger: Pinger | None,
                 fence_check: Callable[[], dict[str, Any]],
                 hooks: Callable[[], Hooks | None], balancer: Balancer | None = None,
                 disks: Callable[[str], tuple[int, int] | None] = lambda group: None) -> None:
        self.hub = hub
        self.balancer = balancer
        self.started_at = started_at
        self.pinger = pinger
        self.fence_check = fence_check  # the latest fence device check
        self.hooks = hooks
        self.disks = disks  # a promotable group's data filesystem here: (free, size) bytes

    def status(self) -> dict[str, Any]:
        hub = self.hub
        node, cluster, me = hub.node, hub.cluster, hub.shared.me
        now = hub.clock()
        peer = node.membership.view(node.peer)

        def age(t: float | None) -> float | None:
            return None if t is None else round((now - t) * 1000, 1)

        groups = []
        for g in cluster.groups:
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
            if g.name in node.promotable:
                replicas = groups[-1]["replicas"] = _replicas(node, g.name, me)
                if (disk := self.disks(g.name)) is not None and replicas[me] is not None:
                    replicas[me].update(disk_free_bytes=disk[0], disk_size_bytes=disk[1])
                groups[-1]["why_not"] = node.promotable.why_not.get(g.name)
        running = [g["name"] for g in groups if g["state"] in ("running", "failed")]
        return {
            "cluster": cluster.name, "node": me, "version": __version__,
            "generation": node.generation, "uptime_s": round(now - self.started_at, 1),
            "status": node.status.value,
            "role": "active" if running else "standby",
            "timings": {k: getattr(cluster.timings, k)
                        for k in ("keepalive", "warntime", "deadtime", "initdead")},
            "auto_failback": cluster.auto_failback,
            "nodes": [
                {"name": me, "self": True, "state": node.status.value},
                {"name": peer.name, "self": False, "state": peer.liveness.value,
                 "generation": peer.generation, "left": peer.left,
                 "partitioned": node.partitioned,
                 "last_heartbeat_ms": age(peer.last),
                 "links": [{"name": l.name, "state": l.status.value, "age_ms": age(l.last),
                            "local_up": l.local_up} for l in peer.links]},
            ],
            "links": [{"name": l.name, "kind": l.kind, "via": l.describe(), "sent": l.sent,
                       "send_errors": l.send_errors, **_io(l)} for l in hub.shared.links],
            "groups": groups,
            "frames": {"received": node.frames.received,
                       "rejected": dict(node.frames.rejected)},
            "fencing": None if cluster.fencing is None else {
                "agent": cluster.fencing.agent, "action": cluster.fencing.action,
                "on_failure": cluster.fencing.on_failure,
                "peer": None if node.fencing.state is None else node.fencing.state.value,
                "detail": node.fencing.detail,
                "device": self.fence_check() or None},
            "witness": None if node.witness is None or cluster.witness is None else {
                "address": f"{cluster.witness.address}:{cluster.witness.port}",
                "last_reply_ms": age(node.witness.seen),
                "leases_ms": {g: round((t - now) * 1000)
                              for g, t in node.witness.leases.items() if t > now},
                "holders": node.witness.holders},
            "ping": None if self.pinger is None else {
                "nodes": self.pinger.targets, "reachable": node.ping_count,
                "peer": node.report.ping if node.report else None},
            "watchdog": None if hub.watchdog is None else {
                "path": str(hub.watchdog.path), "timeout_s": hub.watchdog.timeout,
                "feeds": hub.watchdog.feeds, "errors": hub.watchdog.errors},
            "guard": None if hub.guard is None else {
                "pid": hub.guard.pid, "alive": hub.guard.alive(),
                "timeout_ms": round(guard_mod.timeout_for(cluster.timings) * 1000)},
            "balancer": None if self.balancer is None or not cluster.virtual_servers else {
                "virtual_servers": self.balancer.status(),
                "last_error": self.balancer.last_error,
                "tcp_checks": self.balancer.prober.mode,
                "conntrack_sync": None if self.balancer.conntrack is None
                else self.balancer.conntrack.status(),
                "passive_detection": None if self.balancer.passive is None else {
                    "on": self.balancer.passive.sock is not None,
                    "error": self.balancer.passive.error,
                    "refusals_seen": self.balancer.passive.seen}},
        }

    def metrics_text(self) -> str:
        h = self.hooks()
        return self.hub.metrics.render(self.status(), None if h is None else
                                       (h.calls, h.failures, h.dropped))


def _replicas(node: Node, group: str, me: str) -> dict[str, Any]:
    """Each node's instance of a promotable group, as this node knows it: role, timeline,
    WAL position (PostgreSQL's text form) and, on a standby, how far behind the primary's
    latest report it is (bytes; None when on another timeline or unknown)."""
    p = node.promotable
    known = {me: p.mine.get(group), node.peer: p.theirs(group)}
    primary = next((r for r in known.values() if r is not None and r.role == "primary"), None)
    out: dict[str, Any] = {}
    for name, r in known.items():
        if r is None:
            out[name] = None
            continue
        lag = None
        if r.role != "primary" and primary is not None and primary.timeline == r.timeline:
            lag = max(primary.lsn - r.lsn, 0)
        out[name] = {"role": r.role, "timeline": r.timeline, "lsn": format_lsn(r.lsn),
                     "lag_bytes": lag, "sync_with": r.sync_with}
    return out


def _io(link: object) -> dict[str, float]:
    """A disk link's slowest IO cycle: the device's latency spends deadtime."""
    return {"slowest_io_ms": round(link.slowest * 1000, 1)} if isinstance(link, DiskLink) else {}
