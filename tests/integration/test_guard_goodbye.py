"""The guard says goodbye for a daemon killed with -9 or frozen (daemon/guard.py), with a
witness configured: the peer takes over at once instead of after deadtime, the settle time
and the witness's lease (issue 5's outage target). Real daemons, a real witness, and a
client in its own namespace probing the floating address every 10 ms.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from vigil.lab.cluster import HolderMonitor, LabCluster
from vigil.lab.probe import Prober, outages

pytestmark = pytest.mark.integration

DEADTIME = 0.5  # LabCluster's default
LEASE = 2 * DEADTIME  # the witness's default lease


def with_witness(c: LabCluster) -> None:
    c.add_config(f'[witness]\naddress = "{c.lab.address("client")}"\n')
    c.start_witness()
    c.start("n1")
    c.start("n2")
    c.wait_holder("n1")
    time.sleep(LEASE + 0.3)  # past the witness's first lease: n1 holds web's


def answered_by(p: Prober, node: str, after: float, timeout: float = 5.0) -> float:
    return p.wait_sample(lambda s: s.node == node, after=after, timeout=timeout).t


def wait_log(c: LabCluster, node: str, text: str, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while text not in c.log(node):
        assert time.monotonic() < end, f"{node} never logged {text!r}:\n{c.log(node)[-3000:]}"
        time.sleep(0.05)


def test_kill9_of_the_owner_is_taken_over_without_waiting_for_deadtime() -> None:
    with LabCluster() as c, HolderMonitor(c) as mon:
        with_witness(c)
        with Prober(c.lab, "client", c.url(), duration=30) as p:
            answered_by(p, "n1", 0)
            t0 = time.monotonic()
            os.kill(c.daemons["n1"].pid, signal.SIGKILL)
            t1 = answered_by(p, "n2", t0)
            samples = p.stop()
        c.daemons["n1"].wait(5)
        wait_log(c, "witness", "n1 let go of group web")
        assert "guard: daemon dead, nothing runs here: said goodbye for it" in c.log("n1")
        log2 = c.log("n2")
        assert "node n1: is dead (shutdown)" in log2, log2[-2000:]
        assert "waiting for the witness's lease" not in log2
        # Before, this took deadtime, then the settle time and n1's lease (0.5 s + up to
        # 1 s); now the guard's stop and one start. Both are well under deadtime here.
        assert t1 - t0 < DEADTIME, t1 - t0
        assert max((o.duration for o in outages(samples, after=t0)), default=0.0) < DEADTIME
        c.start("n1")  # a new life comes back and (auto_failback) takes web home
        c.wait_holder("n1")
    assert not mon.doubles, mon.doubles


def test_a_frozen_owner_is_taken_over_and_wakes_as_a_new_generation() -> None:
    with LabCluster(auto_failback=False) as c, HolderMonitor(c) as mon:
        with_witness(c)
        old = c.status("n1")["generation"]
        pid = c.daemons["n1"].pid
        with Prober(c.lab, "client", c.url(), duration=30) as p:
            answered_by(p, "n1", 0)
            t0 = time.monotonic()
            os.kill(pid, signal.SIGSTOP)
            try:
                t1 = answered_by(p, "n2", t0)
                time.sleep(2 * DEADTIME)
            finally:
                os.kill(pid, signal.SIGCONT)
            samples = p.stop()
        # The guard's timeout (deadtime - keepalive), its stop, then one start.
        assert t1 - t0 < DEADTIME + 0.2, t1 - t0
        assert max((o.duration for o in outages(samples, after=t0)), default=0.0) < DEADTIME
        wait_log(c, "n1", "while this daemon stalled: going on as generation")
        assert "guard: daemon silent, nothing runs here: said goodbye for it" in c.log("n1")
        wait_log(c, "n2", "node n1: is restarted")
        end = time.monotonic() + 5
        while (s := c.status("n2"))["nodes"][1]["state"] != "up":
            assert time.monotonic() < end, s
            time.sleep(0.05)
        assert c.status("n1")["generation"] > old
        time.sleep(1.0)  # no failback: web stays where it is
        assert c.holders() == ["n2"]
    assert not mon.doubles, mon.doubles


def test_kill9_of_the_standby_is_a_goodbye_too() -> None:
    """Nothing runs on the standby: its guard says so at once (and with [fencing], the owner
    would not shoot a node that runs nothing)."""
    with LabCluster() as c:
        with_witness(c)
        os.kill(c.daemons["n2"].pid, signal.SIGKILL)
        c.daemons["n2"].wait(5)
        wait_log(c, "n1", "node n2: is dead (shutdown)", timeout=DEADTIME / 2)
        assert "guard: daemon dead, nothing runs here: said goodbye for it" in c.log("n2")
        assert c.holders() == ["n1"]


def test_a_daemon_that_wakes_during_its_guards_stop_gets_no_goodbye() -> None:
    """The guard's stop takes 1.5 s (appd is slow to stop); the daemon wakes in the middle
    and goes on under its generation. A goodbye built from the feed before the stall would
    tell the peer a story that may no longer be true: none is said."""
    from vigil.lab.torture import APPD

    with LabCluster() as c, HolderMonitor(c) as mon:
        appd = c.dir / "appd"
        appd.write_text(APPD.format(dir=c.dir, stop_delay=1.5))
        appd.chmod(0o755)
        c.add_config(f'[[group.resource]]\ntype = "exec"\nstart = ["{appd}", "start"]\n'
                     f'stop = ["{appd}", "stop"]\nstatus = ["{appd}", "status"]\n')
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        old = c.status("n1")["generation"]
        pid = c.daemons["n1"].pid
        os.kill(pid, signal.SIGSTOP)
        try:
            wait_log(c, "n1", "guard: daemon silent for")
        finally:
            os.kill(pid, signal.SIGCONT)  # the guard is still stopping appd
        wait_log(c, "n1", "guard: the daemon is not silent any more: no goodbye for it")
        assert "said goodbye for it" not in c.log("n1")
        assert "node n1: is dead (shutdown)" not in c.log("n2")
        assert c.status("n1")["generation"] == old
        c.wait_holder("n1")  # it probes what the guard stopped and starts it again
    assert not mon.doubles, mon.doubles
