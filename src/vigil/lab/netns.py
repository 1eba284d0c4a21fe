"""Test hosts made of Linux network namespaces: the lab that integration tests, the demo and
the benchmarks run vigil in.

Layout, for ``Lab.create(["n1", "n2", "client"])`` with the default subnet::

    <prefix>-sw       the "switch": bridge br0 (and br1... with links > 1), one veth port per
                      host and link, named "<host>-<link>" (truncated to 15 characters)
    <prefix>-n1       eth0 10.77.0.10/24   (eth1 10.77.1.10/24 with links=2)
    <prefix>-n2       eth0 10.77.0.11/24
    <prefix>-client   eth0 10.77.0.12/24

Every namespace has ``lo`` up. Nothing is created in the root network namespace and the
namespaces have no route out of the lab, so no traffic can leave it. ``<prefix>`` is ``vg``
plus 6 random hex digits unless given, so concurrent runs do not collide.

Rules this module keeps:

- It only ever deletes namespaces it created itself (`Lab.close`), or, through `cleanup`,
  namespaces named ``<prefix>-...`` for an exact prefix the caller owns.
- `Lab.close` is idempotent, kills every process the lab started and every process still
  inside its namespaces, then deletes the namespaces (deleting the switch namespace removes
  the bridges and veths with it). A lab that is never closed is closed at interpreter exit.
- Faults are real: ``ip link set ... down`` and nftables drop rules (table ``inet vigil_lab``
  in the host namespace; partial loss with ``numgen random mod 100 < N``) since there is no
  netem here.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Literal, Self

from vigil.lab.drops import Direction, DropRules

__all__ = ["Lab", "LabCommandError", "cleanup", "list_namespaces"]

Side = Literal["host", "switch"]

SWITCH = "sw"
IFNAMSIZ = 15
_HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]*$")
_KILL_GRACE = 2.0


class LabCommandError(subprocess.CalledProcessError):
    """A lab command failed; unlike its base class, its message includes the command's stderr."""

    def __str__(self) -> str:
        err = self.stderr
        if isinstance(err, bytes):
            err = err.decode(errors="replace")
        tail = f": {err.strip()}" if err and err.strip() else ""
        return f"{' '.join(map(str, self.cmd))} exited {self.returncode}{tail}"


def _run(argv: Sequence[str], *, check: bool = True, timeout: float = 10.0,
         input: str | None = None) -> subprocess.CompletedProcess[str]:
    stdin = None if input is not None else subprocess.DEVNULL
    proc = subprocess.run(list(argv), check=False, capture_output=True, text=True,
                          timeout=timeout, input=input, stdin=stdin)
    if check and proc.returncode != 0:
        raise LabCommandError(proc.returncode, proc.args, proc.stdout, proc.stderr)
    return proc


def list_namespaces() -> list[str]:
    """Names of all named network namespaces (``ip netns list``)."""
    out = _run(["ip", "-j", "netns", "list"]).stdout.strip()
    if not out:
        return []
    return [entry["name"] for entry in json.loads(out)]


def _namespace_pids(ns: str) -> list[int]:
    proc = _run(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def _destroy_namespaces(names: Sequence[str]) -> None:
    """Kill every process inside `names`, then delete them. Missing namespaces are ignored."""
    existing = set(list_namespaces())
    names = [n for n in names if n in existing]
    for ns in names:
        for pid in _namespace_pids(ns):
            if pid != os.getpid():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    for ns in names:
        _run(["ip", "netns", "delete", ns], check=False)


def cleanup(prefix: str) -> list[str]:
    """Delete the namespaces named exactly `prefix` or ``<prefix>-<anything>``, killing the
    processes inside them first; return their names.

    For a test session's own leftovers (a run killed before it could close its lab): pass the
    exact prefix that session used. Namespaces that merely start with the same letters, such
    as ``vgab12cd-n1`` for prefix ``vg``, are never touched.
    """
    if not prefix or "/" in prefix:
        raise ValueError(f"bad namespace prefix {prefix!r}")
    mine = [n for n in list_namespaces() if n == prefix or n.startswith(prefix + "-")]
    _destroy_namespaces(mine)
    return mine


class Lab:
    """A set of namespaced hosts on one bridge per link. Build it with `Lab.create`."""

    def __init__(self, hosts: Sequence[str], subnet: str, links: int, prefix: str) -> None:
        if links < 1:
            raise ValueError("links must be at least 1")
        if not hosts:
            raise ValueError("a lab needs at least one host")
        if len(set(hosts)) != len(hosts):
            raise ValueError(f"duplicate host names in {list(hosts)}")
        for h in hosts:
            if not _HOST_NAME.match(h) or h == SWITCH:
                raise ValueError(f"bad host name {h!r}")
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.]*$", prefix):
            raise ValueError(f"bad namespace prefix {prefix!r}")
        net = ipaddress.ip_network(subnet)
        if not isinstance(net, ipaddress.IPv4Network) or net.prefixlen != 24:
            raise ValueError(f"subnet must be an IPv4 /24, not {subnet}")
        if 10 + len(hosts) > 254:
            raise ValueError("too many hosts for a /24")
        self.hosts: tuple[str, ...] = tuple(hosts)
        self.links = links
        self.prefix = prefix
        self._base = net
        for k in range(links):
            self.subnet(k)  # fails early if the link subnets leave the IPv4 space
        ports = [self.switch_port(h, k) for h in hosts for k in range(links)]
        if len(set(ports)) != len(ports):
            raise ValueError(f"switch port names collide after truncation: {ports}")
        self._created: list[str] = []
        self._procs: list[subprocess.Popen[Any]] = []
        self._drops = DropRules()
        self._closed = False

    # -- construction -------------------------------------------------------------------

    @classmethod
    def create(cls, hosts: Sequence[str], subnet: str = "10.77.0.0/24", links: int = 1,
               prefix: str | None = None) -> Lab:
        """Build the namespaces, bridges and veths; on any failure remove what was built."""
        lab = cls(hosts, subnet, links, prefix or "vg" + secrets.token_hex(3))
        atexit.register(lab.close)
        try:
            lab._build()
        except BaseException:
            lab.close()
            raise
        return lab

    def _build(self) -> None:
        existing = set(list_namespaces())
        wanted = [self.switch] + [self.ns(h) for h in self.hosts]
        clash = [n for n in wanted if n in existing]
        if clash:
            raise ValueError(f"namespaces already exist: {clash}")
        for ns in wanted:
            _run(["ip", "netns", "add", ns])
            self._created.append(ns)
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        sw = self.switch
        for k in range(self.links):
            # No IGMP snooping: without a querier it would start filtering multicast
            # heartbeats after the membership timeout. STP is off, so ports forward at once.
            _run(["ip", "-n", sw, "link", "add", f"br{k}", "type", "bridge",
                  "stp_state", "0", "mcast_snooping", "0"])
            _run(["ip", "-n", sw, "link", "set", f"br{k}", "up"])
        for host in self.hosts:
            hns = self.ns(host)
            for k in range(self.links):
                port, dev = self.switch_port(host, k), self.ifname(k)
                _run(["ip", "-n", sw, "link", "add", port, "type", "veth",
                      "peer", "name", dev, "netns", hns])
                _run(["ip", "-n", sw, "link", "set", port, "master", f"br{k}", "up"])
                _run(["ip", "-n", hns, "addr", "add",
                      f"{self.address(host, k)}/{self._base.prefixlen}", "dev", dev])
                _run(["ip", "-n", hns, "link", "set", dev, "up"])

    # -- names and addresses ------------------------------------------------------------

    @property
    def switch(self) -> str:
        """Name of the switch namespace."""
        return f"{self.prefix}-{SWITCH}"

    def ns(self, host: str) -> str:
        """Name of `host`'s network namespace."""
        self._check_host(host)
        return f"{self.prefix}-{host}"

    @staticmethod
    def ifname(link: int = 0) -> str:
        """Interface name of `link` inside every host: eth0, eth1..."""
        return f"eth{link}"

    @staticmethod
    def switch_port(host: str, link: int = 0) -> str:
        """Name of the switch-side veth of `host` on `link`."""
        return f"{host}-{link}"[:IFNAMSIZ]

    def subnet(self, link: int = 0) -> str:
        """Subnet of `link`: the lab subnet with its third octet raised by `link`."""
        self._check_link(link)
        base = self._base.network_address + 256 * link
        return str(ipaddress.IPv4Network(f"{base}/{self._base.prefixlen}"))

    def address(self, host: str, link: int = 0) -> str:
        """`host`'s address on `link` (no prefix length): .10 for the first host, .11..."""
        i = self.hosts.index(self._check_host(host))
        net = ipaddress.IPv4Network(self.subnet(link))
        return str(net.network_address + 10 + i)

    def mac(self, host: str, link: int = 0) -> str:
        """The MAC address ("aa:bb:...") of `host`'s interface on `link`."""
        self._check_link(link)
        out = _run(["ip", "-n", self.ns(self._check_host(host)), "-j", "link", "show",
                    f"eth{link}"]).stdout
        return str(json.loads(out)[0]["address"])

    def addresses(self, host: str, ifname: str | None = None) -> set[str]:
        """Addresses ("a.b.c.d/len", IPv6 too) on `host`'s interfaces, or only on `ifname`."""
        argv = ["ip", "-n", self.ns(host), "-j", "addr", "show"]
        if ifname is not None:
            argv += ["dev", ifname]
        out = _run(argv).stdout.strip()
        found: set[str] = set()
        for link in json.loads(out) if out else []:
            for a in link.get("addr_info", []):
                if "local" in a:
                    found.add(f"{a['local']}/{a['prefixlen']}")
        return found

    # -- processes ----------------------------------------------------------------------

    def _exec_argv(self, host: str, argv: Sequence[str]) -> list[str]:
        if isinstance(argv, str):
            raise TypeError("argv must be a sequence of strings, not a string")
        return ["ip", "netns", "exec", self.ns(host), *argv]

    def run(self, host: str, argv: Sequence[str], check: bool = True,
            timeout: float = 10) -> subprocess.CompletedProcess[str]:
        """Run `argv` in `host`'s namespace, capturing text output. Raises `LabCommandError`
        on a non-zero exit when `check`, `subprocess.TimeoutExpired` (child killed) after
        `timeout` seconds."""
        self._check_open()
        return _run(self._exec_argv(host, argv), check=check, timeout=timeout)

    def popen(self, host: str, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start `argv` in `host`'s namespace in a process group of its own (stdin is
        /dev/null unless given). The lab stops it on `close` unless it has ended."""
        self._check_open()
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw["start_new_session"] = True
        proc: subprocess.Popen[Any] = subprocess.Popen(self._exec_argv(host, argv), **kw)
        self._procs.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[Any], grace: float = _KILL_GRACE) -> int:
        """SIGTERM `proc`'s process group, SIGKILL the group after `grace` seconds (or at once
        once the leader has exited), reap the leader; return its exit status.

        The group is signalled only while its leader is unreaped (running or a zombie), so
        the group id cannot have been reused by an unrelated process."""
        if proc.returncode is None:
            _signal_group(proc.pid, signal.SIGTERM)
            _wait_exited(proc.pid, grace)
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        return proc.returncode

    def wait_listening(self, host: str, port: int, proto: Literal["tcp", "udp"] = "tcp",
                       timeout: float = 5.0) -> None:
        """Wait until a socket in `host`'s namespace listens on `port`; TimeoutError if not
        within `timeout` seconds."""
        flag = "-Htln" if proto == "tcp" else "-Huln"
        deadline = time.monotonic() + timeout
        while True:
            out = self.run(host, ["ss", flag, f"sport = :{port}"], timeout=timeout).stdout
            if out.strip():
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"nothing listens on {proto}/{port} in {host}")
            time.sleep(0.02)

    def wait_address(self, host: str, address: str, present: bool = True,
                     timeout: float = 5.0) -> None:
        """Wait until `address` ("a.b.c.d/len") is (or, with present=False, is not) on one of
        `host`'s interfaces; TimeoutError if not within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while (address in self.addresses(host)) != present:
            if time.monotonic() >= deadline:
                state = "appear on" if present else "leave"
                raise TimeoutError(f"{address} did not {state} {host} within {timeout}s")
            time.sleep(0.02)

    # -- faults -------------------------------------------------------------------------

    def link_down(self, host: str, link: int = 0, side: Side = "host") -> None:
        """Take `host`'s `link` down at its own end (eth<link>) or at the switch port."""
        self._set_link(host, link, side, "down")

    def link_up(self, host: str, link: int = 0, side: Side = "host") -> None:
        """Undo `link_down` (IPv4 addresses survive a down/up; routes come back)."""
        self._set_link(host, link, side, "up")

    def _set_link(self, host: str, link: int, side: Side, state: str) -> None:
        self._check_open()
        self._check_link(link)
        if side == "host":
            ns, dev = self.ns(host), self.ifname(link)
        elif side == "switch":
            ns, dev = self.switch, self.switch_port(self._check_host(host), link)
        else:
            raise ValueError(f"side must be 'host' or 'switch', not {side!r}")
        _run(["ip", "-n", ns, "link", "set", dev, state])

    def drop(self, host: str, direction: Direction = "both", percent: int = 100,
             link: int = 0, peer: str | None = None) -> None:
        """Drop `percent`% of IP packets entering ("in"), leaving ("out") or both, on `host`'s
        `link`, optionally only those from/to address `peer` (for one-way partitions).

        Rules live in table ``inet vigil_lab`` in the host's namespace (lab/drops.py). A
        later call for the same (link, direction, peer) replaces the earlier one; percent=0
        removes it. ARP is not IP and still passes."""
        self._check_open()
        self._check_link(link)
        self._drops.set(self._check_host(host), direction, percent, link, peer)
        self._load_rules(host)

    def undrop(self, host: str, link: int | None = None) -> None:
        """Remove `host`'s drop rules: all of them, or those of one `link`."""
        self._check_open()
        self._drops.clear(self._check_host(host), link)
        self._load_rules(host)

    def _load_rules(self, host: str) -> None:
        """Replace the host's vigil_lab table by one matching its rules, atomically."""
        _run(["ip", "netns", "exec", self.ns(host), "nft", "-f", "-"],
             input=self._drops.script(host, self.ifname))

    # -- teardown -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the lab's processes and delete its namespaces. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        for proc in self._procs:
            if proc.returncode is None:
                _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + _KILL_GRACE
        for proc in self._procs:
            self.stop(proc, grace=max(0.0, deadline - time.monotonic()))
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
        # Hosts first, switch last: then every veth is gone with its host namespace.
        _destroy_namespaces(list(reversed(self._created)))
        self._created.clear()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Lab {self.prefix} hosts={list(self.hosts)} links={self.links} {state}>"

    # -- checks -------------------------------------------------------------------------

    def _check_host(self, host: str) -> str:
        if host not in self.hosts:
            raise KeyError(f"no host {host!r} in lab {self.prefix} (hosts: {self.hosts})")
        return host

    def _check_link(self, link: int) -> None:
        if not 0 <= link < self.links:
            raise ValueError(f"no link {link} in lab {self.prefix} ({self.links} links)")

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"lab {self.prefix} is closed")


def _wait_exited(pid: int, timeout: float) -> None:
    """Wait up to `timeout` seconds for child `pid` to exit, without reaping it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return
        except ChildProcessError:
            return
        if time.monotonic() >= deadline:
            return
        time.sleep(0.01)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def exit_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C (SystemExit through every `with Lab...`), so that a
    benchmark or demo stopped from outside still removes its namespaces. For entry points."""
    import sys

    def _exit(signum: int, frame: object) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
