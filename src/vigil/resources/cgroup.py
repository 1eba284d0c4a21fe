"""cgroup v2 for resource processes: where the hierarchy is, and one leaf cgroup per resource.

Where: the first cgroup2 mount at /sys/fs/cgroup or below in /proc/self/mountinfo
(/sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one) and this process's own cgroup, the `0::` line of
/proc/self/cgroup. A resource's cgroup is `<own cgroup>/vigil/<name>` (`Hierarchy.leaf`): under
systemd that is inside the unit's own subtree, which the unit may manage with `Delegate=yes`
(packaging/vigil.service). The guard inherits the daemon's cgroup, so both compute the same
paths. No controller is enabled anywhere: the cgroups only track processes, so the kernel's
"no internal processes" rule never applies and the daemon may stay in its own cgroup.

A child enters its cgroup before it runs anything of its own: `enter_argv` puts it behind a
`/bin/sh` that writes itself into `cgroup.procs` and then execs the real program: one more
exec per action, 1-2 ms on the 2-core development machine (issue 12's report). `preexec_fn`
would do it without a shell, but it runs Python in the child of a threaded process and
makes subprocess fork instead of vfork: measured slower still (+1.8 ms against +0.9 ms for
the shell, subprocess.run of /bin/true).

Refusal: when a cgroup cannot be made (no delegation, a read-only mount, a limit) `refuse()`
records why and logs it once; from then on `hierarchy()` says None for this process and
callers track processes without cgroups (`procs.py`).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

NO_CGROUP_ENV = "VIGIL_TEST_NO_CGROUP"
"""Set to 1 in the environment to make `hierarchy()` say None: for tests of the fallback
only (it would leave a real node with the weaker tracking)."""

ENTER = 'echo 0 >"$1" || echo "vigil-cgroup: running outside $1" >&2; shift; exec "$@"'
"""The shell's part of `enter_argv`: move itself ($1 is cgroup.procs), then become the program.
A failed write (the cgroup removed meanwhile by the daemon's guard, say) does not fail the
action: the program runs outside, and both the shell's reason and that line go to the
action's stderr, which the agent logs under the resource's name. (Failing a stop over it
would block the group.)"""

_ENTER_NAME = "vigil-cgroup"  # the shell's $0: the name its error messages begin with


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """The cgroup v2 tree as this process sees it."""

    mount: Path  # where cgroup2 is mounted
    own: Path  # this process's cgroup: a directory under `mount`
    base: str = "vigil"  # the directory under `own` that holds the resources' cgroups (base_name)

    def leaf(self, name: str) -> Path:
        """The directory of the cgroup called `name` (a plain file name)."""
        return self.own / self.base / name

    def relative(self, path: Path) -> str:
        """`path` as /proc/PID/cgroup names it: "/" + its path under the mount."""
        rel = str(path.relative_to(self.mount))
        return "/" if rel == "." else "/" + rel


def parse_mountinfo(text: str) -> list[tuple[str, str]]:
    """(root, mount point) of each cgroup2 mount in /proc/self/mountinfo's `text`, in order."""
    found: list[tuple[str, str]] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split() or right.split()[0] != "cgroup2":
            continue
        found.append((_unescape(fields[3]), _unescape(fields[4])))
    return found


def parse_own(text: str) -> str | None:
    """This process's cgroup v2 path from /proc/self/cgroup's `text` (its `0::` line)."""
    for line in text.splitlines():
        if line.startswith("0::"):
            path = line[3:].strip()
            return path if path.startswith("/") and not path.endswith(" (deleted)") else None
    return None


def locate(mountinfo: str, own_cgroup: str) -> Hierarchy | None:
    """The hierarchy from the two files' texts; None without a cgroup2 mount at its usual
    place (/sys/fs/cgroup or below) that shows our own cgroup (a mount of another subtree,
    e.g. a container's, does not). Mounts elsewhere are someone else's (a chroot's bind
    mount, which may go at any time) and are left alone."""
    own = parse_own(own_cgroup)
    if own is None:
        return None
    for root, mountpoint in parse_mountinfo(mountinfo):
        if mountpoint != "/sys/fs/cgroup" and not mountpoint.startswith("/sys/fs/cgroup/"):
            continue
        root = root.rstrip("/") or "/"
        if root == "/":
            rest = own
        elif own == root or own.startswith(root + "/"):
            rest = own[len(root):] or "/"
        else:
            continue
        return Hierarchy(Path(mountpoint), Path(mountpoint) / rest.lstrip("/"))
    return None


def base_name() -> str:
    """"vigil", or "vigil-net<inode>" in a network namespace other than the initial one.

    Two daemons of one host share a cgroup and a process table only in a lab (vigil.lab runs
    each node in a network namespace): the suffix keeps one node's stop from killing the
    other node's copy of the same resource. The daemon, its guard and a daemon restarted
    after a crash all run in the node's namespace, so they agree on it. The initial
    namespace is PID 1's; where /proc/1 cannot be read (a sandbox that denies it), the one
    with the fixed inode Linux gives it (PROC_NET_INIT_INO; older kernels number it at boot:
    there, in such a sandbox, the suffix appears even on a host, which is harmless)."""
    global _base
    if _base is None:
        try:
            mine = os.stat("/proc/self/ns/net").st_ino
        except OSError:
            mine = _INIT_NET_INO
        try:
            init = os.stat("/proc/1/ns/net").st_ino
        except OSError:
            init = _INIT_NET_INO
        _base = "vigil" if mine == init else f"vigil-net{mine}"
    return _base


_INIT_NET_INO = 0xEFFFFFF9
_base: str | None = None
_found: Hierarchy | None = None
_looked = False
_refused: str | None = None


def hierarchy() -> Hierarchy | None:
    """This process's hierarchy (looked up once), or None: no cgroup2 mount, our cgroup not
    under it, a refusal (see `refuse`), or NO_CGROUP_ENV set (tests)."""
    global _found, _looked
    if _refused is not None or os.environ.get(NO_CGROUP_ENV) == "1":
        return None
    if not _looked:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
            own = Path("/proc/self/cgroup").read_text()
        except OSError:
            mountinfo = own = ""
        _found = locate(mountinfo, own)
        if _found is not None and not _found.own.is_dir():
            _found = None
        if _found is not None:
            _found = dataclasses.replace(_found, base=base_name())
        _looked = True
    return _found


def refuse(path: Path, e: OSError) -> None:
    """Give up on cgroups for this process after `path` could not be made; log it once."""
    global _refused
    if _refused is None:
        _refused = f"{path}: {e.strerror or e}"
        log.warning("cgroups refused (%s): tracking resource processes by session and "
                    "environment instead", _refused)


def forget() -> None:
    """Look the hierarchy up again on next use and forget a refusal (tests)."""
    global _found, _looked, _refused
    _found, _looked, _refused = None, False, None


def ensure(h: Hierarchy, name: str) -> Path:
    """Make the cgroup `name` (and the base directory) if needed; its cgroup.procs file.

    OSError when the kernel refuses. A concurrent removal of the empty base directory (by
    another resource's `remove`, in the guard) is retried."""
    leaf = h.leaf(name)
    for attempt in range(3):
        try:
            os.mkdir(leaf)
        except FileExistsError:
            pass
        except FileNotFoundError:
            if attempt == 2:
                raise
            try:
                os.mkdir(leaf.parent)
            except FileExistsError:
                pass
            continue
        return leaf / "cgroup.procs"
    raise AssertionError("unreachable")


def enter_argv(procs_file: Path, program: str, args: tuple[str, ...]) -> tuple[str, ...]:
    """The command line that runs `program args...` inside the cgroup of `procs_file`.
    `program` must contain a '/': the shell is not to search PATH again."""
    return ("/bin/sh", "-c", ENTER, _ENTER_NAME, str(procs_file), program, *args)


def _walk(leaf: Path) -> Iterator[Path]:
    """`leaf` and the cgroups a managed program made below it, deepest first."""
    try:
        entries = list(os.scandir(leaf))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path))
    yield leaf


def pids(leaf: Path) -> list[int]:
    """The processes in `leaf` and below it; [] when it does not exist."""
    found: list[int] = []
    for cg in _walk(leaf):
        try:
            found += [int(p) for p in (cg / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            continue  # removed meanwhile
    return found


def kill(leaf: Path) -> bool:
    """SIGKILL everything in `leaf` and below, atomically (forks included), through
    cgroup.kill (Linux 5.14+). False when there is no cgroup.kill."""
    try:
        with open(leaf / "cgroup.kill", "w") as f:
            f.write("1")
    except FileNotFoundError:
        return False
    return True


def remove(leaf: Path, *, tree: bool = False) -> bool:
    """rmdir `leaf`, then the base directory if it is empty now. True when `leaf` is gone;
    False when something runs in it or, unless `tree`, it has cgroups below it. With `tree`
    (once everything in it was killed) those go first, deepest first: between actions they
    are the managed program's own, perhaps about to be used."""
    if not _rmdir(leaf):  # the common case, an empty leaf, needs no listing
        if not tree:
            return False
        for cg in _walk(leaf):  # busy: something runs in it, or there are cgroups below
            if not _rmdir(cg):
                return False
    _rmdir(leaf.parent)
    return True


def _rmdir(path: Path) -> bool:
    """rmdir a cgroup; False when it is busy (populated, or has children)."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno in (errno.EBUSY, errno.ENOTEMPTY):
            return False
        raise
    return True


def member(pid: int, h: Hierarchy, leaf: Path) -> bool:
    """Whether process `pid` is in `leaf` or below it now."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False
    path = parse_own(text)
    want = h.relative(leaf)
    return path is not None and (path == want or path.startswith(want + "/"))


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\ooo octal."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field) >= i + 4 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
