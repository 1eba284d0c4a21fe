"""counters.py: the kernel's counter listing read back per real server, whatever it holds."""

from __future__ import annotations

from vigil.balancer import counters
from vigil.balancer.counters import Traffic


def item(name: str, packets: object, size: object) -> dict[str, object]:
    return {"counter": {"family": "inet", "name": name, "table": "vigil_lb", "handle": 3,
                        "packets": packets, "bytes": size}}


def test_each_server_s_three_counters_make_its_traffic() -> None:
    names = {counters.name(1, 2, k): ("r2", k) for k in counters.KINDS}
    names[counters.name(2, 1, "conns")] = ("dr1", "conns")
    found = [{"metainfo": {"version": "1.0.6"}}, item("vs1_2_conns", 5, 300),
             item("vs1_2_in", 40, 3000), item("vs1_2_out", 38, 90000),
             item("vs2_1_conns", 7, 420), item("vs9_9_in", 1, 1),  # not ours: ignored
             item("vs1_2_in", "x", 1), {"counter": "bad"}, "junk"]  # malformed: ignored
    assert counters.read(found, names) == {
        "r2": Traffic(connections=5, packets_in=40, bytes_in=3000, packets_out=38,
                      bytes_out=90000),
        "dr1": Traffic(connections=7)}
    assert counters.name(1, 2, "in") == "vs1_2_in"
