"""Issue 4's figures: what running an agent through vigil costs, and how long a group of
many floating addresses takes to move.

    python -m bench.agents [--runs 200] [--moves 5] [--out bench/results-agents.json]

overhead   The same real OCF agent action (ocf:heartbeat:Dummy monitor, and /bin/true as
           an exec resource's command) run `--runs` times through vigil's agent (environment
           built, argv-only runner, output to files, process group reaped) and directly the
           way a shell runs it (fork, exec, wait: subprocess.run with the same environment).
           Interleaved, one of each per round, so that both see the same machine.
addresses  A two-node LabCluster whose group holds N floating addresses (N = 1, 16, 64);
           `vigil standby` on n1, then `vigil takeover`: the time from the command to the
           last of the N addresses appearing on the new owner (netlink address events), and
           the group's start time from the new owner's log ("group web acquired in N ms").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import common
from vigil.lab.cluster import LabCluster
from vigil.lab.netns import exit_on_sigterm
from vigil.model import ExecResource, OcfResource
from vigil.resources.exec import ExecAgent
from vigil.resources.ocf import OcfAgent


async def _overhead(runs: int, state: Path) -> dict[str, Any]:
    ocf = OcfAgent(OcfResource("heartbeat:Dummy", "bench", (("state", str(state)),),
                               monitor=None))
    await ocf.prepare()
    await ocf.start()
    exe = ExecAgent(ExecResource(("/bin/true",), ("/bin/true",), ("/bin/true",)))
    env = ocf.env("monitor")
    argv = [str(ocf.path), "monitor"]
    times: dict[str, list[float]] = {k: [] for k in ("ocf_vigil", "ocf_direct",
                                                      "exec_vigil", "exec_direct")}
    for _ in range(runs):
        t0 = time.perf_counter()
        assert await ocf.monitor()
        t1 = time.perf_counter()
        assert subprocess.run(argv, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True).returncode == 0
        t2 = time.perf_counter()
        assert await exe.probe()
        t3 = time.perf_counter()
        subprocess.run(["/bin/true"], stdin=subprocess.DEVNULL, capture_output=True)
        t4 = time.perf_counter()
        times["ocf_vigil"].append(t1 - t0)
        times["ocf_direct"].append(t2 - t1)
        times["exec_vigil"].append(t3 - t2)
        times["exec_direct"].append(t4 - t3)
    await ocf.stop()
    out: dict[str, Any] = {k: {q: round(v * 1000, 2) for q, v in common.summary(ts).items()
                               if v is not None and q != "n"} for k, ts in times.items()}
    for k in ("ocf", "exec"):
        out[f"{k}_overhead_ms"] = round(
            (statistics.median(times[f"{k}_vigil"]) - statistics.median(times[f"{k}_direct"]))
            * 1000, 2)
    out["runs"] = runs
    return out


def _addrs(n: int) -> list[str]:
    """N floating addresses in a /16 of their own (a /24 could not hold 256 of them)."""
    return [f"172.31.{i // 250}.{i % 250 + 1}/16" for i in range(n)]


def _groups(n: int) -> str:
    res = "".join(f'[[group.resource]]\ntype = "ip"\naddress = "{a}"\n'
                  f'interface = "eth0"\narp_repeat_delay = "0s"\n' for a in _addrs(n))
    return f'[[group]]\nname = "web"\nhome = "n1"\n{res}'


def _move_once(c: LabCluster, n: int, cmd: str, to: str) -> dict[str, float]:
    want = set(_addrs(n))
    logs = c.log(to)
    t0 = time.monotonic()
    r = c.vigil("n1", cmd)
    if r.returncode != 0:
        raise RuntimeError(f"vigil {cmd}: {r.stderr.strip()}")
    common.wait_until(lambda: want <= c.lab.addresses(to, "eth0"), 20, f"{n} addresses on {to}")
    moved = time.monotonic() - t0
    common.wait_until(lambda: "group web acquired in" in c.log(to)[len(logs):], 10, "the log")
    m = re.search(r"group web acquired in (\d+) ms", c.log(to)[len(logs):])
    assert m is not None
    return {"moved_ms": round(moved * 1000, 1), "start_ms": float(m.group(1))}


def _addresses(n: int, moves: int) -> dict[str, Any]:
    samples: list[dict[str, float]] = []
    with LabCluster(groups="") as c:
        c.add_config(_groups(n))
        c.start("n1")
        c.start("n2")
        want = set(_addrs(n))
        common.wait_until(lambda: want <= c.lab.addresses("n1", "eth0"), 30, "first start")
        time.sleep(0.5)
        for _ in range(moves):
            samples.append(_move_once(c, n, "standby", "n2"))
            time.sleep(0.3)
            samples.append(_move_once(c, n, "takeover", "n1"))
            time.sleep(0.3)
    return {k: common.summary([s[k] for s in samples]) for k in ("moved_ms", "start_ms")}


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    ap = argparse.ArgumentParser(prog="python -m bench.agents", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--moves", type=int, default=5)
    ap.add_argument("--sizes", default="1,16,64,256")
    ap.add_argument("--out", type=Path, default=Path("bench/results-agents.json"))
    a = ap.parse_args(argv)
    info = common.machine()
    state = Path(f"/run/vigil-bench-dummy-{os.getpid()}.state")
    try:
        overhead = asyncio.run(_overhead(a.runs, state))
    finally:
        state.unlink(missing_ok=True)
    print(common.table(["action", "vigil median ms", "direct median ms", "overhead ms"], [
        ["ocf:heartbeat:Dummy monitor", overhead["ocf_vigil"]["median"],
         overhead["ocf_direct"]["median"], overhead["ocf_overhead_ms"]],
        ["exec /bin/true", overhead["exec_vigil"]["median"], overhead["exec_direct"]["median"],
         overhead["exec_overhead_ms"]]]))
    sizes = [int(x) for x in a.sizes.split(",")]
    moves = {n: _addresses(n, a.moves) for n in sizes}
    print(common.table(["addresses", "moved median ms", "min", "max", "start median ms"], [
        [n, *(round(m["moved_ms"][k], 1) for k in ("median", "min", "max")),
         round(m["start_ms"]["median"], 1)] for n, m in moves.items()]))
    common.write_json(a.out, {"machine": info, "overhead": overhead,
                              "addresses": {str(n): m for n, m in moves.items()}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
