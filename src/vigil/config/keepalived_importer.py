"""What the importer of keepalived.conf collects, and how it reads one value: the records of
the vrrp_instances, vrrp_scripts, virtual addresses and groups found, and `Importer`, which
holds them with every problem (a ConfigError at the end) and every block or keyword not
carried over, and reads a keyword's value (a number, an integer, an address, an interface
name) or its block. The readers of the blocks (keepalived_blocks.py, keepalived_instances.py)
extend it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from vigil import model
from vigil.config.keepalived_syntax import Statement
from vigil.config.names import is_ifname
from vigil.errors import ConfigProblem

_NUMBER = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")
_INTEGER = re.compile(r"-?[0-9]{1,9}")
LVS = ("IPVS's connection sync daemon: vigil balances with nftables, whose connections "
       "conntrackd would synchronise; that is not built yet (docs/balancer.md)")
# keepalived's gratuitous ARP settings (in global_defs with a vrrp_ prefix) -> vigil's ip keys
GARP = {"garp_master_delay": "arp_repeat_delay", "garp_master_repeat": "arp_count",
        "garp_master_refresh": "arp_refresh", "garp_interval": "arp_interval"}


@dataclass(slots=True)
class Vip:
    address: model.IPInterface
    interface: str
    label: str | None
    comments: list[str]
    where: Statement


@dataclass(slots=True)
class Script:
    name: str
    argv: tuple[str, ...]
    interval: float
    timeout: float
    weight: int
    reverse: bool
    fall: int
    comments: list[str]


@dataclass(slots=True)
class Instance:
    name: str
    where: Statement
    master: bool = False
    priority: int = 100
    advert: float = 1.0
    interface: str | None = None
    nopreempt: bool = False
    preempt_delay: float | None = None
    src: model.IPAddress | None = None
    peer: model.IPAddress | None = None
    vrid: int | None = None
    vips: list[Vip] = field(default_factory=list)
    checks: list[tuple[Script, str]] = field(default_factory=list)  # (script, how it maps)
    comments: list[str] = field(default_factory=list)
    arp: dict[str, float] = field(default_factory=dict)  # TOML arp_* key -> value


@dataclass(slots=True)
class InstanceGroup:
    name: str
    members: list[Instance]
    where: Statement
    extra: Instance | None = None  # a sync group's own track_script and notify_*


class Importer:
    """Walks the statements, collecting every problem (ConfigError at the end) and every
    block or keyword it does not carry over."""

    def __init__(self, source: str, notes: list[tuple[str, int, str, str]]) -> None:
        self.source = source
        self.problems: list[ConfigProblem] = []
        self.dropped = list(notes)  # (file, line, what, why)
        self.scripts: dict[str, tuple[Script, Statement]] = {}
        self.script_names: set[str] = set()  # also those refused
        self.used_scripts: set[str] = set()
        self.garp: dict[str, float] = {}

    def report(self, s: Statement, key: str, message: str) -> None:
        self.problems.append(ConfigProblem(s.file, s.line, key, message))

    def drop(self, s: Statement, what: str, why: str) -> None:
        self.dropped.append((s.file, s.line, what, why))

    def sorted_dropped(self) -> list[tuple[str, int, str, str]]:
        """What was not carried over, in file order (the main file first)."""
        return sorted(self.dropped, key=lambda d: (d[0] != self.source, d[0], d[1]))

    def value(self, s: Statement, where: str) -> str | None:
        if s.block is not None or len(s.args) != 1:
            self.report(s, f"{where}.{s.keyword}", "expects one value" + (
                ", not a { } block" if s.block is not None else f", found {len(s.args)}"))
            return None
        return s.args[0]

    def block(self, s: Statement, where: str) -> tuple[Statement, ...]:
        if s.block is None:
            self.report(s, f"{where}.{s.keyword}", "expects a { } block")
            return ()
        return s.block

    def number(self, s: Statement, where: str, lo: float, hi: float) -> float | None:
        v = self.value(s, where)
        if v is None:
            return None
        if not _NUMBER.fullmatch(v) or not lo <= float(v) <= hi:
            self.report(s, f"{where}.{s.keyword}", f"{v[:40]!r} is not a number of seconds "
                                                   f"from {lo:g} to {hi:g}")
            return None
        return float(v)

    def integer(self, s: Statement, where: str, lo: int, hi: int, v: str | None = None) -> int | None:
        v = self.value(s, where) if v is None else v
        if v is None:
            return None
        if not _INTEGER.fullmatch(v) or not lo <= int(v) <= hi:
            self.report(s, f"{where}.{s.keyword}", f"{v[:40]!r} is not an integer from "
                                                   f"{lo} to {hi}")
            return None
        return int(v)

    def address(self, s: Statement, key: str, v: str) -> model.IPAddress | None:
        try:
            a = ipaddress.ip_address(v)
        except ValueError:
            self.report(s, key, f"{v[:60]!r} is not an IPv4 or IPv6 address")
            return None
        if a.is_multicast or a.is_unspecified or a.is_loopback:
            self.report(s, key, f"{a} is not a unicast address")
            return None
        return a

    def ifname(self, s: Statement, key: str, v: str) -> str | None:
        if not is_ifname(v):
            self.report(s, key, f"{v[:60]!r} is not a Linux interface name (at most 15 "
                                "characters, no '/', ':' or spaces)")
            return None
        return v

    def arp_setting(self, d: Statement, where: str, key: str, into: dict[str, float]) -> None:
        if key == "arp_count":
            n = self.integer(d, where, 0, 100)
            if n is not None:
                into[key] = n  # both bursts: keepalived repeats each burst the same
        else:
            v = self.number(d, where, 0, 86400)
            if v is not None:
                into[key] = v
