"""FilesystemAgent against the kernel: an ext4 image on a loop device, real mounts, real holders.

Each test gets a 16 MiB ext4 image and a loop device on it; whatever the test mounted under
its tmp directory is unmounted, its children killed and reaped, and the loop device detached
afterwards, pass or fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from vigil.errors import AgentError
from vigil.model import FilesystemResource
from vigil.resources.filesystem import FilesystemAgent, in_use, loop_devices_of, read_mounts

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount"),
    pytest.mark.skipif(shutil.which("mkfs.ext4") is None or shutil.which("losetup") is None,
                       reason="needs e2fsprogs and util-linux"),
]


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


@dataclass
class Disk:
    root: Path  # the test's tmp directory: everything mounted below it is cleaned up
    image: Path
    loop: Path  # a loop device on `image`
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def agent(self, device: Path | None = None, mountpoint: str = "mnt", options: str = "",
              kill_grace: float = 5.0) -> FilesystemAgent:
        return FilesystemAgent(FilesystemResource(
            device=device or self.loop, mountpoint=self.root / mountpoint, fstype="ext4",
            options=options, kill_grace=kill_grace))

    def mount(self, source: Path | str, target: str, *args: str) -> Path:
        path = self.root / target
        path.mkdir(exist_ok=True)
        subprocess.run(["mount", *args, str(source), str(path)], check=True)
        return path

    def spawn(self, argv: list[str], cwd: Path | str = "/", **kw: Any) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(argv, cwd=cwd, **kw)
        self.children.append(child)
        return child


def mounted_at(path: Path) -> list[str]:
    """mountinfo lines of the mounts on `path`."""
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [line for line in lines if line.split(" ")[4] == str(path)]


def make_image(path: Path) -> Path:
    with open(path, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(path)], check=True)
    return path


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    image = make_image(tmp_path / "disk.img")
    loop = subprocess.run(["losetup", "--find", "--show", str(image)], check=True,
                          capture_output=True, text=True).stdout.strip()
    d = Disk(tmp_path, image, Path(loop))
    try:
        yield d
    finally:
        for child in d.children:
            if child.poll() is None:
                child.kill()
            child.wait()
        for m in reversed(read_mounts()):
            if m.mountpoint.startswith(f"{tmp_path}/"):
                subprocess.run(["umount", m.mountpoint], check=False)
        for img in (image, tmp_path / "file.img"):  # only loop devices on our images
            for dev in loop_devices_of(os.path.realpath(img)).values():
                subprocess.run(["losetup", "-d", dev], check=False)


def test_start_mounts_with_options_and_stop_unmounts(disk: Disk) -> None:
    agent = disk.agent(options="noatime")
    mnt = disk.root / "mnt"
    assert not mnt.exists()
    assert run(agent.probe()) is False and run(agent.healthy()) is True
    run(agent.start())  # creates the mountpoint
    [line] = mounted_at(mnt)
    assert "noatime" in line.split(" ")[5] and f" ext4 {disk.loop} " in line
    run(agent.start())  # already mounted: nothing to do
    assert len(mounted_at(mnt)) == 1
    assert run(agent.probe()) is True and run(agent.monitor()) is True
    run(agent.stop())
    assert mounted_at(mnt) == []
    assert run(agent.probe()) is False and run(agent.monitor()) is False
    run(agent.stop())  # already unmounted


def test_image_file_is_mounted_through_a_loop_device(disk: Disk) -> None:
    image = make_image(disk.root / "file.img")
    agent = disk.agent(device=image)
    run(agent.start())
    [line] = mounted_at(disk.root / "mnt")
    [loop] = loop_devices_of(str(image)).values()
    assert f" ext4 {loop} " in line
    run(agent.start())  # the image is recognised behind its loop device
    assert run(agent.monitor()) is True
    run(agent.stop())
    assert mounted_at(disk.root / "mnt") == []
    deadline = time.monotonic() + 5  # util-linux set autoclear: the loop device goes too
    while loop_devices_of(str(image)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert loop_devices_of(str(image)) == {}


def test_device_mounted_elsewhere_is_refused(disk: Disk) -> None:
    other = disk.mount(disk.loop, "other")
    link = disk.root / "by-id" / "disk-1"  # as /dev/disk/by-id/... would be
    link.parent.mkdir()
    link.symlink_to(disk.loop)
    agent = disk.agent(device=link)
    with pytest.raises(AgentError, match=f"^filesystem {link} on {disk.root}/mnt: "
                                         f"{link} is already mounted on {other}: "
                                         "refusing to mount it$"):
        run(agent.start())
    assert mounted_at(disk.root / "mnt") == []
    assert run(agent.probe()) is True  # present on this node: stop it before going elsewhere
    with pytest.raises(AgentError, match=f"{link} is still mounted on {other}$"):
        run(agent.stop())


def test_image_whose_loop_device_is_mounted_elsewhere_is_refused(disk: Disk) -> None:
    other = disk.mount(disk.loop, "other")
    with pytest.raises(AgentError, match=f"is already mounted on {other}"):
        run(disk.agent(device=disk.image).start())


def test_mount_left_in_another_mount_namespace(disk: Disk) -> None:
    """A mount namespace made while it was mounted (unshare -m, ip netns exec) keeps the
    filesystem alive after our umount: stop must not call that stopped."""
    agent = disk.agent()
    run(agent.start())
    copy = disk.spawn(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                       "echo ready; exec sleep 60"], stdout=subprocess.PIPE)
    assert copy.stdout is not None and copy.stdout.readline() == b"ready\n"
    in_another = "is still in use outside this mount namespace"
    with pytest.raises(AgentError, match=f"{disk.loop} {in_another}"):
        run(agent.stop())
    assert mounted_at(disk.root / "mnt") == []  # unmounted here, all the same
    assert run(agent.probe()) is True
    with pytest.raises(AgentError, match="is already in use outside this mount namespace"):
        run(agent.start())
    copy.kill()
    copy.wait()
    deadline = time.monotonic() + 5  # the namespace's mounts go in the background
    while in_use(str(disk.loop)) and time.monotonic() < deadline:
        time.sleep(0.05)
    run(agent.stop())
    assert run(agent.probe()) is False


def test_other_filesystem_on_mountpoint(disk: Disk) -> None:
    mnt = disk.mount("tmpfs", "mnt", "-t", "tmpfs")
    agent = disk.agent()
    with pytest.raises(AgentError, match=f"tmpfs \\(tmpfs\\) is mounted on {mnt}: "
                                         "refusing to mount over it"):
        run(agent.start())
    assert run(agent.probe()) is False
    run(agent.stop())  # not ours: left alone
    assert len(mounted_at(mnt)) == 1


def test_mount_covered_by_another_is_an_error(disk: Disk) -> None:
    agent = disk.agent()
    run(agent.start())
    disk.mount("tmpfs", "mnt", "-t", "tmpfs")
    for action in ("probe", "monitor", "stop", "start"):
        with pytest.raises(AgentError, match="tmpfs \\(tmpfs\\) is mounted on top of it"):
            run(getattr(agent, action)())


def test_monitor_fails_when_remounted_read_only(disk: Disk) -> None:
    agent = disk.agent()
    run(agent.start())
    subprocess.run(["mount", "-o", "remount,ro", str(disk.root / "mnt")], check=True)
    with pytest.raises(AgentError, match="mounted read-only though not asked to be"):
        run(agent.monitor())
    assert run(disk.agent(options="ro").monitor()) is True


def test_missing_device(disk: Disk) -> None:
    agent = disk.agent(device=disk.root / "nothing")
    assert run(agent.healthy()) is False
    with pytest.raises(AgentError, match="cannot mount .*/nothing: No such file or directory"):
        run(agent.start())
    assert run(agent.probe()) is False
    run(agent.stop())


def test_busy_mount_holders_are_terminated(disk: Disk) -> None:
    agent = disk.agent(kill_grace=5.0)
    run(agent.start())
    mnt = disk.root / "mnt"
    (mnt / "data").write_bytes(b"x" * 8192)
    in_cwd = disk.spawn(["sleep", "60"], cwd=mnt)
    with open(mnt / "data", "rb") as f:  # our copy closes at once; the child's stays open
        open_file = disk.spawn(["sleep", "60"], stdin=f)
    mapping = disk.spawn([sys.executable, "-c", MAP_AND_WAIT, str(mnt / "data")],
                         stdout=subprocess.PIPE)
    assert mapping.stdout is not None and mapping.stdout.readline() == b"mapped\n"
    started = time.monotonic()
    run(agent.stop())
    assert time.monotonic() - started < 5.0  # SIGTERM was enough: no wait for kill_grace
    assert mounted_at(mnt) == []
    for child in (in_cwd, open_file, mapping):
        assert child.wait(timeout=5) == -15  # SIGTERM


MAP_AND_WAIT = """
import mmap, sys, time
with open(sys.argv[1], "rb") as f:
    m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)  # the mapping outlives the fd
print("mapped", flush=True)
time.sleep(60)
"""


def test_holder_ignoring_sigterm_is_killed_after_grace(disk: Disk) -> None:
    agent = disk.agent(kill_grace=0.5)
    run(agent.start())
    mnt = disk.root / "mnt"
    stubborn = disk.spawn(["sh", "-c", 'trap "" TERM; echo ready; sleep 60'], cwd=mnt,
                          stdout=subprocess.PIPE)
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
    started = time.monotonic()
    run(agent.stop())
    assert time.monotonic() - started >= 0.5
    assert mounted_at(mnt) == []
    assert stubborn.wait(timeout=5) == -9  # SIGKILL


def test_never_kills_itself(disk: Disk) -> None:
    """The daemon (here: this test) holding the mount is left alone; stop fails instead."""
    agent = disk.agent(kill_grace=0.1)
    run(agent.start())
    mnt = disk.root / "mnt"
    with open(mnt / "mine", "w"), pytest.raises(AgentError, match="umount failed .*busy"):
        run(agent.stop())
    run(agent.stop())
    assert mounted_at(mnt) == []
