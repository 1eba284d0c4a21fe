"""This node's link to the witness (`vigil witness`, daemon/witness.py): asks and replies.

Tasks: `witness` (`run`: an ask every keepalive). The hub asks at once, too, whenever what
this node wants a lease on changes (a takeover waits for that answer). The decisions are the
node's (core/witness.py); this only carries the datagrams.
"""

from __future__ import annotations

import asyncio

from vigil.daemon.hub import Hub
from vigil.errors import VigilError
from vigil.model import Witness


class WitnessLink:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.transport: asyncio.DatagramTransport | None = None
        self._asked: tuple[str, ...] | None = None  # what the latest ask held

    async def open(self, w: Witness) -> None:
        loop = asyncio.get_running_loop()
        receive = self._reply

        class _Proto(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: object) -> None:
                receive(data)

            def error_received(self, exc: Exception) -> None:
                pass  # an unreachable witness shows as silence, in status and decisions

        try:
            self.transport, _ = await loop.create_datagram_endpoint(
                _Proto, remote_addr=(str(w.address), w.port))
        except OSError as e:
            raise VigilError(f"witness {w.address}:{w.port}: {e.strerror}") from None

    def ask(self, force: bool = True) -> None:
        """Send an ask now; unless `force`, only if what this node wants changed."""
        if self.transport is None:
            return
        node = self.hub.node
        wanted = node.side.wanted()
        if not force and wanted == self._asked:
            return
        self._asked = wanted
        try:
            self.transport.sendto(node.side.witness_ask(self.hub.clock()))
        except OSError:
            pass  # no route to the witness right now: its silence is what counts

    def _reply(self, data: bytes) -> None:
        if self.hub.closing:
            return
        self.hub.log(self.hub.node.side.witness_reply(data, self.hub.clock()))
        self.hub.process()

    async def run(self) -> None:
        while True:
            self.ask()
            await asyncio.sleep(self.hub.cluster.timings.keepalive)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
