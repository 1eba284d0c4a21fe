"""Heartbeat's authkeys: `auth N` and the key lines, the mode 0600 it must have, and the HMAC
key vigil takes from it (the text of key N; crc only with allow_crc, and then an empty key).
"""

from __future__ import annotations

import re
from pathlib import Path

from vigil.config.files import MAX_KEY_FILE, FileRefused, read_file
from vigil.config.heartbeat_report import Report


def read_key(path: Path, allow_crc: bool, r: Report) -> bytes | None:
    file = str(path)
    try:
        read = read_file(path, MAX_KEY_FILE, "an authkeys file")
    except FileRefused as e:
        r.error(file, None, "<file>", e.reason)
        return None
    data = read.data
    if read.mode & 0o077:
        r.error(file, None, "<mode>", f"mode {read.mode:04o}: the key must be "
                                      f"readable by its owner only, as Heartbeat requires "
                                      f"(chmod 600 {path})")
    auth: tuple[int, int] | None = None  # (index, line)
    keys: dict[int, tuple[str, bytes, int]] = {}  # index -> (method, key, line)
    before = len(r.problems)
    for n, raw in enumerate(data.split(b"\n"), start=1):
        text = raw.strip()
        if not text or text.startswith(b"#"):
            continue
        head = re.fullmatch(rb"auth\s+([0-9]{1,9})", text)
        entry = re.fullmatch(rb"([0-9]{1,9})\s+(\S+)(?:\s+(\S+))?(\s+.*)?", text)
        if head is not None:
            if auth is not None:
                r.error(file, n, "auth", f"a second auth line (the first is line {auth[1]})")
            auth = (int(head.group(1)), n)
        elif entry is None:
            r.error(file, n, "<syntax>", "expected `auth N` or `N sha1 KEY` (or md5, crc)")
        else:
            index, method, key = int(entry.group(1)), entry.group(2).decode("ascii", "replace"), \
                entry.group(3) or b""
            error = _key_problem(index, method, key, entry.group(4), keys)
            if error:
                r.error(file, n, method, error)
            else:
                keys[index] = (method, key, n)
    if len(r.problems) != before:  # a missing key or auth line may be a line refused above
        return None
    if auth is None:
        r.error(file, None, "auth", "no `auth N` line says which key to use")
        return None
    if auth[0] not in keys:
        r.error(file, auth[1], "auth", f"auth {auth[0]}: there is no key line {auth[0]}")
        return None
    method, key, line = keys[auth[0]]
    for other, (_, _, n) in keys.items():
        if other != auth[0]:
            r.warn(file, n, "authkeys", f"key {other} is not used: vigil signs and checks with "
                                        f"key {auth[0]} only (auth {auth[0]})")
    if method == "crc" and not allow_crc:
        r.error(file, line, "crc", f"crc gives no security: anyone on the heartbeat network "
                                   f"can forge heartbeats and take the groups over; write "
                                   f"`{auth[0]} sha1 SECRET` (or pass --allow-crc to accept it)")
        return None
    if method == "crc":
        r.warn(file, line, "crc", "crc gives no security: anyone on the heartbeat network can "
                                  "forge heartbeats; replace it with sha1 and a secret")
        return b""
    if len(key) < 16:
        r.warn(file, line, method, f"the key has {len(key)} characters; use at least 16 "
                                   f"random ones (`vigil keygen` makes such a key)")
    r.note("authkeys", f"vigil signs with HMAC-SHA256 keyed with the text of key {auth[0]} "
                       f"({method})")
    return key


def _key_problem(index: int, method: str, key: bytes, extra: bytes | None,
                 keys: dict[int, tuple[str, bytes, int]]) -> str | None:
    if not 0 <= index <= 15:
        return f"key index {index} is out of range (0-15)"
    if index in keys:
        return f"key {index} is defined twice (line {keys[index][2]} and here)"
    if method not in ("crc", "md5", "sha1"):
        return f"unknown method {method!r}: Heartbeat's are crc, md5 and sha1"
    if method == "crc" and key:
        return "crc takes no key"
    if method != "crc" and not key:
        return f"{method} needs a key: `{index} {method} SECRET`"
    if extra:
        return "the key must be one word (Heartbeat kept only its first word)"
    return None
