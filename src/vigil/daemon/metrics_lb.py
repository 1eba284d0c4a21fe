"""The balancer's metrics, read from the status' "balancer" section at scrape time (as the
rest of metrics.py's are from the status): per virtual server whether this director directs
it and whether it is below quorum; per real server its health, whether it takes new
connections, its weight, its checks by result, the last check's duration (a gauge, as the
Prometheus blackbox exporter's probe_duration_seconds), its flaps, and the kernel's counts
of its connections, packets and bytes while this director directs; the connection sync's
state."""

from __future__ import annotations

from typing import Any, Callable

Emit = Callable[[list[str], str, str, list[tuple[tuple[tuple[str, str], ...], float]]], None]


def render(out: list[str], b: dict[str, Any], gauge: Emit, counter: Emit) -> None:
    services = b["virtual_servers"]
    vs_labels = [((("virtual_server", vs["name"]),), vs) for vs in services]
    reals = [((("virtual_server", vs["name"]), ("server", r["address"])), r)
             for vs in services for r in vs["servers"]]
    gauge(out, "vigil_lb_directing", "1 when this director holds the virtual server's rules.",
          [(l, int(vs["directing"])) for l, vs in vs_labels])
    gauge(out, "vigil_lb_below_quorum",
          "1 when fewer real servers take connections than the quorum (the sorry server "
          "answers, or clients are refused).",
          [(l, int(vs["below_quorum"])) for l, vs in vs_labels])
    gauge(out, "vigil_lb_real_server_up", "1 when the real server's checks say up.",
          [(l, int(r["health"] == "up")) for l, r in reals])
    gauge(out, "vigil_lb_real_server_taking",
          "1 when the real server gets new connections (up, not drained, weight > 0).",
          [(l, int(r["taking"])) for l, r in reals])
    gauge(out, "vigil_lb_real_server_weight", "The real server's configured weight.",
          [(l, r["weight"]) for l, r in reals])
    counter(out, "vigil_lb_checks_total", "Health checks of the real server, by result.",
            [(l + (("result", result),), r[key]) for l, r in reals
             for result, key in (("ok", "checks_ok"), ("failed", "checks_failed"))])
    gauge(out, "vigil_lb_check_duration_seconds", "How long the real server's last check took.",
          [(l, r["latency_ms"] / 1000) for l, r in reals if r["latency_ms"] is not None])
    counter(out, "vigil_lb_flaps_total",
            "Times the real server's health changed after its first verdict.",
            [(l, r["flaps"]) for l, r in reals])
    moved = [(l, r["traffic"]) for l, r in reals if r.get("traffic") is not None]
    counter(out, "vigil_lb_connections_total",
            "New connections this director sent to the real server since it took the "
            "service (the kernel's counter).",
            [(l, t["connections"]) for l, t in moved])
    counter(out, "vigil_lb_packets_total",
            "Packets this director forwarded for the real server, by direction (in: from "
            "clients; out: answers, NAT only).",
            [(l + (("direction", d),), t[f"packets_{d}"]) for l, t in moved
             for d in ("in", "out")])
    counter(out, "vigil_lb_bytes_total",
            "Bytes this director forwarded for the real server, by direction.",
            [(l + (("direction", d),), t[f"bytes_{d}"]) for l, t in moved
             for d in ("in", "out")])
    sync = b.get("conntrack_sync")
    if sync is not None:
        gauge(out, "vigil_lb_conntrack_sync_running", "1 when conntrackd runs and answers.",
              [((("role", sync["role"]),), int(sync["running"]))])
        counter(out, "vigil_lb_conntrack_sync_restarts_total", "Times conntrackd was restarted.",
                [((), sync["restarts"])])
