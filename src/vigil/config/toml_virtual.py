"""[[virtual_server]] of vigil.toml: the load balancer's services (balancer/model.py), each
with its [virtual_server.check] defaults and its [[virtual_server.real]] servers, every value
checked with file, line and key. A reader beside the Checker it reports through, not one
more base class of ClusterReader.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Sequence
from typing import Any

from vigil.balancer import model as lb
from vigil.config.locate import KeyPath
from vigil.config.toml_checker import Checker, Table
from vigil.config.toml_values import (as_argv, as_bool, as_ifname, as_name, as_nonempty,
                                      as_str, as_timeout, describe, int_in)
from vigil.model import fmt_duration

_VS_KEYS = ("name", "address", "fwmark", "protocol", "scheduler", "forward", "persistence",
            "persistence_netmask", "quorum", "sorry_server", "group", "quiescent", "check",
            "interface",
            "real")
_CHECK_KEYS = ("type", "path", "expect_status", "expect_body", "digest", "host", "port",
               "command", "interval", "timeout", "rise", "fall")
_REAL_KEYS = ("address", "weight", "check")
_ENDPOINT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<v4>[0-9.]+)):(?P<port>[0-9]{1,5})$")


def as_endpoint(v: object) -> lb.Endpoint:
    """"192.168.10.200:80" or "[fd00::1]:80"; port 1-65535."""
    s = as_nonempty(v)
    m = _ENDPOINT.match(s)
    if m is None:
        raise ValueError(f"{s!r}: expected ADDRESS:PORT, such as \"192.168.10.200:80\" or "
                         "\"[fd00::1]:80\"")
    try:
        address = ipaddress.ip_address(m.group("v6") or m.group("v4"))
    except ValueError:
        raise ValueError(f"{s!r}: {m.group('v6') or m.group('v4')!r} is not an IP "
                         "address") from None
    port = int(m.group("port"))
    if not 1 <= port <= 65535:
        raise ValueError(f"{s!r}: port {port} is not 1-65535")
    return lb.Endpoint(address, port)


def _one_of(choices: Sequence[str], what: str) -> Callable[[object], str]:
    def conv(v: object) -> str:
        s = as_str(v)
        if s not in choices:
            raise ValueError(f"unknown {what} {s!r}; expected one of {', '.join(choices)}")
        return s
    return conv


def _as_statuses(v: object) -> tuple[int, ...]:
    if not isinstance(v, list) or not v:
        raise ValueError(f"expected a non-empty array of HTTP status codes, found "
                         f"{describe(v)}")
    return tuple(int_in(100, 599)(x) for x in v)


def _as_regex(v: object) -> str:
    s = as_nonempty(v)
    try:
        re.compile(s)
    except re.error as e:
        raise ValueError(f"{s!r} is not a regular expression: {e}") from None
    return s


def _as_digest(v: object) -> str:
    s = as_str(v).lower()
    if not re.fullmatch(r"[0-9a-f]{32}", s):
        raise ValueError(f"{s!r}: expected an MD5 digest, 32 hexadecimal digits")
    return s


class VirtualServerReader:
    def __init__(self, checker: Checker) -> None:
        self.c = checker

    def virtual_servers(self, doc: Table,
                        groups: Sequence[str] | None) -> tuple[lb.VirtualServer, ...]:
        c = self.c
        out: list[lb.VirtualServer] = []
        names: set[str] = set()
        services: dict[tuple[object, ...], str] = {}
        for p, t in c.tables(doc, "virtual_server", "[[virtual_server]]"):
            c.unknown(t, p, _VS_KEYS, "[[virtual_server]]")
            name = c.field(t, p, "name", as_name, required=True)
            if name is not None and name in names:
                c.report((*p, "name"), f"virtual server {name!r} is defined twice")
            names.add(name or "")
            group = c.field(t, p, "group", as_name, required=True)
            if group is not None and groups is not None and group not in groups:
                c.report((*p, "group"), f"{group!r} is not a group; groups: "
                                        f"{', '.join(groups) or '(none)'}")
            endpoint = c.field(t, p, "address", as_endpoint)
            fwmark = c.field(t, p, "fwmark", int_in(1, 0xFFFFFFFF))
            if (endpoint is None) == (fwmark is None) and ("address" in t) == ("fwmark" in t):
                c.report(p, "a virtual server needs either address or fwmark (one of them)")
            protocol = c.field(t, p, "protocol", _one_of(("tcp", "udp"), "protocol")) or "tcp"
            key = (endpoint, protocol) if endpoint is not None else ("fwmark", fwmark)
            if (endpoint or fwmark) is not None:
                if key in services:
                    c.report((*p, "address" if endpoint else "fwmark"),
                             f"the same service as virtual server {services[key]!r}")
                services[key] = name or "?"
            scheduler = c.field(t, p, "scheduler", _one_of(lb.SCHEDULERS, "scheduler")) or "wrr"
            if scheduler in ("lc", "wlc"):
                c.report((*p, "scheduler"), lb.lc_refused(scheduler))
            forward = c.field(t, p, "forward", _one_of(lb.FORWARDS, "forward")) or "nat"
            if forward == "dr" and fwmark is not None:
                c.report((*p, "fwmark"), "direct routing matches an address and port where "
                                         "packets come in, before any mark is set; give "
                                         "address instead (or forward = \"nat\")")
            interface = c.field(t, p, "interface", as_ifname)
            if interface is not None and forward != "dr":
                c.report((*p, "interface"), "is where direct routing's packets come in; it "
                                            "means nothing with forward = \"nat\"")
            persistence = c.field(t, p, "persistence", as_timeout)
            family = endpoint.address.version if endpoint is not None else 4
            netmask = c.field(t, p, "persistence_netmask",
                              int_in(0, 32 if family == 4 else 128))
            if netmask is not None and persistence is None:
                c.report((*p, "persistence_netmask"), "means nothing without persistence")
            quorum = c.field(t, p, "quorum", int_in(1, 65535)) or 1
            sorry = c.field(t, p, "sorry_server", as_endpoint)
            if forward == "dr" and sorry is not None and endpoint is not None \
                    and sorry.port != endpoint.port:
                c.report((*p, "sorry_server"), f"{sorry}: direct routing cannot change the "
                                               f"port; the sorry server must answer on "
                                               f"{endpoint.port}")
            quiescent = c.field(t, p, "quiescent", as_bool) or False
            defaults = self.check(t, (*p, "check"), lb.Check())
            real = self.reals(t, p, defaults, endpoint, family, forward == "dr")
            if "real" not in t:
                c.report((*p, "real"), "a virtual server needs at least one "
                                       "[[virtual_server.real]]")
            if real and quorum > len(real):
                c.report((*p, "quorum"), f"{quorum} is more than its {len(real)} real servers")
            if name is None or group is None or (endpoint is None and fwmark is None):
                continue
            out.append(lb.VirtualServer(
                name=name, group=group, real=tuple(real), endpoint=endpoint, fwmark=fwmark,
                protocol=protocol, scheduler=scheduler, forward=forward,  # type: ignore[arg-type]
                persistence=persistence, persistence_netmask=netmask, quorum=quorum,
                sorry_server=sorry, quiescent=quiescent, interface=interface))
        return tuple(out)

    def reals(self, t: Table, p: KeyPath, defaults: lb.Check, vip: lb.Endpoint | None,
              family: int, dr: bool) -> list[lb.RealServer]:
        c = self.c
        out: list[lb.RealServer] = []
        seen: set[lb.Endpoint] = set()
        for rp, rt in c.tables(t, "real", "[[virtual_server.real]]"):
            rp = (*p, *rp)
            c.unknown(rt, rp, _REAL_KEYS, "[[virtual_server.real]]")
            endpoint = c.field(rt, rp, "address", as_endpoint, required=True)
            weight = c.field(rt, rp, "weight", int_in(0, lb.MAX_WEIGHT))
            check = self.check(rt, (*rp, "check"), defaults)
            if endpoint is None:
                continue
            if vip is not None and endpoint.address == vip.address:
                c.report((*rp, "address"), f"{endpoint} is the virtual server's own address")
            elif endpoint.address.version != family:
                c.report((*rp, "address"), f"{endpoint} is IPv{endpoint.address.version}, "
                                           f"the virtual server IPv{family}")
            elif endpoint in seen:
                c.report((*rp, "address"), f"{endpoint} is listed twice")
            elif dr and vip is not None and endpoint.port != vip.port:
                c.report((*rp, "address"), f"{endpoint}: direct routing cannot change the "
                                           f"port; the real server answers on {vip.port}, "
                                           "the virtual server's")
            seen.add(endpoint)
            out.append(lb.RealServer(endpoint, 1 if weight is None else weight, check))
        return out

    def check(self, parent: Table, p: KeyPath, base: lb.Check) -> lb.Check:
        c = self.c
        t = c.optional_table(parent, p, _CHECK_KEYS, "[virtual_server.check]")
        if t is None:
            return base
        v: dict[str, Any] = {
            "type": c.field(t, p, "type", _one_of(lb.CHECK_TYPES, "check type")),
            "path": c.field(t, p, "path", as_nonempty),
            "expect_status": c.field(t, p, "expect_status", _as_statuses),
            "expect_body": c.field(t, p, "expect_body", _as_regex),
            "digest": c.field(t, p, "digest", _as_digest),
            "host": c.field(t, p, "host", as_nonempty),
            "port": c.field(t, p, "port", int_in(1, 65535)),
            "command": c.field(t, p, "command", as_argv),
            "interval": c.field(t, p, "interval", as_timeout),
            "timeout": c.field(t, p, "timeout", as_timeout),
            "rise": c.field(t, p, "rise", int_in(1, 100)),
            "fall": c.field(t, p, "fall", int_in(1, 100)),
        }
        check = dataclasses.replace(base, **{k: x for k, x in v.items() if x is not None})
        if check.type == "exec" and not check.command:
            c.report((*p, "command"), "an exec check needs its command")
        if check.type != "exec" and "command" in t:
            c.report((*p, "command"), f"only an exec check runs a command, not {check.type!r}")
        if check.timeout > check.interval:
            c.report((*p, "timeout"), f"{fmt_duration(check.timeout)} is longer than the "
                                      f"interval {fmt_duration(check.interval)}")
        return check


