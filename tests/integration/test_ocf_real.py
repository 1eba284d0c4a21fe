"""The real OCF agents of Debian's resource-agents package, driven by OcfAgent: Dummy (a state
file), IPaddr2 (an address, inside a lab network namespace), and `vigil agent` on them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from vigil.model import OcfResource
from vigil.resources import ocf
from vigil.resources.ocf import OcfAgent, OcfError
from vigil.resources.ocf_meta import DEFAULT_OCF_ROOT

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (DEFAULT_OCF_ROOT / "resource.d/heartbeat/Dummy").exists(),
                       reason="resource-agents is not installed"),
]


async def act(agent: OcfAgent, action: str) -> object:
    """One action under the timeout the engine would give it."""
    async with asyncio.timeout(agent.timeout_for(action)):
        return await getattr(agent, action)()


def test_dummy(tmp_path: Path) -> None:
    state = tmp_path / "dummy.state"
    agent = OcfAgent(OcfResource(agent="heartbeat:Dummy", id="d1",
                                 params=(("state", str(state)),)))
    assert agent.timeout_for("start") == 20 and agent.timeout_for("probe") == 20

    async def scenario() -> None:
        assert await act(agent, "probe") is False
        await act(agent, "stop")  # stopping a stopped resource succeeds
        await act(agent, "start")  # validate-all (advertised) first, then start
        assert state.exists()
        await act(agent, "start")  # idempotent
        assert await act(agent, "monitor") is True
        assert await act(agent, "probe") is True
        await act(agent, "stop")
        assert not state.exists()
        assert await act(agent, "monitor") is False

    asyncio.run(scenario())


def test_dummy_validate_all_refuses_an_unwritable_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "missing-dir" / "dummy.state"
    agent = OcfAgent(OcfResource(agent="heartbeat:Dummy", id="d2",
                                 params=(("state", str(state)),)))
    with pytest.raises(OcfError) as e:
        asyncio.run(act(agent, "start"))
    assert (e.value.action, e.value.code, e.value.kind) == ("validate-all", 2, "hard")
    assert e.value.reason == f'State file "{state}" is not writable'
    assert str(e.value) == (f"ocf:heartbeat:Dummy d2: validate-all failed: rc=2 OCF_ERR_ARGS "
                            f"(invalid parameters on this node): {e.value.reason}")


def test_ipaddr2_in_a_namespace() -> None:
    from vigil.lab.netns import Lab

    ocf.clear_meta_data_cache()
    lab = Lab.create(["h1"])
    try:
        address = "10.77.0.100"
        wrap = ("ip", "netns", "exec", lab.ns("h1"))
        agent = OcfAgent(OcfResource(agent="heartbeat:IPaddr2", id="vip",
                                     params=(("ip", address), ("cidr_netmask", "24"),
                                             ("nic", "eth0"))), wrap=wrap)

        async def scenario() -> None:
            info = await agent.load_meta_data()  # through the namespace wrapper: ~15 KiB
            assert info is not None and info.name == "heartbeat:IPaddr2"
            assert [p.name for p in info.parameters if p.required] == ["ip"]
            assert await act(agent, "probe") is False
            await act(agent, "start")  # validate-all first
            assert f"{address}/24" in lab.addresses("h1", "eth0")
            assert await act(agent, "monitor") is True
            assert await act(agent, "probe") is True
            await act(agent, "stop")
            assert f"{address}/24" not in lab.addresses("h1", "eth0")
            assert await act(agent, "monitor") is False
            await act(agent, "stop")

        asyncio.run(scenario())
        assert f"{address}/24" not in lab.addresses("h1")
    finally:
        lab.close()


def vigil(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vigil", *args], capture_output=True,
                          text=True, timeout=30, check=False)


@pytest.fixture
def agent_command_registered() -> None:
    from vigil.cli.main import cli
    if "agent" not in cli.commands:  # type: ignore[attr-defined]
        pytest.skip("`vigil agent` is not registered in cli/main.py yet")


@pytest.mark.usefixtures("agent_command_registered")
def test_cli_list_and_info() -> None:
    listed = vigil("agent", "list")
    assert listed.returncode == 0
    assert {"heartbeat:Dummy", "heartbeat:IPaddr2"} <= set(listed.stdout.splitlines())
    info = vigil("agent", "info", "ocf:heartbeat:IPaddr2")
    assert info.returncode == 0, info.stderr
    assert info.stdout.startswith("ocf:heartbeat:IPaddr2")
    assert "  ip " in info.stdout and "required" in info.stdout
    data = json.loads(vigil("agent", "info", "heartbeat:Dummy", "--json").stdout)
    assert data["name"] == "heartbeat:Dummy"
    assert {p["name"] for p in data["parameters"]} >= {"state", "fake"}
    unknown = vigil("agent", "info", "ocf:heartbeat:NoSuchAgent")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("vigil: unknown OCF agent ocf:heartbeat:NoSuchAgent")
