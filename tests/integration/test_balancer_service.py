"""The balancer service end to end in namespaces: its prober checking three real HTTP
servers from the director, its ruleset following their health, the operator's drains and
the group's start and stop. The service runs in the director's namespace as the daemon
will run it; a small driver prints its changes and takes commands on stdin.

    client (link 0) -- director (link 0 | link 1) -- r1, r2, r3 (link 1)
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.test_balancer_nft import CLIENT, REALS
from vigil.balancer import apply
from vigil.lab.netns import Lab

INTERVAL, FALL, RISE = 0.2, 2, 2

DRIVER = textwrap.dedent("""
    import asyncio, ipaddress, json, sys, time
    from vigil.balancer.model import Check, Endpoint, RealServer, VirtualServer
    from vigil.balancer.service import Balancer
    vip, reals = sys.argv[1], json.loads(sys.argv[2])
    check = Check(type="http", path="/", interval=%(interval)s, timeout=0.1,
                  rise=%(rise)s, fall=%(fall)s)
    vs = VirtualServer("web", "web", tuple(
        RealServer(Endpoint(ipaddress.ip_address(a), 80), check=check) for a in reals),
        endpoint=Endpoint(ipaddress.ip_address(vip), 80))
    def say(**kw):
        print(json.dumps({"t": time.time(), **kw}), flush=True)
    b = Balancer([vs], on_change=lambda k, c, r: say(server=str(k[1]), change=c, why=r.why))
    async def commands():
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            verb, *args = line.split()
            error = await getattr(b, verb)(*args)
            say(done=verb, error=error)
    async def main():
        async with asyncio.TaskGroup() as tg:
            tg.create_task(b.run())
            tg.create_task(commands())
    asyncio.run(main())
""") % {"interval": INTERVAL, "rise": RISE, "fall": FALL}


class Driver:
    """The driver's events, read by a thread so that waiting for one has a real timeout,
    and kept until asked for: events of different servers come in any order."""

    def __init__(self, lab: Lab) -> None:
        reals = [lab.address(r, 1) for r in REALS]
        self.proc = lab.popen("director", [sys.executable, "-c", DRIVER,
                                           lab.address("director", 0), json.dumps(reals)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.backlog: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")

    def next(self, timeout: float = 10.0, **want: Any) -> dict[str, Any]:
        """The first event, old or new, that has every key/value of `want`."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.backlog:
                if all(event.get(k) == v for k, v in want.items()):
                    self.backlog.remove(event)
                    return event
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {want} within {timeout} s; seen {self.backlog}") \
                    from None
            if not line:
                raise AssertionError("the driver exited")
            self.backlog.append(json.loads(line))

    def command(self, *words: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(" ".join(words) + "\n")
        self.proc.stdin.flush()
        return self.next(done=words[0])


@pytest.fixture
def lab() -> Iterator[tuple[Lab, dict[str, subprocess.Popen[Any]]]]:
    with Lab.create(["client", "director", *REALS], links=2) as lab:
        lab.run("client", ["ip", "link", "set", lab.ifname(1), "down"])
        lab.run("director", ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        servers = {}
        for r in REALS:
            lab.run(r, ["ip", "link", "set", lab.ifname(0), "down"])
            lab.run(r, ["ip", "route", "add", "default", "via", lab.address("director", 1)])
            servers[r] = _serve(lab, r)
        yield lab, servers


def _serve(lab: Lab, r: str) -> subprocess.Popen[Any]:
    proc = lab.popen(r, [sys.executable, "-m", "vigil.lab.web", "--name", r, "--bind",
                         lab.address(r, 1), "--keepalive"])
    lab.wait_listening(r, 80)
    return proc


def _requests(lab: Lab, n: int) -> dict[str, Any]:
    out = lab.run("client", ["python3", "-c", CLIENT, lab.address("director", 0), str(n),
                             "new"], timeout=60)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_health_drains_and_the_group_drive_the_ruleset(
        lab: tuple[Lab, dict[str, subprocess.Popen[Any]]]) -> None:
    lab_, servers = lab
    d = Driver(lab_)
    for r in REALS:
        d.next(server=f"{lab_.address(r, 1)}:80", change="up")
    assert d.command("activate", "web")["error"] is None
    got = _requests(lab_, 300)
    assert got["failed"] == 0 and set(got["seen"]) == set(REALS)

    # r3's server dies: down after `fall` failed checks, and no new connection reaches it.
    r3 = f"{lab_.address('r3', 1)}:80"
    killed = time.time()
    lab_.stop(servers["r3"])
    down = d.next(server=r3, change="down")
    assert down["why"] == "connect: refused"
    assert down["t"] - killed <= FALL * INTERVAL + 0.3
    got = _requests(lab_, 90)
    assert got["failed"] == 0 and "r3" not in got["seen"]

    # It comes back: up after `rise` good checks, and it takes connections again.
    servers["r3"] = _serve(lab_, "r3")
    d.next(server=r3, change="up")
    got = _requests(lab_, 90)
    assert got["failed"] == 0 and got["seen"].get("r3", 0) > 0

    # The operator drains r1: no failed request, no new connection to it; then enables it.
    assert d.command("drain", "web", f"{lab_.address('r1', 1)}:80")["error"] is None
    got = _requests(lab_, 90)
    assert got["failed"] == 0 and "r1" not in got["seen"]
    d.command("enable", "web", f"{lab_.address('r1', 1)}:80")
    assert "r1" in _requests(lab_, 30)["seen"]

    # The group stops here: the table goes, and the VIP no longer balances.
    d.command("deactivate", "web")
    assert apply.listing(["ip", "netns", "exec", lab_.ns("director")]) == []
    assert _requests(lab_, 3)["failed"] == 3
    lab_.stop(d.proc)


# Run in the client namespace: a kept-alive connection that reached `want`; on a line on
# stdin, one more request on it: what happened, and how long it took.
HELD = textwrap.dedent("""
    import http.client, sys, time
    host, want = sys.argv[1], sys.argv[2]
    for _ in range(50):
        conn = http.client.HTTPConnection(host, 80, timeout=3)
        conn.request("GET", "/who")
        if conn.getresponse().read().decode().strip() == want:
            break
        conn.close()
    else:
        sys.exit("never reached " + want)
    print("ready", flush=True)
    sys.stdin.readline()
    t = time.monotonic()
    try:
        conn.request("GET", "/who")
        print("ok", conn.getresponse().read().decode().strip(), flush=True)
    except Exception as e:
        print("error", type(e).__name__, round(time.monotonic() - t, 2), flush=True)
""")


def test_a_failed_server_s_connections_are_dropped_so_its_clients_learn_at_once(
        lab: tuple[Lab, dict[str, subprocess.Popen[Any]]]) -> None:
    """quiescent = false (the default): when r2 fails its checks, the director deletes its
    connections from conntrack; the client's next packet on one is a new connection to
    another server, which resets it at once, instead of waiting on r2."""
    lab_, servers = lab
    d = Driver(lab_)
    for r in REALS:
        d.next(server=f"{lab_.address(r, 1)}:80", change="up")
    assert d.command("activate", "web")["error"] is None
    client = lab_.popen("client", [sys.executable, "-c", HELD, lab_.address("director", 0),
                                   "r2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                        text=True)
    assert client.stdout is not None and client.stdin is not None
    assert client.stdout.readline().strip() == "ready"
    r2 = f"{lab_.address('r2', 1)}:80"
    mark = f"0x{1 << 16 | 2:08x}"  # service 1, server 2
    before = lab_.run("director", ["conntrack", "-L", "--mark", mark], check=False).stdout
    assert "ESTABLISHED" in before, before
    servers["r2"].send_signal(signal.SIGSTOP)  # hung: its checks time out
    try:
        assert d.next(server=r2, change="down")["why"].startswith("timeout")
        time.sleep(0.3)
        after = lab_.run("director", ["conntrack", "-L", "--mark", mark], check=False).stdout
        assert "ESTABLISHED" not in after, after
        client.stdin.write("go\n")
        client.stdin.flush()
        verdict = client.stdout.readline().split()
    finally:
        servers["r2"].send_signal(signal.SIGCONT)
    assert verdict[:2] == ["error", "ConnectionResetError"] and float(verdict[2]) < 1.0, verdict
    client.wait(timeout=5)
    lab_.stop(d.proc)
