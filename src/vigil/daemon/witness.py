"""`vigil witness`: the shell around arbiter.py on a third, small host.

One UDP socket, one loop: every datagram goes to the Arbiter, whose reply goes back to the
sender's address. It needs the cluster's configuration (names, groups, timings) and key,
nothing else of the nodes: copy vigil.toml and the key file to the witness host.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from typing import cast

from vigil import log as vlog
from vigil.arbiter import Arbiter
from vigil.errors import VigilError
from vigil.daemon.notes import NoteLog
from vigil.model import Cluster, witness_lease
from vigil.config.keys import load_cluster_key

log = logging.getLogger(__name__)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, arbiter: Arbiter) -> None:
        self.arbiter = arbiter
        self.notes = NoteLog(log)  # the datagrams that fail a check say so at a bounded rate
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        now = time.monotonic()
        reply, notes = self.arbiter.receive(data, now)
        self.notes.write(notes, now)
        self.notes.due(now)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # a node that went away: it asks again when it comes back


async def serve(cluster: Cluster, key: bytes, host: str, port: int) -> None:
    assert cluster.witness is not None
    lease = witness_lease(cluster)
    arbiter = Arbiter(cluster.name, tuple(n.name for n in cluster.nodes),
                      tuple(g.name for g in cluster.groups), key, cluster.witness.name, lease,
                      int(time.time() * 1000), time.monotonic())
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise VigilError(f"witness: cannot listen on {host}:{port}: {e.strerror}") from None
    transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(arbiter), sock=sock)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("witness for cluster %s listening on %s:%d; lease %.0f ms; granting nothing "
             "for the first lease", cluster.name, host, port, lease * 1000)
    try:
        await stop.wait()
    finally:
        transport.close()
        log.info("witness stopped")


def run(cluster: Cluster, listen: str | None, debug: bool = False) -> int:
    if cluster.witness is None:
        raise VigilError(f"{cluster.source} has no [witness] table: nothing to serve")
    vlog.setup(cluster.witness.name, cluster.log_file, debug)
    key, _ = load_cluster_key(cluster)
    host = listen or str(cluster.witness.address)
    asyncio.run(serve(cluster, key, host, cluster.witness.port))
    return 0
