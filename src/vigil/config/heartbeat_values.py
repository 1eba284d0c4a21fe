"""What the words of Heartbeat's ha.cf and haresources mean: times as Heartbeat reads them
(seconds, or with ms or us), booleans, bounded integers, choices, absolute paths, interface
names, addresses and multicast groups, vigil names and serial bauds. Each converter takes one
word and returns its value, or raises ValueError with what to write instead; `checked` adds
that sentence to a line's errors.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from vigil import model
from vigil.config.duration import MAX_DURATION
from vigil.config.names import NAME, is_ifname

_V = TypeVar("_V")
_TIME = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ms|msec|us|usec)?", re.IGNORECASE)
_MAX_MS = round(MAX_DURATION * 1000)


def as_ms(value: str) -> int:
    """Heartbeat's get_msec: seconds, or a number with ms/msec/us/usec, rounded to 1 ms."""
    m = _TIME.fullmatch(value)
    if m is None:
        raise ValueError(f"{value!r} is not a time: write seconds (2, 0.5) or milliseconds "
                         f"(500ms), as Heartbeat reads them")
    unit = (m.group(2) or "s").lower()
    ms = int(float(m.group(1)) * {"s": 1000.0, "m": 1.0, "u": 0.001}[unit[0]] + 0.5)
    if not 0 < ms <= _MAX_MS:
        raise ValueError(f"{value!r} must lie between 1ms and 168h")
    return ms


def as_bool(value: str) -> bool:
    if value.lower() in ("true", "on", "yes", "y", "1"):
        return True
    if value.lower() in ("false", "off", "no", "n", "0"):
        return False
    raise ValueError(f"{value!r} is not a boolean: write on or off")


def int_in(lo: int, hi: int) -> Callable[[str], int]:
    def conv(value: str) -> int:
        if not (value.isascii() and value.isdigit()) or not lo <= int(value) <= hi:
            raise ValueError(f"{value!r} is not a whole number from {lo} to {hi}")
        return int(value)
    return conv


def one_of(*options: str) -> Callable[[str], str]:
    def conv(value: str) -> str:
        if value not in options:
            raise ValueError(f"{value!r} is not one of {', '.join(options)}")
        return value
    return conv


def as_abspath(value: str) -> Path:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} is not an absolute path")
    return Path(value)


def as_ifname(value: str) -> str:
    if not is_ifname(value):  # the words of a line hold no white space
        raise ValueError(f"{value!r} is not a Linux interface name (at most 15 characters, "
                         "no '/' or ':')")
    return value


def as_address(value: str) -> model.IPAddress:
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address; vigil takes addresses, not host "
                         "names (a DNS outage must not stop a cluster from starting)") from None
    if addr.is_multicast or addr.is_unspecified:
        raise ValueError(f"{value} is not a unicast address")
    return addr


def as_ping_address(value: str) -> model.IPAddress:
    addr = as_address(value)
    if addr.version != 4:
        raise ValueError(f"{value}: vigil's ping nodes are IPv4 for now")
    return addr


def mcast_group(version: int) -> Callable[[str], model.IPAddress]:
    def conv(value: str) -> model.IPAddress:
        try:
            addr = ipaddress.ip_address(value)
        except ValueError:
            addr = None
        if addr is None or not addr.is_multicast or addr.version != version:
            raise ValueError(f"{value!r} is not an IPv{version} multicast address")
        return addr
    return conv


def as_name(value: str) -> str:
    if not NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid vigil name: 1-63 characters of letters, "
                         "digits, '_', '.' and '-', starting with a letter or digit")
    return value


def as_baud(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) not in model.SERIAL_BAUDS:
        raise ValueError(f"{value!r} is not one of {', '.join(map(str, model.SERIAL_BAUDS))}")
    return int(value)


def checked(conv: Callable[[str], _V], value: str, errors: list[str]) -> _V | None:
    try:
        return conv(value)
    except ValueError as e:
        errors.append(str(e))
        return None
