"""Current connections per real server from the director's conntrack table
(vigil/balancer/conns.py), as ipvsadm's ActiveConn and InActConn."""

from __future__ import annotations

from vigil.balancer.conns import Conns, count

DUMP = """\
tcp      6 431999 ESTABLISHED src=10.77.0.12 dst=10.77.0.100 sport=45678 dport=80 src=10.77.2.20 dst=10.77.0.12 sport=80 dport=45678 [ASSURED] mark=65537 use=1
tcp      6 431998 ESTABLISHED src=10.77.0.12 dst=10.77.0.100 sport=45679 dport=80 src=10.77.2.20 dst=10.77.0.12 sport=80 dport=45679 [ASSURED] mark=65537 use=1
tcp      6 117 TIME_WAIT src=10.77.0.12 dst=10.77.0.100 sport=45670 dport=80 src=10.77.2.21 dst=10.77.0.12 sport=80 dport=45670 [ASSURED] mark=65538 use=1
tcp      6 118 SYN_SENT src=10.77.0.12 dst=10.77.0.100 sport=45671 dport=80 [UNREPLIED] src=10.77.2.21 dst=10.77.0.12 sport=80 dport=45671 mark=65538 use=1
udp      17 29 src=10.77.0.12 dst=10.77.0.100 sport=5353 dport=53 [UNREPLIED] src=10.77.2.20 dst=10.77.0.12 sport=53 dport=5353 mark=65537 use=1
icmp     1 29 src=10.77.0.12 dst=10.77.0.100 type=8 code=0 id=1 src=10.77.0.100 dst=10.77.0.12 type=0 code=0 id=1 mark=65537 use=1
tcp      6 431999 ESTABLISHED src=10.77.0.12 dst=10.77.0.5 sport=1 dport=22 src=10.77.0.5 dst=10.77.0.12 sport=22 dport=1 [ASSURED] use=1
garbage mark=
"""


def test_established_tcp_is_active_and_everything_else_inactive_per_mark() -> None:
    assert count(DUMP) == {65537: Conns(active=2, inactive=1), 65538: Conns(0, 2)}


def test_nothing_and_nonsense_count_nowhere() -> None:
    assert count("") == {}
    assert count("tcp 6 1 ESTABLISHED mark=x\nudp mark=5\nsctp 132 1 ESTABLISHED mark=7\n") == {}
