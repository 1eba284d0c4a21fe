"""A resource's processes on this node: where they are, and killing what its stop left.

A `Scope` holds everything the actions of one resource started (start, stop, monitor,
probe), and everything those started in turn: the daemon a start script leaves behind
(double fork and setsid included), a child that ignores SIGTERM. The runner puts each child
of an action in its resource's scope (`Scope.command`, `Scope.exited`). After a stop that
succeeded, the agent calls `clean()`: what is left gets SIGTERM, `grace` seconds, then
SIGKILL, and each process killed is logged with its pid and command name. After a failed
stop nothing is killed (the group is blocked and an operator must look); `find()` then
shows what is left, for status. The scope's name (`scope_name`) is derived from the
resource's configuration alone, so the daemon, its guard (which builds the same agents and
calls their stop() when the daemon dies) and a daemon restarted after a crash all find the
same processes.

Two ways of tracking, chosen per process:

- **cgroup v2** where the host has it (cgroup.py): one cgroup per resource,
  `<daemon's cgroup>/vigil/<scope name>`, which each child enters before it runs the
  program. The kernel keeps every descendant in it whatever it does, setsid() included; a
  process leaves only by writing itself into another cgroup, as root may. A cgroup is made
  when an action needs it and removed once empty (after the stop's cleanup, or after any
  action that left nothing running). `cgroup.kill` makes the SIGKILL atomic against a
  process that keeps forking.
- **Elsewhere** (no cgroup2 mount, our cgroup not under it, creation refused: logged once;
  or `VIGIL_TEST_NO_CGROUP=1` in the environment, which only tests use), two marks found by
  a scan of /proc (about 15 µs a process, in a worker thread):
  - every child's environment carries `VIGIL_RESOURCE=<base>/<scope name>`, which its
    descendants inherit, through double forks and setsid(), in /proc/PID/environ;
  - each child leads a session and process group of its own (the runner starts it so); one
    whose group still has members when the child exits is remembered, and processes still
    in that session or group belong to the scope. This is in memory only: the guard and a
    restarted daemon have the environment mark alone.
  What this cannot catch: a process that lost the mark, by an exec with another
  environment (`env -i`, sudo's env_reset, `su -`) or by overwriting its environment area
  (setproctitle-style title rewriting), and also left the session (setsid(), as daemons
  do) or, in the guard or after a restart, was never in a session remembered by this
  process; nor one whose action's process group was empty at its exit while the session
  was not (a member moved to a process group of its own). What it could take wrongly: the
  members of a remembered session whose own members all died and whose number a stranger
  then got, if that stranger then died too (a stranger that still leads the session is
  recognised, and the number forgotten).

Both ways also add the environment mark, so that a process can always be traced back to
its resource (`grep VIGIL_RESOURCE /proc/*/environ`).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import logging
import os
import signal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from vigil.model import (ExecResource, Group, HeartbeatResource, LsbResource, OcfResource,
                         Resource)
from vigil.resources import cgroup

log = logging.getLogger(__name__)

ENV_MARK = "VIGIL_RESOURCE"
KILL_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL for what a stop left (as trio's and filesystem's)."""

LOGGED_AT_MOST = 16  # processes named in one log line; a fork bomb must not flood the log
_POLL_FIRST = 0.005  # seconds before the first look after a signal; doubled each time, up to
_POLL_CGROUP = 0.02  # ... this between reads of a cgroup while leftovers die
_POLL_SCAN = 0.1  # ... and this between scans of /proc, which cost more

TRACKED = (ExecResource, OcfResource, LsbResource, HeartbeatResource)
"""The resources whose agents run programs of their own. (systemd units live in systemd's
cgroups; addresses and filesystems start no processes.)"""


@dataclass(frozen=True, slots=True)
class Proc:
    """One process of a scope."""

    pid: int
    comm: str  # its command name (/proc/PID/comm), spaces and unprintables as "?"

    def __str__(self) -> str:
        return f"pid={self.pid} comm={self.comm}"


@dataclass(frozen=True, slots=True)
class ResourceProcs:
    """What runs in one resource's scope (see `of_group`)."""

    resource: str  # the resource's name
    procs: tuple[Proc, ...]


def scope_name(resource: Resource) -> str:
    """A cgroup name for `resource`: its name made safe, and a hash of what defines the
    program it runs (exec: its commands; OCF: agent, id and parameters; LSB and Heartbeat
    scripts: the script, its place and arguments). Two exec resources whose commands differ
    get two scopes even when their names ("exec sh") agree; a change of timeout or monitor
    keeps the scope (a reload does not restart the resource then)."""
    identity: list[object]
    match resource:
        case ExecResource():
            identity = ["exec", resource.start, resource.stop, resource.status]
        case OcfResource():
            identity = ["ocf", resource.agent, resource.id, resource.params]
        case LsbResource():
            identity = ["lsb", str(resource.directory), resource.script]
        case HeartbeatResource():
            identity = ["heartbeat", resource.script, resource.args,
                        [str(d) for d in resource.directories]]
        case _:
            identity = [resource.kind, resource.name]
    digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:12]
    slug = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_"
                   for c in resource.name).strip("._")[:40]
    return f"{slug or resource.kind}-{digest}"


def of_resource(resource: Resource) -> tuple[Proc, ...]:
    """What runs in `resource`'s scope on this node now, from any process: its cgroup, or
    where there is none the environment mark (not the sessions an agent remembers: ask the
    agent, `Agent.processes()`, for those). () for resources that start no processes.
    Blocks for a /proc scan in the fallback (milliseconds)."""
    if not isinstance(resource, TRACKED):
        return ()
    return Scope.of(resource).find_now()


def of_group(group: Group) -> tuple[ResourceProcs, ...]:
    """`of_resource` for each resource of `group` that has processes now, in order.

    While the group runs, these are its services; once it is stopped, or after a failed
    stop, they are strays an operator should see (and `vigil resource cleanup` leads to a
    probe, which reports them as present, and to a stop, which kills them)."""
    out = [ResourceProcs(r.name, of_resource(r)) for r in group.resources]
    return tuple(rp for rp in out if rp.procs)


class Scope:
    """One resource's processes (see the module docstring). Agents own one each."""

    def __init__(self, label: str, name: str, *, grace: float = KILL_GRACE) -> None:
        self.label = label  # the resource's name, for log lines
        self.name = name  # the cgroup's name; also the environment mark's
        self.grace = grace
        self.mark = f"{cgroup.base_name()}/{name}"
        self._mark = f"{ENV_MARK}={self.mark}".encode()
        self._sessions: set[int] = set()  # fallback: sessions that outlived their leader

    @classmethod
    def of(cls, resource: Resource) -> Scope:
        return cls(resource.name, scope_name(resource))

    def __repr__(self) -> str:
        return f"<Scope {self.mark}>"

    # -- for the runner -----------------------------------------------------------------------

    def command(self, argv: tuple[str, ...],
                env: Mapping[str, str] | None) -> tuple[tuple[str, ...], dict[str, str]]:
        """The argv and environment to spawn for `argv` (`env` None: the daemon's own).

        With cgroups the program runs behind cgroup.enter_argv, so its path is looked up
        here as exec would (`env`'s PATH when it has no '/'); one that cannot run raises
        FileNotFoundError or PermissionError naming it, as the spawn itself would."""
        full = dict(os.environ if env is None else env)
        full[ENV_MARK] = self.mark
        h = cgroup.hierarchy()
        if h is None:
            return argv, full
        program = resolve(argv[0], full)
        try:
            procs_file = cgroup.ensure(h, self.name)
        except OSError as e:
            cgroup.refuse(h.leaf(self.name), e)
            return argv, full
        return cgroup.enter_argv(procs_file, program, argv[1:]), full

    def exited(self, pid: int) -> None:
        """The runner reaped child `pid`. With cgroups: remove the cgroup if the action left
        it empty (an rmdir, refused while anything runs in it), so that no empty cgroup
        stays behind a probe, a monitor or a start that left nothing. Without: remember the
        child's session when something is still in its process group (one syscall)."""
        if cgroup.hierarchy() is not None:
            self.tidy()
            return
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            pass
        self._sessions.add(pid)

    # -- looking ------------------------------------------------------------------------------

    async def find(self) -> tuple[Proc, ...]:
        """What runs in the scope now (a /proc scan runs in a worker thread)."""
        h = cgroup.hierarchy()
        if h is not None:
            return _in_cgroup(h.leaf(self.name))
        asked = frozenset(self._sessions)
        found, live = await asyncio.to_thread(_scan, self._mark, asked)
        self._sessions -= asked - live
        return found

    def find_now(self) -> tuple[Proc, ...]:
        """`find`, blocking."""
        h = cgroup.hierarchy()
        if h is not None:
            return _in_cgroup(h.leaf(self.name))
        asked = frozenset(self._sessions)
        found, live = _scan(self._mark, asked)
        self._sessions -= asked - live
        return found

    def tidy(self, *, tree: bool = False) -> None:
        """Remove the scope's cgroup if it is empty (nothing to do without cgroups); with
        `tree`, the empty cgroups a program made below it too (cgroup.remove)."""
        h = cgroup.hierarchy()
        if h is None:
            return
        try:
            cgroup.remove(h.leaf(self.name), tree=tree)
        except OSError as e:
            log.warning("%s: cannot remove cgroup %s: %s", self.label, h.leaf(self.name),
                        e.strerror or e)

    # -- killing ------------------------------------------------------------------------------

    async def clean(self) -> tuple[Proc, ...]:
        """Kill what runs in the scope: SIGTERM, up to `grace` seconds, then SIGKILL (with
        cgroup.kill where there is one); processes that appear meanwhile get the same. Log
        each one killed; remove the empty cgroup. Returns what was killed.

        No timeout of its own beyond the grace: a process that SIGKILL cannot end (stuck in
        the kernel) keeps it waiting until the caller's timeout cancels it, and the stop it
        is part of then fails, as it should (something of the resource still runs)."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        left = await self.find()
        if not left:
            self.tidy(tree=True)
            return ()
        killed = {p.pid: p for p in left}
        log.warning("%s: stop left %s: killing %s (SIGTERM, SIGKILL after grace=%gs)",
                    self.label, _count(left), _describe(left), self.grace)
        self._signal(left, signal.SIGTERM)
        deadline = loop.time() + self.grace
        longest = _POLL_CGROUP if cgroup.hierarchy() is not None else _POLL_SCAN
        poll = _POLL_FIRST
        hard = False
        while True:
            await asyncio.sleep(poll)
            poll = min(poll * 2, longest)
            left = await self.find()
            if not left:
                break
            new = [p for p in left if p.pid not in killed]
            killed.update((p.pid, p) for p in new)
            if not hard and loop.time() >= deadline:
                hard = True
                log.warning("%s: killing %s with SIGKILL after grace=%gs", self.label,
                            _describe(left), self.grace)
            if hard:
                self._kill(left)
            elif new:
                log.warning("%s: killing %s, started meanwhile (SIGTERM)", self.label,
                            _describe(new))
                self._signal(new, signal.SIGTERM)
        self.tidy(tree=True)
        log.info("%s: leftovers gone: killed=%d ms=%.0f", self.label, len(killed),
                 (loop.time() - began) * 1000)
        return tuple(killed.values())

    def _kill(self, procs: Iterable[Proc]) -> None:
        h = cgroup.hierarchy()
        if h is not None and cgroup.kill(h.leaf(self.name)):
            return
        self._signal(procs, signal.SIGKILL)

    def _signal(self, procs: Iterable[Proc], sig: signal.Signals) -> None:
        """Signal each process that is still ours: through a pidfd, checked to be in the
        scope after it was opened, so that a pid reused meanwhile is never hit."""
        h = cgroup.hierarchy()
        for p in procs:
            try:
                fd = os.pidfd_open(p.pid)
            except ProcessLookupError:
                continue
            try:
                if h is not None:
                    ours = cgroup.member(p.pid, h, h.leaf(self.name))
                else:
                    ours = _match(p.pid, self._mark, frozenset(self._sessions)) is not None
                if ours:
                    signal.pidfd_send_signal(fd, sig)
            except ProcessLookupError:
                pass
            finally:
                os.close(fd)


def resolve(program: str, env: Mapping[str, str]) -> str:
    """The file exec would run for `program`: itself when it has a '/', else the first
    executable file of that name on `env`'s PATH, as subprocess searches it. Raises what
    exec would: FileNotFoundError (also for a script whose #! interpreter is missing), or
    PermissionError when a file of that name is there but cannot be executed (a
    directory, no x bit; or its interpreter cannot be).

    One difference remains behind the cgroup shell: a file that is neither a script with
    #! nor a binary is run by /bin/sh (as a shell runs it) where exec would fail with
    ENOEXEC."""
    if os.path.dirname(program):
        candidates = [program]
    else:
        candidates = [os.path.join(d, program) for d in os.get_exec_path(dict(env))]
    denied = None
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            _check_interpreter(c)
            return c if os.path.dirname(c) else os.path.join(".", c)
        if denied is None and os.path.exists(c):
            denied = c
    if denied is not None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), denied)
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)


def _check_interpreter(path: str) -> None:
    """Fail as execve would for a script whose #! interpreter is missing or not runnable
    (one level: the kernel allows a few, and exec itself reports the rest)."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return  # exec will say (a binary may be executable and unreadable)
    if not head.startswith(b"#!"):
        return
    words = head[2:].split(b"\n", 1)[0].split()
    if not words:
        return
    interpreter = os.fsdecode(words[0])
    if not os.path.exists(interpreter):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    if not (os.path.isfile(interpreter) and os.access(interpreter, os.X_OK)):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)


def _in_cgroup(leaf: Path) -> tuple[Proc, ...]:
    found = []
    me = os.getpid()
    for pid in cgroup.pids(leaf):
        if pid in (0, me):  # 0: a process outside our pid namespace
            continue
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().rstrip("\n")
        except OSError:
            continue  # gone meanwhile
        found.append(Proc(pid, _printable(comm)))
    return tuple(found)


def _stat(pid: int) -> tuple[str, str, int, int, int] | None:
    """(comm, state, ppid, pgrp, session) from /proc/PID/stat; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    return parse_stat(raw)


def parse_stat(raw: str) -> tuple[str, str, int, int, int] | None:
    """(comm, state, ppid, pgrp, session) from the text of /proc/PID/stat, whose comm, in
    parentheses, may itself hold spaces and parentheses."""
    head, sep, tail = raw.rpartition(")")
    fields = tail.split()
    if not sep or "(" not in head or len(fields) < 4:
        return None
    comm = head.partition("(")[2]
    try:
        return comm, fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    except ValueError:
        return None


def _marked(pid: int, mark: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read()
    except OSError:
        return False
    return (b"\0" + mark + b"\0") in (b"\0" + environ + b"\0")


def _match(pid: int, mark: bytes,
           sessions: frozenset[int]) -> tuple[str, int | None, bool] | None:
    """(comm, the remembered session it is in or None, whether it carries `mark`) when `pid`
    carries `mark` or is in one of `sessions`, and is not a zombie; else None."""
    stat = _stat(pid)
    if stat is None or stat[1] in ("Z", "X"):
        return None
    comm, _state, _ppid, pgrp, sid = stat
    hit = sid if sid in sessions else pgrp if pgrp in sessions else None
    if hit is not None and pid == hit:
        hit = None  # it leads it: our leader is dead, so the number was reused (_scan)
    marked = _marked(pid, mark)
    return (comm, hit, marked) if marked or hit is not None else None


def _scan(mark: bytes, sessions: frozenset[int]) -> tuple[tuple[Proc, ...], set[int]]:
    """The processes that carry `mark` or are in one of `sessions` (not zombies, not this
    process or its ancestors), and which of `sessions` still have members of ours.

    A session (or process group) number is free for reuse once all its members are gone;
    a process that leads one of `sessions` is a stranger that got the number since (the
    leader we started is dead), so neither it nor the rest of that session is ours."""
    me = _self_and_ancestors()
    found: list[tuple[Proc, int | None, bool]] = []
    reused: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid in me:
            continue
        if pid in sessions:
            reused.add(pid)
        if not sessions:  # the common case: the mark alone; read environ before stat
            if not _marked(pid, mark):
                continue
        got = _match(pid, mark, sessions)
        if got is not None:
            found.append((Proc(pid, _printable(got[0])), got[1], got[2]))
    # keep what is marked, and what is in a session whose number was not reused
    kept = tuple(p for p, hit, marked in found
                 if marked or (hit is not None and hit not in reused))
    live = {hit for _p, hit, _m in found if hit is not None and hit not in reused}
    return kept, live


def _self_and_ancestors() -> set[int]:
    me = {os.getpid()}
    pid = os.getppid()
    while pid > 1 and pid not in me:
        me.add(pid)
        stat = _stat(pid)
        if stat is None:
            break
        pid = stat[2]
    return me | {1}


def _printable(comm: str) -> str:
    return "".join(c if c.isprintable() and not c.isspace() else "?" for c in comm) or "?"


def _describe(procs: Iterable[Proc]) -> str:
    listed = list(procs)
    text = ", ".join(str(p) for p in listed[:LOGGED_AT_MOST])
    more = len(listed) - LOGGED_AT_MOST
    return text + (f" and {more} more" if more > 0 else "")


def _count(procs: tuple[Proc, ...]) -> str:
    return f"{len(procs)} process" + ("es" if len(procs) != 1 else "")
