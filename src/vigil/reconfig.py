"""Live reload, sans-IO: what changed between the running configuration and the new one, and
what the daemon must do about it (daemon/services/reload.py does it).

keepalived's reload re-creates every VRRP instance and so can move every address
(keepalived issues #1296, #2001); vigil applies only the difference:

  a group that did not change     is not touched: not stopped, not moved, not re-probed
  a group that was added          is probed, then follows the normal rules
  a group that was removed        is stopped here if it runs here, then forgotten
  a group whose resources changed restarts from the first changed resource (those after it
                                  depend on it, as in a failed monitor's recovery); with only
                                  monitors, home or policy changed nothing is restarted
  auto_failback, [notify]         take effect at once
  virtual servers                 the balancer's rules and checks follow at once; a server
                                  whose check did not change keeps its health

What the membership, the links, the key or the safety machinery are made of (nodes, links,
timings, fencing, witness...) cannot change under a running node without a restart: such a
reload is refused whole, naming each change, and the old configuration keeps running.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from vigil.model import Cluster, Group, Resource

# Cluster fields a reload may change; every other one needs a restart.
LIVE = frozenset({"groups", "auto_failback", "notify", "source", "virtual_servers"})


@dataclass(frozen=True, slots=True)
class Change:
    old: Group
    group: Group  # the new definition
    index: int  # stop old.resources[index:], start group.resources[index:]
    monitors: bool  # monitors of resources kept running changed (the log says so)

    @property
    def restarts(self) -> bool:
        return self.index < max(len(self.old.resources), len(self.group.resources))


@dataclass
class Plan:
    added: list[Group] = field(default_factory=list)
    removed: list[Group] = field(default_factory=list)  # the old definitions
    changed: list[Change] = field(default_factory=list)
    settings: list[str] = field(default_factory=list)  # "auto_failback: true -> false"
    refused: list[str] = field(default_factory=list)  # changes that need a restart

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.settings)

    def lines(self) -> list[str]:
        """The difference, one line per change, for the log and the operator."""
        out = [f"+ group {g.name} (home {g.home}, {len(g.resources)} resources)"
               for g in self.added]
        out += [f"- group {g.name}" for g in self.removed]
        for c in self.changed:
            rs = c.group.resources if c.index < len(c.group.resources) else c.old.resources
            what = (f"restart from resource {c.index + 1} ({rs[c.index].name})"
                    if c.restarts else "nothing to restart")
            out.append(f"~ group {c.group.name}: {what}"
                       + ("; monitors renewed" if c.monitors else ""))
        out += [f"~ {s}" for s in self.settings]
        return out


def _bare(r: Resource) -> Resource:
    """A resource without its monitor: changing how it is checked does not restart it."""
    return dataclasses.replace(r, monitor=None)


def first_difference(old: tuple[Resource, ...], new: tuple[Resource, ...]) -> int:
    """The first position where the resources differ (monitors aside); len() if none."""
    for i, (a, b) in enumerate(zip(old, new)):
        if _bare(a) != _bare(b):
            return i
    return min(len(old), len(new))


def plan(old: Cluster, new: Cluster) -> Plan:
    p = Plan()
    for f in dataclasses.fields(Cluster):
        if f.name in LIVE:
            continue
        a, b = getattr(old, f.name), getattr(new, f.name)
        if a == b:
            continue
        if dataclasses.is_dataclass(a) and type(a) is type(b):  # name the fields that differ
            p.refused += [f"{f.name}.{x.name}: {_short(getattr(a, x.name))} -> "
                          f"{_short(getattr(b, x.name))}" for x in dataclasses.fields(a)
                          if getattr(a, x.name) != getattr(b, x.name)]
        else:
            p.refused.append(f"{f.name}: {_short(a)} -> {_short(b)}")
    if old.auto_failback != new.auto_failback:
        p.settings.append(f"auto_failback: {str(old.auto_failback).lower()} -> "
                          f"{str(new.auto_failback).lower()}")
    if old.notify != new.notify:
        p.settings.append("[notify] hooks")
    was = {vs.name: vs for vs in old.virtual_servers}
    now = {vs.name: vs for vs in new.virtual_servers}
    p.settings += [f"virtual server {n}: {what}" for n, what in
                   [(n, "added") for n in now if n not in was]
                   + [(n, "removed") for n in was if n not in now]
                   + [(n, "changed") for n in now if n in was and was[n] != now[n]]]
    before = {g.name: g for g in old.groups}
    after = {g.name: g for g in new.groups}
    p.added = [g for g in new.groups if g.name not in before]
    p.removed = [g for g in old.groups if g.name not in after]
    for g in new.groups:
        o = before.get(g.name)
        if o is None or o == g:
            continue
        i = first_difference(o.resources, g.resources)
        monitors = [r.monitor for r in o.resources[:i]] != [r.monitor for r in g.resources[:i]]
        p.changed.append(Change(o, g, i, monitors))
    return p


def _short(v: object) -> str:
    text = str(v) if isinstance(v, (Path, float, int, str)) else repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
