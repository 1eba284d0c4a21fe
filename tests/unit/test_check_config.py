"""`vigil check-config` on the edges of a configuration (issue 12, part 5): what it says about
a configuration the daemon would refuse, or that only looks wrong, file by file."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from vigil.cli.main import cli
from vigil.errors import ConfigError

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
    return "".join(f'\n[[group]]\nname = "g{i}"\nhome = "n1"\n[[group.resource]]\n'
                   f'type = "exec"\nstart = ["/bin/true"]\nstop = ["/bin/true"]\n'
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
    assert "at most 1400 bytes" in r.stderr and "the first 25 groups fit (up to g25)" in \
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
