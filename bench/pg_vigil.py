"""vigil's side of the replicated-PostgreSQL benchmark: a promotable group (PostgreSQL 15,
synchronous = "on", and a floating address) on two vigil daemons in the lab, as a `Servers`
of bench/pg_run.py, so that it is measured the way Patroni is (bench/pg_failover.py runs
both, one table).

    with VigilCluster() as c:     # LabCluster's timings: keepalive 100 ms, deadtime 500 ms
        c.form()                  # n1 primary holding the address, n2 its sync standby
        c.healthy({"n1"})         # "n1" while that holds

The cluster is tests/integration/test_promotable.py's (vigil.lab.pgpair): each node's own
vigil.toml (its own data directory, its stand-in watchdog), a witness in the client's
namespace (it decides a link cut), a stand-in watchdog of 2 s on each node
(vigil.lab.watchdog: a node whose every vigil process stopped feeding it is reset as
LabCluster.reset does), and the client's network admitted to both servers' pg_hba.conf.
The writer writes through the floating address. The faults, as vigil gets them:

  node_kill        LabCluster.reset (every process of the host killed, the floating address
                   removed: a host reset; its watchdog disarmed with it, as a reboot does),
                   then the daemon started once the other node is primary
  link_cut         every packet in and out of its eth0 dropped (Lab.drop), then undropped
  postmaster_kill  kill -9 of postmaster.pid's first line (the monitor restarts it in place)
  switchover       `vigil switchover db OTHER`, from the primary's CLI
  freeze           SIGSTOP of every process of the host; its stand-in
                   watchdog resets it 2 s later; the thaw (SIGCONT) finds nothing left, and
                   the node's daemon is started again
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.pg_cluster import BIN, NODES, PsqlNodes, healthy_primary
from vigil.lab import pgpair
from vigil.lab.cluster import LabCluster
from vigil.lab.watchdog import StandInWatchdog
from vigil.replica.model import slot_name

APP = {n: slot_name(n) for n in NODES}  # each node's application_name as a standby


def lab_timings(deadtime: float | None) -> dict[str, Any]:
    """LabCluster's timing arguments: its defaults (keepalive 100 ms, warntime 250 ms,
    deadtime 500 ms, initdead 2 s) without a deadtime; else bench.common's for it."""
    if deadtime is None:
        return {}
    from bench.common import timings
    return timings(deadtime)


class VigilCluster(PsqlNodes):
    """The lab, the witness and the two vigil daemons of one run."""

    def __init__(self, deadtime: float | None = None, synchronous: str = "on") -> None:
        self.synchronous = synchronous
        self.c = LabCluster(groups="", **lab_timings(deadtime))
        self.lab, self.base = self.c.lab, self.c.dir
        self.keep: Path | None = None
        self.dogs: dict[str, StandInWatchdog] = {}
        self._frozen: list[int] = []
        self._frozen_at: float | None = None
        self._ctl: list[subprocess.Popen[bytes]] = []
        try:
            self.dogs = pgpair.configure(self.c, f'synchronous = "{synchronous}"',
                                         witness=True, watchdogs=True)
        except BaseException:
            self.close()
            raise

    # -- paths and logs ---------------------------------------------------------------------

    def socket(self, node: str) -> Path:
        return pgpair.socket_dir(self.c, node)

    def log(self, name: str) -> Path:
        """"n1", "n2": the daemons' logs; "pg-n1", "pg-n2": the servers' (the resource's
        default log_file, <data_dir>.log); "witness"; anything else: DIR/NAME.log."""
        if name in NODES:
            return self.c.logs[name]
        if name.startswith("pg-") and name[3:] in NODES:
            return self.c.dir / name[3:] / "pg.log"
        return self.c.dir / f"{name}.log"

    def log_names(self) -> tuple[str, ...]:
        return (*NODES, *(f"pg-{n}" for n in NODES), "witness", "writer", "switchover")

    def tail(self, name: str, lines: int = 12) -> list[str]:
        try:
            return self.log(name).read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return []

    def client_hosts(self) -> str:
        return self.c.vip

    # -- forming and state ------------------------------------------------------------------

    def form(self, timeout: float = 120) -> None:
        """Both daemons; n1 creates the cluster and holds the address, n2 is built as its
        synchronous standby; then the client's network is admitted on both."""
        deadline = time.monotonic() + timeout
        self.c.start("n1")
        self.c.start("n2")
        # (asynchronous mode has no synchronous standby: streaming is whole)
        while self.healthy({"n1"}, sync=self.synchronous != "off") is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"n1 primary with n2 its sync standby: {self.states()}, "
                                   f"holders {self.c.holders()}")
            for n in NODES:
                if self.c.daemons[n].poll() is not None:
                    raise RuntimeError(f"vigil on {n} exited: {self.tail(n)}")
            time.sleep(0.25)
        pgpair.admit_client(self.c)

    def healthy(self, allowed: set[str], sync: bool = False) -> str | None:
        """The primary when the pair is whole and it holds the floating address."""
        p = healthy_primary(self.states(), allowed, sync, names=APP)
        return p if p is not None and self.c.holders() == [p] else None

    def _down(self, node: str) -> bool:
        d = self.c.daemons.get(node)
        return d is None or d.poll() is not None

    # -- faults -----------------------------------------------------------------------------

    def kill_node(self, node: str) -> int:
        """A host reset (LabCluster.reset); the reboot disarms its watchdog."""
        n = len(self.c.host_pids(node))
        self.c.reset(node)
        self.dogs[node].rebooted()
        return n

    def restart(self, node: str) -> None:
        self.c.start(node)

    def cut(self, node: str) -> None:
        self.lab.drop(node, "both")

    def heal(self, node: str) -> None:
        """Undrop; a daemon its watchdog reset meanwhile is started again (its boot)."""
        self.lab.undrop(node)
        if self._down(node):
            self.c.start(node)

    def kill_postmaster(self, node: str) -> int:
        pid = pgpair.postmaster(self.c, node)
        os.kill(pid, signal.SIGKILL)
        return pid

    def switchover(self, leader: str, candidate: str) -> subprocess.Popen[bytes]:
        """`vigil switchover db CANDIDATE` against the leader's daemon; output: log
        "switchover"."""
        with open(self.log("switchover"), "ab") as out:
            p = subprocess.Popen(self.c.argv(leader, "switchover", "db", candidate), stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._ctl.append(p)
        return p

    def freeze(self, node: str) -> int:
        """SIGSTOP of every process of the host (its daemon, guard and PostgreSQL at once)."""
        self._frozen, self._frozen_at = pgpair.freeze(self.c, node), time.monotonic()
        return len(self._frozen)

    def thaw(self, node: str) -> None:
        """SIGCONT of whatever is left (the watchdog's reset killed it), then the daemon
        started again if it is gone."""
        pgpair.signal_all(self._frozen, signal.SIGCONT)
        self._frozen = []
        if self._down(node):
            self.c.start(node)

    def notes(self) -> dict[str, Any]:
        """The watchdogs' resets (how many per node; after a freeze, how long after it),
        and any daemon that exited by itself."""
        resets = {n: d.expired for n, d in self.dogs.items()}
        out: dict[str, Any] = {"watchdog_resets": {n: len(t) for n, t in resets.items()}}
        if self._frozen_at is not None:
            after = [t - self._frozen_at for ts in resets.values() for t in ts
                     if t >= self._frozen_at]
            out["watchdog_reset_after_s"] = round(min(after), 3) if after else None
        exited = {n: p.returncode for n, p in self.c.daemons.items() if p.poll() is not None}
        if exited:
            out["daemons_exited"] = exited
        return out

    # -- teardown ---------------------------------------------------------------------------

    def close(self) -> None:
        """Resume anything frozen, stop both daemons at once (and so their servers), stop
        what is left of PostgreSQL, close the watchdogs and the lab, remove the directory
        (keeping the logs in `keep` first)."""
        try:
            pgpair.signal_all(self._frozen, signal.SIGCONT)
            for p in self._ctl:
                if p.poll() is None:
                    p.kill()
                p.wait()
            # Both at once: stopped one by one, the last would first take over.
            stopping = [(n, self.c.daemons.pop(n)) for n in NODES if n in self.c.daemons]
            for _, d in stopping:
                if d.poll() is None:
                    d.send_signal(signal.SIGTERM)
            for _, d in stopping:
                try:
                    d.wait(20)
                except subprocess.TimeoutExpired:
                    d.kill()
                    d.wait()
            for dog in self.dogs.values():
                dog.close()
            pgpair.stop_servers(self.c)
        finally:
            if self.keep is not None:
                self.keep.mkdir(parents=True, exist_ok=True)
                for name in self.log_names():
                    with contextlib.suppress(OSError):
                        shutil.copy(self.log(name), self.keep / f"{name}.log")
                for out in self.c.dir.glob("*.out"):
                    shutil.copy(out, self.keep / out.name)
            self.c.close()
            if os.environ.get("VIGIL_KEEP_LAB_DIR") is None:
                shutil.rmtree(self.c.dir, ignore_errors=True)


def versions() -> dict[str, str]:
    import vigil
    r = subprocess.run([str(BIN / "postgres"), "--version"], capture_output=True, text=True,
                       timeout=20)
    return {"vigil": vigil.__version__, "postgres": r.stdout.strip()}
