"""What the sans-IO cores say: a `Note` is one line for the daemon's log, at a `Level`.

Imports nothing: the cores (node, membership's users, the witness) return notes, and
daemon/notes.py writes them, rate-limited by their key where untrusted input caused them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Level(enum.IntEnum):
    """Note levels; the values are the logging module's, so a Note logs as it is."""

    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40


@dataclass(frozen=True, slots=True)
class Note:
    level: Level
    text: str
    # Set on notes untrusted input causes (a frame, a request): the daemon rate-limits each
    # key, so nothing an attacker sends can flood the log.
    key: str = ""
