"""Helpers shared by the benchmarks: timings, statistics, process figures, machine facts, JSON."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import vigil
from vigil.config.duration import parse_duration
from vigil.model import fmt_duration

ROOT = Path(__file__).resolve().parents[1]


# --- timings -----------------------------------------------------------------------------------

def durations(text: str) -> list[float]:
    """"300ms,1s" -> [0.3, 1.0]."""
    return [parse_duration(part) for part in text.split(",") if part.strip()]


def ms(seconds: float) -> str:
    """A duration as vigil's config writes it, rounded to the millisecond: 60ms, 1s."""
    return fmt_duration(round(seconds * 1000) / 1000)


def timings(deadtime: float, keepalive: float | None = None) -> dict[str, str]:
    """LabCluster timing arguments for a deadtime: keepalive D/5 (unless given),
    warntime D/2, initdead 3*D but at least 1 s."""
    ka = round(deadtime * 1000 / 5) / 1000 if keepalive is None else keepalive
    return {"keepalive": ms(ka), "warntime": ms(deadtime / 2), "deadtime": ms(deadtime),
            "initdead": ms(max(3 * deadtime, 1.0))}


# --- statistics --------------------------------------------------------------------------------

def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """Median, min and max of `values` (None when empty) and their count."""
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None}
    return {"n": len(values), "median": statistics.median(values), "min": min(values),
            "max": max(values)}


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table, columns left-aligned and padded."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r]
                                          for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --- processes ---------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")


def daemon_pid(popen_pid: int) -> int:
    """The vigil daemon's pid for the pid of its `ip netns exec ...` Popen.

    `ip netns exec` execs its command, so the pid is normally the Python process already;
    if it is still `ip` (or a wrapper), follow its only child down until it is vigil."""
    pid = popen_pid
    for _ in range(5):
        argv = _cmdline(pid)
        if "vigil" in argv and "daemon" in argv:
            return pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if len(children) != 1:
            break
        pid = int(children[0])
    raise RuntimeError(f"no vigil daemon at or below pid {popen_pid}: {_cmdline(popen_pid)}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (all its threads), in seconds."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """utime and stime of `pid` (all its threads), in seconds: its own code, and the
    kernel's on its behalf."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK  # fields 14, 15 of proc(5)


def cpu_ns(pid: int) -> int:
    """Time on a CPU of every thread of `pid`, in ns (schedstat's first field): finer than
    cpu_seconds' clock ticks, so a quiet process is not rounded to 0."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    return total


def pss_kb(pid: int) -> int:
    """The proportional set size of `pid` (/proc/PID/smaps_rollup): shared pages split."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise KeyError("Pss")


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def status_kb(pid: int, key: str) -> int:
    """A "kB" field of /proc/PID/status (VmRSS, VmHWM...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def sched_policy(pid: int) -> str:
    policy = os.sched_getscheduler(pid)
    reset = getattr(os, "SCHED_RESET_ON_FORK", 0x40000000)
    names = {os.SCHED_OTHER: "SCHED_OTHER", os.SCHED_FIFO: "SCHED_FIFO", os.SCHED_RR: "SCHED_RR"}
    name = names.get(policy & ~reset, str(policy & ~reset))
    return f"{name} {os.sched_getparam(pid).sched_priority}" if policy & ~reset else name


# --- machine and output ------------------------------------------------------------------------

def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _git(*args: str) -> str | None:
    r = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                       check=False)
    return r.stdout.strip() if r.returncode == 0 else None


def machine() -> dict[str, Any]:
    """What the figures were measured on, and when."""
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {
        "kernel": platform.release(),
        "cpu": _cpu_model(),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "vigil": vigil.__version__,
        "git": f"{commit}{'-dirty' if dirty else ''}" if commit else None,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "loadavg_at_start": os.getloadavg(),
        "command": " ".join(sys.orig_argv),
    }


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    print(f"wrote {path}")


def wait_until(predicate: Any, timeout: float, what: str, every: float = 0.02) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError(what)
        time.sleep(every)


def settle(c: Any, timeout: float = 15.0) -> None:
    """Wait until n1 of a LabCluster runs the group and both daemons see each other up."""
    def ready() -> bool:
        try:
            s1, s2 = c.status("n1"), c.status("n2")
        except Exception:
            return False
        return (c.holders() == ["n1"] and s1["nodes"][1]["state"] == "up"
                and s2["nodes"][1]["state"] == "up" and s1["groups"][0]["state"] == "running")
    wait_until(ready, timeout, "cluster did not settle with n1 owning the group")
