"""Heartbeat's configuration directory (/etc/ha.d: ha.cf, haresources, authkeys) -> model.Cluster.

`load_dir` reads the three files as Heartbeat 3.0 does and maps every directive onto the model.
Each problem is a ConfigProblem (file, line, directive, what to write instead); all of them are
raised as one ConfigError. What is accepted with another meaning, or with none, comes back as a
warning to log at every start; `read_dir` also gives notes per directive, which
config/export.py turns into the comments of the equivalent vigil.toml.

Syntax, as Heartbeat reads it. ha.cf: `#` starts a comment anywhere; a directive, then values
separated by blanks or commas (`node a b` is two nodes); no ':' after a directive (Heartbeat
refuses `keepalive: 2` too). Times are seconds (`2`, `0.5`) or carry ms or us. haresources: one
group per logical line (`\\` continues it): `NODE RESOURCE...`. authkeys: `auth N`, then
`N crc`, `N md5 KEY` or `N sha1 KEY`; `#` comments out whole lines only.

ha.cf directives (Heartbeat 3.0.6's list, kept in config/ha_cf.py; any other word is an error
naming it):

| directive | in vigil |
|---|---|
| node NAME... | exactly two nodes; names as written (haresources matches them ignoring case) |
| cluster NAME | cluster.name (default "heartbeat") |
| keepalive, deadtime, | timings. Absent: Heartbeat's defaults (1s, 30s, deadtime/2, its initdead |
|   warntime, initdead |   rule), not vigil's much shorter ones. vigil's invariants are checked. |
| udpport | port (694); above the bcast/ucast lines, where Heartbeat read it |
| bcast IFACE... (udp) | a bcast link per interface (`udp`: Heartbeat's old name, warning) |
| mcast(6) IF GRP PORT TTL LOOP | an mcast link; PORT must be udpport (one port); LOOP 1: none |
| ucast IFACE ADDR | UcastLink: per interface, every address listed (a node skips its own) |
| serial DEV..., baud | a serial link per device, at the baud given above it (as in Heartbeat) |
| ping ADDR..., deadping | ping nodes (IPv4), pinged every keepalive; deadping default: deadtime |
| ping_group NAME ADDR... | its addresses become ping nodes; warning: Heartbeat counted one node |
| auto_failback on/off/legacy | auto_failback; legacy (Heartbeat's default if absent) = on, warns |
| nice_failback on/off | obsolete: on = auto_failback off, off = legacy, warning; conflict: error |
| respawn USER PROG ARGS | Respawn, run without a shell. ipfail: dropped, vigil does its job, |
|   | warning. Heartbeat's own daemons (ccm, cib, crmd, pingd, dopd...), shell syntax: error |
| logfile PATH, watchdog DEV | log_file, watchdog (timeout 2 x deadtime: noted) |
| realtime on/off | realtime |
| apiauth, debugfile, logfacility, use_logd, conn_logd_time, debug, rtprio, hopfudge, msgfmt, |
|   uuidfrom, hbgenmethod, max_rexmit_delay, log_badpack, compression, compression_threshold, |
|   traditional_compression, coredumps, coreroot, memreserve, normalpoll, record_config_changes, |
|   record_pengine_inputs, enable_config_writes: values checked, no effect, warning (_NO_EFFECT) |
| crm/pacemaker, autojoin, | off/none accepted; else error: vigil is the resource manager, runs |
|   use_apphbd |   the two named nodes, has no apphbd |
| stonith, stonith_host, quorum_server, env, hbaping, ping6 | error naming the way out (_REFUSED) |

haresources: `IPaddr::ip/prefix/iface/broadcast`, `IPaddr2::...` and a bare address are vigil
ip resources. A prefix length and an interface not written are found on the node at start,
as IPaddr did: from the connected route that contains the address (no such route: the
group does not start here, and the error says so). An `eth0:0` interface is a label; a
broadcast address is given to the address as written.
`Filesystem::dev::dir::fstype[::options]` is the built-in filesystem resource (a device given as
LABEL=, UUID= or host:/path: resource-agents' ocf:heartbeat:Filesystem, warning). Anything else,
`drbddisk::r0`, `httpd`, `ipvsadm`, is a Heartbeat resource script (the directory's own
resource.d when it has one, /etc/ha.d/resource.d, then /etc/init.d), except ldirectord:
`ldirectord[::FILE]` is read as ldirectord reads FILE (config/heartbeat_lvs.py), its virtual
services the group's virtual servers, balanced by vigil. A group is named after its first resource, as Heartbeat names it:
the address, `fs-MOUNTPOINT`, or the script and its arguments; its home is NODE.

authkeys must be mode 0600 (refused otherwise, as Heartbeat refuses a readable one). The key
text of the `auth` index is the HMAC key. crc (no key, no security) needs `allow_crc` and is
then warned about at every start; its key is empty, which anyone can compute, as a CRC.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vigil import model
from vigil.balancer import model as lb
from vigil.config.authkeys import read_key
from vigil.config.ha_cf import HaCf
from vigil.config.haresources import read_haresources
from vigil.config.heartbeat_lvs import take_ldirectord
from vigil.config.heartbeat_report import Report, read_lines
from vigil.errors import ConfigError

__all__ = ["Imported", "load_dir", "read_authkeys", "read_dir"]


@dataclasses.dataclass(frozen=True, slots=True)
class Imported:
    """A Heartbeat directory read: the model, the warnings to log at every start, and notes
    (directive -> what changed) for the comments of an exported vigil.toml."""

    cluster: model.Cluster
    warnings: tuple[str, ...]
    notes: tuple[tuple[str, str], ...]


def load_dir(path: Path, allow_crc: bool = False) -> tuple[model.Cluster, list[str]]:
    """The cluster described by the Heartbeat directory `path`, and the warnings to log."""
    imported = read_dir(path, allow_crc)
    return imported.cluster, list(imported.warnings)


def read_dir(path: Path, allow_crc: bool = False) -> Imported:
    """`load_dir`, with the notes for export.to_toml as well."""
    path = Path(path)
    r = Report()
    hacf = HaCf(str(path / "ha.cf"), r)
    lines = read_lines(path / "ha.cf", r)
    cluster = None if lines is None else hacf.parse(lines, str(path), path / "authkeys",
                                                    allow_crc)
    groups = read_haresources(path / "haresources", cluster, r)
    key = read_key(path / "authkeys", allow_crc, r)
    services: tuple[lb.VirtualServer, ...] = ()
    if groups is not None:
        groups, services = take_ldirectord(groups, path, r)
    if r.problems or cluster is None or groups is None or key is None:
        order = {str(path / f): n for n, f in enumerate(("ha.cf", "haresources", "authkeys"))}
        raise ConfigError(sorted(r.problems, key=lambda p: (order.get(p.file, 3), p.line or 0)))
    own = path / "resource.d"  # the directory's own scripts first, as /etc/ha.d/resource.d
    if own.is_dir() and own not in model.HEARTBEAT_DIRECTORIES:
        groups = tuple(dataclasses.replace(g, resources=tuple(
            dataclasses.replace(x, directories=(own, *x.directories))
            if isinstance(x, model.HeartbeatResource) else x for x in g.resources))
            for g in groups)
    return Imported(dataclasses.replace(cluster, groups=groups, virtual_servers=services),
                    tuple(r.warnings),
                    tuple((k, " ".join(v)) for k, v in r.notes.items()))


def read_authkeys(path: Path, allow_crc: bool = False) -> tuple[bytes, list[str]]:
    """The HMAC key of the authkeys file at `path`, and the warnings to log at every start."""
    r = Report()
    key = read_key(Path(path), allow_crc, r)
    if r.problems or key is None:
        raise ConfigError(r.problems)
    return key, r.warnings
