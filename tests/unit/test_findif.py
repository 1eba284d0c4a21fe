"""Heartbeat's findif (resources/findif.py): the connected route that contains an address
gives its interface and prefix length; nothing else does."""

from __future__ import annotations

import ipaddress

from vigil.resources.findif import Route, choose

N = ipaddress.ip_network


def test_the_most_specific_connected_route_wins() -> None:
    routes = [Route(N("0.0.0.0/0"), 2, gateway=True), Route(N("192.168.0.0/16"), 3, False),
              Route(N("192.168.10.0/24"), 4, False), Route(N("10.0.0.0/8"), 5, False)]
    assert choose(routes, ipaddress.ip_address("192.168.10.200")).ifindex == 4
    assert choose(routes, ipaddress.ip_address("192.168.11.1")).ifindex == 3
    # Only the default route (via a router) would reach it: not where it lives.
    assert choose(routes, ipaddress.ip_address("172.16.0.1")) is None


def test_other_tables_kinds_families_and_host_routes_do_not_count() -> None:
    ip = ipaddress.ip_address("10.1.2.3")
    assert choose([Route(N("10.1.2.0/24"), 2, False, table=255)], ip) is None  # local
    assert choose([Route(N("10.1.2.0/24"), 2, False, kind=2)], ip) is None  # not unicast
    assert choose([Route(N("10.1.2.3/32"), 2, False)], ip) is None  # names no subnet
    assert choose([Route(N("fd00::/64"), 2, False)], ip) is None
    six = ipaddress.ip_address("fd00::100")
    assert choose([Route(N("fd00::/64"), 7, False)], six).ifindex == 7
