"""procs.py and cgroup.py without processes: finding the hierarchy, naming a resource's scope,
reading /proc/PID/stat, resolving a program as exec would. (Real processes:
tests/integration/test_leftovers.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vigil.model import ExecResource, HeartbeatResource, LsbResource, OcfResource
from vigil.resources import cgroup, procs
from vigil.resources.procs import Proc, parse_stat, resolve, scope_name

MOUNTINFO = """\
22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
25 28 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
27 25 0:25 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,memory
"""


def test_the_v2_mount_and_our_cgroup_under_it() -> None:
    assert cgroup.parse_mountinfo(MOUNTINFO) == [("/", "/sys/fs/cgroup/unified")]
    own = "4:memory:/x\n0::/system.slice/vigil.service\n"
    assert cgroup.parse_own(own) == "/system.slice/vigil.service"
    h = cgroup.locate(MOUNTINFO, own)
    assert h is not None
    assert h.mount == Path("/sys/fs/cgroup/unified")
    assert h.own == Path("/sys/fs/cgroup/unified/system.slice/vigil.service")
    assert h.leaf("exec_x-1") == h.own / "vigil" / "exec_x-1"
    assert h.relative(h.leaf("exec_x-1")) == "/system.slice/vigil.service/vigil/exec_x-1"
    assert h.relative(h.mount) == "/"


def test_no_v2_mount_or_no_v2_line_means_no_cgroups() -> None:
    v1_only = "\n".join(line for line in MOUNTINFO.splitlines() if "cgroup2" not in line)
    assert cgroup.locate(v1_only, "0::/\n") is None
    assert cgroup.locate(MOUNTINFO, "4:memory:/x\n") is None  # a v1-only process
    assert cgroup.parse_own("0::/gone (deleted)\n") is None


def test_a_mount_of_a_subtree_maps_our_path_or_does_not_show_it() -> None:
    sub = "30 25 0:24 /lxc/c1 /sys/fs/cgroup/c\\040one rw - cgroup2 cgroup2 rw\n"
    assert cgroup.parse_mountinfo(sub) == [("/lxc/c1", "/sys/fs/cgroup/c one")]
    h = cgroup.locate(sub, "0::/lxc/c1/svc\n")
    assert h is not None and h.own == Path("/sys/fs/cgroup/c one/svc")
    assert cgroup.locate(sub, "0::/elsewhere\n") is None


def test_a_mount_outside_sys_fs_cgroup_is_someone_else_s() -> None:
    """A chroot's bind mount of the hierarchy may be unmounted at any moment."""
    chroot = ("31 25 0:24 / /srv/chroot/sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
              + MOUNTINFO)
    h = cgroup.locate(chroot, "0::/\n")
    assert h is not None and h.mount == Path("/sys/fs/cgroup/unified")
    assert cgroup.locate(chroot.splitlines()[0], "0::/\n") is None


def test_the_test_switch_turns_cgroups_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cgroup.NO_CGROUP_ENV, "1")
    assert cgroup.hierarchy() is None


def test_scope_names_are_stable_distinct_and_plain() -> None:
    a = ExecResource(start=("/bin/sh", "-c", "exec web"), stop=("/bin/true",))
    b = ExecResource(start=("/bin/sh", "-c", "exec db"), stop=("/bin/true",))
    assert a.name == b.name
    assert scope_name(a) != scope_name(b)
    assert scope_name(a) == scope_name(ExecResource(start=a.start, stop=a.stop))
    # a monitor or timeout change is no restart: the scope stays
    assert scope_name(a) == scope_name(ExecResource(start=a.start, stop=a.stop, timeout=3))
    o1 = OcfResource("heartbeat:IPaddr2", "ip", (("ip", "10.0.0.1"),))
    o2 = OcfResource("heartbeat:IPaddr2", "ip", (("ip", "10.0.0.2"),))
    assert o1.name == o2.name and scope_name(o1) != scope_name(o2)
    for r in (a, o1, LsbResource("../x y"), HeartbeatResource("IPaddr", ("10.0.0.1/24/eth0",))):
        name = scope_name(r)
        assert "/" not in name and " " not in name and not name.startswith(".")
        assert len(name) <= 53 and name.isascii()
    assert scope_name(a).startswith("exec_sh-")
    assert scope_name(HeartbeatResource("IPaddr", ("10.0.0.1/24/eth0",))).startswith(
        "heartbeat_IPaddr__10.0.0.1_24_eth0-")


def test_stat_with_a_command_name_full_of_parentheses() -> None:
    raw = "4242 (a) (b c)) S 1 4242 4240 0 -1 4194560 ...\n"
    assert parse_stat(raw) == ("a) (b c)", "S", 1, 4242, 4240)
    assert parse_stat("garbage") is None
    assert parse_stat("1 (x) Z notanumber 1 1") is None


def test_a_flood_of_leftovers_is_named_in_part() -> None:
    many = [Proc(i, "fork") for i in range(1000)]
    text = procs._describe(many)
    assert text.count("comm=fork") == procs.LOGGED_AT_MOST
    assert text.endswith(f"and {1000 - procs.LOGGED_AT_MOST} more")
    assert str(Proc(7, "x")) == "pid=7 comm=x"
    assert procs._printable("a b\x1b") == "a?b?"


def test_resolve_finds_as_exec_would(tmp_path: Path) -> None:
    good = tmp_path / "bin" / "svc"
    good.parent.mkdir()
    good.write_text("#!/bin/sh\n")
    good.chmod(0o755)
    env = {"PATH": f"{tmp_path / 'nothing'}:{good.parent}"}
    assert resolve("svc", env) == str(good)
    assert resolve(str(good), {}) == str(good)
    with pytest.raises(FileNotFoundError):
        resolve("no-such-svc", env)
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\n")
    plain.chmod(0o644)
    with pytest.raises(PermissionError):
        resolve(str(plain), env)
    with pytest.raises(PermissionError):
        resolve(str(tmp_path), env)  # a directory
    orphan = tmp_path / "orphan"
    orphan.write_text("#!/nonexistent/interpreter -x\n")
    orphan.chmod(0o755)
    with pytest.raises(FileNotFoundError):
        resolve(str(orphan), env)
    binary = os.path.realpath("/bin/true")
    assert resolve(binary, env) == binary
