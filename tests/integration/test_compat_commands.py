"""hb_standby, hb_takeover and cl_status against a running cluster: Heartbeat's words and
exit codes (issue 6, item 6)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from vigil.lab.cluster import LabCluster

pytestmark = pytest.mark.integration

BIN = os.path.dirname(sys.executable)


def run(c: LabCluster, node: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([os.path.join(BIN, argv[0]), *argv[1:]], capture_output=True,
                          text=True, timeout=30,
                          env={**os.environ, "VIGIL_SOCKET": str(c.socket(node))})


def test_heartbeat_commands_on_a_live_cluster() -> None:
    with LabCluster() as c:
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        time.sleep(0.5)
        r = run(c, "n1", "cl_status", "hbstatus")
        assert (r.stdout, r.returncode) == ("Heartbeat is running on this machine.\n", 0)
        assert run(c, "n1", "cl_status", "listnodes").stdout.split() == ["n1", "n2"]
        assert (run(c, "n1", "cl_status", "nodestatus", "n2").stdout, 0)[0] == "active\n"
        assert run(c, "n1", "cl_status", "listhblinks", "n2").stdout.split() == ["eth0"]
        r = run(c, "n1", "cl_status", "hblinkstatus", "n2", "eth0")
        assert (r.stdout, r.returncode) == ("up\n", 0)
        assert run(c, "n1", "cl_status", "rscstatus").stdout == "all\n"
        assert run(c, "n2", "cl_status", "rscstatus").stdout == "none\n"
        r = run(c, "n1", "hb_standby")
        assert (r.stdout, r.returncode) == ("Going standby [all].\n", 0), r.stderr
        c.wait_holder("n2")
        r = run(c, "n1", "hb_takeover", "all")
        assert (r.stdout, r.returncode) == ("", 0), r.stderr
        c.wait_holder("n1")
        assert run(c, "n1", "hb_standby", "sideways").returncode == 11
        assert run(c, "n1", "cl_status", "nodestatus", "n9").returncode == 11
        assert run(c, "n1", "cl_status", "bogus").returncode == 11
        c.daemons["n2"].send_signal(signal.SIGKILL)
        c.daemons.pop("n2").wait(5)
        deadline = time.monotonic() + 10
        while run(c, "n1", "cl_status", "nodestatus", "n2").stdout != "dead\n":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert run(c, "n1", "cl_status", "nodestatus", "n2").returncode == 1
        # n2's guard said goodbye for it: the node is dead at once, its link at deadtime.
        while run(c, "n1", "cl_status", "hblinkstatus", "n2", "eth0").stdout != "dead\n":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        r = run(c, "n1", "cl_status", "hblinkstatus", "n2", "eth0")
        assert (r.stdout, r.returncode) == ("dead\n", 1)
        r = run(c, "n2", "cl_status", "hbstatus")
        assert (r.stdout, r.returncode) == ("Heartbeat is stopped on this machine.\n", 1)


def test_respawn_keeps_a_program_running_and_stops_it_with_the_daemon() -> None:
    """ha.cf's `respawn USER PROGRAM`, here as [[respawn]]: killed, it comes back (after
    1 s); the daemon's stop ends it."""
    with LabCluster() as c:
        pidfile = c.dir / "respawned.pid"
        prog = c.dir / "prog"
        prog.write_text(f'#!/bin/sh\necho $$ >> "{pidfile}"\nexec sleep 600\n')
        prog.chmod(0o755)
        c.add_config(f'[[respawn]]\nuser = "root"\nargv = ["{prog}", "--flag"]\n')
        c.start("n1")
        deadline = time.monotonic() + 10
        while not pidfile.exists():
            assert time.monotonic() < deadline, c.log("n1")[-1500:]
            time.sleep(0.05)
        first = int(pidfile.read_text().split()[0])
        os.kill(first, signal.SIGKILL)
        while len(pidfile.read_text().split()) < 2:
            assert time.monotonic() < deadline + 10, c.log("n1")[-1500:]
            time.sleep(0.05)
        second = int(pidfile.read_text().split()[1])
        assert "respawn: " in c.log("n1") and "exited (signal 9); again in 1 s" in c.log("n1")
        assert c.stop("n1") == 0
        time.sleep(0.5)
        assert not os.path.exists(f"/proc/{second}"), "stopped with the daemon"
