"""The values of ldirectord.cf (config/ldirectord.py reads the file): each converter takes a
directive's text and returns its value or raises ValueError saying what was expected."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import shlex
from typing import Callable
from urllib.parse import urlsplit

from vigil.balancer import model as lb
from vigil.config.lvs_import import PORTS, prefix_length, scheduler

SECONDS = ("checktimeout", "negotiatetimeout", "checkinterval", "persistent")
_SERVICES = ("dns", "ftp", "http", "https", "http_proxy", "imap", "imaps", "ldap", "mysql",
             "nntp", "none", "oracle", "pop", "pops", "radius", "pgsql", "simpletcp", "sip",
             "smtp", "submission")
_CHECKTYPES = ("connect", "negotiate", "external", "external-perl", "ping", "off", "on")
HOSTPORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+)(?::(?P<port>[A-Za-z0-9_-]+))?$")
_MAX_RANGE = 256




def strip_comment(line: str) -> str:
    quoted = False
    for i, c in enumerate(line):
        quoted = quoted != (c == '"')
        if c == "#" and not quoted:
            return line[:i]
    return line


def unquote(v: str) -> str:
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] == '"' else v


def as_ip(text: str) -> lb.IPAddress:
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        if re.fullmatch(r"[A-Za-z0-9.-]*[A-Za-z-][A-Za-z0-9.-]*", bare):
            raise ValueError(f"{text!r} is a host name: use an IP address (vigil resolves "
                             "no names when it imports)") from None
        raise ValueError(f"{text!r} is not an IP address") from None


def as_port(text: str) -> int:
    """A port number, or a common service name (lvs_import.PORTS; ldirectord asks
    getservbyname, which depends on the machine)."""
    if text.isdigit():
        if not 0 <= int(text) <= 65535:
            raise ValueError(f"port {text} is not 1-65535")
        return int(text)
    if text.lower() in PORTS:
        return PORTS[text.lower()]
    raise ValueError(f"{text!r} is neither a port number nor a common service name "
                     f"({', '.join(sorted(PORTS))})")


def whole(text: str, lo: int, hi: int, what: str) -> int:
    if not text.isdigit() or not lo <= int(text) <= hi:
        raise ValueError(f"{text!r}: expected {what}, a whole number from {lo} to {hi}")
    return int(text)


def _fallback(text: str) -> tuple[lb.IPAddress, int | None, str | None]:
    where, _, method = text.partition(" ")
    m = HOSTPORT.match(where)
    if m is None or method.strip() not in ("", "gate", "masq", "ipip"):
        raise ValueError(f"{text!r}: expected ADDRESS[:PORT] [gate|masq|ipip]")
    port = as_port(m["port"]) if m["port"] else None
    return as_ip(m["host"]), port or None, method.strip() or None


def _checktype(text: str) -> tuple[str, int]:
    if text.isdigit():
        return "combined", int(text)
    if text not in _CHECKTYPES:
        raise ValueError(f"{text!r}: expected {', '.join(_CHECKTYPES)} or a number")
    return text, 0


def _one_of(choices: tuple[str, ...], what: str) -> Callable[[str], str]:
    def conv(text: str) -> str:
        if text not in choices:
            raise ValueError(f"{text!r}: expected {what}: {', '.join(choices)}")
        return text
    return conv


def regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as e:
        raise ValueError(f"{text!r} is not a regular expression vigil reads: {e}") from None
    return text


def _scheduler(text: str) -> tuple[str, str | None]:
    found = scheduler(text)
    if found is None:
        raise ValueError(f"{text!r} is not an IPVS scheduler (rr, wrr, lc, wlc, sh, dh...)")
    return found


def _nonempty(text: str) -> str:
    if not text:
        raise ValueError("expected a value, found none")
    return text


_YES_NO = _one_of(("yes", "no"), "yes or no")
CONVERT: dict[str, Callable[[str], object]] = {
    **{k: lambda t: whole(t, 1, 86400, "seconds") for k in SECONDS},
    "failurecount": lambda t: whole(t, 1, 100, "a count of failures"),
    "checkport": lambda t: whole(t, 1, 65535, "a port"),
    "quiescent": lambda t: _YES_NO(t) == "yes", "ops": _YES_NO,
    "fallback": _fallback, "fallback6": _fallback, "checktype": _checktype,
    "service": _one_of(_SERVICES, "one of ldirectord's services"),
    "protocol": _one_of(("tcp", "udp", "fwm"), "a protocol"), "receive": regex,
    "httpmethod": lambda t: _one_of(("GET", "HEAD"), "GET or HEAD")(t.upper()),
    "scheduler": _scheduler, "netmask": prefix_length, "request": _nonempty,
    "checkcommand": _nonempty, "virtualhost": _nonempty,
}


def request_path(request: str) -> tuple[str, str | None]:
    """ldirectord's request -> vigil's path (ldirectord adds the leading "/"), and the note
    when it was a whole URL, which ldirectord fetched from the URL's own host."""
    if "://" not in request:
        return (request if request.startswith("/") else "/" + request), None
    url = urlsplit(request.lstrip("/"))
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    return path, f"request {request!r}: ldirectord fetched that URL; vigil requests {path} " \
                 "from each real server"


def argv(text: str) -> tuple[str, ...]:
    """checkcommand as argv: ldirectord runs it through the shell (Perl's system()), so one
    that needs a shell is carried as /bin/sh -c."""
    try:
        words = shlex.split(text)
    except ValueError:
        words = []
    if not words or re.search(r"[|&;<>()$`*?~]", text):
        return ("/bin/sh", "-c", text)
    return tuple(words)


def ip_range(first: str, last: str | None) -> list[lb.IPAddress]:
    """`real=A->B`: every IPv4 address from A to B, as ldirectord expands it."""
    a = as_ip(first)
    if last is None:
        return [a]
    b = as_ip(last)
    if a.version != 4 or b.version != 4 or not 0 <= int(b) - int(a) < _MAX_RANGE:
        raise ValueError(f"{first}->{last}: expected a range of at most {_MAX_RANGE} IPv4 "
                         "addresses, the first not above the last")
    return [ipaddress.IPv4Address(i) for i in range(int(a), int(b) + 1)]


REAL = re.compile(r"^(?P<first>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+?)"
                  r"(?:->(?P<last>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+?))?"
                  r"(?::(?P<port>[A-Za-z0-9_-]+))?\s+(?P<method>\S+)"
                  r"(?:\s+(?P<weight>[^\s\"]\S*))?"
                  r"(?:\s+\"(?P<request>.*)\"[, ]\s*\"(?P<receive>.*)\")?\s*$")
REAL_FORMAT = "expected ADDRESS[:PORT] gate|masq|ipip [WEIGHT] [\"REQUEST\", \"RECEIVE\"]"


def parse_real(text: str, vip: lb.Endpoint | None,
               check: lb.Check) -> tuple[str, list[lb.RealServer]]:
    """A `real=` line (its servers get `check`, or the line's own request/receive): its
    forwarding method and its servers, none when it has no port to forward to."""
    m = REAL.match(text)
    if m is None:
        raise ValueError(f"{text!r}: {REAL_FORMAT}")
    if m["method"] not in ("gate", "masq", "ipip"):
        raise ValueError(f"{m['method']!r}: the forwarding method is gate, masq or ipip")
    addresses = ip_range(m["first"], m["last"])
    port = (as_port(m["port"]) if m["port"] else 0) or (vip.port if vip else 0)
    weight = whole(m["weight"], 0, lb.MAX_WEIGHT, "a weight") if m["weight"] else 1
    if m["request"] is not None and check.type in ("http", "https"):
        check = dataclasses.replace(check, path=request_path(m["request"])[0],
                                    expect_body=regex(m["receive"]) or None)
    return m["method"], [lb.RealServer(lb.Endpoint(a, port), weight, check)
                         for a in addresses] if port else []
