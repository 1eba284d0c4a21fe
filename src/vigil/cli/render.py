"""`vigil status` as text, rendered from the same dict that --json prints."""

from __future__ import annotations

from typing import Any


def _replica(r: dict[str, Any] | None) -> str:
    """One node's instance of a promotable group."""
    if r is None:
        return "instance not known yet"
    line = f"{r['role']:<8} timeline {r['timeline']} at {r['lsn']}"
    if r.get("sync_with"):
        line += f", synchronous standby {r['sync_with']}"
    if r.get("lag_bytes") is not None:
        line += f", {r['lag_bytes']} bytes behind"
    if r.get("disk_size_bytes"):
        free, size = r["disk_free_bytes"], r["disk_size_bytes"]
        line += f", data disk {100 - 100 * free / size:.0f}% full ({free >> 20} MB free)"
    return line


def _ms(v: float | None) -> str:
    if v is None:
        return "never"
    return f"{v:.0f} ms ago" if v < 10_000 else f"{v / 1000:.0f} s ago"


def status_text(s: dict[str, Any]) -> str:
    out = [f"cluster {s['cluster']}: this node {s['node']} is {s['role']} "
           f"(status {s['status']}, generation {s['generation']}, up {s['uptime_s']:.0f} s)"]
    t = s["timings"]
    out.append(f"  keepalive {t['keepalive'] * 1000:.0f} ms, deadtime {t['deadtime'] * 1000:.0f} ms,"
               f" auto_failback {'on' if s['auto_failback'] else 'off'}")
    out.append("nodes:")
    for n in s["nodes"]:
        if n["self"]:
            out.append(f"  {n['name']:<12} {n['state']:<8} (this node)")
            continue
        left = " (left cleanly)" if n.get("left") else ""
        if n.get("partitioned"):
            left += " NETWORK PARTITION: alive on the disk heartbeat only"
        out.append(f"  {n['name']:<12} {n['state']:<8} last heartbeat "
                   f"{_ms(n['last_heartbeat_ms'])}{left}")
        for link in n["links"]:
            local = "" if link.get("local_up", True) else " (our side of it is down)"
            out.append(f"    link {link['name']:<14} {link['state']:<8} {_ms(link['age_ms'])}"
                       f"{local}")
    out.append("groups:")
    for g in s["groups"]:
        line = (f"  {g['name']:<12} owner {g['owner']:<10} here {g['state']:<9}"
                f" home {g['home']}")
        if g["peer_state"]:
            line += f", peer {g['peer_state']}"
        out.append(line)
        if g["waiting"]:
            out.append(f"    waiting: {g['waiting']}")
        if g.get("fail_count"):
            out.append(f"    failures here: {g['fail_count']} of {g['migration_threshold']}")
        if g.get("banned_s") is not None:
            left = g["banned_s"]
            out.append("    kept off this node " + ("until `vigil resource cleanup`"
                                                    if left == "forever" else f"for {left} s"))
        for name, r in (g.get("replicas") or {}).items():
            out.append(f"    {name:<12} " + _replica(r))
        if g["failed_start"]:
            out.append(f"    start failed here: {g['failed_start']}")
        elif g.get("why_not"):
            out.append(f"    this node may not hold it: {g['why_not']}")
        elif not g["eligible"]:
            out.append("    this node cannot run it now (interface down?)")
        for r in g["resources"]:
            out.append(f"    - {r}")
    ping = s.get("ping")
    if ping:
        out.append(f"ping nodes: {', '.join(ping['nodes'])}: this node reaches "
                   f"{'?' if ping['reachable'] is None else ping['reachable']}, the peer "
                   f"{'?' if ping['peer'] is None else ping['peer']}")
    w = s.get("witness")
    if w:
        held = ", ".join(f"{g} ({ms} ms left)" for g, ms in sorted(w["leases_ms"].items()))
        out.append(f"witness {w['address']}: last reply {_ms(w['last_reply_ms'])}; leases "
                   f"held here: {held or 'none'}")
        for g, holder in sorted(w["holders"].items()):
            out.append(f"    {g}: held by {holder}")
    fen = s.get("fencing")
    if fen:
        state = fen["peer"] or "not needed"
        out.append(f"fencing: {fen['agent']} {fen['action']} (on failure: {fen['on_failure']}); "
                   f"peer: {state}" + (f" ({fen['detail']})" if fen["detail"] else ""))
        dev = fen.get("device")
        if dev:
            out.append(f"    fence device: {'answers' if dev['ok'] else 'DOES NOT ANSWER'} "
                       f"({dev['ms']} ms{': ' + dev['detail'] if dev['detail'] else ''})")
    b = s.get("balancer")
    if b:
        for vs in b["virtual_servers"]:
            up = sum(1 for r in vs["servers"] if r["health"] == "up")
            out.append(f"virtual server {vs['name']} {vs['address']}: "
                       f"{'directing' if vs['directing'] else 'standby'}, {up} of "
                       f"{len(vs['servers'])} real servers up (vigil lb status)")
        if b["last_error"]:
            out.append(f"    balancer: {b['last_error']}")
    f = s["frames"]
    rejected = {k: v for k, v in f["rejected"].items() if v}
    out.append(f"frames: {f['received']} accepted, rejected "
               + (", ".join(f"{k} {v}" for k, v in sorted(rejected.items())) or "none"))
    return "\n".join(out)
