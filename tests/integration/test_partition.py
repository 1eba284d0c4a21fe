"""Seed test 4 (every link between the nodes cut) with each protection in turn: a witness,
a disk heartbeat (with its poison pill), a serial link. Real daemons in namespaces, the
floating address watched by kernel address events (HolderMonitor) throughout: at no moment
may both nodes hold it.

Stand-ins, each named: the client's namespace doubles as the witness's host; the shared
disk is a loop device both namespaces open (they share one kernel, as two hosts share a
SAN LUN); the null-modem cable is a pty pair made by socat. That loop device's image lives
in /dev/shm: on this machine's ext4 a flush took up to 229 ms while another process wrote
(scratch probe, O_DIRECT|O_DSYNC, with dd running), and FAST's deadtime is 400 ms. These tests
are about the protocol, not the host's disk; a slow device is test_disk.py's subject, and the
link says "disk link slow" when its IO eats into deadtime.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vigil.lab.cluster import HolderMonitor, LabCluster
from vigil.lab.disk import loop_device

pytestmark = pytest.mark.integration

FAST = dict(keepalive="100ms", warntime="200ms", deadtime="400ms", initdead="2s")


def cut(c: LabCluster, one_way: bool = False) -> None:
    """Drop every packet between n1 and n2, or only those n2 receives from n1 (n2 counts the
    owner n1 dead, while n1 still hears n2 and sees that in n2's heartbeats)."""
    if one_way:
        c.lab.drop("n2", "in", peer=c.lab.address("n1"))
    else:
        c.lab.drop("n1", "both", peer=c.lab.address("n2"))


@contextlib.contextmanager
def shared_disk(c: LabCluster) -> Iterator[str]:
    image = Path("/dev/shm") / f"{c.dir.name}-shared-disk.img"
    try:
        with loop_device(image) as dev:
            yield dev
    finally:
        image.unlink(missing_ok=True)


def wait_for(what: str, check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


# --- the witness --------------------------------------------------------------------------


def witness_cluster() -> LabCluster:
    c = LabCluster(**FAST)
    c.add_config(f'[witness]\naddress = "{c.lab.address("client")}"\n')
    return c


@pytest.mark.parametrize("one_way", [False, True], ids=["both-ways", "one-way"])
def test_witness_keeps_the_group_where_it_runs_when_the_nodes_lose_each_other(
        one_way: bool) -> None:
    with witness_cluster() as c, HolderMonitor(c) as mon:
        c.start_witness()
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        time.sleep(1.0)  # the witness grants nothing in its first lease; then n1 holds it
        cut(c, one_way)
        time.sleep(3.0)  # many deadtimes and leases
        assert c.holders() == ["n1"], (c.log("n1")[-1500:], c.log("n2")[-1500:])
        assert "the witness gives group web to n1" in c.log("n2")
        assert "holds the witness's lease" in c.status("n2")["groups"][0]["waiting"]
        c.lab.undrop("n1")
        c.lab.undrop("n2")
        time.sleep(1.5)
        assert c.holders() == ["n1"]
        assert "granting group web to n1" in c.log("witness")
    assert not mon.doubles, mon.overlaps


def test_witness_moves_the_group_away_from_a_node_cut_off_from_everything() -> None:
    """n1 loses n2 and the witness (every packet in and out of n1 dropped): it must stop
    the group by itself before the witness lets n2 have it."""
    with witness_cluster() as c, HolderMonitor(c) as mon:
        c.start_witness()
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        time.sleep(1.0)
        t0 = time.monotonic()
        c.lab.drop("n1", "both")
        took = c.wait_holder("n2", timeout=10)
        s = c.status("n2")
        assert s["witness"]["holders"].get("web") == "n2"
        assert "holds no lease of the witness on group web: stopping it" in c.log("n1")
        # deadtime, then n1's lease at the witness (2 x deadtime after its last ask) ...
        assert took - t0 < 0.4 + 0.8 + 0.4 + 0.5, took - t0
    assert not mon.doubles, mon.overlaps


def test_without_the_witness_the_nodes_carry_on_and_say_so() -> None:
    with witness_cluster() as c, HolderMonitor(c) as mon:
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        c.vigil("n1", "standby", check=True)  # planned hand-overs need no witness
        c.wait_holder("n2")
        s = c.status("n2")
        assert s["witness"]["last_reply_ms"] is None
        cut(c)  # and now nobody can be sure: nobody runs it
        c.wait_holder(None, timeout=5)
        assert "the witness does not answer" in " ".join(
            g["waiting"] or "" for g in c.status("n1")["groups"])
    assert not mon.doubles, mon.overlaps


# --- the disk heartbeat -------------------------------------------------------------------


def test_disk_heartbeat_says_partition_not_death() -> None:
    with LabCluster(**FAST) as c, shared_disk(c) as dev, HolderMonitor(c) as mon:
        c.add_config(f'[[link]]\nmode = "disk"\ndevice = "{dev}"\n')
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        cut(c)
        wait_for("the partition alarm", lambda: "NETWORK PARTITION" in c.log("n2"))
        time.sleep(2.0)
        assert c.holders() == ["n1"]
        s = c.status("n2")
        peer = s["nodes"][1]
        assert peer["state"] == "up"
        links = {l["name"]: l["state"] for l in peer["links"]}
        assert links[f"disk:{Path(dev).name}"] == "up" and links["eth0"] == "dead", links
        assert "node n1: is dead" not in c.log("n2"), \
            [line for n in ("n1", "n2") for line in c.log(n).splitlines() if "disk link" in line]
        c.vigil("n1", "standby", check=True)  # hand-overs even work through the disk
        c.wait_holder("n2", timeout=5)
        c.lab.undrop("n1")
        wait_for("the partition to end", lambda: "network partition over" in c.log("n2"))
    assert not mon.doubles, mon.overlaps


def test_poison_pill_stops_a_frozen_node_that_wakes_up() -> None:
    """n1 freezes (SIGSTOP: network and disk heartbeats stop together), and its guard's
    goodbye is lost (n1's packets to n2 are dropped; a goodbye that arrives makes the pill
    unneeded: test_guard_goodbye.py). n2 writes the pill into n1's mailbox, waits until a
    live n1 must have obeyed, takes over. When n1 wakes, it reads the pill before anything
    else can happen: it releases everything and exits."""
    with LabCluster(**FAST) as c, shared_disk(c) as dev, HolderMonitor(c) as mon:
        c.add_config(f'[[link]]\nmode = "disk"\ndevice = "{dev}"\n\n'
                     f'[fencing]\nagent = "disk"\n')
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        time.sleep(0.5)
        n1 = c.daemons["n1"]
        c.lab.drop("n1", "out", peer=c.lab.address("n2"))
        n1.send_signal(signal.SIGSTOP)
        try:
            c.wait_holder("n2", timeout=10)  # n1's guard removed the address meanwhile
            assert "poison pill written for n1" in c.log("n2")
            assert "fence agent disk reboot n1: ok" in c.log("n2")
        finally:
            n1.send_signal(signal.SIGCONT)
        assert n1.wait(10) == 5, c.log("n1")[-2000:]
        assert "POISONED by n2 through the disk" in c.log("n1")
        assert c.holders() == ["n2"]
        c.daemons.pop("n1")
        c.lab.undrop("n1")
        c.start("n1")  # a new life ignores the old pill and joins as the standby
        wait_for("n1 to join", lambda: c.status("n2")["nodes"][1]["state"] == "up")
        time.sleep(1.0)
        assert c.holders() in (["n2"], ["n1"])  # auto_failback may bring it home
    assert not mon.doubles, mon.overlaps


# --- the serial link ----------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("socat") is None, reason="socat is not installed")
def test_a_serial_link_keeps_the_peer_alive_when_the_network_is_cut() -> None:
    with LabCluster(keepalive="200ms", warntime="400ms", deadtime="1s", initdead="3s") as c, \
            HolderMonitor(c) as mon:
        a, b = c.dir / "ttyA", c.dir / "ttyB"
        socat = subprocess.Popen(["socat", f"pty,raw,echo=0,link={a}",
                                  f"pty,raw,echo=0,link={b}"], stderr=subprocess.DEVNULL)
        try:
            wait_for("the ptys", lambda: a.exists() and b.exists())
            c.add_config(f'[[link]]\nmode = "serial"\nbaud = 38400\n'
                         f'device = {{ n1 = "{a}", n2 = "{b}" }}\n')
            c.start("n1")
            c.start("n2")
            c.wait_holder("n1")
            cut(c)
            time.sleep(3.0)
            assert c.holders() == ["n1"]
            s = c.status("n2")
            links = {l["name"]: l["state"] for l in s["nodes"][1]["links"]}
            assert links == {"eth0": "dead", "ttyB": "up"}, links
            assert "node n1: is dead" not in c.log("n2")
            assert not mon.doubles, mon.overlaps
            # The cable is the last link: pulling it too makes n1 dead to n2 (no fencing
            # here, so n2 takes over: this is the split brain the warning talks about).
            socat.terminate()
            socat.wait(5)
            wait_for("n1 declared dead", lambda: "node n1: is dead" in c.log("n2"))
        finally:
            if socat.poll() is None:
                socat.kill()
                socat.wait()
