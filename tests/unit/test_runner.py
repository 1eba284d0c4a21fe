"""runner.run (spawn, capture, cancel, reap) and the ExecAgent built on it."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vigil.errors import AgentError
from vigil.model import ExecResource
from vigil.resources import cgroup, runner
from vigil.resources.exec import ExecAgent
from vigil.resources.procs import Scope
from vigil.resources.runner import Completed, run

SH = "/bin/sh"


def gone(pid: int) -> bool:
    """True once `pid` is reaped: a zombie still answers kill(pid, 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def wait_for_pid_file(path: Path) -> int:
    async with asyncio.timeout(5):
        while True:
            text = path.read_text() if path.exists() else ""
            if text.endswith("\n"):
                return int(text)
            await asyncio.sleep(0.01)


# ---- run --------------------------------------------------------------------------------------


def test_captures_rc_and_output() -> None:
    done = asyncio.run(run([SH, "-c", "echo out; echo err >&2; exit 3"]))
    assert isinstance(done, Completed)
    assert done.argv == (SH, "-c", "echo out; echo err >&2; exit 3")
    assert (done.rc, done.stdout, done.stderr) == (3, "out\n", "err\n")
    assert done.last_stderr_line() == "err"
    assert done.describe_rc() == "rc=3"
    assert 0 <= done.duration < 5


def test_stdin_is_dev_null_and_env_replaces() -> None:
    done = asyncio.run(run(["/bin/cat"]))  # would block on a terminal or pipe
    assert (done.rc, done.stdout) == (0, "")
    done = asyncio.run(run([SH, "-c", 'echo "$VIGIL_X:$HOME"'], env={"VIGIL_X": "1"}))
    assert done.stdout == "1:\n"


def test_own_session() -> None:
    done = asyncio.run(run([SH, "-c", "ps -o sid= -p $$; echo $$"]))
    sid, pid = done.stdout.split()
    assert sid == pid  # session leader, hence also its own process group


def test_output_keeps_the_tail() -> None:
    done = asyncio.run(run([SH, "-c", "head -c 10000 /dev/zero | tr '\\0' a; echo END"]))
    assert len(done.stdout) == runner.OUTPUT_LIMIT
    assert done.stdout.endswith("aEND\n")


def test_missing_program_names_the_path() -> None:
    with pytest.raises(AgentError, match="/nonexistent/vigil-prog"):
        asyncio.run(run(["/nonexistent/vigil-prog", "x"]))


def test_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    with pytest.raises(AgentError, match=str(script)):
        asyncio.run(run([str(script)]))


def test_empty_argv() -> None:
    with pytest.raises(AgentError):
        asyncio.run(run([]))


def test_a_daemon_left_behind_does_not_hold_us(tmp_path: Path) -> None:
    """The child exits while its own child keeps our stdout open: run returns at once."""
    done = asyncio.run(run([SH, "-c", "sleep 3 & echo $!; echo started"]))
    left = int(done.stdout.split()[0])
    try:
        assert done.rc == 0 and done.stdout.endswith("started\n")
        assert done.duration < 1.5
    finally:
        os.kill(left, 9)


def test_cancel_kills_and_reaps(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    async def main() -> tuple[int, float]:
        task = asyncio.get_running_loop().create_task(
            run([SH, "-c", f"echo $$ > {pid_file}; exec sleep 30"], grace=5)
        )
        pid = await wait_for_pid_file(pid_file)
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pid, time.monotonic() - t0

    pid, took = asyncio.run(main())
    assert gone(pid)
    assert took < 2  # sleep dies on SIGTERM: no need to wait for the grace


def test_caller_timeout_becomes_timeout_error(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    async def main() -> None:
        async with asyncio.timeout(0.5):
            await run([SH, "-c", f"echo $$ > {pid_file}; exec sleep 30"])

    with pytest.raises(TimeoutError):
        asyncio.run(main())
    assert gone(int(pid_file.read_text()))


def test_sigterm_ignored_gets_sigkill_after_grace(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    grace = 0.3

    async def main() -> tuple[int, float]:
        task = asyncio.get_running_loop().create_task(
            run([SH, "-c", f"trap '' TERM; echo $$ > {pid_file}; exec sleep 30"], grace=grace)
        )
        pid = await wait_for_pid_file(pid_file)
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pid, time.monotonic() - t0

    pid, took = asyncio.run(main())
    assert gone(pid)
    assert grace <= took < grace + 2


def test_second_cancel_during_grace_still_reaps(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    async def main() -> int:
        task = asyncio.get_running_loop().create_task(
            run([SH, "-c", f"trap '' TERM; echo $$ > {pid_file}; exec sleep 30"], grace=0.3)
        )
        pid = await wait_for_pid_file(pid_file)
        task.cancel()
        await asyncio.sleep(0.05)
        task.cancel()  # impatient caller
        with pytest.raises(asyncio.CancelledError):
            await task
        return pid

    assert gone(asyncio.run(main()))


def test_the_whole_process_group_is_terminated(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    async def main() -> None:
        async with asyncio.timeout(0.5):
            # the shell forks sleep and waits: SIGTERM to the shell alone would leave sleep
            await run([SH, "-c", f"sleep 30 & echo $! > {pid_file}; wait"])

    with pytest.raises(TimeoutError):
        asyncio.run(main())
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 3
    while not dead(grandchild) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dead(grandchild)


def dead(pid: int) -> bool:
    """Gone, or a zombie: an orphaned grandchild is init's to reap, whenever it gets to it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


# ---- ExecAgent --------------------------------------------------------------------------------


def exec_resource(tmp_path: Path, status: bool = True) -> ExecResource:
    flag = tmp_path / "running"
    return ExecResource(
        start=(SH, "-c", f"touch {flag}"),
        stop=(SH, "-c", f"rm -f {flag}"),
        status=(SH, "-c", f"test -e {flag}") if status else None,
    )


def test_exec_start_probe_stop(tmp_path: Path) -> None:
    agent = ExecAgent(exec_resource(tmp_path))
    assert agent.name == "exec sh"

    async def main() -> list[bool]:
        seen = [await agent.probe()]
        await agent.start()
        await agent.start()
        seen.append(await agent.probe())
        await agent.stop()
        await agent.stop()
        seen.append(await agent.probe())
        return seen

    assert asyncio.run(main()) == [False, True, False]


def test_exec_probe_without_status_remembers_last_start(tmp_path: Path) -> None:
    agent = ExecAgent(exec_resource(tmp_path, status=False))

    async def main() -> list[bool]:
        seen = [await agent.probe()]
        await agent.start()
        seen.append(await agent.probe())
        await agent.stop()
        seen.append(await agent.probe())
        return seen

    assert asyncio.run(main()) == [False, True, False]


def test_exec_failure_carries_rc_and_stderr(tmp_path: Path) -> None:
    agent = ExecAgent(
        ExecResource(start=(SH, "-c", "echo noise >&2; echo 'port 80 in use' >&2; exit 7"),
                     stop=("/bin/true",))
    )
    with pytest.raises(AgentError) as info:
        asyncio.run(agent.start())
    message = str(info.value)
    assert message.startswith("exec sh: ")
    assert "rc=7" in message and message.endswith("port 80 in use")
    assert asyncio.run(agent.probe()) is False


def test_exec_missing_program(tmp_path: Path) -> None:
    agent = ExecAgent(ExecResource(start=("/nonexistent/svc", "start"), stop=("/bin/true",),
                                   status=("/nonexistent/svc", "status")))
    with pytest.raises(AgentError, match=r"^exec svc: start: .*/nonexistent/svc"):
        asyncio.run(agent.start())
    with pytest.raises(AgentError, match="/nonexistent/svc"):
        asyncio.run(agent.probe())


def test_exec_killed_by_signal(tmp_path: Path) -> None:
    agent = ExecAgent(ExecResource(start=(SH, "-c", "kill -9 $$"), stop=("/bin/true",)))
    with pytest.raises(AgentError, match="killed by SIGKILL"):
        asyncio.run(agent.start())


# ---- run with a scope (procs.Scope: the resource's cgroup, or its mark) ----------------------


@pytest.fixture(params=["cgroup", "fallback"])
def scope(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Scope]:
    cgroup.forget()
    if request.param == "fallback":
        monkeypatch.setenv(cgroup.NO_CGROUP_ENV, "1")
    elif cgroup.hierarchy() is None:
        pytest.skip("no cgroup v2 hierarchy holds this process (or not root)")
    s = Scope("exec unit", f"unit-{os.getpid()}")
    yield s
    h = cgroup.hierarchy()
    if h is not None:
        assert not h.leaf(s.name).exists(), "an empty cgroup was left behind"
    cgroup.forget()


def test_with_a_scope_rc_output_and_argv_are_the_program_s(scope: Scope) -> None:
    done = asyncio.run(run([SH, "-c", 'echo "$VIGIL_RESOURCE"; cat /proc/self/cgroup; exit 3'],
                           scope=scope))
    assert done.argv == (SH, "-c", 'echo "$VIGIL_RESOURCE"; cat /proc/self/cgroup; exit 3')
    assert done.rc == 3 and done.stderr == ""
    mark, *cgroups = done.stdout.splitlines()
    assert mark == scope.mark
    h = cgroup.hierarchy()
    if h is not None:
        assert f"0::{h.relative(h.leaf(scope.name))}" in cgroups


def test_with_a_scope_the_environment_still_replaces(scope: Scope) -> None:
    done = asyncio.run(run([SH, "-c", 'echo "$VIGIL_X:$HOME"'], env={"VIGIL_X": "1"},
                           scope=scope))
    assert done.stdout == "1:\n"


@pytest.mark.parametrize("case", ["missing", "not executable", "no interpreter", "on PATH"])
def test_with_a_scope_a_program_that_cannot_run_fails_as_without(
        scope: Scope, tmp_path: Path, case: str) -> None:
    prog = tmp_path / "prog"
    if case == "not executable":
        prog.write_text("#!/bin/sh\n")
        prog.chmod(0o644)
    elif case == "no interpreter":
        prog.write_text("#!/nonexistent/interpreter\n")
        prog.chmod(0o755)
    argv = ["vigil-no-such-prog"] if case == "on PATH" else [str(prog)]
    with pytest.raises(AgentError) as without:
        asyncio.run(run(argv))
    with pytest.raises(AgentError) as within:
        asyncio.run(run(argv, scope=scope))
    assert str(within.value) == str(without.value)
    assert type(within.value.__cause__) is type(without.value.__cause__)


def test_with_a_scope_a_program_found_on_path_runs(scope: Scope) -> None:
    done = asyncio.run(run(["true"], env={"PATH": "/usr/bin:/bin"}, scope=scope))
    assert done.rc == 0


def test_with_a_scope_cancel_still_kills_and_reaps(scope: Scope, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    async def main() -> None:
        async with asyncio.timeout(0.5):
            await run([SH, "-c", f"echo $$ > {pid_file}; exec sleep 30"], scope=scope)

    with pytest.raises(TimeoutError):
        asyncio.run(main())
    assert gone(int(pid_file.read_text()))


def test_with_a_scope_a_cgroup_gone_meanwhile_does_not_fail_the_action(
        scope: Scope, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Removed between its making and the child's entering it (by the daemon's guard, say):
    the program runs outside it, and its stderr says so, but a stop does not fail over it."""
    h = cgroup.hierarchy()
    if h is None:
        pytest.skip("cgroups only")
    monkeypatch.setattr(cgroup, "ensure", lambda h, name: tmp_path / "gone" / "cgroup.procs")
    done = asyncio.run(run([SH, "-c", "echo ran"], scope=scope))
    assert (done.rc, done.stdout) == (0, "ran\n")
    assert f"vigil-cgroup: running outside {tmp_path}/gone/cgroup.procs" in done.stderr
