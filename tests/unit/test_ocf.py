"""OCF agents: exit-code table, meta-data parsing, environment, timeouts, and a fake agent
(a shell script under a temporary OCF root) driven through every action."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from vigil.cli.agent_cmd import agent as agent_group
from vigil.errors import AgentError
from vigil.model import Monitor, OcfResource
from vigil.resources import ocf
from vigil.resources.ocf import (
    DEFAULT_TIMEOUT,
    EXIT_CODES,
    OcfAgent,
    OcfError,
    describe_rc,
    exit_reason,
)
from vigil.resources.ocf_meta import (
    AgentInfo,
    UnknownAgent,
    agent_info,
    list_agents,
    parse_duration,
    parse_meta_data,
    render_info,
    split_name,
)

META = """<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="fake" version="2.3">
<version>1.1</version>
<longdesc lang="de">Auf Deutsch.</longdesc>
<longdesc lang="en">
    A fake agent.
    It records its calls.
</longdesc>
<shortdesc lang="en">Fake agent</shortdesc>
<parameters>
<parameter name="record" required="1" unique="1">
<longdesc lang="en">Where to record.</longdesc>
<shortdesc lang="en">Record directory</shortdesc>
<content type="string" />
</parameter>
<parameter name="count">
<shortdesc lang="en">How many</shortdesc>
<content type="integer" default="5" />
</parameter>
<parameter name="bare" />
</parameters>
<actions>
<action name="start"        timeout="30s" />
<action name="stop"         timeout="2m" />
<action name="monitor"      timeout="45" interval="10s" depth="10" />
<action name="monitor"      timeout="15s" interval="20s" depth="0" />
<action name="monitor"      timeout="99s" interval="11s" role="Promoted" />
<action name="meta-data"    timeout="5s" />
<action name="validate-all" timeout="1500ms" />
<action name="reload"       timeout="soon" />
</actions>
</resource-agent>
"""

# Records argv and environment per action under "$0.d/", prints/echoes what that directory
# says, and exits with rc.<action> (0 when absent). hang.<action> makes it wait on a child.
FAKE = """#!/bin/sh
rec="$0.d"
action="$1"
echo "$*" >> "$rec/calls"
env > "$rec/env.$action"
[ -f "$rec/stderr.$action" ] && cat "$rec/stderr.$action" >&2
[ -f "$rec/stdout.$action" ] && cat "$rec/stdout.$action"
if [ -f "$rec/hang.$action" ]; then
    sleep 1000 &
    echo $! > "$rec/child"
    echo $$ > "$rec/pid"
    wait
fi
rc=0
[ -f "$rec/rc.$action" ] && rc=$(cat "$rec/rc.$action")
exit $rc
"""


DEFAULT_MONITOR = Monitor()


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    ocf.clear_meta_data_cache()
    yield
    ocf.clear_meta_data_cache()


class Fake:
    """A fake agent "test:fake" under a temporary OCF root."""

    def __init__(self, root: Path, meta: str = META) -> None:
        self.root = root
        self.path = root / "resource.d" / "test" / "fake"
        self.rec = Path(f"{self.path}.d")
        self.rec.mkdir(parents=True)
        self.path.write_text(FAKE)
        self.path.chmod(0o755)
        self.set("stdout", "meta-data", meta)

    def set(self, what: str, action: str, value: str | int) -> None:
        (self.rec / f"{what}.{action}").write_text(f"{value}\n" if isinstance(value, int)
                                                   else value)

    def rc(self, action: str, rc: int) -> None:
        self.set("rc", action, rc)

    def calls(self) -> list[str]:
        f = self.rec / "calls"
        return f.read_text().splitlines() if f.exists() else []

    def env(self, action: str) -> dict[str, str]:
        lines = (self.rec / f"env.{action}").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines)

    def agent(self, timeout: float | None = None, monitor: Monitor | None = DEFAULT_MONITOR,
              params: tuple[tuple[str, str], ...] = (("record", "x"),)) -> OcfAgent:
        r = OcfResource(agent="test:fake", id="fake1", params=params, timeout=timeout,
                        monitor=monitor)
        return OcfAgent(r, ocf_root=self.root)


@pytest.fixture
def fake(tmp_path: Path) -> Fake:
    return Fake(tmp_path / "ocf")


# ---- exit codes -----------------------------------------------------------------------------


def test_exit_code_table() -> None:
    kinds = {code: c.kind for code, c in EXIT_CODES.items()}
    assert kinds == {
        0: "ok", 1: "soft", 2: "hard", 3: "hard", 4: "hard", 5: "hard", 6: "fatal",
        7: "not_running", 8: "soft", 9: "soft", 190: "ok", 191: "soft",
    }
    assert EXIT_CODES[5].name == "OCF_ERR_INSTALLED"
    assert EXIT_CODES[190].name == "OCF_DEGRADED"
    assert all(c.code == code and c.meaning for code, c in EXIT_CODES.items())


def test_unknown_and_signal_codes_are_soft() -> None:
    assert (describe_rc(99).name, describe_rc(99).kind) == ("UNKNOWN", "soft")
    killed = describe_rc(-9)
    assert (killed.name, killed.kind, killed.meaning) == ("KILLED", "soft", "killed by SIGKILL")


def test_exit_reason_prefers_the_prefixed_line() -> None:
    assert exit_reason("a\nocf-exit-reason:disk gone\nDEBUG: later\n") == "disk gone"
    assert exit_reason("one\ntwo\n\n  \n") == "two"
    assert exit_reason("") == ""


# ---- meta-data ------------------------------------------------------------------------------


def test_parse_meta_data() -> None:
    info = parse_meta_data(META, "test:fake")
    assert (info.name, info.version, info.ocf_version) == ("test:fake", "2.3", "1.1")
    assert info.shortdesc == "Fake agent"
    assert info.longdesc == "A fake agent.\nIt records its calls."  # English, dedented
    record, count, bare = info.parameters
    assert (record.name, record.required, record.unique, record.type, record.default,
            record.shortdesc) == ("record", True, True, "string", None, "Record directory")
    assert (count.type, count.default, count.required) == ("integer", "5", False)
    assert (bare.type, bare.default, bare.shortdesc) == ("string", None, "")
    assert info.timeout_for("start") == 30
    assert info.timeout_for("stop") == 120
    assert info.timeout_for("monitor") == 15  # the depth-0 entry, not depth 10 or Promoted
    monitor = info.action("monitor")
    assert monitor is not None and (monitor.interval, monitor.depth) == (20, 0)
    assert info.timeout_for("validate-all") == 1.5
    assert info.timeout_for("reload") is None  # unparsable
    assert info.timeout_for("promote") is None  # not advertised
    assert info.advertises("validate-all") and not info.advertises("promote")


@pytest.mark.parametrize("text, seconds", [
    ("20s", 20.0), ("20", 20.0), (" 20 s ", 20.0), ("100ms", 0.1), ("2m", 120.0),
    ("1min", 60.0), ("1h", 3600.0), ("90sec", 90.0), ("1.5s", 1.5), ("1S", 1.0),
    ("soon", None), ("", None), ("-1s", None), (None, None),
])
def test_parse_duration(text: str | None, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text, problem", [
    ("not xml at all", "not XML"),
    ("", "not XML"),
    ("<html><body/></html>", "expected <resource-agent>"),
    ("<resource-agent><parameters><parameter/></parameters></resource-agent>", "without a name"),
    ("<resource-agent><actions><action timeout='1s'/></actions></resource-agent>",
     "without a name"),
])
def test_unparsable_meta_data(text: str, problem: str) -> None:
    with pytest.raises(AgentError, match=problem) as e:
        parse_meta_data(text, "test:broken")
    assert "ocf:test:broken" in str(e.value)


def test_minimal_meta_data() -> None:
    info = parse_meta_data("<resource-agent name='m'/>", "x:m")
    assert info == AgentInfo("x:m", "", "", "", "", (), ())
    assert "(none)" in render_info(info)


def test_render_info() -> None:
    text = render_info(parse_meta_data(META, "test:fake"))
    assert text.startswith("ocf:test:fake (version 2.3)\n  Fake agent\n")
    assert "  record (string, required, unique) Record directory" in text
    assert "  count  (integer, default 5) How many" in text
    assert "  monitor timeout=15s interval=20s depth=0" in text
    assert "  monitor timeout=99s interval=11s role=Promoted" in text


@pytest.mark.parametrize("name, parts", [
    ("heartbeat:IPaddr2", ("heartbeat", "IPaddr2")),
    ("ocf:heartbeat:IPaddr2", ("heartbeat", "IPaddr2")),
    ("my-corp:app_1.2", ("my-corp", "app_1.2")),
])
def test_split_name(name: str, parts: tuple[str, str]) -> None:
    assert split_name(name) == parts


@pytest.mark.parametrize("name", [
    "IPaddr2", "lsb:heartbeat:IPaddr2", "a:b:c:d", "heartbeat:", ":x", "..:x", "heartbeat:..",
    "heartbeat:a/b", "heart beat:x", "",
])
def test_bad_names(name: str) -> None:
    with pytest.raises(UnknownAgent) as e:
        split_name(name)
    assert e.value.exit_code == 2


def test_list_agents(fake: Fake) -> None:
    d = fake.root / "resource.d"
    (d / "test" / "plain").write_text("not executable")
    (d / "test" / ".hidden").write_text("#!/bin/sh\n")
    (d / "test" / ".hidden").chmod(0o755)
    (d / "other").mkdir()
    (d / "other" / "zz").write_text("#!/bin/sh\n")
    (d / "other" / "zz").chmod(0o755)
    (d / "stray-file").write_text("")
    assert list_agents(fake.root) == ["other:zz", "test:fake"]
    assert list_agents(fake.root / "nowhere") == []


def test_agent_info_runs_meta_data(fake: Fake) -> None:
    info = agent_info(fake.root, "ocf:test:fake")
    assert info.name == "test:fake" and info.timeout_for("start") == 30
    env = fake.env("meta-data")
    assert env["OCF_RESOURCE_INSTANCE"] == "RESOURCE_ID"
    assert env["OCF_ROOT"] == str(fake.root)


def test_agent_info_errors(fake: Fake) -> None:
    with pytest.raises(UnknownAgent, match=r"unknown OCF agent ocf:test:nope \(no file"):
        agent_info(fake.root, "test:nope")
    fake.rc("meta-data", 1)
    fake.set("stderr", "meta-data", "it broke\n")
    with pytest.raises(AgentError, match=r"meta-data failed \(rc=1\): it broke") as e:
        agent_info(fake.root, "test:fake")
    assert not isinstance(e.value, UnknownAgent)
    fake.rc("meta-data", 0)
    fake.set("stdout", "meta-data", "usage: fake start|stop\n")
    with pytest.raises(AgentError, match="not XML"):
        agent_info(fake.root, "test:fake")


def test_cli_default_root_is_the_agents_default() -> None:
    from vigil.cli import agent_cmd
    from vigil.resources import ocf_meta
    assert agent_cmd.DEFAULT_OCF_ROOT == ocf_meta.DEFAULT_OCF_ROOT


def test_cli(fake: Fake) -> None:
    run = CliRunner().invoke
    root = ["--ocf-root", str(fake.root)]
    r = run(agent_group, ["list", *root])
    assert (r.exit_code, r.output) == (0, "test:fake\n")
    r = run(agent_group, ["list", "--json", *root])
    assert json.loads(r.output) == ["test:fake"]
    r = run(agent_group, ["info", "ocf:test:fake", *root])
    assert r.exit_code == 0 and r.output.startswith("ocf:test:fake (version 2.3)")
    r = run(agent_group, ["info", "test:fake", "--json", *root])
    data = json.loads(r.output)
    assert data["name"] == "test:fake" and data["parameters"][0]["name"] == "record"
    assert data["actions"][0] == {"name": "start", "timeout": 30.0, "interval": None,
                                  "depth": None, "role": None}
    r = run(agent_group, ["info", "test:nope", *root])
    assert r.exit_code == 2 and "vigil: unknown OCF agent ocf:test:nope" in r.output
    r = run(agent_group, ["info", "nope", *root])
    assert r.exit_code == 2 and "bad OCF agent name" in r.output


# ---- environment and timeouts ---------------------------------------------------------------


def test_env(fake: Fake) -> None:
    a = fake.agent(params=(("record", "x"), ("ip", "10.0.0.1")))
    env = a.env("start")
    assert env == {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "OCF_ROOT": str(fake.root),
        "OCF_FUNCTIONS_DIR": str(fake.root / "lib" / "heartbeat"),
        "OCF_RA_VERSION_MAJOR": "1",
        "OCF_RA_VERSION_MINOR": "1",
        "OCF_RESOURCE_INSTANCE": "fake1",
        "OCF_RESOURCE_TYPE": "fake",
        "OCF_RESOURCE_PROVIDER": "test",
        "OCF_EXIT_REASON_PREFIX": "ocf-exit-reason:",
        "OCF_RESKEY_record": "x",
        "OCF_RESKEY_ip": "10.0.0.1",
        "OCF_RESKEY_CRM_meta_timeout": "30000",
        "OCF_RESKEY_CRM_meta_interval": "0",
    }
    assert a.env("probe")["OCF_RESKEY_CRM_meta_timeout"] == "15000"
    assert a.env("monitor", 10000)["OCF_RESKEY_CRM_meta_interval"] == "10000"


@pytest.mark.parametrize("key, value", [("bad-name", "1"), ("a=b", "1"), ("", "1"),
                                        ("1x", "1"), ("ok", "nul\0")])
def test_bad_params_are_fatal(fake: Fake, key: str, value: str) -> None:
    a = fake.agent(params=((key, value),))
    with pytest.raises(OcfError, match="bad parameter") as e:
        asyncio.run(a.start())
    assert (e.value.code, e.value.kind) == (6, "fatal")
    assert "start" not in fake.calls()


def test_timeout_for(fake: Fake) -> None:
    a = fake.agent()
    assert [a.timeout_for(x) for x in ("start", "stop", "monitor", "probe", "validate-all",
                                        "reload", "promote")] == \
        [30, 120, 15, 15, 1.5, DEFAULT_TIMEOUT, DEFAULT_TIMEOUT]
    assert a.timeout == 120
    assert fake.agent(timeout=7).timeout_for("stop") == 7
    fake.agent().timeout_for("start")
    assert fake.calls() == ["meta-data"]  # cached per agent path, across agents
    with pytest.raises(AttributeError):
        a.timeout = 3


def test_long_meta_data_through_the_async_path(fake: Fake) -> None:
    """Meta-data beyond the runner's 4 KiB output tail (IPaddr2's is ~15 KiB) still parses."""
    fake.set("stdout", "meta-data", META.replace("<parameters>",
                                                 f"<!-- {'x' * 20000} --><parameters>"))
    a = fake.agent()
    info = asyncio.run(a.load_meta_data())
    assert info is not None and info.timeout_for("stop") == 120
    asyncio.run(a.start())  # from the cache: validate-all advertised, so run
    assert fake.calls() == ["meta-data", "validate-all", "start"]


def test_hanging_meta_data_is_killed(fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    from vigil.resources import ocf_meta
    monkeypatch.setattr(ocf_meta, "META_DATA_TIMEOUT", 0.3)
    fake.set("hang", "meta-data", "")
    with pytest.raises(AgentError, match="meta-data did not finish within 0.3 s"):
        agent_info(fake.root, "test:fake")
    assert _gone(int((fake.rec / "pid").read_text()))
    assert fake.agent().timeout_for("start") == DEFAULT_TIMEOUT


def test_timeout_without_usable_meta_data(fake: Fake, caplog: pytest.LogCaptureFixture) -> None:
    fake.set("stdout", "meta-data", "garbage")
    a = fake.agent()
    with caplog.at_level(logging.WARNING, logger="vigil"):
        assert a.timeout_for("start") == DEFAULT_TIMEOUT
        assert a.timeout_for("stop") == DEFAULT_TIMEOUT
        asyncio.run(a.start())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no usable meta-data" in warnings[0]
    assert fake.calls() == ["meta-data", "start"]  # no validate-all without meta-data


def test_missing_agent(tmp_path: Path) -> None:
    r = OcfResource(agent="test:gone", id="g")
    a = OcfAgent(r, ocf_root=tmp_path)
    assert a.timeout_for("start") == DEFAULT_TIMEOUT
    for action in (a.start, a.stop, a.monitor):
        with pytest.raises(OcfError, match="OCF_ERR_INSTALLED") as e:
            asyncio.run(action())
        assert (e.value.code, e.value.kind) == (5, "hard")
        assert str(e.value).startswith("ocf:test:gone g: ")
    assert asyncio.run(a.probe()) is False  # as Pacemaker: not installed, not running


def test_agent_not_executable(fake: Fake) -> None:
    a = fake.agent(timeout=5)
    fake.path.chmod(0o644)
    with pytest.raises(OcfError, match="OCF_ERR_PERM") as e:
        asyncio.run(a.stop())
    assert (e.value.code, e.value.kind) == (4, "hard")


# ---- actions --------------------------------------------------------------------------------


def test_start_runs_validate_all_once(fake: Fake) -> None:
    a = fake.agent()
    asyncio.run(a.start())
    asyncio.run(a.start())
    assert fake.calls() == ["meta-data", "validate-all", "start", "start"]
    assert fake.env("validate-all")["OCF_RESKEY_CRM_meta_timeout"] == "1500"
    assert fake.env("start")["OCF_RESKEY_record"] == "x"


def test_validate_all_failure_stops_the_start(fake: Fake) -> None:
    a = fake.agent()
    fake.rc("validate-all", 6)
    fake.set("stderr", "validate-all", "ocf-exit-reason:record must be a directory\n")
    with pytest.raises(OcfError) as e:
        asyncio.run(a.start())
    assert (e.value.action, e.value.code, e.value.kind) == ("validate-all", 6, "fatal")
    assert e.value.reason == "record must be a directory"
    assert "start" not in fake.calls()
    fake.rc("validate-all", 3)  # advertised but unimplemented: passes
    asyncio.run(a.start())
    assert fake.calls()[-2:] == ["validate-all", "start"]


def test_no_validate_all_when_not_advertised(fake: Fake) -> None:
    fake.set("stdout", "meta-data", META.replace('name="validate-all"', 'name="other"'))
    asyncio.run(fake.agent().start())
    assert fake.calls() == ["meta-data", "start"]


@pytest.mark.parametrize("rc, kind", [(1, "soft"), (2, "hard"), (5, "hard"), (6, "fatal"),
                                      (7, "soft"), (190, "soft"), (99, "soft")])
def test_start_failures(fake: Fake, rc: int, kind: str) -> None:
    fake.rc("start", rc)
    fake.set("stderr", "start", "first\nlast words\n")
    a = fake.agent()
    with pytest.raises(OcfError) as e:
        asyncio.run(a.start())
    assert (e.value.action, e.value.code, e.value.kind) == ("start", rc, kind)
    c = describe_rc(rc)
    assert str(e.value) == (f"ocf:test:fake fake1: start failed: rc={rc} {c.name} "
                            f"({c.meaning}): last words")


@pytest.mark.parametrize("rc, result", [(0, None), (7, None), (1, "soft"), (2, "hard"),
                                        (5, "hard"), (6, "fatal"), (99, "soft")])
def test_stop(fake: Fake, rc: int, result: str | None) -> None:
    fake.rc("stop", rc)
    a = fake.agent()
    if result is None:
        asyncio.run(a.stop())
    else:
        with pytest.raises(OcfError) as e:
            asyncio.run(a.stop())
        assert (e.value.code, e.value.kind) == (rc, result)
    assert fake.calls()[-1] == "stop"  # no validate-all before a stop


@pytest.mark.parametrize("rc, result", [(0, True), (7, False), (190, True), (1, "soft"),
                                        (2, "hard"), (5, "hard"), (6, "fatal"), (8, "soft"),
                                        (99, "soft")])
def test_probe_and_monitor(fake: Fake, rc: int, result: bool | str) -> None:
    fake.rc("monitor", rc)
    a = fake.agent(monitor=Monitor(interval=2.5))
    for action, interval in (("probe", "0"), ("monitor", "2500")):
        call = a.probe if action == "probe" else a.monitor
        if action == "probe" and rc == 5:  # not installed: a probe says "not running"
            assert asyncio.run(call()) is False
        elif isinstance(result, bool):
            assert asyncio.run(call()) is result
        else:
            with pytest.raises(OcfError) as e:
                asyncio.run(call())
            assert (e.value.action, e.value.code, e.value.kind) == (action, rc, result)
            assert f": {action} failed: rc={rc} " in str(e.value)
        env = fake.env("monitor")
        assert env["OCF_RESKEY_CRM_meta_interval"] == interval
        assert env["OCF_RESKEY_CRM_meta_timeout"] == "15000"
    assert fake.calls()[-2:] == ["monitor", "monitor"]


def test_garbage_output_is_ignored(fake: Fake) -> None:
    for action in ("start", "monitor", "stop"):
        fake.set("stdout", action, "\x00\xff garbage \n<xml?>\n" * 100)
    a = fake.agent()
    asyncio.run(a.start())
    assert asyncio.run(a.monitor()) is True
    asyncio.run(a.stop())
    fake.rc("monitor", 99)
    with pytest.raises(OcfError, match=r"rc=99 UNKNOWN \(exit status 99 is not an OCF code\)"):
        asyncio.run(a.probe())


def test_monitor_without_monitor_config_is_a_probe(fake: Fake) -> None:
    assert asyncio.run(fake.agent(monitor=None).monitor()) is True
    assert fake.env("monitor")["OCF_RESKEY_CRM_meta_interval"] == "0"


def test_stderr_is_logged(fake: Fake, caplog: pytest.LogCaptureFixture) -> None:
    a = fake.agent(timeout=5)
    fake.set("stderr", "start", "INFO: starting\n\nocf-exit-reason:nope\n")
    fake.set("stderr", "monitor", "DEGRADED: half\n")
    with caplog.at_level(logging.DEBUG, logger="vigil"):
        asyncio.run(a.start())
        assert asyncio.run(a.probe()) is True
        fake.rc("monitor", 190)
        assert asyncio.run(a.monitor()) is True
        fake.rc("monitor", 7)
        assert asyncio.run(a.probe()) is False
        assert asyncio.run(a.monitor()) is False
        fake.rc("start", 1)
        with pytest.raises(OcfError, match="nope$"):
            asyncio.run(a.start())
    lines = [(r.levelname, r.getMessage()) for r in caplog.records
             if r.name == "vigil.resources.ocf"]
    me = "ocf:test:fake fake1"
    assert lines == [
        ("INFO", f"{me}: INFO: starting"), ("INFO", f"{me}: ocf-exit-reason:nope"),  # start
        ("DEBUG", f"{me}: DEGRADED: half"),      # probe, 0
        ("WARNING", f"{me}: DEGRADED: half"),    # monitor, 190
        ("DEBUG", f"{me}: DEGRADED: half"),      # probe, 7: expected
        ("WARNING", f"{me}: DEGRADED: half"),    # monitor, 7: it died
        ("WARNING", f"{me}: INFO: starting"), ("WARNING", f"{me}: ocf-exit-reason:nope"),
    ]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_hanging_agent_is_killed_on_timeout(fake: Fake) -> None:
    fake.set("hang", "start", "")
    a = fake.agent(timeout=5)

    async def go() -> None:
        async with asyncio.timeout(0.5):
            await a.start()

    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(go())
    assert time.monotonic() - t0 < 4  # SIGTERM worked: no wait for the SIGKILL grace
    pid = int((fake.rec / "pid").read_text())
    child = int((fake.rec / "child").read_text())
    assert _gone(pid)  # reaped by the runner
    for _ in range(100):  # the grandchild is re-parented; give init a moment to reap it
        if _gone(child) or _zombie(child):
            break
        time.sleep(0.02)
    assert _gone(child) or _zombie(child)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True

