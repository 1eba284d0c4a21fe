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

ha.cf directives (Heartbeat 3.0.6's list; any other word is an error naming it):

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
`drbddisk::r0`, `httpd`, `ipvsadm`, `ldirectord::ldirectord.cf`, is a Heartbeat resource script
(the directory's own resource.d when it has one, /etc/ha.d/resource.d, then /etc/init.d). A group is named after its first resource, as Heartbeat names it:
the address, `fs-MOUNTPOINT`, or the script and its arguments; its home is NODE.

authkeys must be mode 0600 (refused otherwise, as Heartbeat refuses a readable one). The key
text of the `auth` index is the HMAC key. crc (no key, no security) needs `allow_crc` and is
then warned about at every start; its key is empty, which anyone can compute, as a CRC.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from vigil import model
from vigil.config.files import MAX_CONFIG_FILE, MAX_KEY_FILE, FileRefused, read_file
from vigil.errors import ConfigError, ConfigProblem

__all__ = ["Imported", "load_dir", "read_authkeys", "read_dir"]

HEARTBEAT_PORT = 694
_V = TypeVar("_V")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_SCRIPT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]*")
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?")
_TIME = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ms|msec|us|usec)?", re.IGNORECASE)
_SHELL = set("|&;<>()$`\\\"'*?[]{}~")
_MAX_MS = 7 * 86400 * 1000  # longer is a typo (and keeps model.fmt_duration finite)
_FACILITIES = ("auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news",
               "syslog", "user", "uucp", "none", *(f"local{n}" for n in range(8)))
# Programs that talk to Heartbeat's client API or are its CRM: without Heartbeat they cannot
# work, and a CRM would fight vigil for the resources.
_HEARTBEAT_DAEMONS = {"ccm", "cib", "crmd", "lrmd", "stonithd", "attrd", "pengine", "mgmtd",
                      "pingd", "dopd", "hbagent", "tengine"}
_HEARTBEAT_LIBS = ("/usr/lib/heartbeat/", "/usr/lib64/heartbeat/", "/usr/libexec/heartbeat/")


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
    r = _Report()
    hacf = _HaCf(str(path / "ha.cf"), r)
    lines = _read(path / "ha.cf", r)
    cluster = None if lines is None else hacf.parse(lines, str(path), path / "authkeys",
                                                    allow_crc)
    groups = _haresources(path / "haresources", cluster, r)
    key = _authkeys(path / "authkeys", allow_crc, r)
    if r.problems or cluster is None or groups is None or key is None:
        order = {str(path / f): n for n, f in enumerate(("ha.cf", "haresources", "authkeys"))}
        raise ConfigError(sorted(r.problems, key=lambda p: (order.get(p.file, 3), p.line or 0)))
    own = path / "resource.d"  # the directory's own scripts first, as /etc/ha.d/resource.d
    if own.is_dir() and own not in model.HEARTBEAT_DIRECTORIES:
        groups = tuple(dataclasses.replace(g, resources=tuple(
            dataclasses.replace(x, directories=(own, *x.directories))
            if isinstance(x, model.HeartbeatResource) else x for x in g.resources))
            for g in groups)
    return Imported(dataclasses.replace(cluster, groups=groups), tuple(r.warnings),
                    tuple((k, " ".join(v)) for k, v in r.notes.items()))


def read_authkeys(path: Path, allow_crc: bool = False) -> tuple[bytes, list[str]]:
    """The HMAC key of the authkeys file at `path`, and the warnings to log at every start."""
    r = _Report()
    key = _authkeys(Path(path), allow_crc, r)
    if r.problems or key is None:
        raise ConfigError(r.problems)
    return key, r.warnings


# --- reporting, reading, values -------------------------------------------------------------


@dataclasses.dataclass
class _Report:
    problems: list[ConfigProblem] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    notes: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def error(self, file: str, line: int | None, key: str, message: str) -> None:
        self.problems.append(ConfigProblem(file, line, key, message))

    def warn(self, file: str, line: int | None, key: str, message: str) -> None:
        self.warnings.append(str(ConfigProblem(file, line, key, message)))
        self.note(key, message)

    def note(self, key: str, text: str) -> None:
        if text not in self.notes.setdefault(key, []):
            self.notes[key].append(text)


def _read(path: Path, r: _Report) -> list[str] | None:
    """The lines of `path` (files.read_file: a regular file of at most MAX_CONFIG_FILE bytes,
    a byte-order mark dropped). Bytes that are not UTF-8 survive as surrogates, so that comments
    in any encoding (the seeds' guides are Chinese) pass; `_bad_text` refuses them elsewhere."""
    try:
        data = read_file(path, MAX_CONFIG_FILE, "a configuration file").data
    except FileRefused as e:
        r.error(str(path), None, "<file>", e.reason)
        return None
    return [line.decode("utf-8", "surrogateescape").rstrip("\r") for line in data.split(b"\n")]


def _bad_text(text: str) -> str | None:
    if "\0" in text:
        return "the line contains a NUL character"
    if any("\udc80" <= c <= "\udcff" for c in text):
        return "the line is not UTF-8 text"
    return None


def _ms(value: str) -> int:
    """Heartbeat's get_msec: seconds, or a number with ms/msec/us/usec, rounded to 1 ms."""
    m = _TIME.fullmatch(value)
    if m is None:
        raise ValueError(f"{value!r} is not a time: write seconds (2, 0.5) or milliseconds "
                         f"(500ms), as Heartbeat reads them")
    unit = (m.group(2) or "s").lower()
    ms = int(float(m.group(1)) * {"s": 1000.0, "m": 1.0, "u": 0.001}[unit[0]] + 0.5)
    if not 0 < ms <= _MAX_MS:
        raise ValueError(f"{value!r} must lie between 1ms and 168h")
    return ms


def _bool(value: str) -> bool:
    if value.lower() in ("true", "on", "yes", "y", "1"):
        return True
    if value.lower() in ("false", "off", "no", "n", "0"):
        return False
    raise ValueError(f"{value!r} is not a boolean: write on or off")


def _int(lo: int, hi: int) -> Callable[[str], int]:
    def conv(value: str) -> int:
        if not (value.isascii() and value.isdigit()) or not lo <= int(value) <= hi:
            raise ValueError(f"{value!r} is not a whole number from {lo} to {hi}")
        return int(value)
    return conv


def _choice(*options: str) -> Callable[[str], str]:
    def conv(value: str) -> str:
        if value not in options:
            raise ValueError(f"{value!r} is not one of {', '.join(options)}")
        return value
    return conv


def _abspath(value: str) -> Path:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} is not an absolute path")
    return Path(value)


def _ifname(value: str) -> str:
    if not value or len(value) > 15 or value in (".", "..") or any(c in "/:" for c in value):
        raise ValueError(f"{value!r} is not a Linux interface name (at most 15 characters, "
                         "no '/' or ':')")
    return value


def _address(value: str) -> model.IPAddress:
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address; vigil takes addresses, not host "
                         "names (a DNS outage must not stop a cluster from starting)") from None
    if addr.is_multicast or addr.is_unspecified:
        raise ValueError(f"{value} is not a unicast address")
    return addr


def _ping_address(value: str) -> model.IPAddress:
    addr = _address(value)
    if addr.version != 4:
        raise ValueError(f"{value}: vigil's ping nodes are IPv4 for now")
    return addr


def _group(version: int) -> Callable[[str], model.IPAddress]:
    def conv(value: str) -> model.IPAddress:
        try:
            addr = ipaddress.ip_address(value)
        except ValueError:
            addr = None
        if addr is None or not addr.is_multicast or addr.version != version:
            raise ValueError(f"{value!r} is not an IPv{version} multicast address")
        return addr
    return conv


def _name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid vigil name: 1-63 characters of letters, "
                         "digits, '_', '.' and '-', starting with a letter or digit")
    return value


def _baud(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) not in model.SERIAL_BAUDS:
        raise ValueError(f"{value!r} is not one of {', '.join(map(str, model.SERIAL_BAUDS))}")
    return int(value)


def _checked(conv: Callable[[str], _V], value: str, errors: list[str]) -> _V | None:
    try:
        return conv(value)
    except ValueError as e:
        errors.append(str(e))
        return None


# --- ha.cf directives -------------------------------------------------------------------------

_NO_CRM = "a CRM option; vigil has no CRM"
# Accepted without effect: a check of the value (Heartbeat refused bad values too) and why.
_NO_EFFECT: dict[str, tuple[Callable[[str], object], str]] = {
    "debugfile": (_abspath, ("vigil writes debug messages where it logs (stderr or the "
                             "journal, and log_file) when started with --debug")),
    "logfacility": (_choice(*_FACILITIES), ("vigil logs to stderr (the journal under "
                                            "systemd, which can forward to syslog) and to "
                                            "log_file")),
    "use_logd": (_bool, "vigil has no logging daemon: it logs to stderr and log_file"),
    "conn_logd_time": (_ms, "vigil has no logging daemon"),
    "debug": (_int(0, 255), "use vigil's --debug option"),
    "rtprio": (_int(1, 99), "vigil picks its own SCHED_FIFO priority (realtime on)"),
    "hopfudge": (_int(0, 255), "vigil relays no messages between nodes"),
    "msgfmt": (_choice("classic", "netstring"), "vigil has its own wire format"),
    "uuidfrom": (_choice("file", "nodename"), "vigil knows nodes by name only"),
    "hbgenmethod": (_choice("file", "time"), "vigil keeps its own boot generation"),
    "max_rexmit_delay": (_int(1, 10**6), ("vigil retransmits nothing: each heartbeat "
                                          "carries the whole state")),
    "log_badpack": (_bool, "vigil counts rejected frames in `vigil status`"),
    "compression": (_choice("zlib", "bz2"), "vigil's frames are small, never compressed"),
    "compression_threshold": (_int(1, 10**6), "vigil never compresses"),
    "traditional_compression": (_bool, "vigil never compresses"),
    "coredumps": (_bool, "vigil's core dumps follow the system's settings (ulimit, systemd)"),
    "coreroot": (_abspath, "vigil's core dumps follow the system's settings"),
    "memreserve": (_int(1, 10**7), "vigil locks all its memory with realtime on"),
    "normalpoll": (_bool, "vigil's event loop is asyncio's"),
    "record_config_changes": (_bool, _NO_CRM),
    "record_pengine_inputs": (_bool, _NO_CRM),
    "enable_config_writes": (_bool, _NO_CRM),
}
_STONITH = ("vigil does not run Heartbeat's stonith plugins: remove it here and configure "
            "[fencing] in vigil.toml (fence_* agents of fence-agents)")
_REFUSED = {
    "stonith": _STONITH, "stonith_host": _STONITH,
    "quorum_server": "vigil has no quorum server: remove it here and configure a [witness] "
                     "in vigil.toml",
    "env": "vigil sets no environment for respawned programs: set the variable in a wrapper "
           "script and respawn that",
    "hbaping": "Fibre Channel HBA ping nodes are not supported: use ping with an IP address",
    "ping6": "vigil's ping nodes are IPv4 for now: use ping with an IPv4 address",
}
# Directives with one value each, stored in _HaCf.values.
_SETTINGS: dict[str, Callable[[str], object]] = {
    "cluster": _name, "logfile": _abspath, "watchdog": _abspath, "realtime": _bool,
    "udpport": _int(1, 65535), "baud": _baud, "keepalive": _ms, "deadtime": _ms,
    "warntime": _ms, "initdead": _ms, "deadping": _ms, "nice_failback": _bool,
    "auto_failback": lambda v: "legacy" if v.lower() == "legacy" else _bool(v),
    "crm": lambda v: "respawn" if v == "respawn" else _bool(v),
    "pacemaker": lambda v: "respawn" if v == "respawn" else _bool(v),
    "autojoin": _choice("none", "other", "any"), "use_apphbd": _bool,
}
_CRM = ("vigil is the resource manager: describe the resources in haresources and write "
        "`{d} off` (or remove the line)")
_OFF = {"crm": _CRM, "pacemaker": _CRM,
        "autojoin": "vigil runs exactly the two nodes of the `node` lines: write "
                    "`autojoin none` (or remove the line)",
        "use_apphbd": "vigil has no apphbd: write `use_apphbd off` (or remove the line)"}
_WHOLE_LINE = {"mcast", "mcast6", "ucast", "ping_group", "respawn", "apiauth", "stonith",
               "stonith_host"}
_LISTS = {"node", "bcast", "udp", "serial", "ping", "env", *_WHOLE_LINE}
_DIRECTIVES = {*_LISTS, *_SETTINGS, *_NO_EFFECT, *_REFUSED}


class _HaCf:
    """Reads ha.cf line by line; `finish` turns what it collected into a Cluster."""

    def __init__(self, file: str, r: _Report) -> None:
        self.file, self.r = file, r
        self.lines: dict[str, int] = {}  # directive -> its first line
        self.values: dict[str, object] = {}
        self.nodes: list[tuple[str, int]] = []
        self.links: list[tuple[int, model.AnyLink | str]] = []  # str: a ucast interface
        self.ucast: dict[str, list[model.IPAddress]] = {}
        self.mcast_ports: list[tuple[int, int]] = []  # (line, port)
        self.ping: dict[model.IPAddress, int] = {}
        self.respawn: list[model.Respawn] = []
        self.ipfail: int | None = None  # its respawn line

    def error(self, line: int | None, key: str, message: str) -> None:
        self.r.error(self.file, line, key, message)

    def warn(self, line: int | None, key: str, message: str) -> None:
        self.r.warn(self.file, line, key, message)

    def parse(self, lines: list[str], source: str, key_file: Path,
              allow_crc: bool) -> model.Cluster | None:
        for n, raw in enumerate(lines, start=1):
            text = raw.split("#", 1)[0].strip()
            if not text:
                continue
            if _bad_text(text):
                self.error(n, "<syntax>", str(_bad_text(text)))
                continue
            d, rest = (text.split(None, 1) + [""])[:2]
            args = rest.split() if d in _WHOLE_LINE else re.split(r"[,\s]+", rest.strip(", "))
            args = [a for a in args if a]
            if d not in _DIRECTIVES:
                self.unknown(n, d)
            elif d not in _LISTS and d in self.lines:
                self.error(n, d, f"given twice (line {self.lines[d]} and here): keep one")
            elif not args:
                self.error(n, d, "needs a value")
            else:
                self.lines.setdefault(d, n)
                self.directive(n, d, args)
        return self.finish(source, key_file, allow_crc)

    def unknown(self, n: int, d: str) -> None:
        plain = d.rstrip(":=")
        if plain != d and plain in _DIRECTIVES:
            self.error(n, d, f"write `{plain} VALUE`: ha.cf directives take no '{d[-1]}' "
                             f"(Heartbeat refuses this line too)")
            return
        close = difflib.get_close_matches(d.lower(), sorted(_DIRECTIVES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        self.error(n, d, f"unknown ha.cf directive {d!r}{hint} (Heartbeat's directives are "
                         f"listed in ha.cf(5))")

    def directive(self, n: int, d: str, args: list[str]) -> None:
        errors: list[str] = []
        if d in _REFUSED:
            errors.append(_REFUSED[d])
        elif d in _NO_EFFECT or d in _SETTINGS:
            conv = _NO_EFFECT[d][0] if d in _NO_EFFECT else _SETTINGS[d]
            if len(args) != 1:
                errors.append(f"takes one value, found {len(args)}: {' '.join(args)}")
            elif (v := _checked(conv, args[0], errors)) is not None and d in _NO_EFFECT:
                self.warn(n, d, f"accepted, no effect: {_NO_EFFECT[d][1]}")
            elif v is not None:
                self.values[d] = v
                if d in _OFF and v not in (False, "none"):
                    errors.append(_OFF[d].format(d=d))
        elif d == "node":
            self.nodes.extend((name, n) for name in args)
        elif d in ("bcast", "udp"):
            if d == "udp":
                self.warn(n, d, "Heartbeat's old name for bcast: write bcast")
            self.links.extend((n, model.ExtraLink("bcast", i)) for i in args
                              if _checked(_ifname, i, errors))
        elif d in ("mcast", "mcast6"):
            self.mcast(n, d, args, errors)
        elif d == "ucast":
            self.add_ucast(n, args, errors)
        elif d == "serial":  # the baud is known in finish()
            self.links.extend((n, model.SerialLink(p)) for a in args
                              if (p := _checked(_abspath, a, errors)) is not None)
        elif d in ("ping", "ping_group"):
            self.add_ping(n, d, args, errors)
        elif d == "respawn":
            self.add_respawn(n, args, errors)
        elif not any(a.startswith(("uid=", "gid=")) for a in args[1:]):
            errors.append("write `apiauth CLIENT uid=USERS` or `apiauth CLIENT gid=GROUPS`")
        else:
            self.warn(n, d, f"{args[0]}: accepted, no effect: vigil has no Heartbeat client API")
        for message in errors:
            self.error(n, d, message)

    def mcast(self, n: int, d: str, args: list[str], errors: list[str]) -> None:
        if len(args) != 5:
            example = "239.0.0.1" if d == "mcast" else "ff02::1:1"
            errors.append(f"write `{d} IFACE GROUP PORT TTL LOOP`, e.g. `{d} eth1 {example} "
                          f"694 1 0`")
            return
        iface = _checked(_ifname, args[0], errors)
        group = _checked(_group(4 if d == "mcast" else 6), args[1], errors)
        port = _checked(_int(1, 65535), args[2], errors)
        ttl = _checked(_int(1, 255), args[3], errors)
        if _checked(_choice("0", "1"), args[4], errors) == "1":
            self.warn(n, d, "loop 1: no effect, vigil ignores its own heartbeats")
        if port is not None:
            self.mcast_ports.append((n, port))
        if iface is not None and group is not None and ttl is not None:
            self.links.append((n, model.ExtraLink("mcast", iface, group, ttl)))

    def add_ucast(self, n: int, args: list[str], errors: list[str]) -> None:
        if len(args) < 2:
            errors.append("write `ucast IFACE PEER-ADDRESS`, e.g. `ucast eth1 10.0.0.2`")
            return
        iface = _checked(_ifname, args[0], errors)
        for a in args[1:]:
            addr = _checked(_address, a, errors)
            if iface is None or addr is None:
                continue
            if iface not in self.ucast:
                self.ucast[iface] = []
                self.links.append((n, iface))
            if addr in self.ucast[iface]:
                errors.append(f"{addr} is listed twice on {iface}")
            else:
                self.ucast[iface].append(addr)

    def add_ping(self, n: int, d: str, args: list[str], errors: list[str]) -> None:
        if d == "ping_group":
            if len(args) < 2:
                errors.append("write `ping_group NAME ADDRESS...`")
                return
            self.warn(n, d, f"{args[0]}: Heartbeat counted the group as one ping node, up "
                            f"while any member answers; vigil counts each of its "
                            f"{len(args) - 1} addresses as a ping node of its own")
            args = args[1:]
        for a in args:
            addr = _checked(_ping_address, a, errors)
            if addr is not None and addr in self.ping:
                errors.append(f"{addr} is already a ping node (line {self.ping[addr]})")
            elif addr is not None:
                self.ping[addr] = n

    def add_respawn(self, n: int, args: list[str], errors: list[str]) -> None:
        if len(args) < 2 or not _USER.fullmatch(args[0]) or not args[1].startswith("/"):
            errors.append("write `respawn USER /ABSOLUTE/PATH [ARGS]`")
            return
        program = Path(args[1]).name
        if program == "ipfail":
            self.ipfail = n
            self.warn(n, "respawn", "ipfail is not started: vigil does ipfail's job itself "
                                    "with the ping nodes (ping, ping_group)")
        elif program in _HEARTBEAT_DAEMONS or args[1].startswith(_HEARTBEAT_LIBS):
            errors.append(f"{program} is part of Heartbeat (its client API or its CRM), which "
                          f"vigil replaces: remove the line" +
                          ("; ping nodes (ping) replace pingd" if program == "pingd" else ""))
        elif any(c in _SHELL for c in " ".join(args[1:])):
            errors.append("vigil runs respawned programs without a shell: put this command "
                          "line in a script and respawn the script")
        else:
            self.respawn.append(model.Respawn(args[0], tuple(args[1:])))

    # --- the cluster ---

    def finish(self, source: str, key_file: Path, allow_crc: bool) -> model.Cluster | None:
        """The Cluster, groups still empty, or None (with problems) when it cannot be built."""
        v, at = self.values, self.lines.get
        nodes = self.finish_nodes()
        timings = self.finish_timings()
        port = v.get("udpport", HEARTBEAT_PORT)
        early = [n for n, l in self.links if n < at("udpport", 0) and
                 (isinstance(l, str) or (isinstance(l, model.ExtraLink) and l.mode == "bcast"))]
        if port != HEARTBEAT_PORT and early:
            self.error(at("udpport"), "udpport", f"comes after the bcast/ucast line {early[0]}, "
                       f"which Heartbeat ran on port {HEARTBEAT_PORT}; vigil runs every link "
                       f"on one port: move udpport above the media lines")
        for n, p in self.mcast_ports:
            if p != port:
                self.error(n, "mcast", f"port {p}: vigil runs every link on one port (udpport, "
                           f"{port} here): write {port}, or set udpport to {p}")
        baud = v.get("baud", 19200)
        assert isinstance(baud, int)
        if baud != 19200 and any(n < at("baud", 0) for n, l in self.links
                                 if isinstance(l, model.SerialLink)):
            self.warn(at("baud"), "baud", "comes after a serial line, which therefore keeps "
                                          "19200 baud, as in Heartbeat: move baud up to change "
                                          "that")
        links = tuple(model.UcastLink(l, tuple(self.ucast[l])) if isinstance(l, str) else
                      dataclasses.replace(l, baud=baud if n > at("baud", 0) else 19200)
                      if isinstance(l, model.SerialLink) else l for n, l in self.links)
        if len(links) != len(set(links)):
            self.error(None, "media", "the same heartbeat medium is given twice")
        if not links:
            self.error(None, "media", "no heartbeat medium: add a bcast, mcast, ucast or "
                                      "serial line")
        self.finish_failback()
        failback = v.get("auto_failback")
        ping = tuple(self.ping)
        deadping = v.get("deadping", v.get("deadtime", 30000))
        assert isinstance(deadping, int)
        if self.ipfail is not None and not ping:
            self.warn(self.ipfail, "respawn", "ipfail without ping nodes did nothing in "
                                              "Heartbeat either")
        if ping and deadping < 2 * timings.keepalive * 1000:
            self.error(at("deadping", at("deadtime")), "deadping", f"{deadping}ms must be at "
                       f"least twice keepalive (ping nodes are pinged every keepalive)")
        if "deadping" in v and not ping:
            self.warn(at("deadping"), "deadping", "no effect without ping nodes")
        if "watchdog" in v:
            self.r.note("watchdog", f"vigil sets the watchdog's timeout to 2 x deadtime "
                                    f"({model.watchdog_seconds(timings)}s)")
        if nodes is None:
            return None
        name, log_file, watchdog = v.get("cluster", "heartbeat"), v.get("logfile"), \
            v.get("watchdog")
        assert isinstance(port, int) and isinstance(name, str)
        assert isinstance(log_file, (Path, type(None))) and \
            isinstance(watchdog, (Path, type(None)))
        cluster = model.Cluster(
            name=name, key_file=key_file, nodes=nodes, groups=(), timings=timings,
            auto_failback=failback is not False, port=port, links=links,
            realtime=v.get("realtime", True) is True, log_file=log_file, watchdog=watchdog,
            respawn=tuple(self.respawn), key_format="authkeys", allow_crc=allow_crc,
            ping=ping, source=source)
        # Heartbeat pings every keepalive; without ping nodes vigil's defaults stay
        return dataclasses.replace(cluster, ping_interval=timings.keepalive,
                                   deadping=deadping / 1000) if ping else cluster

    def finish_nodes(self) -> tuple[model.Node, ...] | None:
        names: list[str] = []
        for name, n in self.nodes:
            errors: list[str] = []
            if _checked(_name, name, errors) is None:
                self.error(n, "node", errors[0])
            elif name.lower() in (x.lower() for x in names):
                self.error(n, "node", f"{name} is listed twice")
            else:
                names.append(name)
                if "." in name:
                    self.warn(n, "node", f"{name}: vigil names a host by its short name (up "
                                         f"to the first dot): start vigil there with "
                                         f"--node {name}")
        if len({x.lower() for x, _ in self.nodes}) != 2:
            found = ", ".join(x for x, _ in self.nodes) or "none"
            self.error(self.nodes[min(2, len(self.nodes) - 1)][1] if self.nodes else None,
                       "node", f"vigil supports exactly two nodes, one `node NAME` each (as "
                               f"`uname -n` prints it); found {len(self.nodes)}: {found}")
        return tuple(model.Node(x, ()) for x in names) if len(names) == 2 == len(self.nodes) \
            else None

    def finish_timings(self) -> model.Timings:
        """Heartbeat's defaults for what is missing, then vigil's invariants."""
        ms = {k: v for k, v in self.values.items() if isinstance(v, int) and k in
              ("keepalive", "deadtime", "warntime", "initdead")}
        ka, dead = ms.get("keepalive", 1000), ms.get("deadtime", 30000)
        warn = ms.get("warntime", dead // 2)
        init = ms.get("initdead", dead if dead > 10000 else 12000 if dead < 6000 else 2 * dead)
        missing = [d for d in ("keepalive", "deadtime", "warntime", "initdead") if d not in ms]
        if missing:
            self.r.note("keepalive", f"not in ha.cf: {', '.join(missing)}: Heartbeat's "
                                     f"defaults are kept (vigil's own are far shorter)")
        t = model.Timings(ka / 1000, warn / 1000, dead / 1000, init / 1000)
        for key, message in model.check_timings(t):
            line = self.lines.get(key)
            self.error(line, key, message + ("" if line else " (Heartbeat's default)"))
        return t

    def finish_failback(self) -> None:
        v, at = self.values, self.lines.get
        if "nice_failback" in v:  # Heartbeat: on -> `auto_failback off`, off -> legacy
            self.warn(at("nice_failback"), "nice_failback", "obsolete: read as `auto_failback "
                      f"{'off' if v['nice_failback'] else 'legacy'}`")
            nice = False if v["nice_failback"] else "legacy"
            if v.get("auto_failback", nice) != nice:
                self.error(max(at("auto_failback", 0), at("nice_failback", 0)), "nice_failback",
                           "contradicts auto_failback: keep only auto_failback on or off")
            v.setdefault("auto_failback", nice)
        if "auto_failback" not in v and "auto_failback" not in self.lines:
            self.warn(None, "auto_failback", "not given: Heartbeat's default `legacy` means on "
                                             "(groups go back to their home node); write "
                                             "auto_failback on or off")
        elif v.get("auto_failback") == "legacy":
            self.warn(at("auto_failback"), "auto_failback", "legacy: Heartbeat's pre-1.2 "
                      "failback, read as on (groups go back to their home node)")


# --- haresources -----------------------------------------------------------------------------


def _haresources(path: Path, cluster: model.Cluster | None,
                 r: _Report) -> tuple[model.Group, ...] | None:
    file, before = str(path), len(r.problems)
    lines = _read(path, r)
    if lines is None:
        return None
    nodes = {n.name.lower(): n.name for n in cluster.nodes} if cluster else None
    used = {a: "a ping node" for a in cluster.ping} if cluster else {}
    for link in cluster.links if cluster else ():
        if isinstance(link, model.UcastLink):
            used.update((a, f"a ucast address ({link.interface})") for a in link.peers)
    groups: list[model.Group] = []
    for n, text in _logical_lines(lines):
        if _bad_text(text):
            r.error(file, n, "<syntax>", str(_bad_text(text)))
            continue
        node, *specs = text.split()
        if nodes is not None and node.lower() not in nodes:
            r.error(file, n, node, f"{node!r} is not a node of ha.cf (its nodes: "
                                   f"{', '.join(nodes.values())})")
        if not specs:
            r.error(file, n, node, "a group needs at least one resource after the node name")
            continue
        resources: list[model.Resource] = []
        for spec in specs:
            res = _resource(file, n, spec, r)
            if isinstance(res, model.IpResource) and res.address.ip in used:
                r.error(file, n, spec, f"{res.address.ip} is already {used[res.address.ip]}")
            elif isinstance(res, model.IpResource):
                used[res.address.ip] = f"used on haresources line {n}"
            if res is not None:
                resources.append(res)
        if nodes is None or node.lower() not in nodes or len(resources) != len(specs):
            continue
        ids: set[str] = set()  # OCF instance ids are unique within a group
        for i, res in enumerate(resources):
            if isinstance(res, model.OcfResource):
                rid, k = res.id, 1
                while rid in ids:
                    k += 1
                    rid = f"{res.id}-{k}"
                ids.add(rid)
                resources[i] = dataclasses.replace(res, id=rid)
        name = _group_name(resources[0], {g.name for g in groups})
        r.note(f"group:{name}", f"haresources:{n}: {text}")
        groups.append(model.Group(name, nodes[node.lower()], tuple(resources)))
    return None if len(r.problems) != before else tuple(groups)


def _logical_lines(lines: list[str]) -> list[tuple[int, str]]:
    """(first line number, text) per group: comments dropped, `\\` continuations joined."""
    out: list[tuple[int, str]] = []
    start, parts = 0, list[str]()
    for n, raw in enumerate([*lines, ""], start=1):  # "": ends a continuation at EOF
        text = raw.split("#", 1)[0].rstrip()
        if not parts:
            start = n
        parts.append(text.removesuffix("\\"))
        if not text.endswith("\\"):
            if " ".join(parts).strip():
                out.append((start, " ".join(parts).strip()))
            parts = []
    return out


def _resource(file: str, n: int, spec: str, r: _Report) -> model.Resource | None:
    script, *args = spec.split("::")
    try:
        if not args and _is_ipv4(script.split("/", 1)[0]):
            return _ip_resource(spec, spec, file, n, r)
        if script in ("IPaddr", "IPaddr2"):
            if len(args) != 1:
                raise ValueError(f"write {script}::ADDRESS/PREFIX/INTERFACE")
            return _ip_resource(args[0], spec, file, n, r)
        if script == "Filesystem":
            return _filesystem(args, spec, file, n, r)
        if not _SCRIPT.fullmatch(script):
            raise ValueError(f"{script!r} is not a resource script name (letters, digits, "
                             "'_', '.', '-'; no '/')")
        if "" in args:
            raise ValueError("an argument is empty (two '::' in a row, or one at the end)")
        return model.HeartbeatResource(script, tuple(args))
    except ValueError as e:
        r.error(file, n, spec, str(e))
        return None


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _ip_resource(arg: str, spec: str, file: str, n: int, r: _Report) -> model.IpResource:
    """ip[/prefix[/iface[/broadcast]]] or ip/prefix/broadcast, as IPaddr reads them. A prefix
    length (or netmask) and an interface not written are found at start, as IPaddr found
    them: from the connected route that contains the address (resources/findif.py)."""
    ip, *fields = arg.split("/")
    if len(fields) > 3 or not _is_ipv4(ip):
        raise ValueError(f"{arg!r}: write ADDRESS[/PREFIX[/INTERFACE[/BROADCAST]]] with an "
                         "IPv4 address")
    prefix, iface, brd = (fields + [""])[0], "", None
    if len(fields) == 2 and _is_ipv4(fields[1]):
        brd = fields[1]
    elif len(fields) >= 2:
        iface, brd = fields[1], (fields[2] if len(fields) == 3 else None)
    try:
        address = ipaddress.IPv4Interface(f"{ip}/{prefix or 32}")
    except ValueError:
        raise ValueError(f"{prefix!r} is not a prefix length (0-32) or a netmask") from None
    if address.ip.is_multicast or address.ip.is_unspecified:
        raise ValueError(f"{ip} is not a unicast address")
    interface, _, alias = iface.partition(":")
    if iface:
        _ifname(interface)
    if alias and len(iface) > 15:
        raise ValueError(f"label {iface!r} is longer than 15 characters")
    if brd is not None and not _is_ipv4(brd):
        raise ValueError(f"{brd!r} is not a broadcast address")
    broadcast = None if brd is None else ipaddress.IPv4Address(brd)
    if broadcast is not None and prefix and broadcast not in address.network:
        raise ValueError(f"broadcast {brd} is not in {address.network}")
    return model.IpResource(address, interface or None, label=iface if alias else None,
                            prefix_given=bool(prefix), broadcast=broadcast)


def _filesystem(args: list[str], spec: str, file: str, n: int, r: _Report) -> model.Resource:
    if not 3 <= len(args) <= 4 or "" in args:
        raise ValueError("write Filesystem::DEVICE::MOUNTPOINT::FSTYPE[::OPTIONS], e.g. "
                         "Filesystem::/dev/sdb5::/webdata::ext3")
    device, mountpoint, fstype, *options = args
    if not mountpoint.startswith("/") or Path(mountpoint) == Path("/"):
        raise ValueError(f"{mountpoint!r}: the mount point must be an absolute path other "
                         "than /")
    if not re.fullmatch(r"[a-z0-9._]+", fstype):
        raise ValueError(f"{fstype!r} is not a filesystem type such as ext4")
    if not device.startswith("/"):  # LABEL=, UUID=, -L, -U, host:/path, //host/share
        r.warn(file, n, spec, f"{device}: vigil's built-in filesystem resource takes a device "
                              f"path; this one runs resource-agents' ocf:heartbeat:Filesystem")
        params = (("device", device), ("directory", mountpoint), ("fstype", fstype),
                  *(("options", o) for o in options))
        rid = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"fs{mountpoint}").rstrip("-_.")[:63]
        return model.OcfResource("heartbeat:Filesystem", rid, params)
    return model.FilesystemResource(Path(device), Path(mountpoint), fstype,
                                    options[0] if options else "")


def _group_name(first: model.Resource, taken: set[str]) -> str:
    """Heartbeat names a group by its first resource; this is a valid vigil name for it."""
    if isinstance(first, model.IpResource):
        base = str(first.address.ip)
    elif isinstance(first, model.FilesystemResource):
        base = f"fs-{first.mountpoint.name}"
    elif isinstance(first, model.OcfResource):
        base = first.id
    else:
        assert isinstance(first, model.HeartbeatResource)
        base = "-".join((first.script, *first.args))
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", base).strip("-_.")[:56].rstrip("-_.") or "group"
    name, count = base, 1
    while name in taken:
        count += 1
        name = f"{base}-{count}"
    return name


# --- authkeys --------------------------------------------------------------------------------


def _authkeys(path: Path, allow_crc: bool, r: _Report) -> bytes | None:
    file = str(path)
    try:
        read = read_file(path, MAX_KEY_FILE, "an authkeys file")
    except FileRefused as e:
        r.error(file, None, "<file>", e.reason)
        return None
    data = read.data
    if read.mode & 0o077:
        r.error(file, None, "<mode>", f"mode {read.mode:04o}: the key must be "
                                      f"readable by its owner only, as Heartbeat requires "
                                      f"(chmod 600 {path})")
    auth: tuple[int, int] | None = None  # (index, line)
    keys: dict[int, tuple[str, bytes, int]] = {}  # index -> (method, key, line)
    before = len(r.problems)
    for n, raw in enumerate(data.split(b"\n"), start=1):
        text = raw.strip()
        if not text or text.startswith(b"#"):
            continue
        head = re.fullmatch(rb"auth\s+([0-9]{1,9})", text)
        entry = re.fullmatch(rb"([0-9]{1,9})\s+(\S+)(?:\s+(\S+))?(\s+.*)?", text)
        if head is not None:
            if auth is not None:
                r.error(file, n, "auth", f"a second auth line (the first is line {auth[1]})")
            auth = (int(head.group(1)), n)
        elif entry is None:
            r.error(file, n, "<syntax>", "expected `auth N` or `N sha1 KEY` (or md5, crc)")
        else:
            index, method, key = int(entry.group(1)), entry.group(2).decode("ascii", "replace"), \
                entry.group(3) or b""
            error = _key_problem(index, method, key, entry.group(4), keys)
            if error:
                r.error(file, n, method, error)
            else:
                keys[index] = (method, key, n)
    if len(r.problems) != before:  # a missing key or auth line may be a line refused above
        return None
    if auth is None:
        r.error(file, None, "auth", "no `auth N` line says which key to use")
        return None
    if auth[0] not in keys:
        r.error(file, auth[1], "auth", f"auth {auth[0]}: there is no key line {auth[0]}")
        return None
    method, key, line = keys[auth[0]]
    for other, (_, _, n) in keys.items():
        if other != auth[0]:
            r.warn(file, n, "authkeys", f"key {other} is not used: vigil signs and checks with "
                                        f"key {auth[0]} only (auth {auth[0]})")
    if method == "crc" and not allow_crc:
        r.error(file, line, "crc", f"crc gives no security: anyone on the heartbeat network "
                                   f"can forge heartbeats and take the groups over; write "
                                   f"`{auth[0]} sha1 SECRET` (or pass --allow-crc to accept it)")
        return None
    if method == "crc":
        r.warn(file, line, "crc", "crc gives no security: anyone on the heartbeat network can "
                                  "forge heartbeats; replace it with sha1 and a secret")
        return b""
    if len(key) < 16:
        r.warn(file, line, method, f"the key has {len(key)} characters; use at least 16 "
                                   f"random ones (`vigil keygen` makes such a key)")
    r.note("authkeys", f"vigil signs with HMAC-SHA256 keyed with the text of key {auth[0]} "
                       f"({method})")
    return key


def _key_problem(index: int, method: str, key: bytes, extra: bytes | None,
                 keys: dict[int, tuple[str, bytes, int]]) -> str | None:
    if not 0 <= index <= 15:
        return f"key index {index} is out of range (0-15)"
    if index in keys:
        return f"key {index} is defined twice (line {keys[index][2]} and here)"
    if method not in ("crc", "md5", "sha1"):
        return f"unknown method {method!r}: Heartbeat's are crc, md5 and sha1"
    if method == "crc" and key:
        return "crc takes no key"
    if method != "crc" and not key:
        return f"{method} needs a key: `{index} {method} SECRET`"
    if extra:
        return "the key must be one word (Heartbeat kept only its first word)"
    return None
