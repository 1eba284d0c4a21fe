"""The daemon under systemd's protocols, on real daemons in namespaces.

systemd is not PID 1 on this machine, so it cannot start packaging/vigil.service here. What
it would see is what these tests receive: the test binds the NOTIFY_SOCKET datagram socket
systemd would, and gives the daemon the JOURNAL_STREAM of its stderr, as systemd does.
"""

from __future__ import annotations

import os
import signal
import socket
import time

from vigil.lab.cluster import LabCluster


def receive(sock: socket.socket, until: float) -> list[tuple[float, str]]:
    out = []
    while time.monotonic() < until:
        sock.settimeout(max(0.001, until - time.monotonic()))
        try:
            out.append((time.monotonic(), sock.recv(4096).decode()))
        except TimeoutError:
            break
    return out


def test_ready_once_membership_is_known_watchdog_from_the_loop_stopping_at_exit() -> None:
    with LabCluster(initdead="2s") as c:
        path = c.dir / "notify.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        try:
            t0 = time.monotonic()
            c.start("n1", env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"})
            got = receive(sock, t0 + 3.0)
            ready = [(t, m) for t, m in got if "READY=1" in m]
            assert len(ready) == 1, got
            t_ready, msg = ready[0]
            assert t_ready - t0 > 1.5, "READY=1 before initdead: the membership was not known"
            assert f"MAINPID={c.daemon_pid('n1')}" in msg
            assert "STATUS=n1: n2 dead; running nothing" in msg  # deciding comes next
            assert any(m == "STATUS=n1: n2 dead; running web" for t, m in got if t > t_ready)
            dogs = [t for t, m in got if m == "WATCHDOG=1"]
            assert len(dogs) >= 8, got  # every 200 ms (half of WATCHDOG_USEC)
            gaps = [b - a for a, b in zip(dogs, dogs[1:])]
            assert max(gaps) < 0.4, gaps

            c.start("n2")  # the peer comes: a status line says so
            got = receive(sock, time.monotonic() + 1.5)
            assert any(m.startswith("STATUS=n1: n2 up") for _, m in got), got

            os.kill(c.daemon_pid("n1"), signal.SIGSTOP)  # a hung loop
            time.sleep(1.0)
            receive(sock, time.monotonic() + 0.05)  # what was queued before the stop
            stopped = receive(sock, time.monotonic() + 0.5)
            os.kill(c.daemon_pid("n1"), signal.SIGCONT)
            assert not [m for _, m in stopped if m == "WATCHDOG=1"], \
                "a stopped loop sends no keepalive: systemd would restart it"
            c.stop("n1")
            got = receive(sock, time.monotonic() + 0.5)
            assert any(m == "STOPPING=1" for _, m in got), got
        finally:
            sock.close()


def test_under_journald_lines_carry_their_priority() -> None:
    with LabCluster() as c:
        c.logs["n1"].touch()
        st = os.stat(c.logs["n1"])  # the daemon's stderr is this file: "the journal stream"
        c.start("n1", env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        c.wait_holder("n1")
        c.stop("n1")
        lines = c.log("n1").splitlines()
        assert "<6>vigil[n1]: info: Local status now set to: 'up'" in lines
        assert any(line.startswith("<4>vigil[n1]: WARN: ") for line in lines), lines
        assert all(line.startswith("<") for line in lines if line), lines
