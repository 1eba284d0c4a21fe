"""A promotable PostgreSQL group on a LabCluster's two nodes, as the integration tests
(tests/integration/test_promotable.py) and the benchmark (bench/pg_vigil.py) both build it:
the group's text, the stand-in watchdogs, the client admitted to pg_hba.conf, a frozen
host, and the teardown that leaves no server running.

The two nodes share one filesystem in the lab, so each has its own copy of vigil.toml with
its own data directory under the lab's (as two hosts have the same path on two disks):
`group_text` leaves @NODE@ for LabCluster.node_config to fill in.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterable
from pathlib import Path

from vigil.lab.cluster import LabCluster
from vigil.lab.watchdog import StandInWatchdog

BIN = Path("/usr/lib/postgresql/15/bin")
NODES = ("n1", "n2")
WATCHDOG_S = 2.0  # the stand-in watchdogs' timeout

GROUP = """
[[group]]
name = "db"
home = "n1"
promotable = true
[[group.resource]]
type = "postgresql"
data_dir = "@DIR@/@NODE@/pg"
socket_dir = "@DIR@/@NODE@/sock"
@EXTRA@
[[group.resource]]
type = "ip"
address = "@VIP@/24"
interface = "eth0"
arp_repeat_delay = "200ms"
"""


def group_text(directory: Path, vip: str, extra: str = "") -> str:
    """The promotable group "db": its postgresql resource (with `extra`, more of its keys;
    @DIR@ there is the lab's directory too), then its floating address `vip`."""
    return (GROUP.replace("@EXTRA@", extra).replace("@DIR@", str(directory))
            .replace("@VIP@", vip))


def data_dir(c: LabCluster, node: str) -> Path:
    return c.dir / node / "pg"


def socket_dir(c: LabCluster, node: str) -> Path:
    return c.dir / node / "sock"


def configure(c: LabCluster, extra: str = "", witness: bool = False,
              watchdogs: bool = False) -> dict[str, StandInWatchdog]:
    """The group on both nodes of `c`, with a witness in the client's namespace (it decides
    a link cut) and stand-in watchdogs if asked; the watchdogs by node. This kernel has no
    watchdog device: lab/watchdog.py's stand-in acts out the reset of a node whose every
    vigil process stopped feeding it (LabCluster.reset), as a frozen host's would."""
    c.dir.chmod(0o755)  # the postgres user reaches its data directory under it
    c.add_config(group_text(c.dir, c.vip, extra))
    if witness:
        c.add_config(f'[witness]\naddress = "{c.lab.address("client")}"\n')
    dogs: dict[str, StandInWatchdog] = {}
    for n in NODES:
        lines = ""
        if watchdogs:
            dogs[n] = new_watchdog(c, n)
            lines = f'watchdog = "{dogs[n].path}"'
        c.node_config(n, lines, (("@NODE@", n),))
    if witness:
        c.start_witness()
    return dogs


def new_watchdog(c: LabCluster, node: str) -> StandInWatchdog:
    """`node`'s stand-in watchdog (its path is the same each time: a host's device); when
    it expires the host is reset, unless the cluster is closing."""
    def expire() -> None:
        if not c.lab.closed:
            c.reset(node)
    return StandInWatchdog(c.dir / f"{node}-watchdog", timeout=WATCHDOG_S, expire=expire)


def client_hba(client: str) -> str:
    """The pg_hba.conf line an administrator adds below vigil's block for the client's /24
    (trust, in the lab)."""
    return f"host all all {client.rsplit('.', 1)[0]}.0/24 trust\n"


def admit_client(c: LabCluster) -> None:
    """The client's line in both nodes' pg_hba.conf (both: a rewind copies the source's
    file), then each server told to read it again (SIGHUP to its postmaster)."""
    line = client_hba(c.lab.address("client"))
    for n in NODES:
        hba = data_dir(c, n) / "pg_hba.conf"
        hba.write_text(hba.read_text() + line)
        os.kill(postmaster(c, n), signal.SIGHUP)


def postmaster(c: LabCluster, node: str) -> int:
    """The pid of `node`'s postmaster (postmaster.pid's first line)."""
    return int((data_dir(c, node) / "postmaster.pid").read_text().split()[0])


def signal_all(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def freeze(c: LabCluster, node: str) -> list[int]:
    """SIGSTOP of every process of `node`'s host (its daemon, guard and PostgreSQL at once);
    the pids, for the SIGCONT."""
    frozen = c.host_pids(node)
    signal_all(frozen, signal.SIGSTOP)
    return frozen


def stop_servers(c: LabCluster) -> None:
    """Stop (immediate) any server still running in either data directory: after the
    daemons, which stop theirs, for one a test or a fault left behind."""
    for n in NODES:
        d = data_dir(c, n)
        if (d / "postmaster.pid").exists():
            subprocess.run(["runuser", "-u", "postgres", "--", str(BIN / "pg_ctl"), "stop",
                            "-D", str(d), "-m", "immediate", "-w"], capture_output=True,
                           timeout=30, cwd="/")
