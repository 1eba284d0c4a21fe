"""Fencing (STONITH) on real daemons: no takeover before the fence agent says the peer is off.

There is no power switch in a lab of namespaces. Two stand-ins, each named as such:
- `fence_dummy` from Debian's fence-agents, a real agent speaking the real stdin protocol,
  whose "device" is a status file: it proves the protocol, success and failure;
- an external agent that "pulls the plug" of a lab host: it kills every process in the
  host's namespace and takes its interface down, which is what a power-off does to the
  cluster (test of the partition case, where the victim must really stop).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from vigil.lab.cluster import HolderMonitor, LabCluster

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("fence_dummy", path="/usr/sbin:/usr/bin") is None,
                       reason="fence-agents is not installed (make test installs it)"),
]

PLUG_PULLER = """#!/bin/sh
# Lab stand-in for a power switch: vigil calls it as  PROGRAM PREFIX VIP ACTION NODE.
ns="$1-$4"
for pid in $(ip netns pids "$ns"); do kill -9 "$pid"; done
ip -n "$ns" addr del "$2/24" dev eth0 2>/dev/null
ip -n "$ns" link set eth0 down
echo "$3 $4" >> "$(dirname "$0")/fenced"
echo "power of $4 pulled"
"""


def with_fencing(c: LabCluster, table: str) -> None:
    c.config_path.write_text(c.config_path.read_text() + "\n" + table)


def pull_plug(c: LabCluster, node: str) -> None:
    """What a power failure does to `node`: everything in it stops (its guard too), its
    addresses are gone and its link goes dark."""
    c.daemons.pop(node, None)
    c.webs.pop(node, None)
    pids = subprocess.run(["ip", "netns", "pids", c.lab.ns(node)], capture_output=True,
                          text=True, check=True).stdout.split()
    for pid in pids:
        try:
            # vigil's daemon, guard and the web server; not the test's own `ip monitor`
            if b"vigil" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, FileNotFoundError):
            pass
    c.lab.run(node, ["ip", "addr", "del", f"{c.vip}/24", "dev", "eth0"], check=False)
    c.lab.link_down(node)


def test_fence_dummy_success_then_takeover(tmp_path: Path) -> None:
    status_file = tmp_path / "dummy.status"
    status_file.write_text("on")
    with LabCluster() as c, HolderMonitor(c) as mon:
        with_fencing(c, f'[fencing]\nagent = "fence_dummy"\naction = "off"\ntimeout = "20s"\n'
                        f'params = {{ type = "file", status_file = "{status_file}" }}\n')
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        pull_plug(c, "n1")
        c.wait_holder("n2", timeout=30)
        assert status_file.read_text() == "off", "fence_dummy was told action=off on stdin"
        log2 = c.log("n2")
        assert "n1 must be fenced before its groups are taken over" in log2
        assert "fence agent fence_dummy off n1: ok" in log2
        assert log2.index("fence agent fence_dummy off n1: ok") < \
            log2.index("taking over group web: n1 is dead")
        s = c.status("n2")
        assert s["fencing"]["peer"] == "done"
    assert not mon.doubles


def test_failing_fence_agent_blocks_takeover_until_an_operator_confirms(tmp_path: Path) -> None:
    with LabCluster() as c:
        # type=fail never reports the plug off: each attempt ends at its 1 s timeout, killed.
        with_fencing(c, '[fencing]\nagent = "fence_dummy"\nretry_interval = "1s"\n'
                        'timeout = "1s"\ndelay = "0s"\n'
                        'params = { type = "fail", plug = "n1" }\n')
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        pull_plug(c, "n1")
        time.sleep(5.0)  # deadtime, several failed attempts
        assert c.holders() == [], "no takeover while fencing fails"
        log2 = c.log("n2")
        assert log2.count("FENCING n1 FAILED") >= 2, "retried, and shouted each time"
        s = c.status("n2")
        assert s["fencing"]["peer"] in ("failed", "running", "needed")
        assert s["groups"][0]["waiting"] == "n1 is dead but not fenced yet"
        assert "fencing: fence_dummy" in c.vigil("n2", "status").stdout
        r = c.vigil("n2", "fence", "confirm", "n9")
        assert r.returncode == 1 and "not the peer" in r.stderr
        r = c.vigil("n2", "fence", "confirm", "n1")
        assert r.returncode == 0, r.stderr
        c.wait_holder("n2", timeout=5)
        assert "an operator confirmed that n1 is fenced" in c.log("n2")


def test_manual_fencing_waits_for_the_operator() -> None:
    with LabCluster() as c:
        with_fencing(c, '[fencing]\nagent = "manual"\n')
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        pull_plug(c, "n1")
        time.sleep(1.5)
        assert c.holders() == []
        assert "waiting for `vigil fence confirm n1`" in c.log("n2")
        assert c.vigil("n2", "fence", "confirm", "n1").returncode == 0
        c.wait_holder("n2", timeout=5)


@pytest.mark.parametrize("one_way", [False, True], ids=["both-ways", "one-way"])
def test_partition_with_fencing_never_two_owners(one_way: bool) -> None:
    """Seed test 4 with fencing: every packet between the nodes dropped (or only n2 -> n1's
    direction... here: n1 hears nothing from n2 or both deaf). The node that serves shoots
    first (the other waits `delay`), so the group stays where it was, on one node only."""
    with LabCluster() as c, HolderMonitor(c) as mon:
        agent = c.dir / "fence-lab"
        agent.write_text(PLUG_PULLER)
        agent.chmod(0o755)
        with_fencing(c, f'[fencing]\nagent = "external"\naction = "off"\ndelay = "2s"\n'
                        f'command = ["{agent}", "{c.lab.prefix}", "{c.vip}"]\n')
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        if one_way:
            c.lab.drop("n1", "in", peer=c.lab.address("n2"))
        else:
            c.lab.drop("n1", "both", peer=c.lab.address("n2"))
        deadline = time.monotonic() + 15
        while not (c.dir / "fenced").exists():
            assert time.monotonic() < deadline, (c.log("n1")[-1500:], c.log("n2")[-1500:])
            time.sleep(0.05)
        time.sleep(1.0)
        fenced = (c.dir / "fenced").read_text().split()
        assert fenced == ["off", "n2"], "the serving node won the fence race"
        assert c.holders() == ["n1"]
        # n2 either waited its delay, or was shot before it even declared n1 dead
        assert "waiting 2 s before fencing it" in c.log("n2") or one_way or \
            "node n1: is dead" not in c.log("n2")
    assert not mon.doubles, mon.doubles


def test_the_fence_device_is_checked_before_it_is_needed(tmp_path: Path) -> None:
    """fence_* agents are monitored (action=monitor) every monitor_interval: a device that
    does not answer is an error in the log and in status long before a node dies, and an
    agent slower than the fence race's `delay` is reported with the delay it needs."""
    status_file = tmp_path / "dummy.status"
    status_file.write_text("garbage\n")  # fence_dummy's monitor fails on it
    with LabCluster() as c:
        with_fencing(c, f'[fencing]\nagent = "fence_dummy"\naction = "off"\n'
                        f'monitor_interval = "200ms"\ndelay = "500ms"\n'
                        f'params = {{ type = "file", status_file = "{status_file}", '
                        f'random_sleep_range = "1" }}\n')
        c.start("n1")
        deadline = time.monotonic() + 10
        while "FENCE DEVICE CHECK FAILED" not in c.log("n1"):
            assert time.monotonic() < deadline, c.log("n1")[-1500:]
            time.sleep(0.05)
        dev = c.status("n1")["fencing"]["device"]
        assert dev["ok"] is False and "rc=1" in dev["detail"], dev
        assert "fence device: DOES NOT ANSWER" in c.vigil("n1", "status").stdout
        status_file.write_text("on")
        while "fence device answers: fence_dummy monitor ok" not in c.log("n1"):
            assert time.monotonic() < deadline + 10, c.log("n1")[-1500:]
            time.sleep(0.05)
        assert c.status("n1")["fencing"]["device"]["ok"] is True
        assert "longer than [fencing] delay (0.5 s)" in c.log("n1")


def test_a_node_whose_stop_failed_is_fenced_and_its_group_taken() -> None:
    """Issue 4, item 5: a failed stop may leave the group's resources held; with fencing
    configured the peer shoots that node, then takes the group."""
    with LabCluster() as c, HolderMonitor(c) as mon:
        agent = c.dir / "fence-lab"
        agent.write_text(PLUG_PULLER)
        agent.chmod(0o755)
        c.config_path.write_text(c.config_path.read_text() + (
            '[[group.resource]]\ntype = "exec"\nstart = ["/bin/true"]\n'
            'stop = ["/bin/sh", "-c", "echo cannot stop >&2; exit 1"]\n'))
        with_fencing(c, f'[fencing]\nagent = "external"\naction = "off"\n'
                        f'command = ["{agent}", "{c.lab.prefix}", "{c.vip}"]\n')
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        c.vigil("n1", "standby", check=True)
        deadline = time.monotonic() + 15
        while not (c.dir / "fenced").exists():
            assert time.monotonic() < deadline, (c.log("n1")[-1500:], c.log("n2")[-1500:])
            time.sleep(0.05)
        assert (c.dir / "fenced").read_text().split() == ["off", "n1"]
        c.daemons.pop("n1")  # shot: its processes are gone
        c.wait_holder("n2", timeout=10)
        assert "n1 failed to stop group web: fencing it, then taking the group over" in \
            c.log("n2")
        assert "exec true: stop failed (rc=1): cannot stop" in c.log("n1")
    assert not mon.doubles, mon.overlaps
