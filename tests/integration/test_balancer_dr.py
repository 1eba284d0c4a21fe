"""Direct routing in the daemon, as seed 003 builds it (`ipvsadm -g`, real servers with the
floating address on lo and ARP for it ignored): two directors (n1, n2) and three real HTTP
servers (r1, r2, r3) on one LAN with the client. The active director rewrites only the
destination MAC at netdev ingress (nft_dr.py); the real servers answer the client directly.

    client, n1, n2, r1, r2, r3 (eth0)        heartbeats on eth0 and eth1
"""

from __future__ import annotations

import collections
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.test_balancer_daemon import _requests, _wait
from tests.integration.test_balancer_sync import _report, _streams, _survived
from vigil.balancer import apply
from vigil.lab.cluster import LabCluster

pytestmark = pytest.mark.integration

REALS = ("r1", "r2", "r3")
WEIGHTS = {"r1": 1, "r2": 1, "r3": 2}


def _config(c: LabCluster) -> str:
    reals = "".join(f'[[virtual_server.real]]\naddress = "{c.lab.address(r, 0)}:80"\n'
                    f"weight = {WEIGHTS[r]}\n" for r in REALS)
    return (f'[[group]]\nname = "web"\nhome = "n1"\n'
            f'[[group.resource]]\ntype = "ip"\naddress = "{c.vip}/24"\ninterface = "eth0"\n'
            f'arp_repeat_delay = "200ms"\n'
            f'[[virtual_server]]\nname = "web"\naddress = "{c.vip}:80"\ngroup = "web"\n'
            f'forward = "dr"\nscheduler = "wrr"\n'
            f'[virtual_server.check]\ntype = "http"\npath = "/"\ninterval = "200ms"\n'
            f'timeout = "100ms"\nrise = 2\nfall = 2\n' + reals)


def _serve(c: LabCluster, r: str) -> subprocess.Popen[Any]:
    proc = c.lab.popen(r, [sys.executable, "-m", "vigil.lab.web", "--name", r, "--bind",
                           "0.0.0.0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    c.lab.wait_listening(r, 80)
    return proc


@contextlib.contextmanager
def _lab() -> Iterator[tuple[LabCluster, dict[str, subprocess.Popen[Any]]]]:
    with LabCluster(links=2, hosts=REALS, groups="") as c:
        servers = {}
        for r in REALS:
            # LVS-DR's real server: the virtual address on lo, never answered for in ARP
            c.lab.run(r, ["ip", "link", "set", c.lab.ifname(1), "down"])
            c.lab.run(r, ["ip", "addr", "add", f"{c.vip}/32", "dev", "lo"])
            c.lab.run(r, ["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1",
                          "net.ipv4.conf.all.arp_announce=2"])
            servers[r] = _serve(c, r)
        c.config_path.write_text(c.config_path.read_text() + _config(c))
        yield c, servers


@pytest.fixture
def dr() -> Iterator[tuple[LabCluster, dict[str, subprocess.Popen[Any]]]]:
    with _lab() as found:
        yield found


def _health(c: LabCluster, node: str) -> dict[str, str]:
    vs = c.status(node)["balancer"]["virtual_servers"][0]
    return {s["address"].split(":")[0]: s["health"] for s in vs["servers"]}


def _start(c: LabCluster) -> None:
    c.start("n1")
    c.start("n2")
    c.wait_holder("n1")
    for n in ("n1", "n2"):
        _wait(lambda: set(_health(c, n).values()) == {"up"})


def test_direct_routing_balances_by_weight_and_the_servers_answer_directly(
        dr: tuple[LabCluster, dict[str, subprocess.Popen[Any]]]) -> None:
    c, _ = dr
    _start(c)
    tables = {t["table"]["family"] for t in apply.listing(
        ["ip", "netns", "exec", c.lab.ns("n1")], "netdev", "vigil_dr") if "table" in t}
    assert tables == {"netdev"}
    assert apply.listing(["ip", "netns", "exec", c.lab.ns("n2")], "netdev", "vigil_dr") == []
    got = _requests(c, 800)
    assert got["failed"] == 0
    seen = collections.Counter(got["seen"])
    shares = {r: seen[r] / 800 for r in REALS}
    print(f"dr, weights 1:1:2 over 800 new connections: {dict(seen)}")
    for r, w in WEIGHTS.items():  # a hash of the client's port: within a few percent
        assert abs(shares[r] - w / 4) < 0.06, shares
    # The server saw the client's own address talking to the virtual address (no NAT), and
    # the director kept no connection state of the kernel's for them.
    waits = c.lab.run("r3", ["ss", "-Htn", "state", "time-wait"]).stdout
    assert f"{c.vip}:80" in waits and c.lab.address("client", 0) in waits, waits
    # The kernel counted each server's new connections and what it sent them (read every
    # 2 s); nothing came back through the director.
    def counted() -> dict[str, Any]:
        vs = c.status("n1")["balancer"]["virtual_servers"][0]
        return {s["address"].split(":")[0]: s["traffic"] for s in vs["servers"]}
    _wait(lambda: sum(t["connections"] for t in counted().values() if t) >= 790)
    for r in REALS:
        t = counted()[c.lab.address(r, 0)]
        assert abs(t["connections"] - seen[r]) <= 10 and t["packets_in"] >= 4 * seen[r], t
        assert t["packets_out"] == 0 and t["bytes_out"] == 0
    text = c.vigil("n1", "lb", "status", check=True).stdout
    assert "web " in text and " wrr dr: directing" in text and "out direct (dr)" in text


def test_a_dead_server_gets_nothing_new_and_a_drain_keeps_its_connections(
        dr: tuple[LabCluster, dict[str, subprocess.Popen[Any]]]) -> None:
    c, servers = dr
    _start(c)
    servers["r3"].kill()
    servers["r3"].wait()
    r3 = c.lab.address("r3", 0)
    _wait(lambda: _health(c, "n1")[r3] == "down")
    got = _requests(c, 100)
    assert got["failed"] == 0 and "r3" not in got["seen"], got
    proc = _streams(c, 4.0)
    time.sleep(1.0)
    r2 = f"{c.lab.address('r2', 0)}:80"
    c.vigil("n1", "lb", "drain", "web", r2, check=True)
    got = _requests(c, 100)
    assert got["failed"] == 0 and set(got["seen"]) == {"r1"}, got
    streams = _report(proc)
    to_r2 = [s for s in streams if s["server"] == "r2"]
    assert to_r2 and all(s["broke"] is None for s in to_r2), to_r2[:3]  # pinned, kept
    alive, broken = _survived(streams, 4.0)
    assert alive == len(streams), broken


@pytest.mark.parametrize("how", ["standby", "kill9"])
def test_streams_survive_a_director_failover(
        dr: tuple[LabCluster, dict[str, subprocess.Popen[Any]]], how: str) -> None:
    """No connection sync: both directors hash a connection to the same server (the same
    Maglev table from the same health), so the new director sends each packet where the
    old one did."""
    c, _ = dr
    _start(c)
    proc = _streams(c, 8.0)
    time.sleep(1.5)
    if how == "standby":
        c.vigil("n1", "standby", check=True)
    else:
        c.daemons["n1"].kill()  # its guard takes the address and the rules away
    c.wait_holder("n2")
    streams = _report(proc)
    alive, broken = _survived(streams, 8.0)
    gaps = sorted(s["longest_gap"] for s in streams)
    print(f"dr {how}: {alive}/{len(streams)} streams survived; longest silence "
          f"{gaps[-1]:.2f} s")
    assert len(streams) == 50 and alive == 50, (alive, broken)
    assert apply.listing(["ip", "netns", "exec", c.lab.ns("n1")], "netdev", "vigil_dr") == []


def test_a_server_the_director_cannot_send_to_is_named_by_check_config_and_at_start(
        dr: tuple[LabCluster, dict[str, subprocess.Popen[Any]]]) -> None:
    """On the director itself: a DR real server with no route (the lab has no router) is an
    error naming it, in check-config and when the group starts there (the group stays
    stopped, with that error)."""
    c, _ = dr
    ok = c.lab.run("n1", c.argv("n1", "check-config"), check=False)
    assert ok.returncode == 0, ok.stderr
    c.config_path.write_text(c.config_path.read_text().replace(
        f'address = "{c.lab.address("r3", 0)}:80"', 'address = "10.99.0.5:80"'))
    bad = c.lab.run("n1", c.argv("n1", "check-config"), check=False)
    words = ("error: on this director: virtual server 'web': real server 10.99.0.5:80: this "
             "director has no route to it (Network is unreachable)")
    assert bad.returncode == 1 and words in bad.stderr, bad.stderr
    c.start("n1")
    _wait(lambda: "real server 10.99.0.5:80: this director has no route to it" in c.log("n1"))
    assert apply.listing(["ip", "netns", "exec", c.lab.ns("n1")], "netdev", "vigil_dr") == []
