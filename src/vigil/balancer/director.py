"""What the data plane should hold: the configured services, each real server's health and
the operator's drains, made into nft.py's Plan (NAT) and nft_dr.py's (direct routing).
Pure; service.py applies them.

A real server takes new connections when its checks say it is up, its weight is above 0 and
no operator drained it (`vigil lb drain`). Service and server numbers (the connection marks)
are kept across `reconfigure`, so a reload that adds, removes or re-weights servers changes
only what it must.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vigil.balancer import counters, nft, nft_dr
from vigil.balancer.model import Endpoint, VirtualServer

Key = tuple[str, Endpoint]


class Director:
    def __init__(self, services: Sequence[VirtualServer]) -> None:
        self.services: dict[str, VirtualServer] = {}
        self.numbers: dict[str, int] = {}
        self.ids: dict[str, dict[Endpoint, int]] = {}
        self.drained: set[Key] = set()
        self.reconfigure(services)

    def reconfigure(self, services: Sequence[VirtualServer]) -> None:
        self.services = {vs.name: vs for vs in services}
        self.numbers = nft.numbering(list(self.services), self.numbers, nft.MAX_SERVICES)
        self.ids = {vs.name: nft.numbering([r.endpoint for r in vs.real],
                                           self.ids.get(vs.name, {}), nft.MAX_REAL)
                    for vs in services}
        self.drained = {k for k in self.drained if self._known(k)}
        # Derived from numbers and ids, for key_of (every refusal passive.py sees).
        self._by_mark = {nft.mark(self.numbers[name], i): (name, endpoint)
                         for name, ids in self.ids.items() for endpoint, i in ids.items()}

    def _known(self, key: Key) -> bool:
        vs = self.services.get(key[0])
        return vs is not None and any(r.endpoint == key[1] for r in vs.real)

    def find(self, service: str, server: str) -> Key:
        """The key of `server` ("address:port", as `vigil lb status` shows it) in `service`;
        KeyError with a sentence naming what is unknown."""
        vs = self.services.get(service)
        if vs is None:
            raise KeyError(f"no virtual server {service!r}; virtual servers: "
                           f"{', '.join(sorted(self.services)) or '(none)'}")
        for r in vs.real:
            if str(r.endpoint) == server:
                return (service, r.endpoint)
        raise KeyError(f"virtual server {service!r} has no real server {server!r}; its "
                       f"servers: {', '.join(str(r.endpoint) for r in vs.real)}")

    def key_of(self, mark: int) -> Key | None:
        """The real server a connection mark names (nft.mark); None for a mark that is not
        one of ours (another program's, or of a server gone since)."""
        return self._by_mark.get(mark)

    def drain(self, key: Key) -> None:
        self.drained.add(key)

    def enable(self, key: Key) -> None:
        self.drained.discard(key)

    def active(self, vs: VirtualServer, up: Callable[[Key], bool]) -> dict[Endpoint, int]:
        return {r.endpoint: r.weight for r in vs.real
                if r.weight > 0 and (vs.name, r.endpoint) not in self.drained
                and up((vs.name, r.endpoint))}

    def gone(self, vs: VirtualServer, down: Callable[[Key], bool]) -> frozenset[Endpoint]:
        """The failed servers whose connections are not kept: all those `down` (checked and
        failed; not a server not yet checked) unless the service is quiescent (ldirectord's
        `quiescent = no`, keepalived without inhibit_on_failure). A server drained or of
        weight 0 keeps its connections."""
        if vs.quiescent:
            return frozenset()
        return frozenset(r.endpoint for r in vs.real if down((vs.name, r.endpoint)))

    def counter_names(self) -> dict[str, tuple[Key, str]]:
        """Every real server's counters (counters.py): name -> (key, kind)."""
        return {counters.name(self.numbers[name], i, kind): ((name, endpoint), kind)
                for name, ids in self.ids.items() for endpoint, i in ids.items()
                for kind in counters.KINDS}

    def mark_of(self, key: Key) -> int:
        """The connection mark of a real server (nft.mark); KeyError for an unknown one."""
        return nft.mark(self.numbers[key[0]], self.ids[key[0]][key[1]])

    def plan(self, up: Callable[[Key], bool], groups: Callable[[str], bool],
             wiring: Callable[[str], nft_dr.Wiring] | None = None,
             down: Callable[[Key], bool] = lambda _: False) -> list[nft.Plan]:
        """The tables for the services whose group `groups` says this node runs: NAT's
        (when it has a service) and direct routing's, `wiring` telling where each DR
        service's packets come in and go out, `down` which servers failed their checks."""
        nat: list[nft.Service] = []
        dr: list[nft.Service] = []
        for name, vs in self.services.items():
            if not groups(vs.group):
                continue
            s = nft.Service(vs, self.numbers[name], self.ids[name], self.active(vs, up),
                            self.gone(vs, down))
            (dr if vs.forward == "dr" else nat).append(s)
        out = [nft.plan(nat)] if nat else []
        if dr:
            if wiring is None:
                raise ValueError("direct-routing services need their wiring")
            out.append(nft_dr.plan(dr, {s.n: wiring(s.vs.name) for s in dr}))
        return out
