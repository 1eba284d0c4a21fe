"""Long-lived connections for the lab: COUNT transfers of vigil.lab.web's GET /stream held
open, each watched for its longest silence and whether it broke.

    python -m vigil.lab.streams --to ADDRESS [--port 80] [--count 50] [--duration 10]

Prints one JSON object when the duration is over (or on SIGTERM): per connection the real
server that answers it, the lines received, the longest gap between two lines (seconds), and
`broke` (null, or what ended it: "reset", "closed", "timeout", "connect: ..."). A connection
that breaks is not reopened: the point is whether the same connection survives.
"""

from __future__ import annotations

import argparse
import json
import selectors
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stream:
    sock: socket.socket | None
    server: str | None = None
    lines: int = 0
    last: float = field(default_factory=time.monotonic)
    longest_gap: float = 0.0
    broke: str | None = None
    buffer: bytes = b""

    def report(self) -> dict[str, Any]:
        return {"server": self.server, "lines": self.lines,
                "longest_gap": round(self.longest_gap, 3), "broke": self.broke}


def _open(address: str, port: int, timeout: float) -> Stream:
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
        sock.sendall(b"GET /stream HTTP/1.0\r\nHost: lab\r\n\r\n")
    except OSError as e:
        return Stream(None, broke=f"connect: {e.strerror or e}")
    sock.setblocking(False)
    return Stream(sock)


def _read(s: Stream, now: float) -> None:
    assert s.sock is not None
    try:
        data = s.sock.recv(65536)
    except BlockingIOError:
        return
    except ConnectionResetError:
        data, s.broke = b"", "reset"
    except OSError as e:
        data, s.broke = b"", e.strerror or str(e)
    if not data:
        s.broke = s.broke or "closed"
        return
    s.buffer += data
    *complete, s.buffer = s.buffer.split(b"\n")
    for line in complete:
        words = line.split()
        if len(words) == 2 and words[1].isdigit():  # "<server> <n>", past the headers
            s.server = words[0].decode(errors="replace")
            s.lines += 1
            s.longest_gap = max(s.longest_gap, now - s.last)
            s.last = now


def watch(address: str, port: int, count: int, duration: float,
          silence: float = 30.0) -> list[Stream]:
    streams = [_open(address, port, 5.0) for _ in range(count)]
    sel = selectors.DefaultSelector()
    for s in streams:
        if s.sock is not None:
            sel.register(s.sock, selectors.EVENT_READ, s)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    end = time.monotonic() + duration
    while not stop["now"] and time.monotonic() < end and sel.get_map():
        for key, _ in sel.select(0.05):
            s = key.data
            _read(s, time.monotonic())
            if s.broke is not None:
                sel.unregister(key.fileobj)
        now = time.monotonic()
        for s in streams:
            if s.broke is None and now - s.last > silence:
                s.broke = "timeout"
                sel.unregister(s.sock)  # type: ignore[arg-type]
    now = time.monotonic()
    for s in streams:
        if s.broke is None:
            s.longest_gap = max(s.longest_gap, now - s.last)
        if s.sock is not None:
            s.sock.close()
    return streams


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vigil.lab.streams", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--to", required=True, help="the address to connect to")
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--duration", type=float, default=10.0)
    a = ap.parse_args(argv)
    streams = watch(a.to, a.port, a.count, a.duration)
    print(json.dumps([s.report() for s in streams]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
