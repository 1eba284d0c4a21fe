"""Talk to a daemon over its control socket (blocking: the CLI has no event loop)."""

from __future__ import annotations

import os
import pwd
import socket
from pathlib import Path
from typing import Any

from vigil.control import protocol as p
from vigil.errors import ControlDenied, ControlError, DaemonUnreachable


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
            raise ControlDenied(denied(path)) from None
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


def denied(path: Path) -> str:
    """What refused this user the socket at `path`: a directory on the way that it may not
    enter, or the socket's own mode (the daemon makes it root's only)."""
    start = f"permission denied on the control socket {path}"
    for d in reversed(Path(os.path.abspath(path)).parents):
        if not os.access(d, os.X_OK):
            return f"{start}: its directory {d} is closed to this user ({_owner(d)}): run as root"
    owner = _owner(path)
    return f"{start} ({owner}): run as root" if owner else f"{start}: run as root"


def _owner(path: Path) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return ""
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    return f"mode {st.st_mode & 0o7777:04o}, owner {owner}"
