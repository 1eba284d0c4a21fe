"""The UNIX control socket: root only, never hijacked, never left stale.

Like supervisor's http.py: if the path exists, connect to it first: a live daemon there is
an error, a dead socket file is removed. The socket is bound under a temporary name,
chmod 0600 before it becomes visible, then renamed into place. Each connection carries one
request; the peer's credentials (SO_PEERCRED) must be root's or the daemon's own uid.

Task: `serve()` runs in the daemon's TaskGroup until cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

from vigil.control import protocol as p
from vigil.errors import VigilError

log = logging.getLogger(__name__)

Handler = Callable[[p.Request], Awaitable[p.Response]]


def bind(path: Path) -> socket.socket:
    if path.exists() or path.is_symlink():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
            raise VigilError(f"another vigil daemon is running on control socket {path}")
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)
        except OSError as e:
            raise VigilError(f"control socket {path}: {e.strerror}") from None
        finally:
            probe.close()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(tmp))
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
        sock.listen(16)
        sock.setblocking(False)
        return sock
    except OSError as e:
        raise VigilError(f"control socket {path}: {e.strerror}") from None


async def serve(sock: socket.socket, handle: Handler) -> None:
    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            resp = await _one(reader, writer, handle)
            writer.write(p.encode_response(resp))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("control request failed")
        finally:
            writer.close()

    server = await asyncio.start_unix_server(on_client, sock=sock, limit=p.MAX_MESSAGE + 1)
    async with server:
        await asyncio.Future()  # until cancelled


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               handle: Handler) -> p.Response:
    raw = writer.get_extra_info("socket")
    creds = raw.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    if uid not in (0, os.geteuid()):
        return p.Response(False, None, p.ErrorCode.FORBIDDEN, "the control socket is for root")
    try:
        async with asyncio.timeout(5):
            line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        return p.Response(False, None, p.ErrorCode.TOO_LARGE,
                          f"request exceeds {p.MAX_MESSAGE} bytes")
    except TimeoutError:
        return p.Response(False, None, p.ErrorCode.BAD_REQUEST, "no request line within 5 s")
    req = p.decode_request(line)
    if isinstance(req, p.ProtocolError):
        return p.Response(False, None, req.code, req.message)
    return await handle(req)
