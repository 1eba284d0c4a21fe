"""The `postgresql` resource of vigil.toml (replica/model.py's PostgresqlResource), the rules
of the promotable group that holds it, and its keys written back (export.py).

Apart from toml_resources.py because its values are PostgreSQL's: the names and sizes PgSpec
checks when a node builds its instance (replica/pgfacts.py, `SPEC_CHECKS`) are checked here
with the same patterns, at the key's line, so that check-config refuses what the first
promotion would. Sizes are PostgreSQL's, 1024-based: "512kB", "16MB", "1GB", "1TB".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from vigil import model
from vigil.config.locate import KeyPath, fmt_key
from vigil.config.toml_checker import Checker, Table
from vigil.config.toml_values import (as_abs_path, as_address, as_addresses, as_argv,
                                       describe, int_in, or_default)
from vigil.config.toml_write import str_, table
from vigil.replica.model import PostgresqlResource, slot_name
from vigil.replica.pgfacts import SPEC_CHECKS
from vigil.replica.promotion import Mode

__all__ = ["DEFAULT_MONITOR", "DEFAULT_TIMEOUT", "POSTGRESQL_KEYS", "ReplicaReader",
           "write_postgresql"]

POSTGRESQL_KEYS = ("type", "data_dir", "hosts", "bin_dir", "port", "user", "replication_user",
                   "password_file", "socket_dir", "log_file", "synchronous", "max_lag",
                   "wal_keep_size", "max_slot_wal_keep_size", "listen_addresses", "timeout",
                   "monitor",
                   "pre_promote")
_DEFAULT = PostgresqlResource(Path("/"))  # the model's defaults, for what a key leaves out
DEFAULT_MONITOR = _DEFAULT.monitor
DEFAULT_TIMEOUT = _DEFAULT.timeout
_SPEC = {name: (pattern, what) for name, pattern, what in SPEC_CHECKS}
_UNITS = {"kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
_MAX_BYTES = (1 << 63) - 1  # WAL positions are 64-bit
_MODES: dict[str, Mode] = {"on": "on", "off": "off", "strict": "strict"}


class ReplicaReader(Checker):
    """`type = "postgresql"` resources, and the promotable group rules (toml_groups.py)."""

    def postgresql(self, t: Table, p: KeyPath, timeout: float | None,
                   monitor: model.Monitor | None) -> PostgresqlResource | None:
        """The resource of table `t`; `timeout` and `monitor` as ResourceReader read them."""
        data_dir = self.field(t, p, "data_dir", _as_data_dir, required=True)
        hosts = self.hosts(t, p)
        d = _DEFAULT
        bin_dir = self.field(t, p, "bin_dir", as_abs_path)
        port = self.field(t, p, "port", int_in(1, 65535))
        user = self.field(t, p, "user", _as_user)
        replication_user = self.field(t, p, "replication_user",
                                      _spec_value("replication_user", "replicator"))
        password_file = self.field(t, p, "password_file", as_abs_path)
        socket_dir = self.field(t, p, "socket_dir", as_abs_path)
        log_file = self.field(t, p, "log_file", as_abs_path)
        synchronous = self.field(t, p, "synchronous", _as_synchronous)
        max_lag = self.field(t, p, "max_lag", _as_bytes)
        wal_keep_size = self.field(t, p, "wal_keep_size", _spec_value("wal_keep_size", "1GB"))
        slot_keep = self.field(t, p, "max_slot_wal_keep_size",
                               _spec_value("max_slot_wal_keep_size", "16GB"))
        pre_promote = self.field(t, p, "pre_promote", as_argv)
        listen = self.field(t, p, "listen_addresses", _spec_value("listen", "*"))
        raw = t.get("monitor", True)  # true, or no interval: the resource's own, not 10s
        if monitor is not None and (raw is True or isinstance(raw, dict) and "interval" not in raw):
            assert DEFAULT_MONITOR is not None
            monitor = replace(monitor, interval=DEFAULT_MONITOR.interval)
        if data_dir is None:
            return None
        return PostgresqlResource(
            data_dir=data_dir, hosts=hosts, bin_dir=or_default(bin_dir, d.bin_dir),
            port=or_default(port, d.port), user=or_default(user, d.user),
            replication_user=or_default(replication_user, d.replication_user),
            password_file=password_file, socket_dir=or_default(socket_dir, d.socket_dir),
            log_file=log_file, synchronous=or_default(synchronous, d.synchronous),
            max_lag=or_default(max_lag, d.max_lag),
            wal_keep_size=or_default(wal_keep_size, d.wal_keep_size),
            max_slot_wal_keep_size=or_default(slot_keep, d.max_slot_wal_keep_size),
            listen_addresses=or_default(listen, d.listen_addresses),
            timeout=or_default(timeout, d.timeout), monitor=monitor,
            pre_promote=pre_promote or ())

    def hosts(self, t: Table, p: KeyPath) -> tuple[tuple[str, model.IPAddress], ...]:
        """hosts = { n1 = "10.0.0.1", ... }: each node's own replication address, checked
        one by one so that a problem names the node's key."""
        v = t.get("hosts", {})
        hp: KeyPath = (*p, "hosts")
        if not isinstance(v, dict):
            self.report(hp, f"expected a table of node = address, such as {{ n1 = \"10.0.0.1\", "
                            f"n2 = \"10.0.0.2\" }}, found {describe(v)}")
            return ()
        out: dict[str, model.IPAddress] = {}
        names = self.node_names
        for node in v:
            addr = self.field(v, hp, node, _as_host)
            if names is not None and node not in names:
                self.report((*hp, node), f"{node!r} is not a node; nodes: "
                                         f"{', '.join(names) or '(none)'}")
            other = next((n for n, a in out.items() if a == addr), None)
            if other is not None:
                self.report((*hp, node), f"{addr} is already {other}'s address; each node "
                                         f"streams from the other's own address")
            if addr is not None:
                out[node] = addr
        return tuple(out.items())

    def replica_rules(self, p: KeyPath, entries: list[tuple[KeyPath, Table]],
                      resources: list[model.Resource], promotable: bool | None, doc: Table,
                      data_dirs: dict[Path, str]) -> None:
        """Group `p`'s rules: a postgresql resource needs a promotable group, a promotable
        group exactly one of them, each a data directory of its own (`data_dirs`, across
        groups: path -> who uses it) and an address on every node. `promotable` None: the
        key was refused (nothing more to say about it)."""
        paths = [(*p, *n) for n, rt in entries if rt.get("type") == "postgresql"]
        found = [r for r in resources if isinstance(r, PostgresqlResource)]
        if paths and promotable is False:
            self.report((*p, "promotable"), f"{fmt_key(paths[0])} is a postgresql resource: it "
                        f"runs on both nodes, primary on the group's owner and standby on the "
                        f"other; add promotable = true to the group")
        if promotable and not paths:
            self.report((*p, "promotable"), "a promotable group promotes its postgresql "
                        "resource on its owner, and this group has none: add a "
                        "[[group.resource]] with type = \"postgresql\", or remove promotable")
        for extra in paths[1:]:
            self.report((*extra, "type"), f"a promotable group holds one postgresql resource "
                        f"and {fmt_key(paths[0])} is one already: put each in a group of its own")
        if len(found) != len(paths):
            return  # one was refused, and said why; `found` no longer lines up with `paths`
        for path, r in zip(paths, found):
            owner = data_dirs.setdefault(r.data_dir, fmt_key(path))
            if owner != fmt_key(path):
                self.report((*path, "data_dir"), f"{r.data_dir} is already the data directory "
                            f"of {owner}; each postgresql resource needs its own")
        if len(found) == 1:
            self.replication_addresses(paths[0], found[0], doc)

    def replication_addresses(self, path: KeyPath, r: PostgresqlResource, doc: Table) -> None:
        """Every node needs an address of its own the other streams from (hosts, else its
        first heartbeat address), of one IP version (each pg_hba.conf admits the other's),
        and a replication slot of its own (slot_name keeps PgSpec's slot characters, so
        two names differing only in case, '.' or '-' would share one)."""
        names = self.node_names
        if names is None:
            return  # a node's name was refused
        heartbeat = _heartbeat_addresses(doc)  # [[node]] was checked by NodeReader
        hosts = dict(r.hosts)
        chosen: dict[str, model.IPAddress] = {}
        for n, own in r.hosts:
            other = next((m for m, a in heartbeat.items() if m != n and own in a), None)
            if other is not None:
                self.report((*path, "hosts", n), f"{own} is node {other}'s heartbeat address; "
                            f"give {n} an address of its own")
        for n in names:
            addr = hosts[n] if n in hosts else next(iter(heartbeat.get(n, ())), None)
            if addr is None:
                self.report((*path, "hosts"), f"node {n!r} has no address to replicate over: "
                            f"it is not in hosts and has no heartbeat address; add it, e.g. "
                            f"hosts = {{ {n} = \"10.0.0.1\" }}")
            elif not _SPEC["host"][0].fullmatch(str(addr)):
                self.report((*path, "hosts"), f"node {n!r}'s heartbeat address {addr} is not "
                            f"an address PostgreSQL listens on; give it one in hosts")
            else:
                chosen[n] = addr
        if len({a.version for a in chosen.values()}) > 1:
            said = ", ".join(f"{n} {a}" for n, a in chosen.items())
            self.report((*path, "hosts"), f"the nodes would replicate over IPv4 and IPv6 "
                        f"({said}); each admits only the other's address: use one IP version "
                        f"in hosts")
        slots: dict[str, str] = {}
        for n in names:
            slot = slot_name(n)
            other = slots.setdefault(slot, n)
            if other != n:
                self.report((*path, "type"), f"nodes {other!r} and {n!r} would share the "
                            f"replication slot {slot!r} (lower case, '_' for '.' and '-'): "
                            f"rename one")


def _heartbeat_addresses(doc: Table) -> dict[str, tuple[model.IPAddress, ...]]:
    """Each node's heartbeat addresses, from the [[node]] tables: the group reader has no
    model.Node, only the names (`Checker.node_names`)."""
    out: dict[str, tuple[model.IPAddress, ...]] = {}
    nodes = doc.get("node")
    for t in nodes if isinstance(nodes, list) else ():
        if isinstance(t, dict) and isinstance(t.get("name"), str):
            try:
                out[t["name"]] = as_addresses(t.get("address", []))
            except ValueError:
                pass  # reported by NodeReader
    return out


def _as_data_dir(v: object) -> Path:
    path = as_abs_path(v)
    if path == Path("/") or ".." in path.parts:
        raise ValueError(f"{str(path)!r} cannot be a data directory: write its absolute path "
                         f"without '..', such as \"/var/lib/postgresql/15/main\"")
    return path


def _as_host(v: object) -> model.IPAddress:
    """An address of this node's own, which the other node connects to."""
    addr = as_address(v)
    if addr.is_loopback:
        raise ValueError(f"{addr} is a loopback address: the other node streams from this "
                         f"one, so give the node's own address on the replication network")
    if not _SPEC["host"][0].fullmatch(str(addr)):
        raise ValueError(f"{addr} is not an address PostgreSQL listens on (no scope id)")
    return addr


def _spec_value(key: str, example: str) -> Callable[[object], str]:
    """A PgSpec value, checked with PgSpec's own pattern for `key`."""
    pattern, what = _SPEC[key]

    def conv(v: object) -> str:
        if not isinstance(v, str) or not pattern.fullmatch(v):
            raise ValueError(f"expected {what}, such as \"{example}\", found {describe(v)}")
        return v
    return conv


_as_os_user = _spec_value("user", "postgres")


def _as_user(v: object) -> str:
    user = _as_os_user(v)
    if user == "root":
        raise ValueError("PostgreSQL runs as its own user, never as root: use the owner of "
                         "data_dir, such as \"postgres\" (the default)")
    return user


def _as_synchronous(v: object) -> Mode:
    """The promotion policy's mode; true and false for "on" and "off"."""
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, str) and v in _MODES:
        return _MODES[v]
    raise ValueError(f"expected \"on\", \"off\" or \"strict\" (or true, false), found "
                     f"{describe(v)}")


def _as_bytes(v: object) -> int:
    """A number of bytes: an integer, or a size with its unit as wal_keep_size writes it."""
    if isinstance(v, int) and not isinstance(v, bool):
        size = v
    elif isinstance(v, str) and _SPEC["wal_keep_size"][0].fullmatch(v) and \
            v.rstrip("kMGTB") != v:
        digits = v.rstrip("kMGTB")
        size = int(digits) * _UNITS[v[len(digits):]]
    else:
        raise ValueError(f"expected bytes as an integer, or a size such as \"16MB\", "
                         f"\"1GB\" or \"512kB\", found {describe(v)}")
    if not 0 <= size <= _MAX_BYTES:
        raise ValueError(f"{v!r} is out of range; expected 0 to {_MAX_BYTES} bytes")
    return size


def _size(n: int) -> str:
    """The shortest exact size: "16MB" for 16 MiB, else the integer of bytes."""
    for unit, scale in sorted(_UNITS.items(), key=lambda u: -u[1]):
        if n and n % scale == 0 and n // scale < 10**9:
            return str_(f"{n // scale}{unit}")
    return str(n)


def write_postgresql(r: PostgresqlResource) -> list[tuple[str, str]]:
    """The keys of `r` that differ from what the reader defaults to (not timeout, monitor:
    export.py writes those for every resource)."""
    d = _DEFAULT
    out = [("data_dir", str_(str(r.data_dir)))]
    if r.hosts:
        out.append(("hosts", table((n, str_(str(a))) for n, a in r.hosts)))
    for key in ("bin_dir", "port", "user", "replication_user", "password_file", "socket_dir",
                "log_file", "synchronous", "wal_keep_size", "max_slot_wal_keep_size",
                "listen_addresses"):
        value = getattr(r, key)
        if value != getattr(d, key):
            out.append((key, str(value) if isinstance(value, int) else str_(str(value))))
    if r.max_lag != d.max_lag:
        out.append(("max_lag", _size(r.max_lag)))
    if r.pre_promote:
        out.append(("pre_promote", "[" + ", ".join(str_(a) for a in r.pre_promote) + "]"))
    return out

