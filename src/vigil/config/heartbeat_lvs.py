"""`ldirectord::FILE` in haresources, read as ldirectord would read FILE: its virtual
services become vigil's virtual servers in that group, and ldirectord is not run.

Heartbeat started ldirectord as one of the group's resources (seed 003: `IPaddr::VIP
ldirectord httpd`), so that it ran where the floating address was; ldirectord then checked
the real servers and wrote IPVS's table. vigil's balancer does both itself, on nftables, in
the group's start and stop order (its rules before the addresses, removed after them), and
checks the real servers on both directors. So the resource is taken out of the group and its
file read here by config/ldirectord.py: FILE as written (`ldirectord` alone: ldirectord.cf),
relative to the Heartbeat directory, as ldirectord resolves a relative name against
/etc/ha.d. What the import notes is logged at every start, what it drops too; a problem in
the file is a problem of the directory, with the file's own name and line.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vigil import model
from vigil.balancer import model as lb
from vigil.config import ldirectord
from vigil.config.heartbeat_report import Report
from vigil.errors import ConfigError

DEFAULT_FILE = "ldirectord.cf"


def is_ldirectord(resource: model.Resource) -> bool:
    return isinstance(resource, model.HeartbeatResource) and resource.script == "ldirectord"


def config_file(directory: Path, resource: model.HeartbeatResource) -> Path:
    """The file ldirectord would read: its argument, relative to the Heartbeat directory."""
    return directory / (resource.args[0] if resource.args else DEFAULT_FILE)


def take_ldirectord(groups: tuple[model.Group, ...], directory: Path, r: Report,
                    ) -> tuple[tuple[model.Group, ...], tuple[lb.VirtualServer, ...]]:
    """`groups` without their ldirectord resources, and the virtual servers those files
    describe, each in the group that named it. Problems and warnings go to `r`."""
    out_groups: list[model.Group] = []
    services: list[lb.VirtualServer] = []
    seen: dict[str, Path] = {}  # virtual server name -> the file it came from
    for g in groups:
        mine = [x for x in g.resources if is_ldirectord(x)]
        if not mine:
            out_groups.append(g)
            continue
        for res in mine:
            assert isinstance(res, model.HeartbeatResource)
            path = config_file(directory, res)
            if len(res.args) > 1:
                r.error(str(directory / "haresources"), None, res.name.removeprefix(
                    "heartbeat:"), "ldirectord takes one argument, its configuration file")
                continue
            try:
                imported = ldirectord.import_file(path, group=g.name)
            except ConfigError as e:
                r.problems.extend(e.problems)
                continue
            for vs in imported.services:
                if vs.name in seen:
                    r.error(str(path), None, "virtual", f"{vs.describe()} is also in "
                            f"{seen[vs.name]}: one virtual service, one file")
                    continue
                seen[vs.name] = path
                services.append(vs)
                for text in imported.notes.get(vs.name, []):
                    r.warnings.append(f"{path}: virtual service {vs.describe()}: {text}")
                    r.note(f"virtual_server:{vs.name}", text)
            for d in imported.dropped:
                r.warnings.append(f"not carried over: {d}")
        rest = tuple(x for x in g.resources if not is_ldirectord(x))
        if not rest:
            r.error(str(directory / "haresources"), None, g.name,
                    "a group of ldirectord alone: vigil's balancer directs where the group "
                    "holds its floating address; add it to the line (IPaddr::VIP)")
        out_groups.append(dataclasses.replace(g, resources=rest))
    return tuple(out_groups), tuple(services)
