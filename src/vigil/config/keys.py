"""The cluster key: where it comes from and what a usable one is.

The key file holds the shared secret (any bytes; surrounding whitespace is dropped so that
`vigil keygen` output and hand-edited files agree). Like Heartbeat's authkeys, a key file that
group or others may read is refused: a leaked key lets anyone on the link forge heartbeats.
It reads through config/files.py, as every file of the configuration is read (it lived
in wire/ once, which then imported config: issue 13); `generate_key` takes its randomness
as an argument like every other core.
"""

from __future__ import annotations

import os
from pathlib import Path

from typing import TYPE_CHECKING

from vigil.config.files import MAX_KEY_FILE, FileRefused, read_file
from vigil.errors import KeyFileError

if TYPE_CHECKING:
    from vigil.model import Cluster

MIN_KEY_BYTES = 16


def load_key(path: Path) -> bytes:
    """The key in `path`: a regular file of at most MAX_KEY_FILE bytes (4 KiB: a key is a few
    dozen), refused by its size before it is read (config/files.py), mode 0600."""
    try:
        read = read_file(path, MAX_KEY_FILE, "a key file", bom=False)  # any bytes: kept
    except FileRefused as e:
        if e.missing:
            raise KeyFileError(f"key file {path} does not exist (create one with "
                               f"`vigil keygen {path}`)") from None
        raise KeyFileError(e.after(f"key file {path}")) from None
    if read.mode & 0o077:
        raise KeyFileError(
            f"key file {path} has mode {read.mode:04o}; it must not be readable by group or "
            f"others (chmod 600 {path})"
        )
    key = read.data.strip()
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
