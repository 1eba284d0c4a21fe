"""LsbAgent, HeartbeatAgent and SystemdAgent against scripts written into tmp directories.

Each script appends its arguments to `calls` in its own directory and exits with the status
(and prints the output) the test leaves in files there, so a test can see what was run and
in which order.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from vigil.errors import AgentError
from vigil.model import HeartbeatResource, LsbResource, SystemdResource
from vigil.resources.heartbeat import HeartbeatAgent, parse_haresources_spec
from vigil.resources.lsb import LsbAgent
from vigil.resources.systemd import SystemdAgent, is_booted

# $0 ARGS... ACTION: log the arguments, print out.ACTION, exit with rc.ACTION (default 0)
SCRIPT = """#!/bin/sh
d=$(dirname "$0")
echo "$*" >> "$d/calls"
for action; do :; done
[ -f "$d/out.$action" ] && cat "$d/out.$action"
[ -f "$d/err.$action" ] && cat "$d/err.$action" >&2
exit $(cat "$d/rc.$action" 2>/dev/null || echo 0)
"""


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def write_script(directory: Path, name: str, text: str = SCRIPT, mode: int = 0o755) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    path.chmod(mode)
    return path


def calls(directory: Path) -> list[str]:
    path = directory / "calls"
    return path.read_text().splitlines() if path.exists() else []


def answer(directory: Path, action: str, rc: int, out: str = "", err: str = "") -> None:
    (directory / f"rc.{action}").write_text(str(rc))
    (directory / f"out.{action}").write_text(out)
    (directory / f"err.{action}").write_text(err)


# ---- LSB ---------------------------------------------------------------------------------------


def lsb(tmp_path: Path, script: str = "web") -> LsbAgent:
    return LsbAgent(LsbResource(script=script, directory=tmp_path, timeout=7.0))


def test_lsb_runs_script_with_action(tmp_path: Path) -> None:
    write_script(tmp_path, "web")
    agent = lsb(tmp_path)
    run(agent.start())
    run(agent.stop())
    assert run(agent.probe()) is True
    assert run(agent.monitor()) is True
    assert calls(tmp_path) == ["start", "stop", "status", "status"]
    assert agent.name == "lsb:web"
    assert agent.timeout == 7.0 and agent.timeout_for("stop") == 7.0
    assert run(agent.healthy()) is True


@pytest.mark.parametrize("action", ["start", "stop"])
def test_lsb_nonzero_start_or_stop_fails(tmp_path: Path, action: str) -> None:
    write_script(tmp_path, "web")
    answer(tmp_path, action, 1, err="first\nweb: cannot bind port 80\n")
    with pytest.raises(AgentError, match=rf"^lsb:web: {action} failed \(rc=1\): "
                                         r"web: cannot bind port 80$"):
        run(getattr(lsb(tmp_path), action)())


@pytest.mark.parametrize(
    ("rc", "probe", "monitor"),
    [
        (0, True, True),
        (3, False, False),
        (1, True, "dead but its pid file exists"),  # present: stop it before starting elsewhere
        (2, True, "dead but its lock file exists"),
        (4, "status unknown", "status unknown"),
        (150, "status unknown", "status unknown"),
    ],
)
def test_lsb_status_exit_codes(
    tmp_path: Path, rc: int, probe: bool | str, monitor: bool | str
) -> None:
    write_script(tmp_path, "web")
    answer(tmp_path, "status", rc)
    agent = lsb(tmp_path)
    for method, expected in (("probe", probe), ("monitor", monitor)):
        if isinstance(expected, bool):
            assert run(getattr(agent, method)()) is expected
        else:
            with pytest.raises(AgentError, match=rf"^lsb:web: {expected}"):
                run(getattr(agent, method)())


@pytest.mark.parametrize("name", ["../web", "a/web", "..", ".", "", "/etc/init.d/web"])
def test_lsb_refuses_names_that_are_not_plain(tmp_path: Path, name: str) -> None:
    with pytest.raises(AgentError, match="must be a plain file name"):
        lsb(tmp_path, name)


def test_lsb_missing_script(tmp_path: Path) -> None:
    """Not installed: it cannot have started anything, so probe False and stop succeeds,
    but start and monitor fail and this node cannot run it."""
    agent = lsb(tmp_path)
    missing = f"script {tmp_path / 'web'} does not exist"
    with pytest.raises(AgentError, match=f"^lsb:web: cannot start: {missing}$"):
        run(agent.start())
    with pytest.raises(AgentError, match=f"^lsb:web: cannot monitor: {missing}$"):
        run(agent.monitor())
    assert run(agent.probe()) is False
    run(agent.stop())
    assert run(agent.healthy()) is False


@pytest.mark.parametrize("kind", ["not executable", "directory"])
def test_lsb_script_that_cannot_run_fails_everything(tmp_path: Path, kind: str) -> None:
    if kind == "directory":
        (tmp_path / "web").mkdir()
    else:
        write_script(tmp_path, "web", mode=0o644)
    agent = lsb(tmp_path)
    for action in ("start", "stop", "probe", "monitor"):
        with pytest.raises(AgentError, match="is not an executable file$"):
            run(getattr(agent, action)())
    assert run(agent.healthy()) is False
    assert calls(tmp_path) == []


def test_lsb_script_that_cannot_be_executed(tmp_path: Path) -> None:
    write_script(tmp_path, "web", text="#!/nonexistent/interpreter\n")
    with pytest.raises(AgentError, match="^lsb:web: start: cannot run .*/web: No such file"):
        run(lsb(tmp_path).start())


# ---- Heartbeat ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("IPaddr::10.0.0.100/24/eth0", ("IPaddr", ("10.0.0.100/24/eth0",))),
        ("Filesystem::/dev/sdb5::/webdata::ext3", ("Filesystem", ("/dev/sdb5", "/webdata",
                                                                  "ext3"))),
        ("httpd", ("httpd", ())),
        (" apache::/etc/apache2/httpd.conf ", ("apache", ("/etc/apache2/httpd.conf",))),
    ],
)
def test_parse_haresources_spec(text: str, expected: tuple[str, tuple[str, ...]]) -> None:
    assert parse_haresources_spec(text) == expected


@pytest.mark.parametrize("text", ["", "::10.0.0.1", "IPaddr::", "Filesystem::a::::b"])
def test_parse_haresources_spec_refuses_empty_parts(text: str) -> None:
    with pytest.raises(ValueError):
        parse_haresources_spec(text)


def heartbeat(dirs: tuple[Path, ...], script: str = "IPaddr",
              args: tuple[str, ...] = ("10.0.0.100/24/eth0",)) -> HeartbeatAgent:
    return HeartbeatAgent(HeartbeatResource(script=script, args=args, directories=dirs))


def test_heartbeat_arguments_first_action_last(tmp_path: Path) -> None:
    write_script(tmp_path, "Filesystem")
    answer(tmp_path, "status", 0, out="running\n")
    agent = heartbeat((tmp_path,), "Filesystem", ("/dev/sdb5", "/webdata", "ext3"))
    run(agent.start())
    assert run(agent.monitor()) is True
    run(agent.stop())
    assert calls(tmp_path) == ["/dev/sdb5 /webdata ext3 start",
                               "/dev/sdb5 /webdata ext3 status",
                               "/dev/sdb5 /webdata ext3 stop"]
    assert agent.name == "heartbeat:Filesystem::/dev/sdb5::/webdata::ext3"


def test_heartbeat_looks_in_directories_in_order(tmp_path: Path) -> None:
    first, second = tmp_path / "resource.d", tmp_path / "init.d"
    write_script(second, "IPaddr")
    agent = heartbeat((first, second))
    run(agent.start())
    assert calls(second) == ["10.0.0.100/24/eth0 start"]
    write_script(first, "IPaddr")
    run(agent.start())
    assert calls(first) == ["10.0.0.100/24/eth0 start"]
    assert len(calls(second)) == 1


def test_heartbeat_does_not_skip_a_script_it_cannot_run(tmp_path: Path) -> None:
    first, second = tmp_path / "resource.d", tmp_path / "init.d"
    write_script(first, "IPaddr", mode=0o644)
    write_script(second, "IPaddr")
    with pytest.raises(AgentError, match=f"script {first}/IPaddr is not an executable file"):
        run(heartbeat((first, second)).start())
    assert calls(second) == []


def test_heartbeat_missing_script(tmp_path: Path) -> None:
    agent = heartbeat((tmp_path / "a", tmp_path / "b"))
    with pytest.raises(AgentError, match=f"cannot start: script IPaddr not found in "
                                         f"{tmp_path}/a, {tmp_path}/b$"):
        run(agent.start())
    assert run(agent.probe()) is False
    run(agent.stop())
    assert run(agent.healthy()) is False


def test_heartbeat_refuses_bad_names(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="must be a plain file name"):
        heartbeat((tmp_path,), "../../bin/sh")


@pytest.mark.parametrize(
    ("rc", "out", "expected"),
    [
        (0, "running\n", True),
        (0, "OK\n", True),
        (0, "IPaddr 10.0.0.100 is running\n", True),
        (0, "ok", True),
        (0, "stopped\n", False),  # exit 0 either way: the output decides
        (3, "", False),
        (3, "web is not running\n", False),
        (0, "web is not running\n", False),  # "not running" contains "running"
        (0, "", "status unclear \\(rc=0, said ''\\)"),
        (0, "broken\n", "status unclear \\(rc=0, said 'broken'\\)"),
        (1, "running\n", "status unclear \\(rc=1"),
    ],
)
def test_heartbeat_status(tmp_path: Path, rc: int, out: str, expected: bool | str) -> None:
    write_script(tmp_path, "IPaddr")
    answer(tmp_path, "status", rc, out=out)
    agent = heartbeat((tmp_path,))
    for method in ("probe", "monitor"):
        if isinstance(expected, bool):
            assert run(getattr(agent, method)()) is expected
        else:
            with pytest.raises(AgentError, match=expected):
                run(getattr(agent, method)())


# ---- systemd -----------------------------------------------------------------------------------


@pytest.mark.skipif(is_booted(), reason="this host runs systemd")
def test_systemd_not_booted_for_real() -> None:
    """This host's PID 1 is not systemd: every action says so, without running systemctl."""
    pid1 = Path("/proc/1/comm").read_text().strip()
    agent = SystemdAgent(SystemdResource(unit="web.service"))
    message = (f"systemd:web.service: systemd is not running on this host (PID 1 is {pid1}): "
               "systemd resources need it")
    for action in ("start", "stop", "probe", "monitor"):
        with pytest.raises(AgentError) as caught:
            run(getattr(agent, action)())
        assert str(caught.value) == message
    assert run(agent.healthy()) is False


FAKE_SYSTEMCTL = """#!/bin/sh
d=$(dirname "$0")
echo "$*" >> "$d/calls"
[ "$2" = "--" ] || { echo "expected -- before the unit" >&2; exit 64; }
unit=$3
state=$(cat "$d/state.$unit" 2>/dev/null || echo inactive)
case "$unit" in
  missing.service) [ "$1" = is-active ] && { echo inactive; exit 3; }
    echo "Failed to $1 $unit: Unit $unit not loaded." >&2; exit 5;;
  broken.service) echo "Job for $unit failed because the control process exited." >&2
    echo "See \\"systemctl status $unit\\" for details." >&2; exit 1;;
esac
case "$1" in
  start) echo active > "$d/state.$unit";;
  stop) echo inactive > "$d/state.$unit";;
  is-active) [ -n "$state" ] && echo "$state"; [ "$state" = active ] && exit 0; exit 3;;
esac
"""


@pytest.fixture
def fake_systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_script(tmp_path, "systemctl", FAKE_SYSTEMCTL)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    return tmp_path


def systemd(unit: str = "web.service", booted: bool = True) -> SystemdAgent:
    return SystemdAgent(SystemdResource(unit=unit, timeout=9.0), booted=lambda: booted)


def test_systemd_start_monitor_stop(fake_systemctl: Path) -> None:
    agent = systemd()
    assert run(agent.probe()) is False
    run(agent.start())
    assert run(agent.monitor()) is True
    run(agent.stop())
    run(agent.stop())
    assert run(agent.monitor()) is False
    assert calls(fake_systemctl) == [
        "is-active -- web.service", "start -- web.service", "is-active -- web.service",
        "stop -- web.service", "stop -- web.service", "is-active -- web.service"]
    assert (agent.name, agent.timeout, run(agent.healthy())) == ("systemd:web.service", 9.0,
                                                                True)


@pytest.mark.parametrize(
    ("state", "probe", "monitor"),
    [
        ("active", True, True),
        ("reloading", True, True),
        ("activating", True, True),  # its processes exist: present
        ("deactivating", True, True),
        ("inactive", False, False),
        ("failed", False, "unit failed"),  # systemd gave up on it: a failure, not a stop
        ("", "state unknown \\(rc=3, said ''\\)", "state unknown"),
        ("maintenance", "state unknown", "state unknown"),
    ],
)
def test_systemd_states(
    fake_systemctl: Path, state: str, probe: bool | str, monitor: bool | str
) -> None:
    (fake_systemctl / "state.web.service").write_text(state + "\n" if state else "")
    agent = systemd()
    for method, expected in (("probe", probe), ("monitor", monitor)):
        if isinstance(expected, bool):
            assert run(getattr(agent, method)()) is expected
        else:
            with pytest.raises(AgentError, match=f"^systemd:web.service: .*{expected}"):
                run(getattr(agent, method)())


def test_systemd_failed_start_names_systemctls_complaint(fake_systemctl: Path) -> None:
    with pytest.raises(AgentError, match=r"^systemd:broken.service: start failed \(rc=1\): "
                                         r"Job for broken.service failed"):
        run(systemd("broken.service").start())


def test_systemd_stop_of_unknown_unit_succeeds(fake_systemctl: Path) -> None:
    agent = systemd("missing.service")
    run(agent.stop())
    assert run(agent.probe()) is False
    with pytest.raises(AgentError, match="start failed \\(rc=5\\): .* not loaded"):
        run(agent.start())


def test_systemd_unit_never_read_as_an_option(fake_systemctl: Path) -> None:
    run(systemd("--force").start())
    assert calls(fake_systemctl) == ["start -- --force"]


def test_systemd_not_booted_runs_nothing(fake_systemctl: Path) -> None:
    agent = systemd(booted=False)
    with pytest.raises(AgentError, match="systemd is not running on this host"):
        run(agent.start())
    assert run(agent.healthy()) is False
    assert calls(fake_systemctl) == []


def test_systemd_systemctl_missing(tmp_path: Path) -> None:
    agent = SystemdAgent(SystemdResource(unit="web.service"),
                         systemctl=str(tmp_path / "nothing"), booted=lambda: True)
    with pytest.raises(AgentError, match="^systemd:web.service: start: cannot run "):
        run(agent.start())

