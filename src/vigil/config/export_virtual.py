"""balancer.model.VirtualServer -> [[virtual_server]] tables of vigil.toml, every value that
differs from what config/toml_virtual.py would default to, so that the text parses back to
equal values. A real server's [virtual_server.real.check] holds only what differs from its
service's [virtual_server.check]. The importers' notes (`notes["virtual_server:NAME"]`, one
text per line) go above the service they explain.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from vigil.balancer import model as lb
from vigil.config.toml_write import Writer, bool_, dur, list_, str_


def write_virtual_servers(w: Writer, services: Sequence[lb.VirtualServer],
                          notes: Mapping[str, str] | None = None) -> None:
    notes = notes or {}
    for vs in services:
        note = notes.get(f"virtual_server:{vs.name}")
        if note:
            w.blank()
            for line in note.splitlines():
                w.comment(line, indent="  ")
        w.table("[[virtual_server]]", _service(vs))
        base = _common_check(vs)
        if base != lb.Check():
            w.table("[virtual_server.check]", _check(base, lb.Check()))
        for r in vs.real:
            w.table("[[virtual_server.real]]", [("address", str_(str(r.endpoint)))]
                    + ([("weight", str(r.weight))] if r.weight != 1 else []))
            if r.check != base:
                w.table("[virtual_server.real.check]", _check(r.check, base))


def _service(vs: lb.VirtualServer) -> list[tuple[str, str]]:
    d = lb.VirtualServer("", "", ())
    out = [("name", str_(vs.name))]
    out += [("address", str_(str(vs.endpoint)))] if vs.endpoint is not None else []
    out += [("fwmark", str(vs.fwmark))] if vs.fwmark is not None else []
    for key in ("protocol", "scheduler", "forward"):
        if getattr(vs, key) != getattr(d, key):
            out.append((key, str_(getattr(vs, key))))
    if vs.persistence is not None:
        out.append(("persistence", dur(vs.persistence)))
    if vs.persistence_netmask is not None:
        out.append(("persistence_netmask", str(vs.persistence_netmask)))
    if vs.quorum != d.quorum:
        out.append(("quorum", str(vs.quorum)))
    if vs.sorry_server is not None:
        out.append(("sorry_server", str_(str(vs.sorry_server))))
    if vs.quiescent:
        out.append(("quiescent", bool_(True)))
    if vs.interface is not None:
        out.append(("interface", str_(vs.interface)))
    out.append(("group", str_(vs.group)))
    return out


def _common_check(vs: lb.VirtualServer) -> lb.Check:
    """The check most of the service's real servers share: its [virtual_server.check]."""
    checks = [r.check for r in vs.real]
    base = max(checks, key=checks.count) if checks else lb.Check()
    # TOML has no null: a server without a value its service's check has cannot say so.
    if any(getattr(c, f.name) is None and getattr(base, f.name) is not None
           for c in checks for f in dataclasses.fields(lb.Check)):
        return lb.Check()
    return base


def _check(c: lb.Check, base: lb.Check) -> Iterable[tuple[str, str]]:
    for f in dataclasses.fields(lb.Check):
        v = getattr(c, f.name)
        if v == getattr(base, f.name):
            continue
        if f.name in ("interval", "timeout"):
            yield f.name, dur(v)
        elif f.name in ("rise", "fall", "port"):
            yield f.name, str(v)
        elif f.name == "expect_status":
            yield f.name, list_(str(x) for x in v)
        elif f.name == "command":
            yield f.name, list_(str_(x) for x in v)
        else:
            yield f.name, str_(v)
