"""A model.Cluster -> the equivalent vigil.toml text (config/toml.py's format).

`to_toml` writes every value that differs from what toml.parse would default to, so that the
text parses back to an equal Cluster (except `source`, and the key: see below), with comments
where an imported directive changed meaning. `import_dir` does it for a Heartbeat directory
(config/heartbeat.py), the way out of ha.d.

The key: a cluster read from Heartbeat signs with its authkeys secret (key_format "authkeys").
The exported file does not point at authkeys: vigil's key file holds the secret alone, and an
authkeys secret is often short or crc (none). It names KEY_FILE and says to create it with
`vigil keygen`; both nodes move to vigil.toml together anyway, since vigil and Heartbeat do
not talk to each other.

Heartbeat's ucast lines become `[[link]] mode = "ucast"` (`interface`, `peers`) and its
respawn lines `[[respawn]]` tables (`user`, `argv`), which toml.parse reads back.
"""

from __future__ import annotations

from pathlib import Path

from vigil import model
from vigil.config import heartbeat
from vigil.config.export_virtual import write_virtual_servers
from vigil.config.toml_replica import DEFAULT_MONITOR, DEFAULT_TIMEOUT, write_postgresql
from vigil.config.toml_write import Writer as _Writer, bool_ as _bool, dur as _dur, \
    list_ as _list, str_ as _str, table as _table
from vigil.replica.model import PostgresqlResource

__all__ = ["KEY_FILE", "import_dir", "to_toml"]

KEY_FILE = Path("/etc/vigil/authkey")
_CLUSTER_NOTES = {  # Heartbeat directive -> the [cluster] key its note goes above
    "keepalive": "keepalive", "deadtime": "deadtime", "warntime": "warntime",
    "initdead": "initdead", "auto_failback": "auto_failback", "nice_failback": "auto_failback",
    "udpport": "port", "logfile": "log_file", "watchdog": "watchdog", "realtime": "realtime",
    "ping": "ping", "ping_group": "ping", "deadping": "deadping",
}
_LINK_NOTES = ("bcast", "udp", "mcast", "mcast6", "ucast", "serial", "baud")
# Notes on the authkeys secret, which an exported file does not use (see the module docstring).
_KEY_NOTES = ("authkeys", "crc", "md5", "sha1")


def import_dir(path: Path) -> tuple[str, list[str]]:
    """The vigil.toml equivalent of the Heartbeat directory `path`, and its warnings.

    crc authkeys are accepted: the exported file replaces them with a vigil key anyway."""
    imported = heartbeat.read_dir(Path(path), allow_crc=True)
    header = f"Imported from Heartbeat's {path} (ha.cf, haresources, authkeys)."
    return to_toml(imported.cluster, dict(imported.notes), header), list(imported.warnings)


def to_toml(cluster: model.Cluster, notes: dict[str, str] | None = None,
            header: str | None = None) -> str:
    """vigil.toml text for `cluster`; `notes` (directive -> text, from heartbeat.read_dir)
    become comments next to what they explain, or at the top."""
    notes = dict(notes or {})
    w = _Writer()
    w.comment(header or f"vigil.toml for cluster {cluster.name}.")
    w.comment("Check it with `vigil check-config`. Durations: \"200ms\", \"2s\", or seconds.")
    rest = {k: v for k, v in notes.items() if k not in (*_CLUSTER_NOTES, *_LINK_NOTES)
            and not k.startswith(("group:", "virtual_server:"))
            and (cluster.key_format == "vigil" or k not in _KEY_NOTES)}
    if rest:
        w.comment("What did not carry over, or changed meaning:")
        for key, text in rest.items():
            w.comment(f"- {key}: {text}", indent="    ")
    w.blank()
    _cluster(w, cluster, notes)
    for node in cluster.nodes:
        w.table("[[node]]", [("name", _str(node.name))])
        if node.addresses:
            w.key("address", _list(_str(str(a)) for a in node.addresses))
    for i, link in enumerate(cluster.links):
        for key in _LINK_NOTES if i == 0 else ():
            if key in notes:
                w.blank()
                w.comment(f"{key}: {notes[key]}")
        w.table("[[link]]", _link(link))
    for group in cluster.groups:
        if f"group:{group.name}" in notes:
            w.blank()
            w.comment(notes[f"group:{group.name}"])
        _group(w, group)
    if cluster.fencing is not None:
        w.table("[fencing]", _fencing(cluster.fencing))
    if cluster.witness is not None:
        wit = cluster.witness
        w.table("[witness]", [("address", _str(str(wit.address))), ("port", str(wit.port))]
                + ([("lease", _dur(wit.lease))] if wit.lease is not None else [])
                + ([("name", _str(wit.name))] if wit.name != "witness" else []))
    for r in cluster.respawn:
        w.table("[[respawn]]", [("user", _str(r.user)), ("argv", _list(map(_str, r.argv)))])
    if cluster.api is not None:
        a = cluster.api
        host = f"[{a.host}]" if ":" in a.host else a.host
        w.table("[api]", [("listen", _str(f"{host}:{a.port}"))] + [
            (k, _str(str(v))) for k, v in (("token_file", a.token_file),
                                           ("cert_file", a.cert_file),
                                           ("key_file", a.key_file)) if v is not None])
    write_virtual_servers(w, cluster.virtual_servers, notes)
    if cluster.notify is not None:
        n = cluster.notify
        w.table("[notify]", ([("program", _list(_str(str(x)) for x in n.programs))]
                             if n.programs else [])
                + ([("directory", _str(str(n.directory)))] if n.directory else [])
                + [("timeout", _dur(n.timeout))])
    return w.text()


def _cluster(w: _Writer, c: model.Cluster, notes: dict[str, str]) -> None:
    d, t = model.Cluster("", Path(), (), ()), c.timings
    key_note = None
    key_file = c.key_file
    if c.key_format == "authkeys":
        key_file = KEY_FILE
        key_note = (f"vigil's own key, replacing {c.key_file}: create it with `vigil keygen "
                    f"{KEY_FILE}` on one node and copy it (mode 0600) to the other")
    pairs: list[tuple[str, str, str | None]] = [
        ("name", _str(c.name), None), ("key_file", _str(str(key_file)), key_note),
        *((k, _dur(getattr(t, k)), None) for k in ("keepalive", "warntime", "deadtime",
                                                     "initdead")),
        ("auto_failback", _bool(c.auto_failback), None), ("port", str(c.port), None),
        ("realtime", _bool(c.realtime), None)]
    if c.log_file is not None:
        pairs.append(("log_file", _str(str(c.log_file)), None))
    if c.watchdog is not None:
        pairs.append(("watchdog", _str(str(c.watchdog)), None))
    if c.watchdog_timeout is not None:
        pairs.append(("watchdog_timeout", _dur(float(c.watchdog_timeout)), None))
    if c.ping:
        pairs.append(("ping", _list(_str(str(a)) for a in c.ping), None))
    if c.ping_interval != d.ping_interval:
        pairs.append(("ping_interval", _dur(c.ping_interval), None))
    if c.deadping != d.deadping:
        pairs.append(("deadping", _dur(c.deadping), None))
    w.table("[cluster]", [])
    for key, value, note in pairs:
        for directive, place in _CLUSTER_NOTES.items():
            if place == key and directive in notes:
                w.comment(f"{directive}: {notes[directive]}")
        if note:
            w.comment(note)
        w.key(key, value)


def _link(link: model.AnyLink) -> list[tuple[str, str]]:
    if isinstance(link, model.ExtraLink):
        out = [("mode", _str(link.mode)), ("interface", _str(link.interface))]
        if link.mode == "mcast":
            out += [("group", _str(str(link.group))), ("ttl", str(link.ttl))]
        return out
    if isinstance(link, model.UcastLink):
        return [("mode", _str("ucast")), ("interface", _str(link.interface)),
                ("peers", _list(_str(str(a)) for a in link.peers))]
    device = _table([(node, _str(str(p))) for node, p in link.per_node]) if link.per_node \
        else _str(str(link.device))
    out = [("mode", _str(link.mode)), ("device", device)]
    if isinstance(link, model.SerialLink) and link.baud != 19200:
        out.append(("baud", str(link.baud)))
    return out


def _group(w: _Writer, g: model.Group) -> None:
    w.table("[[group]]", [("name", _str(g.name)), ("home", _str(g.home))]
            + ([("promotable", "true")] if g.promotable else []))
    d = model.GroupPolicy()
    policy = ([("migration_threshold", str(g.policy.migration_threshold))]
              if g.policy.migration_threshold != d.migration_threshold else []) + \
             ([("failure_timeout", _dur(g.policy.failure_timeout))]
              if g.policy.failure_timeout != d.failure_timeout else [])
    if policy:
        w.table("[group.policy]", policy)
    for r in g.resources:
        w.table("[[group.resource]]", _resource(r))


def _resource(r: model.Resource) -> list[tuple[str, str]]:
    out = [("type", _str(r.kind))]
    default_timeout = {"ip": 5.0, "exec": 20.0, "lsb": 20.0, "systemd": 100.0,
                       "heartbeat": 20.0, "filesystem": 60.0,
                       "postgresql": DEFAULT_TIMEOUT}.get(r.kind)
    if isinstance(r, model.IpResource):
        found = [w for w, given in (("prefix length", r.prefix_given),
                                    ("interface", r.interface is not None)) if not given]
        address = r.address.with_prefixlen if r.prefix_given else str(r.address.ip)
        note = (f"  # {' and '.join(found)}: found at start from the connected route that "
                f"contains it, as Heartbeat's IPaddr did") if found else ""
        out.append(("address", _str(address) + note))
        if r.interface is not None:
            out.append(("interface", _str(r.interface)))
        if r.broadcast is not None:
            out.append(("broadcast", _str(str(r.broadcast))))
        if r.label is not None:
            out.append(("label", _str(r.label)))
        a, d = r.arp, model.ArpSettings()
        out += [(k, str(v)) for k, v, dv in (("arp_count", a.count, d.count),
                                              ("arp_repeat_count", a.repeat_count,
                                               d.repeat_count)) if v != dv]
        out += [(k, _dur(v)) for k, v, dv in (("arp_interval", a.interval, d.interval),
                                               ("arp_repeat_delay", a.repeat_delay,
                                                d.repeat_delay),
                                               ("arp_refresh", a.refresh, d.refresh)) if v != dv]
    elif isinstance(r, model.ExecResource):
        out += [("start", _list(map(_str, r.start))), ("stop", _list(map(_str, r.stop)))]
        if r.status is not None:
            out.append(("status", _list(map(_str, r.status))))
    elif isinstance(r, model.OcfResource):
        out += [("agent", _str(r.agent)), ("id", _str(r.id))]
        if r.params:
            out.append(("params", _table([(k, _str(v)) for k, v in r.params])))
    elif isinstance(r, model.LsbResource):
        out.append(("name", _str(r.script)))
    elif isinstance(r, model.SystemdResource):
        out.append(("unit", _str(r.unit)))
    elif isinstance(r, model.HeartbeatResource):
        out.append(("script", _str(r.script)))
        if r.args:
            out.append(("args", _list(map(_str, r.args))))
    elif isinstance(r, PostgresqlResource):
        out += write_postgresql(r)
    else:
        out += [("device", _str(str(r.device))), ("mountpoint", _str(str(r.mountpoint))),
                ("fstype", _str(r.fstype))]
        if r.options:
            out.append(("options", _str(r.options)))
        if r.kill_grace != 5.0:
            out.append(("kill_grace", _dur(r.kill_grace)))
    if r.timeout is not None and r.timeout != default_timeout:
        out.append(("timeout", _dur(r.timeout)))
    monitor = _monitor(r)
    if monitor is not None:
        out.append(("monitor", monitor))
    return out


def _monitor(r: model.Resource) -> str | None:
    """The monitor key, or None where toml.parse's default gives the same value."""
    if isinstance(r, model.ExecResource):  # monitored through `status`, unmonitored without
        return "false" if r.status is not None and r.monitor is None else \
            None if r.status is None or r.monitor == model.Monitor() else _monitor_value(r.monitor)
    default = DEFAULT_MONITOR if isinstance(r, PostgresqlResource) else model.Monitor()
    return None if r.monitor == default else _monitor_value(r.monitor)


def _monitor_value(m: model.Monitor | None) -> str:
    if m is None:
        return "false"
    return _table([("interval", _dur(m.interval))] +
                  ([("timeout", _dur(m.timeout))] if m.timeout is not None else []))


def _fencing(f: model.Fencing) -> list[tuple[str, str]]:
    d = model.Fencing(f.agent)
    out = [("agent", _str(f.agent))]
    if f.action != d.action:
        out.append(("action", _str(f.action)))
    if f.command:
        out.append(("command", _list(map(_str, f.command))))
    if f.params:
        out.append(("params", _table([(k, _str(v)) for k, v in f.params])))
    if f.node_params:
        out.append(("nodes", _table([(n, _table([(k, _str(v)) for k, v in p]))
                                     for n, p in f.node_params])))
    default_delay = 0.0 if f.agent == "disk" else d.delay
    for key, value, default in (("timeout", f.timeout, d.timeout),
                                ("retry_interval", f.retry_interval, d.retry_interval),
                                ("delay", f.delay, default_delay),
                                ("monitor_interval", f.monitor_interval, d.monitor_interval)):
        if value != default:
            out.append((key, _dur(value)))
    if f.on_failure != d.on_failure:
        out.append(("on_failure", _str(f.on_failure)))
    return out
