"""Reading the files a configuration names, all in one way: bounded, and never blocking.

Every file vigil reads because its configuration says so (vigil.toml; ha.cf, haresources
and authkeys; keepalived.conf and its includes; the cluster key; the API token) is read by
`read_file`: `stat` first, so that a FIFO, a device or a directory is refused without being
opened (opening a FIFO waits for a writer; opening /dev/watchdog arms it); then opened with
O_NONBLOCK, checked again on the open descriptor (the name may have changed in between),
refused when larger than its limit, and read up to the limit only. So a 2 GB file costs a
`stat`, not 2 GB of memory, and a file whose size says nothing (in /proc) is read no further
than its limit either.

Text formats (all but the cluster key, which is any bytes) may start with a UTF-8 byte-order
mark, as Windows editors write them; it is dropped (`bom=True`). `decode_text` makes the text of
vigil.toml and keepalived.conf, refusing bytes that are not UTF-8 at the line of the first
(Heartbeat's files let them pass in comments, and decode them their own way).

Callers word the problem their own way (a ConfigProblem with file and key, a KeyFileError):
`FileRefused.reason` is the sentence after the file's name. The API token file's checks
(mode 0600, not empty) live here too, since both check-config and the daemon's HTTP server
(daemon/api/server.py) make them. Imports errors only.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from vigil.errors import ConfigError, ConfigProblem, KeyFileError

KIB = 1024
MAX_KEY_FILE = 4 * KIB  # the cluster key, authkeys, the API token: a few dozen bytes
MAX_CONFIG_FILE = 1024 * KIB  # vigil.toml, ha.cf, haresources, keepalived.conf (each file)
BOM = b"\xef\xbb\xbf"

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


class FileRefused(Exception):
    """A file that is not read: `reason` says why, to follow the file's name."""

    def __init__(self, reason: str, missing: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.missing = missing  # it does not exist (some callers say how to create it)

    def after(self, name: str) -> str:
        """The sentence with the file's name first: "key file /x is a FIFO, not a regular
        file", "key file /x: cannot read: Permission denied"."""
        return f"{name}: {self.reason}" if self.reason.startswith("cannot") else \
            f"{name} {self.reason}"


@dataclass(frozen=True, slots=True)
class FileRead:
    data: bytes
    mode: int  # its permission bits (stat.S_IMODE), as they were when it was read


def size_text(n: int) -> str:
    """4096 -> "4 KiB", 2147483648 -> "2 GiB", 1000 -> "1000 bytes"."""
    for unit, size in (("GiB", KIB**3), ("MiB", KIB**2), ("KiB", KIB)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) or value >= 10 else \
                f"{value:.1f} {unit}"
    return f"{n} bytes"


def _too_large(size: int | None, limit: int, what: str) -> FileRefused:
    said = f"is {size} bytes ({size_text(size)})" if size is not None else \
        f"holds more than {limit} bytes"
    return FileRefused(f"{said}; {what} has at most {limit} bytes ({size_text(limit)}): "
                       f"is it the right file?")


def _kind(mode: int) -> str | None:
    """Why a file of this mode is not read (None: a regular file)."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return f"is {kind}, not a regular file"


def read_file(path: Path | str, limit: int, what: str, *, bom: bool = True) -> FileRead:
    """The content of the regular file `path`, at most `limit` bytes, without a leading
    byte-order mark (unless bom=False). `what` names the kind of file in the size problem
    ("a configuration file"). Raises FileRefused; never blocks, never reads past the limit."""
    try:
        st = os.stat(path)
        refused = _kind(st.st_mode)
        if refused:
            raise FileRefused(refused)
        if st.st_size > limit:
            raise _too_large(st.st_size, limit, what)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError as e:
        raise FileRefused(f"cannot read: {_reason(e)}", missing=True) from None
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        raise FileRefused(f"cannot read: {_reason(e)}") from None
    try:
        st = os.fstat(fd)  # the file opened, which may not be the one stat()ed
        refused = _kind(st.st_mode)
        if refused:
            raise FileRefused(refused)
        if st.st_size > limit:
            raise _too_large(st.st_size, limit, what)
        chunks: list[bytes] = []
        got = 0
        while got <= limit:
            chunk = os.read(fd, limit + 1 - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got > limit:
            raise _too_large(None, limit, what)
    except OSError as e:
        raise FileRefused(f"cannot read: {_reason(e)}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    return FileRead(data[len(BOM):] if bom and data.startswith(BOM) else data,
                    stat.S_IMODE(st.st_mode))


def _reason(e: OSError | ValueError) -> str:
    return e.strerror if isinstance(e, OSError) and e.strerror else str(e)


def decode_text(data: bytes, file: str) -> str:
    """`data`, read from `file`, as UTF-8 text; a byte that is not UTF-8 is a ConfigError
    (key `<syntax>`) at its line."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(ConfigProblem(file, line, "<syntax>",
                                        f"not UTF-8 (byte {e.start} of the file)")) from None


# --- the API token ---------------------------------------------------------------------------


def check_token_file(path: Path) -> None:
    """Refuse a token file others can read, as Heartbeat refuses such an authkeys, or one
    that holds no token. Run by check-config and by the daemon before its API listens."""
    try:
        read = read_file(path, MAX_KEY_FILE, "a token file")
    except FileRefused as e:
        raise KeyFileError(e.after(f"[api] token_file {path}")) from None
    if read.mode & 0o077:
        raise KeyFileError(f"[api] token_file {path} has mode {read.mode:04o}; "
                           f"it must be 0600 (chmod 600 {path})")
    try:
        token = read.data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise KeyFileError(f"[api] token_file {path} is not UTF-8 text") from None
    if not token:
        raise KeyFileError(f"[api] token_file {path} is empty")


def read_token(path: Path) -> str:
    """The token in `path` ("" when it cannot be read): re-read at each API request, so that
    it can be rotated without a restart, and bounded like every other file."""
    try:
        return read_file(path, MAX_KEY_FILE, "a token file").data.decode("utf-8").strip()
    except (FileRefused, UnicodeDecodeError):
        return ""
