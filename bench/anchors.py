"""The anchors, really started in the lab: keepalived 2.2.7 moving the same floating address
between the same two namespaces, so that vigil's figures are measured beside theirs in one
run (this machine is noisy: a ratio means more than a number).

    with keepalived_pair(lab, vip, advert=0.1) as pids: ...   # {"n1": [pid, ...], ...}

Each node runs `keepalived -n -l -P` (VRRP only, foreground, logging to the console) with
its own configuration, pid files and VRRP instance: n1 priority 150, n2 100, VRRPv3 (which
allows adverts below one second), the address on eth0. Nothing leaves the lab's namespaces.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

from bench import common
from vigil.lab.netns import Lab

CONF = """global_defs {{
    router_id {node}
    vrrp_version 3
    enable_script_security
    script_user root
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 77
    priority {priority}
    advert_int {advert}
    virtual_ipaddress {{
        {vip}/24 dev eth0
    }}
}}
"""


def available() -> bool:
    return shutil.which("keepalived") is not None


@contextlib.contextmanager
def keepalived_pair(lab: Lab, vip: str, advert: float = 0.1) -> Iterator[dict[str, list[int]]]:
    """keepalived on n1 and n2; yields each node's keepalived processes (the parent and its
    VRRP child) once n1 holds `vip`."""
    assert available(), "keepalived is not installed (make bench installs it)"
    tmp = Path(tempfile.mkdtemp(prefix=f"{lab.prefix}-keepalived-"))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for node, priority in (("n1", 150), ("n2", 100)):
            conf = tmp / f"{node}.conf"
            conf.write_text(CONF.format(node=node, priority=priority, advert=advert, vip=vip))
            procs[node] = lab.popen(node, [
                "keepalived", "-n", "-l", "-P", "-f", str(conf),
                "-p", str(tmp / f"{node}.pid"), "-r", str(tmp / f"{node}.vrrp.pid")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lab.wait_address("n1", f"{vip}/24", timeout=15.0)
        yield {n: _tree(p.pid) for n, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                Lab.stop(p, grace=5.0)
        shutil.rmtree(tmp, ignore_errors=True)


def _tree(pid: int) -> list[int]:
    """`pid` (the `ip netns exec` wrapper execs keepalived, so it is keepalived) and its
    children, waiting a moment for the VRRP child to exist."""
    deadline = time.monotonic() + 5.0
    while True:
        kids = common.children(pid)
        if kids or time.monotonic() > deadline:
            return [pid] + kids
        time.sleep(0.05)
