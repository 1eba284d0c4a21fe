"""`vigil torture`: random faults on a real cluster for a while, invariants checked all along.

A LabCluster (nodes n1 and n2 on two links, a client that doubles as the witness's host) runs
a group made of the floating address and a real daemon (`appd`, monitored, slow to stop so
that a broken release is visible). A generator seeded with `--seed` (printed, so any run can
be replayed) injects one fault at a time, each followed by its undo and a recovery wait:

  kill9, total_kill, freeze_long, freeze_short, link, oneway, loss, cut, standby, takeover,
  restart, resource_kill, both_restart

(total_kill: every vigil process of a node killed at once, its guard too. n1 has a watchdog,
a stand-in whose expiry resets the node (vigil.lab.watchdog): its address then frees and n2
takes over; n2 has none: its host keeps the address, and n1 must look before taking it and
wait. `cut` drops everything between the nodes while the client reaches both: a cut of the
heartbeat links with the public network working.)

Checked throughout (every 10 ms by the observers, after each fault by the checker):
  double_owner   both nodes held the address at once (kernel address events)
  double_arp     two MACs answered one ARP request for it, seen from the client
  outage         the client's longest gap in a fault's window exceeds what the fault
                 explains (deadtime, the witness's lease, initdead, an agent's time...)
  no_recovery    after the undo, the cluster did not return to one holder, both nodes up
  log            a traceback, or an error line no injected fault explains
  start_stop     a resource started twice on a node without a stop in between
  watchdog       n1's watchdog reset the node when no total_kill of n1 explains it
A violation stops the run and leaves a report (seed, fault timeline, the last lines of
every log) in the output directory, next to the summary (JSON) and a timeline (PNG).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

from vigil.lab.arpwatch import doubles as arp_doubles
from vigil.lab.cluster import HolderMonitor, LabCluster
from vigil.lab.netns import exit_on_sigterm
from vigil.lab.probe import Prober, Sample, outages
from vigil.lab.torture_logs import log_violations
from vigil.lab.torture_record import FAULTS, Fault, Run, render, summary, timeline_png
from vigil.lab.watchdog import StandInWatchdog

KEEPALIVE, DEADTIME, INITDEAD = 0.1, 0.3, 1.0
TIMINGS: dict[str, Any] = dict(keepalive="100ms", warntime="150ms", deadtime="300ms",
                              initdead="1s")
LEASE = 2 * DEADTIME
MARGIN = 0.2  # the allowance beyond what a fault explains
STOP_DELAY = 0.2  # appd takes this long to stop: a start before the release shows
WATCHDOG = 2.0  # n1's watchdog timeout (s)
APPD = """#!/bin/sh
# The torture's service: a daemon with a pid file per lab node, slow to stop.
PIDFILE="{dir}/$(ip netns identify $$)-appd.pid"
# Not kill -0: a killed appd stays a zombie until pid 1 reaps it, and a container's pid 1
# may take a second or two (measured here: ~1.5 s), while kill -0 says it runs.
running() {{ [ -f "$PIDFILE" ] || return 1
  state=$(awk '/^State:/ {{print $2}}' "/proc/$(cat "$PIDFILE")/status" 2>/dev/null)
  [ -n "$state" ] && [ "$state" != Z ]; }}
case "$1" in
  start) running && exit 0
         setsid sleep 100000 </dev/null >/dev/null 2>&1 & echo $! > "$PIDFILE" ;;
  stop)  if running; then kill "$(cat "$PIDFILE")"; sleep {stop_delay}; fi
         rm -f "$PIDFILE" ;;
  status) running ;;
esac
"""


class Torture:
    def __init__(self, run: Run) -> None:
        self.run = run
        self.rng = random.Random(run.seed)
        self.c: LabCluster | None = None
        self.mon: HolderMonitor | None = None
        self.probe: Prober | None = None
        self.arp: subprocess.Popen[str] | None = None
        self.arp_lines: list[str] = []
        self.env = {"VIGIL_UNSAFE_SKIP_RELEASE_WAIT": "1"} if run.unsafe else None
        self.samples: list[Sample] = []
        self.dog: StandInWatchdog | None = None
        self.resets_explained = 0  # total kills of n1: each may end in a watchdog reset

    # --- the cluster ----------------------------------------------------------------------

    def build(self) -> LabCluster:
        c = LabCluster(links=2, groups="", **TIMINGS)
        appd = c.dir / "appd"
        appd.write_text(APPD.format(dir=c.dir, stop_delay=STOP_DELAY))
        appd.chmod(0o755)
        c.add_config(
            f'[witness]\naddress = "{c.lab.address("client")}"\n\n'
            f'[[group]]\nname = "web"\nhome = "n1"\n'
            f'[[group.resource]]\ntype = "ip"\naddress = "{c.vip}/24"\ninterface = "eth0"\n'
            f'[[group.resource]]\ntype = "exec"\nstart = ["{appd}", "start"]\n'
            f'stop = ["{appd}", "stop"]\nstatus = ["{appd}", "status"]\n'
            f'monitor = {{ interval = "1s" }}\n'
            f'[group.policy]\nmigration_threshold = 1000\n')
        self.dog = StandInWatchdog(c.dir / "n1-watchdog", WATCHDOG, lambda: c.reset("n1"))
        c.node_config("n1", f'watchdog = "{self.dog.path}"')
        return c

    def start_node(self, node: str) -> None:
        assert self.c is not None
        self.c.start(node, env=self.env)

    def healthy(self) -> bool:
        """One holder, both daemons up and seeing each other, the group running."""
        c = self.c
        assert c is not None
        if len(c.holders()) != 1 or set(c.daemons) < {"n1", "n2"}:
            return False
        try:
            s1, s2 = c.status("n1"), c.status("n2")
        except Exception:
            return False
        return s1["nodes"][1]["state"] == "up" and s2["nodes"][1]["state"] == "up" and \
            any(g["state"] == "running" for s in (s1, s2) for g in s["groups"])

    def owner(self) -> str:
        assert self.c is not None
        holders = self.c.holders()
        return holders[0] if holders else "n1"

    # --- faults ---------------------------------------------------------------------------

    def inject(self, kind: str) -> Fault:
        c = self.c
        assert c is not None
        rng = self.rng
        owner = self.owner()
        node = owner if rng.random() < 0.7 else ("n2" if owner == "n1" else "n1")
        other = "n2" if node == "n1" else "n1"
        f = Fault(kind, node, time.monotonic())
        self.run.faults.append(f)
        undo: Callable[[], None] = lambda: None
        hold = rng.uniform(0.5, 2.0)
        if kind == "kill9":
            os.kill(c.daemons[node].pid, signal.SIGKILL)
            c.daemons.pop(node).wait(5)
            undo = lambda: self.start_node(node)  # noqa: E731
        elif kind == "total_kill":
            c.kill_all(node)
            if node == "n1":  # its watchdog resets it: wait for that, then a little more
                self.resets_explained += 1
                hold = WATCHDOG + rng.uniform(0.5, 1.5)
            undo = lambda: self.start_node(node)  # noqa: E731
        elif kind in ("freeze_long", "freeze_short"):
            pid = c.daemons[node].pid
            hold = rng.uniform(2 * DEADTIME, 4 * DEADTIME) if kind == "freeze_long" else \
                rng.uniform(0.02, DEADTIME / 3)
            os.kill(pid, signal.SIGSTOP)
            undo = lambda: os.kill(pid, signal.SIGCONT)  # noqa: E731
        elif kind == "link":
            link = rng.randrange(2)
            f.detail = f"eth{link}"
            c.lab.link_down(node, link)
            undo = lambda: c.lab.link_up(node, link)  # noqa: E731
        elif kind in ("oneway", "cut", "loss"):
            percent = rng.randrange(5, 51) if kind == "loss" else 100
            direction: Literal["in", "both"] = "in" if kind == "oneway" else "both"
            f.detail = f"{percent}% {direction}"
            for link in range(2):
                c.lab.drop(node, direction, percent, link=link,
                           peer=c.lab.address(other, link) if kind != "loss" else None)
            undo = lambda: c.lab.undrop(node)  # noqa: E731
        elif kind in ("standby", "takeover"):
            r = c.vigil(node, kind)
            f.detail = (r.stdout or r.stderr).strip()[:80]
            hold = 0.0
        elif kind == "restart":
            c.stop(node)
            hold = rng.uniform(0.1, 1.0)
            undo = lambda: self.start_node(node)  # noqa: E731
        elif kind == "resource_kill":
            pidfile = c.dir / f"{c.lab.ns(owner)}-appd.pid"
            f.node = owner
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except (FileNotFoundError, ValueError, ProcessLookupError):
                f.detail = "no appd to kill"
            hold = 0.0
        elif kind == "both_restart":
            c.stop("n1")
            c.stop("n2")
            f.node = "both"
            hold = rng.uniform(0.1, 1.0)

            def both() -> None:
                self.start_node("n1")
                self.start_node("n2")
            undo = both
        else:
            raise ValueError(kind)
        time.sleep(hold)
        undo()
        f.t1 = time.monotonic()
        f.allowed_ms = self.allowed(kind) * 1000
        return f

    @staticmethod
    def allowed(kind: str) -> float:
        """The longest client outage the fault explains."""
        # detect, the lease, the settle (a deadtime and a half: core/failover.py)
        unplanned = DEADTIME + LEASE + 1.5 * DEADTIME + MARGIN
        return {
            "standby": MARGIN + STOP_DELAY, "takeover": MARGIN + STOP_DELAY,
            "restart": MARGIN + STOP_DELAY + 2.0,  # the restart's own hold, at most 1 s
            "resource_kill": MARGIN,  # appd is not what the client talks to
            "both_restart": INITDEAD + 1.0 + 2.0 + MARGIN,
            "freeze_short": MARGIN,
            "loss": unplanned + 2.0,  # lost heartbeats may look like a death, briefly
        }.get(kind, unplanned + 2.0 if kind in ("link", "oneway", "cut") else unplanned)

    # --- checks ---------------------------------------------------------------------------

    def violation(self, what: str, detail: str) -> None:
        self.run.violations.append({"kind": what, "detail": detail,
                                    "at_s": round(time.monotonic() - self.run.started, 3)})

    def check_observers(self) -> None:
        assert self.mon is not None
        if self.dog is not None and len(self.dog.expired) > self.resets_explained:
            self.violation("watchdog", f"n1's watchdog reset the node {len(self.dog.expired)} "
                                       f"times; {self.resets_explained} total kill(s) of n1 "
                                       f"explain that")
            self.resets_explained = len(self.dog.expired)  # said once
        if self.mon.doubles:
            self.violation("double_owner", f"both nodes held the address: overlaps "
                                           f"{[round(o * 1000, 1) for o in self.mon.overlaps]} ms")
        found = arp_doubles(self.arp_lines)
        if found:
            self.violation("double_arp", f"requests answered by two MACs: {found[:3]}")

    def check_fault(self, f: Fault, samples: list[Sample]) -> None:
        gaps = outages(samples, after=f.t0, before=f.t2)
        f.outage_ms = round(max((o.duration for o in gaps), default=0.0) * 1000, 1)
        if f.outage_ms > f.allowed_ms:
            self.violation("outage", f"{f.kind} on {f.node}: client outage {f.outage_ms} ms, "
                                     f"more than the {f.allowed_ms:.0f} ms it explains")

    def check_logs(self) -> None:
        assert self.c is not None
        for node in ("n1", "n2"):
            for what, detail in log_violations(node, self.c.log(node)):
                self.violation(what, detail)

    # --- the run --------------------------------------------------------------------------

    def __call__(self) -> Run:
        run = self.run
        run.out.mkdir(parents=True, exist_ok=True)
        print(f"vigil torture: seed {run.seed}, {run.duration:.0f} s, output {run.out}"
              + (" (UNSAFE build: release wait skipped)" if run.unsafe else ""), flush=True)
        with self.build() as c, self._closing_watchdog():
            self.c = c
            c.start_witness()
            self.start_node("n1")
            self.start_node("n2")
            c.wait_holder("n1", timeout=15)
            end = time.monotonic() + 15
            while not self.healthy():
                if time.monotonic() > end:
                    raise RuntimeError("the cluster did not come up")
                time.sleep(0.05)
            time.sleep(LEASE + 0.2)  # past the witness's first lease
            with HolderMonitor(c) as mon, Prober(c.lab, "client", c.url(), interval=0.01,
                                                 timeout=0.1, duration=run.duration + 600) as p:
                self.mon, self.probe = mon, p
                self.arp = c.lab.popen("client", [sys.executable, "-m", "vigil.lab.arpwatch",
                                                  "--ip", c.vip, "--duration",
                                                  str(run.duration + 600)],
                                       stdout=subprocess.PIPE, text=True)
                self._read_arp()
                time.sleep(0.5)
                if self.arp.poll() is not None:
                    raise RuntimeError("the ARP watch did not start")
                run.started = time.monotonic()
                try:
                    self.loop(p)
                finally:
                    self.arp.terminate()
                    self.arp.wait(10)
                self.check_logs()
                self.samples = p.stop()
            self.write(c)
        return run

    @contextlib.contextmanager
    def _closing_watchdog(self) -> Iterator[None]:
        try:
            yield
        finally:
            if self.dog is not None:
                self.dog.close()

    def _read_arp(self) -> None:
        import threading

        def read() -> None:
            assert self.arp is not None and self.arp.stdout is not None
            for line in self.arp.stdout:
                self.arp_lines.append(line.strip())
        threading.Thread(target=read, daemon=True).start()

    def loop(self, p: Prober) -> None:
        run = self.run
        kinds = run.kinds
        weights = [FAULTS[k] for k in kinds]
        while time.monotonic() - run.started < run.duration and not run.violations:
            kind = self.rng.choices(kinds, weights)[0]
            f = self.inject(kind)
            recover_by = time.monotonic() + INITDEAD + 8.0
            while not self.healthy():
                self.check_observers()
                if time.monotonic() > recover_by or run.violations:
                    if not run.violations:
                        self.violation("no_recovery", f"{kind} on {f.node}: not one holder "
                                                      f"with both nodes up after the undo")
                    break
                time.sleep(0.05)
            time.sleep(0.3)  # a late outage or double shows here
            f.t2 = time.monotonic()
            self.check_observers()
            self.check_fault(f, p.samples())
            print(f"{f.t0 - run.started:7.1f}s {kind:13} {f.node:4} {f.detail:18} outage "
                  f"{f.outage_ms:6.0f} ms (allowed {f.allowed_ms:.0f})", flush=True)

    # --- output ---------------------------------------------------------------------------

    def write(self, c: LabCluster) -> None:
        run = self.run
        data = summary(run, self.mon)
        (run.out / "summary.json").write_text(json.dumps(data, indent=2) + "\n")
        if run.violations:
            report = [f"seed {run.seed}", "violations:"] + \
                [f"  {v['at_s']} s {v['kind']}: {v['detail']}" for v in run.violations] + \
                ["faults:"] + [f"  {f['t0']} s {f['kind']} {f['node']} {f['detail']}"
                               for f in data["timeline"]]
            for node in ("n1", "n2", "witness"):
                report += [f"--- last lines of {node}'s log"] + \
                    c.log(node).splitlines()[-60:]
            (run.out / "report.txt").write_text("\n".join(report) + "\n")
        print(render(data))
        try:
            timeline_png(run, self.mon, self.samples, run.out / "timeline.png")
        except ImportError:
            print("(no PNG timeline: Pillow is not installed)")


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    ap = argparse.ArgumentParser(prog="vigil torture", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", default="10m", help="how long to inject faults (10m, 60s)")
    ap.add_argument("--seed", type=int, default=None, help="replay a run (default: random)")
    ap.add_argument("--out", type=Path, default=Path("torture-out"))
    ap.add_argument("--faults", default=",".join(FAULTS),
                    help="the fault kinds to draw from (comma-separated; default: all)")
    ap.add_argument("--unsafe-skip-release-wait", action="store_true",
                    help="run a deliberately broken build: the checker must catch it")
    a = ap.parse_args(argv)
    from vigil.config.duration import parse_duration
    try:
        duration = parse_duration(a.duration)
    except ValueError as e:
        ap.error(f"--duration: {e}")
    if not 0 < duration <= 24 * 3600:
        ap.error("--duration must be within 0..24h")
    kinds = [k.strip() for k in a.faults.split(",") if k.strip()]
    unknown = set(kinds) - set(FAULTS)
    if unknown or not kinds:
        ap.error(f"--faults: unknown {', '.join(sorted(unknown)) or '(none given)'}; "
                 f"known: {', '.join(FAULTS)}")
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(2**32)
    run = Torture(Run(seed, duration, a.out, a.unsafe_skip_release_wait, kinds=kinds))()
    return 1 if run.violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
