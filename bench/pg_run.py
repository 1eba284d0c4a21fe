"""The run loop and verdicts of the replicated-PostgreSQL benchmark, shared by the systems
measured (bench/pg_cluster.py: Patroni, bench/pg_vigil.py: vigil's promotable group;
bench/pg_failover.py runs both). A system is a `Servers`: two PostgreSQL nodes n1 (the
primary at the start) and n2 in a lab, and what the run does to them.

Every run builds a fresh cluster. The writer of vigil.lab.commits then runs in the client's
namespace against `client_hosts()` (vigil: its floating address; Patroni: both nodes, libpq
multi-host), a row every 10 ms, and the watcher asks both servers over their unix sockets
who is primary. After 3 s of acknowledged writes the primary gets one fault:

  node_kill        every process of its host killed (`kill_node`); started again
                   (`restart`) once writes go to the other node
  link_cut         all its traffic but loopback dropped (`cut`); healed once writes go to
                   the other node
  postmaster_kill  kill -9 of its postmaster (restarted in place, or failed over)
  switchover       the system's own planned switchover to the other node
  freeze           SIGSTOP of every process of its host (`freeze`) for --freeze s, then
                   `thaw` (SIGCONT; vigil: its watchdog has reset it by then, and its daemon
                   is started again)

A run has recovered when one node is primary (the other one after node_kill, link_cut and
switchover), the other streams from it, and a write is acknowledged after that was seen;
each wait is bounded (120 s), and a run that does not get there is recorded as not recovered.
Then the writer stops and the verdicts are drawn (vigil.lab.commits):

  outage        the longest write outage after the fault: first failed write to the next
                acknowledged one (the issue's measure; 0 when no write failed)
  ack_gap       the longest time between two acknowledged writes after the fault; unlike
                `outage` it counts a write that hangs instead of failing (a frozen primary's
                kernel still acknowledges the client's packets, so no timeout fires)
  promoted      s from the fault until the new primary first answered as one (polled every
                ~0.3 s over its socket; after postmaster_kill: either node, the restarted one)
  lost          acknowledged rows missing from the final primary's `commits` table
  two_primaries the longest time both servers answered as primary (the watcher)
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from bench import common
from bench.pg_cluster import NODES, NodeState
from vigil.lab.commits import Write, lost, outages, read_writes, two_primaries
from vigil.lab.netns import Lab

FAULTS = ("node_kill", "link_cut", "postmaster_kill", "switchover", "freeze")
RECOVERY = 120.0  # s each wait for recovery may take
WARMUP = 3.0  # s of acknowledged writes before the fault
POLL = 0.25


class Servers(Protocol):
    """What a run needs of a system under test (PatroniCluster, VigilCluster)."""

    lab: Lab
    base: Path  # the run's directory: the writer's and the watcher's lines go there
    keep: Path | None  # where `close` copies the logs, if anywhere

    def form(self) -> None: ...
    def log(self, name: str) -> Path: ...
    def tail(self, name: str, lines: int = 12) -> list[str]: ...
    def log_names(self) -> tuple[str, ...]: ...  # the logs shown when a run breaks
    def socket(self, node: str) -> Path: ...
    def client_hosts(self) -> str: ...  # the writer's --host
    def state(self, node: str) -> NodeState | None: ...
    def healthy(self, allowed: set[str]) -> str | None: ...
    def rows(self, node: str) -> list[int] | None: ...
    def kill_node(self, node: str) -> int: ...
    def restart(self, node: str) -> None: ...
    def cut(self, node: str) -> None: ...
    def heal(self, node: str) -> None: ...
    def kill_postmaster(self, node: str) -> int: ...
    def switchover(self, leader: str, candidate: str) -> subprocess.Popen[bytes]: ...
    def freeze(self, node: str) -> int: ...
    def thaw(self, node: str) -> None: ...
    def notes(self) -> dict[str, Any]: ...  # more of the record (vigil: watchdog resets)
    def close(self) -> None: ...


class WriterLog:
    """The writer's stdout file, read as it grows (whole lines only)."""

    def __init__(self, path: Path) -> None:
        self.path, self._pos = path, 0
        self.writes: list[Write] = []
        self.last_ack = -1.0

    def refresh(self) -> list[Write]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._pos)
                chunk = f.read()
        except FileNotFoundError:
            return self.writes
        end = chunk.rfind(b"\n") + 1
        self._pos += end
        new = read_writes(chunk[:end].decode(errors="replace").splitlines())
        self.writes.extend(new)
        for w in new:
            if w.ok:
                self.last_ack = max(self.last_ack, w.at)
        return self.writes


def measure(writes: list[Write], fault_at: float) -> dict[str, Any]:
    """The client's verdicts on the writes after the fault at `fault_at`: the longest
    outage (first failed write to the next acknowledged one), how many there were, the
    longest gap between acknowledged writes (from the last one before the fault) and the
    number of failed writes."""
    outs = [length for _, length in outages(writes, since=fault_at)]
    acks = sorted(w.at for w in writes if w.ok)
    before = [a for a in acks if a <= fault_at]
    after = [a for a in acks if a > fault_at]
    points = before[-1:] + after
    gap = max((b - a for a, b in zip(points, points[1:])), default=None)
    return {"outage_s": round(max(outs, default=0.0), 3), "outages": len(outs),
            "ack_gap_s": None if gap is None else round(gap, 3),
            "failed_writes": sum(1 for w in writes if not w.ok and w.at >= fault_at)}


class Run:
    """One run of one fault: its cluster, writer, watcher, the record it fills in."""

    def __init__(self, c: Servers, fault: str, rec: dict[str, Any]) -> None:
        self.c, self.fault, self.rec = c, fault, rec
        self.log = WriterLog(c.base / "writer.out")
        self.primary, self.other = "n1", "n2"
        self.fault_at = 0.0
        # The node(s) whose first answer as primary after the fault is "promoted_s": the
        # other one, but a postmaster killed is restarted in place.
        self.expect = set(NODES) if fault == "postmaster_kill" else {self.other}

    def start_clients(self) -> None:
        """The writer and the watcher, in the client's namespace; back after WARMUP s of
        acknowledged writes."""
        socks = [a for n in NODES for a in ("--socket", str(self.c.socket(n)))]
        base, lab = self.c.base, self.c.lab
        with open(base / "writer.out", "wb") as out, open(self.c.log("writer"), "wb") as err:
            self.writer = lab.popen("client", [
                sys.executable, "-m", "vigil.lab.commits", "write", "--host",
                self.c.client_hosts(), "--duration", "900"], stdout=out, stderr=err)
        with open(base / "watch.out", "wb") as out, open(self.c.log("watch"), "wb") as err:
            self.watcher = lab.popen("client", [
                sys.executable, "-m", "vigil.lab.commits", "watch", *socks,
                "--interval", "0.01"], stdout=out, stderr=err)
        deadline = time.monotonic() + 30
        while self.log.refresh() is not None and self.log.last_ack < 0:
            if time.monotonic() > deadline or self.writer.poll() is not None:
                raise RuntimeError(f"the writer made no write: {self.c.tail('writer')}")
            time.sleep(POLL)
        time.sleep(WARMUP)

    def wait(self, what: str, done: Callable[[], bool], timeout: float = RECOVERY) -> bool:
        """Poll `done` (noting when the new primary first answers) until it holds or
        `timeout` passes; a miss is recorded under "timeouts"."""
        deadline = time.monotonic() + timeout
        while True:
            self.log.refresh()
            if done():
                return True
            if time.monotonic() > deadline:
                self.rec.setdefault("timeouts", []).append(what)
                return False
            time.sleep(POLL)

    def promoted(self, node: str) -> bool:
        """Whether `node` answers as primary; the first time after the fault is noted."""
        s = self.c.state(node)
        if s is not None and s.primary:
            self.rec.setdefault("promoted_s", round(time.monotonic() - self.fault_at, 3))
            return True
        return False

    def writes_to(self, node: str) -> bool:
        """Wait for `node` to be primary and acknowledge a write made after that was seen."""
        seen = [0.0]

        def done() -> bool:
            if not seen[0] and self.promoted(node):
                seen[0] = time.monotonic()
            return bool(seen[0]) and self.log.last_ack > seen[0]
        return self.wait(f"writes to {node}", done)

    def whole(self, allowed: set[str]) -> bool:
        """Wait for the pair to be whole (one of `allowed` primary, the other streaming from
        it) and a write acknowledged after that was seen; note which node is primary."""
        seen = [0.0]

        def done() -> bool:
            if not seen[0]:
                for n in self.expect:
                    self.promoted(n)
                p = self.c.healthy(allowed)
                if p is not None:
                    seen[0] = time.monotonic()
                    self.rec["primary_after"] = p
                    self.rec["whole_s"] = round(seen[0] - self.fault_at, 3)
            return bool(seen[0]) and self.log.last_ack > seen[0]
        return self.wait(f"pair whole under {sorted(allowed)}", done)

    # -- the faults: each injects, heals, waits; returns whether the run recovered --------

    def node_kill(self) -> bool:
        self.rec["killed"] = self.c.kill_node(self.primary)
        over = self.writes_to(self.other)
        self.c.restart(self.primary)
        return self.whole({self.other}) and over

    def link_cut(self) -> bool:
        self.c.cut(self.primary)
        over = self.writes_to(self.other)
        self.c.heal(self.primary)
        return self.whole({self.other}) and over

    def postmaster_kill(self) -> bool:
        self.rec["postmaster"] = self.c.kill_postmaster(self.primary)
        return self.whole(set(NODES))

    def switchover(self) -> bool:
        ctl = self.c.switchover(self.primary, self.other)
        ok = self.whole({self.other})
        try:
            ok = ctl.wait(timeout=max(1.0, 90 - (time.monotonic() - self.fault_at))) == 0 and ok
        except subprocess.TimeoutExpired:
            ok = False
        self.rec["switchover_said"] = self.c.tail("switchover", 1)
        return ok

    def freeze(self, seconds: float) -> bool:
        self.rec["frozen"] = self.c.freeze(self.primary)
        try:
            end = time.monotonic() + seconds
            while time.monotonic() < end:  # meanwhile: when does the other node take over?
                self.log.refresh()
                self.promoted(self.other)
                time.sleep(POLL)
        finally:
            self.c.thaw(self.primary)
        return self.whole(set(NODES))

    def inject(self, freeze_s: float) -> bool:
        if self.fault == "freeze":
            return self.freeze(freeze_s)
        method: Callable[[], bool] = getattr(self, self.fault)
        return method()

    def verdicts(self) -> None:
        """Stop the writer and the watcher, then judge their lines."""
        Lab.stop(self.writer, grace=5)
        end = time.monotonic()
        Lab.stop(self.watcher, grace=5)
        writes = self.log.refresh()
        self.rec.update(measure(writes, self.fault_at))
        self.rec["acknowledged"] = sum(1 for w in writes if w.ok)
        watch = (self.c.base / "watch.out").read_text(errors="replace").splitlines()
        two = two_primaries(watch, end=end)
        self.rec["two_primaries_s"] = round(two, 3)
        final = self.rec.get("primary_after") or next(
            (n for n in NODES if (s := self.c.state(n)) and s.primary), None)
        rows = self.c.rows(final) if final else None
        if rows is None:
            self.rec["lost"] = None
        else:
            missing_rows = lost(writes, rows)
            self.rec["lost"] = len(missing_rows)
            self.rec["lost_rows"] = missing_rows[:20]


def one(make: Callable[[], AbstractContextManager[Servers]], fault: str, freeze_s: float,
        index: int, logs: Path | None = None) -> dict[str, Any]:
    """One run of `fault` on a fresh cluster from `make`; its record (with "error" if it
    broke). With `logs`, the run's logs and the writer's and watcher's lines are kept
    there."""
    started = time.monotonic()
    rec: dict[str, Any] = {"fault": fault, "run": index, "primary_before": "n1"}
    try:
        with make() as c:
            run = Run(c, fault, rec)
            c.keep = logs / f"{fault}-{index}" if logs else None
            try:
                c.form()
                rec["formed_s"] = round(time.monotonic() - started, 1)
                run.start_clients()
                run.fault_at = time.monotonic()
                rec["recovered"] = run.inject(freeze_s)
                run.verdicts()
            except Exception as e:
                rec["error"] = f"{type(e).__name__}: {e}"
            rec.update(c.notes())
            if rec.get("error") or not rec.get("recovered"):
                rec["logs"] = {n: c.tail(n) for n in c.log_names()}
    except Exception as e:  # building or closing the lab
        rec.setdefault("error", f"{type(e).__name__}: {e}")
    rec["run_s"] = round(time.monotonic() - started, 1)
    return rec


KEYS = ("outage_s", "ack_gap_s", "promoted_s", "lost", "two_primaries_s", "run_s")


def line(label: str, rec: dict[str, Any]) -> str:
    """One run's progress line."""
    return f"{label}: " + ", ".join(
        f"{k} {rec[k]}" for k in ("recovered", *KEYS[:-1], "primary_after", "run_s",
                                  "timeouts", "error") if k in rec)


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in records if "error" not in r]
    out: dict[str, Any] = {k: common.summary([r[k] for r in good if r.get(k) is not None])
                           for k in KEYS}
    out["recovered"] = sum(1 for r in good if r.get("recovered"))
    out["runs"] = len(records)
    out["runs_losing_commits"] = sum(1 for r in good if r.get("lost"))
    return out


def med(s: dict[str, Any]) -> str:
    """A summary as "median (min-max)", or "-" without values."""
    if s["median"] is None:
        return "-"
    if s["min"] == s["max"]:
        return f"{s['median']:g}"
    return f"{s['median']:g} ({s['min']:g}-{s['max']:g})"


HEADERS = ["recovered", "outage s", "ack gap s", "promoted s", "lost", "runs losing",
           "two primaries s", "run s"]


def cells(s: dict[str, Any]) -> list[Any]:
    return [f"{s['recovered']}/{s['runs']}", med(s["outage_s"]), med(s["ack_gap_s"]),
            med(s["promoted_s"]), med(s["lost"]), s["runs_losing_commits"],
            med(s["two_primaries_s"]), med(s["run_s"])]


def render(results: dict[str, dict[str, Any]]) -> str:
    """One system's table: a row per fault."""
    rows = [[f, *cells(v["summary"])] for f, v in results.items()]
    return common.table(["fault", *HEADERS], rows)
