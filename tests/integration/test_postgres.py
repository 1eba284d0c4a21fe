"""vigil.replica.postgres against real PostgreSQL 15 servers, one per network namespace.

Each test builds a lab of two nodes (n1, n2); every action of the controller runs in a
Python child inside the node's namespace (as the daemon will run it there), and so does
every SQL statement the test sends (over the node's unix socket, as postgres). Data
directories live in a directory of the test's own (mkdtemp, mode 0755): pytest's basetemp
root is 0700 and pytest resets it to 0700 at the start of every session, so a concurrent
pytest run would cut the postgres user off from data under tmp_path mid-test. Teardown
stops every instance (fast, then immediate), closes the lab and checks that no instance
and no namespace of it is left.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vigil.lab.netns import Lab, list_namespaces

pytestmark = pytest.mark.integration

BIN = Path("/usr/lib/postgresql/15/bin")
if not (BIN / "postgres").exists():
    pytest.skip("PostgreSQL 15 is not installed", allow_module_level=True)

ACT = textwrap.dedent("""
    import asyncio, dataclasses, json, sys
    from pathlib import Path
    from vigil.errors import AgentError
    from vigil.replica.postgres import PgSpec, Postgres
    spec, method, args, limit = json.loads(sys.argv[1])
    paths = {"data_dir", "bin_dir", "socket_dir", "log_file"}
    spec = PgSpec(**{k: Path(v) if k in paths else v for k, v in spec.items()})
    args = [tuple(a) if isinstance(a, list) else a for a in args]
    async def main():
        async with asyncio.timeout(limit):
            return await getattr(Postgres(spec), method)(*args)
    try:
        result = asyncio.run(main())
    except AgentError as e:
        print(json.dumps({"error": str(e)}))
    else:
        print(json.dumps({"result": dataclasses.asdict(result)
                          if dataclasses.is_dataclass(result) else result}))
""")
SQL = textwrap.dedent("""
    import asyncio, json, sys, psycopg
    sock, statements, limit = json.loads(sys.argv[1])
    async def main():
        async with asyncio.timeout(limit):
            async with await psycopg.AsyncConnection.connect(
                    host=sock, user="postgres", dbname="postgres", autocommit=True,
                    connect_timeout=2) as conn:
                rows = []
                for statement in statements:
                    cur = await conn.execute(statement)
                    rows = await cur.fetchall() if cur.description else []
                return rows
    try:
        print(json.dumps({"rows": asyncio.run(main())}, default=str))
    except TimeoutError:
        print(json.dumps({"timeout": True}))
""")


class Failed(Exception):
    """The controller raised AgentError; the message is its text."""


class Pair:
    """Two nodes' instances in a lab, and the means to drive them."""

    def __init__(self, lab: Lab, base: Path) -> None:
        self.lab, self.base = lab, base
        for host in ("n1", "n2"):
            (base / host).mkdir(mode=0o755)

    def addr(self, host: str) -> str:
        return self.lab.address(host)

    def spec(self, host: str, **changes: Any) -> dict[str, Any]:
        other = "n2" if host == "n1" else "n1"
        spec = {"data_dir": str(self.base / host / "data"), "host": self.addr(host),
                "peer_host": self.addr(other), "slot": f"vigil_{host}",
                "socket_dir": str(self.base / host / "sock")}
        return spec | changes

    def primary(self, host: str) -> list[Any]:
        return [self.addr(host), 5432]

    def act(self, host: str, method: str, *args: Any, limit: float = 60,
            spec: dict[str, Any] | None = None) -> Any:
        arg = json.dumps([spec or self.spec(host), method, list(args), limit])
        out = self.lab.run(host, [sys.executable, "-c", ACT, arg], timeout=limit + 15)
        answer = json.loads(out.stdout)
        if "error" in answer:
            raise Failed(answer["error"])
        return answer["result"]

    def status(self, host: str) -> dict[str, Any]:
        return self.act(host, "status")  # type: ignore[no-any-return]

    def sql(self, host: str, *statements: str, limit: float = 10) -> Any:
        """The last statement's rows; {"timeout": True} when `limit` ran out."""
        arg = json.dumps([str(self.base / host / "sock"), statements, limit])
        out = self.lab.run(host, [sys.executable, "-c", SQL, arg], timeout=limit + 15)
        answer = json.loads(out.stdout)
        return answer.get("rows", answer)

    def sql_popen(self, host: str, *statements: str) -> subprocess.Popen[str]:
        arg = json.dumps([str(self.base / host / "sock"), statements, 60])
        return self.lab.popen(host, [sys.executable, "-c", SQL, arg], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)

    def replicate(self) -> None:
        """n1 a new primary, n2 its new standby, a table t on both."""
        self.act("n1", "init_primary")
        self.act("n1", "start", None)
        self.act("n2", "build_standby", self.addr("n1"), 5432)
        self.act("n2", "start", self.primary("n1"))
        self.sql("n1", "CREATE TABLE t (v text)")
        wait(lambda: self.sql("n2", "SELECT count(*) FROM t") == [[0]], "n2 to have table t")

    def rows(self, host: str) -> list[str]:
        return [r[0] for r in self.sql(host, "SELECT v FROM t ORDER BY v")]

    def stop_all(self) -> list[str]:
        """Stop every instance under base (fast, then immediate); those still running."""
        left = []
        for d in sorted(self.base.glob("*/*")):
            if not (d / "postmaster.pid").exists():
                continue
            for mode in ("fast", "immediate"):
                if _pg_ctl("status", "-D", str(d)).returncode != 0:
                    break
                _pg_ctl("stop", "-D", str(d), "-m", mode, "-w", "-t", "10")
            if _pg_ctl("status", "-D", str(d)).returncode == 0:
                left.append(str(d))
        return left


def _pg_ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "postgres", "--", str(BIN / "pg_ctl"), *args],
                          capture_output=True, text=True, timeout=30, cwd="/")


def wait(predicate: Callable[[], Any], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:  # not there yet (a table not replicated, a connection refused)
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def pair() -> Iterator[Pair]:
    base = Path(tempfile.mkdtemp(prefix="vigil-pg-"))
    base.chmod(0o755)
    lab = Lab.create(["n1", "n2"])
    p = Pair(lab, base)
    try:
        yield p
    finally:
        left = p.stop_all()
        lab.close()
        try:
            assert not left, f"still running after teardown: {left}"
            assert not [n for n in list_namespaces() if n.startswith(lab.prefix + "-")]
        finally:
            shutil.rmtree(base, ignore_errors=True)


def test_a_standby_is_built_streams_and_reports_itself(pair: Pair) -> None:
    pair.replicate()
    pair.sql("n1", "INSERT INTO t VALUES ('one')")
    wait(lambda: pair.rows("n2") == ["one"], "the row on n2")

    s1 = pair.status("n1")
    assert (s1["running"], s1["role"], s1["timeline"], s1["problem"]) == (True, "primary", 1, None)
    assert [(s["name"], s["state"]) for s in s1["standbys"]] == [("vigil_n2", "streaming")]
    s2 = pair.status("n2")
    assert (s2["running"], s2["role"], s2["streaming"], s2["problem"]) == (
        True, "standby", True, None)
    assert s2["system_id"] == s1["system_id"] and s2["timeline"] == 1
    assert pair.sql("n1", "SELECT slot_name, active FROM pg_replication_slots") == [
        ["vigil_n2", True]]

    pair.sql("n1", "INSERT INTO t SELECT 'more' FROM generate_series(1, 1000)")
    wait(lambda: (lambda s: s["lsn"] > s2["lsn"] and s["receive_lsn"] > s2["receive_lsn"])(
        pair.status("n2")), "n2's positions to advance")
    # Already running in the role asked for: nothing to do.
    pair.act("n1", "start", None)
    pair.act("n2", "start", pair.primary("n1"))
    with pytest.raises(Failed, match="runs as a standby: promote"):
        pair.act("n2", "start", None)


def test_a_synchronous_standby_holds_commits_until_it_is_back(pair: Pair) -> None:
    pair.replicate()
    pair.act("n1", "set_sync", "vigil_n2")
    assert pair.status("n1")["sync_names"] == "vigil_n2"
    wait(lambda: [s["sync_state"] for s in pair.status("n1")["standbys"]] == ["sync"],
         "n2 to be the synchronous standby")
    pair.act("n2", "stop")
    assert pair.status("n2")["role"] == "stopped"

    assert pair.sql("n1", "INSERT INTO t VALUES ('cut short')", limit=2) == {"timeout": True}
    held = pair.sql_popen("n1", "INSERT INTO t VALUES ('held')", "SELECT 'done'")
    time.sleep(2)
    assert held.poll() is None, "the commit returned without its synchronous standby"
    pair.act("n2", "start", pair.primary("n1"))
    out, err = held.communicate(timeout=30)
    assert held.returncode == 0 and json.loads(out) == {"rows": [["done"]]}, err

    pair.act("n1", "set_sync", "")
    assert pair.status("n1")["sync_names"] == ""
    pair.act("n2", "stop")
    started = time.monotonic()
    assert pair.sql("n1", "INSERT INTO t VALUES ('free')", "SELECT 1", limit=5) == [[1]]
    assert time.monotonic() - started < 5
    with pytest.raises(Failed, match="set_sync: synchronous standby names must be"):
        pair.act("n1", "set_sync", "vigil_n2'; DROP TABLE t; --")


def test_switchover_rewinds_the_old_primary_onto_the_new_one(pair: Pair) -> None:
    pair.replicate()
    pair.sql("n1", "INSERT INTO t VALUES ('before')")
    wait(lambda: pair.rows("n2") == ["before"], "the row on n2")
    pair.act("n1", "stop")
    pair.act("n2", "promote")
    s2 = pair.status("n2")
    assert (s2["role"], s2["timeline"]) == ("primary", 2)

    pair.act("n1", "demote", pair.primary("n2"))
    wait(lambda: pair.status("n1")["streaming"], "n1 to stream from n2")
    s1 = pair.status("n1")
    assert (s1["role"], s1["timeline"], s1["problem"]) == ("standby", 2, None)
    pair.sql("n2", "INSERT INTO t VALUES ('after')")
    wait(lambda: pair.rows("n1") == ["after", "before"], "n2's row on n1")
    wait(lambda: [(s["name"], s["state"]) for s in pair.status("n2")["standbys"]]
         == [("vigil_n1", "streaming")], "n1 among n2's standbys")
    # A stopped standby started as a primary is promoted: a timeline of its own.
    pair.act("n1", "stop")
    pair.act("n1", "start", None)
    s1 = pair.status("n1")
    assert (s1["role"], s1["timeline"]) == ("primary", 3)


def test_a_diverged_primary_is_rewound_and_loses_its_own_writes(pair: Pair) -> None:
    pair.replicate()
    pair.sql("n1", "INSERT INTO t VALUES ('common')")
    wait(lambda: pair.rows("n2") == ["common"], "the row on n2")
    pair.act("n2", "promote")  # n1 still runs: two primaries
    pair.sql("n1", "INSERT INTO t VALUES ('only on n1')")
    pair.sql("n2", "INSERT INTO t VALUES ('only on n2')")
    s1, s2 = pair.status("n1"), pair.status("n2")
    assert (s1["role"], s1["timeline"], s2["role"], s2["timeline"]) == (
        "primary", 1, "primary", 2)

    pair.act("n1", "demote", pair.primary("n2"))
    wait(lambda: pair.status("n1")["streaming"], "n1 to stream from n2")
    assert pair.rows("n1") == ["common", "only on n2"]
    s1 = pair.status("n1")
    assert (s1["role"], s1["timeline"], s1["system_id"]) == ("standby", 2, s2["system_id"])


def test_a_crashed_primary_is_recovered_by_pg_rewind_then_rewound(pair: Pair) -> None:
    pair.replicate()
    pair.act("n2", "promote")
    pair.sql("n1", "INSERT INTO t VALUES ('lost')")
    pair.act("n1", "stop", "immediate")
    s1 = pair.status("n1")
    assert s1["role"] == "stopped" and "not shut down cleanly" in s1["problem"], s1
    pair.sql("n2", "INSERT INTO t VALUES ('kept')")

    pair.act("n1", "demote", pair.primary("n2"))
    wait(lambda: pair.status("n1")["streaming"], "n1 to stream from n2")
    assert pair.rows("n1") == ["kept"]


def test_bad_input_is_refused_and_named(pair: Pair) -> None:
    missing = pair.spec("n1", data_dir=str(pair.base / "n1" / "missing"))
    with pytest.raises(Failed, match=f"data directory {missing['data_dir']} does not exist"):
        pair.act("n1", "validate", spec=missing)
    s = pair.act("n1", "status", spec=missing)
    assert (s["running"], s["role"]) == (False, "stopped") and "does not exist" in s["problem"]
    rooted = pair.base / "n1" / "rooted"
    rooted.mkdir(mode=0o700)
    (rooted / "PG_VERSION").write_text("15\n")
    with pytest.raises(Failed, match=f"data directory {rooted} is owned by root, not postgres"):
        pair.act("n1", "validate", spec=pair.spec("n1", data_dir=str(rooted)))
    with pytest.raises(Failed, match="user = root"):
        pair.act("n1", "validate", spec=pair.spec("n1", user="root"))

    pair.act("n1", "init_primary")
    s = pair.status("n1")
    assert (s["role"], s["timeline"], s["problem"]) == ("stopped", 1, "not running")
    assert isinstance(s["system_id"], int) and s["lsn"] > 0
    data = pair.base / "n1" / "data"
    hba = data / "pg_hba.conf"
    kept = hba.read_text()
    hba.write_text("".join(line for line in kept.splitlines(keepends=True)
                           if "replication" not in line.split("#")[0]))
    with pytest.raises(Failed, match=f"{hba} has no entry for replication connections of "
                                     f"replicator from {pair.addr('n2')}"):
        pair.act("n1", "start", None)
    hba.write_text(kept)
    auto = data / "postgresql.auto.conf"
    auto.write_text(auto.read_text() + "port = 5433\n")
    with pytest.raises(Failed, match="postgresql.auto.conf sets port, which vigil sets"):
        pair.act("n1", "validate")
    assert not (data / "postmaster.pid").exists()

    target = pair.base / "n2" / "data"
    target.mkdir()
    (target / "keep.me").write_text("precious\n")
    with pytest.raises(Failed, match="refusing to build a standby in .*: it is not empty"):
        pair.act("n2", "build_standby", pair.addr("n1"), 5432)
    assert os.listdir(target) == ["keep.me"] and (target / "keep.me").read_text() == "precious\n"
