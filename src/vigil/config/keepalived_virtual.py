"""keepalived's other half: `virtual_server` (and `virtual_server_group`) blocks -> vigil's
virtual servers (lvs_import.Imported), with their real_servers and checkers.

    virtual_server 192.168.10.200 80 {      # or: fwmark 1 | group NAME
        delay_loop 6                        # the checks' interval
        lb_algo rr                          # lvs_sched; IPVS names (lvs_import.scheduler)
        lb_kind DR                          # lvs_method: NAT or DR; TUN is not carried
        persistence_timeout 300  persistence_granularity 255.255.255.0
        protocol TCP  quorum 1  sorry_server 127.0.0.1 80
        real_server 192.168.10.201 80 {
            weight 1  inhibit_on_failure    # quiescent; lvs_method: this server's own
            HTTP_GET { url { path /health digest HEX status_code 200 }
                       connect_timeout 3 retry 3 delay_before_retry 3 connect_port 80 }
        }                                   # SSL_GET, TCP_CHECK, MISC_CHECK { misc_path .. }
    }

keepalived takes a server out after its check failed and then `retry` retries failed: vigil's
fall is retry + 1, each retry one interval later (not `delay_before_retry` later); it puts a
server back at its first good check: rise 1. Several checkers on one server (all must pass in
keepalived) keep the first (keepalived_checkers.py reads them). What is not carried over is listed, never silently dropped.

Forwarding follows lvs_import's rules. A real server forwards by its own lvs_method, else
its virtual_server's lb_kind (or lvs_method), else NAT, as in keepalived; TUN is dropped (a
virtual_server whose every server tunnels, whole); each service carries the method of most
of its servers (NAT on a tie; never DR on a fwmark), the others dropped, since a vigil
service forwards one way. keepalived resets a DR server's port to the virtual server's with
a warning, and so does vigil, with a note; the check stays on the port written, where
keepalived's went. The sorry_server forwards by sorry_server_lvs_method, else lb_kind: of
the other method it is dropped, unless it is the director itself (loopback).
"""

from __future__ import annotations

import ipaddress

from vigil.balancer import model as lb
from vigil.config import lvs_import
from vigil.config.keepalived_checkers import (CHECKERS, IGNORED, OTHERCHECKERS,
                                              read_checker, seconds)
from vigil.config.keepalived_importer import Importer
from vigil.config.keepalived_syntax import Statement, title
from vigil.config.lvs_import import FWMARK_DR, TUNNEL

_METHODS = ("NAT", "DR", "TUN")
_FORWARD: dict[str, lb.Forward] = {"NAT": "nat", "DR": "dr"}
_SPELLED = {"nat": "NAT", "dr": "DR"}


Target = tuple[lb.Endpoint | None, int | None]  # a service's address, or its firewall mark
Real = tuple[lb.RealServer, str, Statement, str]  # the server, NAT or DR, its block, its name


class VirtualReader:
    def __init__(self, imp: Importer) -> None:
        self.imp = imp
        self.out = lvs_import.Imported()
        self.names: set[str] = set()
        self.vs_groups: dict[str, tuple[Statement, list[Target]]] = {}
        self.used_groups: set[str] = set()
        self.pending: list[str] = []  # notes of the virtual_server being read
        self.inhibit: set[lb.Endpoint] = set()  # its real servers with inhibit_on_failure
        self.dropped: set[tuple[int, str]] = set()  # once, though a group has many members

    def read(self, statements: tuple[Statement, ...]) -> lvs_import.Imported:
        for s in statements:
            if s.keyword == "virtual_server_group":
                self.group(s)
        for s in statements:
            if s.keyword == "virtual_server":
                self.virtual(s)
        for name, (s, _) in self.vs_groups.items():
            if name not in self.used_groups:
                self.imp.drop(s, title(s), "no virtual_server uses it")
        return self.out

    def group(self, s: Statement) -> None:
        where = title(s)
        if len(s.args) != 1:
            self.imp.report(s, "virtual_server_group", "expects one name before its { } block")
            return
        members: list[Target] = []
        for d in self.imp.block(s, where):
            if d.keyword == "fwmark" and len(d.args) == 1:
                mark = self.imp.integer(d, where, 1, 0xFFFFFFFF)
                if mark is not None:
                    members.append((None, mark))
            elif len(d.args) == 1 and "-" not in d.keyword:
                ep = self.endpoint(d, where, d.keyword, d.args[0])
                if ep is not None:
                    members.append((ep, None))
            else:
                self.imp.report(d, f"{where}.{d.keyword[:40]}", "expected ADDRESS PORT or "
                                "fwmark N (address ranges are not carried over: list them)")
        self.vs_groups[s.args[0]] = (s, members)

    def endpoint(self, s: Statement, where: str, address: str, port: str) -> lb.Endpoint | None:
        try:
            a = ipaddress.ip_address(address)
        except ValueError:
            self.imp.report(s, where, f"{address[:60]!r} is not an IP address")
            return None
        p = self.imp.integer(s, where, 1, 65535, port)
        return None if p is None else lb.Endpoint(a, p)

    def virtual(self, s: Statement) -> None:
        where = title(s)
        targets: list[Target] = []
        if len(s.args) == 2 and s.args[0] == "fwmark":
            mark = self.imp.integer(s, where, 1, 0xFFFFFFFF, s.args[1])
            targets = [] if mark is None else [(None, mark)]
        elif len(s.args) == 2 and s.args[0] == "group":
            found = self.vs_groups.get(s.args[1])
            if found is None:
                self.imp.report(s, where, f"no virtual_server_group {s.args[1][:40]!r}")
                return
            self.used_groups.add(s.args[1])
            targets = found[1]
        elif len(s.args) == 2:
            ep = self.endpoint(s, where, *s.args)
            targets = [] if ep is None else [(ep, None)]
        else:
            self.imp.report(s, "virtual_server", "expects ADDRESS PORT, fwmark N or group NAME "
                            "before its { } block")
            return
        body = self.imp.block(s, where)
        settings = {d.keyword: d for d in body if d.keyword != "real_server"}
        interval = self._seconds(settings.get("delay_loop"), where, 60.0)
        kind = self.method(settings.get("lb_kind") or settings.get("lvs_method"), where)
        own = any(d.keyword == "lvs_method" for r in body if r.keyword == "real_server"
                  for d in r.block or ())
        if kind == "TUN" and not own:
            self.imp.drop(s, where, f"lb_kind TUN: {TUNNEL}")
            return
        proto = settings.get("protocol")
        protocol = (proto.args[0].lower() if proto and proto.args else "tcp")
        if protocol not in ("tcp", "udp"):
            self.imp.drop(s, where, f"protocol {protocol.upper()}: vigil balances TCP and UDP")
            return
        self.pending, self.inhibit = [], set()
        read = [r for r in (self.real(d, where, interval, kind or "NAT") for d in body
                            if d.keyword == "real_server") if r is not None]
        if not any(d.keyword == "real_server" for d in body):
            self.imp.report(s, where, "has no real_server")
            return
        reals = [r for r in read if r[1] != "TUN"]
        for _, _, d, here in (r for r in read if r[1] == "TUN"):
            self.imp.drop(d, f"{here}: TUN", TUNNEL)
        if read and not reals:
            self.imp.drop(s, where, "none of its real servers can be carried over (see "
                                    "their lines)")
            return
        if self.inhibit and len(self.inhibit) < len(reals):
            self.pending.append("inhibit_on_failure on some real servers only: vigil's "
                                "quiescent is the service's, so all of them keep it")
        known = ("delay_loop", "lb_algo", "lvs_sched", "lb_kind", "lvs_method", "protocol",
                 "persistence_timeout", "persistence_granularity", "quorum", "sorry_server",
                 "sorry_server_lvs_method")
        for key, d in settings.items():
            if key in IGNORED:
                self.imp.drop(d, f"{where}: {key}", IGNORED[key])
            elif key not in known:
                self.imp.report(d, f"{where}.{key[:40]}", "unknown virtual_server keyword")
        for ep, mark in targets:
            self.service(s, settings, ep, mark, protocol, reals, kind or "NAT")

    def method(self, d: Statement | None, where: str) -> str | None:
        """lb_kind, lvs_method or sorry_server_lvs_method: NAT, DR or TUN (None: not given,
        or a problem reported)."""
        if d is None:
            return None
        word = (d.args or ("",))[0].upper()
        if word not in _METHODS:
            self.imp.report(d, f"{where}.{d.keyword}", f"{' '.join(d.args)[:40]!r}: expected "
                                                       "NAT, DR or TUN")
            return None
        return word

    def drop_once(self, d: Statement, what: str, why: str) -> None:
        if (d.line, what) not in self.dropped:
            self.dropped.add((d.line, what))
            self.imp.drop(d, what, why)

    def forwarded(self, ep: lb.Endpoint | None, reals: list[Real],
                  notes: list[str]) -> tuple[lb.Forward, bool, tuple[lb.RealServer, ...]]:
        """The service's one method, whether it was a tie, and the servers it carries (on
        the virtual port for DR); the others dropped with their reasons. None carried: a
        firewall mark whose every server is DR."""
        if ep is None:
            nat = [r for r in reals if r[1] == "NAT"]
            for _, _, d, here in (r for r in reals if r[1] == "DR" and nat):
                self.drop_once(d, f"{here}: DR", FWMARK_DR)
            reals = nat
        forward, tie = lvs_import.choose_forward(_FORWARD[m] for _, m, _, _ in reals)
        out: list[lb.RealServer] = []
        for rs, m, d, here in reals:
            if _FORWARD[m] != forward:
                self.drop_once(d, f"{here}: {m}", lvs_import.one_way(_FORWARD[m], forward, tie,
                                                                     _SPELLED))
                continue
            if forward == "dr" and ep is not None and rs.endpoint.port != ep.port:
                rs = lvs_import.dr_port(rs, ep.port)
                notes.append(f"{here}: direct routing cannot change the port: keepalived "
                             f"resets it to the virtual server's, {ep.port}, and so does "
                             "vigil" + (f"; its check stays on port {rs.check.port}"
                                        if rs.check.port else ""))
            if any(r.endpoint == rs.endpoint for r in out):
                self.drop_once(d, here, f"{rs.endpoint} twice, on the virtual port: the first "
                                        "is kept")
                continue
            out.append(rs)
        return forward, tie, tuple(out)

    def service(self, s: Statement, settings: dict[str, Statement], ep: lb.Endpoint | None,
                mark: int | None, protocol: str, read: list[Real], kind: str) -> None:
        where, notes = title(s), list(self.pending)
        forward, tie, reals = self.forwarded(ep, read, notes)
        if not reals:
            self.drop_once(s, f"virtual_server {' '.join(s.args)}" +
                           (f": fwmark {mark}" if s.args[0] == "group" else ""),
                           f"DR: {FWMARK_DR}")
            return
        name = lvs_import.service_name(ep, mark, self.names)
        sched = settings.get("lb_algo") or settings.get("lvs_sched")
        scheduler = "wlc"
        if sched is not None:
            scheduler = self.imp.value(sched, where) or "wlc"
        mapped = lvs_import.scheduler(scheduler)
        if mapped is None:
            self.imp.report(sched or s, f"{where}.lb_algo", f"unknown scheduler {scheduler!r}")
            return
        if mapped[1]:
            self.out.note(name, f"lb_algo {scheduler}: {mapped[1]}")
        persistence = netmask = None
        if "persistence_timeout" in settings:
            persistence = self._seconds(settings["persistence_timeout"], where, 360.0)
        if "persistence_granularity" in settings:
            netmask = self._netmask(settings["persistence_granularity"], where)
            persistence = persistence if persistence is not None else 360.0
        quorum = 1
        if "quorum" in settings:
            quorum = self.imp.integer(settings["quorum"], where, 1, 65535) or 1
        sorry = self.sorry(settings, where, ep, kind, (forward, tie), notes)
        for text in notes:
            self.out.note(name, text)
        self.out.services.append(lb.VirtualServer(
            name=name, group=lvs_import.PLACEHOLDER_GROUP, real=reals, endpoint=ep,
            fwmark=mark, protocol=protocol,  # type: ignore[arg-type]
            scheduler=mapped[0],  # type: ignore[arg-type]
            forward=forward, persistence=persistence, persistence_netmask=netmask,
            quorum=min(quorum, len(reals)), sorry_server=sorry, quiescent=bool(self.inhibit)))
        if quorum > len(reals):
            self.out.note(name, f"quorum {quorum} is more than its {len(reals)} real servers: "
                                f"{len(reals)}")

    def sorry(self, settings: dict[str, Statement], where: str, ep: lb.Endpoint | None,
              kind: str, way: tuple[lb.Forward, bool], notes: list[str]) -> lb.Endpoint | None:
        """The sorry_server, forwarded as its service is (`way`: the service's method and
        whether it was a tie), else dropped; the director itself (loopback) always."""
        d = settings.get("sorry_server")
        if d is None:
            return None
        if len(d.args) != 2:
            self.imp.report(d, f"{where}.sorry_server", "expects ADDRESS PORT")
            return None
        sorry = self.endpoint(d, f"{where}.sorry_server", *d.args)
        method = self.method(settings.get("sorry_server_lvs_method"), where) or kind
        what = f"{where}: sorry_server {' '.join(d.args)} ({method})"
        if sorry is None or sorry.address.is_loopback:
            pass
        elif method == "TUN":
            self.drop_once(d, what, TUNNEL)
            return None
        elif method == "DR" and ep is None:
            self.drop_once(d, what, FWMARK_DR)
            return None
        elif _FORWARD[method] != way[0]:
            self.drop_once(d, what, lvs_import.one_way(_FORWARD[method], way[0], way[1],
                                                       _SPELLED))
            return None
        if sorry is not None and way[0] == "dr" and ep is not None and sorry.port != ep.port:
            notes.append(
                f"sorry_server {' '.join(d.args)}: direct routing cannot change the port: "
                + ("the director answers on the virtual address" if sorry.address.is_loopback
                   else "keepalived resets it to the virtual server's") + f", port {ep.port}")
            sorry = lb.Endpoint(sorry.address, ep.port)
        return sorry

    def real(self, s: Statement, where: str, interval: float, kind: str) -> Real | None:
        """A real_server: the server, its method (its own lvs_method, else the virtual
        server's `kind`), its block and its name in notes."""
        if len(s.args) != 2:
            self.imp.report(s, f"{where}.real_server", "expects ADDRESS PORT")
            return None
        ep = self.endpoint(s, f"{where}.real_server", *s.args)
        here = f"{where}: real_server {' '.join(s.args)}"
        weight, check = 1, None
        for d in self.imp.block(s, here):
            if d.keyword == "weight":
                weight = self.imp.integer(d, here, 0, lb.MAX_WEIGHT) or 0
            elif d.keyword == "lvs_method":
                kind = self.method(d, here) or kind
            elif d.keyword == "inhibit_on_failure":
                if ep is not None:
                    self.inhibit.add(ep)
            elif d.keyword in CHECKERS:
                if check is None:
                    check = read_checker(self.imp, d, here, interval, self.pending)
                else:
                    self.imp.drop(d, f"{here}: {d.keyword}", "one check per real server in "
                                  "vigil: the first is kept")
            elif d.keyword in OTHERCHECKERS:
                self.imp.drop(d, f"{here}: {d.keyword}", "vigil checks tcp, http, https and "
                              "exec: use MISC_CHECK-style exec")
            elif d.keyword in IGNORED:
                self.imp.drop(d, f"{here}: {d.keyword}", IGNORED[d.keyword])
            else:
                self.imp.report(d, f"{here}.{d.keyword[:40]}", "unknown real_server keyword")
        if ep is None:
            return None
        if check is None:  # keepalived keeps a server with no checker in, always
            check = lb.Check(type="none", interval=interval, timeout=min(5.0, interval),
                             rise=1)
        return lb.RealServer(ep, weight, check), kind, s, here

    def _seconds(self, d: Statement | None, where: str, default: float) -> float:
        return seconds(self.imp, d, where, default)

    def _netmask(self, d: Statement, where: str) -> int | None:
        v = self.imp.value(d, where) or ""
        try:
            return lvs_import.prefix_length(v)
        except ValueError as e:
            self.imp.report(d, f"{where}.persistence_granularity", str(e))
            return None
