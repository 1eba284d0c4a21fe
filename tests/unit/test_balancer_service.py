"""service.py's decisions, with nft replaced by a recorder (the real transactions are
tests/integration/test_balancer_service.py's): when nft runs at all, what a refusal
leaves, and that a burst of health changes costs one transaction."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence

import pytest

from vigil.balancer import apply, checks, expire, wiring
from vigil.balancer.agent import BalancerAgent
from vigil.balancer.model import Check, Endpoint, RealServer, VirtualServer
from vigil.balancer.service import Balancer
from vigil.errors import AgentError


def ep(last: int) -> Endpoint:
    return Endpoint(ipaddress.ip_address(f"10.0.1.{last}"), 80)


NONE = Check(type="none")
WEB = VirtualServer("web", "g1", tuple(RealServer(ep(n), check=NONE) for n in (1, 2, 3)),
                    endpoint=Endpoint(ipaddress.ip_address("10.0.0.200"), 80))


class Kernel:
    """What nft was asked; `refuse` makes the next transactions fail."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.scripts: list[str] = []
        self.refuse = False
        self.table = False
        monkeypatch.setattr(apply, "apply", self.apply)
        monkeypatch.setattr(apply, "present", self.present)
        monkeypatch.setattr(wiring, "resolve", self.resolve)
        self.expired: list[int] = []
        monkeypatch.setattr(expire, "expire", self.expire)

    async def expire(self, mark: int, prefix: Sequence[str] = ()) -> int:
        self.expired.append(mark)
        return 3

    async def resolve(self, vs: VirtualServer, prefix: Sequence[str] = (),
                      warn: object = None) -> None:
        return None  # NAT: routes are test_balancer_wiring.py's

    async def apply(self, script: str, prefix: Sequence[str] = ()) -> None:
        if not script:
            return
        await asyncio.sleep(0)
        if self.refuse:
            raise apply.NftError("nft refused the transaction, the previous ruleset stays: x")
        self.scripts.append(script)
        self.table = script != apply.remove_all()

    async def present(self, prefix: Sequence[str] = ()) -> bool:
        return self.table


def test_no_virtual_server_never_runs_nft(monkeypatch: pytest.MonkeyPatch) -> None:
    k = Kernel(monkeypatch)

    async def main() -> None:
        b = Balancer([])
        agent = BalancerAgent(b, "g1")
        assert agent.idle() and not await agent.probe()
        await agent.start()
        await agent.stop()
        assert await b.sync() is None

    asyncio.run(main())
    assert k.scripts == []


def test_a_left_over_table_is_removed_and_the_group_s_rules_come_and_go(
        monkeypatch: pytest.MonkeyPatch) -> None:
    k = Kernel(monkeypatch)
    k.table = True  # a crashed daemon left its rules

    async def main() -> None:
        b = Balancer([WEB])
        agent, other = BalancerAgent(b, "g1"), BalancerAgent(b, "g2")
        assert not agent.idle() and other.idle()
        assert await agent.probe()  # present: the daemon stops the group, which removes it
        assert not await other.probe()  # a group with no virtual server has none
        await agent.stop()
        assert k.scripts[-1] == apply.remove_all() and not k.table
        await other.start()  # g2 has no virtual server: nothing to do
        assert len(k.scripts) == 1
        b.prober._record(("web", ep(1)), checks.Result(True, "ok", 0.0))
        await agent.start()
        assert k.table and len(k.scripts) == 2
        st = b.status()[0]
        assert st["directing"] and [r["taking"] for r in st["servers"]] == [True, False, False]
        assert [r["health"] for r in st["servers"]] == ["up", "unknown", "unknown"]
        await agent.stop()
        assert not k.table and b.held == {}

    asyncio.run(main())


def test_a_refused_transaction_fails_the_start_and_keeps_what_was_held(
        monkeypatch: pytest.MonkeyPatch) -> None:
    k = Kernel(monkeypatch)

    async def main() -> None:
        b = Balancer([WEB])
        for n in (1, 2, 3):
            b.prober._record(("web", ep(n)), checks.Result(True, "ok", 0.0))
        agent = BalancerAgent(b, "g1")
        await agent.start()
        held = b.held
        k.refuse = True
        assert await b.drain("web", "10.0.1.1:80") is not None
        assert b.held is held and b.last_error is not None
        with pytest.raises(AgentError, match="^balancer g1: nft refused"):
            await agent.stop()
        k.refuse = False
        with pytest.raises(KeyError, match="no real server '10.0.1.9:80'"):
            await b.drain("web", "10.0.1.9:80")
        assert await b.enable("web", "10.0.1.1:80") is None and b.last_error is None

    asyncio.run(main())


def test_a_burst_of_health_changes_is_one_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    k = Kernel(monkeypatch)
    fast = Check(interval=0.01, timeout=0.005, rise=1, fall=1)
    vs = VirtualServer("web", "g1", tuple(RealServer(ep(n), check=fast) for n in range(1, 21)),
                       endpoint=Endpoint(ipaddress.ip_address("10.0.0.200"), 80))
    healthy = {ep(n): True for n in range(1, 21)}

    async def runner(check: Check, server: Endpoint) -> checks.Result:
        return checks.Result(healthy[server], "ok" if healthy[server] else "refused", 0.0)

    async def main() -> None:
        b = Balancer([vs], runner=runner, passive=False)
        task = asyncio.create_task(b.run())
        await asyncio.sleep(0.05)
        assert await b.activate("g1") is None
        before = len(k.scripts)
        for n in range(1, 11):  # half of them fail at once
            healthy[ep(n)] = False
        await asyncio.sleep(0.1)
        assert 1 <= len(k.scripts) - before <= 3  # one per applier pass, not one per server
        assert set(b.director.active(vs, b.prober.up)) == {ep(n) for n in range(11, 21)}
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(main())


def test_a_health_change_is_an_event_on_the_daemon_s_bus() -> None:
    """What hooks, the API's streams and the metrics see when a real server goes down."""
    from pathlib import Path

    from tests.unit.test_config_virtual import BASE, VS
    from vigil.config.toml import parse
    from vigil.daemon.app import Daemon

    d = Daemon(parse(BASE + VS, "vigil.toml"), "n1", b"k" * 32, lambda: 1,
               Path("/nonexistent/vigil.sock"))
    d._real_server(("web", ep(1)), "down", checks.Result(False, "connect: refused", 0.0))
    ev = d.bus.recent[-1]
    assert (ev.kind, ev.subject, ev.detail) == ("real_server_down", "web 10.0.1.1:80",
                                                "connect: refused")
    assert d.metrics.events["real_server_down"] == 1


@pytest.mark.parametrize("quiescent", [False, True])
def test_a_failed_nat_server_loses_its_connections_unless_quiescent(
        monkeypatch: pytest.MonkeyPatch, quiescent: bool) -> None:
    import dataclasses
    k = Kernel(monkeypatch)
    web = dataclasses.replace(WEB, quiescent=quiescent)

    async def main() -> None:
        b = Balancer([web], passive=False)
        b.prober._record(("web", ep(1)), checks.Result(True, "ok", 0.0))
        b.prober._record(("web", ep(2)), checks.Result(True, "ok", 0.0))
        assert await BalancerAgent(b, "g1").start() is None
        assert k.expired == []  # ep(3) is not checked yet: not known to have failed
        for _ in range(2):  # fall = 2: down at the second failure
            b.prober._record(("web", ep(2)), checks.Result(False, "refused", 0.0))
        assert await b.sync() is None and await b.sync() is None
        mark = b.director.mark_of(("web", ep(2)))
        assert k.expired == ([] if quiescent else [mark])  # once, not at every sync
        b.prober._record(("web", ep(2)), checks.Result(True, "ok", 0.0))
        b.prober._record(("web", ep(2)), checks.Result(True, "ok", 0.0))
        await b.sync()
        for _ in range(2):
            b.prober._record(("web", ep(2)), checks.Result(False, "refused", 0.0))
        await b.sync()
        assert k.expired == ([] if quiescent else [mark, mark])  # failed again: again

    asyncio.run(main())


def test_passive_detection_starts_with_the_first_tcp_service_even_by_reload() -> None:
    import dataclasses

    from vigil.balancer.passive import RefusalWatch

    class Group:  # a running balancer's TaskGroup: what it was asked to start
        def __init__(self) -> None:
            self.names: list[str] = []

        def create_task(self, coro: object, name: str) -> None:
            coro.close()  # type: ignore[attr-defined]
            self.names.append(name)

    udp = dataclasses.replace(WEB, protocol="udp")
    b = Balancer([udp])
    assert b.passive is None  # nothing to watch yet
    tg = Group()
    b._tg = tg  # type: ignore[assignment]
    b.reconfigure([udp])
    assert b.passive is None and tg.names == []
    b.reconfigure([udp, dataclasses.replace(WEB, name="tcp")])
    assert isinstance(b.passive, RefusalWatch) and tg.names == ["passive detection"]
    first = b.passive
    b.reconfigure([WEB])  # one watch, however many reloads
    assert b.passive is first and tg.names == ["passive detection"]
    assert Balancer([udp], passive=False).passive is None
    off = Balancer([], passive=False)
    off.reconfigure([WEB])
    assert off.passive is None
