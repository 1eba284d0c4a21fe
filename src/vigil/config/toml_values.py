"""What the plain values of vigil.toml mean, for every reader of its tables: strings and
names, booleans and bounded integers, durations and timeouts, paths and argv lists, interface
names and addresses. Each converter takes a value as tomllib decoded it and returns the model's
value, or raises ValueError with a sentence that says what was expected and what was found
(`describe`), which `Checker.field` (config/toml_checker.py) reports at the key's line. The
values only one table takes are converted beside its reader.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from vigil import model
from vigil.config.duration import MAX_DURATION, parse_duration
from vigil.config.names import NAME, is_ifname

_T = TypeVar("_T")


def describe(v: object) -> str:
    if isinstance(v, bool):
        kind = "a boolean"
    elif isinstance(v, int):
        kind = "an integer"
    elif isinstance(v, float):
        kind = "a float"
    elif isinstance(v, str):
        kind = "a string"
    elif isinstance(v, dict):
        return "a table"
    elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
        return "an array of tables"
    elif isinstance(v, list):
        kind = "an array"
    elif isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        kind = "a date/time"
    else:
        kind = type(v).__name__
    shown = repr(v)
    return f"{kind} ({shown if len(shown) <= 40 else shown[:37] + '...'})"


def as_str(v: object) -> str:
    if not isinstance(v, str):
        raise ValueError(f"expected a string, found {describe(v)}")
    if "\0" in v:
        raise ValueError("must not contain a NUL character")
    return v


def as_nonempty(v: object) -> str:
    s = as_str(v)
    if not s.strip():
        raise ValueError("must not be empty")
    return s


def as_name(v: object) -> str:
    s = as_str(v)
    if not NAME.fullmatch(s):
        raise ValueError(f"{s!r} is not a valid name: 1-63 characters of letters, digits, "
                         "'_', '.' and '-', starting with a letter or digit")
    return s


def as_path(v: object) -> Path:
    return Path(as_nonempty(v))


def as_bool(v: object) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, found {describe(v)}")
    return v


def int_in(lo: int, hi: int) -> Callable[[object], int]:
    def conv(v: object) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"expected an integer from {lo} to {hi}, found {describe(v)}")
        if not lo <= v <= hi:
            raise ValueError(f"{v} is out of range; expected {lo} to {hi}")
        return v
    return conv


def as_duration(v: object) -> float:
    if not isinstance(v, (str, int, float)):  # bool is an int: parse_duration refuses it
        raise ValueError(f'expected a duration such as "200ms" or "1s", found {describe(v)}')
    seconds = parse_duration(v)
    if seconds > MAX_DURATION:
        raise ValueError(f"{v!r} is longer than the {MAX_DURATION // 3600:g}h maximum")
    return seconds


def as_timeout(v: object) -> float:
    seconds = as_duration(v)
    if seconds <= 0:
        raise ValueError("a timeout must be longer than 0s")
    return seconds


def as_ifname(v: object) -> str:
    s = as_nonempty(v)
    if not is_ifname(s):
        raise ValueError(f"{s!r} is not a Linux interface name (at most 15 characters, "
                         "no '/', ':' or spaces)")
    return s


def as_address(v: object) -> model.IPAddress:
    s = as_str(v)
    if "/" in s:
        raise ValueError(f"{s!r}: a node address takes no prefix length")
    addr = _ip(s)
    if addr.is_multicast or addr.is_unspecified:
        raise ValueError(f"{s!r} is not a unicast address")
    return addr


def as_addresses(v: object) -> tuple[model.IPAddress, ...]:
    if isinstance(v, str):
        return (as_address(v),)
    if not isinstance(v, list):
        raise ValueError(f"expected an address or a list of addresses, found {describe(v)}")
    return tuple(as_address(x) for x in v)


def as_mcast_group(v: object) -> model.IPAddress:
    addr = _ip(as_str(v))
    if not addr.is_multicast:
        raise ValueError(f"{addr} is not a multicast address")
    return addr


def _ip(s: str) -> model.IPAddress:
    try:
        return ipaddress.ip_address(s)
    except ValueError:
        raise ValueError(f"{s!r} is not an IPv4 or IPv6 address") from None


def as_argv(v: object) -> tuple[str, ...]:
    if isinstance(v, str):
        raise ValueError('expected an argv list such as ["/usr/local/bin/web", "start"], found '
                         f"a string ({v[:40]!r}); argv lists are required, never a shell string")
    if not isinstance(v, list):
        raise ValueError(f"expected an argv list of strings, found {describe(v)}")
    if not v:
        raise ValueError("the argv list is empty; it needs at least the program's absolute path")
    for n, arg in enumerate(v):
        if not isinstance(arg, str) or not arg or "\0" in arg:
            raise ValueError(f"argv[{n}] must be a non-empty string, found {describe(arg)}")
    if not v[0].startswith("/"):
        raise ValueError(f"argv[0] {v[0]!r} must be an absolute path")
    return tuple(v)


def as_device(v: object) -> Path:
    s = as_nonempty(v)
    if not s.startswith("/") or "\0" in s:
        raise ValueError(f"{s!r} must be an absolute path (a device such as /dev/ttyS0 or "
                         f"/dev/sdb1, or a file)")
    return Path(s)


def as_abs_path(v: object) -> Path:
    s = as_nonempty(v)
    if not s.startswith("/") or "\0" in s:
        raise ValueError(f"expected an absolute path, found {s!r}")
    return Path(s)


def or_default(value: _T | None, default: _T) -> _T:
    return default if value is None else value
