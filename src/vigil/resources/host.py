"""What the agents of one daemon share: a netlink socket and the Announcer.

    async with Host.open() as host:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(host.announcer.run())
            ...  # agents built with resources.build(resource, host)

The TaskGroup must end before the Host closes. Everything acts on the network namespace the
daemon runs in.
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pyroute2 import AsyncIPRoute

from vigil.resources.announce import Announcer, FrameSender, address_is_local
from vigil.resources.conflict import AddressProber

IFF_UP = 0x1
IFF_RUNNING = 0x40  # operationally up: carrier present (what SIOCGIFFLAGS reports)
SIOCGIFFLAGS = 0x8913


class Host:
    """One open `AsyncIPRoute` (opening one costs ~10 ms: keep it), the `Announcer` and the
    `AddressProber` (look before taking an address)."""

    def __init__(self, ipr: AsyncIPRoute, announcer: Announcer) -> None:
        self.ipr = ipr
        self.announcer = announcer
        self.prober = AddressProber()
        # One netlink dump at a time on the shared socket: the kernel answers a second dump
        # EBUSY while the first is being read (two addresses of a group stopping together
        # failed so: tests/integration/test_balancer_daemon.py).
        self.dumping = asyncio.Lock()
        self._ioctl_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def usable(self, name: str) -> bool:
        """The interface exists, is up and has carrier (IFF_UP and IFF_RUNNING).

        One ioctl instead of a netlink request: the daemon asks this for every link and
        address every keepalive, and decoding a netlink reply in Python cost ~0.5 % of a
        core per interface at a 200 ms keepalive (bench/idle.py), half the idle budget.
        """
        ifreq = struct.pack("16sH14x", name.encode()[:15], 0)
        try:
            res = fcntl.ioctl(self._ioctl_sock.fileno(), SIOCGIFFLAGS, ifreq)
        except OSError:
            return False  # no such interface
        flags = struct.unpack_from("16sH", res)[1]
        return bool(flags & IFF_UP) and bool(flags & IFF_RUNNING)

    def close(self) -> None:
        self._ioctl_sock.close()
        self.prober.close()

    @classmethod
    @asynccontextmanager
    async def open(cls, *, sender: FrameSender | None = None) -> AsyncIterator[Host]:
        """Open the netlink socket and the announcer; close both on exit.

        `sender` replaces the raw packet sockets (tests).
        """
        announcer = Announcer(sender, is_local=None if sender else address_is_local)
        try:
            ipr = AsyncIPRoute()
            host = cls(ipr, announcer)
            try:
                yield host
            finally:
                host.close()
                ipr.close()
        finally:
            announcer.close()
