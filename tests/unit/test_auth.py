"""The cluster key file: what is refused (and the message says why), what is accepted."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from vigil.errors import KeyFileError, VigilError
from vigil.config.keys import MIN_KEY_BYTES, generate_key, load_key, write_key

KEY = b"0123456789abcdef0123456789abcdef"


def key_file(tmp_path: Path, mode: int, content: bytes = KEY) -> Path:
    p = tmp_path / "authkey"
    p.write_bytes(content)
    p.chmod(mode)
    return p


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606, 0o610, 0o601, 0o777])
def test_refuses_a_key_others_can_read(tmp_path: Path, mode: int) -> None:
    p = key_file(tmp_path, mode)
    with pytest.raises(KeyFileError) as e:
        load_key(p)
    msg = str(e.value)
    assert str(p) in msg
    assert f"mode {mode:04o}" in msg
    assert f"chmod 600 {p}" in msg


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_accepts_a_private_key(tmp_path: Path, mode: int) -> None:
    assert load_key(key_file(tmp_path, mode)) == KEY


def test_every_mode(tmp_path: Path) -> None:
    p = key_file(tmp_path, 0o600)
    for mode in range(0o1000):
        p.chmod(mode)
        if mode & 0o077:
            with pytest.raises(KeyFileError, match=f"mode {mode:04o}"):
                load_key(p)
        elif os.access(p, os.R_OK):
            assert load_key(p) == KEY, oct(mode)
        else:  # not readable by us at all (only when not root)
            with pytest.raises(KeyFileError, match=str(p)):
                load_key(p)
    p.chmod(0o600)


def test_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "nope"
    with pytest.raises(KeyFileError) as e:
        load_key(p)
    assert str(e.value) == f"key file {p} does not exist (create one with `vigil keygen {p}`)"


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        load_key(tmp_path / "no" / "such" / "key")


def test_directory(tmp_path: Path) -> None:
    d = tmp_path / "keydir"
    d.mkdir(mode=0o700)
    with pytest.raises(KeyFileError) as e:
        load_key(d)
    assert str(e.value) == f"key file {d} is a directory, not a regular file"


def test_parent_is_a_file(tmp_path: Path) -> None:
    p = key_file(tmp_path, 0o600)
    with pytest.raises(KeyFileError, match=str(p / "x")):
        load_key(p / "x")


def test_symlink_is_judged_by_its_target(tmp_path: Path) -> None:
    target = key_file(tmp_path, 0o644)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(KeyFileError, match="mode 0644"):
        load_key(link)
    target.chmod(0o600)
    assert load_key(link) == KEY


@pytest.mark.parametrize("content,length", [
    (b"", 0),
    (b"x" * (MIN_KEY_BYTES - 1), MIN_KEY_BYTES - 1),
    (b"  \n" + b"x" * (MIN_KEY_BYTES - 1) + b" \t\n\n", MIN_KEY_BYTES - 1),  # padding not counted
    (b"\n\n\n" * 10, 0),
])
def test_too_short(tmp_path: Path, content: bytes, length: int) -> None:
    p = key_file(tmp_path, 0o600, content)
    with pytest.raises(KeyFileError) as e:
        load_key(p)
    assert str(e.value) == (f"key file {p} holds {length} bytes; "
                            f"at least {MIN_KEY_BYTES} are required")


def test_shortest_key_and_surrounding_whitespace(tmp_path: Path) -> None:
    assert load_key(key_file(tmp_path, 0o600, b"k" * MIN_KEY_BYTES)) == b"k" * MIN_KEY_BYTES
    raw = b"\x00\x01 inner space \xff\xfe"  # any bytes; only the ends are trimmed
    assert load_key(key_file(tmp_path, 0o600, b" \n" + raw + b"\r\n")) == raw


@pytest.mark.usefixtures("umask")
def test_write_key_creates_mode_0600(tmp_path: Path) -> None:
    p = tmp_path / "authkey"
    write_key(p, b"secret\n")
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert p.read_bytes() == b"secret\n"


def test_write_key_mode_does_not_depend_on_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_key(tmp_path / "k", KEY)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_write_key_never_overwrites(tmp_path: Path) -> None:
    p = tmp_path / "authkey"
    p.write_bytes(b"old")
    with pytest.raises(KeyFileError) as e:
        write_key(p, b"new")
    assert str(e.value) == f"key file {p} already exists; not overwriting it"
    assert p.read_bytes() == b"old"


def test_write_key_refuses_a_dangling_symlink(tmp_path: Path) -> None:
    # O_EXCL: a planted symlink is not followed to create a file elsewhere.
    link = tmp_path / "authkey"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(KeyFileError, match="already exists"):
        write_key(link, KEY)
    assert not (tmp_path / "elsewhere").exists()


def test_write_key_into_a_missing_directory(tmp_path: Path) -> None:
    p = tmp_path / "no" / "authkey"
    with pytest.raises(KeyFileError) as e:
        write_key(p, KEY)
    assert str(e.value) == f"cannot create key file {p}: No such file or directory"


@pytest.mark.usefixtures("umask")
def test_generated_key_round_trips(tmp_path: Path) -> None:
    content = generate_key(bytes(range(32)))
    assert content == bytes(range(32)).hex().encode() + b"\n"
    p = tmp_path / "authkey"
    write_key(p, content)
    assert load_key(p) == bytes(range(32)).hex().encode()


def test_error_is_a_usage_error() -> None:
    assert issubclass(KeyFileError, VigilError)
    assert KeyFileError.exit_code == 2
