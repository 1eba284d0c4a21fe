"""`vigil torture` passes its options to the torture (vigil/lab/torture.py), --faults too,
and a bad fault kind is named before anything is built."""

from __future__ import annotations

import signal

from click.testing import CliRunner

from vigil.cli.main import cli


def test_an_unknown_fault_kind_is_named_and_nothing_runs() -> None:
    before = signal.getsignal(signal.SIGTERM)
    try:
        r = CliRunner().invoke(cli, ["torture", "--faults", "kill9,meteor", "--duration", "1s"])
    finally:
        signal.signal(signal.SIGTERM, before)  # the torture's own handler is not ours
    assert r.exit_code == 2, r.output
    assert "--faults: unknown meteor; known: kill9" in r.output
