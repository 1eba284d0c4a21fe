"""ldirectord.cf (the Linux Director Daemon, which Heartbeat starts as
`ldirectord::ldirectord.cf` to health-check LVS) -> vigil's virtual servers, read as
ldirectord 3.9/4.x reads it:

- `key = value` lines and `#` comments; `virtual=` (or `virtual6=`) opens a virtual service
  that the indented lines after it belong to. An unindented line ends it and is global, as
  in ldirectord, so a virtual-only directive there (`real=`...) is a problem, never moved.
- Globals are read from anywhere at top level and apply to every virtual that does not set
  its own, before them or after: ldirectord too keeps them in globals that each virtual
  falls back to once the whole file is read.
- vigil reads a little more than ldirectord (any indentation, blank lines inside a section,
  unquoted request/receive, `#` inside quotes, a prefix length as netmask, connecttimeout
  as checktimeout); a file ldirectord accepts means the same.
- The defaults are ldirectord's code's, not older manual pages': checkinterval 10,
  checktimeout 5, negotiatetimeout 30, failurecount 1, quiescent no, checktype negotiate,
  the service named by the virtual's port (80 http, 443 https...), udp for port 53.

Forwarding follows lvs_import's rules: ipip is dropped, and a service carries the method of
most of its real servers (masq on a tie; gate on a firewall-mark service never), the
`real=` lines of the other method dropped, since a vigil service forwards one way. A gate
server written with another port than the virtual one gets the virtual port, where IPVS
delivered (ipvsadm sets it so), with a note; its check stays where ldirectord's went. The
fallback is forwarded as its service is: one without a method (ldirectord's default is
gate) follows the service, with a note when that is NAT; one of the other method is dropped;
a loopback one is the director itself, whatever the method (on the virtual port for gate).

A change of meaning is a note on its service, what vigil cannot carry is dropped with its
line and why, and every problem is raised at the end, together, with its file and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vigil.balancer import model as lb
from vigil.config.files import MAX_CONFIG_FILE, FileRefused, read_file
from vigil.config.heartbeat_report import bad_text
from vigil.config.ldirectord_checks import Section, read_check
from vigil.config.ldirectord_values import (CONVERT, HOSTPORT, SECONDS, as_ip, as_port,
                                             parse_real, strip_comment, unquote, whole)
from vigil.config.lvs_import import (FWMARK_DR, PLACEHOLDER_GROUP, TUNNEL, Imported,
                                     choose_forward, dr_port, one_way, service_name)
from vigil.errors import ConfigError, ConfigProblem

_BOTH = {*SECONDS[:3], "failurecount", "fallback", "fallback6", "quiescent"}
_VIRTUAL = {"real", "real6", "service", "checktype", "checkport", "request", "receive",
            "virtualhost", "checkcommand", "scheduler", "persistent", "netmask", "protocol",
            "httpmethod", "ops"}
_MAIL = "vigil sends no mail (its hooks can)"
_RELOAD = "vigil reads vigil.toml when told to reload, not this file"
_LOGIN = "vigil's checks do not log in (this service's check is carried as a TCP connect)"
_DROPPED = {
    "logfile": "vigil logs to the journal", "autoreload": _RELOAD, "callback": _RELOAD,
    "execute": "starts ldirectord for another configuration: import that file too",
    "fork": "vigil checks every real server concurrently", "supervised": "vigil is its own "
    "daemon", "cleanstop": "vigil removes a service's rules when its group stops",
    "readdquiescent": "vigil has no IPVS table to re-add real servers to",
    "maintenancedir": "vigil reads no maintenance files: give the real server weight 0",
    "emailalert": _MAIL, "emailalertfreq": _MAIL, "emailalertstatus": _MAIL,
    "emailalertfrom": _MAIL, "smtp": _MAIL,
    "fallbackcommand": "vigil runs no command when every real server is down (its hooks can)",
    "checkcount": "deprecated in ldirectord; failurecount is carried (as the check's fall)",
    "monitorfile": "vigil logs every change of a real server's health", "load": "unknown to "
    "vigil", "login": _LOGIN, "passwd": _LOGIN, "database": _LOGIN, "secret": _LOGIN,
}
_SECRET = {"passwd", "secret"}
_FORWARD: dict[str, lb.Forward] = {"masq": "nat", "gate": "dr"}
_SPELLED = {"nat": "masq", "dr": "gate"}
_NO_PORT = ("vigil forwards a firewall-mark service to one port (IPVS kept the client's): give "
            "the real server its port")


def import_text(text: str, source: str, group: str = PLACEHOLDER_GROUP) -> Imported:
    """ldirectord.cf text -> its virtual services, each in `group`. Raises ConfigError with
    every problem found."""
    reader = _Reader(source, group)
    for section in reader.read(text):
        reader.virtual(section)
    if reader.problems:
        raise ConfigError(sorted(reader.problems, key=lambda p: p.line or 0))
    return reader.out


def import_file(path: Path, group: str = PLACEHOLDER_GROUP) -> Imported:
    """Read the ldirectord.cf at `path` (at most MAX_CONFIG_FILE bytes) and import it."""
    try:
        data = read_file(path, MAX_CONFIG_FILE, "a configuration file").data
    except FileRefused as e:
        raise ConfigError(ConfigProblem(str(path), None, "<file>", e.reason)) from None
    return import_text(data.decode("utf-8", "surrogateescape"), str(path), group)


class _Reader:
    """One file's reading: `read` the lines into globals and sections, then each `virtual`
    into `out`, every problem into `problems`."""

    def __init__(self, source: str, group: str) -> None:
        self.source, self.group = source, group
        self.out = Imported()
        self.problems: list[ConfigProblem] = []
        self.globals: dict[str, tuple[Any, int]] = {}
        self.fork = False
        self.taken: set[str] = set()
        self.services: dict[object, int] = {}  # (endpoint, protocol) or fwmark -> its line
        self.dropped: set[tuple[int, str]] = set()

    def problem(self, line: int | None, key: str, message: str) -> None:
        self.problems.append(ConfigProblem(self.source, line, key, message))

    def drop(self, line: int, what: str, why: str) -> None:
        """Dropped once, though a global (a fallback) is dropped for each virtual."""
        if (line, what) not in self.dropped:
            self.dropped.add((line, what))
            self.out.drop(self.source, line, what, why)

    def get(self, s: Section, key: str, default: Any = None) -> Any:
        """The virtual's own value, else the global one, else `default`."""
        found = s.settings.get(key) or self.globals.get(key)
        return default if found is None else found[0]

    def read(self, text: str) -> list[Section]:
        sections: list[Section] = []
        section: Section | None = None
        for n, raw in enumerate(text.splitlines(), start=1):
            body = strip_comment(raw).rstrip()
            if not body.strip():
                continue  # ldirectord ends a section here, refusing the indented lines after it
            if bad_text(body):
                self.problem(n, "<syntax>", str(bad_text(body)))
                continue
            key, eq, value = body.strip().partition("=")
            key, value = key.strip().lower(), value.strip()
            if body[0] not in " \t":
                section = None
            if not eq and key not in _DROPPED:
                self.problem(n, key[:40], "expected KEY=VALUE, such as checkinterval=5")
            elif key in ("virtual", "virtual6"):
                section = Section(n, unquote(value))
                sections.append(section)
            else:
                self.directive(n, key, value, section)
        return sections

    def directive(self, n: int, key: str, value: str, section: Section | None) -> None:
        if key == "fork":
            self.fork = value == "yes"
        if key in _DROPPED:
            self.drop(n, key if key in _SECRET else f"{key}={value}"[:80], _DROPPED[key])
            return
        if key not in _BOTH | _VIRTUAL | {"connecttimeout"}:
            self.problem(n, key[:40], "unknown directive; ldirectord.cf has virtual=, real=, "
                         "service=, checktype=, request=, receive=, scheduler=, "
                         "checkinterval=, checktimeout=... (see ldirectord(8))")
            return
        if section is None and key in _VIRTUAL:
            self.problem(n, key, f"{key}= belongs to a virtual service: indent it under its "
                                 "virtual= line (ldirectord reads an unindented line as global)")
            return
        if key in ("real", "real6"):
            assert section is not None
            section.reals.append((value, n))
            return
        key = "checktimeout" if key == "connecttimeout" else key
        key = "fallback" if key == "fallback6" and section is not None else key
        try:
            parsed = CONVERT.get(key, str)(unquote(value))
        except ValueError as e:
            self.problem(n, key, str(e))
            return
        if (key, parsed) in (("httpmethod", "HEAD"), ("ops", "yes")):
            self.drop(n, f"{key}={value}", "vigil's HTTP check sends GET" if key == "httpmethod"
                      else "one-packet scheduling: vigil's nftables data plane has none")
        (section.settings if section is not None else self.globals)[key] = (parsed, n)

    def virtual(self, s: Section) -> None:
        before, notes = len(self.problems), list[str]()
        where = self.address(s)
        if where is None:
            self.reals(s, None, lb.Check(), [])  # their problems too
            return
        endpoint, fwmark = where
        protocol = self.protocol(s, endpoint, notes)
        sched, why = self.get(s, "scheduler", ("wrr", None))
        notes += [why] if why else []
        check = read_check(self, s, protocol, endpoint.port if endpoint else 0, notes)
        reals, forward, tie = self.reals(s, endpoint, check or lb.Check(), notes)
        family = endpoint.address.version if endpoint else \
            (reals[0].endpoint.address.version if reals else 4)
        sorry = self.sorry(s, endpoint, family, (forward, tie), notes)
        persistence, netmask = self.persistence(s, family)
        key = (endpoint, protocol) if endpoint else ("fwmark", fwmark)
        if key in self.services:
            self.problem(s.line, "virtual", f"the same virtual service as line "
                                            f"{self.services[key]}")
        self.services.setdefault(key, s.line)
        if not s.reals:
            self.problem(s.line, "virtual", "a virtual service needs at least one real= "
                                            "(indented under it)")
        if len(self.problems) != before:
            return
        if check is None or not reals:
            self.drop(s.line, f"virtual={s.value}", "checktype=off: ldirectord adds none of its "
                      "real or fallback servers" if check is None else "none of its real "
                      "servers can be carried over (see their lines)")
            return
        name = service_name(endpoint, fwmark, self.taken)
        self.out.services.append(lb.VirtualServer(
            name=name, group=self.group, real=tuple(reals), endpoint=endpoint, fwmark=fwmark,
            protocol=protocol, scheduler=sched, forward=forward, persistence=persistence,
            persistence_netmask=netmask, sorry_server=sorry,
            quiescent=self.get(s, "quiescent", False)))
        for text in notes:
            self.out.note(name, text)

    def address(self, s: Section) -> tuple[lb.Endpoint | None, int | None] | None:
        try:
            if s.value.isdigit():
                return None, whole(s.value, 1, 0xFFFFFFFF, "a firewall mark")
            m = HOSTPORT.match(s.value)
            if m is None or m["port"] is None:
                raise ValueError(f"{s.value!r}: expected IP:PORT, [IPv6]:PORT or a firewall "
                                 "mark (a number)")
            address, port = as_ip(m["host"]), as_port(m["port"])
            if port == 0:
                raise ValueError(f"{s.value!r}: port 0 is not a port")
            return lb.Endpoint(address, port), None
        except ValueError as e:
            self.problem(s.line, "virtual", str(e))
            return None

    def protocol(self, s: Section, endpoint: lb.Endpoint | None, notes: list[str]) -> lb.Protocol:
        given = self.get(s, "protocol")
        if given is None:
            given = "fwm" if endpoint is None else "udp" if endpoint.port == 53 else "tcp"
        if given == "fwm" and endpoint is not None:
            self.problem(s.settings["protocol"][1], "protocol", "fwm is for a firewall-mark "
                         "virtual service; this one is an address and port: tcp or udp")
        elif given == "fwm":
            notes.append("protocol fwm: IPVS took every protocol the mark is set on; vigil's "
                         "fwmark service takes TCP only (add a udp one if the mark carries UDP)")
        return "udp" if given == "udp" else "tcp"

    def reals(self, s: Section, vip: lb.Endpoint | None, check: lb.Check,
              notes: list[str]) -> tuple[list[lb.RealServer], lb.Forward, bool]:
        """The real servers carried, the service's one forward method and whether it was a
        tie (lvs_import.choose_forward); every other `real=` line dropped with its reason."""
        lines: list[tuple[str, int, str, list[lb.RealServer]]] = []
        for text, n in s.reals:
            try:
                lines.append((text, n, *parse_real(text, vip, check)))
            except ValueError as e:
                self.problem(n, "real", str(e))
        forward, tie = choose_forward(_FORWARD[m] for _, _, m, servers in lines for _ in servers
                                      if m == "masq" or (m == "gate" and vip is not None))
        out: list[lb.RealServer] = []
        for text, n, method, servers in lines:
            why = TUNNEL if method == "ipip" else FWMARK_DR if vip is None and method == "gate" \
                else _NO_PORT if not servers else None
            if why is None and _FORWARD[method] != forward:
                why = one_way(_FORWARD[method], forward, tie, _SPELLED)
            if why is not None:
                self.drop(n, f"real={text}", why)
                continue
            if forward == "dr" and vip is not None and servers[0].endpoint.port != vip.port:
                moved = dr_port(servers[0], vip.port).check.port
                notes.append(f"real={text}: direct routing cannot change the port: IPVS "
                             f"delivered on the virtual port {vip.port} (ipvsadm sets a gate "
                             "server's port so), and so does vigil" +
                             (f"; its check stays on port {moved}" if moved else ""))
                servers = [dr_port(rs, vip.port) for rs in servers]
            for rs in servers:
                family = (vip or (out or [rs])[0].endpoint).address.version
                if vip is not None and rs.endpoint.address == vip.address:
                    self.problem(n, "real", f"{rs.endpoint} is the virtual service's address")
                elif rs.endpoint.address.version != family:
                    self.problem(n, "real", f"{rs.endpoint} is IPv{rs.endpoint.address.version}"
                                            f", the virtual service IPv{family}")
                elif any(r.endpoint == rs.endpoint for r in out):
                    self.problem(n, "real", f"{rs.endpoint} is listed twice")
                else:
                    out.append(rs)
        return out, forward, tie

    def sorry(self, s: Section, vip: lb.Endpoint | None, family: int,
              way: tuple[lb.Forward, bool], notes: list[str]) -> lb.Endpoint | None:
        """The fallback as the sorry server, forwarded as its service is (`way`: the
        service's method, and whether it was a tie): without a method (ldirectord's
        default, gate) it follows the service, with a note when that is NAT; of the other
        method it is dropped; a loopback one is the director itself, whatever the method.
        Direct routing answers on the virtual port."""
        found = s.settings.get("fallback") or \
            self.globals.get("fallback6" if family == 6 else "fallback")
        if found is None:
            return None
        (address, port, method), n = found
        port = port or (vip.port if vip else None)
        shown = (f"fallback={address}" + (f":{port}" if port else "") + f" {method or ''}").strip()
        forward, local = way[0], address.is_loopback
        if address.version != family:
            self.problem(n, "fallback", f"{address} is IPv{address.version}, the virtual "
                                        f"service IPv{family}")
        elif port is None:
            self.drop(n, shown, "vigil forwards a firewall-mark service's sorry server to one "
                                "port: give the fallback its port")
        elif method == "ipip" and not local:
            self.drop(n, shown, TUNNEL)
        elif method == "gate" and vip is None and not local:
            self.drop(n, shown, FWMARK_DR)
        elif method is not None and _FORWARD.get(method) != forward and not local:
            self.drop(n, shown, one_way(_FORWARD[method], forward, way[1], _SPELLED))
        else:
            if method is None and not local and forward == "nat":
                notes.append(f"fallback {address}: ldirectord forwarded it by direct routing "
                             "(gate, its default for a fallback); vigil forwards it by NAT, "
                             "as this service's real servers")
            if forward == "dr" and vip is not None and port != vip.port:
                notes.append(f"fallback {lb.Endpoint(address, port)}: direct routing cannot "
                             "change the port: " + (
                                 f"the director answers on the virtual address, port "
                                 f"{vip.port}" if local else
                                 f"IPVS delivered on port {vip.port} (ipvsadm sets a gate "
                                 "server's port so), and so does vigil"))
                port = vip.port
            return lb.Endpoint(address, port)
        return None

    def persistence(self, s: Section, family: int) -> tuple[float | None, int | None]:
        seconds, mask = self.get(s, "persistent"), s.settings.get("netmask")
        if mask is not None and seconds is None:
            self.drop(mask[1], "netmask", "without persistent it means nothing (ldirectord "
                                          "ignores it too)")
        elif mask is not None and int(mask[0]) > (32 if family == 4 else 128):
            self.problem(mask[1], "netmask", f"/{mask[0]} is longer than an IPv{family} "
                                             "address")
        elif mask is not None:
            return float(seconds), int(mask[0])
        return (None if seconds is None else float(seconds)), None
