"""Talk to a daemon over its control socket (blocking: the CLI has no event loop)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from vigil.control import protocol as p
from vigil.errors import ControlError, DaemonUnreachable


def call(path: Path, cmd: str, timeout: float = 10.0,
         args: dict[str, Any] | None = None) -> dict[str, Any]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except FileNotFoundError:
            raise DaemonUnreachable(f"no vigil daemon: control socket {path} does not exist")
        except ConnectionRefusedError:
            raise DaemonUnreachable(f"no vigil daemon listens on {path} (stale socket)")
        except PermissionError:
            raise DaemonUnreachable(f"control socket {path}: permission denied (root only)")
        sock.sendall(p.encode_request(p.Request(cmd, args or {})))
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
            if len(buf) > p.MAX_MESSAGE:
                break
    except TimeoutError:
        raise DaemonUnreachable(f"the daemon on {path} did not answer within {timeout:g} s")
    except OSError as e:
        raise DaemonUnreachable(f"control socket {path}: {e.strerror}") from None
    finally:
        sock.close()
    resp = p.decode_response(buf)
    if isinstance(resp, p.ProtocolError):
        raise ControlError(resp.code.value, f"bad answer from the daemon: {resp.message}", 4)
    if not resp.ok:
        assert resp.code is not None
        raise ControlError(resp.code.value, resp.message)
    assert resp.result is not None
    return resp.result
