"""Fuzzing the untrusted inputs for "no crash, no state change" (issue 5): frames into a
node and into the witness, mailbox contents, control-socket requests, configs. Bounded in
`make test`; `make soak` raises VIGIL_FUZZ_EXAMPLES for a long run."""

from __future__ import annotations

import copy
import ipaddress
import os

from hypothesis import HealthCheck, assume, given, settings, strategies as st

from tests.unit.sim import KEY, Sim, make_cluster
from vigil.arbiter import Arbiter
from vigil.control import protocol
from vigil.model import Witness
from vigil.wire import frame as wire
from vigil.wire.messages import parse
from vigil.wire.votes import parse_poison

FUZZ = settings(max_examples=int(os.environ.get("VIGIL_FUZZ_EXAMPLES", "300")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
CLUSTER = make_cluster(witness=Witness(ipaddress.ip_address("10.0.0.9")))
SIM = Sim(3, CLUSTER)
SIM.run(5.0)  # both nodes up, groups at home: a node with real state to protect
VALID = SIM.nodes["n2"].frame(0, SIM.now)


def _state(node: object) -> object:
    n = node  # everything a decision depends on; counters excluded
    return copy.deepcopy((n.assignments, n.local, n.eligible, n.report,  # type: ignore[attr-defined]
                          n.witness.leases, n.poisoned, n.fencing.state,  # type: ignore[attr-defined]
                          n.membership.view(n.peer)))  # type: ignore[attr-defined]


def _mutations() -> st.SearchStrategy[bytes]:
    """Bytes near a valid frame: flipped, cut, extended, or re-signed garbage bodies."""
    flip = st.tuples(st.integers(0, len(VALID) - 1), st.integers(1, 255)).map(
        lambda t: VALID[:t[0]] + bytes([VALID[t[0]] ^ t[1]]) + VALID[t[0] + 1:])
    cut = st.integers(0, len(VALID) - 1).map(lambda n: VALID[:n])
    grow = st.binary(min_size=1, max_size=64).map(lambda b: VALID + b)
    return st.one_of(st.binary(max_size=2000), flip, cut, grow)


@FUZZ
@given(data=_mutations(), link=st.integers(-3, 5))
def test_bad_frames_change_nothing_in_a_node(data: bytes, link: int) -> None:
    node = copy.deepcopy(SIM.nodes["n1"])
    before = _state(node)
    node.receive(data, max(0, min(link, 1)), SIM.now)
    node.side.mail(data)
    node.side.witness_reply(data, SIM.now)
    assert _state(node) == before


@FUZZ
@given(payload=st.binary(max_size=600), kind=st.sampled_from(list(wire.FrameKind)))
def test_authentic_but_garbled_payloads_change_nothing(payload: bytes,
                                                       kind: wire.FrameKind) -> None:
    """A peer with the key sending nonsense: dropped and counted, nothing else."""
    assume(parse(payload) is None and parse_poison(payload) is None)  # garbled, really
    node = copy.deepcopy(SIM.nodes["n1"])
    before = _state(node)
    data = wire.encode(wire.Frame(kind, "sim", "n2", 2**40, 2**40, 0, payload), KEY)
    node.receive(data, 0, SIM.now)
    node.side.mail(data)
    assert _state(node) == before


@FUZZ
@given(data=st.binary(max_size=1500))
def test_bad_asks_change_nothing_in_the_witness(data: bytes) -> None:
    arb = Arbiter("sim", ("n1", "n2"), ("g1", "g2"), KEY, "witness", 2.0, 1, 0.0)
    arb.leases = {}
    reply, _ = arb.receive(data, 5.0)
    assert reply is None and arb.leases == {} and arb.rejected == 1


@FUZZ
@given(data=st.binary(max_size=4096))
def test_bad_control_requests_are_refused_cleanly(data: bytes) -> None:
    got = protocol.decode_request(data)
    assert isinstance(got, (protocol.Request, protocol.ProtocolError))
