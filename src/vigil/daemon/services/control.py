"""Control requests (the UNIX socket, daemon/control_server.py; the HTTP API's actions):
each records an operator's intent in the node, and the hub acts on it, as Patroni's API does.

No task of its own: the control server's task (app.py) and the API call `handle`. Only a
cleanup of a failed stop and a reload run agents (a probe; the reload's prepare), and both
answer once that is done.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from vigil.control import protocol as p
from vigil.daemon.hub import Hub
from vigil.daemon.services.groups import GroupWorkers
from vigil.daemon.services.reload import Reload, Retire

if TYPE_CHECKING:
    from vigil.balancer.service import Balancer

log = logging.getLogger(__name__)


class Control:
    def __init__(self, hub: Hub, workers: GroupWorkers, reload: Reload,
                 status: Callable[[], dict[str, Any]], balancer: Balancer | None = None) -> None:
        self.hub = hub
        self.balancer = balancer
        self.workers = workers
        self.reload = reload
        self.status = status

    async def handle(self, req: p.Request) -> p.Response:
        hub, node = self.hub, self.hub.node
        if req.cmd == "status":
            return p.Response(True, self.status())
        if req.cmd == "lb_status":  # the status, with the connections open now counted
            error = await self.balancer.connections() if self.balancer is not None else None
            s = self.status()
            if error is not None and s.get("balancer") is not None:
                s["balancer"]["connections_error"] = error
            return p.Response(True, s)
        if hub.leaving:
            return p.Response(False, None, p.ErrorCode.REFUSED, "this node is shutting down")
        if req.cmd == "reload":
            return await self.reload.reload()
        if req.cmd == "cleanup":
            return await self._cleanup(req.args.get("group"))
        if req.cmd in ("lb_drain", "lb_enable"):
            return await self._lb(req.cmd.removeprefix("lb_"), str(req.args.get("service", "")),
                                  str(req.args.get("server", "")))
        if req.cmd == "fence_confirm":
            name = str(req.args.get("node", ""))
            error = node.side.fence_confirm(name)
            if error:
                return p.Response(False, None, p.ErrorCode.REFUSED, error)
            log.warning("an operator confirmed that %s is fenced", name)
            hub.process()
            return p.Response(True, {"message": f"{name} confirmed fenced; taking over"})
        if req.cmd == "force_promotion":
            group = str(req.args.get("group", ""))
            error, why, notes = node.force_promotion(group)
            if error is not None:
                log.warning("a forced promotion refused: %s", error)
                return p.Response(False, None, p.ErrorCode.REFUSED, error)
            hub.tell(notes)  # logged (a warning) and decided on: the takeover may start
            return p.Response(True, {"message": f"promoting {group} here although {why}"})
        result = node.request(req.cmd, str(req.args.get("which", "all")),
                              group=str(req.args.get("group", "")),
                              to=str(req.args.get("to", "")))
        if result.error:
            log.warning("%s refused: %s", req.cmd, result.error)
            return p.Response(False, None, p.ErrorCode.REFUSED, result.error)
        log.info("%s requested: %s", req.cmd, result.message)
        hub.process()
        return p.Response(True, {"message": result.message})

    async def _lb(self, verb: str, service: str, server: str) -> p.Response:
        """An operator's drain (no new connection; those open go on) or its end, on this
        director only and until its restart, as `ipvsadm -e -w 0` is."""
        if self.balancer is None:
            return p.Response(False, None, p.ErrorCode.REFUSED, "this node runs no balancer")
        try:
            error = await getattr(self.balancer, verb)(service, server)
        except KeyError as e:
            return p.Response(False, None, p.ErrorCode.REFUSED, str(e.args[0]))
        if error is not None:
            return p.Response(False, None, p.ErrorCode.REFUSED, error)
        done = "drained: no new connection" if verb == "drain" else "enabled: takes connections"
        log.warning("an operator %s real server %s of %s",
                    "drained" if verb == "drain" else "enabled", server, service)
        return p.Response(True, {"message": f"{service} {server} {done} on this director"})

    async def _cleanup(self, only: str | None) -> p.Response:
        hub, node = self.hub, self.hub.node
        groups = list(hub.cluster.groups) + list(hub.retiring.values())
        names = [g.name for g in groups]
        if only is not None and only not in names:
            return p.Response(False, None, p.ErrorCode.REFUSED,
                              f"no group named {only!r} (groups: {', '.join(names)})")
        done = []
        for g in groups:
            if only is not None and g.name != only or g.name not in node.local:
                continue
            if node.cleanup(g.name):
                found = await self.workers.probe(g)
                hub.log(node.reprobed(g.name, found))
                done.append(f"{g.name} (probed: {found.value})")
            else:
                done.append(g.name)
            if g.name in hub.retiring and g.name in self.workers.pending:  # removed: again
                self.workers.queue(g.name, Retire(self.reload, g))
        log.info("cleanup requested: %s", ", ".join(done))
        hub.process()
        return p.Response(True, {"message": f"cleaned up {', '.join(done)}"})
