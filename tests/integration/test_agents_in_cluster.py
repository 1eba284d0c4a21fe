"""Issue 4 on real daemons: real OCF agents from Debian's resource-agents, an LSB script, a
Heartbeat resource.d script and the built-in filesystem in a two-node cluster, monitored,
restarted in place, moved after migration_threshold failures, and cleaned up. A client
probes the floating address throughout where the group carries it.

The nodes share one filesystem (they are namespaces of one host), so the scripts written
here keep their pid files per node, named after `ip netns identify`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from vigil.lab.cluster import HolderMonitor, LabCluster
from vigil.lab.disk import loop_device
from vigil.lab.probe import Prober

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/usr/lib/ocf/resource.d/heartbeat/IPaddr2").exists(),
                       reason="resource-agents is not installed (make test installs it)"),
]


def group(c: LabCluster, resources: str, policy: str = "") -> str:
    return (f'[[group]]\nname = "web"\nhome = "n1"\n{policy}{resources}')


def wait_for(what: str, check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def ipaddr2(c: LabCluster, interval: str = "500ms") -> str:
    return (f'[[group.resource]]\ntype = "ocf"\nagent = "heartbeat:IPaddr2"\nid = "vip"\n'
            f'params = {{ ip = "{c.vip}", cidr_netmask = 24, nic = "eth0" }}\n'
            f'monitor = {{ interval = "{interval}" }}\n')


def test_ipaddr2_is_restarted_in_place_then_moved_after_the_threshold() -> None:
    policy = '[group.policy]\nmigration_threshold = 2\nfailure_timeout = "0s"\n'
    with LabCluster(groups="") as c, HolderMonitor(c) as mon:
        c.add_config(group(c, ipaddr2(c), policy))
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        wait_for("the start", lambda: "ocf:heartbeat:IPaddr2 vip start: ok" in c.log("n1"))
        with Prober(c.lab, "client", c.url(), duration=60) as p:
            p.wait_sample(lambda s: s.node == "n1", timeout=5)
            # The address vanishes behind vigil's back: the monitor notices, IPaddr2 puts it
            # back on the same node.
            c.lab.run("n1", ["ip", "addr", "del", f"{c.vip}/24", "dev", "eth0"])
            wait_for("a restart in place", lambda: "group web recovered" in c.log("n1"))
            c.wait_holder("n1")
            assert "restarting it in place (failure 1 of 2 on this node)" in c.log("n1")
            # Again: the threshold is reached, the group moves to n2 and the client follows.
            c.lab.run("n1", ["ip", "addr", "del", f"{c.vip}/24", "dev", "eth0"])
            c.wait_holder("n2", timeout=10)
            t = time.monotonic()
            p.wait_sample(lambda s: s.node == "n2", after=t - 1, timeout=5)
        s = c.status("n1")["groups"][0]
        assert (s["fail_count"], s["banned_s"]) == (2, "forever")
        assert "2 failures here reach migration_threshold 2" in c.log("n1")
        assert "kept off this node until `vigil resource cleanup`" in c.vigil("n1",
                                                                              "status").stdout
        time.sleep(1.0)
        assert c.holders() == ["n2"], "no failback while n1 is kept off"
        assert c.vigil("n1", "resource", "cleanup", "web").returncode == 0
        c.wait_holder("n1", timeout=10)  # auto_failback, as a planned hand-over
        assert c.status("n1")["groups"][0]["fail_count"] == 0
    assert not mon.doubles, mon.overlaps


LSB_SCRIPT = """#!/bin/sh
# A classic init script: a daemon (sleep) with a pid file, one per lab node.
PIDFILE="{dir}/$(ip netns identify $$)-{name}.pid"
running() {{ [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }}
case "$1" in
  start) running && exit 0
         setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $! > "$PIDFILE"
         echo "{name} started" >&2 ;;
  stop)  running && kill "$(cat "$PIDFILE")"; rm -f "$PIDFILE"; exit 0 ;;
  status) running && {{ echo running; exit 0; }}
          [ -f "$PIDFILE" ] && {{ echo "dead, pid file exists"; exit 1; }}
          echo stopped; exit 3 ;;
  *) exit 2 ;;
esac
"""

HB_SCRIPT = """#!/bin/sh
# A Heartbeat resource.d script: arguments first, the action last.
MARK="{dir}/$(ip netns identify $$)-hb"
eval "action=\\${{$#}}"
case "$action" in
  start) echo "$1" > "$MARK" ;;
  stop) rm -f "$MARK" ;;
  status) [ -f "$MARK" ] && echo running || echo stopped ;;
esac
exit 0
"""


@contextmanager
def scripts(c: LabCluster) -> Iterator[tuple[str, str]]:
    """An LSB script in /etc/init.d and a Heartbeat script in /etc/ha.d/resource.d, where
    the agents look for them, under names unique to this lab; removed afterwards."""
    lsb, hb = f"{c.lab.prefix}-appd", f"{c.lab.prefix}-Marker"
    resd = Path("/etc/ha.d/resource.d")
    made = [d for d in (Path("/etc/ha.d"), resd) if not d.exists()]
    for d in made:
        d.mkdir()
    files = [Path("/etc/init.d") / lsb, resd / hb]
    try:
        files[0].write_text(LSB_SCRIPT.format(dir=c.dir, name="appd"))
        files[1].write_text(HB_SCRIPT.format(dir=c.dir))
        for f in files:
            f.chmod(0o755)
        yield lsb, hb
    finally:
        for f in files:
            f.unlink(missing_ok=True)
        for d in reversed(made):
            shutil.rmtree(d, ignore_errors=True)


def test_lsb_and_heartbeat_scripts_restart_in_order() -> None:
    """An LSB daemon killed: it and the resources after it are restarted, in order; the
    address before it is left alone."""
    with LabCluster(groups="") as c, scripts(c) as (lsb, hb):
        resources = (f'[[group.resource]]\ntype = "ip"\naddress = "{c.vip}/24"\n'
                     f'interface = "eth0"\n'
                     f'[[group.resource]]\ntype = "lsb"\nname = "{lsb}"\n'
                     f'monitor = {{ interval = "500ms" }}\n'
                     f'[[group.resource]]\ntype = "heartbeat"\nscript = "{hb}::hello"\n')
        c.add_config(group(c, resources))
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        wait_for("the group", lambda: "group web acquired" in c.log("n1"))
        pidfile = c.dir / f"{c.lab.ns('n1')}-appd.pid"
        mark = c.dir / f"{c.lab.ns('n1')}-hb"
        assert mark.read_text().strip() == "hello", "arguments first, action last"
        first = int(pidfile.read_text())
        os.kill(first, signal.SIGKILL)
        wait_for("the restart", lambda: "group web recovered" in c.log("n1"))
        log1 = c.log("n1")
        assert re.search(rf"lsb:{lsb} failed: .*(not running|dead but its pid file exists)"
                         rf".*restarting it in place", log1), log1[-2000:]
        assert f"lsb:{lsb}: appd started" in log1, "the script's stderr, under its name"
        tail = log1[log1.index(f"recovering group web from lsb:{lsb}"):]
        order = [m.group(0) for m in re.finditer(
            rf"(heartbeat:{hb}::hello|lsb:{lsb}|ip \S+ on eth0) (start|stop)", tail)]
        assert order == [f"heartbeat:{hb}::hello stop", f"lsb:{lsb} stop",
                         f"lsb:{lsb} start", f"heartbeat:{hb}::hello start"], order
        assert int(pidfile.read_text()) != first
        assert c.holders() == ["n1"]


def mounted(c: LabCluster, node: str, mountpoint: Path) -> bool:
    """Is it mounted in the node's daemon's mount namespace?"""
    r = c.in_daemon(node, ["findmnt", "-n", str(mountpoint)])
    return r.returncode == 0


def test_a_busy_filesystem_follows_the_group_to_the_peer() -> None:
    """seed 001's Filesystem::/dev/sdb5::/webdata::ext3, with the built-in agent: mounted on
    the owner, released on standby after the process holding it is stopped, mounted on the
    peer, and never on both (the second mount is refused while the first lives)."""
    with LabCluster(groups="") as c, loop_device(c.dir / "data.img", 16 << 20, "ext4") as dev, HolderMonitor(c) as mon:
        mnt = c.dir / "webdata"
        resources = (f'[[group.resource]]\ntype = "filesystem"\ndevice = "{dev}"\n'
                     f'mountpoint = "{mnt}"\nfstype = "ext4"\noptions = "noatime"\n'
                     f'kill_grace = "500ms"\n'
                     f'[[group.resource]]\ntype = "ip"\naddress = "{c.vip}/24"\n'
                     f'interface = "eth0"\n')
        c.add_config(group(c, resources))
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        wait_for("the mount on n1", lambda: mounted(c, "n1", mnt))
        assert not mounted(c, "n2", mnt)
        # A process of n1 keeps the mount busy (its cwd is inside, a file open).
        holder = subprocess.Popen(
            ["nsenter", "-t", str(c.daemon_pid("n1")), "-m", "-n", "sh", "-c",
             f'cd "{mnt}" && exec sleep 600 > "{mnt}/busy"'])
        try:
            wait_for("the holder", lambda: c.in_daemon("n1", ["test", "-e",
                                                              str(mnt / "busy")]).returncode == 0)
            c.vigil("n1", "standby", check=True)
            c.wait_holder("n2", timeout=20)
            assert holder.wait(10) != 0, "the holder was stopped"
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait()
        wait_for("the mount on n2", lambda: mounted(c, "n2", mnt))
        assert not mounted(c, "n1", mnt)
        log1 = c.log("n1")
        assert f"filesystem {dev} on {mnt} stop: ok" in log1
        assert re.search(r"(holder|SIGTERM|busy)", log1), log1[-2000:]
    assert not mon.doubles, mon.overlaps
