"""A filesystem mount, built in: `mount -t FSTYPE -o OPTIONS DEVICE MOUNTPOINT` and `umount`.

Which mount is ours is read from /proc/self/mountinfo and decided by device number, not by
name: a /dev/disk/by-* symlink resolves to its block device's number, and an image file to
the numbers of the loop devices backed by it (/sys/block/loopN/loop/backing_file). An image
file is mounted with the `loop` option added.

"In use elsewhere" means mounted on another path (mountinfo), or held by the kernel outside
this mount namespace: an exclusive open (O_EXCL) of the block device fails with EBUSY. The
second case is real: `unshare -m` or `ip netns exec` copies the mounts of the moment into a
new mount namespace, where the filesystem stays mounted after our umount succeeded. Another
node mounting it then would corrupt it.

- start refuses (AgentError) when the device is in use elsewhere or another filesystem is
  mounted on the mountpoint; it creates a missing mountpoint directory; it succeeds at once
  when the device is already mounted on the mountpoint.
- stop unmounts, then fails if the device is still in use elsewhere; with nothing mounted
  and nothing in use it succeeds. When the mount is busy, the processes holding it get
  SIGTERM, and after `kill_grace` seconds those still holding it get SIGKILL; then the
  unmount is retried once. Holders are found by scanning /proc (each process's cwd, root,
  exe, open files and mapped files) for the mount's device number, so deleted files, chroots
  and other mount namespaces count too, and a process sitting in the directory underneath
  the mount does not. This daemon, its parent and PID 1 are never killed.
- probe says True when it is mounted on the mountpoint or in use elsewhere (either way it
  must be stopped here before another node starts it). monitor says whether it is mounted
  on the mountpoint, and fails when the filesystem went read-only without `ro` being asked
  for (ext4's errors=remount-ro: a dying device) or statvfs() on it fails. healthy says
  whether the device exists.
- Our mount covered by another one mounted on top of it is an AgentError for every action.

Calls that may touch a dead device (statvfs, the /proc scan, the exclusive open) run in daemon threads: a call
stuck in the kernel blocks neither the event loop nor the daemon's exit, and the caller's
timeout still fires.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import os
import re
import signal
import stat
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from vigil.errors import AgentError
from vigil.model import FilesystemResource
from vigil.resources import runner
from vigil.resources.base import Agent

log = logging.getLogger(__name__)

T = TypeVar("T")
POLL = 0.05  # seconds between scans while waiting for holders to let go
NEVER_KILLED = frozenset({1})  # plus os.getpid() and os.getppid(), read at the time


@dataclass(frozen=True, slots=True)
class Mount:
    """One line of /proc/self/mountinfo."""

    id: int
    parent: int
    dev: int  # st_dev of files in it (os.makedev(major, minor))
    mountpoint: str
    fstype: str
    source: str
    options: frozenset[str]  # per-mount and superblock options together ("rw", "noatime"...)


def read_mounts(path: str = "/proc/self/mountinfo") -> list[Mount]:
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return [_parse_mount(line) for line in f if line.strip()]


def _parse_mount(line: str) -> Mount:
    left, right = line.rstrip("\n").split(" - ", 1)
    f = left.split(" ")
    fstype, source, sopts = (right.split(" ", 2) + ["", ""])[:3]
    major, minor = f[2].split(":")
    options = frozenset(f[5].split(",")) | frozenset(sopts.split(","))
    return Mount(int(f[0]), int(f[1]), os.makedev(int(major), int(minor)), _unescape(f[4]),
                 fstype, _unescape(source), options)


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040...)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def loop_devices_of(image: str) -> dict[int, str]:
    """The loop devices whose backing file is `image` (a real path): number -> /dev path."""
    found = {}
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            if backing.read_text().rstrip("\n") == image:
                major, minor = (backing.parent.parent / "dev").read_text().split(":")
                found[os.makedev(int(major), int(minor))] = f"/dev/{backing.parent.parent.name}"
        except (OSError, ValueError):
            continue  # detached meanwhile
    return found


def in_use(device: str) -> bool:
    """Whether the kernel holds block device `device` exclusively: a filesystem mounted in
    any mount namespace, or a RAID/LVM/device-mapper holder (open(2) with O_EXCL: EBUSY)."""
    try:
        fd = os.open(device, os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC)
    except OSError as e:
        return e.errno == errno.EBUSY
    os.close(fd)
    return False


def find_holders(dev: int, exclude: Iterable[int] = ()) -> list[int]:
    """PIDs of the processes using files of the filesystem whose st_dev is `dev`."""
    skip = set(exclude)
    pids = (int(e) for e in os.listdir("/proc") if e.isdigit())
    return sorted(pid for pid in pids if pid not in skip and _holds(pid, dev))


def _holds(pid: int, dev: int) -> bool:
    base = f"/proc/{pid}"
    try:
        links = [f"{base}/cwd", f"{base}/root", f"{base}/exe"]
        links += [f"{base}/fd/{fd}" for fd in os.listdir(f"{base}/fd")]
        if any(_dev_of(link) == dev for link in links):
            return True
        with open(f"{base}/maps", encoding="ascii", errors="replace") as maps:
            for line in maps:  # address perms offset dev(hex major:minor) inode path
                fields = line.split(maxsplit=5)
                if len(fields) >= 5 and fields[4] != "0":
                    major, minor = fields[3].split(":")
                    if os.makedev(int(major, 16), int(minor, 16)) == dev:
                        return True
    except OSError:
        pass  # it exited (or is a zombie, which holds nothing)
    return False


def _dev_of(link: str) -> int | None:
    try:
        return os.stat(link).st_dev
    except OSError:
        return None


async def in_thread(call: Callable[[], T]) -> T:
    """`call()` in a daemon thread. Unlike asyncio.to_thread, whose executor is joined when
    the loop closes, a call stuck in the kernel (a dead device) cannot hang the daemon's exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(outcome: Callable[[], None]) -> None:
        def settle() -> None:
            if not future.done():  # else the caller gave up (cancelled)
                outcome()
        try:
            loop.call_soon_threadsafe(settle)
        except RuntimeError:
            pass  # the loop closed meanwhile

    def work() -> None:
        try:
            result = call()
        except Exception as e:  # handed to the awaiting task
            deliver(functools.partial(future.set_exception, e))
        else:
            deliver(functools.partial(future.set_result, result))

    threading.Thread(target=work, name="vigil-fs", daemon=True).start()
    return await future


class FilesystemAgent(Agent):
    """One `FilesystemResource` (see the module docstring)."""

    def __init__(self, resource: FilesystemResource) -> None:
        self.resource = resource
        self.name = resource.name
        self.timeout = resource.timeout
        mp = resource.mountpoint
        # mountinfo shows real paths; resolve the parent only, never the mount itself
        self.mountpoint = str(Path(os.path.realpath(mp.parent)) / mp.name)
        self.options = [o for o in resource.options.split(",") if o]

    async def start(self) -> None:
        device = self.resource.device
        try:
            mode = os.stat(device).st_mode
        except OSError as e:
            raise self.error(f"cannot mount {device}: {e.strerror}") from e
        if not (stat.S_ISBLK(mode) or stat.S_ISREG(mode)):
            raise self.error(f"{device} is neither a block device nor a regular file")
        mounts = read_mounts()
        if self._here(mounts) is not None:
            return
        top = _top(mounts, self.mountpoint)
        if top is not None:
            raise self.error(f"{top.source} ({top.fstype}) is mounted on {self.mountpoint}: "
                             "refusing to mount over it")
        elsewhere = await self._used_elsewhere(mounts)
        if elsewhere is not None:
            raise self.error(f"{device} is already {elsewhere}: refusing to mount it")
        try:
            os.makedirs(self.mountpoint, exist_ok=True)
        except OSError as e:
            raise self.error(f"cannot create {self.mountpoint}: {e.strerror}") from e
        options = self.options + (["loop"] if stat.S_ISREG(mode) and "loop" not in
                                  self.options else [])
        argv = ["mount"] + (["-t", self.resource.fstype] if self.resource.fstype else [])
        argv += (["-o", ",".join(options)] if options else []) + ["--", str(device),
                                                                   self.mountpoint]
        done = await self._run("mount", argv)
        if done.rc != 0:
            raise self.error(f"mount failed ({done.describe_rc()}){_detail(done)}")

    async def stop(self) -> None:
        """Unmount; then make sure the device is not in use anywhere else on this node."""
        mine = self._here(read_mounts())
        if mine is not None:
            await self._unmount(mine.dev)
        elsewhere = await self._used_elsewhere(read_mounts())
        if elsewhere is not None:
            raise self.error(f"{self.resource.device} is still {elsewhere}")

    async def probe(self) -> bool:
        """Mounted on the mountpoint, or in use anywhere else on this node: either way it
        must not be started on another node before it is stopped here."""
        mounts = read_mounts()
        if self._here(mounts) is not None:
            return True
        elsewhere = await self._used_elsewhere(mounts)
        if elsewhere is not None:
            log.warning("%s probe: %s is %s; present", self.name, self.resource.device,
                        elsewhere)
        return elsewhere is not None

    async def monitor(self) -> bool:
        mine = self._here(read_mounts())
        if mine is None:
            return False
        if "ro" in mine.options and "ro" not in self.options:
            raise self.error("mounted read-only though not asked to be (filesystem errors?)")
        try:
            await in_thread(lambda: os.statvfs(self.mountpoint))
        except OSError as e:
            raise self.error(f"mounted but unreadable: statvfs: {e.strerror}") from e
        return True

    async def healthy(self) -> bool:
        return os.path.exists(self.resource.device)

    def _identity(self) -> tuple[dict[int, str], str]:
        """What a mount of our device shows in mountinfo: its block device (an image file's:
        the loop devices on it) as number -> path, and its source path."""
        device = self.resource.device
        try:
            st = os.stat(device)
        except OSError:  # gone: all that is left to go by is its name
            return {}, os.path.normpath(device)
        real = os.path.realpath(device)
        if stat.S_ISBLK(st.st_mode):
            return {st.st_rdev: real}, real
        return loop_devices_of(real), real

    async def _used_elsewhere(self, mounts: list[Mount]) -> str | None:
        """Where else on this node our device is in use (call it when it is not mounted on
        the mountpoint), or None."""
        devs, source = self._identity()
        for m in mounts:
            if (m.dev in devs or m.source == source) and m.mountpoint != self.mountpoint:
                return f"mounted on {m.mountpoint}"
        if await in_thread(lambda: any(in_use(path) for path in devs.values())):
            return ("in use outside this mount namespace (mounted in another one, or held by "
                    "RAID, LVM or device-mapper)")
        return None

    def _here(self, mounts: list[Mount]) -> Mount | None:
        """Our mount on the mountpoint, or None. AgentError when another one covers it."""
        devs, source = self._identity()
        mine = next((m for m in mounts if m.mountpoint == self.mountpoint
                     and (m.dev in devs or m.source == source)), None)
        top = _top(mounts, self.mountpoint)
        if mine is not None and top is not None and top.id != mine.id:
            raise self.error(f"{top.source} ({top.fstype}) is mounted on top of it at "
                             f"{self.mountpoint}")
        return mine

    async def _release(self, dev: int) -> None:
        """SIGTERM the holders of the filesystem `dev`, SIGKILL those left after kill_grace,
        and wait until none is left (as long as the caller lets us)."""
        exclude = NEVER_KILLED | {os.getpid(), os.getppid()}
        holders = await in_thread(lambda: find_holders(dev, exclude))
        if not holders:
            return
        log.warning("killing pids=%s with SIGTERM: they hold %s", holders, self.mountpoint)
        _signal(holders, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.resource.kill_grace
        while holders and loop.time() < deadline:
            await asyncio.sleep(POLL)
            holders = await in_thread(lambda: find_holders(dev, exclude))
        if holders:
            log.warning("killing pids=%s with SIGKILL after kill_grace=%gs: they hold %s",
                        holders, self.resource.kill_grace, self.mountpoint)
        while holders:
            _signal(holders, signal.SIGKILL)
            await asyncio.sleep(POLL)
            holders = await in_thread(lambda: find_holders(dev, exclude))

    async def _unmount(self, dev: int) -> None:
        """umount; when busy, release the filesystem `dev` from its holders and retry."""
        done = await self._umount()
        if done.rc != 0 and "busy" in done.stderr:
            await self._release(dev)
            done = await self._umount()
        if done.rc != 0 and self._here(read_mounts()) is not None:
            hint = " (no process holds it: a mount below it, swap, a loop device?)" \
                if "busy" in done.stderr else ""
            raise self.error(f"umount failed ({done.describe_rc()}){_detail(done)}{hint}")

    async def _umount(self) -> runner.Completed:
        return await self._run("umount", ["umount", "--", self.mountpoint])

    async def _run(self, action: str, argv: list[str]) -> runner.Completed:
        try:  # C locale: "target is busy" is matched in English
            return await runner.run(argv, env={**os.environ, "LC_ALL": "C"})
        except AgentError as e:
            raise self.error(f"{action}: {e}") from e


def _top(mounts: list[Mount], mountpoint: str) -> Mount | None:
    """The mount visible at `mountpoint`: the one no other mount there is stacked on."""
    stack = [m for m in mounts if m.mountpoint == mountpoint]
    below = {m.parent for m in stack}
    return next((m for m in reversed(stack) if m.id not in below), None)


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _detail(done: runner.Completed) -> str:
    line = done.last_stderr_line()
    return f": {line}" if line else ""
