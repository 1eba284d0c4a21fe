"""Idle cost of vigil beside keepalived's, in one run: CPU share of one core, RSS and PSS.

    python -m bench.idle [--seconds 40] [--keepalive-ms 100,50] [--advert 0.1]
                         [--out bench/results-idle.json]

For each keepalive, a LabCluster (warntime 2.5, deadtime 5 keepalives) settles with n1
owning the floating address, then idles for `seconds`; then keepalived 2.2.7 (VRRPv3,
bench/anchors.py) holds the same address in the same kind of lab for as long. CPU % is the
time on a CPU of every thread of every process of the node (/proc/PID/task/*/schedstat, in
ns, so a quiet keepalived is not rounded to 0) over the window's wall time: vigil's daemon and
its guard, keepalived's parent and VRRP child. RSS is VmRSS, PSS the proportional share
(/proc/PID/smaps_rollup): two processes that share pages are not counted twice.

Issue 13's targets, on the owner: vigil at keepalive 100 ms no more CPU than keepalived at
adverts every 0.1 s; at most 0.25 % of a core at keepalive 50 ms; daemon and guard together
at most 30 MB PSS. The asyncio floor (bench/floor.py) runs in the same invocation: two bare
asyncio processes sending each other a datagram per interval, what any asyncio daemon pays
here before doing any work of its own.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bench import anchors, common, floor
from vigil.lab.cluster import LabCluster, vip_address
from vigil.lab.netns import Lab, exit_on_sigterm

TIMINGS = {"keepalive": "200ms", "warntime": "500ms", "deadtime": "1s", "initdead": "3s"}
CPU_50MS_TARGET = 0.25  # % of one core, keepalive 50 ms
PSS_TARGET_MB = 30.0  # daemon and guard together


def timings_for(keepalive_ms: int) -> dict[str, str]:
    """The same proportions as TIMINGS (warntime 2.5, deadtime 5 keepalives) at another
    keepalive: how the idle cost grows with the heartbeat rate."""
    return {"keepalive": f"{keepalive_ms}ms", "warntime": f"{keepalive_ms * 5 // 2}ms",
            "deadtime": f"{keepalive_ms * 5}ms", "initdead": f"{max(keepalive_ms * 15, 1000)}ms"}


def _window(groups: dict[str, list[int]], seconds: float) -> dict[str, dict[str, Any]]:
    """CPU over `seconds`, then memory, of each node's processes."""
    t0 = time.monotonic()
    c0 = {n: {p: common.cpu_ns(p) for p in ps} for n, ps in groups.items()}
    time.sleep(seconds)
    wall = time.monotonic() - t0
    out = {}
    for n, ps in groups.items():
        procs = {p: {"cpu_percent": round((common.cpu_ns(p) - c0[n][p]) / 1e9 / wall * 100,
                                          3),
                     "rss_mb": round(common.status_kb(p, "VmRSS") / 1024, 1),
                     "pss_mb": round(common.pss_kb(p) / 1024, 1)} for p in ps}
        out[n] = {"cpu_percent": round(sum(v["cpu_percent"] for v in procs.values()), 3),
                  "rss_mb": round(sum(v["rss_mb"] for v in procs.values()), 1),
                  "pss_mb": round(sum(v["pss_mb"] for v in procs.values()), 1),
                  "processes": procs}
    return out


def measure(seconds: float = 40.0, timings: dict[str, str] = TIMINGS) -> dict[str, Any]:
    """vigil: each node's daemon and guard, idle, n1 owning the address."""
    print(f"idle: vigil, keepalive {timings['keepalive']} / deadtime {timings['deadtime']}, "
          f"{seconds:g} s...", flush=True)
    with LabCluster(**timings) as c:
        c.start("n1")
        c.start("n2")
        common.settle(c)
        time.sleep(1.0)  # past the start-up transients (hand-shake, ARP bursts)
        daemons = {n: common.daemon_pid(c.daemons[n].pid) for n in ("n1", "n2")}
        groups = {n: [pid] + common.children(pid) for n, pid in daemons.items()}
        nodes = _window(groups, seconds)
        holders = c.holders()
    for n, v in nodes.items():
        v["role"] = "owner" if n in holders else "standby"
        v["guard_pids"] = groups[n][1:]
    return {"what": "vigil", "timings": timings, "seconds": seconds, "nodes": nodes}


def measure_keepalived(seconds: float = 40.0, advert: float = 0.1) -> dict[str, Any]:
    print(f"idle: keepalived, adverts every {advert:g} s, {seconds:g} s...", flush=True)
    with Lab.create(["n1", "n2", "client"]) as lab:
        vip = vip_address(lab)
        with anchors.keepalived_pair(lab, vip, advert) as groups:
            time.sleep(1.0)
            nodes = _window(groups, seconds)
    for n, v in nodes.items():
        v["role"] = "owner" if n == "n1" else "standby"
    return {"what": "keepalived", "advert_s": advert, "seconds": seconds, "nodes": nodes}


def measure_floor(seconds: float, keepalive_ms: int) -> dict[str, Any]:
    """bench/floor.py's pair of bare asyncio processes at the same heartbeat interval: the
    part of vigil's figure that any asyncio daemon here pays."""
    print(f"idle: the asyncio floor, a datagram each way every {keepalive_ms} ms, "
          f"{seconds:g} s...", flush=True)
    f = floor.measure(keepalive_ms / 1000, seconds)
    return {"what": "asyncio floor", "interval_ms": keepalive_ms, "seconds": seconds,
            "nodes": {"n1": {"cpu_percent": f["cpu_percent"], "rss_mb": 0.0,
                             "pss_mb": f["pss_mb"], "processes": {}, "role": "either"}}}


def verdicts(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Issue 13's targets, on the owner, from the runs of one invocation."""
    owner = {(r["what"], r.get("timings", {}).get("keepalive") or r.get("advert_s")):
             r["nodes"]["n1"] for r in runs}
    ka = next((v for (w, _), v in owner.items() if w == "keepalived"), None)
    out: dict[str, Any] = {}
    v100, v50 = owner.get(("vigil", "100ms")), owner.get(("vigil", "50ms"))
    if v100 is not None and ka is not None:
        out["cpu_100ms_over_keepalived"] = round(v100["cpu_percent"] / ka["cpu_percent"], 2) \
            if ka["cpu_percent"] else None
        out["cpu_100ms_within"] = v100["cpu_percent"] <= ka["cpu_percent"]
    if v50 is not None:
        out["cpu_50ms_within"] = v50["cpu_percent"] <= CPU_50MS_TARGET
    for r in runs:
        if r["what"] == "asyncio floor":
            out[f"floor_{r['interval_ms']}ms_cpu_percent"] = r["nodes"]["n1"]["cpu_percent"]
    vig = [v for (w, _), v in owner.items() if w == "vigil"]
    if vig:
        out["pss_within"] = all(v["pss_mb"] <= PSS_TARGET_MB for v in vig)
    return out


def render(r: dict[str, Any]) -> str:
    rows = []
    for run in r["runs"] if "runs" in r else [r]:
        what = (f"vigil keepalive {run['timings']['keepalive']}" if run["what"] == "vigil"
                else f"asyncio floor {run['interval_ms']} ms" if run["what"] == "asyncio floor"
                else f"keepalived adverts {run['advert_s']:g} s")
        for n, v in run["nodes"].items():
            per = ", ".join(f"{p['cpu_percent']:.3f}" for p in v["processes"].values())
            rows.append([what, n, v["role"], f"{v['cpu_percent']:.3f} ({per})",
                         f"{v['rss_mb']:.1f}", f"{v['pss_mb']:.1f}"])
    text = common.table(["run", "node", "role", "CPU % of a core (per process)", "RSS MB",
                         "PSS MB"], rows)
    if "verdicts" in r:
        text += f"\ntargets (issue 13, owner): {r['verdicts']}"
    return text


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    ap = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--keepalive-ms", default="100,50",
                    help="comma-separated heartbeat intervals to measure vigil at")
    ap.add_argument("--advert", type=float, default=0.1, help="keepalived's advert_int")
    ap.add_argument("--no-keepalived", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("bench/results-idle.json"))
    args = ap.parse_args(argv)
    info = common.machine()
    intervals = [int(k) for k in args.keepalive_ms.split(",")]
    runs = [measure(args.seconds, timings_for(k)) for k in intervals]
    runs += [measure_floor(args.seconds, k) for k in intervals]
    if not args.no_keepalived:
        runs.append(measure_keepalived(args.seconds, args.advert))
    result = {"runs": runs, "verdicts": verdicts(runs)}
    print(render(result))
    common.write_json(args.out, {"machine": info, "idle": result})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
