"""What an OCF resource agent says about itself: the installed agents and their meta-data.

OCF agents live at ``$OCF_ROOT/resource.d/<provider>/<type>`` and print an XML description of
their parameters and actions for the ``meta-data`` action (OCF RA API 1.1, "Resource Agent
Meta-Data"; schema ``ra/1.1/ra-api.rng`` in ClusterLabs/OCF-spec). This module finds agents,
runs ``meta-data`` synchronously (for the CLI, and for `OcfAgent.timeout_for` on a cold cache),
parses the XML into `AgentInfo`, and renders it as text. It keeps no state and runs no event
loop; `resources.ocf` owns the cache and the asynchronous actions.

Names: users write an agent as "provider:type" ("heartbeat:IPaddr2") or with its class,
"ocf:heartbeat:IPaddr2"; both are accepted wherever a name is read.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vigil.errors import AgentError

DEFAULT_OCF_ROOT = Path("/usr/lib/ocf")
META_DATA_TIMEOUT = 5.0
"""Seconds a `meta-data` call may take (the value agents advertise for it themselves)."""

PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
"""The PATH agents run with (ocf-shellfuncs and findif call ip, awk, sed... by name)."""

EXIT_REASON_PREFIX = "ocf-exit-reason:"
"""Passed as OCF_EXIT_REASON_PREFIX (as pacemaker does): agents print
``ocf-exit-reason:<why>`` on stderr before failing, so the reason is found among log lines."""

_NAME_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")


class UnknownAgent(AgentError):
    """No such OCF agent is installed, or the name is not "provider:type"."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class ParameterInfo:
    """One `<parameter>`: an OCF_RESKEY_<name> the agent reads."""

    name: str
    required: bool  # the agent cannot work without it (a hint, per the spec)
    unique: bool  # no two instances should share its value (deprecated hint)
    type: str  # "string", "integer", "boolean"... ("string" when not stated)
    default: str | None  # as the agent prints it; None when it states none
    shortdesc: str  # one line; "" when missing


@dataclass(frozen=True, slots=True)
class ActionInfo:
    """One `<action>` the agent advertises."""

    name: str
    timeout: float | None  # seconds; None when missing or unparsable
    interval: float | None  # seconds (monitor); None when not stated
    depth: int | None  # OCF_CHECK_LEVEL this entry is for (monitor); None when not stated
    role: str | None = None  # "Promoted"/"Unpromoted" (or legacy "Master"/"Slave") entries


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """An agent's meta-data, parsed."""

    name: str  # "provider:type", as configured
    version: str  # the agent's own version ("" when not stated)
    ocf_version: str  # the OCF API version it claims (<version>; "" when missing)
    shortdesc: str
    longdesc: str
    parameters: tuple[ParameterInfo, ...]
    actions: tuple[ActionInfo, ...]

    def advertises(self, action: str) -> bool:
        return any(a.name == action for a in self.actions)

    def action(self, name: str) -> ActionInfo | None:
        """The entry for `name`: for monitor, the plain one (no role, depth 0 or none) when
        several are advertised; otherwise the first. None when not advertised."""
        found = [a for a in self.actions if a.name == name]
        plain = [a for a in found if a.role is None and a.depth in (None, 0)]
        chosen = plain or found
        return chosen[0] if chosen else None

    def timeout_for(self, action: str) -> float | None:
        """The advertised timeout of `action` in seconds, or None."""
        entry = self.action(action)
        return entry.timeout if entry is not None else None


# ---- names and paths ------------------------------------------------------------------------


def split_name(name: str) -> tuple[str, str]:
    """("heartbeat", "IPaddr2") from "heartbeat:IPaddr2" or "ocf:heartbeat:IPaddr2".

    Raises UnknownAgent for anything else, including names that could leave the OCF root.
    """
    parts = name.split(":")
    if len(parts) == 3 and parts[0] == "ocf":
        parts = parts[1:]
    if len(parts) != 2 or not all(_NAME_PART.match(p) for p in parts):
        raise UnknownAgent(
            f"bad OCF agent name {name!r}: expected provider:type, e.g. heartbeat:IPaddr2"
        )
    return parts[0], parts[1]


def agent_path(ocf_root: Path, name: str) -> Path:
    """Where agent `name` lives under `ocf_root` (whether or not it exists)."""
    provider, type_ = split_name(name)
    return ocf_root / "resource.d" / provider / type_


def list_agents(ocf_root: Path = DEFAULT_OCF_ROOT) -> list[str]:
    """Every installed agent as "provider:type", sorted: the executable files directly under
    each provider directory (hidden files, such as heartbeat's `.ocf-shellfuncs` links, are
    helpers, not agents). An absent root gives an empty list."""
    found: list[str] = []
    try:
        providers = sorted((ocf_root / "resource.d").iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    for provider in providers:
        if provider.name.startswith(".") or not provider.is_dir():
            continue
        for agent in provider.iterdir():
            if agent.name.startswith(".") or not _NAME_PART.match(agent.name):
                continue
            if agent.is_file() and os.access(agent, os.X_OK):
                found.append(f"{provider.name}:{agent.name}")
    return sorted(found)


# ---- running meta-data ----------------------------------------------------------------------


def base_env(ocf_root: Path, provider: str, type_: str, instance: str) -> dict[str, str]:
    """The environment every agent call gets: nothing of the daemon's own environment.

    OCF_ROOT, OCF_FUNCTIONS_DIR, OCF_RA_VERSION_MAJOR/MINOR (1.1), OCF_RESOURCE_INSTANCE/
    TYPE/PROVIDER, OCF_EXIT_REASON_PREFIX and PATH. Deliberately absent: HA_LOGFACILITY and
    HA_LOGFILE (so ocf_log writes to stderr, which vigil logs), HA_debug (agents' debug lines
    stay quiet), HA_RSCTMP (agents default to /run/resource-agents), LANG/LC_* (ocf-shellfuncs
    sets LC_ALL=C), HOME.
    """
    return {
        "PATH": PATH,
        "OCF_ROOT": str(ocf_root),
        "OCF_FUNCTIONS_DIR": str(ocf_root / "lib" / "heartbeat"),
        "OCF_RA_VERSION_MAJOR": "1",
        "OCF_RA_VERSION_MINOR": "1",
        "OCF_RESOURCE_INSTANCE": instance,
        "OCF_RESOURCE_TYPE": type_,
        "OCF_RESOURCE_PROVIDER": provider,
        "OCF_EXIT_REASON_PREFIX": EXIT_REASON_PREFIX,
    }


def read_meta_data(
    ocf_root: Path, name: str, *, wrap: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> str:
    """Run `<agent> meta-data` (blocking, at most META_DATA_TIMEOUT) and return its stdout.

    UnknownAgent when the agent is not installed; AgentError when it fails or hangs (its whole
    process group is killed). `wrap` is an argv prefix (see `OcfAgent`); `env` replaces the
    default environment, `base_env` with instance "RESOURCE_ID".
    """
    path = _existing(ocf_root, name)
    provider, type_ = split_name(name)
    argv = [*wrap, str(path), "meta-data"]
    if env is None:
        env = base_env(ocf_root, provider, type_, "RESOURCE_ID")
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            start_new_session=True,
        )
    except OSError as e:
        raise AgentError(f"ocf:{name}: cannot run meta-data: {e.strerror or e}") from e
    try:
        out, err = proc.communicate(timeout=META_DATA_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.communicate()
        raise AgentError(
            f"ocf:{name}: meta-data did not finish within {META_DATA_TIMEOUT:g} s"
        ) from None
    except BaseException:
        _kill_group(proc.pid)
        proc.wait()
        raise
    if proc.returncode != 0:
        tail = _last_line(err.decode("utf-8", "replace"))
        raise AgentError(
            f"ocf:{name}: meta-data failed (rc={proc.returncode})" + (f": {tail}" if tail else "")
        )
    return out.decode("utf-8", "replace")


def agent_info(ocf_root: Path, name: str) -> AgentInfo:
    """Meta-data of agent `name` ("provider:type" or "ocf:provider:type"), parsed.

    UnknownAgent (exit status 2) for a bad name or an agent that is not installed; AgentError
    when meta-data fails or is not meta-data XML.
    """
    provider, type_ = split_name(name)
    return parse_meta_data(read_meta_data(ocf_root, name), f"{provider}:{type_}")


def _existing(ocf_root: Path, name: str) -> Path:
    path = agent_path(ocf_root, name)
    if not path.is_file():
        provider, type_ = split_name(name)
        raise UnknownAgent(f"unknown OCF agent ocf:{provider}:{type_} (no file {path})")
    return path


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# ---- parsing --------------------------------------------------------------------------------

_DURATION = re.compile(
    r"^\s*(\d+(?:\.\d*)?)\s*(ms|msec|us|usec|s|sec|m|min|h|hr)?\s*$", re.IGNORECASE
)
_UNIT_SECONDS = {
    None: 1.0, "s": 1.0, "sec": 1.0, "ms": 0.001, "msec": 0.001, "us": 1e-6, "usec": 1e-6,
    "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0,
}


def parse_duration(text: str | None) -> float | None:
    """Seconds from a meta-data duration: "20s", "20" (seconds), "100ms", "2m", "1h"...
    None for a missing or unparsable value."""
    if text is None:
        return None
    m = _DURATION.match(text)
    if m is None:
        return None
    unit = m.group(2).lower() if m.group(2) else None
    return float(m.group(1)) * _UNIT_SECONDS[unit]


def parse_meta_data(text: str, name: str) -> AgentInfo:
    """AgentInfo from meta-data XML; AgentError naming `name` when it is not meta-data."""
    try:
        root = ET.fromstring(text.strip())
    except ET.ParseError as e:
        raise AgentError(f"ocf:{name}: meta-data is not XML: {e}") from None
    if root.tag != "resource-agent":
        raise AgentError(
            f"ocf:{name}: meta-data is not OCF meta-data (root element <{root.tag}>,"
            " expected <resource-agent>)"
        )
    parameters = []
    for p in root.iterfind("parameters/parameter"):
        pname = p.get("name")
        if not pname:
            raise AgentError(f"ocf:{name}: meta-data has a <parameter> without a name")
        content = p.find("content")
        parameters.append(ParameterInfo(
            name=pname,
            required=_flag(p.get("required")),
            unique=_flag(p.get("unique")),
            type=(content.get("type") if content is not None else None) or "string",
            default=content.get("default") if content is not None else None,
            shortdesc=_desc(p, "shortdesc"),
        ))
    actions = []
    for a in root.iterfind("actions/action"):
        aname = a.get("name")
        if not aname:
            raise AgentError(f"ocf:{name}: meta-data has an <action> without a name")
        depth = a.get("depth")
        actions.append(ActionInfo(
            name=aname,
            timeout=parse_duration(a.get("timeout")),
            interval=parse_duration(a.get("interval")),
            depth=int(depth) if depth is not None and depth.strip().isdigit() else None,
            role=a.get("role"),
        ))
    version = root.find("version")
    return AgentInfo(
        name=name,
        version=root.get("version") or "",
        ocf_version=(version.text or "").strip() if version is not None else "",
        shortdesc=_desc(root, "shortdesc"),
        longdesc=_desc(root, "longdesc"),
        parameters=tuple(parameters),
        actions=tuple(actions),
    )


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def _desc(element: ET.Element, tag: str) -> str:
    """The English (or first) `tag` child's text, whitespace-trimmed, paragraphs kept."""
    found = element.findall(tag)
    chosen = next((d for d in found if d.get("lang", "en") == "en"), found[0] if found else None)
    if chosen is None:
        return ""
    text = "".join(chosen.itertext())
    return textwrap.dedent(text).strip()


# ---- rendering ------------------------------------------------------------------------------


def render_info(info: AgentInfo) -> str:
    """`vigil agent info` text: summary, parameters (required first), then actions."""
    lines = [f"ocf:{info.name}" + (f" (version {info.version})" if info.version else "")]
    if info.shortdesc:
        lines.append(f"  {info.shortdesc}")
    if info.longdesc:
        lines.append("")
        lines += [f"  {line}".rstrip() for line in info.longdesc.splitlines()]
    lines += ["", "Parameters:"]
    if not info.parameters:
        lines.append("  (none)")
    ordered = sorted(info.parameters, key=lambda p: not p.required)  # stable: agent's order
    width = max((len(p.name) for p in ordered), default=0)
    for p in ordered:
        marks = [p.type]
        if p.required:
            marks.append("required")
        if p.unique:
            marks.append("unique")
        if p.default not in (None, ""):
            marks.append(f"default {p.default}")
        desc = f" {p.shortdesc}" if p.shortdesc else ""
        lines.append(f"  {p.name:<{width}} ({', '.join(marks)}){desc}")
    lines += ["", "Actions:"]
    if not info.actions:
        lines.append("  (none)")
    for a in info.actions:
        attrs = []
        if a.timeout is not None:
            attrs.append(f"timeout={a.timeout:g}s")
        if a.interval is not None:
            attrs.append(f"interval={a.interval:g}s")
        if a.depth is not None:
            attrs.append(f"depth={a.depth}")
        if a.role is not None:
            attrs.append(f"role={a.role}")
        lines.append(f"  {a.name}" + (f" {' '.join(attrs)}" if attrs else ""))
    return "\n".join(lines)
