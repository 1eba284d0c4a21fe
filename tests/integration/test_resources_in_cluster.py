"""Resource groups and extra heartbeat links in a real two-node cluster.

The exec resources are tiny shell scripts in the cluster's directory. Both nodes run the same
configuration in namespaces sharing one hostname and filesystem, so a script tells the
nodes apart by the heartbeat address on its eth0, and appends one line per action to a log
file that both nodes share:

    <node> <resource> <action> n1vip=<0|1> n2vip=<0|1>

where n1vip/n2vip say whether each node held the floating address at that moment (read
from the kernel, across namespaces). The shared log's order is the order in which the
actions really ran, on both nodes: that is what proves release-before-acquire.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from vigil.lab.cluster import HolderMonitor, LabCluster, config_text, find_lines

pytestmark = pytest.mark.integration

IP = shutil.which("ip") or "/usr/sbin/ip"

SCRIPT = """#!/bin/sh
# {name}: start | stop | status, on whichever lab node runs it.
if {ip} -o -4 addr show dev eth0 | grep -q " {n1}/"; then node=n1; else node=n2; fi
vip() {{ if {ip} -n "$1" -o -4 addr show | grep -q " {vip}/"; then echo 1; else echo 0; fi; }}
marker="{dir}/running-$node-{name}"
echo "$node {name} $1 n1vip=$(vip {ns1}) n2vip=$(vip {ns2})" >> "{log}"
case "$1" in
    start) {on_start}
           touch "$marker" ;;
    stop)  {on_stop}
           rm -f "$marker" ;;
    status) test -e "$marker" ;;
    *) exit 2 ;;
esac
"""


def script(c: LabCluster, name: str, on_start: str = ":", on_stop: str = ":") -> Path:
    path = c.dir / name
    path.write_text(SCRIPT.format(
        name=name, ip=IP, n1=c.lab.address("n1"), vip=c.vip, dir=c.dir, log=shared_log(c),
        ns1=c.lab.ns("n1"), ns2=c.lab.ns("n2"), on_start=on_start, on_stop=on_stop))
    path.chmod(0o755)
    return path


def shared_log(c: LabCluster) -> Path:
    return c.dir / "actions.log"


def actions(c: LabCluster, *kinds: str) -> list[str]:
    """The shared log's lines (status checks left out unless asked for)."""
    try:
        lines = shared_log(c).read_text().splitlines()
    except FileNotFoundError:
        return []
    kinds = kinds or ("start", "stop")
    return [line for line in lines if line.split()[2] in kinds]


def exec_toml(path: Path, timeout: str | None = None) -> str:
    def argv(action: str) -> str:
        return json.dumps([str(path), action])

    extra = f'timeout = "{timeout}"\n' if timeout else ""
    return (f'[[group.resource]]\ntype = "exec"\nstart = {argv("start")}\n'
            f'stop = {argv("stop")}\nstatus = {argv("status")}\n{extra}')


def group_toml(c: LabCluster, *execs: str) -> str:
    return (f'[[group]]\nname = "web"\nhome = "n1"\n'
            f'[[group.resource]]\ntype = "ip"\naddress = "{c.vip}/24"\ninterface = "eth0"\n'
            f'arp_repeat_delay = "0s"\n' + "".join(execs))


def configure(c: LabCluster, groups: str, **kw: object) -> None:
    c.config_path.write_text(config_text(c.lab, c.key, c.vip, groups=groups, **kw))  # type: ignore[arg-type]


def wait_for(what: str, cond: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError(what)
        time.sleep(0.02)


def wait_log(c: LabCluster, node: str, text: str, count: int = 1, timeout: float = 5.0) -> None:
    try:
        wait_for(text, lambda: c.log(node).count(text) >= count, timeout)
    except TimeoutError:
        raise TimeoutError(f"{node} did not log {text!r} x{count}:\n{c.log(node)[-3000:]}")


def ordered(log: str, *needles: str) -> bool:
    """Each needle occurs in the log, in this order (first occurrences after the previous)."""
    pos = 0
    for n in needles:
        pos = log.find(n, pos)
        if pos < 0:
            return False
    return True


def test_group_starts_in_order_and_stops_in_reverse_before_the_peer_starts() -> None:
    with LabCluster() as c:
        app1, app2 = script(c, "app1"), script(c, "app2")
        configure(c, group_toml(c, exec_toml(app1), exec_toml(app2)))
        with HolderMonitor(c) as mon:
            c.start("n1")
            c.start("n2")
            c.wait_holder("n1")
            c.wait_group("n1", "web", "running")
            assert ordered(c.log("n1"), f"ip {c.vip}/24 on eth0 start: ok",
                           "exec app1 start: ok", "exec app2 start: ok", "group web acquired")
            r = c.vigil("n1", "standby")
            assert r.returncode == 0, r.stderr
            c.wait_group("n2", "web", "running")
            c.wait_holder("n2")
            assert ordered(c.log("n1"), "exec app2 stop: ok", "exec app1 stop: ok",
                           f"ip {c.vip}/24 on eth0 stop: ok", "group web released")
            # n1 first, holding nothing; then n2 releases all as it leaves (peer gone).
            assert c.stop("n1") == 0
            assert c.stop("n2") == 0
        assert not mon.doubles and mon.events >= 4  # n1 add, del; n2 add, del
        assert c.holders() == []
        assert actions(c) == [
            "n1 app1 start n1vip=1 n2vip=0",
            "n1 app2 start n1vip=1 n2vip=0",
            "n1 app2 stop n1vip=1 n2vip=0",
            "n1 app1 stop n1vip=1 n2vip=0",
            # n1's address was gone before n2 started anything of the group.
            "n2 app1 start n1vip=0 n2vip=1",
            "n2 app2 start n1vip=0 n2vip=1",
            "n2 app2 stop n1vip=0 n2vip=1",
            "n2 app1 stop n1vip=0 n2vip=1",
        ]
        assert not list(c.dir.glob("running-*")), "every start was matched by a stop"


def test_start_failure_on_one_node_moves_the_group_to_the_other() -> None:
    with LabCluster() as c:
        flaky = script(c, "flaky", on_start='if [ $node = n1 ]; then '
                                            'echo "no luck on n1" >&2; exit 1; fi')
        configure(c, group_toml(c, exec_toml(flaky)))
        with HolderMonitor(c) as mon:
            c.start("n1")
            c.start("n2")
            c.wait_group("n2", "web", "running")
            c.wait_holder("n2")
            time.sleep(0.3)
            assert c.holders() == ["n2"]
        assert not mon.doubles and mon.events >= 3  # n1 add, del; n2 add
        log1 = c.log("n1")
        assert re.search(r"exec flaky start: failed in \d+ ms: .*rc=1.*no luck on n1", log1), log1
        assert "group web failed to start" in log1
        assert ordered(log1, f"ip {c.vip}/24 on eth0 start: ok", "exec flaky start: failed",
                       "exec flaky stop: ok", f"ip {c.vip}/24 on eth0 stop: ok")
        assert f"{c.vip}/24" not in c.lab.addresses("n1")
        assert actions(c) == [
            "n1 flaky start n1vip=1 n2vip=0",
            "n1 flaky stop n1vip=1 n2vip=0",  # the failed one is stopped too
            "n2 flaky start n1vip=0 n2vip=1",
        ]
        r = c.vigil("n1", "status", "--json")
        assert r.returncode == 0, r.stderr
        g = json.loads(r.stdout)["groups"][0]
        assert g["state"] == "stopped" and g["owner"] == "n2" and not g["eligible"]
        assert g["failed_start"] and "no luck on n1" in g["failed_start"], g
        assert "start failed here" in c.vigil("n1", "status").stdout
        # An operator clears the failure: n1 may run the group again. It is web's home and
        # auto_failback is on, so n1 claims it back, fails again, and n2 keeps serving.
        r = c.vigil("n1", "resource", "cleanup", "web")
        assert r.returncode == 0 and "cleaned up web" in r.stdout, r.stderr
        r = c.vigil("n1", "resource", "cleanup", "nosuch")
        assert r.returncode == 1 and "no group named 'nosuch'" in r.stderr
        deadline = time.monotonic() + 10
        while actions(c).count("n1 flaky start n1vip=1 n2vip=0") < 2:
            assert time.monotonic() < deadline, actions(c)
            time.sleep(0.05)
        c.wait_group("n2", "web", "running")
        c.wait_holder("n2")


def test_stop_that_hangs_is_killed_and_blocks_the_group() -> None:
    with LabCluster() as c:
        pidfile = c.dir / "stuck.pid"
        stuck = script(c, "stuck", on_stop=f'echo $$ > "{pidfile}"; exec sleep 30')
        configure(c, group_toml(c, exec_toml(stuck, timeout="1s")))
        c.start("n1")
        c.start("n2")
        c.wait_group("n1", "web", "running")
        c.wait_holder("n1")
        t0 = time.monotonic()
        r = c.vigil("n1", "standby")
        assert r.returncode == 0, r.stderr
        c.wait_group("n1", "web", "failed", timeout=8)
        took = time.monotonic() - t0
        assert 1.0 <= took < 4.0, took
        log1 = c.log("n1")
        m = re.search(r"exec stuck stop: failed in (\d+) ms: timed out after 1 s", log1)
        assert m and 1000 <= int(m.group(1)) < 3500, log1
        assert "group web failed to stop" in log1 and "blocked" in log1
        pid = int(pidfile.read_text())
        assert not os.path.exists(f"/proc/{pid}"), "the hung stop command was killed and reaped"
        # The stop kept going after the failure: the address is released.
        assert ordered(log1, "exec stuck stop: failed", f"ip {c.vip}/24 on eth0 stop: ok")
        time.sleep(1.0)  # two deadtimes: n2 must still not start it
        assert c.holders() == []
        s1, s2 = c.status("n1"), c.status("n2")
        assert s1["groups"][0]["state"] == "failed"
        g2 = s2["groups"][0]
        assert g2["owner"] == "n2" and g2["state"] == "stopped" and g2["peer_state"] == "failed"
        assert s2["nodes"][1]["state"] == "up"
        assert actions(c) == ["n1 stuck start n1vip=1 n2vip=0", "n1 stuck stop n1vip=1 n2vip=0"]
        assert "acquiring group web" not in c.log("n2")


def test_losing_one_of_two_links_is_not_a_failover() -> None:
    with LabCluster(links=2) as c:
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        wait_log(c, "n2", "Link n1:eth1 up.")
        marks = {n: len(c.log(n)) for n in ("n1", "n2")}
        c.lab.link_down("n1", link=1)
        wait_log(c, "n2", "Link n1:eth1 dead.")
        wait_log(c, "n1", "our side of link eth1 is down")
        time.sleep(1.0)  # two deadtimes
        assert c.holders() == ["n1"]
        s2 = c.status("n2")
        assert s2["nodes"][1]["state"] == "up"
        links = {l["name"]: l["state"] for l in s2["nodes"][1]["links"]}
        assert links == {"eth0": "up", "eth1": "dead"}, links
        assert c.status("n1")["nodes"][1]["state"] == "up"
        c.lab.link_up("n1", link=1)
        wait_log(c, "n2", "Link n1:eth1 up.", count=2)
        time.sleep(0.3)
        assert c.holders() == ["n1"]
        for n in ("n1", "n2"):
            since = c.log(n)[marks[n]:]
            assert not find_lines(since, ["is dead", "acquiring", "releasing"]), since


def test_multicast_link_beside_the_unicast_one() -> None:
    with LabCluster(links=2) as c:
        configure(c, group_toml(c))  # node addresses on eth0 only...
        with open(c.config_path, "a") as f:  # ...and a multicast link on eth1
            f.write('\n[[link]]\nmode = "mcast"\ninterface = "eth1"\ngroup = "239.77.0.1"\n')
        r = subprocess.run(c.argv("n1", "check-config"), capture_output=True, text=True,
                           check=False, timeout=20)
        assert r.returncode == 0, r.stderr
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        wait_log(c, "n2", "Link n1:eth1 up.")
        wait_log(c, "n1", "Link n2:eth1 up.")
        s = c.status("n2")
        kinds = {l["name"]: l["kind"] for l in s["links"]}
        assert kinds == {"eth0": "ucast", "eth1": "mcast"}, s["links"]
        mcast = next(l for l in s["links"] if l["kind"] == "mcast")
        assert mcast["via"] == "mcast to 239.77.0.1"
        time.sleep(0.5)
        later = next(l for l in c.status("n2")["links"] if l["kind"] == "mcast")
        assert later["sent"] >= mcast["sent"] + 3, (mcast, later)
        assert later["send_errors"] == 0
        # A peer's first frames, sent before it heard n2, are counted "unverified" (session.py):
        # what the bounce below must not add to is the count once both lives know each other.
        settled = c.status("n2")["frames"]["rejected"]

        c.lab.link_down("n1", link=1)
        wait_log(c, "n2", "Link n1:eth1 dead.")
        time.sleep(1.0)
        assert c.holders() == ["n1"]
        assert c.status("n2")["nodes"][1]["state"] == "up"
        c.lab.link_up("n1", link=1)
        wait_log(c, "n2", "Link n1:eth1 up.", count=2)
        assert c.holders() == ["n1"]
        assert "is dead" not in c.log("n2")
        assert c.status("n2")["frames"]["rejected"] == settled
        assert not find_lines(c.log("n1") + c.log("n2"), ["Traceback", "ERROR"])
