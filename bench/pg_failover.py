"""vigil's promotable PostgreSQL group beside Patroni, in one run, measured the same way
(bench/pg_run.py: the faults, the writer and watcher, the verdicts), one table.

    python -m bench.pg_failover [--runs 1] [--faults node_kill,link_cut,...]
        [--systems vigil,patroni] [--deadtime 1s] [--profile default|tight] [--dcs etcd3]
        [--freeze 40] [--synchronous on|off|strict] [--logs DIR]
        [--out bench/results-pg-failover.json]

vigil (bench/pg_vigil.py): a promotable group with synchronous = "on" (or --synchronous's
mode: "off" measures what asynchronous mode loses within max_lag, 1 MB) and a floating
address, a witness in the client's namespace, stand-in watchdogs of 2 s; the writer writes
through the floating address. Its timings are the lab's (keepalive 100 ms, deadtime 500 ms)
unless --deadtime is given (keepalive D/5, warntime D/2, initdead 3*D). Patroni
(bench/pg_cluster.py): Patroni 3.0.2, one etcd, synchronous_mode, --profile's timings; the
writer writes to both nodes (libpq multi-host, read-write).

Runs alternate between the systems: for each fault, run i of every system, then run i+1.
The table gives each fault's median and range (min-max) per system of:

  outage s         first failed write to the next acknowledged one, the longest after the fault
  ack gap s        the longest time between two acknowledged writes after the fault
  promoted s       fault to the new primary's first answer as primary
  lost             acknowledged rows missing on the final primary
  two primaries s  the longest time both servers answered as primary
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path
from typing import Any

from bench import common
from bench.pg_cluster import PROFILES, PatroniCluster, described, missing, patroni_args
from bench.pg_run import FAULTS, HEADERS, Servers, cells, line, one, summarize
from bench.pg_vigil import VigilCluster, lab_timings
from bench.pg_vigil import versions as vigil_versions
from vigil.config.duration import parse_duration
from vigil.lab.netns import exit_on_sigterm
from vigil.lab.pgpair import WATCHDOG_S

SYSTEMS = ("vigil", "patroni")


def labels(deadtime: float | None, profile: str, synchronous: str = "on") -> dict[str, str]:
    """Each system's name in the table: its timings (and vigil's mode, unless "on")."""
    t = lab_timings(deadtime)
    mode = "" if synchronous == "on" else f" synchronous={synchronous}"
    return {"vigil": f"vigil deadtime {t.get('deadtime', '500ms')}{mode}",
            "patroni": f"patroni {profile}"}


def render_both(results: dict[str, dict[str, dict[str, Any]]], names: dict[str, str]) -> str:
    """One table: for each fault (in the order run), a row per system."""
    faults: list[str] = []
    for per_fault in results.values():
        faults += [f for f in per_fault if f not in faults]
    rows = []
    for f in faults:
        first = True
        for system, per_fault in results.items():
            if f in per_fault:
                rows.append([f if first else "", names.get(system, system),
                             *cells(per_fault[f]["summary"])])
                first = False
    return common.table(["fault", "system", *HEADERS], rows)


def parse_list(text: str, known: tuple[str, ...], what: str) -> list[str]:
    """"a,b" -> ["a", "b"]; ValueError naming any unknown one."""
    items = [x.strip() for x in text.split(",") if x.strip()]
    if unknown := sorted(set(items) - set(known)):
        raise ValueError(f"unknown {what} {', '.join(unknown)}; known: {', '.join(known)}")
    return items


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    ap = argparse.ArgumentParser(prog="python -m bench.pg_failover", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1, help="runs per fault and system")
    ap.add_argument("--faults", default=",".join(FAULTS), help=f"of {', '.join(FAULTS)}")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help=f"of {', '.join(SYSTEMS)}")
    ap.add_argument("--deadtime", default=None, metavar="DURATION",
                    help="vigil's deadtime (e.g. 1s); default: the lab's (500ms)")
    patroni_args(ap)
    ap.add_argument("--freeze", type=float, default=40.0, help="seconds a freeze lasts")
    ap.add_argument("--synchronous", choices=("on", "off", "strict"), default="on",
                    help="vigil's synchronous mode (Patroni's stays synchronous_mode)")
    ap.add_argument("--out", type=Path, default=Path("bench/results-pg-failover.json"))
    ap.add_argument("--logs", type=Path, default=None, metavar="DIR",
                    help="keep each run's logs in DIR/SYSTEM/FAULT-RUN/")
    args = ap.parse_args(argv)
    try:
        faults = parse_list(args.faults, FAULTS, "fault(s)")
        systems = parse_list(args.systems, SYSTEMS, "system(s)")
        deadtime = None if args.deadtime is None else parse_duration(args.deadtime)
    except ValueError as e:
        ap.error(str(e))
    if "patroni" in systems and (absent := missing()):
        print(f"missing: apt-get install -y --no-install-recommends {' '.join(absent)}",
              file=sys.stderr)
        return 2
    makers: dict[str, Callable[[], AbstractContextManager[Servers]]] = {
        "vigil": partial(VigilCluster, deadtime, args.synchronous),
        "patroni": partial(PatroniCluster.create, PROFILES[args.profile], args.dcs)}
    about: dict[str, dict[str, Any]] = {}
    if "vigil" in systems:
        about["vigil"] = {"versions": vigil_versions(), "watchdog_s": WATCHDOG_S,
                          "synchronous": args.synchronous,
                          "timing": lab_timings(deadtime) or {
                              "keepalive": "100ms", "warntime": "250ms",
                              "deadtime": "500ms", "initdead": "2s"}}
    if "patroni" in systems:
        about["patroni"] = described(args.profile, args.dcs)
    names = labels(deadtime, args.profile, args.synchronous)
    for s in systems:
        print(f"{names[s]}: {about[s]['versions']}, timing {about[s]['timing']}", flush=True)
    info = common.machine()
    results: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in systems}
    for fault in faults:
        records: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
        for i in range(args.runs):
            for s in systems:
                logs = args.logs / s if args.logs else None
                rec = one(makers[s], fault, args.freeze, i, logs)
                records[s].append(rec)
                print(line(f"{s} {fault} #{i}", rec), flush=True)
        for s in systems:
            results[s][fault] = {"summary": summarize(records[s]), "runs": records[s]}
    print()
    print(render_both(results, names))
    data = {"machine": info, "freeze_s": args.freeze, "runs": args.runs,
            "systems": {s: {"label": names[s], **about[s], "faults": results[s]}
                        for s in systems},
            "loadavg_at_end": os.getloadavg()}
    common.write_json(args.out, data)
    bad = [r for v in results.values() for f in v.values() for r in f["runs"] if "error" in r]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
