"""OCF resource agents (the OCF RA API 1.0/1.1, as pacemaker and rgmanager run them).

An `OcfResource` names an agent, ``$OCF_ROOT/resource.d/<provider>/<type>``, an instance id
and parameters. Each action runs ``<agent> <action>`` (argv only, through `runner.run`) with
this environment and nothing else of the daemon's:

    PATH                            /usr/sbin:/usr/bin:/sbin:/bin
    OCF_ROOT                        the OCF root (/usr/lib/ocf)
    OCF_FUNCTIONS_DIR               $OCF_ROOT/lib/heartbeat (ocf-shellfuncs)
    OCF_RA_VERSION_MAJOR/MINOR      1 / 1
    OCF_RESOURCE_INSTANCE           resource.id
    OCF_RESOURCE_TYPE/PROVIDER      the agent's type and provider
    OCF_EXIT_REASON_PREFIX          "ocf-exit-reason:" (as pacemaker; see `OcfError.reason`)
    OCF_RESKEY_<name>               <value>, for every configured parameter
    OCF_RESKEY_CRM_meta_timeout     ms the caller allows this action (`timeout_for`)
    OCF_RESKEY_CRM_meta_interval    ms between recurring monitors; 0 for every other action,
                                    which is how agents tell a probe (`ocf_is_probe`)
    VIGIL_RESOURCE                  the resource's scope (procs.py): every action runs in
                                    the resource's cgroup, or carries this mark where
                                    there are no cgroups

(`ocf_meta.base_env` lists what is left out on purpose.)

Exit statuses are read with `EXIT_CODES`; each code has a `kind` telling the engine what to do
with a failure (see `Kind`). A failed action raises `OcfError` carrying `code` and `kind`.

Choices:
- stop accepts 7 (NOT_RUNNING) as well as 0. The spec says a stop of a stopped resource
  returns 0 and pacemaker treats 7 from stop as a failure, but several agents in the wild
  return 7 there, and a resource the agent itself reports as not running is stopped: failing
  the stop would only lead to fencing over a resource that is not there.
- monitor/probe treat 190 (DEGRADED) as running (the spec: "properly active") and log the
  agent's stderr at WARNING. 8, 9 and 191 (promoted roles) are errors: vigil has no roles, so
  an agent reporting one is running something vigil did not ask for.
- validate-all runs once per `OcfAgent`, before its first start, when the meta-data advertises
  it; 0 passes, and so does 3 (an agent advertising it but not implementing it).
- A stop that succeeded (0 or 7) ends by killing what the agent's daemons left in the
  resource's scope (procs.Scope). A probe that gets 7 (or 5) while processes of the
  resource still run says running (base.Agent.present_or_left): the engine stops it.
- Every stderr line the runner kept is logged to the "vigil" logger as "<name>: <line>", at
  WARNING when the action failed, a recurring monitor found the resource stopped, or the
  resource is degraded; at DEBUG otherwise. Actions log nothing else: the engine logs results.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vigil.errors import AgentError
from vigil.model import OcfResource
from vigil.resources import runner
from vigil.resources.base import Agent
from vigil.resources.ocf_meta import (
    DEFAULT_OCF_ROOT,
    EXIT_REASON_PREFIX,
    AgentInfo,
    base_env,
    parse_meta_data,
    read_meta_data,
)
from vigil.resources.procs import Scope

__all__ = [
    "DEFAULT_TIMEOUT", "EXIT_CODES", "FailureKind", "Kind", "OcfAgent", "OcfCode", "OcfError",
    "clear_meta_data_cache", "describe_rc",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 20.0
"""Seconds for an action when neither the resource nor the agent's meta-data gives one."""

Kind = Literal["ok", "not_running", "soft", "hard", "fatal"]
"""What an exit status means for the caller:

- "ok": the action succeeded (0; 190 for monitor: running, degraded).
- "not_running": the resource is cleanly stopped (7).
- "soft": the action failed here, and retrying or restarting may help (1, 8, 9, 191, unknown
  codes, a kill by signal).
- "hard": this node cannot run the resource (2 bad args here, 3 unimplemented, 4 no
  permission, 5 not installed): do not restart it here; another node may.
- "fatal": the configuration is wrong everywhere (6): stop trying on any node.
"""


@dataclass(frozen=True, slots=True)
class OcfCode:
    """One exit status of an OCF agent."""

    code: int
    name: str  # "OCF_ERR_INSTALLED"
    meaning: str  # "not installed"
    kind: Kind


EXIT_CODES: dict[int, OcfCode] = {c.code: c for c in (
    OcfCode(0, "OCF_SUCCESS", "success", "ok"),
    OcfCode(1, "OCF_ERR_GENERIC", "generic error", "soft"),
    OcfCode(2, "OCF_ERR_ARGS", "invalid parameters on this node", "hard"),
    OcfCode(3, "OCF_ERR_UNIMPLEMENTED", "action not implemented", "hard"),
    OcfCode(4, "OCF_ERR_PERM", "insufficient privilege", "hard"),
    OcfCode(5, "OCF_ERR_INSTALLED", "required software not installed", "hard"),
    OcfCode(6, "OCF_ERR_CONFIGURED", "invalid configuration", "fatal"),
    OcfCode(7, "OCF_NOT_RUNNING", "not running", "not_running"),
    OcfCode(8, "OCF_RUNNING_PROMOTED", "running in the promoted role", "soft"),
    OcfCode(9, "OCF_FAILED_PROMOTED", "failed in the promoted role", "soft"),
    OcfCode(190, "OCF_DEGRADED", "running, degraded", "ok"),
    OcfCode(191, "OCF_DEGRADED_PROMOTED", "running in the promoted role, degraded", "soft"),
)}


def describe_rc(rc: int) -> OcfCode:
    """The table entry for `rc`; an unknown code or a kill by signal (rc < 0) is "soft"."""
    if rc in EXIT_CODES:
        return EXIT_CODES[rc]
    if rc < 0:
        killed = runner.Completed((), rc, "", "", 0.0).describe_rc()
        return OcfCode(rc, "KILLED", killed, "soft")
    return OcfCode(rc, "UNKNOWN", f"exit status {rc} is not an OCF code", "soft")


FailureKind = Literal["soft", "hard", "fatal"]
"""The kinds an `OcfError` carries: a code that is "ok" or "not_running" in the table but
wrong for the action (start exiting 7 or 190) is a "soft" failure of that action."""


class OcfError(AgentError):
    """An OCF action failed. `code` is the exit status (see `EXIT_CODES`; < 0 when killed by a
    signal), `kind` what the engine should do (see `Kind`), `action` the action that failed
    ("probe" for a probe; "validate-all" when the check before a start failed), `reason` the
    agent's exit reason or last stderr line ("" when none)."""

    def __init__(self, message: str, *, action: str, code: int, kind: FailureKind,
                 reason: str = "") -> None:
        super().__init__(message)
        self.action = action
        self.code = code
        self.kind: FailureKind = kind
        self.reason = reason


# Meta-data per agent path, shared by every OcfAgent of this process: None when the agent
# exists but its meta-data failed or did not parse (warned about once; defaults apply until
# `clear_meta_data_cache`). A missing agent is not cached: it may be installed later.
_meta_cache: dict[Path, AgentInfo | None] = {}

_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def clear_meta_data_cache() -> None:
    """Forget every agent's meta-data (after agents were upgraded; in tests)."""
    _meta_cache.clear()


class OcfAgent(Agent):
    """Runs one OCF resource's agent. See the module docstring for environment and codes.

    `ocf_root` is where agents and their shell library live. `wrap` is an argv prefix put before
    every agent call, a test seam: ``("ip", "netns", "exec", NS)`` runs the agent inside a
    network namespace. It is not part of the configuration.
    """

    def __init__(self, resource: OcfResource, *, ocf_root: Path = DEFAULT_OCF_ROOT,
                 wrap: Sequence[str] = ()) -> None:
        self.resource = resource
        self.name = resource.name
        self.ocf_root = ocf_root
        self.wrap = tuple(wrap)
        self.path = ocf_root / "resource.d" / resource.provider / resource.type
        self.procs = Scope.of(resource)
        self._validated = False

    # -- timeouts -------------------------------------------------------------------------

    @property
    def timeout(self) -> float:
        """The longest of start, stop and monitor: for callers that want one number. Prefer
        `timeout_for`. Read-only (it is derived from the resource and the meta-data)."""
        return max(self.timeout_for(a) for a in ("start", "stop", "monitor"))

    @timeout.setter
    def timeout(self, value: float) -> None:
        raise AttributeError("OcfAgent.timeout is derived: set OcfResource.timeout instead")

    def timeout_for(self, action: str) -> float:
        """resource.timeout if set; else the agent's meta-data timeout for `action` (probe
        uses monitor's); else DEFAULT_TIMEOUT. On a cold cache this runs `meta-data` once,
        blocking (a few ms; at most ocf_meta.META_DATA_TIMEOUT)."""
        if self.resource.timeout is not None:
            return self.resource.timeout
        info = self._meta_sync()
        advertised = info.timeout_for(_meta_action(action)) if info is not None else None
        return advertised if advertised is not None else DEFAULT_TIMEOUT

    # -- actions --------------------------------------------------------------------------

    async def start(self) -> None:
        if not self._validated:
            info = await self.load_meta_data()
            if info is not None and info.advertises("validate-all"):
                done = await self._call("validate-all")
                if done.rc not in (0, 3):
                    raise self._failed("validate-all", done)
                self._log_stderr(done, warn=False, quiet=True)
            self._validated = True
        done = await self._call("start")
        if done.rc != 0:
            raise self._failed("start", done)
        self._log_stderr(done, warn=False)

    async def stop(self) -> None:
        done = await self._call("stop")
        if done.rc not in (0, 7):  # 7: see the module docstring
            raise self._failed("stop", done)
        self._log_stderr(done, warn=False)
        await self.kill_leftovers()

    async def probe(self) -> bool:
        """A monitor with interval 0: True running (0, 190), False stopped (7), else
        OcfError (the engine treats a failed probe as "present"). As in Pacemaker, an agent
        that is not installed here (5) means "not running": nothing of it can run."""
        try:
            running = await self._monitor("probe", interval_ms=0)
        except OcfError as e:
            if e.code != 5:
                raise
            running = False
        return await self.present_or_left("probe", running)

    async def monitor(self) -> bool:
        """The recurring monitor: True running (0, 190), False stopped (7), else OcfError."""
        every = self.resource.monitor.interval if self.resource.monitor is not None else 0.0
        running = await self._monitor("monitor", interval_ms=round(every * 1000))
        return await self.present_or_left("monitor", running)

    async def _monitor(self, action: str, interval_ms: int) -> bool:
        done = await self._call("monitor", interval_ms=interval_ms, timeout_of=action)
        kind = describe_rc(done.rc).kind
        if kind == "ok":
            self._log_stderr(done, warn=done.rc != 0, quiet=True)  # rc != 0: degraded
            return True
        if kind == "not_running":
            self._log_stderr(done, warn=action == "monitor", quiet=True)  # it died
            return False
        raise self._failed(action, done)

    # -- running the agent ----------------------------------------------------------------

    def env(self, action: str, interval_ms: int = 0) -> dict[str, str]:
        """The complete environment of a call for `action` ("probe" for a probe)."""
        r = self.resource
        env = base_env(self.ocf_root, r.provider, r.type, r.id)
        for key, value in r.params:
            if not _PARAM_NAME.match(key) or "\0" in value:
                raise OcfError(
                    f"{self.name}: bad parameter {key!r}: names are letters, digits and _;"
                    " values hold no NUL", action=action, code=6, kind="fatal")
            env[f"OCF_RESKEY_{key}"] = value
        env["OCF_RESKEY_CRM_meta_timeout"] = str(round(self.timeout_for(action) * 1000))
        env["OCF_RESKEY_CRM_meta_interval"] = str(interval_ms)
        return env

    async def _call(self, action: str, *, interval_ms: int = 0,
                    timeout_of: str | None = None) -> runner.Completed:
        """Run `<agent> action`. A missing agent is OCF_ERR_INSTALLED (5) without running
        anything; one the kernel refuses to execute is OCF_ERR_PERM (4) when permission is
        denied, else 5; both "hard"."""
        what = timeout_of or action
        if not self.path.is_file():
            raise OcfError(
                f"{self.name}: {what} failed: OCF_ERR_INSTALLED (not installed): no agent"
                f" {self.path}", action=what, code=5, kind="hard")
        if self.resource.timeout is None:
            await self.load_meta_data()  # warm the cache without blocking: env() reads timeouts
        env = self.env(what, interval_ms)
        try:
            return await runner.run([*self.wrap, str(self.path), action], env=env,
                                    scope=self.procs)
        except AgentError as e:
            code = 4 if isinstance(e.__cause__, PermissionError) else 5
            c = EXIT_CODES[code]
            raise OcfError(f"{self.name}: {what} failed: {c.name} ({c.meaning}): {e}",
                           action=what, code=code, kind="hard") from e

    def _failed(self, action: str, done: runner.Completed) -> OcfError:
        """The error for a failed `action`, its stderr logged at WARNING."""
        self._log_stderr(done, warn=True)
        c = describe_rc(done.rc)
        # start exiting 7 or 190 is a failure of the start: "soft"
        kind: FailureKind = "soft"
        if c.kind == "hard" or c.kind == "fatal":
            kind = c.kind
        reason = exit_reason(done.stderr)
        rc = f"rc={done.rc} " if done.rc >= 0 else ""
        message = f"{self.name}: {action} failed: {rc}{c.name} ({c.meaning})"
        return OcfError(message + (f": {reason}" if reason else ""),
                        action=action, code=done.rc, kind=kind, reason=reason)

    def _log_stderr(self, done: runner.Completed, *, warn: bool, quiet: bool = False) -> None:
        level = logging.WARNING if warn else logging.DEBUG if quiet else logging.INFO
        if not log.isEnabledFor(level):
            return
        for line in done.stderr.splitlines():
            if line.strip():
                log.log(level, "%s: %s", self.name, line.rstrip())

    # -- meta-data ------------------------------------------------------------------------

    def _meta_sync(self) -> AgentInfo | None:
        if self.path in _meta_cache:
            return _meta_cache[self.path]
        return self._load_meta_data()

    async def prepare(self) -> None:
        await self.load_meta_data()

    async def load_meta_data(self) -> AgentInfo | None:
        """Load (once per agent path) and return the agent's meta-data without blocking the
        event loop; None when the agent is missing or its meta-data unusable. The engine may
        call it right after building the agent so that `timeout_for` never has to block.

        The call runs in a worker thread, not through `runner.run`: the runner keeps only the
        last 4 KiB of stdout and meta-data is longer (IPaddr2's is ~15 KiB). The thread is
        bounded by META_DATA_TIMEOUT, when it kills the agent's process group; if our task is
        cancelled meanwhile, the thread still runs to its end on its own.
        """
        if self.path in _meta_cache:
            return _meta_cache[self.path]
        return await asyncio.to_thread(self._load_meta_data)

    def _load_meta_data(self) -> AgentInfo | None:
        """Run meta-data (blocking), parse it and cache the result (None on failure)."""
        if not self.path.is_file():
            return None  # not cached: it may be installed later; actions report it
        try:
            text = read_meta_data(self.ocf_root, self.resource.agent, wrap=self.wrap,
                                  env=self._meta_env())
            info: AgentInfo | None = parse_meta_data(text, self.resource.agent)
        except AgentError as e:
            log.warning("%s: no usable meta-data (%s); using %g s timeouts, no validate-all",
                        self.name, e, DEFAULT_TIMEOUT)
            info = None
        _meta_cache[self.path] = info
        return info

    def _meta_env(self) -> dict[str, str]:
        r = self.resource
        return base_env(self.ocf_root, r.provider, r.type, r.id)


def exit_reason(stderr: str) -> str:
    """The agent's exit reason (its last "ocf-exit-reason:" line), else its last non-blank
    stderr line, else ""."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(EXIT_REASON_PREFIX):
            return line[len(EXIT_REASON_PREFIX):].strip()
    return lines[-1] if lines else ""


def _meta_action(action: str) -> str:
    return "monitor" if action == "probe" else action
