"""Heartbeat's ha.cf: the directives of Heartbeat 3.0.6 and what vigil makes of each (the
table in config/heartbeat.py), read line by line by `HaCf` into the Cluster's nodes, timings,
links, ping nodes, failback and respawned programs; haresources fills in the groups.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable
from pathlib import Path

from vigil import model
from vigil.config.heartbeat_report import Report, bad_text
from vigil.config.heartbeat_values import (as_abspath, as_address, as_baud, as_bool, as_ifname,
                                           as_ms, as_name, as_ping_address, checked, int_in,
                                           mcast_group, one_of)

HEARTBEAT_PORT = 694
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?")
_SHELL = set("|&;<>()$`\\\"'*?[]{}~")
_FACILITIES = ("auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news",
               "syslog", "user", "uucp", "none", *(f"local{n}" for n in range(8)))
# Programs that talk to Heartbeat's client API or are its CRM: without Heartbeat they cannot
# work, and a CRM would fight vigil for the resources.
_HEARTBEAT_DAEMONS = {"ccm", "cib", "crmd", "lrmd", "stonithd", "attrd", "pengine", "mgmtd",
                      "pingd", "dopd", "hbagent", "tengine"}
_HEARTBEAT_LIBS = ("/usr/lib/heartbeat/", "/usr/lib64/heartbeat/", "/usr/libexec/heartbeat/")

_NO_CRM = "a CRM option; vigil has no CRM"
# Accepted without effect: a check of the value (Heartbeat refused bad values too) and why.
_NO_EFFECT: dict[str, tuple[Callable[[str], object], str]] = {
    "debugfile": (as_abspath, ("vigil writes debug messages where it logs (stderr or the "
                               "journal, and log_file) when started with --debug")),
    "logfacility": (one_of(*_FACILITIES), ("vigil logs to stderr (the journal under "
                                            "systemd, which can forward to syslog) and to "
                                            "log_file")),
    "use_logd": (as_bool, "vigil has no logging daemon: it logs to stderr and log_file"),
    "conn_logd_time": (as_ms, "vigil has no logging daemon"),
    "debug": (int_in(0, 255), "use vigil's --debug option"),
    "rtprio": (int_in(1, 99), "vigil picks its own SCHED_FIFO priority (realtime on)"),
    "hopfudge": (int_in(0, 255), "vigil relays no messages between nodes"),
    "msgfmt": (one_of("classic", "netstring"), "vigil has its own wire format"),
    "uuidfrom": (one_of("file", "nodename"), "vigil knows nodes by name only"),
    "hbgenmethod": (one_of("file", "time"), "vigil keeps its own boot generation"),
    "max_rexmit_delay": (int_in(1, 10**6), ("vigil retransmits nothing: each heartbeat "
                                           "carries the whole state")),
    "log_badpack": (as_bool, "vigil counts rejected frames in `vigil status`"),
    "compression": (one_of("zlib", "bz2"), "vigil's frames are small, never compressed"),
    "compression_threshold": (int_in(1, 10**6), "vigil never compresses"),
    "traditional_compression": (as_bool, "vigil never compresses"),
    "coredumps": (as_bool, "vigil's core dumps follow the system's settings (ulimit, systemd)"),
    "coreroot": (as_abspath, "vigil's core dumps follow the system's settings"),
    "memreserve": (int_in(1, 10**7), "vigil locks all its memory with realtime on"),
    "normalpoll": (as_bool, "vigil's event loop is asyncio's"),
    "record_config_changes": (as_bool, _NO_CRM),
    "record_pengine_inputs": (as_bool, _NO_CRM),
    "enable_config_writes": (as_bool, _NO_CRM),
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
# Directives with one value each, stored in HaCf.values.
_SETTINGS: dict[str, Callable[[str], object]] = {
    "cluster": as_name, "logfile": as_abspath, "watchdog": as_abspath, "realtime": as_bool,
    "udpport": int_in(1, 65535), "baud": as_baud, "keepalive": as_ms, "deadtime": as_ms,
    "warntime": as_ms, "initdead": as_ms, "deadping": as_ms, "nice_failback": as_bool,
    "auto_failback": lambda v: "legacy" if v.lower() == "legacy" else as_bool(v),
    "crm": lambda v: "respawn" if v == "respawn" else as_bool(v),
    "pacemaker": lambda v: "respawn" if v == "respawn" else as_bool(v),
    "autojoin": one_of("none", "other", "any"), "use_apphbd": as_bool,
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


class HaCf:
    """Reads ha.cf line by line; `finish` turns what it collected into a Cluster."""

    def __init__(self, file: str, r: Report) -> None:
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
            if bad_text(text):
                self.error(n, "<syntax>", str(bad_text(text)))
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
            elif (v := checked(conv, args[0], errors)) is not None and d in _NO_EFFECT:
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
                              if checked(as_ifname, i, errors))
        elif d in ("mcast", "mcast6"):
            self.mcast(n, d, args, errors)
        elif d == "ucast":
            self.add_ucast(n, args, errors)
        elif d == "serial":  # the baud is known in finish()
            self.links.extend((n, model.SerialLink(p)) for a in args
                              if (p := checked(as_abspath, a, errors)) is not None)
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
        iface = checked(as_ifname, args[0], errors)
        group = checked(mcast_group(4 if d == "mcast" else 6), args[1], errors)
        port = checked(int_in(1, 65535), args[2], errors)
        ttl = checked(int_in(1, 255), args[3], errors)
        if checked(one_of("0", "1"), args[4], errors) == "1":
            self.warn(n, d, "loop 1: no effect, vigil ignores its own heartbeats")
        if port is not None:
            self.mcast_ports.append((n, port))
        if iface is not None and group is not None and ttl is not None:
            self.links.append((n, model.ExtraLink("mcast", iface, group, ttl)))

    def add_ucast(self, n: int, args: list[str], errors: list[str]) -> None:
        if len(args) < 2:
            errors.append("write `ucast IFACE PEER-ADDRESS`, e.g. `ucast eth1 10.0.0.2`")
            return
        iface = checked(as_ifname, args[0], errors)
        for a in args[1:]:
            addr = checked(as_address, a, errors)
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
            addr = checked(as_ping_address, a, errors)
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
            if checked(as_name, name, errors) is None:
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
