"""Client-visible failover outages of a real two-node vigil cluster, as `make bench` runs it.

    python -m bench.failover [--runs 5] [--deadtimes 300ms,1s] [--seed N]
                             [--out bench/results-failover.json] [--no-idle] [--idle-seconds 30]

For each deadtime D the cluster runs with keepalive D/5, warntime D/2, initdead max(3D, 1s),
auto_failback on. Each run builds a fresh LabCluster (n1 home and owner, n2 standby, a client)
and probes the floating IP from the client every 10 ms with a new TCP connection (100 ms
timeout) while two faults are injected one after the other:

  sigterm   SIGTERM of the owner n1 (planned), then n1 started again (failback)
  linkcut   n1's eth0 taken down from inside n1 (unplanned), then up again (failback)
  standby   `vigil standby` on n1, then `vigil takeover` on n1 (two planned hand-overs)

Each fault comes after a random 0..keepalive sleep (seeded; the seed is printed), so it lands
at a random phase of the heartbeat grid. A phase's outage is the longest run of failed probes
overlapping the window from its fault to the next one (`vigil.lab.probe.outages`), measured
from the last answered probe before it to the first one after; 0 when no probe failed. A
HolderMonitor follows both nodes' addresses for the whole run: both holding the floating
address at once must never happen. From the same address events comes "no holder": the
longest span in the phase with the address on neither node (the servers' side of a
hand-over, free of the prober's 10 ms granularity), and "moved": when the new owner's
address appeared, in ms after the fault, exact to ~1 ms. Probes start every 10 ms whether or
not earlier ones have finished, so an outage is known to one interval; a connection whose
SYN falls into a hand-over's gap is lost (the probe times out; a real TCP client would
retransmit it after 1 s) while the next probe, 10 ms later, is answered: such an outage reads
10-20 ms. "lost" counts the probes that failed in the phase.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import common
from vigil.config.duration import parse_duration
from vigil.lab.netns import exit_on_sigterm
from vigil.lab.cluster import HolderMonitor, LabCluster
from vigil.lab.probe import Prober, Sample, outages, owners

# The daemon's line for a look before taking that heard nobody (lookout.py): its cost.
PROBED = re.compile(r"free \(nobody answered in ([0-9.]+) ms\)")
PROBE_INTERVAL = 0.01
PROBE_TIMEOUT = 0.1
PLANNED_TARGET = 0.030
UNPLANNED_MARGIN = 0.050  # link cut target: deadtime + this
TAIL = 0.3  # seconds of probing after the last hand-over, to catch a late outage

# (scenario, phase key, label, planned?)
PHASES = [
    ("sigterm", "sigterm", "SIGTERM of the owner", True),
    ("sigterm", "sigterm_failback", "owner restarted (failback)", True),
    ("linkcut", "linkcut", "owner's link cut", False),
    ("linkcut", "linkcut_failback", "link restored (failback)", True),
    ("standby", "standby", "vigil standby", True),
    ("standby", "takeover", "vigil takeover", True),
    ("kill9", "kill9", "kill -9 of the owner's daemon", False),
    ("kill9", "kill9_restart", "daemon restarted (failback)", True),
    ("freeze", "freeze", "owner's daemon frozen (SIGSTOP)", False),
    ("freeze", "freeze_resume", "resumed (SIGCONT, failback)", True),
]
SCENARIOS = list(dict.fromkeys(s for s, *_ in PHASES))

# PLATFORM-NOTES, "Reference failover figures, measured here" (median of 5, same lab and
# prober): keepalived 2.2.7 with adverts every 0.1 s (VRRPv3) and every 1 s, and Heartbeat
# 3.0.6 at keepalive 200 ms / deadtime 1 s. "-" where the notes have no such row.
REFERENCE = {
    "sigterm": ("0.06 s | 0.61 s", "0.34 s"),
    "sigterm_failback": ("-", "-"),
    "linkcut": ("0.29 s | 3.0-3.2 s", "1.39 s"),
    "linkcut_failback": ("0 | 0", "16 s"),
    "standby": ("-", "-"),
    "takeover": ("-", "-"),
    # keepalived and Heartbeat leave the address on the killed daemon's node for good.
    "kill9": ("never (two MACs)", "never"),
    "kill9_restart": ("-", "-"),
    "freeze": ("-", "-"),
    "freeze_resume": ("-", "-"),
}
# Issue 3's target for a killed (or frozen) daemon: deadtime + this.
KILLED_MARGIN = 0.200


def target(phase: str, deadtime: float) -> float:
    planned = next(p for _, k, _, p in PHASES if k == phase)
    if planned:
        return PLANNED_TARGET
    return deadtime + (KILLED_MARGIN if phase in ("kill9", "freeze") else UNPLANNED_MARGIN)


class AddressLog(HolderMonitor):
    """A HolderMonitor that measures, from its record of every change, the time with no
    holder at all (the servers' side of a hand-over)."""

    def gaps(self, after: float, before: float | None) -> list[float]:
        """Lengths of the spans with no holder that end within [after, before)."""
        held: set[str] = set()  # the monitor is entered before any daemon starts
        empty_since: float | None = None
        found = []
        for t, node, holds in sorted(self.changes):
            (held.add if holds else held.discard)(node)
            if not held and empty_since is None:
                empty_since = t
            elif held and empty_since is not None:
                if t >= after and (before is None or t < before):
                    found.append(t - empty_since)
                empty_since = None
        return found


# --- one run -----------------------------------------------------------------------------------

def run_once(scenario: str, deadtime: float, rng: random.Random,
             keepalive: float | None = None) -> dict[str, Any]:
    t = common.timings(deadtime, keepalive)
    keepalive = parse_duration(t["keepalive"])
    wait = max(10.0, 4 * deadtime + 5)
    faults: list[tuple[str, float, str]] = []  # (phase, when, new owner)
    with LabCluster(auto_failback=True, **t) as c, AddressLog(c) as mon:
        c.start("n1")
        c.start("n2")
        common.settle(c)
        with Prober(c.lab, "client", c.url(), interval=PROBE_INTERVAL, timeout=PROBE_TIMEOUT,
                    duration=3600) as p:
            p.wait_sample(lambda s: s.node == "n1", timeout=5)

            def fault(phase: str, action: Callable[[], Any], new_owner: str) -> None:
                time.sleep(rng.uniform(0, keepalive))
                t0 = time.monotonic()
                faults.append((phase, t0, new_owner))
                action()
                p.wait_sample(lambda s: s.node == new_owner, after=t0, timeout=wait)
                c.wait_holder(new_owner, timeout=wait)

            def cli(cmd: str) -> None:
                r = c.vigil("n1", cmd)
                if r.returncode != 0:
                    raise RuntimeError(f"vigil {cmd} exited {r.returncode}: {r.stderr.strip()}")

            def stop(node: str) -> None:
                code = c.stop(node)
                if code != 0:
                    raise RuntimeError(f"vigil on {node} exited {code} after SIGTERM")

            try:
                if scenario == "sigterm":
                    fault("sigterm", lambda: stop("n1"), "n2")
                    fault("sigterm_failback", lambda: c.start("n1"), "n1")
                elif scenario == "linkcut":
                    fault("linkcut", lambda: c.lab.link_down("n1"), "n2")
                    time.sleep(0.5)  # the link stays down a while before it comes back
                    fault("linkcut_failback", lambda: c.lab.link_up("n1"), "n1")
                elif scenario == "standby":
                    fault("standby", lambda: cli("standby"), "n2")
                    fault("takeover", lambda: cli("takeover"), "n1")
                elif scenario == "kill9":
                    pid = c.daemons["n1"].pid
                    fault("kill9", lambda: os.kill(pid, signal.SIGKILL), "n2")
                    c.daemons.pop("n1").wait(5)
                    fault("kill9_restart", lambda: c.start("n1"), "n1")
                elif scenario == "freeze":
                    pid = c.daemons["n1"].pid
                    try:
                        fault("freeze", lambda: os.kill(pid, signal.SIGSTOP), "n2")
                        time.sleep(deadtime)  # frozen well past deadtime
                    finally:
                        t_cont = time.monotonic()
                        os.kill(pid, signal.SIGCONT)
                    # The thawed node waits one deadtime for fresh news, then fails back.
                    faults.append(("freeze_resume", t_cont, "n1"))
                    p.wait_sample(lambda s: s.node == "n1", after=t_cont, timeout=wait)
                    c.wait_holder("n1", timeout=wait)
                else:
                    raise ValueError(scenario)
                time.sleep(TAIL)
            except Exception as e:
                raise RuntimeError(f"{type(e).__name__}: {e}\n--- n1 log\n"
                                   f"{c.log('n1')[-1500:]}\n--- n2 log\n"
                                   f"{c.log('n2')[-1500:]}") from e
            samples = p.stop()
        probe_ms = [float(m) for m in PROBED.findall(c.log("n1") + c.log("n2"))]
    first = faults[0][1]
    return {
        "phases": measure(samples, faults, mon),
        "probe_ms": probe_ms,  # look before taking: each probe that heard nobody
        "double_owner": bool(mon.doubles),
        "double_owner_at_ms": [round((d - first) * 1000, 1) for d in mon.doubles],
        "double_owner_ms": [round(o * 1000, 1) for o in mon.overlaps],
        "probes": len(samples),
    }


def measure(samples: list[Sample], faults: list[tuple[str, float, str]],
            mon: AddressLog) -> dict[str, Any]:
    """Each phase's outage, who answered, when the new owner took the address, and how long
    no node held it."""
    phases = {}
    for i, (phase, t0, new_owner) in enumerate(faults):
        t1 = faults[i + 1][1] if i + 1 < len(faults) else None
        window = [s for s in samples if s.t >= t0 and (t1 is None or s.t < t1)]
        found = outages(samples, after=t0, before=t1)
        worst = max(found, key=lambda o: o.duration, default=None)
        changes = [(round((t - t0) * 1000, 1), n) for t, n in owners(window)]
        answered = [s.node for s in window if s.ok]
        gaps = mon.gaps(t0, t1)
        added = [t for t, n, holds in mon.changes if n == new_owner and holds and t >= t0]
        phases[phase] = {
            "outage_ms": round(worst.duration * 1000, 1) if worst else 0.0,
            "outage_complete": worst.complete if worst else True,
            "outage_starts_ms": round((worst.start - t0) * 1000, 1) if worst else None,
            "failed_probes": sum(o.failures for o in found),
            "errors": dict(Counter(s.err for s in window if not s.ok)),
            "outages": len(found),
            "answered_after": answered[-1] if answered else None,
            "owner_changes_ms": changes,  # (ms after the fault, node) at each change
            "no_holder_ms": round(max(gaps, default=0.0) * 1000, 2),
            "address_moved_ms": round((min(added) - t0) * 1000, 1) if added else None,
        }
    return phases


# --- the whole benchmark -----------------------------------------------------------------------

def run(runs: int, deadtimes: list[float], rng: random.Random,
        scenarios: list[str] = SCENARIOS,
        keepalives: dict[float, float] | None = None) -> list[dict[str, Any]]:
    """`keepalives`: deadtime -> keepalive where it is not deadtime / 5."""
    results = []
    for d in deadtimes:
        ka = (keepalives or {}).get(d)
        for scenario in scenarios:
            for i in range(runs):
                t0 = time.monotonic()
                try:
                    r: dict[str, Any] = run_once(scenario, d, rng, ka)
                except Exception as e:  # one bad run must not lose the others
                    r = {"error": str(e)}
                r.update(scenario=scenario, deadtime_ms=round(d * 1000), run=i + 1,
                         timings=common.timings(d, ka), seconds=round(time.monotonic() - t0, 1))
                results.append(r)
                print(progress(r), flush=True)
    return results


def run_keepalived_linkcut(runs: int, advert: float, rng: random.Random) -> dict[str, Any]:
    """The anchor beside the link cut, in the same run: keepalived (bench/anchors.py) moves
    the same address between the same namespaces, a lab web server on each node, the same
    prober; n1's eth0 goes down from inside n1 at a random phase of the advert grid, comes
    back 0.5 s later (n1 preempts: failback). Outages are measured as vigil's."""
    from bench import anchors
    from vigil.lab.cluster import WEB_PORT, vip_address
    from vigil.lab.netns import Lab

    class _Where:  # what HolderMonitor reads of a cluster
        def __init__(self, lab: Lab) -> None:
            self.lab, self.vip = lab, vip_address(lab)

    found = []
    for i in range(runs):
        faults: list[tuple[str, float, str]] = []
        with Lab.create(["n1", "n2", "client"]) as lab:
            where = _Where(lab)
            webs = [lab.popen(n, [sys.executable, "-m", "vigil.lab.web", "--name", n,
                                  "--port", str(WEB_PORT)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    for n in ("n1", "n2")]
            try:
                for n in ("n1", "n2"):
                    lab.wait_listening(n, WEB_PORT)
                with AddressLog(where) as mon, anchors.keepalived_pair(lab, where.vip, advert), \
                        Prober(lab, "client", f"http://{where.vip}:{WEB_PORT}/",
                               interval=PROBE_INTERVAL, timeout=PROBE_TIMEOUT,
                               duration=3600) as p:
                    p.wait_sample(lambda s: s.node == "n1", timeout=15)
                    for phase, action, owner in (
                            ("linkcut", lambda: lab.link_down("n1"), "n2"),
                            ("linkcut_failback", lambda: lab.link_up("n1"), "n1")):
                        time.sleep(rng.uniform(0, advert))
                        t0 = time.monotonic()
                        faults.append((phase, t0, owner))
                        action()
                        p.wait_sample(lambda s, o=owner: s.node == o, after=t0, timeout=15)
                        time.sleep(0.5)
                    time.sleep(TAIL)
                    samples = p.stop()
                r = {"phases": measure(samples, faults, mon), "double_owner": bool(mon.doubles)}
            except Exception as e:  # one bad run must not lose the others
                r = {"error": str(e)}
            finally:
                for w in webs:
                    Lab.stop(w)
        r.update(run=i + 1)
        found.append(r)
        print(f"keepalived adv {advert:g}s run {i + 1}: {_outcome(r)}", flush=True)
    ok = [r for r in found if "error" not in r]
    return {"advert_s": advert, "runs": found, "summary": {
        phase: common.summary([r["phases"][phase]["outage_ms"] for r in ok])
        for phase in ("linkcut", "linkcut_failback")}}


def progress(r: dict[str, Any]) -> str:
    head = f"{r['scenario']:8} D={common.ms(r['deadtime_ms'] / 1000):6} run {r['run']}:"
    return f"{head} {_outcome(r)}"


def _outcome(r: dict[str, Any]) -> str:
    """One run's phases (outage, who answered after), or why it failed."""
    if "error" in r:
        return f"FAILED: {r['error'].splitlines()[0]}"
    parts = [f"{k} {v['outage_ms']:.0f} ms -> {v['answered_after']}"
             for k, v in r["phases"].items()]
    double = "  DOUBLE OWNER" if r["double_owner"] else ""
    return ", ".join(parts) + double


def summarize(results: list[dict[str, Any]], deadtimes: list[float]) -> list[dict[str, Any]]:
    rows = []
    for d in deadtimes:
        for scenario, phase, label, planned in PHASES:
            mine = [r for r in results if r["scenario"] == scenario
                    and r["deadtime_ms"] == round(d * 1000)]
            ok = [r for r in mine if "error" not in r]
            done = [r["phases"][phase] for r in ok if phase in r["phases"]]
            values = [ph["outage_ms"] for ph in done]
            goal = target(phase, d) * 1000
            rows.append({
                "scenario": scenario, "phase": phase, "label": label, "planned": planned,
                "deadtime_ms": round(d * 1000), "outage_ms": common.summary(values),
                "no_holder_ms": common.summary([ph["no_holder_ms"] for ph in done]),
                "address_moved_ms": common.summary([ph["address_moved_ms"] for ph in done
                                                    if ph["address_moved_ms"] is not None]),
                "target_ms": round(goal), "within_target": sum(v <= goal for v in values),
                "lost_probes": sum(ph["failed_probes"] for ph in done),
                "failed_runs": len(mine) - len(ok),
                "double_owner_runs": sum(r["double_owner"] for r in ok),
                "answered_after": sorted({ph["answered_after"] for ph in done} - {None}),
                "reference_keepalived_adv_0.1s|1s": REFERENCE[phase][0],
                "reference_heartbeat_200ms/1s": REFERENCE[phase][1],
            })
    return rows


def probe_cost(results: list[dict[str, Any]]) -> dict[str, Any]:
    """What looking before taking cost the failovers that needed it (a peer gone silent):
    each probe that heard nobody, median / p99 / max, in ms."""
    v = sorted(x for r in results for x in r.get("probe_ms", []))
    pick = (lambda q: v[min(len(v) - 1, int(q * len(v)))]) if v else (lambda q: None)
    return {"n": len(v), "median": pick(0.5), "p99": pick(0.99), "max": v[-1] if v else None}


def render(rows: list[dict[str, Any]]) -> str:
    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f}"

    def g(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"
    table = [[r["label"], common.ms(r["deadtime_ms"] / 1000), f(r["outage_ms"]["median"]),
              f(r["outage_ms"]["min"]), f(r["outage_ms"]["max"]), r["target_ms"],
              f"{r['within_target']}/{r['outage_ms']['n']}",
              f"{f(r['address_moved_ms']['median'])} / {f(r['address_moved_ms']['max'])}",
              f"{g(r['no_holder_ms']['median'])} / {g(r['no_holder_ms']['max'])}",
              r["lost_probes"], ",".join(r["answered_after"]),
              f"{r['double_owner_runs']}" + (f" ({r['failed_runs']} failed)"
                                             if r["failed_runs"] else ""),
              r["reference_keepalived_adv_0.1s|1s"], r["reference_heartbeat_200ms/1s"]]
             for r in rows]
    return common.table(["scenario", "deadtime", "median ms", "min", "max", "target ms",
                         "in target", "moved med/max", "no holder med/max", "lost", "then",
                         "double",
                         "keepalived adv 0.1s | 1s", "heartbeat 200ms/1s"], table)


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    ap = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="runs per scenario and deadtime")
    ap.add_argument("--deadtimes", default="300ms,1s", help="comma-separated deadtimes, "
                    "each DEADTIME (keepalive D/5) or KEEPALIVE/DEADTIME")
    ap.add_argument("--keepalived", type=float, default=None, metavar="ADVERT",
                    help="also run keepalived's link cut, adverts every ADVERT s, same run")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    ap.add_argument("--out", type=Path, default=Path("bench/results-failover.json"))
    ap.add_argument("--no-idle", action="store_true", help="skip the idle cost measurement")
    ap.add_argument("--idle-seconds", type=float, default=30.0)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help=f"comma-separated, of {', '.join(SCENARIOS)}")
    args = ap.parse_args(argv)
    scenarios = [x.strip() for x in args.scenarios.split(",") if x.strip()]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; known: "
                 f"{', '.join(SCENARIOS)}")
    keepalives: dict[float, float] = {}
    deadtimes = []
    for item in (x.strip() for x in args.deadtimes.split(",") if x.strip()):
        ka, _, d = item.rpartition("/")
        deadtimes.append(parse_duration(d))
        if ka:
            keepalives[deadtimes[-1]] = parse_duration(ka)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"seed: {seed}", flush=True)
    info = common.machine()
    rng = random.Random(seed)
    results = run(args.runs, deadtimes, rng, scenarios, keepalives)
    anchor = (run_keepalived_linkcut(args.runs, args.keepalived, rng)
              if args.keepalived is not None else None)
    rows = [r for r in summarize(results, deadtimes) if r["scenario"] in scenarios]
    print()
    print(render(rows))
    print(f"\nseed {seed}\n"
          "outage: longest client-visible gap after the fault, ms (a new connection every\n"
          "  10 ms, each with a 100 ms timeout, not waiting for each other)\n"
          "moved: ms from the fault to the address on the new owner; no holder: ms with the\n"
          "  address on neither node (both from netlink address events)\n"
          f"targets: link cut deadtime + {UNPLANNED_MARGIN * 1000:.0f} ms, planned "
          f"{PLANNED_TARGET * 1000:.0f} ms; reference figures: PLATFORM-NOTES.md (median of 5)")
    doubles = sum(1 for r in results if r.get("double_owner"))
    print(f"double owner (both nodes held the address): {doubles} of {len(results)} runs")
    if anchor is not None:
        print(f"keepalived, adverts every {anchor['advert_s']:g} s, same run: " + ", ".join(
            f"{k} median {v['median']} ms (min {v['min']}, max {v['max']})"
            for k, v in anchor["summary"].items()))
    probes = probe_cost(results)
    print(f"look before taking: {probes['n']} probes heard nobody; they took median "
          f"{probes['median']} ms, p99 {probes['p99']} ms, max {probes['max']} ms "
          f"(address_probe 10 ms; target p99 under 15 ms)")
    data: dict[str, Any] = {"machine": info, "seed": seed, "runs": args.runs,
                            "deadtimes_ms": [round(d * 1000) for d in deadtimes],
                            "probe": {"interval_ms": PROBE_INTERVAL * 1000,
                                      "timeout_ms": PROBE_TIMEOUT * 1000},
                            "summary": rows, "probe_cost_ms": probes, "results": results,
                            "keepalived_linkcut": anchor}
    if not args.no_idle:
        from bench import idle
        print()
        data["idle"] = idle.measure(args.idle_seconds)
        print(idle.render(data["idle"]))
    data["loadavg_at_end"] = os.getloadavg()  # other work on the machine shows here
    common.write_json(args.out, data)
    failed = sum(1 for r in results if "error" in r)
    return 1 if failed or doubles else 0


if __name__ == "__main__":
    raise SystemExit(main())
