"""vigil's data plane against a hand-written nftables ruleset and HAProxy 2.6, with real load
(wrk) and real servers (nginx-light), side by side and interleaved in one run.

    python -m bench.lb_throughput [--seconds 10] [--rounds 2] [--connections 64]
                                  [--out bench/results-lb-throughput.json]

    client (eth0) -- director (eth0 | eth1) -- r1, r2, r3 (eth1: nginx, the director their
    gateway)

Systems, each with its own client address (TIME_WAIT sockets left by one must not slow the
next): `direct` (the client to r1 through the director, routed, no NAT), `nft` (a
hand-written NAT ruleset: numgen round robin over the three), `vigil` (the ruleset vigil's
balancer installs for one rr service, made by balancer/nft.py and applied as the daemon
does), `haproxy-tcp` and `haproxy-http` (on the director, the same three servers, round
robin). Each is loaded by `wrk -t2 -cN` for `seconds`, with keep-alive and with a new
connection per request (`Connection: close`); requests/s, p99 latency (wrk --latency), and
host CPU per request (/proc/stat's busy time over the run, all processes). Bridge netfilter
is off in the switch. The medians of the rounds are reported, and vigil's ratios to nft and
to haproxy-tcp.

Issue 14's targets: vigil within 5 % of the hand-written ruleset, so at least 1.4x HAProxy
mode tcp on new connections.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import common
from vigil.balancer import apply, nft
from vigil.balancer.model import Endpoint, RealServer, VirtualServer
from vigil.lab.netns import Lab, exit_on_sigterm

REALS = ("r1", "r2", "r3")
SYSTEMS = ("direct", "nft", "vigil", "haproxy-tcp", "haproxy-http")
NGINX = """worker_processes 1;
daemon off;
pid {dir}/nginx-{name}.pid;
error_log {dir}/nginx-{name}.err;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    server {{
        listen {address}:80 reuseport backlog=4096;
        location / {{ return 200 "{name}\\n"; }}
    }}
}}
"""
HAPROXY = """global
    maxconn 8000
    nbthread 1
defaults
    mode {mode}
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    {http_opts}
frontend f
    bind {vip}:80
    default_backend b
backend b
    balance roundrobin
{servers}
"""
HAND_NFT = """table ip handmade {{
    chain pre {{
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr {vip} tcp dport 80 dnat to numgen inc mod 3 map {{ {targets} }}
    }}
}}
"""


def _wrk(lab: Lab, url: str, seconds: float, connections: int,
         close: bool) -> dict[str, Any]:
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
    if close:
        argv[1:1] = ["-H", "Connection: close"]
    busy0, total0 = _cpu()
    out = lab.run("client", argv, timeout=seconds + 30).stdout
    busy1, total1 = _cpu()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", out)
    requests = rps * seconds
    return {"rps": round(rps), "p99_ms": None if p99 is None else
            round(float(p99.group(1)) * scale[p99.group(2)], 2),
            "cpu_us_per_request": round((busy1 - busy0) / common.CLK_TCK * 1e6 / requests, 1)
            if requests else None,
            "errors": (int(errors.group(1)) if errors else 0) +
            (sum(int(x) for x in socket_errors.groups()) if socket_errors else 0)}


def _cpu() -> tuple[int, int]:
    """Busy and total jiffies of the whole host (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


class Bench:
    def __init__(self, lab: Lab, work: Path) -> None:
        self.lab, self.work = lab, work
        self.vip = lab.subnet(0).rsplit(".", 1)[0] + ".200"
        self.gw = lab.address("director", 1)
        self.reals = [lab.address(r, 1) for r in REALS]
        self.haproxy: subprocess.Popen[Any] | None = None

    def source(self, system: str) -> str:
        """The client address of `system`: its own, so that TIME_WAITs do not carry over."""
        return self.lab.subnet(0).rsplit(".", 1)[0] + f".{100 + SYSTEMS.index(system)}"

    def setup(self) -> None:
        lab = self.lab
        subprocess.run(["ip", "netns", "exec", lab.switch, "sysctl", "-qw",
                        "net.bridge.bridge-nf-call-iptables=0"], check=False,
                       capture_output=True)
        lab.run("client", ["ip", "link", "set", lab.ifname(1), "down"])
        lab.run("director", ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        lab.run("director", ["ip", "addr", "add", f"{self.vip}/24", "dev", "eth0"])
        for system in SYSTEMS:
            lab.run("client", ["ip", "addr", "add", f"{self.source(system)}/24", "dev", "eth0"])
        for host in ("client", *REALS, "director"):
            lab.run(host, ["sysctl", "-qw", "net.ipv4.ip_local_port_range=10000 65000"],
                    check=False)
            lab.run(host, ["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"], check=False)
        for r, address in zip(REALS, self.reals):
            lab.run(r, ["ip", "link", "set", lab.ifname(0), "down"])
            lab.run(r, ["ip", "route", "add", "default", "via", self.gw])
            conf = self.work / f"nginx-{r}.conf"
            conf.write_text(NGINX.format(dir=self.work, name=r, address=address))
            lab.popen(r, ["nginx", "-c", str(conf)], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL)
            lab.wait_listening(r, 80)

    def prepare(self, system: str) -> str:
        """Make the director `system`; the URL the client loads."""
        lab, src = self.lab, self.source(system)
        if system == "direct":
            lab.run("client", ["ip", "route", "replace", f"{self.reals[0]}/32", "via",
                               lab.address("director", 0), "src", src])
            return f"http://{self.reals[0]}/"
        lab.run("client", ["ip", "route", "replace", f"{self.vip}/32", "dev", "eth0", "src",
                           src])
        if system == "nft":
            targets = ", ".join(f"{i} : {a} . 80" for i, a in enumerate(self.reals))
            script = HAND_NFT.format(vip=self.vip, targets=targets)
            script = script.replace("dnat to numgen", "dnat ip addr . port to numgen")
            subprocess.run(["ip", "netns", "exec", lab.ns("director"), "nft", "-f", "-"],
                           input=script, text=True, check=True)
        elif system == "vigil":
            vs = VirtualServer("web", "g", tuple(
                RealServer(Endpoint(ipaddress.ip_address(a), 80)) for a in self.reals),
                endpoint=Endpoint(ipaddress.ip_address(self.vip), 80), scheduler="rr")
            plan = nft.plan([nft.Service(vs, 1, {r.endpoint: i + 1 for i, r in
                                                enumerate(vs.real)},
                                         {r.endpoint: 1 for r in vs.real})])
            apply.run(nft.transaction(None, plan), ["ip", "netns", "exec", lab.ns("director")])
        else:
            mode = system.split("-")[1]
            conf = self.work / f"{system}.cfg"
            conf.write_text(HAPROXY.format(
                mode=mode, vip=self.vip,
                http_opts="option http-keep-alive" if mode == "http" else "",
                servers="".join(f"    server {r} {a}:80\n" for r, a in zip(REALS, self.reals))))
            err = open(self.work / f"{system}.err", "w")
            self.haproxy = lab.popen("director", ["haproxy", "-f", str(conf), "-db"],
                                     stdout=err, stderr=err)
            err.close()
            try:
                lab.wait_listening("director", 80)
            except TimeoutError:
                raise RuntimeError(f"haproxy did not start: "
                                   f"{(self.work / f'{system}.err').read_text()}") from None
        return f"http://{self.vip}/"

    def clear(self, system: str) -> None:
        lab = self.lab
        if system == "nft":
            lab.run("director", ["nft", "delete", "table", "ip", "handmade"], check=False)
        elif system == "vigil":
            apply.run(nft.remove(), ["ip", "netns", "exec", lab.ns("director")])
        elif self.haproxy is not None:
            lab.stop(self.haproxy)
            self.haproxy = None
        lab.run("director", ["conntrack", "-F"], check=False)
        time.sleep(1.0)


def main() -> int:
    exit_on_sigterm()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--out", type=Path,
                    default=common.ROOT / "bench" / "results-lb-throughput.json")
    a = ap.parse_args()
    missing = [p for p in ("nginx", "haproxy", "wrk") if shutil.which(p) is None]
    if missing:
        print(f"bench.lb_throughput needs {', '.join(missing)}: make bench-deps",
              file=sys.stderr)
        return 1
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        s: {"keepalive": [], "close": []} for s in SYSTEMS}
    with Lab.create(["client", "director", *REALS], links=2) as lab, \
            tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        os.chmod(tmp, 0o755)
        b = Bench(lab, Path(tmp))
        b.setup()
        for rnd in range(a.rounds):
            for system in SYSTEMS:
                url = b.prepare(system)
                try:
                    for mode in ("keepalive", "close"):
                        r = _wrk(lab, url, a.seconds, a.connections, mode == "close")
                        runs[system][mode].append(r)
                        print(f"round {rnd + 1} {system:12} {mode:9} {r}", flush=True)
                finally:
                    b.clear(system)
    med: dict[str, dict[str, dict[str, float | None]]] = {}
    for system, modes in runs.items():
        med[system] = {}
        for mode, rs in modes.items():
            med[system][mode] = {k: statistics.median(r[k] for r in rs)
                                 if all(r[k] is not None for r in rs) else None
                                 for k in ("rps", "p99_ms", "cpu_us_per_request", "errors")}
    ratios = {mode: {"vigil_to_nft": round(med["vigil"][mode]["rps"] /  # type: ignore[operator]
                                           med["nft"][mode]["rps"], 3),
                     "vigil_to_haproxy_tcp": round(med["vigil"][mode]["rps"] /  # type: ignore[operator]
                                                   med["haproxy-tcp"][mode]["rps"], 3)}
              for mode in ("keepalive", "close")}
    rows = [[s, med[s]["keepalive"]["rps"], med[s]["keepalive"]["p99_ms"],
             med[s]["close"]["rps"], med[s]["close"]["p99_ms"],
             f"{med[s]['keepalive']['cpu_us_per_request']} / "
             f"{med[s]['close']['cpu_us_per_request']}"] for s in SYSTEMS]
    print(f"wrk -t2 -c{a.connections}, {a.seconds:g} s each, medians of {a.rounds} rounds")
    print(common.table(["system", "keep-alive rps", "p99 ms", "new conn rps", "p99 ms",
                        "host CPU us/request"], rows))
    print(f"vigil / nft: {ratios['keepalive']['vigil_to_nft']} keep-alive, "
          f"{ratios['close']['vigil_to_nft']} new connections; vigil / haproxy-tcp: "
          f"{ratios['keepalive']['vigil_to_haproxy_tcp']} keep-alive, "
          f"{ratios['close']['vigil_to_haproxy_tcp']} new connections")
    common.write_json(a.out, {"connections": a.connections, "seconds": a.seconds,
                              "rounds": a.rounds, "medians": med, "ratios": ratios,
                              "runs": runs, "machine": common.machine()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
