"""The CLI on a control socket it may not use (issue 12, part 5.5): not "no daemon" (exit 4)
but what was denied, and to whom: exit 1, the socket or its directory named, "run as root".

The socket here is a plain listening one (no daemon needed: the refusal comes before any
request). The client is a child forked from the test that drops to nobody, as root is never
refused by file modes."""

from __future__ import annotations

import io
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vigil.cli.compat import cl_status
from vigil.cli.main import cli

NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to nobody")


@pytest.fixture
def listening() -> Iterator[Path]:
    """A socket in a short-named directory of its own (AF_UNIX paths are short) that nobody
    may traverse; the test opens the directory when it means to."""
    d = Path(tempfile.mkdtemp(prefix="vigil-sock-"))
    closed = [str(p) for p in d.parents if os.stat(p).st_mode & 0o001 == 0]
    if closed:
        shutil.rmtree(d)
        pytest.fail(f"nobody must be able to reach {d} for this test, but cannot enter "
                    f"{', '.join(closed)}: run it with a TMPDIR others may search")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(str(d / "vigil.sock"))
        s.listen()
        os.chmod(d / "vigil.sock", 0o600)  # as the daemon makes it
        yield d / "vigil.sock"
    finally:
        s.close()
        shutil.rmtree(d)


def as_nobody(run: Callable[[], int]) -> tuple[int, str]:
    """Run `run` in a child that is nobody; its exit status and what it wrote to stderr."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            sys.stderr = io.TextIOWrapper(os.fdopen(w, "wb"), write_through=True)
            code = run()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 98
        except BaseException as e:
            print(f"unexpected {type(e).__name__}: {e}", file=sys.stderr)
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        said = f.read().decode()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), said


def vigil_status(sock: Path) -> Callable[[], int]:
    def run() -> int:
        cli.main(["status", "--socket", str(sock)], standalone_mode=False)
        return 0
    return run


def test_a_socket_only_root_may_use_names_itself_and_exits_1(listening: Path) -> None:
    os.chmod(listening.parent, 0o755)  # only the socket's own mode stands in between
    code, said = as_nobody(vigil_status(listening))
    assert code == 1, (code, said)
    assert said == (f"vigil: permission denied on the control socket {listening} (mode 0600, "
                    f"owner root): run as root\n"), said


def test_a_directory_nobody_may_enter_is_named(listening: Path) -> None:
    code, said = as_nobody(vigil_status(listening))  # the directory is mkdtemp's 0700
    assert code == 1, (code, said)
    assert said == (f"vigil: permission denied on the control socket {listening}: its "
                    f"directory {listening.parent} is closed to this user (mode 0700, owner "
                    f"root): run as root\n"), said


def test_cl_status_does_not_call_it_stopped(listening: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    os.chmod(listening.parent, 0o755)
    monkeypatch.setenv("VIGIL_SOCKET", str(listening))
    code, said = as_nobody(lambda: cl_status(["hbstatus"]))
    assert code == 13, (code, said)  # Heartbeat's "other error", not 1 "stopped"
    assert "permission denied" in said and "run as root" in said, said
