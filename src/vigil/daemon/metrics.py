"""Prometheus metrics: counters the daemon keeps, the rest read from its status at scrape time.

The text exposition format (version 0.0.4) is written by hand: it is a few lines of
`name{labels} value`, and prometheus_client would be a runtime dependency for that alone (the
tests parse the output with its parser). Counters only ever grow during a daemon's life; a
restart starts them at zero, which Prometheus' rate() understands.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from vigil.daemon import metrics_lb
from vigil.daemon.bus import Event

# Heartbeat inter-arrival times: a healthy link sits at keepalive; the tail shows lateness.
GAP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0)
ACTION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

Labels = tuple[tuple[str, str], ...]


class Histogram:
    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, v: float) -> None:
        self.total += 1
        self.sum += v
        for i, b in enumerate(self.buckets):
            if v <= b:
                self.counts[i] += 1


class Metrics:
    def __init__(self) -> None:
        self.heartbeat_gap: dict[str, Histogram] = {}
        self.late: Counter[str] = Counter()  # link -> heartbeats later than warntime
        self.actions: Counter[Labels] = Counter()  # resource, action, result
        self.action_seconds: dict[Labels, Histogram] = {}  # action
        self.acquired: Counter[str] = Counter()  # cause
        self.fencing: Counter[str] = Counter()  # result
        self.events: Counter[str] = Counter()  # kind
        # Look before taking (lookout.py): each probe of a group's addresses, by result.
        self.probe_seconds: dict[Labels, Histogram] = {}

    def heartbeat(self, link: str, gap: float, warntime: float) -> None:
        self.heartbeat_gap.setdefault(link, Histogram(GAP_BUCKETS)).observe(gap)
        if gap > warntime:
            self.late[link] += 1

    def action(self, resource: str, action: str, ok: bool, seconds: float) -> None:
        self.actions[(("resource", resource), ("action", action),
                      ("result", "ok" if ok else "error"))] += 1
        key = (("action", action),)
        self.action_seconds.setdefault(key, Histogram(ACTION_BUCKETS)).observe(seconds)

    def probe(self, seconds: float, answered: bool) -> None:
        key = (("result", "answered" if answered else "free"),)
        self.probe_seconds.setdefault(key, Histogram(ACTION_BUCKETS)).observe(seconds)

    def event(self, ev: Event) -> None:
        """A bus listener."""
        self.events[ev.kind] += 1
        if ev.kind in ("fenced", "fence_failed"):
            self.fencing["ok" if ev.kind == "fenced" else "error"] += 1

    def render(self, s: dict[str, Any], hooks: tuple[int, int, int] | None = None) -> str:
        """The whole scrape, from the counters and the status `s` (Daemon.status())."""
        out: list[str] = []
        me = s["node"]
        peer = next(n for n in s["nodes"] if not n["self"])
        _gauge(out, "vigil_info", "This daemon: cluster, node and version.",
               [((("cluster", s["cluster"]), ("node", me), ("version", s["version"])), 1)])
        _gauge(out, "vigil_uptime_seconds", "Seconds since this daemon started.",
               [((), s["uptime_s"])])
        _gauge(out, "vigil_node_up", "1 when the node is up (this node: 1 unless leaving).",
               [((("node", me),), int(s["status"] in ("up", "active"))),
                ((("node", peer["name"]),), int(peer["state"] == "up"))])
        _gauge(out, "vigil_link_up", "1 when heartbeats arrive from the peer on the link.",
               [((("link", l["name"]),), int(l["state"] == "up")) for l in peer["links"]])
        _gauge(out, "vigil_heartbeat_age_seconds",
               "Seconds since the last heartbeat from the peer on the link.",
               [((("link", l["name"]),), l["age_ms"] / 1000) for l in peer["links"]
                if l["age_ms"] is not None])
        _histograms(out, "vigil_heartbeat_interval_seconds",
                    "Time between successive heartbeats from the peer on a link; above "
                    "keepalive is late.",
                    # every link from the start (count 0 until its second heartbeat)
                    [((("link", l["name"]),), self.heartbeat_gap.get(l["name"])
                      or Histogram(GAP_BUCKETS)) for l in peer["links"]])
        _counter(out, "vigil_heartbeat_late_total",
                 "Heartbeats that came later than warntime after the one before, by link.",
                 [((("link", l["name"]),), self.late[l["name"]]) for l in peer["links"]])
        _counter(out, "vigil_frames_received_total", "Authenticated frames accepted.",
                 [((), s["frames"]["received"])])
        _counter(out, "vigil_frames_rejected_total", "Frames refused, by reason.",
                 [((("reason", r),), n) for r, n in sorted(s["frames"]["rejected"].items())])
        groups = s["groups"]
        _gauge(out, "vigil_groups_owned", "Groups running on this node.",
               [((), sum(g["state"] == "running" for g in groups))])
        _gauge(out, "vigil_group_running", "1 when the group runs on this node.",
               [((("group", g["name"]),), int(g["state"] == "running")) for g in groups])
        _gauge(out, "vigil_group_owner", "1 for the node the group is assigned to.",
               [((("group", g["name"]), ("node", g["owner"])), 1) for g in groups
                if g["owner"]])
        _gauge(out, "vigil_group_fail_count",
               "Monitor failures counted toward migration_threshold.",
               [((("group", g["name"]),), g["fail_count"]) for g in groups])
        _counter(out, "vigil_resource_actions_total",
                 "Resource agent actions run on this node, by result.",
                 sorted(self.actions.items()))
        _histograms(out, "vigil_resource_action_seconds", "How long agent actions took.",
                    sorted(self.action_seconds.items()))
        _histograms(out, "vigil_address_probe_seconds",
                    "Probes of a group's addresses before a takeover (look before taking), "
                    "by result: free, or answered by another host.",
                    sorted(self.probe_seconds.items()))
        _counter(out, "vigil_group_acquisitions_total",
                 "Groups this node started, by cause (peer_dead is a failover).",
                 [((("cause", c),), n) for c, n in sorted(self.acquired.items())])
        _counter(out, "vigil_fencing_total", "Fence agent results.",
                 [((("result", r),), n) for r, n in sorted(self.fencing.items())])
        _counter(out, "vigil_events_total", "Transitions seen (notify hook events), by kind.",
                 [((("kind", k),), n) for k, n in sorted(self.events.items())])
        if s.get("balancer") is not None:
            metrics_lb.render(out, s["balancer"], _gauge, _counter)
        if hooks is not None:
            calls, failures, dropped = hooks
            _counter(out, "vigil_notify_calls_total", "Notify hook calls.", [((), calls)])
            _counter(out, "vigil_notify_failures_total",
                     "Notify hook calls that failed or timed out.", [((), failures)])
            _counter(out, "vigil_notify_dropped_total",
                     "Events never given to the hooks (backlog full).", [((), dropped)])
        return "\n".join(out) + "\n"


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}"


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(v: float) -> str:
    if isinstance(v, float) and math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v) if isinstance(v, float) else str(v)


def _family(out: list[str], name: str, kind: str, help_: str) -> None:
    out.append(f"# HELP {name} {help_}")
    out.append(f"# TYPE {name} {kind}")


def _gauge(out: list[str], name: str, help_: str,
           samples: Iterable[tuple[Labels, float]]) -> None:
    _family(out, name, "gauge", help_)
    out += [f"{name}{_labels(l)} {_num(v)}" for l, v in samples]


def _counter(out: list[str], name: str, help_: str,
             samples: Iterable[tuple[Labels, float]]) -> None:
    _family(out, name, "counter", help_)
    out += [f"{name}{_labels(l)} {_num(v)}" for l, v in samples]


def _histograms(out: list[str], name: str, help_: str,
                series: Iterable[tuple[Labels, Histogram]]) -> None:
    _family(out, name, "histogram", help_)
    for labels, h in series:
        for b, n in zip(h.buckets, h.counts):
            out.append(f"{name}_bucket{_labels(labels + (('le', _num(float(b))),))} {n}")
        out.append(f"{name}_bucket{_labels(labels + (('le', '+Inf'),))} {h.total}")
        out.append(f"{name}_sum{_labels(labels)} {_num(h.sum)}")
        out.append(f"{name}_count{_labels(labels)} {h.total}")
