"""The lab's client prober, and pure helpers to analyse what it saw.

    python -m vigil.lab.probe --url http://10.77.0.100/ [--interval 0.01] [--timeout 0.1]
                              [--duration 30] [--count N]

Run inside the client namespace (`Prober` does that). Every probe opens a NEW TCP
connection, sends a minimal ``HTTP/1.0`` GET and reads to EOF, all within ``timeout``
seconds. Probes are started on a fixed schedule ``t0 + k * interval`` with no drift, each
without waiting for the ones before it (several are in flight while the service is down), so
the first success after an outage is seen within one interval. One JSON line per probe goes
to stdout when it finishes (so not always in ``t`` order), flushed at once::

    {"t": 12345.678901, "node": "n1", "ms": 0.412, "err": null}

- ``t``: ``time.monotonic()`` when the probe started. CLOCK_MONOTONIC is system-wide (not
  per network namespace), so it compares with the test process's own ``time.monotonic()``.
- ``node``: the response body, stripped (the lab web server answers its node name), or null.
- ``ms``: milliseconds from start to the end of the probe, success or not.
- ``err``: null on a 200 response, else one of ``timeout``, ``refused``, ``reset``,
  ``unreachable`` (no route to host or network), ``http_<status>``, ``bad_response``, or the
  lower-case errno name of any other socket error (``eperm``...).

It stops by itself after ``duration`` seconds (no probe starts later than that) or ``count``
probes, or on SIGTERM/SIGINT (after the probes in flight end), and exits 0.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from vigil.lab.netns import Lab

__all__ = ["Outage", "Prober", "Sample", "outages", "owners", "parse_line", "parse_lines"]


# -- samples and their analysis (pure) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One probe: started at monotonic time `t`, answered by `node` (None on failure), took
    `ms` milliseconds, failed with `err` (None on success)."""

    t: float
    node: str | None
    ms: float
    err: str | None

    @property
    def ok(self) -> bool:
        return self.err is None

    def to_json(self) -> str:
        return json.dumps({"t": self.t, "node": self.node, "ms": self.ms, "err": self.err})


@dataclass(frozen=True, slots=True)
class Outage:
    """A maximal run of failed probes, as the service's users saw it.

    `start` is the time of the last successful probe before the run and `end` the time of
    the first successful probe after it; `duration` = `end` - `start`. Since the service was
    answering at both instants, the real interruption is no longer than `duration`; it is
    shorter by at most about one probe period (`interval`, or `timeout` while probes fail).
    `failures` counts the failed probes. `complete` is False when the run has no success on
    one side, within the samples given: then `start` (no success before) is the first failed
    probe's time, or `end` (no success after) the last failed probe's time.
    """

    start: float
    end: float
    duration: float
    failures: int
    complete: bool


def parse_line(line: str | bytes) -> Sample:
    """One prober output line to a `Sample`; ValueError if it is not one."""
    try:
        d = json.loads(line)
        t, node, ms, err = d["t"], d["node"], d["ms"], d["err"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"not a probe line: {line!r}") from e
    if not (isinstance(t, (int, float)) and isinstance(ms, (int, float))
            and (node is None or isinstance(node, str)) and (err is None or isinstance(err, str))):
        raise ValueError(f"not a probe line: {line!r}")
    return Sample(float(t), node, float(ms), err)


def parse_lines(lines: Iterable[str | bytes]) -> list[Sample]:
    """Prober output to samples, in the given order; blank lines are skipped, anything else
    that is not a probe line is a ValueError."""
    return [parse_line(line) for line in lines if line.strip()]


def outages(samples: Iterable[Sample], after: float | None = None,
            before: float | None = None) -> list[Outage]:
    """The `Outage`s in `samples` (any order), oldest first.

    Outages are found over all the samples; with `after`/`before`, only those overlapping
    the window are returned (``end > after`` and ``start < before``), unclipped, so an
    outage that a fault at time `after` causes is measured from the last success before it.
    """
    ordered = sorted(samples, key=lambda s: s.t)
    found: list[Outage] = []
    last_ok: float | None = None
    run: list[Sample] = []
    for s in ordered:
        if not s.ok:
            run.append(s)
            continue
        if run:
            start = last_ok if last_ok is not None else run[0].t
            found.append(Outage(start, s.t, s.t - start, len(run), last_ok is not None))
            run = []
        last_ok = s.t
    if run:
        start = last_ok if last_ok is not None else run[0].t
        found.append(Outage(start, run[-1].t, run[-1].t - start, len(run), False))
    lo = -math.inf if after is None else after
    hi = math.inf if before is None else before
    return [o for o in found if o.end > lo and o.start < hi]


def owners(samples: Iterable[Sample]) -> list[tuple[float, str]]:
    """Who answered, as change points: ``(t, node)`` for the first successful probe and for
    every successful probe answered by a different node than the previous successful one.
    Failed probes are ignored (see `outages`)."""
    changes: list[tuple[float, str]] = []
    for s in sorted(samples, key=lambda s: s.t):
        if s.ok and s.node is not None and (not changes or changes[-1][1] != s.node):
            changes.append((s.t, s.node))
    return changes


# -- one probe ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """Where to probe: a resolved socket address and the request bytes to send."""

    family: int
    sockaddr: tuple[Any, ...]
    request: bytes

    @classmethod
    def from_url(cls, url: str) -> Target:
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"need an http:// URL, not {url!r}")
        port = u.port or 80
        info = socket.getaddrinfo(u.hostname, port, type=socket.SOCK_STREAM)
        family, _, _, _, sockaddr = info[0]
        host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        request = f"GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        return cls(family, tuple(sockaddr), request)


_ERRNO_NAMES = {
    errno.ECONNREFUSED: "refused",
    errno.ECONNRESET: "reset",
    errno.EHOSTUNREACH: "unreachable",
    errno.ENETUNREACH: "unreachable",
    errno.ETIMEDOUT: "timeout",
}


def _parse_response(raw: bytes) -> tuple[str | None, str | None]:
    head, sep, body = raw.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if not sep or len(status) < 2 or not status[0].startswith(b"HTTP/") \
            or not status[1].isdigit():
        return None, "bad_response"
    if status[1] != b"200":
        return None, f"http_{status[1].decode()}"
    return body.decode("utf-8", "replace").strip(), None


# -- the prober loop ------------------------------------------------------------------------


@dataclass
class _Flight:
    """One probe in flight: a non-blocking connection, from connect to EOF."""

    sock: socket.socket
    start: float
    deadline: float
    connected: bool = False
    chunks: list[bytes] = field(default_factory=list)


def run(target: Target, interval: float, timeout: float, duration: float,
        count: int | None, out: IO[str], stopping: Callable[[], bool],
        wake_fd: int | None = None) -> int:
    """Start a probe every `interval` seconds until `duration`, `count` or `stopping()`,
    without waiting for earlier ones: each runs on its own with its own `timeout`. So while
    the service is down the schedule still holds, and the first probe to succeed tells when
    service came back to within one interval (one at a time, a lost SYN would hide the
    recovery for a whole timeout). Samples are written as probes finish; `t` is each one's
    start. `wake_fd` (readable on a stop signal) ends a wait early. Returns probes made."""
    sel = selectors.DefaultSelector()
    if wake_fd is not None:
        sel.register(wake_fd, selectors.EVENT_READ, None)
    flights: dict[int, _Flight] = {}
    t0 = time.monotonic()
    end = t0 + duration
    k = made = launched = 0  # k: the schedule's slot (a late loop skips slots, never bursts)

    def finish(f: _Flight, node: str | None, err: str | None) -> None:
        nonlocal made
        sel.unregister(f.sock)
        f.sock.close()
        done = time.monotonic()
        out.write(Sample(f.start, node, round((done - f.start) * 1000, 3), err).to_json() + "\n")
        out.flush()
        made += 1

    def launch(now: float) -> None:
        nonlocal launched
        launched += 1
        sock = socket.socket(target.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        f = _Flight(sock, now, now + timeout)
        rc = sock.connect_ex(target.sockaddr)
        flights[id(f)] = f
        sel.register(sock, selectors.EVENT_WRITE, f)
        if rc not in (0, errno.EINPROGRESS):
            flights.pop(id(f))
            finish(f, None, _errname(rc))

    while True:
        now = time.monotonic()
        more = not stopping() and (count is None or launched < count) and \
            t0 + k * interval < end
        while more and t0 + k * interval <= now:
            launch(now)
            k = k + 1 if interval <= 0 else max(k + 1, math.floor((now - t0) / interval) + 1)
            more = (count is None or launched < count) and t0 + k * interval < end
        if not more and not flights:
            return made
        wake = min([f.deadline for f in flights.values()] +
                   ([t0 + k * interval] if more else []))
        for key, _mask in sel.select(max(0.0, wake - time.monotonic())):
            f = key.data
            if f is None:  # the stop pipe: drain it; stopping() says the rest
                try:
                    os.read(wake_fd, 512)  # type: ignore[arg-type]
                except OSError:
                    pass
                continue
            _advance(f, target, sel, flights, finish)
        now = time.monotonic()
        for f in [f for f in flights.values() if now >= f.deadline]:
            flights.pop(id(f))
            finish(f, None, "timeout")


def _errname(code: int) -> str:
    return _ERRNO_NAMES.get(code, errno.errorcode.get(code, "oserror").lower())


def _advance(f: _Flight, target: Target, sel: selectors.BaseSelector,
             flights: dict[int, _Flight], finish: Callable[[_Flight, str | None, str | None],
                                                           None]) -> None:
    """Move one probe on: connected -> request sent -> response read to EOF."""
    try:
        if not f.connected:
            code = f.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                flights.pop(id(f))
                finish(f, None, _errname(code))
                return
            f.connected = True
            f.sock.send(target.request)  # a few dozen bytes: one send on a fresh socket
            sel.modify(f.sock, selectors.EVENT_READ, f)
            return
        data = f.sock.recv(65536)
    except OSError as e:
        flights.pop(id(f))
        finish(f, None, _errname(e.errno or 0))
        return
    if data:
        f.chunks.append(data)
        return
    flights.pop(id(f))
    node, err = _parse_response(b"".join(f.chunks))
    finish(f, node, err)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vigil.lab.probe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between probes")
    parser.add_argument("--timeout", type=float, default=0.1, help="seconds per probe")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds to run")
    parser.add_argument("--count", type=int, default=None, help="stop after N probes")
    args = parser.parse_args(argv)
    if args.interval < 0 or args.timeout <= 0 or args.duration < 0:
        parser.error("interval must be >= 0, timeout > 0, duration >= 0")
    try:
        target = Target.from_url(args.url)
    except (ValueError, OSError) as e:
        parser.error(str(e))

    stop = threading.Event()
    rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    try:
        # The wakeup fd turns a stop signal into a readable pipe: a wait ends at once.
        run(target, args.interval, args.timeout, args.duration, args.count, sys.stdout,
            stop.is_set, rfd)
    except BrokenPipeError:
        # Whoever read our output is gone; nothing left to tell anyone.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


# -- driving the prober from a test ----------------------------------------------------------


class Prober:
    """The prober running in one lab host, its output collected by a reader thread (so the
    pipe never fills).

        with Prober(lab, "client", f"http://{vip}/", duration=10) as p:
            ...
        samples = p.samples()
    """

    def __init__(self, lab: Lab, host: str, url: str, *, interval: float = 0.01,
                 timeout: float = 0.1, duration: float = 60.0, count: int | None = None) -> None:
        self.lab, self.host, self.url = lab, host, url
        self.argv = [sys.executable, "-m", "vigil.lab.probe", "--url", url,
                     "--interval", str(interval), "--timeout", str(timeout),
                     "--duration", str(duration)]
        if count is not None:
            self.argv += ["--count", str(count)]
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._samples: list[Sample] = []
        self._bad: list[str] = []
        self._cond = threading.Condition()
        self._eof = False

    def start(self) -> Self:
        assert self._proc is None, "a Prober starts once"
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[2])  # the directory holding vigil/
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        self._proc = self.lab.popen(self.host, self.argv, stdout=subprocess.PIPE, text=True,
                                    env=env)
        self._reader = threading.Thread(target=self._read, args=(self._proc.stdout,),
                                        name=f"prober-{self.host}", daemon=True)
        self._reader.start()
        return self

    def _read(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                if not line.strip():
                    continue
                try:
                    sample = parse_line(line)
                except ValueError:
                    with self._cond:
                        self._bad.append(line)
                    continue
                with self._cond:
                    self._samples.append(sample)
                    self._cond.notify_all()
        except (OSError, ValueError):
            pass  # the stream was closed under us by Lab.close
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    def samples(self) -> list[Sample]:
        """The samples so far; ValueError if the prober wrote anything else."""
        with self._cond:
            if self._bad:
                raise ValueError(f"prober wrote non-sample lines: {self._bad[:3]!r}")
            return list(self._samples)

    def wait_sample(self, predicate: Callable[[Sample], bool] = lambda s: True,
                    after: float = -math.inf, timeout: float = 5.0) -> Sample:
        """Wait for a sample started at or after `after` for which `predicate` holds and
        return the first such; TimeoutError if none within `timeout` seconds or the prober
        ended first."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for s in self._samples[seen:]:
                    if s.t >= after and predicate(s):
                        return s
                seen = len(self._samples)
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    why = "prober ended" if self._eof else f"none within {timeout}s"
                    raise TimeoutError(f"no matching sample from {self.host}: {why}")
                self._cond.wait(left)

    def wait(self, timeout: float | None = None) -> list[Sample]:
        """Wait for the prober to end by itself (duration or count); return all samples."""
        assert self._proc is not None and self._reader is not None, "not started"
        self._proc.wait(timeout)
        self._reader.join(timeout)
        return self.samples()

    def stop(self) -> list[Sample]:
        """Stop the prober (SIGTERM, then SIGKILL after a grace), reap it; all samples."""
        if self._proc is not None:
            self.lab.stop(self._proc)
            assert self._reader is not None
            self._reader.join(5.0)
            if self._proc.stdout is not None:
                self._proc.stdout.close()
        return self.samples()

    @property
    def returncode(self) -> int | None:
        """The prober's exit status once reaped (0 also after SIGTERM), else None."""
        return None if self._proc is None else self._proc.returncode

    def __enter__(self) -> Self:
        if self._proc is None:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


if __name__ == "__main__":
    raise SystemExit(main())
