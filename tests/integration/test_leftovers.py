"""Nothing unsupervised, for processes too (issue 12): what a resource's programs leave running
is killed after its successful stop, with cgroup v2 and without (resources/procs.py).

Real processes, run as root: an exec resource whose start leaves a daemon (double fork and
setsid()), one whose child ignores SIGTERM, a failed stop that must kill nothing, a fresh
agent in another process (what the guard is) that must find what the first one started, a
probe after a "crash", and in a two-node lab cluster the standby and failback that left
two copies on one node, and a kill -9 of the daemon whose guard must stop the leftovers
too. Each test that can runs twice: with cgroups (skipped where the host has no cgroup v2)
and forced onto the fallback (VIGIL_TEST_NO_CGROUP=1, the test-only switch). The lab
cluster's daemons run under `ip netns exec`, which remounts /sys without cgroups: they use
the fallback.

The programs are symlinks to sleep with names of their own, so that what the log says was
killed ("comm=straydaemon") can be checked. Every pid a program reports is killed at the
end of its test whatever happened, and every cgroup a test's resources had is removed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vigil.errors import AgentError
from vigil.model import ExecResource
from vigil.resources.exec import ExecAgent

pytestmark = pytest.mark.integration

SH = "/bin/sh"
SLEEP = "/bin/sleep"


# ---- helpers ----------------------------------------------------------------------------------


def dead(pid: int) -> bool:
    """Gone, or a zombie (an orphan is init's to reap, whenever it gets to it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def wait_pids(path: Path, count: int = 1, timeout: float = 5.0) -> list[int]:
    """The pids `count` programs wrote into `path`, one a line."""
    end = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return [int(x.split()[-1]) for x in lines[:count]]
        if time.monotonic() > end:
            raise TimeoutError(f"{path}: {lines}")
        time.sleep(0.01)


def wait_dead(pids: list[int], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while not all(dead(p) for p in pids):
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


class Box:
    """A test's programs: named symlinks to sleep, pid files, and what must go at the end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.resources: list[ExecResource] = []

    def program(self, name: str) -> Path:
        link = self.tmp / name
        if not link.exists():
            link.symlink_to(SLEEP)
        return link

    def pidfile(self, name: str) -> Path:
        return self.tmp / f"{name}.pid"

    def daemonizing(self, status: tuple[str, ...] | None = None,
                    stop: tuple[str, ...] = ("/bin/true",)) -> ExecResource:
        """A start that leaves `straydaemon` behind: a subshell forks it and exits (double
        fork), and it calls setsid() (a session of its own); stdio detached."""
        prog, pids = self.program("straydaemon"), self.pidfile("straydaemon")
        start = (SH, "-c", f"(setsid {SH} -c 'echo $$ >> {pids}; exec {prog} 300' "
                           f"</dev/null >/dev/null 2>&1 &)")
        return self.add(ExecResource(start=start, stop=stop, status=status))

    def stubborn(self) -> ExecResource:
        """A start whose child ignores SIGTERM (an ignored signal stays ignored across exec)."""
        prog, pids = self.program("stubborn"), self.pidfile("stubborn")
        start = (SH, "-c", f"({SH} -c \"trap '' TERM; echo \\$\\$ >> {pids}; exec {prog} 300\""
                           f" </dev/null >/dev/null 2>&1 &)")
        return self.add(ExecResource(start=start, stop=("/bin/true",)))

    def add(self, r: ExecResource) -> ExecResource:
        self.resources.append(r)
        return r

    def cleanup(self) -> None:
        for f in self.tmp.glob("*.pid"):
            for line in f.read_text().split():
                try:
                    os.kill(int(line), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        try:
            from vigil.resources import cgroup, procs
        except ImportError:  # the code before issue 12 made no cgroups
            return
        cgroup.forget()
        os.environ.pop(cgroup.NO_CGROUP_ENV, None)
        h = cgroup.hierarchy()
        if h is None:
            return
        for r in self.resources:
            leaf = h.leaf(procs.scope_name(r))
            for pid in cgroup.pids(leaf):
                os.kill(pid, signal.SIGKILL)
            end = time.monotonic() + 5
            while leaf.exists() and not cgroup.remove(leaf, tree=True) and time.monotonic() < end:
                time.sleep(0.01)
            assert not leaf.exists(), f"{leaf} is left behind"
        try:
            os.rmdir(h.own / h.base)
        except OSError:
            pass


def has_cgroups() -> bool:
    try:
        from vigil.resources import cgroup
    except ImportError:
        return True  # the old code: run the test, to see it fail
    cgroup.forget()
    return cgroup.hierarchy() is not None


@pytest.fixture(params=["cgroup", "fallback"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "cgroup":
        if not has_cgroups():
            pytest.skip("no cgroup v2 hierarchy holds this process")
        monkeypatch.delenv("VIGIL_TEST_NO_CGROUP", raising=False)
    else:
        monkeypatch.setenv("VIGIL_TEST_NO_CGROUP", "1")
    try:
        from vigil.resources import cgroup
        cgroup.forget()
    except ImportError:
        pass
    yield request.param


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    b = Box(tmp_path)
    try:
        yield b
    finally:
        b.cleanup()


def agent_for(r: ExecResource, grace: float = 0.5) -> ExecAgent:
    agent = ExecAgent(r)
    procs = getattr(agent, "procs", None)  # None before issue 12
    if procs is not None:
        procs.grace = grace
    return agent


def killed_lines(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


# ---- one agent --------------------------------------------------------------------------------


def test_a_daemonised_grandchild_is_killed_after_the_stop(
        mode: str, box: Box, caplog: pytest.LogCaptureFixture) -> None:
    agent = agent_for(box.daemonizing())

    async def main() -> int:
        await agent.start()
        [pid] = wait_pids(box.pidfile("straydaemon"))
        assert not dead(pid)
        assert os.getsid(pid) == pid  # it left the start's session: setsid() did happen
        await agent.stop()
        return pid

    caplog.set_level(logging.INFO)
    pid = asyncio.run(main())
    assert dead(pid), "the daemon the start left is still running after a successful stop"
    log = killed_lines(caplog)
    assert f"pid={pid} comm=straydaemon" in log
    assert "stop left 1 process" in log and "with SIGKILL" not in log


def test_a_child_that_ignores_sigterm_gets_sigkill_after_the_grace(
        mode: str, box: Box, caplog: pytest.LogCaptureFixture) -> None:
    agent = agent_for(box.stubborn(), grace=0.4)

    async def main() -> tuple[int, float]:
        await agent.start()
        [pid] = wait_pids(box.pidfile("stubborn"))
        os.kill(pid, signal.SIGTERM)  # it really ignores it
        time.sleep(0.1)
        assert not dead(pid)
        t0 = time.monotonic()
        await agent.stop()
        return pid, time.monotonic() - t0

    caplog.set_level(logging.INFO)
    pid, took = asyncio.run(main())
    assert dead(pid), "the child that ignores SIGTERM is still running after the stop"
    assert 0.4 <= took < 3
    log = killed_lines(caplog)
    assert f"killing pid={pid} comm=stubborn with SIGKILL after grace=0.4s" in log


def test_a_failed_stop_kills_nothing_and_the_strays_are_reported(
        mode: str, box: Box, caplog: pytest.LogCaptureFixture) -> None:
    fixed = box.tmp / "fixed"
    agent = agent_for(box.daemonizing(
        stop=(SH, "-c", f"test -e {fixed} || {{ echo busy >&2; exit 1; }}")))

    async def main() -> int:
        await agent.start()
        [pid] = wait_pids(box.pidfile("straydaemon"))
        with pytest.raises(AgentError, match="stop failed"):
            await agent.stop()
        time.sleep(0.2)
        assert not dead(pid), "a failed stop must leave the resource's processes alone"
        strays = await agent.processes()
        assert [(p.pid, p.comm) for p in strays] == [(pid, "straydaemon")]
        from vigil.resources import procs  # the stateless form, for status
        assert [p.pid for p in procs.of_resource(agent.resource)] == [pid]
        fixed.touch()  # the operator fixed what made the stop fail: now it kills them
        await agent.stop()
        return pid

    caplog.set_level(logging.INFO)
    pid = asyncio.run(main())
    assert dead(pid)
    assert f"pid={pid} comm=straydaemon" in killed_lines(caplog)


def test_a_fresh_agent_in_another_process_kills_what_the_first_started(
        mode: str, box: Box, caplog: pytest.LogCaptureFixture) -> None:
    """What the guard does: build the agent anew from the configuration (in another process,
    which inherited our cgroup and environment) and call stop()."""
    r = box.daemonizing()
    first = agent_for(r)

    asyncio.run(first.start())
    [pid] = wait_pids(box.pidfile("straydaemon"))
    code = ("import asyncio, logging, pickle, sys\n"
            "from vigil.resources.exec import ExecAgent\n"
            "logging.basicConfig(level=logging.INFO, stream=sys.stderr)\n"
            "agent = ExecAgent(pickle.load(sys.stdin.buffer))\n"
            "asyncio.run(agent.stop())\n")
    done = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(r),
                          capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr.decode()
    assert wait_dead([pid], 2), "the second agent's stop did not find the first's daemon"
    assert f"pid={pid} comm=straydaemon" in done.stderr.decode()


def test_a_probe_after_a_crash_reports_the_leftovers_and_a_stop_kills_them(
        mode: str, box: Box, caplog: pytest.LogCaptureFixture) -> None:
    """The daemon died; a new one probes: the status command says stopped, but the
    resource's daemon still runs. Present, until stopped."""
    r = box.daemonizing(status=("/bin/false",))
    asyncio.run(agent_for(r).start())
    [pid] = wait_pids(box.pidfile("straydaemon"))
    after_crash = agent_for(r)

    async def main() -> tuple[bool, bool]:
        present = await after_crash.probe()
        await after_crash.stop()
        return present, await after_crash.probe()

    caplog.set_level(logging.INFO)
    before, after = asyncio.run(main())
    assert before is True, "a probe must report what a crash left behind"
    assert f"pid={pid} comm=straydaemon" in killed_lines(caplog)
    assert dead(pid) and after is False


def test_a_cancelled_monitor_leaves_the_service_alone(mode: str, box: Box) -> None:
    """A cancel kills the action's own process group, not the resource's processes."""
    r = box.daemonizing(status=(SH, "-c", "exec sleep 30"))
    agent = agent_for(r)

    async def main() -> int:
        await agent.start()
        [pid] = wait_pids(box.pidfile("straydaemon"))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await agent.monitor()
        assert not dead(pid), "a cancelled monitor killed the service"
        await agent.stop()
        return pid

    assert dead(asyncio.run(main()))


LEAKY = """#!/bin/sh
# An agent whose start leaves a daemon and whose stop forgets it: OCF, LSB and resource.d.
state={state}
for action; do :; done  # the last argument (resource.d scripts take arguments first)
case "$action" in
    meta-data) echo '<?xml version="1.0"?><resource-agent name="leaky" version="1">'
               echo '<actions><action name="start" timeout="20s"/><action name="stop"'
               echo ' timeout="20s"/><action name="monitor" timeout="20s"/></actions>'
               echo '</resource-agent>' ;;
    start) (setsid {sh} -c 'echo $$ >> {pids}; exec {prog} 300' </dev/null >/dev/null 2>&1 &)
           touch "$state" ;;
    stop) rm -f "$state" ;;
    status) if test -e "$state"; then echo running; else echo stopped; exit 3; fi ;;
    monitor) test -e "$state" || exit 7 ;;
    *) exit 3 ;;
esac
"""


@pytest.mark.parametrize("kind", ["ocf", "lsb", "heartbeat"])
def test_every_process_running_agent_kills_what_its_stop_left(
        mode: str, box: Box, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    from vigil.model import HeartbeatResource, LsbResource, OcfResource
    from vigil.resources import build
    from vigil.resources.ocf import OcfAgent, clear_meta_data_cache
    prog, pids = box.program("straydaemon"), box.pidfile("straydaemon")
    script = box.tmp / "resource.d" / "test" / "leaky"
    script.parent.mkdir(parents=True)
    script.write_text(LEAKY.format(state=box.tmp / "state", sh=SH, pids=pids, prog=prog))
    script.chmod(0o755)
    r: OcfResource | LsbResource | HeartbeatResource
    if kind == "ocf":
        clear_meta_data_cache()
        r = OcfResource("test:leaky", "leaky1", monitor=None)
        agent = OcfAgent(r, ocf_root=box.tmp)
    elif kind == "lsb":
        r = LsbResource("leaky", directory=script.parent, monitor=None)
        agent = build(r, None)  # type: ignore[arg-type]  # only addresses need the host
    else:
        r = HeartbeatResource("leaky", ("arg1",), directories=(script.parent,), monitor=None)
        agent = build(r, None)  # type: ignore[arg-type]
    box.resources.append(r)  # type: ignore[arg-type]  # for the cgroup clean-up
    if getattr(agent, "procs", None) is not None:
        agent.procs.grace = 0.5  # type: ignore[union-attr]

    async def main() -> tuple[int, bool, bool]:
        await agent.start()
        [pid] = wait_pids(pids)
        running = await agent.probe()
        await agent.stop()
        return pid, running, await agent.probe()

    caplog.set_level(logging.INFO)
    pid, before, after = asyncio.run(main())
    assert (before, after) == (True, False)
    assert dead(pid), f"the {kind} agent's stop left its daemon running"
    assert f"pid={pid} comm=straydaemon" in killed_lines(caplog)


def test_a_monitor_names_what_a_dead_service_left(
        mode: str, box: Box, caplog: pytest.LogCaptureFixture) -> None:
    flag = box.tmp / "up"
    r = box.daemonizing(status=("/usr/bin/test", "-e", str(flag)))
    r = box.add(ExecResource(start=(SH, "-c", f"touch {flag}; {r.start[2]}"), stop=r.stop,
                             status=r.status))
    agent = agent_for(r)

    async def main() -> tuple[int, bool, bool]:
        await agent.start()
        [pid] = wait_pids(box.pidfile("straydaemon"))
        up = await agent.monitor()
        flag.unlink()  # its status now says stopped; its daemon still runs
        return pid, up, await agent.monitor()

    caplog.set_level(logging.INFO)
    pid, up, later = asyncio.run(main())
    assert (up, later) == (True, False)
    assert f"monitor: stopped, but 1 of its processes still run (pid={pid} " \
           f"comm=straydaemon)" in killed_lines(caplog)
    asyncio.run(agent.stop())
    assert dead(pid)


# ---- cgroups ----------------------------------------------------------------------------------


def test_the_child_is_in_the_cgroup_before_it_runs_and_the_cgroup_goes_with_the_stop(
        box: Box, mode: str) -> None:
    if mode != "cgroup":
        pytest.skip("cgroups only")
    from vigil.resources import cgroup, procs
    seen = box.tmp / "seen"
    # The program's first act is a fork whose child calls setsid(): a move after the spawn
    # would race with it. Both must say the resource's cgroup.
    r = box.add(ExecResource(
        start=(SH, "-c", f"setsid {SH} -c 'cat /proc/self/cgroup >> {seen}' & "
                         f"cat /proc/self/cgroup >> {seen}; wait"),
        stop=("/bin/true",)))
    agent = agent_for(r)
    h = cgroup.hierarchy()
    assert h is not None
    leaf = h.leaf(procs.scope_name(r))
    asyncio.run(agent.start())
    want = f"0::{h.relative(leaf)}"
    lines = [x for x in seen.read_text().splitlines() if x.startswith("0::")]
    assert lines == [want, want]
    assert not leaf.exists(), "an action that left nothing running leaves no empty cgroup"

    daemon = agent_for(box.daemonizing())
    leaf = h.leaf(procs.scope_name(daemon.resource))
    asyncio.run(daemon.start())
    [pid] = wait_pids(box.pidfile("straydaemon"))
    assert cgroup.pids(leaf) == [pid]
    asyncio.run(daemon.stop())
    assert dead(pid) and not leaf.exists()


def test_a_cgroup_the_program_made_inside_its_own_is_emptied_and_removed(
        box: Box, mode: str, caplog: pytest.LogCaptureFixture) -> None:
    """A program may manage cgroups below the one it runs in (a container runtime does):
    what runs there is the resource's too."""
    if mode != "cgroup":
        pytest.skip("cgroups only")
    from vigil.resources import cgroup, procs
    h = cgroup.hierarchy()
    assert h is not None
    prog, pids = box.program("inner"), box.pidfile("inner")
    r = box.add(ExecResource(
        start=(SH, "-c", f'cg="{h.mount}$(sed -n "s/^0:://p" /proc/self/cgroup)"; '
                         f'mkdir "$cg/inner" && '
                         f"(setsid {SH} -c \"echo \\$\\$ > $cg/inner/cgroup.procs; "
                         f"echo \\$\\$ >> {pids}; exec {prog} 300\" "
                         f"</dev/null >/dev/null 2>&1 &)"),
        stop=("/bin/true",)))
    agent = agent_for(r)
    leaf = h.leaf(procs.scope_name(r))
    asyncio.run(agent.start())
    [pid] = wait_pids(pids)
    assert cgroup.parse_own(Path(f"/proc/{pid}/cgroup").read_text()) == \
        h.relative(leaf / "inner")
    caplog.set_level(logging.INFO)
    asyncio.run(agent.stop())
    assert dead(pid) and not leaf.exists()
    assert f"pid={pid} comm=inner" in killed_lines(caplog)


def test_without_cgroup_kill_each_process_gets_sigkill(
        box: Box, mode: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Kernels before 5.14 have no cgroup.kill: SIGKILL goes to each process listed."""
    if mode != "cgroup":
        pytest.skip("cgroups only")
    from vigil.resources import cgroup
    monkeypatch.setattr(cgroup, "kill", lambda leaf: False)
    agent = agent_for(box.stubborn(), grace=0.2)
    asyncio.run(agent.start())
    [pid] = wait_pids(box.pidfile("stubborn"))
    caplog.set_level(logging.INFO)
    asyncio.run(agent.stop())
    assert dead(pid)
    assert f"killing pid={pid} comm=stubborn with SIGKILL" in killed_lines(caplog)


def test_a_refused_cgroup_falls_back_and_says_so_once(
        box: Box, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """No delegation (EACCES on mkdir): each action runs anyway, marked, and the stop still
    kills what the start left. The refusal is logged once, not per action."""
    if not has_cgroups():
        pytest.skip("no cgroup v2 hierarchy holds this process")
    import errno
    from vigil.resources import cgroup

    def refused(h: cgroup.Hierarchy, name: str) -> Path:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(h.leaf(name)))

    monkeypatch.setattr(cgroup, "ensure", refused)
    cgroup.forget()
    first, second = agent_for(box.daemonizing()), agent_for(box.stubborn(), grace=0.2)
    caplog.set_level(logging.INFO)

    async def main() -> list[int]:
        await first.start()
        await second.start()
        pids = wait_pids(box.pidfile("straydaemon")) + wait_pids(box.pidfile("stubborn"))
        await first.stop()
        await second.stop()
        return pids

    pids = asyncio.run(main())
    assert all(dead(p) for p in pids)
    refusals = [r for r in caplog.records if "cgroups refused" in r.getMessage()]
    assert len(refusals) == 1 and "Permission denied" in refusals[0].getMessage()
    cgroup.forget()


def test_two_exec_resources_named_alike_get_two_cgroups(box: Box) -> None:
    from vigil.resources import procs
    a = ExecResource(start=(SH, "-c", "exec food"), stop=("/bin/true",))
    b = ExecResource(start=(SH, "-c", "exec bard"), stop=("/bin/true",))
    assert a.name == b.name == "exec sh"
    assert procs.scope_name(a) != procs.scope_name(b)
    # the same configuration, in another process, names the same cgroup (the guard's case)
    code = ("import pickle, sys\nfrom vigil.resources.procs import scope_name\n"
            "print(scope_name(pickle.load(sys.stdin.buffer)))")
    other = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(a),
                           capture_output=True, timeout=30, env={**os.environ,
                                                                 "PYTHONHASHSEED": "7"})
    assert other.stdout.decode().strip() == procs.scope_name(a)


def test_two_lab_nodes_on_one_host_never_share_a_scope(box: Box) -> None:
    """Lab nodes share the host's cgroups and process table: each network namespace gets
    its own base, or one node's stop would kill the other's copy."""
    code = "from vigil.resources import cgroup; print(cgroup.base_name())"
    ns = f"vgcg{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        inside = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code],
                                capture_output=True, text=True, timeout=30)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True)
    here = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30)
    assert inside.returncode == 0 and here.returncode == 0, inside.stderr + here.stderr
    assert inside.stdout.strip() != here.stdout.strip()
    assert inside.stdout.strip().startswith("vigil-net")


# ---- the fallback -----------------------------------------------------------------------------


def test_fallback_the_session_catches_a_child_that_dropped_the_mark(
        box: Box, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """`env -i` drops the environment mark, but the child stays in the start's session:
    the agent that ran the start remembers the session. (A fresh agent, as the guard is,
    knows the mark alone: the documented limit.)"""
    monkeypatch.setenv("VIGIL_TEST_NO_CGROUP", "1")
    from vigil.resources import cgroup, procs
    cgroup.forget()
    prog, pids = box.program("nomark"), box.pidfile("nomark")
    r = box.add(ExecResource(
        start=(SH, "-c", f"(env -i {SH} -c 'echo $$ >> {pids}; exec {prog} 300' "
                         f"</dev/null >/dev/null 2>&1 &)"),
        stop=("/bin/true",)))
    agent = agent_for(r)

    async def main() -> int:
        await agent.start()
        [pid] = wait_pids(pids)
        assert b"VIGIL_RESOURCE" not in Path(f"/proc/{pid}/environ").read_bytes()
        assert procs.of_resource(r) == ()  # what a fresh agent (the guard) would see
        assert [p.pid for p in await agent.processes()] == [pid]
        await agent.stop()
        return pid

    caplog.set_level(logging.INFO)
    pid = asyncio.run(main())
    assert dead(pid)
    assert f"pid={pid} comm=nomark" in killed_lines(caplog)


def test_fallback_a_reused_session_number_is_not_ours(
        box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    """A remembered session whose members all died may have its number handed to a
    stranger that leads a session of its own: neither it nor its session is ours."""
    monkeypatch.setenv("VIGIL_TEST_NO_CGROUP", "1")
    from vigil.resources import cgroup, procs
    cgroup.forget()
    prog, pids = box.program("stranger"), box.pidfile("stranger")
    leader = subprocess.Popen([SH, "-c", f"{prog} 300 & echo $! >> {pids}; wait"],
                              start_new_session=True)
    try:
        [member] = wait_pids(pids)
        scope = procs.Scope("exec test", "test-reuse")
        scope._sessions.add(leader.pid)  # as if our leader had had that pid
        assert scope.find_now() == ()
        assert not scope._sessions, "a reused number must be forgotten"
        # the session without its leader: its members are taken for ours (the documented
        # limit; our own leader is always dead by the time a session is remembered)
        leader.kill()
        leader.wait()
        scope._sessions.add(leader.pid)
        assert [(p.pid, p.comm) for p in scope.find_now()] == [(member, "stranger")]
    finally:
        if leader.poll() is None:
            leader.kill()
            leader.wait()


# ---- in a cluster -----------------------------------------------------------------------------


def _copies(c: object, box: Box) -> dict[str, int]:
    """Live straydaemons per node, told apart by their network namespace."""
    from vigil.lab.cluster import LabCluster
    assert isinstance(c, LabCluster)
    ns = {os.stat(f"/run/netns/{c.lab.ns(n)}").st_ino: n for n in ("n1", "n2")}
    counts = {"n1": 0, "n2": 0}
    path = box.pidfile("straydaemon")
    for pid in ([int(x) for x in path.read_text().split()] if path.exists() else []):
        if dead(pid):
            continue
        try:
            node = ns.get(os.stat(f"/proc/{pid}/ns/net").st_ino)
        except FileNotFoundError:
            continue
        if node is not None:
            counts[node] += 1
    return counts


def _cluster_resource(box: Box) -> str:
    r = box.daemonizing()
    return (f'[[group.resource]]\ntype = "exec"\nstart = {json.dumps(list(r.start))}\n'
            f'stop = {json.dumps(list(r.stop))}\n')


def _wait(what: str, cond: object, timeout: float = 15.0) -> None:
    assert callable(cond)
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError(what)
        time.sleep(0.05)


def test_in_cluster_standby_and_failback_leave_one_copy(box: Box) -> None:
    """The observed bug: after a standby and a failback there were two copies on n1 and one
    on n2. Now each stop kills the daemon its start left."""
    from vigil.lab.cluster import LabCluster
    with LabCluster() as c:
        c.add_config(_cluster_resource(box))
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1", 15)
        _wait("a copy on n1", lambda: _copies(c, box) == {"n1": 1, "n2": 0})
        assert c.vigil("n1", "standby").returncode == 0
        c.wait_holder("n2", 15)
        _wait("the copy on n2 alone", lambda: _copies(c, box) == {"n1": 0, "n2": 1}, 10)
        assert c.vigil("n1", "takeover").returncode == 0
        c.wait_holder("n1", 15)
        _wait("the copy on n1 alone", lambda: _copies(c, box) == {"n1": 1, "n2": 0}, 10)
        assert "comm=straydaemon" in c.log("n1") and "comm=straydaemon" in c.log("n2")


def test_in_cluster_the_guard_of_a_killed_daemon_kills_the_leftovers(box: Box) -> None:
    from vigil.lab.cluster import LabCluster
    with LabCluster() as c:
        c.add_config(_cluster_resource(box))
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1", 15)
        _wait("a copy on n1", lambda: _copies(c, box) == {"n1": 1, "n2": 0})
        os.kill(c.daemons["n1"].pid, signal.SIGKILL)
        c.wait_holder("n2", 15)
        _wait("the copy on n2 alone", lambda: _copies(c, box) == {"n1": 0, "n2": 1}, 10)
        assert "comm=straydaemon" in c.log("n1")  # the guard logs to the daemon's stream
