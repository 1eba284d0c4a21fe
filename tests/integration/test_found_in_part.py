"""A daemon that restarts and finds its group only in part restores the rest at once.

Real daemons in namespaces. n1 runs `web` (the floating address, then a service whose status
is a marker file). Every vigil process of n1 is killed at once (its guard too: nothing
stops what it ran), the address is removed by hand (what a crash between two starts, or a
host reset that leaves a pid file, leaves behind), and the daemon is started again. It finds
the service but not the address: it keeps the group (n2 must not start it: the service
runs here) and restarts it in place from the address, before any monitor would notice.
"""

from __future__ import annotations

import time

import pytest

from vigil.lab.cluster import HolderMonitor, LabCluster

pytestmark = pytest.mark.integration


def test_a_group_found_in_part_at_start_is_restarted_in_place_from_what_is_missing() -> None:
    with LabCluster(deadtime="2s", warntime="1s", initdead="4s", groups="") as c:
        mark = f"{c.dir}/svc-$(ip netns identify)"
        c.add_config(
            f'[[group]]\nname = "web"\nhome = "n1"\n'
            f'[[group.resource]]\ntype = "ip"\naddress = "{c.vip}/24"\ninterface = "eth0"\n'
            f'[[group.resource]]\ntype = "exec"\nstart = ["/bin/sh", "-c", "touch {mark}"]\n'
            f'stop = ["/bin/sh", "-c", "rm -f {mark}"]\nstatus = ["/bin/sh", "-c", "test -f {mark}"]\n'
            f'monitor = {{ interval = "30s" }}\n')
        with HolderMonitor(c) as mon:
            c.start("n1")
            c.start("n2")
            c.wait_holder("n1")
            c.kill_all("n1")
            c.lab.run("n1", ["ip", "addr", "del", f"{c.vip}/24", "dev", "eth0"])
            assert c.holders() == []
            t0 = time.monotonic()
            c.start("n1")
            back = c.wait_holder("n1", timeout=3.0)
            time.sleep(0.5)
            assert c.holders() == ["n1"]
        log = c.log("n1")
        assert "group web at start: found running only in part (ip " in log, log[-2000:]
        assert "recovering group web from ip" in log and "group web recovered" in log
        assert "exec " in log and "stop: ok" in log.split("found running only in part")[1]
        # Well before the 30 s monitor, and before initdead (4 s) is over.
        assert back - t0 < 3.0
        assert not any(node == "n2" and holds for _, node, holds in mon.changes), \
            "n2 never took the address"
        assert not mon.doubles
