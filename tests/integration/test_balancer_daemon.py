"""The balancer in the daemon: two directors (n1, n2) in front of two real HTTP servers
(r1, r2), NAT as in seed 000 (`ipvsadm -A -t VIP:80 -s rr` with two `-m` servers from
haresources). The group `web` holds the floating address on the client side and the real
servers' gateway on the inside; its owner is the active director.

    client (eth0) -- n1, n2 (eth0 | eth1) -- r1, r2 (eth1)
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.test_balancer_nft import CLIENT
from vigil.balancer import apply
from vigil.lab.cluster import LabCluster

REALS = ("r1", "r2")


def _config(c: LabCluster, interval: str = "200ms") -> str:
    gw = c.lab.subnet(1).rsplit(".", 1)[0] + ".254"
    reals = "".join(f'[[virtual_server.real]]\naddress = "{c.lab.address(r, 1)}:80"\n'
                    for r in REALS)
    return (f'[[group]]\nname = "web"\nhome = "n1"\n'
            f'[[group.resource]]\ntype = "ip"\naddress = "{c.vip}/24"\ninterface = "eth0"\n'
            f'arp_repeat_delay = "200ms"\n'
            f'[[group.resource]]\ntype = "ip"\naddress = "{gw}/24"\ninterface = "eth1"\n'
            f'arp_repeat_delay = "200ms"\n'
            f'[[virtual_server]]\nname = "web"\naddress = "{c.vip}:80"\ngroup = "web"\n'
            f'scheduler = "rr"\n'
            f'[virtual_server.check]\ntype = "http"\npath = "/"\ninterval = "{interval}"\n'
            f'timeout = "100ms"\nrise = 2\nfall = 2\n' + reals)


@pytest.fixture
def cluster() -> Iterator[tuple[LabCluster, dict[str, subprocess.Popen[Any]]]]:
    with directors() as found:
        yield found


@contextlib.contextmanager
def directors(extra: str = "", interval: str = "200ms",
              ) -> Iterator[tuple[LabCluster, dict[str, subprocess.Popen[Any]]]]:
    """The lab above with its real servers serving, checked every `interval`; `extra` is
    added to the configuration."""
    with LabCluster(links=2, hosts=REALS, groups="") as c:
        gw = c.lab.subnet(1).rsplit(".", 1)[0] + ".254"
        c.lab.run("client", ["ip", "link", "set", c.lab.ifname(1), "down"])
        servers = {}
        for n in ("n1", "n2"):
            c.lab.run(n, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        for r in REALS:
            c.lab.run(r, ["ip", "link", "set", c.lab.ifname(0), "down"])
            c.lab.run(r, ["ip", "route", "add", "default", "via", gw])
            servers[r] = _serve(c, r)
        c.config_path.write_text(c.config_path.read_text() + _config(c, interval) + extra)
        yield c, servers


def _serve(c: LabCluster, r: str) -> subprocess.Popen[Any]:
    proc = c.lab.popen(r, [sys.executable, "-m", "vigil.lab.web", "--name", r, "--bind",
                           c.lab.address(r, 1)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    c.lab.wait_listening(r, 80)
    return proc


def _requests(c: LabCluster, n: int) -> dict[str, Any]:
    out = c.lab.run("client", ["python3", "-c", CLIENT, c.vip, str(n), "new"], timeout=60)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _table(c: LabCluster, node: str) -> list[dict[str, Any]]:
    return apply.listing(["ip", "netns", "exec", c.lab.ns(node)])


def _servers(c: LabCluster, node: str) -> dict[str, str]:
    vs = c.status(node)["balancer"]["virtual_servers"]
    return {s["address"]: s["health"] for s in vs[0]["servers"]}


def _running(c: LabCluster) -> tuple[str, str]:
    """Both directors started, n1 holding web, and its checks seeing both real servers up;
    the real servers as `lb status` names them."""
    r1, r2 = (f"{c.lab.address(r, 1)}:80" for r in REALS)
    c.start("n1")
    c.start("n2")
    c.wait_holder("n1")
    _wait(lambda: _servers(c, "n1") == {r1: "up", r2: "up"})
    return r1, r2


def _wait(what: Any, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < end, f"not within {timeout} s"
        time.sleep(0.05)


def test_the_owner_directs_the_standby_checks_and_a_takeover_moves_the_rules(
        cluster: tuple[LabCluster, dict[str, subprocess.Popen[Any]]]) -> None:
    c, servers = cluster
    r1, r2 = _running(c)
    # The standby checks too: a takeover starts with a warm view.
    _wait(lambda: _servers(c, "n2") == {r1: "up", r2: "up"})
    assert _table(c, "n1") and not _table(c, "n2")
    got = _requests(c, 100)
    assert got["failed"] == 0 and got["seen"] == {"r1": 50, "r2": 50}, got
    s = c.status("n1")["balancer"]
    assert s["last_error"] is None and s["virtual_servers"][0]["directing"]
    assert not c.status("n2")["balancer"]["virtual_servers"][0]["directing"]
    assert "balancer web start: ok" in c.log("n1")
    assert c.log("n1").index("balancer web start: ok") < c.log("n1").index(" on eth0 start: ok")

    # r2 dies: the checks take it out, an event says so, and nobody is sent to it.
    c.lab.stop(servers["r2"])
    _wait(lambda: _servers(c, "n1")[r2] == "down")
    got = _requests(c, 40)
    assert got["failed"] == 0 and got["seen"] == {"r1": 40}, got
    assert f"real server {r2} of web is down (connect: refused" in c.log("n1")
    text = c.vigil("n1", "lb", "status", check=True).stdout
    assert f"{r2}" in text and "1 of 2 servers take connections" in text, text
    servers["r2"] = _serve(c, "r2")
    _wait(lambda: _servers(c, "n1")[r2] == "up")

    # n1 stops cleanly: its rules go after its addresses; n2 directs.
    c.lab.stop(c.daemons["n1"])
    c.wait_holder("n2")
    _wait(lambda: bool(_table(c, "n2")))
    assert not _table(c, "n1")
    log = c.log("n1")
    assert log.index(" on eth0 stop: ok") < log.index("balancer web stop: ok")
    got = _requests(c, 40)
    assert got["failed"] == 0 and got["seen"] == {"r1": 20, "r2": 20}, got


def test_a_killed_daemon_s_guard_removes_the_rules_and_a_reload_changes_them(
        cluster: tuple[LabCluster, dict[str, subprocess.Popen[Any]]]) -> None:
    c, servers = cluster
    r1, r2 = _running(c)

    # A reload re-weights r2 (3:1) and renews nothing else: the address stays.
    config = c.config_path.read_text()
    c.config_path.write_text(config.replace(f'address = "{r2}"\n',
                                            f'address = "{r2}"\nweight = 3\n'))
    r = c.vigil("n1", "reload", check=True)
    assert "virtual server web: changed" in r.stdout, r.stdout
    assert _servers(c, "n1") == {r1: "up", r2: "up"}  # health kept: the check is the same
    _wait(lambda: _requests(c, 40)["seen"] == {"r1": 10, "r2": 30})
    assert c.log("n1").count(" on eth0 start: ok") == 1

    # The operator drains r1 on the director: nobody new reaches it; a typo is named.
    r = c.vigil("n1", "lb", "drain", "web", r1, check=True)
    assert "drained" in r.stdout
    assert _requests(c, 20)["seen"] == {"r2": 20}
    r = c.vigil("n1", "lb", "drain", "web", "10.9.9.9:80")
    assert r.returncode != 0 and "has no real server '10.9.9.9:80'" in r.stderr, r
    c.vigil("n1", "lb", "enable", "web", r1, check=True)
    assert "r1" in _requests(c, 20)["seen"]

    # kill -9: the guard stops the group, the rules with it, and n2 takes over.
    c.daemons["n1"].kill()
    c.wait_holder("n2")
    _wait(lambda: "guard: the balancer's rules removed" in c.log("n1"))
    assert not _table(c, "n1")
    _wait(lambda: _requests(c, 20)["failed"] == 0)


def test_lb_status_counts_the_connections_each_server_holds_now(
        cluster: tuple[LabCluster, dict[str, subprocess.Popen[Any]]]) -> None:
    """ipvsadm -L -n's ActiveConn: 10 long-lived transfers through the director, round
    robin, are 5 established connections on each real server, counted from the director's
    conntrack table; once they end, none is active. The standby directs nothing: it has no
    count."""
    c, _ = cluster
    r1, r2 = _running(c)
    proc = c.lab.popen("client", [sys.executable, "-m", "vigil.lab.streams", "--to", c.vip,
                                  "--count", "10", "--duration", "3"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        def open_now() -> dict[str, Any]:
            s = c.vigil("n1", "lb", "status", "--json", check=True).stdout
            return {r["address"]: r["connections"]
                    for r in json.loads(s)["virtual_servers"][0]["servers"]}
        _wait(lambda: {a: n["active"] for a, n in open_now().items()} == {r1: 5, r2: 5})
        text = c.vigil("n1", "lb", "status", check=True).stdout
        assert text.count("open now: 5 active, ") == 2, text
        standby = json.loads(c.vigil("n2", "lb", "status", "--json", check=True).stdout)
        assert [r["connections"] for r in standby["virtual_servers"][0]["servers"]] == \
            [None, None]
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert all(s["broke"] is None for s in json.loads(out)), out
    _wait(lambda: all(n["active"] == 0 for n in open_now().values()))
