"""vigil's own configuration format (TOML) -> `model.Cluster`.

`parse` validates the whole document and raises one `ConfigError` carrying every problem found,
each with the file, the line of the offending key (or of its table header when the key is
missing) and the dotted key path (`cluster.deadtime`, `node[1].address`,
`group[0].resource[1].start`). Nothing is silently ignored: unknown keys are errors that list the
valid ones. examples/vigil.toml documents the format.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from vigil import model
from vigil.config.duration import parse_duration
from vigil.config.files import MAX_CONFIG_FILE, FileRefused, read_file
from vigil.config.locate import KeyPath, fmt_key, locate_keys
from vigil.errors import ConfigError, ConfigProblem

__all__ = ["KeyPath", "fmt_key", "load", "locate_keys", "parse"]

Table = dict[str, Any]
_T = TypeVar("_T")

_MAX_DURATION = 7 * 86400.0  # anything longer is a typo, and keeps fmt_duration finite
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_MAX_CLUSTER_NAME = 64  # bytes: wire/frame.py MAX_NAME (config/ does not import wire)
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SYNTAX_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")

_TOP_KEYS = ("cluster", "node", "link", "group", "fencing", "witness", "respawn", "api",
             "notify")
_API_KEYS = ("listen", "token_file", "cert_file", "key_file")
_NOTIFY_KEYS = ("program", "directory", "timeout")
_RESPAWN_KEYS = ("user", "argv")
_WITNESS_KEYS = ("address", "port", "lease", "name")
_FENCING_KEYS = ("agent", "action", "command", "params", "nodes", "timeout", "retry_interval",
                 "on_failure", "delay", "monitor_interval")
_CLUSTER_KEYS = ("name", "key_file", "keepalive", "warntime", "deadtime", "initdead",
                 "auto_failback", "port", "realtime", "log_file", "watchdog",
                 "watchdog_timeout", "ping", "ping_interval", "deadping", "address_probe")
_NODE_KEYS = ("name", "address")
_LINK_KEYS = ("mode", "interface", "group", "ttl", "device", "baud", "peers")
_LINK_MODE_KEYS = {"mcast": ("mode", "interface", "group", "ttl"), "bcast": ("mode", "interface"),
                   "disk": ("mode", "device"), "serial": ("mode", "device", "baud"),
                   "ucast": ("mode", "interface", "peers")}
_GROUP_KEYS = ("name", "home", "resource", "policy")
_POLICY_KEYS = ("migration_threshold", "failure_timeout")
_MONITOR_KEYS = ("interval", "timeout")
_IP_KEYS = ("type", "address", "interface", "broadcast", "label", "arp_count", "arp_interval",
            "arp_repeat_delay", "arp_repeat_count", "arp_refresh", "timeout")
_EXEC_KEYS = ("type", "start", "stop", "status", "timeout", "monitor")
_RESOURCE_KEYS: dict[str, tuple[str, ...]] = {
    "exec": _EXEC_KEYS, "ip": (*_IP_KEYS, "monitor"),
    "ocf": ("type", "agent", "id", "params", "timeout", "monitor"),
    "lsb": ("type", "name", "timeout", "monitor"),
    "systemd": ("type", "unit", "timeout", "monitor"),
    "heartbeat": ("type", "script", "args", "timeout", "monitor"),
    "filesystem": ("type", "device", "mountpoint", "fstype", "options", "timeout",
                   "kill_grace", "monitor"),
}
_OCF_AGENT = re.compile(r"(?:ocf:)?([A-Za-z0-9_.-]+):([A-Za-z0-9_.-]+)")
_SCRIPT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]*")
_UNIT = re.compile(r"[A-Za-z0-9:_.@\\-]+\.(service|socket|mount|target|timer|path)")


def load(path: str | os.PathLike[str]) -> model.Cluster:
    """Read and parse the file at `path`; an unreadable file is a ConfigError (key `<file>`),
    and so is one that is not a regular file or is larger than MAX_CONFIG_FILE (files.py). A
    UTF-8 byte-order mark at the start is dropped."""
    source = os.fspath(path)
    try:
        data = read_file(source, MAX_CONFIG_FILE, "a configuration file").data
    except FileRefused as e:
        raise ConfigError(ConfigProblem(source, None, "<file>", e.reason)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(
            ConfigProblem(source, line, "<syntax>", f"not UTF-8 (byte {e.start} of the file)")
        ) from None
    return parse(text, source)


def parse(text: str, source: str = "<memory>") -> model.Cluster:
    """Parse and validate TOML `text`; `source` names it in problems and in `Cluster.source`."""
    try:
        doc = tomllib.loads(text)
    except ValueError as e:  # TOMLDecodeError, or int() refusing a 5000-digit number
        raise ConfigError(_syntax_problem(source, text, e)) from None
    except RecursionError:
        raise ConfigError(ConfigProblem(source, None, "<syntax>", "nested too deeply")) from None
    checker = _Checker(source, locate_keys(text))
    cluster = checker.cluster(doc)
    if checker.problems or cluster is None:
        assert checker.problems, "a part was refused without saying why"
        problems = sorted(checker.problems, key=lambda p: p.line or 0)
        raise ConfigError(problems)
    return cluster


def _syntax_problem(source: str, text: str, e: ValueError) -> ConfigProblem:
    message = str(e)
    at = _SYNTAX_AT.search(message)
    if at is not None:
        return ConfigProblem(source, int(at.group(1)), "<syntax>",
                             f"{message[: at.start()]} (column {at.group(2)})")
    if isinstance(e, tomllib.TOMLDecodeError) and "end of document" in message:
        return ConfigProblem(source, text.rstrip().count("\n") + 1, "<syntax>", message)
    return ConfigProblem(source, None, "<syntax>", message)


# --- what values mean ----------------------------------------------------------------------


def _found(v: object) -> str:
    if isinstance(v, bool):
        kind = "a boolean"
    elif isinstance(v, int):
        kind = "an integer"
    elif isinstance(v, float):
        kind = "a float"
    elif isinstance(v, str):
        kind = "a string"
    elif isinstance(v, dict):
        return "a table"
    elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
        return "an array of tables"
    elif isinstance(v, list):
        kind = "an array"
    elif isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        kind = "a date/time"
    else:
        kind = type(v).__name__
    shown = repr(v)
    return f"{kind} ({shown if len(shown) <= 40 else shown[:37] + '...'})"


def _as_str(v: object) -> str:
    if not isinstance(v, str):
        raise ValueError(f"expected a string, found {_found(v)}")
    if "\0" in v:
        raise ValueError("must not contain a NUL character")
    return v


def _as_nonempty(v: object) -> str:
    s = _as_str(v)
    if not s.strip():
        raise ValueError("must not be empty")
    return s


def _as_cluster_name(v: object) -> str:
    s = _as_nonempty(v)
    size = len(s.encode())
    if size > _MAX_CLUSTER_NAME:
        shown = repr(s if len(s) <= 24 else s[:21] + "...")
        raise ValueError(f"{shown} is {size} bytes long (UTF-8); every heartbeat carries the "
                         f"cluster name, in at most {_MAX_CLUSTER_NAME} bytes")
    return s


def _as_name(v: object) -> str:
    s = _as_str(v)
    if not _NAME.fullmatch(s):
        raise ValueError(f"{s!r} is not a valid name: 1-63 characters of letters, digits, "
                         "'_', '.' and '-', starting with a letter or digit")
    return s


def _as_fence_agent(v: object) -> str:
    s = _as_nonempty(v)
    if s in ("manual", "external", "disk") or re.fullmatch(r"(/[^\0]+/)?fence_[A-Za-z0-9_]+", s):
        return s
    raise ValueError(f"agent must be \"manual\", \"external\", \"disk\" or a fence_* program "
                     f"of fence-agents (such as \"fence_ipmilan\"), not {s!r}")


def _as_fence_action(v: object) -> Literal["off", "reboot"]:
    if v == "off":
        return "off"
    if v == "reboot":
        return "reboot"
    raise ValueError(f"action must be \"off\" or \"reboot\", not {v!r}")


def _as_on_failure(v: object) -> Literal["block", "takeover"]:
    if v == "block":
        return "block"
    if v == "takeover":
        return "takeover"
    raise ValueError(f"on_failure must be \"block\" or \"takeover\", not {v!r}")


def _as_params(v: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(v, dict):
        raise ValueError(f"expected a table of key = \"value\", found {_found(v)}")
    out = []
    for key, value in v.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError(f"{key}: expected a string or number, found {_found(value)}")
        text = str(value)
        if "\n" in text or "\0" in text or "\n" in key or "=" in key:
            raise ValueError(f"{key}: no newline, NUL or '=' allowed (sent as key=value lines)")
        out.append((key, text))
    return tuple(out)


def _as_node_params(v: object) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    if not isinstance(v, dict):
        raise ValueError(f"expected a table of node = {{ key = \"value\" }}, found {_found(v)}")
    return tuple((node, _as_params(params)) for node, params in v.items())


def _as_watchdog_timeout(v: object) -> int:
    """Linux watchdogs count whole seconds."""
    seconds = _as_duration(v)
    if seconds < 1 or seconds != int(seconds):
        raise ValueError(f"a watchdog counts whole seconds (at least 1s), not {v!r}")
    return int(seconds)


def _as_probe_wait(v: object) -> float:
    """How long to listen for another holder of an address before taking it: "0s" (never
    look) or 1ms to 1s; every failover from a silent peer waits this long."""
    seconds = _as_duration(v)
    if seconds and not 0.001 <= seconds <= 1.0:
        raise ValueError(f"{v!r}: expected \"0s\" (never look) or 1ms to 1s")
    return seconds


def _as_path(v: object) -> Path:
    return Path(_as_nonempty(v))


def _as_bool(v: object) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, found {_found(v)}")
    return v


def _int_in(lo: int, hi: int) -> Callable[[object], int]:
    def conv(v: object) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"expected an integer from {lo} to {hi}, found {_found(v)}")
        if not lo <= v <= hi:
            raise ValueError(f"{v} is out of range; expected {lo} to {hi}")
        return v
    return conv


def _as_duration(v: object) -> float:
    if not isinstance(v, (str, int, float)):  # bool is an int: parse_duration refuses it
        raise ValueError(f'expected a duration such as "200ms" or "1s", found {_found(v)}')
    seconds = parse_duration(v)
    if seconds > _MAX_DURATION:
        raise ValueError(f"{v!r} is longer than the {_MAX_DURATION // 3600:g}h maximum")
    return seconds


def _as_timeout(v: object) -> float:
    seconds = _as_duration(v)
    if seconds <= 0:
        raise ValueError("a timeout must be longer than 0s")
    return seconds


def _as_ifname(v: object) -> str:
    s = _as_nonempty(v)
    if len(s) > 15 or s in (".", "..") or any(c in "/:" or c.isspace() for c in s):
        raise ValueError(f"{s!r} is not a Linux interface name (at most 15 characters, "
                         "no '/', ':' or spaces)")
    return s


def _as_address(v: object) -> model.IPAddress:
    s = _as_str(v)
    if "/" in s:
        raise ValueError(f"{s!r}: a node address takes no prefix length")
    addr = _ip(s)
    if addr.is_multicast or addr.is_unspecified:
        raise ValueError(f"{s!r} is not a unicast address")
    return addr


def _as_addresses(v: object) -> tuple[model.IPAddress, ...]:
    if isinstance(v, str):
        return (_as_address(v),)
    if not isinstance(v, list):
        raise ValueError(f"expected an address or a list of addresses, found {_found(v)}")
    return tuple(_as_address(x) for x in v)


def _as_ipv4_addresses(v: object) -> tuple[model.IPAddress, ...]:
    addresses = _as_addresses(v)
    for a in addresses:
        if a.version != 4:
            raise ValueError(f"ping nodes are IPv4 for now, not {a}")
    return addresses


def _as_mcast_group(v: object) -> model.IPAddress:
    addr = _ip(_as_str(v))
    if not addr.is_multicast:
        raise ValueError(f"{addr} is not a multicast address")
    return addr


def _ip(s: str) -> model.IPAddress:
    try:
        return ipaddress.ip_address(s)
    except ValueError:
        raise ValueError(f"{s!r} is not an IPv4 or IPv6 address") from None


def _as_interface(v: object) -> tuple[model.IPInterface, bool]:
    """An address with its prefix length, or without one: found at start from the connected
    route that contains it (a host address here, and False)."""
    s = _as_str(v)
    try:
        iface = ipaddress.ip_interface(s)
    except ValueError:
        raise ValueError(f"{s!r} is not an address (with a prefix length, such as "
                         "\"192.168.10.200/24\", or without)") from None
    if iface.ip.is_multicast or iface.ip.is_unspecified:
        raise ValueError(f"{s!r} is not a unicast address")
    return iface, "/" in s


def _as_argv(v: object) -> tuple[str, ...]:
    if isinstance(v, str):
        raise ValueError('expected an argv list such as ["/usr/local/bin/web", "start"], found '
                         f"a string ({v[:40]!r}); argv lists are required, never a shell string")
    if not isinstance(v, list):
        raise ValueError(f"expected an argv list of strings, found {_found(v)}")
    if not v:
        raise ValueError("the argv list is empty; it needs at least the program's absolute path")
    for n, arg in enumerate(v):
        if not isinstance(arg, str) or not arg or "\0" in arg:
            raise ValueError(f"argv[{n}] must be a non-empty string, found {_found(arg)}")
    if not v[0].startswith("/"):
        raise ValueError(f"argv[0] {v[0]!r} must be an absolute path")
    return tuple(v)


def _mode(v: object) -> str:
    if isinstance(v, str) and v in _LINK_MODE_KEYS:
        return v
    raise ValueError(f'expected "mcast", "bcast", "ucast", "disk" or "serial", found {_found(v)}')


def _as_device(v: object) -> Path:
    s = _as_nonempty(v)
    if not s.startswith("/") or "\0" in s:
        raise ValueError(f"{s!r} must be an absolute path (a device such as /dev/ttyS0 or "
                         f"/dev/sdb1, or a file)")
    return Path(s)


def _as_devices(v: object) -> tuple[Path, tuple[tuple[str, Path], ...]]:
    """One path for every node, or a table of them by node name (the first is the default,
    for messages only: every node must be listed)."""
    if isinstance(v, dict):
        if not v:
            raise ValueError("the table of devices by node is empty")
        pairs = tuple((_as_name(k), _as_device(d)) for k, d in v.items())
        return pairs[0][1], pairs
    return _as_device(v), ()


def _as_baud(v: object) -> int:
    if type(v) is not int or v not in model.SERIAL_BAUDS:
        raise ValueError(f"baud must be one of {', '.join(map(str, model.SERIAL_BAUDS))}, "
                         f"found {_found(v)}")
    return v


def _as_listen(v: object) -> tuple[str, int]:
    s = _as_nonempty(v)
    host, sep, port = s.rpartition(":")
    host = host.strip("[]")
    try:
        if not sep or not host:
            raise ValueError
        ipaddress.ip_address(host)
        n = int(port)
        if not 1 <= n <= 65535:
            raise ValueError
    except ValueError:
        raise ValueError(f'expected "ADDRESS:PORT" such as "127.0.0.1:9694" or "[::1]:9694", '
                         f"found {s!r}") from None
    return host, n


def _as_programs(v: object) -> tuple[Path, ...]:
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or not items:
        raise ValueError(f"expected a program's absolute path or a list of them, found "
                         f"{_found(v)}")
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"expected an absolute path, found {_found(item)}")
    return tuple(_as_abs_path(item) for item in items)


def _as_abs_path(v: object) -> Path:
    s = _as_nonempty(v)
    if not s.startswith("/") or "\0" in s:
        raise ValueError(f"expected an absolute path, found {s!r}")
    return Path(s)


def _as_broadcast(v: object) -> ipaddress.IPv4Address:
    addr = _as_address(v)
    if not isinstance(addr, ipaddress.IPv4Address):
        raise ValueError(f"{addr} is not an IPv4 address (IPv6 has no broadcast)")
    return addr


def _as_ipv4(v: object) -> model.IPAddress:
    addr = _as_address(v)
    if addr.version != 4:
        raise ValueError(f"the witness is reached over IPv4 for now, not {addr}")
    return addr


class _Checker:
    """Walks the parsed document, collecting every problem instead of stopping at the first.

    Each part returns its model value or None; a None comes with at least one problem. An
    invalid optional value is reported and replaced by its default, so that checks of the
    later parts still run.
    """

    def __init__(self, source: str, lines: dict[KeyPath, int]) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[ConfigProblem] = []
        self.node_names: list[str] | None = []  # None when a node's name is unknown
        self.heartbeat_addresses: dict[model.IPAddress, str] = {}

    def report(self, path: KeyPath, message: str) -> None:
        self.problems.append(ConfigProblem(self.source, self._line(path), fmt_key(path), message))

    def _line(self, path: KeyPath) -> int | None:
        """The line of `path`, else of the nearest enclosing key or header that has one."""
        for n in range(len(path), 0, -1):
            line = self.lines.get(path[:n])
            if line is not None:
                return line
        return None

    def field(self, table: Table, path: KeyPath, key: str, conv: Callable[[object], _T],
              required: bool = False) -> _T | None:
        if key not in table:
            if required:
                self.report((*path, key), "required key is missing")
            return None
        try:
            return conv(table[key])
        except ValueError as e:
            self.report((*path, key), str(e))
            return None

    def unknown(self, table: Table, path: KeyPath, valid: tuple[str, ...], where: str) -> None:
        for key in table:
            if key not in valid:
                self.report((*path, key), f"unknown key {key!r} in {where}; valid keys: "
                                          f"{', '.join(valid)}")

    def optional_table(self, parent: Table, path: KeyPath, valid: tuple[str, ...],
                       header: str) -> Table | None:
        """The table at path[-1] of `parent` with its keys checked; None when absent or not a
        table (that reported)."""
        t = parent.get(str(path[-1]))
        if t is None:
            return None
        if not isinstance(t, dict):
            self.report(path, f"expected the {header} table, found {_found(t)}")
            return None
        self.unknown(t, path, valid, header)
        return t

    def tables(self, doc: Table, key: str, header: str) -> list[tuple[KeyPath, Table]]:
        value = doc.get(key, [])
        if not isinstance(value, list):
            self.report((key,), f"expected {header} entries (an array of tables), "
                                f"found {_found(value)}")
            return []
        out: list[tuple[KeyPath, Table]] = []
        for n, item in enumerate(value):
            if isinstance(item, dict):
                out.append(((key, n), item))
            else:
                self.report((key, n), f"expected a table, found {_found(item)}")
        return out

    # --- the parts ---

    def cluster(self, doc: Table) -> model.Cluster | None:
        self.unknown(doc, (), _TOP_KEYS, "the top level")
        c = doc.get("cluster")
        if not isinstance(c, dict):
            self.report(("cluster",), "missing [cluster] table (it needs name and key_file)"
                        if c is None else f"expected the [cluster] table, found {_found(c)}")
            c = {}
        p: KeyPath = ("cluster",)
        self.unknown(c, p, _CLUSTER_KEYS, "[cluster]")
        required = "cluster" in doc  # else "missing [cluster]" said it all
        name = self.field(c, p, "name", _as_cluster_name, required=required)
        key_file = self.field(c, p, "key_file", _as_path, required=required)
        timings = self.timings(c, p)
        auto_failback = self.field(c, p, "auto_failback", _as_bool)
        port = self.field(c, p, "port", _int_in(1, 65535))
        realtime = self.field(c, p, "realtime", _as_bool)
        log_file = self.field(c, p, "log_file", _as_path)
        watchdog = self.field(c, p, "watchdog", _as_path)
        watchdog_timeout = self.field(c, p, "watchdog_timeout", _as_watchdog_timeout)
        ping = self.field(c, p, "ping", _as_ipv4_addresses)
        ping_interval = self.field(c, p, "ping_interval", _as_timeout)
        deadping = self.field(c, p, "deadping", _as_timeout)
        address_probe = self.field(c, p, "address_probe", _as_probe_wait)
        ping_interval = ping_interval or 1.0
        deadping = deadping or 3.0
        if deadping < 2 * ping_interval:
            self.report((*p, "deadping"), f"{model.fmt_duration(deadping)} must be at least "
                                          f"twice ping_interval, or one lost reply marks a "
                                          f"ping node unreachable")
        nodes = self.nodes(doc)
        links = self.links(doc)
        if nodes is not None and not links and not any(n.addresses for n in nodes):
            self.report(("node",), "no heartbeat link: give the nodes an address or add a [[link]]")
        groups = self.groups(doc)
        fencing = self.fencing(doc, nodes)
        witness = self.witness(doc, timings)
        respawn = self.respawn(doc)
        api = self.api(doc)
        notify = self.notify(doc)
        if fencing is not None and fencing.agent == "disk" and \
                not any(isinstance(l, model.DiskLink) for l in links):
            self.report(("fencing", "agent"), "agent = \"disk\" writes a poison pill through "
                                              "the disk heartbeat: add a [[link]] with mode = "
                                              "\"disk\"")
        if witness is not None and witness.name in (self.node_names or ()):
            self.report(("witness", "name"), f"{witness.name!r} is also a node's name")
        if name is None or key_file is None or nodes is None or groups is None:
            return None
        return model.Cluster(
            name=name, key_file=key_file, nodes=nodes, groups=groups, timings=timings,
            auto_failback=True if auto_failback is None else auto_failback,
            port=port or 694, links=links, realtime=True if realtime is None else realtime,
            log_file=log_file, watchdog=watchdog, watchdog_timeout=watchdog_timeout,
            fencing=fencing, witness=witness, respawn=respawn, api=api, notify=notify,
            ping=ping or (), ping_interval=ping_interval, deadping=deadping,
            address_probe=0.01 if address_probe is None else address_probe,
            source=self.source,
        )

    def fencing(self, doc: Table, nodes: tuple[model.Node, ...] | None) -> model.Fencing | None:
        p: KeyPath = ("fencing",)
        f = self.optional_table(doc, p, _FENCING_KEYS, "[fencing]")
        if f is None:
            return None
        agent = self.field(f, p, "agent", _as_fence_agent, required=True)
        action = self.field(f, p, "action", _as_fence_action)
        command = self.field(f, p, "command", _as_argv)
        params = self.field(f, p, "params", _as_params)
        per_node = self.field(f, p, "nodes", _as_node_params)
        timeout = self.field(f, p, "timeout", _as_timeout)
        retry = self.field(f, p, "retry_interval", _as_timeout)
        on_failure = self.field(f, p, "on_failure", _as_on_failure)
        delay = self.field(f, p, "delay", _as_duration)
        monitor_interval = self.field(f, p, "monitor_interval", _as_duration)
        if monitor_interval and agent in ("manual", "external", "disk"):
            self.report((*p, "monitor_interval"), "only fence_* agents have a monitor action")
        if agent == "external" and not command:
            self.report((*p, "command"), "an external fence agent needs command = [argv...]")
        if agent is not None and agent != "external" and command:
            self.report((*p, "command"), "command is for agent = \"external\" only")
        names = {n.name for n in nodes or ()}
        for node, _ in per_node or ():
            if nodes is not None and node not in names:
                self.report((*p, "nodes", node), f"no node named {node!r}")
        if agent is None:
            return None
        return model.Fencing(agent=agent, action=action or "reboot", command=command or (),
                             params=params or (), node_params=per_node or (),
                             timeout=timeout or 30.0, retry_interval=retry or 5.0,
                             on_failure=on_failure or "block",
                             delay=(0.0 if agent == "disk" else 2.0) if delay is None
                             else delay,
                             monitor_interval=60.0 if monitor_interval is None
                             else monitor_interval)

    def respawn(self, doc: Table) -> tuple[model.Respawn, ...]:
        """[[respawn]]: programs kept running beside the daemon (Heartbeat's respawn)."""
        out = []
        for p, t in self.tables(doc, "respawn", "[[respawn]]"):
            self.unknown(t, p, _RESPAWN_KEYS, "[[respawn]]")
            user = self.field(t, p, "user", _as_name, required=True)
            argv = self.field(t, p, "argv", _as_argv, required=True)
            if user is not None and argv is not None:
                out.append(model.Respawn(user, argv))
        return tuple(out)

    def witness(self, doc: Table, timings: model.Timings) -> model.Witness | None:
        p: KeyPath = ("witness",)
        w = self.optional_table(doc, p, _WITNESS_KEYS, "[witness]")
        if w is None:
            return None
        address = self.field(w, p, "address", _as_ipv4, required=True)
        port = self.field(w, p, "port", _int_in(1, 65535))
        lease = self.field(w, p, "lease", _as_timeout)
        name = self.field(w, p, "name", _as_name)
        if lease is not None and lease < 4 * timings.keepalive:
            self.report((*p, "lease"), f"{model.fmt_duration(lease)} must be at least 4 x "
                                       f"keepalive: nodes hold a lease for half of it and "
                                       f"renew it every keepalive, so half of it must "
                                       f"survive a lost reply")
        if address is None:
            return None
        return model.Witness(address=address, port=port or 6940, lease=lease,
                             name=name or "witness")

    def api(self, doc: Table) -> model.Api | None:
        p: KeyPath = ("api",)
        a = self.optional_table(doc, p, _API_KEYS, "[api]")
        if a is None:
            return None
        listen = self.field(a, p, "listen", _as_listen, required=True)
        token = self.field(a, p, "token_file", _as_abs_path)
        cert = self.field(a, p, "cert_file", _as_abs_path)
        key = self.field(a, p, "key_file", _as_abs_path)
        if (cert is None) != (key is None):
            self.report((*p, "cert_file" if cert is None else "key_file"),
                        "HTTPS needs both cert_file and key_file")
        if listen is None:
            return None
        return model.Api(host=listen[0], port=listen[1], token_file=token, cert_file=cert,
                         key_file=key)

    def notify(self, doc: Table) -> model.Notify | None:
        p: KeyPath = ("notify",)
        n = self.optional_table(doc, p, _NOTIFY_KEYS, "[notify]")
        if n is None:
            return None
        programs = self.field(n, p, "program", _as_programs)
        directory = self.field(n, p, "directory", _as_abs_path)
        timeout = self.field(n, p, "timeout", _as_timeout)
        if programs is None and directory is None and "program" not in n and \
                "directory" not in n:
            self.report(p, "[notify] needs program = \"/path\" (or a list) or directory = "
                           "\"/etc/vigil/notify.d\"")
        return model.Notify(programs=programs or (), directory=directory,
                            timeout=timeout or 10.0)

    def timings(self, c: Table, p: KeyPath) -> model.Timings:
        default = model.Timings()
        before = len(self.problems)
        values = {key: self.field(c, p, key, _as_duration)
                  for key in ("keepalive", "warntime", "deadtime", "initdead")}
        t = model.Timings(**{k: getattr(default, k) if v is None else v for k, v in values.items()})
        if len(self.problems) == before:
            for key, message in model.check_timings(t):
                self.report((*p, key), message)
        return t

    def nodes(self, doc: Table) -> tuple[model.Node, ...] | None:
        entries = self.tables(doc, "node", "[[node]]")
        if len(entries) != 2 and isinstance(doc.get("node", []), list):
            self.report(("node",),
                        f"vigil supports exactly two nodes for now; found {len(entries)}")
        before = len(self.problems)
        nodes: list[model.Node] = []
        where: dict[model.IPAddress, str] = {}
        for p, t in entries:
            self.unknown(t, p, _NODE_KEYS, "[[node]]")
            name = self.field(t, p, "name", _as_name, required=True)
            addresses = self.field(t, p, "address", _as_addresses) or ()
            if name is None:
                self.node_names = None
                continue
            if any(n.name == name for n in nodes):
                self.report((*p, "name"), f"node {name!r} is defined twice")
            for addr in addresses:
                if addr in where:
                    self.report((*p, "address"), f"{addr} is already used by {where[addr]}")
                where.setdefault(addr, f"node {name}")
                self.heartbeat_addresses.setdefault(addr, f"node {name} (heartbeat address)")
            if nodes and len(addresses) != len(nodes[0].addresses):
                self.report((*p, "address"), f"node {name} has {len(addresses)} address(es) but "
                            f"node {nodes[0].name} has {len(nodes[0].addresses)}; every node "
                            "needs one address per heartbeat link")
            elif nodes:
                for n, (mine, first) in enumerate(zip(addresses, nodes[0].addresses)):
                    if mine.version != first.version:
                        self.report((*p, "address"), f"heartbeat link {n}: {mine} is "
                                    f"IPv{mine.version} but node {nodes[0].name} uses "
                                    f"IPv{first.version} ({first})")
            nodes.append(model.Node(name=name, addresses=addresses))
            if self.node_names is not None:
                self.node_names.append(name)
        if len(self.problems) != before or len(entries) != 2:
            return None
        return tuple(nodes)

    def links(self, doc: Table) -> tuple[model.AnyLink, ...]:
        links: list[model.AnyLink] = []
        devices: set[Path] = set()
        for p, t in self.tables(doc, "link", "[[link]]"):
            self.unknown(t, p, _LINK_KEYS, "[[link]]")
            mode = self.field(t, p, "mode", _mode, required=True)
            if mode is None:
                continue
            for key in t:
                if key in _LINK_KEYS and key not in _LINK_MODE_KEYS[mode]:
                    self.report((*p, key), f"{key!r} is not a key of {mode} links (they take "
                                           f"{', '.join(_LINK_MODE_KEYS[mode][1:])})")
            if mode in ("disk", "serial"):
                found = self.field(t, p, "device", _as_devices, required=True)
                baud = self.field(t, p, "baud", _as_baud)
                if found is None:
                    continue
                device, per_node = found
                for node, _ in per_node:
                    if self.node_names is not None and node not in self.node_names:
                        self.report((*p, "device", node), f"no node named {node!r}")
                missing = [n for n in self.node_names or () if per_node and
                           n not in dict(per_node)]
                if missing:
                    self.report((*p, "device"), f"a table of devices must name every node; "
                                                f"missing: {', '.join(missing)}")
                for d in {device, *(d for _, d in per_node)}:
                    if d in devices:
                        self.report((*p, "device"), f"{d} is used by two links")
                    devices.add(d)
                links.append(model.DiskLink(device, per_node=per_node) if mode == "disk"
                             else model.SerialLink(device, baud or 19200, per_node=per_node))
                continue
            interface = self.field(t, p, "interface", _as_ifname, required=True)
            if mode == "ucast":  # Heartbeat's ucast lines for one interface (imports)
                peers = self.field(t, p, "peers", _as_addresses, required=True)
                if interface is not None and peers:
                    links.append(model.UcastLink(interface, peers))
                elif peers == ():
                    self.report((*p, "peers"), "a ucast link needs at least one address")
                continue
            group = ttl = None
            if mode == "mcast":
                group = self.field(t, p, "group", _as_mcast_group, required=True)
                ttl = self.field(t, p, "ttl", _int_in(1, 255))
            if interface is not None:
                links.append(model.ExtraLink(mode="mcast" if mode == "mcast" else "bcast", interface=interface, group=group,
                                             ttl=1 if ttl is None else ttl))
        return tuple(links)

    def groups(self, doc: Table) -> tuple[model.Group, ...] | None:
        before = len(self.problems)
        groups: list[model.Group] = []
        seen: set[str | None] = set()  # group names (a set: 10,000 groups must not take 10 s)
        floating = dict(self.heartbeat_addresses)  # address -> who uses it
        nodes = self.node_names
        for p, t in self.tables(doc, "group", "[[group]]"):
            self.unknown(t, p, _GROUP_KEYS, "[[group]]")
            name = self.field(t, p, "name", _as_name, required=True)
            home = self.field(t, p, "home", _as_name, required=True)
            if name is not None and name in seen:
                self.report((*p, "name"), f"group {name!r} is defined twice")
            seen.add(name)
            if home is not None and nodes is not None and home not in nodes:
                self.report((*p, "home"), f"{home!r} is not a node; nodes: "
                            f"{', '.join(nodes) or '(none)'}")
            resources: list[model.Resource] = []
            entries = self.tables(t, "resource", "[[group.resource]]")
            if t.get("resource", []) == []:
                self.report((*p, "resource"), "a group needs at least one [[group.resource]]")
            for n, rt in entries:
                r = self.resource(rt, (*p, *n), floating, f"{name}-{n[-1]}")
                if r is not None:
                    resources.append(r)
            ids = [r.id for r in resources if isinstance(r, model.OcfResource)]
            for rid in {i for i in ids if ids.count(i) > 1}:
                self.report((*p, "resource"), f"two OCF resources share the id {rid!r}")
            policy = self.group_policy(t, p)
            if name is not None and home is not None:
                groups.append(model.Group(name=name, home=home, resources=tuple(resources),
                                          policy=policy))
        return None if len(self.problems) != before else tuple(groups)

    def group_policy(self, t: Table, p: KeyPath) -> model.GroupPolicy:
        d = model.GroupPolicy()
        pp: KeyPath = (*p, "policy")
        pol = self.optional_table(t, pp, _POLICY_KEYS, "[group.policy]")
        if pol is None:
            return d
        threshold = self.field(pol, pp, "migration_threshold", _int_in(1, 1000))
        timeout = self.field(pol, pp, "failure_timeout", _as_duration)
        return model.GroupPolicy(_default(threshold, d.migration_threshold),
                                 _default(timeout, d.failure_timeout))

    def resource(self, t: Table, p: KeyPath, floating: dict[model.IPAddress, str],
                 index: str = "r") -> model.Resource | None:
        kind = self.field(t, p, "type", _as_str, required=True)
        if kind is None:
            return None
        if kind not in _RESOURCE_KEYS:
            self.report((*p, "type"), f"unknown resource type {kind!r}; valid types: "
                        f"{', '.join(sorted(_RESOURCE_KEYS))}")
            return None
        self.unknown(t, p, _RESOURCE_KEYS[kind], f"a resource of type {kind!r}")
        timeout = self.field(t, p, "timeout", _as_timeout)
        monitor: model.Monitor | None = model.Monitor()
        if "monitor" in t:
            monitor = self.field(t, p, "monitor", _as_monitor)
        if kind == "exec":
            start = self.field(t, p, "start", _as_argv, required=True)
            stop = self.field(t, p, "stop", _as_argv, required=True)
            status = self.field(t, p, "status", _as_argv)
            if status is None and t.get("monitor") not in (None, False):
                self.report((*p, "monitor"), "an exec resource is monitored with its status "
                                             "command: add status = [argv...]")
            if start is None or stop is None:
                return None
            return model.ExecResource(start=start, stop=stop, status=status,
                                      timeout=timeout or 20.0,
                                      monitor=monitor if status is not None else None)
        if kind != "ip":
            return self.agent_resource(kind, t, p, timeout, monitor, index)
        written = self.field(t, p, "address", _as_interface, required=True)
        address, prefix_given = written if written is not None else (None, True)
        interface = self.field(t, p, "interface", _as_ifname)  # None: found at start
        broadcast = self.field(t, p, "broadcast", _as_broadcast)
        if broadcast is not None and address is not None and (
                address.version != 4 or (prefix_given and broadcast not in address.network)):
            self.report((*p, "broadcast"), f"{broadcast} is not a broadcast address of "
                        f"{address.with_prefixlen if prefix_given else address.ip}")
        label = self.field(t, p, "label", _as_nonempty)
        if label is not None and interface is None:
            self.report((*p, "label"), "a label needs the interface written down")
        if label is not None and interface is not None and (
                len(label) > 15 or not label.startswith(interface)):
            self.report((*p, "label"), f"{label!r} must be at most 15 characters and start with "
                        f"the interface name {interface!r}, e.g. \"{interface}:1\"")
        if address is not None:
            owner = floating.setdefault(address.ip, fmt_key(p))
            if owner != fmt_key(p):
                self.report((*p, "address"), f"{address.ip} is already used by {owner}")
        d = model.ArpSettings()
        counts = _int_in(0, 100)
        arp = model.ArpSettings(
            count=_default(self.field(t, p, "arp_count", counts), d.count),
            interval=_default(self.field(t, p, "arp_interval", _as_duration), d.interval),
            repeat_delay=_default(self.field(t, p, "arp_repeat_delay", _as_duration),
                                  d.repeat_delay),
            repeat_count=_default(self.field(t, p, "arp_repeat_count", counts), d.repeat_count),
            refresh=_default(self.field(t, p, "arp_refresh", _as_duration), d.refresh),
        )
        if address is None:
            return None
        return model.IpResource(address=address, interface=interface, label=label, arp=arp,
                                timeout=timeout or 5.0, monitor=monitor,
                                prefix_given=prefix_given, broadcast=broadcast)

    def agent_resource(self, kind: str, t: Table, p: KeyPath, timeout: float | None,
                       monitor: model.Monitor | None, index: str) -> model.Resource | None:
        """ocf, lsb, systemd, heartbeat and filesystem resources."""
        if kind == "ocf":
            agent = self.field(t, p, "agent", _as_ocf_agent, required=True)
            rid = self.field(t, p, "id", _as_name)
            params = self.field(t, p, "params", _as_ocf_params)
            if agent is None:
                return None
            return model.OcfResource(agent, rid or f"{index}-{agent.split(':')[1].lower()}",
                                     params or (), timeout, monitor)
        if kind == "lsb":
            script = self.field(t, p, "name", _as_script, required=True)
            return None if script is None else model.LsbResource(script, timeout or 20.0,
                                                                  monitor)
        if kind == "systemd":
            unit = self.field(t, p, "unit", _as_unit, required=True)
            return None if unit is None else model.SystemdResource(unit, timeout or 100.0,
                                                                   monitor)
        if kind == "heartbeat":
            script = self.field(t, p, "script", _as_nonempty, required=True)
            args = self.field(t, p, "args", _as_args) or ()
            if script is None:
                return None
            name, *inline = script.split("::")  # "IPaddr::10.0.0.1/24/eth0" as haresources
            try:
                _as_script(name)
            except ValueError as e:
                self.report((*p, "script"), str(e))
                return None
            return model.HeartbeatResource(name, (*inline, *args), timeout or 20.0, monitor)
        device = self.field(t, p, "device", _as_device, required=True)
        mountpoint = self.field(t, p, "mountpoint", _as_device, required=True)
        fstype = self.field(t, p, "fstype", _as_fstype, required=True)
        options = self.field(t, p, "options", _as_options)
        grace = self.field(t, p, "kill_grace", _as_timeout)
        if mountpoint is not None and mountpoint == Path("/"):
            self.report((*p, "mountpoint"), "refusing to manage the root filesystem")
        if device is None or mountpoint is None or fstype is None:
            return None
        return model.FilesystemResource(device, mountpoint, fstype, options or "",
                                        timeout or 60.0, 5.0 if grace is None else grace,
                                        monitor)


def _as_monitor(v: object) -> model.Monitor | None:
    """monitor = { interval = "10s", timeout = "20s" }, true (the defaults) or false (none)."""
    if v is False:
        return None
    if v is True:
        return model.Monitor()
    if not isinstance(v, dict):
        raise ValueError(f"expected {{ interval = \"10s\", timeout = \"20s\" }}, true or false, "
                         f"found {_found(v)}")
    bad = [k for k in v if k not in _MONITOR_KEYS]
    if bad:
        raise ValueError(f"unknown key {bad[0]!r} in monitor; valid keys: interval, timeout")
    d = model.Monitor()
    interval = _as_timeout(v["interval"]) if "interval" in v else d.interval
    timeout = _as_timeout(v["timeout"]) if "timeout" in v else None
    return model.Monitor(interval, timeout)


def _as_ocf_agent(v: object) -> str:
    s = _as_nonempty(v)
    m = _OCF_AGENT.fullmatch(s)
    if m is None:
        raise ValueError(f"{s!r} is not an OCF agent name such as \"heartbeat:IPaddr2\" "
                         f"(provider:type)")
    return f"{m.group(1)}:{m.group(2)}"


def _as_ocf_params(v: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(v, dict):
        raise ValueError(f"expected a table of parameters, found {_found(v)}")
    out = []
    for k, x in v.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
            raise ValueError(f"parameter name {k!r} cannot be an environment variable name")
        if isinstance(x, bool):
            x = "true" if x else "false"
        if not isinstance(x, (str, int, float)) or "\0" in str(x):
            raise ValueError(f"parameter {k}: expected a string or number, found {_found(x)}")
        out.append((k, str(x)))
    return tuple(out)


def _as_script(v: object) -> str:
    s = _as_nonempty(v)
    if not _SCRIPT.fullmatch(s):
        raise ValueError(f"{s!r} is not a script name (letters, digits, '_', '.', '-', no '/')")
    return s


def _as_unit(v: object) -> str:
    s = _as_nonempty(v)
    if not _UNIT.fullmatch(s):
        raise ValueError(f"{s!r} is not a systemd unit name such as \"tomcat.service\"")
    return s


def _as_args(v: object) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) and x and "\0" not in x
                                          for x in v):
        raise ValueError(f"expected a list of non-empty strings, found {_found(v)}")
    return tuple(v)


def _as_fstype(v: object) -> str:
    s = _as_nonempty(v)
    if not re.fullmatch(r"[a-z0-9._]+", s):
        raise ValueError(f"{s!r} is not a filesystem type such as \"ext4\"")
    return s


def _as_options(v: object) -> str:
    s = _as_str(v)
    if any(c.isspace() for c in s) or "\0" in s:
        raise ValueError(f"{s!r}: mount options are one comma-separated word, e.g. "
                         f"\"noatime,nodev\"")
    return s


def _default(value: _T | None, default: _T) -> _T:
    return default if value is None else value
