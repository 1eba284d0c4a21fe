"""The [[group.resource]] tables of vigil.toml, one kind per `type`: exec (argv lists), ip
(the floating address, its interface, label, broadcast and ARP settings), ocf, lsb, systemd,
heartbeat (resource scripts) and filesystem, each with its timeout and monitor, and the
values only resources take. postgresql is config/toml_replica.py's.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from vigil import model
from vigil.config.locate import KeyPath, fmt_key
from vigil.config.names import FSTYPE, MAX_INTERFACE_NAME, SCRIPT
from vigil.config.toml_checker import Table
from vigil.config.toml_replica import POSTGRESQL_KEYS, ReplicaReader
from vigil.config.toml_values import (as_address, as_argv, as_device, as_duration,
                                       as_ifname, as_name, as_nonempty, as_str, as_timeout,
                                       describe, int_in, or_default)

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
    "postgresql": POSTGRESQL_KEYS,
}
_OCF_AGENT = re.compile(r"(?:ocf:)?([A-Za-z0-9_.-]+):([A-Za-z0-9_.-]+)")
_UNIT = re.compile(r"[A-Za-z0-9:_.@\\-]+\.(service|socket|mount|target|timer|path)")


class ResourceReader(ReplicaReader):
    """A [[group.resource]] table, by its type."""

    def resource(self, t: Table, p: KeyPath, floating: dict[model.IPAddress, str],
                 index: str = "r") -> model.Resource | None:
        kind = self.field(t, p, "type", as_str, required=True)
        if kind is None:
            return None
        if kind not in _RESOURCE_KEYS:
            self.report((*p, "type"), f"unknown resource type {kind!r}; valid types: "
                        f"{', '.join(sorted(_RESOURCE_KEYS))}")
            return None
        self.unknown(t, p, _RESOURCE_KEYS[kind], f"a resource of type {kind!r}")
        timeout = self.field(t, p, "timeout", as_timeout)
        monitor: model.Monitor | None = model.Monitor()
        if "monitor" in t:
            monitor = self.field(t, p, "monitor", _as_monitor)
        if kind == "exec":
            start = self.field(t, p, "start", as_argv, required=True)
            stop = self.field(t, p, "stop", as_argv, required=True)
            status = self.field(t, p, "status", as_argv)
            if status is None and t.get("monitor") not in (None, False):
                self.report((*p, "monitor"), "an exec resource is monitored with its status "
                                             "command: add status = [argv...]")
            if start is None or stop is None:
                return None
            return model.ExecResource(start=start, stop=stop, status=status,
                                      timeout=timeout or 20.0,
                                      monitor=monitor if status is not None else None)
        if kind == "postgresql":
            return self.postgresql(t, p, timeout, monitor)
        if kind != "ip":
            return self.agent_resource(kind, t, p, timeout, monitor, index)
        written = self.field(t, p, "address", _as_interface, required=True)
        address, prefix_given = written if written is not None else (None, True)
        interface = self.field(t, p, "interface", as_ifname)  # None: found at start
        broadcast = self.field(t, p, "broadcast", _as_broadcast)
        if broadcast is not None and address is not None and (
                address.version != 4 or (prefix_given and broadcast not in address.network)):
            self.report((*p, "broadcast"), f"{broadcast} is not a broadcast address of "
                        f"{address.with_prefixlen if prefix_given else address.ip}")
        label = self.field(t, p, "label", as_nonempty)
        if label is not None and interface is None:
            self.report((*p, "label"), "a label needs the interface written down")
        if label is not None and interface is not None and (
                len(label) > MAX_INTERFACE_NAME or not label.startswith(interface)):
            self.report((*p, "label"), f"{label!r} must be at most 15 characters and start with "
                        f"the interface name {interface!r}, e.g. \"{interface}:1\"")
        if address is not None:
            owner = floating.setdefault(address.ip, fmt_key(p))
            if owner != fmt_key(p):
                self.report((*p, "address"), f"{address.ip} is already used by {owner}")
        d = model.ArpSettings()
        counts = int_in(0, 100)
        arp = model.ArpSettings(
            count=or_default(self.field(t, p, "arp_count", counts), d.count),
            interval=or_default(self.field(t, p, "arp_interval", as_duration), d.interval),
            repeat_delay=or_default(self.field(t, p, "arp_repeat_delay", as_duration),
                                    d.repeat_delay),
            repeat_count=or_default(self.field(t, p, "arp_repeat_count", counts), d.repeat_count),
            refresh=or_default(self.field(t, p, "arp_refresh", as_duration), d.refresh),
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
            rid = self.field(t, p, "id", as_name)
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
            script = self.field(t, p, "script", as_nonempty, required=True)
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
        device = self.field(t, p, "device", as_device, required=True)
        mountpoint = self.field(t, p, "mountpoint", as_device, required=True)
        fstype = self.field(t, p, "fstype", _as_fstype, required=True)
        options = self.field(t, p, "options", _as_options)
        grace = self.field(t, p, "kill_grace", as_timeout)
        if mountpoint is not None and mountpoint == Path("/"):
            self.report((*p, "mountpoint"), "refusing to manage the root filesystem")
        if device is None or mountpoint is None or fstype is None:
            return None
        return model.FilesystemResource(device, mountpoint, fstype, options or "",
                                        timeout or 60.0, 5.0 if grace is None else grace,
                                        monitor)


def _as_interface(v: object) -> tuple[model.IPInterface, bool]:
    """An address with its prefix length, or without one: found at start from the connected
    route that contains it (a host address here, and False)."""
    s = as_str(v)
    try:
        iface = ipaddress.ip_interface(s)
    except ValueError:
        raise ValueError(f"{s!r} is not an address (with a prefix length, such as "
                         "\"192.168.10.200/24\", or without)") from None
    if iface.ip.is_multicast or iface.ip.is_unspecified:
        raise ValueError(f"{s!r} is not a unicast address")
    return iface, "/" in s


def _as_broadcast(v: object) -> ipaddress.IPv4Address:
    addr = as_address(v)
    if not isinstance(addr, ipaddress.IPv4Address):
        raise ValueError(f"{addr} is not an IPv4 address (IPv6 has no broadcast)")
    return addr


def _as_monitor(v: object) -> model.Monitor | None:
    """monitor = { interval = "10s", timeout = "20s" }, true (the defaults) or false (none)."""
    if v is False:
        return None
    if v is True:
        return model.Monitor()
    if not isinstance(v, dict):
        raise ValueError(f"expected {{ interval = \"10s\", timeout = \"20s\" }}, true or false, "
                         f"found {describe(v)}")
    bad = [k for k in v if k not in _MONITOR_KEYS]
    if bad:
        raise ValueError(f"unknown key {bad[0]!r} in monitor; valid keys: interval, timeout")
    d = model.Monitor()
    interval = as_timeout(v["interval"]) if "interval" in v else d.interval
    timeout = as_timeout(v["timeout"]) if "timeout" in v else None
    return model.Monitor(interval, timeout)


def _as_ocf_agent(v: object) -> str:
    s = as_nonempty(v)
    m = _OCF_AGENT.fullmatch(s)
    if m is None:
        raise ValueError(f"{s!r} is not an OCF agent name such as \"heartbeat:IPaddr2\" "
                         f"(provider:type)")
    return f"{m.group(1)}:{m.group(2)}"


def _as_ocf_params(v: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(v, dict):
        raise ValueError(f"expected a table of parameters, found {describe(v)}")
    out = []
    for k, x in v.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
            raise ValueError(f"parameter name {k!r} cannot be an environment variable name")
        if isinstance(x, bool):
            x = "true" if x else "false"
        if not isinstance(x, (str, int, float)) or "\0" in str(x):
            raise ValueError(f"parameter {k}: expected a string or number, found {describe(x)}")
        out.append((k, str(x)))
    return tuple(out)


def _as_script(v: object) -> str:
    s = as_nonempty(v)
    if not SCRIPT.fullmatch(s):
        raise ValueError(f"{s!r} is not a script name (letters, digits, '_', '.', '-', no '/')")
    return s


def _as_unit(v: object) -> str:
    s = as_nonempty(v)
    if not _UNIT.fullmatch(s):
        raise ValueError(f"{s!r} is not a systemd unit name such as \"tomcat.service\"")
    return s


def _as_args(v: object) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) and x and "\0" not in x
                                          for x in v):
        raise ValueError(f"expected a list of non-empty strings, found {describe(v)}")
    return tuple(v)


def _as_fstype(v: object) -> str:
    s = as_nonempty(v)
    if not FSTYPE.fullmatch(s):
        raise ValueError(f"{s!r} is not a filesystem type such as \"ext4\"")
    return s


def _as_options(v: object) -> str:
    s = as_str(v)
    if any(c.isspace() for c in s) or "\0" in s:
        raise ValueError(f"{s!r}: mount options are one comma-separated word, e.g. "
                         f"\"noatime,nodev\"")
    return s
