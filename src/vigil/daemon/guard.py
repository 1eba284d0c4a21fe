"""The guard: a small process that stops this node's groups when its daemon is gone or hung.

DESIGN.md rule 2, "nothing unsupervised". Heartbeat and keepalived leave the floating address
on a node whose daemon was killed with -9 (PLATFORM-NOTES: two MACs answer ARP for good), and
a frozen daemon's address stays up while the peer takes over. The guard closes both holes:

- The daemon starts it as a separate program (`python -m vigil.daemon.guard`, the cluster
  model pickled on its stdin, the two pipes passed as descriptors), so a kill -9 or a
  SIGSTOP of the daemon does not touch it. A fresh program, not a fork, because the daemon
  restarts a guard that died, by then from a process full of threads.
- The daemon feeds it through a pipe with every heartbeat it sends: one line naming the groups
  that are active on this node (`held web,db`), or `bye` on a clean shutdown.
- End of file on that pipe (the daemon died) or no line for `timeout` seconds (it hangs or is
  frozen) makes the guard stop every held group, resources in reverse order, each with its
  timeout, exactly as the daemon would. `timeout` is shorter than deadtime, so this happens
  before the peer declares the node dead and takes over.
- After a stall the guard tells the daemon (`fired web,db` on the return pipe) so that, should
  it wake up, it probes those groups instead of believing they still run; then it watches on.
- Once everything is stopped, the guard says goodbye on the daemon's behalf (`goodbye_frames`):
  to the witness, an ask that holds nothing (it frees this node's leases at once), and to the
  peer, the daemon's own last report marked leaving, with the groups it stopped. The peer
  then takes over at once, as after a clean shutdown, instead of waiting for deadtime, the
  settle time and the lease (the witness path of a kill -9 took up to 780 ms; this takes
  the time of one start). For that the daemon feeds its generation, the last sequence number
  it used, and its report (`held web,db GEN SEQ REPORT`). The goodbye is said only when it
  is true: every stop succeeded, and the daemon is gone (its process exited: EOF alone could
  be a daemon closing the pipe) or silent (a stall). A stalled daemon that wakes up hears
  `left GEN` and starts a new generation: the peer ignores the rest of the old one.

The guard ignores SIGINT and SIGTERM: a Ctrl-C or a stop sent to the daemon's process group
must not take the guard with it before the daemon has released everything. It leaves on `bye`
or, after having stopped everything, when the daemon is gone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from vigil.balancer import apply
from vigil.daemon import links as links_mod
from vigil.model import Cluster, Timings
from vigil.resources import build
from vigil.resources.host import Host
from vigil.core.goodbye import goodbye_frames

log = logging.getLogger(__name__)


def timeout_for(t: Timings) -> float:
    """How long the daemon may stay silent before the guard acts: a keepalive before the peer
    could declare it dead, and never less than half-way between keepalive and deadtime (one
    late heartbeat must not fire it)."""
    return max(t.deadtime - t.keepalive, (t.deadtime + t.keepalive) / 2)


@dataclass
class News:
    fired: list[str] = field(default_factory=list)  # groups it stopped after a stall
    left: int | None = None  # it said goodbye on behalf of this generation of the daemon


class GuardLink:
    """The daemon's end: feed the guard, hear when it fired. Never blocks the daemon."""

    def __init__(self, proc: subprocess.Popen[bytes], feed_fd: int, fired_fd: int) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.feed_fd = feed_fd
        self.fired_fd = fired_fd
        self.dropped = 0
        self.closed = False

    def feed(self, held: Sequence[str], generation: int = 0, seq: int = 0,
             report: bytes = b"") -> None:
        """`report`: the heartbeat payload the daemon would send now (JSON, one line)."""
        line = b"held " + ",".join(held).encode()
        if generation and report:
            line += b" %d %d " % (generation, seq) + report
        self._write(line + b"\n")

    def bye(self) -> None:
        self._write(b"bye\n")

    def _write(self, line: bytes) -> None:
        if self.closed:
            # Never write to a closed descriptor's number: the kernel hands it to the next
            # file or socket opened, and a feed once landed in a control-socket client's
            # connection (the CLI read "held web" as the daemon's answer).
            self.dropped += 1
            return
        try:
            os.write(self.feed_fd, line)
        except BlockingIOError:
            self.dropped += 1  # the guard is not reading: it will fire, as it should
        except OSError:
            self.dropped += 1  # the guard is gone; alive() says so

    def read_fired(self) -> News | None:
        """What the guard did after a stall (empty News when nothing new); None at EOF."""
        if self.closed:
            return None
        try:
            data = os.read(self.fired_fd, 4096)
        except BlockingIOError:
            return News()
        if not data:
            return None
        news = News()
        for line in data.decode(errors="replace").splitlines():
            if line.startswith("fired"):
                news.fired += [g for g in line[5:].strip().split(",") if g]
            elif line.startswith("left ") and line[5:].strip().isdecimal():
                news.left = int(line[5:])
        return news

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, exiting: bool = False) -> None:
        """Close both pipes and reap the guard. After `bye` it has already left; otherwise
        the end of file makes it stop whatever this daemon still held, then leave.
        `exiting`: the daemon's loop is over and it sends nothing more (the guard may say
        goodbye for it without waiting to see it exit, which waits for the guard)."""
        if self.closed:
            return
        if exiting:
            self._write(b"exiting\n")
        self.closed = True
        for fd in (self.feed_fd, self.fired_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self.proc.wait()


def spawn(cluster: Cluster, me: str, key: bytes, watchdog: int | None = None) -> GuardLink:
    """Start a guard for this daemon. Raises OSError when it cannot. `watchdog`: the open
    kernel watchdog's descriptor, which the guard feeds too (see `_Watchdog`)."""
    feed_r, feed_w = os.pipe()
    fired_r, fired_w = os.pipe()
    wd = () if watchdog is None else (watchdog,)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vigil.daemon.guard", str(feed_r), str(fired_w),
             *map(str, wd)],
            stdin=subprocess.PIPE, pass_fds=(feed_r, fired_w, *wd), start_new_session=True)
    except BaseException:
        os.close(feed_w)
        os.close(fired_r)
        raise
    finally:  # the guard's ends: it has its own copies now (or there is no guard)
        os.close(feed_r)
        os.close(fired_w)
    assert proc.stdin is not None
    try:  # the whole model, as the daemon has it (the file may have changed since)
        proc.stdin.write(pickle.dumps((cluster, me, key)))
        proc.stdin.close()
    except OSError:
        os.close(feed_w)
        os.close(fired_r)
        proc.kill()
        proc.wait()
        raise
    os.set_blocking(feed_w, False)
    os.set_blocking(fired_r, False)
    return GuardLink(proc, feed_w, fired_r)


def main(argv: Sequence[str]) -> int:
    """`python -m vigil.daemon.guard FEED_FD FIRED_FD [WATCHDOG_FD]`, the model pickled on
    stdin."""
    feed, fired = int(argv[0]), int(argv[1])
    try:
        model = sys.stdin.buffer.read()
        try:
            cluster, me, key = pickle.loads(model)
        except (EOFError, pickle.UnpicklingError, ValueError):
            # The daemon died while it started this guard: nothing to guard, nothing said
            # (a traceback here would be noise in a log an operator reads after a crash).
            print(f"guard: no model from the daemon ({len(model)} bytes): it is gone; "
                  f"exiting", file=sys.stderr)
            return 1
        from vigil import log as vlog
        vlog.setup(me, cluster.log_file)
        wd = _Watchdog(int(argv[2]), cluster) if len(argv) > 2 else None
        return _run(cluster, me, key, feed, fired, wd)
    except BaseException:
        log.exception("guard: failed")
        return 1


@dataclass
class _Fed:
    """What the daemon said last: the groups active on it, and what a goodbye needs."""
    held: list[str] = field(default_factory=list)
    generation: int = 0
    seq: int = 0
    report: bytes = b""

    def read(self, line: bytes) -> None:
        """`held web,db GEN SEQ REPORT`; the groups may be empty, the rest absent."""
        parts = line[5:].split(b" ", 3)
        self.held = [g for g in parts[0].decode(errors="replace").split(",") if g]
        if len(parts) == 4 and parts[1].isdigit() and parts[2].isdigit():
            self.generation, self.seq, self.report = int(parts[1]), int(parts[2]), parts[3]


class _Watchdog:
    """The guard's share of the kernel watchdog (`watchdog = ...`). The daemon opens the
    device and hands the guard the same open file, so that both feed it while they live and
    the node resets only once both are gone (or frozen): every vigil process killed at once
    leaves its addresses behind, and the reset is what frees them (the peer's look before
    taking sees them go). The guard feeds it with every line the daemon sends and, once it
    has stopped everything after the daemon's death or stall, on its own every quarter of
    the timeout; never after a stop failed, so that a node whose resources may still be
    held is reset. It disarms the device (the magic "V") when it leaves with nothing held."""

    def __init__(self, fd: int, cluster: Cluster) -> None:
        from vigil.model import watchdog_seconds
        self.fd = fd
        self.every = (cluster.watchdog_timeout or watchdog_seconds(cluster.timings)) / 4
        self.last = 0.0

    def feed(self) -> None:
        self._write(b"\0")
        self.last = time.monotonic()

    def due(self) -> float:
        """Seconds until the guard, feeding alone, must feed again."""
        return max(0.0, self.last + self.every - time.monotonic())

    def disarm(self) -> None:
        self._write(b"V")
        try:
            os.close(self.fd)
        except OSError:
            pass
        log.info("guard: watchdog disarmed: nothing is held here")

    def _write(self, data: bytes) -> None:
        try:
            os.write(self.fd, data)
        except OSError as e:
            log.error("guard: cannot feed the watchdog: %s", e.strerror or e)


def _run(cluster: Cluster, me: str, key: bytes, feed: int, fired: int,
         wd: _Watchdog | None = None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if cluster.realtime:  # it must act in time under load too
        from vigil.daemon.realtime import make_realtime
        make_realtime()
    try:
        daemon: int | None = os.pidfd_open(os.getppid())  # readable once the daemon exited
    except OSError as e:  # an old kernel, a seccomp profile: guard all the same
        daemon = None
        log.warning("guard: cannot watch the daemon's process (%s): no goodbye on its behalf "
                    "when it dies", e.strerror or e)
    # Everything a stop needs is loaded now, not when it fires: importing pyroute2 and the
    # agents takes longer than the margin between the guard's timeout and the peer's
    # deadtime (a partition benchmark caught one freeze where the address stayed on too long).
    # The same goes for where a goodbye would be sent.
    routes = asyncio.run(_warm_up(cluster, me))
    timeout = timeout_for(cluster.timings)
    fed = _Fed()
    exiting = False  # the daemon's loop is over: it sends nothing more (main.py's close)
    buf = b""
    armed = True  # False after firing on a stall, until the daemon speaks again
    safe = True  # nothing failed to stop: the guard may keep the node from being reset
    last = time.monotonic()
    while True:
        wait = max(0.0, last + timeout - time.monotonic()) if armed else None
        feeding = wd is not None and not armed and safe  # the daemon stalled: feed alone
        if feeding:
            assert wd is not None
            wait = wd.due()
        ready, _, _ = select.select([feed], [], [], wait)
        if not ready and feeding:
            assert wd is not None
            wd.feed()
            continue
        if not ready:
            held = fed.held
            if held:
                log.error("guard: daemon silent for %.0f ms: stopping %s before the peer "
                          "takes over",
                          (time.monotonic() - last) * 1000, ", ".join(held))
            failed = _stop(cluster, held)
            if held:
                _tell(fired, b"fired " + ",".join(held).encode())
            # Only if it is still silent: one that woke during the stop may have started
            # something since (its feed waits unread), and goes on under this generation.
            if _goodbye(cluster, me, key, fed, failed, routes, "silent",
                        lambda: not select.select([feed], [], [], 0)[0]):
                _tell(fired, b"left %d" % fed.generation)
            armed, safe = False, not failed
            if failed and wd is not None:
                log.error("guard: not feeding the watchdog: %s may still be held here; the "
                          "node resets unless the daemon comes back", ", ".join(sorted(failed)))
            fed = _Fed()
            continue
        chunk = os.read(feed, 65536)
        if not chunk:  # the daemon is gone, or it closed our pipe
            if fed.held:
                log.error("guard: daemon died: stopping %s", ", ".join(fed.held))
            failed = _stop(cluster, fed.held)
            _goodbye(cluster, me, key, fed, failed, routes, "dead", lambda: exiting or (
                daemon is not None and bool(select.select([daemon], [], [], 1.0)[0])))
            if wd is not None and not failed:
                wd.disarm()
            elif wd is not None:
                log.error("guard: leaving the watchdog armed: %s may still be held here",
                          ", ".join(sorted(failed)))
            return 0
        if wd is not None:
            wd.feed()  # the daemon lives: both feed
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line == b"bye":
                if wd is not None:
                    wd.disarm()  # a clean shutdown: the daemon released everything
                return 0
            if line == b"exiting":
                exiting = True
            if line.startswith(b"held "):
                fed.read(line)
        if not armed:
            log.warning("guard: daemon is back after a stall; watching again")
        armed, safe = True, True
        last = time.monotonic()


def _tell(fd: int, line: bytes) -> None:
    try:
        os.write(fd, line + b"\n")
    except OSError:
        pass


def _stop(cluster: Cluster, held: list[str]) -> set[str]:
    """Stop the held groups, each resource in reverse order with its timeout; the groups
    whose stop failed."""
    return asyncio.run(_stop_async(cluster, held)) if held else set()


@dataclass(frozen=True)
class Route:
    """Where and how one heartbeat link sends (daemon/links.py's UdpLink, send side only)."""
    index: int
    kind: str
    dest: tuple[str, int]
    ifname: str
    source: str | None  # the local address it is bound to (the daemon's port is taken)
    ttl: int


async def _warm_up(cluster: Cluster, me: str) -> list[Route]:
    async with Host.open() as host:
        try:
            return [Route(l.index, l.kind, l.dest, l.ifname, l.source, l.ttl)
                    for l in await links_mod.plan(cluster, me, host)
                    if isinstance(l, links_mod.UdpLink)]
        except Exception as e:  # never the guard's end: it guards without a goodbye
            log.warning("guard: cannot say goodbye on the daemon's behalf: %s", e)
            return []


def _goodbye(cluster: Cluster, me: str, key: bytes, fed: _Fed, failed: set[str],
             routes: list[Route], why: str, still_true: Callable[[], bool]) -> bool:
    """Say goodbye for the daemon, if that is true now (`still_true` is asked last). True
    when it was sent."""
    if failed or not fed.generation or not routes:
        return False
    made = goodbye_frames(cluster, me, key, fed.generation, fed.seq, fed.report, fed.held,
                          [r.index for r in routes])
    if made is None:
        return False
    if not still_true():
        log.warning("guard: the daemon is not %s any more: no goodbye for it", why)
        return False
    ask, frames = made
    if cluster.witness is not None:  # first: the peer asks for the lease as soon as it hears
        _send(ask, (str(cluster.witness.address), cluster.witness.port), None)
    for route, frame in zip(routes, frames):
        _send(frame, route.dest, route)
    log.warning("guard: daemon %s, nothing runs here: said goodbye for it (generation %d)",
                why, fed.generation)
    return True


def _send(data: bytes, dest: tuple[str, int], route: Route | None) -> None:
    """One datagram, routed as the daemon's link socket would route it."""
    family = socket.AF_INET6 if ":" in dest[0] else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            if route is not None:  # None: the witness, routed as any datagram
                if route.source is not None:
                    s.bind((route.source, 0))
                else:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE,
                                 route.ifname.encode())
                if route.kind == "bcast":
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                elif route.kind == "mcast" and family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, route.ttl)
                elif route.kind == "mcast":
                    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, route.ttl)
            s.sendto(data, dest)
    except OSError as e:  # that link is down: the peer hears it on another, or waits
        log.warning("guard: goodbye to %s:%d: %s", dest[0], dest[1], e.strerror or e)


async def _stop_async(cluster: Cluster, held: list[str]) -> set[str]:
    known = {g.name for g in cluster.groups}
    failed = {name for name in held if name not in known}
    for name in sorted(failed):  # a reload's new guard could not start: this one is older
        log.error("guard: group %s is not in this guard's configuration: cannot stop it", name)
    began = time.monotonic()
    async with Host.open() as host:
        for g in cluster.groups:
            if g.name not in held:
                continue
            for r in reversed(g.resources):
                agent = build(r, host)
                t0 = time.monotonic()
                try:
                    async with asyncio.timeout(agent.timeout_for("stop")):
                        await agent.stop()
                    log.warning("guard: %s stop: ok in %.0f ms", agent.name,
                                (time.monotonic() - t0) * 1000)
                except Exception as e:
                    log.error("guard: %s stop: failed: %s", agent.name, e or type(e).__name__)
                    failed.add(g.name)
    if any(vs.group in held for vs in cluster.virtual_servers):
        # The balancer's rules went in before the groups' resources: out after them.
        try:
            await apply.apply(apply.remove_all())
            log.warning("guard: the balancer's rules removed")
        except apply.NftError as e:
            log.error("guard: the balancer's rules: %s", e)
            failed.update(vs.group for vs in cluster.virtual_servers if vs.group in held)
    log.warning("guard: done in %.0f ms", (time.monotonic() - began) * 1000)
    sys.stderr.flush()
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
