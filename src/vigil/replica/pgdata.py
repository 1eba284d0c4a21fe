"""The files of one PostgreSQL data directory that vigil writes, and how: as the server's
user, never following a symlink, atomically (a temporary file, fsync, rename), mode 0600.
postgres.py decides what to write; this module only writes and reads.

`configure` keeps the three things vigil owns in a data directory (postgres.py's docstring
says why each): the include line at the end of postgresql.conf, vigil.conf, and
standby.signal exactly when the instance is to start as a standby.
"""

from __future__ import annotations

import contextlib
import os
import pwd
from collections.abc import Iterator
from pathlib import Path

from vigil.errors import AgentError
from vigil.replica import pgfacts as facts
from vigil.replica import pghba
from vigil.replica.pgfacts import PgSpec

Upstream = tuple[str, int]


class DataDir:
    def __init__(self, spec: PgSpec) -> None:
        self.spec = spec
        self.path = spec.data_dir

    def ids(self) -> tuple[int, int]:
        """The server user's uid and gid; AgentError when there is no such user."""
        try:
            entry = pwd.getpwnam(self.spec.user)
        except KeyError:
            raise AgentError(f"postgresql: user {self.spec.user!r} does not exist") from None
        return entry.pw_uid, entry.pw_gid

    def problems(self) -> list[str]:
        """What keeps this data directory from being run (postgres.py's validate): the
        server's user, pg_ctl, the directory and its owner, a cluster in it, pg_hba.conf's
        replication entry, postgresql.auto.conf leaving vigil.conf's settings alone."""
        spec, d = self.spec, self.path
        if spec.user == "root":
            return ["user = root: the server must run as an unprivileged user (postgres)"]
        if not (spec.bin_dir / "pg_ctl").exists():
            return [f"no pg_ctl in bin_dir {spec.bin_dir}"]
        if not d.is_dir():
            return [f"data directory {d} does not exist"]
        if (owner := d.stat().st_uid) != self.ids()[0]:
            name = next((p.pw_name for p in pwd.getpwall() if p.pw_uid == owner), f"uid {owner}")
            return [f"data directory {d} is owned by {name}, not {spec.user}"]
        if not (d / "PG_VERSION").is_file() or not (d / "global" / "pg_control").is_file():
            return [f"{d} is not a PostgreSQL data directory (no PG_VERSION or global/pg_control)"]
        hba, auto = d / "pg_hba.conf", d / "postgresql.auto.conf"
        return (pghba.hba_problems(spec, read(hba), str(hba)) if hba.is_file()
                else [f"{hba} does not exist"]) + \
            facts.auto_conf_problems(read(auto), str(auto))

    def entries(self) -> int:
        """How many entries the data directory holds (0 when absent, 1 when a file)."""
        p = self.path
        return len(os.listdir(p)) if p.is_dir() else int(p.exists())

    def make(self, what: str) -> None:
        """Create the data directory (its parent must exist), the user's, mode 0700."""
        if not self.path.parent.is_dir():
            raise AgentError(f"postgresql {what}: {self.path.parent} does not exist")
        with os_errors(what):
            self.path.mkdir(mode=0o700, exist_ok=True)
            os.chown(self.path, *self.ids())
            self.path.chmod(0o700)

    def configure(self, upstream: Upstream | None, standby: bool) -> bool:
        """Write the include line, vigil.conf and standby.signal as asked; True when
        vigil.conf changed."""
        conf, ours = self.path / "postgresql.conf", self.path / facts.VIGIL_CONF
        if (included := facts.with_include(read(conf))) is not None:
            self.write(conf, included)
        text = facts.render_vigil_conf(self.spec, upstream)
        if changed := read(ours) != text:
            self.write(ours, text)
        signal_file = self.path / "standby.signal"
        if standby and not signal_file.exists():
            self.write(signal_file, "")
        elif not standby:
            signal_file.unlink(missing_ok=True)
        return changed

    def write(self, path: Path, text: str) -> None:
        """Replace `path` by `text` atomically: the server's user's, mode 0600."""
        tmp = path.with_name(f".{path.name}.vigil-tmp")
        with os_errors("write"):
            tmp.unlink(missing_ok=True)
            fd = open_owned(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, *self.ids())
            with os.fdopen(fd, "wb") as f:
                f.write(text.encode())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)

    def prepare_run(self, what: str) -> None:
        """Before pg_ctl start: the socket directory and the log file, the user's."""
        uid, gid = self.ids()
        sockets = self.spec.socket_dir
        with os_errors(what):
            if not sockets.is_dir():
                sockets.mkdir(mode=0o755)
                os.chown(sockets, uid, gid)
            os.close(open_owned(self.spec.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                                0o640, uid, gid))


@contextlib.contextmanager
def os_errors(what: str) -> Iterator[None]:
    try:
        yield
    except OSError as e:
        raise AgentError(f"postgresql {what}: {e.filename}: {e.strerror or e}") from None


def open_owned(path: Path, flags: int, mode: int, uid: int, gid: int) -> int:
    """Open without following a symlink (the directory may be the server user's), and
    give the file to that user."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.fchown(fd, uid, gid)
    except OSError:
        os.close(fd)
        raise
    return fd


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def log_tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 2048))
            return facts.tail(f.read().decode(errors="replace"))
    except OSError as e:
        return f"unreadable ({e.strerror})"


def postmaster_pid(data: Path) -> int | None:
    """The pid on postmaster.pid's first line (a single-user backend's is negative: its
    absolute value), or None: no file, or anything but a plausible pid there. The file is
    the server's: untrusted."""
    try:
        with open(data / "postmaster.pid", "rb") as f:
            first = f.readline(32).strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise AgentError(f"postgresql status: {data}/postmaster.pid: {e.strerror}") from None
    try:
        pid = abs(int(first))
    except ValueError:
        return None
    return pid if 1 < pid <= 1 << 22 else None  # (Linux's largest pid_max)


def postmaster_alive(data: Path) -> bool:
    """Whether a postmaster runs in `data`, as `pg_ctl status` decides (postmaster.pid
    names a live process; a negative pid is a single-user backend's), without running
    it: the keeper asks at every look, and a stop asks every few ms. The file is the
    server's: anything but a pid on its first line counts as none."""
    if (pid := postmaster_pid(data)) is None:
        return False
    try:
        os.kill(pid, 0)  # a zombie counts, as in PostgreSQL's own check of the lock file,
    except ProcessLookupError:  # which refuses to start until the process is reaped
        return False
    except PermissionError:
        return True  # it exists (asked unprivileged)
    return True


def server_processes(data: Path) -> list[int]:
    """The live processes working in `data` (PostgreSQL's all chdir there): after its
    postmaster died, its backends until they notice. A zombie has no working directory."""
    target = os.path.realpath(data)
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.readlink(f"/proc/{entry.name}/cwd") == target:
                    found.append(int(entry.name))
            except OSError:
                continue  # gone meanwhile, or a zombie
    return found
