"""The real servers' health checks (keepalived's TCP_CHECK, HTTP_GET, SSL_GET and
MISC_CHECK; ldirectord's checktype connect, negotiate and external): one coroutine per check
that answers a `Result` within the check's timeout, whatever the server does.

- tcp: the connection opens. (The daemon's prober makes the tcp checks of IPv4 servers
  half-open instead, a SYN answered by SYN-ACK, on one raw socket: synprobe.py. This
  connect check is the fallback, and the one for IPv6.)
- http, https: GET `path` (HTTP/1.1, `Connection: close`, h11 parsing the answer); the status
  is one of `expect_status`, the body matches `expect_body` (a regular expression, searched)
  and its MD5 is `digest`, when given. https does not verify the certificate, as
  keepalived's SSL_GET does not: the check asks whether the server answers, not who it is.
- exec: the command exits 0 within the timeout, with VIGIL_REAL_ADDRESS and VIGIL_REAL_PORT
  in its environment; one that hangs is killed (its whole process group) at the timeout.
- none: always healthy (ldirectord's checktype = off).

What a server answers is untrusted: headers are bounded by h11, the body read is capped at
MAX_BODY, and `why` quotes nothing longer than a short excerpt.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import re
import signal
import socket
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import h11

from vigil.balancer.model import Check, Endpoint

MAX_BODY = 1 << 20


@dataclass(frozen=True, slots=True)
class Result:
    ok: bool
    why: str  # "ok", or what failed: "connect: refused", "status 503", "timeout after 500ms"
    latency: float  # seconds from start to the answer


def judge_http(check: Check, status: int, body: bytes) -> tuple[bool, str]:
    """Whether an HTTP answer is healthy, and if not why (pure)."""
    if status not in check.expect_status:
        return False, f"status {status}, expected {', '.join(map(str, check.expect_status))}"
    if check.expect_body is not None and \
            re.search(check.expect_body, body.decode("utf-8", "replace")) is None:
        return False, f"body does not match {check.expect_body!r}"
    if check.digest is not None and hashlib.md5(body).hexdigest() != check.digest:
        return False, "body digest differs"
    return True, "ok"


async def run(check: Check, server: Endpoint) -> Result:
    """One check of `server`; never raises, never outlives check.timeout by much."""
    start = time.monotonic()
    target = Endpoint(server.address, check.port or server.port)
    try:
        async with asyncio.timeout(check.timeout):  # no task of its own, unlike wait_for
            ok, why = await _CHECKS[check.type](check, target)
    except TimeoutError:
        ok, why = False, f"timeout after {round(check.timeout * 1000)}ms"
    except ConnectionRefusedError:
        ok, why = False, "connect: refused"
    except ssl.SSLError as e:
        ok, why = False, f"tls: {e.reason or e}"[:160]
    except OSError as e:
        ok, why = False, f"{type(e).__name__}: {e.strerror or e}"[:160]
    except h11.ProtocolError as e:
        ok, why = False, f"bad HTTP answer: {e}"[:160]
    return Result(ok, why, time.monotonic() - start)


_NO_LINGER = struct.pack("ii", 1, 0)


async def _tcp(check: Check, target: Endpoint) -> tuple[bool, str]:
    # A bare socket, not a stream (no transport, protocol, reader or writer to make and
    # tear down: a third of the cost at 2000 checks a second), closed with a reset as
    # HAProxy closes its checks: no TIME_WAIT left per check on the director.
    family = socket.AF_INET6 if target.address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK |
                         socket.SOCK_CLOEXEC)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _NO_LINGER)
        await asyncio.get_running_loop().sock_connect(sock, (str(target.address),
                                                             target.port))
    finally:
        sock.close()
    return True, "ok"


def _request(check: Check, target: Endpoint) -> tuple[h11.Connection, bytes]:
    """The check's GET, and the client connection (h11) that will read its answer."""
    host = check.host or (f"[{target.address}]" if target.address.version == 6
                          else str(target.address))
    conn = h11.Connection(h11.CLIENT)
    data = conn.send(_get(check.path, host))
    return conn, (data or b"") + (conn.send(h11.EndOfMessage()) or b"")


@functools.lru_cache(maxsize=4096)
def _get(path: str, host: str) -> h11.Request:
    """The request event, made (its headers validated) once per path and host, not per
    check: h11's events are not changed by sending them."""
    return h11.Request(method="GET", target=path, headers=[
        ("Host", host), ("User-Agent", "vigil-check"), ("Connection", "close")])


async def _http(check: Check, target: Endpoint) -> tuple[bool, str]:
    if check.type == "http":
        return await _http_plain(check, target)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(str(target.address), target.port,
                                                   ssl=context)
    try:
        conn, request = _request(check, target)
        writer.write(request)
        await writer.drain()
        return await _read_answer(check, conn, reader.read)
    finally:
        writer.close()
        await _closed(writer)


async def _http_plain(check: Check, target: Endpoint) -> tuple[bool, str]:
    # A bare socket, as for _tcp: no stream to build and tear down per check, and a reset
    # at the end (no TIME_WAIT on the director), as HAProxy closes its checks.
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if target.address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK |
                         socket.SOCK_CLOEXEC)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _NO_LINGER)
        await loop.sock_connect(sock, (str(target.address), target.port))
        conn, request = _request(check, target)
        await loop.sock_sendall(sock, request)
        return await _read_answer(check, conn, lambda n: loop.sock_recv(sock, n))
    finally:
        sock.close()


async def _read_answer(check: Check, conn: h11.Connection,
                       read: Callable[[int], Awaitable[bytes]]) -> tuple[bool, str]:
    status, body = None, bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await read(65536)
            if not data and status is None:
                return False, "no HTTP answer (closed)"
            conn.receive_data(data)
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY:
                return False, f"body larger than {MAX_BODY} bytes"
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            break
    if status is None:
        return False, "no HTTP answer"
    return judge_http(check, status, bytes(body))


async def _exec(check: Check, target: Endpoint) -> tuple[bool, str]:
    env = {**os.environ, "VIGIL_REAL_ADDRESS": str(target.address),
           "VIGIL_REAL_PORT": str(target.port)}
    proc = await asyncio.create_subprocess_exec(
        *check.command, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True)
    try:
        code = await proc.wait()
    except BaseException:  # the timeout: the check and whatever it started go
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await asyncio.shield(proc.wait())
        raise
    return (True, "ok") if code == 0 else (False, f"exit status {code}")


async def _none(check: Check, target: Endpoint) -> tuple[bool, str]:
    return True, "ok"


async def _closed(writer: asyncio.StreamWriter) -> None:
    try:
        await writer.wait_closed()
    except (OSError, ssl.SSLError):
        pass


_CHECKS = {"tcp": _tcp, "http": _http, "https": _http, "exec": _exec, "none": _none}
