"""Issue 14: seed 003's "heartbeat+lvs+ldirectord" end to end. Heartbeat's files with
ldirectord.cf (tests/unit/test_heartbeat_lvs.py: what the seed says of them, its screenshots
aside) run on two real directors in namespaces, in front of two real HTTP servers that hold
the floating address on lo, as the seed's `ipvsadm -g` servers do with arptables.

    client, server1 (n1), server2 (n2), server4 (r1), server5 (r2): eth0, 172.25.39.0/24

What the lab changes, and only that: ha.cf's timings (the seed's are in a screenshot; these
are fast enough for a test), the real servers' page (`receive=` matches what they serve, as
the seed's `vim /var/www/html/index.html` makes it match theirs), and httpd, a stand-in
script: the lab's web server runs on every director, answering on port 80, and it is the
fallback ("rs都挂掉,本机补上": every real server down, the director serves itself). The
seed's two claims are checked: the real servers take turns; when both are down the director
answers; when the primary goes (`killall -9 heartbeat`), the secondary takes over.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import sys
import time
from typing import Any

import pytest

from tests.integration.test_balancer_nft import CLIENT
from tests.integration.test_seed_files import ha_dir, wait_for
from tests.unit.test_heartbeat_lvs import SEED_003_HARESOURCES, SEED_003_LDIRECTORD
from vigil.balancer import apply
from vigil.lab.cluster import LabCluster

pytestmark = pytest.mark.integration

VIP = "172.25.39.100"
REALS = {"r1": ("172.25.39.4", "server4"), "r2": ("172.25.39.5", "server5")}
HACF = """# seed 003's ha.cf is a screenshot: bcast on the heartbeat network, the nodes in order
logfile {log}
keepalive 200ms
warntime 500ms
deadtime 1
initdead 3
udpport 694
bcast eth1
auto_failback on
node server1
node server2
"""
NAMES = {"n1": "server1", "n2": "server2"}


def _requests(c: LabCluster, n: int) -> dict[str, Any]:
    out = c.lab.run("client", [sys.executable, "-c", CLIENT, VIP, str(n), "new"], timeout=60)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _health(c: LabCluster, node: str) -> dict[str, str]:
    vs = c.status(node)["balancer"]["virtual_servers"][0]
    return {s["address"].split(":")[0]: s["health"] for s in vs["servers"]}


def _flaps(c: LabCluster, node: str) -> list[int]:
    vs = c.status(node)["balancer"]["virtual_servers"][0]
    return [s["flaps"] for s in vs["servers"]]


def _wait(what: Any, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < end, f"not within {timeout} s"
        time.sleep(0.05)


def _serve(c: LabCluster, host: str) -> Any:
    address, name = REALS[host]
    proc = c.lab.popen(host, [sys.executable, "-m", "vigil.lab.web", "--name", name, "--bind",
                              "0.0.0.0"])
    c.lab.wait_listening(host, 80)
    return proc


def test_seed_003_heartbeat_with_ldirectord_cf_balances_falls_back_and_fails_over() -> None:
    with LabCluster(links=2, subnet="172.25.39.0/24", names=NAMES, hosts=tuple(REALS)) as c:
        servers = {}
        for host, (address, _) in REALS.items():
            # The seed's real server: its own address, the virtual one on lo (the seed puts
            # it on eth0 with arptables dropping ARP for it; lo and arp_ignore do the same).
            c.lab.run(host, ["ip", "link", "set", c.lab.ifname(1), "down"])
            c.lab.run(host, ["ip", "addr", "add", f"{address}/24", "dev", "eth0"])
            c.lab.run(host, ["ip", "addr", "add", f"{VIP}/32", "dev", "lo"])
            c.lab.run(host, ["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1",
                             "net.ipv4.conf.all.arp_announce=2"])
            servers[host] = _serve(c, host)
        c.lab.run("client", ["ip", "link", "set", c.lab.ifname(1), "down"])
        d = ha_dir(c, "ha.d", HACF.format(log=c.dir / "ha-log"), SEED_003_HARESOURCES,
                   "auth 1\n1 sha1 seed-003-shows-its-authkeys-in-a-screenshot\n", ("httpd",))
        (d / "ldirectord.cf").write_text(SEED_003_LDIRECTORD.replace(
            'request="index.html"', 'request="/"').replace('"Test Page"', '"server[45]"'))
        # On the director itself, check-config also sees that the real servers are on its
        # network, which direct routing needs.
        check = c.lab.run("n1", c.argv("n1", "check-config", "--heartbeat-dir", str(d)),
                          check=False)
        assert check.returncode == 0, check.stderr
        outside = c.vigil("n1", "check-config", "--heartbeat-dir", str(d))
        assert outside.returncode != 0 and "reached through the router" in outside.stderr
        assert "ldirectord is not run" in check.stdout + check.stderr
        for n in ("n1", "n2"):
            c.start(n, "--heartbeat-dir", str(d))
        wait_for(c, VIP, ["n1"], timeout=15)
        for n in ("n1", "n2"):  # both directors check: a takeover starts warm
            _wait(lambda: _health(c, n) == {"172.25.39.4": "up", "172.25.39.5": "up"})
        assert apply.listing(["ip", "netns", "exec", c.lab.ns("n1")], "netdev", "vigil_dr")
        assert not apply.listing(["ip", "netns", "exec", c.lab.ns("n2")], "netdev", "vigil_dr")
        calls = (c.dir / "calls").read_text()
        assert "httpd start" in calls and "ldirectord" not in calls

        # "curl 172.25.39.100: server4, server5 in turn" (rr), answered directly (DR)
        # A round counts if neither server's health changed during it: with ldirectord's
        # failurecount 1, one check slowed by a loaded machine takes a server out for a
        # second, and the split then says nothing of the scheduler. (CI once saw 71/129,
        # with a second test run loading the machine; the cause was not recorded, so the
        # assertion now says the flap counts too.)
        for _ in range(3):
            flaps = _flaps(c, "n1")
            got = _requests(c, 200)
            seen = collections.Counter(got["seen"])
            print(f"seed 003, rr over 200 new connections: {dict(seen)}")
            assert got["failed"] == 0 and set(seen) <= {"server4", "server5"}, got
            if _flaps(c, "n1") == flaps:
                break
        else:
            raise AssertionError("a real server's health changed in each of 3 rounds")
        assert abs(seen["server4"] - 100) <= 20, (seen, flaps, _flaps(c, "n1"))

        # One real server down: the check takes it out (failurecount 1, checkinterval 1).
        servers["r2"].send_signal(signal.SIGTERM)
        servers["r2"].wait(5)
        _wait(lambda: _health(c, "n1")["172.25.39.5"] == "down")
        got = _requests(c, 40)
        assert got["failed"] == 0 and got["seen"] == {"server4": 40}, got

        # Both down: the director serves itself (fallback=127.0.0.1:80).
        servers["r1"].send_signal(signal.SIGTERM)
        servers["r1"].wait(5)
        _wait(lambda: _health(c, "n1")["172.25.39.4"] == "down")
        got = _requests(c, 20)
        assert got["failed"] == 0 and got["seen"] == {"n1": 20}, got

        # They come back; then the primary goes: the secondary takes over and balances.
        servers = {h: _serve(c, h) for h in REALS}
        _wait(lambda: set(_health(c, "n1").values()) == {"up"})
        _wait(lambda: set(_health(c, "n2").values()) == {"up"})
        os.kill(c.daemons.pop("n1").pid, signal.SIGKILL)  # killall -9 heartbeat
        wait_for(c, VIP, ["n2"], timeout=5)
        _wait(lambda: bool(apply.listing(["ip", "netns", "exec", c.lab.ns("n2")], "netdev",
                                         "vigil_dr")))
        got = _requests(c, 100)
        seen = collections.Counter(got["seen"])
        assert got["failed"] == 0 and set(seen) == {"server4", "server5"}, got
        assert "Resources being acquired from server1." in c.log("n2")
        for proc in servers.values():
            proc.send_signal(signal.SIGTERM)
            proc.wait(5)

