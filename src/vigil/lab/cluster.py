"""A real vigil cluster in a Lab: config, key, daemons, web servers and CLI calls.

Used by the integration tests, `make demo` and `make bench`. Nodes n1 and n2 run
`vigil daemon` in their namespaces with their own socket and state directory (the
namespaces share one filesystem); each also runs a small web server answering with its name,
so a client probing the floating IP sees which node holds it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from vigil.lab.netns import Lab

VIGIL = [sys.executable, "-m", "vigil"]
RESET_LINE = "lab: this host was reset: nothing vigil ran here runs any more"
WEB_PORT = 80


def config_text(lab: Lab, key_file: Path, vip: str, *, keepalive: str = "100ms",
                warntime: str = "250ms",
                deadtime: str = "500ms", initdead: str = "2s", auto_failback: bool = True,
                links: int = 1, extra: str = "",
                groups: str | None = None) -> str:
    nodes = "".join(
        f'[[node]]\nname = "{n}"\naddress = '
        f'{json.dumps([lab.address(n, k) for k in range(links)])}\n\n'
        for n in ("n1", "n2"))
    group = groups if groups is not None else (
        f'[[group]]\nname = "web"\nhome = "n1"\n'
        f'[[group.resource]]\ntype = "ip"\naddress = "{vip}/24"\ninterface = "eth0"\n'
        f'arp_repeat_delay = "200ms"\n')
    return (f'[cluster]\nname = "lab"\nkey_file = "{key_file}"\nkeepalive = "{keepalive}"\n'
            f'warntime = "{warntime}"\ndeadtime = "{deadtime}"\ninitdead = "{initdead}"\n'
            f'auto_failback = {str(auto_failback).lower()}\n{extra}\n{nodes}{group}')


class LabCluster:
    """Two vigil nodes and a client in a fresh Lab. Always use as a context manager."""

    def __init__(self, links: int = 1, subnet: str = "10.77.0.0/24",
                 names: Mapping[str, str] | None = None, hosts: Sequence[str] = (),
                 **config: Any) -> None:
        """`names`: the cluster's names for lab hosts n1 and n2 (seed files name theirs);
        `hosts`: more lab hosts after the client (real servers behind a balancer)."""
        self.lab = Lab.create(["n1", "n2", "client", *hosts], subnet=subnet, links=links)
        self.names = dict(names or {})
        self.vip = vip_address(self.lab)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.lab.prefix}-"))
        self.key = self.dir / "authkey"
        self.key.write_text("lab-secret-" + os.urandom(16).hex() + "\n")
        self.key.chmod(0o600)
        self.config_path = self.dir / "vigil.toml"
        self.config_path.write_text(config_text(self.lab, self.key, self.vip, links=links,
                                                **config))
        self.daemons: dict[str, subprocess.Popen[bytes]] = {}
        self.webs: dict[str, subprocess.Popen[bytes]] = {}
        self.forwards: list[subprocess.Popen[bytes]] = []
        self.logs: dict[str, Path] = {}
        self.local_lines: dict[str, str] = {}  # node_config()
        self.local_subs: dict[str, tuple[tuple[str, str], ...]] = {}
        for n in ("n1", "n2"):
            (self.dir / n).mkdir()
            self.logs[n] = self.dir / n / "vigil.log"

    def __enter__(self) -> LabCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for proc in list(self.daemons.values()) + list(self.webs.values()) + self.forwards:
            if proc.poll() is None:
                Lab.stop(proc, grace=5.0)
        self.lab.close()
        if os.environ.get("VIGIL_KEEP_LAB_DIR") is None:
            subprocess.run(["rm", "-rf", str(self.dir)], check=False)

    # --- processes -----------------------------------------------------------------------------

    def socket(self, node: str) -> Path:
        return self.dir / node / "vigil.sock"

    def node_config(self, node: str, cluster_lines: str = "",
                    subs: Sequence[tuple[str, str]] = ()) -> None:
        """Give `node` a configuration of its own: the shared one with `cluster_lines` added
        to its [cluster] table (a host-local setting such as `watchdog`, as each host of a
        real cluster has its own file) and each (old, new) of `subs` replaced (paths that
        differ between two lab nodes on one filesystem). Written when the node starts."""
        self.local_lines[node] = cluster_lines
        self.local_subs[node] = tuple(subs)

    def config_of(self, node: str) -> Path:
        extra = self.local_lines.get(node)
        if extra is None:
            return self.config_path
        text = self.config_path.read_text().replace("[cluster]\n", f"[cluster]\n{extra}\n", 1)
        for old, new in self.local_subs.get(node, ()):
            text = text.replace(old, new)
        path = self.dir / node / "vigil.toml"
        path.write_text(text)
        return path

    def argv(self, node: str, *args: str) -> list[str]:
        return [*VIGIL, "--config", str(self.config_of(node)), "--node",
                self.names.get(node, node),
                "--socket", str(self.socket(node)), "--state-dir", str(self.dir / node), *args]

    def start_web(self, node: str) -> None:
        self.webs[node] = self.lab.popen(
            node, [sys.executable, "-m", "vigil.lab.web", "--name", node, "--port",
                   str(WEB_PORT)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.lab.wait_listening(node, WEB_PORT)

    def start(self, node: str, *extra: str, wait: bool = True,
              env: dict[str, str] | None = None) -> None:
        if node not in self.webs:
            self.start_web(node)
        log = open(self.logs[node], "ab")
        stale = _inode(self.socket(node))
        self.daemons[node] = self.lab.popen(node, self.argv(node, "daemon", *extra),
                                            stdout=log, stderr=log,
                                            env=None if env is None else {**os.environ, **env})
        log.close()
        if wait:
            self.wait_socket(node, stale=stale)

    def add_config(self, text: str) -> None:
        """Append tables ([fencing], [witness], [[link]]...) to the configuration."""
        self.config_path.write_text(self.config_path.read_text() + "\n" + text)

    def start_witness(self, host: str = "client") -> None:
        """`vigil witness` on a third host (the client's namespace doubles as it)."""
        self.logs["witness"] = self.dir / "witness.log"
        log = open(self.logs["witness"], "ab")
        self.daemons["witness"] = self.lab.popen(
            host, [*VIGIL, "--config", str(self.config_path), "witness"], stdout=log,
            stderr=log)
        log.close()
        end = time.monotonic() + 10
        while "listening on" not in self.log("witness"):
            if self.daemons["witness"].poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"vigil witness did not start:\n{self.log('witness')}")
            time.sleep(0.01)

    def daemon_pid(self, node: str) -> int:
        """The vigil daemon's pid (`ip netns exec` execs it, so the Popen's pid is it)."""
        return self.daemons[node].pid

    def in_daemon(self, node: str, argv: Sequence[str], **kw: Any) -> \
            subprocess.CompletedProcess[str]:
        """Run argv in the daemon's network and mount namespaces: the mounts its agents
        made (`ip netns exec` gives each command a mount namespace of its own)."""
        return subprocess.run(["nsenter", "-t", str(self.daemon_pid(node)), "-m", "-n",
                               *argv], capture_output=True, text=True, timeout=30, **kw)

    def wait_socket(self, node: str, timeout: float = 10.0,
                    stale: tuple[int, int] | None = None) -> None:
        """Until the daemon's control socket is there (a new one: not the inode `stale`
        that a killed daemon left)."""
        end = time.monotonic() + timeout
        while _inode(self.socket(node)) in (None, stale):
            proc = self.daemons[node]
            if proc.poll() is not None:
                raise RuntimeError(f"vigil on {node} exited with {proc.returncode}:\n"
                                   f"{self.log(node)[-3000:]}")
            if time.monotonic() > end:
                raise TimeoutError(f"vigil on {node}: no control socket after {timeout} s")
            time.sleep(0.01)

    def stop(self, node: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        proc = self.daemons.pop(node)
        proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise

    def kill_all(self, node: str) -> list[int]:
        """Every vigil process of `node` killed at once (`systemctl kill -s KILL vigil`, an
        OOM group kill): its guard, then its daemon, before either can act on the other's
        death. What they ran (the address) stays. Returns the pids killed."""
        guard = self.status(node)["guard"]
        proc = self.daemons.pop(node)
        pids = ([guard["pid"]] if guard and guard.get("alive") else []) + [proc.pid]
        # Stopped first, then killed: one killed while the other runs can see it die (the
        # daemon replaces a dead guard; a guard acts on its daemon's end), which a cgroup's
        # kill, at once for all, never lets happen.
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        proc.wait(5)
        return pids

    def host_pids(self, node: str) -> list[int]:
        """What runs on `node`'s host but its web server and the lab's observers: vigil,
        and whatever vigil started there."""
        keep = {p.pid for n, p in self.webs.items() if n == node}
        pids = subprocess.run(["ip", "netns", "pids", self.lab.ns(node)], capture_output=True,
                              text=True, timeout=10).stdout.split()
        return [pid for pid in map(int, pids) if pid not in keep and _comm(pid) not in ("ip", "")]

    def reset(self, node: str) -> None:
        """Act out the reset of `node`'s host (what its watchdog does): whatever vigil left
        running there is gone, its floating address first. The node's web server and
        namespace stay, as after the reboot of a host whose services start at boot."""
        for pid in self.host_pids(node):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc = self.daemons.pop(node, None)
        if proc is not None:
            proc.wait(5)
        self.lab.run(node, ["ip", "addr", "del", f"{self.vip}/24", "dev", "eth0"], check=False)
        with open(self.logs[node], "a") as f:  # for whoever reads the log after: why
            f.write(f"{RESET_LINE}\n")

    def vigil(self, node: str, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run the CLI against a node's daemon, from the root namespace (the socket is a file)."""
        return subprocess.run(self.argv(node, *args), capture_output=True, text=True,
                              timeout=30, check=check)

    def status(self, node: str) -> dict[str, Any]:
        r = self.vigil(node, "status", "--json")
        if r.returncode:  # say why, with what the daemon logged: a bare exit code explains nothing
            raise RuntimeError(f"vigil status on {node} exited with {r.returncode}: "
                               f"{r.stderr.strip()}\n--- {node}'s log ---\n"
                               f"{self.log(node)[-3000:]}")
        return json.loads(r.stdout)  # type: ignore[no-any-return]

    def log(self, node: str) -> str:
        try:
            return self.logs[node].read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # --- observations --------------------------------------------------------------------------

    def holders(self) -> list[str]:
        """Which nodes have the floating address configured right now."""
        return [n for n in ("n1", "n2") if f"{self.vip}/24" in self.lab.addresses(n)]

    def wait_holder(self, node: str | None, timeout: float = 10.0) -> float:
        """Wait until exactly `node` holds the address (None: nobody); return when."""
        want = [] if node is None else [node]
        end = time.monotonic() + timeout
        while True:
            if self.holders() == want:
                return time.monotonic()
            if time.monotonic() > end:
                raise TimeoutError(f"holders {self.holders()}, wanted {want}\n"
                                   f"--- n1\n{self.log('n1')[-2000:]}\n"
                                   f"--- n2\n{self.log('n2')[-2000:]}")
            time.sleep(0.01)

    def wait_group(self, node: str, group: str, state: str, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while True:
            try:
                s = self.status(node)
                if any(g["name"] == group and g["state"] == state for g in s["groups"]):
                    return
            except subprocess.CalledProcessError:
                pass
            if time.monotonic() > end:
                raise TimeoutError(f"{group} not {state} on {node}:\n{self.log(node)[-2000:]}")
            time.sleep(0.02)

    def url(self) -> str:
        return f"http://{self.vip}:{WEB_PORT}/"

    def forward(self, node: str, port: int) -> int:
        """Reach `node`'s TCP `port` from this (the root) namespace: returns a port on
        127.0.0.1. Two socats meet at a UNIX socket (the namespaces share the filesystem):
        one in the client's namespace connects over the lab network, so what the node
        serves is reached the way a management client would reach it."""
        sock = self.dir / f"fwd-{node}-{port}.sock"
        self.forwards.append(self.lab.popen(
            "client", ["socat", f"UNIX-LISTEN:{sock},fork,unlink-early",
                       f"TCP:{self.lab.address(node)}:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        local = int(probe.getsockname()[1])
        probe.close()
        self.forwards.append(subprocess.Popen(
            ["socat", f"TCP-LISTEN:{local},bind=127.0.0.1,reuseaddr,fork",
             f"UNIX-CONNECT:{sock}"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True))
        end = time.monotonic() + 5
        while not sock.exists() or not _listening(local):
            if time.monotonic() > end:
                raise TimeoutError(f"port forward to {node}:{port} did not come up")
            time.sleep(0.01)
        return local


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def vip_address(lab: Lab) -> str:
    """The floating address of a lab's cluster (and of the anchors run in its place)."""
    base = lab.address("n1").rsplit(".", 1)[0]
    return f"{base}.100"


def find_lines(text: str, needles: Sequence[str]) -> list[str]:
    return [line for line in text.splitlines() if any(n in line for n in needles)]


class HolderMonitor:
    """Records, from kernel address events, every time both nodes held the floating address.

    Polling the two namespaces one after the other cannot tell "both at once" from "one,
    then the other a few ms later" during a 2 ms hand-over. So each node's address changes
    are followed with `ip -o monitor address` (netlink events, pushed by the kernel), read by
    one thread with select() and stamped with time.monotonic() on arrival. A double owner is
    an overlap of the two nodes' holding intervals longer than `tolerance` (the stamping
    precision: two pipes, one reader; measured well under 1 ms here).
    """

    def __init__(self, cluster: LabCluster, tolerance: float = 0.005) -> None:
        import threading

        self.cluster = cluster
        self.tolerance = tolerance
        self.doubles: list[float] = []  # start time of each overlap
        self.overlaps: list[float] = []  # and its length
        self.changes: list[tuple[float, str, bool]] = []  # (monotonic time, node, holds)
        self.events = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="holder-monitor", daemon=True)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._since: dict[str, float | None] = {}

    def __enter__(self) -> HolderMonitor:
        needle = f" {self.cluster.vip}/24 "
        for n in ("n1", "n2"):
            # Above the daemons' SCHED_FIFO 50: an observer starved by the observed (or by
            # other labs' daemons on the same cores) stamps events late and sees overlaps
            # that never were (a torture run once reported 5.8 ms while tests ran beside it).
            self._procs[n] = subprocess.Popen(
                ["chrt", "-f", "90", "ip", "-o", "-n", self.cluster.lab.ns(n), "monitor",
                 "address"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        time.sleep(0.05)  # let the monitors subscribe before the first look
        now = time.monotonic()
        for n in ("n1", "n2"):
            held = f"{self.cluster.vip}/24" in self.cluster.lab.addresses(n)
            self._since[n] = now if held else None
        self._needle = needle.encode()
        self._check(now)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for proc in self._procs.values():
            proc.kill()
            proc.wait()

    def _check(self, now: float) -> None:
        a, b = self._since["n1"], self._since["n2"]
        if a is not None and b is not None:
            self._overlap_from = max(a, b)

    def _changed(self, node: str, held: bool, now: float) -> None:
        self.changes.append((now, node, held))
        other = "n2" if node == "n1" else "n1"
        was = self._since[node]
        if held and was is None:
            self._since[node] = now
        elif not held and was is not None:
            theirs = self._since[other]
            if theirs is not None:
                start = max(was, theirs)
                if now - start > self.tolerance:
                    self.doubles.append(start)
                    self.overlaps.append(now - start)
            self._since[node] = None

    def _run(self) -> None:
        import select

        try:  # this thread only (Linux schedules threads): stamped as events arrive
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(90))
        except OSError:
            pass
        files = {p.stdout.fileno(): n for n, p in self._procs.items() if p.stdout}
        bufs = {fd: b"" for fd in files}
        while not self._stop.is_set():
            ready, _, _ = select.select(list(files), [], [], 0.05)
            now = time.monotonic()
            for fd in ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    files.pop(fd)
                    continue
                bufs[fd] += chunk
                *lines, bufs[fd] = bufs[fd].split(b"\n")
                for line in lines:
                    if self._needle in line:
                        self.events += 1
                        self._changed(files[fd], not line.startswith(b"Deleted"), now)
        # An overlap still open at the end counts too.
        now = time.monotonic()
        a, b = self._since["n1"], self._since["n2"]
        if a is not None and b is not None and now - max(a, b) > self.tolerance:
            self.doubles.append(max(a, b))
            self.overlaps.append(now - max(a, b))


def _inode(path: Path) -> tuple[int, int] | None:
    """Which file `path` is (a freed inode number is soon reused: its change time too)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_ctime_ns
