"""systemd's readiness protocol, sd_notify(3), with the standard library only.

Under a `Type=notify` unit (packaging/vigil.service) systemd passes NOTIFY_SOCKET, the
address of an AF_UNIX datagram socket (a path, or an abstract name written with a leading
'@'), and considers the service started only once it sends READY=1: `systemctl start`
then returns when the node is really up, not when the process exists. With `WatchdogSec=`
it also passes WATCHDOG_USEC (and WATCHDOG_PID), and kills the daemon when no WATCHDOG=1
comes for that long: a hung event loop gets caught even where no kernel watchdog exists.

Without NOTIFY_SOCKET (a terminal, the lab, the tests) every method is a no-op costing one
attribute test, so callers need not ask first.

Sending never raises: the notification is advice to the service manager, and a daemon that
holds floating addresses must not fall over because systemd restarted (daemon-reexec) or
its socket went away. A failure is logged once, at warning, and counted in `errors`.

The socket is opened once, non-blocking (a full queue on systemd's side drops a message
instead of stalling the event loop) and close-on-exec (agents never inherit it). Each
message goes out with sendto() to the address, not through connect(): after a
`systemctl daemon-reexec` the path names a new socket, and a connected one would keep
pointing at the old one.

The environment is left as it is, unlike sd_notify's `unset_environment`: changing
os.environ in a process with threads (asyncio's executor) races with getenv() in C code,
and what unsetting would protect against is covered otherwise. The children (guard,
agents) inherit NOTIFY_SOCKET unless given an explicit `env`, but the unit sets
NotifyAccess=main, so systemd drops whatever they send, and WATCHDOG_PID names this
process, so `watchdog_interval()` is None in them.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Talks to the service manager named by NOTIFY_SOCKET; build it with `from_env`."""

    def __init__(self, address: str | None, watchdog_usec: str | None = None,
                 watchdog_pid: str | None = None) -> None:
        """`address` as NOTIFY_SOCKET spells it ('/run/...' or '@name'), None to disable;
        the two watchdog values raw, as in the environment (parsed by watchdog_interval)."""
        self.address = _sockaddr(address)
        self.watchdog_usec = watchdog_usec
        self.watchdog_pid = watchdog_pid
        self.sock: socket.socket | None = None
        self.sent = 0
        self.errors = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        return cls(environ.get("NOTIFY_SOCKET"), environ.get("WATCHDOG_USEC"),
                   environ.get("WATCHDOG_PID"))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def ready(self, status: str) -> None:
        """Startup is complete (or a reload is): systemd moves the unit to active."""
        self.notify("READY=1", f"STATUS={_line(status)}", f"MAINPID={os.getpid()}")

    def status(self, text: str) -> None:
        """One line for `systemctl status`: what the node is doing now."""
        self.notify(f"STATUS={_line(text)}")

    def stopping(self) -> None:
        """Shutdown has begun: the unit shows 'deactivating' while groups are released."""
        self.notify("STOPPING=1")

    def reloading(self) -> None:
        """A reload has begun; call ready() when it is done. MONOTONIC_USEC is what
        Type=notify-reload (systemd 253+) requires to match the reload to its request;
        older versions ignore it."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def watchdog(self) -> None:
        """Still alive: send it every watchdog_interval() seconds."""
        self.notify("WATCHDOG=1")

    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings: half of WATCHDOG_USEC, as systemd.service(5)
        advises, so one late ping is not fatal. None when there is no watchdog for this
        process: no socket, WATCHDOG_USEC unset, zero or not a number, or WATCHDOG_PID
        naming another process (we are a child that inherited the environment)."""
        if self.address is None or self.watchdog_usec is None:
            return None
        usec = _positive_int(self.watchdog_usec)
        if usec is None:
            return None
        if self.watchdog_pid is not None and _positive_int(self.watchdog_pid) != os.getpid():
            return None
        return usec / 2 / 1_000_000

    def notify(self, *assignments: str) -> bool:
        """Send the KEY=VALUE assignments as one datagram; True when it went out."""
        if self.address is None:
            return False
        data = "\n".join(assignments).encode()
        try:
            if self.sock is None:
                self.sock = socket.socket(
                    socket.AF_UNIX,
                    socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
            self.sock.sendto(data, self.address)
        except (OSError, ValueError) as e:
            self.errors += 1
            if self.errors == 1:
                log.warning("cannot notify systemd on %s: %s (further failures are only "
                            "counted)", _shown(self.address), getattr(e, "strerror", None) or e)
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _sockaddr(address: str | None) -> str | None:
    """NOTIFY_SOCKET as a Python AF_UNIX address: '@name' is the abstract '\\0name'. Other
    forms (relative paths, systemd 254's 'vsock:') are refused, as libsystemd does."""
    if not address:
        return None
    if address.startswith("@"):
        return "\0" + address[1:]
    if address.startswith("/"):
        return address
    log.warning("NOTIFY_SOCKET=%r is neither an absolute path nor an abstract '@' name: "
                "not notifying systemd", address)
    return None


def _shown(address: str) -> str:
    return "@" + address[1:] if address.startswith("\0") else address


def _line(text: str) -> str:
    """The protocol is one assignment per line: a newline would start a new one."""
    return " ".join(text.splitlines())


def _positive_int(text: str) -> int | None:
    """A decimal in 1..2**64-1, as systemd writes it; None for anything else (int() alone
    would take '1_000', ' +5' or Unicode digits)."""
    if not re.fullmatch(r"[0-9]{1,20}", text):
        return None
    value = int(text)
    return value if 0 < value < 2**64 else None
