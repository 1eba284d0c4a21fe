"""One node's PostgreSQL instance, driven for streaming replication between two nodes as
Patroni drives it: initdb or a base backup, start as primary or standby, promote, demote
with pg_rewind, slots, synchronous_standby_names. It decides nothing (replica/promotion.py
and the daemon do); its pure half is pgfacts.py.

In a data directory it owns vigil.conf, rewritten at every start (listening, the
replication settings, wal_keep_size; on a standby primary_conninfo, with the password if
any, the file being 0600, and primary_slot_name), included by one `include_if_exists =
'vigil.conf'` line appended once to postgresql.conf; standby.signal, there exactly when
started as a standby; and from initdb, vigil's block atop pg_hba.conf (first match wins)
and map "vigil" in pg_ident.conf. synchronous_standby_names alone is set by ALTER SYSTEM
(set_sync), so it lives in postgresql.auto.conf, which is read last and wins: validate()
refuses one that sets anything of vigil.conf's (pg_basebackup -R and pg_rewind -R would
put primary_conninfo there; vigil uses neither). A base backup or a rewind copies the
source's postgresql.auto.conf, so a node starts with its source's synchronous names. The
log is beside the data directory (PgSpec.log_path), not in it: a base backup or a rewind
would replace it by the source's, and it is what an operator reads after a rewind.

Programs run as the server's user through runuser, argv only, with ENV alone (a password
in PGPASSWORD, never on a command line). vigil (root) connects over the unix socket as
role postgres (peer, map vigil), and to the other node as replication_user over TCP.

A stopped instance's `lsn` is pgfacts.ControlData.position's (and why not the REDO one).

The files vigil writes in the data directory, and how, are pgdata.py's.

pg_rewind (PostgreSQL 15) wants the target stopped, owned by the user running it (never
root), with checksums or wal_log_hints (both here). A target not shut down cleanly it first
recovers in single-user mode (since 13), which refuses standby.signal: demote removes it.
The target's pg_wal must reach back to the last checkpoint before the divergence, which the
first checkpoint after it (a clean stop's too) removes unless wal_keep_size keeps it. The
source must have checkpointed since its promotion, or pg_rewind reads the old timeline from
its pg_control and finds "no rewind required": demote() asks the source for one (role
pg_checkpoint), and the keeper has a newly promoted primary checkpoint once its group runs
(checkpoint(): off the promotion's path, where flushing every dirty buffer would keep the
floating address away; a crash before it leaves pg_control on the old timeline until the
recovery's own checkpoint, as after any crash). The source connection is a normal one to
database postgres, by a role granted pgfacts.REWIND_GRANTS. A failed rewind may leave the
target unusable: it is left stopped, never deleted, and the error says how to rebuild it.

The waits look every QUICK s, not pg_ctl's or pg_promote's 100 ms: each of a switchover's
steps (the old primary's stop, the promotion, synchronous_standby_names, the old primary's
start as a standby, which commits wait for) is on the path of the clients' writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import LiteralString

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from vigil.errors import AgentError
from vigil.replica import pgfacts as facts
from vigil.replica import pgdata, pghba
from vigil.replica.pgfacts import (LSN, PgSpec, PgState, Standby, format_lsn,  # noqa: F401
                                   parse_lsn)
from vigil.resources import runner

__all__ = ["LSN", "PgSpec", "PgState", "Postgres", "Standby", "format_lsn", "parse_lsn"]

log = logging.getLogger(__name__)

ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C", "LANG": "C"}
QUICK = 0.01  # seconds between looks while waiting for a start, a stop, a promotion, a reload
POLL = 0.1  # seconds between those looks after the first second
STARTING = 2.0  # seconds a postmaster just started may take to write its postmaster.pid
PROMOTE_WAIT = 60.0  # seconds a promotion may take
PG_CTL_WAIT = 600  # pg_ctl's own -t, a backstop: the caller's asyncio.timeout bounds us
STOP_MODES = ("smart", "fast", "immediate")
Conn = psycopg.AsyncConnection[TupleRow]
Upstream = pgdata.Upstream


class Postgres:
    """The controller of one instance. Every method may be repeated."""

    def __init__(self, spec: PgSpec) -> None:
        self.spec = spec
        self.data = spec.data_dir
        self.files = pgdata.DataDir(spec)

    # ---- checks and state --------------------------------------------------------------

    async def validate(self) -> None:
        """AgentError naming what keeps this data directory from being run. Changes
        nothing."""
        if problems := self.files.problems():
            raise AgentError("postgresql validate: " + "; ".join(problems))

    async def status(self) -> PgState:
        """Never raises for a stopped or dead server: role "stopped" and `problem` say so."""
        try:
            running = await self._running()
        except AgentError as e:
            return facts.stopped(str(e))
        if not running:
            return await self._stopped_state()
        try:
            async with self._connect("status") as conn:
                return await _query_state(conn)
        except (AgentError, ValueError) as e:
            was = await self._stopped_state()
            return replace(was, running=True, problem=f"running, but not answering: {e}",
                           role="standby" if (self.data / "standby.signal").exists()
                           else "primary")

    async def _stopped_state(self) -> PgState:
        if not self.data.is_dir():
            return facts.stopped(f"data directory {self.data} does not exist")
        try:
            return facts.stopped("not running", await self._controldata())
        except AgentError as e:
            return facts.stopped(str(e))

    async def _controldata(self) -> facts.ControlData:
        try:
            return facts.parse_controldata(
                (await self._run("status", "pg_controldata", "-D", str(self.data))).stdout)
        except ValueError as e:
            raise AgentError(f"postgresql status: {e}") from None

    async def _running(self) -> bool:
        return pgdata.postmaster_alive(self.data)

    # ---- building ----------------------------------------------------------------------

    async def init_primary(self) -> None:
        """initdb into an empty or absent data dir, vigil's settings, the replication
        role. A non-empty data dir is only validated. Leaves it stopped."""
        if self.files.entries():
            await self.validate()
            return
        self.files.make("init_primary")
        await self._run("init_primary", "initdb", "-D", str(self.data), "-U", "postgres",
                        "--data-checksums", "-E", "UTF8", "--no-locale",
                        "--auth-local=peer", "--auth-host=scram-sha-256")
        hba, ident = self.data / "pg_hba.conf", self.data / "pg_ident.conf"
        initdb_hba = pgdata.read(hba)
        self.files.write(hba, pghba.render_hba(self.spec, hosts=False) + initdb_hba)
        self.files.write(ident, pgdata.read(ident) + pghba.render_ident(self.spec))
        self.files.configure(None, standby=False)
        await self._pg_ctl_start("init_primary")
        try:
            async with self._connect("init_primary") as conn:
                role = sql.Identifier(self.spec.replication_user)
                create = sql.SQL("CREATE ROLE {} WITH LOGIN REPLICATION").format(role)
                if self.spec.replication_password:
                    create += sql.SQL(" PASSWORD {}").format(
                        sql.Literal(self.spec.replication_password))
                await conn.execute(create)
                for f in facts.REWIND_GRANTS:
                    await conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION " + f + " TO {}")
                                       .format(role))
                await conn.execute(sql.SQL("GRANT pg_checkpoint TO {}").format(role))
        finally:
            await self.stop()
        # Last: an init_primary cut short leaves no replication entry, which validate names.
        self.files.write(hba, pghba.render_hba(self.spec, hosts=True) + initdb_hba)
        log.info("postgresql initialized data=%s", self.data)

    async def build_standby(self, primary_host: str, primary_port: int) -> None:
        """pg_basebackup from the primary into an empty or absent data dir (refused
        otherwise), this node's slot created there first. Leaves it stopped."""
        if n := self.files.entries():
            raise AgentError(f"postgresql build_standby: refusing to build a standby in "
                             f"{self.data}: it is not empty ({n} entries); move it away first")
        self.files.make("build_standby")
        async with self._connect("build_standby", (primary_host, primary_port)) as conn:
            await _ensure_slot(conn, self.spec.slot)
        await self._run("build_standby", "pg_basebackup", "-D", str(self.data),
                        "-h", primary_host, "-p", str(primary_port),
                        "-U", self.spec.replication_user, "-X", "stream", "-S", self.spec.slot,
                        "-c", "fast", "-w", secret=True)
        self.files.configure((primary_host, primary_port), standby=True)
        log.info("postgresql built standby data=%s from=%s:%d", self.data, primary_host,
                 primary_port)

    # ---- running -----------------------------------------------------------------------

    async def start(self, primary: Upstream | None) -> None:
        """Start as primary (None) or as a streaming standby of `primary`; already running
        in that role succeeds. Returns once it accepts connections."""
        await self.validate()
        upstream = (primary[0], int(primary[1])) if primary is not None else None
        if await self._running():
            await self._wait_accepting("start")
            async with self._connect("start") as conn:
                standby = await _one(conn, "SELECT pg_is_in_recovery()")
                if (upstream is None) == bool(standby):
                    raise AgentError("postgresql start: it runs as a " + (
                        "standby: promote it" if standby else "primary: demote it"))
                if upstream is not None and self.files.configure(upstream, standby=True):
                    await conn.execute("SELECT pg_reload_conf()")  # primary_conninfo
            return
        # A former standby started as a primary would keep its timeline, its WAL and the old
        # primary's never told apart again: it is started in recovery and promoted instead.
        promote = upstream is None and await self.was_standby()
        self.files.configure(upstream, standby=upstream is not None or promote)
        await self._pg_ctl_start("start")
        if promote:
            await self.promote()
        log.info("postgresql started data=%s as=%s", self.data,
                 "primary" if upstream is None else "standby of %s:%d" % upstream)

    async def was_standby(self) -> bool:
        """A stopped instance's last run was in recovery (or it is a fresh base backup)."""
        cd = await self._controldata()
        return cd.state in facts.RECOVERY_STATES or any(
            (self.data / f).exists() for f in ("standby.signal", "backup_label"))

    async def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop -m `mode` (-W: not waiting in it), then until no postmaster runs
        (pg_ctl -w waits for postmaster.pid to go); succeeds when it is not running."""
        if mode not in STOP_MODES:
            raise AgentError(f"postgresql stop: mode must be one of {STOP_MODES}, not {mode!r}")
        if not await self._running():
            return
        done = await self._run("stop", "pg_ctl", "stop", "-D", str(self.data), "-m", mode,
                               "-W", check=False)
        if not done.ok and await self._running():
            raise AgentError(f"postgresql stop: pg_ctl stop -m {mode} {done.describe_rc()}: "
                             f"{facts.tail(done.stderr)}")
        async def stopped() -> bool:
            return not pgdata.postmaster_alive(self.data)
        await _until(stopped, PG_CTL_WAIT, f"postgresql stop: -m {mode}: still running after "
                                           f"{PG_CTL_WAIT} s")
        log.info("postgresql stopped data=%s mode=%s", self.data, mode)

    async def promote(self) -> None:
        """pg_promote, not waiting in it, then looking every QUICK s until out of
        recovery (PROMOTE_WAIT at most). A primary succeeds at once."""
        async with self._connect("promote") as conn:
            if not await _one(conn, "SELECT pg_is_in_recovery()"):
                return
            if not await _one(conn, "SELECT pg_promote(wait => false)"):
                raise AgentError("postgresql promote: pg_promote() could not signal the "
                                 f"server ({self.spec.log_path})")
            async def promoted() -> bool:
                return not await _one(conn, "SELECT pg_is_in_recovery()")
            await _until(promoted, PROMOTE_WAIT, f"postgresql promote: not promoted within "
                                                 f"{PROMOTE_WAIT:g} s ({self.spec.log_path})")
        log.info("postgresql promoted data=%s", self.data)

    async def checkpoint(self) -> None:
        """CHECKPOINT: a promoted primary's new timeline into its pg_control."""
        async with self._connect("checkpoint") as conn:
            await conn.execute("CHECKPOINT")

    async def demote(self, new_primary: Upstream) -> None:
        """Stop, pg_rewind from `new_primary`, start as its standby. A failed rewind leaves
        the instance stopped and says how to rebuild it."""
        host, port = new_primary[0], int(new_primary[1])
        await self.validate()
        async with self._connect("demote", (host, port)) as conn:
            if await _one(conn, "SELECT pg_is_in_recovery()"):
                raise AgentError(f"postgresql demote: {host}:{port} is not a primary")
            await conn.execute("CHECKPOINT")  # its timeline into its pg_control (docstring)
            await _ensure_slot(conn, self.spec.slot)
        try:
            await self.stop("fast")
        except AgentError as e:
            log.warning("postgresql stop failed, stopping immediately: %s", e)
            await self.stop("immediate")  # pg_rewind recovers it (docstring)
        for signal_file in ("standby.signal", "recovery.signal"):
            (self.data / signal_file).unlink(missing_ok=True)
        source = facts.upstream_conninfo(self.spec, host, port, dbname="postgres")
        done = await self._run("demote", "pg_rewind", "-D", str(self.data),
                               f"--source-server={source}", check=False, secret=True)
        if not done.ok:
            raise AgentError(
                f"postgresql demote: pg_rewind from {host}:{port} failed ({done.describe_rc()}):"
                f" {facts.tail(done.stderr)}. The data directory {self.data} needs rebuilding: "
                f"it is left stopped; move it aside (keep it until its data is no longer "
                f"needed) and build a standby from {host}:{port} into an empty one")
        log.info("postgresql rewound data=%s from=%s:%d: %s", self.data, host, port,
                 facts.tail(done.stderr))
        await self.start((host, port))

    async def ensure_slot(self, name: str) -> None:
        """On a primary: create physical replication slot `name` unless it exists."""
        if not facts.SLOT_NAME.fullmatch(name):
            raise AgentError(f"postgresql ensure_slot: bad slot name {name!r}")
        async with self._connect("ensure_slot") as conn:
            if await _one(conn, "SELECT pg_is_in_recovery()"):
                raise AgentError("postgresql ensure_slot: not a primary (in recovery)")
            await _ensure_slot(conn, name)

    async def set_sync(self, names: str) -> None:
        """synchronous_standby_names = `names` ("" turns synchronous replication off), by
        ALTER SYSTEM; returns once the server has reloaded it."""
        try:
            facts.check_sync_names(names)
        except ValueError as e:
            raise AgentError(f"postgresql set_sync: {e}") from None
        async with self._connect("set_sync") as conn:
            await conn.execute(sql.SQL("ALTER SYSTEM SET synchronous_standby_names = {}")
                               .format(sql.Literal(names)))
            await conn.execute("SELECT pg_reload_conf()")
            while await _one(conn, "SHOW synchronous_standby_names") != names:
                await asyncio.sleep(QUICK)  # our backend has it once the reload reached it
        log.info("postgresql synchronous_standby_names=%r data=%s", names, self.data)

    # ---- helpers -----------------------------------------------------------------------

    async def _run(self, what: str, program: str, *args: str, check: bool = True,
                   secret: bool = False) -> runner.Completed:
        if self.spec.user == "root":
            raise AgentError(f"postgresql {what}: user = root: PostgreSQL runs unprivileged")
        env = dict(ENV)
        if secret and self.spec.replication_password:
            env["PGPASSWORD"] = self.spec.replication_password
        argv = ["runuser", "-u", self.spec.user, "--", str(self.spec.bin_dir / program), *args]
        done = await runner.run(argv, env=env)
        if check and not done.ok:
            raise AgentError(f"postgresql {what}: {program} failed ({done.describe_rc()}): "
                             f"{facts.tail(done.stderr or done.stdout)}")
        return done

    async def _pg_ctl_start(self, what: str) -> None:
        """pg_ctl start (-W: not waiting in it), then until it accepts connections (a
        standby: once consistent). The socket directory and the log file are the user's."""
        logfile = self.spec.log_path
        self.files.prepare_run(what)
        done = await self._run(what, "pg_ctl", "start", "-D", str(self.data), "-l",
                               str(logfile), "-W", check=False)
        if not done.ok:
            raise AgentError(f"postgresql {what}: pg_ctl start failed ({done.describe_rc()}): "
                             f"{facts.tail(done.stderr)}; {logfile}: {pgdata.log_tail(logfile)}")
        await self._wait_accepting(what)

    async def _wait_accepting(self, what: str) -> None:
        """Connect until it answers. A postmaster seen running that no longer runs has
        failed, and so has one never seen within STARTING s (it writes its postmaster.pid
        first thing)."""
        loop = asyncio.get_running_loop()
        began, seen = loop.time(), False
        while True:
            try:
                async with self._connect(what) as conn:
                    await conn.execute("SELECT 1")
                return
            except AgentError:
                running = await self._running()
                seen |= running
                if not running and (seen or loop.time() - began > STARTING):
                    raise AgentError(f"postgresql {what}: the server stopped; "
                                     f"{self.spec.log_path}: {pgdata.log_tail(self.spec.log_path)}"
                                     ) from None
            # every QUICK s for a second, then every POLL s: each look is a backend forked
            # to say "starting up", and a crash's recovery may take minutes
            await asyncio.sleep(QUICK if loop.time() - began < 1 else POLL)

    @contextlib.asynccontextmanager
    async def _connect(self, what: str, remote: Upstream | None = None) -> AsyncIterator[Conn]:
        """To this instance over its socket as postgres, or to `remote` over TCP as the
        replication user. psycopg's errors become AgentError."""
        spec = self.spec
        if remote is None:
            where = f"{spec.socket_dir} port {spec.port}"
            info = facts.conninfo(host=str(spec.socket_dir), port=spec.port, user="postgres")
        else:
            where = "%s:%d" % remote
            info = facts.conninfo(host=remote[0], port=remote[1], user=spec.replication_user,
                                  **({"password": spec.replication_password}
                                     if spec.replication_password else {}))
        info += " dbname=postgres connect_timeout=2 application_name=vigil"
        try:
            conn = await psycopg.AsyncConnection.connect(info, autocommit=True)
        except psycopg.Error as e:
            raise AgentError(f"postgresql {what}: cannot connect to {where}: {_first(e)}"
                             ) from None
        try:
            yield conn
        except psycopg.Error as e:
            raise AgentError(f"postgresql {what}: {where}: {_first(e)}") from None
        finally:
            await conn.close()


async def _until(done: Callable[[], Awaitable[bool]], limit: float, error: str) -> None:
    """Look every QUICK s until `done`; AgentError(`error`) after `limit` s."""
    end = asyncio.get_running_loop().time() + limit
    while not await done():
        if asyncio.get_running_loop().time() > end:
            raise AgentError(error)
        await asyncio.sleep(QUICK)


async def _one(conn: Conn, query: LiteralString) -> object:
    try:
        return (await _row(conn, 1, query))[0]
    except ValueError as e:
        raise AgentError(f"postgresql: {query}: {e}") from None


async def _ensure_slot(conn: Conn, name: str) -> None:
    cur = await conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (name,))
    if await cur.fetchone() is None:
        with contextlib.suppress(psycopg.errors.DuplicateObject):  # made meanwhile
            await conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (name,))
            log.info("postgresql created slot=%s", name)


async def _query_state(conn: Conn) -> PgState:
    """This instance's state from its answers, parsed (untrusted) by pgfacts."""
    standby, system_id, names = await _row(conn, 3, (
        "SELECT pg_is_in_recovery(), (SELECT system_identifier FROM pg_control_system()),"
        " current_setting('synchronous_standby_names')"))
    if not standby:
        walfile, lsn = await _row(conn, 2, "SELECT pg_walfile_name(pg_current_wal_flush_lsn()),"
                                           " pg_current_wal_flush_lsn()::text")
        cur = await conn.execute(
            "SELECT application_name, state, sync_state, flush_lsn::text, replay_lsn::text"
            " FROM pg_stat_replication ORDER BY application_name")
        return facts.primary_state(system_id, walfile, lsn, await cur.fetchall(), names)
    replay, receive, status, received_tli, checkpoint_tli = await _row(conn, 5, (
        "SELECT pg_last_wal_replay_lsn()::text, pg_last_wal_receive_lsn()::text,"
        " (SELECT status FROM pg_stat_wal_receiver), (SELECT received_tli FROM"
        " pg_stat_wal_receiver), (SELECT timeline_id FROM pg_control_checkpoint())"))
    return facts.standby_state(system_id, replay, receive, status, received_tli,
                               checkpoint_tli, names)


async def _row(conn: Conn, width: int, query: LiteralString) -> TupleRow:
    row = await (await conn.execute(query)).fetchone()
    if row is None or len(row) != width:
        raise ValueError(f"expected one row of {width} columns, got {row!r}")
    return row


def _first(e: psycopg.Error) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
