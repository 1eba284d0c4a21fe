"""IpAgent against a real kernel: two network namespaces joined by a veth pair.

Namespace "a" is the node (va, 10.199.7.1/24, fd00:199:7::1/64); namespace "b" is a client
(vb, 10.199.7.2/24, fd00:199:7::2/64). The agent runs in a driver process started with
`ip netns exec a`, which keeps one Host open (its announcer running in a TaskGroup) and answers
one JSON command per line, so the test can look at the kernel between actions.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2"),
]

FAKE_MAC = "02:00:00:00:00:01"
VIP4 = "10.199.7.100/24"
VIP6 = "fd00:199:7::100/64"
STEP_TIMEOUT = 5.0

DRIVER = r"""
import asyncio, ipaddress, json, sys
from vigil.errors import AgentError
from vigil.model import ArpSettings, IpResource
from vigil.resources import build
from vigil.resources.host import Host

address, interface, label = sys.argv[1], sys.argv[2] or None, sys.argv[3] or None
broadcast = ipaddress.ip_address(sys.argv[4]) if sys.argv[4] else None

async def serve(host):
    resource = IpResource(
        address=ipaddress.ip_interface(address), interface=interface, label=label,
        arp=ArpSettings(count=3, interval=0.01, repeat_delay=0.2, repeat_count=2),
        prefix_given="/" in address, broadcast=broadcast,
    )
    agent = build(resource, host)
    loop = asyncio.get_running_loop()
    print(json.dumps({"ready": True}), flush=True)
    while line := await asyncio.to_thread(sys.stdin.readline):
        op = json.loads(line)["op"]
        try:
            if op == "sent":
                value = host.announcer.sent[resource.address.ip]
            else:
                value = await getattr(agent, op)()
            reply = {"ok": True, "value": value}
        except AgentError as e:
            reply = {"ok": False, "error": str(e)}
        print(json.dumps(reply), flush=True)

async def main():
    async with Host.open() as host:
        async with asyncio.TaskGroup() as tg:
            announcer = tg.create_task(host.announcer.run())
            try:
                await serve(host)
            finally:
                announcer.cancel()

asyncio.run(main())
"""


def sh(*args: str, check: bool = True) -> str:
    done = subprocess.run(
        args, check=False, capture_output=True, text=True, timeout=STEP_TIMEOUT
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: rc={done.returncode}: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Net:
    a: str  # the node's namespace
    b: str  # the client's namespace

    def mac(self, ns: str, ifname: str) -> str:
        info = json.loads(sh("ip", "-n", ns, "-j", "link", "show", "dev", ifname))
        return str(info[0]["address"])

    def addresses(self, ns: str, ifname: str) -> list[str]:
        info = json.loads(sh("ip", "-n", ns, "-j", "addr", "show", "dev", ifname))
        return [f"{a['local']}/{a['prefixlen']}" for a in info[0]["addr_info"]]

    def labels(self, ns: str, ifname: str) -> list[str]:
        info = json.loads(sh("ip", "-n", ns, "-j", "-4", "addr", "show", "dev", ifname))
        return [a.get("label", "") for a in info[0]["addr_info"]]

    def neighbour_mac(self, ns: str, ifname: str, ip: str) -> str | None:
        info = json.loads(sh("ip", "-n", ns, "-j", "neigh", "show", ip, "dev", ifname))
        return info[0].get("lladdr") if info else None


@pytest.fixture
def net() -> Iterator[Net]:
    tag = secrets.token_hex(3)
    a, b = f"vgr{tag}-a", f"vgr{tag}-b"
    created: list[str] = []
    try:
        for ns in (a, b):
            sh("ip", "netns", "add", ns)
            created.append(ns)
        sh("ip", "link", "add", "va", "netns", a, "type", "veth", "peer", "name", "vb", "netns", b)
        for ns, ifname, last in ((a, "va", 1), (b, "vb", 2)):
            # no DAD on the fixed addresses: usable at once
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{ifname}.accept_dad=0")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", ifname, "up")
            sh("ip", "-n", ns, "addr", "add", f"10.199.7.{last}/24", "dev", ifname)
            sh("ip", "-n", ns, "addr", "add", f"fd00:199:7::{last}/64", "dev", ifname, "nodad")
        yield Net(a, b)
    finally:
        for ns in created:
            sh("ip", "netns", "del", ns, check=False)  # takes the veth pair with it


class Driver:
    """The agent, living in a namespace; `call("start")` etc. return the agent's answer."""

    def __init__(self, ns: str, address: str, interface: str, label: str = "",
                 broadcast: str = "") -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", DRIVER, address, interface, label,
             broadcast],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._read() == {"ready": True}

    def call(self, op: str) -> Any:
        reply = self.request(op)
        if not reply["ok"]:
            raise AssertionError(f"{op}: {reply['error']}")
        return reply["value"]

    def request(self, op: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], STEP_TIMEOUT)
        if not ready:
            raise AssertionError(f"driver silent for {STEP_TIMEOUT}s")
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"driver exited rc={self.proc.wait(STEP_TIMEOUT)}")
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STEP_TIMEOUT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def driver() -> Iterator[Callable[..., Driver]]:
    drivers: list[Driver] = []

    def start(*args: str) -> Driver:
        drivers.append(Driver(*args))
        return drivers[-1]

    try:
        yield start
    finally:
        for d in drivers:
            d.close()


def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_ipv4_start_probe_stop(net: Net, driver: Callable[..., Driver]) -> None:
    agent = driver(net.a, VIP4, "va", "va:vip")
    assert agent.call("probe") is False
    assert agent.call("start") is None
    assert VIP4 in net.addresses(net.a, "va")
    assert "va:vip" in net.labels(net.a, "va")
    assert agent.call("probe") is True
    agent.call("start")  # idempotent
    assert net.addresses(net.a, "va").count(VIP4) == 1
    agent.call("stop")
    assert VIP4 not in net.addresses(net.a, "va")
    assert "10.199.7.1/24" in net.addresses(net.a, "va")  # the fixed address is untouched
    assert agent.call("probe") is False
    agent.call("stop")  # absent is fine


def test_ipv6_start_probe_stop(net: Net, driver: Callable[..., Driver]) -> None:
    agent = driver(net.a, VIP6, "va")
    agent.call("start")
    assert VIP6 in net.addresses(net.a, "va")
    info = json.loads(sh("ip", "-n", net.a, "-j", "-6", "addr", "show", "dev", "va"))
    vip = next(x for x in info[0]["addr_info"] if x["local"] == "fd00:199:7::100")
    assert not vip.get("tentative")  # NODAD: usable at once
    assert agent.call("probe") is True
    agent.call("stop")
    assert VIP6 not in net.addresses(net.a, "va")
    assert agent.call("probe") is False


def test_garp_updates_the_peer_neighbour(net: Net, driver: Callable[..., Driver]) -> None:
    sh("ip", "-n", net.b, "neigh", "replace", "10.199.7.100", "dev", "vb",
       "lladdr", FAKE_MAC, "nud", "stale")
    assert net.neighbour_mac(net.b, "vb", "10.199.7.100") == FAKE_MAC
    agent = driver(net.a, VIP4, "va")
    agent.call("start")
    real = net.mac(net.a, "va")
    # within the neighbour's 1 s locktime: only a packet Linux sees as gratuitous may win
    assert wait_until(lambda: net.neighbour_mac(net.b, "vb", "10.199.7.100") == real, 1.0)
    assert wait_until(lambda: agent.call("sent") >= 5)  # both bursts went out
    agent.call("stop")


def test_unsolicited_na_updates_the_peer_neighbour(net: Net, driver: Callable[..., Driver]) -> None:
    sh("ip", "-n", net.b, "-6", "neigh", "replace", "fd00:199:7::100", "dev", "vb",
       "lladdr", FAKE_MAC, "nud", "stale")
    assert net.neighbour_mac(net.b, "vb", "fd00:199:7::100") == FAKE_MAC
    agent = driver(net.a, VIP6, "va")
    agent.call("start")
    real = net.mac(net.a, "va")
    assert wait_until(lambda: net.neighbour_mac(net.b, "vb", "fd00:199:7::100") == real, 1.0)
    agent.call("stop")


def test_healthy_follows_the_link(net: Net, driver: Callable[..., Driver]) -> None:
    agent = driver(net.a, VIP4, "va")
    assert agent.call("healthy") is True
    sh("ip", "-n", net.b, "link", "set", "vb", "down")  # peer end down: no carrier on va
    assert wait_until(lambda: agent.call("healthy") is False)
    sh("ip", "-n", net.b, "link", "set", "vb", "up")
    assert wait_until(lambda: agent.call("healthy") is True)
    sh("ip", "-n", net.a, "link", "set", "va", "down")  # our own end down
    assert wait_until(lambda: agent.call("healthy") is False)
    sh("ip", "-n", net.a, "link", "set", "va", "up")
    assert wait_until(lambda: agent.call("healthy") is True)


def test_start_on_a_down_link_still_adds(net: Net, driver: Callable[..., Driver]) -> None:
    """Announcing fails while the link is down; start does not: the address is there."""
    sh("ip", "-n", net.a, "link", "set", "va", "down")
    agent = driver(net.a, VIP4, "va")
    agent.call("start")
    assert agent.call("probe") is True
    assert agent.call("healthy") is False
    agent.call("stop")


def test_missing_interface(net: Net, driver: Callable[..., Driver]) -> None:
    agent = driver(net.a, VIP4, "nosuch0")
    reply = agent.request("start")
    assert reply["ok"] is False
    assert reply["error"].startswith("ip 10.199.7.100/24 on nosuch0: ")
    assert "nosuch0" in reply["error"].split(": ", 1)[1]
    assert agent.call("probe") is False
    assert agent.call("healthy") is False
    agent.call("stop")  # nothing to remove


# --- issue 12: Heartbeat's bare IPaddr::ADDRESS, and its fourth field -------------------------


def test_interface_and_prefix_found_from_the_connected_route(net: Net,
                                                            driver: Callable[..., Driver]) -> None:
    agent = driver(net.a, "10.199.7.100", "")
    assert agent.call("healthy") is True
    agent.call("start")
    assert VIP4 in net.addresses(net.a, "va")  # on va, with va's subnet's /24
    assert agent.call("probe") is True
    # Another process (the guard, a restarted daemon) stops it wherever it is.
    other = driver(net.a, "10.199.7.100", "")
    assert other.call("probe") is True
    other.call("stop")
    assert VIP4 not in net.addresses(net.a, "va") and agent.call("probe") is False
    six = driver(net.a, "fd00:199:7::100", "")
    six.call("start")
    assert VIP6 in net.addresses(net.a, "va")
    six.call("stop")


def test_no_connected_route_is_a_clear_error_never_a_guess(net: Net,
                                                          driver: Callable[..., Driver]) -> None:
    agent = driver(net.a, "10.55.0.1", "")
    reply = agent.request("start")
    assert reply["ok"] is False
    error = reply["error"]
    assert error.startswith("ip 10.55.0.1: no connected route on this node contains 10.55.0.1")
    assert "va 10.199.7.1/24" in error, error
    assert agent.call("healthy") is False
    assert not any(a.startswith("10.55.0.1/") for a in net.addresses(net.a, "va"))
    # A route is added later: the same agent finds it at its next start.
    sh("ip", "-n", net.a, "addr", "add", "10.55.0.2/16", "dev", "va")
    agent.call("start")
    assert "10.55.0.1/16" in net.addresses(net.a, "va")
    agent.call("stop")


def test_the_broadcast_address_as_written(net: Net, driver: Callable[..., Driver]) -> None:
    """Seed 002's 192.168.8.240/19/eth0/192.168.31.251: the fourth field was dropped."""
    agent = driver(net.a, VIP4, "va", "", "10.199.7.250")
    agent.call("start")
    info = json.loads(sh("ip", "-n", net.a, "-j", "-4", "addr", "show", "dev", "va"))
    vip = next(x for x in info[0]["addr_info"] if x["local"] == "10.199.7.100")
    assert vip["broadcast"] == "10.199.7.250"
    agent.call("stop")
