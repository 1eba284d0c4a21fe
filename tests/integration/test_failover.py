"""Real daemons in network namespaces: the failover cases of issue 2's proof (a)-(d).

Two nodes and a client on a bridge; the client probes the floating IP every 10 ms over a new
TCP connection and records which node answers; a monitor polls both nodes' addresses for
the one-owner invariant. Outage figures belong to `make bench`; here the assertions are about
behaviour (who answers, that a planned hand-over does not wait for deadtime, that both never
hold the address while they can talk).
"""

from __future__ import annotations

import time

import pytest

from vigil.lab.cluster import HolderMonitor, LabCluster
from vigil.lab.probe import Prober, outages, owners

pytestmark = pytest.mark.integration

DEADTIME = 0.5  # LabCluster's default


def gone(pid: int, timeout: float) -> bool:
    """The process has exited (a zombie awaiting its new parent's reaping counts)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def answered_by(p: Prober, node: str, after: float, timeout: float = 5.0) -> float:
    return p.wait_sample(lambda s: s.node == node, after=after, timeout=timeout).t


@pytest.mark.parametrize("failback", [True, False], ids=["failback", "no-failback"])
def test_sigterm_of_owner_and_restart(failback: bool) -> None:
    with LabCluster(auto_failback=failback) as c, HolderMonitor(c) as mon:
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        with Prober(c.lab, "client", c.url(), duration=30) as p:
            answered_by(p, "n1", 0)
            t0 = time.monotonic()
            assert c.stop("n1") == 0
            t1 = answered_by(p, "n2", t0)
            assert c.holders() == ["n2"]
            c.start("n1")
            if failback:
                answered_by(p, "n1", t1)
                c.wait_holder("n1")
            else:
                time.sleep(1.0)  # several keepalives: nothing moves back
                assert c.holders() == ["n2"]
            samples = p.stop()
        planned = outages(samples, after=t0)
        assert all(o.duration < DEADTIME for o in planned), planned
        assert "goodbye sent" in c.log("n1")
        assert "node n1: is dead (shutdown)" in c.log("n2")
        want = ["n1", "n2", "n1"] if failback else ["n1", "n2"]
        assert [n for _, n in owners(samples)] == want
    assert not mon.doubles, f"both nodes held the address at {mon.doubles[:5]}"


def test_owner_link_cut_and_restored() -> None:
    with LabCluster(auto_failback=True) as c:
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        with Prober(c.lab, "client", c.url(), duration=30) as p:
            answered_by(p, "n1", 0)
            t0 = time.monotonic()
            c.lab.link_down("n1")
            t1 = answered_by(p, "n2", t0)
            assert t1 - t0 > DEADTIME * 0.5, "n2 waited for deadtime (minus the phase)"
            # n1 sees its own interface down and releases what it cannot serve, so the
            # address is not on both nodes when the link comes back.
            c.wait_holder("n2", timeout=5)
            assert "Link n1:eth0 dead." in c.log("n2")
            with HolderMonitor(c) as mon:
                c.lab.link_up("n1")
                answered_by(p, "n1", t1, timeout=10)  # failback, planned: release first
                c.wait_holder("n1")
                time.sleep(0.3)
            samples = p.stop()
        assert not mon.doubles, f"both held the address after the link came back: {mon.doubles}"
        back = outages(samples, after=t1 + 0.05)
        assert all(o.duration < DEADTIME for o in back), back
        assert "cannot run group web" in c.log("n1")


def test_switch_side_link_cut_is_detected_as_lost_carrier() -> None:
    with LabCluster(auto_failback=False) as c:
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        c.lab.link_down("n1", side="switch")
        c.wait_holder("n2", timeout=5)
        c.lab.link_up("n1", side="switch")
        time.sleep(1.0)
        assert c.holders() == ["n2"], "auto_failback off: the group stays where it is"
        s = c.status("n1")
        assert s["nodes"][1]["state"] == "up"
        assert s["groups"][0]["owner"] == "n2"


def test_standby_and_takeover() -> None:
    with LabCluster() as c, HolderMonitor(c) as mon:
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        with Prober(c.lab, "client", c.url(), duration=30) as p:
            answered_by(p, "n1", 0)
            t0 = time.monotonic()
            r = c.vigil("n1", "standby")
            assert r.returncode == 0 and "handing web to n2" in r.stdout
            t1 = answered_by(p, "n2", t0)
            r = c.vigil("n1", "takeover")
            assert r.returncode == 0 and "taking over web" in r.stdout
            answered_by(p, "n1", t1)
            samples = p.stop()
        assert all(o.duration < DEADTIME for o in outages(samples, after=t0))
        # Nothing to do is not an error; standby with the peer gone is refused.
        assert "already holds every group" in c.vigil("n1", "takeover").stdout
        c.stop("n2")
        time.sleep(0.1)
        r = c.vigil("n1", "standby")
        assert r.returncode == 1
        assert "n2 is not up" in r.stderr
        assert c.holders() == ["n1"]
    assert not mon.doubles


def test_both_started_at_once_run_the_group_once_on_its_home() -> None:
    with LabCluster(initdead="3s") as c, HolderMonitor(c) as mon:
        c.start_web("n1")
        c.start_web("n2")
        c.start("n1", wait=False)
        c.start("n2", wait=False)
        t0 = time.monotonic()
        c.wait_holder("n1")
        assert time.monotonic() - t0 < 3.0, "the nodes found each other before initdead"
        time.sleep(0.5)
        assert c.holders() == ["n1"]
        assert c.log("n1").count("ip 10.77.0.100/24 on eth0 start: ok") == 1
        assert "start:" not in c.log("n2")
    assert not mon.doubles


def test_address_left_behind_is_reconciled_not_doubled() -> None:
    """A crash left the floating address on n2 (not its home): at start n2 probes, finds it,
    reports it running, and releases it to n1, which starts only after that."""
    with LabCluster() as c, HolderMonitor(c) as mon:
        c.lab.run("n2", ["ip", "addr", "add", f"{c.vip}/24", "dev", "eth0"])
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        log2 = c.log("n2")
        assert "found ip 10.77.0.100/24 on eth0 already present" in log2
        assert "releasing group web" in log2
    # The invariant can only be checked once both daemons run: before that the test itself
    # put the address on n2 while n1 had not started yet (n1 waits for n2's release).
    assert not mon.doubles


def test_peer_that_never_comes_is_declared_dead_after_initdead() -> None:
    with LabCluster(initdead="1500ms") as c:
        t0 = time.monotonic()
        c.start("n2")
        c.wait_holder("n2", timeout=10)
        assert time.monotonic() - t0 >= 1.5
        assert "node n1: is dead (initdead)" in c.log("n2")
        assert "taking over group web: n1 is dead" in c.log("n2")


def test_control_socket_is_root_only() -> None:
    """An unprivileged client is refused by the socket's own mode and gets vigil's message.

    The client runs in a child forked from this test, which drops to nobody after vigil's CLI
    client is imported: an unprivileged `vigil` process could not even import vigil from a
    checkout in a private directory (as CI's clone may be), which would prove nothing."""
    import os

    from vigil.cli.client import call
    from vigil.errors import ControlDenied

    with LabCluster() as c:
        c.start("n1")
        sock = c.socket("n1")
        assert oct(os.stat(sock).st_mode & 0o777) == "0o600"
        # Open the way to the socket itself, so that only its own mode stands in between.
        os.chmod(c.dir, 0o755)
        os.chmod(sock.parent, 0o755)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the unprivileged client
            code = 0
            try:
                os.close(r)
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                call(sock, "status", timeout=5)
                os.write(w, b"answered")
            except ControlDenied as e:
                os.write(w, f"{e.exit_code} {e}".encode())
            except BaseException as e:
                os.write(w, f"unexpected {type(e).__name__}: {e}".encode())
            finally:
                os._exit(code)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            said = f.read().decode()
        os.waitpid(pid, 0)
        assert said == (f"1 permission denied on the control socket {sock} (mode 0600, owner "
                        f"root): run as root"), said
        assert c.vigil("n1", "status").returncode == 0


def test_kill_9_of_the_owner_the_guard_releases_and_the_peer_takes_over() -> None:
    """Seed test 5 (killall -9 heartbeat): Heartbeat and keepalived leave the address on the
    dead daemon's node for good; vigil's guard removes it at once and says goodbye for the
    daemon, so the peer takes over without waiting for deadtime, and the address is never
    on both."""
    import os
    import signal

    with LabCluster() as c, HolderMonitor(c) as mon:
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        guard = c.status("n1")["guard"]
        assert guard["alive"] and guard["timeout_ms"] < DEADTIME * 1000
        with Prober(c.lab, "client", c.url(), duration=30) as p:
            answered_by(p, "n1", 0)
            t0 = time.monotonic()
            os.kill(c.daemons["n1"].pid, signal.SIGKILL)
            t1 = answered_by(p, "n2", t0)
            samples = p.stop()
        assert "guard: daemon died: stopping web" in c.log("n1")
        assert "guard: daemon dead, nothing runs here: said goodbye for it" in c.log("n1")
        assert "node n1: is dead (shutdown)" in c.log("n2")
        assert "taking over group web: n1 is dead" in c.log("n2")
        assert t1 - t0 < DEADTIME  # the guard's stop and one start, not deadtime
        assert max((o.duration for o in outages(samples, after=t0)), default=0.0) < DEADTIME
        assert gone(guard["pid"], timeout=3), "the guard leaves once the daemon is gone"
        c.daemons["n1"].wait(5)
        # A new daemon finds nothing left behind, and (auto_failback) takes the group home.
        c.start("n1")
        c.wait_holder("n1")
    assert not mon.doubles, mon.doubles


def test_a_guard_that_dies_is_replaced_and_does_its_job() -> None:
    """kill -9 of the guard itself: the daemon starts a new one at once; when the daemon is
    then killed too, the new guard removes the address."""
    import os
    import signal

    with LabCluster() as c, HolderMonitor(c) as mon:
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        old = c.status("n1")["guard"]["pid"]
        os.kill(old, signal.SIGKILL)
        end = time.monotonic() + 10
        while (g := c.status("n1")["guard"])["pid"] == old or not g["alive"]:
            assert time.monotonic() < end, c.log("n1")[-2000:]
            time.sleep(0.05)
        assert f"the guard process (pid {old}) exited: starting a new one" in c.log("n1")
        assert not os.path.exists(f"/proc/{old}"), "the dead guard was reaped, no zombie"
        time.sleep(0.5)  # the new guard has been fed
        assert c.holders() == ["n1"]
        os.kill(c.daemons["n1"].pid, signal.SIGKILL)
        c.wait_holder("n2")
        assert "guard: daemon died: stopping web" in c.log("n1")
        assert "said goodbye for it" in c.log("n1"), "the new guard knew what to say"
        c.daemons["n1"].wait(5)
    assert not mon.doubles, mon.doubles


def test_frozen_owner_does_not_come_back_believing_it_owns() -> None:
    """The classic pause: kill -STOP of the owner's daemon for longer than deadtime. The
    guard stops its group before the peer takes over; on SIGCONT the daemon learns what
    happened, sees the larger assignment and stays off. Never both."""
    import os
    import signal

    with LabCluster(auto_failback=False) as c, HolderMonitor(c) as mon:
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        pid = c.daemons["n1"].pid
        os.kill(pid, signal.SIGSTOP)
        try:
            c.wait_holder("n2", timeout=5)
            time.sleep(DEADTIME)
        finally:
            os.kill(pid, signal.SIGCONT)
        time.sleep(1.0)
        assert c.holders() == ["n2"]
        log1 = c.log("n1")
        assert "guard: daemon silent for" in log1
        assert "the guard stopped it: probe found it stopped" in log1
        assert "did not run for" in log1
        s1 = c.status("n1")
        assert s1["groups"][0]["owner"] == "n2" and s1["groups"][0]["state"] == "stopped"
        assert s1["nodes"][1]["state"] == "up"
        assert s1["guard"]["alive"]
    assert not mon.doubles, mon.doubles


def test_watchdog_is_fed_with_heartbeats_and_disarmed_only_with_nothing_held() -> None:
    """No watchdog device exists in this kernel: a stand-in file takes the writes (the daemon
    warns that it refuses the timeout ioctl). Fed with every heartbeat; the magic "V" on a
    clean stop, and from the guard once it stopped everything after a kill -9 of the daemon.
    (With the guard killed too, it stays armed: test_total_kill.py.)"""
    import os
    import signal

    with LabCluster() as c:
        dog = c.dir / "watchdog-stand-in"
        dog.write_bytes(b"")
        c.config_path.write_text(c.config_path.read_text().replace(
            "[cluster]\n", f'[cluster]\nwatchdog = "{dog}"\n'))
        c.start("n1")
        time.sleep(1.0)
        s = c.status("n1")["watchdog"]
        assert s["path"] == str(dog) and s["timeout_s"] >= 2 and s["feeds"] > 5
        assert "is not a watchdog device" in c.log("n1")
        assert c.stop("n1") == 0
        data = dog.read_bytes()
        assert data.endswith(b"V") and data.count(b"\0") > 5, data[-20:]
        dog.write_bytes(b"")
        c.start("n1")
        time.sleep(0.5)
        os.kill(c.daemons["n1"].pid, signal.SIGKILL)
        c.daemons.pop("n1").wait(5)
        deadline = time.monotonic() + 5
        while not dog.read_bytes().endswith(b"V"):  # the guard stops the group, then leaves
            assert time.monotonic() < deadline, dog.read_bytes()[-20:]
            time.sleep(0.05)
        assert dog.read_bytes().count(b"\0") > 2
        assert "guard: watchdog disarmed: nothing is held here" in c.log("n1")


def test_ping_nodes_move_the_group_off_a_node_cut_from_its_router() -> None:
    """Seed test 2 (ipfail): n1's interface stays up, but it loses its router (here the
    client host stands for it), while the heartbeat path to n2 stays. n1 reaches fewer ping
    nodes than n2, so it hands the group over; when the path is back, the group fails back.
    The ICMP comes from the daemon itself (a raw socket), never from `ping`."""
    with LabCluster(auto_failback=True) as c, HolderMonitor(c) as mon:
        router = c.lab.address("client")
        c.config_path.write_text(c.config_path.read_text().replace(
            "[cluster]\n", f'[cluster]\nping = ["{router}"]\nping_interval = "100ms"\n'
                           f'deadping = "400ms"\n'))
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        deadline = time.monotonic() + 5
        while c.status("n1")["ping"]["reachable"] != 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        c.lab.drop("n1", "both", peer=router)
        c.wait_holder("n2", timeout=5)
        s1 = c.status("n1")
        assert s1["ping"] == {"nodes": [router], "reachable": 0, "peer": 1}
        assert s1["nodes"][1]["state"] == "up", "the heartbeat path never broke"
        assert "n2 reaches more ping nodes than this node" in c.log("n1")
        assert "ping nodes: " in c.vigil("n1", "status").stdout
        c.lab.undrop("n1")
        c.wait_holder("n1", timeout=5)
    assert not mon.doubles
