"""Passive detection: a real server that refuses clients' connections is seen at the first
refusals, not at its next failed checks. The ruleset logs each reset a real server sends for
a connection that never got established (nft.py's `refusals` chain) to one NFLOG group with
the connection's mark; this reads them (nflog.py) and tells `on_refusal` the mark.

A refusal counts as one failed check (prober.py): `fall` of them in a row, with no passing
check between, take the server down; rise passing checks bring it back. A server whose host
is gone (no answer at all) sends no reset: the active checks find it.

The NFLOG group is bound by one socket per network namespace: if another program (ulogd)
holds it, passive detection is off, said once, and the active checks still run.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from collections.abc import Callable

from vigil.balancer import nflog

log = logging.getLogger(__name__)

_READ = 1 << 16
_MAX_READS = 64  # per wake-up: a flood of refusals never starves the event loop


class RefusalWatch:
    def __init__(self, group: int, on_refusal: Callable[[int], None]) -> None:
        self.group, self.on_refusal = group, on_refusal
        self.sock: socket.socket | None = None
        self.seen = 0
        self.error: str | None = None

    def open(self) -> bool:
        """Bind the group; False (and `error` says why, logged once) when it cannot."""
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                 nflog.NETLINK_NETFILTER)
        except OSError as e:
            return self._fail(f"no netfilter netlink socket: {e.strerror or e}")
        try:
            sock.bind((0, 0))
            sock.settimeout(2.0)
            for request in nflog.bind(self.group):
                sock.send(request)
                refused = nflog.errors(sock.recv(_READ))
                if refused:
                    code = refused[0]
                    why = ("another program holds it (ulogd?)" if code == errno.EBUSY
                           else os.strerror(code))
                    raise OSError(code, why)
        except OSError as e:
            sock.close()
            return self._fail(f"cannot bind NFLOG group {self.group}: {e.strerror or e}")
        sock.setblocking(False)
        self.sock = sock
        return True

    def _fail(self, why: str) -> bool:
        self.error = why
        log.warning("passive detection off (%s); the active checks still run", why)
        return False

    async def run(self) -> None:
        """Deliver refusals until cancelled; the socket is closed then."""
        if self.sock is None and not self.open():
            return
        assert self.sock is not None
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        loop.add_reader(self.sock.fileno(), ready.set)
        try:
            while True:
                await ready.wait()
                ready.clear()
                self._drain()
        finally:
            loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    def _drain(self) -> None:
        if self.sock is None:  # closed since this was scheduled
            return
        for _ in range(_MAX_READS):
            try:
                data = self.sock.recv(_READ)
            except BlockingIOError:
                return
            except OSError as e:  # ENOBUFS: the kernel dropped some; later ones still come
                if e.errno != errno.ENOBUFS:
                    raise
                continue
            for mark in nflog.marks(data, self.group):
                self.seen += 1
                self.on_refusal(mark)
        asyncio.get_running_loop().call_soon(self._drain)  # more: after others had a turn
