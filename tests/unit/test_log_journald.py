"""Logging under journald (log.py): stderr is recognised as journald's stream only when
JOURNAL_STREAM names that very descriptor, and then its lines carry `<N>` and no timestamp,
while the log file keeps the usual format."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from vigil import log as vlog

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ")


def stream_of(fd: int) -> str:
    st = os.fstat(fd)
    return f"{st.st_dev}:{st.st_ino}"


@pytest.fixture
def stderr_file(tmp_path: Path) -> Iterator[TextIO]:
    with open(tmp_path / "stderr", "w+") as f:
        yield f


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """setup() replaces the root logger's handlers and level: put pytest's back after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield root
    for h in root.handlers:
        h.close()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


# ---- under_journald ------------------------------------------------------------------------

def test_matching_stream_is_journald(stderr_file: TextIO) -> None:
    fd = stderr_file.fileno()
    assert vlog.under_journald({"JOURNAL_STREAM": stream_of(fd)}, fd)


def test_another_file_is_not(stderr_file: TextIO, tmp_path: Path) -> None:
    """The variable inherited with another stderr (a child, `2>file`): not journald."""
    with open(tmp_path / "other", "w") as other:
        environ = {"JOURNAL_STREAM": stream_of(other.fileno())}
        assert not vlog.under_journald(environ, stderr_file.fileno())


@pytest.mark.parametrize("value", [None, "", ":", "12", "12:", ":34", "a:b", "12:34:56",
                                   "-1:5", " 12:34", "1_2:34", "\u0661\u0662:34"])
def test_malformed_or_absent_variable_is_not(stderr_file: TextIO, value: str | None) -> None:
    environ = {} if value is None else {"JOURNAL_STREAM": value}
    assert not vlog.under_journald(environ, stderr_file.fileno())


def test_off_by_one_inode_is_not(stderr_file: TextIO) -> None:
    st = os.fstat(stderr_file.fileno())
    environ = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}
    assert not vlog.under_journald(environ, stderr_file.fileno())


def test_closed_or_invalid_descriptor_is_not(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "gone", os.O_WRONLY | os.O_CREAT)
    environ = {"JOURNAL_STREAM": stream_of(fd)}
    os.close(fd)
    assert not vlog.under_journald(environ, fd)
    assert not vlog.under_journald(environ, -1)


@pytest.mark.parametrize(("level", "priority"), [
    (logging.DEBUG, 7), (logging.INFO, 6), (logging.WARNING, 4), (logging.ERROR, 3),
    (logging.CRITICAL, 2), (5, 7), (25, 6), (35, 4), (45, 3), (60, 2)])
def test_syslog_priority(level: int, priority: int) -> None:
    assert vlog.syslog_priority(level) == priority


# ---- the lines -----------------------------------------------------------------------------

def log_everything() -> None:
    log = logging.getLogger("vigil")
    log.debug("probing web")
    log.info("Link n2:eth0 dead.")
    log.warning("node n2: is dead")
    log.error("web: start failed")
    log.critical("poisoned")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("guard: failed")


def test_under_journald_every_line_has_its_priority_and_no_timestamp(
        stderr_file: TextIO, tmp_path: Path, root_logger: logging.Logger,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", stderr_file)
    monkeypatch.setenv("JOURNAL_STREAM", stream_of(stderr_file.fileno()))
    vlog.setup("n1", tmp_path / "vigil.log", debug=True)
    log_everything()
    stderr_file.seek(0)
    lines = stderr_file.read().splitlines()
    assert lines[:5] == ["<7>vigil[n1]: debug: probing web",
                         "<6>vigil[n1]: info: Link n2:eth0 dead.",
                         "<4>vigil[n1]: WARN: node n2: is dead",
                         "<3>vigil[n1]: ERROR: web: start failed",
                         "<2>vigil[n1]: CRIT: poisoned"]
    assert lines[5] == "<3>vigil[n1]: ERROR: guard: failed"
    traceback = lines[6:]
    assert traceback[0] == "<3>Traceback (most recent call last):"
    assert traceback[-1] == "<3>RuntimeError: boom"
    assert all(line.startswith("<3>") for line in traceback)  # journald splits on newlines
    assert not any(TIMESTAMP.search(line) for line in lines)

    # The file handler is as it was: a timestamp, no priority.
    file_lines = (tmp_path / "vigil.log").read_text().splitlines()
    assert TIMESTAMP.match(file_lines[1])
    assert file_lines[1].endswith(" vigil[n1]: info: Link n2:eth0 dead.")
    assert not any(line.startswith("<") for line in file_lines)


def test_outside_journald_stderr_keeps_its_timestamp(
        stderr_file: TextIO, root_logger: logging.Logger,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", stderr_file)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    vlog.setup("n1")
    logging.getLogger("vigil").info("Link n2:eth0 dead.")
    logging.getLogger("vigil").debug("not shown without debug")
    stderr_file.seek(0)
    lines = stderr_file.read().splitlines()
    assert len(lines) == 1
    assert TIMESTAMP.match(lines[0]) and lines[0].endswith(" vigil[n1]: info: Link n2:eth0 dead.")


def test_a_stderr_without_descriptor_is_not_journald(
        root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest's capture, or no stderr at all: setup() must not fail on fileno()."""
    import io
    fake = io.StringIO()
    monkeypatch.setattr(sys, "stderr", fake)
    monkeypatch.setenv("JOURNAL_STREAM", "1:1")
    vlog.setup("n1")
    logging.getLogger("vigil").warning("node n2: is dead")
    assert TIMESTAMP.match(fake.getvalue())
