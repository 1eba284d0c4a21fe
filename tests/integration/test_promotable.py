"""A promotable group with a real PostgreSQL 15 on two vigil daemons in namespaces
(issue 15): the standby is built by the daemon from an empty directory, a switchover
(`vigil switchover`) promotes it and rewinds the old primary into a standby of it, and
when the primary's whole node dies (lab reset: every process there killed, the address
gone) the synchronous standby takes over and, once the dead node's daemon is back, its
instance comes back as a standby by itself. Every committed row is on the new primary each time.
The group and its lab are vigil.lab.pgpair's.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_postgres import BIN, SQL, wait
from vigil.lab import commits, disk, pgpair
from vigil.lab.cluster import LabCluster
from vigil.lab.netns import Lab, list_namespaces
from vigil.lab.watchdog import StandInWatchdog

pytestmark = pytest.mark.integration

class Db:
    def __init__(self, c: LabCluster, dogs: dict[str, StandInWatchdog] | None = None) -> None:
        self.c, self.dogs = c, dogs or {}

    def sql(self, node: str, *statements: str, limit: float = 10) -> Any:
        arg = json.dumps([str(self.c.dir / node / "sock"), statements, limit])
        out = self.c.lab.run(node, [sys.executable, "-c", SQL, arg], timeout=limit + 15)
        answer = json.loads(out.stdout)
        return answer.get("rows", answer)

    def write(self, node: str, *statements: str) -> None:
        """Committed within 5 s, or the test fails (a commit waiting for nobody)."""
        got = self.sql(node, *statements, limit=5)
        assert isinstance(got, list), f"on {node}: {statements}: {got}"

    def role(self, node: str) -> str | None:
        try:
            rows = self.sql(node, "SELECT pg_is_in_recovery()", limit=3)
        except Exception:
            return None
        return None if not isinstance(rows, list) else "standby" if rows[0][0] else "primary"

    def streaming(self, standby: str) -> bool:
        rows = self.sql(standby, "SELECT status FROM pg_stat_wal_receiver", limit=3)
        return rows == [["streaming"]]

    def rows(self, node: str) -> list[int]:
        return [r[0] for r in self.sql(node, "SELECT n FROM t ORDER BY n")]

    def holder(self) -> str | None:
        held = self.c.holders()
        return held[0] if len(held) == 1 else None


@pytest.fixture
def db(request: pytest.FixtureRequest) -> Iterator[Db]:
    """`@pytest.mark.resource_lines(...)`: more keys of the postgresql resource (@DIR@: the
    lab's directory); `witness`, `watchdog`: a witness in the client's namespace, stand-in
    watchdogs (vigil.lab.pgpair)."""
    if not (BIN / "postgres").exists():
        pytest.skip("PostgreSQL 15 is not installed")
    mark = request.node.get_closest_marker("resource_lines")
    c = LabCluster(groups="")
    dogs: dict[str, StandInWatchdog] = {}
    try:
        dogs = pgpair.configure(c, mark.args[0] if mark else "",
                                witness=bool(request.node.get_closest_marker("witness")),
                                watchdogs=bool(request.node.get_closest_marker("watchdog")))
        yield Db(c, dogs)
    finally:
        for n in pgpair.NODES:
            if n in c.daemons:
                c.stop(n)
        pgpair.stop_servers(c)
        for dog in dogs.values():  # after the daemons: they feed it until they stop
            dog.close()
        c.close()  # keeps c.dir with VIGIL_KEEP_LAB_DIR set
        if os.environ.get("VIGIL_KEEP_LAB_DIR") is None:
            shutil.rmtree(c.dir, ignore_errors=True)
        assert not [n for n in list_namespaces() if n.startswith(c.lab.prefix + "-")]


def _formed(db: Db, primary: str, standby: str, timeout: float = 60,
            sync: bool = False) -> None:
    """`primary` holds the group and `standby` streams from it; with `sync`, as its
    synchronous standby (the contract in force: a healthy cluster, where a fault may
    strike without an acknowledged commit existing only on the primary)."""
    wait(lambda: db.role(primary) == "primary" and db.holder() == primary,
         f"{primary} primary holding the group", timeout)
    wait(lambda: db.role(standby) == "standby" and db.streaming(standby),
         f"{standby} a streaming standby", timeout)
    if sync:
        wait(lambda: db.sql(primary, "SELECT sync_state FROM pg_stat_replication") ==
             [["sync"]], f"{standby} the synchronous standby", timeout)


def _start_both(db: Db, sync: bool = False) -> None:
    """Both daemons started: n1 creates the cluster and holds the group, n2 streams."""
    db.c.start("n1")
    db.c.start("n2")
    _formed(db, "n1", "n2", sync=sync)


def test_standby_built_switchover_and_failover_with_rewind(db: Db) -> None:
    c = db.c
    _start_both(db)
    db.write("n1", "CREATE TABLE t (n int primary key)",
           "INSERT INTO t SELECT generate_series(1, 100)")
    # synchronous: the standby's slot is in synchronous_standby_names once it streams
    wait(lambda: db.sql("n1", "SHOW synchronous_standby_names") == [["vigil_n2"]],
         "n1 to wait for n2")
    assert db.rows("n2") == list(range(1, 101)), "a synchronous commit is on the standby"

    # a planned switchover: n2 promoted, n1 rewound and following it
    bad = c.vigil("n1", "switchover", "nope")
    assert bad.returncode != 0 and "no group 'nope'" in bad.stderr, bad
    assert c.vigil("n1", "switchover", "db").returncode == 0
    _formed(db, "n2", "n1")
    assert db.rows("n2") == list(range(1, 101))
    db.write("n2", "INSERT INTO t SELECT generate_series(101, 200)")
    wait(lambda: db.sql("n2", "SHOW synchronous_standby_names") == [["vigil_n1"]],
         "n2 to wait for n1")
    tl = db.sql("n2", "SELECT timeline_id FROM pg_control_checkpoint()")[0][0]
    assert tl == 2, "the promotion began timeline 2"

    # the primary's node dies: n1, the synchronous standby, takes over with every row
    db.write("n2", "INSERT INTO t SELECT generate_series(201, 300)")
    c.reset("n2")
    wait(lambda: db.role("n1") == "primary" and db.holder() == "n1", "n1 to take over", 30)
    assert db.rows("n1") == list(range(1, 301)), "no acknowledged commit lost"
    # it accepts writes at once: its contract ended with its old life, and the names it
    # got from n2 by the rewind (vigil_n1: itself) are cleared
    db.write("n1", "INSERT INTO t SELECT generate_series(301, 400)")
    # n2's daemon comes back: its crashed instance is rewound and follows n1
    c.start("n2")
    _formed(db, "n1", "n2")
    wait(lambda: db.rows("n2") == list(range(1, 401)), "n2 to have every row")
    log = c.log("n2")
    assert "a standby of" in log, log[-3000:]


@pytest.mark.resource_lines('pre_promote = ["/bin/sh", "-c", "test -e @DIR@/allow || '
                            '{ echo not allowed >&2; exit 3; }"]')
def test_pre_promote_vetoes_and_a_killed_postmaster_restarts_in_place(db: Db) -> None:
    c = db.c
    c.start("n1")
    c.start("n2")
    wait(lambda: "vetoed the promotion" in c.log("n1"), "n1's veto", 20)
    st = c.status("n1")["groups"][0]
    assert st["state"] == "stopped" and "not allowed" in st["failed_start"], st
    assert db.holder() is None and db.role("n1") is None, "vetoed: nothing runs"
    (c.dir / "allow").touch()
    assert c.vigil("n1", "resource", "cleanup", "db").returncode == 0
    _formed(db, "n1", "n2")
    # the status shows both instances
    st = c.status("n1")["groups"][0]
    assert st["replicas"]["n1"]["role"] == "primary", st
    wait(lambda: c.status("n1")["groups"][0]["replicas"]["n2"]["lag_bytes"] == 0,
         "n2 caught up in n1's status")
    text = c.vigil("n1", "status").stdout
    assert "synchronous standby n2" in text and "bytes behind" in text, text
    db.write("n1", "CREATE TABLE t (n int primary key)",
             "INSERT INTO t SELECT generate_series(1, 50)")
    # kill -9 of the postmaster: the monitor restarts it in place, as primary, same timeline
    os.kill(pgpair.postmaster(c, "n1"), 9)
    wait(lambda: "restarting it in place" in c.log("n1"), "the monitor to notice", 20)
    _formed(db, "n1", "n2")
    db.write("n1", "INSERT INTO t SELECT generate_series(51, 100)")
    assert db.rows("n1") == list(range(1, 101))
    assert db.sql("n1", "SELECT timeline_id FROM pg_control_checkpoint()")[0][0] == 1
    events = c.log("n1")
    assert events.count("promoted data=") == 0, "a restart in place is no promotion"


LAG_RULES = """table inet lag {
    chain output { type filter hook output priority 0; policy accept; tcp dport 5432 drop; }
    chain input { type filter hook input priority 0; policy accept; tcp sport 5432 drop; }
}
"""


@pytest.mark.resource_lines('synchronous = "off"\nmax_lag = "64kB"')
def test_a_standby_past_max_lag_is_promoted_only_when_an_operator_forces_it(db: Db) -> None:
    """Asynchronous mode: n2's replication is cut (its TCP to and from port 5432 dropped;
    the heartbeats flow) while n1 commits, then n1's host dies. n2 knows from n1's last
    heartbeat how far behind it is, past max_lag: it does not promote. `vigil switchover db
    --force` on n2 promotes it, logged, and it takes the address; what it missed is lost,
    as the operator chose."""
    c = db.c
    _start_both(db)
    db.write("n1", "CREATE TABLE t (n int primary key)",
             "INSERT INTO t SELECT generate_series(1, 10)")
    wait(lambda: db.rows("n2") == list(range(1, 11)), "n2 to have the first rows")
    rules = c.dir / "lag.nft"
    rules.write_text(LAG_RULES)
    c.lab.run("n2", ["nft", "-f", str(rules)])
    db.write("n1", "INSERT INTO t SELECT generate_series(11, 200000)")  # some MB of WAL
    wait(lambda: (c.status("n1")["groups"][0]["replicas"]["n2"].get("lag_bytes") or 0)
         > 64 * 1024, "n2 to lag past max_lag in n1's status")
    time.sleep(0.5)  # n1's heartbeats carry its position to n2
    c.reset("n1")
    wait(lambda: "exceeds max_lag" in json.dumps(c.status("n2")), "n2 to refuse", 30)
    assert db.role("n2") == "standby" and db.holder() is None
    wrong = c.vigil("n2", "switchover", "db", "n1", "--force")
    assert wrong.returncode != 0 and "run it on n1" in wrong.stderr, wrong
    forced = c.vigil("n2", "switchover", "db", "--force")
    assert forced.returncode == 0 and "exceeds max_lag" in forced.stdout, forced
    wait(lambda: db.role("n2") == "primary" and db.holder() == "n2", "n2 promoted", 30)
    assert "an operator forced the promotion of group db here" in c.log("n2")
    assert len(db.rows("n2")) < 200000, "it lacks what it missed (the operator's choice)"
    again = c.vigil("n2", "switchover", "db", "--force")
    assert again.returncode != 0 and "already primary" in again.stderr, again
    c.lab.run("n2", ["nft", "delete", "table", "inet", "lag"])


def test_a_primary_whose_disk_fills_is_reported_and_handed_over(db: Db) -> None:
    """n1's data directory on a filesystem of its own (160 MB of ext4 on a loop device):
    batches of rows until PostgreSQL cannot write its WAL. The keeper warned as the disk
    filled and the status said how full it was; the primary stops (PANIC), its restarts in
    place fail, and by the usual failure rules the group goes to n2, the synchronous
    standby, with every acknowledged batch."""
    c = db.c
    mnt = pgpair.data_dir(c, "n1")
    mnt.mkdir(parents=True)
    with disk.loop_device(c.dir / "n1.img", 160 << 20, "ext4") as dev:
        subprocess.run(["mount", dev, str(mnt)], check=True)
        try:
            (mnt / "lost+found").rmdir()
            pg = pwd.getpwnam("postgres")
            os.chown(mnt, pg.pw_uid, pg.pw_gid)
            mnt.chmod(0o700)
            _start_both(db, sync=True)
            db.write("n1", "CREATE TABLE t (n int primary key, pad text)")
            acked = 0
            for i in range(40):
                try:
                    got = db.sql("n1", f"INSERT INTO t SELECT g, repeat('x', 1000) FROM "
                                 f"generate_series({acked + 1}, {acked + 5000}) g", limit=20)
                except Exception:  # the server went away mid-statement
                    break
                if not isinstance(got, list):
                    break
                acked += 5000
                if i == 3:  # still room: the status tells how full the disk is
                    mine = c.status("n1")["groups"][0]["replicas"]["n1"]
                    assert 0 < mine["disk_free_bytes"] < mine["disk_size_bytes"], mine
                    assert "data disk" in c.vigil("n1", "status").stdout
            else:
                pytest.fail("160 MB never filled")
            assert acked > 0
            wait(lambda: "filesystem is" in c.log("n1"), "the keeper's warning", 20)
            wait(lambda: db.role("n2") == "primary" and db.holder() == "n2",
                 "n2 to take over", 90)
            assert len(db.rows("n2")) >= acked, "every acknowledged batch is on n2"
        finally:  # nothing may run on the filesystem when it is unmounted
            try:
                for n in pgpair.NODES:
                    if n in c.daemons:
                        c.stop(n)
                pgpair.stop_servers(c)
            finally:  # and it is unmounted whatever failed before
                for _ in range(50):
                    if subprocess.run(["umount", str(mnt)],
                                      capture_output=True).returncode == 0:
                        break
                    time.sleep(0.2)
                else:
                    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _acked_since(path: Path, since: float) -> bool:
    return any(w.ok and w.at > since for w in commits.read_writes(
        path.read_text().splitlines()))


@pytest.mark.witness
@pytest.mark.watchdog
def test_no_acknowledged_commit_is_lost_and_never_two_primaries(db: Db) -> None:
    """The Jepsen-style check (vigil.lab.commits): a client writes numbered rows through
    the floating address every 10 ms while the primary is switched over, its host reset,
    its postmaster killed, its link cut (every packet in and out dropped: the witness, in
    the client's namespace, decides), its whole host frozen (SIGSTOP of every process
    there: its watchdog, a stand-in, resets it; the peer takes over once its address stops
    answering) and every vigil process of its host killed at once (issue 8's total kill:
    PostgreSQL runs on unmanaged until the watchdog resets the host), twice each,
    alternating nodes. Every acknowledged row is on the last
    primary, and the watcher polling both servers over their unix sockets every 5 ms never
    saw two primaries."""
    c = db.c
    _start_both(db)
    pgpair.admit_client(c)
    writes, seen = c.dir / "writes.jsonl", c.dir / "watch.jsonl"
    watcher = subprocess.Popen(
        [sys.executable, "-m", "vigil.lab.commits", "watch", "--socket",
         str(c.dir / "n1" / "sock"), "--socket", str(c.dir / "n2" / "sock")],
        stdout=seen.open("w"), stderr=subprocess.DEVNULL)
    writer = c.lab.popen("client", [sys.executable, "-m", "vigil.lab.commits", "write",
                                    "--host", c.vip, "--duration", "300"],
                         stdout=writes.open("w"), stderr=subprocess.DEVNULL)
    try:
        wait(lambda: _acked_since(writes, 0), "the first acknowledged write")
        primary, standby = "n1", "n2"
        for fault in ("switchover", "reset", "postmaster", "cut", "freeze", "total_kill") * 2:
            t0 = time.monotonic()
            print(f"{time.strftime('%H:%M:%S')} {fault} of {primary}")
            if fault == "switchover":
                assert c.vigil(primary, "switchover", "db", standby).returncode == 0
                primary, standby = standby, primary
            elif fault == "reset":
                c.reset(primary)
                if primary in db.dogs:
                    db.dogs[primary].rebooted()
                wait(lambda: db.role(standby) == "primary", f"{standby} promoted", 30)
                c.start(primary)
                primary, standby = standby, primary
            elif fault == "freeze":
                dog = db.dogs[primary]
                fired = len(dog.expired)
                frozen = pgpair.freeze(c, primary)
                wait(lambda: len(dog.expired) > fired, f"{primary}'s watchdog", 30)
                wait(lambda: db.role(standby) == "primary", f"{standby} promoted", 30)
                pgpair.signal_all(frozen, signal.SIGCONT)  # the reset killed them: the rest
                c.start(primary)
                primary, standby = standby, primary
            elif fault == "total_kill":
                # issue 8's: every vigil process of the primary's host killed at once; its
                # PostgreSQL and address live on, unmanaged, until its watchdog resets it
                dog = db.dogs[primary]
                fired = len(dog.expired)
                c.kill_all(primary)
                wait(lambda: len(dog.expired) > fired, f"{primary}'s watchdog", 30)
                wait(lambda: db.role(standby) == "primary", f"{standby} promoted", 30)
                c.start(primary)
                primary, standby = standby, primary
            elif fault == "cut":
                c.lab.drop(primary, "both")
                wait(lambda: db.role(standby) == "primary", f"{standby} promoted", 30)
                assert db.role(primary) is None, "the cut-off primary stopped itself"
                c.lab.undrop(primary)
                primary, standby = standby, primary
            else:
                os.kill(pgpair.postmaster(c, primary), 9)
            _formed(db, primary, standby, sync=True)
            wait(lambda: _acked_since(writes, t0 + 0.1), f"writes after {fault}", 30)
    finally:
        Lab.stop(writer)
        watcher.terminate()
        watcher.wait(10)
    done = commits.read_writes(writes.read_text().splitlines())
    present = [r[0] for r in db.sql(primary, "SELECT n FROM commits")]
    assert len(commits.acknowledged(done)) > 100
    assert commits.lost(done, present) == [], "acknowledged commits lost"
    assert commits.two_primaries(seen.read_text().splitlines()) == 0.0
    print("write outages (s):", [round(n, 3) for _, n in commits.outages(done)])
    print("silences between acknowledged writes (s):",
          [round(n, 3) for _, n in commits.ack_gaps(done)])
