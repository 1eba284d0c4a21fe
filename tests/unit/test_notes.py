"""What untrusted input makes the daemon log is rate-limited (issue 12): 20,000 replayed
frames a second once made 170,573 log lines in 10 s."""

from __future__ import annotations

import logging

from vigil.daemon.notes import BURST, NoteLog
from vigil.core.notes import Level, Note


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def logger() -> tuple[logging.Logger, Lines]:
    lg = logging.getLogger("test-notes")
    lg.handlers[:] = []
    lg.setLevel(logging.DEBUG)
    h = Lines()
    lg.addHandler(h)
    lg.propagate = False
    return lg, h


def test_a_flood_of_one_kind_costs_a_few_lines_and_a_count() -> None:
    lg, h = logger()
    notes = NoteLog(lg)
    flood = [Note(Level.ERROR, f"another host sends heartbeats as n2 ({i})", "dup")
             for i in range(20_000)]
    for i, n in enumerate(flood):
        notes.write([n], 100.0 + i / 20_000)  # 20,000 in one second
    notes.write([Note(Level.INFO, "node n2: is dead (deadtime)")], 101.0)  # no key: never held
    assert len(h.lines) == BURST + 1 and h.lines[-1] == "node n2: is dead (deadtime)"
    notes.due(101.0)
    assert len(h.lines) == BURST + 1, "no token yet: the count waits"
    notes.due(111.0)
    assert h.lines[-1] == f"held back {20_000 - BURST} lines like: " + flood[-1].text
    notes.due(200.0)
    assert len(h.lines) == BURST + 2, "counted once"
    notes.write([flood[0]], 300.0)
    assert h.lines[-1] == flood[0].text


def test_keys_are_limited_apart_and_a_count_rides_with_the_next_line() -> None:
    lg, h = logger()
    notes = NoteLog(lg)
    for i in range(BURST + 3):
        notes.write([Note(Level.WARNING, "a", "a"), Note(Level.WARNING, "b", "b")], 0.0)
    assert h.lines.count("a") == BURST and h.lines.count("b") == BURST
    notes.write([Note(Level.WARNING, "a", "a")], 10.0)
    assert h.lines[-1] == "a (3 more like it held back)"


def test_debug_lines_nobody_reads_are_not_counted() -> None:
    lg, h = logger()
    lg.setLevel(logging.INFO)
    notes = NoteLog(lg)
    notes.write([Note(Level.DEBUG, "dropped frame", "frame bad_auth eth0")] * 1000, 0.0)
    notes.due(100.0)
    assert h.lines == []
