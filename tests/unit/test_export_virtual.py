"""export_virtual.py: [[virtual_server]] tables written from the model parse back to equal
virtual servers, whatever mix of checks their real servers have."""

from __future__ import annotations

import dataclasses
import ipaddress

from hypothesis import given, settings, strategies as st

from vigil.balancer import model as lb
from vigil.config import export, toml
from tests.unit.test_config_virtual import BASE, VS


def _roundtrip(cluster: object) -> None:
    text = export.to_toml(cluster)  # type: ignore[arg-type]
    again = toml.parse(text, "exported.toml")
    assert again.virtual_servers == cluster.virtual_servers, text  # type: ignore[attr-defined]


def test_the_issue_s_example_parses_back() -> None:
    cluster = toml.parse(BASE + VS, "vigil.toml")
    assert cluster.virtual_servers
    _roundtrip(cluster)


CHECKS = st.builds(
    lb.Check,
    type=st.sampled_from(["tcp", "http", "https", "none"]),
    path=st.sampled_from(["/", "/health", "/a b"]),
    expect_status=st.sampled_from([(200,), (200, 301)]),
    expect_body=st.sampled_from([None, "ok", 'x"y\\d']),
    digest=st.sampled_from([None, "0" * 32]),
    host=st.sampled_from([None, "www.example.com"]),
    port=st.sampled_from([None, 8080]),
    interval=st.sampled_from([1.0, 0.2, 2.5]),
    timeout=st.sampled_from([0.1, 0.2]),
    rise=st.integers(1, 3), fall=st.integers(1, 3))


@settings(max_examples=200, deadline=None)
@given(checks=st.lists(CHECKS, min_size=1, max_size=4),
       weights=st.lists(st.integers(0, 5), min_size=4, max_size=4),
       scheduler=st.sampled_from(["rr", "wrr", "sh", "mh"]),
       persistence=st.sampled_from([None, 300.0, 0.5]),
       quorum=st.integers(1, 1), quiescent=st.booleans(),
       sorry=st.booleans())
def test_any_mix_of_checks_parses_back(checks: list[lb.Check], weights: list[int],
                                       scheduler: str, persistence: float | None,
                                       quorum: int, quiescent: bool, sorry: bool) -> None:
    cluster = toml.parse(BASE, "vigil.toml")
    reals = tuple(lb.RealServer(lb.Endpoint(ipaddress.ip_address(f"192.168.10.{10 + i}"), 80),
                                weights[i], c) for i, c in enumerate(checks))
    vs = lb.VirtualServer(
        "web", "web", reals, endpoint=lb.Endpoint(ipaddress.ip_address("192.168.10.200"), 80),
        scheduler=scheduler, persistence=persistence,  # type: ignore[arg-type]
        persistence_netmask=24 if persistence else None, quorum=quorum, quiescent=quiescent,
        sorry_server=lb.Endpoint(ipaddress.ip_address("127.0.0.1"), 8080) if sorry else None)
    _roundtrip(dataclasses.replace(cluster, virtual_servers=(vs,)))
