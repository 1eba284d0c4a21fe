"""A Patroni 3.0.2 cluster in the lab: the anchor that vigil's replicated PostgreSQL is
measured beside (a `Servers` of bench/pg_run.py; bench/pg_failover.py runs both). Also the
psql reading of a server's state both systems share (`PsqlNodes`, `parse_state`,
`healthy_primary`).

    with PatroniCluster.create(PROFILES["tight"]) as c:
        c.form()                  # etcd, then n1 (bootstraps, leader), then n2 (sync standby)
        c.healthy({"n1"})         # "n1" once n1 is primary and n2 streams from it as sync

Hosts: "dcs" (one etcd 3.4 member, v3 API on :2379), "n1" and "n2" (PostgreSQL 15 under
Patroni, REST API on :8008, postgres on :5432 and on a unix socket of its own), "client" (the
writer and the watcher). Everything a run makes lives in one mkdtemp directory, mode 0755 so
that the postgres user reaches its node's directory in it (as in
tests/integration/test_postgres.py): etcd's data, each node's Patroni configuration (JSON,
which is YAML), data directory, socket directory, .pgpass and log.

The servers' state is read over their unix sockets with psql, one process per question with a
hard timeout: a socket crosses network namespaces (so a cut node is still seen), and a frozen
server can only hang a child that is then killed, never the bench. `close` always stops
Patroni (which stops its postgres), etcd, closes the lab (which kills whatever is left inside
its namespaces) and removes the directory.

n1 bootstraps and leads, n2 is its synchronous standby (synchronous_mode). The writer runs
against both nodes (libpq multi-host, target_session_attrs=read-write: Patroni has no
floating address, its clients find the primary themselves). The faults, as Patroni gets
them:

  node_kill        SIGKILL of every process in its namespace; Patroni started there again
                   once writes go to the other node
  link_cut         all its traffic but loopback dropped (nftables in its namespace); healed
                   once writes go to the other node
  postmaster_kill  kill -9 of its postmaster (Patroni restarts it in place, or fails over)
  switchover       patronictl switchover --leader P --candidate S --force
  freeze           SIGSTOP of every process in its namespace for --freeze s, then SIGCONT
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from vigil.lab.netns import Lab

BIN = Path("/usr/lib/postgresql/15/bin")
HOSTS = ("dcs", "n1", "n2", "client")
NODES = ("n1", "n2")
SCOPE = "bench"
DCS = ("etcd3", "etcd")
STATE_SQL = ("SELECT pg_is_in_recovery(), coalesce((SELECT string_agg(application_name || ':' "
             "|| state || ':' || sync_state, ',') FROM pg_stat_replication), ''), "
             "coalesce((SELECT status FROM pg_stat_wal_receiver), '')")
CUT = """table inet cut {
    chain input { type filter hook input priority -300; policy accept; iif "lo" accept; drop; }
    chain output { type filter hook output priority -300; policy accept; oif "lo" accept; drop; }
}
"""


@dataclass(frozen=True, slots=True)
class Timing:
    """Patroni's DCS timings. Its documented rule, loop_wait + 2 * retry_timeout <= ttl,
    keeps a leader that cannot reach the DCS from outliving its key (3.0.2 does not check
    it: a bad profile would measure a broken configuration)."""
    ttl: int
    loop_wait: int
    retry_timeout: int

    def __post_init__(self) -> None:
        if self.loop_wait + 2 * self.retry_timeout > self.ttl:
            raise ValueError(f"loop_wait + 2 * retry_timeout > ttl in {self}")


PROFILES = {"default": Timing(ttl=30, loop_wait=10, retry_timeout=10),  # Patroni's own
            "tight": Timing(ttl=10, loop_wait=1, retry_timeout=4)}


def patroni_config(node: str, addr: dict[str, str], base: Path, t: Timing,
                   dcs: str = "etcd3") -> dict[str, Any]:
    """Node `node`'s Patroni configuration: `addr` maps every lab host to its address; `dcs`
    is Patroni's client of etcd: "etcd3" (the v3 API) or "etcd" (the v2 API, which etcd 3.4
    serves with --enable-v2). They differ where it matters: 3.0.2's etcd3 client may
    overwrite another node's leader key once its own lease has expired (fixed in 3.0.3,
    patroni/patroni#2689); the v2 client updates it with a compare-and-swap."""
    d = base / node
    nets = [f"{addr[h]}/32" for h in ("n1", "n2")]
    hba = (["local all all trust"] + [f"host replication replicator {n} trust" for n in nets]
           + [f"host all all {addr[h]}/32 trust" for h in ("n1", "n2", "client")])
    return {
        "scope": SCOPE, "name": node,
        "restapi": {"listen": f"{addr[node]}:8008", "connect_address": f"{addr[node]}:8008"},
        dcs: {"host": f"{addr['dcs']}:2379"},
        "bootstrap": {
            "dcs": {"ttl": t.ttl, "loop_wait": t.loop_wait, "retry_timeout": t.retry_timeout,
                    "synchronous_mode": True,
                    "postgresql": {"use_pg_rewind": True, "use_slots": True,
                                   "parameters": {"wal_log_hints": "on"}}},
            "initdb": [{"encoding": "UTF8"}],
        },
        "postgresql": {
            "listen": f"{addr[node]}:5432", "connect_address": f"{addr[node]}:5432",
            "data_dir": str(d / "data"), "bin_dir": str(BIN), "pgpass": str(d / "pgpass"),
            "use_unix_socket": True, "use_pg_rewind": True, "pg_hba": hba,
            "authentication": {"superuser": {"username": "postgres", "password": "postgres"},
                               "replication": {"username": "replicator", "password": "rep"}},
            "parameters": {"unix_socket_directories": str(d / "sock")},
        },
        "watchdog": {"mode": "off"},  # no watchdog device in the lab
    }


@dataclass(frozen=True, slots=True)
class NodeState:
    """One server's answer: primary or not, its standbys {name: (state, sync_state)}, its
    WAL receiver's status ("" when none)."""
    primary: bool
    standbys: dict[str, tuple[str, str]]
    receiver: str


def parse_state(out: str) -> NodeState | None:
    """psql -At's line for STATE_SQL, or None when it is not one."""
    parts = out.strip().split("|")
    if len(parts) != 3 or parts[0] not in ("t", "f"):
        return None
    standbys = {}
    for item in filter(None, parts[1].split(",")):
        name, state, sync = (item.split(":") + ["", ""])[:3]
        standbys[name] = (state, sync)
    return NodeState(parts[0] == "f", standbys, parts[2])


def healthy_primary(states: dict[str, NodeState | None], allowed: set[str],
                    sync: bool = False, names: dict[str, str] | None = None) -> str | None:
    """The primary when the pair is whole: one node primary (one of `allowed`), the other a
    standby streaming from it (as its synchronous standby if `sync`); else None. `names`:
    each node's application_name when it is not the node's name (vigil: vigil_n1)."""
    primaries = [n for n, s in states.items() if s is not None and s.primary]
    if len(primaries) != 1 or primaries[0] not in allowed:
        return None
    p = primaries[0]
    for n, s in states.items():
        if n == p:
            continue
        seen = states[p].standbys.get((names or {}).get(n, n))  # type: ignore[union-attr]
        if (s is None or s.receiver != "streaming" or seen is None or seen[0] != "streaming"
                or (sync and seen[1] != "sync")):
            return None
    return p


class PsqlNodes:
    """The servers' state over their unix sockets, with psql, for either system: a
    subclass says where each node's socket is (and `healthy`, what a whole pair is)."""

    def socket(self, node: str) -> Path:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def sql(self, node: str, query: str, timeout: float = 5) -> str | None:
        """`query`'s output (psql -At) over the node's unix socket, None if it failed or
        did not answer within `timeout` (a frozen or dead server)."""
        env = dict(os.environ, PGCONNECT_TIMEOUT=str(max(1, int(timeout))))
        try:
            r = subprocess.run([str(BIN / "psql"), "-XAtq", "-h", str(self.socket(node)),
                                "-U", "postgres", "-d", "postgres", "-c", query],
                               capture_output=True, text=True, timeout=timeout, env=env,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return None
        return r.stdout if r.returncode == 0 else None

    def state(self, node: str) -> NodeState | None:
        out = self.sql(node, STATE_SQL, timeout=2)
        return None if out is None else parse_state(out)

    def states(self) -> dict[str, NodeState | None]:
        return {n: self.state(n) for n in NODES}

    def rows(self, node: str) -> list[int] | None:
        out = self.sql(node, "SELECT n FROM commits", timeout=30)
        return None if out is None else [int(x) for x in out.split()]


class PatroniCluster(PsqlNodes):
    """The lab, etcd and the two Patroni nodes of one run. Build it with `create`."""

    def __init__(self, lab: Lab, base: Path, timing: Timing, dcs: str = "etcd3") -> None:
        if dcs not in DCS:
            raise ValueError(f"dcs must be one of {DCS}, not {dcs!r}")
        self.lab, self.base, self.timing, self.dcs = lab, base, timing, dcs
        self.addr = {h: lab.address(h) for h in HOSTS}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []
        self.keep: Path | None = None  # where `close` copies the logs, if anywhere
        pg = pwd.getpwnam("postgres")
        for node in NODES:
            d = base / node
            (d / "sock").mkdir(parents=True)
            for p in (d, d / "sock"):
                os.chown(p, pg.pw_uid, pg.pw_gid)
            self.config(node).write_text(json.dumps(
                patroni_config(node, self.addr, base, timing, dcs), indent=1))

    @classmethod
    def create(cls, timing: Timing, dcs: str = "etcd3") -> PatroniCluster:
        lab = Lab.create(list(HOSTS))
        # Not "<lab prefix>-...": the lab's own directories are named so, and are removed
        # by their makers' clean-ups.
        base = Path(tempfile.mkdtemp(prefix=f"pg-patroni-{lab.prefix}-"))
        try:
            base.chmod(0o755)
            return cls(lab, base, timing, dcs)
        except BaseException:
            lab.close()
            shutil.rmtree(base, ignore_errors=True)
            raise

    # -- paths ----------------------------------------------------------------------------

    def config(self, node: str) -> Path:
        return self.base / node / "patroni.json"

    def socket(self, node: str) -> Path:
        return self.base / node / "sock"

    def log(self, name: str) -> Path:
        return self.base / f"{name}.log"

    # -- processes ------------------------------------------------------------------------

    def _popen(self, host: str, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        out = open(self.log(name), "ab")
        self._logs.append(out)
        self.procs[name] = self.lab.popen(host, argv, stdout=out, stderr=subprocess.STDOUT,
                                          cwd="/")
        return self.procs[name]

    def start_etcd(self) -> None:
        a = self.addr["dcs"]
        self._popen("dcs", "etcd", [
            "etcd", "--name", "dcs", "--data-dir", str(self.base / "etcd"),
            "--listen-client-urls", f"http://{a}:2379", "--advertise-client-urls",
            f"http://{a}:2379", "--listen-peer-urls", f"http://{a}:2380",
            "--initial-advertise-peer-urls", f"http://{a}:2380",
            "--initial-cluster", f"dcs=http://{a}:2380", "--logger", "zap",
            *(["--enable-v2"] if self.dcs == "etcd" else [])])
        self.lab.wait_listening("dcs", 2379, timeout=20)

    def start_patroni(self, node: str) -> None:
        """Patroni as postgres (runuser stays as its parent: one process group to stop)."""
        self._popen(node, node, ["runuser", "-u", "postgres", "--", "patroni",
                                 str(self.config(node))])

    def form(self, timeout: float = 120) -> None:
        """etcd, n1 until it is primary (it bootstraps the cluster), then n2 until it
        streams from n1 as its synchronous standby."""
        deadline = time.monotonic() + timeout
        self.start_etcd()
        self.start_patroni("n1")
        while not ((s := self.state("n1")) and s.primary):
            self._check_deadline(deadline, "n1 did not bootstrap as primary")
        self.start_patroni("n2")
        while self.healthy({"n1"}, sync=True) is None:
            self._check_deadline(deadline, "n2 did not become n1's synchronous standby")

    def _check_deadline(self, deadline: float, what: str) -> None:
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited {p.returncode}: {self.tail(name)}")
        time.sleep(0.25)

    def healthy(self, allowed: set[str], sync: bool = False) -> str | None:
        return healthy_primary(self.states(), allowed, sync)

    def client_hosts(self) -> str:
        """Both nodes: Patroni has no floating address (libpq keeps the writable one)."""
        return ",".join(self.addr[n] for n in NODES)

    def log_names(self) -> tuple[str, ...]:
        return (*NODES, "etcd", "writer")

    def notes(self) -> dict[str, Any]:
        return {}

    def tail(self, name: str, lines: int = 12) -> list[str]:
        try:
            text = self.log(name).read_text(errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    # -- faults ---------------------------------------------------------------------------

    def pids(self, host: str) -> list[int]:
        r = subprocess.run(["ip", "netns", "pids", self.lab.ns(host)], capture_output=True,
                           text=True, timeout=10)
        return [int(p) for p in r.stdout.split() if p.isdigit() and int(p) != os.getpid()]

    def signal_all(self, host: str, sig: signal.Signals) -> int:
        """`sig` to every process in `host`'s namespace, again until no new one appears
        (a fork racing the first pass; for SIGKILL: until none is left); how many."""
        done: set[int] = set()
        for _ in range(20):
            todo = [p for p in self.pids(host) if sig == signal.SIGKILL or p not in done]
            if not todo:
                break
            for p in todo:
                try:
                    os.kill(p, sig)
                except ProcessLookupError:
                    pass
            done.update(todo)
            time.sleep(0.05)
        return len(done)

    def kill_node(self, node: str) -> int:
        """SIGKILL of every process in the node's namespace; how many."""
        return self.signal_all(node, signal.SIGKILL)

    def restart(self, node: str) -> None:
        self.start_patroni(node)

    def freeze(self, node: str) -> int:
        return self.signal_all(node, signal.SIGSTOP)

    def thaw(self, node: str) -> None:
        self.signal_all(node, signal.SIGCONT)

    def kill_postmaster(self, node: str) -> int:
        pid = int((self.base / node / "data" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        return pid

    def cut(self, node: str) -> None:
        """Drop everything in and out of the node's namespace but loopback."""
        rules = self.base / "cut.nft"
        rules.write_text(CUT)
        self.lab.run(node, ["nft", "-f", str(rules)])

    def heal(self, node: str) -> None:
        self.lab.run(node, ["nft", "delete", "table", "inet", "cut"])

    def switchover(self, leader: str, candidate: str) -> subprocess.Popen[bytes]:
        """patronictl's switchover, started (it returns once it is done): the bench polls
        the servers meanwhile. Its output goes to the log "switchover"."""
        return self._popen(candidate, "switchover", [
            "patronictl", "-c", str(self.config(candidate)), "switchover", "--leader", leader,
            "--candidate", candidate, "--force"])

    # -- teardown -------------------------------------------------------------------------

    def close(self) -> None:
        """Resume anything frozen, stop Patroni (and so postgres) and etcd, close the lab
        (it kills what is left in its namespaces), remove the directory."""
        try:
            if not self.lab.closed:
                for node in NODES:
                    self.signal_all(node, signal.SIGCONT)
                # Both nodes at once: stopped one by one, the last would first take over.
                for node in NODES:
                    if node in self.procs and self.procs[node].poll() is None:
                        os.killpg(self.procs[node].pid, signal.SIGTERM)
                for name in (*NODES, "etcd"):
                    if name in self.procs:
                        Lab.stop(self.procs[name], grace=20)
        finally:
            self.lab.close()
            for f in self._logs:
                f.close()
            if self.keep is not None:
                self.keep.mkdir(parents=True, exist_ok=True)
                for kept in [*self.base.glob("*.log"), *self.base.glob("*.out")]:
                    shutil.copy(kept, self.keep / kept.name)
            shutil.rmtree(self.base, ignore_errors=True)


def versions() -> dict[str, str]:
    """The anchor's versions, as its programs report them."""
    def first(argv: list[str]) -> str:
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"unknown ({e})"
        return (r.stdout.strip().splitlines() or ["unknown"])[0]
    return {"patroni": first(["patroni", "--version"]), "etcd": first(["etcd", "--version"]),
            "postgres": first([str(BIN / "postgres"), "--version"])}


def missing() -> list[str]:
    """The programs this anchor needs that are not installed."""
    need = {"patroni": "patroni", "patronictl": "patroni", "etcd": "etcd-server"}
    found = [pkg for prog, pkg in need.items() if shutil.which(prog) is None]
    if not (BIN / "postgres").exists():
        found.append("postgresql-15")
    return sorted(set(found))


def patroni_args(ap: argparse.ArgumentParser) -> None:
    """Patroni's options (bench/pg_failover.py's)."""
    ap.add_argument("--profile", choices=sorted(PROFILES), default="default",
                    help="Patroni timings: " + "; ".join(
                        f"{k}: ttl {t.ttl}, loop_wait {t.loop_wait}, retry_timeout "
                        f"{t.retry_timeout}" for k, t in PROFILES.items()))
    ap.add_argument("--dcs", choices=DCS, default="etcd3", help="Patroni's etcd client: "
                    "etcd3 (v3 API, the default) or etcd (v2 API, etcd --enable-v2)")


def described(profile: str, dcs: str) -> dict[str, Any]:
    """What the Patroni side of a result file says about itself."""
    t = PROFILES[profile]
    return {"versions": versions(), "profile": profile, "dcs": dcs,
            "timing": {"ttl": t.ttl, "loop_wait": t.loop_wait,
                       "retry_timeout": t.retry_timeout}}
