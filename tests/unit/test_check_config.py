"""`vigil check-config` on the edges of a configuration (issue 12, part 5): what it says about
a configuration the daemon would refuse, or that only looks wrong, file by file."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from vigil.cli.main import cli
from vigil.errors import ConfigError, VigilError

NODES = """\
[[node]]
name = "n1"
address = "10.0.0.1"

[[node]]
name = "n2"
address = "10.0.0.2"
"""


def key(tmp_path: Path) -> Path:
    k = tmp_path / "authkey"
    k.write_text("0123456789abcdef0123456789abcdef\n")
    k.chmod(0o600)
    return k


def config(tmp_path: Path, extra: str = "", name: str = "web") -> Path:
    c = tmp_path / "vigil.toml"
    c.write_text(f'[cluster]\nname = "{name}"\nkey_file = "{key(tmp_path)}"\n\n{NODES}{extra}')
    return c


def check(path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["check-config", "--config", str(path), *args])


def groups(n: int) -> str:
    """n groups, written compactly: 10,000 of them stay within the 1 MiB a file may have."""
    return "".join(f'[[group]]\nname="g{i}"\nhome="n1"\n'
                   f'resource=[{{type="exec",start=["/bin/true"],stop=["/bin/true"]}}]\n'
                   for i in range(1, n + 1))


def test_a_good_configuration_passes(tmp_path: Path) -> None:
    r = check(config(tmp_path, groups(2)))
    assert r.exit_code == 0 and "OK: cluster web" in r.stdout, r.stderr


# --- 5.3: what does not fit in a frame -------------------------------------------------------


def test_ten_thousand_groups_are_refused_with_the_frame_limit(tmp_path: Path) -> None:
    path = config(tmp_path, groups(10_000))
    r = check(path)
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith(f"error: {path}: group: 10000 groups make a heartbeat of "), \
        r.stderr
    assert "at most 1400 bytes" in r.stderr and "the first 24 groups fit (up to g24)" in \
        r.stderr and "format requires" not in r.stderr, r.stderr


def test_a_long_cluster_name_is_refused_at_its_line(tmp_path: Path) -> None:
    path = config(tmp_path, groups(1), name="c" * 300)
    r = check(path)
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith(f"error: {path}:2: cluster.name: "), r.stderr
    assert "300 bytes long" in r.stderr and "at most 64 bytes" in r.stderr, r.stderr
    assert "groups" not in r.stderr, r.stderr


def test_the_daemon_refuses_what_does_not_fit_the_same_way(tmp_path: Path) -> None:
    from vigil.config.toml import load
    from vigil.daemon.main import check as daemon_check
    path = config(tmp_path, groups(10_000))
    with pytest.raises(ConfigError) as e:
        daemon_check(load(path), "n1")
    assert f"error: {e.value}\n" == check(path).stderr


# --- 5.1: the API token file is checked as the daemon checks it --------------------------------


def api(token: Path) -> str:
    return f'\n[api]\nlisten = "127.0.0.1:9700"\ntoken_file = "{token}"\n'


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def sparse(path: Path, size: int, mode: int = 0o600) -> Path:
    """A file of `size` bytes that takes no room on disk (reading it would take its size)."""
    with open(path, "wb") as f:
        f.truncate(size)
    path.chmod(mode)
    return path


def token(tmp_path: Path, what: str) -> tuple[Path, str]:
    """A token file that is wrong in the way `what` says, and the words that must name it."""
    t = tmp_path / "api.token"
    if what == "loose":
        t.write_text("s3cr3t-token\n")
        t.chmod(0o644)
        return t, "has mode 0644; it must be 0600 (chmod 600"
    if what == "directory":
        t.mkdir(mode=0o700)
        return t, "is a directory, not a regular file"
    if what == "fifo":
        return fifo(t), "is a FIFO, not a regular file"
    if what == "missing":
        return t, ": cannot read: No such file or directory"
    if what == "empty":
        t.write_text(" \n")
        t.chmod(0o600)
        return t, "is empty"
    assert what == "huge"
    return sparse(t, 64 << 20), "is 67108864 bytes (64 MiB); a token file has at most 4096 bytes"


@pytest.mark.parametrize("what", ["loose", "directory", "fifo", "missing", "empty", "huge"])
def test_a_token_file_the_daemon_refuses_is_refused(tmp_path: Path, what: str) -> None:
    from vigil.daemon.api.server import check_token_file as daemon_check
    t, words = token(tmp_path, what)
    r = check(config(tmp_path, groups(1) + api(t)))
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith(f"vigil: [api] token_file {t}") and words in r.stderr, r.stderr
    with pytest.raises(VigilError) as e:
        daemon_check(t)
    assert r.stderr == f"vigil: {e.value}\n"  # word for word what the daemon says


def test_a_good_token_file_passes(tmp_path: Path) -> None:
    t = tmp_path / "api.token"
    t.write_text("s3cr3t-token\n")
    t.chmod(0o600)
    r = check(config(tmp_path, groups(1) + api(t)))
    assert r.exit_code == 0, r.stderr


# --- 5.2: every file has a size limit, checked before it is read -------------------------------


def test_a_huge_key_file_is_refused_by_its_size(tmp_path: Path) -> None:
    path = config(tmp_path, groups(1))
    k = sparse(tmp_path / "authkey", 64 << 20)  # replaces the good key
    r = check(path)
    assert r.exit_code == 2, r.output
    assert r.stderr == (f"vigil: key file {k} is 67108864 bytes (64 MiB); a key file has at "
                        f"most 4096 bytes (4 KiB): is it the right file?\n"), r.stderr


def test_a_huge_configuration_file_is_refused_by_its_size(tmp_path: Path) -> None:
    path = sparse(tmp_path / "vigil.toml", 2 << 20, 0o644)
    r = check(path)
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith(f"error: {path}: <file>: is 2097152 bytes (2 MiB); a "
                               f"configuration file has at most 1048576 bytes (1 MiB)"), r.stderr


KEEPALIVED = """vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress { 192.168.8.100/24 }
}
"""
HACF = "keepalive 1\ndeadtime 10\nudpport 694\nbcast eth0\nauto_failback on\nnode n1\nnode n2\n"


def hadir(tmp_path: Path, bom: bytes = b"") -> Path:
    d = tmp_path / "ha.d"
    d.mkdir()
    (d / "ha.cf").write_bytes(bom + HACF.encode())
    (d / "haresources").write_bytes(bom + b"n1 IPaddr::192.168.60.200/24/eth0\n")
    (d / "authkeys").write_bytes(bom + b"auth 1\n1 sha1 s3cr3t-but-long-enough\n")
    (d / "authkeys").chmod(0o600)
    return d


@pytest.mark.parametrize("name,size,limit", [("ha.cf", 2 << 20, "1048576 bytes (1 MiB)"),
                                             ("haresources", 2 << 20, "1048576 bytes (1 MiB)"),
                                             ("authkeys", 8192, "4096 bytes (4 KiB)")])
def test_huge_heartbeat_files_are_refused_by_their_size(tmp_path: Path, name: str, size: int,
                                                        limit: str) -> None:
    d = hadir(tmp_path)
    (d / name).unlink()
    sparse(d / name, size)
    r = CliRunner().invoke(cli, ["check-config", "--heartbeat-dir", str(d)])
    assert r.exit_code == 2, r.output
    assert f"error: {d / name}: <file>: is {size} bytes" in r.stderr, r.stderr
    assert f"at most {limit}" in r.stderr, r.stderr


def test_a_huge_keepalived_conf_is_refused_by_its_size(tmp_path: Path) -> None:
    conf = sparse(tmp_path / "keepalived.conf", 2 << 20, 0o644)
    r = CliRunner().invoke(cli, ["import", "keepalived", str(conf)])
    assert r.exit_code == 2, r.output
    assert f"error: {conf}: <file>: is 2097152 bytes (2 MiB)" in r.stderr, r.stderr


def test_a_file_whose_size_says_nothing_is_read_no_further_than_its_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """/proc files say they are 0 bytes long: the limit holds for what is read, too."""
    from vigil.config import files
    maps = Path("/proc/self/maps")
    assert os.stat(maps).st_size == 0 and len(maps.read_bytes()) > 4096
    read: list[int] = []
    real_read = os.read

    def counted(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        read.append(len(data))
        return data

    monkeypatch.setattr(os, "read", counted)
    with pytest.raises(files.FileRefused) as e:
        files.read_file(maps, 4096, "a key file")
    assert e.value.reason == "holds more than 4096 bytes; a key file has at most 4096 bytes " \
                             "(4 KiB): is it the right file?"
    assert sum(read) == 4097, read


# --- files that would block: refused without being opened --------------------------------------


class Writer(threading.Thread):
    """Opens the FIFO's other end as soon as someone reads it (a read then sees end of file at
    once rather than waiting for ever), for 1 s; says whether anyone did."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.reader_came = path, False

    def run(self) -> None:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # ENXIO: nobody has it open for reading
                time.sleep(0.01)
                continue
            self.reader_came = True
            return


def test_a_fifo_as_the_configuration_is_refused_unopened(tmp_path: Path) -> None:
    path = fifo(tmp_path / "vigil.toml")
    w = Writer(path)
    w.start()
    r = check(path)
    w.join()
    assert not w.reader_came
    assert r.exit_code == 2, r.output
    assert r.stderr == f"error: {path}: <file>: is a FIFO, not a regular file\n", r.stderr


def test_a_fifo_as_keepalived_conf_is_refused_unopened(tmp_path: Path) -> None:
    path = fifo(tmp_path / "keepalived.conf")
    w = Writer(path)
    w.start()
    r = CliRunner().invoke(cli, ["import", "keepalived", str(path)])
    w.join()
    assert not w.reader_came
    assert r.exit_code == 2, r.output
    assert r.stderr == f"error: {path}: <file>: is a FIFO, not a regular file\n", r.stderr


# --- 5.4: a byte-order mark (Windows editors write one) is no syntax error ---------------------


def test_a_configuration_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = config(tmp_path, groups(1))
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    r = check(path)
    assert r.exit_code == 0, r.stderr


def test_heartbeat_files_with_a_byte_order_mark_are_read(tmp_path: Path) -> None:
    d = hadir(tmp_path, bom=b"\xef\xbb\xbf")
    r = CliRunner().invoke(cli, ["check-config", "--heartbeat-dir", str(d)])
    assert r.exit_code == 0, r.stderr
    assert "OK: cluster" in r.stdout


def test_keepalived_conf_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_bytes(b"\xef\xbb\xbf" + KEEPALIVED.encode())
    r = CliRunner().invoke(cli, ["import", "keepalived", str(conf)])
    assert r.exit_code == 0, r.stderr
    assert "192.168.8.100/24" in r.stdout


def test_a_byte_order_mark_is_kept_in_a_binary_key_file(tmp_path: Path) -> None:
    """The cluster key is any bytes: nothing is taken out of it."""
    from vigil.config.keys import load_key
    k = tmp_path / "raw.key"
    k.write_bytes(b"\xef\xbb\xbf" + b"k" * 16)
    k.chmod(0o600)
    assert load_key(k) == b"\xef\xbb\xbf" + b"k" * 16


def test_virtual_servers_are_checked_and_counted(tmp_path: Path) -> None:
    vs = ('[[virtual_server]]\nname = "web"\naddress = "10.0.0.200:80"\ngroup = "g1"\n'
          '[[virtual_server.real]]\naddress = "10.0.1.1:80"\n')
    r = check(config(tmp_path, groups(1) + vs))
    assert r.exit_code == 0 and "1 group(s), 1 virtual server(s)" in r.stdout, r.stdout
    r = check(config(tmp_path, groups(1) + vs.replace("10.0.1.1:80", "10.0.1.1:0")))
    assert r.exit_code != 0 and "virtual_server[0].real[0].address" in r.stderr
