"""The address probe (resources/conflict.py) against a real kernel: a lab of two hosts, the
prober in n2, the address on n1 (or nowhere). Real ARP requests and neighbour solicitations,
answered (or not) by n1's kernel."""

from __future__ import annotations

import json
import sys

import pytest

from vigil.lab.netns import Lab

pytestmark = pytest.mark.integration

PROBE = r"""
import asyncio, json, subprocess, sys, time
from ipaddress import ip_address
from vigil.resources.conflict import AddressProber, mac_text
from vigil.resources.announce import PacketSockets

async def main():
    p, mac, out = AddressProber(), PacketSockets().mac("eth0"), []
    async def look(addr):
        t0 = time.monotonic()
        try:
            who = await p.answered("eth0", ip_address(addr), mac, 0.01)
            out.append([addr, who and mac_text(who), round((time.monotonic() - t0) * 1000, 1)])
        except OSError as e:
            out.append([addr, "error: " + (e.strerror or str(e)), 0])
    for addr in sys.argv[1:]:
        if addr in ("bounce", "down"):  # our own interface down (probed then) and up again
            subprocess.run(["ip", "link", "set", "eth0", "down"], check=True)
            await asyncio.sleep(0.1)
            if addr == "down":
                await look(sys.argv[1])
            subprocess.run(["ip", "link", "set", "eth0", "up"], check=True)
            await asyncio.sleep(0.3)
        else:
            await look(addr)
    print(json.dumps(out))
asyncio.run(main())
"""


def probe(lab: Lab, *what: str) -> list[list[object]]:
    r = lab.run("n2", [sys.executable, "-c", PROBE, *what], timeout=30)
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_a_held_address_answers_a_free_one_does_not_and_a_bounced_link_still_probes() -> None:
    with Lab.create(["n1", "n2"]) as lab:
        base = lab.address("n1").rsplit(".", 1)[0]
        held, free = f"{base}.100", f"{base}.101"
        lab.run("n1", ["ip", "addr", "add", f"{held}/24", "dev", "eth0"])
        lab.run("n1", ["ip", "-6", "addr", "add", "fd00:9::100/64", "dev", "eth0", "nodad"])
        lab.run("n2", ["ip", "-6", "addr", "add", "fd00:9::2/64", "dev", "eth0", "nodad"])
        mac1 = lab.mac("n1")
        out = probe(lab, held, free, "fd00:9::100", "fd00:9::101", "bounce", held, "down",
                    held)
        assert out[0][:2] == [held, mac1] and out[1][:2] == [free, None]
        assert out[2][:2] == ["fd00:9::100", mac1] and out[3][:2] == ["fd00:9::101", None]
        assert 9.0 <= float(out[1][2]) < 15.0, out  # silence costs the wait, about 10 ms
        # Our link went down and up: the error it left pending on the socket is not
        # reported (the torture saw it, and a takeover on top of a live holder).
        assert out[4][:2] == [held, mac1], out
        assert str(out[5][1]).startswith("error: "), "our own link down: an error, not silence"
        assert out[6][:2] == [held, mac1], out
