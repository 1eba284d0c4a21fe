"""sd_notify (daemon/sdnotify.py) against real AF_UNIX datagram sockets standing in for
systemd's: what each method sends, byte for byte; nothing when NOTIFY_SOCKET is unset; the
watchdog period; and no exception whatever happens to the socket."""

from __future__ import annotations

import fcntl
import logging
import os
import select
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from vigil.daemon.sdnotify import Notifier


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: AF_UNIX paths are limited to 107 bytes, which pytest's
    tmp_path can exceed with a long test name."""
    d = tempfile.mkdtemp(prefix="sdn")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def listener(address: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + address[1:] if address.startswith("@") else address)
    s.settimeout(2.0)
    return s


@pytest.fixture(params=["path", "abstract"])
def systemd(request: pytest.FixtureRequest, short_dir: Path) -> Iterator[tuple[str, socket.socket]]:
    """NOTIFY_SOCKET's value and the socket bound to it, in both of its forms."""
    if request.param == "path":
        address = str(short_dir / "notify")
    else:
        address = f"@vigil-test-{uuid.uuid4().hex}"
    s = listener(address)
    yield address, s
    s.close()


def received(s: socket.socket) -> str:
    return s.recv(65536).decode()


def nothing_pending(s: socket.socket) -> bool:
    readable, _, _ = select.select([s], [], [], 0)
    return not readable


def test_each_method_sends_exactly_its_assignments(systemd: tuple[str, socket.socket]) -> None:
    address, s = systemd
    n = Notifier.from_env({"NOTIFY_SOCKET": address})
    assert n.enabled
    n.ready("serving 2 groups")
    assert received(s) == f"READY=1\nSTATUS=serving 2 groups\nMAINPID={os.getpid()}"
    n.status("releasing web")
    assert received(s) == "STATUS=releasing web"
    n.stopping()
    assert received(s) == "STOPPING=1"
    n.watchdog()
    assert received(s) == "WATCHDOG=1"
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    n.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = received(s).split("\n")
    assert first == "RELOADING=1"
    key, value = second.split("=")
    assert key == "MONOTONIC_USEC" and before <= int(value) <= after
    assert nothing_pending(s)
    assert (n.sent, n.errors) == (5, 0)
    n.close()


def test_a_status_stays_on_one_line(systemd: tuple[str, socket.socket]) -> None:
    """A newline would start a new assignment: `STATUS=x\\nREADY=1` must not pass for ready."""
    address, s = systemd
    n = Notifier.from_env({"NOTIFY_SOCKET": address})
    n.status("x\nREADY=1")
    assert received(s) == "STATUS=x READY=1"
    n.close()


def test_the_socket_is_opened_once_nonblocking_and_cloexec(
        systemd: tuple[str, socket.socket]) -> None:
    address, s = systemd
    n = Notifier.from_env({"NOTIFY_SOCKET": address})
    assert n.sock is None  # nothing opened before the first message
    n.watchdog()
    sock = n.sock
    assert sock is not None
    for _ in range(3):
        n.watchdog()
    assert n.sock is sock
    fd = sock.fileno()
    assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK
    assert (sock.family, sock.type) == (socket.AF_UNIX, socket.SOCK_DGRAM)
    assert [received(s) for _ in range(4)] == ["WATCHDOG=1"] * 4
    n.close()
    assert n.sock is None


@pytest.mark.parametrize("environ", [{}, {"NOTIFY_SOCKET": ""}, {"NOTIFY_SOCKET": "relative"},
                                     {"WATCHDOG_USEC": "5000000"}])
def test_without_a_socket_every_method_is_a_no_op(environ: dict[str, str]) -> None:
    n = Notifier.from_env(environ)
    assert not n.enabled
    n.ready("up")
    n.status("x")
    n.stopping()
    n.reloading()
    n.watchdog()
    assert not n.notify("READY=1")
    assert n.watchdog_interval() is None
    assert (n.sock, n.sent, n.errors) == (None, 0, 0)


def test_from_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch,
                                                      short_dir: Path) -> None:
    address = str(short_dir / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    n = Notifier.from_env()
    assert n.enabled and n.watchdog_interval() == 2.0
    assert os.environ["NOTIFY_SOCKET"] == address  # left in place (see the module's docstring)


# ---- watchdog_interval ---------------------------------------------------------------------

SOCK = {"NOTIFY_SOCKET": "/run/systemd/notify"}  # never sent to: only parsed


@pytest.mark.parametrize(("usec", "pid", "expected"), [
    ("5000000", None, 2.5),
    ("5000000", "self", 2.5),
    ("1", None, 0.5e-6),
    ("30000000", "self", 15.0),
    ("5000000", "other", None),       # a child that inherited the environment
    ("5000000", "1", None),
    ("5000000", "garbage", None),
    ("5000000", "", None),
    ("0", None, None),                 # systemd's "no watchdog"
    ("-5000000", None, None),
    ("5s", None, None),
    ("5.0", None, None),
    ("", None, None),
    (" 5000000", None, None),
    ("5_000_000", None, None),         # int() would take it; systemd would not
    ("\u0665000000", None, None),      # an Arabic-Indic 5: int() would take that too
    ("18446744073709551616", None, None),  # 2**64
    ("9" * 5000, None, None),          # past int()'s digit limit: must not raise either
    (None, "self", None),
])
def test_watchdog_interval(usec: str | None, pid: str | None, expected: float | None) -> None:
    environ = dict(SOCK)
    if usec is not None:
        environ["WATCHDOG_USEC"] = usec
    if pid is not None:
        environ["WATCHDOG_PID"] = {"self": str(os.getpid()),
                                   "other": str(os.getpid() + 1)}.get(pid, pid)
    assert Notifier.from_env(environ).watchdog_interval() == expected


@settings(max_examples=200, deadline=None)
@given(usec=st.one_of(st.none(), st.text(), st.integers().map(str)),
       pid=st.one_of(st.none(), st.text(), st.integers().map(str)))
def test_watchdog_interval_never_raises(usec: str | None, pid: str | None) -> None:
    environ = dict(SOCK)
    if usec is not None:
        environ["WATCHDOG_USEC"] = usec
    if pid is not None:
        environ["WATCHDOG_PID"] = pid
    interval = Notifier.from_env(environ).watchdog_interval()
    assert interval is None or interval > 0


# ---- failures never raise -------------------------------------------------------------------

def test_a_removed_socket_never_raises_and_is_logged_once(
        short_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    address = str(short_dir / "notify")
    s = listener(address)
    n = Notifier.from_env({"NOTIFY_SOCKET": address})
    n.ready("up")
    assert received(s) == f"READY=1\nSTATUS=up\nMAINPID={os.getpid()}"
    s.close()
    os.unlink(address)  # systemd went away
    with caplog.at_level(logging.WARNING, logger="vigil.daemon.sdnotify"):
        for _ in range(5):
            n.watchdog()
        n.status("still here")
        n.stopping()
    assert (n.sent, n.errors) == (1, 7)
    warnings = [r for r in caplog.records if r.name == "vigil.daemon.sdnotify"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert address in warnings[0].getMessage()
    n.close()


def test_a_closed_socket_whose_file_remains_never_raises(short_dir: Path) -> None:
    address = str(short_dir / "notify")
    s = listener(address)
    s.close()  # the path exists, nobody listens: ECONNREFUSED
    n = Notifier.from_env({"NOTIFY_SOCKET": address})
    n.ready("up")
    n.watchdog()
    assert (n.sent, n.errors) == (0, 2)


def test_an_abstract_socket_nobody_binds_never_raises() -> None:
    n = Notifier.from_env({"NOTIFY_SOCKET": f"@vigil-test-{uuid.uuid4().hex}"})
    n.stopping()
    assert (n.sent, n.errors) == (0, 1)


def test_a_socket_that_comes_back_is_reached_again(short_dir: Path) -> None:
    """systemctl daemon-reexec: the same path, a new socket. sendto() finds it."""
    address = str(short_dir / "notify")
    listener(address).close()
    os.unlink(address)
    n = Notifier.from_env({"NOTIFY_SOCKET": address})
    n.watchdog()
    s = listener(address)
    n.watchdog()
    assert received(s) == "WATCHDOG=1"
    assert (n.sent, n.errors) == (1, 1)
    s.close()
    n.close()


def test_a_full_queue_drops_instead_of_blocking(short_dir: Path) -> None:
    """Nobody reads: the queue fills (net.unix.max_dgram_qlen) and sends fail at once."""
    address = str(short_dir / "notify")
    s = listener(address)
    n = Notifier.from_env({"NOTIFY_SOCKET": address})
    start = time.monotonic()
    for _ in range(2000):
        n.watchdog()
        if n.errors:
            break
    assert n.errors == 1 and n.sent > 0
    assert time.monotonic() - start < 1.0
    s.close()
    n.close()


def test_a_path_too_long_never_raises() -> None:
    n = Notifier.from_env({"NOTIFY_SOCKET": "/" + "x" * 200})
    n.ready("up")
    assert (n.sent, n.errors) == (0, 1)
