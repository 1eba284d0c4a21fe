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
import subprocess
import sys
import time
from collections.abc import Sequence

from vigil.model import Cluster, Timings
from vigil.resources import build
from vigil.resources.host import Host

log = logging.getLogger("vigil.guard")


def timeout_for(t: Timings) -> float:
    """How long the daemon may stay silent before the guard acts: a keepalive before the peer
    could declare it dead, and never less than half-way between keepalive and deadtime (one
    late heartbeat must not fire it)."""
    return max(t.deadtime - t.keepalive, (t.deadtime + t.keepalive) / 2)


class GuardLink:
    """The daemon's end: feed the guard, hear when it fired. Never blocks the daemon."""

    def __init__(self, proc: subprocess.Popen[bytes], feed_fd: int, fired_fd: int) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.feed_fd = feed_fd
        self.fired_fd = fired_fd
        self.dropped = 0
        self.closed = False

    def feed(self, held: Sequence[str]) -> None:
        self._write(b"held " + ",".join(held).encode() + b"\n")

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

    def read_fired(self) -> list[str] | None:
        """Groups the guard stopped (after a stall); [] when nothing new; None at EOF."""
        if self.closed:
            return None
        try:
            data = os.read(self.fired_fd, 4096)
        except BlockingIOError:
            return []
        if not data:
            return None
        groups: list[str] = []
        for line in data.decode(errors="replace").splitlines():
            if line.startswith("fired"):
                groups += [g for g in line[5:].strip().split(",") if g]
        return groups

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        """Close both pipes and reap the guard. After `bye` it has already left; otherwise
        the end of file makes it stop whatever this daemon still held, then leave."""
        if self.closed:
            return
        self.closed = True
        for fd in (self.feed_fd, self.fired_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self.proc.wait()


def spawn(cluster: Cluster, me: str) -> GuardLink:
    """Start a guard for this daemon. Raises OSError when it cannot."""
    feed_r, feed_w = os.pipe()
    fired_r, fired_w = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vigil.daemon.guard", str(feed_r), str(fired_w)],
            stdin=subprocess.PIPE, pass_fds=(feed_r, fired_w), start_new_session=True)
    except BaseException:
        os.close(feed_w)
        os.close(fired_r)
        raise
    finally:  # the guard's ends: it has its own copies now (or there is no guard)
        os.close(feed_r)
        os.close(fired_w)
    assert proc.stdin is not None
    try:  # the whole model, as the daemon has it (the file may have changed since)
        proc.stdin.write(pickle.dumps((cluster, me)))
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
    """`python -m vigil.daemon.guard FEED_FD FIRED_FD`, the model pickled on stdin."""
    feed, fired = int(argv[0]), int(argv[1])
    try:
        cluster, me = pickle.loads(sys.stdin.buffer.read())
        from vigil import log as vlog
        vlog.setup(me, cluster.log_file)
        return _run(cluster, me, feed, fired)
    except BaseException:
        log.exception("guard: failed")
        return 1


def _run(cluster: Cluster, me: str, feed: int, fired: int) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if cluster.realtime:  # it must act in time under load too
        from vigil.daemon.realtime import make_realtime
        make_realtime()
    # Everything a stop needs is loaded now, not when it fires: importing pyroute2 and the
    # agents takes longer than the margin between the guard's timeout and the peer's
    # deadtime (a partition benchmark caught one freeze where the address stayed on too long).
    asyncio.run(_warm_up())
    timeout = timeout_for(cluster.timings)
    held: list[str] = []
    buf = b""
    armed = True  # False after firing on a stall, until the daemon speaks again
    last = time.monotonic()
    while True:
        wait = max(0.0, last + timeout - time.monotonic()) if armed else None
        ready, _, _ = select.select([feed], [], [], wait)
        if not ready:
            if held:
                log.error("guard: daemon silent for %.0f ms: stopping %s before the peer "
                          "takes over",
                          (time.monotonic() - last) * 1000, ", ".join(held))
                _stop(cluster, held)
                _tell(fired, held)
            armed = False
            held = []
            continue
        chunk = os.read(feed, 65536)
        if not chunk:  # the daemon is gone
            if held:
                log.error("guard: daemon died: stopping %s", ", ".join(held))
                _stop(cluster, held)
            return 0
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line == b"bye":
                return 0
            if line.startswith(b"held"):
                names = line[4:].decode(errors="replace").strip()
                held = [g for g in names.split(",") if g]
        if not armed:
            log.warning("guard: daemon is back after a stall; watching again")
        armed = True
        last = time.monotonic()


def _tell(fd: int, groups: list[str]) -> None:
    try:
        os.write(fd, b"fired " + ",".join(groups).encode() + b"\n")
    except OSError:
        pass


def _stop(cluster: Cluster, held: list[str]) -> None:
    """Stop the held groups, each resource in reverse order with its timeout."""
    asyncio.run(_stop_async(cluster, held))


async def _warm_up() -> None:
    async with Host.open():
        pass


async def _stop_async(cluster: Cluster, held: list[str]) -> None:
    t0 = time.monotonic()
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
    log.warning("guard: done in %.0f ms", (time.monotonic() - t0) * 1000)
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
