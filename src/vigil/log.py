"""Logging set-up and the daemon's log format.

Lines read like Heartbeat's (`Link n2:eth0 dead.`, `node n2: is dead`) with a timestamp to
the millisecond, the node name and a level word, to stderr and optionally to a file.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

LEVEL_WORDS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "WARN",
               logging.ERROR: "ERROR", logging.CRITICAL: "CRIT"}


class _Formatter(logging.Formatter):
    def __init__(self, node: str) -> None:
        super().__init__("%(asctime)s.%(msecs)03d vigil[%(node)s]: %(word)s: %(message)s",
                         "%Y-%m-%d %H:%M:%S")
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        record.node = self.node
        record.word = LEVEL_WORDS.get(record.levelno, record.levelname)
        return super().format(record)


def setup(node: str, log_file: Path | None = None, debug: bool = False) -> None:
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        handlers.append(logging.FileHandler(log_file))
    for h in handlers:
        h.setFormatter(_Formatter(node))
        root.addHandler(h)
    logging.getLogger("pyroute2").setLevel(logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.WARNING)
