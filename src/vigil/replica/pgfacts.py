"""What PostgreSQL says and what vigil writes for it, as text, sans-IO: the half of
postgres.py that needs no server, no process and no file.

Read, untrusted (the server's answers, pg_controldata's output, files of a data directory
someone else may have edited): WAL positions, pg_controldata, the settings a .conf file
sets (pg_hba.conf is pghba.py's). Every parser returns a value or raises `ValueError`
naming what it could not read, whatever the input. Written: vigil.conf and connection
strings; values are quoted here, once, so a configured path or password never ends a
string early.
Also the values crossing to whoever decides: `PgSpec`, `PgState`, `Standby`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

LSN = int  # PostgreSQL's pg_lsn as an integer: "16/B374D848" -> 0x16B374D848

VIGIL_CONF = "vigil.conf"
INCLUDE_LINE = f"include_if_exists = '{VIGIL_CONF}'"
SLOT_NAME = re.compile(r"[a-z0-9_]{1,63}")  # PostgreSQL's rule for replication slot names
ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
OS_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
SYNC_NAMES = re.compile(r"[a-z0-9_]+(,[a-z0-9_]+)*")
_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")
_WALFILE = re.compile(r"[0-9A-F]{24}")
_ADDRESS = re.compile(r"[0-9a-fA-F.:]{2,45}")  # then ipaddress decides


def parse_lsn(text: str) -> LSN:
    """"16/B374D848" -> 0x16B374D848; ValueError naming `text` otherwise."""
    m = _LSN.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"not a WAL position (pg_lsn): {text!r}")
    return int(m.group(1), 16) << 32 | int(m.group(2), 16)


def format_lsn(lsn: LSN) -> str:
    if not 0 <= lsn < 1 << 64:
        raise ValueError(f"WAL position out of range: {lsn}")
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def timeline_of_walfile(name: str) -> int:
    """The timeline of WAL file "00000002000000000000000A" (its first 8 hex digits)."""
    if not isinstance(name, str) or not _WALFILE.fullmatch(name) or int(name[:8], 16) == 0:
        raise ValueError(f"not a WAL file name: {name!r}")
    return int(name[:8], 16)


# ---- the values that cross the layer ----------------------------------------------------


SPEC_CHECKS = (
    ("slot", SLOT_NAME, "1-63 of a-z, 0-9 and _"),
    ("replication_user", ROLE_NAME, "a plain lower-case role name"),
    ("user", OS_USER, "a plain user name"),
    ("wal_keep_size", re.compile(r"[0-9]{1,9}(kB|MB|GB|TB)?"), "a size such as 1GB"),
    ("max_slot_wal_keep_size", re.compile(r"-1|[0-9]{1,9}(kB|MB|GB|TB)?"),
     "-1 (no bound) or a size such as 16GB"),
    ("host", _ADDRESS, "an IP address"), ("peer_host", _ADDRESS, "an IP address"),
    ("listen", re.compile(r"\*|[0-9A-Za-z.:_-]+(,[0-9A-Za-z.:_-]+)*"),
     "\"*\" or a comma-separated list of addresses"))


@dataclass(frozen=True, slots=True, kw_only=True)
class PgSpec:
    """One node's instance, from the configuration. Checked on construction (ValueError)."""

    data_dir: Path
    bin_dir: Path = Path("/usr/lib/postgresql/15/bin")
    host: str  # the address it listens on and its peer connects to (this node's address)
    port: int = 5432
    user: str = "postgres"  # the OS user the server runs as: never root (validate says so)
    replication_user: str = "replicator"
    replication_password: str | None = None  # None: trust, as pg_hba.conf says
    slot: str  # this node's slot on whichever node is primary; also its application_name
    peer_host: str  # the other node's address
    socket_dir: Path  # unix_socket_directories, owned by `user` (created if missing)
    log_file: Path | None = None  # pg_ctl's -l; None: <data_dir>.log beside the data dir
    wal_keep_size: str = "1GB"  # WAL kept for pg_rewind (postgres.py); max_wal_size's default
    # WAL a replication slot may keep for a standby that does not take it (down, cut off):
    # -1, PostgreSQL's default, without bound (the primary's disk may fill); a size, past
    # which the slot is lost and that standby must be built again.
    max_slot_wal_keep_size: str = "-1"
    # listen_addresses: every address by default, since clients come through the group's
    # floating address, which arrives after the server starts (PostgreSQL binds at start).
    listen: str = "*"

    def __post_init__(self) -> None:
        for name in ("data_dir", "bin_dir", "socket_dir", "log_file"):
            path = getattr(self, name)
            if path is not None and not (isinstance(path, Path) and path.is_absolute()):
                raise ValueError(f"{name} must be an absolute path, not {path!r}")
        for name, pattern, what in SPEC_CHECKS:
            value = getattr(self, name)
            if not isinstance(value, str) or not pattern.fullmatch(value):
                raise ValueError(f"{name} must be {what}, not {value!r}")
            if name.endswith("host"):
                ipaddress.ip_address(value)  # ValueError naming it
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1-65535, not {self.port}")
        if self.replication_password is not None and (
                not self.replication_password or set("\n\r\0") & set(self.replication_password)):
            raise ValueError("replication_password must be non-empty and on one line")

    @property
    def log_path(self) -> Path:
        return self.log_file or self.data_dir.with_name(self.data_dir.name + ".log")


@dataclass(frozen=True, slots=True)
class Standby:
    """A row of pg_stat_replication on a primary."""

    name: str  # application_name
    state: str  # "streaming", "catchup", ...
    sync_state: str  # "sync", "async", "potential", "quorum"
    flush_lsn: int | None
    replay_lsn: int | None


@dataclass(frozen=True, slots=True)
class PgState:
    """What `Postgres.status` found. See postgres.py for where each value comes from."""

    running: bool
    role: Literal["primary", "standby", "stopped"]
    system_id: int | None
    timeline: int | None
    lsn: int | None
    receive_lsn: int | None
    streaming: bool
    standbys: tuple[Standby, ...]
    sync_names: str
    problem: str | None  # why it is not healthy, for an operator (None: fine)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected text, got {value!r}")
    return value


def _lsn_or_none(value: object, what: str) -> int | None:
    return None if value is None else parse_lsn(_text(value, what))


def standby_from_row(row: Sequence[object]) -> Standby:
    """(application_name, state, sync_state, flush_lsn::text, replay_lsn::text)."""
    if len(row) != 5:
        raise ValueError(f"pg_stat_replication row of {len(row)} columns")
    name, state, sync_state, flush, replay = row
    return Standby(_text(name, "application_name"), _text(state, "state"),
                   _text(sync_state, "sync_state"), _lsn_or_none(flush, "flush_lsn"),
                   _lsn_or_none(replay, "replay_lsn"))


def system_id_of(value: object) -> int:
    """pg_control_system() shows the unsigned identifier as a signed bigint."""
    if not isinstance(value, int) or isinstance(value, bool) or not -(1 << 63) <= value < 1 << 64:
        raise ValueError(f"not a system identifier: {value!r}")
    return value & 0xFFFFFFFFFFFFFFFF


def primary_state(system_id: object, walfile: object, lsn: object,
                  rows: Sequence[Sequence[object]], sync_names: object) -> PgState:
    """A running primary's state from its answers (see postgres.py for the queries)."""
    return PgState(True, "primary", system_id_of(system_id),
                   timeline_of_walfile(_text(walfile, "pg_walfile_name")),
                   parse_lsn(_text(lsn, "pg_current_wal_flush_lsn")), None, False,
                   tuple(standby_from_row(r) for r in rows),
                   _text(sync_names, "synchronous_standby_names"), None)


def standby_state(system_id: object, replay: object, receive: object, status: object,
                  received_tli: object, checkpoint_tli: object, sync_names: object) -> PgState:
    """A running standby's state from its answers; `status` None: no WAL receiver."""
    timeline = received_tli if received_tli else checkpoint_tli
    if not isinstance(timeline, int) or isinstance(timeline, bool) or timeline < 1:
        raise ValueError(f"not a timeline: {timeline!r}")
    streaming = status == "streaming"
    problem = None if streaming else (
        "standby is not streaming from its primary (WAL receiver: "
        f"{_text(status, 'status') if status is not None else 'none'})")
    return PgState(True, "standby", system_id_of(system_id), timeline,
                   _lsn_or_none(replay, "pg_last_wal_replay_lsn"),
                   _lsn_or_none(receive, "pg_last_wal_receive_lsn"), streaming, (),
                   _text(sync_names, "synchronous_standby_names"), problem)


# ---- pg_controldata ---------------------------------------------------------------------

RECOVERY_STATES = frozenset({"shut down in recovery", "in archive recovery"})
CLEAN_STATES = frozenset({"shut down", "shut down in recovery"})


@dataclass(frozen=True, slots=True)
class ControlData:
    """The lines of pg_controldata (LC_ALL=C) that vigil reads."""

    system_id: int  # "Database system identifier"
    state: str  # "Database cluster state": "shut down", "in production", ...
    timeline: int  # "Latest checkpoint's TimeLineID"
    checkpoint_lsn: int  # "Latest checkpoint location"
    min_recovery_lsn: int  # "Minimum recovery ending location" (0 on a primary)
    min_recovery_timeline: int  # "Min recovery ending loc's timeline"

    @property
    def clean(self) -> bool:
        return self.state in CLEAN_STATES

    def position(self) -> tuple[int, int]:
        """(timeline, lsn) of a stopped instance, as Patroni reads it: a standby's minimum
        recovery point (replay reached at least there), else the latest checkpoint: a clean
        primary's shutdown checkpoint, the end of its WAL but that record (its REDO location
        would understate it by a whole checkpoint); for a crashed primary a lower bound."""
        if self.state in RECOVERY_STATES and self.min_recovery_lsn and self.min_recovery_timeline:
            return self.min_recovery_timeline, self.min_recovery_lsn
        return self.timeline, self.checkpoint_lsn


def _int(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 20:
        raise ValueError(f"pg_controldata: {what} is not a number: {text!r}")
    return int(text)


def parse_controldata(text: str) -> ControlData:
    """ValueError naming the line missing or unreadable."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())

    def get(key: str) -> str:
        if key not in fields:
            raise ValueError(f"pg_controldata output has no {key!r} line")
        return fields[key]

    system_id = _int(get("Database system identifier"), "the system identifier")
    if system_id >= 1 << 64:
        raise ValueError(f"pg_controldata: system identifier out of range: {system_id}")
    state = get("Database cluster state")
    if not state or not state.isprintable():
        raise ValueError(f"pg_controldata: unreadable cluster state {state!r}")
    return ControlData(
        system_id, state, _int(get("Latest checkpoint's TimeLineID"), "the timeline"),
        parse_lsn(get("Latest checkpoint location")),
        parse_lsn(get("Minimum recovery ending location")),
        _int(get("Min recovery ending loc's timeline"), "the recovery timeline"))


def stopped(problem: str, cd: ControlData | None = None) -> PgState:
    """A stopped instance; with its pg_controldata, where it stopped (ControlData.position)."""
    if cd is None:
        return PgState(False, "stopped", None, None, None, None, False, (), "", problem)
    timeline, lsn = cd.position()
    if not cd.clean:
        problem += (f", and not shut down cleanly (state: {cd.state}): its WAL goes at least "
                    f"to {format_lsn(lsn)}, its last checkpoint")
    return PgState(False, "stopped", cd.system_id, timeline, lsn, None, False, (), "", problem)


# ---- postgresql.conf and vigil.conf -----------------------------------------------------


def quote_conf(value: str) -> str:
    """A string value of postgresql.conf: single quotes doubled, backslashes escaped."""
    if set("\n\r\0") & set(value):
        raise ValueError(f"a configuration value must be on one line: {value!r}")
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def conninfo(**params: str | int) -> str:
    """A libpq connection string, every value quoted as libpq reads it."""
    out = []
    for key, value in params.items():
        text = str(value)
        if text == "" or re.search(r"[\s'\\]", text):
            text = "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
        out.append(f"{key}={text}")
    return " ".join(out)


def upstream_conninfo(spec: PgSpec, host: str, port: int, dbname: str | None = None) -> str:
    """How this node connects to the primary at host:port (no password: see postgres.py)."""
    params: dict[str, str | int] = {"host": host, "port": port, "user": spec.replication_user,
                                    "application_name": spec.slot, "connect_timeout": 5}
    if dbname:
        params["dbname"] = dbname
    return conninfo(**params)


MANAGED = ("listen_addresses", "port", "unix_socket_directories", "wal_level", "hot_standby",
           "max_wal_senders", "max_replication_slots", "wal_log_hints", "synchronous_commit",
           "wal_keep_size", "max_slot_wal_keep_size", "wal_retrieve_retry_interval",
           "primary_conninfo",
           "primary_slot_name")


def render_vigil_conf(spec: PgSpec, upstream: tuple[str, int] | None) -> str:
    """vigil.conf for this node: a primary (upstream None) or a standby of host:port."""
    values = {"listen_addresses": quote_conf(spec.listen), "port": str(spec.port),
              "unix_socket_directories": quote_conf(str(spec.socket_dir)),
              "wal_level": "replica", "hot_standby": "on", "max_wal_senders": "10",
              "max_replication_slots": "10", "wal_log_hints": "on", "synchronous_commit": "on",
              "wal_keep_size": quote_conf(spec.wal_keep_size),
              "max_slot_wal_keep_size": quote_conf(spec.max_slot_wal_keep_size),
              # A standby whose primary restarts (in place, or another promoted) streams
              # again within this, not PostgreSQL's 5 s: the primary waits for it meanwhile.
              "wal_retrieve_retry_interval": "'200ms'"}
    if upstream is not None:
        info = upstream_conninfo(spec, *upstream)
        if spec.replication_password:
            info += " " + conninfo(password=spec.replication_password)
        values["primary_conninfo"] = quote_conf(info)
        values["primary_slot_name"] = quote_conf(spec.slot)
    head = ("# Written by vigil at every start: do not edit (see vigil.replica.postgres).\n"
            "# synchronous_standby_names is in postgresql.auto.conf (ALTER SYSTEM).\n")
    return head + "".join(f"{k} = {v}\n" for k, v in values.items())


def auto_conf_problems(text: str, path: str) -> list[str]:
    """postgresql.auto.conf wins over vigil.conf: it must set none of vigil's settings."""
    clash = sorted(set(conf_settings(text)) & set(MANAGED))
    return [f"{path} sets {', '.join(clash)}, which vigil sets in vigil.conf (ALTER SYSTEM "
            f"RESET them)"] if clash else []


def tail(text: str, lines: int = 3) -> str:
    """The last non-blank lines of a program's output or a log, on one line."""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " / ".join(kept[-lines:]) or "no output"


def conf_settings(text: str) -> dict[str, str]:
    """name -> raw value of the settings a .conf file sets (later lines win)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=?\s*(.*?)\s*(#.*)?$", line)
        if m and not line.lstrip().startswith("#"):
            found[m.group(1).lower()] = m.group(2)
    return found


def with_include(postgresql_conf: str) -> str | None:
    """postgresql.conf with vigil's include line appended, or None when it has it."""
    if any(line.strip() == INCLUDE_LINE for line in postgresql_conf.splitlines()):
        return None
    sep = "" if postgresql_conf.endswith("\n") or not postgresql_conf else "\n"
    return f"{postgresql_conf}{sep}\n# vigil's settings (vigil.replica.postgres)\n{INCLUDE_LINE}\n"


REWIND_GRANTS = ("pg_catalog.pg_ls_dir(text, boolean, boolean)",
                 "pg_catalog.pg_stat_file(text, boolean)", "pg_catalog.pg_read_binary_file(text)",
                 "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)")
"""What pg_rewind runs on its source, granted to the replication role (with pg_checkpoint)."""


def check_sync_names(names: str) -> str:
    """"" (synchronous replication off) or comma-separated names of [a-z0-9_]+."""
    if names and not SYNC_NAMES.fullmatch(names):
        raise ValueError(f"synchronous standby names must be [a-z0-9_]+, comma-separated: "
                         f"{names!r}")
    return names
