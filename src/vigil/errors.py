"""The one tree of vigil's errors. Imports nothing from vigil.

A `VigilError` is an error a user can act on: the CLI prints it as one line on stderr and
exits with its `exit_code`. Anything else escaping is a bug and stays a traceback (shown only
with --debug or in the daemon log).
"""

from __future__ import annotations

from dataclasses import dataclass


class VigilError(Exception):
    """Base of every error meant for a user."""

    exit_code = 1


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong in a configuration file: where, which key, and what."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}"


class ConfigError(VigilError):
    """A configuration that must not be run. Carries every problem found, not just the first."""

    exit_code = 2

    def __init__(self, problems: list[ConfigProblem] | ConfigProblem) -> None:
        if isinstance(problems, ConfigProblem):
            problems = [problems]
        assert problems, "ConfigError needs at least one problem"
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class KeyFileError(VigilError):
    """The cluster key, or the API's token, cannot be used (missing, unreadable, too
    permissive, too short or too large)."""

    exit_code = 2


class ControlError(VigilError):
    """A control-socket request that failed; `code` is one of control.protocol.ErrorCode."""

    def __init__(self, code: str, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = exit_code


class DaemonUnreachable(VigilError):
    """No daemon answers on the control socket."""

    exit_code = 4


class ControlDenied(VigilError):
    """The control socket is there but this user may not use it (it is root's only): a
    failure (exit 1), not "no daemon" (4), since a daemon may well be running."""

    exit_code = 1


class AgentError(VigilError):
    """A resource action failed (non-zero exit, netlink error, timeout)."""
