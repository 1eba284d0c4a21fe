"""An in-process API server and a counting client, for the hostile-client tests.

`LiveServer` runs `vigil.daemon.api.server.Server` on 127.0.0.1 in its own thread and event
loop, in front of a fake daemon (`FakeDaemon`), so that the attacks and the measurement run
in the test's thread and neither starves the other's loop. `fetch` sends one raw request and
says what came back: an answer (parsed by the standard library's http.client, not by the
h11 the server uses), a reset, a close without an answer, a timeout, or garbage.

Every address used is on loopback (127.0.0.0/8): the attackers bind 127.0.0.2 and up, the
well-behaved clients 127.0.0.1, so the server sees them as different hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.control import protocol as p
from vigil.daemon.api.server import Backend, Server
from vigil.daemon.bus import Bus
from vigil.model import Api

TOKEN = "t0ken-" + "y" * 20


class FakeDaemon:
    """What the server asks of the daemon, with a record of the actions it passed on."""

    def __init__(self) -> None:
        self.bus = Bus("n1")
        self.actions: list[p.Request] = []
        self.broken = False  # status() raises, as a bug in the daemon would

    def status(self) -> dict[str, Any]:
        if self.broken:
            raise RuntimeError("a bug in the status document")
        return {"cluster": "lab", "node": "n1",
                "nodes": [{"name": "n1"}, {"name": "n2"}],
                "groups": [{"name": "web", "owner": "n1", "state": "running"}]}

    async def request(self, req: p.Request) -> p.Response:
        self.actions.append(req)
        return p.Response(True, {"message": f"did {req.cmd}"})

    def metrics(self) -> str:
        return "vigil_node_up{node=\"n2\"} 1\n"

    def backend(self) -> Backend:
        return Backend(self.status, self.request, self.metrics, self.bus)


@dataclass
class LiveServer:
    port: int
    daemon: FakeDaemon
    server: Server
    loop: asyncio.AbstractEventLoop
    serve_task: asyncio.Task[None]

    def call(self, fn: Any, *args: Any) -> None:
        """Run fn(*args) on the server's loop (the bus is not thread-safe)."""
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        """Cancel the server's serve(), as the daemon's shutdown does (once is enough)."""
        with contextlib.suppress(RuntimeError):  # its loop is closed: it stopped already
            self.loop.call_soon_threadsafe(self.serve_task.cancel)


@contextlib.contextmanager
def live_server(tmp: Path, token: bool = True, **server_kw: Any) -> Iterator[LiveServer]:
    token_file = None
    if token:
        token_file = tmp / "api.token"
        token_file.write_text(TOKEN + "\n")
        token_file.chmod(0o600)
    daemon = FakeDaemon()
    server = Server(Api("127.0.0.1", 0, token_file), daemon.backend(), **server_kw)
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        http_server = await server.start()
        box["port"] = http_server.sockets[0].getsockname()[1]
        box["loop"] = asyncio.get_running_loop()
        task = asyncio.create_task(server.serve(http_server))
        box["task"] = task
        ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as e:  # reported by the test thread
            box["error"] = e
            ready.set()

    thread = threading.Thread(target=run, name="api-server", daemon=True)
    thread.start()
    assert ready.wait(10), "the server did not start"
    if "error" in box:
        raise box["error"]
    live = LiveServer(box["port"], daemon, server, box["loop"], box["task"])
    try:
        yield live
    finally:
        live.stop()
        thread.join(10)
        assert not thread.is_alive(), "the server did not stop when cancelled"
    if "error" in box:
        raise box["error"]


@dataclass(frozen=True)
class Outcome:
    kind: str  # "answer", "reset", "refused" (the SYN), "closed" (no answer), "timeout",
    # "malformed"
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def well_formed(self) -> bool:
        """An answer; and if it is a refusal, one with the documented JSON body."""
        if self.kind != "answer":
            return False
        if self.status < 400:
            return True
        try:
            obj = self.json()
        except ValueError:
            return False
        return (isinstance(obj, dict) and isinstance(obj.get("error"), str)
                and isinstance(obj.get("code"), str) and bool(obj["error"]))


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self.data)


def parse(raw: bytes, method: str = "GET") -> Outcome:
    """An answer read to the end, parsed by http.client (so an answer the standard library
    would not take is "malformed")."""
    if not raw:
        return Outcome("closed")
    r = http.client.HTTPResponse(_Bytes(raw), method=method)  # type: ignore[arg-type]
    try:
        r.begin()
        body = r.read()
    except (http.client.HTTPException, ValueError):
        return Outcome("malformed", body=raw[:200])
    return Outcome("answer", r.status, {k.lower(): v for k, v in r.getheaders()}, body)


def request(method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
    h = {"Host": "vigil", **{k.replace("_", "-"): v for k, v in headers.items()}}
    if body or method == "POST":
        h.setdefault("Content-Length", str(len(body)))
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in h.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def fetch(port: int, raw: bytes, src: str = "127.0.0.1", timeout: float = 10.0,
                method: str = "GET", think: float = 0.0) -> Outcome:
    """Send `raw` on a new connection (`think` seconds after connecting, as a busy client
    would), read until the server closes, classify the result."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                          local_addr=(src, 0))
            if think:
                await asyncio.sleep(think)
            writer.write(raw)
            await writer.drain()
            data = await reader.read()
    except ConnectionResetError:
        return Outcome("reset", seconds=loop.time() - t0)
    except BrokenPipeError:
        return Outcome("reset", seconds=loop.time() - t0)
    except TimeoutError:
        return Outcome("timeout", seconds=loop.time() - t0)
    finally:
        if writer is not None:
            writer.close()
    out = parse(data, method)
    return Outcome(out.kind, out.status, out.headers, out.body, loop.time() - t0)


def fetch_blocking(port: int, raw: bytes, src: str = "127.0.0.1",
                   timeout: float = 10.0) -> Outcome:
    """`fetch` on a blocking socket: the request goes out the moment the connection is made
    (from many threads at once, that is what makes a server's close race the request)."""
    t0 = time.monotonic()
    s = socket.socket()
    data = b""
    try:
        s.settimeout(timeout)
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(raw)
        while chunk := s.recv(65536):
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        return Outcome("reset", seconds=time.monotonic() - t0)
    except TimeoutError:
        return Outcome("timeout", seconds=time.monotonic() - t0)
    finally:
        s.close()
    out = parse(data)
    return Outcome(out.kind, out.status, out.headers, out.body, time.monotonic() - t0)


async def get(port: int, path: str, src: str = "127.0.0.1", timeout: float = 10.0,
              think: float = 0.0) -> Outcome:
    return await fetch(port, request("GET", path), src, timeout, think=think)


SLOW_HEAD = b"GET /status HTTP/1.1\r\nHost: vigil\r\nX-Slow: "


async def slow_client(port: int, src: str, until: float, interval: float = 1.0,
                      reconnect: bool = True, prefix: bytes = SLOW_HEAD,
                      host: str = "127.0.0.1") -> list[Outcome]:
    """A slowloris: `prefix` (by default a request head that never ends), then one byte
    every `interval` seconds; whenever the server ends the connection, what it said is
    recorded (with how long the connection lasted) and, with `reconnect`, a new one
    starts, until the loop's time `until`."""
    loop = asyncio.get_running_loop()
    seen: list[Outcome] = []
    while loop.time() < until:
        writer = None
        t0 = loop.time()
        try:
            reader, writer = await asyncio.open_connection(host, port, local_addr=(src, 0))
            writer.write(prefix)
            answer = b""
            while loop.time() < until:
                try:
                    async with asyncio.timeout(interval):
                        chunk = await reader.read(65536)
                except TimeoutError:
                    if not answer:
                        writer.write(b"a")
                        await writer.drain()
                    continue
                if not chunk:
                    break
                answer += chunk
            else:
                return seen  # the attack ended with this connection still open
            out = parse(answer)
            seen.append(Outcome(out.kind, out.status, out.headers, out.body, loop.time() - t0))
        except (ConnectionResetError, BrokenPipeError):
            seen.append(Outcome("reset", seconds=loop.time() - t0))
        except ConnectionRefusedError:  # a RST to the SYN
            seen.append(Outcome("refused", seconds=loop.time() - t0))
        finally:
            if writer is not None:
                writer.close()
        if not reconnect:
            break
        await asyncio.sleep(0.2)  # then again (bounded, so a shared machine keeps up)
    return seen


def main(argv: list[str]) -> None:
    """`python -m tests.integration.apiclient slowloris HOST PORT SRC N SECONDS`: N slow
    connections from SRC to HOST:PORT for SECONDS (in a lab namespace, for the tests on real
    daemons); prints what they were told, one JSON list [kind, status, well_formed] each."""
    cmd, host, port, src, n, seconds = argv
    assert cmd == "slowloris", cmd

    async def run() -> list[Outcome]:
        until = asyncio.get_running_loop().time() + float(seconds)
        got = await asyncio.gather(*(slow_client(int(port), src, until, host=host)
                                     for _ in range(int(n))))
        return [o for outcomes in got for o in outcomes]

    print(json.dumps([[o.kind, o.status, o.well_formed] for o in asyncio.run(run())]))


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])
