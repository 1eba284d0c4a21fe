"""replica/pgdata.postmaster_alive: pg_ctl status's answer, read from postmaster.pid and
/proc (every look of the keeper, every few ms of a stop)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vigil.errors import AgentError
from vigil.replica.pgdata import postmaster_alive


def _pidfile(d: Path, first: str) -> None:
    (d / "postmaster.pid").write_text(f"{first}\n/var/lib/postgresql/15/main\n1700000000\n")


def test_a_live_process_runs_and_anything_else_does_not(tmp_path: Path) -> None:
    assert not postmaster_alive(tmp_path)  # no file
    assert not postmaster_alive(tmp_path / "missing")
    _pidfile(tmp_path, str(os.getpid()))
    assert postmaster_alive(tmp_path)
    _pidfile(tmp_path, str(-os.getpid()))  # a single-user backend's
    assert postmaster_alive(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    _pidfile(tmp_path, str(child.pid))  # gone (reaped)
    assert not postmaster_alive(tmp_path)
    for garbage in ("", "x1", "1", "0", "9" * 40, "\x00"):
        _pidfile(tmp_path, garbage)
        assert not postmaster_alive(tmp_path), garbage


def test_an_exited_unreaped_postmaster_still_counts(tmp_path: Path) -> None:
    """As for PostgreSQL's own lock-file check: a new postmaster refuses to start while the
    old one's pid exists at all, so a stop waits for it to be reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, still a zombie
        _pidfile(tmp_path, str(child.pid))
        assert postmaster_alive(tmp_path)
    finally:
        child.wait()
    assert not postmaster_alive(tmp_path)


def test_an_unreadable_file_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "postmaster.pid").mkdir()
    with pytest.raises(AgentError, match="postmaster.pid"):
        postmaster_alive(tmp_path)
