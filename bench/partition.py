"""Issue 3's scenarios, repeated: never two owners, seen from the client; outage per fault.

    python -m bench.partition [--runs 20] [--scenarios ...] [--seed N]
                              [--out bench/results-partition.json]

Each run builds a fresh LabCluster (n1 home and owner, n2 standby, a client) at the default
timings (keepalive 100 ms, deadtime 300 ms), injects one fault after a random 0..keepalive
sleep (seeded; the seed is printed), and watches three ways, all at once:

  arp     from the client: an ARP request for the floating address every 10 ms
          (vigil.lab.arpwatch); one request answered by two MACs is a double owner
  address from the nodes: kernel address events (HolderMonitor); both holding it is one too
  http    from the client: a new TCP connection every 10 ms; outage = the longest gap

Scenarios (stand-ins as in tests/integration: the client host doubles as router and
witness, a loop device is the shared disk, socat's pty pair the serial cable, an external
"plug puller" the power switch):

  ping         seed test 2: n1 loses its router (the ping node) but not n2: the group moves
  cut_fence    seed test 4, fencing: every packet between the nodes dropped
  cut_fence_1w   the same, one way only (n1 stops hearing n2)
  cut_witness  seed test 4, witness: both reach it; the group stays on n1
  cut_witness_1w n2 stops hearing n1 (one way); the group stays on n1
  isolated     witness; n1 cut from everything: it stops by itself, n2 takes over
  cut_disk     seed test 4, disk heartbeat: no takeover, a partition alarm
  poison       disk fencing: n1's daemon frozen; n2 poisons it and takes over
  cut_serial   seed test 4, serial link: no takeover
  kill9        seed test 5: kill -9 of n1's daemon; its guard removes the address
  freeze       kill -STOP of n1's daemon for 1 s (> deadtime), then SIGCONT
  total_kill   every vigil process of n1 killed at once (guard and daemon): its address
               stays with its host; n2 looks before taking it, hears it, and waits
  total_kill_watchdog  the same with a watchdog on n1 (a stand-in: this kernel has none,
               vigil.lab.watchdog acts out its expiry by resetting n1): the reset frees
               the address, n2's next look hears nobody and takes over
  hb_cable     heartbeats on a cable of their own (eth1), the address and the client on
               eth0: the cable cut, both count the other dead, and the address stays
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import common
from vigil.lab.arpwatch import doubles as arp_doubles
from vigil.lab.cluster import HolderMonitor, LabCluster
from vigil.lab.disk import loop_device
from vigil.lab.netns import exit_on_sigterm
from vigil.lab.probe import Prober, outages
from vigil.lab.watchdog import StandInWatchdog

DEADTIME = 0.3
KEEPALIVE = 0.1
TIMINGS = dict(keepalive="100ms", warntime="150ms", deadtime="300ms", initdead="1s")
PLUG_PULLER = """#!/bin/sh
# the lab's power switch: PROGRAM PREFIX VIP ACTION NODE
ns="$1-$4"
for pid in $(ip netns pids "$ns"); do
  case "$(tr '\\0' ' ' < /proc/$pid/cmdline)" in *vigil*) kill -9 "$pid";; esac
done
ip -n "$ns" addr del "$2/24" dev eth0 2>/dev/null
ip -n "$ns" link set eth0 down
echo "$3 $4" >> "$(dirname "$0")/fenced"
"""
# scenario -> (who must hold the address at the end, how long to watch after the fault, s)
SCENARIOS: dict[str, tuple[str, float]] = {
    "ping": ("n2", 3.0), "cut_fence": ("n1", 5.0), "cut_fence_1w": ("n1", 5.0),
    "cut_witness": ("n1", 3.0), "cut_witness_1w": ("n1", 3.0), "isolated": ("n2", 3.0),
    "cut_disk": ("n1", 3.0), "poison": ("n2", 3.0), "cut_serial": ("n1", 3.0),
    "kill9": ("n2", 2.0), "freeze": ("n2", 2.0),
    "total_kill": ("n1", 3.0), "total_kill_watchdog": ("n2", 4.0), "hb_cable": ("n1", 3.0),
}
# The outage each may cause, from the issue: deadtime + 200 ms for a dead or frozen daemon;
# deadtime + the protection's own time where the group must move; none where it stays.
TARGET_MS = {"kill9": 500, "freeze": 500, "ping": 300 + 400 + 200,  # + deadping
             # + the witness lease + the settle (1.5 deadtimes: core/failover.py)
             "isolated": 300 + 600 + 450 + 200,
             "poison": 300 + 600 + 200,  # + the pill's wait (2 x deadtime)
             # from the reset: the next look (every keepalive) and the 10 ms it listens
             "total_kill_watchdog": 100 + 10 + 200}


def setup(c: LabCluster, scenario: str, stack: ExitStack) -> dict[str, Any]:
    """Add the scenario's protection to the configuration; start what it needs."""
    extra: dict[str, Any] = {}
    if scenario == "ping":
        router = c.lab.address("client")
        c.config_path.write_text(c.config_path.read_text().replace(
            "[cluster]\n", f'[cluster]\nping = ["{router}"]\nping_interval = "100ms"\n'
                           f'deadping = "400ms"\n'))
    elif scenario.startswith("cut_fence"):
        agent = c.dir / "fence-lab"
        agent.write_text(PLUG_PULLER)
        agent.chmod(0o755)
        c.add_config(f'[fencing]\nagent = "external"\naction = "off"\ndelay = "2s"\n'
                     f'command = ["{agent}", "{c.lab.prefix}", "{c.vip}"]\n')
    elif scenario in ("cut_witness", "cut_witness_1w", "isolated"):
        c.add_config(f'[witness]\naddress = "{c.lab.address("client")}"\n')
        c.start_witness()
    elif scenario in ("cut_disk", "poison"):
        dev = stack.enter_context(loop_device(c.dir / "disk.img"))
        c.add_config(f'[[link]]\nmode = "disk"\ndevice = "{dev}"\n' +
                     ('\n[fencing]\nagent = "disk"\n' if scenario == "poison" else ""))
    elif scenario == "total_kill_watchdog":
        dog = stack.enter_context(StandInWatchdog(c.dir / "n1-watchdog", timeout=2.0,
                                                  expire=lambda: c.reset("n1")))
        c.node_config("n1", f'watchdog = "{dog.path}"')
        extra["watchdog"] = dog
    elif scenario == "hb_cable":
        text = c.config_path.read_text()
        for n in ("n1", "n2"):  # heartbeats on link 1 only; the address stays on eth0
            both = f'["{c.lab.address(n, 0)}", "{c.lab.address(n, 1)}"]'
            text = text.replace(both, f'["{c.lab.address(n, 1)}"]')
        c.config_path.write_text(text)
    elif scenario == "cut_serial":
        a, b = c.dir / "ttyA", c.dir / "ttyB"
        socat = subprocess.Popen(["socat", f"pty,raw,echo=0,link={a}",
                                  f"pty,raw,echo=0,link={b}"], stderr=subprocess.DEVNULL)
        stack.callback(lambda: (socat.terminate(), socat.wait(5)))
        common.wait_until(lambda: a.exists() and b.exists(), 5, "no ptys from socat")
        c.add_config(f'[[link]]\nmode = "serial"\nbaud = 115200\n'
                     f'device = {{ n1 = "{a}", n2 = "{b}" }}\n')
    return extra


def fault(c: LabCluster, scenario: str) -> Callable[[], None] | None:
    """Inject the fault; return what undoes it at the end (None: nothing)."""
    n1, n2 = c.lab.address("n1"), c.lab.address("n2")
    if scenario == "ping":
        c.lab.drop("n1", "both", peer=c.lab.address("client"))
    elif scenario in ("cut_fence", "cut_witness", "cut_disk", "cut_serial"):
        c.lab.drop("n1", "both", peer=n2)
    elif scenario == "cut_fence_1w":
        c.lab.drop("n1", "in", peer=n2)
    elif scenario == "cut_witness_1w":
        c.lab.drop("n2", "in", peer=n1)
    elif scenario == "isolated":
        c.lab.drop("n1", "both")
    elif scenario == "kill9":
        os.kill(c.daemons["n1"].pid, signal.SIGKILL)
    elif scenario in ("total_kill", "total_kill_watchdog"):
        c.kill_all("n1")
    elif scenario == "hb_cable":
        for n in ("n1", "n2"):
            c.lab.drop(n, "both", link=1)
    elif scenario in ("poison", "freeze"):
        pid = c.daemons["n1"].pid
        os.kill(pid, signal.SIGSTOP)
        return lambda: os.kill(pid, signal.SIGCONT)
    else:
        raise ValueError(scenario)
    return None


def run_once(scenario: str, rng: random.Random) -> dict[str, Any]:
    end_owner, watch = SCENARIOS[scenario]
    with ExitStack() as stack:
        c = stack.enter_context(LabCluster(links=2 if scenario == "hb_cable" else 1,
                                           **TIMINGS))
        extra = setup(c, scenario, stack)
        mon = stack.enter_context(HolderMonitor(c))
        c.start("n1")
        c.start("n2")
        common.settle(c)
        if scenario in ("cut_witness", "cut_witness_1w", "isolated"):
            time.sleep(0.7)  # past the witness's first lease: n1 holds the group's lease
        arp = c.lab.popen("client", [sys.executable, "-m", "vigil.lab.arpwatch", "--ip", c.vip,
                                     "--duration", "60"], stdout=subprocess.PIPE, text=True)
        stack.callback(lambda: arp.poll() is None and arp.terminate())
        p = stack.enter_context(Prober(c.lab, "client", c.url(), interval=0.01, timeout=0.1,
                                       duration=120))
        p.wait_sample(lambda s: s.node == "n1", timeout=5)
        time.sleep(0.2 + rng.uniform(0, KEEPALIVE))
        t0 = time.monotonic()
        undo = fault(c, scenario)
        try:
            time.sleep(watch)
            holders = c.holders()
        finally:
            if undo:
                undo()
        exit_n1 = None
        if scenario == "poison":
            exit_n1 = c.daemons.pop("n1").wait(10)
        dog = extra.get("watchdog")
        reset_at = dog.expired[0] - t0 if dog is not None and dog.expired else None
        time.sleep(0.3)
        samples = p.stop()
        arp.terminate()
        arp_lines = arp.communicate(timeout=10)[0].splitlines()
        found = outages(samples, after=t0)
        waited = "still answered by" in c.log("n2")
        worst = max((o.duration for o in found), default=0.0)
        answered = [s.node for s in samples if s.ok and s.t > t0 + watch - 0.5]
        logs = c.log("n1") + c.log("n2")
        return {
            "holders_at_end": holders, "expected_owner": end_owner,
            "ok": holders == [end_owner],
            "outage_ms": round(worst * 1000, 1),
            "answered_at_end": sorted(set(answered)),
            "arp_requests_answered": len({line.split()[0] for line in arp_lines}),
            "arp_double": len(arp_doubles(arp_lines)),
            "address_double": len(mon.doubles),
            "fenced": (c.dir / "fenced").read_text().split() if (c.dir / "fenced").exists()
            else None,
            "n1_exit": exit_n1,
            "alarm": "NETWORK PARTITION" in logs,
            "looked_and_waited": waited,  # n2 heard the address answered and did not take it
            "watchdog_reset_s": None if reset_at is None else round(reset_at, 2),
        }


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for scenario in SCENARIOS:
        mine = [r for r in results if r["scenario"] == scenario and "error" not in r]
        if not mine and not any(r["scenario"] == scenario for r in results):
            continue
        out = common.summary([r["outage_ms"] for r in mine])
        rows.append({
            "scenario": scenario, "runs": len(mine),
            "errors": sum(1 for r in results if r["scenario"] == scenario and "error" in r),
            "end_owner_ok": sum(r["ok"] for r in mine),
            "outage_ms": out, "target_ms": TARGET_MS.get(scenario),
            "in_target": None if scenario not in TARGET_MS else
            sum(r["outage_ms"] <= TARGET_MS[scenario] for r in mine),
            "arp_double_runs": sum(r["arp_double"] > 0 for r in mine),
            "address_double_runs": sum(r["address_double"] > 0 for r in mine),
            "arp_requests": sum(r["arp_requests_answered"] for r in mine),
        })
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f}"
    return common.table(
        ["scenario", "runs", "end owner ok", "outage med", "min", "max", "target", "in target",
         "two MACs (runs)", "two holders (runs)", "ARP answers"],
        [[r["scenario"], r["runs"], r["end_owner_ok"], f(r["outage_ms"]["median"]),
          f(r["outage_ms"]["min"]), f(r["outage_ms"]["max"]), f(r["target_ms"]),
          "-" if r["in_target"] is None else f"{r['in_target']}/{r['runs']}",
          r["arp_double_runs"], r["address_double_runs"], r["arp_requests"]] for r in rows])


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    ap = argparse.ArgumentParser(prog="python -m bench.partition", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("bench/results-partition.json"))
    args = ap.parse_args(argv)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; known: "
                 f"{', '.join(SCENARIOS)}")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"seed: {seed}", flush=True)
    rng = random.Random(seed)
    info = common.machine()
    results = []
    for scenario in scenarios:
        for i in range(args.runs):
            t0 = time.monotonic()
            try:
                r: dict[str, Any] = run_once(scenario, rng)
            except Exception as e:  # one bad run must not lose the others
                r = {"error": f"{type(e).__name__}: {e}"}
            r.update(scenario=scenario, run=i + 1, seconds=round(time.monotonic() - t0, 1))
            results.append(r)
            print(f"{scenario:15} run {i + 1}: " + (
                f"FAILED {r['error'].splitlines()[0]}" if "error" in r else
                f"outage {r['outage_ms']:.0f} ms, holders {r['holders_at_end']}, two MACs "
                f"{r['arp_double']}, two holders {r['address_double']}"), flush=True)
    rows = summarize(results)
    print()
    print(render(rows))
    print(f"\nseed {seed}; timings {TIMINGS}")
    common.write_json(args.out, {"machine": info, "seed": seed, "runs": args.runs,
                                 "timings": TIMINGS, "summary": rows, "results": results})
    bad = sum(1 for r in results if "error" in r or not r["ok"] or r["arp_double"]
              or r["address_double"])
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
