"""What a virtual service is: an address (or firewall mark) and protocol the director
answers on, how it picks a real server, and each real server with its health check.

Frozen values like model.py's; config/toml_virtual.py builds them and checks everything a
user can get wrong. The names follow LVS (`ipvsadm`): scheduler, forward (nat is LVS's
masq, dr its gate), persistence; and keepalived (quorum, sorry_server).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal, Union

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

Scheduler = Literal["rr", "wrr", "lc", "wlc", "sh", "mh"]
SCHEDULERS: tuple[str, ...] = ("rr", "wrr", "lc", "wlc", "sh", "mh")
CheckType = Literal["tcp", "http", "https", "exec", "none"]
CHECK_TYPES: tuple[str, ...] = ("tcp", "http", "https", "exec", "none")
Forward = Literal["nat", "dr"]
FORWARDS: tuple[str, ...] = ("nat", "dr")
Protocol = Literal["tcp", "udp"]
MAX_WEIGHT = 65535  # ipvsadm's bound


def lc_refused(scheduler: str) -> str:
    """Why lc and wlc are refused, in the config reader's and the data plane's words."""
    return (f"{scheduler!r}: the nftables data plane has no least-connection scheduler "
            "(that needs IPVS, which this kernel lacks); use wrr, rr, sh or mh")


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: IPAddress
    port: int

    def __str__(self) -> str:
        return f"[{self.address}]:{self.port}" if self.address.version == 6 \
            else f"{self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class Check:
    """How a real server's health is checked (keepalived's HTTP_GET/SSL_GET/TCP_CHECK/
    MISC_CHECK, ldirectord's checktype/service): every `interval`, given `timeout`; `rise`
    passes in a row bring a server up, `fall` failures in a row take it down."""

    type: CheckType = "tcp"
    path: str = "/"
    expect_status: tuple[int, ...] = (200,)
    expect_body: str | None = None  # a regular expression the body must match
    digest: str | None = None  # MD5 of the body, in hex (keepalived's `digest`)
    host: str | None = None  # Host header; the real server's address when None
    port: int | None = None  # the port checked, when not the real server's own
    command: tuple[str, ...] = ()  # exec: argv; exit 0 is healthy
    interval: float = 1.0
    timeout: float = 0.5
    rise: int = 2
    fall: int = 2


@dataclass(frozen=True, slots=True)
class RealServer:
    endpoint: Endpoint
    weight: int = 1  # 0: no new connections (drained), as ipvsadm's -w 0
    check: Check = field(default_factory=Check)


@dataclass(frozen=True, slots=True)
class VirtualServer:
    """One virtual service: `endpoint` (or `fwmark`) and `protocol`, the real servers behind
    it and the `group` whose owner is the active director."""

    name: str
    group: str
    real: tuple[RealServer, ...]
    endpoint: Endpoint | None = None
    fwmark: int | None = None
    protocol: Protocol = "tcp"
    scheduler: Scheduler = "wrr"
    forward: Forward = "nat"
    persistence: float | None = None  # seconds a client stays with its real server
    persistence_netmask: int | None = None  # prefix length grouping clients; /32 or /128
    quorum: int = 1  # fewer healthy real servers than this: the sorry server answers
    sorry_server: Endpoint | None = None
    quiescent: bool = False  # a failed server: drained (True) or removed with its connections
    interface: str | None = None  # dr: where packets come in (default: the servers' link)

    @property
    def family(self) -> int:
        """4 or 6: the family of the service's address, else of its real servers."""
        if self.endpoint is not None:
            return self.endpoint.address.version
        return self.real[0].endpoint.address.version if self.real else 4

    def describe(self) -> str:
        """The service as a user names it: "192.168.10.200:80/tcp" or "fwmark 1/tcp"."""
        where = str(self.endpoint) if self.endpoint is not None else f"fwmark {self.fwmark}"
        return f"{where}/{self.protocol}"


@dataclass(frozen=True, slots=True)
class ConnSync:
    """[conntrack_sync]: conntrackd between the directors, so that NAT connections keep their
    translation through a takeover. It travels between the nodes' addresses number `link`
    (0-based here, 1-based in vigil.toml) on `port` (conntrackd's own default, 3780)."""

    link: int
    port: int = 3780
    interface: str | None = None  # conntrackd's Interface: bind the sync to this device
