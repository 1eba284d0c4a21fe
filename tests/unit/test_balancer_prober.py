"""prober.py with a scripted runner: each server's results at its own rate become up/down
changes after rise/fall, and a slow check is not followed by a burst."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator

from vigil.balancer import checks
from vigil.balancer.model import Check, Endpoint, RealServer, VirtualServer
from vigil.balancer.prober import Key, Prober


def ep(last: int) -> Endpoint:
    return Endpoint(ipaddress.ip_address(f"10.0.1.{last}"), 80)


def test_results_become_changes_after_rise_and_fall() -> None:
    fast = Check(interval=0.01, timeout=0.005, rise=2, fall=3)
    vs = VirtualServer("web", "g", (RealServer(ep(1), check=fast), RealServer(ep(2), check=fast),
                                    RealServer(ep(3), check=Check(type="none"))))
    script: dict[Endpoint, Iterator[bool]] = {
        ep(1): iter([True] * 3 + [False] * 3 + [True] * 2 + [True] * 100),
        ep(2): iter([False] * 100)}
    changes: list[tuple[Key, str]] = []
    calls: dict[Endpoint, list[float]] = {ep(1): [], ep(2): []}

    async def runner(check: Check, server: Endpoint) -> checks.Result:
        calls[server].append(asyncio.get_running_loop().time())
        ok = next(script[server])
        return checks.Result(ok, "ok" if ok else "status 503", 0.001)

    async def main() -> Prober:
        p = Prober([vs], lambda k, c, r: changes.append((k, c)), runner)
        task = asyncio.create_task(p.run())
        await asyncio.sleep(0.2)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return p

    p = asyncio.run(main())
    mine = [c for k, c in changes if k == ("web", ep(1))]
    assert mine == ["up", "down", "up"]
    assert [c for k, c in changes if k == ("web", ep(2))] == ["down"]
    assert [c for k, c in changes if k == ("web", ep(3))] == ["up"] and p.up(("web", ep(3)))
    assert p.up(("web", ep(1))) and not p.up(("web", ep(2)))
    gaps = [b - a for a, b in zip(calls[ep(1)], calls[ep(1)][1:])]
    assert 0.009 <= sum(gaps) / len(gaps) <= 0.03  # its own rate
    assert p.counts[("web", ep(2))][False] == len(calls[ep(2)])


def test_a_slow_check_does_not_bring_a_burst_after_it() -> None:
    slow = Check(interval=0.01, timeout=0.5)
    vs = VirtualServer("web", "g", (RealServer(ep(1), check=slow),))
    times: list[float] = []

    async def runner(check: Check, server: Endpoint) -> checks.Result:
        loop = asyncio.get_running_loop()
        times.append(loop.time())
        await asyncio.sleep(0.05 if len(times) == 1 else 0)
        return checks.Result(True, "ok", 0.0)

    async def main() -> None:
        task = asyncio.create_task(Prober([vs], lambda *a: None, runner).run())
        await asyncio.sleep(0.12)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(main())
    # the check after the slow one comes at once; the rest keep the rate, no catching up
    gaps = [b - a for a, b in zip(times[1:], times[2:])]
    assert times[1] - times[0] >= 0.05
    assert gaps and min(gaps) >= 0.004 and len(times) <= 2 + 0.07 / 0.01 + 1


def test_reconfigure_keeps_what_did_not_change_and_stops_what_went() -> None:
    """A reload: a server whose check is unchanged keeps its task and health; one whose
    check changed starts afresh; one removed is no longer checked; one added is."""
    fast = Check(interval=0.01, timeout=0.005, rise=1, fall=1)
    before = VirtualServer("web", "g", (RealServer(ep(1), check=fast),
                                        RealServer(ep(2), check=fast),
                                        RealServer(ep(3), check=fast)))
    slower = Check(interval=0.02, timeout=0.005, rise=1, fall=1)
    after = VirtualServer("web", "g", (RealServer(ep(1), check=fast),
                                       RealServer(ep(2), check=slower),
                                       RealServer(ep(4), check=fast)))
    calls: dict[Endpoint, int] = {ep(n): 0 for n in (1, 2, 3, 4)}
    changes: list[tuple[Key, str]] = []

    async def runner(check: Check, server: Endpoint) -> checks.Result:
        calls[server] += 1
        return checks.Result(server != ep(2), "ok", 0.0)

    async def main() -> tuple[Prober, dict[Endpoint, int], dict[Endpoint, int]]:
        p = Prober([before], lambda k, c, r: changes.append((k, c)), runner)
        task = asyncio.create_task(p.run())
        await asyncio.sleep(0.1)
        kept = p.health[("web", ep(1))]
        assert p.up(("web", ep(1))) and not p.up(("web", ep(2)))
        p.reconfigure([after])
        assert p.health[("web", ep(1))] is kept and p.up(("web", ep(1)))
        assert p.health[("web", ep(2))].up is None  # its check changed: unknown again
        assert ("web", ep(3)) not in p.checks and not p.up(("web", ep(3)))
        at_switch = dict(calls)
        await asyncio.sleep(0.1)
        at_end = dict(calls)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return p, at_switch, at_end

    p, at_switch, at_end = asyncio.run(main())
    assert at_end[ep(3)] == at_switch[ep(3)]  # no check of a removed server
    assert at_end[ep(4)] >= 5 and p.up(("web", ep(4)))
    assert at_end[ep(1)] - at_switch[ep(1)] >= 5
    assert 2 <= at_end[ep(2)] - at_switch[ep(2)] <= 7  # its new, slower rate
    assert [c for k, c in changes if k == ("web", ep(2))] == ["down", "down"]


def test_refusals_count_as_failed_checks_toward_fall_and_a_pass_resets_them() -> None:
    check = Check(interval=60.0, timeout=0.5, rise=2, fall=2)
    vs = VirtualServer("web", "g", (RealServer(ep(1), check=check),
                                    RealServer(ep(2), check=Check(type="none"))))
    changes: list[tuple[Key, str]] = []
    p = Prober([vs], lambda k, c, r: changes.append((k, c)))
    key = ("web", ep(1))
    p._record(key, checks.Result(True, "ok", 0.001))  # its first check: up
    p.refused(key)
    p._record(key, checks.Result(True, "ok", 0.001))  # a pass between: the streak restarts
    p.refused(key)
    assert p.up(key) and changes == [(key, "up")]
    p.refused(key)
    assert not p.up(key) and changes[-1] == (key, "down")
    assert p.refusals[key] == 3 and p.counts[key] == {True: 2, False: 0}
    assert "refused a client's connection" in p.results[key].why
    p.refused(("web", ep(2)))  # check = none: the operator said always up
    p.refused(("web", ep(9)))  # not a server of ours
    assert ("web", ep(2)) not in p.refusals and ("web", ep(9)) not in p.refusals
