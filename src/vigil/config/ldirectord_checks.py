"""The check of an ldirectord virtual service (checktype, service, request, receive,
virtualhost, checkcommand, checkport, checkinterval, checktimeout, negotiatetimeout,
failurecount) -> vigil's check, for ldirectord.py, with a note wherever the meaning changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from vigil.balancer import model as lb
from vigil.config.ldirectord_values import argv, request_path

PORT_SERVICE = {21: "ftp", 25: "smtp", 53: "dns", 80: "http", 110: "pop", 119: "nntp",
                 143: "imap", 389: "ldap", 443: "https", 587: "submission", 993: "imaps",
                 995: "pops", 1521: "oracle", 1812: "radius", 3128: "http_proxy",
                 3306: "mysql", 5060: "sip", 5432: "pgsql"}


@dataclass
class Section:
    """A `virtual=` line and what is indented under it."""

    line: int
    value: str
    settings: dict[str, tuple[Any, int]] = field(default_factory=dict)
    reals: list[tuple[str, int]] = field(default_factory=list)


class Settings(Protocol):
    """What the file's reader knows: a virtual's setting, else the global one; the globals;
    whether fork=yes was set."""

    globals: dict[str, tuple[Any, int]]
    fork: bool

    def get(self, s: Section, key: str, default: Any = None) -> Any: ...


def read_check(r: Settings, s: Section, protocol: str, vport: int,
               notes: list[str]) -> lb.Check | None:
    """The virtual's check (None: checktype=off): ldirectord's checktype and service as
    the nearest of vigil's check types, with its timing."""
    ctype, every = r.get(s, "checktype", ("negotiate", 0))
    if ctype == "off":
        return None
    service = r.get(s, "service") or PORT_SERVICE.get(vport, "none")
    negotiate = ctype in ("negotiate", "combined")
    kind, fields = _kind(r, s, ctype, service, notes)
    if every and kind in ("http", "https"):
        notes.append(f"checktype {every}: ldirectord negotiated every {every}th check and "
                     "only connected in between; vigil negotiates at every check")
    if kind == "tcp" and protocol == "udp":
        notes.append("vigil has no UDP (or ICMP) check: this UDP service's real servers "
                     "are not checked; write an exec check (dig for DNS, say)")
        kind = "none"
    interval, timeout = _timing(r, s, negotiate, kind != "none", notes)
    return lb.Check(type=kind, interval=interval, timeout=timeout, rise=1,
                    fall=r.get(s, "failurecount", 1), port=r.get(s, "checkport"),
                    **fields)

def _kind(r: Settings, s: Section, ctype: str, service: str,
          notes: list[str]) -> tuple[lb.CheckType, dict[str, Any]]:
    negotiate = ctype in ("negotiate", "combined")
    if ctype == "on" or (ctype == "negotiate" and service == "none"):
        return "none", {}
    if ctype in ("external", "external-perl"):
        text = r.get(s, "checkcommand")
        if text is None:
            return "none", {}  # ldirectord's default checkcommand: /bin/true
        notes.append(f"checkcommand: ldirectord ran `{text} VIRTUAL_IP VIRTUAL_PORT REAL_IP "
                     "REAL_PORT`; vigil runs it without those arguments, with "
                     "VIGIL_REAL_ADDRESS and VIGIL_REAL_PORT in its environment")
        if ctype == "external-perl":
            notes.append("checktype external-perl: vigil runs the script as a program, not "
                         "inside ldirectord's Perl: it needs its #! line and to be executable")
        return "exec", {"command": argv(text)}
    if negotiate and service in ("http", "https"):
        path, why = request_path(r.get(s, "request", "/"))
        notes += [why] if why else []
        notes.append("ldirectord took any 2xx answer, after following redirects; vigil "
                     "expects status 200 (set expect_status to take others)")
        return ("https" if service == "https" else "http"), {
            "path": path, "expect_body": r.get(s, "receive") or None,
            "host": r.get(s, "virtualhost")}
    if ctype == "ping":
        notes.append("checktype ping: vigil has no ICMP check; it checks that a TCP "
                     "connection to the real server's port opens")
    elif negotiate and service != "none":
        notes.append(f"service {service}: vigil checks that the TCP connection opens, not "
                     f"the {service} exchange ldirectord's negotiate check made")
    return "tcp", {}

def _timing(r: Settings, s: Section, negotiate: bool, checked: bool,
            notes: list[str]) -> tuple[float, float]:
    """(interval, timeout) as ldirectord's ld_setup finds them: checktimeout and
    negotiatetimeout default to each other, the virtual's before the global ones."""
    mine, other = ("negotiatetimeout", "checktimeout") if negotiate else \
        ("checktimeout", "negotiatetimeout")
    chain = (s.settings.get(mine), s.settings.get(other), r.globals.get(mine),
             r.globals.get(other))
    timeout = next((int(c[0]) for c in chain if c), 30 if negotiate else 5)
    interval = r.get(s, "checkinterval", 10)
    if "checkinterval" in s.settings and not r.fork and checked:
        notes.append(f"checkinterval {interval}s: ldirectord ignores a virtual's own "
                     "checkinterval without fork=yes; vigil uses it")
    if timeout > interval and checked:
        notes.append(f"{mine} {timeout}s is longer than checkinterval {interval}s: vigil's "
                     f"check timeout is at most its interval, so {interval}s")
    return float(interval), float(min(timeout, interval))
