"""Saved IPVS rules -> vigil's virtual servers (lvs_import.Imported): what `ipvsadm-save -n`
(`ipvsadm -S -n`) prints, which RHEL's `ipvsadm save` keeps in /etc/sysconfig/ipvsadm, and
equally the `ipvsadm -A ...` / `ipvsadm -a ...` lines of an admin's script:

    -A -t 192.168.10.200:80 -s rr            # -u udp, -f MARK [-6]; -p [SECONDS] -M MASK
    -a -t 192.168.10.200:80 -r 192.168.10.201:80 -m -w 1    # -g (the default), -i, -m

The lines are replayed as ipvsadm runs them: -E and -e replace the settings of the rule they
name (as in ipvsadm, an -E without -s means wlc again), -D and -d delete it; -C and the
commands that change no rule are listed as not carried over. IPVS checks nothing; vigil
checks every real server (its default TCP connect), and each service's notes say so.

Forwarding follows lvs_import's rules. NAT (-m) and direct routing (-g, ipvsadm's default)
are carried, tunnelling (-i) is not; a service carries the method of most of its real
servers (-m on a tie; never -g on a firewall-mark service) and the servers of the other
method are dropped, since a vigil service forwards one way; a service left with no server
is dropped whole. As ipvsadm does, an -a or -e with -g gives the server the service's port
(DR cannot change it), so `-r 10.0.0.1:8080 -g`, `-r 10.0.0.1:0 -g` and `-r 10.0.0.1 -g`
name the same server, 10.0.0.1 on the service's port; a port other than 0 is noted.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from vigil.balancer import model as lb
from vigil.config import lvs_import
from vigil.config.files import MAX_CONFIG_FILE, FileRefused, read_file
from vigil.config.lvs_import import PLACEHOLDER_GROUP, PORTS, Imported
from vigil.errors import ConfigError, ConfigProblem

# ipvsadm's options: the spelling reported (its short one when it has one, "=" when it takes a
# value, "?" when the value may be left out) -> its long spelling
_OPTIONS = {
    "-A": "--add-service", "-E": "--edit-service", "-D": "--delete-service",
    "-a": "--add-server", "-e": "--edit-server", "-d": "--delete-server",
    "-t=": "--tcp-service", "-u=": "--udp-service", "--sctp-service=": "",
    "-f=": "--fwmark-service", "-6": "--ipv6", "-s=": "--scheduler", "-p?": "--persistent",
    "-M=": "--netmask", "-b=": "--sched-flags", "--pe=": "", "-o": "--ops",
    "-r=": "--real-server", "-g": "--gatewaying", "-i": "--ipip", "-m": "--masquerading",
    "-w=": "--weight", "-x=": "--u-threshold", "-y=": "--l-threshold", "--tun-type=": "",
    "--tun-port=": "", "--tun-nocsum": "", "--tun-csum": "", "--tun-remcsum": ""}
_SPELLING = {s: (k.rstrip("=?"), k[-1] if k[-1] in "=?" else "")
             for k, long in _OPTIONS.items() for s in (k.rstrip("=?"), long) if s}
_KEY = ("-t", "-u", "--sctp-service", "-f")
_SERVICE = (*_KEY, "-6", "-s", "-p", "-M", "-b", "--pe", "-o")
_SERVER = (*_KEY, "-6", "-r", "-g", "-i", "-m", "-w", "-x", "-y", "--tun-type", "--tun-port",
           "--tun-nocsum", "--tun-csum", "--tun-remcsum")  # --tun-*: with -i
_ALLOWED = {"-A": _SERVICE, "-E": _SERVICE, "-D": (*_KEY, "-6"), "-a": _SERVER, "-e": _SERVER,
            "-d": (*_KEY, "-6", "-r")}
_IGNORED = {  # the commands that add no service -> why they are not carried over
    **dict.fromkeys(("-C", "--clear"), "clears IPVS's table before the rules that follow; "
                    "vigil.toml lists the whole set of services"),
    **dict.fromkeys(("-R", "--restore"), "reads rules from its input: import that file"),
    **dict.fromkeys(("-S", "--save", "-L", "-l", "--list", "-Z", "--zero"),
                    "changes no rule: nothing to carry over"),
    "--set": "IPVS's connection timeouts: vigil's connections are conntrack's "
             "(net.netfilter.nf_conntrack_*_timeout)",
    **dict.fromkeys(("--start-daemon", "--stop-daemon"), "vigil synchronises connections "
                    "with conntrackd, not IPVS's sync daemon (docs/balancer.md)")}
_UNSUPPORTED = {"-b": "scheduler flags: vigil's schedulers have none",
                "--pe": "a persistence engine: vigil persists by client address only",
                "-o": "one-packet scheduling: vigil schedules connections (conntrack)"}
_FORWARD: dict[str, lb.Forward] = {"-m": "nat", "-g": "dr"}
_SPELLED = {"nat": "-m", "dr": "-g"}
_ADDRESS = re.compile(r"(?:\[(?P<v6>[^\]]*)\]|(?P<v4>[^:\[\]]*))(?::(?P<port>[^:]*))?")
_DIGITS = re.compile(r"[0-9]{1,10}")
_HOSTNAME = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9_.-]+")
_MAX_TIMEOUT = 86400 * 31  # ipvsadm's bound on -p
_CHECKED = ("ipvsadm checked nothing; vigil checks each real server with a TCP connect every "
            "1 s; set [virtual_server.check] type = \"none\" to keep ipvsadm's behaviour")


class _Bad(Exception):
    """What is wrong with a line: (the option, what was expected)."""


@dataclass
class _Real:
    line: int
    endpoint: lb.Endpoint
    forward: str  # -g, -i or -m
    weight: int
    thresholds: tuple[str, ...]  # -x, -y given other than 0
    written: int  # the port on the line, before -g gave the server the service's


@dataclass
class _Service:
    spelled: str  # "-t 192.168.10.200:80", as the notes name it
    protocol: str  # tcp, udp or sctp
    endpoint: lb.Endpoint | None
    fwmark: int | None
    family: int
    line: int = 0
    scheduler: str | None = None  # None: not given, ipvsadm's default wlc
    persistence: float | None = None
    netmask: int | None = None
    unsupported: list[tuple[int, str, str]] = field(default_factory=list)  # line, what, why
    reals: dict[lb.Endpoint, _Real] = field(default_factory=dict)


def import_file(path: Path, group: str = PLACEHOLDER_GROUP) -> Imported:
    """The rules in the file at `path` (at most MAX_CONFIG_FILE bytes, read as every
    configuration file is: files.read_file)."""
    try:
        data = read_file(path, MAX_CONFIG_FILE, "a file of IPVS rules").data
    except FileRefused as e:
        raise ConfigError(ConfigProblem(str(path), None, "<file>", e.reason)) from None
    return import_text(data.decode("utf-8", "surrogateescape"), str(path), group)


def import_text(text: str, source: str, group: str = PLACEHOLDER_GROUP) -> Imported:
    """The services of saved IPVS rules (or ipvsadm command lines), each in `group`; every
    problem of every line together in one ConfigError."""
    r = _Reader(source)
    start, parts = 0, list[str]()
    for n, raw in enumerate(text.splitlines(), start=1):  # a script's `\` continuations
        start = n if not parts else start
        parts.append(raw.removesuffix("\\"))
        if not raw.endswith("\\"):
            r.line(start, " ".join(parts))
            parts = []
    r.line(start, " ".join(parts))
    if r.problems:
        raise ConfigError(r.problems)
    return r.result(group)


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[ConfigProblem] = []
        self.drops: list[tuple[int, str, str]] = []  # line, what, why
        self.services: dict[tuple[object, ...], _Service] = {}

    def problem(self, n: int, key: str, message: str) -> None:
        self.problems.append(ConfigProblem(self.source, n, key, message))

    def line(self, n: int, text: str) -> None:
        """One line's rule, applied; its first fatal problem (and any other) reported."""
        try:
            words = shlex.split(text, comments=True)
        except ValueError as e:
            self.problem(n, "<syntax>", f"cannot split the line as a shell does: {e}")
            return
        try:
            if words and words[0].rsplit("/", 1)[-1] == "ipvsadm":
                words = words[1:]
            if words and words[0] in _IGNORED:
                self.drops.append((n, f"ipvsadm {' '.join(words)[:60]}", _IGNORED[words[0]]))
            elif words:
                opts = _options(words)
                self.apply(n, self.command(n, opts, words[0]), opts, _service(opts))
        except _Bad as e:
            self.problem(n, *e.args)

    def command(self, n: int, opts: dict[str, str], first: str) -> str:
        commands = [o for o in opts if o in _ALLOWED]
        if len(commands) != 1:
            raise _Bad(first, "expected one command: -A, -E or -D (a service), -a, -e or -d "
                              "(a real server), or -C")
        for o in opts:
            if o != commands[0] and o not in _ALLOWED[commands[0]]:
                self.problem(n, o, f"is not an option of {commands[0]}")
        return commands[0]

    def apply(self, n: int, cmd: str, opts: dict[str, str], new: _Service) -> None:
        key = (new.protocol, new.endpoint, new.fwmark, new.family)
        svc = self.services.get(key)
        if cmd == "-A" and svc is not None:
            raise _Bad(cmd, f"{new.spelled} is already added on line {svc.line}")
        if cmd == "-A":
            self.services[key], new.line = new, n
            _settings(n, opts, new)
        elif svc is None:
            raise _Bad(cmd, f"{new.spelled}: no such service (expected an -A for it on an "
                            "earlier line)")
        elif cmd == "-E":
            _settings(n, opts, svc)
        elif cmd == "-D":
            del self.services[key]
        else:
            _server(n, cmd, opts, svc)

    def result(self, group: str) -> Imported:
        out, taken = Imported(), set[str]()
        for svc in self.services.values():
            self.emit(svc, out, taken, group)
        for n, what, why in sorted(self.drops, key=lambda d: d[0]):
            out.drop(self.source, n, what, why)
        return out

    def emit(self, svc: _Service, out: Imported, taken: set[str], group: str) -> None:
        where = f"-A {svc.spelled}"
        if svc.protocol == "sctp" or (svc.endpoint is not None and svc.endpoint.port == 0):
            self.drops.append((svc.line, where, "SCTP: vigil balances TCP and UDP"
                               if svc.protocol == "sctp" else "port 0 (every port, with -p): "
                               "a vigil service has one port; use -f MARK"))
            return
        self.drops += [(n, f"{where} {o}", why) for n, o, why in svc.unsupported]
        reals = [r for r in svc.reals.values() if self.usable(svc, r)]
        forward, tie = lvs_import.choose_forward(_FORWARD[r.forward] for r in reals)
        kept = tuple(k for k in (self.real(svc, r, forward, tie) for r in reals)
                     if k is not None)
        if not kept:
            self.drops.append((svc.line, where, "no real server left that vigil can carry "
                               "(see its real servers' lines)" if svc.reals else
                               "no real server (-a) in the rules"))
            return
        name = lvs_import.service_name(svc.endpoint, svc.fwmark, taken)
        scheduler, why = lvs_import.scheduler(svc.scheduler or "wlc") or ("wrr", None)
        if why:
            out.note(name, f"-s {svc.scheduler}: {why}" if svc.scheduler else
                     f"no -s: ipvsadm's default wlc; {why}")
        if svc.fwmark is not None:
            out.note(name, f"IPVS balanced every protocol marked {svc.fwmark}; a vigil fwmark "
                           "service is one protocol: tcp (add a udp one for UDP)")
        carried = {r.endpoint for r in kept}
        for r in svc.reals.values():
            if r.endpoint in carried and forward == "dr" and r.written not in (0, r.endpoint.port):
                written = lb.Endpoint(r.endpoint.address, r.written)
                out.note(name, f"line {r.line}: -r {written} -g: direct routing cannot "
                               "change the port: ipvsadm gave the server the service's, "
                               f"{r.endpoint.port}")
        out.note(name, _CHECKED)
        out.services.append(lb.VirtualServer(
            name=name, group=group, real=kept, endpoint=svc.endpoint, fwmark=svc.fwmark,
            protocol=svc.protocol, scheduler=scheduler,  # type: ignore[arg-type]
            forward=forward, persistence=svc.persistence, persistence_netmask=svc.netmask))

    def usable(self, svc: _Service, r: _Real) -> bool:
        """Whether a real server's method can be carried at all (not -i, not -g on a
        firewall mark): the servers that choose the service's method. Else its reason."""
        why = lvs_import.TUNNEL if r.forward == "-i" else \
            lvs_import.FWMARK_DR if r.forward == "-g" and svc.fwmark is not None else None
        if why is not None:
            self.drops.append((r.line, f"-a {svc.spelled} -r {r.endpoint} {r.forward}", why))
        return why is None

    def real(self, svc: _Service, r: _Real, forward: lb.Forward,
             tie: bool) -> lb.RealServer | None:
        """A real server vigil can carry (forwarded as its service is, with a port), else
        None and the reason."""
        what = f"-a {svc.spelled} -r {r.endpoint}"
        if _FORWARD[r.forward] != forward:
            self.drops.append((r.line, f"{what} {r.forward}",
                               lvs_import.one_way(_FORWARD[r.forward], forward, tie, _SPELLED)))
            return None
        if svc.endpoint is not None and r.endpoint.address == svc.endpoint.address:
            self.drops.append((r.line, what, "the director itself (IPVS's local node): vigil "
                               "forwards to other hosts; make it the sorry_server"))
            return None
        if r.endpoint.port == 0:
            self.drops.append((r.line, what, "port 0 (each packet's own port): vigil's NAT "
                               "sends to one port; add it with a port by hand"))
            return None
        self.drops += [(r.line, f"{what} {o}", "connection thresholds: vigil has none")
                       for o in r.thresholds]
        return lb.RealServer(r.endpoint, r.weight, lb.Check())


def _options(words: list[str]) -> dict[str, str]:
    """Option (as reported) -> its value ("" for a flag, or -p without one)."""
    out: dict[str, str] = {}
    i = 0
    while i < len(words):
        spelled, eq, value = words[i].partition("=")
        if spelled not in _SPELLING:
            raise _Bad(words[i][:40], "unknown option (expected ipvsadm's -A -E -D -a -e -d "
                                      "-t -u -f -s -p -M -r -g -i -m -w -x -y ...)")
        opt, takes = _SPELLING[spelled]
        following = words[i + 1] if i + 1 < len(words) else None
        if eq and not takes:
            raise _Bad(opt, "takes no value")
        if not eq and (takes == "=" or takes == "?" and following and following[0] != "-"):
            if following is None:
                raise _Bad(opt, "expects a value")
            value, i = following, i + 1
        if opt in out:
            raise _Bad(opt, "is given twice")
        out[opt], i = value, i + 1
    return out


def _service(opts: dict[str, str]) -> _Service:
    """The service a line names: -t, -u, --sctp-service ADDRESS:PORT or -f MARK [-6]."""
    given = [o for o in _KEY if o in opts]
    if len(given) != 1:
        raise _Bad("/".join(given) or "-t", "expected one service: -t ADDRESS:PORT, -u "
                                             "ADDRESS:PORT or -f MARK")
    o = given[0]
    if o == "-f":
        mark, family = _integer(o, opts[o], 1, 0xFFFFFFFF), 6 if "-6" in opts else 4
        spelled = f"-f {mark} -6" if family == 6 else f"-f {mark}"
        return _Service(spelled, "tcp", None, mark, family)
    protocol = {"-t": "tcp", "-u": "udp"}.get(o, "sctp")
    ep = _endpoint(o, opts[o], protocol, None)
    return _Service(f"{o} {ep}", protocol, ep, None, ep.address.version)


def _settings(n: int, opts: dict[str, str], svc: _Service) -> None:
    """A service's settings from its -A or -E line (all of them: -E replaces them)."""
    s = opts.get("-s")
    if s is not None and lvs_import.scheduler(s) is None:
        raise _Bad("-s", f"unknown scheduler {s!r} (expected an IPVS scheduler: rr, wrr, lc, "
                         "wlc, sh, dh, mh, sed, nq...)")
    persistent, masked = "-p" in opts, "-M" in opts
    svc.scheduler = s
    svc.persistence = float(_integer("-p", opts["-p"] or "300", 1, _MAX_TIMEOUT)) \
        if persistent else None
    netmask = _netmask(opts["-M"], svc.family) if masked else None
    svc.netmask = netmask if persistent else None
    svc.unsupported = [(n, o, why) for o, why in _UNSUPPORTED.items() if o in opts]
    if masked and not persistent:
        svc.unsupported.append((n, "-M", "means nothing without -p (persistence)"))


def _server(n: int, cmd: str, opts: dict[str, str], svc: _Service) -> None:
    """-a, -e or -d: a real server of `svc` added, replaced or deleted."""
    if "-r" not in opts:
        raise _Bad(cmd, "expected -r ADDRESS[:PORT], the real server")
    ep = _endpoint("-r", opts["-r"], svc.protocol, svc.endpoint)
    forwards = [o for o in ("-g", "-i", "-m") if o in opts] or ["-g"]
    if len(forwards) > 1:
        raise _Bad(forwards[1], "expected one of -g, -i or -m")
    forward, written = forwards[0], ep.port
    if cmd != "-d" and ep.address.version != svc.family and forward != "-i":
        raise _Bad("-r", f"{ep} is IPv{ep.address.version}, the service IPv{svc.family}")
    if cmd != "-d" and forward != "-m" and svc.endpoint is not None:
        ep = lb.Endpoint(ep.address, svc.endpoint.port)  # ipvsadm's own rule, as it adds it
    old = svc.reals.get(ep)
    if cmd == "-a" and old is not None:
        raise _Bad("-r", f"{ep} is already a real server of {svc.spelled} (line {old.line})")
    if cmd != "-a" and old is None:
        raise _Bad("-r", f"{ep} is not a real server of {svc.spelled} (expected an -a for it "
                         "on an earlier line)")
    if cmd == "-d":
        del svc.reals[ep]
        return
    weight = _integer("-w", opts.get("-w", "1"), 0, lb.MAX_WEIGHT)
    thresholds = tuple(o for o in ("-x", "-y") if _integer(o, opts.get(o, "0"), 0, 2**31 - 1))
    svc.reals[ep] = _Real(n, ep, forward, weight, thresholds, written)


def _endpoint(key: str, text: str, protocol: str, service: lb.Endpoint | None) -> lb.Endpoint:
    """ADDRESS:PORT or [IPV6]:PORT; a real server's port is the service's when not written
    (0 for a fwmark service). A port may be named (http, from /etc/services), not a host:
    ipvsadm-save without -n writes names, which vigil does not resolve."""
    m = _ADDRESS.fullmatch(text)
    if m is None or (m.group("port") is None and key != "-r"):
        form = "ADDRESS[:PORT]" if key == "-r" else "ADDRESS:PORT"
        raise _Bad(key, f"{text[:60]!r}: expected {form}, IPv6 in brackets")
    host, port = m.group("v6") or m.group("v4") or "", m.group("port")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        why = "expected an IP address"
        if "$" in host:
            why = "a shell variable? vigil reads the file, it does not run it: write the address"
        elif _HOSTNAME.fullmatch(host):
            why = "a host name: saved without -n? use `ipvsadm-save -n`, or an IP address"
        raise _Bad(key, f"{host[:60]!r}: {why}") from None
    if port is None:
        return lb.Endpoint(address, service.port if service else 0)
    if _DIGITS.fullmatch(port):
        return lb.Endpoint(address, _integer(key, port, 0, 65535))
    if port.lower() in PORTS:
        return lb.Endpoint(address, PORTS[port.lower()])
    raise _Bad(key, f"{port[:40]!r}: expected a port number or a common service name "
                    f"({', '.join(sorted(PORTS))})")


def _integer(key: str, text: str, lo: int, hi: int) -> int:
    if not _DIGITS.fullmatch(text) or not lo <= int(text) <= hi:
        raise _Bad(key, f"{text[:40]!r}: expected an integer from {lo} to {hi}")
    return int(text)


def _netmask(text: str, family: int) -> int:
    """-M: a netmask (255.255.255.0) or a prefix length (IPv6's 64) -> a prefix length."""
    try:
        return lvs_import.prefix_length(text, family)
    except ValueError as e:
        raise _Bad("-M", str(e)) from None
