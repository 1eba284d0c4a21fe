"""The lab's Jepsen-style checker of a replicated database: a writer of numbered rows
through the floating address, a watcher of both servers' roles, and the verdicts.

    python -m vigil.lab.commits write --host ADDRESS [--port 5432] [--interval 0.01]
        [--duration 60] [--connect-timeout 1]
    python -m vigil.lab.commits watch --socket DIR [--socket DIR ...] [--interval 0.005]

`write` (run in the client's namespace; `--host` may list several, comma-separated, for a
cluster without a floating address: libpq keeps the one that takes writes) creates table `commits (n bigint primary key, t
double precision)` if it is missing, then inserts n = 1, 2, 3 ... one per statement in
autocommit, every `interval`; a failed or refused write is retried as a new connection
after `interval` (so a write outage is measured to within it, as the issue's 10 ms
reconnects). Each line of its stdout is JSON: {"n": n, "ok": true, "at": t} once the server
acknowledged row n (t: time.monotonic), or {"n": n, "ok": false, "at": t, "error": "..."}
when that write failed (its row may or may not exist: an acknowledgement lost in flight is
not a lost commit). It stops at `duration` or SIGTERM.

`watch` (run where the sockets are: a unix socket crosses network namespaces) asks every
server `pg_is_in_recovery()` every `interval` and prints a JSON line whenever the set of
servers answering "primary" changes: {"at": t, "primaries": ["DIR", ...]}. Two in that set
at once is two primaries. A server that does not answer within 0.2 s (frozen, dead) is not
in the set: it takes no writes either.

The verdicts (`outages`, `lost`, `two_primaries`) read those lines; bench and tests share
them.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

TABLE = "CREATE TABLE IF NOT EXISTS commits (n bigint PRIMARY KEY, t double precision)"


@dataclass(frozen=True, slots=True)
class Write:
    n: int
    ok: bool
    at: float
    error: str = ""


def read_writes(lines: Iterable[str]) -> list[Write]:
    out = []
    for line in lines:
        try:
            d = json.loads(line)
            out.append(Write(int(d["n"]), bool(d["ok"]), float(d["at"]), str(d.get("error", ""))))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by the writer's end
    return out


def outages(writes: Sequence[Write], since: float = 0.0) -> list[tuple[float, float]]:
    """Each write outage after `since`: (its start, its length), from the first failed
    write to the next acknowledged one (the issue's measure)."""
    out = []
    failed_at: float | None = None
    for w in writes:
        if w.at < since:
            continue
        if not w.ok and failed_at is None:
            failed_at = w.at
        elif w.ok and failed_at is not None:
            out.append((failed_at, w.at - failed_at))
            failed_at = None
    return out


def ack_gaps(writes: Sequence[Write], longer_than: float = 0.1) -> list[tuple[float, float]]:
    """Each silence between two acknowledged writes longer than `longer_than`: (its start,
    its length). What a client sees when writes hang rather than fail (a cut link: TCP
    retries for tcp_user_timeout first), which `outages` would count from the failure."""
    acks = [w.at for w in writes if w.ok]
    return [(a, b - a) for a, b in zip(acks, acks[1:]) if b - a > longer_than]


def acknowledged(writes: Iterable[Write]) -> set[int]:
    return {w.n for w in writes if w.ok}


def lost(writes: Iterable[Write], present: Iterable[int]) -> list[int]:
    """The acknowledged rows missing from `present` (the rows the primary holds)."""
    return sorted(acknowledged(writes) - set(present))


def two_primaries(lines: Iterable[str], end: float | None = None) -> float:
    """The longest time (s) two servers both answered primary, from `watch`'s lines; two
    still at the last line count until `end` (None: infinity, not knowing when it ended)."""
    worst, since = 0.0, None
    for line in lines:
        try:
            d = json.loads(line)
            at, primaries = float(d["at"]), list(d["primaries"])
        except (ValueError, KeyError, TypeError):
            continue
        if len(primaries) > 1 and since is None:
            since = at
        elif len(primaries) <= 1 and since is not None:
            worst, since = max(worst, at - since), None
    if since is not None:
        return max(worst, float("inf") if end is None else end - since)
    return worst


# --- the processes ---------------------------------------------------------------------------


class _Stop(Exception):
    pass


def _stop(*_: object) -> None:
    raise _Stop


def _emit(d: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(d) + "\n")
    sys.stdout.flush()


def write(host: str, port: int, interval: float, duration: float, timeout: float) -> None:
    import psycopg
    end = time.monotonic() + duration
    n, conn = 1, None
    made = False
    while time.monotonic() < end:
        try:
            if conn is None:
                # No statement_timeout: a commit cancelled while it waits for the
                # synchronous standby is acknowledged anyway (with a warning), which would be
                # the client's own lost commit. A dead server is noticed by TCP instead.
                # Several hosts (no floating address: Patroni's own clients): libpq tries
                # each and keeps the one that takes writes.
                attrs = "read-write" if "," in host else "any"
                # TCP keepalives, as a careful client sets them: a server gone without a
                # word (its close lost) is noticed in about 3 s instead of never.
                conn = psycopg.connect(host=host, port=port, user="postgres", dbname="postgres",
                                       autocommit=True, connect_timeout=max(1, int(timeout)),
                                       tcp_user_timeout=int(timeout * 1000),
                                       keepalives=1, keepalives_idle=1, keepalives_interval=1,
                                       keepalives_count=2, target_session_attrs=attrs)
                if not made:
                    conn.execute(TABLE)
                    made = True
            conn.execute("INSERT INTO commits VALUES (%s, %s)", (n, time.time()))
            _emit({"n": n, "ok": True, "at": time.monotonic()})
        except psycopg.Error as e:
            _emit({"n": n, "ok": False, "at": time.monotonic(),
                   "error": (str(e).strip().splitlines() or [type(e).__name__])[0][:200]})
            if conn is not None:
                conn.close()
            conn = None
            if "duplicate key" in str(e):
                pass  # the row of an acknowledgement lost in flight: go on past it
            else:
                time.sleep(interval)
                continue
        n += 1
        time.sleep(interval)


def watch(sockets: Sequence[str], interval: float, timeout: float = 0.2) -> None:
    """One task per server, each its own connection, so that a server that does not answer
    (frozen: its kernel takes the query, nobody reads it) holds up only its own looks: after
    `timeout` it counts as not primary (it cannot take writes either) until that look ends.

    A look that times out is left pending, not cancelled: psycopg answers a cancelled
    query with a cancel request, and with libpq before 17 that is PQcancel in a thread,
    which waits without a timeout for the frozen server, holding the task, and with it the
    server's last answer ("primary"), until the thaw."""
    import asyncio

    import psycopg

    primaries: dict[str, bool] = {s: False for s in sockets}
    last: list[str] | None = None

    def changed() -> None:
        nonlocal last
        now = [s for s in sockets if primaries[s]]
        if now != last:
            _emit({"at": time.monotonic(), "primaries": now})
            last = now

    async def one(sock: str) -> None:
        conn: psycopg.AsyncConnection[Any] | None = None

        async def look() -> bool:
            nonlocal conn
            try:
                if conn is None:
                    conn = await psycopg.AsyncConnection.connect(
                        host=sock, user="postgres", dbname="postgres", autocommit=True)
                row = await (await conn.execute("SELECT pg_is_in_recovery()")).fetchone()
            except (psycopg.Error, OSError):
                if conn is not None:
                    await conn.close()
                conn = None
                return False
            return row is not None and not row[0]

        pending: asyncio.Task[bool] | None = None
        while True:
            if pending is None:
                pending = asyncio.ensure_future(look())
            done, _ = await asyncio.wait({pending}, timeout=timeout)
            if done:
                primaries[sock], pending = pending.result(), None
            else:
                primaries[sock] = False  # still waiting for it: not answering
            changed()
            await asyncio.sleep(interval)

    async def main() -> None:
        await asyncio.gather(*(one(s) for s in sockets))

    asyncio.run(main())


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="vigil.lab.commits")
    sub = ap.add_subparsers(dest="what", required=True)
    w = sub.add_parser("write")
    w.add_argument("--host", required=True)
    w.add_argument("--port", type=int, default=5432)
    w.add_argument("--interval", type=float, default=0.01)
    w.add_argument("--duration", type=float, default=60.0)
    w.add_argument("--connect-timeout", type=float, default=1.0)
    m = sub.add_parser("watch")
    m.add_argument("--socket", action="append", required=True)
    m.add_argument("--interval", type=float, default=0.005)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    try:
        if args.what == "write":
            write(args.host, args.port, args.interval, args.duration, args.connect_timeout)
        else:
            watch(args.socket, args.interval)
    except (_Stop, KeyboardInterrupt):
        pass


if __name__ == "__main__":
    main()
