"""Issue 6: a cluster started from a Heartbeat directory (ha.cf, haresources, authkeys, as
an administrator of seed 001 has them, with lab addresses and faster timings) runs on real
daemons and passes the core failover checks: start at home, hb_standby-style hand-over,
failover when the owner's link is cut, failback, and never two owners."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from vigil.lab.cluster import HolderMonitor, LabCluster

pytestmark = pytest.mark.integration


def heartbeat_dir(c: LabCluster) -> Path:
    d = c.dir / "ha.d"
    d.mkdir()
    a1, a2 = c.lab.address("n1"), c.lab.address("n2")
    (d / "ha.cf").write_text(f"""# as in seed 001, with lab addresses and faster timings
debugfile /var/log/ha-debug
logfacility local0
keepalive 100ms
deadtime 500ms
warntime 250ms
initdead 2
udpport 694
ucast eth0 {a1}
ucast eth0 {a2}
auto_failback on
node n1
node n2
""")
    (d / "haresources").write_text(f"n1 IPaddr::{c.vip}/24/eth0\n")
    (d / "authkeys").write_text("auth 1\n1 sha1 a-shared-secret-of-some-length\n")
    (d / "authkeys").chmod(0o600)
    return d


def test_a_heartbeat_directory_runs_and_fails_over() -> None:
    with LabCluster() as c, HolderMonitor(c) as mon:
        d = heartbeat_dir(c)
        c.start("n1", "--heartbeat-dir", str(d))
        c.start("n2", "--heartbeat-dir", str(d))
        c.wait_holder("n1")
        log1 = c.log("n1")
        assert "Local status now set to: 'up'" in log1
        assert "debugfile" in log1, "the no-effect directive is warned about at start"
        s = c.status("n2")
        assert s["nodes"][1]["state"] == "up" and s["links"][0]["kind"] == "ucast"
        c.vigil("n1", "standby", check=True)
        c.wait_holder("n2")
        c.vigil("n1", "takeover", check=True)
        c.wait_holder("n1")
        t0 = time.monotonic()
        c.lab.link_down("n1")
        c.wait_holder("n2", timeout=5)
        assert "Resources being acquired from n1." in c.log("n2")
        assert "mach_down takeover complete for node n1." in c.log("n2")
        assert time.monotonic() - t0 < 2.0
        c.lab.link_up("n1")
        c.wait_holder("n1", timeout=10)  # auto_failback on
    assert not mon.doubles, mon.overlaps
