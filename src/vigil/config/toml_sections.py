"""The optional sections of vigil.toml: [fencing] (the agent, its parameters, per-node
parameters and what to do when it fails), [witness], [[respawn]], [api] and [notify], and the
values only they take.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from vigil import model
from vigil.config.locate import KeyPath
from vigil.config.toml_checker import Checker, Table
from vigil.config.toml_values import (as_abs_path, as_address, as_argv, as_duration,
                                       as_name, as_nonempty, as_timeout, describe, int_in)

_API_KEYS = ("listen", "token_file", "cert_file", "key_file")
_NOTIFY_KEYS = ("program", "directory", "timeout")
_RESPAWN_KEYS = ("user", "argv")
_WITNESS_KEYS = ("address", "port", "lease", "name")
_FENCING_KEYS = ("agent", "action", "command", "params", "nodes", "timeout", "retry_interval",
                 "on_failure", "delay", "monitor_interval")


class SectionReader(Checker):
    """[fencing], [[respawn]], [witness], [api] and [notify]."""

    def fencing(self, doc: Table, nodes: tuple[model.Node, ...] | None) -> model.Fencing | None:
        p: KeyPath = ("fencing",)
        f = self.optional_table(doc, p, _FENCING_KEYS, "[fencing]")
        if f is None:
            return None
        agent = self.field(f, p, "agent", _as_fence_agent, required=True)
        action = self.field(f, p, "action", _as_fence_action)
        command = self.field(f, p, "command", as_argv)
        params = self.field(f, p, "params", _as_params)
        per_node = self.field(f, p, "nodes", _as_node_params)
        timeout = self.field(f, p, "timeout", as_timeout)
        retry = self.field(f, p, "retry_interval", as_timeout)
        on_failure = self.field(f, p, "on_failure", _as_on_failure)
        delay = self.field(f, p, "delay", as_duration)
        monitor_interval = self.field(f, p, "monitor_interval", as_duration)
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
            user = self.field(t, p, "user", as_name, required=True)
            argv = self.field(t, p, "argv", as_argv, required=True)
            if user is not None and argv is not None:
                out.append(model.Respawn(user, argv))
        return tuple(out)

    def witness(self, doc: Table, timings: model.Timings) -> model.Witness | None:
        p: KeyPath = ("witness",)
        w = self.optional_table(doc, p, _WITNESS_KEYS, "[witness]")
        if w is None:
            return None
        address = self.field(w, p, "address", _as_ipv4, required=True)
        port = self.field(w, p, "port", int_in(1, 65535))
        lease = self.field(w, p, "lease", as_timeout)
        name = self.field(w, p, "name", as_name)
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
        token = self.field(a, p, "token_file", as_abs_path)
        cert = self.field(a, p, "cert_file", as_abs_path)
        key = self.field(a, p, "key_file", as_abs_path)
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
        directory = self.field(n, p, "directory", as_abs_path)
        timeout = self.field(n, p, "timeout", as_timeout)
        if programs is None and directory is None and "program" not in n and \
                "directory" not in n:
            self.report(p, "[notify] needs program = \"/path\" (or a list) or directory = "
                           "\"/etc/vigil/notify.d\"")
        return model.Notify(programs=programs or (), directory=directory,
                            timeout=timeout or 10.0)


def _as_fence_agent(v: object) -> str:
    s = as_nonempty(v)
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
        raise ValueError(f"expected a table of key = \"value\", found {describe(v)}")
    out = []
    for key, value in v.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError(f"{key}: expected a string or number, found {describe(value)}")
        text = str(value)
        if "\n" in text or "\0" in text or "\n" in key or "=" in key:
            raise ValueError(f"{key}: no newline, NUL or '=' allowed (sent as key=value lines)")
        out.append((key, text))
    return tuple(out)


def _as_node_params(v: object) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    if not isinstance(v, dict):
        raise ValueError(f"expected a table of node = {{ key = \"value\" }}, found {describe(v)}")
    return tuple((node, _as_params(params)) for node, params in v.items())


def _as_listen(v: object) -> tuple[str, int]:
    s = as_nonempty(v)
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
                         f"{describe(v)}")
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"expected an absolute path, found {describe(item)}")
    return tuple(as_abs_path(item) for item in items)


def _as_ipv4(v: object) -> model.IPAddress:
    addr = as_address(v)
    if addr.version != 4:
        raise ValueError(f"the witness is reached over IPv4 for now, not {addr}")
    return addr
