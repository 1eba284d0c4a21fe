"""NFLOG's wire format (balancer/nflog.py): the bind requests, the marks read back, and bytes
from a hostile or broken kernel (any truncation, any garbage) never read past their end."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, strategies as st

from vigil.balancer import nflog

GROUP = 4242


def test_bind_asks_for_the_group_metadata_only_and_no_batching() -> None:
    requests = nflog.bind(GROUP)
    assert len(requests) == 3
    for seq, r in enumerate(requests, 1):
        length, kind, flags, s, pid = struct.unpack_from("=IHHII", r)
        assert (length, kind, s, pid) == (len(r), nflog.MSG_CONFIG, seq, 0)
        assert flags == nflog.NLM_F_REQUEST | nflog.NLM_F_ACK
        assert struct.unpack_from("!BBH", r, 16) == (0, 0, GROUP)
        assert len(r) % 4 == 0
    # the first: command BIND; the second: copy mode META; the third: threshold 1
    assert struct.unpack_from("=HHB", requests[0], 20) == (5, nflog.CFG_CMD, nflog.CMD_BIND)
    assert struct.unpack_from("=HH", requests[1], 20) == (10, nflog.CFG_MODE)
    assert struct.unpack_from("!IB", requests[1], 24) == (0, nflog.COPY_META)
    with pytest.raises(ValueError, match="65536"):
        nflog.bind(65536)


def test_marks_come_back_from_packets_of_our_group_only() -> None:
    data = (nflog.packet(GROUP, 0x10002) + nflog.packet(GROUP, None) +
            nflog.packet(GROUP + 1, 0x10003) + nflog.packet(GROUP, 0x20001))
    assert nflog.marks(data, GROUP) == [0x10002, 0x20001]


def ack(code: int) -> bytes:
    body = struct.pack("=i", code) + b"\0" * 16
    return struct.pack("=IHHII", 16 + len(body), nflog.NLMSG_ERROR, 0, 1, 0) + body


def test_acknowledgements_say_which_request_failed() -> None:
    assert nflog.errors(ack(0) + ack(0)) == []
    assert nflog.errors(ack(0) + ack(-16)) == [16]  # EBUSY: another program has the group


@given(st.binary(max_size=300))
def test_garbage_is_never_an_error(data: bytes) -> None:
    nflog.marks(data, GROUP)
    nflog.errors(data)


@given(st.lists(st.integers(0, 2**32 - 1), max_size=8), st.data())
def test_any_truncation_yields_a_prefix_of_the_marks(marks: list[int], data: st.DataObject) -> None:
    whole = b"".join(nflog.packet(GROUP, m) for m in marks)
    assert nflog.marks(whole, GROUP) == marks
    cut = data.draw(st.integers(0, len(whole)))
    got = nflog.marks(whole[:cut], GROUP)
    assert got == marks[:len(got)]


def test_a_lying_length_stops_the_read() -> None:
    good = nflog.packet(GROUP, 7)
    liar = bytearray(nflog.packet(GROUP, 8))
    struct.pack_into("=I", liar, 0, 4096)  # claims more than there is
    assert nflog.marks(good + bytes(liar) + good, GROUP) == [7]
    tiny = bytearray(good)
    struct.pack_into("=I", tiny, 0, 4)  # shorter than a header: would loop forever
    assert nflog.marks(bytes(tiny) + good, GROUP) == []
