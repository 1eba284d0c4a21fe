"""The cluster key: where it comes from and what a usable one is.

The key file holds the shared secret (any bytes; surrounding whitespace is dropped so that
`vigil keygen` output and hand-edited files agree). Like Heartbeat's authkeys, a key file that
group or others may read is refused: a leaked key lets anyone on the link forge heartbeats.
This is the one module of wire/ that touches the filesystem; `generate_key` takes its
randomness as an argument like every other core.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from typing import TYPE_CHECKING

from vigil.errors import KeyFileError

if TYPE_CHECKING:
    from vigil.model import Cluster

MIN_KEY_BYTES = 16


def load_key(path: Path) -> bytes:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist (create one with `vigil keygen {path}`)")
    except OSError as e:
        raise KeyFileError(f"key file {path}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"key file {path} is not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"key file {path} has mode {mode:04o}; it must not be readable by group or others "
            f"(chmod 600 {path})"
        )
    try:
        key = path.read_bytes().strip()
    except OSError as e:
        raise KeyFileError(f"key file {path}: {e.strerror}") from None
    if len(key) < MIN_KEY_BYTES:
        raise KeyFileError(
            f"key file {path} holds {len(key)} bytes; at least {MIN_KEY_BYTES} are required"
        )
    return key


def generate_key(random_bytes: bytes) -> bytes:
    """The text of a new key file: 32 random bytes as hex."""
    return random_bytes.hex().encode() + b"\n"


def write_key(path: Path, content: bytes) -> None:
    """Create a new key file with mode 0600 from the start; never overwrite an existing one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"key file {path} already exists; not overwriting it") from None
    except OSError as e:
        raise KeyFileError(f"cannot create key file {path}: {e.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(content)


def load_cluster_key(cluster: "Cluster") -> tuple[bytes, list[str]]:
    """The cluster key wherever the configuration says it is: vigil's key file, or
    Heartbeat's authkeys (config/heartbeat.py), with the warnings to log at every start."""
    if cluster.key_format == "authkeys":
        from vigil.config.heartbeat import read_authkeys
        return read_authkeys(cluster.key_file, cluster.allow_crc)
    return load_key(cluster.key_file), []
