"""False failovers of candidate timings with both cores saturated.

    python -m bench.timings_soak [--minutes 10] [--candidates 50ms/200ms,100ms/300ms,...]
                                 [--out bench/timings_soak.json]

One LabCluster (its own Lab) per keepalive/deadtime candidate, all running at once with
warntime D/2 (or X * keepalive) and initdead max(3D, 1s), real-time scheduling on (the
daemon's default). Once every cluster has settled (n1 owning the group, both nodes up), two busy-loop Python
processes keep both cores saturated for `minutes`. Then each daemon's log since the load
started is read for false failovers: "is dead" lines (a live peer declared dead) and "taking
over group" lines, plus "Link ... dead." lines and late-heartbeat warnings (a gap above
warntime) with the longest gap logged. Nothing is faulted: every one of those is false.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import common
from vigil.config.duration import parse_duration
from vigil.lab.netns import exit_on_sigterm
from vigil.lab.cluster import LabCluster

DEFAULT_CANDIDATES = "50ms/200ms,100ms/300ms,100ms/500ms,200ms/1s"
LATE = re.compile(r"Late heartbeat from \S+ on \S+: (\d+) ms")
BUSY = "while True:\n    pass\n"


def parse_candidates(text: str) -> list[tuple[float, float]]:
    out = []
    for part in text.split(","):
        ka, _, dead = part.strip().partition("/")
        out.append((parse_duration(ka), parse_duration(dead)))
    return out


def count(log: str) -> dict[str, Any]:
    gaps = [int(m.group(1)) for m in LATE.finditer(log)]
    lines = log.splitlines()
    return {
        "is_dead": sum(": is dead" in line for line in lines),
        "taking_over": sum("taking over group" in line for line in lines),
        "link_dead": sum(re.search(r"Link \S+ dead\.", line) is not None for line in lines),
        "late_heartbeats": len(gaps),
        "max_late_gap_ms": max(gaps, default=None),
        "examples": [line for line in lines if ": is dead" in line or "taking over" in line
                     or "Late heartbeat" in line][:10],
    }


def cpu_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def soak(candidates: list[tuple[float, float]], minutes: float,
         warn_factor: float | None = None) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        clusters = []
        for ka, dead in candidates:
            t = common.timings(dead, keepalive=ka)
            if warn_factor is not None:
                t["warntime"] = common.ms(ka * warn_factor)
            c = stack.enter_context(LabCluster(**t))
            c.start("n1")
            c.start("n2")
            clusters.append((f"{common.ms(ka)}/{common.ms(dead)}", t, c))
        for _, _, c in clusters:
            common.settle(c)
        offsets = {name: {n: len(c.log(n)) for n in ("n1", "n2")} for name, _, c in clusters}
        sched = {name: {n: common.sched_policy(common.daemon_pid(c.daemons[n].pid))
                        for n in ("n1", "n2")} for name, _, c in clusters}
        print(f"load: 2 busy loops for {minutes:g} min on {len(clusters)} clusters "
              f"({', '.join(name for name, _, _ in clusters)})", flush=True)
        load = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(2)]
        try:
            busy0, total0 = cpu_busy()
            t0 = time.monotonic()
            end = t0 + minutes * 60
            while (left := end - time.monotonic()) > 0:
                time.sleep(min(left, 60))
                if time.monotonic() < end:
                    print(f"  {(time.monotonic() - t0) / 60:.0f} min...", flush=True)
            busy1, total1 = cpu_busy()
            wall = time.monotonic() - t0
        finally:
            for proc in load:
                proc.kill()
                proc.wait()
        results = []
        for name, t, c in clusters:
            nodes = {n: count(c.log(n)[offsets[name][n]:]) for n in ("n1", "n2")}
            results.append({
                "candidate": name, "timings": t, "scheduler": sched[name],
                "holders_at_end": c.holders(), "nodes": nodes,
                **{k: sum(v[k] for v in nodes.values())
                   for k in ("is_dead", "taking_over", "link_dead", "late_heartbeats")},
                "max_late_gap_ms": max((v["max_late_gap_ms"] for v in nodes.values()
                                        if v["max_late_gap_ms"] is not None), default=None),
            })
    return {"minutes": minutes, "seconds": round(wall, 1),
            "cpu_busy_percent": round(100 * (busy1 - busy0) / max(1, total1 - total0), 1),
            "candidates": results}


def render(r: dict[str, Any]) -> str:
    rows = [[c["candidate"], c["timings"]["warntime"], c["is_dead"], c["taking_over"],
             c["link_dead"], c["late_heartbeats"],
             "-" if c["max_late_gap_ms"] is None else c["max_late_gap_ms"],
             ",".join(c["holders_at_end"]) or "none",
             "/".join(sorted(set(c["scheduler"].values())))] for c in r["candidates"]]
    head = (f"{r['seconds'] / 60:.1f} min with both cores saturated "
            f"(all CPUs {r['cpu_busy_percent']:g} % busy)\n")
    return head + common.table(["keepalive/deadtime", "warntime", "is dead", "taking over",
                                "link dead", "late hb", "max gap ms", "holder at end",
                                "daemons"], rows)


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    ap = argparse.ArgumentParser(prog="python -m bench.timings_soak", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--candidates", default=DEFAULT_CANDIDATES,
                    help="comma-separated keepalive/deadtime pairs")
    ap.add_argument("--warntime-keepalives", type=float, default=None, metavar="X",
                    help="warntime = X * keepalive (default: deadtime / 2); a smaller X "
                         "logs smaller gaps, for a finer view of the lateness")
    ap.add_argument("--out", type=Path, default=Path("bench/timings_soak.json"))
    args = ap.parse_args(argv)
    info = common.machine()
    r = soak(parse_candidates(args.candidates), args.minutes, args.warntime_keepalives)
    print(render(r))
    common.write_json(args.out, {"machine": info, **r, "loadavg_at_end": os.getloadavg()})
    return 1 if any(c["is_dead"] or c["taking_over"] for c in r["candidates"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
