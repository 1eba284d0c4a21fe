"""Notify hooks with real programs: once per event, in order, never waited for, killed at
their timeout; the directory read like run-parts."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import time
from pathlib import Path

import pytest

from vigil.daemon.bus import Bus
from vigil.daemon.hooks import Hooks, programs
from vigil.events import Change
from vigil.model import Notify

RECORD = """#!/bin/sh
printf '%s|%s|%s|%s|%s|%s\\n' "$VIGIL_SEQ" "$VIGIL_EVENT" "$VIGIL_SUBJECT" "$VIGIL_GROUP" \\
    "$VIGIL_PEER" "$(cat)" >> {out}
"""


def script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_each_event_reaches_each_program_once_in_order(tmp_path: Path) -> None:
    out = tmp_path / "calls"
    rec = script(tmp_path / "rec", RECORD.format(out=out))

    async def main() -> float:
        bus = Bus("n1")
        hooks = Hooks(Notify(programs=(rec,), timeout=5.0), "lab")
        bus.listeners.append(hooks.submit)
        worker = asyncio.create_task(hooks.run())
        t0 = time.monotonic()
        bus.publish([Change("node_dead", "n2"), Change("group_starting", "web", "x"),
                     Change("group_started", "web", "starting -> running")])
        publish_took = time.monotonic() - t0
        end = time.monotonic() + 10
        while hooks.calls < 3 or (not out.exists() or out.read_text().count("\n") < 3):
            assert time.monotonic() < end
            await asyncio.sleep(0.01)
        worker.cancel()
        return publish_took

    took = asyncio.run(main())
    assert took < 0.01, "publishing never waits for a hook"
    lines = [line.split("|", 5) for line in out.read_text().splitlines()]
    assert [(s, k, subj, g, peer) for s, k, subj, g, peer, _ in lines] == [
        ("1", "node_dead", "n2", "", "n2"), ("2", "group_starting", "web", "web", ""),
        ("3", "group_started", "web", "web", "")]
    js = json.loads(lines[2][5])
    assert js["cluster"] == "lab" and js["node"] == "n1" and js["seq"] == 3
    assert js["detail"] == "starting -> running" and js["kind"] == "group_started"


def test_a_hung_hook_is_killed_at_its_timeout_and_the_next_one_runs(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "calls"
    hang = script(tmp_path / "hang", "#!/bin/sh\nexec sleep 611\n")
    fail = script(tmp_path / "fail", "#!/bin/sh\necho 'no mail server' >&2\nexit 3\n")
    rec = script(tmp_path / "rec", RECORD.format(out=out))

    async def main() -> float:
        bus = Bus("n1")
        hooks = Hooks(Notify(programs=(hang, fail, rec), timeout=0.5), "lab")
        bus.listeners.append(hooks.submit)
        worker = asyncio.create_task(hooks.run())
        t0 = time.monotonic()
        bus.publish([Change("node_up", "n2")])
        end = time.monotonic() + 10
        while not out.exists():
            assert time.monotonic() < end
            await asyncio.sleep(0.01)
        worker.cancel()
        assert (hooks.calls, hooks.failures) == (3, 2)
        return time.monotonic() - t0

    with caplog.at_level(logging.INFO, logger="vigil"):
        took = asyncio.run(main())
    assert 0.5 <= took < 3
    text = caplog.text
    assert f"notify hook {hang} on event 1 (node_up n2) timed out after 0.5 s: killed" in text
    assert f"notify hook {fail} on event 1 (node_up n2) failed: rc=3: no mail server" in text
    assert subprocess.run(["pgrep", "-fx", "sleep 611"]).returncode == 1, \
        "the hung hook's process was killed"


def test_the_directory_is_read_like_run_parts(tmp_path: Path) -> None:
    d = tmp_path / "notify.d"
    d.mkdir()
    b = script(d / "20-dns", "#!/bin/sh\n")
    a = script(d / "10-mail", "#!/bin/sh\n")
    script(d / ".hidden", "#!/bin/sh\n")
    script(d / "30-old~", "#!/bin/sh\n")
    script(d / "40-x.dpkg-old", "#!/bin/sh\n")
    (d / "50-notes.txt").write_text("not executable\n")
    (d / "60-subdir").mkdir()
    first = tmp_path / "first"
    assert programs(Notify(programs=(first,), directory=d)) == [first, a, b]
    c = script(d / "15-new", "#!/bin/sh\n")
    assert programs(Notify(directory=d)) == [a, c, b], "read afresh at each event"
    assert programs(Notify(directory=tmp_path / "missing")) == []
