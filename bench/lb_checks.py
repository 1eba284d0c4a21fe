"""What checking many real servers costs: vigil's prober (balancer/prober.py, the daemon's
own code) against HAProxy 2.6's health checks, the same servers at the same interval, in
one run.

    python -m bench.lb_checks [--servers 200] [--interval 100ms] [--seconds 20]
                              [--out bench/results-lb-checks.json]

A lab of two namespaces on one bridge: `reals` holds `servers` addresses (10.99.0.1...)
with one nginx answering on all of them (Debian's nginx-light: the real servers must not be
the bottleneck), `checker` runs the checks. For each kind (tcp: connect; http: GET / and the
status) vigil's prober runs alone in a process for `seconds` after a settling second, then
HAProxy (`check inter`, `option httpchk` for http) for as long; CPU is every thread's time
(/proc/PID/task/*/schedstat) over the window's wall time, in % of one core. vigil's checks
are counted too, so the figure is for the rate asked, not a slower one.

Issue 14's target: 200 real servers every 100 ms under 2 % of a core.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import common
from vigil.lab.netns import Lab, exit_on_sigterm

SUBNET = "10.99.0"
NGINX = """worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx.err;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server {{
        listen 80 default_server reuseport;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""
HAPROXY = """global
    maxconn 8192
defaults
    mode {mode}
    timeout connect {timeout}ms
    timeout check {timeout}ms
    timeout client 5s
    timeout server 5s
backend reals
{http}{servers}
frontend none
    bind 127.0.0.1:8999
    default_backend reals
"""
TARGET_PERCENT = 2.0


def child(kind: str, servers: int, interval: float, seconds: float) -> None:
    """In the checker's namespace: vigil's prober for `seconds`; its counts as JSON."""
    import faulthandler
    faulthandler.dump_traceback_later(seconds + 15, exit=True)  # a hang says where
    from vigil.balancer.model import Check, Endpoint, RealServer, VirtualServer
    from vigil.balancer.prober import Prober

    check = Check(type="http" if kind == "http" else "tcp", interval=interval,
                  timeout=interval / 2, rise=2, fall=2)
    reals = tuple(RealServer(Endpoint(ipaddress.ip_address(f"{SUBNET}.{i + 1}"), 80),
                             check=check) for i in range(servers))
    vs = VirtualServer("bench", "g", reals)
    prober = Prober([vs], lambda k, c, r: None)

    async def main() -> None:
        task = asyncio.create_task(prober.run())
        await asyncio.sleep(1.0 + seconds + 1.0)  # the parent measures the middle
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(main())
    ok = sum(c[True] for c in prober.counts.values())
    failed = sum(c[False] for c in prober.counts.values())
    print(json.dumps({"ok": ok, "failed": failed}))


def _measure(pid: int, seconds: float) -> dict[str, float]:
    """CPU of `pid` over `seconds`, in % of one core: in all, and split into user and kernel
    time (clock ticks, so coarser). The kernel's part includes what this lab's network costs:
    a packet sent on a veth is carried through the bridge and the real server's own TCP
    stack, and the answer back, on the sender's CPU and in its account (softirq run as the
    send returns), so that a check's sendto pays for both ends. HAProxy's checks pay alike."""
    c0, s0 = common.cpu_ns(pid), common.cpu_split(pid)
    t0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    c1, s1 = common.cpu_ns(pid), common.cpu_split(pid)
    return {"cpu_percent": round((c1 - c0) / 1e9 / wall * 100, 3),
            "user_percent": round((s1[0] - s0[0]) / wall * 100, 2),
            "system_percent": round((s1[1] - s0[1]) / wall * 100, 2)}


def vigil_run(lab: Lab, kind: str, servers: int, interval: float,
              seconds: float) -> dict[str, Any]:
    proc = lab.popen("checker", [sys.executable, "-m", "bench.lb_checks", "--child", kind,
                                 "--servers", str(servers), "--interval", f"{interval * 1000:g}ms",
                                 "--seconds", str(seconds)],
                     stdout=subprocess.PIPE, text=True, cwd=common.ROOT)
    time.sleep(1.0)
    cpu = _measure(proc.pid, seconds)  # `ip netns exec` execs: this is the Python process
    out, _ = proc.communicate(timeout=seconds + 30)
    counts = json.loads(out)
    expected = servers * (seconds + 2.0) / interval
    return {**cpu, "checks_ok": counts["ok"], "checks_failed": counts["failed"],
            "rate_achieved": round((counts["ok"] + counts["failed"]) / expected, 3)}


def haproxy_run(lab: Lab, kind: str, servers: int, interval: float, seconds: float,
                work: Path) -> dict[str, Any]:
    ms = round(interval * 1000)
    conf = work / f"haproxy-{kind}.cfg"
    conf.write_text(HAPROXY.format(
        mode="http" if kind == "http" else "tcp", timeout=ms // 2,
        http="    option httpchk GET /\n" if kind == "http" else "",
        servers="".join(f"    server s{i} {SUBNET}.{i + 1}:80 check inter {ms}ms "
                        f"fall 2 rise 2\n" for i in range(servers))))
    proc = lab.popen("checker", ["haproxy", "-f", str(conf), "-db"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        if proc.poll() is not None:
            raise RuntimeError(f"haproxy exited {proc.returncode} with {conf}")
        cpu = _measure(proc.pid, seconds)
    finally:
        lab.stop(proc)
    return cpu


def main() -> int:
    exit_on_sigterm()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--servers", type=int, default=200)
    ap.add_argument("--interval", default="100ms")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--out", type=Path, default=common.ROOT / "bench" / "results-lb-checks.json")
    ap.add_argument("--child", choices=("tcp", "http"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    interval = common.durations(a.interval)[0]
    if a.child:
        child(a.child, a.servers, interval, a.seconds)
        return 0
    if shutil.which("nginx") is None or shutil.which("haproxy") is None:
        print("bench.lb_checks needs nginx-light and haproxy: make bench-deps", file=sys.stderr)
        return 1
    results: dict[str, Any] = {"servers": a.servers, "interval_ms": round(interval * 1000),
                               "seconds": a.seconds, "machine": common.machine()}
    with Lab.create(["checker", "reals"]) as lab, \
            tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        for i in range(a.servers):
            lab.run("reals", ["ip", "addr", "add", f"{SUBNET}.{i + 1}/24", "dev", "eth0"])
        lab.run("checker", ["ip", "addr", "add", f"{SUBNET}.254/24", "dev", "eth0"])
        (work / "nginx.conf").write_text(NGINX.format(dir=work))
        nginx = lab.popen("reals", ["nginx", "-c", str(work / "nginx.conf")],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            lab.wait_listening("reals", 80)
            for kind in ("tcp", "http"):
                results[kind] = {
                    "vigil": vigil_run(lab, kind, a.servers, interval, a.seconds),
                    "haproxy": haproxy_run(lab, kind, a.servers, interval, a.seconds, work)}
                print(f"{kind}: vigil {results[kind]['vigil']}, haproxy "
                      f"{results[kind]['haproxy']}", flush=True)
        finally:
            lab.stop(nginx)
    def cell(r: dict[str, Any]) -> str:
        return f"{r['cpu_percent']} ({r['user_percent']} + {r['system_percent']})"
    rows = [[kind, cell(results[kind]["vigil"]), cell(results[kind]["haproxy"]),
             results[kind]["vigil"]["rate_achieved"]] for kind in ("tcp", "http")]
    print(f"{a.servers} real servers checked every {round(interval * 1000)} ms, CPU in % of "
          f"one core, (user + kernel) (target: vigil under {TARGET_PERCENT:g} %)")
    print(common.table(["check", "vigil", "haproxy 2.6", "vigil's rate achieved"], rows))
    common.write_json(a.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
