"""Issue 12, part 1: each seed's Heartbeat files, as the seeds give them, run on real
daemons in namespaces and fail over once.

The texts are the unit tests' verbatim copies (tests/unit/test_heartbeat_config.py: ha.cf,
haresources, authkeys of seeds 000, 001 and 002), with node names, timings, `crc` (run with
--allow-crc) and the bare `IPaddr::ADDRESS` unchanged. What the lab must change, and only
that, is said at each test: paths that would write outside the test (logfile, a mount point,
a device, a serial line), and seed 001's authkeys, which it does not show. The lab's subnets
are the seeds' (192.168.10.0/24 for 000...), so the bare addresses find their interface and
prefix from the connected route, as Heartbeat's IPaddr did; heartbeats go on eth1 (`bcast
eth1`), the public network with the client on eth0. The resource.d scripts the seeds name
(ipvsadm, httpd, servicelist1...) are stand-ins that keep a state file: this kernel has no
IPVS, and the lab's web server runs on every node.

The failover is seed 001's test 5, `killall -9 heartbeat`: the owner's daemon killed. Its
guard stops the group and says goodbye, so the peer takes over at once, whatever deadtime
(30 s in seed 000) says.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.unit.test_heartbeat_config import (SEED_000_AUTHKEYS, SEED_000_HACF,
                                              SEED_000_HARESOURCES, SEED_001_HACF_FROM_LOG,
                                              SEED_001_HARESOURCES, SEED_002_AUTHKEYS,
                                              SEED_002_HACF_REPAIRED, SEED_002_HARESOURCES)
from vigil.lab.cluster import LabCluster
from vigil.lab.disk import loop_device

pytestmark = pytest.mark.integration

def script(d: Path, name: str, log: Path) -> None:
    """A resource.d script that records its calls and keeps its state in a file per node
    (the nodes share one filesystem; `ip netns identify` tells them apart)."""
    p = d / "resource.d" / name
    p.parent.mkdir(exist_ok=True)
    p.write_text(f"""#!/bin/sh
node=$(ip netns identify $$)
state="{log}.{name}.$node"
echo "{name} $1" >> "{log}"
case "$1" in
  start) touch "$state" ;;
  stop) rm -f "$state" ;;
  status) if [ -e "$state" ]; then echo running; else echo stopped; exit 3; fi ;;
esac
exit 0
""")
    p.chmod(0o755)


def ha_dir(c: LabCluster, name: str, hacf: str, haresources: str, authkeys: str,
           scripts: tuple[str, ...]) -> Path:
    d = c.dir / name
    d.mkdir()
    (d / "ha.cf").write_text(hacf)
    (d / "haresources").write_text(haresources)
    (d / "authkeys").write_text(authkeys)
    (d / "authkeys").chmod(0o600)
    for s in scripts:
        script(d, s, c.dir / "calls")
    return d


def holders(c: LabCluster, address: str) -> list[str]:
    return [n for n in ("n1", "n2") if any(a.startswith(address + "/")
                                           for a in c.lab.addresses(n, "eth0"))]


def wait_for(c: LabCluster, address: str, want: list[str], timeout: float) -> None:
    end = time.monotonic() + timeout
    while holders(c, address) != want:
        if time.monotonic() > end:
            raise TimeoutError(f"{address}: {holders(c, address)}, wanted {want}\n"
                               f"--- n1\n{c.log('n1')[-2500:]}\n--- n2\n{c.log('n2')[-2500:]}")
        time.sleep(0.02)


def kill9(c: LabCluster, node: str) -> None:
    os.kill(c.daemons.pop(node).pid, signal.SIGKILL)


def test_seed_000_ipvsadm_httpd_and_a_bare_ipaddr() -> None:
    """ha.cf, haresources (`server201 IPaddr::192.168.10.200 ipvsadm httpd`) and authkeys
    (`1 crc`) of seed 000. Changed: `logfile` points into the test's directory."""
    with LabCluster(links=2, subnet="192.168.10.0/24",
                    names={"n1": "server201", "n2": "server202"}) as c:
        # The ping node of its ha.cf, the gateway 192.168.10.1: the client host here.
        c.lab.run("client", ["ip", "addr", "add", "192.168.10.1/24", "dev", "eth0"])
        hacf = SEED_000_HACF.replace("/var/log/ha_log/ha-log.log", str(c.dir / "ha-log.log"))
        assert "keepalive 2" in hacf and "deadtime 30" in hacf and "initdead 120" in hacf
        d = ha_dir(c, "ha.d", hacf, SEED_000_HARESOURCES, SEED_000_AUTHKEYS,
                   ("ipvsadm", "httpd"))
        check = c.vigil("n1", "check-config", "--heartbeat-dir", str(d), "--allow-crc")
        assert check.returncode == 0, check.stderr
        assert check.stdout.startswith(f"{d} (ha.cf, haresources, authkeys): OK: cluster")
        for n in ("n1", "n2"):
            c.start(n, "--heartbeat-dir", str(d), "--allow-crc")
        wait_for(c, "192.168.10.200", ["n1"], timeout=15)
        c.wait_group("n1", "192.168.10.200", "running")
        assert "192.168.10.200/24" in c.lab.addresses("n1", "eth0")  # eth0's /24, found
        assert "found eth0 as 192.168.10.200/24 (connected route 192.168.10.0/24" in c.log("n1")
        calls = (c.dir / "calls").read_text()
        assert "ipvsadm start" in calls and "httpd start" in calls
        kill9(c, "n1")  # seed 001's test 5: killall -9 heartbeat
        wait_for(c, "192.168.10.200", ["n2"], timeout=5)
        log2 = c.log("n2")
        assert "Resources being acquired from server201." in log2
        assert "crc" in log2  # warned at every start


def test_seed_001_filesystem_on_a_shared_disk() -> None:
    """ha.cf as seed 001's log shows it, and its haresources (`node1 192.168.60.200/24/eth0
    Filesystem::/dev/sdb5::/webdata::ext3`). Changed: /dev/sdb5 is a loop device and
    /webdata a directory of the test; its authkeys, which the seed does not show, is sha1."""
    with LabCluster(links=2, subnet="192.168.60.0/24",
                    names={"n1": "node1", "n2": "node2"}) as c, \
            loop_device(c.dir / "sdb5.img", 16 << 20, "ext3") as dev:
        c.lab.run("client", ["ip", "addr", "add", "192.168.60.1/24", "dev", "eth0"])
        mnt = c.dir / "webdata"
        mnt.mkdir()
        haresources = SEED_001_HARESOURCES.replace("/dev/sdb5", dev).replace("/webdata",
                                                                             str(mnt))
        d = ha_dir(c, "ha.d", SEED_001_HACF_FROM_LOG, haresources,
                   "auth 1\n1 sha1 seed-001-shows-no-authkeys\n", ())
        for n in ("n1", "n2"):
            c.start(n, "--heartbeat-dir", str(d))
        wait_for(c, "192.168.60.200", ["n1"], timeout=15)
        deadline = time.monotonic() + 5
        while c.in_daemon("n1", ["findmnt", "-n", str(mnt)]).returncode != 0:
            assert time.monotonic() < deadline, c.log("n1")[-2000:]
            time.sleep(0.05)
        kill9(c, "n1")
        wait_for(c, "192.168.60.200", ["n2"], timeout=10)
        deadline = time.monotonic() + 5
        while c.in_daemon("n2", ["findmnt", "-n", str(mnt)]).returncode != 0:
            assert time.monotonic() < deadline, c.log("n2")[-2000:]
            time.sleep(0.05)
        assert "mach_down takeover complete for node node1." in c.log("n2")


@pytest.mark.skipif(shutil.which("socat") is None, reason="socat makes the serial cable")
def test_seed_002_two_groups_a_serial_cable_and_bare_addresses() -> None:
    """Seed 002's ha.cf (its media lines, lost in the PDF, repaired from its prose: bcast
    eth1, serial /dev/ttyS0 at 19200 baud), its haresources (Anode IPaddr::192.168.0.49
    servicelist1, Bnode IPaddr::192.168.0.50 servicelist2; the PDF's wrapped comment lines
    dropped) and its authkeys (`1 crc`). Changed: each node's /dev/ttyS0 is its end of a
    socat pty pair, the null-modem cable: so each node has its own directory, as each host
    has its own /etc/ha.d."""
    with LabCluster(links=2, subnet="192.168.0.0/24",
                    names={"n1": "Anode", "n2": "Bnode"}) as c:
        a, b = c.dir / "ttyS0-a", c.dir / "ttyS0-b"
        cable = subprocess.Popen(["socat", f"pty,raw,echo=0,link={a}",
                                  f"pty,raw,echo=0,link={b}"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 5
            while not (a.exists() and b.exists()):
                assert time.monotonic() < deadline, "socat made no ptys"
                time.sleep(0.02)
            haresources = SEED_002_HARESOURCES.replace("servicelist1\nB", "B").replace(
                "\nservicelist2\n", "\n")
            assert "IPaddr::192.168.0.49 servicelist1" in haresources
            dirs = {n: ha_dir(c, f"ha.d-{n}", SEED_002_HACF_REPAIRED.replace(
                "/dev/ttyS0", str(tty)), haresources, SEED_002_AUTHKEYS,
                ("servicelist1", "servicelist2")) for n, tty in (("n1", a), ("n2", b))}
            for n in ("n1", "n2"):
                c.start(n, "--heartbeat-dir", str(dirs[n]), "--allow-crc")
            wait_for(c, "192.168.0.49", ["n1"], timeout=15)
            wait_for(c, "192.168.0.50", ["n2"], timeout=15)
            s = c.status("n1")
            assert {l["kind"] for l in s["links"]} == {"bcast", "serial"}
            kill9(c, "n1")
            wait_for(c, "192.168.0.49", ["n2"], timeout=5)
            assert holders(c, "192.168.0.50") == ["n2"]
        finally:
            cable.terminate()
            cable.wait(5)
