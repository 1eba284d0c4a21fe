"""The disk heartbeat sector codec: round trips, the layout's fixed offsets, oversized frames
refused on the way out, and garbage (or a device never written) reading as "no frame"."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.wire import sectors
from vigil.wire.frame import MAX_FRAME
from vigil.wire.sectors import SECTOR, SLOT, pack, unpack


@given(st.binary(max_size=MAX_FRAME))
def test_round_trip(frame: bytes) -> None:
    sector = pack(frame)
    assert len(sector) == SECTOR
    assert unpack(sector) == frame
    assert sector[6 + len(frame):] == bytes(SECTOR - 6 - len(frame))  # zero padding


@given(st.binary(min_size=MAX_FRAME + 1, max_size=SECTOR))
def test_oversized_refused(frame: bytes) -> None:
    with pytest.raises(ValueError, match="exceeds"):
        pack(frame)


@given(st.binary(max_size=2 * SECTOR))
def test_garbage_never_raises(data: bytes) -> None:
    got = unpack(data)
    assert got is None or (data[:4] == b"VGLD" and len(got) <= MAX_FRAME)


@given(st.binary(max_size=MAX_FRAME))
def test_a_cut_sector_holds_no_frame(frame: bytes) -> None:
    # A short read must not yield a truncated frame.
    sector = pack(frame)
    for n in range(6 + len(frame)):
        assert unpack(sector[:n]) is None


def test_empty_and_foreign_sectors_hold_no_frame() -> None:
    assert unpack(bytes(SECTOR)) is None
    assert unpack(b"VGLX" + pack(b"abc")[4:]) is None
    too_long = b"VGLD" + struct.pack("!H", MAX_FRAME + 1) + bytes(SECTOR - 6)
    assert unpack(too_long) is None


def test_layout() -> None:
    assert (SECTOR, SLOT) == (4096, 8192)
    assert [sectors.heartbeat_offset(i) for i in (0, 1)] == [0, 8192]
    assert [sectors.mailbox_offset(i) for i in (0, 1)] == [4096, 12288]
    assert sectors.min_size(2) == 16384
